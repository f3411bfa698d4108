//! The right frame, shown as a player shows it: every container and codec,
//! read over HTTP range requests from a real source server, through the
//! real thumbd server. Each fixture's frames carry their own number, so a
//! thumbnail says exactly which frame it is.

mod common;

use common::{ffmpeg_cli_frame, fixtures, get, read_pattern, SourceServer, Thumbd};

/// Fixtures of 4 s at 25 fps (frames 0-99), with their displayed size.
const FORMATS: &[(&str, (u32, u32))] = &[
    ("h264_faststart.mp4", (160, 96)),
    ("h264_moov_end.mp4", (160, 96)),
    ("h264.mov", (160, 96)),
    ("h264_offset.ts", (160, 96)),
    ("vp9.webm", (160, 96)),
    ("hevc.mkv", (160, 96)),
    ("hevc10.mp4", (160, 96)),
    ("av1.mp4", (160, 96)),
    ("mpeg2.mpg", (160, 96)),
    ("mpeg4.avi", (160, 96)),
    // The codec says 12:11 (H.263's CIF-family default), the container
    // 1:1; the container wins, as in players.
    ("h263.3gp", (176, 144)),
    ("flv1.flv", (160, 96)),
    ("prores.mov", (160, 96)),
    ("png.mov", (160, 96)),
    ("rotated.mp4", (160, 96)),
    ("anamorphic.mp4", (320, 96)),
    ("odd.webm", (161, 91)),
    ("hdr_pq.mp4", (160, 96)),
    ("hdr_hlg.mp4", (160, 96)),
    ("theora.ogv", (160, 96)),
    ("divx3.avi", (160, 96)),
    ("msmpeg4v2.avi", (160, 96)),
    ("cinepak.avi", (160, 96)),
    ("wmv1.asf", (160, 96)),
    ("wmv2.wmv", (160, 96)),
    // PAL DV, 720x576 shown 4:3.
    ("dv.dv", (768, 576)),
    ("mpeg2.mxf", (160, 96)),
    ("mjpeg.avi", (160, 96)),
    ("mjpeg.mov", (160, 96)),
    ("mpeg4_ps.mpg", (160, 96)),
    // Fragmented, the timeline starting at 66 s: times count from the
    // first frame, as in every other container.
    ("frag_late.mp4", (160, 96)),
    ("frag_late_sidx.mp4", (160, 96)),
];

/// Durations FFmpeg's tools report wrongly: for a fragmented MP4, ffprobe
/// gives where the timeline ends (70 s for these 4 s starting at 66 s).
fn duration_of(file: &str) -> f64 {
    if file.starts_with("frag_") {
        4.0
    } else {
        common::ffprobe_duration(&fixtures().join(file))
    }
}

/// (requested time, frame shown): frame n is shown from n/25 s. `None` is
/// the middle, checked separately against the duration FFmpeg reports.
const TIMES: &[(Option<f64>, u32)] = &[
    (Some(0.0), 0),
    (Some(1.5), 37),   // mid-GOP: keyframes are at 0, 1, 2, 3 s
    (Some(3.0), 75),   // exactly on a frame's start
    (Some(2.999), 74), // just before it
    (None, 0),
    (Some(100.0), 99), // past the end: the last frame
];

