//! HTTP side of the webhook: routes, body limit, deadline from `?timeout=`, metrics and a
//! tracing span per review. Handlers only decode and encode; [`Webhook::review`] decides.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::DynamicObject;
use serde::Deserialize;
use tracing::Instrument;

use crate::admission::Webhook;
use crate::cli::parse_duration;
use crate::config::Deadline;
use crate::metrics::{AdmissionLabels, Metrics};
use crate::policy::{truncate, Mode, WARNING_LIMIT};
use crate::workload::WorkloadKind;

/// Shared state of the handlers.
pub struct AppState {
    /// Decides on reviews.
    pub webhook: Arc<Webhook>,
    pub metrics: Arc<Metrics>,
    pub deadline: Deadline,
    /// Ready once the server listens; false again while shutting down.
    pub ready: AtomicBool,
    /// Said on `/readyz` (e.g. "no cluster: …").
    pub status: String,
}

/// The routes, for `serve` and for tests (`tower::ServiceExt::oneshot`).
pub fn router(state: Arc<AppState>, max_body: usize) -> Router {
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

#[derive(Debug, Deserialize)]
struct ReviewQuery {
    timeout: Option<String>,
}

async fn validate_default(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ReviewQuery>,
    body: Bytes,
) -> Response {
    validate(state, None, q, body).await
}

async fn validate_mode(
    State(state): State<Arc<AppState>>,
    Path(mode): Path<String>,
    Query(q): Query<ReviewQuery>,
    body: Bytes,
) -> Response {
    match mode.parse::<Mode>() {
        Ok(m) => validate(state, Some(m), q, body).await,
        Err(e) => (StatusCode::NOT_FOUND, format!("{e}\n")).into_response(),
    }
}

/// Longest reason given with a 400: serde's messages quote the offending value, and a body
/// of megabytes must not come back (or go to the log) whole.
const MAX_REASON: usize = 512;

fn bad_request(state: &AppState, message: String) -> Response {
    let message = truncate(&message, MAX_REASON);
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
    tracing::warn!(%message, "undecodable AdmissionReview");
    (StatusCode::BAD_REQUEST, message + "\n").into_response()
}

async fn validate(
    state: Arc<AppState>,
    mode: Option<Mode>,
    q: ReviewQuery,
    body: Bytes,
) -> Response {
    let started = tokio::time::Instant::now();
    let timeout = q.timeout.as_deref().and_then(|t| parse_duration(t).ok());
    let deadline = started + state.deadline.budget(timeout);
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(&state, format!("invalid AdmissionReview: {e}")),
    };
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(_) => return bad_request(&state, "AdmissionReview has no request".into()),
    };
    // Events inside the review (a registry or cluster warning) carry its uid and namespace
    // when debug logging is on. Not at `info`: a span's fields are formatted when it is made,
    // which would cost every review about as much as the closing line below.
    let span = tracing::debug_span!(
        "review",
        uid = %request.uid,
        namespace = request.namespace.as_deref().unwrap_or(""),
    );
    let reviewed = state
        .webhook
        .review(&request, mode, deadline)
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
    Json(response.into_review()).into_response()
}

/// Longest denial message and audit annotation value sent back. Real answers stay far
/// below (a few hundred characters per failing image); an object whose image strings are
/// megabytes long must not come back several times over, nor reach the audit log whole.
const MAX_MESSAGE: usize = 16 << 10;
const MAX_ANNOTATION: usize = 16 << 10;
/// Strings inside a JSON annotation value are cut to this first, so the value stays JSON.
const MAX_ANNOTATION_STRING: usize = 1024;

fn bound_response(response: &mut AdmissionResponse) {
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
