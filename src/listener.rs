//! The accept loop of `pullcheck serve`: TCP (`TCP_NODELAY`), TLS with rustls (certificate
//! and client CA re-read when they change, see [`crate::tls::ServerTls`]), HTTP/2 and
//! HTTP/1.1 with hyper, and the limits that keep silent or hostile peers from holding the
//! server:
//!
//! - **at most `max_connections` open connections**; one more is closed at accept (counted
//!   in `pullcheck_connections_refused_total`), before any TLS work;
//! - **at most `max_handshakes` of them before their first request** (TCP that never says a
//!   word, TLS handshakes, HTTP/2 prefaces): when one more arrives, the *oldest* of them is
//!   closed. Someone opening raw TCP connections therefore holds at most this many slots, and
//!   to push out a real client's handshake has to open `max_handshakes` connections within
//!   the few milliseconds that handshake takes (refusing the newest instead would let 64
//!   silent connections every `handshake_timeout` lock every new client out);
//! - **`handshake_timeout` from accept to the first request's headers** (TLS handshake,
//!   HTTP/2 preface and first HEADERS, or an HTTP/1.1 request line and headers);
//! - **`idle_timeout`**: a connection with no request in flight for this long is closed
//!   gracefully (HTTP/2 GOAWAY: streams already started finish), and dropped if the peer does
//!   not let it close within [`CLOSE_GRACE`];
//! - **HTTP/2 keep-alive PINGs** after `keepalive_interval` of silence; a PING unanswered
//!   within that interval (at most [`KEEPALIVE_TIMEOUT`]) closes the connection (a peer
//!   that vanished, even with a review in flight);
//! - HTTP/1.1 request headers must arrive within `handshake_timeout` too.
//!
//! Established connections are never closed to make room: the API server keeps its HTTP/2
//! connections open and multiplexes its reviews over them, so they keep working while the
//! limits refuse everybody else.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::Limits;
use crate::tls::ServerTls;

/// A keep-alive PING unanswered for this long (or the interval, when shorter) closes the
/// connection.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection closed for idleness that does not close within this long is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClosedLabels {
    listener: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    listener: &'static str,
    state: &'static str,
}

/// Why pullcheck closed a connection (the `reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// No TLS handshake and first request within `handshake_timeout`.
    HandshakeTimeout,
    /// Pushed out by a newer connection while `max_handshakes` were waiting.
    Evicted,
    /// The TLS handshake failed (no or an untrusted client certificate, not TLS, …).
    TlsError,
    /// No request in flight for `idle_timeout`.
    Idle,
    /// The server is stopping.
    Shutdown,
}

impl Closed {
    const ALL: [Closed; 5] = [
        Closed::HandshakeTimeout,
        Closed::Evicted,
        Closed::TlsError,
        Closed::Idle,
        Closed::Shutdown,
    ];

    fn label(self) -> &'static str {
        match self {
            Closed::HandshakeTimeout => "handshake_timeout",
            Closed::Evicted => "handshake_evicted",
            Closed::TlsError => "tls_error",
            Closed::Idle => "idle",
            Closed::Shutdown => "shutdown",
        }
    }
}

/// The connection metrics of every listener (registered once).
#[derive(Clone)]
pub struct ConnectionMetrics {
    refused: Family<ListenerLabels, Counter>,
    closed: Family<ClosedLabels, Counter>,
    open: Family<StateLabels, Gauge>,
}

impl ConnectionMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let refused = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections closed at accept because maxConnections were open",
            refused.clone(),
        );
        let closed = Family::<ClosedLabels, Counter>::default();
        registry.register(
            "connections_closed",
            "Connections closed by pullcheck, by reason (handshake_timeout, handshake_evicted, tls_error, idle, shutdown)",
            closed.clone(),
        );
        let open = Family::<StateLabels, Gauge>::default();
        registry.register(
            "connections",
            "Open connections: before their first request (handshake) or serving (open)",
            open.clone(),
        );
        Self {
            refused,
            closed,
            open,
        }
    }

    /// The counters and gauges of one listener, looked up once.
    fn of(&self, listener: &'static str) -> ListenerMetrics {
        let closed = Closed::ALL.map(|reason| {
            self.closed
                .get_or_create(&ClosedLabels {
                    listener,
                    reason: reason.label(),
                })
                .clone()
        });
        let state = |state| {
            self.open
                .get_or_create(&StateLabels { listener, state })
                .clone()
        };
        ListenerMetrics {
            refused: self
                .refused
                .get_or_create(&ListenerLabels { listener })
                .clone(),
            closed,
            handshaking: state("handshake"),
            serving: state("open"),
        }
    }
}

