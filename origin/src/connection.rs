//! Client connections: HTTP/1.1 served by hyper with the origin's limits
//! ([`ServerLimits`]). `axum::serve` has no timer, so hyper's header timeout was off, and it
//! has no idle timeout and no connection cap: a client trickling one header byte every 20 s
//! held a descriptor forever. Here each connection has a deadline that depends on its phase:
//!
//! - waiting for a request (keep-alive, or a new connection): `idle_timeout` from the end of
//!   the previous response (or the accept);
//! - a request's first byte has arrived: `header_read_timeout` from that byte, until hyper
//!   hands the request to the router;
//! - in the router: no connection deadline; the body has `body_read_timeout`
//!   (`routes::request::read_body`, 408) and the decision `AUTHZ_REQUEST_TIMEOUT_MS` (503);
//! - writing the response: `idle_timeout` without progress.
//!
//! A connection past its deadline is dropped (closed). At most `max_connections` are open;
//! the accept loop waits for one to close before it accepts another (the kernel's backlog
//! holds the rest). Shutdown stops accepting, lets in-flight requests finish and closes idle
//! connections (hyper's graceful shutdown).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Sleep;
use tower::ServiceExt;

use crate::config::ServerLimits;

/// The listen backlog: connections the kernel completes while the accept loop is busy or at
/// `AUTHZ_MAX_CONNECTIONS` (Linux caps it at `net.core.somaxconn`, 4,096 by default; tokio's
/// `TcpListener::bind` asks for 1,024, which a burst of connects overflows into SYN retries).
pub const BACKLOG: u32 = 4_096;

/// A listener on `address` with [`BACKLOG`].
pub fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)
}

