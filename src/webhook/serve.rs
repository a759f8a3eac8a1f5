//! `pullcheck serve`: wiring of configuration, engine, cluster access, TLS and the HTTP
//! server, with graceful shutdown.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::config::assemble::{self, Assembled, ClusterWiring, Wiring};
use crate::config::Limits;
use crate::config::{ClusterConfig, LogFormat, ServeArgs, ServeConfig};
use crate::engine::scan::{Background, LeaseConfig, ScanMetrics, ScanRegistry, Scanner, Throttle};
use crate::metrics::Metrics;
use crate::webhook::http::{self, AppState, SHUTDOWN_GRACE};
use crate::webhook::listener::Listener;
use crate::webhook::tls::{self, CertFiles, CertResolver, ServerTls};
use crate::webhook::ConnectionMetrics;

/// How often the certificate files are compared with what is served.
const CERT_POLL: Duration = Duration::from_secs(2);

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PULLCHECK_LOG")
        .unwrap_or_else(|_| "info".into());
    // Colours only on a terminal: a Pod's log is read by collectors, not by a TTY.
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let config = ServeConfig::resolve(&args)?;
    let mut metrics = Metrics::default();
    let connection_metrics = ConnectionMetrics::register(metrics.registry_mut());
    let scanning = !config.scan.interval.is_zero() && config.cluster != ClusterConfig::Disabled;
    let scan_metrics = scanning.then(|| {
        Arc::new(ScanMetrics::register(
            metrics.registry_mut(),
            config.scan.max_series,
        ))
    });
    let wiring = Wiring::new(ClusterWiring::Configured(config.cluster), Arc::new(metrics));
    let assembled = assemble::engine(&config.engine, wiring).await?;
    for note in &assembled.warnings {
        tracing::warn!(%note, "--docker-config");
    }
    let metrics = Arc::clone(&assembled.engine.metrics);
    let background = match scan_metrics {
        Some(m) => background_scan(&assembled, &config, m),
        None => {
            tracing::info!("background scan off (--scan-interval 0 or --no-cluster)");
            None
        }
    };
    let state = Arc::new(AppState::new(
        assembled.engine,
        metrics,
        config.deadline,
        assembled.cluster_status,
        config.max_body_bytes,
    ));

    let resolver = match &config.tls {
        Some((cert, key)) => {
            let files = CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            };
            let (key, loaded) = files.load()?;
            let resolver = Arc::new(CertResolver::new(key));
            files.watch(Arc::clone(&resolver), loaded, CERT_POLL);
            tracing::info!(cert = %cert.display(), "serving certificate loaded; re-read when it changes");
            resolver
        }
        None => {
            let names = self_signed_names(&config.listen);
            let pem = super::certs::self_signed(&names, 365)?;
            tracing::warn!(
                names = %names.join(","),
                "no --tls-cert/--tls-key: serving a SELF-SIGNED certificate generated at start (fine for a try-out; a cluster needs a certificate its caBundle trusts, see certs/)"
            );
            let key = tls::certified_key(pem.cert.as_bytes(), pem.key.as_bytes())?;
            Arc::new(CertResolver::new(key))
        }
    };
    let client_roots = match &config.client_ca {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read client CA {}", path.display()))?;
            let roots = tls::client_roots(&pem, path)?;
            Some((path.clone(), pem, roots))
        }
        None => None,
    };
    let server_tls = Arc::new(ServerTls::new(
        resolver,
        client_roots.as_ref().map(|(_, _, r)| Arc::clone(r)),
    )?);
    if let Some((path, pem, _)) = client_roots {
        tracing::info!(client_ca = %path.display(), "client certificates required (--client-ca); re-read when it changes");
        if config.metrics_listen.is_none() {
            tracing::warn!("--client-ca without --metrics-listen: kubelet probes and Prometheus have no client certificate and cannot reach /healthz, /readyz, /metrics");
        }
        Arc::clone(&server_tls).watch_client_ca(path, pem, CERT_POLL);
    }
    raise_open_file_limit(&config.limits);

    let (stop, stopped) = watch::channel(false);
    let webhook = Listener::bind(
        "webhook",
        config.listen,
        Some(server_tls),
        http::router(Arc::clone(&state)),
        config.limits,
        connection_metrics.clone(),
    )
    .await
    .with_context(|| format!("cannot serve on {}", config.listen))?;
    let probes = match config.metrics_listen {
        Some(addr) => Some(
            Listener::bind(
                "metrics",
                addr,
                None,
                http::probe_router(Arc::clone(&state)),
                config.limits.small(),
                connection_metrics,
            )
            .await
            .with_context(|| format!("cannot serve metrics on {addr}"))?,
        ),
        None => None,
    };
    state.ready.store(true, Ordering::Relaxed);
    tracing::info!(
        addr = %webhook.local_addr().unwrap_or(config.listen),
        metrics = ?probes.as_ref().and_then(|p| p.local_addr().ok()),
        default_mode = %state.engine.settings.default_mode.as_str(),
        max_connections = config.limits.max_connections,
        idle_timeout_s = config.limits.idle_timeout.as_secs_f64(),
        "pullcheck serving"
    );
    let background = background.map(|b| tokio::spawn(b.run(stopped.clone())));
    tokio::spawn(shutdown_on_signal(stop, Arc::clone(&state)));
    // The metrics and probes listener outlives the webhook's drain: /readyz keeps saying
    // "not ready" while in-flight reviews finish.
    let (stop_probes, probes_stopped) = watch::channel(false);
    let probes = probes.map(|p| tokio::spawn(p.serve(probes_stopped, Duration::from_secs(1))));
    webhook.serve(stopped, SHUTDOWN_GRACE).await;
    if let Some(b) = background {
        // Releases the Lease, so another replica takes over at once.
        let _ = tokio::time::timeout(Duration::from_secs(5), b).await;
    }
    let _ = stop_probes.send(true);
    if let Some(p) = probes {
        let _ = p.await;
    }
    tracing::info!("pullcheck stopped");
    Ok(())
}

