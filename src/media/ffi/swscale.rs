//! A decoded frame's pixels through FFmpeg: the facts its raw fields hold
//! (matrix, range, whether it is YUV), cropping without copying, and one
//! swscale pass that scales and converts it into buffers allocated here.
//! Which matrix and which output is [`crate::media::picture`]'s choice.

use std::os::raw::c_int;
use std::ptr;

use ffmpeg_next::ffi;
use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame;

use crate::media::MediaError;

/// swscale colour-space constants (libswscale/swscale.h).
pub const SWS_CS_ITU709: c_int = 1;
pub const SWS_CS_FCC: c_int = 4;
pub const SWS_CS_ITU601: c_int = 5;
pub const SWS_CS_SMPTE240M: c_int = 7;
pub const SWS_CS_BT2020: c_int = 9;

/// The YUV matrix the frame says it uses (often unspecified).
pub fn colorspace(frame: &frame::Video) -> ffi::AVColorSpace {
    // SAFETY: reading a plain field.
    unsafe { (*frame.as_ptr()).colorspace }
}

/// The range the frame says its values use.
pub fn color_range(frame: &frame::Video) -> ffi::AVColorRange {
    // SAFETY: reading plain fields.
    unsafe { (*frame.as_ptr()).color_range }
}

/// Whether the pixel format stores YUV (or grey), not RGB or a palette.
pub fn is_yuv(format: Pixel) -> bool {
    let format: ffi::AVPixelFormat = format.into();
    // SAFETY: a pixel format's descriptor is static data (null if unknown).
    unsafe {
        let desc = ffi::av_pix_fmt_desc_get(format);
        !desc.is_null()
            && (*desc).flags & (ffi::AV_PIX_FMT_FLAG_RGB | ffi::AV_PIX_FMT_FLAG_PAL) as u64 == 0
    }
}

/// Whether the pixel format carries an alpha channel (transparency) that
/// [`alpha`] reads: integer samples of up to 16 bits. Palettes are left
/// out: FFmpeg flags them as having alpha because their entries could,
/// though the decoders that output them (Cinepak, QuickTime Animation at
/// 8 bits) fill it opaque, and their thumbnails stay as they were.
pub fn has_alpha(format: Pixel) -> bool {
    let format: ffi::AVPixelFormat = format.into();
    let excluded = ffi::AV_PIX_FMT_FLAG_PAL
        | ffi::AV_PIX_FMT_FLAG_HWACCEL
        | ffi::AV_PIX_FMT_FLAG_BITSTREAM
        | ffi::AV_PIX_FMT_FLAG_FLOAT;
    // SAFETY: a pixel format's descriptor is static data (null if unknown);
    // `nb_components` of its `comp` entries are filled in.
    unsafe {
        let desc = ffi::av_pix_fmt_desc_get(format);
        if desc.is_null() || (*desc).nb_components < 2 {
            return false;
        }
        let last = (*desc).comp[(*desc).nb_components as usize - 1];
        (*desc).flags & ffi::AV_PIX_FMT_FLAG_ALPHA as u64 != 0
            && (*desc).flags & excluded as u64 == 0
            && (1..=16).contains(&last.depth)
    }
}

