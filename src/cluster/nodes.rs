//! The platforms of the cluster's Nodes, followed by a metadata-only watch (kube's
//! `watcher` over `Api<PartialObjectMeta<Node>>`) and kept counted as Nodes come and go.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::{watcher, WatchStreamExt};

use super::described;
use crate::kubelet::platform::{Platform, LABEL_ARCH, LABEL_ARCH_BETA, LABEL_OS, LABEL_OS_BETA};

/// What the Node watch has seen: node name → (os, arch) when labelled.
#[derive(Default)]
pub(super) struct NodeMap {
    /// Set once the first LIST has completed.
    listed: bool,
    nodes: BTreeMap<String, Option<Platform>>,
    /// The (re)list in progress.
    relist: Option<BTreeMap<String, Option<Platform>>>,
    /// Labelled nodes per platform, kept with `nodes` (read at every review).
    counts: BTreeMap<Platform, usize>,
}

type NodeMeta = PartialObjectMeta<Node>;

fn node_entry(node: &NodeMeta) -> Option<(String, Option<Platform>)> {
    let name = node.metadata.name.clone()?;
    let labels = node.metadata.labels.as_ref();
    let label = |ga: &str, beta: &str| {
        labels.and_then(|l| {
            l.get(ga)
                .or_else(|| l.get(beta))
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        })
    };
    let platform = match (
        label(LABEL_OS, LABEL_OS_BETA),
        label(LABEL_ARCH, LABEL_ARCH_BETA),
    ) {
        (Some(os), Some(arch)) => Some(Platform::new(os, arch, None)),
        _ => None,
    };
    Some((name, platform))
}

impl NodeMap {
    pub(super) fn apply(&mut self, event: watcher::Event<NodeMeta>) {
        match event {
            watcher::Event::Init => self.relist = Some(BTreeMap::new()),
            watcher::Event::InitApply(node) => {
                if let Some((name, platform)) = node_entry(&node) {
                    self.relist
                        .get_or_insert_with(BTreeMap::new)
                        .insert(name, platform);
                }
            }
            watcher::Event::InitDone => {
                self.nodes = self.relist.take().unwrap_or_default();
                self.counts.clear();
                for p in self.nodes.values().flatten() {
                    *self.counts.entry(p.clone()).or_default() += 1;
                }
                self.listed = true;
            }
            watcher::Event::Apply(node) => {
                if let Some((name, platform)) = node_entry(&node) {
                    if let Some(p) = &platform {
                        *self.counts.entry(p.clone()).or_default() += 1;
                    }
                    if let Some(old) = self.nodes.insert(name, platform) {
                        self.uncount(old);
                    }
                }
            }
            watcher::Event::Delete(node) => {
                if let Some(old) = node
                    .metadata
                    .name
                    .as_ref()
                    .and_then(|n| self.nodes.remove(n))
                {
                    self.uncount(old);
                }
            }
        }
    }

    fn uncount(&mut self, platform: Option<Platform>) {
        let Some(p) = platform else { return };
        if let Some(n) = self.counts.get_mut(&p) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&p);
            }
        }
    }

    pub(super) fn platforms(&self) -> Option<Vec<Platform>> {
        if !self.listed || self.counts.is_empty() {
            return None;
        }
        Some(self.counts.keys().cloned().collect())
    }
}

/// Follows the Nodes (metadata only) until aborted. Errors are retried by kube's default
/// backoff; the last known Nodes stay in place meanwhile.
pub(super) async fn watch_nodes(client: kube::Client, nodes: Arc<RwLock<NodeMap>>) {
    // `Api<PartialObjectMeta<Node>>` sends metadata-only LIST/WATCH requests (what the
    // deprecated `metadata_watcher` did).
    let api: Api<NodeMeta> = Api::all(client);
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut failing = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                if failing {
                    tracing::info!("Node watch recovered");
                    failing = false;
                }
                let done = matches!(event, watcher::Event::InitDone);
                let mut map = nodes.write().unwrap_or_else(|e| e.into_inner());
                map.apply(event);
                if done {
                    tracing::debug!(
                        nodes = map.nodes.len(),
                        platforms = ?map.platforms(),
                        "Node list complete"
                    );
                }
            }
            Err(e) => {
                let text = described(&e);
                if failing {
                    tracing::debug!(error = %text, "Node watch still failing");
                } else {
                    tracing::warn!(
                        error = %text,
                        "Node watch failed (needs RBAC list+watch on nodes); retrying with backoff"
                    );
                    failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(os: &str, arch: &str) -> Platform {
        Platform::new(os, arch, None)
    }

    #[test]
    fn node_map_follows_events() {
        fn node(name: &str, labels: &[(&str, &str)], rv: &str) -> NodeMeta {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                "metadata": {
                    "name": name, "resourceVersion": rv,
                    "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
                }
            }))
            .unwrap()
        }
        let mut m = NodeMap::default();
        assert_eq!(m.platforms(), None);
        m.apply(watcher::Event::Init);
        m.apply(watcher::Event::InitApply(node(
            "a",
            &[(LABEL_OS, "linux"), (LABEL_ARCH, "arm64")],
            "1",
        )));
        m.apply(watcher::Event::InitApply(node(
            "b",
            &[(LABEL_OS_BETA, "linux"), (LABEL_ARCH_BETA, "amd64")],
            "2",
        )));
        m.apply(watcher::Event::InitApply(node("c", &[], "3")));
        assert_eq!(m.platforms(), None, "not listed until InitDone");
        m.apply(watcher::Event::InitDone);
        assert_eq!(
            m.platforms(),
            Some(vec![p("linux", "amd64"), p("linux", "arm64")])
        );
        m.apply(watcher::Event::Apply(node(
            "d",
            &[(LABEL_OS, "windows"), (LABEL_ARCH, "amd64")],
            "4",
        )));
        m.apply(watcher::Event::Delete(node("a", &[], "5")));
        assert_eq!(
            m.platforms(),
            Some(vec![p("linux", "amd64"), p("windows", "amd64")])
        );
        // Relabelled: the old platform goes with its last node; a platform stays while
        // another node still has it.
        m.apply(watcher::Event::Apply(node(
            "b",
            &[(LABEL_OS, "linux"), (LABEL_ARCH, "arm64")],
            "7",
        )));
        m.apply(watcher::Event::Apply(node(
            "f",
            &[(LABEL_OS, "windows"), (LABEL_ARCH, "amd64")],
            "8",
        )));
        m.apply(watcher::Event::Delete(node("d", &[], "9")));
        assert_eq!(
            m.platforms(),
            Some(vec![p("linux", "arm64"), p("windows", "amd64")])
        );
        m.apply(watcher::Event::Apply(node("b", &[], "10")));
        assert_eq!(m.platforms(), Some(vec![p("windows", "amd64")]));
        // A relist replaces everything.
        m.apply(watcher::Event::Init);
        m.apply(watcher::Event::InitApply(node(
            "e",
            &[(LABEL_OS, "linux"), (LABEL_ARCH, "s390x")],
            "6",
        )));
        assert_eq!(m.platforms(), Some(vec![p("windows", "amd64")]));
        m.apply(watcher::Event::InitDone);
        assert_eq!(m.platforms(), Some(vec![p("linux", "s390x")]));
    }
}
