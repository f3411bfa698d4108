//! Sources: where videos come from, read as seekable byte streams.
//!
//! An environment's `source` template (`https://host/{key}` or
//! `file:dir/{key}`) turns a validated key into a [`SourceLocation`]; thumbd
//! never fetches a location a request supplies. [`Sources::open`] checks the
//! video exists (async, so a 404 costs no render slot) and returns a blocking
//! [`SourceRead`] for the media pipeline.
//!
//! - [`http`]: HTTP range reads with a shared block cache.
//! - [`range`]: `Range`/`Content-Range` arithmetic. Pure.

pub mod http;
pub mod range;

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use crate::config::{CacheConfig, FetchConfig};
use crate::metrics::SourceMetrics;

/// A blocking, seekable view of one video's bytes.
pub trait SourceRead: Read + Seek + Send {
    /// Total size in bytes.
    fn size(&self) -> u64;

    /// Says bytes `start..end` will be read soon, so a remote source can
    /// fetch them in one request. A hint: sources without round trips ignore it.
    fn prefetch(&mut self, _start: u64, _end: u64) -> std::io::Result<()> {
        Ok(())
    }
}

impl SourceRead for std::fs::File {
    fn size(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
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
}

/// Where one video is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceLocation {
    Http(String),
    File(PathBuf),
}

impl SourceTemplate {
    /// Parses a template; relative `file:` paths resolve against `base_dir`.
    pub fn parse(template: &str, base_dir: &Path) -> Result<SourceTemplate, String> {
        if template.matches("{key}").count() != 1 {
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
        } else {
            Err(format!(
                "{template:?} must start with http://, https:// or file:"
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
        }
    }
}

/// Opens sources; owns the HTTP client and the cache of fetched bytes.
#[derive(Clone)]
pub struct Sources {
    http: http::HttpSources,
}

impl Sources {
    pub fn new(
        fetch: &FetchConfig,
        cache: &CacheConfig,
        metrics: SourceMetrics,
    ) -> Result<Sources, SourceError> {
        Ok(Sources {
            http: http::HttpSources::new(fetch, cache, metrics)?,
        })
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
            SourceLocation::Http(url) => Ok(Box::new(self.http.open(url).await?)),
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
        for bad in [
            "s3://b/{key}",
            "https://{key}",
            "file:x",
            "https://h/{key}/{key}",
        ] {
            assert!(SourceTemplate::parse(bad, base).is_err(), "{bad}");
        }
    }
}
