//! A Pod's constraints on `kubernetes.io/os` and `kubernetes.io/arch` (`nodeSelector` and
//! required node affinity, beta labels included): which node platforms it may land on, and
//! which platforms it names.

use std::collections::HashSet;

use super::podspec::{NodeSelectorRequirement, PodSpec};
use crate::kubelet::platform::{Platform, LABEL_ARCH, LABEL_ARCH_BETA, LABEL_OS, LABEL_OS_BETA};

/// Most platforms [`PlatformConstraint::explicit_platforms`] returns: far more than the
/// os/arch pairs Kubernetes nodes exist for, far fewer than a hostile Pod can name (the
/// product of its os and arch values).
pub const MAX_EXPLICIT_PLATFORMS: usize = 64;
/// Which platform label a key is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Dim {
    Os,
    Arch,
}

impl Dim {
    fn of_key(key: &str) -> Option<Dim> {
        match key {
            LABEL_OS | LABEL_OS_BETA => Some(Dim::Os),
            LABEL_ARCH | LABEL_ARCH_BETA => Some(Dim::Arch),
            _ => None,
        }
    }

    fn pick<'a>(self, os: &'a str, arch: &'a str) -> &'a str {
        match self {
            Dim::Os => os,
            Dim::Arch => arch,
        }
    }
}

/// One node affinity match expression about os or arch.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    dim: Dim,
    operator: String,
    values: Vec<String>,
}

impl Requirement {
    /// The scheduler's `NodeSelectorRequirement` semantics for a node that carries the
    /// label with `value` (every node has its os and arch labels).
    fn matches(&self, value: &str) -> bool {
        let int = |s: &str| s.parse::<i64>().ok();
        match self.operator.as_str() {
            "In" => self.values.iter().any(|v| v == value),
            "NotIn" => !self.values.iter().any(|v| v == value),
            "Exists" => true,
            "DoesNotExist" => false,
            "Gt" | "Lt" => {
                let (Some(have), Some(bound)) =
                    (int(value), self.values.first().and_then(|v| int(v)))
                else {
                    return false;
                };
                if self.operator == "Gt" {
                    have > bound
                } else {
                    have < bound
                }
            }
            _ => false,
        }
    }

    fn describe(&self) -> String {
        let list = || self.values.join(", ");
        match self.operator.as_str() {
            "In" => format!("{} in ({})", self.key, list()),
            "NotIn" => format!("{} notin ({})", self.key, list()),
            "Exists" => format!("{} exists", self.key),
            "DoesNotExist" => format!("{} does not exist", self.key),
            "Gt" => format!("{} > {}", self.key, list()),
            "Lt" => format!("{} < {}", self.key, list()),
            op => format!("{} {} ({})", self.key, op, list()),
        }
    }
}

/// The Pod's constraints on `kubernetes.io/os` and `kubernetes.io/arch`: `nodeSelector`
/// and `requiredDuringSchedulingIgnoredDuringExecution` node affinity; the beta labels
/// `beta.kubernetes.io/os|arch` count the same. `spec.os.name` is not a scheduling
/// constraint and is not read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlatformConstraint {
    /// nodeSelector entries about os/arch: (key as written, dimension, value). ANDed.
    selector: Vec<(String, Dim, String)>,
    /// Required node affinity terms (ORed), each restricted to its os/arch expressions
    /// (ANDed). Empty when there is no affinity, or when some term says nothing about
    /// os/arch (that term lets every platform through, so the OR does too).
    terms: Vec<Vec<Requirement>>,
}

