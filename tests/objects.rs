//! Videos in object storage and the shared render cache, against a real
//! S3-compatible server (s3s-fs, signatures checked) behind a counting,
//! fault-injecting proxy: S3 sources read the same bytes in the same
//! requests as HTTP sources; wrong credentials are a 502 with a clear log
//! line; throttling is retried; a replaced object never mixes with its old
//! bytes; the shared cache makes a second node (or a restarted one) serve
//! without rendering, keys renders by the source's version, and an outage
//! of it only costs renders.

mod common;

use std::time::{Duration, Instant};

use common::s3::{S3Server, ACCESS_KEY, SECRET_KEY};
use common::{
    fixtures, get, metric, picture_fixtures, problem, read_pattern, SourceServer, Thumbd,
};

/// An org `demo` with env `s3` reading bucket `videos` through the proxy
/// (with `secret` as its secret key) and env `http` reading the fixture
/// folder over HTTP; `extra` appended.
fn config(s3: &S3Server, http: &SourceServer, secret: &str, extra: &str) -> String {
    format!(
        r#"
[fetch]
initial_read_bytes = 4096
{extra}
[orgs.demo.envs.s3]
source = "s3://videos/in/{{key}}"
[orgs.demo.envs.s3.s3]
region = "us-east-1"
{table}[orgs.demo.envs.http]
source = "http://{http}/{{key}}"
"#,
        table = s3.table_with_secret(secret),
        http = http.addr,
    )
}

/// `[cache.shared]` in bucket `thumbs`, prefix `cache/`.
fn shared(s3: &S3Server, timeout_ms: u64) -> String {
    format!(
        r#"
[cache.shared]
url = "s3://thumbs/cache/"
timeout_ms = {timeout_ms}
failure_backoff_secs = 1
[cache.shared.s3]
{}"#,
        s3.table()
    )
}

