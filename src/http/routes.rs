//! Routing and handlers. A request is first parsed into an [`Endpoint`];
//! handlers stay thin and call the [`Renderer`].

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

use super::api;
use super::Body;
use crate::auth::{self, AuthError, Target, Verifier};
use crate::config::{Access, Config};
use crate::jobs::Jobs;
use crate::problem::Problem;
use crate::render::{CacheStatus, Renderer, Thumbnail};
use crate::request::{self, ThumbnailRequest};

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    /// `/v1/thumbnail/{org}/{env}/{key}.{ext}`: the raw tail after the prefix.
    Thumbnail(&'a str),
    /// `/v1/api/...`: the JSON API.
    Api(api::ApiCall<'a>),
    /// `/healthz`: liveness for load balancers.
    Health,
    Unknown,
}

const THUMBNAIL_PREFIX: &str = "/v1/thumbnail/";
const API_PREFIX: &str = "/v1/api/";
/// Largest JSON body an API call may send (a batch of 100 jobs is ~20 KiB).
const MAX_API_BODY: usize = 1024 * 1024;

fn route(path: &str) -> Endpoint<'_> {
    if let Some(tail) = path.strip_prefix(THUMBNAIL_PREFIX) {
        Endpoint::Thumbnail(tail)
    } else if let Some(call) = path.strip_prefix(API_PREFIX).and_then(api::parse) {
        Endpoint::Api(call)
    } else if path == "/healthz" {
        Endpoint::Health
    } else {
        Endpoint::Unknown
    }
}

/// Everything a request handler needs, built once at start-up.
pub struct App {
    pub(super) renderer: Arc<Renderer>,
    pub(super) verifier: Verifier,
    pub(super) jobs: Jobs,
    pub(super) limiter: api::RateLimiter,
    pub(super) public_base_url: String,
    /// `Cache-Control` of public thumbnails, built once.
    cache_control: HeaderValue,
    max_age_secs: u64,
    error_max_age_secs: u64,
}

