//! HTTP sources read with Range requests.
//!
//! Bytes are fetched exactly where they are asked for (no rounding out to
//! blocks: object storage bills bytes) and cached per 32 KiB block, each
//! block holding the runs of its bytes fetched so far (apart ones kept
//! apart: two keyframes a few KiB apart both stay), in a moka cache
//! weighted by size and keyed by the URL and its validator (ETag, else
//! Last-Modified). So several thumbnails of one video share its container
//! index and packets, and a changed object never mixes with its old bytes.
//! A read that misses fetches up to the next bytes held in one request, and
//! the run doubles while reads stay sequential, so a thumbnail costs a few
//! round trips, not one per buffer FFmpeg asks for.
//!
//! Objects in a bucket ([`Target::Object`]) are read by the same reader
//! through [`super::object`]: the same cache, read-ahead and request counts.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{CONTENT_RANGE, ETAG, LAST_MODIFIED, RANGE};
use reqwest::StatusCode;

use super::range::{parse_content_range, parse_unsatisfied_total, range_header, Fetched};
use super::{SourceError, SourceRead};
use crate::config::{CacheConfig, FetchConfig};
use crate::metrics::SourceMetrics;

/// Granularity of the byte cache.
pub const BLOCK_SIZE: u64 = 32 * 1024;

/// What a reader reads.
#[derive(Clone)]
pub enum Target {
    Url(String),
    /// An object in a bucket; `name` (`s3:{env}:{path}`) is its identity in
    /// the caches and logs.
    Object {
        store: Arc<dyn object_store::ObjectStore>,
        path: object_store::path::Path,
        name: String,
    },
}

impl Target {
    fn name(&self) -> &str {
        match self {
            Target::Url(url) => url,
            Target::Object { name, .. } => name,
        }
    }
}

/// What is known of one source object without fetching it again.
#[derive(Debug, Clone)]
struct ObjectInfo {
    size: u64,
    /// ETag or Last-Modified; empty if the source sends neither.
    validator: Arc<str>,
    /// URL and validator: the identity of these exact bytes in the cache.
    identity: Arc<str>,
}

type BlockKey = (Arc<str>, u64);

/// A run of bytes fetched within one block, `offset` bytes into it.
#[derive(Debug, Clone)]
struct Piece {
    offset: u64,
    data: Bytes,
}

impl Piece {
    fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }

    /// The bytes from `offset` (within the block) to the end of the run.
    fn from(&self, offset: u64) -> Option<Bytes> {
        (offset >= self.offset && offset < self.end())
            .then(|| self.data.slice((offset - self.offset) as usize..))
    }

    /// One run from two: their union if they touch, else the new one (the
    /// bytes a read is waiting for).
    fn merge(old: Option<&Piece>, new: Piece) -> Piece {
        let Some(old) = old else { return new };
        if old.offset > new.end() || new.offset > old.end() {
            return new;
        }
        if old.offset <= new.offset && old.end() >= new.end() {
            return old.clone();
        }
        if new.offset <= old.offset && new.end() >= old.end() {
            return new;
        }
        let (first, second) = if old.offset <= new.offset {
            (old, &new)
        } else {
            (&new, old)
        };
        let mut joined = BytesMut::with_capacity((second.end() - first.offset) as usize);
        joined.extend_from_slice(&first.data);
        joined.extend_from_slice(&second.data[(first.end() - second.offset) as usize..]);
        Piece {
            offset: first.offset,
            data: joined.freeze(),
        }
    }
}

/// The runs of one block held: pieces in order, none touching another
/// (touching ones are joined). A block can hold several apart: two
/// keyframes' packets a few KiB apart both stay.
#[derive(Debug, Clone, Default)]
struct Runs(Vec<Piece>);

impl Runs {
    /// The run holding `offset` (within the block), if any.
    fn run_at(&self, offset: u64) -> Option<&Piece> {
        let after = self.0.partition_point(|p| p.offset <= offset);
        self.0[..after].last().filter(|p| offset < p.end())
    }

