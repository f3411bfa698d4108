//! Thumbnail requests: parsing and validating the URL into a typed
//! [`ThumbnailRequest`], and its canonical [`RenderKey`].
//!
//! Pure logic, no I/O: the HTTP layer hands in the raw path tail and query,
//! and gets back either a request or every problem found with it.

use std::borrow::Cow;
use std::fmt;

use percent_encoding::percent_decode_str;

pub mod animated;
pub mod fields;
pub mod storyboard;

pub use crate::domain::{is_valid_id, FieldError, DEFAULT_QUALITY};
use crate::domain::{Fit, Format, RenderSpec, TimeSpec};
pub(crate) use fields::{parse_count, parse_quality};
pub use fields::{parse_seconds, parse_time, seconds_to_us, Fields, Raw};

/// Picture parameters as a URL (or a signed token) states them, before
/// defaults: `None` means "not given".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// `At` (microseconds from the start) or `Auto` (the best frame);
    /// `None` is the middle.
    pub time: Option<TimeSpec>,
    pub fit: Option<Fit>,
    pub quality: Option<u8>,
    /// `snap=keyframe` (true) or `snap=exact` (false).
    pub snap: Option<bool>,
}

impl Params {
    /// The render spec with defaults filled in and canonicalised: `fit` only
    /// with both dimensions, `quality` only for lossy formats.
    pub fn to_spec(&self, format: Format) -> RenderSpec {
        let both = self.width.is_some() && self.height.is_some();
        RenderSpec {
            format,
            width: self.width,
            height: self.height,
            fit: if both {
                Some(self.fit.unwrap_or(Fit::Crop))
            } else {
                None
            },
            quality: if format.is_lossy() {
                Some(self.quality.unwrap_or(DEFAULT_QUALITY))
            } else {
                None
            },
            time: self.time.unwrap_or(TimeSpec::Middle),
            // (`auto` chooses its frame: nothing to snap; refused where
            // it is parsed.)
            snap: self.snap == Some(true) && !self.time.is_some_and(TimeSpec::is_auto),
        }
    }

    /// Applies parameters fixed by a signed token: each one the token binds
    /// must be absent here or equal; absent ones take the token's value.
    /// Returns the name of the first parameter that contradicts the token.
    pub fn bind(&mut self, bound: &Params) -> Result<(), &'static str> {
        fn one<T: PartialEq + Copy>(
            mine: &mut Option<T>,
            bound: Option<T>,
            name: &'static str,
        ) -> Result<(), &'static str> {
            match (*mine, bound) {
                (Some(a), Some(b)) if a != b => Err(name),
                (_, Some(b)) => {
                    *mine = Some(b);
                    Ok(())
                }
                _ => Ok(()),
            }
        }
        one(&mut self.width, bound.width, "width")?;
        one(&mut self.height, bound.height, "height")?;
        one(&mut self.time, bound.time, "timeStamp")?;
        one(&mut self.fit, bound.fit, "fit")?;
        one(&mut self.quality, bound.quality, "quality")?;
        one(&mut self.snap, bound.snap, "snap")
    }
}

/// A URL parsed and validated, before access checks and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRequest {
    pub org: String,
    pub env: String,
    pub key: String,
    /// With `auto`, the format negotiated (the HTTP layer sets it from
    /// `Accept`; JPEG until then).
    pub format: Format,
    /// The path ends in `.auto`: the format follows the client's `Accept`.
    pub auto: bool,
    pub params: Params,
    /// `?token=`, for signed environments.
    pub token: Option<String>,
}

impl ParsedRequest {
    pub fn into_request(self) -> ThumbnailRequest {
        ThumbnailRequest {
            spec: self.params.to_spec(self.format),
            org: self.org,
            env: self.env,
            key: self.key,
        }
    }
}

