//! HTTP plumbing under the registry client: building reqwest clients (HTTP/2, extra CAs,
//! no automatic redirects: [`super::redirect`] follows them), the outbound host policy
//! (allow/deny globs, link-local and metadata addresses refused), bounded body reads and
//! the mapping of transport errors to [`RegistryError`] classes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use super::error::{RegistryError, TimeoutLimit, Unreachable};
use super::hosts::{blocked_reason, ip_literal, normalize_host};
use crate::text::{error_chain, glob_match};

/// Where pullcheck may send requests. Image references and token realms come from users and
/// registries, so outbound requests are an SSRF vector in a process that holds every
/// namespace's pull credentials.
#[derive(Clone, Debug, Default)]
pub struct HostPolicy {
    /// When non-empty, only hosts matching one of these globs (`*` matches any run of
    /// characters, `registry.example.com`, `*.example.com`) are contacted. Globs are
    /// checked at start ([`super::hosts::validate_globs`]).
    pub allow: Vec<String>,
    /// Hosts matching one of these globs are never contacted.
    pub deny: Vec<String>,
    /// Permit link-local (169.254.0.0/16, fe80::/10) and cloud metadata addresses.
    pub allow_link_local: bool,
}

impl HostPolicy {
    /// Checks a host name or IP literal (no port; IPv6 with or without brackets). Names are
    /// compared without their trailing dot: `deny.example.` is `deny.example`.
    pub fn check_host(&self, host: &str) -> Result<(), String> {
        let name = normalize_host(host);
        let ip = ip_literal(&name);
        let matches = |glob: &String| match (ip, ip_literal(glob)) {
            // IP literals are compared as addresses (`::ffff:a9fe:a9fe` is written in
            // more than one way).
            (Some(ip), Some(rule)) => ip == rule,
            _ => glob_match(glob, &name),
        };
        if let Some(glob) = self.deny.iter().find(|g| matches(g)) {
            return Err(format!("host matches deny rule {glob:?}"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(matches) {
            return Err("host matches no allow rule".to_string());
        }
        if let Some(ip) = ip {
            self.check_ip(ip)?;
        }
        Ok(())
    }

    /// Checks an address a host name resolved to (or an IP literal).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow_link_local {
            return Ok(());
        }
        match blocked_reason(ip) {
            Some(why) => Err(format!("{ip} is {why}")),
            None => Ok(()),
        }
    }

    /// Checks the host of a URL about to be requested (registry, token realm, redirect).
    pub fn check_url(&self, url: &Url) -> Result<(), RegistryError> {
        let host = url.host_str().unwrap_or_default();
        self.check_host(host)
            .map_err(|reason| RegistryError::Blocked {
                host: host.to_string(),
                reason,
            })
    }
}

/// Why name resolution failed; found again in reqwest's error source chain.
#[derive(Debug, thiserror::Error)]
enum ResolveFailure {
    #[error("blocked: {0}")]
    Blocked(String),
    #[error("{0}")]
    Dns(String),
}

/// DNS through the system resolver, with the host policy applied to names and addresses.
struct PolicyResolver {
    policy: Arc<HostPolicy>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_string();
        Box::pin(async move {
            type BoxError = Box<dyn std::error::Error + Send + Sync>;
            let fail = |f: ResolveFailure| -> BoxError { Box::new(f) };
            policy
                .check_host(&host)
                .map_err(|r| fail(ResolveFailure::Blocked(r)))?;
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| fail(ResolveFailure::Dns(e.to_string())))?
                .collect();
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| policy.check_ip(a.ip()).is_ok())
                .collect();
            if allowed.is_empty() {
                let reason = match addrs.first() {
                    Some(a) => policy
                        .check_ip(a.ip())
                        .err()
                        .unwrap_or_else(|| "no usable address".into()),
                    None => "no address".into(),
                };
                return Err(fail(ResolveFailure::Blocked(reason)));
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Transport settings shared by every registry client.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub user_agent: String,
    pub policy: Arc<HostPolicy>,
}

/// reqwest clients per distinct set of extra trust roots, each in two kinds: one that keeps
/// idle connections (for tracked registries, see `registry::names`) and one that closes
/// each connection after its request (for every other host, so a stream of distinct hosts
/// cannot pile up idle connections). reqwest clients carry no credentials (those go on each
/// request), so sharing one across tenants is safe and keeps connections warm.
#[derive(Clone, Debug)]
pub struct HttpClients {
    default: Pair,
    per_host: HashMap<String, Pair>,
}

#[derive(Clone, Debug)]
struct Pair {
    pooled: reqwest::Client,
    unpooled: reqwest::Client,
}

impl Pair {
    fn build(transport: &TransportConfig, cas: &[Vec<u8>]) -> anyhow::Result<Self> {
        Ok(Self {
            pooled: build_client(transport, cas, true)?,
            unpooled: build_client(transport, cas, false)?,
        })
    }
}

/// Idle connections kept per tracked registry host (HTTP/2 multiplexes on one).
const IDLE_PER_HOST: usize = 4;

impl HttpClients {
    /// `global_cas`: PEM bundles trusted for every registry; `host_cas`: per registry host.
    pub fn build(
        transport: &TransportConfig,
        global_cas: &[Vec<u8>],
        host_cas: &HashMap<String, Vec<Vec<u8>>>,
    ) -> anyhow::Result<Self> {
        let default = Pair::build(transport, global_cas)?;
        let mut per_host = HashMap::new();
        for (host, cas) in host_cas {
            if cas.is_empty() {
                continue;
            }
            let mut all = global_cas.to_vec();
            all.extend(cas.iter().cloned());
            per_host.insert(host.clone(), Pair::build(transport, &all)?);
        }
        Ok(Self { default, per_host })
    }

