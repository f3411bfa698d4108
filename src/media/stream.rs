//! An open video stream and the FFmpeg stepping every decode shares: open
//! the container and pick its video stream (where it starts, how long it
//! is, how it is shown), seek, read packets, open a decoder, and turn a
//! decoded frame into a [`DecodedFrame`]. Which frame to decode is decided
//! above: [`super::exact`] for a time, [`super::frames`] for many.

#![deny(unsafe_code)]

use std::time::Instant;

use ffmpeg_next::ffi::AV_NOPTS_VALUE;
use ffmpeg_next::format::context::Input;
use ffmpeg_next::media::Type;
use ffmpeg_next::{codec, frame, Packet, Rational};

use super::ffi::avio::Demuxer;
use super::ffi::ffmpeg::{self, rescale, SEEK_BACKWARD, SEEK_BYTE};
use super::ffi::index::StreamIndex;
use super::ffi::swscale;
use super::geometry::{Orientation, Shape};
use super::tonemap::Transfer;
use super::{Limits, MediaError};
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
    /// Whether the frame carries transparency (an alpha channel in its
    /// pixel format: WebM with alpha through libvpx, ProRes 4444, PNG and
    /// QuickTime Animation in MOV). Thumbnails keep it
    /// ([`super::alpha`]); every other use of the frame ignores it.
    pub fn has_alpha(&self) -> bool {
        swscale::has_alpha(self.frame.format())
    }

    /// What the frame is counted as in a cache of decoded frames, in
    /// bytes: two a pixel (planes of up to 16 bits at 4:2:0), or, for a
    /// frame with alpha, its planes' real size where that is more (an
    /// alpha plane, 4:4:4 at 12 bits), so that frames with alpha are not
    /// undercounted.
    pub fn cached_bytes(&self) -> u64 {
        let pixels = u64::from(self.frame.width()) * u64::from(self.frame.height());
        if !self.has_alpha() {
            return pixels * 2;
        }
        let planes: u64 = (0..self.frame.planes())
            .map(|i| self.frame.data(i).len() as u64)
            .sum();
        planes.max(pixels * 2)
    }

    pub fn shape(&self) -> Shape {
        Shape {
            width: self.frame.width(),
            height: self.frame.height(),
            sar: self.sar,
            orientation: self.orientation,
        }
    }
}

/// For tests: a limited-range BT.601 YUV 4:2:0 frame, each pixel's colour
/// (RGB) from `paint(x, y)`, shown at 0 s.
#[cfg(test)]
pub(crate) fn painted_frame(
    width: u32,
    height: u32,
    orientation: Orientation,
    paint: impl Fn(u32, u32) -> [u8; 3],
) -> DecodedFrame {
    let mut f = frame::Video::new(ffmpeg_next::format::Pixel::YUV420P, width, height);
    let yuv = |[r, g, b]: [u8; 3]| {
        let (r, g, b) = (r as f64, g as f64, b as f64);
        let y = 16.0 + (0.299 * r + 0.587 * g + 0.114 * b) * 219.0 / 255.0;
        let u = 128.0 + (-0.168_736 * r - 0.331_264 * g + 0.5 * b) * 224.0 / 255.0;
        let v = 128.0 + (0.5 * r - 0.418_688 * g - 0.081_312 * b) * 224.0 / 255.0;
        [y, u, v].map(|c| c.round().clamp(0.0, 255.0) as u8)
    };
    for plane in 0..3 {
        let sub = if plane == 0 { 1 } else { 2 };
        let stride = f.stride(plane);
        let data = f.data_mut(plane);
        for y in 0..height.div_ceil(sub) {
            for x in 0..width.div_ceil(sub) {
                data[y as usize * stride + x as usize] = yuv(paint(x * sub, y * sub))[plane];
            }
        }
    }
    DecodedFrame {
        frame: f,
        sar: (1, 1),
        orientation,
        transfer: Transfer::Sdr,
        time_secs: 0.0,
        packets_decoded: 1,
    }
}

/// Decode errors tolerated (corrupt packets are skipped) before giving up.
pub(super) const MAX_DECODE_ERRORS: usize = 64;

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

/// Container families whose index or timestamps the decoder relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// MP4, MOV, 3GP: an index of every packet, decoding times stored.
    Mp4,
    /// Matroska and WebM: cues for keyframes, presentation times only.
    Matroska,
    /// MPEG-TS and FLV: decoding times stored, no index.
    StoresDts,
    Other,
}

impl Container {
    pub fn of(input: &Input) -> Container {
        let format = input.format();
        format
            .name()
            .split(',')
            .find_map(|name| match name {
                "mov" | "mp4" => Some(Container::Mp4),
                "matroska" | "webm" => Some(Container::Matroska),
                "mpegts" | "flv" => Some(Container::StoresDts),
                _ => None,
            })
            .unwrap_or(Container::Other)
    }

    /// Whether packets carry the decoding times the file stores (rather
    /// than FFmpeg's guesses).
    pub fn stores_dts(self) -> bool {
        matches!(self, Container::Mp4 | Container::StoresDts)
    }

