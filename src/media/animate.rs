//! Encoding animations, one frame at a time as frames are decoded:
//! animated WebP with libwebp's animation encoder, and GIF with palettes
//! made in [`super::palette`] (Wu's quantizer and k-means, `quantette`)
//! written by the `gif` crate. Encoders only: [`super::animated`] finds and
//! scales the frames; the calls into libwebp are [`super::ffi::webp`]'s.
//!
//! Both loop forever, and both keep about one frame's worth of working
//! memory besides their output, whatever the number of frames (libwebp:
//! one ARGB picture and its own few canvases; GIF: four index planes and a
//! 512 KiB colour cache).
//!
//! GIF palettes are per shot, not per frame: one is made for a frame and
//! kept while later frames come out nearly as well under it
//! (`RETRAIN_RATIO`), and a new one is made for the first frame that does
//! not (a cut, a fade, a pan to new colours). A palette made for each frame
//! alone gives an unchanged area slightly different colours from frame to
//! frame, which flickers in a video's flat areas; under a kept palette the
//! area keeps its indices, so only each frame's changed rectangle is stored,
//! its unchanged pixels transparent where that makes longer runs.
//! On a pan across a detailed picture (bench/RESULTS.md) that was 7.5x
//! faster than the `gif` crate's palette per frame at 320 wide, 14%
//! smaller and 3.3 dB better. One palette for all frames would need them
//! all before writing the first.

#![deny(unsafe_code)]

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;

use super::ffi::webp::AnimEncoder;
use super::palette::{Palette, CACHE_BITS, UNCACHED};
use super::pixels::RgbImage;

/// One frame of an animation, for [`encode_webp`] and [`encode_gif`]: a
/// picture of the animation's size, and how long it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnimFrame {
    pub picture: RgbImage,
    pub duration_ms: u32,
}

/// Shortest GIF frame delay, in centiseconds: browsers show a delay of 0
/// or 1 as 10. A frame due sooner after the previous one is not shown (its
/// time goes to the previous frame).
const MIN_GIF_DELAY_CS: u64 = 2;

/// A GIF frame whose error under the current palette exceeds the error the
/// palette had on the frame it was trained on by this factor (1.8 dB of
/// PSNR), plus [`RETRAIN_FLOOR`], gets a palette of its own.
const RETRAIN_RATIO: f64 = 1.5;

/// Error (squared, summed over the channels, per pixel) any frame may add
/// without a new palette, as when 1% of it is 8 levels off: a palette
/// trained on a flat frame has no error of its own to compare with.
const RETRAIN_FLOOR: f64 = 2.0;

fn check_size(width: u32, height: u32, max_side: u32) -> Result<(), String> {
    if width == 0 || height == 0 || width > max_side || height > max_side {
        return Err(format!("a {width}x{height} animation cannot be encoded"));
    }
    Ok(())
}

fn check_frame(
    picture: &RgbImage,
    duration_ms: u32,
    width: u32,
    height: u32,
) -> Result<(), String> {
    let p = picture;
    if (p.width, p.height) != (width, height)
        || p.data.len() != width as usize * height as usize * 3
    {
        return Err(format!(
            "a {}x{} frame ({} bytes) in a {width}x{height} animation",
            p.width,
            p.height,
            p.data.len()
        ));
    }
    if duration_ms == 0 {
        return Err("a frame without duration".into());
    }
    Ok(())
}

/// Encodes `frames` as a lossy animated WebP at `quality` (1-100).
pub fn encode_webp(
    frames: &[AnimFrame],
    width: u32,
    height: u32,
    quality: u8,
) -> Result<Bytes, String> {
    let mut encoder = WebpAnimation::new(width, height, quality)?;
    for f in frames {
        encoder.add(&f.picture, f.duration_ms)?;
    }
    encoder.finish()
}

