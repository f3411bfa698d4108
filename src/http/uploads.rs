//! `POST /v1/api/{org}/uploads`: a video uploaded as `multipart/form-data`
//! (field `video`), stored in the org's upload store, and a job for its
//! thumbnail.
//!
//! Form fields besides the file: `time` (seconds, default 1, or the end of
//! a shorter video), `size` (`WxH`; default the video's own size),
//! `format`, `fit`, `quality`, `id`, `webhook_url`, and `env` (a `store:`
//! environment; before the file, or as `?env=`). The query parameter
//! `persistent` (`true`, `false`, `1`, `0`; default false) picks the
//! video's retention in the store: `retention_days` from a persistent
//! upload, else `temporary_hours`. The file streams to disk and is cut off
//! past the store's limit (413, connection closed); it is checked as a
//! readable video (415 otherwise) before it is stored; nothing of a
//! refused upload stays on disk.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{header, HeaderMap, Response, StatusCode};
use http_body_util::BodyStream;
use serde_json::{json, Value};

use super::app::App;
use super::job_answers::{job_status, maybe_wait};
use super::responses::{json_response, Body};
use crate::domain::FieldError;
use crate::domain::Problem;
use crate::domain::{Fit, Format};
use crate::jobs::model::{moment_secs, past_end_ms, JobRequest};
use crate::jobs::shapes::{self, Shape};
use crate::request::fields::{self, Fields, Raw};
use crate::request::{seconds_to_us, Params};
use crate::store::{ObjectStore, Staged, StoreError};

/// Longest text field accepted, bytes.
const MAX_FIELD_BYTES: usize = 4096;
/// Most form parts accepted.
const MAX_PARTS: usize = 32;
/// Room for the form around the file when comparing Content-Length with
/// the store's limit.
const FORM_OVERHEAD: u64 = 64 * 1024;

fn field_error(location: &str, value: &str, message: impl Into<String>) -> Problem {
    Problem::invalid_request(vec![FieldError {
        message: message.into(),
        location: location.into(),
        value: value.into(),
    }])
}

/// The `persistent` query parameter: `true`, `false`, `1` or `0` (any
/// case); absent, false. Given twice, both must agree.
fn parse_persistent(query: Option<&str>) -> Result<bool, Problem> {
    let mut found = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k != "persistent" {
            continue;
        }
        let value = match v.to_ascii_lowercase().as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => {
                return Err(field_error(
                    "query.persistent",
                    &v,
                    "persistent must be true or false (or 1, 0)",
                ))
            }
        };
        if found.is_some_and(|f| f != value) {
            return Err(field_error(
                "query.persistent",
                &v,
                "persistent is given twice, with different values",
            ));
        }
        found = Some(value);
    }
    Ok(found.unwrap_or(false))
}

/// `WxH`, each side as a `width` or `height` is checked.
fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.trim().split_once(['x', 'X'])?;
    let side = |v: &str| fields::dimension("size", Raw::Text(v)).ok();
    Some((side(w)?, side(h)?))
}

/// The upload's form fields, validated.
struct Form {
    time_secs: Option<f64>,
    size: Option<(u32, u32)>,
    format: Format,
    fit: Option<Fit>,
    quality: Option<u8>,
    client_id: Option<String>,
    webhook_url: Option<String>,
}

fn parse_form(form: &HashMap<String, String>) -> Result<Form, Problem> {
    let mut errors = Vec::new();
    let mut checks = Fields::new("body", &mut errors);
    let get = |name: &str| form.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let time_secs = get("time").and_then(|t| checks.check("time", Raw::Text(t), fields::seconds));
    let size = get("size").and_then(|s| {
        let parsed = parse_size(s);
        if parsed.is_none() {
            checks.error(
                "size",
                s,
                "size must be WIDTHxHEIGHT, each between 1 and 4096 (e.g. 320x180)",
            );
        }
        parsed
    });
    let format = match get("format") {
        None => Some(Format::Webp),
        Some(f) => checks.check("format", Raw::Text(f), fields::format),
    };
    let fit = get("fit").and_then(|f| checks.check("fit", Raw::Text(f), fields::fit));
    let quality =
        get("quality").and_then(|q| checks.check("quality", Raw::Text(q), fields::quality));
    let client_id = get("id").map(str::to_owned);
    if client_id.as_ref().is_some_and(|id| id.len() > 256) {
        checks.error("id", "", "id must be at most 256 characters");
    }
    if !errors.is_empty() {
        return Err(Problem::invalid_request(errors));
    }
    Ok(Form {
        time_secs,
        size,
        format: format.expect("checked"),
        fit,
        quality,
        client_id,
        webhook_url: get("webhook_url").map(str::to_owned),
    })
}

