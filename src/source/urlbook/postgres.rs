//! The book shared by several nodes: the table `url_book` in the jobs'
//! PostgreSQL (`jobs.database_url`), through a small pool of its own from
//! [`crate::db::postgres`]. The table is created (or upgraded) by the first
//! call of this process that needs it, under the jobs' schema lock.

use deadpool_postgres::{Object, Pool};
use tokio::sync::OnceCell;

use super::{failed, Entry};
use crate::db::postgres::{self as db, PgError};
use crate::source::SourceError;

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

/// The book's table in PostgreSQL, and whether this process has made sure
/// it exists.
pub(super) struct PgTable {
    pool: Pool,
    schema: OnceCell<()>,
}

impl PgTable {
    /// A pool to `url` (a checked `jobs.database_url`), shown to the server
    /// with `node`'s id if it has one. Makes no connection yet.
    pub fn open(url: &str, node: Option<&str>) -> anyhow::Result<PgTable> {
        let name = match node {
            Some(node) => format!("thumbd {node} url book"),
            None => "thumbd url book".to_owned(),
        };
        let (pool, _) = db::pool(url, &name, PG_POOL_SIZE)?;
        Ok(PgTable {
            pool,
            schema: OnceCell::new(),
        })
    }

    /// A connection from the pool, once the table exists (created by the
    /// first call of this process; again after a failure).
    async fn client(&self) -> db::Result<Object> {
        self.schema
            .get_or_try_init(|| db::create_schema(&self.pool, PG_SCHEMA))
            .await?;
        Ok(self.pool.get().await?)
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
        let put = async {
            let client = self.client().await?;
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
        put.await.map_err(failed)
    }

    /// The entry of `key` of `org` and its last use, unless that is before
    /// `cutoff`.
    pub async fn get(
        &self,
        org: &str,
        key: &str,
        cutoff: i64,
    ) -> Result<Option<(Entry, i64)>, SourceError> {
        let get = async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "SELECT url, validator, used_at FROM url_book
                     WHERE org = $1 AND key = $2 AND used_at >= $3",
                )
                .await?;
            match client.query_opt(&stmt, &[&org, &key, &cutoff]).await? {
                Some(row) => Ok::<_, PgError>(Some((
                    Entry {
                        url: row.try_get(0)?,
                        validator: row.try_get(1)?,
                    },
                    row.try_get(2)?,
                ))),
                None => Ok(None),
            }
        };
        get.await.map_err(failed)
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
        let touch = async {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(
                    "UPDATE url_book SET used_at = GREATEST(used_at, $3)
                     WHERE org = $1 AND key = $2 AND used_at >= $4",
                )
                .await?;
            Ok::<_, PgError>(client.execute(&stmt, &[&org, &key, &now, &cutoff]).await?)
        };
        touch.await.map_err(failed)
    }

    /// Deletes the entries last used before `cutoff`, then all but the
    /// `keep` most recently used; the (org, key) of each one deleted.
    pub async fn sweep(
        &self,
        cutoff: Option<i64>,
        keep: Option<i64>,
    ) -> Result<Vec<(String, String)>, SourceError> {
        let sweep = async {
            let client = self.client().await?;
            let mut removed = Vec::new();
            if let Some(cutoff) = cutoff {
                let stmt = client
                    .prepare_cached("DELETE FROM url_book WHERE used_at < $1 RETURNING org, key")
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
        sweep.await.map_err(failed)
    }
}
