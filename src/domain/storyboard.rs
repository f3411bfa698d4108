//! What a storyboard shows.

use super::Format;

/// What a storyboard request asks for.
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
    /// About one per `duration / MAX_TILES`, no closer than the keyframes.
    Auto,
    /// This many, evenly spread.
    Tiles(u32),
    /// One every this many microseconds.
    Interval(u64),
}

/// Most tiles in one storyboard.
pub const MAX_TILES: u32 = 100;
