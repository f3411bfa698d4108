//! The book on one node: the table `video_urls` of the SQLite job database
//! (`jobs.db_path`, opened by [`crate::db::sqlite`]), created and upgraded
//! here. Each call runs on a blocking thread.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use super::{failed, Entry};
use crate::source::SourceError;

/// The book's table in SQLite, on one connection.
pub(super) struct SqliteTable(Arc<Mutex<Connection>>);

impl SqliteTable {
    /// Opens (creating if needed) the table in the database at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<SqliteTable> {
        let conn = crate::db::sqlite::open(path)?;
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
        Ok(SqliteTable(Arc::new(Mutex::new(conn))))
    }

    /// Runs `f` on the connection on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, SourceError> {
        let conn = self.0.clone();
        tokio::task::spawn_blocking(move || f(&conn.lock().expect("not poisoned")))
            .await
            .map_err(failed)?
            .map_err(failed)
    }

    /// Writes `entry` for `key` of `org`, used at `now`; a key written
    /// already keeps its entry and the later use.
    pub async fn put(
        &self,
        org: &str,
        key: &str,
        entry: &Entry,
        now: i64,
    ) -> Result<(), SourceError> {
        let (org, key, e) = (org.to_owned(), key.to_owned(), entry.clone());
        self.blocking(move |conn| {
            conn.execute(
                "INSERT INTO video_urls (org, key, url, validator, created_at, used_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT (org, key) DO UPDATE
                 SET used_at = MAX(used_at, excluded.used_at)",
                params![org, key, e.url, e.validator, now],
            )
        })
        .await?;
        Ok(())
    }

    /// The entry of `key` of `org` and its last use, unless that is before
    /// `cutoff`.
    pub async fn get(
        &self,
        org: &str,
        key: &str,
        cutoff: i64,
    ) -> Result<Option<(Entry, i64)>, SourceError> {
        let (org, key) = (org.to_owned(), key.to_owned());
        self.blocking(move |conn| {
            conn.query_row(
                "SELECT url, validator, used_at FROM video_urls
                 WHERE org = ?1 AND key = ?2 AND used_at >= ?3",
                params![org, key, cutoff],
                |row| {
                    Ok((
                        Entry {
                            url: row.get(0)?,
                            validator: row.get(1)?,
                        },
                        row.get(2)?,
                    ))
                },
            )
            .optional()
        })
        .await
    }

    /// Writes a use at `now` of `key` of `org`, unless its last use is
    /// before `cutoff`: how many entries were written (0 or 1).
    pub async fn touch(
        &self,
        org: &str,
        key: &str,
        now: i64,
        cutoff: i64,
    ) -> Result<u64, SourceError> {
        let (org, key) = (org.to_owned(), key.to_owned());
        let changed = self
            .blocking(move |conn| {
                conn.execute(
                    "UPDATE video_urls SET used_at = MAX(used_at, ?3)
                     WHERE org = ?1 AND key = ?2 AND used_at >= ?4",
                    params![org, key, now, cutoff],
                )
            })
            .await?;
        Ok(changed as u64)
    }

    /// Deletes the entries last used before `cutoff`, then all but the
    /// `keep` most recently used; the (org, key) of each one deleted.
    pub async fn sweep(
        &self,
        cutoff: Option<i64>,
        keep: Option<i64>,
    ) -> Result<Vec<(String, String)>, SourceError> {
        self.blocking(move |conn| {
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
        .await
    }

    /// How many entries the table holds, swept or not (for tests).
    #[cfg(test)]
    pub fn rows(&self) -> i64 {
        self.0
            .lock()
            .unwrap()
            .query_row("SELECT COUNT(*) FROM video_urls", [], |r| r.get(0))
            .unwrap()
    }
}
