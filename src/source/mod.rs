//! Sources: where videos come from, read as seekable byte streams.
//!
//! An environment's `source` template (`https://host/{key}`,
//! `s3://bucket/prefix/{key}` or `file:dir/{key}`) turns a validated key into a [`SourceLocation`]; thumbd
//! never fetches a location a request supplies. [`Sources::open`] checks the
//! video exists (async, so a 404 costs no render slot) and returns a blocking
//! [`SourceRead`] for the media pipeline.
//!
//! Video URLs that a caller names (the video-URL API) are the one
//! exception: they are read only through an org's [`guard::UrlPolicy`].
//!
//! - [`http`]: HTTP range reads with a shared block cache.
//! - [`object`]: the same reads of objects in a bucket (signed, ranged,
//!   conditional GETs).
//! - [`guard`]: which caller-named URLs may be read, and a client that
//!   connects only to allowed addresses.
//! - [`urlbook`]: the video URLs thumbd has been given, by key.
//! - [`range`]: `Range`/`Content-Range` arithmetic. Pure.
//! - [`streaming`]: HLS playlists and DASH manifests as a rendition's
//!   segments. Pure.
//! - [`segments`]: where a playlist's URIs may point, reading playlists
//!   and opening segments (each after its init segment, read as one file
//!   through [`concat`](mod@concat)).

pub mod concat;
pub mod guard;
pub mod http;
pub mod object;
pub mod range;
pub mod segments;
pub mod streaming;
pub mod urlbook;

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::HashMap;

use crate::config::{CacheConfig, Config, FetchConfig, S3Config};
use crate::domain::Problem;
use crate::metrics::SourceMetrics;
use crate::objects::Timeouts;
use ::http::StatusCode;

/// A blocking, seekable view of one video's bytes.
pub trait SourceRead: Read + Seek + Send {
    /// Total size in bytes.
    fn size(&self) -> u64;

    /// Whether only the start of the video is wanted (a segment's first
    /// frame): the demuxer is then not told the size (FFmpeg does not read
    /// an MPEG-TS file's end to estimate its duration) and analyses only
    /// its first frames (no frame-rate estimate).
    fn start_only(&self) -> bool {
        false
    }

    /// Says bytes `start..end` will be read soon, so a remote source can
    /// fetch them in one request. A hint: sources without round trips ignore it.
    fn prefetch(&mut self, _start: u64, _end: u64) -> std::io::Result<()> {
        Ok(())
    }

    /// Says each of `ranges` (start, end) will be read soon: a remote
    /// source fetches them at once, several requests in flight, instead of
    /// one round trip after another (a storyboard's keyframes).
    fn prefetch_many(&mut self, ranges: &[(u64, u64)]) -> std::io::Result<()> {
        for &(start, end) in ranges {
            self.prefetch(start, end)?;
        }
        Ok(())
    }
}

impl SourceRead for std::fs::File {
    fn size(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
}

/// Bytes in memory: for the fuzzers and tools that feed the pipeline
/// directly.
impl SourceRead for std::io::Cursor<Vec<u8>> {
    fn size(&self) -> u64 {
        self.get_ref().len() as u64
    }
}

/// Why a source could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error("the video does not exist in the source")]
    NotFound,
    #[error("the source did not answer in time")]
    Timeout,
    #[error("the source answered {status}")]
    Status { status: u16 },
    #[error("the source sent a bad response: {0}")]
    BadResponse(String),
    #[error("the source changed while it was being read")]
    Changed,
    #[error("could not reach the source: {0}")]
    Connect(String),
    #[error("source I/O error: {0}")]
    Io(String),
    /// A caller-named URL thumbd will not read (its address, a redirect).
    #[error("{0}")]
    Forbidden(String),
    /// The object behind a video URL is not the one its key was made for.
    #[error("the video at this URL has changed since its key was made")]
    Replaced,
    /// Object storage refused thumbd's credentials or its request: the
    /// environment's `s3` settings or the bucket's policy are wrong.
    #[error("object storage refused access ({0}): check the environment's s3 credentials, region and endpoint, and the bucket policy")]
    Denied(String),
    /// A playlist or manifest thumbd cannot use.
    #[error(transparent)]
    Stream(#[from] streaming::StreamError),
    /// A playlist names a URI outside the video's source.
    #[error("{0}")]
    OutsideSource(String),
}

impl SourceError {
    /// A short stable name, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::NotFound => "not_found",
            SourceError::Timeout => "timeout",
            SourceError::Status { .. } => "status",
            SourceError::BadResponse(_) => "bad_response",
            SourceError::Changed => "changed",
            SourceError::Connect(_) => "connect",
            SourceError::Io(_) => "io",
            SourceError::Forbidden(_) => "forbidden",
            SourceError::Replaced => "replaced",
            SourceError::Denied(_) => "denied",
            SourceError::Stream(_) => "stream",
            SourceError::OutsideSource(_) => "outside_source",
        }
    }
}

