//! pullcheck's measured speed, on this machine, in one run:
//!
//! 1. **Warm path**: an HTTP/2 + TLS load generator posting one AdmissionReview (a
//!    Deployment CREATE with two images, credentials from its ServiceAccount's pull secret)
//!    to `pullcheck serve` with a warm cache, and — in the same run, with the same body — to
//!    `examples/minimal_responder.rs`, the smallest responder on the same stack (axum +
//!    rustls: decode, answer allowed). Closed loop at full speed, then open loop at 1,000
//!    reviews/s. Reviews/s, p50, p99, CPU per review, and pullcheck / minimal.
//! 2. **Cold path**: a Deployment with 10 distinct images vs. one image, against a registry
//!    behind a proxy that delays every request (token requests included) by 50 ms;
//!    end-to-end latency and the registry requests, counted at the registry.
//! 3. **Coalescing**: 500 concurrent reviews of the same new image → manifest requests.
//! 4. **Memory**: RSS for 100,000 cached results (in a child process using the library's
//!    cache over a registry double), and the same 100,000 lookups with `maxEntries: 10000`.
//! 5. **Against a `skopeo inspect` loop** over the same 50 images on the same registry:
//!    wall time and registry requests.
//!
//! Everything runs on loopback against a real registry (Debian's `docker-registry`, started
//! by the test harness) and stops by itself (about a minute). Run:
//!
//! ```sh
//! cargo build --release --example minimal_responder && cargo bench --bench admission
//! cargo bench --bench admission -- warm cold     # only some sections:
//!                                                # warm cold coalescing memory skopeo
//! ```
//!
//! Sections live in this folder (env, served, load, warm, proxy, cold, coalescing, memory,
//! skopeo, report); `pullcheck serve` is started by the tests' driver (`tests/support/serve.rs`).
//! `cargo bench` builds `pullcheck` itself (release profile); the example must be built
//! first (cargo does not build examples for benches). `pullcheck serve` logs as deployed
//! (`info`: a line per denial or warning, none for the allowed reviews measured here). Both
//! servers run with mimalloc, pullcheck's allocator. `examples/review_cost.rs` measures the
//! same review in-process, without TLS, HTTP/2 or the load generator.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pullcheck::webhook::certs::Pem;
use serde_json::{json, Value};
use support::apiserver::FakeApiServer;
use support::serve::{dockerconfig, free_port, Options, Server, DOCKERCONFIGJSON, SERVICE_NAME};
use support::{Auth, LoggedRequest, RegistryOptions, TestRegistry, ALICE};

mod coalescing;
mod cold;
mod env;
mod load;
mod memory;
mod proxy;
mod report;
mod served;
mod skopeo;
mod warm;

use coalescing::*;
use cold::*;
use env::*;
use load::*;
use memory::*;
use proxy::*;
use report::*;
use served::*;
use skopeo::*;
use warm::*;

const MEMORY_CHILD: &str = "PULLCHECK_BENCH_MEMORY_CHILD";

/// Closed loop: connections × concurrent streams on each, for this long.
const CLOSED_CONNECTIONS: usize = 4;
const CLOSED_STREAMS: usize = 16;
const CLOSED_FOR: Duration = Duration::from_secs(4);
const CLOSED_ROUNDS: usize = 3;
/// Open loop: this rate for this long.
const OPEN_RATE: u64 = 1_000;
const OPEN_FOR: Duration = Duration::from_secs(8);
/// Delay the proxy adds to every registry and token request.
const PROXY_DELAY: Duration = Duration::from_millis(50);

fn main() {
    if let Ok(mode) = std::env::var(MEMORY_CHILD) {
        memory_child(&mode);
        return;
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it:
    // an unoptimized benchmark measures nothing, so it only says how to run it.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("benches/admission.rs: run with `cargo build --release --example minimal_responder && cargo bench --bench admission`");
        return;
    }
    let sections: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| sections.is_empty() || sections.iter().any(|s| s == name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut report = Report {
        load_before: std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        ..Report::default()
    };
    let started = Instant::now();
    runtime.block_on(async {
        let env = Env::start().await;
        if wanted("warm") {
            warm_path(&env, &mut report).await;
        }
        if wanted("cold") {
            cold_path(&env, &mut report).await;
        }
        if wanted("coalescing") {
            coalescing(&env, &mut report).await;
        }
        if wanted("skopeo") {
            skopeo(&env, &mut report).await;
        }
    });
    if wanted("memory") {
        memory(&mut report);
    }
    report.print(started.elapsed());
}
