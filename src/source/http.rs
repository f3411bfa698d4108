//! HTTP sources read with Range requests.
//!
//! Bytes are cached in fixed-size blocks in a moka cache weighted by size,
//! keyed by the URL and its validator (ETag, else Last-Modified), so several
//! thumbnails of one video share its container index and packets, and a
//! changed object never mixes with its old bytes. A reader fetches runs of
//! missing blocks in one request, and doubles the run while reads stay
//! sequential, so a thumbnail costs a few round trips, not one per 32 KiB
//! FFmpeg asks for.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{CONTENT_RANGE, ETAG, LAST_MODIFIED, RANGE};
use reqwest::StatusCode;

use super::range::{parse_content_range, parse_unsatisfied_total, range_header};
use super::{SourceError, SourceRead};
use crate::config::{CacheConfig, FetchConfig};

/// Granularity of the byte cache.
pub const BLOCK_SIZE: u64 = 32 * 1024;

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

struct Shared {
    client: reqwest::Client,
    blocks: moka::sync::Cache<BlockKey, Bytes>,
    objects: moka::sync::Cache<String, ObjectInfo>,
    initial_read: u64,
    max_read: u64,
}

/// The HTTP side of [`super::Sources`]; cheap to clone.
#[derive(Clone)]
pub struct HttpSources {
    shared: Arc<Shared>,
}

fn round_up_to_block(v: u64) -> u64 {
    v.div_ceil(BLOCK_SIZE).max(1) * BLOCK_SIZE
}

impl HttpSources {
    pub fn new(fetch: &FetchConfig, cache: &CacheConfig) -> Result<HttpSources, SourceError> {
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
            .weigher(|_k: &BlockKey, v: &Bytes| v.len().try_into().unwrap_or(u32::MAX))
            .build();
        let objects = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(cache.source_ttl_secs))
            .build();
        let initial_read = round_up_to_block(fetch.initial_read_bytes);
        Ok(HttpSources {
            shared: Arc::new(Shared {
                client,
                blocks,
                objects,
                initial_read,
                max_read: round_up_to_block(fetch.max_read_bytes).max(initial_read),
            }),
        })
    }

    /// Finds the object's size and validator (from the cache, or with a first
    /// range request whose bytes are kept) and returns a reader.
    pub async fn open(&self, url: &str) -> Result<RangeReader, SourceError> {
        let info = match self.shared.objects.get(url) {
            Some(info) => info,
            None => {
                let first =
                    fetch(&self.shared.client, url, 0, self.shared.initial_read, None).await?;
                let info = ObjectInfo {
                    size: first.total,
                    identity: format!("{url}\n{}", first.validator).into(),
                    validator: first.validator.into(),
                };
                store_blocks(&self.shared.blocks, &info.identity, 0, &first.data);
                self.shared.objects.insert(url.to_owned(), info.clone());
                info
            }
        };
        Ok(RangeReader {
            shared: self.shared.clone(),
            runtime: tokio::runtime::Handle::current(),
            url: url.to_owned(),
            info,
            pos: 0,
            local: HashMap::new(),
            next_sequential: None,
            read_ahead: self.shared.initial_read,
            requests: 0,
            fetched: 0,
        })
    }
}

fn store_blocks(
    cache: &moka::sync::Cache<BlockKey, Bytes>,
    identity: &Arc<str>,
    start: u64,
    data: &Bytes,
) {
    for (i, chunk) in data.chunks(BLOCK_SIZE as usize).enumerate() {
        let offset = i * BLOCK_SIZE as usize;
        let block = data.slice(offset..offset + chunk.len());
        cache.insert((identity.clone(), start / BLOCK_SIZE + i as u64), block);
    }
}

struct Fetched {
    data: Bytes,
    total: u64,
    validator: String,
}

