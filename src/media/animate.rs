//! Encoding animations: animated WebP with libwebp's animation encoder, and
//! GIF with one NeuQuant palette for the whole animation (`color_quant`,
//! written by the `gif` crate). Encoders only: [`super::animated`] finds and
//! scales the frames.
//!
//! Both loop forever. Each keeps about one frame's worth of working memory
//! besides its output, whatever the number of frames (libwebp: one ARGB
//! picture and its own few canvases; GIF: four index planes, a 512 KiB
//! colour cache and a palette sample of at most [`PALETTE_SAMPLE`] pixels).
//!
//! Why one palette for the GIF: a palette per frame, trained on that frame
//! alone, gives the same area slightly different colours in consecutive
//! frames, which flickers in a video's flat areas; with one palette an
//! unchanged area keeps its indices, so only the changed rectangle of each
//! frame is stored. A preview spans a few seconds of one or two shots, which
//! 256 colours trained across all frames cover; training once also costs
//! less than training 300 times.

use std::borrow::Cow;
use std::os::raw::c_int;

use bytes::Bytes;
use color_quant::NeuQuant;
use libwebp_sys as sys;

use super::picture::RgbImage;

/// One frame of an animation: a picture of the animation's size, and how
/// long it shows. A picture shown for several ticks is best given once with
/// their total duration; consecutive identical pictures become one frame in
/// either format anyway. Durations in whole milliseconds should come from
/// rounded timestamps (`round((k + 1) * 1000 / fps) - round(k * 1000 / fps)`)
/// so the total stays exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnimFrame {
    pub picture: RgbImage,
    pub duration_ms: u32,
}

/// Most pixels, over all frames, the GIF palette is trained on.
pub const PALETTE_SAMPLE: usize = 1 << 18;

/// About how many of them NeuQuant learns from.
const LEARNING_STEPS: usize = PALETTE_SAMPLE / 3;

/// Shortest GIF frame delay, in centiseconds: browsers show a delay of 0
/// or 1 as 10. A frame due sooner after the previous one is not shown (its
/// time goes to the previous frame).
const MIN_GIF_DELAY_CS: u64 = 2;

/// Checks the frames against the canvas; the total duration in ms.
fn check(frames: &[AnimFrame], width: u32, height: u32, max_side: u32) -> Result<u64, String> {
    if frames.is_empty() {
        return Err("no frames".into());
    }
    if width == 0 || height == 0 || width > max_side || height > max_side {
        return Err(format!("a {width}x{height} animation cannot be encoded"));
    }
    let mut total = 0u64;
    for (i, f) in frames.iter().enumerate() {
        let p = &f.picture;
        if (p.width, p.height) != (width, height)
            || p.data.len() != p.width as usize * p.height as usize * 3
        {
            return Err(format!(
                "frame {i} is {}x{} ({} bytes), not the animation's {width}x{height}",
                p.width,
                p.height,
                p.data.len()
            ));
        }
        if f.duration_ms == 0 {
            return Err(format!("frame {i} has no duration"));
        }
        total += u64::from(f.duration_ms);
    }
    Ok(total)
}

/// Encodes `frames` as a lossy animated WebP at `quality` (1-100), looping
/// forever. libwebp stores each frame as the rectangle that changed, and
/// lengthens the previous frame instead of repeating it.
pub fn encode_webp(
    frames: &[AnimFrame],
    width: u32,
    height: u32,
    quality: u8,
) -> Result<Bytes, String> {
    // WebP's largest canvas side.
    let total = check(frames, width, height, 16383)?;
    if total > i32::MAX as u64 {
        return Err("the animation is too long".into());
    }
    let mut encoder = WebpAnimation::new(width, height, quality)?;
    for f in frames {
        encoder.add(&f.picture, f.duration_ms)?;
    }
    encoder.finish()
}

/// libwebp's animation encoder fed one frame at a time.
struct WebpAnimation {
    encoder: *mut sys::WebPAnimEncoder,
    config: sys::WebPConfig,
    width: u32,
    height: u32,
    /// Where the next frame starts, in ms.
    at_ms: i32,
}

