//! One problem with a request parameter.

/// One problem with a request parameter, reported in problem+json `errors`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub message: String,
    /// Where the bad value is: `path.key`, `path.format`, `query.width`, ...
    pub location: String,
    /// The value as received.
    pub value: String,
}

impl FieldError {
    pub(crate) fn new(location: &str, value: &str, message: impl Into<String>) -> Self {
        FieldError {
            message: message.into(),
            location: location.into(),
            value: value.into(),
        }
    }
}
