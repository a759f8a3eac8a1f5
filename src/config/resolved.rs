//! The resolved configuration: flags over the YAML file over defaults, checked once at
//! start into plain settings — what `serve` needs ([`ServeConfig`]), what `check` needs
//! ([`CheckConfig`]), and the part both give the engine ([`EngineConfig`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};

use super::args::{AdviceArgs, CheckArgs, RegistryArgs, ScanLimitArgs, ServeArgs, ServerArgs};
use super::file::{AdviceFile, FileConfig, ServerFile};
use crate::engine::scan::metrics::DEFAULT_MAX_SERIES;
use crate::engine::scan::Limits as ScanLimits;
use crate::engine::{Action, Actions, AdviceSettings, FindingClass, Mode, OwnedPods, Settings};
use crate::kubelet::platform::Platform;
use crate::kubelet::runtime::RuntimeChoice;
use crate::registry::cache::CacheConfig;
use crate::registry::hosts::validate_globs;
use crate::registry::http::HostPolicy;
use crate::registry::RegistryConfig;

/// What the engine is built from ([`super::assemble::engine`]): the part of the resolved
/// configuration `serve` and `check` share.
#[derive(Debug, Default)]
pub struct EngineConfig {
    pub settings: Settings,
    pub registry: RegistryConfig,
    pub cache: CacheConfig,
    /// `--docker-config`: the credentials the nodes hold besides pull secrets.
    pub docker_config: Option<PathBuf>,
    /// `check --cache-dir`: good results kept on disk between runs, reused this long.
    pub disk_cache: Option<(PathBuf, Duration)>,
    /// `--node-runtime`: which runtime the nodes run (resolved at assembly, see
    /// [`super::assemble::engine`]).
    pub node_runtime: RuntimeChoice,
}

/// Where `serve` reads Secrets, ServiceAccounts and Nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterConfig {
    /// The cluster kubectl would find (in-cluster, `KUBECONFIG`, `~/.kube/config`), its
    /// reads reused for `secret_ttl` (found) and `negative_ttl` (absent); with none
    /// reachable, serve without one and say so.
    Discover {
        secret_ttl: Duration,
        negative_ttl: Duration,
    },
    /// `--no-cluster`.
    Disabled,
}

/// Everything `serve` needs, resolved.
#[derive(Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub engine: EngineConfig,
    pub cluster: ClusterConfig,
    pub deadline: Deadline,
    pub max_body_bytes: usize,
    /// Client CA (`--client-ca`): callers must present a certificate it signed.
    pub client_ca: Option<PathBuf>,
    /// Plain-HTTP listener for metrics and probes.
    pub metrics_listen: Option<SocketAddr>,
    pub limits: Limits,
    /// The background scan.
    pub scan: ScanSettings,
}

/// Largest AdmissionReview accepted by default: the API server sends object and oldObject
/// of up to ~1.5 MiB each (etcd's limit) plus envelope.
pub const DEFAULT_MAX_BODY: usize = 7 << 20;

impl ServeConfig {
    /// Flags over the YAML file (`--config`) over defaults, each checked.
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Self> {
        let file = FileConfig::load_given(args.config.as_deref())?;
        let flags = Flags {
            config: args.config.as_deref(),
            registry: &args.registry,
            default_mode: args.default_mode,
            owned_pods: args.controller_owned_pods,
            concurrency: None,
            advice: &args.advice,
        };
        let engine = resolve_engine(&file, &flags, SERVE_DEFAULTS)?;
        let scan =
            ScanSettings::resolve(&file, &args.scan, args.scan_interval, args.scan_max_series)?;
        let limits = resolve_limits(&args.server, &file.server)?;
        let d = Deadline::default();
        Ok(Self {
            listen: args.listen,
            tls: args.tls_cert.clone().zip(args.tls_key.clone()),
            engine,
            scan,
            cluster: if args.no_cluster {
                ClusterConfig::Disabled
            } else {
                ClusterConfig::Discover {
                    secret_ttl: file.cluster.secret_ttl.unwrap_or(Duration::from_secs(10)),
                    negative_ttl: file.cluster.negative_ttl.unwrap_or(Duration::from_secs(1)),
                }
            },
            deadline: Deadline {
                margin: file.deadline.margin.unwrap_or(d.margin),
                cap: file.deadline.cap.unwrap_or(d.cap),
            },
            max_body_bytes: file.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY),
            client_ca: args
                .server
                .client_ca
                .clone()
                .or(file.server.client_ca.clone()),
            metrics_listen: args.server.metrics_listen.or(file.server.metrics_listen),
            limits,
        })
    }
}

