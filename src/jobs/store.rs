//! The job records' durable home on one machine: an embedded SQLite
//! database (opened by [`crate::db::sqlite`]: WAL, synchronous commits), so
//! a job accepted with 202 is on disk before the answer leaves. This file
//! owns the `jobs` table there. Blocking; [`super::backend`] calls it from
//! blocking threads. (Several nodes share PostgreSQL instead:
//! [`super::postgres`], with the same records and columns,
//! [`super::stored`].)

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;

use super::model::{now_ms, Delivery, Shape, Status};
use super::stored::{spec_from_value, spec_value, COLUMNS};
use crate::domain::RenderSpec;
use crate::request::ThumbnailRequest;

/// The record this store keeps (defined in [`super::model`]; also named
/// here, where the API layer has always found it).
pub use super::model::JobRecord;

/// The job database on one machine: one SQLite connection.
pub struct Store {
    conn: Connection,
}

fn spec_to_json(s: &RenderSpec) -> String {
    spec_value(s).to_string()
}

fn spec_from_json(text: &str) -> Option<RenderSpec> {
    spec_from_value(&serde_json::from_str(text).ok()?)
}

/// Columns added after the first release, with their types: added to an
/// older database when it is opened.
const ADDED_COLUMNS: [(&str, &str); 4] = [
    ("shape", "TEXT"),
    ("created_ms", "INTEGER"),
    ("started_ms", "INTEGER"),
    ("ended_ms", "INTEGER"),
];

