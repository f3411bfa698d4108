//! What a storyboard shows.

use super::Format;

/// What a storyboard request asks for: the whole storyboard, however many
/// sprite sheets it takes (which sheet a URL names is the request's).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoryboardSpec {
    pub format: Format,
    /// Tile width in pixels.
    pub tile_width: u32,
    /// How the tiles divide the video.
    pub tiles: TileCount,
    pub columns: u32,
    /// Exact frames rather than the keyframe at or before each time.
    pub exact: bool,
    pub quality: Option<u8>,
}

/// How many tiles, as the request says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileCount {
    /// About one per `duration / SHEET_TILES`, no closer than the
    /// keyframes: always one sheet, the one sprite existing pages and
    /// players were given, however long the video. The others spread
    /// over as many sheets as their tiles need.
    Auto,
    /// This many, evenly spread.
    Tiles(u32),
    /// One every this many microseconds.
    Interval(u64),
    /// One per scene: a tile from each keyframe where the picture changes
    /// a lot from the keyframe before (a cut), for chapter-like previews.
    Scenes,
}

/// Shortest tile, microseconds: WebVTT times are whole milliseconds, and
/// a cue must end after it starts.
pub const MIN_TILE_US: u64 = 1000;

/// Most tiles on one sprite sheet, and in a default storyboard. A
/// storyboard of more (`tiles`, `interval`, `scenes`, up to
/// `pictures.storyboard_max_tiles`) is split into sheets of at most this
/// many, each within `pictures.storyboard_max_pixels`.
pub const SHEET_TILES: u32 = 100;
