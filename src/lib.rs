//! thumbd: an HTTP origin that turns a URL into a picture of a video at a
//! moment.
//!
//! `GET /v1/thumbnail/{org}/{env}/{key}.webp?width=320&timeStamp=12` range-reads
//! the bytes it needs of the video, decodes one frame with FFmpeg, scales and
//! encodes it, caches the result and answers with headers a CDN can keep.
//!
//! The layers, from the bottom up; each imports only layers below it
//! (`python3 ../shared/tools/module-circles.py src` finds no loop):
//! 1. [`domain`]: the vocabulary. What a picture is (format, size, fit,
//!    quality, moment; storyboard and animation specs), ids, the parameter
//!    error and the problem (RFC 9457) every answer uses. Pure.
//! 2. [`config`]: the TOML file as typed data, its defaults, and checks of
//!    its own values.
//! 3. Infrastructure: [`db`] (SQLite and PostgreSQL, shared by jobs and
//!    the URL book), [`objects`] (S3 and folder clients), [`pool`] (the
//!    bounded pool FFmpeg and image work runs on), [`metrics`].
//! 4. [`source`]: where videos come from (`file:`, HTTP and S3 range reads
//!    with a byte cache, guarded video URLs, the URL book).
//! 5. [`media`]: the blocking FFmpeg pipeline (seek, exact frame, scale,
//!    tone-map, encode; storyboards, animations, the best frame); all FFI
//!    in `media::ffi`.
//! 6. [`request`]: the one parser of picture parameters, and URLs parsed
//!    into canonical requests (the cache keys). Pure.
//! 7. [`orgs`]: the orgs and environments resolved once from the config.
//!    [`auth`] (signed URLs, API keys, preview tokens), [`shared_cache`]
//!    (the second cache tier) and [`store`] (uploaded videos) sit here too.
//! 8. [`render`]: the service behind a URL: caches, one render per key,
//!    environment lookup.
//! 9. [`jobs`]: durable jobs that pre-render what URLs will ask for,
//!    scheduling, webhooks.
//! 10. [`http`]: the server: app state, router, responses, access, one
//!     handler file per kind of endpoint.
//! 11. [`setup`]: start-up. `resolve` turns the config into the resolved
//!     state (`serve` and `check-config` both call it); `build` is the
//!     composition root that builds every service in order.

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
    let resolved = setup::resolve(config)?;
    let app = Arc::new(setup::build(config, resolved).await?);
    tracing::info!(addr = %listener.local_addr()?, "thumbd serving");
    // On shutdown: not ready, then closed, then in-flight requests and
    // running jobs get their grace period; pending jobs stay on disk.
    http::serve(listener, app, shutdown).await;
    Ok(())
}
