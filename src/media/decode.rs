//! Decoding for one render: what the container says of an upload
//! ([`probe_complete`]), and the frame a thumbnail shows
//! ([`decode_frame`]): the exact frame at a time ([`super::exact`]) or, for `timeStamp=auto`, the
//! best frame ([`super::bestframe`]).

#![deny(unsafe_code)]

use super::ffi::index::{file_size, StreamIndex};
use super::stream::{check_frame_size, open_stream, open_video, Container};
use super::{Limits, MediaError, TimeSpec};
use crate::source::SourceRead;

pub use super::stream::DecodedFrame;

/// What the container says about a video, without decoding it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probe {
    /// Seconds, if the container knows.
    pub duration_secs: Option<f64>,
}

/// What the container says of the video's length, refusing a file that
/// its own index says is cut short (MP4's sample table, Matroska's cues
/// pointing past its end): an upload is checked so before it is kept.
pub fn probe_complete(reader: Box<dyn SourceRead>, limits: &Limits) -> Result<Probe, MediaError> {
    let (demuxer, info) = open_stream(reader, limits)?;
    check_frame_size(demuxer.input(), &info, limits)?;
    if matches!(info.container, Container::Mp4 | Container::Matroska) {
        if let Some(size) = file_size(demuxer.input()) {
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
    match time {
        TimeSpec::Auto => return super::bestframe::best_frame(reader, limits),
        TimeSpec::Near(us) => return super::bestframe::best_frame_near(reader, us, limits),
        _ => {}
    }
    let (mut demuxer, info) = open_video(reader, limits)?;
    super::exact::frame_in(&mut demuxer, &info, time, limits)
}
