//! Where jobs live and how a node picks the next one, behind one type the
//! job service calls the same way for both:
//!
//! - [`Backend::Sqlite`]: one node. Records in SQLite ([`super::store`],
//!   called from blocking threads); the queue is in memory (the
//!   [`Scheduler`]), filled at start from the pending jobs on disk.
//! - [`Backend::Postgres`]: several nodes sharing PostgreSQL
//!   ([`super::postgres`]). The queue is the table: each node claims jobs
//!   under a lease, kept alive by a heartbeat ([`Lease`]) while it runs
//!   them, and polls for work every `jobs.poll_ms` when idle. Its scheduler
//!   only keeps the org turn order and counts what runs here.
//!
//! Which of the two a node uses is [`database_url`]'s to say.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::{store_err, JobError};
use super::model::{now_ms, Delivery, JobFailure, JobRecord, Status};
use super::postgres::PgStore;
use super::scheduler::Scheduler;
use super::store::Store;
use crate::config::Config;
use crate::db::postgres::database_url;

/// The job database, and the queue of work for this node.
pub enum Backend {
    /// One node: SQLite and an in-memory queue.
    Sqlite {
        store: Arc<Mutex<Store>>,
        scheduler: Mutex<Scheduler>,
    },
    /// Several nodes: PostgreSQL holds the queue.
    Postgres {
        db: PgStore,
        /// Turn order of the orgs and what runs here, per org.
        scheduler: Mutex<Scheduler>,
        /// How often an idle node looks for claimable jobs.
        poll: Duration,
        /// Jobs pending or running cluster-wide, as last counted.
        queued: AtomicUsize,
        /// What this node holds a [`Lease`] on now: webhook claims leave
        /// these out.
        held: Held,
    },
}

/// The jobs this node works on under a [`Lease`] (running them, then
/// delivering their webhooks), with how many leases each: a webhook this
/// node is delivering is never claimed by it again, even when its lease
/// lapsed meanwhile (a heartbeat that could not reach the database, a
/// pause), so it is not sent twice from here.
#[derive(Clone, Default)]
pub struct Held(Arc<Mutex<HashMap<String, usize>>>);

impl Held {
    fn add(&self, id: &str) {
        *self
            .0
            .lock()
            .expect("not poisoned")
            .entry(id.to_owned())
            .or_default() += 1;
    }

    fn remove(&self, id: &str) {
        let mut held = self.0.lock().expect("not poisoned");
        if let Some(n) = held.get_mut(id) {
            *n -= 1;
            if *n == 0 {
                held.remove(id);
            }
        }
    }

    /// The ids held now.
    pub fn ids(&self) -> Vec<String> {
        self.0
            .lock()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect()
    }
}

/// This node's id when `jobs.node_id` is not set: host name and process
/// id (and a count, for a second service in the same process, as tests
/// start).
fn default_node_id() -> String {
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            let name = std::fs::read_to_string(p).ok()?.trim().to_owned();
            (!name.is_empty()).then_some(name)
        })
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "thumbd".into());
    match STARTED.fetch_add(1, Ordering::SeqCst) {
        0 => format!("{host}-{}", std::process::id()),
        n => format!("{host}-{}-{n}", std::process::id()),
    }
}

/// A job this node runs (or whose webhook it delivers). With PostgreSQL, a
/// heartbeat extends the job's lease every third of `jobs.lease_secs`, and
/// the job is in this node's [`Held`] set, until this is dropped; with
/// SQLite it holds nothing.
pub struct Lease {
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    /// The set the job is in, and its id.
    held: Option<(Held, String)>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if let Some((held, id)) = self.held.take() {
            held.remove(&id);
        }
    }
}

async fn blocking<T: Send + 'static>(
    store: &Arc<Mutex<Store>>,
    f: impl FnOnce(&Store) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, JobError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store.lock().expect("not poisoned")))
        .await
        .map_err(store_err)?
        .map_err(store_err)
}

