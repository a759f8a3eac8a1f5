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
