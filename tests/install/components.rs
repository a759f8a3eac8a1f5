//! Components (components/network-policy, components/client-ca) in an overlay of the
//! user's, as the README shows it

use super::*;
use crate::deployment::mounted_files;
use crate::objects::round_trip;
use crate::webhook_configuration::metrics_port;

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

/// components/node-runtime with the ConfigMap generated in the overlay, as its header
/// shows: the kubelet's credential provider config mounted where the argument says, the
/// generated (hashed) name referenced, `--node-runtime=auto`, and arguments `serve` accepts
/// (the file's content too: it is the kubelet's own format, validated at start).
#[test]
fn node_runtime_component_mounts_the_kubelet_credential_provider_config() {
    let providers = r#"{"apiVersion":"kubelet.config.k8s.io/v1","kind":"CredentialProviderConfig","providers":[{"name":"ecr-credential-provider","matchImages":["*.dkr.ecr.*.amazonaws.com"],"defaultCacheDuration":"12h","apiVersion":"credentialprovider.kubelet.k8s.io/v1"}]}"#;
    let generator = format!(
        "configMapGenerator:\n  - name: pullcheck-node-config\n    namespace: pullcheck\n    literals:\n      - 'credential-providers.yaml={providers}'\n"
    );
    let install = render_overlay(&["components/node-runtime"], &generator);
    let container = install.container();
    let args = container.args.clone().unwrap_or_default();
    let argv = ["pullcheck", "serve"]
        .into_iter()
        .map(String::from)
        .chain(args.iter().cloned());
    if let Err(e) = <pullcheck::config::Cli as clap::Parser>::try_parse_from(argv) {
        panic!("serve refuses {args:?}: {e}");
    }
    assert!(
        args.contains(&"--node-runtime=auto".to_string()),
        "{args:?}"
    );
    let path = args
        .iter()
        .find_map(|a| a.strip_prefix("--image-credential-provider-config="))
        .expect("--image-credential-provider-config");
    let files = mounted_files(&install);
    let (kind, name, key) = files
        .get(path)
        .unwrap_or_else(|| panic!("{path} not mounted: {files:?}"));
    assert_eq!(
        (*kind, key.as_str()),
        ("ConfigMap", "credential-providers.yaml")
    );
    assert!(
        name.starts_with("pullcheck-node-config-"),
        "the generated name, whose hash rolls the Deployment: {name}"
    );
    let map = install
        .all_of_kind("v1", "ConfigMap")
        .into_iter()
        .find(|m| m["metadata"]["name"] == name.as_str())
        .expect("the generated ConfigMap");
    let text = map["data"]["credential-providers.yaml"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credential-providers.yaml");
    std::fs::write(&file, text).unwrap();
    let read = pullcheck::config::node::credential_providers(&file).unwrap();
    assert_eq!(read.providers[0].name, "ecr-credential-provider");
}
