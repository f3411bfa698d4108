//! Jobs shared by several nodes through a real PostgreSQL (Debian's, one
//! throwaway server per test): a job submitted to one node is seen and
//! waited for from another; jobs run once cluster-wide and both nodes take
//! some; a node killed with -9 has its running jobs (and their webhooks)
//! taken over once their leases lapse; the queue bound counts every node's
//! jobs; a bad database URL stops the start with a clear message and no
//! password; a webhook is sent by one node only, and once by it even when
//! its lease lapses mid-delivery; a video URL registered on one node has
//! its thumbnails served by another (the URL book is shared).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::postgres::{Postgres, PASSWORD};
use common::{free_port, samples, Proc, SourceServer, Thumbd, WebhookReceiver};
use serde_json::{json, Value};

const KEY: &str = "org-a-api-key-0123456789";
const WEBHOOK_SECRET: &str = "webhook-secret-for-tests";

/// A node of org `a` (env `main` over HTTP, env `held` whose reads past the
/// index wait for the source's release) on `pg`, as `node`, with a short
/// lease and poll. `extra` goes into `[jobs]`.
fn node(
    pg: &Postgres,
    source: &SourceServer,
    node: &str,
    extra: &str,
    hook: Option<SocketAddr>,
) -> String {
    let hosts = hook.map_or(String::new(), |a| format!("\"{a}\""));
    format!(
        r#"
[render]
concurrency = 4
[fetch]
initial_read_bytes = 65536
[jobs]
database_url = "{url}"
node_id = "{node}"
lease_secs = 2
poll_ms = 100
retry_backoff_ms = 50
webhook_backoff_ms = 50
{extra}
[orgs.a]
api_keys = ["{KEY}"]
default_env = "main"
webhook_secret = "{WEBHOOK_SECRET}"
webhook_hosts = [{hosts}]
[orgs.a.envs.main]
source = "http://{src}/{{key}}"
[orgs.a.envs.held]
source = "http://{src}/fault/hold/{{key}}"
"#,
        url = pg.url(),
        src = source.addr
    )
}

/// An API call to `base` (a node's `http://addr`): a POST of `body`, else a
/// GET; status and JSON body.
async fn call(base: &str, path: &str, body: Option<Value>, prefer: Option<&str>) -> (u16, Value) {
    let method = if body.is_some() {
        reqwest::Method::POST
    } else {
        reqwest::Method::GET
    };
    let prefer: Vec<(&str, &str)> = prefer.map(|p| ("prefer", p)).into_iter().collect();
    let url = format!("{base}{path}");
    let (status, _, value) = common::call_with(method, &url, Some(KEY), body, &prefer).await;
    (status, value)
}

fn base(t: &Thumbd) -> String {
    t.url("")
}

/// Submits a job for demo.mp4; its status and body.
async fn submit(base: &str, body: Value) -> (u16, Value) {
    call(
        base,
        "/v1/api/a/edge-ids/demo.mp4/thumbnails",
        Some(body),
        None,
    )
    .await
}

/// Submits a job that must be accepted; its id.
async fn accepted(base: &str, body: Value) -> String {
    let (status, answer) = submit(base, body).await;
    assert_eq!(status, 202, "{answer}");
    answer["body"]["jobId"].as_str().unwrap().to_owned()
}

async fn job(base: &str, id: &str) -> Value {
    let (status, body) = call(base, &format!("/v1/api/a/thumbnails/{id}"), None, None).await;
    assert_eq!(status, 200, "{body}");
    body["body"].clone()
}

