//! The vocabulary at the bottom of thumbd: what a picture is ([`RenderSpec`]
//! and the storyboard and animation specs), ids, the parameter error and the
//! problem (RFC 9457) every layer answers with. Pure data and rules; it
//! imports nothing else of the crate.

pub mod animated;
mod clock;
mod field;
mod id;
pub mod problem;
mod spec;
pub mod storyboard;

pub use clock::now_secs;
pub use field::FieldError;
pub use id::is_valid_id;
pub use problem::{Problem, ProblemBody};
pub use spec::{
    format_seconds, Fit, Format, RenderSpec, TimeSpec, DEFAULT_QUALITY, DEFAULT_SCAN_FRAMES,
    MAX_DIMENSION, NEAR_WINDOW_US, WHOLE,
};
