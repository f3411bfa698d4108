//! Frame number N of a video (`timeStamp=f1234`): the moment on thumbd's
//! time axis at which frame N is the one shown, so that a thumbnail asked
//! for by frame number renders `TimeSpec::At` that moment, and its cache
//! key holds the moment rather than the number (`f125` and `timeStamp=5`
//! are one entry when they are one frame).
//!
//! Frames count from 0 in presentation order, as players show them and
//! as `ffmpeg -vf select=eq(n\,N)` counts them; frames the decoder never
//! shows (MP4 samples before an edit list's start) do not count. The
//! moment is the frame's presentation time less the stream's first
//! timestamp (see [`super::exact`]), in microseconds rounded *up*: the
//! render rounds down to the stream's time base, and so lands on the
//! frame's own tick. (1001/30000 s is 33366.67 µs: 33367 µs shows the
//! frame, 33366 µs the one before.) No earlier moment shows the frame.
//!
//! The presentation times come from the cheapest place that has them:
//! - MP4/MOV: FFmpeg's index holds every sample's decoding time (edit
//!   lists applied, samples before the edit marked as never shown); the
//!   composition offsets (`ctts`), which FFmpeg keeps to itself, are read
//!   from the `moov` box fetched before FFmpeg opened the file. No media
//!   data is read.
//! - Containers whose packets carry presentation times (Matroska/WebM,
//!   MPEG-TS, FLV, fragmented MP4): packets are read from the start
//!   without decoding, up to frame N plus the reordering B-frames allow.
//! - Everywhere else (AVI, Ogg, MPEG-PS, ASF, ...) a frame's time is
//!   FFmpeg's guess while decoding (an AVI stores none; its packed
//!   B-frames come out under guessed times), so frames are decoded from
//!   the start, as many as N + 1.
//!
//! The last two read the file up to frame N, bounded by the limits as
//! every render is: frame numbers are rare, and the caller keeps the
//! answer.

#![deny(unsafe_code)]

use std::collections::BinaryHeap;

use ffmpeg_next::ffi::AV_NOPTS_VALUE;
use ffmpeg_next::format::context::Input;
use ffmpeg_next::{frame, Packet, Rational};

use super::ffi::avio::Demuxer;
use super::ffi::ffmpeg::rescale_up;
use super::ffi::index::StreamIndex;
use super::mp4::{be_u32, be_u64, child, children, read_moov};
use super::stream::{
    open_decoder, open_video, read_packet, seek_to_first_byte, seek_to_start, Container,
    StreamInfo, MAX_DECODE_ERRORS,
};
use super::{Limits, MediaError};
use crate::source::SourceRead;

/// When frame N of a video is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameTime {
    /// Microseconds from the start of the video (thumbd's time axis): the
    /// earliest moment at which `TimeSpec::At` shows the frame.
    At(u64),
    /// The video has no frame N: it has `frames` frames.
    PastEnd { frames: u64 },
}

/// When frame `n` (from 0, in presentation order) of the video in `reader`
/// is shown. Blocking; run it off the async runtime.
pub fn frame_time(
    reader: Box<dyn SourceRead>,
    n: u64,
    limits: &Limits,
) -> Result<FrameTime, MediaError> {
    let (mut demuxer, info) = open_video(reader, limits)?;
    Ok(match nth_frame(&mut demuxer, &info, n, limits)? {
        Nth::Pts(pts) => FrameTime::At(moment(pts, &info)),
        Nth::PastEnd(frames) => FrameTime::PastEnd { frames },
    })
}

/// Frame N's presentation time (stream time base), or how many frames
/// there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nth {
    Pts(i64),
    PastEnd(u64),
}

fn nth_frame(
    demuxer: &mut Demuxer,
    info: &StreamInfo,
    n: u64,
    limits: &Limits,
) -> Result<Nth, MediaError> {
    if info.container == Container::Mp4 {
        if let Some(times) = mp4_times(demuxer, info) {
            return Ok(nth_of(times, n));
        }
        tracing::debug!("the MP4 sample tables do not match FFmpeg's index; reading packets");
    }
    if info.container.packets_carry_pts() {
        if let Some(nth) = by_packets(demuxer, info, n, limits)? {
            return Ok(nth);
        }
        tracing::debug!("a video packet has no presentation time; decoding instead");
        match info.container {
            Container::StoresDts => seek_to_first_byte(demuxer)?,
            _ => seek_to_start(demuxer, info)?,
        }
    }
    by_decoding(demuxer, info, n, limits)
}

/// `pts` on thumbd's time axis: microseconds from the stream's first
/// timestamp, rounded up (see the module's doc).
fn moment(pts: i64, info: &StreamInfo) -> u64 {
    let ticks = pts.saturating_sub(info.start).max(0);
    rescale_up(ticks, info.time_base, Rational(1, 1_000_000)).max(0) as u64
}

