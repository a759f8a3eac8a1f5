//! The cluster install: every kustomize render of `webhook-config/` (base and overlays),
//! typed with k8s-openapi and checked against what the server and the API server rely on;
//! the certificates of `pullcheck::webhook::certs` (TLS handshake with rustls, `openssl verify`);
//! and `certs/install.sh` against a recording `kubectl`.
//!
//! Needs `kubectl` (for `kubectl kustomize`, offline), `openssl` and `bash` on the PATH:
//! the tests fail, loudly, without them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingWebhook, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodSpec, Probe, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::Resource;
use rstest::rstest;
use serde::de::DeserializeOwned;
use serde_json::Value;

const NAMESPACE: &str = "pullcheck";
const MODES: [&str; 3] = ["enforce", "warn", "audit"];
const TLS_SECRET: &str = "pullcheck-tls";
/// Where `--metrics-listen` serves /metrics, /healthz and /readyz over plain HTTP.
const METRICS_PORT: i32 = 9090;

// ---------------------------------------------------------------------------------------
// Rendering

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `kubectl kustomize webhook-config/<dir>`, one JSON value per document (cached).
fn render(dir: &str) -> Arc<Vec<Value>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Vec<Value>>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().unwrap().get(dir) {
        return hit.clone();
    }
    let objects = Arc::new(render_path(&repo().join("webhook-config").join(dir)));
    cache
        .lock()
        .unwrap()
        .insert(dir.to_string(), objects.clone());
    objects
}

/// `kubectl kustomize <path>`, one JSON value per document.
fn render_path(path: &Path) -> Vec<Value> {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "`kubectl kustomize` is needed to render {}, and kubectl cannot run: {e}",
                path.display()
            )
        });
    assert!(
        output.status.success(),
        "kubectl kustomize {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    // Empty documents are skipped.
    serde_saphyr::from_multiple(&text).unwrap()
}

/// A rendered install and the default mode it must carry.
struct Install {
    dir: &'static str,
    mode: &'static str,
    objects: Arc<Vec<Value>>,
}

impl Install {
    fn new(dir: &'static str, mode: &'static str) -> Install {
        Install {
            dir,
            mode,
            objects: render(dir),
        }
    }

    fn all_of_kind(&self, api_version: &str, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|o| o["apiVersion"] == api_version && o["kind"] == kind)
            .collect()
    }

    /// The one object of type `T` (there must be exactly one).
    fn one<T: Resource + DeserializeOwned>(&self) -> T {
        let found = self.all_of_kind(T::API_VERSION, T::KIND);
        assert_eq!(
            found.len(),
            1,
            "{}: {} objects of kind {}",
            self.dir,
            found.len(),
            T::KIND
        );
        serde_json::from_value(found[0].clone())
            .unwrap_or_else(|e| panic!("{}: {} does not deserialize: {e}", self.dir, T::KIND))
    }

    fn webhooks(&self) -> Vec<ValidatingWebhook> {
        self.one::<ValidatingWebhookConfiguration>()
            .webhooks
            .unwrap_or_default()
    }

    fn deployment(&self) -> Deployment {
        self.one::<Deployment>()
    }

    fn pod_spec(&self) -> PodSpec {
        self.deployment().spec.template.spec.unwrap()
    }

    fn container(&self) -> Container {
        let containers = self.pod_spec().containers;
        assert_eq!(containers.len(), 1, "{}: one container", self.dir);
        containers.into_iter().next().unwrap()
    }

    fn pod_labels(&self) -> BTreeMap<String, String> {
        self.deployment()
            .spec
            .template
            .metadata
            .and_then(|m| m.labels)
            .unwrap_or_default()
    }
}

fn installs() -> Vec<Install> {
    vec![
        Install::new("base", "warn"),
        Install::new("overlays/warn", "warn"),
        Install::new("overlays/enforce", "enforce"),
        Install::new("overlays/cert-manager", "warn"),
    ]
}

/// Label selector semantics of the API server (matchLabels AND matchExpressions).
fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => panic!("unknown selector operator {other}"),
        }
    });
    labels_ok && expressions_ok
}

fn namespace_labels(name: &str, mode: Option<&str>) -> BTreeMap<String, String> {
    let mut labels =
        BTreeMap::from([("kubernetes.io/metadata.name".to_string(), name.to_string())]);
    if let Some(mode) = mode {
        labels.insert("pullcheck.dev/mode".into(), mode.into());
    }
    labels
}

/// The paths the API server would call for a request in that namespace.
fn routes(install: &Install, labels: &BTreeMap<String, String>) -> Vec<String> {
    install
        .webhooks()
        .iter()
        .filter(|w| {
            let selector = w
                .namespace_selector
                .as_ref()
                .expect("every entry has a namespaceSelector");
            selects(selector, labels)
        })
        .map(|w| {
            w.client_config
                .service
                .as_ref()
                .unwrap()
                .path
                .clone()
                .unwrap()
        })
        .collect()
}

fn mode_from_args(args: &[String]) -> Option<String> {
    let modes: Vec<&String> = args
        .iter()
        .filter(|a| a.starts_with("--default-mode"))
        .collect();
    assert!(modes.len() <= 1, "--default-mode given twice: {args:?}");
    modes.first().map(|a| {
        a.strip_prefix("--default-mode=")
            .unwrap_or_else(|| panic!("write --default-mode=MODE as one argument: {a}"))
            .to_string()
    })
}

// ---------------------------------------------------------------------------------------
// Every object

