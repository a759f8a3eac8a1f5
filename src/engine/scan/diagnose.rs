//! A Pod stuck pulling, explained: the kubelet's own words (the container's waiting
//! message, or the Pod's last `Failed to pull image` event when that message carries no
//! error) next to pullcheck's verdict on the same image with the same credentials, and
//! what it means when the two disagree — the registry answers pullcheck but the node
//! could not reach it (a network path only nodes have: DNS, proxy, firewall, the runtime's
//! TLS trust); the node has `DiskPressure`; the image would pull now (fixed since the
//! kubelet's last attempt: delete the Pod, or wait for the back-off).

use crate::cluster::view::NodeHealth;
use crate::engine::finding::{Finding, FindingClass};
use crate::kubelet::pull_failure::PullCause;

/// How pullcheck's verdict and the kubelet's message relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Agreement {
    /// Both name the same cause (or pullcheck names one the kubelet's message does not).
    Agrees,
    /// Both fail, for different causes: both need fixing.
    Differs,
    /// The registry answers pullcheck; the node could not reach it.
    NodeOnly,
    /// The node has DiskPressure (or its runtime ran out of space).
    DiskPressure,
    /// The image pulls now: fixed since the kubelet's last attempt.
    FixedSince,
    /// pullcheck does not check what failed (pull policy Never, signatures, an exempt
    /// image).
    NotChecked,
    /// pullcheck could not reach the registry either: no verdict to compare.
    Uncertain,
}

impl Agreement {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agrees => "agrees",
            Self::Differs => "differs",
            Self::NodeOnly => "node_only",
            Self::DiskPressure => "disk_pressure",
            Self::FixedSince => "fixed_since",
            Self::NotChecked => "not_checked",
            Self::Uncertain => "uncertain",
        }
    }
}

/// Whether a finding class is what a kubelet cause says.
fn same_cause(class: FindingClass, cause: PullCause) -> bool {
    use FindingClass as F;
    use PullCause as P;
    match cause {
        P::NotFound => matches!(
            class,
            F::TagNotFound | F::RepositoryNotFound | F::DigestNotFound
        ),
        // Docker Hub and containerd say "pull access denied … may require authorization"
        // for a repository that does not exist, too.
        P::Unauthorized => matches!(
            class,
            F::Unauthorized
                | F::SecretMissing
                | F::SecretInvalid
                | F::Denied
                | F::RepositoryNotFound
        ),
        P::Forbidden => matches!(class, F::Denied | F::Unauthorized),
        P::Platform => class == F::PlatformMismatch,
        P::InvalidReference => class == F::InvalidReference,
        P::RateLimited => class == F::RateLimited,
        P::Tls | P::Dns | P::ConnectionRefused | P::Network | P::Timeout | P::RegistryError => {
            matches!(class, F::Unavailable | F::Timeout | F::Blocked)
        }
        // The kubelet's words name no cause: pullcheck's is the explanation.
        P::Unknown => true,
        P::Signature | P::Disk | P::NeverPull | P::Inspect | P::Unsupported => false,
    }
}

/// What a stuck container's situation means, in words, and how the two verdicts relate.
pub struct Facts<'a> {
    pub image: &'a str,
    pub node: Option<&'a str>,
    pub health: Option<&'a NodeHealth>,
    pub cause: PullCause,
    /// Whether pullcheck checked the image (not `imagePullPolicy: Never`, not exempt).
    pub checked: bool,
    /// pullcheck's finding on the image for this Pod; `None`: it pulls.
    pub finding: Option<&'a Finding>,
    /// pullcheck's check says the image lacks a variant for some of the cluster's nodes.
    pub some_platforms_missing: bool,
}

pub fn explain(f: &Facts<'_>) -> (Agreement, String) {
    let node = f
        .node
        .map_or_else(|| "the node".to_owned(), |n| format!("node {n}"));
    if f.cause == PullCause::NeverPull {
        return (
            Agreement::NotChecked,
            format!("imagePullPolicy Never: the kubelet never pulls {}, and {node} does not have it (or, since Kubernetes 1.35, the Pod's credentials were not verified for it there); load it onto the node or use imagePullPolicy IfNotPresent", f.image),
        );
    }
    if !f.checked {
        return (
            Agreement::NotChecked,
            format!(
                "pullcheck does not check {} (exempt): the kubelet's message is all there is",
                f.image
            ),
        );
    }
    let disk = f.health.filter(|h| h.disk_pressure);
    match f.finding {
        Some(finding) if finding.class.is_definite() => {
            if same_cause(finding.class, f.cause) {
                (
                    Agreement::Agrees,
                    format!("pullcheck agrees: {}", sentence(finding)),
                )
            } else {
                (
                    Agreement::Differs,
                    format!(
                        "the kubelet says {}; pullcheck finds another cause that fails the pull as well: {}",
                        f.cause.describe(),
                        sentence(finding)
                    ),
                )
            }
        }
        Some(finding) => {
            let also = if f.cause.is_node_path()
                || f.cause == PullCause::RateLimited
                || f.cause == PullCause::RegistryError
            {
                "the registry is failing for pullcheck too"
            } else {
                "pullcheck cannot verify the image now"
            };
            (
                Agreement::Uncertain,
                format!("{also}: {}", sentence(finding)),
            )
        }
        None => {
            if let Some(h) = disk {
                let why = if h.message.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", h.message)
                };
                return (Agreement::DiskPressure, format!("the image pulls for pullcheck, but {node} has DiskPressure{why}: it cannot store the image; free disk space on the node (image garbage collection, larger disk) or let the Pod move to another node"));
            }
            match f.cause {
                PullCause::Disk => (Agreement::DiskPressure, format!("the image pulls for pullcheck, but {node} ran out of disk space unpacking it; free disk space on the node or let the Pod move to another node")),
                c if c.is_node_path() => (Agreement::NodeOnly, format!("the registry answers pullcheck, but {node} could not reach it ({}): a network path only nodes have — DNS, an HTTP proxy, a firewall or egress rule, or the runtime's TLS trust; try `crictl pull {}` on the node", c.describe(), f.image)),
                PullCause::RateLimited => (Agreement::NodeOnly, format!("the registry rate-limited {node} but answers pullcheck: nodes behind one address share the registry's anonymous limit; give the Pod a pull secret (authenticated limits are higher) or use a mirror")),
                PullCause::RegistryError => (Agreement::FixedSince, "the registry failed the node's pull with a server error and answers now: the next attempt should pull; delete the Pod to retry at once, or wait for the back-off (at most 5 minutes)".to_owned()),
                PullCause::Signature => (Agreement::NotChecked, format!("{node}'s signature policy refused the image; pullcheck does not verify signatures: sign the image or fix the policy (CRI-O's policy.json)")),
                PullCause::Platform if f.some_platforms_missing => (Agreement::Agrees, format!("pullcheck agrees: the image lacks a variant for {node}'s platform while other nodes have one; add a nodeSelector on kubernetes.io/arch to keep the Pod off such nodes")),
                PullCause::Inspect | PullCause::Unsupported => (Agreement::NodeOnly, format!("the registry serves the image, but the runtime on {node} could not handle it ({}): check the runtime's version and log on the node", f.cause.describe())),
                _ => (Agreement::FixedSince, "the image would pull now: fixed since the kubelet's last attempt; delete the Pod to retry at once, or wait for the back-off (at most 5 minutes)".to_owned()),
            }
        }
    }
}

