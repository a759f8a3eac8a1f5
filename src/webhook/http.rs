//! HTTP side of the webhook: routes, body limit, deadline from `?timeout=`, metrics and a
//! tracing span per review. Handlers only decode and encode; [`review`] decides.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use kube::core::admission::Operation;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::config::Deadline;
use crate::engine::policy::{Mode, WARNING_LIMIT};
use crate::engine::Engine;
use crate::kubelet::workload::WorkloadKind;
use crate::metrics::{AdmissionLabels, Metrics};
use crate::text::{human_duration, parse_duration, truncate};
use crate::webhook::review;
use crate::webhook::wire::{self, Answer, ReviewIn};

/// Shared state of the handlers.
pub struct AppState {
    /// Decides on reviews.
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    pub deadline: Deadline,
    /// Ready once the server listens; false again while shutting down.
    pub ready: AtomicBool,
    /// Said on `/readyz` (e.g. "no cluster: …").
    pub status: String,
    /// Largest AdmissionReview body accepted (413 above).
    pub max_body: usize,
    /// KiB of review bodies being received or decided at once, over every connection.
    in_flight: Semaphore,
}

/// Review bodies received or decided at once, over every connection: a few times the
/// largest review the API server sends, far below the memory limit. More at once is
/// answered 503 at once (the API server sends a handful of reviews at a time; a flood
/// of large bodies from anyone else must not take the memory).
pub const IN_FLIGHT_BODY_BYTES: usize = 64 << 20;

impl AppState {
    pub fn new(
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
        deadline: Deadline,
        status: String,
        max_body: usize,
    ) -> Self {
        let kib = (IN_FLIGHT_BODY_BYTES.max(max_body) / 1024).min(Semaphore::MAX_PERMITS);
        Self {
            engine,
            metrics,
            deadline,
            ready: AtomicBool::new(false),
            status,
            max_body,
            in_flight: Semaphore::new(kib),
        }
    }
}

/// The routes, for `serve` and for tests (`tower::ServiceExt::oneshot`).
pub fn router(state: Arc<AppState>) -> Router {
    let max_body = state.max_body;
    Router::new()
        .route("/validate", post(validate_default))
        .route("/validate/{mode}", post(validate_mode))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// The routes of the plain-HTTP metrics listener (`--metrics-listen`): health, readiness and
/// metrics only, never reviews.
pub fn probe_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn validate_default(State(state): State<Arc<AppState>>, request: Request) -> Response {
    receive(state, None, request).await
}

async fn validate_mode(
    State(state): State<Arc<AppState>>,
    Path(mode): Path<String>,
    request: Request,
) -> Response {
    match mode.parse::<Mode>() {
        Ok(m) => receive(state, Some(m), request).await,
        Err(e) => (StatusCode::NOT_FOUND, format!("{e}\n")).into_response(),
    }
}

/// The API server's `?timeout=` of a review URL.
fn timeout_of(uri: &axum::http::Uri) -> Option<Duration> {
    uri.query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("timeout="))
        .and_then(|t| parse_duration(t).ok())
}

/// Receives a review's body within the review's own deadline (which starts when its
/// headers arrive: a body sent slowly eats into it, never beyond it) and within the
/// in-flight budget, then decides.
async fn receive(state: Arc<AppState>, mode: Option<Mode>, request: Request) -> Response {
    let arrived = tokio::time::Instant::now();
    let budget = state.deadline.budget(timeout_of(request.uri()));
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > state.max_body) {
        return too_large(&state);
    }
    let kib = declared.unwrap_or(state.max_body).min(state.max_body) / 1024 + 1;
    let permit = u32::try_from(kib)
        .ok()
        .and_then(|kib| state.in_flight.try_acquire_many(kib).ok());
    let Some(_permit) = permit else {
        count_invalid(&state);
        tracing::warn!(
            "more review bodies in flight than {IN_FLIGHT_BODY_BYTES} bytes: answered 503"
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many review bytes in flight; retry\n",
        )
            .into_response();
    };
    let body = tokio::time::timeout_at(
        arrived + budget,
        axum::body::to_bytes(request.into_body(), state.max_body),
    )
    .await;
    match body {
        Ok(Ok(body)) => validate(&state, mode, arrived, budget, body).await,
        // A declared length is checked above; what is left is a body longer than the
        // limit without one (chunked), or a connection that broke while sending.
        Ok(Err(_)) => too_large(&state),
        Err(_) => {
            count_invalid(&state);
            tracing::warn!(
                budget_ms = budget.as_millis() as u64,
                "review body not received within its deadline"
            );
            (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "review body not received within {}\n",
                    human_duration(budget)
                ),
            )
                .into_response()
        }
    }
}

