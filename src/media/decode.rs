//! Finding and decoding the frame shown at a moment.
//!
//! The frame shown at time `t` is the last frame whose presentation time is
//! at or before `t`, measured from the stream's first timestamp (so an
//! MPEG-TS stream starting at 1.4 s still starts at 0). We seek to the
//! keyframe before `t` and decode forward; if the container's seek lands
//! after `t` (byte-based seeking in MPEG-TS), we seek again earlier.

use std::time::Instant;

use ffmpeg_next::ffi;
use ffmpeg_next::format::context::Input;
use ffmpeg_next::media::Type;
use ffmpeg_next::{codec, frame, Packet, Rational};

use super::avio::Demuxer;
use super::geometry::{Orientation, Shape};
use super::index::{Container, StreamIndex};
use super::tonemap::Transfer;
use super::{Limits, MediaError, TimeSpec};
use crate::source::SourceRead;

/// A decoded frame and what is needed to show it as a player would.
#[derive(Clone)]
pub struct DecodedFrame {
    pub frame: frame::Video,
    pub sar: (u32, u32),
    pub orientation: Orientation,
    pub transfer: Transfer,
    /// Seconds from the start of the video.
    pub time_secs: f64,
    /// Packets sent to the decoder to reach this frame, over every pass.
    pub packets_decoded: usize,
}

impl DecodedFrame {
    pub fn shape(&self) -> Shape {
        Shape {
            width: self.frame.width(),
            height: self.frame.height(),
            sar: self.sar,
            orientation: self.orientation,
        }
    }
}

/// Decode errors tolerated (corrupt packets are skipped) before giving up.
const MAX_DECODE_ERRORS: usize = 64;

/// What the container says about the video stream.
pub(super) struct StreamInfo {
    pub(super) index: usize,
    pub(super) time_base: Rational,
    /// First timestamp, in `time_base` units.
    pub(super) start: i64,
    /// Whether the container said where the stream starts (a fragmented
    /// MP4's header does not: see [`settle_start`]).
    pub(super) start_known: bool,
    /// Duration in microseconds, if known.
    pub(super) duration_us: Option<i64>,
    pub(super) orientation: Orientation,
    pub(super) container: Container,
    /// The container's sample aspect ratio, 0/1 when it gives none.
    pub(super) sar: Rational,
}

/// What the container says about a video, without decoding it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probe {
    /// Seconds, if the container knows.
    pub duration_secs: Option<f64>,
}

/// Reads the container header (and index) only: cheap, and the bytes land
/// in the source cache for the render that follows.
pub fn probe(reader: Box<dyn SourceRead>, limits: &Limits) -> Result<Probe, MediaError> {
    let (_, info) = open_stream(reader, limits)?;
    Ok(Probe {
        duration_secs: info.duration_us.map(|us| us as f64 / 1e6),
    })
}

/// Like [`probe`], and also refuses a file that its own index says is cut
/// short (MP4's sample table, Matroska's cues pointing past its end): an
/// upload is checked so before it is kept.
pub fn probe_complete(reader: Box<dyn SourceRead>, limits: &Limits) -> Result<Probe, MediaError> {
    let (demuxer, info) = open_stream(reader, limits)?;
    check_frame_size(demuxer.input(), &info, limits)?;
    if matches!(info.container, Container::Mp4 | Container::Matroska) {
        if let Some(size) = super::index::file_size(demuxer.input()) {
            let index = StreamIndex::of(demuxer.input(), info.index);
            let last = index.get(index.entries() - 1);
            if last.is_some_and(|e| e.end() > size) {
                return Err(MediaError::Unreadable(
                    "the file is truncated: its index points past its end".into(),
                ));
            }
        }
    }
    Ok(Probe {
        duration_secs: info.duration_us.map(|us| us as f64 / 1e6),
    })
}

