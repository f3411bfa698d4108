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
///
/// `At`, `Middle`, `Auto` and `Keyframe` are what a decode is asked for;
/// `Fraction`, `Frame` and `Near` name a moment through something the
/// video alone knows (its duration, its frames' times, its best frame near
/// a time) and are settled into those before the render cache is asked
/// (see `render::moments`), so a moment named two ways is one cache entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeSpec {
    /// The middle of the video (no time given).
    Middle,
    /// Microseconds from the start of the video; past the end means the last frame.
    At(u64),
    /// The most representative frame (`timeStamp=auto`): not black, uniform,
    /// faded or blurred when a better one exists.
    Auto,
    /// The most representative frame within [`NEAR_WINDOW_US`] of this many
    /// microseconds (`timeStamp=auto:30`, or `auto` with `near=30`).
    Near(u64),
    /// A share of the duration in millionths (`timeStamp=25%`: 250 000).
    Fraction(u32),
    /// A frame number, counted from 0 in presentation order (`f1234`).
    Frame(u64),
    /// The keyframe at or before this many microseconds, decoded alone
    /// (`snap=keyframe`; other forms are settled into a time first).
    Keyframe(u64),
}

impl TimeSpec {
    /// The moment as a URL's `timeStamp` states it (`None` for the middle,
    /// which is no `timeStamp` at all). A settled `Keyframe` reads as its
    /// time: `snap=keyframe` says the rest.
    pub fn as_param(self) -> Option<String> {
        Some(match self {
            TimeSpec::Middle => return None,
            TimeSpec::At(us) | TimeSpec::Keyframe(us) => format_seconds(us),
            TimeSpec::Auto => "auto".to_owned(),
            TimeSpec::Near(us) => format!("auto:{}", format_seconds(us)),
            TimeSpec::Fraction(f) => {
                // Millionths of the whole: four decimals of a percent.
                let text = format!("{}.{:04}", f / 10_000, f % 10_000);
                format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
            }
            TimeSpec::Frame(n) => format!("f{n}"),
        })
    }

    /// Whether the moment depends on the picture (the best frame), so
    /// that `snap=keyframe` has nothing to snap.
    pub fn is_auto(self) -> bool {
        matches!(self, TimeSpec::Auto | TimeSpec::Near(_))
    }
}

/// Microseconds as the shortest decimal of seconds (`12.5`, `0.04`, `3`).
pub fn format_seconds(us: u64) -> String {
    let text = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// How far from its moment `auto:T` looks for the best frame, each way.
pub const NEAR_WINDOW_US: u64 = 5_000_000;

/// The whole duration in [`TimeSpec::Fraction`]'s unit.
pub const WHOLE: u32 = 1_000_000;

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
    /// `snap=keyframe`: the keyframe at or before the moment instead of
    /// the exact frame (faster, its own cache entry).
    pub snap: bool,
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
    fn moments_read_back_as_written() {
        for (spec, text) in [
            (TimeSpec::At(12_500_000), "12.5"),
            (TimeSpec::At(0), "0"),
            (TimeSpec::Auto, "auto"),
            (TimeSpec::Near(30_000_000), "auto:30"),
            (TimeSpec::Fraction(250_000), "25%"),
            (TimeSpec::Fraction(333_333), "33.3333%"),
            (TimeSpec::Fraction(WHOLE), "100%"),
            (TimeSpec::Frame(1234), "f1234"),
        ] {
            assert_eq!(spec.as_param().as_deref(), Some(text));
        }
        assert_eq!(TimeSpec::Middle.as_param(), None);
    }

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