impl App {
    /// Builds the services (and starts the job dispatcher).
    pub async fn new(config: &Config) -> anyhow::Result<App> {
        let renderer = Arc::new(Renderer::new(config)?);
        Ok(App {
            jobs: Jobs::start(config, renderer.clone()).await?,
            renderer,
            verifier: Verifier::new(config).map_err(anyhow::Error::msg)?,
            limiter: api::RateLimiter::new(
                config.jobs.rate_limit_per_minute,
                config.jobs.rate_limit_burst,
            ),
            public_base_url: config.server.public_base_url.clone(),
            max_age_secs: config.server.max_age_secs,
            cache_control: HeaderValue::from_str(&format!(
                "public, max-age={}, immutable",
                config.server.max_age_secs
            ))?,
            error_max_age_secs: config.server.error_max_age_secs,
        })
    }

    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        let method = &parts.method;
        let head = method == Method::HEAD;
        let result = match route(parts.uri.path()) {
            Endpoint::Thumbnail(tail) => match *method {
                Method::GET | Method::HEAD => {
                    self.thumbnail(tail, parts.uri.query(), &parts.headers, head)
                        .await
                }
                _ => Err(Problem::method_not_allowed("GET, HEAD")),
            },
            Endpoint::Api(call) if *method == call.method() => {
                match Limited::new(body, MAX_API_BODY).collect().await {
                    Ok(body) => {
                        self.api(call, &parts.headers, parts.uri.query(), body.to_bytes())
                            .await
                    }
                    Err(_) => Err(Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body-too-large",
                        "Body too large",
                        format!("API bodies are limited to {MAX_API_BODY} bytes"),
                    )),
                }
            }
            Endpoint::Api(call) => Err(Problem::method_not_allowed(
                if call.method() == Method::GET {
                    "GET"
                } else {
                    "POST"
                },
            )),
            Endpoint::Health => match *method {
                Method::GET | Method::HEAD => Ok(Response::builder()
                    .header(header::CONTENT_TYPE, "text/plain")
                    .header(header::CACHE_CONTROL, "no-store")
                    .body(if head {
                        Body::default()
                    } else {
                        Body::from("ok\n")
                    })
                    .expect("valid response")),
                _ => Err(Problem::method_not_allowed("GET, HEAD")),
            },
            Endpoint::Unknown => Err(Problem::not_found("no such endpoint")),
        };
        result.unwrap_or_else(|problem| {
            super::problem_response(problem, self.error_max_age_secs, head)
        })
    }

    async fn thumbnail(
        &self,
        tail: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        head: bool,
    ) -> Result<Response<Body>, Problem> {
        let parsed = request::parse(tail, query).map_err(Problem::invalid_request)?;
        let Some(access) = self.renderer.access(&parsed.org, &parsed.env) else {
            return Err(Problem::not_found(format!(
                "there is no environment {:?} in org {:?}",
                parsed.env, parsed.org
            )));
        };
        // Access is settled before the cache is consulted: a cached private
        // thumbnail is never served without a valid token.
        let (req, expires_at) = match access {
            Access::Public => (parsed.into_request(), None),
            Access::Signed => {
                let (req, grant) = self.authorize(parsed, headers).map_err(|e| {
                    tracing::info!(error = %e, "token refused");
                    Problem::from(&e)
                })?;
                (req, Some(grant.expires_at))
            }
        };
        let (thumbnail, cache) = self.renderer.thumbnail(&req).await.map_err(|e| {
            let problem = Problem::from(e.as_ref());
            if problem.status >= 500 {
                tracing::error!(error = %e, org = %req.org, env = %req.env, key = %req.key, "render failed");
            } else {
                tracing::info!(error = %e, org = %req.org, env = %req.env, key = %req.key, "render refused");
            }
            problem
        })?;
        let cache_control = match expires_at {
            None => self.cache_control.clone(),
            // No shared cache may keep a private thumbnail past its token.
            Some(exp) => {
                let left = exp.saturating_sub(auth::now_secs()).min(self.max_age_secs);
                HeaderValue::from_str(&format!("public, max-age={left}")).expect("ascii")
            }
        };
        Ok(self.thumbnail_response(&thumbnail, cache, cache_control, headers, head))
    }

    /// Verifies the token of a request to a signed environment and applies
    /// the parameters it binds.
    fn authorize(
        &self,
        mut parsed: request::ParsedRequest,
        headers: &HeaderMap,
    ) -> Result<(ThumbnailRequest, auth::Grant), AuthError> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let token = parsed
            .token
            .as_deref()
            .or(bearer)
            .ok_or(AuthError::Missing)?;
        let target = Target {
            org: &parsed.org,
            env: &parsed.env,
            key: &parsed.key,
        };
        let grant = self.verifier.verify(token, &target)?;
        if grant.format.is_some_and(|f| f != parsed.format) {
            return Err(AuthError::BoundParam("format"));
        }
        parsed
            .params
            .bind(&grant.bound)
            .map_err(AuthError::BoundParam)?;
        Ok((parsed.into_request(), grant))
    }

    fn thumbnail_response(
        &self,
        t: &Thumbnail,
        cache: CacheStatus,
        cache_control: HeaderValue,
        headers: &HeaderMap,
        head: bool,
    ) -> Response<Body> {
        let not_modified = headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| etag_matches(v, t.etag_str())));
        // The hit path: header values from static strings or the texts made
        // with the thumbnail (no copy, no formatting), a body that shares
        // the cached bytes.
        let mut response = Response::new(Body::default());
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
}

const X_THUMBNAIL_CACHE: HeaderName = HeaderName::from_static("x-thumbnail-cache");
const X_THUMBNAIL_TIME: HeaderName = HeaderName::from_static("x-thumbnail-time");

/// `If-None-Match` uses the weak comparison: `W/"x"` matches `"x"`.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let etag = etag.trim_start_matches("W/");
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route("/v1/thumbnail/a/b/c.webp"),
            Endpoint::Thumbnail("a/b/c.webp")
        );
        assert_eq!(route("/healthz"), Endpoint::Health);
        assert!(matches!(
            route("/v1/api/o/thumbnails/batch"),
            Endpoint::Api(_)
        ));
        assert_eq!(route("/v1/api/o/nothing"), Endpoint::Unknown);
        assert_eq!(route("/v1/thumbnails/a"), Endpoint::Unknown);
        assert_eq!(route("/"), Endpoint::Unknown);
    }

    #[test]
    fn if_none_match() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("W/\"abc\"", "\"abc\""));
        assert!(etag_matches("\"x\", \"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abcd\"", "\"abc\""));
    }
}
