//! The access log (one line per request, target `thumbd::access`) and the
//! log sink every log line goes through.
//!
//! Why not a `tracing` event: with `tracing`'s formatter the access line
//! cost a cache hit about a third of its throughput (bench/RESULTS.md): a
//! visitor call and a `fmt::Write` round per field, a line allocated per
//! event for the logging thread, a wake-up of that thread per batch. Here
//! the line is written by hand into a reusable per-thread buffer (integers
//! by `itoa`, the duration by `zmij`), byte for byte the line `tracing`'s
//! text or JSON formatter wrote (the tests pin both), and appended under a
//! short lock to the [`LogSink`]'s queue, which a writer thread hands to
//! stderr in batches.
//!
//! The sink carries `tracing`'s own lines too (`main.rs` makes it the fmt
//! layer's writer), so access lines and other log lines share one queue:
//! lines are never torn or interleaved, and they come out in the order they
//! were logged (a connection's requests in order, whichever thread served
//! each). `THUMBD_LOG` still decides: the line is written only when the
//! filter enables an `INFO` event of target `thumbd::access`.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::Level;

use crate::config::LogFormat;

/// The longest a line waits in the queue: the writer collects lines for
/// this long after the first one of a batch, then writes them with one
/// write(2). Short enough that a quiet server's lines appear at once to a
/// person tailing the log; long enough that under load a write carries
/// hundreds of lines and loggers never wake the writer.
const FLUSH_INTERVAL: Duration = Duration::from_millis(20);

/// Queued bytes past which the writer is woken before its interval ends,
/// so a batch stays a size one write handles well.
const EARLY_WRITE_BYTES: usize = 1 << 20;

/// Queued bytes past which loggers wait for the writer (about 40,000
/// access lines, half a second of the hit benchmark's rate): the queue's
/// memory is bounded, and no line is ever dropped. A logger that waits
/// holds its thread (an async worker's, too), as `tracing`'s non-lossy
/// writer did; an operator who would rather lose lines than wait on a
/// stalled disk drops the access line with `THUMBD_LOG`.
const MAX_QUEUED_BYTES: usize = 8 << 20;

/// Capacity a written batch's buffer keeps for the next one; above it the
/// buffer shrinks back, so a burst does not keep its memory.
const KEEP_CAPACITY: usize = 2 << 20;

/// What one request's access-log line says.
#[derive(Debug, Clone, Copy)]
pub(super) struct AccessLine<'a> {
    /// `X-Request-Id`, the client's or a new one.
    pub request_id: &'a str,
    pub method: &'a str,
    /// The path and query, `token` values already redacted.
    pub path: &'a str,
    pub status: u16,
    /// Body bytes, 0 where the size is not known up front.
    pub bytes: u64,
    /// From the request's start to its answer's head.
    pub duration_ms: f64,
    /// `hit`, `shared`, `miss` or `-`.
    pub cache: &'a str,
}

/// Where access lines go once [`route_access_lines`] has run: the sink and
/// the line's format. Unset (tests of the library, a terminal's coloured
/// text), access lines are `tracing` events.
static ACCESS: OnceLock<(LogSink, LogFormat)> = OnceLock::new();

/// Sends access lines, formatted by hand as `format`, to `sink` instead of
/// through `tracing`. Called once at start-up by `main.rs`; a second call
/// changes nothing. Coloured text (a terminal) is left to `tracing`.
pub fn route_access_lines(sink: LogSink, format: LogFormat) {
    let _ = ACCESS.set((sink, format));
}

/// Whether `THUMBD_LOG` (the `tracing` filter) wants access lines: an
/// `INFO` event of target `thumbd::access` with the line's fields. Checked
/// before a line is put together, so a filtered-out line costs nothing.
pub(super) fn enabled() -> bool {
    tracing::enabled!(
        kind: tracing::metadata::Kind::EVENT,
        target: "thumbd::access",
        Level::INFO,
        { message, request_id, method, path, status, bytes, duration_ms, cache }
    )
}

