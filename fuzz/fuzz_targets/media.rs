//! The whole media pipeline over any bytes, with the normal limits: open
//! (MP4 box walk, FFmpeg's demuxers behind thumbd's allow-lists), find the
//! frame (MP4 index, Matroska cue ranges), decode, scale, encode. An error
//! is fine; a panic, a hang past the deadline or a crash is not.
#![no_main]

use std::io::Cursor;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use thumbd::media::{Format, Limits, RenderSpec, TimeSpec};

fuzz_target!(|data: &[u8]| {
    thumbd::init_ffmpeg();
    // The bytes are the file as they are (so the fixtures seed it); the
    // time comes from its length: the start, inside, or past the end.
    let time_ms = [0u64, 1000, 2500, 999_000][data.len() % 4];
    let data = data.to_vec();
    let limits = Limits {
        max_frame_pixels: 40_000_000,
        max_source_bytes: 512 * 1024 * 1024,
        deadline: Instant::now() + Duration::from_secs(20),
        decoder_threads: 1,
        best_frame_scan_frames: thumbd::media::bestframe::DEFAULT_SCAN_FRAMES,
    };
    let spec = RenderSpec {
        format: Format::Webp,
        width: Some(64),
        height: None,
        fit: None,
        quality: Some(50),
        time: TimeSpec::At(time_ms * 1000),
        snap: false,
    };
    let started = Instant::now();
    let _ = thumbd::media::render(Box::new(Cursor::new(data)), &spec, &limits);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "past the deadline"
    );
});
