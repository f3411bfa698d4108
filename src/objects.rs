//! Object storage: clients for S3-compatible buckets and local folders,
//! built from settings. Sources read videos through them (ranged,
//! conditional GETs) and the shared cache keeps renders in them. The
//! `object_store` crate does the SigV4 signing, the AWS credential chain,
//! and retries of throttling and 5xx answers with backoff.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::config::S3Config;

/// Time limits of one client.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// One request, from sending to the last body byte.
    pub request: Duration,
    /// Retries of throttled (503 SlowDown) and failed requests stop this
    /// long after the first try.
    pub retry: Duration,
}

/// `s3://bucket/rest` split into the bucket and the rest.
pub fn split_s3_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url:?} must start with s3://"))?;
    let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(valid) {
        return Err(format!(
            "{url:?}: {bucket:?} is not a bucket name (3-63 lowercase letters, digits, '-' and '.')"
        ));
    }
    Ok((bucket, path))
}

/// A client for `bucket` with `settings` (`at` names the table in errors).
pub fn s3(
    bucket: &str,
    settings: &S3Config,
    base_dir: &Path,
    timeouts: Timeouts,
    at: &str,
) -> Result<Arc<dyn ObjectStore>, String> {
    // The standard AWS variables first; the table's settings win over them.
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let region = settings
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".to_owned());
    builder = builder.with_region(region);
    // The table's endpoint, else the standard variables'.
    let endpoint = settings.endpoint.clone().or_else(|| {
        ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
            .iter()
            .find_map(|var| std::env::var(var).ok())
    });
    let mut allow_http = false;
    let path_style = settings.path_style.unwrap_or(endpoint.is_some());
    builder = builder.with_virtual_hosted_style_request(!path_style);
    if let Some(endpoint) = &endpoint {
        let mut parsed = check_endpoint(endpoint, at)?;
        allow_http = parsed.scheme() == "http";
        if !path_style {
            // object_store takes a virtual-hosted endpoint as it is: the
            // bucket goes in front of the host here.
            let host = format!("{bucket}.{}", parsed.host_str().unwrap_or_default());
            parsed
                .set_host(Some(&host))
                .map_err(|e| format!("{at}.endpoint {endpoint:?}: {e}"))?;
        }
        builder = builder.with_endpoint(parsed.as_str().trim_end_matches('/'));
    }
    if let Some((id, secret)) = settings.credentials(base_dir, at)? {
        builder = builder
            .with_access_key_id(id)
            .with_secret_access_key(secret);
    } else if ![
        "AWS_ACCESS_KEY_ID",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ]
    .iter()
    .any(|var| std::env::var_os(var).is_some())
    {
        tracing::info!(
            bucket,
            "{at}: no credentials in the config or the environment; asking the instance metadata service"
        );
    }
    // (The client options replace the builder's: allow_http belongs here.)
    let options = ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(timeouts.connect)
        .with_timeout(timeouts.request)
        .with_pool_idle_timeout(Duration::from_secs(60))
        .with_user_agent(http::HeaderValue::from_static(concat!(
            "thumbd/",
            env!("CARGO_PKG_VERSION")
        )));
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 6,
        retry_timeout: timeouts.retry,
    };
    let store = builder
        .with_client_options(options)
        .with_retry(retry)
        .build()
        .map_err(|e| format!("{at}: {e}"))?;
    Ok(Arc::new(store))
}

/// An endpoint setting, parsed: an http(s) URL with a host.
fn check_endpoint(endpoint: &str, at: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(endpoint)
        .map_err(|e| format!("{at}.endpoint {endpoint:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "{at}.endpoint {endpoint:?} must be an http:// or https:// URL"
        ));
    }
    Ok(parsed)
}

/// Checks an `s3` table without building a client (for `check-config`):
/// its endpoint and that its credentials can be read.
pub fn check_s3(settings: &S3Config, base_dir: &Path, at: &str) -> Result<(), String> {
    if let Some(endpoint) = &settings.endpoint {
        check_endpoint(endpoint, at)?;
    }
    settings.credentials(base_dir, at).map(|_| ())
}

/// A folder as a store (created if missing).
pub fn folder(dir: &Path) -> Result<Arc<dyn ObjectStore>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(Arc::new(store))
}

/// A short summary of a storage error for logs: S3's error code when the
/// answer carried one, never the whole body.
pub fn summary(e: &object_store::Error) -> String {
    let text = e.to_string();
    let code = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.to_owned());
    match code {
        Some(code) => format!("{code} ({})", first_words(&text)),
        None => first_words(&text),
    }
}

fn first_words(text: &str) -> String {
    let cut: String = text.chars().take(240).collect();
    cut.split("<?xml").next().unwrap_or("").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(
            split_s3_url("s3://videos/prefix/{key}").unwrap(),
            ("videos", "prefix/{key}")
        );
        assert_eq!(split_s3_url("s3://thumbs").unwrap(), ("thumbs", ""));
        for bad in ["https://b/k", "s3://", "s3://A_B/k", "s3://ab/k"] {
            assert!(split_s3_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn codes_not_bodies() {
        let e = object_store::Error::Generic {
            store: "S3",
            source: "Client error with status 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>long</Message></Error>".into(),
        };
        let s = summary(&e);
        assert!(s.starts_with("SignatureDoesNotMatch ("), "{s}");
        assert!(!s.contains("<Message>"), "{s}");
    }
}
