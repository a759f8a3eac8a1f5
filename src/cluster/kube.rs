//! [`KubeCluster`]: the cluster over kube-rs. Reads of Secrets and ServiceAccounts go
//! through a short cache (found entries live `ttl`, absent ones `negative_ttl`, errors are
//! never cached, concurrent identical reads are coalesced); the Nodes are followed by the
//! watch of [`super::nodes`]. Errors name the resource and quote only what the API server
//! said, never a Secret's contents.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use k8s_openapi::api::core::v1::{Node, Secret, ServiceAccount};
use kube::api::{Api, ListParams};
use moka::future::Cache;

use super::nodes::{watch_nodes, NodeMap};
use super::{described, Cluster, ClusterError, SecretData, MAX_MESSAGE};
use crate::kubelet::credentials::{SECRET_TYPE_DOCKERCFG, SECRET_TYPE_DOCKER_CONFIG_JSON};
use crate::kubelet::platform::Platform;
use crate::text::{clip, instant_after};

/// How long one read (or the pair of LISTs of [`Cluster::pull_secrets_in`]) may take before
/// [`KubeCluster`] reports the API server as unavailable.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of the `GET /version` probe of [`KubeCluster::connect`].
pub const CONNECT_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Most bytes of Secret data each of [`KubeCluster`]'s Secret caches holds.
const SECRET_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Most ServiceAccounts [`KubeCluster`] caches.
const SERVICE_ACCOUNT_CACHE_ENTRIES: u64 = 50_000;
/// Maps a kube-rs error of a request about `what` ("Secret ns/name", …) to a
/// [`ClusterError`]. Only API server messages (`Status.message`) and connection errors are
/// quoted; a decoding error is reported by position, never by the text that failed (that
/// text could be Secret data).
pub(super) fn classify(what: &str, err: kube::Error) -> ClusterError {
    match err {
        kube::Error::Api(status) => {
            let code = status.code;
            let mut detail = format!("{what}: HTTP {code}");
            if !status.reason.is_empty() {
                detail.push(' ');
                detail.push_str(&clip(&status.reason, MAX_MESSAGE));
            }
            if !status.message.is_empty() {
                detail.push_str(": ");
                detail.push_str(&clip(&status.message, MAX_MESSAGE));
            }
            match code {
                401 => ClusterError::Unauthorized { detail },
                403 => ClusterError::Forbidden { detail },
                408 | 429 | 500..=599 => ClusterError::Unavailable { detail },
                _ => ClusterError::Unexpected { detail },
            }
        }
        kube::Error::SerdeError(e) => ClusterError::Unexpected {
            detail: format!(
                "{what}: the API server's answer could not be decoded ({} error at line {} column {})",
                match e.classify() {
                    serde_json::error::Category::Io => "I/O",
                    serde_json::error::Category::Syntax => "syntax",
                    serde_json::error::Category::Data => "data",
                    serde_json::error::Category::Eof => "end of input",
                },
                e.line(),
                e.column()
            ),
        },
        kube::Error::FromUtf8(_) => ClusterError::Unexpected {
            detail: format!("{what}: the API server's answer is not UTF-8"),
        },
        kube::Error::Auth(e) => ClusterError::Unauthorized {
            detail: format!("{what}: {}", described(&e)),
        },
        kube::Error::BuildRequest(e) => ClusterError::Unexpected {
            detail: format!("{what}: {}", described(&e)),
        },
        // Connection refused, DNS, TLS, client-side timeouts, broken streams, …
        other => ClusterError::Unavailable {
            detail: format!("{what}: {}", described(&other)),
        },
    }
}

// ---------------------------------------------------------------------------------------

/// A DNS-1123 subdomain (names of Secrets and ServiceAccounts): anything else cannot exist,
/// so it is answered "absent" without a request (and never reaches a URL path).
pub(super) fn valid_object_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A DNS-1123 label (namespace names).
pub(super) fn valid_namespace(ns: &str) -> bool {
    let b = ns.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

// ---------------------------------------------------------------------------------------

/// Found entries live `found`, absent ones `absent`.
/// A read answer (`None`: absent) and the moment it stops being reused: `ttl` after the
/// read when found, `negative_ttl` when absent.
#[derive(Clone)]
struct Fetched<T> {
    value: Option<T>,
    expires: Instant,
}

impl<T> Fetched<T> {
    fn new(value: Option<T>, ttl: Duration, negative_ttl: Duration) -> Self {
        let keep = if value.is_some() { ttl } else { negative_ttl };
        Fetched {
            value,
            expires: instant_after(keep),
        }
    }
}

struct FetchedExpiry;

impl<K, T> moka::Expiry<K, Fetched<T>> for FetchedExpiry {
    fn expire_after_create(&self, _: &K, v: &Fetched<T>, now: Instant) -> Option<Duration> {
        Some(v.expires.saturating_duration_since(now))
    }
}

/// Runs `fut` (a request about `what`) within `timeout`, mapping errors.
/// Nodes per page when listing them in full (for their runtime).
const NODE_PAGE: u32 = 100;

pub(super) async fn timed<T>(
    what: &str,
    timeout: Duration,
    fut: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(what, e)),
        Err(_) => Err(ClusterError::Unavailable {
            detail: format!("{what}: no answer within {} ms", timeout.as_millis()),
        }),
    }
}

