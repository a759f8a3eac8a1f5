//! Starting and stopping a real `docker-registry` (distribution 2.8) and reading its access log.

use super::tls::{install_crypto_provider, TestCa};
use super::token::TokenServer;
use super::util::{free_port, nonce};
use super::{Auth, LoggedRequest, RegistryOptions, TokenRequest, ADMIN, ALICE, BOB};
use super::{TOKEN_ISSUER, TOKEN_SERVICE};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

const MISSING_BINARY: &str = "docker-registry not found: install Debian's docker-registry package \
(apt-get install -y docker-registry); these tests need a real registry";

/// User-Agent of the harness's readiness probes; their access-log lines are hidden.
const READINESS_UA: &str = "pullcheck-harness-readiness";
/// How long the access log must be quiet before it is read.
const QUIET: Duration = Duration::from_millis(150);
/// Upper bound for waiting on a quiet log.
const SETTLE_MAX: Duration = Duration::from_secs(5);
/// Upper bound for the registry to answer `/v2/`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `docker-registry serve` on 127.0.0.1; dropping it kills the registry and
/// the token server and removes the temporary directories.
pub struct TestRegistry {
    pub(super) port: u16,
    pub(super) tls: bool,
    pub(super) auth: Auth,
    pub(super) client: reqwest::Client,
    ca_pem: Option<String>,
    ca_path: Option<PathBuf>,
    // Dropped in this order: the process first, then the token server, then the files.
    process: RegistryProcess,
    pub(super) token: Option<TokenServer>,
    dir: tempfile::TempDir,
}

/// The child process and the buffers its reader tasks fill. Drop kills and reaps it.
struct RegistryProcess {
    child: Child,
    log: Arc<Mutex<LogBuffer>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

struct LogBuffer {
    lines: Vec<String>,
    last_line_at: Instant,
}

enum StartError {
    AddrInUse(String),
    Failed(String),
}

fn find_binary() -> PathBuf {
    let default = Path::new("/usr/bin/docker-registry");
    if default.is_file() {
        return default.to_path_buf();
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("docker-registry");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "\n\n{}\n{MISSING_BINARY}\n{}\n\n",
        "!".repeat(78),
        "!".repeat(78)
    );
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// `openssl req -x509` as in Docker's "Deploy a registry server" documentation, writing
/// `registry.crt` and `registry.key` into `dir`.
fn openssl_req_x509(dir: &Path) {
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30",
        ])
        .args(["-subj", "/CN=pullcheck self-signed registry"])
        .args(["-addext", "subjectAltName = IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.join("registry.key"))
        .arg("-out")
        .arg(dir.join("registry.crt"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("openssl not runnable ({e}): install Debian's openssl package"));
    assert!(
        out.status.success(),
        "openssl req -x509 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("string to JSON") // a JSON string is a valid YAML scalar
}

/// Parses one access-log line of distribution 2.8 (Apache combined format, gorilla/handlers):
/// `127.0.0.1 - - [22/Nov/2026:01:35:58 +0000] "HEAD /v2/x/manifests/latest?a=b HTTP/1.1" 404 96 "" "curl/7.88.1"`.
/// Returns the request and the User-Agent.
fn parse_access_line(line: &str) -> Option<(LoggedRequest, String)> {
    let start = line.find("] \"")? + 3;
    let rest = &line[start..];
    // The request line is quoted; gorilla escapes '"' and '\' inside it.
    let mut end = None;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end?;
    let mut request = rest[..end].split(' ');
    let method = request.next()?.to_string();
    let uri = request.next()?;
    let after = &rest[end + 1..];
    let status: u16 = after.split_whitespace().next()?.parse().ok()?;
    let user_agent = after
        .trim_end()
        .strip_suffix('"')
        .and_then(|s| s.rfind(" \"").map(|i| s[i + 2..].to_string()))
        .unwrap_or_default();
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    Some((
        LoggedRequest {
            method,
            path: path.to_string(),
            query: query.to_string(),
            status,
        },
        user_agent,
    ))
}

fn spawn_line_reader(
    stream: impl AsyncRead + Unpin + Send + 'static,
    sink: impl Fn(String) + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            sink(line);
        }
    })
}

impl TestRegistry {
    /// Starts docker-registry on 127.0.0.1:<free port> and waits (≤ 10 s) until `/v2/` answers.
    pub async fn start(opts: RegistryOptions) -> TestRegistry {
        Self::start_with(opts, false).await
    }

    /// A TLS registry without auth whose certificate is made the way Docker's registry
    /// documentation shows (`openssl req -x509 …`: self-signed, `basicConstraints` CA:TRUE,
    /// SAN IP:127.0.0.1); [`Self::ca_pem`] is that certificate.
    pub async fn start_openssl_self_signed() -> TestRegistry {
        Self::start_with(
            RegistryOptions {
                tls: true,
                auth: Auth::None,
            },
            true,
        )
        .await
    }

