//! FFmpeg state that ffmpeg-next leaves to raw pointers, behind safe
//! functions: a stream's picture size and aspect ratio, which streams the
//! demuxer drops, seeking, the decoder's settings, and timestamp
//! arithmetic. What to do with them is [`crate::media::stream`]'s and
//! [`crate::media::exact`]'s business; each function here is only the call.

use std::os::raw::c_int;

use ffmpeg_next::format::context::Input;
use ffmpeg_next::format::stream::Stream;
use ffmpeg_next::{codec, ffi, Rational};

/// [`seek_file`] flag: the keyframe at or before the timestamp.
pub const SEEK_BACKWARD: c_int = ffi::AVSEEK_FLAG_BACKWARD;
/// [`seek_file`] flag: the timestamps are byte positions.
pub const SEEK_BYTE: c_int = ffi::AVSEEK_FLAG_BYTE;

/// The picture size the codec parameters state, as FFmpeg holds it (0 or
/// less where unknown).
pub fn picture_size(parameters: &codec::Parameters) -> (c_int, c_int) {
    // SAFETY: plain fields of live codec parameters.
    unsafe {
        let p = parameters.as_ptr();
        ((*p).width, (*p).height)
    }
}

/// The sample aspect ratio the container states for `stream` (0/1 when it
/// gives none).
pub fn sample_aspect_ratio(stream: &Stream) -> Rational {
    // SAFETY: a plain field of a live stream.
    unsafe { (*stream.as_ptr()).sample_aspect_ratio }.into()
}

/// Tells the demuxer to drop packets of every stream but `keep`.
pub fn discard_other_streams(input: &mut Input, keep: usize) {
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

/// Settings of a codec context before it is opened as a decoder: the
/// packets' time base, the largest picture it may allocate, and only the
/// documented decoders ([`super::avio::DECODERS`]).
pub fn prepare_decoder(ctx: &mut codec::context::Context, time_base: Rational, max_pixels: i64) {
    // SAFETY: setting plain fields before the codec is opened.
    unsafe {
        let raw = ctx.as_mut_ptr();
        (*raw).pkt_timebase = time_base.into();
        (*raw).max_pixels = max_pixels;
        // Only the documented decoders open; freed with the context.
        (*raw).codec_whitelist = ffi::av_strdup(super::avio::DECODERS.as_ptr());
    }
}

/// `avformat_seek_file`: FFmpeg's result (negative on failure). FFmpeg
/// checks the stream index and the timestamps itself.
pub fn seek_file(
    input: &mut Input,
    stream_index: c_int,
    min_ts: i64,
    ts: i64,
    max_ts: i64,
    flags: c_int,
) -> c_int {
    // SAFETY: the context is open; FFmpeg validates the other arguments.
    unsafe { ffi::avformat_seek_file(input.as_mut_ptr(), stream_index, min_ts, ts, max_ts, flags) }
}

/// Has the decoder drop frames no other frame refers to (B-frames, mostly)
/// from the next packet on, or decode every frame again.
pub fn set_skip_nonref(decoder: &mut ffmpeg_next::decoder::Video, skip: bool) {
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

/// Has the decoder skip the deblocking filter on every frame.
pub fn skip_loop_filter(decoder: &mut ffmpeg_next::decoder::Video) {
    // SAFETY: a plain field of the open codec context, read per packet.
    unsafe {
        (*decoder.as_mut_ptr()).skip_loop_filter = ffi::AVDiscard::AVDISCARD_ALL;
    }
}

pub fn rescale(v: i64, from: Rational, to: Rational) -> i64 {
    // SAFETY: pure arithmetic.
    unsafe { ffi::av_rescale_q(v, from.into(), to.into()) }
}

pub fn rescale_up(v: i64, from: Rational, to: Rational) -> i64 {
    // SAFETY: pure arithmetic.
    unsafe { ffi::av_rescale_q_rnd(v, from.into(), to.into(), ffi::AVRounding::AV_ROUND_UP) }
}

pub fn rescale_down(v: i64, from: Rational, to: Rational) -> i64 {
    // SAFETY: pure arithmetic.
    unsafe { ffi::av_rescale_q_rnd(v, from.into(), to.into(), ffi::AVRounding::AV_ROUND_DOWN) }
}

/// A pixel format as FFmpeg names it (`yuv420p10le`), and its bits per
/// sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    pub name: &'static str,
    pub depth: u8,
}

/// The pixel format whose `AVPixelFormat` value is `raw`, found among
/// FFmpeg's descriptors (so no value is ever taken for an enum it is not).
fn describe_pixel_format(raw: c_int) -> Option<PixelFormat> {
    if raw < 0 {
        return None;
    }
    // SAFETY: walking FFmpeg's static table of descriptors; each pointer
    // it hands out lives as long as the program, its name a C string.
    unsafe {
        let mut d = std::ptr::null();
        loop {
            d = ffi::av_pix_fmt_desc_next(d);
            if d.is_null() {
                return None;
            }
            if ffi::av_pix_fmt_desc_get_id(d) as c_int == raw {
                let name = std::ffi::CStr::from_ptr((*d).name).to_str().ok()?;
                let depth = (*d).comp[0].depth.clamp(0, 255) as u8;
                return Some(PixelFormat { name, depth });
            }
        }
    }
}

/// The pixel format the codec parameters state (the container's, or what
/// probing packets found); `None` where they do not.
pub fn pixel_format(parameters: &codec::Parameters) -> Option<PixelFormat> {
    // SAFETY: a plain field of live codec parameters.
    describe_pixel_format(unsafe { (*parameters.as_ptr()).format })
}

/// The pixel format an opened decoder settled on, if it has one.
pub fn decoder_pixel_format(decoder: &ffmpeg_next::decoder::Video) -> Option<PixelFormat> {
    describe_pixel_format(ffi::AVPixelFormat::from(decoder.format()) as c_int)
}

/// FFmpeg's pixel format called `name`, if there is one.
pub fn pixel_format_named(name: &str) -> Option<PixelFormat> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a NUL-terminated string; an unknown name gives AV_PIX_FMT_NONE.
    describe_pixel_format(unsafe { ffi::av_get_pix_fmt(name.as_ptr()) } as c_int)
}

