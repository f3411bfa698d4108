//! `fit=smart`: where the crop window goes so that it keeps the subject.
//!
//! The window is `fit=crop`'s (the largest of the box's shape), so only its
//! place is chosen, along the one axis it can move on. The frame as
//! displayed is scaled to 256 px on its longer side and each pixel scored
//! for what draws the eye: detail (luma gradient above a noise floor), skin
//! tones (an ellipse in the Cb/Cr plane, at mid brightness) and strong
//! saturation. The picture's own background level (the median score) is
//! taken off, so a textured or noisy frame counts only what stands out of
//! it and a flat one counts nothing. Each candidate place scores the share
//! of that saliency it captures, weighted to prefer the subject in the
//! middle of the window rather than cut at its edge, less a mild pull
//! toward the frame's centre: a flat frame gets the centred crop exactly,
//! and noise between frames of one shot cannot move the window far. The
//! best place is refined to a fraction of a pixel.
//!
//! Pure arithmetic on the small copy, so the same frame gives the same
//! window (renders cache), and a subject moving slowly moves it slowly. On
//! a 1080p frame it costs about 2.7 ms: 2.2 ms to make the copy, 0.4 ms to
//! score it (bench/RESULTS.md). No face detector: the one pure-Rust
//! candidate (`rustface`, SeetaFace's 2016 frontal model) has not been
//! released since 2021, finds no face under 20 px, and takes about 50 ms at
//! the 640 px that finds faces in a wide shot; skin tones carry faces here.

#![deny(unsafe_code)]

use super::geometry::{self, Plan, Window};
use super::pixels::{Picture, RgbImage};
use super::stream::DecodedFrame;
use super::{picture, Fit, Format, MediaError};

/// Longer side of the copy that is scored: fine enough to place a window
/// within a pixel or two of a 200-pixel thumbnail, small enough to score in
/// well under a millisecond.
const ANALYSIS_SIZE: u32 = 256;

/// Luma gradient (sum of the horizontal and vertical differences, 0-255
/// scale) below which detail is taken for noise or compression.
const NOISE_FLOOR: f32 = 6.0;
/// Gradient at which detail counts in full.
const FULL_DETAIL: f32 = 64.0;
/// Skin: the centre and half-axes of the ellipse in the (Cb, Cr) plane
/// (full-range BT.601) where skin of any colour falls.
const SKIN_CB: (f32, f32) = (102.0, 25.0);
const SKIN_CR: (f32, f32) = (153.0, 20.0);
/// Luma outside which nothing counts as skin (shadow, glare).
const SKIN_LUMA: (f32, f32) = (45.0, 240.0);
/// Saturation ((max - min) / max) from which colour starts counting, and
/// where it counts in full.
const SATURATION: (f32, f32) = (0.35, 0.85);
/// Weights of the three cues in a pixel's score.
const DETAIL_WEIGHT: f32 = 1.0;
const SKIN_WEIGHT: f32 = 1.2;
const SATURATION_WEIGHT: f32 = 0.5;
/// How much more saliency counts at the middle of the window than at its
/// edges (a tent from 1 to 1 + this).
const MIDDLE_WEIGHT: f64 = 1.0;
/// The pull toward the frame's centre: score lost per frame-width (or
/// height) the window moves off centre, against captured shares of 0-1.
const CENTRE_PULL: f64 = 0.3;
/// Below this much saliency per pixel, a frame has no subject: centre.
const NOTHING: f64 = 1e-4;

/// The plan for `fit=smart` into a `width` x `height` box: `fit=crop`'s,
/// with its crop moved onto the window [`window`] chooses.
pub fn plan(frame: &DecodedFrame, width: u32, height: u32) -> Result<Plan, MediaError> {
    let shape = frame.shape();
    let plan = geometry::plan(&shape, Some(width), Some(height), Some(Fit::Smart));
    if !plan.is_cropped(&shape) {
        return Ok(plan);
    }
    let started = std::time::Instant::now();
    let window = window(frame, width as f64 / height as f64)?;
    tracing::debug!(
        ?window,
        micros = started.elapsed().as_micros() as u64,
        "smart crop window"
    );
    Ok(plan.centred_on(&shape, &window))
}

