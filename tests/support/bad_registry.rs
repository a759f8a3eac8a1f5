//! A registry that misbehaves on purpose, for fault tests: plain HTTP (or TLS with a
//! certificate from a CA nobody trusts), on 127.0.0.1, with one configurable behaviour.
//!
//! When it answers properly ([`Behaviour::Ok`], [`Behaviour::Slow`]) it serves, for every
//! repository and reference, one small OCI image index (linux/amd64, linux/arm64) whose
//! digest is right, so a client's verification passes.
//!
//! ```ignore
//! let bad = BadRegistry::start(Behaviour::Status(500)).await;
//! // image: format!("{}/app:1", bad.host()), with `--plain-http <host>`
//! ```
//!
//! Each server runs on its own thread (like the API-server stand-in), so it keeps answering
//! whatever the test's runtime is doing; dropping it stops the server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::oneshot;

use super::tls::{install_crypto_provider, TestCa};
use super::util::sha256_digest;

/// What the registry does with every request.
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

/// The OCI index served by proper answers.
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

struct Shared {
    behaviour: Behaviour,
    requests: AtomicUsize,
    index: Vec<u8>,
    digest: String,
}

/// A running misbehaving registry; dropped, it stops.
pub struct BadRegistry {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BadRegistry {
    /// Starts a plain-HTTP bad registry on 127.0.0.1:<free port>.
    pub async fn start(behaviour: Behaviour) -> BadRegistry {
        Self::launch(behaviour, false).await
    }

    /// Starts one over TLS whose certificate comes from a throw-away CA that nothing trusts.
    pub async fn start_tls_unknown_ca(behaviour: Behaviour) -> BadRegistry {
        Self::launch(behaviour, true).await
    }

    async fn launch(behaviour: Behaviour, tls: bool) -> BadRegistry {
        install_crypto_provider();
        let index = index_body();
        let shared = Arc::new(Shared {
            behaviour,
            requests: AtomicUsize::new(0),
            digest: sha256_digest(&index),
            index,
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind bad registry");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("bad registry addr");
        let tls_config = if tls {
            let leaf = TestCa::new().server_leaf("pullcheck bad registry");
            Some((leaf.cert_pem.into_bytes(), leaf.key_pem.into_bytes()))
        } else {
            None
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel::<()>();
        let state = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("bad-registry".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("bad registry runtime");
                runtime.block_on(serve(listener, state, tls_config, stopped, ready_tx));
            })
            .expect("spawn bad registry thread");
        ready_rx.await.expect("bad registry started");
        BadRegistry {
            addr,
            tls,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// "127.0.0.1:PORT", as written in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// HTTP requests received so far (0 for [`Behaviour::Silent`], which reads nothing).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for BadRegistry {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A port on 127.0.0.1 where nothing listens (bound, read and released).
pub fn dead_port() -> u16 {
    super::util::free_port()
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    tls: Option<(Vec<u8>, Vec<u8>)>,
    stopped: oneshot::Receiver<()>,
    ready: oneshot::Sender<()>,
) {
    if matches!(shared.behaviour, Behaviour::Silent) {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let _ = ready.send(());
        let mut held = Vec::new();
        let accept = async {
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        };
        tokio::select! {
            _ = accept => {}
            _ = stopped => {}
        }
        return;
    }
    let app = Router::new().fallback(handle).with_state(shared);
    // Dropping the server future stops accepting; the runtime's end (when this thread's
    // block_on returns) ends the connections still open.
    let server = async {
        match tls {
            Some((cert, key)) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_pem(cert, key)
                    .await
                    .expect("bad registry TLS config");
                let _ = axum_server::from_tcp_rustls(listener, config)
                    .expect("bad registry from listener")
                    .serve(app.into_make_service())
                    .await;
            }
            None => {
                let _ = axum_server::from_tcp(listener)
                    .expect("bad registry from listener")
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

fn api_version(mut r: Response) -> Response {
    r.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    r
}

async fn handle(State(s): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    let path = uri.path().to_string();
    let base = path == "/v2/" || path == "/v2";
    match &s.behaviour {
        Behaviour::Ok | Behaviour::Silent => {}
        Behaviour::Slow(delay) => tokio::time::sleep(*delay).await,
        Behaviour::Hang => std::future::pending::<()>().await,
        Behaviour::Status(code) if !base => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return api_version(
                (
                    status,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"errors":[{"code":"UNKNOWN","message":"bad registry says so"}]}"#,
                )
                    .into_response(),
            );
        }
        Behaviour::RateLimited { retry_after_secs } if !base => {
            return api_version(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [
                        (header::CONTENT_TYPE, "application/json".to_string()),
                        (header::RETRY_AFTER, retry_after_secs.to_string()),
                    ],
                    r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"rate limit"}]}"#,
                )
                    .into_response(),
            );
        }
        Behaviour::Status(_) | Behaviour::RateLimited { .. } => {}
        Behaviour::TokenRealm(realm) => {
            let challenge = format!(r#"Bearer realm="{realm}",service="bad-registry""#);
            return api_version(
                (
                    StatusCode::UNAUTHORIZED,
                    [
                        (header::WWW_AUTHENTICATE, challenge),
                        (header::CONTENT_TYPE, "application/json".to_string()),
                    ],
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                )
                    .into_response(),
            );
        }
    }
    if base {
        return api_version((StatusCode::OK, "{}").into_response());
    }
    proper(&s, &method, &path)
}

/// The answers of a registry holding one index under every name and reference.
fn proper(s: &Shared, method: &Method, path: &str) -> Response {
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
        return api_version(r);
    }
    if let Some(name) = path
        .strip_prefix("/v2/")
        .and_then(|p| p.strip_suffix("/tags/list"))
    {
        let body = serde_json::json!({"name": name, "tags": ["1"]}).to_string();
        return api_version(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response(),
        );
    }
    api_version(
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"errors":[{"code":"NAME_UNKNOWN","message":"not here"}]}"#,
        )
            .into_response(),
    )
}
