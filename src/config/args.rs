//! The command line, and nothing else: every clap type of pullcheck is here. The engine's
//! own enums ([`Mode`], [`OwnedPods`]) know nothing of clap; they are offered as values
//! here (`ValueEnum` implemented for them, with the words of `--help`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::{AdviceAction, AdviceClass, Mode, OwnedPods};
use crate::kubelet::runtime::RuntimeChoice;
use crate::registry::ratelimit::LowBudget;
use crate::text::{parse_bytes, parse_duration, parse_rate};

/// Exit codes of every command: 0 clean, 1 findings (or invalid references), 2 usage or
/// unreadable input.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FINDINGS: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "pullcheck",
    version,
    about = "Refuse workloads whose images the kubelet will fail to pull"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the validating admission webhook (HTTPS on 0.0.0.0:8443 by default).
    Serve(Box<ServeArgs>),
    /// Parse and normalize image references like the kubelet (no network).
    Reference(ReferenceArgs),
    /// Resolve images against their registries and report what would not pull.
    Check(Box<CheckArgs>),
    /// Create a CA and a serving certificate for `<service>.<namespace>.svc`.
    Certs(CertsArgs),
    /// Check what runs in the cluster (like kubectl: in-cluster config, KUBECONFIG) and
    /// explain every Pod stuck pulling.
    Scan(Box<ScanArgs>),
}

#[derive(Debug, Args)]
pub struct ReferenceArgs {
    /// One JSON object per line: input, valid, error, domain, path, tag, digest, canonical.
    #[arg(long)]
    pub json: bool,
    /// Image references, as written in a Pod spec.
    #[arg(required = true, value_name = "REF")]
    pub references: Vec<String>,
}

/// How pullcheck reaches registries; shared by `check` and `serve`.
#[derive(Debug, Args, Clone, Default)]
pub struct RegistryArgs {
    /// A docker `config.json` whose `auths` are used as pull credentials.
    #[arg(long, value_name = "FILE", env = "PULLCHECK_DOCKER_CONFIG")]
    pub docker_config: Option<PathBuf>,
    /// Speak plain HTTP to this registry (host[:port] as in image references, or a glob
    /// with `*` such as `*.corp.internal:5000`). Repeatable.
    #[arg(
        long = "plain-http",
        value_name = "HOST",
        env = "PULLCHECK_PLAIN_HTTP",
        value_delimiter = ','
    )]
    pub plain_http: Vec<String>,
    /// Trust this CA (PEM) for every registry, or with `HOST=FILE` for one. Repeatable.
    #[arg(
        long = "registry-ca",
        value_name = "[HOST=]PEM",
        env = "PULLCHECK_REGISTRY_CA",
        value_delimiter = ','
    )]
    pub registry_ca: Vec<String>,
    /// Nodes pull from this registry with their own credentials (ECR/GCR/ACR credential
    /// providers): unauthorized without pull secrets is not a finding. Repeatable.
    #[arg(
        long = "node-credentials",
        value_name = "HOST",
        env = "PULLCHECK_NODE_CREDENTIALS",
        value_delimiter = ','
    )]
    pub node_credentials: Vec<String>,
    /// The kubelet's CredentialProviderConfig (`--image-credential-provider-config` of the
    /// nodes): images its providers' `matchImages` match are pulled with node credentials.
    #[arg(
        long,
        value_name = "FILE",
        env = "PULLCHECK_IMAGE_CREDENTIAL_PROVIDER_CONFIG"
    )]
    pub image_credential_provider_config: Option<PathBuf>,
    /// The nodes' container runtime, whose version decides how a platform is picked from
    /// an image index: `auto` (the cluster's Nodes), `containerd`, `cri-o`, or with the
    /// version Nodes report (`containerd://2.1.4`).
    #[arg(
        long,
        value_name = "RUNTIME",
        env = "PULLCHECK_NODE_RUNTIME",
        value_parser = RuntimeChoice::parse
    )]
    pub node_runtime: Option<RuntimeChoice>,
    /// Only contact registry, token and redirect hosts matching these globs
    /// (`*.example.com`; no port, no trailing dot). Repeatable.
    #[arg(
        long = "allow-host",
        value_name = "GLOB",
        env = "PULLCHECK_ALLOW_HOSTS",
        value_delimiter = ','
    )]
    pub allow_host: Vec<String>,
    /// Never contact hosts matching these globs (registries, token realms, redirect
    /// targets; names are compared without a trailing dot). Repeatable.
    #[arg(
        long = "deny-host",
        value_name = "GLOB",
        env = "PULLCHECK_DENY_HOSTS",
        value_delimiter = ','
    )]
    pub deny_host: Vec<String>,
    /// Allow link-local and cloud metadata addresses, in every IPv6 form (refused by default).
    #[arg(long, env = "PULLCHECK_ALLOW_LINK_LOCAL")]
    pub allow_link_local: bool,
    /// Limit for one registry request [default: 8s, or the config file's registryTimeout].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub registry_timeout: Option<Duration>,
}

