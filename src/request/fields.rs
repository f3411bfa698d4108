//! The one parser of picture parameters. URLs, signed-token claims, job
//! bodies, the compatibility shapes and uploads all check `width`,
//! `height`, `quality`, `fit`, `format` and times here, with the same rules
//! and the same messages; each caller only says where the value was
//! (`query.width`, `body.width`, ...). Pure.

use std::borrow::Cow;

use serde_json::Value;

use crate::domain::{FieldError, Fit, Format, TimeSpec, MAX_DIMENSION, WHOLE};

/// Times past this many seconds are treated as "past the end" all the same.
const MAX_TIME_SECS: f64 = 1e9;

/// A parameter's value as it arrived: text (a URL's query, a form field)
/// or JSON (a body, a token's claims; a JSON string is read as text).
#[derive(Debug, Clone, Copy)]
pub enum Raw<'a> {
    Text(&'a str),
    Json(&'a Value),
}

impl Raw<'_> {
    /// The value as received, for `errors[].value`.
    pub fn shown(&self) -> Cow<'_, str> {
        match self {
            Raw::Text(s) => Cow::Borrowed(s),
            Raw::Json(Value::String(s)) => Cow::Borrowed(s),
            Raw::Json(v) => Cow::Owned(v.to_string()),
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Raw::Text(s) => Some(s),
            Raw::Json(Value::String(s)) => Some(s),
            Raw::Json(_) => None,
        }
    }

    /// An integer in `min..=max`: plain digits, or a JSON integer.
    fn integer(&self, min: u64, max: u64) -> Option<u64> {
        let n = match self {
            Raw::Json(Value::Number(n)) => n.as_u64(),
            _ => {
                let s = self.text()?;
                if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                s.parse().ok()
            }
        };
        n.filter(|n| (min..=max).contains(n))
    }
}

/// `width` or `height` (named `name`): 1 to [`MAX_DIMENSION`].
pub fn dimension(name: &str, raw: Raw) -> Result<u32, String> {
    raw.integer(1, MAX_DIMENSION as u64)
        .map(|n| n as u32)
        .ok_or_else(|| format!("{name} must be an integer between 1 and {MAX_DIMENSION}"))
}

/// `quality`: 1 to 100.
pub fn quality(name: &str, raw: Raw) -> Result<u8, String> {
    raw.integer(1, 100)
        .map(|n| n as u8)
        .ok_or_else(|| format!("{name} must be an integer between 1 and 100"))
}

/// `fit`: thumbd's names (`smart` among them: a crop placed on the
/// subject), or the conversion-task API's (`max`, `scale`).
pub fn fit(name: &str, raw: Raw) -> Result<Fit, String> {
    raw.text()
        .and_then(Fit::parse)
        .ok_or_else(|| format!("{name} must be crop, smart, contain, fill or pad (or max, scale)"))
}

/// `format`, in any case.
pub fn format(name: &str, raw: Raw) -> Result<Format, String> {
    raw.text()
        .and_then(Format::from_ext)
        .ok_or_else(|| format!("{name} must be webp, jpg, png or avif"))
}

/// A time in seconds (plain decimal, or a JSON number), 0 or more.
pub fn seconds(name: &str, raw: Raw) -> Result<f64, String> {
    let secs = match raw {
        Raw::Json(Value::Number(n)) => n.as_f64().filter(|s| s.is_finite() && *s >= 0.0),
        _ => raw.text().and_then(parse_seconds),
    };
    secs.ok_or_else(|| format!("{name} must be a number of seconds, 0 or more, like 12 or 12.5"))
}

