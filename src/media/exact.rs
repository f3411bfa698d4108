//! The exact frame shown at a moment, from an open video.
//!
//! The frame shown at time `t` is the last frame whose presentation time is
//! at or before `t`, measured from the stream's first timestamp (so an
//! MPEG-TS stream starting at 1.4 s still starts at 0). We seek to the
//! keyframe before `t` and decode forward; if the container's seek lands
//! after `t` (byte-based seeking in MPEG-TS), we seek again earlier. The
//! container's index, where it has one, says which bytes to fetch in one
//! request and when every candidate has been read.
//!
//! Open GOPs (an H.264 keyframe that is an I-frame but not IDR, as x264's
//! `open-gop` and broadcast encoders write them) need one more step: see
//! `OpenGop`.

#![deny(unsafe_code)]

use ffmpeg_next::format::context::Input;
use ffmpeg_next::{codec, frame, Rational};

use super::ffi::avio::Demuxer;
use super::ffi::ffmpeg::{extradata, rescale, rescale_down, rescale_up, set_skip_nonref};
use super::ffi::index::StreamIndex;
use super::stream::{
    finish, open_decoder, read_packet, seek, seek_past_last_cue, seek_to_first_byte, seek_to_start,
    Container, DecodedFrame, Found, StreamInfo, MAX_DECODE_ERRORS,
};
use super::{Limits, MediaError, TimeSpec};

/// Decodes the frame shown at `time` from an open video; the demuxer can
/// be used again (for another time) afterwards.
pub(super) fn frame_in(
    demuxer: &mut Demuxer,
    info: &StreamInfo,
    time: TimeSpec,
    limits: &Limits,
) -> Result<DecodedFrame, MediaError> {
    frame_from(demuxer, info, time, limits, false)
}

/// The first frame of a video just opened, read from where the demuxer
/// is, without a seek: a segment's first frame costs its first bytes
/// only (a timestamp seek in MPEG-TS searches the file for timestamps).
pub(super) fn opening_frame(
    demuxer: &mut Demuxer,
    info: &StreamInfo,
    limits: &Limits,
) -> Result<DecodedFrame, MediaError> {
    frame_from(demuxer, info, TimeSpec::At(0), limits, true)
}

/// Decodes the keyframe at or before `time_us` (`snap=keyframe`): the
/// keyframe's time is read from the first key packet after a seek (from
/// further back if the seek landed after the time, as byte-based seeking
/// in MPEG-TS can), then that frame is decoded exactly, so what is shown is
/// the keyframe's own picture at its own time.
pub(super) fn keyframe_in(
    demuxer: &mut Demuxer,
    info: &StreamInfo,
    time_us: u64,
    limits: &Limits,
) -> Result<DecodedFrame, MediaError> {
    let target = info.start + rescale_down(time_us as i64, Rational(1, 1_000_000), info.time_base);
    let one_second = rescale(1_000_000, Rational(1, 1_000_000), info.time_base).max(1);
    let mut attempt = Seek::To(target);
    let mut step = one_second;
    let mut earliest: Option<i64> = None;
    let key = loop {
        match attempt {
            Seek::To(ts) => {
                if !seek_past_last_cue(demuxer, info, ts)? {
                    seek(demuxer, info, ts)?;
                }
            }
            Seek::Start => seek_to_start(demuxer, info)?,
            Seek::FirstByte | Seek::Here => seek_to_first_byte(demuxer)?,
        }
        let found = first_key_packet(demuxer, info, limits, target)?;
        if let Some(pts) = found {
            if pts <= target {
                break Some(pts);
            }
            earliest = Some(earliest.map_or(pts, |e| e.min(pts)));
        }
        // Landed after the time (byte-based seeking): from further back,
        // then the start, then the first byte; after that the earliest
        // keyframe seen is the first.
        attempt = match attempt {
            Seek::To(ts) if ts > info.start => {
                let earlier = ts.saturating_sub(step);
                step = step.saturating_mul(2);
                if earlier > info.start {
                    Seek::To(earlier)
                } else {
                    Seek::Start
                }
            }
            Seek::To(_) => Seek::Start,
            Seek::Start => Seek::FirstByte,
            Seek::FirstByte | Seek::Here => break earliest,
        };
    };
    let Some(key) = key else {
        // No key packet flagged (some raw or damaged streams): the frame
        // at the time, as without snap.
        return frame_from(demuxer, info, TimeSpec::At(time_us), limits, false);
    };
    let key_us = rescale_up(
        (key - info.start).max(0),
        info.time_base,
        Rational(1, 1_000_000),
    );
    frame_from(demuxer, info, TimeSpec::At(key_us as u64), limits, false)
}

