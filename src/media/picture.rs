//! From a decoded frame to the RGB picture that gets encoded: crop, scale
//! and convert in one swscale pass (honouring the colour matrix and range),
//! tone-map HDR, then mirror/rotate and letterbox.

use std::os::raw::c_int;
use std::ptr;

use ffmpeg_next::ffi;
use ffmpeg_next::format::Pixel;

use super::decode::DecodedFrame;
use super::geometry::{Orientation, Plan};
use super::tonemap::{self, Transfer};
use super::MediaError;

/// A packed 8-bit RGB picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbImage {
    pub fn black(width: u32, height: u32) -> RgbImage {
        RgbImage {
            width,
            height,
            data: vec![0; width as usize * height as usize * 3],
        }
    }

    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}

/// Produces the final picture described by `plan`. The decoded frame is
/// left as it is (it may be shared by renders of other sizes).
pub fn to_rgb(decoded: &DecodedFrame, plan: &Plan) -> Result<RgbImage, MediaError> {
    let cropped = crop(decoded, plan)?;
    let decoded = cropped.as_ref().unwrap_or(decoded);
    let (w, h) = plan.scaled;
    let scaled = match decoded.transfer {
        Transfer::Sdr => {
            let mut out = vec![0u8; w as usize * h as usize * 3];
            scale(
                decoded,
                Pixel::RGB24,
                w,
                h,
                out.as_mut_ptr(),
                w as usize * 3,
            )?;
            out
        }
        Transfer::Hdr(hdr) => {
            let mut wide = vec![0u16; w as usize * h as usize * 3];
            scale(
                decoded,
                Pixel::RGB48LE,
                w,
                h,
                wide.as_mut_ptr() as *mut u8,
                w as usize * 6,
            )?;
            if cfg!(target_endian = "big") {
                wide.iter_mut().for_each(|v| *v = u16::from_le(*v));
            }
            let mut out = vec![0u8; wide.len()];
            tonemap::to_sdr(&wide, hdr, &mut out);
            out
        }
    };
    let oriented = orient(
        RgbImage {
            width: w,
            height: h,
            data: scaled,
        },
        plan.orientation,
    );
    Ok(place(oriented, plan.canvas, plan.offset))
}

/// A new reference to the frame's buffers with the crop applied, or `None`
/// when the plan keeps the whole picture.
fn crop(decoded: &DecodedFrame, plan: &Plan) -> Result<Option<DecodedFrame>, MediaError> {
    let (fw, fh) = (decoded.frame.width(), decoded.frame.height());
    let c = plan.crop;
    if (c.x, c.y, c.width, c.height) == (0, 0, fw, fh) {
        return Ok(None);
    }
    // SAFETY: av_frame_clone makes a new frame referencing the same
    // (refcounted) buffers; cropping moves only the new frame's pointers.
    unsafe {
        let f = ffi::av_frame_clone(decoded.frame.as_ptr());
        if f.is_null() {
            return Err(MediaError::Internal("out of memory cloning a frame".into()));
        }
        let frame = ffmpeg_next::frame::Video::wrap(f);
        (*f).crop_left = c.x as usize;
        (*f).crop_top = c.y as usize;
        (*f).crop_right = (fw - c.x - c.width) as usize;
        (*f).crop_bottom = (fh - c.y - c.height) as usize;
        let ret = ffi::av_frame_apply_cropping(f, ffi::AV_FRAME_CROP_UNALIGNED as c_int);
        if ret < 0 {
            return Err(MediaError::Internal(format!(
                "cropping failed ({})",
                ffmpeg_next::Error::from(ret)
            )));
        }
        Ok(Some(DecodedFrame { frame, ..*decoded }))
    }
}

/// swscale colour-space constants (libswscale/swscale.h).
const SWS_CS_ITU709: c_int = 1;
const SWS_CS_FCC: c_int = 4;
const SWS_CS_ITU601: c_int = 5;
const SWS_CS_SMPTE240M: c_int = 7;
const SWS_CS_BT2020: c_int = 9;

/// The YUV matrix of the frame; unspecified falls back as players do (BT.709
/// for HD, BT.601 below).
fn sws_colorspace(decoded: &DecodedFrame) -> c_int {
    use ffi::AVColorSpace::*;
    // SAFETY: reading a plain field.
    let space = unsafe { (*decoded.frame.as_ptr()).colorspace };
    match space {
        AVCOL_SPC_BT709 => SWS_CS_ITU709,
        AVCOL_SPC_BT2020_NCL | AVCOL_SPC_BT2020_CL => SWS_CS_BT2020,
        AVCOL_SPC_SMPTE240M => SWS_CS_SMPTE240M,
        AVCOL_SPC_FCC => SWS_CS_FCC,
        AVCOL_SPC_BT470BG | AVCOL_SPC_SMPTE170M => SWS_CS_ITU601,
        _ if decoded.transfer != Transfer::Sdr => SWS_CS_BT2020,
        _ if decoded.frame.height() >= 720 => SWS_CS_ITU709,
        _ => SWS_CS_ITU601,
    }
}

fn is_full_range(decoded: &DecodedFrame) -> bool {
    // SAFETY: reading plain fields.
    let range = unsafe { (*decoded.frame.as_ptr()).color_range };
    range == ffi::AVColorRange::AVCOL_RANGE_JPEG
        || matches!(
            decoded.frame.format(),
            Pixel::YUVJ420P | Pixel::YUVJ422P | Pixel::YUVJ444P | Pixel::YUVJ440P | Pixel::YUVJ411P
        )
}

struct Sws(*mut ffi::SwsContext);

impl Drop for Sws {
    fn drop(&mut self) {
        // SAFETY: created by sws_getContext, freed once.
        unsafe { ffi::sws_freeContext(self.0) }
    }
}

