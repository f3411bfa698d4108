//! Storyboards: sprite sheets of tiles in a grid, each tile the picture of
//! the video at the start of its time range, for players' seek-bar
//! previews. The layout (which time each tile covers, where it sits) comes
//! with the image, for the WebVTT and JSON descriptions.
//!
//! A storyboard of more tiles than one sheet holds ([`SHEET_TILES`], and
//! `pictures.storyboard_max_pixels`) is split into sheets, each its own
//! render. The first sheet's render plans every tile (from the index, or
//! for `tiles=scenes` from [`super::scenes`]), so its layout lists them
//! all and the descriptions come from it; a later sheet takes its tiles'
//! times from that layout ([`Part::Later`]), so a tile shows what its cue
//! says whichever render made it.

#![deny(unsafe_code)]

use super::frames::{FrameSet, Frames};
use super::pixels::{Picture, RgbImage};
use super::stream::DecodedFrame;
use super::{encode, geometry, picture, scenes, Fit, Format, Limits, MediaError};
pub use crate::domain::storyboard::{StoryboardSpec, TileCount, MIN_TILE_US, SHEET_TILES};
use crate::source::SourceRead;

/// Tiles up to this wide are decoded without the deblocking filter (see
/// [`Frames::keyframes`]).
const SMALL_TILE: u32 = 320;

/// Where each tile is and what it covers. The first sheet's layout lists
/// every tile of the storyboard; `columns` and `rows` are those of a full
/// sheet, so tile `i` is on sheet `i / (columns * rows)` at `x`, `y`
/// there (one sheet when the tiles fit on one).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Layout {
    pub tile_width: u32,
    pub tile_height: u32,
    pub columns: u32,
    pub rows: u32,
    /// Seconds.
    pub duration: f64,
    pub tiles: Vec<Tile>,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tile {
    /// The time range the tile stands for, seconds.
    pub start: f64,
    pub end: f64,
    /// Top-left corner in its sheet.
    pub x: u32,
    pub y: u32,
    /// Seconds into the video of the frame shown. For a later sheet's
    /// tile in the first sheet's layout, the time whose frame the plan
    /// shows (a keyframe's, or the tile's start for an exact frame); NaN
    /// where that is not known before the sheet is made (a video without
    /// an index), which JSON writes as `null`.
    #[serde(deserialize_with = "seconds_or_nan")]
    pub shown: f64,
}

/// Reads [`Tile::shown`] back from the shared cache's JSON, where a NaN
/// was written as `null`.
fn seconds_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl Layout {
    /// Tiles on a full sheet (on the only one, at least all of them).
    pub fn tiles_per_sheet(&self) -> usize {
        (self.columns as usize * self.rows as usize).max(1)
    }

    /// How many sheets the tiles take.
    pub fn sheets(&self) -> u32 {
        self.tiles.len().div_ceil(self.tiles_per_sheet()) as u32
    }

    /// The sheet tile `i` is on.
    pub fn sheet_of(&self, i: usize) -> u32 {
        (i / self.tiles_per_sheet()) as u32
    }

    /// The tiles on `sheet`, in order; `None` past the last sheet.
    pub fn sheet_tiles(&self, sheet: u32) -> Option<&[Tile]> {
        let per = self.tiles_per_sheet();
        let first = (sheet as usize).checked_mul(per)?;
        (first < self.tiles.len()).then(|| &self.tiles[first..(first + per).min(self.tiles.len())])
    }

    /// The size in pixels of `sheet` (fewer columns and rows on a last
    /// sheet of fewer tiles).
    pub fn sheet_size(&self, sheet: u32) -> (u32, u32) {
        let count = self.sheet_tiles(sheet).map_or(0, <[Tile]>::len) as u32;
        let columns = self.columns.min(count).max(1);
        (
            columns * self.tile_width,
            count.div_ceil(columns) * self.tile_height,
        )
    }
}

/// An encoded sprite sheet and its layout.
#[derive(Debug, Clone)]
pub struct Storyboard {
    pub bytes: bytes::Bytes,
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
}

