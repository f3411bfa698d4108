//! GIF palettes (for [`super::animate`]): at most 255 colours for one
//! frame (the 256th index leaves a pixel as the frame before showed it),
//! and the indexing of a picture by them through a colour cache,
//! with the error it leaves, so that the encoder can tell when a palette no
//! longer serves.
//!
//! A frame of 255 colours or fewer (a cartoon, a screen, a test pattern
//! scaled without blending) gets exactly its own colours. Any other frame
//! gets Wu's quantizer's 255 colours (`quantette`: boxes of a colour
//! histogram split where they vary most) moved by k-means over a sample of
//! its pixels. On 320x180 frames that takes 1-2 ms where NeuQuant
//! (`color_quant`, used before) took 30-35 ms, with less error on real
//! footage (bench/RESULTS.md).

#![deny(unsafe_code)]

use std::collections::HashSet;

use quantette::deps::palette::{cast, Srgb};
use quantette::kmeans::{Kmeans, KmeansOptions};
use quantette::wu::{BinnerU8x3, WuU8x3};
use quantette::PaletteSize;

/// Pixels k-means learns from: past this, more barely moves the colours
/// (its learning rate falls with each sample) and only adds time.
const KMEANS_SAMPLES: u32 = 1 << 14;

/// A palette made for one frame, and the way to index pictures by it.
pub(super) struct Palette {
    /// The colours as `[r, g, b]`, at most [`COLOURS`] and at least one.
    colours: Vec<[u8; 3]>,
    /// The same, as RGB triples for the GIF, and one more entry: the
    /// index [`Palette::transparent`].
    pub(super) rgb: Vec<u8>,
    /// `[g, r, b, index]` of each colour, by green: the nearest colour is
    /// searched outwards from the green asked, until green alone is
    /// farther than the best found.
    by_green: Vec<[u8; 4]>,
}

/// Most colours in a palette: one index of the 256 is kept for transparency.
const COLOURS: usize = 255;

/// Bits of each channel a colour cache entry is keyed by: 2^18 entries, the
/// colours of a cell 4 levels wide all taking its centre's index.
pub(super) const CACHE_BITS: u32 = 6;
pub(super) const UNCACHED: u16 = u16::MAX;

impl Palette {
    /// At most [`COLOURS`] colours for the packed RGB `data` (of at least
    /// one pixel).
    pub(super) fn train(data: &[u8]) -> Palette {
        let colours = few_colours(data).unwrap_or_else(|| quantize(data));
        let mut rgb: Vec<u8> = colours.iter().flatten().copied().collect();
        // The transparent entry: its colour never shows.
        rgb.extend_from_slice(&[0, 0, 0]);
        let mut by_green: Vec<[u8; 4]> = colours
            .iter()
            .enumerate()
            .map(|(i, &[r, g, b])| [g, r, b, i as u8])
            .collect();
        by_green.sort_unstable();
        Palette {
            colours,
            rgb,
            by_green,
        }
    }

    /// The index that leaves a pixel as it was: right after the colours.
    pub(super) fn transparent(&self) -> u8 {
        self.colours.len() as u8
    }

    /// How many colours it has.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.colours.len()
    }

    /// The palette index of the colour nearest `colour`.
    fn nearest(&self, [r, g, b]: [u8; 3]) -> u16 {
        let distance = |e: &[u8; 4]| {
            u32::from(e[0].abs_diff(g)).pow(2)
                + u32::from(e[1].abs_diff(r)).pow(2)
                + u32::from(e[2].abs_diff(b)).pow(2)
        };
        let n = self.by_green.len();
        let mut best = (u32::MAX, 0u8);
        let mut up = self.by_green.partition_point(|e| e[0] < g);
        let mut down = up;
        while up < n || down > 0 {
            if up < n {
                let e = &self.by_green[up];
                if u32::from(e[0].abs_diff(g)).pow(2) >= best.0 {
                    up = n;
                } else {
                    let d = distance(e);
                    if d < best.0 {
                        best = (d, e[3]);
                    }
                    up += 1;
                }
            }
            if down > 0 {
                let e = &self.by_green[down - 1];
                if u32::from(e[0].abs_diff(g)).pow(2) >= best.0 {
                    down = 0;
                } else {
                    let d = distance(e);
                    if d < best.0 {
                        best = (d, e[3]);
                    }
                    down -= 1;
                }
            }
        }
        u16::from(best.1)
    }

    /// Palette indices of the packed RGB `data` into `out`, through `cache`
    /// (this palette's); the error per pixel, squared and summed over the
    /// channels.
    pub(super) fn index(&self, data: &[u8], cache: &mut [u16], out: &mut [u8]) -> f64 {
        let mut error = 0u64;
        let mut last: Option<([u8; 3], u8)> = None;
        for (px, o) in data.chunks_exact(3).zip(out.iter_mut()) {
            let colour = [px[0], px[1], px[2]];
            let index = match last {
                Some((c, index)) if c == colour => index,
                _ => {
                    let index = self.lookup(colour, cache);
                    last = Some((colour, index));
                    index
                }
            };
            *o = index;
            let c = &self.colours[usize::from(index)];
            for (a, b) in colour.iter().zip(c) {
                let d = u64::from(a.abs_diff(*b));
                error += d * d;
            }
        }
        error as f64 / (data.len() / 3).max(1) as f64
    }

    /// The index `colour` takes: its cache cell's (the colour nearest the
    /// cell's centre). Indexing a frame of few colours by its exact colours
    /// was tried: its GIF came out 26-57% larger for no visible gain (45
    /// dB of PSNR already).
    fn lookup(&self, colour: [u8; 3], cache: &mut [u16]) -> u8 {
        let shift = 8 - CACHE_BITS;
        let [r, g, b] = colour.map(|c| c >> shift);
        let key =
            (usize::from(r) << (2 * CACHE_BITS)) | (usize::from(g) << CACHE_BITS) | usize::from(b);
        if cache[key] == UNCACHED {
            let centre = 1u8 << (shift - 1);
            cache[key] = self.nearest([r, g, b].map(|c| c << shift | centre));
        }
        cache[key] as u8
    }
}

