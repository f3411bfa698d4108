//! The JSON API under `/v1/api/{org}/`: jobs (one, a batch, a job's state,
//! the best thumbnail so far) and preview tokens. Uploads, also under it,
//! are `uploads.rs`'s. Every call carries the org's API key (see
//! `access.rs`); answers wrap their payload in `{"body": ...}`; errors are
//! problem+json. A client that sends `Prefer: wait=N` gets the finished job
//! (200) if it finishes within N seconds (capped).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use serde_json::{json, Value};

use super::app::App;
use super::job_answers::{job_status, maybe_wait};
use super::responses::{json_response, parse_json, Body};
use crate::auth::Target;
use crate::domain::Problem;
use crate::jobs::document;
use crate::request;

fn key_of(raw: &str) -> Result<String, Problem> {
    request::parse_key(raw).map_err(Problem::invalid_request)
}

/// `POST {org}/{env}/edge-ids/{key}/preview-token`: a short-lived token for
/// one video of a signed environment.
pub(super) fn preview_token(
    app: &App,
    headers: &HeaderMap,
    org: &str,
    env: &str,
    key: &str,
) -> Result<Response<Body>, Problem> {
    app.access.authorize_api(org, headers)?;
    let key = key_of(key)?;
    if app.env_access(org, env).is_none() {
        return Err(Problem::not_found(format!(
            "there is no environment {env:?} in org {org:?}"
        )));
    }
    let (token, exp) = app
        .access
        .issue_preview(&Target::thumbnail(org, env, &key))
        .ok_or_else(|| Problem::not_found("this org has no preview secret"))?;
    let expires_at =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(exp));
    Ok(json_response(
        StatusCode::OK,
        &json!({"body": {"token": token, "expiresAt": expires_at.to_string()}}),
    ))
}

/// `POST {org}/edge-ids/{key}/thumbnails`: a job.
pub(super) async fn submit(
    app: &App,
    headers: &HeaderMap,
    org: &str,
    key: &str,
    body: &Bytes,
) -> Result<Response<Body>, Problem> {
    app.access.authorize_api(org, headers)?;
    let key = key_of(key)?;
    let body = parse_json(body)?;
    let (record, _) = app
        .jobs
        .submit(org, &key, &body)
        .await
        .map_err(|e| Problem::from(&e))?;
    let record = maybe_wait(&app.jobs, record, headers).await?;
    let status = job_status(&record)?;
    Ok(json_response(status, &json!({ "body": document(&record) })))
}

/// `GET {org}/thumbnails/{jobId}`: a job as it is (or once finished, with
/// `Prefer: wait`).
pub(super) async fn job(
    app: &App,
    headers: &HeaderMap,
    org: &str,
    id: &str,
) -> Result<Response<Body>, Problem> {
    app.access.authorize_api(org, headers)?;
    let record = app.jobs.get(org, id).await.map_err(|e| Problem::from(&e))?;
    let record = maybe_wait(&app.jobs, record, headers).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "body": document(&record) }),
    ))
}

/// `POST {org}/thumbnails/batch`: up to `jobs.max_batch` jobs; each item
/// answers with its job or its own error.
pub(super) async fn batch(
    app: &App,
    headers: &HeaderMap,
    org: &str,
    body: &Bytes,
) -> Result<Response<Body>, Problem> {
    app.access.authorize_api(org, headers)?;
    let body = parse_json(body)?;
    let max = app.jobs.max_batch();
    let items = match body.get("items").and_then(Value::as_array) {
        Some(items) if !items.is_empty() && items.len() <= max => items,
        _ => {
            return Err(Problem::invalid_request(vec![request::FieldError {
                message: format!("items must be an array of 1 to {max} jobs"),
                location: "body.items".into(),
                value: String::new(),
            }]))
        }
    };
    let mut results = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let key = match item.get("key").and_then(Value::as_str) {
            Some(k) => key_of(k),
            None => Err(Problem::invalid_request(vec![request::FieldError {
                message: "key is required".into(),
                location: format!("body.items[{i}].key"),
                value: String::new(),
            }])),
        };
        let result = match key {
            Ok(key) => app
                .jobs
                .submit(org, &key, item)
                .await
                .map_err(|e| Problem::from(&e)),
            Err(p) => Err(p),
        };
        results.push(match result {
            Ok((record, _)) => document(&record),
            Err(problem) => json!({ "error": problem }),
        });
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({ "body": { "items": results } }),
    ))
}

/// `GET {org}/edge-ids/{key}/thumbnail[?env=]`: the best thumbnail made so
/// far, or where it will be.
pub(super) async fn best(
    app: &App,
    headers: &HeaderMap,
    org: &str,
    key: &str,
    query: Option<&str>,
) -> Result<Response<Body>, Problem> {
    app.access.authorize_api(org, headers)?;
    let key = key_of(key)?;
    let env = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "env")
        .map(|(_, v)| v.into_owned())
        .or_else(|| app.jobs.default_env(org).map(str::to_owned))
        .ok_or_else(|| {
            Problem::invalid_request(vec![request::FieldError {
                message: "give ?env= (the org has no default_env)".into(),
                location: "query.env".into(),
                value: String::new(),
            }])
        })?;
    if app.env_access(org, &env).is_none() {
        return Err(Problem::not_found(format!(
            "there is no environment {env:?} in org {org:?}"
        )));
    }
    let best = app
        .jobs
        .best(org, &env, &key)
        .await
        .map_err(|e| Problem::from(&e))?;
    let body = match best {
        Some(r) => {
            let (w, h) = r.size.unwrap_or_default();
            json!({"url": r.url, "available": true, "width": w, "height": h, "jobId": r.id})
        }
        None => {
            let base = app.public_base_url.trim_end_matches('/');
            json!({"url": format!("{base}/v1/thumbnail/{org}/{env}/{key}.webp"), "available": false})
        }
    };
    Ok(json_response(StatusCode::OK, &json!({ "body": body })))
}
