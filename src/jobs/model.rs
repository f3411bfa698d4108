//! What a job is, in every part of the job service: its [`Status`], the
//! validated submission ([`JobRequest`]), the record as stored
//! ([`JobRecord`]) with its webhook [`Delivery`] and the API [`Shape`] that
//! submitted it. Pure data; the leaf every other file of `jobs` builds on.
//! (How each shape shows a job is in [`super::shapes`]; how a submission
//! is validated, in [`super::submission`].)

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{Format, Problem, TimeSpec};
use crate::request::{seconds_to_us, Params, ThumbnailRequest};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Processing,
    Completed,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Processing => "processing",
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "pending" => Some(Status::Pending),
            "processing" => Some(Status::Processing),
            "completed" => Some(Status::Completed),
            "failed" => Some(Status::Failed),
            _ => None,
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Failed)
    }
}

/// A validated submission.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRequest {
    pub thumbnail: ThumbnailRequest,
    /// The caller's own reference, echoed back.
    pub client_id: Option<String>,
    pub webhook_url: Option<String>,
    /// Per-job render time limit, if the caller set one.
    pub timeout_ms: Option<u64>,
    /// The requested time, for the duration check (`None`: the middle).
    pub timestamp_ms: Option<u64>,
}

/// The time a compatibility shape or an upload renders when it names
/// none: one second in, or the end of a shorter video.
pub const DEFAULT_SECOND: f64 = 1.0;

/// The moment a job renders: `time_secs` if given, else
/// [`DEFAULT_SECOND`], or the end of a shorter video.
pub fn moment_secs(time_secs: Option<f64>, duration_secs: Option<f64>) -> f64 {
    time_secs.unwrap_or_else(|| DEFAULT_SECOND.min(duration_secs.unwrap_or(DEFAULT_SECOND)))
}

/// The one past-the-end rule of every shape, to the millisecond: the
/// requested time and the duration in whole milliseconds when the time is
/// past the end of a video lasting `duration_secs`.
pub fn past_end_ms(requested_ms: u64, duration_secs: Option<f64>) -> Option<(u64, u64)> {
    let duration_ms = (duration_secs? * 1000.0).round() as u64;
    (requested_ms > duration_ms).then_some((requested_ms, duration_ms))
}

impl JobRequest {
    /// A job for one picture at one moment (`time_secs`), as the
    /// compatibility shapes and uploads submit them; `None` takes
    /// [`DEFAULT_SECOND`] (or the end of a shorter video).
    pub fn at_time(
        org: &str,
        env: &str,
        key: &str,
        params: Params,
        format: Format,
        time_secs: Option<f64>,
        duration_secs: Option<f64>,
    ) -> JobRequest {
        let time_us = seconds_to_us(moment_secs(time_secs, duration_secs));
        let params = Params {
            time: Some(TimeSpec::At(time_us)),
            ..params
        };
        JobRequest {
            thumbnail: ThumbnailRequest {
                org: org.to_owned(),
                env: env.to_owned(),
                key: key.to_owned(),
                spec: params.to_spec(format),
            },
            client_id: None,
            webhook_url: None,
            timeout_ms: None,
            timestamp_ms: Some(time_us / 1000),
        }
    }

    /// [`past_end_ms`] for this job's requested time (none: the middle,
    /// never past the end).
    pub fn past_end(&self, duration_secs: Option<f64>) -> Option<(u64, u64)> {
        past_end_ms(self.timestamp_ms?, duration_secs)
    }
}

/// Which API shape submitted a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `/v1/api/...`: thumbd's job API and uploads.
    Thumbd,
    /// `POST /v1/video/thumbnail`: a video URL in, a thumbnail URL out.
    VideoUrl,
    /// `POST /v2/thumbnail`: a conversion task.
    Task,
}

impl Shape {
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Thumbd => "thumbd",
            Shape::VideoUrl => "video-url",
            Shape::Task => "task",
        }
    }

    pub fn parse(s: &str) -> Option<Shape> {
        match s {
            "thumbd" => Some(Shape::Thumbd),
            "video-url" => Some(Shape::VideoUrl),
            "task" => Some(Shape::Task),
            _ => None,
        }
    }
}

