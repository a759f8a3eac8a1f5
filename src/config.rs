//! `pullcheck serve` configuration: flags (each with an environment variable) over a YAML
//! file over defaults, resolved once at start into plain settings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Deserializer};

use crate::cli::RegistryArgs;
use crate::engine::policy::{Action, Actions, Mode};
use crate::engine::FindingClass;
use crate::engine::{OwnedPods, Settings};
use crate::listener::Limits;
use crate::registry::cache::CacheConfig;
use crate::registry::{hosts::validate_globs, RegistryConfig};
use crate::text::parse_duration;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (HTTPS, HTTP/2 and HTTP/1.1).
    #[arg(long, env = "PULLCHECK_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Serving certificate (PEM chain); re-read when it changes. Without it a self-signed
    /// certificate is generated (fine for trying out, not for a cluster).
    #[arg(
        long,
        env = "PULLCHECK_TLS_CERT",
        requires = "tls_key",
        value_name = "FILE"
    )]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of the serving certificate.
    #[arg(
        long,
        env = "PULLCHECK_TLS_KEY",
        requires = "tls_cert",
        value_name = "FILE"
    )]
    pub tls_key: Option<PathBuf>,
    /// YAML configuration file (see README): modes, exemptions, per-class actions, caches,
    /// registries.
    #[arg(long, env = "PULLCHECK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Mode of `POST /validate` [default: warn, or the config file's].
    #[arg(long, env = "PULLCHECK_DEFAULT_MODE", value_enum)]
    pub default_mode: Option<Mode>,
    /// What to do with Pods owned by a controller [default: audit].
    #[arg(long, env = "PULLCHECK_CONTROLLER_OWNED_PODS", value_enum)]
    pub controller_owned_pods: Option<OwnedPods>,
    #[arg(long, env = "PULLCHECK_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Do not look for a cluster (no pull secret, ServiceAccount or node platform reads).
    #[arg(long, env = "PULLCHECK_NO_CLUSTER")]
    pub no_cluster: bool,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Who may connect, and how long and how many connections are kept.
#[derive(Debug, Args, Default)]
pub struct ServerArgs {
    /// Require a client certificate chaining to this CA (PEM) on the HTTPS port: the API
    /// server presents one when its AdmissionConfiguration says so (see README); re-read
    /// when it changes.
    #[arg(long, env = "PULLCHECK_CLIENT_CA", value_name = "FILE")]
    pub client_ca: Option<PathBuf>,
    /// Also serve /metrics, /healthz and /readyz over plain HTTP here (never reviews): for
    /// Prometheus and the kubelet's probes, which have no client certificate.
    #[arg(long, env = "PULLCHECK_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Most connections open at once; more are closed at accept [default: 512].
    #[arg(long, env = "PULLCHECK_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Most connections waiting for their first request (TLS handshake included); one more
    /// closes the oldest [default: 128].
    #[arg(long, env = "PULLCHECK_MAX_HANDSHAKES", value_name = "N")]
    pub max_handshakes: Option<usize>,
    /// Time from accept to the first request's headers (TLS handshake, HTTP/2 preface)
    /// [default: 5s].
    #[arg(long, env = "PULLCHECK_HANDSHAKE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub handshake_timeout: Option<Duration>,
    /// A connection without a request in flight for this long is closed (GOAWAY)
    /// [default: 60s].
    #[arg(long, env = "PULLCHECK_IDLE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// HTTP/2 PING after this much silence; unanswered within as long (10s at most), the
    /// connection is closed [default: 30s].
    #[arg(long, env = "PULLCHECK_KEEPALIVE_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub keepalive_interval: Option<Duration>,
}

