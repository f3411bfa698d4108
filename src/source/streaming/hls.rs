//! HLS playlists: a master playlist's video variants, or a media
//! playlist's segments as a [`Timeline`].
//!
//! Playlists are parsed with m3u8-rs, and the text is also scanned line by
//! line for what that parser reads loosely: URIs, `EXTINF` durations (read
//! here as exact decimals, not `f32`; m3u8-rs also ends a title at a
//! comma), `EXT-X-BYTERANGE`, `EXT-X-KEY` (whose `METHOD=NONE` m3u8-rs
//! rejects, and which it attaches to one segment only) and
//! `EXT-X-SESSION-KEY`. m3u8-rs supplies the variants' attributes,
//! `EXT-X-MAP`, `EXT-X-ENDLIST` and `EXT-X-PLAYLIST-TYPE`. Where the two
//! readings disagree on the segments or variants a playlist lists, the
//! playlist is refused as malformed rather than read half.
//!
//! An `EXT-X-MAP` applies to every segment after it up to the next one;
//! its `BYTERANGE` without an offset starts at byte 0.
//!
//! Every URI is resolved against the playlist's own URL; absolute URIs are
//! kept as written, whatever their scheme, for the caller to judge.
//!
//! Refused: documents that are not playlists ([`StreamError::Invalid`]);
//! masters with no video variant, I-frame and audio-only variants being
//! left out ([`StreamError::Unsupported`]); encrypted segments, any
//! `EXT-X-KEY` or `EXT-X-SESSION-KEY` whose method is not `NONE`
//! ([`StreamError::Encrypted`]); live playlists, without `EXT-X-ENDLIST` and
//! not of type `VOD` or `EVENT` ([`StreamError::Live`]); more segments (or
//! variants) than [`StreamLimits::max_segments`] ([`StreamError::TooLarge`]);
//! segments without a duration, or with a negative, non-finite or longer
//! than a day one, and byte ranges that do not add up
//! ([`StreamError::Invalid`]).

use m3u8_rs::MediaPlaylistType;
use url::Url;

use super::{Hls, Part, Rendition, Segment, Segments, StreamError, StreamLimits, Timeline};

/// Longest `EXTINF` accepted, seconds.
const MAX_SEGMENT_SECONDS: f64 = 86_400.0;

/// Codec names (RFC 6381 prefixes) that make a variant a video one.
const VIDEO_CODECS: [&str; 10] = [
    "avc1", "avc3", "hvc1", "hev1", "vp09", "vp8", "av01", "mp4v", "dvh1", "dvhe",
];

/// Parses an HLS playlist fetched from `base` (its URL, used to resolve every URI).
pub fn parse(bytes: &[u8], base: &Url, limits: &StreamLimits) -> Result<Hls, StreamError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| not_hls())?;
    if !text.starts_with("#EXTM3U") {
        return Err(not_hls());
    }
    let for_m3u8 = normalized(text);
    if m3u8_rs::is_master_playlist(for_m3u8.as_bytes()) {
        master(text, &for_m3u8, base, limits).map(Hls::Master)
    } else {
        media(text, &for_m3u8, base, limits).map(Hls::Media)
    }
}

fn not_hls() -> StreamError {
    StreamError::Invalid("the document is not an HLS playlist".into())
}

fn malformed(what: &str) -> StreamError {
    StreamError::Invalid(format!("the playlist is malformed: {what}"))
}

/// The playlist's lines, trimmed, blank ones left out. Like m3u8-rs, a
/// lone `\r` ends a line too.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
}

/// The playlist as m3u8-rs is given it: trimmed lines, each ended by
/// `\n` (m3u8-rs reads a last tag without one as a URI), with `EXTINF`
/// values (read here: m3u8-rs takes a title's comma for the end of the
/// line) made 0 and `EXT-X-KEY` tags (checked here) left out.
fn normalized(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for line in lines(text) {
        if line.starts_with("#EXT-X-KEY:") {
            continue;
        }
        out.push_str(if line.starts_with("#EXTINF:") {
            "#EXTINF:0,"
        } else {
            line
        });
        out.push('\n');
    }
    out
}

fn is_uri(line: &str) -> bool {
    !line.starts_with('#')
}

