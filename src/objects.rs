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
    let configured = settings.endpoint.clone().or_else(|| {
        ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
            .iter()
            .find_map(|var| std::env::var(var).ok())
    });
    let endpoint = Endpoint::resolve(bucket, configured.as_deref(), settings.path_style, at)?;
    builder = builder.with_virtual_hosted_style_request(!endpoint.path_style);
    if let Some(url) = &endpoint.url {
        builder = builder.with_endpoint(url);
    }
    let allow_http = endpoint.allow_http;
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

/// Where a client sends its requests, as object_store wants it told.
#[derive(Debug, PartialEq)]
struct Endpoint {
    /// `None`: AWS for the region.
    url: Option<String>,
    /// The bucket in the path rather than the host.
    path_style: bool,
    allow_http: bool,
}

impl Endpoint {
    /// From the configured endpoint (if any) and `path_style` (default:
    /// true with an endpoint). object_store takes a virtual-hosted endpoint
    /// as it is, so the bucket is put in front of its host here.
    fn resolve(
        bucket: &str,
        configured: Option<&str>,
        path_style: Option<bool>,
        at: &str,
    ) -> Result<Endpoint, String> {
        let path_style = path_style.unwrap_or(configured.is_some());
        let Some(configured) = configured else {
            return Ok(Endpoint {
                url: None,
                path_style,
                allow_http: false,
            });
        };
        let mut parsed = check_endpoint(configured, at)?;
        if !path_style {
            let host = format!("{bucket}.{}", parsed.host_str().unwrap_or_default());
            parsed
                .set_host(Some(&host))
                .map_err(|e| format!("{at}.endpoint {configured:?}: {e}"))?;
        }
        Ok(Endpoint {
            url: Some(parsed.as_str().trim_end_matches('/').to_owned()),
            path_style,
            allow_http: parsed.scheme() == "http",
        })
    }
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
    fn endpoints() {
        let resolve =
            |configured, path_style| Endpoint::resolve("vids", configured, path_style, "s3");
        assert_eq!(
            resolve(None, None).unwrap(),
            Endpoint {
                url: None,
                path_style: false,
                allow_http: false
            },
            "AWS: virtual-hosted"
        );
        assert_eq!(
            resolve(Some("http://127.0.0.1:9000/"), None).unwrap(),
            Endpoint {
                url: Some("http://127.0.0.1:9000".into()),
                path_style: true,
                allow_http: true
            },
            "an endpoint: path style, plain http allowed for http://"
        );
        assert_eq!(
            resolve(Some("https://s3.example.com"), Some(false)).unwrap(),
            Endpoint {
                url: Some("https://vids.s3.example.com".into()),
                path_style: false,
                allow_http: false
            },
            "virtual-hosted with an endpoint: the bucket in the host"
        );
        assert!(resolve(Some("ftp://x"), None).is_err());
        assert!(resolve(Some("not a url"), None).is_err());
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
