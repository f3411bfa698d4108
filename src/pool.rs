//! The one way CPU-bound media work runs: off the async runtime, on tokio's
//! blocking threads, at most `concurrency` at a time, with a bounded number
//! of callers waiting for a slot. Beyond that a caller is told to come back
//! later rather than queue without end, so the server keeps answering cache
//! hits while renders pile up.
//!
//! The wait queue is shared fairly: work done for a client ([`as_client`],
//! set by the HTTP layer around a picture request) may hold at most
//! `max_per_client` of its places, so one client asking for thousands of
//! distinct thumbnails is refused while others' renders are still admitted.
//! Work for no client (the job engine's renders) counts only against the
//! whole queue.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use tracing::Instrument;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("too many renders are waiting ({waiting} of {max})")]
    Full { waiting: usize, max: usize },
    #[error("the blocking task failed: {0}")]
    Panicked(String),
}

/// Who work is done for, as the wait queue shares its places: an IPv4
/// address, or an IPv6 address's /64 (one host's share whatever address of
/// its network it takes; IPv4-mapped addresses are their IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId(IpAddr);

impl ClientId {
    pub fn from_ip(ip: IpAddr) -> ClientId {
        ClientId(match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
            },
            v4 => v4,
        })
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => v4.fmt(f),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

tokio::task_local! {
    /// The client the current task's work is for.
    static CLIENT: ClientId;
}

/// Runs `work` for `client`: what it asks of a pool on this task counts
/// against that client's share of the wait queue (none: only against the
/// whole queue).
pub async fn as_client<F: Future>(client: Option<ClientId>, work: F) -> F::Output {
    match client {
        Some(client) => CLIENT.scope(client, work).await,
        None => work.await,
    }
}

#[derive(Clone)]
pub struct WorkPool {
    slots: Arc<Semaphore>,
    concurrency: usize,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    /// Callers waiting now, per client that has any.
    clients: Arc<Mutex<HashMap<ClientId, usize>>>,
    max_per_client: usize,
}

/// Counts a caller as waiting until dropped.
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a caller as waiting for its client until dropped.
struct ClientWaiting {
    clients: Arc<Mutex<HashMap<ClientId, usize>>>,
    client: ClientId,
}

impl Drop for ClientWaiting {
    fn drop(&mut self) {
        let mut clients = self.clients.lock().expect("never poisoned");
        if let Some(n) = clients.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                clients.remove(&self.client);
            }
        }
    }
}

impl WorkPool {
    /// A pool of `concurrency` slots and `max_waiting` places to wait, any
    /// number of which one client may hold (see [`WorkPool::with_client_share`]).
    pub fn new(concurrency: usize, max_waiting: usize) -> WorkPool {
        WorkPool {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            concurrency: concurrency.max(1),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
            clients: Arc::new(Mutex::new(HashMap::new())),
            max_per_client: max_waiting,
        }
    }

    /// One client (see [`as_client`]) may hold at most `max` places of the
    /// wait queue; past them its work is refused as if the queue were full.
    pub fn with_client_share(mut self, max: usize) -> WorkPool {
        self.max_per_client = max.max(1);
        self
    }

