//! A hostile HTTP(S) server for the outbound tests: every request is recorded (method,
//! path, the `Authorization` header it carried) and answered by a routing function of the
//! test: a redirect anywhere, a registry's answer, an auth challenge, a token. TCP
//! connections are counted as they are accepted, so a test can show that none was made.
//!
//! ```ignore
//! let b = HostileServer::start("127.0.0.2", None, |r| match r.path.as_str() {
//!     p if p.starts_with("/hop1/") => Reply::redirect(307, &p.replacen("/hop1/", "/hop2/", 1)),
//!     _ => Reply::Registry,
//! }).await;
//! ```
//!
//! Each server runs on its own thread and runtime (like [`super::bad_registry`]), so it
//! keeps answering whatever the test's runtime is doing; dropping it stops it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::bad_registry::index_body;
use super::tls::{install_crypto_provider, TestCa};
use super::util::sha256_digest;

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// The `Authorization` header, when one was sent.
    pub authorization: Option<String>,
}

/// What to answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A redirect with this status to this `Location` (absolute or relative).
    Redirect { status: u16, location: String },
    /// What a registry holding one OCI index under every name and tag answers for the
    /// request's path with any prefix before `/v2/` removed (`/hop2/v2/a/manifests/1` is
    /// answered as `/v2/a/manifests/1`): the index (HEAD and GET) and a tag list.
    Registry,
    /// 401 with this `WWW-Authenticate`.
    Challenge(String),
    /// 200 with `{"token": …}`.
    Token(String),
    /// An empty answer with this status.
    Status(u16),
}

impl Reply {
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::Redirect {
            status,
            location: location.to_string(),
        }
    }
}

type Route = dyn Fn(&Seen) -> Reply + Send + Sync;

struct Shared {
    route: Box<Route>,
    seen: Mutex<Vec<Seen>>,
    accepted: Arc<AtomicUsize>,
    index: Vec<u8>,
    digest: String,
}

/// A running hostile server; dropped, it stops.
pub struct HostileServer {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
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

impl HostileServer {
    /// Starts a server on `ip` (e.g. "127.0.0.1", "127.0.0.2") and a free port; over TLS
    /// with a certificate of `ca` (for 127.0.0.1 and localhost) when given.
    pub async fn start(
        ip: &str,
        ca: Option<&TestCa>,
        route: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> HostileServer {
        install_crypto_provider();
        let index = index_body();
        let shared = Arc::new(Shared {
            route: Box::new(route),
            seen: Mutex::new(Vec::new()),
            accepted: Arc::new(AtomicUsize::new(0)),
            digest: sha256_digest(&index),
            index,
        });
        let listener = std::net::TcpListener::bind((ip, 0)).expect("bind hostile server");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("hostile server addr");
        let tls = ca.map(|ca| {
            let leaf = ca.server_leaf_for(&[ip, "127.0.0.1", "localhost"], "pullcheck hostile");
            (leaf.cert_pem.into_bytes(), leaf.key_pem.into_bytes())
        });
        let is_tls = tls.is_some();
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel::<()>();
        let state = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("hostile-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("hostile server runtime");
                runtime.block_on(serve(listener, state, tls, stopped, ready_tx));
            })
            .expect("spawn hostile server thread");
        ready_rx.await.expect("hostile server started");
        HostileServer {
            addr,
            tls: is_tls,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// "IP:PORT", as written in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// "http(s)://IP:PORT".
    pub fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// TCP connections accepted so far (whether or not a request followed).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    tls: Option<(Vec<u8>, Vec<u8>)>,
    stopped: oneshot::Receiver<()>,
    ready: oneshot::Sender<()>,
) {
    let counting = CountingAcceptor(Arc::clone(&shared.accepted));
    let app = Router::new().fallback(handle).with_state(shared);
    let server = async {
        match tls {
            Some((cert, key)) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_pem(cert, key)
                    .await
                    .expect("hostile server TLS config");
                let acceptor =
                    axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(counting);
                let _ = axum_server::from_tcp(listener)
                    .expect("hostile server from listener")
                    .acceptor(acceptor)
                    .serve(app.into_make_service())
                    .await;
            }
            None => {
                let _ = axum_server::from_tcp(listener)
                    .expect("hostile server from listener")
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
    let seen = Seen {
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |p| p.to_string()),
        authorization: headers
            .get(header::AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
    };
    s.seen.lock().unwrap().push(seen.clone());
    match (s.route)(&seen) {
        Reply::Redirect { status, location } => (
            StatusCode::from_u16(status).expect("redirect status"),
            [(header::LOCATION, location)],
        )
            .into_response(),
        Reply::Challenge(challenge) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        )
            .into_response(),
        Reply::Token(token) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({"token": token, "expires_in": 300}).to_string(),
        )
            .into_response(),
        Reply::Status(code) => StatusCode::from_u16(code).expect("status").into_response(),
        Reply::Registry => registry_answer(&s, &method, uri.path()),
    }
}

fn registry_answer(s: &Shared, method: &Method, path: &str) -> Response {
    let path = path.find("/v2/").map_or(path, |i| &path[i..]);
    if path == "/v2/" {
        return StatusCode::OK.into_response();
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
    StatusCode::NOT_FOUND.into_response()
}
