//! The HTTP layer: accepting connections, routing, and turning thumbnails
//! and errors into responses a CDN can cache. It calls [`crate::render`] and
//! knows nothing of FFmpeg.
//!
//! - [`routes`]: request to typed endpoint, and the thumbnail handlers.
//! - [`api`]: the JSON API (jobs, preview tokens), API keys, rate limits.

pub mod api;
pub mod routes;

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

use http::{header, HeaderValue, Response};

use crate::problem::Problem;

/// Response body: thumbnails and problems are always whole in memory.
pub type Body = Full<Bytes>;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown is asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// connections finish (bounded by a drain timeout).
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let service = service_fn(move |req| {
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(app.handle(req).await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("connections still open after the drain timeout"),
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
