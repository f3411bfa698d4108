//! Micro-benchmarks of what dominates a cold render: decoding a frame
//! (keyframe and mid-GOP), scaling and converting it, and encoding it.
//! `cargo bench --bench pipeline`; the side-by-side comparisons with the
//! ffmpeg CLI and nginx are in bench/bench.py.
//!
//! Times are the CPU time of the benchmarking thread, not wall time: every
//! step here runs on the calling thread (one decoder thread), and on a
//! shared machine the wall clock also counts the time other tenants hold
//! the core.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, Criterion};
use thumbd::media::decode::decode_frame;
use thumbd::media::picture::{Picture, RgbImage};
use thumbd::media::{self, encode, Format, Limits, RenderSpec, TimeSpec};

/// CPU time of the calling thread.
struct ThreadCpu;

fn thread_cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(ret, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_now()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_now() - start
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WallTime.formatter()
    }
}

/// The committed 640x360 H.264 sample, 10 s with a keyframe every 2 s.
fn sample() -> std::fs::File {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/demo.mp4");
    std::fs::File::open(path).expect("samples/demo.mp4")
}

/// A 1080p H.264 clip (a srcset's largest widths are scaled from frames
/// like these), generated once into target/ with the ffmpeg CLI.
fn hd_sample() -> std::fs::File {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-hd.mp4");
    if !path.exists() {
        let ok = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc2=s=1920x1080:r=25:d=1")
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            ])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "the ffmpeg CLI could not make {}", path.display());
    }
    std::fs::File::open(path).expect("the 1080p clip")
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

fn decode(c: &mut Criterion<ThreadCpu>) {
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

fn scale_and_encode(c: &mut Criterion<ThreadCpu>) {
    thumbd::init_ffmpeg();
    let frame = decode_frame(Box::new(sample()), TimeSpec::At(4_000_000), &limits()).unwrap();
    let mut g = c.benchmark_group("finish");
    for width in [320, 1280] {
        g.bench_function(format!("scale+encode webp {width}"), |b| {
            b.iter(|| media::finish(black_box(&frame), &spec(width, Format::Webp)).unwrap())
        });
    }
    let hd = decode_frame(Box::new(hd_sample()), TimeSpec::At(0), &limits()).unwrap();
    for (width, format) in [
        (320, Format::Webp),
        (1280, Format::Webp),
        (1280, Format::Jpeg),
    ] {
        g.bench_function(
            format!("1080p frame: scale+encode {} {width}", format.ext()),
            |b| b.iter(|| media::finish(black_box(&hd), &spec(width, format)).unwrap()),
        );
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
            b.iter(|| encode::encode(black_box(img.clone()), format, Some(80)).unwrap())
        });
    }
    g.finish();
}

fn image_from_png(bytes: &[u8]) -> Picture {
    let decoded = image::load_from_memory(bytes).unwrap().to_rgb8();
    Picture::Rgb(RgbImage {
        width: decoded.width(),
        height: decoded.height(),
        data: decoded.into_raw(),
    })
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .with_measurement(ThreadCpu)
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    targets = decode, scale_and_encode
}
criterion_main!(benches);
