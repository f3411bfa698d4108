//! Animated previews: the frames shown at `start + k / fps` up to `end`,
//! from one sequential decode, scaled and handed one by one to an animated
//! WebP (libwebp's animation encoder) or GIF encoder, so memory holds a
//! frame or two, not the whole animation.

use bytes::Bytes;

use super::frames::Frames;
use super::picture::{Picture, RgbImage};
use super::{geometry, picture, Fit, Format, Limits, MediaError};
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

/// Renders the animated preview `spec` describes. Blocking; the deadline
/// covers decoding and encoding.
pub fn render(
    reader: Box<dyn SourceRead>,
    spec: &AnimatedSpec,
    limits: &Limits,
) -> Result<Animation, MediaError> {
    let mut frames = Frames::open(reader, limits)?;
    let frame_ms = 1000.0 / spec.fps as f64;
    let mut encoder: Option<Encoder> = None;
    // The picture of the last frame given, to repeat it without scaling.
    let mut last: Option<(f64, RgbImage)> = None;
    let mut count = 0usize;
    frames.sequence(spec.start_us, spec.end_us, spec.fps, |frame| {
        if std::time::Instant::now() >= limits.deadline {
            return Err(MediaError::Timeout);
        }
        let repeat = last.as_ref().is_some_and(|(t, _)| *t == frame.time_secs);
        if !repeat {
            // Every frame the first one's size (a later change is letterboxed).
            let plan = match &encoder {
                None => fit_box(frame, spec.width),
                Some(e) => geometry::plan(
                    &frame.shape(),
                    Some(e.width),
                    Some(e.height),
                    Some(Fit::Pad),
                ),
            };
            let img = match picture::prepare(frame, &plan, Format::Png)? {
                Picture::Rgb(img) => img,
                Picture::Yuv420(_) => {
                    return Err(MediaError::Internal("a frame was prepared as YUV".into()))
                }
            };
            last = Some((frame.time_secs, img));
        }
        let img = &last.as_ref().expect("set above").1;
        if encoder.is_none() {
            encoder = Some(Encoder::new(spec, img.width, img.height)?);
        }
        let at = (count as f64 * frame_ms).round() as i32;
        encoder
            .as_mut()
            .expect("made above")
            .add(img, at, frame_ms)?;
        count += 1;
        Ok(())
    })?;
    let encoder = encoder.ok_or_else(|| MediaError::NoFrame("no frame in the range".into()))?;
    let (width, height) = (encoder.width, encoder.height);
    let end = (count as f64 * frame_ms).round() as i32;
    Ok(Animation {
        bytes: encoder.finish(end)?,
        width,
        height,
        frames: count,
    })
}

/// `width` wide, or, for a portrait video, `width` tall: the preview's
/// longer side is at most `width`.
fn fit_box(frame: &super::decode::DecodedFrame, width: u32) -> geometry::Plan {
    let (dw, dh) = frame.shape().display_size();
    if dh > dw {
        geometry::plan(&frame.shape(), None, Some(width), None)
    } else {
        geometry::plan(&frame.shape(), Some(width), None, None)
    }
}

/// An animation being encoded.
struct Encoder {
    width: u32,
    height: u32,
    kind: Kind,
}

enum Kind {
    Webp {
        enc: webp::AnimEncoder,
        quality: u8,
    },
    Gif {
        enc: Box<::gif::Encoder<Vec<u8>>>,
        /// Centiseconds written so far, so rounding does not drift.
        shown_cs: i64,
    },
}

fn failed(what: &str, e: impl std::fmt::Display) -> MediaError {
    MediaError::Internal(format!("{what} encoding failed: {e}"))
}

impl Encoder {
    fn new(spec: &AnimatedSpec, width: u32, height: u32) -> Result<Encoder, MediaError> {
        let kind = match spec.format {
            AnimatedFormat::Webp => Kind::Webp {
                enc: webp::AnimEncoder::new(width, height)
                    .map_err(|e| failed("animated WebP", e))?,
                quality: spec.quality.unwrap_or(crate::request::DEFAULT_QUALITY),
            },
            AnimatedFormat::Gif => {
                let (w, h) = (
                    u16::try_from(width).map_err(|e| failed("GIF", e))?,
                    u16::try_from(height).map_err(|e| failed("GIF", e))?,
                );
                let mut enc =
                    ::gif::Encoder::new(Vec::new(), w, h, &[]).map_err(|e| failed("GIF", e))?;
                enc.set_repeat(::gif::Repeat::Infinite)
                    .map_err(|e| failed("GIF", e))?;
                Kind::Gif {
                    enc: Box::new(enc),
                    shown_cs: 0,
                }
            }
        };
        Ok(Encoder {
            width,
            height,
            kind,
        })
    }

