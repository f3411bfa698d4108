//! Access to signed environments and the API.
//!
//! A signed environment's thumbnails need a JWT whose header names a `kid`
//! of the org, signed with exactly the algorithm configured for that key
//! (the token never chooses it), and no `crit` (no extension is
//! understood), with a future `exp`, `sub` equal to the
//! video key and `aud` `thumbnail`. Claims can bind picture parameters.
//! Orgs also hold API keys, compared in constant time, and a secret for the
//! preview tokens thumbd issues itself.
//!
//! - [`keys`]: key material from the config.
//! - [`claims`]: claim checks and bound parameters. Pure.
//! - [`crit`]: the header's `crit`, refused (no extension is understood).

pub mod claims;
pub mod crit;
pub mod keys;

use std::collections::HashMap;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use subtle::ConstantTimeEq;

pub use claims::{Grant, Target, ANIMATED_AUDIENCES, STORYBOARD_AUDIENCES};
pub use keys::PREVIEW_KID;

use crate::config::Config;
use crate::domain::Problem;
use http::StatusCode;

/// Why a token was refused. `Mismatch` and `BoundParam` are 403 (the token
/// is genuine but not for this); everything else is 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this environment is private: a signed token is required (?token= or Authorization: Bearer)")]
    Missing,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's header is refused: {0} (RFC 7515 section 4.1.11)")]
    Critical(&'static str),
    #[error("the token's header has no kid")]
    NoKid,
    #[error("the token's kid is not a key of this org")]
    UnknownKid,
    #[error("the token's alg is not the algorithm configured for its kid")]
    WrongAlgorithm,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token has no valid exp claim")]
    NoExpiry,
    #[error("the token's {0} claim is not valid")]
    BadClaim(&'static str),
    #[error("the token is for another {0}")]
    Mismatch(&'static str),
    #[error("the token fixes {0} to another value than the URL asks for")]
    BoundParam(&'static str),
}

impl AuthError {
    /// Genuine token, wrong thing: 403 rather than 401.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, AuthError::Mismatch(_) | AuthError::BoundParam(_))
    }
}

/// Why an API call's key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("an API key is required in the X-Api-Key header")]
    Missing,
    #[error("the API key is not valid")]
    Invalid,
    #[error("the API key belongs to another org")]
    OtherOrg,
}

struct OrgAuth {
    keys: HashMap<String, keys::VerifyKey>,
    api_keys: Vec<String>,
    preview_secret: Option<Vec<u8>>,
}

/// Verifies tokens and API keys; built once from the config.
pub struct Verifier {
    orgs: HashMap<String, OrgAuth>,
    leeway_secs: u64,
    preview_ttl_secs: u64,
}

pub use crate::domain::now_secs;

impl Verifier {
    /// Loads every org's keys; an unreadable or invalid key is an error.
    pub fn new(config: &Config) -> Result<Verifier, String> {
        let mut orgs = HashMap::new();
        for (org_id, org) in &config.orgs {
            let mut map = HashMap::new();
            for k in &org.signing_keys {
                let key = keys::verify_key(k, &config.base_dir)
                    .map_err(|e| format!("orgs.{org_id}: {e}"))?;
                if map.insert(k.kid.clone(), key).is_some() {
                    return Err(format!(
                        "orgs.{org_id}: signing key kid {:?} appears twice",
                        k.kid
                    ));
                }
            }
            if org.api_keys.iter().any(|k| k.len() < 16) {
                return Err(format!(
                    "orgs.{org_id}.api_keys: each key must be at least 16 characters"
                ));
            }
            let preview_secret =
                keys::preview_secret(org).map_err(|e| format!("orgs.{org_id}: {e}"))?;
            if let Some(secret) = &preview_secret {
                map.insert(
                    PREVIEW_KID.to_owned(),
                    keys::VerifyKey {
                        alg: Algorithm::HS256,
                        key: DecodingKey::from_secret(secret),
                    },
                );
            }
            orgs.insert(
                org_id.clone(),
                OrgAuth {
                    keys: map,
                    api_keys: org.api_keys.clone(),
                    preview_secret,
                },
            );
        }
        Ok(Verifier {
            orgs,
            leeway_secs: config.auth.leeway_secs,
            preview_ttl_secs: config.auth.preview_token_ttl_secs,
        })
    }

    /// Verifies `token` for the thumbnail at `target`.
    pub fn verify(&self, token: &str, target: &Target) -> Result<Grant, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        // Before the key and signature: whatever its signature, a token
        // with critical extensions thumbd does not understand is refused.
        crit::check(token)?;
        let kid = header.kid.ok_or(AuthError::NoKid)?;
        let key = self
            .orgs
            .get(target.org)
            .and_then(|o| o.keys.get(&kid))
            .ok_or(AuthError::UnknownKid)?;
        if header.alg != key.alg {
            return Err(AuthError::WrongAlgorithm);
        }
        let mut validation = Validation::new(key.alg);
        validation.leeway = self.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false; // checked in `claims`, as 403
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidRsaKey(_) => AuthError::BadSignature,
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::MissingRequiredClaim(_) => AuthError::NoExpiry,
                ErrorKind::InvalidAlgorithm => AuthError::WrongAlgorithm,
                _ => AuthError::Malformed,
            })?;
        claims::check(&data.claims, target)
    }

    /// Checks an `X-Api-Key` for `org`, comparing against every configured
    /// key in constant time.
    pub fn check_api_key(&self, org: &str, presented: Option<&str>) -> Result<(), ApiKeyError> {
        match self.org_of_api_key(presented)? {
            owner if owner == org => Ok(()),
            _ => Err(ApiKeyError::OtherOrg),
        }
    }

    /// The org whose API key `presented` is (compared in constant time
    /// against every key), for routes that name no org.
    pub fn org_of_api_key(&self, presented: Option<&str>) -> Result<&str, ApiKeyError> {
        let presented = presented.ok_or(ApiKeyError::Missing)?.as_bytes();
        let mut owner: Option<&str> = None;
        for (org_id, o) in &self.orgs {
            for k in &o.api_keys {
                if bool::from(k.as_bytes().ct_eq(presented)) {
                    owner = Some(org_id);
                }
            }
        }
        owner.ok_or(ApiKeyError::Invalid)
    }

    /// Issues a preview token for one video; `None` if the org has no
    /// preview secret. Returns the token and its expiry (Unix seconds).
    pub fn issue_preview(&self, target: &Target) -> Option<(String, u64)> {
        let secret = self.orgs.get(target.org)?.preview_secret.as_ref()?;
        let exp = now_secs() + self.preview_ttl_secs;
        let claims = serde_json::json!({
            "sub": target.key,
            "aud": "thumbnail",
            "org": target.org,
            "env": target.env,
            "iat": now_secs(),
            "exp": exp,
        });
        let token = sign(
            Algorithm::HS256,
            PREVIEW_KID,
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .expect("HS256 signing cannot fail");
        Some((token, exp))
    }
}