/// The YAML file. Unknown keys are refused, so a typo is an error, not a silent default.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileConfig {
    pub default_mode: Option<Mode>,
    pub controller_owned_pods: Option<OwnedPods>,
    #[serde(default)]
    pub exempt_namespaces: Vec<String>,
    #[serde(default)]
    pub exempt_images: Vec<String>,
    /// Per finding class: deny, warn or audit (what enforce mode does).
    #[serde(default)]
    pub actions: BTreeMap<FindingClass, Action>,
    #[serde(default)]
    pub deadline: DeadlineFile,
    pub max_body_bytes: Option<usize>,
    pub concurrency: Option<usize>,
    #[serde(default)]
    pub cache: CacheFile,
    #[serde(default)]
    pub cluster: ClusterFile,
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryFile>,
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    #[serde(default)]
    pub deny_hosts: Vec<String>,
    #[serde(default)]
    pub allow_link_local: bool,
    #[serde(default, deserialize_with = "opt_duration")]
    pub registry_timeout: Option<Duration>,
    /// Registries with their own metric label and pooled connections besides the
    /// configured ones; the others share the label `other`.
    pub tracked_registries: Option<usize>,
    #[serde(default)]
    pub server: ServerFile,
}

/// `server:` of the YAML file (the flags of [`ServerArgs`]).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerFile {
    pub client_ca: Option<PathBuf>,
    pub metrics_listen: Option<SocketAddr>,
    pub max_connections: Option<usize>,
    pub max_handshakes: Option<usize>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub handshake_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub idle_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub keepalive_interval: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeadlineFile {
    /// Answer this long before the API server's `?timeout=`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub margin: Option<Duration>,
    /// Never take longer than this, whatever the API server allows.
    #[serde(default, deserialize_with = "opt_duration")]
    pub cap: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheFile {
    #[serde(default, deserialize_with = "opt_duration")]
    pub positive_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub negative_ttl: Option<Duration>,
    pub max_entries: Option<u64>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub stale_ttl: Option<Duration>,
    pub max_stale_entries: Option<u64>,
    pub max_platform_entries: Option<u64>,
    /// Bytes of registry bearer tokens kept.
    pub max_token_bytes: Option<u64>,
    /// No longer used (registry clients are built per resolution and keep nothing);
    /// accepted so existing files still load, with a warning.
    pub max_registry_clients: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterFile {
    /// How long a Secret or ServiceAccount read is reused.
    #[serde(default, deserialize_with = "opt_duration")]
    pub secret_ttl: Option<Duration>,
    /// How long "not found" is reused (short: a Secret created a moment ago must be seen).
    #[serde(default, deserialize_with = "opt_duration")]
    pub negative_ttl: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryFile {
    #[serde(default)]
    pub plain_http: bool,
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub node_credentials: bool,
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom))
        .transpose()
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        Self::parse(&text).map_err(|e| format!("config {}: {e}", path.display()))
    }

    /// Parses the YAML of a config file: unknown keys refused, errors with their line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let options = crate::manifest_stream::yaml_options(text.len());
        serde_saphyr::from_str_with_options(text, options).map_err(|e| {
            let message = crate::manifest_stream::yaml_message(&e);
            let message = message.strip_prefix("invalid YAML: ").unwrap_or(&message);
            match e.location() {
                Some(l) => format!("line {}: {message}", l.line()),
                None => message.to_string(),
            }
        })
    }
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

/// Everything `serve` needs, resolved.
#[derive(Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub settings: Settings,
    pub registry: RegistryConfig,
    pub cache: CacheConfig,
    pub deadline: Deadline,
    pub max_body_bytes: usize,
    pub secret_ttl: Duration,
    pub secret_negative_ttl: Duration,
    pub no_cluster: bool,
    /// Client CA (`--client-ca`): callers must present a certificate it signed.
    pub client_ca: Option<PathBuf>,
    /// Plain-HTTP listener for metrics and probes.
    pub metrics_listen: Option<SocketAddr>,
    pub limits: Limits,
}

/// Largest AdmissionReview accepted by default: the API server sends object and oldObject
/// of up to ~1.5 MiB each (etcd's limit) plus envelope.
pub const DEFAULT_MAX_BODY: usize = 7 << 20;

