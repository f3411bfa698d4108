//! Storyboard URLs: `/v1/storyboard/{org}/{env}/{key}.{webp|jpg|png|vtt|json}`
//! parsed and validated into a [`StoryboardRequest`]. Pure.

use std::fmt;

use super::{
    known_params, parse_count, parse_path, parse_quality, parse_seconds, seconds_to_us, FieldError,
};
use crate::domain::storyboard::{StoryboardSpec, TileCount, SHEET_TILES};
use crate::domain::Format;

/// Default tile width, pixels.
pub const DEFAULT_TILE_WIDTH: u32 = 160;
/// Widest tile.
pub const MAX_TILE_WIDTH: u32 = 640;
/// Default tiles per row.
pub const DEFAULT_COLUMNS: u32 = 10;
/// Largest `tiles` (and `sheet`) the parser reads: six digits. The
/// server's own bound, `pictures.storyboard_max_tiles`, is checked after
/// parsing ([`StoryboardRequest::check_limits`]).
const MAX_COUNT: u32 = 999_999;

/// What the URL asks for: a sprite sheet, or a description of them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Sprite,
    /// WebVTT cues pointing into the sheets (`#xywh=`).
    Vtt,
    Json,
}

/// A validated storyboard request; `spec` and `sheet` are canonical (the
/// cache key with org, env and key).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StoryboardRequest {
    pub org: String,
    pub env: String,
    pub key: String,
    pub spec: StoryboardSpec,
    /// Which sprite sheet (`sheet=`): 0, the first, is the only one of
    /// most storyboards, and its render plans every sheet's tiles.
    pub sheet: u32,
}

/// The form the shared cache names entries by (`{key:?}`): the derived
/// one, with `sheet` left out on sheet 0, so the first sheet of a
/// storyboard that could only ever have one sheet keeps the name it had
/// before there were sheets. An `interval` storyboard names it always: its
/// first sprite shows other tiles now that the interval no longer grows to
/// keep 100 tiles, and must not be taken for one an older thumbd stored.
impl fmt::Debug for StoryboardRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("StoryboardRequest");
        d.field("org", &self.org)
            .field("env", &self.env)
            .field("key", &self.key)
            .field("spec", &self.spec);
        if self.sheet > 0 || matches!(self.spec.tiles, TileCount::Interval(_)) {
            d.field("sheet", &self.sheet);
        }
        d.finish()
    }
}

/// A storyboard URL parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedStoryboard {
    pub request: StoryboardRequest,
    pub output: Output,
    pub token: Option<String>,
}

impl StoryboardRequest {
    /// The sprite's query string, canonical: what the VTT and JSON point
    /// at (`sheet` only past the first, so single-sheet URLs read as they
    /// always did).
    pub fn sprite_query(&self) -> String {
        let s = &self.spec;
        let mut q = vec![format!("width={}", s.tile_width)];
        match s.tiles {
            TileCount::Auto => {}
            TileCount::Tiles(n) => q.push(format!("tiles={n}")),
            TileCount::Interval(us) => q.push(format!("interval={}", us as f64 / 1e6)),
            TileCount::Scenes => q.push("tiles=scenes".into()),
        }
        q.push(format!("columns={}", s.columns));
        if s.exact {
            q.push("exact=1".into());
        }
        if let Some(quality) = s.quality {
            q.push(format!("quality={quality}"));
        }
        if self.sheet > 0 {
            q.push(format!("sheet={}", self.sheet));
        }
        q.join("&")
    }

    /// The same storyboard's sheet `sheet`.
    pub fn on_sheet(&self, sheet: u32) -> StoryboardRequest {
        StoryboardRequest {
            sheet,
            ..self.clone()
        }
    }

