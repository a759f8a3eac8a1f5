//! [`InMemoryCluster`]: the cluster as given in memory — what `pullcheck check` reads from
//! the manifests (its production use), and what tests set up by hand.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::{sorted_platforms, Cluster, ClusterError, SecretData};
use crate::kubelet::platform::Platform;

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
    /// reads back as `None`, like [`super::KubeCluster`]'s).
    pub fn set_node_platforms(&self, platforms: Option<Vec<Platform>>) {
        self.write().node_platforms = platforms;
    }

    /// While set, every async read returns this error. `node_platforms` keeps answering
    /// what was set (like [`super::KubeCluster`], which keeps the last known Nodes in an outage).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::credentials::{DOCKER_CONFIG_JSON_KEY, SECRET_TYPE_DOCKER_CONFIG_JSON};

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
}