/// Opens `reader` and decodes the frame shown at `time`.
pub fn decode_frame(
    reader: Box<dyn SourceRead>,
    time: TimeSpec,
    limits: &Limits,
) -> Result<DecodedFrame, MediaError> {
    if time == TimeSpec::Auto {
        return super::bestframe::best_frame(reader, limits);
    }
    let (mut demuxer, info) = open_video(reader, limits)?;
    frame_in(&mut demuxer, &info, time, limits)
}

/// Opens `reader`'s container and picks its video stream, checked against
/// `limits`; other streams' packets are dropped by the demuxer.
pub(super) fn open_video(
    reader: Box<dyn SourceRead>,
    limits: &Limits,
) -> Result<(Demuxer, StreamInfo), MediaError> {
    let (mut demuxer, info) = open_stream(reader, limits)?;
    check_frame_size(demuxer.input(), &info, limits)?;
    discard_other_streams(demuxer.input_mut(), info.index);
    Ok((demuxer, info))
}

/// Opens the container and reads what it says of its video stream,
/// probing packets where the header lacks it.
fn open_stream(
    reader: Box<dyn SourceRead>,
    limits: &Limits,
) -> Result<(Demuxer, StreamInfo), MediaError> {
    let mut demuxer = Demuxer::open(reader, limits)?;
    if needs_stream_info(demuxer.input()) {
        demuxer.find_stream_info()?;
    }
    let mut info = stream_info(demuxer.input())?;
    if !info.start_known {
        settle_start(&mut demuxer, &mut info, limits)?;
    }
    Ok((demuxer, info))
}

/// A fragmented MP4 (`moof` fragments after a `moov` without samples, as
/// DASH/CMAF packagers and crash-safe recorders write it) gives no start
/// time in its header, and its timeline may start anywhere (a recording
/// that joined a live stream starts at 66 s): the video starts at its first
/// frame, so the first packet's presentation time is read (it is the first
/// keyframe, which the demuxer's index already located). Its stream
/// duration is where the timeline ends, so it is made relative too.
fn settle_start(
    demuxer: &mut Demuxer,
    info: &mut StreamInfo,
    limits: &Limits,
) -> Result<(), MediaError> {
    // The first fragment's header says it (bytes the demuxer has read),
    // when its decoding time is the one FFmpeg indexed: no edit list or
    // negative offsets moved it.
    let track_id = demuxer.input().stream(info.index).map_or(0, |s| s.id());
    let header = demuxer
        .with_reader(|r| super::mp4::first_fragment_start(r, track_id as u32))
        .ok()
        .flatten();
    let indexed = StreamIndex::of(demuxer.input(), info.index)
        .get(0)
        .map(|e| e.timestamp);
    if let Some(h) = header.filter(|h| Some(h.decode_time as i64) == indexed) {
        let dts = h.decode_time as i64;
        tracing::debug!(
            dts,
            offset = h.composition_offset,
            "start from the first fragment's header"
        );
        set_start(demuxer, info, dts + h.composition_offset, dts);
        return Ok(());
    }
    seek_to_start(demuxer, info)?;
    let mut first = None;
    for _ in 0..MAX_PACKETS_TO_START {
        let Some(packet) = read_packet(demuxer, limits)? else {
            break;
        };
        if packet.stream() == info.index {
            first = packet
                .pts()
                .zip(packet.dts())
                .or(packet.pts().map(|p| (p, p)));
            break;
        }
    }
    if let Some((pts, dts)) = first {
        tracing::debug!(pts, dts, "start from the first packet");
        set_start(demuxer, info, pts, dts);
    }
    info.start_known = true;
    seek_to_start(demuxer, info)
}

/// The video starts at `pts`, its first packet decoded at `dts`.
fn set_start(demuxer: &Demuxer, info: &mut StreamInfo, pts: i64, dts: i64) {
    info.start = pts;
    info.start_known = true;
    // The stream's duration is the end of its last fragment in decoding
    // time: less the first decoding time, it is the video's length.
    let stream = demuxer
        .input()
        .stream(info.index)
        .expect("index from stream_info");
    if stream.duration() > dts {
        info.duration_us = Some(rescale(
            stream.duration() - dts,
            info.time_base,
            Rational(1, 1_000_000),
        ));
    }
}

