//! [`KubeView`]: the cluster view over kube-rs. Lists are paginated ([`LIST_PAGE_SIZE`]
//! objects a request, the API server's `continue` tokens), decoded leanly (see
//! [`super::decode`]), and ReplicaSets and Jobs can be listed metadata-only
//! (`PartialObjectMetadataList`: their owners decide whether their template matters). Live
//! Pods are followed by kube's `watcher` with the field selector [`super::LIVE_PODS`].

use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Node};
use kube::api::{Api, ListParams};
use kube::core::Request;
use kube::runtime::{watcher, WatchStreamExt};

use super::decode::{ListOf, MetaItem, PodItem, TemplateItem};
use super::{plural, ClusterView, NodeHealth, Page, PodChange, PullEvent, Shape, LIVE_PODS};
use crate::cluster::kube::{timed, valid_namespace, valid_object_name};
use crate::cluster::{described, ClusterError};
use crate::kubelet::pull_failure::event_error;
use crate::kubelet::workload::WorkloadKind;
use crate::text::{truncate, MESSAGE_LIMIT};

/// Objects per list request: kube's and client-go's informers use 500 too.
pub const LIST_PAGE_SIZE: u32 = 500;

/// How long one list page, one event list or one Node read may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The cluster view (and Event writer, and Lease holder) over kube-rs.
#[derive(Clone)]
pub struct KubeView {
    pub(in crate::cluster) client: kube::Client,
    pub(in crate::cluster) timeout: Duration,
    page_size: u32,
}

impl std::fmt::Debug for KubeView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeView")
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl KubeView {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            timeout: REQUEST_TIMEOUT,
            page_size: LIST_PAGE_SIZE,
        }
    }

    /// The namespace of the client's configuration (in a Pod: its own).
    pub fn default_namespace(&self) -> &str {
        self.client.default_namespace()
    }

    /// Objects per list request (at least 1).
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }
}

/// `/apis/apps/v1/namespaces/<ns>/deployments`, `/api/v1/pods`, …
fn url_path(kind: WorkloadKind, namespace: Option<&str>) -> String {
    let base = match super::api_version(kind) {
        "v1" => "/api/v1".to_owned(),
        gv => format!("/apis/{gv}"),
    };
    match namespace {
        Some(ns) => format!("{base}/namespaces/{ns}/{}", plural(kind)),
        None => format!("{base}/{}", plural(kind)),
    }
}

fn what(kind: WorkloadKind, namespace: Option<&str>, shape: Shape) -> String {
    let shape = match shape {
        Shape::Full => "",
        Shape::Metadata => " (metadata)",
    };
    match namespace {
        Some(ns) => format!("list {}{shape} in namespace {ns}", plural(kind)),
        None => format!("list {}{shape} in all namespaces", plural(kind)),
    }
}

#[async_trait::async_trait]
impl ClusterView for KubeView {
    async fn list(
        &self,
        kind: WorkloadKind,
        namespace: Option<&str>,
        shape: Shape,
        token: Option<&str>,
    ) -> Result<Page, ClusterError> {
        let what = what(kind, namespace, shape);
        if namespace.is_some_and(|ns| !valid_namespace(ns)) {
            return Err(ClusterError::Unexpected {
                detail: format!("{what}: not a valid namespace name"),
            });
        }
        let mut lp = ListParams::default().limit(self.page_size);
        if kind == WorkloadKind::Pod {
            lp = lp.fields(LIVE_PODS);
        }
        if let Some(t) = token {
            lp = lp.continue_token(t);
        }
        let request = Request::new(url_path(kind, namespace));
        let http = match shape {
            Shape::Full => request.list(&lp),
            Shape::Metadata => request.list_metadata(&lp),
        }
        .map_err(|e| ClusterError::Unexpected {
            detail: format!("{what}: {}", described(&e)),
        })?;
        let client = &self.client;
        let (items, next) = match (kind, shape) {
            (_, Shape::Metadata) => {
                let l: ListOf<MetaItem> = timed(&what, self.timeout, client.request(http)).await?;
                let items = l.items.into_iter().map(|i| i.into_listed(kind)).collect();
                (items, l.metadata.continue_token)
            }
            (WorkloadKind::Pod, Shape::Full) => {
                let l: ListOf<PodItem> = timed(&what, self.timeout, client.request(http)).await?;
                let items = l.items.into_iter().map(PodItem::into_listed).collect();
                (items, l.metadata.continue_token)
            }
            (_, Shape::Full) => {
                let l: ListOf<TemplateItem> =
                    timed(&what, self.timeout, client.request(http)).await?;
                let items = l.items.into_iter().map(|i| i.into_listed(kind)).collect();
                (items, l.metadata.continue_token)
            }
        };
        Ok(Page {
            items,
            next: next.filter(|t| !t.is_empty()),
        })
    }