/// Packets read after a seek while looking for the keyframe.
const MAX_PACKETS_TO_KEY: usize = 10_000;

/// From where the demuxer is, the presentation time (decoding time where
/// the container states none) of the latest key packet of the video
/// stream at or before `target`, read until a packet decoded after it
/// (later keyframes are after it too); or, if the first key packet is
/// already after `target` (the seek landed late), that one.
fn first_key_packet(
    demuxer: &mut Demuxer,
    info: &StreamInfo,
    limits: &Limits,
    target: i64,
) -> Result<Option<i64>, MediaError> {
    let mut latest = None;
    for _ in 0..MAX_PACKETS_TO_KEY {
        let Some(packet) = read_packet(demuxer, limits)? else {
            break;
        };
        if packet.stream() != info.index {
            continue;
        }
        let Some(ts) = packet.pts().or(packet.dts()) else {
            continue;
        };
        if packet.is_key() {
            if ts > target {
                return Ok(latest.or(Some(ts)));
            }
            latest = Some(ts);
        } else if latest.is_some() && packet.dts().is_some_and(|dts| dts > target) {
            break;
        }
    }
    Ok(latest)
}

fn frame_from(
    demuxer: &mut Demuxer,
    info: &StreamInfo,
    time: TimeSpec,
    limits: &Limits,
    just_opened: bool,
) -> Result<DecodedFrame, MediaError> {
    let target_us = match time {
        TimeSpec::At(us) => us as i64,
        // (`Auto` is chosen before: see `super::decode::decode_frame`.)
        TimeSpec::Middle | TimeSpec::Auto => info.duration_us.map_or(0, |d| d / 2),
        TimeSpec::Keyframe(us) => return keyframe_in(demuxer, info, us, limits),
        TimeSpec::Near(_) | TimeSpec::Fraction(_) | TimeSpec::Frame(_) => {
            return Err(MediaError::Internal(format!(
                "{time:?} reached the decoder unsettled"
            )))
        }
    };
    // Round down: the frame shown at 1.5 s in a 1/25 time base is tick 37, not 38.
    let target = info.start + rescale_down(target_us, Rational(1, 1_000_000), info.time_base);

    let mut attempt = if just_opened {
        Seek::Here
    } else {
        Seek::To(target)
    };
    // Non-reference frames before the target are skipped until that proves
    // wrong (see `Decoded::skipped`); then the attempt runs again without.
    // Only where every packet carries its own presentation time: elsewhere
    // (AVI, MPEG-PS, ...) a frame's time is FFmpeg's guess from the packets
    // decoded around it, and skipping some moves the guesses (a packed
    // B-frame Xvid AVI showed the next frame's picture under its time).
    let mut skip_nonref = info.container.packets_carry_pts();
    let mut packets_decoded = 0;
    let ordering = Ordering::of(demuxer.input(), info);
    let open_gop = OpenGop::of(demuxer.input(), info);
    let mut earliest: Option<Found> = None;
    let mut step_back = 0i64;
    loop {
        let mut decoder = open_decoder(demuxer.input(), info, limits)?;
        let mut plan = Plan {
            target,
            stop_after_pos: None,
            skip_nonref,
            ordering,
            exact_pts: info.container.packets_carry_pts(),
            open_gop,
        };
        match attempt {
            Seek::To(ts) => {
                if !seek_past_last_cue(demuxer, info, ts)? {
                    seek(demuxer, info, ts)?;
                }
                // After the seek: Matroska reads its cues only when asked to seek.
                if ts == target {
                    if let Some(range) = index_range(demuxer.input(), info, target) {
                        demuxer.prefetch(range.start, range.end)?;
                        plan.stop_after_pos = range.last_needed_pos;
                    }
                }
            }
            Seek::Here => {}
            Seek::Start => seek_to_start(demuxer, info)?,
            Seek::FirstByte => seek_to_first_byte(demuxer)?,
        }
        let Decoded {
            found,
            skipped,
            sent,
        } = decode_until(demuxer, &mut decoder, info, &plan, limits)?;
        packets_decoded += sent;
        if let Some(skipped) = skipped {
            if found.as_ref().is_none_or(|f| f.pts < skipped) {
                // A skipped frame was the one to show (variable frame rate,
                // or a gap in the timestamps): decode everything this time.
                tracing::debug!(
                    skipped,
                    "non-reference skip missed the frame; decoding again"
                );
                skip_nonref = false;
                continue;
            }
        }
        if found.as_ref().is_some_and(|f| f.pts <= target) {
            return Ok(finish(found.expect("checked"), info, packets_decoded));
        }
        // Landed after the target (byte-based seeking in MPEG-TS/PS) or
        // found nothing: try again from further back. The earliest frame
        // seen is kept: if nothing comes earlier it is the first frame (a
        // seek to the first byte can restart an AVI's guessed timestamps
        // later than a seek by time did).
        let overshoot = found.as_ref().map_or(0, |f| f.pts - target);
        if let Some(f) = found {
            if earliest.as_ref().is_none_or(|e: &Found| f.pts < e.pts) {
                earliest = Some(f);
            }
        }
        attempt = match attempt {
            Seek::To(ts) => {
                // Twice the overshoot, and at least twice as far back as
                // the last retry: a seek that finds nothing at all (a
                // damaged file claiming a day-long duration) reaches the
                // start in a few dozen passes, not one per second.
                let one_second = rescale(1_000_000, Rational(1, 1_000_000), info.time_base);
                // (A tick may be longer than a second: a damaged AVI's
                // time base of 41 s made the step 0, the same pass again.)
                step_back = step_back.saturating_mul(2).max(one_second).max(1);
                let earlier = ts.saturating_sub((2 * overshoot).max(step_back));
                if ts > info.start && earlier > info.start {
                    Seek::To(earlier)
                } else {
                    Seek::Start
                }
            }
            Seek::Here => Seek::Start,
            Seek::Start => Seek::FirstByte,
            // From the very first byte nothing comes earlier: the first frame
            // decoded is the one shown.
            Seek::FirstByte => {
                return earliest
                    .map(|f| finish(f, info, packets_decoded))
                    .ok_or_else(|| {
                        MediaError::NoFrame("no frame of the video could be decoded".into())
                    })
            }
        };
    }
}

