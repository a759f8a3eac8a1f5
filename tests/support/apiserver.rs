//! A loopback stand-in for the Kubernetes API server: HTTPS (a throw-away CA, the
//! certificate for `127.0.0.1`), bearer-token auth, and exactly the requests pullcheck's
//! kube-rs client sends:
//!
//! - `GET /version` (anonymous, like the real `system:public-info-viewer`)
//! - `GET /api/v1/namespaces/{ns}/secrets/{name}` → Secret (base64 `data`) or a 404 `Status`
//! - `GET /api/v1/namespaces/{ns}/secrets?fieldSelector=type%3D…` (and `/api/v1/secrets`)
//!   → SecretList; field selectors on `type`, `metadata.name`, `metadata.namespace`
//!   (`=`, `==`, `!=`, comma-joined), anything else is a 400 like the real server's
//! - `GET /api/v1/namespaces/{ns}/serviceaccounts/{name}` (and the list)
//! - `GET /api/v1/nodes[/{name}]` in full or, with
//!   `Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1`
//!   (`…as=PartialObjectMetadata…` for a single object or a watch), as metadata only;
//!   `limit` / `continue` pagination; `?watch=true&resourceVersion=N&timeoutSeconds=T…`
//!   streams newline-delimited watch events (`ADDED` / `MODIFIED` / `DELETED` after
//!   resourceVersion N; `0` or empty: every node as `ADDED` first; `sendInitialEvents=true`:
//!   every node as `ADDED`, then a `BOOKMARK` annotated `k8s.io/initial-events-end`) and is
//!   held open until `timeoutSeconds` (default 1800) or the server stops.
//!
//! - workloads, Pods with statuses, core/v1 and events.k8s.io/v1 Events, Leases: see
//!   `apiserver_objects.rs` (get, list, watch; Events created and patched, Leases created
//!   and updated, validated like the real server).
//!
//! Anything else answers a `Status` (404, 405, 400) as the real server would. Every request
//! is logged before anything else (see [`FakeApiServer::count`]), so injected failures and
//! delays are counted too.
//!
//! The server runs on its own thread and tokio runtime: a test may block (e.g. wait for a
//! spawned `pullcheck serve`) without starving it.
//!
//! ```ignore
//! let api = FakeApiServer::start().await;
//! api.put_secret("team-a", "regcred", "kubernetes.io/dockerconfigjson", &[(".dockerconfigjson", b"{}")]);
//! api.put_node("node-1", "linux", "amd64");
//! let cluster = KubeCluster::new(api.client().await, ttl, negative_ttl);
//! assert_eq!(api.count("GET", "/secrets/regcred"), 1);
//! ```
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::{broadcast, oneshot, watch};

use super::tls::{install_crypto_provider, TestCa};

#[path = "apiserver_objects.rs"]
mod objects;

/// The bearer token of the kubeconfig; any other answers 401.
pub const TOKEN: &str = "pullcheck-fake-apiserver-token";
/// The `gitVersion` `GET /version` reports.
pub const GIT_VERSION: &str = "v1.33.0-pullcheck-fake";

const CREATED: &str = "2025-01-01T00:00:00Z";
/// Watch `timeoutSeconds` when the client sends none.
const DEFAULT_WATCH_TIMEOUT: u64 = 1800;

pub struct FakeApiServer {
    port: u16,
    shared: Arc<Shared>,
    ca_pem: String,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    handle: axum_server::Handle<SocketAddr>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    store: Mutex<Store>,
    node_events: broadcast::Sender<NodeEvent>,
    object_events: broadcast::Sender<objects::ObjEvent>,
    shutdown: watch::Sender<bool>,
}

#[derive(Default)]
struct Store {
    /// The last resourceVersion handed out (one counter for everything, like etcd's).
    rv: u64,
    secrets: BTreeMap<(String, String), SecretRec>,
    service_accounts: BTreeMap<(String, String), SaRec>,
    nodes: BTreeMap<String, NodeRec>,
    node_history: Vec<NodeEvent>,
    objects: BTreeMap<objects::ObjKey, Value>,
    object_history: Vec<objects::ObjEvent>,
    requests: Vec<ApiRequest>,
    fail: Option<u16>,
    delay: Option<Duration>,
}

