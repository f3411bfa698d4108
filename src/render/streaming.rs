//! Streaming sources in the renderer: which rendition a render reads, its
//! timeline (fetched once and kept for `cache.source_ttl_secs`, as source
//! metadata is), and the segments handed to the media pipeline.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::media::info::Rendition;
use crate::source::segments::{RemoteSegments, Scope, StreamKind};
use crate::source::streaming::{
    choose::choose, dash, hls, sidx, Hls, Part, Segments, StreamError, StreamLimits, Timeline,
};
use crate::source::{SourceError, SourceLocation, Sources};

use super::{RenderError, Renderer};

/// One rendition's timeline, ready to read.
pub(super) struct Stream {
    pub(super) timeline: Arc<Timeline>,
    /// What names the rendition (its playlist's or index's URL) in the
    /// frame cache's keys: renders of other sizes may read another.
    pub(super) rendition: String,
    /// The video renditions the master playlist or manifest lists, in its
    /// order (none for a lone media playlist).
    pub(super) listed: Vec<Rendition>,
    /// Whether the document names a sound track apart from the video's.
    pub(super) separate_audio: bool,
    scope: Scope,
}

/// A streaming document and the size asked of it.
pub(super) type StreamKey = (SourceLocation, Option<u32>, Option<u32>);

/// The cache of timelines, by document and size asked, weighed by their
/// segments (each a few hundred bytes: its URLs), so that long playlists
/// cannot make it large.
pub(super) fn stream_cache(
    segments: u64,
    ttl: Duration,
) -> moka::future::Cache<StreamKey, Arc<Stream>> {
    moka::future::Cache::builder()
        .max_capacity(segments)
        .weigher(|_k: &StreamKey, s: &Arc<Stream>| {
            (s.timeline.segments.len() + 1)
                .try_into()
                .unwrap_or(u32::MAX)
        })
        .time_to_live(ttl)
        .build()
}

/// Bounds on the documents a render reads.
#[derive(Debug, Clone, Copy)]
pub(super) struct PlaylistLimits {
    pub(super) max_bytes: u64,
    pub(super) max_segments: usize,
}

impl Renderer {
    /// The rendition of the document at `location` (found through
    /// `scope`) a render of `width` x `height` reads, and its timeline.
    pub(super) async fn stream(
        &self,
        location: &SourceLocation,
        scope: &Scope,
        width: Option<u32>,
        height: Option<u32>,
    ) -> Result<Arc<Stream>, RenderError> {
        let kind = location
            .stream_kind()
            .ok_or_else(|| SourceError::Io("not a streaming document".into()))?;
        self.streams
            .try_get_with((location.clone(), width, height), async {
                load(
                    &self.sources,
                    self.playlists,
                    kind,
                    location,
                    scope,
                    (width, height),
                )
                .await
                .map(Arc::new)
            })
            .await
            .map_err(|e| (*e).clone())
    }

    /// The segments of `stream`, for a blocking thread.
    pub(super) fn segments(&self, stream: &Stream) -> RemoteSegments {
        RemoteSegments::new(
            self.sources.clone(),
            stream.scope.clone(),
            stream.timeline.clone(),
            self.limits.1,
        )
    }
}

