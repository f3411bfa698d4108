//! The JSON API under `/v1/api/`: jobs, uploads and preview tokens. Every
//! call carries the org's API key (`X-Api-Key`, `apy-token` or
//! `Authorization: Bearer`); answers wrap their payload in `{"body": ...}`;
//! errors are problem+json. A client that sends `Prefer: wait=N` gets the
//! finished job (200) if it finishes within N seconds (capped).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderMap, Method, Response, StatusCode};
use serde_json::{json, Value};

use super::routes::App;
use super::Body;
use crate::auth::Target;
use crate::domain::Problem;
use crate::jobs::document;
use crate::jobs::model::Status;
use crate::jobs::store::JobRecord;
use crate::request;

/// An API call, parsed from the path after `/v1/api/`.
#[derive(Debug, PartialEq, Eq)]
pub enum ApiCall<'a> {
    /// `POST {org}/{env}/edge-ids/{key}/preview-token`
    PreviewToken {
        org: &'a str,
        env: &'a str,
        key: &'a str,
    },
    /// `POST {org}/edge-ids/{key}/thumbnails`
    Submit { org: &'a str, key: &'a str },
    /// `GET {org}/edge-ids/{key}/thumbnail`
    Best { org: &'a str, key: &'a str },
    /// `POST {org}/thumbnails/batch`
    Batch { org: &'a str },
    /// `GET {org}/thumbnails/{jobId}`
    Job { org: &'a str, id: &'a str },
    /// `POST {org}/uploads`: a multipart upload (its body is streamed).
    Upload { org: &'a str },
}

impl ApiCall<'_> {
    pub fn org(&self) -> &str {
        match self {
            ApiCall::PreviewToken { org, .. }
            | ApiCall::Submit { org, .. }
            | ApiCall::Best { org, .. }
            | ApiCall::Batch { org }
            | ApiCall::Upload { org }
            | ApiCall::Job { org, .. } => org,
        }
    }

    /// The one method the call answers to.
    pub fn method(&self) -> Method {
        match self {
            ApiCall::Best { .. } | ApiCall::Job { .. } => Method::GET,
            _ => Method::POST,
        }
    }
}

/// Parses the path after `/v1/api/`; `None` for no such endpoint.
pub fn parse(tail: &str) -> Option<ApiCall<'_>> {
    let (org, rest) = tail.split_once('/')?;
    if rest == "uploads" {
        return Some(ApiCall::Upload { org });
    }
    if let Some(inner) = rest.strip_suffix("/preview-token") {
        let (env, rest) = inner.split_once('/')?;
        let key = rest.strip_prefix("edge-ids/")?;
        return Some(ApiCall::PreviewToken { org, env, key });
    }
    if let Some(inner) = rest.strip_prefix("edge-ids/") {
        if let Some(key) = inner.strip_suffix("/thumbnails") {
            return Some(ApiCall::Submit { org, key });
        }
        if let Some(key) = inner.strip_suffix("/thumbnail") {
            return Some(ApiCall::Best { org, key });
        }
        return None;
    }
    match rest.strip_prefix("thumbnails/")? {
        "batch" => Some(ApiCall::Batch { org }),
        id if !id.is_empty() && !id.contains('/') => Some(ApiCall::Job { org, id }),
        _ => None,
    }
}

/// Per-API-key token buckets: `per_minute` steady, `burst` at once.
pub struct RateLimiter {
    per_minute: u32,
    burst: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            per_minute,
            burst: burst.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one call from `key`'s bucket at `now`; on refusal, the seconds
    /// until one is available.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let rate = self.per_minute as f64 / 60.0;
        let mut buckets = self.buckets.lock().expect("not poisoned");
        let (tokens, last) = buckets
            .entry(key.to_owned())
            .or_insert((self.burst as f64, now));
        *tokens = (*tokens + now.saturating_duration_since(*last).as_secs_f64() * rate)
            .min(self.burst as f64);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u64)
        }
    }

    fn refused(&self, retry_after: u64) -> Problem {
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            format!("this API key may make {} calls a minute", self.per_minute),
        )
        .with_header("retry-after", retry_after)
        .with_header("ratelimit-limit", self.per_minute)
        .with_header("ratelimit-remaining", 0)
        .with_header("ratelimit-reset", retry_after)
    }
}

