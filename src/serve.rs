//! `pullcheck serve`: wiring of configuration, engine, cluster access, TLS and the HTTP
//! server, with graceful shutdown.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};

use crate::admission::Webhook;
use crate::check::Checker;
use crate::cluster::{Cluster, KubeCluster, NoCluster};
use crate::config::{LogFormat, ServeArgs, ServeConfig};
use crate::metrics::Metrics;
use crate::server::{self, AppState, SHUTDOWN_GRACE};
use crate::tls::{self, CertFiles, CertResolver};

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
    let config = ServeConfig::resolve(&args).map_err(|e| anyhow!(e))?;
    let metrics = Arc::new(Metrics::default());
    let checker =
        Checker::from_config(config.registry.clone(), &config.cache, Arc::clone(&metrics))
            .map_err(|e| anyhow!(e))?;

    let (cluster, status): (Arc<dyn Cluster>, String) = if config.no_cluster {
        let reason = "--no-cluster given".to_string();
        tracing::warn!("no cluster (--no-cluster): pull secrets, ServiceAccounts and node platforms are not checked");
        (
            Arc::new(NoCluster {
                reason: reason.clone(),
            }),
            format!(" (no cluster: {reason})"),
        )
    } else {
        match KubeCluster::connect(config.secret_ttl, config.secret_negative_ttl).await {
            Ok(c) => (Arc::new(c), String::new()),
            Err(reason) => {
                tracing::warn!(
                    %reason,
                    "no Kubernetes cluster reachable: serving without it; pull secrets, ServiceAccounts and node platforms cannot be checked (private images count as unavailable, not denied)"
                );
                (
                    Arc::new(NoCluster {
                        reason: reason.clone(),
                    }),
                    format!(" (no cluster: {reason})"),
                )
            }
        }
    };

    let (node_keyring, notes) = args.registry.keyring().map_err(|e| anyhow!(e))?;
    for note in notes {
        tracing::warn!(%note, "--docker-config");
    }
    let webhook = Arc::new(Webhook::new(
        Arc::new(checker),
        cluster,
        Arc::new(node_keyring),
        config.settings.clone(),
        Arc::clone(&metrics),
    ));
    let state = Arc::new(AppState {
        webhook,
        metrics,
        deadline: config.deadline,
        ready: false.into(),
        status,
    });

    let resolver = match &config.tls {
        Some((cert, key)) => {
            let files = CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            };
            let (key, loaded) = files.load().map_err(|e| anyhow!(e))?;
            let resolver = Arc::new(CertResolver::new(key));
            files.watch(Arc::clone(&resolver), loaded, CERT_POLL);
            tracing::info!(cert = %cert.display(), "serving certificate loaded; re-read when it changes");
            resolver
        }
        None => {
            let names = self_signed_names(&config.listen);
            let pem = crate::certs::self_signed(&names, 365).map_err(|e| anyhow!("{e}"))?;
            tracing::warn!(
                names = %names.join(","),
                "no --tls-cert/--tls-key: serving a SELF-SIGNED certificate generated at start (fine for a try-out; a cluster needs a certificate its caBundle trusts, see certs/)"
            );
            let key = tls::certified_key(pem.cert.as_bytes(), pem.key.as_bytes())
                .map_err(|e| anyhow!(e))?;
            Arc::new(CertResolver::new(key))
        }
    };
    let tls_config = tls::server_config(resolver).map_err(|e| anyhow!(e))?;

    let app = server::router(Arc::clone(&state), config.max_body_bytes);
    let handle = axum_server::Handle::new();
    tokio::spawn(shutdown_on_signal(handle.clone(), Arc::clone(&state)));
    let listening = {
        let handle = handle.clone();
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            if let Some(addr) = handle.listening().await {
                state.ready.store(true, Ordering::Relaxed);
                tracing::info!(%addr, default_mode = %state.webhook.settings.default_mode.as_str(), "pullcheck serving");
            }
        })
    };
    // TCP_NODELAY: an AdmissionReview answer is one small write; Nagle's algorithm would
    // hold it back for the peer's delayed ACK.
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(
        axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls_config)),
    )
    .acceptor(axum_server::accept::NoDelayAcceptor::new());
    axum_server::bind(config.listen)
        .acceptor(acceptor)
        .handle(handle)
        .serve(app.into_make_service())
        .await
        .with_context(|| format!("cannot serve on {}", config.listen))?;
    listening.abort();
    tracing::info!("pullcheck stopped");
    Ok(())
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

async fn shutdown_on_signal(
    handle: axum_server::Handle<std::net::SocketAddr>,
    state: Arc<AppState>,
) {
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
    handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
}