/// The server's bounds on a storyboard (`[pictures]`).
#[derive(Debug, Clone, Copy)]
pub struct StoryboardLimits {
    /// Largest sheet, in pixels (`storyboard_max_pixels`).
    pub max_pixels: u64,
    /// Most tiles over all sheets (`storyboard_max_tiles`): `interval`
    /// grows and scenes merge to keep within it.
    pub max_tiles: u32,
}

/// Which sheet a render makes.
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    /// The first: its render plans every tile, and its layout lists them.
    First,
    /// A later one, its tiles as the first sheet's layout `whole` lists.
    Later { sheet: u32, whole: &'a Layout },
}

/// Renders a sheet of the storyboard of the video `reader` holds. Blocking.
pub fn render(
    reader: Box<dyn SourceRead>,
    spec: &StoryboardSpec,
    part: Part<'_>,
    limits: &Limits,
    bounds: StoryboardLimits,
) -> Result<Storyboard, MediaError> {
    let mut frames = Frames::open(reader, limits)?;
    let duration_us = frames
        .duration_us()
        .filter(|&d| d > 0)
        .ok_or_else(|| MediaError::Unreadable("the video's duration is unknown".into()))?;
    let small = spec.tile_width <= SMALL_TILE;
    if let Part::Later { sheet, whole } = part {
        let (times, end_us) = sheet_times(whole, sheet)?;
        let set = match spec.tiles {
            TileCount::Scenes => {
                let indexed = !frames.indexed_keyframes()?.is_empty();
                scene_tiles(&mut frames, &times, indexed, small)?
            }
            _ if spec.exact => frames.exact(&times)?,
            _ => {
                let set = frames.keyframes(&times, small)?;
                exact_where_far(&mut frames, &times, set, layout_step(whole))?
            }
        };
        let tiles = SheetTiles {
            times: &times,
            end_us,
            set: &set,
            tile_height: Some(whole.tile_height),
        };
        return compose(spec, duration_us, tiles, limits, bounds);
    }
    let keyframes = frames.indexed_keyframes()?;
    match spec.tiles {
        TileCount::Auto => {
            let planned = tile_times(duration_us, spec.tiles, &keyframes, bounds.max_tiles);
            let (times, set) = if spec.exact {
                let set = frames.exact(&planned)?;
                (planned, set)
            } else {
                // Each tile starts where its keyframe is shown, so it shows
                // the frame on screen at its cue's start; tiles whose times
                // found the same keyframe (no index said where they are)
                // are one.
                at_keyframes(frames.keyframes(&planned, small)?, duration_us)
            };
            let tiles = SheetTiles {
                times: &times,
                end_us: duration_us,
                set: &set,
                tile_height: None,
            };
            compose(spec, duration_us, tiles, limits, bounds)
        }
        TileCount::Scenes => {
            let scenes = scenes::find(
                &mut frames,
                duration_us,
                &keyframes,
                bounds.max_tiles,
                limits,
            )?;
            let times: Vec<u64> = scenes.iter().map(|s| s.start_us).collect();
            let first = &times[..times.len().min(SHEET_TILES as usize)];
            let set = scene_tiles(&mut frames, first, !keyframes.is_empty(), small)?;
            first_sheet(
                spec,
                duration_us,
                &times,
                set,
                |i| scenes[i].shown,
                limits,
                bounds,
            )
        }
        // The count asked for: a tile whose keyframe is more than a tile
        // before its time shows its exact frame instead.
        TileCount::Tiles(_) | TileCount::Interval(_) => {
            let planned = tile_times(duration_us, spec.tiles, &keyframes, bounds.max_tiles);
            let step = planned.get(1).map_or(duration_us, |&t| t);
            let first = &planned[..planned.len().min(SHEET_TILES as usize)];
            let set = if spec.exact {
                frames.exact(first)?
            } else {
                let set = frames.keyframes(first, small)?;
                exact_where_far(&mut frames, first, set, step)?
            };
            let shown = |i: usize| planned_shown(&keyframes, planned[i], step, spec.exact);
            first_sheet(spec, duration_us, &planned, set, shown, limits, bounds)
        }
    }
}

