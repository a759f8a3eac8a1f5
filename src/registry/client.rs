//! One registry client per (registry host, credential set): its token cache is keyed by
//! repository scope only, so sharing it between credential sets would hand one tenant's
//! token to another. The HTTP connection pool underneath is shared (it holds no auth).

use std::sync::Arc;
use std::time::Duration;

use http::header::{CONTENT_TYPE, LINK, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, StatusCode};
use moka::future::Cache;
use sha2::Digest as _;
use url::Url;

use super::auth::{self, Auth, Challenge, Token, TokenExpiry};
use super::error::{AuthProblem, RegistryError, Unreachable};
use super::http::{read_limited, TransportConfig};
use super::names::TrackedHosts;
use super::ratelimit::{self, BudgetKey, Budgets};
use super::redirect::{self, Answer, Outbound};

use crate::kubelet::credentials::Credential;
use crate::kubelet::manifest::{
    MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST,
};
use crate::metrics::Metrics;

/// Accept header for manifests: what containerd 2 asks for (no schema 1).
const MANIFEST_ACCEPT: &str = concat!(
    "application/vnd.oci.image.index.v1+json, ",
    "application/vnd.docker.distribution.manifest.list.v2+json, ",
    "application/vnd.oci.image.manifest.v1+json, ",
    "application/vnd.docker.distribution.manifest.v2+json"
);
const _: [&str; 4] = [
    MEDIA_OCI_INDEX,
    MEDIA_DOCKER_LIST,
    MEDIA_OCI_MANIFEST,
    MEDIA_DOCKER_MANIFEST,
];

/// Manifests are limited to 4 MiB by distribution and containerd.
pub const MANIFEST_LIMIT: usize = 4 << 20;
/// Image configs are small JSON documents; 8 MiB is generous.
pub const CONFIG_LIMIT: usize = 8 << 20;

pub(super) const TOKEN_LIMIT: usize = 1 << 20;
const TAGS_PAGE_SIZE: usize = 1000;

/// State shared by every client of the process. Clients themselves are built per
/// resolution and hold nothing worth keeping; what is kept lives here, bounded in bytes.
pub struct Shared {
    pub transport: TransportConfig,
    /// `/v2/` challenge per registry base URL: public information, shared across
    /// credentials.
    pub challenges: Cache<String, Challenge>,
    /// Bearer tokens by (registry base URL, credential identity, scope); concurrent misses
    /// for one key share one token request. Keyed by credential identity, so a token is
    /// never handed to another credential set.
    pub tokens: Cache<String, Token>,
    /// Hosts with their own metric label and pooled connections.
    pub hosts: Arc<TrackedHosts>,
    pub metrics: Arc<Metrics>,
    pub max_tag_pages: usize,
    /// Rate-limit budgets the registries report, per registry and identity.
    pub budgets: Arc<Budgets>,
}

/// Bytes counted for one cached item besides its strings: moka's entry, the key's and the
/// value's headers, allocator rounding (measured by `tests/bounded.rs`: see README).
pub const ENTRY_OVERHEAD: usize = 512;

impl Shared {
    /// Caches bounded by bytes: `token_bytes` for tokens, `challenge_bytes` for challenges.
    pub fn new(
        transport: TransportConfig,
        hosts: Arc<TrackedHosts>,
        metrics: Arc<Metrics>,
        max_tag_pages: usize,
        token_bytes: u64,
        challenge_bytes: u64,
    ) -> Self {
        let weight = |n: usize| u32::try_from(n + ENTRY_OVERHEAD).unwrap_or(u32::MAX);
        let budgets = Arc::new(Budgets::new(Arc::clone(&hosts), Arc::clone(&metrics)));
        Self {
            budgets,
            transport,
            challenges: Cache::builder()
                .max_capacity(challenge_bytes)
                .weigher(move |k: &String, c: &Challenge| {
                    weight(match c {
                        Challenge::Bearer { realm, service } => {
                            k.len() + realm.len() + service.as_ref().map_or(0, String::len)
                        }
                        _ => k.len(),
                    })
                })
                .time_to_live(Duration::from_secs(600))
                .build(),
            tokens: Cache::builder()
                .max_capacity(token_bytes)
                .weigher(move |k: &String, t: &Token| weight(k.len() + t.value.len()))
                .expire_after(TokenExpiry)
                .build(),
            hosts,
            metrics,
            max_tag_pages,
        }
    }
}

/// What a HEAD on a manifest found.
pub enum Head {
    Found {
        digest: Option<String>,
        media_type: Option<String>,
    },
    NotFound,
}

/// The tags of a repository, or the registry's word that the repository does not exist.
pub enum Tags {
    Missing,
    Listed(Vec<String>),
}

