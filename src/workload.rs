//! Workloads as the kubelet will see them: finding the PodSpec in an admitted object (Pod,
//! Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, ReplicationController),
//! listing every image the kubelet will pull and where it appears (init containers,
//! containers, ephemeral containers, image volumes), the pull secrets and ServiceAccount
//! that decide credentials, the Pod's constraints on `kubernetes.io/os` and
//! `kubernetes.io/arch`, and what an UPDATE changed that matters for pulls.
//!
//! Pure code over `serde_json::Value` and the PodSpec subset of [`crate::podspec`]: no I/O. Nothing here panics on
//! any input; error details are at most [`MAX_DETAIL`] bytes.

use std::collections::HashSet;
use std::fmt;

pub use crate::podspec::PodSpec;
use crate::podspec::{Container, NodeSelectorRequirement, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::platform::Platform;
use crate::text::truncate;

/// Longest [`WorkloadError`] detail, in characters.
pub const MAX_DETAIL: usize = 300;

/// Most platforms [`PlatformConstraint::explicit_platforms`] returns: far more than the
/// os/arch pairs Kubernetes nodes exist for, far fewer than a hostile Pod can name (the
/// product of its os and arch values).
pub const MAX_EXPLICIT_PLATFORMS: usize = 64;

/// Workload kinds pullcheck checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    Pod,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    ReplicationController,
}

impl WorkloadKind {
    /// Every kind pullcheck checks.
    pub const ALL: [WorkloadKind; 8] = [
        Self::Pod,
        Self::Deployment,
        Self::ReplicaSet,
        Self::StatefulSet,
        Self::DaemonSet,
        Self::Job,
        Self::CronJob,
        Self::ReplicationController,
    ];

    /// From an object's apiVersion group and kind: `("", "Pod")`,
    /// `("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")`,
    /// `("batch", "Job" | "CronJob")`, `("", "ReplicationController")`. Anything else
    /// (including the long-removed `extensions` group) is `None`. Case-sensitive, like the
    /// API server.
    pub fn from_group_kind(group: &str, kind: &str) -> Option<Self> {
        match (group, kind) {
            ("", "Pod") => Some(Self::Pod),
            ("", "ReplicationController") => Some(Self::ReplicationController),
            ("apps", "Deployment") => Some(Self::Deployment),
            ("apps", "ReplicaSet") => Some(Self::ReplicaSet),
            ("apps", "StatefulSet") => Some(Self::StatefulSet),
            ("apps", "DaemonSet") => Some(Self::DaemonSet),
            ("batch", "Job") => Some(Self::Job),
            ("batch", "CronJob") => Some(Self::CronJob),
            _ => None,
        }
    }

    /// The kind as the API writes it: `"Pod"`, `"Deployment"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pod => "Pod",
            Self::Deployment => "Deployment",
            Self::ReplicaSet => "ReplicaSet",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::Job => "Job",
            Self::CronJob => "CronJob",
            Self::ReplicationController => "ReplicationController",
        }
    }

    /// Pod templates get no ServiceAccount admission: a template's pull secrets must be
    /// derived from its serviceAccountName. True for every kind but `Pod`.
    pub fn is_template(self) -> bool {
        self != Self::Pod
    }

    /// Where the PodSpec sits in an object of this kind.
    fn pod_spec_path(self) -> &'static [&'static str] {
        match self {
            Self::Pod => &["spec"],
            Self::CronJob => &["spec", "jobTemplate", "spec", "template", "spec"],
            _ => &["spec", "template", "spec"],
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The part of an object that decides pulls.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub kind: WorkloadKind,
    /// `metadata.name`; when that is empty (a `generateName` object not yet named),
    /// `metadata.generateName` as written (e.g. `web-7d9f8b6c5d-`); else empty.
    pub name: String,
    /// `metadata.namespace`, `None` when absent or empty.
    pub namespace: Option<String>,
    pub spec: PodSpec,
    /// `"ReplicaSet/web-7d9f"` when `metadata.ownerReferences` has an entry with
    /// `controller: true` (filled for any kind).
    pub controller: Option<String>,
}

/// Why an object could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// The object is not a JSON object, its PodSpec is missing, or a field has the wrong
    /// type. `detail` names the path when it can (`spec.template.spec.containers[0].image:
    /// invalid type: ...`) and is at most [`MAX_DETAIL`] bytes.
    #[error("cannot read {kind}: {detail}")]
    Decode { kind: String, detail: String },
}

impl WorkloadError {
    fn decode(kind: WorkloadKind, detail: impl Into<String>) -> Self {
        WorkloadError::Decode {
            kind: kind.as_str().to_owned(),
            detail: truncate(&detail.into(), MAX_DETAIL),
        }
    }
}

/// Decodes an object (a `serde_json::Value` as in `AdmissionReview.request.object`, or a
/// manifest) of a known kind and returns its PodSpec: Pod `.spec`;
/// Deployment/ReplicaSet/StatefulSet/DaemonSet/Job/ReplicationController
/// `.spec.template.spec`; CronJob `.spec.jobTemplate.spec.template.spec`.
///
/// Only `metadata` and the PodSpec fields that decide pulls are decoded
/// ([`crate::podspec`]); other fields
/// (`replicas`, `selector`, ...) do not matter for pulls and are not looked at, nor are
/// `apiVersion` and `kind` (the caller already chose `kind`). Errors: not a JSON object;
/// a step of the path to the PodSpec missing, `null` or not an object (e.g. a Deployment
/// without `template`, a ReplicationController whose template is absent); `containers`
/// missing or `null` (k8s-openapi would silently default it to an empty list, which would
/// hide a misspelt key); any PodSpec or metadata field of the wrong type.
pub fn decode(kind: WorkloadKind, object: &Value) -> Result<Workload, WorkloadError> {
    let Value::Object(top) = object else {
        return Err(WorkloadError::decode(
            kind,
            format!("expected a JSON object, got {}", type_name(object)),
        ));
    };

    let meta = match top.get("metadata") {
        None | Some(Value::Null) => ObjectMeta::default(),
        Some(v) => deserialize::<ObjectMeta>(v).map_err(|e| {
            let at = locate_field::<ObjectMeta>(v)
                .map(|(k, e)| format!("metadata.{k}: {e}"))
                .unwrap_or_else(|| format!("metadata: {e}"));
            WorkloadError::decode(kind, at)
        })?,
    };
    decode_parts(kind, &meta, object)
}