/// The frames of scene tiles starting at `times`: each the keyframe a
/// scene starts with, shown at its start. With an index, that keyframe
/// decoded alone; without one (MPEG-TS), where a seek by bytes can land
/// on an earlier keyframe, the exact frame at the start, which is that
/// keyframe, decoded from the keyframe the seek found.
fn scene_tiles(
    frames: &mut Frames,
    times: &[u64],
    indexed: bool,
    small: bool,
) -> Result<FrameSet, MediaError> {
    if indexed {
        frames.keyframes(times, small)
    } else {
        frames.exact(times)
    }
}

/// The first sheet of a storyboard whose tiles start at `times` (all of
/// them), from `set`, the frames of (at least) its own tiles; its layout
/// lists every tile, a later sheet's showing `later_shown(i)` (see
/// [`Tile::shown`]). The tile height is the first frame's, for every
/// sheet. Blocking.
pub(super) fn first_sheet(
    spec: &StoryboardSpec,
    duration_us: u64,
    times: &[u64],
    set: FrameSet,
    later_shown: impl Fn(usize) -> f64,
    limits: &Limits,
    bounds: StoryboardLimits,
) -> Result<Storyboard, MediaError> {
    let first = set
        .frames
        .first()
        .ok_or_else(|| MediaError::NoFrame("no frame could be decoded".into()))?;
    let tile_height = tile_height_of(spec, first);
    let per = tiles_per_sheet(times.len(), spec, tile_height, bounds.max_pixels);
    let n = per.min(times.len());
    let tiles = SheetTiles {
        times: &times[..n],
        end_us: times.get(n).copied().unwrap_or(duration_us),
        set: &set,
        tile_height: Some(tile_height),
    };
    let mut board = compose(spec, duration_us, tiles, limits, bounds)?;
    let columns = board.layout.columns as usize;
    let seconds = |us: u64| us as f64 / 1e6;
    for (i, &t) in times.iter().enumerate().skip(n) {
        let on_sheet = i % per;
        board.layout.tiles.push(Tile {
            start: seconds(t),
            end: seconds(times.get(i + 1).copied().unwrap_or(duration_us)),
            x: (on_sheet % columns) as u32 * spec.tile_width,
            y: (on_sheet / columns) as u32 * tile_height,
            shown: later_shown(i),
        });
    }
    Ok(board)
}

/// The sheet's tiles' start times and the end of its last tile,
/// microseconds, from the first sheet's layout.
pub(super) fn sheet_times(whole: &Layout, sheet: u32) -> Result<(Vec<u64>, u64), MediaError> {
    let tiles = whole.sheet_tiles(sheet).ok_or_else(|| {
        MediaError::Internal(format!(
            "sheet {sheet} of a storyboard of {}",
            whole.sheets()
        ))
    })?;
    let times = tiles.iter().map(|t| micros(t.start)).collect();
    let end = tiles.last().map_or(0, |t| micros(t.end));
    Ok((times, end))
}

/// The spacing of an even storyboard (`tiles`, `interval`): its second
/// tile's start (the first starts at 0), or the whole video.
pub(super) fn layout_step(whole: &Layout) -> u64 {
    micros(whole.tiles.get(1).map_or(whole.duration, |t| t.start))
}

/// Seconds, as the layout keeps them, back to the microseconds they were
/// made from (exact: they are whole microseconds well within an f64).
fn micros(secs: f64) -> u64 {
    (secs * 1e6).round().max(0.0) as u64
}

/// The frame the tile at `t` will show, as its sheet decides it from
/// `keyframes` (the index, or segment starts): the keyframe at or before
/// `t` unless it is more than `step` before (or `exact`), then `t`'s own
/// frame, the one on screen at `t`. Seconds; NaN without an index.
pub(super) fn planned_shown(keyframes: &[u64], t: u64, step: u64, exact: bool) -> f64 {
    if exact {
        return t as f64 / 1e6;
    }
    let at = keyframes.partition_point(|&k| k <= t);
    match at.checked_sub(1).map(|i| keyframes[i]) {
        Some(k) if t - k <= step => k as f64 / 1e6,
        Some(_) => t as f64 / 1e6,
        None => f64::NAN,
    }
}

