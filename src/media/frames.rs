//! Many frames of one video from one open container: keyframes decoded
//! alone (storyboard tiles, best-frame candidates), or exact frames.
//!
//! A keyframe needs no other frame to decode, so a tile at time `t` is the
//! keyframe at or before `t`: one packet each. Where the container's index
//! lists every packet with its position and size (MP4, MOV, 3GP), exactly
//! those packets are fetched up front, adjacent ones in one range request
//! and the rest several at a time; elsewhere (Matroska's cues, MPEG-TS)
//! each seek reads what it needs as a thumbnail does.

#![deny(unsafe_code)]

use std::ops::ControlFlow;

use ffmpeg_next::{frame, Packet, Rational};

use super::ffi::avio::Demuxer;
use super::ffi::ffmpeg::{self, rescale, rescale_down, rescale_up};
use super::ffi::index::StreamIndex;
use super::stream::{self, Container, DecodedFrame, Found, StreamInfo, MAX_DECODE_ERRORS};
use super::{exact, Limits, MediaError, TimeSpec};
use crate::source::SourceRead;

/// Ranges closer than this are fetched as one: a request costs more than
/// the bytes between them.
const MERGE_GAP: u64 = 4 * 1024;

/// An open video, for frames at several times.
pub struct Frames {
    demuxer: Demuxer,
    info: StreamInfo,
    limits: Limits,
}

/// Frames for a list of times: `frames` once each, and for each time the
/// index of the frame shown for it (times sharing a keyframe share it).
pub struct FrameSet {
    pub frames: Vec<DecodedFrame>,
    pub of_time: Vec<usize>,
}

impl FrameSet {
    /// Adds a decoded frame unless the same one is there; its index.
    fn add(&mut self, found: Found, info: &StreamInfo) -> usize {
        let frame = stream::finish(found, info, 1);
        match self
            .frames
            .iter()
            .position(|f| f.time_secs == frame.time_secs)
        {
            Some(i) => i,
            None => {
                self.frames.push(frame);
                self.frames.len() - 1
            }
        }
    }
}

impl Frames {
    pub fn open(reader: Box<dyn SourceRead>, limits: &Limits) -> Result<Frames, MediaError> {
        let (demuxer, info) = stream::open_video(reader, limits)?;
        Ok(Frames {
            demuxer,
            info,
            limits: limits.clone(),
        })
    }

    /// Frames per second, as the stream says (its average rate).
    pub fn frame_rate(&self) -> Option<f64> {
        let r = self
            .demuxer
            .input()
            .stream(self.info.index)?
            .avg_frame_rate();
        (r.numerator() > 0 && r.denominator() > 0).then(|| f64::from(r))
    }

    /// The video's duration in microseconds, if the container says.
    pub fn duration_us(&self) -> Option<u64> {
        self.info.duration_us.map(|d| d.max(0) as u64)
    }

    /// Keyframe times (microseconds from the start, when each is shown,
    /// rounded up so that the keyframe at or before each is itself) the
    /// index lists, in order; empty where the container has no index.
    pub fn indexed_keyframes(&mut self) -> Result<Vec<u64>, MediaError> {
        self.load_index()?;
        // MP4 lists decoding times: a keyframe is shown this much later.
        let delay = self.decode_delay();
        let index = StreamIndex::of(self.demuxer.input(), self.info.index);
        let mut times: Vec<u64> = (0..index.entries())
            .filter_map(|i| index.get(i))
            .filter(|e| e.keyframe)
            .map(|e| {
                let from_start = e.timestamp.saturating_add(delay) - self.info.start;
                rescale_up(from_start, self.info.time_base, Rational(1, 1_000_000)).max(0) as u64
            })
            .collect();
        times.sort_unstable();
        times.dedup();
        Ok(times)
    }

    /// Matroska reads its cues only when asked to seek: seeking to the
    /// start reads them and nothing else.
    fn load_index(&mut self) -> Result<(), MediaError> {
        if self.info.container == Container::Matroska {
            stream::seek_to_start(&mut self.demuxer, &self.info)?;
        }
        Ok(())
    }

    /// The exact frame shown at each time (as a thumbnail at that time).
    pub fn exact(&mut self, times_us: &[u64]) -> Result<FrameSet, MediaError> {
        let mut frames: Vec<DecodedFrame> = Vec::new();
        let mut of_time = Vec::with_capacity(times_us.len());
        for &t in times_us {
            let frame =
                exact::frame_in(&mut self.demuxer, &self.info, TimeSpec::At(t), &self.limits)?;
            // A time between the same two frames as the last one shows it.
            match frames.last() {
                Some(last) if last.time_secs == frame.time_secs => {}
                _ => frames.push(frame),
            }
            of_time.push(frames.len() - 1);
        }
        Ok(FrameSet { frames, of_time })
    }

