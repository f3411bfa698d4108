//! HDR to SDR: PQ (SMPTE ST 2084) and HLG (ARIB STD-B67) pictures mapped to
//! the code values an SDR version of the same video would have, so they look
//! as an SDR screen shows them, not washed out or dark.
//!
//! Input is full-range, non-linear RGB in BT.2020 primaries (what swscale
//! gives with the BT.2020 matrix), 16 bits a channel. Per pixel: undo the
//! transfer to display light in nits (HLG through BT.2100's OOTF for its
//! 1000-nit reference display, on luminance), express it relative to HDR
//! reference white (203 nits, ITU-R BT.2408), convert primaries to BT.709,
//! roll off highlights above a knee just below reference white so nothing
//! clips hard, and encode with the inverse of BT.1886's EOTF (gamma 2.4).
//!
//! That is BT.2408's mapping of SDR into HDR run backwards: an SDR master
//! taken into PQ or HLG that way comes back as the master's own code values
//! wherever it sits below the knee. Not the sRGB curve: thumbnails of SDR
//! video carry the video's code values as they are, and next to those sRGB
//! made HDR mid-tones and shadows darker. The work is done at output size,
//! so it is cheap.
//!
//! (swscale's YUV to 16-bit RGB tops out at 255 x 256, not 65535: the input
//! is 0.4% low, at most 2 codes darker out. Not corrected here.)

#![deny(unsafe_code)]

use std::sync::OnceLock;

use ffmpeg_next::color::TransferCharacteristic;
use ffmpeg_next::frame;

/// The transfer function of a decoded picture, as far as rendering cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    Sdr,
    Hdr(Hdr),
}

/// The HDR transfer functions thumbd tone-maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hdr {
    Pq,
    Hlg,
}

impl Transfer {
    pub fn of(frame: &frame::Video) -> Transfer {
        match frame.color_transfer_characteristic() {
            TransferCharacteristic::SMPTE2084 => Transfer::Hdr(Hdr::Pq),
            TransferCharacteristic::ARIB_STD_B67 => Transfer::Hdr(Hdr::Hlg),
            _ => Transfer::Sdr,
        }
    }
}

/// HDR reference white (diffuse white) in nits: maps to SDR white.
const REFERENCE_WHITE_NITS: f32 = 203.0;
/// Peak of the display HLG is rendered for (BT.2100's reference display).
const HLG_DISPLAY_PEAK_NITS: f32 = 1000.0;
/// Below this (linear, relative to reference white) light passes unchanged;
/// above it, highlights are rolled off smoothly towards 1. Just below 1, so
/// that reference white stays all but SDR white (code 251 of 255) while
/// highlights up to about 1.3 times it keep some gradation.
const KNEE: f32 = 0.9;

/// PQ signal (16-bit code) to nits.
fn pq_lut() -> &'static [f32] {
    static LUT: OnceLock<Vec<f32>> = OnceLock::new();
    LUT.get_or_init(|| {
        const M1: f64 = 2610.0 / 16384.0;
        const M2: f64 = 2523.0 / 4096.0 * 128.0;
        const C1: f64 = 3424.0 / 4096.0;
        const C2: f64 = 2413.0 / 4096.0 * 32.0;
        const C3: f64 = 2392.0 / 4096.0 * 32.0;
        (0..=u16::MAX)
            .map(|code| {
                let e = code as f64 / u16::MAX as f64;
                let p = e.powf(1.0 / M2);
                let l = ((p - C1).max(0.0) / (C2 - C3 * p)).powf(1.0 / M1);
                (l * 10_000.0) as f32
            })
            .collect()
    })
}

/// HLG signal (16-bit code) to scene-linear light in 0..=1.
fn hlg_lut() -> &'static [f32] {
    static LUT: OnceLock<Vec<f32>> = OnceLock::new();
    LUT.get_or_init(|| {
        const A: f64 = 0.178_832_77;
        const B: f64 = 0.284_668_92;
        const C: f64 = 0.559_910_73;
        (0..=u16::MAX)
            .map(|code| {
                let e = code as f64 / u16::MAX as f64;
                let l = if e <= 0.5 {
                    e * e / 3.0
                } else {
                    (((e - C) / A).exp() + B) / 12.0
                };
                l as f32
            })
            .collect()
    })
}