fn too_large(state: &AppState) -> Response {
    count_invalid(state);
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "AdmissionReview body larger than {} bytes (maxBodyBytes), or broken off\n",
            state.max_body
        ),
    )
        .into_response()
}

fn count_invalid(state: &AppState) {
    state
        .metrics
        .admissions
        .get_or_create(&AdmissionLabels {
            kind: "",
            operation: "",
            mode: "",
            decision: "invalid",
        })
        .inc();
}

/// Longest reason given with a 400: serde's messages quote the offending value, and a body
/// of megabytes must not come back (or go to the log) whole.
const MAX_REASON: usize = 512;

fn bad_request(state: &AppState, message: String) -> Response {
    let message = truncate(&message, MAX_REASON);
    count_invalid(state);
    tracing::warn!(%message, "undecodable AdmissionReview");
    (StatusCode::BAD_REQUEST, message + "\n").into_response()
}

async fn validate(
    state: &AppState,
    mode: Option<Mode>,
    started: tokio::time::Instant,
    budget: Duration,
    body: Bytes,
) -> Response {
    let deadline = started + budget;
    let review = match ReviewIn::decode(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(state, format!("invalid AdmissionReview: {e}")),
    };
    let Some(request) = review.request.as_ref() else {
        return bad_request(state, "AdmissionReview has no request".into());
    };
    // Events inside the review (a registry or cluster warning) carry its uid and namespace
    // when debug logging is on. Not at `info`: a span's fields are formatted when it is made,
    // which would cost every review about as much as the closing line below.
    let span = tracing::debug_span!(
        "review",
        uid = %request.uid,
        namespace = request.namespace.as_deref().unwrap_or(""),
    );
    let reviewed = review::review(&state.engine, request, mode, deadline)
        .instrument(span)
        .await;
    let elapsed = started.elapsed();
    // A line per denial or warning; allowed and skipped reviews only at debug level (a
    // log line per admission costs as much as the rest of a warm review).
    let level = if matches!(reviewed.decision, "denied" | "warned") {
        tracing::Level::INFO
    } else {
        tracing::Level::DEBUG
    };
    if tracing::level_enabled!(level) {
        let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
        let uid = &request.uid;
        let namespace = request.namespace.as_deref().unwrap_or("");
        let (kind, name, operation) = (&request.kind.kind, &request.name, &request.operation);
        let (decision, mode, dry_run) =
            (reviewed.decision, reviewed.mode.as_str(), request.dry_run);
        if level == tracing::Level::INFO {
            tracing::info!(
                uid,
                namespace,
                kind,
                name,
                ?operation,
                dry_run,
                decision,
                mode,
                elapsed_ms,
                "reviewed"
            );
        } else {
            tracing::debug!(
                uid,
                namespace,
                kind,
                name,
                ?operation,
                dry_run,
                decision,
                mode,
                elapsed_ms,
                "reviewed"
            );
        }
    }
    state
        .metrics
        .admissions
        .get_or_create(&AdmissionLabels {
            kind: WorkloadKind::from_group_kind(&request.kind.group, &request.kind.kind)
                .map_or("other", WorkloadKind::as_str),
            operation: operation_label(&request.operation),
            mode: reviewed.mode.as_str(),
            decision: reviewed.decision,
        })
        .inc();
    state
        .metrics
        .admission_seconds
        .observe(elapsed.as_secs_f64());
    let mut response = reviewed.response;
    bound_response(&mut response);
    (
        [(header::CONTENT_TYPE, "application/json")],
        wire::encode(&review, &response),
    )
        .into_response()
}

