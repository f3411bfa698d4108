//! Encoding the final picture: WebP with libwebp (`libwebp-sys`), from YUV
//! planes as they are or from RGB; AVIF with the system's libavif and its
//! libaom encoder, the same way; JPEG with `jpeg-encoder` (SIMD); PNG with
//! the `image` crate's fast settings. A picture with transparency keeps it
//! in WebP, AVIF (an alpha plane beside the colour) and PNG (RGBA). The
//! calls into libwebp and libavif are [`super::ffi::webp`]'s and
//! [`super::ffi::avif`]'s; the settings and the choice of encoder are here.

#![deny(unsafe_code)]

use bytes::Bytes;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};

use super::ffi::{avif, webp};
use super::pixels::{self, FinalPicture, Picture};
use super::{Format, MediaError};

/// libwebp effort level for thumbnails (and animated previews): 0 (fast)
/// to 6 (small); its default 4 spends most of a large thumbnail's time for
/// a few percent of bytes.
pub(super) const WEBP_METHOD: i32 = 2;

/// libavif's speed (0 slowest - 10) for libaom. 9 is libaom's fastest
/// all-intra preset (libavif clamps 10 to it): 1.5-1.8x WebP's encode time
/// at 320 wide, 1.0-1.2x at 1280; 8 costs 6.5x at 320 for no fewer bytes
/// (bench/RESULTS.md, "AVIF against WebP").
const AVIF_SPEED: i32 = 9;

/// thumbd's quality (1-100) to the AV1 quantizer (0 best - 63 worst): the
/// quantizer at which AVIF's PSNR matched WebP's at that quality, on a
/// detailed and a flat picture at 320 and 1280 wide; linear in between.
const AVIF_QUANTIZERS: [(u8, u8); 12] = [
    (1, 49),
    (10, 42),
    (20, 38),
    (30, 35),
    (40, 32),
    (50, 30),
    (60, 28),
    (70, 26),
    (80, 21),
    (90, 11),
    (95, 6),
    (100, 2),
];

/// Encodes `picture`; `quality` (1-100) applies to the lossy formats. The
/// picture is taken because libwebp may filter its planes in place.
pub fn encode(picture: Picture, format: Format, quality: Option<u8>) -> Result<Bytes, MediaError> {
    let quality = quality.unwrap_or(crate::domain::DEFAULT_QUALITY);
    let fail = |e: &dyn std::fmt::Display| {
        MediaError::Internal(format!("{} encoding failed: {e}", format.ext()))
    };
    let rgb = |picture: Picture| match picture {
        Picture::Rgb(img) => Ok(img),
        Picture::Yuv420(_) => Err(fail(&"the picture was prepared as YUV")),
    };
    match format {
        Format::Webp => webp::encode(picture, None, quality, WEBP_METHOD).map_err(|e| fail(&e)),
        Format::Avif => avif(&picture, quality),
        Format::Jpeg => {
            let img = rgb(picture)?;
            let (w, h) = match (u16::try_from(img.width), u16::try_from(img.height)) {
                (Ok(w), Ok(h)) => (w, h),
                _ => return Err(fail(&"the picture is larger than JPEG allows")),
            };
            let mut out = Vec::with_capacity(img.data.len() / 8);
            jpeg_encoder::Encoder::new(&mut out, quality)
                .encode(&img.data, w, h, jpeg_encoder::ColorType::Rgb)
                .map_err(|e| fail(&e))?;
            Ok(Bytes::from(out))
        }
        Format::Png => {
            let img = rgb(picture)?;
            let mut out = Vec::with_capacity(img.data.len() / 2);
            PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
                .write_image(&img.data, img.width, img.height, ExtendedColorType::Rgb8)
                .map_err(|e| fail(&e))?;
            Ok(Bytes::from(out))
        }
    }
}

/// Encodes a thumbnail's picture with its transparency: WebP and AVIF
/// carry the alpha plane beside their lossy colour (losslessly), PNG
/// becomes RGBA. Without alpha it is [`encode`], byte for byte. JPEG has
/// no alpha: [`super::alpha`] composites its pictures before they get here.
pub fn encode_final(
    picture: FinalPicture,
    format: Format,
    quality: Option<u8>,
) -> Result<Bytes, MediaError> {
    let FinalPicture { picture, alpha } = picture;
    let Some(alpha) = alpha else {
        return encode(picture, format, quality);
    };
    let quality = quality.unwrap_or(crate::domain::DEFAULT_QUALITY);
    let fail = |e: &dyn std::fmt::Display| {
        MediaError::Internal(format!("{} encoding failed: {e}", format.ext()))
    };
    match (format, picture) {
        (Format::Webp, picture) => {
            webp::encode(picture, Some(alpha), quality, WEBP_METHOD).map_err(|e| fail(&e))
        }
        (Format::Avif, picture) => {
            avif::encode(&picture, Some(&alpha), avif_quantizer(quality), AVIF_SPEED)
                .map_err(|e| fail(&e))
        }
        (Format::Png, Picture::Rgb(img)) => {
            if alpha.len() < img.width as usize * img.height as usize {
                return Err(fail(&"the alpha plane is smaller than its picture"));
            }
            let rgba = pixels::rgba(&img.data, &alpha);
            let mut out = Vec::with_capacity(rgba.len() / 2);
            PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
                .write_image(&rgba, img.width, img.height, ExtendedColorType::Rgba8)
                .map_err(|e| fail(&e))?;
            Ok(Bytes::from(out))
        }
        (Format::Png, Picture::Yuv420(_)) => Err(fail(&"the picture was prepared as YUV")),
        (Format::Jpeg, _) => Err(fail(&"JPEG has no alpha; composite the picture first")),
    }
}

