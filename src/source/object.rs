//! Range reads of objects in a bucket, for [`super::http::RangeReader`]:
//! one signed, ranged GET per call, conditional on the ETag the first read
//! saw (`If-Match`), so a replaced object fails the read instead of mixing
//! its bytes with the old ones. Storage errors map to [`SourceError`] as an
//! HTTP source's statuses do. The answer is a `Fetched`, as an HTTP
//! source's is.

use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};

use super::range::Fetched;
use super::SourceError;

/// `len` bytes from `start` (fewer at the end of the object); with
/// `expect`, the object must still have that ETag.
pub(super) async fn fetch_range(
    store: &dyn ObjectStore,
    path: &Path,
    start: u64,
    len: u64,
    expect: Option<&str>,
) -> Result<Fetched, SourceError> {
    let expect = expect.filter(|e| !e.is_empty());
    let options = GetOptions {
        range: Some(GetRange::Bounded(start..start + len)),
        if_match: expect.map(str::to_owned),
        ..GetOptions::default()
    };
    let got = match store.get_opts(path, options).await {
        Ok(got) => got,
        Err(e) => {
            let error = classify(e);
            // A refused range (not a failing server) may mean an empty
            // object (no byte 0 to give) or, when a server judges the range
            // before If-Match, a shorter new object: ask what it is now.
            if matches!(error, SourceError::Io(_)) {
                match head_briefly(store, path).await {
                    Some(meta) if start == 0 && meta.size == 0 => {
                        return Ok(Fetched {
                            data: bytes::Bytes::new(),
                            total: 0,
                            validator: meta.e_tag.unwrap_or_default(),
                        })
                    }
                    Some(meta) if expect.is_some() && meta.e_tag.as_deref() != expect => {
                        return Err(SourceError::Changed)
                    }
                    _ => {}
                }
            }
            return Err(error);
        }
    };
    let validator = got.meta.e_tag.clone().unwrap_or_default();
    if let Some(expected) = expect {
        if validator != expected {
            return Err(SourceError::Changed);
        }
    }
    let total = got.meta.size;
    let range = got.range.clone();
    if range.start != start || range.end > start + len {
        return Err(SourceError::BadResponse(format!(
            "asked for bytes {start}-{}, the storage answered {}-{}",
            start + len - 1,
            range.start,
            range.end.saturating_sub(1)
        )));
    }
    let data = got.bytes().await.map_err(classify)?;
    if data.len() as u64 != range.end - range.start {
        return Err(SourceError::BadResponse(format!(
            "the storage announced {} bytes, the body had {}",
            range.end - range.start,
            data.len()
        )));
    }
    Ok(Fetched {
        data,
        total,
        validator,
    })
}

/// The object's metadata, if a HEAD answers within a moment (it only
/// explains an error already in hand, so it must not add a retry budget).
async fn head_briefly(store: &dyn ObjectStore, path: &Path) -> Option<object_store::ObjectMeta> {
    tokio::time::timeout(std::time::Duration::from_secs(2), store.head(path))
        .await
        .ok()?
        .ok()
}

/// A storage error as a source error: missing is 404, a refusal is a
/// misconfiguration (502, with S3's error code for the log), a changed
/// object is [`SourceError::Changed`]; time-outs and connection failures
/// (after object_store's retries) as for HTTP.
pub fn classify(e: object_store::Error) -> SourceError {
    use object_store::Error as E;
    match &e {
        E::NotFound { .. } => SourceError::NotFound,
        E::Precondition { .. } | E::NotModified { .. } => SourceError::Changed,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            SourceError::Denied(crate::objects::summary(&e))
        }
        // No keys in the config or the environment, and no instance
        // metadata service to ask for them.
        _ if e.to_string().contains("169.254.169.254") => SourceError::Denied(format!(
            "no credentials: none in the s3 table or the AWS_* environment variables, and the \
             instance metadata service failed ({})",
            crate::objects::summary(&e)
        )),
        _ => {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(c) = cause {
                if let Some(h) = c.downcast_ref::<object_store::client::HttpError>() {
                    use object_store::client::HttpErrorKind as K;
                    match h.kind() {
                        K::Timeout => return SourceError::Timeout,
                        K::Connect => return SourceError::Connect(crate::objects::summary(&e)),
                        _ => {}
                    }
                }
                cause = c.source();
            }
            tracing::debug!(error = ?e, "object storage error");
            SourceError::Io(format!("object storage: {}", crate::objects::summary(&e)))
        }
    }
}
