//! The part of a PodSpec that decides pulls, and nothing else: containers (of every kind)
//! with their image and pull policy, image volumes, `imagePullSecrets`, the ServiceAccount,
//! and the os/arch scheduling constraints (`nodeSelector`, required node affinity).
//!
//! Field names and types are those of the k8s-openapi types, and like them an absent field
//! reads as its default, so a PodSpec reads the same way through either; every other field
//! is skipped unread. The full
//! k8s-openapi `PodSpec` costs a review several kilobytes of moved structs and a few dozen
//! allocations for fields pullcheck never looks at, and makes a wrong type in an unrelated
//! field (say `resources`) an unreadable object.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// Absent reads as empty (`workload::decode` refuses that itself).
    #[serde(default)]
    pub containers: Vec<Container>,
    #[serde(default)]
    pub init_containers: Option<Vec<Container>>,
    #[serde(default)]
    pub ephemeral_containers: Option<Vec<Container>>,
    #[serde(default)]
    pub volumes: Option<Vec<Volume>>,
    #[serde(default)]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    #[serde(default)]
    pub service_account_name: Option<String>,
    /// Deprecated alias of `serviceAccountName`, still honoured.
    #[serde(default)]
    pub service_account: Option<String>,
    #[serde(default)]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub affinity: Option<Affinity>,
    /// The node the Pod was scheduled to (set on Pods only): where it pulls, for the
    /// cluster view's diagnosis of a Pod stuck pulling.
    #[serde(default)]
    pub node_name: Option<String>,
}