/// The `n`th smallest of every frame's presentation time.
fn nth_of(mut times: Vec<i64>, n: u64) -> Nth {
    match usize::try_from(n) {
        Ok(i) if i < times.len() => Nth::Pts(*times.select_nth_unstable(i).1),
        _ => Nth::PastEnd(times.len() as u64),
    }
}

/// Packets read past position N in decoding order before frame N's
/// presentation time is certain: a frame comes at most as many places
/// later in decoding order than in presentation order as the codec
/// reorders frames, and no codec thumbd decodes reorders more than 16
/// (H.264's and HEVC's largest picture buffer; MPEG-2 and MPEG-4 part 2
/// reorder 1, VP8/9 and AV1 none).
const REORDER_MARGIN: u64 = 16;

/// Frame N from the packets' own presentation times, read from the start
/// without decoding: the N+1 smallest times of the packets from the first
/// keyframe on (what comes before it cannot be decoded), once no later
/// packet can be shown earlier. That is certain `REORDER_MARGIN` packets
/// past N, or as soon as a packet is decoded after the Nth time where the
/// container stores decoding times (every later packet is shown at or
/// after its decoding time). `None` if a packet has no presentation time.
fn by_packets(
    demuxer: &mut Demuxer,
    info: &StreamInfo,
    n: u64,
    limits: &Limits,
) -> Result<Option<Nth>, MediaError> {
    // The N+1 smallest times so far, the largest of them on top.
    let mut smallest = BinaryHeap::new();
    let (mut started, mut read) = (false, 0u64);
    while let Some(packet) = read_packet(demuxer, limits)? {
        if packet.stream() != info.index {
            continue;
        }
        started |= packet.is_key();
        if !started || never_shown(demuxer.input(), info, &packet) {
            continue;
        }
        let Some(pts) = packet.pts() else {
            return Ok(None);
        };
        read += 1;
        if (smallest.len() as u64) <= n {
            smallest.push(pts);
        } else if smallest.peek().is_some_and(|&top| pts < top) {
            smallest.pop();
            smallest.push(pts);
        }
        if smallest.len() as u64 == n + 1 {
            let nth = *smallest.peek().expect("n + 1 times");
            let rest_later =
                info.container.stores_dts() && packet.dts().is_some_and(|dts| dts > nth);
            if rest_later || read > n + REORDER_MARGIN {
                return Ok(Some(Nth::Pts(nth)));
            }
        }
    }
    if let Some(failure) = demuxer.take_failure() {
        return Err(failure);
    }
    Ok(Some(match smallest.peek() {
        Some(&nth) if smallest.len() as u64 == n + 1 => Nth::Pts(nth),
        _ => Nth::PastEnd(smallest.len() as u64),
    }))
}

/// MP4 (where its tables could not be used): whether FFmpeg's index
/// marks the packet as decoded but never shown (before an edit list's
/// start). Its decoding time finds its entry.
fn never_shown(input: &Input, info: &StreamInfo, packet: &Packet) -> bool {
    if info.container != Container::Mp4 {
        return false;
    }
    let index = StreamIndex::of(input, info.index);
    packet
        .dts()
        .and_then(|dts| index.get(index.search(dts, true)?))
        .is_some_and(|e| e.discard && e.pos == packet.position() as i64)
}

/// Frame N decoded from the start: the N+1th frame out of the decoder,
/// with the time [`super::exact`] gives a decoded frame (FFmpeg's best
/// effort; for a frame with none, just after the frame before it and
/// every packet sent).
fn by_decoding(
    demuxer: &mut Demuxer,
    info: &StreamInfo,
    n: u64,
    limits: &Limits,
) -> Result<Nth, MediaError> {
    let mut decoder = open_decoder(demuxer.input(), info, limits)?;
    let mut count = Count {
        n,
        shown: 0,
        last: None,
        last_dts: None,
        max_pixels: limits.max_frame_pixels,
    };
    let (mut sent, mut errors) = (0usize, 0usize);
    while let Some(packet) = read_packet(demuxer, limits)? {
        if packet.stream() != info.index || (sent == 0 && !packet.is_key()) {
            continue;
        }
        if decoder.send_packet(&packet).is_err() {
            errors += 1;
            if errors > MAX_DECODE_ERRORS {
                break;
            }
            continue;
        }
        sent += 1;
        count.last_dts = count.last_dts.max(packet.dts());
        if let Some(pts) = count.receive(&mut decoder)? {
            return Ok(Nth::Pts(pts));
        }
    }
    if let Some(failure) = demuxer.take_failure() {
        return Err(failure);
    }
    let _ = decoder.send_eof();
    Ok(match count.receive(&mut decoder)? {
        Some(pts) => Nth::Pts(pts),
        None => Nth::PastEnd(count.shown),
    })
}

/// Frames counted out of the decoder.
struct Count {
    n: u64,
    /// Frames out so far.
    shown: u64,
    /// The time of the last of them.
    last: Option<i64>,
    /// The latest decoding time of a packet sent.
    last_dts: Option<i64>,
    max_pixels: u64,
}

