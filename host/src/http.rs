//! The connections under the API: accepts them, serves HTTP/1.1 on each with hyper, and
//! bounds what one client can hold, so that a slow or silent client costs a bounded time
//! and one socket, never the service ([`HttpLimits`], from the `[api]` section).
//!
//! Each connection is, at any moment, in one [`Phase`] with its own deadline:
//! - waiting for a request's headers: `header_read_timeout_secs` from the accept for the
//!   first request, from the first byte for the next ones; late, it is closed unanswered;
//! - handling a request: no deadline of the connection's, but the request's body must be
//!   in within `body_read_timeout_secs` of its headers and may not exceed
//!   `max_request_body_size` ([`BodyWatch`] tells the API which, for its 408 or 413);
//! - sending a response: it may stall (the client reading nothing) for
//!   `idle_timeout_secs`;
//! - idle between requests: closed after `idle_timeout_secs`.
//!
//! At `max_connections` the server stops accepting: new clients wait in the listen
//! backlog rather than being refused, since every connection it holds ends within the
//! deadlines above; and it closes the connections that sit idle between requests to make
//! room at once. On shutdown it stops accepting, lets every connection finish the request
//! it is serving, and returns when all are closed.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};

use crate::config::ApiSection;

/// What a client may hold, from the `[api]` section.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_request_body_size: u64,
    pub max_header_size: usize,
    pub max_connections: u32,
}

impl From<&ApiSection> for HttpLimits {
    fn from(api: &ApiSection) -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(api.header_read_timeout_secs),
            body_read_timeout: Duration::from_secs(api.body_read_timeout_secs),
            idle_timeout: Duration::from_secs(api.idle_timeout_secs),
            max_request_body_size: api.max_request_body_size,
            max_header_size: api.max_header_size,
            max_connections: api.max_connections,
        }
    }
}

/// Serves `router` on `listener` until `stop` completes; then stops accepting, lets each
/// connection finish the request it is serving, and returns once all are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    tracing::info!(
        header_read_timeout_secs = limits.header_read_timeout.as_secs(),
        body_read_timeout_secs = limits.body_read_timeout.as_secs(),
        idle_timeout_secs = limits.idle_timeout.as_secs(),
        max_request_body_size = limits.max_request_body_size,
        max_header_size = limits.max_header_size,
        max_connections = limits.max_connections,
        "HTTP limits"
    );
    // The body limit is this layer's (see `LimitedBody`), one for every handler.
    let router = router.layer(DefaultBodyLimit::disable());
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (pressure_tx, pressure_rx) = watch::channel(false);
    let mut last_warned: Option<Instant> = None;
    let mut stop = std::pin::pin!(stop);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if last_warned.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection cap reached: new connections wait for a slot; idle ones are closed"
                    );
                    last_warned = Some(Instant::now());
                }
                pressure_tx.send_replace(true);
                let slot = tokio::select! {
                    slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                    _ = &mut stop => break,
                };
                pressure_tx.send_replace(false);
                slot
            }
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        tokio::spawn(connection(
            tcp,
            peer,
            router.clone(),
            limits.clone(),
            Signals {
                shutdown: shutdown_rx.clone(),
                pressure: pressure_rx.clone(),
            },
            slot,
        ));
    }
    drop(listener);
    shutdown_tx.send_replace(true);
    // Every connection holds a slot until it ends: all slots back, all connections ended.
    let _all = slots.acquire_many(limits.max_connections).await;
    Ok(())
}

