//! How answers are written, for every handler alike: problem+json, JSON and
//! plain bodies; the headers of a picture (ETag and `304 Not Modified`,
//! `Cache-Control`, `X-Thumbnail-*`, `Server-Timing`); and reading a JSON
//! API body within its limit. Nothing here knows the app or a route.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::Value;

use crate::auth;
use crate::domain::{FieldError, Problem};
use crate::render::{CacheStatus, RenderError, RenderTimings, Thumbnail};

/// Response body: thumbnails and problems are always whole in memory.
pub type Body = Full<Bytes>;

/// Largest JSON body an API call may send (a batch of 100 jobs is ~20 KiB).
const MAX_API_BODY: usize = 1024 * 1024;

/// `X-Thumbnail-Cache`: where a picture came from (`hit`, `miss`, ...); the
/// access log reads it back.
pub(super) const X_THUMBNAIL_CACHE: HeaderName = HeaderName::from_static("x-thumbnail-cache");
/// `X-Thumbnail-Time`: the time of the frame shown, as rendered.
const X_THUMBNAIL_TIME: HeaderName = HeaderName::from_static("x-thumbnail-time");
pub(super) const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// A problem+json answer. Answers that would fail the same way again (400,
/// 404, 413, 415, 422) may be kept by a CDN for `error_max_age_secs`; the
/// rest are `no-store`.
pub(super) fn problem_response(
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

/// A render's failure as a problem, logged: an error when it is ours (5xx),
/// information when the request or the video is at fault.
pub(super) fn render_problem(e: &RenderError, org: &str, env: &str, key: &str) -> Problem {
    let problem = Problem::from(e);
    if problem.status >= 500 {
        tracing::error!(error = %e, org, env, key, "render failed");
    } else {
        tracing::info!(error = %e, org, env, key, "render refused");
    }
    problem
}

/// A JSON answer of the API; never cached.
pub(super) fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(serde_json::to_vec(body).expect("serializes")))
        .expect("valid response")
}

/// A small non-cacheable answer.
pub(super) fn plain(
    content_type: &'static str,
    body: impl Into<Bytes>,
    head: bool,
) -> Response<Body> {
    let body: Bytes = body.into();
    let mut resp = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-store");
    if head {
        resp = resp.header(header::CONTENT_LENGTH, body.len());
    }
    resp.body(if head {
        Body::default()
    } else {
        Body::new(body)
    })
    .expect("valid response")
}

/// Reads a JSON API body, at most [`MAX_API_BODY`] bytes.
pub(super) async fn read_api_body<B>(body: B) -> Result<Bytes, Problem>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, MAX_API_BODY).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(_) => Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Body too large",
            format!("API bodies are limited to {MAX_API_BODY} bytes"),
        )),
    }
}

/// An API body as JSON; 400 (at `body`) when it is not.
pub(super) fn parse_json(body: &Bytes) -> Result<Value, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        Problem::invalid_request(vec![FieldError {
            message: format!("the body is not valid JSON: {e}"),
            location: "body".into(),
            value: String::new(),
        }])
    })
}

/// How long shared caches may keep a picture.
pub(super) struct CachePolicy {
    /// `Cache-Control` of public pictures, built once.
    pub(super) public: HeaderValue,
    /// `server.max_age_secs`: also the longest a signed picture is kept.
    pub(super) max_age_secs: u64,
}

impl CachePolicy {
    /// `Cache-Control` of a picture: immutable for public ones; no shared
    /// cache may keep a private one past its token's expiry.
    pub(super) fn until(&self, expires_at: Option<u64>) -> HeaderValue {
        match expires_at {
            None => self.public.clone(),
            Some(exp) => {
                let left = exp.saturating_sub(auth::now_secs()).min(self.max_age_secs);
                HeaderValue::from_str(&format!("public, max-age={left}")).expect("ascii")
            }
        }
    }
}

/// Whether the request's `If-None-Match` names `etag`.
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| etag_matches(v, etag)))
}

/// `If-None-Match` uses the weak comparison: `W/"x"` matches `"x"`.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let etag = etag.trim_start_matches("W/");
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