    /// The bytes from `offset` to the end of its run.
    fn from(&self, offset: u64) -> Option<Bytes> {
        self.run_at(offset).and_then(|p| p.from(offset))
    }

    /// These runs and `new`, joined where they touch.
    fn with(&self, new: Piece) -> Runs {
        let mut joined = new;
        let mut runs = Vec::with_capacity(self.0.len() + 1);
        for p in &self.0 {
            if p.end() < joined.offset || p.offset > joined.end() {
                runs.push(p.clone());
            } else {
                joined = Piece::merge(Some(p), joined);
            }
        }
        let at = runs.partition_point(|p: &Piece| p.offset < joined.offset);
        runs.insert(at, joined);
        Runs(runs)
    }

    /// Bytes held, for the cache's weight.
    fn bytes(&self) -> usize {
        self.0.iter().map(|p| p.data.len()).sum()
    }
}

struct Shared {
    client: reqwest::Client,
    blocks: moka::sync::Cache<BlockKey, Runs>,
    objects: moka::sync::Cache<String, ObjectInfo>,
    initial_read: u64,
    max_read: u64,
    metrics: SourceMetrics,
    /// Prepended to URLs in cache keys, so sources read through different
    /// clients (an org's guarded one) never share cached objects.
    namespace: String,
}

/// The HTTP side of [`super::Sources`]; cheap to clone.
#[derive(Clone)]
pub struct HttpSources {
    shared: Arc<Shared>,
}

impl HttpSources {
    /// Bytes the block cache holds now (what `cache.source_max_bytes` bounds).
    pub fn cached_bytes(&self) -> u64 {
        self.shared.blocks.run_pending_tasks();
        self.shared.blocks.weighted_size()
    }

    pub fn new(
        fetch: &FetchConfig,
        cache: &CacheConfig,
        metrics: SourceMetrics,
    ) -> Result<HttpSources, SourceError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(fetch.connect_timeout_secs))
            .timeout(Duration::from_secs(fetch.request_timeout_secs))
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("thumbd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Connect(e.to_string()))?;
        let blocks = moka::sync::Cache::builder()
            .max_capacity(cache.source_max_bytes)
            .weigher(|_k: &BlockKey, v: &Runs| v.bytes().try_into().unwrap_or(u32::MAX))
            .build();
        let objects = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(cache.source_ttl_secs))
            .build();
        let initial_read = fetch.initial_read_bytes.max(1);
        Ok(HttpSources {
            shared: Arc::new(Shared {
                client,
                blocks,
                objects,
                initial_read,
                max_read: fetch.max_read_bytes.max(initial_read),
                metrics,
                namespace: String::new(),
            }),
        })
    }

    /// The same caches and settings read through another client, under
    /// their own `namespace` of cache keys.
    pub fn with_client(&self, client: reqwest::Client, namespace: &str) -> HttpSources {
        let s = &self.shared;
        HttpSources {
            shared: Arc::new(Shared {
                client,
                blocks: s.blocks.clone(),
                objects: s.objects.clone(),
                initial_read: s.initial_read,
                max_read: s.max_read,
                metrics: s.metrics.clone(),
                namespace: namespace.to_owned(),
            }),
        }
    }

    /// Finds the object's size and validator (from the cache, or with a first
    /// range request whose bytes are kept) and returns a reader.
    pub async fn open(&self, url: &str) -> Result<RangeReader, SourceError> {
        self.open_target(Target::Url(url.to_owned())).await
    }

    /// [`HttpSources::open`] for any target.
    pub async fn open_target(&self, target: Target) -> Result<RangeReader, SourceError> {
        let ns = &self.shared.namespace;
        let name = target.name();
        let cache_key = format!("{ns}{name}");
        let info = match self.shared.objects.get(&cache_key) {
            Some(info) => info,
            None => {
                let first = fetch(&self.shared, &target, 0, self.shared.initial_read, None).await?;
                let info = ObjectInfo {
                    size: first.total,
                    identity: format!("{ns}{name}\n{}", first.validator).into(),
                    validator: first.validator.into(),
                };
                self.shared.objects.insert(cache_key, info.clone());
                let mut reader = self.reader(target, info);
                reader.store(0, &first.data);
                reader.requests = 1;
                reader.fetched = first.data.len() as u64;
                reader.next_sequential = Some(first.data.len() as u64);
                return Ok(reader);
            }
        };
        Ok(self.reader(target, info))
    }

    fn reader(&self, target: Target, info: ObjectInfo) -> RangeReader {
        RangeReader {
            shared: self.shared.clone(),
            runtime: tokio::runtime::Handle::current(),
            target,
            info,
            pos: 0,
            local: HashMap::new(),
            next_sequential: None,
            read_ahead: self.shared.initial_read,
            requests: 0,
            fetched: 0,
        }
    }
}

