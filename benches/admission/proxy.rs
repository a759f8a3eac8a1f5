//! Delaying proxy (cold path, coalescing)

use super::*;

/// A plain-HTTP reverse proxy in front of the registry and its token service that sleeps
/// `delay` before forwarding each request. The registry's token realm is rewritten to point
/// at the proxy, so token requests are delayed too.
pub(crate) struct DelayProxy {
    pub(crate) addr: SocketAddr,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) struct ProxyState {
    pub(crate) registry: String,
    pub(crate) token_realm: String,
    pub(crate) own_realm: String,
    pub(crate) client: reqwest::Client,
    pub(crate) delay: Duration,
}

pub(crate) const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "te",
];

pub(crate) async fn proxy_handle(State(p): State<Arc<ProxyState>>, req: Request) -> Response {
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
    pub(crate) async fn start(reg: &TestRegistry, delay: Duration) -> DelayProxy {
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

    pub(crate) fn host(&self) -> String {
        self.addr.to_string()
    }
}

/// Registry requests by kind.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counts {
    pub(crate) ping: usize,
    pub(crate) token: usize,
    pub(crate) head_manifest: usize,
    pub(crate) get_manifest: usize,
    pub(crate) get_blob: usize,
    pub(crate) list_tags: usize,
    pub(crate) other: usize,
}

impl Counts {
    pub(crate) fn of(requests: &[LoggedRequest], tokens: usize) -> Counts {
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

    pub(crate) fn total(&self) -> usize {
        self.ping
            + self.token
            + self.head_manifest
            + self.get_manifest
            + self.get_blob
            + self.list_tags
            + self.other
    }

    pub(crate) fn describe(&self) -> String {
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

pub(crate) async fn counts(reg: &TestRegistry) -> Counts {
    let requests = reg.requests().await;
    let tokens = reg.token_requests().await.len();
    Counts::of(&requests, tokens)
}
