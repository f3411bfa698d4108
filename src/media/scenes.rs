//! `tiles=scenes`: where a video's scenes start, from a cheap measure of
//! how much the picture changes from one keyframe to the next.
//!
//! Encoders put a keyframe at most cuts (and at least every few seconds),
//! so consecutive keyframes straddle each cut. Each keyframe is decoded
//! alone (without the deblocking filter, as small tiles are) and reduced to
//! 64 pixels wide: its colour histograms (16 bins a channel, each value
//! shared between its two nearest bins, so noise and slow fades move
//! little) and the mean brightness of a 4x4 grid. A cut is where both
//! change a lot from the keyframe before: the histograms by a total
//! variation of at least [`HISTOGRAM_CUT`] (that share of the picture's
//! colours moved) and the grid by a mean of at least [`GRID_CUT`] of full
//! brightness. Colour alone takes a bright object crossing the picture for
//! a cut, the grid alone a pan; together they keep moving shots whole. On
//! real footage (tests' trailers and street scenes) cuts scored 0.11-0.72
//! and 0.11-0.32, shots without cuts at most 0.14 and 0.08 (a tree
//! shaken by wind) but never both.
//!
//! The cost is every keyframe's packet fetched and decoded: for a 10-minute
//! 1080p MP4 with 2 s GOPs, 300 keyframes (bench/RESULTS.md has the
//! figures). It is bounded by [`MAX_MEASURED`] keyframes (more are thinned
//! to the nearest of as many even times), the render's deadline and byte
//! budget, and memory holds 16 decoded frames at a time.

#![deny(unsafe_code)]

use super::frames::Frames;
use super::pixels::Picture;
use super::stream::DecodedFrame;
use super::{geometry, picture, Format, Limits, MediaError};
use crate::domain::storyboard::MIN_TILE_US;

/// Most keyframes measured: a two-hour film with keyframes every 6 s, or
/// a 40-minute one every 2 s. Past it, the keyframe nearest each of as
/// many even times, so a cut is found within `duration / MAX_MEASURED`.
pub const MAX_MEASURED: usize = 1200;
/// Keyframes decoded (and their packets fetched) together: enough for the
/// fetches and decoder threads to overlap, few enough that their frames
/// (3 MB each at 1080p) stay small in memory.
const BATCH: usize = 16;
/// Without an index (MPEG-TS), keyframes are found by seeking at even
/// times no closer than this.
const NO_INDEX_STEP_US: u64 = 500_000;
/// Width of the picture measured.
const MEASURED_WIDTH: u32 = 64;
/// Histogram bins a channel.
const BINS: usize = 16;
/// Brightness grid, cells a side.
const GRID: usize = 4;
/// Total variation between consecutive histograms (0-1, averaged over
/// the channels) from which a change may be a cut.
pub const HISTOGRAM_CUT: f64 = 0.1;
/// Mean change of the grid's cells (0-1 of full brightness) from which a
/// change may be a cut.
pub const GRID_CUT: f64 = 0.08;

/// Where a scene starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scene {
    /// Microseconds: when its first keyframe is shown (0 for the first
    /// scene), rounded up so that the keyframe at or before it is that one.
    pub start_us: u64,
    /// Seconds into the video of its first keyframe.
    pub shown: f64,
}

/// The scenes of the video `frames` holds, `duration_us` long, in order:
/// the first from 0, then one from each cut, at most `max_scenes` (the
/// strongest cuts kept). `keyframes` are the index's (empty without one).
/// Blocking.
pub fn find(
    frames: &mut Frames,
    duration_us: u64,
    keyframes: &[u64],
    max_scenes: u32,
    limits: &Limits,
) -> Result<Vec<Scene>, MediaError> {
    let measured = measure(
        frames,
        &candidates(duration_us, keyframes),
        !keyframes.is_empty(),
        limits,
    )?;
    let first = measured
        .first()
        .ok_or_else(|| MediaError::NoFrame("no keyframe could be decoded".into()))?;
    let changes: Vec<f64> = measured
        .windows(2)
        .map(|w| change(&w[0].signature, &w[1].signature))
        .collect();
    let starts: Vec<(u64, f64)> = measured.iter().map(|m| (m.start_us, m.shown)).collect();
    let cuts = cuts(&starts, &changes, duration_us, max_scenes);
    let mut scenes = vec![Scene {
        start_us: 0,
        shown: first.shown,
    }];
    scenes.extend(cuts.into_iter().map(|i| Scene {
        start_us: measured[i].start_us,
        shown: measured[i].shown,
    }));
    Ok(scenes)
}

