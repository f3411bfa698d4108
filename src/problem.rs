//! RFC 9457 problem details: the error vocabulary shared by the HTTP layer
//! and the job API (failed jobs carry one), and the one place where errors
//! of every subsystem become status codes. Turning a problem into an HTTP
//! response is the HTTP layer's job (`http::problem_response`).
//!
//! 5xx details say what kind of thing failed, never internals (URLs, FFmpeg
//! messages); the log has the cause.

use http::StatusCode;
use serde::Serialize;

use crate::auth::{ApiKeyError, AuthError};
use crate::jobs::JobError;
use crate::media::MediaError;
use crate::pool::PoolError;
use crate::render::RenderError;
use crate::request::FieldError;
use crate::source::SourceError;
use crate::store::StoreError;

/// An error answer. Boxed, so `Result<_, Problem>` stays small on the
/// success path.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Problem(Box<ProblemBody>);

impl std::ops::Deref for Problem {
    type Target = ProblemBody;
    fn deref(&self) -> &ProblemBody {
        &self.0
    }
}

/// The members of a problem details document.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemBody {
    /// Stable identifier of the kind of problem, `urn:thumbd:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Extension members (RFC 9457 section 3.2), such as a queue's length.
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
    /// Headers the answer carries (Retry-After, Allow, WWW-Authenticate, ...).
    #[serde(skip)]
    headers: Vec<(&'static str, String)>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        code: &str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem(Box::new(ProblemBody {
            kind: format!("urn:thumbd:problem:{code}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            extensions: serde_json::Map::new(),
            headers: Vec::new(),
        }))
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &'static str, value: impl ToString) -> Problem {
        self.0.headers.push((name, value.to_string()));
        self
    }

    /// Adds an extension member to the body.
    pub fn with_member(mut self, name: &str, value: impl Into<serde_json::Value>) -> Problem {
        self.0.extensions.insert(name.to_owned(), value.into());
        self
    }

    pub fn invalid_request(errors: Vec<FieldError>) -> Problem {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.location, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        let mut problem = Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request",
            detail,
        );
        problem.0.errors = errors;
        problem
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn method_not_allowed(allow: &'static str) -> Problem {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            format!("this resource supports {allow}"),
        )
        .with_header("allow", allow)
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Whether a CDN may keep this answer for a short while: the request
    /// would fail the same way again.
    pub fn is_stable(&self) -> bool {
        matches!(self.status, 400 | 404 | 413 | 415 | 422)
    }

    /// Response headers the answer carries (Retry-After, Allow, ...).
    pub fn headers(&self) -> &[(&'static str, String)] {
        &self.0.headers
    }
}

impl From<&RenderError> for Problem {
    fn from(e: &RenderError) -> Problem {
        use StatusCode as S;
        match e {
            RenderError::UnknownEnvironment => Problem::not_found("unknown org or environment"),
            RenderError::Busy(PoolError::Full { waiting, max }) => Problem::new(
                S::SERVICE_UNAVAILABLE,
                "busy",
                "Too many renders",
                format!("{waiting} renders are already waiting (at most {max}); retry shortly"),
            )
            .with_header("retry-after", 1),
            RenderError::Busy(PoolError::Panicked(_)) => internal(),
            RenderError::Media(m) => media(m),
        }
    }
}

impl From<&AuthError> for Problem {
    /// 401 with a Bearer challenge (RFC 6750) saying what was wrong, or 403
    /// for a genuine token that is not for this URL. The token is never echoed.
    fn from(e: &AuthError) -> Problem {
        if e.is_forbidden() {
            return Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                e.to_string(),
            );
        }
        let challenge = match e {
            AuthError::Missing => "Bearer realm=\"thumbd\"".to_owned(),
            _ => format!(
                "Bearer realm=\"thumbd\", error=\"invalid_token\", error_description=\"{e}\""
            ),
        };
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            e.to_string(),
        )
        .with_header("www-authenticate", challenge)
    }
}

impl From<ApiKeyError> for Problem {
    fn from(e: ApiKeyError) -> Problem {
        match e {
            ApiKeyError::OtherOrg => Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                e.to_string(),
            ),
            _ => Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                e.to_string(),
            ),
        }
    }
}

fn internal() -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal error",
        "thumbd failed unexpectedly; the server log has the cause",
    )
}

fn media(e: &MediaError) -> Problem {
    use StatusCode as S;
    match e {
        MediaError::Source(s) => source(s),
        MediaError::NoVideoStream => Problem::new(
            S::UNSUPPORTED_MEDIA_TYPE,
            "no-video-stream",
            "No video stream",
            "the source has no video stream (audio only, or not a video)",
        ),
        MediaError::Unreadable(_) => Problem::new(
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media",
            "Unsupported media",
            "the source is not a video thumbd can read (unknown container, unsupported codec, empty or corrupt file)",
        ),
        MediaError::NoFrame(_) => Problem::new(
            S::UNPROCESSABLE_ENTITY,
            "undecodable-video",
            "No decodable frame",
            "no frame of the video could be decoded; it may be truncated or corrupt",
        ),
        MediaError::FrameTooLarge { .. } => Problem::new(
            S::UNPROCESSABLE_ENTITY,
            "frame-too-large",
            "Video frame too large",
            e.to_string(),
        ),
        MediaError::SourceTooLarge { .. } => Problem::new(
            S::PAYLOAD_TOO_LARGE,
            "source-too-large",
            "Source too large",
            e.to_string(),
        ),
        MediaError::Timeout => Problem::new(
            S::GATEWAY_TIMEOUT,
            "render-timeout",
            "Render timed out",
            "the thumbnail took longer than the render time limit",
        ),
        MediaError::Internal(_) => internal(),
    }
}

fn source(e: &SourceError) -> Problem {
    use StatusCode as S;
    match e {
        SourceError::NotFound => Problem::not_found("the video does not exist"),
        SourceError::Timeout => Problem::new(
            S::GATEWAY_TIMEOUT,
            "source-timeout",
            "Source timed out",
            "the video source did not answer in time",
        ),
        // Safe summaries only: the source's address and raw errors stay in the log.
        SourceError::Status { status } => {
            bad_gateway(format!("the video source answered {status}"))
        }
        SourceError::BadResponse(_) => {
            bad_gateway("the video source sent an invalid response".into())
        }
        SourceError::Changed => {
            bad_gateway("the video changed in the source while it was read; retry".into())
        }
        SourceError::Connect(_) => bad_gateway("the video source could not be reached".into()),
        SourceError::Io(_) => bad_gateway("reading the video source failed".into()),
        // Speaks only of the URL the caller sent.
        SourceError::Forbidden(why) => Problem::new(
            S::FORBIDDEN,
            "video-url-forbidden",
            "Video URL not allowed",
            why.clone(),
        ),
        SourceError::Replaced => Problem::not_found(e.to_string()),
        SourceError::Denied(_) => {
            bad_gateway("the video storage refused thumbd's request; see thumbd's log".into())
        }
    }
}

fn bad_gateway(detail: String) -> Problem {
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "source-error",
        "Source error",
        detail,
    )
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

impl From<&StoreError> for Problem {
    fn from(e: &StoreError) -> Problem {
        match e {
            StoreError::TooLarge { max } => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "upload-too-large",
                "Upload too large",
                e.to_string(),
            )
            .with_member("maxBytes", *max),
            StoreError::Full { .. } => Problem::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "store-full",
                "Store full",
                "the upload store has no room for this video under its quota",
            ),
            StoreError::Io(_) => internal(),
        }
    }
}
