//! A submission as the API receives it: its JSON validated into the exact
//! render a dynamic URL asks for ([`validate`]), the job id derived from
//! that render ([`job_id`]), and the URL itself ([`thumbnail_url`]). Pure.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::model::JobRequest;
use crate::domain::{FieldError, Fit, Format};
use crate::request::fields::{self, Fields, Raw};
use crate::request::{Params, ThumbnailRequest};

fn err(errors: &mut Vec<FieldError>, field: &str, value: &Value, message: &str) {
    errors.push(FieldError {
        message: message.to_owned(),
        location: format!("body.{field}"),
        value: match value {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        },
    });
}

/// A picture parameter of the body, absent or checked by the one parser.
fn param<T>(
    errors: &mut Vec<FieldError>,
    obj: &serde_json::Map<String, Value>,
    name: &str,
    check: impl FnOnce(&str, Raw) -> Result<T, String>,
) -> Option<T> {
    let raw = obj.get(name).filter(|v| !v.is_null())?;
    Fields::new("body", errors).check(name, Raw::Json(raw), check)
}

/// Validates one submission for video `key` of `org`. `default_env` applies
/// when the body names none. Unknown fields are ignored, as unknown query
/// parameters are. Error locations are relative to the submission (a batch
/// item's errors sit in that item's entry).
pub fn validate(
    body: &Value,
    org: &str,
    key: &str,
    default_env: Option<&str>,
) -> Result<JobRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError {
            message: "the body must be a JSON object".into(),
            location: "body".into(),
            value: String::new(),
        }]);
    };
    let int = |errors: &mut Vec<FieldError>,
               name: &str,
               min: u64,
               max: u64,
               required: bool|
     -> Option<u64> {
        match obj.get(name) {
            None | Some(Value::Null) => {
                if required {
                    err(errors, name, &Value::Null, &format!("{name} is required"));
                }
                None
            }
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Some(n),
                _ => {
                    err(
                        errors,
                        name,
                        v,
                        &format!("{name} must be an integer between {min} and {max}"),
                    );
                    None
                }
            },
        }
    };
    // The picture parameters, by the one parser URLs and tokens use too.
    let width = param(&mut errors, obj, "width", fields::dimension);
    if obj.get("width").is_none_or(Value::is_null) {
        err(&mut errors, "width", &Value::Null, "width is required");
    }
    let height = param(&mut errors, obj, "height", fields::dimension);
    // The moment: `timestampMs` (milliseconds, or "auto": the best frame),
    // or `timeStamp` in any form a URL takes ("12.5", "25%", "f1234",
    // "auto:30").
    let given = |name: &str| obj.get(name).is_some_and(|v| !v.is_null());
    let (auto_time, timestamp_ms, time) = if given("timeStamp") {
        if given("timestampMs") {
            err(
                &mut errors,
                "timeStamp",
                &obj["timeStamp"],
                "give timeStamp or timestampMs, not both",
            );
        }
        let time = param(&mut errors, obj, "timeStamp", fields::time);
        let ms = match time {
            Some(crate::domain::TimeSpec::At(us)) => Some(us / 1000),
            _ => None,
        };
        (false, ms, time)
    } else {
        let auto = obj.get("timestampMs").and_then(Value::as_str) == Some("auto");
        let ms = if auto {
            None
        } else {
            int(&mut errors, "timestampMs", 0, 1_000_000_000_000, true)
        };
        (auto, ms, None)
    };
    let snap = param(&mut errors, obj, "snap", fields::snap).unwrap_or(false);
    if snap && time.is_some_and(crate::domain::TimeSpec::is_auto) | auto_time {
        err(
            &mut errors,
            "snap",
            &obj["snap"],
            "snap applies to a time, not to auto (which chooses its frame)",
        );
    }
    let quality = param(&mut errors, obj, "quality", fields::quality);
    let timeout_ms = int(&mut errors, "timeoutMs", 1, 3_600_000, false);
    let string = |errors: &mut Vec<FieldError>, name: &str| -> Option<String> {
        match obj.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                err(errors, name, v, &format!("{name} must be a string"));
                None
            }
        }
    };
    let env = string(&mut errors, "env").or_else(|| default_env.map(str::to_owned));
    let format = match obj.get("format").filter(|v| !v.is_null()) {
        None => Some(Format::Webp),
        Some(_) => param(&mut errors, obj, "format", fields::format),
    };
    let fit = param(&mut errors, obj, "fit", fields::fit);
    let client_id = string(&mut errors, "id");
    if client_id.as_ref().is_some_and(|id| id.len() > 256) {
        err(
            &mut errors,
            "id",
            &obj["id"],
            "id must be at most 256 characters",
        );
    }
    let webhook_url = string(&mut errors, "webhookUrl");
    if env.is_none() {
        err(
            &mut errors,
            "env",
            &Value::Null,
            "env is required (the org has no default_env)",
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let params = Params {
        width,
        height,
        time: if auto_time {
            Some(crate::domain::TimeSpec::Auto)
        } else {
            time.or(timestamp_ms.map(|ms| crate::domain::TimeSpec::At(ms * 1000)))
        },
        fit,
        quality,
        snap: Some(snap),
    };
    let format = format.expect("checked");
    Ok(JobRequest {
        thumbnail: ThumbnailRequest {
            org: org.to_owned(),
            env: env.expect("checked"),
            key: key.to_owned(),
            spec: params.to_spec(format),
        },
        client_id,
        webhook_url,
        timeout_ms,
        timestamp_ms,
    })
}

/// The job id: a digest of the canonical render key, so the same render is
/// always the same job.
pub fn job_id(req: &ThumbnailRequest) -> String {
    let digest = Sha256::digest(req.render_key().to_string().as_bytes());
    format!("thumb_job_{}", hex::encode(&digest[..12]))
}

/// The dynamic URL whose cache entry a job fills (no token, also for signed
/// environments: callers add their own).
pub fn thumbnail_url(base: &str, req: &ThumbnailRequest) -> String {
    let s = &req.spec;
    let mut query = Vec::new();
    if let Some(w) = s.width {
        query.push(format!("width={w}"));
    }
    if let Some(h) = s.height {
        query.push(format!("height={h}"));
    }
    if let Some(t) = s.time.as_param() {
        // (`%` is the one character of a moment a query must escape.)
        query.push(format!("timeStamp={}", t.replace('%', "%25")));
    }
    if s.snap {
        query.push("snap=keyframe".to_owned());
    }
    if let Some(f) = s.fit.filter(|f| *f != Fit::Crop) {
        query.push(format!("fit={}", f.as_str()));
    }
    if let Some(q) = s.quality.filter(|q| *q != crate::domain::DEFAULT_QUALITY) {
        query.push(format!("quality={q}"));
    }
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    format!(
        "{}/v1/thumbnail/{}/{}/{}.{}{query}",
        base.trim_end_matches('/'),
        req.org,
        req.env,
        req.key,
        s.format.ext()
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::request;

    #[test]
    fn the_url_asks_for_exactly_the_jobs_render() {
        for body in [
            json!({"width": 320, "height": 180, "timestampMs": 12000}),
            json!({"width": 320, "timestampMs": 12500, "format": "jpg", "quality": 60}),
            json!({"width": 100, "height": 100, "timestampMs": 0, "fit": "pad", "format": "png"}),
            json!({"width": 64, "timestampMs": 1, "env": "staging", "fit": "crop", "quality": 80}),
            json!({"width": 320, "timeStamp": "25%"}),
            json!({"width": 320, "timeStamp": "33.3333%", "snap": "keyframe"}),
            json!({"width": 320, "timeStamp": "f1234"}),
            json!({"width": 320, "timeStamp": "auto:30.5"}),
            json!({"width": 320, "timeStamp": 7.25, "snap": "keyframe"}),
            json!({"width": 320, "timestampMs": 7250, "snap": "exact"}),
        ] {
            let job = validate(&body, "acme", "clips/a.mp4", Some("prod")).unwrap();
            let url = thumbnail_url("https://t.example.com/", &job.thumbnail);
            let path = url
                .strip_prefix("https://t.example.com/v1/thumbnail/")
                .unwrap();
            let (tail, query) = path.split_once('?').unwrap();
            let from_url = request::parse(tail, Some(query)).unwrap().into_request();
            assert_eq!(from_url.render_key(), job.thumbnail.render_key(), "{url}");
        }
        let job = validate(
            &json!({"width": 320, "height": 180, "timestampMs": 12000}),
            "acme",
            "a.mp4",
            Some("prod"),
        )
        .unwrap();
        assert_eq!(
            thumbnail_url("https://t", &job.thumbnail),
            "https://t/v1/thumbnail/acme/prod/a.mp4.webp?width=320&height=180&timeStamp=12"
        );
    }

    #[test]
    fn a_moment_is_named_once() {
        let locations = |body: serde_json::Value| -> Vec<String> {
            validate(&body, "o", "k", Some("e"))
                .unwrap_err()
                .into_iter()
                .map(|e| e.location)
                .collect()
        };
        assert_eq!(
            locations(json!({"width": 320, "timeStamp": "2", "timestampMs": 2000})),
            ["body.timeStamp"]
        );
        assert_eq!(
            locations(json!({"width": 320, "timeStamp": "auto:3", "snap": "keyframe"})),
            ["body.snap"]
        );
        assert_eq!(
            locations(json!({"width": 320, "timestampMs": "auto", "snap": "keyframe"})),
            ["body.snap"]
        );
        assert_eq!(
            locations(json!({"width": 320, "timeStamp": "120%"})),
            ["body.timeStamp"]
        );
        assert_eq!(locations(json!({"width": 320})), ["body.timestampMs"]);
        // The same render named two ways is one job.
        let a = validate(
            &json!({"width": 320, "timeStamp": 2.5}),
            "o",
            "k",
            Some("e"),
        )
        .unwrap();
        let b = validate(
            &json!({"width": 320, "timestampMs": 2500}),
            "o",
            "k",
            Some("e"),
        )
        .unwrap();
        assert_eq!(job_id(&a.thumbnail), job_id(&b.thumbnail));
        assert_eq!(a.timestamp_ms, Some(2500), "checked against the duration");
    }

    #[test]
    fn same_render_same_id() {
        let a = validate(
            &json!({"width": 320, "timestampMs": 12000, "id": "x"}),
            "o",
            "k",
            Some("e"),
        )
        .unwrap();
        let b = validate(
            &json!({"timestampMs": 12000, "width": 320, "quality": 80, "webhookUrl": "http://h/"}),
            "o",
            "k",
            Some("e"),
        )
        .unwrap();
        assert_eq!(job_id(&a.thumbnail), job_id(&b.thumbnail));
        let c = validate(
            &json!({"width": 321, "timestampMs": 12000}),
            "o",
            "k",
            Some("e"),
        )
        .unwrap();
        assert_ne!(job_id(&a.thumbnail), job_id(&c.thumbnail));
    }

    #[test]
    fn each_bad_field_is_named() {
        let errors = validate(
            &json!({"width": 5000, "height": 0, "timestampMs": -1, "format": "gif", "fit": 3}),
            "o",
            "k",
            None,
        )
        .unwrap_err();
        let locations: Vec<_> = errors.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(
            locations,
            [
                "body.width",
                "body.height",
                "body.timestampMs",
                "body.format",
                "body.fit",
                "body.env"
            ]
        );
        assert_eq!(errors[0].value, "5000");
        let missing = validate(&json!({}), "o", "k", Some("e")).unwrap_err();
        assert_eq!(
            missing
                .iter()
                .map(|e| e.location.as_str())
                .collect::<Vec<_>>(),
            ["body.width", "body.timestampMs"]
        );
    }
}
