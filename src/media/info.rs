//! What a video is, without decoding a frame: its size as shown, codec,
//! pixel format, colour, frame rate, duration, and how far apart its
//! keyframes are, for pages that lay out a player or choose storyboard
//! parameters ([`info`]).
//!
//! Everything comes from what a render reads first anyway: the container's
//! header and index (the same bytes, so they land in the source cache for
//! the render that follows) and the codec's configuration record in it
//! (H.264's `avcC`, HEVC's `hvcC`, AV1's `av1C`, VP9's `vpcC`), read by the
//! small parsers below. Only a VP9 stream without a configuration record
//! (WebM as FFmpeg and libvpx write it) costs its first packet, whose
//! uncompressed header says the rest. MPEG-TS, MPEG-PS and FLV headers say
//! little, so FFmpeg probes their first packets as it does for every render.

#![deny(unsafe_code)]

use ffmpeg_next::codec::Id;
use ffmpeg_next::color::{Range, TransferCharacteristic};
use ffmpeg_next::format::context::Input;
use ffmpeg_next::media::Type;
use ffmpeg_next::Rational;

use super::ffi::avio::Demuxer;
use super::ffi::ffmpeg::{self, PixelFormat};
use super::ffi::index::StreamIndex;
use super::geometry::Shape;
use super::stream::{open_decoder, open_stream, read_packet, seek_to_start, Container, StreamInfo};
use super::tonemap::Hdr;
use super::{Limits, MediaError};
use crate::source::SourceRead;

/// What a video is.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Seconds, if the container (or playlist) says.
    pub duration_secs: Option<f64>,
    /// The size a player shows: the stored picture stretched by its pixel
    /// aspect ratio, then turned by its rotation.
    pub width: u32,
    pub height: u32,
    /// The stored picture's size, before either.
    pub coded_width: u32,
    pub coded_height: u32,
    /// Degrees players turn the stored picture clockwise: 0, 90, 180 or 270.
    pub rotation: u16,
    /// The shape of a stored pixel, width:height, reduced; 1:1 when the
    /// video does not say.
    pub pixel_aspect: (u32, u32),
    /// Frames a second on average, if the container says.
    pub frame_rate: Option<f64>,
    /// FFmpeg's name of the codec (`h264`, `hevc`, `vp9`, `av1`, ...).
    pub codec: &'static str,
    /// FFmpeg's name of the codec's profile (`High`, `Main 10`), if known.
    pub profile: Option<&'static str>,
    /// The container family: `mp4` (MP4, MOV, 3GP), `matroska` (MKV and
    /// WebM), else FFmpeg's name of its demuxer (`mpegts`, `mpeg`, `avi`,
    /// `flv`, `ogg`, `asf`, `dv`, `mxf`).
    pub container: &'static str,
    /// The pixel format FFmpeg's decoder gives (`yuv420p10le`) and its bits
    /// per sample; `None` for the few codecs (Motion JPEG, PNG, ProRes, DV,
    /// MPEG-4 part 2 in AVI) that say it only inside their frames.
    pub pixel_format: Option<PixelFormat>,
    /// HDR transfer, `None` for SDR (or unstated).
    pub hdr: Option<Hdr>,
    /// The colour description the container or the codec's configuration
    /// states, in FFmpeg's names.
    pub colour: Colour,
    /// Whether the video has a sound track.
    pub audio: bool,
    /// Keyframes from the container's index, without decoding; `None` when
    /// it has no index of them (MPEG-TS, MPEG-PS, FLV, Ogg, ...).
    pub keyframes: Option<Keyframes>,
    /// For videos stored for streaming (HLS, DASH): what the playlist says.
    pub streaming: Option<Streaming>,
}

/// Colour as FFmpeg names it (`bt709`, `bt2020`, `smpte2084`,
/// `arib-std-b67`, `bt2020nc`); `None` where not stated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Colour {
    pub primaries: Option<&'static str>,
    pub transfer: Option<&'static str>,
    pub matrix: Option<&'static str>,
}

/// The keyframes an index lists.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keyframes {
    pub count: usize,
    /// The median spacing of consecutive keyframes, seconds; `None` with
    /// fewer than two.
    pub interval_secs: Option<f64>,
}

