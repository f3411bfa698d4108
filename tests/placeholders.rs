//! Placeholders (`/v1/placeholder/...json`) through the real server over a
//! real HTTP source. Each of the three is decoded by an independent
//! implementation (BlurHash by PyPI's `blurhash`, a port of the reference
//! decoder; ThumbHash by PyPI's `thumbhash-python`; the LQIP by the image
//! crate's WebP decoder) and compared with the thumbnail of the same frame
//! at the same small size and with the thumbnails of other pictures, which
//! must be clearly further; the hashes also with what those
//! implementations' own encoders make of the thumbnail's pixels (the same
//! pixels thumbd hashes). Then the frame's time and size against the
//! thumbnail's, errors, tokens and caching.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use common::{get, problem, SourceServer, Thumbd};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &str = "a-placeholder-test-secret-long-enough-0123456789";

/// The Python of `make contract-venv`, with the decoders.
fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/contract-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `make contract-venv` installs it (part of `make test`)",
        python.display()
    );
    python
}

/// For each `{blurhash, thumbhash, thumbnail: {width, height, rgb}}` of
/// stdin: the BlurHash decoded at the thumbnail's size, the ThumbHash at
/// the size its decoder chooses (32 on the longer side), and the same two
/// for hashes these implementations make of the thumbnail themselves
/// (the same pixels thumbd hashes: the frame 32 pixels on its longer side,
/// scaled by the same code). RGB bytes out.
const DECODE: &str = r#"
import base64, json, sys
import blurhash
from thumbhash.decode import thumbhash_to_rgba
from thumbhash.encode import rgba_to_thumbhash

def picture(w, h, rgb):
    return {"width": w, "height": h, "rgb": rgb}

def decode_blurhash(hash, w, h):
    rows = blurhash.decode(hash, w, h)
    return picture(w, h, [c for row in rows for px in row for c in px])

def decode_thumbhash(hash):
    w, h, rgba = thumbhash_to_rgba(hash)
    return picture(w, h, [v for i, v in enumerate(rgba) if i % 4 != 3])

out = []
for q in json.load(sys.stdin):
    t = q["thumbnail"]
    w, h, rgb = t["width"], t["height"], t["rgb"]
    pixels = [[rgb[(y * w + x) * 3:(y * w + x) * 3 + 3] for x in range(w)] for y in range(h)]
    rgba = [v for i in range(0, len(rgb), 3) for v in rgb[i:i + 3] + [255]]
    x, y = blurhash.components(q["blurhash"])
    out.append({
        "blurhash": decode_blurhash(q["blurhash"], w, h),
        "thumbhash": decode_thumbhash(base64.b64decode(q["thumbhash"])),
        "own_blurhash": decode_blurhash(blurhash.encode(pixels, x, y), w, h),
        "own_thumbhash": decode_thumbhash(rgba_to_thumbhash(w, h, rgba)),
    })
json.dump(out, sys.stdout)
"#;

/// A packed RGB picture.
#[derive(Debug, Clone)]
struct Rgb {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl Rgb {
    fn from_image(bytes: &[u8]) -> Rgb {
        let img = image::load_from_memory(bytes)
            .expect("a decodable image")
            .to_rgb8();
        Rgb {
            width: img.width(),
            height: img.height(),
            data: img.into_raw(),
        }
    }

    fn from_json(v: &Value) -> Rgb {
        let data: Vec<u8> = v["rgb"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap().min(255) as u8)
            .collect();
        let rgb = Rgb {
            width: v["width"].as_u64().unwrap() as u32,
            height: v["height"].as_u64().unwrap() as u32,
            data,
        };
        assert_eq!(rgb.data.len(), (rgb.width * rgb.height * 3) as usize);
        rgb
    }