/// Log lines as text or as JSON objects.
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
    #[command(flatten)]
    pub advice: AdviceArgs,
    /// Time between background scans of the cluster (`0`: none; never without a cluster)
    /// [default: 10m, or the config file's `scan.interval`].
    #[arg(long, env = "PULLCHECK_SCAN_INTERVAL", value_name = "DURATION", value_parser = parse_duration)]
    pub scan_interval: Option<Duration>,
    /// Most series of `pullcheck_workload_images`; the rest are folded into one series per
    /// verdict [default: 10000].
    #[arg(long, env = "PULLCHECK_SCAN_MAX_SERIES", value_name = "N")]
    pub scan_max_series: Option<usize>,
    #[command(flatten)]
    pub scan: ScanLimitArgs,
}

/// How fast a scan asks registries; shared by `scan` and `serve`.
#[derive(Debug, Args, Clone, Default)]
pub struct ScanLimitArgs {
    /// A scan's resolutions in flight at once per registry host [default: 4].
    #[arg(long, env = "PULLCHECK_SCAN_REGISTRY_CONCURRENCY", value_name = "N")]
    pub scan_registry_concurrency: Option<usize>,
    /// A scan's resolutions started per second per registry host [default: 10].
    #[arg(long, env = "PULLCHECK_SCAN_REGISTRY_RATE", value_name = "PER_SECOND")]
    pub scan_registry_rate: Option<f64>,
}

/// `pullcheck scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Scan this namespace (repeatable) [default: all namespaces].
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    pub namespaces: Vec<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: ScanFormat,
    /// YAML configuration file (the one of `serve`): exemptions, actions, registries, scan
    /// limits.
    #[arg(long, env = "PULLCHECK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Give up on images unresolved after this long (they count as timeout).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Distinct images checked at once (each still waits for its registry's turn).
    #[arg(long, value_name = "N", default_value = "64")]
    pub concurrency: usize,
    /// No progress bar, even on a terminal.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub scan: ScanLimitArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Output formats of `scan`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ScanFormat {
    Text,
    /// One JSON object per line.
    Json,
}

/// Advice on what pulls today but is fragile; shared by `check` and `serve` (over the
/// config file's `advice:`).
#[derive(Debug, Args, Clone, Default)]
pub struct AdviceArgs {
    /// What to do with a class of advice, `CLASS=off|warn|deny` (classes: latest_tag,
    /// always_pull_rate_limited, tag_moved, pull_budget_low, giant_image; default warn).
    /// Repeatable.
    #[arg(
        long = "advice",
        value_name = "CLASS=ACTION",
        env = "PULLCHECK_ADVICE",
        value_delimiter = ',',
        value_parser = parse_advice
    )]
    pub advice: Vec<(AdviceClass, AdviceAction)>,
    /// A registry's rate-limit budget is low at or below this: pulls left (`20`) or a share
    /// of the limit (`20%`) [default: 20%].
    #[arg(long, value_name = "N|P%", env = "PULLCHECK_LOW_PULL_BUDGET", value_parser = LowBudget::parse)]
    pub low_pull_budget: Option<LowBudget>,
    /// Compressed size (config + layers, one platform) above which an image is giant
    /// [default: 2GiB].
    #[arg(long, value_name = "SIZE", env = "PULLCHECK_GIANT_IMAGE", value_parser = parse_giant_image)]
    pub giant_image: Option<u64>,
    /// A node's pull bandwidth, for the expected pull time of giant images (`100Mbit/s`,
    /// `50MB/s`) [default: 100Mbit/s].
    #[arg(long, value_name = "RATE", env = "PULLCHECK_NODE_BANDWIDTH", value_parser = parse_rate)]
    pub node_bandwidth: Option<u64>,
}