/// Everything `check` needs, resolved.
#[derive(Debug)]
pub struct CheckConfig {
    pub engine: EngineConfig,
    /// The nodes' platforms (`--platform`), normalized.
    pub platforms: Vec<Platform>,
    /// Objects evaluated at once.
    pub objects_at_once: usize,
    /// Keys of the config file that only `serve` uses, present in the file (`check` says
    /// that it does not use them).
    pub serve_only: Vec<&'static str>,
}

/// Objects `check` evaluates at once, and images of one object, without `--concurrency`.
pub const CHECK_CONCURRENCY: usize = 8;

impl CheckConfig {
    /// Flags over the YAML file (`--config`, the webhook's) over `check`'s defaults, which
    /// differ from `serve`'s in two places: enforce mode and every Pod checked (CI asks
    /// what enforce would refuse).
    pub fn resolve(args: &CheckArgs) -> anyhow::Result<Self> {
        let mut platforms = Vec::new();
        for p in &args.platforms {
            platforms.push(Platform::parse(p)?.normalize());
        }
        let file = FileConfig::load_given(args.config.as_deref())?;
        let flags = Flags {
            config: args.config.as_deref(),
            registry: &args.registry,
            default_mode: args.default_mode,
            owned_pods: args.controller_owned_pods,
            concurrency: args.concurrency,
            advice: &args.advice,
        };
        let mut engine = resolve_engine(&file, &flags, CHECK_DEFAULTS)?;
        if args.strict {
            // --strict: transient findings fail like definite ones (a flag over `actions:`).
            for class in FindingClass::ALL.into_iter().filter(|c| !c.is_definite()) {
                engine.settings.actions.set(class, Action::Deny);
            }
        }
        engine.disk_cache = args.cache_dir.clone().map(|dir| (dir, args.cache_ttl));
        Ok(Self {
            engine,
            platforms,
            objects_at_once: args.concurrency.unwrap_or(CHECK_CONCURRENCY).max(1),
            serve_only: file.serve_only_keys(),
        })
    }
}

/// The flags `serve` and `check` share, and where the file came from.
pub(super) struct Flags<'a> {
    pub(super) config: Option<&'a Path>,
    pub(super) registry: &'a RegistryArgs,
    pub(super) default_mode: Option<Mode>,
    pub(super) owned_pods: Option<OwnedPods>,
    pub(super) concurrency: Option<usize>,
    pub(super) advice: &'a AdviceArgs,
}

/// What a setting is when neither a flag nor the file says: (mode, controller-owned Pods,
/// images of one object at once).
pub(super) type Defaults = (Mode, OwnedPods, usize);
pub(super) const SERVE_DEFAULTS: Defaults = (Mode::Warn, OwnedPods::Audit, 16);
const CHECK_DEFAULTS: Defaults = (Mode::Enforce, OwnedPods::Check, CHECK_CONCURRENCY);