/// Logs one request's line: into the sink where [`route_access_lines`]
/// routed access lines, else as a `tracing` event. The caller has asked
/// [`enabled`].
pub(super) fn log(line: &AccessLine<'_>) {
    let Some((sink, format)) = ACCESS.get() else {
        return event(line);
    };
    let write = |buf: &mut Vec<u8>, clock: &mut Clock| {
        buf.clear();
        format_line(buf, clock, *format, line, SystemTime::now());
        sink.push(buf, false);
    };
    let written = SCRATCH
        .try_with(|scratch| {
            let mut scratch = scratch.try_borrow_mut().ok()?;
            let Scratch { line, clock } = &mut *scratch;
            write(line, clock);
            Some(())
        })
        .ok()
        .flatten();
    if written.is_none() {
        // The thread is exiting (its buffer is gone): a buffer of its own.
        write(&mut Vec::new(), &mut Clock::default());
    }
}

/// The line as a `tracing` event, as every access line was before the sink.
fn event(line: &AccessLine<'_>) {
    tracing::event!(
        target: "thumbd::access",
        Level::INFO,
        request_id = line.request_id,
        method = %line.method,
        path = %line.path,
        status = line.status,
        bytes = line.bytes,
        duration_ms = line.duration_ms,
        cache = line.cache,
        "request"
    );
}

thread_local! {
    /// Each logging thread's line buffer and clock, reused line after line.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        line: Vec::with_capacity(512),
        clock: Clock::default(),
    });
}

/// A thread's reusable state for formatting lines.
struct Scratch {
    line: Vec<u8>,
    clock: Clock,
}

/// The date and time to the second of the last line, as text: most lines
/// fall in the same second as the one before, and only their microseconds
/// need writing.
#[derive(Default)]
struct Clock {
    /// Seconds since the epoch that `text` shows; `None` before the first line.
    secs: Option<i64>,
    /// `YYYY-MM-DDTHH:MM:SS` (longer for a year past 9999 or before 0).
    text: Vec<u8>,
}

