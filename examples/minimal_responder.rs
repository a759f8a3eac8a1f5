//! The baseline of the warm-path benchmark (`benches/admission/`): the smallest
//! AdmissionReview responder on pullcheck's own stack — axum 0.8 on axum-server with rustls
//! (aws-lc-rs), HTTP/2 and HTTP/1.1 by ALPN — that decodes the review the way a webhook
//! built on kube does (`AdmissionReview<DynamicObject>` from kube-core) and answers
//! "allowed". `pullcheck serve` decodes only the fields it reads (`src/webhook/wire.rs`),
//! which costs less than this decoding: the comparison is pullcheck's whole cost against a
//! typical webhook's that does nothing.
//!
//! ```sh
//! cargo build --release --example minimal_responder
//! target/release/examples/minimal_responder 127.0.0.1:9443 tls.crt tls.key
//! curl -sk --http2 -X POST https://127.0.0.1:9443/validate \
//!   --data @tests/fixtures/admission/deployment-create.json
//! ```
//!
//! Arguments: listen address (default `127.0.0.1:9443`), certificate chain (PEM) and private
//! key (PEM). Every `POST /validate[/…]` is answered; `GET /healthz` says `ok`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::DynamicObject;

/// The same allocator as `pullcheck` (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The same limit as `pullcheck serve`'s default `maxBodyBytes`.
const MAX_BODY: usize = 7 << 20;

async fn validate(body: Bytes) -> Response {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("invalid AdmissionReview: {e}\n"),
            )
                .into_response()
        }
    };
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(_) => {
            return (StatusCode::BAD_REQUEST, "AdmissionReview has no request\n").into_response()
        }
    };
    Json(AdmissionResponse::from(&request).into_review()).into_response()
}

fn usage(message: &str) -> ! {
    eprintln!("minimal_responder: {message}\nusage: minimal_responder [LISTEN] CERT.pem KEY.pem");
    std::process::exit(2);
}

fn tls_config(cert_path: &str, key_path: &str) -> rustls::ServerConfig {
    let read = |p: &str| std::fs::read(p).unwrap_or_else(|e| usage(&format!("read {p}: {e}")));
    let cert_pem = read(cert_path);
    let key_pem = read(key_path);
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| usage(&format!("{cert_path}: {e}")));
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .ok()
        .flatten()
        .unwrap_or_else(|| usage(&format!("{key_path}: no PEM private key")));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| usage(&format!("TLS: {e}")))
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap_or_else(|e| usage(&format!("certificate and key: {e}")));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, cert, key) = match args.as_slice() {
        [cert, key] => ("127.0.0.1:9443".to_string(), cert.clone(), key.clone()),
        [listen, cert, key] => (listen.clone(), cert.clone(), key.clone()),
        _ => usage("expected [LISTEN] CERT KEY"),
    };
    let addr: SocketAddr = listen
        .parse()
        .unwrap_or_else(|e| usage(&format!("listen address {listen:?}: {e}")));
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = tls_config(&cert, &key);
    let app = Router::new()
        .route("/validate", post(validate))
        .route("/validate/{mode}", post(validate))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(MAX_BODY));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| usage(&format!("runtime: {e}")));
    runtime.block_on(async move {
        eprintln!("minimal_responder listening on {addr}");
        // Bound exactly like `pullcheck serve` (src/webhook/serve.rs), so the comparison isolates
        // pullcheck's own work: keep the two in step (e.g. TCP_NODELAY via
        // `axum_server::accept::NoDelayAcceptor`, which cuts the closed-loop p99 of both from
        // ~43 ms of Nagle/delayed-ACK stalls to a few ms).
        axum_server::bind(addr)
            .acceptor(
                axum_server::tls_rustls::RustlsAcceptor::new(
                    axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config)),
                )
                .acceptor(axum_server::accept::NoDelayAcceptor::new()),
            )
            .serve(app.into_make_service())
            .await
            .unwrap_or_else(|e| usage(&format!("serve on {addr}: {e}")));
    });
}
