//! Three thumbd nodes (the real binary) on loopback behind nginx with the
//! shipped configs (deploy/nginx/thumbd-cache.conf with the upstream block
//! of deploy/nginx/thumbd-nodes.conf: `hash $uri consistent`), sharing a
//! render cache in an S3-compatible bucket (s3s-fs) and jobs in PostgreSQL
//! (Debian's server, started here). Videos are in the bucket too.
//!
//! - 100 distinct thumbnails, each asked for twice at once in two spellings
//!   (nginx caches them apart, thumbd keys them alike), then all of it
//!   again: exactly 100 renders across the nodes, every node rendering some.
//! - A node killed with `kill -9` while requests and jobs run: requests
//!   through nginx keep being answered, its jobs complete on the others
//!   once their lease lapses.
//! - A node added afterwards answers from the shared cache, rendering
//!   nothing.
//! - Varnish with deploy/varnish/nodes.vcl (the shard director) routes the
//!   same way: one render per thumbnail.

mod common;

use std::collections::HashMap;
use std::fs;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::proxies::{repo, substitute, tool};
use common::s3::S3Server;
use common::{fixtures, free_port, metric, picture_fixtures, read_pattern, Proc, SourceServer};
use serde_json::{json, Value};

const API_KEY: &str = "cluster-test-api-key-0123456789";
/// Copies of the story video in the bucket, each its own key (so its own
/// place on the hash ring), and the moments asked of each.
const VIDEOS: usize = 20;
const MOMENTS: [u32; 5] = [1, 13, 25, 37, 49];

struct Cluster {
    s3: S3Server,
    pg: Postgres,
    source: SourceServer,
    dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Cluster {
    async fn start() -> Cluster {
        let s3 = S3Server::start().await;
        s3.bucket("videos");
        s3.bucket("thumbs");
        let story = fs::read(picture_fixtures().join("story.mp4")).unwrap();
        for i in 0..VIDEOS {
            s3.put("videos", &format!("v/c{i:02}.mp4"), &story);
        }
        Cluster {
            s3,
            pg: Postgres::start().await,
            source: SourceServer::start(fixtures()).await,
            dir: tempfile::tempdir().unwrap(),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    /// Node `name` on `port`: the real binary with the shared settings.
    async fn node(&self, name: &str, port: u16) -> Proc {
        let config = format!(
            r#"
[server]
public_base_url = "http://127.0.0.1:{port}"
[render]
concurrency = 4
[fetch]
initial_read_bytes = 65536
# Held reads (the jobs') wait for the release, not for a retry.
request_timeout_secs = 60
[cache.shared]
url = "s3://thumbs/cache/"
[cache.shared.s3]
{table}[jobs]
database_url = "{db}"
node_id = "{name}"
lease_secs = 2
poll_ms = 100
# Held jobs take two render slots of each node at most.
per_org_concurrency = 2
retry_backoff_ms = 50
[orgs.demo]
api_keys = ["{API_KEY}"]
default_env = "s3"
[orgs.demo.envs.s3]
source = "s3://videos/v/{{key}}"
[orgs.demo.envs.s3.s3]
{table}[orgs.demo.envs.held]
source = "http://{src}/fault/hold/{{key}}"
"#,
            table = self.s3.table(),
            db = self.pg.url(),
            src = self.source.addr,
        );
        let path = self.dir.path().join(format!("{name}.toml"));
        fs::write(&path, config).unwrap();
        let data = self.dir.path().join(format!("{name}-data"));
        fs::create_dir_all(&data).unwrap();
        Proc::thumbd(
            Some(&path),
            port,
            &[("THUMBD_LOG", "thumbd=info,thumbd::access=warn")],
            self.dir.path().join(format!("{name}.log")),
        )
        .await
    }

    /// nginx on `port` with the shipped files, the upstream listing `nodes`.
    fn nginx(&self, port: u16, nodes: &[u16]) -> Proc {
        let dir = self.dir.path().join("nginx");
        fs::create_dir_all(&dir).unwrap();
        let upstream = fs::read_to_string(repo().join("deploy/nginx/thumbd-nodes.conf")).unwrap();
        let mut upstream = upstream;
        for (i, node) in nodes.iter().enumerate() {
            upstream = substitute(
                &upstream,
                &format!("server 10.0.0.1{}:8080", i + 1),
                &format!("server 127.0.0.1:{node}"),
            );
        }
        fs::write(dir.join("thumbd-nodes.conf"), upstream).unwrap();
        // thumbd-cache.conf without its own upstream block.
        let cache = fs::read_to_string(repo().join("deploy/nginx/thumbd-cache.conf")).unwrap();
        let block = "upstream thumbd {\n    server 127.0.0.1:8080;\n    keepalive 32;\n}\n";
        assert_eq!(
            cache.matches(block).count(),
            1,
            "the upstream block, as the docs say"
        );
        let cache = cache.replace(block, "");
        let cache = common::proxies::cache_conf_at(&cache, port, &dir.join("cache"));
        fs::write(dir.join("thumbd-cache.conf"), cache).unwrap();
        common::proxies::nginx(&dir, &["thumbd-nodes.conf", "thumbd-cache.conf"])
    }

    async fn get(&self, url: &str) -> (u16, String, bytes::Bytes) {
        match self.client.get(url).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let cache = r
                    .headers()
                    .get("x-thumbnail-cache")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                (status, cache, r.bytes().await.unwrap_or_default())
            }
            Err(_) => (0, String::new(), bytes::Bytes::new()),
        }
    }

    async fn renders(&self, port: u16) -> f64 {
        let text = self
            .client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metric(&text, "thumbd_renders_total")
    }

    async fn api(
        &self,
        port: u16,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("http://127.0.0.1:{port}{path}");
        let (status, _, value) = common::call(method, &url, Some(API_KEY), body).await;
        (status, value)
    }
}

/// The thumbnail `(video, moment)` in one of two spellings of its query.
fn path(video: usize, secs: u32, spelling: usize) -> String {
    let query = if spelling == 0 {
        format!("width=160&timeStamp={secs}")
    } else {
        format!("timeStamp={secs}&width=160")
    };
    format!("/v1/thumbnail/demo/s3/c{video:02}.mp4.webp?{query}")
}

fn frame_of(webp: &[u8]) -> u32 {
    let picture = image::load_from_memory(webp).unwrap();
    let mut png = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut png, image::ImageFormat::Png).unwrap();
    read_pattern(&png.into_inner()).frame
}

