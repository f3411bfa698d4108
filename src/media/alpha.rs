//! Transparency in thumbnails. A frame whose pixel format carries alpha
//! (WebM VP8/VP9 with alpha, decoded by libvpx as [`super::stream`]
//! chooses; ProRes 4444; PNG and QuickTime Animation in MOV) keeps it in
//! WebP, AVIF and PNG; a JPEG, which has none, shows it composited over
//! the configured background colour.
//!
//! The colour is [`picture::prepare`]'s, untouched: the alpha travels
//! beside it as its own plane, cut, scaled, turned and placed as the colour
//! is, with transparent padding for `fit=pad`. So a frame without alpha
//! takes exactly the path it always did (no RGBA conversion, no extra
//! pass), and a frame with alpha gets the same colour it did before, plus
//! one pass over an 8-bit plane. A frame whose alpha is opaque everywhere
//! is encoded as an opaque picture.
//!
//! Colour and alpha are scaled apart, not premultiplied (as FFmpeg's
//! `scale` filter does): where the video hides dark colour under
//! transparent pixels, a downscaled edge may darken a little.

#![deny(unsafe_code)]

use super::ffi::swscale;
use super::geometry::Plan;
use super::picture;
use super::pixels::{FinalPicture, Picture, RgbImage};
use super::stream::DecodedFrame;
use super::{Format, MediaError};

/// The colour behind a JPEG of a transparent frame when none is
/// configured (`pictures.jpeg_background`'s default, `#ffffff`).
pub const DEFAULT_BACKGROUND: [u8; 3] = [255, 255, 255];

/// The final picture described by `plan` in the form `format`'s encoder
/// takes, with the frame's transparency: an alpha plane for WebP, AVIF and
/// PNG, composited over `background` (RGB) for JPEG. A frame without
/// alpha gets [`picture::prepare`]'s picture alone.
pub fn prepare(
    decoded: &DecodedFrame,
    plan: &Plan,
    format: Format,
    background: [u8; 3],
) -> Result<FinalPicture, MediaError> {
    let picture = picture::prepare(decoded, plan, format)?;
    if !decoded.has_alpha() {
        return Ok(FinalPicture {
            picture,
            alpha: None,
        });
    }
    let alpha = plane(decoded, plan)?;
    if alpha.iter().all(|&a| a == u8::MAX) {
        return Ok(FinalPicture {
            picture,
            alpha: None,
        });
    }
    Ok(match (format, picture) {
        (Format::Jpeg, Picture::Rgb(mut img)) => {
            composite(&mut img, &alpha, background);
            FinalPicture {
                picture: Picture::Rgb(img),
                alpha: None,
            }
        }
        (_, picture) => FinalPicture {
            picture,
            alpha: Some(alpha),
        },
    })
}

/// The frame's alpha as the final picture has it: the plan's crop, scaled
/// to its size with the colour's filter, turned, and on the canvas at the
/// picture's offset, the padding transparent. One byte a pixel of the
/// canvas, packed.
pub fn plane(decoded: &DecodedFrame, plan: &Plan) -> Result<Vec<u8>, MediaError> {
    let cropped = picture::crop(decoded, plan)?;
    let frame = &cropped.as_ref().unwrap_or(decoded).frame;
    let alpha = swscale::alpha(frame)
        .ok_or_else(|| MediaError::Internal("the frame has no alpha channel".into()))?;
    let (sw, sh) = (frame.width(), frame.height());
    let (w, h) = plan.scaled;
    let scaled = if (sw, sh) == (w, h) {
        alpha
    } else {
        swscale::scale_plane(&alpha, sw, sh, w, h)?
    };
    let (turned, tw, th) = picture::orient_plane(scaled, w, h, 1, plan.orientation);
    Ok(place(turned, (tw, th), plan.canvas, plan.offset))
}

/// Puts a `size` plane on a transparent canvas at `offset` (no copy when
/// it fills the canvas).
fn place(plane: Vec<u8>, size: (u32, u32), canvas: (u32, u32), offset: (u32, u32)) -> Vec<u8> {
    if size == canvas {
        return plane;
    }
    let mut out = vec![0u8; canvas.0 as usize * canvas.1 as usize];
    let row = size.0 as usize;
    for (y, src) in plane.chunks_exact(row).enumerate() {
        let d = (offset.1 as usize + y) * canvas.0 as usize + offset.0 as usize;
        out[d..d + row].copy_from_slice(src);
    }
    out
}