/// How one decoding pass finds the frame shown at `target`.
struct Plan {
    target: i64,
    /// From the container's index: the file position of the last packet
    /// decoded no later than the target (MP4's index lists decoding times).
    /// Every frame shown at or before the target has been read once it has.
    stop_after_pos: Option<i64>,
    /// Skip non-reference frames that are certainly not the one shown (a
    /// later frame starts at or before the target): B-frames cost nothing.
    skip_nonref: bool,
    /// What packet timestamps prove; see [`Ordering`].
    ordering: Ordering,
    /// Whether a packet's presentation time is the file's own (see
    /// [`Container::packets_carry_pts`]): AVI's are copies of its decoding
    /// times, which a packed B-frame contradicts.
    exact_pts: bool,
    /// For H.264: how to tell a pass that starts at an open-GOP keyframe,
    /// whose drain needs care; `None` for other codecs.
    open_gop: Option<OpenGop>,
}

/// Which packet timestamps say that no later packet can be the frame shown.
/// (A packet shown exactly at the target always ends the search: timestamps
/// are unique.)
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ordering {
    /// The container stores decoding times (MP4, MPEG-TS, FLV): a packet
    /// decoded after the target is shown after it, as is all that follows.
    Dts,
    /// The codec never reorders frames (VP8/9, AV1, intra-only codecs), so a
    /// packet shown after the target ends the search.
    Pts,
    /// Neither (H.264 in Matroska: FFmpeg guesses decoding times there):
    /// decode until a frame after the target comes out.
    Unknown,
}

impl Ordering {
    fn of(input: &Input, info: &StreamInfo) -> Ordering {
        use codec::Id;
        if info.container.stores_dts() {
            return Ordering::Dts;
        }
        let id = input
            .stream(info.index)
            .map_or(Id::None, |s| s.parameters().id());
        match id {
            Id::VP8
            | Id::VP9
            | Id::AV1
            | Id::PRORES
            | Id::MJPEG
            | Id::H263
            | Id::FLV1
            | Id::DNXHD
            | Id::FFV1
            | Id::PNG
            | Id::QTRLE => Ordering::Pts,
            _ => Ordering::Unknown,
        }
    }
}

