//! Every object

use super::*;

/// Typed round trip: an object that loses fields when it goes through its k8s-openapi
/// type has a misspelled or misplaced field (the API server would drop or reject it).
pub(crate) fn round_trip<T: Resource + DeserializeOwned + serde::Serialize>(
    object: &Value,
) -> Value {
    let typed: T = serde_json::from_value(object.clone())
        .unwrap_or_else(|e| panic!("{} does not deserialize: {e}", T::KIND));
    serde_json::to_value(typed).unwrap()
}

#[rstest]
#[case::base("base")]
#[case::warn("overlays/warn")]
#[case::enforce("overlays/enforce")]
#[case::cert_manager("overlays/cert-manager")]
fn every_object_has_its_kubernetes_type_and_no_unknown_fields(#[case] dir: &str) {
    let objects = render(dir);
    let mut kinds = BTreeSet::new();
    for object in objects.iter() {
        let kind = object["kind"].as_str().unwrap();
        let api_version = object["apiVersion"].as_str().unwrap();
        kinds.insert(kind.to_string());
        let back = match kind {
            "Namespace" => round_trip::<Namespace>(object),
            "ServiceAccount" => round_trip::<ServiceAccount>(object),
            "ClusterRole" => round_trip::<ClusterRole>(object),
            "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(object),
            "Role" => round_trip::<Role>(object),
            "RoleBinding" => round_trip::<RoleBinding>(object),
            "ConfigMap" => round_trip::<ConfigMap>(object),
            "Service" => round_trip::<Service>(object),
            "Deployment" => round_trip::<Deployment>(object),
            "PodDisruptionBudget" => round_trip::<PodDisruptionBudget>(object),
            "ValidatingWebhookConfiguration" => {
                round_trip::<ValidatingWebhookConfiguration>(object)
            }
            "Certificate" | "Issuer" => {
                assert_eq!(api_version, "cert-manager.io/v1");
                assert!(dir.ends_with("cert-manager"), "{dir}: cert-manager object");
                continue;
            }
            other => panic!("{dir}: unexpected kind {other}"),
        };
        assert_eq!(&back, object, "{dir}: {kind} changed in a typed round trip");
    }
    let expected: BTreeSet<String> = [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "ValidatingWebhookConfiguration",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert!(kinds.is_superset(&expected), "{dir}: kinds {kinds:?}");
}

#[test]
fn namespaced_objects_live_in_the_pullcheck_namespace() {
    for install in installs() {
        let ns: Namespace = install.one();
        assert_eq!(ns.metadata.name.as_deref(), Some(NAMESPACE));
        for object in install.objects.iter() {
            let kind = object["kind"].as_str().unwrap();
            let cluster_scoped = matches!(
                kind,
                "Namespace"
                    | "ClusterRole"
                    | "ClusterRoleBinding"
                    | "ValidatingWebhookConfiguration"
            );
            let namespace = object["metadata"]["namespace"].as_str();
            if cluster_scoped {
                assert_eq!(namespace, None, "{}: {kind}", install.dir);
            } else {
                assert_eq!(namespace, Some(NAMESPACE), "{}: {kind}", install.dir);
            }
        }
    }
}
