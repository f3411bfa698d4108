//! Every way the job APIs are asked, end to end with the real server:
//! multipart uploads into the embedded store, video URLs behind the address
//! guard, conversion tasks, and `Prefer: wait`. Each shape is driven by a
//! small client written against the shape as documented (README), which
//! only needs the base URL and key changed. Bad input leaves no job and no
//! file behind, and the server keeps serving.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::time::Duration;

use bytes::Bytes;
use common::{fixtures, read_pattern, SourceServer, Thumbd};
use serde_json::{json, Value};

const KEY_A: &str = "org-a-api-key-0123456789";
const KEY_B: &str = "org-b-api-key-0123456789";
const WEBHOOK_SECRET: &str = "webhook-secret-for-shapes";
/// The store's upload limit in these tests.
const MAX_UPLOAD: u64 = 2 * 1024 * 1024;

/// Org `a`: an upload store `up` in `data`, video URLs from the source
/// server (127.0.0.1 allow-listed), webhooks to `hook`. Org `b`: video URLs
/// from the same server by address and by `localhost`, nothing allow-listed.
fn config(data: &Path, source: &SourceServer, hook: Option<SocketAddr>, extra: &str) -> String {
    let hosts = hook.map_or(String::new(), |a| format!("\"{a}\""));
    let port = source.addr.port();
    format!(
        r#"
[server]
shutdown_delay_secs = 0
body_idle_timeout_secs = 1
[fetch]
initial_read_bytes = 65536
[jobs]
db_path = "{db}"
retry_backoff_ms = 50
webhook_backoff_ms = 50
{extra}
[orgs.a]
api_keys = ["{KEY_A}"]
webhook_secret = "{WEBHOOK_SECRET}"
webhook_hosts = [{hosts}]
video_url_prefixes = ["http://127.0.0.1:{port}/"]
video_url_private_hosts = ["127.0.0.1"]
upload_env = "up"
[orgs.a.envs.up]
source = "store:{store}"
[orgs.a.envs.up.store]
max_upload_bytes = {MAX_UPLOAD}
[orgs.a.envs.up2]
source = "store:{store2}"
[orgs.b]
api_keys = ["{KEY_B}"]
video_url_prefixes = ["http://127.0.0.1:{port}/", "http://localhost:{port}/"]
[orgs.b.envs.up]
source = "store:{store_b}"
"#,
        db = data.join("jobs.db").display(),
        store = data.join("store").display(),
        store2 = data.join("store2").display(),
        store_b = data.join("store_b").display(),
    )
}

fn client() -> reqwest::Client {
    common::client()
}

/// A JSON body (reqwest's `json` feature is not on).
trait JsonBody {
    fn json_body(self, v: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, v: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(v.to_string())
    }
}

/// One part of a hand-made multipart body.
enum Part<'a> {
    Text(&'a str, &'a str),
    File(&'a str, &'a str, Vec<u8>),
}

fn multipart(parts: &[Part]) -> (String, Vec<u8>) {
    let boundary = "thumbdtestboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match p {
            Part::Text(name, value) => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            Part::File(name, filename, data) => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(data);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
    (status, value)
}

async fn upload(t: &Thumbd, key: &str, parts: &[Part<'_>]) -> (u16, Value) {
    let (ct, body) = multipart(parts);
    let resp = client()
        .post(t.url("/v1/api/a/uploads"))
        .header("x-api-key", key)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    json_of(resp).await
}

async fn fetch_image(url: &str) -> (u16, reqwest::header::HeaderMap, Bytes) {
    let resp = client().get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap())
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(path)).unwrap()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

async fn jobs_total(t: &Thumbd) -> f64 {
    let m = t.metrics().await;
    ["pending", "processing", "completed", "failed"]
        .iter()
        .map(|s| common::metric(&m, &format!("thumbd_jobs{{state=\"{s}\"}}")))
        .sum()
}

// ---------------------------------------------------------------------------
// The clients, each written against its shape as the README documents it.

/// An upload-API client (ApyHub style): multipart `video`, `time`, `size`;
/// a `job_id` back; a status call that gives the thumbnail URL when done.
struct UploadClient {
    base: String,
    token: String,
}

