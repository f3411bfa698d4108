//! Key material from the configuration: signing keys (PEM public keys or
//! HMAC secrets, from the file, the environment or a file path) and the
//! per-org preview-token secret.

use std::path::Path;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::Sha256;

use crate::config::{OrgConfig, SigningKeyConfig};

/// The `kid` of preview tokens thumbd issues itself; reserved.
pub const PREVIEW_KID: &str = "thumbd-preview";
/// Shortest HMAC secret accepted (256 bits, as RFC 7518 asks for HS256).
pub const MIN_SECRET_BYTES: usize = 32;

/// A key that verifies tokens, with the one algorithm it accepts.
pub struct VerifyKey {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

pub fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// Parses `alg`; `none` and unknown names are refused.
pub fn parse_alg(name: &str) -> Result<Algorithm, String> {
    Algorithm::from_str(name).map_err(|_| {
        format!("alg {name:?} is not one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256, HS384, HS512")
    })
}

/// Reads a signing key's HMAC secret (for HS* keys).
pub fn load_secret(k: &SigningKeyConfig, base_dir: &Path) -> Result<Vec<u8>, String> {
    let at = format!("signing key {:?}", k.kid);
    let secret = crate::config::read_secret(
        (&k.secret, &k.secret_env, &k.secret_file),
        base_dir,
        &format!("{at}: secret"),
    )?
    .ok_or_else(|| format!("{at}: give exactly one of secret, secret_env, secret_file"))?
    .into_bytes();
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "{at}: the secret must be at least {MIN_SECRET_BYTES} bytes"
        ));
    }
    Ok(secret)
}

fn load_public_pem(k: &SigningKeyConfig, base_dir: &Path) -> Result<Vec<u8>, String> {
    let at = format!("signing key {:?}", k.kid);
    match (&k.public_key, &k.public_key_file) {
        (Some(pem), None) => Ok(pem.clone().into_bytes()),
        (None, Some(file)) => {
            let path = base_dir.join(file);
            std::fs::read(&path).map_err(|e| format!("{at}: cannot read {}: {e}", path.display()))
        }
        _ => Err(format!(
            "{at}: give exactly one of public_key, public_key_file"
        )),
    }
}

/// Builds the verifying key of one configured signing key.
pub fn verify_key(k: &SigningKeyConfig, base_dir: &Path) -> Result<VerifyKey, String> {
    let at = format!("signing key {:?}", k.kid);
    if k.kid.is_empty() || k.kid == PREVIEW_KID {
        return Err(format!(
            "{at}: kid must be non-empty and not {PREVIEW_KID:?} (reserved)"
        ));
    }
    let alg = parse_alg(&k.alg).map_err(|e| format!("{at}: {e}"))?;
    let has_secret = k.secret.is_some() || k.secret_env.is_some() || k.secret_file.is_some();
    let has_public = k.public_key.is_some() || k.public_key_file.is_some();
    let key = if is_hmac(alg) {
        if has_public {
            return Err(format!("{at}: {alg:?} takes a secret, not a public key"));
        }
        DecodingKey::from_secret(&load_secret(k, base_dir)?)
    } else {
        if has_secret {
            return Err(format!("{at}: {alg:?} takes a public key, not a secret"));
        }
        let pem = load_public_pem(k, base_dir)?;
        let parsed = match alg {
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
            _ => DecodingKey::from_rsa_pem(&pem),
        };
        parsed.map_err(|e| format!("{at}: not a valid {alg:?} public key in PEM form ({e})"))?
    };
    Ok(VerifyKey { alg, key })
}

/// Builds a signing key from a private key PEM (for `thumbd sign`).
pub fn encoding_key(alg: Algorithm, pem: &[u8]) -> Result<EncodingKey, String> {
    let parsed = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
        _ => EncodingKey::from_rsa_pem(pem),
    };
    parsed.map_err(|e| format!("not a valid {alg:?} private key in PEM form ({e})"))
}

/// The org's preview-token secret: configured, or HMAC-SHA256 of a fixed
/// label under the org's first API key (so rotating that key also retires
/// outstanding preview tokens). `None` when the org has neither.
pub fn preview_secret(org: &OrgConfig) -> Result<Option<Vec<u8>>, String> {
    if let Some(s) = &org.preview_secret {
        if s.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "preview_secret must be at least {MIN_SECRET_BYTES} bytes"
            ));
        }
        return Ok(Some(s.clone().into_bytes()));
    }
    Ok(org.api_keys.first().map(|api_key| {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(api_key.as_bytes()).expect("HMAC takes any key length");
        mac.update(b"thumbd preview-token secret v1");
        mac.finalize().into_bytes().to_vec()
    }))
}
