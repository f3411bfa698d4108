//! FFmpeg custom I/O: a demuxer reading from any [`SourceRead`] through read
//! and seek callbacks, so the container is parsed straight from HTTP range
//! reads (or a file) without FFmpeg's own networking.
//!
//! This is the one place that owns raw FFmpeg I/O pointers. Errors raised by
//! the reader inside a callback are kept and handed back to the caller, so a
//! source 404, a timeout or a byte limit is reported as such rather than as
//! FFmpeg's generic "I/O error".

use std::io::{self, SeekFrom};
use std::mem::ManuallyDrop;
use std::os::raw::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::time::Instant;

use ffmpeg_next::ffi;
use ffmpeg_next::format::context::Input;

use super::{Limits, MediaError};
use crate::source::{SourceError, SourceRead};

/// Size of FFmpeg's I/O buffer; the reader below it serves reads from its
/// own block cache, so this only sets the granularity of callbacks.
const IO_BUFFER_SIZE: usize = 64 * 1024;
/// Used when the container has to be probed for stream parameters (MPEG-TS,
/// FLV): far below FFmpeg's 5 MB default, which would cost a whole second of
/// a 1080p stream fetched over the network.
const PROBE_SIZE: i64 = 1024 * 1024;
const ANALYZE_DURATION_US: i64 = 2_000_000;

/// What the callbacks share with the demuxer owner.
struct CallbackState {
    reader: Box<dyn SourceRead>,
    /// The first error the reader raised, kept for the caller.
    failure: Option<MediaError>,
    bytes_read: u64,
    max_bytes: u64,
    deadline: Instant,
}

/// An open container reading through custom I/O. Not `Send`: it is created,
/// used and dropped on one blocking thread.
pub struct Demuxer {
    input: ManuallyDrop<Input>,
    avio: *mut ffi::AVIOContext,
    state: *mut CallbackState,
}

impl Demuxer {
    /// Opens the container (reads its header and, where it holds one, its index).
    pub fn open(mut reader: Box<dyn SourceRead>, limits: &Limits) -> Result<Demuxer, MediaError> {
        super::mp4::prefetch_index(reader.as_mut()).map_err(io_to_media)?;
        let state = Box::into_raw(Box::new(CallbackState {
            reader,
            failure: None,
            bytes_read: 0,
            max_bytes: limits.max_source_bytes,
            deadline: limits.deadline,
        }));
        // SAFETY: the buffer and AVIO context are allocated by FFmpeg and freed
        // by `free_avio` exactly once, on every path. `state` outlives the
        // format context: it is freed after it, in `Drop` or below.
        unsafe {
            let buffer = ffi::av_malloc(IO_BUFFER_SIZE) as *mut u8;
            if buffer.is_null() {
                drop(Box::from_raw(state));
                return Err(MediaError::Internal(
                    "out of memory for the I/O buffer".into(),
                ));
            }
            let avio = ffi::avio_alloc_context(
                buffer,
                IO_BUFFER_SIZE as c_int,
                0,
                state as *mut c_void,
                Some(read_callback),
                None,
                Some(seek_callback),
            );
            if avio.is_null() {
                ffi::av_free(buffer as *mut c_void);
                drop(Box::from_raw(state));
                return Err(MediaError::Internal(
                    "out of memory for the I/O context".into(),
                ));
            }
            let mut fmt = ffi::avformat_alloc_context();
            if fmt.is_null() {
                free_avio(avio);
                drop(Box::from_raw(state));
                return Err(MediaError::Internal(
                    "out of memory for the format context".into(),
                ));
            }
            (*fmt).pb = avio;
            (*fmt).flags |= ffi::AVFMT_FLAG_CUSTOM_IO as c_int;
            (*fmt).interrupt_callback = ffi::AVIOInterruptCB {
                callback: Some(interrupt_callback),
                opaque: state as *mut c_void,
            };
            (*fmt).probesize = PROBE_SIZE;
            (*fmt).max_analyze_duration = ANALYZE_DURATION_US;
            // On failure avformat_open_input frees `fmt` (but not our I/O).
            let ret = ffi::avformat_open_input(&mut fmt, ptr::null(), ptr::null(), ptr::null_mut());
            if ret < 0 {
                let failure = (*state).failure.take();
                free_avio(avio);
                drop(Box::from_raw(state));
                return Err(failure.unwrap_or_else(|| {
                    MediaError::Unreadable(format!(
                        "unknown container format ({})",
                        ffmpeg_next::Error::from(ret)
                    ))
                }));
            }
            Ok(Demuxer {
                input: ManuallyDrop::new(Input::wrap(fmt)),
                avio,
                state,
            })
        }
    }

    pub fn input(&self) -> &Input {
        &self.input
    }

    pub fn input_mut(&mut self) -> &mut Input {
        &mut self.input
    }

    /// The error the source raised during the last FFmpeg call, if any: a
    /// fetch failure, the byte limit, or the deadline.
    pub fn take_failure(&mut self) -> Option<MediaError> {
        // SAFETY: callbacks only run inside FFmpeg calls made through `self`,
        // so no callback holds `state` now.
        unsafe { (*self.state).failure.take() }
    }

