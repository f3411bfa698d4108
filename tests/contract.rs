//! The OpenAPI description (`GET /openapi.json`, src/http/openapi.json)
//! held against the real binary, two ways:
//!
//! - schemathesis generates requests for every operation from the served
//!   description (examples, boundary values, fuzzing, invalid data, stateful
//!   sequences) and checks each answer's status, Content-Type, headers and
//!   body against it, and that no answer is a 5xx the description does not
//!   explain;
//! - a table of requests produces every documented status (and every
//!   response kept under `components/responses`) at least once, including
//!   those fuzzing cannot reach: a tiny byte budget (413), a tiny frame
//!   limit (422), a non-video file (415), a source that answers 500 (502)
//!   or too late (504), a full render queue (503), a full job queue and a
//!   rate limit (429), a server shutting down (503), a 20 KiB header (431),
//!   uploads into a store with a tiny size limit (413), a tiny quota (507)
//!   and a body that stalls (408), a task for an uploaded video (201), and
//!   video URLs, which the orgs here do not take (403). Thumbnails,
//!   storyboards and animated previews (`EACH_STATUS`) produce each of
//!   their statuses themselves, through the same fault sources and limits,
//!   plus a sprite over `storyboard_max_pixels` (422) and a thumbnail's
//!   token, the wrong audience for them (403).
//!   tests/contract/check_responses.py checks each answer against the
//!   response the description documents for it.
//!
//! The Python tools live in `target/contract-venv`, made from
//! tests/contract/requirements.txt by `make contract-venv` (part of
//! `make test`).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, samples, Proc, SourceServer};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const API_KEY: &str = "contract-api-key-0123456789";
const OTHER_KEY: &str = "contract-other-org-key-0123456789";

const THUMBNAIL: &str = "/v1/thumbnail/{org}/{env}/{file}";
const STORYBOARD: &str = "/v1/storyboard/{org}/{env}/{file}";
const ANIMATED: &str = "/v1/animated/{org}/{env}/{file}";
const SUBMIT: &str = "/v1/api/{org}/edge-ids/{key}/thumbnails";
const BATCH: &str = "/v1/api/{org}/thumbnails/batch";
const JOB: &str = "/v1/api/{org}/thumbnails/{jobId}";
const BEST: &str = "/v1/api/{org}/edge-ids/{key}/thumbnail";
const PREVIEW: &str = "/v1/api/{org}/{env}/edge-ids/{key}/preview-token";
const UPLOAD: &str = "/v1/api/{org}/uploads";
const VIDEO_URL: &str = "/v1/video/thumbnail";
const VIDEO_URL_RESULT: &str = "/v1/video/thumbnail/{jobId}";
const TASK: &str = "/v2/thumbnail";
const TASK_STATUS: &str = "/v2/tasks/{id}";
/// Paths whose every documented status the table produces for that path
/// itself (the others: each status somewhere).
const EACH_STATUS: [&str; 3] = [THUMBNAIL, STORYBOARD, ANIMATED];
/// Answers to methods a path does not list, and to paths the description
/// does not list.
const METHOD_NOT_ALLOWED: &str = "#/components/responses/MethodNotAllowed";
const NOT_FOUND: &str = "#/components/responses/NotFound";

/// How many cases schemathesis generates per operation and phase, and the
/// wall-clock limit of its whole run.
const MAX_EXAMPLES: &str = "25";
const SCHEMATHESIS_LIMIT: Duration = Duration::from_secs(150);
/// The fixed seed makes a run reproducible; `CONTRACT_SEED` picks another.
const DEFAULT_SEED: &str = "20261124";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python virtual environment with schemathesis and jsonschema.
fn venv() -> PathBuf {
    let venv = root().join("target/contract-venv");
    let tools = ["bin/python", "bin/schemathesis"];
    if tools.iter().any(|t| !venv.join(t).exists()) {
        panic!(
            "the contract test needs the Python tools of tests/contract/requirements.txt in {}: \
             run `make contract-venv` (`make test` does it first)",
            venv.display()
        );
    }
    venv
}

/// The real binary on a loopback port with its own config and job database.
struct Server {
    proc: Proc,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts thumbd with `server` lines in its `[server]` section and `rest`
    /// (other sections, orgs) after it.
    async fn start(server: &str, rest: String) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let config = dir.path().join("thumbd.toml");
        std::fs::write(
            &config,
            format!("[server]\npublic_base_url = \"http://{addr}\"\n{server}\n{rest}"),
        )
        .unwrap();
        let proc = Proc::thumbd(
            Some(&config),
            port,
            &[("THUMBD_LOG", "thumbd=info")],
            dir.path().join("thumbd.log"),
        )
        .await;
        Server {
            proc,
            addr,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn log(&self) -> String {
        self.proc.log()
    }

    fn terminate(&self) {
        self.proc.terminate()
    }
}

/// Org `demo` (API key, env `local` over the samples, env `private` the same
/// behind tokens, env `uploads` an upload store in the server's own folder,
/// `extra_envs`) and org `other` with its own API key and no upload store.
/// Neither takes video URLs.
fn orgs(default_env: &str, extra_envs: &str) -> String {
    let samples = samples();
    let samples = samples.display();
    format!(
        r#"
[orgs.demo]
api_keys = ["{API_KEY}"]
default_env = "{default_env}"
upload_env = "uploads"
[orgs.demo.envs.local]
source = "file:{samples}/{{key}}"
[orgs.demo.envs.private]
source = "file:{samples}/{{key}}"
access = "signed"
[orgs.demo.envs.uploads]
source = "store:uploads"
{extra_envs}
[orgs.other]
api_keys = ["{OTHER_KEY}"]
[orgs.other.envs.main]
source = "file:{samples}/{{key}}"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_the_description_does_not_allow() {
    let venv = venv();
    let server = Server::start(
        "demo_page = true",
        format!("[render]\ntimeout_secs = 10\n{}", orgs("local", "")),
    )
    .await;
    let work = tempfile::tempdir().unwrap();
    let seed = std::env::var("CONTRACT_SEED").unwrap_or_else(|_| DEFAULT_SEED.to_owned());
    let mut child = Command::new(venv.join("bin/schemathesis"))
        .arg("run")
        .arg(server.url("/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance,\
             unsupported_method,allow_header_conformance",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            &seed,
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            "--generation-with-security-parameters",
            "false",
            "--no-color",
            "--header",
            &format!("X-Api-Key: {API_KEY}"),
        ])
        .current_dir(work.path())
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", root().join("tests/contract"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(work.path().join("out.txt")).unwrap())
        .stderr(Stdio::from(
            std::fs::File::create(work.path().join("err.txt")).unwrap(),
        ))
        .spawn()
        .expect("run schemathesis");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > SCHEMATHESIS_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = std::fs::read_to_string(work.path().join("out.txt")).unwrap_or_default()
        + &std::fs::read_to_string(work.path().join("err.txt")).unwrap_or_default();
    let log = server.log();
    let log_tail: Vec<&str> = log.lines().rev().take(30).collect();
    let log_tail: Vec<&str> = log_tail.into_iter().rev().collect();
    match status {
        Some(s) if s.success() => {
            eprintln!(
                "schemathesis (seed {seed}) passed in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        Some(s) => panic!(
            "schemathesis (seed {seed}) found answers the description does not allow ({s}):\n\
             {output}\n--- thumbd's log, last lines ---\n{}",
            log_tail.join("\n")
        ),
        None => panic!(
            "schemathesis did not finish within {SCHEMATHESIS_LIMIT:?}:\n{output}\n\
             --- thumbd's log, last lines ---\n{}",
            log_tail.join("\n")
        ),
    }
}

/// One raw HTTP answer.
#[derive(Debug, Default)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A request, sent byte for byte as written (no URL normalisation, any
/// method, any header size).
struct Req {
    method: &'static str,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The `Content-Length` sent, when it is not the body's (a body that
    /// stalls).
    length: Option<usize>,
}

/// One part of a hand-made `multipart/form-data` body.
enum Part<'a> {
    Text(&'a str, &'a str),
    File(&'a str, &'a str, &'a [u8]),
}

const BOUNDARY: &str = "thumbd-contract-7MA4YWxkTrZu0gW";

fn req(method: &'static str, target: impl Into<String>) -> Req {
    Req {
        method,
        target: target.into(),
        headers: Vec::new(),
        body: Vec::new(),
        length: None,
    }
}

impl Req {
    fn header(mut self, name: &str, value: impl Into<String>) -> Req {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    fn key(self, key: &str) -> Req {
        self.header("X-Api-Key", key)
    }

    fn json(mut self, body: &Value) -> Req {
        self.body = body.to_string().into_bytes();
        self.header("Content-Type", "application/json")
    }

    fn raw_body(mut self, body: Vec<u8>) -> Req {
        self.body = body;
        self
    }

    /// A `multipart/form-data` body of `parts`.
    fn form(mut self, parts: &[Part]) -> Req {
        let mut body = Vec::new();
        for part in parts {
            body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
            match part {
                Part::Text(name, value) => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}")
                        .as_bytes(),
                ),
                Part::File(name, file, bytes) => {
                    body.extend_from_slice(
                        format!(
                            "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                             Content-Type: application/octet-stream\r\n\r\n"
                        )
                        .as_bytes(),
                    );
                    body.extend_from_slice(bytes);
                }
            }
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        self.body = body;
        self.header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
    }

    /// Announces `n` bytes of body, whatever is sent.
    fn content_length(mut self, n: usize) -> Req {
        self.length = Some(n);
        self
    }
}

async fn send(addr: SocketAddr, r: &Req) -> Answer {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut rd, mut wr) = stream.into_split();
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n",
            r.method, r.target
        );
        for (name, value) in &r.headers {
            head += &format!("{name}: {value}\r\n");
        }
        if let Some(n) = r.length {
            head += &format!("Content-Length: {n}\r\n");
        } else if !r.body.is_empty() || r.method == "POST" {
            head += &format!("Content-Length: {}\r\n", r.body.len());
        }
        head += "\r\n";
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&r.body);
        // Written alongside the read: the server may answer (413, 431)
        // before it has read everything. The write half stays open until
        // the answer is read (a half-closed connection may be dropped).
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&bytes).await;
            wr
        });
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        drop(writer.await);
        parse_answer(&raw)
    };
    tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to {} {} within 60 s", r.method, r.target))
}

