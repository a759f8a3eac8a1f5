//! ValidatingWebhookConfiguration

use super::*;

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
pub(crate) fn metrics_port(container: &Container) -> i32 {
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
