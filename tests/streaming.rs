//! HLS playlists and DASH manifests as sources, through the real binary
//! over a real HTTP source: the frame shown at a time is the frame the
//! rendition's source file shows then (pattern and pixels against the
//! ffmpeg CLI), the rendition read follows the size asked for, a thumbnail
//! reads the playlists, the init segment and one segment, storyboards and
//! `timeStamp=auto` use segment starts, the duration comes from the
//! playlist, and hostile documents are refused before anything outside
//! the environment's prefix is requested.
//!
//! The fixtures (tests/fixtures/streaming.sh, under `streams/` of the
//! fixture folder): 30 s at 24 fps (frames 0-719, each spelling its number
//! in the pattern `read_pattern` reads), keyframes every 2 s, 4 s segments
//! (segment k starts at 4k s with frame 96k; the last is 2 s), cut with
//! `-c copy` from `src_720.mp4`, `src_360.mp4` and `src_180.mp4`.
//!
//! The environments: `local` is `http://{source}/streams/{key}` over the
//! fixture folder (so the prefix is `/streams/` and `../../secret/` from
//! `streams/hostile/` escapes it), `named` is
//! `http://{source}/streams/{key}/master.m3u8` (the key names a folder),
//! `root` is `http://{source}/{key}` over `streams/` itself.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::vtt::parse_vtt;
use common::{fixtures, free_port, get, read_pattern, streaming_fixtures, Proc, SourceServer};

use serde_json::{json, Value};

const FPS: f64 = 24.0;
/// Frames 0-719.
const LAST_FRAME: u32 = 719;
const DURATION: f64 = 30.0;
/// Seconds between segment starts (the last segment is 2 s).
const SEGMENT: f64 = 4.0;
const SEGMENTS: usize = 8;
/// X-Thumbnail-Time against the shown frame's start (timestamps are exact
/// in 90 kHz and 1/12288 s; well under a frame, 0.042 s).
const TIME_TOLERANCE: f64 = 0.01;
/// PNG against the CLI's conversion of the same decoded frame (as
/// tests/frames.rs demands of colour.mp4).
const MIN_PSNR: f64 = 40.0;
const API_KEY: &str = "streaming-api-key-0123456789";

/// (requested time, why). The frame shown is `frame_at(time)`.
const TIMES: &[(f64, &str)] = &[
    (0.0, "the first frame"),
    (
        9.5,
        "inside the third segment, between its keyframes (8 and 10 s)",
    ),
    (
        11.99,
        "the last frame of the third segment (B-frames reordered at its end)",
    ),
    (12.0, "exactly at the start of the fourth segment"),
    (27.3, "inside the seventh segment"),
    (29.99, "inside the last (2 s) segment"),
    (100.0, "past the end: the last frame"),
];

/// Some of [`TIMES`], for the 1280x720 rendition (whose pictures take
/// longest to encode, decode and compare).
const FEW: &[(f64, &str)] = &[
    (9.5, "inside the third segment"),
    (12.0, "exactly at the start of the fourth segment"),
    (100.0, "past the end: the last frame"),
];

/// The frame a player shows at `secs`.
fn frame_at(secs: f64) -> u32 {
    ((secs * FPS + 1e-6).floor() as u32).min(LAST_FRAME)
}

/// A rendition's size by its name (the height).
fn size_of(rendition: u32) -> (u32, u32) {
    match rendition {
        720 => (1280, 720),
        360 => (640, 360),
        180 => (320, 180),
        other => panic!("no rendition {other}"),
    }
}