/// `--advice CLASS=ACTION`.
fn parse_advice(s: &str) -> Result<(AdviceClass, AdviceAction), String> {
    let (class, action) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected CLASS=off|warn|deny"))?;
    Ok((class.trim().parse()?, action.trim().parse()?))
}

/// `--giant-image`: `2GiB`, `500MiB`, at most 1 PiB.
fn parse_giant_image(s: &str) -> Result<u64, String> {
    parse_bytes(s, super::file::MAX_GIANT_IMAGE)
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

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Manifests: YAML or JSON files, directories (recursively), `-` for standard input
    /// (e.g. `kustomize build | pullcheck check -`).
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
    /// An image to check, as written in a Pod spec. Repeatable.
    #[arg(long = "image", value_name = "REF")]
    pub images: Vec<String>,
    /// Namespace of objects that name none.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// The webhook's YAML configuration, the file `serve --config` reads: modes, actions,
    /// exemptions, registries, host policy, registry timeout and caches apply as in the
    /// cluster; what only a server has (server, deadline, maxBodyBytes, cluster) is accepted
    /// and not used. Flags override the file.
    #[arg(long, env = "PULLCHECK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Decide as the webhook does in a namespace of this mode [default: enforce, or the
    /// config file's defaultMode].
    #[arg(long, alias = "mode", env = "PULLCHECK_DEFAULT_MODE", value_enum)]
    pub default_mode: Option<Mode>,
    /// What to do with Pods owned by a controller [default: check, or the config file's
    /// controllerOwnedPods].
    #[arg(long, env = "PULLCHECK_CONTROLLER_OWNED_PODS", value_enum)]
    pub controller_owned_pods: Option<OwnedPods>,
    /// Keep good results and digest platforms here between runs (honouring their TTLs).
    #[arg(long, value_name = "DIR", env = "PULLCHECK_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// How long a good result on disk is reused.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub cache_ttl: Duration,
    /// Fail (exit 1) on transient findings too (registry unavailable, timeout, rate limited,
    /// blocked host), as if `actions:` said deny for them; by default they are warnings, as
    /// in the webhook.
    #[arg(long)]
    pub strict: bool,
    /// Platform of the nodes (os/arch[/variant]). Repeatable.
    #[arg(
        long = "platform",
        value_name = "PLATFORM",
        default_value = "linux/amd64"
    )]
    pub platforms: Vec<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Give up on images unresolved after this long (they count as timeout).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Objects (and images of one object) resolved at once [default: 8; images of one
    /// object: the config file's concurrency when given].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Largest input read (each file, and standard input): e.g. 64MiB, 512KiB.
    #[arg(
        long,
        value_name = "SIZE",
        env = "PULLCHECK_MAX_INPUT_BYTES",
        default_value = "64MiB",
        value_parser = parse_input_bytes
    )]
    pub max_input_bytes: u64,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub advice: AdviceArgs,
}

/// Output formats of `check`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    /// GitHub Actions workflow commands (`::error file=…,line=…::…`).
    Github,
}

