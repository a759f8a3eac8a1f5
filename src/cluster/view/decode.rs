//! List items decoded into what a scan needs and nothing more: unknown fields (managed
//! fields, annotations, resources, env, probes, …) are skipped by serde without being
//! kept, so a page of 500 Pods costs its text and a few hundred bytes per Pod.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::NamespaceResourceScope;
use serde::Deserialize;

use super::{Listed, Owner, PodState, Scale, Stuck};
use crate::kubelet::pull_failure::is_pull_failure;
use crate::kubelet::workload::{ImageSlot, PodSpec, WorkloadKind};
use crate::text::{truncate, FIELD_LIMIT, MESSAGE_LIMIT};

/// A list's body.
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub(super) struct ListOf<T> {
    #[serde(default)]
    pub metadata: ListMeta,
    #[serde(default = "Vec::new", deserialize_with = "null_as_empty")]
    pub items: Vec<T>,
}

#[derive(Default, Deserialize)]
pub(super) struct ListMeta {
    #[serde(default, rename = "continue")]
    pub continue_token: Option<String>,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// `metadata`, lean: name, namespace, uid, resourceVersion and the owners; the rest
/// (managed fields, labels, annotations) is skipped unread.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    owner_references: Option<Vec<OwnerRef>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnerRef {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    controller: Option<bool>,
}

/// An object's `metadata`, decoded leanly into kube's type (kube's watcher needs it).
fn lean_meta<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = Option::<Meta>::deserialize(d)?.unwrap_or_default();
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        owner_references: m.owner_references.map(|refs| {
            refs.into_iter()
                .map(|o| OwnerReference {
                    api_version: o.api_version,
                    kind: o.kind,
                    name: o.name,
                    uid: o.uid,
                    controller: o.controller,
                    block_owner_deletion: None,
                })
                .collect()
        }),
        ..ObjectMeta::default()
    })
}

fn listed(kind: WorkloadKind, meta: ObjectMeta) -> Listed {
    let controller = meta
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| Owner {
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            name: o.name.clone(),
            uid: o.uid.clone(),
        });
    Listed {
        kind,
        namespace: meta.namespace.unwrap_or_default(),
        name: meta.name.unwrap_or_default(),
        uid: meta.uid.unwrap_or_default(),
        controller,
        spec: None,
        scale: Scale::Active,
        pod: None,
    }
}

/// `PartialObjectMetadata`.
#[derive(Deserialize)]
pub(super) struct MetaItem {
    #[serde(default, deserialize_with = "lean_meta")]
    metadata: ObjectMeta,
}

impl MetaItem {
    pub fn into_listed(self, kind: WorkloadKind) -> Listed {
        listed(kind, self.metadata)
    }
}

/// A Pod (also what the Pod watch decodes: kube's watcher needs a [`kube::Resource`]).
#[derive(Clone, Debug, Deserialize)]
pub(super) struct PodItem {
    #[serde(default, deserialize_with = "lean_meta")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<PodSpec>,
    #[serde(default)]
    status: Option<PodStatus>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    container_statuses: Option<Vec<ContainerStatus>>,
    #[serde(default)]
    init_container_statuses: Option<Vec<ContainerStatus>>,
    #[serde(default)]
    ephemeral_container_statuses: Option<Vec<ContainerStatus>>,
}

#[derive(Clone, Debug, Deserialize)]
struct ContainerStatus {
    #[serde(default)]
    name: String,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    state: Option<ContainerState>,
}

#[derive(Clone, Debug, Deserialize)]
struct ContainerState {
    #[serde(default)]
    waiting: Option<Waiting>,
}

#[derive(Clone, Debug, Deserialize)]
struct Waiting {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl PodItem {
    pub fn into_listed(self) -> Listed {
        let mut out = listed(WorkloadKind::Pod, self.metadata);
        let spec = self.spec.unwrap_or_default();
        let status = self.status.unwrap_or_default();
        let mut stuck = Vec::new();
        for (slot, statuses) in [
            (ImageSlot::InitContainer, status.init_container_statuses),
            (ImageSlot::Container, status.container_statuses),
            (
                ImageSlot::EphemeralContainer,
                status.ephemeral_container_statuses,
            ),
        ] {
            for s in statuses.unwrap_or_default() {
                let Some(waiting) = s.state.and_then(|st| st.waiting) else {
                    continue;
                };
                let reason = waiting.reason.unwrap_or_default();
                if !is_pull_failure(&reason) {
                    continue;
                }
                let image = spec_image(&spec, slot, &s.name)
                    .or(s.image)
                    .unwrap_or_default();
                stuck.push(Stuck {
                    slot,
                    container: truncate(&s.name, FIELD_LIMIT),
                    image: truncate(&image, FIELD_LIMIT),
                    reason,
                    message: truncate(&waiting.message.unwrap_or_default(), MESSAGE_LIMIT),
                });
            }
        }
        out.pod = Some(PodState {
            phase: status.phase.unwrap_or_default(),
            stuck,
        });
        out.spec = Some(spec);
        out
    }
}

impl kube::Resource for PodItem {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("Pod")
    }

    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }

    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("pods")
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The image a container of `slot` named `name` has in the spec, as written.
fn spec_image(spec: &PodSpec, slot: ImageSlot, name: &str) -> Option<String> {
    let list = match slot {
        ImageSlot::InitContainer => spec.init_containers.as_deref().unwrap_or_default(),
        ImageSlot::EphemeralContainer => spec.ephemeral_containers.as_deref().unwrap_or_default(),
        _ => &spec.containers,
    };
    list.iter().find(|c| c.name == name)?.image.clone()
}