/// Asks for every `(video, moment, spelling)` in `asks` through `base`, at
/// most `at_once` at a time; the answers in order.
async fn ask_all(
    cluster: &Arc<Cluster>,
    base: &str,
    asks: Vec<(usize, u32, usize)>,
    at_once: usize,
) -> Vec<(u16, String, bytes::Bytes)> {
    let limit = Arc::new(tokio::sync::Semaphore::new(at_once));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (video, secs, spelling)) in asks.into_iter().enumerate() {
        let (cluster, limit) = (cluster.clone(), limit.clone());
        let url = format!("{base}{}", path(video, secs, spelling));
        tasks.spawn(async move {
            let _slot = limit.acquire().await.unwrap();
            (i, cluster.get(&url).await)
        });
    }
    let mut out: Vec<_> = std::iter::repeat_with(Default::default)
        .take(tasks.len())
        .collect();
    while let Some(done) = tasks.join_next().await {
        let (i, answer) = done.unwrap();
        out[i] = answer;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_behind_nginx_render_each_thumbnail_once_and_survive_a_kill() {
    let cluster = Arc::new(Cluster::start().await);
    let ports = [free_port(), free_port(), free_port()];
    let mut nodes: HashMap<String, Proc> = HashMap::new();
    for (i, port) in ports.iter().enumerate() {
        nodes.insert(
            format!("node{}", i + 1),
            cluster.node(&format!("node{}", i + 1), *port).await,
        );
    }
    let node_port = |name: &str| ports[name[4..].parse::<usize>().unwrap() - 1];
    let nginx_port = free_port();
    let mut nginx = cluster.nginx(nginx_port, &ports);
    nginx
        .ready(&format!("http://127.0.0.1:{nginx_port}/healthz"))
        .await;
    let base = format!("http://127.0.0.1:{nginx_port}");

    // 100 thumbnails, each asked twice at once (two spellings), twice over.
    let mut asks = Vec::new();
    for video in 0..VIDEOS {
        for secs in MOMENTS {
            asks.push((video, secs, 0));
            asks.push((video, secs, 1));
        }
    }
    for round in 0..2 {
        let answers = ask_all(&cluster, &base, asks.clone(), 8).await;
        for ((video, secs, _), (status, _, body)) in asks.iter().zip(&answers) {
            assert_eq!(*status, 200, "round {round}: c{video:02} at {secs} s");
            assert_eq!(
                frame_of(body),
                (secs * 25) % 1024,
                "round {round}: c{video:02} at {secs} s"
            );
        }
    }
    let mut per_node = Vec::new();
    for port in ports {
        per_node.push(cluster.renders(port).await);
    }
    assert_eq!(
        per_node.iter().sum::<f64>(),
        100.0,
        "renders per node: {per_node:?}"
    );
    assert!(
        per_node.iter().all(|&n| n > 0.0),
        "every node has its share: {per_node:?}"
    );

    // Jobs whose source holds their reads: each node claims some.
    let mut jobs = Vec::new();
    for (i, secs) in [21, 25, 29, 33, 37, 41].into_iter().enumerate() {
        let port = ports[i % 3];
        let (status, body) = cluster
            .api(
                port,
                reqwest::Method::POST,
                "/v1/api/demo/edge-ids/story.mp4/thumbnails",
                Some(json!({"env": "held", "timestampMs": secs * 1000, "width": 120})),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        jobs.push(body["body"]["jobId"].as_str().unwrap().to_owned());
    }
    let db = cluster.pg.client().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let holders: Vec<String> = loop {
        let rows = db
            .query("SELECT lease_node FROM jobs WHERE status = 'processing' AND lease_node IS NOT NULL", &[])
            .await
            .unwrap();
        if rows.len() == jobs.len() {
            break rows.iter().map(|r| r.get::<_, String>(0)).collect();
        }
        if Instant::now() > deadline {
            let all = db
                .query("SELECT id, status, lease_node, attempts FROM jobs", &[])
                .await
                .unwrap();
            let all: Vec<(String, String, Option<String>, i64)> = all
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect();
            panic!("the jobs never all started: {all:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The node holding the most jobs is killed.
    let victim = {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for h in &holders {
            *counts.entry(h.as_str()).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .unwrap()
            .0
            .to_owned()
    };
    let victims_jobs: Vec<String> = {
        let rows = db
            .query("SELECT id FROM jobs WHERE lease_node = $1", &[&victim])
            .await
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    };

    // New thumbnails through nginx while the victim dies.
    let fresh: Vec<(usize, u32, usize)> = (0..VIDEOS)
        .flat_map(|video| [(video, 30, 0), (video, 42, 0)])
        .collect();
    let load = {
        let (cluster, base, fresh) = (cluster.clone(), base.clone(), fresh.clone());
        tokio::spawn(async move { ask_all(&cluster, &base, fresh, 4).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut dead = nodes.remove(&victim).unwrap();
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let answers = load.await.unwrap();
    let failed: Vec<u16> = answers
        .iter()
        .map(|(status, _, _)| *status)
        .filter(|s| *s != 200)
        .collect();
    assert!(
        failed.len() <= 4,
        "at most the requests in flight at the kill: {failed:?}"
    );
    let again = ask_all(&cluster, &base, fresh.clone(), 4).await;
    for ((video, secs, _), (status, _, body)) in fresh.iter().zip(&again) {
        assert_eq!(*status, 200, "after the kill: c{video:02} at {secs} s");
        assert_eq!(frame_of(body), (secs * 25) % 1024);
    }

    // The victim's jobs complete on the others after the lease.
    cluster.source.release();
    let survivor = ports
        .iter()
        .copied()
        .find(|p| *p != node_port(&victim))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &jobs {
        loop {
            let (status, body) = cluster
                .api(
                    survivor,
                    reqwest::Method::GET,
                    &format!("/v1/api/demo/thumbnails/{id}"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            if body["body"]["status"] == "completed" {
                break;
            }
            assert_ne!(body["body"]["status"], "failed", "{body}");
            assert!(
                Instant::now() < deadline,
                "job {id} never completed: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(!victims_jobs.is_empty());
    for id in &victims_jobs {
        let row = db
            .query_one("SELECT attempts, lease_node FROM jobs WHERE id = $1", &[id])
            .await
            .unwrap();
        let attempts: i64 = row.get(0);
        assert!(attempts >= 2, "{id} was taken over (attempts {attempts})");
    }

    // A node added now starts warm: shared-cache hits, no renders.
    let newcomer = free_port();
    let _node4 = cluster.node("node4", newcomer).await;
    let base4 = format!("http://127.0.0.1:{newcomer}");
    let sample: Vec<(usize, u32, usize)> = (0..10).map(|v| (v, MOMENTS[v % 5], 0)).collect();
    let answers = ask_all(&cluster, &base4, sample.clone(), 4).await;
    for ((video, secs, _), (status, cache, body)) in sample.iter().zip(&answers) {
        assert_eq!(
            (*status, cache.as_str()),
            (200, "shared"),
            "c{video:02} at {secs} s"
        );
        assert_eq!(frame_of(body), (secs * 25) % 1024);
    }
    assert_eq!(cluster.renders(newcomer).await, 0.0);
    drop(nginx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn varnish_with_the_shard_director_renders_each_thumbnail_once() {
    let cluster = Arc::new(Cluster::start().await);
    let ports = [free_port(), free_port(), free_port()];
    let mut nodes = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        nodes.push(cluster.node(&format!("node{}", i + 1), *port).await);
    }
    // The shipped VCLs as their comments say: nodes.vcl's backends
    // pointed at the nodes, included before default.vcl.
    let dir = cluster.dir.path().join("varnish");
    fs::create_dir_all(&dir).unwrap();
    let mut nodes_vcl = fs::read_to_string(repo().join("deploy/varnish/nodes.vcl")).unwrap();
    for (i, port) in ports.iter().enumerate() {
        let block = format!(
            "backend node{n} {{\n    .host = \"10.0.0.1{n}\";\n    .port = \"8080\";",
            n = i + 1
        );
        assert_eq!(nodes_vcl.matches(&block).count(), 1);
        nodes_vcl = nodes_vcl.replace(
            &block,
            &format!(
                "backend node{n} {{\n    .host = \"127.0.0.1\";\n    .port = \"{port}\";",
                n = i + 1
            ),
        );
    }
    fs::write(dir.join("nodes.vcl"), nodes_vcl).unwrap();
    fs::copy(
        repo().join("deploy/varnish/default.vcl"),
        dir.join("default.vcl"),
    )
    .unwrap();
    fs::write(
        dir.join("top.vcl"),
        "vcl 4.1;\ninclude \"nodes.vcl\";\ninclude \"default.vcl\";\n",
    )
    .unwrap();
    let port = free_port();
    let mut varnish = Proc::spawn(
        "varnishd",
        Command::new(tool("varnishd", "varnish"))
            .arg("-F")
            .arg("-n")
            .arg(dir.join("work"))
            .args(["-a", &format!("127.0.0.1:{port}")])
            .arg("-f")
            .arg(dir.join("top.vcl"))
            .arg("-p")
            .arg(format!("vcl_path={}", dir.display()))
            .args(["-s", "malloc,64m", "-j", "none", "-T", "127.0.0.1:0"]),
        dir.join("varnishd.log"),
    );
    varnish
        .ready(&format!("http://127.0.0.1:{port}/healthz"))
        .await;
    // Probes need a moment to call the nodes healthy.
    wait_healthy(&cluster, port).await;
    let base = format!("http://127.0.0.1:{port}");
    let mut asks = Vec::new();
    for video in 0..10 {
        asks.push((video, 7, 0));
        asks.push((video, 7, 1));
    }
    let answers = ask_all(&cluster, &base, asks.clone(), 6).await;
    for ((video, secs, _), (status, _, body)) in asks.iter().zip(&answers) {
        assert_eq!(*status, 200, "c{video:02} at {secs} s");
        assert_eq!(frame_of(body), (secs * 25) % 1024);
    }
    let mut per_node = Vec::new();
    for port in ports {
        per_node.push(cluster.renders(port).await);
    }
    assert_eq!(
        per_node.iter().sum::<f64>(),
        10.0,
        "renders per node: {per_node:?}"
    );
    assert!(
        per_node.iter().filter(|&&n| n > 0.0).count() >= 2,
        "spread: {per_node:?}"
    );
}

/// Waits until a request through Varnish reaches a node (its probes have
/// marked the backends healthy).
async fn wait_healthy(cluster: &Cluster, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _, _) = cluster
            .get(&format!("http://127.0.0.1:{port}/readyz"))
            .await;
        if status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "varnish never reached a healthy node"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
