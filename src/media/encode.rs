//! Encoding the RGB picture: WebP with libwebp (the `webp` crate), JPEG with
//! `jpeg-encoder` (SIMD), PNG with the `image` crate's fast settings.

use bytes::Bytes;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};

use super::picture::RgbImage;
use super::{Format, MediaError};

/// libwebp effort level for thumbnails.
const WEBP_METHOD: i32 = 2;

/// Encodes `img`; `quality` (1-100) applies to the lossy formats.
pub fn encode(img: &RgbImage, format: Format, quality: Option<u8>) -> Result<Bytes, MediaError> {
    let quality = quality.unwrap_or(crate::request::DEFAULT_QUALITY);
    let fail = |e: &dyn std::fmt::Display| {
        MediaError::Internal(format!("{} encoding failed: {e}", format.ext()))
    };
    match format {
        Format::Webp => {
            let mut config = webp::WebPConfig::new().map_err(|_| fail(&"libwebp configuration"))?;
            config.quality = quality as f32;
            // libwebp's effort 0 (fast) to 6 (small); its default 4 spends
            // most of a large thumbnail's time for a few percent of bytes.
            config.method = WEBP_METHOD;
            let encoded = webp::Encoder::from_rgb(&img.data, img.width, img.height)
                .encode_advanced(&config)
                .map_err(|e| fail(&format!("{e:?}")))?;
            Ok(Bytes::copy_from_slice(&encoded))
        }
        Format::Jpeg => {
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
            let mut out = Vec::with_capacity(img.data.len() / 2);
            PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
                .write_image(&img.data, img.width, img.height, ExtendedColorType::Rgb8)
                .map_err(|e| fail(&e))?;
            Ok(Bytes::from(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_has_its_signature() {
        let img = RgbImage::black(17, 9);
        let webp = encode(&img, Format::Webp, Some(80)).unwrap();
        assert_eq!((&webp[..4], &webp[8..12]), (&b"RIFF"[..], &b"WEBP"[..]));
        let jpg = encode(&img, Format::Jpeg, Some(80)).unwrap();
        assert_eq!(&jpg[..3], &[0xFF, 0xD8, 0xFF]);
        let png = encode(&img, Format::Png, None).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
