//! The admission webhook: `pullcheck serve` and `pullcheck certs`.
//!
//! - [`wire`]: the AdmissionReview as read and written (only what pullcheck reads);
//! - [`review`]: a request in, its answer out (the engine decides);
//! - [`http`]: routes, body limits, the deadline from `?timeout=`, bounded answers;
//! - [`listener`] and `connections`: the accept loop with its connection limits, TLS,
//!   HTTP/2 and HTTP/1.1, idle and keep-alive;
//! - [`tls`]: the serving certificate and the client CA, re-read when they change;
//! - [`serve`]: the wiring (the engine from [`crate::config::assemble`]) and shutdown;
//! - [`certs`]: `pullcheck certs`, the CA and the serving certificate.
//!
//! Depends on: [`crate::config`], [`crate::engine`] and everything below them. Never on
//! `ci`.

pub mod certs;
mod connections;
pub mod http;
pub mod listener;
pub mod review;
pub mod serve;
pub mod tls;
pub mod wire;

pub use connections::{Closed, ConnectionMetrics};