impl Backend {
    /// Opens the job database `config` names (PostgreSQL with a
    /// `jobs.database_url`, else SQLite at `jobs.db_path`). `orgs` are the
    /// orgs whose jobs this node runs.
    pub async fn open(config: &Config, orgs: Vec<String>) -> anyhow::Result<Backend> {
        match database_url(config)? {
            Some(url) => {
                let node = config.jobs.node_id.clone().unwrap_or_else(default_node_id);
                let lease = Duration::from_secs(config.jobs.lease_secs);
                let db = PgStore::open(&url, &node, lease).await?;
                tracing::info!(
                    node,
                    lease_secs = config.jobs.lease_secs,
                    "jobs in PostgreSQL"
                );
                Ok(Backend::Postgres {
                    db,
                    scheduler: Mutex::new(Scheduler::with_orgs(orgs)),
                    poll: Duration::from_millis(config.jobs.poll_ms),
                    queued: AtomicUsize::new(0),
                    held: Held::default(),
                })
            }
            None => {
                let path = config.jobs_db_path();
                let store = tokio::task::spawn_blocking(move || {
                    Store::open(&path).map_err(|e| {
                        anyhow::anyhow!("cannot open the job database {}: {e}", path.display())
                    })
                })
                .await??;
                Ok(Backend::Sqlite {
                    store: Arc::new(Mutex::new(store)),
                    scheduler: Mutex::default(),
                })
            }
        }
    }

    /// After a start: jobs interrupted by the last stop run again. Returns
    /// how many jobs were resumed, and the finished jobs whose webhooks are
    /// to be sent from here. (With PostgreSQL, only what this node id held:
    /// other nodes' jobs are taken over when their leases lapse.)
    pub async fn recover(&self) -> Result<(usize, Vec<JobRecord>), JobError> {
        match self {
            Backend::Sqlite { store, scheduler } => {
                let (pending, webhooks) = blocking(store, |s| s.recover()).await?;
                let mut sched = scheduler.lock().expect("not poisoned");
                for r in &pending {
                    sched.push(&r.thumbnail.org, &r.id);
                }
                Ok((pending.len(), webhooks))
            }
            Backend::Postgres { db, .. } => {
                let resumed = db.recover().await.map_err(store_err)?;
                Ok((resumed as usize, Vec::new()))
            }
        }
    }

    /// How often an idle dispatcher looks for work it was not told about
    /// (jobs submitted to other nodes, leases lapsed); `None`: only when
    /// woken.
    pub fn poll_interval(&self) -> Option<Duration> {
        match self {
            Backend::Sqlite { .. } => None,
            Backend::Postgres { poll, .. } => Some(*poll),
        }
    }

    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>, JobError> {
        match self {
            Backend::Sqlite { store, .. } => {
                let id = id.to_owned();
                blocking(store, move |s| s.get(&id)).await
            }
            Backend::Postgres { db, .. } => db.get(id).await.map_err(store_err),
        }
    }

    /// The largest completed job of a video.
    pub async fn best(
        &self,
        org: &str,
        env: &str,
        key: &str,
    ) -> Result<Option<JobRecord>, JobError> {
        match self {
            Backend::Sqlite { store, .. } => {
                let (org, env, key) = (org.to_owned(), env.to_owned(), key.to_owned());
                blocking(store, move |s| s.best(&org, &env, &key)).await
            }
            Backend::Postgres { db, .. } => db.best(org, env, key).await.map_err(store_err),
        }
    }

    /// Stores a submitted job as pending and queues it. False when another
    /// node accepted the same job meanwhile and it is in flight there.
    pub async fn submit(&self, r: &JobRecord) -> Result<bool, JobError> {
        match self {
            Backend::Sqlite { store, scheduler } => {
                let record = r.clone();
                blocking(store, move |s| s.upsert_pending(&record)).await?;
                scheduler
                    .lock()
                    .expect("not poisoned")
                    .push(&r.thumbnail.org, &r.id);
                Ok(true)
            }
            Backend::Postgres { db, .. } => db.upsert_pending(r).await.map_err(store_err),
        }
    }