/// Encodes `frames` as a GIF ([`GifAnimation`]).
pub fn encode_gif(frames: &[AnimFrame], width: u32, height: u32) -> Result<Bytes, String> {
    let mut encoder = GifAnimation::new(width, height)?;
    for f in frames {
        encoder.add(&f.picture, f.duration_ms)?;
    }
    encoder.finish()
}

/// A lossy animated WebP being encoded, looping forever. libwebp stores each
/// frame as the rectangle that changed, and lengthens the previous frame
/// instead of repeating an identical one.
pub struct WebpAnimation {
    encoder: AnimEncoder,
    width: u32,
    height: u32,
    /// Where the next frame starts, in ms.
    at_ms: i32,
    frames: usize,
}

impl WebpAnimation {
    /// A `width` x `height` animation at `quality` (1-100).
    pub fn new(width: u32, height: u32, quality: u8) -> Result<WebpAnimation, String> {
        // WebP's largest canvas side.
        check_size(width, height, 16383)?;
        let encoder = AnimEncoder::new(width, height, quality, super::encode::WEBP_METHOD)?;
        Ok(WebpAnimation {
            encoder,
            width,
            height,
            at_ms: 0,
            frames: 0,
        })
    }

    /// Adds `picture`, shown for `duration_ms` after the frames before.
    /// Durations from rounded start times (`round((k + 1) * 1000 / fps) -
    /// round(k * 1000 / fps)`) keep the total exact.
    pub fn add(&mut self, picture: &RgbImage, duration_ms: u32) -> Result<(), String> {
        check_frame(picture, duration_ms, self.width, self.height)?;
        let end = i32::try_from(duration_ms)
            .ok()
            .and_then(|d| self.at_ms.checked_add(d))
            .ok_or("the animation is too long")?;
        self.encoder.add(&picture.data, self.at_ms)?;
        self.at_ms = end;
        self.frames += 1;
        Ok(())
    }

    /// The animation's bytes.
    pub fn finish(self) -> Result<Bytes, String> {
        if self.frames == 0 {
            return Err("no frames".into());
        }
        self.encoder.finish(self.at_ms)
    }
}

/// A GIF being encoded, looping forever, without dithering (which would
/// shimmer from frame to frame), with palettes per shot (module docs).
/// Delays are centiseconds rounded from each frame's start time, so the
/// total stays right; a frame due less than 2 cs after the one before is
/// not shown, and an identical frame lengthens the one before instead.
pub struct GifAnimation {
    width: u16,
    height: u16,
    writer: GifWriter,
    /// The palette in use, the error it had on the frame it was trained
    /// on, and its colour cache.
    palette: Option<(Arc<Palette>, f64)>,
    cache: Vec<u16>,
    /// The frame being added, as indices.
    next: Vec<u8>,
    /// The picture shown now, until a change says how long it shows.
    pending: Option<Shown>,
    /// Where the next frame starts, in ms.
    start_ms: u64,
}

/// A picture as palette indices (the whole canvas), its palette, and when
/// it starts showing or how long it shows (cs).
struct Shown {
    indices: Vec<u8>,
    palette: Arc<Palette>,
    cs: u64,
}

impl GifAnimation {
    pub fn new(width: u32, height: u32) -> Result<GifAnimation, String> {
        check_size(width, height, u16::MAX as u32)?;
        Ok(GifAnimation {
            width: width as u16,
            height: height as u16,
            writer: GifWriter {
                encoder: None,
                w: width as u16,
                h: height as u16,
                canvas: None,
                ready: None,
            },
            palette: None,
            cache: vec![UNCACHED; 1 << (3 * CACHE_BITS)],
            next: vec![0; width as usize * height as usize],
            pending: None,
            start_ms: 0,
        })
    }