    /// Mean colour of each cell of a `cols` x `rows` grid laid over the
    /// picture (whatever its size: a ThumbHash decodes at its own),
    /// averaged as `light` says, 0-255 sRGB.
    fn cells(&self, (cols, rows): (u32, u32), light: Light) -> Vec<[f64; 3]> {
        let mut sums = vec![([0.0; 3], 0u32); (cols * rows) as usize];
        for y in 0..self.height {
            for x in 0..self.width {
                let cell = (y * rows / self.height * cols + x * cols / self.width) as usize;
                let i = ((y * self.width + x) * 3) as usize;
                for c in 0..3 {
                    sums[cell].0[c] += light.to_light(self.data[i + c]);
                }
                sums[cell].1 += 1;
            }
        }
        sums.into_iter()
            .map(|(s, n)| s.map(|v| light.to_srgb(v / n.max(1) as f64)))
            .collect()
    }
}

/// How colours are averaged: as the placeholder format blurs them.
#[derive(Debug, Clone, Copy)]
enum Light {
    /// BlurHash's waves are in linear light: a half-white cell blurs to
    /// sRGB 188, not 128.
    Linear,
    /// ThumbHash's (and a WebP's) are in the sRGB values themselves.
    Srgb,
}

impl Light {
    fn to_light(self, v: u8) -> f64 {
        let v = v as f64 / 255.0;
        match self {
            Light::Srgb => v,
            Light::Linear if v <= 0.04045 => v / 12.92,
            Light::Linear => ((v + 0.055) / 1.055).powf(2.4),
        }
    }

    fn to_srgb(self, v: f64) -> f64 {
        let v = v.clamp(0.0, 1.0);
        255.0
            * match self {
                Light::Srgb => v,
                Light::Linear if v <= 0.003_130_8 => v * 12.92,
                Light::Linear => 1.055 * v.powf(1.0 / 2.4) - 0.055,
            }
    }
}

/// Mean absolute difference (0-255 a channel) between the cell colours of
/// two pictures on a grid of `cols` x `rows` (turned for portraits): what
/// a placeholder carries is the layout of colours, not detail.
fn layout_distance(a: &Rgb, b: &Rgb, (cols, rows): (u32, u32), light: Light) -> f64 {
    let grid = if b.width >= b.height {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let (ca, cb) = (a.cells(grid, light), b.cells(grid, light));
    let total: f64 = ca
        .iter()
        .zip(&cb)
        .map(|(p, q)| (0..3).map(|c| (p[c] - q[c]).abs()).sum::<f64>())
        .sum();
    total / (ca.len() * 3) as f64
}

/// Mean absolute difference per channel, pixel by pixel, of two pictures
/// of one size.
fn pixel_distance(a: &Rgb, b: &Rgb) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let total: u64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(p, q)| p.abs_diff(*q) as u64)
        .sum();
    total as f64 / a.data.len() as f64
}