/// Packets of other streams read before the video's first, at most.
const MAX_PACKETS_TO_START: usize = 1000;

/// Decodes the frame shown at `time` from an open video; the demuxer can
/// be used again (for another time) afterwards.
pub(super) fn frame_in(
    demuxer: &mut Demuxer,
    info: &StreamInfo,
    time: TimeSpec,
    limits: &Limits,
) -> Result<DecodedFrame, MediaError> {
    let target_us = match time {
        TimeSpec::At(us) => us as i64,
        // (`Auto` is chosen before: see `decode_frame`.)
        TimeSpec::Middle | TimeSpec::Auto => info.duration_us.map_or(0, |d| d / 2),
    };
    // Round down: the frame shown at 1.5 s in a 1/25 time base is tick 37, not 38.
    let target = info.start + rescale_down(target_us, Rational(1, 1_000_000), info.time_base);

    let mut attempt = Seek::To(target);
    // Non-reference frames before the target are skipped until that proves
    // wrong (see `Decoded::skipped`); then the attempt runs again without.
    // Only where every packet carries its own presentation time: elsewhere
    // (AVI, MPEG-PS, ...) a frame's time is FFmpeg's guess from the packets
    // decoded around it, and skipping some moves the guesses (a packed
    // B-frame Xvid AVI showed the next frame's picture under its time).
    let mut skip_nonref = info.container.packets_carry_pts();
    let mut packets_decoded = 0;
    let ordering = Ordering::of(demuxer.input(), info);
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
                super::index::file_size(input).unwrap_or(0),
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
    /// The keyframe at or before this timestamp.
    To(i64),
    /// The stream's first timestamp.
    Start,
    /// Byte 0 of the file, for containers whose timestamp seek cannot reach
    /// the start.
    FirstByte,
}

pub(super) struct Found {
    pub(super) frame: frame::Video,
    pub(super) pts: i64,
}

pub(super) fn finish(found: Found, info: &StreamInfo, packets_decoded: usize) -> DecodedFrame {
    let sar = pixel_aspect(info.sar, found.frame.aspect_ratio());
    let transfer = Transfer::of(&found.frame);
    let secs = found.pts.saturating_sub(info.start).max(0) as f64 * f64::from(info.time_base);
    DecodedFrame {
        frame: found.frame,
        sar,
        orientation: info.orientation,
        transfer,
        time_secs: secs,
        packets_decoded,
    }
}

/// The sample aspect ratio a frame is shown with, as players and
/// `av_guess_sample_aspect_ratio` decide: the container's when it gives one
/// (an MP4 `pasp` box, Matroska's display size), else the codec's (the
/// frame's), else square. A 3GP's H.263 says 12:11 whatever its container
/// declares.
fn pixel_aspect(container: Rational, codec: Rational) -> (u32, u32) {
    [container, codec]
        .into_iter()
        .find(|r| r.numerator() > 0 && r.denominator() > 0)
        .map_or((1, 1), |r| (r.numerator() as u32, r.denominator() as u32))
}

/// Whether the container header lacks what we need (stream list, picture
/// size, duration), so a few packets must be probed. MP4, MOV, MKV/WebM and
/// AVI headers carry it; MPEG-TS and FLV do not.
pub(super) fn needs_stream_info(input: &Input) -> bool {
    let Some(stream) = input.streams().best(Type::Video) else {
        return true;
    };
    // SAFETY: reading plain fields of live codec parameters.
    let (w, h) = unsafe {
        let p = stream.parameters().as_ptr();
        ((*p).width, (*p).height)
    };
    w <= 0 || h <= 0 || (input.duration() <= 0 && stream.duration() <= 0)
}

