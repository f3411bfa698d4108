//! RFC 9457 problem details: the error vocabulary shared by the HTTP layer
//! and the job API (failed jobs carry one). Each subsystem maps its own
//! errors to problems next to its error enum (`impl From<&XError> for
//! Problem`); turning a problem into an HTTP response is the HTTP layer's
//! job (`http::problem_response`).
//!
//! 5xx details say what kind of thing failed, never internals (URLs, FFmpeg
//! messages); the log has the cause.

use http::StatusCode;
use serde::Serialize;

use super::FieldError;

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

    /// A 500 whose detail names no internals; the log has the cause.
    pub fn internal() -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "thumbd failed unexpectedly; the server log has the cause",
        )
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