    /// Jobs pending or running (cluster-wide with PostgreSQL), counted now.
    pub async fn queue_length(&self) -> Result<usize, JobError> {
        match self {
            Backend::Sqlite { scheduler, .. } => Ok(scheduler.lock().expect("not poisoned").len()),
            Backend::Postgres { db, queued, .. } => {
                let n = db.queue_length().await.map_err(store_err)?;
                queued.store(n, Ordering::Relaxed);
                Ok(n)
            }
        }
    }

    /// Jobs pending or running, without waiting: with PostgreSQL, as last
    /// counted (by a submission, the gauges or the dispatcher).
    pub fn queue_length_now(&self) -> usize {
        match self {
            Backend::Sqlite { scheduler, .. } => scheduler.lock().expect("not poisoned").len(),
            Backend::Postgres { queued, .. } => queued.load(Ordering::Relaxed),
        }
    }

    /// The next job for this node to run, marked `processing` with one
    /// more attempt: from the first org in turn order with work and fewer
    /// than `per_org` jobs running here. Call [`done`](Self::done) when it
    /// is over.
    pub async fn claim(&self, per_org: usize) -> Result<Option<JobRecord>, JobError> {
        match self {
            Backend::Sqlite { store, scheduler } => loop {
                let next = scheduler.lock().expect("not poisoned").next(per_org);
                let Some((org, id)) = next else {
                    return Ok(None);
                };
                let give_back = |e| {
                    scheduler.lock().expect("not poisoned").done(&org, &id);
                    e
                };
                let record = {
                    let id = id.clone();
                    blocking(store, move |s| s.get(&id))
                        .await
                        .map_err(give_back)?
                };
                match record {
                    Some(mut r) if !r.status.is_final() => {
                        let attempt = r.attempts + 1;
                        {
                            let id = id.clone();
                            blocking(store, move |s| s.set_processing(&id, attempt))
                                .await
                                .map_err(give_back)?;
                        }
                        r.status = Status::Processing;
                        r.attempts = attempt;
                        r.started_ms.get_or_insert_with(now_ms);
                        return Ok(Some(r));
                    }
                    // Gone, or finished meanwhile: nothing to run.
                    _ => scheduler.lock().expect("not poisoned").done(&org, &id),
                }
            },
            Backend::Postgres { db, scheduler, .. } => {
                let (orgs, running) = {
                    let sched = scheduler.lock().expect("not poisoned");
                    (sched.eligible(per_org), sched.ids())
                };
                if orgs.is_empty() {
                    return Ok(None);
                }
                let Some(r) = db.claim(&orgs, &running).await.map_err(store_err)? else {
                    return Ok(None);
                };
                let fresh = scheduler
                    .lock()
                    .expect("not poisoned")
                    .started(&r.thumbnail.org, &r.id);
                if !fresh {
                    // A guard: the claim leaves out what runs here, so
                    // this is not expected; the run under way finishes it.
                    tracing::warn!(job = %r.id, "claimed a job this node is already running");
                    return Ok(None);
                }
                Ok(Some(r))
            }
        }
    }

    /// A job from [`claim`](Self::claim) is over here.
    pub fn done(&self, org: &str, id: &str) {
        let (Backend::Sqlite { scheduler, .. } | Backend::Postgres { scheduler, .. }) = self;
        scheduler.lock().expect("not poisoned").done(org, id);
    }