/// Like [`decode`] for an object already split into its metadata and the rest (kube's
/// `DynamicObject`): no round trip through JSON on the admission path.
pub fn decode_parts(
    kind: WorkloadKind,
    meta: &ObjectMeta,
    object: &Value,
) -> Result<Workload, WorkloadError> {
    let steps = kind.pod_spec_path();
    // Named only in errors: not built for objects that decode.
    let path = |n: usize| steps[..n].join(".");
    let mut node = object;
    for (i, step) in steps.iter().enumerate() {
        match node.get(step) {
            None | Some(Value::Null) => {
                return Err(WorkloadError::decode(
                    kind,
                    format!("{} is missing", path(i + 1)),
                ));
            }
            Some(v @ Value::Object(_)) => node = v,
            Some(other) => {
                return Err(WorkloadError::decode(
                    kind,
                    format!(
                        "{}: expected an object, got {}",
                        path(i + 1),
                        type_name(other)
                    ),
                ));
            }
        }
    }
    if matches!(node.get("containers"), None | Some(Value::Null)) {
        return Err(WorkloadError::decode(
            kind,
            format!("{}.containers is missing", path(steps.len())),
        ));
    }
    let spec = deserialize::<PodSpec>(node).map_err(|e| {
        WorkloadError::decode(kind, locate_pod_spec_error(&path(steps.len()), node, &e))
    })?;

    let name = match meta.name.as_deref() {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => meta.generate_name.clone().unwrap_or_default(),
    };
    let namespace = meta.namespace.clone().filter(|n| !n.is_empty());
    let controller = meta
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| format!("{}/{}", o.kind, o.name));

    Ok(Workload {
        kind,
        name,
        namespace,
        spec,
        controller,
    })
}

fn deserialize<T: DeserializeOwned>(v: &Value) -> Result<T, serde_json::Error> {
    T::deserialize(v)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The first top-level field of the object `v` that alone fails to decode as `T`, with
/// its error. `None` when `v` is not an object or no single field fails.
fn locate_field<T: DeserializeOwned>(v: &Value) -> Option<(String, serde_json::Error)> {
    let map = v.as_object()?;
    map.iter().find_map(|(k, field)| {
        let mut probe = serde_json::Map::new();
        probe.insert(k.clone(), field.clone());
        deserialize::<T>(&Value::Object(probe))
            .err()
            .map(|e| (k.clone(), e))
    })
}

/// `[i].field: error` for the first element of the list `v` that fails to decode as `T`.
fn locate_in_list<T: DeserializeOwned>(v: &Value) -> Option<String> {
    let items = v.as_array()?;
    items.iter().enumerate().find_map(|(i, item)| {
        let err = deserialize::<T>(item).err()?;
        Some(match locate_field::<T>(item) {
            Some((k, e)) => format!("[{i}].{k}: {e}"),
            None => format!("[{i}]: {err}"),
        })
    })
}

/// Turns a PodSpec decode error into `path.field[i].subfield: message` where possible.
fn locate_pod_spec_error(path: &str, spec: &Value, err: &serde_json::Error) -> String {
    let Some((key, key_err)) = locate_field::<PodSpec>(spec) else {
        return format!("{path}: {err}");
    };
    let inner = spec.get(&key).and_then(|v| match key.as_str() {
        "containers" | "initContainers" => locate_in_list::<Container>(v),
        "ephemeralContainers" => locate_in_list::<Container>(v),
        "volumes" => locate_in_list::<Volume>(v),
        _ => None,
    });
    match inner {
        Some(rest) => format!("{path}.{key}{rest}"),
        None => format!("{path}.{key}: {key_err}"),
    }
}

/// Where an image is used in a PodSpec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageSlot {
    Container,
    InitContainer,
    EphemeralContainer,
    ImageVolume,
}

impl ImageSlot {
    /// The words of messages, as the PodSpec's fields say them: `"container"`,
    /// `"initContainer"`, `"ephemeralContainer"`, `"image volume"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::InitContainer => "initContainer",
            Self::EphemeralContainer => "ephemeralContainer",
            Self::ImageVolume => "image volume",
        }
    }
}

impl fmt::Display for ImageSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One image the kubelet will pull (or not, with pullPolicy Never).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUse {
    pub slot: ImageSlot,
    /// Container name, or the volume name for image volumes.
    pub name: String,
    /// As written (nothing trimmed); `""` when missing.
    pub image: String,
    /// `"Always" | "IfNotPresent" | "Never"` as written; `None` when absent (the API server
    /// defaults it before webhooks see it, but CI manifests often omit it).
    pub pull_policy: Option<String>,
}

impl ImageUse {
    /// `pull_policy == Some("Never")`: the kubelet never pulls this image.
    pub fn pull_never(&self) -> bool {
        self.pull_policy.as_deref() == Some("Never")
    }
}

/// Every image in spec order: initContainers, containers, ephemeralContainers, then image
/// volumes (`volumes[].image.reference`). Containers with an empty or missing image still
/// appear (image `""`) so the caller can report them; so do image volumes without a
/// reference.
pub fn images(spec: &PodSpec) -> Vec<ImageUse> {
    let container = |slot: ImageSlot, c: &Container| ImageUse {
        slot,
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        pull_policy: c.image_pull_policy.clone(),
    };
    let mut out = Vec::new();
    for c in spec.init_containers.as_deref().unwrap_or_default() {
        out.push(container(ImageSlot::InitContainer, c));
    }
    for c in &spec.containers {
        out.push(container(ImageSlot::Container, c));
    }
    for c in spec.ephemeral_containers.as_deref().unwrap_or_default() {
        out.push(ImageUse {
            slot: ImageSlot::EphemeralContainer,
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            pull_policy: c.image_pull_policy.clone(),
        });
    }
    for v in spec.volumes.as_deref().unwrap_or_default() {
        if let Some(src) = &v.image {
            out.push(ImageUse {
                slot: ImageSlot::ImageVolume,
                name: v.name.clone(),
                image: src.reference.clone().unwrap_or_default(),
                pull_policy: src.pull_policy.clone(),
            });
        }
    }
    out
}

/// Names in `spec.imagePullSecrets` (skipping entries with an empty name), in order,
/// deduplicated keeping the first.
pub fn pull_secret_names(spec: &PodSpec) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in spec.image_pull_secrets.as_deref().unwrap_or_default() {
        if !r.name.is_empty() && !out.contains(&r.name) {
            out.push(r.name.clone());
        }
    }
    out
}

/// `spec.serviceAccountName`, else the deprecated `spec.serviceAccount`, else `"default"`
/// (empty strings count as absent).
pub fn service_account(spec: &PodSpec) -> String {
    [&spec.service_account_name, &spec.service_account]
        .into_iter()
        .flatten()
        .find(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "default".to_owned())
}

/// Which platform label a key is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Dim {
    Os,
    Arch,
}

impl Dim {
    fn of_key(key: &str) -> Option<Dim> {
        match key {
            "kubernetes.io/os" | "beta.kubernetes.io/os" => Some(Dim::Os),
            "kubernetes.io/arch" | "beta.kubernetes.io/arch" => Some(Dim::Arch),
            _ => None,
        }
    }

    fn pick<'a>(self, os: &'a str, arch: &'a str) -> &'a str {
        match self {
            Dim::Os => os,
            Dim::Arch => arch,
        }
    }
}

/// One node affinity match expression about os or arch.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    dim: Dim,
    operator: String,
    values: Vec<String>,
}

