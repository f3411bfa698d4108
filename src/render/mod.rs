//! The thumbnail service: request in, cached thumbnail out.
//!
//! [`Renderer`] resolves the environment's source, renders through the
//! bounded [`WorkPool`], and keeps results in a moka cache weighted by size
//! and keyed by the canonical [`RenderKey`]. Concurrent requests for the same
//! uncached thumbnail share one render (moka's `try_get_with`). Nothing here
//! knows about HTTP.

mod error;
mod info;
mod moments;
mod placeholder;
mod served;
mod storyboard;
mod streaming;
mod timed;

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::domain::{RenderSpec, TimeSpec};
use crate::media::decode::DecodedFrame;
use crate::media::segmented::{self, Video};
use crate::media::{self, Limits, MediaError};
use crate::metrics::{CacheLabels, Metrics};
use crate::orgs::{Env, Locator, Orgs};
use crate::pool::{PoolError, WorkPool};
use crate::request::animated::AnimatedRequest;
use crate::request::{RenderKey, ThumbnailRequest};
use crate::shared_cache::SharedCache;
use crate::source::segments::Scope;
use crate::source::urlbook::{self, UrlBook};
use crate::source::{SourceError, SourceLocation, Sources};

pub use error::RenderError;
pub use moments::MomentError;

/// What the renderer is built from; the composition root
/// ([`crate::setup::build`]) builds each before it.
pub struct RenderParts {
    pub orgs: Arc<Orgs>,
    pub metrics: Arc<Metrics>,
    pub sources: Sources,
    /// The URL book, when an org takes video URLs.
    pub urls: Option<Arc<UrlBook>>,
    /// The second tier, when `[cache.shared]` is set.
    pub shared: Option<Arc<SharedCache>>,
}
pub use served::{strong_etag, CacheStatus, RenderTimings, Sequence, SequenceKey, Thumbnail};
use timed::{decoder_threads, TimedRead};

/// A decoded frame's identity: which video (and, with the shared cache,
/// which version of it: a render stored under a version must come from
/// that version's frames), which moment.
type FrameKey = (SourceLocation, String, TimeSpec);

/// Segments of the streaming timelines kept (about 100 MB at most; a
/// one-hour VOD in 6 s segments is 600).
const STREAMS_KEPT: u64 = 250_000;

/// A decoded frame with what it cost to get it.
struct Decoded {
    frame: DecodedFrame,
    fetch: Duration,
    decode: Duration,
}

pub struct Renderer {
    /// The orgs and environments, resolved at start-up.
    orgs: Arc<Orgs>,
    sources: Sources,
    /// Video URLs by key, for orgs that take them.
    urls: Option<Arc<UrlBook>>,
    cache: moka::future::Cache<RenderKey, Arc<Thumbnail>>,
    /// Storyboards and animations, apart from thumbnails (a few large
    /// entries should not push out thousands of small ones).
    sequences: moka::future::Cache<SequenceKey, Arc<Sequence>>,
    pictures: crate::config::PicturesConfig,
    /// `pictures.jpeg_background`, parsed once (the config checked it).
    jpeg_background: [u8; 3],
    /// Recently decoded frames, so other sizes and formats of the same frame
    /// (a srcset) only scale and encode, and concurrent requests for them
    /// share one decode.
    frames: moka::future::Cache<FrameKey, Arc<Decoded>>,
    pool: WorkPool,
    timeout: Duration,
    limits: (u64, u64, usize),
    metrics: Arc<Metrics>,
    /// The second tier, when `[cache.shared]` is set.
    shared: Option<Arc<SharedCache>>,
    /// Streaming sources' timelines, by document and size asked.
    streams: moka::future::Cache<streaming::StreamKey, Arc<streaming::Stream>>,
    playlists: streaming::PlaylistLimits,
    /// What each video is (`/v1/info`, the job engine's probe), kept for
    /// `cache.source_ttl_secs`.
    infos: info::InfoCache,
    /// Moments named through the video (`25%`, `f1234`, `snap=keyframe`),
    /// settled into times (see [`moments`]).
    moments: moments::MomentCache,
    /// Placeholders of frames (BlurHash, ThumbHash, LQIP), by video and moment.
    placeholders: placeholder::PlaceholderCache,
}

