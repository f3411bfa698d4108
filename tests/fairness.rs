//! Clients as they really are: one client flooding distinct thumbnail URLs
//! (cache-busting widths and times) must not take the render queue from
//! everyone else. Each client holds at most `render.per_client_queue`
//! places of it (by peer address, or the address a trusted proxy names),
//! and an environment's `allowed_widths` fold made-up widths into a few
//! cache entries.
//!
//! Distinct clients are distinct loopback addresses (127.0.0.1 and
//! 127.0.0.2, both local on Linux), or one address behind a trusted-proxy
//! header.

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{metric, problem, SourceServer, Thumbd};
use reqwest::StatusCode;
use tokio::task::JoinSet;

/// One render at a time, eight waiting, two of them per client; the first
/// read fetches demo.mp4's index, so a render waits on `/fault/hold/` reads
/// inside its pool slot.
const QUEUE: &str = "[render]\nconcurrency = 1\nqueue = 8\nper_client_queue = 2\n\
                     [fetch]\ninitial_read_bytes = 65536\n";
/// Requests a flooder sends at once, and how many of them its share admits
/// (the running render and two waiting).
const FLOOD: usize = 50;
const ADMITTED: usize = 3;

const TRUSTING_LOCALHOST: &str =
    "[server]\nclient_header = \"X-Forwarded-For\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n";

/// An HTTP client whose connections come from `local`.
fn client_from(local: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(local))
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

type Answer = (StatusCode, reqwest::header::HeaderMap, Bytes);

async fn send(client: reqwest::Client, url: String, forwarded_for: Option<String>) -> Answer {
    let mut req = client.get(url);
    if let Some(v) = forwarded_for {
        req = req.header("x-forwarded-for", v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap())
}

/// A server reading samples/ over HTTP, with `extra` config.
async fn start(extra: &str) -> (SourceServer, Arc<Thumbd>) {
    let source = SourceServer::start(common::samples()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), &format!("{QUEUE}{extra}"))).await;
    (source, Arc::new(thumbd))
}

/// A distinct miss on a held source: it waits, holding a slot or a place
/// in the queue, until the source is released (its frame, 5 s into the
/// video, lies past the first read).
fn held(thumbd: &Thumbd, i: usize) -> String {
    thumbd.url(&format!(
        "/v1/thumbnail/demo/http/fault/hold/demo.mp4.webp?width={}&timeStamp=5.{i:03}",
        100 + i
    ))
}

/// A distinct miss on a source that answers at once.
fn prompt(thumbd: &Thumbd, i: usize) -> String {
    thumbd.url(&format!(
        "/v1/thumbnail/demo/http/demo.mp4.webp?width=90&timeStamp=0.{i:03}"
    ))
}

/// Sends `FLOOD` distinct held misses through `client` (each with the
/// `X-Forwarded-For` that `forwarded_for` makes for it), and waits until
/// the flood has been answered but for what the server admitted (or 10 s
/// pass). The refusals, and the requests still under way.
async fn flood(
    thumbd: &Thumbd,
    client: &reqwest::Client,
    forwarded_for: impl Fn(usize) -> Option<String>,
) -> (Vec<Answer>, JoinSet<Answer>) {
    let mut set = JoinSet::new();
    for i in 0..FLOOD {
        set.spawn(send(client.clone(), held(thumbd, i), forwarded_for(i)));
    }
    let mut refused = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while set.len() > ADMITTED {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, set.join_next()).await {
            Ok(Some(answer)) => refused.push(answer.unwrap()),
            _ => break,
        }
    }
    (refused, set)
}

/// The status of a request expected to be refused at once (an admitted
/// one would wait for the held source): fails if none comes within 2 s.
async fn status_at_once(client: &reqwest::Client, url: String, forwarded_for: Option<&str>) -> u16 {
    let answer = send(client.clone(), url, forwarded_for.map(str::to_owned));
    match tokio::time::timeout(Duration::from_secs(2), answer).await {
        Ok((status, _, _)) => status.as_u16(),
        Err(_) => panic!("not refused: it waits for a render"),
    }
}

