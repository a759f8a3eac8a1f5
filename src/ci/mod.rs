//! `pullcheck check`, `pullcheck reference` and `pullcheck scan`: the engine over manifests
//! in CI, and over what runs.
//!
//! - [`input`]: what is read (regular files only, bounded, links inside the tree);
//! - [`manifests`], [`manifest_stream`] (with its serde visitors): objects and their lines,
//!   parsed in two linear passes with Lists streamed, Secrets and ServiceAccounts for the
//!   in-memory cluster;
//! - [`check`]: the check command (its engine built by [`crate::config::assemble`]);
//! - [`report`]: the one writer of its output, for every path (one JSON schema, one
//!   escaping per format: text, JSON lines, GitHub annotations);
//! - [`reference`](mod@reference): the reference command;
//! - [`scan`](mod@scan): `pullcheck scan`, the engine over what runs in the cluster.
//!
//! Depends on: [`crate::config`], [`crate::engine`] and everything below them. Never on
//! `webhook`.

pub mod check;
pub mod input;
mod manifest_serde;
pub mod manifest_stream;
pub mod manifests;
pub mod reference;
pub mod report;
pub mod scan;

pub use check::run_check;
pub use reference::run_reference;
pub use scan::run_scan;
