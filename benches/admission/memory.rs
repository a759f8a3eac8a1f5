//! 4. Memory (child processes: a fresh heap per measurement)

use super::*;

pub(crate) struct Memory {
    /// (label, max_results, lookups, RSS before, RSS after, entries)
    pub(crate) rows: Vec<(String, u64, u64, u64, u64, u64)>,
}

pub(crate) fn memory(report: &mut Report) {
    eprintln!("== memory: 100,000 cached results");
    let mut rows = Vec::new();
    for (label, max) in [
        ("default (maxEntries 100000)", 100_000u64),
        ("maxEntries: 10000", 10_000),
    ] {
        let out = Command::new(std::env::current_exe().expect("own path"))
            .env(MEMORY_CHILD, max.to_string())
            .output()
            .expect("memory child");
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "memory child: {e}: {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let get = |k: &str| v[k].as_u64().unwrap_or(0);
        eprintln!("   {label}: {v}");
        rows.push((
            label.to_string(),
            max,
            get("lookups"),
            get("rss_before_kib"),
            get("rss_after_kib"),
            get("entries"),
        ));
    }
    report.memory = Some(Memory { rows });
}

/// A registry double: every image resolves, each to its own digest and platform list (as
/// distinct real images would).
pub(crate) struct Double;

#[async_trait::async_trait]
impl pullcheck::registry::Registry for Double {
    async fn resolve(
        &self,
        image: &pullcheck::kubelet::reference::ImageRef,
        _: Option<&pullcheck::kubelet::credentials::Credential>,
    ) -> Result<pullcheck::registry::Resolved, pullcheck::registry::RegistryError> {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(image.canonical().as_bytes());
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        Ok(pullcheck::registry::Resolved {
            digest: format!("sha256:{hex}"),
            platforms: Arc::new(pullcheck::registry::ImagePlatforms {
                is_index: true,
                platforms: vec![
                    pullcheck::kubelet::platform::Platform::new("linux", "amd64", None),
                    pullcheck::kubelet::platform::Platform::new("linux", "arm64", None),
                ],
                ..Default::default()
            }),
        })
    }
}

pub(crate) fn memory_child(max: &str) {
    let max: u64 = max.parse().expect("max entries");
    const LOOKUPS: u64 = 100_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        use pullcheck::config::assemble::{self, ClusterWiring, Wiring};
        let config = pullcheck::config::EngineConfig {
            cache: pullcheck::registry::cache::CacheConfig {
                max_results: max,
                max_stale: max,
                ..pullcheck::registry::cache::CacheConfig::default()
            },
            ..pullcheck::config::EngineConfig::default()
        };
        let cluster = Arc::new(pullcheck::cluster::InMemoryCluster::new());
        let wiring = Wiring::new(ClusterWiring::Given(cluster), Arc::new(pullcheck::metrics::Metrics::default()))
            .with_registry(Arc::new(Double));
        let assembled = assemble::engine(&config, wiring).await.expect("engine");
        // Only the result cache is measured.
        let cache = assembled.engine.checker.cache();
        // Three credential sets, as three tenants would have.
        let creds = [
            None,
            Some(pullcheck::kubelet::credentials::Credential::new("alice", "alice-pw")),
            Some(pullcheck::kubelet::credentials::Credential::new("bob", "bob-pw")),
        ];
        // Parse first: only the cache is measured.
        let refs: Vec<pullcheck::kubelet::reference::ImageRef> = (0..LOOKUPS)
            .map(|i| pullcheck::kubelet::reference::ImageRef::parse(&format!("registry.example.com/team-{}/service-{i}:v1.{}", i % 97, i % 13)).expect("reference"))
            .collect();
        let before = rss_kib(std::process::id());
        for (i, r) in refs.iter().enumerate() {
            let l = cache.lookup(r, creds[i % 3].as_ref()).await;
            assert!(l.result.is_ok());
        }
        // Let moka apply its pending evictions.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = cache.lookup(&refs[0], None).await;
        }
        let after = rss_kib(std::process::id());
        println!("{}", json!({"lookups": LOOKUPS, "max_results": max, "rss_before_kib": before, "rss_after_kib": after, "entries": cache.len()}));
    });
}
