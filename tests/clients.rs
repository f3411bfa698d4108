//! Clients as they really are: ones that write a whole request body before
//! reading the answer (Python's `requests`, most HTTP libraries, browsers'
//! `fetch`), and ones that stop reading an answer half way.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::Thumbd;

const KEY: &str = "key-for-clients-0123456789";
/// Uploads past this are refused (413).
const MAX_UPLOAD: u64 = 1024 * 1024;

fn config(data: &std::path::Path, extra: &str) -> String {
    format!(
        r#"
[server]
shutdown_delay_secs = 0
{extra}
[jobs]
db_path = "{db}"
[orgs.a]
api_keys = ["{KEY}"]
upload_env = "up"
[orgs.a.envs.up]
source = "store:{store}"
[orgs.a.envs.up.store]
max_upload_bytes = {MAX_UPLOAD}
[orgs.a.envs.samples]
source = "file:{samples}/{{key}}"
"#,
        db = data.join("jobs.db").display(),
        store = data.join("store").display(),
        samples = common::samples().display(),
    )
}

/// Sends a multipart upload the way a body-first client does: the head,
/// then all of `body_bytes` (a part named `video`), and only then reads the
/// answer. Returns the status line, or what went wrong.
fn upload_body_first(
    addr: SocketAddr,
    key: Option<&str>,
    body_bytes: usize,
) -> Result<String, String> {
    let boundary = "thumbdboundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"v.mp4\"\r\n\
         Content-Type: video/mp4\r\n\r\n"
    )
    .into_bytes();
    // Not a video: bytes that change, so nothing compresses them away.
    body.extend((0..body_bytes).map(|i| (i * 7 % 251) as u8));
    body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let key_header = key.map_or(String::new(), |k| format!("X-Api-Key: {k}\r\n"));
    let head = format!(
        "POST /v1/api/a/uploads HTTP/1.1\r\nHost: test\r\n{key_header}\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(head.as_bytes())
        .map_err(|e| format!("writing the head: {e}"))?;
    for chunk in body.chunks(64 * 1024) {
        stream
            .write_all(chunk)
            .map_err(|e| format!("writing the body: {e}"))?;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) => return Err(format!("reading the answer: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    text.lines()
        .next()
        .filter(|l| l.starts_with("HTTP/1.1"))
        .map(str::to_owned)
        .ok_or_else(|| format!("no answer: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_reaches_a_client_that_sends_its_body_first() {
    let data = tempfile::tempdir().unwrap();
    let thumbd = Thumbd::start(&config(data.path(), "")).await;
    let addr = thumbd.addr;
    let mut failures = Vec::new();
    // 8 MB: far more than the socket buffers hold, so the client is still
    // writing when the answer is sent.
    for (what, key, bytes, status) in [
        ("no API key", None, 8 << 20, "401"),
        (
            "a wrong API key",
            Some("wrong-key-0123456789"),
            8 << 20,
            "401",
        ),
        ("a Content-Length over the limit", Some(KEY), 8 << 20, "413"),
        ("a body that is not a video", Some(KEY), 900 * 1024, "415"),
    ] {
        let answer = tokio::task::spawn_blocking(move || upload_body_first(addr, key, bytes))
            .await
            .unwrap();
        match answer {
            Ok(line) if line.split(' ').nth(1) == Some(status) => {}
            other => failures.push(format!("{what}: expected {status}, got {other:?}")),
        }
    }
    common::assert_no_failures(&failures);
    // The server is still there for everyone else.
    let (status, _, _) = common::get(&thumbd.url("/healthz")).await;
    assert_eq!(status, 200);
}

/// Opens a connection that asks for `path` and reads nothing yet; with
/// `small`, its receive buffer is small, so the server's writes soon stop
/// making progress.
async fn stalled_reader(addr: SocketAddr, path: &str, small: bool) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if small {
        socket.set_recv_buffer_size(4096).unwrap();
    }
    let mut stream = socket.connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream
}

/// Reads what is left of an answer until the server closes the connection
/// (or `limit` passes): the bytes read, and whether it was closed.
async fn read_to_close(stream: &mut tokio::net::TcpStream, limit: Duration) -> (usize, bool) {
    use tokio::io::AsyncReadExt;
    let mut total = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let until = Instant::now() + limit;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (total, true),
            Ok(Ok(n)) => total += n,
            Err(_) => return (total, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_after_the_send_timeout() {
    let data = tempfile::tempdir().unwrap();
    // (The render takes seconds in a debug build.)
    let extra = "send_timeout_secs = 2\n[render]\ntimeout_secs = 300\n\
                 [pictures]\nanimated_max_width = 800";
    let thumbd = Thumbd::start(&config(data.path(), extra)).await;
    // A 6.7 MB animated GIF: more than the loopback socket buffers
    // hold (4 MB at most for a send buffer here).
    let path = "/v1/animated/a/samples/demo.mp4.gif?start=0&end=10&fps=30&width=800";
    let (status, headers, whole) = common::get(&thumbd.url(path)).await;
    assert_eq!(status, 200);
    assert!(whole.len() > 5_000_000, "{} bytes", whole.len());
    assert_eq!(headers["x-thumbnail-cache"], "miss");

    // Three clients ask for it again (a cache hit) and never read.
    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(stalled_reader(thumbd.addr, path, true).await);
    }
    // Each is closed once its writes have made no progress for 2 s.
    let started = Instant::now();
    loop {
        let metrics = thumbd.metrics().await;
        if common::metric(&metrics, "thumbd_send_timeouts_total") >= 3.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "stalled readers not closed:\n{}",
            metrics
                .lines()
                .filter(|l| l.contains("send_timeout"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for mut stream in stalled {
        let (read, closed) = read_to_close(&mut stream, Duration::from_secs(5)).await;
        assert!(closed, "the connection is still open");
        assert!(
            read < whole.len(),
            "read the whole answer ({read} bytes) after the timeout"
        );
    }

    // A slow reader that keeps reading, 256 KiB every 100 ms, gets the
    // whole answer although it takes longer than the timeout: the timeout
    // is between two writes that make progress, not for the whole answer.
    // (A writer wakes only once a good part of its socket buffer is free,
    // a few MB on loopback: progress is seen at that grain, as nginx's.)
    let mut slow = stalled_reader(thumbd.addr, path, false).await;
    let mut total = 0;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        use tokio::io::AsyncReadExt;
        tokio::time::sleep(Duration::from_millis(100)).await;
        match tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => total += n,
            other => panic!("slow reader: {other:?} after {total} bytes"),
        }
        if total >= whole.len() {
            break;
        }
    }
    assert!(
        total >= whole.len(),
        "the slow reader got {total} of {} bytes",
        whole.len()
    );
    let metrics = thumbd.metrics().await;
    assert_eq!(common::metric(&metrics, "thumbd_send_timeouts_total"), 3.0);
}
