//! Cluster access: the pull Secrets and ServiceAccounts the kubelet would read for a Pod,
//! and the platforms (`kubernetes.io/os` / `kubernetes.io/arch`) of the cluster's Nodes.
//!
//! [`Cluster`] is the small trait the rest of the crate is written against. It has three
//! implementations:
//!
//! - [`KubeCluster`]: the real thing over kube-rs. Reads of Secrets / ServiceAccounts go
//!   through a short moka cache (found entries live `ttl`, absent ones only `negative_ttl`,
//!   errors are never cached, concurrent identical reads are coalesced); the Nodes are
//!   followed by a metadata-only watch in the background (kube's `watcher` over
//!   `Api<PartialObjectMeta<Node>>`, the successor of the deprecated `metadata_watcher`).
//! - [`InMemoryCluster`]: an in-memory double for tests of the logic.
//! - [`NoCluster`]: no cluster reachable (`pullcheck serve` outside a cluster): every read
//!   says unavailable.
//!
//! Error messages name the resource (kind, namespace, name) and what the API server said;
//! they never contain Secret contents, and [`SecretData`]'s `Debug` prints keys only.
//!
//! # RBAC
//!
//! The minimal rules the webhook's ServiceAccount needs (a `ClusterRole` bound with a
//! `ClusterRoleBinding`, since Pods of every namespace are checked):
//!
//! ```yaml
//! apiVersion: rbac.authorization.k8s.io/v1
//! kind: ClusterRole
//! metadata:
//!   name: pullcheck
//! rules:
//!   # GET one pull Secret by name; LIST the pull Secrets of a namespace (field selector
//!   # `type=kubernetes.io/dockerconfigjson` / `type=kubernetes.io/dockercfg`) to suggest
//!   # one that would work but is not attached.
//!   - apiGroups: [""]
//!     resources: ["secrets"]
//!     verbs: ["get", "list"]
//!   # GET the ServiceAccount of a Pod (template) for its imagePullSecrets.
//!   - apiGroups: [""]
//!     resources: ["serviceaccounts"]
//!     verbs: ["get"]
//!   # LIST + WATCH Nodes (metadata only) for the platforms of the cluster.
//!   - apiGroups: [""]
//!     resources: ["nodes"]
//!     verbs: ["list", "watch"]
//! ```
//!
//! `GET /version` (the start-up probe of [`KubeCluster::connect`]) is granted to every
//! authenticated user by the default `system:public-info-viewer` ClusterRole.
//!
//! Note that `get`/`list` on Secrets lets the webhook read every Secret's contents
//! (a LIST returns `data`); pullcheck only ever lists with the two pull-secret type field
//! selectors, but RBAC cannot restrict a rule to a Secret type. Without the `list` verb
//! only the "secret X would work but is not attached" hint is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Secret, ServiceAccount};
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::{watcher, WatchStreamExt};
use moka::future::Cache;

use crate::kubelet::credentials::{
    DOCKER_CONFIG_JSON_KEY, SECRET_TYPE_DOCKERCFG, SECRET_TYPE_DOCKER_CONFIG_JSON,
};
use crate::kubelet::platform::Platform;
use crate::text::{clip, error_chain, instant_after, truncate};

/// Node label holding the operating system.
pub const LABEL_OS: &str = "kubernetes.io/os";
/// Node label holding the CPU architecture.
pub const LABEL_ARCH: &str = "kubernetes.io/arch";
/// Deprecated node labels still set by some old clusters; read only when the GA ones are missing.
const LABEL_OS_BETA: &str = "beta.kubernetes.io/os";
const LABEL_ARCH_BETA: &str = "beta.kubernetes.io/arch";

