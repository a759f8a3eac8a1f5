//! The cluster install: every kustomize render of `webhook-config/` (base and overlays),
//! typed with k8s-openapi and checked against what the server and the API server rely on;
//! the certificates of `pullcheck::webhook::certs` (TLS handshake with rustls, `openssl verify`);
//! and `certs/install.sh` against a recording `kubectl`.
//!
//! Needs `kubectl` (for `kubectl kustomize`, offline), `openssl` and `bash` on the PATH:
//! the tests fail, loudly, without them.
//!
//! One test binary, a module per subject: `objects` (every rendered object typed),
//! `webhook_configuration`, `deployment`, `components` (network policy, client CA),
//! `rbac`, `cert_manager`, `certificates` and `install_script`. This file renders the
//! installs and holds the API server's selector and routing rules they are checked with.

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
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::Resource;
use rstest::rstest;
use serde::de::DeserializeOwned;
use serde_json::Value;

mod cert_manager;
mod certificates;
mod components;
mod deployment;
mod install_script;
mod objects;
mod rbac;
mod webhook_configuration;

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