/// A thumbnail's answer (or `304 Not Modified`).
pub(super) fn thumbnail_response(
    t: &Thumbnail,
    cache: CacheStatus,
    cache_control: HeaderValue,
    headers: &HeaderMap,
    head: bool,
) -> Response<Body> {
    let not_modified = not_modified(headers, t.etag_str());
    // The hit path: header values from static strings or the texts made
    // with the thumbnail (no copy, no formatting), a body that shares
    // the cached bytes.
    let mut response = Response::new(Body::default());
    // Room for every header of a hit (and the request id added later)
    // without the map growing and rehashing on the way.
    *response.headers_mut() = HeaderMap::with_capacity(12);
    let h = response.headers_mut();
    h.insert(
        header::ETAG,
        HeaderValue::from_maybe_shared(t.etag.clone()).expect("hex in quotes"),
    );
    h.insert(header::CACHE_CONTROL, cache_control);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(X_THUMBNAIL_CACHE, HeaderValue::from_static(cache.as_str()));
    h.insert(
        X_THUMBNAIL_TIME,
        HeaderValue::from_maybe_shared(t.time_text.clone()).expect("digits"),
    );
    h.insert(
        SERVER_TIMING,
        match cache {
            CacheStatus::Hit => HeaderValue::from_static("cache;desc=hit"),
            CacheStatus::Shared => HeaderValue::from_static("cache;desc=shared"),
            _ => server_timing(&t.timings),
        },
    );
    if not_modified {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return response;
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(t.format.content_type()),
    );
    if head {
        // What a GET would send; for a GET, hyper takes it from the body.
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(t.bytes.len()));
    } else {
        *response.body_mut() = Body::new(t.bytes.clone());
    }
    response
}

/// A storyboard's or an animated preview's answer (or `304 Not
/// Modified`): the thumbnail's headers, less its time and timings.
pub(super) fn picture_response(
    body: Bytes,
    content_type: &'static str,
    etag: &str,
    cache: CacheStatus,
    cache_control: HeaderValue,
    headers: &HeaderMap,
    head: bool,
) -> Response<Body> {
    let not_modified = not_modified(headers, etag);
    let mut builder = Response::builder()
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, cache_control)
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .header(X_THUMBNAIL_CACHE, cache.as_str());
    if not_modified {
        builder = builder.status(StatusCode::NOT_MODIFIED);
        return builder.body(Body::default()).expect("valid response");
    }
    builder = builder.header(header::CONTENT_TYPE, content_type);
    if head {
        builder
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::default())
    } else {
        builder.body(Body::new(body))
    }
    .expect("valid response")
}

/// `Server-Timing` of a storyboard's or an animation's answer: how it was
/// found, and on a miss how long making it took (`made_in`).
pub(super) fn sequence_timing(cache: CacheStatus, made_in: std::time::Duration) -> HeaderValue {
    match cache {
        CacheStatus::Hit => HeaderValue::from_static("cache;desc=hit"),
        CacheStatus::Shared => HeaderValue::from_static("cache;desc=shared"),
        _ => HeaderValue::from_str(&format!(
            "cache;desc=miss, render;dur={:.1}",
            made_in.as_secs_f64() * 1000.0
        ))
        .expect("ascii"),
    }
}

/// `Server-Timing` of a render, in milliseconds per stage (what a browser's
/// developer tools show for the request).
fn server_timing(t: &RenderTimings) -> HeaderValue {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let text = if t.frame_reused {
        format!(
            "cache;desc=miss, frame;desc=\"decoded frame reused\", encode;dur={:.1}",
            ms(t.encode)
        )
    } else {
        format!(
            "cache;desc=miss, fetch;dur={:.1}, decode;dur={:.1}, encode;dur={:.1}",
            ms(t.fetch),
            ms(t.decode),
            ms(t.encode)
        )
    };
    HeaderValue::from_str(&text).expect("ascii")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("W/\"abc\"", "\"abc\""));
        assert!(etag_matches("\"x\", \"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abcd\"", "\"abc\""));
    }
}