    /// Whether every packet carries its own presentation time, so a
    /// decoded frame's time does not depend on which frames were decoded
    /// before it. AVI stores none (FFmpeg guesses them from the order of
    /// packets, which skipping frames changes); MPEG-PS often leaves them out.
    pub fn packets_carry_pts(self) -> bool {
        matches!(
            self,
            Container::Mp4 | Container::Matroska | Container::StoresDts
        )
    }
}

/// Opens `reader`'s container and picks its video stream, checked against
/// `limits`; other streams' packets are dropped by the demuxer.
pub(super) fn open_video(
    reader: Box<dyn SourceRead>,
    limits: &Limits,
) -> Result<(Demuxer, StreamInfo), MediaError> {
    let (mut demuxer, info) = open_stream(reader, limits)?;
    check_frame_size(demuxer.input(), &info, limits)?;
    ffmpeg::discard_other_streams(demuxer.input_mut(), info.index);
    Ok((demuxer, info))
}

/// Opens the container and reads what it says of its video stream,
/// probing packets where the header lacks it.
pub(super) fn open_stream(
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
    let (w, h) = ffmpeg::picture_size(&stream.parameters());
    let (w, h) = (w.max(0) as u32, h.max(0) as u32);
    if w as u64 * h as u64 > limits.max_frame_pixels {
        return Err(MediaError::FrameTooLarge {
            width: w,
            height: h,
            limit: limits.max_frame_pixels,
        });
    }
    Ok(())
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
    let (w, h) = ffmpeg::picture_size(&stream.parameters());
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
            let (w, h) = ffmpeg::picture_size(&s.parameters());
            (s.index() == best_index(input), w as i64 * h as i64)
        })
        .ok_or(MediaError::NoVideoStream)?;
    let time_base = stream.time_base();
    if time_base.numerator() <= 0 || time_base.denominator() <= 0 {
        return Err(MediaError::Unreadable(
            "the video stream has no time base".into(),
        ));
    }
    let (start, start_known) = match stream.start_time() {
        AV_NOPTS_VALUE => (0, Container::of(input) != Container::Mp4),
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
        sar: ffmpeg::sample_aspect_ratio(&stream),
    })
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
    ffmpeg::prepare_decoder(
        &mut ctx,
        info.time_base,
        limits.max_frame_pixels.min(i64::MAX as u64) as i64,
    );
    let codec_id = stream.parameters().id();
    let decoder = ctx.decoder();
    match alpha_decoder(&stream) {
        Some(codec) => decoder.open_as(codec).and_then(|d| d.video()),
        None => decoder.video(),
    }
    .map_err(|e| MediaError::Unreadable(format!("no decoder for {codec_id:?} ({e})")))
}

/// The decoder for a WebM stream with alpha, which FFmpeg's own VP8 and
/// VP9 decoders would decode without it: Matroska keeps the alpha as a
/// second VP8/VP9 picture in each block's `BlockAdditional` (packet side
/// data) and marks the track `alpha_mode=1`; libvpx's decoders (as
/// browsers and `ffmpeg -c:v libvpx-vp9` do) decode both into `yuva420p`.
/// Their colour planes are the same pictures, so the frame shown at a time
/// does not change. `None` for every other stream (FFmpeg's default
/// decoder), and where FFmpeg was built without libvpx (the alpha is lost,
/// as before).
fn alpha_decoder(stream: &ffmpeg_next::format::stream::Stream) -> Option<ffmpeg_next::Codec> {
    let name = match stream.parameters().id() {
        codec::Id::VP8 => "libvpx",
        codec::Id::VP9 => "libvpx-vp9",
        _ => return None,
    };
    if stream.metadata().get("alpha_mode") != Some("1") {
        return None;
    }
    let found = ffmpeg_next::decoder::find_by_name(name);
    if found.is_none() {
        tracing::debug!(
            decoder = name,
            "FFmpeg has no libvpx decoder: the video's alpha is ignored"
        );
    }
    found
}

pub(super) fn seek(demuxer: &mut Demuxer, info: &StreamInfo, ts: i64) -> Result<(), MediaError> {
    let ret = ffmpeg::seek_file(demuxer.input_mut(), info.index as i32, i64::MIN, ts, ts, 0);
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
    // `pos` is a cluster the cues point at.
    let ret = ffmpeg::seek_file(demuxer.input_mut(), -1, pos, pos, pos, SEEK_BYTE);
    if let Some(failure) = demuxer.take_failure() {
        return Err(failure);
    }
    Ok(ret >= 0)
}

pub(super) fn seek_to_start(demuxer: &mut Demuxer, info: &StreamInfo) -> Result<(), MediaError> {
    let ret = ffmpeg::seek_file(
        demuxer.input_mut(),
        info.index as i32,
        i64::MIN,
        info.start,
        info.start,
        SEEK_BACKWARD,
    );
    if let Some(failure) = demuxer.take_failure() {
        return Err(failure);
    }
    if ret < 0 {
        return seek_to_first_byte(demuxer);
    }
    Ok(())
}

pub(super) fn seek_to_first_byte(demuxer: &mut Demuxer) -> Result<(), MediaError> {
    // Byte 0 is always a valid position.
    let ret = ffmpeg::seek_file(demuxer.input_mut(), -1, i64::MIN, 0, 0, SEEK_BYTE);
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
