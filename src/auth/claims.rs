//! Checking a verified token's claims against the URL: who it is for
//! (`sub`, `aud`, `org`, `env`) and which picture parameters it binds. Pure.

use serde_json::{Map, Value};

use super::AuthError;
use crate::domain::Format;
use crate::request::fields::{self, Raw};
use crate::request::Params;

/// Audiences a thumbnail token may carry (`t` for signers written for
/// Mux-style tokens).
pub const AUDIENCES: [&str; 2] = ["thumbnail", "t"];
/// Audiences of a storyboard token (`s`: Mux-style).
pub const STORYBOARD_AUDIENCES: [&str; 2] = ["storyboard", "s"];
/// Audiences of an animated preview's token (`g`: Mux-style, for GIFs).
pub const ANIMATED_AUDIENCES: [&str; 3] = ["animated", "gif", "g"];

/// What a valid token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `exp`, Unix seconds.
    pub expires_at: u64,
    /// Parameters the token fixes.
    pub bound: Params,
    /// The output format the token fixes, if any.
    pub format: Option<Format>,
    /// The token fixes the format as `auto` (the URL must say `.auto`).
    pub format_auto: bool,
}

/// The URL a token is checked against.
pub struct Target<'a> {
    pub org: &'a str,
    pub env: &'a str,
    pub key: &'a str,
    /// The `aud` values that name this kind of picture.
    pub audiences: &'a [&'a str],
}

impl<'a> Target<'a> {
    /// A thumbnail of `key`.
    pub fn thumbnail(org: &'a str, env: &'a str, key: &'a str) -> Target<'a> {
        Target {
            org,
            env,
            key,
            audiences: &AUDIENCES,
        }
    }
}

/// Checks claims whose signature, `exp` and `nbf` are already verified.
pub fn check(claims: &Value, target: &Target) -> Result<Grant, AuthError> {
    let claims = claims.as_object().ok_or(AuthError::Malformed)?;
    if claims.get("sub").and_then(Value::as_str) != Some(target.key) {
        return Err(AuthError::Mismatch("video (sub)"));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => target.audiences.contains(&a.as_str()),
        Some(Value::Array(list)) => list
            .iter()
            .any(|a| a.as_str().is_some_and(|a| target.audiences.contains(&a))),
        _ => false,
    };
    if !aud_ok {
        return Err(AuthError::Mismatch("audience (aud)"));
    }
    for (name, expected, what) in [
        ("org", target.org, "org"),
        ("env", target.env, "environment (env)"),
    ] {
        if let Some(v) = claims.get(name) {
            if v.as_str() != Some(expected) {
                return Err(AuthError::Mismatch(what));
            }
        }
    }
    let expires_at = claims
        .get("exp")
        .and_then(Value::as_f64)
        .filter(|e| e.is_finite() && *e >= 0.0)
        .ok_or(AuthError::NoExpiry)? as u64;
    Ok(Grant {
        expires_at,
        bound: bound_params(claims)?,
        format_auto: claims.get("format").and_then(Value::as_str) == Some("auto"),
        format: match claims.get("format") {
            Some(Value::String(s)) if s == "auto" => None,
            None => None,
            Some(v) => Some(
                fields::format("format", Raw::Json(v))
                    .map_err(|_| AuthError::BadClaim("format"))?,
            ),
        },
    })
}

/// A claim checked by the one parser of picture parameters; a bad one is
/// named, never echoed.
fn claim<T>(
    claims: &Map<String, Value>,
    name: &'static str,
    check: impl FnOnce(&str, Raw) -> Result<T, String>,
) -> Result<Option<T>, AuthError> {
    claims
        .get(name)
        .map(|v| check(name, Raw::Json(v)).map_err(|_| AuthError::BadClaim(name)))
        .transpose()
}

fn bound_params(claims: &Map<String, Value>) -> Result<Params, AuthError> {
    let mut time = None;
    for name in ["timeStamp", "time"] {
        let Some(v) = claims.get(name) else { continue };
        let t = fields::time(name, Raw::Json(v)).map_err(|_| AuthError::BadClaim("timeStamp"))?;
        if time.is_some_and(|bound| bound != t) {
            return Err(AuthError::BadClaim("timeStamp"));
        }
        time = Some(t);
    }
    // A token that fixes the moment fixes it exactly unless it says
    // `snap`: a URL cannot move it to a keyframe.
    let snap = claim(claims, "snap", fields::snap)?.or(time.map(|_| false));
    Ok(Params {
        width: claim(claims, "width", fields::dimension)?,
        height: claim(claims, "height", fields::dimension)?,
        time,
        fit: claim(claims, "fit", fields::fit)?,
        quality: claim(claims, "quality", fields::quality)?,
        snap,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::{Fit, TimeSpec};

    const T: Target = Target {
        org: "acme",
        env: "prod",
        key: "a/b.mp4",
        audiences: &AUDIENCES,
    };

    #[test]
    fn subject_audience_org_env() {
        let ok = json!({"sub": "a/b.mp4", "aud": "thumbnail", "exp": 100});
        assert_eq!(check(&ok, &T).unwrap().expires_at, 100);
        assert!(check(
            &json!({"sub": "a/b.mp4", "aud": ["x", "t"], "exp": 1, "org": "acme", "env": "prod"}),
            &T
        )
        .is_ok());
        for (bad, what) in [
            (
                json!({"sub": "other.mp4", "aud": "thumbnail", "exp": 1}),
                "video (sub)",
            ),
            (json!({"aud": "thumbnail", "exp": 1}), "video (sub)"),
            (
                json!({"sub": "a/b.mp4", "aud": "video", "exp": 1}),
                "audience (aud)",
            ),
            (json!({"sub": "a/b.mp4", "exp": 1}), "audience (aud)"),
            (
                json!({"sub": "a/b.mp4", "aud": "t", "exp": 1, "org": "evil"}),
                "org",
            ),
            (
                json!({"sub": "a/b.mp4", "aud": "t", "exp": 1, "env": "staging"}),
                "environment (env)",
            ),
        ] {
            assert_eq!(check(&bad, &T), Err(AuthError::Mismatch(what)), "{bad}");
        }
    }

    #[test]
    fn bound_parameters() {
        let claims = json!({"sub": "a/b.mp4", "aud": "t", "exp": 1, "width": 320, "height": "180",
                            "time": 12.5, "fit": "pad", "quality": 70, "format": "jpg"});
        let g = check(&claims, &T).unwrap();
        assert_eq!(
            g.bound,
            Params {
                width: Some(320),
                height: Some(180),
                time: Some(TimeSpec::At(12_500_000)),
                fit: Some(Fit::Pad),
                quality: Some(70),
                // A bound time binds the exact frame.
                snap: Some(false),
            }
        );
        assert_eq!(g.format, Some(Format::Jpeg));
        for (name, value) in [
            ("width", json!(0)),
            ("width", json!(5000)),
            ("quality", json!("x")),
            ("fit", json!("zoom")),
            ("timeStamp", json!(-1)),
            ("format", json!("gif")),
        ] {
            let mut c = json!({"sub": "a/b.mp4", "aud": "t", "exp": 1});
            c[name] = value;
            assert!(
                matches!(check(&c, &T), Err(AuthError::BadClaim(_))),
                "{name}"
            );
        }
    }
}
