//! Serving certificate: loaded from PEM files and re-read when they change (Kubernetes
//! updates a mounted Secret by swapping symlinks; we compare contents, so any kind of
//! replacement is seen), or generated self-signed when none is given. With `--client-ca`,
//! every client must present a certificate chaining to that CA (re-read the same way).

use anyhow::{bail, Context as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

/// Hands the current certificate to every new TLS connection.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    pub fn new(key: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Arc::new(key)),
        }
    }

    pub fn set(&self, key: CertifiedKey) {
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(key);
        }
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| Arc::clone(&c))
    }
}

/// Parses a certificate chain and private key from PEM.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<CertifiedKey> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .context("certificate PEM")?;
    if certs.is_empty() {
        bail!("certificate file holds no PEM certificate");
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .context("key PEM")?
        .context("key file holds no PEM private key")?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(certs, key, &provider).context("certificate and key")
}

/// A rustls server configuration offering HTTP/2 and HTTP/1.1 with `resolver`'s certificate,
/// requiring a client certificate that `client_roots` vouch for when given.
pub fn server_config(
    resolver: Arc<CertResolver>,
    client_roots: Option<Arc<RootCertStore>>,
) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("TLS configuration")?;
    let builder = match client_roots {
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .build()
                .context("client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The CA certificates (PEM) that client certificates must chain to.
pub fn client_roots(pem: &[u8], path: &Path) -> anyhow::Result<Arc<RootCertStore>> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .with_context(|| format!("client CA {}", path.display()))?;
    if certs.is_empty() {
        bail!("client CA {} holds no PEM certificate", path.display());
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .with_context(|| format!("client CA {}", path.display()))?;
    }
    Ok(Arc::new(roots))
}

/// The TLS configuration every new connection gets: the serving certificate (its resolver
/// follows the files) and, with `--client-ca`, the client CA, replaced when its file changes.
#[derive(Debug)]
pub struct ServerTls {
    resolver: Arc<CertResolver>,
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl ServerTls {
    pub fn new(
        resolver: Arc<CertResolver>,
        client_roots: Option<Arc<RootCertStore>>,
    ) -> anyhow::Result<Self> {
        let config = server_config(Arc::clone(&resolver), client_roots)?;
        Ok(Self {
            resolver,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// The configuration for a connection accepted now.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Requires client certificates from these roots for connections accepted from now on.
    pub fn set_client_roots(&self, roots: Arc<RootCertStore>) -> anyhow::Result<()> {
        let config = Arc::new(server_config(Arc::clone(&self.resolver), Some(roots))?);
        match self.current.write() {
            Ok(mut c) => *c = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        Ok(())
    }

    /// Re-reads the client CA file every `interval`; a new CA is used for new connections
    /// once it parses (a half-written or broken file keeps the current one, and is logged).
    pub fn watch_client_ca(
        self: Arc<Self>,
        path: PathBuf,
        mut loaded: Vec<u8>,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let p = path.clone();
                let Ok(Ok(now)) = tokio::task::spawn_blocking(move || std::fs::read(p)).await
                else {
                    continue;
                };
                if now == loaded {
                    continue;
                }
                match client_roots(&now, &path).and_then(|roots| self.set_client_roots(roots)) {
                    Ok(()) => {
                        loaded = now;
                        tracing::info!(client_ca = %path.display(), "client CA reloaded");
                    }
                    Err(error) => {
                        let error = format!("{error:#}");
                        tracing::warn!(%error, "new client CA not usable yet; keeping the current one");
                    }
                }
            }
        })
    }
}

/// Certificate and key file contents as last read.
type Contents = (Vec<u8>, Vec<u8>);

/// Files to watch.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    fn read(&self) -> anyhow::Result<Contents> {
        let read =
            |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
        Ok((read(&self.cert)?, read(&self.key)?))
    }

    /// Loads the files once.
    pub fn load(&self) -> anyhow::Result<(CertifiedKey, Contents)> {
        let (cert, key) = self.read()?;
        Ok((certified_key(&cert, &key)?, (cert, key)))
    }

    /// Re-reads the files every `interval`; installs a new certificate when their contents
    /// change and parse; keeps the old one (and logs) when they do not parse (a half-written
    /// update is retried on the next tick).
    pub fn watch(
        self,
        resolver: Arc<CertResolver>,
        mut loaded: Contents,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let files = self.clone();
                let Ok(Ok(now)) = tokio::task::spawn_blocking(move || files.read()).await else {
                    continue;
                };
                if now == loaded {
                    continue;
                }
                match certified_key(&now.0, &now.1) {
                    Ok(key) => {
                        resolver.set(key);
                        loaded = now;
                        tracing::info!(cert = %self.cert.display(), "serving certificate reloaded");
                    }
                    Err(error) => {
                        let error = format!("{error:#}");
                        tracing::warn!(%error, cert = %self.cert.display(), "new certificate not usable yet; keeping the current one");
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage() {
        assert!(certified_key(b"nope", b"nope").is_err());
        assert!(certified_key(b"", b"").is_err());
    }
}