/// MPEG-PS packets often carry no PTS; FFmpeg's best-effort timestamps can
/// then be a frame off, so reported times are checked to one frame.
const TIME_TOLERANCE: f64 = 0.045;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_shows_the_frame_a_player_shows() {
    let source = SourceServer::start(fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    let mut failures = Vec::new();
    for (file, size) in FORMATS {
        // The middle of the duration FFmpeg reports (MPEG-PS durations are
        // estimates: 3.24 s for this 4 s file, as ffprobe and players say).
        let middle = ((duration_of(file) / 2.0 * 25.0).floor() as u32).min(99);
        for (time, expected) in TIMES {
            let expected = &if time.is_none() { middle } else { *expected };
            let query = time.map_or(String::new(), |t| format!("?timeStamp={t}"));
            let url = thumbd.url(&format!("/v1/thumbnail/demo/http/{file}.png{query}"));
            let (status, headers, body) = get(&url).await;
            if status != 200 {
                failures.push(format!(
                    "{file} at {time:?}: status {status} {}",
                    String::from_utf8_lossy(&body)
                ));
                continue;
            }
            let r = read_pattern(&body);
            if r.frame != *expected || !r.upright || (r.width, r.height) != *size {
                failures.push(format!(
                    "{file} at {time:?}: expected frame {expected} upright at {size:?}, got {r:?}"
                ));
            }
            // The time of the frame shown, from the start of the video.
            let shown: f64 = headers["x-thumbnail-time"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            if (shown - *expected as f64 / 25.0).abs() > TIME_TOLERANCE {
                failures.push(format!(
                    "{file} at {time:?}: X-Thumbnail-Time {shown}, frame {expected} starts at {}",
                    *expected as f64 / 25.0
                ));
            }
        }
        // WebP of SDR frames is made from YUV planes (turned, scaled and
        // re-matrixed as planes), not from RGB: the same frame, upright.
        let url = thumbd.url(&format!(
            "/v1/thumbnail/demo/http/{file}.webp?timeStamp=1.5&quality=95"
        ));
        let (status, _, body) = get(&url).await;
        let r = (status == 200).then(|| read_pattern(&body));
        if !r
            .as_ref()
            .is_some_and(|r| r.frame == 37 && r.upright && (r.width, r.height) == *size)
        {
            failures.push(format!(
                "{file} as WebP at 1.5: expected frame 37 upright at {size:?}, got status {status}, {r:?}"
            ));
        }
    }
    common::assert_no_failures(&failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_frame_as_the_ffmpeg_cli() {
    // An independent reference: the CLI's accurate seek, on a few formats.
    // The CLI outputs the first frame starting at or after -ss, while a
    // player (and thumbd) shows the frame on screen at that moment; the two
    // agree at the exact start of a frame, so those are the times compared.
    let thumbd = Thumbd::start(&common::config(None, "")).await;
    // (Not MPEG-TS: the CLI's own seek overshoots there, showing frame 25 for
    // 0.52 s; thumbd seeks again from further back, checked above.)
    for file in [
        "h264_moov_end.mp4",
        "vp9.webm",
        "mpeg4.avi",
        "rotated.mp4",
        "prores.mov",
        "hevc.mkv",
    ] {
        for t in [0.52, 1.72, 3.32] {
            let (status, _, body) = get(&thumbd.url(&format!(
                "/v1/thumbnail/demo/files/{file}.png?timeStamp={t}"
            )))
            .await;
            assert_eq!(status, 200, "{file} at {t}");
            let ours = read_pattern(&body);
            let cli = read_pattern(&ffmpeg_cli_frame(&fixtures().join(file), t));
            assert_eq!(
                (ours.frame, ours.upright),
                (cli.frame, cli.upright),
                "{file} at {t}"
            );
            assert_eq!(
                (ours.width, ours.height),
                (cli.width, cli.height),
                "{file} at {t}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_containers_pixel_aspect_ratio_wins() {
    // As players and av_guess_sample_aspect_ratio decide: the container's
    // sample aspect ratio when it has one, else the codec's. The CLI's
    // `scale=iw*sar:ih` shows the size a player does.
    let thumbd = Thumbd::start(&common::config(None, "")).await;
    let mut failures = Vec::new();
    for (file, size) in [
        // Container 1:1, codec 12:11.
        ("h263.3gp", (176, 144)),
        // No container field (MPEG-TS), codec 4:3.
        ("sar_codec.ts", (213, 96)),
        // Container (MP4 pasp) 2:1, codec 4:3.
        ("sar_both.mp4", (320, 96)),
    ] {
        let cli = read_pattern(&common::ffmpeg_cli_frame_with(
            &fixtures().join(file),
            1.0,
            "scale=iw*sar:ih",
        ));
        assert_eq!((cli.width, cli.height), size, "{file}: the CLI's size");
        let (status, _, body) =
            get(&thumbd.url(&format!("/v1/thumbnail/demo/files/{file}.png?timeStamp=1"))).await;
        assert_eq!(status, 200, "{file}");
        let r = read_pattern(&body);
        if (r.width, r.height) != size || r.frame != 25 || !r.upright {
            failures.push(format!(
                "{file}: expected frame 25 upright at {size:?}, got {r:?}"
            ));
        }
    }
    common::assert_no_failures(&failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hdr_is_tone_mapped_not_washed_out() {
    // The fixtures' white bars are HDR reference white (203 nits). Converted
    // naively they come out grey (about 148 for PQ, 191 for HLG).
    let thumbd = Thumbd::start(&common::config(None, "")).await;
    for file in ["hdr_pq.mp4", "hdr_hlg.mp4"] {
        let (status, _, body) =
            get(&thumbd.url(&format!("/v1/thumbnail/demo/files/{file}.png?timeStamp=2"))).await;
        assert_eq!(status, 200);
        let r = read_pattern(&body);
        assert_eq!(r.frame, 50);
        assert!(
            r.white >= 225,
            "{file}: reference white came out as {}",
            r.white
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variable_frame_rate() {
    // Frames 0-24 every 40 ms, then one every 200 ms from 1 s. At 2.19 s the
    // B-frame shown has a packet duration (a decoding-time step) shorter
    // than the time it is on screen, so skipping non-reference frames drops
    // it at first: thumbd must notice and decode again without skipping.
    let thumbd = Thumbd::start(&common::config(None, "")).await;
    for (t, expected) in [(0.5, 12), (1.1, 25), (2.0, 30), (2.19, 30), (2.21, 31)] {
        let (status, _, body) = get(&thumbd.url(&format!(
            "/v1/thumbnail/demo/files/vfr.mp4.png?timeStamp={t}"
        )))
        .await;
        assert_eq!(status, 200);
        assert_eq!(read_pattern(&body).frame, expected, "at {t}");
    }
}

/// The mean colour of each 8x8 block. WebP keeps chroma at half
/// resolution and decoders interpolate it (libwebp's fancy upsampling, as
/// browsers do), which smears 1-pixel colour edges such as testsrc2's
/// whatever the encoder did; a wrong matrix or range shifts the colour of
/// every block and still shows.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colours_follow_the_tagged_matrix() {
    // Colourful pictures compared with the CLI converting them as tagged,
    // and with a misreading (the other matrix, the other range), which must
    // be far off. PNG goes through RGB; WebP of limited-range YUV stays YUV,
    // re-matrixed to BT.601 (what WebP decoders assume), and loses a little
    // more to lossy coding; full-range and RGB sources go through RGB.
    let thumbd = Thumbd::start(&common::config(None, "")).await;
    let cases = [
        (
            "colour.mp4",
            "in_color_matrix=bt709",
            Some("in_color_matrix=bt601"),
        ),
        (
            "colour_full.mp4",
            "in_color_matrix=bt709:in_range=full",
            Some("in_color_matrix=bt709:in_range=limited"),
        ),
        ("colour_rgb.mov", "in_range=full", None),
    ];
    let mut failures = Vec::new();
    for (file, right_vf, wrong_vf) in cases {
        let path = fixtures().join(file);
        let reference = |vf: &str| {
            let vf = format!("scale={vf}:flags=bicubic+accurate_rnd+full_chroma_int");
            image::load_from_memory(&common::ffmpeg_cli_frame_with(&path, 1.0, &vf))
                .unwrap()
                .to_rgb8()
        };
        let right_ref = reference(right_vf);
        let wrong_ref = wrong_vf.map(reference);
        for (format, min_right) in [("png", 40.0), ("webp", 33.0)] {
            let compare: fn(&image::RgbImage) -> image::RgbImage = if format == "webp" {
                block_colours
            } else {
                image::RgbImage::clone
            };
            let (status, _, body) = get(&thumbd.url(&format!(
                "/v1/thumbnail/demo/files/{file}.{format}?timeStamp=1&quality=100"
            )))
            .await;
            assert_eq!(status, 200, "{file} as {format}");
            let ours = compare(&image::load_from_memory(&body).unwrap().to_rgb8());
            let right = psnr(&ours, &compare(&right_ref));
            if right <= min_right {
                failures.push(format!(
                    "{file} as {format}: PSNR against the CLI's {right_vf} is {right:.1} dB"
                ));
            }
            if let Some(wrong_ref) = &wrong_ref {
                let wrong = psnr(&ours, &compare(wrong_ref));
                if wrong >= right - 6.0 || wrong >= min_right {
                    failures.push(format!(
                        "{file} as {format}: PSNR against the misreading is {wrong:.1} dB \
                         ({right:.1} dB as tagged): the test cannot tell them apart"
                    ));
                }
            }
        }
    }
    common::assert_no_failures(&failures);
}

/// Mean saturation (max - min channel) of a picture.
fn saturation(img: &image::RgbImage) -> f64 {
    let sum: f64 = img
        .pixels()
        .map(|p| (p.0.iter().max().unwrap() - p.0.iter().min().unwrap()) as f64)
        .sum();
    sum / (img.width() * img.height()) as f64
}

/// Mean difference `a - b` of each channel, in 8-bit levels.
fn mean_difference(a: &image::RgbImage, b: &image::RgbImage) -> [f64; 3] {
    let mut sum = [0.0; 3];
    for (p, q) in a.pixels().zip(b.pixels()) {
        (0..3).for_each(|c| sum[c] += p[c] as f64 - q[c] as f64);
    }
    sum.map(|v| v / (a.width() * a.height()) as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hdr_looks_like_its_sdr_master() {
    // PQ and HLG made from an SDR master as BT.2408 says (its white at
    // reference white): tone-mapped, colours at or below reference white
    // must come back as the master shows them. Washed out (lifted,
    // desaturated) or darker shows in the block colours, in the mean level
    // and in the saturation. Blocks (8x8 means), because 4:2:0 chroma in
    // PQ or HLG smears testsrc2's sharp colour edges whatever the tone
    // mapping does: zscale's own conversion back to SDR scores 35.0 dB on
    // the PQ file; the sRGB curve and a knee at 0.75 scored 28.5, 7 to 8
    // levels darker.
    let thumbd = Thumbd::start(&common::config(None, "")).await;
    let master =
        image::load_from_memory(&ffmpeg_cli_frame(&fixtures().join("master_sdr.mov"), 1.0))
            .unwrap()
            .to_rgb8();
    let mut failures = Vec::new();
    for file in ["master_pq.mp4", "master_hlg.mp4", "master_hlg_zimg.mp4"] {
        let (status, _, body) =
            get(&thumbd.url(&format!("/v1/thumbnail/demo/files/{file}.png?timeStamp=1"))).await;
        assert_eq!(status, 200, "{file}");
        let ours = image::load_from_memory(&body).unwrap().to_rgb8();
        let psnr = psnr(&block_colours(&ours), &block_colours(&master));
        let diff = mean_difference(&ours, &master);
        let saturation = saturation(&ours) / saturation(&master);
        let measured = format!(
            "block PSNR against the master {psnr:.1} dB, mean difference {diff:.1?}, \
             saturation {saturation:.3} of the master's"
        );
        eprintln!("{file}: {measured}");
        if file == "master_hlg_zimg.mp4" {
            // zscale (zimg) applies HLG's OOTF to each channel, not to
            // luminance as BT.2100 does: its HLG is less saturated than
            // the master, and a BT.2100 display (and thumbd) shows that.
            if saturation >= 0.9 {
                failures.push(format!(
                    "{file}: {measured}: the test cannot tell a per-channel OOTF"
                ));
            }
        } else if psnr < 32.0
            || diff.iter().any(|d| d.abs() > 2.0)
            || !(0.95..=1.05).contains(&saturation)
        {
            failures.push(format!("{file}: {measured}"));
        }
    }
    common::assert_no_failures(&failures);
}

/// The pipeline driven directly, without a server, as the CLI does.
mod pipeline {
    use std::time::{Duration, Instant};

    use thumbd::media::{self, Format, Limits, MediaError, RenderSpec, TimeSpec};

    use super::common::{fixtures, read_pattern};

    fn spec(time_us: u64) -> RenderSpec {
        RenderSpec {
            format: Format::Png,
            width: Some(80),
            height: None,
            fit: None,
            quality: None,
            time: TimeSpec::At(time_us),
            snap: false,
        }
    }

    fn limits() -> Limits {
        Limits {
            max_frame_pixels: 40_000_000,
            max_source_bytes: 1 << 30,
            deadline: Instant::now() + Duration::from_secs(30),
            decoder_threads: 0,
            best_frame_scan_frames: thumbd::media::bestframe::DEFAULT_SCAN_FRAMES,
        }
    }

    fn open(file: &str) -> Box<dyn thumbd::source::SourceRead> {
        Box::new(std::fs::File::open(fixtures().join(file)).unwrap())
    }

    /// Found by the media mutation fuzzer: a fragmented MP4 with flipped
    /// bits whose fragments claim a duration of days and whose frames the
    /// seek never finds. Its middle is answered (or refused) after a few
    /// dozen passes; stepping back a second a pass, it took the whole
    /// deadline.
    #[test]
    fn a_damaged_file_claiming_days_is_answered_in_a_few_passes() {
        thumbd::init_ffmpeg();
        // And an AVI with flipped bits whose time base is 41 s a tick: a
        // second's step back was 0 ticks, the same pass again and again.
        for file in ["fragments_claiming_days.mp4", "avi_ticks_of_41_seconds.avi"] {
            let path = format!(
                "{}/tests/fixtures/regress/{file}",
                env!("CARGO_MANIFEST_DIR")
            );
            let reader = Box::new(std::fs::File::open(path).unwrap());
            match media::decode::decode_frame(reader, TimeSpec::Middle, &limits()) {
                Ok(frame) => assert!(
                    frame.packets_decoded < 10_000,
                    "{file}: {} packets decoded over every pass",
                    frame.packets_decoded
                ),
                Err(MediaError::Timeout) => panic!("{file}: the seek ran out the deadline"),
                Err(_) => {}
            }
        }
    }

    #[test]
    fn renders_the_frame_from_a_file() {
        thumbd::init_ffmpeg();
        let r = media::render(open("hevc10.mp4"), &spec(2_600_000), &limits()).unwrap();
        assert_eq!((r.width, r.height), (80, 48));
        assert_eq!(read_pattern(&r.bytes).frame, 65);
        assert!((r.time_secs - 2.6).abs() < 1e-6);
    }

    #[test]
    fn a_spent_deadline_stops_the_render() {
        thumbd::init_ffmpeg();
        let limits = Limits {
            deadline: Instant::now(),
            ..limits()
        };
        let err = media::render(open("h264_faststart.mp4"), &spec(1_000_000), &limits).unwrap_err();
        assert!(matches!(err, MediaError::Timeout), "{err:?}");
    }

    #[test]
    fn the_byte_budget_is_enforced() {
        thumbd::init_ffmpeg();
        let limits = Limits {
            max_source_bytes: 2000,
            ..limits()
        };
        let err = media::render(open("h264_faststart.mp4"), &spec(3_000_000), &limits).unwrap_err();
        assert!(
            matches!(err, MediaError::SourceTooLarge { limit: 2000 }),
            "{err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_b_frames_show_the_players_frame_at_its_time() {
    // Xvid's packed bitstream in AVI: no presentation times stored, so a
    // player shows each frame at FFmpeg's best-effort time. Skipping
    // B-frames on the way to the target moved those guesses by a frame
    // (the picture of one frame under the time of another); every frame's
    // start and a moment inside it must show the player's picture and time.
    let file = fixtures().join("xvid_packed.avi");
    let player = common::PlayerFrames::of(&file, 160, 96);
    assert!(player.times.len() >= 95, "{} frames", player.times.len());
    let source = SourceServer::start(fixtures()).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    let mut failures = Vec::new();
    for k in 0..100 {
        for t in [k as f64 / 25.0, k as f64 / 25.0 + 0.021] {
            let shown = player.at(t);
            let expected = player.pattern_frame(shown);
            let (status, headers, body) = get(&thumbd.url(&format!(
                "/v1/thumbnail/demo/http/xvid_packed.avi.png?timeStamp={t:.3}"
            )))
            .await;
            assert_eq!(status, 200, "at {t}");
            let frame = read_pattern(&body).frame;
            let time: f64 = headers["x-thumbnail-time"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            if frame != expected || (time - player.times[shown]).abs() > 0.0015 {
                failures.push(format!(
                    "at {t:.3}: the player shows frame {expected} at {:.3}; thumbd frame {frame} at {time}",
                    player.times[shown]
                ));
            }
        }
    }
    common::assert_no_failures(&failures);
}
