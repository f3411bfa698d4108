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

use std::path::Path;
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

/// The book: where it is kept, and the entries used lately.
pub struct UrlBook {
    backing: Backing,
    /// Recently used entries: a thumbnail request should not need the
    /// database. (An entry never changes once written: a key stands for
    /// one URL and version.)
    recent: moka::sync::Cache<(String, String), Entry>,
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

/// The book's table in PostgreSQL (under the jobs' schema lock).
const PG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS url_book (
    org TEXT NOT NULL,
    key TEXT NOT NULL,
    url TEXT NOT NULL,
    validator TEXT NOT NULL,
    PRIMARY KEY (org, key)
);
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

impl UrlBook {
    /// The book `config` says: in PostgreSQL when `jobs.database_url` (or
    /// `_env`, `_file`) is set, else in the SQLite job database. Makes no
    /// connection to PostgreSQL yet; errors never show the password.
    pub fn open(config: &Config) -> anyhow::Result<UrlBook> {
        match crate::jobs::backend::database_url(config)? {
            Some(url) => {
                let name = match &config.jobs.node_id {
                    Some(node) => format!("thumbd {node} url book"),
                    None => "thumbd url book".to_owned(),
                };
                let (pool, _) = postgres::pool(&url, &name, PG_POOL_SIZE)?;
                Ok(UrlBook::with(Backing::Postgres {
                    pool,
                    schema: tokio::sync::OnceCell::new(),
                }))
            }
            None => {
                let path = config.jobs_db_path();
                UrlBook::sqlite(&path).map_err(|e| {
                    anyhow::anyhow!("cannot open the video URL book in {}: {e}", path.display())
                })
            }
        }
    }

    /// Opens (creating if needed) the book in the SQLite database at `path`.
    pub fn sqlite(path: &Path) -> rusqlite::Result<UrlBook> {
        let conn = crate::sqlite::open(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS video_urls (
                org TEXT NOT NULL,
                key TEXT NOT NULL,
                url TEXT NOT NULL,
                validator TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                PRIMARY KEY (org, key)
             );",
        )?;
        Ok(UrlBook::with(Backing::Sqlite(Arc::new(Mutex::new(conn)))))
    }

    fn with(backing: Backing) -> UrlBook {
        UrlBook {
            backing,
            recent: moka::sync::Cache::new(10_000),
        }
    }

    /// Records that `key` of `org` stands for `entry` (before any job that
    /// names the key is accepted). A key written already keeps its entry.
    pub async fn put(&self, org: &str, key: &str, entry: &Entry) -> Result<(), SourceError> {
        match &self.backing {
            Backing::Sqlite(conn) => {
                let (conn, org, key, e) =
                    (conn.clone(), org.to_owned(), key.to_owned(), entry.clone());
                tokio::task::spawn_blocking(move || {
                    conn.lock().expect("not poisoned").execute(
                        "INSERT OR IGNORE INTO video_urls (org, key, url, validator, created_at)
                         VALUES (?1, ?2, ?3, ?4, unixepoch())",
                        params![org, key, e.url, e.validator],
                    )
                })
                .await
                .map_err(failed)?
                .map_err(failed)?;
            }
            Backing::Postgres { pool, schema } => {
                let put = async {
                    let client = Self::pg_client(pool, schema).await?;
                    let stmt = client
                        .prepare_cached(
                            "INSERT INTO url_book (org, key, url, validator)
                             VALUES ($1, $2, $3, $4) ON CONFLICT (org, key) DO NOTHING",
                        )
                        .await?;
                    client
                        .execute(&stmt, &[&org, &key, &entry.url, &entry.validator])
                        .await?;
                    Ok::<_, PgError>(())
                };
                put.await.map_err(failed)?;
            }
        }
        self.recent
            .insert((org.to_owned(), key.to_owned()), entry.clone());
        Ok(())
    }

    /// What `key` of `org` stands for, if thumbd (any node sharing the
    /// book) was ever given it.
    pub async fn get(&self, org: &str, key: &str) -> Result<Option<Entry>, SourceError> {
        let id = (org.to_owned(), key.to_owned());
        if let Some(e) = self.recent.get(&id) {
            return Ok(Some(e));
        }
        let found = match &self.backing {
            Backing::Sqlite(conn) => {
                let (conn, org, key) = (conn.clone(), org.to_owned(), key.to_owned());
                tokio::task::spawn_blocking(move || {
                    conn.lock()
                        .expect("not poisoned")
                        .query_row(
                            "SELECT url, validator FROM video_urls WHERE org = ?1 AND key = ?2",
                            params![org, key],
                            |row| {
                                Ok(Entry {
                                    url: row.get(0)?,
                                    validator: row.get(1)?,
                                })
                            },
                        )
                        .optional()
                })
                .await
                .map_err(failed)?
                .map_err(failed)?
            }
            Backing::Postgres { pool, schema } => {
                let get = async {
                    let client = Self::pg_client(pool, schema).await?;
                    let stmt = client
                        .prepare_cached(
                            "SELECT url, validator FROM url_book WHERE org = $1 AND key = $2",
                        )
                        .await?;
                    match client.query_opt(&stmt, &[&org, &key]).await? {
                        Some(row) => Ok::<_, PgError>(Some(Entry {
                            url: row.try_get(0)?,
                            validator: row.try_get(1)?,
                        })),
                        None => Ok(None),
                    }
                };
                get.await.map_err(failed)?
            }
        };
        if let Some(e) = &found {
            self.recent.insert(id, e.clone());
        }
        Ok(found)
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
