//! The best frame (`timeStamp=auto`): a representative picture of the video
//! rather than whatever sits at a fixed time.
//!
//! Candidates are keyframes (cheap: each decodes alone, see [`frames`])
//! spread over the first part of the video, where a poster frame is looked
//! for, and around its middle. Each is scored on a small grey copy: edge
//! strength above all (a blurred or faded frame has weak edges), spread of
//! brightness (a black or near-uniform frame has none) and, a little, the
//! entropy of its histogram, with dark and blown-out frames marked down.
//! The highest score wins, the earliest on a tie: the choice
//! depends only on the video's bytes, so it is cached like any thumbnail.
//!
//! [`frames`]: super::frames

#![deny(unsafe_code)]

use std::ops::ControlFlow;

use super::frames::Frames;
use super::pixels::Picture;
use super::stream::DecodedFrame;
use super::{geometry, picture, Format, Limits, MediaError};
use crate::domain::NEAR_WINDOW_US;
use crate::source::SourceRead;

/// Candidates spread over the first part of the video.
const OPENING_CANDIDATES: u64 = 8;
/// The first part: this share of the video, at most [`OPENING_MAX_US`].
const OPENING_SHARE: f64 = 0.35;
const OPENING_MAX_US: u64 = 120_000_000;
/// Where candidates around the middle sit, as shares of the duration.
const MIDDLE_SHARES: [f64; 3] = [0.45, 0.5, 0.55];
/// Width of the grey copy that is scored.
const SCORE_WIDTH: u32 = 160;

/// Decodes the best frame of the video `reader` holds.
pub fn best_frame(
    reader: Box<dyn SourceRead>,
    limits: &Limits,
) -> Result<DecodedFrame, MediaError> {
    let mut frames = Frames::open(reader, limits)?;
    let duration_us = frames.duration_us();
    let times = candidate_times(duration_us);
    let mut set = frames.keyframes(&times, false)?;
    let mut best: Option<(usize, f64, Grey)> = None;
    for (i, frame) in set.frames.iter().enumerate() {
        let grey = luma(frame)?;
        let s = score(&grey);
        tracing::debug!(time = frame.time_secs, score = s, "best-frame candidate");
        if best.as_ref().is_none_or(|(_, b, _)| s > *b) {
            best = Some((i, s, grey));
        }
    }
    let (i, best_score, grey) =
        best.ok_or_else(|| MediaError::NoFrame("no keyframe could be decoded".into()))?;
    let distinct = set.frames.len();
    let latest = set.frames.iter().map(|f| f.time_secs).fold(0.0, f64::max);
    let keyframe = set.frames.swap_remove(i);
    if !(poor(&grey) || distinct < 2) || limits.best_frame_scan_frames == 0 {
        return Ok(keyframe);
    }
    // Keyframes are few or all dark or flat (a film's black opening and
    // titles before its first scene, with a keyframe every 10 s): look
    // between them too.
    let start = (latest * 1e6) as u64;
    let scanned = scan(&mut frames, start, duration_us, limits)?;
    Ok(match scanned {
        Some((frame, s)) if s > best_score => frame,
        _ => keyframe,
    })
}

/// Decodes the best frame within [`NEAR_WINDOW_US`] of `center_us`
/// (`timeStamp=auto:30`): the keyframes in that window are the
/// candidates, scored as [`best_frame`]'s are; when they are fewer than
/// two or all poor, the window is also scanned from its first keyframe
/// (or its start) as [`best_frame`] scans, within the same frame budget.
/// With nothing decodable in the window, the frame at `center_us`.
pub fn best_frame_near(
    reader: Box<dyn SourceRead>,
    center_us: u64,
    limits: &Limits,
) -> Result<DecodedFrame, MediaError> {
    let mut frames = Frames::open(reader, limits)?;
    let duration_us = frames.duration_us();
    let center = duration_us.map_or(center_us, |d| center_us.min(d));
    let lo = center.saturating_sub(NEAR_WINDOW_US);
    let hi = duration_us.map_or(center + NEAR_WINDOW_US, |d| {
        (center + NEAR_WINDOW_US).min(d)
    });
    let times: Vec<u64> = (0..NEAR_CANDIDATES)
        .map(|i| lo + (hi - lo) * i / (NEAR_CANDIDATES - 1))
        .collect();
    let set = frames.keyframes(&times, false)?;
    let within = |f: &DecodedFrame| {
        let us = (f.time_secs * 1e6).round() as u64;
        (lo..=hi).contains(&us)
    };
    let mut best: Option<(&DecodedFrame, f64, Grey)> = None;
    let mut distinct = 0;
    let mut last_time = f64::NAN;
    for frame in set.frames.iter().filter(|f| within(f)) {
        if frame.time_secs == last_time {
            continue;
        }
        last_time = frame.time_secs;
        distinct += 1;
        let grey = luma(frame)?;
        let s = score(&grey);
        tracing::debug!(time = frame.time_secs, score = s, "near candidate");
        if best.as_ref().is_none_or(|(_, b, _)| s > *b) {
            best = Some((frame, s, grey));
        }
    }
    let enough = best
        .as_ref()
        .is_some_and(|(_, _, grey)| !poor(grey) && distinct >= 2);
    let best = best.map(|(f, s, _)| (f.clone(), s));
    if enough || limits.best_frame_scan_frames == 0 {
        if let Some((frame, _)) = best {
            return Ok(frame);
        }
    }
    let first_key = set
        .frames
        .iter()
        .filter(|f| within(f))
        .map(|f| (f.time_secs * 1e6).round() as u64)
        .min();
    let start = first_key.unwrap_or(lo);
    let scanned = scan(&mut frames, start, Some(hi + 1), limits)?;
    match (best, scanned) {
        (Some((k, ks)), Some((f, fs))) => Ok(if fs > ks { f } else { k }),
        (Some((k, _)), None) => Ok(k),
        (None, Some((f, _))) => Ok(f),
        (None, None) => {
            let mut exact = frames.exact(&[center])?;
            exact
                .frames
                .pop()
                .ok_or_else(|| MediaError::NoFrame("no frame near the time decoded".into()))
        }
    }
}