/// The engine's configuration, flags over the file over `defaults`: the one resolution
/// `serve` and `check` share, so both decide alike from the same file.
pub(super) fn resolve_engine(
    file: &FileConfig,
    flags: &Flags<'_>,
    defaults: Defaults,
) -> anyhow::Result<EngineConfig> {
    let mut actions = Actions::default();
    for (class, action) in &file.actions {
        actions.set(*class, *action);
    }
    let advice = resolve_advice(flags.advice, &file.advice, &mut actions);
    let settings = Settings {
        default_mode: flags
            .default_mode
            .or(file.default_mode)
            .unwrap_or(defaults.0),
        actions,
        owned_pods: flags
            .owned_pods
            .or(file.controller_owned_pods)
            .unwrap_or(defaults.1),
        exempt_namespaces: file.exempt_namespaces.clone(),
        exempt_images: file.exempt_images.clone(),
        concurrency: flags
            .concurrency
            .or(file.concurrency)
            .unwrap_or(defaults.2)
            .max(1),
        advice,
    };
    let mut registry = flags.registry.registry_config()?;
    for (host, r) in &file.registries {
        let h = registry.host_mut(host);
        h.plain_http |= r.plain_http;
        h.node_credentials |= r.node_credentials;
        if let Some(ca) = &r.ca_file {
            h.ca_pems.push(
                std::fs::read(ca)
                    .with_context(|| format!("cannot read CA {} of {host}", ca.display()))?,
            );
        }
    }
    if let (None, Some(path)) = (
        &flags.registry.image_credential_provider_config,
        &file.image_credential_provider_config,
    ) {
        registry.credential_providers = Arc::new(super::node::credential_providers(path)?);
    }
    let in_file = |key: &str| {
        let path = flags.config.unwrap_or(Path::new("-"));
        format!("{key} in config {}", path.display())
    };
    registry
        .policy
        .allow
        .extend(validate_globs(&file.allow_hosts, &in_file("allowHosts"))?);
    registry
        .policy
        .deny
        .extend(validate_globs(&file.deny_hosts, &in_file("denyHosts"))?);
    registry.policy.allow_link_local |= file.allow_link_local;
    if let (None, Some(t)) = (flags.registry.registry_timeout, file.registry_timeout) {
        registry.request_timeout = t;
    }
    if let Some(n) = file.cache.max_platform_entries {
        registry.platform_cache_entries = n;
    }
    if let Some(n) = file.cache.max_token_bytes {
        registry.token_cache_bytes = n;
    }
    if file.cache.max_registry_clients.is_some() {
        tracing::warn!("cache.maxRegistryClients is no longer used and is ignored: registry clients keep nothing; tokens are bounded by cache.maxTokenBytes");
    }
    if let Some(n) = file.tracked_registries {
        registry.tracked_registries = n;
    }
    let d = CacheConfig::default();
    let cache = CacheConfig {
        positive_ttl: file.cache.positive_ttl.unwrap_or(d.positive_ttl),
        negative_ttl: file.cache.negative_ttl.unwrap_or(d.negative_ttl),
        max_results: file.cache.max_entries.unwrap_or(d.max_results),
        stale_ttl: file.cache.stale_ttl.unwrap_or(d.stale_ttl),
        max_stale: file.cache.max_stale_entries.unwrap_or(d.max_stale),
    };
    Ok(EngineConfig {
        settings,
        registry,
        cache,
        docker_config: flags.registry.docker_config.clone(),
        disk_cache: None,
        node_runtime: flags
            .registry
            .node_runtime
            .or(file.node_runtime)
            .unwrap_or_default(),
    })
}

/// Deadline of one review.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    pub margin: Duration,
    pub cap: Duration,
}

impl Default for Deadline {
    fn default() -> Self {
        Self {
            margin: Duration::from_millis(1500),
            cap: Duration::from_secs(8),
        }
    }
}

impl Deadline {
    /// Time allowed for a review the API server sent with `?timeout=<timeout>`.
    pub fn budget(&self, timeout: Option<Duration>) -> Duration {
        let by_server = timeout.map_or(self.cap, |t| {
            // Keep a proportional margin for short timeouts (1s → 850ms).
            let margin = self.margin.min(t.mul_f64(0.15));
            t.saturating_sub(margin)
        });
        by_server.min(self.cap).max(Duration::from_millis(50))
    }
}