/// The packets to fetch for the frame at a target, from the container's index.
struct IndexRange {
    start: u64,
    end: u64,
    last_needed_pos: Option<i64>,
}

/// The byte range holding the packets from the keyframe before `target`
/// to what decoding will need, from the container's index, so they cost one
/// round trip instead of a run of growing reads.
fn index_range(input: &Input, info: &StreamInfo, target: i64) -> Option<IndexRange> {
    let index = StreamIndex::of(input, info.index);
    match info.container {
        Container::Mp4 => sample_range(&index, target),
        Container::Matroska => cue_range(&index, input, info, target),
        Container::StoresDts | Container::Other => None,
    }
}

/// MP4, MOV, 3GP: the index lists every packet with its decoding time, so
/// the range runs exactly through the last packet decoded no later than the
/// target (every frame shown at or before it is decoded at or before it).
fn sample_range(index: &StreamIndex, target: i64) -> Option<IndexRange> {
    let key = index.search(target, false)?;
    let last = index.search(target, true)?;
    if last < key || last - key > MAX_RANGE_ENTRIES {
        return None;
    }
    let (mut start, mut end, mut last_pos) = (i64::MAX, i64::MIN, -1);
    for i in key..=last {
        let e = index.get(i).filter(|e| e.pos >= 0)?;
        start = start.min(e.pos);
        end = end.max(e.end());
        last_pos = e.pos;
    }
    (end > start).then_some(IndexRange {
        start: start as u64,
        end: end as u64,
        last_needed_pos: Some(last_pos),
    })
}

/// Index entries walked for one range at most (a 10 s GOP at 60 fps is 600).
const MAX_RANGE_ENTRIES: i32 = 100_000;

/// Matroska/WebM: cues list only keyframes (their clusters), so the range
/// from the keyframe's cluster to the target is estimated by interpolating
/// between the cue before the target and the next one (past the last cue,
/// the end of the file and of the video), with a margin for the keyframe
/// itself; what it misses is read as usual.
fn cue_range(
    index: &StreamIndex,
    input: &Input,
    info: &StreamInfo,
    target: i64,
) -> Option<IndexRange> {
    let key = index.search(target, false)?;
    let first = index.get(key).filter(|e| e.pos >= 0)?;
    let start = first.pos as u64;
    let (next_pos, next_ts) = match index.get(key + 1) {
        Some(next) => (next.pos, next.timestamp),
        None => {
            let end_ts = info
                .duration_us
                .map(|us| info.start + rescale(us, Rational(1, 1_000_000), info.time_base));
            (
                super::ffi::index::file_size(input).unwrap_or(0),
                end_ts.unwrap_or(i64::MIN),
            )
        }
    };
    if next_pos <= first.pos || next_ts <= first.timestamp {
        return Some(IndexRange {
            start,
            end: u64::MAX,
            last_needed_pos: None,
        });
    }
    let span = (next_pos - first.pos) as f64;
    let ticks = (next_ts - first.timestamp) as f64;
    let share = (target - first.timestamp) as f64 / ticks;
    // 10% over the interpolation, plus a keyframe: as many bytes as a
    // quarter second of the video at its average rate.
    let quarter_second = span / (ticks * f64::from(info.time_base)) / 4.0;
    let len = span * share * 1.1 + quarter_second.max(16.0 * 1024.0);
    Some(IndexRange {
        start,
        end: start + len.clamp(0.0, span) as u64,
        last_needed_pos: None,
    })
}

/// Where to start decoding from.
#[derive(Debug, Clone, Copy)]
enum Seek {
    /// Nowhere: the demuxer was just opened, and reads from the start
    /// (the packets its probing read first).
    Here,
    /// The keyframe at or before this timestamp.
    To(i64),
    /// The stream's first timestamp.
    Start,
    /// Byte 0 of the file, for containers whose timestamp seek cannot reach
    /// the start.
    FirstByte,
}

/// What one decoding pass found.
struct Decoded {
    /// The last frame at or before the target, or the first frame if every
    /// frame is after it.
    found: Option<Found>,
    /// The latest timestamp of a packet sent while non-reference frames were
    /// being skipped: if the frame found is earlier, a skipped frame may have
    /// been the one to show.
    skipped: Option<i64>,
    /// Packets sent to the decoder.
    sent: usize,
}