fn master(
    text: &str,
    for_m3u8: &str,
    base: &Url,
    limits: &StreamLimits,
) -> Result<Vec<Rendition>, StreamError> {
    let (mut declared, mut uris) = (0usize, 0usize);
    for line in lines(text) {
        if line.starts_with("#EXT-X-STREAM-INF:") {
            declared += 1;
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-SESSION-KEY:") {
            if encrypts(attrs) {
                return Err(StreamError::Encrypted);
            }
        } else if is_uri(line) {
            uris += 1;
        }
    }
    if declared > limits.max_segments {
        return Err(StreamError::TooLarge(format!(
            "the playlist lists more than {} renditions",
            limits.max_segments
        )));
    }
    if uris != declared {
        return Err(malformed("its EXT-X-STREAM-INF tags and URIs do not match"));
    }
    let playlist =
        m3u8_rs::parse_master_playlist_res(for_m3u8.as_bytes()).map_err(|_| not_hls())?;
    let variants: Vec<_> = playlist.variants.iter().filter(|v| !v.is_i_frame).collect();
    if variants.len() != declared {
        return Err(malformed("an EXT-X-STREAM-INF tag cannot be read"));
    }
    let mut renditions = Vec::with_capacity(variants.len());
    for variant in variants {
        if variant.codecs.as_deref().is_some_and(|c| !names_video(c)) {
            continue;
        }
        let uri = variant.uri.trim();
        if uri.is_empty() {
            return Err(malformed("an EXT-X-STREAM-INF tag has no URI"));
        }
        let (width, height) = match &variant.resolution {
            Some(r) => (Some(dimension(r.width)?), Some(dimension(r.height)?)),
            None => (None, None),
        };
        renditions.push(Rendition {
            width,
            height,
            bandwidth: variant.bandwidth,
            segments: Segments::Playlist(resolve(base, uri)?),
        });
    }
    if renditions.is_empty() {
        return Err(StreamError::Unsupported(
            "the playlist lists no video rendition".into(),
        ));
    }
    Ok(renditions)
}

fn dimension(n: u64) -> Result<u32, StreamError> {
    u32::try_from(n).map_err(|_| malformed("a RESOLUTION is out of range"))
}

/// Whether a `CODECS` list names a video codec.
fn names_video(codecs: &str) -> bool {
    codecs.split(',').any(|codec| {
        let codec = codec.trim().to_ascii_lowercase();
        VIDEO_CODECS.iter().any(|v| codec.starts_with(v))
    })
}

/// What the line scan reads of one segment.
struct Scanned<'a> {
    uri: &'a str,
    extinf: Option<&'a str>,
    byterange: Option<&'a str>,
    map: bool,
}