/// An environment's parsed `source` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceTemplate {
    /// URL with `{key}`.
    Http(String),
    /// Absolute path with `{key}`.
    File(String),
    /// thumbd's own store of uploads: the store's folder (objects are in
    /// its `objects/` folder, named by key).
    Store(PathBuf),
    /// `s3://bucket/path-with-{key}`: `store` names the client
    /// ([`SourceTemplate::for_env`]), `path` the object.
    S3 {
        store: String,
        bucket: String,
        path: String,
    },
}

/// Where one video is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceLocation {
    Http(String),
    File(PathBuf),
    /// A video URL named by a caller of `org`, read through the org's
    /// guard; `validator` is what the object had when its key was made
    /// (empty if the server sends none).
    Url {
        org: String,
        url: String,
        validator: String,
    },
    /// An object in the bucket of the environment `store` names.
    Object {
        store: String,
        path: String,
    },
    /// A URL a playlist at a video URL of `org` names (a segment, a
    /// rendition's playlist): read through the org's guard, without a
    /// validator of its own.
    UrlPart {
        org: String,
        url: String,
    },
}

impl SourceTemplate {
    /// Parses a template; relative `file:` paths resolve against `base_dir`.
    pub fn parse(template: &str, base_dir: &Path) -> Result<SourceTemplate, String> {
        if template.starts_with("s3://") {
            let (bucket, path) = crate::objects::split_s3_url(template)?;
            if !path.contains("{key}") {
                return Err(format!(
                    "{template:?}: {{key}} must be in the object's path, after the bucket"
                ));
            }
            // Object names are taken as written: no character the object
            // store would encode, no empty, `.` or `..` segment.
            let fixed = path.replace("{key}", "k");
            let plain = |c: char| c.is_ascii_alphanumeric() || "/.-_".contains(c);
            if !fixed.chars().all(plain)
                || fixed
                    .split('/')
                    .any(|s| s.is_empty() || s == "." || s == "..")
            {
                return Err(format!(
                    "{template:?}: the object path may hold only letters, digits, '/', '.', '-' and '_', \
                     with no empty, '.' or '..' segment"
                ));
            }
            return Ok(SourceTemplate::S3 {
                store: bucket.to_owned(),
                bucket: bucket.to_owned(),
                path: path.to_owned(),
            });
        }
        if template.starts_with("store:") {
            if template.contains("{key}") {
                return Err(format!(
                    "{template:?}: a store: source names a folder, without {{key}}"
                ));
            }
        } else if template.matches("{key}").count() != 1 {
            return Err(format!("{template:?} must contain {{key}} exactly once"));
        }
        if template.starts_with("http://") || template.starts_with("https://") {
            // The key may only ever fill the path: a key in the host would let
            // a request choose which server thumbd calls.
            let before_key = &template[..template.find("{key}").expect("checked above")];
            let after_scheme = before_key.split_once("://").map_or("", |(_, rest)| rest);
            if !after_scheme.contains('/') {
                return Err(format!(
                    "{template:?}: {{key}} must be in the URL's path, after the host"
                ));
            }
            let probe = template.replace("{key}", "k");
            let url = reqwest::Url::parse(&probe)
                .map_err(|e| format!("{template:?} is not a valid URL: {e}"))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err(format!("{template:?} has no host"));
            }
            Ok(SourceTemplate::Http(template.to_owned()))
        } else if let Some(path) = template.strip_prefix("file:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            let full = if Path::new(path).is_absolute() {
                PathBuf::from(path)
            } else {
                base_dir.join(path)
            };
            Ok(SourceTemplate::File(full.to_string_lossy().into_owned()))
        } else if let Some(path) = template.strip_prefix("store:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(format!(
                    "{template:?} must name a folder: store:data/uploads"
                ));
            }
            Ok(SourceTemplate::Store(base_dir.join(path)))
        } else {
            Err(format!(
                "{template:?} must start with http://, https://, s3://, file: or store:"
            ))
        }
    }

    /// The location of `key`, which must already be validated (see
    /// [`crate::request`]): only letters, digits, `/`, `.`, `-`, `_`, and no
    /// empty, `.` or `..` segments, so it cannot leave the template's root.
    pub fn locate(&self, key: &str) -> SourceLocation {
        match self {
            SourceTemplate::Http(t) => SourceLocation::Http(t.replace("{key}", key)),
            SourceTemplate::File(t) => SourceLocation::File(PathBuf::from(t.replace("{key}", key))),
            SourceTemplate::Store(dir) => SourceLocation::File(dir.join("objects").join(key)),
            SourceTemplate::S3 { store, path, .. } => SourceLocation::Object {
                store: store.clone(),
                path: path.replace("{key}", key),
            },
        }
    }

    /// The template as environment `org`/`env` uses it: an `s3://` one
    /// reads through that environment's client.
    pub fn for_env(self, org: &str, env: &str) -> SourceTemplate {
        match self {
            SourceTemplate::S3 { bucket, path, .. } => SourceTemplate::S3 {
                store: store_name(org, env),
                bucket,
                path,
            },
            other => other,
        }
    }
}

