//! Resolving an image at its registry: does the manifest exist for these credentials, what
//! is its digest, and which platforms does it carry.
//!
//! [`Registry`] is the seam: [`Distribution`] speaks the distribution API over HTTP (one
//! [`client::RegistryClient`] per registry and credential set: `auth` and `token` for its
//! authorization, `redirect` for the redirects it follows, `http` for transport and the
//! outbound host policy, `hosts` and `names` for which hosts it may contact and track,
//! `tags` for suggestions, `ratelimit` for the budgets registries report), tests use
//! doubles. In front of it: [`cache::CachedRegistry`]
//! (results in memory, coalesced, with the last good answer) and, for CI,
//! [`disk::DiskCache`] (good results on disk between runs). [`error::RegistryError`] says
//! what went wrong, naming the host; the engine turns it into a finding.
//!
//! Depends on: [`crate::kubelet`] (references, credentials, manifest formats, platforms),
//! [`crate::metrics`], [`crate::text`], [`crate::files`]. Never on `cluster` or anything above.

pub mod auth;
pub mod cache;
pub mod client;
pub mod disk;
pub mod error;
pub mod hosts;
pub mod http;
pub mod names;
pub mod ratelimit;
pub mod redirect;
pub mod tags;
mod token;
pub mod trust;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;
use serde::{Deserialize, Serialize};

use crate::kubelet::credentials::{Credential, CredentialProviders};
use crate::kubelet::manifest::{self, ManifestKind};
use crate::kubelet::platform::Platform;
use crate::kubelet::platform_match::PlatformMatcher;
use crate::kubelet::reference::ImageRef;
use crate::metrics::Metrics;
use client::{Head, RegistryClient, Shared, Tags, CONFIG_LIMIT};

pub use error::{AuthProblem, RegistryError, TimeoutLimit, Unreachable};
use http::{HostPolicy, HttpClients, TransportConfig};
use names::TrackedHosts;

/// What an image reference resolved to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    /// Digest of the manifest or index the reference points at.
    pub digest: String,
    /// Platforms of the image: every runnable entry of an index, or the config's platform.
    pub platforms: Arc<ImagePlatforms>,
}

/// The platforms behind a digest; content-addressed, so cached for good.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePlatforms {
    /// `true` for an index / manifest list (the kubelet picks an entry by platform and fails
    /// the pull when none matches); `false` for a single manifest (pulled whatever its
    /// platform; a wrong one fails at start with `exec format error`).
    pub is_index: bool,
    pub platforms: Vec<Platform>,
    /// An index: the manifest digest of each of `platforms` (empty when it cannot be
    /// fetched), whose size [`Registry::image_size`] tells.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<String>,
    /// A single manifest: its compressed size (config + layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// Resolves images; the real implementation is [`Distribution`].
#[async_trait]
pub trait Registry: Send + Sync {
    /// Resolves `image` with one credential (`None`: anonymous), as one attempt of the
    /// kubelet's try-each-credential loop.
    async fn resolve(
        &self,
        image: &ImageRef,
        credential: Option<&Credential>,
    ) -> Result<Resolved, RegistryError>;

    /// The compressed size (config + layers) of the image manifest `digest` (an entry of
    /// an index `resolve` answered) in `image`'s repository: one manifest GET per digest,
    /// then kept (content-addressed). `Ok(None)` when this registry cannot tell.
    async fn image_size(
        &self,
        image: &ImageRef,
        credential: Option<&Credential>,
        digest: &str,
    ) -> Result<Option<u64>, RegistryError> {
        let _ = (image, credential, digest);
        Ok(None)
    }
}

/// Settings for one registry, by the domain users write in image references
/// (`docker.io`, `registry.example.com:5000`).
#[derive(Clone, Debug, Default)]
pub struct HostSettings {
    /// Speak plain HTTP (containerd's `hosts.toml` with an `http://` server).
    pub plain_http: bool,
    /// Extra CA certificates (PEM) trusted for this registry only.
    pub ca_pems: Vec<Vec<u8>>,
    /// Nodes pull from this registry with their own credentials (credential provider
    /// plugins for ECR/GCR/ACR, a node `config.json`): an unauthorized answer without pull
    /// secrets is then not a finding.
    pub node_credentials: bool,
}

