//! Which registry hosts pullcheck keeps per-host state for, bounded by design.
//!
//! Image references and token realms name hosts that users (and registries) choose, so
//! anything kept per host — a metric series, pooled connections — would grow without limit
//! under a stream of distinct hosts (a hostile manifest, a forged review). A host is
//! *tracked* when it is configured (`registries:`, `--plain-http`, `--registry-ca`,
//! `--node-credentials`) or among the first `capacity` other hosts contacted; every other
//! host shares the metric label [`OTHER`] and gets no pooled connections (each request opens
//! and closes its own). The set only grows up to its capacity and never forgets, so a
//! host's series never splits between its name and `other`.

use std::collections::HashSet;
use std::sync::Mutex;

/// The metric label of untracked hosts.
pub const OTHER: &str = "other";

/// Hosts tracked by default besides configured ones.
pub const DEFAULT_CAPACITY: usize = 100;

#[derive(Debug)]
pub struct TrackedHosts {
    configured: HashSet<String>,
    seen: Mutex<HashSet<String>>,
    capacity: usize,
}

impl TrackedHosts {
    /// `configured`: host[:port] names always tracked (compared case-insensitively).
    pub fn new(configured: impl IntoIterator<Item = String>, capacity: usize) -> Self {
        Self {
            configured: configured
                .into_iter()
                .map(|h| normalize(&h).into_owned())
                .collect(),
            seen: Mutex::new(HashSet::new()),
            capacity,
        }
    }

    /// Whether `host` is tracked, admitting it while there is room.
    pub fn track(&self, host: &str) -> bool {
        let host = normalize(host);
        if self.configured.contains(host.as_ref()) {
            return true;
        }
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if seen.contains(host.as_ref()) {
            return true;
        }
        if seen.len() < self.capacity {
            seen.insert(host.into_owned());
            return true;
        }
        false
    }

    /// The metric label of `host`: its name when tracked, else [`OTHER`].
    pub fn label<'a>(&self, host: &'a str) -> &'a str {
        if self.track(host) {
            host
        } else {
            OTHER
        }
    }

    /// Hosts tracked now (configured ones included).
    pub fn len(&self) -> usize {
        self.configured.len() + self.seen.lock().map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Lowercase, without a trailing dot: `Registry.Example.com.:5000` and
/// `registry.example.com:5000` are one host.
fn normalize(host: &str) -> std::borrow::Cow<'_, str> {
    let (name, port) = match host.rsplit_once(':') {
        // A bare IPv6 literal has colons but no port.
        Some((n, _)) if !n.ends_with(']') && n.contains(':') => (host, None),
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let trimmed = name.trim_end_matches('.');
    if trimmed.len() == name.len() && !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return std::borrow::Cow::Borrowed(host);
    }
    let mut out = trimmed.to_ascii_lowercase();
    if let Some(p) = port {
        out.push(':');
        out.push_str(p);
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_hosts_and_the_first_others_are_tracked() {
        let hosts = TrackedHosts::new(["registry.corp:5000".to_string()], 2);
        assert!(hosts.track("Registry.Corp:5000"));
        assert_eq!(hosts.label("a.example"), "a.example");
        assert_eq!(hosts.label("b.example"), "b.example");
        assert_eq!(hosts.label("c.example"), OTHER);
        // Seen before the set filled: still tracked; configured: always.
        assert_eq!(hosts.label("a.example"), "a.example");
        assert_eq!(hosts.label("registry.corp:5000"), "registry.corp:5000");
        assert_eq!(hosts.len(), 3);
    }

    #[test]
    fn trailing_dots_and_case_name_one_host() {
        let hosts = TrackedHosts::new([], 1);
        assert!(hosts.track("a.example."));
        assert!(hosts.track("A.EXAMPLE"));
        assert!(hosts.track("a.example"));
        assert!(!hosts.track("b.example"));
        assert_eq!(normalize("A.b.:5000"), "a.b:5000");
        assert_eq!(normalize("[fc00::1]:5000"), "[fc00::1]:5000");
        assert_eq!(normalize("fc00::1"), "fc00::1");
    }

    #[test]
    fn a_flood_of_hosts_stays_within_capacity() {
        let hosts = TrackedHosts::new([], 100);
        for i in 0..100_000 {
            hosts.track(&format!("h{i}.example"));
        }
        assert_eq!(hosts.len(), 100);
    }
}