/// The tile height for `spec`'s width: the displayed shape of `frame`.
fn tile_height_of(spec: &StoryboardSpec, frame: &DecodedFrame) -> u32 {
    geometry::plan(&frame.shape(), Some(spec.tile_width), None, None)
        .canvas
        .1
}

/// The largest side an encoder takes.
fn max_side(format: Format) -> u32 {
    match format {
        Format::Webp => 16_383,
        _ => 65_535,
    }
}

/// How many of `count` tiles one sheet holds: all of them if at most
/// [`SHEET_TILES`] fit in `max_pixels` (one sprite, as before sheets);
/// else whole rows of `columns`, at most [`SHEET_TILES`] tiles, as many
/// rows as fit (at least one: a row too large is refused when composed).
fn tiles_per_sheet(
    count: usize,
    spec: &StoryboardSpec,
    tile_height: u32,
    max_pixels: u64,
) -> usize {
    let columns = spec.columns.min(count as u32).max(1);
    let width = columns as u64 * spec.tile_width as u64;
    let side = max_side(spec.format) as u64;
    let fits = |rows: u32| {
        let height = rows as u64 * tile_height as u64;
        width <= side && height <= side && width * height <= max_pixels
    };
    let all_rows = (count as u32).div_ceil(columns);
    if count <= SHEET_TILES as usize && fits(all_rows) {
        return count.max(1);
    }
    let most = (SHEET_TILES / columns).clamp(1, all_rows.max(1));
    let rows = (1..=most).rev().find(|&r| fits(r)).unwrap_or(1);
    rows as usize * columns as usize
}

/// The tiles of one sheet, as [`compose`] lays them out.
pub(super) struct SheetTiles<'a> {
    /// When each tile's range starts, microseconds, in order.
    pub times: &'a [u64],
    /// When the last one's ends.
    pub end_us: u64,
    /// Their frames: tile `i` shows `set.frames[set.of_time[i]]`.
    pub set: &'a FrameSet,
    /// Their height: the whole storyboard's, or by default the first
    /// frame's shape at the tile width.
    pub tile_height: Option<u32>,
}

/// The sprite and layout of one sheet's tiles. Blocking.
pub(super) fn compose(
    spec: &StoryboardSpec,
    duration_us: u64,
    tiles: SheetTiles<'_>,
    limits: &Limits,
    bounds: StoryboardLimits,
) -> Result<Storyboard, MediaError> {
    let SheetTiles {
        times,
        end_us,
        set,
        tile_height,
    } = tiles;
    let first = set
        .frames
        .first()
        .ok_or_else(|| MediaError::NoFrame("no frame could be decoded".into()))?;
    // Every tile the first one's displayed shape (a later change of size
    // is letterboxed into it).
    let tile_width = spec.tile_width;
    let tile_height = tile_height.unwrap_or_else(|| tile_height_of(spec, first));
    let count = times.len() as u32;
    let columns = spec.columns.min(count).max(1);
    let rows = count.div_ceil(columns);
    let (width, height) = (columns * tile_width, rows * tile_height);
    let max_pixels = bounds.max_pixels;
    if width as u64 * height as u64 > max_pixels {
        return Err(MediaError::FrameTooLarge {
            width,
            height,
            limit: max_pixels,
        });
    }
    let max_side = max_side(spec.format);
    if width > max_side || height > max_side {
        return Err(MediaError::FrameTooLarge {
            width,
            height,
            limit: max_side as u64 * max_side as u64,
        });
    }
    let mut sprite = RgbImage::black(width, height);
    // Each distinct frame is scaled once, however many tiles show it.
    let mut scaled: Vec<Option<RgbImage>> = vec![None; set.frames.len()];
    let mut tiles = Vec::with_capacity(times.len());
    let step_end = |i: usize| times.get(i + 1).copied().unwrap_or(end_us) as f64 / 1e6;
    for (i, &t) in times.iter().enumerate() {
        if std::time::Instant::now() >= limits.deadline {
            return Err(MediaError::Timeout);
        }
        let f = set.of_time[i];
        let frame = &set.frames[f];
        if scaled[f].is_none() {
            let plan = geometry::plan(
                &frame.shape(),
                Some(tile_width),
                Some(tile_height),
                Some(Fit::Pad),
            );
            match picture::prepare(frame, &plan, Format::Png)? {
                Picture::Rgb(img) => scaled[f] = Some(img),
                Picture::Yuv420(_) => {
                    return Err(MediaError::Internal("a tile was prepared as YUV".into()))
                }
            }
        }
        let (x, y) = (
            (i as u32 % columns) * tile_width,
            (i as u32 / columns) * tile_height,
        );
        blit(&mut sprite, scaled[f].as_ref().expect("scaled above"), x, y);
        tiles.push(Tile {
            start: t as f64 / 1e6,
            end: step_end(i),
            x,
            y,
            shown: frame.time_secs,
        });
    }
    if std::time::Instant::now() >= limits.deadline {
        return Err(MediaError::Timeout);
    }
    let bytes = encode::encode(Picture::Rgb(sprite), spec.format, spec.quality)?;
    Ok(Storyboard {
        bytes,
        width,
        height,
        layout: Layout {
            tile_width,
            tile_height,
            columns,
            rows,
            duration: duration_us as f64 / 1e6,
            tiles,
        },
    })
}

