//! A Docker token server (axum over TLS) for the registry's `auth: token` set-up.
//!
//! `GET /token?service=…&scope=repository:NAME:pull[,push]` (scope may repeat), Basic
//! auth optional. Tokens are ES256 JWTs whose header carries `kid` = the libtrust key
//! ID of the signing key; the registry's `rootcertbundle` holds the signing key's
//! certificate, which is how distribution 2.8 finds the key.

use super::tls::{libtrust_key_id, TestCa};
use super::util::{nonce, now_since_epoch, rfc3339};
use super::{TokenRequest, ADMIN, ALICE, BOB, TOKEN_ISSUER, TOKEN_SERVICE};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// Lifetime of issued tokens, seconds.
const TOKEN_TTL: u64 = 300;

pub struct TokenServer {
    port: u16,
    state: Arc<TokenState>,
    handle: axum_server::Handle<SocketAddr>,
    task: JoinHandle<()>,
}

struct TokenState {
    signing_key: EncodingKey,
    key_id: String,
    records: Mutex<Vec<TokenRequest>>,
}

#[derive(Serialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: Vec<AccessEntry>,
}

#[derive(Serialize)]
struct AccessEntry {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    actions: Vec<String>,
}

impl TokenServer {
    /// Starts the token server on 127.0.0.1:<free port> with a certificate from `ca`.
    /// Returns it and the PEM bundle to give the registry as `rootcertbundle`.
    pub async fn start(ca: &TestCa) -> (TokenServer, String) {
        let tls_leaf = ca.server_leaf("pullcheck test token server");
        let (signer_cert, signer_key) = ca.token_signer();
        let state = Arc::new(TokenState {
            signing_key: EncodingKey::from_ec_der(&signer_key.serialize_der()),
            key_id: libtrust_key_id(&signer_key),
            records: Mutex::new(Vec::new()),
        });

        let config = axum_server::tls_rustls::RustlsConfig::from_pem(
            tls_leaf.cert_pem.into_bytes(),
            tls_leaf.key_pem.into_bytes(),
        )
        .await
        .expect("token server TLS config");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind token server");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("token server addr").port();

        let app = Router::new()
            .route("/token", get(token))
            .with_state(state.clone());
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, config)
            .expect("token server from listener")
            .handle(handle.clone());
        let task = tokio::spawn(async move {
            let _ = server.serve(app.into_make_service()).await;
        });
        let server = TokenServer {
            port,
            state,
            handle,
            task,
        };
        (server, signer_cert.cert_pem)
    }

    pub fn realm(&self) -> String {
        format!("https://127.0.0.1:{}/token", self.port)
    }

    pub fn records(&self) -> Vec<TokenRequest> {
        self.state.records.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.state.records.lock().unwrap().clear();
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        self.task.abort();
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Basic credentials from the Authorization header: Ok(None) when absent, Err on garbage.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?;
    let (scheme, encoded) = value.split_once(' ').ok_or(())?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ())?;
    let decoded = String::from_utf8(decoded).map_err(|_| ())?;
    let (user, password) = decoded.split_once(':').ok_or(())?;
    Ok(Some((user.to_string(), password.to_string())))
}

/// The actions of `requested` that `user` (None = anonymous) gets on `kind`:`name`.
fn granted(user: Option<&str>, kind: &str, name: &str, requested: &[String]) -> Vec<String> {
    if user == Some(ADMIN.0) {
        return requested.to_vec();
    }
    if kind != "repository" {
        return Vec::new();
    }
    let may_pull = match user {
        Some(u) if u == ALICE.0 => name.starts_with("private/") || name.starts_with("public/"),
        Some(u) if u == BOB.0 => name.starts_with("bob/"),
        Some(_) => false,
        None => name.starts_with("public/"),
    };
    requested
        .iter()
        .filter(|a| may_pull && a.as_str() == "pull")
        .cloned()
        .collect()
}

async fn token(
    State(state): State<Arc<TokenState>>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let scope_joined = scopes.join(" ");
    let service = params
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| TOKEN_SERVICE.to_string());

    let record = |user: &str, status: StatusCode| {
        state.records.lock().unwrap().push(TokenRequest {
            user: user.to_string(),
            scope: scope_joined.clone(),
            status: status.as_u16(),
        });
    };

    let user = match basic_credentials(&headers) {
        Ok(None) => None,
        Ok(Some((user, password))) => {
            let known = [ADMIN, ALICE, BOB]
                .iter()
                .any(|(u, p)| *u == user && *p == password);
            if !known {
                record(&user, StatusCode::UNAUTHORIZED);
                return json_response(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({"details": "incorrect username or password"}),
                );
            }
            Some(user)
        }
        Err(()) => {
            record("anonymous", StatusCode::BAD_REQUEST);
            return json_response(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"details": "malformed Authorization header"}),
            );
        }
    };
    let user_name = user.clone().unwrap_or_else(|| "anonymous".to_string());

    let mut access = Vec::new();
    for scope in scopes
        .iter()
        .flat_map(|s| s.split(' '))
        .filter(|s| !s.is_empty())
    {
        // TYPE:NAME:ACTIONS, where NAME may itself hold ':' (e.g. host:port/repo).
        let Some((kind, (name, actions))) = scope
            .split_once(':')
            .and_then(|(kind, rest)| Some((kind, rest.rsplit_once(':')?)))
        else {
            record(&user_name, StatusCode::BAD_REQUEST);
            return json_response(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"details": format!("invalid scope {scope:?}")}),
            );
        };
        let requested: Vec<String> = actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        access.push(AccessEntry {
            kind: kind.to_string(),
            name: name.to_string(),
            actions: granted(user.as_deref(), kind, name, &requested),
        });
    }

    let now = now_since_epoch().as_secs();
    let claims = Claims {
        iss: TOKEN_ISSUER.to_string(),
        sub: user.clone().unwrap_or_default(),
        aud: service,
        exp: now + TOKEN_TTL,
        nbf: now,
        iat: now,
        jti: nonce(),
        access,
    };
    let mut jwt_header = Header::new(Algorithm::ES256);
    jwt_header.kid = Some(state.key_id.clone());
    let jwt = match jsonwebtoken::encode(&jwt_header, &claims, &state.signing_key) {
        Ok(jwt) => jwt,
        Err(e) => {
            record(&user_name, StatusCode::INTERNAL_SERVER_ERROR);
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"details": format!("signing failed: {e}")}),
            );
        }
    };
    record(&user_name, StatusCode::OK);
    json_response(
        StatusCode::OK,
        serde_json::json!({
            "token": jwt,
            "access_token": jwt,
            "expires_in": TOKEN_TTL,
            "issued_at": rfc3339(now),
        }),
    )
}