    /// The keyframe at or before each time (`times_us` ascending), each
    /// decoded alone.
    /// With `small`, the frames are only shown much reduced (tiles): the
    /// deblocking filter is skipped, which no one sees at a tenth of the size
    /// and which is a good part of an intra frame's decoding time.
    pub fn keyframes(&mut self, times_us: &[u64], small: bool) -> Result<FrameSet, MediaError> {
        self.load_index()?;
        let targets: Vec<i64> = times_us.iter().map(|&t| self.ts_of(t)).collect();
        // The keyframe for each time, by index entry where there is an index.
        // MP4's entries list decoding times and its seek takes presentation
        // times: a keyframe is shown this much after it is decoded (the
        // B-frame delay, as the first keyframe says), so the entry searched
        // for a time and the keyframe the seek lands on are the same.
        let delay = self.decode_delay();
        // MPEG-TS has none: what its demuxer learns while seeking lists only
        // the keyframes it happened to read (a second call would trust it).
        let indexed = self.info.container != Container::StoresDts;
        let entries: Option<Vec<_>> = {
            let index = StreamIndex::of(self.demuxer.input(), self.info.index);
            targets
                .iter()
                .map(|&ts| {
                    let i = index.search(ts.saturating_sub(delay), false)?;
                    index.get(i).filter(|e| indexed && e.keyframe && e.pos >= 0)
                })
                .collect()
        };
        if let Some(entries) = entries.as_ref() {
            if self.info.container == Container::Mp4 {
                let ranges: Vec<(u64, u64)> = entries
                    .iter()
                    .filter(|e| e.size > 0)
                    .map(|e| (e.pos as u64, e.end() as u64))
                    .collect();
                self.demuxer.prefetch_many(&merge(ranges))?;
            }
        }
        let mut set = FrameSet {
            frames: Vec::new(),
            of_time: Vec::with_capacity(targets.len()),
        };
        if let Some(entries) = entries {
            // Read every keyframe's packet (prefetched), then decode them
            // on as many threads as a render alone may use.
            let mut unique: Vec<i64> = entries.iter().map(|e| e.timestamp).collect();
            unique.dedup();
            // Seeks jump: the gaps between prefetched keyframes stay unread.
            self.demuxer.seek_directly(true);
            let packets = self.keyframe_packets(&unique, delay);
            self.demuxer.seek_directly(false);
            let packets = packets?;
            let threads = match self.limits.decoder_threads {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS)),
                n => n,
            };
            let mut index_of = Vec::with_capacity(unique.len());
            for found in self.decode_all(&packets, threads, small)? {
                let i = match found {
                    Some(found) => set.add(found, &self.info),
                    // A damaged keyframe: its tiles show the one before.
                    None => *index_of
                        .last()
                        .ok_or_else(|| MediaError::NoFrame("a keyframe did not decode".into()))?,
                };
                index_of.push(i);
            }
            for e in &entries {
                let u = unique
                    .iter()
                    .position(|&t| t == e.timestamp)
                    .expect("listed");
                set.of_time.push(index_of[u]);
            }
        } else {
            let mut decoder = self.alone_decoder(small)?;
            for &target in &targets {
                let found = self.keyframe_before(&mut decoder, target)?;
                let i = set.add(found, &self.info);
                set.of_time.push(i);
            }
        }
        Ok(set)
    }

    /// The frames shown at `start_us + k / fps` for each `k` with that time
    /// before `end_us` (clamped to the video's end), from one sequential
    /// decode from the keyframe before `start_us` that drops the frames no
    /// tick shows and no other frame refers to (most B-frames between ticks
    /// when `fps` is below the video's rate); `each` takes them in
    /// order (a frame shown for several ticks is given once per tick), and
    /// may stop it early with [`ControlFlow::Break`].
    /// Returns how many were given.
    pub fn sequence(
        &mut self,
        start_us: u64,
        end_us: u64,
        fps: u32,
        mut each: impl FnMut(&DecodedFrame) -> Result<ControlFlow<()>, MediaError>,
    ) -> Result<usize, MediaError> {
        let end_us = match self.duration_us() {
            Some(d) => end_us.min(d),
            None => end_us,
        };
        let ticks =
            ((end_us.saturating_sub(start_us)) as u128 * fps as u128).div_ceil(1_000_000) as u64;
        // Tick k at exactly start + k / fps (in units of 1 / (10^6 fps) s),
        // rounded down: a tick on a frame's time shows that frame (at 15
        // fps from 10.5 s, tick 2 is 10.6333... s, frame 319 of a 30 fps
        // video, not the microsecond before it).
        let fps = fps.clamp(1, 1_000) as i64;
        let start = start_us.min(i64::MAX as u64 / 4_000) as i64 * fps;
        let unit = Rational(1, (1_000_000 * fps) as i32);
        let tick_ts = |k: u64| {
            let units = start.saturating_add((k as i64).saturating_mul(1_000_000));
            self.info.start + rescale_down(units, unit, self.info.time_base)
        };
        let ticks_ts: Vec<i64> = (0..ticks.max(1)).map(tick_ts).collect();
        self.seek_to_keyframe_before(ticks_ts[0])?;
        let (demuxer, info) = (&mut self.demuxer, &self.info);
        let mut decoder = stream::open_decoder(demuxer.input(), info, &self.limits)?;
        // Frames no tick shows and nothing refers to are not decoded
        // (`Ahead`), where packets carry their frames' own times.
        let mut ahead = Ahead::new(info.container.packets_carry_pts());
        let mut skipping = false;
        let mut demuxed_all = false;
        let mut shown: Option<DecodedFrame> = None;
        let mut k = 0usize;
        let mut sent = 0usize;
        let mut errors = 0usize;
        let mut eof = false;
        let mut frame = frame::Video::empty();
        while k < ticks_ts.len() {
            if std::time::Instant::now() >= self.limits.deadline {
                return Err(MediaError::Timeout);
            }
            if !eof {
                while !demuxed_all && ahead.wants_more() {
                    match stream::read_packet(demuxer, &self.limits)? {
                        Some(packet) if packet.stream() == info.index => ahead.push(packet),
                        Some(_) => {}
                        None => demuxed_all = true,
                    }
                }
                match ahead.next(&ticks_ts) {
                    Some((packet, skip)) => {
                        if skip != skipping {
                            ffmpeg::set_skip_nonref(&mut decoder, skip);
                            skipping = skip;
                        }
                        if decoder.send_packet(&packet).is_err() {
                            errors += 1;
                            if errors > MAX_DECODE_ERRORS {
                                eof = true;
                                let _ = decoder.send_eof();
                            }
                            continue;
                        }
                        sent += 1;
                    }
                    None => {
                        eof = true;
                        let _ = decoder.send_eof();
                    }
                }
            }
            let mut drained = true;
            while decoder.receive_frame(&mut frame).is_ok() {
                drained = false;
                let pixels = frame.width() as u64 * frame.height() as u64;
                if pixels > self.limits.max_frame_pixels {
                    return Err(MediaError::FrameTooLarge {
                        width: frame.width(),
                        height: frame.height(),
                        limit: self.limits.max_frame_pixels,
                    });
                }
                let Some(pts) = frame.timestamp().or(frame.pts()) else {
                    continue;
                };
                let taken = std::mem::replace(&mut frame, frame::Video::empty());
                let current = stream::finish(Found { frame: taken, pts }, info, sent);
                // Every tick before this frame shows the one before it (the
                // first frame, for ticks before the video starts).
                while k < ticks_ts.len() && pts > ticks_ts[k] {
                    k += 1;
                    if each(shown.as_ref().unwrap_or(&current))?.is_break() {
                        return Ok(k);
                    }
                }
                shown = Some(current);
            }
            if eof && drained {
                // The end: the last frame shows for the ticks left.
                let Some(last) = &shown else {
                    return Err(MediaError::NoFrame("no frame could be decoded".into()));
                };
                while k < ticks_ts.len() {
                    k += 1;
                    if each(last)?.is_break() {
                        return Ok(k);
                    }
                }
            }
        }
        Ok(k)
    }

    /// Seeks to the keyframe at or before `ts` as the container can.
    fn seek_to(&mut self, ts: i64) -> Result<(), MediaError> {
        if !stream::seek_past_last_cue(&mut self.demuxer, &self.info, ts)? {
            stream::seek(&mut self.demuxer, &self.info, ts)?;
        }
        Ok(())
    }

    /// Positions the demuxer at a keyframe shown at or before `ts`. A seek
    /// by bytes (MPEG-TS) can land after it, even past the last keyframe,
    /// where nothing would decode: then it seeks further back, to the
    /// first byte at the end.
    fn seek_to_keyframe_before(&mut self, ts: i64) -> Result<(), MediaError> {
        let one_second = rescale(1_000_000, Rational(1, 1_000_000), self.info.time_base);
        let mut back = 0i64;
        for _ in 0..8 {
            let at = ts.saturating_sub(back).max(self.info.start);
            self.seek_to(at)?;
            match self.next_keyframe_packet() {
                Ok(p) if p.pts().or(p.dts()).is_none_or(|t| t <= ts) => {
                    // Back to the same place for the caller to read from.
                    return self.seek_to(at);
                }
                Ok(_) | Err(MediaError::NoFrame(_)) => {}
                Err(e) => return Err(e),
            }
            if at == self.info.start {
                break;
            }
            back = (back * 2).max(one_second);
        }
        stream::seek_to_first_byte(&mut self.demuxer)
    }

    /// Without an index (MPEG-TS seeks by bytes, so a seek can land after
    /// the time or past the last keyframe): the first keyframe after a seek,
    /// seeking further back until it is at or before `target`.
    fn keyframe_before(
        &mut self,
        decoder: &mut ffmpeg_next::decoder::Video,
        target: i64,
    ) -> Result<Found, MediaError> {
        let one_second = rescale(1_000_000, Rational(1, 1_000_000), self.info.time_base);
        let mut back = 0i64;
        let mut late: Option<Found> = None;
        for _ in 0..6 {
            let ts = target.saturating_sub(back).max(self.info.start);
            match self.keyframe_near(decoder, ts) {
                Ok(found) if found.pts <= target => return Ok(found),
                Ok(found) => late = late.or(Some(found)),
                Err(MediaError::NoFrame(_)) => {}
                Err(e) => return Err(e),
            }
            if ts == self.info.start {
                // A timestamp seek cannot reach before the first keyframe
                // here: start from the first byte.
                stream::seek_to_first_byte(&mut self.demuxer)?;
                match self.first_keyframe(decoder) {
                    Ok(found) if found.pts <= target => return Ok(found),
                    Ok(found) => late = late.or(Some(found)),
                    Err(MediaError::NoFrame(_)) => {}
                    Err(e) => return Err(e),
                }
                break;
            }
            back = (back * 2).max(one_second);
        }
        late.ok_or_else(|| MediaError::NoFrame("no keyframe near the time".into()))
    }

    /// Seeks to the keyframe at or before `ts` and decodes it alone.
    fn keyframe_near(
        &mut self,
        decoder: &mut ffmpeg_next::decoder::Video,
        ts: i64,
    ) -> Result<Found, MediaError> {
        let (demuxer, info) = (&mut self.demuxer, &self.info);
        if !stream::seek_past_last_cue(demuxer, info, ts)? {
            stream::seek(demuxer, info, ts)?;
        }
        self.first_keyframe(decoder)
    }

    /// Decodes alone the first keyframe from the current position.
    fn first_keyframe(
        &mut self,
        decoder: &mut ffmpeg_next::decoder::Video,
    ) -> Result<Found, MediaError> {
        loop {
            let packet = self.next_keyframe_packet()?;
            // A damaged keyframe: try the next one.
            if let Some(found) = decode_alone(decoder, &packet, &self.limits)? {
                return Ok(found);
            }
        }
    }

    /// Reads on to the next keyframe packet of the video stream.
    /// The keyframe packet at each of `timestamps` (index entries, decoded
    /// `delay` before they are shown).
    fn keyframe_packets(
        &mut self,
        timestamps: &[i64],
        delay: i64,
    ) -> Result<Vec<Packet>, MediaError> {
        let mut packets = Vec::with_capacity(timestamps.len());
        for &ts in timestamps {
            // (At or before its target: entries were searched for `target - delay`.)
            let at = ts.saturating_add(delay);
            if !stream::seek_past_last_cue(&mut self.demuxer, &self.info, at)? {
                stream::seek(&mut self.demuxer, &self.info, at)?;
            }
            let mut packet = self.next_keyframe_packet()?;
            // A Matroska cue points at its cluster, which can hold an
            // earlier keyframe than the one it lists.
            while packet.pts().is_some_and(|p| p < at) {
                match self.next_keyframe_packet() {
                    Ok(next) if next.pts().is_some_and(|p| p <= at) => packet = next,
                    _ => break,
                }
            }
            packets.push(packet);
        }
        Ok(packets)
    }

    fn next_keyframe_packet(&mut self) -> Result<Packet, MediaError> {
        let (demuxer, info) = (&mut self.demuxer, &self.info);
        let mut skipped = 0usize;
        loop {
            let packet = stream::read_packet(demuxer, &self.limits)?
                .ok_or_else(|| MediaError::NoFrame("no keyframe after the seek".into()))?;
            if packet.stream() == info.index && packet.is_key() {
                return Ok(packet);
            }
            skipped += 1;
            if skipped > MAX_SKIPPED_PACKETS {
                return Err(MediaError::NoFrame("no keyframe near the time".into()));
            }
        }
    }

    /// Decodes keyframe packets, each alone, on up to `threads` threads
    /// (one decoder each); `None` for a packet that did not decode.
    fn decode_all(
        &self,
        packets: &[Packet],
        threads: usize,
        small: bool,
    ) -> Result<Vec<Option<Found>>, MediaError> {
        let threads = threads.clamp(1, packets.len().max(1));
        let mut decoders = Vec::with_capacity(threads);
        for _ in 0..threads {
            decoders.push(self.alone_decoder(small)?);
        }
        let limits = &self.limits;
        let mut out: Vec<Option<Found>> = (0..packets.len()).map(|_| None).collect();
        let results = std::thread::scope(|scope| {
            let handles: Vec<_> = decoders
                .into_iter()
                .enumerate()
                .map(|(t, mut decoder)| {
                    scope.spawn(move || {
                        let mut mine = Vec::new();
                        for i in (t..packets.len()).step_by(threads) {
                            mine.push((i, decode_alone(&mut decoder, &packets[i], limits)?));
                        }
                        Ok::<_, MediaError>(mine)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(MediaError::Internal("a decoder thread panicked".into()))
                    })
                })
                .collect::<Vec<_>>()
        });
        for r in results {
            for (i, found) in r? {
                out[i] = found;
            }
        }
        Ok(out)
    }

    /// A single-threaded decoder for keyframes decoded alone (frame threads
    /// would only add hand-overs); with `small`, without the deblocking
    /// filter (see [`Frames::keyframes`]).
    fn alone_decoder(&self, small: bool) -> Result<ffmpeg_next::decoder::Video, MediaError> {
        let mut decoder = stream::open_decoder(
            self.demuxer.input(),
            &self.info,
            &Limits {
                decoder_threads: 1,
                ..self.limits.clone()
            },
        )?;
        if small {
            ffmpeg::skip_loop_filter(&mut decoder);
        }
        Ok(decoder)
    }

    /// How long after its decoding time the first keyframe is shown (MP4
    /// with B-frames), in stream ticks; 0 elsewhere.
    fn decode_delay(&self) -> i64 {
        if self.info.container != Container::Mp4 {
            return 0;
        }
        let index = StreamIndex::of(self.demuxer.input(), self.info.index);
        index
            .get(0)
            .map_or(0, |first| (self.info.start - first.timestamp).max(0))
    }

    /// Microseconds from the start to a stream timestamp (rounded down).
    fn ts_of(&self, us: u64) -> i64 {
        let us = us.min(i64::MAX as u64 / 2) as i64;
        self.info.start + rescale_down(us, Rational(1, 1_000_000), self.info.time_base)
    }
}

