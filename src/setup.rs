//! Start-up: the one place the configuration becomes thumbd's resolved
//! state. [`resolve`] runs every check that needs a subsystem's own parser
//! (source templates, video-URL prefixes, S3 settings and credentials, the
//! database URL, signing keys), each in that subsystem's constructor; both
//! `serve` and `check-config` call it, so what `check-config` accepts is
//! what `serve` starts with, and nothing is parsed twice. [`build`] is the
//! composition root: it builds every service from the resolved state, each
//! after those it uses.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Verifier;
use crate::config::{Config, ConfigError};
use crate::http::{App, Services};
use crate::jobs::Jobs;
use crate::metrics::Metrics;
use crate::objects::Timeouts;
use crate::orgs::Orgs;
use crate::render::{RenderParts, Renderer};
use crate::shared_cache::SharedCache;
use crate::source::urlbook::UrlBook;
use crate::source::{SourceTemplate, Sources};
use crate::store::Stores;

/// What start-up builds from the configuration before any service.
pub struct Resolved {
    pub orgs: Arc<Orgs>,
    pub verifier: Verifier,
}

/// Checks `config` against every subsystem and resolves it.
pub fn resolve(config: &Config) -> Result<Resolved, ConfigError> {
    if let Some(shared) = &config.cache.shared {
        let url = &shared.url;
        let ok = match url.strip_prefix("file:") {
            Some(dir) => !dir.trim_start_matches("//").is_empty(),
            None => crate::objects::split_s3_url(url).is_ok(),
        };
        if !ok {
            return Err(ConfigError::Invalid(format!(
                "cache.shared.url {url:?} must be s3://bucket/prefix/ or file:folder"
            )));
        }
        if url.starts_with("s3://") {
            crate::objects::check_s3(&shared.s3, &config.base_dir, "cache.shared.s3")
                .map_err(ConfigError::Invalid)?;
        }
    }
    if let Some(url) = &config.jobs.database_url {
        crate::db::postgres::check_url(url).map_err(ConfigError::Invalid)?;
    }
    let orgs = Arc::new(Orgs::resolve(config)?);
    // Key material is read and checked here, so a bad key fails start-up.
    let verifier = Verifier::new(config).map_err(ConfigError::Invalid)?;
    Ok(Resolved { orgs, verifier })
}

/// Builds the server's services from the resolved state, in order:
/// metrics, sources, the shared cache, the URL book, the renderer, the
/// upload stores, the jobs (which start their dispatcher), and the app.
pub async fn build(config: &Config, resolved: Resolved) -> anyhow::Result<App> {
    let Resolved { orgs, verifier } = resolved;
    let renderer = Arc::new(renderer(config, orgs.clone())?);
    let stores = Stores::open(&orgs)?;
    stores.spawn_sweeper();
    let jobs = Jobs::start(config, &orgs, renderer.clone()).await?;
    let services = Services {
        orgs,
        verifier,
        renderer,
        stores,
        jobs,
    };
    App::new(config, services)
}