/// The store an upload goes to: `env` if named, else the org's upload
/// store.
fn upload_store(
    app: &App,
    org: &str,
    env: Option<&str>,
) -> Result<(String, Arc<ObjectStore>), Problem> {
    let env = match env {
        Some(e) => e.to_owned(),
        None => app.upload_env(org).map(str::to_owned).ok_or_else(|| {
            Problem::not_found(format!(
                "org {org:?} has no upload store (a store: environment, or upload_env)"
            ))
        })?,
    };
    let store = app.stores.get(org, &env).ok_or_else(|| {
        Problem::not_found(format!(
            "there is no store: environment {env:?} in org {org:?}"
        ))
    })?;
    Ok((env, store.clone()))
}

/// `POST /v1/api/{org}/uploads`.
pub(super) async fn upload<B>(
    app: &App,
    org: &str,
    headers: &HeaderMap,
    query: Option<&str>,
    body: B,
) -> Result<Response<Body>, Problem>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    app.access.authorize_api(org, headers)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media",
            "Not a form upload",
            "send the video as multipart/form-data, in a field named video",
        )
    })?;
    let query_env = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "env")
        .map(|(_, v)| v.into_owned());
    let persistent = parse_persistent(query)?;
    // The most any of the org's stores takes (the one named, else the
    // default, else the largest: a form field may still name it).
    let limit = match upload_store(app, org, query_env.as_deref()) {
        Ok((_, store)) => store.max_upload_bytes(),
        Err(_) if query_env.is_none() => app
            .stores
            .of_org(org)
            .map(|s| s.max_upload_bytes())
            .max()
            .ok_or_else(|| {
                Problem::not_found(format!("org {org:?} has no store: environment for uploads"))
            })?,
        Err(p) => return Err(p),
    };
    // A body announced larger than that is refused unread.
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit + FORM_OVERHEAD) {
        return Err(too_large(&StoreError::TooLarge { max: limit }));
    }

    let stream = BodyStream::new(body).filter_map(|frame| {
        let item: Option<Result<Bytes, Box<dyn std::error::Error + Send + Sync>>> = match frame {
            Ok(frame) => frame.into_data().ok().map(Ok),
            Err(e) => Some(Err(e.into())),
        };
        std::future::ready(item)
    });
    // The whole body is bounded too (what comes before the first
    // boundary and part headers are buffered by the parser).
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(limit + FORM_OVERHEAD));
    let mut multipart = multer::Multipart::with_constraints(
        Box::pin(stream)
            as std::pin::Pin<
                Box<
                    dyn futures_util::Stream<
                            Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>,
                        > + Send,
                >,
            >,
        boundary,
        constraints,
    );
    let malformed = |e: multer::Error| {
        if matches!(e, multer::Error::StreamSizeExceeded { .. }) {
            return too_large(&StoreError::TooLarge { max: limit });
        }
        field_error(
            "body",
            "",
            format!("the multipart body could not be read: {e}"),
        )
    };
    let idle = app.server_settings().body_idle_timeout();
    // Every read of the body waits at most `idle` for bytes.
    let stalled = || {
        Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "upload-timeout",
            "Upload stalled",
            format!("no bytes of the upload arrived for {} s", idle.as_secs()),
        )
        .with_header("connection", "close")
    };
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut video: Option<(String, Arc<ObjectStore>, Staged)> = None;
    let mut parts = 0;
    while let Some(mut field) = tokio::time::timeout(idle, multipart.next_field())
        .await
        .map_err(|_| stalled())?
        .map_err(malformed)?
    {
        parts += 1;
        if parts > MAX_PARTS {
            return Err(field_error(
                "body",
                "",
                format!("at most {MAX_PARTS} form fields"),
            ));
        }
        let name = field.name().unwrap_or_default().to_owned();
        if field.file_name().is_some() || name == "video" {
            if name != "video" {
                return Err(field_error(
                    &format!("body.{name}"),
                    "",
                    "files are taken only in the field video",
                ));
            }
            if video.is_some() {
                return Err(field_error("body.video", "", "send exactly one video file"));
            }
            let env = fields.get("env").cloned().or_else(|| query_env.clone());
            let (env, store) = upload_store(app, org, env.as_deref())?;
            let mut incoming = store.begin().await.map_err(|e| store_problem(&e))?;
            while let Some(chunk) = tokio::time::timeout(idle, field.chunk())
                .await
                .map_err(|_| stalled())?
                .map_err(malformed)?
            {
                incoming
                    .write(&chunk)
                    .await
                    .map_err(|e| store_problem(&e))?;
            }
            if incoming.size() == 0 {
                return Err(field_error("body.video", "", "the video file is empty"));
            }
            let staged = incoming.finish().await.map_err(|e| store_problem(&e))?;
            video = Some((env, store, staged));
        } else {
            let mut text = Vec::new();
            while let Some(chunk) = tokio::time::timeout(idle, field.chunk())
                .await
                .map_err(|_| stalled())?
                .map_err(malformed)?
            {
                if text.len() + chunk.len() > MAX_FIELD_BYTES {
                    return Err(field_error(
                        &format!("body.{name}"),
                        "",
                        format!("form fields are limited to {MAX_FIELD_BYTES} bytes"),
                    ));
                }
                text.extend_from_slice(&chunk);
            }
            let text = String::from_utf8(text).map_err(|_| {
                field_error(
                    &format!("body.{name}"),
                    "",
                    "form fields must be UTF-8 text",
                )
            })?;
            fields.insert(name, text);
        }
    }
    let Some((env, store, staged)) = video else {
        return Err(field_error(
            "body.video",
            "",
            "no video: send the file in a multipart field named video",
        ));
    };
    let form = parse_form(&fields)?;
    if let Some(url) = &form.webhook_url {
        app.jobs
            .check_webhook(org, url)
            .map_err(|e| field_error("body.webhook_url", url, e.to_string()))?;
    }
    let probe = app
        .renderer
        .check_file(staged.path())
        .await
        .map_err(|e| Problem::from(&e))?;
    let duration = probe.duration_secs;
    let params = Params {
        width: form.size.map(|s| s.0),
        height: form.size.map(|s| s.1),
        fit: form.fit,
        quality: form.quality,
        ..Params::default()
    };
    let secs = moment_secs(form.time_secs, duration);
    if let Some((requested_ms, duration_ms)) = past_end_ms(seconds_to_us(secs) / 1000, duration) {
        return Err(Problem::from(&crate::jobs::JobError::PastEnd {
            requested_ms,
            duration_ms,
        }));
    }
    let store_for_commit = store.clone();
    let committed =
        tokio::task::spawn_blocking(move || store_for_commit.commit(staged, persistent))
            .await
            .map_err(|_| store_problem(&StoreError::Io("commit task failed".into())))?
            .map_err(|e| store_problem(&e))?;
    let (key, new) = (committed.key.clone(), committed.new);

    let job = JobRequest {
        client_id: form.client_id,
        webhook_url: form.webhook_url,
        ..JobRequest::at_time(org, &env, &key, params, form.format, Some(secs), duration)
    };
    let record = match app.jobs.submit_request(job, Shape::Thumbd).await {
        Ok((record, _)) => record,
        Err(e) => {
            // Not accepted: an object stored only for it goes again.
            if new {
                let _ = tokio::task::spawn_blocking(move || store.remove(&committed)).await;
            }
            return Err(Problem::from(&e));
        }
    };
    let record = maybe_wait(&app.jobs, record, headers).await?;
    let status = job_status(&record)?;
    let mut doc = shapes::thumbd(&record);
    let extra = json!({
        "job_id": record.id,
        "key": key,
        "env": env,
        "stored": if new { "new" } else { "existing" },
        "duration": duration,
        "persistent": committed.persistent,
        "expires_at": committed.expires.map(|t| {
            humantime::format_rfc3339_seconds(t).to_string()
        }),
    });
    if let (Value::Object(doc), Value::Object(extra)) = (&mut doc, extra) {
        doc.extend(extra);
    }
    Ok(json_response(status, &json!({ "body": doc })))
}