/// The start of each tile's range, microseconds, ascending, each at least
/// [`MIN_TILE_US`] before the next and before the end. `keyframes` are the
/// times the container's index lists (empty without one); `max_tiles`
/// bounds `tiles` and `interval` (the default makes at most
/// [`SHEET_TILES`]).
pub(super) fn tile_times(
    duration_us: u64,
    tiles: TileCount,
    keyframes: &[u64],
    max_tiles: u32,
) -> Vec<u64> {
    let even = duration_us.div_ceil(SHEET_TILES as u64).max(MIN_TILE_US);
    let max_tiles = max_tiles.max(1);
    let (interval, count) = match tiles {
        TileCount::Tiles(n) => {
            let n = n.clamp(1, max_tiles);
            (duration_us.div_ceil(n as u64), n)
        }
        // Never more than `max_tiles`: the interval grows.
        TileCount::Interval(us) => (us.max(duration_us.div_ceil(max_tiles as u64)), max_tiles),
        // The keyframe nearest each of SHEET_TILES even times, each once:
        // no closer than the keyframes (closer tiles would repeat them),
        // never more than SHEET_TILES, and as close to even as the
        // keyframes allow (a 600.05 s video with 2 s GOPs: 100 tiles of
        // 6 s). (Scenes are found by decoding, in `scenes`; planned as the
        // default if asked here.)
        TileCount::Auto | TileCount::Scenes if !keyframes.is_empty() => {
            let mut times = vec![0];
            for t in (1..SHEET_TILES as u64)
                .map(|i| i * even)
                .take_while(|&t| t < duration_us)
            {
                let at = keyframes.partition_point(|&k| k < t);
                let nearest = [at.checked_sub(1), Some(at)]
                    .into_iter()
                    .flatten()
                    .filter_map(|i| keyframes.get(i).copied())
                    .min_by_key(|&k| (k.abs_diff(t), k))
                    .expect("keyframes are not empty");
                let last = *times.last().expect("one time");
                if nearest >= last + MIN_TILE_US && nearest + MIN_TILE_US <= duration_us {
                    times.push(nearest);
                }
            }
            return times;
        }
        // No index (MPEG-TS): evenly, then one tile per keyframe found.
        TileCount::Auto | TileCount::Scenes => (even, SHEET_TILES),
    };
    let interval = interval.max(MIN_TILE_US);
    (0..count as u64)
        .map(|i| i * interval)
        .take_while(|&t| t == 0 || t + MIN_TILE_US <= duration_us)
        .collect()
}

