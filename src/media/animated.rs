//! Animated previews: the frames shown at `start + k / fps` up to `end`,
//! from one sequential decode, scaled and handed one by one to an animated
//! WebP (libwebp's animation encoder) or GIF encoder, so memory holds a
//! frame or two, not the whole animation.

#![deny(unsafe_code)]

use bytes::Bytes;

use super::animate::{GifAnimation, WebpAnimation};
use super::frames::Frames;
use super::pixels::{Picture, RgbImage};
use super::stream::DecodedFrame;
use super::{geometry, picture, Fit, Format, Limits, MediaError};
use crate::domain::animated::{AnimatedFormat, AnimatedSpec};
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
    // Pictures are encoded on a thread of their own while the next frames
    // decode (a few queued at most: memory stays a few pictures).
    let (pictures, queued) = std::sync::mpsc::sync_channel::<(RgbImage, u32)>(4);
    let (decoded, encoded) = std::thread::scope(|scope| {
        let encoding = scope.spawn(move || {
            let mut encoder: Option<Encoder> = None;
            for (img, duration_ms) in queued {
                if encoder.is_none() {
                    encoder = Some(Encoder::new(spec, img.width, img.height)?);
                }
                encoder
                    .as_mut()
                    .expect("made above")
                    .add(&img, duration_ms)?;
            }
            Ok::<_, MediaError>(encoder)
        });
        // The picture of the last frame given, to repeat it without scaling.
        let mut last: Option<(f64, RgbImage)> = None;
        let mut size: Option<(u32, u32)> = None;
        let mut count = 0usize;
        let decoded = frames.sequence(spec.start_us, spec.end_us, spec.fps, |frame| {
            if std::time::Instant::now() >= limits.deadline {
                return Err(MediaError::Timeout);
            }
            let repeat = last.as_ref().is_some_and(|(t, _)| *t == frame.time_secs);
            if !repeat {
                // Every frame the first one's size (a later change is letterboxed).
                let plan = match size {
                    None => fit_box(frame, spec.width),
                    Some((width, height)) => {
                        geometry::plan(&frame.shape(), Some(width), Some(height), Some(Fit::Pad))
                    }
                };
                let img = match picture::prepare(frame, &plan, Format::Png)? {
                    Picture::Rgb(img) => img,
                    Picture::Yuv420(_) => {
                        return Err(MediaError::Internal("a frame was prepared as YUV".into()))
                    }
                };
                size.get_or_insert((img.width, img.height));
                last = Some((frame.time_secs, img));
            }
            let img = &last.as_ref().expect("set above").1;
            // Whole milliseconds from rounded start times: the total stays exact.
            let duration =
                ((count + 1) as f64 * frame_ms).round() - (count as f64 * frame_ms).round();
            count += 1;
            match pictures.send((img.clone(), duration.max(1.0) as u32)) {
                Ok(()) => Ok(std::ops::ControlFlow::Continue(())),
                // The encoder stopped: its error is the one to give.
                Err(_) => Ok(std::ops::ControlFlow::Break(())),
            }
        });
        drop(pictures);
        let encoded = encoding.join().unwrap_or_else(|_| {
            Err(MediaError::Internal(
                "the animation encoder panicked".into(),
            ))
        });
        (decoded, encoded)
    });
    let encoder = encoded?;
    decoded?;
    let count = encoder.as_ref().map_or(0, |e| e.frames);
    let encoder = encoder.ok_or_else(|| MediaError::NoFrame("no frame in the range".into()))?;
    let (width, height) = (encoder.width, encoder.height);
    Ok(Animation {
        bytes: encoder.finish()?,
        width,
        height,
        frames: count,
    })
}

/// `width` wide, or, for a portrait video, `width` tall: the preview's
/// longer side is at most `width`.
fn fit_box(frame: &DecodedFrame, width: u32) -> geometry::Plan {
    let (dw, dh) = frame.shape().display_size();
    if dh > dw {
        geometry::plan(&frame.shape(), None, Some(width), None)
    } else {
        geometry::plan(&frame.shape(), Some(width), None, None)
    }
}

/// An animation being encoded, frame by frame ([`animate`]).
struct Encoder {
    width: u32,
    height: u32,
    kind: Kind,
    /// Frames added.
    frames: usize,
}

enum Kind {
    Webp(WebpAnimation),
    Gif(GifAnimation),
}

fn failed(what: &str, e: impl std::fmt::Display) -> MediaError {
    MediaError::Internal(format!("{what} encoding failed: {e}"))
}

impl Encoder {
    fn new(spec: &AnimatedSpec, width: u32, height: u32) -> Result<Encoder, MediaError> {
        let kind = match spec.format {
            AnimatedFormat::Webp => Kind::Webp(
                WebpAnimation::new(
                    width,
                    height,
                    spec.quality.unwrap_or(crate::domain::DEFAULT_QUALITY),
                )
                .map_err(|e| failed("animated WebP", e))?,
            ),
            AnimatedFormat::Gif => {
                Kind::Gif(GifAnimation::new(width, height).map_err(|e| failed("GIF", e))?)
            }
        };
        Ok(Encoder {
            width,
            height,
            kind,
            frames: 0,
        })
    }

    /// Adds the picture shown for `duration_ms`.
    fn add(&mut self, img: &RgbImage, duration_ms: u32) -> Result<(), MediaError> {
        self.frames += 1;
        match &mut self.kind {
            Kind::Webp(enc) => enc
                .add(img, duration_ms)
                .map_err(|e| failed("animated WebP", e)),
            Kind::Gif(enc) => enc.add(img, duration_ms).map_err(|e| failed("GIF", e)),
        }
    }

    fn finish(self) -> Result<Bytes, MediaError> {
        match self.kind {
            Kind::Webp(enc) => enc.finish().map_err(|e| failed("animated WebP", e)),
            Kind::Gif(enc) => enc.finish().map_err(|e| failed("GIF", e)),
        }
    }
}