/// Everything the registry side is configured with.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    pub hosts: HashMap<String, HostSettings>,
    /// Registry domains matching one of these globs (`*.corp.internal:5000`) speak plain
    /// HTTP too; unlike `hosts`, matching ones are not tracked by name (see [`names`]).
    pub plain_http_globs: Vec<String>,
    /// CA certificates (PEM) trusted for every registry, on top of the system roots.
    pub global_ca_pems: Vec<Vec<u8>>,
    pub policy: HostPolicy,
    pub connect_timeout: Duration,
    /// Limit for one HTTP request (the check's own deadline is usually shorter).
    pub request_timeout: Duration,
    /// Pages of 1,000 tags read at most when suggesting tags.
    pub max_tag_pages: usize,
    /// Bytes of bearer tokens kept (registry × credential set × repository).
    pub token_cache_bytes: u64,
    /// Bytes of `/v2/` challenges kept (one per registry).
    pub challenge_cache_bytes: u64,
    /// Registries with their own metric label and pooled connections, besides the
    /// configured ones (see [`names`]).
    pub tracked_registries: usize,
    /// Most platform entries remembered for digests (an index with 12 platforms counts 12,
    /// a platform manifest's size 1).
    pub platform_cache_entries: u64,
    pub user_agent: String,
    /// The nodes' kubelet credential providers (`--image-credential-provider-config`).
    pub credential_providers: Arc<CredentialProviders>,
    /// How the nodes pick a platform from an image index (from their runtime and its
    /// version, `--node-runtime`).
    pub platform_matcher: PlatformMatcher,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            hosts: HashMap::new(),
            plain_http_globs: Vec::new(),
            global_ca_pems: Vec::new(),
            policy: HostPolicy::default(),
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(8),
            max_tag_pages: 10,
            token_cache_bytes: 16 << 20,
            challenge_cache_bytes: 4 << 20,
            tracked_registries: names::DEFAULT_CAPACITY,
            platform_cache_entries: 50_000,
            user_agent: concat!("pullcheck/", env!("CARGO_PKG_VERSION")).to_string(),
            credential_providers: Arc::default(),
            platform_matcher: PlatformMatcher::DEFAULT,
        }
    }
}

impl RegistryConfig {
    /// Settings for a registry domain; defaults when none are configured.
    pub fn host(&self, domain: &str) -> HostSettings {
        self.hosts.get(domain).cloned().unwrap_or_default()
    }

    pub fn host_mut(&mut self, domain: &str) -> &mut HostSettings {
        self.hosts.entry(domain.to_string()).or_default()
    }

    /// Why the nodes may pull `image` with credentials of their own, so that the registry's
    /// "unauthorized" to pullcheck is no finding (said as a note), or `None`:
    /// - a kubelet credential provider whose `matchImages` match the image: the kubelet
    ///   offers its credentials after any pull secrets' (it tries every matching credential);
    /// - a registry marked `nodeCredentials`, when no pull secret matched.
    pub fn node_pull(&self, image: &ImageRef, pull_secrets_matched: bool) -> Option<String> {
        let name = image.name();
        if let Some(m) = self.credential_providers.matching(&name) {
            let mut note = format!(
                "nodes pull {name} with credential provider {:?} (matchImages {:?})",
                m.provider.name, m.glob
            );
            if !m.provider.required_annotations.is_empty() {
                note.push_str(&format!(
                    " when the Pod's ServiceAccount has the annotation {}",
                    m.provider.required_annotations.join(", ")
                ));
            }
            note.push_str("; access was not verified");
            return Some(note);
        }
        (!pull_secrets_matched && self.host(image.domain()).node_credentials).then(|| {
            format!(
                "nodes pull from {} with their own credentials; access was not verified",
                image.domain()
            )
        })
    }
}

/// What the content-addressed cache keeps for a digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Content {
    /// Its platforms (and a single manifest's size).
    Platforms(String),
    /// The size of a platform manifest of an index (kept as an `ImagePlatforms` with only
    /// `size`, so both share one budget).
    Size(String),
}

/// The distribution API over HTTP.
pub struct Distribution {
    config: Arc<RegistryConfig>,
    http: HttpClients,
    shared: Arc<Shared>,
    /// Digest → platforms, digest → size. Content-addressed and verified, so shared by
    /// every tenant; weighed by platform entries (a hostile index may list thousands), a
    /// size by one.
    platforms: Cache<Content, Arc<ImagePlatforms>>,
}

