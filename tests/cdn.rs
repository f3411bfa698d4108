//! The shipped cache configurations in front of the real binary:
//! deploy/varnish/default.vcl (varnishd) and deploy/nginx/thumbd-cache.conf
//! (nginx), each pointed at thumbd on a loopback port. What reaches thumbd
//! is read from its own `/metrics` (`thumbd_http_requests_total` for route
//! `thumbnail`), so "served from the cache" means thumbd never saw it.
//!
//! Both proxies must be installed: `make test` installs them (packages
//! `varnish` and `nginx-light`). A missing one fails the test, never skips.

mod common;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::proxies::{repo, substitute, tool};
use common::{free_port, samples, Proc, SourceServer};
use reqwest::header::HeaderMap;

const SECRET: &str = "cdn-test-secret-that-is-long-enough-0123456789";
/// thumbd's `server.error_max_age_secs` here: short, so a cached 404 expires
/// within the test.
const ERROR_MAX_AGE: u64 = 2;

/// thumbd (the real binary) serving `demo/local` (the samples, public),
/// `demo/private` (the samples, signed) and `demo/held` (the samples over
/// HTTP from a source that holds reads until released).
struct Origin {
    _proc: Proc,
    port: u16,
    base: String,
    dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Origin {
    async fn start(source: &SourceServer) -> Origin {
        let dir = tempfile::tempdir().unwrap();
        // The proxies' workers may run as another user (nginx's `nobody`).
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let port = free_port();
        let samples = samples();
        let config = dir.path().join("thumbd.toml");
        fs::write(
            &config,
            format!(
                r#"
[server]
public_base_url = "http://127.0.0.1:{port}"
error_max_age_secs = {ERROR_MAX_AGE}
[jobs]
db_path = "{db}"
[orgs.demo.envs.local]
source = "file:{samples}/{{key}}"
access = "public"
[orgs.demo.envs.private]
source = "file:{samples}/{{key}}"
access = "signed"
[orgs.demo.envs.held]
source = "http://{src}/fault/hold/{{key}}"
access = "public"
[[orgs.demo.signing_keys]]
kid = "cdn"
alg = "HS256"
secret = "{SECRET}"
"#,
                db = dir.path().join("jobs.db").display(),
                samples = samples.display(),
                src = source.addr,
            ),
        )
        .unwrap();
        let proc = Proc::thumbd(Some(&config), port, &[], dir.path().join("thumbd.log")).await;
        let client = client();
        let base = format!("http://127.0.0.1:{port}");
        Origin {
            _proc: proc,
            port,
            base,
            dir,
            client,
        }
    }

    /// `thumbd_http_requests_total` for `route`, summed over statuses.
    async fn requests_now(&self, route: &str) -> u64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut total = None;
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("thumbd_http_requests_total{") else {
                continue;
            };
            let (labels, value) = rest.split_once('}').unwrap();
            let labels: HashMap<&str, &str> = labels
                .split(',')
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim_matches('"')))
                .collect();
            if labels.get("route") == Some(&route) {
                let n: f64 = value.split_whitespace().next().unwrap().parse().unwrap();
                *total.get_or_insert(0) += n as u64;
            }
        }
        // Before the first request of a route its series may be absent.
        total.unwrap_or(0)
    }

    /// The count once it has stopped moving (a request's answer may reach
    /// the client a moment before thumbd counts it).
    async fn requests(&self, route: &str) -> u64 {
        let mut last = self.requests_now(route).await;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.requests_now(route).await;
            if now == last {
                return now;
            }
            last = now;
        }
        last
    }

    /// A token from `thumbd sign` for `demo/private/demo.mp4` at width 320.
    fn sign(&self, expires_in: u64) -> String {
        let expires = expires_in.to_string();
        common::sign(
            &self.dir.path().join("thumbd.toml"),
            &[
                "--org",
                "demo",
                "--env",
                "private",
                "--key",
                "demo.mp4",
                "--kid",
                "cdn",
                "--width",
                "320",
                "--expires-in",
                &expires,
            ],
        )
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Varnish with the shipped VCL, its backend pointed at thumbd.
fn start_varnish(origin: &Origin, port: u16) -> Proc {
    let varnishd = tool("varnishd", "varnish");
    let shipped = fs::read_to_string(repo().join("deploy/varnish/default.vcl")).unwrap();
    // As the VCL's header says: substitute the quoted port.
    let vcl = origin.dir.path().join("thumbd.vcl");
    let port_literal = format!("\"{}\"", origin.port);
    fs::write(&vcl, substitute(&shipped, "\"8080\"", &port_literal)).unwrap();
    // The host is left as it is, but must be substitutable as documented.
    substitute(&shipped, "\"127.0.0.1\"", "\"thumbd\"");
    Proc::spawn(
        "varnishd",
        Command::new(varnishd)
            .arg("-F")
            .arg("-n")
            .arg(origin.dir.path().join("varnish"))
            .args(["-a", &format!("127.0.0.1:{port}")])
            .arg("-f")
            .arg(&vcl)
            .args(["-s", "malloc,64m", "-j", "none", "-T", "127.0.0.1:0"]),
        origin.dir.path().join("varnishd.log"),
    )
}

/// nginx with a minimal nginx.conf including the shipped file, its upstream,
/// listen port and cache folder moved into the test's folder.
fn start_nginx(origin: &Origin, port: u16) -> Proc {
    let dir = origin.dir.path().join("nginx");
    fs::create_dir_all(dir.join("logs")).unwrap();
    let shipped = fs::read_to_string(repo().join("deploy/nginx/thumbd-cache.conf")).unwrap();
    let conf = substitute(
        &shipped,
        "server 127.0.0.1:8080;",
        &format!("server 127.0.0.1:{};", origin.port),
    );
    let conf = common::proxies::cache_conf_at(&conf, port, &dir.join("cache"));
    fs::write(dir.join("thumbd-cache.conf"), conf).unwrap();
    common::proxies::nginx(&dir, &["thumbd-cache.conf"])
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: bytes::Bytes,
}

async fn fetch(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.unwrap(),
    }
}

