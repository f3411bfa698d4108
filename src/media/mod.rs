//! The media pipeline: one picture of a video at a moment.
//!
//! `render` takes a seekable byte source and a [`RenderSpec`] and returns an
//! encoded image. It is blocking, CPU-bound code with no knowledge of HTTP;
//! the server runs it through [`crate::render`]'s bounded pool, and the CLI and
//! tests call it directly.
//!
//! - [`avio`]: FFmpeg custom I/O over any `Read + Seek` source.
//! - [`decode`]: open the container, seek, decode forward to the exact frame.
//! - [`index`]: the demuxer's index of a stream (which bytes a frame needs).
//! - [`mp4`]: MP4 top-level boxes, to fetch the index in one request.
//! - [`geometry`]: output size, crop and letterbox from the request and the
//!   video's displayed shape (rotation, sample aspect ratio). Pure.
//! - [`picture`]: scale and convert the frame (to YUV for WebP, else RGB),
//!   rotate, pad.
//! - [`tonemap`]: PQ/HLG HDR to SDR.
//! - [`encode`]: WebP, JPEG, PNG.
//! - [`frames`]: many frames of one open video: keyframes decoded alone
//!   (their packets fetched together), exact frames, a sequence at a rate.
//! - [`bestframe`]: `timeStamp=auto`, the most representative keyframe.
//! - [`storyboard`]: a sprite of tiles and its layout.
//! - [`animated`]: animated WebP and GIF previews.

pub mod animate;
pub mod animated;
pub mod avio;
pub mod bestframe;
pub mod decode;
pub mod encode;
pub mod frames;
pub mod geometry;
pub mod index;
pub mod mp4;
pub mod picture;
pub mod storyboard;
pub mod tonemap;

use std::time::Instant;

use bytes::Bytes;

use crate::source::SourceError;
use http::StatusCode;

use crate::domain::Problem;
pub use crate::domain::{Fit, Format, RenderSpec, TimeSpec, MAX_DIMENSION};

/// Bounds on one render.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest decoded frame, in pixels.
    pub max_frame_pixels: u64,
    /// Most bytes read from the source.
    pub max_source_bytes: u64,
    /// When the render gives up.
    pub deadline: Instant,
    /// Decoder threads; 0 lets FFmpeg choose.
    pub decoder_threads: usize,
    /// Frames the best-frame search may decode beyond keyframes when those
    /// are few or poor (see [`bestframe`]); 0: keyframes only.
    pub best_frame_scan_frames: u32,
}

/// An encoded thumbnail and what was chosen to make it.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub bytes: Bytes,
    pub format: Format,
    pub width: u32,
    pub height: u32,
    /// Seconds from the start of the video of the frame shown.
    pub time_secs: f64,
}

/// Why a render failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MediaError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the source has no video stream")]
    NoVideoStream,
    #[error("the source is not a video thumbd can read: {0}")]
    Unreadable(String),
    #[error("no frame could be decoded: {0}")]
    NoFrame(String),
    #[error("the video frame is {width}x{height}, more than the {limit} pixels allowed")]
    FrameTooLarge { width: u32, height: u32, limit: u64 },
    #[error("the render read more than the {limit} bytes allowed from the source")]
    SourceTooLarge { limit: u64 },
    #[error("the render took longer than allowed")]
    Timeout,
    #[error("internal media error: {0}")]
    Internal(String),
}

/// Renders one thumbnail from `input`. Blocking; run it off the async runtime.
pub fn render(
    input: Box<dyn crate::source::SourceRead>,
    spec: &RenderSpec,
    limits: &Limits,
) -> Result<Rendered, MediaError> {
    let frame = decode::decode_frame(input, spec.time, limits)?;
    finish(&frame, spec)
}

/// Scales, orients and encodes a decoded frame as `spec` asks. The frame is
/// not changed, so one decode can serve several sizes and formats.
pub fn finish(frame: &decode::DecodedFrame, spec: &RenderSpec) -> Result<Rendered, MediaError> {
    let plan = geometry::plan(&frame.shape(), spec.width, spec.height, spec.fit);
    let picture = picture::prepare(frame, &plan, spec.format)?;
    let (width, height) = (picture.width(), picture.height());
    let bytes = encode::encode(picture, spec.format, spec.quality)?;
    Ok(Rendered {
        bytes,
        format: spec.format,
        width,
        height,
        time_secs: frame.time_secs,
    })
}

impl From<&MediaError> for Problem {
    fn from(e: &MediaError) -> Problem {
        use StatusCode as S;
        match e {
        MediaError::Source(s) => Problem::from(s),
        MediaError::NoVideoStream => Problem::new(
            S::UNSUPPORTED_MEDIA_TYPE,
            "no-video-stream",
            "No video stream",
            "the source has no video stream (audio only, or not a video)",
        ),
        MediaError::Unreadable(_) => Problem::new(
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media",
            "Unsupported media",
            "the source is not a video thumbd can read (unknown container, unsupported codec, empty or corrupt file)",
        ),
        MediaError::NoFrame(_) => Problem::new(
            S::UNPROCESSABLE_ENTITY,
            "undecodable-video",
            "No decodable frame",
            "no frame of the video could be decoded; it may be truncated or corrupt",
        ),
        MediaError::FrameTooLarge { .. } => Problem::new(
            S::UNPROCESSABLE_ENTITY,
            "frame-too-large",
            "Video frame too large",
            e.to_string(),
        ),
        MediaError::SourceTooLarge { .. } => Problem::new(
            S::PAYLOAD_TOO_LARGE,
            "source-too-large",
            "Source too large",
            e.to_string(),
        ),
        MediaError::Timeout => Problem::new(
            S::GATEWAY_TIMEOUT,
            "render-timeout",
            "Render timed out",
            "the thumbnail took longer than the render time limit",
        ),
        MediaError::Internal(_) => Problem::internal(),
    }
    }
}