/// `timeStamp`: seconds (`12.5`), a share of the duration (`25%`), a frame
/// number (`f1234`, from 0 in presentation order), `auto` for the best
/// frame, or `auto:30` for the best frame near a time.
pub fn time(name: &str, raw: Raw) -> Result<TimeSpec, String> {
    let bad = || {
        format!(
            "{name} must be seconds (12.5), a percentage of the duration (25%), \
             a frame number (f1234), auto, or auto near a time (auto:30)"
        )
    };
    let Some(text) = raw.text() else {
        return seconds(name, raw)
            .map(|s| TimeSpec::At(seconds_to_us(s)))
            .map_err(|_| bad());
    };
    if text == "auto" {
        return Ok(TimeSpec::Auto);
    }
    if let Some(near) = text.strip_prefix("auto:") {
        return parse_seconds(near)
            .map(|s| TimeSpec::Near(seconds_to_us(s)))
            .ok_or_else(bad);
    }
    if let Some(percent) = text.strip_suffix('%') {
        return parse_seconds(percent)
            .filter(|p| *p <= 100.0)
            .map(|p| TimeSpec::Fraction((p / 100.0 * f64::from(WHOLE)).round() as u32))
            .ok_or_else(bad);
    }
    if let Some(number) = text.strip_prefix('f') {
        let digits = !number.is_empty()
            && number.len() <= MAX_FRAME_DIGITS
            && number.bytes().all(|b| b.is_ascii_digit());
        return digits
            .then(|| number.parse().ok())
            .flatten()
            .map(TimeSpec::Frame)
            .ok_or_else(bad);
    }
    parse_seconds(text)
        .map(|s| TimeSpec::At(seconds_to_us(s)))
        .ok_or_else(bad)
}

/// Digits a frame number may have (a day at 1000 fps has 8).
const MAX_FRAME_DIGITS: usize = 12;

/// `snap`: `keyframe` (the keyframe at or before the moment) or `exact`
/// (the default: the frame at the moment).
pub fn snap(name: &str, raw: Raw) -> Result<bool, String> {
    match raw.text() {
        Some("keyframe") => Ok(true),
        Some("exact") => Ok(false),
        _ => Err(format!("{name} must be keyframe or exact")),
    }
}

/// Collects the errors of one request's parameters under one location
/// prefix (`query`, `body`).
pub struct Fields<'e> {
    at: &'static str,
    errors: &'e mut Vec<FieldError>,
}

impl<'e> Fields<'e> {
    pub fn new(at: &'static str, errors: &'e mut Vec<FieldError>) -> Fields<'e> {
        Fields { at, errors }
    }

    /// Checks `raw` (parameter `name`) with `check`; its error is recorded
    /// at `{at}.{name}`.
    pub fn check<T>(
        &mut self,
        name: &str,
        raw: Raw,
        check: impl FnOnce(&str, Raw) -> Result<T, String>,
    ) -> Option<T> {
        match check(name, raw) {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(name, &raw.shown(), message);
                None
            }
        }
    }

    /// Records an error of parameter `name`.
    pub fn error(&mut self, name: &str, value: &str, message: impl Into<String>) {
        let location = if name.is_empty() {
            self.at.to_owned()
        } else {
            format!("{}.{name}", self.at)
        };
        self.errors.push(FieldError::new(&location, value, message));
    }
}

/// A `timeStamp` value in any of its forms (see [`time`]).
pub fn parse_time(value: &str) -> Option<TimeSpec> {
    time("timeStamp", Raw::Text(value)).ok()
}

/// Seconds to the canonical microseconds (times past the end all mean the
/// last frame, so very large ones are capped).
pub fn seconds_to_us(secs: f64) -> u64 {
    (secs.min(MAX_TIME_SECS) * 1e6).round() as u64
}

pub(crate) fn parse_quality(value: &str) -> Option<u8> {
    quality("quality", Raw::Text(value)).ok()
}

/// 1 to `max`, in plain digits (at most 6 of them).
pub(crate) fn parse_count(value: &str, max: u32) -> Option<u32> {
    if value.is_empty() || value.len() > 6 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u32>().ok().filter(|v| (1..=max).contains(v))
}