fn from_row(row: &Row) -> rusqlite::Result<JobRecord> {
    let spec: String = row.get(4)?;
    let status: String = row.get(9)?;
    let error: Option<String> = row.get(10)?;
    let width: Option<u32> = row.get(12)?;
    let height: Option<u32> = row.get(13)?;
    let webhook: Option<String> = row.get(14)?;
    let bad = |what: &str| {
        rusqlite::Error::InvalidColumnType(0, what.into(), rusqlite::types::Type::Text)
    };
    Ok(JobRecord {
        id: row.get(0)?,
        thumbnail: ThumbnailRequest {
            org: row.get(1)?,
            env: row.get(2)?,
            key: row.get(3)?,
            spec: spec_from_json(&spec).ok_or_else(|| bad("spec"))?,
        },
        url: row.get(5)?,
        client_id: row.get(6)?,
        webhook_url: row.get(7)?,
        timeout_ms: row.get(8)?,
        status: Status::parse(&status).ok_or_else(|| bad("status"))?,
        error: error.and_then(|e| serde_json::from_str(&e).ok()),
        attempts: row.get(11)?,
        size: width.zip(height),
        webhook: webhook.as_deref().and_then(Delivery::parse),
        webhook_attempts: row.get(15)?,
        shape: row
            .get::<_, Option<String>>(16)?
            .as_deref()
            .and_then(Shape::parse)
            .unwrap_or(Shape::Thumbd),
        created_ms: row.get(17)?,
        started_ms: row.get(18)?,
        ended_ms: row.get(19)?,
    })
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<Store> {
        let conn = crate::db::sqlite::open(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS jobs (
                id TEXT PRIMARY KEY,
                seq INTEGER NOT NULL,
                org TEXT NOT NULL,
                env TEXT NOT NULL,
                key TEXT NOT NULL,
                spec TEXT NOT NULL,
                url TEXT NOT NULL,
                client_id TEXT,
                webhook_url TEXT,
                timeout_ms INTEGER,
                status TEXT NOT NULL,
                error TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                width INTEGER,
                height INTEGER,
                webhook_state TEXT,
                webhook_attempts INTEGER NOT NULL DEFAULT 0,
                updated_at INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS jobs_by_video ON jobs (org, env, key, status);
             CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);",
        )?;
        let existing: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('jobs')")?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for (name, kind) in ADDED_COLUMNS {
            if !existing.iter().any(|c| c == name) {
                conn.execute_batch(&format!("ALTER TABLE jobs ADD COLUMN {name} {kind}"))?;
            }
        }
        Ok(Store { conn })
    }

    /// How many jobs are in each state.
    pub fn count_by_status(&self) -> rusqlite::Result<Vec<(String, i64)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT status, COUNT(*) FROM jobs GROUP BY status")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect()
    }

    pub fn get(&self, id: &str) -> rusqlite::Result<Option<JobRecord>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()
    }

    /// Inserts a new job, or puts an existing one back to pending with the
    /// new submission's webhook and reference.
    pub fn upsert_pending(&self, r: &JobRecord) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO jobs (id, seq, org, env, key, spec, url, client_id, webhook_url, timeout_ms, status,
                               webhook_state, updated_at, shape, created_ms)
             VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending',
                     ?10, unixepoch(), ?11, ?12)
             ON CONFLICT (id) DO UPDATE SET
               status = 'pending', error = NULL, attempts = 0, client_id = excluded.client_id,
               webhook_url = excluded.webhook_url, timeout_ms = excluded.timeout_ms,
               webhook_state = excluded.webhook_state, webhook_attempts = 0,
               seq = excluded.seq, updated_at = unixepoch(), shape = excluded.shape,
               created_ms = excluded.created_ms, started_ms = NULL, ended_ms = NULL",
            params![
                r.id,
                r.thumbnail.org,
                r.thumbnail.env,
                r.thumbnail.key,
                spec_to_json(&r.thumbnail.spec),
                r.url,
                r.client_id,
                r.webhook_url,
                r.timeout_ms,
                r.webhook.map(Delivery::as_str),
                r.shape.as_str(),
                r.created_ms,
            ],
        )?;
        Ok(())
    }

    pub fn set_processing(&self, id: &str, attempts: u32) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE jobs SET status = 'processing', attempts = ?2, updated_at = unixepoch(),
               started_ms = COALESCE(started_ms, ?3) WHERE id = ?1",
            params![id, attempts, now_ms()],
        )?;
        Ok(())
    }

    /// Records the outcome of a job.
    pub fn finish(
        &self,
        id: &str,
        status: Status,
        error: Option<&Value>,
        size: Option<(u32, u32)>,
    ) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE jobs SET status = ?2, error = ?3, width = ?4, height = ?5, updated_at = unixepoch(),
               ended_ms = ?6 WHERE id = ?1",
            params![id, status.as_str(), error.map(Value::to_string), size.map(|s| s.0), size.map(|s| s.1), now_ms()],
        )?;
        Ok(())
    }

    pub fn set_webhook(&self, id: &str, state: Delivery, attempts: u32) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE jobs SET webhook_state = ?2, webhook_attempts = ?3, updated_at = unixepoch() WHERE id = ?1",
            params![id, state.as_str(), attempts],
        )?;
        Ok(())
    }

    /// After a start: jobs that were running when the process stopped go
    /// back to pending. Returns the pending jobs in submission order, and
    /// finished jobs whose webhook is still to be delivered.
    pub fn recover(&self) -> rusqlite::Result<(Vec<JobRecord>, Vec<JobRecord>)> {
        self.conn.execute(
            "UPDATE jobs SET status = 'pending' WHERE status = 'processing'",
            [],
        )?;
        let mut pending = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE status = 'pending' ORDER BY seq"
        ))?;
        let pending = pending
            .query_map([], from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let mut webhooks = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE status IN ('completed', 'failed') AND webhook_state = 'pending' ORDER BY seq"
        ))?;
        let webhooks = webhooks
            .query_map([], from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((pending, webhooks))
    }

    /// The largest completed job for a video.
    pub fn best(&self, org: &str, env: &str, key: &str) -> rusqlite::Result<Option<JobRecord>> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM jobs WHERE org = ?1 AND env = ?2 AND key = ?3 AND status = 'completed'
                     ORDER BY width * height DESC, seq DESC LIMIT 1"
                ),
                params![org, env, key],
                from_row,
            )
            .optional()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Format, TimeSpec};

    fn record(id: &str) -> JobRecord {
        JobRecord {
            id: id.into(),
            thumbnail: ThumbnailRequest {
                org: "o".into(),
                env: "e".into(),
                key: "k.mp4".into(),
                spec: RenderSpec {
                    format: Format::Webp,
                    width: Some(320),
                    height: None,
                    fit: None,
                    quality: Some(80),
                    time: TimeSpec::At(12_000_000),
                    snap: false,
                },
            },
            url: "http://x/".into(),
            client_id: Some("mine".into()),
            webhook_url: None,
            timeout_ms: None,
            status: Status::Pending,
            error: None,
            attempts: 0,
            size: None,
            webhook: None,
            webhook_attempts: 0,
            shape: Shape::Thumbd,
            created_ms: Some(1),
            started_ms: None,
            ended_ms: None,
        }
    }

    #[test]
    fn round_trip_and_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.db");
        let store = Store::open(&path).unwrap();
        store.upsert_pending(&record("a")).unwrap();
        store.upsert_pending(&record("b")).unwrap();
        assert_eq!(store.get("a").unwrap().unwrap(), record("a"));
        store.set_processing("a", 1).unwrap();
        store
            .finish("b", Status::Completed, None, Some((320, 180)))
            .unwrap();
        let b = store.get("b").unwrap().unwrap();
        assert!(b.ended_ms.is_some() && b.started_ms.is_none());
        drop(store);
        let store = Store::open(&path).unwrap();
        let (pending, _) = store.recover().unwrap();
        assert_eq!(
            pending.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(
            store.best("o", "e", "k.mp4").unwrap().unwrap().size,
            Some((320, 180))
        );
        assert!(store.get("zzz").unwrap().is_none());
    }

    #[test]
    fn a_database_from_before_the_shapes_opens_and_keeps_its_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            // The schema as the first release made it.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE jobs (
                    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, org TEXT NOT NULL, env TEXT NOT NULL,
                    key TEXT NOT NULL, spec TEXT NOT NULL, url TEXT NOT NULL, client_id TEXT,
                    webhook_url TEXT, timeout_ms INTEGER, status TEXT NOT NULL, error TEXT,
                    attempts INTEGER NOT NULL DEFAULT 0, width INTEGER, height INTEGER,
                    webhook_state TEXT, webhook_attempts INTEGER NOT NULL DEFAULT 0,
                    updated_at INTEGER NOT NULL);
                 INSERT INTO jobs (id, seq, org, env, key, spec, url, status, width, height, updated_at)
                 VALUES ('old', 1, 'o', 'e', 'k.mp4',
                         '{\"format\":\"webp\",\"width\":320,\"time_us\":1000000}',
                         'http://x/', 'completed', 320, 180, 0);",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let old = store.get("old").unwrap().unwrap();
        assert_eq!(
            (old.status, old.size),
            (Status::Completed, Some((320, 180)))
        );
        assert_eq!((old.shape, old.created_ms), (Shape::Thumbd, None));
        store.upsert_pending(&record("new")).unwrap();
        assert_eq!(store.get("new").unwrap().unwrap().created_ms, Some(1));
        drop(store);
        Store::open(&path).unwrap();
    }
}
