//! Memory and metric series stay flat however many distinct registry hosts pullcheck is
//! made to contact (a hostile manifest, a forged review naming a new host per image).
//!
//! 100,000 distinct hosts `127.a.b.c:port`, all loopback: one in twenty is a registry with
//! token auth (a `/v2/` challenge naming a realm on that same host, a ~1 KiB token), one in
//! twenty an open registry, both served by the tests' registry double listening on all of
//! 127/8; the other hosts refuse the connection (a port nothing listens on). The
//! engine's `Distribution` resolves one image on each; after the first 10,000 hosts the
//! process's RSS, its open file descriptors and the number of metric series are taken, and
//! after the other 90,000 they must not have grown beyond what the bounded caches allow.
//! Its own binary, so no other test shares the process whose memory is measured.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use support::double::{dead_port, Double, Reply};

use pullcheck::kubelet::platform::Platform;
use pullcheck::kubelet::reference::ImageRef;
use pullcheck::metrics::Metrics;
use pullcheck::registry::auth::Token;
use pullcheck::registry::client::{Shared, ENTRY_OVERHEAD};
use pullcheck::registry::http::{HostPolicy, TransportConfig};
use pullcheck::registry::names::TrackedHosts;
use pullcheck::registry::{
    Distribution, ImagePlatforms, Registry, RegistryConfig, RegistryError, Unreachable,
};

const HOSTS: usize = 100_000;
const WARM_UP: usize = 10_000;

/// Token requests the double answered.
static TOKENS: AtomicUsize = AtomicUsize::new(0);

/// The registry double on two ports of 0.0.0.0 (so every 127/8 address reaches it; the test
/// only ever connects to loopback addresses): one with token auth (a `/v2/` challenge
/// naming a realm on the host asked, a ~1 KiB token), one open; and a port nothing
/// listens on.
struct Ports {
    token: Double,
    open: Double,
    refused: u16,
}

async fn start_doubles() -> Ports {
    let token = Double::start("0.0.0.0", None, |r| match r.path.as_str() {
        "/v2/" => Reply::Challenge(format!(
            "Bearer realm=\"http://{}/token\",service=\"double\"",
            r.host
        )),
        p if p.starts_with("/token") => {
            TOKENS.fetch_add(1, Ordering::Relaxed);
            Reply::Token("t".repeat(1024))
        }
        p if p.starts_with("/v2/app/manifests/") && r.authorization.is_some() => Reply::Registry,
        _ => Reply::Status(401),
    })
    .await;
    let open = Double::start("0.0.0.0", None, |r| {
        if r.path == "/v2/" || r.path.starts_with("/v2/app/manifests/") {
            Reply::Registry
        } else {
            Reply::Status(401)
        }
    })
    .await;
    Ports {
        token,
        open,
        refused: dead_port(),
    }
}

/// The i-th distinct loopback address (127.1.0.1 …), never a .0 or .255.
fn host(i: usize, port: u16) -> String {
    let (a, rest) = (1 + i / 62_500, i % 62_500);
    let (b, c) = (rest / 250, 1 + rest % 250);
    SocketAddr::from(([127, a as u8, b as u8, c as u8], port)).to_string()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

fn series(metrics: &Metrics) -> usize {
    metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("pullcheck_registry_requests_total{"))
        .count()
}

/// Host i: one in twenty with token auth, one in twenty open, the rest refusing.
fn image(i: usize, ports: &Ports) -> (ImageRef, bool) {
    let (port, answers) = match i % 20 {
        0 => (ports.token.port(), true),
        1 => (ports.open.port(), true),
        _ => (ports.refused, false),
    };
    let image = ImageRef::parse(&format!("{}/app:v1", host(i, port))).expect("reference");
    (image, answers)
}

async fn resolve_all(
    registry: &Distribution,
    range: std::ops::Range<usize>,
    ports: &Ports,
    digest: &str,
) {
    let failures = futures::stream::iter(range)
        .map(|i| async move {
            let (image, answers) = image(i, ports);
            match (registry.resolve(&image, None).await, answers) {
                (Ok(r), true) if r.digest == digest => None,
                (
                    Err(RegistryError::Unavailable {
                        cause: Unreachable::ConnectionRefused,
                        ..
                    }),
                    false,
                ) => None,
                (Ok(r), _) => Some(format!("{image}: digest {}", r.digest)),
                (Err(e), _) => Some(format!("{image}: {e}")),
            }
        })
        .buffer_unordered(64)
        .filter_map(|f| async move { f })
        .collect::<Vec<_>>()
        .await;
    assert!(
        failures.is_empty(),
        "{} failed, first: {:?}",
        failures.len(),
        failures.first()
    );
}

