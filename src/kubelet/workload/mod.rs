//! Workloads as the kubelet will see them: finding the PodSpec in an admitted object (Pod,
//! Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, ReplicationController),
//! listing every image the kubelet will pull and where it appears (`images`: initContainers,
//! containers, ephemeralContainers, image volumes), the pull secrets and ServiceAccount
//! that decide credentials, the Pod's constraints on `kubernetes.io/os` and
//! `kubernetes.io/arch` (`constraints`), and what an UPDATE changed that matters for pulls
//! (`diff`).
//!
//! Pure code over `serde_json::Value` and the PodSpec subset of [`podspec`]: no I/O.
//! Nothing here panics on any input; error details are at most [`MAX_DETAIL`] bytes.
//! Depends on: [`crate::kubelet::platform`], [`crate::text`].

mod constraints;
mod diff;
mod images;
pub mod podspec;

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::text::truncate;

pub use constraints::{PlatformConstraint, MAX_EXPLICIT_PLATFORMS};
pub use diff::{diff, PullChange};
pub use images::{images, pull_secret_names, service_account, ImageSlot, ImageUse};
pub use podspec::PodSpec;
use podspec::{Container, Volume};

/// Longest [`WorkloadError`] detail, in bytes.
pub const MAX_DETAIL: usize = 300;

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
/// ([`crate::kubelet::workload::podspec`]); other fields
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

/// [`decode`] for an object's JSON text, as an AdmissionReview carries it: only
/// `metadata`'s name, generateName, namespace and ownerReferences, the steps of the path to
/// the PodSpec, and the PodSpec fields that decide pulls are read from the text; nothing
/// else becomes a value. A well-formed object reads the same as through [`decode`]; when
/// anything is off (a missing step, a wrong type, no containers, duplicate keys) the
/// object is read again through [`decode`], whose answer — the workload or the precise
/// error — is the one given.
pub fn decode_raw(kind: WorkloadKind, object: &str) -> Result<Workload, WorkloadError> {
    if let Some(workload) = decode_fast(kind, object) {
        return Ok(workload);
    }
    let value: Value = serde_json::from_str(object)
        .map_err(|e| WorkloadError::decode(kind, format!("not JSON: {e}")))?;
    decode(kind, &value)
}

/// The well-formed case of [`decode_raw`]; `None` for anything else. One pass over the
/// text: the steps of the path to the PodSpec are typed per kind, every step must be a JSON
/// object (`map_only`: serde's derived structs would also take arrays), and what is not on
/// the path is skipped as it is read.
fn decode_fast(kind: WorkloadKind, object: &str) -> Option<Workload> {
    use fast::{Inner, JobTemplated, Obj, Templated};
    let (meta, spec) = match kind {
        WorkloadKind::Pod => {
            let o: Obj<PodSpec> = fast::read(object)?;
            (o.metadata, o.spec?)
        }
        WorkloadKind::CronJob => {
            let o: Obj<JobTemplated<Templated<PodSpec>>> = fast::read(object)?;
            let job: Inner<Templated<PodSpec>> = o.spec?.job_template?;
            (o.metadata, job.spec?.template?.spec?)
        }
        _ => {
            let o: Obj<Templated<PodSpec>> = fast::read(object)?;
            (o.metadata, o.spec?.template?.spec?)
        }
    };
    let meta = meta.unwrap_or_default();
    if spec.containers.is_empty() {
        // Absent, null or empty: let `decode` tell which.
        return None;
    }
    let controller = meta
        .owner_references
        .unwrap_or_default()
        .into_iter()
        .find(|o| o.controller == Some(true))
        .map(|o| format!("{}/{}", o.kind, o.name));
    Some(Workload {
        kind,
        name: match meta.name {
            Some(n) if !n.is_empty() => n,
            _ => meta.generate_name.unwrap_or_default(),
        },
        namespace: meta.namespace.filter(|n| !n.is_empty()),
        spec,
        controller,
    })
}

/// The typed steps of [`decode_fast`].
mod fast {
    use serde::de::value::MapAccessDeserializer;
    use serde::de::{Deserializer, MapAccess, Visitor};
    use serde::Deserialize;

    /// A JSON object whose `metadata` and `spec` are read.
    #[derive(Deserialize)]
    #[serde(bound = "S: Deserialize<'de>")]
    pub struct Obj<S> {
        #[serde(default, deserialize_with = "map_only")]
        pub metadata: Option<Meta>,
        #[serde(default, deserialize_with = "map_only")]
        pub spec: Option<S>,
    }