/// The distribution API of one registry with one credential set (or none). Cheap to
/// build: its tokens live in [`Shared::tokens`] under [`Self::token_key`].
pub struct RegistryClient {
    /// host[:port] contacted for the API (`registry-1.docker.io` for Docker Hub).
    pub(super) api_host: String,
    pub(super) base: Url,
    pub(super) http: reqwest::Client,
    pub(super) credential: Option<Credential>,
    /// `<base URL>\n<credential identity>\n`: the prefix of this client's token keys.
    pub(super) token_prefix: String,
    pub(super) shared: Arc<Shared>,
}

impl RegistryClient {
    pub fn new(
        api_host: &str,
        plain_http: bool,
        http: reqwest::Client,
        credential: Option<Credential>,
        shared: Arc<Shared>,
    ) -> Result<Self, RegistryError> {
        let scheme = if plain_http { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{api_host}/")).map_err(|e| {
            RegistryError::Unavailable {
                host: api_host.to_string(),
                cause: Unreachable::InvalidResponse,
                detail: format!("not a usable registry address: {e}"),
            }
        })?;
        let identity = credential
            .as_ref()
            .map_or("anonymous", Credential::fingerprint);
        Ok(Self {
            api_host: api_host.to_string(),
            token_prefix: format!("{base}\n{identity}\n"),
            base,
            http,
            credential,
            shared,
        })
    }

    pub(super) fn token_key(&self, scope: &str) -> String {
        let mut key = String::with_capacity(self.token_prefix.len() + scope.len());
        key.push_str(&self.token_prefix);
        key.push_str(scope);
        key
    }

    pub(super) fn transport(&self) -> &TransportConfig {
        &self.shared.transport
    }

    /// A request of this client, its redirects followed by [`redirect`]'s rules.
    pub(super) fn outbound(
        &self,
        method: Method,
        url: Url,
        accept: Option<&'static str>,
        authorization: Option<http::HeaderValue>,
    ) -> Outbound<'_> {
        Outbound {
            http: &self.http,
            transport: &self.shared.transport,
            method,
            url,
            accept,
            authorization,
        }
    }

    pub(super) fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(path);
        url
    }

    pub(super) fn count(&self, host: &str, request: &'static str, outcome: &'static str) {
        let label = self.shared.hosts.label(host);
        self.shared
            .metrics
            .registry_request(label, request, outcome);
    }

    pub(super) fn outcome_of(err: &RegistryError) -> &'static str {
        match err {
            RegistryError::Timeout { .. } => "timeout",
            RegistryError::Blocked { .. } => "blocked",
            _ => "unreachable",
        }
    }
    /// Sends an authorized request; retries once with a new token when a cached one is
    /// refused (tokens can be revoked before they expire).
    async fn send(
        &self,
        method: Method,
        url: Url,
        repository: &str,
        request: &'static str,
        accept: Option<&'static str>,
    ) -> Result<(Answer, Auth), RegistryError> {
        for attempt in 0..2 {
            let auth = self.authorization(repository).await?;
            let authorization = match (&auth, &self.credential) {
                (Auth::Basic, Some(c)) => Some(redirect::basic(c.username(), c.password())),
                (Auth::Bearer { token, .. }, _) => Some(redirect::bearer(token).ok_or_else(
                    || RegistryError::Unavailable {
                        host: self.api_host.clone(),
                        cause: Unreachable::InvalidResponse,
                        detail: "the token service gave a token no HTTP header can carry".into(),
                    },
                )?),
                _ => None,
            };
            let answer = self
                .outbound(method.clone(), url.clone(), accept, authorization)
                .send()
                .await
                .inspect_err(|err| self.count(&self.api_host, request, Self::outcome_of(err)))?;
            let status = answer.response.status();
            self.count(&self.api_host, request, status_label(status));
            self.record_budget(&answer);
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                if let Auth::Bearer { fresh: false, .. } = auth {
                    self.shared
                        .tokens
                        .invalidate(&self.token_key(&format!("repository:{repository}:pull")))
                        .await;
                    continue;
                }
            }
            return Ok((answer, auth));
        }
        unreachable_retry(&self.api_host)
    }

    /// Keeps the rate-limit budget the registry reports (on any answer, HEAD included;
    /// a storage host's answer after a redirect is not the registry's).
    fn record_budget(&self, answer: &Answer) {
        if answer.redirected_from.is_some() {
            return;
        }
        if let Some(rate) = ratelimit::parse(answer.response.headers()) {
            self.shared.budgets.record(
                BudgetKey::new(&self.api_host, self.credential.as_ref()),
                rate,
            );
        }
    }

    /// Maps a non-success status to its class.
    pub(super) fn status_error(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        repository: &str,
        auth: &Auth,
    ) -> RegistryError {
        match status {
            StatusCode::UNAUTHORIZED => {
                let problem = match (auth, &self.credential) {
                    (_, None) => AuthProblem::NoCredentials,
                    (Auth::Bearer { .. }, Some(_)) => AuthProblem::InsufficientScope,
                    (_, Some(_)) => {
                        let header = headers.get(WWW_AUTHENTICATE).and_then(|h| h.to_str().ok());
                        if auth::is_insufficient_scope(header) {
                            AuthProblem::InsufficientScope
                        } else {
                            AuthProblem::CredentialsRefused
                        }
                    }
                };
                RegistryError::Unauthorized {
                    registry: self.api_host.clone(),
                    repository: repository.to_string(),
                    problem,
                }
            }
            StatusCode::FORBIDDEN => RegistryError::Denied {
                registry: self.api_host.clone(),
                repository: repository.to_string(),
                detail: String::new(),
            },
            StatusCode::TOO_MANY_REQUESTS => {
                let rate = ratelimit::parse(headers);
                RegistryError::RateLimited {
                    registry: self.api_host.clone(),
                    retry_after: retry_after(headers).or(rate.and_then(|r| r.reset)),
                    limit: rate.and_then(|r| r.limit),
                    window: rate.and_then(|r| r.window),
                }
            }
            s => RegistryError::Unavailable {
                host: self.api_host.clone(),
                cause: Unreachable::Status(s.as_u16()),
                detail: if s.is_server_error() {
                    String::new()
                } else {
                    "unexpected answer".into()
                },
            },
        }
    }

    /// HEAD /v2/<repository>/manifests/<reference>: existence and digest in one request.
    pub async fn head_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Head, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let (answer, auth) = self
            .send(
                Method::HEAD,
                url,
                repository,
                "head_manifest",
                Some(MANIFEST_ACCEPT),
            )
            .await?;
        let resp = &answer.response;
        let status = resp.status();
        if status.is_success() {
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            return Ok(Head::Found {
                digest: header("docker-content-digest"),
                media_type: header(CONTENT_TYPE.as_str()),
            });
        }
        if status == StatusCode::NOT_FOUND {
            return Ok(Head::NotFound);
        }
        Err(answer.blame(self.status_error(status, resp.headers(), repository, &auth)))
    }

    /// GET a manifest and verify it against `digest` (when `digest` is a digest).
    pub async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<(Option<String>, Vec<u8>), RegistryError> {
        let url = self.url(&format!("/v2/{repository}/manifests/{reference}"));
        let (answer, auth) = self
            .send(
                Method::GET,
                url,
                repository,
                "get_manifest",
                Some(MANIFEST_ACCEPT),
            )
            .await?;
        let status = answer.response.status();
        if !status.is_success() {
            return Err(self.not_found_or(status, &answer, repository, reference, &auth));
        }
        let Answer {
            response: resp,
            host,
            ..
        } = answer;
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = read_limited(resp, MANIFEST_LIMIT, &host, self.transport()).await?;
        self.verify(reference, &body)?;
        Ok((content_type, body))
    }

    /// GET a blob (an image config) and verify its digest.
    pub async fn get_blob(
        &self,
        repository: &str,
        digest: &str,
        limit: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/blobs/{digest}"));
        let (answer, auth) = self
            .send(Method::GET, url, repository, "get_blob", None)
            .await?;
        let status = answer.response.status();
        if !status.is_success() {
            return Err(self.not_found_or(status, &answer, repository, digest, &auth));
        }
        let body = read_limited(answer.response, limit, &answer.host, self.transport()).await?;
        self.verify(digest, &body)?;
        Ok(body)
    }

    fn not_found_or(
        &self,
        status: StatusCode,
        answer: &Answer,
        repository: &str,
        digest: &str,
        auth: &Auth,
    ) -> RegistryError {
        if status == StatusCode::NOT_FOUND {
            RegistryError::DigestNotFound {
                registry: self.api_host.clone(),
                repository: repository.to_string(),
                digest: digest.to_string(),
            }
        } else {
            answer.blame(self.status_error(status, answer.response.headers(), repository, auth))
        }
    }

    fn verify(&self, reference: &str, body: &[u8]) -> Result<(), RegistryError> {
        if reference.contains(':') && !digest_matches(reference, body) {
            return Err(RegistryError::Unavailable {
                host: self.api_host.clone(),
                cause: Unreachable::InvalidResponse,
                detail: format!("content does not match digest {reference}"),
            });
        }
        Ok(())
    }

    /// Lists tags (following `Link: <…>; rel="next"`, at most `max_tag_pages` pages).
    pub async fn list_tags(&self, repository: &str) -> Result<Tags, RegistryError> {
        let mut url = self.url(&format!("/v2/{repository}/tags/list"));
        url.query_pairs_mut()
            .append_pair("n", &TAGS_PAGE_SIZE.to_string());
        let mut tags = Vec::new();
        for _ in 0..self.shared.max_tag_pages.max(1) {
            let (answer, auth) = self
                .send(Method::GET, url.clone(), repository, "list_tags", None)
                .await?;
            let resp = &answer.response;
            let status = resp.status();
            if status == StatusCode::NOT_FOUND {
                return Ok(if tags.is_empty() {
                    Tags::Missing
                } else {
                    Tags::Listed(tags)
                });
            }
            if !status.is_success() {
                return Err(answer.blame(self.status_error(
                    status,
                    resp.headers(),
                    repository,
                    &auth,
                )));
            }
            let next = resp
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link)
                .and_then(|l| url.join(&l).ok());
            let Answer { response, host, .. } = answer;
            let body = read_limited(response, MANIFEST_LIMIT, &host, self.transport()).await?;
            #[derive(serde::Deserialize)]
            struct Page {
                #[serde(default)]
                tags: Option<Vec<String>>,
            }
            let page: Page =
                serde_json::from_slice(&body).map_err(|e| RegistryError::Unavailable {
                    host: self.api_host.clone(),
                    cause: Unreachable::InvalidResponse,
                    detail: format!("tag list is not valid JSON: {e}"),
                })?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                // Never follow a link off the registry: it would carry our token elsewhere.
                Some(n) if n.origin() == self.base.origin() => url = n,
                _ => break,
            }
        }
        Ok(Tags::Listed(tags))
    }
}

