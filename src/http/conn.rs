//! What a connection does for clients as they are: a send timeout for
//! clients that stop reading an answer, and a lingering read of a body the
//! answer did not need, for clients that write their whole body before
//! reading the answer.

use std::future::Future;
use std::io;
use std::pin::Pin;
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
pub(super) async fn linger<B>(mut body: B, linger: Duration, idle: Duration, reads: Counter)
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
