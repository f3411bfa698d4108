//! Configuration: the TOML file, its defaults, and validation.
//!
//! Every section is a typed struct with `deny_unknown_fields`, so a typo in a
//! key is an error at start-up rather than a setting silently ignored. All
//! defaults live in the `Default` impls below; `config/thumbd.toml` is the
//! commented sample and the embedded default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod cache;
mod limits;
mod orgs;
mod server;
#[cfg(test)]
mod tests;

pub use cache::{read_secret, CacheConfig, S3Config, SharedCacheConfig};
pub use limits::{AuthConfig, FetchConfig, JobsConfig, PicturesConfig, RenderConfig};
pub use orgs::{Access, EnvConfig, OrgConfig, SigningKeyConfig, StoreConfig};
pub use server::{Cidr, LogConfig, LogFormat, ServerConfig};

/// The embedded default configuration: org `demo`, env `local`, sample videos
/// from the repository. Used when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/thumbd.toml");

/// Where relative `file:` sources of the embedded default resolve from.
pub const EMBEDDED_DEFAULT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config");

/// Errors found while loading or checking the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    // Not `#[from]`: the message already holds the parse error, and a
    // source would print it twice in an error chain.
    #[error("invalid config: {0}")]
    Parse(toml::de::Error),
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub render: RenderConfig,
    /// Storyboards and animated previews.
    #[serde(default)]
    pub pictures: PicturesConfig,
    #[serde(default)]
    pub fetch: FetchConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub jobs: JobsConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Organisations by id; each owns environments.
    #[serde(default)]
    pub orgs: BTreeMap<String, OrgConfig>,
    /// The folder the config file was read from: relative `file:` sources
    /// resolve against it. Not part of the file.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl Config {
    /// Where the job database lives.
    pub fn jobs_db_path(&self) -> PathBuf {
        match &self.jobs.db_path {
            Some(p) => self.base_dir.join(p),
            None => self.base_dir.join("data/thumbd.db"),
        }
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        Config::from_toml(&text, &base)
    }

    /// The embedded default configuration.
    pub fn embedded_default() -> Config {
        Config::from_toml(EMBEDDED_DEFAULT, Path::new(EMBEDDED_DEFAULT_DIR))
            .expect("the embedded default config is valid")
    }

    /// Parses and validates TOML; relative `file:` sources resolve from `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(ConfigError::Parse)?;
        config.base_dir = base_dir.to_owned();
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        if self.render.queue == 0 {
            return invalid("render.queue must be at least 1".into());
        }
        if let Some(share) = self.render.per_client_queue {
            if share == 0 || share > self.render.queue {
                return invalid(format!(
                    "render.per_client_queue must be between 1 and render.queue ({})",
                    self.render.queue
                ));
            }
        }
        match &self.server.client_header {
            Some(name) if http::HeaderName::from_bytes(name.as_bytes()).is_err() => {
                return invalid(format!(
                    "server.client_header {name:?} is not a header name"
                ));
            }
            Some(_) if self.server.trusted_proxies.is_empty() => {
                return invalid(
                    "server.client_header is read only from trusted_proxies: list them".into(),
                );
            }
            None if !self.server.trusted_proxies.is_empty() => {
                return invalid(
                    "server.trusted_proxies needs server.client_header (the header they name the client in)"
                        .into(),
                );
            }
            _ => {}
        }
        let p = &self.pictures;
        let pictures_ok = p.animated_max_secs > 0.0
            && p.animated_max_secs <= 60.0
            && (1..=60).contains(&p.animated_max_fps)
            && (1..=crate::domain::MAX_DIMENSION).contains(&p.animated_max_width);
        if !pictures_ok {
            return invalid(
                "pictures.animated_max_secs must be in (0, 60], animated_max_fps in 1-60 and \
                 animated_max_width in 1-4096"
                    .into(),
            );
        }
        if !(1..=10_000).contains(&p.storyboard_max_tiles) {
            // (A first sheet's layout lists every tile; past 10 000 it
            // nears what the shared cache reads back of an entry's header.)
            return invalid(format!(
                "pictures.storyboard_max_tiles must be between 1 and 10000, not {}",
                p.storyboard_max_tiles
            ));
        }
        if hex_colour(&p.jpeg_background).is_none() {
            return invalid(format!(
                "pictures.jpeg_background {:?} is not a colour: write it as #rrggbb, six hex \
                 digits (#ffffff is white)",
                p.jpeg_background
            ));
        }
        if !(8192..=1024 * 1024).contains(&self.server.max_header_bytes) {
            return invalid(
                "server.max_header_bytes must be between 8192 and 1048576 (bytes)".into(),
            );
        }
        if self.server.header_read_timeout_secs == 0 || self.server.body_idle_timeout_secs == 0 {
            return invalid(
                "server.header_read_timeout_secs and server.body_idle_timeout_secs must be at least 1"
                    .into(),
            );
        }
        if self.server.send_timeout_secs == 0 {
            return invalid("server.send_timeout_secs must be at least 1".into());
        }
        if self.render.timeout_secs == 0 {
            return invalid("render.timeout_secs must be at least 1".into());
        }
        if let Some(shared) = &self.cache.shared {
            if shared.timeout_ms == 0 || shared.max_pending_writes == 0 {
                return invalid(
                    "cache.shared.timeout_ms and max_pending_writes must be at least 1".into(),
                );
            }
            if shared.failure_backoff_secs > 3600 {
                return invalid("cache.shared.failure_backoff_secs must be at most 3600".into());
            }
        }
        if self.render.max_playlist_bytes == 0 || self.render.max_playlist_segments == 0 {
            return invalid(
                "render.max_playlist_bytes and render.max_playlist_segments must be positive"
                    .into(),
            );
        }
        if self.fetch.initial_read_bytes == 0 || self.fetch.max_read_bytes == 0 {
            return invalid(
                "fetch.initial_read_bytes and fetch.max_read_bytes must be positive".into(),
            );
        }
        if self.jobs.per_org_concurrency == 0
            || self.jobs.max_queue == 0
            || self.jobs.max_attempts == 0
        {
            return invalid(
                "jobs.per_org_concurrency, jobs.max_queue and jobs.max_attempts must be at least 1"
                    .into(),
            );
        }
        let j = &self.jobs;
        let urls = [
            j.database_url.is_some(),
            j.database_url_env.is_some(),
            j.database_url_file.is_some(),
        ];
        if urls.iter().filter(|given| **given).count() > 1 {
            return invalid(
                "jobs: give at most one of database_url, database_url_env and database_url_file"
                    .into(),
            );
        }
        if j.lease_secs == 0 || j.poll_ms == 0 {
            return invalid("jobs.lease_secs and jobs.poll_ms must be at least 1".into());
        }
        if j.node_id.as_ref().is_some_and(|n| n.trim().is_empty()) {
            return invalid("jobs.node_id must not be empty".into());
        }
        for (org_id, org) in &self.orgs {
            check_id("org", org_id)?;
            if let Some(env) = &org.default_env {
                if !org.envs.contains_key(env) {
                    return invalid(format!(
                        "orgs.{org_id}.default_env {env:?} is not one of its envs"
                    ));
                }
            }
            if let Some(env) = &org.upload_env {
                if !org.envs.get(env).is_some_and(EnvConfig::is_store) {
                    return invalid(format!(
                        "orgs.{org_id}.upload_env {env:?} is not one of its store: envs"
                    ));
                }
            }
            if org.takes_video_urls() {
                check_id("video_url_env", &org.video_url_env)?;
                if org.envs.contains_key(&org.video_url_env) {
                    return invalid(format!(
                        "orgs.{org_id}.video_url_env {:?} is also a configured env; name one of them differently",
                        org.video_url_env
                    ));
                }
            }
            for (env_id, env) in &org.envs {
                check_id("env", env_id)?;
                let at = format!("orgs.{org_id}.envs.{env_id}");
                for (name, sizes) in [
                    ("allowed_widths", &env.allowed_widths),
                    ("allowed_heights", &env.allowed_heights),
                ] {
                    if let Some(bad) = sizes
                        .iter()
                        .find(|s| !(1..=crate::domain::MAX_DIMENSION).contains(*s))
                    {
                        return invalid(format!(
                            "{at}.{name}: {bad} is not between 1 and {}",
                            crate::domain::MAX_DIMENSION
                        ));
                    }
                }
                if env.is_store() && (env.store.max_upload_bytes == 0 || env.store.quota_bytes == 0)
                {
                    return invalid(format!(
                        "{at}.store.max_upload_bytes and quota_bytes must be positive"
                    ));
                }
                if env.access == Access::Signed
                    && org.signing_keys.is_empty()
                    && org.api_keys.is_empty()
                {
                    return invalid(format!(
                        "{at}.access = \"signed\" but org {org_id:?} has no signing_keys (nor api_keys for \
                         preview tokens): nothing could ever open it"
                    ));
                }
            }
        }
        // An API key names its org (routes without an org in the path).
        let mut keys = std::collections::HashMap::new();
        for (org_id, org) in &self.orgs {
            for key in &org.api_keys {
                if let Some(other) = keys.insert(key.as_str(), org_id.as_str()) {
                    if other != org_id {
                        return invalid(format!(
                            "orgs {other:?} and {org_id:?} share an API key; each key must belong to one org"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The environment `org`/`env`, if configured.
    pub fn env(&self, org: &str, env: &str) -> Option<&EnvConfig> {
        self.orgs.get(org)?.envs.get(env)
    }
}

/// A colour written `#rrggbb` (six hex digits, either case), as
/// `pictures.jpeg_background` takes it, as RGB; `None` for anything else.
/// Checked at start-up, so the renderer can rely on it.
pub fn hex_colour(text: &str) -> Option<[u8; 3]> {
    let hex = text.strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

fn check_id(what: &str, id: &str) -> Result<(), ConfigError> {
    if crate::domain::is_valid_id(id) {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "{what} id {id:?} must be 1-64 letters, digits, '-' or '_'"
        )))
    }
}