/// The renderer and what it is built on, in order: metrics, sources, the
/// shared cache, the URL book. (The CLI's `render` uses it alone.)
pub fn renderer(config: &Config, orgs: Arc<Orgs>) -> anyhow::Result<Renderer> {
    let metrics = Arc::new(Metrics::new());
    let buckets: Vec<_> = orgs
        .templates()
        .filter_map(|(org, env, template, written)| match template {
            SourceTemplate::S3 { bucket, .. } => Some((org, env, bucket.as_str(), &written.s3)),
            _ => None,
        })
        .collect();
    let policies = orgs
        .iter()
        .filter_map(|(id, org)| Some((id.to_owned(), org.video_urls.as_ref()?.policy.clone())))
        .collect();
    let sources = Sources::for_config(config, &buckets, policies, metrics.source.clone())?;
    let shared = match &config.cache.shared {
        Some(settings) => {
            let timeouts = Timeouts {
                connect: Duration::from_secs(config.fetch.connect_timeout_secs),
                request: Duration::from_secs(config.fetch.request_timeout_secs),
                retry: Duration::from_millis(settings.timeout_ms),
            };
            let cache = SharedCache::new(settings, &config.base_dir, timeouts, metrics.clone())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            tracing::info!(cache = %cache.location(), "shared render cache");
            Some(Arc::new(cache))
        }
        None => None,
    };
    let urls = if orgs.takes_video_urls() {
        Some(Arc::new(UrlBook::open(config)?))
    } else {
        None
    };
    let parts = RenderParts {
        orgs,
        metrics,
        sources,
        urls,
        shared,
    };
    Ok(Renderer::new(config, parts))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::S3Config;

    /// Loads as `check-config` does: the file's own checks, then every
    /// subsystem's.
    fn load(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let config = Config::from_toml(text, base)?;
        resolve(&config)?;
        Ok(config)
    }

    #[test]
    fn keys_and_store_folders_belong_to_one_org() {
        let load = |text: &str| load(text, Path::new("/srv"));
        let shared_key = "[orgs.a]\napi_keys = [\"k-0123456789abcdef\"]\n\
                          [orgs.b]\napi_keys = [\"k-0123456789abcdef\"]\n";
        assert!(load(shared_key)
            .unwrap_err()
            .to_string()
            .contains("share an API key"));
        let shared_store = "[orgs.a.envs.up]\nsource = \"store:data/up\"\n\
                            [orgs.b.envs.up]\nsource = \"store:data/up\"\n";
        assert!(load(shared_store)
            .unwrap_err()
            .to_string()
            .contains("same store folder"));
        let c = load(
            "[orgs.a]\nupload_env = \"up\"\n[orgs.a.envs.up]\nsource = \"store:data/a\"\n\
             [orgs.a.envs.up.store]\nmax_upload_bytes = 10\n\
             [orgs.b.envs.up]\nsource = \"store:data/b\"\n",
        )
        .unwrap();
        assert_eq!(c.orgs["a"].upload_env(), Some("up"));
        assert_eq!(c.orgs["b"].upload_env(), Some("up"), "the only store env");
        assert_eq!(c.orgs["a"].envs["up"].store.max_upload_bytes, 10);
        assert!(load("[orgs.a]\nupload_env = \"x\"\n").is_err());
        assert!(load("[orgs.a.envs.up]\nsource = \"store:{key}\"\n").is_err());
        let urls = "[orgs.a]\nvideo_url_prefixes = [\"ftp://x/\"]\n";
        assert!(load(urls).is_err());
        let clash = "[orgs.a]\nvideo_url_prefixes = [\"https://m.example.com/\"]\n\
                     [orgs.a.envs.url]\nsource = \"file:v/{key}\"\n";
        assert!(load(clash)
            .unwrap_err()
            .to_string()
            .contains("video_url_env"));
    }

    #[test]
    fn rejects_bad_sources_and_ids() {
        for bad in ["ftp://x/{key}", "https://x/video.mp4", "file:videos"] {
            let text = format!("[orgs.a.envs.b]\nsource = \"{bad}\"\n");
            assert!(load(&text, Path::new(".")).is_err(), "{bad}");
        }
        let text = "[orgs.\"a b\".envs.b]\nsource = \"file:x/{key}\"\n";
        assert!(load(text, Path::new(".")).is_err());
    }

    #[test]
    fn a_private_bucket_in_three_lines() {
        // As README's "Running several nodes" shows it.
        let text = "[orgs.acme.envs.prod]\nsource = \"s3://acme-videos/uploads/{key}\"\n\
                    s3 = { region = \"eu-west-1\" }\n";
        let c = load(text, Path::new(".")).unwrap();
        let env = &c.orgs["acme"].envs["prod"];
        assert_eq!(env.s3.region.as_deref(), Some("eu-west-1"));
        assert_eq!(env.s3.credentials(Path::new("."), "x").unwrap(), None);
        // Half a key pair, two sources of one key, or an unknown key: refused.
        let half = S3Config {
            access_key_id: Some("AK".into()),
            ..S3Config::default()
        };
        assert!(half
            .credentials(Path::new("."), "x")
            .unwrap_err()
            .contains("both"));
        let two = S3Config {
            access_key_id: Some("AK".into()),
            access_key_id_env: Some("AK_VAR".into()),
            secret_access_key: Some("SK".into()),
            ..S3Config::default()
        };
        assert!(two
            .credentials(Path::new("."), "x")
            .unwrap_err()
            .contains("at most one"));
        assert!(load(&text.replace("region", "regoin"), Path::new(".")).is_err());
        // check-config reads the credentials and the endpoint as start-up would.
        for bad in [
            "s3 = { access_key_id = \"AK\" }",
            "s3 = { access_key_id = \"AK\", secret_access_key_env = \"THUMBD_TEST_UNSET_VAR\" }",
            "s3 = { endpoint = \"ftp://x\" }",
        ] {
            let text = text.replace("s3 = { region = \"eu-west-1\" }", bad);
            assert!(load(&text, Path::new(".")).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_shared_cache_is_a_bucket_or_a_folder() {
        let text =
            "[cache.shared]\nurl = \"file:data/renders\"\n[orgs.a.envs.b]\nsource = \"file:x/{key}\"\n";
        let c = load(text, Path::new(".")).unwrap();
        let shared = c.cache.shared.unwrap();
        assert_eq!((shared.timeout_ms, shared.max_pending_writes), (1000, 64));
        for bad in ["ftp://x/", "file:", "s3://A/"] {
            let text = text.replace("file:data/renders", bad);
            assert!(load(&text, Path::new(".")).is_err(), "{bad}");
        }
    }
}
