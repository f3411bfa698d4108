//! The video URLs callers have handed thumbd, by key.
//!
//! A video URL's thumbnails are served like any other thumbnail, at
//! `/v1/thumbnail/{org}/{video_url_env}/{key}.webp`, under a key derived
//! from the URL and the object's validator (ETag, else Last-Modified). So a
//! replaced video gets a new key (and new thumbnails), and the key alone
//! finds the URL again: this book, kept beside the jobs so it survives
//! restarts. With one node that is SQLite (`jobs.db_path`); with jobs in
//! PostgreSQL (`jobs.database_url`) it is a table there, shared by every
//! node, so a thumbnail URL one node handed out works on any node. Async;
//! SQLite is used from blocking threads.
//!
//! The book is bounded (`jobs.url_book_max_age_days`,
//! `jobs.url_book_max_entries`; 0 turns either off). Each entry has the
//! time it was last used: registered (the URL submitted again) or looked up
//! for a thumbnail, written at most once per [`UrlBook::touch_every`] per
//! node (so a hot key costs no write per request). An entry not used for
//! the maximum age is gone (lookups stop finding it at once; the row is
//! deleted by the next sweep), and past the maximum count the least
//! recently used go. Sweeps run from registrations, at most once a minute
//! per node: the book grows only through them, and each is two indexed
//! deletes. A removed key's thumbnails answer 404 until its URL is
//! submitted again, which registers the same key anew.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::SourceError;
use crate::config::Config;
use crate::jobs::postgres::{self, PgError};

/// What a key stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub url: String,
    pub validator: String,
}

/// How far the book may grow; 0 is no bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Entries at most (the least recently used go past it).
    pub max_entries: u64,
    /// An entry not used for this long is gone, seconds.
    pub max_age_secs: u64,
}

impl Bounds {
    /// No bound at all.
    pub const NONE: Bounds = Bounds {
        max_entries: 0,
        max_age_secs: 0,
    };

    /// `[jobs] url_book_max_entries` and `url_book_max_age_days`.
    pub fn of(config: &Config) -> Bounds {
        Bounds {
            max_entries: config.jobs.url_book_max_entries,
            max_age_secs: config.jobs.url_book_max_age_days.saturating_mul(DAY as u64),
        }
    }
}

/// Unix seconds now; replaceable in tests.
type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

fn system_clock() -> i64 {
    crate::domain::now_secs().try_into().unwrap_or(i64::MAX)
}

const DAY: i64 = 86_400;

/// Least time between two sweeps of one node, seconds.
const SWEEP_EVERY_SECS: i64 = 60;

/// The book: where it is kept, and the entries used lately.
pub struct UrlBook {
    backing: Backing,
    /// Recently used entries: a thumbnail request should not need the
    /// database. (An entry never changes once written: a key stands for
    /// one URL and version.) With the last use this node wrote.
    recent: moka::sync::Cache<(String, String), Recent>,
    bounds: Bounds,
    clock: Clock,
    /// When this node last swept (clock seconds; `i64::MIN`: never).
    last_sweep: AtomicI64,
    sweep_every_secs: i64,
}

#[derive(Clone)]
struct Recent {
    entry: Entry,
    /// The entry's last use as written in the book (by this node, or as
    /// read from it).
    used_at: i64,
}

/// Where the book is kept.
enum Backing {
    /// One node: a table of the SQLite job database.
    Sqlite(Arc<Mutex<Connection>>),
    /// Several nodes: the table `url_book` in the jobs' PostgreSQL,
    /// created on first use.
    Postgres {
        pool: deadpool_postgres::Pool,
        schema: tokio::sync::OnceCell<()>,
    },
}

/// Connections the book may hold in PostgreSQL: lookups are few (recent
/// entries are in memory) and short.
const PG_POOL_SIZE: usize = 4;

