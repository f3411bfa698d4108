//! What a video is, in the renderer: [`crate::media::info`] read once
//! through the same sources, range reads and pool as renders, and kept for
//! `cache.source_ttl_secs` (as source metadata and streaming timelines
//! are), with the time `timeStamp=auto` shows once a render has found it.
//! The job engine's probe reads the duration from here.
//!
//! A video stored for streaming is described by its playlist (duration,
//! renditions, segment starts as its keyframes, as storyboards take them)
//! and by the first segment of its largest rendition (codec, size,
//! colour), the rendition a render of the video's own size reads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::domain::TimeSpec;
use crate::media;
use crate::media::info::{Keyframes, Streaming, StreamingFormat, VideoInfo};
use crate::source::concat::StartOnly;
use crate::source::segments::{Scope, SegmentSource, StreamKind};
use crate::source::streaming::Timeline;
use crate::source::SourceLocation;

use super::{streaming, CacheStatus, RenderError, Renderer};

/// A video's info as kept.
pub(super) struct Kept {
    pub(super) info: Arc<VideoInfo>,
    /// The time of the frame `timeStamp=auto` shows, once seen in the frame
    /// cache: kept from then on, so the answer only ever gains it.
    auto_time: OnceLock<f64>,
}

/// Info by video.
pub(super) type InfoCache = moka::future::Cache<SourceLocation, Arc<Kept>>;

/// Videos whose info is kept (a few hundred bytes each).
const INFOS_KEPT: u64 = 10_000;

/// The cache of info, each entry kept `ttl` (the source's version may
/// change: a video replaced at its key is read again after that).
pub(super) fn info_cache(ttl: Duration) -> InfoCache {
    moka::future::Cache::builder()
        .max_capacity(INFOS_KEPT)
        .time_to_live(ttl)
        .build()
}

/// A video's info as answered.
#[derive(Debug, Clone)]
pub struct InfoAnswer {
    pub info: Arc<VideoInfo>,
    /// Seconds into the video of the frame `timeStamp=auto` shows, if a
    /// render has found it (it is never computed for this).
    pub auto_time: Option<f64>,
    /// Whether the info was kept from an earlier call.
    pub cache: CacheStatus,
}

impl Renderer {
    /// What the video `key` of `org`/`env` is, from the kept info or read
    /// once however many callers ask at the same time. Failures are shared
    /// by those callers and not kept.
    pub async fn info(
        &self,
        org: &str,
        env: &str,
        key: &str,
    ) -> Result<InfoAnswer, Arc<RenderError>> {
        let location = self.locate(org, env, key).await.map_err(Arc::new)?;
        let (kept, cache) = self.kept_info(org, env, &location).await?;
        Ok(InfoAnswer {
            info: kept.info.clone(),
            auto_time: self.auto_time(&location, &kept),
            cache,
        })
    }

    pub(super) async fn kept_info(
        &self,
        org: &str,
        env: &str,
        location: &SourceLocation,
    ) -> Result<(Arc<Kept>, CacheStatus), Arc<RenderError>> {
        if let Some(kept) = self.infos.get(location).await {
            return Ok((kept, CacheStatus::Hit));
        }
        let read_here = AtomicBool::new(false);
        let kept = self
            .infos
            .try_get_with(location.clone(), async {
                read_here.store(true, Ordering::Relaxed);
                let info = self.read_info(org, env, location).await?;
                Ok::<_, RenderError>(Arc::new(Kept {
                    info: Arc::new(info),
                    auto_time: OnceLock::new(),
                }))
            })
            .await?;
        let status = if read_here.load(Ordering::Relaxed) {
            CacheStatus::Miss
        } else {
            CacheStatus::Coalesced
        };
        Ok((kept, status))
    }

    /// The video's duration, for the job engine's probe: the kept info's
    /// when there is one; else a file's info is read (the container header
    /// a probe reads anyway) and kept, and a streaming source's playlist
    /// says it without any media being read (a job reads the rendition its
    /// size chooses, which need not be the largest).
    pub(super) async fn probed_duration(
        &self,
        org: &str,
        env: &str,
        key: &str,
    ) -> Result<Option<f64>, RenderError> {
        let location = self.locate(org, env, key).await?;
        if let Some(kept) = self.infos.get(&location).await {
            return Ok(kept.info.duration_secs);
        }
        if location.stream_kind().is_some() {
            let scope = self.scope(org, env, &location);
            let stream = self.stream(&location, &scope, None, None).await?;
            // (A growing EVENT playlist's end is not known yet.)
            return Ok((!stream.timeline.growing).then(|| streaming::duration_secs(&stream)));
        }
        let (kept, _) = self
            .kept_info(org, env, &location)
            .await
            .map_err(|e| (*e).clone())?;
        Ok(kept.info.duration_secs)
    }

