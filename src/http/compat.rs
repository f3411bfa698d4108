//! The job APIs people already have clients for, as routes onto thumbd's
//! one job engine. Each keeps its own request and answer shape; its errors
//! are problem+json with the members its clients parse added.
//!
//! - `POST /v1/video/thumbnail` (and `GET /v1/video/thumbnail/{job_id}`): a
//!   video URL in, a thumbnail URL out. With `webhook_url`, 202 at once and
//!   the result POSTed later (signed as thumbd's webhooks are); without, the
//!   call waits (up to `jobs.max_wait_secs`) and answers 200 with
//!   `response`. Errors carry `error`, a message.
//! - `POST /v2/thumbnail` and `GET /v2/tasks/{id}`: a conversion task whose
//!   `input` is an upload's key, answered as a task document in `data`.
//!   The endpoint is the operation: `operation` may be left out (any other
//!   than `thumbnail` is 400). `input_format` and `engine_version` are
//!   taken and not used (thumbd reads the container from the bytes, with
//!   the FFmpeg it is built with), `engine` must be `ffmpeg`, `timeout`
//!   (seconds) bounds each try of the render, and `filename` is taken but
//!   the result file keeps its name, `{input}.{format}` (see README).
//!   Errors carry `message` and `code`.
//!
//! The org is the API key's.

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::app::App;
use super::job_answers::{failed_problem, maybe_wait};
use super::responses::{json_response, parse_json, Body};
use crate::domain::FieldError;
use crate::domain::Format;
use crate::domain::Problem;
use crate::jobs::model::{JobRequest, Status};
use crate::jobs::shapes::{self, Shape};
use crate::jobs::JobError;
use crate::request::fields::{self, Raw};
use crate::request::{self, Params, ThumbnailRequest};

/// The longest `timeout` of a conversion task that bounds anything,
/// seconds (longer ones count as this; the job API's `timeoutMs` limit).
const MAX_TASK_TIMEOUT_SECS: f64 = 3600.0;
/// The only `engine` a conversion task may name.
const TASK_ENGINE: &str = "ffmpeg";
/// Longest `filename` of a conversion task, bytes.
const MAX_FILENAME_BYTES: usize = 255;

/// A video-URL API error: the problem, with the `error` message its
/// clients read.
pub(super) fn video_url_error(problem: Problem) -> Problem {
    if problem.extensions.contains_key("error") {
        return problem;
    }
    let message = if problem.status == 400 {
        format!("Invalid request: {}", first_message(&problem))
    } else {
        problem.detail.clone()
    };
    problem.with_member("error", message)
}

/// A conversion-task API error: the problem, with `message` and `code`.
pub(super) fn task_error(problem: Problem) -> Problem {
    let message = if problem.status == 400 {
        first_message(&problem)
    } else {
        problem.detail.clone()
    };
    let code = shapes::task_code(problem.status as u64);
    problem
        .with_member("message", message)
        .with_member("code", code)
}

fn first_message(p: &Problem) -> String {
    p.errors
        .first()
        .map_or_else(|| p.detail.clone(), |e| e.message.clone())
}

fn invalid(location: &str, message: impl Into<String>) -> Problem {
    Problem::invalid_request(vec![FieldError {
        message: message.into(),
        location: format!("body.{location}"),
        value: String::new(),
    }])
}

fn object(body: &Value) -> Result<&Map<String, Value>, Problem> {
    body.as_object()
        .ok_or_else(|| invalid("", "the body must be a JSON object"))
}

fn opt_string(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, Problem> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(name, format!("'{name}' must be a string"))),
    }
}

/// A picture parameter of the body, by the one parser of them.
fn opt_param<T>(
    obj: &Map<String, Value>,
    name: &str,
    check: impl FnOnce(&str, Raw) -> Result<T, String>,
) -> Result<Option<T>, Problem> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => check(name, Raw::Json(v))
            .map(Some)
            .map_err(|message| invalid(name, message)),
    }
}

