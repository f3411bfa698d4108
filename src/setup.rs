//! Start-up: the one place the configuration becomes thumbd's resolved
//! state. [`resolve`] runs every check that needs a subsystem's own parser
//! (source templates, video-URL prefixes, S3 settings and credentials, the
//! database URL, signing keys), each in that subsystem's constructor; both
//! `serve` and `check-config` call it, so what `check-config` accepts is
//! what `serve` starts with, and nothing is parsed twice.

use std::sync::Arc;

use crate::auth::Verifier;
use crate::config::{Config, ConfigError};
use crate::orgs::Orgs;

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