impl Distribution {
    pub fn new(config: RegistryConfig, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let transport = TransportConfig {
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            user_agent: config.user_agent.clone(),
            policy: Arc::new(config.policy.clone()),
        };
        let host_cas: HashMap<String, Vec<Vec<u8>>> = config
            .hosts
            .iter()
            .map(|(domain, s)| (api_host(domain).to_string(), s.ca_pems.clone()))
            .collect();
        let http = HttpClients::build(&transport, &config.global_ca_pems, &host_cas)?;
        let configured = config.hosts.keys().map(|d| api_host(d).to_string());
        let shared = Arc::new(Shared::new(
            transport,
            Arc::new(TrackedHosts::new(configured, config.tracked_registries)),
            metrics,
            config.max_tag_pages,
            config.token_cache_bytes,
            config.challenge_cache_bytes,
        ));
        Ok(Self {
            platforms: Cache::builder()
                .max_capacity(config.platform_cache_entries)
                .weigher(|_, p: &Arc<ImagePlatforms>| {
                    u32::try_from(p.platforms.len().max(1)).unwrap_or(u32::MAX)
                })
                .build(),
            config: Arc::new(config),
            http,
            shared,
        })
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The rate-limit budgets the registries report.
    pub fn budgets(&self) -> Arc<ratelimit::Budgets> {
        Arc::clone(&self.shared.budgets)
    }

    /// Remembers platforms of digests known from elsewhere (the CI disk cache), so their
    /// manifests are not fetched again.
    pub async fn preload_platforms(
        &self,
        known: impl IntoIterator<Item = (String, Arc<ImagePlatforms>)>,
    ) {
        for (digest, platforms) in known {
            self.platforms
                .insert(Content::Platforms(digest), platforms)
                .await;
        }
    }

    /// A client for one resolution: cheap to build, everything worth keeping (challenges,
    /// tokens, connections) is shared and bounded.
    fn client(
        &self,
        image: &ImageRef,
        credential: Option<&Credential>,
    ) -> Result<RegistryClient, RegistryError> {
        let host = image.registry_host();
        let domain = image.domain();
        let plain_http = self.config.hosts.get(domain).is_some_and(|s| s.plain_http)
            || self
                .config
                .plain_http_globs
                .iter()
                .any(|g| crate::text::glob_match(g, &domain.to_ascii_lowercase()));
        let pooled = self.shared.hosts.track(host);
        RegistryClient::new(
            host,
            plain_http,
            self.http.for_host(host, pooled).clone(),
            credential.cloned(),
            Arc::clone(&self.shared),
        )
    }

    /// A HEAD found nothing: tell a missing repository from a missing tag or digest, and
    /// suggest tags.
    async fn explain_not_found(&self, client: &RegistryClient, image: &ImageRef) -> RegistryError {
        let registry = image.domain().to_string();
        let repository = image.path().to_string();
        let listed = client.list_tags(image.path()).await;
        if let Ok(Tags::Missing) = listed {
            return RegistryError::RepositoryNotFound {
                registry,
                repository,
            };
        }
        if let Some(digest) = image.digest() {
            return RegistryError::DigestNotFound {
                registry,
                repository,
                digest: digest.to_string(),
            };
        }
        let tag = image.tag().unwrap_or("latest").to_string();
        let closest = match listed {
            Ok(Tags::Listed(all)) => tags::closest(&tag, &all, 3),
            _ => Vec::new(),
        };
        RegistryError::TagNotFound {
            registry,
            repository,
            tag,
            closest,
        }
    }

    async fn fetch_platforms(
        &self,
        client: &RegistryClient,
        repository: &str,
        digest: &str,
    ) -> Result<ImagePlatforms, RegistryError> {
        let (content_type, body) = client.get_manifest(repository, digest).await?;
        let invalid = |detail: String| RegistryError::Unavailable {
            host: String::new(),
            cause: Unreachable::InvalidResponse,
            detail,
        };
        match manifest::parse_manifest(content_type.as_deref(), &body)
            .map_err(|e| invalid(e.to_string()))?
        {
            ManifestKind::Index {
                platforms,
                manifests,
            } => Ok(ImagePlatforms {
                is_index: true,
                platforms,
                manifests,
                size: None,
            }),
            ManifestKind::Image {
                config_digest,
                size,
                ..
            } => {
                let config = client
                    .get_blob(repository, &config_digest, CONFIG_LIMIT)
                    .await?;
                let p =
                    manifest::platform_from_config(&config).map_err(|e| invalid(e.to_string()))?;
                Ok(ImagePlatforms {
                    is_index: false,
                    platforms: vec![p],
                    manifests: Vec::new(),
                    size: Some(size),
                })
            }
        }
    }
}

/// The host contacted for a registry domain.
pub fn api_host(domain: &str) -> &str {
    if domain == "docker.io" {
        "registry-1.docker.io"
    } else {
        domain
    }
}

#[async_trait]
impl Registry for Distribution {
    async fn resolve(
        &self,
        image: &ImageRef,
        credential: Option<&Credential>,
    ) -> Result<Resolved, RegistryError> {
        let client = self.client(image, credential)?;
        let repository = image.path();
        let reference = image.manifest_reference();
        let digest = match client.head_manifest(repository, reference).await? {
            Head::NotFound => return Err(self.explain_not_found(&client, image).await),
            Head::Found { digest, .. } => match (digest, image.digest()) {
                (Some(found), Some(wanted)) if found != wanted => {
                    // Same algorithm and a different digest is a registry that lies.
                    if found.split(':').next() == wanted.split(':').next() {
                        return Err(RegistryError::Unavailable {
                            host: image.registry_host().to_string(),
                            cause: Unreachable::InvalidResponse,
                            detail: format!("asked for {wanted}, answered {found}"),
                        });
                    }
                    wanted.to_string()
                }
                (Some(found), _) => found,
                (None, Some(wanted)) => wanted.to_string(),
                (None, None) => {
                    // No Docker-Content-Digest: the digest is that of the content.
                    let (_, body) = client.get_manifest(repository, reference).await?;
                    client::sha256_digest(&body)
                }
            },
        };
        if !digest.starts_with("sha") || !digest.contains(':') {
            return Err(RegistryError::Unavailable {
                host: image.registry_host().to_string(),
                cause: Unreachable::InvalidResponse,
                detail: "Docker-Content-Digest is not a digest".into(),
            });
        }
        let metrics = &self.shared.metrics;
        let key = Content::Platforms(digest.clone());
        let platforms = match self.platforms.get(&key).await {
            Some(p) => {
                metrics.cache_event("platforms", "hit");
                p
            }
            None => {
                metrics.cache_event("platforms", "miss");
                self.platforms
                    .try_get_with(key, async {
                        self.fetch_platforms(&client, repository, &digest)
                            .await
                            .map(Arc::new)
                    })
                    .await
                    .map_err(|e| with_host((*e).clone(), image.registry_host()))?
            }
        };
        Ok(Resolved { digest, platforms })
    }