/// The name of an environment's bucket client.
fn store_name(org: &str, env: &str) -> String {
    format!("{org}/{env}")
}

/// Opens sources; owns the HTTP clients and the cache of fetched bytes.
#[derive(Clone)]
pub struct Sources {
    http: http::HttpSources,
    /// Per org taking video URLs: its policy, and sources read through a
    /// client that enforces it (sharing the byte cache, in the org's own
    /// part of it).
    guarded: HashMap<String, (guard::UrlPolicy, http::HttpSources)>,
    /// Bucket clients of the `s3://` environments, by [`store_name`].
    buckets: HashMap<String, std::sync::Arc<dyn object_store::ObjectStore>>,
}

impl Sources {
    /// Bytes the byte cache holds now (guarded clients share it).
    pub fn cached_bytes(&self) -> u64 {
        self.http.cached_bytes()
    }

    pub fn new(
        fetch: &FetchConfig,
        cache: &CacheConfig,
        metrics: SourceMetrics,
    ) -> Result<Sources, SourceError> {
        Ok(Sources {
            http: http::HttpSources::new(fetch, cache, metrics)?,
            guarded: HashMap::new(),
            buckets: HashMap::new(),
        })
    }

    /// Sources for `config`: a bucket client per S3 environment (`buckets`:
    /// org, env, bucket, settings, from the resolved orgs) and a guarded
    /// client per org that takes video URLs (`policies`).
    pub fn for_config(
        config: &Config,
        buckets: &[(&str, &str, &str, &S3Config)],
        policies: Vec<(String, guard::UrlPolicy)>,
        metrics: SourceMetrics,
    ) -> Result<Sources, SourceError> {
        let mut sources = Sources::new(&config.fetch, &config.cache, metrics)?;
        let timeouts = Timeouts {
            connect: Duration::from_secs(config.fetch.connect_timeout_secs),
            request: Duration::from_secs(config.fetch.request_timeout_secs),
            retry: config.render.timeout(),
        };
        for &(org_id, env_id, bucket, s3) in buckets {
            let at = format!("orgs.{org_id}.envs.{env_id}.s3");
            let store = crate::objects::s3(bucket, s3, &config.base_dir, timeouts, &at)
                .map_err(SourceError::Connect)?;
            sources.buckets.insert(store_name(org_id, env_id), store);
        }
        for (org_id, policy) in policies {
            let client = policy
                .client(&config.fetch)
                .map_err(|e| SourceError::Connect(e.to_string()))?;
            let http = sources.http.with_client(client, &format!("org:{org_id}\n"));
            sources.guarded.insert(org_id, (policy, http));
        }
        Ok(sources)
    }

    /// The org's video-URL policy, if it takes video URLs.
    pub fn url_policy(&self, org: &str) -> Option<&guard::UrlPolicy> {
        self.guarded.get(org).map(|(p, _)| p)
    }