    /// Checks what parsing cannot: a `tiles` count over the server's
    /// `pictures.storyboard_max_tiles` (a well-formed request this server
    /// does not make: 422). `interval` is never refused: the interval
    /// grows to keep that many tiles.
    pub fn check_limits(&self, max_tiles: u32) -> Result<(), FieldError> {
        match self.spec.tiles {
            TileCount::Tiles(n) if n > max_tiles => Err(FieldError::new(
                "query.tiles",
                &n.to_string(),
                format!("tiles must be at most {max_tiles} (this server's pictures.storyboard_max_tiles)"),
            )),
            _ => Ok(()),
        }
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
    let mut sheet = 0;
    let mut token = None;
    let params = known_params(
        query,
        &[
            "width", "tiles", "interval", "columns", "exact", "quality", "format", "sheet", "token",
        ],
        &mut errors,
    );
    let sprite = matches!(output, Some((Output::Sprite, _)));
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
            "tiles" => {
                let count = match value.as_ref() {
                    "scenes" => Some(TileCount::Scenes),
                    n => parse_count(n, MAX_COUNT).map(TileCount::Tiles),
                };
                match count {
                    Some(count) => {
                        if matches!(tiles, TileCount::Interval(_)) {
                            invalid("give tiles or interval, not both");
                        }
                        tiles = count
                    }
                    None => invalid("tiles must be scenes or a whole number of at least 1"),
                }
            }
            "interval" => match parse_seconds(&value).filter(|s| *s >= 0.001) {
                Some(s) => {
                    if matches!(tiles, TileCount::Tiles(_) | TileCount::Scenes) {
                        invalid("give tiles or interval, not both");
                    }
                    tiles = TileCount::Interval(seconds_to_us(s))
                }
                None => invalid("interval must be a number of seconds of at least 0.001"),
            },
            "columns" => match parse_count(&value, SHEET_TILES) {
                Some(n) => columns = n,
                None => invalid(&format!(
                    "columns must be an integer between 1 and {SHEET_TILES}"
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
            "sheet" => match parse_sheet(&value) {
                Some(n) if sprite => sheet = n,
                Some(_) => {
                    invalid("sheet names one sprite sheet; the .vtt and .json describe every sheet")
                }
                None => invalid("sheet must be a whole number (0 for the first sheet)"),
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
                    sheet,
                },
                output,
                token,
            })
        }
        _ => Err(errors),
    }
}

/// A sheet number: plain digits, 0 to [`MAX_COUNT`].
fn parse_sheet(value: &str) -> Option<u32> {
    match value {
        "0" => Some(0),
        n => parse_count(n, MAX_COUNT),
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
            Some("width=0&tiles=0&columns=101&exact=2&format=gif&sheet=1"),
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
                "query.format",
                "query.sheet"
            ]
        );
        for bad in [
            "tiles=Scenes",
            "tiles=1000000",
            "tiles=-1",
            "sheet=x",
            "sheet=-1",
        ] {
            let e = parse("o/e/a.png", Some(bad)).unwrap_err();
            assert_eq!(e.len(), 1, "{bad}");
        }
        let e = parse("o/e/a.vtt", Some("tiles=scenes&interval=2")).unwrap_err();
        assert_eq!(e[0].location, "query.interval");
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

    #[test]
    fn sheets_scenes_and_the_tile_limit() {
        let p = parse("o/e/a.webp", Some("tiles=250&sheet=2&token=t")).unwrap();
        assert_eq!(p.request.spec.tiles, TileCount::Tiles(250));
        assert_eq!(p.request.sheet, 2);
        assert_eq!(
            p.request.sprite_query(),
            "width=160&tiles=250&columns=10&quality=80&sheet=2"
        );
        assert_eq!(
            p.request.on_sheet(0).sprite_query(),
            "width=160&tiles=250&columns=10&quality=80"
        );
        // Over the server's limit: refused after parsing, at `query.tiles`.
        let e = p.request.check_limits(200).unwrap_err();
        assert_eq!(
            (e.location.as_str(), e.value.as_str()),
            ("query.tiles", "250")
        );
        assert!(p.request.check_limits(250).is_ok());
        let p = parse("o/e/a.json", Some("tiles=scenes")).unwrap();
        assert_eq!(p.request.spec.tiles, TileCount::Scenes);
        assert_eq!(p.request.sheet, 0);
        assert!(p.request.check_limits(1).is_ok());
        assert_eq!(
            p.request.sprite_query(),
            "width=160&tiles=scenes&columns=10&quality=80"
        );
        assert_eq!(
            parse("o/e/a.png", Some("sheet=0")).unwrap().request.sheet,
            0
        );
    }

    #[test]
    fn the_first_sheet_keeps_its_shared_cache_name() {
        // The shared cache names a sprite by `{request:?}`: the first sheet
        // of a storyboard that has one sheet is named as before sheets.
        let p = parse("o/e/a.mp4.webp", Some("tiles=12")).unwrap();
        assert_eq!(
            format!("{:?}", p.request),
            "StoryboardRequest { org: \"o\", env: \"e\", key: \"a.mp4\", spec: StoryboardSpec { \
             format: Webp, tile_width: 160, tiles: Tiles(12), columns: 10, exact: false, \
             quality: Some(80) } }"
        );
        // Later sheets differ, and so does any sheet of an interval (whose
        // first sprite changed meaning).
        let later = format!("{:?}", p.request.on_sheet(1));
        assert!(later.ends_with(", sheet: 1 }"), "{later}");
        let p = parse("o/e/a.mp4.webp", Some("interval=2")).unwrap();
        assert!(format!("{:?}", p.request).ends_with(", sheet: 0 }"));
    }
}
