//! `pullcheck serve` configuration: flags (each with an environment variable) over a YAML
//! file over defaults, resolved once at start into plain settings.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Deserializer};

use crate::admission::{OwnedPods, Settings};
use crate::cache::CacheConfig;
use crate::cli::{parse_duration, RegistryArgs};
use crate::policy::{Action, Actions, Mode};
use crate::registry::{FindingClass, RegistryConfig};

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
    pub registry: RegistryArgs,
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
        registry
            .policy
            .allow
            .extend(file.allow_hosts.iter().cloned());
        registry.policy.deny.extend(file.deny_hosts.iter().cloned());
        registry.policy.allow_link_local |= file.allow_link_local;
        if let Some(t) = file.registry_timeout {
            registry.request_timeout = t;
        }
        if let Some(n) = file.cache.max_platform_entries {
            registry.platform_cache_entries = n;
        }
        if let Some(n) = file.cache.max_registry_clients {
            registry.max_clients = n;
        }
        let defaults = CacheConfig::default();
        let cache = CacheConfig {
            positive_ttl: file.cache.positive_ttl.unwrap_or(defaults.positive_ttl),
            negative_ttl: file.cache.negative_ttl.unwrap_or(defaults.negative_ttl),
            max_results: file.cache.max_entries.unwrap_or(defaults.max_results),
            stale_ttl: file.cache.stale_ttl.unwrap_or(defaults.stale_ttl),
            max_stale: file.cache.max_stale_entries.unwrap_or(defaults.max_stale),
        };
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
        })
    }
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
}
