//! pullcheck: no workload is admitted whose images the kubelet will fail to pull.
//!
//! The engine resolves every image of a Pod against its registry with the credentials the
//! kubelet would use and the platforms the Pod may run on; the webhook and the CI mode
//! turn its findings into denials, warnings or annotations.
//!
//! Layers, leaves first; imports point one way (`tests/layers.rs` enforces it):
//!
//! ```text
//! text, files, metrics  ←  kubelet  ←  registry, cluster  ←  engine  ←  config  ←  webhook, ci  ←  main.rs
//! ```
//!
//! - [`text`], [`files`], [`metrics`]: leaves — one clipper, globs, durations, sizes, hex,
//!   error chains; bounded reads of files others control; Prometheus metrics;
//! - [`kubelet`]: the kubelet's and the runtime's rules, pure (references, credentials and
//!   the keyring, platforms and manifests, workloads and PodSpecs);
//! - [`registry`]: the distribution API behind its trait, and the caches in front of it;
//! - [`cluster`]: the Kubernetes API behind its trait (kube-rs, the Node watch, in memory);
//! - [`engine`]: findings, one image, a Pod's pull secrets, one object → evaluation,
//!   explanations, policy;
//! - [`config`]: the command line, the YAML file, the resolved settings, and the one
//!   assembly of the engine;
//! - [`webhook`]: AdmissionReview in and out, HTTP, TLS, the serve wiring, certificates;
//! - [`ci`]: `pullcheck check` and `pullcheck reference`: manifests, reports.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod ci;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod files;
pub mod kubelet;
pub mod metrics;
pub mod registry;
pub mod text;
pub mod webhook;