    async fn image_size(
        &self,
        image: &ImageRef,
        credential: Option<&Credential>,
        digest: &str,
    ) -> Result<Option<u64>, RegistryError> {
        let metrics = &self.shared.metrics;
        // A manifest resolved by its own digest knows its size already.
        let known = match self.platforms.get(&Content::Size(digest.to_owned())).await {
            Some(p) => Some(p),
            None => self
                .platforms
                .get(&Content::Platforms(digest.to_owned()))
                .await
                .filter(|p| !p.is_index),
        };
        if let Some(p) = known {
            metrics.cache_event("sizes", "hit");
            return Ok(p.size);
        }
        metrics.cache_event("sizes", "miss");
        let client = self.client(image, credential)?;
        let repository = image.path();
        let sized = self
            .platforms
            .try_get_with(Content::Size(digest.to_owned()), async {
                let (content_type, body) = client.get_manifest(repository, digest).await?;
                let size = match manifest::parse_manifest(content_type.as_deref(), &body) {
                    Ok(ManifestKind::Image { size, .. }) => Some(size),
                    // An index in an index: containerd walks on; its size is not one image's.
                    Ok(ManifestKind::Index { .. }) => None,
                    Err(e) => {
                        return Err(RegistryError::Unavailable {
                            host: String::new(),
                            cause: Unreachable::InvalidResponse,
                            detail: e.to_string(),
                        })
                    }
                };
                Ok(Arc::new(ImagePlatforms {
                    size,
                    ..ImagePlatforms::default()
                }))
            })
            .await
            .map_err(|e| with_host((*e).clone(), image.registry_host()))?;
        Ok(sized.size)
    }
}

fn with_host(err: RegistryError, host: &str) -> RegistryError {
    match err {
        RegistryError::Unavailable {
            host: h,
            cause,
            detail,
        } if h.is_empty() => RegistryError::Unavailable {
            host: host.to_string(),
            cause,
            detail,
        },
        other => other,
    }
}
