//! `[orgs.*]`: organisations, their environments and keys, as written.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::S3Config;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OrgConfig {
    /// Environment jobs use when a submission names none.
    #[serde(default)]
    pub default_env: Option<String>,
    /// Secret that signs this org's webhooks (`Thumbd-Signature`).
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// Hosts (`host` or `host:port`) webhooks may be sent to; nothing else is called.
    #[serde(default)]
    pub webhook_hosts: Vec<String>,
    /// Environments of this org by id (for example `prod`, `staging`).
    #[serde(default)]
    pub envs: BTreeMap<String, EnvConfig>,
    /// Keys that verify tokens of this org's signed environments; several at
    /// once so keys can be rotated.
    #[serde(default)]
    pub signing_keys: Vec<SigningKeyConfig>,
    /// API keys for this org's calls to `/v1/api/...` (`X-Api-Key`).
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Secret of the preview tokens thumbd issues (at least 32 bytes). Without
    /// it, one is derived from the org's first API key.
    #[serde(default)]
    pub preview_secret: Option<String>,
    /// The `store:` environment uploads go to when a call names none.
    /// Default: the org's only `store:` environment.
    #[serde(default)]
    pub upload_env: Option<String>,
    /// URL prefixes the video-URL API may read videos from
    /// (`https://media.example.com/`). Empty: that API is off for the org.
    #[serde(default)]
    pub video_url_prefixes: Vec<String>,
    /// Hosts (exactly as written in the URL) a video URL may name even
    /// though they resolve to a loopback, private or link-local address.
    #[serde(default)]
    pub video_url_private_hosts: Vec<String>,
    /// The environment id under which video-URL thumbnails are served:
    /// `/v1/thumbnail/{org}/{video_url_env}/{key}.webp`.
    #[serde(default = "default_video_url_env")]
    pub video_url_env: String,
}

fn default_video_url_env() -> String {
    "url".into()
}

impl OrgConfig {
    /// The `store:` environment uploads go to when a call names none.
    pub fn upload_env(&self) -> Option<&str> {
        if let Some(env) = &self.upload_env {
            return Some(env);
        }
        let mut stores = self.envs.iter().filter(|(_, e)| e.is_store());
        match (stores.next(), stores.next()) {
            (Some((id, _)), None) => Some(id),
            _ => None,
        }
    }

    /// Whether the video-URL API is on for this org.
    pub fn takes_video_urls(&self) -> bool {
        !self.video_url_prefixes.is_empty()
    }
}

/// One key that verifies signed URLs. Exactly one source of key material:
/// `public_key` / `public_key_file` (PEM) for RS*, PS*, ES* and EdDSA;
/// `secret` / `secret_env` / `secret_file` for HS*.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyConfig {
    /// The `kid` tokens name in their header.
    pub kid: String,
    /// The only algorithm accepted for this key.
    pub alg: String,
    pub public_key: Option<String>,
    pub public_key_file: Option<PathBuf>,
    pub secret: Option<String>,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {
    /// Where videos come from: `http(s)://host/path/{key}`, `file:dir/{key}`,
    /// or `store:dir` (thumbd's own store of uploaded videos).
    pub source: String,
    /// Who may fetch thumbnails.
    #[serde(default)]
    pub access: Access,
    /// Limits of a `store:` environment.
    #[serde(default)]
    pub store: StoreConfig,
    /// The bucket of an `s3://` source: endpoint, region, credentials.
    #[serde(default)]
    pub s3: S3Config,
    /// Thumbnail widths served (1-4096): a requested width becomes the
    /// nearest of them (the larger on a tie), so widths a client makes up
    /// share a few cache entries. Empty: any width.
    #[serde(default)]
    pub allowed_widths: Vec<u32>,
    /// The same for heights.
    #[serde(default)]
    pub allowed_heights: Vec<u32>,
}

impl EnvConfig {
    pub fn is_store(&self) -> bool {
        self.source.starts_with("store:")
    }
}

/// Limits of a `store:` environment (uploaded videos on local disk).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Largest upload, bytes; a larger one is cut off while it streams (413).
    pub max_upload_bytes: u64,
    /// Bytes all stored videos may take; an upload past it is refused (507).
    pub quota_bytes: u64,
    /// Days a video is kept after its last upload with `?persistent=true`;
    /// 0 keeps it forever.
    pub retention_days: u64,
    /// Hours a video uploaded without `?persistent=true` is kept after its
    /// last upload (never longer than `retention_days`); 0: as long as a
    /// persistent one.
    pub temporary_hours: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_upload_bytes: 1024 * 1024 * 1024,
            quota_bytes: 20 * 1024 * 1024 * 1024,
            retention_days: 30,
            temporary_hours: 24,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Anyone with the URL.
    #[default]
    Public,
    /// Only requests with a valid signed token.
    Signed,
}
