//! pullcheck: no workload is admitted whose images the kubelet will fail to pull.
//!
//! The engine resolves every image of a Pod against its registry with the credentials the
//! kubelet would use and the platforms the Pod may run on; the webhook and the CI mode
//! turn its findings into denials, warnings or annotations.

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
