//! Storyboard URLs: `/v1/storyboard/{org}/{env}/{key}.{webp|jpg|png|vtt|json}`
//! parsed and validated into a [`StoryboardRequest`]. Pure.

use super::{
    known_params, parse_count, parse_path, parse_quality, parse_seconds, seconds_to_us, FieldError,
};
use crate::domain::storyboard::{StoryboardSpec, TileCount, MAX_TILES};
use crate::domain::Format;

/// Default tile width, pixels.
pub const DEFAULT_TILE_WIDTH: u32 = 160;
/// Widest tile.
pub const MAX_TILE_WIDTH: u32 = 640;
/// Default tiles per row.
pub const DEFAULT_COLUMNS: u32 = 10;

/// What the URL asks for: the sprite, or a description of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Sprite,
    /// WebVTT cues pointing into the sprite (`#xywh=`).
    Vtt,
    Json,
}

/// A validated storyboard request; `spec` is canonical (the cache key with
/// org, env and key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoryboardRequest {
    pub org: String,
    pub env: String,
    pub key: String,
    pub spec: StoryboardSpec,
}

/// A storyboard URL parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedStoryboard {
    pub request: StoryboardRequest,
    pub output: Output,
    pub token: Option<String>,
}

impl StoryboardRequest {
    /// The sprite's query string, canonical: what the VTT and JSON point at.
    pub fn sprite_query(&self) -> String {
        let s = &self.spec;
        let mut q = vec![format!("width={}", s.tile_width)];
        match s.tiles {
            TileCount::Auto => {}
            TileCount::Tiles(n) => q.push(format!("tiles={n}")),
            TileCount::Interval(us) => q.push(format!("interval={}", us as f64 / 1e6)),
        }
        q.push(format!("columns={}", s.columns));
        if s.exact {
            q.push("exact=1".into());
        }
        if let Some(quality) = s.quality {
            q.push(format!("quality={quality}"));
        }
        q.join("&")
    }
}

const EXTS: &str = "webp, jpg, jpeg, png, vtt or json";

