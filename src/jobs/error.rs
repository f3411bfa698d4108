//! Why the job service refused or failed a call ([`JobError`]), and the
//! problem (status, type, body) each reason is answered with. A storage
//! failure's cause stays in the log; its answer is a plain 503.

use http::StatusCode;

use crate::domain::{FieldError, Problem};
use crate::render::RenderError;

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("invalid job")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    BadWebhook(String),
    #[error("there is no environment {0:?} in this org")]
    UnknownEnvironment(String),
    #[error("timestampMs {requested_ms} is past the end of the video ({duration_ms} ms)")]
    PastEnd { requested_ms: u64, duration_ms: u64 },
    #[error("the job queue is full ({length} of {max})")]
    QueueFull { length: usize, max: usize },
    #[error("thumbd is shutting down and takes no new jobs")]
    ShuttingDown,
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("job storage failed: {0}")]
    Store(String),
    #[error("no such job")]
    NotFound,
}

/// A failure of the job database, as a [`JobError::Store`].
pub(super) fn store_err(e: impl std::fmt::Display) -> JobError {
    JobError::Store(e.to_string())
}

impl From<&JobError> for Problem {
    fn from(e: &JobError) -> Problem {
        use StatusCode as S;
        match e {
            JobError::Invalid(errors) => Problem::invalid_request(errors.clone()),
            JobError::BadWebhook(msg) => Problem::invalid_request(vec![FieldError {
                message: msg.clone(),
                location: "body.webhookUrl".into(),
                value: String::new(),
            }]),
            JobError::UnknownEnvironment(_) | JobError::NotFound => {
                Problem::not_found(e.to_string())
            }
            JobError::PastEnd { duration_ms, .. } => Problem::new(
                S::UNPROCESSABLE_ENTITY,
                "past-end",
                "Time past the end",
                e.to_string(),
            )
            .with_member("durationMs", *duration_ms),
            JobError::QueueFull { length, max } => Problem::new(
                S::TOO_MANY_REQUESTS,
                "queue-full",
                "Job queue full",
                e.to_string(),
            )
            .with_member("queueLength", *length)
            .with_member("maxQueue", *max)
            .with_header("retry-after", 5),
            JobError::ShuttingDown => Problem::new(
                S::SERVICE_UNAVAILABLE,
                "shutting-down",
                "Shutting down",
                e.to_string(),
            )
            .with_header("retry-after", 5),
            JobError::Render(r) => Problem::from(r),
            // The cause (which may name the database) stays in the log.
            JobError::Store(_) => Problem::new(
                S::SERVICE_UNAVAILABLE,
                "job-storage-unavailable",
                "Job storage unavailable",
                "the job database is not available right now; retry".to_owned(),
            )
            .with_header("retry-after", 5),
        }
    }
}