fn classify(e: reqwest::Error) -> SourceError {
    // A guarded client's refusal (resolver, redirect policy), wherever it
    // sits in the chain.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cause {
        if let Some(refused) = c.downcast_ref::<super::guard::Refused>() {
            return SourceError::Forbidden(refused.0.clone());
        }
        cause = c.source();
    }
    // The URL stays out of the message: it may carry a presigned query.
    let e = e.without_url();
    if e.is_timeout() {
        SourceError::Timeout
    } else if e.is_connect() {
        SourceError::Connect(e.to_string())
    } else if e.is_body() || e.is_decode() {
        SourceError::BadResponse(format!("the body was cut short: {e}"))
    } else {
        SourceError::Io(e.to_string())
    }
}

/// One range request: `len` bytes from `start` (fewer at the end of the
/// object), counted in the source metrics. With `expect`, the answer must
/// carry that validator.
async fn fetch(
    shared: &Shared,
    target: &Target,
    start: u64,
    len: u64,
    expect: Option<&str>,
) -> Result<Fetched, SourceError> {
    let m = &shared.metrics;
    m.requests.inc();
    let result = match target {
        Target::Url(url) => fetch_range(&shared.client, url, start, len, expect).await,
        Target::Object { store, path, .. } => {
            super::object::fetch_range(store.as_ref(), path, start, len, expect).await
        }
    };
    match &result {
        Ok(f) => {
            m.bytes.inc_by(f.data.len() as u64);
        }
        Err(e) => m.error(e.kind()),
    }
    result
}

async fn fetch_range(
    client: &reqwest::Client,
    url: &str,
    start: u64,
    len: u64,
    expect: Option<&str>,
) -> Result<Fetched, SourceError> {
    let resp = client
        .get(url)
        .header(RANGE, range_header(start, len))
        .send()
        .await
        .map_err(classify)?;
    let header = |name| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let validator = header(ETAG)
        .or_else(|| header(LAST_MODIFIED))
        .unwrap_or_default();
    let status = resp.status();
    match status {
        StatusCode::PARTIAL_CONTENT => {}
        StatusCode::NOT_FOUND | StatusCode::GONE => return Err(SourceError::NotFound),
        StatusCode::RANGE_NOT_SATISFIABLE if start == 0 => {
            // Only an empty object has no byte 0.
            return match header(CONTENT_RANGE).as_deref().and_then(parse_unsatisfied_total) {
                Some(0) => Ok(Fetched {
                    data: Bytes::new(),
                    total: 0,
                    validator,
                }),
                _ => Err(SourceError::BadResponse("416 for the first byte of a non-empty object".into())),
            };
        }
        StatusCode::OK => {
            return Err(SourceError::BadResponse(
                "the source ignored the Range header (answered 200); thumbd needs a source that supports range requests"
                    .into(),
            ))
        }
        s => return Err(SourceError::Status { status: s.as_u16() }),
    }
    if let Some(expected) = expect {
        if !expected.is_empty() && validator != expected {
            return Err(SourceError::Changed);
        }
    }
    let range = header(CONTENT_RANGE)
        .as_deref()
        .and_then(parse_content_range)
        .ok_or_else(|| SourceError::BadResponse("206 without a valid Content-Range".into()))?;
    let total = range
        .total
        .ok_or_else(|| SourceError::BadResponse("Content-Range without the object size".into()))?;
    if range.first != start || range.last > start + len - 1 {
        return Err(SourceError::BadResponse(format!(
            "asked for bytes {start}-{}, the source answered {}-{}",
            start + len - 1,
            range.first,
            range.last
        )));
    }
    let data = resp.bytes().await.map_err(classify)?;
    if data.len() as u64 != range.last - range.first + 1 {
        return Err(SourceError::BadResponse(format!(
            "Content-Range announced {} bytes, the body had {}",
            range.last - range.first + 1,
            data.len()
        )));
    }
    Ok(Fetched {
        data,
        total,
        validator,
    })
}

