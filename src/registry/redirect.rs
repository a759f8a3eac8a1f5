//! Redirects, followed by pullcheck itself rather than by reqwest, so that credentials
//! never travel further than the registry (or token service) they were meant for.
//!
//! Registries redirect blob and manifest requests to storage hosts (Docker Hub, GHCR, ECR
//! and GCR all do), and a hostile registry can redirect anywhere. The rules, for every
//! request that may be redirected (`/v2/` ping, HEAD/GET manifest, GET blob, tag list,
//! token request):
//!
//! - `Authorization` (Basic or Bearer) is sent only to the origin (scheme, host, port) of
//!   the first request, and only until a hop leaves that origin: once a hop has gone
//!   elsewhere, no later hop of the chain carries credentials, not even one that comes
//!   back to the first origin (it could carry a path of the attacker's choosing).
//! - Never from https to http: the request fails, naming both origins.
//! - At most [`MAX_REDIRECTS`] redirects; one more is an error.
//! - Every hop goes through the host guard ([`HostPolicy::check_url`], and the resolver
//!   applies it to the addresses a name resolves to), like the first request.
//! - 301, 302, 303, 307 and 308 are followed keeping the method (pullcheck only sends
//!   body-less GET and HEAD requests, for which all five mean "ask there instead").
//! - The whole chain shares one registry timeout, the final answer's body included
//!   (reqwest applies a request's timeout to its body too).
//!
//! Messages name the host that failed (a storage host, not the registry that sent there)
//! and say that a redirect led there.

use base64::Engine as _;
use http::header::{ACCEPT, AUTHORIZATION, LOCATION};
use http::{HeaderValue, Method, StatusCode};
use tokio::time::Instant;
use url::Url;

use super::error::{RegistryError, TimeoutLimit, Unreachable};
use super::http::{classify, host_port, TransportConfig};

/// Redirects followed at most for one request (reqwest's default policy allows 10; five
/// is what pullcheck always allowed, and more than registries use).
pub const MAX_REDIRECTS: usize = 5;

/// `Authorization: Basic …` for a username and password; marked sensitive so it never
/// shows in debug output.
pub fn basic(username: &str, password: &str) -> HeaderValue {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut value =
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

/// `Authorization: Bearer …`; `None` when the token holds bytes a header cannot carry
/// (a token service's answer is not trusted to be well formed).
pub fn bearer(token: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// One request whose redirects pullcheck follows.
pub struct Outbound<'a> {
    pub http: &'a reqwest::Client,
    pub transport: &'a TransportConfig,
    pub method: Method,
    pub url: Url,
    pub accept: Option<&'a str>,
    /// Sent to the origin of `url` only, and only until a hop leaves it.
    pub authorization: Option<HeaderValue>,
}

/// The final answer of a chain.
#[derive(Debug)]
pub struct Answer {
    pub response: reqwest::Response,
    /// host[:port] that answered (a storage host after a redirect).
    pub host: String,
    /// host[:port] of the first request, when a redirect led elsewhere.
    pub redirected_from: Option<String>,
}

impl Answer {
    /// Names the host that gave an unusable answer after a redirect (a storage host's 500
    /// is not the registry's), saying which registry sent there.
    pub fn blame(&self, err: RegistryError) -> RegistryError {
        match (&self.redirected_from, err) {
            (Some(from), RegistryError::Unavailable { cause, detail, .. }) => redirected_by(
                RegistryError::Unavailable {
                    host: self.host.clone(),
                    cause,
                    detail,
                },
                from,
            ),
            (_, err) => err,
        }
    }
}

impl Outbound<'_> {
    /// Sends the request, following redirects by the rules of this module.
    pub async fn send(self) -> Result<Answer, RegistryError> {
        let started = Instant::now();
        let limit = self.transport.request_timeout;
        let first = without_credentials(self.url);
        let first_host = host_port(&first);
        let origin = first.origin();
        let mut url = first.clone();
        // Whether every hop so far stayed on the first origin.
        let mut on_origin = true;
        let mut redirects = 0;
        loop {
            let host = host_port(&url);
            let from = (redirects > 0 && host != first_host).then(|| first_host.clone());
            let led_there = |err: RegistryError| match &from {
                Some(f) => redirected_by(err, f),
                None => err,
            };
            self.transport.policy.check_url(&url).map_err(led_there)?;
            let Some(remaining) = limit
                .checked_sub(started.elapsed())
                .filter(|d| !d.is_zero())
            else {
                return Err(RegistryError::Timeout {
                    host,
                    after: limit,
                    limit: TimeoutLimit::Request,
                });
            };
            let mut req = self
                .http
                .request(self.method.clone(), url.clone())
                .timeout(remaining);
            if let Some(accept) = self.accept {
                req = req.header(ACCEPT, accept);
            }
            if let Some(auth) = &self.authorization {
                on_origin &= url.origin() == origin;
                if on_origin {
                    req = req.header(AUTHORIZATION, auth.clone());
                }
            }
            let response = req
                .send()
                .await
                .map_err(|e| led_there(classify(&e, &host, self.transport)))?;
            let status = response.status();
            if !is_followed(status) {
                return Ok(Answer {
                    response,
                    host,
                    redirected_from: from,
                });
            }
            let next = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url.join(l).ok())
                .ok_or_else(|| {
                    led_there(RegistryError::Unavailable {
                        host: host.clone(),
                        cause: Unreachable::InvalidResponse,
                        detail: format!("HTTP {} without a usable Location", status.as_u16()),
                    })
                })?;
            let next = without_credentials(next);
            if !matches!(next.scheme(), "https" | "http") {
                return Err(led_there(RegistryError::Blocked {
                    host: host_port(&next),
                    reason: format!(
                        "{host} redirected to a {}: URL; only http(s) is followed",
                        next.scheme()
                    ),
                }));
            }
            if url.scheme() == "https" && next.scheme() == "http" {
                return Err(RegistryError::Blocked {
                    host: host_port(&next),
                    reason: format!(
                        "a redirect from {} to {} would leave TLS; redirects from https to http are never followed",
                        origin_text(&url),
                        origin_text(&next)
                    ),
                });
            }
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                return Err(RegistryError::Unavailable {
                    host: first_host,
                    cause: Unreachable::InvalidResponse,
                    detail: format!(
                        "more than {MAX_REDIRECTS} redirects (the last from {} to {})",
                        origin_text(&url),
                        origin_text(&next)
                    ),
                });
            }
            // The redirect's body is not wanted; dropping it closes or drains the stream.
            drop(response);
            url = next;
        }
    }
}

