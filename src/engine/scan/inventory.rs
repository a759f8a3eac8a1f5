//! What runs, folded to what decides it: every workload kind the webhook knows is listed
//! (page by page), and each pod template is checked once, where it is written.
//!
//! - Deployments, StatefulSets, DaemonSets, CronJobs and ReplicationControllers are
//!   checked on their own (scaled to zero or suspended ones too, marked);
//! - ReplicaSets owned by a Deployment and Jobs owned by a CronJob are folded into their
//!   owner: they are listed metadata-only, and only the namespaces holding others are
//!   listed in full (old ReplicaSets of a Deployment's history are many);
//! - Pods of a ReplicaSet, StatefulSet, DaemonSet, Job or ReplicationController are
//!   covered by that owner's template; bare Pods are checked on their own; a Pod of a
//!   controller pullcheck cannot read (an operator's resource) is checked once per such
//!   controller, on its behalf;
//! - every Pod with a container waiting on an image is kept to be explained.
//!
//! Pods are read 500 at a time and only these are kept: a 100,000-Pod cluster costs the
//! Pods it checks or explains, not the others.

use std::collections::{BTreeSet, HashSet};

use crate::cluster::view::{ClusterView, Listed, Owner, Scale, Shape, Stuck};
use crate::kubelet::workload::{PodSpec, WorkloadKind};
use crate::text::glob_match;

/// Kinds checked where they are written.
const TOP_KINDS: [WorkloadKind; 5] = [
    WorkloadKind::Deployment,
    WorkloadKind::StatefulSet,
    WorkloadKind::DaemonSet,
    WorkloadKind::CronJob,
    WorkloadKind::ReplicationController,
];

/// A pod template (or a Pod) to check.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub scale: Scale,
    /// `None` when the object had no readable pod template.
    pub spec: Option<PodSpec>,
    /// A Pod checked for a controller pullcheck cannot read.
    pub on_behalf_of: Option<Owner>,
}

/// A Pod with containers waiting on their image.
#[derive(Clone, Debug, PartialEq)]
pub struct StuckPod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub controller: Option<Owner>,
    pub spec: PodSpec,
    pub containers: Vec<Stuck>,
}

impl StuckPod {
    /// The stuck Pod of a listed Pod, if it has containers waiting on an image.
    pub fn of(pod: &Listed) -> Option<StuckPod> {
        let state = pod.pod.as_ref()?;
        if state.stuck.is_empty() {
            return None;
        }
        Some(StuckPod {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            controller: pod.controller.clone(),
            spec: pod.spec.clone().unwrap_or_default(),
            containers: state.stuck.clone(),
        })
    }
}

/// What the listing found.
#[derive(Debug, Default)]
pub struct Inventory {
    pub targets: Vec<Target>,
    pub stuck: Vec<StuckPod>,
    /// Objects listed, Pods included.
    pub listed: usize,
    /// ReplicaSets, Jobs and Pods covered by their owner.
    pub folded: usize,
    /// Objects in exempt namespaces.
    pub exempt: usize,
    /// Lists that failed (the scan is incomplete).
    pub errors: Vec<String>,
}

/// Whether a Pod's controller has a template the scan reads.
fn covers_pods(owner: &Owner) -> bool {
    let group = owner.api_version.split_once('/').map_or("", |(g, _)| g);
    matches!(
        (group, owner.kind.as_str()),
        ("apps", "ReplicaSet" | "StatefulSet" | "DaemonSet")
            | ("batch", "Job")
            | ("", "ReplicationController")
    )
}

/// Whether a ReplicaSet's or Job's controller is the folding owner.
fn folded_into(kind: WorkloadKind, owner: Option<&Owner>) -> bool {
    owner.is_some_and(|o| match kind {
        WorkloadKind::ReplicaSet => o.kind == "Deployment" && o.api_version.starts_with("apps/"),
        WorkloadKind::Job => o.kind == "CronJob" && o.api_version.starts_with("batch/"),
        _ => false,
    })
}

/// Something to tell while listing (the progress bar).
pub trait Listing: Send + Sync {
    /// `n` more objects of `kind` listed.
    fn listed(&self, kind: WorkloadKind, n: usize);
}

