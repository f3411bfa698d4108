//! PostgreSQL, shared by several nodes (`jobs.database_url`): the URL as
//! the config gives it ([`database_url`], checked by [`check_url`]),
//! connection pools ([`pool`]), schema creation under one advisory lock
//! ([`create_schema`]) so nodes starting at once do not race, and errors
//! that keep the server's reason ([`PgError`]). Messages and errors name
//! the server and the database, never the password. The jobs
//! ([`crate::jobs`]) and the video URL book ([`crate::source::urlbook`])
//! each keep a pool of their own and create their own tables. Async
//! (tokio-postgres through a small deadpool pool); no TLS.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::Config;

/// Longest wait for a connection (a new one included), so an unreachable
/// database fails a call instead of hanging it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Serialises schema creation when several nodes start at once
/// (`pg_advisory_xact_lock`; "thumbd" in ASCII).
const SCHEMA_LOCK: i64 = 0x7468_756d_6264;

/// Why a call to the job database (the jobs, or the URL book beside them)
/// failed, with the server's own reason (which tokio-postgres keeps in its
/// error's sources). Never holds the password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("the job database is unavailable: {}", reasons(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("the job database failed: {}", reasons(.0))]
    Db(#[from] tokio_postgres::Error),
    /// A row the job store read has a value it cannot use.
    #[error("a job row cannot be read: {0}")]
    Row(String),
}

/// A call to the job database.
pub type Result<T> = std::result::Result<T, PgError>;

/// An error and its sources, each said once (`db error: FATAL: password
/// authentication failed for user "thumbd"`).
fn reasons(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

/// Checks that a `jobs.database_url` names PostgreSQL; the message shows
/// the scheme only, never the rest (it may hold a password). Pure.
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    match url.split_once("://") {
        Some(("postgres" | "postgresql", _)) => Ok(()),
        Some((scheme, _)) => Err(format!(
            "jobs.database_url must be a postgres:// (or postgresql://) URL, not {scheme}://"
        )),
        None => Err(
            "jobs.database_url must be a URL like postgres://user:password@host:5432/database"
                .into(),
        ),
    }
}

/// Where a connection goes, for messages: `user@host:port/database`,
/// without the password.
fn describe(pg: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = pg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            let port = pg
                .get_ports()
                .get(i)
                .or(pg.get_ports().first())
                .copied()
                .unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let user = pg.get_user().map_or(String::new(), |u| format!("{u}@"));
    let db = pg.get_dbname().unwrap_or("");
    format!("{user}{}/{db}", hosts.join(","))
}

/// A pool of at most `size` connections to `url` (a `jobs.database_url`,
/// checked by [`check_url`]), shown to the server as `application_name`
/// unless the URL names one, and where it goes for messages
/// (`user@host:port/database`, never the password). Connects lazily: the
/// first call that needs a connection makes it, waiting at most a few
/// seconds. Shared by the job store and the video URL book.
pub fn pool(url: &str, application_name: &str, size: usize) -> anyhow::Result<(Pool, String)> {
    check_url(url).map_err(anyhow::Error::msg)?;
    let mut pg: tokio_postgres::Config = url
        .parse()
        .map_err(|e| anyhow::anyhow!("jobs.database_url is not a valid PostgreSQL URL: {e}"))?;
    pg.connect_timeout(CONNECT_TIMEOUT);
    if pg.get_application_name().is_none() {
        pg.application_name(application_name);
    }
    let target = describe(&pg);
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()?;
    Ok((pool, target))
}

/// Runs `schema` (`CREATE ... IF NOT EXISTS` statements) in one
/// transaction under `SCHEMA_LOCK`, so nodes starting at once do not
/// race. For the jobs table and the video URL book's.
pub async fn create_schema(pool: &Pool, schema: &str) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    tx.batch_execute(schema).await?;
    tx.commit().await?;
    Ok(())
}

/// The database URL of `[jobs]` (`database_url`, `_env` or `_file`), if
/// one is given, checked by [`check_url`]; `None`: the jobs and the URL
/// book are in SQLite (`jobs.db_path`).
pub fn database_url(config: &Config) -> anyhow::Result<Option<String>> {
    let j = &config.jobs;
    let url = crate::config::read_secret(
        (&j.database_url, &j.database_url_env, &j.database_url_file),
        &config.base_dir,
        "jobs.database_url",
    )
    .map_err(anyhow::Error::msg)?;
    if let Some(url) = &url {
        check_url(url).map_err(anyhow::Error::msg)?;
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_postgres_urls_and_no_password_in_the_message() {
        assert!(check_url("postgres://u:p@h:5432/db").is_ok());
        assert!(check_url("postgresql://h/db").is_ok());
        let e = check_url("mysql://root:hunter2@db/x").unwrap_err();
        assert!(e.contains("mysql://") && !e.contains("hunter2"), "{e}");
        let e = check_url("host=db password=hunter2").unwrap_err();
        assert!(e.contains("postgres://") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn a_target_is_described_without_its_password() {
        let pg: tokio_postgres::Config = "postgres://thumbd:hunter2@db.internal:6543/jobs"
            .parse()
            .unwrap();
        assert_eq!(describe(&pg), "thumbd@db.internal:6543/jobs");
        let pg: tokio_postgres::Config = "postgres://db/jobs".parse().unwrap();
        assert_eq!(describe(&pg), "db:5432/jobs");
    }
}
