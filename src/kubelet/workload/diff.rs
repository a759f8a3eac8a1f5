//! What an UPDATE changed that matters for pulls.

use std::collections::HashSet;

use super::podspec::PodSpec;
use super::{images, pull_secret_names, service_account, PlatformConstraint};

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
    use crate::kubelet::workload::tests::{decoded, review, spec};
    use crate::kubelet::workload::{decode, WorkloadKind};
    use rstest::rstest;
    use serde_json::{json, Value};

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
}
