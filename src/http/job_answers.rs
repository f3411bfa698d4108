//! What the endpoints that submit jobs (the jobs API, uploads, the
//! compatibility shapes) answer alike: waiting for a job when the client
//! sends `Prefer: wait=N` (RFC 7240; capped), a job's state as a status
//! code, and a failed job's stored problem.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

use crate::domain::Problem;
use crate::jobs::model::Status;
use crate::jobs::store::JobRecord;
use crate::jobs::Jobs;

/// How long the client asks to wait for a job (`Prefer: wait=N`, RFC
/// 7240), capped at `max`; `None` if it does not ask.
fn prefer_wait(headers: &HeaderMap, max: Duration) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|pref| {
            let pref = pref.split(';').next()?.trim();
            let (name, value) = pref.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("wait") {
                return None;
            }
            value.trim().trim_matches('"').parse::<u64>().ok()
        })
        .map(|secs| Duration::from_secs(secs).min(max))
        .next()
}

/// With `Prefer: wait=N`, waits for the job to finish (up to N seconds,
/// capped); returns the job as it then is.
pub(super) async fn maybe_wait(
    jobs: &Jobs,
    record: JobRecord,
    headers: &HeaderMap,
) -> Result<JobRecord, Problem> {
    match prefer_wait(headers, jobs.max_wait()) {
        Some(limit) if !record.status.is_final() => jobs
            .wait_final(&record.thumbnail.org, &record.id, limit)
            .await
            .map_err(|e| Problem::from(&e)),
        _ => Ok(record),
    }
}

/// The answer's status for a submitted job: 200 once completed (already,
/// or while the client waited), 202 while pending or running; a job that
/// failed while the client waited answers with its problem.
pub(super) fn job_status(record: &JobRecord) -> Result<StatusCode, Problem> {
    match record.status {
        Status::Completed => Ok(StatusCode::OK),
        Status::Pending | Status::Processing => Ok(StatusCode::ACCEPTED),
        Status::Failed => Err(failed_problem(record)),
    }
}

/// The problem a failed job stored, as a call's answer (with its `jobId`).
pub(super) fn failed_problem(record: &JobRecord) -> Problem {
    let failure = record.error.as_ref();
    let status = failure
        .and_then(|e| StatusCode::from_u16(e.status).ok())
        .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
    let detail = failure
        .map(|e| e.detail.as_str())
        .filter(|d| !d.is_empty())
        .unwrap_or("the thumbnail could not be made");
    let code = failure
        .and_then(|e| e.code())
        .unwrap_or("undecodable-video");
    let title = match status.as_u16() {
        404 => "Not found",
        415 => "Unsupported media",
        422 => "Thumbnail failed",
        502 => "Source error",
        504 => "Timed out",
        _ => "Thumbnail failed",
    };
    let problem = Problem::new(status, code, title, detail).with_member("jobId", record.id.clone());
    // A job that failed for lack of room can be tried again shortly.
    match status.as_u16() {
        429 | 503 => problem.with_header("retry-after", 5),
        _ => problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_from_headers() {
        let max = Duration::from_secs(30);
        let mut h = HeaderMap::new();
        assert_eq!(prefer_wait(&h, max), None);
        h.insert("prefer", "respond-async, wait=10".parse().unwrap());
        assert_eq!(prefer_wait(&h, max), Some(Duration::from_secs(10)));
        h.insert("prefer", "wait=600".parse().unwrap());
        assert_eq!(prefer_wait(&h, max), Some(max), "capped");
        h.insert("prefer", "wait=soon, handling=strict".parse().unwrap());
        assert_eq!(prefer_wait(&h, max), None);
    }
}
