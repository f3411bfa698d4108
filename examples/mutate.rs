//! The media mutation fuzzer (`make fuzz` runs it after the cargo-fuzz
//! targets): takes the test fixtures, mutates them (bit flips, truncation,
//! MP4 box and EBML element sizes set to zero, one, huge or random values,
//! sample tables shuffled, chunks spliced) and pushes each through the
//! in-process render pipeline (one in five as a 2 s animated preview) with
//! the normal limits (20 s deadline, 512 MiB source budget, 40 megapixel
//! frames). It reports inputs tried, outcomes by
//! the HTTP status thumbd would answer, the slowest render, and the worker's
//! RSS after warm-up, at the end and at its peak.
//!
//! Renders run in a worker process under an address-space limit; the
//! supervisor restarts a worker that dies (a crash inside FFmpeg, an abort,
//! an allocation past the limit), keeps the input that killed it in
//! `target/mutate/crashes/`, and counts it. Mutations are deterministic:
//! `--seed S` replays a run, and a crash's file name says its seed and index.
//!
//! ```sh
//! cargo run --release --example mutate -- --seconds 300 [--seed 1] [--fixtures target/fixtures]
//! ```
//!
//! For diagnosis: `MUTATE_TRACE=1` prints each input's status, time and the
//! worker's RSS to stderr; `MUTATE_DUMP=DIR` writes each input there (to
//! replay one: `MUTATE_MAX=1 MUTATE_DUMP=DIR target/release/examples/mutate
//! --seed S --worker-from I --fixtures F`); `MUTATE_NONE=1` renders the seeds unmutated (a
//! baseline for memory); `MUTATE_MAX=N` stops a worker after N inputs (for
//! valgrind: `valgrind --leak-check=full target/release/examples/mutate
//! --worker-from 0 --seconds 600`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use thumbd::domain::animated::{AnimatedFormat, AnimatedSpec};
use thumbd::domain::Problem;
use thumbd::media::{Format, Limits, RenderSpec, TimeSpec};
use thumbd::render::RenderError;

/// Fixtures larger than this are not mutated (the big ones only cost time).
const MAX_SEED_BYTES: u64 = 4 * 1024 * 1024;
/// The worker's address-space limit: a decoder asking for more fails its
/// allocation (and the render with it) instead of taking the machine.
const WORKER_ADDRESS_SPACE: u64 = 4 << 30;

/// splitmix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// MP4 boxes whose size fields are worth breaking.
const MP4_BOXES: [&[u8; 4]; 16] = [
    b"ftyp", b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd", b"stsz", b"stco", b"co64",
    b"stts", b"ctts", b"stss", b"stsc", b"mdat", b"elst",
];
/// Matroska element ids (Segment, Cluster, Cues, Tracks, TrackEntry,
/// SimpleBlock, BlockGroup, CuePoint).
const EBML_IDS: [&[u8]; 8] = [
    &[0x18, 0x53, 0x80, 0x67],
    &[0x1F, 0x43, 0xB6, 0x75],
    &[0x1C, 0x53, 0xBB, 0x6B],
    &[0x16, 0x54, 0xAE, 0x6B],
    &[0xAE],
    &[0xA3],
    &[0xA0],
    &[0xBB],
];