/// Encodes `picture` as AVIF at `quality` (1-100). It takes
/// [`Picture::Yuv420`] as it is (BT.601 limited range, signalled so) under
/// the same conditions as WebP; [`Picture::Rgb`] is converted by libavif
/// (BT.601 full range). Either way the file says sRGB primaries and transfer,
/// as browsers assume for WebP and JPEG, so the three look the same.
pub fn avif(picture: &Picture, quality: u8) -> Result<Bytes, MediaError> {
    avif::encode(picture, None, avif_quantizer(quality), AVIF_SPEED)
        .map_err(|e| MediaError::Internal(format!("avif encoding failed: {e}")))
}

/// The AV1 quantizer for thumbd's `quality` (`AVIF_QUANTIZERS`).
pub fn avif_quantizer(quality: u8) -> u8 {
    let q = quality.clamp(1, 100);
    let i = AVIF_QUANTIZERS.partition_point(|&(at, _)| at < q);
    let (q1, z1) = AVIF_QUANTIZERS[i];
    if q1 == q || i == 0 {
        return z1;
    }
    let (q0, z0) = AVIF_QUANTIZERS[i - 1];
    let t = f64::from(q - q0) / f64::from(q1 - q0);
    (f64::from(z0) + t * (f64::from(z1) - f64::from(z0))).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::pixels::{RgbImage, YuvImage};

    #[test]
    fn each_format_has_its_signature() {
        let img = Picture::Rgb(RgbImage::black(17, 9));
        let webp = encode(img.clone(), Format::Webp, Some(80)).unwrap();
        assert_eq!((&webp[..4], &webp[8..12]), (&b"RIFF"[..], &b"WEBP"[..]));
        let jpg = encode(img.clone(), Format::Jpeg, Some(80)).unwrap();
        assert_eq!(&jpg[..3], &[0xFF, 0xD8, 0xFF]);
        let png = encode(img, Format::Png, None).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }

    /// An odd-sized flat picture: BT.601 limited YUV of RGB (200, 80, 40).
    fn flat_orange_yuv() -> Picture {
        let (w, h) = (17u32, 9u32);
        let (cw, ch) = YuvImage::chroma_size(w, h);
        Picture::Yuv420(YuvImage {
            width: w,
            height: h,
            y: vec![112; (w * h) as usize],
            u: vec![93; (cw * ch) as usize],
            v: vec![184; (cw * ch) as usize],
        })
    }

    #[test]
    fn yuv_pictures_encode_to_their_colour() {
        // An odd-sized flat picture: BT.601 limited YUV of RGB (200, 80, 40).
        let img = flat_orange_yuv();
        let webp = encode(img, Format::Webp, Some(90)).unwrap();
        let decoded = image::load_from_memory(&webp).unwrap().to_rgb8();
        assert_eq!(decoded.dimensions(), (17, 9));
        let [r, g, b] = decoded.get_pixel(8, 4).0;
        for (got, want) in [(r, 200), (g, 80), (b, 40)] {
            assert!(
                (got as i32 - want).abs() <= 6,
                "got {:?}",
                decoded.get_pixel(8, 4)
            );
        }
    }

    fn assert_near(got: [u8; 3], want: [u8; 3], tolerance: i32) {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (*g as i32 - w as i32).abs() <= tolerance,
                "got {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn avif_from_yuv_keeps_its_colour_and_says_bt601_limited() {
        // The flat odd-sized picture of the WebP test: RGB (200, 80, 40).
        let img = flat_orange_yuv();
        let bytes = avif(&img, 80).unwrap();
        assert_eq!(&bytes[4..12], b"ftypavif");
        let decoded = avif::decode(&bytes);
        assert_eq!(decoded.size, (17, 9));
        assert_eq!(
            (decoded.depth, decoded.format),
            (8, avif::sys::PIXEL_FORMAT_YUV420)
        );
        assert!(decoded.limited);
        assert_eq!(decoded.cicp, (1, 13, 6), "BT.709 primaries, sRGB, BT.601");
        for (x, y) in [(0, 0), (8, 4), (16, 8)] {
            assert_near(decoded.rgb.get_pixel(x, y).0, [200, 80, 40], 6);
        }
    }

    #[test]
    fn avif_from_rgb_keeps_its_colours() {
        // Two flat halves, split on a chroma sample boundary.
        let (w, h) = (32u32, 9u32);
        let mut img = RgbImage::black(w, h);
        for (i, px) in img.data.chunks_exact_mut(3).enumerate() {
            let left = (i as u32 % w) < w / 2;
            px.copy_from_slice(if left {
                &[30, 160, 220]
            } else {
                &[240, 200, 20]
            });
        }
        let bytes = avif(&Picture::Rgb(img), 80).unwrap();
        let decoded = avif::decode(&bytes);
        assert_eq!(decoded.size, (w, h));
        assert!(!decoded.limited);
        assert_eq!(decoded.cicp, (1, 13, 6));
        assert_near(decoded.rgb.get_pixel(4, 4).0, [30, 160, 220], 6);
        assert_near(decoded.rgb.get_pixel(27, 4).0, [240, 200, 20], 6);
    }

    #[test]
    fn avif_quality_maps_to_the_quantizer_matched_to_webp() {
        assert_eq!(avif_quantizer(80), 21);
        assert_eq!(avif_quantizer(85), 16);
        assert_eq!((avif_quantizer(0), avif_quantizer(1)), (49, 49));
        assert_eq!((avif_quantizer(100), avif_quantizer(255)), (2, 2));
        let all: Vec<u8> = (1..=100).map(avif_quantizer).collect();
        assert!(all.windows(2).all(|p| p[0] >= p[1]), "{all:?}");
    }

    #[test]
    fn avif_refuses_short_planes() {
        let img = Picture::Yuv420(YuvImage {
            width: 4,
            height: 4,
            y: vec![16; 15],
            u: vec![128; 4],
            v: vec![128; 4],
        });
        assert!(matches!(avif(&img, 80), Err(MediaError::Internal(_))));
    }

    /// A 17x9 opacity ramp: every level from 0 to 255 across and down.
    fn ramp() -> Vec<u8> {
        (0..9u32)
            .flat_map(|y| (0..17u32).map(move |x| ((x * 15 + y * 2).min(255)) as u8))
            .collect()
    }

    fn orange_rgb() -> Picture {
        let mut img = RgbImage::black(17, 9);
        img.data
            .chunks_exact_mut(3)
            .for_each(|px| px.copy_from_slice(&[200, 80, 40]));
        Picture::Rgb(img)
    }

    #[test]
    fn alpha_is_kept_exactly_in_webp_png_and_avif() {
        for picture in [orange_rgb(), flat_orange_yuv()] {
            let alpha = Some(ramp());
            for format in [Format::Webp, Format::Png] {
                if format == Format::Png && matches!(picture, Picture::Yuv420(_)) {
                    continue;
                }
                let final_ = FinalPicture {
                    picture: picture.clone(),
                    alpha: alpha.clone(),
                };
                let bytes = encode_final(final_, format, Some(80)).unwrap();
                let decoded = image::load_from_memory(&bytes).unwrap();
                assert!(decoded.color().has_alpha(), "{format:?}");
                let rgba = decoded.to_rgba8();
                let got: Vec<u8> = rgba.pixels().map(|p| p.0[3]).collect();
                assert_eq!(got, ramp(), "{format:?}");
                // Where it is opaque enough to see, the colour is kept.
                assert_near(
                    {
                        let p = rgba.get_pixel(16, 8).0;
                        [p[0], p[1], p[2]]
                    },
                    [200, 80, 40],
                    6,
                );
            }
            let final_ = FinalPicture {
                picture: picture.clone(),
                alpha: alpha.clone(),
            };
            let bytes = encode_final(final_, Format::Avif, Some(80)).unwrap();
            let decoded = avif::decode(&bytes);
            assert_eq!(decoded.alpha, Some(ramp()), "AVIF alpha is lossless");
            assert_near(decoded.rgb.get_pixel(16, 8).0, [200, 80, 40], 6);
        }
    }

    #[test]
    fn without_alpha_the_final_picture_encodes_as_before() {
        for format in [Format::Webp, Format::Avif, Format::Jpeg, Format::Png] {
            let final_ = FinalPicture {
                picture: orange_rgb(),
                alpha: None,
            };
            assert_eq!(
                encode_final(final_, format, Some(70)).unwrap(),
                encode(orange_rgb(), format, Some(70)).unwrap(),
                "{format:?}"
            );
        }
        let avif = encode_final(
            FinalPicture {
                picture: orange_rgb(),
                alpha: None,
            },
            Format::Avif,
            None,
        )
        .unwrap();
        assert_eq!(avif::decode(&avif).alpha, None);
    }

    #[test]
    fn alpha_planes_that_do_not_fit_are_refused() {
        for format in [Format::Webp, Format::Avif, Format::Png, Format::Jpeg] {
            let final_ = FinalPicture {
                picture: orange_rgb(),
                alpha: Some(vec![0; 10]),
            };
            assert!(
                matches!(
                    encode_final(final_, format, None),
                    Err(MediaError::Internal(_))
                ),
                "{format:?}"
            );
        }
    }

    #[test]
    fn yuv_is_not_taken_for_jpeg() {
        let img = Picture::Yuv420(YuvImage {
            width: 2,
            height: 2,
            y: vec![16; 4],
            u: vec![128],
            v: vec![128],
        });
        assert!(matches!(
            encode(img, Format::Jpeg, None),
            Err(MediaError::Internal(_))
        ));
    }
}
