//! The accept loop of `pullcheck serve`: TCP (`TCP_NODELAY`), TLS with rustls (certificate
//! and client CA re-read when they change, see [`crate::webhook::tls::ServerTls`]), HTTP/2 and
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

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::Limits;
use crate::webhook::tls::ServerTls;

use super::connections::{
    Activity, Closed, ConnectionMetrics, ListenerMetrics, Queue, Ticket, Tracked, Waiting,
};

/// A keep-alive PING unanswered for this long (or the interval, when shorter) closes the
/// connection.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection closed for idleness that does not close within this long is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(10);

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
                check_at = Instant::now() + crate::webhook::http::SHUTDOWN_GRACE;
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
