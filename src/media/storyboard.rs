//! Storyboards: one sprite image of tiles in a grid, each the picture of
//! the video at the start of its time range, for players' seek-bar
//! previews. The layout (which time each tile covers, where it sits) comes
//! with the image, for the WebVTT and JSON descriptions.

#![deny(unsafe_code)]

use super::frames::{FrameSet, Frames};
use super::pixels::{Picture, RgbImage};
use super::stream::DecodedFrame;
use super::{encode, geometry, picture, Fit, Format, Limits, MediaError};
pub use crate::domain::storyboard::{StoryboardSpec, TileCount, MAX_TILES};
use crate::source::SourceRead;

/// Tiles up to this wide are decoded without the deblocking filter (see
/// [`Frames::keyframes`]).
const SMALL_TILE: u32 = 320;

/// Where each tile is and what it covers.
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
    /// Top-left corner in the sprite.
    pub x: u32,
    pub y: u32,
    /// Seconds into the video of the frame shown.
    pub shown: f64,
}

/// An encoded sprite and its layout.
#[derive(Debug, Clone)]
pub struct Storyboard {
    pub bytes: bytes::Bytes,
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
}

/// Renders the storyboard of the video `reader` holds. Blocking.
pub fn render(
    reader: Box<dyn SourceRead>,
    spec: &StoryboardSpec,
    limits: &Limits,
    max_pixels: u64,
) -> Result<Storyboard, MediaError> {
    let mut frames = Frames::open(reader, limits)?;
    let duration_us = frames
        .duration_us()
        .filter(|&d| d > 0)
        .ok_or_else(|| MediaError::Unreadable("the video's duration is unknown".into()))?;
    let keyframes = frames.indexed_keyframes()?;
    let planned = tile_times(duration_us, spec.tiles, &keyframes);
    let (times, set) = if spec.exact {
        let set = frames.exact(&planned)?;
        (planned, set)
    } else {
        let set = frames.keyframes(&planned, spec.tile_width <= SMALL_TILE)?;
        match spec.tiles {
            // Each tile starts where its keyframe is shown, so it shows the
            // frame on screen at its cue's start; tiles whose times found
            // the same keyframe (no index said where they are) are one.
            TileCount::Auto => at_keyframes(set, duration_us),
            // The count asked for: a tile whose keyframe is more than a
            // tile before its time shows its exact frame instead.
            TileCount::Tiles(_) | TileCount::Interval(_) => {
                let step = planned.get(1).map_or(duration_us, |&t| t);
                let set = exact_where_far(&mut frames, &planned, set, step)?;
                (planned, set)
            }
        }
    };
    compose(spec, duration_us, &times, &set, limits, max_pixels)
}

