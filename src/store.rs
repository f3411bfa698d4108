//! thumbd's own object store for uploaded videos: the `store:` environments.
//!
//! An upload streams into `incoming/` (never held whole in memory) while
//! its SHA-256 is computed; it is cut off as soon as it passes the store's
//! `max_upload_bytes`. Once checked as a readable video it is renamed into
//! `objects/` under its key, the first 32 hex digits of the digest, so the
//! same bytes uploaded twice are stored once under the same key, and their
//! thumbnails are ordinary dynamic URLs of the environment. A rename is
//! atomic and comes after the bytes are synced, so a crash mid-upload leaves
//! nothing visible; `incoming/` is emptied at start-up. A quota bounds the
//! bytes kept and a retention (days since the last upload of an object)
//! removes old ones.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::config::{Config, StoreConfig};
use crate::source::SourceTemplate;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the upload is larger than this store's limit of {max} bytes")]
    TooLarge { max: u64 },
    #[error("the store is full (quota {quota} bytes)")]
    Full { quota: u64 },
    #[error("store I/O failed: {0}")]
    Io(String),
}

fn io_err(e: io::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

/// One `store:` environment's folder.
pub struct ObjectStore {
    objects: PathBuf,
    incoming: PathBuf,
    settings: StoreConfig,
    /// Bytes of the objects held.
    used: AtomicU64,
    /// Bytes of uploads received or being received and not yet committed:
    /// counted against the quota as they arrive, so concurrent uploads
    /// cannot fill the disk past it.
    incoming_bytes: AtomicU64,
    /// Commits per key since start, under the lock that orders commits,
    /// removals and sweeps: an object is removed for a refused job only if
    /// no other upload committed it since.
    commits: Mutex<HashMap<String, u64>>,
}

/// A committed upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub key: String,
    /// False: the same bytes were already stored.
    pub new: bool,
    /// Which commit of the key this was (for [`ObjectStore::remove`]).
    pub generation: u64,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl ObjectStore {
    /// Opens (creating) the store at `dir`, discarding uploads a crash
    /// left half-written and counting the bytes held.
    pub fn open(dir: &Path, settings: StoreConfig) -> io::Result<ObjectStore> {
        let objects = dir.join("objects");
        let incoming = dir.join("incoming");
        std::fs::create_dir_all(&objects)?;
        let _ = std::fs::remove_dir_all(&incoming);
        std::fs::create_dir_all(&incoming)?;
        let mut used = 0;
        for entry in std::fs::read_dir(&objects)? {
            let meta = entry?.metadata()?;
            if meta.is_file() {
                used += meta.len();
            }
        }
        Ok(ObjectStore {
            objects,
            incoming,
            settings,
            used: AtomicU64::new(used),
            incoming_bytes: AtomicU64::new(0),
            commits: Mutex::new(HashMap::new()),
        })
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.settings.max_upload_bytes
    }

    /// Bytes of the objects held.
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Where the object `key` lives.
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.objects.join(key)
    }

    /// Starts an upload.
    pub async fn begin(self: &Arc<Self>) -> Result<Incoming, StoreError> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self
            .incoming
            .join(format!("{}-{n}.part", std::process::id()));
        let file = tokio::fs::File::create(&path).await.map_err(io_err)?;
        Ok(Incoming {
            file: Some(tokio::io::BufWriter::with_capacity(256 * 1024, file)),
            temp: TempFile(Some(path)),
            hasher: Sha256::new(),
            size: 0,
            max: self.settings.max_upload_bytes,
            store: self.clone(),
        })
    }

    /// Makes a checked upload visible under its key (if the same bytes
    /// were stored before, the temporary copy is dropped and the object's
    /// retention starts again). Blocking.
    pub fn commit(&self, mut staged: Staged) -> Result<Committed, StoreError> {
        let target = self.objects.join(&staged.key);
        let mut commits = self.commits.lock().expect("not poisoned");
        let existed = target.is_file();
        if existed {
            let _ = std::fs::File::options()
                .write(true)
                .open(&target)
                .and_then(|f| f.set_modified(SystemTime::now()));
        } else {
            if self.used_bytes() + staged.size > self.settings.quota_bytes {
                return Err(StoreError::Full {
                    quota: self.settings.quota_bytes,
                });
            }
            let temp = staged.temp.0.take().expect("a staged upload has its file");
            std::fs::rename(&temp, &target).map_err(io_err)?;
            // The rename itself reaches the disk before the job naming it.
            if let Ok(dir) = std::fs::File::open(&self.objects) {
                let _ = dir.sync_all();
            }
            self.used.fetch_add(staged.size, Ordering::Relaxed);
        }
        let generation = commits.entry(staged.key.clone()).or_default();
        *generation += 1;
        Ok(Committed {
            key: staged.key.clone(),
            new: !existed,
            generation: *generation,
        })
    }

    /// Removes an object stored for a job that was then refused, unless
    /// another upload committed it since (`generation` is the commit's).
    /// Blocking.
    pub fn remove(&self, committed: &Committed) {
        let commits = self.commits.lock().expect("not poisoned");
        if commits.get(&committed.key) != Some(&committed.generation) {
            return;
        }
        let path = self.objects.join(&committed.key);
        if let Ok(meta) = std::fs::metadata(&path) {
            if std::fs::remove_file(&path).is_ok() {
                self.used.fetch_sub(meta.len(), Ordering::Relaxed);
            }
        }
    }

    /// Removes objects not uploaded again for `retention_days`. Returns
    /// how many were removed. Blocking.
    pub fn sweep(&self, now: SystemTime) -> usize {
        if self.settings.retention_days == 0 {
            return 0;
        }
        let keep = Duration::from_secs(self.settings.retention_days * 86_400);
        let is_old = |path: &Path| {
            std::fs::metadata(path)
                .ok()
                .filter(|m| m.is_file())
                .filter(|m| {
                    m.modified()
                        .ok()
                        .and_then(|t| now.duration_since(t).ok())
                        .is_some_and(|age| age > keep)
                })
        };
        let Ok(entries) = std::fs::read_dir(&self.objects) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if is_old(&path).is_none() {
                continue;
            }
            // Looked at again under the lock: an upload of the same bytes
            // may have just renewed it.
            let mut commits = self.commits.lock().expect("not poisoned");
            if let Some(meta) = is_old(&path) {
                if std::fs::remove_file(&path).is_ok() {
                    self.used.fetch_sub(meta.len(), Ordering::Relaxed);
                    commits.remove(entry.file_name().to_string_lossy().as_ref());
                    removed += 1;
                }
            }
        }
        removed
    }
}