    /// Holds this node's claim on a job while it runs or its webhook is
    /// sent (the heartbeat).
    pub fn hold(&self, id: &str) -> Lease {
        let Backend::Postgres { db, held, .. } = self else {
            return Lease {
                heartbeat: None,
                held: None,
            };
        };
        held.add(id);
        let held = Some((held.clone(), id.to_owned()));
        let (db, id) = (db.clone(), id.to_owned());
        let every = (db.lease() / 3).max(Duration::from_millis(100));
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match db.renew(&id).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(job = %id, node = db.node(), "lost the job's lease to another node");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(job = %id, error = %e, "could not renew the job's lease")
                    }
                }
            }
        });
        Lease {
            heartbeat: Some(heartbeat),
            held,
        }
    }

    /// Whether this node still holds its claim on a job (renewing it now).
    /// Always with SQLite; with PostgreSQL false also when the database
    /// cannot say.
    pub async fn still_held(&self, id: &str) -> bool {
        match self {
            Backend::Sqlite { .. } => true,
            Backend::Postgres { db, .. } => match db.renew(id).await {
                Ok(held) => held,
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "could not renew the job's lease");
                    false
                }
            },
        }
    }

    /// Records another try of a running job; false if this node lost it.
    pub async fn retry(&self, id: &str, attempt: u32) -> Result<bool, JobError> {
        match self {
            Backend::Sqlite { store, .. } => {
                let id = id.to_owned();
                blocking(store, move |s| s.set_processing(&id, attempt)).await?;
                Ok(true)
            }
            Backend::Postgres { db, .. } => db.retry(id, attempt).await.map_err(store_err),
        }
    }

    /// Records a job's outcome; false (nothing written) if this node lost
    /// the job to another.
    pub async fn finish(
        &self,
        id: &str,
        status: Status,
        error: Option<JobFailure>,
        size: Option<(u32, u32)>,
    ) -> Result<bool, JobError> {
        let error = error.as_ref().map(JobFailure::to_json);
        match self {
            Backend::Sqlite { store, .. } => {
                let id = id.to_owned();
                blocking(store, move |s| s.finish(&id, status, error.as_ref(), size)).await?;
                Ok(true)
            }
            Backend::Postgres { db, .. } => db
                .finish(id, status, error.as_ref(), size)
                .await
                .map_err(store_err),
        }
    }

    /// Records a webhook try on the job.
    pub async fn set_webhook(
        &self,
        id: &str,
        state: Delivery,
        attempts: u32,
    ) -> Result<(), JobError> {
        match self {
            Backend::Sqlite { store, .. } => {
                let id = id.to_owned();
                blocking(store, move |s| s.set_webhook(&id, state, attempts)).await
            }
            Backend::Postgres { db, .. } => {
                db.set_webhook(id, state, attempts).await.map_err(store_err)
            }
        }
    }

    /// A finished job whose webhook another node left undelivered (it
    /// died), now this node's to deliver; never one this node holds (it
    /// delivers it already). Never with SQLite: there the start-up
    /// [`recover`](Self::recover) finds them. Hold the job
    /// ([`hold`](Self::hold)) before claiming the next.
    pub async fn claim_webhook(&self) -> Result<Option<JobRecord>, JobError> {
        match self {
            Backend::Sqlite { .. } => Ok(None),
            Backend::Postgres {
                db,
                scheduler,
                held,
                ..
            } => {
                // Any org this node serves, at its limit or not.
                let orgs = scheduler.lock().expect("not poisoned").eligible(usize::MAX);
                db.claim_webhook(&orgs, &held.ids())
                    .await
                    .map_err(store_err)
            }
        }
    }

    /// Counts of jobs in each state (cluster-wide with PostgreSQL).
    pub async fn count_by_status(&self) -> Result<Vec<(String, i64)>, JobError> {
        match self {
            Backend::Sqlite { store, .. } => blocking(store, |s| s.count_by_status()).await,
            Backend::Postgres { db, .. } => db.count_by_status().await.map_err(store_err),
        }
    }

    /// At shutdown, once the grace period is over: what still runs here
    /// is given up. SQLite keeps it for the next start; PostgreSQL puts it
    /// back to pending for the other nodes at once.
    pub async fn release_unfinished(&self) {
        match self {
            Backend::Sqlite { .. } => {
                tracing::warn!(
                    "jobs still running at the end of the grace period; they will run again on the next start"
                );
            }
            Backend::Postgres { db, .. } => match db.release().await {
                Ok(n) => tracing::warn!(
                    jobs = n,
                    "jobs still running at the end of the grace period; back to pending for another node"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    "jobs still running at the end of the grace period; another node takes them when their leases lapse"
                ),
            },
        }
    }
}
