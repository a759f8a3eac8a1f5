//! What can go wrong when resolving an image at its registry (the engine gives each error
//! the class its policy acts on: `engine::FindingClass::of`).
//!
//! Every variant names the registry host and, where it helps, the repository, so a message
//! can say exactly where the kubelet's pull would stop. No variant ever holds a credential.

use std::time::Duration;

use crate::text::human_duration;

/// Why a registry said 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthProblem {
    /// No credential matched the registry: the pull was anonymous.
    NoCredentials,
    /// The registry or its token service refused the username/password.
    CredentialsRefused,
    /// The credentials were accepted but carry no pull right on this repository (or, on
    /// registries like Docker Hub, the repository does not exist).
    InsufficientScope,
}

/// Why a registry could not be reached or gave no usable answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unreachable {
    Dns,
    ConnectionRefused,
    Connect,
    Tls,
    /// HTTP status of a server error (5xx) or an unexpected answer.
    Status(u16),
    /// An answer that breaks the protocol: bad JSON, a digest that does not match the
    /// content, an oversized manifest.
    InvalidResponse,
}

/// Which time limit ended a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutLimit {
    /// Connecting (TCP and the TLS handshake) took longer than the connect timeout.
    Connect,
    /// One registry request (with its redirects and its body) took longer than
    /// `--registry-timeout` / `registryTimeout`.
    Request,
    /// The admission review's deadline (its `?timeout=` less the margin, or the cap).
    Review,
    /// `pullcheck check --timeout`.
    Check,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("repository {repository} does not exist on {registry}")]
    RepositoryNotFound {
        registry: String,
        repository: String,
    },
    #[error("tag {tag:?} does not exist in {registry}/{repository}")]
    TagNotFound {
        registry: String,
        repository: String,
        tag: String,
        /// Existing tags closest to the one asked for, best first.
        closest: Vec<String>,
    },
    #[error("digest {digest} does not exist in {registry}/{repository}")]
    DigestNotFound {
        registry: String,
        repository: String,
        digest: String,
    },
    #[error("{}", unauthorized_message(registry, repository, *problem))]
    Unauthorized {
        registry: String,
        repository: String,
        problem: AuthProblem,
    },
    #[error(
        "access to {registry}/{repository} denied by the registry (403){}",
        detail_suffix(detail)
    )]
    Denied {
        registry: String,
        repository: String,
        detail: String,
    },
    #[error(
        "{registry} is rate limiting requests (429){}",
        rate_limit_suffix(*limit, *window, *retry_after)
    )]
    RateLimited {
        registry: String,
        /// `Retry-After`, else the reset its rate-limit headers say.
        retry_after: Option<Duration>,
        /// The quota of the window, when its rate-limit headers say it.
        limit: Option<u64>,
        /// The window's length, when said (Docker Hub: 6h, rolling).
        window: Option<Duration>,
    },
    #[error("{}", unreachable_message(host, cause, detail))]
    Unavailable {
        /// The host that failed: the registry, or its token service.
        host: String,
        cause: Unreachable,
        detail: String,
    },
    #[error("{}", timeout_message(host, *after, *limit))]
    Timeout {
        host: String,
        after: Duration,
        /// The limit that fired (each message says which, and how long it is).
        limit: TimeoutLimit,
    },
    #[error("requests to {host} are blocked by pullcheck's host policy: {reason}")]
    Blocked { host: String, reason: String },
}

impl RegistryError {
    /// Whether this is the registry's answer (not found, unauthorized, denied), which
    /// retrying will not change; a transient failure (rate limited, unavailable, timeout,
    /// blocked) says nothing about whether the kubelet could pull.
    pub fn is_definite(&self) -> bool {
        !matches!(
            self,
            Self::RateLimited { .. }
                | Self::Unavailable { .. }
                | Self::Timeout { .. }
                | Self::Blocked { .. }
        )
    }

    /// Whether retrying with other credentials could change the answer (kubelet tries every
    /// matching credential in turn; the first that works wins).
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::Unauthorized { .. } | Self::Denied { .. })
    }
}

fn unauthorized_message(registry: &str, repository: &str, problem: AuthProblem) -> String {
    match problem {
        AuthProblem::NoCredentials => format!(
            "{registry}/{repository} requires authentication and no pull secret has credentials for {registry}"
        ),
        AuthProblem::CredentialsRefused => {
            format!("{registry} refused the credentials (wrong, expired or rotated username/password)")
        }
        AuthProblem::InsufficientScope => format!(
            "the credentials are not allowed to pull {registry}/{repository} (or the repository does not exist)"
        ),
    }
}

