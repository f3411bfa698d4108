//! Webhooks: the final job document POSTed to the caller, signed with the
//! org's webhook secret (`Thumbd-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>">`), retried with exponential backoff. Only hosts the org
//! lists may be called.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Whether `url` is an http(s) URL on one of `allowed` (`host` matches any
/// port, `host:port` that port only). Pure.
pub fn host_allowed(url: &str, allowed: &[String]) -> Result<(), String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|_| "webhookUrl is not a valid URL".to_owned())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("webhookUrl must be http or https".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("webhookUrl must not carry credentials".into());
    }
    let host = parsed
        .host_str()
        .ok_or("webhookUrl has no host")?
        .to_ascii_lowercase();
    let port = parsed.port_or_known_default().unwrap_or(0);
    let ok = allowed.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        match entry.rsplit_once(':') {
            Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.is_empty() => {
                h.trim_matches(['[', ']']) == host.trim_matches(['[', ']']) && p.parse() == Ok(port)
            }
            _ => entry.trim_matches(['[', ']']) == host.trim_matches(['[', ']']),
        }
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "webhook host {host}:{port} is not in the org's webhook_hosts"
        ))
    }
}

/// The `Thumbd-Signature` header value for `body` at time `t`.
pub fn signature(secret: &[u8], t: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// One delivery try: POSTs `body` signed now; true on a 2xx answer.
pub async fn send_once(
    client: &reqwest::Client,
    url: &str,
    secret: &[u8],
    body: &[u8],
    timeout: Duration,
) -> bool {
    let t = crate::domain::now_secs();
    let result = client
        .post(url)
        .timeout(timeout)
        .header("content-type", "application/json")
        .header("thumbd-signature", signature(secret, t, body))
        .body(body.to_vec())
        .send()
        .await;
    match result {
        Ok(resp) if resp.status().is_success() => true,
        Ok(resp) => {
            tracing::info!(url, status = resp.status().as_u16(), "webhook refused");
            false
        }
        Err(e) => {
            tracing::info!(url, error = %e, "webhook failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let allowed = vec!["hooks.example.com".to_owned(), "127.0.0.1:9000".to_owned()];
        assert!(host_allowed("https://hooks.example.com/x", &allowed).is_ok());
        assert!(host_allowed("http://HOOKS.example.com:8080/x", &allowed).is_ok());
        assert!(host_allowed("http://127.0.0.1:9000/hook", &allowed).is_ok());
        for bad in [
            "http://127.0.0.1:9001/hook",
            "http://evil.example.com/",
            "http://hooks.example.com.evil.net/",
            "ftp://hooks.example.com/",
            "http://user:pw@hooks.example.com/",
            "not a url",
        ] {
            assert!(host_allowed(bad, &allowed).is_err(), "{bad}");
        }
    }

    #[test]
    fn signature_format() {
        let s = signature(b"secret", 1700000000, b"{}");
        let (t, v1) = s.split_once(',').unwrap();
        assert_eq!(t, "t=1700000000");
        assert_eq!(v1.len(), 3 + 64);
    }
}
