//! FFmpeg custom I/O: a demuxer reading from any [`SourceRead`] through read
//! and seek callbacks, so the container is parsed straight from HTTP range
//! reads (or a file) without FFmpeg's own networking.
//!
//! This is the one place that owns raw FFmpeg I/O pointers. Errors raised by
//! the reader inside a callback are kept and handed back to the caller, so a
//! source 404, a timeout or a byte limit is reported as such rather than as
//! FFmpeg's generic "I/O error".
//!
//! FFmpeg is given only what thumbd needs, by construction rather than by
//! its defaults: only the demuxers of the containers thumbd documents
//! ([`FORMATS`]), only the decoders of the codecs it documents
//! ([`DECODERS`]), and no way to open anything else from inside a container
//! (a playlist's segments, a concat list's files, a reference movie's
//! data): every nested open is refused, and the protocol whitelist is one
//! no protocol is on.

use std::ffi::CStr;
use std::io::{self, SeekFrom};
use std::mem::ManuallyDrop;
use std::os::raw::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::time::Instant;

use ffmpeg_next::ffi;
use ffmpeg_next::format::context::Input;

use crate::media::{Limits, MediaError};
use crate::source::{SourceError, SourceRead};

/// Size of FFmpeg's I/O buffer; the reader below it serves reads from its
/// own block cache, so this only sets the granularity of callbacks.
const IO_BUFFER_SIZE: usize = 64 * 1024;
/// Used when the container has to be probed for stream parameters (MPEG-TS,
/// FLV): far below FFmpeg's 5 MB default, which would cost a whole second of
/// a 1080p stream fetched over the network.
const PROBE_SIZE: i64 = 1024 * 1024;
const ANALYZE_DURATION_US: i64 = 2_000_000;
/// The same for a video of which only the first frame is wanted.
const START_ANALYZE_DURATION_US: i64 = 200_000;

/// The demuxers thumbd opens (FFmpeg's names): MP4/MOV/3GP (also
/// fragmented), Matroska/WebM, MPEG-TS, MPEG-PS, FLV, AVI, Ogg, ASF (WMV),
/// DV and MXF. Each has a fixture and a test (tests/frames.rs). Anything
/// else (HLS and DASH playlists, concat lists, image sequences and single
/// images, raw streams, ...) is refused as an unsupported container.
pub const FORMATS: &CStr =
    c"mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,mpegts,mpeg,flv,avi,ogg,asf,dv,mxf";

/// The decoders thumbd uses (FFmpeg's names): H.264, HEVC, VP8, VP9, AV1,
/// MPEG-1/2, MPEG-4 part 2 (Xvid, DivX 4/5), H.263, Sorenson Spark, ProRes,
/// PNG and Motion JPEG (intra-only codecs found in MOV and AVI), Theora,
/// MS-MPEG-4 v2 and v3 (DivX 3), Windows Media Video 7, 8 and 9 (WMV1-3),
/// Cinepak, DV and QuickTime Animation (qtrle). Each has a fixture and a
/// test. Left out on purpose, though FFmpeg decodes them: MS-MPEG-4 v1 and VC-1 advanced profile
/// (WVC1), for which no encoder and no sample with a licence for tests
/// exists here, so nothing would show they work.
pub const DECODERS: &CStr = c"h264,hevc,vp8,libvpx,vp9,libvpx-vp9,av1,libdav1d,libaom-av1,\
mpeg1video,mpeg2video,mpegvideo,mpeg4,h263,h263p,flv,prores,png,mjpeg,theora,\
msmpeg4v2,msmpeg4,wmv1,wmv2,wmv3,cinepak,dvvideo,qtrle";

/// A protocol whitelist no protocol is on, for contexts that bypass
/// `io_open` (nested contexts copy it).
const NO_PROTOCOLS: &CStr = c"none";

