//! `[render]`, `[pictures]`, `[fetch]`, `[auth]` and `[jobs]`: the work
//! thumbd does and its bounds.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RenderConfig {
    /// Renders running at once; 0 means the number of CPUs.
    pub concurrency: usize,
    /// Renders allowed to wait for a slot; beyond that, 503 with Retry-After.
    pub queue: usize,
    /// Places of `queue` one client (a peer address, or the address a
    /// trusted proxy names: `server.client_header`) may hold; past them,
    /// that client's new renders are refused with 503 while others' are
    /// still admitted. Default: a quarter of `queue`, at least 1.
    pub per_client_queue: Option<usize>,
    /// Wall-clock limit of one render (fetching, decoding, encoding), seconds.
    pub timeout_secs: u64,
    /// Bytes one render may read from its source; past it, 413.
    pub max_source_bytes: u64,
    /// Largest decoded frame accepted, in pixels (width x height); refused
    /// with 422 before decoding.
    pub max_frame_pixels: u64,
    /// Decoder threads per render; 0 = automatic: FFmpeg's frame threads for
    /// a render running alone, one thread while other renders run.
    pub decoder_threads: usize,
    /// Largest HLS playlist or DASH manifest read, bytes; past it, 413
    /// before its body is read.
    pub max_playlist_bytes: u64,
    /// Most segments (or renditions) one playlist or manifest may list;
    /// past it, 413.
    pub max_playlist_segments: usize,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig {
            concurrency: 0,
            queue: 256,
            per_client_queue: None,
            timeout_secs: 20,
            max_source_bytes: 512 * 1024 * 1024,
            max_frame_pixels: 40_000_000,
            decoder_threads: 0,
            max_playlist_bytes: 4 * 1024 * 1024,
            max_playlist_segments: 20_000,
        }
    }
}

/// Bounds of the multi-frame pictures: storyboards and animated previews.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PicturesConfig {
    /// Largest storyboard sprite, in pixels (width x height).
    pub storyboard_max_pixels: u64,
    /// Most tiles in one storyboard, over all its sprite sheets.
    pub storyboard_max_tiles: u32,
    /// The colour transparent pixels get in a JPEG (which has no alpha),
    /// `#rrggbb`.
    pub jpeg_background: String,
    /// Longest animated preview (`end - start`), seconds.
    pub animated_max_secs: f64,
    /// Highest `fps` of an animated preview.
    pub animated_max_fps: u32,
    /// Widest animated preview, pixels.
    pub animated_max_width: u32,
    /// Memory for cached storyboards and animations (apart from
    /// `cache.max_bytes`), bytes.
    pub cache_max_bytes: u64,
    /// Frames `timeStamp=auto` may decode beyond keyframes when those are
    /// few or all dark or flat; 0: keyframes only.
    pub best_frame_scan_frames: u32,
}

impl Default for PicturesConfig {
    fn default() -> Self {
        PicturesConfig {
            storyboard_max_pixels: 16 * 1024 * 1024,
            storyboard_max_tiles: 1000,
            jpeg_background: "#ffffff".to_owned(),
            animated_max_secs: 10.0,
            animated_max_fps: 30,
            animated_max_width: 640,
            cache_max_bytes: 64 * 1024 * 1024,
            best_frame_scan_frames: crate::domain::DEFAULT_SCAN_FRAMES,
        }
    }
}

impl PicturesConfig {
    pub fn animated_limits(&self) -> crate::domain::animated::AnimatedLimits {
        crate::domain::animated::AnimatedLimits {
            max_secs: self.animated_max_secs,
            max_fps: self.animated_max_fps,
            max_width: self.animated_max_width,
        }
    }
}