/// How long one read (or the pair of LISTs of [`Cluster::pull_secrets_in`]) may take before
/// [`KubeCluster`] reports the API server as unavailable.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of the `GET /version` probe of [`KubeCluster::connect`].
pub const CONNECT_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Most bytes of Secret data each of [`KubeCluster`]'s Secret caches holds.
const SECRET_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Most ServiceAccounts [`KubeCluster`] caches.
const SERVICE_ACCOUNT_CACHE_ENTRIES: u64 = 50_000;
/// Most characters of an API server message quoted in an error.
const MAX_MESSAGE: usize = 300;

// ---------------------------------------------------------------------------------------
// SecretData
// ---------------------------------------------------------------------------------------

/// A Secret as the kubelet reads it: type and decoded data.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretData {
    /// `type` of the Secret (`Opaque` when the API server left it out).
    pub secret_type: String,
    /// `data`, base64-decoded.
    pub data: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for SecretData {
    /// Prints the type and the data keys, never the values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretData")
            .field("secret_type", &self.secret_type)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretData {
    /// `kubernetes.io/dockerconfigjson` with `.dockerconfigjson` = the given JSON.
    pub fn dockerconfigjson(json: &str) -> Self {
        SecretData {
            secret_type: SECRET_TYPE_DOCKER_CONFIG_JSON.to_owned(),
            data: BTreeMap::from([(DOCKER_CONFIG_JSON_KEY.to_owned(), json.as_bytes().to_vec())]),
        }
    }

    /// Convenience: dockerconfigjson with one `auths` entry
    /// `{registry: {auth: base64(user:pass)}}`.
    pub fn for_registry(registry: &str, username: &str, password: &str) -> Self {
        use base64::Engine as _;
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        let json = serde_json::json!({ "auths": { registry: { "auth": auth } } });
        Self::dockerconfigjson(&json.to_string())
    }

    /// Whether the kubelet reads this Secret as pull credentials (its type is
    /// `kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg`).
    pub fn is_pull_secret(&self) -> bool {
        is_pull_secret_type(&self.secret_type)
    }

    /// Rough size in bytes, for cache weights.
    pub fn weight(&self) -> usize {
        self.secret_type.len()
            + self
                .data
                .iter()
                .map(|(k, v)| k.len() + v.len() + 16)
                .sum::<usize>()
            + 64
    }
}

fn is_pull_secret_type(secret_type: &str) -> bool {
    secret_type == SECRET_TYPE_DOCKER_CONFIG_JSON || secret_type == SECRET_TYPE_DOCKERCFG
}

impl From<Secret> for SecretData {
    fn from(secret: Secret) -> Self {
        SecretData {
            secret_type: secret
                .type_
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "Opaque".to_owned()),
            // `stringData` is write-only: the API server merges it into `data` and never
            // returns it, and the kubelet reads `data` only.
            data: secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why the cluster could not answer. `detail` names the resource and what the API server
/// (or the connection) said; it never holds Secret contents.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The API server is unreachable, answered 5xx / 429, or did not answer in time:
    /// transient, the same read may work a moment later.
    #[error("Kubernetes API unavailable: {detail}")]
    Unavailable { detail: String },
    /// 403: pullcheck's ServiceAccount lacks an RBAC rule (see the module docs).
    #[error("Kubernetes API forbids it (RBAC): {detail}")]
    Forbidden { detail: String },
    /// 401, or the client could not obtain credentials: pullcheck's own credentials are
    /// missing, expired or refused.
    #[error("Kubernetes API refused pullcheck's credentials: {detail}")]
    Unauthorized { detail: String },
    /// Any other answer: another 4xx, or a body that could not be decoded.
    #[error("unexpected answer from the Kubernetes API: {detail}")]
    Unexpected { detail: String },
}

impl ClusterError {
    /// Whether the same read may well work on a retry (only [`ClusterError::Unavailable`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, ClusterError::Unavailable { .. })
    }

    /// The `detail` of any variant.
    pub fn detail(&self) -> &str {
        match self {
            ClusterError::Unavailable { detail }
            | ClusterError::Forbidden { detail }
            | ClusterError::Unauthorized { detail }
            | ClusterError::Unexpected { detail } => detail,
        }
    }
}

/// Maps a kube-rs error of a request about `what` ("Secret ns/name", …) to a
/// [`ClusterError`]. Only API server messages (`Status.message`) and connection errors are
/// quoted; a decoding error is reported by position, never by the text that failed (that
/// text could be Secret data).
fn classify(what: &str, err: kube::Error) -> ClusterError {
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

/// An error and its sources on one line, at most [`MAX_MESSAGE`] bytes.
fn described(err: &dyn std::error::Error) -> String {
    truncate(&error_chain(err), MAX_MESSAGE)
}

// ---------------------------------------------------------------------------------------
// The trait
// ---------------------------------------------------------------------------------------

/// What pullcheck reads from the cluster.
#[async_trait::async_trait]
pub trait Cluster: Send + Sync {
    /// A Secret by name; Ok(None) when it does not exist (404).
    /// Shared: a caller may keep it to notice when the Secret changes.
    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<SecretData>>, ClusterError>;

    /// The imagePullSecrets names of a ServiceAccount; Ok(None) when the ServiceAccount
    /// does not exist.
    async fn service_account_pull_secrets(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Vec<String>>, ClusterError>;

    /// Every Secret of type kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg in the
    /// namespace, sorted by name (for "secret X has credentials for this registry but is not
    /// attached").
    async fn pull_secrets_in(
        &self,
        namespace: &str,
    ) -> Result<Vec<(String, SecretData)>, ClusterError>;

    /// Distinct platforms of the cluster's nodes from labels kubernetes.io/os +
    /// kubernetes.io/arch (sorted, deduplicated, as `Platform::new(os, arch, None)`); None
    /// while unknown (no watch yet / no cluster / no node carries the labels).
    fn node_platforms(&self) -> Option<Vec<Platform>>;

    /// Whether the cluster is reachable at all (false for the "no cluster" implementation).
    fn available(&self) -> bool;

    /// Until when [`Cluster::service_account_pull_secrets`] and [`Cluster::secret`] keep
    /// giving the answers the caller got from them: the earliest expiry of those cached
    /// answers, provided each is still the one the caller read (`service_account`: its name
    /// and the names it gave, `None` when absent; `secrets`: (name, Secret or `None` when
    /// absent)). `None` makes no promise (ask again every time); so does the default.
    async fn answers_hold_until(
        &self,
        _namespace: &str,
        _service_account: Option<(&str, Option<&[String]>)>,
        _secrets: &[(String, Option<Arc<SecretData>>)],
    ) -> Option<Instant> {
        None
    }
}

// ---------------------------------------------------------------------------------------
// Name checks
// ---------------------------------------------------------------------------------------

/// A DNS-1123 subdomain (names of Secrets and ServiceAccounts): anything else cannot exist,
/// so it is answered "absent" without a request (and never reaches a URL path).
fn valid_object_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A DNS-1123 label (namespace names).
fn valid_namespace(ns: &str) -> bool {
    let b = ns.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

fn sorted_platforms<'a>(it: impl IntoIterator<Item = &'a Platform>) -> Option<Vec<Platform>> {
    let set: BTreeSet<Platform> = it.into_iter().cloned().collect();
    if set.is_empty() {
        None
    } else {
        Some(set.into_iter().collect())
    }
}

// ---------------------------------------------------------------------------------------
// InMemoryCluster
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct InMemoryState {
    secrets: BTreeMap<(String, String), Arc<SecretData>>,
    service_accounts: BTreeMap<(String, String), Vec<String>>,
    node_platforms: Option<Vec<Platform>>,
    failure: Option<ClusterError>,
}

/// In-memory double for tests of the logic. Shared behind an `Arc`, it can be changed
/// while in use.
#[derive(Default)]
pub struct InMemoryCluster {
    state: RwLock<InMemoryState>,
}

impl InMemoryCluster {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, InMemoryState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, InMemoryState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn put_secret(&self, namespace: &str, name: &str, secret: SecretData) {
        self.write()
            .secrets
            .insert((namespace.to_owned(), name.to_owned()), Arc::new(secret));
    }

    pub fn delete_secret(&self, namespace: &str, name: &str) {
        self.write()
            .secrets
            .remove(&(namespace.to_owned(), name.to_owned()));
    }

    pub fn put_service_account(&self, namespace: &str, name: &str, pull_secrets: &[&str]) {
        self.write().service_accounts.insert(
            (namespace.to_owned(), name.to_owned()),
            pull_secrets.iter().map(|s| (*s).to_owned()).collect(),
        );
    }

    /// `None`: unknown. The platforms are returned sorted and deduplicated (an empty list
    /// reads back as `None`, like [`KubeCluster`]'s).
    pub fn set_node_platforms(&self, platforms: Option<Vec<Platform>>) {
        self.write().node_platforms = platforms;
    }

    /// While set, every async read returns this error. `node_platforms` keeps answering
    /// what was set (like [`KubeCluster`], which keeps the last known Nodes in an outage).
    pub fn fail_with(&self, error: Option<ClusterError>) {
        self.write().failure = error;
    }
}

#[async_trait::async_trait]
impl Cluster for InMemoryCluster {
    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<SecretData>>, ClusterError> {
        let state = self.read();
        if let Some(e) = &state.failure {
            return Err(e.clone());
        }
        Ok(state
            .secrets
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned())
    }

    async fn service_account_pull_secrets(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Vec<String>>, ClusterError> {
        let state = self.read();
        if let Some(e) = &state.failure {
            return Err(e.clone());
        }
        Ok(state
            .service_accounts
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned())
    }

    async fn pull_secrets_in(
        &self,
        namespace: &str,
    ) -> Result<Vec<(String, SecretData)>, ClusterError> {
        let state = self.read();
        if let Some(e) = &state.failure {
            return Err(e.clone());
        }
        Ok(state
            .secrets
            .iter()
            .filter(|((ns, _), s)| ns == namespace && s.is_pull_secret())
            .map(|((_, name), s)| (name.clone(), SecretData::clone(s)))
            .collect())
    }

    fn node_platforms(&self) -> Option<Vec<Platform>> {
        self.read()
            .node_platforms
            .as_ref()
            .and_then(sorted_platforms)
    }

    fn available(&self) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------------------
// NoCluster
// ---------------------------------------------------------------------------------------

/// No cluster reachable: every read says unavailable; node_platforms None; available() false.
#[derive(Clone, Debug)]
pub struct NoCluster {
    pub reason: String,
}

impl NoCluster {
    fn error(&self, what: &str) -> ClusterError {
        ClusterError::Unavailable {
            detail: format!("{what}: no Kubernetes cluster ({})", self.reason),
        }
    }
}

#[async_trait::async_trait]
impl Cluster for NoCluster {
    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<SecretData>>, ClusterError> {
        Err(self.error(&format!("Secret {namespace}/{name}")))
    }

    async fn service_account_pull_secrets(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Vec<String>>, ClusterError> {
        Err(self.error(&format!("ServiceAccount {namespace}/{name}")))
    }

    async fn pull_secrets_in(
        &self,
        namespace: &str,
    ) -> Result<Vec<(String, SecretData)>, ClusterError> {
        Err(self.error(&format!("pull Secrets of namespace {namespace}")))
    }

    fn node_platforms(&self) -> Option<Vec<Platform>> {
        None
    }

    fn available(&self) -> bool {
        false
    }
}

// ---------------------------------------------------------------------------------------
// KubeCluster
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

/// What the Node watch has seen: node name → (os, arch) when labelled.
#[derive(Default)]
struct NodeMap {
    /// Set once the first LIST has completed.
    listed: bool,
    nodes: BTreeMap<String, Option<Platform>>,
    /// The (re)list in progress.
    relist: Option<BTreeMap<String, Option<Platform>>>,
    /// Labelled nodes per platform, kept with `nodes` (read at every review).
    counts: BTreeMap<Platform, usize>,
}

type NodeMeta = PartialObjectMeta<Node>;

fn node_entry(node: &NodeMeta) -> Option<(String, Option<Platform>)> {
    let name = node.metadata.name.clone()?;
    let labels = node.metadata.labels.as_ref();
    let label = |ga: &str, beta: &str| {
        labels.and_then(|l| {
            l.get(ga)
                .or_else(|| l.get(beta))
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        })
    };
    let platform = match (
        label(LABEL_OS, LABEL_OS_BETA),
        label(LABEL_ARCH, LABEL_ARCH_BETA),
    ) {
        (Some(os), Some(arch)) => Some(Platform::new(os, arch, None)),
        _ => None,
    };
    Some((name, platform))
}

impl NodeMap {
    fn apply(&mut self, event: watcher::Event<NodeMeta>) {
        match event {
            watcher::Event::Init => self.relist = Some(BTreeMap::new()),
            watcher::Event::InitApply(node) => {
                if let Some((name, platform)) = node_entry(&node) {
                    self.relist
                        .get_or_insert_with(BTreeMap::new)
                        .insert(name, platform);
                }
            }
            watcher::Event::InitDone => {
                self.nodes = self.relist.take().unwrap_or_default();
                self.counts.clear();
                for p in self.nodes.values().flatten() {
                    *self.counts.entry(p.clone()).or_default() += 1;
                }
                self.listed = true;
            }
            watcher::Event::Apply(node) => {
                if let Some((name, platform)) = node_entry(&node) {
                    if let Some(p) = &platform {
                        *self.counts.entry(p.clone()).or_default() += 1;
                    }
                    if let Some(old) = self.nodes.insert(name, platform) {
                        self.uncount(old);
                    }
                }
            }
            watcher::Event::Delete(node) => {
                if let Some(old) = node
                    .metadata
                    .name
                    .as_ref()
                    .and_then(|n| self.nodes.remove(n))
                {
                    self.uncount(old);
                }
            }
        }
    }

    fn uncount(&mut self, platform: Option<Platform>) {
        let Some(p) = platform else { return };
        if let Some(n) = self.counts.get_mut(&p) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&p);
            }
        }
    }

    fn platforms(&self) -> Option<Vec<Platform>> {
        if !self.listed || self.counts.is_empty() {
            return None;
        }
        Some(self.counts.keys().cloned().collect())
    }
}

/// Follows the Nodes (metadata only) until aborted. Errors are retried by kube's default
/// backoff; the last known Nodes stay in place meanwhile.
async fn watch_nodes(client: kube::Client, nodes: Arc<RwLock<NodeMap>>) {
    // `Api<PartialObjectMeta<Node>>` sends metadata-only LIST/WATCH requests (what the
    // deprecated `metadata_watcher` did).
    let api: Api<NodeMeta> = Api::all(client);
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut failing = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                if failing {
                    tracing::info!("Node watch recovered");
                    failing = false;
                }
                let done = matches!(event, watcher::Event::InitDone);
                let mut map = nodes.write().unwrap_or_else(|e| e.into_inner());
                map.apply(event);
                if done {
                    tracing::debug!(
                        nodes = map.nodes.len(),
                        platforms = ?map.platforms(),
                        "Node list complete"
                    );
                }
            }
            Err(e) => {
                let text = described(&e);
                if failing {
                    tracing::debug!(error = %text, "Node watch still failing");
                } else {
                    tracing::warn!(
                        error = %text,
                        "Node watch failed (needs RBAC list+watch on nodes); retrying with backoff"
                    );
                    failing = true;
                }
            }
        }
    }
}

