//! The endpoints for operating thumbd rather than for its clients:
//! `/healthz` (liveness), `/readyz` (readiness: 503 from the moment
//! shutdown begins), `/metrics` (Prometheus) and `/openapi.json`.

use http::{Response, StatusCode};

use super::app::App;
use super::responses::{plain, Body};
use crate::domain::Problem;
use crate::metrics;

/// The OpenAPI 3.1 description of every endpoint, served as is.
const OPENAPI: &str = include_str!("openapi.json");

/// `GET /healthz`: the process answers.
pub(super) fn health(head: bool) -> Response<Body> {
    plain("text/plain; charset=utf-8", "ok\n", head)
}

/// `GET /readyz`: serving, not shutting down.
pub(super) fn ready(app: &App, head: bool) -> Result<Response<Body>, Problem> {
    if app.is_ready() {
        Ok(plain("text/plain; charset=utf-8", "ready\n", head))
    } else {
        Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "Shutting down",
            "thumbd is shutting down and takes no new traffic",
        ))
    }
}

/// `GET /metrics`: gauges brought up to date, then the exposition.
pub(super) async fn metrics(app: &App, head: bool) -> Response<Body> {
    app.renderer.update_gauges().await;
    app.jobs.update_gauges().await;
    plain(metrics::CONTENT_TYPE, app.metrics().encode(), head)
}

/// `GET /openapi.json`.
pub(super) fn openapi(head: bool) -> Response<Body> {
    plain("application/json", OPENAPI, head)
}