/// A validated request for one thumbnail. Its spec is canonical, so it is
/// also the thumbnail's identity: the same picture is one value however its
/// URL was written (parameter order, aliases, `12` vs `12.000`, a `fit` that
/// does not apply, a `quality` png ignores).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ThumbnailRequest {
    pub org: String,
    pub env: String,
    /// The video's key in the environment's source (decoded, validated).
    pub key: String,
    pub spec: RenderSpec,
}

/// A thumbnail's canonical identity: the cache key, and what job ids digest.
pub type RenderKey = ThumbnailRequest;

impl fmt::Display for RenderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.spec;
        write!(
            f,
            "{}/{}/{}.{}?",
            self.org,
            self.env,
            self.key,
            s.format.ext()
        )?;
        if let Some(w) = s.width {
            write!(f, "w={w}&")?;
        }
        if let Some(h) = s.height {
            write!(f, "h={h}&")?;
        }
        if let Some(fit) = s.fit {
            write!(f, "fit={}&", fit.as_str())?;
        }
        if let Some(q) = s.quality {
            write!(f, "q={q}&")?;
        }
        match s.time {
            TimeSpec::Middle => write!(f, "t=mid"),
            TimeSpec::Auto => write!(f, "t=auto"),
            TimeSpec::At(us) => write!(f, "t={us}us"),
            TimeSpec::Near(us) => write!(f, "t=auto:{us}us"),
            TimeSpec::Fraction(millionths) => write!(f, "t={millionths}ppm"),
            TimeSpec::Frame(n) => write!(f, "t=f{n}"),
            TimeSpec::Keyframe(us) => write!(f, "t=key:{us}us"),
        }?;
        if s.snap {
            write!(f, "&snap=keyframe")?;
        }
        Ok(())
    }
}

impl ThumbnailRequest {
    /// An owned copy of its identity (a cache entry keeps one).
    pub fn render_key(&self) -> RenderKey {
        self.clone()
    }

    /// The request with its width and height snapped to the environment's
    /// allowed sizes ([`snap`]; an empty list allows any), borrowed when
    /// nothing changes.
    pub fn snapped(&self, widths: &[u32], heights: &[u32]) -> Cow<'_, ThumbnailRequest> {
        let width = self.spec.width.map(|w| snap(w, widths));
        let height = self.spec.height.map(|h| snap(h, heights));
        if (width, height) == (self.spec.width, self.spec.height) {
            return Cow::Borrowed(self);
        }
        let mut snapped = self.clone();
        snapped.spec.width = width;
        snapped.spec.height = height;
        Cow::Owned(snapped)
    }
}

/// The allowed size nearest to `requested`, the larger of two as near;
/// `requested` itself when `allowed` is empty.
pub fn snap(requested: u32, allowed: &[u32]) -> u32 {
    allowed
        .iter()
        .copied()
        .min_by_key(|&a| (a.abs_diff(requested), std::cmp::Reverse(a)))
        .unwrap_or(requested)
}

/// Parses `{org}/{env}/{key}.{ext}` (the path after `/v1/thumbnail/`, still
/// percent-encoded) and the raw query string.
pub fn parse(path_tail: &str, query: Option<&str>) -> Result<ParsedRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    let path = parse_path(path_tail, FORMATS, &mut errors);
    let format = path.as_ref().and_then(|p| {
        if p.ext.eq_ignore_ascii_case("auto") {
            return Some((Format::Jpeg, true));
        }
        match Format::from_ext(p.ext) {
            Some(f) => Some((f, false)),
            None => {
                errors.push(FieldError::new(
                    "path.format",
                    p.ext,
                    format!("format must be {FORMATS}"),
                ));
                None
            }
        }
    });
    let (params, token) = parse_query(query.unwrap_or(""), &mut errors);
    match (path, format) {
        (Some(path), Some((format, auto))) if errors.is_empty() => Ok(ParsedRequest {
            org: path.org,
            env: path.env,
            key: path.key,
            format,
            auto,
            params,
            token,
        }),
        _ => Err(errors),
    }
}

/// The extensions a thumbnail URL may end in, for messages.
const FORMATS: &str = "webp, jpg, jpeg, png, avif or auto";

