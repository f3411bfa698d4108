//! Who may call what, as handlers ask it: the org's API key (`X-Api-Key`,
//! `apy-token` or `Authorization: Bearer`) and its rate limit for the JSON
//! API, and the token of a signed environment (`?token=` or `Authorization:
//! Bearer`) for pictures. The checks themselves are [`crate::auth`]'s; this
//! file reads them from requests and answers refusals as problems.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use http::{header, HeaderMap, StatusCode};

use crate::auth::{AuthError, Grant, Target, Verifier};
use crate::config::Access;
use crate::domain::Problem;
use crate::request::{ParsedRequest, ThumbnailRequest};

/// API keys with their rate limit, and tokens of signed environments.
pub(super) struct AccessControl {
    verifier: Verifier,
    limiter: RateLimiter,
}

impl AccessControl {
    pub(super) fn new(verifier: Verifier, limiter: RateLimiter) -> AccessControl {
        AccessControl { verifier, limiter }
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

    /// A preview token for `target` and its expiry (seconds since the
    /// epoch); `None` when the org has no preview secret.
    pub(super) fn issue_preview(&self, target: &Target) -> Option<(String, u64)> {
        self.verifier.issue_preview(target)
    }

    /// Who may see what a thumbnail URL names, before any cache is
    /// consulted: a public environment's request as it is, a signed one's
    /// as `signed` verifies it (with the token's expiry); no environment
    /// (`access` is `None`) is 404.
    pub(super) fn settle(
        &self,
        access: Option<Access>,
        parsed: ParsedRequest,
        headers: &HeaderMap,
        signed: impl FnOnce(
            &Self,
            ParsedRequest,
            &HeaderMap,
        ) -> Result<(ThumbnailRequest, Grant), AuthError>,
    ) -> Result<(ThumbnailRequest, Option<u64>), Problem> {
        match access {
            None => Err(Problem::not_found(format!(
                "there is no environment {:?} in org {:?}",
                parsed.env, parsed.org
            ))),
            Some(Access::Public) => Ok((parsed.into_request(), None)),
            Some(Access::Signed) => match signed(self, parsed, headers) {
                Ok((req, grant)) => Ok((req, Some(grant.expires_at))),
                Err(e) => {
                    tracing::info!(error = %e, "token refused");
                    Err(Problem::from(&e))
                }
            },
        }
    }

    /// Verifies the token of a thumbnail request to a signed environment
    /// and applies the parameters it binds.
    pub(super) fn signed_thumbnail(
        &self,
        mut parsed: ParsedRequest,
        headers: &HeaderMap,
    ) -> Result<(ThumbnailRequest, Grant), AuthError> {
        let grant = self.thumbnail_grant(&parsed, headers)?;
        let format_ok = if grant.format_auto {
            parsed.auto
        } else {
            grant
                .format
                .is_none_or(|f| !parsed.auto && f == parsed.format)
        };
        if !format_ok {
            return Err(AuthError::BoundParam("format"));
        }
        parsed
            .params
            .bind(&grant.bound)
            .map_err(AuthError::BoundParam)?;
        Ok((parsed.into_request(), grant))
    }

    /// Like [`AccessControl::signed_thumbnail`], for what shows the frame
    /// of a thumbnail's moment in no picture format of its own (a
    /// placeholder): the token's bound format does not apply, its other
    /// bound parameters (the moment) do.
    pub(super) fn signed_frame(
        &self,
        mut parsed: ParsedRequest,
        headers: &HeaderMap,
    ) -> Result<(ThumbnailRequest, Grant), AuthError> {
        let grant = self.thumbnail_grant(&parsed, headers)?;
        parsed
            .params
            .bind(&grant.bound)
            .map_err(AuthError::BoundParam)?;
        Ok((parsed.into_request(), grant))
    }

    /// The grant of the thumbnail token `parsed` carries (or the
    /// `Authorization` header), verified for its org, env and key.
    fn thumbnail_grant(
        &self,
        parsed: &ParsedRequest,
        headers: &HeaderMap,
    ) -> Result<Grant, AuthError> {
        let token = parsed
            .token
            .as_deref()
            .or(bearer_token(headers))
            .ok_or(AuthError::Missing)?;
        let target = Target::thumbnail(&parsed.org, &parsed.env, &parsed.key);
        self.verifier.verify(token, &target)
    }

    /// Settles who may see a picture (`target`) of an environment whose
    /// access is `access` (`None`: no such environment): `None` for a
    /// public environment, the token's expiry for a signed one.
    pub(super) fn picture(
        &self,
        access: Option<Access>,
        target: &Target,
        token: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Option<u64>, Problem> {
        match access {
            None => Err(Problem::not_found(format!(
                "there is no environment {:?} in org {:?}",
                target.env, target.org
            ))),
            Some(Access::Public) => Ok(None),
            Some(Access::Signed) => {
                let verified = token
                    .or(bearer_token(headers))
                    .ok_or(AuthError::Missing)
                    .and_then(|t| self.verifier.verify(t, target));
                match verified {
                    Ok(grant) => Ok(Some(grant.expires_at)),
                    Err(e) => {
                        tracing::info!(error = %e, "token refused");
                        Err(Problem::from(&e))
                    }
                }
            }
        }
    }
}

/// Per-API-key token buckets: `per_minute` steady, `burst` at once.
pub(super) struct RateLimiter {
    per_minute: u32,
    burst: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub(super) fn new(per_minute: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            per_minute,
            burst: burst.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one call from `key`'s bucket at `now`; on refusal, the seconds
    /// until one is available.
    fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
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
fn presented_api_key(headers: &HeaderMap) -> Option<&str> {
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

/// A token sent as `Authorization: Bearer ...`.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn api_keys_from_headers() {
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
