//! The engine as pullcheck builds it ([`pullcheck::config::assemble::engine`]): the
//! registries over the network, the result cache, the checker.

use std::sync::Arc;

use pullcheck::cluster::InMemoryCluster;
use pullcheck::config::assemble::{self, ClusterWiring, Wiring};
use pullcheck::config::EngineConfig;
use pullcheck::engine::Checker;
use pullcheck::metrics::Metrics;
use pullcheck::registry::cache::CacheConfig;
use pullcheck::registry::RegistryConfig;

/// The checker of an engine built from `registry` and `cache` (no cluster, no
/// `--docker-config`).
pub async fn checker(registry: RegistryConfig, cache: CacheConfig) -> Arc<Checker> {
    let config = EngineConfig {
        registry,
        cache,
        ..EngineConfig::default()
    };
    let wiring = Wiring::new(
        ClusterWiring::Given(Arc::new(InMemoryCluster::new())),
        Arc::new(Metrics::default()),
    );
    let assembled = assemble::engine(&config, wiring).await.expect("engine");
    Arc::clone(&assembled.engine.checker)
}
