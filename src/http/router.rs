//! The one place that names the handlers: a request's [`Endpoint`] is
//! checked against the methods it answers to, then dispatched to its
//! handler by one `match`. JSON API bodies are read here, whole and within
//! their limit, before the handler runs; a problem becomes its answer here.

use bytes::Bytes;
use http::{Method, Response};

use super::app::App;
use super::endpoint::{Endpoint, Route};
use super::responses::{problem_response, read_api_body, Body};
use super::{
    compat, demo, info, jobs_api, operations, pictures, placeholders, thumbnails, uploads,
};
use crate::domain::Problem;
use crate::pool::as_client;

/// Answers a request; with the route its metrics count it under.
pub(super) async fn dispatch<B>(
    app: &App,
    parts: &http::request::Parts,
    body: B,
) -> (Route, Response<Body>)
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let head = parts.method == Method::HEAD;
    let endpoint = Endpoint::parse(parts.uri.path());
    let route = endpoint.route();
    let methods = endpoint.methods();
    let result = if methods.allows(&parts.method) {
        call(app, endpoint, parts, body, head).await
    } else {
        Err(Problem::method_not_allowed(methods.allow()))
    };
    let response =
        result.unwrap_or_else(|problem| problem_response(problem, app.error_max_age_secs, head));
    (route, response)
}

/// Runs the endpoint's handler (its method is one it answers to).
async fn call<B>(
    app: &App,
    endpoint: Endpoint<'_>,
    parts: &http::request::Parts,
    body: B,
    head: bool,
) -> Result<Response<Body>, Problem>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let headers = &parts.headers;
    let query = parts.uri.query();
    match endpoint {
        // Pictures' renders count against their client's share of the
        // render queue (API calls and jobs do not: keys, the job queue
        // and rate limits bound them).
        Endpoint::Thumbnail(tail) => {
            let thumbnail = thumbnails::thumbnail(app, tail, query, headers, head);
            as_client(app.clients.of(parts), thumbnail).await
        }
        Endpoint::Storyboard(tail) => {
            let storyboard = pictures::storyboard(app, tail, query, headers, head);
            as_client(app.clients.of(parts), storyboard).await
        }
        Endpoint::Animated(tail) => {
            let animated = pictures::animated(app, tail, query, headers, head);
            as_client(app.clients.of(parts), animated).await
        }
        Endpoint::Placeholder(tail) => {
            let placeholder = placeholders::placeholder(app, tail, query, headers, head);
            as_client(app.clients.of(parts), placeholder).await
        }
        Endpoint::Info(tail) => {
            let info = info::info(app, tail, query, headers, head);
            as_client(app.clients.of(parts), info).await
        }
        // Every JSON API call's body is read first, used or not (an unread
        // body would close the connection).
        Endpoint::PreviewToken { org, env, key } => {
            read_api_body(body).await?;
            jobs_api::preview_token(app, headers, org, env, key)
        }
        Endpoint::SubmitJob { org, key } => {
            let body = read_api_body(body).await?;
            jobs_api::submit(app, headers, org, key, &body).await
        }
        Endpoint::Job { org, id } => {
            read_api_body(body).await?;
            jobs_api::job(app, headers, org, id).await
        }
        Endpoint::Batch { org } => {
            let body = read_api_body(body).await?;
            jobs_api::batch(app, headers, org, &body).await
        }
        Endpoint::BestThumbnail { org, key } => {
            read_api_body(body).await?;
            jobs_api::best(app, headers, org, key, query).await
        }
        Endpoint::Upload { org } => uploads::upload(app, org, headers, query, body).await,
        // The compatibility shapes answer a body too large in their own
        // error body too.
        Endpoint::VideoUrl => match read_api_body(body).await {
            Ok(body) => compat::video_url(app, headers, body).await,
            Err(p) => Err(compat::video_url_error(p)),
        },
        Endpoint::Task => match read_api_body(body).await {
            Ok(body) => compat::task(app, headers, body).await,
            Err(p) => Err(compat::task_error(p)),
        },
        Endpoint::VideoUrlStatus(id) => compat::video_url_status(app, headers, id).await,
        Endpoint::TaskStatus(id) => compat::task_status(app, headers, id).await,
        Endpoint::Health => Ok(operations::health(head)),
        Endpoint::Ready => operations::ready(app, head),
        Endpoint::Metrics => Ok(operations::metrics(app, head).await),
        Endpoint::OpenApi => Ok(operations::openapi(head)),
        Endpoint::Demo => demo::page(app.demo.as_ref(), &app.renderer, head).await,
        Endpoint::Unknown => Err(Problem::not_found("no such endpoint")),
    }
}
