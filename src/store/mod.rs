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
//! bytes kept and a retention removes old ones: an object uploaded with
//! `persistent` (a marker in `persistent/`, touched at each persistent
//! upload) is kept `retention_days` after its last persistent upload; any
//! object is kept `temporary_hours` (at most as long) after its last upload.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::config::StoreConfig;
use crate::domain::Problem;
use crate::orgs::Orgs;
use crate::source::SourceTemplate;
use http::StatusCode;

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
    /// An empty file per object uploaded with `persistent`, whose
    /// modification time is its last persistent upload.
    persistent: PathBuf,
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
    /// Whether the object is now kept as persistent (this upload or an
    /// earlier one of the same bytes, within the retention, asked for it).
    pub persistent: bool,
    /// The earliest time the sweep may remove it; `None`: never.
    pub expires: Option<SystemTime>,
}

/// The modification time of `path`, if it is a file.
fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .and_then(|m| m.modified().ok())
}

/// Creates `path` if needed and sets its modification time to `time`.
fn touch(path: &Path, time: SystemTime) -> io::Result<()> {
    std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?
        .set_modified(time)
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl ObjectStore {
    /// Opens (creating) the store at `dir`, discarding uploads a crash
    /// left half-written and counting the bytes held.
    pub fn open(dir: &Path, settings: StoreConfig) -> io::Result<ObjectStore> {
        let objects = dir.join("objects");
        let incoming = dir.join("incoming");
        let persistent = dir.join("persistent");
        std::fs::create_dir_all(&objects)?;
        let _ = std::fs::remove_dir_all(&incoming);
        std::fs::create_dir_all(&incoming)?;
        // A store from before `persistent` kept every object for
        // `retention_days`: those objects stay persistent.
        let from_before = !persistent.is_dir();
        std::fs::create_dir_all(&persistent)?;
        let mut used = 0;
        for entry in std::fs::read_dir(&objects)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_file() {
                used += meta.len();
                if from_before {
                    touch(&persistent.join(entry.file_name()), meta.modified()?)?;
                }
            }
        }
        // Markers whose object is gone (a crash between the two).
        for entry in std::fs::read_dir(&persistent)?.flatten() {
            if !objects.join(entry.file_name()).is_file() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(ObjectStore {
            objects,
            incoming,
            persistent,
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

    /// How long an object is kept after its last persistent upload, and
    /// after its last upload of any kind; `None`: forever.
    fn keeps(&self) -> (Option<Duration>, Option<Duration>) {
        let persistent = (self.settings.retention_days > 0)
            .then(|| Duration::from_secs(self.settings.retention_days * 86_400));
        let temporary = match self.settings.temporary_hours {
            0 => persistent,
            hours => {
                let hours = Duration::from_secs(hours * 3600);
                Some(persistent.map_or(hours, |p| p.min(hours)))
            }
        };
        (persistent, temporary)
    }

    /// Whether the persistent marker last touched at `marked` still keeps
    /// its object at `now`.
    fn still_persistent(&self, marked: Option<SystemTime>, now: SystemTime) -> bool {
        let Some(marked) = marked else {
            return false;
        };
        match self.keeps().0 {
            None => true,
            Some(keep) => now.duration_since(marked).map_or(true, |age| age <= keep),
        }
    }

    /// Whether the object at `path` is past its retention at `now`.
    fn expired(&self, path: &Path, now: SystemTime) -> bool {
        let (_, temporary) = self.keeps();
        let Some(uploaded) = modified(path) else {
            return false;
        };
        let temporary_over =
            temporary.is_some_and(|keep| now.duration_since(uploaded).is_ok_and(|age| age > keep));
        let marker = path.file_name().map(|name| self.persistent.join(name));
        temporary_over && !self.still_persistent(marker.as_deref().and_then(modified), now)
    }

    /// Makes a checked upload visible under its key (if the same bytes
    /// were stored before, the temporary copy is dropped and the object's
    /// retention starts again). `persistent`: the object is kept for
    /// `retention_days` from now, else for `temporary_hours` (unless an
    /// earlier persistent upload keeps it longer). Blocking.
    pub fn commit(&self, mut staged: Staged, persistent: bool) -> Result<Committed, StoreError> {
        let target = self.objects.join(&staged.key);
        let marker = self.persistent.join(&staged.key);
        let mut commits = self.commits.lock().expect("not poisoned");
        let existed = target.is_file();
        let now = SystemTime::now();
        if persistent {
            // Before the object is visible: a crash in between leaves a
            // marker without an object, removed at the next start.
            touch(&marker, now).map_err(io_err)?;
        }
        if existed {
            let _ = std::fs::File::options()
                .write(true)
                .open(&target)
                .and_then(|f| f.set_modified(now));
        } else {
            if self.used_bytes() + staged.size > self.settings.quota_bytes {
                if persistent {
                    let _ = std::fs::remove_file(&marker);
                }
                return Err(StoreError::Full {
                    quota: self.settings.quota_bytes,
                });
            }
            let temp = staged.temp.0.take().expect("a staged upload has its file");
            if let Err(e) = std::fs::rename(&temp, &target) {
                let _ = std::fs::remove_file(&temp);
                if persistent {
                    let _ = std::fs::remove_file(&marker);
                }
                return Err(io_err(e));
            }
            // The rename itself reaches the disk before the job naming it.
            if let Ok(dir) = std::fs::File::open(&self.objects) {
                let _ = dir.sync_all();
            }
            self.used.fetch_add(staged.size, Ordering::Relaxed);
        }
        let generation = commits.entry(staged.key.clone()).or_default();
        *generation += 1;
        let (keep_persistent, keep_temporary) = self.keeps();
        let marked = modified(&marker);
        let is_persistent = self.still_persistent(marked, now);
        // The later of the two ends; `None` (never) wins.
        let expires = match (keep_temporary.map(|k| now + k), is_persistent) {
            (None, _) => None,
            (Some(t), false) => Some(t),
            (Some(t), true) => keep_persistent.zip(marked).map(|(k, m)| (m + k).max(t)),
        };
        Ok(Committed {
            key: staged.key.clone(),
            new: !existed,
            generation: *generation,
            persistent: is_persistent,
            expires,
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
                let _ = std::fs::remove_file(self.persistent.join(&committed.key));
            }
        }
    }

    /// Removes objects past their retention: not uploaded again for
    /// `temporary_hours`, and not uploaded with `persistent` for
    /// `retention_days`. Returns how many were removed. Blocking.
    pub fn sweep(&self, now: SystemTime) -> usize {
        if self.keeps().1.is_none() {
            return 0;
        }
        let Ok(entries) = std::fs::read_dir(&self.objects) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if !self.expired(&path, now) {
                continue;
            }
            // Looked at again under the lock: an upload of the same bytes
            // may have just renewed it.
            let mut commits = self.commits.lock().expect("not poisoned");
            if !self.expired(&path, now) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if std::fs::remove_file(&path).is_ok() {
                self.used.fetch_sub(meta.len(), Ordering::Relaxed);
                let _ = std::fs::remove_file(self.persistent.join(entry.file_name()));
                commits.remove(entry.file_name().to_string_lossy().as_ref());
                removed += 1;
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
    /// Opens the store of every `store:` environment.
    pub fn open(orgs: &Orgs) -> anyhow::Result<Stores> {
        let mut stores = HashMap::new();
        for (org_id, env_id, template, env) in orgs.templates() {
            let SourceTemplate::Store(dir) = template else {
                continue;
            };
            let store = ObjectStore::open(dir, env.store.clone()).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open the store {} of {org_id}/{env_id}: {e}",
                    dir.display()
                )
            })?;
            stores.insert((org_id.to_owned(), env_id.to_owned()), Arc::new(store));
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

impl From<&StoreError> for Problem {
    fn from(e: &StoreError) -> Problem {
        match e {
            StoreError::TooLarge { max } => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "upload-too-large",
                "Upload too large",
                e.to_string(),
            )
            .with_member("maxBytes", *max),
            StoreError::Full { .. } => Problem::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "store-full",
                "Store full",
                "the upload store has no room for this video under its quota",
            ),
            StoreError::Io(_) => Problem::internal(),
        }
    }
}
#[cfg(test)]
mod tests;
