//! What an operator scrapes at `GET /metrics`: counters, gauges and
//! histograms in the Prometheus/OpenMetrics text format, through the
//! `prometheus-client` crate (never hand-formatted).
//!
//! One [`Metrics`] per server, owned by the renderer and shared by the HTTP
//! layer and the job engine; there is no global registry, so tests can run
//! several servers in one process and read each one's own figures. Counting
//! is an atomic add on a handle kept here; values that already live
//! elsewhere (cache size, pool queue, jobs by state) are read when scraped
//! and set on gauges just before encoding.
//!
//! This module depends on nothing else in the crate, so any layer may count.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which in-memory cache.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub cache: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Which endpoint: `thumbnail`, `api`, `health`, `ready`, `metrics`,
    /// `openapi`, `demo` or `unknown`.
    pub route: &'static str,
    /// `2xx` .. `5xx`.
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    /// `fetch` (source reads, including the container's index), `decode`
    /// (demuxing and decoding to the frame), `encode` (scale, convert, encode).
    pub stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 us .. ~26 s: a cache hit lands in the first buckets, a long
    // render in the last.
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

/// Every metric thumbd exports. Fields are cheap handles (atomics behind an
/// `Arc`); clone the ones a subsystem needs.
pub struct Metrics {
    registry: Registry,

    /// Requests answered, by route and status class.
    pub http_requests: Family<RequestLabels, Counter>,
    /// Connections closed because the client took nothing of an answer
    /// for `server.send_timeout_secs`.
    pub send_timeouts: Counter,
    /// Request bodies read and discarded after an answer that did not need
    /// them (a refused upload), so a client writing its body first gets
    /// the answer.
    pub lingering_reads: Counter,
    /// Time from the request head to the response head, by route.
    pub http_duration: HistogramFamily<RouteLabels>,

    /// Thumbnails served from thumbd's cache.
    pub cache_hits: Counter,
    /// Thumbnails rendered for the request that asked.
    pub cache_misses: Counter,
    /// Requests that waited for a render (or shared-cache lookup) another
    /// request had started.
    pub cache_coalesced: Counter,
    /// Thumbnails found in the shared cache after a memory miss, for the
    /// request that looked.
    pub cache_shared: Counter,
    /// Thumbnails dropped to make room.
    pub cache_evictions: Counter,
    pub cache_entries: Gauge,
    pub cache_bytes: Gauge,
    /// Bytes each in-memory cache holds, by `cache`: `thumbnails` (as
    /// `cache_bytes`), `frames` (decoded frames), `pictures` (storyboards
    /// and animations), `source` (byte ranges of videos). Their sum is what
    /// the configured cache sizes bound; RSS above it is thumbd's overhead.
    pub cache_memory_bytes: Family<CacheLabels, Gauge>,

    /// Source reads (HTTP range requests).
    pub source: SourceMetrics,

    /// Renders completed (a frame decoded or reused, then encoded).
    pub renders: Counter,
    /// Renders holding a pool slot now.
    pub renders_in_flight: Gauge,
    /// Renders waiting for a slot now.
    pub renders_queued: Gauge,
    /// Renders refused because the wait queue was full (503).
    pub renders_refused: Counter,
    /// Time per render stage.
    pub render_stage: HistogramFamily<StageLabels>,
    /// Packets sent to the decoder to reach the frame shown.
    pub frames_decoded: Histogram,

    /// Jobs by state (`pending`, `running`, `completed`, `failed`).
    pub jobs: Family<StateLabels, Gauge>,
    /// Jobs pending or running: what `jobs.max_queue` bounds.
    pub jobs_queue_length: Gauge,
    /// Webhook deliveries by outcome (`delivered`, `retried`, `failed`).
    pub webhook_deliveries: Family<OutcomeLabels, Counter>,

    /// Shared-cache lookups by outcome: `hit`, `miss`, `error` (failed or
    /// timed out: rendered instead), `skipped` (backing off after errors).
    pub shared_lookups: Family<OutcomeLabels, Counter>,
    /// Shared-cache writes by outcome: `written`, `error`, `dropped` (the
    /// write queue was full, or backing off after errors).
    pub shared_writes: Family<OutcomeLabels, Counter>,
    /// Time of shared-cache lookups that answered (hit or miss).
    pub shared_lookup_duration: Histogram,
}