fn media(
    text: &str,
    for_m3u8: &str,
    base: &Url,
    limits: &StreamLimits,
) -> Result<Timeline, StreamError> {
    let count = lines(text).filter(|l| is_uri(l)).count();
    if count > limits.max_segments {
        return Err(StreamError::TooLarge(format!(
            "the playlist lists more than {} segments",
            limits.max_segments
        )));
    }
    if count == 0 {
        return Err(StreamError::Invalid("the playlist lists no segment".into()));
    }

    let mut scanned = Vec::with_capacity(count);
    let (mut extinf, mut range, mut map) = (None, None, false);
    for line in lines(text) {
        if let Some(rest) = line.strip_prefix("#EXTINF:") {
            extinf = Some(rest);
        } else if let Some(rest) = line.strip_prefix("#EXT-X-BYTERANGE:") {
            range = Some(rest);
        } else if line.starts_with("#EXT-X-MAP:") {
            map = true;
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-KEY:") {
            if encrypts(attrs) {
                return Err(StreamError::Encrypted);
            }
        } else if is_uri(line) {
            scanned.push(Scanned {
                uri: line,
                extinf: extinf.take(),
                byterange: range.take(),
                map: std::mem::take(&mut map),
            });
        }
    }

    let playlist = m3u8_rs::parse_media_playlist_res(for_m3u8.as_bytes()).map_err(|_| not_hls())?;
    if playlist.segments.len() != scanned.len() {
        return Err(malformed("a tag cannot be read"));
    }
    let complete = playlist.end_list
        || matches!(
            playlist.playlist_type,
            Some(MediaPlaylistType::Vod | MediaPlaylistType::Event)
        );
    if !complete {
        return Err(StreamError::Live);
    }

    let mut segments = Vec::with_capacity(count);
    let mut init: Option<Part> = None;
    let mut start_us = 0u64;
    // The previous segment's URI and the end of its sub-range, if it had one.
    let mut previous: Option<(Url, u64)> = None;
    for (line, segment) in scanned.iter().zip(&playlist.segments) {
        if line.map != segment.map.is_some() {
            return Err(malformed("an EXT-X-MAP tag cannot be read"));
        }
        if let Some(map) = &segment.map {
            let range = match &map.byte_range {
                Some(r) => Some(span(r.length, r.offset.unwrap_or(0))?),
                None => None,
            };
            init = Some(Part {
                uri: resolve(base, map.uri.trim())?,
                range,
            });
        }
        let duration_us = extinf_us(line.extinf)?;
        let uri = resolve(base, line.uri)?;
        let range = match line.byterange {
            None => None,
            Some(value) => {
                let (length, offset) = byterange(value)?;
                let offset = match (offset, &previous) {
                    (Some(offset), _) => offset,
                    (None, Some((previous_uri, end))) if *previous_uri == uri => *end,
                    (None, _) => {
                        return Err(malformed(
                            "an EXT-X-BYTERANGE without an offset does not follow a sub-range of the same URI",
                        ))
                    }
                };
                Some(span(length, offset)?)
            }
        };
        previous = range.map(|(_, end)| (uri.clone(), end));
        segments.push(Segment {
            start_us,
            duration_us,
            media: Part { uri, range },
            init: init.clone(),
        });
        start_us = start_us
            .checked_add(duration_us)
            .ok_or_else(|| malformed("its duration is out of range"))?;
    }
    Ok(Timeline {
        segments,
        duration_us: start_us,
        growing: !playlist.end_list
            && matches!(playlist.playlist_type, Some(MediaPlaylistType::Event)),
    })
}

/// An `EXTINF` value (`duration[,title]`) in microseconds.
fn extinf_us(value: Option<&str>) -> Result<u64, StreamError> {
    let value = value.ok_or_else(|| malformed("a segment has no EXTINF duration"))?;
    let number = value.split(',').next().unwrap_or_default().trim();
    let seconds: f64 = number
        .parse()
        .map_err(|_| malformed("an EXTINF duration is not a number"))?;
    if !seconds.is_finite() || !(0.0..=MAX_SEGMENT_SECONDS).contains(&seconds) {
        return Err(malformed("an EXTINF duration is negative or too long"));
    }
    Ok((seconds * 1e6).round() as u64)
}

/// `n[@o]`: the length and the offset, if given.
fn byterange(value: &str) -> Result<(u64, Option<u64>), StreamError> {
    let bad = || malformed("an EXT-X-BYTERANGE cannot be read");
    let (length, offset) = match value.trim().split_once('@') {
        Some((length, offset)) => (length, Some(offset)),
        None => (value.trim(), None),
    };
    let length = length.trim().parse().map_err(|_| bad())?;
    let offset = match offset {
        Some(o) => Some(o.trim().parse().map_err(|_| bad())?),
        None => None,
    };
    Ok((length, offset))
}

/// `length` bytes from `offset`, as (start, end exclusive).
fn span(length: u64, offset: u64) -> Result<(u64, u64), StreamError> {
    let end = offset
        .checked_add(length)
        .ok_or_else(|| malformed("a byte range is out of range"))?;
    Ok((offset, end))
}

/// Whether an `EXT-X-KEY` / `EXT-X-SESSION-KEY` attribute list encrypts
/// (a `METHOD` other than `NONE`, or none at all).
fn encrypts(attrs: &str) -> bool {
    attribute(attrs, "METHOD").is_none_or(|m| m != "NONE")
}

/// The value of attribute `name` in an HLS attribute list
/// (`A=1,B="x,y"`), unquoted.
fn attribute<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = list;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let (value, after) = quoted.split_once('"')?;
                (value, after)
            }
            None => after.split_once(',').map_or((after, ""), |(v, a)| (v, a)),
        };
        if key.trim() == name {
            return Some(value.trim());
        }
        rest = after.trim_start_matches([',', ' ', '\t']);
    }
    None
}

