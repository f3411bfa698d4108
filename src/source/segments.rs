//! Streaming sources read through [`Sources`]: which URIs a playlist may
//! name ([`Scope`]), reading a playlist or manifest within its bound, and
//! opening segments ([`RemoteSegments`]) for the media pipeline.
//!
//! Every URI a document names is resolved against the document's own URL
//! and must stay where the environment's template points: its origin and
//! the path before `{key}` (an `s3://` template: its bucket and that
//! prefix; a `file:` one: that folder), or, for a video URL, the org's
//! prefixes and address rules. A document naming anything else is refused
//! before any of its URIs is requested.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use url::Url;

use super::concat::{Concat, Slice};
use super::streaming::{Part, StreamError, Timeline};
use super::{SourceError, SourceLocation, SourceRead, SourceTemplate, Sources};

/// What kind of document a location names, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Hls,
    Dash,
}

impl StreamKind {
    /// `.m3u8` names an HLS playlist, `.mpd` a DASH manifest (the path's
    /// end, whatever the case, before any query).
    pub fn of_name(name: &str) -> Option<StreamKind> {
        let path = name.split(['?', '#']).next().unwrap_or(name);
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".m3u8") {
            Some(StreamKind::Hls)
        } else if lower.ends_with(".mpd") {
            Some(StreamKind::Dash)
        } else {
            None
        }
    }
}

/// Where the URIs in a streaming document may point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// HTTP(S) URLs starting with this (the template before `{key}`,
    /// normalised as the URL parser writes it).
    Http(String),
    /// Objects of the environment's bucket client `store` whose path
    /// starts with `prefix`.
    Object { store: String, prefix: String },
    /// Files whose path starts with this.
    File(String),
    /// URLs the org's video-URL policy allows.
    Guarded { org: String },
}

/// The host `s3://` URLs of objects are given while documents are
/// resolved: the bucket is the environment's, whatever a URI says.
const OBJECT_HOST: &str = "object";

impl SourceTemplate {
    /// Where documents found through this template may point.
    pub fn scope(&self) -> Scope {
        let before_key = |t: &str| t[..t.find("{key}").unwrap_or(t.len())].to_owned();
        match self {
            SourceTemplate::Http(t) => {
                let prefix = before_key(t);
                // As the URL parser writes it (lower-case host, no default
                // port), so resolved URIs compare with it.
                let normalised = Url::parse(&format!("{prefix}k"))
                    .ok()
                    .and_then(|u| u.as_str().strip_suffix('k').map(str::to_owned));
                Scope::Http(normalised.unwrap_or(prefix))
            }
            SourceTemplate::File(t) => Scope::File(before_key(t)),
            SourceTemplate::Store(dir) => {
                Scope::File(format!("{}/", dir.join("objects").display()))
            }
            SourceTemplate::S3 { store, path, .. } => Scope::Object {
                store: store.clone(),
                prefix: before_key(path),
            },
        }
    }
}

impl Scope {
    /// The folder of the document at `location`: for a document named
    /// directly (the CLI's `render`), not through an environment's template.
    pub fn around(location: &SourceLocation) -> Scope {
        let folder = |s: &str| s[..s.rfind('/').map_or(0, |i| i + 1)].to_owned();
        match location {
            SourceLocation::Http(url) => Scope::Http(folder(
                Url::parse(url).as_ref().map_or(url.as_str(), Url::as_str),
            )),
            SourceLocation::File(path) => Scope::File(folder(&path.to_string_lossy())),
            SourceLocation::Object { store, path } => Scope::Object {
                store: store.clone(),
                prefix: folder(path),
            },
            SourceLocation::Url { org, .. } | SourceLocation::UrlPart { org, .. } => {
                Scope::Guarded { org: org.clone() }
            }
        }
    }
}

impl SourceLocation {
    /// The streaming document this location names, if it is one.
    pub fn stream_kind(&self) -> Option<StreamKind> {
        match self {
            SourceLocation::Http(url)
            | SourceLocation::Url { url, .. }
            | SourceLocation::UrlPart { url, .. } => StreamKind::of_name(url),
            SourceLocation::File(path) => StreamKind::of_name(&path.to_string_lossy()),
            SourceLocation::Object { path, .. } => StreamKind::of_name(path),
        }
    }