/// Connection limits of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub max_handshakes: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub keepalive_interval: Duration,
}

impl Default for Limits {
    /// Sized for the shipped 256 MiB memory limit (README, "Connections").
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_handshakes: 128,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            keepalive_interval: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// The limits of the plain-HTTP metrics and probes listener: a few scrapers and kubelet
    /// probes, never many.
    pub fn small(&self) -> Self {
        Self {
            max_connections: self.max_connections.min(64),
            max_handshakes: self.max_handshakes.min(16),
            ..*self
        }
    }
}

impl RegistryArgs {
    /// The registry configuration these flags describe (reads the CA files).
    pub fn registry_config(&self) -> anyhow::Result<RegistryConfig> {
        let mut config = RegistryConfig {
            policy: HostPolicy {
                allow: validate_globs(&self.allow_host, "--allow-host (PULLCHECK_ALLOW_HOSTS)")?,
                deny: validate_globs(&self.deny_host, "--deny-host (PULLCHECK_DENY_HOSTS)")?,
                allow_link_local: self.allow_link_local,
            },
            ..RegistryConfig::default()
        };
        if let Some(t) = self.registry_timeout {
            config.request_timeout = t;
        }
        for host in &self.plain_http {
            if host.contains('*') {
                config.plain_http_globs.push(host.clone());
            } else {
                config.host_mut(host).plain_http = true;
            }
        }
        for host in &self.node_credentials {
            config.host_mut(host).node_credentials = true;
        }
        if let Some(path) = &self.image_credential_provider_config {
            config.credential_providers = Arc::new(super::node::credential_providers(path)?);
        }
        for spec in &self.registry_ca {
            let (host, path) = match spec.split_once('=') {
                Some((h, p)) => (Some(h), p),
                None => (None, spec.as_str()),
            };
            let pem =
                std::fs::read(path).with_context(|| format!("cannot read registry CA {path:?}"))?;
            match host {
                Some(h) => config.host_mut(h).ca_pems.push(pem),
                None => config.global_ca_pems.push(pem),
            }
        }
        Ok(config)
    }
}

/// Advice: flags over `advice:` over defaults; the classes' actions go into `actions`.
fn resolve_advice(args: &AdviceArgs, file: &AdviceFile, actions: &mut Actions) -> AdviceSettings {
    for (class, action) in file
        .actions
        .iter()
        .chain(args.advice.iter().map(|(c, a)| (c, a)))
    {
        actions.set_advice(*class, *action);
    }
    let d = AdviceSettings::default();
    AdviceSettings {
        low_budget: args
            .low_pull_budget
            .or(file.low_pull_budget)
            .unwrap_or(d.low_budget),
        giant_image: args
            .giant_image
            .or(file.giant_image)
            .unwrap_or(d.giant_image),
        node_bandwidth: args
            .node_bandwidth
            .or(file.node_bandwidth)
            .unwrap_or(d.node_bandwidth),
    }
}

