//! What an operator sees: `/metrics`, `/healthz` and `/readyz`, request
//! ids, `Server-Timing`, the request-head limit, structured logs that keep
//! secrets out, and shutdown on SIGTERM of the real binary.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{client, config, fixtures, free_port, metric, samples, Proc, SourceServer, Thumbd};
use serde_json::Value;

async fn scrape(t: &Thumbd) -> String {
    let resp = client().get(t.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    resp.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_requests_caches_sources_and_stages() {
    let source = SourceServer::start(fixtures()).await;
    // Held reads of a sample (large enough to be read past its first bytes).
    let holding = SourceServer::start(samples()).await;
    let held = format!(
        "[orgs.demo.envs.held]\nsource = \"http://{}/fault/hold/{{key}}\"\n",
        holding.addr
    );
    let t = Thumbd::start(&config(Some(&source), &held)).await;
    let c = client();
    let url = t.url("/v1/thumbnail/demo/http/h264_faststart.mp4.webp?width=80&timeStamp=1");
    for expected in ["miss", "hit"] {
        let resp = c.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-thumbnail-cache"], expected);
    }
    // Ten concurrent requests for a new thumbnail whose source holds its
    // answer until all ten have arrived: one render, nine waits.
    let url = t.url("/v1/thumbnail/demo/held/demo.mp4.png?width=80&timeStamp=2");
    let answers = tokio::spawn({
        let (c, url) = (c.clone(), url.clone());
        async move { futures_util::future::join_all((0..10).map(|_| c.get(&url).send())).await }
    });
    for _ in 0..100 {
        if holding.traffic("fault/hold/demo.mp4").requests > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    holding.release();
    for a in answers.await.unwrap() {
        assert_eq!(a.unwrap().status(), 200);
    }
    let resp = c
        .get(t.url("/v1/thumbnail/demo/http/missing.mp4.webp"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let text = scrape(&t).await;
    let m = |s: &str| metric(&text, s);
    assert_eq!(
        m(r#"thumbd_http_requests_total{route="thumbnail",status="2xx"}"#),
        12.0,
        "{text}"
    );
    assert_eq!(
        m(r#"thumbd_http_requests_total{route="thumbnail",status="4xx"}"#),
        1.0
    );
    assert_eq!(m("thumbd_cache_hits_total"), 1.0);
    assert_eq!(m("thumbd_renders_total"), 2.0);
    assert_eq!(m("thumbd_cache_misses_total"), 2.0);
    assert_eq!(m("thumbd_cache_coalesced_total"), 9.0, "{text}");
    assert_eq!(m("thumbd_cache_entries"), 2.0);
    assert!(m("thumbd_cache_bytes") > 0.0);
    // (The holding server also counts each held read under a marker path.)
    let traffic =
        (source.total_requests() + holding.traffic("fault/hold/demo.mp4").requests) as f64;
    assert_eq!(m("thumbd_source_requests_total"), traffic, "{text}");
    assert!(m("thumbd_source_fetched_bytes_total") > 1000.0);
    assert_eq!(m(r#"thumbd_source_errors_total{kind="not_found"}"#), 1.0);
    for stage in ["fetch", "decode", "encode"] {
        assert!(
            m(&format!(
                r#"thumbd_render_stage_duration_seconds_count{{stage="{stage}"}}"#
            )) >= 2.0,
            "{stage}: {text}"
        );
    }
    assert_eq!(m("thumbd_render_frames_decoded_count"), 2.0);
    // At least one packet per render.
    assert!(m("thumbd_render_frames_decoded_sum") >= 2.0);
    assert_eq!(m("thumbd_renders_in_flight"), 0.0);
    assert_eq!(m(r#"thumbd_jobs{state="pending"}"#), 0.0);
    assert!(text.contains("# TYPE thumbd_http_request_duration_seconds histogram"));
    assert!(text.contains("# TYPE thumbd_webhook_deliveries counter"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_render_queue_refusals_and_evictions() {
    // The samples: large enough that a render reads past the first bytes.
    let source = SourceServer::start(samples()).await;
    let extra = format!(
        "[orgs.demo.envs.held]\nsource = \"http://{}/fault/hold/{{key}}\"\n\
         [render]\nconcurrency = 1\nqueue = 1\n[cache]\nmax_bytes = 6000\n",
        source.addr
    );
    let t = Thumbd::start(&config(Some(&source), &extra)).await;
    let c = client();
    let held = |time: u32| {
        c.get(t.url(&format!(
            "/v1/thumbnail/demo/held/demo.mp4.png?width=64&timeStamp={time}"
        )))
        .send()
    };
    // One render holds the only slot (its source holds), one waits for it.
    let first = tokio::spawn(held(1));
    let second = tokio::spawn(held(2));
    let mut text = String::new();
    for _ in 0..200 {
        text = scrape(&t).await;
        if metric(&text, "thumbd_renders_queued") == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&text, "thumbd_renders_in_flight"), 1.0, "{text}");
    assert_eq!(metric(&text, "thumbd_renders_queued"), 1.0, "{text}");
    // A third finds the queue full.
    let third = held(3).await.unwrap();
    assert_eq!(third.status(), 503);
    source.release();
    for r in [first, second] {
        assert_eq!(r.await.unwrap().unwrap().status(), 200);
    }
    let text = scrape(&t).await;
    assert_eq!(metric(&text, "thumbd_renders_refused_total"), 1.0, "{text}");
    assert_eq!(metric(&text, "thumbd_renders_in_flight"), 0.0);
    assert_eq!(metric(&text, "thumbd_renders_queued"), 0.0);

    // More thumbnails than 6000 bytes hold: the oldest make room.
    for width in [150, 151, 152, 153, 154, 155] {
        let url = t.url(&format!(
            "/v1/thumbnail/demo/files/vp9.webm.png?width={width}&timeStamp=1"
        ));
        assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
    }
    let text = scrape(&t).await;
    assert!(
        metric(&text, "thumbd_cache_evictions_total") >= 1.0,
        "{text}"
    );
    assert!(metric(&text, "thumbd_cache_bytes") <= 6000.0, "{text}");
}

#[tokio::test]
async fn health_readiness_and_request_ids() {
    let t = Thumbd::start(&config(None, "")).await;
    let c = client();
    for (path, body) in [("/healthz", "ok\n"), ("/readyz", "ready\n")] {
        let resp = c.get(t.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(resp.text().await.unwrap(), body);
    }
    // A sane id is echoed; anything else is replaced by a generated one.
    let resp = c
        .get(t.url("/healthz"))
        .header("x-request-id", "edge-7f3a_01")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "edge-7f3a_01");
    let long = "x".repeat(200);
    let mut seen = Vec::new();
    for sent in [None, Some(long.as_str()), Some("two words")] {
        let mut req = c.get(t.url("/v1/thumbnail/nope/nope/a.mp4.webp"));
        if let Some(id) = sent {
            req = req.header("x-request-id", id);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 404);
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 16, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!seen.contains(&id));
        seen.push(id);
    }
}

#[tokio::test]
async fn server_timing_shows_where_a_render_spent_its_time() {
    let t = Thumbd::start(&config(None, "")).await;
    let c = client();
    let get = |q: &str| c.get(t.url(&format!("/v1/thumbnail/demo/files/vp9.webm.webp?{q}")));
    let resp = get("width=80&timeStamp=1.5").send().await.unwrap();
    let timing = resp.headers()["server-timing"].to_str().unwrap().to_owned();
    let dur = |name: &str| -> f64 {
        let part = timing
            .split(", ")
            .find(|p| p.starts_with(&format!("{name};")))
            .unwrap_or_else(|| panic!("no {name} in {timing:?}"));
        part.rsplit_once("dur=").unwrap().1.parse().unwrap()
    };
    assert!(timing.starts_with("cache;desc=miss"), "{timing}");
    assert!(dur("decode") > 0.0 && dur("encode") > 0.0, "{timing}");
    assert!(dur("fetch") >= 0.0);
    // The same thumbnail again: a hit.
    let resp = get("width=80&timeStamp=1.5").send().await.unwrap();
    assert_eq!(resp.headers()["server-timing"], "cache;desc=hit");
    // Another size of the same frame reuses the decoded frame.
    let resp = get("width=120&timeStamp=1.5").send().await.unwrap();
    let timing = resp.headers()["server-timing"].to_str().unwrap();
    assert!(
        timing.contains("frame;desc=\"decoded frame reused\""),
        "{timing}"
    );
    assert!(!timing.contains("decode;"), "{timing}");
}

/// Sends one request with a header of `size` bytes; returns the status line
/// and whether the server closed the connection after answering.
fn request_with_header(addr: std::net::SocketAddr, size: usize) -> (String, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(size)
    );
    // The server may answer and close before it has read everything.
    let _ = s.write_all(head.as_bytes());
    let mut reader = BufReader::new(s);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut rest = Vec::new();
    let mut closed = false;
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => {
                rest.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&rest);
                // A kept-alive 200 "ok" ends with its body.
                if text.ends_with("\r\n\r\nok\n") {
                    break;
                }
            }
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    (status.trim_end().to_owned(), closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_heads_over_the_limit_get_431() {
    let t = Thumbd::start(&config(None, "[server]\nmax_header_bytes = 16384\n")).await;
    let addr = t.addr;
    let (small, big) = tokio::task::spawn_blocking(move || {
        (
            request_with_header(addr, 12 * 1024),
            request_with_header(addr, 200 * 1024),
        )
    })
    .await
    .unwrap();
    assert_eq!(small, ("HTTP/1.1 200 OK".to_owned(), false));
    assert_eq!(big.0, "HTTP/1.1 431 Request Header Fields Too Large");
    assert!(big.1, "the connection is closed after a 431");
}

/// The real binary serving `toml` (plus a job database) with extra
/// environment variables; its base URL, and the folder holding its config
/// and log.
async fn spawn(toml: &str, env: &[(&str, &str)]) -> (Proc, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("thumbd.toml");
    let port = free_port();
    std::fs::write(
        &file,
        format!(
            "[jobs]\ndb_path = \"{}/jobs.db\"\n{toml}",
            dir.path().display()
        ),
    )
    .unwrap();
    let p = Proc::thumbd(Some(&file), port, env, dir.path().join("thumbd.log")).await;
    (p, format!("http://127.0.0.1:{port}"), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_fails_readiness_then_closes_then_finishes_in_flight_work() {
    let source = SourceServer::start(samples()).await;
    let toml = format!(
        "[server]\nshutdown_delay_secs = 2\nshutdown_grace_secs = 20\n\
         [orgs.demo.envs.held]\nsource = \"http://{}/fault/hold/{{key}}\"\n",
        source.addr
    );
    let (mut p, base, _dir) = spawn(&toml, &[]).await;
    let c = client();
    // A render that cannot finish until the source is released.
    let slow = tokio::spawn(
        c.get(format!(
            "{}/v1/thumbnail/demo/held/demo.mp4.webp?width=64&timeStamp=3",
            base
        ))
        .send(),
    );
    // Wait until it is under way (its first read reached the source).
    for _ in 0..100 {
        if source.total_requests() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(source.total_requests() > 0, "the render never started");

    p.terminate();
    // Not ready at once, while new connections are still accepted.
    let mut refused_ready = false;
    for _ in 0..50 {
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let r = fresh.get(format!("{base}/readyz")).send().await.unwrap();
        if r.status() == 503 {
            let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            assert_eq!(body["type"], "urn:thumbd:problem:shutting-down");
            refused_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused_ready, "/readyz did not turn 503 after SIGTERM");
    // After the delay the listener is closed: a new connection is refused.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let addr = base.trim_start_matches("http://").to_owned();
    let connect =
        std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2));
    assert!(
        connect.is_err(),
        "a new connection was accepted after the delay"
    );
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "exited with a render in flight"
    );

    // The source answers; the render's client gets its thumbnail; exit 0.
    source.release();
    let resp = slow.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/webp");
    assert!(!resp.bytes().await.unwrap().is_empty());
    assert_eq!(
        p.wait_exit(Duration::from_secs(15)).await,
        Some(0),
        "{}",
        p.log()
    );
}

const API_KEY: &str = "ops-test-api-key-0123456789";
const SIGNING_SECRET: &str = "ops-test-signing-secret-0123456789abcdef";
const WEBHOOK_SECRET: &str = "ops-test-webhook-secret-0123456789";

fn secret_config() -> String {
    format!(
        r#"
[orgs.demo]
api_keys = ["{API_KEY}"]
webhook_secret = "{WEBHOOK_SECRET}"
[[orgs.demo.signing_keys]]
kid = "k1"
alg = "HS256"
secret = "{SIGNING_SECRET}"
[orgs.demo.envs.local]
source = "file:{samples}/{{key}}"
[orgs.demo.envs.private]
source = "file:{samples}/{{key}}"
access = "signed"
"#,
        samples = samples().display()
    )
}

fn sign(config_toml: &str, exp_offset: i64) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, config_toml).unwrap();
    let expires = exp_offset.to_string();
    common::sign(
        &file,
        &[
            "--org",
            "demo",
            "--env",
            "private",
            "--key",
            "demo.mp4",
            "--kid",
            "k1",
            "--expires-in",
            &expires,
        ],
    )
}

/// Requests that carry every kind of secret, good and bad.
async fn exercise_secrets(base: &str, token: &str) {
    let c = client();
    let signed = format!("{base}/v1/thumbnail/demo/private/demo.mp4.webp?width=64&token={token}");
    assert_eq!(c.get(&signed).send().await.unwrap().status(), 200);
    // A tampered token: refused, and logged without the token.
    let tampered =
        format!("{base}/v1/thumbnail/demo/private/demo.mp4.webp?width=65&token={token}x");
    assert_eq!(c.get(&tampered).send().await.unwrap().status(), 401);
    let bearer = c
        .get(format!(
            "{base}/v1/thumbnail/demo/private/demo.mp4.webp?width=66"
        ))
        .bearer_auth(format!("{token}y"))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 401);
    assert!(!bearer.text().await.unwrap().contains(token));
    let job = c
        .post(format!("{base}/v1/api/demo/edge-ids/demo.mp4/thumbnails"))
        .header("x-api-key", API_KEY)
        .body(r#"{"width": 64, "timestampMs": 1000, "env": "local"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(job.status(), 202);
    let bad_key = c
        .post(format!("{base}/v1/api/demo/edge-ids/demo.mp4/thumbnails"))
        .header("x-api-key", format!("{API_KEY}-wrong"))
        .body(r#"{"width": 64, "timestampMs": 1000}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), 401);
    assert!(!bad_key.text().await.unwrap().contains(API_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_follow_a_request_by_id_and_never_hold_secrets() {
    let toml = secret_config();
    let token = sign(&toml, 600);
    let (p, base, _dir) = spawn(
        &format!("[server]\nshutdown_delay_secs = 0\n{toml}"),
        &[
            ("THUMBD_LOG_FORMAT", "json"),
            ("THUMBD_LOG", "thumbd=debug"),
        ],
    )
    .await;
    let resp = client()
        .get(format!(
            "{}/v1/thumbnail/demo/local/demo.mp4.jpg?width=50&token=abc",
            base
        ))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    exercise_secrets(&base, &token).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = p.log();

    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let line = lines
        .iter()
        .find(|l| l["request_id"] == "trace-me-42")
        .unwrap_or_else(|| panic!("no access line for the request id:\n{logs}"));
    assert_eq!(line["target"], "thumbd::access");
    assert_eq!(line["method"], "GET");
    assert_eq!(
        line["path"],
        "/v1/thumbnail/demo/local/demo.mp4.jpg?width=50&token=REDACTED"
    );
    assert_eq!(line["status"], 200);
    assert_eq!(line["cache"], "miss");
    assert!(line["bytes"].as_u64().unwrap() > 100);
    assert!(line["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(line["level"] == "INFO" && line["timestamp"].is_string());

    for secret in [token.as_str(), API_KEY, SIGNING_SECRET, WEBHOOK_SECRET] {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_have_no_colour_codes_off_a_terminal_and_no_secrets() {
    let toml = secret_config();
    let token = sign(&toml, 600);
    let (p, base, _dir) = spawn(&format!("[server]\nshutdown_delay_secs = 0\n{toml}"), &[]).await;
    exercise_secrets(&base, &token).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = p.log();
    assert!(logs.contains("thumbd::access"), "{logs}");
    assert!(logs.contains("token=REDACTED"), "{logs}");
    assert!(
        !logs.contains('\x1b'),
        "ANSI escape codes in a log file:\n{logs}"
    );
    for secret in [token.as_str(), API_KEY, SIGNING_SECRET, WEBHOOK_SECRET] {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_log_format_is_a_clear_start_up_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_thumbd"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("THUMBD_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("THUMBD_LOG_FORMAT"), "{err}");
}