/// The API key a call presents: `X-Api-Key`, `apy-token`, or a Bearer
/// token in `Authorization`.
pub fn presented_api_key(headers: &HeaderMap) -> Option<&str> {
    for name in ["x-api-key", "apy-token"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            if !v.trim().is_empty() {
                return Some(v.trim());
            }
        }
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = auth.split_once(' ')?;
    // Schemes are case-insensitive (RFC 9110 section 11.1).
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// How long the client asks to wait for a job (`Prefer: wait=N`, RFC
/// 7240), capped at `max`; `None` if it does not ask.
pub fn prefer_wait(headers: &HeaderMap, max: Duration) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|pref| {
            let pref = pref.split(';').next()?.trim();
            let (name, value) = pref.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("wait") {
                return None;
            }
            value.trim().trim_matches('"').parse::<u64>().ok()
        })
        .map(|secs| Duration::from_secs(secs).min(max))
        .next()
}

/// The answer's status for a submitted job: 200 once completed (already,
/// or while the client waited), 202 while pending or running; a job that
/// failed while the client waited answers with its problem.
pub(super) fn job_status(record: &JobRecord) -> Result<StatusCode, Problem> {
    match record.status {
        Status::Completed => Ok(StatusCode::OK),
        Status::Pending | Status::Processing => Ok(StatusCode::ACCEPTED),
        Status::Failed => Err(failed_problem(record)),
    }
}

/// The problem a failed job stored, as a call's answer (with its `jobId`).
pub(super) fn failed_problem(record: &JobRecord) -> Problem {
    let stored = record.error.as_ref();
    let field = |name: &str| stored.and_then(|e| e.get(name));
    let status = field("status")
        .and_then(Value::as_u64)
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
    let detail = field("detail")
        .and_then(Value::as_str)
        .unwrap_or("the thumbnail could not be made");
    let code = field("type")
        .and_then(Value::as_str)
        .and_then(|t| t.strip_prefix("urn:thumbd:problem:"))
        .unwrap_or("undecodable-video");
    let title = match status.as_u16() {
        404 => "Not found",
        415 => "Unsupported media",
        422 => "Thumbnail failed",
        502 => "Source error",
        504 => "Timed out",
        _ => "Thumbnail failed",
    };
    let problem = Problem::new(status, code, title, detail).with_member("jobId", record.id.clone());
    // A job that failed for lack of room can be tried again shortly.
    match status.as_u16() {
        429 | 503 => problem.with_header("retry-after", 5),
        _ => problem,
    }
}

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(serde_json::to_vec(body).expect("serializes")))
        .expect("valid response")
}

pub(super) fn parse_json(body: &Bytes) -> Result<Value, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        Problem::invalid_request(vec![request::FieldError {
            message: format!("the body is not valid JSON: {e}"),
            location: "body".into(),
            value: String::new(),
        }])
    })
}

fn key_of(raw: &str) -> Result<String, Problem> {
    request::parse_key(raw).map_err(Problem::invalid_request)
}

impl App {
    /// Handles an API call whose method matched and whose body is read.
    pub(super) async fn api(
        &self,
        call: ApiCall<'_>,
        headers: &HeaderMap,
        query: Option<&str>,
        body: Bytes,
    ) -> Result<Response<Body>, Problem> {
        self.authorize_api(call.org(), headers)?;
        match call {
            ApiCall::PreviewToken { org, env, key } => self.preview_token(org, env, &key_of(key)?),
            ApiCall::Submit { org, key } => {
                let key = key_of(key)?;
                let body = parse_json(&body)?;
                let (record, _) = self
                    .jobs
                    .submit(org, &key, &body)
                    .await
                    .map_err(|e| Problem::from(&e))?;
                let record = self.maybe_wait(record, headers).await?;
                let status = job_status(&record)?;
                Ok(json_response(status, &json!({ "body": document(&record) })))
            }
            ApiCall::Job { org, id } => {
                let record = self
                    .jobs
                    .get(org, id)
                    .await
                    .map_err(|e| Problem::from(&e))?;
                let record = self.maybe_wait(record, headers).await?;
                Ok(json_response(
                    StatusCode::OK,
                    &json!({ "body": document(&record) }),
                ))
            }
            ApiCall::Batch { org } => self.batch(org, &parse_json(&body)?).await,
            ApiCall::Best { org, key } => self.best(org, &key_of(key)?, query).await,
            // Routed to `upload` with its body unread.
            ApiCall::Upload { .. } => Err(Problem::not_found("no such endpoint")),
        }
    }