/// Longest denial message and audit annotation value sent back. Real answers stay far
/// below (a few hundred characters per failing image); an object whose image strings are
/// megabytes long must not come back several times over, nor reach the audit log whole.
const MAX_MESSAGE: usize = 16 << 10;
const MAX_ANNOTATION: usize = 16 << 10;
/// Strings inside a JSON annotation value are cut to this first, so the value stays JSON.
const MAX_ANNOTATION_STRING: usize = 1024;

fn bound_response(response: &mut Answer) {
    if response.result.message.len() > MAX_MESSAGE {
        response.result.message = truncate(&response.result.message, MAX_MESSAGE);
    }
    for value in response.audit_annotations.values_mut() {
        if value.len() > MAX_ANNOTATION {
            *value = bound_annotation(value);
        }
    }
    if let Some(warnings) = response.warnings.as_mut() {
        for w in warnings.iter_mut() {
            if w.len() > WARNING_LIMIT {
                *w = truncate(w, WARNING_LIMIT);
            }
        }
    }
}

/// A JSON value has its long strings cut (and stays JSON); anything else is cut as text.
fn bound_annotation(value: &str) -> String {
    fn cut(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) if s.len() > MAX_ANNOTATION_STRING => {
                *s = truncate(s, MAX_ANNOTATION_STRING);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(cut),
            serde_json::Value::Object(map) => map.values_mut().for_each(cut),
            _ => {}
        }
    }
    if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(value) {
        cut(&mut v);
        if let Ok(s) = serde_json::to_string(&v) {
            if s.len() <= MAX_ANNOTATION {
                return s;
            }
        }
    }
    truncate(value, MAX_ANNOTATION)
}