impl Count {
    /// Takes every frame the decoder has ready; frame N's time once it
    /// has come out.
    fn receive(
        &mut self,
        decoder: &mut ffmpeg_next::decoder::Video,
    ) -> Result<Option<i64>, MediaError> {
        let mut frame = frame::Video::empty();
        while decoder.receive_frame(&mut frame).is_ok() {
            if frame.width() as u64 * frame.height() as u64 > self.max_pixels {
                return Err(MediaError::FrameTooLarge {
                    width: frame.width(),
                    height: frame.height(),
                    limit: self.max_pixels,
                });
            }
            let pts = frame.timestamp().or(frame.pts()).unwrap_or_else(|| {
                self.last
                    .map(|t| t.saturating_add(1))
                    .max(self.last_dts.map(|d| d.saturating_add(1)))
                    .unwrap_or(i64::MIN)
            });
            if self.shown == self.n {
                return Ok(Some(pts));
            }
            self.shown += 1;
            self.last = Some(pts);
        }
        Ok(None)
    }
}

/// MP4/MOV: every shown sample's presentation time, from FFmpeg's index
/// (decoding times, edit lists applied) and the `moov`'s composition
/// offsets, matched to the index by file position. Computed as FFmpeg's
/// demuxer stamps packets: decoding time + `dts_shift` + offset. `None`
/// where the tables and the index disagree (a fragmented file, whose
/// samples are in its fragments; a damaged table; an FFmpeg computing
/// otherwise, which the stream's start time would show: it is FFmpeg's
/// time of the first sample, or of the first frame shown where an edit
/// list applies): the caller reads packets instead.
fn mp4_times(demuxer: &mut Demuxer, info: &StreamInfo) -> Option<Vec<i64>> {
    let stream = demuxer.input().stream(info.index)?;
    let (track_id, start) = (u32::try_from(stream.id()).ok()?, stream.start_time());
    if start == AV_NOPTS_VALUE || StreamIndex::of(demuxer.input(), info.index).entries() == 0 {
        return None;
    }
    let moov = demuxer.with_reader(read_moov).ok().flatten()?;
    let table = SampleTable::of_track(&moov, track_id)?;
    drop(moov);
    let index = StreamIndex::of(demuxer.input(), info.index);
    let mut times = Vec::with_capacity(index.entries() as usize);
    let mut next = 0usize;
    let mut first = None;
    for i in 0..index.entries() {
        let entry = index.get(i)?;
        let sample = table.sample_at(entry.pos, next)?;
        next = sample + 1;
        let pts = match &table.offsets {
            Some(offsets) => entry
                .timestamp
                .checked_add(table.dts_shift + i64::from(offsets[sample]))?,
            None => entry.timestamp,
        };
        first.get_or_insert(pts);
        if !entry.discard {
            times.push(pts);
        }
    }
    // FFmpeg starts the stream at its first sample's time, or, where an
    // edit list applies, at its first frame shown (its timestamps moved
    // to put it there, after any empty edit).
    if first != Some(start) && times.iter().min() != Some(&start) {
        tracing::debug!(?first, start, "the samples are not where FFmpeg starts");
        return None;
    }
    Some(times)
}

/// Samples of a track at most (18 hours at 60 fps); beyond, packets are
/// read instead of holding another copy of the index.
const MAX_SAMPLES: usize = 4_000_000;

/// What a track's sample table says of each sample, in decoding order.
struct SampleTable {
    /// File position (matches FFmpeg's index entries).
    positions: Vec<i64>,
    /// Composition offsets (`ctts`), if the track has them (as FFmpeg
    /// reads them: signed whatever the box's version).
    offsets: Option<Vec<i32>>,
    /// FFmpeg's `dts_shift`: the largest negative offset, added to every
    /// presentation time so none comes before its decoding time.
    dts_shift: i64,
}

impl SampleTable {
    /// The table of the track `track_id` in a `moov` body; `None` where
    /// anything is out of the ordinary.
    fn of_track(moov: &[u8], track_id: u32) -> Option<SampleTable> {
        let trak = children(moov)
            .filter(|(kind, _)| kind == b"trak")
            .map(|(_, trak)| trak)
            .find(|trak| {
                child(trak, b"tkhd").and_then(|tkhd| {
                    let at = if *tkhd.first()? == 1 { 20 } else { 12 };
                    be_u32(tkhd, at)
                }) == Some(track_id)
            })?;
        let stbl = child(child(child(trak, b"mdia")?, b"minf")?, b"stbl")?;
        let sizes = sample_sizes(stbl)?;
        let positions = sample_positions(stbl, &sizes)?;
        let (offsets, dts_shift) = match child(stbl, b"ctts") {
            Some(ctts) => composition_offsets(ctts, sizes.len())?,
            None => (None, 0),
        };
        Some(SampleTable {
            positions,
            offsets,
            dts_shift,
        })
    }