/// The colours of `data` when there are at most [`COLOURS`] of them, in the order
/// they first appear.
fn few_colours(data: &[u8]) -> Option<Vec<[u8; 3]>> {
    let mut seen = HashSet::new();
    let mut colours = Vec::new();
    let mut last = None;
    for px in data.chunks_exact(3) {
        let colour = [px[0], px[1], px[2]];
        // Runs of one colour are common where this can succeed.
        if last == Some(colour) {
            continue;
        }
        last = Some(colour);
        if seen.insert(colour) {
            if colours.len() == COLOURS {
                return None;
            }
            colours.push(colour);
        }
    }
    (!colours.is_empty()).then_some(colours)
}

/// [`COLOURS`] colours for `data` by Wu's method and k-means.
fn quantize(data: &[u8]) -> Vec<[u8; 3]> {
    let pixels: &[Srgb<u8>] = cast::from_component_slice(&data[..data.len() / 3 * 3]);
    let fallback = || vec![[0, 0, 0]];
    let Ok(wu) = WuU8x3::run_slice(pixels, BinnerU8x3::rgb()) else {
        return fallback();
    };
    let start = wu.palette(PaletteSize::from_usize_clamped(COLOURS));
    // Seeded: the same frame always gets the same palette.
    let options = KmeansOptions::new()
        .sampling_factor(f32::INFINITY)
        .max_samples(KMEANS_SAMPLES)
        .seed(0);
    let Ok(kmeans) = Kmeans::run_slice(pixels, start, options) else {
        return fallback();
    };
    let colours: Vec<[u8; 3]> = kmeans
        .into_palette()
        .iter()
        .map(|c| [c.red, c.green, c.blue])
        .collect();
    if colours.is_empty() {
        fallback()
    } else {
        colours
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> Vec<u16> {
        vec![UNCACHED; 1 << (3 * CACHE_BITS)]
    }

    #[test]
    fn a_frame_of_few_colours_keeps_them_exactly() {
        // 200 colours, none on a cache cell's centre.
        let mut data = Vec::new();
        for i in 0..200u32 {
            for _ in 0..50 {
                data.extend_from_slice(&[
                    (i * 5 % 256) as u8 | 1,
                    (i * 37 % 256) as u8,
                    255 - i as u8,
                ]);
            }
        }
        let palette = Palette::train(&data);
        assert_eq!(palette.len(), 200);
        for px in data.chunks_exact(3) {
            assert!(palette.colours.contains(&[px[0], px[1], px[2]]));
        }
        let mut out = vec![0; data.len() / 3];
        let error = palette.index(&data, &mut cache(), &mut out);
        // Only the cache cells' rounding is left: at most 2 levels a channel.
        assert!(error <= 12.0, "{error}");
    }

    #[test]
    fn a_frame_of_many_colours_gets_255_that_fit_it() {
        // A smooth two-way gradient: 64k colours.
        let mut data = Vec::new();
        for y in 0..256u32 {
            for x in 0..256u32 {
                data.extend_from_slice(&[x as u8, y as u8, ((x + y) / 2) as u8]);
            }
        }
        let palette = Palette::train(&data);
        assert_eq!(palette.len(), COLOURS);
        assert_eq!(palette.rgb.len(), 256 * 3);
        assert_eq!(palette.transparent(), 255);
        let mut out = vec![0; data.len() / 3];
        let error = palette.index(&data, &mut cache(), &mut out);
        // 255 colours over a 2-D ramp: cells about 16 levels wide, so an
        // error of a few levels a channel, not tens.
        assert!(error < 60.0, "{error}");
        // The same frame, the same palette.
        assert_eq!(Palette::train(&data).rgb, palette.rgb);
    }

    #[test]
    fn the_nearest_colour_is_the_nearest() {
        let mut data = Vec::new();
        let mut x = 12345u32;
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.extend_from_slice(&x.to_le_bytes()[..3]);
        }
        let palette = Palette::train(&data);
        for c in data.chunks_exact(3).take(5000) {
            let c = [c[2], c[0], c[1]];
            let d = |p: &[u8; 3]| -> u32 {
                (0..3).map(|k| u32::from(p[k].abs_diff(c[k])).pow(2)).sum()
            };
            let best = palette.colours.iter().map(d).min().unwrap();
            assert_eq!(d(&palette.colours[palette.nearest(c) as usize]), best);
        }
    }

    #[test]
    fn one_colour_is_one_entry() {
        let data = [9u8, 8, 7].repeat(100);
        let palette = Palette::train(&data);
        assert_eq!(palette.rgb, vec![9, 8, 7, 0, 0, 0]);
        assert_eq!(palette.transparent(), 1);
        let mut out = vec![1; 100];
        assert_eq!(palette.index(&data, &mut cache(), &mut out), 0.0);
        assert!(out.iter().all(|&i| i == 0));
    }
}