impl Drop for WebpAnimation {
    fn drop(&mut self) {
        // SAFETY: made by WebPAnimEncoderNewInternal, deleted once.
        unsafe { sys::WebPAnimEncoderDelete(self.encoder) }
    }
}

impl WebpAnimation {
    fn new(width: u32, height: u32, quality: u8) -> Result<WebpAnimation, String> {
        let abi = sys::WEBP_MUX_ABI_VERSION as c_int;
        // SAFETY: a plain C struct that libwebp initialises.
        let mut options: sys::WebPAnimEncoderOptions = unsafe { std::mem::zeroed() };
        if unsafe { sys::WebPAnimEncoderOptionsInitInternal(&mut options, abi) } == 0 {
            return Err("libwebp version mismatch".into());
        }
        options.anim_params.loop_count = 0; // forever
                                            // SAFETY: the options are initialised; sizes were checked.
        let encoder = unsafe {
            sys::WebPAnimEncoderNewInternal(width as c_int, height as c_int, &options, abi)
        };
        if encoder.is_null() {
            return Err("cannot create the encoder".into());
        }
        let mut config = sys::WebPConfig::new().map_err(|_| "libwebp configuration")?;
        config.quality = f32::from(quality.clamp(1, 100));
        config.method = super::encode::WEBP_METHOD;
        Ok(WebpAnimation {
            encoder,
            config,
            width,
            height,
            at_ms: 0,
        })
    }

    /// The encoder's last error.
    fn error(&self) -> String {
        // SAFETY: null or a NUL-terminated string the encoder owns.
        let e = unsafe { sys::WebPAnimEncoderGetError(self.encoder) };
        if e.is_null() {
            "unknown error".to_owned()
        } else {
            unsafe { std::ffi::CStr::from_ptr(e) }
                .to_string_lossy()
                .into_owned()
        }
    }

    fn add(&mut self, picture: &RgbImage, duration_ms: u32) -> Result<(), String> {
        let end = i32::try_from(duration_ms)
            .ok()
            .and_then(|d| self.at_ms.checked_add(d))
            .ok_or("the animation is too long")?;
        let mut pic = sys::WebPPicture::new().map_err(|_| "libwebp picture")?;
        pic.width = self.width as c_int;
        pic.height = self.height as c_int;
        pic.use_argb = 1;
        // SAFETY: the picture holds `height` rows of `3 width` bytes
        // (checked by `check`); libwebp copies them into its own ARGB
        // buffer, freed below whatever happens. The encoder copies what it
        // keeps of the frame.
        let added = unsafe {
            if sys::WebPPictureImportRGB(&mut pic, picture.data.as_ptr(), (self.width * 3) as c_int)
                == 0
            {
                sys::WebPPictureFree(&mut pic);
                return Err("out of memory".into());
            }
            let added = sys::WebPAnimEncoderAdd(self.encoder, &mut pic, self.at_ms, &self.config);
            sys::WebPPictureFree(&mut pic);
            added
        };
        if added == 0 {
            return Err(self.error());
        }
        self.at_ms = end;
        Ok(())
    }

    fn finish(self) -> Result<Bytes, String> {
        // SAFETY: a null frame at the end of the last one closes the
        // animation; the assembled data is copied out, then freed.
        unsafe {
            if sys::WebPAnimEncoderAdd(
                self.encoder,
                std::ptr::null_mut(),
                self.at_ms,
                std::ptr::null(),
            ) == 0
            {
                return Err(self.error());
            }
            let mut data: sys::WebPData = std::mem::zeroed();
            if sys::WebPAnimEncoderAssemble(self.encoder, &mut data) == 0 {
                return Err(self.error());
            }
            let bytes = Bytes::copy_from_slice(std::slice::from_raw_parts(data.bytes, data.size));
            sys::WebPFree(data.bytes as *mut std::ffi::c_void);
            Ok(bytes)
        }
    }
}