    /// Adds `picture`, shown for `duration_ms` after the frames before.
    /// Durations from rounded start times (`round((k + 1) * 1000 / fps) -
    /// round(k * 1000 / fps)`) keep the total exact.
    pub fn add(&mut self, picture: &RgbImage, duration_ms: u32) -> Result<(), String> {
        check_frame(picture, duration_ms, self.width.into(), self.height.into())?;
        let data = &picture.data;
        let kept = match &self.palette {
            Some((palette, trained)) => {
                let error = palette.index(data, &mut self.cache, &mut self.next);
                (error <= RETRAIN_RATIO * trained + RETRAIN_FLOOR).then(|| palette.clone())
            }
            None => None,
        };
        let palette = match kept {
            Some(palette) => palette,
            None => {
                let palette = Arc::new(Palette::train(data));
                self.cache.fill(UNCACHED);
                let error = palette.index(data, &mut self.cache, &mut self.next);
                self.palette = Some((palette.clone(), error));
                palette
            }
        };
        let start_cs = (self.start_ms + 5) / 10;
        self.start_ms += u64::from(duration_ms);
        match &mut self.pending {
            None => {
                self.pending = Some(Shown {
                    indices: self.next.clone(),
                    palette,
                    cs: start_cs,
                })
            }
            Some(p) if Arc::ptr_eq(&p.palette, &palette) && p.indices == self.next => {}
            Some(p) if start_cs - p.cs < MIN_GIF_DELAY_CS => {
                p.indices.copy_from_slice(&self.next);
                p.palette = palette;
            }
            Some(p) => {
                let delay = start_cs - p.cs;
                self.writer.shown(p, delay)?;
                p.indices.copy_from_slice(&self.next);
                p.palette = palette;
                p.cs = start_cs;
            }
        }
        Ok(())
    }

    /// The animation's bytes.
    pub fn finish(self) -> Result<Bytes, String> {
        let Some(mut last) = self.pending else {
            return Err("no frames".into());
        };
        last.cs = ((self.start_ms + 5) / 10).saturating_sub(last.cs);
        self.writer.finish(last)
    }
}

/// Writes GIF frames one behind, so that a last picture too short to show
/// can give its time to the one before.
struct GifWriter {
    /// Made at the first frame, with its palette as the global one.
    encoder: Option<(gif::Encoder<Vec<u8>>, Arc<Palette>)>,
    w: u16,
    h: u16,
    /// What the viewer shows after the frames written so far, as indices
    /// into the palette of the last one.
    canvas: Option<(Vec<u8>, Arc<Palette>)>,
    /// A picture and its delay, decided but not yet written.
    ready: Option<Shown>,
}

impl GifWriter {
    /// `shown` shows for `delay_cs`.
    fn shown(&mut self, shown: &Shown, delay_cs: u64) -> Result<(), String> {
        let mut indices = match self.ready.take() {
            Some(ready) => {
                self.write(&ready)?;
                ready.indices
            }
            None => Vec::with_capacity(shown.indices.len()),
        };
        indices.clear();
        indices.extend_from_slice(&shown.indices);
        self.ready = Some(Shown {
            indices,
            palette: shown.palette.clone(),
            cs: delay_cs,
        });
        Ok(())
    }

    /// Writes what is left, `last` showing for its `cs`.
    fn finish(mut self, mut last: Shown) -> Result<Bytes, String> {
        match self.ready.take() {
            Some(mut ready) if last.cs < MIN_GIF_DELAY_CS => {
                ready.cs += last.cs;
                self.write(&ready)?;
            }
            Some(ready) => {
                self.write(&ready)?;
                self.write(&last)?;
            }
            None => {
                last.cs = last.cs.max(MIN_GIF_DELAY_CS);
                self.write(&last)?;
            }
        }
        let (encoder, _) = self.encoder.ok_or("no frames")?;
        Ok(Bytes::from(
            encoder.into_inner().map_err(|e| e.to_string())?,
        ))
    }

