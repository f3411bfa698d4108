//! Transparent videos through the real server over a real HTTP source
//! (tests/fixtures/alpha.sh): VP9 and VP8 WebM with alpha, ProRes 4444,
//! PNG and QuickTime Animation in MOV, each showing a disc that moves 3 px
//! a frame and a band whose opacity ramps and shifts every frame.
//!
//! The oracle is the ffmpeg CLI decoding the same frame to RGBA (for WebM
//! with `-c:v libvpx-vp9`/`libvpx` before `-i`, as players decode its
//! alpha); its alpha is itself checked against the generator's formula
//! where the codec is lossless, and shown to change from frame to frame.
//! Thumbnails at native size must carry that alpha pixel for pixel in PNG,
//! WebP and AVIF (each stores alpha losslessly; only ProRes' 10-bit alpha
//! rounded to 8 bits may differ, by a level). A JPEG shows the configured
//! background where the frame is transparent. `fit=pad` pads with
//! transparency; a video without alpha stays opaque; a bad
//! `pictures.jpeg_background` is refused at start-up.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{fixtures, get, SourceServer, Thumbd};
use image::{ColorType, RgbaImage};

/// Makes the transparent fixtures in the fixture folder, once; returns it.
fn alpha_fixtures() -> &'static Path {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let status = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/alpha.sh"
            ))
            .arg(fixtures())
            .status()
            .expect("run tests/fixtures/alpha.sh (needs bash and the ffmpeg CLI)");
        assert!(status.success(), "fixture generation failed");
    });
    fixtures()
}

/// The fixtures' size.
const W: u32 = 160;
const H: u32 = 96;

/// Each transparent fixture, the libvpx decoder that reads its alpha (for
/// the oracle), and the most an 8-bit alpha sample of a thumbnail may
/// differ from the oracle's.
const VIDEOS: [(&str, Option<&str>, u8); 5] = [
    // Same decoder (libvpx) on both sides, alpha copied: exact.
    ("alpha_vp9.webm", Some("libvpx-vp9"), 0),
    ("alpha_vp8.webm", Some("libvpx"), 0),
    // 10-bit alpha (12 as FFmpeg decodes it) rounded to 8 bits by thumbd
    // and by swscale for the CLI: a level apart at most.
    ("alpha_prores.mov", None, 1),
    // 8-bit alpha stored losslessly: exact.
    ("alpha_png.mov", None, 0),
    ("alpha_qtrle.mov", None, 0),
];

/// Times to ask for and the frames shown then (25 fps), each where its
/// frame starts: the CLI's `-ss` gives the first frame at or after a time,
/// thumbd the frame on screen at it, the same frame only there. Frame 38
/// comes after the keyframe at 1 s (the WebM decodes forward from it).
const TIMES: [(f64, u32); 3] = [(0.28, 7), (0.52, 13), (1.52, 38)];

/// The frame the ffmpeg CLI shows at `secs`, as RGBA at its own size,
/// converted with thumbd's swscale flags (so that the colours of the same
/// decoded frame match exactly). `decoder` names the one to use; `None`
/// is FFmpeg's default (for WebM, its own VP8/VP9 decoder, without alpha).
fn oracle(video: &str, decoder: Option<&str>, secs: f64) -> RgbaImage {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error"]);
    if let Some(d) = decoder {
        cmd.args(["-c:v", d]);
    }
    let out = cmd
        .args(["-ss", &secs.to_string(), "-i"])
        .arg(alpha_fixtures().join(video))
        .args(["-sws_flags", "bicubic+accurate_rnd+full_chroma_int"])
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgba", "-"])
        .output()
        .expect("run the ffmpeg CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    RgbaImage::from_raw(W, H, out.stdout).expect("one 160x96 RGBA frame")
}

/// The opacity the generator gives pixel (x, y) of frame `n`
/// (tests/fixtures/alpha.sh).
fn generated_alpha(x: u32, y: u32, n: u32) -> u8 {
    let (dx, dy) = (x as f64 - (20.0 + 3.0 * n as f64), y as f64 - 36.0);
    if dx.hypot(dy) <= 18.0 {
        255
    } else if y > 71 {
        (((x + 4 * n) % 160) * 255 / 159) as u8
    } else {
        0
    }
}

/// The alpha channel of an RGBA picture.
fn alpha_of(img: &RgbaImage) -> Vec<u8> {
    img.pixels().map(|p| p.0[3]).collect()
}

/// The largest difference between two alpha planes, and where.
fn worst(a: &[u8], b: &[u8]) -> (u8, usize) {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .enumerate()
        .map(|(i, (x, y))| (x.abs_diff(*y), i))
        .max()
        .unwrap_or((0, 0))
}

async fn server(extra: &str) -> (SourceServer, Thumbd) {
    let source = SourceServer::start(alpha_fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), extra)).await;
    (source, thumbd)
}