    /// Passes a read-ahead hint to the source (see [`SourceRead::prefetch`]).
    pub fn prefetch(&mut self, start: u64, end: u64) -> Result<(), MediaError> {
        // SAFETY: as in `take_failure`: no FFmpeg call is running.
        let state = unsafe { &mut *self.state };
        state.reader.prefetch(start, end).map_err(io_to_media)
    }

    /// Reads stream parameters from the first packets, for containers whose
    /// header does not carry them. Bounded by the small probe size above.
    pub fn find_stream_info(&mut self) -> Result<(), MediaError> {
        // SAFETY: the context is open and owned by `self`.
        let ret =
            unsafe { ffi::avformat_find_stream_info(self.input.as_mut_ptr(), ptr::null_mut()) };
        if let Some(failure) = self.take_failure() {
            return Err(failure);
        }
        if ret < 0 {
            return Err(MediaError::Unreadable(format!(
                "cannot read stream parameters ({})",
                ffmpeg_next::Error::from(ret)
            )));
        }
        Ok(())
    }
}

impl Drop for Demuxer {
    fn drop(&mut self) {
        // SAFETY: the format context is closed first (it does not touch `pb`
        // because of AVFMT_FLAG_CUSTOM_IO), then the I/O context, then the
        // state the callbacks used. Each is freed once.
        unsafe {
            ManuallyDrop::drop(&mut self.input);
            free_avio(self.avio);
            drop(Box::from_raw(self.state));
        }
    }
}

unsafe fn free_avio(mut avio: *mut ffi::AVIOContext) {
    if !avio.is_null() {
        ffi::av_freep(&mut (*avio).buffer as *mut *mut u8 as *mut c_void);
        ffi::avio_context_free(&mut avio);
    }
}

const EIO: c_int = 5;

fn record(state: &mut CallbackState, failure: MediaError) -> c_int {
    if state.failure.is_none() {
        state.failure = Some(failure);
    }
    ffi::AVERROR(EIO)
}

fn io_to_media(err: io::Error) -> MediaError {
    match err.get_ref().and_then(|e| e.downcast_ref::<SourceError>()) {
        Some(_) => {
            let inner = err.into_inner().expect("checked above");
            MediaError::Source(*inner.downcast::<SourceError>().expect("checked above"))
        }
        None => MediaError::Source(SourceError::Io(err.to_string())),
    }
}

unsafe extern "C" fn read_callback(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    // SAFETY: `opaque` is the CallbackState given to avio_alloc_context; FFmpeg
    // calls back on the thread that called it, one call at a time.
    let state = &mut *(opaque as *mut CallbackState);
    if size <= 0 {
        return 0;
    }
    if state.failure.is_some() {
        return ffi::AVERROR(EIO);
    }
    if Instant::now() >= state.deadline {
        return record(state, MediaError::Timeout);
    }
    if state.bytes_read >= state.max_bytes {
        let limit = state.max_bytes;
        return record(state, MediaError::SourceTooLarge { limit });
    }
    let want = (size as u64).min(state.max_bytes - state.bytes_read) as usize;
    let out = std::slice::from_raw_parts_mut(buf, want);
    let result = catch_unwind(AssertUnwindSafe(|| state.reader.read(out)));
    match result {
        Ok(Ok(0)) => ffi::AVERROR_EOF,
        Ok(Ok(n)) => {
            state.bytes_read += n as u64;
            n as c_int
        }
        Ok(Err(e)) => record(state, io_to_media(e)),
        Err(_) => record(
            state,
            MediaError::Internal("the source reader panicked".into()),
        ),
    }
}

unsafe extern "C" fn seek_callback(opaque: *mut c_void, offset: i64, whence: c_int) -> i64 {
    // SAFETY: as in `read_callback`.
    let state = &mut *(opaque as *mut CallbackState);
    if whence & ffi::AVSEEK_SIZE as c_int != 0 {
        return state.reader.size() as i64;
    }
    let pos = match whence & !(ffi::AVSEEK_FORCE as c_int) {
        0 if offset >= 0 => SeekFrom::Start(offset as u64),
        1 => SeekFrom::Current(offset),
        2 => SeekFrom::End(offset),
        _ => return ffi::AVERROR(22) as i64, // EINVAL
    };
    match catch_unwind(AssertUnwindSafe(|| state.reader.seek(pos))) {
        Ok(Ok(p)) => p as i64,
        Ok(Err(e)) => record(state, io_to_media(e)) as i64,
        Err(_) => record(
            state,
            MediaError::Internal("the source reader panicked".into()),
        ) as i64,
    }
}

unsafe extern "C" fn interrupt_callback(opaque: *mut c_void) -> c_int {
    // SAFETY: only reads `deadline`, which never changes after creation.
    let state = &*(opaque as *const CallbackState);
    (Instant::now() >= state.deadline) as c_int
}
