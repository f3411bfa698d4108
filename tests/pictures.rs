//! The multi-frame endpoints through the real server over a real HTTP
//! source: storyboards (the WebVTT parsed, every cue's region checked
//! against the sprite and the frame at its time), the best frame, and
//! animated previews (frame counts, durations, the frames shown).

mod common;

use std::process::Command;

use common::vtt::{parse_vtt, Cue};
use common::{get, picture_fixtures, read_pattern, SourceServer, Thumbd};

/// A WebVTT cue: its time range and what its text points at.
/// The frame number the pattern in `img`'s region shows.
fn frame_in(img: &image::DynamicImage, [x, y, w, h]: [u32; 4]) -> u32 {
    let tile = img.crop_imm(x, y, w, h);
    let mut png = Vec::new();
    tile.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    read_pattern(&png).frame
}

/// Checks one storyboard of a 60 s video: every cue inside the sprite, the
/// cues covering the video in order, each tile showing `expected(start)`.
async fn check_storyboard(
    thumbd: &Thumbd,
    path: &str,
    expected_tiles: usize,
    expected: impl Fn(f64) -> u32,
    failures: &mut Vec<String>,
) {
    let accept = |cue: &Cue, shown: u32| shown == expected(cue.start) % 1024;
    check_cues(thumbd, path, 60.0, Some(expected_tiles), accept, failures).await;
}

