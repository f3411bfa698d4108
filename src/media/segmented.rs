//! Videos kept as segments (HLS, DASH): the frame at a time, the best
//! frame, storyboards and animations, each reading only the segments it
//! needs.
//!
//! A segment starts with a keyframe and decodes alone after its init
//! segment, so each is opened as a small video of its own
//! ([`SegmentSource::open`]): the frame at `t` is the frame at `t - start`
//! of the segment holding `t` (its timestamps counted from its own first
//! frame, so discontinuities and timelines that do not start at 0 do not
//! matter), shown at `start` plus that. Segment starts play the part of
//! the keyframe index: the best frame looks at them, storyboard tiles show
//! them.

#![deny(unsafe_code)]

use std::collections::BTreeMap;

use super::bestframe;
use super::frames::FrameSet;
use super::storyboard::{
    self, Part, SheetTiles, Storyboard, StoryboardLimits, StoryboardSpec, TileCount, SHEET_TILES,
};
use super::stream::{open_video, DecodedFrame};
use super::{animated, exact, Limits, MediaError, TimeSpec};
use crate::domain::animated::AnimatedSpec;
use crate::domain::NEAR_WINDOW_US;
use crate::source::concat::StartOnly;
use crate::source::segments::SegmentSource;
use crate::source::streaming::StreamError;
use crate::source::SourceRead;

/// A video as the pipeline reads it: one file, or segments.
pub enum Video {
    Whole(Box<dyn crate::source::SourceRead>),
    Segmented(Box<dyn SegmentSource>),
}

/// The frame shown at `time` (the best one for `Auto`).
pub fn decode_frame(
    src: &mut dyn SegmentSource,
    time: TimeSpec,
    limits: &Limits,
) -> Result<DecodedFrame, MediaError> {
    let duration_us = src.timeline().duration_us;
    let growing = src.timeline().growing;
    let target = match time {
        TimeSpec::At(us) | TimeSpec::Keyframe(us) if !growing || us < duration_us => us,
        TimeSpec::Near(us) if !growing || us + NEAR_WINDOW_US < duration_us => {
            return best_frame_near(src, us, limits)
        }
        _ if growing => return Err(growing_playlist()),
        TimeSpec::Auto => return best_frame(src, limits),
        TimeSpec::Middle => duration_us / 2,
        TimeSpec::At(us) | TimeSpec::Keyframe(us) | TimeSpec::Near(us) => us,
        TimeSpec::Fraction(_) | TimeSpec::Frame(_) => {
            return Err(MediaError::Internal(format!(
                "{time:?} reached the decoder unsettled"
            )))
        }
    };
    let i = segment_at(src, target)?;
    let start = src.timeline().segments[i].start_us;
    let mut reader = src.open(i, i)?;
    if target > start {
        // The frame is past the segment's start: most of the segment is
        // read, so in one request rather than a run of growing ones.
        let size = reader.size();
        reader
            .prefetch(0, size)
            .map_err(|e| MediaError::Unreadable(e.to_string()))?;
    }
    let (mut demuxer, info) = open_video(reader, limits)?;
    let offset = target.saturating_sub(start);
    let within = match time {
        TimeSpec::Keyframe(_) => TimeSpec::Keyframe(offset),
        _ => TimeSpec::At(offset),
    };
    let frame = exact::frame_in(&mut demuxer, &info, within, limits)?;
    Ok(shifted(frame, start))
}

/// The best of the first frames of the segments starting within
/// [`NEAR_WINDOW_US`] of `center_us` (`auto:T`), or of the segment
/// holding it when none starts there.
fn best_frame_near(
    src: &mut dyn SegmentSource,
    center_us: u64,
    limits: &Limits,
) -> Result<DecodedFrame, MediaError> {
    let center = center_us.min(src.timeline().duration_us);
    let (lo, hi) = (
        center.saturating_sub(NEAR_WINDOW_US),
        center + NEAR_WINDOW_US,
    );
    let mut segments: Vec<usize> = src
        .timeline()
        .segments
        .iter()
        .enumerate()
        .filter(|(_, s)| (lo..=hi).contains(&s.start_us))
        .map(|(i, _)| i)
        .collect();
    if segments.is_empty() {
        segments.push(segment_at(src, center)?);
    }
    best_of(src, &segments, limits)
}

