//! The pixel buffers that pass from [`super::picture`] to the encoders: a
//! packed RGB picture, a BT.601 4:2:0 YUV one, [`Picture`], which is one
//! or the other, and [`FinalPicture`], a picture with the transparency a
//! thumbnail keeps. Plain data; no FFmpeg.

#![deny(unsafe_code)]

/// A packed 8-bit RGB picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbImage {
    pub fn black(width: u32, height: u32) -> RgbImage {
        RgbImage {
            width,
            height,
            data: vec![0; width as usize * height as usize * 3],
        }
    }

    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}

/// An 8-bit 4:2:0 picture in BT.601 limited-range YUV (what lossy WebP
/// stores), planes packed: `y` is `width` x `height`, `u` and `v` are
/// [`YuvImage::chroma_size`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YuvImage {
    pub width: u32,
    pub height: u32,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl YuvImage {
    /// Size of each chroma plane of a `width` x `height` picture.
    pub fn chroma_size(width: u32, height: u32) -> (u32, u32) {
        (width.div_ceil(2), height.div_ceil(2))
    }
}

/// The final picture, in the form its encoder takes without converting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Picture {
    Rgb(RgbImage),
    Yuv420(YuvImage),
}

impl Picture {
    pub fn width(&self) -> u32 {
        match self {
            Picture::Rgb(img) => img.width,
            Picture::Yuv420(img) => img.width,
        }
    }

    pub fn height(&self) -> u32 {
        match self {
            Picture::Rgb(img) => img.height,
            Picture::Yuv420(img) => img.height,
        }
    }
}

/// A thumbnail's picture and, when the frame shows something through, its
/// transparency: `alpha` is 8-bit straight (not premultiplied) opacity, 0
/// transparent to 255 opaque, one byte a pixel of the picture, packed.
/// Kept apart from [`Picture`] so that every picture without alpha (and
/// every storyboard, animation and placeholder) goes through exactly the
/// path it did; [`super::alpha`] makes it, [`super::encode`] encodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalPicture {
    pub picture: Picture,
    pub alpha: Option<Vec<u8>>,
}

/// Packed RGB and an alpha plane as packed RGBA (as many pixels as both
/// hold), for the encoders that take alpha interleaved.
pub fn rgba(rgb: &[u8], alpha: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(alpha.len() * 4);
    for (c, &a) in rgb.chunks_exact(3).zip(alpha) {
        out.extend_from_slice(&[c[0], c[1], c[2], a]);
    }
    out
}