/// Packets read ahead of the decoder in [`Frames::sequence`], to tell which
/// frames no tick shows: a frame at `p` is shown until the next frame's time
/// `q`, which for a B-frame is among the packets sent just before it (its
/// forward reference) or just after it. 16 either side covers any
/// reordering H.264 and HEVC allow (at most 16 frames held).
const LOOK_AHEAD: usize = 16;

/// The packets read ahead of the decoder, from the first keyframe on.
struct Ahead {
    packets: std::collections::VecDeque<Packet>,
    /// Times of the last [`LOOK_AHEAD`] packets sent.
    sent: std::collections::VecDeque<i64>,
    /// Whether frames no tick shows may be dropped: where packets carry
    /// their frames' own times. Otherwise one packet is read at a time.
    drop_unshown: bool,
    /// A keyframe has come: decoding starts there.
    started: bool,
}

impl Ahead {
    fn new(drop_unshown: bool) -> Ahead {
        Ahead {
            packets: Default::default(),
            sent: Default::default(),
            drop_unshown,
            started: false,
        }
    }

    fn wants_more(&self) -> bool {
        self.packets.len() < if self.drop_unshown { LOOK_AHEAD } else { 1 }
    }

    /// Keeps `packet`, once decoding has started (at a keyframe).
    fn push(&mut self, packet: Packet) {
        self.started |= packet.is_key();
        if self.started {
            self.packets.push_back(packet);
        }
    }

