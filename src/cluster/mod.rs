//! Cluster access: the pull secrets and ServiceAccounts the kubelet would read for a Pod,
//! and the platforms (`kubernetes.io/os` / `kubernetes.io/arch`) of the cluster's Nodes.
//!
//! [`Cluster`] is the small trait the rest of the crate is written against. It has three
//! implementations (`kube`: kube-rs, `nodes`: the Node watch, `memory`: in memory):
//!
//! - [`KubeCluster`]: the real thing over kube-rs. Reads of Secrets / ServiceAccounts go
//!   through a short moka cache (found entries live `ttl`, absent ones only `negative_ttl`,
//!   errors are never cached, concurrent identical reads are coalesced); the Nodes are
//!   followed by a metadata-only watch in the background (kube's `watcher` over
//!   `Api<PartialObjectMeta<Node>>`, the successor of the deprecated `metadata_watcher`).
//! - [`InMemoryCluster`]: the cluster as given in memory. `pullcheck check` runs on it in
//!   production (filled with the Secrets and ServiceAccounts of the manifests it reads);
//!   tests fill it by hand.
//! - [`NoCluster`]: no cluster reachable (`pullcheck serve` outside a cluster): every read
//!   says unavailable.
//!
//! The cluster view of `pullcheck scan` and of the background scan sits beside it:
//! [`view`] (workloads and Pods listed page by page, a Pod's `Failed` events, a Node's
//! `DiskPressure`, live Pods watched), [`events`] (events.k8s.io Events written the way
//! the API server validates them) and [`lease`] (leader election with a Lease, as
//! client-go does it), each with its kube-rs and in-memory implementation.
//!
//! Depends on: [`crate::kubelet`] (Secret types, platforms), [`crate::text`]. Never on
//! `registry` or anything above.
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

pub mod events;
mod kube;
pub mod lease;
mod memory;
mod nodes;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::Secret;

pub use self::kube::{KubeCluster, CONNECT_PROBE_TIMEOUT, DEFAULT_REQUEST_TIMEOUT};
pub use memory::InMemoryCluster;

use crate::kubelet::credentials::{
    DOCKER_CONFIG_JSON_KEY, SECRET_TYPE_DOCKERCFG, SECRET_TYPE_DOCKER_CONFIG_JSON,
};
use crate::kubelet::platform::Platform;
use crate::text::{error_chain, truncate};

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

/// Most bytes of an API server message (or an error chain) quoted in an error.
const MAX_MESSAGE: usize = 300;

/// An error and its sources on one line, at most [`MAX_MESSAGE`] bytes.
pub(super) fn described(err: &dyn std::error::Error) -> String {
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

    /// The distinct `status.nodeInfo.containerRuntimeVersion`s of the cluster's Nodes
    /// (`containerd://2.1.4`), read when asked (`--node-runtime auto`, once at start);
    /// `None` without a cluster or when the Nodes cannot be listed. The default has none.
    async fn node_runtimes(&self) -> Option<Vec<String>> {
        None
    }

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

pub(crate) fn sorted_platforms<'a>(
    it: impl IntoIterator<Item = &'a Platform>,
) -> Option<Vec<Platform>> {
    let set: BTreeSet<Platform> = it.into_iter().cloned().collect();
    if set.is_empty() {
        None
    } else {
        Some(set.into_iter().collect())
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
        Err(self.error(&format!("pull secrets of namespace {namespace}")))
    }

    fn node_platforms(&self) -> Option<Vec<Platform>> {
        None
    }

    fn available(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
