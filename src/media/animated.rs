//! Animated previews: the frames shown at `start + k / fps` up to `end`,
//! from one sequential decode, scaled and encoded as an animated WebP or
//! GIF ([`animate`]).
//!
//! [`animate`]: super::animate

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
    let mut pictures: Vec<RgbImage> = Vec::new();
    // Consecutive ticks showing the same frame are scaled once.
    let mut last: Option<(f64, usize)> = None;
    let mut size: Option<(u32, u32)> = None;
    frames.sequence(spec.start_us, spec.end_us, spec.fps, |frame| {
        if let Some((t, i)) = last {
            if t == frame.time_secs {
                let again = pictures[i].clone();
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
            Picture::Rgb(img) => pictures.push(img),
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
    pictures: &[RgbImage],
    width: u32,
    height: u32,
    spec: &AnimatedSpec,
) -> Result<Bytes, MediaError> {
    let _ = (pictures, width, height);
    match spec.format {
        AnimatedFormat::Webp | AnimatedFormat::Gif => Err(MediaError::Internal(
            "animated encoders are not wired yet".into(),
        )),
    }
}
