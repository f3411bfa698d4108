//! The shared render cache: a second tier below each node's memory, in a
//! bucket every node reads (`s3://`) or a local folder kept across restarts
//! (`file:`). On a memory miss the renderer looks here before rendering,
//! and writes every render here after the answer has left.
//!
//! An entry's name is a digest of the canonical render key and the source
//! object's version (its ETag, or a file's size and mtime), so a replaced
//! video never serves its old thumbnails: its new version names other
//! entries. An entry is one object: a header line (`thumbd-render 1`, the
//! format, size and frame time) and the picture's bytes.
//!
//! The tier may fail without failing a request: a lookup that errs or
//! takes longer than `timeout_ms` is a miss (counted as an error), writes
//! are queued up to `max_pending_writes` and dropped past it, and after an
//! error the tier is left alone for `failure_backoff_secs`; then one request
//! tries it (the others still skip it) until it answers again.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::{ObjectStore, PutPayload};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::config::SharedCacheConfig;
use crate::domain::Format;
use crate::media::Rendered;
use crate::metrics::{Metrics, OutcomeLabels};
use crate::objects::Timeouts;

/// First line of every entry, and its version.
const MAGIC: &str = "thumbd-render 1";

pub struct SharedCache {
    store: Arc<dyn ObjectStore>,
    /// Folder of the entries in the store (`cache/` in `s3://b/cache/`).
    prefix: String,
    /// What the settings name: `s3://bucket/prefix/` or the folder.
    location: String,
    timeout: Duration,
    writes: Arc<Semaphore>,
    backoff: Duration,
    /// Until when (ms after `epoch`) the tier is left alone; 0 while it
    /// answers.
    down_until_ms: AtomicU64,
    /// After the backoff: one request is trying the tier.
    probing: AtomicBool,
    epoch: Instant,
    metrics: Arc<Metrics>,
}

impl SharedCache {
    /// The tier `settings` describe (`base_dir` resolves a relative
    /// `file:` folder and credential files).
    pub fn new(
        settings: &SharedCacheConfig,
        base_dir: &Path,
        timeouts: Timeouts,
        metrics: Arc<Metrics>,
    ) -> Result<SharedCache, String> {
        let at = "cache.shared";
        let url = settings.url.as_str();
        let (store, prefix) = if url.starts_with("s3://") {
            let (bucket, prefix) = crate::objects::split_s3_url(url)?;
            let store =
                crate::objects::s3(bucket, &settings.s3, base_dir, timeouts, "cache.shared.s3")?;
            (store, prefix.trim_matches('/').to_owned())
        } else if let Some(dir) = url.strip_prefix("file:") {
            let dir = dir.strip_prefix("//").unwrap_or(dir);
            if dir.is_empty() {
                return Err(format!(
                    "{at}.url {url:?} must name a folder: file:data/renders"
                ));
            }
            (crate::objects::folder(&base_dir.join(dir))?, String::new())
        } else {
            return Err(format!(
                "{at}.url {url:?} must start with s3:// (a bucket) or file: (a folder)"
            ));
        };
        if settings.timeout_ms == 0 || settings.max_pending_writes == 0 {
            return Err(format!(
                "{at}: timeout_ms and max_pending_writes must be positive"
            ));
        }
        Ok(SharedCache {
            store,
            prefix,
            location: url.to_owned(),
            timeout: Duration::from_millis(settings.timeout_ms),
            writes: Arc::new(Semaphore::new(settings.max_pending_writes)),
            backoff: Duration::from_secs(settings.failure_backoff_secs),
            down_until_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            epoch: Instant::now(),
            metrics,
        })
    }

    /// What the settings named, for the log.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The entry's name for a render key (its canonical text) of a source
    /// at `version`.
    pub fn entry_name(render_key: &str, version: &str) -> String {
        let mut h = Sha256::new();
        h.update(render_key.as_bytes());
        h.update(b"\n");
        h.update(version.as_bytes());
        hex::encode(&h.finalize()[..20])
    }

    fn path(&self, name: &str) -> object_store::path::Path {
        // Two levels of fan-out keep a folder's listing short on disk.
        let tail = format!("{}/{}/{name}", &name[..2], &name[2..4]);
        if self.prefix.is_empty() {
            object_store::path::Path::from(tail)
        } else {
            object_store::path::Path::from(format!("{}/{tail}", self.prefix))
        }
    }