fn header<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers.get(name).map_or("", |v| v.to_str().unwrap_or(""))
}

/// Every check, through the proxy at `proxy` (a base URL).
async fn check_cache(name: &str, origin: &Origin, source: &SourceServer, proxy: &str) {
    let client = client();
    let thumbs = || origin.requests("thumbnail");
    let url = |path: &str| format!("{proxy}{path}");

    // A miss reaches thumbd once; the same URL again does not.
    let hit_path = "/v1/thumbnail/demo/local/demo.mp4.webp?width=320&timeStamp=2";
    let before = thumbs().await;
    let first = fetch(&client, &url(hit_path), &[]).await;
    assert_eq!(
        first.status,
        200,
        "{name}: {}",
        header(&first, "x-cache-status")
    );
    assert_eq!(header(&first, "content-type"), "image/webp");
    assert_eq!(
        thumbs().await,
        before + 1,
        "{name}: the miss reaches thumbd"
    );
    let second = fetch(&client, &url(hit_path), &[]).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body, first.body, "{name}: the cached picture");
    assert_eq!(header(&second, "etag"), header(&first, "etag"));
    assert_eq!(header(&second, "x-cache-status"), "HIT", "{name}");
    assert_eq!(
        thumbs().await,
        before + 1,
        "{name}: a cached thumbnail must not reach thumbd"
    );

    // If-None-Match: 304 from the cache, and on a cold URL too (the proxy
    // still stores the full picture).
    let etag = header(&first, "etag").to_owned();
    assert!(etag.starts_with('"'), "{name}: strong ETag, got {etag:?}");
    let not_modified = fetch(&client, &url(hit_path), &[("if-none-match", &etag)]).await;
    assert_eq!(not_modified.status, 304, "{name}: If-None-Match on a hit");
    assert!(not_modified.body.is_empty());
    assert_eq!(
        thumbs().await,
        before + 1,
        "{name}: the 304 came from the cache"
    );

    let cold_path = "/v1/thumbnail/demo/local/demo.mp4.webp?width=200&timeStamp=3";
    let direct = fetch(&client, &format!("{}{cold_path}", origin.base), &[]).await;
    assert_eq!(direct.status, 200);
    let cold_etag = header(&direct, "etag").to_owned();
    let before = thumbs().await;
    let cold = fetch(&client, &url(cold_path), &[("if-none-match", &cold_etag)]).await;
    assert_eq!(cold.status, 304, "{name}: If-None-Match on a miss");
    assert_eq!(thumbs().await, before + 1);
    let full = fetch(&client, &url(cold_path), &[]).await;
    assert_eq!(full.status, 200);
    assert_eq!(
        full.body, direct.body,
        "{name}: the miss stored the picture"
    );
    assert_eq!(
        thumbs().await,
        before + 1,
        "{name}: and serves it from the cache"
    );

    // 50 identical cold requests at once reach thumbd once. The source holds
    // the render until every request has had time to reach the proxy, so
    // this is the proxy coalescing misses, not hits after the first answer.
    let held_path = "/v1/thumbnail/demo/held/demo.mp4.webp?width=240&timeStamp=6";
    let before = thumbs().await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (client, u) = (client.clone(), url(held_path));
            tokio::spawn(async move { fetch(&client, &u, &[]).await })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while source.traffic("held:fault/hold/demo.mp4").requests == 0 {
        assert!(
            Instant::now() < deadline,
            "{name}: the render never reached the source"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    source.release();
    let mut bodies = Vec::new();
    for t in tasks {
        let a = t.await.unwrap();
        assert_eq!(a.status, 200, "{name}: a coalesced request");
        bodies.push(a.body);
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]));
    assert_eq!(
        thumbs().await,
        before + 1,
        "{name}: 50 concurrent identical misses must reach thumbd once"
    );

    // A cacheable error (404, max-age=ERROR_MAX_AGE) is kept, then expires.
    let missing = "/v1/thumbnail/demo/local/no-such-video.mp4.webp?width=320";
    let before = thumbs().await;
    let a = fetch(&client, &url(missing), &[]).await;
    assert_eq!(a.status, 404);
    assert_eq!(
        header(&a, "cache-control"),
        format!("public, max-age={ERROR_MAX_AGE}")
    );
    let cached_at = Instant::now();
    assert_eq!(fetch(&client, &url(missing), &[]).await.status, 404);
    assert_eq!(thumbs().await, before + 1, "{name}: a 404 is cached");
    // nginx counts whole seconds: ERROR_MAX_AGE + 2 is past it either way.
    tokio::time::sleep((cached_at + Duration::from_secs(ERROR_MAX_AGE + 2)) - Instant::now()).await;
    assert_eq!(fetch(&client, &url(missing), &[]).await.status, 404);
    assert_eq!(thumbs().await, before + 2, "{name}: the cached 404 expires");

    // A 400 is cacheable too.
    let bad = "/v1/thumbnail/demo/local/demo.mp4.webp?width=5000";
    let before = thumbs().await;
    assert_eq!(fetch(&client, &url(bad), &[]).await.status, 400);
    assert_eq!(fetch(&client, &url(bad), &[]).await.status, 400);
    assert_eq!(thumbs().await, before + 1, "{name}: a 400 is cached");

    // Signed URLs: cached per token, never served to another or no token.
    let private = "/v1/thumbnail/demo/private/demo.mp4.webp?width=320";
    let token = origin.sign(3600);
    let other_token = origin.sign(3500);
    assert_ne!(token, other_token);
    let forged = {
        let (head, sig) = token.rsplit_once('.').unwrap();
        let first = if sig.starts_with('A') { 'B' } else { 'A' };
        format!("{head}.{first}{}", &sig[1..])
    };
    let before = thumbs().await;
    let signed = fetch(&client, &url(&format!("{private}&token={token}")), &[]).await;
    assert_eq!(signed.status, 200, "{name}");
    let max_age: u64 = header(&signed, "cache-control")
        .strip_prefix("public, max-age=")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{name}: {}", header(&signed, "cache-control")));
    assert!(max_age <= 3600, "{name}: max-age {max_age} past the token");
    let again = fetch(&client, &url(&format!("{private}&token={token}")), &[]).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, signed.body);
    assert_eq!(thumbs().await, before + 1, "{name}: same token, cached");

    let other = fetch(
        &client,
        &url(&format!("{private}&token={other_token}")),
        &[],
    )
    .await;
    assert_eq!(other.status, 200);
    assert_eq!(
        thumbs().await,
        before + 2,
        "{name}: another token is another cache entry"
    );
    for _ in 0..2 {
        let a = fetch(&client, &url(&format!("{private}&token={forged}")), &[]).await;
        assert_eq!(a.status, 401, "{name}: a forged token");
        assert_ne!(a.body, signed.body);
        assert_eq!(header(&a, "content-type"), "application/problem+json");
        let a = fetch(&client, &url(private), &[]).await;
        assert_eq!(a.status, 401, "{name}: no token");
        assert_ne!(a.body, signed.body);
    }
    // A token in Authorization is never cached under the bare URL.
    let bearer = format!("Bearer {token}");
    let before = thumbs().await;
    for _ in 0..2 {
        let a = fetch(&client, &url(private), &[("authorization", &bearer)]).await;
        assert_eq!(a.status, 200, "{name}: Authorization: Bearer");
        let a = fetch(&client, &url(private), &[]).await;
        assert_eq!(a.status, 401, "{name}: the bearer's picture was cached");
    }
    assert_eq!(
        thumbs().await,
        before + 4,
        "{name}: requests with Authorization pass"
    );

    // Health, readiness and metrics are never cached; /metrics is not
    // served through the proxy at all.
    for (path, route) in [("/healthz", "health"), ("/readyz", "ready")] {
        let before = origin.requests(route).await;
        for _ in 0..2 {
            assert_eq!(fetch(&client, &url(path), &[]).await.status, 200, "{path}");
        }
        assert_eq!(origin.requests(route).await, before + 2, "{name}: {path}");
    }
    let metrics = fetch(&client, &url("/metrics"), &[]).await;
    assert_eq!(metrics.status, 404, "{name}: /metrics through the proxy");
    assert!(!String::from_utf8_lossy(&metrics.body).contains("thumbd_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn varnish_with_the_shipped_vcl() {
    let started = Instant::now();
    let source = SourceServer::start(samples()).await;
    let origin = Origin::start(&source).await;
    let port = free_port();
    let mut varnish = start_varnish(&origin, port);
    let proxy = format!("http://127.0.0.1:{port}");
    varnish.ready(&format!("{proxy}/healthz")).await;
    check_cache("varnish", &origin, &source, &proxy).await;
    eprintln!("varnish: {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_with_the_shipped_cache_conf() {
    let started = Instant::now();
    let source = SourceServer::start(samples()).await;
    let origin = Origin::start(&source).await;
    let port = free_port();
    let mut nginx = start_nginx(&origin, port);
    let proxy = format!("http://127.0.0.1:{port}");
    nginx.ready(&format!("{proxy}/healthz")).await;
    check_cache("nginx", &origin, &source, &proxy).await;
    eprintln!("nginx: {:.1} s", started.elapsed().as_secs_f64());
}
