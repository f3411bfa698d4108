//! Output geometry: from the video's stored shape (coded size, sample aspect
//! ratio, display rotation) and the requested box, where to crop, what size
//! to scale to, how to orient, and where to place the picture on the canvas.
//! Pure arithmetic, tested directly.

#![deny(unsafe_code)]

use super::{Fit, MAX_DIMENSION};

/// How a stored picture is turned to be displayed: mirrored horizontally
/// first (if `hflip`), then rotated `quarter_turns` x 90 degrees clockwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Orientation {
    pub quarter_turns: u8,
    pub hflip: bool,
}

impl Orientation {
    /// From an FFmpeg display matrix (9 values, 16.16 / 2.30 fixed point).
    pub fn from_display_matrix(m: &[i32; 9]) -> Orientation {
        let (a, b, c, d) = (m[0] as f64, m[1] as f64, m[3] as f64, m[4] as f64);
        let hflip = a * d - b * c < 0.0;
        // Undo the flip before reading the angle, as players do.
        let (a, b) = if hflip { (-a, -b) } else { (a, b) };
        // av_display_rotation_get() is -atan2(b, a): the counter-clockwise
        // angle. Players turn the picture clockwise by its negation.
        let cw = b.atan2(a).to_degrees().rem_euclid(360.0);
        let quarter_turns = ((cw / 90.0).round() as i64).rem_euclid(4) as u8;
        Orientation {
            quarter_turns,
            hflip,
        }
    }

    pub fn swaps_axes(self) -> bool {
        self.quarter_turns % 2 == 1
    }

    /// Where a point of the displayed picture comes from in the stored one,
    /// both as fractions (0..1) of their width and height: the turn undone,
    /// then the mirror.
    pub fn stored_point(self, (u, v): (f64, f64)) -> (f64, f64) {
        let (x, y) = match self.quarter_turns % 4 {
            0 => (u, v),
            1 => (v, 1.0 - u),
            2 => (1.0 - u, 1.0 - v),
            _ => (1.0 - v, u),
        };
        if self.hflip {
            (1.0 - x, y)
        } else {
            (x, y)
        }
    }
}

/// A video's stored picture shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub width: u32,
    pub height: u32,
    /// Sample (pixel) aspect ratio, num/den; 1/1 for square pixels.
    pub sar: (u32, u32),
    pub orientation: Orientation,
}

impl Shape {
    /// Displayed width and height: pixels stretched by the sample aspect
    /// ratio, then turned.
    pub fn display_size(&self) -> (f64, f64) {
        let (n, d) = self.sar;
        let w = self.width as f64 * n as f64 / d as f64;
        let h = self.height as f64;
        if self.orientation.swaps_axes() {
            (h, w)
        } else {
            (w, h)
        }
    }
}

/// A rectangle in stored (coded) pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// A region of the displayed picture (turned and with its pixels at their
/// displayed shape, as a player shows it), in displayed pixels: the
/// picture is [`Shape::display_size`] wide and high. `fit=smart` chooses one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

impl Window {
    pub fn centre(&self) -> (f64, f64) {
        (self.x + self.width / 2.0, self.y + self.height / 2.0)
    }
}

/// What to do to a decoded frame to get the requested picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Part of the stored picture to keep.
    pub crop: Rect,
    /// Size to scale the crop to, in stored orientation.
    pub scaled: (u32, u32),
    pub orientation: Orientation,
    /// Size of the final image.
    pub canvas: (u32, u32),
    /// Top-left of the oriented, scaled picture on the canvas (letterboxing).
    pub offset: (u32, u32),
}

impl Plan {
    /// The scaled picture's size once oriented (as it sits on the canvas).
    pub fn oriented_size(&self) -> (u32, u32) {
        let (w, h) = self.scaled;
        if self.orientation.swaps_axes() {
            (h, w)
        } else {
            (w, h)
        }
    }

    /// Whether black bars surround the picture on the canvas.
    pub fn is_letterboxed(&self) -> bool {
        self.oriented_size() != self.canvas
    }

    /// Whether the crop leaves out part of `shape`'s picture.
    pub fn is_cropped(&self, shape: &Shape) -> bool {
        (self.crop.width, self.crop.height) != (shape.width, shape.height)
    }