    fn count_lookup(&self, outcome: &'static str) {
        self.metrics
            .shared_lookups
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    fn count_write(&self, outcome: &'static str) {
        self.metrics
            .shared_writes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether this caller should leave the tier alone: during a backoff,
    /// and after it unless this caller is the one trying it again.
    fn is_down(&self) -> bool {
        let until = self.down_until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        if self.now_ms() < until {
            return true;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
    }

    /// The tier answered (a hit, a miss or a write).
    fn answered(&self) {
        if self.down_until_ms.swap(0, Ordering::Relaxed) != 0 {
            tracing::info!(cache = %self.location, "shared cache answers again");
        }
        self.probing.store(false, Ordering::Release);
    }

    /// Leaves the tier alone for the backoff, after an error.
    fn failed(&self, what: &str, error: &str) {
        // At least 1: 0 means the tier answers.
        let until = (self.now_ms() + self.backoff.as_millis() as u64).max(1);
        let before = self.down_until_ms.fetch_max(until, Ordering::Relaxed);
        self.probing.store(false, Ordering::Release);
        // One warning per outage, not one per request or probe.
        if before == 0 {
            tracing::warn!(
                cache = %self.location,
                error,
                backoff_secs = self.backoff.as_secs(),
                "shared cache {what} failed; rendering without it, trying it again every backoff_secs"
            );
        }
    }

    /// The thumbnail entry `name`, if the tier has it and answers in time.
    /// Every failure is a miss to the caller.
    pub async fn get(&self, name: &str) -> Option<Rendered> {
        self.lookup(name, decode).await
    }

    /// The storyboard or animation entry `name`, as [`SharedCache::get`].
    pub async fn get_sequence(&self, name: &str) -> Option<StoredSequence> {
        self.lookup(name, decode_sequence).await
    }

    /// Writes `rendered` as entry `name` in the background; dropped (and
    /// counted) when too many writes are already waiting or the tier is
    /// failing. Never waits.
    pub fn put(self: &Arc<Self>, name: String, rendered: &Rendered) {
        self.write(name, || encode(rendered));
    }

    /// Writes a storyboard or animation, as [`SharedCache::put`].
    pub fn put_sequence(self: &Arc<Self>, name: String, sequence: &StoredSequence) {
        self.write(name, || encode_sequence(sequence));
    }

    /// Fetches entry `name` and reads it with `read`.
    async fn lookup<T>(&self, name: &str, read: fn(&Bytes) -> Option<T>) -> Option<T> {
        if self.is_down() {
            self.count_lookup("skipped");
            return None;
        }
        let started = Instant::now();
        let path = self.path(name);
        let fetched = tokio::time::timeout(self.timeout, async {
            let got = self.store.get(&path).await?;
            got.bytes().await
        })
        .await;
        let bytes = match fetched {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(object_store::Error::NotFound { .. })) => {
                self.answered();
                self.metrics
                    .shared_lookup_duration
                    .observe(started.elapsed().as_secs_f64());
                self.count_lookup("miss");
                return None;
            }
            Ok(Err(e)) => {
                self.count_lookup("error");
                self.failed("lookup", &crate::objects::summary(&e));
                return None;
            }
            Err(_) => {
                self.count_lookup("error");
                self.failed("lookup", &format!("no answer in {:?}", self.timeout));
                return None;
            }
        };
        self.answered();
        self.metrics
            .shared_lookup_duration
            .observe(started.elapsed().as_secs_f64());
        match read(&bytes) {
            Some(entry) => {
                self.count_lookup("hit");
                Some(entry)
            }
            None => {
                // Not written by this version of thumbd, or cut short:
                // rendered again, and the write replaces it.
                tracing::warn!(cache = %self.location, entry = %path, "unreadable shared cache entry; rendering");
                self.count_lookup("error");
                None
            }
        }
    }

    /// Writes the entry `make` makes (only if it will be written).
    fn write(self: &Arc<Self>, name: String, make: impl FnOnce() -> Bytes) {
        // Lookups find out when the tier is back; writes wait for that.
        if self.down_until_ms.load(Ordering::Relaxed) != 0 {
            self.count_write("dropped");
            return;
        }
        let Ok(permit) = self.writes.clone().try_acquire_owned() else {
            self.count_write("dropped");
            return;
        };
        let body = make();
        let this = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let path = this.path(&name);
            // Writes get more time than lookups: nobody waits on them.
            let limit = this.timeout * 10;
            match tokio::time::timeout(limit, this.store.put(&path, PutPayload::from(body))).await {
                Ok(Ok(_)) => {
                    this.answered();
                    this.count_write("written");
                }
                Ok(Err(e)) => {
                    this.count_write("error");
                    this.failed("write", &crate::objects::summary(&e));
                }
                Err(_) => {
                    this.count_write("error");
                    this.failed("write", &format!("no answer in {limit:?}"));
                }
            }
        });
    }
}