/// The frame's alpha channel as 8-bit opacity (0 transparent, 255
/// opaque), `width` x `height` packed: read from wherever the pixel format
/// keeps it (its own plane for `yuva*` and `gbrap*`, a byte of each pixel
/// for `rgba`/`argb`, the second of `ya8`'s, 10-16 bits for ProRes
/// 4444), rounded to 8 bits.
/// `None` when the format has no alpha ([`has_alpha`]).
pub fn alpha(frame: &frame::Video) -> Option<Vec<u8>> {
    if !has_alpha(frame.format()) {
        return None;
    }
    let format: ffi::AVPixelFormat = frame.format().into();
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let mut out = vec![0u8; w * h];
    if out.is_empty() {
        return Some(out);
    }
    // SAFETY: the descriptor is static data, non-null for a format
    // `has_alpha` accepts; the frame's planes hold `h` rows of its
    // linesize, and the alpha component's plane, step and offset say
    // where each pixel's alpha lies in them (FFmpeg's own readers use the
    // same).
    unsafe {
        let desc = ffi::av_pix_fmt_desc_get(format);
        // FFmpeg keeps alpha as the last component (`ya8` has two).
        let index = (*desc).nb_components as usize - 1;
        let comp = (*desc).comp[index];
        let raw = frame.as_ptr();
        let plane = (*raw).data[comp.plane as usize];
        let linesize = (*raw).linesize[comp.plane as usize] as isize;
        if comp.depth == 8 && comp.shift == 0 {
            // One byte a sample: read it straight (the common case, and
            // the one VP8/VP9 `yuva420p` takes).
            let (step, offset) = (comp.step as usize, comp.offset as usize);
            for (y, row) in out.chunks_exact_mut(w).enumerate() {
                let src = plane.offset(y as isize * linesize).add(offset);
                if step == 1 {
                    ptr::copy_nonoverlapping(src, row.as_mut_ptr(), w);
                } else {
                    for (x, a) in row.iter_mut().enumerate() {
                        *a = *src.add(x * step);
                    }
                }
            }
        } else {
            let max = (1u32 << comp.depth) - 1;
            let mut wide = vec![0u16; w];
            for (y, row) in out.chunks_exact_mut(w).enumerate() {
                ffi::av_read_image_line2(
                    wide.as_mut_ptr() as *mut std::os::raw::c_void,
                    (*raw).data.as_ptr() as *mut *const u8,
                    (*raw).linesize.as_ptr(),
                    desc,
                    0,
                    y as c_int,
                    index as c_int,
                    w as c_int,
                    0,
                    2,
                );
                for (a, &v) in row.iter_mut().zip(&wide) {
                    *a = ((u32::from(v) * 255 + max / 2) / max) as u8;
                }
            }
        }
    }
    Some(out)
}

/// A packed 8-bit single-channel plane (`src`, `sw` x `sh`) resampled to
/// `w` x `h` with the same bicubic filter as the colour, values kept in
/// full range (for an alpha plane: 0 and 255 stay 0 and 255).
pub fn scale_plane(src: &[u8], sw: u32, sh: u32, w: u32, h: u32) -> Result<Vec<u8>, MediaError> {
    if src.len() < sw as usize * sh as usize || sw == 0 || sh == 0 {
        return Err(MediaError::Internal(
            "the plane is smaller than its size".into(),
        ));
    }
    // swscale's vector code may read a little past a row: the rows are
    // copied into a padded plane first.
    let padded = PaddedPlane::new(sw as usize, sh as usize);
    for (y, row) in src.chunks_exact(sw as usize).take(sh as usize).enumerate() {
        // SAFETY: the padded plane has `sh` rows of at least `sw` bytes.
        unsafe {
            ptr::copy_nonoverlapping(row.as_ptr(), padded.start.add(y * padded.stride), row.len())
        };
    }
    let mut out = vec![0u8; w as usize * h as usize];
    let source = Source {
        data: [
            padded.start,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
        ],
        linesize: [padded.stride as c_int, 0, 0, 0],
        width: sw,
        height: sh,
        format: Pixel::GRAY8,
    };
    let colour = SourceColour {
        full_range: true,
        matrix: SWS_CS_ITU601,
    };
    // SAFETY: `source` points at `sh` rows of its stride, alive until
    // the call returns; `out` holds `h` rows of `w` bytes, GRAY8's one
    // plane.
    unsafe {
        scale_from(
            &source,
            colour,
            Pixel::GRAY8,
            (w, h),
            [out.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()],
            [w as c_int, 0, 0],
        )?;
    }
    Ok(out)
}

/// A new reference to the frame's buffers with `left`, `top`, `right` and
/// `bottom` pixels cropped off (FFmpeg refuses a crop larger than the frame).
pub fn crop(
    frame: &frame::Video,
    left: usize,
    top: usize,
    right: usize,
    bottom: usize,
) -> Result<frame::Video, MediaError> {
    // SAFETY: av_frame_clone makes a new frame referencing the same
    // (refcounted) buffers; cropping moves only the new frame's pointers.
    unsafe {
        let f = ffi::av_frame_clone(frame.as_ptr());
        if f.is_null() {
            return Err(MediaError::Internal("out of memory cloning a frame".into()));
        }
        let frame = frame::Video::wrap(f);
        (*f).crop_left = left;
        (*f).crop_top = top;
        (*f).crop_right = right;
        (*f).crop_bottom = bottom;
        let ret = ffi::av_frame_apply_cropping(f, ffi::AV_FRAME_CROP_UNALIGNED as c_int);
        if ret < 0 {
            return Err(MediaError::Internal(format!(
                "cropping failed ({})",
                ffmpeg_next::Error::from(ret)
            )));
        }
        Ok(frame)
    }
}