/// A blocking reader over one HTTP object, for the media pipeline's thread.
/// Fetches go through the runtime `open` was called on.
pub struct RangeReader {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    target: Target,
    info: ObjectInfo,
    pos: u64,
    /// Blocks this reader has used, so cache eviction under load cannot make
    /// one render fetch the same bytes twice.
    local: HashMap<u64, Runs>,
    /// Where the last fetch ended: a read there continues a sequential run.
    next_sequential: Option<u64>,
    read_ahead: u64,
    requests: u32,
    fetched: u64,
}

impl RangeReader {
    /// The bytes held from `pos` to the end of their run, if any.
    fn held(&mut self, pos: u64) -> Option<Bytes> {
        let (index, offset) = (pos / BLOCK_SIZE, pos % BLOCK_SIZE);
        if let Some(bytes) = self.local.get(&index).and_then(|r| r.from(offset)) {
            return Some(bytes);
        }
        let shared = self
            .shared
            .blocks
            .get(&(self.info.identity.clone(), index))?;
        let bytes = shared.from(offset)?;
        let mut merged = self.local.remove(&index).unwrap_or_default();
        for piece in shared.0 {
            merged = merged.with(piece);
        }
        self.local.insert(index, merged);
        Some(bytes)
    }

    /// Where the run of held bytes containing `pos` starts, if `pos` is held.
    fn held_start(&mut self, pos: u64) -> Option<u64> {
        self.held(pos)?;
        let (index, offset) = (pos / BLOCK_SIZE, pos % BLOCK_SIZE);
        self.local
            .get(&index)
            .and_then(|r| r.run_at(offset))
            .map(|p| index * BLOCK_SIZE + p.offset)
    }

    /// Keeps fetched bytes, split at block boundaries, here and in the cache.
    fn store(&mut self, start: u64, data: &Bytes) {
        let end = start + data.len() as u64;
        let mut at = start;
        while at < end {
            let index = at / BLOCK_SIZE;
            let until = ((index + 1) * BLOCK_SIZE).min(end);
            let piece = Piece {
                offset: at % BLOCK_SIZE,
                data: data.slice((at - start) as usize..(until - start) as usize),
            };
            let key = (self.info.identity.clone(), index);
            let cached = self
                .shared
                .blocks
                .get(&key)
                .unwrap_or_default()
                .with(piece.clone());
            self.shared.blocks.insert(key, cached);
            let local = self
                .local
                .get(&index)
                .cloned()
                .unwrap_or_default()
                .with(piece);
            self.local.insert(index, local);
            at = until;
        }
    }

    /// A read at `pos` missed: fetch from there up to the read-ahead, or to
    /// the next block whose start is already held.
    fn fetch_at(&mut self, pos: u64) -> io::Result<()> {
        self.read_ahead = if self.next_sequential == Some(pos) {
            (self.read_ahead * 2).min(self.shared.max_read)
        } else {
            self.shared.initial_read
        };
        let limit = (pos + self.read_ahead).min(self.info.size);
        let mut end = ((pos / BLOCK_SIZE + 1) * BLOCK_SIZE).min(limit);
        while end < limit && self.held(end).is_none() {
            end = (end + BLOCK_SIZE).min(limit);
        }
        self.fetch_run(pos, end)
    }