/// Decodes from the current position until the frame shown at the target
/// is known. Packets stop as soon as every frame that could be shown has
/// been sent (the decoder is then drained), so neither the decoder's delay
/// nor the frame after the target costs a read.
fn decode_until(
    demuxer: &mut Demuxer,
    decoder: &mut ffmpeg_next::decoder::Video,
    info: &StreamInfo,
    plan: &Plan,
    limits: &Limits,
) -> Result<Decoded, MediaError> {
    let target = plan.target;
    let mut best: Option<Found> = None;
    let mut skipped: Option<i64> = None;
    let mut skipping = false;
    let mut sent = 0usize;
    let mut errors = 0usize;
    let mut last_dts: Option<i64> = None;
    // Where the keyframe this pass starts at is shown, if it opens a GOP
    // (see `OpenGop`).
    let mut open_key: Option<i64> = None;
    while let Some(packet) = read_packet(demuxer, limits)? {
        if packet.stream() != info.index {
            continue;
        }
        // After a seek, decoding starts at a keyframe; anything before it
        // would decode to garbage.
        if sent == 0 && !packet.is_key() {
            continue;
        }
        if sent == 0 {
            open_key = plan
                .open_gop
                .filter(|o| packet.data().is_some_and(|d| o.keyframe_opens_gop(d)))
                .and(packet.pts());
        }
        // Decoded after the target, so shown after it (pts >= dts), as is
        // everything after it: nothing more can be the frame shown.
        let past = match plan.ordering {
            Ordering::Dts => packet.dts(),
            Ordering::Pts => packet.pts(),
            Ordering::Unknown => None,
        };
        if sent > 0 && past.is_some_and(|ts| ts > target) {
            break;
        }
        let skip = plan.skip_nonref
            && packet.duration() > 0
            && packet
                .pts()
                .is_some_and(|pts| pts.saturating_add(packet.duration()) <= target);
        if skip != skipping {
            set_skip_nonref(decoder, skip);
            skipping = skip;
        }
        if skip {
            skipped = skipped.max(packet.pts());
        }
        if decoder.send_packet(&packet).is_err() {
            errors += 1;
            if errors > MAX_DECODE_ERRORS {
                break;
            }
            continue;
        }
        sent += 1;
        last_dts = last_dts.max(packet.dts());
        if receive(decoder, &mut best, target, last_dts, None, limits)? {
            return Ok(Decoded {
                found: best,
                skipped,
                sent,
            });
        }
        // Shown exactly at the target (timestamps are unique), or the last
        // packet decoded no later than it: every candidate has been sent.
        if (plan.exact_pts && packet.pts() == Some(target))
            || (plan.ordering == Ordering::Dts && packet.dts() == Some(target))
            || (plan.stop_after_pos.is_some()
                && plan.stop_after_pos == Some(packet.position() as i64))
        {
            break;
        }
    }
    if let Some(failure) = demuxer.take_failure() {
        return Err(failure);
    }
    if open_key.is_some() {
        // The frames decoded before the keyframe came out, which the drain
        // would drop (see `OpenGop`). The decoder was opened without flags
        // (`open_decoder`), so this adds the one.
        decoder.set_flags(codec::Flags::OUTPUT_CORRUPT);
    }
    let _ = decoder.send_eof();
    receive(decoder, &mut best, target, last_dts, open_key, limits)?;
    Ok(Decoded {
        found: best,
        skipped,
        sent,
    })
}