fn parse_answer(raw: &[u8]) -> Answer {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Answer::default();
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut answer = Answer {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    };
    if answer
        .header("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        answer.body = dechunk(&answer.body);
    }
    answer
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&data[..eol]);
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 || data.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[(eol + 4 + size).min(data.len())..];
    }
    out
}

/// The answers of the table, and what went wrong with them.
#[derive(Default)]
struct Table {
    observations: Vec<Value>,
    failures: Vec<String>,
}

impl Table {
    /// Sends `r` to `server`, checks its status (and problem type), and
    /// records the answer for checking against `operation`'s response.
    async fn check(
        &mut self,
        name: &str,
        server: &Server,
        operation: &str,
        r: Req,
        status: u16,
        problem: Option<&str>,
    ) -> Answer {
        let answer = send(server.addr, &r).await;
        let text = String::from_utf8(answer.body.clone()).ok();
        if answer.status != status {
            self.failures.push(format!(
                "{name}: {} {} answered {}, expected {status}: {}",
                r.method,
                r.target,
                answer.status,
                text.as_deref()
                    .unwrap_or("(binary)")
                    .chars()
                    .take(300)
                    .collect::<String>()
            ));
        } else if let Some(code) = problem {
            let kind = answer.json()["type"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if r.method != "HEAD" && kind != format!("urn:thumbd:problem:{code}") {
                self.failures
                    .push(format!("{name}: problem type {kind:?}, expected {code}"));
            }
        }
        let mut headers = serde_json::Map::new();
        for (n, v) in &answer.headers {
            headers
                .entry(n.clone())
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .unwrap()
                .push(json!(v));
        }
        self.observations.push(json!({
            "name": name,
            "method": r.method,
            "operation": operation,
            "status": answer.status,
            "headers": headers,
            "body": text,
            "body_len": answer.body.len(),
        }));
        answer
    }

    fn expect(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(what());
        }
    }
}