/// The test's videos: the samples (landscape, and a phone video stored
/// sideways), a video with a cut (SMPTE bars, then horizontal red, green
/// and blue bands at 2 s), one with pixels twice as wide as tall, and a
/// file that is not a video.
fn videos() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let samples = common::samples();
    for name in ["demo.mp4", "portrait.mp4"] {
        std::fs::copy(samples.join(name), dir.path().join(name)).unwrap();
    }
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", "smptebars=s=320x180:r=25:d=2"])
        .args(["-f", "lavfi", "-i", "rgbtestsrc=s=320x180:r=25:d=2"])
        .args(["-filter_complex", "[0][1]concat=n=2:v=1"])
        .args(["-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p"])
        .arg(dir.path().join("cut.mp4"))
        .status()
        .expect("run the ffmpeg CLI (make test installs it)");
    assert!(status.success());
    // Stored 160x180, shown 320x180: a yellow bar on the left, a red block
    // on the right, on navy.
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(concat!(
            "color=c=0x203080:s=160x180:r=25:d=1,",
            "drawbox=x=20:y=30:w=50:h=120:color=yellow@1:t=fill,",
            "drawbox=x=100:y=100:w=40:h=60:color=red@1:t=fill,setsar=2/1"
        ))
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(dir.path().join("wide.mp4"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(
        dir.path().join("garbage.mp4"),
        b"not a video at all ".repeat(100),
    )
    .unwrap();
    dir
}

fn config(source: &SourceServer, dir: &Path) -> String {
    format!(
        r#"
[orgs.demo.envs.http]
source = "http://{addr}/{{key}}"

[[orgs.demo.signing_keys]]
kid = "hs"
alg = "HS256"
secret = "{SECRET}"

[orgs.demo.envs.private]
source = "file:{dir}/{{key}}"
access = "signed"
"#,
        addr = source.addr,
        dir = dir.display(),
    )
}

/// A token for `claims` (with `exp` in 10 minutes unless given).
fn token(mut claims: Value) -> String {
    if claims.get("exp").is_none() {
        claims["exp"] = json!(thumbd::auth::now_secs() + 600);
    }
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("hs".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn status_of(url: String) -> reqwest::StatusCode {
    get(&url).await.0
}

/// A 200 placeholder answer's JSON, its headers checked.
async fn placeholder(thumbd: &Thumbd, path: &str) -> (Value, reqwest::header::HeaderMap) {
    let (status, headers, body) = get(&thumbd.url(path)).await;
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/json", "{path}");
    let v: Value = serde_json::from_slice(&body).unwrap();
    (v, headers)
}

/// One frame's placeholder and the thumbnails to compare it with.
struct Case {
    name: &'static str,
    key: &'static str,
    time: &'static str,
    /// Displayed size.
    size: (u32, u32),
    /// What the video shows: frames of the same picture are not compared
    /// as different ones (the portrait sample is the landscape one turned).
    picture: &'static str,
}

const CASES: [Case; 5] = [
    Case {
        name: "landscape",
        key: "demo.mp4",
        time: "2.5",
        size: (640, 360),
        picture: "testsrc2",
    },
    Case {
        name: "turned by its display matrix",
        key: "portrait.mp4",
        time: "1",
        size: (360, 640),
        picture: "testsrc2",
    },
    Case {
        name: "before the cut",
        key: "cut.mp4",
        time: "1",
        size: (320, 180),
        picture: "bars",
    },
    Case {
        name: "after the cut",
        key: "cut.mp4",
        time: "3",
        size: (320, 180),
        picture: "bands",
    },
    Case {
        name: "pixels twice as wide",
        key: "wide.mp4",
        time: "0.5",
        size: (320, 180),
        picture: "boxes",
    },
];

/// What one case's placeholder decodes to, and its thumbnail.
struct Seen {
    blurhash: Rgb,
    thumbhash: Rgb,
    /// The hashes the independent encoders make of the thumbnail, decoded.
    own_blurhash: Rgb,
    own_thumbhash: Rgb,
    lqip: Rgb,
    thumbnail: Rgb,
}

/// How each placeholder is compared with a frame: on a grid no finer
/// than the waves the format keeps, colours averaged as it averages them,
/// and the most its cell colours may differ from its own frame's (mean
/// per channel, 0-255). Sharp, saturated bars are the hardest case for a
/// dozen cosine waves (BlurHash 4x3, in linear light; ThumbHash's colour
/// has 3x3, in sRGB values), so a few tens of levels are their blur, not
/// an error: the worst seen on these frames is 37 (BlurHash, the red,
/// green and blue bands) and 20 (ThumbHash, the turned sample), and the
/// bounds leave ~20% room. Another picture's cells are 2.3 times as far
/// or more (printed by the test); swapping red and blue before hashing
/// puts most cases past both bounds.
const BLURHASH: ((u32, u32), Light, f64) = ((4, 3), Light::Linear, 45.0);
const THUMBHASH: ((u32, u32), Light, f64) = ((3, 2), Light::Srgb, 25.0);
/// The LQIP is the frame at the thumbnail's size through lossy WebP; its
/// 4:2:0 chroma smears the turned sample's bars (2.6 pixels wide), so it
/// is compared on cells of 4-5 pixels a side (2 chroma samples): 13 at
/// worst, another picture 60 or more.
const LQIP: ((u32, u32), Light, f64) = ((6, 4), Light::Srgb, 16.0);
/// Another picture must be this many times as far from the placeholder
/// as its own frame.
const MARGIN: f64 = 2.0;
/// The most (mean per channel, pixel by pixel) a hash may decode away
/// from the independent encoder's hash of the same pixels: both quantise
/// the same waves, so only rounding differs (~1 seen).
const SAME_HASH: f64 = 4.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_placeholder_decodes_to_its_frame() {
    let dir = videos();
    let source = SourceServer::start(dir.path()).await;
    let thumbd = Thumbd::start(&config(&source, dir.path())).await;
    let mut seen = Vec::new();
    let mut queries = Vec::new();
    for case in &CASES {
        let path = format!(
            "/v1/placeholder/demo/http/{}.json?timeStamp={}",
            case.key, case.time
        );
        let (p, headers) = placeholder(&thumbd, &path).await;
        assert_eq!(
            (p["width"].as_u64(), p["height"].as_u64()),
            (Some(case.size.0 as u64), Some(case.size.1 as u64)),
            "{}: {p}",
            case.name
        );
        // The thumbnail at the same moment: the same frame, the same time.
        let small = if case.size.0 >= case.size.1 {
            "width=32"
        } else {
            "height=32"
        };
        let (status, thumb_headers, png) = get(&thumbd.url(&format!(
            "/v1/thumbnail/demo/http/{}.png?timeStamp={}&{small}",
            case.key, case.time
        )))
        .await;
        assert_eq!(status, 200);
        let time = &thumb_headers["x-thumbnail-time"];
        assert_eq!(headers["x-thumbnail-time"], time, "{}", case.name);
        assert_eq!(
            format!("{:.3}", p["time"].as_f64().unwrap()),
            time.to_str().unwrap(),
            "{}",
            case.name
        );
        assert_eq!(
            headers["cache-control"], thumb_headers["cache-control"],
            "{}",
            case.name
        );
        let thumbnail = Rgb::from_image(&png);
        // The full-size thumbnail has the size the placeholder says.
        let (_, _, full) = get(&thumbd.url(&format!(
            "/v1/thumbnail/demo/http/{}.png?timeStamp={}",
            case.key, case.time
        )))
        .await;
        let full = Rgb::from_image(&full);
        assert_eq!((full.width, full.height), case.size, "{}", case.name);

        let lqip = p["lqip"].as_str().unwrap();
        let webp = base64::engine::general_purpose::STANDARD
            .decode(
                lqip.strip_prefix("data:image/webp;base64,")
                    .expect("a WebP data URI"),
            )
            .unwrap();
        // A few hundred bytes (170-290 on these frames).
        eprintln!("{}: LQIP of {} bytes", case.name, webp.len());
        assert!(webp.len() < 500, "{}: {} bytes", case.name, webp.len());
        let lqip = Rgb::from_image(&webp);
        assert_eq!(
            (lqip.width, lqip.height),
            (thumbnail.width, thumbnail.height),
            "{}: the LQIP is the frame 32 pixels on its longer side",
            case.name
        );
        queries.push(json!({
            "blurhash": p["blurhash"],
            "thumbhash": p["thumbhash"],
            "thumbnail": {
                "width": thumbnail.width,
                "height": thumbnail.height,
                "rgb": thumbnail.data,
            },
        }));
        seen.push((lqip, thumbnail));
    }

    let mut child = Command::new(python())
        .args(["-c", DECODE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::Array(queries).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the Python decoders failed");
    let decoded: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let seen: Vec<Seen> = seen
        .into_iter()
        .zip(&decoded)
        .map(|((lqip, thumbnail), d)| Seen {
            blurhash: Rgb::from_json(&d["blurhash"]),
            thumbhash: Rgb::from_json(&d["thumbhash"]),
            own_blurhash: Rgb::from_json(&d["own_blurhash"]),
            own_thumbhash: Rgb::from_json(&d["own_thumbhash"]),
            lqip,
            thumbnail,
        })
        .collect();

    let mut failures = Vec::new();
    for (case, s) in CASES.iter().zip(&seen) {
        let others = || {
            CASES
                .iter()
                .zip(&seen)
                .filter(|(other, _)| other.picture != case.picture)
        };
        for (what, picture, (grid, light, bound)) in [
            ("BlurHash", &s.blurhash, BLURHASH),
            ("ThumbHash", &s.thumbhash, THUMBHASH),
            ("LQIP", &s.lqip, LQIP),
        ] {
            let near = layout_distance(picture, &s.thumbnail, grid, light);
            let (far, other) = others()
                .map(|(o, seen)| {
                    let far = layout_distance(picture, &seen.thumbnail, grid, light);
                    (far, o.name)
                })
                .fold((f64::INFINITY, ""), |a, b| if b.0 < a.0 { b } else { a });
            eprintln!(
                "{}: {what} {near:.1} from its frame, {far:.1} from {other}",
                case.name
            );
            if near > bound || far < MARGIN * near {
                failures.push(format!(
                    "{}: {what} is {near:.1} from its frame and {far:.1} from {other}",
                    case.name
                ));
            }
        }
        // The same pixels hashed by the other implementation: the same
        // picture, but for rounding.
        for (what, ours, theirs) in [
            ("BlurHash", &s.blurhash, &s.own_blurhash),
            ("ThumbHash", &s.thumbhash, &s.own_thumbhash),
        ] {
            let d = pixel_distance(ours, theirs);
            eprintln!(
                "{}: {what} {d:.1} from the independent encoder's",
                case.name
            );
            if d > SAME_HASH {
                failures.push(format!(
                    "{}: {what} decodes {d:.1} away from the independent encoder's hash of the thumbnail",
                    case.name
                ));
            }
        }
    }
    common::assert_no_failures(&failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_thumbnails_frame_cached_with_thumbnail_headers() {
    let dir = videos();
    let source = SourceServer::start(dir.path()).await;
    let thumbd = Thumbd::start(&config(&source, dir.path())).await;
    let decoded = |m: &str| common::metric(m, "thumbd_render_frames_decoded_count");

    // After a thumbnail, its frame is decoded: the placeholder reuses it.
    let (status, thumb, _) =
        get(&thumbd.url("/v1/thumbnail/demo/http/demo.mp4.webp?timeStamp=6&width=100")).await;
    assert_eq!(status, 200);
    let before = decoded(&thumbd.metrics().await);
    let path = "/v1/placeholder/demo/http/demo.mp4.json?timeStamp=6&width=999&fit=nonsense";
    let (first, headers) = placeholder(&thumbd, path).await;
    assert_eq!(headers["x-thumbnail-cache"], "miss");
    assert_eq!(headers["x-thumbnail-time"], thumb["x-thumbnail-time"]);
    assert_eq!(
        decoded(&thumbd.metrics().await),
        before,
        "the frame was decoded again"
    );

    let (second, again) = placeholder(&thumbd, path).await;
    assert_eq!(again["x-thumbnail-cache"], "hit");
    assert_eq!((&first, &headers["etag"]), (&second, &again["etag"]));
    // Another spelling of the same moment is the same entry.
    let (_, spelled) = placeholder(
        &thumbd,
        "/v1/placeholder/demo/http/demo.mp4.json?time=6.000",
    )
    .await;
    assert_eq!(spelled["x-thumbnail-cache"], "hit");

    let resp = common::client()
        .get(thumbd.url(path))
        .header("if-none-match", headers["etag"].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    assert_eq!(
        resp.headers()["x-thumbnail-time"],
        headers["x-thumbnail-time"]
    );

    let resp = common::client()
        .head(thumbd.url(path))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], headers["etag"]);

    // A new moment is a new decode, and `auto` is the thumbnail's best frame.
    let (auto, _) = placeholder(
        &thumbd,
        "/v1/placeholder/demo/http/demo.mp4.json?timeStamp=auto",
    )
    .await;
    assert_eq!(decoded(&thumbd.metrics().await), before + 1.0);
    let (_, thumb, _) =
        get(&thumbd.url("/v1/thumbnail/demo/http/demo.mp4.jpg?timeStamp=auto")).await;
    assert_eq!(
        format!("{:.3}", auto["time"].as_f64().unwrap()),
        thumb["x-thumbnail-time"].to_str().unwrap()
    );
    // No time: the middle, as for thumbnails.
    let (middle, _) = placeholder(&thumbd, "/v1/placeholder/demo/http/demo.mp4.json").await;
    let (_, thumb, _) = get(&thumbd.url("/v1/thumbnail/demo/http/demo.mp4.jpg")).await;
    assert_eq!(
        format!("{:.3}", middle["time"].as_f64().unwrap()),
        thumb["x-thumbnail-time"].to_str().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problems_as_for_thumbnails() {
    let dir = videos();
    let source = SourceServer::start(dir.path()).await;
    let thumbd = Thumbd::start(&config(&source, dir.path())).await;
    for (path, status, what) in [
        ("demo/nope/demo.mp4.json", 404, "unknown environment"),
        ("nope/http/demo.mp4.json", 404, "unknown org"),
        ("demo/http/missing.mp4.json", 404, "missing video"),
        (
            "demo/http/demo.mp4.json?timeStamp=abc",
            400,
            "bad timeStamp",
        ),
        (
            "demo/http/demo.mp4.json?timeStamp=-1",
            400,
            "negative timeStamp",
        ),
        ("demo/http/demo.mp4.webp", 400, "not .json"),
        ("demo/http/../demo.mp4.json", 400, "a '..' segment"),
        ("demo/http/garbage.mp4.json", 415, "not a video"),
    ] {
        let (got, headers, body) = get(&thumbd.url(&format!("/v1/placeholder/{path}"))).await;
        assert_eq!(got, status, "{what}: {}", String::from_utf8_lossy(&body));
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{what}"
        );
        assert_eq!(problem(&body)["status"], status, "{what}");
    }
    let (status, _, body) =
        get(&thumbd.url("/v1/placeholder/demo/http/demo.mp4.json?timeStamp=abc")).await;
    assert_eq!(status, 400);
    assert!(
        body.windows(15).any(|w| w == b"query.timeStamp"),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thumbnail_token_opens_its_frames_placeholder() {
    let dir = videos();
    let source = SourceServer::start(dir.path()).await;
    let thumbd = Thumbd::start(&config(&source, dir.path())).await;
    let url = |query: &str| {
        thumbd.url(&format!(
            "/v1/placeholder/demo/private/demo.mp4.json?{query}"
        ))
    };
    let thumbnail = json!({"sub": "demo.mp4", "aud": "thumbnail"});
    let status = |q: String| status_of(url(&q));

    assert_eq!(status("timeStamp=2".into()).await, 401, "no token");
    assert_eq!(status("timeStamp=2&token=garbage".into()).await, 401);
    let expired = token(json!({"sub": "demo.mp4", "aud": "thumbnail", "exp": 1}));
    assert_eq!(status(format!("token={expired}")).await, 401, "expired");

    let (code, headers, body) = get(&url(&format!(
        "timeStamp=2&token={}",
        token(thumbnail.clone())
    )))
    .await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let max_age: u64 = headers["cache-control"]
        .to_str()
        .unwrap()
        .strip_prefix("public, max-age=")
        .expect("public, max-age=N")
        .parse()
        .unwrap();
    assert!(
        max_age <= 600,
        "not kept past the token's expiry: {max_age}"
    );
    let resp = common::client()
        .get(url("timeStamp=2"))
        .bearer_auth(token(thumbnail))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "a token in Authorization: Bearer");

    // A token that binds a moment (and a picture's format and size) opens
    // that moment only; the format and size do not matter here.
    let bound = token(json!({
        "sub": "demo.mp4", "aud": "t", "timeStamp": 4, "format": "png", "width": 320
    }));
    let (code, _, body) = get(&url(&format!("token={bound}"))).await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!((v["time"].as_f64().unwrap() - 4.0).abs() < 0.05, "{v}");
    assert_eq!(status(format!("timeStamp=4&token={bound}")).await, 200);
    assert_eq!(status(format!("timeStamp=5&token={bound}")).await, 403);
    let auto = token(json!({"sub": "demo.mp4", "aud": "thumbnail", "format": "auto"}));
    assert_eq!(status(format!("token={auto}")).await, 200, "format auto");

    for (claims, what) in [
        (
            json!({"sub": "portrait.mp4", "aud": "thumbnail"}),
            "another video",
        ),
        (
            json!({"sub": "demo.mp4", "aud": "storyboard"}),
            "a storyboard token",
        ),
        (
            json!({"sub": "demo.mp4", "aud": "thumbnail", "env": "http"}),
            "another env",
        ),
    ] {
        assert_eq!(
            status(format!("token={}", token(claims))).await,
            403,
            "{what}"
        );
    }
}
