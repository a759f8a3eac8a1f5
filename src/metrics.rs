//! Prometheus metrics, registered once in one [`Metrics`] value shared by every part.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistryRequestLabels {
    /// Registry (or token service) host.
    pub registry: String,
    /// `ping`, `token`, `head_manifest`, `get_manifest`, `get_blob`, `list_tags`.
    pub request: &'static str,
    /// HTTP status (`200`, `404`, …) or the class of a transport failure.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `result`, `platforms`.
    pub cache: &'static str,
    /// `hit`, `miss`, `coalesced`, `stale`.
    pub event: &'static str,
}

/// All metrics of the process.
pub struct Metrics {
    /// Requests sent to registries and token services.
    pub registry_requests: Family<RegistryRequestLabels, Counter>,
    /// Cache lookups by outcome.
    pub cache_events: Family<CacheLabels, Counter>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("pullcheck");
        let registry_requests = Family::<RegistryRequestLabels, Counter>::default();
        registry.register(
            "registry_requests",
            "Requests sent to registries and token services, by registry, request and outcome",
            registry_requests.clone(),
        );
        let cache_events = Family::<CacheLabels, Counter>::default();
        registry.register(
            "cache_events",
            "Cache lookups by cache and event (hit, miss, coalesced wait, stale answer)",
            cache_events.clone(),
        );
        Self {
            registry_requests,
            cache_events,
            registry,
        }
    }
}

impl Metrics {
    pub fn registry_request(&self, registry: &str, request: &'static str, outcome: String) {
        self.registry_requests
            .get_or_create(&RegistryRequestLabels {
                registry: registry.to_string(),
                request,
                outcome,
            })
            .inc();
    }

    pub fn cache_event(&self, cache: &'static str, event: &'static str) {
        self.cache_events
            .get_or_create(&CacheLabels { cache, event })
            .inc();
    }

    /// Current value of a cache counter (for tests and the CLI's summary).
    pub fn cache_count(&self, cache: &'static str, event: &'static str) -> u64 {
        self.cache_events
            .get_or_create(&CacheLabels { cache, event })
            .get()
    }

    /// Sum of registry requests of one kind to one registry, whatever the outcome.
    pub fn registry_request_count(&self, registry: &str, request: &'static str) -> u64 {
        let mut total = 0;
        // Family has no iteration API; outcomes are few, so probe the ones we record.
        for outcome in OUTCOMES_PROBED {
            total += self
                .registry_requests
                .get_or_create(&RegistryRequestLabels {
                    registry: registry.to_string(),
                    request,
                    outcome: outcome.to_string(),
                })
                .get();
        }
        total
    }

    /// Registry and extra families, for the `/metrics` endpoint.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

const OUTCOMES_PROBED: [&str; 14] = [
    "200",
    "201",
    "202",
    "307",
    "401",
    "403",
    "404",
    "429",
    "500",
    "502",
    "503",
    "timeout",
    "unreachable",
    "blocked",
];
