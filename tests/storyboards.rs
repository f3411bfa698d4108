//! Long storyboards over several sprite sheets, and `tiles=scenes`,
//! through the real server over a real HTTP source: the WebVTT and JSON
//! read as a player and a page read them, every sheet they point at
//! fetched, and every tile checked against the frame its cue says (the
//! frame-number pattern, or the ffmpeg CLI's decode at the cue's start);
//! the sheets' bounds, the tile limit, signed URLs, and streaming sources.

mod common;

use std::path::Path;

use common::vtt::{parse_vtt, Cue};
use common::{
    fixtures, get, picture_fixtures, problem, read_pattern, streaming_fixtures, SourceServer,
    Thumbd,
};

use serde_json::{json, Value};

fn png_of(img: &image::DynamicImage) -> Vec<u8> {
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

/// The frame number the pattern in `img`'s region shows.
fn frame_in(img: &image::DynamicImage, [x, y, w, h]: [u32; 4]) -> u32 {
    read_pattern(&png_of(&img.crop_imm(x, y, w, h))).frame
}

/// Fetches a storyboard description (or fails the test with its answer).
async fn fetch(thumbd: &Thumbd, path: &str) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let (status, headers, body) = get(&thumbd.url(path)).await;
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    (headers, body.to_vec())
}

/// Every sheet a description points at, fetched once, by URL.
async fn sheets(urls: impl IntoIterator<Item = String>) -> Vec<(String, image::DynamicImage)> {
    let mut out: Vec<(String, image::DynamicImage)> = Vec::new();
    for url in urls {
        if out.iter().any(|(u, _)| *u == url) {
            continue;
        }
        let (status, headers, body) = get(&url).await;
        assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
        assert_eq!(headers["content-type"], "image/png", "{url}");
        out.push((url, image::load_from_memory(&body).unwrap()));
    }
    out
}

/// Checks that `cues` cover 0 to `duration` in order without gaps, none
/// empty, each inside its sheet.
fn check_coverage(
    what: &str,
    cues: &[Cue],
    duration: f64,
    sheets: &[(String, image::DynamicImage)],
    failures: &mut Vec<String>,
) {
    let mut previous_end = 0.0;
    for cue in cues {
        if (cue.start - previous_end).abs() > 1e-3 || cue.end <= cue.start {
            failures.push(format!(
                "{what}: cue {cue:?} does not follow {previous_end}"
            ));
        }
        previous_end = cue.end;
        let Some((_, img)) = sheets.iter().find(|(u, _)| *u == cue.url) else {
            failures.push(format!("{what}: cue {cue:?} names no sheet fetched"));
            continue;
        };
        let [x, y, w, h] = cue.xywh;
        if x + w > img.width() || y + h > img.height() || w == 0 || h == 0 {
            failures.push(format!(
                "{what}: cue {cue:?} outside its {}x{} sheet",
                img.width(),
                img.height()
            ));
        }
    }
    if (previous_end - duration).abs() > 1e-3 {
        failures.push(format!(
            "{what}: the cues end at {previous_end}, not at {duration} s"
        ));
    }
}