/// The sprite and layout of tiles starting at `times`, tile `i` showing
/// `set.frames[set.of_time[i]]`. Blocking.
pub(super) fn compose(
    spec: &StoryboardSpec,
    duration_us: u64,
    times: &[u64],
    set: &FrameSet,
    limits: &Limits,
    max_pixels: u64,
) -> Result<Storyboard, MediaError> {
    let first = set
        .frames
        .first()
        .ok_or_else(|| MediaError::NoFrame("no frame could be decoded".into()))?;
    // Every tile the first one's displayed shape (a later change of size
    // is letterboxed into it).
    let tile_width = spec.tile_width;
    let tile_height = geometry::plan(&first.shape(), Some(tile_width), None, None)
        .canvas
        .1;
    let count = times.len() as u32;
    let columns = spec.columns.min(count).max(1);
    let rows = count.div_ceil(columns);
    let (width, height) = (columns * tile_width, rows * tile_height);
    if width as u64 * height as u64 > max_pixels {
        return Err(MediaError::FrameTooLarge {
            width,
            height,
            limit: max_pixels,
        });
    }
    let max_side = match spec.format {
        Format::Webp => 16_383,
        _ => 65_535,
    };
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
    let step_end = |i: usize| {
        times
            .get(i + 1)
            .map_or(duration_us as f64 / 1e6, |&t| t as f64 / 1e6)
    };
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

/// Shortest tile: WebVTT times are whole milliseconds, and a cue must
/// end after it starts.
const MIN_TILE_US: u64 = 1000;

/// The start of each tile's range, microseconds, ascending, each at least
/// [`MIN_TILE_US`] before the next and before the end. `keyframes` are the
/// times the container's index lists (empty without one).
pub(super) fn tile_times(duration_us: u64, tiles: TileCount, keyframes: &[u64]) -> Vec<u64> {
    let even = duration_us.div_ceil(MAX_TILES as u64).max(MIN_TILE_US);
    let interval = match tiles {
        TileCount::Tiles(n) => duration_us.div_ceil(n.clamp(1, MAX_TILES) as u64),
        TileCount::Interval(us) => us.max(even),
        // The keyframe nearest each of MAX_TILES even times, each once: no
        // closer than the keyframes (closer tiles would repeat them), never
        // more than MAX_TILES, and as close to even as the keyframes allow
        // (a 600.05 s video with 2 s GOPs: 100 tiles of 6 s).
        TileCount::Auto if !keyframes.is_empty() => {
            let mut times = vec![0];
            for t in (1..MAX_TILES as u64)
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
        TileCount::Auto => even,
    }
    .max(MIN_TILE_US);
    (0..MAX_TILES as u64)
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
        let t = tile_times(60_000_000, TileCount::Auto, &every(2_000_000, 60_000_000));
        assert_eq!(t.len(), 30);
        assert_eq!(t[1], 2_000_000);
        // Ten minutes with 2 s keyframes: 100 tiles of 6 s.
        let t = tile_times(600_000_000, TileCount::Auto, &every(2_000_000, 600_000_000));
        assert_eq!((t.len(), t[1]), (100, 6_000_000));
        assert_eq!(tile_times(60_000_000, TileCount::Tiles(12), &[]).len(), 12);
        let t = tile_times(60_000_000, TileCount::Interval(5_000_000), &[]);
        assert_eq!((t.len(), t[11]), (12, 55_000_000));
        // Never more than MAX_TILES: the interval grows.
        assert_eq!(
            tile_times(60_000_000, TileCount::Interval(1_000), &[]).len(),
            100
        );
        assert_eq!(
            tile_times(60_000_000, TileCount::Tiles(5000), &[]).len(),
            100
        );
        assert_eq!(tile_times(1, TileCount::Auto, &[]), [0]);
        assert_eq!(tile_times(1, TileCount::Auto, &[0]), [0]);
        // No index (MPEG-TS): evenly (then one tile per keyframe found).
        assert_eq!(tile_times(60_000_000, TileCount::Auto, &[]).len(), 100);
    }

    #[test]
    fn tiles_start_at_keyframes_for_any_duration() {
        // 75 s with 2 s keyframes: 38 tiles at the keyframes themselves
        // (not 75/38 s apart), the last one from 74 s, none empty.
        let t = tile_times(75_000_000, TileCount::Auto, &every(2_000_000, 75_000_000));
        assert_eq!(t.len(), 38);
        assert!(t
            .iter()
            .enumerate()
            .all(|(i, &x)| x == i as u64 * 2_000_000));
        // Keyframes at irregular times (scene cuts), a short last GOP.
        let k = [0, 1_500_000, 2_000_000, 5_000_000, 5_400_000, 9_900_000];
        assert_eq!(
            tile_times(10_000_000, TileCount::Auto, &k),
            [0, 1_500_000, 2_000_000, 5_000_000, 5_400_000, 9_900_000]
        );
        // Keyframes closer than duration/100 are thinned out to the nearest
        // of each even time, and one less than a millisecond before the end
        // starts no tile.
        let dense = every(100_000, 100_000_000);
        let t = tile_times(100_000_000, TileCount::Auto, &dense);
        assert_eq!((t.len(), t[1]), (100, 1_000_000));
        // A duration a little over ten minutes (a looped or cut file) keeps
        // 100 tiles of 6 s, not 80 of 8 s.
        let t = tile_times(600_050_000, TileCount::Auto, &every(2_000_000, 600_050_000));
        assert_eq!((t.len(), t[1], t[99]), (100, 6_000_000, 594_000_000));
        assert_eq!(tile_times(2_000_500, TileCount::Auto, &[0, 2_000_000]), [0]);
        // Even spacing never ends on an empty last tile either.
        let t = tile_times(75_000_000, TileCount::Tiles(38), &[]);
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
