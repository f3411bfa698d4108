//! The demo page at `GET /` (`server.demo_page`): a gallery of the videos in
//! the configured `file:` environments, the signed sample through a token
//! minted for the page, and a form that builds thumbnail URLs. The page is
//! static HTML built into the binary; what it shows comes from a JSON object
//! written into it per request (the token is fresh each time).

use std::path::Path;

use http::Response;
use serde::Serialize;
use tokio::sync::OnceCell;

use super::responses::{plain, Body};
use crate::auth::{self, SignRequest};
use crate::config::{Access, Config};
use crate::domain::Problem;
use crate::orgs::Orgs;
use crate::render::Renderer;
use crate::request::{self, Params};
use crate::source::SourceTemplate;

const PAGE: &str = include_str!("demo.html");
/// Where the page takes its data; replaced by a JSON object.
const SLOT: &str = "/*THUMBD_DEMO*/null";
/// Videos listed per environment, and in the whole gallery, at most: the
/// first page view probes each one's duration.
const MAX_SAMPLES: usize = 12;
/// File names taken for videos.
const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "webm", "mkv", "ts", "mpg", "mpeg", "flv", "avi", "3gp", "ogv",
];
/// Lifetime of the token minted for the page's signed sample, seconds.
const TOKEN_SECS: u64 = 3600;

/// `GET /`: the page, when it is on (`page`).
pub(super) async fn page(
    page: Option<&DemoPage>,
    renderer: &Renderer,
    head: bool,
) -> Result<Response<Body>, Problem> {
    match page {
        Some(page) => Ok(plain(
            "text/html; charset=utf-8",
            page.render(renderer).await,
            head,
        )),
        None => Err(Problem::not_found(
            "no such endpoint (the demo page is off: server.demo_page)",
        )),
    }
}

#[derive(Debug, Clone, Serialize)]
struct Sample {
    org: String,
    env: String,
    key: String,
    duration_secs: Option<f64>,
}

/// A signed environment's video and a key that can sign for it.
#[derive(Debug, Clone)]
struct SignedSample {
    sample: Sample,
    kid: String,
}

#[derive(Serialize)]
struct SignedJson<'a> {
    #[serde(flatten)]
    sample: &'a Sample,
    token: String,
}

