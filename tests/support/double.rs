//! The one registry double of the tests: an HTTP(S) server on a loopback address whose
//! every answer comes from a routing function of the test. It records each request (method,
//! path, `Host` and the `Authorization` it carried) and counts TCP connections as they are
//! accepted, before anything is read, so a test can show that none was made.
//!
//! Canned behaviours cover the fault tests ([`Double::behaving`]: slow, hanging, failing,
//! rate limited, pointing to a token realm); a route of the test covers everything else
//! (redirects, challenges, tokens, a registry's answers, any status and headers):
//!
//! ```ignore
//! let bad = Double::behaving(Behaviour::Status(500)).await;
//! let b = Double::start("127.0.0.2", None, |r| match r.path.as_str() {
//!     p if p.starts_with("/hop1/") => Reply::redirect(307, &p.replacen("/hop1/", "/hop2/", 1)),
//!     _ => Reply::Registry,
//! }).await;
//! ```
//!
//! [`Reply::Registry`] answers as a registry holding one small OCI index (linux/amd64,
//! linux/arm64, with its right digest) under every name and reference, and a tag list.
//! Each server runs on its own thread and runtime, so it keeps answering whatever the
//! test's runtime is doing; dropping it stops it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::tls::{install_crypto_provider, TestCa};
use super::util::sha256_digest;

/// One request as the double saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// The `Host` header (HTTP/1.1) or `:authority` (HTTP/2).
    pub host: String,
    /// The `Authorization` header, when one was sent.
    pub authorization: Option<String>,
}

/// What to answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// What a registry holding one OCI index under every name and tag answers for the
    /// request's path with any prefix before `/v2/` removed (`/hop2/v2/a/manifests/1` is
    /// answered as `/v2/a/manifests/1`): `/v2/`, the index (HEAD and GET), a tag list.
    Registry,
    /// A redirect with this status to this `Location` (absolute or relative).
    Redirect { status: u16, location: String },
    /// 401 with this `WWW-Authenticate` and a distribution error body.
    Challenge(String),
    /// 200 with `{"token": …, "expires_in": 300}`.
    Token(String),
    /// An empty answer with this status.
    Status(u16),
    /// A distribution error (`{"errors":[{"code": …}]}`) with this status, and a
    /// `Retry-After` in seconds when given.
    Error {
        status: u16,
        code: &'static str,
        retry_after_secs: Option<u64>,
    },
    /// Any status, headers and body.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// This answer after a sleep.
    Slow(Duration, Box<Reply>),
    /// Reads the request and never answers (the connection stays open).
    Hang,
}

impl Reply {
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::Redirect {
            status,
            location: location.to_string(),
        }
    }

    pub fn json(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Reply {
        let mut all = vec![("content-type".to_string(), "application/json".to_string())];
        all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Reply::Raw {
            status,
            headers: all,
            body: body.into(),
        }
    }
}

/// Canned behaviours of a misbehaving registry, for the fault tests.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Answers properly, at once.
    Ok,
    /// Sleeps this long before every answer, then answers properly.
    Slow(Duration),
    /// `/v2/` answers 200; everything under a repository answers this status.
    Status(u16),
    /// `/v2/` answers 200; everything under a repository answers 429 with this
    /// `Retry-After` (seconds).
    RateLimited { retry_after_secs: u64 },
    /// Reads each request and never answers it (the connection stays open).
    Hang,
    /// Accepts TCP connections and never reads or writes a byte.
    Silent,
    /// Every request answers 401 with `WWW-Authenticate: Bearer realm="<realm>"`: a token
    /// service the client then has to reach.
    TokenRealm(String),
}