/// As axum's `serve` does: an aborted handshake is the client's business; anything else
/// (out of file descriptors, say) is logged and retried after a pause.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accepting a connection failed: {e}; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// What the accept loop tells every connection.
struct Signals {
    /// The server is stopping: finish the request being served, take no other.
    shutdown: watch::Receiver<bool>,
    /// New connections wait for a slot: an idle connection should make room.
    pressure: watch::Receiver<bool>,
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Arc<HttpLimits>,
    mut signals: Signals,
    _slot: OwnedSemaphorePermit,
) {
    let clock = Arc::new(Clock::new(limits.clone()));
    let io = TokioIo::new(Watched {
        io: tcp,
        clock: clock.clone(),
    });
    let service = {
        let clock = clock.clone();
        let limits = limits.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            clock.set(Phase::Handling);
            let watch = BodyWatch {
                max_size: limits.max_request_body_size,
                read_timeout: limits.body_read_timeout,
                failed: Arc::new(AtomicU8::new(BODY_OK)),
            };
            let mut req = req.map(|body| {
                Body::new(LimitedBody {
                    inner: body,
                    read: 0,
                    deadline: Instant::now() + limits.body_read_timeout,
                    timer: None,
                    watch: watch.clone(),
                })
            });
            req.extensions_mut().insert(watch);
            let answer = tower_service::Service::call(&mut router.clone(), req);
            let clock = clock.clone();
            // Boxed: the connection is polled without being pinned, so that its socket
            // can be taken back for a lingering close.
            Box::pin(async move {
                let resp = answer.await?;
                clock.set(Phase::Sending {
                    deadline: clock.after(clock.limits.idle_timeout),
                    body_done: false,
                });
                Ok::<_, Infallible>(resp.map(|body| ResponseBody { inner: body, clock }))
            })
        })
    };
    let mut builder = http1::Builder::new();
    // The header deadline is the clock's: hyper's would also close kept-alive
    // connections after the header timeout, not the idle one.
    builder
        .header_read_timeout(None)
        .max_header_size(limits.max_header_size);
    let mut conn = builder.serve_connection(io, service);
    let mut stopping = false;
    let served = loop {
        tokio::select! {
            served = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => break served,
            why = clock.expired(&mut signals.pressure) => {
                // Dropping the connection closes the socket.
                tracing::debug!(%peer, "connection closed: {why}");
                return;
            }
            _ = signals.shutdown.wait_for(|s| *s), if !stopping => {
                stopping = true;
                Pin::new(&mut conn).graceful_shutdown();
            }
        }
    };
    match served {
        Ok(()) => linger(conn.into_parts().io.into_inner().io).await,
        Err(e) => tracing::debug!(%peer, "connection ended: {e}"),
    }
}

/// How long, and how many bytes, a closing connection reads and discards of what its
/// client is still sending.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 4 << 20;

/// Closes a connection whose last answer is written as a lingering close does: the write
/// side first, then what the client still sends (a body answered 413 before it was read)
/// is read and discarded for a moment. Closing with unread bytes would make the kernel
/// reset the connection, and the client could lose the answer it had not read yet.
async fn linger(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if tcp.shutdown().await.is_err() {
        return;
    }
    let until = Instant::now() + LINGER;
    let (mut buf, mut left) = (vec![0u8; 16 << 10], LINGER_BYTES);
    while left > 0 {
        match tokio::time::timeout_at(until, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}

/// Where a connection is, and until when it may stay there.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request's headers.
    Head { deadline: Instant },
    /// A request is being handled; its body has its own deadline (`LimitedBody`).
    Handling,
    /// The response is going out; every write the client lets through moves the
    /// deadline. `body_done` once the whole body is handed to hyper.
    Sending { deadline: Instant, body_done: bool },
    /// Between requests, everything sent.
    Idle { deadline: Instant },
}

/// Why a connection was closed by its clock.
#[derive(Debug)]
enum Expired {
    TimedOut(Phase),
    Reclaimed,
}

impl std::fmt::Display for Expired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expired::TimedOut(Phase::Head { .. }) => f.write_str("request headers not in time"),
            Expired::TimedOut(Phase::Sending { .. }) => {
                f.write_str("client read none of its response in time")
            }
            Expired::TimedOut(_) => f.write_str("idle too long"),
            Expired::Reclaimed => f.write_str("idle, and its slot is wanted"),
        }
    }
}

/// A connection's phase, moved by its socket (bytes in, bytes out) and by its service
/// (request in, response out).
struct Clock {
    phase: Mutex<Phase>,
    changed: Notify,
    limits: Arc<HttpLimits>,
}

impl Clock {
    fn new(limits: Arc<HttpLimits>) -> Clock {
        Clock {
            phase: Mutex::new(Phase::Head {
                deadline: Instant::now() + limits.header_read_timeout,
            }),
            changed: Notify::new(),
            limits,
        }
    }

    fn after(&self, d: Duration) -> Instant {
        Instant::now() + d
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, phase: Phase) {
        *self.lock() = phase;
        self.changed.notify_one();
    }

    /// Bytes came in: the first of a request starts its header deadline.
    fn read(&self) {
        let mut phase = self.lock();
        if let Phase::Idle { .. } = *phase {
            *phase = Phase::Head {
                deadline: self.after(self.limits.header_read_timeout),
            };
            drop(phase);
            self.changed.notify_one();
        }
    }