fn unarc(e: Arc<ClusterError>) -> ClusterError {
    Arc::try_unwrap(e).unwrap_or_else(|shared| (*shared).clone())
}

/// The real thing, over kube-rs.
pub struct KubeCluster {
    client: kube::Client,
    /// By `namespace/name` (neither can hold a '/').
    secrets: Cache<String, Fetched<Arc<SecretData>>>,
    service_accounts: Cache<String, Fetched<Vec<String>>>,
    pull_secrets: Cache<String, Arc<Vec<(String, SecretData)>>>,
    nodes: Arc<RwLock<NodeMap>>,
    watch_task: Option<tokio::task::JoinHandle<()>>,
    request_timeout: Duration,
    ttl: Duration,
    negative_ttl: Duration,
}

impl fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeCluster")
            .field("request_timeout", &self.request_timeout)
            .field("node_platforms", &self.node_platforms())
            .finish_non_exhaustive()
    }
}

impl Drop for KubeCluster {
    fn drop(&mut self) {
        if let Some(task) = &self.watch_task {
            task.abort();
        }
    }
}

impl KubeCluster {
    /// Uses an existing client; starts the Node metadata watch in the background
    /// (`tokio::spawn`; outside a tokio runtime no watch is started and
    /// [`Cluster::node_platforms`] stays `None`). Reads of Secrets / ServiceAccounts go
    /// through a short cache: found entries live `ttl`, absent ones (404) only
    /// `negative_ttl`; errors are not cached; concurrent identical reads are coalesced.
    /// Each read gives up after [`DEFAULT_REQUEST_TIMEOUT`] (see
    /// [`KubeCluster::with_request_timeout`]).
    ///
    /// Note: a client built with kube's defaults retries 429/503/504 with backoff (up to 15
    /// times); the request timeout bounds that. [`KubeCluster::connect`] builds its client
    /// with `default_retry = false`.
    pub fn new(client: kube::Client, ttl: Duration, negative_ttl: Duration) -> Self {
        let secrets = Cache::builder()
            .max_capacity(SECRET_CACHE_BYTES)
            .weigher(|k: &String, v: &Fetched<Arc<SecretData>>| {
                let w = k.len() + v.value.as_deref().map_or(64, SecretData::weight);
                u32::try_from(w).unwrap_or(u32::MAX)
            })
            .expire_after(FetchedExpiry)
            .build();
        let service_accounts = Cache::builder()
            .max_capacity(SERVICE_ACCOUNT_CACHE_ENTRIES)
            .expire_after(FetchedExpiry)
            .build();
        let pull_secrets = Cache::builder()
            .max_capacity(SECRET_CACHE_BYTES)
            .weigher(|k: &String, v: &Arc<Vec<(String, SecretData)>>| {
                let w = k.len() + v.iter().map(|(n, s)| n.len() + s.weight()).sum::<usize>() + 64;
                u32::try_from(w).unwrap_or(u32::MAX)
            })
            .time_to_live(ttl)
            .build();
        let nodes = Arc::new(RwLock::new(NodeMap::default()));
        let watch_task = match tokio::runtime::Handle::try_current() {
            Ok(handle) => Some(handle.spawn(watch_nodes(client.clone(), nodes.clone()))),
            Err(_) => {
                tracing::warn!("no tokio runtime: the Node watch is not started");
                None
            }
        };
        KubeCluster {
            client,
            secrets,
            service_accounts,
            pull_secrets,
            nodes,
            watch_task,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            ttl,
            negative_ttl,
        }
    }