    /// `template` of a workload's spec.
    #[derive(Deserialize)]
    #[serde(bound = "S: Deserialize<'de>")]
    pub struct Templated<S> {
        #[serde(default, deserialize_with = "map_only")]
        pub template: Option<Inner<S>>,
    }

    /// `jobTemplate` of a CronJob's spec.
    #[derive(Deserialize)]
    #[serde(bound = "S: Deserialize<'de>")]
    pub struct JobTemplated<S> {
        #[serde(default, rename = "jobTemplate", deserialize_with = "map_only")]
        pub job_template: Option<Inner<S>>,
    }

    /// A template: its `spec`.
    #[derive(Deserialize)]
    #[serde(bound = "S: Deserialize<'de>")]
    pub struct Inner<S> {
        #[serde(default, deserialize_with = "map_only")]
        pub spec: Option<S>,
    }

    #[derive(Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Meta {
        #[serde(default)]
        pub name: Option<String>,
        #[serde(default)]
        pub generate_name: Option<String>,
        #[serde(default)]
        pub namespace: Option<String>,
        #[serde(default)]
        pub owner_references: Option<Vec<Owner>>,
    }

    #[derive(Deserialize)]
    pub struct Owner {
        pub kind: String,
        pub name: String,
        #[serde(default)]
        pub controller: Option<bool>,
    }

    /// The whole text as one object, nothing after it.
    pub fn read<'de, T: Deserialize<'de>>(text: &'de str) -> Option<T> {
        let mut de = serde_json::Deserializer::from_str(text);
        let value = map_only(&mut de).ok()??;
        de.end().ok()?;
        Some(value)
    }

    /// `null` as `None`, a JSON object as `T`; anything else (an array too) is an error.
    fn map_only<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        struct Only<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Only<T> {
            type Value = Option<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object or null")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_map(self)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Some)
            }
        }
        d.deserialize_option(Only(std::marker::PhantomData))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::platform::Platform;
    use rstest::rstest;
    use serde_json::json;

    pub(super) fn review(name: &str) -> Value {
        let text = match name {
            "cronjob-create" => {
                include_str!("../../../tests/fixtures/admission/cronjob-create.json")
            }
            "daemonset-create" => {
                include_str!("../../../tests/fixtures/admission/daemonset-create.json")
            }
            "deployment-create" => {
                include_str!("../../../tests/fixtures/admission/deployment-create.json")
            }
            "deployment-delete" => {
                include_str!("../../../tests/fixtures/admission/deployment-delete.json")
            }
            "deployment-update-image" => {
                include_str!("../../../tests/fixtures/admission/deployment-update-image.json")
            }
            "deployment-update-scale" => {
                include_str!("../../../tests/fixtures/admission/deployment-update-scale.json")
            }
            "job-create" => include_str!("../../../tests/fixtures/admission/job-create.json"),
            "pod-create-dryrun" => {
                include_str!("../../../tests/fixtures/admission/pod-create-dryrun.json")
            }
            "pod-create-owned" => {
                include_str!("../../../tests/fixtures/admission/pod-create-owned.json")
            }
            "pod-ephemeralcontainers-update" => {
                include_str!(
                    "../../../tests/fixtures/admission/pod-ephemeralcontainers-update.json"
                )
            }
            "pod-image-volume" => {
                include_str!("../../../tests/fixtures/admission/pod-image-volume.json")
            }
            "replicaset-create" => {
                include_str!("../../../tests/fixtures/admission/replicaset-create.json")
            }
            "replicationcontroller-create" => {
                include_str!("../../../tests/fixtures/admission/replicationcontroller-create.json")
            }
            "statefulset-create" => {
                include_str!("../../../tests/fixtures/admission/statefulset-create.json")
            }
            other => panic!("no fixture {other}"),
        };
        serde_json::from_str(text).expect("fixture is JSON")
    }

    pub(super) fn kind_of(review: &Value) -> WorkloadKind {
        let k = &review["request"]["kind"];
        WorkloadKind::from_group_kind(
            k["group"].as_str().expect("group"),
            k["kind"].as_str().expect("kind"),
        )
        .expect("known kind")
    }

    /// (kind, object) and (kind, oldObject) of a fixture, decoded.
    pub(super) fn decoded(name: &str) -> (Workload, Option<Workload>) {
        let r = review(name);
        let kind = kind_of(&r);
        let new = decode(kind, &r["request"]["object"]).expect("object decodes");
        let old = match &r["request"]["oldObject"] {
            Value::Null => None,
            v => Some(decode(kind, v).expect("oldObject decodes")),
        };
        (new, old)
    }

    pub(super) fn uses(spec: &PodSpec) -> Vec<(ImageSlot, String, String)> {
        images(spec)
            .into_iter()
            .map(|u| (u.slot, u.name, u.image))
            .collect()
    }

    pub(super) fn spec(v: Value) -> PodSpec {
        serde_json::from_value(v).expect("PodSpec")
    }

    pub(super) fn p(s: &str) -> Platform {
        Platform::parse(s).expect("platform")
    }

    pub(super) fn nodes() -> Vec<Platform> {
        vec![p("linux/amd64"), p("linux/arm64"), p("windows/amd64")]
    }

    pub(super) use ImageSlot::{
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

    /// The webhook reads an object's text, CI its value: every fixture and every way an
    /// object can be off reads the same through both.
    #[test]
    fn text_and_value_read_the_same() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/admission");
        let mut objects = Vec::new();
        for entry in std::fs::read_dir(dir).expect("fixtures") {
            let path = entry.expect("entry").path();
            let review: Value =
                serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("JSON");
            for key in ["object", "oldObject"] {
                if review["request"][key].is_object() {
                    objects.push(serde_json::to_string(&review["request"][key]).unwrap());
                }
            }
        }
        assert!(objects.len() >= 10, "{} fixture objects", objects.len());
        for text in &objects {
            // The API server's objects take the fast way (for their own kind).
            assert!(
                WorkloadKind::ALL
                    .iter()
                    .any(|k| decode_fast(*k, text).is_some()),
                "read only the slow way: {text}"
            );
        }
        let pod = |spec: &str, meta: &str| format!(r#"{{"metadata":{meta},"spec":{spec}}}"#);
        let odd = [
            pod(r#"{"containers":[{"name":"c","image":"a"}]}"#, r#"{"generateName":"g-"}"#),
            pod(
                r#"{"containers":[{"name":"c","image":"a"}]}"#,
                r#"{"name":"p","ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"u","controller":true}]}"#,
            ),
            pod(r#"{"containers":[]}"#, "{}"),
            pod(r#"{}"#, "{}"),
            pod(r#"{"containers":null}"#, "null"),
            pod(r#"{"containers":"nginx"}"#, "{}"),
            pod(r#"[]"#, "{}"),
            pod(r#"{"containers":[{"name":"c","image":5}]}"#, "{}"),
            pod(r#"{"containers":[{"name":"c","image":"a"}]}"#, r#"{"name":5}"#),
            r#"{"spec":{"containers":[{"name":"c","image":"a"}]},"spec":{"containers":[{"name":"d","image":"b"}]}}"#.to_string(),
            r#"{"spec":{"template":null}}"#.to_string(),
            r#"{"spec":{"template":{"spec":"x"}}}"#.to_string(),
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"a"}]}}}}"#.to_string(),
            r#"{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"a"}]}}}}}}"#.to_string(),
            "[]".to_string(),
            "7".to_string(),
            // Arrays where a step's object belongs: serde's derived structs would read
            // them by position.
            pod(r#"{"containers":[{"name":"c","image":"a"}]}"#, r#"["n","g","ns"]"#),
            pod(r#"[[{"name":"c","image":"a"}]]"#, "{}"),
            r#"[{"spec":{"containers":[{"name":"c","image":"a"}]}}]"#.to_string(),
            r#"{"spec":[[{"spec":{"containers":[{"name":"c","image":"a"}]}}]]}"#.to_string(),
            r#"{"spec":{"template":[{"containers":[{"name":"c","image":"a"}]}]}}"#.to_string(),
            r#"{"spec":{"jobTemplate":[{"template":{"spec":{"containers":[{"name":"c","image":"a"}]}}}]}}"#.to_string(),
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"a"}]}},"template":null}}"#.to_string(),
            r#"{"metadata":{"name":"a"},"metadata":{"name":"b"},"spec":{"containers":[{"name":"c","image":"a"}]}}"#.to_string(),
        ];
        objects.extend(odd);
        for text in &objects {
            let value: Value = serde_json::from_str(text).expect("JSON");
            for kind in WorkloadKind::ALL {
                assert_eq!(
                    decode_raw(kind, text),
                    decode(kind, &value),
                    "{kind} from {text}"
                );
            }
        }
    }
}