    /// Writes `shown` (its `cs` the delay) as the rectangle in which it
    /// differs from the canvas, kept under later frames; whole, with its
    /// palette, when that is not the canvas's.
    fn write(&mut self, shown: &Shown) -> Result<(), String> {
        let (w, h) = (self.w, self.h);
        let (encoder, global) = match &mut self.encoder {
            Some(e) => e,
            None => {
                // The first frame's palette is the global one.
                let mut e = gif::Encoder::new(Vec::new(), w, h, &shown.palette.rgb)
                    .map_err(|e| e.to_string())?;
                e.set_repeat(gif::Repeat::Infinite)
                    .map_err(|e| e.to_string())?;
                self.encoder.insert((e, shown.palette.clone()))
            }
        };
        // Under the canvas's palette, only the rectangle that changed is
        // stored.
        let same = match &self.canvas {
            Some((c, p)) if Arc::ptr_eq(p, &shown.palette) => Some(c),
            _ => None,
        };
        let (left, top, rw, rh) = match same {
            // Unchanged (a picture back within one frame): one pixel as it
            // was, to carry the delay.
            Some(c) => changed_rect(c, &shown.indices, w, h).unwrap_or((0, 0, 1, 1)),
            None => (0, 0, w, h),
        };
        let rect = |y: u16| {
            let row = y as usize * w as usize;
            row + left as usize..row + (left + rw) as usize
        };
        let mut indices = Vec::with_capacity(rw as usize * rh as usize);
        for y in top..top + rh {
            indices.extend_from_slice(&shown.indices[rect(y)]);
        }
        let mut transparent = None;
        if let Some(canvas) = same {
            // Each pixel the canvas already shows, transparent, where that
            // makes fewer runs of one index: long runs where little moved
            // (a still camera: 40-70% smaller), while on a pan the pixels
            // that happen to keep their index would only break runs (6%
            // larger). Runs stand in for what LZW makes of them: on
            // bench/pipeline.rs's animations this came within 1% of
            // compressing both ways and keeping the smaller, which took
            // twice the time.
            let t = shown.palette.transparent();
            let mut see_through = Vec::with_capacity(indices.len());
            for y in top..top + rh {
                let span = rect(y);
                see_through.extend(
                    shown.indices[span.clone()]
                        .iter()
                        .zip(&canvas[span])
                        .map(|(&now, &was)| if now == was { t } else { now }),
                );
            }
            let runs = |v: &[u8]| v.windows(2).filter(|p| p[0] != p[1]).count();
            if runs(&see_through) < runs(&indices) {
                indices = see_through;
                transparent = Some(t);
            }
        }
        let mut frame = gif::Frame {
            left,
            top,
            width: rw,
            height: rh,
            delay: shown.cs.min(u16::MAX as u64) as u16,
            dispose: gif::DisposalMethod::Keep,
            transparent,
            buffer: Cow::Owned(indices),
            ..gif::Frame::default()
        };
        // Any palette but the global one goes with its frame.
        frame.palette = (!Arc::ptr_eq(global, &shown.palette)).then(|| shown.palette.rgb.clone());
        encoder.write_frame(&frame).map_err(|e| e.to_string())?;
        match &mut self.canvas {
            Some((c, p)) => {
                c.copy_from_slice(&shown.indices);
                *p = shown.palette.clone();
            }
            None => self.canvas = Some((shown.indices.clone(), shown.palette.clone())),
        }
        Ok(())
    }
}
/// The smallest rectangle (left, top, width, height) holding every pixel
/// where `a` and `b` differ; `None` when they are the same.
fn changed_rect(a: &[u8], b: &[u8], w: u16, h: u16) -> Option<(u16, u16, u16, u16)> {
    let w = w as usize;
    let rows: Vec<usize> = (0..h as usize)
        .filter(|&y| a[y * w..(y + 1) * w] != b[y * w..(y + 1) * w])
        .collect();
    let (&top, &bottom) = (rows.first()?, rows.last()?);
    let (mut left, mut right) = (w, 0);
    for &y in &rows {
        let (ra, rb) = (&a[y * w..(y + 1) * w], &b[y * w..(y + 1) * w]);
        if let Some(x) = (0..w).find(|&x| ra[x] != rb[x]) {
            left = left.min(x);
        }
        if let Some(x) = (0..w).rev().find(|&x| ra[x] != rb[x]) {
            right = right.max(x);
        }
    }
    Some((
        left as u16,
        top as u16,
        (right - left + 1) as u16,
        (bottom - top + 1) as u16,
    ))
}