/// What a streaming document says of the video.
#[derive(Debug, Clone, PartialEq)]
pub struct Streaming {
    pub format: StreamingFormat,
    /// An EVENT playlist still being written: its duration is not known.
    pub growing: bool,
    /// The renditions a master playlist or manifest lists, in its order
    /// (none for a lone media playlist).
    pub renditions: Vec<Rendition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamingFormat {
    Hls,
    Dash,
}

impl StreamingFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamingFormat::Hls => "hls",
            StreamingFormat::Dash => "dash",
        }
    }
}

/// One rendition as its document declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rendition {
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Bits a second; `None` when not declared.
    pub bandwidth: Option<u64>,
}

/// Reads what `reader`'s video is from its container header, index and
/// codec configuration; no frame is decoded. Blocking; run it off the
/// async runtime.
pub fn info(reader: Box<dyn SourceRead>, limits: &Limits) -> Result<VideoInfo, MediaError> {
    let (mut demuxer, stream) = open_stream(reader, limits)?;
    let mut coding = stated_coding(demuxer.input(), &stream, limits);
    if coding.pixel_format.is_none() && codec_of(demuxer.input(), &stream) == Id::VP9 {
        if let Some(found) = first_packet_coding(&mut demuxer, &stream, limits)? {
            coding = coding.or(found);
        }
    }
    let keyframes = keyframes(&mut demuxer, &stream)?;
    let input = demuxer.input();
    let video = input.stream(stream.index).expect("index from stream_info");
    let parameters = video.parameters();
    let (coded_width, coded_height) = ffmpeg::picture_size(&parameters);
    let (coded_width, coded_height) = (coded_width.max(0) as u32, coded_height.max(0) as u32);
    let pixel_aspect = [stream.sar, ffmpeg::codec_aspect_ratio(&parameters)]
        .into_iter()
        .find_map(positive)
        .map_or((1, 1), reduced);
    let shape = Shape {
        width: coded_width,
        height: coded_height,
        sar: pixel_aspect,
        orientation: stream.orientation,
    };
    let (width, height) = shape.display_size();
    let frame_rate = [video.avg_frame_rate(), video.rate()]
        .into_iter()
        .find_map(positive)
        .map(|(n, d)| round_to(n as f64 / d as f64, 1000.0));
    let audio = input
        .streams()
        .any(|s| s.parameters().medium() == Type::Audio);
    let id = parameters.id();
    Ok(VideoInfo {
        duration_secs: stream.duration_us.map(|us| us.max(0) as f64 / 1e6),
        width: width.round() as u32,
        height: height.round() as u32,
        coded_width,
        coded_height,
        rotation: u16::from(stream.orientation.quarter_turns) * 90,
        pixel_aspect,
        frame_rate,
        codec: id.name(),
        profile: coding.profile.and_then(|p| ffmpeg::profile_name(id, p)),
        container: container_name(input, stream.container),
        pixel_format: coding.pixel_format,
        hdr: match coding.transfer {
            TransferCharacteristic::SMPTE2084 => Some(Hdr::Pq),
            TransferCharacteristic::ARIB_STD_B67 => Some(Hdr::Hlg),
            _ => None,
        },
        colour: Colour {
            primaries: coding.primaries.name(),
            transfer: coding.transfer.name(),
            matrix: coding.matrix.name(),
        },
        audio,
        keyframes,
        streaming: None,
    })
}

/// How the pictures are coded, from every place that says.
#[derive(Debug, Clone, Copy)]
struct Coding {
    pixel_format: Option<PixelFormat>,
    profile: Option<i32>,
    primaries: ffmpeg_next::color::Primaries,
    transfer: TransferCharacteristic,
    matrix: ffmpeg_next::color::Space,
}

impl Coding {
    /// `self`, with what it leaves unstated taken from `other`.
    fn or(self, other: Coding) -> Coding {
        use ffmpeg_next::color::{Primaries, Space};
        Coding {
            pixel_format: self.pixel_format.or(other.pixel_format),
            profile: self.profile.or(other.profile),
            primaries: if self.primaries == Primaries::Unspecified {
                other.primaries
            } else {
                self.primaries
            },
            transfer: if self.transfer == TransferCharacteristic::Unspecified {
                other.transfer
            } else {
                self.transfer
            },
            matrix: if self.matrix == Space::Unspecified {
                other.matrix
            } else {
                self.matrix
            },
        }
    }