fn sentence(f: &Finding) -> String {
    match &f.hint {
        Some(h) => format!("{}; fix: {h}", f.message),
        None => f.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn finding(class: FindingClass) -> Finding {
        Finding {
            class,
            message: format!("{class} says pullcheck"),
            hint: Some("do it".into()),
        }
    }

    #[rstest]
    #[case(
        PullCause::NotFound,
        Some(FindingClass::TagNotFound),
        false,
        Agreement::Agrees,
        "pullcheck agrees: tag_not_found says pullcheck; fix: do it"
    )]
    #[case(
        PullCause::Unknown,
        Some(FindingClass::SecretMissing),
        false,
        Agreement::Agrees,
        "pullcheck agrees"
    )]
    #[case(
        PullCause::Unauthorized,
        Some(FindingClass::SecretMissing),
        false,
        Agreement::Agrees,
        "secret_missing"
    )]
    #[case(
        PullCause::Dns,
        Some(FindingClass::TagNotFound),
        false,
        Agreement::Differs,
        "did not resolve on the node; pullcheck finds another cause"
    )]
    #[case(
        PullCause::Dns,
        None,
        false,
        Agreement::NodeOnly,
        "the registry answers pullcheck, but node n1 could not reach it"
    )]
    #[case(PullCause::Tls, None, false, Agreement::NodeOnly, "TLS trust")]
    #[case(
        PullCause::NotFound,
        None,
        false,
        Agreement::FixedSince,
        "would pull now"
    )]
    #[case(
        PullCause::Unauthorized,
        None,
        false,
        Agreement::FixedSince,
        "delete the Pod"
    )]
    #[case(
        PullCause::NotFound,
        None,
        true,
        Agreement::DiskPressure,
        "node n1 has DiskPressure (disk 95% full)"
    )]
    #[case(
        PullCause::Disk,
        None,
        false,
        Agreement::DiskPressure,
        "ran out of disk space"
    )]
    #[case(
        PullCause::Timeout,
        Some(FindingClass::Unavailable),
        false,
        Agreement::Uncertain,
        "failing for pullcheck too"
    )]
    #[case(
        PullCause::RateLimited,
        None,
        false,
        Agreement::NodeOnly,
        "anonymous limit"
    )]
    #[case(
        PullCause::Signature,
        None,
        false,
        Agreement::NotChecked,
        "does not verify signatures"
    )]
    #[case(
        PullCause::NeverPull,
        None,
        false,
        Agreement::NotChecked,
        "imagePullPolicy Never"
    )]
    fn verdicts_and_kubelet_messages(
        #[case] cause: PullCause,
        #[case] class: Option<FindingClass>,
        #[case] disk_pressure: bool,
        #[case] want: Agreement,
        #[case] words: &str,
    ) {
        let f = class.map(finding);
        let health = NodeHealth {
            disk_pressure,
            message: "disk 95% full".into(),
        };
        let (got, text) = explain(&Facts {
            image: "r.example/a:1",
            node: Some("n1"),
            health: Some(&health),
            cause,
            checked: true,
            finding: f.as_ref(),
            some_platforms_missing: false,
        });
        assert_eq!(got, want, "{text}");
        assert!(text.contains(words), "{text}");
    }

    #[test]
    fn a_platform_only_some_nodes_lack_is_agreed_on() {
        let (got, text) = explain(&Facts {
            image: "r.example/arm-only:1",
            node: Some("amd-1"),
            health: None,
            cause: PullCause::Platform,
            checked: true,
            finding: None,
            some_platforms_missing: true,
        });
        assert_eq!(got, Agreement::Agrees);
        assert!(text.contains("nodeSelector"), "{text}");
    }
}