/// How the source frame's values are to be read.
#[derive(Debug, Clone, Copy)]
pub struct SourceColour {
    /// Full range (0-255) rather than limited (16-235).
    pub full_range: bool,
    /// Its YUV matrix, one of the `SWS_CS_` constants.
    pub matrix: c_int,
}

/// The frame scaled to `w` x `h` packed 8-bit RGB.
pub fn to_rgb24(
    frame: &frame::Video,
    colour: SourceColour,
    w: u32,
    h: u32,
) -> Result<Vec<u8>, MediaError> {
    let mut out = vec![0u8; w as usize * h as usize * 3];
    // SAFETY: `out` holds `h` rows of `3 w` bytes, RGB24's one plane.
    unsafe {
        scale(
            frame,
            colour,
            Pixel::RGB24,
            (w, h),
            [out.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()],
            [w as c_int * 3, 0, 0],
        )?;
    }
    Ok(out)
}

/// The frame scaled to `w` x `h` packed 16-bit RGB (native-endian values).
pub fn to_rgb48(
    frame: &frame::Video,
    colour: SourceColour,
    w: u32,
    h: u32,
) -> Result<Vec<u16>, MediaError> {
    let mut wide = vec![0u16; w as usize * h as usize * 3];
    // SAFETY: `wide` holds `h` rows of `6 w` bytes, RGB48's one plane.
    unsafe {
        scale(
            frame,
            colour,
            Pixel::RGB48LE,
            (w, h),
            [
                wide.as_mut_ptr() as *mut u8,
                ptr::null_mut(),
                ptr::null_mut(),
            ],
            [w as c_int * 6, 0, 0],
        )?;
    }
    if cfg!(target_endian = "big") {
        wide.iter_mut().for_each(|v| *v = u16::from_le(*v));
    }
    Ok(wide)
}

/// The frame's planes resampled to `w` x `h` 4:2:0 (`y`, `u`, `v`, packed;
/// chroma `w.div_ceil(2)` x `h.div_ceil(2)`), in the frame's own matrix.
pub fn to_yuv420p(
    frame: &frame::Video,
    colour: SourceColour,
    w: u32,
    h: u32,
) -> Result<[Vec<u8>; 3], MediaError> {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let chroma = cw as usize * ch as usize;
    let mut y = vec![0u8; w as usize * h as usize];
    let mut u = vec![0u8; chroma];
    let mut v = vec![0u8; chroma];
    // SAFETY: each plane holds the rows YUV420P has at height `h`, of the
    // stride given: `h` rows of `w` bytes, then `h.div_ceil(2)` of `cw`.
    unsafe {
        scale(
            frame,
            colour,
            Pixel::YUV420P,
            (w, h),
            [y.as_mut_ptr(), u.as_mut_ptr(), v.as_mut_ptr()],
            [w as c_int, cw as c_int, cw as c_int],
        )?;
    }
    Ok([y, u, v])
}

struct Sws(*mut ffi::SwsContext);

impl Drop for Sws {
    fn drop(&mut self) {
        // SAFETY: created by sws_getContext, freed once.
        unsafe { ffi::sws_freeContext(self.0) }
    }
}

/// The pixels swscale reads: a frame's planes, or a plane of ours.
struct Source {
    data: [*mut u8; 4],
    linesize: [c_int; 4],
    width: u32,
    height: u32,
    format: Pixel,
}

/// Scales and converts the frame into `dst`: up to three planes with their
/// strides in bytes, as `dst_format` lays them out.
///
/// # Safety
/// Each non-null `dst` plane must hold the rows `dst_format` has at height
/// `h` (for YUV420P, `h.div_ceil(2)` for chroma), of its stride.
unsafe fn scale(
    frame: &frame::Video,
    colour: SourceColour,
    dst_format: Pixel,
    size: (u32, u32),
    dst: [*mut u8; 3],
    dst_strides: [c_int; 3],
) -> Result<(), MediaError> {
    // SAFETY: the frame's planes outlive the call (the caller holds it).
    let raw = unsafe { &*frame.as_ptr() };
    let source = Source {
        data: [raw.data[0], raw.data[1], raw.data[2], raw.data[3]],
        linesize: [
            raw.linesize[0],
            raw.linesize[1],
            raw.linesize[2],
            raw.linesize[3],
        ],
        width: frame.width(),
        height: frame.height(),
        format: frame.format(),
    };
    // SAFETY: the caller's promise on `dst`; `source` is the frame's.
    unsafe { scale_from(&source, colour, dst_format, size, dst, dst_strides) }
}

