//! pullcheck's measured speed, on this machine, in one run:
//!
//! 1. **Warm path**: an HTTP/2 + TLS load generator posting one AdmissionReview (a
//!    Deployment CREATE with two images, credentials from its ServiceAccount's pull secret)
//!    to `pullcheck serve` with a warm cache, and — in the same run, with the same body — to
//!    `examples/minimal_responder.rs`, the smallest responder on the same stack (axum +
//!    rustls: decode, answer allowed). Closed loop at full speed, then open loop at 1,000
//!    reviews/s. Reviews/s, p50, p99, CPU per review, and pullcheck / minimal.
//! 2. **Cold path**: a Deployment with 10 distinct images vs. one image, against a registry
//!    behind a proxy that delays every request (token requests included) by 50 ms;
//!    end-to-end latency and the registry requests, counted at the registry.
//! 3. **Coalescing**: 500 concurrent reviews of the same new image → manifest requests.
//! 4. **Memory**: RSS for 100,000 cached results (in a child process using the library's
//!    cache over a registry double), and the same 100,000 lookups with `maxEntries: 10000`.
//! 5. **Against a `skopeo inspect` loop** over the same 50 images on the same registry:
//!    wall time and registry requests.
//!
//! Everything runs on loopback against a real registry (Debian's `docker-registry`, started
//! by the test harness) and stops by itself (about a minute). Run:
//!
//! ```sh
//! cargo build --release --example minimal_responder && cargo bench --bench admission
//! cargo bench --bench admission -- warm cold     # only some sections:
//!                                                # warm cold coalescing memory skopeo
//! ```
//!
//! `cargo bench` builds `pullcheck` itself (release profile); the example must be built
//! first (cargo does not build examples for benches). `pullcheck serve` logs as deployed
//! (`info`: a line per denial or warning, none for the allowed reviews measured here). Both
//! servers run with mimalloc, pullcheck's allocator. `examples/review_cost.rs` measures the
//! same review in-process, without TLS, HTTP/2 or the load generator.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use support::apiserver::FakeApiServer;
use support::{Auth, LoggedRequest, RegistryOptions, TestRegistry, ALICE};

const SERVICE_NAME: &str = "pullcheck.pullcheck.svc";
const DOCKERCONFIGJSON: &str = "kubernetes.io/dockerconfigjson";
const MEMORY_CHILD: &str = "PULLCHECK_BENCH_MEMORY_CHILD";

/// Closed loop: connections × concurrent streams on each, for this long.
const CLOSED_CONNECTIONS: usize = 4;
const CLOSED_STREAMS: usize = 16;
const CLOSED_FOR: Duration = Duration::from_secs(4);
const CLOSED_ROUNDS: usize = 3;
/// Open loop: this rate for this long.
const OPEN_RATE: u64 = 1_000;
const OPEN_FOR: Duration = Duration::from_secs(8);
/// Delay the proxy adds to every registry and token request.
const PROXY_DELAY: Duration = Duration::from_millis(50);

fn main() {
    if let Ok(mode) = std::env::var(MEMORY_CHILD) {
        memory_child(&mode);
        return;
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it:
    // an unoptimized benchmark measures nothing, so it only says how to run it.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("benches/admission.rs: run with `cargo build --release --example minimal_responder && cargo bench --bench admission`");
        return;
    }
    let sections: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| sections.is_empty() || sections.iter().any(|s| s == name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut report = Report {
        load_before: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        ..Report::default()
    };
    let started = Instant::now();
    runtime.block_on(async {
        let env = Env::start().await;
        if wanted("warm") {
            warm_path(&env, &mut report).await;
        }
        if wanted("cold") {
            cold_path(&env, &mut report).await;
        }
        if wanted("coalescing") {
            coalescing(&env, &mut report).await;
        }
        if wanted("skopeo") {
            skopeo(&env, &mut report).await;
        }
    });
    if wanted("memory") {
        memory(&mut report);
    }
    report.print(started.elapsed());
}

// ---------------------------------------------------------------------------------------
// Environment: registry, API server, binaries, certificates
// ---------------------------------------------------------------------------------------

struct Env {
    reg: TestRegistry,
    api: FakeApiServer,
    dir: tempfile::TempDir,
    /// CA (PEM) of the serving certificate, and the certificate and key files.
    ca: String,
    cert: PathBuf,
    key: PathBuf,
    /// A docker config.json with alice's credentials for the registry.
    docker_config: PathBuf,
}

impl Env {
    async fn start() -> Env {
        check_binaries();
        let reg = TestRegistry::start(RegistryOptions {
            tls: true,
            auth: Auth::Token,
        })
        .await;
        let api = FakeApiServer::start().await;
        api.put_node("node-amd64", "linux", "amd64");
        api.put_node("node-arm64", "linux", "arm64");
        let dir = tempfile::tempdir().expect("temp dir");
        let (ca, serving) = pullcheck::webhook::certs::generate("pullcheck", "pullcheck", 30)
            .expect("certificates");
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, &serving.cert).expect("write cert");
        std::fs::write(&key, &serving.key).expect("write key");
        let docker_config = dir.path().join("config.json");
        std::fs::write(&docker_config, dockerconfig(&reg.host(), ALICE.0, ALICE.1))
            .expect("write docker config");
        Env {
            reg,
            api,
            dir,
            ca: ca.cert,
            cert,
            key,
            docker_config,
        }
    }

    /// A namespace whose `default` ServiceAccount lists a pull secret with alice's
    /// credentials for `host`.
    fn tenant(&self, namespace: &str, host: &str) {
        let cfg = dockerconfig(host, ALICE.0, ALICE.1);
        self.api.put_secret(
            namespace,
            "regcred",
            DOCKERCONFIGJSON,
            &[(".dockerconfigjson", cfg.as_bytes())],
        );
        self.api
            .put_service_account(namespace, "default", &["regcred"]);
    }
}

