//! The job API's engine: pre-rendering exactly the cache entries dynamic
//! URLs will ask for.
//!
//! A submission is validated into a [`ThumbnailRequest`], its id derived
//! from the canonical render key, its video probed (so a time past the end
//! is refused up front), and the job written to SQLite before it is
//! acknowledged. A dispatcher runs pending jobs through the same
//! [`Renderer`] the URLs use, at most `per_org_concurrency` per org, orgs
//! taking turns. Transient source failures are retried with backoff; the
//! final state is stored and, if asked, sent to a webhook. After a crash,
//! unfinished jobs run again; on shutdown, running ones get a grace period.
//!
//! - [`model`]: submission validation, job ids, URLs. Pure.
//! - [`shapes`]: the job as each API shape shows it. Pure.
//! - [`store`]: the SQLite records.
//! - [`webhook`]: signing and delivery.

pub mod model;
pub mod shapes;
pub mod store;
pub mod webhook;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;

use self::model::{JobRequest, Status};
use self::shapes::Shape;
use self::store::{now_ms, Delivery, JobRecord, Store};
use crate::config::{Config, JobsConfig};
use crate::media::MediaError;
use crate::metrics::{OutcomeLabels, StateLabels};
use crate::pool::PoolError;
use crate::problem::Problem;
use crate::render::{RenderError, Renderer};
use crate::request::FieldError;
use crate::source::SourceError;

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("invalid job")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    BadWebhook(String),
    #[error("there is no environment {0:?} in this org")]
    UnknownEnvironment(String),
    #[error("timestampMs {requested_ms} is past the end of the video ({duration_ms} ms)")]
    PastEnd { requested_ms: u64, duration_ms: u64 },
    #[error("the job queue is full ({length} of {max})")]
    QueueFull { length: usize, max: usize },
    #[error("thumbd is shutting down and takes no new jobs")]
    ShuttingDown,
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("job storage failed: {0}")]
    Store(String),
    #[error("no such job")]
    NotFound,
}

fn store_err(e: impl std::fmt::Display) -> JobError {
    JobError::Store(e.to_string())
}

/// Per-org settings the jobs need.
struct OrgJobs {
    default_env: Option<String>,
    webhook_secret: Option<Vec<u8>>,
    webhook_hosts: Vec<String>,
    envs: HashSet<String>,
}

/// Which jobs wait, per org, and whose turn it is.
#[derive(Default)]
struct Scheduler {
    waiting: BTreeMap<String, VecDeque<String>>,
    running: HashMap<String, usize>,
    /// Orgs in turn order: the org served last goes to the back.
    turns: VecDeque<String>,
    /// Every job queued or running, so a job is never run twice at once.
    known: HashSet<String>,
}

impl Scheduler {
    fn push(&mut self, org: &str, id: &str) -> bool {
        if !self.known.insert(id.to_owned()) {
            return false;
        }
        self.waiting
            .entry(org.to_owned())
            .or_default()
            .push_back(id.to_owned());
        if !self.turns.iter().any(|o| o == org) {
            self.turns.push_back(org.to_owned());
        }
        true
    }

    /// The next job to start: from the first org in turn order with work
    /// and a free slot.
    fn next(&mut self, per_org: usize) -> Option<(String, String)> {
        let pos = self.turns.iter().position(|org| {
            self.waiting.get(org).is_some_and(|q| !q.is_empty())
                && self.running.get(org).copied().unwrap_or(0) < per_org
        })?;
        let org = self.turns.remove(pos).expect("position is in range");
        let id = self
            .waiting
            .get_mut(&org)
            .and_then(VecDeque::pop_front)
            .expect("non-empty");
        *self.running.entry(org.clone()).or_default() += 1;
        self.turns.push_back(org.clone());
        Some((org, id))
    }

    fn done(&mut self, org: &str, id: &str) {
        if let Some(n) = self.running.get_mut(org) {
            *n = n.saturating_sub(1);
        }
        self.known.remove(id);
    }

    fn len(&self) -> usize {
        self.known.len()
    }
}

struct Inner {
    store: Mutex<Store>,
    renderer: Arc<Renderer>,
    scheduler: Mutex<Scheduler>,
    wake: Notify,
    accepting: AtomicBool,
    running: AtomicUsize,
    settings: JobsConfig,
    orgs: HashMap<String, OrgJobs>,
    base_url: String,
    client: reqwest::Client,
    /// Ids of jobs as they finish, for callers waiting on them.
    finished: tokio::sync::broadcast::Sender<String>,
}