    /// Runs `work` on a blocking thread once a slot is free, keeping the
    /// caller's tracing span; refused at once when the wait queue is full.
    /// The slot is held until `work` returns, even if the caller stops waiting.
    pub async fn run<T, F>(&self, work: F) -> Result<T, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.run_inner(work, true).await
    }

    /// As [`WorkPool::run`], for a later step of work already admitted (the
    /// encode after a decode): it waits for a slot however long the queue,
    /// so accepted work is never refused halfway.
    pub async fn run_admitted<T, F>(&self, work: F) -> Result<T, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.run_inner(work, false).await
    }

    async fn run_inner<T, F>(&self, work: F, refuse_when_full: bool) -> Result<T, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let waiting = self.waiting.fetch_add(1, Ordering::SeqCst) + 1;
                let guard = Waiting(self.waiting.clone());
                if refuse_when_full && waiting > self.max_waiting {
                    return Err(PoolError::Full {
                        waiting: waiting - 1,
                        max: self.max_waiting,
                    });
                }
                let client_guard = match CLIENT.try_with(|c| *c) {
                    Ok(client) => Some(self.wait_for(client, refuse_when_full)?),
                    Err(_) => None,
                };
                let permit = self
                    .slots
                    .clone()
                    .acquire_owned()
                    .instrument(tracing::debug_span!("wait_for_slot"))
                    .await
                    .expect("the semaphore is never closed");
                drop(client_guard);
                drop(guard);
                permit
            }
        };
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _entered = span.enter();
            work()
        })
        .await
        .map_err(|e| PoolError::Panicked(e.to_string()))
    }

    /// Counts a caller of `client` as waiting; refused (when `refuse`) if
    /// the client already holds its share of the queue.
    fn wait_for(&self, client: ClientId, refuse: bool) -> Result<ClientWaiting, PoolError> {
        let mut clients = self.clients.lock().expect("never poisoned");
        let held = clients.get(&client).copied().unwrap_or(0);
        if refuse && held >= self.max_per_client {
            tracing::debug!(%client, waiting = held, "the client's share of the render queue is full");
            return Err(PoolError::Full {
                waiting: held,
                max: self.max_per_client,
            });
        }
        clients.insert(client, held + 1);
        Ok(ClientWaiting {
            clients: self.clients.clone(),
            client,
        })
    }

    /// Slots held now (called from inside `work`, its own included).
    pub fn busy(&self) -> usize {
        self.concurrency - self.slots.available_permits()
    }

    /// Callers waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[tokio::test]
    async fn refuses_beyond_the_queue_and_bounds_concurrency() {
        let pool = WorkPool::new(1, 1);
        let (release, gate) = mpsc::channel::<()>();
        let gate = Arc::new(std::sync::Mutex::new(gate));
        let g = gate.clone();
        let running = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move || g.lock().unwrap().recv().unwrap()).await }
        });
        // Wait until the first job holds the only slot.
        while pool.busy() != 1 {
            tokio::task::yield_now().await;
        }
        let queued = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(|| 2).await }
        });
        while pool.waiting() != 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            pool.run(|| 3).await,
            Err(PoolError::Full { waiting: 1, max: 1 })
        );
        // A later step of admitted work waits instead of being refused.
        let admitted = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run_admitted(|| 4).await }
        });
        while pool.waiting() != 2 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        running.await.unwrap().unwrap();
        assert_eq!(queued.await.unwrap(), Ok(2));
        assert_eq!(admitted.await.unwrap(), Ok(4));
        assert_eq!((pool.busy(), pool.waiting()), (0, 0));
    }

    // The gate's guard is held across awaits on purpose: the work blocks on it.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test]
    async fn one_client_holds_at_most_its_share_of_the_queue() {
        let pool = WorkPool::new(1, 4).with_client_share(2);
        // Work blocks until the test lets go of the gate.
        let gate = Arc::new(std::sync::RwLock::new(()));
        let closed = gate.write().unwrap();
        let hold = |gate: Arc<std::sync::RwLock<()>>| {
            move || {
                let _open = gate.read().unwrap();
            }
        };
        let flooder = Some(ClientId::from_ip("203.0.113.7".parse().unwrap()));
        let other = Some(ClientId::from_ip("198.51.100.9".parse().unwrap()));
        let spawn_as = |client: Option<ClientId>| {
            let pool = pool.clone();
            let work = hold(gate.clone());
            tokio::spawn(as_client(client, async move { pool.run(work).await }))
        };
        // The flooder takes the slot and two places; its third waiter is refused.
        let running = spawn_as(flooder);
        while pool.busy() != 1 {
            tokio::task::yield_now().await;
        }
        let queued = [spawn_as(flooder), spawn_as(flooder)];
        while pool.waiting() != 2 {
            tokio::task::yield_now().await;
        }
        let refused = as_client(flooder, pool.run(|| ())).await;
        assert_eq!(refused, Err(PoolError::Full { waiting: 2, max: 2 }));
        // Another client, and work for no client, are still admitted.
        let others = [spawn_as(other), spawn_as(None)];
        while pool.waiting() != 4 {
            tokio::task::yield_now().await;
        }
        // The whole queue is full now, for everyone.
        assert_eq!(
            as_client(other, pool.run(|| ())).await,
            Err(PoolError::Full { waiting: 4, max: 4 })
        );
        // An admitted step of the flooder's work still waits.
        let admitted = {
            let pool = pool.clone();
            tokio::spawn(as_client(
                flooder,
                async move { pool.run_admitted(|| 5).await },
            ))
        };
        while pool.waiting() != 5 {
            tokio::task::yield_now().await;
        }
        drop(closed);
        running.await.unwrap().unwrap();
        for task in queued.into_iter().chain(others) {
            task.await.unwrap().unwrap();
        }
        assert_eq!(admitted.await.unwrap(), Ok(5));
        assert_eq!((pool.busy(), pool.waiting()), (0, 0));
        assert!(
            pool.clients.lock().unwrap().is_empty(),
            "no client left counted"
        );
    }

    #[test]
    fn clients_are_addresses_and_ipv6_networks() {
        let id = |s: &str| ClientId::from_ip(s.parse().unwrap());
        assert_eq!(id("2001:db8:1:2:aaaa::1"), id("2001:db8:1:2:bbbb::9"));
        assert_ne!(id("2001:db8:1:2::1"), id("2001:db8:1:3::1"));
        assert_eq!(id("::ffff:192.0.2.1"), id("192.0.2.1"));
        assert_ne!(id("192.0.2.1"), id("192.0.2.2"));
        assert_eq!(id("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
    }

    #[tokio::test]
    async fn work_sees_its_own_slot_as_busy() {
        let pool = WorkPool::new(2, 0);
        let inside = pool.clone();
        assert_eq!(pool.run(move || inside.busy()).await, Ok(1));
        assert_eq!(pool.busy(), 0);
    }
}