impl RenderConfig {
    pub fn effective_concurrency(&self) -> usize {
        if self.concurrency == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            self.concurrency
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// Places of the wait queue one client may hold: `per_client_queue`, or
    /// a quarter of `queue` (at least 1).
    pub fn per_client_queue(&self) -> usize {
        self.per_client_queue.unwrap_or((self.queue / 4).max(1))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchConfig {
    /// Time to establish a connection to an HTTP source, seconds.
    pub connect_timeout_secs: u64,
    /// Time for one range request to complete, seconds; past it, 504.
    pub request_timeout_secs: u64,
    /// Size of the first range request, and of a read-ahead run's first
    /// request. Small: an MP4's index is then fetched exactly (one request
    /// however large), a WebM header is a few hundred bytes, and bytes past
    /// what a render needs are bytes billed by object storage.
    pub initial_read_bytes: u64,
    /// Largest single range request; sequential reads double up to this.
    pub max_read_bytes: u64,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            connect_timeout_secs: 5,
            request_timeout_secs: 10,
            initial_read_bytes: 16 * 1024,
            max_read_bytes: 4 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Clock skew tolerated on `exp` and `nbf`, seconds.
    pub leeway_secs: u64,
    /// Lifetime of preview tokens issued by the API, seconds.
    pub preview_token_ttl_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            leeway_secs: 30,
            preview_token_ttl_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// SQLite database of jobs; relative paths resolve from the config's
    /// folder. Default: `data/thumbd.db` there.
    pub db_path: Option<PathBuf>,
    /// Jobs pending or running at most; past it, submissions get 429.
    pub max_queue: usize,
    /// Jobs of one org running at once; orgs take turns.
    pub per_org_concurrency: usize,
    /// Items in one batch call.
    pub max_batch: usize,
    /// Tries of a job failing on a transient source error (502/504 class).
    pub max_attempts: u32,
    /// Wait before the first retry, doubled each time, milliseconds.
    pub retry_backoff_ms: u64,
    /// Tries of a webhook delivery.
    pub webhook_attempts: u32,
    /// Wait before the first webhook retry, doubled each time, milliseconds.
    pub webhook_backoff_ms: u64,
    /// Time limit of one webhook call, seconds.
    pub webhook_timeout_secs: u64,
    /// API calls per minute per API key; 0 turns rate limiting off.
    pub rate_limit_per_minute: u32,
    /// Longest `Prefer: wait=N` honoured, seconds: a client that asks to
    /// wait gets the finished job (200) if it finishes within this, else
    /// the usual 202. The video-URL route without a webhook always waits.
    pub max_wait_secs: u64,
    /// Calls an API key may make at once above the steady rate.
    pub rate_limit_burst: u32,
    /// PostgreSQL shared by several nodes
    /// (`postgres://user:password@host:port/database`) instead of SQLite
    /// (`db_path` is then unused). At most one of this, `database_url_env`
    /// (the name of an environment variable holding it) and
    /// `database_url_file` (a file holding it).
    pub database_url: Option<String>,
    pub database_url_env: Option<String>,
    pub database_url_file: Option<PathBuf>,
    /// PostgreSQL: how long a node's claim on a job holds without a
    /// heartbeat (sent every third of it) before another node may take the
    /// job over, seconds.
    pub lease_secs: u64,
    /// PostgreSQL: how often an idle node looks for claimable jobs,
    /// milliseconds (a submission to the node itself starts at once).
    pub poll_ms: u64,
    /// PostgreSQL: this node's id, written on its claims; unique per node.
    /// Default: host name and process id.
    pub node_id: Option<String>,
    /// The video-URL book: entries kept at most; past it the least recently
    /// used go. 0: no bound.
    pub url_book_max_entries: u64,
    /// The video-URL book: an entry not used (registered again, or looked
    /// up for a thumbnail) for this many days is removed. 0: kept forever.
    pub url_book_max_age_days: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            db_path: None,
            max_queue: 1000,
            per_org_concurrency: 5,
            max_batch: 100,
            max_attempts: 4,
            retry_backoff_ms: 500,
            webhook_attempts: 6,
            webhook_backoff_ms: 1000,
            webhook_timeout_secs: 10,
            rate_limit_per_minute: 0,
            rate_limit_burst: 10,
            max_wait_secs: 30,
            database_url: None,
            database_url_env: None,
            database_url_file: None,
            lease_secs: 30,
            poll_ms: 500,
            node_id: None,
            url_book_max_entries: 100_000,
            url_book_max_age_days: 30,
        }
    }
}