/// The request counters and latency histogram of one route: handles to
/// the series in the registry.
#[derive(Clone)]
pub struct RouteMetrics {
    /// 2xx, 3xx, 4xx, 5xx (thumbd sends no 1xx of its own).
    by_class: [Counter; 4],
    duration: Histogram,
}

impl RouteMetrics {
    /// Counts one answered request.
    pub fn record(&self, status: u16, elapsed: Duration) {
        let class = match status {
            ..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            _ => 3,
        };
        self.by_class[class].inc();
        self.duration.observe(elapsed.as_secs_f64());
    }
}

/// The source side, cloned into the HTTP source reader.
#[derive(Clone, Default)]
pub struct SourceMetrics {
    pub requests: Counter,
    pub bytes: Counter,
    /// Failed source reads by kind (`not_found`, `timeout`, `status`,
    /// `bad_response`, `changed`, `connect`, `io`).
    pub errors: Family<KindLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("thumbd"),
            http_requests: Family::default(),
            send_timeouts: Counter::default(),
            lingering_reads: Counter::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            cache_coalesced: Counter::default(),
            cache_shared: Counter::default(),
            cache_evictions: Counter::default(),
            cache_entries: Gauge::default(),
            cache_bytes: Gauge::default(),
            cache_memory_bytes: Family::default(),
            source: SourceMetrics::default(),
            renders: Counter::default(),
            renders_in_flight: Gauge::default(),
            renders_queued: Gauge::default(),
            renders_refused: Counter::default(),
            render_stage: Family::new_with_constructor(latency_histogram),
            // 1 (a keyframe) .. 1024 (a long GOP).
            frames_decoded: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            jobs: Family::default(),
            jobs_queue_length: Gauge::default(),
            webhook_deliveries: Family::default(),
            shared_lookups: Family::default(),
            shared_writes: Family::default(),
            shared_lookup_duration: latency_histogram(),
        };
        // Series an operator alerts on exist from the start, at zero.
        for outcome in ["delivered", "retried", "failed"] {
            let _ = m
                .webhook_deliveries
                .get_or_create(&OutcomeLabels { outcome });
        }
        for outcome in ["hit", "miss", "error", "skipped"] {
            let _ = m.shared_lookups.get_or_create(&OutcomeLabels { outcome });
        }
        for outcome in ["written", "error", "dropped"] {
            let _ = m.shared_writes.get_or_create(&OutcomeLabels { outcome });
        }
        for kind in SourceMetrics::KINDS {
            let _ = m.source.errors.get_or_create(&KindLabels { kind });
        }
        for stage in ["fetch", "decode", "encode"] {
            let _ = m.render_stage.get_or_create(&StageLabels { stage });
        }
        let r = &mut m.registry;
        r.register(
            "http_requests",
            "HTTP requests answered, by route and status class",
            m.http_requests.clone(),
        );
        r.register(
            "cache_memory_bytes",
            "Bytes each in-memory cache holds: thumbnails, frames, pictures, source",
            m.cache_memory_bytes.clone(),
        );
        r.register(
            "send_timeouts",
            "Connections closed because the client stopped taking an answer for server.send_timeout_secs",
            m.send_timeouts.clone(),
        );
        r.register(
            "lingering_reads",
            "Request bodies read and discarded after an answer that did not need them (a refused upload)",
            m.lingering_reads.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by route",
            Unit::Seconds,
            m.http_duration.clone(),
        );
        r.register(
            "cache_hits",
            "Thumbnails served from the cache",
            m.cache_hits.clone(),
        );
        r.register(
            "cache_misses",
            "Thumbnails rendered for the request that asked",
            m.cache_misses.clone(),
        );
        r.register(
            "cache_coalesced",
            "Requests that waited for a render already under way",
            m.cache_coalesced.clone(),
        );
        r.register(
            "cache_shared",
            "Thumbnails found in the shared cache after a memory miss",
            m.cache_shared.clone(),
        );
        r.register(
            "cache_evictions",
            "Thumbnails evicted from the cache to make room",
            m.cache_evictions.clone(),
        );
        r.register(
            "cache_entries",
            "Thumbnails held in the cache",
            m.cache_entries.clone(),
        );
        r.register_with_unit(
            "cache",
            "Memory held by cached thumbnails",
            Unit::Bytes,
            m.cache_bytes.clone(),
        );
        r.register(
            "source_requests",
            "Range requests sent to video sources",
            m.source.requests.clone(),
        );
        r.register_with_unit(
            "source_fetched",
            "Bytes received from video sources",
            Unit::Bytes,
            m.source.bytes.clone(),
        );
        r.register(
            "source_errors",
            "Failed source reads, by kind",
            m.source.errors.clone(),
        );
        r.register("renders", "Renders completed", m.renders.clone());
        r.register(
            "renders_in_flight",
            "Renders holding a slot of the render pool",
            m.renders_in_flight.clone(),
        );
        r.register(
            "renders_queued",
            "Renders waiting for a slot of the render pool",
            m.renders_queued.clone(),
        );
        r.register(
            "renders_refused",
            "Renders refused with 503 because the wait queue was full",
            m.renders_refused.clone(),
        );
        r.register_with_unit(
            "render_stage_duration",
            "Time spent per render stage: fetch, decode, encode",
            Unit::Seconds,
            m.render_stage.clone(),
        );
        r.register(
            "render_frames_decoded",
            "Frames sent to the decoder to reach the frame shown, per render",
            m.frames_decoded.clone(),
        );
        r.register("jobs", "Jobs by state", m.jobs.clone());
        r.register(
            "jobs_queue_length",
            "Jobs pending or running",
            m.jobs_queue_length.clone(),
        );
        r.register(
            "webhook_deliveries",
            "Webhook delivery attempts, by outcome",
            m.webhook_deliveries.clone(),
        );
        r.register(
            "shared_cache_lookups",
            "Shared render cache lookups, by outcome",
            m.shared_lookups.clone(),
        );
        r.register(
            "shared_cache_writes",
            "Shared render cache writes, by outcome",
            m.shared_writes.clone(),
        );
        r.register_with_unit(
            "shared_cache_lookup_duration",
            "Time of shared render cache lookups that answered",
            Unit::Seconds,
            m.shared_lookup_duration.clone(),
        );
        m
    }

    /// One route's request metrics, resolved once (at start-up), so that
    /// counting a request needs no label lookup.
    pub fn route(&self, route: &'static str) -> RouteMetrics {
        RouteMetrics {
            by_class: ["2xx", "3xx", "4xx", "5xx"].map(|status| {
                self.http_requests
                    .get_or_create(&RequestLabels { route, status })
                    .clone()
            }),
            duration: self
                .http_duration
                .get_or_create(&RouteLabels { route })
                .clone(),
        }
    }

    /// Records one render stage's time.
    pub fn stage(&self, stage: &'static str, elapsed: Duration) {
        self.render_stage
            .get_or_create(&StageLabels { stage })
            .observe(elapsed.as_secs_f64());
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl SourceMetrics {
    /// Every error kind, as `SourceError::kind` names them.
    pub const KINDS: [&'static str; 8] = [
        "not_found",
        "denied",
        "timeout",
        "status",
        "bad_response",
        "changed",
        "connect",
        "io",
    ];

    pub fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&KindLabels { kind }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_appear_in_the_exposition() {
        let m = Metrics::new();
        let thumbnails = m.route("thumbnail");
        thumbnails.record(200, Duration::from_millis(2));
        thumbnails.record(200, Duration::from_millis(3));
        thumbnails.record(404, Duration::from_millis(1));
        // Resolved again (another handle), the same series.
        m.route("thumbnail").record(503, Duration::from_millis(1));
        m.cache_hits.inc();
        m.source.error("timeout");
        m.stage("decode", Duration::from_millis(40));
        let text = m.encode();
        assert!(
            text.contains(r#"thumbd_http_requests_total{route="thumbnail",status="2xx"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"thumbd_http_requests_total{route="thumbnail",status="4xx"} 1"#));
        assert!(text.contains(r#"thumbd_http_requests_total{route="thumbnail",status="5xx"} 1"#));
        assert!(text.contains(r#"thumbd_http_requests_total{route="thumbnail",status="3xx"} 0"#));
        assert!(text.contains(r#"thumbd_http_request_duration_seconds_count{route="thumbnail"} 4"#));
        assert!(text.contains("thumbd_cache_hits_total 1"));
        assert!(text.contains(r#"thumbd_source_errors_total{kind="timeout"} 1"#));
        assert!(text.contains(r#"thumbd_render_stage_duration_seconds_count{stage="decode"} 1"#));
        assert!(text.ends_with("# EOF\n"));
        // Series that are zero so far are shown, not left out.
        assert!(text.contains(r#"thumbd_webhook_deliveries_total{outcome="failed"} 0"#));
        assert!(text.contains(r#"thumbd_source_errors_total{kind="not_found"} 0"#));
    }
}