    /// The plan with its crop, of the same size, moved so that its centre
    /// is as near `window`'s centre as the picture allows (`fit=smart`).
    /// A crop centred on the picture stays exactly where `Fit::Crop` puts it.
    pub fn centred_on(mut self, shape: &Shape, window: &Window) -> Plan {
        let (dw, dh) = shape.display_size();
        let (cx, cy) = window.centre();
        let (sx, sy) = shape.orientation.stored_point((cx / dw, cy / dh));
        // The crop's top-left as a share of the room it has to move in,
        // rounded to the nearest half pixel and then down, as the centred
        // crop's `(room) / 2` is: a window on the centre moves nothing.
        let place = |centre: f64, size: u32, whole: u32| {
            let room = whole - size;
            if room == 0 {
                return 0;
            }
            let at = (centre * whole as f64 - size as f64 / 2.0).clamp(0.0, room as f64);
            ((at * 2.0).round() as u32 / 2).min(room)
        };
        self.crop.x = place(sx, self.crop.width, shape.width);
        self.crop.y = place(sy, self.crop.height, shape.height);
        self
    }
}

fn clamp_dim(v: f64) -> u32 {
    (v.round() as i64).clamp(1, MAX_DIMENSION as i64) as u32
}

/// Plans the output for a requested `width`/`height` and `fit` (used only
/// when both are given). `Fit::Smart` plans `Fit::Crop`'s centred crop;
/// [`Plan::centred_on`] then moves it onto the window chosen.
pub fn plan(shape: &Shape, width: Option<u32>, height: Option<u32>, fit: Option<Fit>) -> Plan {
    let (dw, dh) = shape.display_size();
    let full = Rect {
        x: 0,
        y: 0,
        width: shape.width,
        height: shape.height,
    };
    // Fraction of the displayed width and height kept, and the size of the
    // displayed picture after scaling.
    let (keep, content, canvas) = match (width, height) {
        (None, None) => {
            let s = (MAX_DIMENSION as f64 / dw.max(dh)).min(1.0);
            let c = (clamp_dim(dw * s), clamp_dim(dh * s));
            ((1.0, 1.0), c, c)
        }
        (Some(w), None) => {
            let c = (w, clamp_dim(w as f64 * dh / dw));
            ((1.0, 1.0), c, c)
        }
        (None, Some(h)) => {
            let c = (clamp_dim(h as f64 * dw / dh), h);
            ((1.0, 1.0), c, c)
        }
        (Some(w), Some(h)) => {
            let (bw, bh) = (w as f64, h as f64);
            match fit.unwrap_or(Fit::Crop) {
                Fit::Fill => ((1.0, 1.0), (w, h), (w, h)),
                Fit::Crop | Fit::Smart => {
                    let (box_aspect, aspect) = (bw / bh, dw / dh);
                    let keep = if aspect > box_aspect {
                        (box_aspect / aspect, 1.0)
                    } else {
                        (1.0, aspect / box_aspect)
                    };
                    (keep, (w, h), (w, h))
                }
                Fit::Contain | Fit::Pad => {
                    let s = (bw / dw).min(bh / dh);
                    let c = (clamp_dim(dw * s).min(w), clamp_dim(dh * s).min(h));
                    let canvas = if fit == Some(Fit::Pad) { (w, h) } else { c };
                    ((1.0, 1.0), c, canvas)
                }
            }
        }
    };
    let swap = shape.orientation.swaps_axes();
    let (keep_x, keep_y) = if swap { (keep.1, keep.0) } else { keep };
    let crop_w = ((shape.width as f64 * keep_x).round() as u32).clamp(1, shape.width);
    let crop_h = ((shape.height as f64 * keep_y).round() as u32).clamp(1, shape.height);
    let crop = if (crop_w, crop_h) == (full.width, full.height) {
        full
    } else {
        Rect {
            x: (shape.width - crop_w) / 2,
            y: (shape.height - crop_h) / 2,
            width: crop_w,
            height: crop_h,
        }
    };
    Plan {
        crop,
        scaled: if swap {
            (content.1, content.0)
        } else {
            content
        },
        orientation: shape.orientation,
        canvas,
        offset: ((canvas.0 - content.0) / 2, (canvas.1 - content.1) / 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(w: u32, h: u32) -> Shape {
        Shape {
            width: w,
            height: h,
            sar: (1, 1),
            orientation: Orientation::default(),
        }
    }

    #[test]
    fn one_side_follows_displayed_aspect() {
        let p = plan(&shape(1920, 1080), Some(320), None, None);
        assert_eq!((p.scaled, p.canvas), ((320, 180), (320, 180)));
        let p = plan(&shape(1920, 1080), None, Some(90), None);
        assert_eq!(p.canvas, (160, 90));
    }

    #[test]
    fn native_size_fits_4096() {
        assert_eq!(plan(&shape(640, 360), None, None, None).canvas, (640, 360));
        assert_eq!(
            plan(&shape(8192, 4096), None, None, None).canvas,
            (4096, 2048)
        );
    }

    #[test]
    fn anamorphic_pixels_are_widened() {
        let mut s = shape(720, 576);
        s.sar = (64, 45); // 16:9 PAL
        assert_eq!(plan(&s, None, None, None).canvas, (1024, 576));
        assert_eq!(plan(&s, Some(320), None, None).canvas, (320, 180));
    }

    #[test]
    fn rotation_swaps_display_axes() {
        let mut s = shape(1920, 1080);
        s.orientation.quarter_turns = 1;
        let p = plan(&s, Some(180), None, None);
        assert_eq!(p.canvas, (180, 320));
        assert_eq!(p.scaled, (320, 180)); // scaled in stored orientation
    }

    #[test]
    fn fits() {
        let s = shape(1920, 1080);
        let crop = plan(&s, Some(100), Some(100), Some(Fit::Crop));
        assert_eq!(crop.canvas, (100, 100));
        assert_eq!(
            crop.crop,
            Rect {
                x: 420,
                y: 0,
                width: 1080,
                height: 1080
            }
        );
        let contain = plan(&s, Some(100), Some(100), Some(Fit::Contain));
        assert_eq!((contain.canvas, contain.offset), ((100, 56), (0, 0)));
        let pad = plan(&s, Some(100), Some(100), Some(Fit::Pad));
        assert_eq!(
            (pad.canvas, pad.scaled, pad.offset),
            ((100, 100), (100, 56), (0, 22))
        );
        assert!(pad.is_letterboxed() && !contain.is_letterboxed());
        let fill = plan(&s, Some(100), Some(100), Some(Fit::Fill));
        assert_eq!(
            (fill.canvas, fill.scaled, fill.crop.width),
            ((100, 100), (100, 100), 1920)
        );
    }

    #[test]
    fn crop_of_rotated_video_crops_the_stored_height() {
        let mut s = shape(1920, 1080); // displayed 1080x1920 portrait
        s.orientation.quarter_turns = 3;
        let p = plan(&s, Some(100), Some(100), Some(Fit::Crop));
        assert_eq!(
            p.crop,
            Rect {
                x: 420,
                y: 0,
                width: 1080,
                height: 1080
            }
        );
        let p = plan(&s, Some(200), Some(100), Some(Fit::Crop));
        // A 2:1 box from a 9:16 picture keeps 0.5625 / 2 of its displayed
        // height, which is the stored width: 1920 * 0.28125 = 540.
        assert_eq!((p.crop.width, p.crop.height), (540, 1080));
        assert_eq!(p.crop.x, (1920 - 540) / 2);
    }

    fn window_at(cx: f64, cy: f64) -> Window {
        Window {
            x: cx - 1.0,
            y: cy - 1.0,
            width: 2.0,
            height: 2.0,
        }
    }

    #[test]
    fn smart_crop_moves_the_crop_onto_the_window() {
        let s = shape(1921, 1080);
        let crop = plan(&s, Some(100), Some(100), Some(Fit::Crop));
        let smart = plan(&s, Some(100), Some(100), Some(Fit::Smart));
        assert_eq!(smart, crop, "planned as crop");
        assert!(crop.is_cropped(&s));
        // On the centre: exactly the centred crop (841 px of room: 420).
        let centred = smart.centred_on(&s, &window_at(960.5, 540.0));
        assert_eq!(centred, crop);
        // Left of where the crop can go: against the left edge; part way:
        // centred on the window.
        assert_eq!(smart.centred_on(&s, &window_at(100.0, 540.0)).crop.x, 0);
        assert_eq!(smart.centred_on(&s, &window_at(700.0, 540.0)).crop.x, 160);
        assert_eq!(
            smart.centred_on(&s, &window_at(1900.0, 540.0)).crop.x,
            1921 - 1080
        );
        // The size and everything else stay.
        let moved = smart.centred_on(&s, &window_at(700.0, 10.0));
        assert_eq!(
            (moved.crop.width, moved.crop.height, moved.crop.y),
            (1080, 1080, 0)
        );
        assert_eq!((moved.scaled, moved.canvas), (crop.scaled, crop.canvas));
        // A box of the picture's own shape crops nothing, and stays so.
        let whole = plan(&s, Some(1921), Some(1080), Some(Fit::Smart));
        assert!(!whole.is_cropped(&s));
        assert_eq!(whole.centred_on(&s, &window_at(0.0, 0.0)), whole);
    }

    #[test]
    fn smart_crop_window_of_a_turned_or_mirrored_video() {
        // Stored 1920x1080, shown turned a quarter clockwise: 1080x1920.
        // A wide box crops the displayed height, which is the stored width.
        let mut s = shape(1920, 1080);
        s.orientation.quarter_turns = 1;
        let p = plan(&s, Some(200), Some(100), Some(Fit::Smart));
        assert_eq!((p.crop.width, p.crop.height), (540, 1080));
        // The top of the displayed picture is the stored left (turning
        // clockwise takes the left column to the top row).
        assert_eq!(p.centred_on(&s, &window_at(540.0, 0.0)).crop.x, 0);
        assert_eq!(p.centred_on(&s, &window_at(540.0, 1920.0)).crop.x, 1380);
        // Three quarters: the top is the stored right.
        s.orientation.quarter_turns = 3;
        assert_eq!(p.centred_on(&s, &window_at(540.0, 0.0)).crop.x, 1380);
        // Mirrored, not turned: the displayed left is the stored right.
        let mut m = shape(1920, 1080);
        m.orientation.hflip = true;
        let p = plan(&m, Some(100), Some(100), Some(Fit::Smart));
        assert_eq!(p.centred_on(&m, &window_at(0.0, 540.0)).crop.x, 840);
        // Anamorphic pixels: the window is in displayed pixels.
        let mut a = shape(720, 576);
        a.sar = (64, 45); // shown 1024x576
        let p = plan(&a, Some(100), Some(100), Some(Fit::Smart));
        assert_eq!(p.crop.width, 405);
        // The displayed quarter (256 of 1024) is the stored quarter (180).
        let q = p.centred_on(&a, &window_at(256.0, 288.0));
        assert_eq!(q.crop.x, 0);
        // At 576 of 1024 displayed, 405 of 720 stored: the crop's left is
        // 405 - 202.5, rounded down as the centred crop's is.
        let q = p.centred_on(&a, &window_at(576.0, 288.0));
        assert_eq!(q.crop.x, 202);
    }

    #[test]
    fn display_matrix_angles() {
        // The matrix FFmpeg 5.1 writes for the `rotate=90` tag (ffprobe:
        // rotation=90); the ffmpeg CLI shows it turned counter-clockwise.
        let ccw = [0, -65536, 0, 65536, 0, 0, 0, 0, 1 << 30];
        assert_eq!(Orientation::from_display_matrix(&ccw).quarter_turns, 3);
        let cw = [0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30];
        assert_eq!(Orientation::from_display_matrix(&cw).quarter_turns, 1);
        let m180 = [-65536, 0, 0, 0, -65536, 0, 0, 0, 1 << 30];
        assert_eq!(Orientation::from_display_matrix(&m180).quarter_turns, 2);
        let flip = [-65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30];
        let o = Orientation::from_display_matrix(&flip);
        assert_eq!((o.quarter_turns, o.hflip), (0, true));
    }

    proptest::proptest! {
        #[test]
        fn plans_stay_in_bounds(w in 1u32..9000, h in 1u32..9000, sn in 1u32..5, sd in 1u32..5,
                                turns in 0u8..4, bw in proptest::option::of(1u32..=4096),
                                bh in proptest::option::of(1u32..=4096), fit in 0usize..5,
                                hflip: bool, cx in -0.5f64..1.5, cy in -0.5f64..1.5) {
            let s = Shape { width: w, height: h, sar: (sn, sd), orientation: Orientation { quarter_turns: turns, hflip } };
            let fit = [Fit::Crop, Fit::Contain, Fit::Fill, Fit::Pad, Fit::Smart][fit];
            let mut p = plan(&s, bw, bh, Some(fit));
            if fit == Fit::Smart {
                let (dw, dh) = s.display_size();
                let moved = p.centred_on(&s, &Window { x: cx * dw, y: cy * dh, width: 0.0, height: 0.0 });
                proptest::prop_assert_eq!((moved.crop.width, moved.crop.height), (p.crop.width, p.crop.height));
                p = moved;
            }
            proptest::prop_assert!(p.crop.x + p.crop.width <= w && p.crop.y + p.crop.height <= h);
            proptest::prop_assert!(p.crop.width >= 1 && p.crop.height >= 1);
            proptest::prop_assert!(p.canvas.0 >= 1 && p.canvas.0 <= 4096 && p.canvas.1 >= 1 && p.canvas.1 <= 4096);
            let oriented = p.oriented_size();
            proptest::prop_assert_eq!(oriented, if turns % 2 == 1 { (p.scaled.1, p.scaled.0) } else { p.scaled });
            proptest::prop_assert!(p.offset.0 + oriented.0 <= p.canvas.0 && p.offset.1 + oriented.1 <= p.canvas.1);
            if let Some(bw) = bw { proptest::prop_assert!(p.canvas.0 <= bw); }
            if let (Some(bw), Some(bh)) = (bw, bh) {
                if fit != Fit::Contain { proptest::prop_assert_eq!(p.canvas, (bw, bh)); }
            }
        }
    }
}