/// Typed round trip: an object that loses fields when it goes through its k8s-openapi
/// type has a misspelled or misplaced field (the API server would drop or reject it).
fn round_trip<T: Resource + DeserializeOwned + serde::Serialize>(object: &Value) -> Value {
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

// ---------------------------------------------------------------------------------------
// ValidatingWebhookConfiguration

#[test]
fn rules_cover_exactly_the_workload_resources_on_create_and_update() {
    let expected: BTreeSet<(String, String, String)> = [
        ("", "pods"),
        ("", "pods/ephemeralcontainers"),
        ("", "replicationcontrollers"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
    ]
    .iter()
    .map(|(g, r)| (g.to_string(), "v1".to_string(), r.to_string()))
    .collect();
    for install in installs() {
        for webhook in install.webhooks() {
            let mut covered = BTreeSet::new();
            for rule in webhook.rules.clone().unwrap_or_default() {
                let operations: BTreeSet<String> = rule
                    .operations
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                assert_eq!(
                    operations,
                    BTreeSet::from(["CREATE".to_string(), "UPDATE".to_string()]),
                    "{} {}",
                    install.dir,
                    webhook.name
                );
                assert_eq!(rule.scope.as_deref(), Some("Namespaced"));
                for group in rule.api_groups.iter().flatten() {
                    for version in rule.api_versions.iter().flatten() {
                        for resource in rule.resources.iter().flatten() {
                            assert!(
                                covered.insert((group.clone(), version.clone(), resource.clone())),
                                "{} {}: {group}/{version} {resource} twice",
                                install.dir,
                                webhook.name
                            );
                        }
                    }
                }
            }
            assert_eq!(covered, expected, "{} {}", install.dir, webhook.name);
        }
    }
}

#[test]
fn every_entry_is_side_effect_free_v1_fail_open_and_within_ten_seconds() {
    for install in installs() {
        let webhooks = install.webhooks();
        assert_eq!(webhooks.len(), 4, "{}: default + one per mode", install.dir);
        for w in &webhooks {
            let at = format!("{} {}", install.dir, w.name);
            assert_eq!(w.side_effects, "None", "{at}");
            assert_eq!(w.admission_review_versions, vec!["v1".to_string()], "{at}");
            let timeout = w.timeout_seconds.expect("timeoutSeconds set");
            assert!(
                (1..=10).contains(&timeout),
                "{at}: timeoutSeconds {timeout}"
            );
            assert_eq!(w.failure_policy.as_deref(), Some("Ignore"), "{at}");
            assert_eq!(w.match_policy.as_deref(), Some("Equivalent"), "{at}");
            assert!(w.object_selector.is_none(), "{at}: no objectSelector");
            // Filled by certs/install.sh or cainjector; written here it would be wiped on
            // every re-apply.
            assert!(
                w.client_config.ca_bundle.is_none(),
                "{at}: caBundle must not be in the manifests"
            );
            assert!(w.client_config.url.is_none(), "{at}: service, not url");
        }
    }
}

#[test]
fn each_entry_calls_the_path_of_its_mode_and_the_default_entry_the_install_mode() {
    for install in installs() {
        let mut names = BTreeSet::new();
        for w in install.webhooks() {
            let path = w
                .client_config
                .service
                .as_ref()
                .unwrap()
                .path
                .clone()
                .unwrap();
            let mode = w
                .name
                .strip_suffix(".pullcheck.dev")
                .unwrap_or_else(|| panic!("{}: webhook name {}", install.dir, w.name));
            let expected = if mode == "default" {
                install.mode
            } else {
                mode
            };
            assert!(MODES.contains(&expected), "{}: {}", install.dir, w.name);
            assert_eq!(
                path,
                format!("/validate/{expected}"),
                "{} {}",
                install.dir,
                w.name
            );
            names.insert(mode.to_string());
        }
        assert_eq!(
            names,
            BTreeSet::from(["default", "enforce", "warn", "audit"].map(String::from)),
            "{}",
            install.dir
        );
    }
}

#[test]
fn namespaces_are_routed_by_their_label_and_unlabelled_ones_to_the_default_mode() {
    for install in installs() {
        let at = install.dir;
        // No label: the install's default mode, through exactly one entry.
        assert_eq!(
            routes(&install, &namespace_labels("team-a", None)),
            vec![format!("/validate/{}", install.mode)],
            "{at}"
        );
        for mode in MODES {
            assert_eq!(
                routes(&install, &namespace_labels("team-a", Some(mode))),
                vec![format!("/validate/{mode}")],
                "{at}: label {mode}"
            );
        }
        // `off` and unknown values are routed nowhere.
        for value in ["off", "Enforce", ""] {
            assert!(
                routes(&install, &namespace_labels("team-a", Some(value))).is_empty(),
                "{at}: label {value:?}"
            );
        }
        // pullcheck's own namespace and kube-system never, whatever their labels.
        for ns in [NAMESPACE, "kube-system"] {
            for mode in [None, Some("enforce"), Some("warn"), Some("audit")] {
                assert!(
                    routes(&install, &namespace_labels(ns, mode)).is_empty(),
                    "{at}: {ns} {mode:?}"
                );
            }
        }
    }
}

#[test]
fn every_entry_excludes_pullcheck_and_kube_system_by_name() {
    for install in installs() {
        for w in install.webhooks() {
            let selector = w.namespace_selector.clone().unwrap();
            let excluded = selector.match_expressions.iter().flatten().any(|e| {
                e.key == "kubernetes.io/metadata.name"
                    && e.operator == "NotIn"
                    && e.values.clone().unwrap_or_default()
                        == vec![NAMESPACE.to_string(), "kube-system".to_string()]
            });
            assert!(excluded, "{} {}: {selector:?}", install.dir, w.name);
        }
    }
}

#[test]
fn match_conditions_are_the_documented_ones_and_guard_updates_only() {
    for install in installs() {
        for w in install.webhooks() {
            let conditions = w.match_conditions.clone().unwrap_or_default();
            let names: Vec<&str> = conditions.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(
                names,
                vec!["pod-template-changed"],
                "{} {}",
                install.dir,
                w.name
            );
            let expression = &conditions[0].expression;
            // CREATE must always reach the webhook: the condition is true for anything but
            // an UPDATE before it looks at oldObject (which is null on CREATE).
            assert!(
                expression
                    .trim_start()
                    .starts_with("request.operation != 'UPDATE' ||"),
                "{expression}"
            );
        }
    }
}

#[test]
fn the_service_reference_reaches_the_container_port() {
    for install in installs() {
        let service: Service = install.one();
        let spec = service.spec.clone().unwrap();
        let container = install.container();
        let container_port = container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("https"))
            .expect("container port named https");
        assert_eq!(container_port.container_port, 8443);
        assert!(
            selects(
                &LabelSelector {
                    match_labels: spec.selector.clone(),
                    ..Default::default()
                },
                &install.pod_labels()
            ),
            "{}: Service selects the pods",
            install.dir
        );
        for w in install.webhooks() {
            let reference = w.client_config.service.clone().unwrap();
            assert_eq!(
                Some(&reference.name),
                service.metadata.name.as_ref(),
                "{}",
                install.dir
            );
            assert_eq!(
                Some(&reference.namespace),
                service.metadata.namespace.as_ref()
            );
            let port = reference.port.unwrap_or(443);
            let service_port = spec
                .ports
                .iter()
                .flatten()
                .find(|p| p.port == port)
                .unwrap_or_else(|| panic!("{}: Service has no port {port}", install.dir));
            let reaches = match service_port.target_port.clone() {
                Some(IntOrString::Int(n)) => n == container_port.container_port,
                Some(IntOrString::String(name)) => {
                    container_port.name.as_deref() == Some(name.as_str())
                }
                None => port == container_port.container_port,
            };
            assert!(
                reaches,
                "{}: Service port {port} does not reach 8443",
                install.dir
            );
        }
        let annotations = service.metadata.annotations.unwrap_or_default();
        assert_eq!(
            annotations.get("prometheus.io/scrape").map(String::as_str),
            Some("true")
        );
        // Metrics on their own plain-HTTP port (a NetworkPolicy can admit Prometheus there
        // without admitting it to reviews), where the server listens for them.
        assert_eq!(
            annotations.get("prometheus.io/scheme").map(String::as_str),
            Some("http")
        );
        assert_eq!(
            annotations.get("prometheus.io/port").map(String::as_str),
            Some(METRICS_PORT.to_string().as_str())
        );
        assert_eq!(metrics_port(&container), METRICS_PORT, "{}", install.dir);
        assert_eq!(
            annotations.get("prometheus.io/path").map(String::as_str),
            Some("/metrics")
        );
    }
}

/// The port of `--metrics-listen`, which must be the container port named `metrics`.
fn metrics_port(container: &Container) -> i32 {
    let args = container.args.clone().unwrap_or_default();
    let listen = args
        .iter()
        .find_map(|a| a.strip_prefix("--metrics-listen="))
        .unwrap_or_else(|| panic!("no --metrics-listen in {args:?}"));
    let port: i32 = listen.rsplit(':').next().unwrap().parse().unwrap();
    let named = container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("metrics"))
        .expect("container port named metrics");
    assert_eq!(named.container_port, port, "--metrics-listen={listen}");
    port
}