/// Signs `claims` with `key` under `kid`.
pub fn sign(
    alg: Algorithm,
    kid: &str,
    claims: &serde_json::Value,
    key: &EncodingKey,
) -> Result<String, String> {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).map_err(|e| format!("signing failed: {e}"))
}

/// What `thumbd sign` signs.
pub struct SignRequest<'a> {
    pub org: &'a str,
    pub env: &'a str,
    pub key: &'a str,
    pub kid: &'a str,
    /// PEM private key, for asymmetric keys; HS* keys use the configured secret.
    pub private_key_pem: Option<&'a [u8]>,
    pub expires_in_secs: u64,
    /// Parameters to bind into the token.
    pub bound: &'a crate::request::Params,
    /// Format to bind, if any.
    pub format: Option<crate::domain::Format>,
}

/// Signs a thumbnail token with one of an org's configured keys.
pub fn sign_token(config: &Config, req: &SignRequest) -> Result<String, String> {
    let org = config
        .orgs
        .get(req.org)
        .ok_or_else(|| format!("no org {:?} in the config", req.org))?;
    if !org.envs.contains_key(req.env) {
        return Err(format!(
            "org {:?} has no environment {:?}",
            req.org, req.env
        ));
    }
    let k = org
        .signing_keys
        .iter()
        .find(|k| k.kid == req.kid)
        .ok_or_else(|| {
            format!(
                "org {:?} has no signing key with kid {:?}",
                req.org, req.kid
            )
        })?;
    let alg = keys::parse_alg(&k.alg)?;
    let key = if keys::is_hmac(alg) {
        EncodingKey::from_secret(&keys::load_secret(k, &config.base_dir)?)
    } else {
        let pem = req.private_key_pem.ok_or_else(|| {
            format!(
                "kid {:?} is {alg:?}: give its private key with --private-key",
                req.kid
            )
        })?;
        keys::encoding_key(alg, pem)?
    };
    let now = now_secs();
    let mut claims = serde_json::json!({
        "sub": req.key,
        "aud": "thumbnail",
        "org": req.org,
        "env": req.env,
        "iat": now,
        "exp": now + req.expires_in_secs,
    });
    let b = req.bound;
    if let Some(w) = b.width {
        claims["width"] = w.into();
    }
    if let Some(h) = b.height {
        claims["height"] = h.into();
    }
    match b.time {
        Some(crate::domain::TimeSpec::At(t)) => claims["timeStamp"] = (t as f64 / 1e6).into(),
        Some(t) => {
            if let Some(text) = t.as_param() {
                claims["timeStamp"] = text.into();
            }
        }
        None => {}
    }
    if let Some(snap) = b.snap {
        claims["snap"] = if snap { "keyframe" } else { "exact" }.into();
    }
    if let Some(f) = b.fit {
        claims["fit"] = f.as_str().into();
    }
    if let Some(q) = b.quality {
        claims["quality"] = q.into();
    }
    if let Some(f) = req.format {
        claims["format"] = f.ext().into();
    }
    sign(alg, req.kid, &claims, &key)
}

impl From<&AuthError> for Problem {
    /// 401 with a Bearer challenge (RFC 6750) saying what was wrong, or 403
    /// for a genuine token that is not for this URL. The token is never echoed.
    fn from(e: &AuthError) -> Problem {
        if e.is_forbidden() {
            return Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                e.to_string(),
            );
        }
        let challenge = match e {
            AuthError::Missing => "Bearer realm=\"thumbd\"".to_owned(),
            _ => format!(
                "Bearer realm=\"thumbd\", error=\"invalid_token\", error_description=\"{e}\""
            ),
        };
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            e.to_string(),
        )
        .with_header("www-authenticate", challenge)
    }
}

impl From<ApiKeyError> for Problem {
    fn from(e: ApiKeyError) -> Problem {
        match e {
            ApiKeyError::OtherOrg => Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                e.to_string(),
            ),
            _ => Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                e.to_string(),
            ),
        }
    }
}
