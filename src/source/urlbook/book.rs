//! The book's policy, the same wherever it is kept: the entries used
//! lately kept in memory, how often a use is written, and when entries
//! past the bounds go. The tables themselves are [`super::sqlite`]'s and
//! [`super::postgres`]'s.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use super::postgres::PgTable;
use super::sqlite::SqliteTable;
use super::Entry;
use crate::config::Config;
use crate::db::postgres::database_url;
use crate::source::SourceError;

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
    Sqlite(SqliteTable),
    /// Several nodes: the table `url_book` in the jobs' PostgreSQL,
    /// created on first use.
    Postgres(PgTable),
}

impl Backing {
    async fn put(&self, org: &str, key: &str, entry: &Entry, now: i64) -> Result<(), SourceError> {
        match self {
            Backing::Sqlite(t) => t.put(org, key, entry, now).await,
            Backing::Postgres(t) => t.put(org, key, entry, now).await,
        }
    }

    async fn get(
        &self,
        org: &str,
        key: &str,
        cutoff: i64,
    ) -> Result<Option<(Entry, i64)>, SourceError> {
        match self {
            Backing::Sqlite(t) => t.get(org, key, cutoff).await,
            Backing::Postgres(t) => t.get(org, key, cutoff).await,
        }
    }

    async fn touch(&self, org: &str, key: &str, now: i64, cutoff: i64) -> Result<u64, SourceError> {
        match self {
            Backing::Sqlite(t) => t.touch(org, key, now, cutoff).await,
            Backing::Postgres(t) => t.touch(org, key, now, cutoff).await,
        }
    }

    async fn sweep(
        &self,
        cutoff: Option<i64>,
        keep: Option<i64>,
    ) -> Result<Vec<(String, String)>, SourceError> {
        match self {
            Backing::Sqlite(t) => t.sweep(cutoff, keep).await,
            Backing::Postgres(t) => t.sweep(cutoff, keep).await,
        }
    }
}

impl UrlBook {
    /// The book `config` says: in PostgreSQL when `jobs.database_url` (or
    /// `_env`, `_file`) is set, else in the SQLite job database, bounded as
    /// `[jobs]` says. Makes no connection to PostgreSQL yet; errors never
    /// show the password.
    pub fn open(config: &Config) -> anyhow::Result<UrlBook> {
        let book = match database_url(config)? {
            Some(url) => UrlBook::with(Backing::Postgres(PgTable::open(
                &url,
                config.jobs.node_id.as_deref(),
            )?)),
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
        Ok(UrlBook::with(Backing::Sqlite(SqliteTable::open(path)?)))
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
        self.backing.put(org, key, entry, now).await?;
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
        let found = self.backing.get(org, key, self.cutoff(now)).await?;
        let Some((entry, used_at)) = found else {
            return Ok(None);
        };
        let mut found = Recent { entry, used_at };
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
        let changed = self.backing.touch(org, key, now, self.cutoff(now)).await?;
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
        let removed = self.backing.sweep(cutoff, keep).await?;
        for id in &removed {
            self.recent.invalidate(id);
        }
        Ok(removed.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

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
        let Backing::Sqlite(table) = &book.backing else {
            unreachable!()
        };
        table.rows()
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
        assert!(matches!(book.backing, Backing::Postgres(_)));
        config.jobs.database_url = Some("mysql://u:hunter2@127.0.0.1/db".into());
        let e = UrlBook::open(&config).err().unwrap().to_string();
        assert!(e.contains("postgres://") && !e.contains("hunter2"), "{e}");
    }
}
