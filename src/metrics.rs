//! Prometheus metrics, registered once in one [`Metrics`] value shared by every part.
//!
//! A leaf: it imports nothing of the crate, and every layer may use it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistryRequestLabels {
    /// Registry (or token service) host, or `other` beyond the tracked ones (bounded: see
    /// `registry::names`).
    pub registry: String,
    /// `ping`, `token`, `head_manifest`, `get_manifest`, `get_blob`, `list_tags`.
    pub request: &'static str,
    /// HTTP status (`200`, `404`, …, or its class `4xx` when unusual) or the class of a
    /// transport failure.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLimitLabels {
    /// Registry host, or `other` (bounded like [`RegistryRequestLabels::registry`]).
    pub registry: String,
    /// `anonymous`, `account-<first 8 hex digits of the credential's salted fingerprint>`,
    /// or `other` beyond the tracked accounts (bounded: see `registry::ratelimit`).
    pub identity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `result`, `platforms`, `sizes`, `verdict`.
    pub cache: &'static str,
    /// `hit`, `miss`, `coalesced`, `stale`.
    pub event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    /// A workload kind pullcheck checks, or `other` (bounded: kinds come from callers).
    pub kind: &'static str,
    pub operation: &'static str,
    pub mode: &'static str,
    /// `allowed`, `warned`, `denied`, `skipped`, `invalid`.
    pub decision: &'static str,
}

/// All metrics of the process.
pub struct Metrics {
    /// AdmissionReviews answered.
    pub admissions: Family<AdmissionLabels, Counter>,
    /// Time from request to answer, in seconds.
    pub admission_seconds: Histogram,
    /// Requests sent to registries and token services.
    pub registry_requests: Family<RegistryRequestLabels, Counter>,
    /// Cache lookups by outcome.
    pub cache_events: Family<CacheLabels, Counter>,
    /// The last rate-limit budget each registry reported, per identity.
    pub ratelimit_remaining: Family<RateLimitLabels, Gauge>,
    pub ratelimit_limit: Family<RateLimitLabels, Gauge>,
    pub ratelimit_window: Family<RateLimitLabels, Gauge>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("pullcheck");
        let admissions = Family::<AdmissionLabels, Counter>::default();
        registry.register(
            "admissions",
            "AdmissionReviews answered, by kind, operation, mode and decision",
            admissions.clone(),
        );
        let admission_seconds = Histogram::new([
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        registry.register(
            "admission_duration_seconds",
            "Time to answer an AdmissionReview",
            admission_seconds.clone(),
        );
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
        let ratelimit_remaining = Family::<RateLimitLabels, Gauge>::default();
        registry.register(
            "registry_ratelimit_remaining",
            "Requests (pulls) left in the rate-limit window, as the registry last reported it, by registry and identity",
            ratelimit_remaining.clone(),
        );
        let ratelimit_limit = Family::<RateLimitLabels, Gauge>::default();
        registry.register(
            "registry_ratelimit_limit",
            "Rate-limit quota of the window, as the registry last reported it",
            ratelimit_limit.clone(),
        );
        let ratelimit_window = Family::<RateLimitLabels, Gauge>::default();
        registry.register(
            "registry_ratelimit_window_seconds",
            "Length of the rate-limit window, as the registry last reported it",
            ratelimit_window.clone(),
        );
        Self {
            admissions,
            admission_seconds,
            registry_requests,
            cache_events,
            ratelimit_remaining,
            ratelimit_limit,
            ratelimit_window,
            registry,
        }
    }
}

impl Metrics {
    /// Counts one request; `registry` must already be a bounded label.
    pub fn registry_request(&self, registry: &str, request: &'static str, outcome: &'static str) {
        self.registry_requests
            .get_or_create(&RegistryRequestLabels {
                registry: registry.to_string(),
                request,
                outcome,
            })
            .inc();
    }

    /// Shows a rate-limit reading; `registry` and `identity` must be bounded labels.
    pub fn ratelimit(
        &self,
        registry: &str,
        identity: String,
        remaining: u64,
        limit: Option<u64>,
        window_seconds: Option<u64>,
    ) {
        let labels = RateLimitLabels {
            registry: registry.to_string(),
            identity,
        };
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.ratelimit_remaining
            .get_or_create(&labels)
            .set(gauge(remaining));
        if let Some(l) = limit {
            self.ratelimit_limit.get_or_create(&labels).set(gauge(l));
        }
        if let Some(w) = window_seconds {
            self.ratelimit_window.get_or_create(&labels).set(gauge(w));
        }
    }

    pub fn cache_event(&self, cache: &'static str, event: &'static str) {
        self.cache_events
            .get_or_create(&CacheLabels { cache, event })
            .inc();
    }

    /// The counter of one cache event, to be kept and counted on without a label lookup.
    pub fn cache_counter(&self, cache: &'static str, event: &'static str) -> Counter {
        self.cache_events
            .get_or_create(&CacheLabels { cache, event })
            .clone()
    }

    /// Current value of a cache counter (for tests and the CLI's summary).
    pub fn cache_count(&self, cache: &'static str, event: &'static str) -> u64 {
        self.cache_events
            .get_or_create(&CacheLabels { cache, event })
            .get()
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