/// Scales and converts the (cropped) frame into `dst`, `dst_stride` bytes a row.
fn scale(
    decoded: &DecodedFrame,
    dst_format: Pixel,
    w: u32,
    h: u32,
    dst: *mut u8,
    dst_stride: usize,
) -> Result<(), MediaError> {
    let frame = &decoded.frame;
    let src_format: ffi::AVPixelFormat = frame.format().into();
    // SAFETY: sizes and formats are valid; `dst` holds `h` rows of
    // `dst_stride` bytes, as the callers allocate.
    unsafe {
        let ctx = ffi::sws_getContext(
            frame.width() as c_int,
            frame.height() as c_int,
            src_format,
            w as c_int,
            h as c_int,
            dst_format.into(),
            (ffi::SWS_BICUBIC | ffi::SWS_ACCURATE_RND | ffi::SWS_FULL_CHR_H_INT) as c_int,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null(),
        );
        if ctx.is_null() {
            return Err(MediaError::Unreadable(format!(
                "cannot convert pixel format {:?}",
                frame.format()
            )));
        }
        let sws = Sws(ctx);
        let src_range = is_full_range(decoded) as c_int;
        let coefficients = ffi::sws_getCoefficients(sws_colorspace(decoded));
        // Fails harmlessly (returns -1) for RGB sources, which have no matrix.
        ffi::sws_setColorspaceDetails(
            sws.0,
            coefficients,
            src_range,
            ffi::sws_getCoefficients(SWS_CS_ITU709),
            1,
            0,
            1 << 16,
            1 << 16,
        );
        let raw = frame.as_ptr();
        let dst_planes = [dst, ptr::null_mut(), ptr::null_mut(), ptr::null_mut()];
        let dst_strides = [dst_stride as c_int, 0, 0, 0];
        let rows = ffi::sws_scale(
            sws.0,
            (*raw).data.as_ptr() as *const *const u8,
            (*raw).linesize.as_ptr(),
            0,
            frame.height() as c_int,
            dst_planes.as_ptr(),
            dst_strides.as_ptr(),
        );
        if rows <= 0 {
            return Err(MediaError::Internal("scaling produced no rows".into()));
        }
    }
    Ok(())
}

/// Mirrors (if asked) then turns clockwise by quarter turns.
pub fn orient(img: RgbImage, o: Orientation) -> RgbImage {
    if o == Orientation::default() {
        return img;
    }
    let (w, h) = (img.width as usize, img.height as usize);
    let (ow, oh) = if o.swaps_axes() { (h, w) } else { (w, h) };
    let mut out = vec![0u8; img.data.len()];
    for y in 0..h {
        for x in 0..w {
            let sx = if o.hflip { w - 1 - x } else { x };
            // Where stored pixel (x, y) of the mirrored picture lands.
            let (dx, dy) = match o.quarter_turns % 4 {
                0 => (x, y),
                1 => (h - 1 - y, x),
                2 => (w - 1 - x, h - 1 - y),
                _ => (y, w - 1 - x),
            };
            let s = (y * w + sx) * 3;
            let d = (dy * ow + dx) * 3;
            out[d..d + 3].copy_from_slice(&img.data[s..s + 3]);
        }
    }
    RgbImage {
        width: ow as u32,
        height: oh as u32,
        data: out,
    }
}

/// Puts `img` on a black canvas at `offset` (no-op when it fills the canvas).
fn place(img: RgbImage, canvas: (u32, u32), offset: (u32, u32)) -> RgbImage {
    if (img.width, img.height) == canvas {
        return img;
    }
    let mut out = RgbImage::black(canvas.0, canvas.1);
    let row = img.width as usize * 3;
    for y in 0..img.height as usize {
        let d = ((offset.1 as usize + y) * canvas.0 as usize + offset.0 as usize) * 3;
        out.data[d..d + row].copy_from_slice(&img.data[y * row..(y + 1) * row]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(w: u32, h: u32) -> RgbImage {
        let data = (0..w * h).flat_map(|i| [i as u8, 0, 0]).collect();
        RgbImage {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn quarter_turn_clockwise() {
        // 0 1 2        3 0
        // 3 4 5   ->   4 1
        //              5 2
        let img = orient(
            numbered(3, 2),
            Orientation {
                quarter_turns: 1,
                hflip: false,
            },
        );
        assert_eq!((img.width, img.height), (2, 3));
        let firsts: Vec<u8> = img.data.chunks(3).map(|p| p[0]).collect();
        assert_eq!(firsts, [3, 0, 4, 1, 5, 2]);
        let back = orient(
            img,
            Orientation {
                quarter_turns: 3,
                hflip: false,
            },
        );
        assert_eq!(back, numbered(3, 2));
    }

    #[test]
    fn mirror_and_half_turn() {
        let img = orient(
            numbered(3, 1),
            Orientation {
                quarter_turns: 0,
                hflip: true,
            },
        );
        assert_eq!(
            img.data.chunks(3).map(|p| p[0]).collect::<Vec<_>>(),
            [2, 1, 0]
        );
        let img = orient(
            numbered(3, 2),
            Orientation {
                quarter_turns: 2,
                hflip: false,
            },
        );
        assert_eq!(
            img.data.chunks(3).map(|p| p[0]).collect::<Vec<_>>(),
            [5, 4, 3, 2, 1, 0]
        );
    }

    #[test]
    fn letterbox() {
        let img = place(numbered(2, 1), (2, 3), (0, 1));
        assert_eq!(img.pixel(0, 0), [0, 0, 0]);
        assert_eq!(img.pixel(1, 1), [1, 0, 0]);
        assert_eq!(img.pixel(1, 2), [0, 0, 0]);
    }
}
