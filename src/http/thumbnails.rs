//! `GET /v1/thumbnail/{org}/{env}/{key}.{ext}`: one frame of a video as a
//! picture. The URL is parsed into a request (with `auto` negotiated from
//! `Accept`), access is settled before the cache is consulted, and the
//! picture comes from [`crate::render`].

use http::{header, HeaderMap, HeaderValue, Response};

use super::access::AccessControl;
use super::app::App;
use super::responses::{render_problem, thumbnail_response, Body};
use crate::domain::Problem;
use crate::request;

/// A thumbnail (or `304 Not Modified`).
pub(super) async fn thumbnail(
    app: &App,
    tail: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response<Body>, Problem> {
    let mut parsed = request::parse(tail, query).map_err(Problem::invalid_request)?;
    if parsed.auto {
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
        parsed.format = request::negotiate(accept);
    }
    let negotiated = parsed.auto;
    // Access is settled before the cache is consulted: a cached private
    // picture is never served without a valid token.
    let access = app.env_access(&parsed.org, &parsed.env);
    let (req, expires_at) =
        app.access
            .settle(access, parsed, headers, AccessControl::signed_thumbnail)?;
    let (thumbnail, cache) = app
        .renderer
        .thumbnail(&req)
        .await
        .map_err(|e| render_problem(&e, &req.org, &req.env, &req.key))?;
    let cache_control = app.cache.until(expires_at);
    let mut response = thumbnail_response(&thumbnail, cache, cache_control, headers, head);
    if negotiated {
        // Caches keep one answer per Accept (thumbd: per format, three).
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept"));
    }
    Ok(response)
}
