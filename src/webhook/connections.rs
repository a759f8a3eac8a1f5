//! The connections of a listener: the slots of those still waiting for their first request
//! (the oldest pushed out when one more arrives), the activity of each (requests in flight,
//! when it turns idle), why pullcheck closes one, and how they are counted.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::service::TowerToHyperService;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ListenerLabels {
    pub(super) listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ClosedLabels {
    pub(super) listener: &'static str,
    pub(super) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct StateLabels {
    pub(super) listener: &'static str,
    pub(super) state: &'static str,
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

    pub(super) fn label(self) -> &'static str {
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
    pub(super) refused: Family<ListenerLabels, Counter>,
    pub(super) closed: Family<ClosedLabels, Counter>,
    pub(super) open: Family<StateLabels, Gauge>,
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
    pub(super) fn of(&self, listener: &'static str) -> ListenerMetrics {
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

pub(super) struct ListenerMetrics {
    pub(super) refused: Counter,
    pub(super) closed: [Counter; 5],
    pub(super) handshaking: Gauge,
    pub(super) serving: Gauge,
}

impl ListenerMetrics {
    pub(super) fn closed(&self, why: Closed) {
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
pub(super) struct Waiting {
    pub(super) max: usize,
    pub(super) queue: Mutex<Queue>,
}

#[derive(Default)]
pub(super) struct Queue {
    pub(super) last_id: u64,
    /// Each connection's id and the signal that tells it to go.
    pub(super) waiting: VecDeque<(u64, Arc<Notify>)>,
}

impl Waiting {
    pub(super) fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new connection; when `max` are waiting already, the oldest is told to go.
    pub(super) fn admit(self: &Arc<Self>) -> Ticket {
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
pub(super) struct Ticket {
    pub(super) waiting: Arc<Waiting>,
    pub(super) id: u64,
    pub(super) evict: Arc<Notify>,
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
pub(super) struct Activity {
    pub(super) epoch: Instant,
    pub(super) in_flight: AtomicUsize,
    /// Milliseconds after `epoch` when the last request finished.
    pub(super) last_done_ms: AtomicU64,
    pub(super) requested: AtomicBool,
    pub(super) ticket: Mutex<Option<Ticket>>,
    /// `pullcheck_connections{state="handshake"}` and `{state="open"}` of the listener.
    pub(super) handshaking: Gauge,
    pub(super) serving: Gauge,
}

impl Activity {
    pub(super) fn requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    pub(super) fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if !self.requested.load(Ordering::Relaxed) && !self.requested.swap(true, Ordering::AcqRel) {
            // The first request: no longer among the waiting connections.
            drop(self.ticket.lock().unwrap_or_else(|e| e.into_inner()).take());
            self.handshaking.dec();
            self.serving.inc();
        }
    }

    /// Takes the connection off the gauges when it closes.
    pub(super) fn closed(&self) {
        if self.requested() {
            self.serving.dec();
        } else {
            self.handshaking.dec();
        }
    }

    pub(super) fn finished(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_done_ms.store(ms, Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// When the connection becomes idle if nothing happens; None while a request runs.
    pub(super) fn idle_at(&self, idle: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let done = Duration::from_millis(self.last_done_ms.load(Ordering::Acquire));
        Some(self.epoch + done + idle)
    }
}

/// The hyper service of one connection: the router, with each request counted in flight.
#[derive(Clone)]
pub(super) struct Tracked {
    pub(super) inner: TowerToHyperService<Router>,
    pub(super) activity: Arc<Activity>,
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
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finished();
    }
}

pin_project_lite::pin_project! {
    pub(super) struct Tracking<F> {
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
