//! `GET /v1/info/{org}/{env}/{key}.json` through the real server over a
//! real HTTP source: every member checked against ffprobe's reading of the
//! same file (an independent implementation: FFmpeg's CLI, which decodes
//! where thumbd reads only headers), keyframe spacing against the keyframe
//! flags of every packet ffprobe lists, bit depth against `ffmpeg
//! -pix_fmts`, for many containers and codecs; a long video read only in
//! small part; HLS and DASH sources against their playlists and the
//! renditions they were cut from; access, caching and errors as for
//! pictures.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use common::{
    config, fixtures, get, large_fixture, picture_fixtures, problem, streaming_fixtures,
    SourceServer, Thumbd,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const API_KEY: &str = "info-test-api-key-0123456789";
const HS_SECRET: &str = "an-info-test-secret-that-is-long-enough-0123";

/// ffprobe's streams and format of `file`, as JSON.
fn ffprobe(file: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe {}", file.display());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The times (`pts_time` or `dts_time`) of the packets of the first video
/// stream that ffprobe flags as keyframes, in order.
fn ffprobe_keyframes(file: &Path, time: &str) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            &format!("packet={time},flags"),
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    let mut times: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (pts, flags) = l.split_once(',')?;
            flags.starts_with('K').then(|| pts.parse().ok()).flatten()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

/// How many packets ffprobe reads from the first video stream.
fn packet_count(file: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Bits per sample of each pixel format, from `ffmpeg -pix_fmts`.
fn pixel_depths() -> &'static HashMap<String, u64> {
    static DEPTHS: OnceLock<HashMap<String, u64>> = OnceLock::new();
    DEPTHS.get_or_init(|| {
        let out = Command::new("ffmpeg")
            .args(["-hide_banner", "-pix_fmts"])
            .output()
            .expect("run ffmpeg");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip_while(|l| !l.starts_with("-----"))
            .skip(1)
            .filter_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                let depth = cols.get(4)?.split('-').next()?.parse().ok()?;
                Some((cols.get(1)?.to_string(), depth))
            })
            .collect()
    })
}

fn median_gap(times: &[f64]) -> Option<f64> {
    let mut gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_by(f64::total_cmp);
    let mid = gaps.len() / 2;
    Some(if gaps.len() % 2 == 1 {
        gaps[mid]
    } else {
        (gaps[mid - 1] + gaps[mid]) / 2.0
    })
}

fn ratio(text: &str) -> Option<(f64, f64)> {
    let (n, d) = text.split_once(['/', ':'])?;
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (n > 0.0 && d > 0.0).then_some((n, d))
}

/// The container family as thumbd names it, from ffprobe's demuxer names.
fn family(format_name: &str) -> &str {
    if format_name.starts_with("mov,mp4") {
        "mp4"
    } else if format_name.starts_with("matroska") {
        "matroska"
    } else {
        format_name.split(',').next().unwrap()
    }
}

fn close(a: &Value, b: f64, tolerance: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() <= tolerance)
}

/// How sure each fixture is: which members thumbd must state (the rest
/// may be `null` where only decoding would say, but must match ffprobe
/// when given).
struct Case {
    file: &'static str,
    /// `pixel_format`, `bit_depth`, `frame_rate` and `profile` (where
    /// ffprobe names one) must be stated.
    coding: bool,
    /// The container has an index of keyframes (MP4, Matroska, AVI).
    indexed: bool,
}

const fn case(file: &'static str, coding: bool, indexed: bool) -> Case {
    Case {
        file,
        coding,
        indexed,
    }
}

const CASES: &[Case] = &[
    case("h264_faststart.mp4", true, true),
    case("h264_moov_end.mp4", true, true),
    case("h264.mov", true, true),
    case("h264_offset.ts", true, false),
    case("vp9.webm", true, true),
    case("odd.webm", true, true),
    case("hevc.mkv", true, true),
    case("hevc10.mp4", true, true),
    case("av1.mp4", true, true),
    case("mpeg2.mpg", true, false),
    case("mpeg4_ps.mpg", true, false),
    case("mpeg4.avi", false, true),
    case("divx3.avi", true, true),
    case("cinepak.avi", true, true),
    case("mjpeg.avi", false, true),
    case("prores.mov", false, true),
    case("png.mov", false, true),
    case("theora.ogv", false, false),
    case("wmv2.wmv", false, false),
    case("flv1.flv", true, false),
    case("dv.dv", false, false),
    case("h263.3gp", false, true),
    case("rotated.mp4", true, true),
    case("anamorphic.mp4", true, true),
    case("sar_both.mp4", true, true),
    case("sar_codec.ts", true, false),
    case("hdr_pq.mp4", true, true),
    case("hdr_hlg.mp4", true, true),
    case("colour.mp4", true, true),
    case("colour_full.mp4", true, true),
    case("vfr.mp4", true, true),
    case("frag_late.mp4", true, true),
    case("story.mp4", true, true),
    case("story.webm", true, true),
    case("story.ts", true, false),
    case("story_cuts.mp4", true, true),
    case("story75.webm", true, true),
];