    /// Checks the call's API key against `org` and takes one call from the
    /// key's rate limit.
    pub(super) fn authorize_api(&self, org: &str, headers: &HeaderMap) -> Result<(), Problem> {
        let presented = presented_api_key(headers);
        self.verifier
            .check_api_key(org, presented)
            .map_err(Problem::from)?;
        self.rate_limit(presented)
    }

    /// The org of the call's API key (routes that name no org), after its
    /// rate limit.
    pub(super) fn api_org(&self, headers: &HeaderMap) -> Result<String, Problem> {
        let presented = presented_api_key(headers);
        let org = self
            .verifier
            .org_of_api_key(presented)
            .map_err(Problem::from)?
            .to_owned();
        self.rate_limit(presented)?;
        Ok(org)
    }

    fn rate_limit(&self, presented: Option<&str>) -> Result<(), Problem> {
        self.limiter
            .check(presented.unwrap_or_default(), Instant::now())
            .map_err(|retry_after| self.limiter.refused(retry_after))
    }

    /// With `Prefer: wait=N`, waits for the job to finish (up to N seconds,
    /// capped); returns the job as it then is.
    pub(super) async fn maybe_wait(
        &self,
        record: crate::jobs::store::JobRecord,
        headers: &HeaderMap,
    ) -> Result<crate::jobs::store::JobRecord, Problem> {
        match prefer_wait(headers, self.jobs.max_wait()) {
            Some(limit) if !record.status.is_final() => self
                .jobs
                .wait_final(&record.thumbnail.org, &record.id, limit)
                .await
                .map_err(|e| Problem::from(&e)),
            _ => Ok(record),
        }
    }

