//! Animated preview URLs: `/v1/animated/{org}/{env}/{key}.{webp|gif}`
//! parsed and validated into an [`AnimatedRequest`]. Pure.

pub use crate::domain::animated::{
    AnimatedFormat, AnimatedLimits, AnimatedSpec, DEFAULT_FPS, DEFAULT_SECS, DEFAULT_WIDTH,
};

use super::{
    known_params, parse_count, parse_path, parse_quality, parse_seconds, seconds_to_us, FieldError,
};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnimatedRequest {
    pub org: String,
    pub env: String,
    pub key: String,
    pub spec: AnimatedSpec,
}

/// Parses the path after `/v1/animated/` and the query; the token apart.
pub fn parse(
    path_tail: &str,
    query: Option<&str>,
    limits: &AnimatedLimits,
) -> Result<(AnimatedRequest, Option<String>), Vec<FieldError>> {
    let mut errors = Vec::new();
    let path = parse_path(path_tail, "webp or gif", &mut errors);
    let format = path
        .as_ref()
        .and_then(|p| match p.ext.to_ascii_lowercase().as_str() {
            "webp" => Some(AnimatedFormat::Webp),
            "gif" => Some(AnimatedFormat::Gif),
            _ => {
                errors.push(FieldError::new(
                    "path.format",
                    p.ext,
                    "an animated preview is .webp or .gif",
                ));
                None
            }
        });
    let (mut start, mut end, mut fps, mut width, mut quality, mut token) = (
        None,
        None,
        DEFAULT_FPS.min(limits.max_fps),
        DEFAULT_WIDTH.min(limits.max_width),
        None,
        None,
    );
    let params = known_params(
        query,
        &["start", "end", "fps", "width", "quality", "token"],
        &mut errors,
    );
    for (name, value) in params {
        let loc = format!("query.{name}");
        let mut invalid = |m: String| errors.push(FieldError::new(&loc, &value, m));
        match name.as_ref() {
            "start" | "end" => match parse_seconds(&value) {
                Some(s) if name == "start" => start = Some(seconds_to_us(s)),
                Some(s) => end = Some(seconds_to_us(s)),
                None => invalid(format!("{name} must be a non-negative number of seconds")),
            },
            "fps" => match parse_count(&value, limits.max_fps) {
                Some(n) => fps = n,
                None => invalid(format!(
                    "fps must be an integer between 1 and {}",
                    limits.max_fps
                )),
            },
            "width" => match parse_count(&value, limits.max_width) {
                Some(n) => width = n,
                None => invalid(format!(
                    "width must be an integer between 1 and {}",
                    limits.max_width
                )),
            },
            "quality" => match parse_quality(&value) {
                Some(q) => quality = Some(q),
                None => invalid("quality must be an integer between 1 and 100".into()),
            },
            _ => token = Some(value.to_string()),
        }
    }
    let start_us = start.unwrap_or(0);
    let max_us = seconds_to_us(limits.max_secs);
    let end_us = end.unwrap_or(start_us + seconds_to_us(DEFAULT_SECS).min(max_us));
    if end_us <= start_us {
        errors.push(FieldError::new(
            "query.end",
            &format!("{}", end_us as f64 / 1e6),
            "end must be after start",
        ));
    } else if end_us - start_us > max_us {
        errors.push(FieldError::new(
            "query.end",
            &format!("{}", end_us as f64 / 1e6),
            format!("end - start must be at most {} seconds", limits.max_secs),
        ));
    }
    match (path, format) {
        (Some(path), Some(format)) if errors.is_empty() => Ok((
            AnimatedRequest {
                org: path.org,
                env: path.env,
                key: path.key,
                spec: AnimatedSpec {
                    format,
                    start_us,
                    end_us,
                    fps,
                    width,
                    quality: (format == AnimatedFormat::Webp)
                        .then(|| quality.unwrap_or(super::DEFAULT_QUALITY)),
                },
            },
            token,
        )),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: AnimatedLimits = AnimatedLimits {
        max_secs: 10.0,
        max_fps: 30,
        max_width: 640,
    };

    #[test]
    fn defaults_and_canonical_values() {
        let (r, _) = parse("o/e/a.mp4.gif", None, &LIMITS).unwrap();
        assert_eq!(r.key, "a.mp4");
        let s = &r.spec;
        assert_eq!(
            (s.format, s.start_us, s.end_us, s.fps, s.width, s.quality),
            (AnimatedFormat::Gif, 0, 5_000_000, 15, 320, None)
        );
        let (a, _) = parse("o/e/a.webp", Some("start=2&fps=10"), &LIMITS).unwrap();
        let (b, _) = parse(
            "o/e/a.webp",
            Some("fps=10&start=2.0&end=7&quality=80"),
            &LIMITS,
        )
        .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn limits_are_enforced() {
        for q in [
            "start=1&end=12",
            "end=0",
            "start=5&end=5",
            "fps=31",
            "width=641",
            "fps=0",
        ] {
            let e = parse("o/e/a.gif", Some(q), &LIMITS).expect_err(q);
            assert!(e[0].location.starts_with("query."), "{q}: {e:?}");
        }
        parse(
            "o/e/a.gif",
            Some("start=1&end=11&fps=30&width=640"),
            &LIMITS,
        )
        .unwrap();
        // Defaults stay within tighter configured limits.
        let tight = AnimatedLimits {
            max_secs: 2.0,
            max_fps: 5,
            max_width: 64,
        };
        let (r, _) = parse("o/e/a.gif", None, &tight).unwrap();
        assert_eq!(
            (r.spec.fps, r.spec.width, r.spec.end_us),
            (5, 64, 2_000_000)
        );
        assert_eq!(
            parse("o/e/a.mp4", None, &LIMITS).unwrap_err()[0].location,
            "path.format"
        );
    }
}