fn classify(e: reqwest::Error) -> SourceError {
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
/// object). With `expect`, the answer must carry that validator.
async fn fetch(
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
    url: String,
    info: ObjectInfo,
    pos: u64,
    /// Blocks this reader has used, so cache eviction under load cannot make
    /// one render fetch the same bytes twice.
    local: HashMap<u64, Bytes>,
    /// Where the last fetch ended: a read there continues a sequential run.
    next_sequential: Option<u64>,
    read_ahead: u64,
    requests: u32,
    fetched: u64,
}

impl RangeReader {
    fn block(&mut self, index: u64) -> io::Result<Bytes> {
        if let Some(b) = self.local.get(&index) {
            return Ok(b.clone());
        }
        if let Some(b) = self.shared.blocks.get(&(self.info.identity.clone(), index)) {
            self.local.insert(index, b.clone());
            return Ok(b);
        }
        let start = index * BLOCK_SIZE;
        self.read_ahead = if self.next_sequential == Some(start) {
            (self.read_ahead * 2).min(self.shared.max_read)
        } else {
            self.shared.initial_read
        };
        // Fetch up to the read-ahead, stopping before a block already held.
        let limit = (start + self.read_ahead).min(self.info.size);
        let mut end = (start + BLOCK_SIZE).min(self.info.size);
        while end < limit && !self.has_block(end / BLOCK_SIZE) {
            end = (end + BLOCK_SIZE).min(limit);
        }
        self.fetch_run(index, end)?;
        Ok(self.local[&index].clone())
    }

    /// Fetches blocks `index..` up to byte `end` in one request and keeps them.
    fn fetch_run(&mut self, index: u64, end: u64) -> io::Result<()> {
        let start = index * BLOCK_SIZE;
        let fetched = self
            .runtime
            .block_on(fetch(
                &self.shared.client,
                &self.url,
                start,
                end - start,
                Some(&self.info.validator),
            ))
            .inspect_err(|e| {
                if matches!(e, SourceError::Changed) {
                    self.shared.objects.invalidate(&self.url);
                }
            })
            .map_err(io::Error::other)?;
        if fetched.data.len() as u64 != end - start {
            return Err(io::Error::other(SourceError::Changed));
        }
        self.requests += 1;
        self.fetched += fetched.data.len() as u64;
        store_blocks(
            &self.shared.blocks,
            &self.info.identity,
            start,
            &fetched.data,
        );
        for i in 0..(end - start).div_ceil(BLOCK_SIZE) {
            let from = (i * BLOCK_SIZE) as usize;
            let to = ((i + 1) * BLOCK_SIZE).min(end - start) as usize;
            self.local.insert(index + i, fetched.data.slice(from..to));
        }
        self.next_sequential = Some(end);
        Ok(())
    }

    fn has_block(&self, index: u64) -> bool {
        self.local.contains_key(&index)
            || self
                .shared
                .blocks
                .contains_key(&(self.info.identity.clone(), index))
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.info.size || buf.is_empty() {
            return Ok(0);
        }
        let index = self.pos / BLOCK_SIZE;
        let block = self.block(index)?;
        let offset = (self.pos - index * BLOCK_SIZE) as usize;
        let n = buf.len().min(block.len().saturating_sub(offset));
        if n == 0 {
            return Err(io::Error::other(SourceError::Changed));
        }
        buf[..n].copy_from_slice(&block[offset..offset + n]);
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

impl SourceRead for RangeReader {
    fn size(&self) -> u64 {
        self.info.size
    }

    /// Fetches the missing part of `start..end` in one request (capped), so
    /// the packets from a keyframe to the target frame cost one round trip.
    fn prefetch(&mut self, start: u64, end: u64) -> io::Result<()> {
        let end = end
            .min(self.info.size)
            .min(start.saturating_add(MAX_PREFETCH));
        let Some(first) =
            (start / BLOCK_SIZE..end.div_ceil(BLOCK_SIZE)).find(|i| !self.has_block(*i))
        else {
            return Ok(());
        };
        let from = first * BLOCK_SIZE;
        let to = end
            .div_ceil(BLOCK_SIZE)
            .saturating_mul(BLOCK_SIZE)
            .min(self.info.size);
        if to <= from {
            return Ok(());
        }
        self.fetch_run(first, to)
    }
}

/// Largest prefetch: a long GOP of a high-bitrate video fits; a corrupt index
/// pointing at the whole file does not.
const MAX_PREFETCH: u64 = 64 * 1024 * 1024;

impl Drop for RangeReader {
    fn drop(&mut self) {
        tracing::debug!(url = %self.url, requests = self.requests, bytes = self.fetched, "source reads");
    }
}