/// A temporary file removed when dropped, unless taken.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An upload being received.
pub struct Incoming {
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    temp: TempFile,
    hasher: Sha256,
    size: u64,
    max: u64,
    store: Arc<ObjectStore>,
}

impl Drop for Incoming {
    fn drop(&mut self) {
        // What is reserved: the bytes written, unless `finish` handed them on.
        self.store
            .incoming_bytes
            .fetch_sub(self.size, Ordering::Relaxed);
    }
}

impl Incoming {
    /// Appends bytes; past the limit the upload is refused (and its file
    /// removed when this is dropped), as it is when the store's quota
    /// cannot hold it with the objects held and the other uploads under way.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        let n = chunk.len() as u64;
        self.size += n;
        let incoming = self.store.incoming_bytes.fetch_add(n, Ordering::Relaxed) + n;
        if self.size > self.max {
            return Err(StoreError::TooLarge { max: self.max });
        }
        let quota = self.store.settings.quota_bytes;
        if self.store.used_bytes() + incoming > quota {
            return Err(StoreError::Full { quota });
        }
        self.hasher.update(chunk);
        let file = self.file.as_mut().expect("open until finished");
        file.write_all(chunk).await.map_err(io_err)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Writes the upload to disk (synced) and names it.
    pub async fn finish(mut self) -> Result<Staged, StoreError> {
        let mut file = self.file.take().expect("open until finished");
        file.flush().await.map_err(io_err)?;
        file.get_mut().sync_all().await.map_err(io_err)?;
        drop(file);
        let digest = std::mem::take(&mut self.hasher).finalize();
        // The reservation moves to the staged upload: its bytes count
        // against the quota until it is committed (then as held) or dropped.
        let size = std::mem::take(&mut self.size);
        Ok(Staged {
            key: hex::encode(&digest[..16]),
            size,
            temp: TempFile(self.temp.0.take()),
            store: self.store.clone(),
        })
    }
}

/// A complete upload, not yet visible; its file is removed if it is
/// dropped uncommitted.
pub struct Staged {
    key: String,
    size: u64,
    temp: TempFile,
    store: Arc<ObjectStore>,
}

impl Drop for Staged {
    fn drop(&mut self) {
        self.store
            .incoming_bytes
            .fetch_sub(self.size, Ordering::Relaxed);
    }
}

impl Staged {
    /// The key the object will have.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The uploaded bytes, for checking before the commit.
    pub fn path(&self) -> &Path {
        self.temp.0.as_deref().expect("uncommitted")
    }
}

/// Every `store:` environment, by org and env.
#[derive(Default, Clone)]
pub struct Stores {
    stores: HashMap<(String, String), Arc<ObjectStore>>,
}