impl Behaviour {
    fn reply(&self, seen: &Seen) -> Reply {
        let base = seen.path == "/v2/" || seen.path == "/v2";
        match self {
            Behaviour::Ok | Behaviour::Silent => Reply::Registry,
            Behaviour::Slow(delay) => Reply::Slow(*delay, Box::new(Reply::Registry)),
            Behaviour::Hang => Reply::Hang,
            Behaviour::Status(_) | Behaviour::RateLimited { .. } if base => Reply::Registry,
            Behaviour::Status(status) => Reply::Error {
                status: *status,
                code: "UNKNOWN",
                retry_after_secs: None,
            },
            Behaviour::RateLimited { retry_after_secs } => Reply::Error {
                status: 429,
                code: "TOOMANYREQUESTS",
                retry_after_secs: Some(*retry_after_secs),
            },
            Behaviour::TokenRealm(realm) => {
                Reply::Challenge(format!(r#"Bearer realm="{realm}",service="bad-registry""#))
            }
        }
    }
}

/// The OCI index [`Reply::Registry`] serves.
pub fn index_body() -> Vec<u8> {
    let entry = |arch: &str, n: u8| {
        serde_json::json!({
            "mediaType": super::media::OCI_MANIFEST,
            "digest": format!("sha256:{}", format!("{n:02x}").repeat(32)),
            "size": 512,
            "platform": {"architecture": arch, "os": "linux"},
        })
    };
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": super::media::OCI_INDEX,
        "manifests": [entry("amd64", 1), entry("arm64", 2)],
    }))
    .expect("index JSON")
}

/// A port on 127.0.0.1 where nothing listens (bound, read and released).
pub fn dead_port() -> u16 {
    super::util::free_port()
}

type Route = dyn Fn(&Seen) -> Reply + Send + Sync;

/// Requests kept for [`Double::seen`]; more are counted, not kept, so a double asked
/// millions of times (tests/bounded.rs measures the memory of its own process) stays small.
const KEPT: usize = 1_000;

struct Shared {
    route: Box<Route>,
    seen: Mutex<Vec<Seen>>,
    requests: AtomicUsize,
    accepted: Arc<AtomicUsize>,
    index: Vec<u8>,
    digest: String,
}

/// How the double speaks.
enum Mode {
    Http,
    /// TLS with this certificate and key (PEM).
    Tls(Vec<u8>, Vec<u8>),
    /// Accepts connections and never reads or writes.
    Silent,
}