    /// The location as a URL that URIs in its document resolve against.
    pub fn base_url(&self) -> Result<Url, SourceError> {
        let bad = |e: String| SourceError::Stream(StreamError::Invalid(e));
        match self {
            SourceLocation::Http(url)
            | SourceLocation::Url { url, .. }
            | SourceLocation::UrlPart { url, .. } => {
                Url::parse(url).map_err(|e| bad(format!("the playlist's URL: {e}")))
            }
            SourceLocation::File(path) => Url::from_file_path(path)
                .map_err(|()| bad("the playlist's path is not absolute".into())),
            SourceLocation::Object { path, .. } => {
                Url::parse(&format!("s3://{OBJECT_HOST}/{path}"))
                    .map_err(|e| bad(format!("the playlist's object path: {e}")))
            }
        }
    }
}

fn outside(what: &str) -> SourceError {
    SourceError::OutsideSource(format!(
        "the playlist names {what}: every URI in a playlist must stay within the video's source"
    ))
}

impl Scope {
    /// Where `uri` (resolved from a document found through this scope)
    /// is, if the scope allows it; `policy` is the org's video-URL policy
    /// for [`Scope::Guarded`].
    pub fn admit(
        &self,
        uri: &Url,
        policy: Option<&super::guard::UrlPolicy>,
    ) -> Result<SourceLocation, SourceError> {
        if !uri.username().is_empty() || uri.password().is_some() {
            return Err(outside("a URL with credentials"));
        }
        match self {
            Scope::Http(prefix) => {
                if !matches!(uri.scheme(), "http" | "https") {
                    return Err(outside(&format!("a {}: URI", uri.scheme())));
                }
                // The prefix ends within the path, so starting with it
                // means the same scheme, host and port as well.
                if !uri.as_str().starts_with(prefix.as_str()) {
                    return Err(outside("a URL outside the source's host and path"));
                }
                Ok(SourceLocation::Http(uri.to_string()))
            }
            Scope::Object { store, prefix } => {
                if uri.scheme() != "s3" || uri.host_str() != Some(OBJECT_HOST) {
                    return Err(outside(
                        "a URI outside the bucket (only relative URIs are read)",
                    ));
                }
                let path = uri.path().trim_start_matches('/');
                let plain = |c: char| c.is_ascii_alphanumeric() || "/.-_".contains(c);
                if !path.starts_with(prefix.as_str())
                    || !path.chars().all(plain)
                    || path
                        .split('/')
                        .any(|s| s.is_empty() || s == "." || s == "..")
                    || uri.query().is_some()
                {
                    return Err(outside("an object outside the source's path"));
                }
                Ok(SourceLocation::Object {
                    store: store.clone(),
                    path: path.to_owned(),
                })
            }
            Scope::File(prefix) => {
                if uri.scheme() != "file" || uri.host_str().is_some_and(|h| !h.is_empty()) {
                    return Err(outside(&format!("a {}: URI", uri.scheme())));
                }
                let path: PathBuf = uri
                    .to_file_path()
                    .map_err(|()| outside("a file URI that is not a path"))?;
                if !path.to_string_lossy().starts_with(prefix.as_str()) {
                    return Err(outside("a file outside the source's folder"));
                }
                Ok(SourceLocation::File(path))
            }
            Scope::Guarded { org } => {
                let policy =
                    policy.ok_or_else(|| outside("a URL, and this org takes no video URLs"))?;
                let url = policy.check(uri.as_str()).map_err(|e| {
                    SourceError::OutsideSource(format!("the playlist names a URL not allowed: {e}"))
                })?;
                Ok(SourceLocation::UrlPart {
                    org: org.clone(),
                    url: url.to_string(),
                })
            }
        }
    }
}

impl Sources {
    /// Where `uri` (resolved from a document found through `scope`) is, if
    /// the scope allows it.
    pub fn within(&self, scope: &Scope, uri: &Url) -> Result<SourceLocation, SourceError> {
        let policy = match scope {
            Scope::Guarded { org } => self.url_policy(org),
            _ => None,
        };
        scope.admit(uri, policy)
    }