impl Renderer {
    /// The renderer over `parts`, with its caches and pool sized by `config`.
    pub fn new(config: &Config, parts: RenderParts) -> Renderer {
        let RenderParts {
            orgs,
            metrics,
            sources,
            urls,
            shared,
        } = parts;
        let evictions = metrics.cache_evictions.clone();
        let cache = moka::future::Cache::builder()
            .max_capacity(config.cache.max_bytes)
            .weigher(|_k: &RenderKey, v: &Arc<Thumbnail>| {
                (v.bytes.len() + 256).try_into().unwrap_or(u32::MAX)
            })
            .eviction_listener(move |_k, _v, cause| {
                if cause.was_evicted() {
                    evictions.inc();
                }
            })
            .build();
        let frames = moka::future::Cache::builder()
            .max_capacity(config.cache.frame_max_bytes)
            .weigher(|_k: &FrameKey, d: &Arc<Decoded>| {
                // Two bytes a pixel, or more for alpha (DecodedFrame::cached_bytes).
                d.frame.cached_bytes().try_into().unwrap_or(u32::MAX)
            })
            .time_to_idle(Duration::from_secs(config.cache.frame_ttl_secs))
            .build();
        let sequences = moka::future::Cache::builder()
            .max_capacity(config.pictures.cache_max_bytes)
            .weigher(|_k: &SequenceKey, v: &Arc<Sequence>| {
                (v.bytes.len() + 1024).try_into().unwrap_or(u32::MAX)
            })
            .build();
        let r = &config.render;
        Renderer {
            shared,
            sequences,
            pictures: config.pictures.clone(),
            jpeg_background: crate::config::hex_colour(&config.pictures.jpeg_background)
                .unwrap_or(media::alpha::DEFAULT_BACKGROUND),
            frames,
            orgs,
            urls,
            sources,
            cache,
            pool: WorkPool::new(r.effective_concurrency(), r.queue)
                .with_client_share(r.per_client_queue()),
            timeout: r.timeout(),
            limits: (r.max_frame_pixels, r.max_source_bytes, r.decoder_threads),
            metrics,
            streams: streaming::stream_cache(
                STREAMS_KEPT,
                Duration::from_secs(config.cache.source_ttl_secs),
            ),
            playlists: streaming::PlaylistLimits {
                max_bytes: r.max_playlist_bytes,
                max_segments: r.max_playlist_segments,
            },
            infos: info::info_cache(Duration::from_secs(config.cache.source_ttl_secs)),
            moments: moments::moment_cache(Duration::from_secs(config.cache.source_ttl_secs)),
            placeholders: placeholder::cache(),
        }
    }

    /// The server's metrics (renders, caches, sources, and what the HTTP
    /// layer and the job engine count there).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Sets the gauges read from the caches and the pool; called before an
    /// exposition is encoded.
    pub async fn update_gauges(&self) {
        self.cache.run_pending_tasks().await;
        let m = &self.metrics;
        m.cache_entries
            .set(self.cache.entry_count().try_into().unwrap_or(i64::MAX));
        m.cache_bytes
            .set(self.cache.weighted_size().try_into().unwrap_or(i64::MAX));
        self.frames.run_pending_tasks().await;
        self.sequences.run_pending_tasks().await;
        for (cache, bytes) in [
            ("thumbnails", self.cache.weighted_size()),
            ("frames", self.frames.weighted_size()),
            ("pictures", self.sequences.weighted_size()),
            ("source", self.sources.cached_bytes()),
        ] {
            m.cache_memory_bytes
                .get_or_create(&CacheLabels { cache })
                .set(bytes.try_into().unwrap_or(i64::MAX));
        }
        m.renders_in_flight.set(self.pool.busy() as i64);
        m.renders_queued.set(self.pool.waiting() as i64);
    }

    fn busy(&self, e: PoolError) -> RenderError {
        if matches!(e, PoolError::Full { .. }) {
            self.metrics.renders_refused.inc();
        }
        RenderError::Busy(e)
    }

    fn environment(&self, org: &str, env: &str) -> Option<&Env> {
        self.orgs.env(org, env)
    }

    /// The orgs and environments this renderer serves.
    pub fn orgs(&self) -> &Arc<Orgs> {
        &self.orgs
    }

