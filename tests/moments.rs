//! Moments named the ways people name them: a share of the duration
//! (`25%`), a frame number (`f37`), the best frame near a time (`auto:30`,
//! `near=`), and the keyframe at or before a time (`snap=keyframe`),
//! through the real binary, on the pattern fixtures (each frame spells its
//! number; 4 s at 25 fps, a keyframe every 25 frames, B-frames) and the
//! minute-long storyboard fixture.

mod common;

use std::time::Duration;

use common::{fixtures, get, picture_fixtures, problem, read_pattern, SourceServer, Thumbd};
use serde_json::json;

/// Pattern fixtures a frame number is read from: each container family,
/// with and without B-frames and an index.
const FILES: &[&str] = &[
    "h264_faststart.mp4",
    "h264_moov_end.mp4",
    "h264.mov",
    "h264_offset.ts",
    "vp9.webm",
    "hevc.mkv",
    "hevc10.mp4",
    "av1.mp4",
    "mpeg2.mpg",
    "mpeg4.avi",
    "theora.ogv",
    "flv1.flv",
    "mjpeg.avi",
    "frag_late.mp4",
];

fn shown_time(headers: &reqwest::header::HeaderMap) -> f64 {
    headers["x-thumbnail-time"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_number_shows_that_frame() {
    let source = SourceServer::start(fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    let mut failures = Vec::new();
    for file in FILES {
        // The first frame, a B-frame mid-GOP, a keyframe, the frame before
        // one, the last.
        for n in [0u32, 1, 13, 25, 49, 99] {
            let url = thumbd.url(&format!(
                "/v1/thumbnail/demo/http/{file}.png?timeStamp=f{n}"
            ));
            let (status, headers, body) = get(&url).await;
            if status != 200 {
                failures.push(format!(
                    "{file} f{n}: status {status} {}",
                    String::from_utf8_lossy(&body)
                ));
                continue;
            }
            let r = read_pattern(&body);
            if r.frame != n {
                failures.push(format!("{file} f{n}: showed frame {}", r.frame));
            }
            // (MPEG-PS packets often carry no time; FFmpeg's best-effort
            // times can be a frame off there, as tests/frames.rs allows.)
            let tolerance = if file.ends_with(".mpg") {
                0.045
            } else {
                0.0015
            };
            let shown = shown_time(&headers);
            if (shown - f64::from(n) / 25.0).abs() > tolerance {
                failures.push(format!("{file} f{n}: X-Thumbnail-Time {shown}"));
            }
        }
    }
    common::assert_no_failures(&failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_number_is_the_same_entry_as_its_time() {
    let thumbd = Thumbd::start(&common::config(None, "")).await;
    let url = |q: &str| {
        thumbd.url(&format!(
            "/v1/thumbnail/demo/files/h264_faststart.mp4.png?{q}"
        ))
    };
    let (status, headers, first) = get(&url("timeStamp=f37")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-thumbnail-cache"], "miss");
    // Frame 37 starts at 1.48 s: the same picture, the same entry.
    let (_, headers, again) = get(&url("timeStamp=1.48")).await;
    assert_eq!(headers["x-thumbnail-cache"], "hit");
    assert_eq!(first, again);
    // 1.49 s shows frame 37 too, but is another moment: its own entry.
    let (_, headers, body) = get(&url("timeStamp=1.49")).await;
    assert_eq!(headers["x-thumbnail-cache"], "miss");
    assert_eq!(read_pattern(&body).frame, 37);

    // Past the last frame: a problem naming how many there are.
    let (status, _, body) = get(&url("timeStamp=f100")).await;
    assert_eq!(status, 422, "{}", String::from_utf8_lossy(&body));
    let p = problem(&body);
    assert_eq!(p["type"], "urn:thumbd:problem:past-end");
    assert_eq!(p["frames"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_of_the_duration() {
    let thumbd = Thumbd::start(&common::config(None, "")).await;
    let url = |file: &str, q: &str| thumbd.url(&format!("/v1/thumbnail/demo/files/{file}.png?{q}"));
    let mut failures = Vec::new();
    // 4 s: 25% is 1 s (frame 25), 50% 2 s (frame 50), 0% the first frame,
    // 100% the end (the last frame), 33.3% 1.332 s (frame 33).
    for file in ["h264_faststart.mp4", "vp9.webm", "h264_offset.ts"] {
        for (share, frame) in [
            ("0%", 0),
            ("25%", 25),
            ("50%", 50),
            ("33.3%", 33),
            ("100%", 99),
        ] {
            let (status, _, body) = get(&url(file, &format!("timeStamp={share}"))).await;
            let got = (status == 200).then(|| read_pattern(&body).frame);
            if got != Some(frame) {
                failures.push(format!(
                    "{file} {share}: expected frame {frame}, got {status} {got:?}"
                ));
            }
        }
    }
    common::assert_no_failures(&failures);
    // The same moment named in seconds is the same entry.
    let (_, headers, _) = get(&url("h264_faststart.mp4", "timeStamp=25%")).await;
    assert_eq!(headers["x-thumbnail-cache"], "hit");
    let (_, headers, _) = get(&url("h264_faststart.mp4", "timeStamp=1")).await;
    assert_eq!(headers["x-thumbnail-cache"], "hit", "1 s is 25% of 4 s");
    // Escaped, as a browser writes it.
    let (status, headers, _) = get(&url("h264_faststart.mp4", "timeStamp=50%25")).await;
    assert_eq!(status, 200);
    assert_eq!(shown_time(&headers), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snap_shows_the_keyframe_at_or_before_the_time() {
    let source = SourceServer::start(fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    let mut failures = Vec::new();
    // Keyframes every 25 frames (1 s); x264 adds one at frame 96.
    for file in [
        "h264_faststart.mp4",
        "h264_offset.ts",
        "vp9.webm",
        "hevc.mkv",
        "mpeg4.avi",
    ] {
        let last_key: u32 = if file.starts_with("h264") { 96 } else { 75 };
        for (q, frame, secs) in [
            (
                "timeStamp=f99&snap=keyframe",
                last_key,
                f64::from(last_key) / 25.0,
            ),
            ("timeStamp=1.9&snap=keyframe", 25, 1.0),
            ("timeStamp=2&snap=keyframe", 50, 2.0),
            ("timeStamp=0.5&snap=keyframe", 0, 0.0),
            ("timeStamp=f95&snap=keyframe", 75, 3.0),
            ("timeStamp=60%25&snap=keyframe", 50, 2.0),
            // No time: the keyframe at or before the middle (2 s).
            ("snap=keyframe", 50, 2.0),
            // Explicitly exact: the frame at the time.
            ("timeStamp=1.9&snap=exact", 47, 1.88),
        ] {
            let url = thumbd.url(&format!("/v1/thumbnail/demo/http/{file}.png?{q}"));
            let (status, headers, body) = get(&url).await;
            if status != 200 {
                failures.push(format!("{file} {q}: status {status}"));
                continue;
            }
            let r = read_pattern(&body);
            let shown = shown_time(&headers);
            if r.frame != frame || (shown - secs).abs() > 0.0015 {
                failures.push(format!(
                    "{file} {q}: expected frame {frame} at {secs}, got {} at {shown}",
                    r.frame
                ));
            }
        }
    }
    common::assert_no_failures(&failures);
    // Its own entry: the snapped picture never answers an exact request.
    let url = |q: &str| {
        thumbd.url(&format!(
            "/v1/thumbnail/demo/http/h264_faststart.mp4.png?{q}"
        ))
    };
    let (_, _, body) = get(&url("timeStamp=1.7&snap=keyframe")).await;
    assert_eq!(read_pattern(&body).frame, 25);
    let (_, headers, body) = get(&url("timeStamp=1.7")).await;
    assert_eq!(headers["x-thumbnail-cache"], "miss");
    assert_eq!(read_pattern(&body).frame, 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_near_a_time_stays_near_it() {
    let dir = picture_fixtures();
    let thumbd = Thumbd::start(&common::config(None, "")).await;
    let url = |q: &str| thumbd.url(&format!("/v1/thumbnail/demo/files/story.mp4.png?{q}"));
    let _ = dir;
    for center in [5.0, 30.0, 58.0] {
        let (status, headers, body) = get(&url(&format!("timeStamp=auto:{center}"))).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let shown = shown_time(&headers);
        assert!(
            (shown - center).abs() <= 5.0 + 0.001,
            "auto:{center} showed {shown}"
        );
        // `near=` says the same, and is the same entry.
        let (status, headers, again) = get(&url(&format!("timeStamp=auto&near={center}"))).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-thumbnail-cache"], "hit");
        assert_eq!(body, again);
    }
    // Near the end of the video: within its last seconds.
    let (status, headers, _) = get(&url("timeStamp=auto:1000")).await;
    assert_eq!(status, 200);
    assert!(shown_time(&headers) >= 55.0, "{}", shown_time(&headers));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_moments_are_named() {
    let thumbd = Thumbd::start(&common::config(None, "")).await;
    let url = |q: &str| {
        thumbd.url(&format!(
            "/v1/thumbnail/demo/files/h264_faststart.mp4.png?{q}"
        ))
    };
    for (q, location) in [
        ("timeStamp=101%25", "query.timeStamp"),
        ("timeStamp=f-1", "query.timeStamp"),
        ("timeStamp=auto:x", "query.timeStamp"),
        ("timeStamp=auto&snap=keyframe", "query.snap"),
        ("timeStamp=auto:3&snap=keyframe", "query.snap"),
        ("timeStamp=3&near=2", "query.near"),
        ("near=2", "query.near"),
        ("timeStamp=auto:3&near=2", "query.near"),
        ("snap=nearest", "query.snap"),
    ] {
        let (status, _, body) = get(&url(q)).await;
        assert_eq!(status, 400, "{q}");
        let locations: Vec<_> = common::error_locations(&problem(&body))
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(locations, [location], "{q}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_take_the_same_moments() {
    let source = SourceServer::start(fixtures()).await;
    let key = "moments-api-key-0123456789";
    let thumbd = Thumbd::start(&common::config(
        Some(&source),
        &format!("[orgs.demo]\napi_keys = [\"{key}\"]\ndefault_env = \"http\"\n"),
    ))
    .await;
    let submit = |body: serde_json::Value| {
        let url = thumbd.url("/v1/api/demo/edge-ids/h264_faststart.mp4/thumbnails");
        async move { common::call(reqwest::Method::POST, &url, Some(key), Some(body)).await }
    };
    for (body, frame) in [
        (
            json!({"width": 160, "timeStamp": "25%", "format": "png"}),
            25,
        ),
        (
            json!({"width": 160, "timeStamp": "f37", "format": "png"}),
            37,
        ),
        (
            json!({"width": 160, "timeStamp": 1.9, "snap": "keyframe", "format": "png"}),
            25,
        ),
    ] {
        let (status, _, submitted) = submit(body.clone()).await;
        assert_eq!(status, 202, "{submitted}");
        let id = submitted["body"]["jobId"].as_str().unwrap().to_owned();
        let url = submitted["body"]["url"].as_str().unwrap().to_owned();
        let mut done = serde_json::Value::Null;
        for _ in 0..300 {
            let (_, _, job) = common::call(
                reqwest::Method::GET,
                &thumbd.url(&format!("/v1/api/demo/thumbnails/{id}")),
                Some(key),
                None,
            )
            .await;
            if job["body"]["status"] == "completed" || job["body"]["status"] == "failed" {
                done = job["body"].clone();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(done["status"], "completed", "{body}: {done}");
        // The URL the job names is what it rendered: a hit, the frame asked.
        let (status, headers, png) = get(&url).await;
        assert_eq!(status, 200, "{url}");
        assert_eq!(headers["x-thumbnail-cache"], "hit", "{url}");
        assert_eq!(read_pattern(&png).frame, frame, "{url}");
    }
    // A frame past the end fails the job with the renderer's problem.
    let (status, _, body) = submit(json!({"width": 160, "timeStamp": "f500"})).await;
    assert_eq!(status, 202, "{body}");
    let (status, _, body) =
        submit(json!({"width": 160, "timeStamp": "2", "timestampMs": 2000})).await;
    assert_eq!(status, 400, "{body}");
}