    /// Fetches bytes `start..end` in one request and keeps them.
    fn fetch_run(&mut self, start: u64, end: u64) -> io::Result<()> {
        tracing::trace!(source = %self.target.name(), start, end, "range request");
        let fetched = self
            .runtime
            .block_on(fetch(
                &self.shared,
                &self.target,
                start,
                end - start,
                Some(&self.info.validator),
            ))
            .inspect_err(|e| {
                if matches!(e, SourceError::Changed) {
                    let key = format!("{}{}", self.shared.namespace, self.target.name());
                    self.shared.objects.invalidate(&key);
                }
            })
            .map_err(io::Error::other)?;
        if fetched.data.len() as u64 != end - start {
            return Err(io::Error::other(SourceError::Changed));
        }
        self.requests += 1;
        self.fetched += fetched.data.len() as u64;
        self.store(start, &fetched.data);
        self.next_sequential = Some(end);
        Ok(())
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.info.size || buf.is_empty() {
            return Ok(0);
        }
        let bytes = match self.held(self.pos) {
            Some(bytes) => bytes,
            None => {
                self.fetch_at(self.pos)?;
                self.held(self.pos)
                    .ok_or_else(|| io::Error::other(SourceError::Changed))?
            }
        };
        let n = buf.len().min(bytes.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.info.size.checked_add_signed(d),
        };
        match target {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start",
            )),
        }
    }
}

impl RangeReader {
    /// The object's ETag, else Last-Modified; empty if it has neither.
    pub fn validator(&self) -> &str {
        &self.info.validator
    }
}

impl SourceRead for RangeReader {
    fn size(&self) -> u64 {
        self.info.size
    }

    /// Fetches the missing part of `start..end` in one request (capped), so
    /// the packets from a keyframe to the target frame cost one round trip.
    fn prefetch(&mut self, start: u64, end: u64) -> io::Result<()> {
        match self.missing(start, end) {
            Some((start, end)) => self.fetch_run(start, end),
            None => Ok(()),
        }
    }

    fn prefetch_many(&mut self, ranges: &[(u64, u64)]) -> io::Result<()> {
        let wanted: Vec<(u64, u64)> = ranges
            .iter()
            .filter_map(|&(start, end)| self.missing(start, end))
            .collect();
        if wanted.len() <= 1 {
            return wanted
                .into_iter()
                .try_for_each(|(start, end)| self.fetch_run(start, end));
        }
        let fetched = self.runtime.block_on(async {
            let limit = Arc::new(tokio::sync::Semaphore::new(PREFETCH_IN_FLIGHT));
            let mut tasks = tokio::task::JoinSet::new();
            for (i, &(start, end)) in wanted.iter().enumerate() {
                let (shared, target, validator) = (
                    self.shared.clone(),
                    self.target.clone(),
                    self.info.validator.clone(),
                );
                let limit = limit.clone();
                tasks.spawn(async move {
                    let _slot = limit.acquire().await;
                    let got = fetch(&shared, &target, start, end - start, Some(&validator)).await;
                    (i, got)
                });
            }
            let mut out: Vec<Option<Fetched>> = (0..wanted.len()).map(|_| None).collect();
            while let Some(done) = tasks.join_next().await {
                let (i, got) = done.map_err(|e| SourceError::Io(e.to_string()))?;
                out[i] = Some(got?);
            }
            Ok::<_, SourceError>(out)
        });
        let fetched = fetched.map_err(|e| {
            if matches!(e, SourceError::Changed) {
                let key = format!("{}{}", self.shared.namespace, self.target.name());
                self.shared.objects.invalidate(&key);
            }
            io::Error::other(e)
        })?;
        for (&(start, end), got) in wanted.iter().zip(fetched) {
            let got = got.expect("every task reported");
            if got.data.len() as u64 != end - start {
                return Err(io::Error::other(SourceError::Changed));
            }
            self.requests += 1;
            self.fetched += got.data.len() as u64;
            self.store(start, &got.data);
        }
        Ok(())
    }
}