/// Reads the document, chooses the rendition, reads its playlist or
/// index, and checks every URI of its timeline against `scope`.
async fn load(
    sources: &Sources,
    limits: PlaylistLimits,
    kind: StreamKind,
    location: &SourceLocation,
    scope: &Scope,
    (width, height): (Option<u32>, Option<u32>),
) -> Result<Stream, RenderError> {
    let parse_limits = StreamLimits {
        max_segments: limits.max_segments,
    };
    let document = sources.read_document(location, limits.max_bytes).await?;
    let base = location.base_url()?;
    let invalid = |why: &str| SourceError::Stream(StreamError::Invalid(why.into()));
    let separate_audio = lists_audio(&document, kind);
    let mut listed = Vec::new();
    let (timeline, rendition) = match kind {
        StreamKind::Hls => match parsed(document.clone(), &base, parse_limits, hls::parse).await? {
            Hls::Media(timeline) => (timeline, base.to_string()),
            Hls::Master(renditions) => {
                listed = summary(&renditions);
                let chosen = choose(&renditions, width, height).ok_or_else(|| {
                    SourceError::Stream(StreamError::Unsupported(
                        "the playlist lists no video rendition".into(),
                    ))
                })?;
                let Segments::Playlist(url) = &chosen.segments else {
                    return Err(invalid("a master playlist's rendition is not a playlist").into());
                };
                let media = sources.within(scope, url)?;
                let document = sources.read_document(&media, limits.max_bytes).await?;
                match parsed(document, url, parse_limits, hls::parse).await? {
                    Hls::Media(timeline) => (timeline, url.to_string()),
                    Hls::Master(_) => {
                        return Err(
                            invalid("a master playlist names another master playlist").into()
                        )
                    }
                }
            }
        },
        StreamKind::Dash => {
            let renditions = parsed(document.clone(), &base, parse_limits, dash::parse).await?;
            listed = summary(&renditions);
            let chosen = choose(&renditions, width, height).ok_or_else(|| {
                SourceError::Stream(StreamError::Unsupported(
                    "the manifest lists no video representation".into(),
                ))
            })?;
            let which = renditions
                .iter()
                .position(|r| std::ptr::eq(r, chosen))
                .unwrap_or(0);
            match &chosen.segments {
                Segments::Listed(timeline) => (timeline.clone(), format!("{base}#{which}")),
                Segments::Indexed {
                    media,
                    init,
                    index,
                    offset_us,
                } => {
                    let part = Part {
                        uri: media.clone(),
                        range: Some(*index),
                    };
                    let bytes = sources.read_part(scope, &part, limits.max_bytes).await?;
                    let (index, init, offset_us) = (*index, *init, *offset_us);
                    let timeline = parsed(bytes, media, parse_limits, move |b, m, l| {
                        sidx::timeline(b, index, m, init, offset_us, l)
                    })
                    .await?;
                    (timeline, format!("{media}#{which}"))
                }
                Segments::Playlist(_) => {
                    return Err(invalid("a DASH representation is not a segment list").into())
                }
            }
        }
    };
    let timeline = timeline.from_zero();
    if timeline.segments.is_empty() {
        return Err(invalid("the playlist lists no segment").into());
    }
    sources.check_timeline(scope, &timeline)?;
    Ok(Stream {
        timeline: Arc::new(timeline),
        rendition,
        listed,
        separate_audio,
        scope: scope.clone(),
    })
}

/// `parse` of `bytes` (a playlist, manifest or index fetched from `base`)
/// on a blocking thread: a document of megabytes takes milliseconds.
async fn parsed<T: Send + 'static>(
    bytes: bytes::Bytes,
    base: &Url,
    limits: StreamLimits,
    parse: impl FnOnce(&[u8], &Url, &StreamLimits) -> Result<T, StreamError> + Send + 'static,
) -> Result<T, SourceError> {
    let base = base.clone();
    tokio::task::spawn_blocking(move || parse(&bytes, &base, &limits))
        .await
        .map_err(|e| SourceError::Io(e.to_string()))?
        .map_err(SourceError::from)
}

/// What `/v1/info` shows of the renditions a document lists.
fn summary(renditions: &[crate::source::streaming::Rendition]) -> Vec<Rendition> {
    renditions
        .iter()
        .map(|r| Rendition {
            width: r.width,
            height: r.height,
            bandwidth: (r.bandwidth > 0).then_some(r.bandwidth),
        })
        .collect()
}

/// Whether the document names a separate sound track: an HLS `EXT-X-MEDIA`
/// of `TYPE=AUDIO`, a DASH audio adaptation set or representation. (Sound
/// muxed into the video's segments is found in the first segment.)
fn lists_audio(document: &[u8], kind: StreamKind) -> bool {
    let text = String::from_utf8_lossy(document);
    match kind {
        StreamKind::Hls => text.lines().any(|line| {
            line.trim_start().starts_with("#EXT-X-MEDIA:")
                && line
                    .split(',')
                    .any(|attr| attr.trim().trim_start_matches("#EXT-X-MEDIA:") == "TYPE=AUDIO")
        }),
        StreamKind::Dash => ["contentType=\"audio\"", "mimeType=\"audio/"]
            .iter()
            .any(|needle| text.contains(needle)),
    }
}

/// The duration a stream's playlist says, seconds.
pub(super) fn duration_secs(stream: &Stream) -> f64 {
    stream.timeline.duration_us as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separate_sound_tracks() {
        let master =
            b"#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"a.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\nv.m3u8\n";
        assert!(lists_audio(master, StreamKind::Hls));
        let subtitles = b"#EXTM3U\n#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"s\",NAME=\"AUDIO\"\n";
        assert!(!lists_audio(subtitles, StreamKind::Hls));
        let mpd = br#"<MPD><Period><AdaptationSet contentType="audio"/></Period></MPD>"#;
        assert!(lists_audio(mpd, StreamKind::Dash));
        let video_only = br#"<MPD><Period><AdaptationSet mimeType="video/mp4"/></Period></MPD>"#;
        assert!(!lists_audio(video_only, StreamKind::Dash));
    }
}