/// `POST /v1/video/thumbnail`.
pub(super) async fn video_url(
    app: &App,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response<Body>, Problem> {
    video_url_inner(app, headers, body)
        .await
        .map_err(video_url_error)
}

async fn video_url_inner(
    app: &App,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response<Body>, Problem> {
    let org = app.access.api_org(headers)?;
    let body = parse_json(&body)?;
    let obj = object(&body)?;
    let raw_url = match obj.get("video_url") {
        None | Some(Value::Null) => {
            return Err(invalid("video_url", "'video_url' is a required property"))
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid("video_url", "'video_url' must be a string")),
    };
    let second = opt_param(obj, "second", fields::seconds)?;
    let webhook_url = opt_string(obj, "webhook_url")?;
    let client_id = opt_string(obj, "id")?;
    if client_id.as_ref().is_some_and(|id| id.len() > 256) {
        return Err(invalid("id", "'id' must be at most 256 characters"));
    }
    let width = opt_param(obj, "width", fields::dimension)?;
    let height = opt_param(obj, "height", fields::dimension)?;
    let format = opt_param(obj, "format", fields::format)?.unwrap_or(Format::Jpeg);
    let fit = opt_param(obj, "fit", fields::fit)?;
    if let Some(url) = &webhook_url {
        app.jobs
            .check_webhook(&org, url)
            .map_err(|e| invalid("webhook_url", e.to_string()))?;
    }
    // Shape, prefix and literal addresses first: a refused URL costs no request.
    let policy = app.renderer.url_policy(&org).ok_or_else(|| {
        Problem::new(
            StatusCode::FORBIDDEN,
            "video-url-forbidden",
            "Video URL not allowed",
            "this org takes no video URLs (video_url_prefixes is empty)",
        )
    })?;
    policy.check(&raw_url).map_err(|e| match e {
        crate::source::guard::UrlRefusal::Invalid(m) => invalid("video_url", m),
        crate::source::guard::UrlRefusal::Forbidden(m) => Problem::new(
            StatusCode::FORBIDDEN,
            "video-url-forbidden",
            "Video URL not allowed",
            m,
        ),
    })?;
    let key = app
        .renderer
        .register_url(&org, &raw_url)
        .await
        .map_err(|e| Problem::from(&e))?;
    let env = app.video_url_env(&org).unwrap_or_default().to_owned();
    let probe = app
        .renderer
        .probe(&org, &env, &key)
        .await
        .map_err(|e| Problem::from(&e))?;
    let params = Params {
        width,
        height,
        fit,
        ..Params::default()
    };
    let job = JobRequest {
        client_id,
        webhook_url: webhook_url.clone(),
        ..JobRequest::at_time(
            &org,
            &env,
            &key,
            params,
            format,
            second,
            probe.duration_secs,
        )
    };
    let client_id = job.client_id.clone();
    let (record, new) =
        app.jobs
            .submit_request(job, Shape::VideoUrl)
            .await
            .map_err(|e| match &e {
                JobError::QueueFull { max, .. } => Problem::from(&e)
                    .with_member("error", format!("MAX_QUEUE_LENGTH ({max}) reached")),
                _ => Problem::from(&e),
            })?;
    let accepted = |record: &crate::jobs::store::JobRecord| {
        json_response(
            StatusCode::ACCEPTED,
            &json!({
                "job_id": record.id,
                "id": client_id,
                "message": "processing",
                "queue_length": app.jobs.queue_length(),
                "max_queue_length": app.jobs.max_queue(),
            }),
        )
    };
    if let Some(url) = webhook_url {
        // The same render already made for someone else: this caller's
        // webhook gets the result all the same.
        if !new && record.status.is_final() {
            app.jobs.notify(&record, &url, client_id.clone());
        }
        return Ok(accepted(&record));
    }
    let record = if record.status.is_final() {
        record
    } else {
        app.jobs
            .wait_final(&org, &record.id, app.jobs.max_wait())
            .await
            .map_err(|e| Problem::from(&e))?
    };
    match record.status {
        Status::Completed => {
            let mut doc = shapes::video_url(&record);
            // This caller's reference, whoever asked for the render first.
            doc["id"] = client_id.clone().into();
            Ok(json_response(StatusCode::OK, &doc))
        }
        Status::Failed => Err(failed_problem(&record)),
        Status::Pending | Status::Processing => Ok(accepted(&record)),
    }
}

/// `GET /v1/video/thumbnail/{job_id}`: a video-URL job's result.
pub(super) async fn video_url_status(
    app: &App,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response<Body>, Problem> {
    let result = async {
        let org = app.access.api_org(headers)?;
        let record = app
            .jobs
            .get(&org, id)
            .await
            .map_err(|e| Problem::from(&e))?;
        Ok(json_response(StatusCode::OK, &shapes::video_url(&record)))
    };
    result.await.map_err(video_url_error)
}

/// `POST /v2/thumbnail`: a conversion task.
pub(super) async fn task(
    app: &App,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response<Body>, Problem> {
    task_inner(app, headers, body).await.map_err(task_error)
}

async fn task_inner(
    app: &App,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response<Body>, Problem> {
    let org = app.access.api_org(headers)?;
    let body = parse_json(&body)?;
    let obj = object(&body)?;
    // The endpoint is the operation: naming it is optional.
    match opt_string(obj, "operation")?.as_deref() {
        None | Some("thumbnail") => {}
        Some(other) => {
            return Err(invalid(
                "operation",
                format!("this endpoint runs the operation \"thumbnail\" only, not {other:?}"),
            ))
        }
    }
    let input = match opt_string(obj, "input")? {
        Some(i) => i,
        None => {
            return Err(invalid(
                "input",
                "'input' is required: the key of an uploaded video",
            ))
        }
    };
    let key = request::parse_key(&input)
        .map_err(|_| invalid("input", "'input' must be the key of an uploaded video"))?;
    // Taken, not used: the container is read from the bytes.
    opt_string(obj, "input_format")?;
    let format = opt_param(obj, "output_format", fields::format)?.unwrap_or(Format::Png);
    let width = opt_param(obj, "width", fields::dimension)?;
    let height = opt_param(obj, "height", fields::dimension)?;
    let fit = opt_param(obj, "fit", fields::fit)?;
    if let Some(engine) = opt_string(obj, "engine")? {
        if !engine.eq_ignore_ascii_case(TASK_ENGINE) {
            return Err(invalid(
                "engine",
                format!("thumbd renders with FFmpeg: 'engine' must be \"{TASK_ENGINE}\" or left out, not {engine:?}"),
            ));
        }
    }
    // Taken, not used: thumbd renders with the FFmpeg it is built with.
    opt_string(obj, "engine_version")?;
    let timeout_ms = match obj.get("timeout") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(t) if t.is_finite() && t > 0.0 => {
                Some((t.min(MAX_TASK_TIMEOUT_SECS) * 1000.0).ceil() as u64)
            }
            _ => {
                return Err(invalid(
                    "timeout",
                    "'timeout' must be a number of seconds, more than 0",
                ))
            }
        },
    };
    // Taken; the result file keeps its name (the job has no place for
    // another one).
    if let Some(name) = opt_string(obj, "filename")? {
        if name.is_empty()
            || name.len() > MAX_FILENAME_BYTES
            || name.contains(['/', '\\'])
            || name.chars().any(char::is_control)
        {
            return Err(invalid(
                "filename",
                format!(
                    "'filename' must be a file name (no path), 1 to {MAX_FILENAME_BYTES} bytes"
                ),
            ));
        }
    }
    let env = match opt_string(obj, "env")? {
        Some(e) => e,
        None => app
            .upload_env(&org)
            .map(str::to_owned)
            .ok_or_else(|| Problem::not_found(format!("org {org:?} has no upload store")))?,
    };
    if let Some(url) = opt_string(obj, "webhook_url")? {
        app.jobs
            .check_webhook(&org, &url)
            .map_err(|e| invalid("webhook_url", e.to_string()))?;
    }
    let params = Params {
        width,
        height,
        time: None,
        fit,
        quality: None,
        snap: None,
    };
    let job = JobRequest {
        thumbnail: ThumbnailRequest {
            org: org.clone(),
            env,
            key,
            spec: params.to_spec(format),
        },
        client_id: opt_string(obj, "tag")?,
        webhook_url: opt_string(obj, "webhook_url")?,
        timeout_ms,
        timestamp_ms: None,
    };
    let (record, _) = app
        .jobs
        .submit_request(job, Shape::Task)
        .await
        .map_err(|e| match &e {
            JobError::Render(_) if Problem::from(&e).status == 404 => {
                Problem::not_found(format!("there is no uploaded video {input:?}"))
            }
            _ => Problem::from(&e),
        })?;
    let record = maybe_wait(&app.jobs, record, headers).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "data": shapes::task(&record) }),
    ))
}

/// `GET /v2/tasks/{id}`.
pub(super) async fn task_status(
    app: &App,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response<Body>, Problem> {
    let result = async {
        let org = app.access.api_org(headers)?;
        let record = app
            .jobs
            .get(&org, id)
            .await
            .map_err(|e| Problem::from(&e))?;
        let record = maybe_wait(&app.jobs, record, headers).await?;
        Ok(json_response(
            StatusCode::OK,
            &json!({ "data": shapes::task(&record) }),
        ))
    };
    result.await.map_err(task_error)
}