/// A running double; dropped, it stops.
pub struct Double {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Double {
    /// A double on `ip` (e.g. "127.0.0.1", "127.0.0.2", or "0.0.0.0" to be reached on every
    /// 127/8 address) and a free port, answering by `route`; over TLS with a certificate of
    /// `ca` (for `ip`, 127.0.0.1 and localhost) when given.
    pub async fn start(
        ip: &str,
        ca: Option<&TestCa>,
        route: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Double {
        let mode = match ca {
            Some(ca) => {
                let leaf = ca.server_leaf_for(&[ip, "127.0.0.1", "localhost"], "pullcheck double");
                Mode::Tls(leaf.cert_pem.into_bytes(), leaf.key_pem.into_bytes())
            }
            None => Mode::Http,
        };
        Self::launch(ip, mode, Box::new(route)).await
    }

    /// A plain-HTTP double on 127.0.0.1 with a canned behaviour.
    pub async fn behaving(behaviour: Behaviour) -> Double {
        let mode = match behaviour {
            Behaviour::Silent => Mode::Silent,
            _ => Mode::Http,
        };
        Self::launch("127.0.0.1", mode, Box::new(move |r| behaviour.reply(r))).await
    }

    /// A double with a canned behaviour over TLS, with a certificate from a throw-away CA
    /// that nothing trusts ([`Behaviour::Silent`] never gets as far as a handshake).
    pub async fn behaving_tls_unknown_ca(behaviour: Behaviour) -> Double {
        let mode = match behaviour {
            Behaviour::Silent => Mode::Silent,
            _ => {
                let leaf = TestCa::new().server_leaf("pullcheck bad registry");
                Mode::Tls(leaf.cert_pem.into_bytes(), leaf.key_pem.into_bytes())
            }
        };
        let mut double =
            Self::launch("127.0.0.1", mode, Box::new(move |r| behaviour.reply(r))).await;
        double.tls = true;
        double
    }

    async fn launch(ip: &str, mode: Mode, route: Box<Route>) -> Double {
        install_crypto_provider();
        let index = index_body();
        let shared = Arc::new(Shared {
            route,
            seen: Mutex::new(Vec::new()),
            requests: AtomicUsize::new(0),
            accepted: Arc::new(AtomicUsize::new(0)),
            digest: sha256_digest(&index),
            index,
        });
        let listener = std::net::TcpListener::bind((ip, 0)).expect("bind the double");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("the double's address");
        let tls = matches!(mode, Mode::Tls(..));
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel::<()>();
        let state = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("registry-double".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the double's runtime");
                runtime.block_on(serve(listener, state, mode, stopped, ready_tx));
            })
            .expect("spawn the double's thread");
        ready_rx.await.expect("the double started");
        Double {
            addr,
            tls,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// "IP:PORT", as written in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// "http(s)://IP:PORT".
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The requests received so far, in order (the first 1,000).
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// HTTP requests received so far (0 for [`Behaviour::Silent`], which reads nothing).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far (whether or not a request followed).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Counts accepted TCP connections before anything is read from them.
#[derive(Clone)]
struct CountingAcceptor(Arc<AtomicUsize>);

impl<S> axum_server::accept::Accept<TcpStream, S> for CountingAcceptor {
    type Stream = TcpStream;
    type Service = S;
    type Future = std::future::Ready<std::io::Result<(TcpStream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok((stream, service)))
    }
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mode: Mode,
    stopped: oneshot::Receiver<()>,
    ready: oneshot::Sender<()>,
) {
    let counting = CountingAcceptor(Arc::clone(&shared.accepted));
    let app = Router::new()
        .fallback(handle)
        .with_state(Arc::clone(&shared));
    // Dropping the server future stops accepting; the runtime's end (when this thread's
    // block_on returns) ends the connections still open.
    let server = async {
        match mode {
            Mode::Silent => {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let mut held = Vec::new();
                while let Ok((socket, _)) = listener.accept().await {
                    shared.accepted.fetch_add(1, Ordering::SeqCst);
                    held.push(socket);
                }
            }
            Mode::Tls(cert, key) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_pem(cert, key)
                    .await
                    .expect("the double's TLS config");
                let acceptor =
                    axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(counting);
                let _ = axum_server::from_tcp(listener)
                    .expect("the double's listener")
                    .acceptor(acceptor)
                    .serve(app.into_make_service())
                    .await;
            }
            Mode::Http => {
                let _ = axum_server::from_tcp(listener)
                    .expect("the double's listener")
                    .acceptor(counting)
                    .serve(app.into_make_service())
                    .await;
            }
        }
    };
    let _ = ready.send(());
    tokio::select! {
        _ = server => {}
        _ = stopped => {}
    }
}

async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let text = |name| {
        headers
            .get(name)
            .map(|v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let seen = Seen {
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |p| p.to_string()),
        host: text(header::HOST)
            .or_else(|| uri.authority().map(|a| a.to_string()))
            .unwrap_or_default(),
        authorization: text(header::AUTHORIZATION),
    };
    s.requests.fetch_add(1, Ordering::SeqCst);
    {
        let mut kept = s.seen.lock().unwrap();
        if kept.len() < KEPT {
            kept.push(seen.clone());
        }
    }
    let mut reply = (s.route)(&seen);
    loop {
        match reply {
            Reply::Slow(delay, then) => {
                tokio::time::sleep(delay).await;
                reply = *then;
            }
            Reply::Hang => std::future::pending::<()>().await,
            other => return answer(&s, &method, uri.path(), other),
        }
    }
}

fn distribution_error(code: &str) -> String {
    format!(r#"{{"errors":[{{"code":"{code}","message":"the double says so"}}]}}"#)
}

fn answer(s: &Shared, method: &Method, path: &str, reply: Reply) -> Response {
    let mut response = match reply {
        Reply::Registry => registry_answer(s, method, path),
        Reply::Redirect { status, location } => (
            StatusCode::from_u16(status).expect("redirect status"),
            [(header::LOCATION, location)],
        )
            .into_response(),
        Reply::Challenge(challenge) => (
            StatusCode::UNAUTHORIZED,
            [
                (header::WWW_AUTHENTICATE, challenge),
                (header::CONTENT_TYPE, "application/json".into()),
            ],
            distribution_error("UNAUTHORIZED"),
        )
            .into_response(),
        Reply::Token(token) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({"token": token, "expires_in": 300}).to_string(),
        )
            .into_response(),
        Reply::Status(code) => StatusCode::from_u16(code).expect("status").into_response(),
        Reply::Error {
            status,
            code,
            retry_after_secs,
        } => {
            let mut r = (
                StatusCode::from_u16(status).expect("status"),
                [(header::CONTENT_TYPE, "application/json")],
                distribution_error(code),
            )
                .into_response();
            if let Some(secs) = retry_after_secs {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            r
        }
        Reply::Raw {
            status,
            headers,
            body,
        } => {
            let mut r = (StatusCode::from_u16(status).expect("status"), body).into_response();
            for (k, v) in headers {
                r.headers_mut().append(
                    header::HeaderName::try_from(k).expect("header name"),
                    HeaderValue::try_from(v).expect("header value"),
                );
            }
            r
        }
        Reply::Slow(..) | Reply::Hang => unreachable!("handled before"),
    };
    response.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

/// The answers of a registry holding one index under every name and reference.
fn registry_answer(s: &Shared, method: &Method, path: &str) -> Response {
    let path = path.find("/v2/").map_or(path, |i| &path[i..]);
    if path == "/v2/" || path == "/v2" {
        return (StatusCode::OK, "{}").into_response();
    }
    if path.contains("/manifests/") {
        let mut r = (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, super::media::OCI_INDEX.to_string()),
                (
                    header::HeaderName::from_static("docker-content-digest"),
                    s.digest.clone(),
                ),
            ],
            if method == Method::HEAD {
                Vec::new()
            } else {
                s.index.clone()
            },
        )
            .into_response();
        r.headers_mut().insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(s.index.len() as u64),
        );
        return r;
    }
    if let Some(name) = path
        .strip_prefix("/v2/")
        .and_then(|p| p.strip_suffix("/tags/list"))
    {
        let body = serde_json::json!({"name": name, "tags": ["1"]}).to_string();
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
    }
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        distribution_error("NAME_UNKNOWN"),
    )
        .into_response()
}