impl ServeConfig {
    pub fn resolve(args: &ServeArgs) -> Result<Self, String> {
        let file = match &args.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        let mut actions = Actions::default();
        for (class, action) in &file.actions {
            actions.set(*class, *action);
        }
        let settings = Settings {
            default_mode: args
                .default_mode
                .or(file.default_mode)
                .unwrap_or(Mode::Warn),
            actions,
            owned_pods: args
                .controller_owned_pods
                .or(file.controller_owned_pods)
                .unwrap_or(OwnedPods::Audit),
            exempt_namespaces: file.exempt_namespaces.clone(),
            exempt_images: file.exempt_images.clone(),
            concurrency: file.concurrency.unwrap_or(16).max(1),
        };
        let mut registry = args.registry.registry_config()?;
        for (host, r) in &file.registries {
            let h = registry.host_mut(host);
            h.plain_http |= r.plain_http;
            h.node_credentials |= r.node_credentials;
            if let Some(ca) = &r.ca_file {
                h.ca_pems.push(
                    std::fs::read(ca)
                        .map_err(|e| format!("cannot read CA {} of {host}: {e}", ca.display()))?,
                );
            }
        }
        let in_file = |key: &str| {
            let path = args.config.as_deref().unwrap_or(Path::new("-"));
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
        if let Some(t) = file.registry_timeout {
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
        let defaults = CacheConfig::default();
        let cache = CacheConfig {
            positive_ttl: file.cache.positive_ttl.unwrap_or(defaults.positive_ttl),
            negative_ttl: file.cache.negative_ttl.unwrap_or(defaults.negative_ttl),
            max_results: file.cache.max_entries.unwrap_or(defaults.max_results),
            stale_ttl: file.cache.stale_ttl.unwrap_or(defaults.stale_ttl),
            max_stale: file.cache.max_stale_entries.unwrap_or(defaults.max_stale),
        };
        let limits = resolve_limits(&args.server, &file.server)?;
        let d = Deadline::default();
        Ok(Self {
            listen: args.listen,
            tls: args.tls_cert.clone().zip(args.tls_key.clone()),
            settings,
            registry,
            cache,
            deadline: Deadline {
                margin: file.deadline.margin.unwrap_or(d.margin),
                cap: file.deadline.cap.unwrap_or(d.cap),
            },
            max_body_bytes: file.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY),
            secret_ttl: file.cluster.secret_ttl.unwrap_or(Duration::from_secs(10)),
            secret_negative_ttl: file.cluster.negative_ttl.unwrap_or(Duration::from_secs(1)),
            no_cluster: args.no_cluster,
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

/// Connection limits: flags over `server:` over defaults, each checked.
fn resolve_limits(args: &ServerArgs, file: &ServerFile) -> Result<Limits, String> {
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
        return Err("maxConnections (--max-connections) must be at least 1".into());
    }
    if limits.max_handshakes == 0 || limits.max_handshakes > limits.max_connections {
        return Err(format!(
            "maxHandshakes (--max-handshakes) must be between 1 and maxConnections ({}), not {}",
            limits.max_connections, limits.max_handshakes
        ));
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
            return Err(format!("{name} must be at least 10ms, not {value:?}"));
        }
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let crate::cli::Command::Serve(args) =
            crate::cli::Cli::try_parse_from(argv).unwrap().command
        else {
            unreachable!("serve parses as serve")
        };
        ServeConfig::resolve(&args).map_err(|e| e.replace(path.to_str().unwrap(), "FILE"))
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
    fn valid_host_globs_are_kept_as_compared() {
        let c = resolve(
            "denyHosts: [\"Deny.Example\", \"[FD00::1]\"]\n",
            &["--deny-host", "*.bad.example"],
        )
        .unwrap();
        assert_eq!(
            c.registry.policy.deny,
            ["*.bad.example", "deny.example", "fd00::1"]
        );
    }

    #[test]
    fn file_config_parses_and_refuses_typos() {
        let ok = FileConfig::parse(
            "defaultMode: enforce\nactions:\n  unavailable: deny\n  tag_not_found: warn\ncache:\n  positiveTtl: 2m\nregistries:\n  r.example:5000:\n    plainHttp: true\n",
        )
        .unwrap();
        assert_eq!(ok.default_mode, Some(Mode::Enforce));
        assert_eq!(
            ok.actions.get(&FindingClass::Unavailable),
            Some(&Action::Deny)
        );
        assert_eq!(ok.cache.positive_ttl, Some(Duration::from_secs(120)));
        assert!(ok.registries["r.example:5000"].plain_http);
        let typo =
            FileConfig::parse("concurrency: 4\ncache:\n  positiveTtl: 2m\n  negativTtl: 1s\n")
                .unwrap_err();
        assert!(
            typo.starts_with("line 4: unknown field `negativTtl`"),
            "{typo}"
        );
        assert!(FileConfig::parse("defaultMod: warn").is_err());
        assert!(FileConfig::parse("actions: {nope: deny}").is_err());
        let bad = FileConfig::parse("\ncache: {positiveTtl: forever}").unwrap_err();
        assert!(
            bad.starts_with("line 2: ") && bad.contains("forever"),
            "{bad}"
        );
        let doubled = FileConfig::parse("concurrency: 4\nconcurrency: 8\n").unwrap_err();
        assert!(
            doubled.starts_with("line 2: ") && doubled.contains("duplicate"),
            "{doubled}"
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

    #[rstest]
    #[case("server: {maxConnections: 0}", "maxConnections")]
    #[case("server: {maxConnections: 10, maxHandshakes: 11}", "maxHandshakes")]
    #[case("server: {maxHandshakes: 0}", "maxHandshakes")]
    #[case("server: {idleTimeout: 0s}", "idleTimeout")]
    #[case("server: {handshakeTimeout: 1ms}", "handshakeTimeout")]
    #[case("server: {keepaliveInterval: 0ms}", "keepaliveInterval")]
    fn impossible_limits_are_errors_naming_the_setting(#[case] yaml: &str, #[case] named: &str) {
        let file: FileConfig = FileConfig::parse(yaml).unwrap();
        let error = resolve_limits(&ServerArgs::default(), &file.server).unwrap_err();
        assert!(error.contains(named), "{error}");
    }

    #[test]
    fn server_settings_refuse_unknown_keys_and_bad_values() {
        assert!(FileConfig::parse("server: {maxConnection: 5}").is_err());
        assert!(FileConfig::parse("server: {idleTimeout: soon}").is_err());
        assert!(FileConfig::parse("server: {metricsListen: nowhere}").is_err());
    }

    #[test]
    fn server_flags_parse_with_their_environment_variables() {
        use clap::Parser as _;
        // Set only here: no other test reads this variable.
        std::env::set_var("PULLCHECK_KEEPALIVE_INTERVAL", "7s");
        let cli = crate::cli::Cli::try_parse_from([
            "pullcheck",
            "serve",
            "--max-connections=64",
            "--idle-timeout=90s",
            "--client-ca=/ca.pem",
            "--metrics-listen=127.0.0.1:9090",
        ])
        .unwrap();
        std::env::remove_var("PULLCHECK_KEEPALIVE_INTERVAL");
        let crate::cli::Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(args.server.max_connections, Some(64));
        assert_eq!(args.server.idle_timeout, Some(Duration::from_secs(90)));
        assert_eq!(args.server.keepalive_interval, Some(Duration::from_secs(7)));
        assert_eq!(args.server.client_ca.as_deref(), Some(Path::new("/ca.pem")));
        assert!(
            crate::cli::Cli::try_parse_from(["pullcheck", "serve", "--idle-timeout=later"])
                .is_err()
        );
    }
}
