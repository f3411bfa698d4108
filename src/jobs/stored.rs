//! A job record as both databases store it: the columns rows are read
//! from, in the same order in SQLite and PostgreSQL, and the render spec as
//! JSON (text in SQLite, JSONB in PostgreSQL). Pure.

use serde_json::{json, Value};

use crate::domain::{Fit, Format, RenderSpec, TimeSpec};

/// The columns [`JobRecord`](super::model::JobRecord)s are read from, in the order the row readers
/// expect (the same in both databases).
pub(super) const COLUMNS: &str =
    "id, org, env, key, spec, url, client_id, webhook_url, timeout_ms, status, error, attempts, \
                       width, height, webhook_state, webhook_attempts, shape, created_ms, started_ms, ended_ms";

/// A render spec as stored (JSON text in SQLite, JSONB in PostgreSQL).
pub(super) fn spec_value(s: &RenderSpec) -> Value {
    json!({
        "format": s.format.ext(),
        "width": s.width,
        "height": s.height,
        "fit": s.fit.map(Fit::as_str),
        "quality": s.quality,
        "time_us": match s.time { TimeSpec::At(us) => Some(us), _ => None },
        "time": match s.time { TimeSpec::Auto => Some("auto"), _ => None },
    })
}

/// The render spec [`spec_value`] stored.
pub(super) fn spec_from_value(v: &Value) -> Option<RenderSpec> {
    Some(RenderSpec {
        format: Format::from_ext(v["format"].as_str()?)?,
        width: v["width"].as_u64().map(|n| n as u32),
        height: v["height"].as_u64().map(|n| n as u32),
        fit: v["fit"].as_str().and_then(Fit::parse),
        quality: v["quality"].as_u64().map(|n| n as u8),
        time: match v["time"].as_str() {
            Some("auto") => TimeSpec::Auto,
            _ => v["time_us"].as_u64().map_or(TimeSpec::Middle, TimeSpec::At),
        },
    })
}