struct ListenerMetrics {
    refused: Counter,
    closed: [Counter; 5],
    handshaking: Gauge,
    serving: Gauge,
}

impl ListenerMetrics {
    fn closed(&self, why: Closed) {
        if let Some(c) = Closed::ALL
            .iter()
            .position(|&r| r == why)
            .and_then(|i| self.closed.get(i))
        {
            c.inc();
        }
    }
}

/// Connections waiting for their first request, oldest first.
struct Waiting {
    max: usize,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    last_id: u64,
    /// Each connection's id and the signal that tells it to go.
    waiting: VecDeque<(u64, Arc<Notify>)>,
}

impl Waiting {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new connection; when `max` are waiting already, the oldest is told to go.
    fn admit(self: &Arc<Self>) -> Ticket {
        let evict = Arc::new(Notify::new());
        let mut q = self.lock();
        q.last_id += 1;
        let id = q.last_id;
        while q.waiting.len() >= self.max {
            match q.waiting.pop_front() {
                Some((_, oldest)) => oldest.notify_one(),
                None => break,
            }
        }
        q.waiting.push_back((id, Arc::clone(&evict)));
        Ticket {
            waiting: Arc::clone(self),
            id,
            evict,
        }
    }
}

/// A connection's place among the waiting ones; left on its first request or when dropped.
struct Ticket {
    waiting: Arc<Waiting>,
    id: u64,
    evict: Arc<Notify>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut q = self.waiting.lock();
        if let Some(i) = q.waiting.iter().position(|(id, _)| *id == self.id) {
            q.waiting.remove(i);
        }
    }
}

/// What the connection's task and its requests share.
struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `epoch` when the last request finished.
    last_done_ms: AtomicU64,
    requested: AtomicBool,
    ticket: Mutex<Option<Ticket>>,
    /// `pullcheck_connections{state="handshake"}` and `{state="open"}` of the listener.
    handshaking: Gauge,
    serving: Gauge,
}

impl Activity {
    fn requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if !self.requested.load(Ordering::Relaxed) && !self.requested.swap(true, Ordering::AcqRel) {
            // The first request: no longer among the waiting connections.
            drop(self.ticket.lock().unwrap_or_else(|e| e.into_inner()).take());
            self.handshaking.dec();
            self.serving.inc();
        }
    }

    /// Takes the connection off the gauges when it closes.
    fn closed(&self) {
        if self.requested() {
            self.serving.dec();
        } else {
            self.handshaking.dec();
        }
    }

    fn finished(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_done_ms.store(ms, Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// When the connection becomes idle if nothing happens; None while a request runs.
    fn idle_at(&self, idle: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let done = Duration::from_millis(self.last_done_ms.load(Ordering::Acquire));
        Some(self.epoch + done + idle)
    }
}

/// The hyper service of one connection: the router, with each request counted in flight.
#[derive(Clone)]
struct Tracked {
    inner: TowerToHyperService<Router>,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response =
        <TowerToHyperService<Router> as hyper::service::Service<Request<Incoming>>>::Response;
    type Error = <TowerToHyperService<Router> as hyper::service::Service<Request<Incoming>>>::Error;
    type Future = Tracking<
        <TowerToHyperService<Router> as hyper::service::Service<Request<Incoming>>>::Future,
    >;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.activity.started();
        Tracking {
            inner: self.inner.call(req),
            _in_flight: InFlight(Arc::clone(&self.activity)),
        }
    }
}

/// Marks a request finished when its answer is ready (or the request is dropped).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finished();
    }
}

pin_project_lite::pin_project! {
    struct Tracking<F> {
        #[pin]
        inner: F,
        _in_flight: InFlight,
    }
}

impl<F: Future> Future for Tracking<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

/// One listening socket with its router, TLS (or none: the metrics listener) and limits.
pub struct Listener {
    /// `webhook` or `metrics` (the `listener` label).
    pub name: &'static str,
    pub tcp: TcpListener,
    pub tls: Option<Arc<ServerTls>>,
    pub router: Router,
    pub limits: Limits,
    pub metrics: ConnectionMetrics,
}