    /// The client for `host`; `pooled` keeps its connections for the next request.
    pub fn for_host(&self, host: &str, pooled: bool) -> &reqwest::Client {
        let pair = self.per_host.get(host).unwrap_or(&self.default);
        if pooled {
            &pair.pooled
        } else {
            &pair.unpooled
        }
    }
}

fn build_client(
    transport: &TransportConfig,
    cas: &[Vec<u8>],
    pooled: bool,
) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(transport.user_agent.clone())
        .connect_timeout(transport.connect_timeout)
        .timeout(transport.request_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(if pooled { IDLE_PER_HOST } else { 0 })
        // Redirects are followed by `super::redirect`, which never re-sends credentials
        // once a hop has left the first origin (reqwest's policy re-applies them).
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(PolicyResolver {
            policy: Arc::clone(&transport.policy),
        })
        // Trust as the nodes' runtimes (Go) give it: see `super::trust`.
        .tls_backend_preconfigured(super::trust::client_config(cas)?)
        .build()
        .context("cannot build HTTP client")
}

/// Maps a transport error to its class, naming `host` (the one that failed) and, for a
/// timeout, the limit that fired: connecting (TCP and TLS) has its own, shorter limit.
pub fn classify(err: &reqwest::Error, host: &str, transport: &TransportConfig) -> RegistryError {
    let unavailable = |cause, detail: String| RegistryError::Unavailable {
        host: host.to_string(),
        cause,
        detail,
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(r) = e.downcast_ref::<ResolveFailure>() {
            return match r {
                ResolveFailure::Blocked(reason) => RegistryError::Blocked {
                    host: host.to_string(),
                    reason: reason.clone(),
                },
                // The resolver's own words add nothing to "does not resolve"; the detail
                // is left for the caller to say whose name it was (a token service's).
                ResolveFailure::Dns(_) => unavailable(Unreachable::Dns, String::new()),
            };
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            let detail = match super::trust::trust_problem(tls) {
                Some(problem) => problem.describe(host),
                None => tls.to_string(),
            };
            return unavailable(Unreachable::Tls, detail);
        }
        let mut next = e.source();
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return unavailable(Unreachable::ConnectionRefused, String::new());
            }
            // io::Error::source skips the wrapped error itself (rustls wraps its errors in
            // io::Error, sometimes twice): descend into it instead.
            if let Some(inner) = io.get_ref() {
                next = Some(inner as &(dyn std::error::Error + 'static));
            }
        }
        source = next;
    }
    if err.is_timeout() {
        // reqwest's connect timeout surfaces as a connect error; the request's own timeout
        // (the whole request, body included) does not.
        let (after, limit) = if err.is_connect() {
            (transport.connect_timeout, TimeoutLimit::Connect)
        } else {
            (transport.request_timeout, TimeoutLimit::Request)
        };
        return RegistryError::Timeout {
            host: host.to_string(),
            after,
            limit,
        };
    }
    // The sources only: reqwest's own text repeats the URL (no secrets are in our URLs, but
    // they are long and the host is named separately).
    let detail = match std::error::Error::source(err) {
        Some(source) => error_chain(source),
        None => err.to_string(),
    };
    unavailable(Unreachable::Connect, detail)
}

/// Reads a body, refusing more than `limit` bytes (manifests and configs are small; a
/// registry that sends gigabytes must not take our memory).
pub async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
    host: &str,
    transport: &TransportConfig,
) -> Result<Vec<u8>, RegistryError> {
    let too_big = || RegistryError::Unavailable {
        host: host.to_string(),
        cause: Unreachable::InvalidResponse,
        detail: format!("response larger than {limit} bytes"),
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| classify(&e, host, transport))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// host[:port] of a URL, as users write it.
pub fn host_port(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("169.254.169.254", false)]
    #[case("169.254.1.1", false)]
    #[case("100.100.100.200", false)]
    #[case("fe80::1", false)]
    #[case("fd00:ec2::254", false)]
    #[case("::ffff:169.254.169.254", false)]
    #[case("0.0.0.0", false)]
    #[case("127.0.0.1", true)]
    #[case("10.0.0.1", true)]
    #[case("registry.example.com", true)]
    fn default_policy(#[case] host: &str, #[case] allowed: bool) {
        assert_eq!(HostPolicy::default().check_host(host).is_ok(), allowed);
    }

    #[test]
    fn allow_list_and_deny_list() {
        let p = HostPolicy {
            allow: vec!["*.corp.example".into(), "ghcr.io".into()],
            deny: vec!["bad.corp.example".into()],
            allow_link_local: false,
        };
        assert!(p.check_host("ghcr.io").is_ok());
        assert!(p.check_host("r.corp.example").is_ok());
        assert!(p.check_host("bad.corp.example").is_err());
        assert!(p.check_host("docker.io").is_err());
    }

    fn deny(globs: &[&str]) -> HostPolicy {
        HostPolicy {
            deny: globs.iter().map(|g| g.to_string()).collect(),
            ..HostPolicy::default()
        }
    }

    #[rstest]
    // Names are compared without their trailing dot, whatever the case.
    #[case("https://deny.example/v2/", false)]
    #[case("https://deny.example./v2/", false)]
    #[case("https://DENY.example.:5000/token", false)]
    #[case("https://a.deny.example./x", false)]
    #[case("https://deny.example.org./x", true)]
    #[case("https://ok.example./x", true)]
    // IP literals in every notation the URL parser accepts are checked as addresses.
    #[case("http://2852039166/", false)] // 169.254.169.254 as one number
    #[case("http://0xa9.0xfe.0xa9.0xfe/", false)]
    #[case("http://169.254.169.254./", false)]
    #[case("http://[::a9fe:a9fe]/", false)]
    #[case("http://[::ffff:169.254.169.254]/", false)]
    #[case("http://[64:ff9b::a9fe:a9fe]/", false)]
    #[case("http://[2002:a9fe:a9fe::]/", false)]
    #[case("http://168.63.129.16/", false)]
    #[case("http://[fd00:0:0::1]/", false)] // the deny rule below, written differently
    #[case("http://[fd00::2]/", true)]
    fn urls_through_the_guard(#[case] url: &str, #[case] allowed: bool) {
        let policy = deny(&["*.deny.example", "deny.example", "fd00::1"]);
        let url = Url::parse(url).unwrap();
        let got = policy.check_url(&url);
        assert_eq!(got.is_ok(), allowed, "{url}: {got:?}");
    }

    #[test]
    fn blocked_messages_say_why() {
        let err = deny(&["deny.example"])
            .check_url(&Url::parse("https://deny.example./token").unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "requests to deny.example. are blocked by pullcheck's host policy: host matches deny rule \"deny.example\""
        );
        let err = HostPolicy::default()
            .check_url(&Url::parse("http://[::a9fe:a9fe]/").unwrap())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("::a9fe:a9fe is the IPv4-compatible form of 169.254.169.254"),
            "{err}"
        );
    }

