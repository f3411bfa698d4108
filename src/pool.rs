//! The one way CPU-bound media work runs: off the async runtime, on tokio's
//! blocking threads, at most `concurrency` at a time, with a bounded number
//! of callers waiting for a slot. Beyond that a caller is told to come back
//! later rather than queue without end, so the server keeps answering cache
//! hits while renders pile up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tracing::Instrument;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("too many renders are waiting ({waiting} of {max})")]
    Full { waiting: usize, max: usize },
    #[error("the blocking task failed: {0}")]
    Panicked(String),
}

#[derive(Clone)]
pub struct WorkPool {
    slots: Arc<Semaphore>,
    concurrency: usize,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

/// Counts a caller as waiting until dropped.
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WorkPool {
    pub fn new(concurrency: usize, max_waiting: usize) -> WorkPool {
        WorkPool {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            concurrency: concurrency.max(1),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
        }
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
                let permit = self
                    .slots
                    .clone()
                    .acquire_owned()
                    .instrument(tracing::debug_span!("wait_for_slot"))
                    .await
                    .expect("the semaphore is never closed");
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

    #[tokio::test]
    async fn work_sees_its_own_slot_as_busy() {
        let pool = WorkPool::new(2, 0);
        let inside = pool.clone();
        assert_eq!(pool.run(move || inside.busy()).await, Ok(1));
        assert_eq!(pool.busy(), 0);
    }
}
