//! The demuxer's index of one stream, read through FFmpeg's accessors: every
//! packet for MP4/MOV, the keyframes its cues list for Matroska/WebM. The
//! decoder uses it to fetch a render's bytes in one request and to know
//! where decoding can stop. This is the one place that reads index entries
//! through raw pointers; which containers have which index is
//! [`crate::media::stream::Container`]'s to say.

use std::marker::PhantomData;

use ffmpeg_next::ffi;
use ffmpeg_next::format::context::Input;

/// One index entry, copied out of FFmpeg's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Byte position in the file (Matroska: of the cluster).
    pub pos: i64,
    /// Decoding time (MP4) or presentation time (Matroska), stream time base.
    pub timestamp: i64,
    /// Bytes (0 where the container does not say).
    pub size: i64,
    /// Whether decoding can start here (Matroska's cues list only these).
    pub keyframe: bool,
    /// Decoded but never shown: MP4 samples before the start of an edit
    /// list, kept because later frames depend on them.
    pub discard: bool,
}

impl Entry {
    pub fn end(&self) -> i64 {
        self.pos + self.size
    }
}

/// A stream's index, valid while the borrowed context is.
pub struct StreamIndex<'a> {
    stream: *mut ffi::AVStream,
    _input: PhantomData<&'a Input>,
}

impl<'a> StreamIndex<'a> {
    /// `stream` must be an index of one of `input`'s streams.
    pub fn of(input: &'a Input, stream: usize) -> StreamIndex<'a> {
        assert!(stream < input.nb_streams() as usize, "no stream {stream}");
        // SAFETY: `streams` holds `nb_streams` valid pointers while the
        // context lives; the borrow keeps it alive and unchanged.
        let stream = unsafe { *(*input.as_ptr()).streams.add(stream) };
        StreamIndex {
            stream,
            _input: PhantomData,
        }
    }

    pub fn entries(&self) -> i32 {
        // SAFETY: a valid stream (see `of`).
        unsafe { ffi::avformat_index_get_entries_count(self.stream) }.max(0)
    }

    /// The last entry at or before `ts`: the last keyframe, or with `any`
    /// the last packet.
    pub fn search(&self, ts: i64, any: bool) -> Option<i32> {
        let mut flags = ffi::AVSEEK_FLAG_BACKWARD;
        if any {
            flags |= ffi::AVSEEK_FLAG_ANY;
        }
        // SAFETY: a valid stream (see `of`).
        let i = unsafe { ffi::av_index_search_timestamp(self.stream, ts, flags) };
        (i >= 0).then_some(i)
    }

    pub fn get(&self, i: i32) -> Option<Entry> {
        if i < 0 || i >= self.entries() {
            return None;
        }
        // SAFETY: a valid stream and an index within its entries; the entry
        // is copied out before anything can change the index.
        unsafe {
            let e = ffi::avformat_index_get_entry(self.stream, i);
            (!e.is_null()).then(|| Entry {
                pos: (*e).pos,
                timestamp: (*e).timestamp,
                size: i64::from((*e).size()),
                keyframe: (*e).flags() & ffi::AVINDEX_KEYFRAME != 0,
                discard: (*e).flags() & ffi::AVINDEX_DISCARD_FRAME != 0,
            })
        }
    }
}

/// The size of the file the demuxer reads, if its I/O knows.
pub fn file_size(input: &Input) -> Option<i64> {
    // SAFETY: the context and its I/O are open while borrowed.
    let size = unsafe { ffi::avio_size((*input.as_ptr()).pb) };
    (size > 0).then_some(size)
}