    /// The whole of a (small) document, refused past `max_bytes` before
    /// its body is read.
    pub async fn read_document(
        &self,
        location: &SourceLocation,
        max_bytes: u64,
    ) -> Result<Bytes, SourceError> {
        let reader = self.open(location).await?;
        let size = reader.size();
        if size > max_bytes {
            return Err(SourceError::Stream(StreamError::TooLarge(format!(
                "the playlist is {size} bytes, more than the {max_bytes} allowed (render.max_playlist_bytes)"
            ))));
        }
        read_all(reader).await
    }

    /// The bytes of `part` (a byte range, as a `SegmentBase`'s index),
    /// within `scope`; refused past `max_bytes`.
    pub async fn read_part(
        &self,
        scope: &Scope,
        part: &Part,
        max_bytes: u64,
    ) -> Result<Bytes, SourceError> {
        read_all(self.open_part(scope, part, max_bytes).await?).await
    }

    /// A reader of `part` (all of its resource or its byte range), which
    /// must be within `scope`; refused past `max_bytes`.
    pub async fn open_part(
        &self,
        scope: &Scope,
        part: &Part,
        max_bytes: u64,
    ) -> Result<Box<dyn SourceRead>, SourceError> {
        let location = self.within(scope, &part.uri)?;
        let reader = self.open(&location).await?;
        let reader: Box<dyn SourceRead> = match part.range {
            Some(range) => Box::new(Slice::new(reader, range).map_err(|e| {
                SourceError::Stream(StreamError::Invalid(format!("a segment's byte range: {e}")))
            })?),
            None => reader,
        };
        if reader.size() > max_bytes {
            return Err(SourceError::Stream(StreamError::TooLarge(format!(
                "a segment is {} bytes, more than the {max_bytes} a render may read (render.max_source_bytes)",
                reader.size()
            ))));
        }
        Ok(reader)
    }

    /// Checks every URI of `timeline` is within `scope`, before any is read.
    pub fn check_timeline(&self, scope: &Scope, timeline: &Timeline) -> Result<(), SourceError> {
        let mut last_init: Option<&Url> = None;
        for s in &timeline.segments {
            self.within(scope, &s.media.uri)?;
            if let Some(init) = &s.init {
                if last_init != Some(&init.uri) {
                    self.within(scope, &init.uri)?;
                    last_init = Some(&init.uri);
                }
            }
        }
        Ok(())
    }
}

/// Everything `reader` holds, fetched in one request where remote.
async fn read_all(mut reader: Box<dyn SourceRead>) -> Result<Bytes, SourceError> {
    let size = reader.size();
    let read = tokio::task::spawn_blocking(move || {
        reader.prefetch(0, size)?;
        let mut all = Vec::with_capacity(size as usize);
        std::io::Read::read_to_end(&mut reader, &mut all)?;
        Ok::<_, std::io::Error>(all)
    })
    .await
    .map_err(|e| SourceError::Io(e.to_string()))?;
    read.map(Bytes::from).map_err(|e| from_io(&e))
}

/// The source error an I/O error carries, or an I/O error.
fn from_io(e: &std::io::Error) -> SourceError {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<SourceError>())
        .cloned()
        .unwrap_or_else(|| SourceError::Io(e.to_string()))
}

/// The segments of one rendition, opened on demand from a blocking
/// thread (the media pipeline's), their fetches on the runtime's.
pub trait SegmentSource: Send {
    fn timeline(&self) -> &Timeline;

    /// Segments `first..=last` after the init segment of `first`, as one
    /// reader (a segment with another init segment ends the run before
    /// it). Blocking.
    fn open(&mut self, first: usize, last: usize) -> Result<Box<dyn SourceRead>, SourceError>;

    /// Each of `segments` (after its init segment) as a reader of its
    /// own, opened together. Blocking.
    fn open_each(&mut self, segments: &[usize]) -> Result<Vec<Box<dyn SourceRead>>, SourceError>;
}