impl Store {
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }
}

/// One request the fake answered (logged before anything else).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiRequest {
    pub method: String,
    /// Path and query as sent (not percent-decoded), e.g. `/api/v1/nodes?&limit=500`.
    pub target: String,
    /// The `Accept` header ("" when none).
    pub accept: String,
}

struct SecretRec {
    secret_type: String,
    data: Vec<(String, Vec<u8>)>,
    uid: String,
    rv: u64,
}

struct SaRec {
    pull_secrets: Vec<String>,
    uid: String,
    rv: u64,
}

#[derive(Clone)]
struct NodeRec {
    name: String,
    os: String,
    arch: String,
    /// `status.nodeInfo.containerRuntimeVersion`.
    runtime: String,
    uid: String,
    rv: u64,
    /// Condition `DiskPressure` is `True`.
    disk_pressure: bool,
}

#[derive(Clone)]
struct NodeEvent {
    rv: u64,
    kind: &'static str,
    node: NodeRec,
}

fn uid(rv: u64) -> String {
    format!("00000000-0000-4000-8000-{rv:012x}")
}

impl FakeApiServer {
    /// Starts on 127.0.0.1:<free port> (HTTPS with a throw-away CA) and writes a kubeconfig
    /// for it.
    pub async fn start() -> FakeApiServer {
        install_crypto_provider();
        let ca = TestCa::new();
        let leaf = ca.server_leaf("pullcheck fake kube-apiserver");
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
            leaf.cert_pem.into_bytes(),
            leaf.key_pem.into_bytes(),
        )
        .await
        .expect("fake apiserver TLS config");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake apiserver");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("fake apiserver addr").port();

        let (node_events, _) = broadcast::channel(4096);
        let (object_events, _) = broadcast::channel(16384);
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            node_events,
            object_events,
            shutdown,
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, tls)
            .expect("fake apiserver from listener")
            .handle(handle.clone());
        let (ready_tx, ready_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("fake-apiserver".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake apiserver runtime");
                runtime.block_on(async move {
                    let _ = ready_tx.send(());
                    let _ = server.serve(app.into_make_service()).await;
                });
            })
            .expect("spawn fake apiserver thread");
        ready_rx.await.expect("fake apiserver started");

        let dir = tempfile::tempdir().expect("kubeconfig dir");
        let kubeconfig = dir.path().join("kubeconfig");
        let server = FakeApiServer {
            port,
            shared,
            ca_pem: ca.cert_pem.clone(),
            _dir: dir,
            kubeconfig,
            handle,
            thread: Some(thread),
        };
        std::fs::write(&server.kubeconfig, server.kubeconfig_yaml()).expect("write kubeconfig");
        server
    }

    /// `https://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The PEM of the CA that signed the server's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A kubeconfig (context `fake`, namespace `default`, bearer [`TOKEN`]).
    pub fn kubeconfig_yaml(&self) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {url}
    certificate-authority-data: {ca}
users:
- name: fake
  user:
    token: {TOKEN}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: default