    /// Opens a video URL named by a caller of `org` (after its policy's
    /// checks) and returns its normalised form and validator: what its key
    /// is made from.
    pub async fn identify_url(
        &self,
        org: &str,
        raw: &str,
    ) -> Result<(String, String), SourceError> {
        let (policy, http) = self
            .guarded
            .get(org)
            .ok_or_else(|| SourceError::Forbidden("this org does not take video URLs".into()))?;
        let url = policy
            .check(raw)
            .map_err(|e| SourceError::Forbidden(e.to_string()))?;
        let reader = http.open(url.as_str()).await?;
        Ok((url.to_string(), reader.validator().to_owned()))
    }

    /// Checks the video exists and returns a reader for a blocking thread.
    /// HTTP readers keep using the current runtime for their fetches.
    pub async fn open(
        &self,
        location: &SourceLocation,
    ) -> Result<Box<dyn SourceRead>, SourceError> {
        match location {
            SourceLocation::File(path) => {
                let path = path.clone();
                let file = tokio::task::spawn_blocking(move || open_file(&path))
                    .await
                    .map_err(|e| SourceError::Io(e.to_string()))??;
                Ok(Box::new(file))
            }
            remote => Ok(Box::new(self.open_remote(remote).await?)),
        }
    }

    /// A reader of a remote video (HTTP, a bucket, a video URL).
    async fn open_remote(
        &self,
        location: &SourceLocation,
    ) -> Result<http::RangeReader, SourceError> {
        match location {
            SourceLocation::File(_) => Err(SourceError::Io("a file is not remote".into())),
            SourceLocation::Http(url) => self.http.open(url).await,
            SourceLocation::Object { store, path } => {
                let bucket = self
                    .buckets
                    .get(store)
                    .ok_or_else(|| SourceError::Io(format!("no bucket client for {store}")))?;
                let target = http::Target::Object {
                    store: bucket.clone(),
                    path: object_store::path::Path::from(path.as_str()),
                    name: format!("s3:{store}:{path}"),
                };
                self.http.open_target(target).await
            }
            SourceLocation::Url {
                org,
                url,
                validator,
            } => {
                let (policy, http) = self.guarded.get(org).ok_or_else(|| {
                    SourceError::Forbidden("this org does not take video URLs".into())
                })?;
                // Checked again: the org's prefixes may have changed since.
                policy
                    .check(url)
                    .map_err(|e| SourceError::Forbidden(e.to_string()))?;
                let reader = http.open(url).await?;
                if reader.validator() != validator {
                    return Err(SourceError::Replaced);
                }
                Ok(reader)
            }
            SourceLocation::UrlPart { org, url } => {
                let (policy, http) = self.guarded.get(org).ok_or_else(|| {
                    SourceError::Forbidden("this org does not take video URLs".into())
                })?;
                policy
                    .check(url)
                    .map_err(|e| SourceError::Forbidden(e.to_string()))?;
                http.open(url).await
            }
        }
    }

    /// The video's current version: what names its renders in the shared
    /// cache. For remote objects their size and ETag (else Last-Modified),
    /// as the byte cache knows them (trusted for `cache.source_ttl_secs`,
    /// as for renders); for files their size and modification time.
    pub async fn version(&self, location: &SourceLocation) -> Result<String, SourceError> {
        match location {
            SourceLocation::File(path) => {
                let path = path.clone();
                let meta = tokio::task::spawn_blocking(move || {
                    open_file(&path)?
                        .metadata()
                        .map_err(|e| SourceError::Io(e.to_string()))
                })
                .await
                .map_err(|e| SourceError::Io(e.to_string()))??;
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .unwrap_or_default();
                Ok(format!("file {} {}", meta.len(), modified.as_nanos()))
            }
            remote => {
                let reader = self.open_remote(remote).await?;
                Ok(format!("{} {}", reader.size(), reader.validator()))
            }
        }
    }
}

fn open_file(path: &Path) -> Result<std::fs::File, SourceError> {
    match std::fs::File::open(path) {
        Ok(f) if f.metadata().map(|m| m.is_file()).unwrap_or(false) => Ok(f),
        Ok(_) => Err(SourceError::NotFound),
        // A key naming a path that cannot exist (through a file, or a name
        // too long for the file system) is a video that is not there.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::NotADirectory
                    | std::io::ErrorKind::InvalidFilename
            ) =>
        {
            Err(SourceError::NotFound)
        }
        Err(e) => Err(SourceError::Io(e.to_string())),
    }
}