/// The `outcome` label of an HTTP status: the statuses registries really send by number,
/// any other by its class, so a registry inventing statuses cannot add series.
pub(super) fn status_label(status: StatusCode) -> &'static str {
    const KNOWN: [&str; 28] = [
        "200", "201", "202", "204", "206", "301", "302", "303", "304", "307", "308", "400", "401",
        "403", "404", "405", "406", "408", "409", "410", "413", "416", "429", "500", "501", "502",
        "503", "504",
    ];
    if let Some(known) = KNOWN.iter().find(|k| **k == status.as_str()) {
        return known;
    }
    match status.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "other",
    }
}

fn unreachable_retry<T>(host: &str) -> Result<T, RegistryError> {
    Err(RegistryError::Unavailable {
        host: host.to_string(),
        cause: Unreachable::InvalidResponse,
        detail: "registry refused a freshly issued token".into(),
    })
}

/// `Retry-After`: seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    when.duration_since(std::time::SystemTime::now()).ok()
}

/// The target of `rel="next"` in a Link header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_string())
    })
}

/// Whether `body` hashes to `digest` (sha256, sha384, sha512).
pub fn digest_matches(digest: &str, body: &[u8]) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let computed = match algorithm {
        "sha256" => crate::text::hex(&sha2::Sha256::digest(body)),
        "sha384" => crate::text::hex(&sha2::Sha384::digest(body)),
        "sha512" => crate::text::hex(&sha2::Sha512::digest(body)),
        _ => return false,
    };
    computed == hex
}