/// A storyboard sprite or an animation as the shared cache keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredSequence {
    #[serde(skip)]
    pub bytes: Bytes,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    /// Where each tile is (storyboards).
    pub layout: Option<crate::media::storyboard::Layout>,
    /// Frames in the animation (animations).
    pub frames: usize,
}

/// First word of a sequence entry, and its version.
const SEQUENCE_MAGIC: &str = "thumbd-sequence 1";

/// A sequence entry: the header line (its description in JSON), then the
/// sprite or animation.
fn encode_sequence(s: &StoredSequence) -> Bytes {
    let head = serde_json::to_string(s).expect("serializes");
    let mut out = Vec::with_capacity(SEQUENCE_MAGIC.len() + head.len() + 2 + s.bytes.len());
    out.extend_from_slice(SEQUENCE_MAGIC.as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&s.bytes);
    Bytes::from(out)
}

fn decode_sequence(bytes: &Bytes) -> Option<StoredSequence> {
    // A storyboard's layout has at most a few thousand tiles.
    let end = bytes.iter().take(1 << 20).position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let json = head.strip_prefix(SEQUENCE_MAGIC)?.strip_prefix(' ')?;
    let mut s: StoredSequence = serde_json::from_str(json).ok()?;
    s.bytes = bytes.slice(end + 1..);
    (!s.bytes.is_empty()).then_some(s)
}

/// An entry's bytes: the header line, then the picture.
fn encode(r: &Rendered) -> Bytes {
    let head = format!(
        "{MAGIC} {} {} {} {}\n",
        r.format.ext(),
        r.width,
        r.height,
        r.time_secs
    );
    let mut out = Vec::with_capacity(head.len() + r.bytes.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&r.bytes);
    Bytes::from(out)
}

