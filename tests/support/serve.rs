//! A `pullcheck serve` process for tests: started like in a cluster (serving certificate
//! for `pullcheck.pullcheck.svc` from `pullcheck certs`' code, a config file, a registry's
//! CA, a cluster stand-in or none) and a client that talks to it like the API server.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use pullcheck::webhook::certs::Pem;

use super::apiserver::FakeApiServer;
use super::TestRegistry;

pub const SERVICE_NAME: &str = "pullcheck.pullcheck.svc";
pub const DOCKERCONFIGJSON: &str = "kubernetes.io/dockerconfigjson";

/// A running `pullcheck serve`; killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    /// The CA of the serving certificate (PEM).
    pub ca: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start a server.
#[derive(Default)]
pub struct Options<'a> {
    /// YAML configuration file contents.
    pub config: String,
    /// Registries spoken to over plain HTTP.
    pub plain_http: Vec<String>,
    /// A real registry whose CA is trusted (TLS) or which is plain HTTP.
    pub registry: Option<&'a TestRegistry>,
    /// A cluster; `--no-cluster` without.
    pub api: Option<&'a FakeApiServer>,
    /// More `serve` arguments.
    pub args: Vec<String>,
    /// Client certificate and key (PEM) the driver's client presents (for `--client-ca`).
    pub identity: Option<String>,
    /// The CA and serving certificate to serve with; new ones when not given.
    pub certificates: Option<&'a (Pem, Pem)>,
    /// Environment variables of the process (`POD_NAME`, `POD_NAMESPACE`).
    pub env: Vec<(String, String)>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn client_trusting(ca_pem: &str, addr: SocketAddr) -> reqwest::Client {
    client_with(ca_pem, addr, None)
}

/// A client like the API server's: trusts `ca_pem` for the service name, presents
/// `identity` (certificate and key, PEM) when given.
pub fn client_with(ca_pem: &str, addr: SocketAddr, identity: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).unwrap())
        .resolve(SERVICE_NAME, addr)
        .timeout(Duration::from_secs(30));
    if let Some(pem) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

impl Server {
    pub async fn start(opts: Options<'_>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let generated;
        let (ca, serving) = match opts.certificates {
            Some(given) => given,
            None => {
                generated = pullcheck::webhook::certs::generate("pullcheck", "pullcheck", 30)
                    .expect("certificates");
                &generated
            }
        };
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, &serving.cert).unwrap();
        std::fs::write(&key, &serving.key).unwrap();
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, &opts.config).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = dir.path().join("serve.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pullcheck"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .arg("--config")
            .arg(&config_path)
            .env("PULLCHECK_LOG", "info")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for host in &opts.plain_http {
            cmd.arg("--plain-http").arg(host);
        }
        cmd.args(&opts.args);
        // The background scan only where a test asks for it: the others count requests.
        if !opts.args.iter().any(|a| a.starts_with("--scan-interval")) {
            cmd.arg("--scan-interval=0");
        }
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
        if let Some(registry) = opts.registry {
            match registry.ca_path() {
                Some(ca) => {
                    cmd.arg("--registry-ca")
                        .arg(format!("{}={}", registry.host(), ca.display()));
                }
                None => {
                    cmd.arg("--plain-http").arg(registry.host());
                }
            }
        }
        match opts.api {
            Some(api) => {
                cmd.env("KUBECONFIG", api.kubeconfig_path());
            }
            None => {
                cmd.arg("--no-cluster");
            }
        }
        let child = cmd.spawn().expect("pullcheck serve starts");
        let server = Server {
            child,
            addr,
            client: client_with(&ca.cert, addr, opts.identity.as_deref()),
            dir,
            ca: ca.cert.clone(),
        };
        server.wait_ready().await;
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{SERVICE_NAME}:{}{path}", self.addr.port())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    async fn wait_ready(&self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(r) = self.client.get(self.url("/readyz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("pullcheck serve not ready:\n{}", self.log());
    }

    /// Posts a review like the API server (`?timeout=`); returns the response object and
    /// how long the answer took.
    pub async fn review(&self, path: &str, timeout: &str, review: &Value) -> (Value, Duration) {
        let started = Instant::now();
        let resp = self
            .client
            .post(self.url(&format!("{path}?timeout={timeout}")))
            .header("content-type", "application/json")
            .json(review)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", self.log()));
        assert_eq!(
            resp.version(),
            reqwest::Version::HTTP_2,
            "the API server speaks HTTP/2"
        );
        assert_eq!(resp.status(), 200, "{}", self.log());
        let body: Value = resp.json().await.unwrap();
        let took = started.elapsed();
        assert_eq!(body["kind"], "AdmissionReview");
        assert_eq!(
            body["response"]["uid"], review["request"]["uid"],
            "uid echoed"
        );
        (body["response"].clone(), took)
    }

    /// GET `path`; the status and the body text.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()));
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Posts raw bytes; returns the status and the body text.
    pub async fn post_raw(&self, body: Vec<u8>) -> (u16, String) {
        let resp = self
            .client
            .post(self.url("/validate/enforce?timeout=10s"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST: {e}\n{}", self.log()));
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Asks the process to stop (SIGTERM), as the kubelet does, and waits for it to exit.
    pub fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {pid}");
        let _ = self.child.wait();
    }

    pub async fn healthy(&mut self) -> bool {
        let alive = self.child.try_wait().unwrap().is_none();
        let ok = match self.client.get(self.url("/healthz")).send().await {
            Ok(r) => r.status() == 200,
            Err(_) => false,
        };
        alive && ok
    }
}

/// A `.dockerconfigjson` payload with one registry's credentials.
pub fn dockerconfig(host: &str, user: &str, password: &str) -> Vec<u8> {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#).into_bytes()
}

/// An AdmissionReview of a Pod CREATE, shaped like the API server's.
pub fn pod_review(uid: &str, namespace: &str, image: &str, pull_secrets: &[&str]) -> Value {
    let secrets: Vec<Value> = pull_secrets
        .iter()
        .map(|s| serde_json::json!({ "name": s }))
        .collect();
    serde_json::json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "p",
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "someone", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "namespace": namespace},
                "spec": {
                    "containers": [{"name": "c", "image": image, "imagePullPolicy": "Always"}],
                    "imagePullSecrets": secrets,
                },
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    })
}

/// An AdmissionReview of a CREATE of any workload `object` (its `apiVersion`, `kind`,
/// `metadata.name` and `metadata.namespace`), shaped like the API server's.
pub fn review_of(uid: &str, object: &Value) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap_or_default();
    let resource = format!("{}s", kind.to_ascii_lowercase());
    let gvk = serde_json::json!({"group": group, "version": version, "kind": kind});
    let gvr = serde_json::json!({"group": group, "version": version, "resource": resource});
    serde_json::json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid,
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "operation": "CREATE",
            "userInfo": {"username": "someone", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    })
}

/// The value of one sample of `/metrics` text (`name{labels}`), 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}