/// Range requests one `prefetch_many` keeps in flight.
const PREFETCH_IN_FLIGHT: usize = 8;

impl RangeReader {
    /// The part of `start..end` not held yet (trimmed at both ends), if any.
    fn missing(&mut self, start: u64, end: u64) -> Option<(u64, u64)> {
        let mut end = end
            .min(self.info.size)
            .min(start.saturating_add(MAX_PREFETCH));
        let mut start = start;
        while start < end {
            match self.held(start) {
                Some(bytes) => start += bytes.len() as u64,
                None => break,
            }
        }
        while end > start {
            match self.held_start(end - 1) {
                Some(run_start) => end = run_start.max(start),
                None => break,
            }
        }
        (end > start).then_some((start, end))
    }
}

/// Largest prefetch: a long GOP of a high-bitrate video fits; a corrupt index
/// pointing at the whole file does not.
const MAX_PREFETCH: u64 = 64 * 1024 * 1024;

impl Drop for RangeReader {
    fn drop(&mut self) {
        tracing::debug!(source = %self.target.name(), requests = self.requests, bytes = self.fetched, "source reads");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(offset: u64, text: &str) -> Piece {
        Piece {
            offset,
            data: Bytes::copy_from_slice(text.as_bytes()),
        }
    }

    #[test]
    fn touching_runs_join() {
        let joined = Piece::merge(Some(&piece(2, "cde")), piece(5, "fg"));
        assert_eq!((joined.offset, &joined.data[..]), (2, &b"cdefg"[..]));
        let joined = Piece::merge(Some(&piece(4, "efgh")), piece(1, "bcdef"));
        assert_eq!((joined.offset, &joined.data[..]), (1, &b"bcdefgh"[..]));
    }

    #[test]
    fn a_run_inside_another_adds_nothing() {
        let kept = Piece::merge(Some(&piece(0, "abcdef")), piece(2, "cd"));
        assert_eq!((kept.offset, &kept.data[..]), (0, &b"abcdef"[..]));
    }

    #[test]
    fn apart_runs_keep_the_new_one() {
        let kept = Piece::merge(Some(&piece(0, "abcdefgh")), piece(10, "k"));
        assert_eq!((kept.offset, &kept.data[..]), (10, &b"k"[..]));
    }

    #[test]
    fn a_block_keeps_runs_apart_and_joins_those_that_touch() {
        let runs = Runs::default()
            .with(piece(20, "uv"))
            .with(piece(2, "cd"))
            .with(piece(10, "kl"));
        assert_eq!(runs.0.len(), 3, "{runs:?}");
        assert_eq!(runs.from(3).as_deref(), Some(&b"d"[..]));
        assert_eq!(runs.from(11).as_deref(), Some(&b"l"[..]));
        assert_eq!(runs.from(21).as_deref(), Some(&b"v"[..]));
        assert_eq!(runs.from(5), None);
        assert_eq!(runs.from(0), None);
        let runs = runs.with(piece(4, "efghij"));
        assert_eq!(runs.0.len(), 2, "{runs:?}");
        assert_eq!(runs.from(2).as_deref(), Some(&b"cdefghijkl"[..]));
        assert_eq!(runs.run_at(7).map(|p| p.offset), Some(2));
        assert_eq!(runs.bytes(), 12);
    }

    #[test]
    fn bytes_are_read_from_inside_a_run() {
        let p = piece(3, "defg");
        assert_eq!(p.from(5).as_deref(), Some(&b"fg"[..]));
        assert_eq!(p.from(2), None);
        assert_eq!(p.from(7), None);
    }
}