/// Connection limits: flags over `server:` over defaults, each checked.
fn resolve_limits(args: &ServerArgs, file: &ServerFile) -> anyhow::Result<Limits> {
    let d = Limits::default();
    let limits = Limits {
        max_connections: args
            .max_connections
            .or(file.max_connections)
            .unwrap_or(d.max_connections),
        max_handshakes: args
            .max_handshakes
            .or(file.max_handshakes)
            .unwrap_or(d.max_handshakes),
        handshake_timeout: args
            .handshake_timeout
            .or(file.handshake_timeout)
            .unwrap_or(d.handshake_timeout),
        idle_timeout: args
            .idle_timeout
            .or(file.idle_timeout)
            .unwrap_or(d.idle_timeout),
        keepalive_interval: args
            .keepalive_interval
            .or(file.keepalive_interval)
            .unwrap_or(d.keepalive_interval),
    };
    if limits.max_connections == 0 {
        bail!("maxConnections (--max-connections) must be at least 1");
    }
    if limits.max_handshakes == 0 || limits.max_handshakes > limits.max_connections {
        bail!(
            "maxHandshakes (--max-handshakes) must be between 1 and maxConnections ({}), not {}",
            limits.max_connections,
            limits.max_handshakes
        );
    }
    for (name, value) in [
        (
            "handshakeTimeout (--handshake-timeout)",
            limits.handshake_timeout,
        ),
        ("idleTimeout (--idle-timeout)", limits.idle_timeout),
        (
            "keepaliveInterval (--keepalive-interval)",
            limits.keepalive_interval,
        ),
    ] {
        if value < Duration::from_millis(10) {
            bail!("{name} must be at least 10ms, not {value:?}");
        }
    }
    Ok(limits)
}

/// Default time between background scans.
pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_secs(600);

/// How the cluster is scanned.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanSettings {
    /// Between background scans of `serve`; zero: none.
    pub interval: Duration,
    /// Per registry host.
    pub registry: ScanLimits,
    /// Most series of `pullcheck_workload_images`.
    pub max_series: usize,
}

impl ScanSettings {
    /// Flags over `scan:` over defaults, each checked.
    pub fn resolve(
        file: &FileConfig,
        limits: &ScanLimitArgs,
        interval: Option<Duration>,
        max_series: Option<usize>,
    ) -> anyhow::Result<Self> {
        let d = ScanLimits::default();
        let concurrency = limits
            .scan_registry_concurrency
            .or(file.scan.registry_concurrency)
            .unwrap_or(d.concurrency);
        let rate = limits
            .scan_registry_rate
            .or(file.scan.registry_rate)
            .unwrap_or(d.rate);
        if concurrency == 0 {
            bail!("--scan-registry-concurrency (scan.registryConcurrency) must be at least 1");
        }
        if !(rate.is_finite() && rate > 0.0) {
            bail!("--scan-registry-rate (scan.registryRate) must be a positive number of resolutions per second, not {rate}");
        }
        Ok(Self {
            interval: interval
                .or(file.scan.interval)
                .unwrap_or(DEFAULT_SCAN_INTERVAL),
            registry: ScanLimits { concurrency, rate },
            max_series: max_series
                .or(file.scan.max_series)
                .unwrap_or(DEFAULT_MAX_SERIES),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::args::{Cli, Command};
    use rstest::rstest;

    #[rstest]
    #[case(Some(10_000), 8_000)]
    #[case(Some(5_000), 4_250)]
    #[case(Some(1_000), 850)]
    #[case(None, 8_000)]
    #[case(Some(0), 50)]
    fn budgets(#[case] timeout_ms: Option<u64>, #[case] want_ms: u128) {
        let got = Deadline::default().budget(timeout_ms.map(Duration::from_millis));
        assert_eq!(got.as_millis(), want_ms);
    }

    fn resolve(config: &str, flags: &[&str]) -> Result<ServeConfig, String> {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).unwrap();
        let mut argv = vec!["pullcheck", "serve", "--config", path.to_str().unwrap()];
        argv.extend_from_slice(flags);
        let Command::Serve(args) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!("serve parses as serve")
        };
        ServeConfig::resolve(&args)
            .map_err(|e| format!("{e:#}").replace(path.to_str().unwrap(), "FILE"))
    }

    fn resolve_check(config: Option<&str>, flags: &[&str]) -> CheckConfig {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        let mut argv = vec!["pullcheck", "check", "--image", "x"];
        if let Some(config) = config {
            std::fs::write(&path, config).unwrap();
            argv.extend(["--config", path.to_str().unwrap()]);
        }
        argv.extend_from_slice(flags);
        let Command::Check(args) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!("check parses as check")
        };
        CheckConfig::resolve(&args).unwrap()
    }

