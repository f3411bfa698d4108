//! From a decoded frame to the picture that gets encoded: crop, scale and
//! convert in one swscale pass, tone-map HDR, then mirror/rotate and
//! letterbox.
//!
//! Two forms come out. Lossy WebP stores BT.601 limited-range 4:2:0 YUV, so
//! an SDR frame bound for WebP stays YUV: swscale only resamples the planes,
//! and a frame with another matrix (BT.709, most HD video) is re-matrixed on
//! the small output planes. Everything else (JPEG, PNG, HDR, full-range or
//! letterboxed frames) becomes RGB, honouring the frame's matrix and range.
//! The pixel work itself (crop, swscale) is [`super::ffi::swscale`]'s.
//!
//! The crop is the plan's, wherever it sits: centred for `fit=crop`, or
//! placed on the subject by [`super::smartcrop`] for `fit=smart`. Both
//! forms cut it from the stored frame the same way, before turning.

#![deny(unsafe_code)]

use std::os::raw::c_int;

use ffmpeg_next::ffi::{AVColorRange, AVColorSpace};
use ffmpeg_next::format::Pixel;

use super::ffi::swscale::{
    self, SourceColour, SWS_CS_BT2020, SWS_CS_FCC, SWS_CS_ITU601, SWS_CS_ITU709, SWS_CS_SMPTE240M,
};
use super::geometry::{Orientation, Plan};
use super::stream::DecodedFrame;
use super::tonemap::{self, Transfer};
use super::{Format, MediaError};

// The pictures `prepare` makes. They live in `pixels`, below the encoders;
// bench/pipeline.rs names them here, where they were first.
pub use super::pixels::{Picture, RgbImage, YuvImage};

/// Produces the final picture described by `plan`, in the form `format`'s
/// encoder takes. The decoded frame is left as it is (it may be shared by
/// renders of other sizes).
pub fn prepare(decoded: &DecodedFrame, plan: &Plan, format: Format) -> Result<Picture, MediaError> {
    // Letterboxing stays RGB: with an odd size or offset, a chroma sample
    // would straddle the picture and the black bars.
    // AVIF takes the same planes as WebP.
    if matches!(format, Format::Webp | Format::Avif)
        && decoded.transfer == Transfer::Sdr
        && is_yuv(decoded)
        && !is_full_range(decoded)
        && !plan.is_letterboxed()
    {
        return Ok(Picture::Yuv420(to_yuv420(decoded, plan)?));
    }
    Ok(Picture::Rgb(to_rgb(decoded, plan)?))
}

