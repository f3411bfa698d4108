//! Placeholders of a thumbnail's frame (BlurHash, ThumbHash, a tiny WebP),
//! made from the same decoded frame as the thumbnail (the frame cache), on
//! the render pool, and cached apart from thumbnails: a few hundred bytes
//! each, keyed by the video and the moment alone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;

use super::{strong_etag, CacheStatus, RenderError, Renderer};
use crate::domain::{Format, RenderSpec};
use crate::media::placeholder::{self, Placeholder};
use crate::request::{RenderKey, ThumbnailRequest};

/// Bytes of placeholders kept: at ~1 KiB an entry, some 16,000 moments.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// The cache of placeholders, by their [`key`].
pub(super) type PlaceholderCache = moka::future::Cache<RenderKey, Arc<ServedPlaceholder>>;

/// An empty placeholder cache, weighed by its answers' bytes.
pub(super) fn cache() -> PlaceholderCache {
    moka::future::Cache::builder()
        .max_capacity(CACHE_BYTES)
        .weigher(|_k: &RenderKey, v: &Arc<ServedPlaceholder>| {
            (v.json.len() + 256).try_into().unwrap_or(u32::MAX)
        })
        .build()
}

/// A frame's placeholders as served: the JSON answer and its headers'
/// texts, made once so a cache hit only shares them.
#[derive(Debug)]
pub struct ServedPlaceholder {
    /// `{"blurhash", "thumbhash", "lqip", "width", "height", "time"}`.
    pub json: Bytes,
    /// Strong entity tag of `json`, quoted.
    pub etag: String,
    /// The frame's time to the millisecond, as `X-Thumbnail-Time` says it.
    pub time_text: String,
}

impl ServedPlaceholder {
    fn new(placeholder: &Placeholder) -> ServedPlaceholder {
        let json = Bytes::from(json(placeholder));
        ServedPlaceholder {
            etag: strong_etag(&json),
            time_text: format!("{:.3}", placeholder.time_secs),
            json,
        }
    }
}

/// The answer's body, its fields in this order: the ThumbHash in base64
/// (as its decoders take it), the LQIP as a data URI (what `<img src>` and
/// CSS take), the time as `X-Thumbnail-Time` says it (to the millisecond).
fn json(p: &Placeholder) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        blurhash: &'a str,
        thumbhash: String,
        lqip: String,
        width: u32,
        height: u32,
        time: f64,
    }
    let answer = Answer {
        blurhash: &p.blurhash,
        thumbhash: BASE64.encode(&p.thumbhash),
        lqip: format!("data:image/webp;base64,{}", BASE64.encode(&p.lqip)),
        width: p.width,
        height: p.height,
        time: (p.time_secs * 1000.0).round() / 1000.0,
    };
    serde_json::to_vec(&answer).expect("serializes")
}

/// A placeholder's identity: the video and the moment. Size, fit, format
/// and quality do not change the frame, so they are not part of it.
fn key(req: &ThumbnailRequest) -> RenderKey {
    ThumbnailRequest {
        org: req.org.clone(),
        env: req.env.clone(),
        key: req.key.clone(),
        spec: RenderSpec {
            format: Format::Webp,
            width: None,
            height: None,
            fit: None,
            quality: None,
            time: req.spec.time,
            snap: req.spec.snap,
        },
    }
}

impl Renderer {
    /// The placeholders of the frame a thumbnail for `req` shows (its size,
    /// fit and format do not matter), from the cache or made once however
    /// many callers ask at the same time. Failures are shared by those
    /// callers and not cached.
    pub async fn placeholder(
        &self,
        req: &ThumbnailRequest,
    ) -> Result<(Arc<ServedPlaceholder>, CacheStatus), Arc<RenderError>> {
        let Some(req) = self.canonical(req) else {
            return Err(Arc::new(RenderError::UnknownEnvironment));
        };
        let req = self.settle(req).await.map_err(Arc::new)?;
        let key = key(&req);
        if let Some(p) = self.placeholders.get(&key).await {
            self.metrics.cache_hits.inc();
            return Ok((p, CacheStatus::Hit));
        }
        let location = self
            .locate(&key.org, &key.env, &key.key)
            .await
            .map_err(Arc::new)?;
        let scope = self.scope(&key.org, &key.env, &location);
        // A streaming source's smallest rendition will do: the width asked
        // chooses it. Any other source has one frame at a time, whatever
        // the size (the thumbnails' frame).
        let spec = RenderSpec {
            width: Some(placeholder::SIDE),
            ..key.spec.clone()
        };
        let made_here = AtomicBool::new(false);
        let served = self
            .placeholders
            .try_get_with(key, async {
                made_here.store(true, Ordering::Relaxed);
                // With the shared cache, thumbnails decode frames of the
                // source's current version: the same frame-cache entry.
                let version = match &self.shared {
                    Some(_) => self.sources.version(&location).await?,
                    None => String::new(),
                };
                let (decoded, _) = self.frame(&location, &scope, version, &spec).await?;
                let made = self
                    .pool
                    .run_admitted(move || {
                        let started = Instant::now();
                        placeholder::placeholder(&decoded.frame).map(|p| (p, started.elapsed()))
                    })
                    .await
                    .map_err(|e| self.busy(e))?;
                let (placeholder, elapsed) = made?;
                self.metrics.stage("encode", elapsed);
                self.metrics.renders.inc();
                Ok::<_, RenderError>(Arc::new(ServedPlaceholder::new(&placeholder)))
            })
            .await?;
        let status = self.miss_status(made_here.load(Ordering::Relaxed), false);
        Ok((served, status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TimeSpec;

    #[test]
    fn one_entry_per_moment() {
        let req = |width, format, time| ThumbnailRequest {
            org: "o".into(),
            env: "e".into(),
            key: "a.mp4".into(),
            spec: RenderSpec {
                format,
                width,
                height: None,
                fit: None,
                quality: Some(80),
                time,
                snap: false,
            },
        };
        let at = TimeSpec::At(2_000_000);
        assert_eq!(
            key(&req(Some(320), Format::Jpeg, at)),
            key(&req(None, Format::Png, at))
        );
        assert_ne!(
            key(&req(None, Format::Webp, at)),
            key(&req(None, Format::Webp, TimeSpec::Auto))
        );
    }

    #[test]
    fn json_answer() {
        let p = Placeholder {
            blurhash: "LEHV6nWB2yk8pyo0adR*.7kCMdnj".into(),
            thumbhash: vec![1, 2, 3],
            lqip: Bytes::from_static(b"RIFF"),
            width: 640,
            height: 360,
            time_secs: 4.5600001,
        };
        let served = ServedPlaceholder::new(&p);
        let text = std::str::from_utf8(&served.json).unwrap();
        assert!(text.starts_with(r#"{"blurhash":"#), "{text}");
        let v: serde_json::Value = serde_json::from_slice(&served.json).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "blurhash": "LEHV6nWB2yk8pyo0adR*.7kCMdnj",
                "thumbhash": "AQID",
                "lqip": "data:image/webp;base64,UklGRg==",
                "width": 640,
                "height": 360,
                "time": 4.56,
            })
        );
        assert_eq!(served.time_text, "4.560");
    }
}
