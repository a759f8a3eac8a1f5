//! The cluster view: what runs, read for `pullcheck scan` and the background scan of
//! `serve` — workloads and Pods of every kind the webhook knows, listed page by page and
//! decoded into the few fields a scan needs ([`Listed`]: identity, controller, the PodSpec
//! subset that decides pulls, replicas or suspension, and for Pods the containers waiting
//! on an image), the kubelet's `Failed` events of a Pod, a Node's `DiskPressure`, and a
//! stream of live Pods as they change.
//!
//! [`ClusterView`] is the trait; [`KubeView`] speaks to the API server (kube-rs, lean
//! decoding: a 100,000-Pod cluster is read 500 Pods at a time and what a Pod holds beyond
//! those fields is never kept), [`MemoryView`] is the in-memory double the engine's tests
//! run on. The same two types write Events ([`super::events::EventSink`]) and hold the
//! scan's Lease ([`super::lease::Leases`]).
//!
//! Depends on: [`crate::kubelet`] (PodSpecs, the kubelet's pull-failure reasons),
//! [`crate::text`].

mod decode;
mod kube;
mod memory;

use futures::stream::BoxStream;

pub use self::kube::{KubeView, LIST_PAGE_SIZE};
pub use memory::MemoryView;

use super::ClusterError;
use crate::kubelet::workload::{ImageSlot, PodSpec, WorkloadKind};

/// Pods in these phases never pull again: not listed, not watched.
pub const LIVE_PODS: &str = "status.phase!=Succeeded,status.phase!=Failed";

/// The controller (`ownerReferences[]` with `controller: true`) of an object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    /// `apps/v1`, `batch/v1`, `argoproj.io/v1alpha1`, …
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
}

/// Whether a workload runs anything now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scale {
    Active,
    /// `spec.replicas: 0`; a DaemonSet whose nodeSelector matches no node.
    ScaledToZero,
    /// A Job or CronJob with `spec.suspend: true`.
    Suspended,
}

impl Scale {
    /// `active`, `scaled_to_zero`, `suspended`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::ScaledToZero => "scaled_to_zero",
            Self::Suspended => "suspended",
        }
    }
}

/// A container waiting on its image, as the kubelet reports it in the Pod's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stuck {
    pub slot: ImageSlot,
    pub container: String,
    /// The image of the container's status (as the kubelet pulls it), else of the spec.
    pub image: String,
    /// `state.waiting.reason`: one of the kubelet's pull-failure reasons.
    pub reason: String,
    /// `state.waiting.message` (at most [`crate::text::MESSAGE_LIMIT`] bytes).
    pub message: String,
}

/// What a Pod's status says about pulls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodState {
    /// `status.phase`.
    pub phase: String,
    /// Containers (of every kind) waiting on an image pull.
    pub stuck: Vec<Stuck>,
}

/// One object of a workload kind, as a scan needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub controller: Option<Owner>,
    /// The PodSpec subset (`None` when listed metadata-only).
    pub spec: Option<PodSpec>,
    pub scale: Scale,
    /// Pods only.
    pub pod: Option<PodState>,
}

/// How much of each object a list returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Full,
    /// `metadata` only (`PartialObjectMetadataList`): enough to see owners.
    Metadata,
}

/// One page of a list.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Listed>,
    /// The `continue` token of the next page; `None` on the last.
    pub next: Option<String>,
}

/// A kubelet `Failed to pull image "x": …` event of a Pod (core/v1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullEvent {
    /// `involvedObject.fieldPath`: `spec.containers{web}`, `spec.initContainers{x}`, …
    pub field_path: String,
    pub message: String,
    /// `count` (1 when absent).
    pub count: i32,
    /// `lastTimestamp` (or `eventTime`), RFC 3339, for ordering; "" when absent.
    pub last_seen: String,
}

/// A Node's condition that explains a failed pull the registry does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeHealth {
    /// `DiskPressure` is `True`.
    pub disk_pressure: bool,
    /// Its message, when it has one.
    pub message: String,
}

/// A live Pod changed (the background scan's watch).
#[derive(Clone, Debug, PartialEq)]
pub enum PodChange {
    Applied(Box<Listed>),
    Deleted { uid: String },
}

/// What a scan reads from the cluster.
#[async_trait::async_trait]
pub trait ClusterView: Send + Sync {
    /// One page of the objects of `kind` (all namespaces, or one); Pods in a final phase
    /// (Succeeded, Failed) are left out. `token`: the previous page's `next`.
    async fn list(
        &self,
        kind: WorkloadKind,
        namespace: Option<&str>,
        shape: Shape,
        token: Option<&str>,
    ) -> Result<Page, ClusterError>;

    /// The kubelet's `Failed to pull image` events of one Pod (by uid), newest last.
    async fn pull_events(
        &self,
        namespace: &str,
        pod_uid: &str,
    ) -> Result<Vec<PullEvent>, ClusterError>;

    /// A Node's health; `Ok(None)` when the Node does not exist.
    async fn node_health(&self, node: &str) -> Result<Option<NodeHealth>, ClusterError>;

    /// Live Pods as they change, from a first listing on; never ends (errors are retried
    /// with a backoff inside).
    fn pod_changes(&self) -> BoxStream<'static, PodChange>;
}

/// The apiVersion of a kind (for Event `regarding` references).
pub fn api_version(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Pod | WorkloadKind::ReplicationController => "v1",
        WorkloadKind::Job | WorkloadKind::CronJob => "batch/v1",
        _ => "apps/v1",
    }
}

/// The resource (plural) of a kind.
pub fn plural(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Pod => "pods",
        WorkloadKind::Deployment => "deployments",
        WorkloadKind::ReplicaSet => "replicasets",
        WorkloadKind::StatefulSet => "statefulsets",
        WorkloadKind::DaemonSet => "daemonsets",
        WorkloadKind::Job => "jobs",
        WorkloadKind::CronJob => "cronjobs",
        WorkloadKind::ReplicationController => "replicationcontrollers",
    }
}

/// The Event `fieldPath` of a container: `spec.containers{web}`, like the kubelet's.
pub fn field_path(slot: ImageSlot, container: &str) -> String {
    let list = match slot {
        ImageSlot::InitContainer => "initContainers",
        ImageSlot::EphemeralContainer => "ephemeralContainers",
        ImageSlot::Container | ImageSlot::ImageVolume => "containers",
    };
    format!("spec.{list}{{{container}}}")
}