    /// Bytes went out: the client is reading.
    fn wrote(&self) {
        if let Phase::Sending { deadline, .. } = &mut *self.lock() {
            // Later, never earlier: the watchdog sees it when it wakes.
            *deadline = self.after(self.limits.idle_timeout);
        }
    }

    /// Everything written so far is on its way: if that was the whole response, the
    /// connection is idle.
    fn flushed(&self) {
        let mut phase = self.lock();
        if let Phase::Sending {
            body_done: true, ..
        } = *phase
        {
            *phase = Phase::Idle {
                deadline: self.after(self.limits.idle_timeout),
            };
            drop(phase);
            self.changed.notify_one();
        }
    }

    fn response_body_done(&self) {
        if let Phase::Sending { body_done, .. } = &mut *self.lock() {
            *body_done = true;
        }
    }

    /// Completes when the connection must be closed: its phase's deadline passed, or it
    /// is idle while new connections wait for a slot.
    async fn expired(&self, pressure: &mut watch::Receiver<bool>) -> Expired {
        let mut pressure_open = true;
        loop {
            let phase = *self.lock();
            let deadline = match phase {
                Phase::Head { deadline } | Phase::Sending { deadline, .. } => Some(deadline),
                Phase::Idle { deadline } => {
                    if *pressure.borrow_and_update() {
                        return Expired::Reclaimed;
                    }
                    Some(deadline)
                }
                Phase::Handling => None,
            };
            if let Some(deadline) = deadline
                && deadline <= Instant::now()
            {
                return Expired::TimedOut(phase);
            }
            tokio::select! {
                _ = sleep_until(deadline) => {}
                _ = self.changed.notified() => {}
                changed = pressure.changed(), if pressure_open => {
                    pressure_open = changed.is_ok();
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The socket, telling the connection's clock when bytes move.
struct Watched {
    io: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.io).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.clock.read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.io).poll_write(cx, buf))?;
        if n > 0 {
            self.clock.wrote();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, bufs))?;
        if n > 0 {
            self.clock.wrote();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        self.clock.flushed();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A response body that tells the connection's clock when hyper is done with it.
struct ResponseBody {
    inner: Body,
    clock: Arc<Clock>,
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.clock.response_body_done();
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

const BODY_OK: u8 = 0;
const BODY_TOO_LARGE: u8 = 1;
const BODY_TIMED_OUT: u8 = 2;

/// How a request's body failed, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFailure {
    /// More than `max_size` bytes.
    TooLarge,
    /// Not all in within `read_timeout` of the headers.
    TimedOut,
}

/// Put in every request's extensions: the limits its body is read under, and whether it
/// broke one, so the API answers 413 or 408 whatever its handler made of the broken body.
#[derive(Debug, Clone)]
pub struct BodyWatch {
    pub max_size: u64,
    pub read_timeout: Duration,
    failed: Arc<AtomicU8>,
}

impl BodyWatch {
    pub fn failure(&self) -> Option<BodyFailure> {
        match self.failed.load(Ordering::Acquire) {
            BODY_TOO_LARGE => Some(BodyFailure::TooLarge),
            BODY_TIMED_OUT => Some(BodyFailure::TimedOut),
            _ => None,
        }
    }

    fn fail(&self, how: u8) -> BodyError {
        self.failed.store(how, Ordering::Release);
        BodyError(if how == BODY_TOO_LARGE {
            BodyFailure::TooLarge
        } else {
            BodyFailure::TimedOut
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("request body: {0:?}")]
struct BodyError(BodyFailure);

/// A request body read under the size limit and the body deadline.
struct LimitedBody {
    inner: Incoming,
    read: u64,
    deadline: Instant,
    /// Made the first time the body is waited for: most bodies come with their headers.
    timer: Option<Pin<Box<Sleep>>>,
    watch: BodyWatch,
}

impl http_body::Body for LimitedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.watch.failure().is_some() {
            return Poll::Ready(None);
        }
        // A declared length over the limit is refused before a byte of it is read.
        if this.read == 0
            && this
                .inner
                .size_hint()
                .exact()
                .is_some_and(|n| n > this.watch.max_size)
        {
            return Poll::Ready(Some(Err(this.watch.fail(BODY_TOO_LARGE).into())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.read += data.len() as u64;
                    if this.read > this.watch.max_size {
                        return Poll::Ready(Some(Err(this.watch.fail(BODY_TOO_LARGE).into())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(this.watch.fail(BODY_TIMED_OUT).into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
