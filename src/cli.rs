//! Command line: `pullcheck reference` and `pullcheck check`.
//! Exit codes: 0 clean, 1 findings (or invalid references), 2 usage or unreadable input.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::ci;
use crate::cluster::InMemoryCluster;
use crate::engine::policy::{Action, Mode};
use crate::engine::{Checker, Context, ImageCheck};
use crate::engine::{Engine, OwnedPods, Settings};
use crate::kubelet::credentials::{self, Keyring};
use crate::kubelet::platform::Platform;
use crate::kubelet::reference;
use crate::manifest_stream;
use crate::manifests::{self, FIELD_LIMIT, MESSAGE_LIMIT};
use crate::metrics::Metrics;
use crate::registry::cache::{CacheConfig, CachedRegistry};
use crate::registry::disk::DiskCache;
use crate::registry::Registry;
use crate::registry::{hosts::validate_globs, http::HostPolicy, Distribution, RegistryConfig};
use crate::text::{clip, parse_duration};

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
    Serve(Box<crate::config::ServeArgs>),
    /// Parse and normalize image references like the kubelet (no network).
    Reference(ReferenceArgs),
    /// Resolve images against their registries and report what would not pull.
    Check(Box<CheckArgs>),
    /// Create a CA and a serving certificate for `<service>.<namespace>.svc`.
    Certs(crate::certs::CertsArgs),
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
    /// Limit for one registry request.
    #[arg(long, value_name = "DURATION", default_value = "8s", value_parser = parse_duration)]
    pub registry_timeout: Duration,
}

impl RegistryArgs {
    /// The registry configuration these flags describe (reads the CA files).
    pub fn registry_config(&self) -> Result<RegistryConfig, String> {
        let mut config = RegistryConfig {
            policy: HostPolicy {
                allow: validate_globs(&self.allow_host, "--allow-host (PULLCHECK_ALLOW_HOSTS)")?,
                deny: validate_globs(&self.deny_host, "--deny-host (PULLCHECK_DENY_HOSTS)")?,
                allow_link_local: self.allow_link_local,
            },
            request_timeout: self.registry_timeout,
            ..RegistryConfig::default()
        };
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
        for spec in &self.registry_ca {
            let (host, path) = match spec.split_once('=') {
                Some((h, p)) => (Some(h), p),
                None => (None, spec.as_str()),
            };
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read registry CA {path:?}: {e}"))?;
            match host {
                Some(h) => config.host_mut(h).ca_pems.push(pem),
                None => config.global_ca_pems.push(pem),
            }
        }
        Ok(config)
    }

    /// The keyring of `--docker-config`, plus warnings to show.
    pub fn keyring(&self) -> Result<(Keyring, Vec<String>), String> {
        let mut keyring = Keyring::new();
        let mut warnings = Vec::new();
        if let Some(path) = &self.docker_config {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("cannot read docker config {}: {e}", path.display()))?;
            let (config, notes) = credentials::parse_docker_config_file(&bytes)
                .map_err(|e| format!("docker config {}: {e}", path.display()))?;
            warnings.extend(notes);
            for skipped in keyring.add("--docker-config", &config) {
                warnings.push(format!(
                    "docker config entry {skipped:?} is not a valid registry address; ignored"
                ));
            }
        }
        Ok((keyring, warnings))
    }
}

pub use crate::ci::Format;

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
    /// Keep good results and digest platforms here between runs (honouring their TTLs).
    #[arg(long, value_name = "DIR", env = "PULLCHECK_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// How long a good result on disk is reused.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub cache_ttl: Duration,
    /// Fail (exit 1) on transient findings too (registry unavailable, timeout, rate limited);
    /// by default they are warnings, as in the webhook.
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
    /// Objects (and images of one object) resolved at once.
    #[arg(long, default_value = "8")]
    pub concurrency: usize,
    /// Largest input read (each file, and standard input): e.g. 64MiB, 512KiB.
    #[arg(
        long,
        value_name = "SIZE",
        env = "PULLCHECK_MAX_INPUT_BYTES",
        default_value = "64MiB",
        value_parser = crate::input::parse_bytes
    )]
    pub max_input_bytes: u64,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `pullcheck reference`.
pub fn run_reference(args: &ReferenceArgs, out: &mut impl Write) -> std::io::Result<u8> {
    let mut code = EXIT_OK;
    for input in &args.references {
        let report = reference::report(input);
        if !report.valid {
            code = EXIT_FINDINGS;
        }
        if args.json {
            writeln!(
                out,
                "{}",
                serde_json::to_string(&report).unwrap_or_default()
            )?;
        } else if let Some(canonical) = &report.canonical {
            writeln!(out, "{input}\t{canonical}")?;
        } else {
            writeln!(
                out,
                "{input}\tinvalid: {}",
                report.error.unwrap_or_default()
            )?;
        }
    }
    Ok(code)
}

