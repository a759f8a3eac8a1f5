//! Integration-test harness: a REAL registry (Debian's `docker-registry`, the CNCF
//! distribution registry 2.8) on loopback, optionally behind TLS and htpasswd or
//! token auth, plus helpers that push real images and read the registry's access log.
//!
//! ```ignore
//! mod support;
//! use support::{Auth, RegistryOptions, TestRegistry};
//!
//! let reg = TestRegistry::start(RegistryOptions { tls: true, auth: Auth::Token }).await;
//! let digest = reg.push_image("private/app", Some("v1"), "linux/amd64").await;
//! reg.clear_requests().await;
//! // ... exercise the code under test against reg.host() ...
//! assert_eq!(reg.count("HEAD", "/manifests/v1").await, 1);
//! ```
//!
//! Each test binary uses only part of this module.
#![allow(dead_code, unused_imports)]

pub mod apiserver;
pub mod double;
pub mod engine;
mod push;
mod registry;
pub mod serve;
pub mod tls;
mod token;
mod util;

pub use registry::TestRegistry;

/// How the registry authenticates clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Anyone may pull and push.
    None,
    /// HTTP Basic against an htpasswd file holding [`ADMIN`], [`ALICE`] and [`BOB`]:
    /// any authenticated user may pull (and push) everything; anonymous gets 401.
    Htpasswd,
    /// Docker token auth with a token server of the harness (see the user constants).
    Token,
}

/// What to start. Plain HTTP (`tls: false`) works only with [`Auth::None`].
#[derive(Clone, Copy, Debug)]
pub struct RegistryOptions {
    pub tls: bool,
    pub auth: Auth,
}

/// One line of the registry's access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// The request path, without the query string (as sent, not percent-decoded).
    pub path: String,
    /// The query string without the leading '?' ("" when none).
    pub query: String,
    pub status: u16,
}

/// One request the token server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The Basic-auth user name, or "anonymous" when no credentials were sent.
    pub user: String,
    /// The `scope` query parameter(s); several are joined with a single space ("" when none).
    pub scope: String,
    /// The HTTP status the token server answered.
    pub status: u16,
}

/// Push and pull everything (used by the push helpers).
pub const ADMIN: (&str, &str) = ("admin", "admin-pw");
/// Htpasswd: pulls everything. Token: pull on repositories under "private/" and "public/".
pub const ALICE: (&str, &str) = ("alice", "alice-pw");
/// Htpasswd: pulls everything. Token: pull on repositories under "bob/" only.
pub const BOB: (&str, &str) = ("bob", "bob-pw");

/// The `service` of the token set-up (the JWT audience).
pub const TOKEN_SERVICE: &str = "pullcheck-test-registry";
/// The `issuer` of the token set-up.
pub const TOKEN_ISSUER: &str = "pullcheck-test-issuer";

/// Accept header listing every manifest type the registry can store. Registry 2.8
/// answers 404 "manifest unknown" for an OCI manifest or index whose media type the
/// request's Accept header does not list, so manifest requests should send this.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Media types used by the push helpers.
pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const IN_TOTO: &str = "application/vnd.in-toto+json";
}

/// A host name that never resolves and is never sent to a DNS server: its first label is 64
/// bytes, over DNS's 63-byte limit (RFC 1035), so the system resolver refuses it without a
/// query. Tests that need a name that does not resolve use it, so no packet leaves loopback.
pub fn unresolvable_name(label: &str) -> String {
    let first = format!(
        "{label}-{}",
        "x".repeat(64usize.saturating_sub(label.len() + 1))
    );
    format!("{first}.invalid")
}