/// Layer bytes a [`Hub`]'s platform manifests declare until the test says otherwise.
pub const HUB_LAYER: u64 = 1 << 20;

/// A registry for the advice tests, answered through a [`Double`] ([`Hub::serve`]): one OCI
/// index under every name and tag (linux/amd64, linux/arm64) and, by digest, its two
/// platform manifests, every digest right. The manifests declare the layer sizes the test
/// chooses ([`Hub::set_layer_sizes`]; no blob is served, so a layer can be declared 3 GiB
/// for free); the tag can be moved to another digest ([`Hub::move_tag`]). With a limit it
/// speaks Docker Hub's pull limit: every manifest answer, HEAD included, says
/// `ratelimit-limit: <limit>;w=<window>`, `ratelimit-remaining: <left>;w=<window>` and
/// `docker-ratelimit-source`; a manifest GET spends one pull, a HEAD none; with none left a
/// manifest GET answers 429 `TOOMANYREQUESTS` with Docker Hub's message and the same
/// headers, and no `Retry-After` (Docker Hub sends none).
pub struct Hub {
    /// (limit, window in seconds)
    limit: Option<(u64, u64)>,
    content: Mutex<HubContent>,
    remaining: std::sync::atomic::AtomicU64,
    heads: AtomicUsize,
    gets: AtomicUsize,
}

struct HubContent {
    /// Layer bytes of (amd64, arm64), and the push they come from.
    layers: (u64, u64),
    revision: u32,
    index: Vec<u8>,
    digest: String,
    /// digest → platform manifest
    manifests: Vec<(String, Vec<u8>)>,
}

impl HubContent {
    fn build(layers: (u64, u64), revision: u32) -> HubContent {
        let manifest = |arch: &str, layer: u64| {
            let digest = |what: &str| sha256_digest(format!("{arch} {what} {revision}").as_bytes());
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": super::media::OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": digest("config"), "size": 1024},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": digest("layer"), "size": layer}],
            }))
            .expect("manifest JSON")
        };
        let manifests: Vec<(String, Vec<u8>)> = [("amd64", layers.0), ("arm64", layers.1)]
            .into_iter()
            .map(|(arch, layer)| {
                let body = manifest(arch, layer);
                (sha256_digest(&body), body)
            })
            .collect();
        let entries: Vec<serde_json::Value> = ["amd64", "arm64"]
            .iter()
            .zip(&manifests)
            .map(|(arch, (digest, body))| {
                serde_json::json!({
                    "mediaType": super::media::OCI_MANIFEST,
                    "digest": digest,
                    "size": body.len(),
                    "platform": {"architecture": arch, "os": "linux"},
                })
            })
            .collect();
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": super::media::OCI_INDEX,
            "manifests": entries,
            "annotations": {"revision": revision.to_string()},
        }))
        .expect("index JSON");
        HubContent {
            layers,
            revision,
            digest: sha256_digest(&index),
            index,
            manifests,
        }
    }
}