/// Lists everything in `namespaces` (all when empty) and folds it.
pub async fn take(
    view: &dyn ClusterView,
    namespaces: &[String],
    exempt: &[String],
    progress: &dyn Listing,
) -> Inventory {
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    let mut inv = Inventory::default();
    let is_exempt = |ns: &str| exempt.iter().any(|g| glob_match(g, ns));
    for &scope in &scopes {
        for kind in TOP_KINDS {
            let _ = each(
                view,
                kind,
                scope,
                Shape::Full,
                progress,
                &mut inv,
                |inv, o| {
                    if is_exempt(&o.namespace) {
                        inv.exempt += 1;
                        return;
                    }
                    inv.targets.push(target(o, None));
                },
            )
            .await;
        }
        for kind in [WorkloadKind::ReplicaSet, WorkloadKind::Job] {
            // Metadata first; the namespaces of the others in full.
            let mut wanted: HashSet<String> = HashSet::new();
            let mut namespaces: BTreeSet<String> = BTreeSet::new();
            let listed = each(
                view,
                kind,
                scope,
                Shape::Metadata,
                progress,
                &mut inv,
                |inv, o| {
                    if is_exempt(&o.namespace) {
                        inv.exempt += 1;
                    } else if folded_into(kind, o.controller.as_ref()) {
                        inv.folded += 1;
                    } else {
                        wanted.insert(o.uid);
                        namespaces.insert(o.namespace);
                    }
                },
            )
            .await;
            if listed.is_err() {
                continue;
            }
            for ns in &namespaces {
                let again = each(
                    view,
                    kind,
                    Some(ns),
                    Shape::Full,
                    &Quiet,
                    &mut inv,
                    |inv, o| {
                        if wanted.contains(&o.uid) {
                            inv.targets.push(target(o, None));
                        }
                    },
                )
                .await;
                // Listed once already.
                inv.listed -= again.unwrap_or(0);
            }
        }
        let mut owners_seen: HashSet<String> = HashSet::new();
        let _ = each(
            view,
            WorkloadKind::Pod,
            scope,
            Shape::Full,
            progress,
            &mut inv,
            |inv, pod| {
                if is_exempt(&pod.namespace) {
                    inv.exempt += 1;
                    return;
                }
                if let Some(stuck) = StuckPod::of(&pod) {
                    inv.stuck.push(stuck);
                }
                match &pod.controller {
                    None => inv.targets.push(target(pod, None)),
                    Some(owner) if covers_pods(owner) => inv.folded += 1,
                    Some(owner) => {
                        if owners_seen.insert(owner.uid.clone()) {
                            let owner = owner.clone();
                            inv.targets.push(target(pod, Some(owner)));
                        } else {
                            inv.folded += 1;
                        }
                    }
                }
            },
        )
        .await;
    }
    inv
}

/// A progress that says nothing (second listings of the same objects).
struct Quiet;

impl Listing for Quiet {
    fn listed(&self, _: WorkloadKind, _: usize) {}
}

fn target(o: Listed, on_behalf_of: Option<Owner>) -> Target {
    Target {
        kind: o.kind,
        namespace: o.namespace,
        name: o.name,
        uid: o.uid,
        scale: o.scale,
        spec: o.spec,
        on_behalf_of,
    }
}

/// Every object of one list, page after page, given to `visit`; how many. A list that
/// fails midway (a `continue` token expired, the API server restarted) starts over once;
/// what the first attempt visited is not visited again.
async fn each(
    view: &dyn ClusterView,
    kind: WorkloadKind,
    namespace: Option<&str>,
    shape: Shape,
    progress: &dyn Listing,
    inv: &mut Inventory,
    mut visit: impl FnMut(&mut Inventory, Listed),
) -> Result<usize, ()> {
    // Hashes of the uids visited (8 bytes each), for a restart.
    let hasher = foldhash::fast::FixedState::default();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut visited = 0;
    let mut restarted = false;
    let mut token: Option<String> = None;
    loop {
        let page = match view.list(kind, namespace, shape, token.as_deref()).await {
            Ok(p) => p,
            Err(e) if token.is_some() && !restarted => {
                tracing::info!(error = %e, "a list failed midway: listing again from the start");
                restarted = true;
                token = None;
                continue;
            }
            Err(e) => {
                inv.errors.push(e.to_string());
                return Err(());
            }
        };
        let n = page.items.len();
        for o in page.items {
            use std::hash::BuildHasher;
            if !seen.insert(hasher.hash_one(&o.uid)) && restarted {
                continue;
            }
            inv.listed += 1;
            visited += 1;
            visit(inv, o);
        }
        progress.listed(kind, n);
        match page.next {
            Some(t) => token = Some(t),
            None => return Ok(visited),
        }
    }
}