impl Requirement {
    /// The scheduler's `NodeSelectorRequirement` semantics for a node that carries the
    /// label with `value` (every node has its os and arch labels).
    fn matches(&self, value: &str) -> bool {
        let int = |s: &str| s.parse::<i64>().ok();
        match self.operator.as_str() {
            "In" => self.values.iter().any(|v| v == value),
            "NotIn" => !self.values.iter().any(|v| v == value),
            "Exists" => true,
            "DoesNotExist" => false,
            "Gt" | "Lt" => {
                let (Some(have), Some(bound)) =
                    (int(value), self.values.first().and_then(|v| int(v)))
                else {
                    return false;
                };
                if self.operator == "Gt" {
                    have > bound
                } else {
                    have < bound
                }
            }
            _ => false,
        }
    }

    fn describe(&self) -> String {
        let list = || self.values.join(", ");
        match self.operator.as_str() {
            "In" => format!("{} in ({})", self.key, list()),
            "NotIn" => format!("{} notin ({})", self.key, list()),
            "Exists" => format!("{} exists", self.key),
            "DoesNotExist" => format!("{} does not exist", self.key),
            "Gt" => format!("{} > {}", self.key, list()),
            "Lt" => format!("{} < {}", self.key, list()),
            op => format!("{} {} ({})", self.key, op, list()),
        }
    }
}

/// The Pod's constraints on `kubernetes.io/os` and `kubernetes.io/arch`: `nodeSelector`
/// and `requiredDuringSchedulingIgnoredDuringExecution` node affinity; the beta labels
/// `beta.kubernetes.io/os|arch` count the same. `spec.os.name` is not a scheduling
/// constraint and is not read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlatformConstraint {
    /// nodeSelector entries about os/arch: (key as written, dimension, value). ANDed.
    selector: Vec<(String, Dim, String)>,
    /// Required node affinity terms (ORed), each restricted to its os/arch expressions
    /// (ANDed). Empty when there is no affinity, or when some term says nothing about
    /// os/arch (that term lets every platform through, so the OR does too).
    terms: Vec<Vec<Requirement>>,
}

impl PlatformConstraint {
    /// Reads the constraint from a PodSpec. `matchFields` and expressions about other keys
    /// are ignored.
    pub fn of(spec: &PodSpec) -> Self {
        let selector = spec
            .node_selector
            .iter()
            .flatten()
            .filter_map(|(k, v)| Dim::of_key(k).map(|d| (k.clone(), d, v.clone())))
            .collect();
        let raw_terms = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|s| s.node_selector_terms.as_slice())
            .unwrap_or_default();
        let mut terms: Vec<Vec<Requirement>> = raw_terms
            .iter()
            .map(|t| {
                t.match_expressions
                    .iter()
                    .flatten()
                    .filter_map(requirement)
                    .collect()
            })
            .collect();
        if terms.iter().any(Vec::is_empty) {
            terms.clear();
        }
        PlatformConstraint { selector, terms }
    }

    /// True when the Pod says anything about os or arch.
    pub fn is_constrained(&self) -> bool {
        !self.selector.is_empty() || !self.terms.is_empty()
    }

    /// Could a node labelled `kubernetes.io/os=<os>`, `kubernetes.io/arch=<arch>` (and the
    /// same beta labels) run the Pod? Evaluates the nodeSelector and the required terms
    /// with the scheduler's operators (In, NotIn, Exists, DoesNotExist, Gt, Lt; unknown
    /// operators match nothing). Values are compared exactly, as label values are.
    pub fn allows(&self, os: &str, arch: &str) -> bool {
        self.selector_allows(os, arch)
            && (self.terms.is_empty() || self.terms.iter().any(|t| term_allows(t, os, arch)))
    }

    fn selector_allows(&self, os: &str, arch: &str) -> bool {
        self.selector.iter().all(|(_, d, v)| d.pick(os, arch) == v)
    }

    /// The platforms the Pod itself names when no node list is known: arch and os values
    /// from the nodeSelector and from `In` expressions, per affinity term; os defaults to
    /// `linux` when a term names none. `None` when some way of scheduling the Pod leaves
    /// the arch open (no nodeSelector arch and a term without an arch `In`). Combinations
    /// the constraint refuses are left out, so the list may be empty. Values are as
    /// written (not normalized), without variant. At most [`MAX_EXPLICIT_PLATFORMS`]
    /// platforms, the first ones in that order.
    ///
    /// Linear in the size of the constraint: a term is a conjunction of os-only and
    /// arch-only conditions, so each os and each arch value is checked once (against hash
    /// sets of the expression values); only the os x arch product is built, and it is
    /// capped. (A Pod of a few KB naming 300 os and 300 arch values used to take minutes.)
    pub fn explicit_platforms(&self) -> Option<Vec<Platform>> {
        let no_terms: [Vec<Requirement>; 1] = [Vec::new()];
        let terms: &[Vec<Requirement>] = if self.terms.is_empty() {
            &no_terms
        } else {
            &self.terms
        };
        let mut out: Vec<Platform> = Vec::new();
        let mut emitted: HashSet<(&str, &str)> = HashSet::new();
        for term in terms {
            let arches = self.named(term, Dim::Arch);
            if arches.is_empty() {
                return None;
            }
            if out.len() >= MAX_EXPLICIT_PLATFORMS {
                // Full, but a later term may still leave the arch open.
                continue;
            }
            let mut oses = self.named(term, Dim::Os);
            if oses.is_empty() {
                oses.push("linux");
            }
            let sets: Vec<HashSet<&str>> = term
                .iter()
                .map(|r| r.values.iter().map(String::as_str).collect())
                .collect();
            // selector_allows && term_allows, one dimension at a time.
            let dim_allows = |dim: Dim, value: &str| {
                self.selector
                    .iter()
                    .all(|(_, d, v)| *d != dim || v == value)
                    && term.iter().zip(&sets).all(|(r, set)| {
                        r.dim != dim
                            || match r.operator.as_str() {
                                "In" => set.contains(value),
                                "NotIn" => !set.contains(value),
                                _ => r.matches(value),
                            }
                    })
            };
            oses.retain(|os| dim_allows(Dim::Os, os));
            let arches: Vec<&str> = arches
                .into_iter()
                .filter(|arch| dim_allows(Dim::Arch, arch))
                .collect();
            'product: for os in &oses {
                for arch in &arches {
                    if out.len() >= MAX_EXPLICIT_PLATFORMS {
                        break 'product;
                    }
                    if emitted.insert((os, arch)) {
                        out.push(Platform::new(os, arch, None));
                    }
                }
            }
        }
        Some(out)
    }

    /// Distinct values of `dim` named by the nodeSelector and by `In` expressions of `term`,
    /// in order.
    fn named<'a>(&'a self, term: &'a [Requirement], dim: Dim) -> Vec<&'a str> {
        let mut seen: HashSet<&str> = HashSet::new();
        let from_selector = self
            .selector
            .iter()
            .filter(|(_, d, _)| *d == dim)
            .map(|(_, _, v)| v.as_str());
        let from_term = term
            .iter()
            .filter(|r| r.dim == dim && r.operator == "In")
            .flat_map(|r| r.values.iter().map(String::as_str));
        from_selector
            .chain(from_term)
            .filter(|v| seen.insert(v))
            .collect()
    }

    /// The platforms of `available` (e.g. the cluster's node platforms) that
    /// [`allows`](Self::allows) accepts, in order.
    pub fn filter(&self, available: &[Platform]) -> Vec<Platform> {
        available
            .iter()
            .filter(|p| self.allows(&p.os, &p.architecture))
            .cloned()
            .collect()
    }

    /// Human text for a finding, e.g. `nodeSelector kubernetes.io/arch=arm64` or
    /// `node affinity kubernetes.io/arch in (arm64, amd64)`; both parts joined by `; `;
    /// terms joined by ` or `, expressions by ` and `.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.selector.is_empty() {
            let pairs: Vec<String> = self
                .selector
                .iter()
                .map(|(k, _, v)| format!("{k}={v}"))
                .collect();
            parts.push(format!("nodeSelector {}", pairs.join(", ")));
        }
        if !self.terms.is_empty() {
            let many = self.terms.len() > 1;
            let terms: Vec<String> = self
                .terms
                .iter()
                .map(|t| {
                    let exprs: Vec<String> = t.iter().map(Requirement::describe).collect();
                    let text = exprs.join(" and ");
                    if many && t.len() > 1 {
                        format!("({text})")
                    } else {
                        text
                    }
                })
                .collect();
            parts.push(format!("node affinity {}", terms.join(" or ")));
        }
        if parts.is_empty() {
            "no kubernetes.io/os or kubernetes.io/arch constraint".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

fn requirement(r: &NodeSelectorRequirement) -> Option<Requirement> {
    Some(Requirement {
        dim: Dim::of_key(&r.key)?,
        key: r.key.clone(),
        operator: r.operator.clone(),
        values: r.values.clone().unwrap_or_default(),
    })
}

fn term_allows(term: &[Requirement], os: &str, arch: &str) -> bool {
    term.iter().all(|r| r.matches(r.dim.pick(os, arch)))
}

/// What an UPDATE changed that matters for pulls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullChange {
    /// Images, pull secrets, ServiceAccount and platform constraints unchanged: nothing to
    /// check (scale, labels, rollout restart annotations).
    Nothing,
    /// Only these images are new (image strings present in `new` and not in `old`, per
    /// [`images`]; deduplicated, in new's order).
    Images(Vec<String>),
    /// Pull secrets, ServiceAccount or platform constraints changed: check every image.
    Everything,
}