/// `pullcheck check [PATH|-]… [--image REF]…`.
pub async fn run_check(
    args: &CheckArgs,
    stdin: &mut dyn std::io::Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let usage = |err: &mut dyn Write, msg: String| -> std::io::Result<u8> {
        writeln!(err, "error: {msg}")?;
        Ok(EXIT_USAGE)
    };
    if args.paths.is_empty() && args.images.is_empty() {
        return usage(
            err,
            "nothing to check: give manifests (PATH…, - for standard input) or --image REF".into(),
        );
    }
    let mut wanted = Vec::new();
    for p in &args.platforms {
        match Platform::parse(p) {
            Ok(p) => wanted.push(p.normalize()),
            Err(e) => return usage(err, e.to_string()),
        }
    }
    let registry_config = match args.registry.registry_config() {
        Ok(c) => c,
        Err(e) => return usage(err, e),
    };
    let (keyring, warnings) = match args.registry.keyring() {
        Ok(k) => k,
        Err(e) => return usage(err, e),
    };
    for w in warnings {
        writeln!(err, "warning: {w}")?;
    }
    let metrics = Arc::new(Metrics::default());
    let parts = match CheckEngine::build(
        registry_config,
        args.cache_dir.as_deref(),
        args.cache_ttl,
        &metrics,
    )
    .await
    {
        Ok(e) => e,
        Err(e) => return usage(err, e),
    };
    let settings = Settings {
        default_mode: Mode::Enforce,
        owned_pods: OwnedPods::Check,
        concurrency: args.concurrency.max(1),
        ..Settings::default()
    };
    let mut failing = 0;
    let mut transient = 0;

    if !args.images.is_empty() {
        let deadline = tokio::time::Instant::now() + args.timeout;
        let results = parts
            .checker
            .check_all(
                &args.images,
                &keyring,
                &wanted,
                Context::Cli,
                deadline,
                args.concurrency,
            )
            .await;
        for r in &results {
            match r.class() {
                Some(c) if settings.actions.of(c) == Action::Deny => failing += 1,
                Some(_) => transient += 1,
                None => {}
            }
            match args.format {
                Format::Json => writeln!(out, "{}", json_line(r))?,
                Format::Text => write_text(out, r)?,
                Format::Github => write_github_image(out, r, &settings.actions)?,
            }
        }
    }

    let mut input_errors = 0;
    if !args.paths.is_empty() {
        let read = crate::input::read_all(&args.paths, stdin, args.max_input_bytes);
        let mut survey = manifest_stream::survey(read.inputs).await;
        let mut errors = read.errors;
        errors.append(&mut survey.errors);
        let cluster = InMemoryCluster::new();
        errors.extend(manifests::load_cluster(
            &survey.cluster,
            &args.namespace,
            &cluster,
        ));
        survey.cluster = Vec::new();
        cluster.set_node_platforms(Some(wanted.clone()));
        ci::write_input_errors(out, err, &errors, &read.warnings, args.format)?;
        let engine = Engine::new(
            Arc::clone(&parts.checker),
            Arc::new(cluster),
            Arc::new(keyring),
            settings,
            Arc::clone(&metrics),
        );
        let run = ci::Run {
            engine: &engine,
            default_namespace: &args.namespace,
            timeout: args.timeout,
            concurrency: args.concurrency,
            format: args.format,
        };
        let items = manifest_stream::spawn_stream(&mut survey);
        let tally = ci::check_stream(&run, items, survey.workloads, out, err).await?;
        input_errors = errors.len() + tally.input_errors;
        if tally.objects + tally.input_errors < survey.workloads {
            // Never a silent pass: objects the first pass saw were not all checked.
            let missing = survey.workloads - tally.objects - tally.input_errors;
            writeln!(err, "error: pullcheck: {missing} objects were not checked")?;
            input_errors += 1;
        }
        failing += tally.failing;
        transient += tally.warnings;
        if args.format == Format::Text {
            writeln!(
                out,
                "pullcheck: {} objects, {} images checked ({} other objects skipped): {} failing, {} warnings{}",
                tally.objects,
                tally.images,
                survey.skipped,
                tally.failing,
                tally.warnings,
                if input_errors > 0 { format!(", {input_errors} unreadable inputs") } else { String::new() }
            )?;
        }
    }
    if let Some(disk) = &parts.disk {
        if let Err(e) = disk.save() {
            writeln!(err, "warning: {e}")?;
        }
    }
    Ok(if input_errors > 0 {
        EXIT_USAGE
    } else if failing > 0 || (args.strict && transient > 0) {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    })
}

