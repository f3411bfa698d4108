//! Memory that renders must give back. Found by the media mutation
//! fuzzer's RSS (`make fuzz`): every packet a render read was leaked
//! (a reused packet that `av_read_frame` refilled without releasing it),
//! about as many bytes as the packets from the keyframe to the frame.

mod common;

use std::time::{Duration, Instant};

use thumbd::media::{Format, Limits, RenderSpec, TimeSpec};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap()
}

#[test]
fn renders_do_not_keep_what_they_read() {
    common::large_fixture();
    thumbd::init_ffmpeg();
    let path = common::fixtures().join("large.mp4");
    // Mid-GOP in a 6 Mb/s 1080p stream: ~4 MB of packets per render.
    let render = || {
        let spec = RenderSpec {
            format: Format::Webp,
            width: Some(64),
            height: None,
            fit: None,
            quality: None,
            time: TimeSpec::At(35_000_000),
            snap: false,
        };
        let limits = Limits {
            max_frame_pixels: 40_000_000,
            max_source_bytes: 512 * 1024 * 1024,
            deadline: Instant::now() + Duration::from_secs(60),
            decoder_threads: 1,
            best_frame_scan_frames: thumbd::media::bestframe::DEFAULT_SCAN_FRAMES,
        };
        let file = std::fs::File::open(&path).unwrap();
        thumbd::media::render(Box::new(file), &spec, &limits).expect("renders");
    };
    for _ in 0..3 {
        render();
    }
    let before = rss_kib();
    for _ in 0..15 {
        render();
    }
    let grown_mib = (rss_kib().saturating_sub(before)) / 1024;
    assert!(
        grown_mib < 24,
        "RSS grew {grown_mib} MiB over 15 renders (the leak made it ~60)"
    );
}