#[cfg(test)]
mod tests {
    use image::codecs::gif::GifDecoder;
    use image::codecs::webp::WebPDecoder;
    use image::AnimationDecoder;

    use super::*;

    /// Ten distinct colours, the last three as patterns (stripes, a
    /// square on the previous colour, a gradient).
    fn ten_frames(w: u32, h: u32, durations: &[u32]) -> Vec<AnimFrame> {
        const COLOURS: [[u8; 3]; 10] = [
            [220, 30, 30],
            [30, 200, 40],
            [30, 60, 220],
            [240, 230, 30],
            [250, 250, 250],
            [10, 10, 10],
            [200, 40, 200],
            [40, 200, 200],
            [128, 128, 128],
            [250, 140, 20],
        ];
        (0..10)
            .map(|k| {
                let mut picture = RgbImage::black(w, h);
                for (i, px) in picture.data.chunks_exact_mut(3).enumerate() {
                    px.copy_from_slice(&expected(k, i as u32 % w, i as u32 / w, w, h, &COLOURS));
                }
                AnimFrame {
                    picture,
                    duration_ms: durations[k],
                }
            })
            .collect()
    }

    fn expected(k: usize, x: u32, y: u32, w: u32, h: u32, colours: &[[u8; 3]; 10]) -> [u8; 3] {
        match k {
            // Horizontal stripes 8 rows high of two colours.
            7 if (y / 8) % 2 == 1 => colours[2],
            // The previous frame's stripes with a square of one of their
            // colours (so that its palette serves).
            8 if (w / 4..w / 2).contains(&x) && (h / 4..h / 2).contains(&y) => colours[2],
            8 => expected(7, x, y, w, h, colours),
            // A left-to-right grey ramp.
            9 => {
                let v = (x * 255 / (w - 1)) as u8;
                [v, v, v]
            }
            _ => colours[k],
        }
    }

