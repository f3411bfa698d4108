//! What a connection does for clients as they are: a send timeout for
//! clients that stop reading an answer, and a lingering read of a body the
//! answer did not need ([`TrackedBody`]), for clients that write their
//! whole body before reading the answer.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A connection whose writes fail with `TimedOut` once they have made no
/// progress for `timeout` (nginx's `send_timeout`): the time between two
/// writes that the client took something of, not the whole answer's. hyper
/// then closes the connection. Reads are untouched (hyper bounds the head
/// with its own timer, uploads their body with `body_idle_timeout_secs`).
pub(super) struct SendTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write is waiting for the client.
    stalled: Option<Pin<Box<Sleep>>>,
    timeouts: Counter,
}

impl<S> SendTimeout<S> {
    pub(super) fn new(inner: S, timeout: Duration, timeouts: Counter) -> SendTimeout<S> {
        SendTimeout {
            inner,
            timeout,
            stalled: None,
            timeouts,
        }
    }

    /// What a write attempt came to: progress disarms the timer, waiting
    /// arms it (once) and fails the write when it fires.
    fn after<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + timeout)));
        if stalled.as_mut().poll(cx).is_ready() {
            self.stalled = None;
            self.timeouts.inc();
            tracing::debug!("closing a connection whose client stopped reading");
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took nothing of the answer for server.send_timeout_secs",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.after(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.after(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Reads and discards what is left of a request body, for at most
/// `linger` in all and never waiting longer than `idle` for the next bytes:
/// the answer is being sent meanwhile, and a client still writing its body
/// reads it once the body is written. Then the body is dropped, and hyper
/// closes the connection.
async fn linger<B>(mut body: B, linger: Duration, idle: Duration, reads: Counter)
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    reads.inc();
    let until = Instant::now() + linger;
    loop {
        let wait = until.saturating_duration_since(Instant::now()).min(idle);
        match tokio::time::timeout(wait, body.frame()).await {
            Ok(Some(Ok(_))) => {}
            // The end, a broken body, or the time is up.
            Ok(None) | Ok(Some(Err(_))) | Err(_) => return,
        }
    }
}

/// A request body that records whether it was read to its end, and when
/// dropped before (the answer did not need it: a refused upload), lingers:
/// reads and discards the rest for a bounded time while the answer goes
/// out (see [`linger`]).
pub(super) struct TrackedBody<B>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
{
    /// Taken by the lingering read on drop.
    inner: Option<B>,
    done: Option<Arc<AtomicBool>>,
    linger: Option<Linger>,
}

/// How a dropped body lingers.
pub(super) struct Linger {
    /// `server.linger_secs`: the longest a lingering read goes on.
    pub(super) total: Duration,
    /// `server.body_idle_timeout_secs`: the longest it waits for bytes.
    pub(super) idle: Duration,
    /// Counts lingering reads.
    pub(super) reads: Counter,
}

impl<B> TrackedBody<B>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
{
    /// `body`, tracked, and unless it is empty from the start, the flag
    /// that says whether it was read to its end. `linger` is called only
    /// for a body that has something to read (no allocation for the
    /// bodiless requests of the hit path).
    pub(super) fn new(
        body: B,
        linger: impl FnOnce() -> Linger,
    ) -> (TrackedBody<B>, Option<Arc<AtomicBool>>) {
        let read_to_end = (!body.is_end_stream()).then(|| Arc::new(AtomicBool::new(false)));
        let tracked = TrackedBody {
            inner: Some(body),
            done: read_to_end.clone(),
            linger: read_to_end.is_some().then(linger),
        };
        (tracked, read_to_end)
    }
}

impl<B> hyper::body::Body for TrackedBody<B>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if let (Poll::Ready(None), Some(done)) = (&polled, &self.done) {
            done.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| hyper::body::SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl<B> Drop for TrackedBody<B>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
{
    fn drop(&mut self) {
        let unread = self
            .done
            .as_ref()
            .is_some_and(|done| !done.load(Ordering::Relaxed));
        if let (true, Some(body), Some(how), Ok(runtime)) = (
            unread,
            self.inner.take(),
            self.linger.take(),
            tokio::runtime::Handle::try_current(),
        ) {
            runtime.spawn(linger(body, how.total, how.idle, how.reads));
        }
    }
}
