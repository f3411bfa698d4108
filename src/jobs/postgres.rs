//! Jobs shared by several nodes in PostgreSQL (`jobs.database_url`).
//!
//! The `jobs` table has SQLite's columns plus a lease: `lease_node`, the
//! node that claimed the job last, and `lease_until`, the time after which
//! another node may take it over. A node claims the oldest claimable job of
//! the orgs it has room for (`FOR UPDATE SKIP LOCKED`: two nodes never get
//! the same row), a heartbeat extends the lease while the job runs, and the
//! outcome is written only while this node still holds the lease. A finished
//! job whose webhook is still to be delivered keeps its lease until the
//! delivery ends, so one live node sends it; the jobs and webhooks of a
//! node that died are taken over once their leases lapse, and a node never
//! claims a job or webhook it works on itself (its lease may have lapsed
//! meanwhile). The connection pool, the schema lock and the errors are
//! [`crate::db::postgres`]'s (the video URL book, [`crate::source::urlbook`],
//! has its own table there). Async.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use serde_json::Value;
use tokio_postgres::Row;

use super::model::{now_ms, Delivery, JobRecord, Shape, Status};
use super::stored::{spec_from_value, spec_value, COLUMNS};
use crate::db::postgres::{create_schema, pool, PgError, Result};
use crate::request::ThumbnailRequest;

/// Connections in the pool: enough for the dispatcher, heartbeats and API
/// calls, few enough for several nodes on one server.
const POOL_SIZE: usize = 8;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq BIGSERIAL NOT NULL,
    org TEXT NOT NULL,
    env TEXT NOT NULL,
    key TEXT NOT NULL,
    spec JSONB NOT NULL,
    url TEXT NOT NULL,
    client_id TEXT,
    webhook_url TEXT,
    timeout_ms BIGINT,
    status TEXT NOT NULL,
    error JSONB,
    attempts BIGINT NOT NULL DEFAULT 0,
    width BIGINT,
    height BIGINT,
    webhook_state TEXT,
    webhook_attempts BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    shape TEXT,
    created_ms BIGINT,
    started_ms BIGINT,
    ended_ms BIGINT,
    lease_until TIMESTAMPTZ,
    lease_node TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_video ON jobs (org, env, key, status);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_webhooks_due ON jobs (seq)
    WHERE webhook_state = 'pending' AND status IN ('completed', 'failed');
";

/// Unix seconds now, in SQL (SQLite's `unixepoch()`).
const EPOCH: &str = "EXTRACT(EPOCH FROM now())::BIGINT";

/// The SQL a store runs, with its lease length in it.
struct Statements {
    claim: String,
    claim_webhook: String,
    renew: String,
    retry: String,
    finish: String,
}

impl Statements {
    fn new(lease: Duration) -> Statements {
        let until = format!("now() + interval '{} milliseconds'", lease.as_millis());
        Statements {
            // The oldest job of the first org in turn order ($1) that is
            // pending, or running on a node whose lease lapsed, and that
            // this node does not run already ($4).
            claim: format!(
                "UPDATE jobs SET status = 'processing', attempts = attempts + 1,
                   lease_node = $2, lease_until = {until},
                   started_ms = COALESCE(started_ms, $3), updated_at = {EPOCH}
                 WHERE id = (
                   SELECT id FROM jobs
                   WHERE (status = 'pending'
                          OR (status = 'processing' AND (lease_until IS NULL OR lease_until < now())))
                     AND org = ANY($1) AND id <> ALL($4)
                   ORDER BY array_position($1, org), seq
                   LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING {COLUMNS}"
            ),
            // A finished job whose webhook a node that stopped renewing
            // its lease left undelivered, and that this node is not
            // delivering already ($3).
            claim_webhook: format!(
                "UPDATE jobs SET lease_node = $2, lease_until = {until}, updated_at = {EPOCH}
                 WHERE id = (
                   SELECT id FROM jobs
                   WHERE webhook_state = 'pending' AND status IN ('completed', 'failed')
                     AND lease_until < now() AND org = ANY($1) AND id <> ALL($3)
                   ORDER BY seq
                   LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING {COLUMNS}"
            ),
            renew: format!(
                "UPDATE jobs SET lease_until = {until}
                 WHERE id = $1 AND lease_node = $2
                   AND (status = 'processing' OR webhook_state = 'pending')"
            ),
            retry: format!(
                "UPDATE jobs SET attempts = $3, lease_until = {until}, updated_at = {EPOCH}
                 WHERE id = $1 AND lease_node = $2 AND status = 'processing'"
            ),
            // A webhook still to send keeps the lease: this node sends it.
            finish: format!(
                "UPDATE jobs SET status = $3, error = $4, width = $5, height = $6, ended_ms = $7,
                   updated_at = {EPOCH},
                   lease_until = CASE WHEN webhook_state = 'pending' THEN {until} ELSE NULL END
                 WHERE id = $1 AND lease_node = $2 AND status = 'processing'"
            ),
        }
    }
}

/// The job records in PostgreSQL, as one node sees them: its pool, its
/// node id (written on its claims) and its lease length. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    node: Arc<str>,
    lease: Duration,
    sql: Arc<Statements>,
}

impl PgStore {
    /// Connects to `url` (checked by [`crate::db::postgres::check_url`]),
    /// waiting at most a few seconds, and creates the schema if it is
    /// missing. Errors name the server and the database, never the
    /// password.
    pub async fn open(url: &str, node: &str, lease: Duration) -> anyhow::Result<PgStore> {
        let (pool, target) = pool(url, &format!("thumbd {node}"), POOL_SIZE)?;
        create_schema(&pool, SCHEMA)
            .await
            .map_err(|e| anyhow::anyhow!("cannot use the job database at {target}: {e}"))?;
        Ok(PgStore {
            pool,
            node: node.into(),
            lease,
            sql: Arc::new(Statements::new(lease)),
        })
    }