/// thumbd, the real binary, with a config of its own.
struct Server {
    _proc: Proc,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    /// `thumbd serve` with `toml` after a `[server]` section.
    async fn start(toml: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let path = dir.path().join("thumbd.toml");
        std::fs::write(
            &path,
            format!("[server]\npublic_base_url = \"http://127.0.0.1:{port}\"\n{toml}"),
        )
        .unwrap();
        let proc = Proc::thumbd(Some(&path), port, &[], dir.path().join("thumbd.log")).await;
        Server {
            _proc: proc,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{path_and_query}", self.port)
    }
}

/// An environment of org `demo` reading `template` (with `{key}`, after
/// `http://{source}/`).
fn env(name: &str, source: &SourceServer, template: &str) -> String {
    format!(
        "[orgs.demo.envs.{name}]\nsource = \"http://{}/{template}\"\n",
        source.addr
    )
}

/// `local` over the fixture folder, as most tests use it.
fn local(source: &SourceServer) -> String {
    env("local", source, "streams/{key}")
}

/// Every file under `streams/{dir}`, as the source server over the fixture
/// folder records its path (`streams/...`).
fn files_under(dir: &str) -> Vec<String> {
    fn walk(path: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(path).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&streaming_fixtures().join(dir), &mut out);
    let root = fixtures();
    let mut names: Vec<String> = out
        .iter()
        .map(|p| p.strip_prefix(root).unwrap().to_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// The files under `streams/{dir}` the source was asked for.
fn requested_under(source: &SourceServer, dir: &str) -> BTreeSet<String> {
    files_under(dir)
        .into_iter()
        .filter(|f| source.traffic(f).requests > 0)
        .collect()
}

/// The CLI's decode of `frame` from `src_{rendition}.mp4` as RGB, converted
/// as tagged (BT.709). `-ss` halfway between frames: the CLI outputs the
/// first frame at or after it. Cached: several packages share renditions.
fn oracle(rendition: u32, frame: u32) -> image::RgbImage {
    static CACHE: OnceLock<Mutex<HashMap<(u32, u32), image::RgbImage>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(img) = cache.lock().unwrap().get(&(rendition, frame)) {
        return img.clone();
    }
    let src = streaming_fixtures().join(format!("src_{rendition}.mp4"));
    let secs = if frame == 0 {
        0.0
    } else {
        (frame as f64 - 0.5) / FPS
    };
    let png = common::ffmpeg_cli_frame_with(
        &src,
        secs,
        "scale=in_color_matrix=bt709:flags=bicubic+accurate_rnd+full_chroma_int",
    );
    assert_eq!(
        read_pattern(&png).frame,
        frame,
        "the oracle: {src:?} at {secs} s"
    );
    let img = image::load_from_memory(&png).unwrap().to_rgb8();
    cache
        .lock()
        .unwrap()
        .insert((rendition, frame), img.clone());
    img
}

fn psnr(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let mse: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / a.as_raw().len() as f64;
    10.0 * (255.0f64.powi(2) / mse.max(1e-9)).log10()
}

/// The mean colour of each 8x8 block: robust to how a picture was scaled.
fn block_colours(img: &image::RgbImage) -> image::RgbImage {
    const N: u32 = 8;
    image::RgbImage::from_fn(img.width() / N, img.height() / N, |bx, by| {
        let mut sum = [0u32; 3];
        for y in by * N..(by + 1) * N {
            for x in bx * N..(bx + 1) * N {
                let p = img.get_pixel(x, y).0;
                (0..3).for_each(|c| sum[c] += p[c] as u32);
            }
        }
        image::Rgb(sum.map(|v| ((v + N * N / 2) / (N * N)) as u8))
    })
}

fn thumbnail_time(headers: &reqwest::header::HeaderMap) -> Option<f64> {
    headers.get("x-thumbnail-time")?.to_str().ok()?.parse().ok()
}

/// Renders `path` (a PNG thumbnail, `?` and query included) and checks it
/// is frame `frame_at(time)` of `rendition` at `size`: the pattern, the
/// picture against the CLI's decode of the rendition's source (only when
/// `size` is the rendition's own), and X-Thumbnail-Time.
async fn check_frame(
    server: &Server,
    path: &str,
    rendition: u32,
    time: f64,
    size: (u32, u32),
    failures: &mut Vec<String>,
) {
    let expected = frame_at(time);
    let (status, headers, body) = get(&server.url(path)).await;
    if status != 200 {
        failures.push(format!(
            "{path}: status {status} {}",
            String::from_utf8_lossy(&body)
        ));
        return;
    }
    let r = read_pattern(&body);
    if r.frame != expected || !r.upright || (r.width, r.height) != size {
        failures.push(format!(
            "{path}: expected frame {expected} upright at {size:?}, got {r:?}"
        ));
        return;
    }
    match thumbnail_time(&headers) {
        Some(shown) if (shown - expected as f64 / FPS).abs() <= TIME_TOLERANCE => {}
        shown => failures.push(format!(
            "{path}: X-Thumbnail-Time {shown:?}, frame {expected} starts at {:.4}",
            expected as f64 / FPS
        )),
    }
    if size == size_of(rendition) {
        let ours = image::load_from_memory(&body).unwrap().to_rgb8();
        let p = psnr(&ours, &oracle(rendition, expected));
        if p < MIN_PSNR {
            failures.push(format!(
                "{path}: PSNR {p:.1} dB against frame {expected} of src_{rendition}.mp4"
            ));
        }
    }
}

/// Every time of [`TIMES`] on `/v1/thumbnail/demo/{env}/{key}.png`, with
/// `query` added: the frame of `rendition` at its own size.
async fn check_times(
    server: &Server,
    env: &str,
    key: &str,
    query: &str,
    rendition: u32,
    times: &[(f64, &str)],
    failures: &mut Vec<String>,
) {
    for &(time, why) in times {
        let path = format!("/v1/thumbnail/demo/{env}/{key}.png?timeStamp={time}{query}");
        let before = failures.len();
        check_frame(server, &path, rendition, time, size_of(rendition), failures).await;
        for f in &mut failures[before..] {
            f.push_str(&format!(" ({why})"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_mpeg_ts_shows_the_frame_of_its_source() {
    let source = SourceServer::start(fixtures()).await;
    streaming_fixtures();
    let server = Server::start(&format!(
        "{}{}",
        local(&source),
        env("named", &source, "streams/{key}/master.m3u8")
    ))
    .await;
    let mut failures = Vec::new();
    // No size: the largest rendition.
    check_times(
        &server,
        "local",
        "hls_ts/master.m3u8",
        "",
        720,
        FEW,
        &mut failures,
    )
    .await;
    // 320 wide: the 320x180 rendition, at its own size.
    check_times(
        &server,
        "local",
        "hls_ts/master.m3u8",
        "&width=320",
        180,
        TIMES,
        &mut failures,
    )
    .await;
    // A media playlist named directly.
    check_times(
        &server,
        "local",
        "hls_ts/360/index.m3u8",
        "",
        360,
        TIMES,
        &mut failures,
    )
    .await;
    // The template names the playlist; the key is a folder.
    check_frame(
        &server,
        "/v1/thumbnail/demo/named/hls_ts.png?timeStamp=9.5",
        720,
        9.5,
        (1280, 720),
        &mut failures,
    )
    .await;
    // Scaled down from the chosen rendition (640x360 covers 400 wide).
    check_frame(
        &server,
        "/v1/thumbnail/demo/local/hls_ts/master.m3u8.png?timeStamp=12&width=400",
        360,
        12.0,
        (400, 225),
        &mut failures,
    )
    .await;
    // Other formats of the same frame.
    for ext in ["webp", "jpg"] {
        let path = format!(
            "/v1/thumbnail/demo/local/hls_ts/master.m3u8.{ext}?timeStamp=9.5&width=320&quality=95"
        );
        let (status, headers, body) = get(&server.url(&path)).await;
        let shown = (status == 200).then(|| read_pattern(&body).frame);
        if shown != Some(228) || thumbnail_time(&headers).is_none() {
            failures.push(format!("{path}: status {status}, frame {shown:?}"));
        }
    }
    common::assert_no_failures(&failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_fmp4_shows_the_frame_of_its_source() {
    let source = SourceServer::start(fixtures()).await;
    streaming_fixtures();
    let server = Server::start(&format!(
        "{}{}",
        local(&source),
        env("named", &source, "streams/{key}/master.m3u8")
    ))
    .await;
    let mut failures = Vec::new();
    check_times(
        &server,
        "local",
        "hls_fmp4/master.m3u8",
        "",
        720,
        FEW,
        &mut failures,
    )
    .await;
    check_times(
        &server,
        "local",
        "hls_fmp4/master.m3u8",
        "&height=360",
        360,
        TIMES,
        &mut failures,
    )
    .await;
    check_frame(
        &server,
        "/v1/thumbnail/demo/named/hls_fmp4.png?timeStamp=27.3&width=320",
        180,
        27.3,
        (320, 180),
        &mut failures,
    )
    .await;
    common::assert_no_failures(&failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_byte_ranges_show_the_frame_and_read_one_range() {
    let source = SourceServer::start(fixtures()).await;
    streaming_fixtures();
    let server = Server::start(&local(&source)).await;
    let mut failures = Vec::new();
    check_times(
        &server,
        "local",
        "hls_byterange/master.m3u8",
        "",
        360,
        TIMES,
        &mut failures,
    )
    .await;
    common::assert_no_failures(&failures);

    // A fresh source: one thumbnail inside the third segment reads that
    // segment's byte range of all.ts, not the file.
    let source = SourceServer::start(fixtures()).await;
    let server = Server::start(&local(&source)).await;
    let path = "/v1/thumbnail/demo/local/hls_byterange/master.m3u8.png?timeStamp=9.5";
    let (status, _, body) = get(&server.url(path)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(read_pattern(&body).frame, 228);
    let playlist =
        std::fs::read_to_string(streaming_fixtures().join("hls_byterange/360/index.m3u8")).unwrap();
    let ranges: Vec<(u64, u64)> = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-BYTERANGE:"))
        .map(|r| {
            let (len, at) = r.split_once('@').expect("LEN@OFFSET");
            (len.parse().unwrap(), at.parse().unwrap())
        })
        .collect();
    assert_eq!(ranges.len(), SEGMENTS, "{playlist}");
    let whole = std::fs::metadata(streaming_fixtures().join("hls_byterange/360/all.ts"))
        .unwrap()
        .len();
    let read = source.traffic("streams/hls_byterange/360/all.ts");
    let (segment, _) = ranges[2];
    assert!(
        read.requests >= 1 && read.bytes <= segment + 32 * 1024 && read.bytes < whole / 3,
        "read {read:?} of all.ts ({whole} bytes) for a segment of {segment} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_playlist_alone_shows_the_frame_of_its_source() {
    // The template as most setups write it: the key is the whole path.
    let source = SourceServer::start(streaming_fixtures()).await;
    let server = Server::start(&env("root", &source, "{key}")).await;
    let mut failures = Vec::new();
    check_times(
        &server,
        "root",
        "hls_media/index.m3u8",
        "",
        360,
        TIMES,
        &mut failures,
    )
    .await;
    check_frame(
        &server,
        "/v1/thumbnail/demo/root/hls_media/index.m3u8.png?timeStamp=12&width=320",
        360,
        12.0,
        (320, 180),
        &mut failures,
    )
    .await;
    common::assert_no_failures(&failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_segment_templates_show_the_frame_of_their_source() {
    let source = SourceServer::start(fixtures()).await;
    streaming_fixtures();
    let server = Server::start(&local(&source)).await;
    let mut failures = Vec::new();
    // $Number$ with a fixed duration, and $Time$ with a SegmentTimeline:
    // the largest representation (640x360) without a size, the other
    // (320x180) for 320 wide.
    for key in ["dash_template/manifest.mpd", "dash_timeline/manifest.mpd"] {
        check_times(&server, "local", key, "", 360, TIMES, &mut failures).await;
        check_times(
            &server,
            "local",
            key,
            "&width=320",
            180,
            TIMES,
            &mut failures,
        )
        .await;
    }
    common::assert_no_failures(&failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_segment_base_shows_the_frame_and_reads_one_subsegment() {
    let source = SourceServer::start(fixtures()).await;
    streaming_fixtures();
    let server = Server::start(&local(&source)).await;
    let mut failures = Vec::new();
    check_times(
        &server,
        "local",
        "dash_base/manifest.mpd",
        "",
        360,
        TIMES,
        &mut failures,
    )
    .await;
    check_times(
        &server,
        "local",
        "dash_base/manifest.mpd",
        "&width=320",
        180,
        TIMES,
        &mut failures,
    )
    .await;
    common::assert_no_failures(&failures);

    // A fresh source: the init and index ranges, then the one subsegment
    // (a 2 s GOP) holding 9.5 s; never the 180p file nor the audio.
    let source = SourceServer::start(fixtures()).await;
    let server = Server::start(&local(&source)).await;
    let path = "/v1/thumbnail/demo/local/dash_base/manifest.mpd.png?timeStamp=9.5";
    let (status, _, body) = get(&server.url(path)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(read_pattern(&body).frame, 228);
    let file = streaming_fixtures().join("dash_base/360.mp4");
    let (index_end, subsegments) = sidx_subsegments(&std::fs::read(&file).unwrap());
    assert_eq!(subsegments.len(), 15, "a subsegment per 2 s GOP");
    let whole = std::fs::metadata(&file).unwrap().len();
    let read = source.traffic("streams/dash_base/360.mp4");
    let needed = index_end + subsegments[4];
    assert!(
        read.requests >= 1 && read.bytes <= needed + 32 * 1024 && read.bytes < whole / 3,
        "read {read:?} of 360.mp4 ({whole} bytes) for {needed} bytes of init, index and subsegment"
    );
    assert_eq!(
        requested_under(&source, "dash_base"),
        BTreeSet::from([
            "streams/dash_base/manifest.mpd".to_owned(),
            "streams/dash_base/360.mp4".to_owned()
        ])
    );
}

/// Where a fragmented MP4's top-level `sidx` ends, and the sizes of the
/// subsegments it lists.
fn sidx_subsegments(data: &[u8]) -> (u64, Vec<u64>) {
    let be32 = |at: usize| u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as u64;
    let mut off = 0usize;
    while off + 8 <= data.len() {
        let size = be32(off) as usize;
        if &data[off + 4..off + 8] == b"sidx" {
            let version = data[off + 8];
            // version/flags, reference_ID, timescale, then the times.
            let mut p = off + 8 + 12 + if version == 0 { 8 } else { 16 };
            let count = u16::from_be_bytes([data[p + 2], data[p + 3]]) as usize;
            p += 4;
            let sizes = (0..count).map(|i| be32(p + i * 12) & 0x7fff_ffff).collect();
            return ((off + size) as u64, sizes);
        }
        assert!(size >= 8, "a box of {size} bytes at {off}");
        off += size;
    }
    panic!("no sidx");
}

/// A render whose size picks a rendition: what it reads and what it must not.
struct Choice {
    key: &'static str,
    query: &'static str,
    read: &'static str,
    unread: [&'static str; 2],
    size: (u32, u32),
}

impl Choice {
    fn new(
        key: &'static str,
        query: &'static str,
        read: &'static str,
        unread: [&'static str; 2],
        size: (u32, u32),
    ) -> Choice {
        Choice {
            key,
            query,
            read,
            unread,
            size,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendition_read_follows_the_size_asked_for() {
    streaming_fixtures();
    // The master lists 640x360, 1280x720, 320x180 in that order; the
    // choice is the smallest whose RESOLUTION covers the size asked for,
    // else the largest. The master says each variant's size, so no other
    // rendition's playlist is fetched either. `read`: the rendition's
    // folder or file prefix; `unread`: the others'.
    const TS: [&str; 3] = ["hls_ts/720/", "hls_ts/360/", "hls_ts/180/"];
    const DASH: [&str; 3] = [
        "dash_template/chunk-stream0-",
        "dash_template/chunk-stream1-",
        "dash_template/chunk-stream2-",
    ];
    const BASE: [&str; 3] = [
        "dash_base/360.mp4",
        "dash_base/180.mp4",
        "dash_base/audio.mp4",
    ];
    let hls = "hls_ts/master.m3u8";
    let template = "dash_template/manifest.mpd";
    let base = "dash_base/manifest.mpd";
    let cases = [
        Choice::new(hls, "width=320", TS[2], [TS[0], TS[1]], (320, 180)),
        Choice::new(hls, "width=160", TS[2], [TS[0], TS[1]], (160, 90)),
        Choice::new(hls, "height=360", TS[1], [TS[0], TS[2]], (640, 360)),
        Choice::new(hls, "width=400", TS[1], [TS[0], TS[2]], (400, 225)),
        Choice::new(hls, "width=1024", TS[0], [TS[1], TS[2]], (1024, 576)),
        Choice::new(hls, "width=2000", TS[0], [TS[1], TS[2]], (2000, 1125)),
        Choice::new(hls, "", TS[0], [TS[1], TS[2]], (1280, 720)),
        // The audio representation (stream2) is never read either.
        Choice::new(
            template,
            "width=320",
            DASH[1],
            [DASH[0], DASH[2]],
            (320, 180),
        ),
        Choice::new(template, "", DASH[0], [DASH[1], DASH[2]], (640, 360)),
        Choice::new(base, "width=256", BASE[1], [BASE[0], BASE[2]], (256, 144)),
        Choice::new(base, "height=225", BASE[0], [BASE[1], BASE[2]], (400, 225)),
    ];
    let mut failures = Vec::new();
    for Choice {
        key,
        query,
        read,
        unread,
        size,
    } in cases
    {
        // A source of its own per case, so its traffic is this render's.
        let source = SourceServer::start(fixtures()).await;
        let server = Server::start(&local(&source)).await;
        let path = format!("/v1/thumbnail/demo/local/{key}.png?timeStamp=9.5&{query}");
        let (status, _, body) = get(&server.url(&path)).await;
        if status != 200 {
            failures.push(format!(
                "{path}: {status} {}",
                String::from_utf8_lossy(&body)
            ));
            continue;
        }
        let r = read_pattern(&body);
        if r.frame != 228 || (r.width, r.height) != size {
            failures.push(format!("{path}: expected frame 228 at {size:?}, got {r:?}"));
        }
        let package = key.split('/').next().unwrap();
        let requested = requested_under(&source, package);
        let under = |prefix: &str| -> Vec<&String> {
            requested
                .iter()
                .filter(|f| f.starts_with(&format!("streams/{prefix}")))
                .collect()
        };
        if under(read).is_empty() {
            failures.push(format!("{path}: nothing of {read} read: {requested:?}"));
        }
        for other in unread {
            if !under(other).is_empty() {
                failures.push(format!("{path}: read {:?} besides {read}", under(other)));
            }
        }
    }
    common::assert_no_failures(&failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thumbnail_reads_the_playlists_the_init_and_one_segment() {
    streaming_fixtures();
    // At 9.5 s (the third segment), without a size (the largest rendition).
    let cases = [
        (
            "hls_ts/master.m3u8",
            "hls_ts",
            vec![
                "hls_ts/master.m3u8",
                "hls_ts/720/index.m3u8",
                "hls_ts/720/seg_002.ts",
            ],
        ),
        (
            "hls_fmp4/master.m3u8",
            "hls_fmp4",
            vec![
                "hls_fmp4/master.m3u8",
                "hls_fmp4/720/index.m3u8",
                "hls_fmp4/720/init.mp4",
                "hls_fmp4/720/seg_002.m4s",
            ],
        ),
        (
            "hls_media/index.m3u8",
            "hls_media",
            vec!["hls_media/index.m3u8", "hls_media/seg_002.ts"],
        ),
        (
            "dash_template/manifest.mpd",
            "dash_template",
            vec![
                "dash_template/manifest.mpd",
                "dash_template/init-stream0.m4s",
                "dash_template/chunk-stream0-00003.m4s",
            ],
        ),
        (
            "dash_timeline/manifest.mpd",
            "dash_timeline",
            // $Time$ of the third segment: 8 s in 1/12288 s.
            vec![
                "dash_timeline/manifest.mpd",
                "dash_timeline/init-0.m4s",
                "dash_timeline/chunk-0-98304.m4s",
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (key, package, expected) in cases {
        let source = SourceServer::start(fixtures()).await;
        let server = Server::start(&local(&source)).await;
        let path = format!("/v1/thumbnail/demo/local/{key}.png?timeStamp=9.5");
        let (status, _, body) = get(&server.url(&path)).await;
        if status != 200 || read_pattern(&body).frame != 228 {
            failures.push(format!("{path}: {status}"));
            continue;
        }
        let expected: BTreeSet<String> = expected.iter().map(|f| format!("streams/{f}")).collect();
        let requested = requested_under(&source, package);
        if requested != expected {
            failures.push(format!(
                "{path}: read {requested:?}, expected exactly {expected:?}"
            ));
        }
        // Each once (a segment may take more than one range request, but
        // not one per packet).
        for f in &expected {
            let t = source.traffic(f);
            if t.requests > 4 {
                failures.push(format!("{path}: {f} requested {} times", t.requests));
            }
        }
    }
    common::assert_no_failures(&failures);
}

fn tile(img: &image::DynamicImage, [x, y, w, h]: [u32; 4]) -> image::DynamicImage {
    img.crop_imm(x, y, w, h)
}

fn png_of(img: &image::DynamicImage) -> Vec<u8> {
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

/// The default storyboard of `key`: a tile per segment (`segment` seconds
/// apart), each showing the segment's first frame, the cues covering 0-30
/// s without gaps; the first tile of a later segment compared with the
/// CLI's frame of `rendition` (scaled; 8x8 block colours).
async fn check_storyboard(
    server: &Server,
    key: &str,
    segment: f64,
    rendition: u32,
    failures: &mut Vec<String>,
) {
    let path = format!("/v1/storyboard/demo/local/{key}.vtt?format=png");
    let (status, _, body) = get(&server.url(&path)).await;
    if status != 200 {
        failures.push(format!(
            "{path}: {status} {}",
            String::from_utf8_lossy(&body)
        ));
        return;
    }
    let cues = parse_vtt(std::str::from_utf8(&body).unwrap());
    let tiles = (DURATION / segment).ceil() as usize;
    if cues.len() != tiles {
        failures.push(format!(
            "{path}: {} cues, expected {tiles}: {cues:?}",
            cues.len()
        ));
        return;
    }
    let (status, headers, sprite) = get(&cues[0].url).await;
    if status != 200 || headers["content-type"] != "image/png" {
        failures.push(format!("{path}: sprite {}: {status}", cues[0].url));
        return;
    }
    let img = image::load_from_memory(&sprite).unwrap();
    for (i, cue) in cues.iter().enumerate() {
        let start = i as f64 * segment;
        let end = (start + segment).min(DURATION);
        if (cue.start - start).abs() > 1e-3 || (cue.end - end).abs() > 1e-3 {
            failures.push(format!(
                "{path}: cue {i} is {cue:?}, expected {start}-{end}"
            ));
        }
        let [x, y, w, h] = cue.xywh;
        if (w, h) != (160, 90) || x + w > img.width() || y + h > img.height() {
            failures.push(format!(
                "{path}: cue {i} {cue:?} in a {}x{} sprite",
                img.width(),
                img.height()
            ));
            continue;
        }
        let shown = read_pattern(&png_of(&tile(&img, cue.xywh))).frame;
        let expected = frame_at(start);
        if shown != expected {
            failures.push(format!(
                "{path}: tile {i} ({start} s) shows frame {shown}, not {expected}"
            ));
        }
    }
    // The tile of the third segment against the source's frame.
    let third = tile(&img, cues[2].xywh).to_rgb8();
    let frame = frame_at(2.0 * segment);
    let reference = image::imageops::resize(
        &oracle(rendition, frame),
        160,
        90,
        image::imageops::FilterType::Triangle,
    );
    let p = psnr(&block_colours(&third), &block_colours(&reference));
    if p < 30.0 {
        failures.push(format!(
            "{path}: the third tile is {p:.1} dB from frame {frame} of src_{rendition}.mp4"
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storyboards_and_the_best_frame_use_segment_starts() {
    let source = SourceServer::start(fixtures()).await;
    streaming_fixtures();
    let server = Server::start(&local(&source)).await;
    let mut failures = Vec::new();
    // Tiles of 160 wide: the 320x180 rendition (HLS), representation 1
    // (DASH). SegmentBase's segments are the sidx's subsegments: a 2 s GOP each.
    for (key, segment) in [
        ("hls_ts/master.m3u8", SEGMENT),
        ("hls_fmp4/master.m3u8", SEGMENT),
        ("dash_template/manifest.mpd", SEGMENT),
        ("dash_timeline/manifest.mpd", SEGMENT),
        ("dash_base/manifest.mpd", 2.0),
    ] {
        check_storyboard(&server, key, segment, 180, &mut failures).await;
    }
    // Reading the smallest rendition that covers the tiles.
    for big in [
        "hls_ts/720/",
        "hls_ts/360/",
        "hls_fmp4/720/",
        "hls_fmp4/360/",
    ] {
        let read: Vec<String> = files_under(big.trim_end_matches('/'))
            .into_iter()
            .filter(|f| source.traffic(f).requests > 0)
            .collect();
        if !read.is_empty() {
            failures.push(format!("storyboards of 160 wide tiles read {read:?}"));
        }
    }

    // The JSON layout: 8 tiles in one row (of 8 columns: no more columns
    // than tiles), each showing its segment's first frame (`time` =
    // `start`), the duration the playlist's.
    let (status, headers, body) =
        get(&server.url("/v1/storyboard/demo/local/hls_ts/master.m3u8.json")).await;
    if status == 200 {
        assert_eq!(headers["content-type"], "application/json");
        let doc: Value = serde_json::from_slice(&body).unwrap();
        let tiles = doc["tiles"].as_array().cloned().unwrap_or_default();
        let layout = (
            doc["tile_width"].as_u64(),
            doc["tile_height"].as_u64(),
            doc["columns"].as_u64(),
            doc["rows"].as_u64(),
            doc["duration"].as_f64(),
            tiles.len(),
        );
        if layout
            != (
                Some(160),
                Some(90),
                Some(8),
                Some(1),
                Some(DURATION),
                SEGMENTS,
            )
        {
            failures.push(format!("storyboard JSON layout {layout:?}: {doc}"));
        }
        for (i, t) in tiles.iter().enumerate() {
            let start = i as f64 * SEGMENT;
            if t["start"].as_f64() != Some(start) || t["time"].as_f64() != Some(start) {
                failures.push(format!("storyboard JSON tile {i}: {t}"));
            }
        }
        if tiles.last().and_then(|t| t["end"].as_f64()) != Some(DURATION) {
            failures.push(format!(
                "storyboard JSON: the last tile does not end at 30 s: {doc}"
            ));
        }
    } else {
        failures.push(format!(
            "storyboard JSON: {status} {}",
            String::from_utf8_lossy(&body)
        ));
    }

    // timeStamp=auto: the best of the segments' first frames.
    for key in [
        "hls_ts/master.m3u8",
        "hls_fmp4/master.m3u8",
        "dash_template/manifest.mpd",
        "dash_base/manifest.mpd",
    ] {
        let path = format!("/v1/thumbnail/demo/local/{key}.png?timeStamp=auto&width=320");
        let (status, headers, body) = get(&server.url(&path)).await;
        if status != 200 {
            failures.push(format!(
                "{path}: {status} {}",
                String::from_utf8_lossy(&body)
            ));
            continue;
        }
        let r = read_pattern(&body);
        let shown = thumbnail_time(&headers).unwrap_or(-1.0);
        let step = if key.starts_with("dash_base") {
            2.0
        } else {
            SEGMENT
        };
        let at_segment_start = (shown / step - (shown / step).round()).abs() < 1e-3
            && (0.0..DURATION).contains(&shown);
        if !at_segment_start || r.frame != frame_at(shown) || (r.width, r.height) != (320, 180) {
            failures.push(format!(
                "{path}: X-Thumbnail-Time {shown}, {r:?}: not a segment's first frame"
            ));
        }
    }
    common::assert_no_failures(&failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_duration_comes_from_the_playlist() {
    let source = SourceServer::start(fixtures()).await;
    streaming_fixtures();
    let server = Server::start(&format!(
        "[jobs]\nretry_backoff_ms = 50\n[orgs.demo]\napi_keys = [\"{API_KEY}\"]\ndefault_env = \"local\"\n{}",
        local(&source)
    ))
    .await;
    let mut failures = Vec::new();
    // No time: the middle, 15 s. Past the end: the last frame. 320 wide:
    // the 320x180 rendition where there is one (hls_media has only 360p,
    // scaled down, so only its pattern and time are compared).
    for (key, rendition) in [
        ("hls_ts/master.m3u8", 180),
        ("hls_fmp4/master.m3u8", 180),
        ("hls_media/index.m3u8", 360),
        ("dash_template/manifest.mpd", 180),
        ("dash_base/manifest.mpd", 180),
    ] {
        for (query, time) in [
            ("", 15.0),
            ("timeStamp=30", 30.0),
            ("timeStamp=3600", 3600.0),
        ] {
            let path = format!("/v1/thumbnail/demo/local/{key}.png?width=320&{query}");
            check_frame(&server, &path, rendition, time, (320, 180), &mut failures).await;
        }
    }

    // Jobs probe the playlist: a time past its end is refused at once,
    // with the duration; one within it completes and warms its URL.
    let submit = server.url("/v1/api/demo/edge-ids/hls_ts/master.m3u8/thumbnails");
    let (status, headers, body) = common::call(
        reqwest::Method::POST,
        &submit,
        Some(API_KEY),
        Some(json!({"width": 320, "timestampMs": 99_000_000})),
    )
    .await;
    if status != 422
        || body["type"] != "urn:thumbd:problem:past-end"
        || body["durationMs"] != 30_000
        || headers["content-type"] != "application/problem+json"
    {
        failures.push(format!("a job past the end: {status} {body}"));
    }
    let (status, _, body) = common::call(
        reqwest::Method::POST,
        &server.url("/v1/api/demo/edge-ids/dash_template/manifest.mpd/thumbnails"),
        Some(API_KEY),
        Some(json!({"width": 320, "timestampMs": 30_001})),
    )
    .await;
    if status != 422 || body["type"] != "urn:thumbd:problem:past-end" {
        failures.push(format!("a DASH job past the end: {status} {body}"));
    }
    let (status, _, body) = common::call(
        reqwest::Method::POST,
        &submit,
        Some(API_KEY),
        Some(json!({"width": 320, "timestampMs": 12_000})),
    )
    .await;
    assert_eq!(status, 202, "a job within the playlist: {body}");
    let id = body["body"]["jobId"].as_str().unwrap().to_owned();
    let url = body["body"]["url"].as_str().unwrap().to_owned();
    let mut job = Value::Null;
    for _ in 0..300 {
        let (_, _, b) = common::call(
            reqwest::Method::GET,
            &server.url(&format!("/v1/api/demo/thumbnails/{id}")),
            Some(API_KEY),
            None,
        )
        .await;
        job = b["body"].clone();
        if job["status"] == "completed" || job["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(job["status"], "completed", "{job}");
    let (status, headers, body) = get(&url).await;
    assert_eq!(status, 200, "{url}");
    assert_eq!(headers["x-thumbnail-cache"], "hit", "{url}");
    assert_eq!(read_pattern(&body).frame, 288, "{url}");
    common::assert_no_failures(&failures);
}

/// Checks an error answer: `status`, problem+json, and the problem type
/// when given (after `urn:thumbd:problem:`).
async fn check_refused(
    server: &Server,
    path: &str,
    status: u16,
    kind: Option<&str>,
    failures: &mut Vec<String>,
) {
    let started = Instant::now();
    let (got, headers, body) = get(&server.url(path)).await;
    let took = started.elapsed();
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let problem: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let kind_ok = match kind {
        Some(k) => problem["type"] == format!("urn:thumbd:problem:{k}"),
        None => problem["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:thumbd:problem:")),
    };
    if got.as_u16() != status
        || content_type != "application/problem+json"
        || !kind_ok
        || problem["status"] != status
    {
        failures.push(format!(
            "{path}: expected {status} {kind:?}, got {got} {content_type}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    // Nothing waited on an address that never answers.
    if took > Duration::from_secs(5) {
        failures.push(format!("{path}: answered in {took:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_documents_are_refused_before_anything_outside_is_read() {
    streaming_fixtures();
    // `main`: the fixture folder, template /streams/{key}. `evil`: a folder
    // of documents written here (they name ports), template /{key}.
    // `other`: the real packages on another port, which nothing may reach.
    let main = SourceServer::start(fixtures()).await;
    let other = SourceServer::start(streaming_fixtures()).await;
    let tmp = tempfile::tempdir().unwrap();
    let evil = SourceServer::start(tmp.path()).await;
    let o = other.addr;
    let e = evil.addr;
    // vod(HEADER, URIS): a VOD media playlist, HEADER after its first tags.
    let vod = |header: &str, uris: &[String]| {
        let mut text = format!(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n{header}"
        );
        for uri in uris {
            text += &format!("#EXTINF:4.000000,\n{uri}\n");
        }
        text + "#EXT-X-ENDLIST\n"
    };
    let segs =
        |base: &str| -> Vec<String> { (0..3).map(|i| format!("{base}seg_00{i}.ts")).collect() };
    // The fMP4 segments beside the documents, for a playlist whose only
    // outside URI is its init segment.
    for f in files_under("hls_fmp4/180") {
        let name = Path::new(&f).file_name().unwrap();
        if name != "index.m3u8" {
            std::fs::copy(fixtures().join(&f), tmp.path().join(name)).unwrap();
        }
    }
    let fmp4_segments: Vec<String> = (0..3).map(|i| format!("seg_00{i}.m4s")).collect();
    let documents: Vec<(&str, String)> = vec![
        ("other_host.m3u8", vod("", &segs(&format!("http://{o}/hls_ts/180/")))),
        (
            "other_master.m3u8",
            format!("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=200000,RESOLUTION=320x180\nhttp://{o}/hls_ts/180/index.m3u8\n"),
        ),
        (
            "other_map.m3u8",
            vod(
                &format!("#EXT-X-MAP:URI=\"http://{o}/hls_fmp4/180/init.mp4\"\n"),
                &fmp4_segments,
            ),
        ),
        ("scheme_relative.m3u8", vod("", &segs(&format!("//{o}/hls_ts/180/")))),
        ("userinfo.m3u8", vod("", &segs(&format!("http://{e}@{o}/hls_ts/180/")))),
        ("other_scheme.m3u8", vod("", &segs(&format!("https://{e}/")))),
        ("localhost.m3u8", vod("", &segs(&format!("http://localhost:{}/", e.port())))),
        (
            "other_host.mpd",
            std::fs::read_to_string(streaming_fixtures().join("dash_template/manifest.mpd"))
                .unwrap()
                .replacen(
                    "<AdaptationSet id=\"0\"",
                    &format!("<BaseURL>http://{o}/dash_template/</BaseURL>\n<AdaptationSet id=\"0\""),
                    1,
                ),
        ),
    ];
    for (name, text) in &documents {
        std::fs::write(tmp.path().join(name), text).unwrap();
    }
    let server = Server::start(&format!("{}{}", local(&main), env("evil", &evil, "{key}"))).await;
    let mut failures = Vec::new();
    const FORBIDDEN: Option<&str> = Some("playlist-uri-forbidden");

    // The fixture's documents: (key under streams/hostile/, status, type,
    // what besides the document itself may be read).
    let cases: &[(&str, u16, Option<&str>, &[&str])] = &[
        ("dotdot.m3u8", 403, FORBIDDEN, &[]),
        ("dotdot_encoded.m3u8", 403, FORBIDDEN, &[]),
        ("dotdot_master.m3u8", 403, FORBIDDEN, &[]),
        ("dotdot.mpd", 403, FORBIDDEN, &[]),
        ("file.m3u8", 403, FORBIDDEN, &[]),
        ("private.m3u8", 403, FORBIDDEN, &[]),
        ("metadata.m3u8", 403, FORBIDDEN, &[]),
        ("encrypted_aes_128.m3u8", 415, Some("encrypted-stream"), &[]),
        (
            "encrypted_sample_aes.m3u8",
            415,
            Some("encrypted-stream"),
            &[],
        ),
        ("encrypted.mpd", 415, Some("encrypted-stream"), &[]),
        ("live.m3u8", 415, Some("live-stream"), &[]),
        ("live.mpd", 415, Some("live-stream"), &[]),
        ("html_segment.m3u8", 415, None, &["streams/hostile/page.ts"]),
        ("not_a_playlist.m3u8", 415, None, &[]),
        ("not_a_manifest.mpd", 415, None, &[]),
    ];
    for &(name, status, kind, allowed) in cases {
        let doc = format!("streams/hostile/{name}");
        let before = main.total_requests();
        let path = format!("/v1/thumbnail/demo/local/hostile/{name}.png?timeStamp=5");
        check_refused(&server, &path, status, kind, &mut failures).await;
        let others = main.total_requests()
            - before
            - main.traffic(&doc).requests
            - allowed
                .iter()
                .map(|a| main.traffic(a).requests)
                .sum::<u32>();
        if main.traffic(&doc).requests == 0 || others != 0 {
            failures.push(format!(
                "{path}: the document requested {} times and {others} other requests",
                main.traffic(&doc).requests
            ));
        }
    }
    // The same refusals on the other endpoints.
    for path in [
        "/v1/storyboard/demo/local/hostile/dotdot.m3u8.vtt",
        "/v1/thumbnail/demo/local/hostile/dotdot.m3u8.png?timeStamp=auto",
        "/v1/animated/demo/local/hostile/dotdot.m3u8.webp?start=0&end=1",
    ] {
        check_refused(&server, path, 403, FORBIDDEN, &mut failures).await;
    }
    for path in [
        "/v1/storyboard/demo/local/hostile/encrypted_aes_128.m3u8.vtt",
        "/v1/thumbnail/demo/local/hostile/encrypted_aes_128.m3u8.png?timeStamp=auto",
    ] {
        check_refused(&server, path, 415, Some("encrypted-stream"), &mut failures).await;
    }
    let secret: u32 = [
        "secret/x.ts",
        "secret/y.ts",
        "secret/index.m3u8",
        "streams/hostile/key.bin",
    ]
    .iter()
    .map(|f| main.traffic(f).requests)
    .sum();
    if secret != 0 {
        failures.push(format!(
            "{secret} requests for files outside the prefix or keys"
        ));
    }

    // Documents naming another origin.
    for (name, _) in &documents {
        let before = evil.total_requests();
        let path = format!("/v1/thumbnail/demo/evil/{name}.png?timeStamp=5");
        check_refused(&server, &path, 403, FORBIDDEN, &mut failures).await;
        let doc = evil.traffic(name).requests;
        if evil.total_requests() - before != doc || doc == 0 {
            failures.push(format!(
                "{path}: {} requests to its own origin besides the document",
                evil.total_requests() - before - doc
            ));
        }
    }
    if other.total_requests() != 0 {
        failures.push(format!(
            "the other origin got {} requests",
            other.total_requests()
        ));
    }
    common::assert_no_failures(&failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_playlists_are_refused() {
    streaming_fixtures();
    // 100 MB of a valid-looking VOD playlist: refused at the default
    // limit (4 MiB), without reading it all first.
    let tmp = tempfile::tempdir().unwrap();
    {
        let file = std::fs::File::create(tmp.path().join("big.m3u8")).unwrap();
        let mut w = std::io::BufWriter::new(file);
        w.write_all(
            b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n",
        )
        .unwrap();
        let line = b"#EXTINF:4.000000,\nsegment_with_a_long_name_000000.ts\n";
        for _ in 0..(100_000_000 / line.len()) {
            w.write_all(line).unwrap();
        }
        w.write_all(b"#EXT-X-ENDLIST\n").unwrap();
    }
    let big = SourceServer::start(tmp.path()).await;
    // A limit between the media playlist's size and the master's.
    let media = std::fs::metadata(streaming_fixtures().join("hls_media/index.m3u8"))
        .unwrap()
        .len();
    let master = std::fs::metadata(streaming_fixtures().join("hls_ts/master.m3u8"))
        .unwrap()
        .len();
    assert!(media + 40 < master, "{media} and {master} bytes");
    let limit = (media + master) / 2;
    let source = SourceServer::start(fixtures()).await;
    let mut failures = Vec::new();

    let server = Server::start(&env("big", &big, "{key}")).await;
    let started = Instant::now();
    check_refused(
        &server,
        "/v1/thumbnail/demo/big/big.m3u8.png",
        413,
        None,
        &mut failures,
    )
    .await;
    if started.elapsed() > Duration::from_secs(3) {
        failures.push(format!("the 100 MB playlist took {:?}", started.elapsed()));
    }
    check_refused(
        &server,
        "/v1/storyboard/demo/big/big.m3u8.vtt",
        413,
        None,
        &mut failures,
    )
    .await;
    if big.traffic("big.m3u8").requests == 0 {
        failures.push("the 100 MB playlist was never requested".into());
    }

    let server = Server::start(&format!(
        "[render]\nmax_playlist_bytes = {limit}\n{}",
        local(&source)
    ))
    .await;
    check_refused(
        &server,
        "/v1/thumbnail/demo/local/hls_ts/master.m3u8.png",
        413,
        None,
        &mut failures,
    )
    .await;
    check_frame(
        &server,
        "/v1/thumbnail/demo/local/hls_media/index.m3u8.png?timeStamp=9.5",
        360,
        9.5,
        (640, 360),
        &mut failures,
    )
    .await;
    common::assert_no_failures(&failures);
}

/// An EVENT playlist still growing (no `EXT-X-ENDLIST`): a time within
/// its listed segments is settled and answered; what depends on where it
/// will end (the middle, `auto`, a storyboard, a time past its last
/// segment) is 409 `growing-playlist`, never cached as a frame that would
/// change. Once it ends, the same URLs answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_growing_event_playlist_answers_only_within_its_segments() {
    let streams = streaming_fixtures();
    let write = |name: &str, ended: bool| {
        let mut text = String::from(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:EVENT\n",
        );
        for i in 0..2 {
            text.push_str(&format!("#EXTINF:4.000000,\nseg_{i:03}.ts\n"));
        }
        if ended {
            text.push_str("#EXT-X-ENDLIST\n");
        }
        std::fs::write(streams.join("hls_ts/180").join(name), text).unwrap();
    };
    write("event_growing.m3u8", false);
    write("event_ended.m3u8", true);
    let source = SourceServer::start(fixtures()).await;
    let server = Server::start(&local(&source)).await;
    let mut failures = Vec::new();
    let growing = "/v1/thumbnail/demo/local/hls_ts/180/event_growing.m3u8.png";
    check_frame(
        &server,
        &format!("{growing}?timeStamp=5"),
        180,
        5.0,
        (320, 180),
        &mut failures,
    )
    .await;
    for query in ["", "?timeStamp=auto", "?timeStamp=8.5", "?timeStamp=100"] {
        check_refused(
            &server,
            &format!("{growing}{query}"),
            409,
            Some("growing-playlist"),
            &mut failures,
        )
        .await;
    }
    check_refused(
        &server,
        "/v1/storyboard/demo/local/hls_ts/180/event_growing.m3u8.json",
        409,
        Some("growing-playlist"),
        &mut failures,
    )
    .await;
    // Ended: the middle of its 8 s.
    let ended = "/v1/thumbnail/demo/local/hls_ts/180/event_ended.m3u8.png";
    check_frame(&server, ended, 180, 4.0, (320, 180), &mut failures).await;
    check_frame(
        &server,
        &format!("{ended}?timeStamp=100"),
        180,
        7.99,
        (320, 180),
        &mut failures,
    )
    .await;
    common::assert_no_failures(&failures);
}

/// A video URL naming a master playlist (the video-URL API): read through
/// the org's guard, its renditions and segments allowed only under the
/// org's `video_url_prefixes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_url_naming_a_playlist_reads_within_the_org_prefixes() {
    let streams = streaming_fixtures();
    // Under the prefix, naming renditions outside it.
    std::fs::write(
        streams.join("hls_ts/escape.m3u8"),
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000,RESOLUTION=320x180\n../hls_fmp4/180/index.m3u8\n",
    )
    .unwrap();
    let source = SourceServer::start(fixtures()).await;
    let server = Server::start(&format!(
        "[orgs.v]\napi_keys = [\"{API_KEY}\"]\nvideo_url_prefixes = [\"http://{}/streams/hls_ts/\"]\n\
         video_url_private_hosts = [\"127.0.0.1\"]\n",
        source.addr
    ))
    .await;
    let ask = |video: &str| {
        let body =
            json!({"video_url": source.url(video), "second": 9.5, "width": 320, "format": "png"});
        let url = server.url("/v1/video/thumbnail");
        async move {
            let resp = common::client()
                .post(url)
                .header("x-api-key", API_KEY)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let v: Value =
                serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null);
            (status, v)
        }
    };
    let (status, v) = ask("streams/hls_ts/master.m3u8").await;
    assert_eq!(status, 200, "{v}");
    let url = v["response"].as_str().expect("a thumbnail URL").to_owned();
    let (status, headers, body) = get(&url).await;
    assert_eq!(status, 200, "{url}");
    assert_eq!(read_pattern(&body).frame, frame_at(9.5), "{url}");
    assert_eq!(headers["x-thumbnail-time"], "9.500", "{url}");
    // (The job's probe reads a playlist for the duration; no media.)
    let segments_720: Vec<String> = requested_under(&source, "hls_ts/720")
        .into_iter()
        .filter(|f| f.ends_with(".ts"))
        .collect();
    assert!(
        segments_720.is_empty(),
        "320 wide reads the 180p rendition's segments only: {segments_720:?}"
    );

    let (status, v) = ask("streams/hls_ts/escape.m3u8").await;
    assert_eq!(status, 403, "{v}");
    assert!(
        requested_under(&source, "hls_fmp4").is_empty(),
        "nothing outside the org's prefix was requested"
    );
}
