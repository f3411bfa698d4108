//! `fit=smart` through the real server over a real HTTP source, on videos
//! whose subject sits off centre (tests/fixtures/smartcrop.sh): the centred
//! crop leaves the subject out and the smart crop keeps it, in the YUV
//! (WebP) and RGB (PNG) paths; a centred subject gets the centred crop;
//! consecutive frames of one shot get nearly the same window; `smart` is
//! its own cache entry, needs both sizes like any `fit`, works in job
//! bodies, and is named in the `fit` error message.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use common::{call, fixtures, get, problem, SourceServer, Thumbd};
use image::RgbImage;
use serde_json::json;

/// Makes the smart-crop fixtures in the fixture folder, once; returns it.
fn smart_fixtures() -> &'static Path {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let status = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/smartcrop.sh"
            ))
            .arg(fixtures())
            .status()
            .expect("run tests/fixtures/smartcrop.sh (needs bash and the ffmpeg CLI)");
        assert!(status.success(), "fixture generation failed");
    });
    fixtures()
}

async fn server() -> (SourceServer, Thumbd) {
    let source = SourceServer::start(smart_fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    (source, thumbd)
}

/// A thumbnail of `video` with `query`, decoded; with its cache header.
async fn picture(thumbd: &Thumbd, video: &str, ext: &str, query: &str) -> (RgbImage, String) {
    let url = thumbd.url(&format!("/v1/thumbnail/demo/http/{video}.{ext}?{query}"));
    let (status, headers, body) = get(&url).await;
    assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
    let cache = headers["x-thumbnail-cache"].to_str().unwrap().to_owned();
    let img = image::load_from_memory(&body)
        .expect("a decodable image")
        .to_rgb8();
    (img, cache)
}

/// The share of `img`'s pixels that `is` picks, and their mean x.
fn share(img: &RgbImage, is: impl Fn([u8; 3]) -> bool) -> (f64, f64) {
    let xs: Vec<u32> = img
        .enumerate_pixels()
        .filter(|(_, _, p)| is(p.0))
        .map(|(x, _, _)| x)
        .collect();
    let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len().max(1) as f64;
    let (w, h) = img.dimensions();
    (xs.len() as f64 / (w * h) as f64, mean)
}

/// The checkerboard's red squares (blurred a little by 4:2:0 chroma).
fn red([r, g, b]: [u8; 3]) -> bool {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    r > 150 && r - g > 70 && r - b > 70
}

/// The face's skin.
fn skin([r, g, b]: [u8; 3]) -> bool {
    (190..=250).contains(&r) && (140..=200).contains(&g) && (105..=170).contains(&b)
}

/// Mean absolute difference per channel of two pictures of one size.
fn difference(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y) as u64)
        .sum();
    total as f64 / a.as_raw().len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_crop_keeps_an_object_the_centre_crop_cuts() {
    let (_source, thumbd) = server().await;
    for ext in ["png", "webp"] {
        let q = |fit: &str| format!("width=200&height=200&fit={fit}&timeStamp=1.5");
        let (crop, _) = picture(&thumbd, "smart_object.mp4", ext, &q("crop")).await;
        let (smart, _) = picture(&thumbd, "smart_object.mp4", ext, &q("smart")).await;
        assert_eq!(smart.dimensions(), (200, 200));
        let (cut, _) = share(&crop, red);
        let (kept, at) = share(&smart, red);
        assert!(cut < 0.001, "{ext}: the centred crop shows {cut} red");
        // Half of 80x80 px red, in 360x360: 2.5% (less the squares' edges).
        assert!(kept > 0.015, "{ext}: the smart crop shows {kept} red");
        // The object (x 43-123 of 640) as near the middle as the frame
        // allows: the window against the left edge, x 0-360.
        assert!((35.0..60.0).contains(&at), "{ext}: red at x {at}");
    }
    // That window is the frame's left square, as the ffmpeg CLI crops it.
    let (smart, _) = picture(
        &thumbd,
        "smart_object.mp4",
        "png",
        "width=200&height=200&fit=smart&timeStamp=1.5",
    )
    .await;
    let cli = common::ffmpeg_cli_frame_with(
        &smart_fixtures().join("smart_object.mp4"),
        1.5,
        "crop=360:360:0:0,scale=200:200:flags=bicubic",
    );
    let cli = image::load_from_memory(&cli).unwrap().to_rgb8();
    let d = difference(&smart, &cli);
    assert!(d < 4.0, "{d} from the CLI's left square");

    // A portrait box (a 202.5 px window of 640): the window centres on the
    // object as far as the frame's left edge lets it.
    let (tall, _) = picture(
        &thumbd,
        "smart_object.mp4",
        "png",
        "width=180&height=320&fit=smart&timeStamp=1.5",
    )
    .await;
    let (kept, at) = share(&tall, red);
    assert!(kept > 0.03, "{kept}");
    assert!((60.0..95.0).contains(&at), "red at x {at} of 180");
    let (centred, _) = picture(
        &thumbd,
        "smart_object.mp4",
        "png",
        "width=180&height=320&timeStamp=1.5",
    )
    .await;
    assert!(share(&centred, red).0 < 0.001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_crop_keeps_a_face_the_centre_crop_cuts() {
    let (_source, thumbd) = server().await;
    for ext in ["png", "webp"] {
        let q = |fit: &str| format!("width=200&height=200&fit={fit}&timeStamp=1.5");
        let (crop, _) = picture(&thumbd, "smart_face.mp4", ext, &q("crop")).await;
        let (smart, _) = picture(&thumbd, "smart_face.mp4", ext, &q("smart")).await;
        let (cut, _) = share(&crop, skin);
        let (kept, _) = share(&smart, skin);
        // The whole face is about 0.4 of a 90x120 oval's box in 360x360:
        // 6.5% of the picture; the centred crop keeps a sliver of its edge.
        assert!(cut < 0.005, "{ext}: the centred crop shows {cut} skin");
        assert!(kept > 0.04, "{ext}: the smart crop shows {kept} skin");
    }
    // In a portrait box the window can centre on the face (x 537 of 640).
    let (tall, _) = picture(
        &thumbd,
        "smart_face.mp4",
        "webp",
        "width=180&height=320&fit=smart&timeStamp=1.5",
    )
    .await;
    let (kept, at) = share(&tall, skin);
    assert!(kept > 0.1, "{kept}");
    assert!((80.0..100.0).contains(&at), "the face at x {at} of 180");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_centred_subject_gets_the_centred_crop() {
    let (_source, thumbd) = server().await;
    for (box_, t) in [("width=200&height=200", 1.0), ("width=180&height=320", 2.0)] {
        let q = |fit: &str| format!("{box_}&fit={fit}&timeStamp={t}");
        let (crop, _) = picture(&thumbd, "smart_centred.mp4", "png", &q("crop")).await;
        let (smart, _) = picture(&thumbd, "smart_centred.mp4", "png", &q("smart")).await;
        // The same window, or one a pixel or so from it.
        let d = difference(&crop, &smart);
        assert!(d < 1.5, "{box_}: {d}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_of_one_shot_get_nearly_the_same_window() {
    // Ten consecutive frames (25 fps) of the drifting face, with grain that
    // changes every frame: the face stays where it was in the picture.
    let (_source, thumbd) = server().await;
    let mut places = Vec::new();
    for i in 0..10 {
        let t = 1.0 + i as f64 * 0.04;
        let q = format!("width=180&height=320&fit=smart&timeStamp={t:.2}");
        let (img, cache) = picture(&thumbd, "smart_face.mp4", "png", &q).await;
        assert_ne!(cache, "hit", "{t}: a frame of its own");
        let (kept, at) = share(&img, skin);
        assert!(kept > 0.1, "{t}: {kept}");
        places.push(at);
    }
    let (lo, hi) = places
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    // The face drifts 0.8 px of 640 over these frames: under a pixel of
    // the 180 px picture. Windows within 2 px of each other.
    assert!(hi - lo < 2.0, "the face at {places:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_is_its_own_render_and_needs_both_sizes() {
    let (_source, thumbd) = server().await;
    let at = "timeStamp=0.5";
    let (crop, _) = picture(
        &thumbd,
        "smart_object.mp4",
        "png",
        &format!("width=200&height=200&fit=crop&{at}"),
    )
    .await;
    let (smart, cache) = picture(
        &thumbd,
        "smart_object.mp4",
        "png",
        &format!("width=200&height=200&fit=smart&{at}"),
    )
    .await;
    assert_ne!(cache, "hit", "smart is not crop's cache entry");
    assert!(difference(&crop, &smart) > 5.0);
    // Asked again: its own cache entry.
    let (again, cache) = picture(
        &thumbd,
        "smart_object.mp4",
        "png",
        &format!("fit=smart&{at}&height=200&width=200"),
    )
    .await;
    assert_eq!(cache, "hit");
    assert_eq!(again, smart);

    // With one size, `fit` does not apply (as for every fit): the same
    // picture and cache entry as without it.
    let (plain, _) = picture(
        &thumbd,
        "smart_object.mp4",
        "png",
        &format!("width=200&{at}"),
    )
    .await;
    let (one_side, cache) = picture(
        &thumbd,
        "smart_object.mp4",
        "png",
        &format!("width=200&fit=smart&{at}"),
    )
    .await;
    assert_eq!(cache, "hit");
    assert_eq!(one_side, plain);
    assert_eq!(plain.dimensions(), (200, 113));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_fit_values_name_smart() {
    let (_source, thumbd) = server().await;
    for bad in ["zoom", "SMART", "smartcrop"] {
        let url = thumbd.url(&format!(
            "/v1/thumbnail/demo/http/smart_object.mp4.png?width=200&height=200&fit={bad}"
        ));
        let (status, _, body) = get(&url).await;
        assert_eq!(status, 400, "{bad}");
        let p = problem(&body);
        assert_eq!(p["errors"][0]["location"], "query.fit");
        assert_eq!(
            p["errors"][0]["message"],
            "fit must be crop, smart, contain, fill or pad (or max, scale)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_body_takes_fit_smart() {
    let source = SourceServer::start(smart_fixtures()).await;
    let key = "smart-api-key-0123456789";
    let thumbd = Thumbd::start(&format!(
        "[orgs.a]\napi_keys = [\"{key}\"]\ndefault_env = \"main\"\n\
         [orgs.a.envs.main]\nsource = \"http://{}/{{key}}\"\n",
        source.addr
    ))
    .await;
    let (status, _, submitted) = call(
        reqwest::Method::POST,
        &thumbd.url("/v1/api/a/edge-ids/smart_object.mp4/thumbnails"),
        Some(key),
        Some(json!({"width": 200, "height": 200, "fit": "smart", "timestampMs": 1500})),
    )
    .await;
    assert_eq!(status, 202, "{submitted}");
    let url = submitted["body"]["url"].as_str().unwrap().to_owned();
    assert!(url.contains("fit=smart"), "{url}");
    let id = submitted["body"]["jobId"].as_str().unwrap().to_owned();
    let mut done = json!(null);
    for _ in 0..600 {
        let (_, _, j) = call(
            reqwest::Method::GET,
            &thumbd.url(&format!("/v1/api/a/thumbnails/{id}")),
            Some(key),
            None,
        )
        .await;
        done = j["body"].clone();
        if done["status"] == "completed" || done["status"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(done["status"], "completed", "{done}");
    // The job rendered the smart crop: its URL is a cache hit showing the
    // object.
    let (status, headers, body) = get(&url).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-thumbnail-cache"], "hit");
    let img = image::load_from_memory(&body).unwrap().to_rgb8();
    assert!(share(&img, red).0 > 0.015);
}