/// `{org}/{env}/{key}.{ext}` split and checked; `ext` as written.
pub(crate) struct Path<'a> {
    pub org: String,
    pub env: String,
    pub key: String,
    pub ext: &'a str,
}

/// Splits `{org}/{env}/{key}.{ext}` at the last dot of the last segment
/// (`clips/a.mp4.webp`: key `clips/a.mp4`, ext `webp`) and validates the
/// ids and the key; `exts` names the extensions taken, for messages.
/// Percent-encoded `/`, `\`, `.` and control bytes are refused outright in
/// keys: they only serve to smuggle path segments past checks.
pub(crate) fn parse_path<'a>(
    path_tail: &'a str,
    exts: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Path<'a>> {
    let mut parts = path_tail.splitn(3, '/');
    let org = parts.next().unwrap_or_default();
    let env = parts.next().unwrap_or_default();
    let raw = parts.next().unwrap_or_default();
    let org = check_id(org, "path.org", errors);
    let env = check_id(env, "path.env", errors);
    let last_segment_start = raw.rfind('/').map_or(0, |i| i + 1);
    let Some(dot) = raw[last_segment_start..]
        .rfind('.')
        .map(|i| i + last_segment_start)
    else {
        errors.push(FieldError::new(
            "path.format",
            raw,
            format!(
                "the path must end in .{}",
                exts.replace(", ", ", .").replace(" or ", " or .")
            ),
        ));
        return None;
    };
    let (raw_key, ext) = (&raw[..dot], &raw[dot + 1..]);
    let key = check_key(raw_key, errors);
    Some(Path {
        org: org?,
        env: env?,
        key: key?,
        ext,
    })
}

fn check_id(raw: &str, location: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    if is_valid_id(raw) {
        Some(raw.to_owned())
    } else {
        errors.push(FieldError::new(
            location,
            raw,
            "must be 1-64 letters, digits, '-' or '_'",
        ));
        None
    }
}

/// Validates a raw (percent-encoded) video key; the decoded key on success.
pub fn parse_key(raw: &str) -> Result<String, Vec<FieldError>> {
    let mut errors = Vec::new();
    check_key(raw, &mut errors).ok_or(errors)
}

fn check_key(raw: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let fail = |errors: &mut Vec<FieldError>, msg: &str| {
        errors.push(FieldError::new("path.key", raw, msg));
        None
    };
    if raw.is_empty() {
        return fail(errors, "the video key is empty");
    }
    if raw.len() > 1024 {
        return fail(errors, "the video key is longer than 1024 bytes");
    }
    // Look at every escape before decoding: an escaped separator or dot is
    // refused whatever it would decode to in context.
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b'/' | b'\\' | b'.') => {
                    return fail(
                        errors,
                        "percent-encoded '/', '\\' or '.' is not allowed in a key",
                    )
                }
                Some(b) if b < 0x20 || b == 0x7f => {
                    return fail(errors, "control characters are not allowed in a key")
                }
                Some(_) => i += 3,
                None => return fail(errors, "malformed percent-encoding in the key"),
            }
        } else {
            i += 1;
        }
    }
    let Ok(key) = percent_decode_str(raw).decode_utf8() else {
        return fail(errors, "the key is not valid UTF-8");
    };
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '-' | '_')))
    {
        let msg = if c == '\\' {
            "backslashes are not allowed in a key".to_owned()
        } else if c == '\0' {
            "NUL is not allowed in a key".to_owned()
        } else {
            format!("{c:?} is not allowed in a key: use letters, digits, '/', '.', '-' and '_'")
        };
        return fail(errors, &msg);
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return fail(errors, "the key has an empty path segment");
        }
        if segment == "." || segment == ".." {
            return fail(errors, "'.' and '..' segments are not allowed in a key");
        }
    }
    Some(key.into_owned())
}