current-context: fake
",
            url = self.url()
        )
    }

    /// The kubeconfig file (lives as long as the server); tests set KUBECONFIG to it for a
    /// spawned `pullcheck serve`.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.kubeconfig.clone()
    }

    /// kube's configuration from the kubeconfig file, with kube's defaults (including its
    /// retry of 429/503/504). Reads no environment variable.
    pub async fn config(&self) -> kube::Config {
        kube_config_from(&self.kubeconfig).await
    }

    /// A kube::Client for it, built like `KubeCluster::connect` builds its client (kube's
    /// defaults without the built-in 429/503/504 retry).
    pub async fn client(&self) -> kube::Client {
        let mut config = self.config().await;
        config.default_retry = false;
        kube::Client::try_from(config).expect("kube client for the fake apiserver")
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.shared)
    }

    pub fn put_secret(
        &self,
        namespace: &str,
        name: &str,
        secret_type: &str,
        data: &[(&str, &[u8])],
    ) {
        let mut s = self.store();
        let rv = s.next_rv();
        s.secrets.insert(
            (namespace.to_owned(), name.to_owned()),
            SecretRec {
                secret_type: secret_type.to_owned(),
                data: data
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                    .collect(),
                uid: uid(rv),
                rv,
            },
        );
    }

    pub fn delete_secret(&self, namespace: &str, name: &str) {
        let mut s = self.store();
        s.next_rv();
        s.secrets.remove(&(namespace.to_owned(), name.to_owned()));
    }

    pub fn put_service_account(&self, namespace: &str, name: &str, pull_secrets: &[&str]) {
        let mut s = self.store();
        let rv = s.next_rv();
        s.service_accounts.insert(
            (namespace.to_owned(), name.to_owned()),
            SaRec {
                pull_secrets: pull_secrets.iter().map(|p| (*p).to_owned()).collect(),
                uid: uid(rv),
                rv,
            },
        );
    }

    /// A Node with labels kubernetes.io/os and kubernetes.io/arch (ADDED, or MODIFIED when
    /// it exists, to open watches).
    pub fn put_node(&self, name: &str, os: &str, arch: &str) {
        self.put_node_with_runtime(name, os, arch, "containerd://2.0.0");
    }

    /// [`Self::put_node`] with the runtime the kubelet reports
    /// (`status.nodeInfo.containerRuntimeVersion`, e.g. `cri-o://1.34.1`).
    pub fn put_node_with_runtime(&self, name: &str, os: &str, arch: &str, runtime: &str) {
        let mut s = self.store();
        let rv = s.next_rv();
        let (kind, uid, disk_pressure) = match s.nodes.get(name) {
            Some(old) => ("MODIFIED", old.uid.clone(), old.disk_pressure),
            None => ("ADDED", uid(rv), false),
        };
        let node = NodeRec {
            name: name.to_owned(),
            os: os.to_owned(),
            arch: arch.to_owned(),
            runtime: runtime.to_owned(),
            uid,
            rv,
            disk_pressure,
        };
        s.nodes.insert(name.to_owned(), node.clone());
        let event = NodeEvent { rv, kind, node };
        s.node_history.push(event.clone());
        // Sent under the lock: a watch subscribing under the same lock misses nothing.
        let _ = self.shared.node_events.send(event);
    }

    /// Sets a Node's `DiskPressure` condition (MODIFIED to open watches).
    pub fn set_disk_pressure(&self, name: &str, on: bool) {
        let (os, arch) = {
            let mut s = self.store();
            let node = s.nodes.get_mut(name).expect("no such node");
            node.disk_pressure = on;
            (node.os.clone(), node.arch.clone())
        };
        self.put_node(name, &os, &arch);
    }

    /// Removes a Node (DELETED to open watches).
    pub fn delete_node(&self, name: &str) {
        let mut s = self.store();
        let Some(mut node) = s.nodes.remove(name) else {
            return;
        };
        let rv = s.next_rv();
        node.rv = rv;
        let event = NodeEvent {
            rv,
            kind: "DELETED",
            node,
        };
        s.node_history.push(event.clone());
        let _ = self.shared.node_events.send(event);
    }

    /// Count of requests so far with this method whose path *or query* contains `path_part`
    /// (the request target as sent, not percent-decoded: `fieldSelector=type%3D…`).
    pub fn count(&self, method: &str, path_part: &str) -> usize {
        self.store()
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.target.contains(path_part))
            .count()
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<ApiRequest> {
        self.store().requests.clone()
    }

    /// Make every request answer a `Status` with this code (e.g. 503, 403) until None.
    /// Watches already open stay open.
    pub fn fail_with(&self, status: Option<u16>) {
        self.store().fail = status;
    }

    /// Delay every answer (the start of a watch stream included) by this much until None.
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.store().delay = delay;
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        let _ = self.shared.shutdown.send(true);
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// kube's configuration from a kubeconfig file, without looking at the environment.
pub async fn kube_config_from(path: &Path) -> kube::Config {
    install_crypto_provider();
    let kubeconfig = kube::config::Kubeconfig::read_from(path).expect("read kubeconfig");
    kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .expect("kube config from kubeconfig")
}

fn lock(shared: &Shared) -> MutexGuard<'_, Store> {
    shared.store.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

