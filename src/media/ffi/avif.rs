//! AVIF through libavif 0.11 (Debian 12's `libavif15`) with libaom, one
//! thread: the render pool already runs one render per core. The bindings
//! are written by hand ([`sys`]); the `layout` test compiles a C program
//! against the installed `avif.h` and compares every offset, size and
//! constant they declare.

use std::ffi::CStr;
use std::os::raw::c_int;

use bytes::Bytes;

use crate::media::pixels::{Picture, RgbImage, YuvImage};

pub mod sys {
    //! The part of libavif 0.11's `avif.h` thumbd uses, written by hand
    //! (offsets, sizes and constants checked against the installed header
    //! by a C `offsetof` program: the `layout` test below). libavif
    //! allocates its image and encoder, so only the leading fields thumbd
    //! touches are declared; such a struct is only ever reached through
    //! libavif's pointer. Layouts change between libavif series (1.0
    //! reorders `avifEncoder`), so [`super::encode`] refuses any libavif
    //! but 0.11.
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
        pub fn avifImageCreate(width: u32, height: u32, depth: u32, format: c_int) -> *mut Image;
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
                if image.image_owns_alpha_plane == 0 {
                    image.alpha_plane = std::ptr::null_mut();
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

/// Encodes `picture` at the AV1 `quantizer` (0 best - 63 worst) and
/// libaom `speed` (0 slowest - 10), with `alpha` (8-bit straight opacity,
/// one byte a pixel, packed) as its alpha item when given: coded
/// losslessly, as WebP keeps it, so edges stay where the video has them.
pub fn encode(
    picture: &Picture,
    alpha: Option<&[u8]>,
    quantizer: u8,
    speed: i32,
) -> Result<Bytes, String> {
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
    if alpha.is_some_and(|a| a.len() < width as usize * height as usize) {
        return Err("the alpha plane is smaller than its picture".into());
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
    if let Some(alpha) = alpha {
        // Attached after the RGB conversion, which fills an image's alpha
        // plane opaque when the RGB has none.
        // SAFETY: as above. Borrowed: libavif only reads the plane of an
        // image it encodes, and `Job` detaches it before freeing.
        let image = unsafe { &mut *job.image };
        image.image_owns_alpha_plane = 0;
        image.alpha_plane = alpha.as_ptr() as *mut u8;
        image.alpha_row_bytes = width;
        image.alpha_premultiplied = 0;
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
        encoder.speed = speed;
        encoder.min_quantizer = c_int::from(quantizer.min(63));
        encoder.max_quantizer = c_int::from(quantizer.min(63));
        // Lossless alpha (libavif's default, said here): a lossy mask
        // rings at the hard edges most transparent videos have.
        encoder.min_quantizer_alpha = 0;
        encoder.max_quantizer_alpha = 0;
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

/// An AVIF decoded by libavif (dav1d), for tests: its CICP and range, and
/// its pixels as RGB by the matrix and range the file states.
#[cfg(test)]
pub struct DecodedAvif {
    pub size: (u32, u32),
    pub depth: u32,
    pub format: i32,
    pub limited: bool,
    pub cicp: (u16, u16, u16),
    pub rgb: image::RgbImage,
    /// The alpha item's plane (8-bit images), packed; `None` without one.
    pub alpha: Option<Vec<u8>>,
}

/// Decodes `bytes` with libavif, for tests; panics on failure.
#[cfg(test)]
pub fn decode(bytes: &[u8]) -> DecodedAvif {
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
            alpha: (!img.alpha_plane.is_null()).then(|| {
                assert_eq!(img.depth, 8, "8-bit alpha");
                (0..img.height as usize)
                    .flat_map(|y| {
                        let row = img.alpha_plane.add(y * img.alpha_row_bytes as usize);
                        std::slice::from_raw_parts(row, img.width as usize).to_vec()
                    })
                    .collect()
            }),
        };
        sys::avifImageDestroy(image);
        sys::avifDecoderDestroy(decoder);
        decoded
    }
}

#[cfg(test)]
mod layout {
    //! [`super::sys`] against the installed `avif.h`: a C program printing
    //! `offsetof` and `sizeof` of every field declared, and the constants,
    //! is compiled with the system's C compiler and its output compared
    //! with `offset_of!` and `size_of` of the Rust structs. A missing
    //! compiler or header fails the test: `make test` installs both (clang
    //! and libavif-dev, which the crate needs to link anyway).

    use std::mem::{offset_of, size_of};
    use std::process::Command;

    use super::sys;

    /// The size of a field, through an accessor.
    fn size_of_field<T, F>(_: fn(&T) -> &F) -> usize {
        size_of::<F>()
    }

    /// What to compare: a label, a C expression, and the Rust value.
    type Check = (String, String, i64);

    macro_rules! fields {
        ($checks:ident, $rust:ty, $c:literal, { $($field:ident => $cfield:literal),* $(,)? }) => {
            $(
                $checks.push((
                    format!("offsetof({}, {})", $c, $cfield),
                    format!("offsetof({}, {})", $c, $cfield),
                    offset_of!($rust, $field) as i64,
                ));
                $checks.push((
                    format!("sizeof({}.{})", $c, $cfield),
                    format!("sizeof((({} *)0)->{})", $c, $cfield),
                    size_of_field(|s: &$rust| &s.$field) as i64,
                ));
            )*
        };
    }

    fn checks() -> Vec<Check> {
        let mut checks: Vec<Check> = Vec::new();
        fields!(checks, sys::RwData, "avifRWData", {
            data => "data",
            size => "size",
        });
        fields!(checks, sys::Image, "avifImage", {
            width => "width",
            height => "height",
            depth => "depth",
            yuv_format => "yuvFormat",
            yuv_range => "yuvRange",
            yuv_chroma_sample_position => "yuvChromaSamplePosition",
            yuv_planes => "yuvPlanes",
            yuv_row_bytes => "yuvRowBytes",
            image_owns_yuv_planes => "imageOwnsYUVPlanes",
            alpha_plane => "alphaPlane",
            alpha_row_bytes => "alphaRowBytes",
            image_owns_alpha_plane => "imageOwnsAlphaPlane",
            alpha_premultiplied => "alphaPremultiplied",
            icc => "icc",
            color_primaries => "colorPrimaries",
            transfer_characteristics => "transferCharacteristics",
            matrix_coefficients => "matrixCoefficients",
        });
        fields!(checks, sys::Encoder, "avifEncoder", {
            codec_choice => "codecChoice",
            max_threads => "maxThreads",
            speed => "speed",
            keyframe_interval => "keyframeInterval",
            timescale => "timescale",
            min_quantizer => "minQuantizer",
            max_quantizer => "maxQuantizer",
            min_quantizer_alpha => "minQuantizerAlpha",
            max_quantizer_alpha => "maxQuantizerAlpha",
            tile_rows_log2 => "tileRowsLog2",
            tile_cols_log2 => "tileColsLog2",
            auto_tiling => "autoTiling",
            io_stats => "ioStats",
            diag => "diag",
        });
        fields!(checks, sys::RgbImage, "avifRGBImage", {
            width => "width",
            height => "height",
            depth => "depth",
            format => "format",
            chroma_upsampling => "chromaUpsampling",
            chroma_downsampling => "chromaDownsampling",
            avoid_libyuv => "avoidLibYUV",
            ignore_alpha => "ignoreAlpha",
            alpha_premultiplied => "alphaPremultiplied",
            is_float => "isFloat",
            pixels => "pixels",
            row_bytes => "rowBytes",
        });
        // Declared whole: the caller allocates them.
        for (c, rust) in [
            ("avifRWData", size_of::<sys::RwData>()),
            ("avifRGBImage", size_of::<sys::RgbImage>()),
        ] {
            checks.push((format!("sizeof({c})"), format!("sizeof({c})"), rust as i64));
        }
        for (c, rust) in [
            ("AVIF_RESULT_OK", i64::from(sys::RESULT_OK)),
            (
                "AVIF_PIXEL_FORMAT_YUV420",
                i64::from(sys::PIXEL_FORMAT_YUV420),
            ),
            ("AVIF_RANGE_LIMITED", i64::from(sys::RANGE_LIMITED)),
            ("AVIF_RANGE_FULL", i64::from(sys::RANGE_FULL)),
            ("AVIF_CODEC_CHOICE_AOM", i64::from(sys::CODEC_CHOICE_AOM)),
            ("AVIF_RGB_FORMAT_RGB", i64::from(sys::RGB_FORMAT_RGB)),
            (
                "AVIF_COLOR_PRIMARIES_BT709",
                i64::from(sys::PRIMARIES_BT709),
            ),
            (
                "AVIF_TRANSFER_CHARACTERISTICS_SRGB",
                i64::from(sys::TRANSFER_SRGB),
            ),
            (
                "AVIF_MATRIX_COEFFICIENTS_BT601",
                i64::from(sys::MATRIX_BT601),
            ),
        ] {
            checks.push((c.to_owned(), c.to_owned(), rust));
        }
        checks
    }

    /// Compiles and runs `source` with the first C compiler found ($CC,
    /// then cc, then clang); its standard output.
    fn run_c(source: &str) -> String {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (src, exe) = (dir.path().join("layout.c"), dir.path().join("layout"));
        std::fs::write(&src, source).expect("writing the C program");
        let compilers: Vec<String> = std::env::var("CC")
            .ok()
            .into_iter()
            .chain(["cc".to_owned(), "clang".to_owned()])
            .collect();
        let mut compiled = None;
        for cc in &compilers {
            match Command::new(cc).arg("-o").arg(&exe).arg(&src).output() {
                Ok(out) => {
                    compiled = Some((cc, out));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("running the C compiler {cc}: {e}"),
            }
        }
        let Some((cc, out)) = compiled else {
            panic!(
                "no C compiler found (tried {compilers:?}): the check of libavif's layout \
                 needs one; `make test` installs clang"
            );
        };
        assert!(
            out.status.success(),
            "{cc} could not compile the layout check against <avif/avif.h> (is libavif's \
             header installed? `make test` installs libavif-dev):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = Command::new(&exe)
            .output()
            .expect("running the layout check");
        assert!(run.status.success(), "the layout check failed to run");
        String::from_utf8(run.stdout).expect("the layout check prints ASCII")
    }

    #[test]
    fn hand_written_bindings_match_the_installed_header() {
        let checks = checks();
        let mut c = String::from(
            "#include <stddef.h>\n#include <stdio.h>\n#include <avif/avif.h>\n\
             int main(void) {\n\
             printf(\"%d.%d\\n\", AVIF_VERSION_MAJOR, AVIF_VERSION_MINOR);\n",
        );
        for (_, expr, _) in &checks {
            c += &format!("printf(\"%lld\\n\", (long long)({expr}));\n");
        }
        c += "return 0;\n}\n";
        let out = run_c(&c);
        let mut lines = out.lines();
        let series = lines.next().expect("the header's version");
        assert_eq!(
            format!("{series}."),
            super::SERIES,
            "the installed avif.h is libavif {series}; `sys` describes {}x",
            super::SERIES
        );
        let wrong: Vec<String> = checks
            .iter()
            .zip(lines)
            .filter_map(|((label, _, rust), c)| {
                let c: i64 = c.parse().expect("a number");
                (c != *rust).then(|| format!("{label}: avif.h says {c}, sys says {rust}"))
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "sys does not match avif.h:\n{}",
            wrong.join("\n")
        );
        assert_eq!(out.lines().count(), checks.len() + 1, "a value per check");
    }
}