/// [`SegmentSource`] over [`Sources`].
pub struct RemoteSegments {
    sources: Sources,
    scope: Scope,
    timeline: Arc<Timeline>,
    runtime: tokio::runtime::Handle,
    max_bytes: u64,
}

impl RemoteSegments {
    /// For `timeline`, already checked against `scope`
    /// ([`Sources::check_timeline`]). Call on the runtime.
    pub fn new(sources: Sources, scope: Scope, timeline: Arc<Timeline>, max_bytes: u64) -> Self {
        RemoteSegments {
            sources,
            scope,
            timeline,
            runtime: tokio::runtime::Handle::current(),
            max_bytes,
        }
    }
}

impl SegmentSource for RemoteSegments {
    fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    fn open(&mut self, first: usize, last: usize) -> Result<Box<dyn SourceRead>, SourceError> {
        let segments = &self.timeline.segments;
        let Some(head) = segments.get(first) else {
            return Err(SourceError::Io(format!("no segment {first}")));
        };
        let last = last.min(segments.len() - 1).max(first);
        let run: Vec<&Part> = segments[first..=last]
            .iter()
            .take_while(|s| s.init == head.init)
            .map(|s| &s.media)
            .collect();
        let parts: Vec<&Part> = head.init.iter().chain(run).collect();
        let (sources, scope, max_bytes) = (&self.sources, &self.scope, self.max_bytes);
        let opened = self
            .runtime
            .block_on(open_parts(sources, scope, &parts, max_bytes))?;
        let reader = Concat::new(opened);
        if reader.size() > max_bytes {
            return Err(SourceError::Stream(StreamError::TooLarge(format!(
                "the segments to read are {} bytes, more than the {max_bytes} a render may read (render.max_source_bytes)",
                reader.size()
            ))));
        }
        Ok(Box::new(reader))
    }

    fn open_each(&mut self, which: &[usize]) -> Result<Vec<Box<dyn SourceRead>>, SourceError> {
        let segments = &self.timeline.segments;
        let mut parts: Vec<&Part> = Vec::new();
        let mut counts = Vec::with_capacity(which.len());
        for &i in which {
            let s = segments
                .get(i)
                .ok_or_else(|| SourceError::Io(format!("no segment {i}")))?;
            parts.extend(s.init.iter().chain([&s.media]));
            counts.push(1 + usize::from(s.init.is_some()));
        }
        let (sources, scope, max_bytes) = (&self.sources, &self.scope, self.max_bytes);
        let mut opened = self
            .runtime
            .block_on(open_parts(sources, scope, &parts, max_bytes))?
            .into_iter();
        Ok(counts
            .into_iter()
            .map(|n| {
                Box::new(Concat::new(opened.by_ref().take(n).collect())) as Box<dyn SourceRead>
            })
            .collect())
    }
}

/// Opens `parts` at once (each open reads the part's first bytes),
/// several requests in flight, in order.
async fn open_parts(
    sources: &Sources,
    scope: &Scope,
    parts: &[&Part],
    max_bytes: u64,
) -> Result<Vec<Box<dyn SourceRead>>, SourceError> {
    use futures_util::stream::{StreamExt, TryStreamExt};
    futures_util::stream::iter(
        parts
            .iter()
            .map(|part| sources.open_part(scope, part, max_bytes)),
    )
    .buffered(PARTS_IN_FLIGHT)
    .try_collect()
    .await
}

