//! Placeholders of a frame, for pages that show something before the
//! thumbnail loads: a BlurHash and a ThumbHash string, and an LQIP (a tiny
//! lossy WebP). All three come from one small RGB copy of the frame as a
//! player shows it (turned, pixels stretched, HDR tone-mapped), made by the
//! same scaling as thumbnails; the frame itself is not changed, so it can
//! come from the frame cache and serve thumbnails too.

#![deny(unsafe_code)]

use bytes::Bytes;

use super::geometry;
use super::picture::{self, Picture, RgbImage};
use super::stream::DecodedFrame;
use super::{encode, Format, MediaError};

/// The longer side of the small copy, in pixels: the LQIP's size, and what
/// both hashes are computed from (ThumbHash takes at most 100; a BlurHash
/// of 4x3 waves averages the same at 32 as at full size).
pub const SIDE: u32 = 32;

/// The LQIP's WebP quality. A browser shows it stretched and blurred, so
/// detail is wasted: at 60 a 32x18 frame is 170-290 bytes on the test's
/// frames and 240 on 1080p testsrc2; 80 adds a quarter for no visible gain
/// at that size (its 4:2:0 chroma, not the quantiser, loses the most).
const LQIP_QUALITY: u8 = 60;

/// BlurHash waves along the longer side; the shorter side gets 3 or 4 by
/// its share (16:9 and 4:3 get 4x3, a square 4x4, a portrait 3x4).
const BLURHASH_LONG: u32 = 4;

/// A frame's placeholders and what they stand for.
#[derive(Debug, Clone, PartialEq)]
pub struct Placeholder {
    /// The BlurHash string (woltapp's format, base 83).
    pub blurhash: String,
    /// The ThumbHash bytes (Evan Wallace's format; pages get it in base64).
    pub thumbhash: Vec<u8>,
    /// The frame as a lossy WebP, [`SIDE`] pixels on its longer side.
    pub lqip: Bytes,
    /// The frame's displayed size: its pixels stretched by their aspect
    /// ratio, then turned; what a page reserves for the picture.
    pub width: u32,
    pub height: u32,
    /// Seconds into the video of the frame.
    pub time_secs: f64,
}

/// The placeholders of `frame`. Blocking: about 2 ms for a 1080p frame,
/// most of it the scale, which reads the whole frame (bench/RESULTS.md,
/// "Placeholders"); run it off the async runtime.
pub fn placeholder(frame: &DecodedFrame) -> Result<Placeholder, MediaError> {
    let shape = frame.shape();
    let (dw, dh) = shape.display_size();
    let box_size = if dw >= dh {
        (Some(SIDE), None)
    } else {
        (None, Some(SIDE))
    };
    let plan = geometry::plan(&shape, box_size.0, box_size.1, None);
    // PNG asks for RGB, whatever the frame's form: the hashes take RGB.
    let Picture::Rgb(small) = picture::prepare(frame, &plan, Format::Png)? else {
        return Err(MediaError::Internal("expected an RGB picture".into()));
    };
    let (blurhash, thumbhash) = hashes(&small)?;
    let lqip = encode::encode(Picture::Rgb(small), Format::Webp, Some(LQIP_QUALITY))?;
    Ok(Placeholder {
        blurhash,
        thumbhash,
        lqip,
        width: (dw.round() as u32).max(1),
        height: (dh.round() as u32).max(1),
        time_secs: frame.time_secs,
    })
}

/// The BlurHash and ThumbHash of a small picture (at most 100 pixels a
/// side: ThumbHash's limit).
fn hashes(small: &RgbImage) -> Result<(String, Vec<u8>), MediaError> {
    let rgba: Vec<u8> = small
        .data
        .chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    let (x, y) = blurhash_components(small.width, small.height);
    let blurhash = blurhash::encode(x, y, small.width, small.height, &rgba)
        .map_err(|e| MediaError::Internal(format!("blurhash: {e}")))?;
    let thumbhash =
        thumbhash::rgba_to_thumb_hash(small.width as usize, small.height as usize, &rgba);
    Ok((blurhash, thumbhash))
}

