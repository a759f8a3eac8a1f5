//! RBAC

use super::*;

#[test]
fn rbac_grants_exactly_the_reads_the_server_needs() {
    for install in installs() {
        let at = install.dir;
        let role: ClusterRole = install.one();
        assert!(role.aggregation_rule.is_none(), "{at}");
        let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for rule in role.rules.unwrap_or_default() {
            assert!(
                rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
                "{at}"
            );
            for group in rule.api_groups.clone().unwrap_or_default() {
                for resource in rule.resources.clone().unwrap_or_default() {
                    granted
                        .entry(format!("{group}/{resource}"))
                        .or_default()
                        .extend(rule.verbs.iter().cloned());
                }
            }
        }
        let expected: BTreeMap<String, BTreeSet<String>> = [
            ("/secrets", &["get", "list"][..]),
            ("/serviceaccounts", &["get"][..]),
            ("/nodes", &["get", "list", "watch"][..]),
            ("/pods", &["list", "watch"][..]),
            ("/replicationcontrollers", &["list"][..]),
            ("apps/deployments", &["list"][..]),
            ("apps/replicasets", &["list"][..]),
            ("apps/statefulsets", &["list"][..]),
            ("apps/daemonsets", &["list"][..]),
            ("batch/jobs", &["list"][..]),
            ("batch/cronjobs", &["list"][..]),
            ("/events", &["list"][..]),
            ("events.k8s.io/events", &["create", "patch", "list"][..]),
        ]
        .iter()
        .map(|(r, v)| (r.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect();
        assert_eq!(granted, expected, "{at}");

        // The scan's Lease: in pullcheck's namespace only, get/update by name, create.
        let lease_role: Role = install.one();
        assert_eq!(
            lease_role.metadata.namespace.as_deref(),
            Some(NAMESPACE),
            "{at}"
        );
        let mut lease_rules: Vec<(Vec<String>, Option<Vec<String>>)> = lease_role
            .rules
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                assert_eq!(
                    r.api_groups,
                    Some(vec!["coordination.k8s.io".to_string()]),
                    "{at}"
                );
                assert_eq!(r.resources, Some(vec!["leases".to_string()]), "{at}");
                (r.verbs, r.resource_names)
            })
            .collect();
        lease_rules.sort();
        assert_eq!(
            lease_rules,
            vec![
                (vec!["create".to_string()], None),
                (
                    vec!["get".to_string(), "update".to_string()],
                    Some(vec![pullcheck::webhook::serve::SCAN_LEASE.to_string()])
                ),
            ],
            "{at}"
        );
        let lease_binding: RoleBinding = install.one();
        assert_eq!(lease_binding.role_ref.kind, "Role");
        assert_eq!(
            Some(&lease_binding.role_ref.name),
            lease_role.metadata.name.as_ref()
        );
        let subjects = lease_binding.subjects.unwrap_or_default();
        assert_eq!(subjects.len(), 1, "{at}");
        assert_eq!(subjects[0].name, "pullcheck");
        assert_eq!(subjects[0].namespace.as_deref(), Some(NAMESPACE));

        // The Lease is held under the Pod's name, in its namespace.
        let container = install.container();
        let env: BTreeMap<String, String> = container
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| Some((e.name, e.value_from?.field_ref?.field_path)))
            .collect();
        assert_eq!(
            env.get("POD_NAME").map(String::as_str),
            Some("metadata.name"),
            "{at}"
        );
        assert_eq!(
            env.get("POD_NAMESPACE").map(String::as_str),
            Some("metadata.namespace"),
            "{at}"
        );

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
