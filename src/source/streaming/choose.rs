//! Which rendition of a stream a render of a given size reads.
//!
//! Pure and total: it refuses nothing but an empty list (`None`).

use super::Rendition;

/// The rendition a render of `width` x `height` (either may be None = not asked) reads.
///
/// Among the renditions that declare a resolution (both width and height):
/// - with a size asked, the smallest (by pixel count, then by bandwidth,
///   lower first) whose width is at least the width asked and whose height
///   is at least the height asked, only the dimensions asked counting; if
///   none covers it, the largest (by pixel count, then bandwidth);
/// - with no size asked (the video's own size), the largest.
///
/// Renditions without a declared resolution are used only when none
/// declares one: then the one with the highest bandwidth is read, whatever
/// the size asked. `None` only for an empty list.
pub fn choose(
    renditions: &[Rendition],
    width: Option<u32>,
    height: Option<u32>,
) -> Option<&Rendition> {
    let sized: Vec<(&Rendition, u32, u32)> = renditions
        .iter()
        .filter_map(|r| Some((r, r.width?, r.height?)))
        .collect();
    if sized.is_empty() {
        return renditions.iter().max_by_key(|r| r.bandwidth);
    }
    let key = |&(r, w, h): &(&Rendition, u32, u32)| (u64::from(w) * u64::from(h), r.bandwidth);
    let largest = sized.iter().max_by_key(|s| key(s));
    if width.is_none() && height.is_none() {
        return largest.map(|s| s.0);
    }
    sized
        .iter()
        .filter(|&&(_, w, h)| {
            width.is_none_or(|asked| w >= asked) && height.is_none_or(|asked| h >= asked)
        })
        .min_by_key(|s| key(s))
        .or(largest)
        .map(|s| s.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::streaming::Segments;
    use url::Url;

    fn rendition(size: Option<(u32, u32)>, bandwidth: u64) -> Rendition {
        Rendition {
            width: size.map(|s| s.0),
            height: size.map(|s| s.1),
            bandwidth,
            segments: Segments::Playlist(
                Url::parse(&format!("https://h.example/{bandwidth}.m3u8")).unwrap(),
            ),
        }
    }

    fn picked(renditions: &[Rendition], width: Option<u32>, height: Option<u32>) -> u64 {
        choose(renditions, width, height).unwrap().bandwidth
    }

    /// Portrait 4K/1080p/720p/360p (widths 2160/1080/720/360), bandwidths
    /// 4, 3, 2, 1, listed out of order.
    fn portrait() -> Vec<Rendition> {
        vec![
            rendition(Some((720, 1280)), 2),
            rendition(Some((2160, 3840)), 4),
            rendition(Some((360, 640)), 1),
            rendition(Some((1080, 1920)), 3),
        ]
    }

    #[test]
    fn master_ladder() {
        let ladder = portrait();
        assert_eq!(picked(&ladder, Some(320), None), 1);
        assert_eq!(picked(&ladder, Some(1000), None), 3);
        assert_eq!(picked(&ladder, Some(5000), None), 4);
        assert_eq!(picked(&ladder, None, None), 4);
        assert_eq!(picked(&ladder, None, Some(700)), 2);
    }

    #[test]
    fn landscape_ladder() {
        let ladder = vec![
            rendition(Some((3840, 2160)), 4),
            rendition(Some((1920, 1080)), 3),
            rendition(Some((1280, 720)), 2),
            rendition(Some((640, 360)), 1),
        ];
        assert_eq!(picked(&ladder, Some(320), None), 1);
        // 1280 wide covers 1000.
        assert_eq!(picked(&ladder, Some(1000), None), 2);
        assert_eq!(picked(&ladder, Some(1300), None), 3);
        assert_eq!(picked(&ladder, Some(5000), None), 4);
        assert_eq!(picked(&ladder, None, None), 4);
        assert_eq!(picked(&ladder, None, Some(700)), 2);
        // Both dimensions count.
        assert_eq!(picked(&ladder, Some(600), Some(400)), 2);
        assert_eq!(picked(&ladder, Some(4000), Some(100)), 4);
    }

    #[test]
    fn ties_and_unsized_renditions() {
        let same = vec![
            rendition(Some((1280, 720)), 5),
            rendition(Some((1280, 720)), 3),
        ];
        assert_eq!(picked(&same, Some(100), None), 3);
        assert_eq!(picked(&same, None, None), 5);
        assert_eq!(picked(&same, Some(2000), None), 5);

        let no_size = vec![rendition(None, 2), rendition(None, 9), rendition(None, 4)];
        assert_eq!(picked(&no_size, Some(100), None), 9);
        assert_eq!(picked(&no_size, None, None), 9);

        let mixed = vec![rendition(None, 9), rendition(Some((640, 360)), 1)];
        assert_eq!(picked(&mixed, Some(5000), None), 1);
        assert_eq!(picked(&mixed, None, None), 1);

        assert!(choose(&[], Some(1), Some(1)).is_none());
    }
}
