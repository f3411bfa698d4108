//! The HTTP layer: accepting connections, routing, and turning thumbnails
//! and errors into responses a CDN can cache. It calls [`crate::render`] and
//! knows nothing of FFmpeg.
//!
//! - [`routes`]: request to typed endpoint, and the thumbnail handlers.
//! - [`api`]: the JSON API (jobs, preview tokens), API keys, rate limits,
//!   `Prefer: wait`.
//! - `uploads`: multipart video uploads into a `store:` environment.
//! - `compat`: the video-URL and conversion-task API shapes.
//! - `pictures`: storyboards (sprite, WebVTT, JSON) and animated previews.
//! - `demo`: the demo page at `/`.
//! - `conn`: clients as they are: a send timeout for those that stop
//!   reading, a lingering read for those that write their body first.
//!
//! Every request gets an `X-Request-Id`, a count in [`crate::metrics`] and
//! one access-log line (target `thumbd::access`).

pub mod api;
mod compat;
mod conn;
mod demo;
mod pictures;
pub mod routes;
mod uploads;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

pub use routes::App;

use http::{header, HeaderValue, Request, Response};

use crate::domain::Problem;

/// Response body: thumbnails and problems are always whole in memory.
pub type Body = Full<Bytes>;

/// Serves `app` on `listener` until `shutdown` completes, then shuts down
/// as a load balancer expects: `/readyz` answers 503 at once and new job
/// submissions are refused, connections are still accepted for
/// `server.shutdown_delay_secs` (so the balancer sees the probe fail before
/// anything is refused), then the listener closes and in-flight requests and
/// running jobs get `server.shutdown_grace_secs` to finish.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let settings = app.server_settings().clone();
    accept_until(&listener, &app, &graceful, shutdown).await;

    app.begin_shutdown();
    tracing::info!(
        delay_secs = settings.shutdown_delay_secs,
        grace_secs = settings.shutdown_grace_secs,
        "shutting down: /readyz answers 503; the listener closes after the delay"
    );
    accept_until(
        &listener,
        &app,
        &graceful,
        tokio::time::sleep(settings.shutdown_delay()),
    )
    .await;
    drop(listener);

    let grace = settings.shutdown_grace();
    let connections = async {
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("connections still open at the end of the grace period");
        }
    };
    tokio::join!(connections, app.jobs().shutdown(grace));
}

/// Accepts connections and serves each on its own task until `until`
/// completes.
async fn accept_until(
    listener: &TcpListener,
    app: &Arc<App>,
    graceful: &GracefulShutdown,
    until: impl Future<Output = ()>,
) {
    let settings = app.server_settings();
    let header_read_timeout = Duration::from_secs(settings.header_read_timeout_secs);
    let max_header_bytes = settings.max_header_bytes;
    let send_timeout = settings.send_timeout();
    tokio::pin!(until);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let timeouts = app.metrics().send_timeouts.clone();
                let stream = conn::SendTimeout::new(stream, send_timeout, timeouts);
                let app = app.clone();
                let service = service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    // Who asks: the render queue's per-client share.
                    req.extensions_mut().insert(routes::PeerAddr(peer));
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(app.handle(req).await) }
                });
                // A head larger than the read buffer is answered 431 by hyper
                // and the connection closed.
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_read_timeout)
                    .max_buf_size(max_header_bytes)
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut until => break,
        }
    }
}

/// A problem+json answer. Answers that would fail the same way again (400,
/// 404, 413, 415, 422) may be kept by a CDN for `error_max_age_secs`; the
/// rest are `no-store`.
pub(crate) fn problem_response(
    problem: Problem,
    error_max_age_secs: u64,
    head: bool,
) -> Response<Body> {
    let body = serde_json::to_vec(&problem).expect("problems serialize");
    let cache_control = if problem.is_stable() {
        HeaderValue::from_str(&format!("public, max-age={error_max_age_secs}")).expect("ascii")
    } else {
        HeaderValue::from_static("no-store")
    };
    let mut resp = Response::builder()
        .status(problem.status())
        .header(header::CONTENT_TYPE, "application/problem+json")
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::CACHE_CONTROL, cache_control);
    for (name, value) in problem.headers() {
        resp = resp.header(*name, value);
    }
    let body = if head {
        Body::default()
    } else {
        Body::from(body)
    };
    resp.body(body).expect("valid response parts")
}
