//! The one assembly: the engine built from the resolved configuration — registry (over the
//! network, behind the disk cache when configured), result cache, checker, cluster, node
//! keyring, settings, metrics. `serve`, `check`, the examples, the benchmarks and the tests
//! all build it here, so none of them wires the engine its own way.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use super::resolved::{ClusterConfig, EngineConfig};
use crate::cluster::view::KubeView;
use crate::cluster::{Cluster, KubeCluster, NoCluster};
use crate::engine::advice::{FactSources, TagHistory};
use crate::engine::{AdviceAction, AdviceClass, Checker, Engine};
use crate::kubelet::credentials::{self, Keyring};
use crate::kubelet::platform_match::PlatformMatcher;
use crate::kubelet::runtime::{agreed_runtime, NodeRuntime, RuntimeChoice};
use crate::metrics::Metrics;
use crate::registry::cache::{CacheConfig, CachedRegistry};
use crate::registry::disk::DiskCache;
use crate::registry::names::TrackedHosts;
use crate::registry::ratelimit::Budgets;
use crate::registry::{Distribution, Registry, RegistryConfig};

/// What the engine is wired to besides its configuration.
pub struct Wiring {
    pub cluster: ClusterWiring,
    pub metrics: Arc<Metrics>,
    /// The registries behind the result cache: `None` speaks the distribution API over the
    /// network (through the disk cache when configured); examples, benchmarks and tests
    /// give a double.
    pub registry: Option<Arc<dyn Registry>>,
    /// The cluster view's record of the digests tags had when their workloads were
    /// admitted (`tag_moved` advice), when it runs.
    pub tag_history: Option<Arc<dyn TagHistory>>,
}

impl Wiring {
    /// The registries over the network, and `cluster`.
    pub fn new(cluster: ClusterWiring, metrics: Arc<Metrics>) -> Self {
        Self {
            cluster,
            metrics,
            registry: None,
            tag_history: None,
        }
    }

    /// A registry of one's own behind the result cache (a double).
    pub fn with_registry(mut self, registry: Arc<dyn Registry>) -> Self {
        self.registry = Some(registry);
        self
    }
}

/// Where the engine reads Secrets, ServiceAccounts and Nodes.
pub enum ClusterWiring {
    /// `serve`: as configured ([`discover`]).
    Configured(ClusterConfig),
    /// `check`'s in-memory cluster, filled from its manifests; a test's.
    Given(Arc<dyn Cluster>),
}

/// The engine and what its builders need to know about it.
pub struct Assembled {
    pub engine: Arc<Engine>,
    /// The node-level keyring (`--docker-config`), which `check --image` checks with.
    pub keyring: Arc<Keyring>,
    /// What `--docker-config` holds that the kubelet would not use.
    pub warnings: Vec<String>,
    /// `check --cache-dir`, to be saved at the end of the run.
    pub disk: Option<Arc<DiskCache>>,
    /// Empty with a cluster; ` (no cluster: <why>)` without one (said on `/readyz`).
    pub cluster_status: String,
    /// The registries behind the result cache (over the network, or the double given).
    pub registry: Arc<dyn Registry>,
    /// The cluster view of the discovered cluster (`scan`, the background scan); `None`
    /// without one, or with a given cluster.
    pub view: Option<KubeView>,
    /// How the nodes pick platforms (from `--node-runtime`, or the Nodes with `auto`).
    pub platform_matcher: PlatformMatcher,
}

impl Assembled {
    /// Another engine with the same settings, cluster, node keyring and metrics, whose
    /// result cache asks `registry` (the scan's throttled layer over [`Assembled::registry`])
    /// and keeps nothing beyond a moment: a scan wants today's answer.
    pub fn sibling(&self, registry: Arc<dyn Registry>, config: &EngineConfig) -> Arc<Engine> {
        let cache = CacheConfig {
            positive_ttl: std::time::Duration::ZERO,
            negative_ttl: std::time::Duration::ZERO,
            ..config.cache.clone()
        };
        let metrics = Arc::clone(&self.engine.metrics);
        let cached = CachedRegistry::new(registry, &cache, Arc::clone(&metrics));
        let registry_config = RegistryConfig {
            platform_matcher: self.platform_matcher,
            ..config.registry.clone()
        };
        let checker = Checker::new(Arc::new(cached), Arc::new(registry_config));
        Arc::new(Engine::new(
            Arc::new(checker),
            Arc::clone(&self.engine.cluster),
            Arc::clone(&self.keyring),
            config.settings.clone(),
            metrics,
        ))
    }
}

