//! The YAML file (`--config`): every setting of `serve`, typed; unknown keys refused, so a
//! typo is an error naming its line, not a silent default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use serde::{Deserialize, Deserializer};

use super::yaml::{yaml_message, yaml_options};
use crate::engine::{Action, AdviceAction, AdviceClass, FindingClass, Mode, OwnedPods};
use crate::kubelet::runtime::RuntimeChoice;
use crate::registry::ratelimit::LowBudget;
use crate::text::{parse_bytes, parse_duration, parse_rate};

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
    /// The kubelet's CredentialProviderConfig (the flag of the same name wins).
    pub image_credential_provider_config: Option<PathBuf>,
    /// `auto`, `containerd`, `cri-o`, or one with its version (`containerd://2.1.4`).
    #[serde(default, deserialize_with = "opt_runtime")]
    pub node_runtime: Option<RuntimeChoice>,
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
    #[serde(default)]
    pub advice: AdviceFile,
    #[serde(default)]
    pub scan: ScanFile,
}

/// `scan:` of the YAML file: the cluster view (`pullcheck scan`, the background scan of
/// `serve`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScanFile {
    /// Time between background scans of `serve`; `0` turns them off.
    #[serde(default, deserialize_with = "opt_duration")]
    pub interval: Option<Duration>,
    /// Resolutions in flight at once per registry host.
    pub registry_concurrency: Option<usize>,
    /// Resolutions started per second per registry host.
    pub registry_rate: Option<f64>,
    /// Most series of `pullcheck_workload_images`; the rest are folded.
    pub max_series: Option<usize>,
}

/// `advice:` of the YAML file (the flags of [`super::args::AdviceArgs`]).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdviceFile {
    /// Per advice class: off, warn or deny.
    #[serde(default)]
    pub actions: BTreeMap<AdviceClass, AdviceAction>,
    /// A budget is low at or below this: `20` (pulls) or `20%` (of the limit).
    #[serde(default, deserialize_with = "opt_low_budget")]
    pub low_pull_budget: Option<LowBudget>,
    /// Compressed size above which an image is giant (`2GiB`).
    #[serde(default, deserialize_with = "opt_size")]
    pub giant_image: Option<u64>,
    /// A node's pull bandwidth (`100Mbit/s`, `50MB/s`).
    #[serde(default, deserialize_with = "opt_rate")]
    pub node_bandwidth: Option<u64>,
}

/// A number or a string, as YAML gives either for `20` and `20%`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Number(u64),
    Text(String),
}

impl Scalar {
    fn text(self) -> String {
        match self {
            Scalar::Number(n) => n.to_string(),
            Scalar::Text(s) => s,
        }
    }
}

fn opt_low_budget<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LowBudget>, D::Error> {
    let s: Option<Scalar> = Option::deserialize(d)?;
    s.map(|s| LowBudget::parse(&s.text()).map_err(serde::de::Error::custom))
        .transpose()
}

/// Largest size accepted for `giantImage`: 1 PiB.
pub const MAX_GIANT_IMAGE: u64 = 1 << 50;

fn opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let s: Option<Scalar> = Option::deserialize(d)?;
    s.map(|s| parse_bytes(&s.text(), MAX_GIANT_IMAGE).map_err(serde::de::Error::custom))
        .transpose()
}

fn opt_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let s: Option<Scalar> = Option::deserialize(d)?;
    s.map(|s| parse_rate(&s.text()).map_err(serde::de::Error::custom))
        .transpose()
}

/// `server:` of the YAML file (the flags of [`super::ServerArgs`]).
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

fn opt_runtime<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RuntimeChoice>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| RuntimeChoice::parse(&s).map_err(serde::de::Error::custom))
        .transpose()
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom))
        .transpose()
}