    fn unstated() -> Coding {
        Coding {
            pixel_format: None,
            profile: None,
            primaries: ffmpeg_next::color::Primaries::Unspecified,
            transfer: TransferCharacteristic::Unspecified,
            matrix: ffmpeg_next::color::Space::Unspecified,
        }
    }
}

fn codec_of(input: &Input, stream: &StreamInfo) -> Id {
    input
        .stream(stream.index)
        .map_or(Id::None, |s| s.parameters().id())
}

/// What the codec parameters (the container's header, or FFmpeg's probe
/// of the first packets), the codec's configuration record and, failing
/// both, a decoder opened on them (no packet sent) say of the coding.
fn stated_coding(input: &Input, stream: &StreamInfo, limits: &Limits) -> Coding {
    let video = input.stream(stream.index).expect("index from stream_info");
    let parameters = video.parameters();
    let id = parameters.id();
    let (primaries, transfer, matrix, range) = ffmpeg::colour(&parameters);
    let stated = Coding {
        pixel_format: ffmpeg::pixel_format(&parameters),
        profile: ffmpeg::profile(&parameters),
        primaries,
        transfer,
        matrix,
    };
    let record = ffmpeg::extradata(&parameters);
    let configured = match id {
        Id::H264 => avc_record(record),
        Id::HEVC => hevc_record(record),
        Id::AV1 => av1_record(record),
        Id::VP9 => vp9_record(record),
        // VP8 has one pixel format (its alpha travels beside it).
        Id::VP8 => Some(Coded {
            profile: None,
            chroma: Chroma::Yuv420,
            depth: 8,
        }),
        _ => None,
    };
    // FFmpeg's H.264 and HEVC decoders name 8-bit full-range pictures
    // `yuvj`; the others keep the range beside the format.
    let jpeg_range = range == Range::JPEG && matches!(id, Id::H264 | Id::HEVC);
    let from_record = Coding {
        pixel_format: configured.and_then(|c| c.pixel_format(jpeg_range)),
        profile: configured.and_then(|c| c.profile),
        ..Coding::unstated()
    };
    let mut coding = stated.or(from_record);
    if coding.pixel_format.is_none() && !matches!(id, Id::VP9) {
        // Some decoders (Theora, Cinepak, the MS-MPEG-4 family) read their
        // headers or know their one format when opened. One thread: no
        // frame is decoded.
        let quiet = Limits {
            decoder_threads: 1,
            ..limits.clone()
        };
        if let Ok(decoder) = open_decoder(input, stream, &quiet) {
            coding.pixel_format = ffmpeg::decoder_pixel_format(&decoder);
        }
    }
    coding
}

/// Reads the video's first packet and the coding its VP9 uncompressed
/// header states, then goes back to the start.
fn first_packet_coding(
    demuxer: &mut Demuxer,
    stream: &StreamInfo,
    limits: &Limits,
) -> Result<Option<Coding>, MediaError> {
    let mut found = None;
    for _ in 0..MAX_PACKETS_TO_FIRST {
        let Some(packet) = read_packet(demuxer, limits)? else {
            break;
        };
        if packet.stream() == stream.index {
            found = packet.data().and_then(vp9_frame_header);
            break;
        }
    }
    seek_to_start(demuxer, stream)?;
    Ok(found.map(|(coded, matrix)| Coding {
        pixel_format: coded.pixel_format(false),
        profile: coded.profile,
        matrix,
        ..Coding::unstated()
    }))
}

/// Packets of other streams read before the video's first, at most.
const MAX_PACKETS_TO_FIRST: usize = 200;