/// The job service; cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

impl Jobs {
    /// Opens the job database, puts interrupted jobs back in the queue and
    /// starts the dispatcher.
    pub async fn start(config: &Config, renderer: Arc<Renderer>) -> anyhow::Result<Jobs> {
        let path = config.jobs_db_path();
        let store = tokio::task::spawn_blocking(move || {
            Store::open(&path).map_err(|e| {
                anyhow::anyhow!("cannot open the job database {}: {e}", path.display())
            })
        })
        .await??;
        let orgs = config
            .orgs
            .iter()
            .map(|(id, o)| {
                let jobs = OrgJobs {
                    default_env: o.default_env.clone(),
                    webhook_secret: o.webhook_secret.clone().map(String::into_bytes),
                    webhook_hosts: o.webhook_hosts.clone(),
                    envs: o
                        .envs
                        .keys()
                        .cloned()
                        .chain(o.takes_video_urls().then(|| o.video_url_env.clone()))
                        .collect(),
                };
                (id.clone(), jobs)
            })
            .collect();
        let jobs = Jobs {
            inner: Arc::new(Inner {
                store: Mutex::new(store),
                renderer,
                scheduler: Mutex::default(),
                wake: Notify::new(),
                accepting: AtomicBool::new(true),
                running: AtomicUsize::new(0),
                settings: config.jobs.clone(),
                orgs,
                base_url: config.server.public_base_url.clone(),
                client: reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()?,
                finished: tokio::sync::broadcast::channel(1024).0,
            }),
        };
        let (pending, webhooks) = jobs.blocking(|s| s.recover()).await?;
        if !pending.is_empty() {
            tracing::info!(jobs = pending.len(), "resuming unfinished jobs");
        }
        {
            let mut sched = jobs.inner.scheduler.lock().expect("not poisoned");
            for r in &pending {
                sched.push(&r.thumbnail.org, &r.id);
            }
        }
        for r in webhooks {
            tokio::spawn(jobs.clone().send_webhook(r));
        }
        tokio::spawn(jobs.clone().dispatch());
        Ok(jobs)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, JobError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner.store.lock().expect("not poisoned")))
            .await
            .map_err(store_err)?
            .map_err(store_err)
    }

    /// Submits a job for `key`. Returns the job and whether it was newly
    /// accepted (202) or already known (re-submission: 200 when completed,
    /// 202 unchanged when pending).
    pub async fn submit(
        &self,
        org: &str,
        key: &str,
        body: &Value,
    ) -> Result<(JobRecord, bool), JobError> {
        let org_jobs = self.inner.orgs.get(org).ok_or(JobError::NotFound)?;
        let req = model::validate(body, org, key, org_jobs.default_env.as_deref())
            .map_err(JobError::Invalid)?;
        self.submit_request(req, Shape::Thumbd).await
    }

    /// Submits a validated job, however it was asked for (`shape` says how
    /// its webhook body looks).
    pub async fn submit_request(
        &self,
        req: JobRequest,
        shape: Shape,
    ) -> Result<(JobRecord, bool), JobError> {
        let org = req.thumbnail.org.clone();
        let org = org.as_str();
        let org_jobs = self.inner.orgs.get(org).ok_or(JobError::NotFound)?;
        if !org_jobs.envs.contains(&req.thumbnail.env) {
            return Err(JobError::UnknownEnvironment(req.thumbnail.env.clone()));
        }
        if let Some(url) = &req.webhook_url {
            self.check_webhook(org, url)?;
        }
        let id = model::job_id(&req.thumbnail);
        let existing = {
            let id = id.clone();
            self.blocking(move |s| s.get(&id)).await?
        };
        match existing {
            Some(r) if matches!(r.status, Status::Pending | Status::Processing) => {
                return Ok((r, false))
            }
            // Completed and still cached: nothing to render. (Evicted or
            // lost with a restart: render it again, so the URL is a hit.)
            Some(r)
                if r.status == Status::Completed && self.inner.renderer.is_cached(&r.thumbnail) =>
            {
                return Ok((r, false))
            }
            _ => {}
        }
        if !self.inner.accepting.load(Ordering::SeqCst) {
            return Err(JobError::ShuttingDown);
        }
        let length = self.inner.scheduler.lock().expect("not poisoned").len();
        if length >= self.inner.settings.max_queue {
            return Err(JobError::QueueFull {
                length,
                max: self.inner.settings.max_queue,
            });
        }
        self.check_time(&req).await?;
        let record = JobRecord {
            id: id.clone(),
            url: model::thumbnail_url(&self.inner.base_url, &req.thumbnail),
            thumbnail: req.thumbnail,
            client_id: req.client_id,
            webhook: req.webhook_url.as_ref().map(|_| Delivery::Pending),
            webhook_url: req.webhook_url,
            timeout_ms: req.timeout_ms,
            status: Status::Pending,
            error: None,
            attempts: 0,
            size: None,
            webhook_attempts: 0,
            shape,
            created_ms: Some(now_ms()),
            started_ms: None,
            ended_ms: None,
        };
        {
            let r = record.clone();
            self.blocking(move |s| s.upsert_pending(&r)).await?;
        }
        self.inner
            .scheduler
            .lock()
            .expect("not poisoned")
            .push(org, &id);
        self.inner.wake.notify_one();
        Ok((record, true))
    }

    /// Checks a webhook URL before anything is accepted: the org signs
    /// webhooks, and the host is one of its `webhook_hosts`.
    pub fn check_webhook(&self, org: &str, url: &str) -> Result<(), JobError> {
        let org_jobs = self.inner.orgs.get(org).ok_or(JobError::NotFound)?;
        if org_jobs.webhook_secret.is_none() {
            return Err(JobError::BadWebhook(
                "this org has no webhook_secret to sign webhooks with".into(),
            ));
        }
        webhook::host_allowed(url, &org_jobs.webhook_hosts).map_err(JobError::BadWebhook)
    }

    /// Probes the video: it must exist, be a video, and last at least as
    /// long as the requested time.
    async fn check_time(&self, req: &JobRequest) -> Result<(), JobError> {
        let t = &req.thumbnail;
        let probe = self.inner.renderer.probe(&t.org, &t.env, &t.key).await?;
        if let (Some(duration), Some(requested_ms)) = (probe.duration_secs, req.timestamp_ms) {
            let duration_ms = (duration * 1000.0).round() as u64;
            if requested_ms > duration_ms {
                return Err(JobError::PastEnd {
                    requested_ms,
                    duration_ms,
                });
            }
        }
        Ok(())
    }

    /// Waits up to `limit` for the job to finish; returns it as it then is.
    pub async fn wait_final(
        &self,
        org: &str,
        id: &str,
        limit: Duration,
    ) -> Result<JobRecord, JobError> {
        // Subscribed before looking, so a job finishing in between is seen.
        let mut finished = self.inner.finished.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let record = self.get(org, id).await?;
            if record.status.is_final() {
                return Ok(record);
            }
            loop {
                match tokio::time::timeout_at(deadline, finished.recv()).await {
                    Err(_) => return self.get(org, id).await,
                    Ok(Ok(done)) if done != id => continue,
                    // Ours, or some were missed (lagged): look again.
                    Ok(_) => break,
                }
            }
        }
    }

    /// Jobs queued or running now.
    pub fn queue_length(&self) -> usize {
        self.inner.scheduler.lock().expect("not poisoned").len()
    }

    pub fn max_queue(&self) -> usize {
        self.inner.settings.max_queue
    }

    /// The longest wait a client may ask for (`Prefer: wait`).
    pub fn max_wait(&self) -> Duration {
        Duration::from_secs(self.inner.settings.max_wait_secs)
    }

    pub async fn get(&self, org: &str, id: &str) -> Result<JobRecord, JobError> {
        let id = id.to_owned();
        match self.blocking(move |s| s.get(&id)).await? {
            Some(r) if r.thumbnail.org == org => Ok(r),
            _ => Err(JobError::NotFound),
        }
    }

    /// The largest completed job of a video, if any.
    pub async fn best(
        &self,
        org: &str,
        env: &str,
        key: &str,
    ) -> Result<Option<JobRecord>, JobError> {
        let (org, env, key) = (org.to_owned(), env.to_owned(), key.to_owned());
        self.blocking(move |s| s.best(&org, &env, &key)).await
    }

    pub fn default_env(&self, org: &str) -> Option<&str> {
        self.inner.orgs.get(org)?.default_env.as_deref()
    }

    pub fn max_batch(&self) -> usize {
        self.inner.settings.max_batch
    }

    /// Starts pending jobs whenever there is room, until shutdown.
    async fn dispatch(self) {
        loop {
            while self.inner.accepting.load(Ordering::SeqCst) {
                let next = self
                    .inner
                    .scheduler
                    .lock()
                    .expect("not poisoned")
                    .next(self.inner.settings.per_org_concurrency);
                let Some((org, id)) = next else { break };
                self.inner.running.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(self.clone().run(org, id));
            }
            if !self.inner.accepting.load(Ordering::SeqCst) {
                return;
            }
            self.inner.wake.notified().await;
        }
    }

    async fn run(self, org: String, id: String) {
        if let Err(e) = self.run_job(&id).await {
            tracing::error!(job = %id, error = %e, "job storage failed; the job stays queued for the next start");
        }
        self.inner
            .scheduler
            .lock()
            .expect("not poisoned")
            .done(&org, &id);
        self.inner.running.fetch_sub(1, Ordering::SeqCst);
        self.inner.wake.notify_one();
    }

    async fn run_job(&self, id: &str) -> Result<(), JobError> {
        let Some(record) = ({
            let id = id.to_owned();
            self.blocking(move |s| s.get(&id)).await?
        }) else {
            return Ok(());
        };
        if record.status.is_final() {
            return Ok(());
        }
        let settings = &self.inner.settings;
        let mut attempt = record.attempts;
        let outcome = loop {
            attempt += 1;
            {
                let id = id.to_owned();
                self.blocking(move |s| s.set_processing(&id, attempt))
                    .await?;
            }
            let render = self.inner.renderer.thumbnail(&record.thumbnail);
            let result = match record.timeout_ms {
                Some(ms) => match tokio::time::timeout(Duration::from_millis(ms), render).await {
                    Ok(r) => r,
                    Err(_) => Err(Arc::new(RenderError::Media(MediaError::Timeout))),
                },
                None => render.await,
            };
            match result {
                Ok((thumbnail, _)) => break Ok((thumbnail.width, thumbnail.height)),
                Err(e) if is_transient(&e) && attempt < settings.max_attempts => {
                    let backoff = settings
                        .retry_backoff_ms
                        .saturating_mul(1 << (attempt - 1).min(10));
                    tracing::info!(job = %id, error = %e, attempt, "job failed, retrying");
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                Err(e) => break Err(e),
            }
        };
        let (status, error, size) = match outcome {
            Ok(size) => (Status::Completed, None, Some(size)),
            Err(e) => {
                tracing::info!(job = %id, error = %e, "job failed");
                let problem = serde_json::to_value(Problem::from(e.as_ref())).expect("serializes");
                (Status::Failed, Some(problem), None)
            }
        };
        {
            let (id, error) = (id.to_owned(), error.clone());
            self.blocking(move |s| s.finish(&id, status, error.as_ref(), size))
                .await?;
        }
        let _ = self.inner.finished.send(id.to_owned());
        if record.webhook_url.is_some() {
            // As stored, with its start and end times.
            let id = id.to_owned();
            if let Some(done) = self.blocking(move |s| s.get(&id)).await? {
                tokio::spawn(self.clone().send_webhook(done));
            }
        }
        Ok(())
    }

    /// Delivers a finished job's document to its webhook, retrying with
    /// exponential backoff and recording each try on the job, in order.
    async fn send_webhook(self, record: JobRecord) {
        let (Some(url), Some(secret)) = (
            record.webhook_url.clone(),
            self.inner
                .orgs
                .get(&record.thumbnail.org)
                .and_then(|o| o.webhook_secret.clone()),
        ) else {
            return;
        };
        let settings = &self.inner.settings;
        let timeout = Duration::from_secs(settings.webhook_timeout_secs);
        let mut backoff = Duration::from_millis(settings.webhook_backoff_ms);
        // The final job document, without the delivery's own bookkeeping.
        let mut doc = record.shape.document(&record);
        doc.as_object_mut().expect("an object").remove("webhook");
        let body = serde_json::to_vec(&doc).expect("serializes");
        for attempt in (record.webhook_attempts + 1)..=settings.webhook_attempts.max(1) {
            let delivered =
                webhook::send_once(&self.inner.client, &url, &secret, &body, timeout).await;
            let state = match (delivered, attempt >= settings.webhook_attempts) {
                (true, _) => Delivery::Delivered,
                (false, true) => Delivery::Failed,
                (false, false) => Delivery::Pending,
            };
            let outcome = match state {
                Delivery::Pending => "retried",
                other => other.as_str(),
            };
            self.inner
                .renderer
                .metrics()
                .webhook_deliveries
                .get_or_create(&OutcomeLabels { outcome })
                .inc();
            let id = record.id.clone();
            if let Err(e) = self
                .blocking(move |s| s.set_webhook(&id, state, attempt))
                .await
            {
                tracing::error!(job = %record.id, error = %e, "could not record webhook delivery");
            }
            if state != Delivery::Pending {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(300));
        }
    }

    /// Sends a finished job's document to another caller's webhook (one
    /// who asked for a render already made), with their own reference.
    pub fn notify(&self, record: &JobRecord, webhook_url: &str, client_id: Option<String>) {
        let record = JobRecord {
            webhook_url: Some(webhook_url.to_owned()),
            client_id,
            webhook_attempts: 0,
            ..record.clone()
        };
        tokio::spawn(self.clone().send_webhook(record));
    }

    /// Refuses new submissions (503 shutting-down) from now on; running
    /// and queued jobs carry on.
    pub fn stop_accepting(&self) {
        self.inner.accepting.store(false, Ordering::SeqCst);
        self.inner.wake.notify_one();
    }

    /// Sets the job gauges (jobs by state, queue length); called before an
    /// exposition is encoded.
    pub async fn update_gauges(&self) {
        let metrics = self.inner.renderer.metrics().clone();
        let queued = self.inner.scheduler.lock().expect("not poisoned").len();
        metrics.jobs_queue_length.set(queued as i64);
        match self.blocking(|s| s.count_by_status()).await {
            Ok(counts) => {
                for status in [
                    Status::Pending,
                    Status::Processing,
                    Status::Completed,
                    Status::Failed,
                ] {
                    let n = counts
                        .iter()
                        .find(|(s, _)| s == status.as_str())
                        .map_or(0, |(_, n)| *n);
                    metrics
                        .jobs
                        .get_or_create(&StateLabels {
                            state: status.as_str(),
                        })
                        .set(n);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not count jobs for /metrics"),
        }
    }

    /// Stops taking jobs and waits up to `grace` for running ones; the rest
    /// stay pending in the database for the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop_accepting();
        let waited = tokio::time::timeout(grace, async {
            while self.inner.running.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        if waited.is_err() {
            tracing::warn!("jobs still running at the end of the grace period; they will run again on the next start");
        }
    }
}

/// 502/504-class failures (and a full render queue) are worth retrying;
/// anything the video itself causes is not.
fn is_transient(e: &RenderError) -> bool {
    match e {
        RenderError::Busy(PoolError::Full { .. }) => true,
        RenderError::Media(MediaError::Timeout) => true,
        RenderError::Media(MediaError::Source(s)) => !matches!(
            s,
            SourceError::NotFound | SourceError::Forbidden(_) | SourceError::Replaced
        ),
        _ => false,
    }
}

/// The job as thumbd's job API shows it (and its webhooks receive it).
pub fn document(r: &JobRecord) -> Value {
    shapes::thumbd(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orgs_take_turns() {
        let mut s = Scheduler::default();
        for i in 0..5 {
            s.push("big", &format!("b{i}"));
        }
        s.push("small", "s0");
        s.push("small", "s1");
        assert!(!s.push("small", "s1"), "a queued job is not queued twice");
        let order: Vec<String> = std::iter::from_fn(|| s.next(10).map(|(_, id)| id)).collect();
        assert_eq!(order, ["b0", "s0", "b1", "s1", "b2", "b3", "b4"]);
    }

    #[test]
    fn per_org_limit() {
        let mut s = Scheduler::default();
        for i in 0..3 {
            s.push("a", &format!("a{i}"));
        }
        s.push("b", "b0");
        assert_eq!(s.next(1).unwrap().1, "a0");
        assert_eq!(s.next(1).unwrap().1, "b0");
        assert_eq!(s.next(1), None, "a has one running already");
        s.done("a", "a0");
        assert_eq!(s.next(1).unwrap().1, "a1");
        assert_eq!(s.len(), 3);
    }
}