    async fn start_with(opts: RegistryOptions, openssl_self_signed: bool) -> TestRegistry {
        let binary = find_binary();
        assert!(
            opts.tls || opts.auth == Auth::None,
            "RegistryOptions {{ tls: false, auth: {:?} }}: plain HTTP works only with Auth::None",
            opts.auth
        );
        install_crypto_provider();
        let dir = tempfile::Builder::new()
            .prefix("pullcheck-registry-")
            .tempdir()
            .expect("create temp dir");
        let root = dir.path();
        std::fs::create_dir(root.join("storage")).expect("create storage dir");

        let mut tls_yaml = String::new();
        let mut ca_pem = None;
        let mut ca_path = None;
        let mut token = None;
        let mut ca = None;
        if openssl_self_signed {
            openssl_req_x509(root);
            let cert =
                std::fs::read_to_string(root.join("registry.crt")).expect("read certificate");
            tls_yaml = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                yaml_str(&root.join("registry.crt").to_string_lossy()),
                yaml_str(&root.join("registry.key").to_string_lossy()),
            );
            ca_path = Some(root.join("registry.crt"));
            ca_pem = Some(cert);
        } else if opts.tls {
            let test_ca = TestCa::new();
            let leaf = test_ca.server_leaf("pullcheck test registry");
            let path = root.join("ca.pem");
            write(&path, &test_ca.cert_pem);
            write(&root.join("registry.crt"), &leaf.cert_pem);
            write(&root.join("registry.key"), &leaf.key_pem);
            tls_yaml = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                yaml_str(&root.join("registry.crt").to_string_lossy()),
                yaml_str(&root.join("registry.key").to_string_lossy()),
            );
            ca_pem = Some(test_ca.cert_pem.clone());
            ca_path = Some(path);
            ca = Some(test_ca);
        }