impl Clock {
    /// Writes `now` as `tracing`'s `SystemTime` timer does: RFC 3339 in UTC
    /// with microseconds, `2026-11-24T23:41:07.512345Z`.
    fn write(&mut self, buf: &mut Vec<u8>, now: SystemTime) {
        let (secs, nanos) = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => {
                let d = e.duration();
                match d.subsec_nanos() {
                    0 => (-(d.as_secs() as i64), 0),
                    n => (-(d.as_secs() as i64) - 1, 1_000_000_000 - n),
                }
            }
        };
        if self.secs != Some(secs) {
            self.text.clear();
            civil_time(&mut self.text, secs);
            self.secs = Some(secs);
        }
        buf.extend_from_slice(&self.text);
        let micros = nanos / 1_000;
        buf.push(b'.');
        push_digits(buf, micros, 6);
        buf.push(b'Z');
    }
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SS` (proleptic Gregorian,
/// UTC; the year as `tracing` writes it: `+12345` past 9999, `-0001` before
/// year 0).
fn civil_time(buf: &mut Vec<u8>, secs: i64) {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400) as u32;
    // Howard Hinnant's days-to-civil, in eras of 400 years from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    if (0..=9999).contains(&year) {
        push_digits(buf, year as u32, 4);
    } else {
        // Never on a working clock; std's formatter then, as `tracing` does.
        let _ = if year > 9999 {
            write!(buf, "+{year}")
        } else {
            write!(buf, "{year:05}")
        };
    }
    buf.push(b'-');
    push_digits(buf, month, 2);
    buf.push(b'-');
    push_digits(buf, day, 2);
    buf.push(b'T');
    push_digits(buf, of_day / 3_600, 2);
    buf.push(b':');
    push_digits(buf, of_day / 60 % 60, 2);
    buf.push(b':');
    push_digits(buf, of_day % 60, 2);
}

/// `n` as exactly `width` decimal digits, zero-padded (`n` fits).
fn push_digits(buf: &mut Vec<u8>, mut n: u32, width: usize) {
    let start = buf.len();
    buf.resize(start + width, b'0');
    for slot in buf[start..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Writes `line` as `format` at time `now`, with its newline: the bytes
/// `tracing`'s fmt layer wrote for the access event, as `main.rs`
/// configures it (text without colour; JSON flattened, without spans).
fn format_line(
    buf: &mut Vec<u8>,
    clock: &mut Clock,
    format: LogFormat,
    line: &AccessLine<'_>,
    now: SystemTime,
) {
    let mut int = itoa::Buffer::new();
    match format {
        LogFormat::Text => {
            clock.write(buf, now);
            buf.extend_from_slice(b"  INFO thumbd::access: request request_id=");
            push_debug_str(buf, line.request_id);
            buf.extend_from_slice(b" method=");
            buf.extend_from_slice(line.method.as_bytes());
            buf.extend_from_slice(b" path=");
            buf.extend_from_slice(line.path.as_bytes());
            buf.extend_from_slice(b" status=");
            buf.extend_from_slice(int.format(line.status).as_bytes());
            buf.extend_from_slice(b" bytes=");
            buf.extend_from_slice(int.format(line.bytes).as_bytes());
            buf.extend_from_slice(b" duration_ms=");
            push_debug_f64(buf, line.duration_ms);
            buf.extend_from_slice(b" cache=");
            push_debug_str(buf, line.cache);
            buf.push(b'\n');
        }
        LogFormat::Json => {
            buf.extend_from_slice(b"{\"timestamp\":\"");
            clock.write(buf, now);
            buf.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\",\"request_id\":");
            push_json_str(buf, line.request_id);
            buf.extend_from_slice(b",\"method\":");
            push_json_str(buf, line.method);
            buf.extend_from_slice(b",\"path\":");
            push_json_str(buf, line.path);
            buf.extend_from_slice(b",\"status\":");
            buf.extend_from_slice(int.format(line.status).as_bytes());
            buf.extend_from_slice(b",\"bytes\":");
            buf.extend_from_slice(int.format(line.bytes).as_bytes());
            buf.extend_from_slice(b",\"duration_ms\":");
            push_json_f64(buf, line.duration_ms);
            buf.extend_from_slice(b",\"cache\":");
            push_json_str(buf, line.cache);
            buf.extend_from_slice(b",\"target\":\"thumbd::access\"}\n");
        }
    }
}

/// `s` as Rust's `{:?}` writes it (what `tracing`'s text format does with
/// a string field): quoted; printable ASCII without `"` and `\` as it is,
/// anything else through std's escaping.
fn push_debug_str(buf: &mut Vec<u8>, s: &str) {
    // A fold, not `all`: no early exit, so the compiler checks 16 or 32
    // bytes at a time (an access line's strings are plain).
    let plain = s.bytes().fold(true, |plain, b| {
        plain & (0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\')
    });
    if plain {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        let _ = write!(buf, "{s:?}");
    }
}

/// `v` as Rust's `{:?}` writes it: `zmij`'s shortest digits are the same
/// digits, and its layout the same from 1e-4 up to 1e16 (a request's
/// milliseconds); std's formatter outside that.
fn push_debug_f64(buf: &mut Vec<u8>, v: f64) {
    if v == 0.0 || (1e-4..1e16).contains(&v.abs()) {
        buf.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
    } else {
        let _ = write!(buf, "{v:?}");
    }
}

/// `v` as `serde_json` writes it (with `zmij`, as `serde_json` does;
/// `null` when not finite).
fn push_json_f64(buf: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        buf.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
    } else {
        buf.extend_from_slice(b"null");
    }
}