fn find_all(data: &[u8], needle: &[u8]) -> Vec<usize> {
    data.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// The mutation `index` of run `seed`, of one of the seeds.
fn mutate(seeds: &[(String, Vec<u8>)], seed: u64, index: u64) -> (String, Vec<u8>, &'static str) {
    let mut rng = Rng(seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F));
    let (name, original) = &seeds[rng.below(seeds.len())];
    let mut data = original.clone();
    let rounds = if std::env::var_os("MUTATE_NONE").is_some() {
        0
    } else {
        1 + rng.below(3)
    };
    let mut kind = "";
    for _ in 0..rounds {
        kind = match rng.below(6) {
            0 => {
                for _ in 0..1 + rng.below(64) {
                    let i = rng.below(data.len());
                    if let Some(b) = data.get_mut(i) {
                        *b ^= 1 << rng.below(8);
                    }
                }
                "bit flips"
            }
            1 => {
                let keep = rng.below(data.len().max(1));
                data.truncate(keep);
                "truncation"
            }
            2 => {
                let kind = MP4_BOXES[rng.below(MP4_BOXES.len())];
                let at = find_all(&data, kind);
                if let Some(&pos) = at.get(rng.below(at.len())) {
                    if pos >= 4 {
                        let size: u32 = match rng.below(4) {
                            0 => 0,
                            1 => 1,
                            2 => u32::MAX,
                            _ => rng.next() as u32,
                        };
                        data[pos - 4..pos].copy_from_slice(&size.to_be_bytes());
                    }
                }
                "MP4 box size"
            }
            3 => {
                let id = EBML_IDS[rng.below(EBML_IDS.len())];
                let at = find_all(&data, id);
                if let Some(&pos) = at.get(rng.below(at.len())) {
                    let size_at = pos + id.len();
                    let size: &[u8] = match rng.below(3) {
                        0 => &[0x80],                                           // zero
                        1 => &[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], // unknown
                        _ => &[0x01, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], // huge
                    };
                    let end = (size_at + size.len()).min(data.len());
                    if size_at < end {
                        data[size_at..end].copy_from_slice(&size[..end - size_at]);
                    }
                }
                "EBML size"
            }
            4 => {
                let table = [b"stsz", b"stco", b"stts", b"stss", b"stsc"][rng.below(5)];
                let at = find_all(&data, table);
                if let Some(&pos) = at.get(rng.below(at.len())) {
                    let start = pos + 12;
                    let words = ((data.len().saturating_sub(start)) / 4).min(256);
                    for _ in 0..words {
                        let (a, b) = (rng.below(words), rng.below(words));
                        for k in 0..4 {
                            data.swap(start + a * 4 + k, start + b * 4 + k);
                        }
                    }
                }
                "sample table shuffle"
            }
            _ => {
                if data.len() > 2 {
                    let len = 1 + rng.below(4096.min(data.len() / 2));
                    let from = rng.below(data.len() - len);
                    let to = rng.below(data.len() - len);
                    let chunk = data[from..from + len].to_vec();
                    data[to..to + len].copy_from_slice(&chunk);
                }
                "splice"
            }
        };
    }
    (name.clone(), data, kind)
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim_start_matches(':')
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn load_seeds(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run the tests once, or tests/fixtures/generate.sh)",
                dir.display()
            )
        })
        .flatten()
        .filter(|e| {
            e.metadata()
                .is_ok_and(|m| m.is_file() && m.len() > 0 && m.len() <= MAX_SEED_BYTES)
        })
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            Some((
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).ok()?,
            ))
        })
        .collect();
    seeds.sort();
    seeds
}