/// The book's table in PostgreSQL (under the jobs' schema lock). `used_at`
/// (Unix seconds of the last use) came later: a book from before it gets
/// the column with the time of the upgrade, so its entries start their
/// age then.
const PG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS url_book (
    org TEXT NOT NULL,
    key TEXT NOT NULL,
    url TEXT NOT NULL,
    validator TEXT NOT NULL,
    PRIMARY KEY (org, key)
);
ALTER TABLE url_book ADD COLUMN IF NOT EXISTS
    used_at BIGINT NOT NULL DEFAULT (extract(epoch FROM now()))::bigint;
CREATE INDEX IF NOT EXISTS url_book_used_at ON url_book (used_at);
";

/// The key of `url` (normalised) as it is now (`validator`): 32 hex digits.
pub fn key_for(url: &str, validator: &str) -> String {
    let digest = Sha256::digest(format!("{url}\n{validator}").as_bytes());
    hex::encode(&digest[..16])
}

/// A failure of the book, as a source error (the thumbnail cannot be found).
fn failed(e: impl std::fmt::Display) -> SourceError {
    SourceError::Io(format!("the video URL book: {e}"))
}

/// Runs `f` on the SQLite connection on a blocking thread.
async fn blocking<T: Send + 'static>(
    conn: &Arc<Mutex<Connection>>,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, SourceError> {
    let conn = conn.clone();
    tokio::task::spawn_blocking(move || f(&conn.lock().expect("not poisoned")))
        .await
        .map_err(failed)?
        .map_err(failed)
}

impl UrlBook {
    /// The book `config` says: in PostgreSQL when `jobs.database_url` (or
    /// `_env`, `_file`) is set, else in the SQLite job database, bounded as
    /// `[jobs]` says. Makes no connection to PostgreSQL yet; errors never
    /// show the password.
    pub fn open(config: &Config) -> anyhow::Result<UrlBook> {
        let book = match crate::jobs::backend::database_url(config)? {
            Some(url) => {
                let name = match &config.jobs.node_id {
                    Some(node) => format!("thumbd {node} url book"),
                    None => "thumbd url book".to_owned(),
                };
                let (pool, _) = postgres::pool(&url, &name, PG_POOL_SIZE)?;
                UrlBook::with(Backing::Postgres {
                    pool,
                    schema: tokio::sync::OnceCell::new(),
                })
            }
            None => {
                let path = config.jobs_db_path();
                UrlBook::sqlite(&path).map_err(|e| {
                    anyhow::anyhow!("cannot open the video URL book in {}: {e}", path.display())
                })?
            }
        };
        Ok(book.bounded(Bounds::of(config)))
    }