    /// The client it reads with (the cluster view, Events and the Lease use it too).
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// How long one read may take before it is reported as [`ClusterError::Unavailable`]
    /// (default [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The client's configuration as `kube::Client::try_default()` infers it (KUBECONFIG /
    /// `~/.kube/config`, then in-cluster), without kube's built-in retry of 429/503/504 (an
    /// admission webhook must answer within its deadline, so a failing API server is
    /// reported, not retried for minutes); then a quick probe (`GET /version` with a 3 s
    /// timeout). Err(reason) when there is no reachable cluster: the caller then serves with
    /// [`super::NoCluster`] and logs the reason.
    pub async fn connect(ttl: Duration, negative_ttl: Duration) -> anyhow::Result<Self> {
        // kube's rustls connector needs a process-wide provider; "already installed" is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut config =
            match tokio::time::timeout(CONNECT_PROBE_TIMEOUT, kube::Config::infer()).await {
                Ok(Ok(config)) => config,
                Ok(Err(e)) => bail!("no Kubernetes client configuration: {}", described(&e)),
                Err(_) => bail!(
                    "reading the Kubernetes client configuration took over {} s",
                    CONNECT_PROBE_TIMEOUT.as_secs()
                ),
            };
        config.default_retry = false;
        let url = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).map_err(|e| {
            anyhow!(
                "cannot build a Kubernetes client for {url}: {}",
                described(&e)
            )
        })?;
        let what = format!("GET {url} /version");
        let info = timed(&what, CONNECT_PROBE_TIMEOUT, client.apiserver_version())
            .await
            .context("Kubernetes API server not reachable")?;
        tracing::info!(server = %url, version = %info.git_version, "connected to the Kubernetes API server");
        Ok(Self::new(client, ttl, negative_ttl))
    }
}

#[async_trait::async_trait]
impl Cluster for KubeCluster {
    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<SecretData>>, ClusterError> {
        if !valid_namespace(namespace) || !valid_object_name(name) {
            return Ok(None);
        }
        let key = format!("{namespace}/{name}");
        // Cached: no client clone, no future to set up.
        if let Some(hit) = self.secrets.get(&key).await {
            return Ok(hit.value);
        }
        let client = self.client.clone();
        let (timeout, ttl, negative_ttl) = (self.request_timeout, self.ttl, self.negative_ttl);
        let (ns, n) = (namespace.to_owned(), name.to_owned());
        self.secrets
            .try_get_with(key, async move {
                let api: Api<Secret> = Api::namespaced(client, &ns);
                let what = format!("Secret {ns}/{n}");
                let found = timed(&what, timeout, api.get_opt(&n)).await?;
                let value = found.map(|s| Arc::new(SecretData::from(s)));
                Ok(Fetched::new(value, ttl, negative_ttl))
            })
            .await
            .map(|f| f.value)
            .map_err(unarc)
    }

    async fn service_account_pull_secrets(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Vec<String>>, ClusterError> {
        if !valid_namespace(namespace) || !valid_object_name(name) {
            return Ok(None);
        }
        let key = format!("{namespace}/{name}");
        if let Some(hit) = self.service_accounts.get(&key).await {
            return Ok(hit.value);
        }
        let client = self.client.clone();
        let (timeout, ttl, negative_ttl) = (self.request_timeout, self.ttl, self.negative_ttl);
        let (ns, n) = (namespace.to_owned(), name.to_owned());
        self.service_accounts
            .try_get_with(key, async move {
                let api: Api<ServiceAccount> = Api::namespaced(client, &ns);
                let what = format!("ServiceAccount {ns}/{n}");
                let found = timed(&what, timeout, api.get_opt(&n)).await?;
                let value = found.map(|sa| {
                    sa.image_pull_secrets
                        .unwrap_or_default()
                        .into_iter()
                        .map(|r| r.name)
                        .filter(|n| !n.is_empty())
                        .collect()
                });
                Ok(Fetched::new(value, ttl, negative_ttl))
            })
            .await
            .map(|f| f.value)
            .map_err(unarc)
    }

    async fn pull_secrets_in(
        &self,
        namespace: &str,
    ) -> Result<Vec<(String, SecretData)>, ClusterError> {
        if !valid_namespace(namespace) {
            return Ok(Vec::new());
        }
        let client = self.client.clone();
        let timeout = self.request_timeout;
        let ns = namespace.to_owned();
        let list = self
            .pull_secrets
            .try_get_with(ns.clone(), async move {
                let api: Api<Secret> = Api::namespaced(client, &ns);
                let json_lp =
                    ListParams::default().fields(&format!("type={SECRET_TYPE_DOCKER_CONFIG_JSON}"));
                let cfg_lp = ListParams::default().fields(&format!("type={SECRET_TYPE_DOCKERCFG}"));
                let json_what =
                    format!("Secrets of type {SECRET_TYPE_DOCKER_CONFIG_JSON} in namespace {ns}");
                let cfg_what = format!("Secrets of type {SECRET_TYPE_DOCKERCFG} in namespace {ns}");
                let (json, cfg) = futures::try_join!(
                    timed(&json_what, timeout, api.list(&json_lp)),
                    timed(&cfg_what, timeout, api.list(&cfg_lp)),
                )?;
                // Filter again: the field selector is the server's job, the types are ours.
                let by_name: BTreeMap<String, SecretData> = json
                    .items
                    .into_iter()
                    .chain(cfg.items)
                    .filter_map(|s| {
                        let name = s.metadata.name.clone()?;
                        let data = SecretData::from(s);
                        data.is_pull_secret().then_some((name, data))
                    })
                    .collect();
                Ok(Arc::new(by_name.into_iter().collect::<Vec<_>>()))
            })
            .await
            .map_err(unarc)?;
        Ok(list.as_ref().clone())
    }

    async fn answers_hold_until(
        &self,
        namespace: &str,
        service_account: Option<(&str, Option<&[String]>)>,
        secrets: &[(String, Option<Arc<SecretData>>)],
    ) -> Option<Instant> {
        let mut until: Option<Instant> = None;
        let mut earliest = |t: Instant| until = Some(until.map_or(t, |u| u.min(t)));
        // An entry re-read since the caller's read may hold other data for longer: only the
        // very answers the caller got count.
        if let Some((sa, names)) = service_account {
            let hit = self
                .service_accounts
                .get(&format!("{namespace}/{sa}"))
                .await?;
            if hit.value.as_deref() != names {
                return None;
            }
            earliest(hit.expires);
        }
        for (name, read) in secrets {
            let hit = self.secrets.get(&format!("{namespace}/{name}")).await?;
            let same = match (&hit.value, read) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                _ => false,
            };
            if !same {
                return None;
            }
            earliest(hit.expires);
        }
        until
    }