// ---------------------------------------------------------------------------------------
// Deployment

fn https_get(probe: &Option<Probe>, path: &str) {
    let get = probe
        .as_ref()
        .and_then(|p| p.http_get.clone())
        .expect("httpGet probe");
    assert_eq!(get.path.as_deref(), Some(path));
    assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
    assert!(
        matches!(&get.port, IntOrString::Int(8443))
            || matches!(&get.port, IntOrString::String(s) if s == "https"),
        "probe port {:?}",
        get.port
    );
}

#[test]
fn deployment_runs_two_probed_replicas_with_the_mode_of_the_install() {
    for install in installs() {
        let at = install.dir;
        let deployment = install.deployment();
        assert_eq!(deployment.spec.replicas, Some(2), "{at}");
        let container = install.container();
        assert!(
            container
                .image
                .as_deref()
                .unwrap()
                .starts_with("ghcr.io/pullcheck/pullcheck:"),
            "{at}: {:?}",
            container.image
        );
        https_get(&container.liveness_probe, "/healthz");
        https_get(&container.readiness_probe, "/readyz");

        let args = container.args.clone().unwrap_or_default();
        for arg in [
            "--tls-cert=/etc/pullcheck/tls/tls.crt",
            "--tls-key=/etc/pullcheck/tls/tls.key",
            "--config=/etc/pullcheck/config.yaml",
        ] {
            assert!(
                args.iter().any(|a| a == arg),
                "{at}: {arg} missing in {args:?}"
            );
        }
        assert_eq!(mode_from_args(&args).as_deref(), Some(install.mode), "{at}");

        let resources = container.resources.clone().unwrap();
        let quantity =
            |map: &Option<
                BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
            >,
             key: &str| { map.as_ref().and_then(|m| m.get(key)).map(|q| q.0.clone()) };
        assert_eq!(quantity(&resources.requests, "cpu").as_deref(), Some("50m"));
        assert_eq!(
            quantity(&resources.requests, "memory").as_deref(),
            Some("64Mi")
        );
        assert_eq!(quantity(&resources.limits, "cpu").as_deref(), Some("500m"));
        assert_eq!(
            quantity(&resources.limits, "memory").as_deref(),
            Some("256Mi")
        );

        let pod = install.pod_spec();
        let sa: ServiceAccount = install.one();
        assert_eq!(pod.service_account_name, sa.metadata.name, "{at}");
        assert_ne!(
            pod.automount_service_account_token,
            Some(false),
            "{at}: kube-rs needs the token"
        );
        let spread: BTreeSet<String> = pod
            .topology_spread_constraints
            .iter()
            .flatten()
            .map(|c| c.topology_key.clone())
            .collect();
        assert_eq!(
            spread,
            BTreeSet::from([
                "kubernetes.io/hostname".to_string(),
                "topology.kubernetes.io/zone".to_string()
            ]),
            "{at}"
        );
        for c in pod.topology_spread_constraints.iter().flatten() {
            assert!(
                selects(c.label_selector.as_ref().unwrap(), &install.pod_labels()),
                "{at}"
            );
        }
        let anti = pod
            .affinity
            .and_then(|a| a.pod_anti_affinity)
            .and_then(|a| a.preferred_during_scheduling_ignored_during_execution)
            .unwrap_or_default();
        assert!(
            anti.iter().any(
                |t| t.pod_affinity_term.topology_key == "kubernetes.io/hostname"
                    && selects(
                        t.pod_affinity_term.label_selector.as_ref().unwrap(),
                        &install.pod_labels()
                    )
            ),
            "{at}: preferred podAntiAffinity per node"
        );
    }
}

#[test]
fn pod_security_is_restricted_with_a_read_only_root_filesystem() {
    for install in installs() {
        let at = install.dir;
        let pod = install.pod_spec().security_context.unwrap();
        assert_eq!(pod.run_as_non_root, Some(true), "{at}");
        assert_eq!(
            pod.seccomp_profile.map(|s| s.type_).as_deref(),
            Some("RuntimeDefault")
        );
        let c = install.container().security_context.unwrap();
        assert_eq!(c.run_as_non_root, Some(true), "{at}");
        assert_eq!(c.run_as_user, Some(65532), "{at}");
        assert_eq!(c.read_only_root_filesystem, Some(true), "{at}");
        assert_eq!(c.allow_privilege_escalation, Some(false), "{at}");
        assert_ne!(c.privileged, Some(true), "{at}");
        let capabilities = c.capabilities.clone().unwrap_or_default();
        assert_eq!(capabilities.drop, Some(vec!["ALL".to_string()]), "{at}");
        assert!(capabilities.add.unwrap_or_default().is_empty(), "{at}");
        assert_eq!(
            c.seccomp_profile.map(|s| s.type_).as_deref(),
            Some("RuntimeDefault")
        );
        // Pod Security Admission enforces the same on the namespace.
        let ns: Namespace = install.one();
        let labels = ns.metadata.labels.unwrap_or_default();
        assert_eq!(
            labels
                .get("pod-security.kubernetes.io/enforce")
                .map(String::as_str),
            Some("restricted"),
            "{at}"
        );
    }
}