/// Every refusal is the busy problem with Retry-After.
fn assert_busy(refused: &[Answer]) {
    for (status, headers, body) in refused {
        assert_eq!(*status, 503, "{}", String::from_utf8_lossy(body));
        assert_eq!(headers["retry-after"], "1");
        assert_eq!(problem(body)["type"], "urn:thumbd:problem:busy");
    }
}

/// The held renders run once the source answers: the admitted requests
/// all complete.
async fn assert_all_ok(mut set: JoinSet<Answer>, who: &str) {
    while let Some(answer) = set.join_next().await {
        let (status, _, body) = answer.unwrap();
        assert_eq!(status, 200, "{who}: {}", String::from_utf8_lossy(&body));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_does_not_take_the_queue_from_others() {
    let (source, thumbd) = start("").await;
    let flooder = client_from([127, 0, 0, 2]);
    let other = client_from([127, 0, 0, 1]);
    let cached = prompt(&thumbd, 999);
    assert_eq!(send(other.clone(), cached.clone(), None).await.0, 200);
    let (refused, admitted) = flood(&thumbd, &flooder, |_| None).await;
    // The flooder got its share: one render and two places; the rest 503.
    assert_eq!(refused.len(), FLOOD - ADMITTED, "refused of the flood");
    assert_busy(&refused);
    assert!(source.traffic("held:fault/hold/demo.mp4").requests >= 1);
    // Meanwhile another client's distinct misses are admitted, as many as
    // its own share.
    let mut others = JoinSet::new();
    for i in 0..2 {
        others.spawn(send(other.clone(), prompt(&thumbd, i), None));
    }
    // They wait behind the held render (not refused at once).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(others.len(), 2, "another client's misses were refused");
    // The flooder's next miss is still refused, but a hit is served to it.
    assert_eq!(
        status_at_once(&flooder, held(&thumbd, FLOOD), None).await,
        503
    );
    let (status, headers, _) = send(flooder, cached, None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-thumbnail-cache"], "hit");
    source.release();
    assert_all_ok(others, "the other client").await;
    assert_all_ok(admitted, "the flooder's admitted renders").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_render_under_way_counts_against_no_one() {
    let (source, thumbd) = start("").await;
    let client = client_from([127, 0, 0, 2]);
    // Twenty requests for one thumbnail: one render (holding the slot),
    // nineteen waiting for it.
    let mut same = JoinSet::new();
    for _ in 0..20 {
        same.spawn(send(client.clone(), held(&thumbd, 0), None));
    }
    while source.traffic("held:fault/hold/demo.mp4").requests == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        same.len(),
        20,
        "a request for the render under way was refused"
    );
    // The client's share is still whole: two distinct misses wait, the
    // third is refused.
    let mut distinct = JoinSet::new();
    for i in 1..=2 {
        distinct.spawn(send(client.clone(), held(&thumbd, i), None));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(distinct.len(), 2, "the client's share was taken");
    assert_eq!(status_at_once(&client, held(&thumbd, 3), None).await, 503);
    source.release();
    assert_all_ok(same, "the coalesced requests").await;
    assert_all_ok(distinct, "the distinct misses").await;
    let m = thumbd.metrics().await;
    assert_eq!(metric(&m, "thumbd_renders_total"), 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_client() {
    let (source, thumbd) = start(TRUSTING_LOCALHOST).await;
    // Everyone comes through the proxy on 127.0.0.1. The flooder varies
    // what it writes itself (the start of the list); the proxy appends the
    // address it saw, and that is the client.
    let proxy = client_from([127, 0, 0, 1]);
    let (refused, admitted) = flood(&thumbd, &proxy, |i| {
        Some(format!("10.0.{}.{}, 203.0.113.7", i / 200, i % 200))
    })
    .await;
    assert_eq!(refused.len(), FLOOD - ADMITTED, "refused of the flood");
    assert_busy(&refused);
    let mut others = JoinSet::new();
    for i in 0..2 {
        others.spawn(send(
            proxy.clone(),
            prompt(&thumbd, i),
            Some("198.51.100.9".into()),
        ));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(others.len(), 2, "another client's misses were refused");
    source.release();
    assert_all_ok(others, "the other client").await;
    assert_all_ok(admitted, "the flooder's admitted renders").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peers_header_is_ignored() {
    let (source, thumbd) = start(TRUSTING_LOCALHOST).await;
    // 127.0.0.2 is no trusted proxy: every address it claims is itself.
    let peer = client_from([127, 0, 0, 2]);
    let (refused, admitted) = flood(&thumbd, &peer, |i| Some(format!("203.0.113.{}", i + 1))).await;
    assert_eq!(
        refused.len(),
        FLOOD - ADMITTED,
        "each claimed address got a share of its own"
    );
    assert_busy(&refused);
    let status = status_at_once(&peer, prompt(&thumbd, 0), Some("198.51.100.9")).await;
    assert_eq!(status, 503, "claiming another address is no way in");
    // The trusted proxy without a header is a client of its own.
    let proxy = client_from([127, 0, 0, 1]);
    let own = tokio::spawn(send(proxy, prompt(&thumbd, 1), None));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!own.is_finished(), "the proxy's own miss was refused");
    source.release();
    assert_eq!(own.await.unwrap().0, 200);
    assert_all_ok(admitted, "the admitted renders").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_widths_fold_made_up_widths_into_one_render() {
    let secret = "a-test-secret-that-is-long-enough-0123456789";
    let sized = "allowed_widths = [1280, 160, 320, 640]\n";
    let toml = common::config(
        None,
        &format!(
            "[orgs.demo.envs.sized]\nsource = \"file:{{key}}\"\n{sized}\
             [orgs.demo.envs.private]\nsource = \"file:{{key}}\"\naccess = \"signed\"\n{sized}\
             [[orgs.demo.signing_keys]]\nkid = \"hs\"\nalg = \"HS256\"\nsecret = \"{secret}\"\n"
        ),
    );
    let thumbd = Thumbd::start(&toml).await;
    let url = |env: &str, query: &str| {
        thumbd.url(&format!(
            "/v1/thumbnail/demo/{env}/h264_faststart.mp4.png?timeStamp=1.5{query}"
        ))
    };
    let local = client_from([127, 0, 0, 1]);
    let get = |url: String| send(local.clone(), url, None);
    let width = |body: &Bytes| image::load_from_memory(body).unwrap().width();

    let (status, headers, first) = get(url("sized", "&width=317")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&first));
    assert_eq!(headers["x-thumbnail-cache"], "miss");
    assert_eq!(width(&first), 320, "the picture is the allowed width");
    let renders = metric(&thumbd.metrics().await, "thumbd_renders_total");
    for w in [320, 240, 479] {
        let (status, headers, again) = get(url("sized", &format!("&width={w}"))).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-thumbnail-cache"], "hit", "width={w}");
        assert_eq!(again, first, "width={w}: the same bytes");
    }
    assert_eq!(
        metric(&thumbd.metrics().await, "thumbd_renders_total"),
        renders,
        "no other render"
    );
    let (_, _, wide) = get(url("sized", "&width=1000")).await;
    assert_eq!(width(&wide), 1280);
    // An environment without a list serves the width asked for.
    let (_, _, exact) = get(url("files", "&width=317")).await;
    assert_eq!(width(&exact), 317);

    // A token binding width=320 binds the width as requested, before it is
    // snapped: another width that would snap to 320 is refused all the same.
    let claims = serde_json::json!({
        "sub": "h264_faststart.mp4", "aud": "thumbnail", "width": 320,
        "exp": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("hs".into());
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let (status, _, body) = get(url("private", &format!("&token={token}"))).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(width(&body), 320);
    for w in [317, 640] {
        let (status, _, body) = get(url("private", &format!("&width={w}&token={token}"))).await;
        assert_eq!(status, 403, "width={w}: {}", String::from_utf8_lossy(&body));
    }
}