/// Checks one storyboard of a `duration` s video: every cue inside the
/// sprite, non-empty, the cues covering the video from 0 to its end without
/// gaps, and `accept(cue, frame its tile shows)` for each.
async fn check_cues(
    thumbd: &Thumbd,
    path: &str,
    duration: f64,
    expected_tiles: Option<usize>,
    accept: impl Fn(&Cue, u32) -> bool,
    failures: &mut Vec<String>,
) {
    let (status, headers, body) = get(&thumbd.url(path)).await;
    if status != 200 {
        failures.push(format!(
            "{path}: {status} {}",
            String::from_utf8_lossy(&body)
        ));
        return;
    }
    assert_eq!(headers["content-type"], "text/vtt; charset=utf-8");
    assert!(headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let cues = parse_vtt(std::str::from_utf8(&body).unwrap());
    if let Some(expected_tiles) = expected_tiles.filter(|&n| n != cues.len()) {
        failures.push(format!(
            "{path}: {} cues, expected {expected_tiles}",
            cues.len()
        ));
    }
    let url = &cues[0].url;
    assert!(cues.iter().all(|c| &c.url == url), "one sprite");
    let (status, headers, sprite) = get(url).await;
    assert_eq!(status, 200, "{url}");
    assert_eq!(headers["content-type"], "image/png");
    let img = image::load_from_memory(&sprite).unwrap();
    let (sw, sh) = (img.width(), img.height());
    let mut previous_end = 0.0;
    for cue in &cues {
        let [x, y, w, h] = cue.xywh;
        if x + w > sw || y + h > sh || w == 0 || h == 0 {
            failures.push(format!("{path}: cue {cue:?} outside the {sw}x{sh} sprite"));
            continue;
        }
        if (cue.start - previous_end).abs() > 1e-3 || cue.end <= cue.start {
            failures.push(format!(
                "{path}: cue {cue:?} does not follow {previous_end}"
            ));
        }
        previous_end = cue.end;
        // (The pattern counts frames modulo 1024.)
        let shown = frame_in(&img, cue.xywh);
        if !accept(cue, shown) {
            failures.push(format!(
                "{path}: the tile at {}-{} s shows frame {shown}",
                cue.start, cue.end
            ));
        }
    }
    if (previous_end - duration).abs() > 1e-3 {
        failures.push(format!(
            "{path}: the cues end at {previous_end}, not at {duration} s"
        ));
    }
}

#[tokio::test]
async fn storyboards_show_the_keyframe_at_each_cue() {
    let source = SourceServer::start(picture_fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    let mut failures = Vec::new();
    // 25 fps, a keyframe every 50 frames (2 s): each tile is the keyframe
    // at or before its cue's start.
    let keyframe = |start: f64| ((start * 25.0).round() as u32) / 50 * 50;
    for file in ["story.mp4", "story.webm", "story.ts"] {
        // By default one tile per keyframe (30), from the index where
        // there is one, else found by seeking (MPEG-TS).
        let path = format!("/v1/storyboard/demo/http/{file}.vtt?format=png");
        check_storyboard(&thumbd, &path, 30, keyframe, &mut failures).await;
        // The sprite the VTT was made from is a hit now, and says so.
        let (_, headers, _) = get(&thumbd.url(&format!(
            "/v1/storyboard/demo/http/{file}.png?width=160&columns=10"
        )))
        .await;
        if headers["server-timing"] != "cache;desc=hit" {
            failures.push(format!(
                "{file}: sprite Server-Timing {:?}",
                headers["server-timing"]
            ));
        }
    }
    // Exact frames, every 5 s, 4 columns.
    let exact = |start: f64| (start * 25.0).round() as u32;
    check_storyboard(
        &thumbd,
        "/v1/storyboard/demo/http/story.mp4.vtt?format=png&exact=1&interval=5&columns=4&width=120",
        12,
        exact,
        &mut failures,
    )
    .await;
    common::assert_no_failures(&failures);
}

#[tokio::test]
async fn storyboard_tiles_start_at_real_keyframes_for_any_duration() {
    // 75 s with 2 s GOPs (the last 1 s), and 47.32 s with keyframes where
    // scene cuts put them and a last GOP of 0.32 s. By default each tile
    // starts where a keyframe is shown, so it shows the frame on screen at
    // its cue's start; cues are contiguous, none empty, to the very end.
    let source = SourceServer::start(picture_fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    let mut failures = Vec::new();
    let at_start = |cue: &Cue, shown: u32| shown == (cue.start * 25.0).round() as u32 % 1024;
    for (file, duration, tiles) in [
        ("story75.mp4", 75.0, 38),
        ("story75.webm", 75.0, 38),
        ("story_cuts.mp4", 47.32, 14),
        // No index: the keyframes found at or before 100 even times; the
        // last (46.88 s) is after the last of them (46.85 s).
        ("story_cuts.ts", 47.32, 13),
    ] {
        let path = format!("/v1/storyboard/demo/http/{file}.vtt?format=png");
        check_cues(
            &thumbd,
            &path,
            duration,
            Some(tiles),
            at_start,
            &mut failures,
        )
        .await;
    }
    // A count closer than the keyframes: a tile whose keyframe is more
    // than a tile before its time shows its exact frame, so every tile
    // shows a frame from within one tile before its cue's start.
    let within_one_tile = |cue: &Cue, shown: u32| {
        let (start, len) = (
            (cue.start * 25.0).round() as u32,
            ((cue.end - cue.start) * 25.0).ceil() as u32,
        );
        shown <= start % 1024 && shown + len >= start % 1024
    };
    for (file, duration) in [("story75.mp4", 75.0), ("story_cuts.ts", 47.32)] {
        let path = format!("/v1/storyboard/demo/http/{file}.vtt?format=png&tiles=100");
        check_cues(
            &thumbd,
            &path,
            duration,
            Some(100),
            within_one_tile,
            &mut failures,
        )
        .await;
    }
    // The JSON says the same, as `application/json` with no parameters.
    let (status, headers, body) =
        get(&thumbd.url("/v1/storyboard/demo/http/story75.mp4.json")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let tiles = doc["tiles"].as_array().unwrap();
    assert_eq!(tiles.len(), 38);
    for (i, t) in tiles.iter().enumerate() {
        assert_eq!(t["start"].as_f64(), Some(i as f64 * 2.0), "{t}");
        assert_eq!(t["time"].as_f64(), t["start"].as_f64(), "{t}");
    }
    assert_eq!(tiles[37]["end"].as_f64(), Some(75.0));
    common::assert_no_failures(&failures);
}

#[tokio::test]
async fn a_storyboard_fetches_only_the_keyframes_it_shows() {
    let source = SourceServer::start(picture_fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    let (status, _, body) = get(&thumbd.url("/v1/storyboard/demo/http/story.mp4.jpg")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // What the tiles need: the 30 keyframes' packets, plus the header and
    // index (faststart: everything before the first video packet).
    let packets = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pos,size,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(picture_fixtures().join("story.mp4"))
        .output()
        .unwrap();
    let text = String::from_utf8(packets.stdout).unwrap();
    let rows: Vec<(u64, u64, bool)> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[1].parse().unwrap(),
                f[0].parse().unwrap(),
                f[2].starts_with('K'),
            )
        })
        .collect();
    let first_packet = rows.iter().map(|r| r.0).min().unwrap();
    let keyframes: u64 = rows.iter().filter(|r| r.2).map(|r| r.1).sum();
    let needed = first_packet + keyframes;
    let fetched = source.traffic("story.mp4");
    assert!(fetched.requests > 0, "the storyboard read the video");
    assert!(
        (fetched.bytes as f64) <= needed as f64 * 1.5,
        "fetched {fetched:?} for {needed} bytes of index and keyframes"
    );
    // Adjacent keyframes are one request; the rest go several at a time,
    // so the count is bounded by the keyframes, not by the file's blocks.
    assert!(fetched.requests <= 32, "{fetched:?}");
}

#[tokio::test]
async fn storyboard_json_and_errors() {
    let source = SourceServer::start(picture_fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    let (status, headers, body) =
        get(&thumbd.url("/v1/storyboard/demo/http/story.mp4.json?tiles=12&width=100")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["tiles"].as_array().unwrap().len(), 12);
    assert_eq!(
        (doc["tile_width"].as_u64(), doc["tile_height"].as_u64()),
        (Some(100), Some(56))
    );
    assert_eq!(doc["duration"].as_f64(), Some(60.0));
    let url = doc["url"].as_str().unwrap();
    assert!(
        url.contains("/v1/storyboard/demo/http/story.mp4.webp?width=100&tiles=12"),
        "{url}"
    );
    let (status, headers, _) = get(url).await;
    assert_eq!(
        (status.as_u16(), &headers["content-type"]),
        (200, &"image/webp".parse::<http::HeaderValue>().unwrap())
    );
    for (path, status, at) in [
        (
            "/v1/storyboard/demo/http/story.mp4.vtt?width=0",
            400,
            "query.width",
        ),
        (
            "/v1/storyboard/demo/http/story.mp4.vtt?tiles=1&interval=2",
            400,
            "query.interval",
        ),
        ("/v1/storyboard/demo/http/story.mp4.gif", 400, "path.format"),
        ("/v1/storyboard/demo/http/missing.mp4.vtt", 404, ""),
        ("/v1/storyboard/demo/nope/story.mp4.vtt", 404, ""),
    ] {
        let (s, headers, body) = get(&thumbd.url(path)).await;
        assert_eq!(
            s.as_u16(),
            status,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{path}"
        );
        if !at.is_empty() {
            let p = common::problem(&body);
            assert_eq!(p["errors"][0]["location"], at, "{path}: {p}");
        }
    }
}

#[tokio::test]
async fn the_best_frame_is_from_the_content() {
    let source = SourceServer::start(picture_fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    let mut failures = Vec::new();
    // The first 4 s are black, a fade in from black, or blurred; a film's
    // opening whose only keyframes (0 and 2.9 s) are dark, the picture
    // fading in from 3.7 s: frames between keyframes are looked at too.
    for (file, fps, after) in [
        ("intro_black.mp4", 25.0, 4.0),
        ("intro_fade.mp4", 25.0, 4.0),
        ("intro_blur.mp4", 25.0, 4.0),
        ("film_opening.ts", 30.0, 5.0),
    ] {
        let url = thumbd.url(&format!(
            "/v1/thumbnail/demo/http/{file}.png?timeStamp=auto"
        ));
        let (status, headers, body) = get(&url).await;
        assert_eq!(status, 200, "{file}: {}", String::from_utf8_lossy(&body));
        let time: f64 = headers["x-thumbnail-time"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let r = read_pattern(&body);
        if time < after || r.frame != (time * fps).round() as u32 || r.white < 180 {
            failures.push(format!(
                "{file}: chose {time} s showing frame {} (white {})",
                r.frame, r.white
            ));
        }
        // The same picture as a player shows at the chosen time.
        let player = common::PlayerFrames::of(&picture_fixtures().join(file), 160, 90);
        // (The header rounds to milliseconds.)
        let shown = player.pattern_frame(player.at(time + 0.0005));
        if shown != r.frame {
            failures.push(format!("{file}: a player shows frame {shown} at {time}"));
        }
        // Deterministic, so cached: the second request is a hit.
        let (_, again, body2) = get(&url).await;
        assert_eq!(again["x-thumbnail-cache"], "hit");
        assert_eq!(body, body2);
    }
    common::assert_no_failures(&failures);
}

/// The frames of an animated WebP or GIF and each one's delay in ms.
fn animation_frames(bytes: &[u8], gif: bool) -> Vec<(image::RgbaImage, u32)> {
    use image::AnimationDecoder;
    let cursor = std::io::Cursor::new(bytes);
    let frames = if gif {
        image::codecs::gif::GifDecoder::new(cursor)
            .unwrap()
            .into_frames()
            .collect_frames()
    } else {
        image::codecs::webp::WebPDecoder::new(cursor)
            .unwrap()
            .into_frames()
            .collect_frames()
    }
    .expect("decodable frames");
    frames
        .into_iter()
        .map(|f| {
            let (n, d) = f.delay().numer_denom_ms();
            (f.into_buffer(), n / d.max(1))
        })
        .collect()
}

/// The pattern read from one decoded frame of an animation.
fn read_frame(img: &image::RgbaImage) -> common::Reading {
    let mut png = Vec::new();
    image::DynamicImage::ImageRgba8(img.clone())
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    read_pattern(&png)
}

#[tokio::test]
async fn animated_previews_show_each_tick() {
    let source = SourceServer::start(picture_fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    let mut failures = Vec::new();
    for ext in ["webp", "gif"] {
        // 2 s at 10 fps from 1 s: 20 frames of 100 ms, frame k showing the
        // video's frame at 1 + k/10 s (25 fps: frame 25 + 2.5k, rounded down).
        let url = thumbd.url(&format!(
            "/v1/animated/demo/http/story.mp4.{ext}?start=1&end=3&fps=10&width=160"
        ));
        let (status, headers, body) = get(&url).await;
        assert_eq!(status, 200, "{ext}: {}", String::from_utf8_lossy(&body));
        assert_eq!(headers["content-type"], format!("image/{ext}").as_str());
        assert_eq!(headers["x-animation-frames"], "20");
        // Where the time went, as for thumbnails: the render on a miss.
        let timing = headers["server-timing"].to_str().unwrap();
        let made: f64 = timing
            .strip_prefix("cache;desc=miss, render;dur=")
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(|| panic!("{ext}: Server-Timing {timing}"));
        assert!(made > 0.0, "{timing}");
        let (_, again, _) = get(&url).await;
        assert_eq!(again["server-timing"], "cache;desc=hit");
        let frames = animation_frames(&body, ext == "gif");
        if frames.len() != 20 {
            failures.push(format!("{ext}: {} frames", frames.len()));
        }
        let total: u32 = frames.iter().map(|f| f.1).sum();
        if total != 2000 {
            failures.push(format!("{ext}: {total} ms in all"));
        }
        for (k, (img, delay)) in frames.iter().enumerate() {
            if *delay != 100 {
                failures.push(format!("{ext}: frame {k} lasts {delay} ms"));
            }
            let r = read_frame(img);
            let want = (25.0 + 2.5 * k as f64).floor() as u32;
            if r.frame != want || (r.width, r.height) != (160, 90) {
                failures.push(format!(
                    "{ext}: frame {k} shows {r:?}, expected frame {want}"
                ));
            }
        }
        let (_, again, _) = get(&url).await;
        assert_eq!(again["x-thumbnail-cache"], "hit");
    }
    for (query, at) in [
        ("start=1&end=20", "query.end"),
        ("fps=31", "query.fps"),
        ("width=641", "query.width"),
    ] {
        let (s, _, body) =
            get(&thumbd.url(&format!("/v1/animated/demo/http/story.mp4.gif?{query}"))).await;
        assert_eq!(s, 400, "{query}");
        assert_eq!(
            common::problem(&body)["errors"][0]["location"],
            at,
            "{query}"
        );
    }
    common::assert_no_failures(&failures);
}

/// Ticks that fall exactly on frame times show those frames, also where a
/// tick is no whole number of microseconds: 15 fps over 30 fps video, from
/// 6.5 s, tick k is frame 195 + 2k (6.5666... s is frame 197, not the
/// frame before it).
#[tokio::test]
async fn animation_ticks_on_frame_times_show_those_frames() {
    let source = SourceServer::start(picture_fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    let mut failures = Vec::new();
    for ext in ["webp", "gif"] {
        let url = thumbd.url(&format!(
            "/v1/animated/demo/http/film_opening.ts.{ext}?start=6.5&end=7.5&fps=15&width=320"
        ));
        let (status, _, body) = get(&url).await;
        assert_eq!(status, 200, "{ext}: {}", String::from_utf8_lossy(&body));
        let frames = animation_frames(&body, ext == "gif");
        if frames.len() != 15 {
            failures.push(format!("{ext}: {} frames", frames.len()));
        }
        for (k, (img, _)) in frames.iter().enumerate() {
            let r = read_frame(img);
            let want = 195 + 2 * k as u32;
            if r.frame != want {
                failures.push(format!(
                    "{ext}: frame {k} shows {r:?}, expected frame {want}"
                ));
            }
        }
    }
    common::assert_no_failures(&failures);
}

/// A variable frame rate with B-frames (tests/fixtures/generate.sh: frames
/// 0-24 every 40 ms, then one every 200 ms from 1 s), where packet
/// durations are decoding-time steps, not the time each frame shows: the
/// frames dropped as shown at no tick must be exactly those.
#[tokio::test]
async fn animation_ticks_on_a_variable_frame_rate() {
    let thumbd = Thumbd::start(&common::config(None, "")).await;
    let mut failures = Vec::new();
    for ext in ["webp", "gif"] {
        let url = thumbd.url(&format!(
            "/v1/animated/demo/files/vfr.mp4.{ext}?start=0&end=3&fps=10&width=160"
        ));
        let (status, _, body) = get(&url).await;
        assert_eq!(status, 200, "{ext}: {}", String::from_utf8_lossy(&body));
        let frames = animation_frames(&body, ext == "gif");
        // Repeated pictures merge into one longer frame: walk by time.
        let mut at_ms = 0;
        for (img, delay) in &frames {
            let want = if at_ms < 1000 {
                at_ms / 40
            } else {
                25 + (at_ms - 1000) / 200
            };
            let r = read_frame(img);
            if r.frame != want {
                failures.push(format!(
                    "{ext}: at {at_ms} ms frame {}, expected {want}",
                    r.frame
                ));
            }
            at_ms += delay;
        }
        if at_ms != 3000 {
            failures.push(format!("{ext}: {at_ms} ms in all"));
        }
    }
    common::assert_no_failures(&failures);
}

#[tokio::test]
async fn auto_follows_accept_with_few_variants() {
    let source = SourceServer::start(picture_fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    let client = common::client();
    let url = thumbd.url("/v1/thumbnail/demo/http/story.mp4.auto?width=160&timeStamp=2");
    for (accept, want) in [
        (
            "image/avif,image/webp,image/apng,image/*,*/*;q=0.8",
            "image/avif",
        ),
        ("image/webp,*/*", "image/webp"),
        ("image/avif;q=0, image/webp", "image/webp"),
        ("image/webp;q=0, image/png", "image/jpeg"),
        ("image/*,*/*;q=0.8", "image/jpeg"),
        ("", "image/jpeg"),
        ("text/html, image/WEBP;q=0.5", "image/webp"),
    ] {
        let mut req = client.get(&url);
        if !accept.is_empty() {
            req = req.header("accept", accept);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{accept}");
        assert_eq!(resp.headers()["content-type"], want, "{accept}");
        assert_eq!(resp.headers()["vary"], "Accept", "{accept}");
        let body = resp.bytes().await.unwrap();
        // (The image crate reads no AVIF: ffmpeg's CLI does.)
        let body = if want == "image/avif" {
            avif_to_png(&body)
        } else {
            body.to_vec()
        };
        assert_eq!(read_pattern(&body).frame, 50, "{accept}");
    }
    // However the Accept headers were written: one render per format.
    let metrics = thumbd.metrics().await;
    assert_eq!(
        common::metric(&metrics, "thumbd_renders_total"),
        3.0,
        "{metrics}"
    );
    // .avif itself.
    let (status, headers, body) =
        get(&thumbd.url("/v1/thumbnail/demo/http/story.mp4.avif?width=160&timeStamp=2")).await;
    assert_eq!(
        (status.as_u16(), &headers["content-type"]),
        (200, &"image/avif".parse::<http::HeaderValue>().unwrap())
    );
    assert_eq!(read_pattern(&avif_to_png(&body)).frame, 50);
    // A fixed format says nothing about Accept.
    let (_, headers, _) = get(&thumbd.url("/v1/thumbnail/demo/http/story.mp4.webp")).await;
    assert!(headers.get("vary").is_none());
}

/// An AVIF decoded by the ffmpeg CLI (FFmpeg 5.1 reads AVIF stills), as PNG.
fn avif_to_png(avif: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("a.avif"), dir.path().join("a.png"));
    std::fs::write(&input, avif).unwrap();
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(&input)
        .arg(&output)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg reads the AVIF");
    std::fs::read(output).unwrap()
}
