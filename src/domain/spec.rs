//! What a picture is: its format, size, fit, quality and moment. The
//! canonical form every parser produces and the pipeline consumes.

/// Largest width or height a request may ask for, and the largest side of a
/// thumbnail rendered at the video's own size.
pub const MAX_DIMENSION: u32 = 4096;

/// Output image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Webp,
    Jpeg,
    Png,
    /// AV1 stills (libavif with libaom), for clients that ask for them.
    Avif,
}

impl Format {
    pub fn from_ext(ext: &str) -> Option<Format> {
        match ext.to_ascii_lowercase().as_str() {
            "webp" => Some(Format::Webp),
            "jpg" | "jpeg" => Some(Format::Jpeg),
            "png" => Some(Format::Png),
            "avif" => Some(Format::Avif),
            _ => None,
        }
    }

    pub fn ext(self) -> &'static str {
        match self {
            Format::Webp => "webp",
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Avif => "avif",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Webp => "image/webp",
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Avif => "image/avif",
        }
    }

    pub fn is_lossy(self) -> bool {
        !matches!(self, Format::Png)
    }
}

/// How a picture fills a box when both width and height are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fit {
    /// Fill the box exactly, cropping the overflow around the centre.
    Crop,
    /// Fit inside the box keeping the aspect ratio; may be smaller on one side.
    Contain,
    /// Stretch to exactly the box.
    Fill,
    /// Fit inside and letterbox with black to exactly the box.
    Pad,
    /// Fill the box exactly as `Crop` does (the same window size), with the
    /// window placed over the most salient part of the frame (detail, skin
    /// tones, saturation) rather than the centre.
    Smart,
}

impl Fit {
    /// thumbd's names, and the conversion-task API's: `max` (fit inside,
    /// = contain) and `scale` (stretch, = fill).
    pub fn parse(s: &str) -> Option<Fit> {
        match s {
            "crop" => Some(Fit::Crop),
            "smart" => Some(Fit::Smart),
            "contain" | "max" => Some(Fit::Contain),
            "fill" | "scale" => Some(Fit::Fill),
            "pad" => Some(Fit::Pad),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Fit::Crop => "crop",
            Fit::Contain => "contain",
            Fit::Fill => "fill",
            Fit::Pad => "pad",
            Fit::Smart => "smart",
        }
    }
}

/// Which moment of the video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeSpec {
    /// The middle of the video (no time given).
    Middle,
    /// Microseconds from the start of the video; past the end means the last frame.
    At(u64),
    /// The most representative frame (`timeStamp=auto`): not black, uniform,
    /// faded or blurred when a better one exists.
    Auto,
}

/// What to render, independent of where the video comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RenderSpec {
    pub format: Format,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Set only when both width and height are. `Smart` is its own value
    /// (and so its own render key): its window depends on the frame.
    pub fit: Option<Fit>,
    /// Set only for lossy formats.
    pub quality: Option<u8>,
    pub time: TimeSpec,
}

/// Default `quality` for lossy formats.
pub const DEFAULT_QUALITY: u8 = 80;

/// Frames the best-frame scan may decode beyond keyframes by default
/// (`pictures.best_frame_scan_frames`).
pub const DEFAULT_SCAN_FRAMES: u32 = 300;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_names_round_trip_and_smart_is_not_crop() {
        for fit in [Fit::Crop, Fit::Contain, Fit::Fill, Fit::Pad, Fit::Smart] {
            assert_eq!(Fit::parse(fit.as_str()), Some(fit));
        }
        assert_eq!(Fit::parse("smart"), Some(Fit::Smart));
        assert_ne!(
            Fit::Smart.as_str(),
            Fit::Crop.as_str(),
            "its own render key"
        );
        assert_eq!(Fit::parse("Smart"), None, "names are lower case");
    }
}