/// Which demuxers [`Demuxer::open_with`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formats {
    /// [`FORMATS`], probed: what every render uses.
    Documented,
    /// This demuxer, not probed and not on the list: only for tests that
    /// show the other defences (nested opens) hold on their own.
    ForcedForTests(&'static CStr),
}

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
    /// Opens the container (reads its header and, where it holds one, its
    /// index), if it is one of the documented [`FORMATS`].
    pub fn open(reader: Box<dyn SourceRead>, limits: &Limits) -> Result<Demuxer, MediaError> {
        Demuxer::open_with(reader, limits, Formats::Documented)
    }

    /// As [`Demuxer::open`], with a choice of demuxers.
    pub fn open_with(
        mut reader: Box<dyn SourceRead>,
        limits: &Limits,
        formats: Formats,
    ) -> Result<Demuxer, MediaError> {
        crate::media::mp4::prefetch_index(reader.as_mut()).map_err(io_to_media)?;
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
            if (*state).reader.start_only() {
                // Only the first frame is wanted: the stream parameters
                // come with it, and no frame rate is estimated from the
                // frames after it (which would read a second or two more).
                (*fmt).fps_probe_size = 0;
                (*fmt).max_analyze_duration = START_ANALYZE_DURATION_US;
            }
            // Freed with the context (they are its AVOptions).
            let forced = match formats {
                Formats::Documented => {
                    (*fmt).format_whitelist = ffi::av_strdup(FORMATS.as_ptr());
                    ptr::null()
                }
                Formats::ForcedForTests(name) => ffi::av_find_input_format(name.as_ptr()),
            };
            (*fmt).codec_whitelist = ffi::av_strdup(DECODERS.as_ptr());
            (*fmt).protocol_whitelist = ffi::av_strdup(NO_PROTOCOLS.as_ptr());
            (*fmt).io_open = Some(refuse_nested_open);
            // On failure avformat_open_input frees `fmt` (but not our I/O).
            let ret = ffi::avformat_open_input(&mut fmt, ptr::null(), forced, ptr::null_mut());
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

    /// Lends the source to `f` between FFmpeg calls (to read a header FFmpeg
    /// keeps to itself); `f` must leave the reader where it found it, since
    /// FFmpeg's buffer goes on from there.
    pub fn with_reader<T>(&mut self, f: impl FnOnce(&mut dyn SourceRead) -> T) -> T {
        // SAFETY: as in `take_failure`: no FFmpeg call is running.
        let state = unsafe { &mut *self.state };
        f(state.reader.as_mut())
    }

    /// Whether every seek goes to the reader. By default FFmpeg reaches a
    /// target up to its buffer plus 32 KiB ahead by reading through the
    /// gap, which fetches it: reading keyframes whose packets were
    /// prefetched a few KiB apart then read the whole file between them.
    pub fn seek_directly(&mut self, on: bool) {
        // SAFETY: the I/O context is owned by `self` and no FFmpeg call is
        // running; `direct` is a plain public field of it.
        unsafe { (*self.avio).direct = c_int::from(on) };
    }

    /// Passes several read-ahead hints at once (see [`SourceRead::prefetch_many`]).
    pub fn prefetch_many(&mut self, ranges: &[(u64, u64)]) -> Result<(), MediaError> {
        // SAFETY: as in `take_failure`: no FFmpeg call is running.
        let state = unsafe { &mut *self.state };
        state.reader.prefetch_many(ranges).map_err(io_to_media)
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
        if state.reader.start_only() {
            return ffi::AVERROR(38) as i64; // ENOSYS: unknown
        }
        return state.reader.size() as i64;
    }
    // (Nor may the end be found by seeking there.)
    if whence & !(ffi::AVSEEK_FORCE as c_int) == 2 && state.reader.start_only() {
        return ffi::AVERROR(38) as i64;
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

/// Every open a demuxer attempts from inside a container (HLS segments,
/// concat entries, MOV data references, ...) is refused: thumbd reads one
/// source, through its own I/O, and nothing it names.
unsafe extern "C" fn refuse_nested_open(
    _s: *mut ffi::AVFormatContext,
    _pb: *mut *mut ffi::AVIOContext,
    url: *const std::os::raw::c_char,
    _flags: c_int,
    _options: *mut *mut ffi::AVDictionary,
) -> c_int {
    const EPERM: c_int = 1;
    NESTED_OPENS_REFUSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let url = if url.is_null() {
        std::borrow::Cow::Borrowed("")
    } else {
        // SAFETY: FFmpeg passes a NUL-terminated string, valid for the call.
        CStr::from_ptr(url).to_string_lossy()
    };
    tracing::warn!(%url, "a container asked to open another resource; refused");
    ffi::AVERROR(EPERM)
}

/// Nested opens refused since start (for tests).
static NESTED_OPENS_REFUSED: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

unsafe extern "C" fn interrupt_callback(opaque: *mut c_void) -> c_int {
    // SAFETY: only reads `deadline`, which never changes after creation.
    let state = &*(opaque as *const CallbackState);
    (Instant::now() >= state.deadline) as c_int
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::Duration;

    use super::*;

    fn limits() -> Limits {
        Limits {
            max_frame_pixels: 40_000_000,
            max_source_bytes: 1 << 20,
            deadline: Instant::now() + Duration::from_secs(10),
            decoder_threads: 1,
            best_frame_scan_frames: crate::domain::DEFAULT_SCAN_FRAMES,
        }
    }

    /// A listener that counts who connects to it.
    fn bait() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    fn connections(listener: &TcpListener) -> usize {
        std::iter::from_fn(|| listener.accept().ok()).count()
    }

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> Box<dyn SourceRead> {
        let path = dir.path().join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        Box::new(std::fs::File::open(path).unwrap())
    }

    /// A concat list naming a real video next to it, read by FFmpeg's
    /// concat demuxer (forced: it is not on the list). The ffmpeg tools
    /// open the video through it; thumbd's demuxer does not, because the
    /// nested context it opens inherits a protocol whitelist no protocol is
    /// on. A playlist read by the HLS demuxer fetches nothing either.
    #[test]
    fn nested_opens_are_refused_whatever_the_demuxer() {
        crate::init_ffmpeg();
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/samples/demo.mp4"),
            dir.path().join("demo.mp4"),
        )
        .unwrap();
        let list = "ffconcat version 1.0\nfile 'demo.mp4'\n";
        file(&dir, "list.txt", list);
        let probed = std::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-f",
                "concat",
                "-i",
                "list.txt",
                "-show_entries",
            ])
            .args(["stream=codec_name", "-of", "csv=p=0"])
            .current_dir(dir.path())
            .output()
            .expect("ffprobe (make test installs the ffmpeg CLI)");
        assert_eq!(
            String::from_utf8_lossy(&probed.stdout).trim(),
            "h264",
            "the ffmpeg tools open the video the list names"
        );
        // Run from the list's folder, as ffprobe was.
        let cwd = std::env::current_dir().unwrap();
        std::env::set_current_dir(dir.path()).unwrap();
        let opened = Demuxer::open_with(
            file(&dir, "list.txt", list),
            &limits(),
            Formats::ForcedForTests(c"concat"),
        );
        std::env::set_current_dir(cwd).unwrap();
        assert!(
            opened
                .as_ref()
                .map_or(true, |d| d.input().nb_streams() == 0),
            "thumbd opened the video a concat list names"
        );

        let (listener, port) = bait();
        for segment in [
            format!("http://127.0.0.1:{port}/seg0.ts"),
            format!("tee:http://127.0.0.1:{port}/seg0.ts"),
            "subfile,,start,0,end,100,,:demo.mp4".to_owned(),
        ] {
            let playlist = format!(
                "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\n{segment}\n#EXT-X-ENDLIST\n"
            );
            let opened = Demuxer::open_with(
                file(&dir, "p.m3u8", &playlist),
                &limits(),
                Formats::ForcedForTests(c"hls"),
            );
            assert!(
                opened.map_or(true, |d| d.input().nb_streams() == 0),
                "{segment}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            connections(&listener),
            0,
            "nothing connected to the address the playlists name"
        );
    }

    /// With the documented demuxers only, a playlist, a concat list and a
    /// still image are not containers thumbd opens.
    #[test]
    fn only_documented_containers_open() {
        crate::init_ffmpeg();
        let dir = tempfile::tempdir().unwrap();
        let (listener, port) = bait();
        let hls = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nhttp://127.0.0.1:{port}/seg0.ts\n#EXT-X-ENDLIST\n"
        );
        let concat = format!("ffconcat version 1.0\nfile 'http://127.0.0.1:{port}/a.mp4'\n");
        for (name, text) in [("hls.mp4", hls.as_str()), ("concat.mp4", concat.as_str())] {
            match Demuxer::open(file(&dir, name, text), &limits()) {
                Err(MediaError::Unreadable(_)) => {}
                Err(e) => panic!("{name}: {e}"),
                Ok(d) => panic!("{name}: opened as {}", d.input().format().name()),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(connections(&listener), 0);
    }
}
