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
        // Other forms as a URL writes them ("auto", "25%", "f12", "auto:30").
        "time": match s.time { TimeSpec::At(_) | TimeSpec::Middle => None, t => t.as_param() },
        "snap": s.snap.then_some("keyframe"),
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
            Some(text) => crate::request::parse_time(text)?,
            None => v["time_us"].as_u64().map_or(TimeSpec::Middle, TimeSpec::At),
        },
        snap: v["snap"].as_str() == Some("keyframe"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_moment_is_stored_and_read_back() {
        for (time, snap) in [
            (TimeSpec::Middle, false),
            (TimeSpec::Middle, true),
            (TimeSpec::At(12_500_000), false),
            (TimeSpec::At(0), true),
            (TimeSpec::Auto, false),
            (TimeSpec::Near(30_000_000), false),
            (TimeSpec::Fraction(333_333), true),
            (TimeSpec::Frame(1234), false),
        ] {
            let spec = RenderSpec {
                format: Format::Webp,
                width: Some(320),
                height: None,
                fit: None,
                quality: Some(80),
                time,
                snap,
            };
            assert_eq!(spec_from_value(&spec_value(&spec)), Some(spec));
        }
    }
}