/// The indices into `starts` (start, shown) of the keyframes that begin a
/// scene: `changes[i - 1]` (the change into keyframe `i`) at least 1, the
/// keyframe starting at least [`MIN_TILE_US`] after the scene before and
/// before the end; the `max_scenes - 1` strongest, in order.
fn cuts(starts: &[(u64, f64)], changes: &[f64], duration_us: u64, max_scenes: u32) -> Vec<usize> {
    let mut cuts: Vec<usize> = Vec::new();
    for i in 1..starts.len() {
        let start = starts[i].0;
        let last = cuts.last().map_or(0, |&c| starts[c].0);
        if changes[i - 1] >= 1.0
            && start >= last + MIN_TILE_US
            && start + MIN_TILE_US <= duration_us
        {
            cuts.push(i);
        }
    }
    let keep = (max_scenes.max(1) - 1) as usize;
    if cuts.len() > keep {
        cuts.sort_by(|&a, &b| changes[b - 1].total_cmp(&changes[a - 1]).then(a.cmp(&b)));
        cuts.truncate(keep);
        cuts.sort_unstable();
    }
    cuts
}

/// The times to look for keyframes at: every indexed keyframe (or the one
/// nearest each of [`MAX_MEASURED`] even times); without an index, even
/// times.
fn candidates(duration_us: u64, keyframes: &[u64]) -> Vec<u64> {
    let within: Vec<u64> = keyframes
        .iter()
        .copied()
        .filter(|&k| k < duration_us)
        .collect();
    if within.is_empty() {
        let step = (duration_us / MAX_MEASURED as u64).max(NO_INDEX_STEP_US);
        return (0..MAX_MEASURED as u64)
            .map(|i| i * step)
            .take_while(|&t| t < duration_us)
            .collect();
    }
    if within.len() <= MAX_MEASURED {
        return within;
    }
    let step = duration_us / MAX_MEASURED as u64;
    let mut out: Vec<u64> = Vec::with_capacity(MAX_MEASURED);
    for t in (0..MAX_MEASURED as u64).map(|i| i * step) {
        let at = within.partition_point(|&k| k < t);
        let nearest = [at.checked_sub(1), Some(at)]
            .into_iter()
            .flatten()
            .filter_map(|i| within.get(i).copied())
            .min_by_key(|&k| (k.abs_diff(t), k))
            .expect("keyframes are not empty");
        if out.last() != Some(&nearest) {
            out.push(nearest);
        }
    }
    out
}

/// A keyframe measured.
struct Measured {
    start_us: u64,
    shown: f64,
    signature: Signature,
}

/// The keyframe at or before each of `times`, each once, measured. With
/// an index (`indexed`) the times are the keyframes' own; without one, a
/// keyframe starts at its decoded time, rounded up.
fn measure(
    frames: &mut Frames,
    times: &[u64],
    indexed: bool,
    limits: &Limits,
) -> Result<Vec<Measured>, MediaError> {
    let mut measured: Vec<Measured> = Vec::with_capacity(times.len());
    for batch in times.chunks(BATCH) {
        if std::time::Instant::now() >= limits.deadline {
            return Err(MediaError::Timeout);
        }
        let set = frames.keyframes(batch, true)?;
        for (&t, &f) in batch.iter().zip(&set.of_time) {
            let frame = &set.frames[f];
            // Seeking found a keyframe already measured.
            if measured.last().is_some_and(|m| m.shown >= frame.time_secs) {
                continue;
            }
            let start_us = if indexed {
                t
            } else {
                (frame.time_secs * 1e6).ceil().max(0.0) as u64
            };
            measured.push(Measured {
                start_us,
                shown: frame.time_secs,
                signature: Signature::of(frame)?,
            });
        }
    }
    Ok(measured)
}

/// What is compared between keyframes.
#[derive(Debug, Clone, PartialEq)]
struct Signature {
    /// Per channel (R, G, B), the share of the picture in each bin.
    histograms: [[f64; BINS]; 3],
    /// Mean brightness of each cell, 0-1, row by row.
    grid: [f64; GRID * GRID],
}

impl Signature {
    fn of(frame: &DecodedFrame) -> Result<Signature, MediaError> {
        let plan = geometry::plan(&frame.shape(), Some(MEASURED_WIDTH), None, None);
        let Picture::Rgb(img) = picture::prepare(frame, &plan, Format::Png)? else {
            return Err(MediaError::Internal(
                "a keyframe was prepared as YUV".into(),
            ));
        };
        Ok(Signature::of_rgb(
            img.width as usize,
            img.height as usize,
            &img.data,
        ))
    }

    /// The signature of packed RGB pixels, `width` x `height`.
    fn of_rgb(width: usize, height: usize, rgb: &[u8]) -> Signature {
        let mut histograms = [[0.0; BINS]; 3];
        let mut sums = [0.0; GRID * GRID];
        let mut counts = [0usize; GRID * GRID];
        for (i, px) in rgb.chunks_exact(3).take(width * height).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                let at = v as f64 * (BINS - 1) as f64 / 255.0;
                let low = (at.floor() as usize).min(BINS - 1);
                let share = at - low as f64;
                histograms[c][low] += 1.0 - share;
                if low + 1 < BINS {
                    histograms[c][low + 1] += share;
                }
            }
            let (x, y) = (i % width, i / width);
            let cell = (y * GRID / height.max(1)) * GRID + x * GRID / width.max(1);
            let luma = 0.299 * px[0] as f64 + 0.587 * px[1] as f64 + 0.114 * px[2] as f64;
            sums[cell] += luma / 255.0;
            counts[cell] += 1;
        }
        let pixels = (width * height).max(1) as f64;
        for h in &mut histograms {
            for b in h.iter_mut() {
                *b /= pixels;
            }
        }
        let mut grid = [0.0; GRID * GRID];
        for (g, (s, n)) in grid.iter_mut().zip(sums.iter().zip(counts)) {
            *g = if n > 0 { s / n as f64 } else { 0.0 };
        }
        Signature { histograms, grid }
    }
}