/// The engine of one `check` run: real registries, an optional disk cache, a memory cache.
pub struct CheckEngine {
    pub checker: Arc<Checker>,
    pub disk: Option<Arc<DiskCache>>,
}

impl CheckEngine {
    pub async fn build(
        registry_config: RegistryConfig,
        cache_dir: Option<&std::path::Path>,
        cache_ttl: Duration,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, String> {
        let config = Arc::new(registry_config.clone());
        let distribution = Arc::new(Distribution::new(registry_config, Arc::clone(metrics))?);
        let (inner, disk): (Arc<dyn Registry>, _) = match cache_dir {
            Some(dir) => {
                let disk = Arc::new(DiskCache::open(dir, distribution.clone(), cache_ttl)?);
                distribution.preload_platforms(disk.known_platforms()).await;
                (disk.clone(), Some(disk))
            }
            None => (distribution, None),
        };
        let cached = CachedRegistry::new(inner, &CacheConfig::default(), Arc::clone(metrics));
        Ok(Self {
            checker: Arc::new(Checker::new(Arc::new(cached), config)),
            disk,
        })
    }
}

fn write_github_image(
    out: &mut dyn Write,
    r: &ImageCheck,
    actions: &crate::engine::policy::Actions,
) -> std::io::Result<()> {
    if let Some(f) = &r.finding {
        let level = if actions.of(f.class) == Action::Deny {
            "error"
        } else {
            "warning"
        };
        let hint = f
            .hint
            .as_ref()
            .map(|h| format!("; fix: {h}"))
            .unwrap_or_default();
        writeln!(
            out,
            "::{level} title=pullcheck {}::{}",
            f.class,
            ci::gh_data(&clip(
                &format!("{}: {}{hint}", clip(&r.image, FIELD_LIMIT), f.message),
                MESSAGE_LIMIT
            ))
        )?;
    }
    Ok(())
}

impl Checker {
    /// A checker over the real registries with a fresh cache.
    pub fn from_config(
        registry_config: RegistryConfig,
        cache: &CacheConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let config = Arc::new(registry_config.clone());
        let distribution = Distribution::new(registry_config, Arc::clone(&metrics))?;
        let cached = CachedRegistry::new(Arc::new(distribution), cache, metrics);
        Ok(Checker::new(Arc::new(cached), config))
    }
}

/// One line of `check --format json`.
pub fn json_line(r: &ImageCheck) -> String {
    let resolved = r.resolved.as_ref();
    let field = |s: &str| clip(s, FIELD_LIMIT).into_owned();
    let sentence = |s: &str| clip(s, MESSAGE_LIMIT).into_owned();
    let value = serde_json::json!({
        "image": field(&r.image),
        "canonical": r.canonical.as_deref().map(field),
        "verdict": r.verdict(),
        "digest": resolved.map(|x| field(&x.digest)),
        "platforms": resolved.map(|x| x.platforms.platforms.iter().map(|p| field(&p.to_string())).collect::<Vec<_>>()).unwrap_or_default(),
        "message": r.finding.as_ref().map(|f| sentence(&f.message)),
        "hint": r.finding.as_ref().and_then(|f| f.hint.as_deref()).map(sentence),
        "missing_platforms": r.missing_platforms.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "credential_source": r.credential_source.as_deref().map(field),
        "stale_age_seconds": r.stale_age.map(|d| d.as_secs_f64()),
        "notes": r.notes.iter().map(|n| sentence(n)).collect::<Vec<_>>(),
    });
    value.to_string()
}

fn write_text(out: &mut dyn Write, r: &ImageCheck) -> std::io::Result<()> {
    let image = clip(&r.image, FIELD_LIMIT);
    match &r.finding {
        None => writeln!(out, "ok    {image}")?,
        Some(f) => writeln!(
            out,
            "FAIL  {image}\n      {}: {}",
            f.class,
            clip(&f.message, MESSAGE_LIMIT)
        )?,
    }
    if let Some(h) = r.finding.as_ref().and_then(|f| f.hint.as_ref()) {
        writeln!(out, "      fix: {}", clip(h, MESSAGE_LIMIT))?;
    }
    if let (Some(c), Some(res)) = (&r.canonical, &r.resolved) {
        let platforms: Vec<String> = res
            .platforms
            .platforms
            .iter()
            .map(ToString::to_string)
            .collect();
        writeln!(
            out,
            "      {c} -> {} ({})",
            res.digest,
            platforms.join(", ")
        )?;
    }
    if !r.missing_platforms.is_empty() {
        let missing: Vec<String> = r
            .missing_platforms
            .iter()
            .map(ToString::to_string)
            .collect();
        writeln!(out, "      note: no variant for {}", missing.join(", "))?;
    }
    for n in &r.notes {
        writeln!(out, "      note: {}", clip(n, MESSAGE_LIMIT))?;
    }
    Ok(())
}