/// One tile per distinct keyframe in `set`, starting when it is shown (the
/// first at 0), in order; tiles closer than [`MIN_TILE_US`] merged.
pub(super) fn at_keyframes(set: FrameSet, duration_us: u64) -> (Vec<u64>, FrameSet) {
    let FrameSet { frames, of_time } = set;
    let mut order: Vec<usize> = of_time;
    order.dedup();
    let mut times: Vec<u64> = Vec::with_capacity(order.len());
    let mut kept: Vec<usize> = Vec::with_capacity(order.len());
    for f in order {
        let shown = (frames[f].time_secs * 1e6).round().max(0.0) as u64;
        let start = if times.is_empty() { 0 } else { shown };
        let last = times.last().copied();
        if last.is_some_and(|l| start < l + MIN_TILE_US) || start + MIN_TILE_US > duration_us {
            continue;
        }
        times.push(start);
        kept.push(f);
    }
    let of_time = (0..kept.len()).collect();
    let mut frames: Vec<Option<DecodedFrame>> = frames.into_iter().map(Some).collect();
    let frames = kept
        .into_iter()
        .map(|f| frames[f].take().expect("each frame kept once"))
        .collect();
    (times, FrameSet { frames, of_time })
}

/// Replaces, for each time whose keyframe is shown more than `step` before
/// it, the keyframe by the exact frame at that time.
fn exact_where_far(
    frames: &mut Frames,
    times: &[u64],
    mut set: FrameSet,
    step: u64,
) -> Result<FrameSet, MediaError> {
    let far: Vec<usize> = (0..times.len())
        .filter(|&i| {
            let shown = (set.frames[set.of_time[i]].time_secs * 1e6)
                .round()
                .max(0.0) as u64;
            times[i].saturating_sub(shown) > step
        })
        .collect();
    if far.is_empty() {
        return Ok(set);
    }
    let exact = frames.exact(&far.iter().map(|&i| times[i]).collect::<Vec<_>>())?;
    let base = set.frames.len();
    set.frames.extend(exact.frames);
    for (k, &i) in far.iter().enumerate() {
        set.of_time[i] = base + exact.of_time[k];
    }
    Ok(set)
}