/// A thumbnail's bytes, and its content type.
async fn thumbnail(thumbd: &Thumbd, video: &str, ext: &str, query: &str) -> (Vec<u8>, String) {
    let url = thumbd.url(&format!("/v1/thumbnail/demo/http/{video}.{ext}?{query}"));
    let (status, headers, body) = get(&url).await;
    assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
    let kind = headers["content-type"].to_str().unwrap().to_owned();
    (body.to_vec(), kind)
}

/// An answer decoded to RGBA: PNG, WebP and JPEG by the `image` crate,
/// AVIF by libavif (FFmpeg 5.1 reads an AVIF's colour but not its alpha
/// item), with whether the file itself has an alpha channel.
fn decode(bytes: &[u8], ext: &str) -> (RgbaImage, bool) {
    if ext == "avif" {
        return avif::decode(bytes);
    }
    let img = image::load_from_memory(bytes).expect("a decodable picture");
    let has_alpha = img.color().has_alpha();
    (img.to_rgba8(), has_alpha)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oracle_alpha_is_the_generated_one_and_moves_every_frame() {
    for (video, decoder, _) in VIDEOS {
        let frames: Vec<Vec<u8>> = TIMES
            .iter()
            .map(|&(t, _)| alpha_of(&oracle(video, decoder, t)))
            .collect();
        for (alpha, &(t, n)) in frames.iter().zip(&TIMES) {
            let want: Vec<u8> = (0..H)
                .flat_map(|y| (0..W).map(move |x| generated_alpha(x, y, n)))
                .collect();
            let (off, at) = worst(alpha, &want);
            // Lossless codecs give the formula back; ProRes within a level
            // of 10 bits; VP8/VP9 code alpha lossily: near it on average.
            let mean = alpha
                .iter()
                .zip(&want)
                .map(|(a, b)| a.abs_diff(*b) as f64)
                .sum::<f64>()
                / alpha.len() as f64;
            match video {
                "alpha_png.mov" | "alpha_qtrle.mov" => {
                    assert_eq!(off, 0, "{video} at {t}: pixel {at}")
                }
                "alpha_prores.mov" => assert!(off <= 1, "{video} at {t}: {off} at {at}"),
                _ => assert!(mean < 4.0, "{video} at {t}: mean {mean}"),
            }
            assert!(alpha.contains(&0) && alpha.contains(&255), "{video}");
            let partial = alpha.iter().filter(|a| (20..235).contains(*a)).count();
            assert!(partial > 1500, "{video}: {partial} partly transparent");
        }
        for pair in frames.windows(2) {
            let changed = pair[0].iter().zip(&pair[1]).filter(|(a, b)| a != b).count();
            assert!(changed > 1000, "{video}: {changed} pixels changed");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn png_webp_and_avif_keep_the_alpha_of_the_frame_shown() {
    let (_source, thumbd) = server("").await;
    for (video, decoder, tolerance) in VIDEOS {
        for (t, _) in TIMES {
            let want = oracle(video, decoder, t);
            let want_alpha = alpha_of(&want);
            for ext in ["png", "webp", "avif"] {
                let (bytes, _) = thumbnail(&thumbd, video, ext, &format!("timeStamp={t}")).await;
                let (got, has_alpha) = decode(&bytes, ext);
                assert!(has_alpha, "{video}.{ext} at {t}: no alpha channel");
                assert_eq!(got.dimensions(), (W, H), "{video}.{ext}");
                let (off, at) = worst(&alpha_of(&got), &want_alpha);
                assert!(
                    off <= tolerance,
                    "{video}.{ext} at {t}: alpha {off} off at pixel ({}, {})",
                    at as u32 % W,
                    at as u32 / W
                );
                if ext == "png" {
                    // Lossless: every pixel's colour, hidden or not, is
                    // the frame's as the CLI converts it, exactly.
                    let d = rgb_difference(&got, &want, &want, |_| true);
                    assert!(d == 0.0, "{video} at {t}: colour {d} off");
                    continue;
                }
                // Lossy: the opaque disc's colour, in its middle (4:2:0
                // chroma blurs its edge). WebP and AVIF shift this small
                // saturated red by up to 23 levels, as they do for the
                // same video without alpha.
                let n = TIMES.iter().find(|p| p.0 == t).unwrap().1;
                let cx = 20 + 3 * n;
                for (x, y) in [(cx - 5, 31), (cx + 4, 40), (cx, 36)] {
                    let (g, w) = (got.get_pixel(x, y).0, want.get_pixel(x, y).0);
                    let near = (0..3).all(|c| g[c].abs_diff(w[c]) <= 32);
                    assert!(near, "{video}.{ext} at {t} ({x}, {y}): {g:?}, want {w:?}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webm_with_alpha_shows_the_frame_ffmpeg_shows_at_each_time() {
    // libvpx decodes the WebM with alpha: the frame at a time must stay
    // the one FFmpeg's own decoder shows (its colour) and carry that
    // frame's alpha, at keyframes, between them and at the end.
    let (_source, thumbd) = server("").await;
    for (video, decoder) in [
        ("alpha_vp9.webm", "libvpx-vp9"),
        ("alpha_vp8.webm", "libvpx"),
    ] {
        for n in [0u32, 1, 6, 24, 25, 26, 33, 49] {
            let t = n as f64 / 25.0;
            let (bytes, _) = thumbnail(&thumbd, video, "png", &format!("timeStamp={t}")).await;
            let (got, _) = decode(&bytes, "png");
            let want = oracle(video, Some(decoder), t);
            let (off, at) = worst(&alpha_of(&got), &alpha_of(&want));
            assert_eq!(off, 0, "{video} frame {n}: alpha off at {at}");
            // The colour is that of the frame FFmpeg's own VP8/VP9
            // decoder (which drops the alpha) shows: the same, exactly.
            let native = oracle(video, None, t);
            assert!(native.pixels().all(|p| p.0[3] == 255));
            let d = rgb_difference(&got, &native, &native, |_| true);
            assert!(
                d == 0.0,
                "{video} frame {n}: colour {d} from FFmpeg's decoder"
            );
        }
    }
    // The best frame keeps alpha too; storyboards and animated previews
    // ignore it (opaque pictures of the colour), as before.
    let (bytes, _) = thumbnail(&thumbd, "alpha_vp9.webm", "png", "timeStamp=auto").await;
    assert!(decode(&bytes, "png").1, "timeStamp=auto keeps alpha");
    for path in [
        "/v1/storyboard/demo/http/alpha_vp9.webm.png?tiles=4&width=80",
        "/v1/animated/demo/http/alpha_vp8.webm.webp?start=0&end=1&fps=5&width=80",
    ] {
        let (status, _, body) = get(&thumbd.url(path)).await;
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        if path.contains(".png") {
            assert!(!decode(&body, "png").1, "{path}: a sprite stays opaque");
        }
    }
}

/// Mean absolute difference per channel of the RGB of two pictures where
/// `select` picks the oracle's alpha.
fn rgb_difference(a: &RgbaImage, b: &RgbaImage, oracle: &RgbaImage, select: fn(u8) -> bool) -> f64 {
    let (mut total, mut n) = (0u64, 0u64);
    for ((p, q), o) in a.pixels().zip(b.pixels()).zip(oracle.pixels()) {
        if select(o.0[3]) {
            total += (0..3).map(|c| p.0[c].abs_diff(q.0[c]) as u64).sum::<u64>();
            n += 3;
        }
    }
    assert!(n > 0, "no pixel selected");
    total as f64 / n as f64
}

/// The oracle laid over `background` as a browser shows it.
fn over(oracle: &RgbaImage, background: [u8; 3]) -> RgbaImage {
    let mut out = oracle.clone();
    for p in out.pixels_mut() {
        let a = p.0[3] as u32;
        for (c, bg) in background.iter().enumerate() {
            p.0[c] = ((p.0[c] as u32 * a + *bg as u32 * (255 - a) + 127) / 255) as u8;
        }
        p.0[3] = 255;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jpeg_shows_the_background_where_the_frame_is_transparent() {
    for (extra, background) in [
        ("", [255, 255, 255]),
        (
            "[pictures]\njpeg_background = \"#2040A0\"\n",
            [0x20, 0x40, 0xa0],
        ),
    ] {
        let (_source, thumbd) = server(extra).await;
        for (video, decoder, _) in [VIDEOS[0], VIDEOS[3]] {
            let (t, _) = TIMES[1];
            let (bytes, kind) = thumbnail(&thumbd, video, "jpg", &format!("timeStamp={t}")).await;
            assert_eq!(kind, "image/jpeg");
            let (got, _) = decode(&bytes, "jpg");
            let want = oracle(video, decoder, t);
            // Transparent: the background, give or take JPEG's ringing.
            let clear = rgb_difference(&got, &over(&want, background), &want, |a| a == 0);
            assert!(
                clear < 4.0,
                "{video} {background:?}: {clear} off where clear"
            );
            let bg = got.get_pixel(150, 10).0;
            assert!(
                (0..3).all(|c| bg[c].abs_diff(background[c]) <= 4),
                "{video}: {bg:?}"
            );
            // Partly transparent (the band): the mix a browser shows.
            let mixed = rgb_difference(&got, &over(&want, background), &want, |a| {
                (1..255).contains(&a)
            });
            assert!(
                mixed < 8.0,
                "{video} {background:?}: {mixed} off where mixed"
            );
            // Opaque: the frame's colour (JPEG's 4:2:0 smears the red
            // disc's edge: 8.4 on average for the VP9 video).
            let solid = rgb_difference(&got, &want, &want, |a| a == 255);
            assert!(solid < 12.0, "{video}: {solid} off where opaque");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn padding_is_transparent_and_scaled_alpha_follows_the_picture() {
    let (_source, thumbd) = server("").await;
    let (t, n) = TIMES[2];
    for ext in ["png", "webp", "avif"] {
        // 160x96 padded into 200x200: 120 px tall at 200 wide, bars of 40.
        let q = format!("timeStamp={t}&width=200&height=200&fit=pad");
        let (bytes, _) = thumbnail(&thumbd, "alpha_vp9.webm", ext, &q).await;
        let (got, has_alpha) = decode(&bytes, ext);
        assert!(has_alpha);
        assert_eq!(got.dimensions(), (200, 200));
        for y in (0..38).chain(162..200) {
            for x in 0..200 {
                assert_eq!(got.get_pixel(x, y).0[3], 0, "{ext}: bar at ({x}, {y})");
            }
        }
        // The disc, scaled by 1.25, opaque in the picture between the bars.
        let (cx, cy) = ((20 + 3 * n) as f64 * 1.25, 40.0 + 36.0 * 1.25);
        assert_eq!(got.get_pixel(cx as u32, cy as u32).0[3], 255, "{ext}");
    }

    // Halved, the alpha is the frame's scaled as the CLI scales it
    // (bicubic; two scalers' rounding apart at the disc's edge).
    let (bytes, _) = thumbnail(
        &thumbd,
        "alpha_png.mov",
        "png",
        &format!("timeStamp={t}&width=80"),
    )
    .await;
    let (got, _) = decode(&bytes, "png");
    assert_eq!(got.dimensions(), (80, 48));
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-ss", &t.to_string(), "-i"])
        .arg(alpha_fixtures().join("alpha_png.mov"))
        .args(["-vf", "scale=80:48:flags=bicubic", "-frames:v", "1"])
        .args(["-f", "rawvideo", "-pix_fmt", "rgba", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let cli = RgbaImage::from_raw(80, 48, out.stdout).unwrap();
    let (got_alpha, cli_alpha) = (alpha_of(&got), alpha_of(&cli));
    let (off, _) = worst(&got_alpha, &cli_alpha);
    let mean = got_alpha
        .iter()
        .zip(&cli_alpha)
        .map(|(a, b)| a.abs_diff(*b) as f64)
        .sum::<f64>()
        / got_alpha.len() as f64;
    assert!(
        off <= 16 && mean < 1.0,
        "scaled alpha: worst {off}, mean {mean}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_without_alpha_stays_opaque() {
    let (_source, thumbd) = server("").await;
    let (t, _) = TIMES[1];
    for ext in ["png", "webp", "avif"] {
        let (bytes, _) =
            thumbnail(&thumbd, "opaque_vp9.webm", ext, &format!("timeStamp={t}")).await;
        let (got, has_alpha) = decode(&bytes, ext);
        assert!(!has_alpha, "opaque_vp9.{ext} has an alpha channel");
        assert!(got.pixels().all(|p| p.0[3] == 255));
    }
    let (bytes, _) = thumbnail(&thumbd, "opaque_vp9.webm", "png", &format!("timeStamp={t}")).await;
    let img = image::load_from_memory(&bytes).unwrap();
    assert_eq!(img.color(), ColorType::Rgb8, "RGB, as before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_with_alpha_are_counted_whole_in_the_frame_cache() {
    let (_source, thumbd) = server("").await;
    let frames = |m: &str| common::metric(m, "thumbd_cache_memory_bytes{cache=\"frames\"}");
    let before = frames(&thumbd.metrics().await);
    thumbnail(&thumbd, "alpha_prores.mov", "png", "timeStamp=0.3").await;
    let after = frames(&thumbd.metrics().await);
    // Four planes of 12-bit samples (2 bytes), 160x96 each at least:
    // more than the two bytes a pixel an opaque frame is counted as.
    let counted = after - before;
    assert!(counted >= (4 * 2 * W * H) as f64, "{counted} bytes");
}

/// Where a config with `background` as `pictures.jpeg_background` stops
/// thumbd: `check-config` and `serve` refuse it with the reason.
fn refused(background: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("thumbd.toml");
    std::fs::write(
        &config,
        format!("[pictures]\njpeg_background = \"{background}\"\n"),
    )
    .unwrap();
    let mut reasons = Vec::new();
    for args in [["check-config", "--config"], ["serve", "--config"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_thumbd"))
            .args(args)
            .arg(&config)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} accepted {background:?}");
        reasons.push(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    assert_eq!(reasons[0].lines().last(), reasons[1].lines().last());
    reasons.remove(0)
}

#[test]
fn a_jpeg_background_that_is_not_rrggbb_is_refused_at_start_up() {
    for bad in ["white", "#fff", "#12345g", "ffffff", "#ffffff00", ""] {
        let reason = refused(bad);
        assert!(
            reason.contains("pictures.jpeg_background") && reason.contains("#rrggbb"),
            "{bad:?}: {reason}"
        );
    }
    for good in ["#ffffff", "#2040a0", "#2040A0"] {
        let toml = format!("[pictures]\njpeg_background = \"{good}\"\n");
        thumbd::Config::from_toml(&toml, &PathBuf::from(".")).expect(good);
    }
}

/// AVIF decoding for the checks above, through the libavif thumbd links
/// (its hand-written bindings): the colour as RGB by the file's own
/// matrix, and the alpha item's plane.
mod avif {
    use image::RgbaImage;
    use thumbd::media::ffi::avif::sys;

    /// The picture as RGBA (opaque where it has no alpha item), and
    /// whether it has one.
    pub fn decode(bytes: &[u8]) -> (RgbaImage, bool) {
        // SAFETY: a decoder and image of this test's own, freed below;
        // the RGB buffer holds the whole picture at 3 bytes a pixel; the
        // alpha plane, when there is one, holds `height` rows of
        // `alpha_row_bytes` 8-bit samples (thumbd encodes 8-bit AVIF).
        unsafe {
            let decoder = sys::avifDecoderCreate();
            let image = sys::avifImageCreateEmpty();
            let result = sys::avifDecoderReadMemory(decoder, image, bytes.as_ptr(), bytes.len());
            assert_eq!(result, sys::RESULT_OK, "libavif could not decode it");
            let img = &*image;
            assert_eq!(img.depth, 8);
            let mut rgb: sys::RgbImage = std::mem::zeroed();
            sys::avifRGBImageSetDefaults(&mut rgb, image);
            rgb.format = sys::RGB_FORMAT_RGB;
            rgb.depth = 8;
            let (w, h) = (img.width as usize, img.height as usize);
            let mut pixels = vec![0u8; w * h * 3];
            rgb.pixels = pixels.as_mut_ptr();
            rgb.row_bytes = img.width * 3;
            assert_eq!(sys::avifImageYUVToRGB(image, &mut rgb), sys::RESULT_OK);
            let has_alpha = !img.alpha_plane.is_null();
            let mut out = RgbaImage::new(img.width, img.height);
            for (i, p) in out.pixels_mut().enumerate() {
                let (x, y) = (i % w, i / w);
                let a = if has_alpha {
                    *img.alpha_plane.add(y * img.alpha_row_bytes as usize + x)
                } else {
                    255
                };
                p.0 = [pixels[i * 3], pixels[i * 3 + 1], pixels[i * 3 + 2], a];
            }
            sys::avifImageDestroy(image);
            sys::avifDecoderDestroy(decoder);
            (out, has_alpha)
        }
    }
}