/// Files mounted in the container: path -> (source kind, object name, key). Every mount is
/// read-only and without subPath.
fn mounted_files(install: &Install) -> BTreeMap<String, (&'static str, String, String)> {
    let at = install.dir;
    let container = install.container();
    let pod = install.pod_spec();
    // path in the container -> (source kind, object name, key)
    let mut files: BTreeMap<String, (&'static str, String, String)> = BTreeMap::new();
    for mount in container.volume_mounts.iter().flatten() {
        assert_eq!(
            mount.read_only,
            Some(true),
            "{at}: {} read-only",
            mount.mount_path
        );
        assert!(
            mount.sub_path.is_none(),
            "{at}: subPath mounts never update"
        );
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .unwrap_or_else(|| panic!("{at}: no volume {}", mount.name));
        let mut add = |kind, name: &str, key: &str, path: &str| {
            files.insert(
                format!("{}/{path}", mount.mount_path.trim_end_matches('/')),
                (kind, name.to_string(), key.to_string()),
            );
        };
        if let Some(projected) = &volume.projected {
            for source in projected.sources.iter().flatten() {
                if let Some(cm) = &source.config_map {
                    for item in cm.items.iter().flatten() {
                        add("ConfigMap", &cm.name, &item.key, &item.path);
                    }
                }
                if let Some(secret) = &source.secret {
                    for item in secret.items.iter().flatten() {
                        add("Secret", &secret.name, &item.key, &item.path);
                    }
                }
            }
        }
        if let Some(cm) = &volume.config_map {
            for item in cm.items.iter().flatten() {
                add("ConfigMap", &cm.name, &item.key, &item.path);
            }
        }
        if let Some(secret) = &volume.secret {
            let name = secret.secret_name.clone().unwrap_or_default();
            for item in secret.items.iter().flatten() {
                add("Secret", &name, &item.key, &item.path);
            }
        }
    }
    files
}

#[test]
fn config_and_certificate_are_mounted_where_the_args_point() {
    for install in installs() {
        let at = install.dir;
        let pod = install.pod_spec();
        let files = mounted_files(&install);
        let config_map: ConfigMap = install.one();
        let cm_name = config_map.metadata.name.clone().unwrap();
        assert_eq!(
            files.get("/etc/pullcheck/config.yaml"),
            Some(&("ConfigMap", cm_name, "config.yaml".to_string())),
            "{at}: {files:?}"
        );
        assert_eq!(
            files.get("/etc/pullcheck/tls/tls.crt"),
            Some(&("Secret", TLS_SECRET.to_string(), "tls.crt".to_string())),
            "{at}"
        );
        assert_eq!(
            files.get("/etc/pullcheck/tls/tls.key"),
            Some(&("Secret", TLS_SECRET.to_string(), "tls.key".to_string())),
            "{at}"
        );
        // 0440 + fsGroup: the key is readable by the server's group only.
        let projected_mode = pod
            .volumes
            .iter()
            .flatten()
            .find_map(|v| v.projected.as_ref().and_then(|p| p.default_mode));
        assert_eq!(projected_mode, Some(0o440), "{at}");
        assert_eq!(
            pod.security_context.and_then(|s| s.fs_group),
            Some(65532),
            "{at}"
        );
    }
}

#[test]
fn the_config_file_uses_known_keys_and_agrees_with_the_default_mode() {
    let known: BTreeSet<&str> = [
        "defaultMode",
        "exemptNamespaces",
        "exemptImages",
        "controllerOwnedPods",
        "cache",
        "registries",
    ]
    .into();
    for install in installs() {
        let config_map: ConfigMap = install.one();
        let text = config_map
            .data
            .unwrap()
            .remove("config.yaml")
            .expect("config.yaml key");
        let config: serde_json::Map<String, Value> = serde_saphyr::from_str(&text).unwrap();
        for key in config.keys() {
            let key = key.as_str();
            assert!(
                known.contains(key),
                "{}: unknown config key {key}",
                install.dir
            );
        }
        if let Some(mode) = config.get("defaultMode") {
            assert_eq!(
                mode.as_str(),
                Some(install.mode),
                "{}: config vs overlay",
                install.dir
            );
        }
        let args = install.container().args.unwrap_or_default();
        assert_eq!(mode_from_args(&args).as_deref(), Some(install.mode));
    }
}

#[test]
fn a_disruption_budget_keeps_one_of_two_replicas() {
    for install in installs() {
        let pdb: PodDisruptionBudget = install.one();
        let spec = pdb.spec.unwrap();
        assert_eq!(
            spec.min_available,
            Some(IntOrString::Int(1)),
            "{}",
            install.dir
        );
        assert!(
            selects(spec.selector.as_ref().unwrap(), &install.pod_labels()),
            "{}",
            install.dir
        );
        assert_eq!(install.deployment().spec.replicas, Some(2));
    }
}

// ---------------------------------------------------------------------------------------
// Components (components/network-policy, components/client-ca) in an overlay of the
// user's, as the README shows it

/// `to` relative to the directory `from` (kustomize refuses absolute paths).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for _ in from.components().skip(1) {
        out.push("..");
    }
    out.join(to.strip_prefix("/").unwrap())
}

/// Renders an overlay of overlays/warn with these components and more kustomization text.
fn render_overlay(components: &[&str], more: &str) -> Install {
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path().canonicalize().unwrap();
    let config = repo().join("webhook-config");
    let rel = |p: &str| relative(&here, &config.join(p)).display().to_string();
    let mut text = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\ncomponents:\n",
        rel("overlays/warn")
    );
    for c in components {
        text.push_str(&format!("  - {}\n", rel(c)));
    }
    text.push_str(more);
    std::fs::write(here.join("kustomization.yaml"), text).unwrap();
    Install {
        dir: "overlay with components",
        mode: "warn",
        objects: Arc::new(render_path(&here)),
    }
}

/// The patch the README tells users to write: their control plane's addresses.
const API_SERVER_CIDR: &str = "10.20.0.0/24";
const CIDR_PATCH: &str = "patches:
  - target: {group: networking.k8s.io, kind: NetworkPolicy, name: pullcheck}
    patch: |-
      - op: test
        path: /spec/ingress/0/from/0/ipBlock/cidr
        value: 192.0.2.1/32
      - op: replace
        path: /spec/ingress/0/from/0/ipBlock/cidr
        value: 10.20.0.0/24