/// The keyframes the container's index lists: every packet of an MP4 or
/// AVI (their index is complete, or it is not used: a fragmented MP4 whose
/// fragments were not all read undercounts), the cues of a Matroska file.
fn keyframes(demuxer: &mut Demuxer, stream: &StreamInfo) -> Result<Option<Keyframes>, MediaError> {
    let every_packet = match stream.container {
        Container::Mp4 => true,
        Container::Matroska => false,
        _ if first_name(demuxer.input()) == "avi" => true,
        _ => return Ok(None),
    };
    if stream.container == Container::Matroska {
        // The demuxer reads the cues on the first seek.
        seek_to_start(demuxer, stream)?;
    }
    let index = StreamIndex::of(demuxer.input(), stream.index);
    let (mut times, mut last) = (Vec::new(), None);
    for entry in (0..index.entries()).filter_map(|i| index.get(i)) {
        if entry.keyframe {
            times.push(entry.timestamp);
        }
        last = Some(entry.timestamp);
    }
    if times.is_empty() {
        return Ok(None);
    }
    let tb = f64::from(stream.time_base);
    let interval_secs = median_spacing(&times).map(|t| round_to(t as f64 * tb, 1000.0));
    if every_packet {
        let covered = (last.unwrap_or(0) - stream.start) as f64 * tb;
        let duration = stream.duration_us.map_or(0.0, |us| us as f64 / 1e6);
        let slack = interval_secs.unwrap_or(0.0).max(1.0) * 2.0;
        if covered + slack < duration {
            tracing::debug!(covered, duration, "the index does not cover the video");
            return Ok(None);
        }
    }
    Ok(Some(Keyframes {
        count: times.len(),
        interval_secs,
    }))
}

/// The median of the differences between consecutive `times` (sorted).
fn median_spacing(times: &[i64]) -> Option<i64> {
    let mut gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_unstable();
    let mid = gaps.len() / 2;
    Some(if gaps.len() % 2 == 1 {
        gaps[mid]
    } else {
        (gaps[mid - 1] + gaps[mid]) / 2
    })
}

/// The first of the names FFmpeg gives the demuxer (`mpegts`, `avi`).
fn first_name(input: &Input) -> String {
    let format = input.format();
    format
        .name()
        .split(',')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn container_name(input: &Input, container: Container) -> &'static str {
    match container {
        Container::Mp4 => "mp4",
        Container::Matroska => "matroska",
        _ => {
            let name = first_name(input);
            // The demuxers thumbd opens (super::ffi::avio::FORMATS).
            ["mpegts", "mpeg", "flv", "avi", "ogg", "asf", "dv", "mxf"]
                .into_iter()
                .find(|known| *known == name)
                .unwrap_or("other")
        }
    }
}

fn positive(r: Rational) -> Option<(u32, u32)> {
    (r.numerator() > 0 && r.denominator() > 0)
        .then(|| (r.numerator() as u32, r.denominator() as u32))
}

fn reduced((n, d): (u32, u32)) -> (u32, u32) {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let g = gcd(n, d).max(1);
    (n / g, d / g)
}

fn round_to(v: f64, per_unit: f64) -> f64 {
    (v * per_unit).round() / per_unit
}

/// Chroma layout of a picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chroma {
    Mono,
    Yuv420,
    Yuv422,
    Yuv440,
    Yuv444,
    /// VP9's and AV1's RGB (identity matrix).
    Rgb,
}

/// What a codec's configuration or frame header says of its pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Coded {
    /// FFmpeg's number for the profile.
    profile: Option<i32>,
    chroma: Chroma,
    depth: u8,
}

impl Coded {
    /// FFmpeg's name of the format its decoders give such pictures, with
    /// `yuvj` for 8-bit full range where they do.
    fn pixel_format_name(self, jpeg_range: bool) -> Option<String> {
        let base = match self.chroma {
            Chroma::Mono => "gray",
            Chroma::Yuv420 => "yuv420p",
            Chroma::Yuv422 => "yuv422p",
            Chroma::Yuv440 => "yuv440p",
            Chroma::Yuv444 => "yuv444p",
            Chroma::Rgb => "gbrp",
        };
        match self.depth {
            8 if jpeg_range && base.starts_with("yuv") => Some(format!("yuvj{}", &base[3..])),
            8 => Some(base.to_owned()),
            10 | 12 => Some(format!("{base}{}le", self.depth)),
            _ => None,
        }
    }

    fn pixel_format(self, jpeg_range: bool) -> Option<PixelFormat> {
        ffmpeg::pixel_format_named(&self.pixel_format_name(jpeg_range)?)
    }
}

/// Reads bits most significant first, as H.264 and HEVC headers are written.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Bits<'a> {
        Bits { data, pos: 0 }
    }

    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0, |acc, _| Some(acc << 1 | self.bit()?))
    }

    /// An unsigned Exp-Golomb code.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }
}