    /// Opens (creating if needed) the book in the SQLite database at `path`,
    /// unbounded (see [`UrlBook::bounded`]).
    pub fn sqlite(path: &Path) -> rusqlite::Result<UrlBook> {
        let conn = crate::sqlite::open(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS video_urls (
                org TEXT NOT NULL,
                key TEXT NOT NULL,
                url TEXT NOT NULL,
                validator TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                used_at INTEGER NOT NULL,
                PRIMARY KEY (org, key)
             );",
        )?;
        // A book from before `used_at`: its entries were last used when
        // they were registered.
        let has_used_at: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('video_urls') WHERE name = 'used_at'",
            [],
            |row| row.get(0),
        )?;
        if !has_used_at {
            conn.execute_batch(
                "BEGIN;
                 ALTER TABLE video_urls ADD COLUMN used_at INTEGER NOT NULL DEFAULT 0;
                 UPDATE video_urls SET used_at = created_at;
                 COMMIT;",
            )?;
        }
        conn.execute_batch(
            "CREATE INDEX IF NOT EXISTS video_urls_used_at ON video_urls (used_at);",
        )?;
        Ok(UrlBook::with(Backing::Sqlite(Arc::new(Mutex::new(conn)))))
    }

    fn with(backing: Backing) -> UrlBook {
        UrlBook {
            backing,
            recent: moka::sync::Cache::new(10_000),
            bounds: Bounds::NONE,
            clock: Arc::new(system_clock),
            last_sweep: AtomicI64::new(i64::MIN),
            sweep_every_secs: SWEEP_EVERY_SECS,
        }
    }

    /// This book, bounded by `bounds`.
    pub fn bounded(mut self, bounds: Bounds) -> UrlBook {
        self.bounds = bounds;
        self
    }

    /// How often an entry's last use is written while it is being used,
    /// seconds: an eighth of the maximum age (so an entry in use never
    /// reaches it), at most a day, at least a second.
    pub fn touch_every(&self) -> i64 {
        match self.max_age() {
            Some(age) => (age / 8).clamp(1, DAY),
            None => DAY,
        }
    }

    fn max_age(&self) -> Option<i64> {
        (self.bounds.max_age_secs > 0).then(|| self.bounds.max_age_secs.min(i64::MAX as u64) as i64)
    }

    /// The oldest last use an entry may have at `now` and still count.
    fn cutoff(&self, now: i64) -> i64 {
        self.max_age()
            .map_or(i64::MIN, |age| now.saturating_sub(age))
    }

    /// Records that `key` of `org` stands for `entry` (before any job that
    /// names the key is accepted), used now. A key written already keeps
    /// its entry; a key removed is written again. Then sweeps, if one is
    /// due.
    pub async fn put(&self, org: &str, key: &str, entry: &Entry) -> Result<(), SourceError> {
        let now = (self.clock)();
        match &self.backing {
            Backing::Sqlite(conn) => {
                let (org, key, e) = (org.to_owned(), key.to_owned(), entry.clone());
                blocking(conn, move |conn| {
                    conn.execute(
                        "INSERT INTO video_urls (org, key, url, validator, created_at, used_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                         ON CONFLICT (org, key) DO UPDATE
                         SET used_at = MAX(used_at, excluded.used_at)",
                        params![org, key, e.url, e.validator, now],
                    )
                })
                .await?;
            }
            Backing::Postgres { pool, schema } => {
                let put = async {
                    let client = Self::pg_client(pool, schema).await?;
                    let stmt = client
                        .prepare_cached(
                            "INSERT INTO url_book (org, key, url, validator, used_at)
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org, key) DO UPDATE
                             SET used_at = GREATEST(url_book.used_at, excluded.used_at)",
                        )
                        .await?;
                    client
                        .execute(&stmt, &[&org, &key, &entry.url, &entry.validator, &now])
                        .await?;
                    Ok::<_, PgError>(())
                };
                put.await.map_err(failed)?;
            }
        }
        self.recent.insert(
            (org.to_owned(), key.to_owned()),
            Recent {
                entry: entry.clone(),
                used_at: now,
            },
        );
        self.sweep_if_due(now).await;
        Ok(())
    }

    /// What `key` of `org` stands for, if thumbd (any node sharing the
    /// book) was given it and it has not been removed since; counts as a
    /// use.
    pub async fn get(&self, org: &str, key: &str) -> Result<Option<Entry>, SourceError> {
        let now = (self.clock)();
        let id = (org.to_owned(), key.to_owned());
        if let Some(r) = self.recent.get(&id) {
            if now.saturating_sub(r.used_at) < self.touch_every() {
                return Ok(Some(r.entry));
            }
            // Time to write the use, which also sees whether the entry
            // is still there (another node may have removed it).
            return Ok(if self.touch(org, key, now).await? {
                self.recent.insert(
                    id,
                    Recent {
                        entry: r.entry.clone(),
                        used_at: now,
                    },
                );
                Some(r.entry)
            } else {
                self.recent.invalidate(&id);
                None
            });
        }
        let cutoff = self.cutoff(now);
        let found = match &self.backing {
            Backing::Sqlite(conn) => {
                let (org, key) = (org.to_owned(), key.to_owned());
                blocking(conn, move |conn| {
                    conn.query_row(
                        "SELECT url, validator, used_at FROM video_urls
                         WHERE org = ?1 AND key = ?2 AND used_at >= ?3",
                        params![org, key, cutoff],
                        |row| {
                            Ok(Recent {
                                entry: Entry {
                                    url: row.get(0)?,
                                    validator: row.get(1)?,
                                },
                                used_at: row.get(2)?,
                            })
                        },
                    )
                    .optional()
                })
                .await?
            }
            Backing::Postgres { pool, schema } => {
                let get = async {
                    let client = Self::pg_client(pool, schema).await?;
                    let stmt = client
                        .prepare_cached(
                            "SELECT url, validator, used_at FROM url_book
                             WHERE org = $1 AND key = $2 AND used_at >= $3",
                        )
                        .await?;
                    match client.query_opt(&stmt, &[&org, &key, &cutoff]).await? {
                        Some(row) => Ok::<_, PgError>(Some(Recent {
                            entry: Entry {
                                url: row.try_get(0)?,
                                validator: row.try_get(1)?,
                            },
                            used_at: row.try_get(2)?,
                        })),
                        None => Ok(None),
                    }
                };
                get.await.map_err(failed)?
            }
        };
        let Some(mut found) = found else {
            return Ok(None);
        };
        if now.saturating_sub(found.used_at) >= self.touch_every()
            && self.touch(org, key, now).await?
        {
            found.used_at = now;
        }
        let entry = found.entry.clone();
        self.recent.insert(id, found);
        Ok(Some(entry))
    }

    /// Writes a use of `key` at `now`, unless the entry is gone (removed,
    /// or past the maximum age): whether it was there.
    async fn touch(&self, org: &str, key: &str, now: i64) -> Result<bool, SourceError> {
        let cutoff = self.cutoff(now);
        let changed = match &self.backing {
            Backing::Sqlite(conn) => {
                let (org, key) = (org.to_owned(), key.to_owned());
                blocking(conn, move |conn| {
                    conn.execute(
                        "UPDATE video_urls SET used_at = MAX(used_at, ?3)
                         WHERE org = ?1 AND key = ?2 AND used_at >= ?4",
                        params![org, key, now, cutoff],
                    )
                })
                .await? as u64
            }
            Backing::Postgres { pool, schema } => {
                let touch = async {
                    let client = Self::pg_client(pool, schema).await?;
                    let stmt = client
                        .prepare_cached(
                            "UPDATE url_book SET used_at = GREATEST(used_at, $3)
                             WHERE org = $1 AND key = $2 AND used_at >= $4",
                        )
                        .await?;
                    Ok::<_, PgError>(client.execute(&stmt, &[&org, &key, &now, &cutoff]).await?)
                };
                touch.await.map_err(failed)?
            }
        };
        Ok(changed > 0)
    }

    /// Sweeps if the book is bounded and this node has not swept in the
    /// last minute. A failure is logged: the registration stands.
    async fn sweep_if_due(&self, now: i64) {
        if self.bounds == Bounds::NONE {
            return;
        }
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now.saturating_sub(last) < self.sweep_every_secs
            || self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        match self.sweep_at(now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "video URL book swept"),
            Err(e) => tracing::warn!(error = %e, "video URL book sweep failed"),
        }
    }

    /// Removes the entries past the bounds now: those not used for the
    /// maximum age, then the least recently used past the maximum count.
    /// Returns how many went.
    pub async fn sweep(&self) -> Result<u64, SourceError> {
        self.sweep_at((self.clock)()).await
    }

    async fn sweep_at(&self, now: i64) -> Result<u64, SourceError> {
        let cutoff = self.max_age().map(|age| now.saturating_sub(age));
        let keep = (self.bounds.max_entries > 0)
            .then(|| self.bounds.max_entries.min(i64::MAX as u64) as i64);
        let removed: Vec<(String, String)> = match &self.backing {
            Backing::Sqlite(conn) => {
                blocking(conn, move |conn| {
                    let mut removed = Vec::new();
                    let row = |row: &rusqlite::Row| Ok((row.get(0)?, row.get(1)?));
                    if let Some(cutoff) = cutoff {
                        let mut stmt = conn.prepare_cached(
                            "DELETE FROM video_urls WHERE used_at < ?1 RETURNING org, key",
                        )?;
                        for r in stmt.query_map([cutoff], row)? {
                            removed.push(r?);
                        }
                    }
                    if let Some(keep) = keep {
                        let mut stmt = conn.prepare_cached(
                            "DELETE FROM video_urls WHERE rowid IN (
                                 SELECT rowid FROM video_urls
                                 ORDER BY used_at DESC, rowid DESC LIMIT -1 OFFSET ?1
                             ) RETURNING org, key",
                        )?;
                        for r in stmt.query_map([keep], row)? {
                            removed.push(r?);
                        }
                    }
                    Ok(removed)
                })
                .await?
            }
            Backing::Postgres { pool, schema } => {
                let sweep = async {
                    let client = Self::pg_client(pool, schema).await?;
                    let mut removed = Vec::new();
                    if let Some(cutoff) = cutoff {
                        let stmt = client
                            .prepare_cached(
                                "DELETE FROM url_book WHERE used_at < $1 RETURNING org, key",
                            )
                            .await?;
                        for row in client.query(&stmt, &[&cutoff]).await? {
                            removed.push((row.try_get(0)?, row.try_get(1)?));
                        }
                    }
                    if let Some(keep) = keep {
                        let stmt = client
                            .prepare_cached(
                                "DELETE FROM url_book WHERE (org, key) IN (
                                     SELECT org, key FROM url_book
                                     ORDER BY used_at DESC, org DESC, key DESC OFFSET $1
                                 ) RETURNING org, key",
                            )
                            .await?;
                        for row in client.query(&stmt, &[&keep]).await? {
                            removed.push((row.try_get(0)?, row.try_get(1)?));
                        }
                    }
                    Ok::<_, PgError>(removed)
                };
                sweep.await.map_err(failed)?
            }
        };
        for id in &removed {
            self.recent.invalidate(id);
        }
        Ok(removed.len() as u64)
    }

    /// A connection from the pool, once the table exists (created by the
    /// first call of this process; again after a failure).
    async fn pg_client(
        pool: &deadpool_postgres::Pool,
        schema: &tokio::sync::OnceCell<()>,
    ) -> postgres::Result<deadpool_postgres::Object> {
        schema
            .get_or_try_init(|| postgres::create_schema(pool, PG_SCHEMA))
            .await?;
        Ok(pool.get().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_url_and_its_version() {
        let a = key_for("https://m.example.com/a.mp4", "\"v1\"");
        assert_eq!(a.len(), 32);
        assert_eq!(a, key_for("https://m.example.com/a.mp4", "\"v1\""));
        assert_ne!(a, key_for("https://m.example.com/a.mp4", "\"v2\""));
        assert_ne!(a, key_for("https://m.example.com/b.mp4", "\"v1\""));
    }

    #[tokio::test]
    async fn entries_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let e = Entry {
            url: "https://m.example.com/a.mp4".into(),
            validator: "\"v1\"".into(),
        };
        UrlBook::sqlite(&path)
            .unwrap()
            .put("o", "k1", &e)
            .await
            .unwrap();
        let book = UrlBook::sqlite(&path).unwrap();
        assert_eq!(book.get("o", "k1").await.unwrap(), Some(e));
        assert_eq!(book.get("other", "k1").await.unwrap(), None);
    }

    /// A book in a fresh SQLite file, bounded by `bounds`, on a clock the
    /// test moves (seconds), sweeping after every registration.
    fn book(
        dir: &tempfile::TempDir,
        bounds: Bounds,
    ) -> (UrlBook, Arc<std::sync::atomic::AtomicI64>) {
        let now = Arc::new(std::sync::atomic::AtomicI64::new(1_800_000_000));
        let clock = now.clone();
        let mut book = UrlBook::sqlite(&dir.path().join("t.db"))
            .unwrap()
            .bounded(bounds);
        book.clock = Arc::new(move || clock.load(Ordering::SeqCst));
        book.sweep_every_secs = 0;
        (book, now)
    }

    fn entry(n: usize) -> Entry {
        Entry {
            url: format!("https://m.example.com/{n}.mp4"),
            validator: "\"v1\"".into(),
        }
    }

    fn rows(book: &UrlBook) -> i64 {
        let Backing::Sqlite(conn) = &book.backing else {
            unreachable!()
        };
        conn.lock()
            .unwrap()
            .query_row("SELECT COUNT(*) FROM video_urls", [], |r| r.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn past_the_count_the_least_recently_used_go() {
        let dir = tempfile::tempdir().unwrap();
        let (book, now) = book(
            &dir,
            Bounds {
                max_entries: 3,
                max_age_secs: 0,
            },
        );
        for n in 0..8 {
            book.put("o", &format!("k{n}"), &entry(n)).await.unwrap();
            now.fetch_add(1, Ordering::SeqCst);
            assert!(rows(&book) <= 3);
        }
        for n in 0..5 {
            assert_eq!(book.get("o", &format!("k{n}")).await.unwrap(), None, "k{n}");
        }
        for n in 5..8 {
            assert_eq!(
                book.get("o", &format!("k{n}")).await.unwrap(),
                Some(entry(n))
            );
        }
        // A use counts once it is written (after touch_every): k5, the
        // oldest registration, is used later than k6 and stays.
        now.fetch_add(book.touch_every(), Ordering::SeqCst);
        assert!(book.get("o", "k5").await.unwrap().is_some());
        now.fetch_add(1, Ordering::SeqCst);
        book.put("o", "k8", &entry(8)).await.unwrap();
        assert_eq!(book.get("o", "k6").await.unwrap(), None);
        for n in [5, 7, 8] {
            assert_eq!(
                book.get("o", &format!("k{n}")).await.unwrap(),
                Some(entry(n))
            );
        }
        // A removed key is registered again by its URL, as new.
        now.fetch_add(1, Ordering::SeqCst);
        book.put("o", "k0", &entry(0)).await.unwrap();
        assert_eq!(book.get("o", "k0").await.unwrap(), Some(entry(0)));
        assert_eq!(rows(&book), 3);
    }

    #[tokio::test]
    async fn entries_not_used_for_the_maximum_age_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let (book, now) = book(
            &dir,
            Bounds {
                max_entries: 0,
                max_age_secs: 30 * DAY as u64,
            },
        );
        let day = |n: i64| now.fetch_add(n * DAY, Ordering::SeqCst);
        book.put("o", "old", &entry(1)).await.unwrap();
        book.put("o", "used", &entry(2)).await.unwrap();
        day(10);
        book.put("o", "newer", &entry(3)).await.unwrap();
        // "used" is looked up every 3 days (its use is written at most
        // daily: touch_every is an eighth of the age, at most a day).
        for _ in 0..7 {
            day(3);
            assert!(book.get("o", "used").await.unwrap().is_some());
        }
        assert_eq!(book.touch_every(), DAY);
        // Day 31: "old" is gone for lookups at once (even from memory),
        // before any sweep. (Not looking "newer" up: that would be a use.)
        assert_eq!(book.get("o", "old").await.unwrap(), None);
        assert_eq!(rows(&book), 3);
        assert_eq!(book.sweep().await.unwrap(), 1);
        assert_eq!(rows(&book), 2);
        // Registering it again brings it back.
        book.put("o", "old", &entry(1)).await.unwrap();
        assert_eq!(book.get("o", "old").await.unwrap(), Some(entry(1)));
        // Day 41: "newer" (registered on day 10, never looked up again) is
        // gone; "used", still in use, stays.
        day(8);
        assert_eq!(book.sweep().await.unwrap(), 0, "not past 30 days yet");
        day(2);
        assert!(book.get("o", "used").await.unwrap().is_some());
        assert_eq!(book.sweep().await.unwrap(), 1);
        assert_eq!(book.get("o", "newer").await.unwrap(), None);
        assert_eq!(book.get("o", "used").await.unwrap(), Some(entry(2)));
    }

    #[tokio::test]
    async fn registrations_sweep_at_most_once_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let (mut book, now) = book(
            &dir,
            Bounds {
                max_entries: 2,
                max_age_secs: 0,
            },
        );
        book.sweep_every_secs = SWEEP_EVERY_SECS;
        for n in 0..4 {
            book.put("o", &format!("k{n}"), &entry(n)).await.unwrap();
        }
        assert_eq!(rows(&book), 4, "swept on the first registration only");
        now.fetch_add(SWEEP_EVERY_SECS, Ordering::SeqCst);
        book.put("o", "k4", &entry(4)).await.unwrap();
        assert_eq!(rows(&book), 2);
        assert!(book.get("o", "k4").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_book_from_before_the_bounds_gets_its_registration_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE video_urls (
                    org TEXT NOT NULL, key TEXT NOT NULL, url TEXT NOT NULL,
                    validator TEXT NOT NULL, created_at INTEGER NOT NULL,
                    PRIMARY KEY (org, key));
                 INSERT INTO video_urls VALUES ('o', 'ancient', 'https://m/a', 'v', 1000);
                 INSERT INTO video_urls VALUES ('o', 'recent', 'https://m/b', 'v', unixepoch());",
            )
            .unwrap();
        }
        let book = UrlBook::sqlite(&path).unwrap().bounded(Bounds {
            max_entries: 0,
            max_age_secs: 30 * DAY as u64,
        });
        assert_eq!(book.get("o", "ancient").await.unwrap(), None);
        assert!(book.get("o", "recent").await.unwrap().is_some());
        assert_eq!(book.sweep().await.unwrap(), 1);
        // Opening it again changes nothing.
        let again = UrlBook::sqlite(&path).unwrap();
        assert_eq!(rows(&again), 1);
    }

    #[test]
    fn the_bounds_come_from_the_jobs_config() {
        let mut config = Config::default();
        assert_eq!(
            Bounds::of(&config),
            Bounds {
                max_entries: 100_000,
                max_age_secs: 30 * 86_400
            }
        );
        config.jobs.url_book_max_age_days = 0;
        config.jobs.url_book_max_entries = 0;
        assert_eq!(Bounds::of(&config), Bounds::NONE);
        let book = UrlBook::open(&{
            let dir = tempfile::tempdir().unwrap().keep();
            config.jobs.db_path = Some(dir.join("t.db"));
            config.jobs.url_book_max_age_days = 1;
            config
        })
        .unwrap();
        assert_eq!(book.touch_every(), DAY / 8);
    }

    #[test]
    fn a_database_url_puts_the_book_in_postgresql_without_connecting() {
        let mut config = Config::default();
        config.jobs.database_url = Some("postgres://u:hunter2@127.0.0.1:1/db".into());
        let book = UrlBook::open(&config).expect("no connection is made yet");
        assert!(matches!(book.backing, Backing::Postgres { .. }));
        config.jobs.database_url = Some("mysql://u:hunter2@127.0.0.1/db".into());
        let e = UrlBook::open(&config).err().unwrap().to_string();
        assert!(e.contains("postgres://") && !e.contains("hunter2"), "{e}");
    }
}