        let auth_yaml = match opts.auth {
            Auth::None => String::new(),
            Auth::Htpasswd => {
                let mut htpasswd = String::new();
                for (user, password) in [ADMIN, ALICE, BOB] {
                    // Cost 4 (the minimum) keeps the registry's checks fast.
                    let hash = bcrypt::hash(password, 4).expect("bcrypt");
                    htpasswd.push_str(&format!("{user}:{hash}\n"));
                }
                let path = root.join("htpasswd");
                write(&path, &htpasswd);
                format!(
                    "auth:\n  htpasswd:\n    realm: pullcheck-test-realm\n    path: {}\n",
                    yaml_str(&path.to_string_lossy())
                )
            }
            Auth::Token => {
                let (server, bundle) =
                    TokenServer::start(ca.as_ref().expect("token auth needs TLS")).await;
                let path = root.join("token-signer.pem");
                write(&path, &bundle);
                let yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    yaml_str(&server.realm()),
                    yaml_str(&path.to_string_lossy())
                );
                token = Some(server);
                yaml
            }
        };

        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30));
        if openssl_self_signed {
            // rustls refuses a CA:TRUE server certificate; the harness's own client only
            // talks to this loopback registry.
            builder = builder.tls_danger_accept_invalid_certs(true);
        } else if let Some(pem) = &ca_pem {
            let cert = reqwest::Certificate::from_pem(pem.as_bytes()).expect("CA PEM");
            builder = builder.tls_certs_only([cert]);
        }
        let client = builder.build().expect("build reqwest client");

        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  formatter: text\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
                 maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: {}\n{tls_yaml}{auth_yaml}",
                yaml_str(&root.join("storage").to_string_lossy()),
                nonce(),
            );
            let config_path = root.join("config.yml");
            write(&config_path, &config);

            let mut process = spawn(&binary, &config_path, root);
            let url = format!(
                "{}://127.0.0.1:{port}/v2/",
                if opts.tls { "https" } else { "http" }
            );
            match process.wait_ready(&client, &url).await {
                Ok(()) => {
                    return TestRegistry {
                        port,
                        tls: opts.tls,
                        auth: opts.auth,
                        client,
                        ca_pem,
                        ca_path,
                        process,
                        token,
                        dir,
                    }
                }
                // Another process took the port between probing and binding: retry.
                Err(StartError::AddrInUse(stderr)) => last_error = stderr,
                Err(StartError::Failed(message)) => panic!("{message}"),
            }
        }
        panic!("docker-registry could not get a free port in 3 tries; stderr:\n{last_error}");
    }

    /// Changes `user`'s password (an htpasswd registry): rewrites the htpasswd file and
    /// restarts the registry on the same port and storage (distribution 2.8 reads the
    /// file once, at start).
    pub async fn set_password(&mut self, user: &str, password: &str) {
        assert_eq!(
            self.auth,
            Auth::Htpasswd,
            "set_password needs an htpasswd registry"
        );
        let root = self.dir.path().to_path_buf();
        let path = root.join("htpasswd");
        let old = std::fs::read_to_string(&path).expect("read htpasswd");
        let hash = bcrypt::hash(password, 4).expect("bcrypt");
        let mut found = false;
        let new: String = old
            .lines()
            .map(|l| {
                if l.split_once(':').is_some_and(|(u, _)| u == user) {
                    found = true;
                    format!("{user}:{hash}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        assert!(found, "no user {user} in htpasswd");
        write(&path, &new);
        let url = format!("{}/v2/", self.url());
        let _ = self.process.child.start_kill();
        let _ = self.process.child.wait().await;
        for _attempt in 0..20 {
            let process = spawn(&find_binary(), &root.join("config.yml"), &root);
            drop(std::mem::replace(&mut self.process, process));
            match self.process.wait_ready(&self.client, &url).await {
                Ok(()) => return,
                Err(StartError::AddrInUse(_)) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(StartError::Failed(message)) => panic!("{message}"),
            }
        }
        panic!("docker-registry did not restart on port {}", self.port);
    }

    /// "127.0.0.1:PORT"
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// "http" or "https"
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// "SCHEME://127.0.0.1:PORT" (extra).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme(), self.host())
    }

    /// PEM of the CA that signed the registry's and token server's certificates; None for plain HTTP.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// That CA PEM as a file; None for plain HTTP.
    pub fn ca_path(&self) -> Option<PathBuf> {
        self.ca_path.clone()
    }

    /// The token realm "https://127.0.0.1:PORT/token" (Auth::Token only; extra).
    pub fn token_realm(&self) -> Option<String> {
        self.token.as_ref().map(TokenServer::realm)
    }

    /// What the registry wrote to stderr so far (logrus text; extra, for diagnostics).
    pub fn stderr(&self) -> String {
        self.process.stderr.lock().unwrap().clone()
    }

    /// Waits until the access log has been quiet for ~150 ms, counted from now at the
    /// earliest (the registry writes a line after the response is sent); at most 5 s.
    async fn settle(&self) {
        let start = Instant::now();
        loop {
            let last = self.process.log.lock().unwrap().last_line_at.max(start);
            let quiet = last.elapsed();
            if quiet >= QUIET || start.elapsed() >= SETTLE_MAX {
                return;
            }
            tokio::time::sleep(QUIET - quiet).await;
        }
    }

    /// The access log parsed (after settling). The harness's readiness probes are left out;
    /// the push helpers' requests are in.
    pub async fn requests(&self) -> Vec<LoggedRequest> {
        self.settle().await;
        let log = self.process.log.lock().unwrap();
        log.lines
            .iter()
            .filter_map(|line| parse_access_line(line))
            .filter(|(_, user_agent)| user_agent != READINESS_UA)
            .map(|(request, _)| request)
            .collect()
    }

    /// Forgets the access log and the token requests so far (after settling).
    pub async fn clear_requests(&self) {
        self.settle().await;
        self.process.log.lock().unwrap().lines.clear();
        if let Some(token) = &self.token {
            token.clear();
        }
    }

    /// Logged requests with this method (case-insensitive) whose path contains `path_part`.
    pub async fn count(&self, method: &str, path_part: &str) -> usize {
        self.requests()
            .await
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.contains(path_part))
            .count()
    }

    /// The token requests seen since start / the last clear (empty unless Auth::Token).
    pub async fn token_requests(&self) -> Vec<TokenRequest> {
        self.token
            .as_ref()
            .map(TokenServer::records)
            .unwrap_or_default()
    }
}

impl RegistryProcess {
    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Polls `url` until the registry answers (any status with its API-version header).
    async fn wait_ready(&mut self, client: &reqwest::Client, url: &str) -> Result<(), StartError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader drain the pipe.
                let _ = tokio::time::timeout(Duration::from_secs(1), &mut self.readers[1]).await;
                let stderr = self.stderr();
                if stderr.contains("address already in use") {
                    return Err(StartError::AddrInUse(stderr));
                }
                return Err(StartError::Failed(format!(
                    "docker-registry exited ({status}) before answering {url}; stderr:\n{stderr}"
                )));
            }
            let probe = client
                .get(url)
                .header(reqwest::header::USER_AGENT, READINESS_UA)
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if let Ok(response) = &probe {
                if response
                    .headers()
                    .contains_key("docker-distribution-api-version")
                {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(StartError::Failed(format!(
                    "docker-registry did not answer {url} within {START_TIMEOUT:?}; last probe: {probe:?}; stderr:\n{}",
                    self.stderr()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts `docker-registry serve <config>` in `root`, its output read into buffers.
fn spawn(binary: &Path, config_path: &Path, root: &Path) -> RegistryProcess {
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .arg(config_path)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Environment variables REGISTRY_* would override the config file.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("REGISTRY_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));

    let log = Arc::new(Mutex::new(LogBuffer {
        lines: Vec::new(),
        last_line_at: Instant::now(),
    }));
    let stderr = Arc::new(Mutex::new(String::new()));
    let out_reader = {
        let log = log.clone();
        spawn_line_reader(child.stdout.take().expect("stdout"), move |line| {
            let mut log = log.lock().unwrap();
            log.lines.push(line);
            log.last_line_at = Instant::now();
        })
    };
    let err_reader = {
        let stderr = stderr.clone();
        spawn_line_reader(child.stderr.take().expect("stderr"), move |line| {
            let mut stderr = stderr.lock().unwrap();
            stderr.push_str(&line);
            stderr.push('\n');
        })
    };
    RegistryProcess {
        child,
        log,
        stderr,
        readers: vec![out_reader, err_reader],
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
        let _ = self.child.start_kill();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}