/// Encodes `frames` as a GIF looping forever, with one 256-colour palette
/// trained on all of them (no dithering, which would shimmer from frame to
/// frame). Delays are centiseconds rounded from each frame's start time, so
/// the total stays right; a frame due less than [`MIN_GIF_DELAY_CS`] after
/// the one before is not shown, and repeated pictures lengthen the frame
/// before them. Each frame after the first stores only the rectangle that
/// changed.
pub fn encode_gif(frames: &[AnimFrame], width: u32, height: u32) -> Result<Bytes, String> {
    let total_ms = check(frames, width, height, u16::MAX as u32)?;
    let palette = Palette::train(frames);
    let mut out = Vec::new();
    {
        let (w, h) = (width as u16, height as u16);
        let mut encoder =
            gif::Encoder::new(&mut out, w, h, &palette.rgb).map_err(|e| e.to_string())?;
        encoder
            .set_repeat(gif::Repeat::Infinite)
            .map_err(|e| e.to_string())?;
        let mut writer = GifWriter {
            encoder,
            w,
            h,
            canvas: None,
            ready: None,
        };
        // The picture shown now (palette indices) and since when (cs),
        // until a change says how long it shows.
        let mut pending: Option<(Vec<u8>, u64)> = None;
        let mut next = vec![0u8; width as usize * height as usize];
        let mut cache = palette.cache();
        let mut start_ms = 0u64;
        for f in frames {
            palette.index(&f.picture.data, &mut cache, &mut next);
            let start_cs = (start_ms + 5) / 10;
            start_ms += u64::from(f.duration_ms);
            match &mut pending {
                None => pending = Some((next.clone(), start_cs)),
                Some((shown, _)) if *shown == next => {}
                Some((shown, since)) if start_cs - *since < MIN_GIF_DELAY_CS => {
                    shown.copy_from_slice(&next);
                }
                Some((shown, since)) => {
                    writer.shown(shown, start_cs - *since)?;
                    shown.copy_from_slice(&next);
                    *since = start_cs;
                }
            }
        }
        if let Some((shown, since)) = pending {
            writer.finish(&shown, ((total_ms + 5) / 10).saturating_sub(since))?;
        }
    }
    Ok(Bytes::from(out))
}

/// Writes GIF frames one behind, so that a last picture too short to show
/// can give its time to the one before.
struct GifWriter<W: std::io::Write> {
    encoder: gif::Encoder<W>,
    w: u16,
    h: u16,
    /// What the viewer shows after the frames written so far.
    canvas: Option<Vec<u8>>,
    /// A picture and its delay, decided but not yet written.
    ready: Option<(Vec<u8>, u64)>,
}

impl<W: std::io::Write> GifWriter<W> {
    /// `picture` shows for `delay_cs`.
    fn shown(&mut self, picture: &[u8], delay_cs: u64) -> Result<(), String> {
        let mut buffer = match self.ready.take() {
            Some((ready, delay)) => {
                self.write(&ready, delay)?;
                ready
            }
            None => Vec::with_capacity(picture.len()),
        };
        buffer.clear();
        buffer.extend_from_slice(picture);
        self.ready = Some((buffer, delay_cs));
        Ok(())
    }

    /// The last picture, due to show for `delay_cs`.
    fn finish(mut self, picture: &[u8], delay_cs: u64) -> Result<(), String> {
        match self.ready.take() {
            Some((ready, delay)) if delay_cs < MIN_GIF_DELAY_CS => {
                self.write(&ready, delay + delay_cs)
            }
            Some((ready, delay)) => {
                self.write(&ready, delay)?;
                self.write(picture, delay_cs)
            }
            None => self.write(picture, delay_cs.max(MIN_GIF_DELAY_CS)),
        }
    }