/// The profile the codec parameters state, as FFmpeg numbers it.
pub fn profile(parameters: &codec::Parameters) -> Option<c_int> {
    // SAFETY: a plain field of live codec parameters.
    let profile = unsafe { (*parameters.as_ptr()).profile };
    (profile != ffi::FF_PROFILE_UNKNOWN).then_some(profile)
}

/// FFmpeg's name of profile `profile` of codec `id` (`High`, `Main 10`).
pub fn profile_name(id: codec::Id, profile: c_int) -> Option<&'static str> {
    // SAFETY: FFmpeg answers a static C string, or null for a profile it
    // does not know.
    unsafe {
        let name = ffi::avcodec_profile_name(id.into(), profile);
        if name.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(name).to_str().ok()
    }
}

/// The codec's configuration record as the container holds it (MP4's
/// `avcC`, `hvcC`, `av1C` or `vpcC`, Matroska's CodecPrivate); empty when
/// there is none.
pub fn extradata(parameters: &codec::Parameters) -> &[u8] {
    // SAFETY: `extradata` holds `extradata_size` bytes for as long as the
    // parameters live, which the borrow covers.
    unsafe {
        let p = parameters.as_ptr();
        if (*p).extradata.is_null() || (*p).extradata_size <= 0 {
            return &[];
        }
        std::slice::from_raw_parts((*p).extradata, (*p).extradata_size as usize)
    }
}

/// The colour description the codec parameters state: primaries,
/// transfer, matrix and range (each `Unspecified` where they do not say).
pub fn colour(
    parameters: &codec::Parameters,
) -> (
    ffmpeg_next::color::Primaries,
    ffmpeg_next::color::TransferCharacteristic,
    ffmpeg_next::color::Space,
    ffmpeg_next::color::Range,
) {
    // SAFETY: plain fields of live codec parameters.
    unsafe {
        let p = parameters.as_ptr();
        (
            (*p).color_primaries.into(),
            (*p).color_trc.into(),
            (*p).color_space.into(),
            (*p).color_range.into(),
        )
    }
}

/// The sample aspect ratio the codec parameters state (0/1 when none).
pub fn codec_aspect_ratio(parameters: &codec::Parameters) -> Rational {
    // SAFETY: a plain field of live codec parameters.
    unsafe { (*parameters.as_ptr()).sample_aspect_ratio }.into()
}
