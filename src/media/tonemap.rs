//! HDR to SDR: PQ (SMPTE ST 2084) and HLG (ARIB STD-B67) pictures mapped to
//! sRGB so they look as an SDR screen shows them, not washed out.
//!
//! Input is full-range, non-linear RGB in BT.2020 primaries (what swscale
//! gives with the BT.2020 matrix), 16 bits a channel. Per pixel: undo the
//! transfer to light in nits, express it relative to HDR reference white
//! (203 nits, ITU-R BT.2408), convert primaries to BT.709, compress
//! highlights above a knee so nothing clips hard, and encode with the sRGB
//! curve. The work is done at output size, so it is cheap.

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
/// Below this (relative to SDR white) light passes unchanged; above it,
/// highlights are rolled off smoothly towards 1.
const KNEE: f32 = 0.75;

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

/// Linear 0..=1 to 8-bit sRGB.
fn srgb_encode(v: f32) -> u8 {
    static LUT: OnceLock<Vec<u8>> = OnceLock::new();
    const STEPS: usize = 4096;
    let lut = LUT.get_or_init(|| {
        (0..=STEPS)
            .map(|i| {
                let v = i as f64 / STEPS as f64;
                let s = if v <= 0.003_130_8 {
                    12.92 * v
                } else {
                    1.055 * v.powf(1.0 / 2.4) - 0.055
                };
                (s * 255.0).round().clamp(0.0, 255.0) as u8
            })
            .collect()
    });
    lut[(v.clamp(0.0, 1.0) * STEPS as f32) as usize]
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
/// 8-bit sRGB. `src` and `dst` hold the same number of pixels.
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
                // BT.2100 OOTF for the reference display (system gamma 1.2).
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
            d[c] = srgb_encode(lin[c] * scale);
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

    #[test]
    fn pq_reference_white_is_near_sdr_white_and_monotonic() {
        let white = grey(pq_code_for_nits(203.0), Hdr::Pq);
        assert!(white >= 235, "{white}");
        // 20 nits is 9.9% of reference white: sRGB code 88.
        let mid = grey(pq_code_for_nits(20.0), Hdr::Pq);
        assert!((84..=92).contains(&mid), "{mid}");
        assert_eq!(grey(0, Hdr::Pq), 0);
        let mut last = 0;
        for nits in [0.1, 1.0, 10.0, 100.0, 203.0, 1000.0, 4000.0, 10000.0] {
            let v = grey(pq_code_for_nits(nits), Hdr::Pq);
            assert!(v >= last, "{nits}: {v} < {last}");
            last = v;
        }
    }

    #[test]
    fn hlg_grey_is_reasonable() {
        // 75% HLG signal is BT.2408 reference white.
        let white = grey((0.75 * u16::MAX as f64) as u16, Hdr::Hlg);
        assert!(white >= 225, "{white}");
        assert_eq!(grey(0, Hdr::Hlg), 0);
    }
}
