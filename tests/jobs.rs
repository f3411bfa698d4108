//! The job API end to end with the real server: jobs pre-warm exactly the
//! cache entries their URLs ask for; validation; idempotency; batches;
//! bounded queue; per-org fairness; transient retries; signed webhooks;
//! rate limits; and jobs surviving `kill -9` and SIGTERM of the real binary.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use std::time::Duration;

use common::{call, fixtures, free_port, problem, samples, Proc, SourceServer, Thumbd};
use serde_json::{json, Value};

const KEY_A: &str = "org-a-api-key-0123456789";
const KEY_B: &str = "org-b-api-key-0123456789";
const WEBHOOK_SECRET: &str = "webhook-secret-for-tests";

/// Org `a` (env `main` over HTTP, env `held` whose reads past the index wait
/// for the source's release, env `flaky`) and org `b`.
fn config(source: &SourceServer, extra: &str, webhook: Option<SocketAddr>) -> String {
    let hosts = webhook.map_or(String::new(), |a| format!("\"{a}\""));
    format!(
        r#"
[render]
concurrency = 4
[fetch]
initial_read_bytes = 65536
[jobs]
retry_backoff_ms = 50
webhook_backoff_ms = 50
{extra}
[orgs.a]
api_keys = ["{KEY_A}"]
default_env = "main"
webhook_secret = "{WEBHOOK_SECRET}"
webhook_hosts = [{hosts}]
[orgs.a.envs.main]
source = "http://{src}/{{key}}"
[orgs.a.envs.held]
source = "http://{src}/fault/hold/{{key}}"
[orgs.a.envs.flaky]
source = "http://{src}/fault/flaky/{{key}}"
[orgs.b]
api_keys = ["{KEY_B}"]
default_env = "main"
[orgs.b.envs.main]
source = "http://{src}/{{key}}"
"#,
        src = source.addr
    )
}

async fn submit(t: &Thumbd, org_key: &str, video: &str, body: Value) -> (u16, Value) {
    let (org, key) = if org_key == KEY_B {
        ("b", KEY_B)
    } else {
        ("a", KEY_A)
    };
    let url = t.url(&format!("/v1/api/{org}/edge-ids/{video}/thumbnails"));
    let (status, _, body) = call(reqwest::Method::POST, &url, Some(key), Some(body)).await;
    (status, body)
}