/// Keyframe candidates looked for in the window of `auto:T`.
const NEAR_CANDIDATES: u64 = 9;

/// The best frame of a sequential decode from `start_us` (the latest
/// keyframe looked at: the picture is likelier to have begun after it
/// than before, and a video's black opening is before), scored
/// [`SCAN_FPS`] times a second, for at most `limits.best_frame_scan_frames`
/// frames' worth of the video (at its frame rate, or 30 fps); with its
/// score. What it decodes is bounded like any render's by the deadline.
fn scan(
    frames: &mut Frames,
    start: u64,
    duration_us: Option<u64>,
    limits: &Limits,
) -> Result<Option<(DecodedFrame, f64)>, MediaError> {
    let Some(d) = duration_us.filter(|&d| d > start) else {
        return Ok(None);
    };
    let fps = frames.frame_rate().filter(|&f| f > 0.0).unwrap_or(30.0);
    let budget_us = (limits.best_frame_scan_frames as f64 / fps * 1e6) as u64;
    let end = (start + budget_us).min(d).max(start + 1);
    let mut best: Option<(DecodedFrame, f64)> = None;
    let mut last_time = f64::NAN;
    // Once a frame worth showing is found, the scan goes on only while
    // later ones keep beating it (a fade-in still brightening).
    let mut since_best = 0u32;
    let mut best_worth_showing = false;
    frames.sequence(start, end, SCAN_FPS, |frame| {
        if frame.time_secs == last_time {
            return Ok(ControlFlow::Continue(()));
        }
        last_time = frame.time_secs;
        let grey = luma(frame)?;
        let s = score(&grey);
        tracing::debug!(time = frame.time_secs, score = s, "best-frame scan");
        if best.as_ref().is_none_or(|(_, b)| s > *b * IMPROVEMENT) {
            best = Some((frame.clone(), s));
            best_worth_showing = !poor(&grey);
            since_best = 0;
        } else if best_worth_showing {
            since_best += 1;
        }
        Ok(if since_best >= SCAN_PATIENCE {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })?;
    Ok(best)
}

/// Frames looked at per second of video in the scan.
const SCAN_FPS: u32 = 4;
/// Frames looked at after the best so far, once that one is worth showing,
/// before the scan stops (a second of video).
const SCAN_PATIENCE: u32 = SCAN_FPS;
/// How much better a later frame must score to replace the best so far:
/// within noise the earlier one stays, and the scan can end.
const IMPROVEMENT: f64 = 1.02;

pub use crate::domain::DEFAULT_SCAN_FRAMES;

/// Whether the best keyframe is one no viewer would pick: dark, blown out
/// or near-uniform.
fn poor(g: &Grey) -> bool {
    let (mean, spread) = g.mean_spread();
    !(DARK..=255.0 - DARK).contains(&mean) || spread < 2.0 * NEAR_UNIFORM
}

/// Candidate times in microseconds, ascending, without repeats.
pub(super) fn candidate_times(duration_us: Option<u64>) -> Vec<u64> {
    let Some(d) = duration_us.filter(|&d| d > 0) else {
        // Unknown length: the first seconds only.
        return (0..OPENING_CANDIDATES).map(|i| i * 1_000_000).collect();
    };
    let opening = ((d as f64 * OPENING_SHARE) as u64).min(OPENING_MAX_US);
    let mut times: Vec<u64> = (0..OPENING_CANDIDATES)
        .map(|i| opening * i / (OPENING_CANDIDATES - 1))
        .chain(MIDDLE_SHARES.iter().map(|s| (d as f64 * s) as u64))
        .collect();
    times.sort_unstable();
    times.dedup();
    times
}

/// How representative `frame` looks (see [`score`]), for candidates
/// decoded elsewhere (a segmented video's segment starts).
pub(super) fn score_frame(frame: &DecodedFrame) -> Result<f64, MediaError> {
    luma(frame).map(|g| score(&g))
}

/// A small grey picture: luma values, row by row.
struct Grey {
    width: usize,
    height: usize,
    luma: Vec<f64>,
}

/// The frame as displayed, scaled to [`SCORE_WIDTH`], as luma.
fn luma(frame: &DecodedFrame) -> Result<Grey, MediaError> {
    let plan = geometry::plan(&frame.shape(), Some(SCORE_WIDTH), None, None);
    let Picture::Rgb(rgb) = picture::prepare(frame, &plan, Format::Png)? else {
        return Err(MediaError::Internal("expected an RGB picture".into()));
    };
    let luma = rgb
        .data
        .chunks_exact(3)
        .map(|p| 0.2126 * p[0] as f64 + 0.7152 * p[1] as f64 + 0.0722 * p[2] as f64)
        .collect();
    Ok(Grey {
        width: rgb.width as usize,
        height: rgb.height as usize,
        luma,
    })
}

impl Grey {
    /// Mean brightness and its standard deviation.
    fn mean_spread(&self) -> (f64, f64) {
        let n = self.luma.len().max(1) as f64;
        let mean = self.luma.iter().sum::<f64>() / n;
        let spread = (self.luma.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        (mean, spread)
    }
}

/// How representative a picture looks; higher is better, 0 is hopeless.
fn score(g: &Grey) -> f64 {
    let n = g.luma.len().max(1) as f64;
    let (mean, spread) = g.mean_spread();
    // Entropy of a 64-bin histogram, in bits (at most 6).
    let mut bins = [0u32; 64];
    for v in &g.luma {
        bins[(v.clamp(0.0, 255.0) as usize / 4).min(63)] += 1;
    }
    let entropy: f64 = bins
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    // Mean absolute Laplacian: edge strength.
    let (w, h) = (g.width, g.height);
    let mut edges = 0.0;
    let mut count = 0usize;
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let c = g.luma[y * w + x];
            let around = g.luma[y * w + x - 1]
                + g.luma[y * w + x + 1]
                + g.luma[(y - 1) * w + x]
                + g.luma[(y + 1) * w + x];
            edges += (4.0 * c - around).abs();
            count += 1;
        }
    }
    let edges = edges / count.max(1) as f64;
    if spread < NEAR_UNIFORM {
        // Black, white or flat: only better than nothing.
        return spread / NEAR_UNIFORM * 1e-3;
    }
    // Dark or blown-out frames (the start or end of a fade) are marked down.
    let exposure = (mean / DARK).min((255.0 - mean) / DARK).min(1.0);
    // Edges weigh most: blur keeps the spread and raises the entropy (a
    // two-tone picture blurred has every tone in between).
    let sharpness = (1.0 + edges).ln();
    // Contrast counts in full: a fade is the whole picture at lower contrast.
    spread / 64.0 * sharpness * sharpness * (1.0 + entropy / 6.0) * exposure
}

/// Brightness spread (0-255 scale) below which a frame counts as uniform.
const NEAR_UNIFORM: f64 = 6.0;
/// Mean brightness below which (or this far below 255) a frame is marked down.
const DARK: f64 = 40.0;

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(width: usize, height: usize, f: impl Fn(usize, usize) -> f64) -> Grey {
        let luma = (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .map(|(x, y)| f(x, y))
            .collect();
        Grey {
            width,
            height,
            luma,
        }
    }

    /// A checkerboard of 8-pixel squares between `lo` and `hi`.
    fn checker(lo: f64, hi: f64) -> Grey {
        grey(
            64,
            36,
            |x, y| if (x / 8 + y / 8) % 2 == 0 { lo } else { hi },
        )
    }

    #[test]
    fn content_beats_black_uniform_faded_and_blurred() {
        let content = score(&checker(20.0, 230.0));
        assert!(score(&grey(64, 36, |_, _| 0.0)) < content * 0.01);
        assert!(score(&grey(64, 36, |_, _| 128.0)) < content * 0.01);
        // Half-way through a fade from black.
        assert!(score(&checker(10.0, 115.0)) < content);
        // A smooth ramp: contrast but no edges.
        let blurred = grey(64, 36, |x, _| 20.0 + x as f64 * 3.3);
        assert!(score(&blurred) < content);
    }

    #[test]
    fn candidates_cover_the_opening_and_the_middle() {
        let t = candidate_times(Some(100_000_000));
        assert_eq!(t.first(), Some(&0));
        assert!(t.contains(&50_000_000));
        assert!(t.iter().all(|&x| x <= 55_000_000));
        assert!(t.windows(2).all(|w| w[0] < w[1]));
        // A long video's opening is capped.
        let long = candidate_times(Some(3_600_000_000));
        assert!(long[..8].iter().all(|&x| x <= OPENING_MAX_US));
        assert_eq!(candidate_times(None).len(), 8);
    }
}