impl Stores {
    /// Opens the stores of `config`.
    pub fn open(config: &Config) -> anyhow::Result<Stores> {
        let mut stores = HashMap::new();
        for (org_id, org) in &config.orgs {
            for (env_id, env) in &org.envs {
                let Ok(SourceTemplate::Store(dir)) =
                    SourceTemplate::parse(&env.source, &config.base_dir)
                else {
                    continue;
                };
                let store = ObjectStore::open(&dir, env.store.clone()).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot open the store {} of {org_id}/{env_id}: {e}",
                        dir.display()
                    )
                })?;
                stores.insert((org_id.clone(), env_id.clone()), Arc::new(store));
            }
        }
        Ok(Stores { stores })
    }

    pub fn get(&self, org: &str, env: &str) -> Option<&Arc<ObjectStore>> {
        self.stores.get(&(org.to_owned(), env.to_owned()))
    }

    /// The stores of one org.
    pub fn of_org<'a>(&'a self, org: &'a str) -> impl Iterator<Item = &'a Arc<ObjectStore>> + 'a {
        self.stores
            .iter()
            .filter(move |((o, _), _)| o == org)
            .map(|(_, s)| s)
    }

    /// Removes objects past their retention in every store, now and then
    /// every hour, on a blocking thread.
    pub fn spawn_sweeper(&self) {
        if self.stores.is_empty() {
            return;
        }
        let stores: Vec<_> = self.stores.values().cloned().collect();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                every.tick().await;
                let stores = stores.clone();
                let removed = tokio::task::spawn_blocking(move || {
                    stores
                        .iter()
                        .map(|s| s.sweep(SystemTime::now()))
                        .sum::<usize>()
                })
                .await
                .unwrap_or(0);
                if removed > 0 {
                    tracing::info!(removed, "uploads past their retention removed");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max: u64, quota: u64) -> StoreConfig {
        StoreConfig {
            max_upload_bytes: max,
            quota_bytes: quota,
            retention_days: 1,
        }
    }

    fn files(dir: &Path) -> usize {
        std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    }

    #[tokio::test]
    async fn same_bytes_same_key_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ObjectStore::open(dir.path(), settings(100, 1000)).unwrap());
        let mut keys = Vec::new();
        for _ in 0..2 {
            let mut up = store.begin().await.unwrap();
            up.write(b"hello ").await.unwrap();
            up.write(b"video").await.unwrap();
            let staged = up.finish().await.unwrap();
            keys.push(store.commit(staged).unwrap());
        }
        assert_eq!(keys[0].key, keys[1].key);
        assert_eq!((keys[0].new, keys[1].new), (true, false));
        assert_eq!((keys[0].generation, keys[1].generation), (1, 2));
        assert_eq!(
            std::fs::read(store.path_of(&keys[0].key)).unwrap(),
            b"hello video"
        );
        assert_eq!(store.used_bytes(), 11);
        assert_eq!(files(&dir.path().join("incoming")), 0);
        // The first upload's job refused after the second committed: kept.
        store.remove(&keys[0]);
        assert!(store.path_of(&keys[0].key).exists());
        store.remove(&keys[1]);
        assert!(!store.path_of(&keys[0].key).exists());
        assert_eq!(store.used_bytes(), 0);
    }

    #[tokio::test]
    async fn limits_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ObjectStore::open(dir.path(), settings(8, 12)).unwrap());
        let mut up = store.begin().await.unwrap();
        up.write(b"12345").await.unwrap();
        assert!(matches!(
            up.write(b"67890").await,
            Err(StoreError::TooLarge { max: 8 })
        ));
        drop(up);
        let mut up = store.begin().await.unwrap();
        up.write(b"1234567").await.unwrap();
        store.commit(up.finish().await.unwrap()).unwrap();
        // Past the quota while streaming: refused before it is all written.
        let mut up = store.begin().await.unwrap();
        assert!(matches!(
            up.write(b"abcdefg").await,
            Err(StoreError::Full { quota: 12 })
        ));
        drop(up);
        // Two uploads under way cannot together pass the quota either.
        let mut a = store.begin().await.unwrap();
        a.write(b"abc").await.unwrap();
        let mut b = store.begin().await.unwrap();
        assert!(matches!(
            b.write(b"defg").await,
            Err(StoreError::Full { quota: 12 })
        ));
        drop((a, b));
        // A finished upload keeps its room until it is committed or dropped.
        let mut a = store.begin().await.unwrap();
        a.write(b"abcde").await.unwrap();
        let a = a.finish().await.unwrap();
        let mut b = store.begin().await.unwrap();
        assert!(matches!(
            b.write(b"fghij").await,
            Err(StoreError::Full { quota: 12 })
        ));
        drop(b);
        store.commit(a).unwrap();
        assert_eq!(files(&dir.path().join("incoming")), 0);
        assert_eq!(files(&dir.path().join("objects")), 2);
    }

    #[tokio::test]
    async fn restart_clears_half_uploads_and_sweeps_old_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ObjectStore::open(dir.path(), settings(100, 1000)).unwrap());
        let mut up = store.begin().await.unwrap();
        up.write(b"kept").await.unwrap();
        let key = store.commit(up.finish().await.unwrap()).unwrap().key;
        std::fs::write(dir.path().join("incoming/crashed.part"), b"half").unwrap();
        let store = ObjectStore::open(dir.path(), settings(100, 1000)).unwrap();
        assert_eq!(files(&dir.path().join("incoming")), 0);
        assert_eq!(store.used_bytes(), 4);
        assert_eq!(store.sweep(SystemTime::now()), 0);
        let later = SystemTime::now() + Duration::from_secs(2 * 86_400);
        assert_eq!(store.sweep(later), 1);
        assert!(!store.path_of(&key).exists());
        assert_eq!(store.used_bytes(), 0);
    }
}
