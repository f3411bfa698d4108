//! The job service ([`Jobs`]): submissions checked and queued, a
//! dispatcher that runs pending jobs through the same [`Renderer`] the URLs
//! use, retries of transient failures, the final state stored and, if
//! asked, sent to a webhook; waits for a job to finish, the job gauges, and
//! shutdown. It drives the [`Backend`] (the job database and the queue) and
//! knows nothing of HTTP.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;

use super::backend::{Backend, Lease};
use super::error::JobError;
use super::model::{now_ms, Delivery, JobFailure, JobRecord, JobRequest, Shape, Status};
use super::{submission, webhook};
use crate::config::{Config, JobsConfig};
use crate::domain::Problem;
use crate::media::MediaError;
use crate::metrics::{OutcomeLabels, StateLabels};
use crate::orgs::Orgs;
use crate::pool::PoolError;
use crate::render::{RenderError, Renderer};
use crate::source::SourceError;

/// How often [`Jobs::wait_final`] reads a job again when other nodes may
/// finish it.
const LOOK_AGAIN: Duration = Duration::from_millis(200);

/// Per-org settings the jobs need.
struct OrgJobs {
    default_env: Option<String>,
    webhook_secret: Option<Vec<u8>>,
    webhook_hosts: Vec<String>,
    envs: HashSet<String>,
}