/// Every member of one answer against ffprobe; failures are collected.
fn check_against_ffprobe(case: &Case, info: &Value, failures: &mut Vec<String>) {
    let path = fixtures().join(case.file);
    let probe = ffprobe(&path);
    let streams = probe["streams"].as_array().unwrap();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("a video stream");
    let format = &probe["format"];
    let mut fail = |what: &str, expected: &dyn std::fmt::Debug| {
        failures.push(format!(
            "{}: {what}: thumbd {}, ffprobe {expected:?}",
            case.file, info[what]
        ))
    };

    if info["codec"] != video["codec_name"] {
        fail("codec", &video["codec_name"]);
    }
    let profile = video["profile"].as_str().filter(|p| *p != "unknown");
    match (info.get("profile"), profile) {
        (Some(p), expected) if Some(p.as_str().unwrap()) != expected => fail("profile", &expected),
        (None, Some(expected)) if case.coding => fail("profile", &expected),
        _ => {}
    }
    if info["container"] != family(format["format_name"].as_str().unwrap()) {
        fail("container", &format["format_name"]);
    }
    let (w, h) = (
        video["width"].as_u64().unwrap(),
        video["height"].as_u64().unwrap(),
    );
    if info["coded_width"] != w || info["coded_height"] != h {
        fail("coded_width", &(w, h));
    }
    let sar = video["sample_aspect_ratio"]
        .as_str()
        .and_then(ratio)
        .unwrap_or((1.0, 1.0));
    if info["pixel_aspect"] != format!("{}:{}", sar.0, sar.1) {
        fail("pixel_aspect", &sar);
    }
    // ffprobe's rotation is the display matrix's counter-clockwise angle;
    // thumbd's the clockwise turn a player makes.
    let ccw = video["side_data_list"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|sd| sd["rotation"].as_i64())
        .unwrap_or(0);
    let rotation = (360 - ccw).rem_euclid(360);
    if info["rotation"] != rotation {
        fail("rotation", &ccw);
    }
    let shown_w = (w as f64 * sar.0 / sar.1).round() as u64;
    let (shown_w, shown_h) = if rotation % 180 == 90 {
        (h, shown_w)
    } else {
        (shown_w, h)
    };
    if info["width"] != shown_w || info["height"] != shown_h {
        fail("width", &(shown_w, shown_h));
    }
    let rate = ["avg_frame_rate", "r_frame_rate"]
        .iter()
        .find_map(|k| video[*k].as_str().and_then(ratio))
        .map(|(n, d)| n / d);
    match (&info["frame_rate"], rate) {
        (Value::Null, Some(r)) if case.coding => fail("frame_rate", &r),
        (Value::Null, _) => {}
        (v, Some(r)) if close(v, r, 0.001) => {}
        (_, r) => fail("frame_rate", &r),
    }
    let mut duration = video["duration"]
        .as_str()
        .or(format["duration"].as_str())
        .and_then(|d| d.parse::<f64>().ok());
    if case.file.starts_with("frag_") {
        // FFmpeg's duration of a fragmented MP4 is where its timeline
        // ends (70 s for one starting at 66 s); thumbd counts from the
        // first frame: its length is its packets at its frame rate.
        duration = rate.map(|r| packet_count(&path) as f64 / r);
    }
    match duration {
        Some(d) if close(&info["duration"], d, 0.05) => {}
        d => fail("duration", &d),
    }
    let pix_fmt = video["pix_fmt"].as_str();
    match (&info["pixel_format"], pix_fmt) {
        (Value::Null, _) if !case.coding => {}
        (v, Some(expected)) if v == expected => {}
        (_, expected) => fail("pixel_format", &expected),
    }
    let depth = pix_fmt.and_then(|f| pixel_depths().get(f).copied());
    match (&info["bit_depth"], depth) {
        (Value::Null, _) if !case.coding => {}
        (v, Some(expected)) if v == expected => {}
        (_, expected) => fail("bit_depth", &expected),
    }
    // Colour: what thumbd states must be ffprobe's; what ffprobe reads
    // from the container's tags (the fixtures that set them) thumbd states.
    for (mine, theirs) in [
        ("color_primaries", "color_primaries"),
        ("transfer", "color_transfer"),
        ("matrix", "color_space"),
    ] {
        let expected = video[theirs].as_str().filter(|v| *v != "unknown");
        let tagged = case.file.starts_with("hdr_") || case.file.starts_with("colour");
        match (info.get(mine), expected) {
            (Some(v), Some(e)) if v == e => {}
            (None, None) => {}
            (None, Some(_)) if !tagged => {}
            (_, e) => fail(mine, &e),
        }
    }
    let hdr = match video["color_transfer"].as_str() {
        Some("smpte2084") => json!("pq"),
        Some("arib-std-b67") => json!("hlg"),
        _ => Value::Null,
    };
    if info["hdr"] != hdr {
        fail("hdr", &hdr);
    }
    let audio = streams.iter().any(|s| s["codec_type"] == "audio");
    if info["audio"] != audio {
        fail("audio", &audio);
    }
    if case.indexed {
        // The times the index stores: MP4's sample table and AVI's index
        // decoding times, Matroska's cues presentation times (the same
        // spacing but where B-frames meet a variable frame rate).
        let time = if info["container"] == "matroska" {
            "pts_time"
        } else {
            "dts_time"
        };
        let keys = ffprobe_keyframes(&path, time);
        if info["keyframes"] != keys.len() {
            fail("keyframes", &keys.len());
        }
        match median_gap(&keys) {
            Some(gap) if close(&info["keyframe_interval"], gap, 0.0015) => {}
            None if info["keyframe_interval"].is_null() => {}
            gap => fail("keyframe_interval", &gap),
        }
    } else if !info["keyframes"].is_null() || !info["keyframe_interval"].is_null() {
        fail("keyframes", &"null: no index");
    }
    if !info["auto_time"].is_null() || !info["streaming"].is_null() {
        fail("auto_time", &"null, and streaming null");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_matches_ffprobe() {
    picture_fixtures();
    let source = SourceServer::start(fixtures()).await;
    let thumbd = Thumbd::start(&config(Some(&source), "")).await;
    let mut failures = Vec::new();
    for case in CASES {
        let url = thumbd.url(&format!("/v1/info/demo/http/{}.json", case.file));
        let (status, headers, body) = get(&url).await;
        if status != 200 {
            failures.push(format!(
                "{}: {status} {}",
                case.file,
                String::from_utf8_lossy(&body)
            ));
            continue;
        }
        assert_eq!(headers["content-type"], "application/json");
        let info: Value = serde_json::from_slice(&body).unwrap();
        check_against_ffprobe(case, &info, &mut failures);
    }
    common::assert_no_failures(&failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_video_is_read_only_in_small_part() {
    large_fixture();
    let source = SourceServer::start(fixtures()).await;
    let thumbd = Thumbd::start(&config(Some(&source), "")).await;
    // 60 s of 1080p, ~45 MB, index at the start and at the end.
    for file in ["large.mp4", "large_moov_end.mp4"] {
        let (status, _, body) = get(&thumbd.url(&format!("/v1/info/demo/http/{file}.json"))).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let info: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (info["width"].as_u64(), info["height"].as_u64()),
            (Some(1920), Some(1080))
        );
        assert!(close(&info["duration"], 60.0, 0.05), "{info}");
        let size = std::fs::metadata(fixtures().join(file)).unwrap().len();
        let read = source.traffic(file).bytes;
        // Its header and index, and little else: 16 KiB and 24 KiB (two
        // requests, the index at the end) when this was written.
        assert!(read < 128 * 1024, "{file}: read {read} of {size} bytes");
    }
}

/// `(width, height, bandwidth)` of each `EXT-X-STREAM-INF` of a master
/// playlist, read here from its text.
fn master_renditions(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-STREAM-INF:"))
        .map(|attrs| {
            let attr = |name: &str| {
                attrs
                    .split(',')
                    .find_map(|a| a.strip_prefix(&format!("{name}=")))
                    .map(str::to_owned)
            };
            let (w, h) = attr("RESOLUTION")
                .unwrap()
                .split_once('x')
                .map(|(w, h)| (w.parse::<u64>().unwrap(), h.parse::<u64>().unwrap()))
                .unwrap();
            let bandwidth: u64 = attr("BANDWIDTH").unwrap().parse().unwrap();
            json!({"width": w, "height": h, "bandwidth": bandwidth})
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_sources_from_their_playlists() {
    let streams = streaming_fixtures();
    let source = SourceServer::start(fixtures()).await;
    let thumbd = Thumbd::start(&config(Some(&source), "")).await;
    // The renditions were cut from these with `-c copy`: their streams are
    // the oracle for the stream members.
    let src_720 = ffprobe(&streams.join("src_720.mp4"));
    let src_360 = ffprobe(&streams.join("src_360.mp4"));
    let video_of = |p: &Value| {
        p["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["codec_type"] == "video")
            .unwrap()
            .clone()
    };
    let mut failures = Vec::new();
    for (doc, format, container, oracle, renditions, segment, other) in [
        (
            "hls_ts/master.m3u8",
            "hls",
            "mpegts",
            video_of(&src_720),
            master_renditions(
                &std::fs::read_to_string(streams.join("hls_ts/master.m3u8")).unwrap(),
            ),
            "hls_ts/720/seg_000.ts",
            [
                "hls_ts/720/seg_001.ts",
                "hls_ts/360/seg_000.ts",
                "hls_ts/180/seg_000.ts",
            ],
        ),
        (
            "hls_fmp4/master.m3u8",
            "hls",
            "mp4",
            video_of(&src_720),
            master_renditions(
                &std::fs::read_to_string(streams.join("hls_fmp4/master.m3u8")).unwrap(),
            ),
            "hls_fmp4/720/seg_000.m4s",
            [
                "hls_fmp4/720/seg_001.m4s",
                "hls_fmp4/360/seg_000.m4s",
                "hls_fmp4/180/seg_000.m4s",
            ],
        ),
        (
            "dash_template/manifest.mpd",
            "dash",
            "mp4",
            video_of(&src_360),
            // Representations 0 and 1 of the manifest (see streaming.sh).
            vec![
                json!({"width": 640, "height": 360, "bandwidth": 198402}),
                json!({"width": 320, "height": 180, "bandwidth": 86310}),
            ],
            "dash_template/chunk-stream0-00001.m4s",
            [
                "dash_template/chunk-stream0-00002.m4s",
                "dash_template/chunk-stream1-00001.m4s",
                "dash_template/chunk-stream2-00001.m4s",
            ],
        ),
    ] {
        let url = thumbd.url(&format!("/v1/info/demo/http/streams/{doc}.json"));
        let (status, headers, body) = get(&url).await;
        let text = String::from_utf8_lossy(&body).into_owned();
        if status != 200 {
            failures.push(format!("{doc}: {status} {text}"));
            continue;
        }
        let info: Value = serde_json::from_slice(&body).unwrap();
        let expect = |ok: bool, what: &str, failures: &mut Vec<String>| {
            if !ok {
                failures.push(format!("{doc}: {what}: {info}"));
            }
        };
        expect(
            headers["x-thumbnail-cache"] == "miss",
            "a first call is a miss",
            &mut failures,
        );
        expect(
            close(&info["duration"], 30.0, 0.001),
            "duration 30 s",
            &mut failures,
        );
        let s = &info["streaming"];
        expect(
            s["format"] == format && s["growing"] == false,
            "format",
            &mut failures,
        );
        expect(
            s["renditions"] == json!(renditions),
            "renditions as listed",
            &mut failures,
        );
        expect(
            info["container"] == container,
            "the segments' container",
            &mut failures,
        );
        expect(
            info["width"] == oracle["width"] && info["height"] == oracle["height"],
            "the largest rendition's size",
            &mut failures,
        );
        expect(
            info["codec"] == oracle["codec_name"],
            "codec",
            &mut failures,
        );
        expect(
            info["profile"] == oracle["profile"],
            "profile",
            &mut failures,
        );
        expect(
            info["pixel_format"] == oracle["pix_fmt"],
            "pixel format",
            &mut failures,
        );
        expect(info["bit_depth"] == 8, "bit depth", &mut failures);
        expect(
            info["frame_rate"]
                .as_f64()
                .zip(oracle["avg_frame_rate"].as_str().and_then(ratio))
                .is_some_and(|(r, (n, d))| (r - n / d).abs() < 0.001),
            "frame rate",
            &mut failures,
        );
        expect(
            info["color_primaries"] == oracle["color_primaries"]
                && info["transfer"] == oracle["color_transfer"]
                && info["matrix"] == oracle["color_space"],
            "colour (BT.709 tags)",
            &mut failures,
        );
        expect(
            info["audio"] == true,
            "a sound track (muxed, or its own set)",
            &mut failures,
        );
        // Segment starts are the keyframes a storyboard uses: 4 s segments.
        expect(
            info["keyframes"] == 8 && close(&info["keyframe_interval"], 4.0, 0.001),
            "8 segments of 4 s",
            &mut failures,
        );
        expect(
            source.traffic(&format!("streams/{segment}")).requests > 0,
            "the largest rendition's first segment was read",
            &mut failures,
        );
        for f in other {
            expect(
                source.traffic(&format!("streams/{f}")).requests == 0,
                &format!("{f} was not read"),
                &mut failures,
            );
        }
    }
    // A lone media playlist lists no renditions.
    let (status, _, body) =
        get(&thumbd.url("/v1/info/demo/http/streams/hls_media/index.m3u8.json")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let info: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(info["streaming"]["renditions"], json!([]), "{info}");
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(640), Some(360))
    );
    // An EVENT playlist still being written: no duration or keyframes
    // yet, and no cache keeps the answer for long.
    let mut growing = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:EVENT\n",
    );
    for i in 0..2 {
        growing.push_str(&format!("#EXTINF:4.000000,\nseg_{i:03}.ts\n"));
    }
    std::fs::write(streams.join("hls_ts/180/info_growing.m3u8"), growing).unwrap();
    let (status, headers, body) =
        get(&thumbd.url("/v1/info/demo/http/streams/hls_ts/180/info_growing.m3u8.json")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let info: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(info["streaming"]["growing"], true, "{info}");
    assert!(
        info["duration"].is_null() && info["keyframes"].is_null(),
        "{info}"
    );
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(320), Some(180))
    );
    assert_eq!(headers["cache-control"], "public, max-age=60");
    common::assert_no_failures(&failures);
}

fn token(claims: Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hs".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .unwrap()
}

fn access_config(source: &SourceServer) -> String {
    config(
        Some(source),
        &format!(
            r#"
[orgs.demo]
api_keys = ["{API_KEY}"]
default_env = "http"
[[orgs.demo.signing_keys]]
kid = "hs"
alg = "HS256"
secret = "{HS_SECRET}"
[orgs.demo.envs.private]
source = "http://{}/{{key}}"
access = "signed"
"#,
            source.addr
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_caching_and_errors_as_for_pictures() {
    picture_fixtures();
    let source = SourceServer::start(fixtures()).await;
    let thumbd = Thumbd::start(&access_config(&source)).await;
    let info_url = |env: &str, key: &str| thumbd.url(&format!("/v1/info/demo/{env}/{key}.json"));

    // Cached: the second call is a hit, same bytes, and If-None-Match 304.
    let (status, first_headers, first) = get(&info_url("http", "story.mp4")).await;
    assert_eq!(status, 200);
    assert_eq!(first_headers["x-thumbnail-cache"], "miss");
    assert_eq!(
        first_headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(first_headers["access-control-allow-origin"], "*");
    let requests = source.total_requests();
    let (status, headers, second) = get(&info_url("http", "story.mp4")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-thumbnail-cache"], "hit");
    assert_eq!(first, second);
    assert_eq!(headers["etag"], first_headers["etag"]);
    assert_eq!(source.total_requests(), requests, "a hit reads nothing");
    let resp = common::client()
        .get(info_url("http", "story.mp4"))
        .header("if-none-match", first_headers["etag"].to_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    let head = common::client()
        .head(info_url("http", "story.mp4"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        first.len().to_string().as_str()
    );

    // Errors, problem+json.
    for (url, status, kind) in [
        (info_url("nope", "story.mp4"), 404, "not-found"),
        (info_url("http", "missing.mp4"), 404, "not-found"),
        (info_url("http", "audio_only.m4a"), 415, "no-video-stream"),
        (info_url("http", "random.mp4"), 415, "unsupported-media"),
        (info_url("http", "empty.mp4"), 415, "unsupported-media"),
        (info_url("private", "story.mp4"), 401, "unauthorized"),
        (
            thumbd.url("/v1/info/demo/http/story.mp4.webp"),
            400,
            "invalid-request",
        ),
    ] {
        let (got, headers, body) = get(&url).await;
        assert_eq!(got, status, "{url}: {}", String::from_utf8_lossy(&body));
        assert_eq!(headers["content-type"], "application/problem+json", "{url}");
        assert_eq!(
            problem(&body)["type"],
            format!("urn:thumbd:problem:{kind}"),
            "{url}"
        );
    }

    // A URL library would take the `..` out: sent as it is.
    let (status, body) =
        common::raw_get(thumbd.addr, "/v1/info/demo/http/a/../story.mp4.json").await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert_eq!(problem(&body)["errors"][0]["location"], "path.key");

    // A signed environment: a thumbnail (or storyboard, or info) token for
    // the key opens it, until it expires; one for another key does not.
    let now = thumbd::auth::now_secs();
    for aud in ["thumbnail", "storyboard", "info"] {
        let t = token(json!({"sub": "story.mp4", "aud": aud, "exp": now + 600}));
        let (status, headers, body) =
            get(&format!("{}?token={t}", info_url("private", "story.mp4"))).await;
        assert_eq!(status, 200, "{aud}: {}", String::from_utf8_lossy(&body));
        let max_age: u64 = headers["cache-control"]
            .to_str()
            .unwrap()
            .strip_prefix("public, max-age=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (590..=600).contains(&max_age),
            "kept no longer than the token"
        );
        assert_eq!(body, first, "the same info as the public environment's");
    }
    let other = token(json!({"sub": "story.webm", "aud": "thumbnail", "exp": now + 600}));
    let (status, _, _) = get(&format!(
        "{}?token={other}",
        info_url("private", "story.mp4")
    ))
    .await;
    assert_eq!(status, 403, "a token for another key");
    let expired = token(json!({"sub": "story.mp4", "aud": "thumbnail", "exp": now - 3600}));
    let (status, _, _) = get(&format!(
        "{}?token={expired}",
        info_url("private", "story.mp4")
    ))
    .await;
    assert_eq!(status, 401, "an expired token");
    let bearer = token(json!({"sub": "story.mp4", "aud": "t", "exp": now + 600}));
    let resp = common::client()
        .get(info_url("private", "story.mp4"))
        .header("authorization", format!("Bearer {bearer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "a token in Authorization");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auto_time_once_rendered_and_the_jobs_probe() {
    picture_fixtures();
    let source = SourceServer::start(fixtures()).await;
    let thumbd = Thumbd::start(&access_config(&source)).await;
    let info_url = thumbd.url("/v1/info/demo/http/intro_black.mp4.json");

    // Not computed for the info.
    let (status, _, body) = get(&info_url).await;
    assert_eq!(status, 200);
    let info: Value = serde_json::from_slice(&body).unwrap();
    assert!(info["auto_time"].is_null(), "{info}");
    // Once a render has found it, the info says it.
    let (status, headers, _) =
        get(&thumbd.url("/v1/thumbnail/demo/http/intro_black.mp4.webp?width=64&timeStamp=auto"))
            .await;
    assert_eq!(status, 200);
    let shown: f64 = headers["x-thumbnail-time"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(shown >= 4.0, "a frame after the black intro: {shown}");
    let (status, headers, body) = get(&info_url).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["x-thumbnail-cache"], "hit",
        "the info itself is kept"
    );
    let info: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        close(&info["auto_time"], shown, 0.0005),
        "{info} vs {shown}"
    );

    // The job API's probe reads the same kept info: a job's submission
    // leaves it for /v1/info, and a time past its end is refused by it.
    let submit = |key: &str, ms: u64| {
        let url = thumbd.url(&format!("/v1/api/demo/edge-ids/{key}/thumbnails"));
        async move {
            common::call(
                reqwest::Method::POST,
                &url,
                Some(API_KEY),
                Some(json!({"width": 64, "timestampMs": ms})),
            )
            .await
        }
    };
    let (status, _, body) = submit("story75.mp4", 80_000).await;
    assert_eq!(status, 422, "past the 75 s: {body}");
    let (_, headers, body) = get(&thumbd.url("/v1/info/demo/http/story75.mp4.json")).await;
    assert_eq!(headers["x-thumbnail-cache"], "hit", "probed at submission");
    let info: Value = serde_json::from_slice(&body).unwrap();
    assert!(close(&info["duration"], 75.0, 0.05), "{info}");
    let (status, _, body) = submit("story75.mp4", 74_000).await;
    assert_eq!(status, 202, "{body}");
}
