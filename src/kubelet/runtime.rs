//! Which container runtime the nodes run, and what its version changes in a pull: the
//! kubelet reports it as `status.nodeInfo.containerRuntimeVersion` (`containerd://2.1.4`,
//! `cri-o://1.34.1`; distributions add suffixes: `1.7.28-0ubuntu1`, `v1.7.26-k3s1`).
//!
//! How a node picks a platform from an image index, by containerd release (its CRI pull
//! path and the containerd/platforms release it vendors):
//!
//! | containerd | CRI pull path | matcher |
//! |---|---|---|
//! | 1.7 | local (`client.Pull`) | `Only`, platforms v0.2.1 |
//! | 2.0 | local | `Only`, rc.0 |
//! | 2.1 | transfer service | `OnlyStrict`, rc.1 |
//! | 2.2 | transfer service | `OnlyStrict`, rc.2 |
//! | 2.3+ | transfer service | `OnlyStrict`, rc.4 |
//!
//! A containerd of unknown version is taken as the lenient one (`Only` with the newest
//! rules), so an unknown version never refuses a Pod that pulls. CRI-O matches platforms
//! like containerd's `Only` (containers/image's own matcher is not modelled).

use std::fmt;

use crate::kubelet::platform::PlatformRules;
use crate::kubelet::platform_match::PlatformMatcher;

/// `major.minor.patch` of a runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// `[v]major[.minor[.patch]]` followed by anything (`-k3s1`, `-0ubuntu1`, `+git…`).
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.strip_prefix('v').unwrap_or(text);
        let mut numbers = [0u32; 3];
        let mut rest = text;
        for (i, n) in numbers.iter_mut().enumerate() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                if i == 0 {
                    return None;
                }
                break;
            }
            *n = rest[..digits].parse().ok()?;
            rest = &rest[digits..];
            match rest.strip_prefix('.') {
                Some(r) if i < 2 => rest = r,
                _ => break,
            }
        }
        Some(Version::new(numbers[0], numbers[1], numbers[2]))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The runtime of the nodes, with its version when known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeRuntime {
    Containerd(Option<Version>),
    CriO(Option<Version>),
}

/// What `--node-runtime` says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RuntimeChoice {
    /// Follow the cluster's Nodes when they agree; containerd otherwise.
    #[default]
    Auto,
    Fixed(NodeRuntime),
}

impl RuntimeChoice {
    /// `auto`, `containerd`, `cri-o`, or with a version as nodes report it
    /// (`containerd://2.1.4`, `cri-o://1.34`).
    pub fn parse(text: &str) -> Result<RuntimeChoice, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("auto") {
            return Ok(RuntimeChoice::Auto);
        }
        match NodeRuntime::parse(t) {
            Some(r) => Ok(RuntimeChoice::Fixed(r)),
            None => Err(format!(
                "unknown node runtime {:?}: expected auto, containerd, cri-o, or one with its version as Nodes report it (containerd://2.1.4, cri-o://1.34.1)",
                crate::text::clip(t, crate::text::QUOTE_LIMIT)
            )),
        }
    }
}

impl fmt::Display for RuntimeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeChoice::Auto => f.write_str("auto"),
            RuntimeChoice::Fixed(r) => r.fmt(f),
        }
    }
}

impl NodeRuntime {
    /// `name://version` as Nodes report it, or a bare name. `Unknown` (the kubelet's
    /// word when the runtime did not answer) and other runtimes are `None`.
    pub fn parse(text: &str) -> Option<NodeRuntime> {
        let t = text.trim();
        let (name, version) = match t.split_once("://") {
            Some((n, v)) => (n, Version::parse(v)),
            None => (t, None),
        };
        match name.to_ascii_lowercase().as_str() {
            "containerd" => Some(NodeRuntime::Containerd(version)),
            "cri-o" | "crio" => Some(NodeRuntime::CriO(version)),
            _ => None,
        }
    }

    /// How nodes of this runtime pick a platform from an image index.
    pub fn platform_matcher(&self) -> PlatformMatcher {
        let NodeRuntime::Containerd(Some(v)) = self else {
            return PlatformMatcher::DEFAULT;
        };
        match (v.major, v.minor) {
            (0 | 1, _) => PlatformMatcher::only(PlatformRules::V0_2),
            (2, 0) => PlatformMatcher::only(PlatformRules::Rc0),
            (2, 1) => PlatformMatcher::strict(PlatformRules::Rc1),
            (2, 2) => PlatformMatcher::strict(PlatformRules::Rc2),
            _ => PlatformMatcher::strict(PlatformRules::Rc4),
        }
    }
}

impl fmt::Display for NodeRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, version) = match self {
            NodeRuntime::Containerd(v) => ("containerd", v),
            NodeRuntime::CriO(v) => ("cri-o", v),
        };
        match version {
            Some(v) => write!(f, "{name}://{v}"),
            None => f.write_str(name),
        }
    }
}

