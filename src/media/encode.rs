//! Encoding the final picture: WebP with libwebp (`libwebp-sys`), from YUV
//! planes as they are or from RGB; AVIF with the system's libavif and its
//! libaom encoder, the same way; JPEG with `jpeg-encoder` (SIMD); PNG with
//! the `image` crate's fast settings.

use bytes::Bytes;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};

use super::picture::{Picture, RgbImage, YuvImage};
use super::{Format, MediaError};

/// libwebp effort level for thumbnails.
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
        Format::Webp => webp::encode(picture, quality).map_err(|e| fail(&e)),
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

/// Encodes `picture` as AVIF at `quality` (1-100). It takes
/// [`Picture::Yuv420`] as it is (BT.601 limited range, signalled so) under
/// the same conditions as WebP; [`Picture::Rgb`] is converted by libavif
/// (BT.601 full range). Either way the file says sRGB primaries and transfer,
/// as browsers assume for WebP and JPEG, so the three look the same.
pub fn avif(picture: &Picture, quality: u8) -> Result<Bytes, MediaError> {
    avif::encode(picture, avif_quantizer(quality))
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

/// AVIF through libavif 0.11 (Debian 12's `libavif15`) with libaom, one
/// thread: the render pool already runs one render per core.
mod avif {
    use std::ffi::CStr;
    use std::os::raw::c_int;

    use bytes::Bytes;

    use super::{Picture, RgbImage, YuvImage, AVIF_SPEED};

    pub(super) mod sys {
        //! The part of libavif 0.11's `avif.h` thumbd uses, written by hand
        //! (offsets checked against the header with a C `offsetof`
        //! program). libavif allocates its image and encoder, so only the
        //! leading fields thumbd touches are declared; such a struct is
        //! only ever reached through libavif's pointer. Layouts change
        //! between libavif series (1.0 reorders `avifEncoder`), so
        //! [`super::encode`] refuses any libavif but 0.11.
        #![allow(dead_code)]

        use std::os::raw::{c_char, c_int};

        pub const RESULT_OK: c_int = 0;
        pub const PIXEL_FORMAT_YUV420: c_int = 3;
        pub const RANGE_LIMITED: c_int = 0;
        pub const RANGE_FULL: c_int = 1;
        pub const CODEC_CHOICE_AOM: c_int = 1;
        pub const RGB_FORMAT_RGB: c_int = 0;
        /// CICP (H.273) values.
        pub const PRIMARIES_BT709: u16 = 1;
        pub const TRANSFER_SRGB: u16 = 13;
        pub const MATRIX_BT601: u16 = 6;

        #[repr(C)]
        pub struct RwData {
            pub data: *mut u8,
            pub size: usize,
        }

        /// `avifImage`, up to its CICP fields.
        #[repr(C)]
        pub struct Image {
            pub width: u32,
            pub height: u32,
            pub depth: u32,
            pub yuv_format: c_int,
            pub yuv_range: c_int,
            pub yuv_chroma_sample_position: c_int,
            pub yuv_planes: [*mut u8; 3],
            pub yuv_row_bytes: [u32; 3],
            pub image_owns_yuv_planes: c_int,
            pub alpha_plane: *mut u8,
            pub alpha_row_bytes: u32,
            pub image_owns_alpha_plane: c_int,
            pub alpha_premultiplied: c_int,
            pub icc: RwData,
            pub color_primaries: u16,
            pub transfer_characteristics: u16,
            pub matrix_coefficients: u16,
        }

        /// `avifEncoder`, up to its diagnostics.
        #[repr(C)]
        pub struct Encoder {
            pub codec_choice: c_int,
            pub max_threads: c_int,
            pub speed: c_int,
            pub keyframe_interval: c_int,
            pub timescale: u64,
            pub min_quantizer: c_int,
            pub max_quantizer: c_int,
            pub min_quantizer_alpha: c_int,
            pub max_quantizer_alpha: c_int,
            pub tile_rows_log2: c_int,
            pub tile_cols_log2: c_int,
            pub auto_tiling: c_int,
            /// `avifIOStats`: two `size_t`.
            pub io_stats: [usize; 2],
            /// `avifDiagnostics`: a NUL-terminated message.
            pub diag: [c_char; 256],
        }

        /// `avifRGBImage`, whole (the caller allocates it).
        #[repr(C)]
        pub struct RgbImage {
            pub width: u32,
            pub height: u32,
            pub depth: u32,
            pub format: c_int,
            pub chroma_upsampling: c_int,
            pub chroma_downsampling: c_int,
            pub avoid_libyuv: c_int,
            pub ignore_alpha: c_int,
            pub alpha_premultiplied: c_int,
            pub is_float: c_int,
            pub pixels: *mut u8,
            pub row_bytes: u32,
        }

        /// `avifDecoder`, opaque.
        #[repr(C)]
        pub struct Decoder {
            _private: [u8; 0],
        }

        #[link(name = "avif")]
        extern "C" {
            pub fn avifVersion() -> *const c_char;
            pub fn avifResultToString(result: c_int) -> *const c_char;
            pub fn avifImageCreate(
                width: u32,
                height: u32,
                depth: u32,
                format: c_int,
            ) -> *mut Image;
            pub fn avifImageCreateEmpty() -> *mut Image;
            pub fn avifImageDestroy(image: *mut Image);
            pub fn avifRGBImageSetDefaults(rgb: *mut RgbImage, image: *const Image);
            pub fn avifImageRGBToYUV(image: *mut Image, rgb: *const RgbImage) -> c_int;
            pub fn avifImageYUVToRGB(image: *const Image, rgb: *mut RgbImage) -> c_int;
            pub fn avifEncoderCreate() -> *mut Encoder;
            pub fn avifEncoderWrite(
                encoder: *mut Encoder,
                image: *const Image,
                output: *mut RwData,
            ) -> c_int;
            pub fn avifEncoderDestroy(encoder: *mut Encoder);
            pub fn avifDecoderCreate() -> *mut Decoder;
            pub fn avifDecoderReadMemory(
                decoder: *mut Decoder,
                image: *mut Image,
                data: *const u8,
                size: usize,
            ) -> c_int;
            pub fn avifDecoderDestroy(decoder: *mut Decoder);
            pub fn avifRWDataFree(data: *mut RwData);
        }
    }

    /// libavif's image, encoder and output, freed on every path out.
    struct Job {
        image: *mut sys::Image,
        encoder: *mut sys::Encoder,
        output: sys::RwData,
    }

    impl Drop for Job {
        fn drop(&mut self) {
            // SAFETY: each was made by libavif (or is null / empty) and is
            // freed once. Borrowed planes are detached first, so libavif
            // frees only planes it allocated.
            unsafe {
                if !self.image.is_null() {
                    let image = &mut *self.image;
                    if image.image_owns_yuv_planes == 0 {
                        image.yuv_planes = [std::ptr::null_mut(); 3];
                    }
                    sys::avifImageDestroy(self.image);
                }
                if !self.encoder.is_null() {
                    sys::avifEncoderDestroy(self.encoder);
                }
                sys::avifRWDataFree(&mut self.output);
            }
        }
    }

    /// The libavif series [`sys`] describes.
    const SERIES: &str = "0.11.";

    pub fn encode(picture: &Picture, quantizer: u8) -> Result<Bytes, String> {
        // SAFETY: a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr(sys::avifVersion()) }.to_string_lossy();
        if !version.starts_with(SERIES) {
            return Err(format!(
                "libavif {version} is not the {SERIES}x thumbd is built for"
            ));
        }
        let (width, height) = (picture.width(), picture.height());
        if width == 0 || height == 0 || width > 1 << 16 || height > 1 << 16 {
            return Err(format!("a {width}x{height} picture cannot be encoded"));
        }
        let mut job = Job {
            // SAFETY: allocates an image header; planes come below.
            image: unsafe { sys::avifImageCreate(width, height, 8, sys::PIXEL_FORMAT_YUV420) },
            encoder: std::ptr::null_mut(),
            output: sys::RwData {
                data: std::ptr::null_mut(),
                size: 0,
            },
        };
        if job.image.is_null() {
            return Err("out of memory".into());
        }
        {
            // SAFETY: a live image libavif made, with the layout of
            // `sys::Image`; this borrow ends before libavif sees it again.
            let image = unsafe { &mut *job.image };
            image.color_primaries = sys::PRIMARIES_BT709;
            image.transfer_characteristics = sys::TRANSFER_SRGB;
            image.matrix_coefficients = sys::MATRIX_BT601;
            match picture {
                Picture::Yuv420(img) => {
                    let (cw, ch) = YuvImage::chroma_size(width, height);
                    let luma = width as usize * height as usize;
                    let chroma = cw as usize * ch as usize;
                    if img.y.len() < luma || img.u.len() < chroma || img.v.len() < chroma {
                        return Err("a YUV plane is smaller than its picture".into());
                    }
                    image.yuv_range = sys::RANGE_LIMITED;
                    // Borrowed: libavif only reads the planes of an image
                    // it encodes, and `Job` detaches them before freeing.
                    image.image_owns_yuv_planes = 0;
                    image.yuv_planes =
                        [img.y.as_ptr(), img.u.as_ptr(), img.v.as_ptr()].map(|p| p as *mut u8);
                    image.yuv_row_bytes = [width, cw, cw];
                }
                Picture::Rgb(RgbImage { data, .. }) => {
                    if data.len() < width as usize * height as usize * 3 {
                        return Err("the RGB buffer is smaller than its picture".into());
                    }
                    image.yuv_range = sys::RANGE_FULL;
                }
            }
        }
        if let Picture::Rgb(RgbImage { data, .. }) = picture {
            // SAFETY: a plain C struct, filled in from the image's size by
            // avifRGBImageSetDefaults; `data` holds `height` rows of
            // `3 width` bytes (checked), which libavif only reads, into
            // planes it allocates (libyuv's BT.601 path).
            let result = unsafe {
                let mut rgb: sys::RgbImage = std::mem::zeroed();
                sys::avifRGBImageSetDefaults(&mut rgb, job.image);
                rgb.format = sys::RGB_FORMAT_RGB;
                rgb.pixels = data.as_ptr() as *mut u8;
                rgb.row_bytes = width * 3;
                sys::avifImageRGBToYUV(job.image, &rgb)
            };
            check(result, None)?;
        }
        // SAFETY: a new encoder, configured through its declared fields.
        job.encoder = unsafe { sys::avifEncoderCreate() };
        if job.encoder.is_null() {
            return Err("out of memory".into());
        }
        {
            // SAFETY: as for the image above.
            let encoder = unsafe { &mut *job.encoder };
            encoder.codec_choice = sys::CODEC_CHOICE_AOM;
            encoder.max_threads = 1;
            encoder.speed = AVIF_SPEED;
            encoder.min_quantizer = c_int::from(quantizer.min(63));
            encoder.max_quantizer = c_int::from(quantizer.min(63));
        }
        // SAFETY: the image and its planes outlive the call; the output is
        // freed by `Job`.
        let result = unsafe { sys::avifEncoderWrite(job.encoder, job.image, &mut job.output) };
        // SAFETY: the encoder is live; libavif wrote its diagnostics.
        check(result, Some(unsafe { &(*job.encoder).diag }))?;
        // SAFETY: after a success the output holds `size` bytes at `data`.
        let out = unsafe { std::slice::from_raw_parts(job.output.data, job.output.size) };
        Ok(Bytes::copy_from_slice(out))
    }

    /// libavif's result as an error with its words (and the diagnostics').
    fn check(result: c_int, diag: Option<&[std::os::raw::c_char; 256]>) -> Result<(), String> {
        if result == sys::RESULT_OK {
            return Ok(());
        }
        // SAFETY: libavif returns a static string for any result.
        let what = unsafe { CStr::from_ptr(sys::avifResultToString(result)) };
        let detail = diag
            .and_then(|d| CStr::from_bytes_until_nul(as_bytes(d)).ok())
            .map(|d| d.to_string_lossy().into_owned())
            .filter(|d| !d.is_empty());
        Err(match detail {
            Some(d) => format!("{}: {d}", what.to_string_lossy()),
            None => what.to_string_lossy().into_owned(),
        })
    }

    /// The diagnostics buffer as bytes.
    fn as_bytes(d: &[std::os::raw::c_char; 256]) -> &[u8] {
        // SAFETY: c_char and u8 have the same size and alignment.
        unsafe { std::slice::from_raw_parts(d.as_ptr() as *const u8, d.len()) }
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

    /// An AVIF decoded by libavif (dav1d): its CICP and range, and its
    /// pixels as RGB by the matrix and range the file states.
    struct DecodedAvif {
        size: (u32, u32),
        depth: u32,
        format: i32,
        limited: bool,
        cicp: (u16, u16, u16),
        rgb: image::RgbImage,
    }

    fn decode_avif(bytes: &[u8]) -> DecodedAvif {
        use avif::sys;
        // SAFETY: the test's own decoder and image, freed below; the RGB
        // buffer holds the whole picture at 3 bytes a pixel.
        unsafe {
            let decoder = sys::avifDecoderCreate();
            let image = sys::avifImageCreateEmpty();
            let result = sys::avifDecoderReadMemory(decoder, image, bytes.as_ptr(), bytes.len());
            assert_eq!(result, sys::RESULT_OK, "libavif could not decode it");
            let img = &*image;
            let mut rgb: sys::RgbImage = std::mem::zeroed();
            sys::avifRGBImageSetDefaults(&mut rgb, image);
            rgb.format = sys::RGB_FORMAT_RGB;
            rgb.depth = 8;
            let mut pixels = vec![0u8; img.width as usize * img.height as usize * 3];
            rgb.pixels = pixels.as_mut_ptr();
            rgb.row_bytes = img.width * 3;
            assert_eq!(sys::avifImageYUVToRGB(image, &mut rgb), sys::RESULT_OK);
            let decoded = DecodedAvif {
                size: (img.width, img.height),
                depth: img.depth,
                format: img.yuv_format,
                limited: img.yuv_range == sys::RANGE_LIMITED,
                cicp: (
                    img.color_primaries,
                    img.transfer_characteristics,
                    img.matrix_coefficients,
                ),
                rgb: image::RgbImage::from_raw(img.width, img.height, pixels).unwrap(),
            };
            sys::avifImageDestroy(image);
            sys::avifDecoderDestroy(decoder);
            decoded
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
        let decoded = decode_avif(&bytes);
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
        let decoded = decode_avif(&bytes);
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