/// A `Status` object as the API server sends with an error.
fn status(code: u16, message: &str, details: Option<Value>) -> Response {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason_for(code),
        "code": code,
    });
    if let Some(d) = details {
        body["details"] = d;
    }
    let mut response = json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &body,
    );
    if code == 401 {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Bearer".parse().expect("header value"),
        );
    }
    response
}

fn not_found(resource: &str, name: &str) -> Response {
    status(
        404,
        &format!("{resource} \"{name}\" not found"),
        Some(json!({"name": name, "kind": resource})),
    )
}

fn bad_request(message: &str) -> Response {
    status(400, message, None)
}

fn meta(name: &str, namespace: Option<&str>, uid: &str, rv: u64) -> Value {
    let mut m = json!({
        "name": name,
        "uid": uid,
        "resourceVersion": rv.to_string(),
        "creationTimestamp": CREATED,
    });
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m
}

fn secret_json(ns: &str, name: &str, rec: &SecretRec) -> Value {
    let mut v = json!({
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": meta(name, Some(ns), &rec.uid, rec.rv),
        "type": rec.secret_type,
    });
    if !rec.data.is_empty() {
        let data: serde_json::Map<String, Value> = rec
            .data
            .iter()
            .map(|(k, bytes)| {
                (
                    k.clone(),
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
                )
            })
            .collect();
        v["data"] = Value::Object(data);
    }
    v
}

fn sa_json(ns: &str, name: &str, rec: &SaRec) -> Value {
    let mut v = json!({
        "kind": "ServiceAccount",
        "apiVersion": "v1",
        "metadata": meta(name, Some(ns), &rec.uid, rec.rv),
    });
    if !rec.pull_secrets.is_empty() {
        v["imagePullSecrets"] = rec
            .pull_secrets
            .iter()
            .map(|n| json!({ "name": n }))
            .collect();
    }
    v
}

fn node_json(node: &NodeRec) -> Value {
    let mut m = meta(&node.name, None, &node.uid, node.rv);
    m["labels"] = json!({
        "kubernetes.io/os": node.os,
        "kubernetes.io/arch": node.arch,
        "kubernetes.io/hostname": node.name,
    });
    json!({
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": m,
        "spec": {},
        "status": {
            "conditions": [{
                "type": "DiskPressure",
                "status": if node.disk_pressure { "True" } else { "False" },
                "reason": if node.disk_pressure { "KubeletHasDiskPressure" } else { "KubeletHasNoDiskPressure" },
                "message": if node.disk_pressure { "kubelet has disk pressure" } else { "kubelet has no disk pressure" },
                "lastHeartbeatTime": CREATED,
                "lastTransitionTime": CREATED,
            }],
            "nodeInfo": {
                "architecture": node.arch,
                "operatingSystem": node.os,
                "bootID": node.uid,
                "machineID": node.uid,
                "systemUUID": node.uid,
                "containerRuntimeVersion": node.runtime,
                "kernelVersion": "6.1.0",
                "kubeProxyVersion": GIT_VERSION,
                "kubeletVersion": GIT_VERSION,
                "osImage": "pullcheck fake",
            }
        }
    })
}

/// The object as `PartialObjectMetadata`.
fn as_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object["metadata"].clone(),
    })
}

/// A request answered with an error `Status` before it got far (boxed: a `Response` is large).
type Reject = Box<Response>;

/// How the client asked for objects.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Full,
    Metadata,
}

fn shape(headers: &HeaderMap) -> Result<Shape, Reject> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("as=Table") {
        return Err(Box::new(status(
            406,
            "only the Full and PartialObjectMetadata shapes are served by this fake",
            None,
        )));
    }
    Ok(if accept.contains("as=PartialObjectMetadata") {
        Shape::Metadata
    } else {
        Shape::Full
    })
}

fn shaped(object: Value, shape: Shape) -> Value {
    match shape {
        Shape::Full => object,
        Shape::Metadata => as_metadata(&object),
    }
}

