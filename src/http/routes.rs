//! Routing and handlers. A request is first parsed into an [`Endpoint`];
//! handlers stay thin and call the [`Renderer`].

use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Body as _;

use super::demo::DemoPage;
use super::{api, Body};
use crate::auth::{self, AuthError, Target, Verifier};
use crate::config::{Access, Cidr, Config, ServerConfig};
use crate::domain::Problem;
use crate::jobs::Jobs;
use crate::metrics::{self, Metrics, RouteMetrics};
use crate::pool::{as_client, ClientId};
use crate::render::{CacheStatus, RenderTimings, Renderer, Thumbnail};
use crate::request::{self, ThumbnailRequest};

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    /// `/v1/thumbnail/{org}/{env}/{key}.{ext}`: the raw tail after the prefix.
    Thumbnail(&'a str),
    /// `/v1/storyboard/{org}/{env}/{key}.{ext}`: the raw tail.
    Storyboard(&'a str),
    /// `/v1/animated/{org}/{env}/{key}.{ext}`: the raw tail.
    Animated(&'a str),
    /// `/v1/api/...`: the JSON API.
    Api(api::ApiCall<'a>),
    /// `/v1/video/thumbnail`: the video-URL API.
    VideoUrl,
    /// `/v1/video/thumbnail/{job_id}`: a video-URL job's result.
    VideoUrlStatus(&'a str),
    /// `/v2/thumbnail`: the conversion-task API.
    Task,
    /// `/v2/tasks/{id}`: a task.
    TaskStatus(&'a str),
    /// `/healthz`: liveness (the process answers).
    Health,
    /// `/readyz`: readiness (serving, not shutting down).
    Ready,
    /// `/metrics`: Prometheus exposition.
    Metrics,
    /// `/openapi.json`: the API description.
    OpenApi,
    /// `/`: the demo page.
    Demo,
    Unknown,
}

/// An endpoint without its arguments: the `route` label of metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Thumbnail,
    Storyboard,
    Animated,
    Api,
    Health,
    Ready,
    Metrics,
    OpenApi,
    Demo,
    Unknown,
}

impl Route {
    const ALL: [Route; 10] = [
        Route::Thumbnail,
        Route::Storyboard,
        Route::Animated,
        Route::Api,
        Route::Health,
        Route::Ready,
        Route::Metrics,
        Route::OpenApi,
        Route::Demo,
        Route::Unknown,
    ];

    fn name(self) -> &'static str {
        match self {
            Route::Thumbnail => "thumbnail",
            Route::Storyboard => "storyboard",
            Route::Animated => "animated",
            Route::Api => "api",
            Route::Health => "health",
            Route::Ready => "ready",
            Route::Metrics => "metrics",
            Route::OpenApi => "openapi",
            Route::Demo => "demo",
            Route::Unknown => "unknown",
        }
    }
}

impl Endpoint<'_> {
    fn route(&self) -> Route {
        match self {
            Endpoint::Thumbnail(_) => Route::Thumbnail,
            Endpoint::Storyboard(_) => Route::Storyboard,
            Endpoint::Animated(_) => Route::Animated,
            Endpoint::Api(_)
            | Endpoint::VideoUrl
            | Endpoint::VideoUrlStatus(_)
            | Endpoint::Task
            | Endpoint::TaskStatus(_) => Route::Api,
            Endpoint::Health => Route::Health,
            Endpoint::Ready => Route::Ready,
            Endpoint::Metrics => Route::Metrics,
            Endpoint::OpenApi => Route::OpenApi,
            Endpoint::Demo => Route::Demo,
            Endpoint::Unknown => Route::Unknown,
        }
    }
}

const THUMBNAIL_PREFIX: &str = "/v1/thumbnail/";
const API_PREFIX: &str = "/v1/api/";
/// Largest JSON body an API call may send (a batch of 100 jobs is ~20 KiB).
const MAX_API_BODY: usize = 1024 * 1024;

fn route(path: &str) -> Endpoint<'_> {
    if let Some(tail) = path.strip_prefix(THUMBNAIL_PREFIX) {
        Endpoint::Thumbnail(tail)
    } else if let Some(tail) = path.strip_prefix("/v1/storyboard/") {
        Endpoint::Storyboard(tail)
    } else if let Some(tail) = path.strip_prefix("/v1/animated/") {
        Endpoint::Animated(tail)
    } else if let Some(call) = path.strip_prefix(API_PREFIX).and_then(api::parse) {
        Endpoint::Api(call)
    } else if let Some(id) = path
        .strip_prefix("/v1/video/thumbnail/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
    {
        Endpoint::VideoUrlStatus(id)
    } else if let Some(id) = path
        .strip_prefix("/v2/tasks/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
    {
        Endpoint::TaskStatus(id)
    } else {
        match path {
            "/v1/video/thumbnail" => Endpoint::VideoUrl,
            "/v2/thumbnail" => Endpoint::Task,
            "/healthz" => Endpoint::Health,
            "/readyz" => Endpoint::Ready,
            "/metrics" => Endpoint::Metrics,
            "/openapi.json" => Endpoint::OpenApi,
            "/" => Endpoint::Demo,
            _ => Endpoint::Unknown,
        }
    }
}

/// The address a connection comes from, put in each request's extensions
/// as it is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Who a request is for, for the render queue's per-client share: the peer
/// address, or on a connection from a trusted proxy, the address it names
/// in `server.client_header`.
struct Clients {
    header: Option<HeaderName>,
    trusted: Vec<Cidr>,
}

impl Clients {
    fn new(server: &ServerConfig) -> Clients {
        Clients {
            header: server
                .client_header
                .as_deref()
                .map(|h| HeaderName::from_bytes(h.as_bytes()).expect("checked when loaded")),
            trusted: server.trusted_proxies.clone(),
        }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// The client's address. The header is a list each proxy appended the
    /// address it saw to (`X-Forwarded-For: client, cdn-edge`), or one
    /// address (`CF-Connecting-IP`): read from its end, the first address
    /// that is not a trusted proxy is the client (a client cannot choose
    /// what a trusted proxy appended after what it sent). A value that is
    /// not an address stops the walk at the last trusted hop.
    fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let Some(name) = &self.header else {
            return peer;
        };
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for value in headers.get_all(name).iter().rev() {
            let Ok(value) = value.to_str() else {
                return client;
            };
            for hop in value.rsplit(',') {
                let Some(ip) = hop_address(hop.trim()) else {
                    return client;
                };
                client = ip;
                if !self.trusts(ip) {
                    return client;
                }
            }
        }
        client
    }
}

/// An address as proxies write them: `192.0.2.1`, `2001:db8::1`, with a
/// port (`192.0.2.1:4711`, `[2001:db8::1]:4711`) or in brackets.
fn hop_address(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// The OpenAPI 3.1 description of every endpoint, served as is.
const OPENAPI: &str = include_str!("openapi.json");

/// Everything a request handler needs, built once at start-up.
pub struct App {
    pub(super) renderer: Arc<Renderer>,
    pub(super) verifier: Verifier,
    pub(super) jobs: Jobs,
    pub(super) limiter: api::RateLimiter,
    pub(super) public_base_url: String,
    /// The `store:` environments uploads go to.
    pub(super) stores: crate::store::Stores,
    /// Each org's default upload store (env id), where it has one.
    pub(super) upload_envs: std::collections::HashMap<String, String>,
    /// Each org's video-URL environment, where it takes video URLs.
    pub(super) video_url_envs: std::collections::HashMap<String, String>,
    /// `Cache-Control` of public thumbnails, built once.
    pub(super) cache_control: HeaderValue,
    pub(super) max_age_secs: u64,
    /// Bounds of animated previews.
    pub(super) animated_limits: crate::domain::animated::AnimatedLimits,
    error_max_age_secs: u64,
    server: ServerConfig,
    metrics: Arc<Metrics>,
    /// Request metrics per [`Route`] (indexed by it), resolved once.
    route_metrics: [RouteMetrics; Route::ALL.len()],
    /// False from the moment shutdown begins: `/readyz` answers 503.
    ready: AtomicBool,
    demo: Option<DemoPage>,
    clients: Clients,
}

impl App {
    /// Builds the services (and starts the job dispatcher).
    pub async fn new(config: &Config) -> anyhow::Result<App> {
        let renderer = Arc::new(Renderer::new(config)?);
        let metrics = renderer.metrics().clone();
        let stores = crate::store::Stores::open(config)?;
        stores.spawn_sweeper();
        Ok(App {
            stores,
            upload_envs: config
                .orgs
                .iter()
                .filter_map(|(id, o)| Some((id.clone(), o.upload_env()?.to_owned())))
                .collect(),
            video_url_envs: config
                .orgs
                .iter()
                .filter(|(_, o)| o.takes_video_urls())
                .map(|(id, o)| (id.clone(), o.video_url_env.clone()))
                .collect(),
            route_metrics: Route::ALL.map(|r| metrics.route(r.name())),
            metrics,
            clients: Clients::new(&config.server),
            server: config.server.clone(),
            ready: AtomicBool::new(true),
            demo: config.server.demo_page.then(|| DemoPage::new(config)),
            jobs: Jobs::start(config, renderer.clone()).await?,
            renderer,
            verifier: Verifier::new(config).map_err(anyhow::Error::msg)?,
            limiter: api::RateLimiter::new(
                config.jobs.rate_limit_per_minute,
                config.jobs.rate_limit_burst,
            ),
            public_base_url: config.server.public_base_url.clone(),
            animated_limits: config.pictures.animated_limits(),
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

    pub(super) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn server_settings(&self) -> &ServerConfig {
        &self.server
    }

    /// From now on `/readyz` answers 503 and job submissions are refused;
    /// requests are still served.
    pub fn begin_shutdown(&self) {
        self.ready.store(false, Ordering::SeqCst);
        self.jobs.stop_accepting();
    }

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
        // (No allocation for the bodiless requests of the hit path.)
        let read_to_end = (!body.is_end_stream()).then(|| Arc::new(AtomicBool::new(false)));
        let body = TrackedBody {
            inner: Some(body),
            done: read_to_end.clone(),
            linger: read_to_end.is_some().then(|| Linger {
                total: self.server.linger(),
                idle: self.server.body_idle_timeout(),
                reads: self.metrics.lingering_reads.clone(),
            }),
        };
        let (route, mut response) = self.dispatch(&parts, body).await;
        if read_to_end.is_some_and(|done| !done.load(Ordering::Relaxed)) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let elapsed = started.elapsed();
        let status = response.status();
        self.route_metrics[route as usize].record(status.as_u16(), elapsed);
        let bytes = response.body().size_hint().exact().unwrap_or(0);
        let cache = response
            .headers()
            .get(X_THUMBNAIL_CACHE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info!(
            target: "thumbd::access",
            request_id = request_id.to_str().unwrap_or("-"),
            method = %parts.method,
            path = %redacted(&parts.uri),
            status = status.as_u16(),
            bytes,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            cache,
            "request"
        );
        response.headers_mut().insert(X_REQUEST_ID, request_id);
        response
    }

    /// Who a request is for, as the render queue's share counts it; `None`
    /// when the connection's address is unknown (a request not from
    /// [`super::serve`]).
    fn client(&self, parts: &http::request::Parts) -> Option<ClientId> {
        let PeerAddr(peer) = parts.extensions.get::<PeerAddr>()?;
        Some(ClientId::from_ip(
            self.clients.client(peer.ip(), &parts.headers),
        ))
    }

    async fn dispatch<B>(&self, parts: &http::request::Parts, body: B) -> (Route, Response<Body>)
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let method = &parts.method;
        let head = method == Method::HEAD;
        let endpoint = route(parts.uri.path());
        let name = endpoint.route();
        let get_or_head = matches!(*method, Method::GET | Method::HEAD);
        let result = match endpoint {
            // Pictures' renders count against their client's share of the
            // render queue (API calls and jobs do not: keys, the job queue
            // and rate limits bound them).
            Endpoint::Thumbnail(tail) => match *method {
                Method::GET | Method::HEAD => {
                    let thumbnail = self.thumbnail(tail, parts.uri.query(), &parts.headers, head);
                    as_client(self.client(parts), thumbnail).await
                }
                _ => Err(Problem::method_not_allowed("GET, HEAD")),
            },
            Endpoint::Storyboard(tail) if get_or_head => {
                let storyboard = self.storyboard(tail, parts.uri.query(), &parts.headers, head);
                as_client(self.client(parts), storyboard).await
            }
            Endpoint::Animated(tail) if get_or_head => {
                let animated = self.animated(tail, parts.uri.query(), &parts.headers, head);
                as_client(self.client(parts), animated).await
            }
            Endpoint::Storyboard(_) | Endpoint::Animated(_) => {
                Err(Problem::method_not_allowed("GET, HEAD"))
            }
            Endpoint::Api(api::ApiCall::Upload { org }) if *method == Method::POST => {
                self.upload(org, &parts.headers, parts.uri.query(), body)
                    .await
            }
            Endpoint::VideoUrl | Endpoint::Task if *method == Method::POST => {
                match read_api_body(body).await {
                    Ok(bytes) if matches!(endpoint, Endpoint::VideoUrl) => {
                        self.video_url(&parts.headers, bytes).await
                    }
                    Ok(bytes) => self.task(&parts.headers, bytes).await,
                    // In the shape's own error body too.
                    Err(p) if matches!(endpoint, Endpoint::VideoUrl) => {
                        Err(super::compat::video_url_error(p))
                    }
                    Err(p) => Err(super::compat::task_error(p)),
                }
            }
            Endpoint::VideoUrl | Endpoint::Task => Err(Problem::method_not_allowed("POST")),
            Endpoint::VideoUrlStatus(id) if *method == Method::GET => {
                self.video_url_status(&parts.headers, id).await
            }
            Endpoint::TaskStatus(id) if *method == Method::GET => {
                self.task_status(&parts.headers, id).await
            }
            Endpoint::VideoUrlStatus(_) | Endpoint::TaskStatus(_) => {
                Err(Problem::method_not_allowed("GET"))
            }
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
            _ if !get_or_head => Err(Problem::method_not_allowed("GET, HEAD")),
            Endpoint::Health => Ok(plain("text/plain; charset=utf-8", "ok\n", head)),
            Endpoint::Ready if self.ready.load(Ordering::SeqCst) => {
                Ok(plain("text/plain; charset=utf-8", "ready\n", head))
            }
            Endpoint::Ready => Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting-down",
                "Shutting down",
                "thumbd is shutting down and takes no new traffic",
            )),
            Endpoint::Metrics => {
                self.renderer.update_gauges().await;
                self.jobs.update_gauges().await;
                Ok(plain(metrics::CONTENT_TYPE, self.metrics.encode(), head))
            }
            Endpoint::OpenApi => Ok(plain("application/json", OPENAPI, head)),
            Endpoint::Demo => match &self.demo {
                Some(page) => Ok(plain(
                    "text/html; charset=utf-8",
                    page.render(&self.renderer).await,
                    head,
                )),
                None => Err(Problem::not_found(
                    "no such endpoint (the demo page is off: server.demo_page)",
                )),
            },
            Endpoint::Unknown => Err(Problem::not_found("no such endpoint")),
        };
        let response = result.unwrap_or_else(|problem| {
            super::problem_response(problem, self.error_max_age_secs, head)
        });
        (name, response)
    }

    async fn thumbnail(
        &self,
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
        let (thumbnail, cache) = self
            .renderer
            .thumbnail(&req)
            .await
            .map_err(|e| render_problem(&e, &req.org, &req.env, &req.key))?;
        let cache_control = self.cache_control_until(expires_at);
        let mut response = self.thumbnail_response(&thumbnail, cache, cache_control, headers, head);
        if negotiated {
            // Caches keep one answer per Accept (thumbd: per format, three).
            response
                .headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Accept"));
        }
        Ok(response)
    }

    /// Verifies the token of a request to a signed environment and applies
    /// the parameters it binds.
    fn authorize(
        &self,
        mut parsed: request::ParsedRequest,
        headers: &HeaderMap,
    ) -> Result<(ThumbnailRequest, auth::Grant), AuthError> {
        let token = parsed
            .token
            .as_deref()
            .or(bearer_token(headers))
            .ok_or(AuthError::Missing)?;
        let target = Target::thumbnail(&parsed.org, &parsed.env, &parsed.key);
        let grant = self.verifier.verify(token, &target)?;
        let format_ok = if grant.format_auto {
            parsed.auto
        } else {
            grant
                .format
                .is_none_or(|f| !parsed.auto && f == parsed.format)
        };
        if !format_ok {
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
}

impl App {
    /// `Cache-Control` of a picture: immutable for public ones; no shared
    /// cache may keep a private one past its token's expiry.
    pub(super) fn cache_control_until(&self, expires_at: Option<u64>) -> HeaderValue {
        match expires_at {
            None => self.cache_control.clone(),
            Some(exp) => {
                let left = exp.saturating_sub(auth::now_secs()).min(self.max_age_secs);
                HeaderValue::from_str(&format!("public, max-age={left}")).expect("ascii")
            }
        }
    }
}

/// A token sent as `Authorization: Bearer ...`.
pub(super) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// A render's failure as a problem, logged: an error when it is ours (5xx),
/// information when the request or the video is at fault.
pub(super) fn render_problem(
    e: &crate::render::RenderError,
    org: &str,
    env: &str,
    key: &str,
) -> Problem {
    let problem = Problem::from(e);
    if problem.status >= 500 {
        tracing::error!(error = %e, org, env, key, "render failed");
    } else {
        tracing::info!(error = %e, org, env, key, "render refused");
    }
    problem
}

/// A request body that records whether it was read to its end, and when
/// dropped before (the answer did not need it: a refused upload), lingers:
/// reads and discards the rest for a bounded time while the answer goes
/// out (see [`super::conn::linger`]).
struct TrackedBody<B>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
{
    /// Taken by the lingering read on drop.
    inner: Option<B>,
    done: Option<Arc<AtomicBool>>,
    linger: Option<Linger>,
}

/// How a dropped body lingers.
struct Linger {
    total: std::time::Duration,
    idle: std::time::Duration,
    reads: prometheus_client::metrics::counter::Counter,
}

impl<B> hyper::body::Body for TrackedBody<B>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        let polled = std::pin::Pin::new(inner).poll_frame(cx);
        if let (std::task::Poll::Ready(None), Some(done)) = (&polled, &self.done) {
            done.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| hyper::body::SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl<B> Drop for TrackedBody<B>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
{
    fn drop(&mut self) {
        let unread = self
            .done
            .as_ref()
            .is_some_and(|done| !done.load(Ordering::Relaxed));
        if let (true, Some(body), Some(linger), Ok(runtime)) = (
            unread,
            self.inner.take(),
            self.linger.take(),
            tokio::runtime::Handle::try_current(),
        ) {
            runtime.spawn(super::conn::linger(
                body,
                linger.total,
                linger.idle,
                linger.reads,
            ));
        }
    }
}

pub(super) const X_THUMBNAIL_CACHE: HeaderName = HeaderName::from_static("x-thumbnail-cache");
const X_THUMBNAIL_TIME: HeaderName = HeaderName::from_static("x-thumbnail-time");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");
/// Longest `X-Request-Id` taken from a client.
const MAX_REQUEST_ID: usize = 128;

/// Reads a JSON API body, at most [`MAX_API_BODY`] bytes.
async fn read_api_body<B>(body: B) -> Result<Bytes, Problem>
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

/// A small non-cacheable answer.
fn plain(content_type: &'static str, body: impl Into<Bytes>, head: bool) -> Response<Body> {
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

/// `If-None-Match` uses the weak comparison: `W/"x"` matches `"x"`.
pub(super) fn etag_matches(if_none_match: &str, etag: &str) -> bool {
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
        assert_eq!(route("/readyz"), Endpoint::Ready);
        assert_eq!(route("/metrics"), Endpoint::Metrics);
        assert_eq!(route("/openapi.json"), Endpoint::OpenApi);
        assert_eq!(route("/"), Endpoint::Demo);
        assert!(matches!(
            route("/v1/api/o/thumbnails/batch"),
            Endpoint::Api(_)
        ));
        assert_eq!(route("/v1/api/o/nothing"), Endpoint::Unknown);
        assert_eq!(route("/v1/thumbnails/a"), Endpoint::Unknown);
    }

    #[test]
    fn route_metrics_are_indexed_by_route() {
        for (i, r) in Route::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
        assert_eq!(route("/v1/thumbnail/a/b/c.webp").route(), Route::Thumbnail);
        assert_eq!(route("/nope").route(), Route::Unknown);
    }

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

    #[test]
    fn clients_behind_trusted_proxies() {
        let config = Config::from_toml(
            "[server]\nclient_header = \"X-Forwarded-For\"\n\
             trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n",
            std::path::Path::new("."),
        )
        .unwrap();
        let clients = Clients::new(&config.server);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let client = |peer: &str, values: &[&str]| {
            let mut headers = HeaderMap::new();
            for v in values {
                headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
            }
            clients.client(ip(peer), &headers).to_string()
        };
        // An untrusted peer is the client whatever it sends.
        assert_eq!(client("192.0.2.1", &["203.0.113.7"]), "192.0.2.1");
        // A trusted one without the header is the client itself.
        assert_eq!(client("127.0.0.1", &[]), "127.0.0.1");
        assert_eq!(client("127.0.0.1", &["203.0.113.7"]), "203.0.113.7");
        // From the end: trusted hops are skipped, what the client wrote
        // before the first untrusted address is not believed.
        assert_eq!(
            client("127.0.0.1", &["6.6.6.6, 203.0.113.7, 10.1.2.3"]),
            "203.0.113.7"
        );
        assert_eq!(
            client("127.0.0.1", &["6.6.6.6", "203.0.113.7", "10.1.2.3"]),
            "203.0.113.7",
            "several header lines are one list"
        );
        assert_eq!(client("127.0.0.1", &["10.9.9.9, 10.1.2.3"]), "10.9.9.9");
        assert_eq!(client("127.0.0.1", &["[2001:db8::5]:4711"]), "2001:db8::5");
        assert_eq!(client("127.0.0.1", &["198.51.100.2:80"]), "198.51.100.2");
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(client("127.0.0.1", &["unknown"]), "127.0.0.1");
        assert_eq!(
            client("127.0.0.1", &["203.0.113.7, nonsense, 10.1.2.3"]),
            "10.1.2.3"
        );
        // Without a configured header, the peer.
        let none = Clients::new(&ServerConfig::default());
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        assert_eq!(none.client(ip("127.0.0.1"), &headers), ip("127.0.0.1"));
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