/// The crop window of aspect ratio `aspect` (width / height) that keeps
/// the most salient part of `frame`, in its displayed pixels: the largest
/// of that shape, so as wide or as high as the picture.
pub fn window(frame: &DecodedFrame, aspect: f64) -> Result<Window, MediaError> {
    let shape = frame.shape();
    let (dw, dh) = shape.display_size();
    let small = if dw >= dh {
        geometry::plan(&shape, Some(ANALYSIS_SIZE), None, None)
    } else {
        geometry::plan(&shape, None, Some(ANALYSIS_SIZE), None)
    };
    let Picture::Rgb(rgb) = picture::prepare(frame, &small, Format::Png)? else {
        return Err(MediaError::Internal("expected an RGB picture".into()));
    };
    let w = salient_window(&rgb, aspect);
    let (sx, sy) = (dw / rgb.width as f64, dh / rgb.height as f64);
    Ok(Window {
        x: w.x * sx,
        y: w.y * sy,
        width: w.width * sx,
        height: w.height * sy,
    })
}

/// [`window`] on a picture already small, in its pixels.
fn salient_window(img: &RgbImage, aspect: f64) -> Window {
    let (w, h) = (img.width as usize, img.height as usize);
    let (fw, fh) = (w as f64, h as f64);
    let whole = Window {
        x: 0.0,
        y: 0.0,
        width: fw,
        height: fh,
    };
    if w == 0 || h == 0 || !(aspect.is_finite() && aspect > 0.0) {
        return whole;
    }
    if fw / fh > aspect {
        let len = fh * aspect;
        if len > fw - 0.5 {
            return whole;
        }
        let map = saliency(img);
        let columns: Vec<f64> = (0..w)
            .map(|x| (0..h).map(|y| map[y * w + x] as f64).sum())
            .collect();
        Window {
            x: best_offset(&columns, len),
            y: 0.0,
            width: len,
            height: fh,
        }
    } else {
        let len = fw / aspect;
        if len > fh - 0.5 {
            return whole;
        }
        let map = saliency(img);
        let rows: Vec<f64> = map
            .chunks_exact(w)
            .map(|row| row.iter().map(|&s| s as f64).sum())
            .collect();
        Window {
            x: 0.0,
            y: best_offset(&rows, len),
            width: fw,
            height: len,
        }
    }
}

/// Each pixel's saliency above the picture's background level (the median),
/// row by row.
fn saliency(img: &RgbImage) -> Vec<f32> {
    let (w, h) = (img.width as usize, img.height as usize);
    let luma: Vec<f32> = img
        .data
        .chunks_exact(3)
        .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
        .collect();
    let mut map = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let at = |x: usize, y: usize| luma[y * w + x];
            // Central differences, one-sided at the borders.
            let gx = at((x + 1).min(w - 1), y) - at(x.saturating_sub(1), y);
            let gy = at(x, (y + 1).min(h - 1)) - at(x, y.saturating_sub(1));
            let detail = ((gx.abs() + gy.abs() - NOISE_FLOOR) / FULL_DETAIL).clamp(0.0, 1.0);
            let i = (y * w + x) * 3;
            let [r, g, b] = [img.data[i], img.data[i + 1], img.data[i + 2]].map(f32::from);
            map.push(
                DETAIL_WEIGHT * detail
                    + SKIN_WEIGHT * skin(r, g, b, luma[y * w + x])
                    + SATURATION_WEIGHT * saturation(r, g, b),
            );
        }
    }
    let mut sorted = map.clone();
    let mid = sorted.len() / 2;
    let (_, &mut background, _) = sorted.select_nth_unstable_by(mid, f32::total_cmp);
    for s in &mut map {
        *s = (*s - background).max(0.0);
    }
    map
}