/// Shared by the connections of one listener.
struct Shared {
    name: &'static str,
    tls: Option<Arc<ServerTls>>,
    service: TowerToHyperService<Router>,
    builder: auto::Builder<TokioExecutor>,
    limits: Limits,
    waiting: Arc<Waiting>,
    metrics: ListenerMetrics,
    shutdown: watch::Receiver<bool>,
    /// Milliseconds after `epoch` of the last "limit reached" warning.
    warned_ms: AtomicU64,
    epoch: Instant,
}

impl Listener {
    /// Binds `addr`.
    pub async fn bind(
        name: &'static str,
        addr: SocketAddr,
        tls: Option<Arc<ServerTls>>,
        router: Router,
        limits: Limits,
        metrics: ConnectionMetrics,
    ) -> std::io::Result<Self> {
        Ok(Self {
            name,
            tcp: TcpListener::bind(addr).await?,
            tls,
            router,
            limits,
            metrics,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Serves until `shutdown` turns true, then stops accepting, closes every connection
    /// gracefully (requests in flight finish) and returns when they are all closed, or after
    /// `grace`.
    pub async fn serve(self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let limits = self.limits;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.handshake_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(limits.keepalive_interval)
            .keep_alive_timeout(limits.keepalive_interval.min(KEEPALIVE_TIMEOUT));
        let shared = Arc::new(Shared {
            name: self.name,
            tls: self.tls,
            service: TowerToHyperService::new(self.router),
            builder,
            limits,
            waiting: Arc::new(Waiting {
                max: limits.max_handshakes.max(1),
                queue: Mutex::new(Queue::default()),
            }),
            metrics: self.metrics.of(self.name),
            shutdown: shutdown.clone(),
            warned_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        loop {
            let accepted = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                accepted = self.tcp.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(error) => {
                    // Out of file descriptors (or memory): back off rather than spin.
                    if shared.should_warn() {
                        tracing::warn!(listener = shared.name, %error, "cannot accept connections");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                shared.metrics.refused.inc();
                if shared.should_warn() {
                    tracing::warn!(
                        listener = shared.name,
                        max_connections = limits.max_connections,
                        "connection limit reached: refusing new connections (see pullcheck_connections_refused_total)"
                    );
                }
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let ticket = shared.waiting.admit();
            shared.metrics.handshaking.inc();
            tokio::spawn(connection(Arc::clone(&shared), tcp, peer, ticket, slot));
        }
        // Stop accepting at once (a connection left in the backlog would hang), then wait
        // for every connection to give its slot back.
        drop(self.tcp);
        let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(grace, slots.acquire_many(all)).await;
    }
}

impl Shared {
    /// At most one "limit reached" warning every 10 s.
    fn should_warn(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.warned_ms.load(Ordering::Relaxed);
        (last == 0 || now.saturating_sub(last) >= 10_000)
            && self
                .warned_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// One connection, from accept to close.
async fn connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    _slot: OwnedSemaphorePermit,
) {
    let deadline = Instant::now() + shared.limits.handshake_timeout;
    let evict = Arc::clone(&ticket.evict);
    let mut shutdown = shared.shutdown.clone();
    let activity = Arc::new(Activity {
        epoch: Instant::now(),
        in_flight: AtomicUsize::new(0),
        last_done_ms: AtomicU64::new(0),
        requested: AtomicBool::new(false),
        ticket: Mutex::new(Some(ticket)),
        handshaking: shared.metrics.handshaking.clone(),
        serving: shared.metrics.serving.clone(),
    });
    let closed = match &shared.tls {
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
            let handshake = tokio::select! {
                biased;
                () = evict.notified() => Err(Closed::Evicted),
                _ = shutdown.wait_for(|stop| *stop) => Err(Closed::Shutdown),
                r = tokio::time::timeout_at(deadline, acceptor.accept(tcp)) => match r {
                    Ok(Ok(stream)) => Ok(stream),
                    Ok(Err(error)) => {
                        tracing::debug!(listener = shared.name, %peer, %error, "TLS handshake failed");
                        Err(Closed::TlsError)
                    }
                    Err(_) => Err(Closed::HandshakeTimeout),
                },
            };
            match handshake {
                Ok(stream) => http(&shared, stream, &activity, &evict, deadline).await,
                Err(why) => Some(why),
            }
        }
        None => http(&shared, tcp, &activity, &evict, deadline).await,
    };
    if let Some(why) = closed {
        tracing::debug!(listener = shared.name, %peer, reason = why.label(), "connection closed");
        shared.metrics.closed(why);
    }
    activity.closed();
}

/// HTTP on an established (TLS or plain) stream; returns why pullcheck closed it, if it did.
async fn http<IO>(
    shared: &Shared,
    io: IO,
    activity: &Arc<Activity>,
    evict: &Notify,
    first_request_by: Instant,
) -> Option<Closed>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = Tracked {
        inner: shared.service.clone(),
        activity: Arc::clone(activity),
    };
    let conn = shared
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut shutdown = shared.shutdown.clone();
    let idle = shared.limits.idle_timeout;
    let mut check_at = first_request_by;
    // Set once pullcheck asked the connection to close: why.
    let mut closing: Option<Closed> = None;
    loop {
        tokio::select! {
            biased;
            _ = conn.as_mut() => return closing,
            () = evict.notified(), if !activity.requested() => {
                // Pushed out just as its first request came: that request wins.
                if !activity.requested() {
                    return Some(Closed::Evicted);
                }
            }
            _ = shutdown.wait_for(|stop| *stop), if closing.is_none() => {
                if !activity.requested() {
                    return Some(Closed::Shutdown);
                }
                conn.as_mut().graceful_shutdown();
                closing = Some(Closed::Shutdown);
                // The listener gives up waiting after its grace period.
                check_at = Instant::now() + crate::server::SHUTDOWN_GRACE;
            }
            () = tokio::time::sleep_until(check_at) => {
                if let Some(why) = closing {
                    // Asked to close and still open: drop it.
                    return Some(why);
                }
                if !activity.requested() {
                    return Some(Closed::HandshakeTimeout);
                }
                let now = Instant::now();
                match activity.idle_at(idle) {
                    Some(at) if at <= now => {
                        conn.as_mut().graceful_shutdown();
                        closing = Some(Closed::Idle);
                        check_at = now + CLOSE_GRACE;
                    }
                    Some(at) => check_at = at,
                    None => check_at = now + idle,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(max: usize) -> Arc<Waiting> {
        Arc::new(Waiting {
            max,
            queue: Mutex::new(Queue::default()),
        })
    }

    fn told_to_go(t: &Ticket) -> bool {
        futures::FutureExt::now_or_never(t.evict.notified()).is_some()
    }

    #[test]
    fn the_oldest_waiting_connection_is_pushed_out_when_one_more_arrives() {
        let w = waiting(2);
        let a = w.admit();
        let b = w.admit();
        assert!(!told_to_go(&a) && !told_to_go(&b));
        let c = w.admit();
        assert!(told_to_go(&a), "the oldest goes");
        assert!(!told_to_go(&b) && !told_to_go(&c));
        // A connection that got its first request (its ticket dropped) leaves room.
        drop(b);
        let d = w.admit();
        assert!(!told_to_go(&c) && !told_to_go(&d));
        assert_eq!(w.lock().waiting.len(), 2);
        drop((a, c, d));
        assert!(w.lock().waiting.is_empty());
    }

    #[test]
    fn idle_time_counts_from_the_last_finished_request_and_not_while_one_runs() {
        let metrics = ConnectionMetrics::register(&mut Registry::default()).of("test");
        let activity = Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
            requested: AtomicBool::new(false),
            ticket: Mutex::new(Some(waiting(1).admit())),
            handshaking: metrics.handshaking.clone(),
            serving: metrics.serving.clone(),
        };
        metrics.handshaking.inc();
        let idle = Duration::from_secs(60);
        assert_eq!(activity.idle_at(idle), Some(activity.epoch + idle));
        activity.started();
        assert!(activity.requested());
        assert!(
            activity.ticket.lock().unwrap().is_none(),
            "left the waiting ones"
        );
        assert_eq!((metrics.handshaking.get(), metrics.serving.get()), (0, 1));
        assert_eq!(activity.idle_at(idle), None, "a request is in flight");
        std::thread::sleep(Duration::from_millis(20));
        activity.finished();
        let at = activity.idle_at(idle).unwrap();
        assert!(at >= activity.epoch + idle + Duration::from_millis(20));
        activity.closed();
        assert_eq!(metrics.serving.get(), 0);
    }
}
