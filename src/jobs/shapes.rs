//! The job documents each API shape returns (and sends to webhooks). One
//! job engine, several ways of being asked: thumbd's own job API, the
//! video-URL API and the conversion-task API read the same [`JobRecord`]
//! and show it as their clients expect. Pure.

use serde_json::{json, Value};

/// Which API shape submitted a job (defined with the record that names it).
pub use super::model::Shape;
use super::model::{JobRecord, Status};

impl Shape {
    /// The job as this shape's clients read it.
    pub fn document(self, r: &JobRecord) -> Value {
        match self {
            Shape::Thumbd => thumbd(r),
            Shape::VideoUrl => video_url(r),
            Shape::Task => task(r),
        }
    }
}

/// thumbd's own job document.
pub fn thumbd(r: &JobRecord) -> Value {
    let mut doc = json!({
        "jobId": r.id,
        "status": r.status.as_str(),
        "url": r.url,
    });
    if let Some(id) = &r.client_id {
        doc["id"] = id.clone().into();
    }
    if let Some((w, h)) = r.size {
        doc["width"] = w.into();
        doc["height"] = h.into();
    }
    if let Some(e) = &r.error {
        doc["error"] = e.to_json();
    }
    if let Some(state) = r.webhook {
        doc["webhook"] = json!({"state": state.as_str(), "attempts": r.webhook_attempts});
    }
    doc
}

/// Seconds between two Unix-millisecond times, to the millisecond.
fn secs_between(from: Option<u64>, to: Option<u64>) -> Option<f64> {
    Some(to?.saturating_sub(from?) as f64 / 1000.0)
}

/// The video-URL API's result: `response` is the thumbnail's URL once it
/// is made; `queue_time`, `run_time` and `total_time` are seconds.
pub fn video_url(r: &JobRecord) -> Value {
    let mut doc = json!({
        "job_id": r.id,
        "status": match r.status {
            Status::Pending | Status::Processing => "processing",
            Status::Completed => "completed",
            Status::Failed => "failed",
        },
    });
    if let Some(id) = &r.client_id {
        doc["id"] = id.clone().into();
    }
    if r.status == Status::Completed {
        doc["response"] = r.url.clone().into();
    }
    if let Some(e) = &r.error {
        doc["error"] = e.detail.clone().into();
        doc["problem"] = e.to_json();
    }
    if r.status.is_final() {
        let start = r.started_ms.or(r.ended_ms);
        doc["queue_time"] = secs_between(r.created_ms, start).into();
        doc["run_time"] = secs_between(start, r.ended_ms).into();
        doc["total_time"] = secs_between(r.created_ms, r.ended_ms).into();
    }
    doc
}

fn rfc3339(ms: Option<u64>) -> Value {
    match ms {
        Some(ms) => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )
        .to_string()
        .into(),
        None => Value::Null,
    }
}

/// The conversion-task API's task.
pub fn task(r: &JobRecord) -> Value {
    let mut doc = json!({
        "id": r.id,
        "operation": "thumbnail",
        "status": match r.status {
            Status::Pending => "waiting",
            Status::Processing => "processing",
            Status::Completed => "finished",
            Status::Failed => "error",
        },
        "created_at": rfc3339(r.created_ms),
        "started_at": rfc3339(r.started_ms),
        "ended_at": rfc3339(r.ended_ms),
        "result": Value::Null,
    });
    if r.status == Status::Completed {
        let filename = format!(
            "{}.{}",
            r.thumbnail
                .key
                .rsplit('/')
                .next()
                .unwrap_or(&r.thumbnail.key),
            r.thumbnail.spec.format.ext()
        );
        let mut file = json!({"filename": filename, "url": r.url});
        if let Some((w, h)) = r.size {
            file["width"] = w.into();
            file["height"] = h.into();
        }
        doc["result"] = json!({ "files": [file] });
    }
    if let Some(e) = &r.error {
        doc["message"] = e.detail.clone().into();
        doc["code"] = task_code(u64::from(e.status)).into();
    }
    doc
}

/// The conversion-task API's error code for a status.
pub fn task_code(status: u64) -> &'static str {
    match status {
        400 | 422 => "INVALID_DATA",
        401 => "UNAUTHENTICATED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        413 => "TOO_LARGE",
        415 => "UNSUPPORTED_FORMAT",
        429 => "TOO_MANY_REQUESTS",
        503 => "SERVICE_UNAVAILABLE",
        504 => "TIMEOUT",
        _ => "PROCESSING_FAILED",
    }
}