/// `pullcheck certs`: create a CA and a serving certificate for the webhook's Service.
#[derive(Debug, Clone, Args)]
pub struct CertsArgs {
    /// Name of the webhook's Service.
    #[arg(long, value_name = "NAME", default_value = "pullcheck")]
    pub service: String,
    /// Namespace of the webhook's Service.
    #[arg(long, value_name = "NAMESPACE", default_value = "pullcheck")]
    pub namespace: String,
    /// Directory for ca.crt, ca.key, tls.crt and tls.key (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Validity of the serving certificate, in days (a new CA gets 10 years).
    #[arg(long, value_name = "DAYS", default_value_t = 365)]
    pub days: u32,
    /// Sign with this CA certificate (PEM) instead of creating a CA: rotates only the
    /// serving certificate, the caBundle in the cluster stays valid.
    #[arg(long, value_name = "FILE", requires = "ca_key")]
    pub ca_cert: Option<PathBuf>,
    /// Private key (PEM, PKCS#8) of --ca-cert.
    #[arg(long, value_name = "FILE", requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,
    /// Replace a different ca.key already in --out-dir.
    #[arg(long)]
    pub force: bool,
    /// Also issue the API server's client certificate (apiserver-client.crt/.key, signed by
    /// the CA: give `serve --client-ca ca.crt`) and write the kubeconfig and
    /// AdmissionConfiguration that make the API server present it.
    #[arg(long)]
    pub api_server_client: bool,
}

/// Default cap on one input: a rendered chart or `kubectl get -o yaml` of a large
/// namespace fits many times over (a 100,000-Pod List is ~58 MB), and a run stays within a
/// few hundred MiB of memory on a CI runner.
/// (`--max-input-bytes`'s default, `64MiB`.)
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 64 << 20;

/// Largest `--max-input-bytes` accepted: line positions are kept as 32-bit offsets.
pub const MAX_INPUT_BYTES_LIMIT: u64 = u32::MAX as u64;

/// `--max-input-bytes`: `1048576`, `512KiB`, `64MiB`, `1GiB`, up to
/// [`MAX_INPUT_BYTES_LIMIT`].
fn parse_input_bytes(s: &str) -> Result<u64, String> {
    parse_bytes(s, MAX_INPUT_BYTES_LIMIT)
}

impl ValueEnum for Mode {
    fn value_variants<'a>() -> &'a [Self] {
        &[Mode::Audit, Mode::Warn, Mode::Enforce]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Mode::Audit => PossibleValue::new("audit").help("Record in audit annotations only"),
            Mode::Warn => PossibleValue::new("warn")
                .help("Admit, with warnings (shown by kubectl, also on `--dry-run=server`)"),
            Mode::Enforce => PossibleValue::new("enforce")
                .help("Deny what will not pull; warn about the uncertain"),
        })
    }
}

impl ValueEnum for OwnedPods {
    fn value_variants<'a>() -> &'a [Self] {
        &[OwnedPods::Check, OwnedPods::Audit, OwnedPods::Skip]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            OwnedPods::Check => {
                PossibleValue::new("check").help("Check them like any Pod, in the route's mode")
            }
            OwnedPods::Audit => PossibleValue::new("audit")
                .help("Check them and record findings in audit annotations only"),
            OwnedPods::Skip => PossibleValue::new("skip").help("Do not check them at all"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn server_flags_parse_with_their_environment_variables() {
        use clap::Parser as _;
        // Set only here: no other test reads this variable.
        std::env::set_var("PULLCHECK_KEEPALIVE_INTERVAL", "7s");
        let cli = Cli::try_parse_from([
            "pullcheck",
            "serve",
            "--max-connections=64",
            "--idle-timeout=90s",
            "--client-ca=/ca.pem",
            "--metrics-listen=127.0.0.1:9090",
        ])
        .unwrap();
        std::env::remove_var("PULLCHECK_KEEPALIVE_INTERVAL");
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(args.server.max_connections, Some(64));
        assert_eq!(args.server.idle_timeout, Some(Duration::from_secs(90)));
        assert_eq!(args.server.keepalive_interval, Some(Duration::from_secs(7)));
        assert_eq!(args.server.client_ca.as_deref(), Some(Path::new("/ca.pem")));
        assert!(Cli::try_parse_from(["pullcheck", "serve", "--idle-timeout=later"]).is_err());
    }
}