    /// The next packet to send, and whether its frame may be dropped if
    /// nothing refers to it.
    fn next(&mut self, ticks: &[i64]) -> Option<(Packet, bool)> {
        let packet = self.packets.pop_front()?;
        let pts = packet.pts().filter(|_| self.drop_unshown);
        let Some(pts) = pts else {
            return Some((packet, false));
        };
        let later = self
            .sent
            .iter()
            .copied()
            .chain(self.packets.iter().filter_map(|p| p.pts()));
        let skip = unshown(pts, later.filter(|&t| t > pts).min(), ticks);
        if self.sent.len() == LOOK_AHEAD {
            self.sent.pop_front();
        }
        self.sent.push_back(pts);
        Some((packet, skip))
    }
}

/// Whether a frame at `pts`, the next at `next` (when known), is shown at
/// none of `ticks` (ascending): no tick falls in `[pts, next)`.
fn unshown(pts: i64, next: Option<i64>, ticks: &[i64]) -> bool {
    let Some(next) = next else {
        return false;
    };
    let first = ticks.partition_point(|&t| t < pts);
    ticks.get(first).is_none_or(|&t| t >= next)
}

/// Decodes one keyframe packet alone and resets the decoder; `None` if it
/// did not decode (damaged).
fn decode_alone(
    decoder: &mut ffmpeg_next::decoder::Video,
    packet: &Packet,
    limits: &Limits,
) -> Result<Option<Found>, MediaError> {
    if std::time::Instant::now() >= limits.deadline {
        return Err(MediaError::Timeout);
    }
    let pts = packet.pts().or(packet.dts()).unwrap_or(i64::MIN);
    decoder.flush();
    if decoder.send_packet(packet).is_err() {
        return Ok(None);
    }
    let _ = decoder.send_eof();
    let mut frame = frame::Video::empty();
    let got = decoder.receive_frame(&mut frame).is_ok();
    decoder.flush();
    if !got {
        return Ok(None);
    }
    let pixels = frame.width() as u64 * frame.height() as u64;
    if pixels > limits.max_frame_pixels {
        return Err(MediaError::FrameTooLarge {
            width: frame.width(),
            height: frame.height(),
            limit: limits.max_frame_pixels,
        });
    }
    let pts = frame.timestamp().or(frame.pts()).unwrap_or(pts);
    Ok(Some(Found { frame, pts }))
}

