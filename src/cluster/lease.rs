//! Leader election with a coordination.k8s.io/v1 Lease, as client-go's
//! `tools/leaderelection` does it: the holder renews every `retry_period`; a candidate
//! takes the Lease over only once it has seen the record unchanged for
//! `leaseDurationSeconds` *on its own clock* (never from `renewTime`: nodes' clocks differ);
//! every write is a PUT carrying the resourceVersion it read, so of two candidates one gets
//! 409 Conflict — that is the whole mutual exclusion; a holder that cannot renew within
//! `renew_deadline` steps down (before followers may take over: 10 s < 15 s by default);
//! and a holder that stops releases the Lease (`holderIdentity: ""`,
//! `leaseDurationSeconds: 1`) so a follower takes over at its next try.
//!
//! [`Leases`] is the API ([`super::view::KubeView`] over kube-rs, [`super::view::MemoryView`]
//! in memory); [`Elector`] is the algorithm.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec as KubeLeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::time::Instant;

use super::kube::{classify, valid_namespace, valid_object_name};
use super::view::KubeView;
use super::ClusterError;

/// Microseconds since the epoch (MicroTime precision).
pub type Micros = i64;

/// Now, in [`Micros`].
pub fn now_micros() -> Micros {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A Lease's `spec` as the election uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseSpec {
    /// `""`: released.
    pub holder: String,
    pub duration_seconds: i32,
    pub acquire_time: Micros,
    pub renew_time: Micros,
    pub transitions: i32,
}

/// A Lease as read: its spec and the resourceVersion a write must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRecord {
    pub spec: LeaseSpec,
    pub resource_version: String,
}

/// Reads and writes one Lease.
#[async_trait::async_trait]
pub trait Leases: Send + Sync {
    /// `Ok(None)` when it does not exist.
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<LeaseRecord>, ClusterError>;
    /// `Ok(None)` when another candidate created it first (409 AlreadyExists).
    async fn create(
        &self,
        namespace: &str,
        name: &str,
        spec: &LeaseSpec,
    ) -> Result<Option<LeaseRecord>, ClusterError>;
    /// PUT with the resourceVersion read; `Ok(None)` when it changed since (409 Conflict).
    async fn update(
        &self,
        namespace: &str,
        name: &str,
        resource_version: &str,
        spec: &LeaseSpec,
    ) -> Result<Option<LeaseRecord>, ClusterError>;
}