    fn assert_near(got: [u8; 3], want: [u8; 3], tolerance: i32, what: &str) {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (*g as i32 - w as i32).abs() <= tolerance,
                "{what}: got {got:?}, want {want:?}"
            );
        }
    }

    /// Each decoded frame's delay in ms and its pixels.
    fn decoded<'a>(frames: impl AnimationDecoder<'a>) -> Vec<(f64, image::RgbaImage)> {
        frames
            .into_frames()
            .map(|f| {
                let f = f.unwrap();
                let (n, d) = f.delay().numer_denom_ms();
                (n as f64 / d as f64, f.into_buffer())
            })
            .collect()
    }

    /// Every third pixel of each decoded frame against its picture, away
    /// from sharp edges (where lossy WebP rings).
    fn check_pictures(
        got: &[(f64, image::RgbaImage)],
        want: &[AnimFrame],
        tolerance: i32,
        what: &str,
    ) {
        for (k, ((_, img), f)) in got.iter().zip(want).enumerate() {
            let p = &f.picture;
            assert_eq!(img.dimensions(), (p.width, p.height));
            for y in (2..p.height - 2).step_by(3) {
                for x in (2..p.width - 2).step_by(3) {
                    let want = p.pixel(x, y);
                    let edge = [
                        (x - 2, y - 2),
                        (x + 2, y - 2),
                        (x - 2, y + 2),
                        (x + 2, y + 2),
                    ]
                    .iter()
                    .any(|&(nx, ny)| {
                        let n = p.pixel(nx, ny);
                        (0..3).any(|c| (n[c] as i32 - want[c] as i32).abs() > 8)
                    });
                    if edge {
                        continue;
                    }
                    let [r, g, b, a] = img.get_pixel(x, y).0;
                    assert_eq!(a, 255);
                    let at = format!("{what} frame {k} at {x},{y}");
                    assert_near([r, g, b], want, tolerance, &at);
                }
            }
        }
    }

    const DURATIONS: [u32; 10] = [100, 200, 50, 40, 1000, 120, 80, 60, 250, 100];

    #[test]
    fn webp_frames_keep_their_order_durations_and_colours() {
        let frames = ten_frames(64, 48, &DURATIONS);
        let bytes = encode_webp(&frames, 64, 48, 90).unwrap();
        let got = decoded(WebPDecoder::new(std::io::Cursor::new(&bytes[..])).unwrap());
        assert_eq!(got.len(), 10);
        let delays: Vec<f64> = got.iter().map(|(d, _)| *d).collect();
        assert_eq!(delays, DURATIONS.map(f64::from));
        // Lossy, and a ramp's chroma is subsampled.
        check_pictures(&got, &frames, 12, "webp");
    }

    #[test]
    fn gif_frames_keep_their_order_durations_and_colours() {
        let frames = ten_frames(64, 48, &DURATIONS);
        let bytes = encode_gif(&frames, 64, 48).unwrap();
        let got = decoded(GifDecoder::new(std::io::Cursor::new(&bytes[..])).unwrap());
        assert_eq!(got.len(), 10);
        let delays: Vec<f64> = got.iter().map(|(d, _)| *d).collect();
        assert_eq!(delays, DURATIONS.map(f64::from));
        // 256 colours for 9 flat ones and a 64-step ramp.
        check_pictures(&got, &frames, 6, "gif");
        // Frame 8 is frame 7 with a blue square (x 16-31, y 12-23) over
        // blue (rows 8-15) and cyan (16-23) stripes: only the part over
        // cyan was stored. Frame 9 (new colours) has a palette of its own.
        let stored = gif_frames(&bytes);
        assert_eq!(stored[0], ((0, 0, 64, 48), false));
        assert_eq!(stored[8], ((16, 16, 16, 8), true));
        assert_eq!(stored[9], ((0, 0, 64, 48), true));
    }

    /// Each stored GIF frame's rectangle, and whether it has a palette.
    #[test]
    fn unchanged_pixels_of_a_changed_rectangle_are_transparent() {
        // Few colours (an exact palette): a mark drawn at the top left of
        // frame 0 moves to the bottom right.
        let (w, h) = (32u32, 32u32);
        let picture = |at: u32| {
            let mut data = Vec::new();
            for y in 0..h {
                for x in 0..w {
                    let mark = (at..at + 4).contains(&x) && (at..at + 4).contains(&y);
                    let colour = if mark {
                        [250, 20, 20]
                    } else {
                        [(x / 8 * 60) as u8, (y / 8 * 60) as u8, 90]
                    };
                    data.extend_from_slice(&colour);
                }
            }
            AnimFrame {
                picture: RgbImage {
                    width: w,
                    height: h,
                    data,
                },
                duration_ms: 100,
            }
        };
        let frames = [picture(2), picture(24)];
        let bytes = encode_gif(&frames, w, h).unwrap();
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::Indexed);
        let mut reader = options.read_info(&bytes[..]).unwrap();
        reader.read_next_frame().unwrap().unwrap();
        let second = reader.read_next_frame().unwrap().unwrap();
        assert_eq!(
            (second.left, second.top, second.width, second.height),
            (2, 2, 26, 26)
        );
        let t = second.transparent.expect("a transparent index");
        // Only the two marks' pixels are stored; the rest shows through.
        assert_eq!(second.buffer.iter().filter(|&&i| i != t).count(), 32);
        // What a viewer shows is each picture.
        let shown = decoded(GifDecoder::new(std::io::Cursor::new(&bytes[..])).unwrap());
        for (k, (_, img)) in shown.iter().enumerate() {
            for (px, want) in img.pixels().zip(frames[k].picture.data.chunks_exact(3)) {
                assert_eq!(&px.0[..3], want, "frame {k}");
            }
        }
    }

    fn gif_frames(bytes: &[u8]) -> Vec<((u16, u16, u16, u16), bool)> {
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::Indexed);
        let mut reader = options.read_info(bytes).unwrap();
        let mut frames = Vec::new();
        while let Some(f) = reader.read_next_frame().unwrap() {
            frames.push(((f.left, f.top, f.width, f.height), f.palette.is_some()));
        }
        frames
    }

    #[test]
    fn gif_centiseconds_add_up_to_the_duration() {
        // 30 fps for one second, durations from rounded timestamps.
        let ms = |k: u32| (f64::from(k) * 1000.0 / 30.0).round() as u32;
        let durations: Vec<u32> = (0..30).map(|k| ms(k + 1) - ms(k)).collect();
        let mut frames = Vec::new();
        for (k, &d) in durations.iter().enumerate() {
            // Every frame a grey of its own.
            let mut picture = RgbImage::black(8, 8);
            picture.data.fill(k as u8 * 8);
            frames.push(AnimFrame {
                picture,
                duration_ms: d,
            });
        }
        let got = decoded(
            GifDecoder::new(std::io::Cursor::new(
                &encode_gif(&frames, 8, 8).unwrap()[..],
            ))
            .unwrap(),
        );
        assert_eq!(got.len(), 30);
        let delays: Vec<f64> = got.iter().map(|(d, _)| *d).collect();
        assert_eq!(delays.iter().sum::<f64>(), 1000.0, "{delays:?}");
        assert!(
            delays.iter().all(|d| *d == 30.0 || *d == 40.0),
            "{delays:?}"
        );
    }

    #[test]
    fn repeated_pictures_become_one_longer_frame() {
        let mut frames = ten_frames(16, 16, &[100; 10]);
        frames.truncate(3);
        frames.insert(1, frames[0].clone());
        let gif = decoded(
            GifDecoder::new(std::io::Cursor::new(
                &encode_gif(&frames, 16, 16).unwrap()[..],
            ))
            .unwrap(),
        );
        let webp = decoded(
            WebPDecoder::new(std::io::Cursor::new(
                &encode_webp(&frames, 16, 16, 80).unwrap()[..],
            ))
            .unwrap(),
        );
        for got in [gif, webp] {
            let delays: Vec<f64> = got.iter().map(|(d, _)| *d).collect();
            assert_eq!(delays, [200.0, 100.0, 100.0]);
        }
    }

    #[test]
    fn gif_frames_too_short_to_show_give_their_time_to_the_one_before() {
        // 100 fps: every other frame would be 1 cs, which browsers show as 10.
        let mut frames = ten_frames(8, 8, &[10; 10]);
        frames[0].duration_ms = 15;
        let got = decoded(
            GifDecoder::new(std::io::Cursor::new(
                &encode_gif(&frames, 8, 8).unwrap()[..],
            ))
            .unwrap(),
        );
        let delays: Vec<f64> = got.iter().map(|(d, _)| *d).collect();
        assert!(delays.iter().all(|d| *d >= 20.0), "{delays:?}");
        assert_eq!(delays.iter().sum::<f64>(), 110.0, "{delays:?}");
    }

    #[test]
    fn frames_must_fit_the_canvas() {
        let frames = ten_frames(8, 8, &[100; 10]);
        assert!(encode_gif(&frames, 8, 9).is_err());
        assert!(encode_webp(&frames, 9, 8, 80).is_err());
        assert!(encode_gif(&[], 8, 8).is_err());
        let mut zero = frames.clone();
        zero[3].duration_ms = 0;
        assert!(encode_webp(&zero, 8, 8, 80).is_err());
    }
}
