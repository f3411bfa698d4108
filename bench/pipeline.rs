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
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use thumbd::media::animate::{self, AnimFrame};
use thumbd::media::decode::{decode_frame, DecodedFrame};
use thumbd::media::picture::{self, Picture, RgbImage, YuvImage};
use thumbd::media::{self, encode, geometry, Format, Limits, RenderSpec, TimeSpec};

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

/// A detailed 1080p picture (fractal edges and fine structure over smooth
/// gradients, with grain), one losslessly coded H.264 frame generated once
/// into target/ with the ffmpeg CLI: the samples' flat test patterns
/// flatter any codec, and this is nearer a frame of real video.
fn detailed_sample() -> std::fs::File {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-detailed.mp4");
    if !path.exists() {
        let ok = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(
                "mandelbrot=s=1920x1080:start_scale=0.02:start_x=-0.7435:start_y=0.1314:\
                 maxiter=400:inner=period",
            )
            .args(["-f", "lavfi", "-i", "gradients=s=1920x1080:n=5:seed=7"])
            .arg("-filter_complex")
            .arg("[0][1]blend=all_mode=overlay:all_opacity=0.6,noise=alls=10:allf=u")
            .args([
                "-frames:v",
                "1",
                "-c:v",
                "libx264",
                "-qp",
                "0",
                "-preset",
                "ultrafast",
            ])
            .args(["-pix_fmt", "yuv420p"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "the ffmpeg CLI could not make {}", path.display());
    }
    std::fs::File::open(path).expect("the detailed clip")
}

fn limits() -> Limits {
    Limits {
        max_frame_pixels: 40_000_000,
        max_source_bytes: 1 << 30,
        deadline: Instant::now() + Duration::from_secs(3600),
        decoder_threads: 1,
        best_frame_scan_frames: thumbd::media::bestframe::DEFAULT_SCAN_FRAMES,
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
        snap: false,
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

/// The JPEG background of transparent frames (these are opaque).
const WHITE: [u8; 3] = media::alpha::DEFAULT_BACKGROUND;

fn scale_and_encode(c: &mut Criterion<ThreadCpu>) {
    thumbd::init_ffmpeg();
    let frame = decode_frame(Box::new(sample()), TimeSpec::At(4_000_000), &limits()).unwrap();
    let mut g = c.benchmark_group("finish");
    for width in [320, 1280] {
        g.bench_function(format!("scale+encode webp {width}"), |b| {
            b.iter(|| media::finish(black_box(&frame), &spec(width, Format::Webp), WHITE).unwrap())
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
            |b| b.iter(|| media::finish(black_box(&hd), &spec(width, format), WHITE).unwrap()),
        );
    }
    g.finish();

    let rgb = media::finish(&frame, &spec(1280, Format::Png), WHITE).unwrap();
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
    g.bench_function("avif", |b| {
        b.iter(|| encode::avif(black_box(&img), 80).unwrap())
    });
    g.finish();
}

/// WebP and AVIF at the default quality (80) from the same YUV picture, as
/// the pipeline prepares it for either, 320 and 1280 wide; then bytes, PSNR
/// and SSIM of each against that picture, printed once (bench/RESULTS.md,
/// "AVIF against WebP").
fn avif_against_webp(c: &mut Criterion<ThreadCpu>) {
    thumbd::init_ffmpeg();
    let detailed = decode_frame(Box::new(detailed_sample()), TimeSpec::At(0), &limits()).unwrap();
    let flat = decode_frame(Box::new(sample()), TimeSpec::At(4_000_000), &limits()).unwrap();
    let mut g = c.benchmark_group("avif against webp, q80");
    let mut quality = Vec::new();
    for (source, frame) in [("detailed 1080p", &detailed), ("640x360 sample", &flat)] {
        for width in [320, 1280] {
            let yuv = prepare_yuv(frame, width);
            let pic = Picture::Yuv420(yuv.clone());
            g.bench_function(format!("webp {width} ({source})"), |b| {
                b.iter_batched(
                    || pic.clone(),
                    |p| encode::encode(p, Format::Webp, Some(80)).unwrap(),
                    BatchSize::SmallInput,
                )
            });
            g.bench_function(format!("avif {width} ({source})"), |b| {
                b.iter(|| encode::avif(black_box(&pic), 80).unwrap())
            });
            let webp = encode::encode(pic.clone(), Format::Webp, Some(80)).unwrap();
            let avif = encode::avif(&pic, 80).unwrap();
            for (format, bytes) in [("webp", &webp[..]), ("avif", &avif[..])] {
                let (psnr, ssim) = psnr_ssim(&yuv, bytes, format);
                quality.push(format!(
                    "| {source} | {width}x{} | {format} | {} | {psnr:.2} | {ssim:.4} |",
                    yuv.height,
                    bytes.len()
                ));
            }
        }
    }
    g.finish();
    eprintln!("\n| source | size | format | bytes | PSNR Y (dB) | SSIM (all) |");
    eprintln!("|---|---|---|---:|---:|---:|");
    for row in quality {
        eprintln!("{row}");
    }
}

/// The frame scaled `width` wide as the pipeline prepares it for WebP:
/// BT.601 limited-range 4:2:0 planes.
fn prepare_yuv(frame: &DecodedFrame, width: u32) -> YuvImage {
    let plan = geometry::plan(&frame.shape(), Some(width), None, None);
    match picture::prepare(frame, &plan, Format::Webp).unwrap() {
        Picture::Yuv420(yuv) => yuv,
        Picture::Rgb(_) => panic!("the frame was prepared as RGB"),
    }
}

/// PSNR of the luma plane and SSIM of all planes of `encoded`, decoded by
/// the ffmpeg CLI (FFmpeg's WebP decoder; its AVIF demuxer and dav1d),
/// against the planes it was encoded from: no colour conversion on either
/// side.
fn psnr_ssim(source: &YuvImage, encoded: &[u8], format: &str) -> (f64, f64) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-avif");
    std::fs::create_dir_all(&dir).unwrap();
    let (src, enc) = (
        dir.join("source.yuv"),
        dir.join(format!("encoded.{format}")),
    );
    std::fs::write(&src, [&source.y[..], &source.u, &source.v].concat()).unwrap();
    std::fs::write(&enc, encoded).unwrap();
    let size = format!("{}x{}", source.width, source.height);
    let measure = |filter: &str, key: &str| -> f64 {
        let out = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-i"])
            .arg(&enc)
            .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", &size, "-i"])
            .arg(&src)
            .args(["-lavfi", &format!("[0:v][1:v]{filter}"), "-f", "null", "-"])
            .output()
            .expect("the ffmpeg CLI");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "ffmpeg {filter}: {log}");
        let at = log
            .rfind(key)
            .unwrap_or_else(|| panic!("no {key} in {log}"))
            + key.len();
        let value: String = log[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        value.parse().unwrap()
    };
    (measure("psnr", " y:"), measure("ssim", " All:"))
}

/// Animated previews of a slow pan across the detailed picture (every
/// frame differs, as in video): 50 frames (5 s at 10 fps) 320 wide, and
/// 100 frames 640 wide, as animated WebP and GIF; sizes and PSNR printed.
fn animations(c: &mut Criterion<ThreadCpu>) {
    thumbd::init_ffmpeg();
    let detailed = decode_frame(Box::new(detailed_sample()), TimeSpec::At(0), &limits()).unwrap();
    let mut g = c.benchmark_group("animate");
    for (width, count) in [(320u32, 50usize), (640, 100)] {
        let height = width * 9 / 16;
        let plan = geometry::plan(&detailed.shape(), Some(width * 2), None, None);
        let Picture::Rgb(big) = picture::prepare(&detailed, &plan, Format::Png).unwrap() else {
            panic!("the frame was prepared as YUV")
        };
        let frames: Vec<AnimFrame> = (0..count)
            .map(|k| {
                let (x0, y0) = (
                    k * width as usize / 2 / count,
                    k * height as usize / 2 / count,
                );
                let mut data = Vec::with_capacity((width * height * 3) as usize);
                for y in y0..y0 + height as usize {
                    let row = (y * big.width as usize + x0) * 3;
                    data.extend_from_slice(&big.data[row..row + width as usize * 3]);
                }
                AnimFrame {
                    picture: RgbImage {
                        width,
                        height,
                        data,
                    },
                    duration_ms: 100,
                }
            })
            .collect();
        let webp = animate::encode_webp(&frames, width, height, 80).unwrap();
        let gif = animate::encode_gif(&frames, width, height).unwrap();
        eprintln!(
            "\n{count} frames {width}x{height}: animated WebP {} bytes, RGB PSNR {:.2} dB; \
             GIF {} bytes, RGB PSNR {:.2} dB",
            webp.len(),
            animation_psnr(&frames, &webp),
            gif.len(),
            animation_psnr(&frames, &gif),
        );
        g.bench_function(format!("webp {count} frames {width}x{height}"), |b| {
            b.iter(|| animate::encode_webp(black_box(&frames), width, height, 80).unwrap())
        });
        g.bench_function(format!("gif {count} frames {width}x{height}"), |b| {
            b.iter(|| animate::encode_gif(black_box(&frames), width, height).unwrap())
        });
        // The alternative not taken: a palette per frame (the gif crate's
        // NeuQuant at its speed 10). Timed at 320 wide only (4.7 s at 640).
        if width != 320 {
            continue;
        }
        let per_frame = gif_per_frame_palettes(&frames, width, height);
        eprintln!(
            "GIF with a palette per frame: {} bytes, RGB PSNR {:.2} dB",
            per_frame.len(),
            animation_psnr(&frames, &per_frame)
        );
        g.bench_function(
            format!("gif, palette per frame, {count} frames {width}x{height}"),
            |b| b.iter(|| gif_per_frame_palettes(black_box(&frames), width, height)),
        );
    }
    footage_gifs(&mut g);
    g.finish();
}

/// GIF palettes on real footage (target/footage, fetched by `make
/// footage`): 5 s at 15 fps, 320x180, as the ffmpeg CLI decodes and scales
/// them, encoded by thumbd's encoder and by the CLI's palettegen/paletteuse
/// (one palette for all frames, dithered) from the same frames; bytes,
/// palettes and RGB PSNR printed, thumbd's encoder timed.
fn footage_gifs(g: &mut criterion::BenchmarkGroup<ThreadCpu>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/footage");
    let (width, height) = (320u32, 180u32);
    for name in ["bigbuckbunny.mp4", "bikes.mp4", "cityCC0.mpg", "vtest.avi"] {
        let path = dir.join(name);
        if !path.exists() {
            eprintln!("{name}: not in target/footage (make footage), skipped");
            continue;
        }
        let scale = format!("fps=15,scale={width}:{height}:flags=lanczos");
        let out = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-t", "5", "-i"])
            .arg(&path)
            .args(["-vf", &scale, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()
            .unwrap();
        let frames: Vec<AnimFrame> = out
            .stdout
            .chunks_exact((width * height * 3) as usize)
            .enumerate()
            .map(|(k, data)| AnimFrame {
                picture: RgbImage {
                    width,
                    height,
                    data: data.to_vec(),
                },
                // As animated previews time them: from rounded start times.
                duration_ms: ((k as u32 + 1) * 1000 + 7) / 15 - (k as u32 * 1000 + 7) / 15,
            })
            .collect();
        let gif = animate::encode_gif(&frames, width, height).unwrap();
        let raw = std::env::temp_dir().join(format!("thumbd-bench-{name}.rgb"));
        let cli_gif = std::env::temp_dir().join(format!("thumbd-bench-{name}.gif"));
        std::fs::write(&raw, &out.stdout).unwrap();
        let started = Instant::now();
        let status = std::process::Command::new("ffmpeg")
            .args([
                "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
            ])
            .args(["-s", &format!("{width}x{height}"), "-r", "15", "-i"])
            .arg(&raw)
            .args([
                "-filter_complex",
                "split[a][b];[a]palettegen[p];[b][p]paletteuse",
            ])
            .args(["-loop", "0"])
            .arg(&cli_gif)
            .status()
            .unwrap();
        let cli_ms = started.elapsed().as_secs_f64() * 1000.0;
        assert!(status.success());
        let cli = std::fs::read(&cli_gif).unwrap();
        let _ = (std::fs::remove_file(&raw), std::fs::remove_file(&cli_gif));
        eprintln!(
            "{name}, {} frames {width}x{height}: thumbd GIF {} bytes, {} palettes, RGB PSNR \
             {:.2} dB; the CLI's palettegen/paletteuse {} bytes, RGB PSNR {:.2} dB, {cli_ms:.0} ms \
             wall (its process)",
            frames.len(),
            gif.len(),
            gif_palettes(&gif),
            gif_psnr_by_time(&frames, &gif),
            cli.len(),
            gif_psnr_by_time(&frames, &cli),
        );
        g.bench_function(
            format!("gif {name} {} frames {width}x{height}", frames.len()),
            |b| b.iter(|| animate::encode_gif(black_box(&frames), width, height).unwrap()),
        );
    }
}

/// PSNR over all frames' RGB of a GIF of `frames` (each 1/15 s) that may
/// have merged repeated pictures: frame k is compared with the GIF frame
/// shown at k/15 s.
fn gif_psnr_by_time(frames: &[AnimFrame], encoded: &[u8]) -> f64 {
    use image::AnimationDecoder;
    let decoded = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(encoded))
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap();
    let mut starts = Vec::with_capacity(decoded.len());
    let mut at = 0.0;
    for d in &decoded {
        starts.push(at);
        let (n, den) = d.delay().numer_denom_ms();
        at += f64::from(n) / f64::from(den.max(1));
    }
    psnr(frames.iter().enumerate().map(|(k, f)| {
        // Centisecond delays: allow for their rounding.
        let t = k as f64 * 1000.0 / 15.0 + 5.0;
        let i = starts.partition_point(|&s| s <= t).saturating_sub(1);
        (&f.picture, decoded[i].buffer())
    }))
}

/// RGB PSNR over pairs of a source picture and its decoded RGBA.
fn psnr<'a>(pairs: impl Iterator<Item = (&'a RgbImage, &'a image::RgbaImage)>) -> f64 {
    let (mut sum, mut n) = (0f64, 0f64);
    for (source, decoded) in pairs {
        for (px, got) in source.data.chunks_exact(3).zip(decoded.pixels()) {
            for (a, b) in px.iter().zip(got.0) {
                let e = f64::from(*a) - f64::from(b);
                sum += e * e;
            }
            n += 3.0;
        }
    }
    10.0 * (255.0f64 * 255.0 / (sum / n)).log10()
}

/// How many palettes a GIF holds: its global one and each local one.
fn gif_palettes(bytes: &[u8]) -> usize {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    let mut decoder = options.read_info(bytes).unwrap();
    let mut palettes = usize::from(decoder.global_palette().is_some());
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        palettes += usize::from(frame.palette.is_some());
    }
    palettes
}

fn gif_per_frame_palettes(frames: &[AnimFrame], width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as u16, height as u16);
    let mut out = Vec::new();
    let mut encoder = gif::Encoder::new(&mut out, w, h, &[]).unwrap();
    encoder.set_repeat(gif::Repeat::Infinite).unwrap();
    for f in frames {
        let mut frame = gif::Frame::from_rgb_speed(w, h, &f.picture.data, 10);
        frame.delay = (f.duration_ms / 10) as u16;
        encoder.write_frame(&frame).unwrap();
    }
    drop(encoder);
    out
}

/// PSNR over all frames' RGB of an animation decoded by the `image` crate.
fn animation_psnr(frames: &[AnimFrame], encoded: &[u8]) -> f64 {
    use image::AnimationDecoder;
    let cursor = std::io::Cursor::new(encoded);
    let decoded: Vec<image::Frame> = if encoded.starts_with(b"GIF") {
        image::codecs::gif::GifDecoder::new(cursor)
            .unwrap()
            .into_frames()
            .collect_frames()
    } else {
        image::codecs::webp::WebPDecoder::new(cursor)
            .unwrap()
            .into_frames()
            .collect_frames()
    }
    .unwrap();
    assert_eq!(decoded.len(), frames.len(), "a frame was merged or lost");
    psnr(
        frames
            .iter()
            .zip(&decoded)
            .map(|(f, d)| (&f.picture, d.buffer())),
    )
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
    targets = decode, scale_and_encode, avif_against_webp, animations
}
criterion_main!(benches);