impl PlatformConstraint {
    /// Reads the constraint from a PodSpec. `matchFields` and expressions about other keys
    /// are ignored.
    pub fn of(spec: &PodSpec) -> Self {
        let selector = spec
            .node_selector
            .iter()
            .flatten()
            .filter_map(|(k, v)| Dim::of_key(k).map(|d| (k.clone(), d, v.clone())))
            .collect();
        let raw_terms = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|s| s.node_selector_terms.as_slice())
            .unwrap_or_default();
        let mut terms: Vec<Vec<Requirement>> = raw_terms
            .iter()
            .map(|t| {
                t.match_expressions
                    .iter()
                    .flatten()
                    .filter_map(requirement)
                    .collect()
            })
            .collect();
        if terms.iter().any(Vec::is_empty) {
            terms.clear();
        }
        PlatformConstraint { selector, terms }
    }

    /// True when the Pod says anything about os or arch.
    pub fn is_constrained(&self) -> bool {
        !self.selector.is_empty() || !self.terms.is_empty()
    }

    /// Could a node labelled `kubernetes.io/os=<os>`, `kubernetes.io/arch=<arch>` (and the
    /// same beta labels) run the Pod? Evaluates the nodeSelector and the required terms
    /// with the scheduler's operators (In, NotIn, Exists, DoesNotExist, Gt, Lt; unknown
    /// operators match nothing). Values are compared exactly, as label values are.
    pub fn allows(&self, os: &str, arch: &str) -> bool {
        self.selector_allows(os, arch)
            && (self.terms.is_empty() || self.terms.iter().any(|t| term_allows(t, os, arch)))
    }

    fn selector_allows(&self, os: &str, arch: &str) -> bool {
        self.selector.iter().all(|(_, d, v)| d.pick(os, arch) == v)
    }

    /// The platforms the Pod itself names when no node list is known: arch and os values
    /// from the nodeSelector and from `In` expressions, per affinity term; os defaults to
    /// `linux` when a term names none. `None` when some way of scheduling the Pod leaves
    /// the arch open (no nodeSelector arch and a term without an arch `In`). Combinations
    /// the constraint refuses are left out, so the list may be empty. Values are as
    /// written (not normalized), without variant. At most [`MAX_EXPLICIT_PLATFORMS`]
    /// platforms, the first ones in that order.
    ///
    /// Linear in the size of the constraint: a term is a conjunction of os-only and
    /// arch-only conditions, so each os and each arch value is checked once (against hash
    /// sets of the expression values); only the os x arch product is built, and it is
    /// capped. (A Pod of a few KB naming 300 os and 300 arch values used to take minutes.)
    pub fn explicit_platforms(&self) -> Option<Vec<Platform>> {
        let no_terms: [Vec<Requirement>; 1] = [Vec::new()];
        let terms: &[Vec<Requirement>] = if self.terms.is_empty() {
            &no_terms
        } else {
            &self.terms
        };
        let mut out: Vec<Platform> = Vec::new();
        let mut emitted: HashSet<(&str, &str)> = HashSet::new();
        for term in terms {
            let arches = self.named(term, Dim::Arch);
            if arches.is_empty() {
                return None;
            }
            if out.len() >= MAX_EXPLICIT_PLATFORMS {
                // Full, but a later term may still leave the arch open.
                continue;
            }
            let mut oses = self.named(term, Dim::Os);
            if oses.is_empty() {
                oses.push("linux");
            }
            let sets: Vec<HashSet<&str>> = term
                .iter()
                .map(|r| r.values.iter().map(String::as_str).collect())
                .collect();
            // selector_allows && term_allows, one dimension at a time.
            let dim_allows = |dim: Dim, value: &str| {
                self.selector
                    .iter()
                    .all(|(_, d, v)| *d != dim || v == value)
                    && term.iter().zip(&sets).all(|(r, set)| {
                        r.dim != dim
                            || match r.operator.as_str() {
                                "In" => set.contains(value),
                                "NotIn" => !set.contains(value),
                                _ => r.matches(value),
                            }
                    })
            };
            oses.retain(|os| dim_allows(Dim::Os, os));
            let arches: Vec<&str> = arches
                .into_iter()
                .filter(|arch| dim_allows(Dim::Arch, arch))
                .collect();
            'product: for os in &oses {
                for arch in &arches {
                    if out.len() >= MAX_EXPLICIT_PLATFORMS {
                        break 'product;
                    }
                    if emitted.insert((os, arch)) {
                        out.push(Platform::new(os, arch, None));
                    }
                }
            }
        }
        Some(out)
    }

    /// Distinct values of `dim` named by the nodeSelector and by `In` expressions of `term`,
    /// in order.
    fn named<'a>(&'a self, term: &'a [Requirement], dim: Dim) -> Vec<&'a str> {
        let mut seen: HashSet<&str> = HashSet::new();
        let from_selector = self
            .selector
            .iter()
            .filter(|(_, d, _)| *d == dim)
            .map(|(_, _, v)| v.as_str());
        let from_term = term
            .iter()
            .filter(|r| r.dim == dim && r.operator == "In")
            .flat_map(|r| r.values.iter().map(String::as_str));
        from_selector
            .chain(from_term)
            .filter(|v| seen.insert(v))
            .collect()
    }

    /// The platforms of `available` (e.g. the cluster's node platforms) that
    /// [`allows`](Self::allows) accepts, in order.
    pub fn filter(&self, available: &[Platform]) -> Vec<Platform> {
        available
            .iter()
            .filter(|p| self.allows(&p.os, &p.architecture))
            .cloned()
            .collect()
    }

    /// Human text for a finding, e.g. `nodeSelector kubernetes.io/arch=arm64` or
    /// `node affinity kubernetes.io/arch in (arm64, amd64)`; both parts joined by `; `;
    /// terms joined by ` or `, expressions by ` and `.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.selector.is_empty() {
            let pairs: Vec<String> = self
                .selector
                .iter()
                .map(|(k, _, v)| format!("{k}={v}"))
                .collect();
            parts.push(format!("nodeSelector {}", pairs.join(", ")));
        }
        if !self.terms.is_empty() {
            let many = self.terms.len() > 1;
            let terms: Vec<String> = self
                .terms
                .iter()
                .map(|t| {
                    let exprs: Vec<String> = t.iter().map(Requirement::describe).collect();
                    let text = exprs.join(" and ");
                    if many && t.len() > 1 {
                        format!("({text})")
                    } else {
                        text
                    }
                })
                .collect();
            parts.push(format!("node affinity {}", terms.join(" or ")));
        }
        if parts.is_empty() {
            "no kubernetes.io/os or kubernetes.io/arch constraint".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

fn requirement(r: &NodeSelectorRequirement) -> Option<Requirement> {
    Some(Requirement {
        dim: Dim::of_key(&r.key)?,
        key: r.key.clone(),
        operator: r.operator.clone(),
        values: r.values.clone().unwrap_or_default(),
    })
}

fn term_allows(term: &[Requirement], os: &str, arch: &str) -> bool {
    term.iter().all(|r| r.matches(r.dim.pick(os, arch)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::workload::tests::{nodes, p, spec};
    use rstest::rstest;
    use serde_json::{json, Value};

    fn affinity(terms: Value) -> PlatformConstraint {
        PlatformConstraint::of(&spec(json!({
            "containers": [],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": terms}}}
        })))
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> Value {
        json!({"key": key, "operator": op, "values": values})
    }

    const ARCH: &str = "kubernetes.io/arch";
    const OS: &str = "kubernetes.io/os";

    #[test]
    fn unconstrained() {
        let c = PlatformConstraint::of(&spec(json!({"containers": []})));
        assert_eq!(c, PlatformConstraint::default());
        assert!(!c.is_constrained());
        assert!(c.allows("windows", "s390x"));
        assert_eq!(c.explicit_platforms(), None);
        assert_eq!(c.filter(&nodes()), nodes());
        assert_eq!(
            c.describe(),
            "no kubernetes.io/os or kubernetes.io/arch constraint"
        );
    }

    #[test]
    fn node_selector() {
        let c = PlatformConstraint::of(&spec(json!({"containers": [], "nodeSelector": {
            "kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64", "disk": "ssd"
        }})));
        assert!(c.is_constrained());
        assert_eq!(c.filter(&nodes()), vec![p("linux/arm64")]);
        assert_eq!(c.explicit_platforms(), Some(vec![p("linux/arm64")]));
        assert_eq!(
            c.describe(),
            "nodeSelector kubernetes.io/arch=arm64, kubernetes.io/os=linux"
        );
        // os only: arch is not pinned.
        let c = PlatformConstraint::of(&spec(
            json!({"containers": [], "nodeSelector": {"kubernetes.io/os": "windows"}}),
        ));
        assert_eq!(c.filter(&nodes()), vec![p("windows/amd64")]);
        assert_eq!(c.explicit_platforms(), None);
    }

    #[test]
    fn beta_labels_count_the_same() {
        let c = PlatformConstraint::of(&spec(json!({"containers": [], "nodeSelector": {
            "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "windows"
        }})));
        assert_eq!(c.filter(&nodes()), vec![p("windows/amd64")]);
        assert_eq!(c.explicit_platforms(), Some(vec![p("windows/amd64")]));
        let c = affinity(
            json!([{"matchExpressions": [expr("beta.kubernetes.io/arch", "In", &["arm64"])]}]),
        );
        assert_eq!(c.filter(&nodes()), vec![p("linux/arm64")]);
        assert_eq!(
            c.describe(),
            "node affinity beta.kubernetes.io/arch in (arm64)"
        );
    }

    #[rstest]
    #[case(expr(ARCH, "In", &["arm64", "amd64"]), &["linux/amd64", "linux/arm64", "windows/amd64"])]
    #[case(expr(ARCH, "In", &["arm64"]), &["linux/arm64"])]
    #[case(expr(ARCH, "NotIn", &["arm64"]), &["linux/amd64", "windows/amd64"])]
    #[case(expr(OS, "NotIn", &["windows"]), &["linux/amd64", "linux/arm64"])]
    #[case(json!({"key": ARCH, "operator": "Exists"}), &["linux/amd64", "linux/arm64", "windows/amd64"])]
    #[case(json!({"key": OS, "operator": "DoesNotExist"}), &[])]
    #[case(expr(ARCH, "Gt", &["1"]), &[])]
    #[case(expr(ARCH, "Bogus", &["amd64"]), &[])]
    fn affinity_operators(#[case] e: Value, #[case] allowed: &[&str]) {
        let c = affinity(json!([{"matchExpressions": [e]}]));
        assert!(c.is_constrained());
        let want: Vec<Platform> = allowed.iter().map(|s| p(s)).collect();
        assert_eq!(c.filter(&nodes()), want);
    }

    #[test]
    fn affinity_in_values_and_explicit_platforms() {
        let c = affinity(json!([{"matchExpressions": [
            expr(ARCH, "In", &["arm64", "amd64"]),
            expr("topology.kubernetes.io/zone", "In", &["a"])
        ]}]));
        assert_eq!(
            c.explicit_platforms(),
            Some(vec![p("linux/arm64"), p("linux/amd64")])
        );
        assert_eq!(
            c.describe(),
            "node affinity kubernetes.io/arch in (arm64, amd64)"
        );
        // NotIn does not pin the arch.
        let c = affinity(json!([{"matchExpressions": [expr(ARCH, "NotIn", &["arm64"])]}]));
        assert_eq!(c.explicit_platforms(), None);
    }

    #[test]
    fn explicit_platforms_of_many_values_are_capped_and_fast() {
        // Found by the admission fuzz target (tests/fuzz): 300 os x 300 arch values took
        // 45 s; 2000 x 2000 would have taken hours and held 4M platforms.
        let oses: Vec<String> = (0..2000).map(|i| format!("os{i}")).collect();
        let arches: Vec<String> = (0..2000).map(|i| format!("arch{i}")).collect();
        let oses: Vec<&str> = oses.iter().map(String::as_str).collect();
        let arches: Vec<&str> = arches.iter().map(String::as_str).collect();
        let c = affinity(json!([{"matchExpressions": [
            expr(OS, "In", &oses),
            expr(ARCH, "In", &arches),
            expr(ARCH, "NotIn", &arches[..1000]),
        ]}]));
        let got = c.explicit_platforms().unwrap();
        assert_eq!(got.len(), MAX_EXPLICIT_PLATFORMS);
        assert_eq!(got[0], p("os0/arch1000"));
        assert_eq!(got[MAX_EXPLICIT_PLATFORMS - 1], p("os0/arch1063"));
        // The cap does not hide a later term that leaves the arch open.
        let c = affinity(json!([
            {"matchExpressions": [expr(OS, "In", &oses), expr(ARCH, "In", &arches)]},
            {"matchExpressions": [expr(OS, "In", &["linux"])]}
        ]));
        assert_eq!(c.explicit_platforms(), None);
    }

    #[test]
    fn two_ored_terms() {
        let c = affinity(json!([
            {"matchExpressions": [expr(OS, "In", &["windows"]), expr(ARCH, "In", &["amd64"])]},
            {"matchExpressions": [expr(ARCH, "In", &["arm64"])]}
        ]));
        assert_eq!(
            c.filter(&nodes()),
            vec![p("linux/arm64"), p("windows/amd64")]
        );
        assert!(c.allows("windows", "arm64"));
        assert!(!c.allows("linux", "amd64"));
        assert_eq!(
            c.explicit_platforms(),
            Some(vec![p("windows/amd64"), p("linux/arm64")])
        );
        assert_eq!(
            c.describe(),
            "node affinity (kubernetes.io/os in (windows) and kubernetes.io/arch in (amd64)) or kubernetes.io/arch in (arm64)"
        );
        // A second term without an arch `In` leaves the arch open.
        let c = affinity(json!([
            {"matchExpressions": [expr(ARCH, "In", &["amd64"])]},
            {"matchExpressions": [expr(OS, "In", &["linux"])]}
        ]));
        assert_eq!(c.explicit_platforms(), None);
        assert_eq!(
            c.filter(&nodes()),
            vec![p("linux/amd64"), p("linux/arm64"), p("windows/amd64")]
        );
    }

    #[test]
    fn terms_only_about_other_keys_are_true() {
        let c = affinity(json!([
            {"matchExpressions": [expr(ARCH, "In", &["arm64"])]},
            {"matchExpressions": [expr("topology.kubernetes.io/zone", "In", &["a"])]}
        ]));
        assert!(!c.is_constrained());
        assert_eq!(c.filter(&nodes()), nodes());
        let c = affinity(json!([{"matchFields": [expr("metadata.name", "In", &["n1"])]}]));
        assert!(!c.is_constrained());
        let c = affinity(json!([]));
        assert!(!c.is_constrained());
        assert!(c.allows("linux", "amd64"));
    }

    #[test]
    fn node_selector_and_affinity_are_anded() {
        let c = PlatformConstraint::of(&spec(json!({
            "containers": [],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [expr(ARCH, "In", &["amd64", "arm64"])]}]}}}
        })));
        assert_eq!(c.filter(&nodes()), vec![p("linux/amd64"), p("linux/arm64")]);
        assert_eq!(
            c.describe(),
            "nodeSelector kubernetes.io/os=linux; node affinity kubernetes.io/arch in (amd64, arm64)"
        );
        // Contradiction: nothing allowed, and nothing named.
        let c = PlatformConstraint::of(&spec(json!({
            "containers": [],
            "nodeSelector": {"kubernetes.io/arch": "arm64"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [expr(ARCH, "In", &["amd64"])]}]}}}
        })));
        assert!(c.filter(&nodes()).is_empty());
        assert_eq!(c.explicit_platforms(), Some(vec![]));
    }
}
