//! Open GOPs: keyframes that are I-frames but not IDR (H.264) or CRA
//! pictures (HEVC), whose leading B-frames (shown before the keyframe,
//! decoded after it) refer to the GOP before, as broadcast MPEG-TS and some
//! cameras and encoders write them. Every moment of such a video must show
//! the frame a player shows, decoding from the start: after a seek to one
//! of these keyframes FFmpeg's H.264 decoder dropped the frames it had
//! decoded before it output the keyframe (frame 30 was shown for 32 and
//! 34). The pipeline is driven directly, as the CLI does, with and without
//! frame threads.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{fixtures, PlayerFrames};
use thumbd::media::decode::{decode_frame, DecodedFrame};
use thumbd::media::{Limits, TimeSpec};

/// Fixtures of 93 frames at 25 fps, keyframes every 30 (tests/fixtures/generate.sh).
const FILES: &[&str] = &[
    "h264_open_gop.mkv",
    "h264_open_gop.ts",
    "h264_open_gop.mp4",
    "hevc_open_gop.mkv",
    "hevc_open_gop.ts",
    "hevc_open_gop.mp4",
];
const FRAMES: usize = 93;

fn limits(decoder_threads: usize) -> Limits {
    Limits {
        max_frame_pixels: 40_000_000,
        max_source_bytes: 1 << 30,
        deadline: Instant::now() + Duration::from_secs(30),
        decoder_threads,
        best_frame_scan_frames: thumbd::media::bestframe::DEFAULT_SCAN_FRAMES,
    }
}

/// The frame number the pattern in a decoded frame spells: the luma of
/// each bar's middle, white = 1 (see tests/fixtures/generate.sh).
fn pattern(decoded: &DecodedFrame) -> u32 {
    let frame = &decoded.frame;
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (luma, stride) = (frame.data(0), frame.stride(0));
    (0..10).fold(0, |n, bar| {
        let x = (bar * 2 + 1) * w / 20;
        n * 2 + u32::from(luma[h * 3 / 8 * stride + x] > 100)
    })
}

/// Every video packet as (presentation time in seconds from the video's
/// first, key), in decoding order, as ffprobe reads them.
fn packets(file: &Path) -> Vec<(f64, bool)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("run ffprobe");
    let packets: Vec<(f64, bool)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (pts, flags) = line.split_once(',')?;
            Some((pts.parse().ok()?, flags.starts_with('K')))
        })
        .collect();
    // (ffprobe's stream start_time comes twice for MPEG-TS, in its program
    // and in its streams.)
    let start = packets.iter().map(|p| p.0).fold(f64::MAX, f64::min);
    packets
        .iter()
        .map(|&(pts, key)| (pts - start, key))
        .collect()
}

/// The oracle: what a player decoding from the start shows is frame `n`
/// from `n / 25` s (all 93 frames, leading B-frames included, none
/// dropped), and every keyframe after the first opens a GOP: a frame
/// decoded after it is shown before it. Without those the other tests
/// could not fail.
#[test]
fn the_fixtures_have_open_gops_a_player_shows_whole() {
    thumbd::init_ffmpeg();
    for file in FILES {
        let path = fixtures().join(file);
        let player = PlayerFrames::of(&path, 160, 96);
        assert_eq!(player.times.len(), FRAMES, "{file}: frames decoded");
        for (i, time) in player.times.iter().enumerate() {
            assert!(
                (time - i as f64 / 25.0).abs() < 1e-3,
                "{file}: frame {i} at {time}"
            );
            assert_eq!(
                player.pattern_frame(i),
                i as u32,
                "{file}: frame {i}'s pattern"
            );
        }
        let packets = packets(&path);
        let keys: Vec<usize> = (0..packets.len()).filter(|&i| packets[i].1).collect();
        assert_eq!(keys.len(), 4, "{file}: keyframes {keys:?}");
        for &k in &keys[1..] {
            let leading = packets[k + 1..].iter().take_while(|p| p.0 < packets[k].0);
            assert!(
                leading.count() > 0,
                "{file}: nothing leads the keyframe at {}",
                packets[k].0
            );
        }
    }
}

#[test]
fn every_moment_shows_the_players_frame() {
    thumbd::init_ffmpeg();
    let mut failures = Vec::new();
    for file in FILES {
        for threads in [0, 1] {
            // Each frame's start and a moment inside it (the leading B-frames
            // and the frames just before and after each keyframe among
            // them), and a time past the end: the last frame.
            let moments =
                (0..FRAMES as u64).flat_map(|k| [(k * 40_000, k), (k * 40_000 + 20_000, k)]);
            for (us, expected) in moments.chain([(10_000_000, FRAMES as u64 - 1)]) {
                let reader = Box::new(std::fs::File::open(fixtures().join(file)).unwrap());
                match decode_frame(reader, TimeSpec::At(us), &limits(threads)) {
                    Ok(frame) => {
                        let shown = pattern(&frame);
                        let at = expected as f64 / 25.0;
                        if u64::from(shown) != expected || (frame.time_secs - at).abs() > 1e-3 {
                            failures.push(format!(
                                "{file} ({threads} threads) at {us} µs: frame {expected} from {at} s; got frame {shown} at {} s",
                                frame.time_secs
                            ));
                        }
                    }
                    Err(e) => failures.push(format!("{file} at {us} µs: {e}")),
                }
            }
        }
    }
    common::assert_no_failures(&failures);
}

/// `snap=keyframe` shows the keyframe at or before the time, its own
/// picture at its own time, open GOP or not.
#[test]
fn snapping_shows_the_keyframe_before() {
    thumbd::init_ffmpeg();
    let mut failures = Vec::new();
    for file in FILES {
        let path = fixtures().join(file);
        let keys: Vec<u64> = packets(&path)
            .iter()
            .filter(|p| p.1)
            .map(|p| (p.0 * 25.0).round() as u64)
            .collect();
        for k in [0, 29, 30, 31, 32, 59, 60, 62, 89, 90, 92] {
            let expected = *keys.iter().filter(|&&key| key <= k).max().unwrap();
            let reader = Box::new(std::fs::File::open(&path).unwrap());
            let time = TimeSpec::Keyframe(k * 40_000 + 20_000);
            match decode_frame(reader, time, &limits(0)) {
                Ok(frame) if u64::from(pattern(&frame)) == expected => {}
                Ok(frame) => failures.push(format!(
                    "{file} snapped at frame {k}: keyframe {expected}; got frame {} at {} s",
                    pattern(&frame),
                    frame.time_secs
                )),
                Err(e) => failures.push(format!("{file} snapped at frame {k}: {e}")),
            }
        }
    }
    common::assert_no_failures(&failures);
}
