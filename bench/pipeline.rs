//! Micro-benchmarks of what dominates a cold render: decoding a frame
//! (keyframe and mid-GOP), scaling and converting it, and encoding it.
//! `cargo bench --bench pipeline`; the side-by-side comparisons with the
//! ffmpeg CLI and nginx are in bench/bench.py.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use thumbd::media::decode::decode_frame;
use thumbd::media::picture::RgbImage;
use thumbd::media::{self, encode, Format, Limits, RenderSpec, TimeSpec};

/// The committed 640x360 H.264 sample, 10 s with a keyframe every 2 s.
fn sample() -> std::fs::File {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/demo.mp4");
    std::fs::File::open(path).expect("samples/demo.mp4")
}

fn limits() -> Limits {
    Limits {
        max_frame_pixels: 40_000_000,
        max_source_bytes: 1 << 30,
        deadline: Instant::now() + Duration::from_secs(3600),
        decoder_threads: 1,
    }
}

fn spec(width: u32, format: Format) -> RenderSpec {
    RenderSpec {
        format,
        width: Some(width),
        height: None,
        fit: None,
        quality: format.is_lossy().then_some(80),
        time: TimeSpec::At(4_000_000),
    }
}

fn decode(c: &mut Criterion) {
    thumbd::init_ffmpeg();
    let mut g = c.benchmark_group("decode");
    g.bench_function("keyframe (4 s)", |b| {
        b.iter(|| decode_frame(Box::new(sample()), TimeSpec::At(4_000_000), &limits()).unwrap())
    });
    g.bench_function("mid-GOP (5.9 s, 47 frames after the keyframe)", |b| {
        b.iter(|| decode_frame(Box::new(sample()), TimeSpec::At(5_900_000), &limits()).unwrap())
    });
    g.finish();
}

fn scale_and_encode(c: &mut Criterion) {
    thumbd::init_ffmpeg();
    let frame = decode_frame(Box::new(sample()), TimeSpec::At(4_000_000), &limits()).unwrap();
    let mut g = c.benchmark_group("finish");
    for width in [320, 1280] {
        g.bench_function(format!("scale+encode webp {width}"), |b| {
            b.iter(|| media::finish(black_box(&frame), &spec(width, Format::Webp)).unwrap())
        });
    }
    g.finish();

    let rgb = media::finish(&frame, &spec(1280, Format::Png)).unwrap();
    let img = image_from_png(&rgb.bytes);
    let mut g = c.benchmark_group("encode 1280x720");
    for (name, format) in [
        ("webp", Format::Webp),
        ("jpeg", Format::Jpeg),
        ("png", Format::Png),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| encode::encode(black_box(&img), format, Some(80)).unwrap())
        });
    }
    g.finish();
}

fn image_from_png(bytes: &[u8]) -> RgbImage {
    let decoded = image::load_from_memory(bytes).unwrap().to_rgb8();
    RgbImage {
        width: decoded.width(),
        height: decoded.height(),
        data: decoded.into_raw(),
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(3));
    targets = decode, scale_and_encode
}
criterion_main!(benches);