    #[test]
    fn allow_rules_match_names_with_a_trailing_dot() {
        let p = HostPolicy {
            allow: vec!["registry.example".into()],
            ..HostPolicy::default()
        };
        assert!(p.check_host("registry.example.").is_ok());
        assert!(p.check_host("other.example.").is_err());
    }

    fn transport(connect: Duration, request: Duration) -> TransportConfig {
        TransportConfig {
            connect_timeout: connect,
            request_timeout: request,
            user_agent: "pullcheck-test".into(),
            policy: Arc::new(HostPolicy::default()),
        }
    }

    /// A listener on loopback that accepts connections and never writes a byte.
    async fn silent_listener() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn a_connect_timeout_is_named_as_such() {
        // TLS handshake that never completes: the connect timeout fires, not the request's.
        let (addr, task) = silent_listener().await;
        let t = transport(Duration::from_millis(300), Duration::from_secs(8));
        let http = HttpClients::build(&t, &[], &HashMap::new()).unwrap();
        let started = std::time::Instant::now();
        let err = http
            .for_host("x", true)
            .get(format!("https://{addr}/v2/"))
            .send()
            .await
            .unwrap_err();
        let took = started.elapsed();
        let got = classify(&err, &addr.to_string(), &t);
        assert_eq!(
            got,
            RegistryError::Timeout {
                host: addr.to_string(),
                after: Duration::from_millis(300),
                limit: TimeoutLimit::Connect
            }
        );
        assert!(took < Duration::from_secs(3), "{took:?}");
        task.abort();
    }

    #[tokio::test]
    async fn a_request_timeout_is_named_as_such() {
        // Plain HTTP: connected at once, the request is never answered.
        let (addr, task) = silent_listener().await;
        let t = transport(Duration::from_secs(3), Duration::from_millis(300));
        let http = HttpClients::build(&t, &[], &HashMap::new()).unwrap();
        let err = http
            .for_host("x", true)
            .get(format!("http://{addr}/v2/"))
            .send()
            .await
            .unwrap_err();
        let got = classify(&err, &addr.to_string(), &t);
        assert_eq!(
            got.to_string(),
            format!("{addr} did not answer within 300ms (the registry timeout)")
        );
        task.abort();
    }

    #[test]
    fn link_local_can_be_allowed() {
        let p = HostPolicy {
            allow_link_local: true,
            ..HostPolicy::default()
        };
        assert!(p.check_host("169.254.169.254").is_ok());
    }
}