    /// Adds the frame shown from `at_ms` for `frame_ms`.
    fn add(&mut self, img: &RgbImage, at_ms: i32, frame_ms: f64) -> Result<(), MediaError> {
        match &mut self.kind {
            Kind::Webp { enc, quality } => enc
                .add(img, at_ms, *quality)
                .map_err(|e| failed("animated WebP", e)),
            Kind::Gif { enc, shown_cs } => {
                let (w, h) = (img.width as u16, img.height as u16);
                // Speed 10 of 1-30: a good NeuQuant palette at a tenth of
                // the slowest setting's cost.
                let mut frame = ::gif::Frame::from_rgb_speed(w, h, &img.data, 10);
                let until = ((at_ms as f64 + frame_ms) / 10.0).round() as i64;
                frame.delay = (until - *shown_cs).clamp(1, u16::MAX as i64) as u16;
                *shown_cs += frame.delay as i64;
                enc.write_frame(&frame).map_err(|e| failed("GIF", e))
            }
        }
    }

    fn finish(self, end_ms: i32) -> Result<Bytes, MediaError> {
        match self.kind {
            Kind::Webp { enc, .. } => enc.finish(end_ms).map_err(|e| failed("animated WebP", e)),
            Kind::Gif { enc, .. } => {
                let out = enc.into_inner().map_err(|e| failed("GIF", e))?;
                Ok(Bytes::from(out))
            }
        }
    }
}

/// libwebp's animation encoder (lossy frames; it stores only what changed
/// between frames and merges repeated ones).
mod webp {
    use std::mem::MaybeUninit;

    use bytes::Bytes;
    use libwebp_sys as sys;

    use super::RgbImage;

    pub struct AnimEncoder {
        enc: *mut sys::WebPAnimEncoder,
        width: u32,
        height: u32,
    }

    impl Drop for AnimEncoder {
        fn drop(&mut self) {
            // SAFETY: made by WebPAnimEncoderNewInternal, deleted once.
            unsafe { sys::WebPAnimEncoderDelete(self.enc) }
        }
    }

    const ABI: i32 = sys::WEBP_MUX_ABI_VERSION as i32;

    // SAFETY (all blocks below): libwebp's documented sequence. Options and
    // configs are initialised by libwebp; each picture is imported from
    // packed RGB of the stated size and freed after it is added; the result
    // is copied out and freed with WebPFree.
    impl AnimEncoder {
        pub fn new(width: u32, height: u32) -> Result<AnimEncoder, String> {
            unsafe {
                let mut options = MaybeUninit::<sys::WebPAnimEncoderOptions>::zeroed();
                if sys::WebPAnimEncoderOptionsInitInternal(options.as_mut_ptr(), ABI) == 0 {
                    return Err("libwebp version mismatch".into());
                }
                let mut options = options.assume_init();
                options.anim_params.loop_count = 0; // forever
                let enc =
                    sys::WebPAnimEncoderNewInternal(width as i32, height as i32, &options, ABI);
                if enc.is_null() {
                    return Err("cannot create the encoder".into());
                }
                Ok(AnimEncoder { enc, width, height })
            }
        }

        fn error(&self) -> String {
            unsafe {
                let e = sys::WebPAnimEncoderGetError(self.enc);
                if e.is_null() {
                    "unknown error".to_owned()
                } else {
                    std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
                }
            }
        }

        pub fn add(&mut self, img: &RgbImage, at_ms: i32, quality: u8) -> Result<(), String> {
            if (img.width, img.height) != (self.width, self.height) {
                return Err("a frame of another size".into());
            }
            unsafe {
                let mut config = MaybeUninit::<sys::WebPConfig>::zeroed();
                if !sys::WebPInitConfig(config.as_mut_ptr()) {
                    return Err("libwebp version mismatch".into());
                }
                let mut config = config.assume_init();
                config.quality = quality as f32;
                config.method = 2;
                let mut pic = MaybeUninit::<sys::WebPPicture>::zeroed();
                if !sys::WebPPictureInit(pic.as_mut_ptr()) {
                    return Err("libwebp version mismatch".into());
                }
                let mut pic = pic.assume_init();
                pic.width = img.width as i32;
                pic.height = img.height as i32;
                pic.use_argb = 1;
                if sys::WebPPictureImportRGB(&mut pic, img.data.as_ptr(), (img.width * 3) as i32)
                    == 0
                {
                    sys::WebPPictureFree(&mut pic);
                    return Err("out of memory".into());
                }
                let added = sys::WebPAnimEncoderAdd(self.enc, &mut pic, at_ms, &config);
                sys::WebPPictureFree(&mut pic);
                if added == 0 {
                    return Err(self.error());
                }
            }
            Ok(())
        }

        /// Ends the last frame at `end_ms` and assembles the file.
        pub fn finish(self, end_ms: i32) -> Result<Bytes, String> {
            unsafe {
                if sys::WebPAnimEncoderAdd(self.enc, std::ptr::null_mut(), end_ms, std::ptr::null())
                    == 0
                {
                    return Err(self.error());
                }
                let mut data = MaybeUninit::<sys::WebPData>::zeroed().assume_init();
                if sys::WebPAnimEncoderAssemble(self.enc, &mut data) == 0 {
                    return Err(self.error());
                }
                let bytes =
                    Bytes::copy_from_slice(std::slice::from_raw_parts(data.bytes, data.size));
                sys::WebPFree(data.bytes as *mut std::ffi::c_void);
                Ok(bytes)
            }
        }
    }
}