fn parse_query(query: &str, errors: &mut Vec<FieldError>) -> (Params, Option<String>) {
    let mut params = Params::default();
    let mut token = None;
    let mut near: Option<(f64, Cow<str>)> = None;
    // Parameters taken so far, by canonical name, with their values.
    let mut seen: Vec<(&'static str, Cow<str>)> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let canonical = match name.as_ref() {
            "width" => "width",
            "height" => "height",
            "fit" => "fit",
            "quality" => "quality",
            "token" => "token",
            "timeStamp" | "time" => "timeStamp",
            "near" => "near",
            "snap" => "snap",
            _ => continue, // unknown parameters are ignored
        };
        let loc = || format!("query.{name}");
        if let Some((_, prev)) = seen.iter().find(|(n, _)| *n == canonical) {
            if *prev != value {
                errors.push(FieldError::new(
                    &loc(),
                    if canonical == "token" {
                        "(token)"
                    } else {
                        &value
                    },
                    format!("{canonical} is given twice with different values"),
                ));
            }
            continue;
        }
        let mut fields = Fields::new("query", errors);
        let raw = Raw::Text(&value);
        match canonical {
            "width" => {
                params.width = fields.check(&name, raw, |_, raw| fields::dimension("width", raw))
            }
            "height" => {
                params.height = fields.check(&name, raw, |_, raw| fields::dimension("height", raw))
            }
            "timeStamp" => {
                params.time = fields.check(&name, raw, |_, raw| fields::time("timeStamp", raw))
            }
            "near" => {
                near = fields
                    .check(&name, raw, fields::seconds)
                    .map(|s| (s, value.clone()))
            }
            "snap" => params.snap = fields.check(&name, raw, fields::snap),
            "fit" => params.fit = fields.check(&name, raw, fields::fit),
            "quality" => params.quality = fields.check(&name, raw, fields::quality),
            _ => token = Some(value.to_string()),
        }
        seen.push((canonical, value));
    }
    // `near=30` with `timeStamp=auto` is `timeStamp=auto:30`.
    if let Some((secs, value)) = near {
        let near = TimeSpec::Near(seconds_to_us(secs));
        match params.time {
            Some(TimeSpec::Auto) => params.time = Some(near),
            Some(t) if t == near => {}
            Some(TimeSpec::Near(_)) => errors.push(FieldError::new(
                "query.near",
                &value,
                "near differs from the time in timeStamp=auto:...",
            )),
            _ => errors.push(FieldError::new(
                "query.near",
                &value,
                "near applies to timeStamp=auto (the best frame near a time)",
            )),
        }
    }
    if params.snap == Some(true) && params.time.is_some_and(TimeSpec::is_auto) {
        errors.push(FieldError::new(
            "query.snap",
            "keyframe",
            "snap applies to a time, not to auto (which chooses its frame)",
        ));
    }
    (params, token)
}

/// The format a `.auto` URL answers with, from the request's `Accept`:
/// AVIF if the client names `image/avif`, else WebP if it names
/// `image/webp`, else JPEG (what every client shows). Wildcards do not
/// count: `image/*` says nothing about which formats a browser decodes.
pub fn negotiate(accept: Option<&str>) -> Format {
    let names = |mime: &str| {
        accept.is_some_and(|a| {
            a.split(',').any(|range| {
                let mut parts = range.split(';');
                let kind = parts.next().unwrap_or_default().trim();
                let refused = parts.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                kind.eq_ignore_ascii_case(mime) && !refused
            })
        })
    };
    if names("image/avif") {
        Format::Avif
    } else if names("image/webp") {
        Format::Webp
    } else {
        Format::Jpeg
    }
}