async fn job(t: &Thumbd, org: &str, id: &str) -> Value {
    let key = if org == "b" { KEY_B } else { KEY_A };
    let (status, _, body) = call(
        reqwest::Method::GET,
        &t.url(&format!("/v1/api/{org}/thumbnails/{id}")),
        Some(key),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["body"].clone()
}

/// Polls a job until it is final (bounded: 60 s).
async fn finished(t: &Thumbd, org: &str, id: &str) -> Value {
    for _ in 0..600 {
        let j = job(t, org, id).await;
        if j["status"] == "completed" || j["status"] == "failed" {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_job_makes_its_url_a_cache_hit() {
    let source = SourceServer::start(samples()).await;
    let t = Thumbd::start(&config(&source, "", None)).await;
    let body = json!({"width": 320, "height": 180, "timestampMs": 4500, "id": "my-ref"});
    let (status, submitted) = submit(&t, KEY_A, "demo.mp4", body.clone()).await;
    assert_eq!(status, 202, "{submitted}");
    let s = &submitted["body"];
    assert!(s["jobId"].as_str().unwrap().starts_with("thumb_job_"));
    assert_eq!(s["status"], "pending");
    assert_eq!(s["id"], "my-ref");
    let url = s["url"].as_str().unwrap().to_owned();
    assert_eq!(
        url,
        t.url("/v1/thumbnail/a/main/demo.mp4.webp?width=320&height=180&timeStamp=4.5")
    );

    let done = finished(&t, "a", s["jobId"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        (done["width"].as_u64(), done["height"].as_u64()),
        (Some(320), Some(180))
    );
    let (status, headers, _) = common::get(&url).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-thumbnail-cache"], "hit");

    // The same job again renders nothing.
    let (status, again) = submit(&t, KEY_A, "demo.mp4", body).await;
    assert_eq!(status, 200);
    assert_eq!(again["body"]["status"], "completed");
    assert_eq!(again["body"]["jobId"], s["jobId"]);

    // The best thumbnail of that video is this job; of another, none yet.
    let best = t.url("/v1/api/a/edge-ids/demo.mp4/thumbnail");
    let (status, _, b) = call(reqwest::Method::GET, &best, Some(KEY_A), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        b["body"],
        json!({"url": url, "available": true, "width": 320, "height": 180, "jobId": s["jobId"]})
    );
    let other = t.url("/v1/api/a/edge-ids/clip.webm/thumbnail?env=main");
    let (_, _, b) = call(reqwest::Method::GET, &other, Some(KEY_A), None).await;
    assert_eq!(b["body"]["available"], false);
    assert_eq!(
        b["body"]["url"],
        t.url("/v1/thumbnail/a/main/clip.webm.webp").as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_are_validated() {
    let source = SourceServer::start(samples()).await;
    let t = Thumbd::start(&config(&source, "", None)).await;
    let (status, body) = submit(
        &t,
        KEY_A,
        "demo.mp4",
        json!({"width": 5000, "height": 0, "timestampMs": -5, "format": "gif"}),
    )
    .await;
    assert_eq!(status, 400);
    let p = &body;
    let located = common::error_locations(p);
    let expected: Vec<(String, String)> = [
        ("body.width", "5000"),
        ("body.height", "0"),
        ("body.timestampMs", "-5"),
        ("body.format", "gif"),
    ]
    .iter()
    .map(|(l, v)| (l.to_string(), v.to_string()))
    .collect();
    assert_eq!(located, expected);
    let (status, body) = submit(&t, KEY_A, "demo.mp4", json!({"height": 90})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"].as_array().unwrap().len(),
        2,
        "width and timestampMs are required"
    );

    let not_json = common::client()
        .post(t.url("/v1/api/a/edge-ids/demo.mp4/thumbnails"))
        .header("x-api-key", KEY_A)
        .body("{width: 3")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert_eq!(
        not_json.headers()["content-type"],
        "application/problem+json"
    );

    let (status, body) = submit(
        &t,
        KEY_A,
        "demo.mp4",
        json!({"width": 100, "timestampMs": 60000}),
    )
    .await;
    assert_eq!(status, 422, "past the end: {body}");
    assert_eq!(body["durationMs"], 10000);
    let (status, _) = submit(
        &t,
        KEY_A,
        "missing.mp4",
        json!({"width": 100, "timestampMs": 0}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = submit(
        &t,
        KEY_A,
        "demo.mp4",
        json!({"width": 100, "timestampMs": 0, "env": "nope"}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = submit(
        &t,
        KEY_A,
        "demo.mp4",
        json!({"width": 100, "timestampMs": 0, "webhookUrl": "http://evil.example.com/hook"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["location"], "body.webhookUrl");

    let url = t.url("/v1/api/a/edge-ids/demo.mp4/thumbnails");
    let body = Some(json!({"width": 100, "timestampMs": 0}));
    assert_eq!(
        call(reqwest::Method::POST, &url, None, body.clone())
            .await
            .0,
        401
    );
    assert_eq!(
        call(
            reqwest::Method::POST,
            &url,
            Some("not-a-key-0123456789"),
            body.clone()
        )
        .await
        .0,
        401
    );
    assert_eq!(
        call(reqwest::Method::POST, &url, Some(KEY_B), body.clone())
            .await
            .0,
        403
    );
    assert_eq!(
        call(reqwest::Method::GET, &url, Some(KEY_A), None).await.0,
        405
    );
    assert_eq!(
        call(
            reqwest::Method::GET,
            &t.url("/v1/api/a/thumbnails/thumb_job_nope"),
            Some(KEY_A),
            None
        )
        .await
        .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_each_item() {
    let source = SourceServer::start(samples()).await;
    let t = Thumbd::start(&config(&source, "", None)).await;
    let items = json!({"items": [
        {"key": "demo.mp4", "width": 160, "timestampMs": 1000},
        {"key": "clip.webm", "width": 160, "timestampMs": 2000, "format": "jpg"},
        {"key": "demo.mp4", "width": 0, "timestampMs": 1000},
        {"key": "missing.mp4", "width": 160, "timestampMs": 1000},
        {"width": 160, "timestampMs": 1000},
        {"key": "portrait.mp4", "height": 160, "width": 90, "timestampMs": 3000},
    ]});
    let (status, _, body) = call(
        reqwest::Method::POST,
        &t.url("/v1/api/a/thumbnails/batch"),
        Some(KEY_A),
        Some(items),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let results = body["body"]["items"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    let statuses: Vec<Value> = results
        .iter()
        .map(|r| r["error"]["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        [
            Value::Null,
            Value::Null,
            json!(400),
            json!(404),
            json!(400),
            Value::Null
        ]
    );
    for r in results.iter().filter(|r| r.get("jobId").is_some()) {
        let done = finished(&t, "a", r["jobId"].as_str().unwrap()).await;
        assert_eq!(done["status"], "completed");
        let (_, headers, _) = common::get(done["url"].as_str().unwrap()).await;
        assert_eq!(headers["x-thumbnail-cache"], "hit", "{}", done["url"]);
    }
    let too_many = json!({"items": (0..101).map(|i| json!({"key": "demo.mp4", "width": 10 + i, "timestampMs": 0})).collect::<Vec<_>>()});
    assert_eq!(
        call(
            reqwest::Method::POST,
            &t.url("/v1/api/a/thumbnails/batch"),
            Some(KEY_A),
            Some(too_many)
        )
        .await
        .0,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_429_and_one_org_cannot_starve_another() {
    let source = SourceServer::start(samples()).await;
    let extra = "max_queue = 6\nper_org_concurrency = 1";
    let t = Thumbd::start(&config(&source, extra, None)).await;
    // Org a fills the queue with jobs whose source reads wait.
    let mut held = Vec::new();
    for i in 0..6 {
        let (status, body) = submit(
            &t,
            KEY_A,
            "demo.mp4",
            json!({"width": 100 + i, "timestampMs": 8000, "env": "held"}),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        held.push(body["body"]["jobId"].as_str().unwrap().to_owned());
    }
    // A pending job submitted again is returned unchanged.
    let (status, again) = submit(
        &t,
        KEY_A,
        "demo.mp4",
        json!({"width": 105, "timestampMs": 8000, "env": "held"}),
    )
    .await;
    assert_eq!(
        (status, again["body"]["jobId"].as_str().unwrap()),
        (202, held[5].as_str())
    );
    let (status, body) = submit(
        &t,
        KEY_A,
        "demo.mp4",
        json!({"width": 99, "timestampMs": 8000, "env": "held"}),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        (body["queueLength"].as_u64(), body["maxQueue"].as_u64()),
        (Some(6), Some(6))
    );
    // Org b's jobs are refused too while the queue is full...
    let (status, _) = submit(
        &t,
        KEY_B,
        "demo.mp4",
        json!({"width": 64, "timestampMs": 1000}),
    )
    .await;
    assert_eq!(status, 429);

    // ...but once room frees up, they run even while org a's first job is
    // stuck and five more wait behind it.
    let t2 = Thumbd::start(&config(
        &source,
        "max_queue = 100\nper_org_concurrency = 1",
        None,
    ))
    .await;
    for i in 0..10 {
        let (status, _) = submit(
            &t2,
            KEY_A,
            "demo.mp4",
            json!({"width": 200 + i, "timestampMs": 8000, "env": "held"}),
        )
        .await;
        assert_eq!(status, 202);
    }
    let mut b_jobs = Vec::new();
    for w in [64, 65] {
        let (status, body) = submit(
            &t2,
            KEY_B,
            "demo.mp4",
            json!({"width": w, "timestampMs": 1000}),
        )
        .await;
        assert_eq!(status, 202);
        b_jobs.push(body["body"]["jobId"].as_str().unwrap().to_owned());
    }
    for id in &b_jobs {
        assert_eq!(finished(&t2, "b", id).await["status"], "completed");
    }
    source.release();
    for id in &held {
        assert_eq!(finished(&t, "a", id).await["status"], "completed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_and_video_failures_are_not() {
    let source = SourceServer::start(fixtures()).await;
    let t = Thumbd::start(&config(&source, "", None)).await;
    // The first read of the packets fails with 500; the retry succeeds.
    let big = SourceServer::start(samples()).await;
    let t_big = Thumbd::start(&config(&big, "", None)).await;
    let (status, body) = submit(
        &t_big,
        KEY_A,
        "demo.mp4",
        json!({"width": 120, "timestampMs": 7000, "env": "flaky"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let done = finished(&t_big, "a", body["body"]["jobId"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        big.traffic("flaked:fault/flaky/demo.mp4").requests,
        1,
        "the source did fail once"
    );

    // An 8192x8192 video probes fine but is refused at render: failed at once.
    let (status, body) = submit(
        &t,
        KEY_A,
        "huge.mkv",
        json!({"width": 120, "timestampMs": 0}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let done = finished(&t, "a", body["body"]["jobId"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["status"], 422);
    assert_eq!(done["error"]["type"], "urn:thumbd:problem:frame-too-large");
    // Audio only is refused at submission.
    let (status, body) = submit(
        &t,
        KEY_A,
        "audio_only.m4a",
        json!({"width": 120, "timestampMs": 0}),
    )
    .await;
    assert_eq!(status, 415, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_and_retried() {
    let source = SourceServer::start(samples()).await;
    let hook = common::WebhookReceiver::start(true).await;
    let t = Thumbd::start(&config(&source, "", Some(hook.addr))).await;
    let webhook_url = format!("http://{}/hooks/thumbd", hook.addr);
    let (status, body) = submit(
        &t,
        KEY_A,
        "clip.webm",
        json!({"width": 96, "timestampMs": 2500, "webhookUrl": webhook_url, "id": "ref-7"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["body"]["jobId"].as_str().unwrap().to_owned();
    assert_eq!(finished(&t, "a", &id).await["status"], "completed");
    // Delivered on the second try.
    let mut doc = Value::Null;
    for _ in 0..100 {
        doc = job(&t, "a", &id).await;
        if doc["webhook"]["state"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(doc["webhook"], json!({"state": "delivered", "attempts": 2}));
    let metrics = t.metrics().await;
    for (series, value) in [
        (r#"thumbd_webhook_deliveries_total{outcome="retried"}"#, 1.0),
        (
            r#"thumbd_webhook_deliveries_total{outcome="delivered"}"#,
            1.0,
        ),
        (r#"thumbd_webhook_deliveries_total{outcome="failed"}"#, 0.0),
        (r#"thumbd_jobs{state="completed"}"#, 1.0),
        (r#"thumbd_jobs{state="pending"}"#, 0.0),
        ("thumbd_jobs_queue_length", 0.0),
    ] {
        assert_eq!(
            common::metric(&metrics, series),
            value,
            "{series}\n{metrics}"
        );
    }
    let calls = hook.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    let (sig, body) = &calls[1];
    assert!(
        common::signed_with(WEBHOOK_SECRET, sig, body),
        "signature {sig}"
    );
    let sent: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        (
            sent["jobId"].as_str(),
            sent["status"].as_str(),
            sent["id"].as_str()
        ),
        (Some(id.as_str()), Some("completed"), Some("ref-7"))
    );

    let other_port = format!("http://127.0.0.1:{}/hook", hook.addr.port() + 1);
    let (status, _) = submit(
        &t,
        KEY_A,
        "clip.webm",
        json!({"width": 97, "timestampMs": 0, "webhookUrl": other_port}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_rate_limited_when_configured() {
    let source = SourceServer::start(samples()).await;
    let t = Thumbd::start(&config(
        &source,
        "rate_limit_per_minute = 6\nrate_limit_burst = 2",
        None,
    ))
    .await;
    let url = t.url("/v1/api/a/thumbnails/thumb_job_x");
    assert_eq!(
        call(reqwest::Method::GET, &url, Some(KEY_A), None).await.0,
        404
    );
    assert_eq!(
        call(reqwest::Method::GET, &url, Some(KEY_A), None).await.0,
        404
    );
    let (status, headers, body) = call(reqwest::Method::GET, &url, Some(KEY_A), None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(headers["ratelimit-limit"], "6");
    assert_eq!(headers["ratelimit-remaining"], "0");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    assert_eq!(
        problem(&serde_json::to_vec(&body).unwrap())["type"],
        "urn:thumbd:problem:rate-limited"
    );
    // Another key has its own bucket.
    let other = t.url("/v1/api/b/thumbnails/thumb_job_x");
    assert_eq!(
        call(reqwest::Method::GET, &other, Some(KEY_B), None)
            .await
            .0,
        404
    );
}

/// The real binary with `config` on `port`, its log beside the config.
async fn spawn_thumbd(config: &Path, port: u16) -> Proc {
    Proc::thumbd(Some(config), port, &[], config.with_file_name("thumbd.log")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_jobs_survive_kill_9_and_sigterm() {
    let source = SourceServer::start(samples()).await;
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("thumbd.toml");
    let port = free_port();
    let text = config(
        &source,
        &format!("db_path = \"{}/jobs.db\"", dir.path().display()),
        None,
    );
    std::fs::write(
        &config_file,
        format!("[server]\npublic_base_url = \"http://127.0.0.1:{port}\"\nshutdown_delay_secs = 0\nshutdown_grace_secs = 1\n{text}"),
    )
    .unwrap();

    let base = format!("http://127.0.0.1:{port}");
    let mut p = spawn_thumbd(&config_file, port).await;
    let client = common::client();
    let mut ids = Vec::new();
    for i in 0..4 {
        let resp = client
            .post(format!("{base}/v1/api/a/edge-ids/demo.mp4/thumbnails"))
            .header("x-api-key", KEY_A)
            .body(json!({"width": 300 + i, "timestampMs": 8000, "env": "held"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        ids.push(body["body"]["jobId"].as_str().unwrap().to_owned());
    }
    // Crash while jobs are running (stuck on the source) and pending.
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    drop(p);

    // Start again; still stuck. Then SIGTERM: it stops within the grace period.
    let mut p = spawn_thumbd(&config_file, port).await;
    p.terminate();
    let exited = p.wait_exit(Duration::from_secs(10)).await;
    assert!(exited.is_some(), "thumbd did not stop on SIGTERM");

    // The source recovers; a third start finishes every accepted job.
    source.release();
    let _p = spawn_thumbd(&config_file, port).await;
    for id in &ids {
        let mut status = Value::Null;
        for _ in 0..300 {
            let resp = client
                .get(format!("{base}/v1/api/a/thumbnails/{id}"))
                .header("x-api-key", KEY_A)
                .send()
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
            status = body["body"]["status"].clone();
            if status == "completed" || status == "failed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status, "completed", "{id}");
    }
}