/// Linear display light 0..=1 (1 is SDR white) to an 8-bit code value by
/// the inverse of BT.1886's EOTF (gamma 2.4, black at 0), the curve SDR
/// video is shown with and BT.2408 takes SDR into HDR with.
fn bt1886_encode(v: f32) -> u8 {
    // Indexed by the square root: the curve is steep near black, where
    // evenly spaced linear steps would skip codes.
    static LUT: OnceLock<Vec<u8>> = OnceLock::new();
    const STEPS: usize = 4096;
    let lut = LUT.get_or_init(|| {
        (0..=STEPS)
            .map(|i| {
                let root = i as f64 / STEPS as f64;
                (root.powf(2.0 / 2.4) * 255.0).round() as u8
            })
            .collect()
    });
    lut[(v.clamp(0.0, 1.0).sqrt() * STEPS as f32).round() as usize]
}

fn roll_off(m: f32) -> f32 {
    if m <= KNEE {
        m
    } else {
        let span = 1.0 - KNEE;
        KNEE + span * (1.0 - (-(m - KNEE) / span).exp())
    }
}

/// Converts one picture of interleaved 16-bit RGB (BT.2020, `transfer`) to
/// 8-bit SDR RGB (BT.709, gamma 2.4). `src` and `dst` hold the same number
/// of pixels.
pub fn to_sdr(src: &[u16], transfer: Hdr, dst: &mut [u8]) {
    debug_assert_eq!(src.len(), dst.len());
    const TO_709: [[f32; 3]; 3] = [
        [1.660_491, -0.587_641, -0.072_850],
        [-0.124_550, 1.132_9, -0.008_349],
        [-0.018_151, -0.100_579, 1.118_73],
    ];
    for (s, d) in src.chunks_exact(3).zip(dst.chunks_exact_mut(3)) {
        let rgb = match transfer {
            Hdr::Pq => {
                let lut = pq_lut();
                [lut[s[0] as usize], lut[s[1] as usize], lut[s[2] as usize]]
            }
            Hdr::Hlg => {
                let lut = hlg_lut();
                let e = [lut[s[0] as usize], lut[s[1] as usize], lut[s[2] as usize]];
                // BT.2100's OOTF for the reference display (system gamma
                // 1.2), on luminance: Fd = Lw * Ys^0.2 * Es. Applied to each
                // channel instead (zimg's shortcut, so zscale's), it would
                // change saturation, and HLG signals made that way do look
                // desaturated here, as on a BT.2100 display.
                let ys = 0.2627 * e[0] + 0.6780 * e[1] + 0.0593 * e[2];
                let gain = HLG_DISPLAY_PEAK_NITS * ys.max(1e-6).powf(0.2);
                [e[0] * gain, e[1] * gain, e[2] * gain]
            }
        };
        let rel = rgb.map(|v| v / REFERENCE_WHITE_NITS);
        let lin: [f32; 3] = std::array::from_fn(|i| {
            (TO_709[i][0] * rel[0] + TO_709[i][1] * rel[1] + TO_709[i][2] * rel[2]).max(0.0)
        });
        let m = lin[0].max(lin[1]).max(lin[2]);
        let scale = if m > KNEE { roll_off(m) / m } else { 1.0 };
        for c in 0..3 {
            d[c] = bt1886_encode(lin[c] * scale);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pq_code_for_nits(nits: f64) -> u16 {
        const M1: f64 = 2610.0 / 16384.0;
        const M2: f64 = 2523.0 / 4096.0 * 128.0;
        const C1: f64 = 3424.0 / 4096.0;
        const C2: f64 = 2413.0 / 4096.0 * 32.0;
        const C3: f64 = 2392.0 / 4096.0 * 32.0;
        let y = (nits / 10_000.0).powf(M1);
        let e = ((C1 + C2 * y) / (1.0 + C3 * y)).powf(M2);
        (e * u16::MAX as f64).round() as u16
    }

    fn grey(code: u16, t: Hdr) -> u8 {
        let mut out = [0u8; 3];
        to_sdr(&[code, code, code], t, &mut out);
        assert!(out[0] == out[1] && out[1] == out[2], "{out:?}");
        out[0]
    }

    /// An SDR colour (8-bit BT.709 code values) taken into HDR as BT.2408
    /// says: BT.1886 display light with white at 203 nits, in BT.2020.
    fn sdr_in_hdr(rgb: [u8; 3], t: Hdr) -> [u16; 3] {
        const TO_2020: [[f64; 3]; 3] = [
            [0.6274, 0.3293, 0.0433],
            [0.0691, 0.9195, 0.0114],
            [0.0164, 0.0880, 0.8956],
        ];
        let lin = rgb.map(|c| (c as f64 / 255.0).powf(2.4));
        let nits: [f64; 3] =
            std::array::from_fn(|i| 203.0 * (0..3).map(|j| TO_2020[i][j] * lin[j]).sum::<f64>());
        let signal = match t {
            Hdr::Pq => nits.map(|n| pq_code_for_nits(n) as f64 / u16::MAX as f64),
            Hdr::Hlg => {
                // BT.2100's inverse OOTF (on luminance), then the OETF.
                let fd = nits.map(|n| n / 1000.0);
                let yd = 0.2627 * fd[0] + 0.6780 * fd[1] + 0.0593 * fd[2];
                fd.map(|f| {
                    let es = f * yd.max(1e-12).powf(-0.2 / 1.2);
                    if es <= 1.0 / 12.0 {
                        (3.0 * es).sqrt()
                    } else {
                        0.178_832_77 * (12.0 * es - 0.284_668_92).ln() + 0.559_910_73
                    }
                })
            }
        };
        signal.map(|e| (e * u16::MAX as f64).round() as u16)
    }

    fn mapped(rgb: [u16; 3], t: Hdr) -> [u8; 3] {
        let mut out = [0u8; 3];
        to_sdr(&rgb, t, &mut out);
        out
    }

    #[test]
    fn sdr_content_in_hdr_comes_back_as_it_was() {
        // Below the knee the mapping undoes BT.2408's: greys, skin tones and
        // saturated colours keep their code values (to rounding).
        let colours = [
            [16, 16, 16],
            [64, 64, 64],
            [128, 128, 128],
            [200, 200, 200],
            [217, 160, 126],
            [141, 90, 63],
            [204, 26, 26],
            [26, 204, 26],
            [26, 26, 204],
            [230, 230, 52],
        ];
        for t in [Hdr::Pq, Hdr::Hlg] {
            for rgb in colours {
                let out = mapped(sdr_in_hdr(rgb, t), t);
                let off = (0..3).map(|c| out[c].abs_diff(rgb[c])).max().unwrap();
                assert!(off <= 1, "{t:?}: {rgb:?} came back as {out:?}");
            }
        }
    }

    #[test]
    fn reference_white_is_all_but_sdr_white_and_highlights_roll_off() {
        for t in [Hdr::Pq, Hdr::Hlg] {
            let white = mapped(sdr_in_hdr([255; 3], t), t);
            assert!(white.iter().all(|&v| v >= 250), "{t:?}: {white:?}");
        }
        // 75% HLG signal is BT.2408 reference white.
        assert!(grey((0.75 * u16::MAX as f64) as u16, Hdr::Hlg) >= 250);
        assert_eq!(grey(0, Hdr::Hlg), 0);
        assert_eq!(grey(0, Hdr::Pq), 0);
        // 20 nits is 9.85% of reference white: code 97 with gamma 2.4.
        let mid = grey(pq_code_for_nits(20.0), Hdr::Pq);
        assert!((96..=98).contains(&mid), "{mid}");
        let mut last = 0;
        for nits in [
            0.1, 1.0, 10.0, 100.0, 203.0, 250.0, 300.0, 1000.0, 4000.0, 10000.0,
        ] {
            let v = grey(pq_code_for_nits(nits), Hdr::Pq);
            assert!(v >= last, "{nits}: {v} < {last}");
            last = v;
        }
        // Above reference white there is still some gradation, not a clip.
        assert!(grey(pq_code_for_nits(203.0), Hdr::Pq) < grey(pq_code_for_nits(250.0), Hdr::Pq));
        assert_eq!(grey(pq_code_for_nits(10000.0), Hdr::Pq), 255);
    }
}