fn decode(bytes: &Bytes) -> Option<Rendered> {
    let end = bytes.iter().take(128).position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let rest = head.strip_prefix(MAGIC)?.strip_prefix(' ')?;
    let mut fields = rest.split(' ');
    let format = Format::from_ext(fields.next()?)?;
    let width = fields.next()?.parse().ok()?;
    let height = fields.next()?.parse().ok()?;
    let time_secs: f64 = fields.next()?.parse().ok()?;
    if fields.next().is_some() || !time_secs.is_finite() {
        return None;
    }
    let body = bytes.slice(end + 1..);
    if body.is_empty() {
        return None;
    }
    Some(Rendered {
        bytes: body,
        format,
        width,
        height,
        time_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered() -> Rendered {
        Rendered {
            bytes: Bytes::from_static(b"RIFF....WEBP"),
            format: Format::Webp,
            width: 320,
            height: 180,
            time_secs: 12.04,
        }
    }

    #[test]
    fn entries_round_trip() {
        let back = decode(&encode(&rendered())).unwrap();
        assert_eq!(
            (
                back.format,
                back.width,
                back.height,
                back.time_secs,
                &back.bytes[..]
            ),
            (Format::Webp, 320, 180, 12.04, &b"RIFF....WEBP"[..])
        );
    }

    #[test]
    fn sequence_entries_round_trip_with_their_layout() {
        use crate::media::storyboard::{Layout, Tile};
        let s = StoredSequence {
            bytes: Bytes::from_static(b"RIFF....WEBP"),
            content_type: "image/webp".into(),
            width: 400,
            height: 90,
            layout: Some(Layout {
                tile_width: 160,
                tile_height: 90,
                columns: 10,
                rows: 1,
                duration: 60.0,
                tiles: vec![Tile {
                    start: 0.0,
                    end: 6.0,
                    x: 0,
                    y: 0,
                    shown: 0.04,
                }],
            }),
            frames: 0,
        };
        assert_eq!(decode_sequence(&encode_sequence(&s)), Some(s.clone()));
        // A thumbnail entry is not a sequence, nor the reverse.
        assert!(decode_sequence(&encode(&rendered())).is_none());
        assert!(decode(&encode_sequence(&s)).is_none());
    }

    #[test]
    fn damaged_entries_are_refused() {
        let good = encode(&rendered());
        for bad in [
            Bytes::new(),
            Bytes::from_static(b"thumbd-render 2 webp 320 180 1\nxx"),
            Bytes::from_static(b"thumbd-render 1 webp 320 180 1\n"),
            Bytes::from_static(b"thumbd-render 1 tiff 320 180 1\nxx"),
            Bytes::from_static(b"thumbd-render 1 webp 320 180 NaN\nxx"),
            good.slice(..10),
        ] {
            assert!(decode(&bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_new_version_of_the_video_names_another_entry() {
        let a = SharedCache::entry_name("o/e/k.mp4 webp w320", "\"etag-1\"");
        let b = SharedCache::entry_name("o/e/k.mp4 webp w320", "\"etag-2\"");
        let c = SharedCache::entry_name("o/e/k.mp4 webp w640", "\"etag-1\"");
        assert!(a != b && a != c && a.len() == 40);
    }

    #[tokio::test]
    async fn a_folder_tier_keeps_renders_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let settings = SharedCacheConfig {
            url: "file:renders".into(),
            s3: Default::default(),
            timeout_ms: 1000,
            max_pending_writes: 4,
            failure_backoff_secs: 5,
        };
        let timeouts = Timeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_secs(1),
            retry: Duration::from_secs(1),
        };
        let metrics = Arc::new(Metrics::new());
        let cache =
            Arc::new(SharedCache::new(&settings, dir.path(), timeouts, metrics.clone()).unwrap());
        let name = SharedCache::entry_name("k", "v");
        assert!(cache.get(&name).await.is_none());
        cache.put(name.clone(), &rendered());
        let deadline = Instant::now() + Duration::from_secs(5);
        let back = loop {
            if let Some(r) = cache.get(&name).await {
                break r;
            }
            assert!(
                Instant::now() < deadline,
                "never written: {}",
                metrics.encode()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(back.width, 320);
        assert!(dir.path().join("renders").join(&name[..2]).is_dir());
        let text = metrics.encode();
        assert!(
            text.contains(r#"thumbd_shared_cache_writes_total{outcome="written"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"thumbd_shared_cache_lookups_total{outcome="hit"} 1"#),
            "{text}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_the_backoff_one_lookup_tries_the_tier_again() {
        // A bucket on a port nobody listens on: every lookup fails.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s3 = crate::config::S3Config {
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            access_key_id: Some("AK".into()),
            secret_access_key: Some("SK".into()),
            ..Default::default()
        };
        let settings = SharedCacheConfig {
            url: "s3://thumbs/cache/".into(),
            s3,
            timeout_ms: 300,
            max_pending_writes: 4,
            failure_backoff_secs: 1,
        };
        let timeouts = Timeouts {
            connect: Duration::from_millis(100),
            request: Duration::from_millis(100),
            retry: Duration::from_millis(100),
        };
        let metrics = Arc::new(Metrics::new());
        let cache = Arc::new(
            SharedCache::new(&settings, Path::new("."), timeouts, metrics.clone()).unwrap(),
        );
        let count = |outcome: &'static str| {
            metrics
                .shared_lookups
                .get_or_create(&OutcomeLabels { outcome })
                .get()
        };
        assert!(cache.get("00aa").await.is_none());
        assert_eq!(count("error"), 1);
        assert!(cache.get("00aa").await.is_none());
        assert_eq!(count("skipped"), 1, "backing off");
        cache.put("00aa".into(), &rendered());
        tokio::time::sleep(Duration::from_millis(1100)).await;
        // Four at once after the backoff: one tries, three skip.
        let lookups: Vec<_> = (0..4)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get("00aa").await.is_none() })
            })
            .collect();
        for l in lookups {
            assert!(l.await.unwrap());
        }
        assert_eq!((count("error"), count("skipped")), (2, 4));
        let dropped = metrics
            .shared_writes
            .get_or_create(&OutcomeLabels { outcome: "dropped" })
            .get();
        assert_eq!(dropped, 1, "no write while the tier is failing");
    }
}