/// How much a colour looks like skin, 0-1.
fn skin(r: f32, g: f32, b: f32, luma: f32) -> f32 {
    if !(SKIN_LUMA.0..=SKIN_LUMA.1).contains(&luma) {
        return 0.0;
    }
    let cb = 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
    let cr = 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
    let d = ((cb - SKIN_CB.0) / SKIN_CB.1).powi(2) + ((cr - SKIN_CR.0) / SKIN_CR.1).powi(2);
    (1.0 - d).max(0.0)
}

/// How strongly coloured a pixel is, 0-1; dark pixels count for nothing.
fn saturation(r: f32, g: f32, b: f32) -> f32 {
    let max = r.max(g).max(b);
    if max < 48.0 {
        return 0.0;
    }
    let s = (max - r.min(g).min(b)) / max;
    ((s - SATURATION.0) / (SATURATION.1 - SATURATION.0)).clamp(0.0, 1.0)
}

/// Where a window `len` long goes along a line whose saliency is
/// `profile` (one value a pixel): its start, in pixels, at most
/// `profile.len() - len`.
fn best_offset(profile: &[f64], len: f64) -> f64 {
    let n = profile.len();
    let centred = (n as f64 - len) / 2.0;
    let total: f64 = profile.iter().sum();
    let k = (len.round() as usize).clamp(1, n);
    let room = n - k;
    if total <= NOTHING * n as f64 || room == 0 {
        return centred;
    }
    // The tent weight of each pixel of the window, and each place's score.
    let tent: Vec<f64> = (0..k)
        .map(|i| {
            let t = (i as f64 + 0.5) / k as f64;
            1.0 + MIDDLE_WEIGHT * (1.0 - (2.0 * t - 1.0).abs())
        })
        .collect();
    let most = total * (1.0 + MIDDLE_WEIGHT);
    let scores: Vec<f64> = (0..=room)
        .map(|o| {
            let captured: f64 = profile[o..o + k]
                .iter()
                .zip(&tent)
                .map(|(p, t)| p * t)
                .sum();
            let off_centre = (o as f64 - room as f64 / 2.0).abs() / n as f64;
            captured / most - CENTRE_PULL * off_centre
        })
        .collect();
    // The best place, the one nearest the centre on a tie.
    let mut best = room / 2;
    for (o, &s) in scores.iter().enumerate() {
        let nearer = o.abs_diff(room / 2) < best.abs_diff(room / 2);
        if s > scores[best] || (s == scores[best] && nearer) {
            best = o;
        }
    }
    // Refined between pixels by the parabola through it and its
    // neighbours, so the window moves smoothly with the subject.
    let mut at = best as f64;
    if best > 0 && best < room {
        let (a, b, c) = (scores[best - 1], scores[best], scores[best + 1]);
        let curve = a - 2.0 * b + c;
        if curve < 0.0 {
            at += (0.5 * (a - c) / curve).clamp(-0.5, 0.5);
        }
    }
    // From the integer window's start to the real one's, same centre.
    (at + (k as f64 - len) / 2.0).clamp(0.0, n as f64 - len)
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::media::geometry::Orientation;
    use crate::media::stream::painted_frame as yuv_frame;

    const BACKGROUND: [u8; 3] = [120, 130, 140];
    const SKIN: [u8; 3] = [222, 170, 138];

    fn picture(w: u32, h: u32, paint: impl Fn(u32, u32) -> [u8; 3]) -> RgbImage {
        let data = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .flat_map(|(x, y)| paint(x, y))
            .collect();
        RgbImage {
            width: w,
            height: h,
            data,
        }
    }

    /// A deterministic grain of +-`amp` levels.
    fn grain(x: u32, y: u32, amp: i32) -> i32 {
        let mut v = x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663);
        v ^= v >> 13;
        v = v.wrapping_mul(0x5bd1_e995);
        v ^= v >> 15;
        (v % (2 * amp as u32 + 1)) as i32 - amp
    }

    fn grey_grain(x: u32, y: u32, amp: i32) -> [u8; 3] {
        BACKGROUND.map(|c| (c as i32 + grain(x, y, amp)).clamp(0, 255) as u8)
    }

    /// A checkerboard of 4-pixel squares in black and white, within a box.
    fn checker(x: u32, y: u32, (x0, y0, x1, y1): (u32, u32, u32, u32)) -> Option<[u8; 3]> {
        let inside = (x0..x1).contains(&x) && (y0..y1).contains(&y);
        inside.then(|| {
            if (x / 4 + y / 4).is_multiple_of(2) {
                [250, 250, 250]
            } else {
                [10, 10, 10]
            }
        })
    }

    /// An ellipse centred at (cx, cy) with half-axes (rx, ry).
    fn in_ellipse(x: u32, y: u32, (cx, cy, rx, ry): (f64, f64, f64, f64)) -> bool {
        ((x as f64 - cx) / rx).powi(2) + ((y as f64 - cy) / ry).powi(2) <= 1.0
    }

    fn centre(w: &Window) -> (f64, f64) {
        w.centre()
    }

    #[test]
    fn a_flat_picture_gets_the_centre() {
        for aspect in [1.0, 0.5, 9.0 / 16.0] {
            let img = picture(256, 144, |_, _| BACKGROUND);
            let w = salient_window(&img, aspect);
            assert_eq!(centre(&w), (128.0, 72.0), "{aspect}");
            assert_eq!(w.height, 144.0);
            assert!((w.width - 144.0 * aspect).abs() < 1e-9);
        }
        // Grain is no subject: still the centre, within a pixel.
        let img = picture(256, 144, |x, y| grey_grain(x, y, 6));
        let (cx, _) = centre(&salient_window(&img, 1.0));
        assert!((cx - 128.0).abs() < 1.0, "{cx}");
    }

    #[test]
    fn a_detailed_object_on_the_left_third_is_kept() {
        // The object spans x 30-80 of 256 (centre 55): a centred square
        // window (56-200) would cut all of it off.
        let object = (30, 50, 80, 100);
        for amp in [0, 4] {
            let img = picture(256, 144, |x, y| {
                checker(x, y, object).unwrap_or(grey_grain(x, y, amp))
            });
            let w = salient_window(&img, 1.0);
            assert!(w.x <= 30.0 && w.x + w.width >= 80.0, "{amp}: {w:?}");
            // As near the middle of the window as the frame allows.
            assert!(w.x < 1.0, "{amp}: {w:?}");
        }
    }

    #[test]
    fn a_skin_toned_face_off_centre_is_kept() {
        // A face-like oval (with darker eyes and mouth) at x 190 of 256,
        // on a flat blue-grey background.
        let face = (190.0, 70.0, 22.0, 30.0);
        let img = picture(256, 144, |x, y| {
            let eye = in_ellipse(x, y, (182.0, 62.0, 3.0, 2.0))
                || in_ellipse(x, y, (198.0, 62.0, 3.0, 2.0))
                || in_ellipse(x, y, (190.0, 84.0, 6.0, 2.0));
            match (in_ellipse(x, y, face), eye) {
                (true, true) => [70, 40, 35],
                (true, false) => SKIN,
                _ => BACKGROUND,
            }
        });
        let w = salient_window(&img, 1.0);
        assert!(w.x <= 168.0 && w.x + w.width >= 212.0, "{w:?}");
        // As near centred on it as the frame allows (x 112 at most).
        assert_eq!(w.x, 112.0, "{w:?}");
    }

    #[test]
    fn skin_of_any_colour_counts_and_other_colours_do_not() {
        let skin_of = |[r, g, b]: [u8; 3]| {
            let [r, g, b] = [r, g, b].map(f32::from);
            skin(r, g, b, 0.299 * r + 0.587 * g + 0.114 * b)
        };
        for tone in [SKIN, [255, 219, 172], [141, 85, 36], [190, 140, 110]] {
            assert!(skin_of(tone) > 0.3, "{tone:?}: {}", skin_of(tone));
        }
        for other in [
            BACKGROUND,
            [30, 30, 220],
            [40, 200, 40],
            [250, 250, 250],
            [20, 10, 5],
        ] {
            assert_eq!(skin_of(other), 0.0, "{other:?}");
        }
    }

    #[test]
    fn a_centred_subject_gives_the_centred_window() {
        let img = picture(256, 144, |x, y| {
            checker(x, y, (108, 40, 148, 100)).unwrap_or(BACKGROUND)
        });
        let cx = centre(&salient_window(&img, 1.0)).0;
        assert!((cx - 128.0).abs() < 1e-9, "{cx}");
        // An odd room (257 - 144 = 113) still centres exactly.
        let img = picture(257, 144, |x, y| {
            checker(x, y, (108, 40, 149, 100)).unwrap_or(BACKGROUND)
        });
        let cx = centre(&salient_window(&img, 1.0)).0;
        assert!((cx - 128.5).abs() < 0.05, "{cx}");
    }

    #[test]
    fn a_portrait_picture_moves_the_window_up_and_down() {
        // 144 x 256, a square box: the window slides vertically.
        let img = picture(144, 256, |x, y| {
            checker(x, y, (40, 190, 100, 240)).unwrap_or(BACKGROUND)
        });
        let w = salient_window(&img, 1.0);
        assert_eq!((w.x, w.width), (0.0, 144.0));
        assert!(w.y >= 96.0 && w.y + w.height <= 256.0, "{w:?}");
        assert!(w.y + w.height >= 240.0, "{w:?}");
    }

    #[test]
    fn a_slowly_moving_subject_moves_the_window_slowly() {
        // The object crosses the middle of the frame 1 px at a time; the
        // window follows smoothly (no jumps), always keeping it.
        let mut last: Option<f64> = None;
        for step in 0..40u32 {
            let x0 = 100 + step;
            let img = picture(256, 144, |x, y| {
                checker(x, y, (x0, 50, x0 + 40, 90)).unwrap_or(grey_grain(x, y, 3))
            });
            let w = salient_window(&img, 1.0);
            assert!(w.x <= x0 as f64 && w.x + w.width >= (x0 + 40) as f64);
            if let Some(prev) = last {
                let moved = w.x - prev;
                assert!((-0.5..=2.0).contains(&moved), "step {step}: {moved}");
            }
            last = Some(w.x);
        }
    }

    #[test]
    fn the_same_picture_gives_the_same_window() {
        let img = picture(256, 144, |x, y| grey_grain(x, y, 20));
        assert_eq!(salient_window(&img, 0.8), salient_window(&img, 0.8));
    }

    #[test]
    fn a_box_of_the_pictures_shape_keeps_it_whole() {
        let img = picture(256, 144, |x, y| grey_grain(x, y, 20));
        let w = salient_window(&img, 256.0 / 144.0);
        assert_eq!((w.x, w.y, w.width, w.height), (0.0, 0.0, 256.0, 144.0));
    }

    /// A 640x360 frame with a red checkerboard on its left third (x 30
    /// to 130), all of it left of the centred square crop (x 140 to 500).
    fn red_object_left(x: u32, y: u32) -> [u8; 3] {
        let inside = (30..130).contains(&x) && (120..240).contains(&y);
        match (inside, (x / 10 + y / 10).is_multiple_of(2)) {
            (true, true) => [230, 20, 20],
            (true, false) => [250, 240, 240],
            _ => BACKGROUND,
        }
    }

    /// Share of an RGB picture's pixels that are strongly red.
    fn red_share(img: &RgbImage) -> f64 {
        let red = img
            .data
            .chunks_exact(3)
            .filter(|p| p[0] > 180 && p[1] < 90 && p[2] < 90)
            .count();
        red as f64 / (img.width * img.height) as f64
    }

    fn rgb(p: Picture) -> RgbImage {
        match p {
            Picture::Rgb(img) => img,
            Picture::Yuv420(img) => {
                // BT.601 limited range back to RGB, for the check only.
                let (cw, _) = crate::media::pixels::YuvImage::chroma_size(img.width, img.height);
                let mut data = Vec::new();
                for y in 0..img.height as usize {
                    for x in 0..img.width as usize {
                        let l = (img.y[y * img.width as usize + x] as f64 - 16.0) * 255.0 / 219.0;
                        let c = (y / 2) * cw as usize + x / 2;
                        let u = (img.u[c] as f64 - 128.0) * 255.0 / 224.0;
                        let v = (img.v[c] as f64 - 128.0) * 255.0 / 224.0;
                        let r = l + 1.402 * v;
                        let g = l - 0.344_136 * u - 0.714_136 * v;
                        let b = l + 1.772 * u;
                        data.extend([r, g, b].map(|c| c.round().clamp(0.0, 255.0) as u8));
                    }
                }
                RgbImage {
                    width: img.width,
                    height: img.height,
                    data,
                }
            }
        }
    }

    #[test]
    fn a_frame_is_cropped_onto_its_subject_in_yuv_and_rgb() {
        crate::init_ffmpeg();
        let frame = yuv_frame(640, 360, Orientation::default(), red_object_left);
        let crop = geometry::plan(&frame.shape(), Some(200), Some(200), Some(Fit::Crop));
        let smart = plan(&frame, 200, 200).unwrap();
        assert_eq!(smart.crop.width, crop.crop.width);
        assert_eq!(smart.crop.x, 0, "{smart:?}");
        // WebP goes through YUV planes, PNG through RGB: both crop there.
        for format in [Format::Webp, Format::Png] {
            let centred = rgb(picture::prepare(&frame, &crop, format).unwrap());
            let kept = rgb(picture::prepare(&frame, &smart, format).unwrap());
            assert!(
                red_share(&centred) < 0.001,
                "{format:?}: {}",
                red_share(&centred)
            );
            assert!(red_share(&kept) > 0.02, "{format:?}: {}", red_share(&kept));
        }
    }

    #[test]
    fn a_turned_frame_is_cropped_where_it_is_shown() {
        crate::init_ffmpeg();
        // Stored 360x640, shown turned a quarter clockwise: 640x360 with
        // the object on its left third, as in the frame above.
        let turned = Orientation {
            quarter_turns: 1,
            hflip: false,
        };
        // Stored (x, y) is shown at (639 - y, x): the stored left column
        // becomes the top row.
        let frame = yuv_frame(360, 640, turned, |x, y| red_object_left(639 - y, x));
        let w = window(&frame, 1.0).unwrap();
        assert!(w.x < 2.0 && (w.width - 360.0).abs() < 1e-6, "{w:?}");
        let smart = plan(&frame, 200, 200).unwrap();
        let kept = rgb(picture::prepare(&frame, &smart, Format::Png).unwrap());
        assert_eq!((kept.width, kept.height), (200, 200));
        assert!(red_share(&kept) > 0.02, "{}", red_share(&kept));
        // Its red sits left of the output's middle, as in the frame.
        let red_x: Vec<u32> = (0..200 * 200)
            .filter(|i| {
                let p = kept.pixel(i % 200, i / 200);
                p[0] > 180 && p[1] < 90
            })
            .map(|i| i % 200)
            .collect();
        let mean = red_x.iter().sum::<u32>() as f64 / red_x.len() as f64;
        // (x 30-130 of the 360 kept: 17-72 of 200.)
        assert!((30.0..60.0).contains(&mean), "{mean}");
    }
}
