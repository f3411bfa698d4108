//! thumbd: an HTTP origin that turns a URL into a picture of a video at a
//! moment.
//!
//! `GET /v1/thumbnail/{org}/{env}/{key}.webp?width=320&timeStamp=12` range-reads
//! the bytes it needs of the video, decodes one frame with FFmpeg, scales and
//! encodes it, caches the result and answers with headers a CDN can keep.
//!
//! The modules, from the outside in:
//! - [`http`]: the server, routing, responses, and the JSON API.
//! - [`problem`]: problem details (RFC 9457), the error vocabulary shared by
//!   the server and the job API, and the error-to-status mapping.
//! - [`request`]: the thumbnail URL parsed and validated into a typed request
//!   with a canonical cache key. Pure.
//! - [`auth`]: signed URLs (JWT verification against an org's keys, bound
//!   parameters), API keys and preview tokens.
//! - [`render`]: the service behind the URL: thumbnail cache, one render for
//!   concurrent identical requests, environment lookup.
//! - [`jobs`]: the job API's engine: durable jobs (SQLite, or PostgreSQL
//!   shared by nodes, claimed under leases) that pre-render exactly what
//!   dynamic URLs ask for, fair per-org scheduling, webhooks.
//! - [`metrics`]: what `/metrics` exports (Prometheus text), one registry
//!   per server.
//! - [`pool`]: the bounded pool every FFmpeg and image task runs on, off the
//!   async runtime.
//! - [`media`]: the pipeline (custom I/O, seek and decode, geometry, scaling,
//!   HDR tone mapping, encoding). Blocking; used by the server, the CLI and
//!   tests alike.
//! - [`source`]: where videos come from: `file:` paths, HTTP and S3 range
//!   reads with a shared byte cache, and caller-named video URLs behind an
//!   address guard.
//! - [`objects`]: clients for S3-compatible buckets and local folders
//!   (videos in object storage, the shared render cache).
//! - [`shared_cache`]: the second cache tier, shared by nodes and kept
//!   across restarts: renders keyed by request and source version.
//! - [`store`]: thumbd's own object store for uploaded videos (`store:`
//!   environments): streamed to disk, content-addressed, quota, retention.
//! - [`db`]: the database the jobs and the URL book share: SQLite opened
//!   the one way, or PostgreSQL for several nodes (the URL, pools, the
//!   schema lock). Each owner creates its own tables.
//! - [`config`]: the TOML configuration and its defaults.

pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod http;
pub mod jobs;
pub mod media;
pub mod metrics;
pub mod objects;
pub mod orgs;
pub mod pool;

pub mod render;
pub mod request;
pub mod setup;
pub mod shared_cache;
pub mod source;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::Config;

/// Prepares FFmpeg once per process: registers codecs and keeps its own log
/// quiet (corrupt inputs are expected; thumbd reports them itself).
pub fn init_ffmpeg() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        ffmpeg_next::init().expect("FFmpeg initialises");
        let level = if std::env::var_os("THUMBD_FFMPEG_LOG").is_some() {
            ffmpeg_next::util::log::Level::Debug
        } else {
            ffmpeg_next::util::log::Level::Fatal
        };
        ffmpeg_next::util::log::set_level(level);
    });
}

/// Serves thumbnails for `config` on `listener` until `shutdown` completes.
pub async fn run(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    init_ffmpeg();
    let _resolved = setup::resolve(config)?;
    let app = Arc::new(http::App::new(config).await?);
    tracing::info!(addr = %listener.local_addr()?, "thumbd serving");
    // On shutdown: not ready, then closed, then in-flight requests and
    // running jobs get their grace period; pending jobs stay on disk.
    http::serve(listener, app, shutdown).await;
    Ok(())
}