    /// Writes `picture` (palette indices, the whole canvas) as the
    /// rectangle in which it differs from the canvas, kept under later
    /// frames.
    fn write(&mut self, picture: &[u8], delay_cs: u64) -> Result<(), String> {
        let (w, h) = (self.w, self.h);
        let (left, top, rw, rh) = match &self.canvas {
            None => (0, 0, w, h),
            // Unchanged (a picture back within one frame): one pixel as it
            // was, to carry the delay.
            Some(c) => changed_rect(c, picture, w, h).unwrap_or((0, 0, 1, 1)),
        };
        let mut buffer = Vec::with_capacity(rw as usize * rh as usize);
        for y in top..top + rh {
            let row = y as usize * w as usize;
            buffer.extend_from_slice(&picture[row + left as usize..row + (left + rw) as usize]);
        }
        let frame = gif::Frame {
            left,
            top,
            width: rw,
            height: rh,
            delay: delay_cs.min(u16::MAX as u64) as u16,
            dispose: gif::DisposalMethod::Keep,
            buffer: Cow::Owned(buffer),
            ..gif::Frame::default()
        };
        self.encoder
            .write_frame(&frame)
            .map_err(|e| e.to_string())?;
        match &mut self.canvas {
            Some(c) => c.copy_from_slice(picture),
            None => self.canvas = Some(picture.to_vec()),
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

/// A palette trained on all frames, and the way to index a picture by it.
struct Palette {
    quant: NeuQuant,
    /// 256 RGB triples.
    rgb: Vec<u8>,
}

/// Bits of each channel a colour cache entry is keyed by: 2^18 entries, the
/// colours of a cell 4 levels wide all taking its centre's index.
const CACHE_BITS: u32 = 6;
const UNCACHED: u16 = u16::MAX;

impl Palette {
    fn train(frames: &[AnimFrame]) -> Palette {
        let per_frame = frames[0].picture.data.len() / 3;
        let total = per_frame * frames.len();
        // An odd stride, so consecutive rows are sampled at other columns.
        let step = total.div_ceil(PALETTE_SAMPLE) | 1;
        let mut sample = Vec::with_capacity((total / step + 1) * 4);
        let mut i = 0;
        while i < total {
            let (frame, at) = (i / per_frame, (i % per_frame) * 3);
            sample.extend_from_slice(&frames[frame].picture.data[at..at + 3]);
            sample.push(255);
            i += step;
        }
        // NeuQuant learns from one sample pixel in `factor` (1-30): about
        // 87,000 steps, ~60 ms, whatever the animation's size (more cost
        // more time for little: bench/RESULTS.md).
        let factor = (sample.len() / 4 / LEARNING_STEPS).clamp(1, 30) as i32;
        let quant = NeuQuant::new(factor, 256, &sample);
        let rgb = quant.color_map_rgb();
        Palette { quant, rgb }
    }

    /// An empty colour cache for [`Palette::index`].
    fn cache(&self) -> Vec<u16> {
        vec![UNCACHED; 1 << (3 * CACHE_BITS)]
    }

    /// Palette indices of the packed RGB `data` into `out`.
    fn index(&self, data: &[u8], cache: &mut [u16], out: &mut [u8]) {
        let shift = 8 - CACHE_BITS;
        let centre = 1u8 << (shift - 1);
        for (px, o) in data.chunks_exact(3).zip(out.iter_mut()) {
            let (r, g, b) = (px[0] >> shift, px[1] >> shift, px[2] >> shift);
            let key = (usize::from(r) << (2 * CACHE_BITS))
                | (usize::from(g) << CACHE_BITS)
                | usize::from(b);
            let mut index = cache[key];
            if index == UNCACHED {
                let colour = [
                    r << shift | centre,
                    g << shift | centre,
                    b << shift | centre,
                    255,
                ];
                index = self.quant.index_of(&colour) as u16;
                cache[key] = index;
            }
            *o = index as u8;
        }
    }
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
            // The previous frame's stripes with a square of this colour.
            8 if !(w / 4..w / 2).contains(&x) || !(h / 4..h / 2).contains(&y) => {
                expected(7, x, y, w, h, colours)
            }
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
        // Frame 8 is frame 7 with a square: only the square was stored.
        let stored: Vec<(u16, u16)> = gif_frame_sizes(&bytes);
        assert_eq!(stored[8], (16, 12));
        assert_eq!(stored[0], (64, 48));
    }

    fn gif_frame_sizes(bytes: &[u8]) -> Vec<(u16, u16)> {
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::Indexed);
        let mut reader = options.read_info(bytes).unwrap();
        let mut sizes = Vec::new();
        while let Some(frame) = reader.read_next_frame().unwrap() {
            sizes.push((frame.width, frame.height));
        }
        sizes
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