/// A list answer, with `limit` / `continue` pagination over `items` (sorted by key).
fn list_response(
    kind: &str,
    shape: Shape,
    rv: u64,
    items: Vec<(String, Value)>,
    params: &Params,
) -> Response {
    let limit = match params.get("limit").map(str::parse::<usize>) {
        None => None,
        Some(Ok(0)) => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return bad_request("invalid limit"),
    };
    let after = params.get("continue").unwrap_or("");
    let mut rest: Vec<(String, Value)> = items
        .into_iter()
        .filter(|(key, _)| after.is_empty() || key.as_str() > after)
        .collect();
    let mut continue_token = None;
    if let Some(limit) = limit {
        if rest.len() > limit {
            rest.truncate(limit);
            continue_token = rest.last().map(|(k, _)| k.clone());
        }
    }
    let mut list_meta = json!({ "resourceVersion": rv.to_string() });
    if let Some(token) = continue_token {
        list_meta["continue"] = json!(token);
    }
    let items: Vec<Value> = rest
        .into_iter()
        .map(|(_, mut v)| match shape {
            Shape::Metadata => as_metadata(&v),
            Shape::Full => {
                // The real server leaves kind/apiVersion out of list items.
                if let Some(o) = v.as_object_mut() {
                    o.remove("kind");
                    o.remove("apiVersion");
                }
                v
            }
        })
        .collect();
    let (kind, api_version) = match shape {
        Shape::Full => (format!("{kind}List"), "v1"),
        Shape::Metadata => ("PartialObjectMetadataList".to_owned(), "meta.k8s.io/v1"),
    };
    json_response(
        StatusCode::OK,
        &json!({ "kind": kind, "apiVersion": api_version, "metadata": list_meta, "items": items }),
    )
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str) -> Params {
        Params(
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn is_true(&self, key: &str) -> bool {
        self.get(key) == Some("true")
    }
}

/// One `fieldSelector` term.
struct FieldTerm {
    field: String,
    value: String,
    equal: bool,
}

/// Parses a field selector over the fields in `supported`; Err is the 400 to answer.
fn field_selector(params: &Params, supported: &[&str]) -> Result<Vec<FieldTerm>, Reject> {
    let Some(selector) = params.get("fieldSelector").filter(|s| !s.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut terms = Vec::new();
    for term in selector.split(',') {
        let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once("==") {
            (f, v, true)
        } else if let Some((f, v)) = term.split_once('=') {
            (f, v, true)
        } else {
            return Err(Box::new(bad_request(&format!(
                "invalid field selector: {term}"
            ))));
        };
        let field = field.trim();
        if !supported.contains(&field) {
            return Err(Box::new(bad_request(&format!(
                "field label not supported: {field}"
            ))));
        }
        terms.push(FieldTerm {
            field: field.to_owned(),
            value: value.trim().to_owned(),
            equal,
        });
    }
    Ok(terms)
}

fn fields_match(terms: &[FieldTerm], value_of: impl Fn(&str) -> String) -> bool {
    terms
        .iter()
        .all(|t| (value_of(&t.field) == t.value) == t.equal)
}

fn no_label_selector(params: &Params) -> Result<(), Reject> {
    match params.get("labelSelector") {
        Some(s) if !s.is_empty() => Err(Box::new(bad_request(
            "labelSelector is not supported by this fake",
        ))),
        _ => Ok(()),
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let target = if query.is_empty() {
        path.clone()
    } else {
        format!("{path}?{query}")
    };
    let (fail, delay) = {
        let mut s = lock(&shared);
        s.requests.push(ApiRequest {
            method: method.to_string(),
            target,
            accept: request
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
        });
        (s.fail, s.delay)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(code) = fail {
        let message = if code == 403 {
            format!(
                "forbidden: User \"system:serviceaccount:pullcheck:pullcheck\" cannot {} path \"{path}\"",
                method.as_str().to_ascii_lowercase()
            )
        } else {
            format!("injected failure ({code}) for {method} {path}")
        };
        return status(code, &message, None);
    }
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(format!("Bearer {TOKEN}").as_str());
    if path != "/version" && !authorized {
        return status(401, "Unauthorized", None);
    }
    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    if let Some(route) = objects::route(&segments) {
        let shape = match shape(request.headers()) {
            Ok(s) => s,
            Err(response) => return *response,
        };
        let params = Params::parse(&query);
        return objects::handle(&shared, &method, route, &params, shape, request).await;
    }
    if method != Method::GET {
        return status(
            405,
            &format!(
                "the server does not allow this method on the requested resource ({method} {path})"
            ),
            None,
        );
    }
    let shape = match shape(request.headers()) {
        Ok(s) => s,
        Err(response) => return *response,
    };
    let params = Params::parse(&query);
    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    if params.is_true("watch") && !matches!(segments.as_slice(), ["api", "v1", "nodes"]) {
        return bad_request("this fake serves watches of nodes only");
    }
    let result = match segments.as_slice() {
        ["version"] => Ok(version()),
        ["api", "v1", "namespaces", ns, "secrets", name] => {
            Ok(get_secret(&shared, ns, name, shape))
        }
        ["api", "v1", "namespaces", ns, "secrets"] => {
            list_secrets(&shared, Some(ns), shape, &params)
        }
        ["api", "v1", "secrets"] => list_secrets(&shared, None, shape, &params),
        ["api", "v1", "namespaces", ns, "serviceaccounts", name] => {
            Ok(get_service_account(&shared, ns, name, shape))
        }
        ["api", "v1", "namespaces", ns, "serviceaccounts"] => {
            list_service_accounts(&shared, ns, shape, &params)
        }
        ["api", "v1", "nodes"] if params.is_true("watch") => watch_nodes(&shared, shape, &params),
        ["api", "v1", "nodes"] => list_nodes(&shared, shape, &params),
        ["api", "v1", "nodes", name] => Ok(get_node(&shared, name, shape)),
        _ => Ok(status(
            404,
            "the server could not find the requested resource",
            None,
        )),
    };
    result.unwrap_or_else(|response| *response)
}

fn version() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": "33",
            "gitVersion": GIT_VERSION,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": CREATED,
            "goVersion": "go1.24.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }),
    )
}

fn get_secret(shared: &Shared, ns: &str, name: &str, shape: Shape) -> Response {
    let s = lock(shared);
    match s.secrets.get(&(ns.to_owned(), name.to_owned())) {
        Some(rec) => json_response(StatusCode::OK, &shaped(secret_json(ns, name, rec), shape)),
        None => not_found("secrets", name),
    }
}

fn list_secrets(
    shared: &Shared,
    ns: Option<&str>,
    shape: Shape,
    params: &Params,
) -> Result<Response, Reject> {
    let terms = field_selector(params, &["type", "metadata.name", "metadata.namespace"])?;
    no_label_selector(params)?;
    let s = lock(shared);
    let items = s
        .secrets
        .iter()
        .filter(|((sns, _), _)| ns.is_none_or(|ns| ns == sns))
        .filter(|((sns, sname), rec)| {
            fields_match(&terms, |field| match field {
                "type" => rec.secret_type.clone(),
                "metadata.name" => sname.clone(),
                _ => sns.clone(),
            })
        })
        .map(|((sns, sname), rec)| (format!("{sns}/{sname}"), secret_json(sns, sname, rec)))
        .collect();
    Ok(list_response("Secret", shape, s.rv, items, params))
}

fn get_service_account(shared: &Shared, ns: &str, name: &str, shape: Shape) -> Response {
    let s = lock(shared);
    match s.service_accounts.get(&(ns.to_owned(), name.to_owned())) {
        Some(rec) => json_response(StatusCode::OK, &shaped(sa_json(ns, name, rec), shape)),
        None => not_found("serviceaccounts", name),
    }
}

fn list_service_accounts(
    shared: &Shared,
    ns: &str,
    shape: Shape,
    params: &Params,
) -> Result<Response, Reject> {
    let terms = field_selector(params, &["metadata.name", "metadata.namespace"])?;
    no_label_selector(params)?;
    let s = lock(shared);
    let items = s
        .service_accounts
        .iter()
        .filter(|((sns, sname), _)| {
            sns == ns
                && fields_match(&terms, |field| match field {
                    "metadata.name" => sname.clone(),
                    _ => sns.clone(),
                })
        })
        .map(|((sns, sname), rec)| (sname.clone(), sa_json(sns, sname, rec)))
        .collect();
    Ok(list_response("ServiceAccount", shape, s.rv, items, params))
}

fn get_node(shared: &Shared, name: &str, shape: Shape) -> Response {
    let s = lock(shared);
    match s.nodes.get(name) {
        Some(node) => json_response(StatusCode::OK, &shaped(node_json(node), shape)),
        None => not_found("nodes", name),
    }
}

fn node_terms(params: &Params) -> Result<Vec<FieldTerm>, Reject> {
    no_label_selector(params)?;
    field_selector(params, &["metadata.name"])
}

fn list_nodes(shared: &Shared, shape: Shape, params: &Params) -> Result<Response, Reject> {
    let terms = node_terms(params)?;
    let s = lock(shared);
    let items = s
        .nodes
        .values()
        .filter(|n| fields_match(&terms, |_| n.name.clone()))
        .map(|n| (n.name.clone(), node_json(n)))
        .collect();
    Ok(list_response("Node", shape, s.rv, items, params))
}

/// One watch event line.
fn event_line(kind: &str, object: Value) -> Bytes {
    let mut line = json!({ "type": kind, "object": object }).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn bookmark_line(shape: Shape, rv: u64, initial_end: bool) -> Bytes {
    let (kind, api_version) = match shape {
        Shape::Full => ("Node", "v1"),
        Shape::Metadata => ("PartialObjectMetadata", "meta.k8s.io/v1"),
    };
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    event_line(
        "BOOKMARK",
        json!({ "kind": kind, "apiVersion": api_version, "metadata": metadata }),
    )
}

struct WatchStream {
    pending: VecDeque<Bytes>,
    events: broadcast::Receiver<NodeEvent>,
    shutdown: watch::Receiver<bool>,
    deadline: tokio::time::Instant,
    after: u64,
    terms: Vec<FieldTerm>,
    shape: Shape,
}

fn watch_nodes(shared: &Shared, shape: Shape, params: &Params) -> Result<Response, Reject> {
    let terms = node_terms(params)?;
    let timeout = match params.get("timeoutSeconds").map(str::parse::<u64>) {
        None => DEFAULT_WATCH_TIMEOUT,
        Some(Ok(t)) => t,
        Some(Err(_)) => return Err(Box::new(bad_request("invalid timeoutSeconds"))),
    };
    let rv_param = params.get("resourceVersion").unwrap_or("");
    let initial_events = params.is_true("sendInitialEvents");
    let selected = |n: &NodeRec| fields_match(&terms, |_| n.name.clone());

    let s = lock(shared);
    let mut pending = VecDeque::new();
    let after = if initial_events || rv_param.is_empty() || rv_param == "0" {
        // Synthetic ADDED for the current state.
        for node in s.nodes.values().filter(|n| selected(n)) {
            pending.push_back(event_line("ADDED", shaped(node_json(node), shape)));
        }
        if initial_events {
            pending.push_back(bookmark_line(shape, s.rv, true));
        }
        s.rv
    } else {
        let Ok(from) = rv_param.parse::<u64>() else {
            return Err(Box::new(bad_request(&format!(
                "invalid resourceVersion: {rv_param}"
            ))));
        };
        for event in s
            .node_history
            .iter()
            .filter(|e| e.rv > from && selected(&e.node))
        {
            pending.push_back(event_line(
                event.kind,
                shaped(node_json(&event.node), shape),
            ));
        }
        s.rv.max(from)
    };
    // Subscribed under the store lock: no event is missed or sent twice.
    let stream = WatchStream {
        pending,
        events: shared.node_events.subscribe(),
        shutdown: shared.shutdown.subscribe(),
        deadline: tokio::time::Instant::now() + Duration::from_secs(timeout),
        after,
        terms,
        shape,
    };
    drop(s);

    let body = futures::stream::unfold(stream, |mut st| async move {
        if let Some(line) = st.pending.pop_front() {
            return Some((Ok::<Bytes, Infallible>(line), st));
        }
        loop {
            if *st.shutdown.borrow() {
                return None;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(st.deadline) => return None,
                _ = st.shutdown.changed() => return None,
                event = st.events.recv() => match event {
                    Ok(event) => {
                        if event.rv > st.after
                            && fields_match(&st.terms, |_| event.node.name.clone())
                        {
                            st.after = event.rv;
                            let line = event_line(event.kind, shaped(node_json(&event.node), st.shape));
                            return Some((Ok(line), st));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}