/// A NAL unit's payload without its emulation prevention bytes (the 3 in
/// every `00 00 03`).
fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// The first sequence parameter set of an `avcC` record (or of Annex B
/// extradata, start codes and all).
fn avc_sps(record: &[u8]) -> Option<&[u8]> {
    if record.first() == Some(&1) {
        // avcC: version, profile, compatibility, level, NAL length size,
        // then the count of SPS and each with a 16-bit length.
        if *record.get(5)? & 0x1f == 0 {
            return None;
        }
        let len = u16::from_be_bytes([*record.get(6)?, *record.get(7)?]) as usize;
        return record.get(8..8 + len);
    }
    // Annex B: NAL units after 00 00 01 start codes; an SPS is type 7.
    let mut i = 0;
    while i + 3 < record.len() {
        if record[i..i + 3] == [0, 0, 1] {
            let start = i + 3;
            if record[start] & 0x1f == 7 {
                let end = (start..record.len().saturating_sub(2))
                    .find(|&j| record[j..j + 3] == [0, 0, 1] || record[j..j + 3] == [0, 0, 0])
                    .unwrap_or(record.len());
                return Some(&record[start..end]);
            }
            i = start;
        } else {
            i += 1;
        }
    }
    None
}

/// H.264: the profile, chroma format and bit depth its first sequence
/// parameter set states (the fields ahead of everything else in it).
fn avc_record(record: &[u8]) -> Option<Coded> {
    let sps = unescape(avc_sps(record)?);
    let mut r = Bits::new(sps.get(1..)?); // after the NAL header
    let profile_idc = r.bits(8)?;
    let constraints = r.bits(8)?;
    let _level = r.bits(8)?;
    let _id = r.ue()?;
    let (mut chroma, mut depth) = (1, 8);
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma = r.ue()?;
        if chroma == 3 {
            r.bit()?; // separate_colour_plane_flag
        }
        depth = 8 + r.ue()?;
    }
    // As FFmpeg numbers H.264 profiles: constraint_set1 makes Baseline
    // Constrained, constraint_set3 makes the high profiles Intra.
    let set = |i: u32| constraints & (0x80 >> i) != 0;
    let profile = profile_idc as i32
        | match profile_idc {
            66 if set(1) => ffmpeg_next::ffi::FF_PROFILE_H264_CONSTRAINED,
            110 | 122 | 244 if set(3) => ffmpeg_next::ffi::FF_PROFILE_H264_INTRA,
            _ => 0,
        };
    Some(Coded {
        profile: Some(profile),
        chroma: chroma_of_idc(chroma)?,
        depth: u8::try_from(depth).ok()?,
    })
}

fn chroma_of_idc(idc: u32) -> Option<Chroma> {
    Some(match idc {
        0 => Chroma::Mono,
        1 => Chroma::Yuv420,
        2 => Chroma::Yuv422,
        3 => Chroma::Yuv444,
        _ => return None,
    })
}

/// HEVC's `hvcC` record: profile, chroma format and bit depth are fixed
/// fields of its header (ISO/IEC 14496-15, 8.3.3.1).
fn hevc_record(record: &[u8]) -> Option<Coded> {
    if record.len() < 23 || record[0] != 1 {
        return None;
    }
    Some(Coded {
        profile: Some(i32::from(record[1] & 0x1f)),
        chroma: chroma_of_idc(u32::from(record[16] & 0x03))?,
        depth: 8 + (record[17] & 0x07),
    })
}

/// AV1's `av1C` record (AV1 in ISO BMFF, 2.3): profile, bit depth,
/// monochrome and subsampling in its first bytes.
fn av1_record(record: &[u8]) -> Option<Coded> {
    if record.len() < 4 || record[0] != 0x81 {
        return None;
    }
    let profile = record[1] >> 5;
    let flags = record[2];
    let high_bitdepth = flags & 0x40 != 0;
    let twelve_bit = flags & 0x20 != 0;
    let mono = flags & 0x10 != 0;
    let (sx, sy) = (flags & 0x08 != 0, flags & 0x04 != 0);
    Some(Coded {
        profile: Some(i32::from(profile)),
        chroma: match (mono, sx, sy) {
            (true, _, _) => Chroma::Mono,
            (false, true, true) => Chroma::Yuv420,
            (false, true, false) => Chroma::Yuv422,
            (false, false, false) => Chroma::Yuv444,
            (false, false, true) => return None,
        },
        depth: match (high_bitdepth, twelve_bit) {
            (false, _) => 8,
            (true, false) => 10,
            (true, true) => 12,
        },
    })
}