    /// `req` as its environment serves it: its size snapped to the allowed
    /// widths and heights, if the environment lists them. `None` for an
    /// unknown environment.
    fn canonical<'a>(&self, req: &'a ThumbnailRequest) -> Option<Cow<'a, ThumbnailRequest>> {
        let env = self.environment(&req.org, &req.env)?;
        Some(req.snapped(&env.widths, &env.heights))
    }

    /// The thumbnail for `req` (its size snapped to the environment's
    /// allowed sizes), from the cache or rendered once however many
    /// callers ask at the same time. Failures are shared by those callers
    /// and not cached.
    pub async fn thumbnail(
        &self,
        req: &ThumbnailRequest,
    ) -> Result<(Arc<Thumbnail>, CacheStatus), Arc<RenderError>> {
        let Some(req) = self.canonical(req) else {
            return Err(Arc::new(RenderError::UnknownEnvironment));
        };
        let req = self.settle(req).await.map_err(Arc::new)?;
        let req = req.as_ref();
        if let Some(t) = self.cache.get(req).await {
            self.metrics.cache_hits.inc();
            return Ok((t, CacheStatus::Hit));
        }
        // Boxed: a render's state is kilobytes, and a hit (above) should
        // not carry room for it through every future it is awaited in.
        Box::pin(self.render_missing(req)).await
    }

    /// The thumbnail for `req` (canonical and settled) when the cache did
    /// not have it: rendered once however many callers ask.
    async fn render_missing(
        &self,
        req: &ThumbnailRequest,
    ) -> Result<(Arc<Thumbnail>, CacheStatus), Arc<RenderError>> {
        let location = self
            .locate(&req.org, &req.env, &req.key)
            .await
            .map_err(Arc::new)?;
        let scope = self.scope(&req.org, &req.env, &location);
        let spec = req.spec.clone();
        // Set when this request's render runs; otherwise it waited for
        // another request's (or found it cached by then).
        let rendered_here = AtomicBool::new(false);
        let thumbnail = self
            .cache
            .try_get_with(req.render_key(), async {
                rendered_here.store(true, Ordering::Relaxed);
                let Some(shared) = &self.shared else {
                    return self
                        .render_parts(&location, &scope, String::new(), spec)
                        .await
                        .map(|(t, _)| Arc::new(t));
                };
                // The source's current version names the entry, so a
                // replaced video misses.
                let version = self.sources.version(&location).await?;
                let name = SharedCache::entry_name(&req.render_key().to_string(), &version);
                if let Some(found) = shared.get(&name).await {
                    let timings = RenderTimings {
                        from_shared: true,
                        ..RenderTimings::default()
                    };
                    return Ok(Arc::new(Thumbnail::new(&found, timings)));
                }
                let (thumbnail, rendered) =
                    self.render_parts(&location, &scope, version, spec).await?;
                shared.put(name, &rendered);
                Ok(Arc::new(thumbnail))
            })
            .await?;
        let status = self.miss_status(
            rendered_here.load(Ordering::Relaxed),
            thumbnail.timings.from_shared,
        );
        Ok((thumbnail, status))
    }

    /// The animated preview for `req`, cached and coalesced.
    pub async fn animated(
        &self,
        req: &AnimatedRequest,
    ) -> Result<(Arc<Sequence>, CacheStatus), Arc<RenderError>> {
        let key = SequenceKey::Animated(req.clone());
        let spec = req.spec.clone();
        let size = (Some(spec.width), None);
        self.sequence(
            &req.org,
            &req.env,
            &req.key,
            key,
            size,
            move |video, limits| {
                let anim = match video {
                    Video::Whole(reader) => media::animated::render(reader, &spec, limits)?,
                    Video::Segmented(mut segments) => {
                        segmented::animated(&mut *segments, &spec, limits)?
                    }
                };
                Ok(Sequence::new(
                    anim.bytes,
                    spec.format.content_type(),
                    (anim.width, anim.height),
                    None,
                    anim.frames,
                ))
            },
        )
        .await
    }

    async fn sequence(
        &self,
        org: &str,
        env: &str,
        key: &str,
        cache_key: SequenceKey,
        (width, height): (Option<u32>, Option<u32>),
        make: impl FnOnce(Video, &Limits) -> Result<Sequence, MediaError> + Send + 'static,
    ) -> Result<(Arc<Sequence>, CacheStatus), Arc<RenderError>> {
        if let Some(s) = self.sequences.get(&cache_key).await {
            self.metrics.cache_hits.inc();
            return Ok((s, CacheStatus::Hit));
        }
        // Boxed, as a thumbnail's render is: a hit should not carry its room.
        Box::pin(self.make_sequence(org, env, key, cache_key, (width, height), make)).await
    }

    /// A storyboard or animation the cache did not have: made once however
    /// many callers ask.
    async fn make_sequence(
        &self,
        org: &str,
        env: &str,
        key: &str,
        cache_key: SequenceKey,
        (width, height): (Option<u32>, Option<u32>),
        make: impl FnOnce(Video, &Limits) -> Result<Sequence, MediaError> + Send + 'static,
    ) -> Result<(Arc<Sequence>, CacheStatus), Arc<RenderError>> {
        let location = self.locate(org, env, key).await.map_err(Arc::new)?;
        let made_here = AtomicBool::new(false);
        // The shared cache's name for it: the key's Debug form names every
        // field, stable within a version of thumbd (another form after an
        // upgrade only means misses).
        let shared = self
            .shared
            .as_ref()
            .map(|shared| (shared, format!("{cache_key:?}")));
        let sequence = self
            .sequences
            .try_get_with(cache_key, async {
                made_here.store(true, Ordering::Relaxed);
                let mut entry = None;
                if let Some((shared, key_text)) = shared {
                    let version = self.sources.version(&location).await?;
                    let name = SharedCache::entry_name(&key_text, &version);
                    let found = shared.get_sequence(&name).await;
                    if let Some(sequence) = found.and_then(Sequence::from_stored) {
                        return Ok(Arc::new(sequence));
                    }
                    entry = Some((shared, name));
                }
                let video = if location.stream_kind().is_some() {
                    let scope = self.scope(org, env, &location);
                    let stream = self.stream(&location, &scope, width, height).await?;
                    Video::Segmented(Box::new(self.segments(&stream)))
                } else {
                    Video::Whole(self.sources.open(&location).await?)
                };
                let made = self
                    .on_pool(move |limits| {
                        let started = Instant::now();
                        make(video, limits).map(|mut s| {
                            s.made_in = started.elapsed();
                            s
                        })
                    })
                    .await?;
                self.metrics.renders.inc();
                if let Some((shared, name)) = entry {
                    shared.put_sequence(name, &made.stored());
                }
                Ok::<_, RenderError>(Arc::new(made))
            })
            .await?;
        let status = self.miss_status(made_here.load(Ordering::Relaxed), sequence.from_shared);
        Ok((sequence, status))
    }

    /// How a memory miss was answered, counted: made for this request
    /// (`here`) or waited for, from the shared cache or rendered.
    fn miss_status(&self, here: bool, from_shared: bool) -> CacheStatus {
        let m = &self.metrics;
        match (here, from_shared) {
            // Waited for another request's render or shared-cache lookup.
            (false, true) => {
                m.cache_coalesced.inc();
                CacheStatus::Shared
            }
            (false, false) => {
                m.cache_coalesced.inc();
                CacheStatus::Coalesced
            }
            (true, true) => {
                m.cache_shared.inc();
                CacheStatus::Shared
            }
            (true, false) => {
                m.cache_misses.inc();
                CacheStatus::Miss
            }
        }
    }

    /// Whether the thumbnail for `req` (snapped as [`Renderer::thumbnail`]
    /// snaps it) is in the cache now.
    pub fn is_cached(&self, req: &ThumbnailRequest) -> bool {
        self.canonical(req)
            .and_then(|req| self.settled_now(req))
            .is_some_and(|req| self.cache.contains_key(req.as_ref()))
    }

    /// A video's duration, from the same kept info as `/v1/info` (see
    /// [`Renderer::info`]): a file's container header and index, a
    /// streaming source's playlist. Through the same pool and limits as
    /// renders.
    pub async fn probe(
        &self,
        org: &str,
        env: &str,
        key: &str,
    ) -> Result<media::decode::Probe, RenderError> {
        Ok(media::decode::Probe {
            duration_secs: self.probed_duration(org, env, key).await?,
        })
    }

    /// Where the URIs of a streaming document at `location`, found
    /// through `org`/`env`, may point: within the environment's template,
    /// or the org's video-URL rules.
    fn scope(&self, org: &str, env: &str, location: &SourceLocation) -> Cow<'_, Scope> {
        match self.environment(org, env).map(|e| &e.locator) {
            Some(Locator::Template { scope, .. }) => Cow::Borrowed(scope),
            _ => Cow::Owned(Scope::around(location)),
        }
    }

    /// Where `key` of `org`/`env` is.
    async fn locate(&self, org: &str, env: &str, key: &str) -> Result<SourceLocation, RenderError> {
        let env = self
            .environment(org, env)
            .ok_or(RenderError::UnknownEnvironment)?;
        match &env.locator {
            Locator::Template { template, .. } => Ok(template.locate(key)),
            Locator::VideoUrls => {
                let book = self.urls.as_ref().ok_or(RenderError::UnknownEnvironment)?;
                let entry = book.get(org, key).await?.ok_or(SourceError::NotFound)?;
                Ok(SourceLocation::Url {
                    org: org.to_owned(),
                    url: entry.url,
                    validator: entry.validator,
                })
            }
        }
    }

    /// Takes a video URL from a caller of `org`: checks it against the
    /// org's policy, reads its first bytes (which stay cached for the
    /// render), records it in the URL book and returns its key.
    pub async fn register_url(&self, org: &str, raw: &str) -> Result<String, RenderError> {
        let book = self.urls.as_ref().ok_or_else(|| {
            SourceError::Forbidden("this org does not take video URLs (video_url_prefixes)".into())
        })?;
        let (url, validator) = self.sources.identify_url(org, raw).await?;
        let key = urlbook::key_for(&url, &validator);
        let entry = urlbook::Entry { url, validator };
        book.put(org, &key, &entry).await?;
        Ok(key)
    }

    /// Whether the org takes video URLs; its policy checks them.
    pub fn url_policy(&self, org: &str) -> Option<&crate::source::guard::UrlPolicy> {
        self.sources.url_policy(org)
    }

    /// Checks that the file at `path` is a video thumbd can render (an
    /// upload, before it is stored): its container, its index complete,
    /// its first frame decodable. Through the same pool and limits as
    /// renders.
    pub async fn check_file(
        &self,
        path: &std::path::Path,
    ) -> Result<media::decode::Probe, RenderError> {
        let location = SourceLocation::File(path.to_owned());
        let (first, second) = (
            self.sources.open(&location).await?,
            self.sources.open(&location).await?,
        );
        let limits = self.limits(Instant::now() + self.timeout);
        let checked = self.pool.run(move || {
            let probe = media::decode::probe_complete(first, &limits)?;
            media::decode::decode_frame(second, TimeSpec::At(0), &limits)?;
            Ok::<_, MediaError>(probe)
        });
        Ok(checked.await.map_err(|e| self.busy(e))??)
    }

    fn limits(&self, deadline: Instant) -> Limits {
        Limits {
            max_frame_pixels: self.limits.0,
            max_source_bytes: self.limits.1,
            decoder_threads: self.limits.2,
            best_frame_scan_frames: self.pictures.best_frame_scan_frames,
            deadline,
        }
    }

    /// Runs `f` on the render pool: its deadline starts once a slot is
    /// free (waiting is bounded by the queue), and it decodes on FFmpeg's
    /// frame threads only while no other render runs or waits.
    async fn on_pool<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Limits) -> Result<T, MediaError> + Send + 'static,
    ) -> Result<T, RenderError> {
        let limits = self.limits(Instant::now());
        let timeout = self.timeout;
        let pool = self.pool.clone();
        let done = self
            .pool
            .run(move || {
                let limits = Limits {
                    deadline: Instant::now() + timeout,
                    decoder_threads: decoder_threads(
                        limits.decoder_threads,
                        pool.busy() + pool.waiting(),
                    ),
                    ..limits
                };
                f(&limits)
            })
            .await
            .map_err(|e| self.busy(e))?;
        Ok(done?)
    }

    /// Renders without the thumbnail cache (the byte and frame caches still
    /// apply). A playlist's URIs may point within its own folder.
    pub async fn render(
        &self,
        location: &SourceLocation,
        spec: RenderSpec,
    ) -> Result<Thumbnail, RenderError> {
        let scope = Scope::around(location);
        let spec = self.settle_spec(location, &scope, spec).await?;
        self.render_parts(location, &scope, String::new(), spec)
            .await
            .map(|(t, _)| t)
    }

    /// A render, as served and as encoded, from frames of the source at
    /// `version` (empty: whatever version the frame cache has).
    async fn render_parts(
        &self,
        location: &SourceLocation,
        scope: &Scope,
        version: String,
        spec: RenderSpec,
    ) -> Result<(Thumbnail, media::Rendered), RenderError> {
        let started = Instant::now();
        let (decoded, decoded_here) = self.frame(location, scope, version, &spec).await?;
        let mut timings = RenderTimings::default();
        if decoded_here {
            timings.fetch = decoded.fetch;
            timings.decode = decoded.decode;
        } else {
            timings.frame_reused = true;
        }
        // Admitted with its decode: the encode waits for a slot, never refused.
        let background = self.jpeg_background;
        let rendered = self
            .pool
            .run_admitted(move || {
                let started = Instant::now();
                media::finish(&decoded.frame, &spec, background).map(|r| (r, started.elapsed()))
            })
            .await
            .map_err(|e| self.busy(e))?;
        let (rendered, encode) = rendered?;
        timings.encode = encode;
        self.metrics.stage("encode", encode);
        self.metrics.renders.inc();
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "rendered"
        );
        Ok((Thumbnail::new(&rendered, timings), rendered))
    }

    /// The decoded frame `spec` shows (its time; for a streaming source
    /// also its size, which chooses the rendition), from the frame cache
    /// or decoded once however many ask at the same time; and whether it
    /// was decoded for this call.
    async fn frame(
        &self,
        location: &SourceLocation,
        scope: &Scope,
        version: String,
        spec: &RenderSpec,
    ) -> Result<(Arc<Decoded>, bool), RenderError> {
        let decoded_here = AtomicBool::new(false);
        // A streaming source's frame depends on the rendition the size
        // chose: it names the frame too.
        let stream = match location.stream_kind() {
            Some(_) => Some(
                self.stream(location, scope, spec.width, spec.height)
                    .await?,
            ),
            None => None,
        };
        let version = match &stream {
            Some(s) => format!("{version}\n{}", s.rendition),
            None => version,
        };
        let decoded = self
            .frames
            .try_get_with((location.clone(), version, spec.time), async {
                decoded_here.store(true, Ordering::Relaxed);
                match &stream {
                    Some(stream) => self.decode_segmented(stream, spec.time).await,
                    None => self.decode(location, spec.time).await,
                }
            })
            .await
            .map_err(|e| (*e).clone())?;
        Ok((decoded, decoded_here.load(Ordering::Relaxed)))
    }

    /// Finds and decodes the frame shown at `time` of a streaming source.
    async fn decode_segmented(
        &self,
        stream: &streaming::Stream,
        time: TimeSpec,
    ) -> Result<Arc<Decoded>, RenderError> {
        let mut segments = self.segments(stream);
        let (frame, elapsed) = self
            .on_pool(move |limits| {
                let started = Instant::now();
                segmented::decode_frame(&mut segments, time, limits).map(|f| (f, started.elapsed()))
            })
            .await?;
        // Segments are fetched as the decode reads them: one figure.
        let decoded = Decoded {
            fetch: Duration::ZERO,
            decode: elapsed,
            frame,
        };
        self.metrics.stage("decode", decoded.decode);
        self.metrics
            .frames_decoded
            .observe(decoded.frame.packets_decoded as f64);
        Ok(Arc::new(decoded))
    }

    /// Finds and decodes the frame shown at `time`.
    async fn decode(
        &self,
        location: &SourceLocation,
        time: TimeSpec,
    ) -> Result<Arc<Decoded>, RenderError> {
        let opening = Instant::now();
        let reader = self.sources.open(location).await?;
        let opened = opening.elapsed();
        let reading = Arc::new(AtomicU64::new(0));
        let reader = Box::new(TimedRead {
            inner: reader,
            nanos: reading.clone(),
        });
        let (frame, elapsed) = self
            .on_pool(move |limits| {
                let started = Instant::now();
                media::decode::decode_frame(reader, time, limits).map(|f| (f, started.elapsed()))
            })
            .await?;
        let read = Duration::from_nanos(reading.load(Ordering::Relaxed));
        let decoded = Decoded {
            fetch: opened + read,
            decode: elapsed.saturating_sub(read),
            frame,
        };
        self.metrics.stage("fetch", decoded.fetch);
        self.metrics.stage("decode", decoded.decode);
        self.metrics
            .frames_decoded
            .observe(decoded.frame.packets_decoded as f64);
        Ok(Arc::new(decoded))
    }
}