    async fn node_runtimes(&self) -> Option<Vec<String>> {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut seen = BTreeSet::new();
        let mut params = ListParams::default().limit(NODE_PAGE);
        loop {
            let page = match timed("Nodes", self.request_timeout, api.list(&params)).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e.detail(), "cannot list Nodes for their container runtime");
                    return None;
                }
            };
            for node in &page.items {
                let info = node.status.as_ref().and_then(|s| s.node_info.as_ref());
                // A cluster of distinct runtimes is as undecided with 16 as with more.
                if let (Some(info), true) = (info, seen.len() < 16) {
                    seen.insert(clip(&info.container_runtime_version, 128).into_owned());
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        Some(seen.into_iter().collect())
    }

    fn node_platforms(&self) -> Option<Vec<Platform>> {
        self.nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .platforms()
    }

    fn available(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_exist() {
        assert!(valid_object_name("regcred"));
        assert!(valid_object_name("my.reg-cred1"));
        assert!(!valid_object_name(""));
        assert!(!valid_object_name("../nodes"));
        assert!(!valid_object_name("a/b"));
        assert!(!valid_object_name("Upper"));
        assert!(!valid_object_name("-x"));
        assert!(valid_namespace("kube-system"));
        assert!(!valid_namespace("a.b"));
        assert!(!valid_namespace(&"a".repeat(64)));
    }

    #[test]
    fn api_errors_are_classified() {
        let status = |code: u16, reason: &str| {
            kube::Error::Api(
                kube::core::Status::failure(&format!("secrets \"s\" is {reason}"), reason)
                    .with_code(code)
                    .boxed(),
            )
        };
        assert!(matches!(
            classify("Secret a/s", status(403, "Forbidden")),
            ClusterError::Forbidden { .. }
        ));
        assert!(matches!(
            classify("Secret a/s", status(401, "Unauthorized")),
            ClusterError::Unauthorized { .. }
        ));
        assert!(matches!(
            classify("Secret a/s", status(503, "ServiceUnavailable")),
            ClusterError::Unavailable { .. }
        ));
        assert!(matches!(
            classify("Secret a/s", status(429, "TooManyRequests")),
            ClusterError::Unavailable { .. }
        ));
        assert!(matches!(
            classify("Secret a/s", status(422, "Invalid")),
            ClusterError::Unexpected { .. }
        ));
        let e = classify("Secret a/s", status(403, "Forbidden"));
        assert!(
            e.to_string().contains("Secret a/s: HTTP 403 Forbidden"),
            "{e}"
        );

        // A decoding error never quotes the body.
        let bad = serde_json::from_str::<Secret>(r#"{"data": {"k": "not base64 hunter2!"}}"#)
            .unwrap_err();
        let e = classify("Secret a/s", kube::Error::SerdeError(bad));
        assert!(matches!(e, ClusterError::Unexpected { .. }));
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
