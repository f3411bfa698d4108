//! Animated previews: the frames shown at `start + k / fps` up to `end`,
//! from one sequential decode, scaled and encoded as an animated WebP or
//! GIF ([`animate`]).
//!
//! [`animate`]: super::animate

use std::rc::Rc;

use bytes::Bytes;

use super::frames::Frames;
use super::picture::{Picture, RgbImage};
use super::{geometry, picture, Format, Limits, MediaError};
use crate::request::animated::{AnimatedFormat, AnimatedSpec};
use crate::source::SourceRead;

/// An encoded animation.
#[derive(Debug, Clone)]
pub struct Animation {
    pub bytes: Bytes,
    pub width: u32,
    pub height: u32,
    pub frames: usize,
}

/// Renders the animated preview `spec` describes. Blocking.
pub fn render(
    reader: Box<dyn SourceRead>,
    spec: &AnimatedSpec,
    limits: &Limits,
) -> Result<Animation, MediaError> {
    let mut frames = Frames::open(reader, limits)?;
    // A frame shown for several ticks is kept once.
    let mut pictures: Vec<Rc<RgbImage>> = Vec::new();
    // Consecutive ticks showing the same frame are scaled once.
    let mut last: Option<(f64, usize)> = None;
    let mut size: Option<(u32, u32)> = None;
    frames.sequence(spec.start_us, spec.end_us, spec.fps, |frame| {
        if let Some((t, i)) = last {
            if t == frame.time_secs {
                let again = Rc::clone(&pictures[i]);
                pictures.push(again);
                return Ok(());
            }
        }
        // Every frame the first one's size (a later change is letterboxed).
        let plan = match size {
            None => {
                let plan = geometry::plan(&frame.shape(), Some(spec.width), None, None);
                size = Some(plan.canvas);
                plan
            }
            Some((w, h)) => geometry::plan(&frame.shape(), Some(w), Some(h), Some(super::Fit::Pad)),
        };
        match picture::prepare(frame, &plan, Format::Png)? {
            Picture::Rgb(img) => pictures.push(Rc::new(img)),
            Picture::Yuv420(_) => {
                return Err(MediaError::Internal("a frame was prepared as YUV".into()))
            }
        }
        last = Some((frame.time_secs, pictures.len() - 1));
        Ok(())
    })?;
    let (width, height) =
        size.ok_or_else(|| MediaError::NoFrame("no frame in the range".into()))?;
    let count = pictures.len();
    let bytes = encode(&pictures, width, height, spec)?;
    Ok(Animation {
        bytes,
        width,
        height,
        frames: count,
    })
}

fn encode(
    pictures: &[Rc<RgbImage>],
    width: u32,
    height: u32,
    spec: &AnimatedSpec,
) -> Result<Bytes, MediaError> {
    let frame_ms = 1000.0 / spec.fps as f64;
    let fail = |what: &str, e: String| MediaError::Internal(format!("{what} encoding failed: {e}"));
    match spec.format {
        AnimatedFormat::Webp => webp(
            pictures,
            width,
            height,
            frame_ms,
            spec.quality.unwrap_or(crate::request::DEFAULT_QUALITY),
        )
        .map_err(|e| fail("animated WebP", e)),
        AnimatedFormat::Gif => gif(pictures, width, height, frame_ms).map_err(|e| fail("GIF", e)),
    }
}

