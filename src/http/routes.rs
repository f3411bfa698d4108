//! Routing and handlers. A request is first parsed into an [`Endpoint`];
//! handlers stay thin and call the [`Renderer`].

use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};

use super::problem::Problem;
use super::Body;
use crate::config::Config;
use crate::render::{CacheStatus, Renderer, Thumbnail};
use crate::request;

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    /// `/v1/thumbnail/{org}/{env}/{key}.{ext}`: the raw tail after the prefix.
    Thumbnail(&'a str),
    /// `/healthz`: liveness for load balancers.
    Health,
    Unknown,
}

const THUMBNAIL_PREFIX: &str = "/v1/thumbnail/";

fn route(path: &str) -> Endpoint<'_> {
    if let Some(tail) = path.strip_prefix(THUMBNAIL_PREFIX) {
        Endpoint::Thumbnail(tail)
    } else if path == "/healthz" {
        Endpoint::Health
    } else {
        Endpoint::Unknown
    }
}

/// Everything a request handler needs, built once at start-up.
pub struct App {
    renderer: Renderer,
    /// `Cache-Control` of thumbnails, built once.
    cache_control: HeaderValue,
    error_max_age_secs: u64,
}

impl App {
    pub fn new(config: &Config) -> anyhow::Result<App> {
        Ok(App {
            renderer: Renderer::new(config)?,
            cache_control: HeaderValue::from_str(&format!(
                "public, max-age={}, immutable",
                config.server.max_age_secs
            ))?,
            error_max_age_secs: config.server.error_max_age_secs,
        })
    }

    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body> {
        let head = req.method() == Method::HEAD;
        let result = match route(req.uri().path()) {
            Endpoint::Thumbnail(tail) => match *req.method() {
                Method::GET | Method::HEAD => {
                    self.thumbnail(tail, req.uri().query(), req.headers(), head)
                        .await
                }
                _ => Err(Problem::method_not_allowed("GET, HEAD")),
            },
            Endpoint::Health => match *req.method() {
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
        result.unwrap_or_else(|problem| problem.into_response(self.error_max_age_secs, head))
    }

    async fn thumbnail(
        &self,
        tail: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        head: bool,
    ) -> Result<Response<Body>, Problem> {
        let req = request::parse(tail, query).map_err(Problem::invalid_request)?;
        if !self.renderer.has_environment(&req.org, &req.env) {
            return Err(Problem::not_found(format!(
                "there is no environment {:?} in org {:?}",
                req.env, req.org
            )));
        }
        let (thumbnail, cache) = self.renderer.thumbnail(&req).await.map_err(|e| {
            let problem = Problem::from(e.as_ref());
            if problem.status >= 500 {
                tracing::error!(error = %e, org = %req.org, env = %req.env, key = %req.key, "render failed");
            } else {
                tracing::info!(error = %e, org = %req.org, env = %req.env, key = %req.key, "render refused");
            }
            problem
        })?;
        Ok(self.thumbnail_response(&thumbnail, cache, headers, head))
    }

    fn thumbnail_response(
        &self,
        t: &Thumbnail,
        cache: CacheStatus,
        headers: &HeaderMap,
        head: bool,
    ) -> Response<Body> {
        let not_modified = headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| etag_matches(v, &t.etag)));
        let builder = Response::builder()
            .header(header::ETAG, &t.etag)
            .header(header::CACHE_CONTROL, self.cache_control.clone())
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
            .header("x-thumbnail-cache", cache.as_str())
            .header("x-thumbnail-time", format!("{:.3}", t.time_secs));
        if not_modified {
            return builder
                .status(StatusCode::NOT_MODIFIED)
                .body(Body::default())
                .expect("valid response");
        }
        builder
            .header(header::CONTENT_TYPE, t.format.content_type())
            .header(header::CONTENT_LENGTH, t.bytes.len())
            .body(if head {
                Body::default()
            } else {
                Body::new(t.bytes.clone())
            })
            .expect("valid response")
    }
}

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
