//! [`MemoryView`]: the cluster view, Event sink and Lease store in memory, for tests of the
//! scan's logic. Lists are paginated like the API server's (so is a metadata-only list);
//! Events are checked against the API server's rules that matter to pullcheck (a series
//! starts at 2, only the series changes); Lease writes carry resourceVersions (409 on a
//! stale one). Every call is counted.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::{ClusterView, Listed, NodeHealth, Page, PodChange, PullEvent, Shape};
use crate::cluster::events::{event_name, EventSink, NewEvent, ReportedEvent, NOTE_LIMIT};
use crate::cluster::lease::{LeaseRecord, LeaseSpec, Leases};
use crate::cluster::ClusterError;
use crate::kubelet::workload::WorkloadKind;

/// An Event as the in-memory sink keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub name: String,
    pub event: NewEvent,
    /// `series.count` (1 before the first repeat).
    pub count: i32,
}

#[derive(Default)]
struct State {
    /// By (kind, namespace, name).
    objects: BTreeMap<(&'static str, String, String), Listed>,
    /// (namespace, pod uid, event).
    pull_events: Vec<(String, String, PullEvent)>,
    nodes: BTreeMap<String, NodeHealth>,
    page_size: usize,
    failure: Option<ClusterError>,
    calls: BTreeMap<&'static str, usize>,
    events: BTreeMap<(String, String), StoredEvent>,
    leases: BTreeMap<(String, String), LeaseRecord>,
    rv: u64,
    /// Written by another candidate just before the next update (to test 409).
    interloper: Option<(String, String, String)>,
}

/// The in-memory cluster view.
pub struct MemoryView {
    state: Mutex<State>,
    pods: broadcast::Sender<PodChange>,
}

impl Default for MemoryView {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryView {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                page_size: 500,
                ..State::default()
            }),
            pods: broadcast::channel(1024).0,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Objects per page.
    pub fn set_page_size(&self, n: usize) {
        self.state().page_size = n.max(1);
    }

    /// Adds or replaces an object (a Pod also goes to open Pod watches).
    pub fn put(&self, object: Listed) {
        let key = (
            object.kind.as_str(),
            object.namespace.clone(),
            object.name.clone(),
        );
        if object.kind == WorkloadKind::Pod {
            let _ = self.pods.send(PodChange::Applied(Box::new(object.clone())));
        }
        self.state().objects.insert(key, object);
    }

    pub fn delete(&self, kind: WorkloadKind, namespace: &str, name: &str) {
        let removed =
            self.state()
                .objects
                .remove(&(kind.as_str(), namespace.to_owned(), name.to_owned()));
        if let Some(o) = removed.filter(|o| o.kind == WorkloadKind::Pod) {
            let _ = self.pods.send(PodChange::Deleted { uid: o.uid });
        }
    }

    pub fn add_pull_event(&self, namespace: &str, pod_uid: &str, event: PullEvent) {
        self.state()
            .pull_events
            .push((namespace.to_owned(), pod_uid.to_owned(), event));
    }

    pub fn set_node(&self, name: &str, health: NodeHealth) {
        self.state().nodes.insert(name.to_owned(), health);
    }

    /// While set, every list, read and write answers this error.
    pub fn fail_with(&self, error: Option<ClusterError>) {
        self.state().failure = error;
    }

    /// Calls so far of `list`, `pull_events`, `node_health`, `create`, `observe`,
    /// `reported`, `lease_get`, `lease_create`, `lease_update`.
    pub fn calls(&self, what: &str) -> usize {
        self.state().calls.get(what).copied().unwrap_or(0)
    }

    /// The Events written, by (namespace, name).
    pub fn events(&self) -> Vec<StoredEvent> {
        self.state().events.values().cloned().collect()
    }

    /// Deletes an Event (as the API server's TTL does).
    pub fn expire_event(&self, namespace: &str, name: &str) {
        self.state()
            .events
            .remove(&(namespace.to_owned(), name.to_owned()));
    }