/// Builds the engine from `config`. Local settings are checked first (the docker config,
/// the registry CAs, the disk cache); only then is a configured cluster looked for.
pub async fn engine(config: &EngineConfig, wiring: Wiring) -> anyhow::Result<Assembled> {
    let (keyring, warnings) = node_keyring(config.docker_config.as_deref())?;
    let (registry, disk, budgets): (Arc<dyn Registry>, _, _) = match wiring.registry {
        Some(given) => {
            // A double reports no budgets; advice reads an empty set.
            let untracked = Arc::new(TrackedHosts::new(Vec::new(), 0));
            let budgets = Arc::new(Budgets::new(untracked, Arc::clone(&wiring.metrics)));
            (given, None, budgets)
        }
        None => {
            let metrics = Arc::clone(&wiring.metrics);
            let distribution = Arc::new(Distribution::new(config.registry.clone(), metrics)?);
            let budgets = distribution.budgets();
            match &config.disk_cache {
                Some((dir, ttl)) => {
                    let disk = Arc::new(DiskCache::open(dir, distribution.clone(), *ttl)?);
                    distribution.preload_platforms(disk.known_platforms()).await;
                    (disk.clone(), Some(disk), budgets)
                }
                None => (distribution, None, budgets),
            }
        }
    };
    budgets.set_threshold(config.settings.advice.low_budget);
    let cached = CachedRegistry::new(
        Arc::clone(&registry),
        &config.cache,
        Arc::clone(&wiring.metrics),
    );
    let (cluster, cluster_status, view) = match wiring.cluster {
        ClusterWiring::Given(cluster) => (cluster, String::new(), None),
        ClusterWiring::Configured(c) => discover(&c).await,
    };
    let runtime = node_runtime(config.node_runtime, cluster.as_ref()).await;
    let platform_matcher = runtime.platform_matcher();
    let registry_config = RegistryConfig {
        platform_matcher,
        ..config.registry.clone()
    };
    let sources = FactSources {
        sizes: config.settings.actions.advice(AdviceClass::GiantImage) != AdviceAction::Off,
        tags: wiring.tag_history,
        matcher: platform_matcher,
    };
    let checker =
        Checker::new(Arc::new(cached), Arc::new(registry_config)).with_advice(budgets, sources);
    let keyring = Arc::new(keyring);
    let engine = Engine::new(
        Arc::new(checker),
        cluster,
        Arc::clone(&keyring),
        config.settings.clone(),
        wiring.metrics,
    );
    Ok(Assembled {
        engine: Arc::new(engine),
        keyring,
        warnings,
        disk,
        cluster_status,
        registry,
        view,
        platform_matcher,
    })
}

/// The nodes' runtime: the one `--node-runtime` names or, with `auto`, the one the
/// cluster's Nodes agree on (read once, here); containerd of unknown version otherwise
/// (no cluster, Nodes that disagree or cannot be listed), whose platform matcher is the
/// lenient one.
pub async fn node_runtime(choice: RuntimeChoice, cluster: &dyn Cluster) -> NodeRuntime {
    let runtime = match choice {
        RuntimeChoice::Fixed(runtime) => runtime,
        RuntimeChoice::Auto if !cluster.available() => NodeRuntime::Containerd(None),
        RuntimeChoice::Auto => match cluster.node_runtimes().await {
            None => NodeRuntime::Containerd(None),
            Some(reported) => match agreed_runtime(reported.iter().map(String::as_str)) {
                Ok(runtime) => runtime,
                Err(why) => {
                    tracing::warn!(%why, "node runtime not known from the Nodes: containerd of unknown version assumed (--node-runtime sets it)");
                    NodeRuntime::Containerd(None)
                }
            },
        },
    };
    let matcher = runtime.platform_matcher();
    tracing::info!(
        %runtime,
        choice = %choice,
        platforms = if matcher.strict { "OnlyStrict" } else { "Only" },
        "node runtime"
    );
    runtime
}

/// The cluster kubectl would find, or none (`--no-cluster`, or none reachable: served
/// without it, and said in the log and in the status); its view when found.
pub async fn discover(config: &ClusterConfig) -> (Arc<dyn Cluster>, String, Option<KubeView>) {
    let reason = match *config {
        ClusterConfig::Disabled => {
            tracing::warn!("no cluster (--no-cluster): pull secrets, ServiceAccounts and node platforms are not checked");
            "--no-cluster given".to_string()
        }
        ClusterConfig::Discover {
            secret_ttl,
            negative_ttl,
        } => match KubeCluster::connect(secret_ttl, negative_ttl).await {
            Ok(c) => {
                let view = KubeView::new(c.client().clone());
                return (Arc::new(c), String::new(), Some(view));
            }
            Err(e) => {
                let reason = format!("{e:#}");
                tracing::warn!(
                    %reason,
                    "no Kubernetes cluster reachable: serving without it; pull secrets, ServiceAccounts and node platforms cannot be checked (private images count as unavailable, not denied)"
                );
                reason
            }
        },
    };
    let status = format!(" (no cluster: {reason})");
    (Arc::new(NoCluster { reason }), status, None)
}

/// The keyring of `--docker-config`, plus warnings to show.
fn node_keyring(docker_config: Option<&Path>) -> anyhow::Result<(Keyring, Vec<String>)> {
    let mut keyring = Keyring::new();
    let mut warnings = Vec::new();
    if let Some(path) = docker_config {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read docker config {}", path.display()))?;
        let (config, notes) = credentials::parse_docker_config_file(&bytes)
            .with_context(|| format!("docker config {}", path.display()))?;
        warnings.extend(notes);
        for skipped in keyring.add("--docker-config", &config) {
            warnings.push(format!(
                "docker config entry {skipped:?} is not a valid registry address; ignored"
            ));
        }
    }
    Ok((keyring, warnings))
}