/// Polls a job on `base` until `done` holds for it (bounded: 60 s).
async fn until(base: &str, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let j = job(base, id).await;
        if done(&j) {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never became {what}: {j}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn completed(base: &str, id: &str) -> Value {
    let j = until(base, id, "final", |j| {
        j["status"] == "completed" || j["status"] == "failed"
    })
    .await;
    assert_eq!(j["status"], "completed", "{j}");
    j
}

async fn processing(base: &str, id: &str) -> Value {
    until(base, id, "processing", |j| j["status"] == "processing").await
}

/// `(attempts, lease_node)` of a job's row.
async fn row(db: &tokio_postgres::Client, id: &str) -> (i64, Option<String>) {
    let r = db
        .query_one(
            "SELECT attempts, lease_node FROM jobs WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_submitted_to_one_node_is_seen_and_waited_for_from_another() {
    let pg = Postgres::start().await;
    let source = SourceServer::start(samples()).await;
    let a = Thumbd::start(&node(&pg, &source, "node-a", "", None)).await;
    let done_on_a = accepted(
        &base(&a),
        json!({"width": 320, "height": 180, "timestampMs": 4500}),
    )
    .await;
    completed(&base(&a), &done_on_a).await;
    // A job A runs (its source held) before B exists: A claims it.
    let held = accepted(
        &base(&a),
        json!({"width": 200, "timestampMs": 8000, "env": "held"}),
    )
    .await;
    processing(&base(&a), &held).await;

    let b = Thumbd::start(&node(&pg, &source, "node-b", "", None)).await;
    let seen = job(&base(&b), &done_on_a).await;
    assert_eq!(seen["status"], "completed", "{seen}");
    assert_eq!(
        (seen["width"].as_u64(), seen["height"].as_u64()),
        (Some(320), Some(180))
    );
    // The same job submitted to B is A's completed one (cached there,
    // not here: B renders it again and the URL is a hit on B too).
    let (status, again) = submit(
        &base(&b),
        json!({"width": 320, "height": 180, "timestampMs": 4500}),
    )
    .await;
    assert!(status == 200 || status == 202, "{status} {again}");
    assert_eq!(again["body"]["jobId"], done_on_a.as_str());
    completed(&base(&b), &done_on_a).await;

    // B waits (Prefer: wait) for the job A finishes.
    let waiting = {
        let (b, held) = (base(&b), held.clone());
        tokio::spawn(async move {
            call(
                &b,
                &format!("/v1/api/a/thumbnails/{held}"),
                None,
                Some("wait=30"),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    source.release();
    let released = Instant::now();
    let (status, body) = waiting.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["body"]["status"], "completed");
    // Seen when A finished it, not when the 30 s wait ran out.
    assert!(
        released.elapsed() < Duration::from_secs(20),
        "{:?}",
        released.elapsed()
    );
    let db = pg.client().await;
    assert_eq!(row(&db, &held).await, (1, Some("node-a".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_across_two_nodes_each_run_exactly_once() {
    let pg = Postgres::start().await;
    let source = SourceServer::start(samples()).await;
    let extra = "per_org_concurrency = 3";
    let a = Thumbd::start(&node(&pg, &source, "node-a", extra, None)).await;
    let b = Thumbd::start(&node(&pg, &source, "node-b", extra, None)).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let to = if i % 2 == 0 { &a } else { &b };
        ids.push(
            accepted(
                &base(to),
                json!({"width": 100 + i, "timestampMs": 1000 + 200 * i}),
            )
            .await,
        );
    }
    for (i, id) in ids.iter().enumerate() {
        let from = if i % 3 == 0 { &a } else { &b };
        completed(&base(from), id).await;
    }
    let renders = |m: &str| common::metric(m, "thumbd_renders_total");
    let (on_a, on_b) = (renders(&a.metrics().await), renders(&b.metrics().await));
    assert_eq!(on_a + on_b, 30.0, "renders: {on_a} on A, {on_b} on B");
    assert!(
        on_a > 0.0 && on_b > 0.0,
        "both nodes claim jobs: {on_a} on A, {on_b} on B"
    );
    let db = pg.client().await;
    for id in &ids {
        assert_eq!(row(&db, id).await.0, 1, "{id} ran once");
    }
    // The gauges count the cluster's jobs.
    let m = b.metrics().await;
    assert_eq!(
        common::metric(&m, r#"thumbd_jobs{state="completed"}"#),
        30.0,
        "{m}"
    );
    assert_eq!(common::metric(&m, "thumbd_jobs_queue_length"), 0.0);
}

/// Node A as the real binary (so it can be killed or frozen), its config
/// and log in `dir`; returns it and its base URL once it answers.
async fn binary_node(
    pg: &Postgres,
    source: &SourceServer,
    hook: &WebhookReceiver,
    dir: &Path,
) -> (Proc, String) {
    let config_file = dir.join("thumbd.toml");
    let port = free_port();
    std::fs::write(
        &config_file,
        format!(
            "[server]\npublic_base_url = \"http://127.0.0.1:{port}\"\nshutdown_delay_secs = 0\nshutdown_grace_secs = 1\n{}",
            node(pg, source, "node-a", "", Some(hook.addr))
        ),
    )
    .unwrap();
    let a = Proc::thumbd(Some(&config_file), port, &[], dir.join("a.log")).await;
    (a, format!("http://127.0.0.1:{port}"))
}

/// Submits three held jobs with a webhook to `base` and waits until they
/// run there (stuck on the source); their ids.
async fn running_held_jobs(base: &str, hook: &WebhookReceiver) -> Vec<String> {
    let webhook_url = format!("http://{}/hook", hook.addr);
    let mut ids = Vec::new();
    for i in 0..3 {
        let body = json!({"width": 300 + i, "timestampMs": 8000, "env": "held", "webhookUrl": webhook_url});
        ids.push(accepted(base, body).await);
    }
    for id in &ids {
        processing(base, id).await;
    }
    ids
}

/// The job ids of the webhook calls received, sorted.
fn webhook_jobs(hook: &WebhookReceiver) -> Vec<String> {
    let calls = hook.calls.lock().unwrap().clone();
    let mut sent: Vec<String> = calls
        .iter()
        .map(|(_, body)| {
            serde_json::from_slice::<Value>(body).unwrap()["jobId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    sent.sort();
    sent
}

/// Waits until B has completed each job (with more than one attempt) and
/// delivered its webhook.
async fn finished_by_b(b: &Thumbd, db: &tokio_postgres::Client, ids: &[String]) {
    for id in ids {
        completed(&base(b), id).await;
        let (attempts, holder) = row(db, id).await;
        assert!(attempts > 1, "{id}: attempts {attempts}");
        assert_eq!(holder.as_deref(), Some("node-b"));
        until(&base(b), id, "delivered", |j| {
            j["webhook"]["state"] == "delivered"
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_jobs_and_webhooks_are_taken_over_after_the_lease() {
    let pg = Postgres::start().await;
    let source = SourceServer::start(samples()).await;
    let hook = WebhookReceiver::start(false).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut a, on_a) = binary_node(&pg, &source, &hook, dir.path()).await;
    let mut ids = running_held_jobs(&on_a, &hook).await;
    let b = Thumbd::start(&node(&pg, &source, "node-b", "", Some(hook.addr))).await;
    // For three lease periods, while B polls, A's heartbeat keeps them A's.
    let db = pg.client().await;
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(6) {
        for id in &ids {
            let (attempts, holder) = row(&db, id).await;
            assert_eq!(
                (attempts, holder.as_deref()),
                (1, Some("node-a")),
                "A holds {id}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    a.child.kill().unwrap();
    a.child.wait().unwrap();
    source.release();
    finished_by_b(&b, &db, &ids).await;
    ids.sort();
    assert_eq!(webhook_jobs(&hook), ids, "one webhook per job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_frozen_past_its_lease_drops_its_results() {
    let pg = Postgres::start().await;
    let source = SourceServer::start(samples()).await;
    let hook = WebhookReceiver::start(false).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, on_a) = binary_node(&pg, &source, &hook, dir.path()).await;
    let mut ids = running_held_jobs(&on_a, &hook).await;
    let b = Thumbd::start(&node(&pg, &source, "node-b", "", Some(hook.addr))).await;
    let db = pg.client().await;

    // A stops (as a long pause would stop it) while it runs the jobs; B
    // takes them over once A's leases lapse.
    let pid = a.child.id() as i32;
    // SAFETY: kill(2) on a child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    source.release();
    finished_by_b(&b, &db, &ids).await;
    // A goes on: its renders finish, but it no longer holds the jobs, so
    // it writes nothing and sends no webhook.
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while a.log().matches("another node took the job over").count() < ids.len() {
        assert!(Instant::now() < deadline, "A never noticed:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &ids {
        let j = job(&base(&b), id).await;
        assert_eq!(
            (j["status"].as_str(), j["webhook"]["attempts"].as_u64()),
            (Some("completed"), Some(1)),
            "{j}"
        );
        assert_eq!(row(&db, id).await.1.as_deref(), Some("node-b"));
    }
    ids.sort();
    assert_eq!(webhook_jobs(&hook), ids, "one webhook per job, from B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_gives_its_unfinished_jobs_back() {
    let pg = Postgres::start().await;
    let source = SourceServer::start(samples()).await;
    let hook = WebhookReceiver::start(false).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut a, on_a) = binary_node(&pg, &source, &hook, dir.path()).await;
    let mut ids = running_held_jobs(&on_a, &hook).await;
    let b = Thumbd::start(&node(&pg, &source, "node-b", "", Some(hook.addr))).await;
    // SIGTERM: A stops claiming, its jobs get the grace period (1 s), then
    // go back to pending rather than waiting for their leases to lapse.
    a.terminate();
    let exited = a.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(exited, Some(0), "{}", a.log());
    assert!(
        a.log().contains("back to pending for another node"),
        "{}",
        a.log()
    );
    let db = pg.client().await;
    source.release();
    finished_by_b(&b, &db, &ids).await;
    ids.sort();
    assert_eq!(webhook_jobs(&hook), ids, "one webhook per job, from B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_bound_counts_every_nodes_jobs() {
    let pg = Postgres::start().await;
    let source = SourceServer::start(samples()).await;
    let extra = "max_queue = 3";
    let a = Thumbd::start(&node(&pg, &source, "node-a", extra, None)).await;
    let b = Thumbd::start(&node(&pg, &source, "node-b", extra, None)).await;
    let held = |w: u64| json!({"width": w, "timestampMs": 8000, "env": "held"});
    let ids = vec![
        accepted(&base(&a), held(101)).await,
        accepted(&base(&a), held(102)).await,
        accepted(&base(&b), held(103)).await,
    ];
    for to in [&b, &a] {
        let (status, body) = submit(&base(to), held(104)).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(
            (body["queueLength"].as_u64(), body["maxQueue"].as_u64()),
            (Some(3), Some(3))
        );
    }
    source.release();
    for id in &ids {
        completed(&base(&a), id).await;
    }
    accepted(&base(&b), held(104)).await;
}

/// Runs `thumbd serve` with `[jobs]` set to `jobs`; its exit code (it must
/// stop within 30 s) and what it printed.
async fn failed_start(dir: &Path, jobs: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let config_file = dir.join("bad.toml");
    std::fs::write(&config_file, format!("[jobs]\n{jobs}\n")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_thumbd"));
    cmd.args(["serve", "--config"])
        .arg(&config_file)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .envs(env.iter().copied());
    let mut p = Proc::spawn("thumbd", &mut cmd, dir.join("bad.log"));
    let code = p.wait_exit(Duration::from_secs(30)).await;
    (code, p.log())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_database_url_is_a_clear_start_up_error_without_the_password() {
    let pg = Postgres::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = "hunter2-do-not-print";
    let nobody = free_port();
    let cases = [
        (
            format!("database_url = \"postgres://thumbd:{secret}@127.0.0.1:{nobody}/thumbd\""),
            vec![],
            format!("127.0.0.1:{nobody}"),
        ),
        (
            format!(
                "database_url = \"postgres://postgres:{secret}@127.0.0.1:{}/thumbd\"",
                pg.port
            ),
            vec![],
            "password authentication failed".to_owned(),
        ),
        (
            format!("database_url = \"mysql://root:{secret}@127.0.0.1/thumbd\""),
            vec![],
            "must be a postgres://".to_owned(),
        ),
        (
            "database_url_env = \"THUMBD_TEST_DB_URL\"".to_owned(),
            vec![(
                "THUMBD_TEST_DB_URL",
                format!("redis://:{secret}@127.0.0.1/0"),
            )],
            "must be a postgres://".to_owned(),
        ),
        (
            format!("database_url = \"{}\"\ndatabase_url_env = \"X\"", pg.url()),
            vec![],
            "at most one of database_url".to_owned(),
        ),
    ];
    let mut failures = Vec::new();
    for (jobs, env, expected) in &cases {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, log) = failed_start(dir.path(), jobs, &env).await;
        if code.is_none_or(|c| c == 0) {
            failures.push(format!("{jobs}: exit {code:?}\n{log}"));
        } else if !log.contains(expected.as_str()) {
            failures.push(format!("{jobs}: no {expected:?} in\n{log}"));
        } else if log.contains(secret) || log.contains(PASSWORD) {
            failures.push(format!("{jobs}: the password is printed\n{log}"));
        }
    }
    common::assert_no_failures(&failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_sent_by_one_node_only() {
    let pg = Postgres::start().await;
    let source = SourceServer::start(samples()).await;
    // The first call fails: the retry comes from the same node.
    let hook = WebhookReceiver::start(true).await;
    let a = Thumbd::start(&node(&pg, &source, "node-a", "", Some(hook.addr))).await;
    let b = Thumbd::start(&node(&pg, &source, "node-b", "", Some(hook.addr))).await;
    let webhook_url = format!("http://{}/hook", hook.addr);
    let id = accepted(
        &base(&a),
        json!({"width": 96, "timestampMs": 2500, "webhookUrl": webhook_url}),
    )
    .await;
    completed(&base(&b), &id).await;
    let doc = until(&base(&b), &id, "delivered", |j| {
        j["webhook"]["state"] == "delivered"
    })
    .await;
    assert_eq!(doc["webhook"], json!({"state": "delivered", "attempts": 2}));
    // Delivered: the job holds no lease, so no node can take the webhook;
    // and none did in two lease periods.
    let db = pg.client().await;
    let r = db
        .query_one(
            "SELECT webhook_state, lease_until IS NULL FROM jobs WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, bool>(1)),
        ("delivered".into(), true)
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let calls = hook.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "one failed try and one delivery");
    for (sig, body) in &calls {
        assert!(common::signed_with(WEBHOOK_SECRET, sig, body));
        let sent: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(sent["jobId"], id.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_whose_lease_lapses_mid_delivery_is_sent_once_by_its_node() {
    let pg = Postgres::start().await;
    let source = SourceServer::start(samples()).await;
    // Slower than the lease (2 s): each call is answered 3 s after it came.
    let hook = WebhookReceiver::start_with(false, Duration::from_secs(3)).await;
    let a = Thumbd::start(&node(&pg, &source, "node-a", "", Some(hook.addr))).await;
    let webhook_url = format!("http://{}/hook", hook.addr);
    let id = accepted(
        &base(&a),
        json!({"width": 112, "timestampMs": 2500, "webhookUrl": webhook_url}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while hook.calls.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the webhook never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While A waits for the answer, its lease on the job lapses, as it
    // would if its heartbeat could not reach the database; A polls every
    // 100 ms, and must not claim the webhook it is sending itself.
    let db = pg.client().await;
    let lapsing = Instant::now();
    while lapsing.elapsed() < Duration::from_millis(2500) {
        db.execute(
            "UPDATE jobs SET lease_until = now() - interval '1 second'
             WHERE id = $1 AND webhook_state = 'pending'",
            &[&id],
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let doc = until(&base(&a), &id, "delivered", |j| {
        j["webhook"]["state"] == "delivered"
    })
    .await;
    assert_eq!(doc["webhook"], json!({"state": "delivered", "attempts": 1}));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(webhook_jobs(&hook), [id], "sent once");
}

/// `config` with org `a` taking video URLs from `source` (on loopback).
fn with_video_urls(config: &str, source: &SourceServer) -> String {
    config.replacen(
        "[orgs.a]\n",
        &format!(
            "[orgs.a]\nvideo_url_prefixes = [\"http://{}/\"]\nvideo_url_private_hosts = [\"127.0.0.1\"]\n",
            source.addr
        ),
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_url_registered_on_one_node_is_served_by_another() {
    let pg = Postgres::start().await;
    let source = SourceServer::start(samples()).await;
    let a = Thumbd::start(&with_video_urls(
        &node(&pg, &source, "node-a", "", None),
        &source,
    ))
    .await;
    let b = Thumbd::start(&with_video_urls(
        &node(&pg, &source, "node-b", "", None),
        &source,
    ))
    .await;
    let (status, v) = call(
        &base(&a),
        "/v1/video/thumbnail",
        Some(
            json!({"video_url": source.url("demo.mp4"), "second": 2, "width": 320, "height": 180}),
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let url = v["response"].as_str().unwrap();
    let path = url.strip_prefix(&base(&a)).expect("a URL on A");
    assert!(path.starts_with("/v1/thumbnail/a/url/"), "{path}");
    // As nginx hashing the path onto the other node would send it.
    for (on, t) in [("B", &b), ("A", &a)] {
        let (status, _, bytes) = common::get(&t.url(path)).await;
        assert_eq!(status, 200, "{path} on {on}");
        let picture = image::load_from_memory(&bytes).unwrap();
        assert_eq!((picture.width(), picture.height()), (320, 180), "on {on}");
    }
    // In the shared book, once.
    let db = pg.client().await;
    let n: i64 = db
        .query_one("SELECT COUNT(*) FROM url_book WHERE org = 'a'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

/// The shared book is bounded (`[jobs] url_book_max_entries`,
/// `url_book_max_age_days`): an entry not used for the maximum age goes,
/// then the least recently used past the count; a book from before the
/// bounds gets its `used_at` column; a removed key is registered again by
/// its URL. Ages are made by writing old timestamps directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_url_book_is_bounded_by_age_and_count() {
    use thumbd::source::urlbook::{Entry, UrlBook};
    let pg = Postgres::start().await;
    let db = pg.client().await;
    // A book from before the bounds, with one entry.
    db.batch_execute(
        "CREATE TABLE url_book (org TEXT NOT NULL, key TEXT NOT NULL, url TEXT NOT NULL,
             validator TEXT NOT NULL, PRIMARY KEY (org, key));
         INSERT INTO url_book VALUES ('a', 'legacy', 'https://m.example.com/l.mp4', 'v');",
    )
    .await
    .unwrap();
    let mut config = thumbd::config::Config::default();
    config.jobs.database_url = Some(pg.url());
    config.jobs.url_book_max_entries = 3;
    config.jobs.url_book_max_age_days = 30;
    let (a, b) = (
        UrlBook::open(&config).unwrap(),
        UrlBook::open(&config).unwrap(),
    );
    let entry = |n: usize| Entry {
        url: format!("https://m.example.com/{n}.mp4"),
        validator: "\"v1\"".into(),
    };
    assert!(a.get("a", "legacy").await.unwrap().is_some());
    for n in 0..4 {
        a.put("a", &format!("k{n}"), &entry(n)).await.unwrap();
    }
    let db_ref = &db;
    let count = move || async move {
        db_ref
            .query_one("SELECT COUNT(*) FROM url_book", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(count().await, 5, "the first registration swept: not yet");
    // k0 last used 31 days ago; the others in order, legacy oldest.
    db.batch_execute(
        "UPDATE url_book SET used_at = used_at - 31 * 86400 WHERE key = 'k0';
         UPDATE url_book SET used_at = used_at - 100 WHERE key = 'legacy';
         UPDATE url_book SET used_at = used_at - 50 WHERE key = 'k1';
         UPDATE url_book SET used_at = used_at - 40 WHERE key = 'k2';
         UPDATE url_book SET used_at = used_at - 30 WHERE key = 'k3';",
    )
    .await
    .unwrap();
    // On node B: k0 is gone for lookups before any sweep.
    assert_eq!(b.get("a", "k0").await.unwrap(), None);
    // Past the age: k0; then past the count of 3: legacy.
    assert_eq!(a.sweep().await.unwrap(), 2);
    let left: Vec<String> = db
        .query("SELECT key FROM url_book ORDER BY key", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["k1", "k2", "k3"]);
    // Node A forgets what it swept, though it had it in memory.
    assert_eq!(a.get("a", "k0").await.unwrap(), None);
    assert_eq!(b.get("a", "legacy").await.unwrap(), None);
    assert_eq!(b.get("a", "k3").await.unwrap(), Some(entry(3)));
    // A removed key comes back when its URL is submitted again.
    a.put("a", "k0", &entry(0)).await.unwrap();
    assert_eq!(b.get("a", "k0").await.unwrap(), Some(entry(0)));
    assert_eq!(a.sweep().await.unwrap(), 1, "k1, the least recently used");
    assert_eq!(count().await, 3);
}

/// Through the servers: a video URL's key removed from the shared book (its
/// last use made 31 days old) answers 404 on a node, and submitting the
/// URL again brings its thumbnails back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_video_url_key_answers_404_until_submitted_again() {
    let pg = Postgres::start().await;
    let source = SourceServer::start(samples()).await;
    let a = Thumbd::start(&with_video_urls(
        &node(&pg, &source, "node-a", "url_book_max_age_days = 30", None),
        &source,
    ))
    .await;
    let body =
        json!({"video_url": source.url("demo.mp4"), "second": 2, "width": 160, "height": 90});
    let (status, v) = call(&base(&a), "/v1/video/thumbnail", Some(body.clone()), None).await;
    assert_eq!(status, 200, "{v}");
    let path = v["response"]
        .as_str()
        .unwrap()
        .strip_prefix(&base(&a))
        .unwrap()
        .to_owned();
    let db = pg.client().await;
    db.batch_execute("UPDATE url_book SET used_at = used_at - 31 * 86400")
        .await
        .unwrap();
    // A node that did not register it (node A has it in memory, and would
    // notice within a day: see UrlBook::touch_every).
    let b = Thumbd::start(&with_video_urls(
        &node(&pg, &source, "node-b", "url_book_max_age_days = 30", None),
        &source,
    ))
    .await;
    let (status, _, body_404) = common::get(&b.url(&path)).await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body_404));
    let (status, v) = call(&base(&a), "/v1/video/thumbnail", Some(body), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["response"].as_str().unwrap().strip_prefix(&base(&a)),
        Some(path.as_str())
    );
    let (status, _, _) = common::get(&b.url(&path)).await;
    assert_eq!(status, 200);
}
