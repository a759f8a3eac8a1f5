//! What one warm review costs pullcheck itself, in-process: no TLS, no HTTP/2, no load
//! generator sharing the cores — only the handler behind `POST /validate/enforce`, against
//! the decode-and-answer of `examples/minimal_responder.rs`. The difference is the price of
//! pullcheck's checks; `benches/admission/` measures the same over the wire.
//!
//! ```sh
//! cargo build --release --example review_cost
//! target/release/examples/review_cost            # 200,000 reviews each, µs per review
//! valgrind --tool=callgrind target/release/examples/review_cost 2000 pullcheck  # where it goes
//! ```
//!
//! The review is the warm-path benchmark's: a Deployment CREATE with two images in a private
//! and a public repository, the pull secret reached through the namespace's `default`
//! ServiceAccount, every answer cached. The registry behind the cache is a double that
//! answers like the real one (an index with linux/amd64 and linux/arm64); the cluster is the
//! in-memory double with one Secret and one ServiceAccount.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::DynamicObject;
use pullcheck::cluster::{InMemoryCluster, SecretData};
use pullcheck::config::assemble::{self, ClusterWiring, Wiring};
use pullcheck::config::{Deadline, EngineConfig};
use pullcheck::engine::{Mode, Settings};
use pullcheck::kubelet::credentials::Credential;
use pullcheck::kubelet::platform::Platform;
use pullcheck::kubelet::reference::ImageRef;
use pullcheck::metrics::Metrics;
use pullcheck::registry::{ImagePlatforms, Registry, RegistryError, Resolved};
use pullcheck::webhook::http::{router, AppState};
use tower::ServiceExt;

const HOST: &str = "registry.example:5000";

/// As in `pullcheck` (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Answers every image with a two-platform index.
struct Answering;

#[async_trait]
impl Registry for Answering {
    async fn resolve(
        &self,
        _image: &ImageRef,
        _credential: Option<&Credential>,
    ) -> Result<Resolved, RegistryError> {
        Ok(Resolved {
            digest: format!("sha256:{}", "ab".repeat(32)),
            platforms: Arc::new(ImagePlatforms {
                is_index: true,
                platforms: vec![
                    Platform::new("linux", "amd64", None),
                    Platform::new("linux", "arm64", None),
                ],
                ..Default::default()
            }),
        })
    }
}

fn review_body() -> Bytes {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/admission/deployment-create.json"
    );
    let mut review: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON");
    review["request"]["namespace"] = "team-a".into();
    review["request"]["object"]["metadata"]["namespace"] = "team-a".into();
    review["request"]["object"]["spec"]["template"]["spec"]["containers"] = serde_json::json!([
        {"name": "c0", "image": format!("{HOST}/private/team/web:1.0"), "imagePullPolicy": "IfNotPresent"},
        {"name": "c1", "image": format!("{HOST}/public/library/nginx:1.25"), "imagePullPolicy": "IfNotPresent"},
    ]);
    Bytes::from(serde_json::to_vec(&review).expect("JSON"))
}

/// `examples/minimal_responder.rs`'s handler.
async fn minimal(body: Bytes) -> Response {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    Json(AdmissionResponse::from(&request).into_review()).into_response()
}

async fn drain(response: Response) -> usize {
    assert_eq!(response.status(), StatusCode::OK);
    axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body")
        .len()
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("number of reviews"))
        .unwrap_or(200_000);
    // Optionally only one of the two ("pullcheck" or "minimal"), e.g. under callgrind.
    let only = std::env::args().nth(2);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Logging as `pullcheck serve` sets it up (text, `info`; PULLCHECK_LOG changes it).
    pullcheck::webhook::serve::init_logging(pullcheck::config::LogFormat::Text);
    runtime.block_on(async move {
        let cluster = Arc::new(InMemoryCluster::new());
        cluster.put_secret(
            "team-a",
            "regcred",
            SecretData::for_registry(HOST, "alice", "secret"),
        );
        cluster.put_service_account("team-a", "default", &["regcred"]);
        let metrics = Arc::new(Metrics::default());
        let config = EngineConfig {
            settings: Settings {
                default_mode: Mode::Enforce,
                ..Settings::default()
            },
            ..EngineConfig::default()
        };
        let wiring = Wiring::new(ClusterWiring::Given(cluster), Arc::clone(&metrics))
            .with_registry(Arc::new(Answering));
        let assembled = assemble::engine(&config, wiring).await.expect("engine");
        let state = Arc::new(AppState::new(
            assembled.engine,
            metrics,
            Deadline::default(),
            String::new(),
            7 << 20,
        ));
        state
            .ready
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let app = router(state);
        // The minimal responder's routes, as in examples/minimal_responder.rs.
        let minimal_app = axum::Router::new()
            .route("/validate", axum::routing::post(minimal))
            .route("/validate/{mode}", axum::routing::post(minimal))
            .layer(axum::extract::DefaultBodyLimit::max(7 << 20));
        let body = review_body();
        let post = |body: Bytes| {
            Request::post("/validate/enforce?timeout=10s")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .expect("request")
        };

        // Warm: the first review fills the caches; its answer must be the warm one.
        let first = app
            .clone()
            .oneshot(post(body.clone()))
            .await
            .expect("infallible");
        let bytes = axum::body::to_bytes(first.into_body(), usize::MAX)
            .await
            .expect("body");
        let answer: serde_json::Value = serde_json::from_slice(&bytes).expect("answer");
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
        assert!(answer["response"]["warnings"].is_null(), "{answer}");

        let mut per_review = Vec::new();
        for (name, pullcheck) in [("minimal responder", false), ("pullcheck", true)] {
            if only.as_deref().is_some_and(|o| !name.starts_with(o)) {
                per_review.push(Duration::ZERO);
                continue;
            }
            let started = Instant::now();
            let mut out = 0;
            for _ in 0..n {
                let app = if pullcheck { &app } else { &minimal_app };
                let response = app
                    .clone()
                    .oneshot(post(body.clone()))
                    .await
                    .expect("infallible");
                out += drain(response).await;
            }
            let each = started.elapsed() / n;
            println!(
                "{name:>17}: {:6.2} µs per review ({} bytes answered each)",
                each.as_secs_f64() * 1e6,
                out / n as usize
            );
            per_review.push(each);
        }
        let extra: Duration = per_review[1].saturating_sub(per_review[0]);
        println!(
            "pullcheck's own work: {:.2} µs per review",
            extra.as_secs_f64() * 1e6
        );
    });
}