/// A container, init container or ephemeral container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub image_pull_policy: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    #[serde(default)]
    pub name: String,
    /// `volumes[].image` (image volumes, Kubernetes 1.31+).
    #[serde(default)]
    pub image: Option<ImageVolumeSource>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageVolumeSource {
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub pull_policy: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct LocalObjectReference {
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Affinity {
    #[serde(default)]
    pub node_affinity: Option<NodeAffinity>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAffinity {
    #[serde(default)]
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelector {
    #[serde(default)]
    pub node_selector_terms: Vec<NodeSelectorTerm>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelectorTerm {
    #[serde(default)]
    pub match_expressions: Option<Vec<NodeSelectorRequirement>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct NodeSelectorRequirement {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub operator: String,
    #[serde(default)]
    pub values: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every fixture's PodSpec reads the same through k8s-openapi's types and ours.
    #[test]
    fn reads_like_k8s_openapi() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/admission");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("fixtures") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
            let review: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            let object = &review["request"]["object"];
            for path in [
                &["spec"][..],
                &["spec", "template", "spec"],
                &["spec", "jobTemplate", "spec", "template", "spec"],
            ] {
                let spec = path.iter().fold(object, |v, k| &v[*k]);
                if spec.get("containers").is_none() {
                    continue;
                }
                let ours: PodSpec = serde_json::from_value(spec.clone()).expect("ours");
                let theirs: k8s_openapi::api::core::v1::PodSpec =
                    serde_json::from_value(spec.clone()).expect("k8s-openapi");
                assert_eq!(ours, project(&theirs));
                seen += 1;
            }
        }
        assert!(seen >= 10, "{seen} PodSpecs compared");

        let spec = json!({
            "containers": [{"name": "a", "image": "x", "imagePullPolicy": "Always", "resources": {"limits": {"cpu": "1"}}}],
            "initContainers": [{"name": "i", "image": "y"}],
            "ephemeralContainers": [{"name": "e", "image": "z"}],
            "volumes": [{"name": "v", "image": {"reference": "r", "pullPolicy": "Never"}}, {"name": "w", "emptyDir": {}}],
            "imagePullSecrets": [{"name": "s"}, {}],
            "serviceAccountName": "sa", "serviceAccount": "old",
            "nodeSelector": {"kubernetes.io/arch": "arm64"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}
            ]}}},
        });
        let ours: PodSpec = serde_json::from_value(spec.clone()).expect("ours");
        let theirs: k8s_openapi::api::core::v1::PodSpec =
            serde_json::from_value(spec).expect("k8s-openapi");
        assert_eq!(ours, project(&theirs));
    }

    /// Wrong types are refused by both; absent and null fields read as defaults in both.
    #[test]
    fn wrong_types_absent_and_null_fields() {
        for bad in [
            json!({"containers": [{"name": "a", "image": 3}]}),
            json!({"containers": {}}),
            json!({"containers": [], "volumes": [{"name": "v", "image": "x"}]}),
            json!({"containers": [], "imagePullSecrets": ["s"]}),
            json!({"containers": [], "nodeSelector": {"a": 1}}),
            json!({"containers": [], "affinity": {"nodeAffinity": 5}}),
        ] {
            assert!(
                serde_json::from_value::<PodSpec>(bad.clone()).is_err(),
                "{bad}"
            );
            assert!(
                serde_json::from_value::<k8s_openapi::api::core::v1::PodSpec>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        for odd in [
            json!({}),
            json!({"containers": [{"image": "x"}], "volumes": [{"image": {}}]}),
            json!({"containers": [{"name": "a", "image": null}], "volumes": null,
                "imagePullSecrets": null, "nodeSelector": null, "affinity": null}),
            json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}}),
        ] {
            let ours: PodSpec = serde_json::from_value(odd.clone()).expect("ours");
            let theirs: k8s_openapi::api::core::v1::PodSpec =
                serde_json::from_value(odd).expect("k8s-openapi");
            assert_eq!(ours, project(&theirs));
        }
    }

    fn project(s: &k8s_openapi::api::core::v1::PodSpec) -> PodSpec {
        let container = |name: &str, image: &Option<String>, policy: &Option<String>| Container {
            name: name.to_owned(),
            image: image.clone(),
            image_pull_policy: policy.clone(),
        };
        PodSpec {
            containers: s
                .containers
                .iter()
                .map(|c| container(&c.name, &c.image, &c.image_pull_policy))
                .collect(),
            init_containers: s.init_containers.as_ref().map(|v| {
                v.iter()
                    .map(|c| container(&c.name, &c.image, &c.image_pull_policy))
                    .collect()
            }),
            ephemeral_containers: s.ephemeral_containers.as_ref().map(|v| {
                v.iter()
                    .map(|c| container(&c.name, &c.image, &c.image_pull_policy))
                    .collect()
            }),
            volumes: s.volumes.as_ref().map(|v| {
                v.iter()
                    .map(|v| Volume {
                        name: v.name.clone(),
                        image: v.image.as_ref().map(|i| ImageVolumeSource {
                            reference: i.reference.clone(),
                            pull_policy: i.pull_policy.clone(),
                        }),
                    })
                    .collect()
            }),
            image_pull_secrets: s.image_pull_secrets.as_ref().map(|v| {
                v.iter()
                    .map(|r| LocalObjectReference {
                        name: r.name.clone(),
                    })
                    .collect()
            }),
            service_account_name: s.service_account_name.clone(),
            service_account: s.service_account.clone(),
            node_selector: s.node_selector.clone(),
            node_name: s.node_name.clone(),
            affinity: s.affinity.as_ref().map(|a| Affinity {
                node_affinity: a.node_affinity.as_ref().map(|n| NodeAffinity {
                    required_during_scheduling_ignored_during_execution: n
                        .required_during_scheduling_ignored_during_execution
                        .as_ref()
                        .map(|r| NodeSelector {
                            node_selector_terms: r
                                .node_selector_terms
                                .iter()
                                .map(|t| NodeSelectorTerm {
                                    match_expressions: t.match_expressions.as_ref().map(|m| {
                                        m.iter()
                                            .map(|e| NodeSelectorRequirement {
                                                key: e.key.clone(),
                                                operator: e.operator.clone(),
                                                values: e.values.clone(),
                                            })
                                            .collect()
                                    }),
                                })
                                .collect(),
                        }),
                }),
            }),
        }
    }
}