    pub fn lease(&self, namespace: &str, name: &str) -> Option<LeaseRecord> {
        self.state()
            .leases
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Before the next Lease update, another candidate `holder` writes the Lease.
    pub fn write_lease_before_next_update(&self, namespace: &str, name: &str, holder: &str) {
        self.state().interloper = Some((namespace.to_owned(), name.to_owned(), holder.to_owned()));
    }

    fn call(&self, what: &'static str) -> Result<MutexGuard<'_, State>, ClusterError> {
        let mut state = self.state();
        *state.calls.entry(what).or_default() += 1;
        match &state.failure {
            Some(e) => Err(e.clone()),
            None => Ok(state),
        }
    }
}

fn next_rv(state: &mut State) -> String {
    state.rv += 1;
    state.rv.to_string()
}

#[async_trait::async_trait]
impl ClusterView for MemoryView {
    async fn list(
        &self,
        kind: WorkloadKind,
        namespace: Option<&str>,
        shape: Shape,
        token: Option<&str>,
    ) -> Result<Page, ClusterError> {
        let state = self.call("list")?;
        let skip: usize = match token {
            Some(t) => t.parse().map_err(|_| ClusterError::Unexpected {
                detail: format!("invalid continue token {t:?}"),
            })?,
            None => 0,
        };
        let matching: Vec<&Listed> = state
            .objects
            .values()
            .filter(|o| o.kind == kind && namespace.is_none_or(|ns| o.namespace == ns))
            .filter(|o| {
                o.pod
                    .as_ref()
                    .is_none_or(|p| p.phase != "Succeeded" && p.phase != "Failed")
            })
            .collect();
        let items: Vec<Listed> = matching
            .iter()
            .skip(skip)
            .take(state.page_size)
            .map(|o| match shape {
                Shape::Full => (*o).clone(),
                Shape::Metadata => Listed {
                    spec: None,
                    pod: None,
                    ..(*o).clone()
                },
            })
            .collect();
        let end = skip + items.len();
        Ok(Page {
            items,
            next: (end < matching.len()).then(|| end.to_string()),
        })
    }

    async fn pull_events(
        &self,
        namespace: &str,
        pod_uid: &str,
    ) -> Result<Vec<PullEvent>, ClusterError> {
        let state = self.call("pull_events")?;
        Ok(state
            .pull_events
            .iter()
            .filter(|(ns, uid, _)| ns == namespace && uid == pod_uid)
            .map(|(_, _, e)| e.clone())
            .collect())
    }

    async fn node_health(&self, node: &str) -> Result<Option<NodeHealth>, ClusterError> {
        let state = self.call("node_health")?;
        Ok(state.nodes.get(node).cloned())
    }

    fn pod_changes(&self) -> BoxStream<'static, PodChange> {
        let receiver = self.pods.subscribe();
        let current: Vec<PodChange> = self
            .state()
            .objects
            .values()
            .filter(|o| o.kind == WorkloadKind::Pod)
            .map(|o| PodChange::Applied(Box::new(o.clone())))
            .collect();
        let later = futures::stream::unfold(receiver, |mut r| async move {
            loop {
                match r.recv().await {
                    Ok(change) => return Some((change, r)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        futures::stream::iter(current).chain(later).boxed()
    }
}

#[async_trait::async_trait]
impl EventSink for MemoryView {
    async fn create(&self, event: &NewEvent) -> Result<String, ClusterError> {
        let mut state = self.call("create")?;
        if event.note.len() > NOTE_LIMIT {
            return Err(ClusterError::Unexpected {
                detail: format!(
                    "Event note of {} bytes: must be at most {NOTE_LIMIT}",
                    event.note.len()
                ),
            });
        }
        let mut name = event_name(&event.regarding.name, SystemTime::now());
        while state
            .events
            .contains_key(&(event.regarding.namespace.clone(), name.clone()))
        {
            name.push('0');
        }
        state.events.insert(
            (event.regarding.namespace.clone(), name.clone()),
            StoredEvent {
                name: name.clone(),
                event: event.clone(),
                count: 1,
            },
        );
        Ok(name)
    }

    async fn observe(&self, namespace: &str, name: &str, count: i32) -> Result<bool, ClusterError> {
        let mut state = self.call("observe")?;
        if count < 2 {
            return Err(ClusterError::Unexpected {
                detail: format!("Event {namespace}/{name}: series.count must be at least 2"),
            });
        }
        Ok(
            match state
                .events
                .get_mut(&(namespace.to_owned(), name.to_owned()))
            {
                Some(stored) => {
                    stored.count = count;
                    true
                }
                None => false,
            },
        )
    }

    async fn reported(&self) -> Result<Vec<ReportedEvent>, ClusterError> {
        let state = self.call("reported")?;
        Ok(state
            .events
            .iter()
            .map(|((ns, name), s)| ReportedEvent {
                namespace: ns.clone(),
                name: name.clone(),
                regarding: s.event.regarding.clone(),
                reason: s.event.reason.clone(),
                image: s.event.image.clone(),
                cause: s.event.cause.clone(),
                count: s.count,
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl Leases for MemoryView {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<LeaseRecord>, ClusterError> {
        let state = self.call("lease_get")?;
        Ok(state
            .leases
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned())
    }

    async fn create(
        &self,
        namespace: &str,
        name: &str,
        spec: &LeaseSpec,
    ) -> Result<Option<LeaseRecord>, ClusterError> {
        let mut state = self.call("lease_create")?;
        let key = (namespace.to_owned(), name.to_owned());
        if state.leases.contains_key(&key) {
            return Ok(None);
        }
        let record = LeaseRecord {
            spec: spec.clone(),
            resource_version: next_rv(&mut state),
        };
        state.leases.insert(key, record.clone());
        Ok(Some(record))
    }

    async fn update(
        &self,
        namespace: &str,
        name: &str,
        resource_version: &str,
        spec: &LeaseSpec,
    ) -> Result<Option<LeaseRecord>, ClusterError> {
        let mut state = self.call("lease_update")?;
        let key = (namespace.to_owned(), name.to_owned());
        if let Some((ns, n, holder)) = state.interloper.take() {
            if let Some(mut other) = state.leases.get(&(ns.clone(), n.clone())).cloned() {
                other.spec.holder = holder;
                other.resource_version = next_rv(&mut state);
                state.leases.insert((ns, n), other);
            }
        }
        match state.leases.get(&key) {
            Some(current) if current.resource_version == resource_version => {}
            Some(_) => return Ok(None),
            None => {
                return Err(ClusterError::Unexpected {
                    detail: format!("update Lease {namespace}/{name}: HTTP 404"),
                })
            }
        }
        let record = LeaseRecord {
            spec: spec.clone(),
            resource_version: next_rv(&mut state),
        };
        state.leases.insert(key, record.clone());
        Ok(Some(record))
    }
}