struct Inner {
    backend: Backend,
    renderer: Arc<Renderer>,
    /// Wakes the dispatcher: a job was submitted here, or one finished.
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
    pub async fn start(
        config: &Config,
        orgs: &Orgs,
        renderer: Arc<Renderer>,
    ) -> anyhow::Result<Jobs> {
        let ids = orgs.iter().map(|(id, _)| id.to_owned()).collect();
        let backend = Backend::open(config, ids).await?;
        let orgs = orgs
            .iter()
            .map(|(id, o)| {
                let jobs = OrgJobs {
                    default_env: o.default_env.clone(),
                    webhook_secret: o.config.webhook_secret.clone().map(String::into_bytes),
                    webhook_hosts: o.config.webhook_hosts.clone(),
                    envs: o.envs().map(|(env, _)| env.to_owned()).collect(),
                };
                (id.to_owned(), jobs)
            })
            .collect();
        let jobs = Jobs {
            inner: Arc::new(Inner {
                backend,
                renderer,
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
        let (resumed, webhooks) = jobs.inner.backend.recover().await?;
        if resumed > 0 {
            tracing::info!(jobs = resumed, "resuming unfinished jobs");
        }
        for r in webhooks {
            let lease = jobs.inner.backend.hold(&r.id);
            tokio::spawn(jobs.clone().send_webhook(r, Some(lease)));
        }
        tokio::spawn(jobs.clone().dispatch());
        Ok(jobs)
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
        let req = submission::validate(body, org, key, org_jobs.default_env.as_deref())
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
        let id = submission::job_id(&req.thumbnail);
        let existing = self.inner.backend.get(&id).await?;
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
        let length = self.inner.backend.queue_length().await?;
        if length >= self.inner.settings.max_queue {
            return Err(JobError::QueueFull {
                length,
                max: self.inner.settings.max_queue,
            });
        }
        self.check_time(&req).await?;
        let record = JobRecord {
            id: id.clone(),
            url: submission::thumbnail_url(&self.inner.base_url, &req.thumbnail),
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
        if !self.inner.backend.submit(&record).await? {
            // Accepted by another node meanwhile, and in flight there.
            let current = self
                .inner
                .backend
                .get(&id)
                .await?
                .ok_or(JobError::NotFound)?;
            return Ok((current, false));
        }
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
        if let Some((requested_ms, duration_ms)) = req.past_end(probe.duration_secs) {
            return Err(JobError::PastEnd {
                requested_ms,
                duration_ms,
            });
        }
        Ok(())
    }

    /// Waits up to `limit` for the job to finish; returns it as it then is.
    /// Jobs finished here are seen at once; with PostgreSQL the record is
    /// also read every `LOOK_AGAIN`, for jobs another node finishes.
    pub async fn wait_final(
        &self,
        org: &str,
        id: &str,
        limit: Duration,
    ) -> Result<JobRecord, JobError> {
        // Subscribed before looking, so a job finishing in between is seen.
        let mut finished = self.inner.finished.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        let look_again = self.inner.backend.poll_interval().map(|_| LOOK_AGAIN);
        loop {
            let record = self.get(org, id).await?;
            if record.status.is_final() {
                return Ok(record);
            }
            let until = look_again.map_or(deadline, |every| {
                deadline.min(tokio::time::Instant::now() + every)
            });
            loop {
                match tokio::time::timeout_at(until, finished.recv()).await {
                    Err(_) if until >= deadline => return self.get(org, id).await,
                    // Time to read the record again.
                    Err(_) => break,
                    Ok(Ok(done)) if done != id => continue,
                    // Ours, or some were missed (lagged): look again.
                    Ok(_) => break,
                }
            }
        }
    }

    /// Jobs queued or running now (with PostgreSQL: cluster-wide, as last
    /// counted).
    pub fn queue_length(&self) -> usize {
        self.inner.backend.queue_length_now()
    }

    pub fn max_queue(&self) -> usize {
        self.inner.settings.max_queue
    }

    /// The longest wait a client may ask for (`Prefer: wait`).
    pub fn max_wait(&self) -> Duration {
        Duration::from_secs(self.inner.settings.max_wait_secs)
    }

    pub async fn get(&self, org: &str, id: &str) -> Result<JobRecord, JobError> {
        match self.inner.backend.get(id).await? {
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
        self.inner.backend.best(org, env, key).await
    }

    pub fn default_env(&self, org: &str) -> Option<&str> {
        self.inner.orgs.get(org)?.default_env.as_deref()
    }

    pub fn max_batch(&self) -> usize {
        self.inner.settings.max_batch
    }

    /// Starts pending jobs whenever there is room, until shutdown. Woken
    /// by submissions here and finished jobs; with PostgreSQL also every
    /// `poll_ms`, for jobs submitted elsewhere, jobs and webhooks whose
    /// leases lapsed.
    async fn dispatch(self) {
        let backend = &self.inner.backend;
        let mut failing = false;
        loop {
            while self.inner.accepting.load(Ordering::SeqCst) {
                let claimed = backend.claim(self.inner.settings.per_org_concurrency).await;
                if claimed.is_ok() && std::mem::take(&mut failing) {
                    tracing::info!("the job database answers again");
                }
                match claimed {
                    Ok(Some(record)) => {
                        self.inner.running.fetch_add(1, Ordering::SeqCst);
                        tokio::spawn(self.clone().run(record));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        // Once per outage, not at every poll.
                        if !std::mem::replace(&mut failing, true) {
                            tracing::error!(error = %e, "cannot take jobs from the job database; trying again");
                        }
                        break;
                    }
                }
            }
            if !self.inner.accepting.load(Ordering::SeqCst) {
                return;
            }
            while let Ok(Some(record)) = backend.claim_webhook().await {
                tracing::info!(job = %record.id, "delivering a webhook another node left undelivered");
                let lease = backend.hold(&record.id);
                tokio::spawn(self.clone().send_webhook(record, Some(lease)));
            }
            match backend.poll_interval() {
                Some(every) => {
                    let _ = tokio::time::timeout(every, self.inner.wake.notified()).await;
                }
                None => self.inner.wake.notified().await,
            }
        }
    }

    async fn run(self, record: JobRecord) {
        let (org, id) = (record.thumbnail.org.clone(), record.id.clone());
        if let Err(e) = self.run_job(record).await {
            tracing::error!(job = %id, error = %e, "job storage failed; the job runs again after a restart (or, with PostgreSQL, when its lease lapses)");
        }
        self.inner.backend.done(&org, &id);
        self.inner.running.fetch_sub(1, Ordering::SeqCst);
        self.inner.wake.notify_one();
    }

    /// Runs a claimed job (already `processing`, its attempt counted),
    /// retrying transient failures, and stores the outcome unless another
    /// node took the job over meanwhile.
    async fn run_job(&self, record: JobRecord) -> Result<(), JobError> {
        let backend = &self.inner.backend;
        let id = record.id.as_str();
        let lease = backend.hold(id);
        let settings = &self.inner.settings;
        let mut attempt = record.attempts;
        let outcome = loop {
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
                    attempt += 1;
                    if !backend.retry(id, attempt).await? {
                        tracing::warn!(job = %id, "another node took the job over; not retrying here");
                        return Ok(());
                    }
                }
                Err(e) => break Err(e),
            }
        };
        let (status, error, size) = match outcome {
            Ok(size) => (Status::Completed, None, Some(size)),
            Err(e) => {
                tracing::info!(job = %id, error = %e, "job failed");
                let failure = JobFailure::from_problem(&Problem::from(e.as_ref()));
                (Status::Failed, Some(failure), None)
            }
        };
        if !backend.finish(id, status, error, size).await? {
            tracing::warn!(job = %id, status = status.as_str(), "another node took the job over; this outcome is dropped");
            return Ok(());
        }
        let _ = self.inner.finished.send(id.to_owned());
        if record.webhook_url.is_some() {
            // As stored, with its start and end times.
            if let Some(done) = backend.get(id).await? {
                tokio::spawn(self.clone().send_webhook(done, Some(lease)));
            }
        }
        Ok(())
    }

    /// Delivers a finished job's document to its webhook, retrying with
    /// exponential backoff and recording each try on the job, in order.
    /// With `lease` (the job's own webhook), each try is made only while
    /// this node still holds the job, so two nodes never both send it.
    async fn send_webhook(self, record: JobRecord, lease: Option<Lease>) {
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
            if lease.is_some() && !self.inner.backend.still_held(&record.id).await {
                tracing::info!(job = %record.id, "webhook left to the node that holds the job now");
                return;
            }
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
            if let Err(e) = self
                .inner
                .backend
                .set_webhook(&record.id, state, attempt)
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
        tokio::spawn(self.clone().send_webhook(record, None));
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
        match self.inner.backend.queue_length().await {
            Ok(queued) => {
                metrics.jobs_queue_length.set(queued as i64);
            }
            Err(e) => tracing::warn!(error = %e, "could not count queued jobs for /metrics"),
        };
        match self.inner.backend.count_by_status().await {
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
    /// stay in the database for the next start (SQLite) or go back to
    /// pending for the other nodes (PostgreSQL).
    pub async fn shutdown(&self, grace: Duration) {
        self.stop_accepting();
        let waited = tokio::time::timeout(grace, async {
            while self.inner.running.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        if waited.is_err() {
            self.inner.backend.release_unfinished().await;
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
