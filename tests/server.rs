//! HTTP behaviour of the real server on a loopback port: caching headers,
//! conditional requests, errors as problem+json, bad sources, source
//! faults, one render for concurrent identical requests, bounded queueing,
//! and how little of a large video a thumbnail costs.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::{fixtures, get, problem, raw_get, read_pattern, SourceServer, Thumbd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_thumbnails_a_cdn_can_cache() {
    let thumbd = Thumbd::start(&common::config(None, "")).await;
    let url = thumbd.url("/v1/thumbnail/demo/files/h264_faststart.mp4.webp?width=80&timeStamp=1.5");
    let (status, headers, body) = get(&url).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/webp");
    assert_eq!(headers["content-length"], body.len().to_string().as_str());
    assert_eq!(
        headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(headers["x-thumbnail-cache"], "miss");
    assert_eq!(headers["x-thumbnail-time"], "1.480");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
        "strong ETag: {etag}"
    );
    let r = read_pattern(&body);
    assert_eq!((r.frame, r.width, r.height), (37, 80, 48));

    let (status, headers, again) = get(&url).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-thumbnail-cache"], "hit");
    assert_eq!(headers["etag"], etag.as_str());
    assert_eq!(again, body);

    // The same thumbnail however the query is written is the same entry.
    let respelled = thumbd.url(
        "/v1/thumbnail/demo/files/h264_faststart.mp4.webp?time=1.500&foo=bar&width=080&quality=80",
    );
    let (_, headers, _) = get(&respelled).await;
    assert_eq!(headers["x-thumbnail-cache"], "hit");

    for (ext, mime, magic) in [
        ("jpg", "image/jpeg", &b"\xff\xd8\xff"[..]),
        ("jpeg", "image/jpeg", b"\xff\xd8\xff"),
        ("png", "image/png", b"\x89PNG"),
    ] {
        let (status, headers, body) = get(&thumbd.url(&format!(
            "/v1/thumbnail/demo/files/h264_faststart.mp4.{ext}?height=48&timeStamp=2"
        )))
        .await;
        assert_eq!(status, 200, "{ext}");
        assert_eq!(headers["content-type"], mime);
        assert!(body.starts_with(magic), "{ext}");
        assert_eq!(read_pattern(&body).frame, 50);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_head_and_methods() {
    let thumbd = Thumbd::start(&common::config(None, "")).await;
    let url = thumbd.url("/v1/thumbnail/demo/files/vp9.webm.jpg?width=64");
    let client = common::client();
    let get_resp = client.get(&url).send().await.unwrap();
    let etag = get_resp.headers()["etag"].clone();
    let length = get_resp.headers()["content-length"].clone();
    assert!(!get_resp.bytes().await.unwrap().is_empty());

    let not_modified = client
        .get(&url)
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["etag"], etag);
    assert!(not_modified.headers().contains_key("cache-control"));
    assert!(not_modified.bytes().await.unwrap().is_empty());
    let other = client
        .get(&url)
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);

    let head = client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["etag"], etag);
    assert_eq!(head.headers()["content-length"], length);
    assert_eq!(head.headers()["content-type"], "image/jpeg");
    assert!(head.bytes().await.unwrap().is_empty());

    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let resp = client.request(method.clone(), &url).send().await.unwrap();
        assert_eq!(resp.status(), 405, "{method}");
        assert_eq!(resp.headers()["allow"], "GET, HEAD");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
    }
    let (status, _, body) = get(&thumbd.url("/healthz")).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"ok\n"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_400_problems_naming_each_field() {
    let thumbd = Thumbd::start(&common::config(None, "")).await;
    let (status, headers, body) = get(&thumbd.url(
        "/v1/thumbnail/demo/files/vp9.webm.webp?width=5000&height=abc&timeStamp=-1&fit=zoom&quality=0",
    ))
    .await;
    assert_eq!(status, 400);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(headers["cache-control"], "public, max-age=60");
    let p = problem(&body);
    assert_eq!(p["status"], 400);
    assert!(p["type"]
        .as_str()
        .unwrap()
        .starts_with("urn:thumbd:problem:"));
    assert!(p["title"].is_string() && p["detail"].is_string());
    let errors = p["errors"].as_array().unwrap();
    let expected: Vec<(String, String)> = [
        ("query.width", "5000"),
        ("query.height", "abc"),
        ("query.timeStamp", "-1"),
        ("query.fit", "zoom"),
        ("query.quality", "0"),
    ]
    .iter()
    .map(|(l, v)| (l.to_string(), v.to_string()))
    .collect();
    assert_eq!(common::error_locations(&p), expected);
    assert_eq!(
        errors[0]["message"],
        "width must be an integer between 1 and 4096"
    );

    for query in [
        "timeStamp=nan",
        "timeStamp=inf",
        "time=1e3",
        "width=0",
        "width=1.5",
    ] {
        let (status, _, _) =
            get(&thumbd.url(&format!("/v1/thumbnail/demo/files/vp9.webm.webp?{query}"))).await;
        assert_eq!(status, 400, "{query}");
    }
    // Keys and formats are refused before anything is fetched, including
    // paths a URL library would normalise away.
    for target in [
        "/v1/thumbnail/demo/files/../secret.mp4.webp",
        "/v1/thumbnail/demo/files/a/./b.mp4.webp",
        "/v1/thumbnail/demo/files/a//b.mp4.webp",
        "/v1/thumbnail/demo/files/a%2Fb.mp4.webp",
        "/v1/thumbnail/demo/files/%2e%2e/secret.webp",
        "/v1/thumbnail/demo/files/a%5Cb.mp4.webp",
        "/v1/thumbnail/demo/files/a%00.mp4.webp",
        "/v1/thumbnail/demo/files/a\\b.mp4.webp",
        "/v1/thumbnail/demo/files/vp9.webm.gif",
        "/v1/thumbnail/demo/files/vp9",
    ] {
        let (status, body) = raw_get(thumbd.addr, target).await;
        assert_eq!(status, 400, "{target}");
        assert_eq!(problem(&body)["status"], 400, "{target}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_things_are_404() {
    let source = SourceServer::start(fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    for path in [
        "/v1/thumbnail/nope/files/vp9.webm.webp",
        "/v1/thumbnail/demo/nope/vp9.webm.webp",
        "/v1/thumbnail/demo/files/missing.mp4.webp",
        "/v1/thumbnail/demo/files/missing/dir.mp4.webp",
        "/v1/thumbnail/demo/http/missing.mp4.webp",
        "/v2/whatever",
    ] {
        let (status, headers, body) = get(&thumbd.url(path)).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(problem(&body)["status"], 404);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sources_get_clear_errors_and_the_server_keeps_serving() {
    let source = SourceServer::start(fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    for env in ["files", "http"] {
        for (file, status, kind) in [
            ("audio_only.m4a", 415, "no-video-stream"),
            ("empty.mp4", 415, "unsupported-media"),
            ("random.mp4", 415, "unsupported-media"),
            ("truncated_index.mp4", 415, "unsupported-media"),
            ("huge.mkv", 422, "frame-too-large"),
        ] {
            let (got, headers, body) =
                get(&thumbd.url(&format!("/v1/thumbnail/demo/{env}/{file}.webp?timeStamp=1")))
                    .await;
            assert_eq!(
                got,
                status,
                "{env}/{file}: {}",
                String::from_utf8_lossy(&body)
            );
            assert_eq!(headers["cache-control"], "public, max-age=60");
            assert_eq!(
                problem(&body)["type"],
                format!("urn:thumbd:problem:{kind}"),
                "{env}/{file}"
            );
        }
        // Half a file: frames that survived are still served; the rest fail cleanly.
        for t in [0.2, 3.5] {
            let (status, _, body) = get(&thumbd.url(&format!(
                "/v1/thumbnail/demo/{env}/truncated_frames.mp4.png?timeStamp={t}"
            )))
            .await;
            assert!(
                [200, 415, 422].contains(&status.as_u16()),
                "truncated at {t}: {status} {}",
                String::from_utf8_lossy(&body)
            );
            if t < 0.3 {
                assert_eq!((status.as_u16(), read_pattern(&body).frame), (200, 5));
            }
        }
    }
    let (status, _, _) = get(&thumbd.url("/v1/thumbnail/demo/files/vp9.webm.webp")).await;
    assert_eq!(status, 200, "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_faults_are_502_or_504_without_leaking_details() {
    let source = SourceServer::start(fixtures()).await;
    let thumbd = Thumbd::start(&common::config(
        Some(&source),
        "[fetch]\nrequest_timeout_secs = 1\n",
    ))
    .await;
    for (fault, status) in [
        ("slow", 504),
        ("reset", 502),
        ("badrange", 502),
        ("short", 502),
        ("error", 502),
        ("norange", 502),
    ] {
        let (got, headers, body) = get(&thumbd.url(&format!(
            "/v1/thumbnail/demo/http/fault/{fault}/vp9.webm.webp"
        )))
        .await;
        assert_eq!(got, status, "{fault}: {}", String::from_utf8_lossy(&body));
        assert_eq!(headers["cache-control"], "no-store", "{fault}");
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains("127.0.0.1") && !text.contains("http://"),
            "{fault} leaks: {text}"
        );
        assert_eq!(problem(&body)["status"], status);
    }
    let (status, _, _) = get(&thumbd.url("/v1/thumbnail/demo/http/vp9.webm.webp")).await;
    assert_eq!(status, 200, "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_requests_render_once() {
    let source = SourceServer::start(fixtures()).await;
    let thumbd = Arc::new(Thumbd::start(&common::config(Some(&source), "")).await);
    let url = thumbd.url("/v1/thumbnail/demo/http/hevc.mkv.webp?width=120&timeStamp=2.5");
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    let mut bodies = Vec::new();
    for r in requests {
        let (status, _, body) = r.await.unwrap();
        assert_eq!(status, 200);
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(read_pattern(&bodies[0]).frame, 62);
    // The file fits in the first range read: one render means one request.
    assert_eq!(source.traffic("hevc.mkv").requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_render_queue_answers_503_with_retry_after() {
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let source = SourceServer::start(&samples).await;
    let extra = "[render]\nconcurrency = 1\nqueue = 1\n[fetch]\ninitial_read_bytes = 65536\n";
    let thumbd = Arc::new(Thumbd::start(&common::config(Some(&source), extra)).await);
    let url = |t: u32| {
        thumbd.url(&format!(
            "/v1/thumbnail/demo/http/fault/hold/demo.mp4.webp?timeStamp={t}"
        ))
    };
    // The first render takes the only slot and waits on the source.
    let first = tokio::spawn(get_owned(url(8)));
    while source.traffic("held:fault/hold/demo.mp4").requests == 0 {
        tokio::task::yield_now().await;
    }
    // Two more renders: one takes the only queue place and waits, the other
    // is refused at once. Which is which depends on arrival order.
    let mut second = tokio::spawn(get_owned(url(1)));
    let mut third = tokio::spawn(get_owned(url(2)));
    let (refused, waiting) = tokio::select! {
        r = &mut second => (r.unwrap(), third),
        r = &mut third => (r.unwrap(), second),
    };
    let (status, headers, body) = refused;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(problem(&body)["type"], "urn:thumbd:problem:busy");
    // Once the source answers, every accepted render completes.
    source.release();
    assert_eq!(first.await.unwrap().0, 200);
    assert_eq!(waiting.await.unwrap().0, 200);
}

async fn get_owned(
    url: String,
) -> (
    reqwest::StatusCode,
    reqwest::header::HeaderMap,
    bytes::Bytes,
) {
    get(&url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thumbnail_of_a_large_video_fetches_little_of_it() {
    common::large_fixture();
    let source = SourceServer::start(fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    for (file, max_requests) in [("large.mp4", 3), ("large_moov_end.mp4", 4)] {
        let size = std::fs::metadata(fixtures().join(file)).unwrap().len();
        assert!(size > 40_000_000);
        // At a keyframe (every 10 s).
        let (status, _, _) = get(&thumbd.url(&format!(
            "/v1/thumbnail/demo/http/{file}.webp?width=320&timeStamp=30"
        )))
        .await;
        assert_eq!(status, 200);
        let t = source.traffic(file);
        // The keyframe is 81 KB and the index 8 KB: exact fetching stays
        // within 1.5 times that.
        assert!(
            t.bytes < 133_000,
            "{file}: fetched {} bytes of {size}",
            t.bytes
        );
        assert!(
            t.requests <= max_requests,
            "{file}: {} requests",
            t.requests
        );
        // Another time in the same video reuses the index: no new request
        // for it, only the packets.
        let (status, _, _) = get(&thumbd.url(&format!(
            "/v1/thumbnail/demo/http/{file}.webp?width=320&timeStamp=50"
        )))
        .await;
        assert_eq!(status, 200);
        let after = source.traffic(file);
        assert!(
            after.requests - t.requests <= 2,
            "{file}: {} more requests",
            after.requests - t.requests
        );
        // Just the keyframe's packet (81 KB): no index, nothing past it.
        assert!(
            after.bytes - t.bytes < 100_000,
            "{file}: {} more bytes",
            after.bytes - t.bytes
        );
        // Mid-GOP (5 s of 1080p after the keyframe at 10 s): the index gives
        // the exact byte range, fetched in one request rather than a run of
        // growing reads.
        let (status, _, _) = get(&thumbd.url(&format!(
            "/v1/thumbnail/demo/http/{file}.webp?width=320&timeStamp=15"
        )))
        .await;
        assert_eq!(status, 200);
        let mid = source.traffic(file);
        assert_eq!(
            mid.requests - after.requests,
            1,
            "{file}: mid-GOP packets in one request"
        );
        // About 5 s at 6 Mbit/s, not the whole 10 s GOP or the file.
        let fetched = mid.bytes - after.bytes;
        assert!(
            (3_000_000..5_500_000).contains(&fetched),
            "{file}: {fetched} bytes for 5 s of video"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_videos_index_arrives_in_one_request() {
    // Ten minutes (the 4 s fixture looped by stream copy): a 146 KB moov,
    // far more than the first 16 KiB read. FFmpeg alone would read it in a
    // run of doubling requests.
    let file = fixtures().join("long_index.mp4");
    if !file.exists() {
        let partial = fixtures().join(".long_index.mp4");
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
            .args(["-stream_loop", "149", "-i"])
            .arg(fixtures().join("h264_faststart.mp4"))
            .args(["-c", "copy", "-movflags", "+faststart", "-f", "mp4"])
            .arg(&partial)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::rename(&partial, &file).unwrap();
    }
    let source = SourceServer::start(fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    let (status, _, body) =
        get(&thumbd.url("/v1/thumbnail/demo/http/long_index.mp4.png?timeStamp=301.5")).await;
    assert_eq!(status, 200);
    // 301.5 s is 1.5 s into the 76th loop: frame 37 of the fixture.
    assert_eq!(read_pattern(&body).frame, 37);
    let t = source.traffic("long_index.mp4");
    // The first read, the rest of the index, the frame's packets.
    assert!(t.requests <= 3, "{} requests", t.requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_in_the_last_gop_of_a_webm_fetches_little_of_it() {
    // 10 s of VP9 with keyframes every 2 s: the last GOP (8-10 s) is a fifth
    // of the file. Past the last cue FFmpeg's own seek parses every cluster
    // to the end of the file before decoding anything; thumbd must not.
    let file = fixtures().join("long_gop.webm");
    if !file.exists() {
        let partial = fixtures().join(".long_gop.webm");
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=s=640x360:r=25:d=10"])
            .args([
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
            ])
            .args([
                "-b:v", "1M", "-g", "50", "-pix_fmt", "yuv420p", "-f", "webm",
            ])
            .arg(&partial)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::rename(&partial, &file).unwrap();
    }
    let size = std::fs::metadata(&file).unwrap().len();
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-skip_frame",
            "nokey",
        ])
        .args(["-show_entries", "packet=pos,flags", "-of", "csv=p=0"])
        .arg(&file)
        .output()
        .unwrap();
    let last_keyframe: u64 = String::from_utf8(probe.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.contains('K'))
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .max()
        .unwrap();
    let last_gop = size - last_keyframe;

    let source = SourceServer::start(fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    let (status, headers, _) =
        get(&thumbd.url("/v1/thumbnail/demo/http/long_gop.webm.webp?width=320&timeStamp=8.04"))
            .await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-thumbnail-time"], "8.040");
    let t = source.traffic("long_gop.webm");
    assert!(
        t.bytes < last_gop / 2,
        "fetched {} bytes; the last GOP is {last_gop}",
        t.bytes
    );
    // Header, cues, the range up to the target (interpolated between the
    // last cue and the end, so possibly one read short).
    assert!(t.requests <= 4, "{} requests", t.requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_over_the_byte_budget_is_413() {
    let thumbd = Thumbd::start(&common::config(None, "[render]\nmax_source_bytes = 2000\n")).await;
    let (status, headers, body) =
        get(&thumbd.url("/v1/thumbnail/demo/files/h264_faststart.mp4.webp?timeStamp=3")).await;
    assert_eq!(status, 413);
    assert_eq!(headers["cache-control"], "public, max-age=60");
    assert_eq!(
        problem(&body)["type"],
        "urn:thumbd:problem:source-too-large"
    );
}

#[test]
fn the_render_command_uses_the_same_pipeline_and_rules() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("thumb.png");
    let run = Command::new(env!("CARGO_BIN_EXE_thumbd"))
        .args(["render"])
        .arg(fixtures().join("rotated.mp4"))
        .args(["--time", "1.5", "--width", "80", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("80x48 png at 1.480s"));
    let r = read_pattern(&std::fs::read(&out).unwrap());
    assert_eq!((r.frame, r.upright), (37, true));
    // Moments named through the video are settled as the server settles
    // them: a share of the 4 s duration, a frame number.
    // A snap to the keyframe before (1 s GOPs).
    for (time, frame, shown) in [
        ("25%", 25, "at 1.000s"),
        ("f37", 37, "at 1.480s"),
        ("1.5 --snap keyframe", 25, "at 1.000s"),
    ] {
        let run = Command::new(env!("CARGO_BIN_EXE_thumbd"))
            .args(["render"])
            .arg(fixtures().join("h264_faststart.mp4"))
            .arg("--time")
            .args(time.split(' '))
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success() && said.contains(shown),
            "{time}: {said}"
        );
        assert_eq!(
            read_pattern(&std::fs::read(&out).unwrap()).frame,
            frame,
            "{time}"
        );
    }

    let bad = Command::new(env!("CARGO_BIN_EXE_thumbd"))
        .args(["render", "x.mp4", "--width", "5000", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr)
        .contains("width must be an integer between 1 and 4096"));

    let config = out_dir.path().join("bad.toml");
    std::fs::write(&config, "[server]\nlisten_on = 1\n").unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_thumbd"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("unknown field `listen_on`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fits_and_a_srcset_of_one_frame() {
    let source = SourceServer::start(fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    let url = |q: &str| {
        thumbd.url(&format!(
            "/v1/thumbnail/demo/http/av1.mp4.png?timeStamp=2.1&{q}"
        ))
    };
    // A srcset: three widths of one frame, from one source read.
    for w in [40, 80, 160] {
        let (status, _, body) = get(&url(&format!("width={w}"))).await;
        assert_eq!(status, 200);
        let r = read_pattern(&body);
        assert_eq!((r.frame, r.width, r.height), (52, w, w * 3 / 5));
    }
    assert_eq!(source.traffic("av1.mp4").requests, 1);
    // Fits of a 5:3 picture into a square box.
    let size = |body: &[u8]| image::load_from_memory(body).unwrap().to_rgb8();
    let (_, _, crop) = get(&url("width=60&height=60")).await;
    assert_eq!(size(&crop).dimensions(), (60, 60));
    let (_, _, contain) = get(&url("width=60&height=60&fit=contain")).await;
    assert_eq!(size(&contain).dimensions(), (60, 36));
    let (_, _, fill) = get(&url("width=60&height=60&fit=fill")).await;
    assert_eq!(size(&fill).dimensions(), (60, 60));
    let (_, _, pad) = get(&url("width=60&height=60&fit=pad")).await;
    let pad = size(&pad);
    assert_eq!(pad.dimensions(), (60, 60));
    assert_eq!(pad.get_pixel(30, 2).0, [0, 0, 0], "letterbox above");
    assert_eq!(pad.get_pixel(30, 57).0, [0, 0, 0], "letterbox below");
    // The bottom-left quarter of the pattern is white: in the middle band.
    assert!(pad.get_pixel(5, 45).0[0] > 200);
    // The same as WebP (made from YUV planes unless letterboxed).
    let (status, _, webp) = get(&thumbd
        .url("/v1/thumbnail/demo/http/av1.mp4.webp?timeStamp=2.1&width=60&height=60&fit=pad"))
    .await;
    assert_eq!(status, 200);
    let webp = size(&webp);
    assert_eq!(webp.dimensions(), (60, 60));
    for (x, y, what) in [(30, 2, "above"), (30, 57, "below")] {
        let p = webp.get_pixel(x, y).0;
        assert!(p.iter().all(|&c| c < 12), "letterbox {what}: {p:?}");
    }
    assert!(webp.get_pixel(5, 45).0[0] > 200);
    // Cropping took a band from the middle: the white bottom-left corner of
    // the pattern stays in view on the left, the black one on the right.
    let crop = size(&crop);
    assert!(crop.get_pixel(3, 56).0[0] > 200 && crop.get_pixel(56, 56).0[0] < 60);
}

/// swscale writes past the end of tight rows; a picture one or two pixels
/// wide once corrupted the heap and aborted the process (WebP's YUV path).
#[tokio::test]
async fn pictures_one_or_two_pixels_wide_render() {
    let t = Thumbd::start(&common::config(None, "")).await;
    for ext in ["webp", "jpg", "png"] {
        for (w, h) in [(1, 180), (2, 40), (2, 1000), (1, 1), (3, 2)] {
            for fit in ["crop", "fill"] {
                let url = t.url(&format!(
                    "/v1/thumbnail/demo/files/vp9.webm.{ext}?width={w}&height={h}&fit={fit}&timeStamp=1"
                ));
                let (status, _, body) = common::get(&url).await;
                assert_eq!(status, 200, "{url}");
                let img = image::load_from_memory(&body).unwrap();
                assert_eq!((img.width(), img.height()), (w, h), "{url}");
            }
        }
    }
    let (status, _, _) = common::get(&t.url("/healthz")).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragmented_video_is_read_through_its_fragments_index() {
    // The 45 MB video fragmented (a moof/mdat pair per 10 s keyframe, a moov
    // without samples). With a segment index (sidx) the demuxer goes
    // straight to the fragment that holds the time: as few requests and
    // bytes as the faststart file. Without one it walks the fragments'
    // headers (six here), a small read each, never their media.
    common::large_fixture();
    let source = SourceServer::start(fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    for (file, max_requests, max_bytes) in [
        ("large_frag_sidx.mp4", 4, 133_000),
        ("large_frag.mp4", 2 + 6, 133_000 + 6 * 20_000),
    ] {
        let (status, headers, _) = get(&thumbd.url(&format!(
            "/v1/thumbnail/demo/http/{file}.webp?width=320&timeStamp=30"
        )))
        .await;
        assert_eq!(status, 200, "{file}");
        assert_eq!(headers["x-thumbnail-time"], "30.000", "{file}");
        let t = source.traffic(file);
        assert!(t.bytes < max_bytes, "{file}: fetched {} bytes", t.bytes);
        assert!(
            t.requests <= max_requests,
            "{file}: {} requests",
            t.requests
        );
        // Mid-GOP: from the keyframe at 30 s to the frame at 35 s, in one
        // range from the fragment's sample table.
        let (status, headers, _) = get(&thumbd.url(&format!(
            "/v1/thumbnail/demo/http/{file}.webp?width=320&timeStamp=35"
        )))
        .await;
        assert_eq!(status, 200, "{file}");
        assert_eq!(headers["x-thumbnail-time"], "35.000", "{file}");
        let mid = source.traffic(file);
        assert!(
            mid.requests - t.requests <= 2,
            "{file}: {} more requests",
            mid.requests - t.requests
        );
        // The faststart file's mid-GOP range is 3.75 MB.
        assert!(
            mid.bytes - t.bytes < 3_900_000,
            "{file}: {} more bytes",
            mid.bytes - t.bytes
        );
    }
}