/// [`scale`] from any [`Source`].
///
/// # Safety
/// As [`scale`]; `source`'s planes must hold the rows its format has at
/// its height, of its linesizes.
unsafe fn scale_from(
    source: &Source,
    colour: SourceColour,
    dst_format: Pixel,
    (w, h): (u32, u32),
    dst: [*mut u8; 3],
    dst_strides: [c_int; 3],
) -> Result<(), MediaError> {
    let src_format: ffi::AVPixelFormat = source.format.into();
    let yuv_out = dst_format == Pixel::YUV420P;
    // Full horizontal chroma interpolation matters only when converting to
    // RGB; resampling YUV planes keeps the chroma at its own resolution.
    let flags = if yuv_out {
        ffi::SWS_BICUBIC | ffi::SWS_ACCURATE_RND
    } else {
        ffi::SWS_BICUBIC | ffi::SWS_ACCURATE_RND | ffi::SWS_FULL_CHR_H_INT
    };
    // SAFETY: sizes and formats are valid; each `dst` plane holds the rows
    // `dst_format` has at height `h`, of its stride (the caller's promise).
    unsafe {
        let ctx = ffi::sws_getContext(
            source.width as c_int,
            source.height as c_int,
            src_format,
            w as c_int,
            h as c_int,
            dst_format.into(),
            flags as c_int,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null(),
        );
        if ctx.is_null() {
            return Err(MediaError::Unreadable(format!(
                "cannot convert pixel format {:?}",
                source.format
            )));
        }
        let sws = Sws(ctx);
        let src_range = colour.full_range as c_int;
        let coefficients = ffi::sws_getCoefficients(colour.matrix);
        // The matrix applies when converting to RGB; YUV output keeps the
        // source's (see `picture::to_bt601`). Fails harmlessly for RGB sources.
        ffi::sws_setColorspaceDetails(
            sws.0,
            coefficients,
            src_range,
            ffi::sws_getCoefficients(SWS_CS_ITU709),
            if yuv_out { 0 } else { 1 },
            0,
            1 << 16,
            1 << 16,
        );
        // swscale's vector code writes whole blocks past the end of a row
        // (and a row past the last): with tight rows a picture 1 or 2 pixels
        // wide corrupted the heap. It writes into padded, aligned planes and
        // the rows are copied out.
        let rows_of = |plane: usize| {
            if plane > 0 && yuv_out {
                h.div_ceil(2) as usize
            } else {
                h as usize
            }
        };
        let mut scratch: [Option<PaddedPlane>; 3] = [None, None, None];
        let mut dst_planes = [ptr::null_mut(); 4];
        let mut padded_strides = [0 as c_int; 4];
        for i in 0..3 {
            if !dst[i].is_null() {
                let plane = PaddedPlane::new(dst_strides[i] as usize, rows_of(i));
                dst_planes[i] = plane.start;
                padded_strides[i] = plane.stride as c_int;
                scratch[i] = Some(plane);
            }
        }
        let rows = ffi::sws_scale(
            sws.0,
            source.data.as_ptr() as *const *const u8,
            source.linesize.as_ptr(),
            0,
            source.height as c_int,
            dst_planes.as_ptr(),
            padded_strides.as_ptr(),
        );
        if rows <= 0 {
            return Err(MediaError::Internal("scaling produced no rows".into()));
        }
        for (i, plane) in scratch.iter().enumerate() {
            if let Some(plane) = plane {
                let row_bytes = dst_strides[i] as usize;
                for row in 0..plane.rows {
                    ptr::copy_nonoverlapping(
                        plane.start.add(row * plane.stride),
                        dst[i].add(row * row_bytes),
                        row_bytes,
                    );
                }
            }
        }
    }
    Ok(())
}

/// A scratch plane for swscale to write into: rows of `stride` bytes
/// (the row rounded up to 64, plus 64), two spare rows, 64-byte aligned.
struct PaddedPlane {
    _buf: Vec<u8>,
    start: *mut u8,
    stride: usize,
    rows: usize,
}

impl PaddedPlane {
    fn new(row_bytes: usize, rows: usize) -> PaddedPlane {
        let stride = row_bytes.next_multiple_of(64) + 64;
        let mut buf = vec![0u8; stride * (rows + 2) + 64];
        let offset = buf.as_mut_ptr().align_offset(64);
        // SAFETY: `offset` < 64, inside the buffer's 64 spare bytes.
        let start = unsafe { buf.as_mut_ptr().add(offset) };
        PaddedPlane {
            _buf: buf,
            start,
            stride,
            rows,
        }
    }
}