fn unreachable_message(host: &str, cause: &Unreachable, detail: &str) -> String {
    let what = match cause {
        // The resolver's own words add nothing to this (classify leaves them out); a
        // detail says whose name it is (e.g. a token service's).
        Unreachable::Dns => {
            return format!(
                "registry unavailable: the name {} does not resolve (DNS){}",
                host_only(host),
                detail_suffix(detail)
            )
        }
        Unreachable::ConnectionRefused => format!("{host} refused the connection"),
        Unreachable::Connect => format!("cannot connect to {host}"),
        Unreachable::Tls => format!("TLS with {host} failed"),
        Unreachable::Status(code) => format!("{host} answered HTTP {code}"),
        Unreachable::InvalidResponse => format!("{host} gave an invalid answer"),
    };
    format!("registry unavailable: {what}{}", detail_suffix(detail))
}

fn timeout_message(host: &str, after: Duration, limit: TimeoutLimit) -> String {
    let after = human_duration(after);
    match limit {
        TimeoutLimit::Connect => {
            format!("{host} did not complete a connection within {after} (the connect timeout)")
        }
        TimeoutLimit::Request => {
            format!("{host} did not answer within {after} (the registry timeout)")
        }
        TimeoutLimit::Review => {
            format!("{host} did not answer within {after} (the review's deadline)")
        }
        TimeoutLimit::Check => format!("{host} did not answer within {after} (--timeout)"),
    }
}

fn host_only(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split(']').next().map_or(host, |h| &h[1..]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// `: limit 100 per 6h, resets within 6h (rolling window)`, `, retry after 30s`: the
/// window and when it resets, as far as the registry said.
fn rate_limit_suffix(
    limit: Option<u64>,
    window: Option<Duration>,
    retry_after: Option<Duration>,
) -> String {
    let quota = match (limit, window) {
        (Some(l), Some(w)) => format!(": limit {l} per {}", human_duration(w)),
        (Some(l), None) => format!(": limit {l}"),
        (None, Some(w)) => format!(": {} window", human_duration(w)),
        (None, None) => String::new(),
    };
    let reset = match (retry_after, window) {
        (Some(d), _) => format!(", retry after {}", human_duration(d)),
        (None, Some(w)) => format!(", resets within {} (rolling window)", human_duration(w)),
        (None, None) => String::new(),
    };
    format!("{quota}{reset}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(
        TimeoutLimit::Connect,
        "r:5000 did not complete a connection within 3s (the connect timeout)"
    )]
    #[case(
        TimeoutLimit::Request,
        "r:5000 did not answer within 3s (the registry timeout)"
    )]
    #[case(
        TimeoutLimit::Review,
        "r:5000 did not answer within 3s (the review's deadline)"
    )]
    #[case(TimeoutLimit::Check, "r:5000 did not answer within 3s (--timeout)")]
    fn timeouts_say_which_limit_fired(#[case] limit: TimeoutLimit, #[case] want: &str) {
        let e = RegistryError::Timeout {
            host: "r:5000".into(),
            after: Duration::from_secs(3),
            limit,
        };
        assert_eq!(e.to_string(), want);
    }

    #[rstest]
    #[case(
        None,
        None,
        Some(30),
        "r is rate limiting requests (429), retry after 30s"
    )]
    #[case(
        Some(100),
        Some(21_600),
        None,
        "r is rate limiting requests (429): limit 100 per 6h, resets within 6h (rolling window)"
    )]
    #[case(
        Some(100),
        Some(60),
        Some(20),
        "r is rate limiting requests (429): limit 100 per 1m, retry after 20s"
    )]
    #[case(None, None, None, "r is rate limiting requests (429)")]
    fn a_429_says_the_window_and_when_it_resets(
        #[case] limit: Option<u64>,
        #[case] window: Option<u64>,
        #[case] retry: Option<u64>,
        #[case] want: &str,
    ) {
        let e = RegistryError::RateLimited {
            registry: "r".into(),
            retry_after: retry.map(Duration::from_secs),
            limit,
            window: window.map(Duration::from_secs),
        };
        assert_eq!(e.to_string(), want);
    }

    #[test]
    fn dns_message_names_the_host_without_port() {
        let e = RegistryError::Unavailable {
            host: "myreigstry.com:5000".into(),
            cause: Unreachable::Dns,
            detail: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "registry unavailable: the name myreigstry.com does not resolve (DNS)"
        );
    }

    #[test]
    fn dns_message_of_a_token_service_says_whose_it_is() {
        let e = RegistryError::Unavailable {
            host: "auth.example.com".into(),
            cause: Unreachable::Dns,
            detail: "token service of r.example:5000".into(),
        };
        assert_eq!(
            e.to_string(),
            "registry unavailable: the name auth.example.com does not resolve (DNS): token service of r.example:5000"
        );
    }
}