/// Seconds as a plain decimal: digits, an optional fraction. No sign, no
/// exponent, no `inf`/`nan`.
pub fn parse_seconds(value: &str) -> Option<f64> {
    let (int, frac) = match value.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (value, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let ok = value.len() <= 32
        && digits(int)
        && frac.is_none_or(|f| !f.is_empty() && digits(f))
        && !(int.is_empty() && frac.is_none());
    if !ok {
        return None;
    }
    let secs: f64 = value.parse().ok()?;
    secs.is_finite().then_some(secs)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn one_rule_for_text_and_json() {
        assert_eq!(dimension("width", Raw::Text("320")), Ok(320));
        assert_eq!(dimension("width", Raw::Json(&json!(320))), Ok(320));
        assert_eq!(dimension("width", Raw::Json(&json!("320"))), Ok(320));
        for bad in [
            json!(0),
            json!(4097),
            json!(-1),
            json!(3.5),
            json!("+3"),
            json!(true),
        ] {
            assert_eq!(
                dimension("width", Raw::Json(&bad)).unwrap_err(),
                "width must be an integer between 1 and 4096",
                "{bad}"
            );
        }
        assert!(quality("quality", Raw::Text("101")).is_err());
        assert_eq!(quality("quality", Raw::Json(&json!(80))), Ok(80));
        assert_eq!(fit("fit", Raw::Text("max")), Ok(Fit::Contain));
        assert_eq!(fit("fit", Raw::Json(&json!("smart"))), Ok(Fit::Smart));
        assert_eq!(
            fit("fit", Raw::Text("zoom")).unwrap_err(),
            "fit must be crop, smart, contain, fill or pad (or max, scale)"
        );
        assert_eq!(format("format", Raw::Text("JPG")), Ok(Format::Jpeg));
        assert_eq!(
            format("format", Raw::Text("gif")).unwrap_err(),
            "format must be webp, jpg, png or avif"
        );
        assert_eq!(time("t", Raw::Text("auto")), Ok(TimeSpec::Auto));
        assert_eq!(
            time("t", Raw::Json(&json!(1.5))),
            Ok(TimeSpec::At(1_500_000))
        );
        assert_eq!(time("t", Raw::Text("1.5")), Ok(TimeSpec::At(1_500_000)));
        assert_eq!(time("t", Raw::Text("25%")), Ok(TimeSpec::Fraction(250_000)));
        assert_eq!(time("t", Raw::Text("100%")), Ok(TimeSpec::Fraction(WHOLE)));
        assert_eq!(time("t", Raw::Text("0.5%")), Ok(TimeSpec::Fraction(5_000)));
        assert_eq!(time("t", Raw::Text("f0")), Ok(TimeSpec::Frame(0)));
        assert_eq!(time("t", Raw::Text("f1234")), Ok(TimeSpec::Frame(1234)));
        assert_eq!(
            time("t", Raw::Json(&json!("auto:30"))),
            Ok(TimeSpec::Near(30_000_000))
        );
        assert_eq!(
            time("t", Raw::Text("auto:0.5")),
            Ok(TimeSpec::Near(500_000))
        );
        for bad in [
            "-1",
            "1e3",
            "inf",
            "",
            ".",
            "101%",
            "-5%",
            "%",
            "f",
            "f-1",
            "F12",
            "f1.5",
            "f1234567890123",
            "auto:",
            "auto:-1",
            "auto:x",
            "Auto",
            "25 %",
        ] {
            assert!(time("t", Raw::Text(bad)).is_err(), "{bad}");
        }
        assert!(time("t", Raw::Json(&json!(-1))).is_err());
    }

    #[test]
    fn errors_carry_the_callers_location() {
        let mut errors = Vec::new();
        let mut fields = Fields::new("body", &mut errors);
        assert_eq!(fields.check("width", Raw::Json(&json!(0)), dimension), None);
        assert_eq!(fields.check("fit", Raw::Text("crop"), fit), Some(Fit::Crop));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].location, "body.width");
        assert_eq!(errors[0].value, "0");
    }
}
