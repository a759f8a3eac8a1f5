//! Events about what the scan found, one per object and cause, refreshed as a series.
//!
//! client-go's and kube-runtime's recorders would create a new Event at every scan: their
//! series end after 6 minutes of silence, and a scan comes every 10. So the [`Recorder`]
//! keeps its own map, (regarded object's uid, container, reason, image, cause) → Event, for
//! as long as the cause persists: the first occurrence creates the Event, each later one
//! PATCHes its `series` (count and lastObservedTime; this also renews the API server's
//! one-hour `--event-ttl`), an Event gone meanwhile (404) is created anew, and a cause no
//! longer seen is forgotten (its Event expires). A replica that takes over first reads the
//! Events written before it ([`Recorder::adopt`]) and continues them. Occurrences between
//! scans (the Pod watch) patch a series at most once per `min_interval`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::diagnose::Agreement;
use super::run::{StuckLine, WorkloadLine};
use crate::cluster::events::{EventSink, NewEvent, ObjectRef};
use crate::cluster::view::{api_version, field_path};
use crate::cluster::ClusterError;
use crate::kubelet::workload::{ImageSlot, WorkloadKind};

/// Reason of the Event on a workload whose image would no longer pull.
pub const IMAGE_NOT_PULLABLE: &str = "ImageNotPullable";
/// Reason of the Event on a Pod stuck pulling.
pub const DIAGNOSIS: &str = "PullcheckDiagnosis";

/// Most (object, cause) pairs followed; beyond, no new Event is written (never a flood).
const MAX_ENTRIES: usize = 50_000;
/// Event writes in flight at once (client-go's recorder has 8 workers).
const WRITERS: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    uid: String,
    field_path: Option<String>,
    reason: String,
    image: String,
    cause: String,
}

impl Key {
    fn of(event: &NewEvent) -> Self {
        Self {
            uid: event.regarding.uid.clone(),
            field_path: event.regarding.field_path.clone(),
            reason: event.reason.clone(),
            image: event.image.clone(),
            cause: event.cause.clone(),
        }
    }
}

struct Entry {
    namespace: String,
    name: String,
    /// Occurrences so far (the series count once above 1).
    count: i32,
    /// The count the API server has.
    written: i32,
    last_write: Instant,
    /// The scan that saw it last.
    seen: u64,
}

/// What the recorder wrote (for logs and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub created: usize,
    pub patched: usize,
    pub failed: usize,
}

/// One Event per object and cause, as a series.
pub struct Recorder {
    sink: Arc<dyn EventSink>,
    instance: String,
    entries: Mutex<HashMap<Key, Entry>>,
    min_interval: Duration,
    generation: AtomicU64,
}

impl Recorder {
    /// `instance`: the `reportingInstance` (the Lease holder's identity).
    pub fn new(sink: Arc<dyn EventSink>, instance: &str, min_interval: Duration) -> Self {
        Self {
            sink,
            instance: instance.to_owned(),
            entries: Mutex::new(HashMap::new()),
            min_interval,
            generation: AtomicU64::new(0),
        }
    }

    /// Takes over the Events pullcheck wrote before (any replica's); how many.
    pub async fn adopt(&self) -> Result<usize, ClusterError> {
        let reported = self.sink.reported().await?;
        let mut entries = self.entries.lock().await;
        let seen = self.generation.load(Ordering::Relaxed);
        let mut n = 0;
        for r in reported {
            if entries.len() >= MAX_ENTRIES {
                break;
            }
            let key = Key {
                uid: r.regarding.uid.clone(),
                field_path: r.regarding.field_path.clone(),
                reason: r.reason.clone(),
                image: r.image.clone(),
                cause: r.cause.clone(),
            };
            entries.insert(
                key,
                Entry {
                    namespace: r.namespace,
                    name: r.name,
                    count: r.count,
                    written: r.count,
                    last_write: Instant::now(),
                    seen,
                },
            );
            n += 1;
        }
        Ok(n)
    }

