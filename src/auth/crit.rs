//! The JOSE header's `crit` (RFC 7515 section 4.1.11): extensions a
//! recipient must understand, or refuse the token. thumbd understands no
//! extension, so a header with `crit` is refused whatever its signature:
//! one naming extensions (thumbd understands none), and one that is itself
//! invalid (empty, not an array of names, or naming a parameter the JWS
//! and JWA specifications define, which the RFC forbids listing). The
//! jsonwebtoken crate ignores `crit`, so the header is read here, before
//! verification: it is a base64url decode and a JSON parse of a few dozen
//! bytes. Pure.

use serde_json::{Map, Value};

use super::AuthError;

/// Header parameters RFC 7515 defines for JWS (JWA defines none more for
/// JWS); `crit` must not list them.
const STANDARD: [&str; 11] = [
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit",
];

/// Refuses a token whose header carries `crit`. A header that cannot be
/// read is left to the verification that follows (which refuses it as
/// malformed).
pub fn check(token: &str) -> Result<(), AuthError> {
    let Some(encoded) = token.split('.').next() else {
        return Ok(());
    };
    let Some(json) = b64url_decode(encoded.as_bytes()) else {
        return Err(AuthError::Malformed);
    };
    let header: Map<String, Value> =
        serde_json::from_slice(&json).map_err(|_| AuthError::Malformed)?;
    let Some(crit) = header.get("crit") else {
        return Ok(());
    };
    let names: Vec<&str> = match crit {
        Value::Array(list) => list
            .iter()
            .map(Value::as_str)
            .collect::<Option<_>>()
            .ok_or(AuthError::Critical(
                "crit is not an array of header parameter names",
            ))?,
        _ => {
            return Err(AuthError::Critical(
                "crit is not an array of header parameter names",
            ))
        }
    };
    if names.is_empty() {
        return Err(AuthError::Critical("crit is empty"));
    }
    if names.iter().any(|n| STANDARD.contains(n)) {
        return Err(AuthError::Critical(
            "crit names a standard header parameter",
        ));
    }
    // No extension is understood.
    Err(AuthError::Critical(
        "crit names an extension thumbd does not understand",
    ))
}

/// Unpadded base64url, as strict as the verifier's (no padding, no other
/// characters, no stray bits). `None` if it is not.
fn b64url_decode(input: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(input)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(data: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
    }

    fn token(header: &str) -> String {
        format!("{}.e30.c2ln", b64(header.as_bytes()))
    }

    #[test]
    fn base64url_round_trips_and_is_strict() {
        for data in [
            &b""[..],
            b"a",
            b"ab",
            b"abc",
            b"abcd",
            b"\xff\xfe\xfd\x00\x01",
        ] {
            assert_eq!(b64url_decode(b64(data).as_bytes()).as_deref(), Some(data));
        }
        for bad in ["a", "ab==", "a+b/", "ab c", "AB"] {
            assert_eq!(b64url_decode(bad.as_bytes()), None, "{bad}");
        }
        // "AB" has stray bits; "AA" does not.
        assert_eq!(b64url_decode(b"AA"), Some(vec![0]));
    }

    #[test]
    fn any_crit_is_refused_and_its_absence_is_not() {
        assert_eq!(check(&token(r#"{"alg":"HS256","kid":"k"}"#)), Ok(()));
        for (header, why) in [
            (
                r#"{"alg":"HS256","crit":["exp2"],"exp2":1}"#,
                "crit names an extension thumbd does not understand",
            ),
            (
                r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
                "crit names an extension thumbd does not understand",
            ),
            (r#"{"alg":"HS256","crit":[]}"#, "crit is empty"),
            (
                r#"{"alg":"HS256","crit":["alg"]}"#,
                "crit names a standard header parameter",
            ),
            (
                r#"{"alg":"HS256","crit":["exp2","kid"],"exp2":1}"#,
                "crit names a standard header parameter",
            ),
            (
                r#"{"alg":"HS256","crit":"exp2","exp2":1}"#,
                "crit is not an array of header parameter names",
            ),
            (
                r#"{"alg":"HS256","crit":null}"#,
                "crit is not an array of header parameter names",
            ),
            (
                r#"{"alg":"HS256","crit":[1]}"#,
                "crit is not an array of header parameter names",
            ),
            // An escaped name is still `crit`.
            (
                r#"{"alg":"HS256","\u0063rit":["exp2"],"exp2":1}"#,
                "crit names an extension thumbd does not understand",
            ),
        ] {
            assert_eq!(
                check(&token(header)),
                Err(AuthError::Critical(why)),
                "{header}"
            );
        }
    }

    #[test]
    fn an_unreadable_header_is_malformed() {
        assert_eq!(check("!!.e30.x"), Err(AuthError::Malformed));
        assert_eq!(check(&token("not json")), Err(AuthError::Malformed));
    }
}