fn resolve(base: &Url, uri: &str) -> Result<Url, StreamError> {
    base.join(uri).map_err(|e| {
        let shown: String = uri.chars().take(100).collect();
        StreamError::Invalid(format!("the playlist lists an invalid URI {shown:?}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: StreamLimits = StreamLimits { max_segments: 100 };

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn base() -> Url {
        url("https://media.example/videos/a/master.m3u8")
    }

    fn master_of(text: &str) -> Vec<Rendition> {
        match parse(text.as_bytes(), &base(), &LIMITS).unwrap() {
            Hls::Master(r) => r,
            other => panic!("not a master: {other:?}"),
        }
    }

    fn media_of(text: &str, base: &Url) -> Timeline {
        match parse(text.as_bytes(), base, &LIMITS).unwrap() {
            Hls::Media(t) => t,
            other => panic!("not a media playlist: {other:?}"),
        }
    }

    fn err(text: &str) -> StreamError {
        parse(text.as_bytes(), &base(), &LIMITS).unwrap_err()
    }

    const MASTER: &str = "#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en\",URI=\"audio/en.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=8000000,RESOLUTION=1920x1080,CODECS=\"avc1.640028,mp4a.40.2\",AUDIO=\"aud\"
1080/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,CODECS=\"HVC1.2.4.L123.B0\"
../b/720.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=128000,CODECS=\"mp4a.40.2\"
audio-only.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=500000
https://other.example/360.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,RESOLUTION=1920x1080,URI=\"iframes.m3u8\"
";

    #[test]
    fn master_lists_video_variants() {
        let renditions = master_of(MASTER);
        assert_eq!(renditions.len(), 3);
        assert_eq!(
            renditions[0],
            Rendition {
                width: Some(1920),
                height: Some(1080),
                bandwidth: 8_000_000,
                segments: Segments::Playlist(url("https://media.example/videos/a/1080/index.m3u8")),
            }
        );
        assert_eq!(
            renditions[1].segments,
            Segments::Playlist(url("https://media.example/videos/b/720.m3u8"))
        );
        assert_eq!(renditions[1].width, Some(1280));
        // No CODECS: kept; an absolute URI elsewhere is kept as given.
        assert_eq!(renditions[2].width, None);
        assert_eq!(renditions[2].bandwidth, 500_000);
        assert_eq!(
            renditions[2].segments,
            Segments::Playlist(url("https://other.example/360.m3u8"))
        );
    }

    #[test]
    fn master_without_video_is_unsupported() {
        let text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"mp4a.40.2\"\na.m3u8\n\
                    #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=2,URI=\"i.m3u8\"\n";
        assert_eq!(
            err(text),
            StreamError::Unsupported("the playlist lists no video rendition".into())
        );
    }

    #[test]
    fn master_limits_and_keys() {
        let mut text = String::from("#EXTM3U\n");
        for i in 0..101 {
            text.push_str(&format!("#EXT-X-STREAM-INF:BANDWIDTH={i}\nv{i}.m3u8\n"));
        }
        assert!(matches!(err(&text), StreamError::TooLarge(_)));
        let keyed = format!(
            "#EXTM3U\n#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"k\"\n{}",
            &MASTER[8..]
        );
        assert_eq!(err(&keyed), StreamError::Encrypted);
        // A variant whose attributes m3u8-rs cannot read (no BANDWIDTH).
        let broken = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n#EXT-X-STREAM-INF:RESOLUTION=1x1\nb.m3u8\n";
        assert!(matches!(err(broken), StreamError::Invalid(_)));
    }

    #[test]
    fn not_a_playlist() {
        for text in [
            "",
            "<!DOCTYPE html><html><body>hi</body></html>",
            "#EXTINF:10,\nseg.ts\n",
        ] {
            assert_eq!(err(text), not_hls(), "{text:?}");
        }
        let binary = [0u8, 0, 0, 0x18, b'f', b't', b'y', b'p', 0xff, 0xfe];
        assert_eq!(parse(&binary, &base(), &LIMITS).unwrap_err(), not_hls());
    }

    const MEDIA: &str = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:7
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI=\"init.mp4\"
#EXTINF:6.006,
seg0.m4s
#EXTINF:6.006,first title
seg1.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI=\"/other/all.mp4\",BYTERANGE=\"700@0\"
#EXTINF:4.5,
#EXT-X-BYTERANGE:1000@700
/other/all.mp4
#EXT-X-BYTERANGE:500
#EXTINF:3,
/other/all.mp4
#EXT-X-ENDLIST
";

    #[test]
    fn media_playlist_timeline() {
        let t = media_of(MEDIA, &base());
        let starts: Vec<_> = t.segments.iter().map(|s| s.start_us).collect();
        assert_eq!(starts, [0, 6_006_000, 12_012_000, 16_512_000]);
        let durations: Vec<_> = t.segments.iter().map(|s| s.duration_us).collect();
        assert_eq!(durations, [6_006_000, 6_006_000, 4_500_000, 3_000_000]);
        assert_eq!(t.duration_us, 19_512_000);

        let first_init = Part {
            uri: url("https://media.example/videos/a/init.mp4"),
            range: None,
        };
        assert_eq!(t.segments[0].init.as_ref(), Some(&first_init));
        assert_eq!(t.segments[1].init.as_ref(), Some(&first_init));
        assert_eq!(
            t.segments[1].media,
            Part {
                uri: url("https://media.example/videos/a/seg1.m4s"),
                range: None
            }
        );
        let all = url("https://media.example/other/all.mp4");
        let second_init = Part {
            uri: all.clone(),
            range: Some((0, 700)),
        };
        assert_eq!(t.segments[2].init.as_ref(), Some(&second_init));
        assert_eq!(t.segments[3].init.as_ref(), Some(&second_init));
        assert_eq!(t.segments[2].media.range, Some((700, 1700)));
        assert_eq!(t.segments[3].media.range, Some((1700, 2200)));
        assert_eq!(t.segments[3].media.uri, all);
        assert_eq!(t.segment_at(13_000_000), Some(2));
    }

    #[test]
    fn media_playlist_line_endings() {
        let crlf = MEDIA.replace('\n', "\r\n");
        assert_eq!(media_of(&crlf, &base()), media_of(MEDIA, &base()));
        // No line ending after the last line.
        let text = "#EXTM3U\n#EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n#EXT-X-PLAYLIST-TYPE:VOD";
        assert_eq!(media_of(text, &base()).segments.len(), 2);
    }

    #[test]
    fn titles_and_spacing() {
        let text =
            "#EXTM3U\n  #EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:5.5,Title, with a comma\n  a.ts  \n\n\
                    #EXTINF:10.123456789,\nb.ts\n";
        let t = media_of(text, &base());
        assert_eq!(
            uris_of(&t),
            [
                "https://media.example/videos/a/a.ts",
                "https://media.example/videos/a/b.ts"
            ]
        );
        assert_eq!(t.segments[1].start_us, 5_500_000);
        assert_eq!(t.duration_us, 15_623_457);
    }

    fn uris_of(t: &Timeline) -> Vec<&str> {
        t.segments.iter().map(|s| s.media.uri.as_str()).collect()
    }

    #[test]
    fn byterange_without_offset_needs_a_previous_subrange() {
        let text = "#EXTM3U\n#EXTINF:2,\n#EXT-X-BYTERANGE:100@0\na.ts\n\
                    #EXTINF:2,\n#EXT-X-BYTERANGE:100\nb.ts\n#EXT-X-ENDLIST\n";
        assert!(matches!(err(text), StreamError::Invalid(_)));
        let first = "#EXTM3U\n#EXTINF:2,\n#EXT-X-BYTERANGE:100\na.ts\n#EXT-X-ENDLIST\n";
        assert!(matches!(err(first), StreamError::Invalid(_)));
        let whole =
            "#EXTM3U\n#EXTINF:2,\na.ts\n#EXTINF:2,\n#EXT-X-BYTERANGE:100\na.ts\n#EXT-X-ENDLIST\n";
        assert!(matches!(err(whole), StreamError::Invalid(_)));
    }

    #[test]
    fn encrypted_playlists_are_refused() {
        let aes = "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"k.bin\",IV=0x1\n#EXTINF:2,\na.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(err(aes), StreamError::Encrypted);
        let later_none = "#EXTM3U\n#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"k\"\n#EXTINF:2,\na.ts\n\
                          #EXT-X-KEY:METHOD=NONE\n#EXTINF:2,\nb.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(err(later_none), StreamError::Encrypted);
        let unknown =
            "#EXTM3U\n#EXTINF:2,\na.ts\n#EXT-X-KEY:URI=\"k\"\n#EXTINF:2,\nb.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(err(unknown), StreamError::Encrypted);
        let none = "#EXTM3U\n#EXT-X-KEY:METHOD=NONE\n#EXTINF:2,\na.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(media_of(none, &base()).segments.len(), 1);
    }

    #[test]
    fn live_and_event_playlists() {
        let live = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:40\n#EXTINF:2,\na.ts\n";
        assert_eq!(err(live), StreamError::Live);
        let event = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n";
        assert_eq!(media_of(event, &base()).duration_us, 4_000_000);
        let vod = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:2,\na.ts\n";
        assert_eq!(media_of(vod, &base()).segments.len(), 1);
    }

    #[test]
    fn segment_count_bounds() {
        let mut text = String::from("#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n");
        for i in 0..101 {
            text.push_str(&format!("#EXTINF:1,\ns{i}.ts\n"));
        }
        assert_eq!(
            err(&text),
            StreamError::TooLarge("the playlist lists more than 100 segments".into())
        );
        let empty = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-ENDLIST\n";
        assert_eq!(
            err(empty),
            StreamError::Invalid("the playlist lists no segment".into())
        );
    }

    #[test]
    fn bad_durations_are_invalid() {
        for extinf in ["-1", "NaN", "inf", "86401", "abc", ""] {
            let text = format!("#EXTM3U\n#EXTINF:{extinf},\na.ts\n#EXT-X-ENDLIST\n");
            assert!(matches!(err(&text), StreamError::Invalid(_)), "{extinf}");
        }
        let missing = "#EXTM3U\na.ts\n#EXT-X-ENDLIST\n";
        assert!(matches!(err(missing), StreamError::Invalid(_)));
    }

    #[test]
    fn uris_resolve_against_any_base() {
        let text = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1,\n../x/seg.ts\n\
                    #EXTINF:1,\nfile:///etc/passwd\n#EXTINF:1,\ndata:video/mp2t;base64,AAAA\n\
                    #EXTINF:1,\nhttps://other.example/x.ts\n#EXT-X-ENDLIST\n";
        let t = media_of(text, &url("s3://b/in/a/master.m3u8"));
        let uris: Vec<_> = t.segments.iter().map(|s| s.media.uri.as_str()).collect();
        assert_eq!(
            uris,
            [
                "s3://b/in/x/seg.ts",
                "file:///etc/passwd",
                "data:video/mp2t;base64,AAAA",
                "https://other.example/x.ts",
            ]
        );
        assert_eq!(
            t.segments[3].init.as_ref().unwrap().uri.as_str(),
            "s3://b/in/a/init.mp4"
        );
        let t = media_of(text, &url("file:///srv/videos/a/index.m3u8"));
        assert_eq!(
            t.segments[0].media.uri.as_str(),
            "file:///srv/videos/x/seg.ts"
        );
        let bad = "#EXTM3U\n#EXTINF:1,\nhttp://[::1\n#EXT-X-ENDLIST\n";
        assert!(matches!(err(bad), StreamError::Invalid(_)));
    }

    #[test]
    fn attribute_lists() {
        let list = "URI=\"a,b=c\",METHOD=AES-128, IV=0x0";
        assert_eq!(attribute(list, "URI"), Some("a,b=c"));
        assert_eq!(attribute(list, "METHOD"), Some("AES-128"));
        assert_eq!(attribute(list, "IV"), Some("0x0"));
        assert_eq!(attribute(list, "KEYFORMAT"), None);
        assert!(names_video("mp4a.40.2, AVC1.4d401f"));
        assert!(!names_video("mp4a.40.2,ec-3"));
    }
}