/// The best of the frames at the starts of the segments holding the best
/// frame's candidate times (see [`bestframe`]); the earliest on a tie.
fn best_frame(src: &mut dyn SegmentSource, limits: &Limits) -> Result<DecodedFrame, MediaError> {
    let times = bestframe::candidate_times(Some(src.timeline().duration_us));
    let mut segments: Vec<usize> = times
        .iter()
        .map(|&t| segment_at(src, t))
        .collect::<Result<_, _>>()?;
    segments.dedup();
    best_of(src, &segments, limits)
}

/// The best-scoring first frame of `segments`; the earliest on a tie.
fn best_of(
    src: &mut dyn SegmentSource,
    segments: &[usize],
    limits: &Limits,
) -> Result<DecodedFrame, MediaError> {
    let mut best: Option<(DecodedFrame, f64)> = None;
    for (i, frame) in segments.iter().zip(first_frames(src, segments, limits)?) {
        let s = bestframe::score_frame(&frame)?;
        tracing::debug!(
            segment = i,
            time = frame.time_secs,
            score = s,
            "best-frame candidate"
        );
        if best.as_ref().is_none_or(|(_, b)| s > *b) {
            best = Some((frame, s));
        }
    }
    best.map(|(f, _)| f)
        .ok_or_else(|| MediaError::NoFrame("no segment could be decoded".into()))
}

/// The first frame of each of `segments`, in order.
fn first_frames(
    src: &mut dyn SegmentSource,
    segments: &[usize],
    limits: &Limits,
) -> Result<Vec<DecodedFrame>, MediaError> {
    let readers = src.open_each(segments)?;
    segments
        .iter()
        .zip(readers)
        .map(|(&i, reader)| {
            deadline(limits)?;
            let start = src.timeline().segments[i].start_us;
            let reader = Box::new(StartOnly(reader));
            let (mut demuxer, info) = open_video(reader, limits)?;
            let frame = exact::opening_frame(&mut demuxer, &info, limits)?;
            Ok(shifted(frame, start))
        })
        .collect()
}

/// A sheet of a storyboard: tiles as [`storyboard::render`] plans them,
/// with segment starts as the keyframes: a tile shows the first frame of
/// its segment, or its exact frame when asked (`exact`) or when its count
/// put it more than a tile after its segment's start. `tiles=scenes` is
/// refused (415 `unsupported-stream`): it would read the start of every
/// segment.
pub fn storyboard(
    src: &mut dyn SegmentSource,
    spec: &StoryboardSpec,
    part: Part<'_>,
    limits: &Limits,
    bounds: StoryboardLimits,
) -> Result<Storyboard, MediaError> {
    let timeline = src.timeline();
    let duration_us = timeline.duration_us;
    if timeline.growing {
        return Err(growing_playlist());
    }
    if duration_us == 0 {
        return Err(MediaError::Unreadable(
            "the playlist's duration is 0".into(),
        ));
    }
    if spec.tiles == TileCount::Scenes {
        return Err(MediaError::Source(
            StreamError::Unsupported(
                "tiles=scenes decodes every keyframe, which for a streaming source means fetching \
                 the start of every segment; ask for tiles or interval"
                    .into(),
            )
            .into(),
        ));
    }
    let starts: Vec<u64> = timeline.segments.iter().map(|s| s.start_us).collect();
    match part {
        Part::Later { sheet, whole } => {
            let (times, end_us) = storyboard::sheet_times(whole, sheet)?;
            let set = segment_tiles(
                src,
                spec,
                &times,
                &starts,
                storyboard::layout_step(whole),
                limits,
            )?;
            let tiles = SheetTiles {
                times: &times,
                end_us,
                set: &set,
                tile_height: Some(whole.tile_height),
            };
            storyboard::compose(spec, duration_us, tiles, limits, bounds)
        }
        Part::First => {
            let planned =
                storyboard::tile_times(duration_us, spec.tiles, &starts, bounds.max_tiles);
            let step = planned.get(1).map_or(duration_us, |&t| t);
            if spec.tiles == TileCount::Auto {
                let set = segment_tiles(src, spec, &planned, &starts, step, limits)?;
                let (times, set) = if spec.exact {
                    (planned, set)
                } else {
                    storyboard::at_keyframes(set, duration_us)
                };
                let tiles = SheetTiles {
                    times: &times,
                    end_us: duration_us,
                    set: &set,
                    tile_height: None,
                };
                return storyboard::compose(spec, duration_us, tiles, limits, bounds);
            }
            let first = &planned[..planned.len().min(SHEET_TILES as usize)];
            let set = segment_tiles(src, spec, first, &starts, step, limits)?;
            let shown = |i: usize| storyboard::planned_shown(&starts, planned[i], step, spec.exact);
            storyboard::first_sheet(spec, duration_us, &planned, set, shown, limits, bounds)
        }
    }
}