/// Polls a job (outside the table) until it is final.
async fn finished(server: &Server, id: &str) -> Value {
    let url = server.url(&format!("/v1/api/demo/thumbnails/{id}"));
    for _ in 0..300 {
        let resp = common::client()
            .get(&url)
            .header("x-api-key", API_KEY)
            .send()
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        if matches!(
            body["body"]["status"].as_str(),
            Some("completed" | "failed")
        ) {
            return body["body"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} did not finish");
}

fn is_image(body: &[u8], content_type: Option<&str>) -> bool {
    match content_type {
        Some("image/webp") => body.len() > 12 && &body[..4] == b"RIFF" && &body[8..12] == b"WEBP",
        Some("image/jpeg") => body.starts_with(&[0xff, 0xd8, 0xff]),
        Some("image/png") => body.starts_with(b"\x89PNG\r\n\x1a\n"),
        Some("image/avif") => body.len() > 12 && &body[4..12] == b"ftypavif",
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_status_is_produced_and_matches_the_description() {
    let venv = venv();
    let source = SourceServer::start(samples()).await;
    let junk = tempfile::tempdir().unwrap();
    std::fs::write(
        junk.path().join("notavideo.mp4"),
        "this is a text file, not a video\n".repeat(100),
    )
    .unwrap();
    // Streaming documents: an EVENT playlist still growing (409 for what
    // depends on its end), a live one (415), one naming another host
    // (403), one over render.max_playlist_bytes (413).
    for (name, text) in [
        (
            "event.m3u8",
            "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXT-X-TARGETDURATION:1\n#EXTINF:0.5,\nseg0.ts\n".to_owned(),
        ),
        (
            "live.m3u8",
            "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nseg0.ts\n".to_owned(),
        ),
        (
            "elsewhere.m3u8",
            "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:4,\nhttp://192.0.2.1/seg0.ts\n#EXT-X-ENDLIST\n".to_owned(),
        ),
        (
            "huge.m3u8",
            format!("#EXTM3U\n{}", "#EXTINF:4,\nseg.ts\n".repeat(300_000)),
        ),
    ] {
        std::fs::write(junk.path().join(name), text).unwrap();
    }
    let src = source.addr;
    // The main server: faulty sources answer 500 (502) or after 3 s, past
    // a 1 s fetch limit (504); `junk` holds a text file (415); upload
    // stores `tiny` (400 KB an upload: 413) and `full` (1000 bytes in all:
    // 507); an upload body may stall for 1 s (408).
    let main_envs = format!(
        r#"
[orgs.demo.envs.tiny]
source = "store:tiny"
[orgs.demo.envs.tiny.store]
max_upload_bytes = 400000
[orgs.demo.envs.full]
source = "store:full"
[orgs.demo.envs.full.store]
quota_bytes = 1000
[orgs.demo.envs.junk]
source = "file:{junk}/{{key}}"
[orgs.demo.envs.broken]
source = "http://{src}/fault/error/{{key}}"
[orgs.demo.envs.slow]
source = "http://{src}/fault/slow/{{key}}"
"#,
        junk = junk.path().display()
    );
    let held_env = format!("[orgs.demo.envs.held]\nsource = \"http://{src}/fault/hold/{{key}}\"\n");
    let (main, frames, small, queues) = tokio::join!(
        Server::start(
            "demo_page = true\nbody_idle_timeout_secs = 1",
            format!(
                "[fetch]\nrequest_timeout_secs = 1\nconnect_timeout_secs = 1\n{}",
                orgs("local", &main_envs)
            ),
        ),
        // Frames over 1000 pixels are refused (422); no demo page (404).
        Server::start(
            "demo_page = false",
            format!("[render]\nmax_frame_pixels = 1000\n{}", orgs("local", "")),
        ),
        // Renders may read 4 KiB (413); SIGTERM leaves a minute of
        // shutting down (readiness and job submissions 503).
        Server::start(
            "shutdown_delay_secs = 60\nshutdown_grace_secs = 1",
            format!("[render]\nmax_source_bytes = 4096\n{}", orgs("local", "")),
        ),
        // One render at a time and one waiting (503 past them); one job at
        // a time (429); three API calls, then one a minute (429).
        Server::start(
            "",
            format!(
                "[render]\nconcurrency = 1\nqueue = 1\n\
                 [jobs]\nmax_queue = 1\nrate_limit_per_minute = 1\nrate_limit_burst = 3\n{}",
                orgs("held", &held_env)
            ),
        ),
    );
    let mut t = Table::default();

    // The description as served is the file in the repository.
    let served = send(main.addr, &req("GET", "/openapi.json")).await;
    assert_eq!(served.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&served.body),
        include_str!("../src/http/openapi.json"),
        "GET /openapi.json serves src/http/openapi.json"
    );

    // Operations.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/"] {
        for method in ["GET", "HEAD"] {
            t.check(path, &main, path, req(method, path), 200, None)
                .await;
        }
    }
    let no_job = "thumb_job_000000000000000000000000";
    for (path, method, target, allow) in [
        ("/healthz", "DELETE", "/healthz".to_owned(), "GET, HEAD"),
        (
            THUMBNAIL,
            "DELETE",
            "/v1/thumbnail/demo/local/demo.mp4.webp".to_owned(),
            "GET, HEAD",
        ),
        (
            STORYBOARD,
            "POST",
            "/v1/storyboard/demo/local/demo.mp4.vtt".to_owned(),
            "GET, HEAD",
        ),
        (
            ANIMATED,
            "PUT",
            "/v1/animated/demo/local/demo.mp4.gif".to_owned(),
            "GET, HEAD",
        ),
        (UPLOAD, "GET", "/v1/api/demo/uploads".to_owned(), "POST"),
        (VIDEO_URL, "PUT", VIDEO_URL.to_owned(), "POST"),
        (
            VIDEO_URL_RESULT,
            "DELETE",
            format!("/v1/video/thumbnail/{no_job}"),
            "GET",
        ),
        (TASK, "GET", TASK.to_owned(), "POST"),
        (TASK_STATUS, "POST", format!("/v2/tasks/{no_job}"), "GET"),
    ] {
        let a = t
            .check(
                "another method",
                &main,
                METHOD_NOT_ALLOWED,
                req(method, target).key(API_KEY),
                405,
                Some("method-not-allowed"),
            )
            .await;
        t.expect(a.header("allow") == Some(allow), || {
            format!("{path}: Allow {:?}", a.header("allow"))
        });
    }
    t.check(
        "an unknown path",
        &main,
        NOT_FOUND,
        req("GET", "/v2/nothing"),
        404,
        Some("not-found"),
    )
    .await;
    for (operation, target) in [
        ("/healthz", "/healthz"),
        (THUMBNAIL, "/v1/thumbnail/demo/local/demo.mp4.webp"),
        (STORYBOARD, "/v1/storyboard/demo/local/demo.mp4.vtt"),
        (ANIMATED, "/v1/animated/demo/local/demo.mp4.gif"),
    ] {
        t.check(
            "a 20 KiB header",
            &main,
            operation,
            req("GET", target).header("X-Padding", "a".repeat(20 * 1024)),
            431,
            None,
        )
        .await;
    }
    t.check(
        "demo page off",
        &frames,
        "/",
        req("GET", "/"),
        404,
        Some("not-found"),
    )
    .await;
    t.check("demo page off", &frames, "/", req("HEAD", "/"), 404, None)
        .await;

    // Thumbnails.
    let thumb = |org_env_file: &str| format!("/v1/thumbnail/{org_env_file}");
    let webp = thumb("demo/local/demo.mp4.webp?width=160&timeStamp=4.5");
    let a = t
        .check("webp", &main, THUMBNAIL, req("GET", &webp), 200, None)
        .await;
    t.expect(is_image(&a.body, a.header("content-type")), || {
        format!("webp: not a WebP: {:?}", a.header("content-type"))
    });
    let etag = a.header("etag").unwrap_or_default().to_owned();
    for (name, target) in [
        (
            "jpeg",
            thumb("demo/local/portrait.mp4.jpg?height=120&quality=70"),
        ),
        (
            "png",
            thumb("demo/local/clip.webm.png?width=96&height=96&fit=pad&time=1"),
        ),
        (
            "fit=scale",
            thumb("demo/local/clip.webm.webp?width=48&height=48&fit=scale"),
        ),
    ] {
        let a = t
            .check(name, &main, THUMBNAIL, req("GET", target), 200, None)
            .await;
        t.expect(is_image(&a.body, a.header("content-type")), || {
            format!(
                "{name}: not an image of its type: {:?}",
                a.header("content-type")
            )
        });
    }
    let a = t
        .check(
            "HEAD of a cached thumbnail",
            &main,
            THUMBNAIL,
            req("HEAD", &webp),
            200,
            None,
        )
        .await;
    t.expect(a.header("x-thumbnail-cache") == Some("hit"), || {
        format!(
            "HEAD: X-Thumbnail-Cache {:?}",
            a.header("x-thumbnail-cache")
        )
    });
    t.check(
        "If-None-Match",
        &main,
        THUMBNAIL,
        req("GET", &webp).header("If-None-Match", etag),
        304,
        None,
    )
    .await;
    for (name, method, target) in [
        (
            "width out of range",
            "GET",
            thumb("demo/local/demo.mp4.webp?width=5000"),
        ),
        (
            "unknown fit",
            "HEAD",
            thumb("demo/local/demo.mp4.webp?width=9&height=9&fit=squash"),
        ),
        ("encoded slash", "GET", thumb("demo/local/a%2Fb.mp4.webp")),
        ("unknown format", "GET", thumb("demo/local/demo.mp4.gif")),
    ] {
        t.check(
            name,
            &main,
            THUMBNAIL,
            req(method, target),
            400,
            Some("invalid-request"),
        )
        .await;
    }
    let private = thumb("demo/private/demo.mp4.webp?width=64");
    let a = t
        .check(
            "no token",
            &main,
            THUMBNAIL,
            req("GET", &private),
            401,
            Some("unauthorized"),
        )
        .await;
    t.expect(a.header("www-authenticate").is_some(), || {
        "401 without WWW-Authenticate".into()
    });
    t.check(
        "malformed token",
        &main,
        THUMBNAIL,
        req("GET", format!("{private}&token=not.a.token")),
        401,
        Some("unauthorized"),
    )
    .await;
    let a = t
        .check(
            "preview token",
            &main,
            PREVIEW,
            req(
                "POST",
                "/v1/api/demo/private/edge-ids/demo.mp4/preview-token",
            )
            .key(API_KEY),
            200,
            None,
        )
        .await;
    let token = a.json()["body"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    t.check(
        "?token=",
        &main,
        THUMBNAIL,
        req("GET", format!("{private}&token={token}")),
        200,
        None,
    )
    .await;
    t.check(
        "Authorization: Bearer",
        &main,
        THUMBNAIL,
        req("GET", &private).header("Authorization", format!("Bearer {token}")),
        200,
        None,
    )
    .await;
    t.check(
        "a token for another video",
        &main,
        THUMBNAIL,
        req(
            "GET",
            thumb(&format!("demo/private/portrait.mp4.webp?token={token}")),
        ),
        403,
        Some("forbidden"),
    )
    .await;
    for (name, target) in [
        ("unknown org", thumb("nobody/local/demo.mp4.webp")),
        ("unknown video", thumb("demo/local/missing.mp4.webp")),
    ] {
        t.check(
            name,
            &main,
            THUMBNAIL,
            req("GET", target),
            404,
            Some("not-found"),
        )
        .await;
    }
    t.check(
        "source over max_source_bytes",
        &small,
        THUMBNAIL,
        req("GET", thumb("demo/local/demo.mp4.webp?width=64")),
        413,
        Some("source-too-large"),
    )
    .await;
    t.check(
        "not a video",
        &main,
        THUMBNAIL,
        req("GET", thumb("demo/junk/notavideo.mp4.webp")),
        415,
        None,
    )
    .await;
    for (name, file, status, code) in [
        (
            "a growing EVENT playlist",
            "event.m3u8",
            409,
            "growing-playlist",
        ),
        ("a live playlist", "live.m3u8", 415, "live-stream"),
        (
            "a playlist naming another host",
            "elsewhere.m3u8",
            403,
            "playlist-uri-forbidden",
        ),
        (
            "a playlist over max_playlist_bytes",
            "huge.m3u8",
            413,
            "stream-too-large",
        ),
    ] {
        t.check(
            name,
            &main,
            THUMBNAIL,
            req("GET", thumb(&format!("demo/junk/{file}.webp"))),
            status,
            Some(code),
        )
        .await;
    }
    t.check(
        "frame over max_frame_pixels",
        &frames,
        THUMBNAIL,
        req("GET", thumb("demo/local/demo.mp4.webp?width=64")),
        422,
        Some("frame-too-large"),
    )
    .await;
    t.check(
        "source answers 500",
        &main,
        THUMBNAIL,
        req("GET", thumb("demo/broken/demo.mp4.webp")),
        502,
        Some("source-error"),
    )
    .await;
    t.check(
        "source too slow",
        &main,
        THUMBNAIL,
        req("GET", thumb("demo/slow/demo.mp4.webp")),
        504,
        Some("source-timeout"),
    )
    .await;

    // `.auto`: the format the request's Accept names, with Vary: Accept
    // (also on 304); `timeStamp=auto`: the best frame.
    let auto = thumb("demo/local/clip.webm.auto?width=64&timeStamp=auto");
    let mut auto_etag = String::new();
    for (accept, content_type) in [
        ("image/avif,image/webp,*/*;q=0.8", "image/avif"),
        ("image/webp", "image/webp"),
        ("image/*", "image/jpeg"),
    ] {
        let a = t
            .check(
                &format!(".auto, Accept: {accept}"),
                &main,
                THUMBNAIL,
                req("GET", &auto).header("Accept", accept),
                200,
                None,
            )
            .await;
        t.expect(
            a.header("content-type") == Some(content_type)
                && is_image(&a.body, a.header("content-type"))
                && a.header("vary") == Some("Accept")
                && a.header("x-thumbnail-time").is_some(),
            || format!(".auto, Accept: {accept}: headers {:?}", a.headers),
        );
        if content_type == "image/webp" {
            auto_etag = a.header("etag").unwrap_or_default().to_owned();
        }
    }
    let a = t
        .check(
            ".auto, If-None-Match",
            &main,
            THUMBNAIL,
            req("GET", &auto)
                .header("Accept", "image/webp")
                .header("If-None-Match", auto_etag),
            304,
            None,
        )
        .await;
    t.expect(a.header("vary") == Some("Accept"), || {
        format!(".auto 304: headers {:?}", a.headers)
    });

    // Moments named through the video: a share of the duration, a frame
    // number, the best frame near a time, the keyframe before a time.
    for (name, query) in [
        ("a share of the duration", "timeStamp=25%25"),
        ("a frame number", "timeStamp=f3"),
        ("the best frame near a time", "timeStamp=auto:1"),
        ("auto with near", "timeStamp=auto&near=1"),
        ("the keyframe before a time", "timeStamp=1.5&snap=keyframe"),
    ] {
        let a = t
            .check(
                name,
                &main,
                THUMBNAIL,
                req(
                    "GET",
                    thumb(&format!("demo/local/clip.webm.webp?width=64&{query}")),
                ),
                200,
                None,
            )
            .await;
        t.expect(a.header("x-thumbnail-time").is_some(), || {
            format!("{name}: no X-Thumbnail-Time: {:?}", a.headers)
        });
    }
    t.check(
        "a frame past the last",
        &main,
        THUMBNAIL,
        req(
            "GET",
            thumb("demo/local/clip.webm.webp?width=64&timeStamp=f100000"),
        ),
        422,
        Some("past-end"),
    )
    .await;
    t.check(
        "a frame number of a playlist",
        &main,
        THUMBNAIL,
        req("GET", thumb("demo/junk/event.m3u8.webp?timeStamp=f3")),
        422,
        Some("unsupported-time"),
    )
    .await;
    t.check(
        "snap with auto",
        &main,
        THUMBNAIL,
        req(
            "GET",
            thumb("demo/local/clip.webm.webp?timeStamp=auto&snap=keyframe"),
        ),
        400,
        Some("invalid-request"),
    )
    .await;

    // Storyboards and animated previews: the same access, caching and
    // problems as thumbnails, through the same render queue. Small tiles
    // and few frames keep the renders of the debug build quick.
    let board = |org_env_file: &str| format!("/v1/storyboard/{org_env_file}");
    let anim = |org_env_file: &str| format!("/v1/animated/{org_env_file}");
    let sprite = board("demo/local/clip.webm.webp?width=48&tiles=6&columns=3");
    let a = t
        .check(
            "a sprite",
            &main,
            STORYBOARD,
            req("GET", &sprite),
            200,
            None,
        )
        .await;
    t.expect(is_image(&a.body, a.header("content-type")), || {
        format!("sprite: not a WebP: {:?}", a.header("content-type"))
    });
    let sprite_etag = a.header("etag").unwrap_or_default().to_owned();
    for (name, target) in [
        (
            "a JPEG sprite of exact frames",
            board("demo/local/portrait.mp4.jpg?width=32&interval=2&exact=1&quality=60"),
        ),
        (
            "a PNG sprite",
            board("demo/local/clip.webm.png?width=24&tiles=2"),
        ),
    ] {
        let a = t
            .check(name, &main, STORYBOARD, req("GET", target), 200, None)
            .await;
        t.expect(is_image(&a.body, a.header("content-type")), || {
            format!(
                "{name}: not an image of its type: {:?}",
                a.header("content-type")
            )
        });
    }
    // The descriptions point at the sprite above, absolute, with its
    // canonical query.
    let sprite_url =
        main.url("/v1/storyboard/demo/local/clip.webm.webp?width=48&tiles=6&columns=3&quality=80");
    let a = t
        .check(
            "WebVTT cues",
            &main,
            STORYBOARD,
            req(
                "GET",
                board("demo/local/clip.webm.vtt?width=48&tiles=6&columns=3"),
            ),
            200,
            None,
        )
        .await;
    let vtt = String::from_utf8_lossy(&a.body).into_owned();
    let cues = vtt.matches(" --> ").count();
    t.expect(
        a.header("content-type") == Some("text/vtt; charset=utf-8")
            && a.header("x-thumbnail-cache") == Some("hit")
            && vtt.starts_with("WEBVTT\n")
            && cues == 6
            && vtt.matches(&format!("{sprite_url}#xywh=")).count() == cues,
        || format!("vtt: {:?}\n{vtt}", a.header("content-type")),
    );
    let vtt_etag = a.header("etag").unwrap_or_default().to_owned();
    let a = t
        .check(
            "the JSON layout",
            &main,
            STORYBOARD,
            req(
                "GET",
                board("demo/local/clip.webm.JSON?width=48&tiles=6&columns=3"),
            ),
            200,
            None,
        )
        .await;
    let layout = a.json();
    t.expect(
        layout["url"] == sprite_url.as_str()
            && layout["tile_width"] == 48
            && layout["columns"] == 3
            && layout["rows"] == 2
            && layout["tiles"].as_array().map(Vec::len) == Some(6),
        || format!("layout: {layout}"),
    );
    t.expect(vtt_etag != sprite_etag, || {
        "the VTT has the sprite's ETag".into()
    });
    let a = t
        .check(
            "HEAD of a cached storyboard",
            &main,
            STORYBOARD,
            req("HEAD", &sprite),
            200,
            None,
        )
        .await;
    t.expect(
        a.header("x-thumbnail-cache") == Some("hit") && a.header("content-length").is_some(),
        || format!("storyboard HEAD: headers {:?}", a.headers),
    );
    for (name, target, etag) in [
        ("If-None-Match", &sprite, &sprite_etag),
        (
            "If-None-Match of the cues",
            &board("demo/local/clip.webm.vtt?width=48&tiles=6&columns=3"),
            &vtt_etag,
        ),
    ] {
        t.check(
            name,
            &main,
            STORYBOARD,
            req("GET", target).header("If-None-Match", etag.as_str()),
            304,
            None,
        )
        .await;
    }
    let webp_anim = anim("demo/local/clip.webm.webp?start=1&end=2&fps=4&width=32");
    let a = t
        .check(
            "an animated WebP",
            &main,
            ANIMATED,
            req("GET", &webp_anim),
            200,
            None,
        )
        .await;
    t.expect(
        is_image(&a.body, a.header("content-type")) && a.header("x-animation-frames") == Some("4"),
        || format!("animated WebP: headers {:?}", a.headers),
    );
    let anim_etag = a.header("etag").unwrap_or_default().to_owned();
    let a = t
        .check(
            "a GIF",
            &main,
            ANIMATED,
            req(
                "GET",
                anim("demo/local/portrait.mp4.GIF?start=0.5&end=1.5&fps=3&width=24"),
            ),
            200,
            None,
        )
        .await;
    t.expect(
        a.header("content-type") == Some("image/gif")
            && a.body.starts_with(b"GIF89a")
            && a.header("x-animation-frames") == Some("3"),
        || format!("GIF: headers {:?}", a.headers),
    );
    let a = t
        .check(
            "HEAD of a cached animation",
            &main,
            ANIMATED,
            req("HEAD", &webp_anim),
            200,
            None,
        )
        .await;
    t.expect(a.header("x-thumbnail-cache") == Some("hit"), || {
        format!("animated HEAD: headers {:?}", a.headers)
    });
    t.check(
        "If-None-Match",
        &main,
        ANIMATED,
        req("GET", &webp_anim).header("If-None-Match", anim_etag),
        304,
        None,
    )
    .await;
    for (name, method, operation, target) in [
        (
            "bad parameters",
            "GET",
            STORYBOARD,
            board("demo/local/clip.webm.vtt?width=0&tiles=101&columns=x&exact=2&format=gif"),
        ),
        (
            "tiles and interval",
            "HEAD",
            STORYBOARD,
            board("demo/local/clip.webm.json?tiles=5&interval=2"),
        ),
        (
            "a GIF storyboard",
            "GET",
            STORYBOARD,
            board("demo/local/clip.webm.gif"),
        ),
        (
            "past animated_max_secs",
            "GET",
            ANIMATED,
            anim("demo/local/clip.webm.webp?start=1&end=12"),
        ),
        (
            "bad parameters",
            "HEAD",
            ANIMATED,
            anim("demo/local/clip.webm.gif?fps=31&width=641&quality=0"),
        ),
        (
            "a PNG animation",
            "GET",
            ANIMATED,
            anim("demo/local/clip.webm.png"),
        ),
    ] {
        t.check(
            name,
            &main,
            operation,
            req(method, target),
            400,
            Some("invalid-request"),
        )
        .await;
    }
    // Tokens: none, and one for thumbnails (the preview token's audience).
    for (operation, target) in [
        (STORYBOARD, board("demo/private/demo.mp4.vtt")),
        (ANIMATED, anim("demo/private/demo.mp4.webp?width=16&fps=1")),
    ] {
        let a = t
            .check(
                "no token",
                &main,
                operation,
                req("GET", &target),
                401,
                Some("unauthorized"),
            )
            .await;
        t.expect(a.header("www-authenticate").is_some(), || {
            format!("{target}: 401 without WWW-Authenticate")
        });
        let sep = if target.contains('?') { '&' } else { '?' };
        t.check(
            "a thumbnail's token",
            &main,
            operation,
            req("GET", format!("{target}{sep}token={token}")),
            403,
            Some("forbidden"),
        )
        .await;
    }
    // The other problems, each for both: (name, server, path after org/env,
    // status, problem).
    for (name, server, env_file, status, code) in [
        (
            "unknown org",
            &main,
            "nobody/local/demo.mp4",
            404,
            "not-found",
        ),
        (
            "unknown video",
            &main,
            "demo/local/missing.mp4",
            404,
            "not-found",
        ),
        (
            "source over max_source_bytes",
            &small,
            "demo/local/demo.mp4",
            413,
            "source-too-large",
        ),
        (
            "not a video",
            &main,
            "demo/junk/notavideo.mp4",
            415,
            "unsupported-media",
        ),
        (
            "frame over max_frame_pixels",
            &frames,
            "demo/local/clip.webm",
            422,
            "frame-too-large",
        ),
        (
            "a growing EVENT playlist",
            &main,
            "demo/junk/event.m3u8",
            409,
            "growing-playlist",
        ),
        (
            "a live playlist",
            &main,
            "demo/junk/live.m3u8",
            415,
            "live-stream",
        ),
        (
            "a playlist naming another host",
            &main,
            "demo/junk/elsewhere.m3u8",
            403,
            "playlist-uri-forbidden",
        ),
        (
            "a playlist over max_playlist_bytes",
            &main,
            "demo/junk/huge.m3u8",
            413,
            "stream-too-large",
        ),
        (
            "source answers 500",
            &main,
            "demo/broken/demo.mp4",
            502,
            "source-error",
        ),
        (
            "source too slow",
            &main,
            "demo/slow/demo.mp4",
            504,
            "source-timeout",
        ),
    ] {
        t.check(
            name,
            server,
            STORYBOARD,
            req("GET", board(&format!("{env_file}.vtt?width=16&tiles=2"))),
            status,
            Some(code),
        )
        .await;
        t.check(
            name,
            server,
            ANIMATED,
            req("GET", anim(&format!("{env_file}.gif?end=1&fps=1&width=16"))),
            status,
            Some(code),
        )
        .await;
    }
    t.check(
        "a sprite over storyboard_max_pixels",
        &main,
        STORYBOARD,
        req(
            "HEAD",
            board("demo/local/clip.webm.png?width=640&tiles=100&columns=100"),
        ),
        422,
        Some("frame-too-large"),
    )
    .await;
    // A storyboard over several sprite sheets: its JSON lists them, a
    // later sheet is a sprite, one past the last is 404; more tiles than
    // pictures.storyboard_max_tiles (1000) is 422; tiles=scenes.
    let a = t
        .check(
            "the JSON of two sheets",
            &main,
            STORYBOARD,
            req("GET", board("demo/local/clip.webm.json?width=16&tiles=150")),
            200,
            None,
        )
        .await;
    let layout = a.json();
    t.expect(
        layout["sheets"].as_array().map(Vec::len) == Some(2)
            && layout["tiles"].as_array().map(Vec::len) == Some(150)
            && layout["tiles"][149]["sheet"] == 1,
        || format!("two sheets: {layout}"),
    );
    t.check(
        "a later sheet",
        &main,
        STORYBOARD,
        req(
            "GET",
            board("demo/local/clip.webm.webp?width=16&tiles=150&sheet=1"),
        ),
        200,
        None,
    )
    .await;
    t.check(
        "a sheet past the last",
        &main,
        STORYBOARD,
        req(
            "GET",
            board("demo/local/clip.webm.webp?width=16&tiles=150&sheet=2"),
        ),
        404,
        Some("not-found"),
    )
    .await;
    t.check(
        "more tiles than storyboard_max_tiles",
        &main,
        STORYBOARD,
        req("GET", board("demo/local/clip.webm.vtt?tiles=1001")),
        422,
        Some("too-many-tiles"),
    )
    .await;
    t.check(
        "scene tiles",
        &main,
        STORYBOARD,
        req(
            "GET",
            board("demo/local/demo.mp4.json?width=16&tiles=scenes"),
        ),
        200,
        None,
    )
    .await;

    // Jobs.
    let submit = |key: &str| format!("/v1/api/demo/edge-ids/{key}/thumbnails");
    let job = json!({"width": 64, "timestampMs": 1000, "id": "contract"});
    let a = t
        .check(
            "a new job",
            &main,
            SUBMIT,
            req("POST", submit("demo.mp4")).key(API_KEY).json(&job),
            202,
            None,
        )
        .await;
    let id = a.json()["body"]["jobId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let done = finished(&main, &id).await;
    t.expect(done["status"] == "completed", || format!("job: {done}"));
    t.check(
        "a job",
        &main,
        JOB,
        req("GET", format!("/v1/api/demo/thumbnails/{id}")).key(API_KEY),
        200,
        None,
    )
    .await;
    let a = t
        .check(
            "a job for the best frame",
            &main,
            SUBMIT,
            req("POST", submit("portrait.mp4"))
                .key(API_KEY)
                .json(&json!({"width": 64, "timestampMs": "auto"})),
            202,
            None,
        )
        .await;
    t.expect(
        a.json()["body"]["url"]
            .as_str()
            .is_some_and(|u| u.contains("timeStamp=auto")),
        || format!("timestampMs auto: {}", a.json()),
    );
    t.check(
        "a completed job again",
        &main,
        SUBMIT,
        req("POST", submit("demo.mp4")).key(API_KEY).json(&job),
        200,
        None,
    )
    .await;
    for (name, body) in [
        (
            "bad fields",
            json!({"width": 0, "timestampMs": -1, "fit": "squash"}),
        ),
        ("not an object", json!([1, 2])),
    ] {
        t.check(
            name,
            &main,
            SUBMIT,
            req("POST", submit("demo.mp4")).key(API_KEY).json(&body),
            400,
            Some("invalid-request"),
        )
        .await;
    }
    t.check(
        "not JSON",
        &main,
        SUBMIT,
        req("POST", submit("demo.mp4"))
            .key(API_KEY)
            .raw_body(b"{width: 1".to_vec()),
        400,
        Some("invalid-request"),
    )
    .await;
    t.check(
        "no API key",
        &main,
        SUBMIT,
        req("POST", submit("demo.mp4")).json(&job),
        401,
        Some("unauthorized"),
    )
    .await;
    t.check(
        "another org's key",
        &main,
        SUBMIT,
        req("POST", submit("demo.mp4")).key(OTHER_KEY).json(&job),
        403,
        Some("forbidden"),
    )
    .await;
    t.check(
        "unknown video",
        &main,
        SUBMIT,
        req("POST", submit("missing.mp4")).key(API_KEY).json(&job),
        404,
        Some("not-found"),
    )
    .await;
    let big = format!(
        "{{\"width\": 64, \"timestampMs\": 1, \"id\": \"{}\"}}",
        "x".repeat(1_100_000)
    );
    t.check(
        "a body over 1 MiB",
        &main,
        SUBMIT,
        req("POST", submit("demo.mp4"))
            .key(API_KEY)
            .raw_body(big.clone().into_bytes()),
        413,
        Some("body-too-large"),
    )
    .await;
    t.check(
        "not a video",
        &main,
        SUBMIT,
        req("POST", submit("notavideo.mp4"))
            .key(API_KEY)
            .json(&json!({"width": 64, "timestampMs": 0, "env": "junk"})),
        415,
        None,
    )
    .await;
    t.check(
        "past the end",
        &main,
        SUBMIT,
        req("POST", submit("demo.mp4"))
            .key(API_KEY)
            .json(&json!({"width": 64, "timestampMs": 99_000_000})),
        422,
        Some("past-end"),
    )
    .await;
    for (name, env, status, code) in [
        ("source answers 500", "broken", 502, "source-error"),
        ("source too slow", "slow", 504, "source-timeout"),
    ] {
        t.check(
            name,
            &main,
            SUBMIT,
            req("POST", submit("demo.mp4"))
                .key(API_KEY)
                .json(&json!({"width": 64, "timestampMs": 0, "env": env})),
            status,
            Some(code),
        )
        .await;
    }

    // Batches.
    let batch = "/v1/api/demo/thumbnails/batch";
    let items = json!({"items": [
        {"key": "demo.mp4", "width": 64, "timestampMs": 1000},
        {"key": "missing.mp4", "width": 64, "timestampMs": 1000},
        {"width": 64, "timestampMs": 1000},
    ]});
    let a = t
        .check(
            "a batch",
            &main,
            BATCH,
            req("POST", batch).key(API_KEY).json(&items),
            200,
            None,
        )
        .await;
    let results = a.json()["body"]["items"].clone();
    t.expect(
        results[0]["jobId"].is_string()
            && results[1]["error"]["status"] == 404
            && results[2]["error"]["status"] == 400,
        || format!("batch items: {results}"),
    );
    t.check(
        "an empty batch",
        &main,
        BATCH,
        req("POST", batch).key(API_KEY).json(&json!({"items": []})),
        400,
        Some("invalid-request"),
    )
    .await;
    t.check(
        "no API key",
        &main,
        BATCH,
        req("POST", batch).json(&items),
        401,
        Some("unauthorized"),
    )
    .await;
    t.check(
        "another org's key",
        &main,
        BATCH,
        req("POST", batch).key(OTHER_KEY).json(&items),
        403,
        Some("forbidden"),
    )
    .await;
    t.check(
        "a body over 1 MiB",
        &main,
        BATCH,
        req("POST", batch).key(API_KEY).raw_body(big.into_bytes()),
        413,
        Some("body-too-large"),
    )
    .await;

    // A job's state, the best thumbnail, preview tokens: the other answers.
    let job_url = format!("/v1/api/demo/thumbnails/{id}");
    t.check(
        "no API key",
        &main,
        JOB,
        req("GET", &job_url),
        401,
        Some("unauthorized"),
    )
    .await;
    t.check(
        "another org's key",
        &main,
        JOB,
        req("GET", &job_url).key(OTHER_KEY),
        403,
        Some("forbidden"),
    )
    .await;
    t.check(
        "unknown job",
        &main,
        JOB,
        req(
            "GET",
            "/v1/api/demo/thumbnails/thumb_job_000000000000000000000000",
        )
        .key(API_KEY),
        404,
        Some("not-found"),
    )
    .await;
    let best = |key_query: &str| format!("/v1/api/demo/edge-ids/{key_query}");
    let a = t
        .check(
            "a completed job's thumbnail",
            &main,
            BEST,
            req("GET", best("demo.mp4/thumbnail")).key(API_KEY),
            200,
            None,
        )
        .await;
    t.expect(a.json()["body"]["available"] == true, || {
        format!("best: {}", a.json())
    });
    let a = t
        .check(
            "none yet",
            &main,
            BEST,
            req("GET", best("clip.webm/thumbnail?env=local")).key(API_KEY),
            200,
            None,
        )
        .await;
    t.expect(a.json()["body"]["available"] == false, || {
        format!("best: {}", a.json())
    });
    for (name, target, key, status, code) in [
        (
            "bad key",
            best("a%2Fb.mp4/thumbnail"),
            Some(API_KEY),
            400,
            "invalid-request",
        ),
        (
            "no API key",
            best("demo.mp4/thumbnail"),
            None,
            401,
            "unauthorized",
        ),
        (
            "another org's key",
            best("demo.mp4/thumbnail"),
            Some(OTHER_KEY),
            403,
            "forbidden",
        ),
        (
            "unknown env",
            best("demo.mp4/thumbnail?env=nope"),
            Some(API_KEY),
            404,
            "not-found",
        ),
    ] {
        let mut r = req("GET", target);
        if let Some(k) = key {
            r = r.key(k);
        }
        t.check(name, &main, BEST, r, status, Some(code)).await;
    }
    let preview = |env_key: &str| format!("/v1/api/demo/{env_key}/preview-token");
    for (name, target, key, status, code) in [
        (
            "bad key",
            preview("private/edge-ids/a%2Fb.mp4"),
            Some(API_KEY),
            400,
            "invalid-request",
        ),
        (
            "no API key",
            preview("private/edge-ids/demo.mp4"),
            None,
            401,
            "unauthorized",
        ),
        (
            "another org's key",
            preview("private/edge-ids/demo.mp4"),
            Some(OTHER_KEY),
            403,
            "forbidden",
        ),
        (
            "unknown env",
            preview("nope/edge-ids/demo.mp4"),
            Some(API_KEY),
            404,
            "not-found",
        ),
    ] {
        let mut r = req("POST", target);
        if let Some(k) = key {
            r = r.key(k);
        }
        t.check(name, &main, PREVIEW, r, status, Some(code)).await;
    }

    // Uploads into the org's store: a new video (202), the same bytes
    // again, waiting for their job (200), and each refusal.
    let demo_mp4 = std::fs::read(samples().join("demo.mp4")).unwrap();
    let clip_webm = std::fs::read(samples().join("clip.webm")).unwrap();
    let portrait_mp4 = std::fs::read(samples().join("portrait.mp4")).unwrap();
    let text_file = "this is a text file, not a video\n"
        .repeat(100)
        .into_bytes();
    let uploads = |query: &str| format!("/v1/api/demo/uploads{query}");
    let upload_parts = [
        Part::Text("time", "4.5"),
        Part::Text("size", "320x180"),
        Part::Text("fit", "max"),
        Part::Text("id", "contract-upload"),
        Part::File("video", "demo.mp4", &demo_mp4),
    ];
    let a = t
        .check(
            "an upload",
            &main,
            UPLOAD,
            req("POST", uploads("")).key(API_KEY).form(&upload_parts),
            202,
            None,
        )
        .await;
    let uploaded = a.json()["body"].clone();
    let upload_key = uploaded["key"].as_str().unwrap_or_default().to_owned();
    let upload_job = uploaded["jobId"].as_str().unwrap_or_default().to_owned();
    t.expect(
        uploaded["stored"] == "new"
            && uploaded["env"] == "uploads"
            && uploaded["job_id"] == uploaded["jobId"]
            && uploaded["duration"].is_number()
            && upload_key.len() == 32,
        || format!("upload: {uploaded}"),
    );
    let a = t
        .check(
            "the same upload again, waiting for its job (apy-token)",
            &main,
            UPLOAD,
            req("POST", uploads(""))
                .header("apy-token", API_KEY)
                .header("Prefer", "wait=30")
                .form(&upload_parts),
            200,
            None,
        )
        .await;
    let again = a.json()["body"].clone();
    t.expect(
        again["stored"] == "existing"
            && again["key"] == upload_key.as_str()
            && again["jobId"] == upload_job.as_str()
            && again["status"] == "completed",
        || format!("the same upload again: {again}"),
    );
    let a = t
        .check(
            "bad form fields",
            &main,
            UPLOAD,
            req("POST", uploads("")).key(API_KEY).form(&[
                Part::Text("time", "soon"),
                Part::Text("size", "0x0"),
                Part::Text("format", "gif"),
                Part::Text("fit", "squash"),
                Part::Text("quality", "101"),
                Part::File("video", "a.mp4", &text_file),
            ]),
            400,
            Some("invalid-request"),
        )
        .await;
    let locations: Vec<Value> = a.json()["errors"]
        .as_array()
        .map(|e| e.iter().map(|e| e["location"].clone()).collect())
        .unwrap_or_default();
    t.expect(
        locations
            == [
                "body.time",
                "body.size",
                "body.format",
                "body.fit",
                "body.quality",
            ],
        || format!("bad form fields: locations {locations:?}"),
    );
    t.check(
        "no video",
        &main,
        UPLOAD,
        req("POST", uploads(""))
            .key(API_KEY)
            .form(&[Part::Text("time", "1")]),
        400,
        Some("invalid-request"),
    )
    .await;
    t.check(
        "not a form",
        &main,
        UPLOAD,
        req("POST", uploads(""))
            .key(API_KEY)
            .json(&json!({"video": "demo.mp4"})),
        415,
        Some("unsupported-media"),
    )
    .await;
    t.check(
        "not a video",
        &main,
        UPLOAD,
        req("POST", uploads("")).key(API_KEY).form(&[Part::File(
            "video",
            "notavideo.mp4",
            &text_file,
        )]),
        415,
        Some("unsupported-media"),
    )
    .await;
    let small_form = [Part::File("video", "clip.webm", &clip_webm)];
    t.check(
        "no API key",
        &main,
        UPLOAD,
        req("POST", uploads("")).form(&small_form),
        401,
        Some("unauthorized"),
    )
    .await;
    t.check(
        "another org's key",
        &main,
        UPLOAD,
        req("POST", uploads("")).key(OTHER_KEY).form(&small_form),
        403,
        Some("forbidden"),
    )
    .await;
    t.check(
        "an org without an upload store",
        &main,
        UPLOAD,
        req("POST", "/v1/api/other/uploads")
            .key(OTHER_KEY)
            .form(&small_form),
        404,
        Some("not-found"),
    )
    .await;
    t.check(
        "unknown store",
        &main,
        UPLOAD,
        req("POST", uploads("?env=nope"))
            .key(API_KEY)
            .form(&small_form),
        404,
        Some("not-found"),
    )
    .await;
    let a = t
        .check(
            "a time past the end",
            &main,
            UPLOAD,
            req("POST", uploads("")).key(API_KEY).form(&[
                Part::Text("time", "9999"),
                Part::File("video", "demo.mp4", &demo_mp4),
            ]),
            422,
            Some("past-end"),
        )
        .await;
    t.expect(a.json()["durationMs"].is_u64(), || {
        format!("past-end upload: {}", a.json())
    });
    let a = t
        .check(
            "an upload over max_upload_bytes",
            &main,
            UPLOAD,
            req("POST", uploads("?env=tiny"))
                .key(API_KEY)
                .form(&[Part::File("video", "demo.mp4", &demo_mp4)]),
            413,
            Some("upload-too-large"),
        )
        .await;
    t.expect(
        a.header("connection") == Some("close") && a.json()["maxBytes"] == 400_000,
        || {
            format!(
                "upload-too-large: Connection {:?}, {}",
                a.header("connection"),
                a.json()
            )
        },
    );
    t.check(
        "a Content-Length over max_upload_bytes",
        &main,
        UPLOAD,
        req("POST", uploads("?env=tiny")).key(API_KEY).form(&[
            Part::File("video", "demo.mp4", &demo_mp4),
            Part::File("more", "portrait.mp4", &portrait_mp4),
        ]),
        413,
        Some("upload-too-large"),
    )
    .await;
    let a = t
        .check(
            "an upload over the store's quota",
            &main,
            UPLOAD,
            req("POST", uploads("?env=full"))
                .key(API_KEY)
                .form(&small_form),
            507,
            Some("store-full"),
        )
        .await;
    t.expect(a.header("connection") == Some("close"), || {
        format!("store-full: Connection {:?}", a.header("connection"))
    });
    let stalled = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"v.mp4\"\r\n\r\n\
         some bytes, and then nothing"
    );
    t.check(
        "a body that stalls",
        &main,
        UPLOAD,
        req("POST", uploads(""))
            .key(API_KEY)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .raw_body(stalled.into_bytes())
            .content_length(100_000),
        408,
        Some("upload-timeout"),
    )
    .await;
    t.check(
        "checking it would read over max_source_bytes",
        &small,
        UPLOAD,
        req("POST", uploads(""))
            .key(API_KEY)
            .form(&[Part::File("video", "demo.mp4", &demo_mp4)]),
        413,
        Some("source-too-large"),
    )
    .await;
    t.check(
        "a frame over max_frame_pixels",
        &frames,
        UPLOAD,
        req("POST", uploads(""))
            .key(API_KEY)
            .form(&[Part::File("video", "demo.mp4", &demo_mp4)]),
        422,
        Some("frame-too-large"),
    )
    .await;

    // A job that fails while the client waits answers the problem it
    // failed with (the probe at submission does not decode the frame).
    let a = t
        .check(
            "a job that fails while the client waits",
            &frames,
            SUBMIT,
            req("POST", submit("demo.mp4"))
                .key(API_KEY)
                .header("Prefer", "wait=30")
                .json(&json!({"width": 64, "timestampMs": 1000})),
            422,
            Some("frame-too-large"),
        )
        .await;
    t.expect(a.json()["jobId"].is_string(), || {
        format!("failed while waiting: {}", a.json())
    });

    // Video URLs: these orgs take none, so every well-formed request is
    // refused before any request is made.
    let a = t
        .check(
            "a video URL (Authorization: Bearer)",
            &main,
            VIDEO_URL,
            req("POST", VIDEO_URL)
                .header("Authorization", format!("Bearer {API_KEY}"))
                .json(
                    &json!({"video_url": "https://media.example.com/videos/talk.mp4", "second": 3}),
                ),
            403,
            Some("video-url-forbidden"),
        )
        .await;
    t.expect(a.json()["error"].is_string(), || {
        format!("video-url-forbidden: {}", a.json())
    });
    let a = t
        .check(
            "no video_url",
            &main,
            VIDEO_URL,
            req("POST", VIDEO_URL)
                .key(API_KEY)
                .json(&json!({"second": 3})),
            400,
            Some("invalid-request"),
        )
        .await;
    t.expect(
        a.json()["error"] == "Invalid request: 'video_url' is a required property",
        || format!("no video_url: {}", a.json()),
    );
    t.check(
        "no API key",
        &main,
        VIDEO_URL,
        req("POST", VIDEO_URL).json(&json!({"video_url": "https://media.example.com/v.mp4"})),
        401,
        Some("unauthorized"),
    )
    .await;
    let big_body = format!("{{\"video_url\": \"{}\"}}", "x".repeat(1_100_000)).into_bytes();
    t.check(
        "a body over 1 MiB",
        &main,
        VIDEO_URL,
        req("POST", VIDEO_URL)
            .key(API_KEY)
            .raw_body(big_body.clone()),
        413,
        Some("body-too-large"),
    )
    .await;
    // Any job of the org, in this shape: the upload's.
    let a = t
        .check(
            "a job as a video-URL result",
            &main,
            VIDEO_URL_RESULT,
            req("GET", format!("/v1/video/thumbnail/{upload_job}")).key(API_KEY),
            200,
            None,
        )
        .await;
    t.expect(
        a.json()["status"] == "completed" && a.json()["response"].is_string(),
        || format!("video-URL result: {}", a.json()),
    );
    for (name, key, status, code) in [
        ("unknown job", Some(API_KEY), 404, "not-found"),
        ("no API key", None, 401, "unauthorized"),
    ] {
        let mut r = req("GET", format!("/v1/video/thumbnail/{no_job}"));
        if let Some(k) = key {
            r = r.key(k);
        }
        t.check(name, &main, VIDEO_URL_RESULT, r, status, Some(code))
            .await;
    }

    // Conversion tasks on the uploaded video.
    let a = t
        .check(
            "a task",
            &main,
            TASK,
            req("POST", TASK).key(API_KEY).json(&json!({
                "operation": "thumbnail", "input": upload_key, "output_format": "png",
                "width": 96, "height": 96, "fit": "max", "tag": "contract"
            })),
            201,
            None,
        )
        .await;
    let task_id = a.json()["data"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let a = t
        .check(
            "a task, waiting for it",
            &main,
            TASK_STATUS,
            req("GET", format!("/v2/tasks/{task_id}"))
                .key(API_KEY)
                .header("Prefer", "wait=30"),
            200,
            None,
        )
        .await;
    let task = a.json()["data"].clone();
    t.expect(
        task["status"] == "finished"
            && task["result"]["files"][0]["filename"] == format!("{upload_key}.png"),
        || format!("task: {task}"),
    );
    for (name, body, status, code, task_code) in [
        (
            "no input",
            json!({"operation": "thumbnail"}),
            400,
            "invalid-request",
            "INVALID_DATA",
        ),
        (
            "unknown input",
            json!({"operation": "thumbnail", "input": "0123456789abcdef0123456789abcdef"}),
            404,
            "not-found",
            "NOT_FOUND",
        ),
        (
            "not a video",
            json!({"operation": "thumbnail", "input": "notavideo.mp4", "env": "junk"}),
            415,
            "unsupported-media",
            "UNSUPPORTED_FORMAT",
        ),
        (
            "source answers 500",
            json!({"operation": "thumbnail", "input": "demo.mp4", "env": "broken"}),
            502,
            "source-error",
            "PROCESSING_FAILED",
        ),
        (
            "source too slow",
            json!({"operation": "thumbnail", "input": "demo.mp4", "env": "slow"}),
            504,
            "source-timeout",
            "TIMEOUT",
        ),
    ] {
        let a = t
            .check(
                name,
                &main,
                TASK,
                req("POST", TASK).key(API_KEY).json(&body),
                status,
                Some(code),
            )
            .await;
        t.expect(
            a.json()["code"] == task_code && a.json()["message"].is_string(),
            || format!("task {name}: {}", a.json()),
        );
    }
    // A task whose render fails (its frame is over max_frame_pixels, which
    // the probe at submission does not decode): an `error` task, and the
    // same job as a failed video-URL result.
    let a = t
        .check(
            "a task that fails, waiting for it",
            &frames,
            TASK,
            req("POST", TASK)
                .key(API_KEY)
                .header("Prefer", "wait=30")
                .json(&json!({"operation": "thumbnail", "input": "demo.mp4", "env": "local"})),
            201,
            None,
        )
        .await;
    let failed = a.json()["data"].clone();
    t.expect(
        failed["status"] == "error"
            && failed["code"] == "INVALID_DATA"
            && failed["message"].is_string(),
        || format!("failed task: {failed}"),
    );
    let failed_id = failed["id"].as_str().unwrap_or_default();
    let a = t
        .check(
            "a failed job as a video-URL result",
            &frames,
            VIDEO_URL_RESULT,
            req("GET", format!("/v1/video/thumbnail/{failed_id}")).key(API_KEY),
            200,
            None,
        )
        .await;
    t.expect(
        a.json()["status"] == "failed" && a.json()["problem"]["status"] == 422,
        || format!("failed video-URL result: {}", a.json()),
    );
    t.check(
        "no API key",
        &main,
        TASK,
        req("POST", TASK).json(&json!({"operation": "thumbnail", "input": upload_key})),
        401,
        Some("unauthorized"),
    )
    .await;
    t.check(
        "a body over 1 MiB",
        &main,
        TASK,
        req("POST", TASK).key(API_KEY).raw_body(big_body),
        413,
        Some("body-too-large"),
    )
    .await;
    for (name, key, status, code) in [
        ("unknown task", Some(API_KEY), 404, "not-found"),
        ("no API key", None, 401, "unauthorized"),
    ] {
        let mut r = req("GET", format!("/v2/tasks/{no_job}"));
        if let Some(k) = key {
            r = r.key(k);
        }
        t.check(name, &main, TASK_STATUS, r, status, Some(code))
            .await;
    }

    // Full queues. A job whose source reads wait holds the only render
    // slot and fills the job queue (one job); a thumbnail waits for the
    // slot; the next one is refused.
    let held_job = json!({"width": 64, "timestampMs": 8000});
    let a = t
        .check(
            "a job that waits on its source",
            &queues,
            SUBMIT,
            req("POST", submit("demo.mp4")).key(API_KEY).json(&held_job),
            202,
            None,
        )
        .await;
    let held_id = a.json()["body"]["jobId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let a = t
        .check(
            "a full job queue",
            &queues,
            SUBMIT,
            req("POST", submit("demo.mp4"))
                .key(API_KEY)
                .json(&json!({"width": 65, "timestampMs": 8000})),
            429,
            Some("queue-full"),
        )
        .await;
    t.expect(a.json()["maxQueue"] == 1, || {
        format!("queue-full: {}", a.json())
    });
    let started = Instant::now();
    while source.traffic("held:fault/hold/demo.mp4").requests == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the held job never read its source:\n{}",
            queues.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waiting = tokio::spawn({
        let addr = queues.addr;
        async move {
            send(
                addr,
                &req("GET", "/v1/thumbnail/demo/held/clip.webm.webp?width=64"),
            )
            .await
        }
    });
    // Its source was opened (outside the render slot); give it a moment
    // to join the queue.
    let started = Instant::now();
    while source.traffic("fault/hold/clip.webm").requests == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the queued thumbnail never opened its source:\n{}",
            queues.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.check(
        "a full render queue",
        &queues,
        THUMBNAIL,
        req("GET", "/v1/thumbnail/demo/held/portrait.mp4.webp?width=64"),
        503,
        Some("busy"),
    )
    .await;
    for (operation, target) in [
        (
            STORYBOARD,
            "/v1/storyboard/demo/held/portrait.mp4.vtt?width=16&tiles=2",
        ),
        (
            ANIMATED,
            "/v1/animated/demo/held/portrait.mp4.gif?end=1&fps=1&width=16",
        ),
    ] {
        t.check(
            "a full render queue",
            &queues,
            operation,
            req("GET", target),
            503,
            Some("busy"),
        )
        .await;
    }
    // Calls 1 and 2 were the submissions; 3 passes; 4 is over the limit.
    let held_url = format!("/v1/api/demo/thumbnails/{held_id}");
    t.check(
        "a job",
        &queues,
        JOB,
        req("GET", &held_url).key(API_KEY),
        200,
        None,
    )
    .await;
    let a = t
        .check(
            "over the rate limit",
            &queues,
            JOB,
            req("GET", &held_url).key(API_KEY),
            429,
            Some("rate-limited"),
        )
        .await;
    t.expect(a.header("ratelimit-limit") == Some("1"), || {
        format!("rate-limited: headers {:?}", a.headers)
    });
    // The other API shapes count against the same limit, and say so in
    // their own members.
    let a = t
        .check(
            "over the rate limit",
            &queues,
            VIDEO_URL,
            req("POST", VIDEO_URL)
                .key(API_KEY)
                .json(&json!({"video_url": "https://media.example.com/v.mp4"})),
            429,
            Some("rate-limited"),
        )
        .await;
    t.expect(a.json()["error"].is_string(), || {
        format!("video URL rate-limited: {}", a.json())
    });
    let a = t
        .check(
            "over the rate limit",
            &queues,
            TASK,
            req("POST", TASK)
                .key(API_KEY)
                .json(&json!({"operation": "thumbnail", "input": "demo.mp4"})),
            429,
            Some("rate-limited"),
        )
        .await;
    t.expect(a.json()["code"] == "TOO_MANY_REQUESTS", || {
        format!("task rate-limited: {}", a.json())
    });
    t.check(
        "over the rate limit",
        &queues,
        UPLOAD,
        req("POST", "/v1/api/demo/uploads")
            .key(API_KEY)
            .form(&small_form),
        429,
        Some("rate-limited"),
    )
    .await;
    source.release();
    let queued = waiting.await.unwrap();
    t.expect(queued.status == 200, || {
        format!("the queued thumbnail: {}", queued.status)
    });

    // Shutting down: readiness fails and jobs are refused while the
    // listener stays open for shutdown_delay_secs.
    small.terminate();
    let started = Instant::now();
    while send(small.addr, &req("GET", "/readyz")).await.status != 503 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "/readyz never answered 503 after SIGTERM:\n{}",
            small.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for method in ["GET", "HEAD"] {
        t.check(
            "shutting down",
            &small,
            "/readyz",
            req(method, "/readyz"),
            503,
            Some("shutting-down"),
        )
        .await;
    }
    t.check(
        "a job while shutting down",
        &small,
        SUBMIT,
        req("POST", submit("demo.mp4")).key(API_KEY).json(&job),
        503,
        Some("shutting-down"),
    )
    .await;
    let a = t
        .check(
            "a task while shutting down",
            &small,
            TASK,
            req("POST", TASK)
                .key(API_KEY)
                .json(&json!({"operation": "thumbnail", "input": "demo.mp4", "env": "local"})),
            503,
            Some("shutting-down"),
        )
        .await;
    t.expect(a.json()["code"] == "SERVICE_UNAVAILABLE", || {
        format!("task shutting down: {}", a.json())
    });

    // Every answer against the description.
    let work = tempfile::tempdir().unwrap();
    let spec = work.path().join("openapi.json");
    let observations = work.path().join("observations.json");
    std::fs::write(&spec, &served.body).unwrap();
    std::fs::write(
        &observations,
        serde_json::to_vec_pretty(&t.observations).unwrap(),
    )
    .unwrap();
    let out = Command::new(venv.join("bin/python"))
        .arg(root().join("tests/contract/check_responses.py"))
        .arg(&spec)
        .arg(&observations)
        .args(EACH_STATUS)
        .output()
        .expect("run tests/contract/check_responses.py");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        eprintln!("{report}");
    } else {
        t.failures.push(format!("check_responses.py:\n{report}"));
    }
    common::assert_no_failures(&t.failures);
}