#[derive(Serialize)]
struct PageData<'a> {
    samples: &'a [Sample],
    signed: Option<SignedJson<'a>>,
    formats: [&'static str; 3],
    fits: [&'static str; 4],
}

/// The demo page's contents, found once from the config.
pub(super) struct DemoPage {
    config: Config,
    /// Public videos (durations filled in on the first request).
    found: Vec<Sample>,
    signed: Option<SignedSample>,
    probed: OnceCell<(Vec<Sample>, Option<SignedSample>)>,
}

impl DemoPage {
    /// Lists the videos of every `file:` environment: public ones for the
    /// gallery, the first signed one with a shared-secret key (which the
    /// server can sign with) for the private sample.
    pub(super) fn new(config: &Config, orgs: &Orgs) -> DemoPage {
        let mut found = Vec::new();
        let mut signed = None;
        for (org_id, org) in orgs.iter() {
            for (env_id, env) in org.envs() {
                let Some(template) = env.template() else {
                    continue;
                };
                let keys = list_videos(template);
                let sample = |key: &String| Sample {
                    org: org_id.to_owned(),
                    env: env_id.to_owned(),
                    key: key.clone(),
                    duration_secs: None,
                };
                match env.access {
                    Access::Public => found.extend(keys.iter().map(sample)),
                    Access::Signed if signed.is_none() => {
                        let kid = org
                            .config
                            .signing_keys
                            .iter()
                            .find(|k| k.alg.starts_with("HS") && k.secret.is_some())
                            .map(|k| k.kid.clone());
                        if let (Some(kid), Some(key)) = (kid, keys.first()) {
                            signed = Some(SignedSample {
                                sample: sample(key),
                                kid,
                            });
                        }
                    }
                    Access::Signed => {}
                }
            }
        }
        found.truncate(MAX_SAMPLES);
        DemoPage {
            config: config.clone(),
            found,
            signed,
            probed: OnceCell::new(),
        }
    }

    /// The page, with durations (probed once) and a token minted now.
    async fn render(&self, renderer: &Renderer) -> String {
        let (samples, signed) = self
            .probed
            .get_or_init(|| async {
                let mut samples = self.found.clone();
                for s in &mut samples {
                    s.duration_secs = probe(renderer, s).await;
                }
                let mut signed = self.signed.clone();
                if let Some(s) = &mut signed {
                    s.sample.duration_secs = probe(renderer, &s.sample).await;
                }
                (samples, signed)
            })
            .await;
        let signed = signed.as_ref().and_then(|s| {
            let token = auth::sign_token(
                &self.config,
                &SignRequest {
                    org: &s.sample.org,
                    env: &s.sample.env,
                    key: &s.sample.key,
                    kid: &s.kid,
                    private_key_pem: None,
                    expires_in_secs: TOKEN_SECS,
                    bound: &Params::default(),
                    format: None,
                },
            );
            match token {
                Ok(token) => Some(SignedJson {
                    sample: &s.sample,
                    token,
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "demo page: cannot sign the private sample");
                    None
                }
            }
        });
        let data = PageData {
            samples,
            signed,
            formats: ["webp", "jpg", "png"],
            fits: ["crop", "contain", "fill", "pad"],
        };
        let json = serde_json::to_string(&data)
            .expect("serializes")
            // Inside a <script>: no "</script>" can close it early.
            .replace('<', "\\u003c");
        PAGE.replacen(SLOT, &json, 1)
    }
}

async fn probe(renderer: &Renderer, s: &Sample) -> Option<f64> {
    renderer
        .probe(&s.org, &s.env, &s.key)
        .await
        .ok()
        .and_then(|p| p.duration_secs)
}

/// The videos in a `file:` template's folder when `{key}` is its last path
/// part (`dir/{key}`), sorted, at most [`MAX_SAMPLES`], each a valid key.
fn list_videos(template: &SourceTemplate) -> Vec<String> {
    let SourceTemplate::File(t) = template else {
        return Vec::new();
    };
    let Some(dir) = t.strip_suffix("/{key}") else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| {
            Path::new(name)
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .filter(|name| request::parse_key(name).is_ok())
        .collect();
    keys.sort();
    keys.truncate(MAX_SAMPLES);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gallery_is_bounded_and_the_private_sample_has_a_signing_key() {
        let dir = tempfile::tempdir().unwrap();
        for env in ["a", "b", "p"] {
            std::fs::create_dir(dir.path().join(env)).unwrap();
            for i in 0..10 {
                std::fs::write(dir.path().join(format!("{env}/v{i:02}.mp4")), b"x").unwrap();
            }
        }
        let config = Config::from_toml(
            r#"
[orgs.o.envs.a]
source = "file:a/{key}"
[orgs.o.envs.b]
source = "file:b/{key}"
[orgs.o.envs.p]
source = "file:p/{key}"
access = "signed"
[[orgs.o.signing_keys]]
kid = "k"
alg = "HS256"
secret = "a-secret-that-is-long-enough-0123456789"
"#,
            dir.path(),
        )
        .unwrap();
        let page = DemoPage::new(&config, &crate::orgs::Orgs::resolve(&config).unwrap());
        assert_eq!(page.found.len(), MAX_SAMPLES);
        let signed = page.signed.unwrap();
        assert_eq!(
            (signed.sample.env.as_str(), signed.sample.key.as_str()),
            ("p", "v00.mp4")
        );
        assert_eq!(signed.kid, "k");
    }

    #[test]
    fn lists_the_videos_of_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.mp4", "a.webm", "notes.txt", "bad name.mp4"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.mp4")).unwrap();
        let template = SourceTemplate::parse("file:{key}", dir.path()).unwrap();
        assert_eq!(list_videos(&template), ["a.webm", "b.mp4"]);
        let nested = SourceTemplate::parse("file:{key}/video.mp4", dir.path()).unwrap();
        assert!(list_videos(&nested).is_empty());
    }
}
