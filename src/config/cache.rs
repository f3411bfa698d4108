//! `[cache]`, the shared render cache, S3 settings and secrets.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Bytes of rendered thumbnails kept in memory.
    pub max_bytes: u64,
    /// Bytes of fetched source ranges kept in memory, so several thumbnails of
    /// one video do not fetch its index and packets again.
    pub source_max_bytes: u64,
    /// How long a source's size and validator (ETag / Last-Modified) are
    /// trusted before the next render asks the source again, in seconds.
    pub source_ttl_secs: u64,
    /// Bytes of decoded frames kept, so other sizes of a frame skip decoding.
    pub frame_max_bytes: u64,
    /// A decoded frame unused this long is dropped, seconds.
    pub frame_ttl_secs: u64,
    /// A second tier below memory, shared by every node (a bucket) or kept
    /// across restarts (a folder): `[cache.shared]`.
    pub shared: Option<SharedCacheConfig>,
}

/// The shared render cache: looked in on a memory miss before rendering,
/// written after every render (after the answer has left).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedCacheConfig {
    /// `s3://bucket/prefix/` (with the `[cache.shared.s3]` table) or
    /// `file:dir` (relative to the config's folder).
    pub url: String,
    /// The bucket's endpoint, region and credentials, as an environment's.
    #[serde(default)]
    pub s3: S3Config,
    /// Longest wait for a lookup before rendering instead, milliseconds.
    #[serde(default = "default_shared_timeout_ms")]
    pub timeout_ms: u64,
    /// Writes waiting at most; a render finding the queue full is not
    /// written (and counted), so a slow bucket never holds memory.
    #[serde(default = "default_shared_pending_writes")]
    pub max_pending_writes: usize,
    /// After a failed lookup or write, the shared cache is left alone this
    /// long (renders go straight to the pipeline), seconds.
    #[serde(default = "default_shared_backoff_secs")]
    pub failure_backoff_secs: u64,
}

fn default_shared_timeout_ms() -> u64 {
    1000
}

fn default_shared_pending_writes() -> usize {
    64
}

fn default_shared_backoff_secs() -> u64 {
    5
}

/// An S3-compatible bucket's settings: an environment's `s3` table (for a
/// `source = "s3://bucket/{key}"`) or the shared cache's. Credentials are the
/// table's (each as a value, an `_env` variable or a `_file`), else the
/// standard AWS environment variables and provider chain (web identity,
/// ECS task roles, EC2 instance metadata).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// The service's URL, e.g. `https://s3.eu-central-1.example.com` or
    /// `http://127.0.0.1:9000`; default AWS for the region.
    pub endpoint: Option<String>,
    /// Default `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// The bucket in the path (`endpoint/bucket/key`) instead of the host
    /// name. Default: true when an endpoint is given (what self-hosted
    /// servers expect), false for AWS.
    pub path_style: Option<bool>,
    pub access_key_id: Option<String>,
    pub access_key_id_env: Option<String>,
    pub access_key_id_file: Option<PathBuf>,
    pub secret_access_key: Option<String>,
    pub secret_access_key_env: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
}

impl S3Config {
    /// The configured key pair, if any (a half-given pair is an error).
    pub fn credentials(
        &self,
        base_dir: &Path,
        at: &str,
    ) -> Result<Option<(String, String)>, String> {
        let id = read_secret(
            (
                &self.access_key_id,
                &self.access_key_id_env,
                &self.access_key_id_file,
            ),
            base_dir,
            &format!("{at}.access_key_id"),
        )?;
        let secret = read_secret(
            (
                &self.secret_access_key,
                &self.secret_access_key_env,
                &self.secret_access_key_file,
            ),
            base_dir,
            &format!("{at}.secret_access_key"),
        )?;
        match (id, secret) {
            (Some(id), Some(secret)) => Ok(Some((id, secret))),
            (None, None) => Ok(None),
            _ => Err(format!(
                "{at}: give both access_key_id and secret_access_key (or neither, for the AWS environment variables)"
            )),
        }
    }
}

/// A setting given as a value, an environment variable's name (`_env`) or
/// a file (`_file`: its contents, less a trailing newline); at most one of
/// them. Secrets of every kind (signing keys, S3 keys, database URLs) are
/// read through this.
pub fn read_secret(
    (value, var, file): (&Option<String>, &Option<String>, &Option<PathBuf>),
    base_dir: &Path,
    at: &str,
) -> Result<Option<String>, String> {
    match (value, var, file) {
        (None, None, None) => Ok(None),
        (Some(v), None, None) => Ok(Some(v.clone())),
        (None, Some(var), None) => std::env::var(var)
            .map(Some)
            .map_err(|_| format!("{at}_env: environment variable {var} is not set")),
        (None, None, Some(file)) => {
            let path = base_dir.join(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{at}_file: cannot read {}: {e}", path.display()))?;
            Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()))
        }
        _ => Err(format!(
            "{at}: give at most one of the value, _env and _file"
        )),
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: 512 * 1024 * 1024,
            source_max_bytes: 256 * 1024 * 1024,
            source_ttl_secs: 300,
            frame_max_bytes: 128 * 1024 * 1024,
            frame_ttl_secs: 60,
            shared: None,
        }
    }
}
