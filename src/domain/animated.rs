//! What an animated preview shows, and the bounds it is checked against.

/// Animated output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnimatedFormat {
    Webp,
    Gif,
}

impl AnimatedFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            AnimatedFormat::Webp => "image/webp",
            AnimatedFormat::Gif => "image/gif",
        }
    }
}

/// What an animation shows; canonical, so with org, env and key it is the
/// cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnimatedSpec {
    pub format: AnimatedFormat,
    /// Microseconds from the start.
    pub start_us: u64,
    pub end_us: u64,
    pub fps: u32,
    pub width: u32,
    /// WebP only.
    pub quality: Option<u8>,
}

/// The configured bounds a request is checked against.
#[derive(Debug, Clone, Copy)]
pub struct AnimatedLimits {
    pub max_secs: f64,
    pub max_fps: u32,
    pub max_width: u32,
}

pub const DEFAULT_SECS: f64 = 5.0;
pub const DEFAULT_FPS: u32 = 15;
pub const DEFAULT_WIDTH: u32 = 320;