/// How much the picture changed from `a` to `b`, in units of a cut: the
/// smaller of the histograms' change over [`HISTOGRAM_CUT`] and the grid's
/// over [`GRID_CUT`], so at least 1 where both say cut.
fn change(a: &Signature, b: &Signature) -> f64 {
    let histograms = a
        .histograms
        .iter()
        .zip(&b.histograms)
        .map(|(p, q)| 0.5 * p.iter().zip(q).map(|(x, y)| (x - y).abs()).sum::<f64>())
        .sum::<f64>()
        / 3.0;
    let grid = a
        .grid
        .iter()
        .zip(&b.grid)
        .map(|(x, y)| (x - y).abs())
        .sum::<f64>()
        / (GRID * GRID) as f64;
    (histograms / HISTOGRAM_CUT).min(grid / GRID_CUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w` x `h` picture, each pixel `paint(x, y)`.
    fn picture(w: usize, h: usize, paint: impl Fn(usize, usize) -> [u8; 3]) -> Signature {
        let rgb: Vec<u8> = (0..w * h).flat_map(|i| paint(i % w, i / w)).collect();
        Signature::of_rgb(w, h, &rgb)
    }

    #[test]
    fn a_cut_changes_colours_and_layout_a_shot_does_not() {
        // A red scene, then a blue one: a cut.
        let red = picture(64, 36, |_, _| [200, 30, 30]);
        let blue = picture(64, 36, |_, _| [20, 40, 190]);
        assert!(change(&red, &blue) >= 1.0);
        // The same picture with a little noise and brightness drift: no cut.
        let noisy = picture(64, 36, |x, y| {
            let n = ((x * 7 + y * 13) % 5) as u8;
            [203 + n, 28 + n, 31]
        });
        assert!(change(&red, &noisy) < 0.5, "{}", change(&red, &noisy));
        // A pan: the same colours moved sideways. The histograms do not
        // change, so no cut whatever the grid says.
        let stripes = |offset: usize| {
            picture(64, 36, move |x, _| {
                if (x + offset) % 32 < 16 {
                    [240, 240, 240]
                } else {
                    [10, 10, 10]
                }
            })
        };
        assert!(change(&stripes(0), &stripes(16)) < 0.2);
        // A bright object entering a dark shot, a small part of it: the
        // layout changes little.
        let dark = picture(64, 36, |_, _| [20, 20, 20]);
        let object = picture(64, 36, |x, y| {
            if x < 10 && y < 10 {
                [250, 250, 0]
            } else {
                [20, 20, 20]
            }
        });
        assert!(change(&dark, &object) < 1.0);
    }

    #[test]
    fn cuts_keep_the_strongest_within_the_limit() {
        let starts: Vec<(u64, f64)> = (0..6).map(|i| (i * 2_000_000, i as f64 * 2.0)).collect();
        let changes = [0.2, 3.0, 1.5, 0.9, 2.0];
        // Keyframes 2, 3 and 5 begin scenes.
        assert_eq!(cuts(&starts, &changes, 12_000_000, 100), [2, 3, 5]);
        // At most 3 scenes: the two strongest cuts, in order.
        assert_eq!(cuts(&starts, &changes, 12_000_000, 3), [2, 5]);
        // One scene: no cut.
        assert!(cuts(&starts, &changes, 12_000_000, 1).is_empty());
        // A cut less than a millisecond before the end starts no scene.
        assert_eq!(cuts(&starts, &changes, 10_000_500, 100), [2, 3]);
    }

    #[test]
    fn candidates_are_the_keyframes_or_even_times() {
        let keys: Vec<u64> = (0..50).map(|i| i * 2_000_000).collect();
        assert_eq!(candidates(100_000_000, &keys), keys);
        // Past MAX_MEASURED keyframes: the nearest of as many even times.
        let dense: Vec<u64> = (0..5000).map(|i| i * 100_000).collect();
        let c = candidates(500_000_000, &dense);
        assert!(
            c.len() <= MAX_MEASURED && c.len() > MAX_MEASURED - 10,
            "{}",
            c.len()
        );
        assert!(c.windows(2).all(|w| w[0] < w[1]));
        // No index: even times, no closer than half a second.
        let c = candidates(10_000_000, &[]);
        assert_eq!((c.len(), c[1]), (20, 500_000));
    }
}