/// Where a job's webhook delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Pending,
    Delivered,
    Failed,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Pending => "pending",
            Delivery::Delivered => "delivered",
            Delivery::Failed => "failed",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Delivery> {
        match s {
            "pending" => Some(Delivery::Pending),
            "delivered" => Some(Delivery::Delivered),
            "failed" => Some(Delivery::Failed),
            _ => None,
        }
    }
}

/// Why a job failed, as stored and shown: the problem it would have
/// answered (code, status, title, detail), typed. Stored as that problem's
/// JSON (`type`, `title`, `status`, `detail` and any extension members).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFailure {
    /// `urn:thumbd:problem:<code>`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub title: String,
    #[serde(default = "JobFailure::unknown_status")]
    pub status: u16,
    #[serde(default)]
    pub detail: String,
    /// Extension members, as stored.
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, Value>,
}

impl JobFailure {
    fn unknown_status() -> u16 {
        500
    }

    /// The failure of a job that would have answered `problem`.
    pub fn from_problem(problem: &Problem) -> JobFailure {
        JobFailure {
            kind: problem.kind.clone(),
            title: problem.title.to_owned(),
            status: problem.status,
            detail: problem.detail.clone(),
            extensions: problem.extensions.clone(),
        }
    }

    /// The problem's code (`undecodable-video`, `source-timeout`, ...).
    pub fn code(&self) -> Option<&str> {
        self.kind.strip_prefix("urn:thumbd:problem:")
    }

    /// The stored JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a JSON object")
    }
}

/// One job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub thumbnail: ThumbnailRequest,
    pub url: String,
    pub client_id: Option<String>,
    pub webhook_url: Option<String>,
    pub timeout_ms: Option<u64>,
    pub status: Status,
    /// Why it failed, when it did.
    pub error: Option<JobFailure>,
    pub attempts: u32,
    /// Size of the rendered thumbnail, when completed.
    pub size: Option<(u32, u32)>,
    pub webhook: Option<Delivery>,
    pub webhook_attempts: u32,
    /// Which API shape submitted it: what its webhook body looks like.
    pub shape: Shape,
    /// When it was submitted, started (first try) and finished, Unix ms.
    pub created_ms: Option<u64>,
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
}

/// Now, Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Problem;

    #[test]
    fn one_second_or_the_end_and_past_it_to_the_millisecond() {
        assert_eq!(moment_secs(None, Some(30.0)), 1.0);
        assert_eq!(
            moment_secs(None, Some(0.4)),
            0.4,
            "the end of a shorter video"
        );
        assert_eq!(moment_secs(None, None), 1.0);
        assert_eq!(
            moment_secs(Some(12.5), Some(3.0)),
            12.5,
            "a given time is kept"
        );
        assert_eq!(
            past_end_ms(10_000, Some(10.0)),
            None,
            "the end itself is not past it"
        );
        assert_eq!(
            past_end_ms(10_000, Some(9.9996)),
            None,
            "rounded to the millisecond"
        );
        assert_eq!(past_end_ms(10_001, Some(10.0)), Some((10_001, 10_000)));
        assert_eq!(past_end_ms(10_001, None), None, "unknown duration");
        let job = JobRequest::at_time(
            "o",
            "e",
            "k",
            Params::default(),
            Format::Webp,
            None,
            Some(0.5),
        );
        assert_eq!(job.timestamp_ms, Some(500));
        assert_eq!(job.thumbnail.spec.time, TimeSpec::At(500_000));
        assert_eq!(job.past_end(Some(0.5)), None);
        assert_eq!(job.past_end(Some(0.4)), Some((500, 400)));
    }

    #[test]
    fn a_failure_is_stored_as_its_problem() {
        let problem = Problem::new(
            http::StatusCode::UNPROCESSABLE_ENTITY,
            "past-end",
            "Time past the end",
            "timestampMs 5 is past the end",
        )
        .with_member("durationMs", 4);
        let failure = JobFailure::from_problem(&problem);
        assert_eq!(failure.to_json(), serde_json::to_value(&problem).unwrap());
        assert_eq!(failure.code(), Some("past-end"));
        let back: JobFailure = serde_json::from_value(failure.to_json()).unwrap();
        assert_eq!(back, failure);
    }
}