impl From<&SourceError> for Problem {
    fn from(e: &SourceError) -> Problem {
        use StatusCode as S;
        match e {
            SourceError::NotFound => Problem::not_found("the video does not exist"),
            SourceError::Timeout => Problem::new(
                S::GATEWAY_TIMEOUT,
                "source-timeout",
                "Source timed out",
                "the video source did not answer in time",
            ),
            // Safe summaries only: the source's address and raw errors stay in the log.
            SourceError::Status { status } => {
                bad_gateway(format!("the video source answered {status}"))
            }
            SourceError::BadResponse(_) => {
                bad_gateway("the video source sent an invalid response".into())
            }
            SourceError::Changed => {
                bad_gateway("the video changed in the source while it was read; retry".into())
            }
            SourceError::Connect(_) => bad_gateway("the video source could not be reached".into()),
            SourceError::Io(_) => bad_gateway("reading the video source failed".into()),
            // Speaks only of the URL the caller sent.
            SourceError::Forbidden(why) => Problem::new(
                S::FORBIDDEN,
                "video-url-forbidden",
                "Video URL not allowed",
                why.clone(),
            ),
            SourceError::Replaced => Problem::not_found(e.to_string()),
            SourceError::Denied(_) => {
                bad_gateway("the video storage refused thumbd's request; see thumbd's log".into())
            }
            SourceError::Stream(e) => stream_problem(e),
            SourceError::OutsideSource(why) => Problem::new(
                S::FORBIDDEN,
                "playlist-uri-forbidden",
                "Playlist URI not allowed",
                why.clone(),
            ),
        }
    }
}

fn stream_problem(e: &streaming::StreamError) -> Problem {
    use streaming::StreamError as E;
    let (status, kind, title) = match e {
        E::Invalid(_) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid-playlist",
            "Invalid playlist",
        ),
        E::Encrypted => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "encrypted-stream",
            "Encrypted stream",
        ),
        E::Live => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "live-stream",
            "Live stream",
        ),
        E::Growing => (
            StatusCode::CONFLICT,
            "growing-playlist",
            "Playlist still growing",
        ),
        E::TooLarge(_) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "stream-too-large",
            "Stream too large",
        ),
        E::Unsupported(_) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-stream",
            "Unsupported stream",
        ),
    };
    Problem::new(status, kind, title, e.to_string())
}

fn bad_gateway(detail: String) -> Problem {
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "source-error",
        "Source error",
        detail,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_cannot_exist_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.mp4"), b"x").unwrap();
        for path in [
            dir.path().join("missing.mp4"),
            dir.path().join("a.mp4/b.mp4"),
            dir.path().join("0".repeat(300)),
        ] {
            assert!(
                matches!(open_file(&path), Err(SourceError::NotFound)),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn templates() {
        let base = Path::new("/srv/thumbd/config");
        assert_eq!(
            SourceTemplate::parse("file:../samples/{key}", base)
                .unwrap()
                .locate("a/b.mp4"),
            SourceLocation::File("/srv/thumbd/config/../samples/a/b.mp4".into())
        );
        assert_eq!(
            SourceTemplate::parse("https://cdn.example.com/v/{key}?x=1", base)
                .unwrap()
                .locate("a.mp4"),
            SourceLocation::Http("https://cdn.example.com/v/a.mp4?x=1".into())
        );
        assert_eq!(
            SourceTemplate::parse("s3://videos/in/{key}", base)
                .unwrap()
                .for_env("acme", "prod")
                .locate("a/b.mp4"),
            SourceLocation::Object {
                store: "acme/prod".into(),
                path: "in/a/b.mp4".into()
            }
        );
        for bad in [
            "s3://b/{key}",
            "s3://videos/fixed.mp4",
            "s3://videos//{key}",
            "s3://videos/~team/{key}",
            "s3://videos/../{key}",
            "https://{key}",
            "file:x",
            "https://h/{key}/{key}",
        ] {
            assert!(SourceTemplate::parse(bad, base).is_err(), "{bad}");
        }
    }
}