/// Takes every frame the decoder has ready, but those shown before `from`
/// (an open GOP's leading pictures: see [`OpenGop`]). Returns true once a
/// frame after `target` has been seen (so `best` is final).
fn receive(
    decoder: &mut ffmpeg_next::decoder::Video,
    best: &mut Option<Found>,
    target: i64,
    last_dts: Option<i64>,
    from: Option<i64>,
    limits: &Limits,
) -> Result<bool, MediaError> {
    let mut frame = frame::Video::empty();
    while decoder.receive_frame(&mut frame).is_ok() {
        if frame.width() as u64 * frame.height() as u64 > limits.max_frame_pixels {
            return Err(MediaError::FrameTooLarge {
                width: frame.width(),
                height: frame.height(),
                limit: limits.max_frame_pixels,
            });
        }
        let pts = match frame.timestamp().or(frame.pts()) {
            Some(pts) => pts,
            // No timestamp at all (FFmpeg guesses none for a frame left in
            // the decoder at the end of an AVI): just after the frame
            // before, and after every packet sent, since it came out after
            // them.
            None => best
                .as_ref()
                .map(|b| b.pts + 1)
                .max(last_dts.map(|d| d + 1))
                .unwrap_or(i64::MIN),
        };
        if from.is_some_and(|from| pts < from) {
            continue;
        }
        let after = pts > target;
        if !after || best.is_none() {
            let frame = std::mem::replace(&mut frame, frame::Video::empty());
            *best = Some(Found { frame, pts });
        }
        if after {
            return Ok(true);
        }
    }
    Ok(false)
}

/// How an H.264 stream's packets hold their NAL units, to tell whether a
/// pass starts at an open-GOP keyframe: an I-frame that is not IDR, which
/// frames after it may refer across (x264's `open-gop`, broadcast MPEG-TS).
///
/// FFmpeg's H.264 decoder, started at such a keyframe, takes the frames it
/// decodes before it has output the keyframe for not yet "recovered"
/// (they might refer to pictures before it). While packets keep coming it
/// outputs them anyway once the keyframe is out (every frame from then on
/// is whole), but when it is drained (`send_eof`, which ends every pass
/// here as soon as the frame shown has been sent) it drops them. Seeking
/// to the keyframe at 1.2 s of a 25 fps x264 `open-gop` file, the frames
/// at 1.28 and 1.36 s were sent before the keyframe came out (the decoder
/// holds two frames back to reorder them) and never came out: frame 30 was
/// shown for 32 and 34, in MP4, Matroska and MPEG-TS alike, and at the end
/// of the file, where every pass drains. So the drain of such a pass lets
/// every frame out (`AV_CODEC_FLAG_OUTPUT_CORRUPT`) and keeps those shown
/// at or after the keyframe: the leading pictures before it refer to the
/// GOP before, which was not decoded, and what follows is whole (FFmpeg
/// would have output it had it decoded on).
///
/// A pass that starts at an IDR frame (closed GOPs) is unchanged, as is
/// one starting at a P-frame keyframe (intra refresh: which of its frames
/// are whole only the decoder knows). HEVC needs none of this: FFmpeg's
/// decoder skips the leading pictures of the CRA keyframe it starts at,
/// and drops nothing at the drain.
#[derive(Debug, Clone, Copy)]
enum OpenGop {
    /// Each NAL unit after a start code (MPEG-TS, raw streams).
    AnnexB,
    /// Each NAL unit after its size in this many bytes (MP4, Matroska:
    /// the `avcC` extradata says how many).
    Sized(usize),
}

impl OpenGop {
    /// `None` for every codec but H.264.
    fn of(input: &Input, info: &StreamInfo) -> Option<OpenGop> {
        let parameters = input.stream(info.index)?.parameters();
        if parameters.id() != codec::Id::H264 {
            return None;
        }
        Some(match extradata(&parameters) {
            [1, _, _, _, sizes, ..] => OpenGop::Sized(usize::from(sizes & 3) + 1),
            _ => OpenGop::AnnexB,
        })
    }

    /// Whether a key packet is an open-GOP keyframe: its first slice is
    /// intra (I or SI) and not IDR.
    fn keyframe_opens_gop(self, data: &[u8]) -> bool {
        // Some muxers store start codes whatever the extradata says.
        let framing = if data.starts_with(&[0, 0, 1]) || data.starts_with(&[0, 0, 0, 1]) {
            OpenGop::AnnexB
        } else {
            self
        };
        match first_slice(framing, data) {
            Some(nal) if nal[0] & 0x1f == NAL_SLICE => intra_slice(nal),
            _ => false,
        }
    }
}

/// H.264 NAL unit types: a slice of a picture that is not IDR, and of one
/// that is.
const NAL_SLICE: u8 = 1;
const NAL_IDR_SLICE: u8 = 5;