/// The parameters of `query` named in `known`, in order; others are
/// ignored, and one given twice is reported (and taken once).
pub(crate) fn known_params<'q>(
    query: Option<&'q str>,
    known: &[&str],
    errors: &mut Vec<FieldError>,
) -> Vec<(Cow<'q, str>, Cow<'q, str>)> {
    let mut out: Vec<(Cow<str>, Cow<str>)> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !known.contains(&name.as_ref()) {
            continue;
        }
        if out.iter().any(|(n, _)| *n == name) {
            errors.push(FieldError::new(
                &format!("query.{name}"),
                &value,
                format!("{name} is given twice"),
            ));
            continue;
        }
        out.push((name, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(path: &str, query: &str) -> ThumbnailRequest {
        parse(path, Some(query))
            .unwrap_or_else(|e| panic!("{path}?{query}: {e:?}"))
            .into_request()
    }

    fn err(path: &str, query: &str) -> Vec<FieldError> {
        parse(path, Some(query)).expect_err(&format!("{path}?{query} should fail"))
    }

    #[test]
    fn splits_key_and_format_at_the_last_dot() {
        let r = ok("demo/local/clips/a.mp4.webp", "");
        assert_eq!(
            (r.org.as_str(), r.env.as_str(), r.key.as_str()),
            ("demo", "local", "clips/a.mp4")
        );
        assert_eq!(r.spec.format, Format::Webp);
        assert_eq!(ok("o/e/a.JPEG", "").spec.format, Format::Jpeg);
        assert_eq!(ok("o/e/a.mp4.png", "").spec.format, Format::Png);
    }

    #[test]
    fn rejects_bad_keys_before_anything_else() {
        for path in [
            "o/e/.webp",
            "o/e/a//b.webp",
            "o/e/../a.webp",
            "o/e/a/./b.webp",
            "o/e/a\\b.webp",
            "o/e/a%2Fb.webp",
            "o/e/a%2fb.webp",
            "o/e/%2e%2e/a.webp",
            "o/e/a%5Cb.webp",
            "o/e/a%00b.webp",
            "o/e/a%zz.webp",
            "o/e/a b.webp",
            "o/e/a.gif",
            "o/e/a",
            "o/e/a.mp4.",
            "o//a.webp",
            "/e/a.webp",
        ] {
            let errors = err(path, "");
            assert!(
                errors[0].location.starts_with("path."),
                "{path}: {errors:?}"
            );
        }
    }

    #[test]
    fn decodes_harmless_escapes() {
        assert_eq!(ok("o/e/%41b.webp", "").key, "Ab");
    }

    #[test]
    fn validates_parameters_and_reports_each() {
        let errors = err(
            "o/e/a.webp",
            "width=5000&height=0&timeStamp=-1&fit=zoom&quality=101",
        );
        let locations: Vec<_> = errors.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(
            locations,
            [
                "query.width",
                "query.height",
                "query.timeStamp",
                "query.fit",
                "query.quality"
            ]
        );
        assert_eq!(
            errors[0].message,
            "width must be an integer between 1 and 4096"
        );
        assert_eq!(errors[0].value, "5000");
        for t in [
            "nan", "NaN", "inf", "-inf", "1e3", "", ".", "abc", "+1", "1.", "infinity",
        ] {
            let q = format!("timeStamp={t}");
            assert_eq!(err("o/e/a.webp", &q)[0].location, "query.timeStamp", "{t}");
        }
        for w in ["1.5", "+3", "-1", "0", "4097", "abc", ""] {
            assert_eq!(
                err("o/e/a.webp", &format!("width={w}"))[0].location,
                "query.width",
                "{w}"
            );
        }
    }

    #[test]
    fn canonical_key_ignores_spelling() {
        let a = ok("o/e/a.webp", "width=320&timeStamp=12&foo=bar").render_key();
        let b = ok("o/e/a.webp", "time=12.000&width=0320&quality=80").render_key();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), b.to_string());
        // fit only matters with both dimensions; quality not for png
        let c = ok("o/e/a.png", "width=10&fit=pad&quality=5").render_key();
        let d = ok("o/e/a.png", "width=10").render_key();
        assert_eq!(c, d);
        // crop is the default fit
        let e = ok("o/e/a.jpg", "width=10&height=20").render_key();
        let f = ok("o/e/a.jpeg", "height=20&width=10&fit=crop").render_key();
        assert_eq!(e, f);
        assert_ne!(a, ok("o/e/a.webp", "width=320&timeStamp=12.5").render_key());
        assert_eq!(ok("o/e/a.webp", "").spec.time, TimeSpec::Middle);
    }

    #[test]
    fn sizes_snap_to_the_nearest_allowed_the_larger_on_a_tie() {
        let allowed = [1280, 160, 320, 640];
        assert_eq!(snap(317, &allowed), 320);
        assert_eq!(snap(320, &allowed), 320);
        assert_eq!(snap(240, &allowed), 320, "a tie: the larger");
        assert_eq!(snap(239, &allowed), 160);
        assert_eq!(snap(1, &allowed), 160);
        assert_eq!(snap(4096, &allowed), 1280);
        assert_eq!(snap(317, &[]), 317, "no list: any size");
        let r = ok("o/e/a.webp", "width=317&height=100");
        let s = r.snapped(&allowed, &[]);
        assert_eq!((s.spec.width, s.spec.height), (Some(320), Some(100)));
        assert_eq!(
            *s,
            ok("o/e/a.webp", "width=320&height=100"),
            "one render key"
        );
        assert_eq!(
            r.snapped(&[], &[90, 180]).spec.height,
            Some(90),
            "heights by their own list"
        );
        assert!(matches!(r.snapped(&[], &[]), Cow::Borrowed(_)));
        let default_size = ok("o/e/a.webp", "");
        assert_eq!(default_size.snapped(&allowed, &allowed).spec.width, None);
    }

    #[test]
    fn accept_negotiation() {
        let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
        assert_eq!(negotiate(Some(chrome)), Format::Avif);
        assert_eq!(negotiate(Some("image/webp,*/*")), Format::Webp);
        assert_eq!(negotiate(Some("image/avif;q=0, image/webp")), Format::Webp);
        assert_eq!(negotiate(Some("IMAGE/WEBP")), Format::Webp);
        assert_eq!(negotiate(Some("image/*,*/*;q=0.8")), Format::Jpeg);
        assert_eq!(negotiate(None), Format::Jpeg);
        let p = parse("o/e/a.mp4.auto", None).unwrap();
        assert!(p.auto);
    }

    #[test]
    fn conflicting_duplicates_are_rejected() {
        assert_eq!(
            err("o/e/a.webp", "width=1&width=2")[0].location,
            "query.width"
        );
        assert_eq!(
            err("o/e/a.webp", "time=1&timeStamp=2")[0].location,
            "query.timeStamp"
        );
        ok("o/e/a.webp", "time=1&timeStamp=1");
    }

    #[test]
    fn tokens_bind_parameters() {
        let mut p = parse("o/e/a.webp", Some("width=320&token=abc")).unwrap();
        assert_eq!(p.token.as_deref(), Some("abc"));
        let bound = Params {
            width: Some(320),
            time: Some(TimeSpec::At(12_000_000)),
            ..Params::default()
        };
        p.params.bind(&bound).unwrap();
        assert_eq!(p.params.time, Some(TimeSpec::At(12_000_000)));
        let mut other = parse("o/e/a.webp", Some("width=640")).unwrap();
        assert_eq!(other.params.bind(&bound), Err("width"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(path in "[a-z%./\\\\0-9]{0,40}", query in "[a-zA-Z=&%.0-9-]{0,60}") {
            let _ = parse(&path, Some(&query));
        }

        #[test]
        fn accepted_keys_are_safe(path in "[a-z]{1,3}/[a-z]{1,3}/[a-zA-Z0-9%./_-]{1,40}") {
            if let Ok(r) = parse(&path, None).map(ParsedRequest::into_request) {
                proptest::prop_assert!(!r.key.split('/').any(|s| s.is_empty() || s == "." || s == ".."));
                proptest::prop_assert!(!r.key.contains('\\') && !r.key.contains('\0'));
            }
        }
    }
}