/// VP9's configuration: an MP4 `vpcC` box (version 1) or Matroska's
/// CodecPrivate (a list of id, length, value: 1 profile, 3 bit depth,
/// 4 chroma subsampling). Either may leave out what matters: then `None`.
fn vp9_record(record: &[u8]) -> Option<Coded> {
    let vp9_chroma = |s: u8| match s {
        0 | 1 => Some(Chroma::Yuv420),
        2 => Some(Chroma::Yuv422),
        3 => Some(Chroma::Yuv444),
        _ => None,
    };
    if record.len() >= 8 && record[0] == 1 && record[1..4] == [0, 0, 0] {
        return Some(Coded {
            profile: Some(i32::from(record[4])),
            chroma: vp9_chroma((record[6] >> 1) & 0x07)?,
            depth: record[6] >> 4,
        })
        .filter(|c| matches!(c.depth, 8 | 10 | 12));
    }
    let (mut profile, mut depth, mut chroma) = (None, None, None);
    let mut rest = record;
    while let [id, len, tail @ ..] = rest {
        let value = *tail.get(..usize::from(*len))?.first()?;
        match id {
            1 => profile = Some(i32::from(value)),
            3 => depth = Some(value),
            4 => chroma = vp9_chroma(value),
            _ => {}
        }
        rest = &tail[usize::from(*len)..];
    }
    Some(Coded {
        profile,
        chroma: chroma?,
        depth: depth.filter(|d| matches!(d, 8 | 10 | 12))?,
    })
}