fn too_large(e: &StoreError) -> Problem {
    // The rest of the body is not read: the connection closes after this.
    Problem::from(e).with_header("connection", "close")
}

fn store_problem(e: &StoreError) -> Problem {
    match e {
        // Refused mid-stream: the rest of the body is not read.
        StoreError::TooLarge { .. } | StoreError::Full { .. } => too_large(e),
        StoreError::Io(cause) => {
            tracing::error!(error = %cause, "upload store failed");
            Problem::from(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("320x180"), Some((320, 180)));
        assert_eq!(parse_size("64X64"), Some((64, 64)));
        for bad in [
            "0x0", "x", "99999x1", "320", "320x", "x180", "-1x5", "1.5x2",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn form_errors_name_each_field() {
        let fields: HashMap<String, String> = [
            ("time", "soon"),
            ("size", "0x0"),
            ("format", "gif"),
            ("quality", "101"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let problem = parse_form(&fields).err().unwrap();
        let locations: Vec<_> = problem.errors.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(
            locations,
            ["body.time", "body.size", "body.format", "body.quality"]
        );
        let ok = parse_form(&HashMap::new()).ok().unwrap();
        assert_eq!(
            (ok.time_secs, ok.size, ok.format),
            (None, None, Format::Webp)
        );
    }

    #[test]
    fn persistent_values() {
        for (query, persistent) in [
            (None, false),
            (Some("env=up"), false),
            (Some("persistent=true"), true),
            (Some("persistent=1&env=x"), true),
            (Some("persistent=TRUE&persistent=1"), true),
            (Some("persistent=false"), false),
            (Some("persistent=0"), false),
        ] {
            assert_eq!(parse_persistent(query).ok(), Some(persistent), "{query:?}");
        }
        for bad in [
            "persistent=yes",
            "persistent=",
            "persistent",
            "persistent=1&persistent=0",
        ] {
            let problem = parse_persistent(Some(bad)).err().unwrap();
            assert_eq!(problem.errors[0].location, "query.persistent", "{bad}");
        }
    }
}