async fn setup() -> (S3Server, SourceServer) {
    let s3 = S3Server::start().await;
    s3.bucket("videos");
    s3.bucket("thumbs");
    for name in ["story.mp4", "h264_moov_end.mp4", "h264_faststart.mp4"] {
        let bytes = std::fs::read(picture_fixtures().join(name)).unwrap();
        s3.put("videos", &format!("in/{name}"), &bytes);
    }
    let http = SourceServer::start(fixtures()).await;
    (s3, http)
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Polls `series` in `t`'s metrics until it reaches `at_least`.
async fn wait_metric(t: &Thumbd, series: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = t.metrics().await;
        if metric(&text, series) >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never reached {at_least}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_sources_read_the_same_bytes_in_the_same_requests_as_http() {
    let (s3, http) = setup().await;
    let t = Thumbd::start(&config(&s3, &http, SECRET_KEY, "")).await;
    for (video, secs, frame) in [
        ("story.mp4", 12.0, 300),
        ("h264_moov_end.mp4", 2.0, 50),
        ("h264_faststart.mp4", 3.0, 75),
    ] {
        let path = |env: &str| format!("/v1/thumbnail/demo/{env}/{video}.png?timeStamp={secs}");
        let (status, _, from_s3) = get(&t.url(&path("s3"))).await;
        assert_eq!(status, 200, "{video} from S3");
        let (status, _, from_http) = get(&t.url(&path("http"))).await;
        assert_eq!(status, 200, "{video} over HTTP");
        assert_eq!(from_s3, from_http, "{video}: the same picture");
        assert_eq!(
            read_pattern(&from_s3).frame,
            frame,
            "{video}: the frame at {secs} s"
        );
        let (over_s3, over_http) = (
            s3.traffic(&format!("videos/in/{video}")),
            http.traffic(video),
        );
        assert_eq!(
            (over_s3.requests, over_s3.bytes),
            (over_http.requests, over_http.bytes),
            "{video}: requests and bytes, S3 against HTTP"
        );
        if video == "story.mp4" {
            let size = std::fs::metadata(fixtures().join(video)).unwrap().len();
            assert!(over_s3.bytes < size / 2, "{video}: read in part");
        }
    }
    // A key that is not in the bucket.
    let (status, _, body) = get(&t.url("/v1/thumbnail/demo/s3/missing.mp4.webp")).await;
    assert_eq!(status, 404);
    assert_eq!(problem(&body)["status"], 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_a_502_that_keeps_the_bucket_to_the_log() {
    let (s3, http) = setup().await;
    let t = Thumbd::start(&config(&s3, &http, "not-the-secret-key-at-all-000000", "")).await;
    let (status, headers, body) =
        get(&t.url("/v1/thumbnail/demo/s3/story.mp4.webp?timeStamp=1")).await;
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&body));
    assert_eq!(header(&headers, "content-type"), "application/problem+json");
    let text = String::from_utf8_lossy(&body);
    for leak in [
        "SignatureDoesNotMatch",
        "<Error>",
        "AccessDenied",
        ACCESS_KEY,
        "127.0.0.1",
    ] {
        assert!(!text.contains(leak), "the answer shows {leak}: {text}");
    }
    let m = t.metrics().await;
    assert!(
        metric(&m, r#"thumbd_source_errors_total{kind="denied"}"#) >= 1.0,
        "{m}"
    );
    // The server refused the request itself: nothing was read.
    assert_eq!(s3.traffic("videos/in/story.mp4").bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_within_the_render() {
    let (s3, http) = setup().await;
    let t = Thumbd::start(&config(&s3, &http, SECRET_KEY, "")).await;
    s3.throttle(3);
    let (status, _, body) = get(&t.url("/v1/thumbnail/demo/s3/story.mp4.png?timeStamp=4")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(read_pattern(&body).frame, 100);
    assert_eq!(s3.throttled(), 3, "every 503 was answered and retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_object_is_never_mixed_with_its_old_bytes() {
    let (s3, http) = setup().await;
    let t = Thumbd::start(&config(&s3, &http, SECRET_KEY, "")).await;
    let first = get(&t.url("/v1/thumbnail/demo/s3/story.mp4.png?timeStamp=1")).await;
    assert_eq!(first.0, 200);
    assert_eq!(image::load_from_memory(&first.2).unwrap().width(), 320);
    // Another video under the same key: 160x96 (story.mp4 is 320x180).
    s3.put(
        "videos",
        "in/story.mp4",
        &std::fs::read(fixtures().join("h264_faststart.mp4")).unwrap(),
    );
    // The first request after the change may find it out mid-read (502,
    // retry); it may never answer with a picture made of both.
    let mut answers = Vec::new();
    for _ in 0..2 {
        let (status, _, body) =
            get(&t.url("/v1/thumbnail/demo/s3/story.mp4.png?timeStamp=2")).await;
        answers.push(status.as_u16());
        if status == 200 {
            let picture = image::load_from_memory(&body).unwrap();
            assert_eq!(
                (picture.width(), picture.height()),
                (160, 96),
                "the new video's frame"
            );
            assert_eq!(read_pattern(&body).frame, 50);
        } else {
            assert_eq!(status, 502, "{}", String::from_utf8_lossy(&body));
            let detail = problem(&body)["detail"].to_string();
            assert!(detail.contains("changed"), "{detail}");
        }
    }
    assert_eq!(answers.last(), Some(&200), "{answers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_serves_from_the_shared_cache_without_rendering() {
    let (s3, http) = setup().await;
    let toml = config(&s3, &http, SECRET_KEY, &shared(&s3, 2000));
    let a = Thumbd::start(&toml).await;
    let b = Thumbd::start(&toml).await;
    let url = "/v1/thumbnail/demo/s3/story.mp4.webp?width=160&timeStamp=2";
    let (status, headers, rendered) = get(&a.url(url)).await;
    assert_eq!(
        (status.as_u16(), header(&headers, "x-thumbnail-cache")),
        (200, "miss")
    );
    wait_metric(
        &a,
        r#"thumbd_shared_cache_writes_total{outcome="written"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        s3.objects("thumbs", "cache").len(),
        1,
        "one entry under the prefix"
    );

    let (status, headers, shared_copy) = get(&b.url(url)).await;
    assert_eq!(
        (status.as_u16(), header(&headers, "x-thumbnail-cache")),
        (200, "shared")
    );
    assert_eq!(shared_copy, rendered, "the same bytes");
    assert!(!header(&headers, "etag").is_empty());
    let m = b.metrics().await;
    assert_eq!(
        metric(&m, "thumbd_renders_total"),
        0.0,
        "node b rendered nothing"
    );
    assert_eq!(
        metric(&m, r#"thumbd_shared_cache_lookups_total{outcome="hit"}"#),
        1.0
    );
    // Then it is in b's memory.
    let (_, headers, _) = get(&b.url(url)).await;
    assert_eq!(header(&headers, "x-thumbnail-cache"), "hit");

    // A new version of the video names other entries: a third node renders.
    s3.put(
        "videos",
        "in/story.mp4",
        &std::fs::read(fixtures().join("h264_faststart.mp4")).unwrap(),
    );
    let c = Thumbd::start(&toml).await;
    let (status, headers, body) = get(&c.url(url)).await;
    assert_eq!(
        (status.as_u16(), header(&headers, "x-thumbnail-cache")),
        (200, "miss")
    );
    let picture = image::load_from_memory(&body).unwrap();
    assert_eq!(
        (picture.width(), picture.height()),
        (160, 96),
        "the new video's frame, not the old one's (160x90)"
    );
    assert_eq!(read_pattern(&image_png(&body)).frame, 50);
}

/// A WebP thumbnail as PNG, for [`read_pattern`].
fn image_png(webp: &[u8]) -> Vec<u8> {
    let picture = image::load_from_memory(webp).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    picture.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_the_shared_cache_only_costs_renders() {
    let (s3, http) = setup().await;
    // Videos over HTTP; only the shared cache is in the (failing) bucket.
    let t = Thumbd::start(&config(&s3, &http, SECRET_KEY, &shared(&s3, 300))).await;
    s3.set_down(true);
    for secs in [1, 2, 3] {
        let started = Instant::now();
        let (status, headers, body) = get(&t.url(&format!(
            "/v1/thumbnail/demo/http/story.mp4.png?timeStamp={secs}"
        )))
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(header(&headers, "x-thumbnail-cache"), "miss");
        assert_eq!(read_pattern(&body).frame, secs * 25);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "bounded by timeout_ms"
        );
    }
    let m = t.metrics().await;
    assert!(
        metric(&m, r#"thumbd_shared_cache_lookups_total{outcome="error"}"#) >= 1.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            r#"thumbd_shared_cache_lookups_total{outcome="skipped"}"#
        ) >= 1.0,
        "backing off after the first failure: {m}"
    );
    // Back up (after the backoff): written again.
    s3.set_down(false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, _) = get(&t.url("/v1/thumbnail/demo/http/story.mp4.png?timeStamp=5")).await;
    assert_eq!(status, 200);
    wait_metric(
        &t,
        r#"thumbd_shared_cache_writes_total{outcome="written"}"#,
        1.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_cache_keeps_renders_across_a_restart() {
    let http = SourceServer::start(picture_fixtures()).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[cache.shared]\nurl = \"file:{}\"\n[orgs.demo.envs.http]\nsource = \"http://{}/{{key}}\"\n",
        dir.path().display(),
        http.addr
    );
    let url = "/v1/thumbnail/demo/http/story.mp4.jpg?width=200&timeStamp=20";
    let first = {
        let a = Thumbd::start(&toml).await;
        let (status, headers, body) = get(&a.url(url)).await;
        assert_eq!(
            (status.as_u16(), header(&headers, "x-thumbnail-cache")),
            (200, "miss")
        );
        wait_metric(
            &a,
            r#"thumbd_shared_cache_writes_total{outcome="written"}"#,
            1.0,
        )
        .await;
        body
    };
    let b = Thumbd::start(&toml).await;
    let (status, headers, body) = get(&b.url(url)).await;
    assert_eq!(
        (status.as_u16(), header(&headers, "x-thumbnail-cache")),
        (200, "shared")
    );
    assert_eq!(body, first);
    assert_eq!(metric(&b.metrics().await, "thumbd_renders_total"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_video_is_rendered_from_its_new_frames() {
    // The decoded-frame cache keeps the old video's frame for a while; a
    // render stored in the shared cache under the new version must not be
    // made from it.
    let videos = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let video = videos.path().join("v.mp4");
    std::fs::copy(picture_fixtures().join("story.mp4"), &video).unwrap();
    let toml = format!(
        "[cache.shared]\nurl = \"file:{}\"\n[orgs.demo.envs.files]\nsource = \"file:{}/{{key}}\"\n",
        cache.path().display(),
        videos.path().display()
    );
    let t = Thumbd::start(&toml).await;
    let (status, _, body) =
        get(&t.url("/v1/thumbnail/demo/files/v.mp4.png?width=320&timeStamp=2")).await;
    assert_eq!(status, 200);
    assert_eq!(image::load_from_memory(&body).unwrap().height(), 180);
    // Another video under the same name (160x96).
    std::fs::copy(fixtures().join("h264_faststart.mp4"), &video).unwrap();
    let (status, headers, body) =
        get(&t.url("/v1/thumbnail/demo/files/v.mp4.png?width=160&timeStamp=2")).await;
    assert_eq!(
        (status.as_u16(), header(&headers, "x-thumbnail-cache")),
        (200, "miss")
    );
    let picture = image::load_from_memory(&body).unwrap();
    assert_eq!(
        (picture.width(), picture.height()),
        (160, 96),
        "the new video, not the old frame rescaled"
    );
    assert_eq!(read_pattern(&body).frame, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storyboards_and_animations_are_shared_too() {
    let http = SourceServer::start(picture_fixtures()).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[cache.shared]\nurl = \"file:{}\"\n[orgs.demo.envs.http]\nsource = \"http://{}/{{key}}\"\n",
        dir.path().display(),
        http.addr
    );
    let a = Thumbd::start(&toml).await;
    let b = Thumbd::start(&toml).await;
    let sprite = "/v1/storyboard/demo/http/story.mp4.webp?tiles=12&width=100";
    let layout = "/v1/storyboard/demo/http/story.mp4.json?tiles=12&width=100";
    let animation = "/v1/animated/demo/http/story.mp4.gif?start=2&end=4&fps=5&width=120";
    let mut made = Vec::new();
    for path in [sprite, layout, animation] {
        let (status, headers, body) = get(&a.url(path)).await;
        // The JSON describes the sprite just made: a hit.
        let expected = if path == layout { "hit" } else { "miss" };
        assert_eq!(
            (status.as_u16(), header(&headers, "x-thumbnail-cache")),
            (200, expected),
            "{path}"
        );
        made.push((headers, body));
    }
    // The JSON is made from the sprite's entry: two renders, two writes.
    wait_metric(
        &a,
        r#"thumbd_shared_cache_writes_total{outcome="written"}"#,
        2.0,
    )
    .await;
    for (path, (made_headers, made_body)) in [sprite, layout, animation].into_iter().zip(&made) {
        let (status, headers, body) = get(&b.url(path)).await;
        assert_eq!(status, 200, "{path}");
        if path != layout {
            assert_eq!(header(&headers, "x-thumbnail-cache"), "shared", "{path}");
        }
        if path == layout {
            // It names node b's own address; the tiles are the same.
            let tiles = |body: &[u8]| {
                serde_json::from_slice::<serde_json::Value>(body).unwrap()["tiles"].clone()
            };
            assert_eq!(tiles(&body), tiles(made_body), "{path}");
        } else {
            assert_eq!(&body, made_body, "{path}");
        }
        for name in ["x-animation-frames", "content-type"] {
            assert_eq!(
                header(&headers, name),
                header(made_headers, name),
                "{path}: {name}"
            );
        }
    }
    assert_eq!(metric(&b.metrics().await, "thumbd_renders_total"), 0.0);
}

/// An HLS playlist in a bucket (`s3://` template): its renditions and
/// segments are objects beside it, read through the same signed, ranged
/// GETs, with the same picture as over HTTP; a URI out of the template's
/// prefix is refused before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hls_playlist_in_a_bucket_reads_its_segments_from_the_bucket() {
    let (s3, http) = setup().await;
    let package = common::streaming_fixtures().join("hls_fmp4");
    let mut stack = vec![package.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(&package).unwrap().display().to_string();
                s3.put(
                    "videos",
                    &format!("in/hls_fmp4/{name}"),
                    &std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    s3.put(
        "videos",
        "in/bad/master.m3u8",
        b"#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:4,\n../../out/seg.ts\n#EXT-X-ENDLIST\n",
    );
    s3.put("videos", "out/seg.ts", b"not to be read");
    let t = Thumbd::start(&config(&s3, &http, SECRET_KEY, "")).await;
    let query = "png?width=320&timeStamp=9.5";
    let (status, headers, from_s3) = get(&t.url(&format!(
        "/v1/thumbnail/demo/s3/hls_fmp4/master.m3u8.{query}"
    )))
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&from_s3));
    assert_eq!(headers["x-thumbnail-time"], "9.500");
    let (status, _, from_http) = get(&t.url(&format!(
        "/v1/thumbnail/demo/http/streams/hls_fmp4/master.m3u8.{query}"
    )))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        from_s3, from_http,
        "the same picture from the bucket and over HTTP"
    );
    assert_eq!(read_pattern(&from_s3).frame, 228);
    let read: Vec<String> = s3
        .all_traffic()
        .into_iter()
        .filter(|(path, t)| path.starts_with("videos/in/hls_fmp4/") && t.requests > 0)
        .map(|(path, _)| path)
        .collect();
    assert!(
        read.iter()
            .all(|p| !p.contains("/720/") && !p.contains("/360/")),
        "only the 180p rendition: {read:?}"
    );

    let (status, _, body) = get(&t.url("/v1/thumbnail/demo/s3/bad/master.m3u8.webp")).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        problem(&body)["type"],
        "urn:thumbd:problem:playlist-uri-forbidden"
    );
    assert_eq!(s3.traffic("videos/out/seg.ts").requests, 0);
}