/// The runtime of a cluster from its Nodes' `containerRuntimeVersion`s: the one they all
/// report; its version when they agree on it too (a cluster in the middle of an upgrade
/// is taken as of unknown version). `Err` with why when they disagree or none is known.
pub fn agreed_runtime<'a>(
    reported: impl IntoIterator<Item = &'a str>,
) -> Result<NodeRuntime, String> {
    let mut seen: Option<NodeRuntime> = None;
    let mut count = 0usize;
    for text in reported {
        count += 1;
        let Some(r) = NodeRuntime::parse(text) else {
            return Err(format!(
                "a Node reports the runtime {:?}, which pullcheck does not follow",
                crate::text::clip(text, crate::text::QUOTE_LIMIT)
            ));
        };
        seen = Some(match (seen, r) {
            (None, r) => r,
            (Some(a), b) if a == b => a,
            (Some(NodeRuntime::Containerd(_)), NodeRuntime::Containerd(_)) => {
                NodeRuntime::Containerd(None)
            }
            (Some(NodeRuntime::CriO(_)), NodeRuntime::CriO(_)) => NodeRuntime::CriO(None),
            (Some(a), b) => {
                return Err(format!("Nodes run different runtimes ({a} and {b})"));
            }
        });
    }
    seen.ok_or_else(|| {
        if count == 0 {
            "no Node reports its runtime yet".to_owned()
        } else {
            "no Node reports a runtime".to_owned()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(
        "containerd://2.1.4",
        Some(NodeRuntime::Containerd(Some(Version::new(2, 1, 4))))
    )]
    #[case(
        "containerd://v1.7.26-k3s1",
        Some(NodeRuntime::Containerd(Some(Version::new(1, 7, 26))))
    )]
    #[case(
        "containerd://1.7.28-0ubuntu1~24.04.1",
        Some(NodeRuntime::Containerd(Some(Version::new(1, 7, 28))))
    )]
    #[case(
        "containerd://2.2",
        Some(NodeRuntime::Containerd(Some(Version::new(2, 2, 0))))
    )]
    #[case("containerd://Unknown", Some(NodeRuntime::Containerd(None)))]
    #[case(
        "cri-o://1.34.1",
        Some(NodeRuntime::CriO(Some(Version::new(1, 34, 1))))
    )]
    #[case("containerd", Some(NodeRuntime::Containerd(None)))]
    #[case("CRI-O", Some(NodeRuntime::CriO(None)))]
    #[case("docker://24.0.7", None)]
    #[case("Unknown", None)]
    #[case("", None)]
    fn runtimes_as_nodes_report_them(#[case] text: &str, #[case] want: Option<NodeRuntime>) {
        assert_eq!(NodeRuntime::parse(text), want);
    }

    #[test]
    fn choices() {
        assert_eq!(RuntimeChoice::parse("auto"), Ok(RuntimeChoice::Auto));
        assert_eq!(
            RuntimeChoice::parse("cri-o"),
            Ok(RuntimeChoice::Fixed(NodeRuntime::CriO(None)))
        );
        let err = RuntimeChoice::parse("docker").unwrap_err();
        assert!(err.contains("expected auto, containerd, cri-o"), "{err}");
    }

    #[rstest]
    #[case("containerd://1.7.30", PlatformMatcher::only(PlatformRules::V0_2))]
    #[case("containerd://2.0.5", PlatformMatcher::only(PlatformRules::Rc0))]
    #[case("containerd://2.1.4", PlatformMatcher::strict(PlatformRules::Rc1))]
    #[case("containerd://2.2.0", PlatformMatcher::strict(PlatformRules::Rc2))]
    #[case("containerd://2.3.1", PlatformMatcher::strict(PlatformRules::Rc4))]
    #[case("containerd", PlatformMatcher::DEFAULT)]
    #[case("cri-o://1.34.1", PlatformMatcher::DEFAULT)]
    fn what_a_version_changes(#[case] runtime: &str, #[case] platforms: PlatformMatcher) {
        let r = NodeRuntime::parse(runtime).unwrap();
        assert_eq!(r.platform_matcher(), platforms);
    }

    #[test]
    fn a_cluster_agrees_or_not() {
        assert_eq!(
            agreed_runtime(["containerd://2.1.4", "containerd://2.1.4"]),
            Ok(NodeRuntime::Containerd(Some(Version::new(2, 1, 4))))
        );
        assert_eq!(
            agreed_runtime(["containerd://2.1.4", "containerd://1.7.2"]),
            Ok(NodeRuntime::Containerd(None))
        );
        assert!(agreed_runtime(["containerd://2.1.4", "cri-o://1.34.0"])
            .unwrap_err()
            .contains("different runtimes"));
        assert!(agreed_runtime(["docker://24.0.7"]).is_err());
        assert!(agreed_runtime(std::iter::empty()).is_err());
    }
}