/// Name of the Lease the replicas elect the scanning one with.
pub const SCAN_LEASE: &str = "pullcheck-scan";

/// The background scan, when there is a cluster: the Lease in `POD_NAMESPACE` (else the
/// client's namespace) held as `POD_NAME` (else the host name).
fn background_scan(
    assembled: &Assembled,
    config: &ServeConfig,
    metrics: Arc<ScanMetrics>,
) -> Option<Background> {
    let Some(view) = assembled.view.clone() else {
        tracing::info!("background scan off: no cluster");
        return None;
    };
    let namespace = std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| view.default_namespace().to_owned());
    let identity = std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "pullcheck".to_owned());
    let throttle = Arc::new(Throttle::new(config.scan.registry));
    let per_scan = Arc::new(ScanRegistry::per_scan(
        Arc::clone(&assembled.registry),
        Arc::clone(&throttle),
    ));
    // Diagnoses between scans: a burst of Pods of one Deployment asks once.
    let fresh = Arc::new(ScanRegistry::fresh(
        Arc::clone(&assembled.registry),
        throttle,
        Duration::from_secs(10),
    ));
    let view = Arc::new(view);
    let run = crate::engine::scan::Settings::default();
    let scanner = Scanner::new(
        assembled.sibling(per_scan.clone(), &config.engine),
        per_scan,
        view.clone(),
        run.clone(),
    );
    let live = Scanner::new(
        assembled.sibling(fresh.clone(), &config.engine),
        fresh,
        view.clone(),
        run,
    );
    Some(Background {
        scanner: Arc::new(scanner),
        live: Arc::new(live),
        sink: view.clone(),
        leases: view,
        metrics,
        interval: config.scan.interval,
        lease: LeaseConfig {
            namespace,
            name: SCAN_LEASE.to_owned(),
            identity,
            timing: Default::default(),
        },
        event_min_interval: config.scan.interval.min(Duration::from_secs(600)),
    })
}

/// Raises the soft open-file limit to the hard one (as Go programs do at start: container
/// runtimes often set a soft limit of 1024), and says when it is still below what the
/// connection limit needs.
fn raise_open_file_limit(limits: &Limits) {
    // Connections of both listeners, plus the process's own files and outbound connections.
    let needed = limits.max_connections + limits.small().max_connections + 256;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < needed as u64 => tracing::warn!(
            open_file_limit = limit,
            max_connections = limits.max_connections,
            "the open-file limit is below maxConnections + 320: accepting fails before the connection limit is reached; lower --max-connections or raise the limit"
        ),
        Ok(_) => {}
        Err(error) => tracing::debug!(%error, "cannot read or raise the open-file limit"),
    }
}

/// Names of the self-signed certificate: loopback, the host name, and the listen address.
fn self_signed_names(listen: &std::net::SocketAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            names.push(h.to_string());
        }
    }
    let ip = listen.ip().to_string();
    if !listen.ip().is_unspecified() && !names.contains(&ip) {
        names.push(ip);
    }
    names
}

async fn shutdown_on_signal(stop: watch::Sender<bool>, state: Arc<AppState>) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    state.ready.store(false, Ordering::Relaxed);
    tracing::info!(
        grace_s = SHUTDOWN_GRACE.as_secs(),
        "shutting down: finishing in-flight reviews"
    );
    let _ = stop.send(true);
}
