//! The kubelet's and the container runtime's rules, as pure code without I/O: what an image
//! reference names (distribution/reference), which credentials the kubelet offers for it
//! (pull secrets, docker configs and the keyring), which platforms an image offers and a
//! node runs (containerd), which images a workload pulls (PodSpecs of every kind), and what
//! the kubelet says when a pull fails (`pull_failure`).
//!
//! Depends on: [`crate::text`] only. Everything above builds on these rules: `registry`
//! and `cluster` fetch what they read, `engine` decides with them.

pub mod credentials;
pub mod manifest;
pub mod platform;
pub mod platform_match;
pub mod pull_failure;
pub mod reference;
pub mod runtime;
pub mod workload;

pub use platform::Platform;
pub use reference::ImageRef;