    const WEBHOOK_FILE: &str = "defaultMode: warn\ncontrollerOwnedPods: skip\nexemptNamespaces: [\"sandbox-*\"]\nexemptImages: [\"registry.k8s.io/*\"]\nactions: {unavailable: deny, tag_not_found: audit}\nconcurrency: 3\nregistries:\n  r.example:5000: {plainHttp: true, nodeCredentials: true}\ndenyHosts: [\"bad.example\"]\nallowLinkLocal: true\nregistryTimeout: 3s\ntrackedRegistries: 7\ncache: {positiveTtl: 2m, maxPlatformEntries: 10}\ndeadline: {cap: 5s}\nmaxBodyBytes: 1000\nserver: {maxConnections: 10, maxHandshakes: 5}\n";

    /// `check --config` takes the webhook's file: what decides a finding comes from it, as
    /// `serve` reads it; what only a server has is listed as not used.
    #[test]
    fn check_reads_the_webhook_file_as_serve_does() {
        let check = resolve_check(Some(WEBHOOK_FILE), &[]);
        let serve = resolve(WEBHOOK_FILE, &[]).unwrap();
        let (c, s) = (&check.engine, &serve.engine);
        assert_eq!(c.settings.default_mode, Mode::Warn);
        assert_eq!(c.settings.owned_pods, OwnedPods::Skip);
        assert_eq!(c.settings.actions, s.settings.actions);
        assert_eq!(
            c.settings.actions.of(FindingClass::Unavailable),
            Action::Deny
        );
        assert_eq!(c.settings.exempt_namespaces, s.settings.exempt_namespaces);
        assert_eq!(c.settings.exempt_images, s.settings.exempt_images);
        assert_eq!(c.settings.concurrency, 3);
        assert_eq!(format!("{:?}", c.registry), format!("{:?}", s.registry));
        assert!(c.registry.host("r.example:5000").node_credentials);
        assert_eq!(c.registry.policy.deny, ["bad.example"]);
        assert!(c.registry.policy.allow_link_local);
        assert_eq!(c.registry.request_timeout, Duration::from_secs(3));
        assert_eq!(c.registry.tracked_registries, 7);
        assert_eq!(c.registry.platform_cache_entries, 10);
        assert_eq!(c.cache.positive_ttl, Duration::from_secs(120));
        assert_eq!(
            check.serve_only,
            ["server", "deadline", "maxBodyBytes"],
            "said to be unused"
        );
        assert_eq!(check.objects_at_once, CHECK_CONCURRENCY);
    }

    /// Flags override the file in `check` as in `serve`; without either, `check` decides in
    /// enforce mode and checks every Pod.
    #[test]
    fn check_flags_override_the_file_and_check_has_its_own_defaults() {
        let flags = [
            "--default-mode=audit",
            "--controller-owned-pods=check",
            "--registry-timeout=5s",
            "--concurrency=2",
            "--strict",
        ];
        let check = resolve_check(Some(WEBHOOK_FILE), &flags);
        let settings = &check.engine.settings;
        assert_eq!(settings.default_mode, Mode::Audit);
        assert_eq!(settings.owned_pods, OwnedPods::Check);
        assert_eq!(settings.concurrency, 2);
        assert_eq!(check.objects_at_once, 2);
        assert_eq!(
            check.engine.registry.request_timeout,
            Duration::from_secs(5)
        );
        // --strict: every transient class fails, over the file's actions; the rest as filed.
        for class in FindingClass::ALL {
            let want = match class {
                FindingClass::TagNotFound => Action::Audit,
                _ => Action::Deny,
            };
            assert_eq!(settings.actions.of(class), want, "{class}");
        }

        let bare = resolve_check(None, &[]);
        assert_eq!(bare.engine.settings.default_mode, Mode::Enforce);
        assert_eq!(bare.engine.settings.owned_pods, OwnedPods::Check);
        assert_eq!(bare.engine.settings.concurrency, CHECK_CONCURRENCY);
        assert_eq!(
            bare.engine.settings.actions.of(FindingClass::Timeout),
            Action::Warn
        );
        assert_eq!(bare.engine.registry.request_timeout, Duration::from_secs(8));
        assert!(bare.serve_only.is_empty());
    }