/// BlurHash components (across, down) for a picture of this shape.
fn blurhash_components(width: u32, height: u32) -> (u32, u32) {
    let (long, short) = (width.max(height), width.min(height));
    let across_short = ((BLURHASH_LONG * short) as f64 / long.max(1) as f64).round() as u32;
    let short_waves = across_short.clamp(3, BLURHASH_LONG);
    if width >= height {
        (BLURHASH_LONG, short_waves)
    } else {
        (short_waves, BLURHASH_LONG)
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::media::geometry::Orientation;
    use crate::media::stream::painted_frame as frame;

    /// A BlurHash's components (across, down), from its first character.
    fn components(hash: &str) -> (u32, u32) {
        const BASE83: &str =
            "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";
        let flag = BASE83.find(&hash[..1]).unwrap() as u32;
        (flag % 9 + 1, flag / 9 + 1)
    }

    /// Left half red, right half blue.
    fn red_blue(x: u32, width: u32) -> [u8; 3] {
        if x < width / 2 {
            [220, 30, 30]
        } else {
            [30, 30, 220]
        }
    }

    /// The mean absolute difference per channel between two RGB(A)
    /// pictures of one size, each `stride` bytes a pixel.
    fn difference(a: &[u8], a_stride: usize, b: &[u8], b_stride: usize) -> f64 {
        let pixels = a.len() / a_stride;
        assert_eq!(pixels, b.len() / b_stride);
        let total: u64 = a
            .chunks_exact(a_stride)
            .zip(b.chunks_exact(b_stride))
            .map(|(p, q)| (0..3).map(|c| p[c].abs_diff(q[c]) as u64).sum::<u64>())
            .sum();
        total as f64 / (pixels * 3) as f64
    }

    /// The small copy the placeholders stand for, made as they make it.
    fn small(frame: &DecodedFrame) -> RgbImage {
        let shape = frame.shape();
        let (dw, dh) = shape.display_size();
        let plan = if dw >= dh {
            geometry::plan(&shape, Some(SIDE), None, None)
        } else {
            geometry::plan(&shape, None, Some(SIDE), None)
        };
        match picture::prepare(frame, &plan, Format::Png).unwrap() {
            Picture::Rgb(img) => img,
            Picture::Yuv420(_) => unreachable!(),
        }
    }

    #[test]
    fn components_follow_the_shape() {
        assert_eq!(blurhash_components(32, 18), (4, 3));
        assert_eq!(blurhash_components(32, 24), (4, 3));
        assert_eq!(blurhash_components(32, 32), (4, 4));
        assert_eq!(blurhash_components(18, 32), (3, 4));
        assert_eq!(blurhash_components(32, 1), (4, 3));
    }

    #[test]
    fn hashes_decode_back_to_the_frame() {
        let mut f = frame(320, 180, Orientation::default(), |x, _| red_blue(x, 320));
        f.time_secs = 1.5;
        let p = placeholder(&f).unwrap();
        assert_eq!((p.width, p.height, p.time_secs), (320, 180, 1.5));
        assert_eq!(components(&p.blurhash), (4, 3));
        let img = small(&f);
        assert_eq!((img.width, img.height), (32, 18));
        let decoded = blurhash::decode(&p.blurhash, 32, 18, 1.0).unwrap();
        let near = difference(&decoded, 4, &img.data, 3);
        // The same hash against the mirrored picture (blue on the left).
        let mirrored: Vec<u8> = (0..18)
            .flat_map(|_| (0..32).flat_map(|x| red_blue(31 - x, 32)))
            .collect();
        let far = difference(&decoded, 4, &mirrored, 3);
        assert!(near < 30.0 && far > 3.0 * near, "near {near}, far {far}");

        let (w, h, rgba) = thumbhash::thumb_hash_to_rgba(&p.thumbhash).unwrap();
        assert_eq!((w, h), (32, 18), "ThumbHash keeps the aspect ratio");
        let near = difference(&rgba, 4, &img.data, 3);
        let far = difference(&rgba, 4, &mirrored, 3);
        assert!(near < 30.0 && far > 3.0 * near, "near {near}, far {far}");
    }

    #[test]
    fn placeholders_are_of_the_frame_as_displayed() {
        // Stored sideways: red on the left, shown turned a quarter
        // clockwise: red on top, portrait.
        let turned = Orientation {
            quarter_turns: 1,
            hflip: false,
        };
        let f = frame(320, 180, turned, |x, _| red_blue(x, 320));
        let p = placeholder(&f).unwrap();
        assert_eq!((p.width, p.height), (180, 320));
        assert_eq!(components(&p.blurhash), (3, 4));
        let top = blurhash::decode(&p.blurhash, 18, 32, 1.0).unwrap();
        let (top_row, bottom_row) = (&top[..4], &top[top.len() - 4..]);
        assert!(
            top_row[0] > 150 && top_row[2] < 100,
            "red on top: {top_row:?}"
        );
        assert!(
            bottom_row[2] > 150 && bottom_row[0] < 100,
            "blue below: {bottom_row:?}"
        );

        // Pixels twice as wide as tall: shown 2:1.
        let mut wide = frame(160, 160, Orientation::default(), |x, _| red_blue(x, 160));
        wide.sar = (2, 1);
        let p = placeholder(&wide).unwrap();
        assert_eq!((p.width, p.height), (320, 160));
        let lqip = image::load_from_memory(&p.lqip).unwrap();
        assert_eq!((lqip.width(), lqip.height()), (32, 16));
    }

    #[test]
    fn lqip_is_a_small_webp_of_the_frame() {
        // Detail throughout, the worst case for size: a fine colour pattern.
        let f = frame(1280, 720, Orientation::default(), |x, y| {
            [
                (x * 7 % 256) as u8,
                (y * 5 % 256) as u8,
                ((x ^ y) % 256) as u8,
            ]
        });
        let p = placeholder(&f).unwrap();
        assert!(p.lqip.starts_with(b"RIFF") && &p.lqip[8..12] == b"WEBP");
        assert!(p.lqip.len() < 400, "{} bytes", p.lqip.len());
        let lqip = image::load_from_memory(&p.lqip).unwrap().to_rgb8();
        assert_eq!(lqip.dimensions(), (32, 18));
        let near = difference(lqip.as_raw(), 3, &small(&f).data, 3);
        assert!(near < 25.0, "{near}");

        let f = frame(640, 360, Orientation::default(), |x, _| red_blue(x, 640));
        let p = placeholder(&f).unwrap();
        let lqip = image::load_from_memory(&p.lqip).unwrap().to_rgb8();
        let near = difference(lqip.as_raw(), 3, &small(&f).data, 3);
        assert!(near < 8.0, "{near}");
    }
}
