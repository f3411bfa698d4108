//! The orgs and environments as thumbd serves them: the config's `[orgs]`
//! resolved once at start-up (source templates parsed, video-URL policies
//! built, upload and default environments chosen), and handed to everything
//! that asks about an org. `check-config` resolves them the same way
//! ([`crate::setup::resolve`]), so what it accepts is what `serve` runs.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use crate::config::{Access, Config, ConfigError, EnvConfig, OrgConfig};
use crate::source::guard::{check_prefix, UrlPolicy};
use crate::source::segments::Scope;
use crate::source::SourceTemplate;

/// Every configured org, by id.
#[derive(Debug, Default)]
pub struct Orgs {
    orgs: BTreeMap<String, Org>,
}

/// One org, resolved.
#[derive(Debug)]
pub struct Org {
    /// Environments by id, including the video-URL environment when the
    /// org takes video URLs.
    envs: BTreeMap<String, Env>,
    /// The environment jobs use when a submission names none.
    pub default_env: Option<String>,
    /// The `store:` environment uploads go to when a call names none.
    pub upload_env: Option<String>,
    /// The environment of caller-named video URLs and their policy, when
    /// the org takes them.
    pub video_urls: Option<VideoUrls>,
    /// The org as written (keys, webhooks, jobs settings).
    pub config: OrgConfig,
}

/// The video-URL side of an org.
#[derive(Debug)]
pub struct VideoUrls {
    pub env: String,
    pub policy: UrlPolicy,
}

/// One environment, resolved.
#[derive(Debug)]
pub struct Env {
    pub locator: Locator,
    pub access: Access,
    /// Allowed widths and heights, sorted, each once (empty: any).
    pub widths: Vec<u32>,
    pub heights: Vec<u32>,
    /// The environment as written (`None` for the video-URL environment):
    /// its S3 and store settings.
    pub config: Option<EnvConfig>,
}

/// How an environment finds a key's video.
#[derive(Debug)]
pub enum Locator {
    /// The configured `source` template, parsed (and named for the env,
    /// see [`SourceTemplate::for_env`]), and where the URIs of a playlist
    /// found through it may point.
    Template {
        template: SourceTemplate,
        scope: Scope,
    },
    /// The org's video URLs, by the key made from each (the URL book).
    VideoUrls,
}

impl Orgs {
    /// Resolves `config.orgs`: parses every source template and video-URL
    /// prefix, and refuses two environments sharing a store folder.
    pub fn resolve(config: &Config) -> Result<Orgs, ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        let mut orgs = BTreeMap::new();
        let mut folders: HashMap<PathBuf, String> = HashMap::new();
        for (org_id, org) in &config.orgs {
            let mut envs = BTreeMap::new();
            for (env_id, env) in &org.envs {
                let at = format!("orgs.{org_id}.envs.{env_id}");
                let template = SourceTemplate::parse(&env.source, &config.base_dir)
                    .map_err(|e| ConfigError::Invalid(format!("{at}.source: {e}")))?;
                match &template {
                    SourceTemplate::S3 { .. } => {
                        crate::objects::check_s3(&env.s3, &config.base_dir, &format!("{at}.s3"))
                            .map_err(ConfigError::Invalid)?;
                    }
                    // A store folder belongs to one environment (its quota,
                    // its files).
                    SourceTemplate::Store(dir) => {
                        if let Some(other) = folders.insert(dir.clone(), at.clone()) {
                            return invalid(format!(
                                "{other} and {at} use the same store folder {}; give each its own",
                                dir.display()
                            ));
                        }
                    }
                    _ => {}
                }
                envs.insert(
                    env_id.clone(),
                    Env::new(template.for_env(org_id, env_id), env),
                );
            }
            let video_urls = if org.takes_video_urls() {
                for prefix in &org.video_url_prefixes {
                    check_prefix(prefix).map_err(|e| {
                        ConfigError::Invalid(format!("orgs.{org_id}.video_url_prefixes: {e}"))
                    })?;
                }
                envs.insert(
                    org.video_url_env.clone(),
                    Env {
                        locator: Locator::VideoUrls,
                        access: Access::Public,
                        widths: Vec::new(),
                        heights: Vec::new(),
                        config: None,
                    },
                );
                Some(VideoUrls {
                    env: org.video_url_env.clone(),
                    policy: UrlPolicy::new(&org.video_url_prefixes, &org.video_url_private_hosts),
                })
            } else {
                None
            };
            orgs.insert(
                org_id.clone(),
                Org {
                    envs,
                    default_env: org.default_env.clone(),
                    upload_env: org.upload_env().map(str::to_owned),
                    video_urls,
                    config: org.clone(),
                },
            );
        }
        Ok(Orgs { orgs })
    }

    pub fn get(&self, org: &str) -> Option<&Org> {
        self.orgs.get(org)
    }

    /// The environment `org`/`env` (a configured one or the org's
    /// video-URL environment).
    pub fn env(&self, org: &str, env: &str) -> Option<&Env> {
        self.orgs.get(org)?.envs.get(env)
    }

    /// Every org with its id.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Org)> {
        self.orgs.iter().map(|(id, org)| (id.as_str(), org))
    }

    /// Every environment with a template: (org, env, template, as written).
    pub fn templates(&self) -> impl Iterator<Item = (&str, &str, &SourceTemplate, &EnvConfig)> {
        self.iter().flat_map(|(org_id, org)| {
            org.envs().filter_map(move |(env_id, env)| {
                Some((org_id, env_id, env.template()?, env.config.as_ref()?))
            })
        })
    }

    /// Whether any org takes video URLs (and so needs the URL book).
    pub fn takes_video_urls(&self) -> bool {
        self.orgs.values().any(|o| o.video_urls.is_some())
    }
}

impl Org {
    /// The org's environments with their ids, the video-URL one included.
    pub fn envs(&self) -> impl Iterator<Item = (&str, &Env)> {
        self.envs.iter().map(|(id, env)| (id.as_str(), env))
    }
}

impl Env {
    fn new(template: SourceTemplate, env: &EnvConfig) -> Env {
        let sorted = |sizes: &[u32]| {
            let mut sizes = sizes.to_vec();
            sizes.sort_unstable();
            sizes.dedup();
            sizes
        };
        Env {
            locator: Locator::Template {
                scope: template.scope(),
                template,
            },
            access: env.access,
            widths: sorted(&env.allowed_widths),
            heights: sorted(&env.allowed_heights),
            config: Some(env.clone()),
        }
    }

    /// The parsed template, for environments that have one.
    pub fn template(&self) -> Option<&SourceTemplate> {
        match &self.locator {
            Locator::Template { template, .. } => Some(template),
            Locator::VideoUrls => None,
        }
    }
}