fn pullcheck_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pullcheck"))
}

fn responder_bin() -> PathBuf {
    pullcheck_bin()
        .parent()
        .expect("target dir")
        .join("examples/minimal_responder")
}

fn check_binaries() {
    let responder = responder_bin();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/minimal_responder.rs");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = match (modified(&responder), modified(&source)) {
        (Some(built), Some(src)) => built < src,
        _ => true,
    };
    if stale {
        eprintln!(
            "\n{} is missing or older than its source: build it first:\n  cargo build --release --example minimal_responder && cargo bench --bench admission\n",
            responder.display()
        );
        std::process::exit(2);
    }
    if !cfg!(debug_assertions) {
        return;
    }
    eprintln!("note: built without optimizations; run with `cargo bench` for real figures");
}

fn dockerconfig(host: &str, user: &str, password: &str) -> String {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

// ---------------------------------------------------------------------------------------
// Servers under test
// ---------------------------------------------------------------------------------------

/// A child process serving HTTPS on `addr`; killed on drop.
struct Served {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// `pullcheck serve` (release) with `config`, the registry's CA, the fake API server.
    async fn pullcheck(env: &Env, name: &str, config: &str, plain_http: &[String]) -> Served {
        let config_path = env.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&config_path, config).expect("write config");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = env.dir.path().join(format!("{name}.log"));
        let ca = env.reg.ca_path().expect("TLS registry");
        let mut cmd = Command::new(pullcheck_bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--tls-cert")
            .arg(&env.cert)
            .arg("--tls-key")
            .arg(&env.key)
            .arg("--config")
            .arg(&config_path)
            .arg("--registry-ca")
            .arg(format!("{}={}", env.reg.host(), ca.display()))
            .env("KUBECONFIG", env.api.kubeconfig_path())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for host in plain_http {
            cmd.arg("--plain-http").arg(host);
        }
        let served = Served {
            child: cmd.spawn().expect("spawn pullcheck serve"),
            addr,
            log,
        };
        served.wait_ready(&env.ca).await;
        served
    }

    async fn responder(env: &Env) -> Served {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = env.dir.path().join("responder.log");
        let child = Command::new(responder_bin())
            .arg(addr.to_string())
            .arg(&env.cert)
            .arg(&env.key)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn minimal_responder");
        let served = Served { child, addr, log };
        served.wait_ready(&env.ca).await;
        served
    }

    async fn wait_ready(&self, ca: &str) {
        let client = h2_client(ca, self.addr);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(r) = client.get(self.url("/healthz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{} did not come up:\n{}",
            self.addr,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    fn url(&self, path: &str) -> String {
        format!("https://{SERVICE_NAME}:{}{path}", self.addr.port())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// An HTTP/2 client over TLS trusting `ca` for the webhook's service name: one client, one
/// connection.
fn h2_client(ca: &str, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca.as_bytes()).expect("CA"))
        .resolve(SERVICE_NAME, addr)
        .http2_prior_knowledge()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// CPU time (user + system) of a process so far, from /proc/<pid>/stat.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after ") ".
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// VmRSS of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Load generation
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
struct Stats {
    ok: u64,
    errors: u64,
    elapsed: Duration,
    /// Every latency, microseconds, sorted.
    latencies: Vec<u64>,
    cpu: Duration,
}

impl Stats {
    /// Several runs of the same load as one.
    fn merge(runs: &[Stats]) -> Stats {
        let mut all = Stats::default();
        for r in runs {
            all.ok += r.ok;
            all.errors += r.errors;
            all.elapsed += r.elapsed;
            all.cpu += r.cpu;
            all.latencies.extend_from_slice(&r.latencies);
        }
        all.latencies.sort_unstable();
        all
    }

    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len());
        Duration::from_micros(self.latencies[i - 1])
    }

    fn cpu_per_review(&self) -> Duration {
        if self.ok == 0 {
            return Duration::ZERO;
        }
        self.cpu / self.ok as u32
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// One request; Ok(latency) when answered 200 with a full body.
async fn post_once(client: &reqwest::Client, url: &str, body: &Bytes) -> Result<(), String> {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    if status != StatusCode::OK || bytes.is_empty() {
        return Err(format!("HTTP {status}"));
    }
    Ok(())
}

/// Clients with their HTTP/2 connection established.
async fn connect(
    ca: &str,
    served: &Served,
    n: usize,
    url: &str,
    body: &Bytes,
) -> Vec<reqwest::Client> {
    let mut clients = Vec::new();
    for _ in 0..n {
        let c = h2_client(ca, served.addr);
        post_once(&c, url, body).await.expect("first review");
        clients.push(c);
    }
    clients
}

/// Closed loop: every stream sends its next review as soon as the last is answered.
async fn closed_loop(
    clients: &[reqwest::Client],
    streams: usize,
    url: &str,
    body: &Bytes,
    pid: u32,
    duration: Duration,
) -> Stats {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_time(pid);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in clients {
        for _ in 0..streams {
            let (client, url, body, stop, errors) = (
                client.clone(),
                url.to_string(),
                body.clone(),
                Arc::clone(&stop),
                Arc::clone(&errors),
            );
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(1 << 16);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match post_once(&client, &url, &body).await {
                        Ok(()) => lat.push(t.elapsed().as_micros() as u64),
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                lat
            }));
        }
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("load task"));
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    latencies.sort_unstable();
    Stats {
        ok: latencies.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        latencies,
        cpu,
    }
}

/// Open loop: reviews start on a fixed schedule (`rate` per second) whatever the answers do;
/// each latency counts from its scheduled start (no coordinated omission).
async fn open_loop(
    clients: &[reqwest::Client],
    url: &str,
    body: &Bytes,
    pid: u32,
    rate: u64,
    duration: Duration,
) -> Stats {
    let total = rate * duration.as_secs();
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let results = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_time(pid);
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = started + interval * i as u32;
        tokio::time::sleep_until(scheduled).await;
        let (client, url, body, results, errors) = (
            clients[i as usize % clients.len()].clone(),
            url.to_string(),
            body.clone(),
            Arc::clone(&results),
            Arc::clone(&errors),
        );
        tasks.push(tokio::spawn(async move {
            match post_once(&client, &url, &body).await {
                Ok(()) => results
                    .lock()
                    .unwrap()
                    .push(scheduled.elapsed().as_micros() as u64),
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    let mut latencies = std::mem::take(&mut *results.lock().unwrap());
    latencies.sort_unstable();
    Stats {
        ok: latencies.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        latencies,
        cpu,
    }
}

// ---------------------------------------------------------------------------------------
// 1. Warm path
// ---------------------------------------------------------------------------------------

/// The Deployment fixture with `images` as its containers, in `namespace`.
fn deployment(uid: &str, namespace: &str, images: &[String]) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/admission/deployment-create.json");
    let mut review: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture"))
        .expect("fixture JSON");
    review["request"]["uid"] = json!(uid);
    review["request"]["namespace"] = json!(namespace);
    review["request"]["object"]["metadata"]["namespace"] = json!(namespace);
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image, "imagePullPolicy": "IfNotPresent"}))
        .collect();
    review["request"]["object"]["spec"]["template"]["spec"]["containers"] = json!(containers);
    review
}

async fn warm_path(env: &Env, report: &mut Report) {
    eprintln!("== warm path");
    let host = env.reg.host();
    env.reg
        .push_index(
            "private/team/web",
            "1.0",
            &["linux/amd64", "linux/arm64"],
            false,
        )
        .await;
    env.reg
        .push_index(
            "public/library/nginx",
            "1.25",
            &["linux/amd64", "linux/arm64"],
            true,
        )
        .await;
    env.tenant("team-a", &host);
    let images = [
        format!("{host}/private/team/web:1.0"),
        format!("{host}/public/library/nginx:1.25"),
    ];
    let review = deployment("7c4f3b0e-1d2a-4d8e-9b1f-000000000001", "team-a", &images);
    let body = Bytes::from(serde_json::to_vec(&review).expect("review JSON"));

    let pullcheck = Served::pullcheck(env, "warm", "defaultMode: enforce\n", &[]).await;
    let responder = Served::responder(env).await;
    let url_p = pullcheck.url("/validate/enforce?timeout=10s");
    let url_m = responder.url("/validate/enforce?timeout=10s");

    // The warm answer is the right one: admitted, both images resolved, no warning.
    let check = h2_client(&env.ca, pullcheck.addr);
    let answer: Value = check
        .post(&url_p)
        .body(body.clone())
        .send()
        .await
        .expect("review")
        .json()
        .await
        .expect("JSON");
    let resp = &answer["response"];
    assert_eq!(resp["allowed"], true, "{resp}");
    assert!(resp["warnings"].is_null(), "{resp}");
    assert_eq!(
        resp["auditAnnotations"]["images"]
            .as_str()
            .unwrap_or_default()
            .matches("sha256:")
            .count(),
        2,
        "{resp}"
    );
    env.reg.clear_requests().await;

    let servers = [
        ("minimal responder", &responder, &url_m),
        ("pullcheck serve", &pullcheck, &url_p),
    ];
    let mut clients = Vec::new();
    for (_, served, url) in servers {
        let c = connect(&env.ca, served, CLOSED_CONNECTIONS, url, &body).await;
        // Warm-up: connections, allocator, caches.
        closed_loop(
            &c,
            CLOSED_STREAMS,
            url,
            &body,
            served.pid(),
            Duration::from_secs(1),
        )
        .await;
        clients.push(c);
    }
    // Closed loop in alternating rounds, so that whatever else the machine does at the time
    // weighs on both servers alike.
    let mut closed: [Vec<Stats>; 2] = [Vec::new(), Vec::new()];
    for round in 0..CLOSED_ROUNDS {
        for (i, (name, served, url)) in servers.iter().enumerate() {
            eprintln!(
                "   round {round}: {name}: closed loop {CLOSED_CONNECTIONS}×{CLOSED_STREAMS} for {CLOSED_FOR:?}"
            );
            let s = closed_loop(
                &clients[i],
                CLOSED_STREAMS,
                url,
                &body,
                served.pid(),
                CLOSED_FOR,
            )
            .await;
            closed[i].push(s);
        }
    }
    let mut open = Vec::new();
    for (i, (name, served, url)) in servers.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        eprintln!("   {name}: open loop {OPEN_RATE}/s for {OPEN_FOR:?}");
        open.push(open_loop(&clients[i], url, &body, served.pid(), OPEN_RATE, OPEN_FOR).await);
    }
    let round_ratios: Vec<f64> = closed[1]
        .iter()
        .zip(&closed[0])
        .map(|(p, m)| p.rate() / m.rate())
        .collect();
    let (m_open, p_open) = (open[0].clone(), open[1].clone());
    let (m_closed, p_closed) = (Stats::merge(&closed[0]), Stats::merge(&closed[1]));
    let registry_requests = env.reg.requests().await.len();
    let rss = rss_kib(pullcheck.pid());
    report.warm = Some(Warm {
        round_ratios,
        minimal_closed: m_closed,
        minimal_open: m_open,
        pullcheck_closed: p_closed,
        pullcheck_open: p_open,
        registry_requests,
        rss_kib: rss,
    });
}

struct Warm {
    /// pullcheck / minimal throughput of each closed-loop round.
    round_ratios: Vec<f64>,
    minimal_closed: Stats,
    minimal_open: Stats,
    pullcheck_closed: Stats,
    pullcheck_open: Stats,
    registry_requests: usize,
    rss_kib: u64,
}

// ---------------------------------------------------------------------------------------
// Delaying proxy (cold path, coalescing)
// ---------------------------------------------------------------------------------------

/// A plain-HTTP reverse proxy in front of the registry and its token service that sleeps
/// `delay` before forwarding each request. The registry's token realm is rewritten to point
/// at the proxy, so token requests are delayed too.
struct DelayProxy {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct ProxyState {
    registry: String,
    token_realm: String,
    own_realm: String,
    client: reqwest::Client,
    delay: Duration,
}

const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "te",
];

async fn proxy_handle(State(p): State<Arc<ProxyState>>, req: Request) -> Response {
    tokio::time::sleep(p.delay).await;
    let (parts, body) = req.into_parts();
    let path_query = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let target = if parts.uri.path() == "/token" {
        let realm = p.token_realm.trim_end_matches("/token");
        format!("{realm}{path_query}")
    } else {
        format!("{}{path_query}", p.registry)
    };
    let body = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let mut headers = HeaderMap::new();
    for (k, v) in &parts.headers {
        if k != "host" && k != "content-length" && !HOP_BY_HOP.contains(&k.as_str()) {
            headers.append(k.clone(), v.clone());
        }
    }
    let upstream = p
        .client
        .request(parts.method.clone(), &target)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream = match upstream {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = upstream.status();
    let mut out_headers = HeaderMap::new();
    for (k, v) in upstream.headers() {
        if HOP_BY_HOP.contains(&k.as_str()) {
            continue;
        }
        if k == "www-authenticate" {
            let rewritten = v
                .to_str()
                .unwrap_or_default()
                .replace(&p.token_realm, &p.own_realm);
            if let Ok(v) = HeaderValue::from_str(&rewritten) {
                out_headers.append(HeaderName::from_static("www-authenticate"), v);
            }
            continue;
        }
        out_headers.append(k.clone(), v.clone());
    }
    let bytes = upstream.bytes().await.unwrap_or_default();
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    *resp.headers_mut() = out_headers;
    resp
}

impl DelayProxy {
    async fn start(reg: &TestRegistry, delay: Duration) -> DelayProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let ca = reg.ca_pem().expect("TLS registry");
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA")])
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("proxy client");
        let state = Arc::new(ProxyState {
            registry: reg.url(),
            token_realm: reg.token_realm().expect("token auth"),
            own_realm: format!("http://{addr}/token"),
            client,
            delay,
        });
        let app = axum::Router::new().fallback(proxy_handle).with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        DelayProxy { addr, task }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }
}

/// Registry requests by kind.
#[derive(Clone, Debug, Default)]
struct Counts {
    ping: usize,
    token: usize,
    head_manifest: usize,
    get_manifest: usize,
    get_blob: usize,
    list_tags: usize,
    other: usize,
}

impl Counts {
    fn of(requests: &[LoggedRequest], tokens: usize) -> Counts {
        let mut c = Counts {
            token: tokens,
            ..Counts::default()
        };
        for r in requests {
            match (r.method.as_str(), r.path.as_str()) {
                ("GET", "/v2/" | "/v2") => c.ping += 1,
                ("HEAD", p) if p.contains("/manifests/") => c.head_manifest += 1,
                ("GET", p) if p.contains("/manifests/") => c.get_manifest += 1,
                ("GET", p) if p.contains("/blobs/") => c.get_blob += 1,
                ("GET", p) if p.ends_with("/tags/list") => c.list_tags += 1,
                _ => c.other += 1,
            }
        }
        c
    }

    fn total(&self) -> usize {
        self.ping
            + self.token
            + self.head_manifest
            + self.get_manifest
            + self.get_blob
            + self.list_tags
            + self.other
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "{} ({} ping, {} token, {} HEAD manifest, {} GET manifest, {} GET blob",
            self.total(),
            self.ping,
            self.token,
            self.head_manifest,
            self.get_manifest,
            self.get_blob
        );
        if self.list_tags > 0 {
            s.push_str(&format!(", {} tag list", self.list_tags));
        }
        if self.other > 0 {
            s.push_str(&format!(", {} other", self.other));
        }
        s.push(')');
        s
    }
}

async fn counts(reg: &TestRegistry) -> Counts {
    let requests = reg.requests().await;
    let tokens = reg.token_requests().await.len();
    Counts::of(&requests, tokens)
}

// ---------------------------------------------------------------------------------------
// 2. Cold path
// ---------------------------------------------------------------------------------------

struct Cold {
    one: Vec<Duration>,
    ten: Vec<Duration>,
    one_counts: Counts,
    ten_counts: Counts,
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

async fn cold_path(env: &Env, report: &mut Report) {
    eprintln!("== cold path (registry behind a +{PROXY_DELAY:?} proxy)");
    let proxy = DelayProxy::start(&env.reg, PROXY_DELAY).await;
    let host = proxy.host();
    env.tenant("cold", &host);
    const TRIALS: usize = 3;
    // Distinct multi-platform images for every trial: nothing is cached anywhere.
    let mut repos = Vec::new();
    for t in 0..TRIALS {
        for i in 0..11 {
            repos.push(format!("private/cold/t{t}-img{i}"));
        }
    }
    futures::future::join_all(repos.iter().map(|r| {
        env.reg
            .push_index(r, "1", &["linux/amd64", "linux/arm64"], false)
    }))
    .await;
    let mut cold = Cold {
        one: Vec::new(),
        ten: Vec::new(),
        one_counts: Counts::default(),
        ten_counts: Counts::default(),
    };
    for t in 0..TRIALS {
        for n in [1usize, 10] {
            let images: Vec<String> = if n == 1 {
                vec![format!("{host}/private/cold/t{t}-img0:1")]
            } else {
                (1..=10)
                    .map(|i| format!("{host}/private/cold/t{t}-img{i}:1"))
                    .collect()
            };
            // A fresh process: no token, no challenge, no cached result.
            let served = Served::pullcheck(
                env,
                &format!("cold-{t}-{n}"),
                "defaultMode: enforce\n",
                std::slice::from_ref(&host),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await; // node watch settles
            env.reg.clear_requests().await;
            let client = h2_client(&env.ca, served.addr);
            client
                .get(served.url("/healthz"))
                .send()
                .await
                .expect("connect");
            let review = deployment(&format!("cold-{t}-{n}"), "cold", &images);
            let started = Instant::now();
            let answer: Value = client
                .post(served.url("/validate/enforce?timeout=10s"))
                .json(&review)
                .send()
                .await
                .expect("review")
                .json()
                .await
                .expect("JSON");
            let took = started.elapsed();
            let resp = &answer["response"];
            assert_eq!(resp["allowed"], true, "{resp}");
            assert!(resp["warnings"].is_null(), "{resp}");
            let c = counts(&env.reg).await;
            eprintln!(
                "   trial {t}, {n:>2} image(s): {} — registry requests {}",
                ms(took),
                c.describe()
            );
            if n == 1 {
                cold.one.push(took);
                cold.one_counts = c;
            } else {
                cold.ten.push(took);
                cold.ten_counts = c;
            }
        }
    }
    report.cold = Some(cold);
}

// ---------------------------------------------------------------------------------------
// 3. Coalescing
// ---------------------------------------------------------------------------------------

struct Coalesced {
    reviews: usize,
    wall: Duration,
    counts: Counts,
    cache_events: String,
    /// Secret and ServiceAccount reads at the API server during the burst.
    api_reads: usize,
    rss_kib: u64,
}

async fn coalescing(env: &Env, report: &mut Report) {
    eprintln!("== coalescing: 500 concurrent reviews of one new image");
    let proxy = DelayProxy::start(&env.reg, PROXY_DELAY).await;
    let host = proxy.host();
    env.tenant("burst", &host);
    env.reg
        .push_index(
            "private/burst/app",
            "1",
            &["linux/amd64", "linux/arm64"],
            false,
        )
        .await;
    let served = Served::pullcheck(
        env,
        "burst",
        "defaultMode: enforce\n",
        std::slice::from_ref(&host),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let image = format!("{host}/private/burst/app:1");
    let clients: Vec<reqwest::Client> = (0..5).map(|_| h2_client(&env.ca, served.addr)).collect();
    for c in &clients {
        c.get(served.url("/healthz")).send().await.expect("connect");
    }
    env.reg.clear_requests().await;
    let api_before = env.api.count("GET", "/namespaces/burst/");
    let url = served.url("/validate/enforce?timeout=10s");
    let started = Instant::now();
    let answers = futures::future::join_all((0..500).map(|i| {
        let client = clients[i % clients.len()].clone();
        let review = deployment(&format!("burst-{i}"), "burst", std::slice::from_ref(&image));
        let url = url.clone();
        async move {
            let v: Value = client
                .post(&url)
                .json(&review)
                .send()
                .await
                .expect("review")
                .json()
                .await
                .expect("JSON");
            v["response"]["allowed"] == true
        }
    }))
    .await;
    let wall = started.elapsed();
    assert!(answers.iter().all(|a| *a), "every review admitted");
    let c = counts(&env.reg).await;
    let api_reads = env.api.count("GET", "/namespaces/burst/") - api_before;
    let metrics = clients[0]
        .get(served.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let cache_events: Vec<String> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("pullcheck_cache_events_total{") && l.contains("cache=\"result\"")
        })
        .map(|l| {
            let event = l
                .split("event=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or("?");
            let n = l.rsplit(' ').next().unwrap_or("0");
            format!("{event} {n}")
        })
        .collect();
    eprintln!(
        "   {} in {} — registry requests {}; result cache: {}",
        answers.len(),
        ms(wall),
        c.describe(),
        cache_events.join(", ")
    );
    report.coalescing = Some(Coalesced {
        reviews: answers.len(),
        wall,
        counts: c,
        cache_events: cache_events.join(", "),
        api_reads,
        rss_kib: rss_kib(served.pid()),
    });
}

// ---------------------------------------------------------------------------------------
// 4. Memory (child processes: a fresh heap per measurement)
// ---------------------------------------------------------------------------------------

struct Memory {
    /// (label, max_results, lookups, RSS before, RSS after, entries)
    rows: Vec<(String, u64, u64, u64, u64, u64)>,
}

fn memory(report: &mut Report) {
    eprintln!("== memory: 100,000 cached results");
    let mut rows = Vec::new();
    for (label, max) in [
        ("default (maxEntries 100000)", 100_000u64),
        ("maxEntries: 10000", 10_000),
    ] {
        let out = Command::new(std::env::current_exe().expect("own path"))
            .env(MEMORY_CHILD, max.to_string())
            .output()
            .expect("memory child");
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "memory child: {e}: {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let get = |k: &str| v[k].as_u64().unwrap_or(0);
        eprintln!("   {label}: {v}");
        rows.push((
            label.to_string(),
            max,
            get("lookups"),
            get("rss_before_kib"),
            get("rss_after_kib"),
            get("entries"),
        ));
    }
    report.memory = Some(Memory { rows });
}

/// A registry double: every image resolves, each to its own digest and platform list (as
/// distinct real images would).
struct Double;

#[async_trait::async_trait]
impl pullcheck::registry::Registry for Double {
    async fn resolve(
        &self,
        image: &pullcheck::kubelet::reference::ImageRef,
        _: Option<&pullcheck::kubelet::credentials::Credential>,
    ) -> Result<pullcheck::registry::Resolved, pullcheck::registry::RegistryError> {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(image.canonical().as_bytes());
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        Ok(pullcheck::registry::Resolved {
            digest: format!("sha256:{hex}"),
            platforms: Arc::new(pullcheck::registry::ImagePlatforms {
                is_index: true,
                platforms: vec![
                    pullcheck::kubelet::platform::Platform::new("linux", "amd64", None),
                    pullcheck::kubelet::platform::Platform::new("linux", "arm64", None),
                ],
            }),
        })
    }
}

fn memory_child(max: &str) {
    let max: u64 = max.parse().expect("max entries");
    const LOOKUPS: u64 = 100_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        use pullcheck::config::assemble::{self, ClusterWiring, Wiring};
        let config = pullcheck::config::EngineConfig {
            cache: pullcheck::registry::cache::CacheConfig {
                max_results: max,
                max_stale: max,
                ..pullcheck::registry::cache::CacheConfig::default()
            },
            ..pullcheck::config::EngineConfig::default()
        };
        let cluster = Arc::new(pullcheck::cluster::InMemoryCluster::new());
        let wiring = Wiring::new(ClusterWiring::Given(cluster), Arc::new(pullcheck::metrics::Metrics::default()))
            .with_registry(Arc::new(Double));
        let assembled = assemble::engine(&config, wiring).await.expect("engine");
        // Only the result cache is measured.
        let cache = assembled.engine.checker.cache();
        // Three credential sets, as three tenants would have.
        let creds = [
            None,
            Some(pullcheck::kubelet::credentials::Credential::new("alice", "alice-pw")),
            Some(pullcheck::kubelet::credentials::Credential::new("bob", "bob-pw")),
        ];
        // Parse first: only the cache is measured.
        let refs: Vec<pullcheck::kubelet::reference::ImageRef> = (0..LOOKUPS)
            .map(|i| pullcheck::kubelet::reference::ImageRef::parse(&format!("registry.example.com/team-{}/service-{i}:v1.{}", i % 97, i % 13)).expect("reference"))
            .collect();
        let before = rss_kib(std::process::id());
        for (i, r) in refs.iter().enumerate() {
            let l = cache.lookup(r, creds[i % 3].as_ref()).await;
            assert!(l.result.is_ok());
        }
        // Let moka apply its pending evictions.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = cache.lookup(&refs[0], None).await;
        }
        let after = rss_kib(std::process::id());
        println!("{}", json!({"lookups": LOOKUPS, "max_results": max, "rss_before_kib": before, "rss_after_kib": after, "entries": cache.len()}));
    });
}

// ---------------------------------------------------------------------------------------
// 5. skopeo inspect loop vs pullcheck check
// ---------------------------------------------------------------------------------------

struct Versus {
    images: usize,
    skopeo_version: String,
    /// (what, wall, counts, ok)
    rows: Vec<(String, Duration, Counts, bool)>,
}

async fn skopeo(env: &Env, report: &mut Report) {
    eprintln!("== skopeo inspect loop vs pullcheck check, 50 images");
    let version = match Command::new("skopeo").arg("--version").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => {
            eprintln!("   skopeo not installed (apt-get install -y skopeo): section skipped");
            return;
        }
    };
    let host = env.reg.host();
    const N: usize = 50;
    let repos: Vec<String> = (0..N)
        .map(|i| format!("private/fleet/svc-{i:02}"))
        .collect();
    for chunk in repos.chunks(10) {
        futures::future::join_all(chunk.iter().map(|r| {
            env.reg
                .push_index(r, "1", &["linux/amd64", "linux/arm64"], false)
        }))
        .await;
    }
    let images: Vec<String> = repos.iter().map(|r| format!("{host}/{r}:1")).collect();
    // skopeo trusts the registry's CA from a certificate directory.
    let cert_dir = env.dir.path().join("skopeo-certs");
    std::fs::create_dir_all(&cert_dir).expect("cert dir");
    std::fs::copy(env.reg.ca_path().expect("CA"), cert_dir.join("ca.crt")).expect("copy CA");
    let creds = format!("{}:{}", ALICE.0, ALICE.1);
    let mut rows = Vec::new();

    for raw in [false, true] {
        env.reg.clear_requests().await;
        let started = Instant::now();
        let mut ok = true;
        for image in &images {
            let mut cmd = Command::new("skopeo");
            cmd.arg("inspect");
            if raw {
                cmd.arg("--raw");
            }
            let out = cmd
                .arg("--creds")
                .arg(&creds)
                .arg("--cert-dir")
                .arg(&cert_dir)
                .arg(format!("docker://{image}"))
                .env("HOME", env.dir.path())
                .output()
                .expect("run skopeo");
            if !out.status.success() {
                ok = false;
                eprintln!(
                    "   skopeo inspect {image}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        let wall = started.elapsed();
        let c = counts(&env.reg).await;
        let what = if raw {
            "`skopeo inspect --raw` loop"
        } else {
            "`skopeo inspect` loop"
        };
        eprintln!(
            "   {what}: {} — registry requests {}",
            ms(wall),
            c.describe()
        );
        rows.push((what.to_string(), wall, c, ok));
    }

    env.reg.clear_requests().await;
    let mut cmd = Command::new(pullcheck_bin());
    cmd.arg("check")
        .arg("--format")
        .arg("json")
        .arg("--docker-config")
        .arg(&env.docker_config)
        .arg("--registry-ca")
        .arg(format!(
            "{host}={}",
            env.reg.ca_path().expect("CA").display()
        ));
    for image in &images {
        cmd.arg("--image").arg(image);
    }
    let started = Instant::now();
    let out = cmd.output().expect("run pullcheck check");
    let wall = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ok = out.status.success()
        && stdout
            .lines()
            .filter(|l| l.contains("\"verdict\":\"ok\""))
            .count()
            == N;
    if !ok {
        eprintln!(
            "   pullcheck check: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let c = counts(&env.reg).await;
    eprintln!(
        "   pullcheck check: {} — registry requests {}",
        ms(wall),
        c.describe()
    );
    rows.push((
        "`pullcheck check --image …` ×50 (one process)".to_string(),
        wall,
        c,
        ok,
    ));
    report.versus = Some(Versus {
        images: N,
        skopeo_version: version,
        rows,
    });
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Report {
    /// /proc/loadavg (1, 5, 15 min) when the benchmark started: others' work skews figures.
    load_before: String,
    warm: Option<Warm>,
    cold: Option<Cold>,
    coalescing: Option<Coalesced>,
    memory: Option<Memory>,
    versus: Option<Versus>,
}

impl Report {
    fn print(&self, total: Duration) {
        let mut out = String::new();
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        out.push_str(&format!(
            "\n## pullcheck benchmark ({cores} cores, {cpu}; load generator on the same machine; load average at start: {})\n",
            self.load_before
        ));
        if let Some(w) = &self.warm {
            out.push_str(
                "\n### Warm path: Deployment CREATE, 2 images, pull secret via ServiceAccount, HTTP/2 + TLS\n\n\
                 | server | load | reviews/s | p50 | p99 | max | CPU per review | errors |\n|---|---|---|---|---|---|---|---|\n",
            );
            for (name, s, load) in [
                (
                    "minimal responder",
                    &w.minimal_closed,
                    format!("closed, {CLOSED_CONNECTIONS} conns × {CLOSED_STREAMS} streams, {CLOSED_ROUNDS} × {}s", CLOSED_FOR.as_secs()),
                ),
                (
                    "pullcheck serve",
                    &w.pullcheck_closed,
                    format!("closed, {CLOSED_CONNECTIONS} conns × {CLOSED_STREAMS} streams, {CLOSED_ROUNDS} × {}s", CLOSED_FOR.as_secs()),
                ),
                (
                    "minimal responder",
                    &w.minimal_open,
                    format!("open, {OPEN_RATE}/s"),
                ),
                (
                    "pullcheck serve",
                    &w.pullcheck_open,
                    format!("open, {OPEN_RATE}/s"),
                ),
            ] {
                out.push_str(&format!(
                    "| {name} | {load} | {:.0} | {} | {} | {} | {:.0} µs | {} |\n",
                    s.rate(),
                    ms(s.quantile(0.5)),
                    ms(s.quantile(0.99)),
                    ms(s.latencies
                        .last()
                        .map_or(Duration::ZERO, |&m| Duration::from_micros(m))),
                    s.cpu_per_review().as_secs_f64() * 1e6,
                    s.errors
                ));
            }
            let ratio = w.pullcheck_closed.rate() / w.minimal_closed.rate();
            out.push_str(&format!(
                "\npullcheck / minimal responder throughput: **{:.0}%** (rounds: {}; aim ≥ 80%); \
                 server CPU per review: {:.1}× the minimal responder's; p99 at {OPEN_RATE}/s: **{}** (aim < 5 ms). \
                 Registry requests during the warm runs: {}. pullcheck RSS after: {:.1} MiB.\n",
                ratio * 100.0,
                w.round_ratios
                    .iter()
                    .map(|r| format!("{:.0}%", r * 100.0))
                    .collect::<Vec<_>>()
                    .join(", "),
                w.pullcheck_closed.cpu_per_review().as_secs_f64()
                    / w.minimal_closed.cpu_per_review().as_secs_f64(),
                ms(w.pullcheck_open.quantile(0.99)),
                w.registry_requests,
                w.rss_kib as f64 / 1024.0
            ));
        }
        if let Some(c) = &self.cold {
            let (one, ten) = (median(&c.one), median(&c.ten));
            out.push_str(&format!(
                "\n### Cold path: registry and token service behind a proxy adding {} ms per request\n\n\
                 | review | latency (median of {}) | registry requests (last trial) |\n|---|---|---|\n\
                 | 1 image | {} | {} |\n| 10 distinct images | {} | {} |\n\n\
                 10 images / 1 image: **{:.2}×** (aim ≤ 1.5×).\n",
                PROXY_DELAY.as_millis(),
                c.one.len(),
                ms(one),
                c.one_counts.describe(),
                ms(ten),
                c.ten_counts.describe(),
                ten.as_secs_f64() / one.as_secs_f64()
            ));
        }
        if let Some(c) = &self.coalescing {
            out.push_str(&format!(
                "\n### Coalescing: {} concurrent reviews of one new image (+{} ms proxy)\n\n\
                 answered in {}; registry requests: **{}**; result cache: {}; API-server reads (Secret, ServiceAccount): {}; pullcheck RSS after: {:.1} MiB.\n",
                c.reviews,
                PROXY_DELAY.as_millis(),
                ms(c.wall),
                c.counts.describe(),
                c.cache_events,
                c.api_reads,
                c.rss_kib as f64 / 1024.0
            ));
        }
        if let Some(m) = &self.memory {
            out.push_str("\n### Memory: results cache + last-good cache (pullcheck::registry::cache::CachedRegistry), 100,000 distinct lookups, 3 credential sets\n\n| configuration | entries kept | RSS before | RSS after | growth | per entry |\n|---|---|---|---|---|---|\n");
            for (label, _, _, before, after, entries) in &m.rows {
                let growth = after.saturating_sub(*before);
                out.push_str(&format!(
                    "| {label} | {entries} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {} |\n",
                    *before as f64 / 1024.0,
                    *after as f64 / 1024.0,
                    growth as f64 / 1024.0,
                    if *entries > 0 {
                        format!("{:.0} B", growth as f64 * 1024.0 / *entries as f64)
                    } else {
                        "–".into()
                    }
                ));
            }
        }
        if let Some(v) = &self.versus {
            out.push_str(&format!(
                "\n### Against a script: {} images (multi-platform, token auth, TLS) on the same local registry ({})\n\n\
                 | what | wall time | registry requests | all ok |\n|---|---|---|---|\n",
                v.images, v.skopeo_version
            ));
            for (what, wall, c, ok) in &v.rows {
                out.push_str(&format!(
                    "| {what} | {} | {} | {} |\n",
                    ms(*wall),
                    c.describe(),
                    if *ok { "yes" } else { "NO" }
                ));
            }
        }
        out.push_str(&format!(
            "\n(benchmark took {:.0} s)\n",
            total.as_secs_f64()
        ));
        println!("{out}");
    }
}
