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