/// Animated WebP through libwebp's animation encoder (lossy frames; it
/// stores only what changed between frames and merges repeated ones).
fn webp(
    pictures: &[Rc<RgbImage>],
    width: u32,
    height: u32,
    frame_ms: f64,
    quality: u8,
) -> Result<Bytes, String> {
    use libwebp_sys as sys;
    use std::mem::MaybeUninit;

    /// Frees the encoder however the function ends.
    struct Encoder(*mut sys::WebPAnimEncoder);
    impl Drop for Encoder {
        fn drop(&mut self) {
            // SAFETY: made by WebPAnimEncoderNewInternal, deleted once.
            unsafe { sys::WebPAnimEncoderDelete(self.0) }
        }
    }
    let abi = sys::WEBP_MUX_ABI_VERSION as i32;
    // SAFETY: libwebp's documented sequence: options and config initialised
    // by libwebp, one picture per frame imported from packed RGB of the
    // stated size and freed after it is added, the result copied out and
    // freed with WebPFree.
    unsafe {
        let mut options = MaybeUninit::<sys::WebPAnimEncoderOptions>::zeroed();
        if sys::WebPAnimEncoderOptionsInitInternal(options.as_mut_ptr(), abi) == 0 {
            return Err("libwebp version mismatch".into());
        }
        let mut options = options.assume_init();
        options.anim_params.loop_count = 0; // forever
        let enc = sys::WebPAnimEncoderNewInternal(width as i32, height as i32, &options, abi);
        if enc.is_null() {
            return Err("cannot create the encoder".into());
        }
        let enc = Encoder(enc);
        let mut config = MaybeUninit::<sys::WebPConfig>::zeroed();
        if !sys::WebPInitConfig(config.as_mut_ptr()) {
            return Err("libwebp version mismatch".into());
        }
        let mut config = config.assume_init();
        config.quality = quality as f32;
        config.method = 2;
        let error = |enc: &Encoder| {
            let e = sys::WebPAnimEncoderGetError(enc.0);
            if e.is_null() {
                "unknown error".to_owned()
            } else {
                std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        };
        for (i, img) in pictures.iter().enumerate() {
            let mut pic = MaybeUninit::<sys::WebPPicture>::zeroed();
            if !sys::WebPPictureInit(pic.as_mut_ptr()) {
                return Err("libwebp version mismatch".into());
            }
            let mut pic = pic.assume_init();
            pic.width = width as i32;
            pic.height = height as i32;
            pic.use_argb = 1;
            if sys::WebPPictureImportRGB(&mut pic, img.data.as_ptr(), (img.width * 3) as i32) == 0 {
                sys::WebPPictureFree(&mut pic);
                return Err("out of memory".into());
            }
            let at = (i as f64 * frame_ms).round() as i32;
            let added = sys::WebPAnimEncoderAdd(enc.0, &mut pic, at, &config);
            sys::WebPPictureFree(&mut pic);
            if added == 0 {
                return Err(error(&enc));
            }
        }
        // The end of the last frame.
        let end = (pictures.len() as f64 * frame_ms).round() as i32;
        if sys::WebPAnimEncoderAdd(enc.0, std::ptr::null_mut(), end, std::ptr::null()) == 0 {
            return Err(error(&enc));
        }
        let mut data = MaybeUninit::<sys::WebPData>::zeroed().assume_init();
        if sys::WebPAnimEncoderAssemble(enc.0, &mut data) == 0 {
            return Err(error(&enc));
        }
        let bytes = Bytes::copy_from_slice(std::slice::from_raw_parts(data.bytes, data.size));
        sys::WebPFree(data.bytes as *mut std::ffi::c_void);
        Ok(bytes)
    }
}

/// GIF with a palette per frame from the `gif` crate's NeuQuant quantiser
/// (colour_quant); delays in centiseconds, rounded so the total stays right.
fn gif(pictures: &[Rc<RgbImage>], width: u32, height: u32, frame_ms: f64) -> Result<Bytes, String> {
    let (w, h) = (
        u16::try_from(width).map_err(|e| e.to_string())?,
        u16::try_from(height).map_err(|e| e.to_string())?,
    );
    let mut out = Vec::new();
    {
        let mut encoder = ::gif::Encoder::new(&mut out, w, h, &[]).map_err(|e| e.to_string())?;
        encoder
            .set_repeat(::gif::Repeat::Infinite)
            .map_err(|e| e.to_string())?;
        let mut shown_cs = 0i64;
        for (i, img) in pictures.iter().enumerate() {
            // Speed 10 of 1-30: a good palette at a tenth of the best's cost.
            let mut frame = ::gif::Frame::from_rgb_speed(w, h, &img.data, 10);
            let until = ((i + 1) as f64 * frame_ms / 10.0).round() as i64;
            frame.delay = (until - shown_cs).clamp(1, u16::MAX as i64) as u16;
            shown_cs += frame.delay as i64;
            encoder.write_frame(&frame).map_err(|e| e.to_string())?;
        }
    }
    Ok(Bytes::from(out))
}