    /// The sample at file position `pos`, expected to be sample `next`:
    /// samples follow one another in FFmpeg's index but where an edit
    /// list starts, repeats or skips some. There, the samples are looked
    /// for in file order (each has its own position: none is empty), as
    /// muxers lay them out; where they are not, `None`.
    fn sample_at(&self, pos: i64, next: usize) -> Option<usize> {
        if self.positions.get(next) == Some(&pos) {
            return Some(next);
        }
        self.positions.binary_search(&pos).ok()
    }
}

/// Each sample's size (`stsz`, or the compact `stz2`).
fn sample_sizes(stbl: &[u8]) -> Option<Vec<u32>> {
    if let Some(stsz) = child(stbl, b"stsz") {
        let (size, count) = (be_u32(stsz, 4)?, be_u32(stsz, 8)? as usize);
        if count > MAX_SAMPLES {
            return None;
        }
        if size != 0 {
            return Some(vec![size; count]);
        }
        return (0..count).map(|i| be_u32(stsz, 12 + 4 * i)).collect();
    }
    let stz2 = child(stbl, b"stz2")?;
    let (bits, count) = (*stz2.get(7)?, be_u32(stz2, 8)? as usize);
    if count > MAX_SAMPLES {
        return None;
    }
    (0..count)
        .map(|i| match bits {
            4 => stz2
                .get(12 + i / 2)
                .map(|b| u32::from(if i % 2 == 0 { b >> 4 } else { b & 0xf })),
            8 => stz2.get(12 + i).map(|&b| u32::from(b)),
            16 => stz2
                .get(12 + 2 * i..14 + 2 * i)
                .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]]))),
            _ => None,
        })
        .collect()
}

/// Each sample's file position: chunks (`stco`/`co64`) hold runs of
/// samples (`stsc`) laid end to end. `None` if a sample is empty (it
/// would share its position with the next).
fn sample_positions(stbl: &[u8], sizes: &[u32]) -> Option<Vec<i64>> {
    let chunks: Vec<u64> = if let Some(stco) = child(stbl, b"stco") {
        (0..be_u32(stco, 4)? as usize)
            .map(|i| be_u32(stco, 8 + 4 * i).map(u64::from))
            .collect::<Option<_>>()?
    } else {
        let co64 = child(stbl, b"co64")?;
        (0..be_u32(co64, 4)? as usize)
            .map(|i| be_u64(co64, 8 + 8 * i))
            .collect::<Option<_>>()?
    };
    let stsc = child(stbl, b"stsc")?;
    let runs: Vec<(u32, u32)> = (0..be_u32(stsc, 4)? as usize)
        .map(|i| Some((be_u32(stsc, 8 + 12 * i)?, be_u32(stsc, 12 + 12 * i)?)))
        .collect::<Option<_>>()?;
    let mut positions = Vec::with_capacity(sizes.len());
    for (r, &(first, per_chunk)) in runs.iter().enumerate() {
        let end = runs
            .get(r + 1)
            .map_or(chunks.len() as u64 + 1, |n| n.0 as u64);
        if first == 0 || end <= first as u64 {
            return None;
        }
        for chunk in first as u64..end {
            let mut pos = *chunks.get(chunk as usize - 1)?;
            for _ in 0..per_chunk {
                let size = *sizes.get(positions.len()).filter(|&&s| s > 0)?;
                positions.push(i64::try_from(pos).ok()?);
                pos = pos.checked_add(u64::from(size))?;
            }
        }
    }
    (positions.len() == sizes.len()).then_some(positions)
}

