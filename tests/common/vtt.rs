//! Storyboard WebVTT read as a player reads it: each cue's time range and
//! the sprite (URL and `#xywh=` region) its text points at.

/// A WebVTT cue: its time range and what its text points at.
#[derive(Debug, Clone)]
pub struct Cue {
    pub start: f64,
    pub end: f64,
    pub url: String,
    pub xywh: [u32; 4],
}

/// `HH:MM:SS.mmm` in seconds.
pub fn vtt_seconds(t: &str) -> f64 {
    let parts: Vec<f64> = t.split(':').map(|p| p.parse().expect("a number")).collect();
    assert_eq!(parts.len(), 3, "HH:MM:SS.mmm: {t}");
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

/// Parses a storyboard VTT as a player does.
pub fn parse_vtt(text: &str) -> Vec<Cue> {
    assert!(text.starts_with("WEBVTT\n"), "{text}");
    text.split("\n\n")
        .skip(1)
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut lines = block.lines();
            let timing = lines.next().expect("a timing line");
            let (start, end) = timing.split_once(" --> ").expect("start --> end");
            let target = lines.next().expect("a cue text");
            let (url, frag) = target.split_once("#xywh=").expect("a #xywh= fragment");
            let v: Vec<u32> = frag.split(',').map(|n| n.parse().unwrap()).collect();
            Cue {
                start: vtt_seconds(start),
                end: vtt_seconds(end),
                url: url.to_owned(),
                xywh: [v[0], v[1], v[2], v[3]],
            }
        })
        .collect()
}
