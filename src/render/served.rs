//! What the renderer hands out: a thumbnail with its headers made once, a
//! storyboard sprite or animation, and whether it came from a cache.

use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::domain::Format;
use crate::media::{self, storyboard::Layout};
use crate::request::animated::AnimatedRequest;
use crate::request::storyboard::StoryboardRequest;
use crate::shared_cache::StoredSequence;

/// A rendered thumbnail as served. The header texts are made once, so a
/// cache hit only shares them.
#[derive(Debug)]
pub struct Thumbnail {
    pub bytes: Bytes,
    pub format: Format,
    /// Strong entity tag derived from the bytes, quoted (ASCII).
    pub etag: Bytes,
    pub width: u32,
    pub height: u32,
    /// Seconds into the video of the frame shown.
    pub time_secs: f64,
    /// `time_secs` to the millisecond, as sent in `X-Thumbnail-Time`.
    pub time_text: Bytes,
    /// Where the render's time went.
    pub timings: RenderTimings,
}

/// Where a render spent its time, for `Server-Timing` and the stage
/// histograms.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RenderTimings {
    /// Waiting on the source: opening it and every read of its bytes.
    pub fetch: Duration,
    /// Demuxing and decoding up to the frame shown.
    pub decode: Duration,
    /// Scaling, converting and encoding the picture.
    pub encode: Duration,
    /// The decoded frame was reused from the frame cache (another size of
    /// the same frame), so nothing was fetched or decoded.
    pub frame_reused: bool,
    /// Found in the shared cache: nothing was rendered.
    pub from_shared: bool,
}

impl Thumbnail {
    pub(super) fn new(r: &media::Rendered, timings: RenderTimings) -> Thumbnail {
        let etag = strong_etag(&r.bytes);
        Thumbnail {
            bytes: r.bytes.clone(),
            format: r.format,
            etag: Bytes::from(etag),
            width: r.width,
            height: r.height,
            time_secs: r.time_secs,
            time_text: Bytes::from(format!("{:.3}", r.time_secs)),
            timings,
        }
    }

    /// The entity tag as text.
    pub fn etag_str(&self) -> &str {
        std::str::from_utf8(&self.etag).expect("hex in quotes")
    }
}

/// A strong entity tag for these bytes, quoted: 128 bits of their SHA-256.
pub fn strong_etag(bytes: &[u8]) -> String {
    format!("\"{}\"", hex::encode(&Sha256::digest(bytes)[..16]))
}

/// Whether a thumbnail came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    /// Rendered for this request.
    Miss,
    /// Rendered for another request that asked first; this one waited.
    Coalesced,
    /// Not in memory; found in the shared cache (by this request or one it
    /// waited on).
    Shared,
}

impl CacheStatus {
    /// As sent in `X-Thumbnail-Cache`: a coalesced wait is a miss to the
    /// client (it waited for a render).
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Shared => "shared",
            CacheStatus::Miss | CacheStatus::Coalesced => "miss",
        }
    }
}

/// A storyboard or animated preview's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SequenceKey {
    Storyboard(StoryboardRequest),
    Animated(AnimatedRequest),
}

/// A storyboard sprite or an animation as served.
#[derive(Debug)]
pub struct Sequence {
    pub bytes: Bytes,
    pub content_type: &'static str,
    /// Strong entity tag derived from the bytes, quoted.
    pub etag: String,
    pub width: u32,
    pub height: u32,
    /// Where each tile is (storyboards).
    pub layout: Option<Layout>,
    /// Frames in the animation (animations).
    pub frames: usize,
    /// Found in the shared cache: nothing was rendered.
    pub from_shared: bool,
    /// How long making it took on the render pool (fetching the frames it
    /// reads included); zero when it came from the shared cache.
    pub made_in: std::time::Duration,
}

impl Sequence {
    /// As the shared cache keeps it.
    pub(super) fn stored(&self) -> StoredSequence {
        StoredSequence {
            bytes: self.bytes.clone(),
            content_type: self.content_type.to_owned(),
            width: self.width,
            height: self.height,
            layout: self.layout.clone(),
            frames: self.frames,
        }
    }

    /// From the shared cache; `None` for a content type thumbd does not make.
    pub(super) fn from_stored(s: StoredSequence) -> Option<Sequence> {
        let content_type = ["image/webp", "image/jpeg", "image/png", "image/gif"]
            .into_iter()
            .find(|t| *t == s.content_type)?;
        let mut sequence = Sequence::new(
            s.bytes,
            content_type,
            (s.width, s.height),
            s.layout,
            s.frames,
        );
        sequence.from_shared = true;
        Some(sequence)
    }

    pub(super) fn new(
        bytes: Bytes,
        content_type: &'static str,
        (width, height): (u32, u32),
        layout: Option<Layout>,
        frames: usize,
    ) -> Sequence {
        Sequence {
            etag: strong_etag(&bytes),
            bytes,
            content_type,
            width,
            height,
            layout,
            frames,
            from_shared: false,
            made_in: std::time::Duration::ZERO,
        }
    }
}
