//! Streaming sources: an HLS playlist or a DASH manifest, read as the
//! segments of one rendition.
//!
//! Everything here is pure: it turns the bytes of a playlist or manifest
//! (fetched by the caller) into [`Rendition`]s and a [`Timeline`] of
//! [`Segment`]s whose URIs are resolved against the document's own URL.
//! Whether those URIs may be read (same origin and prefix as the
//! environment's template) is decided by the caller before any fetch.
//!
//! - [`hls`]: master and media playlists (m3u8-rs).
//! - [`dash`]: MPD manifests (dash-mpd-core): `SegmentTemplate` with
//!   `$Number$`/`$Time$`/`SegmentTimeline`, `SegmentList`, `SegmentBase`.
//! - [`sidx`]: the `sidx` box a `SegmentBase` representation's index range
//!   holds: its subsegments as byte ranges.
//! - [`choose`]: which rendition a render of a given size reads.

pub mod choose;
pub mod dash;
pub mod hls;
pub mod sidx;

use url::Url;

/// Bounds on one document.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Most segments one rendition may list (past it: [`StreamError::TooLarge`]).
    pub max_segments: usize,
}

/// Bytes of one resource: all of it, or `range` (start, end exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Part {
    pub uri: Url,
    pub range: Option<(u64, u64)>,
}

/// One segment of a rendition's timeline. Each starts with a keyframe
/// and decodes alone (after its init segment, if any).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Where it starts on the presentation's timeline, microseconds from
    /// the start of the first segment.
    pub start_us: u64,
    pub duration_us: u64,
    pub media: Part,
    /// The initialization segment to read before it (HLS `EXT-X-MAP`,
    /// DASH `Initialization`), if the format needs one.
    pub init: Option<Part>,
}

/// One rendition's segments, in order, without gaps.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub segments: Vec<Segment>,
    /// Sum of the segments' durations (HLS) or the presentation's
    /// duration (DASH), microseconds.
    pub duration_us: u64,
    /// An HLS `EVENT` playlist without `EXT-X-ENDLIST`: segments may still
    /// be added, so only what lies within the listed ones is settled.
    pub growing: bool,
}

impl Timeline {
    /// The timeline moved so that its first segment starts at 0 (a DASH
    /// timeline may start later: players count from its first segment).
    pub fn from_zero(mut self) -> Timeline {
        let first = self.segments.first().map_or(0, |s| s.start_us);
        if first > 0 {
            for s in &mut self.segments {
                s.start_us -= first;
            }
            self.duration_us = self.duration_us.saturating_sub(first);
        }
        self
    }

    /// The index of the segment shown at `time_us` (the last one for a
    /// time past the end); `None` if there are no segments.
    pub fn segment_at(&self, time_us: u64) -> Option<usize> {
        // (A time before the first segment's start is in the first.)
        if self.segments.is_empty() {
            return None;
        }
        let after = self.segments.partition_point(|s| s.start_us <= time_us);
        Some(after.saturating_sub(1))
    }
}

/// Where a rendition's segments are listed.
#[derive(Debug, Clone, PartialEq)]
pub enum Segments {
    /// An HLS media playlist, to fetch and parse with [`hls::parse`].
    Playlist(Url),
    /// Listed in the document itself (DASH templates and lists).
    Listed(Timeline),
    /// A DASH `SegmentBase`: one file whose `sidx` box, in `index`, lists
    /// its subsegments; read it and pass it to [`sidx::timeline`].
    Indexed {
        media: Url,
        init: Option<(u64, u64)>,
        index: (u64, u64),
        /// Where the presentation's timeline puts the file's start
        /// (`presentationTimeOffset`), in the sidx's timescale units is
        /// not known yet: microseconds.
        offset_us: u64,
    },
}

/// One of the versions of the video a document offers.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendition {
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Bits per second, as declared (0 if not).
    pub bandwidth: u64,
    pub segments: Segments,
}

/// What an HLS document is.
#[derive(Debug, Clone, PartialEq)]
pub enum Hls {
    /// A master playlist: its video renditions (I-frame-only and
    /// audio-only ones left out).
    Master(Vec<Rendition>),
    /// A media playlist.
    Media(Timeline),
}

/// Why a document cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StreamError {
    /// Not a playlist or manifest thumbd can read.
    #[error("{0}")]
    Invalid(String),
    /// Segments are encrypted (HLS `EXT-X-KEY` other than `NONE`, DASH
    /// `ContentProtection`): thumbd never fetches them.
    #[error("the video's segments are encrypted; thumbd does not read encrypted streams")]
    Encrypted,
    /// A live stream (HLS without `EXT-X-ENDLIST` and not an `EVENT`
    /// playlist, DASH `type="dynamic"`): its frames at a time change.
    #[error("the playlist is a live stream; thumbd reads only VOD and EVENT playlists")]
    Live,
    /// An answer that depends on where a growing `EVENT` playlist ends
    /// (its middle, best frame, storyboard, a time past its last segment).
    #[error("the playlist is an EVENT playlist still growing (no EXT-X-ENDLIST): thumbd answers only times within its listed segments until it ends (no middle, auto, storyboard or time past its end, which would change)")]
    Growing,
    /// More segments (or a bigger document) than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// Valid, but nothing in it is a video thumbd can read (no video
    /// rendition, several DASH periods, a hierarchical sidx).
    #[error("{0}")]
    Unsupported(String),
}