/// The first slice NAL unit in a packet (from its header byte to the end
/// of the packet, for start codes: only its first bytes are read).
fn first_slice(framing: OpenGop, data: &[u8]) -> Option<&[u8]> {
    let is_slice = |nal: &&[u8]| matches!(nal[0] & 0x1f, NAL_SLICE | NAL_IDR_SLICE);
    match framing {
        OpenGop::AnnexB => (0..data.len().saturating_sub(3))
            .filter(|&i| data[i..i + 3] == [0, 0, 1])
            .map(|i| &data[i + 3..])
            .find(is_slice),
        OpenGop::Sized(n) => {
            let mut pos = 0;
            while let Some(size) = data.get(pos..pos + n) {
                let size = size.iter().fold(0usize, |s, &b| s << 8 | usize::from(b));
                let nal = data
                    .get(pos + n..pos + n + size)
                    .filter(|nal| !nal.is_empty())?;
                if is_slice(&nal) {
                    return Some(nal);
                }
                pos += n + size;
            }
            None
        }
    }
}

/// Whether a slice NAL unit (header byte first) is intra: its `slice_type`
/// (after `first_mb_in_slice`), modulo 5, is I (2) or SI (4).
fn intra_slice(nal: &[u8]) -> bool {
    // The header's first bytes, less emulation prevention (00 00 03).
    let mut bytes = Vec::with_capacity(16);
    let mut zeros = 0;
    for &b in nal.iter().skip(1).take(16) {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        bytes.push(b);
    }
    let mut pos = 0;
    let slice_type = exp_golomb(&bytes, &mut pos).and_then(|_| exp_golomb(&bytes, &mut pos));
    matches!(slice_type.map(|t| t % 5), Some(2 | 4))
}

/// An unsigned Exp-Golomb code read at bit `pos`, which is moved past it.
fn exp_golomb(bytes: &[u8], pos: &mut usize) -> Option<u32> {
    let bit = |i: usize| bytes.get(i / 8).map(|b| b >> (7 - i % 8) & 1);
    let mut zeros = 0;
    while bit(*pos)? == 0 {
        zeros += 1;
        *pos += 1;
        if zeros > 31 {
            return None;
        }
    }
    *pos += 1;
    let mut value = 1u64;
    for _ in 0..zeros {
        value = value << 1 | u64::from(bit(*pos)?);
        *pos += 1;
    }
    u32::try_from(value - 1).ok()
}

#[cfg(test)]
mod tests {
    use super::OpenGop;

    /// Slice headers: `first_mb_in_slice` 0 (`1`), then `slice_type` 7, I
    /// (`0001000`), or 5, P (`00110`).
    const I_SLICE: u8 = 0b1000_1000;
    const P_SLICE: u8 = 0b1001_1000;

    #[test]
    fn an_intra_keyframe_that_is_not_idr_opens_a_gop() {
        let sized = OpenGop::Sized(4);
        // SEI, then a non-IDR I slice, each after its size.
        let open = [0, 0, 0, 2, 0x06, 0x80, 0, 0, 0, 2, 0x41, I_SLICE];
        assert!(sized.keyframe_opens_gop(&open));
        // The same with start codes, whatever the extradata said.
        let annex_b = [0, 0, 0, 1, 0x06, 0x80, 0, 0, 1, 0x41, I_SLICE, 0x10];
        assert!(sized.keyframe_opens_gop(&annex_b));
        assert!(OpenGop::AnnexB.keyframe_opens_gop(&annex_b));
        // Two-byte sizes.
        assert!(OpenGop::Sized(2).keyframe_opens_gop(&[0, 2, 0x41, I_SLICE]));
    }

    #[test]
    fn idr_and_p_keyframes_and_damaged_packets_do_not() {
        let sized = OpenGop::Sized(4);
        assert!(
            !sized.keyframe_opens_gop(&[0, 0, 0, 2, 0x65, I_SLICE]),
            "IDR"
        );
        assert!(
            !sized.keyframe_opens_gop(&[0, 0, 0, 2, 0x41, P_SLICE]),
            "intra refresh"
        );
        assert!(
            !OpenGop::AnnexB.keyframe_opens_gop(&[0, 0, 1, 0x65, I_SLICE]),
            "IDR"
        );
        for damaged in [
            &[][..],
            &[0, 0, 0, 9, 0x41, I_SLICE],
            &[0, 0, 0, 0],
            &[0, 0, 0, 1, 0x41],
        ] {
            assert!(!sized.keyframe_opens_gop(damaged), "{damaged:?}");
        }
    }
}
