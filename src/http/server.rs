//! What every connection and every request gets: accepting connections
//! ([`serve`]) and shutting down as a load balancer expects, then per
//! request ([`App::handle`]) an `X-Request-Id`, a count in
//! [`crate::metrics`], `Connection: close` when its body was left unread,
//! and one access-log line (target `thumbd::access`, written by
//! `access_log`). What a request asks for is the router's.

use std::convert::Infallible;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Request, Response};
use hyper::body::Body as _;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::access_log::{self, AccessLine};
use super::app::App;
use super::clients::PeerAddr;
use super::conn::{Linger, SendTimeout, TrackedBody};
use super::responses::{Body, X_THUMBNAIL_CACHE};
use super::router;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longest `X-Request-Id` taken from a client.
const MAX_REQUEST_ID: usize = 128;

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
                let stream = SendTimeout::new(stream, send_timeout, timeouts);
                let app = app.clone();
                let service = service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    // Who asks: the render queue's per-client share.
                    req.extensions_mut().insert(PeerAddr(peer));
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

impl App {
    /// Answers one request: routes it, then adds its request id, counts it
    /// and writes its access-log line.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        let request_id = match parts.headers.get(X_REQUEST_ID) {
            Some(v) if is_sane_request_id(v.as_bytes()) => v.clone(),
            _ => new_request_id(),
        };
        // A body left unread closes the connection after the answer (hyper
        // cannot tell where the next request starts); say so, so that a
        // client does not send its next request down a closing connection.
        let (body, read_to_end) = TrackedBody::new(body, || Linger {
            total: self.server_settings().linger(),
            idle: self.server_settings().body_idle_timeout(),
            reads: self.metrics().lingering_reads.clone(),
        });
        let (route, mut response) = router::dispatch(self, &parts, body).await;
        if read_to_end.is_some_and(|done| !done.load(Ordering::Relaxed)) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let elapsed = started.elapsed();
        let status = response.status();
        self.route_metrics[route as usize].record(status.as_u16(), elapsed);
        if access_log::enabled() {
            access_log::log(&AccessLine {
                request_id: request_id.to_str().unwrap_or("-"),
                method: parts.method.as_str(),
                path: &redacted(&parts.uri),
                status: status.as_u16(),
                bytes: response.body().size_hint().exact().unwrap_or(0),
                duration_ms: elapsed.as_secs_f64() * 1000.0,
                cache: response
                    .headers()
                    .get(X_THUMBNAIL_CACHE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-"),
            });
        }
        response.headers_mut().insert(X_REQUEST_ID, request_id);
        response
    }
}

/// A client's request id is kept if it is 1-128 visible ASCII characters.
fn is_sane_request_id(v: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&v.len()) && v.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A new request id: 16 hex digits, unique within the process (a counter
/// through splitmix64, a bijection) and not guessable from the previous one
/// (the counter starts at a random offset).
fn new_request_id() -> HeaderValue {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let mut hex = [0u8; 16];
    hex::encode_to_slice(z.to_be_bytes(), &mut hex).expect("16 hex digits for 8 bytes");
    HeaderValue::from_bytes(&hex).expect("hex")
}

/// The path and query as logged: the value of every `token` parameter is
/// replaced, so signed URLs never reach the logs.
fn redacted(uri: &http::Uri) -> std::borrow::Cow<'_, str> {
    let path = uri.path();
    match uri.query() {
        None => path.into(),
        Some(q) if !q.contains("token=") => {
            uri.path_and_query().map_or(path, |pq| pq.as_str()).into()
        }
        Some(q) => {
            let parts: Vec<&str> = q
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some(("token", _)) => "token=REDACTED",
                    _ => p,
                })
                .collect();
            format!("{path}?{}", parts.join("&")).into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        assert!(is_sane_request_id(b"abc-123_XYZ"));
        assert!(!is_sane_request_id(b""));
        assert!(!is_sane_request_id(b"has space"));
        assert!(!is_sane_request_id(&[b'a'; 129]));
        assert!(!is_sane_request_id(b"tab\there"));
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn tokens_are_redacted() {
        let uri: http::Uri = "/v1/thumbnail/o/e/k.webp?width=1&token=abc.def&x=token%3D"
            .parse()
            .unwrap();
        assert_eq!(
            redacted(&uri),
            "/v1/thumbnail/o/e/k.webp?width=1&token=REDACTED&x=token%3D"
        );
        let uri: http::Uri = "/a?width=1".parse().unwrap();
        assert_eq!(redacted(&uri), "/a?width=1");
    }
}