    /// The time `timeStamp=auto` shows, if a render of it is in the frame
    /// cache now or was when asked before.
    fn auto_time(&self, location: &SourceLocation, kept: &Kept) -> Option<f64> {
        if let Some(t) = kept.auto_time.get() {
            return Some(*t);
        }
        // Any version and rendition: the frame cache holds few entries.
        let found = self
            .frames
            .iter()
            .find(|(k, _)| k.0 == *location && k.2 == TimeSpec::Auto)
            .map(|(_, decoded)| decoded.frame.time_secs)?;
        Some(*kept.auto_time.get_or_init(|| round_ms(found)))
    }

    async fn read_info(
        &self,
        org: &str,
        env: &str,
        location: &SourceLocation,
    ) -> Result<VideoInfo, RenderError> {
        let scope = self.scope(org, env, location);
        self.read_info_in(location, &scope).await
    }

    /// What the video at `location` is, its playlist's URIs within `scope`.
    pub(super) async fn read_info_in(
        &self,
        location: &SourceLocation,
        scope: &Scope,
    ) -> Result<VideoInfo, RenderError> {
        let Some(kind) = location.stream_kind() else {
            let reader = self.sources.open(location).await?;
            return self
                .on_pool(move |limits| media::info::info(reader, limits))
                .await;
        };
        // The rendition a render of the video's own size reads: the largest.
        let stream = self.stream(location, scope, None, None).await?;
        let mut segments = self.segments(&stream);
        let mut info = self
            .on_pool(move |limits| {
                // Its start only: an MPEG-TS segment's end is not read.
                let first = StartOnly(segments.open(0, 0)?);
                media::info::info(Box::new(first), limits)
            })
            .await?;
        let timeline = &stream.timeline;
        info.duration_secs = (!timeline.growing).then(|| streaming::duration_secs(&stream));
        info.keyframes = segment_starts(timeline);
        info.audio |= stream.separate_audio;
        info.streaming = Some(Streaming {
            format: match kind {
                StreamKind::Hls => StreamingFormat::Hls,
                StreamKind::Dash => StreamingFormat::Dash,
            },
            growing: timeline.growing,
            renditions: stream.listed.clone(),
        });
        Ok(info)
    }
}

/// A stream's keyframes as thumbd's storyboards take them: its segments'
/// starts (each segment starts with one). Unknown while the playlist grows.
fn segment_starts(timeline: &Timeline) -> Option<Keyframes> {
    if timeline.growing || timeline.segments.is_empty() {
        return None;
    }
    let mut durations: Vec<u64> = timeline.segments.iter().map(|s| s.duration_us).collect();
    durations.sort_unstable();
    let interval_secs = (durations.len() >= 2).then(|| {
        let mid = durations.len() / 2;
        let median = if durations.len() % 2 == 1 {
            durations[mid] as f64
        } else {
            (durations[mid - 1] + durations[mid]) as f64 / 2.0
        };
        round_ms(median / 1e6)
    });
    Some(Keyframes {
        count: timeline.segments.len(),
        interval_secs,
    })
}

fn round_ms(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::streaming::{Part, Segment};
    use url::Url;

    fn timeline(durations_us: &[u64], growing: bool) -> Timeline {
        let mut start_us = 0;
        let segments = durations_us
            .iter()
            .map(|&duration_us| {
                let s = Segment {
                    start_us,
                    duration_us,
                    media: Part {
                        uri: Url::parse("https://h.example/s.ts").unwrap(),
                        range: None,
                    },
                    init: None,
                };
                start_us += duration_us;
                s
            })
            .collect();
        Timeline {
            segments,
            duration_us: start_us,
            growing,
        }
    }

    #[test]
    fn segments_as_keyframes() {
        let t = timeline(&[4_000_000, 4_000_000, 4_000_000, 2_000_000], false);
        assert_eq!(
            segment_starts(&t),
            Some(Keyframes {
                count: 4,
                interval_secs: Some(4.0)
            })
        );
        let one = timeline(&[6_006_000], false);
        assert_eq!(
            segment_starts(&one),
            Some(Keyframes {
                count: 1,
                interval_secs: None
            })
        );
        assert_eq!(segment_starts(&timeline(&[4_000_000; 3], true)), None);
    }
}
