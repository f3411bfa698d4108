//! The job API's engine: pre-rendering exactly the cache entries dynamic
//! URLs will ask for.
//!
//! A submission is validated into a [`ThumbnailRequest`], its id derived
//! from the canonical render key, its video probed (so a time past the end
//! is refused up front), and the job written to the job database before it
//! is acknowledged: SQLite on one machine, or PostgreSQL shared by several
//! nodes (`jobs.database_url`). A dispatcher runs pending jobs through the
//! same [`Renderer`] the URLs use, at most `per_org_concurrency` per org
//! (per node), orgs taking turns; with PostgreSQL each node claims jobs
//! under a lease, so each job runs once cluster-wide and a dead node's jobs
//! are taken over. Transient source failures are retried with backoff; the
//! final state is stored and, if asked, sent to a webhook by the node that
//! finished it. After a crash, unfinished jobs run again; on shutdown,
//! running ones get a grace period.
//!
//! The files, from the bottom up (each imports only those above it; this
//! file only declares them and re-exports what the rest of thumbd uses):
//! - [`model`]: what a job is: status, submission, record, webhook
//!   delivery, API shape. Pure.
//! - [`error`]: why a call was refused or failed, and its problem.
//! - [`submission`]: submission validation, job ids, URLs. Pure.
//! - [`shapes`]: the job as each API shape shows it. Pure.
//! - [`scheduler`]: per-org turns and limits on one node. Pure.
//! - [`webhook`]: signing and delivery.
//! - [`stored`]: the record as both databases store it. Pure.
//! - [`store`]: the `jobs` table in SQLite.
//! - [`postgres`]: the `jobs` table in PostgreSQL, claims and leases.
//! - [`backend`]: the job database and the queue, SQLite or PostgreSQL,
//!   behind one type.
//! - [`engine`]: the job service itself ([`Jobs`]): submit, dispatch, run,
//!   retry, webhooks, gauges, shutdown.
//!
//! Reaching the database (opening SQLite, PostgreSQL pools, the URL) is
//! [`crate::db`]'s.
//!
//! [`ThumbnailRequest`]: crate::request::ThumbnailRequest
//! [`Renderer`]: crate::render::Renderer

pub mod backend;
pub mod engine;
pub mod error;
pub mod model;
pub mod postgres;
pub mod scheduler;
pub mod shapes;
pub mod store;
pub mod stored;
pub mod submission;
pub mod webhook;

pub use engine::Jobs;
pub use error::JobError;
pub use model::JobRecord;
/// The job as thumbd's job API shows it (and its webhooks receive it).
pub use shapes::thumbd as document;