fn is_followed(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

/// A URL without user info (reqwest would turn it into Basic credentials of the URL's
/// author) and without a fragment (never sent).
fn without_credentials(mut url: Url) -> Url {
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_fragment(None);
    url
}

/// `scheme://host:port` of a URL: enough to name a hop. Never the path or query, which may
/// hold a storage service's signature.
fn origin_text(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Says that a failing host was reached through a redirect from `from`.
fn redirected_by(err: RegistryError, from: &str) -> RegistryError {
    let note = format!("redirected there by {from}");
    match err {
        RegistryError::Unavailable {
            host,
            cause,
            detail,
        } => RegistryError::Unavailable {
            host,
            cause,
            detail: if detail.is_empty() {
                note
            } else {
                format!("{detail} ({note})")
            },
        },
        RegistryError::Blocked { host, reason } => RegistryError::Blocked {
            host,
            reason: format!("{reason} ({note})"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(301, true)]
    #[case(302, true)]
    #[case(303, true)]
    #[case(307, true)]
    #[case(308, true)]
    #[case(300, false)]
    #[case(304, false)]
    #[case(305, false)]
    #[case(200, false)]
    fn followed_statuses(#[case] code: u16, #[case] followed: bool) {
        assert_eq!(is_followed(StatusCode::from_u16(code).unwrap()), followed);
    }

    #[test]
    fn user_info_and_fragments_are_dropped() {
        let url = without_credentials(Url::parse("https://u:p@b.example:8443/x?sig=1#f").unwrap());
        assert_eq!(url.as_str(), "https://b.example:8443/x?sig=1");
    }

    #[test]
    fn hops_are_named_by_origin_only() {
        let url = Url::parse("https://storage.example/blob?X-Amz-Signature=secret").unwrap();
        assert_eq!(origin_text(&url), "https://storage.example");
    }

    #[test]
    fn credentials_are_sensitive() {
        assert!(basic("u", "p").is_sensitive());
        assert_eq!(basic("u", "p"), "Basic dTpw");
        assert!(bearer("t").unwrap().is_sensitive());
        assert!(bearer("bad\ntoken").is_none());
    }

    #[test]
    fn redirected_failures_say_where_from() {
        let e = redirected_by(
            RegistryError::Unavailable {
                host: "s.example".into(),
                cause: Unreachable::Dns,
                detail: String::new(),
            },
            "r.example:5000",
        );
        assert_eq!(
            e.to_string(),
            "registry unavailable: the name s.example does not resolve (DNS): redirected there by r.example:5000"
        );
    }
}