";

fn container_port(container: &Container, name: &str) -> i32 {
    container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no container port {name}"))
        .container_port
}

#[test]
fn network_policy_admits_reviews_only_from_the_api_server_and_metrics_from_monitoring() {
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    let install = render_overlay(&["components/network-policy"], CIDR_PATCH);
    let object = install.all_of_kind(NetworkPolicy::API_VERSION, NetworkPolicy::KIND)[0];
    assert_eq!(
        &round_trip::<NetworkPolicy>(object),
        object,
        "typed round trip"
    );
    let policy: NetworkPolicy = install.one();
    assert_eq!(policy.metadata.namespace.as_deref(), Some(NAMESPACE));
    let spec = policy.spec.unwrap();
    let pods = spec.pod_selector.clone().expect("podSelector");
    assert!(
        !pods.match_labels.clone().unwrap_or_default().is_empty()
            && selects(&pods, &install.pod_labels()),
        "the policy selects pullcheck's pods"
    );
    assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
    let container = install.container();
    let https = container_port(&container, "https");
    let metrics = metrics_port(&container);
    // Who may reach which port: every rule names its ports and its peers (a rule without
    // ports admits every port, one without `from` admits everybody).
    let mut admitted: BTreeMap<i32, Vec<Value>> = BTreeMap::new();
    for rule in spec.ingress.unwrap_or_default() {
        let ports = rule.ports.expect("a rule without ports admits every port");
        let from = rule.from.expect("a rule without peers admits everybody");
        assert!(!ports.is_empty() && !from.is_empty());
        for port in ports {
            assert_eq!(port.protocol.as_deref(), Some("TCP"));
            let Some(IntOrString::Int(n)) = port.port else {
                panic!("numeric ports: {port:?}");
            };
            for peer in &from {
                admitted
                    .entry(n)
                    .or_default()
                    .push(serde_json::to_value(peer).unwrap());
            }
        }
    }
    assert_eq!(
        admitted.keys().copied().collect::<Vec<_>>(),
        vec![https, metrics]
    );
    assert_eq!(
        admitted[&https],
        vec![serde_json::json!({"ipBlock": {"cidr": API_SERVER_CIDR}})],
        "reviews: the API server's addresses only"
    );
    assert_eq!(
        admitted[&metrics],
        vec![
            serde_json::json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}})
        ],
        "metrics: the monitoring namespace only"
    );

    // Left unpatched, the placeholder admits no real address (TEST-NET-1, RFC 5737).
    let unpatched = render_overlay(&["components/network-policy"], "");
    let policy: NetworkPolicy = unpatched.one();
    let cidr = policy.spec.unwrap().ingress.unwrap()[0]
        .from
        .as_ref()
        .unwrap()[0]
        .ip_block
        .clone()
        .unwrap()
        .cidr;
    assert!(cidr.starts_with("192.0.2."), "{cidr}");
}

#[test]
fn client_ca_component_requires_client_certificates_and_probes_move_to_plain_http() {
    let install = render_overlay(
        &["components/network-policy", "components/client-ca"],
        CIDR_PATCH,
    );
    let deployment = install.all_of_kind(Deployment::API_VERSION, Deployment::KIND)[0];
    assert_eq!(&round_trip::<Deployment>(deployment), deployment);
    let container = install.container();
    let args = container.args.clone().unwrap_or_default();
    // The rendered arguments are ones `pullcheck serve` accepts.
    let argv = ["pullcheck", "serve"]
        .into_iter()
        .map(String::from)
        .chain(args.iter().cloned());
    if let Err(e) = <pullcheck::config::Cli as clap::Parser>::try_parse_from(argv) {
        panic!("serve refuses {args:?}: {e}");
    }
    assert_eq!(mode_from_args(&args).as_deref(), Some("warn"));
    let ca = args
        .iter()
        .find_map(|a| a.strip_prefix("--client-ca="))
        .expect("--client-ca");
    let files = mounted_files(&install);
    assert_eq!(
        files.get(ca),
        Some(&(
            "ConfigMap",
            "pullcheck-client-ca".to_string(),
            "ca.crt".to_string()
        )),
        "{files:?}"
    );
    for name in ["config.yaml", "tls/tls.crt", "tls/tls.key"] {
        assert!(
            files.contains_key(&format!("/etc/pullcheck/{name}")),
            "{name}"
        );
    }
    // The kubelet has no client certificate: its probes use the plain-HTTP port.
    let metrics = metrics_port(&container);
    for (probe, path) in [
        (&container.liveness_probe, "/healthz"),
        (&container.readiness_probe, "/readyz"),
    ] {
        let get = probe.as_ref().and_then(|p| p.http_get.clone()).unwrap();
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.scheme.as_deref(), Some("HTTP"));
        assert_eq!(get.port, IntOrString::String("metrics".into()));
        assert_eq!(container_port(&container, "metrics"), metrics);
    }
}

// ---------------------------------------------------------------------------------------
// RBAC