pub(super) fn stream_info(input: &Input) -> Result<StreamInfo, MediaError> {
    let stream = input
        .streams()
        .filter(|s| s.parameters().medium() == Type::Video)
        .filter(|s| {
            let pic = s
                .disposition()
                .contains(ffmpeg_next::format::stream::Disposition::ATTACHED_PIC);
            !pic
        })
        .max_by_key(|s| {
            // SAFETY: plain fields of live codec parameters.
            let (w, h) = unsafe {
                let p = s.parameters().as_ptr();
                ((*p).width as i64, (*p).height as i64)
            };
            (s.index() == best_index(input), w * h)
        })
        .ok_or(MediaError::NoVideoStream)?;
    let time_base = stream.time_base();
    if time_base.numerator() <= 0 || time_base.denominator() <= 0 {
        return Err(MediaError::Unreadable(
            "the video stream has no time base".into(),
        ));
    }
    let (start, start_known) = match stream.start_time() {
        ffi::AV_NOPTS_VALUE => (0, Container::of(input) != Container::Mp4),
        s => (s, true),
    };
    let duration_us = if stream.duration() > 0 {
        Some(rescale(
            stream.duration(),
            time_base,
            Rational(1, 1_000_000),
        ))
    } else if input.duration() > 0 {
        Some(input.duration()) // AV_TIME_BASE is microseconds
    } else {
        None
    };
    let orientation = stream
        .side_data()
        .find(|sd| sd.kind() == codec::packet::side_data::Type::DisplayMatrix)
        .and_then(|sd| {
            let bytes = sd.data();
            (bytes.len() >= 36).then(|| {
                let mut m = [0i32; 9];
                for (i, v) in m.iter_mut().enumerate() {
                    *v = i32::from_ne_bytes(bytes[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
                }
                Orientation::from_display_matrix(&m)
            })
        })
        .unwrap_or_default();
    Ok(StreamInfo {
        index: stream.index(),
        time_base,
        start,
        start_known,
        duration_us,
        orientation,
        container: Container::of(input),
        // SAFETY: a plain field of a live stream.
        sar: unsafe { (*stream.as_ptr()).sample_aspect_ratio }.into(),
    })
}

fn best_index(input: &Input) -> usize {
    input
        .streams()
        .best(Type::Video)
        .map_or(usize::MAX, |s| s.index())
}

pub(super) fn check_frame_size(
    input: &Input,
    info: &StreamInfo,
    limits: &Limits,
) -> Result<(), MediaError> {
    let stream = input.stream(info.index).expect("index from stream_info");
    // SAFETY: plain fields of live codec parameters.
    let (w, h) = unsafe {
        let p = stream.parameters().as_ptr();
        ((*p).width.max(0) as u32, (*p).height.max(0) as u32)
    };
    if w as u64 * h as u64 > limits.max_frame_pixels {
        return Err(MediaError::FrameTooLarge {
            width: w,
            height: h,
            limit: limits.max_frame_pixels,
        });
    }
    Ok(())
}

/// Tells the demuxer to drop packets of every other stream (audio, data).
pub(super) fn discard_other_streams(input: &mut Input, keep: usize) {
    // SAFETY: `streams` holds `nb_streams` valid pointers while the context lives.
    unsafe {
        let ctx = input.as_mut_ptr();
        for i in 0..(*ctx).nb_streams as usize {
            if i != keep {
                (**(*ctx).streams.add(i)).discard = ffi::AVDiscard::AVDISCARD_ALL;
            }
        }
    }
}

pub(super) fn open_decoder(
    input: &Input,
    info: &StreamInfo,
    limits: &Limits,
) -> Result<ffmpeg_next::decoder::Video, MediaError> {
    let stream = input.stream(info.index).expect("index from stream_info");
    let mut ctx = codec::context::Context::from_parameters(stream.parameters())
        .map_err(|e| MediaError::Unreadable(format!("unsupported video codec ({e})")))?;
    ctx.set_threading(codec::threading::Config {
        kind: codec::threading::Type::Frame,
        count: limits.decoder_threads,
        ..Default::default()
    });
    // SAFETY: setting plain fields before the codec is opened.
    unsafe {
        let raw = ctx.as_mut_ptr();
        (*raw).pkt_timebase = info.time_base.into();
        (*raw).max_pixels = limits.max_frame_pixels.min(i64::MAX as u64) as i64;
        // Only the documented decoders open; freed with the context.
        (*raw).codec_whitelist = ffi::av_strdup(super::avio::DECODERS.as_ptr());
    }
    let codec_id = stream.parameters().id();
    ctx.decoder()
        .video()
        .map_err(|e| MediaError::Unreadable(format!("no decoder for {codec_id:?} ({e})")))
}

pub(super) fn seek(demuxer: &mut Demuxer, info: &StreamInfo, ts: i64) -> Result<(), MediaError> {
    // SAFETY: the context is open; the stream index is valid.
    let ret = unsafe {
        ffi::avformat_seek_file(
            demuxer.input_mut().as_mut_ptr(),
            info.index as i32,
            i64::MIN,
            ts,
            ts,
            0,
        )
    };
    if let Some(failure) = demuxer.take_failure() {
        return Err(failure);
    }
    if ret < 0 {
        // Some containers cannot seek by time; read from the start instead.
        return seek_to_start(demuxer, info);
    }
    Ok(())
}

/// Matroska/WebM: a target past the last cue makes FFmpeg's seek parse
/// every cluster to the end of the file looking for a later keyframe (up to
/// the whole last GOP, before a packet is decoded). Instead the cues are
/// loaded by seeking to the start (which reads nothing more), and the last
/// cue's cluster is reached by a byte seek, which the demuxer resumes from
/// like any cluster boundary. Returns whether it seeked.
pub(super) fn seek_past_last_cue(
    demuxer: &mut Demuxer,
    info: &StreamInfo,
    ts: i64,
) -> Result<bool, MediaError> {
    if info.container != Container::Matroska {
        return Ok(false);
    }
    seek_to_start(demuxer, info)?;
    let last_cue = {
        let index = StreamIndex::of(demuxer.input(), info.index);
        index
            .search(ts, false)
            .filter(|&key| key == index.entries() - 1)
            .and_then(|key| index.get(key))
            .map(|e| e.pos)
            .filter(|&pos| pos > 0)
    };
    let Some(pos) = last_cue else {
        return Ok(false);
    };
    // SAFETY: the context is open; `pos` is a cluster the cues point at.
    let ret = unsafe {
        ffi::avformat_seek_file(
            demuxer.input_mut().as_mut_ptr(),
            -1,
            pos,
            pos,
            pos,
            ffi::AVSEEK_FLAG_BYTE,
        )
    };
    if let Some(failure) = demuxer.take_failure() {
        return Err(failure);
    }
    Ok(ret >= 0)
}

pub(super) fn seek_to_start(demuxer: &mut Demuxer, info: &StreamInfo) -> Result<(), MediaError> {
    // SAFETY: as in `seek`.
    let ret = unsafe {
        ffi::avformat_seek_file(
            demuxer.input_mut().as_mut_ptr(),
            info.index as i32,
            i64::MIN,
            info.start,
            info.start,
            ffi::AVSEEK_FLAG_BACKWARD,
        )
    };
    if let Some(failure) = demuxer.take_failure() {
        return Err(failure);
    }
    if ret < 0 {
        return seek_to_first_byte(demuxer);
    }
    Ok(())
}

pub(super) fn seek_to_first_byte(demuxer: &mut Demuxer) -> Result<(), MediaError> {
    // SAFETY: the context is open; byte 0 is always a valid position.
    let ret = unsafe {
        ffi::avformat_seek_file(
            demuxer.input_mut().as_mut_ptr(),
            -1,
            i64::MIN,
            0,
            0,
            ffi::AVSEEK_FLAG_BYTE,
        )
    };
    if let Some(failure) = demuxer.take_failure() {
        return Err(failure);
    }
    if ret < 0 {
        // Containers that cannot seek by byte (MP4) seek by time reliably,
        // so the timestamp seek already decided.
        tracing::debug!("byte seek to the start is not supported");
    }
    Ok(())
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
    while let Some(packet) = read_packet(demuxer, limits)? {
        if packet.stream() != info.index {
            continue;
        }
        // After a seek, decoding starts at a keyframe; anything before it
        // would decode to garbage.
        if sent == 0 && !packet.is_key() {
            continue;
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
        if receive(decoder, &mut best, target, last_dts, limits)? {
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
    let _ = decoder.send_eof();
    receive(decoder, &mut best, target, last_dts, limits)?;
    Ok(Decoded {
        found: best,
        skipped,
        sent,
    })
}

/// The next packet, or `None` at the end of what can be read: the end of
/// the file, or a truncated or damaged file (what was decoded so far is
/// used). A failure of the source (its byte budget, a fetch) and the
/// deadline are errors.
pub(super) fn read_packet(
    demuxer: &mut Demuxer,
    limits: &Limits,
) -> Result<Option<Packet>, MediaError> {
    loop {
        if Instant::now() >= limits.deadline {
            return Err(MediaError::Timeout);
        }
        // A new packet each time: `av_read_frame` does not release what a
        // packet it fills still holds, so reusing one leaked every packet
        // read (the media mutation fuzzer's RSS found it).
        let mut packet = Packet::empty();
        match packet.read(demuxer.input_mut()) {
            Ok(()) => return Ok(Some(packet)),
            Err(ffmpeg_next::Error::Eof) => return Ok(None),
            Err(ffmpeg_next::Error::Other { errno })
                if errno == ffmpeg_next::util::error::EAGAIN => {}
            Err(e) => {
                if let Some(failure) = demuxer.take_failure() {
                    return Err(failure);
                }
                tracing::debug!(error = %e, "demuxing stopped early");
                return Ok(None);
            }
        }
    }
}

/// Has the decoder drop frames no other frame refers to (B-frames, mostly)
/// from the next packet on.
fn set_skip_nonref(decoder: &mut ffmpeg_next::decoder::Video, skip: bool) {
    // SAFETY: a plain field of the open codec context, read per packet
    // (frame threads copy it when they take the packet).
    unsafe {
        (*decoder.as_mut_ptr()).skip_frame = if skip {
            ffi::AVDiscard::AVDISCARD_NONREF
        } else {
            ffi::AVDiscard::AVDISCARD_DEFAULT
        };
    }
}

/// Takes every frame the decoder has ready. Returns true once a frame after
/// `target` has been seen (so `best` is final).
fn receive(
    decoder: &mut ffmpeg_next::decoder::Video,
    best: &mut Option<Found>,
    target: i64,
    last_dts: Option<i64>,
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

pub(super) fn rescale(v: i64, from: Rational, to: Rational) -> i64 {
    // SAFETY: pure arithmetic.
    unsafe { ffi::av_rescale_q(v, from.into(), to.into()) }
}

pub(super) fn rescale_up(v: i64, from: Rational, to: Rational) -> i64 {
    // SAFETY: pure arithmetic.
    unsafe { ffi::av_rescale_q_rnd(v, from.into(), to.into(), ffi::AVRounding::AV_ROUND_UP) }
}

pub(super) fn rescale_down(v: i64, from: Rational, to: Rational) -> i64 {
    // SAFETY: pure arithmetic.
    unsafe { ffi::av_rescale_q_rnd(v, from.into(), to.into(), ffi::AVRounding::AV_ROUND_DOWN) }
}