/// The frames of tiles starting at `times`: each its segment's first
/// frame, or its exact one when asked or when more than `step` after the
/// segment's start (not for the default storyboard, whose tiles follow
/// the segments). Each segment opened once, its frames decoded in order.
fn segment_tiles(
    src: &mut dyn SegmentSource,
    spec: &StoryboardSpec,
    times: &[u64],
    starts: &[u64],
    step: u64,
    limits: &Limits,
) -> Result<FrameSet, MediaError> {
    // For each tile: its segment and the time within it to show.
    let wanted: Vec<(usize, u64)> = times
        .iter()
        .map(|&t| {
            let i = segment_at(src, t)?;
            let offset = t.saturating_sub(starts[i]);
            let exact = spec.exact || (spec.tiles != TileCount::Auto && offset > step);
            Ok((i, if exact { offset } else { 0 }))
        })
        .collect::<Result<_, MediaError>>()?;
    let mut by_segment: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for &(i, offset) in &wanted {
        let offsets = by_segment.entry(i).or_default();
        if !offsets.contains(&offset) {
            offsets.push(offset);
        }
    }
    let order: Vec<usize> = by_segment.keys().copied().collect();
    let readers = src.open_each(&order)?;
    let mut frames: Vec<DecodedFrame> = Vec::new();
    let mut index: BTreeMap<(usize, u64), usize> = BTreeMap::new();
    for (reader, (&i, offsets)) in readers.into_iter().zip(by_segment.iter_mut()) {
        deadline(limits)?;
        offsets.sort_unstable();
        // Only a segment's first frame is wanted: the demuxer need not
        // know where it ends (an MPEG-TS segment's end is not read).
        let reader: Box<dyn SourceRead> = if offsets == &[0] {
            Box::new(StartOnly(reader))
        } else {
            reader
        };
        let (mut demuxer, info) = open_video(reader, limits)?;
        for &offset in offsets.iter() {
            let frame = if offset == 0 {
                exact::opening_frame(&mut demuxer, &info, limits)?
            } else {
                exact::frame_in(&mut demuxer, &info, TimeSpec::At(offset), limits)?
            };
            index.insert((i, offset), frames.len());
            frames.push(shifted(frame, starts[i]));
        }
    }
    Ok(FrameSet {
        of_time: wanted.iter().map(|k| index[k]).collect(),
        frames,
    })
}

/// An animated preview: the segments its range spans, read as one video.
pub fn animated(
    src: &mut dyn SegmentSource,
    spec: &AnimatedSpec,
    limits: &Limits,
) -> Result<animated::Animation, MediaError> {
    if src.timeline().growing && spec.end_us > src.timeline().duration_us {
        return Err(growing_playlist());
    }
    let first = segment_at(src, spec.start_us)?;
    let last = segment_at(src, spec.end_us.saturating_sub(1).max(spec.start_us))?;
    let start = src.timeline().segments[first].start_us;
    let reader = src.open(first, last)?;
    let within = AnimatedSpec {
        start_us: spec.start_us.saturating_sub(start),
        end_us: spec.end_us.saturating_sub(start),
        ..spec.clone()
    };
    animated::render(reader, &within, limits)
}

fn growing_playlist() -> MediaError {
    MediaError::Source(StreamError::Growing.into())
}

fn segment_at(src: &dyn SegmentSource, time_us: u64) -> Result<usize, MediaError> {
    src.timeline()
        .segment_at(time_us)
        .ok_or_else(|| MediaError::Unreadable("the playlist lists no segment".into()))
}

/// A frame of a segment starting at `start_us`, timed on the whole video.
fn shifted(mut frame: DecodedFrame, start_us: u64) -> DecodedFrame {
    frame.time_secs += start_us as f64 / 1e6;
    frame
}

fn deadline(limits: &Limits) -> Result<(), MediaError> {
    if std::time::Instant::now() >= limits.deadline {
        return Err(MediaError::Timeout);
    }
    Ok(())
}