/// What changed between the old and the new PodSpec of an UPDATE.
///
/// `Everything` when [`pull_secret_names`] (order matters: the kubelet tries credentials
/// in order), [`service_account`] or [`PlatformConstraint::of`] differ. Otherwise the image
/// strings of `new` that `old` did not pull: an image that `old` only used with
/// `imagePullPolicy: Never` counts as new (it was never pulled, so never checked).
pub fn diff(old: &PodSpec, new: &PodSpec) -> PullChange {
    if pull_secret_names(old) != pull_secret_names(new)
        || service_account(old) != service_account(new)
        || PlatformConstraint::of(old) != PlatformConstraint::of(new)
    {
        return PullChange::Everything;
    }
    let old_uses = images(old);
    let pulled_before: HashSet<&str> = old_uses
        .iter()
        .filter(|u| !u.pull_never())
        .map(|u| u.image.as_str())
        .collect();
    let mut fresh: Vec<String> = Vec::new();
    for u in images(new) {
        if !pulled_before.contains(u.image.as_str()) && !fresh.contains(&u.image) {
            fresh.push(u.image);
        }
    }
    if fresh.is_empty() {
        PullChange::Nothing
    } else {
        PullChange::Images(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn review(name: &str) -> Value {
        let text = match name {
            "cronjob-create" => include_str!("../tests/fixtures/admission/cronjob-create.json"),
            "daemonset-create" => {
                include_str!("../tests/fixtures/admission/daemonset-create.json")
            }
            "deployment-create" => {
                include_str!("../tests/fixtures/admission/deployment-create.json")
            }
            "deployment-delete" => {
                include_str!("../tests/fixtures/admission/deployment-delete.json")
            }
            "deployment-update-image" => {
                include_str!("../tests/fixtures/admission/deployment-update-image.json")
            }
            "deployment-update-scale" => {
                include_str!("../tests/fixtures/admission/deployment-update-scale.json")
            }
            "job-create" => include_str!("../tests/fixtures/admission/job-create.json"),
            "pod-create-dryrun" => {
                include_str!("../tests/fixtures/admission/pod-create-dryrun.json")
            }
            "pod-create-owned" => {
                include_str!("../tests/fixtures/admission/pod-create-owned.json")
            }
            "pod-ephemeralcontainers-update" => {
                include_str!("../tests/fixtures/admission/pod-ephemeralcontainers-update.json")
            }
            "pod-image-volume" => {
                include_str!("../tests/fixtures/admission/pod-image-volume.json")
            }
            "replicaset-create" => {
                include_str!("../tests/fixtures/admission/replicaset-create.json")
            }
            "replicationcontroller-create" => {
                include_str!("../tests/fixtures/admission/replicationcontroller-create.json")
            }
            "statefulset-create" => {
                include_str!("../tests/fixtures/admission/statefulset-create.json")
            }
            other => panic!("no fixture {other}"),
        };
        serde_json::from_str(text).expect("fixture is JSON")
    }

    fn kind_of(review: &Value) -> WorkloadKind {
        let k = &review["request"]["kind"];
        WorkloadKind::from_group_kind(
            k["group"].as_str().expect("group"),
            k["kind"].as_str().expect("kind"),
        )
        .expect("known kind")
    }

    /// (kind, object) and (kind, oldObject) of a fixture, decoded.
    fn decoded(name: &str) -> (Workload, Option<Workload>) {
        let r = review(name);
        let kind = kind_of(&r);
        let new = decode(kind, &r["request"]["object"]).expect("object decodes");
        let old = match &r["request"]["oldObject"] {
            Value::Null => None,
            v => Some(decode(kind, v).expect("oldObject decodes")),
        };
        (new, old)
    }

    fn uses(spec: &PodSpec) -> Vec<(ImageSlot, String, String)> {
        images(spec)
            .into_iter()
            .map(|u| (u.slot, u.name, u.image))
            .collect()
    }

    fn spec(v: Value) -> PodSpec {
        serde_json::from_value(v).expect("PodSpec")
    }

    fn p(s: &str) -> Platform {
        Platform::parse(s).expect("platform")
    }

    use ImageSlot::{
        Container as C, EphemeralContainer as E, ImageVolume as V, InitContainer as I,
    };

    #[rstest]
    #[case("pod-create-owned", WorkloadKind::Pod, "web-7d9f8b6c5d-x2k4q",
        &[(I, "migrate", "registry.example.com/team/migrate:v1.2.3"),
          (C, "web", "registry.example.com/team/app:v1.2.3")])]
    #[case("pod-create-dryrun", WorkloadKind::Pod, "debug",
        &[(C, "debug", "ghcr.io/acme/private-tool@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")])]
    #[case("pod-image-volume", WorkloadKind::Pod, "model-server",
        &[(C, "srv", "nginx:1.25"), (V, "model", "registry.example.com/models/llm:v3")])]
    #[case("pod-ephemeralcontainers-update", WorkloadKind::Pod, "api-0",
        &[(C, "api", "nginx:1.25"), (E, "debugger-8xk2p", "busybox:1.36")])]
    #[case("deployment-create", WorkloadKind::Deployment, "web", &[(C, "web", "nginx:1.25")])]
    #[case("statefulset-create", WorkloadKind::StatefulSet, "statefulset",
        &[(I, "init", "busybox:1.36"), (C, "x", "quay.io/acme/x:1.0")])]
    #[case("daemonset-create", WorkloadKind::DaemonSet, "daemonset",
        &[(I, "init", "busybox:1.36"), (C, "x", "quay.io/acme/x:1.0")])]
    #[case("replicaset-create", WorkloadKind::ReplicaSet, "replicaset",
        &[(I, "init", "busybox:1.36"), (C, "x", "quay.io/acme/x:1.0")])]
    #[case("job-create", WorkloadKind::Job, "job",
        &[(I, "init", "busybox:1.36"), (C, "x", "quay.io/acme/x:1.0")])]
    #[case("cronjob-create", WorkloadKind::CronJob, "report",
        &[(C, "report", "registry.example.com/team/report:2024.10")])]
    #[case("replicationcontroller-create", WorkloadKind::ReplicationController, "replicationcontroller",
        &[(I, "init", "busybox:1.36"), (C, "x", "quay.io/acme/x:1.0")])]
    fn decodes_every_fixture_kind(
        #[case] file: &str,
        #[case] kind: WorkloadKind,
        #[case] name: &str,
        #[case] expected: &[(ImageSlot, &str, &str)],
    ) {
        let (w, _) = decoded(file);
        assert_eq!(w.kind, kind);
        assert_eq!(kind.is_template(), kind != WorkloadKind::Pod);
        assert_eq!(w.name, name);
        assert_eq!(w.namespace.as_deref(), Some("team-a"));
        let expected: Vec<_> = expected
            .iter()
            .map(|(s, n, i)| (*s, n.to_string(), i.to_string()))
            .collect();
        assert_eq!(uses(&w.spec), expected);
        // Every fixture image has an explicit pull policy (the API server defaulted it).
        assert!(images(&w.spec).iter().all(|u| u.pull_policy.is_some()));
    }

    #[test]
    fn owned_pod_has_controller_secret_and_service_account() {
        let (w, _) = decoded("pod-create-owned");
        assert_eq!(w.controller.as_deref(), Some("ReplicaSet/web-7d9f8b6c5d"));
        assert_eq!(pull_secret_names(&w.spec), vec!["regcred".to_owned()]);
        assert_eq!(service_account(&w.spec), "default");
        assert!(!PlatformConstraint::of(&w.spec).is_constrained());
        let (dep, _) = decoded("deployment-create");
        assert_eq!(dep.controller, None);
    }

    #[test]
    fn dryrun_pod_pulls_always() {
        let (w, _) = decoded("pod-create-dryrun");
        let u = &images(&w.spec)[0];
        assert_eq!(u.pull_policy.as_deref(), Some("Always"));
        assert!(!u.pull_never());
    }

    #[test]
    fn image_volume_pull_policy() {
        let (w, _) = decoded("pod-image-volume");
        let vol = images(&w.spec).pop().expect("volume");
        assert_eq!(vol.slot, ImageSlot::ImageVolume);
        assert_eq!(vol.pull_policy.as_deref(), Some("IfNotPresent"));
    }

    #[test]
    fn cronjob_service_account_and_arm64() {
        let (w, _) = decoded("cronjob-create");
        assert_eq!(service_account(&w.spec), "reporter");
        assert!(pull_secret_names(&w.spec).is_empty());
        let c = PlatformConstraint::of(&w.spec);
        assert!(c.is_constrained());
        assert_eq!(
            c.explicit_platforms(),
            Some(vec![Platform::new("linux", "arm64", None)])
        );
        assert_eq!(c.describe(), "nodeSelector kubernetes.io/arch=arm64");
        assert!(c.allows("linux", "arm64"));
        assert!(!c.allows("linux", "amd64"));
    }

    #[test]
    fn generate_name_when_name_empty() {
        let obj = json!({
            "metadata": {"generateName": "web-", "namespace": ""},
            "spec": {"containers": [{"name": "a", "image": "x"}]}
        });
        let w = decode(WorkloadKind::Pod, &obj).expect("decodes");
        assert_eq!(w.name, "web-");
        assert_eq!(w.namespace, None);
        // No metadata at all is fine too (a bare manifest).
        let bare = json!({"spec": {"containers": []}});
        let w = decode(WorkloadKind::Pod, &bare).expect("decodes");
        assert_eq!(w.name, "");
        assert!(images(&w.spec).is_empty());
    }

    #[test]
    fn from_group_kind() {
        for k in [WorkloadKind::Pod, WorkloadKind::ReplicationController] {
            assert_eq!(WorkloadKind::from_group_kind("", k.as_str()), Some(k));
        }
        for k in [
            WorkloadKind::Deployment,
            WorkloadKind::ReplicaSet,
            WorkloadKind::StatefulSet,
            WorkloadKind::DaemonSet,
        ] {
            assert_eq!(WorkloadKind::from_group_kind("apps", k.as_str()), Some(k));
        }
        for k in [WorkloadKind::Job, WorkloadKind::CronJob] {
            assert_eq!(WorkloadKind::from_group_kind("batch", k.as_str()), Some(k));
        }
        assert_eq!(
            WorkloadKind::from_group_kind("extensions", "Deployment"),
            None
        );
        assert_eq!(WorkloadKind::from_group_kind("apps", "Pod"), None);
        assert_eq!(WorkloadKind::from_group_kind("", "pod"), None);
        assert_eq!(WorkloadKind::from_group_kind("", "Secret"), None);
    }

    #[test]
    fn images_order_empty_images_and_never() {
        let s = spec(json!({
            "containers": [{"name": "main"}, {"name": "side", "image": " spaced ", "imagePullPolicy": "Never"}],
            "initContainers": [{"name": "init", "image": "i:1"}],
            "ephemeralContainers": [{"name": "dbg", "image": "busybox"}],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "c"}},
                {"name": "img", "image": {}},
                {"name": "model", "image": {"reference": "m:1", "pullPolicy": "Always"}}
            ]
        }));
        let got = images(&s);
        let short: Vec<_> = got
            .iter()
            .map(|u| (u.slot, u.name.as_str(), u.image.as_str()))
            .collect();
        assert_eq!(
            short,
            vec![
                (I, "init", "i:1"),
                (C, "main", ""),
                (C, "side", " spaced "),
                (E, "dbg", "busybox"),
                (V, "img", ""),
                (V, "model", "m:1"),
            ]
        );
        assert_eq!(got[0].pull_policy, None);
        assert!(got[2].pull_never());
        assert!(!got[5].pull_never());
    }

    #[test]
    fn pull_secrets_and_service_account_rules() {
        let s = spec(json!({
            "containers": [],
            "imagePullSecrets": [{"name": "a"}, {}, {"name": ""}, {"name": "b"}, {"name": "a"}],
            "serviceAccount": "legacy"
        }));
        assert_eq!(pull_secret_names(&s), vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(service_account(&s), "legacy");
        let s = spec(json!({"containers": [], "serviceAccountName": "", "serviceAccount": ""}));
        assert_eq!(service_account(&s), "default");
        let s =
            spec(json!({"containers": [], "serviceAccountName": "new", "serviceAccount": "old"}));
        assert_eq!(service_account(&s), "new");
    }

    // ---- diff ----

    fn diff_of(file: &str) -> PullChange {
        let (new, old) = decoded(file);
        diff(&old.expect("oldObject").spec, &new.spec)
    }

    #[test]
    fn diff_scale_is_nothing() {
        assert_eq!(diff_of("deployment-update-scale"), PullChange::Nothing);
    }

    #[test]
    fn diff_image_change() {
        assert_eq!(
            diff_of("deployment-update-image"),
            PullChange::Images(vec!["nginx:1.26".to_owned()])
        );
    }

    #[test]
    fn diff_ephemeral_container() {
        assert_eq!(
            diff_of("pod-ephemeralcontainers-update"),
            PullChange::Images(vec!["busybox:1.36".to_owned()])
        );
    }

    #[test]
    fn diff_rollout_restart_is_nothing() {
        let r = review("deployment-create");
        let old = r["request"]["object"].clone();
        let mut new = old.clone();
        new["spec"]["template"]["metadata"]["annotations"] =
            json!({"kubectl.kubernetes.io/restartedAt": "2024-10-01T12:00:00Z"});
        let old = decode(WorkloadKind::Deployment, &old).expect("old");
        let new = decode(WorkloadKind::Deployment, &new).expect("new");
        assert_eq!(diff(&old.spec, &new.spec), PullChange::Nothing);
    }

    /// The deployment-create PodSpec with one JSON field of the template spec replaced.
    fn deployment_spec_with(field: &str, value: Value) -> PodSpec {
        let r = review("deployment-create");
        let mut obj = r["request"]["object"].clone();
        obj["spec"]["template"]["spec"][field] = value;
        decode(WorkloadKind::Deployment, &obj)
            .expect("decodes")
            .spec
    }

    #[rstest]
    #[case("imagePullSecrets", json!([{"name": "regcred"}]))]
    #[case("serviceAccountName", json!("builder"))]
    #[case("serviceAccount", json!("builder"))]
    #[case("nodeSelector", json!({"kubernetes.io/arch": "arm64"}))]
    #[case("affinity", json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["windows"]}]}]}}}))]
    fn diff_credentials_or_platform_change_is_everything(
        #[case] field: &str,
        #[case] value: Value,
    ) {
        let old = deployment_spec_with("dnsPolicy", json!("ClusterFirst"));
        let new = deployment_spec_with(field, value);
        assert_eq!(diff(&old, &new), PullChange::Everything);
        assert_eq!(diff(&new, &old), PullChange::Everything);
    }

    #[test]
    fn diff_changed_arch_value_is_everything() {
        let old = deployment_spec_with("nodeSelector", json!({"kubernetes.io/arch": "amd64"}));
        let new = deployment_spec_with("nodeSelector", json!({"kubernetes.io/arch": "arm64"}));
        assert_eq!(diff(&old, &new), PullChange::Everything);
        // Other nodeSelector keys do not matter for pulls.
        let zone = deployment_spec_with(
            "nodeSelector",
            json!({"kubernetes.io/arch": "amd64", "topology.kubernetes.io/zone": "a"}),
        );
        assert_eq!(diff(&old, &zone), PullChange::Nothing);
    }

    #[test]
    fn diff_dedups_and_counts_never_as_unpulled() {
        let old = spec(json!({"containers": [
            {"name": "a", "image": "a:1"},
            {"name": "b", "image": "b:1", "imagePullPolicy": "Never"}
        ]}));
        let new = spec(json!({
            "initContainers": [{"name": "i", "image": "c:1"}],
            "containers": [
                {"name": "a", "image": "a:1"},
                {"name": "b", "image": "b:1", "imagePullPolicy": "IfNotPresent"},
                {"name": "c", "image": "c:1"}
            ]
        }));
        assert_eq!(
            diff(&old, &new),
            PullChange::Images(vec!["c:1".to_owned(), "b:1".to_owned()])
        );
        // Removing a container pulls nothing new.
        let fewer = spec(json!({"containers": [{"name": "a", "image": "a:1"}]}));
        assert_eq!(diff(&old, &fewer), PullChange::Nothing);
        // Same secrets in another order: the kubelet tries them in order.
        let s1 =
            spec(json!({"containers": [], "imagePullSecrets": [{"name": "x"}, {"name": "y"}]}));
        let s2 =
            spec(json!({"containers": [], "imagePullSecrets": [{"name": "y"}, {"name": "x"}]}));
        assert_eq!(diff(&s1, &s2), PullChange::Everything);
    }

    // ---- PlatformConstraint ----

    fn affinity(terms: Value) -> PlatformConstraint {
        PlatformConstraint::of(&spec(json!({
            "containers": [],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": terms}}}
        })))
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> Value {
        json!({"key": key, "operator": op, "values": values})
    }

    const ARCH: &str = "kubernetes.io/arch";
    const OS: &str = "kubernetes.io/os";

    fn nodes() -> Vec<Platform> {
        vec![p("linux/amd64"), p("linux/arm64"), p("windows/amd64")]
    }

    #[test]
    fn unconstrained() {
        let c = PlatformConstraint::of(&spec(json!({"containers": []})));
        assert_eq!(c, PlatformConstraint::default());
        assert!(!c.is_constrained());
        assert!(c.allows("windows", "s390x"));
        assert_eq!(c.explicit_platforms(), None);
        assert_eq!(c.filter(&nodes()), nodes());
        assert_eq!(
            c.describe(),
            "no kubernetes.io/os or kubernetes.io/arch constraint"
        );
    }

    #[test]
    fn node_selector() {
        let c = PlatformConstraint::of(&spec(json!({"containers": [], "nodeSelector": {
            "kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64", "disk": "ssd"
        }})));
        assert!(c.is_constrained());
        assert_eq!(c.filter(&nodes()), vec![p("linux/arm64")]);
        assert_eq!(c.explicit_platforms(), Some(vec![p("linux/arm64")]));
        assert_eq!(
            c.describe(),
            "nodeSelector kubernetes.io/arch=arm64, kubernetes.io/os=linux"
        );
        // os only: arch is not pinned.
        let c = PlatformConstraint::of(&spec(
            json!({"containers": [], "nodeSelector": {"kubernetes.io/os": "windows"}}),
        ));
        assert_eq!(c.filter(&nodes()), vec![p("windows/amd64")]);
        assert_eq!(c.explicit_platforms(), None);
    }

    #[test]
    fn beta_labels_count_the_same() {
        let c = PlatformConstraint::of(&spec(json!({"containers": [], "nodeSelector": {
            "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "windows"
        }})));
        assert_eq!(c.filter(&nodes()), vec![p("windows/amd64")]);
        assert_eq!(c.explicit_platforms(), Some(vec![p("windows/amd64")]));
        let c = affinity(
            json!([{"matchExpressions": [expr("beta.kubernetes.io/arch", "In", &["arm64"])]}]),
        );
        assert_eq!(c.filter(&nodes()), vec![p("linux/arm64")]);
        assert_eq!(
            c.describe(),
            "node affinity beta.kubernetes.io/arch in (arm64)"
        );
    }

    #[rstest]
    #[case(expr(ARCH, "In", &["arm64", "amd64"]), &["linux/amd64", "linux/arm64", "windows/amd64"])]
    #[case(expr(ARCH, "In", &["arm64"]), &["linux/arm64"])]
    #[case(expr(ARCH, "NotIn", &["arm64"]), &["linux/amd64", "windows/amd64"])]
    #[case(expr(OS, "NotIn", &["windows"]), &["linux/amd64", "linux/arm64"])]
    #[case(json!({"key": ARCH, "operator": "Exists"}), &["linux/amd64", "linux/arm64", "windows/amd64"])]
    #[case(json!({"key": OS, "operator": "DoesNotExist"}), &[])]
    #[case(expr(ARCH, "Gt", &["1"]), &[])]
    #[case(expr(ARCH, "Bogus", &["amd64"]), &[])]
    fn affinity_operators(#[case] e: Value, #[case] allowed: &[&str]) {
        let c = affinity(json!([{"matchExpressions": [e]}]));
        assert!(c.is_constrained());
        let want: Vec<Platform> = allowed.iter().map(|s| p(s)).collect();
        assert_eq!(c.filter(&nodes()), want);
    }

    #[test]
    fn affinity_in_values_and_explicit_platforms() {
        let c = affinity(json!([{"matchExpressions": [
            expr(ARCH, "In", &["arm64", "amd64"]),
            expr("topology.kubernetes.io/zone", "In", &["a"])
        ]}]));
        assert_eq!(
            c.explicit_platforms(),
            Some(vec![p("linux/arm64"), p("linux/amd64")])
        );
        assert_eq!(
            c.describe(),
            "node affinity kubernetes.io/arch in (arm64, amd64)"
        );
        // NotIn does not pin the arch.
        let c = affinity(json!([{"matchExpressions": [expr(ARCH, "NotIn", &["arm64"])]}]));
        assert_eq!(c.explicit_platforms(), None);
    }

    #[test]
    fn explicit_platforms_of_many_values_are_capped_and_fast() {
        // Found by the admission fuzz target (tests/fuzz): 300 os x 300 arch values took
        // 45 s; 2000 x 2000 would have taken hours and held 4M platforms.
        let oses: Vec<String> = (0..2000).map(|i| format!("os{i}")).collect();
        let arches: Vec<String> = (0..2000).map(|i| format!("arch{i}")).collect();
        let oses: Vec<&str> = oses.iter().map(String::as_str).collect();
        let arches: Vec<&str> = arches.iter().map(String::as_str).collect();
        let c = affinity(json!([{"matchExpressions": [
            expr(OS, "In", &oses),
            expr(ARCH, "In", &arches),
            expr(ARCH, "NotIn", &arches[..1000]),
        ]}]));
        let got = c.explicit_platforms().unwrap();
        assert_eq!(got.len(), MAX_EXPLICIT_PLATFORMS);
        assert_eq!(got[0], p("os0/arch1000"));
        assert_eq!(got[MAX_EXPLICIT_PLATFORMS - 1], p("os0/arch1063"));
        // The cap does not hide a later term that leaves the arch open.
        let c = affinity(json!([
            {"matchExpressions": [expr(OS, "In", &oses), expr(ARCH, "In", &arches)]},
            {"matchExpressions": [expr(OS, "In", &["linux"])]}
        ]));
        assert_eq!(c.explicit_platforms(), None);
    }

    #[test]
    fn two_ored_terms() {
        let c = affinity(json!([
            {"matchExpressions": [expr(OS, "In", &["windows"]), expr(ARCH, "In", &["amd64"])]},
            {"matchExpressions": [expr(ARCH, "In", &["arm64"])]}
        ]));
        assert_eq!(
            c.filter(&nodes()),
            vec![p("linux/arm64"), p("windows/amd64")]
        );
        assert!(c.allows("windows", "arm64"));
        assert!(!c.allows("linux", "amd64"));
        assert_eq!(
            c.explicit_platforms(),
            Some(vec![p("windows/amd64"), p("linux/arm64")])
        );
        assert_eq!(
            c.describe(),
            "node affinity (kubernetes.io/os in (windows) and kubernetes.io/arch in (amd64)) or kubernetes.io/arch in (arm64)"
        );
        // A second term without an arch `In` leaves the arch open.
        let c = affinity(json!([
            {"matchExpressions": [expr(ARCH, "In", &["amd64"])]},
            {"matchExpressions": [expr(OS, "In", &["linux"])]}
        ]));
        assert_eq!(c.explicit_platforms(), None);
        assert_eq!(
            c.filter(&nodes()),
            vec![p("linux/amd64"), p("linux/arm64"), p("windows/amd64")]
        );
    }

    #[test]
    fn terms_only_about_other_keys_are_true() {
        let c = affinity(json!([
            {"matchExpressions": [expr(ARCH, "In", &["arm64"])]},
            {"matchExpressions": [expr("topology.kubernetes.io/zone", "In", &["a"])]}
        ]));
        assert!(!c.is_constrained());
        assert_eq!(c.filter(&nodes()), nodes());
        let c = affinity(json!([{"matchFields": [expr("metadata.name", "In", &["n1"])]}]));
        assert!(!c.is_constrained());
        let c = affinity(json!([]));
        assert!(!c.is_constrained());
        assert!(c.allows("linux", "amd64"));
    }

    #[test]
    fn node_selector_and_affinity_are_anded() {
        let c = PlatformConstraint::of(&spec(json!({
            "containers": [],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [expr(ARCH, "In", &["amd64", "arm64"])]}]}}}
        })));
        assert_eq!(c.filter(&nodes()), vec![p("linux/amd64"), p("linux/arm64")]);
        assert_eq!(
            c.describe(),
            "nodeSelector kubernetes.io/os=linux; node affinity kubernetes.io/arch in (amd64, arm64)"
        );
        // Contradiction: nothing allowed, and nothing named.
        let c = PlatformConstraint::of(&spec(json!({
            "containers": [],
            "nodeSelector": {"kubernetes.io/arch": "arm64"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [expr(ARCH, "In", &["amd64"])]}]}}}
        })));
        assert!(c.filter(&nodes()).is_empty());
        assert_eq!(c.explicit_platforms(), Some(vec![]));
    }

    // ---- decode errors ----

    fn decode_err(kind: WorkloadKind, obj: Value) -> String {
        match decode(kind, &obj) {
            Err(e @ WorkloadError::Decode { .. }) => e.to_string(),
            Ok(w) => panic!("expected an error, got {w:?}"),
        }
    }

    #[test]
    fn decode_errors() {
        let e = decode_err(WorkloadKind::Pod, json!({"metadata": {"name": "x"}}));
        assert_eq!(e, "cannot read Pod: spec is missing");
        let e = decode_err(WorkloadKind::Pod, json!({"spec": {"containers": "x"}}));
        assert!(
            e.starts_with("cannot read Pod: spec.containers: invalid type: string"),
            "{e}"
        );
        let e = decode_err(
            WorkloadKind::Deployment,
            json!({"spec": {"replicas": 1, "selector": {}}}),
        );
        assert_eq!(e, "cannot read Deployment: spec.template is missing");
        let e = decode_err(
            WorkloadKind::ReplicationController,
            json!({"spec": {"replicas": 1, "template": null}}),
        );
        assert_eq!(
            e,
            "cannot read ReplicationController: spec.template is missing"
        );
        let e = decode_err(
            WorkloadKind::CronJob,
            json!({"spec": {"jobTemplate": {"spec": {"template": "x"}}}}),
        );
        assert_eq!(
            e,
            "cannot read CronJob: spec.jobTemplate.spec.template: expected an object, got a string"
        );
        let e = decode_err(
            WorkloadKind::Job,
            json!({"spec": {"template": {"spec": {"container": []}}}}),
        );
        assert_eq!(
            e,
            "cannot read Job: spec.template.spec.containers is missing"
        );
        let e = decode_err(WorkloadKind::Pod, json!(null));
        assert_eq!(e, "cannot read Pod: expected a JSON object, got null");
        let e = decode_err(
            WorkloadKind::Pod,
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "image": 5}]}}),
        );
        assert!(
            e.starts_with("cannot read Pod: spec.containers[1].image: invalid type: integer"),
            "{e}"
        );
        let e = decode_err(
            WorkloadKind::Pod,
            json!({"spec": {"containers": [], "volumes": [{"name": "m", "image": {"reference": []}}]}}),
        );
        assert!(
            e.starts_with("cannot read Pod: spec.volumes[0].image: invalid type"),
            "{e}"
        );
        let e = decode_err(
            WorkloadKind::Pod,
            json!({"metadata": {"labels": []}, "spec": {"containers": []}}),
        );
        assert!(
            e.starts_with("cannot read Pod: metadata.labels: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn decode_error_detail_is_clipped() {
        let long = "x".repeat(5000);
        let e = decode(
            WorkloadKind::Pod,
            &json!({"spec": {"containers": [], "nodeSelector": long}}),
        );
        let Err(WorkloadError::Decode { detail, .. }) = e else {
            panic!("expected an error")
        };
        assert!(detail.len() <= MAX_DETAIL, "{}", detail.len());
        let e = decode(
            WorkloadKind::Pod,
            &json!({"spec": {"containers": "é".repeat(400)}}),
        );
        let Err(WorkloadError::Decode { detail, .. }) = e else {
            panic!("expected an error")
        };
        assert!(detail.len() <= MAX_DETAIL, "{}", detail.len());
        assert!(detail.len() > MAX_DETAIL - 8, "{}", detail.len());
        assert!(detail.ends_with('…'));
    }

    /// A deterministic stream of odd JSON values, and every fixture with parts of it
    /// replaced: nothing panics, and every kind is tried on every value.
    #[test]
    fn garbage_never_panics() {
        let leaves = [
            json!(null),
            json!(true),
            json!(-1),
            json!(1.5e300),
            json!(""),
            json!("x"),
            json!([]),
            json!([null, 1, "a", {}]),
            json!({}),
            json!({"containers": null}),
            json!({"containers": [null]}),
            json!({"containers": [{"name": 1, "image": {}}]}),
            json!({"template": {"spec": {"containers": [{}]}}}),
            json!({"jobTemplate": {"spec": {"template": {"spec": {"containers": [{}]}}}}}),
            json!({"nodeSelectorTerms": [{"matchExpressions": [{"key": 1}]}]}),
        ];
        let kinds = WorkloadKind::ALL;
        let mut objects: Vec<Value> = Vec::new();
        for leaf in &leaves {
            objects.push(leaf.clone());
            objects.push(json!({"spec": leaf}));
            objects.push(json!({"metadata": leaf, "spec": {"containers": []}}));
            for field in [
                "containers",
                "initContainers",
                "ephemeralContainers",
                "volumes",
                "affinity",
                "nodeSelector",
                "imagePullSecrets",
                "serviceAccountName",
            ] {
                objects.push(json!({"spec": {"containers": [], field: leaf}}));
                objects.push(json!({"spec": {"template": {"spec": {"containers": [{"name": "a", field: leaf}]}}}}));
            }
        }
        let fixture = review("cronjob-create")["request"]["object"].clone();
        for leaf in &leaves {
            let mut o = fixture.clone();
            o["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] =
                leaf.clone();
            objects.push(o);
            let mut o = fixture.clone();
            o["spec"]["jobTemplate"]["spec"]["template"]["spec"]["affinity"] =
                json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": leaf}});
            objects.push(o);
        }
        for obj in &objects {
            for kind in kinds {
                if let Ok(w) = decode(kind, obj) {
                    let c = PlatformConstraint::of(&w.spec);
                    let _ = (c.describe(), c.explicit_platforms(), c.filter(&nodes()));
                    let _ = (
                        images(&w.spec),
                        pull_secret_names(&w.spec),
                        service_account(&w.spec),
                    );
                    let _ = diff(&w.spec, &PodSpec::default());
                } else if let Err(WorkloadError::Decode { detail, kind: k }) = decode(kind, obj) {
                    assert!(detail.len() <= MAX_DETAIL);
                    assert_eq!(k, kind.as_str());
                }
            }
        }
    }

    #[test]
    fn delete_has_no_object() {
        let r = review("deployment-delete");
        assert!(decode(WorkloadKind::Deployment, &r["request"]["object"]).is_err());
        let old = decode(WorkloadKind::Deployment, &r["request"]["oldObject"]).expect("old");
        assert_eq!(
            uses(&old.spec),
            vec![(C, "web".to_owned(), "nginx:1.25".to_owned())]
        );
    }
}