/// Runs `fut` (a request about `what`) within `timeout`, mapping errors.
async fn timed<T>(
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
    /// [`NoCluster`] and logs the reason.
    pub async fn connect(ttl: Duration, negative_ttl: Duration) -> Result<Self, String> {
        // kube's rustls connector needs a process-wide provider; "already installed" is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut config =
            match tokio::time::timeout(CONNECT_PROBE_TIMEOUT, kube::Config::infer()).await {
                Ok(Ok(config)) => config,
                Ok(Err(e)) => {
                    return Err(format!(
                        "no Kubernetes client configuration: {}",
                        described(&e)
                    ))
                }
                Err(_) => {
                    return Err(format!(
                        "reading the Kubernetes client configuration took over {} s",
                        CONNECT_PROBE_TIMEOUT.as_secs()
                    ))
                }
            };
        config.default_retry = false;
        let url = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).map_err(|e| {
            format!(
                "cannot build a Kubernetes client for {url}: {}",
                described(&e)
            )
        })?;
        let what = format!("GET {url} /version");
        let info = timed(&what, CONNECT_PROBE_TIMEOUT, client.apiserver_version())
            .await
            .map_err(|e| format!("Kubernetes API server not reachable: {e}"))?;
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

    fn p(os: &str, arch: &str) -> Platform {
        Platform::new(os, arch, None)
    }

    #[tokio::test]
    async fn in_memory_secrets_and_service_accounts() {
        let c = InMemoryCluster::new();
        c.put_secret("a", "reg", SecretData::for_registry("r.example", "u", "p"));
        c.put_secret(
            "a",
            "opaque",
            SecretData {
                secret_type: "Opaque".into(),
                data: BTreeMap::new(),
            },
        );
        c.put_secret("b", "other", SecretData::dockerconfigjson("{}"));
        c.put_service_account("a", "default", &["reg", "missing"]);

        assert_eq!(c.secret("a", "nope").await, Ok(None));
        let s = c.secret("a", "reg").await.unwrap().unwrap();
        assert_eq!(s.secret_type, SECRET_TYPE_DOCKER_CONFIG_JSON);
        let json: serde_json::Value =
            serde_json::from_slice(&s.data[DOCKER_CONFIG_JSON_KEY]).unwrap();
        assert_eq!(json["auths"]["r.example"]["auth"], "dTpw"); // base64("u:p")

        let names: Vec<String> = c
            .pull_secrets_in("a")
            .await
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["reg"]);
        assert_eq!(
            c.service_account_pull_secrets("a", "default").await,
            Ok(Some(vec!["reg".to_owned(), "missing".to_owned()]))
        );
        assert_eq!(
            c.service_account_pull_secrets("b", "default").await,
            Ok(None)
        );

        c.delete_secret("a", "reg");
        assert_eq!(c.secret("a", "reg").await, Ok(None));
        assert!(c.available());
    }

    #[tokio::test]
    async fn in_memory_failure_and_platforms() {
        let c = Arc::new(InMemoryCluster::new());
        assert_eq!(c.node_platforms(), None);
        c.set_node_platforms(Some(vec![
            p("linux", "arm64"),
            p("linux", "amd64"),
            p("linux", "arm64"),
        ]));
        assert_eq!(
            c.node_platforms(),
            Some(vec![p("linux", "amd64"), p("linux", "arm64")])
        );
        c.set_node_platforms(Some(vec![]));
        assert_eq!(c.node_platforms(), None);

        let err = ClusterError::Forbidden {
            detail: "Secret a/b: HTTP 403".into(),
        };
        c.fail_with(Some(err.clone()));
        let shared: Arc<dyn Cluster> = c.clone();
        assert_eq!(shared.secret("a", "b").await, Err(err.clone()));
        assert_eq!(shared.pull_secrets_in("a").await, Err(err.clone()));
        assert_eq!(
            shared.service_account_pull_secrets("a", "default").await,
            Err(err)
        );
        c.fail_with(None);
        assert_eq!(shared.secret("a", "b").await, Ok(None));
    }

    #[tokio::test]
    async fn no_cluster_is_unavailable() {
        let c = NoCluster {
            reason: "no kubeconfig".into(),
        };
        let err = c.secret("ns", "s").await.unwrap_err();
        assert!(err.is_transient());
        assert!(err.to_string().contains("Secret ns/s"), "{err}");
        assert!(err.to_string().contains("no kubeconfig"), "{err}");
        assert!(c.pull_secrets_in("ns").await.is_err());
        assert!(c
            .service_account_pull_secrets("ns", "default")
            .await
            .is_err());
        assert_eq!(c.node_platforms(), None);
        assert!(!c.available());
    }

    #[test]
    fn secret_debug_prints_keys_only() {
        let s = SecretData::for_registry("r.example", "user", "hunter2");
        let text = format!("{s:?}");
        assert!(text.contains(".dockerconfigjson"), "{text}");
        assert!(
            !text.contains("auths")
                && !text.contains("aHVudGVyMg")
                && !text.contains("dXNlcjpodW50ZXIy"),
            "{text}"
        );
    }

    #[test]
    fn secret_from_api_object() {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "x", "namespace": "y"},
            "data": {".dockercfg": "e30="}
        }))
        .unwrap();
        let d = SecretData::from(secret);
        assert_eq!(d.secret_type, "Opaque");
        assert_eq!(d.data[".dockercfg"], b"{}");
        assert!(!d.is_pull_secret());
    }

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
    fn node_map_follows_events() {
        fn node(name: &str, labels: &[(&str, &str)], rv: &str) -> NodeMeta {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                "metadata": {
                    "name": name, "resourceVersion": rv,
                    "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
                }
            }))
            .unwrap()
        }
        let mut m = NodeMap::default();
        assert_eq!(m.platforms(), None);
        m.apply(watcher::Event::Init);
        m.apply(watcher::Event::InitApply(node(
            "a",
            &[(LABEL_OS, "linux"), (LABEL_ARCH, "arm64")],
            "1",
        )));
        m.apply(watcher::Event::InitApply(node(
            "b",
            &[(LABEL_OS_BETA, "linux"), (LABEL_ARCH_BETA, "amd64")],
            "2",
        )));
        m.apply(watcher::Event::InitApply(node("c", &[], "3")));
        assert_eq!(m.platforms(), None, "not listed until InitDone");
        m.apply(watcher::Event::InitDone);
        assert_eq!(
            m.platforms(),
            Some(vec![p("linux", "amd64"), p("linux", "arm64")])
        );
        m.apply(watcher::Event::Apply(node(
            "d",
            &[(LABEL_OS, "windows"), (LABEL_ARCH, "amd64")],
            "4",
        )));
        m.apply(watcher::Event::Delete(node("a", &[], "5")));
        assert_eq!(
            m.platforms(),
            Some(vec![p("linux", "amd64"), p("windows", "amd64")])
        );
        // Relabelled: the old platform goes with its last node; a platform stays while
        // another node still has it.
        m.apply(watcher::Event::Apply(node(
            "b",
            &[(LABEL_OS, "linux"), (LABEL_ARCH, "arm64")],
            "7",
        )));
        m.apply(watcher::Event::Apply(node(
            "f",
            &[(LABEL_OS, "windows"), (LABEL_ARCH, "amd64")],
            "8",
        )));
        m.apply(watcher::Event::Delete(node("d", &[], "9")));
        assert_eq!(
            m.platforms(),
            Some(vec![p("linux", "arm64"), p("windows", "amd64")])
        );
        m.apply(watcher::Event::Apply(node("b", &[], "10")));
        assert_eq!(m.platforms(), Some(vec![p("windows", "amd64")]));
        // A relist replaces everything.
        m.apply(watcher::Event::Init);
        m.apply(watcher::Event::InitApply(node(
            "e",
            &[(LABEL_OS, "linux"), (LABEL_ARCH, "s390x")],
            "6",
        )));
        assert_eq!(m.platforms(), Some(vec![p("windows", "amd64")]));
        m.apply(watcher::Event::InitDone);
        assert_eq!(m.platforms(), Some(vec![p("linux", "s390x")]));
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