/// The three durations of an election (client-go's defaults: 15 s, 10 s, 2 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a follower waits, after it last saw the record change, before taking over.
    pub duration: Duration,
    /// How long a holder keeps trying to renew before it steps down.
    pub renew_deadline: Duration,
    /// Time between tries.
    pub retry_period: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl LeaseTiming {
    /// client-go's rules: duration > renew deadline > 1.2 × retry period > 0, and whole
    /// seconds for the duration (`leaseDurationSeconds`).
    pub fn validate(&self) -> Result<(), String> {
        if self.retry_period.is_zero() {
            return Err("the lease retry period must be above 0".into());
        }
        if self.duration <= self.renew_deadline {
            return Err(format!(
                "the lease duration ({:?}) must be longer than the renew deadline ({:?})",
                self.duration, self.renew_deadline
            ));
        }
        if self.renew_deadline <= self.retry_period.mul_f64(1.2) {
            return Err(format!(
                "the renew deadline ({:?}) must be longer than 1.2 × the retry period ({:?})",
                self.renew_deadline, self.retry_period
            ));
        }
        if self.duration.as_secs() == 0 || self.duration.subsec_nanos() != 0 {
            return Err(format!(
                "the lease duration must be whole seconds, not {:?}",
                self.duration
            ));
        }
        Ok(())
    }

    fn seconds(&self) -> i32 {
        i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// One candidate of an election.
pub struct Elector {
    leases: Arc<dyn Leases>,
    namespace: String,
    name: String,
    identity: String,
    timing: LeaseTiming,
    /// The last record seen, and when (on this process's clock) it last changed.
    observed: Option<(LeaseRecord, Instant)>,
    leader: bool,
}

impl Elector {
    /// Err when `timing` breaks client-go's rules or `identity` is empty.
    pub fn new(
        leases: Arc<dyn Leases>,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: LeaseTiming,
    ) -> Result<Self, String> {
        timing.validate()?;
        if identity.is_empty() {
            return Err("the lease identity is empty".into());
        }
        Ok(Self {
            leases,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            observed: None,
            leader: false,
        })
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn timing(&self) -> LeaseTiming {
        self.timing
    }

    /// Whether the last try made (or kept) this candidate the holder.
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// The holder seen last ("" when released or unknown).
    pub fn holder(&self) -> &str {
        self.observed
            .as_ref()
            .map_or("", |(r, _)| r.spec.holder.as_str())
    }

    /// Remembers a record read or written; the clock restarts only when it changed.
    fn observe(&mut self, record: LeaseRecord, now: Instant) {
        if let Some((seen, _)) = &mut self.observed {
            if seen.spec == record.spec {
                // Same record: only the resourceVersion to write with moves on.
                seen.resource_version = record.resource_version;
                return;
            }
        }
        self.observed = Some((record, now));
    }

    /// Whether the record seen last is still within its duration, measured from when this
    /// candidate saw it change.
    fn observed_valid(&self, now: Instant) -> bool {
        self.observed.as_ref().is_some_and(|(r, at)| {
            let secs = u64::try_from(r.spec.duration_seconds.max(0)).unwrap_or(0);
            *at + Duration::from_secs(secs) > now
        })
    }

    /// client-go's `tryAcquireOrRenew`: `Ok(true)` when this candidate holds the Lease
    /// after the try.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, ClusterError> {
        let now = Instant::now();
        let wall = now_micros();
        let mut desired = LeaseSpec {
            holder: self.identity.clone(),
            duration_seconds: self.timing.seconds(),
            acquire_time: wall,
            renew_time: wall,
            transitions: 0,
        };
        // Fast path: still the holder by our own observation: renew directly.
        if self.leader && self.observed_valid(now) {
            if let Some((seen, _)) = &self.observed {
                desired.acquire_time = seen.spec.acquire_time;
                desired.transitions = seen.spec.transitions;
                let rv = seen.resource_version.clone();
                if let Ok(Some(record)) = self
                    .leases
                    .update(&self.namespace, &self.name, &rv, &desired)
                    .await
                {
                    self.observe(record, now);
                    return Ok(true);
                }
            }
        }
        let current = self.leases.get(&self.namespace, &self.name).await;
        let current = current.inspect_err(|_| self.leader = false)?;
        let Some(current) = current else {
            let created = self
                .leases
                .create(&self.namespace, &self.name, &desired)
                .await;
            return self.settle(created, now);
        };
        self.observe(current.clone(), now);
        let held_by_other = !current.spec.holder.is_empty() && current.spec.holder != self.identity;
        if held_by_other && self.observed_valid(now) {
            self.leader = false;
            return Ok(false);
        }
        if current.spec.holder == self.identity {
            desired.acquire_time = current.spec.acquire_time;
            desired.transitions = current.spec.transitions;
        } else {
            desired.transitions = current.spec.transitions.saturating_add(1);
        }
        let updated = self
            .leases
            .update(
                &self.namespace,
                &self.name,
                &current.resource_version,
                &desired,
            )
            .await;
        self.settle(updated, now)
    }

    /// Takes the answer to a create or an update: leader when the API server took the
    /// write, follower when another candidate's came first (409), follower on an error.
    fn settle(
        &mut self,
        written: Result<Option<LeaseRecord>, ClusterError>,
        now: Instant,
    ) -> Result<bool, ClusterError> {
        let written = written.inspect_err(|_| self.leader = false)?;
        self.leader = written.is_some();
        if let Some(record) = written {
            self.observe(record, now);
        }
        Ok(self.leader)
    }

    /// Gives the Lease up (holder `""`, duration 1 s) if this candidate holds it, so a
    /// follower takes over at its next try instead of after the full duration.
    pub async fn release(&mut self) -> Result<(), ClusterError> {
        if !self.leader {
            return Ok(());
        }
        self.leader = false;
        for _ in 0..2 {
            let Some((seen, _)) = self.observed.clone() else {
                return Ok(());
            };
            if seen.spec.holder != self.identity {
                return Ok(());
            }
            let wall = now_micros();
            let spec = LeaseSpec {
                holder: String::new(),
                duration_seconds: 1,
                acquire_time: wall,
                renew_time: wall,
                transitions: seen.spec.transitions,
            };
            match self
                .leases
                .update(&self.namespace, &self.name, &seen.resource_version, &spec)
                .await?
            {
                Some(record) => {
                    self.observe(record, Instant::now());
                    return Ok(());
                }
                // Changed since we read it: read again, release if it is still ours.
                None => match self.leases.get(&self.namespace, &self.name).await? {
                    Some(record) => self.observe(record, Instant::now()),
                    None => return Ok(()),
                },
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// kube-rs
// ---------------------------------------------------------------------------------------

fn micro(t: Micros) -> MicroTime {
    MicroTime(Timestamp::from_microsecond(t).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn kube_spec(spec: &LeaseSpec) -> KubeLeaseSpec {
    KubeLeaseSpec {
        holder_identity: Some(spec.holder.clone()),
        lease_duration_seconds: Some(spec.duration_seconds),
        acquire_time: Some(micro(spec.acquire_time)),
        renew_time: Some(micro(spec.renew_time)),
        lease_transitions: Some(spec.transitions),
        ..KubeLeaseSpec::default()
    }
}

fn record(lease: Lease) -> LeaseRecord {
    let spec = lease.spec.unwrap_or_default();
    LeaseRecord {
        spec: LeaseSpec {
            holder: spec.holder_identity.unwrap_or_default(),
            duration_seconds: spec.lease_duration_seconds.unwrap_or(0),
            acquire_time: spec.acquire_time.map_or(0, |t| t.0.as_microsecond()),
            renew_time: spec.renew_time.map_or(0, |t| t.0.as_microsecond()),
            transitions: spec.lease_transitions.unwrap_or(0),
        },
        resource_version: lease.metadata.resource_version.unwrap_or_default(),
    }
}

impl KubeView {
    fn lease_api(&self, namespace: &str, name: &str) -> Result<Api<Lease>, ClusterError> {
        if !valid_namespace(namespace) || !valid_object_name(name) {
            return Err(ClusterError::Unexpected {
                detail: format!("Lease {namespace}/{name}: not a valid name"),
            });
        }
        Ok(Api::namespaced(self.client.clone(), namespace))
    }

    /// A write's answer: 409 is `Ok(None)` (another candidate wrote first).
    async fn lease_write(
        &self,
        what: &str,
        write: impl std::future::Future<Output = Result<Lease, kube::Error>>,
    ) -> Result<Option<LeaseRecord>, ClusterError> {
        match tokio::time::timeout(self.timeout, write).await {
            Ok(Ok(lease)) => Ok(Some(record(lease))),
            Ok(Err(kube::Error::Api(status))) if status.code == 409 => Ok(None),
            Ok(Err(e)) => Err(classify(what, e)),
            Err(_) => Err(ClusterError::Unavailable {
                detail: format!("{what}: no answer within {} ms", self.timeout.as_millis()),
            }),
        }
    }
}

#[async_trait::async_trait]
impl Leases for KubeView {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<LeaseRecord>, ClusterError> {
        let api = self.lease_api(namespace, name)?;
        let what = format!("get Lease {namespace}/{name}");
        let found = super::kube::timed(&what, self.timeout, api.get_opt(name)).await?;
        Ok(found.map(record))
    }

    async fn create(
        &self,
        namespace: &str,
        name: &str,
        spec: &LeaseSpec,
    ) -> Result<Option<LeaseRecord>, ClusterError> {
        let api = self.lease_api(namespace, name)?;
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(kube_spec(spec)),
        };
        let what = format!("create Lease {namespace}/{name}");
        self.lease_write(&what, api.create(&PostParams::default(), &lease))
            .await
    }

    async fn update(
        &self,
        namespace: &str,
        name: &str,
        resource_version: &str,
        spec: &LeaseSpec,
    ) -> Result<Option<LeaseRecord>, ClusterError> {
        let api = self.lease_api(namespace, name)?;
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                resource_version: Some(resource_version.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(kube_spec(spec)),
        };
        let what = format!("update Lease {namespace}/{name}");
        self.lease_write(&what, api.replace(name, &PostParams::default(), &lease))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::view::MemoryView;

    fn timing() -> LeaseTiming {
        LeaseTiming {
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    fn elector(view: &Arc<MemoryView>, who: &str) -> Elector {
        Elector::new(view.clone(), "pullcheck", "pullcheck-scan", who, timing()).unwrap()
    }

    #[test]
    fn timing_follows_client_gos_rules() {
        assert_eq!(LeaseTiming::default().validate(), Ok(()));
        let mut t = timing();
        t.renew_deadline = Duration::from_secs(15);
        assert!(t.validate().unwrap_err().contains("renew deadline"));
        let mut t = timing();
        t.retry_period = Duration::from_secs(9);
        assert!(t.validate().unwrap_err().contains("1.2"));
        let mut t = timing();
        t.duration = Duration::from_millis(15_500);
        assert!(t.validate().unwrap_err().contains("whole seconds"));
        assert!(Elector::new(Arc::new(MemoryView::new()), "a", "b", "", timing()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn one_holder_and_a_takeover_measured_on_the_followers_clock() {
        let view = Arc::new(MemoryView::new());
        let mut a = elector(&view, "a");
        let mut b = elector(&view, "b");
        assert_eq!(a.try_acquire_or_renew().await, Ok(true));
        assert_eq!(b.try_acquire_or_renew().await, Ok(false));
        assert_eq!(b.holder(), "a");
        // a renews; b sees the record change and keeps waiting.
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(2)).await;
            assert_eq!(a.try_acquire_or_renew().await, Ok(true));
            assert_eq!(b.try_acquire_or_renew().await, Ok(false));
        }
        // a stops without releasing: b takes over only 15 s after it last saw a change,
        // whatever renewTime says.
        tokio::time::advance(Duration::from_secs(14)).await;
        assert_eq!(b.try_acquire_or_renew().await, Ok(false));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(b.try_acquire_or_renew().await, Ok(true));
        let lease = view.lease("pullcheck", "pullcheck-scan").unwrap();
        assert_eq!(lease.spec.holder, "b");
        assert_eq!(lease.spec.transitions, 1);
        // a comes back: it sees b's record (new to it), so it waits in turn.
        assert_eq!(a.try_acquire_or_renew().await, Ok(false));
        assert!(!a.is_leader());
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_lease_is_taken_at_the_next_try() {
        let view = Arc::new(MemoryView::new());
        let mut a = elector(&view, "a");
        let mut b = elector(&view, "b");
        assert_eq!(a.try_acquire_or_renew().await, Ok(true));
        assert_eq!(b.try_acquire_or_renew().await, Ok(false));
        a.release().await.unwrap();
        let released = view.lease("pullcheck", "pullcheck-scan").unwrap();
        assert_eq!(released.spec.holder, "");
        assert_eq!(released.spec.duration_seconds, 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(b.try_acquire_or_renew().await, Ok(true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_conflict_loses_the_race() {
        let view = Arc::new(MemoryView::new());
        let mut a = elector(&view, "a");
        let mut b = elector(&view, "b");
        assert_eq!(a.try_acquire_or_renew().await, Ok(true));
        b.try_acquire_or_renew().await.unwrap();
        tokio::time::advance(Duration::from_secs(16)).await;
        // Someone writes between b's read and b's update: b's PUT carries a stale
        // resourceVersion and gets 409.
        view.write_lease_before_next_update("pullcheck", "pullcheck-scan", "c");
        assert_eq!(b.try_acquire_or_renew().await, Ok(false));
        assert_eq!(
            view.lease("pullcheck", "pullcheck-scan")
                .unwrap()
                .spec
                .holder,
            "c"
        );
    }
}
