//! Encoding the final picture: WebP with libwebp (`libwebp-sys`), from YUV
//! planes as they are or from RGB; JPEG with `jpeg-encoder` (SIMD); PNG with
//! the `image` crate's fast settings.

use bytes::Bytes;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};

use super::picture::{Picture, RgbImage, YuvImage};
use super::{Format, MediaError};

/// libwebp effort level for thumbnails.
const WEBP_METHOD: i32 = 2;

/// Encodes `picture`; `quality` (1-100) applies to the lossy formats. The
/// picture is taken because libwebp may filter its planes in place.
pub fn encode(picture: Picture, format: Format, quality: Option<u8>) -> Result<Bytes, MediaError> {
    let quality = quality.unwrap_or(crate::request::DEFAULT_QUALITY);
    let fail = |e: &dyn std::fmt::Display| {
        MediaError::Internal(format!("{} encoding failed: {e}", format.ext()))
    };
    let rgb = |picture: Picture| match picture {
        Picture::Rgb(img) => Ok(img),
        Picture::Yuv420(_) => Err(fail(&"the picture was prepared as YUV")),
    };
    match format {
        Format::Webp => webp::encode(picture, quality).map_err(|e| fail(&e)),
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

/// Lossy WebP through libwebp's advanced API: YUV planes are handed over
/// as they are (no conversion), RGB is imported straight to YUV.
mod webp {
    use std::os::raw::{c_int, c_void};

    use bytes::Bytes;
    use libwebp_sys as sys;

    use super::{Picture, RgbImage, YuvImage, WEBP_METHOD};

    /// A picture and the output buffer, freed on every path out.
    struct Job {
        picture: sys::WebPPicture,
        writer: sys::WebPMemoryWriter,
    }

    impl Drop for Job {
        fn drop(&mut self) {
            // SAFETY: both were initialised by libwebp; freeing releases only
            // what libwebp allocated (never the caller's planes).
            unsafe {
                sys::WebPPictureFree(&mut self.picture);
                sys::WebPMemoryWriterClear(&mut self.writer);
            }
        }
    }

    pub fn encode(mut picture: Picture, quality: u8) -> Result<Bytes, String> {
        let mut config = sys::WebPConfig::new().map_err(|_| "libwebp configuration")?;
        config.quality = quality as f32;
        // libwebp's effort 0 (fast) to 6 (small); its default 4 spends most
        // of a large thumbnail's time for a few percent of bytes.
        config.method = WEBP_METHOD;
        let dims = |w: u32, h: u32| match (c_int::try_from(w), c_int::try_from(h)) {
            (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
            _ => Err(format!("a {w}x{h} picture cannot be encoded")),
        };
        let mut job = Job {
            picture: sys::WebPPicture::new().map_err(|_| "libwebp picture")?,
            // SAFETY: a plain C struct that WebPMemoryWriterInit fills in.
            writer: unsafe { std::mem::zeroed() },
        };
        // SAFETY: initialises the writer in place.
        unsafe { sys::WebPMemoryWriterInit(&mut job.writer) };
        let p = &mut job.picture;
        p.use_argb = 0;
        match &mut picture {
            Picture::Yuv420(img) => {
                let (w, h) = dims(img.width, img.height)?;
                let (cw, _) = YuvImage::chroma_size(img.width, img.height);
                p.width = w;
                p.height = h;
                p.colorspace = sys::WebPEncCSP::WEBP_YUV420;
                p.y = img.y.as_mut_ptr();
                p.u = img.u.as_mut_ptr();
                p.v = img.v.as_mut_ptr();
                p.y_stride = w;
                p.uv_stride = cw as c_int;
            }
            Picture::Rgb(RgbImage {
                width,
                height,
                data,
            }) => {
                let (w, h) = dims(*width, *height)?;
                if data.len() < w as usize * h as usize * 3 {
                    return Err("the RGB buffer is smaller than its picture".into());
                }
                p.width = w;
                p.height = h;
                // SAFETY: `data` holds `h` rows of `3 w` bytes (checked);
                // the picture allocates and fills its own YUV planes.
                if unsafe { sys::WebPPictureImportRGB(p, data.as_ptr(), w * 3) } == 0 {
                    return Err("out of memory importing the picture".into());
                }
            }
        }
        p.writer = Some(sys::WebPMemoryWrite);
        p.custom_ptr = &mut job.writer as *mut sys::WebPMemoryWriter as *mut c_void;
        // SAFETY: the picture's planes (`picture`'s, or its own) and the
        // writer outlive this call; libwebp may write to the planes.
        let ok = unsafe { sys::WebPEncode(&config, &mut job.picture) };
        if ok == 0 {
            return Err(format!("{:?}", job.picture.error_code));
        }
        // SAFETY: the writer holds `size` bytes at `mem` after a success.
        let out = unsafe { std::slice::from_raw_parts(job.writer.mem, job.writer.size) };
        Ok(Bytes::copy_from_slice(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn yuv_pictures_encode_to_their_colour() {
        // An odd-sized flat picture: BT.601 limited YUV of RGB (200, 80, 40).
        let (w, h) = (17u32, 9u32);
        let (cw, ch) = YuvImage::chroma_size(w, h);
        let img = Picture::Yuv420(YuvImage {
            width: w,
            height: h,
            y: vec![112; (w * h) as usize],
            u: vec![93; (cw * ch) as usize],
            v: vec![184; (cw * ch) as usize],
        });
        let webp = encode(img, Format::Webp, Some(90)).unwrap();
        let decoded = image::load_from_memory(&webp).unwrap().to_rgb8();
        assert_eq!(decoded.dimensions(), (w, h));
        let [r, g, b] = decoded.get_pixel(8, 4).0;
        for (got, want) in [(r, 200), (g, 80), (b, 40)] {
            assert!(
                (got as i32 - want).abs() <= 6,
                "got {:?}",
                decoded.get_pixel(8, 4)
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