    async fn pull_events(
        &self,
        namespace: &str,
        pod_uid: &str,
    ) -> Result<Vec<PullEvent>, ClusterError> {
        if !valid_namespace(namespace) || !valid_object_name(pod_uid) {
            return Ok(Vec::new());
        }
        let api: Api<CoreEvent> = Api::namespaced(self.client.clone(), namespace);
        let lp = ListParams::default()
            .fields(&format!("involvedObject.uid={pod_uid},reason=Failed"))
            .limit(self.page_size);
        let what = format!("list the Failed events of Pod uid {pod_uid} in namespace {namespace}");
        let list = timed(&what, self.timeout, api.list(&lp)).await?;
        let mut out: Vec<PullEvent> = list
            .items
            .into_iter()
            .filter_map(|e| {
                let message = e.message.unwrap_or_default();
                event_error(&message)?;
                let last_seen = e
                    .last_timestamp
                    .map(|t| t.0.to_string())
                    .or_else(|| e.event_time.map(|t| t.0.to_string()))
                    .unwrap_or_default();
                Some(PullEvent {
                    field_path: e.involved_object.field_path.unwrap_or_default(),
                    message: truncate(&message, MESSAGE_LIMIT),
                    count: e.count.unwrap_or(1),
                    last_seen,
                })
            })
            .collect();
        out.sort_by(|a, b| a.last_seen.cmp(&b.last_seen));
        Ok(out)
    }

    async fn node_health(&self, node: &str) -> Result<Option<NodeHealth>, ClusterError> {
        if !valid_object_name(node) {
            return Ok(None);
        }
        let api: Api<Node> = Api::all(self.client.clone());
        let what = format!("Node {node}");
        let Some(found) = timed(&what, self.timeout, api.get_opt(node)).await? else {
            return Ok(None);
        };
        let pressure = found
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "DiskPressure" && c.status == "True");
        Ok(Some(NodeHealth {
            disk_pressure: pressure.is_some(),
            message: pressure
                .and_then(|c| c.message)
                .map(|m| truncate(&m, MESSAGE_LIMIT))
                .unwrap_or_default(),
        }))
    }

    fn pod_changes(&self) -> BoxStream<'static, PodChange> {
        let api: Api<PodItem> = Api::all(self.client.clone());
        let config = watcher::Config::default()
            .fields(LIVE_PODS)
            .page_size(self.page_size);
        let mut failing = false;
        watcher::watcher(api, config)
            .default_backoff()
            .filter_map(move |item| {
                let change = match item {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                        failing = false;
                        Some(PodChange::Applied(Box::new(p.into_listed())))
                    }
                    Ok(watcher::Event::Delete(p)) => {
                        use kube::Resource as _;
                        p.meta().uid.clone().map(|uid| PodChange::Deleted { uid })
                    }
                    Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
                    Err(e) => {
                        let error = described(&e);
                        if failing {
                            tracing::debug!(%error, "Pod watch still failing");
                        } else {
                            tracing::warn!(%error, "Pod watch failed (needs RBAC list+watch on pods); retrying with backoff");
                            failing = true;
                        }
                        None
                    }
                };
                futures::future::ready(change)
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths_of_every_kind() {
        assert_eq!(url_path(WorkloadKind::Pod, None), "/api/v1/pods");
        assert_eq!(
            url_path(WorkloadKind::Deployment, Some("a")),
            "/apis/apps/v1/namespaces/a/deployments"
        );
        assert_eq!(
            url_path(WorkloadKind::CronJob, None),
            "/apis/batch/v1/cronjobs"
        );
        assert_eq!(
            url_path(WorkloadKind::ReplicationController, Some("b")),
            "/api/v1/namespaces/b/replicationcontrollers"
        );
    }
}