/// Parses the path after `/v1/storyboard/` and the query.
pub fn parse(path_tail: &str, query: Option<&str>) -> Result<ParsedStoryboard, Vec<FieldError>> {
    let mut errors = Vec::new();
    let path = parse_path(path_tail, EXTS, &mut errors);
    let output = path
        .as_ref()
        .and_then(|p| match p.ext.to_ascii_lowercase().as_str() {
            "vtt" => Some((Output::Vtt, None)),
            "json" => Some((Output::Json, None)),
            ext => match Format::from_ext(ext) {
                Some(f @ (Format::Webp | Format::Jpeg | Format::Png)) => {
                    Some((Output::Sprite, Some(f)))
                }
                _ => {
                    errors.push(FieldError::new(
                        "path.format",
                        p.ext,
                        format!(
                            "a storyboard is .{}",
                            EXTS.replace(", ", ", .").replace(" or ", " or .")
                        ),
                    ));
                    None
                }
            },
        });
    let mut width = DEFAULT_TILE_WIDTH;
    let mut tiles = TileCount::Auto;
    let mut columns = DEFAULT_COLUMNS;
    let mut exact = false;
    let mut quality = None;
    let mut sprite_format = None;
    let mut token = None;
    let params = known_params(
        query,
        &[
            "width", "tiles", "interval", "columns", "exact", "quality", "format", "token",
        ],
        &mut errors,
    );
    for (name, value) in params {
        let loc = format!("query.{name}");
        let mut invalid = |m: &str| errors.push(FieldError::new(&loc, &value, m));
        match name.as_ref() {
            "width" => match parse_count(&value, MAX_TILE_WIDTH) {
                Some(w) => width = w,
                None => invalid(&format!(
                    "width (of a tile) must be an integer between 1 and {MAX_TILE_WIDTH}"
                )),
            },
            "tiles" => match parse_count(&value, MAX_TILES) {
                Some(n) => {
                    if matches!(tiles, TileCount::Interval(_)) {
                        invalid("give tiles or interval, not both");
                    }
                    tiles = TileCount::Tiles(n)
                }
                None => invalid(&format!(
                    "tiles must be an integer between 1 and {MAX_TILES}"
                )),
            },
            "interval" => match parse_seconds(&value).filter(|s| *s >= 0.001) {
                Some(s) => {
                    if matches!(tiles, TileCount::Tiles(_)) {
                        invalid("give tiles or interval, not both");
                    }
                    tiles = TileCount::Interval(seconds_to_us(s))
                }
                None => invalid("interval must be a number of seconds of at least 0.001"),
            },
            "columns" => match parse_count(&value, MAX_TILES) {
                Some(n) => columns = n,
                None => invalid(&format!(
                    "columns must be an integer between 1 and {MAX_TILES}"
                )),
            },
            "exact" => match value.as_ref() {
                "1" | "true" => exact = true,
                "0" | "false" => exact = false,
                _ => invalid("exact must be 1 or 0"),
            },
            "quality" => match parse_quality(&value) {
                Some(q) => quality = Some(q),
                None => invalid("quality must be an integer between 1 and 100"),
            },
            "format" => match Format::from_ext(&value) {
                Some(f @ (Format::Webp | Format::Jpeg | Format::Png)) => sprite_format = Some(f),
                _ => invalid(
                    "format (of the sprite a .vtt or .json points at) must be webp, jpg or png",
                ),
            },
            _ => token = Some(value.to_string()),
        }
    }
    match (path, output) {
        (Some(path), Some((output, format))) if errors.is_empty() => {
            let format = format.or(sprite_format).unwrap_or(Format::Webp);
            Ok(ParsedStoryboard {
                request: StoryboardRequest {
                    org: path.org,
                    env: path.env,
                    key: path.key,
                    spec: StoryboardSpec {
                        format,
                        tile_width: width,
                        tiles,
                        columns,
                        exact,
                        quality: if format.is_lossy() {
                            Some(quality.unwrap_or(super::DEFAULT_QUALITY))
                        } else {
                            None
                        },
                    },
                },
                output,
                token,
            })
        }
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_output_and_the_defaults() {
        let p = parse("o/e/clips/a.mp4.vtt", None).unwrap();
        assert_eq!(p.output, Output::Vtt);
        assert_eq!(p.request.key, "clips/a.mp4");
        let s = &p.request.spec;
        assert_eq!((s.format, s.tile_width, s.columns), (Format::Webp, 160, 10));
        assert_eq!(s.tiles, TileCount::Auto);
        let p = parse("o/e/a.jpg", Some("width=200&tiles=12&columns=4&exact=1")).unwrap();
        assert_eq!(p.output, Output::Sprite);
        assert_eq!(p.request.spec.tiles, TileCount::Tiles(12));
        assert!(p.request.spec.exact);
        assert_eq!(
            p.request.sprite_query(),
            "width=200&tiles=12&columns=4&exact=1&quality=80"
        );
        let p = parse("o/e/a.json", Some("format=jpg&interval=2.5&token=t")).unwrap();
        assert_eq!(p.request.spec.format, Format::Jpeg);
        assert_eq!(p.request.spec.tiles, TileCount::Interval(2_500_000));
        assert_eq!(p.token.as_deref(), Some("t"));
    }

    #[test]
    fn bad_parameters_are_each_reported() {
        let e = parse(
            "o/e/a.vtt",
            Some("width=0&tiles=101&columns=x&exact=2&format=gif"),
        )
        .unwrap_err();
        let at: Vec<_> = e.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(
            at,
            [
                "query.width",
                "query.tiles",
                "query.columns",
                "query.exact",
                "query.format"
            ]
        );
        let e = parse("o/e/a.vtt", Some("tiles=5&interval=2")).unwrap_err();
        assert_eq!(e[0].location, "query.interval");
        assert_eq!(
            parse("o/e/a.gif", None).unwrap_err()[0].location,
            "path.format"
        );
        assert_eq!(
            parse("o/e/../a.vtt", None).unwrap_err()[0].location,
            "path.key"
        );
    }
}