fn operation_label(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, format!("ok{}\n", state.status)).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// Grace period for in-flight reviews at shutdown (the API server waits at most 30 s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::NoCluster;
    use crate::config::assemble::{self, ClusterWiring, Wiring};
    use crate::config::EngineConfig;
    use crate::kubelet::credentials::Credential;
    use crate::kubelet::reference::ImageRef;
    use crate::registry::{Registry, RegistryError, Resolved};
    use axum::body::Body;
    use futures::StreamExt as _;
    use tower::ServiceExt as _;

    /// A registry nobody may reach: these tests are about the HTTP layer.
    struct Unreached;

    #[async_trait::async_trait]
    impl Registry for Unreached {
        async fn resolve(
            &self,
            image: &ImageRef,
            _: Option<&Credential>,
        ) -> Result<Resolved, RegistryError> {
            panic!("the HTTP layer's tests asked the registry for {image}")
        }
    }

    async fn state(max_body: usize) -> Arc<AppState> {
        let metrics = Arc::new(Metrics::default());
        let no_cluster = Arc::new(NoCluster {
            reason: "test".into(),
        });
        let wiring = Wiring::new(ClusterWiring::Given(no_cluster), Arc::clone(&metrics))
            .with_registry(Arc::new(Unreached));
        let assembled = assemble::engine(&EngineConfig::default(), wiring)
            .await
            .expect("engine");
        Arc::new(AppState::new(
            assembled.engine,
            metrics,
            Deadline::default(),
            String::new(),
            max_body,
        ))
    }

    fn post(uri: &str, body: Body, length: Option<usize>) -> axum::http::Request<Body> {
        let mut request = axum::http::Request::post(uri).header("content-type", "application/json");
        if let Some(n) = length {
            request = request.header(header::CONTENT_LENGTH, n);
        }
        request.body(body).expect("request")
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/admission")
            .join(name);
        std::fs::read(path).expect("fixture")
    }

    async fn call(app: Router, request: axum::http::Request<Body>) -> (StatusCode, String) {
        let response = app.oneshot(request).await.expect("answer");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, String::from_utf8(body.to_vec()).expect("utf-8"))
    }

    fn get(uri: &str) -> axum::http::Request<Body> {
        axum::http::Request::get(uri)
            .body(Body::empty())
            .expect("request")
    }

    #[tokio::test]
    async fn reviews_are_answered_with_their_uid_on_both_routes() {
        let state = state(1 << 20).await;
        // Neither asks the registry: a deletion, and a scale change without new images.
        for (uri, name) in [
            ("/validate?timeout=10s", "deployment-delete.json"),
            (
                "/validate/enforce?timeout=10s",
                "deployment-update-scale.json",
            ),
            ("/validate/warn", "deployment-update-scale.json"),
            ("/validate/audit?timeout=30s", "deployment-delete.json"),
        ] {
            let body = fixture(name);
            let sent: serde_json::Value = serde_json::from_slice(&body).expect("json");
            let (status, text) = call(
                router(Arc::clone(&state)),
                post(uri, Body::from(body), None),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{uri} {name}: {text}");
            let answer: serde_json::Value = serde_json::from_str(&text).expect("json answer");
            assert_eq!(answer["apiVersion"], sent["apiVersion"], "{text}");
            assert_eq!(answer["kind"], "AdmissionReview", "{text}");
            assert_eq!(answer["response"]["uid"], sent["request"]["uid"], "{text}");
            assert_eq!(answer["response"]["allowed"], true, "{text}");
        }
    }

    #[tokio::test]
    async fn undecodable_bodies_get_400_with_a_bounded_reason_and_are_counted() {
        let state = state(1 << 20).await;
        let long_kind = format!("{{\"kind\":{}}}", "7".repeat(100_000));
        for body in [
            "",
            "{",
            "[]",
            "null",
            "{\"kind\":\"AdmissionReview\"}",
            "{\"request\": 5}",
            "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":1}}",
            long_kind.as_str(),
        ] {
            let (status, reason) = call(
                router(Arc::clone(&state)),
                post("/validate", Body::from(body.to_owned()), None),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body:.80}: {reason}");
            assert!(!reason.trim().is_empty(), "{body:.80}");
            assert!(reason.len() <= MAX_REASON + 8, "{} bytes", reason.len());
        }
        let (_, metrics) = call(router(state), get("/metrics")).await;
        assert!(
            metrics.contains(
                r#"pullcheck_admissions_total{kind="",operation="",mode="",decision="invalid"} 8"#
            ),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn routes_methods_and_modes() {
        let state = state(1 << 20).await;
        let app = || router(Arc::clone(&state));
        let (status, reason) = call(app(), post("/validate/loud", Body::from("{}"), None)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(reason.contains("loud"), "{reason}");
        assert_eq!(
            call(app(), get("/validate")).await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(call(app(), get("/nowhere")).await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            call(app(), get("/healthz")).await,
            (StatusCode::OK, "ok\n".into())
        );
        let (status, metrics) = call(app(), get("/metrics")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            metrics.contains("pullcheck_admission_duration_seconds"),
            "{metrics}"
        );
        // The probe listener answers probes and metrics, never reviews.
        let probes = || probe_router(Arc::clone(&state));
        assert_eq!(call(probes(), get("/healthz")).await.0, StatusCode::OK);
        assert_eq!(call(probes(), get("/metrics")).await.0, StatusCode::OK);
        let body = Body::from(fixture("deployment-delete.json"));
        assert_eq!(
            call(probes(), post("/validate", body, None)).await.0,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn readiness_follows_the_state_and_says_why() {
        let metrics = Arc::new(Metrics::default());
        let base = state(1 << 20).await;
        let state = Arc::new(AppState::new(
            Arc::clone(&base.engine),
            metrics,
            Deadline::default(),
            " (no cluster: test)".into(),
            1 << 20,
        ));
        let (status, _) = call(router(Arc::clone(&state)), get("/readyz")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        state.ready.store(true, Ordering::Relaxed);
        let (status, text) = call(router(state), get("/readyz")).await;
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::OK, "ok (no cluster: test)\n")
        );
    }

    #[test]
    fn the_deadline_comes_from_the_timeout_parameter() {
        let uri = |s: &str| s.parse::<axum::http::Uri>().expect("uri");
        assert_eq!(
            timeout_of(&uri("/validate?timeout=10s")),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            timeout_of(&uri("/validate/warn?x=1&timeout=1500ms")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(timeout_of(&uri("/validate")), None);
        assert_eq!(timeout_of(&uri("/validate?timeout=soon")), None);
        assert_eq!(timeout_of(&uri("/validate?timeouts=10s")), None);
        // The budget answers before the API server gives up, and without `?timeout` the
        // configured default applies.
        let d = Deadline::default();
        assert!(d.budget(Some(Duration::from_secs(10))) < Duration::from_secs(10));
        assert!(d.budget(Some(Duration::from_secs(1))) < Duration::from_secs(1));
        assert_eq!(
            d.budget(Some(Duration::from_secs(10))),
            Duration::from_millis(8000)
        );
        assert_eq!(
            d.budget(Some(Duration::from_secs(5))),
            Duration::from_millis(4250)
        );
        assert_eq!(d.budget(None), d.cap);
    }

    #[tokio::test]
    async fn a_body_sent_too_slowly_is_refused_within_the_review_deadline() {
        let app = router(state(1 << 20).await);
        // Headers at once, then a body that never finishes.
        let body = Body::from_stream(
            futures::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from_static(b"{\"apiVersion\":"))
            })
            .chain(futures::stream::pending()),
        );
        let started = std::time::Instant::now();
        let response = app
            .oneshot(post("/validate?timeout=1s", body, Some(1000)))
            .await
            .expect("answer");
        let took = started.elapsed();
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        // 1s → a budget of 850 ms: answered then, before the API server gives up.
        assert!(took >= Duration::from_millis(800), "{took:?}");
        assert!(took < Duration::from_millis(1000), "{took:?}");
    }

    #[tokio::test]
    async fn declared_and_undeclared_bodies_over_the_limit_get_413() {
        let state = state(1024).await;
        let declared = router(Arc::clone(&state))
            .oneshot(post("/validate", Body::from(vec![b' '; 2048]), Some(2048)))
            .await
            .expect("answer");
        assert_eq!(declared.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let chunks = futures::stream::iter(
            (0..4).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 512]))),
        );
        let streamed = router(state)
            .oneshot(post("/validate", Body::from_stream(chunks), None))
            .await
            .expect("answer");
        assert_eq!(streamed.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn bodies_beyond_the_in_flight_budget_get_503_at_once() {
        let max_body = 7 << 20;
        let state = state(max_body).await;
        // Hold the budget with bodies that are announced and never sent.
        let mut held = Vec::new();
        let mut refused = None;
        for _ in 0..(IN_FLIGHT_BODY_BYTES / max_body + 2) {
            let body =
                Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
            let app = router(Arc::clone(&state));
            let mut call =
                Box::pin(app.oneshot(post("/validate?timeout=10s", body, Some(max_body))));
            // Either it answers at once (refused) or it waits for its body (holding).
            match tokio::time::timeout(Duration::from_millis(50), &mut call).await {
                Ok(response) => {
                    refused = Some(response.expect("answer").status());
                    break;
                }
                Err(_) => held.push(call),
            }
        }
        assert_eq!(refused, Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(held.len(), IN_FLIGHT_BODY_BYTES / max_body);
        // Once they are gone, a small review is received again (undecodable: 400).
        drop(held);
        let after = router(state)
            .oneshot(post("/validate", Body::from("{}"), Some(2)))
            .await
            .expect("answer");
        assert_eq!(after.status(), StatusCode::BAD_REQUEST);
    }
}