    /// Starts a scan: occurrences from now on belong to it.
    pub fn begin_scan(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Records one occurrence: creates the Event the first time; else counts it and, when
    /// `refresh` or `min_interval` has passed since the last write, patches the series.
    pub async fn record(&self, event: NewEvent, refresh: bool) -> Written {
        let key = Key::of(&event);
        let seen = self.generation.load(Ordering::Relaxed);
        let mut out = Written::default();
        let write = {
            let mut entries = self.entries.lock().await;
            let full = entries.len() >= MAX_ENTRIES;
            match entries.get_mut(&key) {
                Some(e) => {
                    e.count = e.count.saturating_add(1);
                    e.seen = seen;
                    (refresh || e.last_write.elapsed() >= self.min_interval)
                        .then(|| (e.namespace.clone(), e.name.clone(), e.count))
                }
                None if full => {
                    tracing::warn!(
                        max = MAX_ENTRIES,
                        "too many (object, cause) pairs followed: no new Event written"
                    );
                    return out;
                }
                None => None,
            }
        };
        match write {
            Some((namespace, name, count)) => {
                match self.sink.observe(&namespace, &name, count).await {
                    Ok(true) => {
                        out.patched += 1;
                        if let Some(e) = self.entries.lock().await.get_mut(&key) {
                            e.written = count;
                            e.last_write = Instant::now();
                        }
                    }
                    // Expired or deleted: a new Event.
                    Ok(false) => {
                        self.entries.lock().await.remove(&key);
                        self.create(key, event, seen, &mut out).await;
                    }
                    Err(e) => {
                        out.failed += 1;
                        tracing::warn!(error = %e, event = %name, "cannot update the series of an Event");
                    }
                }
            }
            None => {
                let exists = self.entries.lock().await.contains_key(&key);
                if !exists {
                    self.create(key, event, seen, &mut out).await;
                }
            }
        }
        out
    }

    async fn create(&self, key: Key, mut event: NewEvent, seen: u64, out: &mut Written) {
        event.reporting_instance.clone_from(&self.instance);
        match self.sink.create(&event).await {
            Ok(name) => {
                out.created += 1;
                self.entries.lock().await.insert(
                    key,
                    Entry {
                        namespace: event.regarding.namespace.clone(),
                        name,
                        count: 1,
                        written: 1,
                        last_write: Instant::now(),
                        seen,
                    },
                );
            }
            Err(e) => {
                out.failed += 1;
                tracing::warn!(error = %e, reason = %event.reason, object = %event.regarding.name, "cannot create an Event");
            }
        }
    }

    /// Records a scan's findings (each a series refreshed), then forgets the causes the
    /// scan (and the Pod watch during it) no longer saw.
    pub async fn record_scan(
        &self,
        workloads: &[WorkloadLine],
        stuck: &[StuckLine],
        generation: u64,
    ) -> Written {
        let events: Vec<NewEvent> = workloads
            .iter()
            .filter_map(|l| self.not_pullable(l))
            .chain(stuck.iter().map(|l| self.diagnosis(l)))
            .collect();
        let total = futures::stream::iter(events)
            .map(|e| self.record(e, true))
            .buffer_unordered(WRITERS)
            .fold(Written::default(), |mut a, w| async move {
                a.created += w.created;
                a.patched += w.patched;
                a.failed += w.failed;
                a
            })
            .await;
        self.entries
            .lock()
            .await
            .retain(|_, e| e.seen >= generation);
        total
    }

    /// (object, cause) pairs followed now.
    pub async fn followed(&self) -> usize {
        self.entries.lock().await.len()
    }

    /// The `ImageNotPullable` Event of a line, when its finding is definite.
    pub fn not_pullable(&self, l: &WorkloadLine) -> Option<NewEvent> {
        let class = l.class.filter(|c| c.is_definite())?;
        let field_path = l.slot.map(|slot| template_path(l.kind, slot, &l.container));
        Some(NewEvent {
            regarding: ObjectRef {
                api_version: api_version(l.kind).to_owned(),
                kind: l.kind.as_str().to_owned(),
                namespace: l.namespace.clone(),
                name: l.name.clone(),
                uid: l.uid.clone(),
                field_path,
            },
            reason: IMAGE_NOT_PULLABLE.to_owned(),
            action: "Scan".to_owned(),
            note: format!("pullcheck: {}", l.sentence),
            reporting_instance: self.instance.clone(),
            image: l.image.clone(),
            cause: class.as_str().to_owned(),
        })
    }

    /// The `PullcheckDiagnosis` Event of a stuck container.
    pub fn diagnosis(&self, l: &StuckLine) -> NewEvent {
        let what = match l.agreement {
            Agreement::Agrees | Agreement::Differs | Agreement::Uncertain => l.verdict.clone(),
            _ => l.kubelet_cause.as_str().to_owned(),
        };
        NewEvent {
            regarding: ObjectRef {
                api_version: "v1".to_owned(),
                kind: "Pod".to_owned(),
                namespace: l.namespace.clone(),
                name: l.pod.clone(),
                uid: l.uid.clone(),
                field_path: Some(field_path(l.slot, &l.container)),
            },
            reason: DIAGNOSIS.to_owned(),
            action: "Diagnose".to_owned(),
            note: format!("pullcheck ({}): {}", l.agreement.as_str(), l.meaning),
            reporting_instance: self.instance.clone(),
            image: l.image.clone(),
            cause: format!("{}/{what}", l.agreement.as_str()),
        }
    }
}

/// `spec.template.spec.containers{web}` (CronJobs: under `spec.jobTemplate`).
fn template_path(kind: WorkloadKind, slot: ImageSlot, container: &str) -> String {
    let inner = field_path(slot, container);
    match kind {
        WorkloadKind::Pod => inner,
        WorkloadKind::CronJob => format!("spec.jobTemplate.spec.template.{inner}"),
        _ => format!("spec.template.{inner}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::view::MemoryView;

    fn event(uid: &str, cause: &str) -> NewEvent {
        NewEvent {
            regarding: ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: "a".into(),
                name: "web".into(),
                uid: uid.into(),
                field_path: Some("spec.template.spec.containers{web}".into()),
            },
            reason: IMAGE_NOT_PULLABLE.into(),
            action: "Scan".into(),
            note: "pullcheck: container \"web\" (r/web:1): tag \"1\" does not exist".into(),
            reporting_instance: String::new(),
            image: "r/web:1".into(),
            cause: cause.into(),
        }
    }

    #[tokio::test]
    async fn one_event_per_object_and_cause_then_its_series() {
        let view = Arc::new(MemoryView::new());
        let r = Recorder::new(view.clone(), "pullcheck-0", Duration::from_secs(60));
        for scan in 1..=4 {
            let g = r.begin_scan();
            let w = r.record(event("u1", "tag_not_found"), true).await;
            assert_eq!(
                (w.created, w.patched),
                if scan == 1 { (1, 0) } else { (0, 1) }
            );
            r.entries.lock().await.retain(|_, e| e.seen >= g);
        }
        let events = view.events();
        assert_eq!(events.len(), 1, "created once, not per scan");
        assert_eq!(events[0].count, 4);
        assert_eq!(events[0].event.reporting_instance, "pullcheck-0");
        assert_eq!(view.calls("create"), 1);
        assert_eq!(view.calls("observe"), 3);

        // Another cause on the same object: its own Event.
        r.record(event("u1", "unauthorized"), true).await;
        assert_eq!(view.events().len(), 2);

        // Between scans, repeats only count until min_interval has passed.
        let w = r.record(event("u1", "unauthorized"), false).await;
        assert_eq!(w, Written::default());
        assert_eq!(view.calls("observe"), 3);
    }

    #[tokio::test]
    async fn an_expired_event_is_created_anew_and_a_new_leader_adopts_the_rest() {
        let view = Arc::new(MemoryView::new());
        let r = Recorder::new(view.clone(), "a", Duration::from_secs(60));
        r.record(event("u1", "tag_not_found"), true).await;
        r.record(event("u2", "tag_not_found"), true).await;
        r.record(event("u2", "tag_not_found"), true).await;
        let first = view
            .events()
            .into_iter()
            .find(|e| e.event.regarding.uid == "u1")
            .unwrap();
        view.expire_event("a", &first.name);
        let w = r.record(event("u1", "tag_not_found"), true).await;
        assert_eq!((w.created, w.patched), (1, 0));
        assert_eq!(view.events().len(), 2);

        // Replica b takes over: it continues both series, creating nothing.
        let b = Recorder::new(view.clone(), "b", Duration::from_secs(60));
        assert_eq!(b.adopt().await, Ok(2));
        let w = b.record(event("u2", "tag_not_found"), true).await;
        assert_eq!((w.created, w.patched), (0, 1));
        let u2 = view
            .events()
            .into_iter()
            .find(|e| e.event.regarding.uid == "u2")
            .unwrap();
        assert_eq!(u2.count, 3);
        assert_eq!(view.calls("create"), 3);
    }

    #[tokio::test]
    async fn causes_no_longer_seen_are_forgotten() {
        let view = Arc::new(MemoryView::new());
        let r = Recorder::new(view.clone(), "a", Duration::from_secs(60));
        let g = r.begin_scan();
        r.record(event("u1", "tag_not_found"), true).await;
        r.entries.lock().await.retain(|_, e| e.seen >= g);
        assert_eq!(r.followed().await, 1);
        let g = r.begin_scan();
        r.record_scan(&[], &[], g).await;
        assert_eq!(r.followed().await, 0);
        // It comes back: a new Event (the old one expires with the API server's TTL).
        r.record(event("u1", "tag_not_found"), true).await;
        assert_eq!(view.calls("create"), 2);
    }
}
