//! GIF palettes (for [`super::animate`]): 256 colours trained by NeuQuant
//! (`color_quant`) on a sample of one frame, and the indexing of a picture
//! by them through a colour cache, with the error it leaves, so that the
//! encoder can tell when a palette no longer serves.

#![deny(unsafe_code)]

use color_quant::NeuQuant;

/// Most pixels of a frame a palette is trained on.
const PALETTE_SAMPLE: usize = 1 << 17;

/// About how many of them NeuQuant learns from (~20 ms; the `gif` crate's
/// speed 10 on a 640x360 frame learns from 23,000).
const LEARNING_STEPS: usize = 1 << 15;

/// A palette trained on one frame, and the way to index pictures by it.
pub(super) struct Palette {
    quant: NeuQuant,
    /// 256 RGB triples.
    pub(super) rgb: Vec<u8>,
}

/// Bits of each channel a colour cache entry is keyed by: 2^18 entries, the
/// colours of a cell 4 levels wide all taking its centre's index.
pub(super) const CACHE_BITS: u32 = 6;
pub(super) const UNCACHED: u16 = u16::MAX;

impl Palette {
    /// 256 colours for the packed RGB `data`.
    pub(super) fn train(data: &[u8]) -> Palette {
        let pixels = data.len() / 3;
        // An odd stride, so consecutive rows are sampled at other columns.
        let step = pixels.div_ceil(PALETTE_SAMPLE) | 1;
        let mut sample = Vec::with_capacity((pixels / step + 1) * 4);
        for px in data.chunks_exact(3).step_by(step) {
            sample.extend_from_slice(px);
            sample.push(255);
        }
        // NeuQuant learns from one sample pixel in `factor` (1-30).
        let factor = (sample.len() / 4 / LEARNING_STEPS).clamp(1, 30) as i32;
        let quant = NeuQuant::new(factor, 256, &sample);
        let rgb = quant.color_map_rgb();
        Palette { quant, rgb }
    }

    /// Palette indices of the packed RGB `data` into `out`, through `cache`
    /// (this palette's); the error per pixel, squared and summed over the
    /// channels.
    pub(super) fn index(&self, data: &[u8], cache: &mut [u16], out: &mut [u8]) -> f64 {
        let shift = 8 - CACHE_BITS;
        let centre = 1u8 << (shift - 1);
        let mut error = 0u64;
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
            let c = &self.rgb[index as usize * 3..index as usize * 3 + 3];
            for (a, b) in px.iter().zip(c) {
                let d = u64::from(a.abs_diff(*b));
                error += d * d;
            }
        }
        error as f64 / (data.len() / 3).max(1) as f64
    }
}