    /// A regression: `--registry-timeout` had a default value, so the file's
    /// `registryTimeout` overrode an explicit flag.
    #[test]
    fn the_registry_timeout_flag_overrides_the_file_in_serve() {
        let file = "registryTimeout: 3s\n";
        let c = resolve(file, &["--registry-timeout", "5s"]).unwrap();
        assert_eq!(c.engine.registry.request_timeout, Duration::from_secs(5));
        let c = resolve(file, &[]).unwrap();
        assert_eq!(c.engine.registry.request_timeout, Duration::from_secs(3));
        let c = resolve("", &[]).unwrap();
        assert_eq!(c.engine.registry.request_timeout, Duration::from_secs(8));
    }

    #[rstest]
    #[case("denyHosts: [\"deny.example.\"]\n", &[], "denyHosts in config FILE: host glob \"deny.example.\" ends with a dot")]
    #[case("allowHosts: [\"r.example:5000\"]\n", &[], "allowHosts in config FILE: host glob \"r.example:5000\" has a port")]
    #[case("", &["--deny-host", "https://deny.example"], "--deny-host (PULLCHECK_DENY_HOSTS): host glob \"https://deny.example\" has a scheme")]
    #[case("", &["--allow-host", "ok.example,"], "--allow-host (PULLCHECK_ALLOW_HOSTS): host glob \"\" is empty")]
    fn host_globs_are_checked_at_start(
        #[case] config: &str,
        #[case] flags: &[&str],
        #[case] want: &str,
    ) {
        let err = resolve(config, flags).unwrap_err();
        assert!(err.starts_with(want), "{err}");
    }

    #[test]
    fn credential_providers_from_the_file_or_the_flag_which_wins() {
        let dir = tempfile::tempdir().unwrap();
        let provider = |name: &str| {
            let path = dir.path().join(format!("{name}.yaml"));
            std::fs::write(
                &path,
                format!("apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n- name: {name}\n  matchImages: [\"*.{name}.example\"]\n  defaultCacheDuration: 1h\n  apiVersion: credentialprovider.kubelet.k8s.io/v1\n"),
            )
            .unwrap();
            path.to_str().unwrap().to_owned()
        };
        let (in_file, in_flag) = (provider("file"), provider("flag"));
        let names = |c: &ServeConfig| -> Vec<String> {
            let p = &c.engine.registry.credential_providers.providers;
            p.iter().map(|p| p.name.clone()).collect()
        };
        let yaml = format!("imageCredentialProviderConfig: {in_file}\n");
        assert_eq!(names(&resolve(&yaml, &[]).unwrap()), ["file"]);
        let flags = ["--image-credential-provider-config", in_flag.as_str()];
        assert_eq!(names(&resolve(&yaml, &flags).unwrap()), ["flag"]);
        let missing = resolve("imageCredentialProviderConfig: /nonexistent.yaml\n", &[]);
        assert!(missing
            .unwrap_err()
            .starts_with("cannot read credential provider config /nonexistent.yaml"));
    }

    #[test]
    fn valid_host_globs_are_kept_as_compared() {
        let c = resolve(
            "denyHosts: [\"Deny.Example\", \"[FD00::1]\"]\n",
            &["--deny-host", "*.bad.example"],
        )
        .unwrap();
        assert_eq!(
            c.engine.registry.policy.deny,
            ["*.bad.example", "deny.example", "fd00::1"]
        );
    }