/// Lays `img` over `background` by `alpha` (straight opacity, one byte a
/// pixel), as a browser shows a transparent picture on that colour: each
/// channel `c * a + bg * (1 - a)`, rounded.
pub fn composite(img: &mut RgbImage, alpha: &[u8], background: [u8; 3]) {
    for (px, &a) in img.data.chunks_exact_mut(3).zip(alpha) {
        let a = u32::from(a);
        for (c, bg) in px.iter_mut().zip(background) {
            *c = ((u32::from(*c) * a + u32::from(bg) * (255 - a) + 127) / 255) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use ffmpeg_next::format::Pixel;
    use ffmpeg_next::frame;

    use super::*;
    use crate::media::geometry::{self, Orientation};
    use crate::media::stream::painted_frame;
    use crate::media::tonemap::Transfer;
    use crate::media::Fit;

    /// A `format` frame (8-bit packed RGBA, or `yuva` planes) whose
    /// colour and opacity at each pixel come from `paint`; YUV planes are
    /// a flat mid grey.
    fn frame_with_alpha(
        format: Pixel,
        width: u32,
        height: u32,
        paint: impl Fn(u32, u32) -> ([u8; 3], u8),
    ) -> DecodedFrame {
        let mut f = frame::Video::new(format, width, height);
        match format {
            Pixel::RGBA => {
                let stride = f.stride(0);
                let data = f.data_mut(0);
                for y in 0..height {
                    for x in 0..width {
                        let ([r, g, b], a) = paint(x, y);
                        let i = y as usize * stride + x as usize * 4;
                        data[i..i + 4].copy_from_slice(&[r, g, b, a]);
                    }
                }
            }
            Pixel::YUVA420P | Pixel::YUVA444P12LE => {
                let wide = format == Pixel::YUVA444P12LE;
                for plane in 0..4 {
                    let stride = f.stride(plane);
                    let (pw, ph) = if plane == 1 || plane == 2 {
                        (f.plane_width(plane), f.plane_height(plane))
                    } else {
                        (width, height)
                    };
                    let data = f.data_mut(plane);
                    for y in 0..ph as usize {
                        for x in 0..pw as usize {
                            let v: u16 = match (plane, wide) {
                                (3, false) => u16::from(paint(x as u32, y as u32).1),
                                (3, true) => {
                                    (u32::from(paint(x as u32, y as u32).1) * 4095 / 255) as u16
                                }
                                (_, false) => 128,
                                (_, true) => 2048,
                            };
                            if wide {
                                let i = y * stride + x * 2;
                                data[i..i + 2].copy_from_slice(&v.to_le_bytes());
                            } else {
                                data[y * stride + x] = v as u8;
                            }
                        }
                    }
                }
            }
            _ => unreachable!("{format:?}"),
        }
        DecodedFrame {
            frame: f,
            sar: (1, 1),
            orientation: Orientation::default(),
            transfer: Transfer::Sdr,
            time_secs: 0.0,
            packets_decoded: 1,
        }
    }

    /// Left half transparent, right half opaque; red all over.
    fn halves(format: Pixel) -> DecodedFrame {
        frame_with_alpha(format, 64, 32, |x, _| {
            ([220, 30, 30], if x < 32 { 0 } else { 255 })
        })
    }

    fn full_plan(frame: &DecodedFrame) -> Plan {
        geometry::plan(&frame.shape(), None, None, None)
    }

    #[test]
    fn a_frame_without_alpha_is_prepared_as_before() {
        let frame = painted_frame(48, 32, Orientation::default(), |x, y| {
            [(x * 5) as u8, (y * 7) as u8, 90]
        });
        assert!(!frame.has_alpha());
        let plan = geometry::plan(&frame.shape(), Some(40), Some(40), Some(Fit::Pad));
        for format in [Format::Webp, Format::Avif, Format::Jpeg, Format::Png] {
            let got = prepare(&frame, &plan, format, [0, 255, 0]).unwrap();
            let want = picture::prepare(&frame, &plan, format).unwrap();
            assert_eq!(got.picture, want, "{format:?}");
            assert_eq!(got.alpha, None, "{format:?}");
        }
    }

    #[test]
    fn which_pixel_formats_have_alpha() {
        for format in [
            Pixel::RGBA,
            Pixel::ARGB,
            Pixel::YA8,
            Pixel::YUVA420P,
            Pixel::YUVA444P12LE,
            Pixel::GBRAP,
            Pixel::RGBA64LE,
        ] {
            assert!(swscale::has_alpha(format), "{format:?}");
        }
        // Palettes (alpha in FFmpeg's flags, opaque in practice) and
        // every format without alpha stay on the opaque path.
        for format in [
            Pixel::PAL8,
            Pixel::YUV420P,
            Pixel::RGB24,
            Pixel::YUV444P12LE,
        ] {
            assert!(!swscale::has_alpha(format), "{format:?}");
        }
    }

    #[test]
    fn alpha_is_read_from_packed_and_planar_formats() {
        for format in [Pixel::RGBA, Pixel::YUVA420P, Pixel::YUVA444P12LE] {
            let frame = frame_with_alpha(format, 20, 6, |x, y| ([0; 3], (x * 12 + y) as u8));
            assert!(frame.has_alpha(), "{format:?}");
            let alpha = plane(&frame, &full_plan(&frame)).unwrap();
            let want: Vec<u8> = (0..6u32)
                .flat_map(|y| (0..20u32).map(move |x| (x * 12 + y) as u8))
                .collect();
            // 12 bits rounded to 8 come back within one level.
            let off = alpha
                .iter()
                .zip(&want)
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            assert!(off <= 1, "{format:?}: {off}");
            if format != Pixel::YUVA444P12LE {
                assert_eq!(alpha, want, "{format:?}");
            }
        }
    }

    #[test]
    fn png_webp_and_avif_get_the_alpha_plane() {
        for format in [Pixel::RGBA, Pixel::YUVA420P] {
            let frame = halves(format);
            for out in [Format::Png, Format::Webp, Format::Avif] {
                let got = prepare(&frame, &full_plan(&frame), out, [0, 0, 255]).unwrap();
                let alpha = got.alpha.expect("alpha kept");
                assert_eq!(alpha.len(), 64 * 32);
                assert!(alpha
                    .chunks(64)
                    .all(|row| row[..32].iter().all(|&a| a == 0)
                        && row[32..].iter().all(|&a| a == 255)));
            }
        }
    }

    #[test]
    fn a_jpeg_shows_the_background_where_the_frame_is_transparent() {
        let frame = halves(Pixel::RGBA);
        let got = prepare(&frame, &full_plan(&frame), Format::Jpeg, [10, 200, 40]).unwrap();
        assert_eq!(got.alpha, None);
        let Picture::Rgb(img) = got.picture else {
            panic!("JPEG takes RGB");
        };
        assert_eq!(img.pixel(5, 5), [10, 200, 40]);
        let red = img.pixel(50, 5);
        assert!(red[0] > 200 && red[1] < 50 && red[2] < 50, "{red:?}");
    }

    #[test]
    fn composite_mixes_by_opacity() {
        let mut img = RgbImage {
            width: 3,
            height: 1,
            data: vec![200, 100, 0, 200, 100, 0, 200, 100, 0],
        };
        composite(&mut img, &[0, 128, 255], [0, 0, 255]);
        assert_eq!(img.data, [0, 0, 255, 100, 50, 127, 200, 100, 0]);
    }

    #[test]
    fn an_opaque_frame_with_an_alpha_channel_is_encoded_opaque() {
        let frame = frame_with_alpha(Pixel::RGBA, 16, 8, |x, _| ([x as u8 * 9, 0, 0], 255));
        let got = prepare(&frame, &full_plan(&frame), Format::Png, [0; 3]).unwrap();
        assert_eq!(got.alpha, None);
    }

    #[test]
    fn padding_is_transparent_and_alpha_turns_with_the_picture() {
        // 64x32, transparent left half, in a 64x64 box: bars above and
        // below (16 rows each) are transparent as well.
        let frame = halves(Pixel::RGBA);
        let plan = geometry::plan(&frame.shape(), Some(64), Some(64), Some(Fit::Pad));
        assert_eq!((plan.canvas, plan.offset), ((64, 64), (0, 16)));
        let alpha = plane(&frame, &plan).unwrap();
        let at = |x: usize, y: usize| alpha[y * 64 + x];
        assert_eq!((at(60, 5), at(60, 60)), (0, 0), "bars");
        assert_eq!((at(5, 30), at(60, 30)), (0, 255), "picture");

        // A quarter turn clockwise: the transparent left half goes on top.
        let mut turned = halves(Pixel::RGBA);
        turned.orientation = Orientation {
            quarter_turns: 1,
            hflip: false,
        };
        let plan = full_plan(&turned);
        assert_eq!(plan.canvas, (32, 64));
        let alpha = plane(&turned, &plan).unwrap();
        assert_eq!((alpha[5 * 32 + 16], alpha[60 * 32 + 16]), (0, 255));
    }

    #[test]
    fn scaled_alpha_keeps_its_extremes() {
        // Halved: flat areas stay exactly 0 and 255 (no range squeeze),
        // the edge lands between.
        let frame = halves(Pixel::YUVA420P);
        let plan = geometry::plan(&frame.shape(), Some(32), None, None);
        let alpha = plane(&frame, &plan).unwrap();
        assert_eq!(alpha.len(), 32 * 16);
        for row in alpha.chunks(32) {
            assert!(row[..14].iter().all(|&a| a == 0), "{row:?}");
            assert!(row[18..].iter().all(|&a| a == 255), "{row:?}");
        }
    }
}