#[test]
fn rbac_grants_exactly_the_reads_the_server_needs() {
    for install in installs() {
        let at = install.dir;
        let role: ClusterRole = install.one();
        assert!(role.aggregation_rule.is_none(), "{at}");
        let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for rule in role.rules.unwrap_or_default() {
            assert_eq!(
                rule.api_groups,
                Some(vec![String::new()]),
                "{at}: core group only"
            );
            assert!(
                rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
                "{at}"
            );
            for resource in rule.resources.unwrap_or_default() {
                granted
                    .entry(resource)
                    .or_default()
                    .extend(rule.verbs.iter().cloned());
            }
        }
        let expected: BTreeMap<String, BTreeSet<String>> = [
            ("secrets", &["get", "list"][..]),
            ("serviceaccounts", &["get"][..]),
            ("nodes", &["list", "watch"][..]),
        ]
        .iter()
        .map(|(r, v)| (r.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect();
        assert_eq!(granted, expected, "{at}");

        let binding: ClusterRoleBinding = install.one();
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
        let sa: ServiceAccount = install.one();
        let subjects = binding.subjects.unwrap_or_default();
        assert_eq!(subjects.len(), 1, "{at}");
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(Some(&subjects[0].name), sa.metadata.name.as_ref());
        assert_eq!(
            subjects[0].namespace.as_ref(),
            sa.metadata.namespace.as_ref()
        );
    }
}

// ---------------------------------------------------------------------------------------
// cert-manager

#[test]
fn cert_manager_overlay_issues_the_serving_certificate_and_injects_its_ca() {
    let install = Install::new("overlays/cert-manager", "warn");
    let vwc: ValidatingWebhookConfiguration = install.one();
    let inject = vwc
        .metadata
        .annotations
        .unwrap_or_default()
        .remove("cert-manager.io/inject-ca-from")
        .expect("inject-ca-from annotation");
    assert_eq!(inject, "pullcheck/pullcheck-serving");
    let (ns, name) = inject.split_once('/').unwrap();

    let certificates = install.all_of_kind("cert-manager.io/v1", "Certificate");
    let issuers = install.all_of_kind("cert-manager.io/v1", "Issuer");
    let find = |list: &[&Value], name: &str| -> Value {
        list.iter()
            .find(|o| o["metadata"]["name"] == name && o["metadata"]["namespace"] == NAMESPACE)
            .map(|o| (*o).clone())
            .unwrap_or_else(|| panic!("no {name} in {NAMESPACE}"))
    };
    assert_eq!(ns, NAMESPACE);
    let serving = find(&certificates, name);
    assert_eq!(serving["spec"]["secretName"], TLS_SECRET);
    let dns: Vec<&str> = serving["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for expected in [
        "pullcheck.pullcheck.svc",
        "pullcheck.pullcheck.svc.cluster.local",
    ] {
        assert!(dns.contains(&expected), "{dns:?}");
    }
    assert_ne!(serving["spec"]["isCA"], true);

    // serving <- CA Issuer <- CA Certificate (isCA) <- self-signed Issuer
    assert_eq!(serving["spec"]["issuerRef"]["kind"], "Issuer");
    let ca_issuer = find(
        &issuers,
        serving["spec"]["issuerRef"]["name"].as_str().unwrap(),
    );
    let ca_secret = ca_issuer["spec"]["ca"]["secretName"]
        .as_str()
        .expect("CA issuer");
    let ca_cert = certificates
        .iter()
        .find(|c| c["spec"]["secretName"] == ca_secret)
        .expect("a Certificate writes the CA secret");
    assert_eq!(ca_cert["spec"]["isCA"], true);
    let root = find(
        &issuers,
        ca_cert["spec"]["issuerRef"]["name"].as_str().unwrap(),
    );
    assert!(root["spec"]["selfSigned"].is_object());

    // The pods mount the Secret the Certificate writes (checked per install above) and the
    // other installs carry no cert-manager objects or annotations.
    for other in ["base", "overlays/warn", "overlays/enforce"] {
        let objects = render(other);
        assert!(
            objects
                .iter()
                .all(|o| o["apiVersion"] != "cert-manager.io/v1"),
            "{other}"
        );
        assert!(objects.iter().all(|o| o["metadata"]["annotations"]
            .get("cert-manager.io/inject-ca-from")
            .is_none()));
    }
}

// ---------------------------------------------------------------------------------------
// Certificates

fn first_cert(pem: &str) -> rustls::pki_types::CertificateDer<'static> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
}

/// A TLS handshake in memory between a rustls server with `serving` and a client that
/// trusts only `ca_pem`, then one round trip of application data.
fn handshake(
    ca_pem: &str,
    serving: &pullcheck::webhook::certs::Pem,
    server_name: &str,
    version: &'static rustls::SupportedProtocolVersion,
) -> Result<(), rustls::Error> {
    use rustls::pki_types::ServerName;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain: Vec<_> = rustls_pemfile::certs(&mut serving.cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut serving.key.as_bytes())
        .unwrap()
        .unwrap();
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(first_cert(ca_pem))?;
    let mut client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_config.alpn_protocols = vec![b"h2".to_vec()];

    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let mut client = rustls::ClientConnection::new(Arc::new(client_config), name)?;
    let mut server = rustls::ServerConnection::new(Arc::new(server_config))?;
    client.writer().write_all(b"ping").unwrap();
    let mut received = Vec::new();
    for _ in 0..10 {
        let mut wire = Vec::new();
        client.write_tls(&mut wire).unwrap();
        server.read_tls(&mut wire.as_slice()).unwrap();
        server.process_new_packets()?;
        wire.clear();
        server.write_tls(&mut wire).unwrap();
        client.read_tls(&mut wire.as_slice()).unwrap();
        client.process_new_packets()?;
        let mut buf = [0u8; 16];
        if let Ok(n) = server.reader().read(&mut buf) {
            received.extend_from_slice(&buf[..n]);
        }
        if !client.is_handshaking() && !server.is_handshaking() && received == b"ping" {
            assert_eq!(client.alpn_protocol(), Some(&b"h2"[..]));
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

#[rstest]
#[case::tls13(&rustls::version::TLS13)]
#[case::tls12(&rustls::version::TLS12)]
fn generated_certificates_complete_a_tls_handshake_for_the_service_names(
    #[case] version: &'static rustls::SupportedProtocolVersion,
) {
    let (ca, serving) = pullcheck::webhook::certs::generate("pullcheck", "pullcheck", 30).unwrap();
    for name in [
        "pullcheck",
        "pullcheck.pullcheck",
        "pullcheck.pullcheck.svc",
        "pullcheck.pullcheck.svc.cluster.local",
    ] {
        handshake(&ca.cert, &serving, name, version).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(handshake(&ca.cert, &serving, "pullcheck.default.svc", version).is_err());
    let (other_ca, _) = pullcheck::webhook::certs::generate("pullcheck", "pullcheck", 30).unwrap();
    assert!(handshake(&other_ca.cert, &serving, "pullcheck.pullcheck.svc", version).is_err());
}

#[test]
fn self_signed_certificate_serves_its_own_names() {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let pem = pullcheck::webhook::certs::self_signed(&names, 1).unwrap();
    for name in &names {
        handshake(&pem.cert, &pem, name, &rustls::version::TLS13).unwrap();
    }
}

fn openssl(args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("openssl is needed for this test and cannot run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn write_pems(
    dir: &Path,
    ca: &pullcheck::webhook::certs::Pem,
    serving: &pullcheck::webhook::certs::Pem,
) -> (PathBuf, PathBuf) {
    let (ca_path, tls_path) = (dir.join("ca.crt"), dir.join("tls.crt"));
    std::fs::write(&ca_path, &ca.cert).unwrap();
    std::fs::write(&tls_path, &serving.cert).unwrap();
    (ca_path, tls_path)
}

#[test]
fn openssl_verifies_the_chain_strictly_and_sees_every_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, serving) = pullcheck::webhook::certs::generate("hook", "infra", 90).unwrap();
    let (ca_path, tls_path) = write_pems(tmp.path(), &ca, &serving);
    let (ca_path, tls_path) = (ca_path.to_str().unwrap(), tls_path.to_str().unwrap());

    let (ok, text) = openssl(&[
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-CAfile",
        ca_path,
        tls_path,
    ]);
    assert!(ok, "{text}");
    let (ok, san) = openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in", tls_path]);
    assert!(ok, "{san}");
    for name in [
        "hook",
        "hook.infra",
        "hook.infra.svc",
        "hook.infra.svc.cluster.local",
    ] {
        assert!(
            san.contains(&format!("DNS:{name},")) || san.contains(&format!("DNS:{name}\n")),
            "{name}: {san}"
        );
    }
    let (_, leaf) = openssl(&["x509", "-noout", "-text", "-in", tls_path]);
    assert!(leaf.contains("TLS Web Server Authentication"), "{leaf}");
    assert!(leaf.contains("prime256v1"), "{leaf}");
    assert!(leaf.contains("CA:FALSE"), "{leaf}");
    let (_, root) = openssl(&["x509", "-noout", "-text", "-in", ca_path]);
    assert!(root.contains("CA:TRUE"), "{root}");
    assert!(root.contains("Certificate Sign"), "{root}");
    // 10 years: the notAfter year is at least 9 years ahead.
    let (_, end) = openssl(&["x509", "-noout", "-enddate", "-in", ca_path]);
    let year: i32 = end
        .split_whitespace()
        .rev()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let (_, leaf_end) = openssl(&["x509", "-noout", "-enddate", "-in", tls_path]);
    let leaf_year: i32 = leaf_end
        .split_whitespace()
        .rev()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(year >= leaf_year + 9, "{end} vs {leaf_end}");
    // The key file is PKCS#8 and belongs to the certificate.
    assert!(serving.key.starts_with("-----BEGIN PRIVATE KEY-----"));
    let key_path = tmp.path().join("tls.key");
    std::fs::write(&key_path, &serving.key).unwrap();
    let (_, cert_pub) = openssl(&["x509", "-noout", "-pubkey", "-in", tls_path]);
    let (_, key_pub) = openssl(&["pkey", "-pubout", "-in", key_path.to_str().unwrap()]);
    assert_eq!(cert_pub, key_pub);
}

#[rstest]
#[case::ecdsa(&["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])]
#[case::rsa(&["-newkey", "rsa:2048"])]
fn rotation_with_a_ca_made_by_openssl_keeps_the_ca_and_verifies(#[case] key_args: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (ca_crt, ca_key) = (dir.join("their-ca.crt"), dir.join("their-ca.key"));
    let mut args = vec!["req", "-x509", "-nodes", "-days", "30"];
    args.extend_from_slice(key_args);
    args.extend_from_slice(&[
        "-keyout",
        ca_key.to_str().unwrap(),
        "-out",
        ca_crt.to_str().unwrap(),
        "-subj",
        "/C=DE/O=Example Platform/OU=Clusters/CN=Example Cluster CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    let (ok, text) = openssl(&args);
    assert!(ok, "{text}");

    let out = dir.join("out");
    let certs_args = pullcheck::config::CertsArgs {
        service: "pullcheck".into(),
        namespace: "pullcheck".into(),
        out_dir: out.clone(),
        days: 30,
        ca_cert: Some(ca_crt.clone()),
        ca_key: Some(ca_key),
        force: false,
        api_server_client: true,
    };
    let mut printed = Vec::new();
    assert_eq!(
        pullcheck::webhook::certs::run_certs(&certs_args, &mut printed).unwrap(),
        0
    );
    let printed = String::from_utf8(printed).unwrap();
    assert!(
        printed.contains("caBundle") && printed.contains("stays valid"),
        "{printed}"
    );
    assert!(
        !printed.contains("kubectl patch"),
        "the CA did not change: {printed}"
    );

    // Strict: the authorityKeyIdentifier repeats the CA's subjectKeyIdentifier.
    let (ok, text) = openssl(&[
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-CAfile",
        ca_crt.to_str().unwrap(),
        out.join("tls.crt").to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    // So does the API server's client certificate, for client authentication only.
    let client = out.join("apiserver-client.crt");
    let verify_as = |purpose: &str| {
        openssl(&[
            "verify",
            "-x509_strict",
            "-purpose",
            purpose,
            "-CAfile",
            ca_crt.to_str().unwrap(),
            client.to_str().unwrap(),
        ])
    };
    let (ok, text) = verify_as("sslclient");
    assert!(ok, "{text}");
    assert!(
        !verify_as("sslserver").0,
        "a client certificate must not serve"
    );
    let ca_pem = std::fs::read_to_string(&ca_crt).unwrap();
    let serving = pullcheck::webhook::certs::Pem {
        cert: std::fs::read_to_string(out.join("tls.crt")).unwrap(),
        key: std::fs::read_to_string(out.join("tls.key")).unwrap(),
    };
    handshake(
        &ca_pem,
        &serving,
        "pullcheck.pullcheck.svc",
        &rustls::version::TLS13,
    )
    .unwrap();
    assert_eq!(
        first_cert(&std::fs::read_to_string(out.join("ca.crt")).unwrap()),
        first_cert(&ca_pem),
        "ca.crt in the output is the given CA"
    );
}

/// Subjects rcgen cannot repeat byte for byte (a type twice: rcgen keeps one value per
/// type; several attributes in one RDN) are refused with the reason, before anything is
/// signed or written, never signed with a different issuer name.
#[rstest]
#[case::repeated("/O=Example/OU=Clusters/OU=Platform/CN=CA", &[], "repeated subject name attributes")]
#[case::multi_valued("/O=Example/CN=CA+OU=Platform", &["-multivalue-rdn"], "multi-valued subject name attributes")]
fn a_ca_whose_subject_cannot_be_repeated_is_refused(
    #[case] subject: &str,
    #[case] extra: &[&str],
    #[case] why: &str,
) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (ca_crt, ca_key) = (dir.join("their-ca.crt"), dir.join("their-ca.key"));
    let mut args = vec![
        "req",
        "-x509",
        "-nodes",
        "-days",
        "30",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-keyout",
        ca_key.to_str().unwrap(),
        "-out",
        ca_crt.to_str().unwrap(),
        "-subj",
        subject,
    ];
    args.extend_from_slice(extra);
    let (ok, text) = openssl(&args);
    assert!(ok, "{text}");
    let out = dir.join("out");
    let certs_args = pullcheck::config::CertsArgs {
        service: "pullcheck".into(),
        namespace: "pullcheck".into(),
        out_dir: out.clone(),
        days: 30,
        ca_cert: Some(ca_crt.clone()),
        ca_key: Some(ca_key),
        force: false,
        api_server_client: false,
    };
    let e = pullcheck::webhook::certs::write_certs(&certs_args).unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains(&*ca_crt.to_string_lossy()) && message.contains(why),
        "{message}"
    );
    assert!(!out.exists(), "nothing written");
}

// ---------------------------------------------------------------------------------------
// certs/install.sh with the real `pullcheck certs` and a recording stand-in for kubectl

const FAKE_KUBECTL: &str = r#"#!/usr/bin/env bash
# Records every call; answers like a cluster, as told by FAKE_* variables.
printf '%s\n' "$*" >> "$FAKE_LOG"
case "$*" in
  "get namespace "*) [[ -n "${FAKE_HAS_NAMESPACE:-}" ]] ;;
  "create namespace "*) exit 0 ;;
  *"get validatingwebhookconfiguration"*"go-template"*) printf '%s' "${FAKE_WEBHOOKS:-4}" ;;
  "get validatingwebhookconfiguration "*) [[ -n "${FAKE_HAS_VWC:-}" ]] ;;
  *"create secret tls"*) printf 'kind: Secret\nmetadata:\n  name: pullcheck-tls\n' ;;
  "apply "*) cat > "$FAKE_APPLIED" ;;
  "patch "*) shift; while [[ $# -gt 0 ]]; do [[ "$1" == "-p" ]] && printf '%s' "$2" > "$FAKE_PATCH"; shift; done ;;
  *) echo "fake kubectl: unexpected call: $*" >&2; exit 3 ;;
esac
"#;

struct FakeCluster {
    tmp: tempfile::TempDir,
}

impl FakeCluster {
    fn new() -> FakeCluster {
        let tmp = tempfile::tempdir().unwrap();
        let kubectl = tmp.path().join("kubectl");
        std::fs::write(&kubectl, FAKE_KUBECTL).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        FakeCluster { tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn run(&self, dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
        let mut command = Command::new("bash");
        command
            .arg(repo().join("certs/install.sh"))
            .arg(dir)
            .env("KUBECTL", self.path("kubectl"))
            .env("PULLCHECK", env!("CARGO_BIN_EXE_pullcheck"))
            .env("FAKE_LOG", self.path("kubectl.log"))
            .env("FAKE_APPLIED", self.path("applied.yaml"))
            .env("FAKE_PATCH", self.path("patch.json"));
        for (k, v) in env {
            command.env(k, v);
        }
        command
            .output()
            .unwrap_or_else(|e| panic!("bash is needed to run certs/install.sh: {e}"))
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    fn take_patch(&self) -> Value {
        let patch = serde_json::from_str(&self.read("patch.json")).unwrap();
        std::fs::remove_file(self.path("patch.json")).unwrap();
        patch
    }
}

const CLUSTER_READY: [(&str, &str); 3] = [
    ("FAKE_HAS_VWC", "1"),
    ("FAKE_HAS_NAMESPACE", "1"),
    ("FAKE_WEBHOOKS", "4"),
];

fn assert_patch_sets_every_ca_bundle(patch: &Value, ca_pem: &str) {
    use base64::Engine as _;
    let ops = patch.as_array().unwrap();
    assert_eq!(ops.len(), 4, "{patch}");
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    for (i, op) in ops.iter().enumerate() {
        assert_eq!(op["op"], "add");
        assert_eq!(op["path"], format!("/webhooks/{i}/clientConfig/caBundle"));
        assert_eq!(op["value"], bundle.as_str());
    }
}

#[test]
fn install_script_stores_the_secret_patches_every_ca_bundle_and_rotates_in_place() {
    let cluster = FakeCluster::new();
    let dir = cluster.path("certs-out");
    let output = cluster.run(&dir, &CLUSTER_READY);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ca_pem = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
    let tls_pem = std::fs::read_to_string(dir.join("tls.crt")).unwrap();

    let kubectl = cluster.read("kubectl.log");
    assert!(
        kubectl.contains(&format!(
            "-n pullcheck create secret tls pullcheck-tls --cert={0}/tls.crt --key={0}/tls.key --dry-run=client -o yaml",
            dir.display()
        )),
        "{kubectl}"
    );
    assert!(kubectl.contains("apply --server-side"), "{kubectl}");
    assert!(cluster.read("applied.yaml").contains("kind: Secret"));
    assert_patch_sets_every_ca_bundle(&cluster.take_patch(), &ca_pem);

    // Second run: the CA in the directory is reused, only the serving certificate renews,
    // and the caBundle patch carries the same CA.
    let output = cluster.run(&dir, &CLUSTER_READY);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("reusing the CA"));
    assert_eq!(std::fs::read_to_string(dir.join("ca.crt")).unwrap(), ca_pem);
    assert_ne!(
        std::fs::read_to_string(dir.join("tls.crt")).unwrap(),
        tls_pem
    );
    assert_patch_sets_every_ca_bundle(&cluster.take_patch(), &ca_pem);

    // NEW_CA=1 replaces the CA (pullcheck certs --force).
    let mut env = CLUSTER_READY.to_vec();
    env.push(("NEW_CA", "1"));
    let output = cluster.run(&dir, &env);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let new_ca = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
    assert_ne!(new_ca, ca_pem);
    assert_patch_sets_every_ca_bundle(&cluster.take_patch(), &new_ca);
}

#[test]
fn install_script_creates_the_namespace_and_fails_without_the_webhook_configuration() {
    let cluster = FakeCluster::new();
    let output = cluster.run(&cluster.path("out"), &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not found"), "{stderr}");
    let kubectl = cluster.read("kubectl.log");
    assert!(kubectl.contains("create namespace pullcheck"), "{kubectl}");
    // The Secret is stored even so: the pods can start.
    assert!(
        kubectl.contains("create secret tls pullcheck-tls"),
        "{kubectl}"
    );
    assert!(!kubectl.contains("patch "), "{kubectl}");
}

#[test]
fn install_script_stops_when_pullcheck_certs_fails() {
    let cluster = FakeCluster::new();
    let mut env = CLUSTER_READY.to_vec();
    env.push(("SERVICE", "Not_A_Label"));
    let output = cluster.run(&cluster.path("out"), &env);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid service name"), "{stderr}");
    assert!(
        cluster.read("kubectl.log").is_empty(),
        "kubectl must not run"
    );
}