    /// This node's id, as written on its claims.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// How long a claim holds without a heartbeat.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<JobRecord>> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql).await?;
        match client.query_opt(&stmt, params).await? {
            Some(row) => from_row(&row).map(Some),
            None => Ok(None),
        }
    }

    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql).await?;
        Ok(client.execute(&stmt, params).await?)
    }

    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        self.query_opt(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"), &[&id])
            .await
    }

    /// The largest completed job for a video.
    pub async fn best(&self, org: &str, env: &str, key: &str) -> Result<Option<JobRecord>> {
        self.query_opt(
            &format!(
                "SELECT {COLUMNS} FROM jobs WHERE org = $1 AND env = $2 AND key = $3
                   AND status = 'completed'
                 ORDER BY width * height DESC, seq DESC LIMIT 1"
            ),
            &[&org, &env, &key],
        )
        .await
    }

    /// Inserts a new job, or puts a finished one back to pending with the
    /// new submission's webhook and reference. False when the job is
    /// pending or running already (another node accepted it meanwhile): a
    /// job in flight is never reset.
    pub async fn upsert_pending(&self, r: &JobRecord) -> Result<bool> {
        let sql = format!(
            "INSERT INTO jobs (id, org, env, key, spec, url, client_id, webhook_url, timeout_ms,
                               status, webhook_state, updated_at, shape, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, {EPOCH}, $11, $12)
             ON CONFLICT (id) DO UPDATE SET
               status = 'pending', error = NULL, attempts = 0, client_id = excluded.client_id,
               webhook_url = excluded.webhook_url, timeout_ms = excluded.timeout_ms,
               webhook_state = excluded.webhook_state, webhook_attempts = 0,
               seq = excluded.seq, updated_at = excluded.updated_at, shape = excluded.shape,
               created_ms = excluded.created_ms, started_ms = NULL, ended_ms = NULL,
               lease_until = NULL, lease_node = NULL
             WHERE jobs.status IN ('completed', 'failed')"
        );
        let n = self
            .execute(
                &sql,
                &[
                    &r.id,
                    &r.thumbnail.org,
                    &r.thumbnail.env,
                    &r.thumbnail.key,
                    &spec_value(&r.thumbnail.spec),
                    &r.url,
                    &r.client_id,
                    &r.webhook_url,
                    &r.timeout_ms.map(|ms| ms as i64),
                    &r.webhook.map(Delivery::as_str),
                    &r.shape.as_str(),
                    &r.created_ms.map(|ms| ms as i64),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Claims the next job for this node: the oldest claimable job of the
    /// first of `orgs` (turn order) that has one, other than those of
    /// `running` (the jobs this node runs: their leases may have lapsed
    /// while the heartbeat could not reach the database, but they are not
    /// to run twice here). It is `processing`, this node's, with one more
    /// attempt counted.
    pub async fn claim(&self, orgs: &[String], running: &[String]) -> Result<Option<JobRecord>> {
        let now = now_ms() as i64;
        self.query_opt(&self.sql.claim, &[&orgs, &&*self.node, &now, &running])
            .await
    }

    /// Claims a finished job of `orgs` whose webhook is pending under a
    /// lapsed lease (its node died while delivering), to deliver it here;
    /// never one of `delivering` (the webhooks this node sends now, whose
    /// own leases may have lapsed meanwhile: sent once, not twice).
    pub async fn claim_webhook(
        &self,
        orgs: &[String],
        delivering: &[String],
    ) -> Result<Option<JobRecord>> {
        self.query_opt(&self.sql.claim_webhook, &[&orgs, &&*self.node, &delivering])
            .await
    }

    /// Extends this node's lease on a job; false if it no longer holds it.
    pub async fn renew(&self, id: &str) -> Result<bool> {
        Ok(self.execute(&self.sql.renew, &[&id, &&*self.node]).await? == 1)
    }

    /// Records another try of a job this node runs; false if it lost the
    /// lease (another node runs the job now).
    pub async fn retry(&self, id: &str, attempts: u32) -> Result<bool> {
        let attempts = i64::from(attempts);
        Ok(self
            .execute(&self.sql.retry, &[&id, &&*self.node, &attempts])
            .await?
            == 1)
    }

    /// Records the outcome of a job if this node still holds its lease;
    /// false (nothing written) if it lost it.
    pub async fn finish(
        &self,
        id: &str,
        status: Status,
        error: Option<&Value>,
        size: Option<(u32, u32)>,
    ) -> Result<bool> {
        let n = self
            .execute(
                &self.sql.finish,
                &[
                    &id,
                    &&*self.node,
                    &status.as_str(),
                    &error,
                    &size.map(|s| i64::from(s.0)),
                    &size.map(|s| i64::from(s.1)),
                    &(now_ms() as i64),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Records a webhook try; a final state ends this node's lease on the
    /// finished job.
    pub async fn set_webhook(&self, id: &str, state: Delivery, attempts: u32) -> Result<()> {
        let sql = format!(
            "UPDATE jobs SET webhook_state = $2, webhook_attempts = $3, updated_at = {EPOCH},
               lease_until = CASE WHEN $2 <> 'pending' AND lease_node = $4
                                       AND status IN ('completed', 'failed')
                                  THEN NULL ELSE lease_until END
             WHERE id = $1"
        );
        self.execute(
            &sql,
            &[&id, &state.as_str(), &i64::from(attempts), &&*self.node],
        )
        .await?;
        Ok(())
    }

    /// Puts the jobs this node runs back to pending, for any node to take
    /// at once (at shutdown, past the grace period); how many.
    pub async fn release(&self) -> Result<u64> {
        self.execute(
            &format!(
                "UPDATE jobs SET status = 'pending', lease_until = NULL, lease_node = NULL,
                   updated_at = {EPOCH}
                 WHERE status = 'processing' AND lease_node = $1"
            ),
            &[&&*self.node],
        )
        .await
    }

    /// At start: what an earlier process with this node id held (it died,
    /// or this is it restarted) is free again at once: its jobs back to
    /// pending, its undelivered webhooks' leases lapsed.
    pub async fn recover(&self) -> Result<u64> {
        let jobs = self.release().await?;
        self.execute(
            "UPDATE jobs SET lease_until = now()
             WHERE lease_node = $1 AND webhook_state = 'pending'
               AND status IN ('completed', 'failed')",
            &[&&*self.node],
        )
        .await?;
        Ok(jobs)
    }

    /// Jobs pending or running, cluster-wide.
    pub async fn queue_length(&self) -> Result<usize> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("SELECT COUNT(*) FROM jobs WHERE status IN ('pending', 'processing')")
            .await?;
        let n: i64 = client.query_one(&stmt, &[]).await?.get(0);
        Ok(n as usize)
    }

    /// How many jobs are in each state, cluster-wide.
    pub async fn count_by_status(&self) -> Result<Vec<(String, i64)>> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("SELECT status, COUNT(*) FROM jobs GROUP BY status")
            .await?;
        Ok(client
            .query(&stmt, &[])
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }
}

/// A [`JobRecord`] from a row of [`COLUMNS`].
fn from_row(row: &Row) -> Result<JobRecord> {
    let bad = |what: &str| PgError::Row(format!("bad {what}"));
    let int = |i: usize| -> Result<Option<i64>> { Ok(row.try_get::<_, Option<i64>>(i)?) };
    let spec: Value = row.try_get(4)?;
    let status: String = row.try_get(9)?;
    let webhook: Option<String> = row.try_get(14)?;
    let width = int(12)?.map(|n| n as u32);
    let height = int(13)?.map(|n| n as u32);
    Ok(JobRecord {
        id: row.try_get(0)?,
        thumbnail: ThumbnailRequest {
            org: row.try_get(1)?,
            env: row.try_get(2)?,
            key: row.try_get(3)?,
            spec: spec_from_value(&spec).ok_or_else(|| bad("spec"))?,
        },
        url: row.try_get(5)?,
        client_id: row.try_get(6)?,
        webhook_url: row.try_get(7)?,
        timeout_ms: int(8)?.map(|n| n as u64),
        status: Status::parse(&status).ok_or_else(|| bad("status"))?,
        error: row
            .try_get::<_, Option<Value>>(10)?
            .and_then(|e| serde_json::from_value(e).ok()),
        attempts: int(11)?.unwrap_or(0) as u32,
        size: width.zip(height),
        webhook: webhook.as_deref().and_then(Delivery::parse),
        webhook_attempts: int(15)?.unwrap_or(0) as u32,
        shape: row
            .try_get::<_, Option<String>>(16)?
            .as_deref()
            .and_then(Shape::parse)
            .unwrap_or(Shape::Thumbd),
        created_ms: int(17)?.map(|n| n as u64),
        started_ms: int(18)?.map(|n| n as u64),
        ended_ms: int(19)?.map(|n| n as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_in_the_statements() {
        let sql = Statements::new(Duration::from_secs(2));
        assert!(sql.claim.contains("interval '2000 milliseconds'"));
        assert!(sql.claim.contains("FOR UPDATE SKIP LOCKED"));
        assert!(sql.finish.contains("lease_node = $2"));
        // What this node works on already is never claimed again.
        assert!(sql.claim.contains("id <> ALL($4)"));
        assert!(sql.claim_webhook.contains("id <> ALL($3)"));
    }
}