/// An object with a pod template: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job,
/// CronJob, ReplicationController.
#[derive(Deserialize)]
pub(super) struct TemplateItem {
    #[serde(default, deserialize_with = "lean_meta")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<TemplateSpec>,
    #[serde(default)]
    status: Option<TemplateStatus>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateSpec {
    #[serde(default)]
    replicas: Option<i32>,
    #[serde(default)]
    suspend: Option<bool>,
    #[serde(default)]
    template: Option<PodTemplate>,
    #[serde(default)]
    job_template: Option<JobTemplate>,
}

#[derive(Deserialize)]
struct PodTemplate {
    #[serde(default)]
    spec: Option<PodSpec>,
}

#[derive(Deserialize)]
struct JobTemplate {
    #[serde(default)]
    spec: Option<JobSpec>,
}

#[derive(Deserialize)]
struct JobSpec {
    #[serde(default)]
    template: Option<PodTemplate>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateStatus {
    #[serde(default)]
    desired_number_scheduled: Option<i32>,
}

impl TemplateItem {
    pub fn into_listed(self, kind: WorkloadKind) -> Listed {
        let mut out = listed(kind, self.metadata);
        let spec = self.spec.unwrap_or_default();
        out.scale = match kind {
            WorkloadKind::Job | WorkloadKind::CronJob if spec.suspend == Some(true) => {
                Scale::Suspended
            }
            WorkloadKind::DaemonSet
                if self.status.and_then(|s| s.desired_number_scheduled) == Some(0) =>
            {
                Scale::ScaledToZero
            }
            WorkloadKind::Deployment
            | WorkloadKind::ReplicaSet
            | WorkloadKind::StatefulSet
            | WorkloadKind::ReplicationController
                if spec.replicas == Some(0) =>
            {
                Scale::ScaledToZero
            }
            _ => Scale::Active,
        };
        let template = match kind {
            WorkloadKind::CronJob => spec.job_template.and_then(|j| j.spec?.template),
            _ => spec.template,
        };
        out.spec = template.and_then(|t| t.spec);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_keep_their_spec_controller_and_stuck_containers_only() {
        let page: ListOf<PodItem> = serde_json::from_value(json!({
            "kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "9", "continue": "tok"},
            "items": [{
                "metadata": {"name": "web-1", "namespace": "a", "uid": "u1",
                    "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "o0"},
                        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "o1", "controller": true}
                    ]},
                "spec": {"nodeName": "n1", "containers": [
                    {"name": "web", "image": "r.example/web:1", "resources": {"limits": {"cpu": "1"}}},
                    {"name": "side", "image": "r.example/side:1"}
                ], "initContainers": [{"name": "init", "image": "r.example/init:1"}]},
                "status": {"phase": "Pending",
                    "initContainerStatuses": [{"name": "init", "image": "r.example/init:1", "state": {"terminated": {"exitCode": 0}}}],
                    "containerStatuses": [
                        {"name": "web", "image": "r.example/web:1", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"r.example/web:1\""}}},
                        {"name": "side", "image": "r.example/side:1", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
                    ]}
            }]
        }))
        .unwrap();
        assert_eq!(page.metadata.continue_token.as_deref(), Some("tok"));
        let pod = page.items.into_iter().next().unwrap().into_listed();
        assert_eq!(
            (pod.namespace.as_str(), pod.name.as_str(), pod.uid.as_str()),
            ("a", "web-1", "u1")
        );
        assert_eq!(pod.controller.as_ref().unwrap().kind, "ReplicaSet");
        assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        let state = pod.pod.unwrap();
        assert_eq!(state.phase, "Pending");
        assert_eq!(
            state.stuck,
            vec![Stuck {
                slot: ImageSlot::Container,
                container: "web".into(),
                image: "r.example/web:1".into(),
                reason: "ImagePullBackOff".into(),
                message: "Back-off pulling image \"r.example/web:1\"".into(),
            }]
        );
    }

    #[test]
    fn templates_give_their_pod_spec_and_scale() {
        let item = |v| serde_json::from_value::<TemplateItem>(v).unwrap();
        let d = item(json!({"metadata": {"name": "d"}, "spec": {"replicas": 0, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}))
            .into_listed(WorkloadKind::Deployment);
        assert_eq!(d.scale, Scale::ScaledToZero);
        assert_eq!(d.spec.unwrap().containers[0].name, "c");
        let cj = item(json!({"metadata": {"name": "cj"}, "spec": {"suspend": true, "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "j", "image": "i"}]}}}}}}))
            .into_listed(WorkloadKind::CronJob);
        assert_eq!(cj.scale, Scale::Suspended);
        assert_eq!(cj.spec.unwrap().containers[0].name, "j");
        let ds = item(json!({"metadata": {"name": "ds"}, "spec": {"template": {"spec": {"containers": []}}}, "status": {"desiredNumberScheduled": 0}}))
            .into_listed(WorkloadKind::DaemonSet);
        assert_eq!(ds.scale, Scale::ScaledToZero);
        let s = item(
            json!({"metadata": {"name": "s"}, "spec": {"template": {"spec": {"containers": []}}}}),
        )
        .into_listed(WorkloadKind::StatefulSet);
        assert_eq!(s.scale, Scale::Active, "absent replicas default to 1");
        let broken =
            item(json!({"metadata": {"name": "b"}, "spec": {}})).into_listed(WorkloadKind::Job);
        assert!(broken.spec.is_none());
    }
}