/// `s` as a JSON string, escaped as `serde_json` escapes it: `"`, `\` and
/// control characters below 0x20 (`\b`, `\t`, `\n`, `\f`, `\r` by name,
/// others as `\u00xx`); everything else, non-ASCII included, as it is.
fn push_json_str(buf: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.push(b'"');
    let bytes = s.as_bytes();
    // Most strings need no escape: checked 16 or 32 bytes at a time (a
    // fold the compiler vectorizes), then copied whole.
    let plain = bytes.iter().fold(true, |plain, &b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        buf.extend_from_slice(bytes);
        buf.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(escape);
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

/// Where every log line goes on its way to stderr: a queue of whole lines,
/// written by a thread of its own in batches. A line is queued whole under
/// a lock held for a copy, so lines never tear and keep the order they were
/// logged in. The writer sleeps until a line arrives, collects for up to
/// 20 ms (less when the queue passes 1 MiB or a line other than an access
/// line arrives: a warning should not wait), and writes the batch with one
/// write. Past 8 MiB queued, loggers
/// wait; nothing is dropped. [`LogGuard`] writes what is left at exit.
///
/// Cloned cheaply; it is also `tracing`'s writer ([`MakeWriter`]), so
/// `tracing`'s lines share the queue.
///
/// [`MakeWriter`]: tracing_subscriber::fmt::MakeWriter
#[derive(Clone)]
pub struct LogSink {
    shared: Arc<Shared>,
}

/// Keep until exit: dropping it writes every queued line and stops the
/// writer thread; lines logged after that are written at once, by the
/// thread that logs them.
pub struct LogGuard {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

/// The queue and the signals between loggers and the writer.
struct Shared {
    state: Mutex<Queue>,
    /// Wakes the writer: a first line, an urgent one, a full batch, exit.
    wake: Condvar,
    /// Wakes loggers waiting for room.
    room: Condvar,
}

/// What loggers and the writer share, under [`Shared::state`].
struct Queue {
    /// Whole lines waiting for the writer.
    lines: Vec<u8>,
    /// The writer sleeps until a line arrives (no deadline): the next
    /// line must wake it.
    writer_idle: bool,
    /// The writer has been asked to write now rather than at the end of its
    /// interval (set once per batch, so loggers wake it once).
    kicked: bool,
    /// Loggers waiting for room.
    waiting: usize,
    /// [`LogGuard`] was dropped: write what is queued and stop.
    closing: bool,
    /// The output, once the writer has stopped: loggers write to it
    /// themselves, under the lock.
    out: Option<Box<dyn Write + Send>>,
}

impl LogSink {
    /// Starts the writer thread (`thumbd-log`) writing to `out`.
    pub fn start(out: impl Write + Send + 'static) -> (LogSink, LogGuard) {
        let shared = Arc::new(Shared {
            state: Mutex::new(Queue {
                lines: Vec::with_capacity(64 * 1024),
                writer_idle: false,
                kicked: false,
                waiting: 0,
                closing: false,
                out: None,
            }),
            wake: Condvar::new(),
            room: Condvar::new(),
        });
        let out: Box<dyn Write + Send> = Box::new(out);
        let writer = std::thread::Builder::new()
            .name("thumbd-log".into())
            .spawn({
                let shared = shared.clone();
                move || write_batches(&shared, out)
            })
            .expect("spawn the log writer thread");
        (
            LogSink {
                shared: shared.clone(),
            },
            LogGuard {
                shared,
                writer: Some(writer),
            },
        )
    }

    /// Queues `line` (one or more whole lines). `urgent`: wake the writer
    /// now rather than at the end of its interval.
    fn push(&self, line: &[u8], urgent: bool) {
        let shared = &*self.shared;
        let mut queue = shared.lock();
        while queue.lines.len() >= MAX_QUEUED_BYTES && queue.out.is_none() {
            queue.waiting += 1;
            if !queue.kicked {
                queue.kicked = true;
                shared.wake.notify_one();
            }
            queue = shared
                .room
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
            queue.waiting -= 1;
        }
        if let Some(out) = queue.out.as_mut() {
            // The writer has stopped (exit): write it now.
            let _ = out.write_all(line).and_then(|()| out.flush());
            return;
        }
        queue.lines.extend_from_slice(line);
        let wake = if queue.writer_idle {
            queue.writer_idle = false;
            true
        } else {
            false
        };
        let kick = !queue.kicked && (urgent || queue.lines.len() >= EARLY_WRITE_BYTES);
        if kick {
            queue.kicked = true;
        }
        drop(queue);
        if wake || kick {
            shared.wake.notify_one();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer thread: sleeps until a line is queued, collects for up to
/// [`FLUSH_INTERVAL`] unless kicked, writes the batch; at `closing`, writes
/// what is left and hands `out` to the loggers.
fn write_batches(shared: &Shared, mut out: Box<dyn Write + Send>) {
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut queue = shared.lock();
    loop {
        while queue.lines.is_empty() && !queue.closing {
            queue.writer_idle = true;
            queue = shared
                .wake
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
        queue.writer_idle = false;
        if queue.lines.is_empty() {
            break; // closing, and nothing left
        }
        let deadline = Instant::now() + FLUSH_INTERVAL;
        while !queue.kicked && !queue.closing {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            queue = shared
                .wake
                .wait_timeout(queue, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        queue.kicked = false;
        std::mem::swap(&mut queue.lines, &mut batch);
        if queue.waiting > 0 {
            shared.room.notify_all();
        }
        drop(queue);
        // Nowhere to report a failed write to but the output that failed.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if batch.capacity() > KEEP_CAPACITY {
            batch.shrink_to(KEEP_CAPACITY);
        }
        queue = shared.lock();
    }
    queue.out = Some(out);
    if queue.waiting > 0 {
        shared.room.notify_all();
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// One `tracing` line on its way into the sink.
pub struct SinkWriter<'a>(&'a LogSink);

impl Write for SinkWriter<'_> {
    /// `tracing`'s fmt layer writes each event whole, with one call.
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.0.push(line, true);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = SinkWriter<'a>;

    fn make_writer(&'a self) -> SinkWriter<'a> {
        SinkWriter(self)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Collects what a `tracing` subscriber, or a sink, writes.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    /// A `tracing` dispatcher configured as `main.rs` configures it,
    /// writing to `capture`.
    fn dispatch(format: LogFormat, filter: &str, capture: Capture) -> tracing::Dispatch {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(capture);
        match format {
            LogFormat::Json => tracing::Dispatch::new(
                builder
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .finish(),
            ),
            LogFormat::Text => tracing::Dispatch::new(builder.with_ansi(false).finish()),
        }
    }

    /// The line `tracing`'s formatter writes for `line`, and the time just
    /// before and just after it did.
    fn through_tracing(
        format: LogFormat,
        line: &AccessLine<'_>,
    ) -> (String, SystemTime, SystemTime) {
        let capture = Capture::default();
        let dispatch = dispatch(format, "thumbd=info", capture.clone());
        let before = SystemTime::now();
        tracing::dispatcher::with_default(&dispatch, || event(line));
        let after = SystemTime::now();
        (capture.text(), before, after)
    }

    /// `out` with its RFC 3339 timestamp (27 characters) replaced by `TS`.
    fn mask_timestamp(out: &str) -> String {
        let key = "{\"timestamp\":\"";
        match out.strip_prefix(key) {
            Some(rest) => format!("{key}TS{}", &rest[27..]),
            None => format!("TS{}", &out[27..]),
        }
    }

    /// The line this module writes for `line` at `now`.
    fn by_hand(format: LogFormat, line: &AccessLine<'_>, now: SystemTime) -> String {
        let mut buf = Vec::new();
        format_line(&mut buf, &mut Clock::default(), format, line, now);
        String::from_utf8(buf).unwrap()
    }

    /// `tracing`'s line for `line` and ours match exactly: ours is written
    /// at the time `tracing`'s timestamp says (read back from its line), or
    /// at the instants either side, microseconds and all.
    fn assert_same_as_tracing(format: LogFormat, line: &AccessLine<'_>) {
        let (theirs, before, after) = through_tracing(format, line);
        let ts_at = if format == LogFormat::Json { 14 } else { 0 };
        let ts = &theirs[ts_at..ts_at + 27];
        let sub_micro = before.duration_since(UNIX_EPOCH).unwrap().subsec_nanos() % 1_000;
        let start = before - Duration::from_nanos(sub_micro.into());
        let steps = after.duration_since(start).unwrap().as_micros() as u64;
        let candidates = (0..=steps).map(|us| start + Duration::from_micros(us));
        let ours = candidates
            .map(|t| by_hand(format, line, t))
            .find(|o| &o[ts_at..ts_at + 27] == ts)
            .unwrap_or_else(|| panic!("no time gives {ts}"));
        assert_eq!(ours, theirs, "{format:?}");
    }

    const SAMPLE: AccessLine<'static> = AccessLine {
        request_id: "trace-me-42",
        method: "GET",
        path: "/v1/thumbnail/demo/private/demo.mp4.webp?width=320&token=REDACTED",
        status: 200,
        bytes: 5120,
        duration_ms: 48.2,
        cache: "miss",
    };

    /// 2026-11-24T23:41:07.512345Z.
    fn sample_time() -> SystemTime {
        UNIX_EPOCH + Duration::new(1_795_563_667, 512_345_678)
    }

    const TEXT_SAMPLE: &str = "  INFO thumbd::access: request request_id=\"trace-me-42\" \
         method=GET path=/v1/thumbnail/demo/private/demo.mp4.webp?width=320&token=REDACTED \
         status=200 bytes=5120 duration_ms=48.2 cache=\"miss\"\n";

    const JSON_SAMPLE: &str = "\",\"level\":\"INFO\",\"message\":\"request\",\
         \"request_id\":\"trace-me-42\",\"method\":\"GET\",\
         \"path\":\"/v1/thumbnail/demo/private/demo.mp4.webp?width=320&token=REDACTED\",\
         \"status\":200,\"bytes\":5120,\"duration_ms\":48.2,\"cache\":\"miss\",\
         \"target\":\"thumbd::access\"}\n";

    /// Today's lines, pinned from `tracing`'s formatter before the sink.
    #[test]
    fn tracing_wrote_these_lines() {
        let (text, ..) = through_tracing(LogFormat::Text, &SAMPLE);
        assert_eq!(mask_timestamp(&text), format!("TS{TEXT_SAMPLE}"));
        let (json, ..) = through_tracing(LogFormat::Json, &SAMPLE);
        assert_eq!(
            mask_timestamp(&json),
            format!("{{\"timestamp\":\"TS{JSON_SAMPLE}")
        );
    }

    #[test]
    fn the_same_lines_by_hand() {
        assert_eq!(
            by_hand(LogFormat::Text, &SAMPLE, sample_time()),
            format!("2026-11-24T23:41:07.512345Z{TEXT_SAMPLE}")
        );
        assert_eq!(
            by_hand(LogFormat::Json, &SAMPLE, sample_time()),
            format!("{{\"timestamp\":\"2026-11-24T23:41:07.512345Z{JSON_SAMPLE}")
        );
        assert_same_as_tracing(LogFormat::Text, &SAMPLE);
        assert_same_as_tracing(LogFormat::Json, &SAMPLE);
    }

    #[test]
    fn odd_values_as_tracing_wrote_them() {
        let long = format!("/v1/thumbnail/o/e/{}.webp?width=1", "k/".repeat(3000));
        let lines = [
            // What a client can put in a path (http::Uri lets `"`, braces and UTF-8 by).
            AccessLine {
                path: "/v1/thumbnail/o/e/\"quoted\"{x}|^`é✓.webp?a=\"b\"&c=\\",
                ..SAMPLE
            },
            AccessLine {
                path: &long,
                ..SAMPLE
            },
            // Request ids are visible ASCII, `"` and `\` included.
            AccessLine {
                request_id: "a\"b\\c'd",
                ..SAMPLE
            },
            // Beyond what a request can carry: control characters, DEL, C1, other scripts.
            AccessLine {
                request_id: "tab\there\nnl\r\u{0}\u{1b}[31m\u{7f}\u{85}ü\u{301}",
                cache: "\u{1f}\u{8}\u{c}",
                method: "M\"E\\T",
                ..SAMPLE
            },
            AccessLine {
                method: "PURGE",
                status: 503,
                bytes: u64::MAX,
                duration_ms: 0.0,
                cache: "-",
                ..SAMPLE
            },
            AccessLine {
                request_id: "",
                path: "",
                cache: "",
                status: 0,
                bytes: 0,
                ..SAMPLE
            },
        ];
        let durations = [
            0.0,
            1e-9,
            0.000_05,
            0.000_1,
            0.000_123_4,
            0.012,
            0.3,
            1.0,
            48.2,
            999.999_999,
            123_456.789,
            1e15,
            9_999_999_999_999_998.0,
            1e16,
            1e17,
            1e300,
            -0.0,
            -1.5,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
        ];
        for format in [LogFormat::Text, LogFormat::Json] {
            for line in &lines {
                assert_same_as_tracing(format, line);
            }
            for duration_ms in durations {
                assert_same_as_tracing(
                    format,
                    &AccessLine {
                        duration_ms,
                        ..SAMPLE
                    },
                );
            }
        }
    }

    /// Durations as requests measure them: nanoseconds to milliseconds.
    #[test]
    fn durations_as_std_and_serde_json_write_them() {
        let mut n: u64 = 1;
        for _ in 0..200_000 {
            n = n
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let d = Duration::from_nanos(n >> (n % 40 + 10));
            let v = d.as_secs_f64() * 1000.0;
            let mut buf = Vec::new();
            push_debug_f64(&mut buf, v);
            assert_eq!(std::str::from_utf8(&buf).unwrap(), format!("{v:?}"));
            buf.clear();
            push_json_f64(&mut buf, v);
            assert_eq!(
                std::str::from_utf8(&buf).unwrap(),
                serde_json::to_string(&v).unwrap()
            );
        }
    }

    #[test]
    fn strings_escaped_as_std_and_serde_json_escape_them() {
        let mut all: String = (0u32..0x250).filter_map(char::from_u32).collect();
        all.push_str("\u{200b}\u{feff}\u{1f600}\u{e000}");
        for s in ["", "plain", "\"\\", &all] {
            let mut buf = Vec::new();
            push_json_str(&mut buf, s);
            assert_eq!(
                std::str::from_utf8(&buf).unwrap(),
                serde_json::to_string(s).unwrap()
            );
            buf.clear();
            push_debug_str(&mut buf, s);
            assert_eq!(std::str::from_utf8(&buf).unwrap(), format!("{s:?}"));
        }
    }

    #[test]
    fn times_as_tracing_writes_them() {
        let at = |secs: i64, nanos: u32| {
            let t = if secs >= 0 {
                UNIX_EPOCH + Duration::new(secs as u64, nanos)
            } else {
                UNIX_EPOCH - Duration::new(secs.unsigned_abs(), 0) + Duration::new(0, nanos)
            };
            let mut buf = Vec::new();
            Clock::default().write(&mut buf, t);
            String::from_utf8(buf).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 999), "2000-02-29T00:00:00.000000Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
        assert_eq!(
            at(1_795_563_667, 512_345_678),
            "2026-11-24T23:41:07.512345Z"
        );
        assert_eq!(
            at(253_402_300_799, 999_999_999),
            "9999-12-31T23:59:59.999999Z"
        );
        assert_eq!(at(253_402_300_800, 0), "+10000-01-01T00:00:00.000000Z");
        assert_eq!(at(-1, 500_000_000), "1969-12-31T23:59:59.500000Z");
        assert_eq!(at(-62_198_755_200, 0), "-0001-01-01T00:00:00.000000Z");
        // One clock for many lines: the second's text is reused, the
        // microseconds are not.
        let mut clock = Clock::default();
        let mut buf = Vec::new();
        clock.write(&mut buf, sample_time());
        clock.write(&mut buf, sample_time() + Duration::from_micros(7));
        clock.write(&mut buf, sample_time() + Duration::from_secs(86_400));
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "2026-11-24T23:41:07.512345Z2026-11-24T23:41:07.512352Z2026-11-25T23:41:07.512345Z"
        );
    }

    #[test]
    fn the_filter_decides() {
        let on = |filter: &str| {
            let d = dispatch(LogFormat::Text, filter, Capture::default());
            tracing::dispatcher::with_default(&d, enabled)
        };
        assert!(on("thumbd=info"));
        assert!(on("info"));
        assert!(on("thumbd::access=info,warn"));
        assert!(!on("thumbd=info,thumbd::access=off"));
        assert!(!on("thumbd=info,thumbd::access=warn"));
        assert!(!on("thumbd=warn"));
        assert!(!on("other=info"));
    }

    /// A sink's output until `want` lines have arrived (within 5 s).
    fn wait_lines(out: &Capture, want: usize) -> String {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let text = out.text();
            if text.lines().count() >= want || Instant::now() > until {
                return text;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn a_quiet_sink_writes_within_its_interval() {
        let out = Capture::default();
        let (sink, _guard) = LogSink::start(out.clone());
        let t0 = Instant::now();
        sink.push(b"one\n", false);
        assert_eq!(wait_lines(&out, 1), "one\n");
        assert!(t0.elapsed() < Duration::from_secs(2));
        // An urgent line does not wait for the interval (nor, here, for
        // the access line queued before it, which it follows).
        sink.push(b"two\n", false);
        sink.push(b"three\n", true);
        assert_eq!(wait_lines(&out, 3), "one\ntwo\nthree\n");
    }

    #[test]
    fn threads_lines_stay_whole_and_in_order() {
        let out = Capture::default();
        let (sink, guard) = LogSink::start(out.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    let mut w = tracing_subscriber::fmt::MakeWriter::make_writer(&sink);
                    for i in 0..5_000 {
                        let line = format!("{t} {i} {}\n", "x".repeat(i % 300));
                        if i % 7 == 0 {
                            w.write_all(line.as_bytes()).unwrap();
                        } else {
                            sink.push(line.as_bytes(), false);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = out.text();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let mut parts = line.split(' ');
            let t: usize = parts.next().unwrap().parse().unwrap();
            let i: usize = parts.next().unwrap().parse().unwrap();
            assert_eq!(i, next[t], "thread {t}'s lines in order");
            assert_eq!(parts.next().unwrap(), "x".repeat(i % 300));
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4], "every line written by the exit");
    }

    /// An output that takes its time, as a stalled disk does.
    struct Slow(Capture, Arc<std::sync::atomic::AtomicUsize>);

    impl Write for Slow {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(Duration::from_millis(50));
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_makes_loggers_wait_and_loses_nothing() {
        let out = Capture::default();
        let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (sink, guard) = LogSink::start(Slow(out.clone(), writes.clone()));
        let line = vec![b'y'; 1 << 16];
        let mut line = line;
        *line.last_mut().unwrap() = b'\n';
        // 3 x MAX_QUEUED_BYTES through an output that writes 20 batches a second.
        let n = 3 * MAX_QUEUED_BYTES / line.len();
        for _ in 0..n {
            sink.push(&line, false);
            let queued = sink.shared.lock().lines.len();
            assert!(
                queued <= MAX_QUEUED_BYTES + line.len(),
                "{queued} bytes queued"
            );
        }
        drop(guard);
        assert_eq!(out.text().len(), n * line.len());
        assert!(
            writes.load(std::sync::atomic::Ordering::Relaxed) < n / 4,
            "batched"
        );
        // After the exit, a line is written by its logger at once.
        sink.push(b"late\n", false);
        assert!(out.text().ends_with("late\n"));
    }

    #[test]
    fn lines_through_the_sink_are_the_lines_tracing_wrote() {
        for format in [LogFormat::Text, LogFormat::Json] {
            let out = Capture::default();
            let (sink, guard) = LogSink::start(out.clone());
            let mut buf = Vec::new();
            format_line(
                &mut buf,
                &mut Clock::default(),
                format,
                &SAMPLE,
                sample_time(),
            );
            sink.push(&buf, false);
            // tracing's own line for the same request, through the same sink.
            let d = tracing::Dispatch::new(
                tracing_subscriber::fmt()
                    .with_env_filter("thumbd=info")
                    .with_ansi(false)
                    .with_writer(sink.clone())
                    .finish(),
            );
            tracing::dispatcher::with_default(&d, || event(&SAMPLE));
            drop(guard);
            let text = out.text();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 2, "{text}");
            assert_eq!(format!("{}\n", lines[0]), String::from_utf8(buf).unwrap());
            if format == LogFormat::Text {
                assert_eq!(mask_timestamp(lines[0]), mask_timestamp(lines[1]));
            }
        }
    }
}