impl UploadClient {
    async fn submit(&self, video: Vec<u8>, time: &str, size: &str) -> Result<String, Value> {
        let (ct, body) = multipart(&[
            Part::File("video", "clip.mp4", video),
            Part::Text("time", time),
            Part::Text("size", size),
        ]);
        let resp = client()
            .post(format!("{}/v1/api/a/uploads", self.base))
            .header("apy-token", &self.token)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, v) = json_of(resp).await;
        if status >= 400 {
            return Err(v);
        }
        Ok(v["body"]["job_id"].as_str().unwrap().to_owned())
    }

    /// Polls the job; the thumbnail URL once completed.
    async fn thumbnail_url(&self, job_id: &str) -> String {
        for _ in 0..300 {
            let resp = client()
                .get(format!("{}/v1/api/a/thumbnails/{job_id}", self.base))
                .header("apy-token", &self.token)
                .send()
                .await
                .unwrap();
            let (status, v) = json_of(resp).await;
            assert_eq!(status, 200, "{v}");
            match v["body"]["status"].as_str() {
                Some("completed") => return v["body"]["url"].as_str().unwrap().to_owned(),
                Some("failed") => panic!("job failed: {v}"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("job {job_id} did not finish");
    }
}

/// A video-URL API client: `x-api-key`, JSON in, `response` out.
struct VideoUrlClient {
    base: String,
    key: String,
}

impl VideoUrlClient {
    async fn thumbnail(&self, body: Value) -> (u16, Value) {
        let resp = client()
            .post(format!("{}/v1/video/thumbnail", self.base))
            .header("x-api-key", &self.key)
            .json_body(&body)
            .send()
            .await
            .unwrap();
        json_of(resp).await
    }
}

/// A conversion-task client (CloudConvert style): create a task, poll it
/// until `finished`, take `result.files[0].url`.
struct TaskClient {
    base: String,
    key: String,
}

impl TaskClient {
    async fn create(&self, task: Value) -> (u16, Value) {
        let resp = client()
            .post(format!("{}/v2/thumbnail", self.base))
            .bearer_auth(&self.key)
            .json_body(&task)
            .send()
            .await
            .unwrap();
        json_of(resp).await
    }

    async fn wait(&self, id: &str) -> Value {
        for _ in 0..300 {
            let resp = client()
                .get(format!("{}/v2/tasks/{id}", self.base))
                .bearer_auth(&self.key)
                .send()
                .await
                .unwrap();
            let (status, v) = json_of(resp).await;
            assert_eq!(status, 200, "{v}");
            let task = v["data"].clone();
            if task["status"] == "finished" || task["status"] == "error" {
                return task;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("task {id} did not finish");
    }
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_serves_the_right_frame_and_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let source = SourceServer::start(fixtures()).await;
    let cfg = config(data.path(), &source, None, "");
    let t = Thumbd::start(&cfg).await;
    let apy = UploadClient {
        base: t.url(""),
        token: KEY_A.into(),
    };
    let video = read("h264_faststart.mp4");
    let job_id = apy.submit(video.clone(), "2.5", "80x48").await.unwrap();
    let url = apy.thumbnail_url(&job_id).await;
    let (status, headers, bytes) = fetch_image(&url).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["x-thumbnail-cache"], "hit",
        "the job made its URL a cache hit"
    );
    let r = read_pattern(&bytes);
    assert_eq!((r.frame, r.width, r.height), (62, 80, 48), "{url}");

    // The same bytes again: the same key, stored once, the same job.
    let (status, again) = upload(
        &t,
        KEY_A,
        &[
            Part::Text("size", "80x48"),
            Part::Text("time", "2.5"),
            Part::File("video", "other-name.mp4", video.clone()),
        ],
    )
    .await;
    assert_eq!(status, 200, "completed already: {again}");
    assert_eq!(again["body"]["job_id"], job_id.as_str());
    assert_eq!(again["body"]["stored"], "existing");
    let key = again["body"]["key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 32);
    let objects = data.path().join("store/objects");
    assert_eq!(files_in(&objects), [objects.join(&key)]);
    assert_eq!(std::fs::read(objects.join(&key)).unwrap(), video);
    assert!(files_in(&data.path().join("store/incoming")).is_empty());

    // Defaults: one second in, the video's own size; and Prefer: wait.
    let (ct, body) = multipart(&[Part::File("video", "v.webm", read("vp9.webm"))]);
    let resp = client()
        .post(t.url("/v1/api/a/uploads"))
        .header("authorization", format!("Bearer {KEY_A}"))
        .header("prefer", "wait=20")
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, waited) = json_of(resp).await;
    assert_eq!(status, 200, "{waited}");
    assert_eq!(waited["body"]["status"], "completed");
    let webm_url = waited["body"]["url"].as_str().unwrap().to_owned();
    let r = read_pattern(&fetch_image(&webm_url).await.2);
    assert_eq!((r.frame, r.width, r.height), (25, 160, 96));

    // Another store of the org, by query or by a field before the file.
    for (query, parts) in [
        (
            "?env=up2",
            vec![Part::File("video", "a.mov", read("h264.mov"))],
        ),
        (
            "",
            vec![
                Part::Text("env", "up2"),
                Part::File("video", "b.avi", read("mpeg4.avi")),
            ],
        ),
    ] {
        let (ct, body) = multipart(&parts);
        let resp = client()
            .post(t.url(&format!("/v1/api/a/uploads{query}")))
            .header("x-api-key", KEY_A)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, v) = json_of(resp).await;
        assert_eq!(
            (status, v["body"]["env"].as_str()),
            (202, Some("up2")),
            "{v}"
        );
        let key = v["body"]["key"].as_str().unwrap();
        assert!(data.path().join("store2/objects").join(key).is_file());
    }
    let (status, v) = upload(
        &t,
        KEY_A,
        &[
            Part::Text("env", "nope"),
            Part::File("video", "a.mp4", video.clone()),
        ],
    )
    .await;
    assert_eq!(status, 404, "{v}");

    // A restart keeps the objects and the completed jobs; the URLs render again.
    drop(t);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Thumbd::start(&cfg).await;
    let resp = client()
        .get(t.url(&format!("/v1/api/a/thumbnails/{job_id}")))
        .header("x-api-key", KEY_A)
        .send()
        .await
        .unwrap();
    let (status, doc) = json_of(resp).await;
    assert_eq!(
        (status, doc["body"]["status"].as_str()),
        (200, Some("completed"))
    );
    let path = url.split_once("/v1/").unwrap().1;
    let (status, headers, bytes) = fetch_image(&t.url(&format!("/v1/{path}"))).await;
    assert_eq!(
        (status, &headers["x-thumbnail-cache"]),
        (200, &"miss".parse().unwrap())
    );
    assert_eq!(read_pattern(&bytes).frame, 62);
}

/// Sends an upload over a raw connection, the body in chunks, without
/// waiting for the server to read it all; returns the status line's code
/// and whether the server closed the connection after answering.
fn raw_upload(addr: SocketAddr, content_length: Option<u64>, body_bytes: u64) -> (u16, bool) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let boundary = "rawboundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"big.mp4\"\r\n\r\n"
    );
    let length = match content_length {
        Some(n) => format!("Content-Length: {n}\r\n"),
        None => "Transfer-Encoding: chunked\r\n".into(),
    };
    let request = format!(
        "POST /v1/api/a/uploads HTTP/1.1\r\nHost: {addr}\r\nX-Api-Key: {KEY_A}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\n{length}\r\n"
    );
    s.write_all(request.as_bytes()).unwrap();
    let chunk = vec![0x42u8; 64 * 1024];
    let mut sent = 0u64;
    let mut first = true;
    // Writes may fail once the server has answered and closed: that is the point.
    while sent < body_bytes {
        let mut piece = Vec::new();
        if first {
            piece.extend_from_slice(head.as_bytes());
            first = false;
        }
        piece.extend_from_slice(&chunk);
        let framed = if content_length.is_none() {
            let mut f = format!("{:x}\r\n", piece.len()).into_bytes();
            f.extend_from_slice(&piece);
            f.extend_from_slice(b"\r\n");
            f
        } else {
            piece.clone()
        };
        if s.write_all(&framed).is_err() {
            break;
        }
        sent += piece.len() as u64;
    }
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let text = String::from_utf8_lossy(&response);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_leave_no_job_no_file_and_no_connection() {
    let data = tempfile::tempdir().unwrap();
    let source = SourceServer::start(fixtures()).await;
    let t = Thumbd::start(&config(data.path(), &source, None, "")).await;
    let video = read("h264_faststart.mp4");
    let cases: Vec<(&str, Vec<Part>, u16, &str)> = vec![
        ("no file", vec![Part::Text("time", "1")], 400, "body.video"),
        (
            "two files",
            vec![
                Part::File("video", "a.mp4", video.clone()),
                Part::File("video", "b.mp4", video.clone()),
            ],
            400,
            "body.video",
        ),
        (
            "a file in another field",
            vec![Part::File("file", "a.mp4", video.clone())],
            400,
            "body.file",
        ),
        (
            "not a video",
            vec![Part::File(
                "video",
                "notes.mp4",
                b"just some text, no video".to_vec(),
            )],
            415,
            "",
        ),
        (
            "random bytes",
            vec![Part::File("video", "r.mp4", read("random.mp4"))],
            415,
            "",
        ),
        (
            "audio only",
            vec![Part::File("video", "a.m4a", read("audio_only.m4a"))],
            415,
            "",
        ),
        (
            "truncated, no index",
            vec![Part::File("video", "t.mp4", read("truncated_index.mp4"))],
            415,
            "",
        ),
        (
            "truncated frames",
            vec![Part::File("video", "t.mp4", read("truncated_frames.mp4"))],
            415,
            "",
        ),
        (
            "empty",
            vec![Part::File("video", "e.mp4", Vec::new())],
            400,
            "body.video",
        ),
    ];
    let mut all = cases;
    for size in ["0x0", "x", "99999x1", "320"] {
        all.push((
            "bad size",
            vec![
                Part::File("video", "a.mp4", video.clone()),
                Part::Text("size", size),
            ],
            400,
            "body.size",
        ));
    }
    all.push((
        "time past the end",
        vec![
            Part::File("video", "a.mp4", video.clone()),
            Part::Text("time", "99"),
        ],
        422,
        "",
    ));
    all.push((
        "webhook host not allowed",
        vec![
            Part::File("video", "a.mp4", video.clone()),
            Part::Text("webhook_url", "http://203.0.113.9/hook"),
        ],
        400,
        "body.webhook_url",
    ));
    for (what, parts, status, location) in &all {
        let (got, body) = upload(&t, KEY_A, parts).await;
        assert_eq!(got, *status, "{what}: {body}");
        assert!(
            body["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:thumbd:problem:"),
            "{what}: {body}"
        );
        if !location.is_empty() {
            let locations = common::error_locations(&body);
            assert!(
                locations.iter().any(|(l, _)| l == location),
                "{what}: {body}"
            );
        }
    }
    // Not multipart, no key, a wrong key, another org's key.
    let resp = client()
        .post(t.url("/v1/api/a/uploads"))
        .header("x-api-key", KEY_A)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    for (key, status) in [
        (None, 401),
        (Some("wrong-key-wrong-key-0000"), 401),
        (Some(KEY_B), 403),
    ] {
        let (ct, body) = multipart(&[Part::File("video", "a.mp4", video.clone())]);
        let mut req = client()
            .post(t.url("/v1/api/a/uploads"))
            .header("content-type", ct)
            .body(body);
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        assert_eq!(req.send().await.unwrap().status(), status, "{key:?}");
    }

    // An upload refused before its body is read (a wrong key) says it
    // closes the connection, so a client does not reuse it.
    let (ct, body) = multipart(&[Part::File("video", "a.mp4", video.clone())]);
    let resp = client()
        .post(t.url("/v1/api/a/uploads"))
        .header("x-api-key", "wrong-key-wrong-key-0000")
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["connection"], "close");
    let resp = client().get(t.url("/healthz")).send().await.unwrap();
    assert!(
        resp.headers().get("connection").is_none(),
        "bodiless requests keep it"
    );

    // Over the limit: refused while streaming (chunked, so nothing told the
    // server the size up front), and refused unread when announced.
    let addr = t.addr;
    let (code, closed) =
        tokio::task::spawn_blocking(move || raw_upload(addr, None, MAX_UPLOAD * 4))
            .await
            .unwrap();
    assert_eq!((code, closed), (413, true));
    let (code, closed) = tokio::task::spawn_blocking(move || {
        raw_upload(addr, Some(MAX_UPLOAD * 50), MAX_UPLOAD * 2)
    })
    .await
    .unwrap();
    assert_eq!((code, closed), (413, true));

    // A body that stalls is refused (the test's idle limit is 1 s) and closed.
    let stalled = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let started = std::time::Instant::now();
        let head = format!(
            "POST /v1/api/a/uploads HTTP/1.1\r\nHost: {addr}\r\nX-Api-Key: {KEY_A}\r\n\
             Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n\
             --b\r\nContent-Disposition: form-data; name=\"video\"; filename=\"v.mp4\"\r\n\r\n\
             some bytes, and then nothing"
        );
        s.write_all(head.as_bytes()).unwrap();
        let mut response = String::new();
        let _ = s.read_to_string(&mut response);
        (response, started.elapsed())
    })
    .await
    .unwrap();
    assert!(stalled.0.starts_with("HTTP/1.1 408"), "{}", stalled.0);
    assert!(stalled.1 < Duration::from_secs(10), "{:?}", stalled.1);

    // Nothing was kept, nothing was queued, and thumbd still serves.
    assert!(files_in(&data.path().join("store/objects")).is_empty());
    assert!(files_in(&data.path().join("store/incoming")).is_empty());
    assert_eq!(jobs_total(&t).await, 0.0);
    let (status, _) = upload(&t, KEY_A, &[Part::File("video", "a.mp4", video)]).await;
    assert_eq!(status, 202);
    assert_eq!(files_in(&data.path().join("store/objects")).len(), 1);
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_url_answers_with_its_thumbnail_reading_only_what_it_needs() {
    let data = tempfile::tempdir().unwrap();
    common::large_fixture();
    let source = SourceServer::start(fixtures()).await;
    let hook = common::WebhookReceiver::start(false).await;
    let t = Thumbd::start(&config(data.path(), &source, Some(hook.addr), "")).await;
    let api = VideoUrlClient {
        base: t.url(""),
        key: KEY_A.into(),
    };

    // Without a webhook: the call waits and answers with the URL.
    let (status, v) = api
        .thumbnail(json!({"video_url": source.url("h264_moov_end.mp4"), "second": 2, "id": "custom-request-123"}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], "custom-request-123");
    for field in ["run_time", "queue_time", "total_time"] {
        assert!(v[field].as_f64().is_some_and(|s| s >= 0.0), "{field}: {v}");
    }
    let url = v["response"].as_str().unwrap().to_owned();
    assert!(url.contains("/v1/thumbnail/a/url/"), "{url}");
    let (status, headers, bytes) = fetch_image(&url).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(read_pattern(&bytes).frame, 50);

    // Another caller asking for the same render with a webhook: 202, and
    // the result POSTed to them with their own id.
    let (status, v) = api
        .thumbnail(json!({"video_url": source.url("h264_moov_end.mp4"), "second": 2,
                          "id": "second-caller", "webhook_url": format!("http://{}/hook", hook.addr)}))
        .await;
    assert_eq!(
        (status, v["id"].as_str()),
        (202, Some("second-caller")),
        "{v}"
    );
    let mut first_hook = Value::Null;
    for _ in 0..200 {
        if let Some((sig, body)) = hook.calls.lock().unwrap().first().cloned() {
            assert!(
                common::signed_with(WEBHOOK_SECRET, &sig, &body),
                "signature {sig}"
            );
            first_hook = serde_json::from_slice(&body).unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(first_hook["id"], "second-caller", "{first_hook}");
    assert_eq!(first_hook["response"].as_str(), Some(url.as_str()));
    hook.calls.lock().unwrap().clear();

    // A long video is read in ranges, never whole.
    let size = std::fs::metadata(fixtures().join("large.mp4"))
        .unwrap()
        .len();
    let (status, v) = api
        .thumbnail(json!({"video_url": source.url("large.mp4"), "second": 31, "width": 320, "format": "webp"}))
        .await;
    assert_eq!(status, 200, "{v}");
    let read = source.traffic("large.mp4").bytes;
    assert!(read < size / 4, "read {read} of {size} bytes");
    let (status, headers, _) = fetch_image(v["response"].as_str().unwrap()).await;
    assert_eq!(
        (status, &headers["content-type"]),
        (200, &"image/webp".parse().unwrap())
    );

    // With a webhook: 202 at once, the result POSTed later, signed.
    let (status, v) = api
        .thumbnail(json!({
            "video_url": source.url("vp9.webm"),
            "second": 1.2,
            "webhook_url": format!("http://{}/hook", hook.addr),
            "id": "with-hook",
        }))
        .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["message"], "processing");
    assert_eq!(v["id"], "with-hook");
    assert!(v["queue_length"].as_u64().is_some() && v["max_queue_length"] == 1000);
    let job_id = v["job_id"].as_str().unwrap().to_owned();
    let mut sent = Value::Null;
    for _ in 0..200 {
        if let Some((sig, body)) = hook.calls.lock().unwrap().first().cloned() {
            assert!(
                common::signed_with(WEBHOOK_SECRET, &sig, &body),
                "signature {sig}"
            );
            sent = serde_json::from_slice(&body).unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sent["job_id"], job_id.as_str(), "{sent}");
    assert_eq!(sent["status"], "completed");
    assert_eq!(sent["id"], "with-hook");
    let r = read_pattern(&fetch_image(sent["response"].as_str().unwrap()).await.2);
    assert_eq!(r.frame, 30);
    // Its status can be polled too.
    let resp = client()
        .get(t.url(&format!("/v1/video/thumbnail/{job_id}")))
        .header("x-api-key", KEY_A)
        .send()
        .await
        .unwrap();
    let (status, polled) = json_of(resp).await;
    assert_eq!(
        (status, polled["response"].clone()),
        (200, sent["response"].clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_urls_that_must_not_be_read_are_refused_without_a_request() {
    let data = tempfile::tempdir().unwrap();
    let source = SourceServer::start(fixtures()).await;
    let hook = common::WebhookReceiver::start(false).await;
    let t = Thumbd::start(&config(data.path(), &source, Some(hook.addr), "")).await;
    let a = VideoUrlClient {
        base: t.url(""),
        key: KEY_A.into(),
    };
    let b = VideoUrlClient {
        base: t.url(""),
        key: KEY_B.into(),
    };
    let port = source.addr.port();
    let (status, v) = a.thumbnail(json!({"second": 1})).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        v["error"],
        "Invalid request: 'video_url' is a required property"
    );
    assert_eq!(v["type"], "urn:thumbd:problem:invalid-request");

    let cases: Vec<(&VideoUrlClient, Value, u16)> = vec![
        (
            &a,
            json!({"video_url": format!("ftp://127.0.0.1:{port}/vp9.webm")}),
            400,
        ),
        (&a, json!({"video_url": "file:///etc/passwd"}), 400),
        (&a, json!({"video_url": 42}), 400),
        (
            &a,
            json!({"video_url": source.url("vp9.webm"), "second": -1}),
            400,
        ),
        // Outside the prefixes.
        (
            &a,
            json!({"video_url": format!("http://127.0.0.2:{port}/vp9.webm")}),
            403,
        ),
        (
            &a,
            json!({"video_url": format!("http://localhost:{port}/vp9.webm")}),
            403,
        ),
        // 127.0.0.1 is not allow-listed for b, and localhost resolves to it.
        (&b, json!({"video_url": source.url("vp9.webm")}), 403),
        (
            &b,
            json!({"video_url": format!("http://localhost:{port}/vp9.webm")}),
            403,
        ),
        // A redirect to another host is not followed.
        (
            &a,
            json!({"video_url": source.url("fault/redirect/vp9.webm")}),
            403,
        ),
        // A webhook host not allowed (checked before any request).
        (
            &a,
            json!({"video_url": source.url("vp9.webm"), "webhook_url": "http://203.0.113.9/x"}),
            400,
        ),
    ];
    for (client, body, status) in &cases {
        let (got, v) = client.thumbnail(body.clone()).await;
        assert_eq!(got, *status, "{body}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}: {v}"
        );
        assert_eq!(v["status"], *status, "problem+json: {v}");
    }
    // None of the refused addresses was ever asked for anything.
    assert_eq!(
        source.traffic("vp9.webm").requests,
        0,
        "only refusals so far"
    );
    assert_eq!(source.traffic("fault/redirect/vp9.webm").requests, 1);

    let cases: Vec<(&VideoUrlClient, Value, u16)> = vec![
        // Past the end.
        (
            &a,
            json!({"video_url": source.url("vp9.webm"), "second": 30}),
            422,
        ),
        // Not there; not a video.
        (&a, json!({"video_url": source.url("missing.mp4")}), 404),
        (&a, json!({"video_url": source.url("random.mp4")}), 415),
    ];
    for (client, body, status) in &cases {
        let (got, v) = client.thumbnail(body.clone()).await;
        assert_eq!(got, *status, "{body}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}: {v}"
        );
        assert_eq!(v["status"], *status, "problem+json: {v}");
    }
    assert_eq!(jobs_total(&t).await, 0.0);
    assert!(hook.calls.lock().unwrap().is_empty());
    // Keys by header: Bearer works too; a wrong key is 401.
    let resp = client()
        .post(t.url("/v1/video/thumbnail"))
        .header("authorization", "Bearer not-a-key-at-all-000")
        .json_body(&json!({"video_url": source.url("vp9.webm")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (status, _) = a
        .thumbnail(json!({"video_url": source.url("vp9.webm")}))
        .await;
    assert_eq!(status, 200, "the server keeps serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_429_with_the_shapes_message() {
    let data = tempfile::tempdir().unwrap();
    let source = SourceServer::start(fixtures()).await;
    let hook = common::WebhookReceiver::start(false).await;
    let t = Thumbd::start(&config(
        data.path(),
        &source,
        Some(hook.addr),
        "max_queue = 1",
    ))
    .await;
    let api = VideoUrlClient {
        base: t.url(""),
        key: KEY_A.into(),
    };
    let hook_url = format!("http://{}/hook", hook.addr);
    // The first job's reads past the first 64 KiB (the index) wait for
    // the source: it stays queued.
    let (status, v) = api
        .thumbnail(json!({"video_url": source.url("fault/hold/story.mp4"), "second": 30, "webhook_url": hook_url}))
        .await;
    assert_eq!(status, 202, "{v}");
    let (status, v) = api
        .thumbnail(
            json!({"video_url": source.url("vp9.webm"), "second": 1, "webhook_url": hook_url}),
        )
        .await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["error"], "MAX_QUEUE_LENGTH (1) reached");
    source.release();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_replaced_at_its_url_gets_a_new_key() {
    let data = tempfile::tempdir().unwrap();
    let videos = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("h264_faststart.mp4"),
        videos.path().join("v.mp4"),
    )
    .unwrap();
    let source = SourceServer::start(videos.path()).await;
    let t = Thumbd::start(&config(
        data.path(),
        &source,
        None,
        "[cache]\nsource_ttl_secs = 1",
    ))
    .await;
    let api = VideoUrlClient {
        base: t.url(""),
        key: KEY_A.into(),
    };
    let (status, first) = api
        .thumbnail(json!({"video_url": source.url("v.mp4"), "second": 1, "format": "png"}))
        .await;
    assert_eq!(status, 200, "{first}");
    // Another video (another size, so another ETag) at the same URL.
    std::fs::copy(
        fixtures().join("h264_moov_end.mp4"),
        videos.path().join("v.mp4"),
    )
    .unwrap();
    let extra = std::fs::OpenOptions::new()
        .append(true)
        .open(videos.path().join("v.mp4"));
    extra.unwrap().write_all(&[0u8; 7]).unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, second) = api
        .thumbnail(json!({"video_url": source.url("v.mp4"), "second": 1, "format": "png"}))
        .await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(first["response"], second["response"]);
    assert_ne!(first["job_id"], second["job_id"]);
    assert_eq!(
        read_pattern(&fetch_image(second["response"].as_str().unwrap()).await.2).frame,
        25
    );
}

// ---------------------------------------------------------------------------

/// Uploads fixture `file` as `name` for org a, as the task client's own
/// upload step; the upload's key (a task's `input`) and a task client.
async fn uploaded_for_tasks(t: &Thumbd, name: &str, file: &str) -> (String, TaskClient) {
    let (status, up) = upload(t, KEY_A, &[Part::File("video", name, read(file))]).await;
    assert_eq!(status, 202, "{up}");
    let input = up["body"]["key"].as_str().unwrap().to_owned();
    let tasks = TaskClient {
        base: t.url(""),
        key: KEY_A.into(),
    };
    (input, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_task_thumbnails_an_upload() {
    let data = tempfile::tempdir().unwrap();
    let source = SourceServer::start(fixtures()).await;
    let t = Thumbd::start(&config(data.path(), &source, None, "")).await;
    // The upload, as the task client's own upload step.
    let (input, tasks) = uploaded_for_tasks(&t, "in.mkv", "hevc.mkv").await;
    let (status, created) = tasks
        .create(
            json!({"operation": "thumbnail", "input": input, "output_format": "png",
                       "width": 80, "height": 80, "fit": "max"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let task = &created["data"];
    assert_eq!(task["operation"], "thumbnail");
    assert!(["waiting", "processing", "finished"].contains(&task["status"].as_str().unwrap()));
    assert!(task["created_at"].as_str().unwrap().ends_with('Z'));
    let id = task["id"].as_str().unwrap().to_owned();
    let done = tasks.wait(&id).await;
    assert_eq!(done["status"], "finished", "{done}");
    assert!(
        done["started_at"].is_string() && done["ended_at"].is_string(),
        "{done}"
    );
    let file = &done["result"]["files"][0];
    assert!(file["filename"].as_str().unwrap().ends_with(".png"));
    let (status, headers, bytes) = fetch_image(file["url"].as_str().unwrap()).await;
    assert_eq!(
        (status, &headers["content-type"]),
        (200, &"image/png".parse().unwrap())
    );
    // fit=max fits inside 80x80: 80x48; the middle of 4 s is frame 50.
    let r = read_pattern(&bytes);
    assert_eq!((r.frame, r.width, r.height), (50, 80, 48));
    // The same task again is the same task; Prefer: wait gives it finished.
    let resp = client()
        .post(t.url("/v2/thumbnail"))
        .header("x-api-key", KEY_A)
        .header("prefer", "wait=10")
        .json_body(
            &json!({"operation": "thumbnail", "input": input, "output_format": "png",
                      "width": 80, "height": 80, "fit": "max"}),
        )
        .send()
        .await
        .unwrap();
    let (status, again) = json_of(resp).await;
    assert_eq!(
        (status, again["data"]["id"].as_str()),
        (201, Some(id.as_str()))
    );
    assert_eq!(again["data"]["status"], "finished");

    for (body, status, code) in [
        (
            json!({"operation": "thumbnail", "input": "0123456789abcdef0123456789abcdef"}),
            404,
            "NOT_FOUND",
        ),
        (
            json!({"operation": "convert", "input": input}),
            400,
            "INVALID_DATA",
        ),
        (json!({"operation": "thumbnail"}), 400, "INVALID_DATA"),
        (
            json!({"operation": "thumbnail", "input": input, "output_format": "gif"}),
            400,
            "INVALID_DATA",
        ),
        (
            json!({"operation": "thumbnail", "input": input, "fit": "stretch"}),
            400,
            "INVALID_DATA",
        ),
        (
            json!({"operation": "thumbnail", "input": "../etc/passwd"}),
            400,
            "INVALID_DATA",
        ),
    ] {
        let (got, v) = tasks.create(body.clone()).await;
        assert_eq!(got, status, "{body}: {v}");
        assert_eq!(v["code"], code, "{body}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
    let resp = client()
        .get(t.url("/v2/tasks/thumb_job_nope"))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = client()
        .get(t.url(&format!("/v2/tasks/{id}")))
        .bearer_auth(KEY_B)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "another org's task is not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_wait_answers_a_thumbd_job_when_done() {
    let data = tempfile::tempdir().unwrap();
    let source = SourceServer::start(fixtures()).await;
    let cfg = config(data.path(), &source, None, "")
        + "[orgs.a.envs.main]\nsource = \"http://"
        + &source.addr.to_string()
        + "/{key}\"\n";
    let t = Thumbd::start(&cfg).await;
    let submit = |prefer: Option<&'static str>, width: u32| {
        let mut req = client()
            .post(t.url("/v1/api/a/edge-ids/h264.mov/thumbnails"))
            .header("x-api-key", KEY_A)
            .json_body(&json!({"width": width, "timestampMs": 1000, "env": "main"}));
        if let Some(p) = prefer {
            req = req.header("prefer", p);
        }
        async move { json_of(req.send().await.unwrap()).await }
    };
    let (status, v) = submit(Some("wait=20"), 64).await;
    assert_eq!(
        (status, v["body"]["status"].as_str()),
        (200, Some("completed")),
        "{v}"
    );
    let (status, v) = submit(None, 65).await;
    assert_eq!(
        (status, v["body"]["status"].as_str()),
        (202, Some("pending")),
        "{v}"
    );
    // fit names of the task shape work in URLs too.
    let (status, headers, bytes) = fetch_image(
        &t.url("/v1/thumbnail/a/main/h264.mov.png?width=80&height=80&fit=max&timeStamp=1"),
    )
    .await;
    assert_eq!(status, 200, "{headers:?}");
    let r = read_pattern(&bytes);
    assert_eq!((r.frame, r.width, r.height), (25, 80, 48));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_upload_leaves_nothing_visible() {
    let data = tempfile::tempdir().unwrap();
    let source = SourceServer::start(fixtures()).await;
    let port = common::free_port();
    let config_file = data.path().join("thumbd.toml");
    let text = config(data.path(), &source, None, "")
        .replace("body_idle_timeout_secs = 1", "body_idle_timeout_secs = 60");
    std::fs::write(
        &config_file,
        format!("{text}\n").replacen(
            "[server]\n",
            &format!("[server]\npublic_base_url = \"http://127.0.0.1:{port}\"\n"),
            1,
        ),
    )
    .unwrap();
    let log = data.path().join("thumbd.log");
    let mut p = common::Proc::thumbd(Some(&config_file), port, &[], log.clone()).await;
    // Half an upload, then thumbd dies with it in flight.
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let video = read("h264_faststart.mp4");
    let head = format!(
        "POST /v1/api/a/uploads HTTP/1.1\r\nHost: {addr}\r\nX-Api-Key: {KEY_A}\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n\
         --b\r\nContent-Disposition: form-data; name=\"video\"; filename=\"v.mp4\"\r\n\r\n",
        video.len() + 200
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&video[..video.len() / 2]).unwrap();
    let incoming = data.path().join("store/incoming");
    for _ in 0..100 {
        if files_in(&incoming)
            .iter()
            .any(|f| f.metadata().unwrap().len() > 0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(files_in(&incoming).len(), 1, "the upload is being received");
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    drop(p);
    drop(s);
    let objects = data.path().join("store/objects");
    assert!(
        files_in(&objects).is_empty(),
        "nothing visible after the crash"
    );
    // The next start removes the half upload; the same video uploads whole.
    let _p = common::Proc::thumbd(Some(&config_file), port, &[], log).await;
    assert!(files_in(&incoming).is_empty());
    let resp = client()
        .post(format!("http://{addr}/v1/api/a/uploads"))
        .header("x-api-key", KEY_A)
        .header(
            "content-type",
            multipart(&[Part::File("video", "v.mp4", video.clone())]).0,
        )
        .body(multipart(&[Part::File("video", "v.mp4", video)]).1)
        .send()
        .await
        .unwrap();
    let (status, v) = json_of(resp).await;
    assert_eq!(
        (status, v["body"]["stored"].as_str()),
        (202, Some("new")),
        "{v}"
    );
    assert_eq!(files_in(&objects).len(), 1);
}

/// A PNG's width and height.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png).unwrap();
    (img.width(), img.height())
}

/// The problem's first error location and its `code`.
fn first_error(v: &Value) -> (Option<&str>, Option<&str>) {
    (v["errors"][0]["location"].as_str(), v["code"].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_task_as_its_documentation_sends_it() {
    let data = tempfile::tempdir().unwrap();
    let source = SourceServer::start(fixtures()).await;
    let cfg = config(data.path(), &source, None, "")
        + &format!(
            "[orgs.a.envs.slow]\nsource = \"http://{}/fault/slow/{{key}}\"\n",
            source.addr
        );
    let t = Thumbd::start(&cfg).await;
    let (input, tasks) = uploaded_for_tasks(&t, "in.mp4", "h264_faststart.mp4").await;

    // The documentation's own example: no `operation`, an `input_format`.
    let (status, created) = tasks
        .create(
            json!({"input": input, "input_format": "mp4", "output_format": "png",
                       "width": 300, "height": 200, "fit": "crop"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["data"]["operation"], "thumbnail");
    let done = tasks.wait(created["data"]["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "finished", "{done}");
    let file = &done["result"]["files"][0];
    assert_eq!(
        (&file["width"], &file["height"]),
        (&json!(300), &json!(200))
    );
    assert_eq!(file["filename"], format!("{input}.png"));
    let (status, headers, bytes) = fetch_image(file["url"].as_str().unwrap()).await;
    assert_eq!(
        (status, &headers["content-type"]),
        (200, &"image/png".parse().unwrap())
    );
    assert_eq!(png_size(&bytes), (300, 200));

    // `operation`, when sent, must be this endpoint's.
    for (body, location) in [
        (
            json!({"operation": "convert", "input": input}),
            "body.operation",
        ),
        (
            json!({"operation": "thumbnails", "input": input}),
            "body.operation",
        ),
        (json!({"operation": 7, "input": input}), "body.operation"),
    ] {
        let (status, v) = tasks.create(body.clone()).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(
            first_error(&v),
            (Some(location), Some("INVALID_DATA")),
            "{v}"
        );
    }
    let (_, v) = tasks
        .create(json!({"operation": "convert", "input": input}))
        .await;
    assert!(
        v["message"].as_str().unwrap().contains("\"convert\""),
        "the message names it: {v}"
    );

    // Members taken as they are documented; each a new render (width).
    let members = [
        // input_format is not checked: the container is read from the bytes.
        json!({"input_format": "mov"}),
        json!({"input_format": "MP4", "operation": "thumbnail"}),
        json!({"engine": "ffmpeg", "engine_version": "6.1"}),
        json!({"engine": "FFmpeg"}),
        json!({"timeout": 60}),
        json!({"timeout": 100000}),
        // Taken; the file keeps its name.
        json!({"filename": "poster.png"}),
    ];
    for (i, extra) in members.iter().enumerate() {
        let mut body = json!({"input": input, "output_format": "png",
                              "width": 40 + i, "height": 24});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let resp = client()
            .post(t.url("/v2/thumbnail"))
            .bearer_auth(KEY_A)
            .header("prefer", "wait=20")
            .json_body(&body)
            .send()
            .await
            .unwrap();
        let (status, v) = json_of(resp).await;
        assert_eq!(status, 201, "{body}: {v}");
        assert_eq!(v["data"]["status"], "finished", "{body}: {v}");
        let file = &v["data"]["result"]["files"][0];
        assert_eq!(file["filename"], format!("{input}.png"), "{body}: {v}");
        assert_eq!(file["width"], 40 + i, "{body}: {v}");
    }

    // Refused, each naming its member.
    for (extra, location) in [
        (json!({"input_format": 5}), "body.input_format"),
        (json!({"engine": "imagemagick"}), "body.engine"),
        (json!({"engine": ["ffmpeg"]}), "body.engine"),
        (json!({"engine_version": 6}), "body.engine_version"),
        (json!({"timeout": 0}), "body.timeout"),
        (json!({"timeout": -5}), "body.timeout"),
        (json!({"timeout": "60"}), "body.timeout"),
        (json!({"filename": "../poster.png"}), "body.filename"),
        (json!({"filename": ""}), "body.filename"),
        (json!({"filename": 3}), "body.filename"),
    ] {
        let mut body = json!({"input": input, "width": 64});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, v) = tasks.create(body.clone()).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(
            first_error(&v),
            (Some(location), Some("INVALID_DATA")),
            "{v}"
        );
    }
    let (_, v) = tasks
        .create(json!({"input": input, "engine": "imagemagick"}))
        .await;
    assert!(
        v["message"].as_str().unwrap().contains("imagemagick"),
        "{v}"
    );

    // `timeout` bounds each try of the render: half a second, against a
    // source that takes 3 s to answer each read past what the probe at
    // submission read, fails every try.
    let (status, created) = tasks
        .create(
            json!({"input": "long_index.mp4", "env": "slow", "width": 64,
                       "timeout": 0.5}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let failed = tasks.wait(created["data"]["id"].as_str().unwrap()).await;
    assert_eq!(
        (failed["status"].as_str(), failed["code"].as_str()),
        (Some("error"), Some("TIMEOUT")),
        "{failed}"
    );
    assert!(
        failed["message"]
            .as_str()
            .is_some_and(|m| m.contains("render time limit")),
        "the task's own limit, not the source's: {failed}"
    );
}

/// Sets the modification time of every file under `dir` `ago` back.
fn age_files(dir: &Path, ago: Duration) {
    for path in files_in(dir) {
        let modified = path.metadata().unwrap().modified().unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified - ago)
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_picks_how_long_an_upload_is_kept() {
    let data = tempfile::tempdir().unwrap();
    let source = SourceServer::start(fixtures()).await;
    let limit = format!("max_upload_bytes = {MAX_UPLOAD}\n");
    let cfg = config(data.path(), &source, None, "").replacen(
        &limit,
        &format!("{limit}retention_days = 2\ntemporary_hours = 1\n"),
        1,
    );
    let t = Thumbd::start(&cfg).await;
    let up = |query: &'static str, file: &'static str| {
        let (ct, body) = multipart(&[Part::File("video", file, read(file))]);
        let req = client()
            .post(t.url(&format!("/v1/api/a/uploads{query}")))
            .header("x-api-key", KEY_A)
            .header("content-type", ct)
            .body(body);
        async move { json_of(req.send().await.unwrap()).await }
    };
    let hour = 3600.0;
    let expires_in = |v: &Value| {
        let at = humantime::parse_rfc3339(v["body"]["expires_at"].as_str().unwrap()).unwrap();
        at.duration_since(std::time::SystemTime::now())
            .unwrap()
            .as_secs_f64()
    };
    let mut temporary = Vec::new();
    let mut persistent = Vec::new();
    for (query, file, kept) in [
        ("", "h264_faststart.mp4", false),
        ("?persistent=false", "vp9.webm", false),
        ("?persistent=0", "h264.mov", false),
        ("?persistent=true", "mpeg4.avi", true),
        ("?env=up&persistent=1", "hevc.mkv", true),
    ] {
        let (status, v) = up(query, file).await;
        assert_eq!(status, 202, "{query}: {v}");
        assert_eq!(v["body"]["persistent"], kept, "{query}: {v}");
        let left = expires_in(&v);
        if kept {
            assert!((47.9 * hour..=48.0 * hour).contains(&left), "{v}");
            persistent.push(v);
        } else {
            assert!((0.9 * hour..=hour).contains(&left), "{v}");
            temporary.push(v);
        }
    }
    // The same bytes, temporary after persistent: still persistent.
    let (status, v) = up("", "mpeg4.avi").await;
    assert_eq!(
        (status, &v["body"]["persistent"], &v["body"]["stored"]),
        (200, &json!(true), &json!("existing")),
        "{v}"
    );
    assert!(expires_in(&v) > 47.9 * hour, "{v}");

    // Anything else is refused before the body is read: no file, no job.
    let jobs = jobs_total(&t).await;
    let objects = data.path().join("store/objects");
    let stored = files_in(&objects).len();
    for query in [
        "?persistent=yes",
        "?persistent=",
        "?persistent",
        "?persistent=2",
        "?persistent=true&persistent=false",
    ] {
        let (status, v) = up(query, "h264_faststart.mp4").await;
        assert_eq!(status, 400, "{query}: {v}");
        assert_eq!(
            v["errors"][0]["location"], "query.persistent",
            "{query}: {v}"
        );
    }
    assert_eq!(jobs_total(&t).await, jobs);
    assert_eq!(files_in(&objects).len(), stored);

    // Three hours on (thumbd stopped meanwhile): the next start's sweep
    // removes the temporary videos and keeps the persistent ones, whose
    // URLs render any new size; a temporary one's is 404.
    drop(t);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let three_hours = Duration::from_secs(3 * 3600);
    age_files(&objects, three_hours);
    age_files(&data.path().join("store/persistent"), three_hours);
    let t = Thumbd::start(&cfg).await;
    let key = |v: &Value| v["body"]["key"].as_str().unwrap().to_owned();
    for _ in 0..100 {
        if files_in(&objects).len() == persistent.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut left: Vec<_> = files_in(&objects);
    left.sort();
    let mut expected: Vec<_> = persistent.iter().map(|v| objects.join(key(v))).collect();
    expected.sort();
    assert_eq!(left, expected);
    for v in &persistent {
        let (status, _, _) = fetch_image(&t.url(&format!(
            "/v1/thumbnail/a/up/{}.png?width=33&timeStamp=0.5",
            key(v)
        )))
        .await;
        assert_eq!(status, 200, "{v}");
    }
    for v in &temporary {
        let (status, _, _) = fetch_image(&t.url(&format!(
            "/v1/thumbnail/a/up/{}.png?width=33&timeStamp=0.5",
            key(v)
        )))
        .await;
        assert_eq!(status, 404, "{v}");
    }
}
