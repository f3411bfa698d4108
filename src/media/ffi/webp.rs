//! libwebp: lossy WebP through its advanced API (YUV planes are handed
//! over as they are, with no conversion; RGB is imported straight to YUV;
//! an alpha plane goes beside either), and its animation encoder. The
//! settings are the callers' ([`crate::media::encode`],
//! [`crate::media::animate`]).

use std::os::raw::{c_int, c_void};

use bytes::Bytes;
use libwebp_sys as sys;

use crate::media::pixels::{self, Picture, RgbImage, YuvImage};

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

/// Encodes `picture` as lossy WebP at `quality` (1-100) and effort
/// `method` (0 fast - 6 small), with `alpha` (8-bit opacity, one byte a
/// pixel, packed) as its transparency when given: libwebp keeps it
/// losslessly (its default alpha quality, 100) beside the lossy colour.
/// The picture is taken because libwebp may filter its planes in place.
pub fn encode(
    mut picture: Picture,
    mut alpha: Option<Vec<u8>>,
    quality: u8,
    method: i32,
) -> Result<Bytes, String> {
    let mut config = sys::WebPConfig::new().map_err(|_| "libwebp configuration")?;
    config.quality = quality as f32;
    config.method = method;
    // No predictive filter on the alpha plane: libwebp's default ("fast")
    // encodes the plane twice to pick one, which doubled the alpha's cost
    // (20 -> 39 ms at 640x360, method 2) for the same bytes on the
    // soft-edged masks of transparent video. (Set only with alpha: the
    // setting of an opaque picture stays libwebp's.)
    if alpha.is_some() {
        config.alpha_filtering = 0;
    }
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
    let area = picture.width() as usize * picture.height() as usize;
    if alpha.as_ref().is_some_and(|a| a.len() < area) {
        return Err("the alpha plane is smaller than its picture".into());
    }
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
            if let Some(a) = alpha.as_mut() {
                // Borrowed like the other planes (its size checked above).
                p.colorspace = sys::WebPEncCSP::WEBP_YUV420A;
                p.a = a.as_mut_ptr();
                p.a_stride = w;
            }
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
            let imported = match &alpha {
                // SAFETY: `data` holds `h` rows of `3 w` bytes (checked);
                // the picture allocates and fills its own YUV planes.
                None => unsafe { sys::WebPPictureImportRGB(p, data.as_ptr(), w * 3) },
                Some(a) => {
                    let rgba = pixels::rgba(data, a);
                    // SAFETY: `rgba` holds `h` rows of `4 w` bytes; the
                    // picture allocates and fills its own YUVA planes
                    // (chroma averaged by opacity, so what is hidden does
                    // not tint the edges).
                    unsafe { sys::WebPPictureImportRGBA(p, rgba.as_ptr(), w * 4) }
                }
            };
            if imported == 0 {
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

/// libwebp's animation encoder: frames at given start times, each stored
/// as the rectangle that changed, an identical frame lengthening the one
/// before. Loops forever.
pub struct AnimEncoder {
    encoder: *mut sys::WebPAnimEncoder,
    config: sys::WebPConfig,
    width: u32,
    height: u32,
}

// SAFETY: libwebp's encoder is plain memory with no tie to the thread that
// made it; `&mut self` serialises its use.
unsafe impl Send for AnimEncoder {}

impl Drop for AnimEncoder {
    fn drop(&mut self) {
        // SAFETY: made by WebPAnimEncoderNewInternal, deleted once.
        unsafe { sys::WebPAnimEncoderDelete(self.encoder) }
    }
}

impl AnimEncoder {
    /// A `width` x `height` animation at `quality` (1-100) and effort
    /// `method` (0 fast - 6 small); libwebp refuses a size it cannot encode.
    pub fn new(width: u32, height: u32, quality: u8, method: i32) -> Result<AnimEncoder, String> {
        let abi = sys::WEBP_MUX_ABI_VERSION as c_int;
        // SAFETY: a plain C struct that libwebp initialises.
        let mut options: sys::WebPAnimEncoderOptions = unsafe { std::mem::zeroed() };
        // SAFETY: initialises the options in place.
        if unsafe { sys::WebPAnimEncoderOptionsInitInternal(&mut options, abi) } == 0 {
            return Err("libwebp version mismatch".into());
        }
        options.anim_params.loop_count = 0; // forever
                                            // SAFETY: the options are initialised; libwebp checks the size.
        let encoder = unsafe {
            sys::WebPAnimEncoderNewInternal(width as c_int, height as c_int, &options, abi)
        };
        if encoder.is_null() {
            return Err("cannot create the encoder".into());
        }
        let mut config = sys::WebPConfig::new().map_err(|_| "libwebp configuration")?;
        config.quality = f32::from(quality.clamp(1, 100));
        config.method = method;
        Ok(AnimEncoder {
            encoder,
            config,
            width,
            height,
        })
    }

    /// The encoder's last error.
    fn error(&self) -> String {
        // SAFETY: null or a NUL-terminated string the encoder owns.
        let e = unsafe { sys::WebPAnimEncoderGetError(self.encoder) };
        if e.is_null() {
            "unknown error".to_owned()
        } else {
            // SAFETY: as above; copied out before the encoder changes.
            unsafe { std::ffi::CStr::from_ptr(e) }
                .to_string_lossy()
                .into_owned()
        }
    }

    /// Adds a frame of packed RGB (`width` x `height`) starting at `at_ms`.
    pub fn add(&mut self, rgb: &[u8], at_ms: i32) -> Result<(), String> {
        if rgb.len() < self.width as usize * self.height as usize * 3 {
            return Err("the RGB buffer is smaller than its picture".into());
        }
        let mut pic = sys::WebPPicture::new().map_err(|_| "libwebp picture")?;
        pic.width = self.width as c_int;
        pic.height = self.height as c_int;
        pic.use_argb = 1;
        // SAFETY: `rgb` holds `height` rows of `3 width` bytes (checked);
        // libwebp copies them into its own ARGB buffer, freed below
        // whatever happens. The encoder copies what it keeps.
        let added = unsafe {
            if sys::WebPPictureImportRGB(&mut pic, rgb.as_ptr(), (self.width * 3) as c_int) == 0 {
                sys::WebPPictureFree(&mut pic);
                return Err("out of memory".into());
            }
            let added = sys::WebPAnimEncoderAdd(self.encoder, &mut pic, at_ms, &self.config);
            sys::WebPPictureFree(&mut pic);
            added
        };
        if added == 0 {
            return Err(self.error());
        }
        Ok(())
    }

    /// The animation's bytes, the last frame ending at `end_ms`.
    pub fn finish(self, end_ms: i32) -> Result<Bytes, String> {
        // SAFETY: a null frame at the end of the last one closes the
        // animation; the assembled data is copied out, then freed.
        unsafe {
            if sys::WebPAnimEncoderAdd(self.encoder, std::ptr::null_mut(), end_ms, std::ptr::null())
                == 0
            {
                return Err(self.error());
            }
            let mut data: sys::WebPData = std::mem::zeroed();
            if sys::WebPAnimEncoderAssemble(self.encoder, &mut data) == 0 {
                return Err(self.error());
            }
            let bytes = Bytes::copy_from_slice(std::slice::from_raw_parts(data.bytes, data.size));
            sys::WebPFree(data.bytes as *mut std::ffi::c_void);
            Ok(bytes)
        }
    }
}