/// Segment opens in flight at once: enough to hide round trips, few
/// enough not to flood the source for one storyboard.
const PARTS_IN_FLIGHT: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn admit(scope: &Scope, uri: &str) -> Result<SourceLocation, SourceError> {
        scope.admit(&Url::parse(uri).unwrap(), None)
    }

    #[test]
    fn names_say_which_documents_are_streams() {
        assert_eq!(StreamKind::of_name("a/master.m3u8"), Some(StreamKind::Hls));
        assert_eq!(
            StreamKind::of_name("https://h/a/Index.M3U8?token=1"),
            Some(StreamKind::Hls)
        );
        assert_eq!(
            StreamKind::of_name("a/manifest.mpd"),
            Some(StreamKind::Dash)
        );
        assert_eq!(StreamKind::of_name("a/video.mp4"), None);
        assert_eq!(StreamKind::of_name("a/m3u8"), None);
    }

    #[test]
    fn http_uris_stay_under_the_template_prefix() {
        let t = SourceTemplate::parse(
            "https://CDN.example.com:443/videos/{key}/master.m3u8",
            Path::new("/"),
        )
        .unwrap();
        let scope = t.scope();
        assert_eq!(scope, Scope::Http("https://cdn.example.com/videos/".into()));
        let base = Url::parse("https://cdn.example.com/videos/abc/master.m3u8").unwrap();
        let ok = admit(&scope, base.join("720p/seg1.ts?sig=x").unwrap().as_str()).unwrap();
        assert_eq!(
            ok,
            SourceLocation::Http("https://cdn.example.com/videos/abc/720p/seg1.ts?sig=x".into())
        );
        for bad in [
            "https://other.example.com/videos/abc/seg.ts",
            "http://cdn.example.com/videos/abc/seg.ts",
            "https://cdn.example.com:8443/videos/abc/seg.ts",
            "https://cdn.example.com/secret/seg.ts",
            "https://user:pw@cdn.example.com/videos/abc/seg.ts",
            "http://10.0.0.1/videos/seg.ts",
            "http://169.254.169.254/latest/meta-data",
            "file:///etc/passwd",
            "data:video/mp2t;base64,AAAA",
        ] {
            let err = admit(&scope, bad).unwrap_err();
            assert!(
                matches!(err, SourceError::OutsideSource(_)),
                "{bad}: {err:?}"
            );
        }
        // Dots are resolved before the check, encoded or not.
        for escape in [
            "../../secret/x.ts",
            "%2e%2e/%2e%2e/secret/x.ts",
            "/secret/x.ts",
        ] {
            let uri = base.join(escape).unwrap();
            assert!(admit(&scope, uri.as_str()).is_err(), "{escape} -> {uri}");
        }
    }

    #[test]
    fn object_and_file_uris_stay_in_their_folder() {
        let t = SourceTemplate::parse("s3://videos/in/{key}", Path::new("/"))
            .unwrap()
            .for_env("acme", "prod");
        let location = t.locate("abc/master.m3u8");
        let scope = t.scope();
        let base = location.base_url().unwrap();
        assert_eq!(
            scope
                .admit(&base.join("720p/s1.m4s").unwrap(), None)
                .unwrap(),
            SourceLocation::Object {
                store: "acme/prod".into(),
                path: "in/abc/720p/s1.m4s".into()
            }
        );
        for bad in [
            "../../out/x.ts",
            "https://videos.s3.amazonaws.com/in/x.ts",
            "a%20b.ts",
        ] {
            let uri = base.join(bad).unwrap();
            assert!(scope.admit(&uri, None).is_err(), "{bad} -> {uri}");
        }

        let t = SourceTemplate::parse("file:/srv/videos/{key}", Path::new("/")).unwrap();
        let location = t.locate("abc/master.m3u8");
        let base = location.base_url().unwrap();
        let scope = t.scope();
        assert_eq!(
            scope.admit(&base.join("seg1.ts").unwrap(), None).unwrap(),
            SourceLocation::File("/srv/videos/abc/seg1.ts".into())
        );
        for bad in [
            "../../etc/passwd",
            "file:///etc/passwd",
            "http://127.0.0.1/x.ts",
        ] {
            let uri = base.join(bad).unwrap();
            assert!(scope.admit(&uri, None).is_err(), "{bad} -> {uri}");
        }
    }

    #[test]
    fn a_document_named_directly_reads_within_its_folder() {
        let location = SourceLocation::Http("http://h:8080/a/b/master.m3u8".into());
        assert_eq!(
            Scope::around(&location),
            Scope::Http("http://h:8080/a/b/".into())
        );
        let location = SourceLocation::File("/x/y/index.mpd".into());
        assert_eq!(Scope::around(&location), Scope::File("/x/y/".into()));
    }
}