pub fn sha256_digest(body: &[u8]) -> String {
    format!("sha256:{}", crate::text::hex(&sha2::Sha256::digest(body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(
        r#"</v2/a/tags/list?last=x&n=2>; rel="next""#,
        Some("/v2/a/tags/list?last=x&n=2")
    )]
    #[case(
        r#"<https://r/v2/a/tags/list?last=x>;rel=next"#,
        Some("https://r/v2/a/tags/list?last=x")
    )]
    #[case(r#"</x>; rel="prev""#, None)]
    #[case("garbage", None)]
    fn link_headers(#[case] header: &str, #[case] want: Option<&str>) {
        assert_eq!(next_link(header).as_deref(), want);
    }

    #[test]
    fn digests() {
        let body = b"hello";
        let d = sha256_digest(body);
        assert!(digest_matches(&d, body));
        assert!(!digest_matches(&d, b"hellO"));
        assert!(!digest_matches("md5:abc", body));
        assert!(!digest_matches("nonsense", body));
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "30".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(30)));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn status_labels_are_bounded() {
        assert_eq!(status_label(StatusCode::NOT_FOUND), "404");
        assert_eq!(status_label(StatusCode::from_u16(418).unwrap()), "4xx");
        assert_eq!(status_label(StatusCode::from_u16(599).unwrap()), "5xx");
        assert_eq!(status_label(StatusCode::from_u16(999).unwrap()), "other");
        let all: std::collections::HashSet<_> = (100..1000)
            .map(|c| status_label(StatusCode::from_u16(c).unwrap()))
            .collect();
        assert!(all.len() <= 34, "{} labels", all.len());
    }
}
