//! Deployment

use super::*;

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
pub(crate) fn mounted_files(install: &Install) -> BTreeMap<String, (&'static str, String, String)> {
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
        "scan",
        "advice",
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
        pullcheck::config::FileConfig::parse(&text)
            .unwrap_or_else(|e| panic!("{}: config.yaml: {e:#}", install.dir));
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