impl Hub {
    /// A hub; `limit`: Docker Hub's (pulls, window in seconds), or none.
    pub fn new(limit: Option<(u64, u64)>) -> Arc<Hub> {
        Arc::new(Hub {
            limit,
            content: Mutex::new(HubContent::build((HUB_LAYER, HUB_LAYER), 0)),
            remaining: std::sync::atomic::AtomicU64::new(limit.map_or(0, |l| l.0)),
            heads: AtomicUsize::new(0),
            gets: AtomicUsize::new(0),
        })
    }

    /// A plain-HTTP double on 127.0.0.1 answering as this hub.
    pub async fn serve(self: &Arc<Self>) -> Double {
        let hub = Arc::clone(self);
        Double::start("127.0.0.1", None, move |r| hub.reply(r)).await
    }

    /// Manifest requests so far: (HEAD, GET).
    pub fn manifest_requests(&self) -> (usize, usize) {
        (
            self.heads.load(Ordering::SeqCst),
            self.gets.load(Ordering::SeqCst),
        )
    }

    /// Pulls left now (the next answers say it).
    pub fn set_remaining(&self, left: u64) {
        self.remaining.store(left, Ordering::SeqCst);
    }

    /// The layer bytes the linux/amd64 and linux/arm64 manifests declare, pushed anew (the
    /// tag then points to another digest).
    pub fn set_layer_sizes(&self, amd64: u64, arm64: u64) {
        let mut c = self.content.lock().unwrap();
        *c = HubContent::build((amd64, arm64), c.revision + 1);
    }

    /// Pushes the same image again under the tag, with another digest; returns it.
    pub fn move_tag(&self) -> String {
        let mut c = self.content.lock().unwrap();
        *c = HubContent::build(c.layers, c.revision + 1);
        c.digest.clone()
    }

    /// The digest the tag points to now.
    pub fn digest(&self) -> String {
        self.content.lock().unwrap().digest.clone()
    }

    /// The answer to `seen`.
    pub fn reply(&self, seen: &Seen) -> Reply {
        let path = seen.path.split('?').next().unwrap_or_default();
        let Some((_, reference)) = path.split_once("/manifests/") else {
            return Reply::Registry;
        };
        let head = seen.method == "HEAD";
        let counter = if head { &self.heads } else { &self.gets };
        counter.fetch_add(1, Ordering::SeqCst);
        // Docker Hub counts a GET; with none left, the GET is refused.
        let left = match (self.limit, head) {
            (Some(_), false) => self
                .remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .ok()
                .map(|before| before - 1),
            _ => Some(self.remaining.load(Ordering::SeqCst)),
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        if let Some((limit, window)) = self.limit {
            let left = left.unwrap_or(0);
            headers.push(("ratelimit-limit".into(), format!("{limit};w={window}")));
            headers.push(("ratelimit-remaining".into(), format!("{left};w={window}")));
            headers.push(("docker-ratelimit-source".into(), "127.0.0.1".into()));
        }
        if left.is_none() {
            headers.push(("content-type".into(), "application/json".into()));
            let body = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your unauthenticated pull rate limit. https://www.docker.com/increase-rate-limit"}]}"#;
            return Reply::Raw {
                status: 429,
                headers,
                body: body.into(),
            };
        }
        let c = self.content.lock().unwrap();
        let (media_type, digest, body) = match c.manifests.iter().find(|(d, _)| d == reference) {
            Some((digest, body)) => (super::media::OCI_MANIFEST, digest, body),
            None => (super::media::OCI_INDEX, &c.digest, &c.index),
        };
        headers.push(("content-type".into(), media_type.into()));
        headers.push(("docker-content-digest".into(), digest.clone()));
        if head {
            headers.push(("content-length".into(), body.len().to_string()));
        }
        Reply::Raw {
            status: 200,
            headers,
            body: if head { Vec::new() } else { body.clone() },
        }
    }
}