impl FileConfig {
    /// The keys present that only `serve` uses (a server's connections, review deadlines and
    /// body sizes, its cluster reads, and the cluster view's `scan:`, which `pullcheck scan`
    /// reads too): `check` accepts them and says it does not use them.
    pub fn serve_only_keys(&self) -> Vec<&'static str> {
        let s = &self.server;
        let server = s.client_ca.is_some()
            || s.metrics_listen.is_some()
            || s.max_connections.is_some()
            || s.max_handshakes.is_some()
            || s.handshake_timeout.is_some()
            || s.idle_timeout.is_some()
            || s.keepalive_interval.is_some();
        let deadline = self.deadline.margin.is_some() || self.deadline.cap.is_some();
        let cluster = self.cluster.secret_ttl.is_some() || self.cluster.negative_ttl.is_some();
        let c = &self.scan;
        let scan = c.interval.is_some()
            || c.registry_concurrency.is_some()
            || c.registry_rate.is_some()
            || c.max_series.is_some();
        [
            (server, "server"),
            (deadline, "deadline"),
            (self.max_body_bytes.is_some(), "maxBodyBytes"),
            (cluster, "cluster"),
            (scan, "scan"),
        ]
        .into_iter()
        .filter_map(|(present, key)| present.then_some(key))
        .collect()
    }

    /// Reads and parses the file at `path` (an empty file is the defaults).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        Self::parse(&text).with_context(|| format!("config {}", path.display()))
    }

    /// The file at `path` when one is given, else the defaults.
    pub fn load_given(path: Option<&Path>) -> anyhow::Result<Self> {
        path.map_or_else(|| Ok(Self::default()), Self::load)
    }

    /// Parses the YAML of a config file: unknown keys refused, errors with their line.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        serde_saphyr::from_str_with_options(text, yaml_options(text.len())).map_err(|e| {
            let message = yaml_message(&e);
            let message = message.strip_prefix("invalid YAML: ").unwrap_or(&message);
            match e.location() {
                Some(l) => anyhow!("line {}: {message}", l.line()),
                None => anyhow!("{message}"),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                .unwrap_err()
                .to_string();
        assert!(
            typo.starts_with("line 4: unknown field `negativTtl`"),
            "{typo}"
        );
        assert!(FileConfig::parse("defaultMod: warn").is_err());
        assert!(FileConfig::parse("actions: {nope: deny}").is_err());
        let bad = FileConfig::parse("\ncache: {positiveTtl: forever}")
            .unwrap_err()
            .to_string();
        assert!(
            bad.starts_with("line 2: ") && bad.contains("forever"),
            "{bad}"
        );
        let doubled = FileConfig::parse("concurrency: 4\nconcurrency: 8\n")
            .unwrap_err()
            .to_string();
        assert!(
            doubled.starts_with("line 2: ") && doubled.contains("duplicate"),
            "{doubled}"
        );
    }

    #[test]
    fn advice_settings_parse_and_refuse_nonsense() {
        let ok = FileConfig::parse(
            "advice:\n  actions:\n    latest_tag: deny\n    giant_image: off\n  lowPullBudget: 10\n  giantImage: 500MiB\n  nodeBandwidth: 1Gbit/s\n",
        )
        .unwrap();
        assert_eq!(
            ok.advice.actions.get(&AdviceClass::LatestTag),
            Some(&AdviceAction::Deny)
        );
        assert_eq!(
            ok.advice.actions.get(&AdviceClass::GiantImage),
            Some(&AdviceAction::Off)
        );
        assert_eq!(ok.advice.low_pull_budget, Some(LowBudget::Count(10)));
        assert_eq!(ok.advice.giant_image, Some(500 << 20));
        assert_eq!(ok.advice.node_bandwidth, Some(125_000_000));
        let pct = FileConfig::parse("advice: {lowPullBudget: 5%}").unwrap();
        assert_eq!(pct.advice.low_pull_budget, Some(LowBudget::Percent(5)));
        for bad in [
            "advice: {actions: {latest: deny}}",
            "advice: {actions: {latest_tag: audit}}",
            "advice: {lowPullBudget: 120%}",
            "advice: {giantImage: huge}",
            "advice: {nodeBandwidth: fast}",
            "advice: {giantImages: 1GiB}",
        ] {
            assert!(FileConfig::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_settings_refuse_unknown_keys_and_bad_values() {
        assert!(FileConfig::parse("server: {maxConnection: 5}").is_err());
        assert!(FileConfig::parse("server: {idleTimeout: soon}").is_err());
        assert!(FileConfig::parse("server: {metricsListen: nowhere}").is_err());
    }
}