/// What one cached token really costs, against what the budget counts for it.
async fn measure_token_cost(metrics: &Arc<Metrics>) -> Shared {
    const N: usize = 20_000;
    let transport = TransportConfig {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
        user_agent: String::new(),
        policy: Arc::new(HostPolicy::default()),
    };
    let hosts = Arc::new(TrackedHosts::new([], 0));
    let shared = Shared::new(transport, hosts, Arc::clone(metrics), 1, 1 << 30, 1 << 20);
    let value = "t".repeat(1024);
    let before = rss_kib();
    let mut counted = 0;
    for i in 0..N {
        let key = format!(
            "http://{}/\n0123456789abcdef0123456789abcdef\nrepository:team/app:pull",
            host(i, 5000)
        );
        counted += key.len() + value.len() + ENTRY_OVERHEAD;
        let token = Token {
            value: value.clone(),
            lifetime: Duration::from_secs(600),
        };
        shared.tokens.insert(key, token).await;
    }
    shared.tokens.run_pending_tasks().await;
    let used = (rss_kib() - before) * 1024;
    eprintln!(
        "{N} tokens of 1 KiB: {} bytes each in RSS, {} counted by the budget",
        used / N as u64,
        counted / N
    );
    // The budget must not undercount what a token costs by more than allocator slack.
    assert!(
        used <= counted as u64 * 5 / 4,
        "tokens cost {used} bytes, the budget counted {counted}"
    );
    shared
}

/// What a digest's platforms cost in the platform cache, per platform entry (the unit of
/// `cache.maxPlatformEntries`).
async fn measure_platform_cost() -> Distribution {
    const DIGESTS: usize = 20_000;
    const PER_DIGEST: usize = 4;
    let registry = Distribution::new(RegistryConfig::default(), Arc::new(Metrics::default()))
        .expect("distribution");
    let platform = |arch: &str| Platform::parse(&format!("linux/{arch}")).expect("platform");
    let before = rss_kib();
    let known = (0..DIGESTS).map(|i| {
        let platforms = ["amd64", "arm64", "arm/v7", "s390x"].map(platform).to_vec();
        assert_eq!(platforms.len(), PER_DIGEST);
        (
            format!("sha256:{i:064x}"),
            Arc::new(ImagePlatforms {
                is_index: true,
                platforms,
                ..ImagePlatforms::default()
            }),
        )
    });
    registry.preload_platforms(known).await;
    let used = (rss_kib() - before) * 1024;
    eprintln!(
        "{DIGESTS} digests × {PER_DIGEST} platforms: {} bytes per platform entry",
        used / (DIGESTS * PER_DIGEST) as u64
    );
    // Kept alive by the caller, so the next measurement does not reuse its memory.
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_registry_hosts_keep_memory_fds_and_series_flat() {
    let ports = start_doubles().await;
    let digest = pullcheck::registry::client::sha256_digest(&support::double::index_body());
    let platforms = measure_platform_cost().await;
    let tokens = measure_token_cost(&Arc::new(Metrics::default())).await;
    drop((platforms, tokens));
    let metrics = Arc::new(Metrics::default());
    let config = RegistryConfig {
        plain_http_globs: vec!["127.*".into()],
        // Small budgets, so both caches are full after the warm-up and any growth after
        // it is growth the budgets do not account for.
        token_cache_bytes: 2 << 20,
        challenge_cache_bytes: 1 << 20,
        ..RegistryConfig::default()
    };
    let tracked = config.tracked_registries;
    let registry = Distribution::new(config, Arc::clone(&metrics)).expect("distribution");

    let started = Instant::now();
    resolve_all(&registry, 0..WARM_UP, &ports, &digest).await;
    let (rss1, fds1, series1) = (rss_kib(), open_fds(), series(&metrics));
    resolve_all(&registry, WARM_UP..HOSTS, &ports, &digest).await;
    let (rss2, fds2, series2) = (rss_kib(), open_fds(), series(&metrics));
    let tokens = TOKENS.load(Ordering::Relaxed);
    eprintln!(
        "{HOSTS} hosts in {:.1}s: RSS {rss1} → {rss2} KiB, fds {fds1} → {fds2}, \
         registry_requests series {series1} → {series2}, token requests {tokens}",
        started.elapsed().as_secs_f64()
    );

    // Every host with token auth was really asked (tokens are per registry).
    assert_eq!(tokens, HOSTS / 20);
    // Series: one `registry` label per tracked host (and its realm, the same host) plus
    // `other`, each with the requests made (ping, token, head_manifest, get_manifest)
    // and their outcomes; nothing new after the warm-up.
    assert_eq!(series2, series1, "series grew after the warm-up");
    assert!(
        series2 <= (tracked + 1) * 4,
        "{series2} series for {tracked} tracked hosts"
    );
    // Connections: idle ones are kept only for tracked hosts.
    assert!(fds2 <= fds1 + 64, "open fds grew from {fds1} to {fds2}");
    // Memory: 90,000 more hosts may not add more than allocator noise.
    assert!(
        rss2 <= rss1 + 12 * 1024,
        "RSS grew from {rss1} KiB to {rss2} KiB over {} more hosts",
        HOSTS - WARM_UP
    );
}