/// Each sample's composition offset and FFmpeg's `dts_shift`, read as
/// FFmpeg 5 to 7 read `ctts`: entries counting no sample are skipped; an
/// offset beyond 2^28 ticks (but in the last two entries) makes the whole
/// table ignored (presentation = decoding time); the shift is the largest
/// negative offset but in the last two entries.
fn composition_offsets(ctts: &[u8], samples: usize) -> Option<(Option<Vec<i32>>, i64)> {
    let entries = be_u32(ctts, 4)? as usize;
    let mut offsets = Vec::with_capacity(samples);
    let mut shift = 0i64;
    for i in 0..entries {
        let count = be_u32(ctts, 8 + 8 * i)? as i32;
        let offset = be_u32(ctts, 12 + 8 * i)? as i32;
        if count <= 0 {
            continue;
        }
        if offset.unsigned_abs() > 1 << 28 && i + 2 < entries {
            return Some((None, 0));
        }
        if i + 2 < entries && offset < 0 {
            shift = shift.max(-i64::from(offset.max(-i32::MAX)));
        }
        if offsets.len() + count as usize > samples {
            return None;
        }
        offsets.extend(std::iter::repeat_n(offset, count as usize));
    }
    (offsets.len() == samples).then_some((Some(offsets), shift))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::media::decode::decode_frame;
    use crate::media::TimeSpec;

    fn limits() -> Limits {
        Limits {
            max_frame_pixels: 40_000_000,
            max_source_bytes: 1 << 30,
            deadline: Instant::now() + Duration::from_secs(120),
            decoder_threads: 1,
            best_frame_scan_frames: crate::domain::DEFAULT_SCAN_FRAMES,
        }
    }

    fn open(path: &Path) -> Box<dyn SourceRead> {
        Box::new(std::fs::File::open(path).expect("open the fixture"))
    }

    /// Three seconds of a test pattern that changes every frame (so a
    /// frame's picture says which frame it is), 96x64, encoded by the
    /// ffmpeg CLI with `args` into `dir/name`.
    fn make(dir: &Path, name: &str, rate: &str, args: &[&str]) -> PathBuf {
        let path = dir.join(name);
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=s=96x64:r={rate}:d=3"))
            .args(args)
            .arg(&path)
            .output()
            .expect("run the ffmpeg CLI");
        assert!(
            out.status.success(),
            "ffmpeg could not make {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    }

    /// What FFmpeg itself shows: every frame in presentation order, as
    /// ffprobe lists them and the ffmpeg CLI decodes them.
    struct Shown {
        width: usize,
        height: usize,
        /// Each frame's luma, as the ffmpeg CLI decodes it.
        lumas: Vec<Vec<u8>>,
        /// Each frame's best-effort time and picture type, from ffprobe.
        times: Vec<Option<i64>>,
        types: Vec<String>,
        /// The stream's first timestamp and time base, from ffprobe.
        start: i64,
        time_base: (i64, i64),
    }

    fn ffprobe(path: &Path, entries: &str) -> serde_json::Value {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-of", "json"])
            .args(entries.split(' '))
            .arg(path)
            .output()
            .expect("run ffprobe");
        assert!(out.status.success(), "ffprobe failed on {path:?}");
        serde_json::from_slice(&out.stdout).expect("ffprobe's JSON")
    }

    fn shown(path: &Path) -> Shown {
        let stream = &ffprobe(
            path,
            "-show_entries stream=width,height,start_pts,time_base",
        )["streams"][0];
        let (width, height) = (
            stream["width"].as_u64().unwrap() as usize,
            stream["height"].as_u64().unwrap() as usize,
        );
        let (num, den) = stream["time_base"]
            .as_str()
            .unwrap()
            .split_once('/')
            .unwrap();
        let frames = ffprobe(
            path,
            "-show_frames -show_entries frame=best_effort_timestamp,pict_type",
        );
        let frames = frames["frames"].as_array().unwrap();
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(path)
            .args(["-map", "0:v:0", "-fps_mode", "passthrough"])
            .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
            .output()
            .expect("run the ffmpeg CLI");
        assert!(out.status.success(), "ffmpeg could not decode {path:?}");
        let lumas: Vec<Vec<u8>> = out
            .stdout
            .chunks(width * height * 3 / 2)
            .map(|f| f[..width * height].to_vec())
            .collect();
        // The oracle agrees with itself: ffprobe's frames are the CLI's.
        assert_eq!(lumas.len(), frames.len(), "ffprobe and ffmpeg on {path:?}");
        // Every frame is told apart from the others by its picture.
        for (i, l) in lumas.iter().enumerate() {
            assert_eq!(lumas.iter().filter(|m| *m == l).count(), 1, "frame {i}");
        }
        Shown {
            width,
            height,
            lumas,
            times: frames
                .iter()
                .map(|f| f["best_effort_timestamp"].as_i64())
                .collect(),
            types: frames
                .iter()
                .map(|f| f["pict_type"].as_str().unwrap_or("?").to_string())
                .collect(),
            start: stream["start_pts"].as_i64().unwrap_or(0),
            time_base: (num.parse().unwrap(), den.parse().unwrap()),
        }
    }

    impl Shown {
        /// Which frame a render showed.
        fn which(&self, path: &Path, us: u64) -> usize {
            let decoded = decode_frame(open(path), TimeSpec::At(us), &limits())
                .unwrap_or_else(|e| panic!("render at {us} us: {e}"));
            let f = &decoded.frame;
            assert_eq!(
                (f.width() as usize, f.height() as usize),
                (self.width, self.height)
            );
            let stride = f.stride(0);
            let luma: Vec<u8> = (0..self.height)
                .flat_map(|y| &f.data(0)[y * stride..y * stride + self.width])
                .copied()
                .collect();
            let found: Vec<usize> = (0..self.lumas.len())
                .filter(|&i| self.lumas[i] == luma)
                .collect();
            assert_eq!(
                found.len(),
                1,
                "the render at {us} us is no frame of ffmpeg's"
            );
            found[0]
        }

        /// Frame `n`'s time on thumbd's axis from ffprobe's numbers, in
        /// microseconds rounded up.
        fn expected_us(&self, n: usize) -> Option<u64> {
            let ticks = (self.times[n]? - self.start).max(0) as i128;
            let (num, den) = (self.time_base.0 as i128, self.time_base.1 as i128);
            Some(((ticks * num * 1_000_000 + den - 1) / den) as u64)
        }

        /// Frames to ask for: the first two, the first B-frame, one in the
        /// middle of a group of pictures, the last.
        fn picks(&self) -> Vec<usize> {
            let last = self.lumas.len() - 1;
            let b = self.types.iter().position(|t| t == "B");
            let mid = (self.lumas.len() / 2..last).find(|&i| self.types[i] != "I");
            let mut picks: Vec<usize> = [Some(0), Some(1), b, mid, Some(last)]
                .into_iter()
                .flatten()
                .collect();
            picks.dedup();
            picks
        }
    }

    /// Each picked frame number gives a moment at which thumbd's render
    /// shows ffmpeg's frame of that number (and, a microsecond earlier,
    /// the frame before: the moment is the earliest); past the last frame
    /// the count of frames. `exact_times`: the moment is also checked
    /// against ffprobe's time of the frame, where ffprobe's start is
    /// thumbd's.
    fn agrees_with_ffmpeg(path: &Path, exact_times: bool) -> Shown {
        let shown = shown(path);
        let frames = shown.lumas.len() as u64;
        for n in shown.picks() {
            let time = frame_time(open(path), n as u64, &limits()).unwrap();
            let FrameTime::At(us) = time else {
                panic!("frame {n} of {frames}: {time:?}");
            };
            if let Some(expected) = shown.expected_us(n).filter(|_| exact_times) {
                assert_eq!(us, expected, "frame {n}'s time");
            }
            assert_eq!(
                shown.which(path, us),
                n,
                "the render at frame {n}'s {us} us"
            );
            if n > 0 && us > 0 {
                assert_eq!(shown.which(path, us - 1), n - 1, "just before frame {n}");
            }
        }
        for n in [frames, frames + 1, frames + 1000] {
            assert_eq!(
                frame_time(open(path), n, &limits()).unwrap(),
                FrameTime::PastEnd { frames },
                "frame {n}"
            );
        }
        shown
    }

    /// MP4: the index's times are the packets' own, frame by frame.
    fn index_agrees_with_packets(path: &Path) {
        let (mut demuxer, info) = open_video(open(path), &limits()).unwrap();
        let times = mp4_times(&mut demuxer, &info).expect("the index is read");
        for n in 0..=times.len() as u64 {
            let (mut demuxer, info) = open_video(open(path), &limits()).unwrap();
            let by_index = nth_of(times.clone(), n);
            let read = by_packets(&mut demuxer, &info, n, &limits()).unwrap();
            assert_eq!(Some(by_index), read, "frame {n}");
        }
    }

    const X264: &[&str] = &["-c:v", "libx264", "-preset", "veryfast", "-g", "30"];

    #[test]
    fn h264_mp4_with_b_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = make(
            dir.path(),
            "b.mp4",
            "25",
            &[X264, &["-pix_fmt", "yuv420p"]].concat(),
        );
        let shown = agrees_with_ffmpeg(&path, true);
        assert!(shown.types.iter().any(|t| t == "B"), "{:?}", shown.types);
        index_agrees_with_packets(&path);
    }

    /// 29.97 fps in a 1/30000 time base: 1001 ticks a frame, 33366.67 us.
    /// Frame 1 is at 33367 us: at 33366 us, the render still shows frame 0.
    #[test]
    fn ntsc_times_round_up_to_the_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = make(
            dir.path(),
            "ntsc.mp4",
            "30000/1001",
            &[X264, &["-pix_fmt", "yuv420p"]].concat(),
        );
        let shown = agrees_with_ffmpeg(&path, true);
        assert_eq!(shown.time_base, (1, 30000));
        assert_eq!(shown.times[1], Some(1001));
        assert_eq!(
            frame_time(open(&path), 1, &limits()).unwrap(),
            FrameTime::At(33_367)
        );
        assert_eq!(
            frame_time(open(&path), 3, &limits()).unwrap(),
            FrameTime::At(100_100)
        );
        assert_eq!(shown.which(&path, 33_366), 0);
    }

    /// Frames at irregular intervals (gaps of one to four frame times).
    #[test]
    fn variable_frame_rate_mp4() {
        let dir = tempfile::tempdir().unwrap();
        let path = make(
            dir.path(),
            "vfr.mp4",
            "25",
            &[
                &["-vf", "setpts='(N+floor(N/4)*3+floor(N*N/50))/25/TB'"][..],
                &["-fps_mode", "passthrough", "-video_track_timescale", "1000"],
                X264,
                &["-pix_fmt", "yuv420p"],
            ]
            .concat(),
        );
        let shown = agrees_with_ffmpeg(&path, true);
        let gaps: Vec<i64> = shown
            .times
            .windows(2)
            .map(|w| w[1].unwrap() - w[0].unwrap())
            .collect();
        assert!(gaps.iter().any(|&g| g != gaps[0]), "not VFR: {gaps:?}");
        index_agrees_with_packets(&path);
    }

    #[test]
    fn hevc_mp4_with_b_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = make(
            dir.path(),
            "hevc.mp4",
            "25",
            &[
                "-c:v",
                "libx265",
                "-x265-params",
                "log-level=error:keyint=30",
                "-pix_fmt",
                "yuv420p",
                "-tag:v",
                "hvc1",
            ],
        );
        let shown = agrees_with_ffmpeg(&path, true);
        assert!(shown.types.iter().any(|t| t == "B"), "{:?}", shown.types);
        index_agrees_with_packets(&path);
    }

    /// Edit lists: a stream copy cut between keyframes starts its edit
    /// after the keyframe, whose group's first frames are decoded but not
    /// shown nor counted; a copy delayed by half a second starts with an
    /// empty edit (the stream starts at 0.5 s: its frame 0 at 0); negative
    /// composition offsets (`ctts` version 1) are shifted by FFmpeg's
    /// `dts_shift`.
    #[test]
    fn mp4_edit_lists() {
        let dir = tempfile::tempdir().unwrap();
        let whole = make(
            dir.path(),
            "whole.mp4",
            "25",
            &[X264, &["-pix_fmt", "yuv420p"]].concat(),
        );
        let copy = |name: &str, input: &[&str], output: &[&str]| {
            let path = dir.path().join(name);
            let status = Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error"])
                .args(input)
                .arg("-i")
                .arg(&whole)
                .args(["-c", "copy"])
                .args(output)
                .arg(&path)
                .status()
                .unwrap();
            assert!(status.success());
            let (mut demuxer, info) = open_video(open(&path), &limits()).unwrap();
            let times = mp4_times(&mut demuxer, &info).expect("the index is read");
            let index = StreamIndex::of(demuxer.input(), info.index);
            (path, times.len(), index.entries() as usize, info.start)
        };
        let (cut, counted, samples, _) = copy("cut.mp4", &["-ss", "0.5"], &[]);
        assert!(counted < samples, "no sample before the edit");
        let shown = agrees_with_ffmpeg(&cut, true);
        assert_eq!(shown.lumas.len(), counted);

        let (delayed, _, _, start) = copy("delayed.mp4", &["-itsoffset", "0.5"], &[]);
        assert_eq!(start, 6400, "1/12800 time base");
        let shown = agrees_with_ffmpeg(&delayed, true);
        assert_eq!(shown.times[0], Some(6400));
        assert_eq!(
            frame_time(open(&delayed), 0, &limits()).unwrap(),
            FrameTime::At(0)
        );

        index_agrees_with_packets(&cut);

        let flags = ["-movflags", "negative_cts_offsets"];
        let (negative, _, _, _) = copy("negative.mp4", &[], &flags);
        agrees_with_ffmpeg(&negative, true);
        index_agrees_with_packets(&negative);
    }

    /// An edit list starting in the second group of pictures (at 1.5 s;
    /// its keyframe is at 1.2 s): FFmpeg's index leaves out the first
    /// group, so its entries are matched to samples from the 31st on.
    #[test]
    fn mp4_edit_list_after_the_first_group() {
        let dir = tempfile::tempdir().unwrap();
        let whole = make(
            dir.path(),
            "whole.mp4",
            "25",
            &[X264, &["-pix_fmt", "yuv420p"]].concat(),
        );
        let mut bytes = std::fs::read(&whole).unwrap();
        let elst = bytes.windows(4).position(|w| w == b"elst").unwrap() + 4;
        assert_eq!(
            &bytes[elst..elst + 8],
            &[0, 0, 0, 0, 0, 0, 0, 1],
            "one v0 entry"
        );
        let entry = elst + 8;
        let media_time = i32::from_be_bytes(bytes[entry + 4..entry + 8].try_into().unwrap());
        assert_eq!(media_time, 1024, "x264's two frames of delay, 1/12800");
        // 1.5 s shorter and 1.5 s later (the movie's time scale is 1/1000).
        bytes[entry..entry + 4].copy_from_slice(&1500u32.to_be_bytes());
        bytes[entry + 4..entry + 8].copy_from_slice(&(1024 + 19_200i32).to_be_bytes());
        let path = dir.path().join("late_edit.mp4");
        std::fs::write(&path, &bytes).unwrap();

        let (mut demuxer, info) = open_video(open(&path), &limits()).unwrap();
        let times = mp4_times(&mut demuxer, &info).expect("the index is read");
        let entries = StreamIndex::of(demuxer.input(), info.index).entries() as usize;
        assert_eq!(entries, 75 - 30, "indexed from the keyframe at 1.2 s");
        let shown = agrees_with_ffmpeg(&path, true);
        assert_eq!(shown.lumas.len(), times.len());
        index_agrees_with_packets(&path);
    }

    /// Fragmented MP4 (its `moov` lists no sample): packets are read.
    #[test]
    fn fragmented_mp4() {
        let dir = tempfile::tempdir().unwrap();
        let path = make(
            dir.path(),
            "frag.mp4",
            "25",
            &[
                X264,
                &["-pix_fmt", "yuv420p"],
                &["-movflags", "+frag_keyframe+empty_moov+default_base_moof"],
            ]
            .concat(),
        );
        let (mut demuxer, info) = open_video(open(&path), &limits()).unwrap();
        assert_eq!(mp4_times(&mut demuxer, &info), None);
        agrees_with_ffmpeg(&path, true);
    }

    #[test]
    fn matroska_and_webm() {
        let dir = tempfile::tempdir().unwrap();
        let mkv = make(
            dir.path(),
            "b.mkv",
            "25",
            &[X264, &["-pix_fmt", "yuv420p"]].concat(),
        );
        agrees_with_ffmpeg(&mkv, true);
        let webm = make(
            dir.path(),
            "vp9.webm",
            "25",
            &[
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-g",
                "30",
                "-pix_fmt",
                "yuv420p",
            ],
        );
        agrees_with_ffmpeg(&webm, true);
    }

    /// MPEG-TS starting at 11.4 s (a 10 s offset and the muxer's delay).
    #[test]
    fn mpeg_ts_starting_late() {
        let dir = tempfile::tempdir().unwrap();
        let path = make(
            dir.path(),
            "late.ts",
            "25",
            &[X264, &["-pix_fmt", "yuv420p", "-output_ts_offset", "10"]].concat(),
        );
        let shown = agrees_with_ffmpeg(&path, true);
        assert!(shown.start > 10 * 90_000, "starts at {}", shown.start);
    }

    /// MPEG-TS cut in the middle of a group of pictures (a recording
    /// joined late): the packets before the first keyframe cannot be
    /// decoded and are no frames, though the stream starts at the first.
    #[test]
    fn mpeg_ts_cut_mid_group() {
        let dir = tempfile::tempdir().unwrap();
        let whole = make(
            dir.path(),
            "whole.ts",
            "25",
            &[X264, &["-pix_fmt", "yuv420p"]].concat(),
        );
        let bytes = std::fs::read(&whole).unwrap();
        let path = dir.path().join("cut.ts");
        // At a TS packet's boundary, in the middle of the second group.
        let cut = bytes.len() * 45 / 100 / 188 * 188;
        std::fs::write(&path, &bytes[cut..]).unwrap();
        let shown = agrees_with_ffmpeg(&path, true);
        let frame_0 = shown.times[0].unwrap();
        assert!(frame_0 > shown.start, "{frame_0} {}", shown.start);
    }

    /// MPEG-4 part 2 with B-frames in AVI: no presentation times stored,
    /// FFmpeg guesses them while decoding.
    #[test]
    fn avi_with_b_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = make(
            dir.path(),
            "b.avi",
            "25",
            &["-c:v", "mpeg4", "-bf", "2", "-g", "30", "-q:v", "3"],
        );
        let shown = agrees_with_ffmpeg(&path, true);
        assert!(shown.types.iter().any(|t| t == "B"), "{:?}", shown.types);
    }

    /// Xvid's packed bitstream in AVI (a P-frame and a B-frame in one
    /// chunk, then a placeholder): frames come out of the decoder under
    /// times FFmpeg guesses from the chunks around them.
    #[test]
    fn xvid_packed_b_frames_in_avi() {
        let dir = tempfile::tempdir().unwrap();
        let path = make(
            dir.path(),
            "xvid.avi",
            "25",
            &[
                "-c:v", "libxvid", "-bf", "3", "-g", "30", "-q:v", "3", "-vtag", "XVID",
            ],
        );
        let shown = agrees_with_ffmpeg(&path, true);
        assert!(shown.types.iter().any(|t| t == "B"), "{:?}", shown.types);
    }

    #[test]
    fn ogg_theora() {
        let dir = tempfile::tempdir().unwrap();
        let path = make(
            dir.path(),
            "theora.ogv",
            "25",
            &["-c:v", "libtheora", "-g", "30", "-q:v", "7"],
        );
        agrees_with_ffmpeg(&path, true);
    }

    #[test]
    fn composition_offsets_as_ffmpeg_reads_them() {
        let ctts = |entries: &[(u32, i32)]| {
            let mut b = vec![0, 0, 0, 0];
            b.extend((entries.len() as u32).to_be_bytes());
            for &(count, offset) in entries {
                b.extend(count.to_be_bytes());
                b.extend(offset.to_be_bytes());
            }
            b
        };
        // Negative offsets (version 1 boxes): the largest but in the last
        // two entries is the shift.
        let b = ctts(&[(1, 0), (1, -2), (2, -1), (1, -7), (1, -9)]);
        assert_eq!(
            composition_offsets(&b, 6),
            Some((Some(vec![0, -2, -1, -1, -7, -9]), 2))
        );
        // An entry of no samples is skipped.
        let b = ctts(&[(1, 5), (0, -100), (1, 0), (1, 0)]);
        assert_eq!(composition_offsets(&b, 3), Some((Some(vec![5, 0, 0]), 0)));
        // An absurd offset: FFmpeg ignores the table.
        let b = ctts(&[(1, 1 << 29), (1, 0), (1, 0)]);
        assert_eq!(composition_offsets(&b, 3), Some((None, 0)));
        // Not one offset a sample: not used.
        assert_eq!(composition_offsets(&ctts(&[(2, 0)]), 3), None);
        assert_eq!(composition_offsets(&ctts(&[(4, 0)]), 3), None);
    }
}