    #[test]
    fn connection_limits_come_from_flags_over_the_file_over_defaults() {
        let file: FileConfig = FileConfig::parse(
            "server:\n  maxConnections: 300\n  maxHandshakes: 20\n  idleTimeout: 2m\n  clientCa: /etc/ca.crt\n  metricsListen: 0.0.0.0:9090\n",
        )
        .unwrap();
        let args = ServerArgs {
            max_connections: Some(100),
            handshake_timeout: Some(Duration::from_secs(2)),
            ..ServerArgs::default()
        };
        let limits = resolve_limits(&args, &file.server).unwrap();
        let defaults = Limits::default();
        assert_eq!(limits.max_connections, 100);
        assert_eq!(limits.max_handshakes, 20);
        assert_eq!(limits.handshake_timeout, Duration::from_secs(2));
        assert_eq!(limits.idle_timeout, Duration::from_secs(120));
        assert_eq!(limits.keepalive_interval, defaults.keepalive_interval);
        assert_eq!(
            resolve_limits(&ServerArgs::default(), &ServerFile::default()).unwrap(),
            defaults
        );
        assert_eq!(
            file.server.client_ca.as_deref(),
            Some(Path::new("/etc/ca.crt"))
        );
        assert_eq!(
            file.server.metrics_listen,
            Some("0.0.0.0:9090".parse().unwrap())
        );
    }

    #[test]
    fn advice_comes_from_flags_over_the_file_over_defaults() {
        use crate::engine::{AdviceAction, AdviceClass};
        use crate::registry::ratelimit::LowBudget;
        let c = resolve(
            "advice:\n  actions: {latest_tag: deny, giant_image: off}\n  giantImage: 1GiB\n  nodeBandwidth: 50MB/s\n",
            &["--advice", "latest_tag=off,tag_moved=deny", "--giant-image", "3GiB"],
        )
        .unwrap();
        let s = &c.engine.settings;
        assert_eq!(s.actions.advice(AdviceClass::LatestTag), AdviceAction::Off);
        assert_eq!(s.actions.advice(AdviceClass::TagMoved), AdviceAction::Deny);
        assert_eq!(s.actions.advice(AdviceClass::GiantImage), AdviceAction::Off);
        assert_eq!(
            s.actions.advice(AdviceClass::PullBudgetLow),
            AdviceAction::Warn
        );
        assert_eq!(s.advice.giant_image, 3 << 30);
        assert_eq!(s.advice.node_bandwidth, 50_000_000);
        assert_eq!(s.advice.low_budget, LowBudget::Percent(20));
        use clap::Parser;
        for bad in [
            vec!["pullcheck", "serve", "--advice", "latest=deny"],
            vec!["pullcheck", "serve", "--advice", "latest_tag"],
            vec!["pullcheck", "check", "--low-pull-budget", "lots"],
            vec!["pullcheck", "check", "--node-bandwidth", "0"],
        ] {
            assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?}");
        }
    }

    #[rstest]
    #[case("server: {maxConnections: 0}", "maxConnections")]
    #[case("server: {maxConnections: 10, maxHandshakes: 11}", "maxHandshakes")]
    #[case("server: {maxHandshakes: 0}", "maxHandshakes")]
    #[case("server: {idleTimeout: 0s}", "idleTimeout")]
    #[case("server: {handshakeTimeout: 1ms}", "handshakeTimeout")]
    #[case("server: {keepaliveInterval: 0ms}", "keepaliveInterval")]
    fn impossible_limits_are_errors_naming_the_setting(#[case] yaml: &str, #[case] named: &str) {
        let file: FileConfig = FileConfig::parse(yaml).unwrap();
        let error = resolve_limits(&ServerArgs::default(), &file.server)
            .unwrap_err()
            .to_string();
        assert!(error.contains(named), "{error}");
    }
}