/// Serves `app` on `listener` under `limits` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, or a connection reset before it was accepted: wait a
                // little rather than spin (as axum::serve does).
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            metrics::gauge!("authz_http_connections").increment(1.0);
            serve_connection(stream, peer, app, limits, stopping).await;
            metrics::gauge!("authz_http_connections").decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it ends.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ServerLimits,
    mut stopping: watch::Receiver<bool>,
) {
    let deadline = Arc::new(Deadline::new(limits));
    let io = TokioIo::new(Tracked {
        inner: stream,
        deadline: Arc::clone(&deadline),
    });
    let in_router = Arc::clone(&deadline);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let (mut parts, body) = request.into_parts();
        // The per-IP rate limit keys on the peer address (`rate_limit::ClientIp`).
        parts.extensions.insert(ConnectInfo(peer));
        let request = hyper::Request::from_parts(parts, TimedBody::new(body, limits));
        let busy = Busy::start(Arc::clone(&in_router));
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await;
            drop(busy);
            response
        }
    });
    let mut builder = http1::Builder::new();
    // The header deadline is this module's (from a request's first byte); hyper's would also
    // run while a keep-alive connection waits for its next request.
    builder.timer(TokioTimer::new()).header_read_timeout(None);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining = *stopping.borrow();
    if draining {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
                return;
            }
            reason = deadline.expired() => {
                metrics::counter!("authz_http_connections_closed_total", "reason" => reason)
                    .increment(1);
                tracing::debug!(%peer, reason, "closing a connection");
                return;
            }
            changed = stopping.changed(), if !draining => {
                if changed.is_err() || *stopping.borrow() {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A request body with a deadline for the whole of it: `AUTHZ_BODY_READ_TIMEOUT_MS` from
    /// the end of the headers (a deadline between chunks would let a client trickle a byte
    /// per period forever).
    pub struct TimedBody {
        #[pin]
        inner: Incoming,
        #[pin]
        deadline: Sleep,
        millis: u64,
    }
}

impl TimedBody {
    fn new(inner: Incoming, limits: ServerLimits) -> Self {
        Self {
            inner,
            // Registered with the timer only if the body is not already there when read.
            deadline: tokio::time::sleep(limits.body_read_timeout),
            millis: u64::try_from(limits.body_read_timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The connection failed.
    #[error(transparent)]
    Connection(#[from] hyper::Error),
    /// The body did not arrive within the deadline (its milliseconds).
    #[error("the request body did not arrive within {0} ms")]
    TimedOut(u64),
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|frame| frame.map_err(BodyError::from))),
            Poll::Pending => match this.deadline.poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::TimedOut(*this.millis)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The deadline (ms) if `error` (or an error under it) is a [`TimedBody`]'s timeout.
pub fn timed_out(error: &(dyn std::error::Error + 'static)) -> Option<u64> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(BodyError::TimedOut(millis)) = error.downcast_ref::<BodyError>() {
            return Some(*millis);
        }
        current = error.source();
    }
    None
}

/// A connection's phase and deadline, in one word: the top two bits the phase, the rest the
/// deadline in milliseconds since `start`.
struct Deadline {
    start: Instant,
    word: AtomicU64,
    limits: ServerLimits,
    /// Wakes [`Deadline::expired`] when a request's first byte brings the deadline closer.
    sooner: Notify,
}

/// Waiting for a request's first byte, or writing a response.
const IDLE: u64 = 0;
/// Reading a request's headers.
const HEAD: u64 = 1;
/// A request is in the router.
const BUSY: u64 = 2;
const PHASE_SHIFT: u32 = 62;
const MILLIS: u64 = (1 << PHASE_SHIFT) - 1;

impl Deadline {
    fn new(limits: ServerLimits) -> Self {
        let deadline = Self {
            start: Instant::now(),
            word: AtomicU64::new(0),
            limits,
            sooner: Notify::new(),
        };
        deadline.set(IDLE, limits.idle_timeout);
        deadline
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(MILLIS)
    }

    fn set(&self, phase: u64, after: Duration) {
        let at = self
            .now()
            .saturating_add(u64::try_from(after.as_millis()).unwrap_or(MILLIS))
            .min(MILLIS);
        self.word
            .store((phase << PHASE_SHIFT) | at, Ordering::Relaxed);
    }

    fn read(&self) -> (u64, u64) {
        let word = self.word.load(Ordering::Relaxed);
        (word >> PHASE_SHIFT, word & MILLIS)
    }

    /// Bytes of a request arrived: the first of a request starts its header deadline.
    fn read_progress(&self) {
        if self.read().0 == IDLE {
            self.set(HEAD, self.limits.header_read_timeout);
            self.sooner.notify_one();
        }
    }

    /// Bytes of a response went out: the idle deadline starts again.
    fn write_progress(&self) {
        if self.read().0 == IDLE {
            self.set(IDLE, self.limits.idle_timeout);
        }
    }

    /// Resolves with the reason once the deadline of the current phase has passed.
    async fn expired(&self) -> &'static str {
        loop {
            let (phase, at) = self.read();
            let now = self.now();
            let wait = if phase == BUSY {
                // Its own deadlines apply; look again later.
                self.limits.idle_timeout
            } else if now >= at {
                return if phase == HEAD {
                    "header_timeout"
                } else {
                    "idle_timeout"
                };
            } else {
                Duration::from_millis(at - now)
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.sooner.notified() => {}
            }
        }
    }
}

/// A request in the router: the connection has no deadline of its own until it returns.
struct Busy(Arc<Deadline>);

impl Busy {
    fn start(deadline: Arc<Deadline>) -> Self {
        deadline.set(BUSY, Duration::ZERO);
        Self(deadline)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.set(IDLE, self.0.limits.idle_timeout);
    }
}

/// The client's stream, reporting progress to its [`Deadline`].
struct Tracked {
    inner: TcpStream,
    deadline: Arc<Deadline>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.deadline.read_progress();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.deadline.write_progress();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.deadline.write_progress();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ServerLimits {
        ServerLimits {
            header_read_timeout: Duration::from_millis(40),
            body_read_timeout: Duration::from_millis(40),
            idle_timeout: Duration::from_millis(120),
            max_connections: 1,
        }
    }

    #[tokio::test]
    async fn each_phase_has_its_deadline() {
        let deadline = Arc::new(Deadline::new(limits()));
        let started = Instant::now();
        deadline.read_progress();
        assert_eq!(deadline.expired().await, "header_timeout");
        assert!(started.elapsed() < Duration::from_millis(110));

        let deadline = Arc::new(Deadline::new(limits()));
        let started = Instant::now();
        assert_eq!(deadline.expired().await, "idle_timeout");
        assert!(started.elapsed() >= Duration::from_millis(115));

        // In the router: no deadline; after it, idle again (a byte of the response does not
        // start a header deadline).
        let deadline = Arc::new(Deadline::new(limits()));
        let busy = Busy::start(Arc::clone(&deadline));
        assert!(
            tokio::time::timeout(Duration::from_millis(200), deadline.expired())
                .await
                .is_err()
        );
        drop(busy);
        deadline.write_progress();
        assert_eq!(deadline.read().0, IDLE);
    }
}