/// The frame of the 25 fps pattern on screen at `secs`.
fn frame_at(secs: f64) -> u32 {
    (secs * 25.0 + 1e-6).floor() as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_storyboards_span_sprite_sheets() {
    let source = SourceServer::start(picture_fixtures()).await;
    let config = common::config(Some(&source), "[pictures]\nstoryboard_max_tiles = 300\n");
    let thumbd = Thumbd::start(&config).await;
    let mut failures = Vec::new();
    // 200 s with 1 s GOPs, 250 tiles of 0.8 s: sheets of 100, 100 and 50
    // (10 columns, 10 rows), each tile the keyframe at or before its time
    // when that is within a tile, else the exact frame.
    let query = "tiles=250&format=png&width=160";
    let (headers, body) = fetch(
        &thumbd,
        &format!("/v1/storyboard/demo/http/story_long.mp4.json?{query}"),
    )
    .await;
    assert_eq!(headers["content-type"], "application/json");
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let tiles = doc["tiles"].as_array().unwrap();
    let sheet_list = doc["sheets"].as_array().unwrap();
    assert_eq!(
        (tiles.len(), sheet_list.len(), &doc["columns"], &doc["rows"]),
        (250, 3, &json!(10), &json!(10)),
        "{doc}"
    );
    assert_eq!(doc["url"], sheet_list[0]["url"]);
    let base =
        thumbd.url("/v1/storyboard/demo/http/story_long.mp4.png?width=160&tiles=250&columns=10");
    for (n, s) in sheet_list.iter().enumerate() {
        let want = if n == 0 {
            base.clone()
        } else {
            format!("{base}&sheet={n}")
        };
        assert_eq!(s["url"], want.as_str(), "sheet {n}");
    }
    let fetched = sheets(
        sheet_list
            .iter()
            .map(|s| s["url"].as_str().unwrap().to_owned()),
    )
    .await;
    for (n, (_, img)) in fetched.iter().enumerate() {
        let size = (
            sheet_list[n]["width"].as_u64(),
            sheet_list[n]["height"].as_u64(),
        );
        let want: (u32, u32) = if n < 2 { (1600, 900) } else { (1600, 450) };
        if size != (Some(want.0 as u64), Some(want.1 as u64)) || (img.width(), img.height()) != want
        {
            failures.push(format!(
                "sheet {n}: {}x{} (JSON {size:?}), expected {want:?}",
                img.width(),
                img.height()
            ));
        }
    }
    for (i, t) in tiles.iter().enumerate() {
        let (start, end, time) = (
            t["start"].as_f64().unwrap(),
            t["end"].as_f64().unwrap(),
            t["time"].as_f64(),
        );
        let sheet = t["sheet"].as_u64().unwrap() as usize;
        let on = i % 100;
        let xywh = [
            t["x"].as_u64().unwrap() as u32,
            t["y"].as_u64().unwrap() as u32,
            160,
            90,
        ];
        if sheet != i / 100 || xywh[0] != (on % 10) as u32 * 160 || xywh[1] != (on / 10) as u32 * 90
        {
            failures.push(format!("tile {i} placed at {t}"));
            continue;
        }
        if (start - i as f64 * 0.8).abs() > 1e-6 || (end - (start + 0.8).min(200.0)).abs() > 1e-6 {
            failures.push(format!("tile {i} covers {start}-{end}"));
        }
        // The frame the JSON says, within a tile before the start.
        let Some(time) = time.filter(|&x| x <= start + 1e-6 && start - x <= 0.8 + 1e-6) else {
            failures.push(format!("tile {i} at {start} s says time {:?}", t["time"]));
            continue;
        };
        let shown = frame_in(&fetched[sheet].1, xywh);
        if shown != frame_at(time) % 1024 {
            failures.push(format!(
                "tile {i} ({start} s, sheet {sheet}) shows frame {shown}, not {} (time {time})",
                frame_at(time) % 1024
            ));
        }
    }
    // The VTT says the same: each cue names its tile's sheet.
    let (headers, body) = fetch(
        &thumbd,
        &format!("/v1/storyboard/demo/http/story_long.mp4.vtt?{query}"),
    )
    .await;
    assert_eq!(headers["content-type"], "text/vtt; charset=utf-8");
    let cues = parse_vtt(std::str::from_utf8(&body).unwrap());
    assert_eq!(cues.len(), 250);
    for (cue, t) in cues.iter().zip(tiles) {
        let url = &sheet_list[t["sheet"].as_u64().unwrap() as usize]["url"];
        if cue.url != url.as_str().unwrap()
            || (cue.start - t["start"].as_f64().unwrap()).abs() > 1e-3
        {
            failures.push(format!("cue {cue:?} against tile {t}"));
        }
    }
    check_coverage("tiles=250", &cues, 200.0, &fetched, &mut failures);
    // A later sheet made once: the second fetch is a hit.
    let (_, again, _) = get(&format!("{base}&sheet=2")).await;
    assert_eq!(again["x-thumbnail-cache"], "hit");

    // interval=1: a tile at each keyframe, 200 over two sheets, each
    // showing the frame on screen at its cue's start (what the ffmpeg
    // CLI decodes there: the pattern's frame number).
    let (_, body) = fetch(
        &thumbd,
        "/v1/storyboard/demo/http/story_long.mp4.vtt?interval=1&format=png",
    )
    .await;
    let cues = parse_vtt(std::str::from_utf8(&body).unwrap());
    let fetched = sheets(cues.iter().map(|c| c.url.clone())).await;
    if cues.len() != 200 || fetched.len() != 2 {
        failures.push(format!(
            "interval=1: {} cues over {} sheets",
            cues.len(),
            fetched.len()
        ));
    }
    check_coverage("interval=1", &cues, 200.0, &fetched, &mut failures);
    for cue in &cues {
        let img = &fetched.iter().find(|(u, _)| *u == cue.url).unwrap().1;
        let shown = frame_in(img, cue.xywh);
        if shown != frame_at(cue.start) % 1024 {
            failures.push(format!(
                "interval=1: the tile at {} s shows frame {shown}",
                cue.start
            ));
        }
    }

    // The default stays one sprite of at most 100 tiles, as single-sheet
    // players expect.
    let (_, body) = fetch(&thumbd, "/v1/storyboard/demo/http/story_long.mp4.json").await;
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (
            doc["tiles"].as_array().unwrap().len(),
            doc["sheets"].as_array().unwrap().len()
        ),
        (100, 1),
        "{doc}"
    );

    // Past the last sheet: 404; sheet= on a description, or a bad count:
    // 400; more tiles than storyboard_max_tiles: 422, at query.tiles.
    for (path, status, kind, at) in [
        ("story_long.mp4.png?tiles=250&sheet=3", 404, "not-found", ""),
        ("story_long.mp4.webp?sheet=1", 404, "not-found", ""),
        (
            "story_long.mp4.vtt?tiles=250&sheet=1",
            400,
            "invalid-request",
            "query.sheet",
        ),
        (
            "story_long.mp4.vtt?tiles=0",
            400,
            "invalid-request",
            "query.tiles",
        ),
        (
            "story_long.mp4.vtt?tiles=301",
            422,
            "too-many-tiles",
            "query.tiles",
        ),
        (
            "story_long.mp4.png?tiles=301&sheet=1",
            422,
            "too-many-tiles",
            "query.tiles",
        ),
    ] {
        let (s, headers, body) =
            get(&thumbd.url(&format!("/v1/storyboard/demo/http/{path}"))).await;
        let p = problem(&body);
        if s.as_u16() != status
            || headers["content-type"] != "application/problem+json"
            || p["type"] != format!("urn:thumbd:problem:{kind}").as_str()
            || (!at.is_empty() && p["errors"][0]["location"] != at)
        {
            failures.push(format!("{path}: {s} {p}"));
        }
    }
    common::assert_no_failures(&failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sheets_stay_within_storyboard_max_pixels() {
    // Room for 30 tiles of 160x90 a sheet: 50 tiles take a sheet of three
    // full rows and one of two, each tile still the frame its cue says.
    let source = SourceServer::start(picture_fixtures()).await;
    let config = common::config(
        Some(&source),
        "[pictures]\nstoryboard_max_pixels = 432000\n",
    );
    let thumbd = Thumbd::start(&config).await;
    let mut failures = Vec::new();
    let (_, body) = fetch(
        &thumbd,
        "/v1/storyboard/demo/http/story.mp4.vtt?tiles=50&format=png&exact=1",
    )
    .await;
    let cues = parse_vtt(std::str::from_utf8(&body).unwrap());
    let fetched = sheets(cues.iter().map(|c| c.url.clone())).await;
    let sizes: Vec<(u32, u32)> = fetched
        .iter()
        .map(|(_, i)| (i.width(), i.height()))
        .collect();
    assert_eq!(sizes, [(1600, 270), (1600, 180)], "{cues:?}");
    check_coverage("tiles=50", &cues, 60.0, &fetched, &mut failures);
    for cue in &cues {
        let img = &fetched.iter().find(|(u, _)| *u == cue.url).unwrap().1;
        let shown = frame_in(img, cue.xywh);
        if shown != frame_at(cue.start) % 1024 {
            failures.push(format!("the tile at {} s shows frame {shown}", cue.start));
        }
    }
    common::assert_no_failures(&failures);
}

/// Mean absolute difference per channel (0-255) between a tile and the
/// ffmpeg CLI's frame of `file` at `secs`, scaled to the tile's size.
fn distance_to_cli(file: &Path, secs: f64, tile: &image::DynamicImage) -> f64 {
    let cli = image::load_from_memory(&common::ffmpeg_cli_frame(file, secs)).unwrap();
    let cli = cli
        .resize_exact(
            tile.width(),
            tile.height(),
            image::imageops::FilterType::Triangle,
        )
        .to_rgb8();
    let tile = tile.to_rgb8();
    let sum: f64 = cli
        .as_raw()
        .iter()
        .zip(tile.as_raw())
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .sum();
    sum / cli.as_raw().len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scene_tiles_start_at_the_cuts() {
    let source = SourceServer::start(picture_fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    let mut failures = Vec::new();
    // Six scenes cut at 4.2, 9.6, 13, 21.4 and 26 s, with keyframes every
    // 2 s between: one tile per scene from its first keyframe (a cut's own
    // keyframe: the cut to the frame), the same found by seeking in
    // MPEG-TS, which has no index.
    let cuts = [0.0, 4.2, 9.6, 13.0, 21.4, 26.0];
    for file in ["scenes.mp4", "scenes.ts"] {
        let (_, body) = fetch(
            &thumbd,
            &format!("/v1/storyboard/demo/http/{file}.json?tiles=scenes&format=png"),
        )
        .await;
        let doc: Value = serde_json::from_slice(&body).unwrap();
        let tiles = doc["tiles"].as_array().unwrap();
        let starts: Vec<f64> = tiles.iter().map(|t| t["start"].as_f64().unwrap()).collect();
        if starts.len() != cuts.len() || starts.iter().zip(cuts).any(|(s, c)| (s - c).abs() > 0.041)
        {
            failures.push(format!("{file}: scenes start at {starts:?}, not {cuts:?}"));
            continue;
        }
        for (t, c) in tiles.iter().zip(cuts) {
            let time = t["time"].as_f64().unwrap_or(-1.0);
            if (time - c).abs() > 0.041 {
                failures.push(format!("{file}: the scene at {c} s shows {time}"));
            }
        }
        assert_eq!(tiles.last().unwrap()["end"].as_f64(), Some(30.0));
        // Each tile is the picture a player shows at its cue's start.
        let (_, body) = fetch(
            &thumbd,
            &format!("/v1/storyboard/demo/http/{file}.vtt?tiles=scenes&format=png"),
        )
        .await;
        let cues = parse_vtt(std::str::from_utf8(&body).unwrap());
        let fetched = sheets(cues.iter().map(|c| c.url.clone())).await;
        check_coverage(file, &cues, 30.0, &fetched, &mut failures);
        for cue in &cues {
            let [x, y, w, h] = cue.xywh;
            let tile = fetched[0].1.crop_imm(x, y, w, h);
            let d = distance_to_cli(&picture_fixtures().join(file), cue.start + 0.001, &tile);
            // (Another scene is 60 or more away.)
            if d > 12.0 {
                failures.push(format!(
                    "{file}: the tile at {} s is {d:.1} from the CLI's frame",
                    cue.start
                ));
            }
        }
    }
    // One shot (a box crossing a flat colour): one tile, 0 to the end.
    let (_, body) = fetch(
        &thumbd,
        "/v1/storyboard/demo/http/one_shot.mp4.vtt?tiles=scenes",
    )
    .await;
    let cues = parse_vtt(std::str::from_utf8(&body).unwrap());
    if cues.len() != 1 || cues[0].start != 0.0 || (cues[0].end - 12.0).abs() > 1e-3 {
        failures.push(format!("one_shot.mp4: {cues:?}"));
    }
    common::assert_no_failures(&failures);
}

const HS_SECRET: &str = "a-storyboard-test-secret-long-enough-0123456789";

/// An HS256 storyboard token for `key` of `acme/private`.
fn storyboard_token(key: &str) -> String {
    let header = jsonwebtoken::Header {
        kid: Some("hs".into()),
        ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
    };
    let claims = json!({
        "sub": key, "aud": "storyboard", "org": "acme", "env": "private",
        "exp": thumbd::auth::now_secs() + 600,
    });
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_storyboards_sign_every_sheet() {
    let source = SourceServer::start(picture_fixtures()).await;
    let config = format!(
        "[[orgs.acme.signing_keys]]\nkid = \"hs\"\nalg = \"HS256\"\nsecret = \"{HS_SECRET}\"\n\
         [orgs.acme.envs.private]\nsource = \"http://{}/{{key}}\"\naccess = \"signed\"\n",
        source.addr
    );
    let thumbd = Thumbd::start(&config).await;
    let token = storyboard_token("story.mp4");
    let path = "/v1/storyboard/acme/private/story.mp4.vtt?tiles=150&width=64&format=png";
    let (status, _, _) = get(&thumbd.url(path)).await;
    assert_eq!(status, 401, "no token");
    let (_, body) = fetch(&thumbd, &format!("{path}&token={token}")).await;
    let cues = parse_vtt(std::str::from_utf8(&body).unwrap());
    assert_eq!(cues.len(), 150);
    // Two sheets, each URL carrying the token; each opens with it only.
    let urls: Vec<&String> = cues.iter().map(|c| &c.url).fold(Vec::new(), |mut v, u| {
        if !v.contains(&u) {
            v.push(u);
        }
        v
    });
    assert_eq!(urls.len(), 2, "{urls:?}");
    assert!(urls[1].contains("&sheet=1&token="), "{}", urls[1]);
    for url in urls {
        let (status, headers, body) = get(url).await;
        assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
        assert_eq!(headers["content-type"], "image/png");
        let bare = url.split("&token=").next().unwrap();
        let (status, _, _) = get(bare).await;
        assert_eq!(status, 401, "{bare}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_storyboards_span_sheets_and_refuse_scenes() {
    // HLS of 30 s at 24 fps in 4 s segments (a segment start is a
    // keyframe), with the frame-number pattern below its top quarter.
    streaming_fixtures();
    let source = SourceServer::start(fixtures()).await;
    let config = format!(
        "[orgs.demo.envs.streams]\nsource = \"http://{}/streams/{{key}}\"\n",
        source.addr
    );
    let thumbd = Thumbd::start(&config).await;
    let mut failures = Vec::new();
    let (_, body) = fetch(
        &thumbd,
        "/v1/storyboard/demo/streams/hls_ts/master.m3u8.json?tiles=150&format=png",
    )
    .await;
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let tiles = doc["tiles"].as_array().unwrap();
    let sheet_list = doc["sheets"].as_array().unwrap();
    assert_eq!((tiles.len(), sheet_list.len()), (150, 2), "{doc}");
    let fetched = sheets(
        sheet_list
            .iter()
            .map(|s| s["url"].as_str().unwrap().to_owned()),
    )
    .await;
    for (i, t) in tiles.iter().enumerate() {
        let start = t["start"].as_f64().unwrap();
        let time = t["time"].as_f64().unwrap_or(-1.0);
        let xywh = [
            t["x"].as_u64().unwrap() as u32,
            t["y"].as_u64().unwrap() as u32,
            doc["tile_width"].as_u64().unwrap() as u32,
            doc["tile_height"].as_u64().unwrap() as u32,
        ];
        let img = &fetched[t["sheet"].as_u64().unwrap() as usize].1;
        let shown = frame_in(img, xywh);
        let want = ((time * 24.0 + 1e-6).floor() as u32).min(719);
        // A segment's first frame within a tile (0.2 s) before the
        // start, or the exact frame at it.
        if time > start + 1e-6 || start - time > 0.2 + 1e-6 || shown != want {
            failures.push(format!(
                "tile {i} at {start} s (time {time}) shows frame {shown}"
            ));
        }
    }
    let (status, _, body) =
        get(&thumbd.url("/v1/storyboard/demo/streams/hls_ts/master.m3u8.vtt?tiles=scenes")).await;
    let p = problem(&body);
    if status != 415 || p["type"] != "urn:thumbd:problem:unsupported-stream" {
        failures.push(format!("scenes of a stream: {status} {p}"));
    }
    common::assert_no_failures(&failures);
}