    async fn batch(&self, org: &str, body: &Value) -> Result<Response<Body>, Problem> {
        let max = self.jobs.max_batch();
        let items = match body.get("items").and_then(Value::as_array) {
            Some(items) if !items.is_empty() && items.len() <= max => items,
            _ => {
                return Err(Problem::invalid_request(vec![request::FieldError {
                    message: format!("items must be an array of 1 to {max} jobs"),
                    location: "body.items".into(),
                    value: String::new(),
                }]))
            }
        };
        let mut results = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let key = match item.get("key").and_then(Value::as_str) {
                Some(k) => key_of(k),
                None => Err(Problem::invalid_request(vec![request::FieldError {
                    message: "key is required".into(),
                    location: format!("body.items[{i}].key"),
                    value: String::new(),
                }])),
            };
            let result = match key {
                Ok(key) => self
                    .jobs
                    .submit(org, &key, item)
                    .await
                    .map_err(|e| Problem::from(&e)),
                Err(p) => Err(p),
            };
            results.push(match result {
                Ok((record, _)) => document(&record),
                Err(problem) => json!({ "error": problem }),
            });
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({ "body": { "items": results } }),
        ))
    }

    async fn best(
        &self,
        org: &str,
        key: &str,
        query: Option<&str>,
    ) -> Result<Response<Body>, Problem> {
        let env = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .find(|(k, _)| k == "env")
            .map(|(_, v)| v.into_owned())
            .or_else(|| self.jobs.default_env(org).map(str::to_owned))
            .ok_or_else(|| {
                Problem::invalid_request(vec![request::FieldError {
                    message: "give ?env= (the org has no default_env)".into(),
                    location: "query.env".into(),
                    value: String::new(),
                }])
            })?;
        if self.renderer.access(org, &env).is_none() {
            return Err(Problem::not_found(format!(
                "there is no environment {env:?} in org {org:?}"
            )));
        }
        let best = self
            .jobs
            .best(org, &env, key)
            .await
            .map_err(|e| Problem::from(&e))?;
        let body = match best {
            Some(r) => {
                let (w, h) = r.size.unwrap_or_default();
                json!({"url": r.url, "available": true, "width": w, "height": h, "jobId": r.id})
            }
            None => {
                let base = self.public_base_url.trim_end_matches('/');
                json!({"url": format!("{base}/v1/thumbnail/{org}/{env}/{key}.webp"), "available": false})
            }
        };
        Ok(json_response(StatusCode::OK, &json!({ "body": body })))
    }

    fn preview_token(&self, org: &str, env: &str, key: &str) -> Result<Response<Body>, Problem> {
        if self.renderer.access(org, env).is_none() {
            return Err(Problem::not_found(format!(
                "there is no environment {env:?} in org {org:?}"
            )));
        }
        let (token, exp) = self
            .verifier
            .issue_preview(&Target::thumbnail(org, env, key))
            .ok_or_else(|| Problem::not_found("this org has no preview secret"))?;
        let expires_at =
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(exp));
        Ok(json_response(
            StatusCode::OK,
            &json!({"body": {"token": token, "expiresAt": expires_at.to_string()}}),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths() {
        assert_eq!(
            parse("acme/prod/edge-ids/a/b.mp4/preview-token"),
            Some(ApiCall::PreviewToken {
                org: "acme",
                env: "prod",
                key: "a/b.mp4"
            })
        );
        assert_eq!(
            parse("acme/edge-ids/a/b.mp4/thumbnails"),
            Some(ApiCall::Submit {
                org: "acme",
                key: "a/b.mp4"
            })
        );
        assert_eq!(
            parse("acme/edge-ids/a.mp4/thumbnail"),
            Some(ApiCall::Best {
                org: "acme",
                key: "a.mp4"
            })
        );
        assert_eq!(
            parse("acme/thumbnails/batch"),
            Some(ApiCall::Batch { org: "acme" })
        );
        assert_eq!(
            parse("acme/thumbnails/thumb_job_1"),
            Some(ApiCall::Job {
                org: "acme",
                id: "thumb_job_1"
            })
        );
        for bad in [
            "acme",
            "acme/",
            "acme/edge-ids/a.mp4",
            "acme/thumbnails/",
            "acme/other/x",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn api_keys_and_waits_from_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_api_key(&h), None);
        h.insert("authorization", "bearer  k1".parse().unwrap());
        assert_eq!(presented_api_key(&h), Some("k1"));
        h.insert("x-api-key", " ".parse().unwrap());
        assert_eq!(
            presented_api_key(&h),
            Some("k1"),
            "an empty key hides nothing"
        );
        h.insert("apy-token", "k2".parse().unwrap());
        assert_eq!(presented_api_key(&h), Some("k2"));
        h.insert("X-Api-Key", "k3".parse().unwrap());
        assert_eq!(presented_api_key(&h), Some("k3"));

        let max = Duration::from_secs(30);
        let mut h = HeaderMap::new();
        assert_eq!(prefer_wait(&h, max), None);
        h.insert("prefer", "respond-async, wait=10".parse().unwrap());
        assert_eq!(prefer_wait(&h, max), Some(Duration::from_secs(10)));
        h.insert("prefer", "wait=600".parse().unwrap());
        assert_eq!(prefer_wait(&h, max), Some(max), "capped");
        h.insert("prefer", "wait=soon, handling=strict".parse().unwrap());
        assert_eq!(prefer_wait(&h, max), None);
        assert_eq!(parse("acme/uploads"), Some(ApiCall::Upload { org: "acme" }));
    }

    #[test]
    fn token_buckets() {
        let limiter = RateLimiter::new(60, 2);
        let t0 = Instant::now();
        assert!(limiter.check("k", t0).is_ok());
        assert!(limiter.check("k", t0).is_ok());
        assert_eq!(limiter.check("k", t0), Err(1));
        assert!(limiter.check("other", t0).is_ok(), "buckets are per key");
        assert!(
            limiter.check("k", t0 + Duration::from_secs(1)).is_ok(),
            "one a second comes back"
        );
        assert!(RateLimiter::new(0, 0).check("k", t0).is_ok(), "0 is off");
    }
}