/// Most threads one render decodes keyframes on.
const MAX_THREADS: usize = 4;

/// Packets read after a seek before giving up on finding a keyframe (a
/// long GOP at 60 fps with audio is a few thousand).
const MAX_SKIPPED_PACKETS: usize = 20_000;

/// Sorts byte ranges and joins those that touch or nearly do.
fn merge(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if start <= last.1.saturating_add(MERGE_GAP) => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{merge, unshown};

    #[test]
    fn a_frame_is_unshown_when_no_tick_falls_before_the_next() {
        // 30 fps in 1/30 s units, ticks at 15 fps from frame 10.
        let ticks = [10, 12, 14, 16];
        // Before the first tick, and its frame shown until the next.
        assert!(unshown(8, Some(9), &ticks));
        assert!(!unshown(9, Some(10), &[9, 11]));
        assert!(!unshown(10, Some(11), &ticks));
        // Between ticks.
        assert!(unshown(11, Some(12), &ticks));
        assert!(unshown(13, Some(14), &ticks));
        // A frame shown for several ticks, or for one it starts before.
        assert!(!unshown(11, Some(15), &ticks));
        assert!(!unshown(15, Some(17), &ticks));
        // After the last tick.
        assert!(unshown(17, Some(18), &ticks));
        // The next frame's time unknown: kept.
        assert!(!unshown(11, None, &ticks));
        assert!(!unshown(17, None, &ticks));
    }

    #[test]
    fn ranges_merge_when_they_touch_or_nearly_do() {
        assert_eq!(
            merge(vec![(100, 200), (0, 50), (200, 300), (9000, 9100)]),
            [(0, 300), (9000, 9100)]
        );
        assert_eq!(merge(vec![(0, 10), (5000, 6000)]), [(0, 10), (5000, 6000)]);
        assert_eq!(merge(vec![(0, 100), (10, 20)]), [(0, 100)]);
        assert!(merge(vec![]).is_empty());
    }
}
