//! Why a render failed, and the problem each failure answers.

use http::StatusCode;

use crate::domain::Problem;
use crate::media::MediaError;
use crate::pool::PoolError;
use crate::source::SourceError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum RenderError {
    #[error("unknown org or environment")]
    UnknownEnvironment,
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Busy(PoolError),
    #[error(transparent)]
    Moment(#[from] super::MomentError),
}

impl From<SourceError> for RenderError {
    fn from(e: SourceError) -> Self {
        RenderError::Media(MediaError::Source(e))
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
            RenderError::Busy(PoolError::Panicked(_)) => Problem::internal(),
            RenderError::Media(m) => Problem::from(m),
            RenderError::Moment(m) => Problem::from(m),
        }
    }
}
