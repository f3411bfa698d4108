//! The app: everything a request handler needs, built once at start-up by
//! [`App::new`] (the one place the HTTP layer reads the config). Handlers
//! read its fields; its one entry point for a request, `App::handle`, is in
//! `server.rs` beside the rest of what every request gets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use super::access::{AccessControl, RateLimiter};
use super::clients::Clients;
use super::demo::DemoPage;
use super::endpoint::Route;
use super::responses::CachePolicy;
use crate::auth::Verifier;
use crate::config::{Access, Config, ServerConfig};
use crate::domain::animated::AnimatedLimits;
use crate::jobs::Jobs;
use crate::metrics::{Metrics, RouteMetrics};
use crate::orgs::Orgs;
use crate::render::Renderer;
use crate::store::Stores;

/// The services the app serves, built before it in order by the
/// composition root.
pub struct Services {
    pub orgs: Arc<Orgs>,
    pub verifier: Verifier,
    pub renderer: Arc<Renderer>,
    pub stores: Stores,
    pub jobs: Jobs,
}

/// Everything a request handler needs, built once at start-up.
pub struct App {
    /// Thumbnails, storyboards, animated previews, probes; who may see
    /// which environment.
    pub(super) renderer: Arc<Renderer>,
    /// The job engine behind the JSON API, uploads and the compatibility
    /// shapes.
    pub(super) jobs: Jobs,
    /// API keys, their rate limit, tokens of signed environments.
    pub(super) access: AccessControl,
    /// Who a request is for, for the render queue's per-client share.
    pub(super) clients: Clients,
    /// Where clients reach thumbd (URLs in answers).
    pub(super) public_base_url: String,
    /// The `store:` environments uploads go to.
    pub(super) stores: Stores,
    /// The orgs and environments, resolved at start-up.
    orgs: Arc<Orgs>,
    /// `Cache-Control` of pictures.
    pub(super) cache: CachePolicy,
    /// Bounds of animated previews.
    pub(super) animated_limits: AnimatedLimits,
    /// How long a CDN may keep a stable problem answer.
    pub(super) error_max_age_secs: u64,
    /// Request metrics per [`Route`] (indexed by it), resolved once.
    pub(super) route_metrics: [RouteMetrics; Route::ALL.len()],
    /// The demo page at `/`, when `server.demo_page` is on.
    pub(super) demo: Option<DemoPage>,
    server: ServerConfig,
    metrics: Arc<Metrics>,
    /// False from the moment shutdown begins: `/readyz` answers 503.
    ready: AtomicBool,
}

impl App {
    /// The `store:` environment `org`'s uploads go to when a call names none.
    pub(super) fn upload_env(&self, org: &str) -> Option<&str> {
        self.orgs.get(org)?.upload_env.as_deref()
    }

    /// Who may see `org`/`env`'s pictures; `None` if it is not configured.
    pub(super) fn env_access(&self, org: &str, env: &str) -> Option<Access> {
        self.orgs.env(org, env).map(|e| e.access)
    }

    /// `org`'s video-URL environment, when it takes video URLs.
    pub(super) fn video_url_env(&self, org: &str) -> Option<&str> {
        Some(self.orgs.get(org)?.video_urls.as_ref()?.env.as_str())
    }

    /// Builds the services (and starts the job dispatcher).
    /// The app over the services the composition root built
    /// ([`crate::setup::build`]), with the server's own settings.
    pub fn new(config: &Config, services: Services) -> anyhow::Result<App> {
        let Services {
            orgs,
            verifier,
            renderer,
            stores,
            jobs,
        } = services;
        let metrics = renderer.metrics().clone();
        let route_metrics = Route::ALL.map(|r| metrics.route(r.name()));
        let clients = Clients::new(
            config
                .server
                .client_header
                .as_deref()
                .map(|h| HeaderName::from_bytes(h.as_bytes()).expect("checked when loaded")),
            config.server.trusted_proxies.clone(),
        );
        let demo = config
            .server
            .demo_page
            .then(|| DemoPage::new(config, &orgs));
        let limiter = RateLimiter::new(
            config.jobs.rate_limit_per_minute,
            config.jobs.rate_limit_burst,
        );
        let cache = CachePolicy {
            public: HeaderValue::from_str(&format!(
                "public, max-age={}, immutable",
                config.server.max_age_secs
            ))?,
            max_age_secs: config.server.max_age_secs,
        };
        Ok(App {
            renderer,
            jobs,
            access: AccessControl::new(verifier, limiter),
            clients,
            public_base_url: config.server.public_base_url.clone(),
            stores,
            orgs,
            cache,
            animated_limits: config.pictures.animated_limits(),
            error_max_age_secs: config.server.error_max_age_secs,
            route_metrics,
            demo,
            server: config.server.clone(),
            metrics,
            ready: AtomicBool::new(true),
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

    /// Whether `/readyz` answers 200: not shutting down.
    pub(super) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}
