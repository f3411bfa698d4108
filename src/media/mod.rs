//! The media pipeline: one picture of a video at a moment.
//!
//! `render` takes a seekable byte source and a [`RenderSpec`] and returns an
//! encoded image. It is blocking, CPU-bound code with no knowledge of HTTP;
//! the server runs it through [`crate::render`]'s bounded pool, and the CLI and
//! tests call it directly.
//!
//! Every `unsafe` line lives under [`ffi`]; every other file denies
//! `unsafe_code`. From the top down: a file imports only files listed
//! below it (and the names of this one).
//!
//! - [`storyboard`]: a sprite of tiles and its layout.
//! - [`scenes`]: `tiles=scenes`: where a video's scenes start, consecutive
//!   keyframes compared small.
//! - [`animated`]: animated WebP and GIF previews: frames at a rate, scaled
//!   and handed one by one to [`animate`]'s encoders.
//! - [`decode`]: the entry points for one render:
//!   [`decode::probe_complete`], what the container says of an upload, and
//!   [`decode::decode_frame`], the frame a thumbnail shows (exact, or the
//!   best one). What a video is (`/v1/info`) is [`info`]'s.
//! - [`frame_number`]: when frame N is shown (`timeStamp=f1234`): from an
//!   MP4's index and composition offsets, packets, or a decode.
//! - [`bestframe`]: `timeStamp=auto`, the most representative keyframe.
//! - [`alpha`]: transparency in thumbnails: the alpha plane beside the
//!   picture (WebP, AVIF, PNG), or composited for JPEG.
//! - [`frames`]: many frames of one open video: keyframes decoded alone
//!   (their packets fetched together), exact frames, a sequence at a rate.
//! - [`exact`]: the exact frame shown at a time, from an open video: seek
//!   before it, decode forward, fetch in one request what the index says
//!   it needs.
//! - [`info`]: what a video is (`/v1/info`), from its container and
//!   codec configuration, no frame decoded.
//! - [`placeholder`]: BlurHash, ThumbHash and a tiny WebP of a frame.
//! - [`segmented`]: videos kept as segments (HLS, DASH): one segment
//!   opened per frame, segment starts as the keyframes.
//! - [`smartcrop`]: `fit=smart`: where the crop window goes (detail, skin
//!   tones, strong colour on a small copy of the frame).
//! - [`picture`]: scale and convert the frame (to YUV for WebP and AVIF,
//!   else RGB), tone-map, rotate, pad.
//! - [`stream`]: the FFmpeg stepping every decode shares: open the
//!   container and pick its video stream, seek, read packets, open a
//!   decoder; owns [`DecodedFrame`](stream::DecodedFrame).
//! - [`animate`]: animated WebP and GIF encoders.
//! - [`encode`]: WebP, AVIF, JPEG, PNG, and their settings.
//! - [`ffi`]: the calls into FFmpeg (custom I/O and its allow-lists, the
//!   index, seeking and decoder settings, swscale), libavif and libwebp,
//!   behind safe functions.
//! - Leaves, importing no other file here: [`pixels`] (the RGB and YUV
//!   pictures passed from `picture` to the encoders), [`palette`] (GIF
//!   palettes), [`geometry`] (output size, crop and letterbox from the
//!   request and the video's displayed shape; pure), [`tonemap`] (PQ/HLG
//!   HDR to SDR), [`mp4`] (MP4 top-level boxes, to fetch the index in one
//!   request).

#![deny(unsafe_code)]

pub mod alpha;
pub mod animate;
pub mod animated;
pub mod bestframe;
pub mod decode;
pub mod encode;
pub mod exact;
pub mod ffi;
pub mod frame_number;
pub mod frames;
pub mod geometry;
pub mod info;
pub mod mp4;
pub mod palette;
pub mod picture;
pub mod pixels;
pub mod placeholder;
pub mod scenes;
pub mod segmented;
pub mod smartcrop;
pub mod storyboard;
pub mod stream;
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
    finish(&frame, spec, alpha::DEFAULT_BACKGROUND)
}

/// Scales, orients and encodes a decoded frame as `spec` asks. The frame is
/// not changed, so one decode can serve several sizes and formats. A frame
/// with transparency keeps it in WebP, AVIF and PNG; a JPEG of it shows
/// `background` (RGB, `pictures.jpeg_background`) where it is transparent
/// ([`alpha`]).
pub fn finish(
    frame: &decode::DecodedFrame,
    spec: &RenderSpec,
    background: [u8; 3],
) -> Result<Rendered, MediaError> {
    let plan = match (spec.fit, spec.width, spec.height) {
        (Some(Fit::Smart), Some(w), Some(h)) => smartcrop::plan(frame, w, h)?,
        _ => geometry::plan(&frame.shape(), spec.width, spec.height, spec.fit),
    };
    let picture = alpha::prepare(frame, &plan, spec.format, background)?;
    let (width, height) = (picture.picture.width(), picture.picture.height());
    let bytes = encode::encode_final(picture, spec.format, spec.quality)?;
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