/// The coding a VP9 keyframe's uncompressed header states (VP9 bitstream
/// specification, 6.2): profile, bit depth, subsampling, and its colour
/// matrix. `None` for anything but a keyframe.
fn vp9_frame_header(frame: &[u8]) -> Option<(Coded, ffmpeg_next::color::Space)> {
    use ffmpeg_next::color::Space;
    let mut r = Bits::new(frame);
    if r.bits(2)? != 2 {
        return None; // frame_marker
    }
    let low = r.bit()?;
    let profile = r.bit()? << 1 | low;
    if profile == 3 {
        r.bit()?; // reserved_zero
    }
    if r.bit()? == 1 {
        return None; // show_existing_frame
    }
    if r.bit()? != 0 {
        return None; // not a keyframe
    }
    r.bits(2)?; // show_frame, error_resilient_mode
    if r.bits(24)? != 0x49_83_42 {
        return None; // frame_sync_code
    }
    let depth = if profile >= 2 {
        if r.bit()? == 1 {
            12
        } else {
            10
        }
    } else {
        8
    };
    let space = r.bits(3)?;
    let chroma = if space != 7 {
        r.bit()?; // color_range
        if profile == 1 || profile == 3 {
            match (r.bit()?, r.bit()?) {
                (1, 1) => Chroma::Yuv420,
                (1, 0) => Chroma::Yuv422,
                (0, 1) => Chroma::Yuv440,
                _ => Chroma::Yuv444,
            }
        } else {
            Chroma::Yuv420
        }
    } else if profile == 1 || profile == 3 {
        Chroma::Rgb
    } else {
        return None; // RGB needs profile 1 or 3
    };
    // As FFmpeg's VP9 decoder maps them.
    let matrix = match space {
        1 => Space::BT470BG,
        2 => Space::BT709,
        3 => Space::SMPTE170M,
        4 => Space::SMPTE240M,
        5 => Space::BT2020NCL,
        7 => Space::RGB,
        _ => Space::Unspecified,
    };
    Some((
        Coded {
            profile: Some(profile as i32),
            chroma,
            depth,
        },
        matrix,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_sps_from_avcc() {
        // x264's avcC of a High profile 160x96 stream (ffprobe: High, yuv420p).
        let avcc = [
            0x01, 0x64, 0x00, 0x0b, 0xff, 0xe1, 0x00, 0x18, 0x67, 0x64, 0x00, 0x0b, 0xac, 0xd9,
            0x42, 0x8d, 0xb0, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x32,
            0x0f, 0x14, 0x29, 0x96, 0x01, 0x00, 0x04, 0x68, 0xef, 0x8f, 0xcb,
        ];
        let coded = avc_record(&avcc).unwrap();
        assert_eq!(
            coded,
            Coded {
                profile: Some(100),
                chroma: Chroma::Yuv420,
                depth: 8
            }
        );
        assert_eq!(coded.pixel_format_name(false).unwrap(), "yuv420p");
        assert_eq!(coded.pixel_format_name(true).unwrap(), "yuvj420p");
        // The same SPS as Annex B extradata.
        let annex_b = [&[0u8, 0, 0, 1][..], &avcc[8..32], &[0, 0, 0, 1, 0x68]].concat();
        assert_eq!(avc_record(&annex_b), Some(coded));
    }

    #[test]
    fn h264_high10_and_constrained_baseline() {
        // profile_idc 110, constraint_set3 (Intra), level 30, then ue(0)
        // sps id, ue(1) chroma 4:2:0, ue(2) bit depth 10: bits 1 010 011.
        let sps = [0x67, 110, 0x10, 30, 0b1010_0110];
        let avcc = [
            &[1, 110, 0x10, 30, 0xff, 0xe1, 0, sps.len() as u8][..],
            &sps,
        ]
        .concat();
        let coded = avc_record(&avcc).unwrap();
        assert_eq!(coded.depth, 10);
        assert_eq!(coded.chroma, Chroma::Yuv420);
        assert_eq!(
            ffmpeg::profile_name(Id::H264, coded.profile.unwrap()),
            Some("High 10 Intra")
        );
        assert_eq!(coded.pixel_format(true).unwrap().name, "yuv420p10le");
        let sps = [0x67, 66, 0x40, 30, 0b1000_0000];
        let avcc = [&[1, 66, 0x40, 30, 0xff, 0xe1, 0, sps.len() as u8][..], &sps].concat();
        let coded = avc_record(&avcc).unwrap();
        assert_eq!(
            ffmpeg::profile_name(Id::H264, coded.profile.unwrap()),
            Some("Constrained Baseline")
        );
        assert_eq!((coded.chroma, coded.depth), (Chroma::Yuv420, 8));
    }

    #[test]
    fn emulation_prevention() {
        assert_eq!(
            unescape(&[1, 0, 0, 3, 1, 0, 0, 3, 0, 3]),
            [1, 0, 0, 1, 0, 0, 0, 3]
        );
    }

    #[test]
    fn exp_golomb() {
        // 1, 010, 011, 00100, 00111: 0, 1, 2, 3, 6.
        let mut r = Bits::new(&[0b1010_0110, 0b0100_0011, 0b1000_0000]);
        let codes: Vec<u32> = (0..5).map(|_| r.ue().unwrap()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 6]);
        assert_eq!(Bits::new(&[0, 0, 0, 0, 0]).ue(), None, "no code");
    }

    #[test]
    fn hevc_main10_from_hvcc() {
        // The first 23 bytes of x265's hvcC for a Main 10 stream.
        let hvcc = [
            0x01, 0x02, 0x20, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1e, 0xf0,
            0x00, 0xfc, 0xfd, 0xfa, 0xfa, 0x00, 0x00, 0x0f, 0x04,
        ];
        let coded = hevc_record(&hvcc).unwrap();
        assert_eq!(
            ffmpeg::profile_name(Id::HEVC, coded.profile.unwrap()),
            Some("Main 10")
        );
        assert_eq!(coded.pixel_format(false).unwrap().name, "yuv420p10le");
        assert_eq!(coded.pixel_format(false).unwrap().depth, 10);
        assert_eq!(hevc_record(&hvcc[..10]), None, "too short");
    }

    #[test]
    fn av1_from_av1c() {
        // Main profile, 10-bit 4:2:0; High profile, 8-bit 4:4:4; monochrome 12-bit.
        let main10 = av1_record(&[0x81, 0x08, 0x4c, 0x00]).unwrap();
        assert_eq!(main10.pixel_format(false).unwrap().name, "yuv420p10le");
        assert_eq!(ffmpeg::profile_name(Id::AV1, 0), Some("Main"));
        let high = av1_record(&[0x81, 0x28, 0x00, 0x00]).unwrap();
        assert_eq!(
            (high.profile, high.pixel_format(false).unwrap().name),
            (Some(1), "yuv444p")
        );
        let mono = av1_record(&[0x81, 0x48, 0x70, 0x00]).unwrap();
        assert_eq!(mono.pixel_format(false).unwrap().name, "gray12le");
        assert_eq!(av1_record(&[0x01, 0, 0, 0]), None, "no marker");
    }

    #[test]
    fn vp9_records() {
        // vpcC: version 1, profile 2, level 31, 10 bits, 4:2:0 colocated.
        let vpcc = [1, 0, 0, 0, 2, 31, 0xa2, 1, 1, 1, 0, 0];
        let coded = vp9_record(&vpcc).unwrap();
        assert_eq!(coded.pixel_format(false).unwrap().name, "yuv420p10le");
        assert_eq!(
            ffmpeg::profile_name(Id::VP9, coded.profile.unwrap()),
            Some("Profile 2")
        );
        // Matroska's CodecPrivate: profile 1, level 10, 8 bits, 4:4:4.
        let private = [1, 1, 1, 2, 1, 10, 3, 1, 8, 4, 1, 3];
        assert_eq!(
            vp9_record(&private)
                .unwrap()
                .pixel_format(false)
                .unwrap()
                .name,
            "yuv444p"
        );
        assert_eq!(vp9_record(&[1, 1, 0]), None, "no depth or subsampling");
        assert_eq!(vp9_record(&[]), None);
    }

    #[test]
    fn vp9_keyframe_headers() {
        // Profile 0 keyframe: marker 10, profile 0 0, show_existing 0,
        // keyframe 0, show 1, error_res 0, sync 49 83 42, colour space 2
        // (BT.709), range 0.
        let mut bits = String::from("10" /* marker */);
        bits += "00" /* profile */;
        bits += "0" /* show_existing */;
        bits += "0" /* keyframe */;
        bits += "10" /* show, error_res */;
        bits += "010010011000001101000010" /* sync */;
        bits += "010" /* bt709 */;
        bits += "0" /* range */;
        let frame = pack(&bits);
        let (coded, matrix) = vp9_frame_header(&frame).unwrap();
        assert_eq!(coded.pixel_format(false).unwrap().name, "yuv420p");
        assert_eq!(matrix.name(), Some("bt709"));
        // Profile 3 (high bit 1, low bit 1, reserved 0), 12 bits, 4:2:2.
        let mut bits = String::from("10") + "11" + "0" + "0" + "0" + "10";
        bits += "010010011000001101000010";
        bits += "1" /* twelve */;
        bits += "001" /* bt601 */;
        bits += "0" /* range */;
        bits += "100" /* ss_x 1, ss_y 0, reserved */;
        let (coded, matrix) = vp9_frame_header(&pack(&bits)).unwrap();
        assert_eq!(coded.pixel_format(false).unwrap().name, "yuv422p12le");
        assert_eq!(coded.profile, Some(3));
        assert_eq!(matrix.name(), Some("bt470bg"));
        // An inter frame says nothing.
        let inter = pack("10000100");
        assert_eq!(vp9_frame_header(&inter), None);
    }

    fn pack(bits: &str) -> Vec<u8> {
        bits.as_bytes()
            .chunks(8)
            .map(|c| {
                let byte = c.iter().fold(0u8, |acc, &b| acc << 1 | (b - b'0'));
                byte << (8 - c.len())
            })
            .collect()
    }

    #[test]
    fn pixel_format_names_are_ffmpegs() {
        for chroma in [
            Chroma::Mono,
            Chroma::Yuv420,
            Chroma::Yuv422,
            Chroma::Yuv440,
            Chroma::Yuv444,
            Chroma::Rgb,
        ] {
            for depth in [8, 10, 12] {
                for jpeg in [false, true] {
                    let coded = Coded {
                        profile: None,
                        chroma,
                        depth,
                    };
                    let format = coded.pixel_format(jpeg);
                    assert!(format.is_some(), "{chroma:?} {depth} {jpeg}");
                    assert_eq!(format.unwrap().depth, depth);
                }
            }
        }
    }

    #[test]
    fn spacing_and_aspect() {
        assert_eq!(median_spacing(&[0, 50, 100, 150, 170]), Some(50));
        assert_eq!(median_spacing(&[0, 10, 30]), Some(15));
        assert_eq!(median_spacing(&[7]), None);
        assert_eq!(reduced((64, 48)), (4, 3));
        assert_eq!(reduced((16, 15)), (16, 15));
        assert_eq!(positive(Rational(0, 1)), None);
    }
}