/// Copies `tile` into `sprite` with its top-left corner at (`x`, `y`).
fn blit(sprite: &mut RgbImage, tile: &RgbImage, x: u32, y: u32) {
    let row = tile.width as usize * 3;
    for ty in 0..tile.height as usize {
        let sy = y as usize + ty;
        if sy >= sprite.height as usize {
            break;
        }
        let start = (sy * sprite.width as usize + x as usize) * 3;
        let len = row.min((sprite.width - x) as usize * 3);
        sprite.data[start..start + len].copy_from_slice(&tile.data[ty * row..ty * row + len]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keyframes every `gop` microseconds over `duration`.
    fn every(gop: u64, duration: u64) -> Vec<u64> {
        (0..duration).step_by(gop as usize).collect()
    }

    #[test]
    fn tiles_divide_the_video() {
        // A minute with 2 s keyframes: one tile per keyframe.
        let t = tile_times(
            60_000_000,
            TileCount::Auto,
            &every(2_000_000, 60_000_000),
            100,
        );
        assert_eq!(t.len(), 30);
        assert_eq!(t[1], 2_000_000);
        // Ten minutes with 2 s keyframes: 100 tiles of 6 s.
        let t = tile_times(
            600_000_000,
            TileCount::Auto,
            &every(2_000_000, 600_000_000),
            100,
        );
        assert_eq!((t.len(), t[1]), (100, 6_000_000));
        assert_eq!(
            tile_times(60_000_000, TileCount::Tiles(12), &[], 100).len(),
            12
        );
        let t = tile_times(60_000_000, TileCount::Interval(5_000_000), &[], 100);
        assert_eq!((t.len(), t[11]), (12, 55_000_000));
        // Never more than max_tiles: the interval grows.
        assert_eq!(
            tile_times(60_000_000, TileCount::Interval(1_000), &[], 100).len(),
            100
        );
        assert_eq!(
            tile_times(60_000_000, TileCount::Tiles(5000), &[], 100).len(),
            100
        );
        assert_eq!(tile_times(1, TileCount::Auto, &[], 100), [0]);
        assert_eq!(tile_times(1, TileCount::Auto, &[0], 100), [0]);
        // No index (MPEG-TS): evenly (then one tile per keyframe found).
        assert_eq!(tile_times(60_000_000, TileCount::Auto, &[], 100).len(), 100);
    }

    #[test]
    fn tiles_and_intervals_go_past_one_sheet_up_to_max_tiles() {
        // Two hours at tiles=1000: 7.2 s apart.
        let t = tile_times(7_200_000_000, TileCount::Tiles(1000), &[], 1000);
        assert_eq!((t.len(), t[1]), (1000, 7_200_000));
        // interval=1 over 10 minutes: 600 tiles (it grew to 6 s when a
        // storyboard had one sprite), but not past max_tiles.
        let t = tile_times(600_000_000, TileCount::Interval(1_000_000), &[], 1000);
        assert_eq!(t.len(), 600);
        let t = tile_times(7_200_000_000, TileCount::Interval(1_000_000), &[], 1000);
        assert_eq!((t.len(), t[1]), (1000, 7_200_000));
        // The default stays one sheet whatever the limit.
        let k = every(2_000_000, 7_200_000_000);
        assert_eq!(
            tile_times(7_200_000_000, TileCount::Auto, &k, 1000).len(),
            100
        );
    }

    fn spec(columns: u32, tile_width: u32, format: Format) -> StoryboardSpec {
        StoryboardSpec {
            format,
            tile_width,
            tiles: TileCount::Tiles(1),
            columns,
            exact: false,
            quality: None,
        }
    }

    #[test]
    fn sheets_hold_whole_rows_within_the_pixel_limit() {
        let px = 16 * 1024 * 1024;
        // Up to 100 tiles that fit: one sheet, a partial last row as before.
        assert_eq!(
            tiles_per_sheet(100, &spec(7, 160, Format::Webp), 90, px),
            100
        );
        assert_eq!(
            tiles_per_sheet(38, &spec(10, 160, Format::Webp), 90, px),
            38
        );
        // More: full sheets of whole rows, at most 100 tiles.
        assert_eq!(
            tiles_per_sheet(250, &spec(10, 160, Format::Webp), 90, px),
            100
        );
        assert_eq!(
            tiles_per_sheet(250, &spec(7, 160, Format::Webp), 90, px),
            98
        );
        // 640x360 tiles, 10 a row: 7 rows fit 16 MiB (2.3 MP a row).
        assert_eq!(
            tiles_per_sheet(100, &spec(10, 640, Format::Png), 360, px),
            70
        );
        // WebP's largest side: 40 rows of 400 px would be 16000; 41 not.
        let tall = spec(1, 100, Format::Webp);
        assert_eq!(tiles_per_sheet(100, &tall, 400, u64::MAX), 40);
        // Not even one row fits: one row, which compose refuses.
        assert_eq!(
            tiles_per_sheet(300, &spec(100, 640, Format::Png), 360, px),
            100
        );
    }

    #[test]
    fn a_layout_says_which_sheet_each_tile_is_on() {
        let tile = |i: u32| Tile {
            start: i as f64,
            end: i as f64 + 1.0,
            x: 0,
            y: 0,
            shown: i as f64,
        };
        let mut layout = Layout {
            tile_width: 160,
            tile_height: 90,
            columns: 10,
            rows: 10,
            duration: 250.0,
            tiles: (0..250).map(tile).collect(),
        };
        assert_eq!((layout.tiles_per_sheet(), layout.sheets()), (100, 3));
        assert_eq!((layout.sheet_of(99), layout.sheet_of(100)), (0, 1));
        assert_eq!(layout.sheet_tiles(2).map(<[Tile]>::len), Some(50));
        assert_eq!(layout.sheet_tiles(2).unwrap()[0].start, 200.0);
        assert!(layout.sheet_tiles(3).is_none());
        assert_eq!(layout.sheet_size(0), (1600, 900));
        assert_eq!(layout.sheet_size(2), (1600, 450));
        let (times, end) = sheet_times(&layout, 1).unwrap();
        assert_eq!(
            (times[0], times.len(), end),
            (100_000_000, 100, 200_000_000)
        );
        assert!(sheet_times(&layout, 3).is_err());
        assert_eq!(layout_step(&layout), 1_000_000);
        // One sheet of 38 (the rows of a single sprite cover its tiles).
        layout.tiles.truncate(38);
        layout.rows = 4;
        assert_eq!((layout.sheets(), layout.sheet_of(37)), (1, 0));
        assert_eq!(layout.sheet_size(0), (1600, 360));
    }

    #[test]
    fn an_unknown_time_survives_the_shared_cache() {
        let tile = Tile {
            start: 100.0,
            end: 101.0,
            x: 0,
            y: 0,
            shown: f64::NAN,
        };
        let text = serde_json::to_string(&tile).unwrap();
        assert!(text.contains(r#""shown":null"#), "{text}");
        let back: Tile = serde_json::from_str(&text).unwrap();
        assert!(back.shown.is_nan() && back.start == 100.0);
        let known: Tile = serde_json::from_str(&text.replace("null", "99.96")).unwrap();
        assert_eq!(known.shown, 99.96);
    }

    #[test]
    fn later_tiles_show_what_their_sheet_will_decode() {
        let keys = [0, 2_000_000, 4_000_000];
        // A keyframe within a tile before: it.
        assert_eq!(planned_shown(&keys, 2_500_000, 1_000_000, false), 2.0);
        assert_eq!(planned_shown(&keys, 3_000_000, 1_000_000, false), 2.0);
        // Further: the exact frame at the time.
        assert_eq!(planned_shown(&keys, 3_100_000, 1_000_000, false), 3.1);
        assert_eq!(planned_shown(&keys, 2_500_000, 1_000_000, true), 2.5);
        // No index: not known until decoded.
        assert!(planned_shown(&[], 2_500_000, 1_000_000, false).is_nan());
    }

    #[test]
    fn tiles_start_at_keyframes_for_any_duration() {
        // 75 s with 2 s keyframes: 38 tiles at the keyframes themselves
        // (not 75/38 s apart), the last one from 74 s, none empty.
        let t = tile_times(
            75_000_000,
            TileCount::Auto,
            &every(2_000_000, 75_000_000),
            100,
        );
        assert_eq!(t.len(), 38);
        assert!(t
            .iter()
            .enumerate()
            .all(|(i, &x)| x == i as u64 * 2_000_000));
        // Keyframes at irregular times (scene cuts), a short last GOP.
        let k = [0, 1_500_000, 2_000_000, 5_000_000, 5_400_000, 9_900_000];
        assert_eq!(
            tile_times(10_000_000, TileCount::Auto, &k, 100),
            [0, 1_500_000, 2_000_000, 5_000_000, 5_400_000, 9_900_000]
        );
        // Keyframes closer than duration/100 are thinned out to the nearest
        // of each even time, and one less than a millisecond before the end
        // starts no tile.
        let dense = every(100_000, 100_000_000);
        let t = tile_times(100_000_000, TileCount::Auto, &dense, 100);
        assert_eq!((t.len(), t[1]), (100, 1_000_000));
        // A duration a little over ten minutes (a looped or cut file) keeps
        // 100 tiles of 6 s, not 80 of 8 s.
        let t = tile_times(
            600_050_000,
            TileCount::Auto,
            &every(2_000_000, 600_050_000),
            100,
        );
        assert_eq!((t.len(), t[1], t[99]), (100, 6_000_000, 594_000_000));
        assert_eq!(
            tile_times(2_000_500, TileCount::Auto, &[0, 2_000_000], 100),
            [0]
        );
        // Even spacing never ends on an empty last tile either.
        let t = tile_times(75_000_000, TileCount::Tiles(38), &[], 100);
        assert!(t.iter().all(|&x| x + MIN_TILE_US <= 75_000_000));
        assert_eq!(t.len(), 38);
    }

    #[test]
    fn blit_places_tiles() {
        let mut sprite = RgbImage::black(4, 2);
        let tile = RgbImage {
            width: 2,
            height: 2,
            data: vec![9; 12],
        };
        blit(&mut sprite, &tile, 2, 0);
        assert_eq!(sprite.pixel(1, 1), [0, 0, 0]);
        assert_eq!(sprite.pixel(2, 0), [9, 9, 9]);
        assert_eq!(sprite.pixel(3, 1), [9, 9, 9]);
    }
}