/// The worker: renders mutations `start..` until `until`, one line each:
/// `start I` before, `done I STATUS MS` after; `rss BASE END PEAK` at the end.
fn worker(seeds: &[(String, Vec<u8>)], seed: u64, start: u64, until: Instant) {
    // SAFETY: setrlimit on this process only.
    unsafe {
        let limit = libc::rlimit {
            rlim_cur: WORKER_ADDRESS_SPACE,
            rlim_max: WORKER_ADDRESS_SPACE,
        };
        libc::setrlimit(libc::RLIMIT_AS, &limit);
    }
    thumbd::init_ffmpeg();
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut baseline = 0;
    let mut i = start;
    let max: u64 = std::env::var("MUTATE_MAX")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(u64::MAX);
    while Instant::now() < until && i - start < max {
        let (name, data, _) = mutate(seeds, seed, i);
        if let Some(dir) = std::env::var_os("MUTATE_DUMP") {
            let path = Path::new(&dir).join(format!("seed{seed}-{i}-{name}"));
            std::fs::write(path, &data).expect("write the input to MUTATE_DUMP");
        }
        writeln!(out, "start {i}").unwrap();
        out.flush().unwrap();
        let time = match i % 4 {
            0 => TimeSpec::At(0),
            1 => TimeSpec::At(1_000_000),
            2 => TimeSpec::Middle,
            _ => TimeSpec::At(999_000_000),
        };
        let spec = RenderSpec {
            format: if i.is_multiple_of(3) {
                Format::Jpeg
            } else {
                Format::Webp
            },
            width: Some(160),
            height: None,
            fit: None,
            quality: None,
            time,
            snap: false,
        };
        let limits = Limits {
            max_frame_pixels: 40_000_000,
            max_source_bytes: 512 * 1024 * 1024,
            deadline: Instant::now() + Duration::from_secs(20),
            decoder_threads: 1,
            best_frame_scan_frames: thumbd::media::bestframe::DEFAULT_SCAN_FRAMES,
        };
        let started = Instant::now();
        // One input in five as an animated preview (a sequential decode
        // that drops frames no tick shows), the others as a thumbnail.
        let result = if i % 5 == 4 {
            let anim = AnimatedSpec {
                format: if i % 10 == 4 {
                    AnimatedFormat::Gif
                } else {
                    AnimatedFormat::Webp
                },
                start_us: if i.is_multiple_of(3) { 0 } else { 500_000 },
                end_us: 2_500_000,
                fps: 15,
                width: 96,
                quality: None,
            };
            thumbd::media::animated::render(Box::new(Cursor::new(data)), &anim, &limits).map(|_| ())
        } else {
            thumbd::media::render(Box::new(Cursor::new(data)), &spec, &limits).map(|_| ())
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let status = match result {
            Ok(()) => 200,
            Err(e) => Problem::from(&RenderError::Media(e)).status,
        };
        writeln!(out, "done {i} {status} {ms:.1} {}", status_kib("VmRSS")).unwrap();
        if i == start + 200 {
            baseline = status_kib("VmRSS");
        }
        i += 1;
    }
    writeln!(
        out,
        "rss {baseline} {} {}",
        status_kib("VmRSS"),
        status_kib("VmHWM")
    )
    .unwrap();
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = arg(&args, "--seconds").map_or(120, |s| s.parse().expect("--seconds N"));
    let seed: u64 = arg(&args, "--seed").map_or(1, |s| s.parse().expect("--seed N"));
    let fixtures =
        PathBuf::from(arg(&args, "--fixtures").unwrap_or_else(|| "target/fixtures".into()));
    let seeds = load_seeds(&fixtures);
    assert!(!seeds.is_empty(), "no fixtures in {}", fixtures.display());
    if let Some(start) = arg(&args, "--worker-from") {
        let until = Instant::now() + Duration::from_secs(seconds);
        worker(&seeds, seed, start.parse().unwrap(), until);
        return;
    }

    let crashes_dir = PathBuf::from("target/mutate/crashes");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut next = 0u64;
    let mut by_status: BTreeMap<u16, u64> = BTreeMap::new();
    let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    let mut slowest = (0.0f64, 0u64);
    let mut crashes = Vec::new();
    let mut rss = Vec::new();
    let exe = std::env::current_exe().unwrap();
    while deadline.saturating_duration_since(Instant::now()) >= Duration::from_secs(1) {
        let left = deadline.saturating_duration_since(Instant::now()).as_secs();
        let mut child = Command::new(&exe)
            .args(["--seconds", &left.to_string(), "--seed", &seed.to_string()])
            .args(["--worker-from", &next.to_string()])
            .arg("--fixtures")
            .arg(&fixtures)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a worker");
        let mut started: Option<u64> = None;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap_or_default();
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["start", i] => started = i.parse().ok(),
                ["done", i, status, ms, rss_kib] => {
                    if std::env::var_os("MUTATE_TRACE").is_some() {
                        eprintln!("{i} {status} {ms} {rss_kib}");
                    }
                    let (i, status, ms): (u64, u16, f64) = (
                        i.parse().unwrap(),
                        status.parse().unwrap(),
                        ms.parse().unwrap(),
                    );
                    *by_status.entry(status).or_default() += 1;
                    *by_kind.entry(mutate(&seeds, seed, i).2).or_default() += 1;
                    if ms > slowest.0 {
                        slowest = (ms, i);
                    }
                    started = None;
                    next = i + 1;
                }
                ["rss", base, end, peak] => rss.push((
                    base.parse::<u64>().unwrap(),
                    end.parse::<u64>().unwrap(),
                    peak.parse::<u64>().unwrap(),
                )),
                _ => {}
            }
        }
        let status = child.wait().unwrap();
        if let Some(i) = started {
            // The worker died during this input: keep it.
            let (name, data, kind) = mutate(&seeds, seed, i);
            std::fs::create_dir_all(&crashes_dir).unwrap();
            let path = crashes_dir.join(format!("seed{seed}-{i}-{name}"));
            std::fs::write(&path, &data).unwrap();
            eprintln!(
                "worker died on input {i} ({kind} of {name}): {status}; kept {}",
                path.display()
            );
            crashes.push((i, name, kind, status.to_string()));
            next = i + 1;
        }
    }
    let tried: u64 = by_status.values().sum::<u64>() + crashes.len() as u64;
    println!(
        "\nmedia mutation fuzzer: seed {seed}, {seconds} s, {} fixtures as seeds",
        seeds.len()
    );
    println!("inputs tried: {tried}");
    println!("by mutation (last applied): {by_kind:?}");
    println!("| outcome | inputs |\n|---|---:|");
    for (status, n) in &by_status {
        println!("| {status} | {n} |");
    }
    println!(
        "| worker died (crash, abort or out of memory) | {} |",
        crashes.len()
    );
    let (ms, i) = slowest;
    let (name, _, kind) = mutate(&seeds, seed, i);
    println!("slowest render: {ms:.0} ms (input {i}, {kind} of {name}; deadline 20000 ms)");
    for (base, end, peak) in &rss {
        println!(
            "worker RSS: {:.1} MiB after 200 inputs, {:.1} MiB at the end, peak {:.1} MiB",
            *base as f64 / 1024.0,
            *end as f64 / 1024.0,
            *peak as f64 / 1024.0
        );
    }
    if by_status.contains_key(&500) || !crashes.is_empty() || ms > 25_000.0 {
        std::process::exit(1);
    }
}