/// The final picture as RGB.
fn to_rgb(decoded: &DecodedFrame, plan: &Plan) -> Result<RgbImage, MediaError> {
    let cropped = crop(decoded, plan)?;
    let decoded = cropped.as_ref().unwrap_or(decoded);
    let (w, h) = plan.scaled;
    let scaled = match decoded.transfer {
        Transfer::Sdr => swscale::to_rgb24(&decoded.frame, source_colour(decoded), w, h)?,
        Transfer::Hdr(hdr) => {
            let wide = swscale::to_rgb48(&decoded.frame, source_colour(decoded), w, h)?;
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

/// The final picture as BT.601 limited-range 4:2:0, for an SDR,
/// limited-range YUV frame that is not letterboxed.
fn to_yuv420(decoded: &DecodedFrame, plan: &Plan) -> Result<YuvImage, MediaError> {
    let cropped = crop(decoded, plan)?;
    let decoded = cropped.as_ref().unwrap_or(decoded);
    let (w, h) = plan.scaled;
    let [y, u, v] = swscale::to_yuv420p(&decoded.frame, source_colour(decoded), w, h)?;
    let mut img = YuvImage {
        width: w,
        height: h,
        y,
        u,
        v,
    };
    let matrix = sws_colorspace(decoded);
    if matrix != SWS_CS_ITU601 {
        to_bt601(&mut img, luma_weights(matrix));
    }
    Ok(orient_yuv(img, plan.orientation))
}

/// A new reference to the frame's buffers with the crop applied, or `None`
/// when the plan keeps the whole picture. [`super::alpha`] cuts the alpha
/// plane with it too.
pub(super) fn crop(
    decoded: &DecodedFrame,
    plan: &Plan,
) -> Result<Option<DecodedFrame>, MediaError> {
    let (fw, fh) = (decoded.frame.width(), decoded.frame.height());
    let c = plan.crop;
    if (c.x, c.y, c.width, c.height) == (0, 0, fw, fh) {
        return Ok(None);
    }
    let frame = swscale::crop(
        &decoded.frame,
        c.x as usize,
        c.y as usize,
        (fw - c.x - c.width) as usize,
        (fh - c.y - c.height) as usize,
    )?;
    Ok(Some(DecodedFrame { frame, ..*decoded }))
}

/// How swscale is to read the frame's values.
fn source_colour(decoded: &DecodedFrame) -> SourceColour {
    SourceColour {
        full_range: is_full_range(decoded),
        matrix: sws_colorspace(decoded),
    }
}

/// The YUV matrix of the frame; unspecified falls back as players do (BT.709
/// for HD, BT.601 below).
fn sws_colorspace(decoded: &DecodedFrame) -> c_int {
    use AVColorSpace::*;
    match swscale::colorspace(&decoded.frame) {
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

/// The red and blue luma weights (Kr, Kb) of a swscale colour space.
fn luma_weights(sws_cs: c_int) -> (f64, f64) {
    match sws_cs {
        SWS_CS_ITU709 => (0.2126, 0.0722),
        SWS_CS_FCC => (0.30, 0.11),
        SWS_CS_SMPTE240M => (0.212, 0.087),
        SWS_CS_BT2020 => (0.2627, 0.0593),
        _ => BT601,
    }
}

const BT601: (f64, f64) = (0.299, 0.114);

/// Whether the frame is stored as YUV (or grey), not RGB or a palette: only
/// then does it carry the matrix `sws_colorspace` names.
fn is_yuv(decoded: &DecodedFrame) -> bool {
    swscale::is_yuv(decoded.frame.format())
}

fn is_full_range(decoded: &DecodedFrame) -> bool {
    swscale::color_range(&decoded.frame) == AVColorRange::AVCOL_RANGE_JPEG
        || matches!(
            decoded.frame.format(),
            Pixel::YUVJ420P | Pixel::YUVJ422P | Pixel::YUVJ444P | Pixel::YUVJ440P | Pixel::YUVJ411P
        )
}

/// Fixed-point scale of the re-matrixing coefficients.
const FIX: i32 = 1 << 16;

/// Re-expresses limited-range YUV of luma weights `from` (Kr, Kb) in
/// BT.601's, the matrix WebP decoders assume. The change is linear in
/// (Y, U-128, V-128) and leaves grey alone: luma gains a share of the
/// chroma (taken at each luma sample, interpolated across columns), and
/// chroma is mixed at its own resolution.
fn to_bt601(img: &mut YuvImage, from: (f64, f64)) {
    let m = rematrix(from, BT601);
    let k = |v: f64| (v * FIX as f64).round() as i32;
    // 8-bit units: luma spans 219 levels, chroma 224.
    let (yu, yv) = (k(m[0][0] * 219.0 / 224.0), k(m[0][1] * 219.0 / 224.0));
    let (uu, uv, vu, vv) = (k(m[1][0]), k(m[1][1]), k(m[2][0]), k(m[2][1]));
    let clamp = |v: i32| ((v + FIX / 2) >> 16).clamp(0, 255) as u8;

    let (w, h) = (img.width as usize, img.height as usize);
    let cw = YuvImage::chroma_size(img.width, img.height).0 as usize;
    let mut luma_shift = vec![0i32; cw + 1];
    for (cy, (u_row, v_row)) in img
        .u
        .chunks_exact_mut(cw)
        .zip(img.v.chunks_exact_mut(cw))
        .enumerate()
    {
        for (cx, (u, v)) in u_row.iter_mut().zip(v_row.iter_mut()).enumerate() {
            let (du, dv) = (*u as i32 - 128, *v as i32 - 128);
            luma_shift[cx] = yu * du + yv * dv;
            *u = clamp((128 << 16) + uu * du + uv * dv);
            *v = clamp((128 << 16) + vu * du + vv * dv);
        }
        luma_shift[cw] = luma_shift[cw - 1];
        for row in (2 * cy)..(2 * cy + 2).min(h) {
            let luma = &mut img.y[row * w..(row + 1) * w];
            for (x, y) in luma.iter_mut().enumerate() {
                let c = x / 2;
                // Chroma sits on even columns (MPEG-2 siting); odd columns
                // lie halfway to the next sample.
                let shift = if x % 2 == 0 {
                    luma_shift[c]
                } else {
                    (luma_shift[c] + luma_shift[c + 1]) / 2
                };
                *y = clamp(((*y as i32) << 16) + shift);
            }
        }
    }
}

/// The matrix taking (Pb, Pr) of one luma weighting to (Y, Pb, Pr) of
/// another (Y itself carries over with weight 1): rows Y, Pb, Pr; columns
/// Pb, Pr; all in normalised units (Y in 0..1, Pb/Pr in -0.5..0.5).
fn rematrix(from: (f64, f64), to: (f64, f64)) -> [[f64; 2]; 3] {
    let (kr, kb) = from;
    let kg = 1.0 - kr - kb;
    let (tr, tb) = to;
    let tg = 1.0 - tr - tb;
    // RGB from a unit of Pb or Pr (with Y = 0) under `from`...
    let rgb = |pb: f64, pr: f64| {
        let r = 2.0 * (1.0 - kr) * pr;
        let b = 2.0 * (1.0 - kb) * pb;
        let g = -(kr * r + kb * b) / kg;
        (r, g, b)
    };
    // ...and its Y, Pb, Pr under `to`.
    let yuv = |(r, g, b): (f64, f64, f64)| {
        let y = tr * r + tg * g + tb * b;
        [
            y,
            (b - y) / (2.0 * (1.0 - tb)),
            (r - y) / (2.0 * (1.0 - tr)),
        ]
    };
    let (from_pb, from_pr) = (yuv(rgb(1.0, 0.0)), yuv(rgb(0.0, 1.0)));
    [
        [from_pb[0], from_pr[0]],
        [from_pb[1], from_pr[1]],
        [from_pb[2], from_pr[2]],
    ]
}

/// Mirrors (if asked) then turns clockwise by quarter turns.
pub fn orient(img: RgbImage, o: Orientation) -> RgbImage {
    let (data, width, height) = orient_plane(img.data, img.width, img.height, 3, o);
    RgbImage {
        width,
        height,
        data,
    }
}

/// [`orient`] for each plane of a YUV picture.
fn orient_yuv(img: YuvImage, o: Orientation) -> YuvImage {
    let (cw, ch) = YuvImage::chroma_size(img.width, img.height);
    let (y, width, height) = orient_plane(img.y, img.width, img.height, 1, o);
    let (u, ..) = orient_plane(img.u, cw, ch, 1, o);
    let (v, ..) = orient_plane(img.v, cw, ch, 1, o);
    YuvImage {
        width,
        height,
        y,
        u,
        v,
    }
}

/// Mirrors then turns a `w` x `h` plane of `bpp`-byte pixels; returns it
/// with its new width and height. [`super::alpha`] turns the alpha plane
/// with it.
pub(super) fn orient_plane(
    data: Vec<u8>,
    w: u32,
    h: u32,
    bpp: usize,
    o: Orientation,
) -> (Vec<u8>, u32, u32) {
    if o == Orientation::default() {
        return (data, w, h);
    }
    let (w, h) = (w as usize, h as usize);
    let (ow, oh) = if o.swaps_axes() { (h, w) } else { (w, h) };
    let mut out = vec![0u8; data.len()];
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
            let s = (y * w + sx) * bpp;
            let d = (dy * ow + dx) * bpp;
            out[d..d + bpp].copy_from_slice(&data[s..s + bpp]);
        }
    }
    (out, ow as u32, oh as u32)
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
    fn yuv_planes_turn_together() {
        // A 3x2 picture has 2x1 chroma; turned, 2x3 luma and 1x2 chroma.
        let img = YuvImage {
            width: 3,
            height: 2,
            y: vec![0, 1, 2, 3, 4, 5],
            u: vec![10, 11],
            v: vec![20, 21],
        };
        let turned = orient_yuv(
            img,
            Orientation {
                quarter_turns: 1,
                hflip: false,
            },
        );
        assert_eq!((turned.width, turned.height), (2, 3));
        assert_eq!(turned.y, [3, 0, 4, 1, 5, 2]);
        assert_eq!(YuvImage::chroma_size(2, 3), (1, 2));
        assert_eq!((turned.u, turned.v), (vec![10, 11], vec![20, 21]));
    }

    #[test]
    fn letterbox() {
        let img = place(numbered(2, 1), (2, 3), (0, 1));
        assert_eq!(img.pixel(0, 0), [0, 0, 0]);
        assert_eq!(img.pixel(1, 1), [1, 0, 0]);
        assert_eq!(img.pixel(1, 2), [0, 0, 0]);
    }

    /// Limited-range 8-bit YUV of an RGB colour (0..1) under luma weights.
    fn yuv_of(rgb: [f64; 3], (kr, kb): (f64, f64)) -> [f64; 3] {
        let [r, g, b] = rgb;
        let y = kr * r + (1.0 - kr - kb) * g + kb * b;
        let pb = (b - y) / (2.0 * (1.0 - kb));
        let pr = (r - y) / (2.0 * (1.0 - kr));
        [16.0 + 219.0 * y, 128.0 + 224.0 * pb, 128.0 + 224.0 * pr]
    }

    #[test]
    fn bt709_colours_become_the_same_colours_in_bt601() {
        let bt709 = luma_weights(SWS_CS_ITU709);
        for rgb in [
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
            [0.9, 0.6, 0.1],
            [0.5, 0.5, 0.5],
        ] {
            // A flat 4x2 picture of the colour, in BT.709 values.
            let [y, u, v] = yuv_of(rgb, bt709).map(|c| c.round() as u8);
            let mut img = YuvImage {
                width: 4,
                height: 2,
                y: vec![y; 8],
                u: vec![u; 2],
                v: vec![v; 2],
            };
            to_bt601(&mut img, bt709);
            let want = yuv_of(rgb, BT601);
            let got = [img.y[5], img.u[1], img.v[1]];
            for (g, w) in got.iter().zip(want) {
                // One level for the 8-bit input's own rounding, one for ours.
                assert!(
                    (*g as f64 - w).abs() <= 2.0,
                    "{rgb:?}: got {got:?}, want {want:?}"
                );
            }
            assert!(img.y.iter().all(|&l| l == img.y[0]), "flat stays flat");
        }
    }

    #[test]
    fn bt601_to_bt601_is_the_identity() {
        let m = rematrix(BT601, BT601);
        assert!(m
            .iter()
            .flatten()
            .zip([0.0, 0.0, 1.0, 0.0, 0.0, 1.0])
            .all(|(a, b)| (a - b).abs() < 1e-12));
    }
}
