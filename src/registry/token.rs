//! Authorizing a client's requests: the `/v2/` challenge (cached per registry), Bearer
//! tokens per repository scope and credential set (cached; fetched again once when a
//! cached one is refused), Basic credentials. A failure of the token service says so, and
//! the pull secret's password goes to the realm's origin only.

use http::header::WWW_AUTHENTICATE;
use http::{Method, StatusCode};
use url::Url;

use super::auth::{self, Auth, Challenge, Token};
use super::client::{retry_after, status_label, RegistryClient, TOKEN_LIMIT};
use super::error::{AuthProblem, RegistryError, Unreachable};
use super::http::{host_port, read_limited};
use super::redirect::{self, Answer};

impl RegistryClient {
    /// The `/v2/` challenge of this registry, cached per host.
    async fn challenge(&self) -> Result<Challenge, RegistryError> {
        let key = self.base.as_str().to_string();
        self.shared
            .challenges
            .try_get_with(key, self.ping())
            .await
            .map_err(|e| (*e).clone())
    }

    async fn ping(&self) -> Result<Challenge, RegistryError> {
        let url = self.url("/v2/");
        let answer = self
            .outbound(Method::GET, url, None, None)
            .send()
            .await
            .inspect_err(|err| self.count(&self.api_host, "ping", Self::outcome_of(err)))?;
        let resp = &answer.response;
        let status = resp.status();
        self.count(&self.api_host, "ping", status_label(status));
        if status.is_success() {
            return Ok(Challenge::None);
        }
        if status == StatusCode::UNAUTHORIZED {
            let header = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|h| h.to_str().ok());
            return auth::challenge_from_header(header).ok_or_else(|| RegistryError::Unavailable {
                host: self.api_host.clone(),
                cause: Unreachable::InvalidResponse,
                detail: "401 without a Basic or Bearer challenge".into(),
            });
        }
        Err(answer.blame(self.status_error(status, resp.headers(), "", &Auth::None)))
    }

    pub(super) async fn authorization(&self, repository: &str) -> Result<Auth, RegistryError> {
        match self.challenge().await? {
            Challenge::None => Ok(Auth::None),
            Challenge::Basic => Ok(if self.credential.is_some() {
                Auth::Basic
            } else {
                Auth::None
            }),
            Challenge::Bearer { realm, service } => {
                let scope = format!("repository:{repository}:pull");
                let entry = self
                    .shared
                    .tokens
                    .entry(self.token_key(&scope))
                    .or_try_insert_with(self.fetch_token(&realm, service.as_deref(), &scope))
                    .await
                    .map_err(|e| (*e).clone())?;
                Ok(Auth::Bearer {
                    fresh: entry.is_fresh(),
                    token: entry.into_value().value,
                })
            }
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<Token, RegistryError> {
        let invalid = |detail: String| RegistryError::Unavailable {
            host: self.api_host.clone(),
            cause: Unreachable::InvalidResponse,
            detail,
        };
        let mut url = Url::parse(realm)
            .map_err(|e| invalid(format!("token realm {realm:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(invalid(format!("token realm {realm:?} is not http(s)")));
        }
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("scope", scope);
            if let Some(s) = service {
                q.append_pair("service", s);
            }
        }
        let realm_host = host_port(&url);
        // The pull secret's password goes to the realm's origin only, never down a
        // redirect to another one.
        let authorization = self
            .credential
            .as_ref()
            .map(|c| redirect::basic(c.username(), c.password()));
        let answer = self
            .outbound(Method::GET, url, None, authorization)
            .send()
            .await
            .map_err(|err| {
                self.count(&realm_host, "token", Self::outcome_of(&err));
                self.token_service_error(err)
            })?;
        let status = answer.response.status();
        self.count(&realm_host, "token", status_label(status));
        let Answer {
            response: resp,
            host: answered_by,
            redirected_from,
        } = answer;
        match status {
            s if s.is_success() => {
                let body = read_limited(resp, TOKEN_LIMIT, &answered_by, self.transport())
                    .await
                    .map_err(|e| self.token_service_error(e))?;
                auth::decode_token(&body).map_err(|detail| {
                    self.token_service_error(RegistryError::Unavailable {
                        host: answered_by.clone(),
                        cause: Unreachable::InvalidResponse,
                        detail,
                    })
                })
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(RegistryError::Unauthorized {
                registry: self.api_host.clone(),
                repository: scope_repository(scope).to_string(),
                problem: if self.credential.is_some() {
                    AuthProblem::CredentialsRefused
                } else {
                    AuthProblem::NoCredentials
                },
            }),
            StatusCode::TOO_MANY_REQUESTS => {
                let rate = super::ratelimit::parse(resp.headers());
                Err(RegistryError::RateLimited {
                    registry: realm_host,
                    retry_after: retry_after(resp.headers()).or(rate.and_then(|r| r.reset)),
                    limit: rate.and_then(|r| r.limit),
                    window: rate.and_then(|r| r.window),
                })
            }
            s => Err(self.token_service_error(RegistryError::Unavailable {
                host: answered_by,
                cause: Unreachable::Status(s.as_u16()),
                detail: redirected_from
                    .map(|from| format!("redirected there by {from}"))
                    .unwrap_or_default(),
            })),
        }
    }

    /// Says that a failure was the token service's: the host it names is the realm's, which
    /// users may not recognize as their registry's authentication.
    fn token_service_error(&self, err: RegistryError) -> RegistryError {
        match err {
            RegistryError::Unavailable {
                host,
                cause,
                detail,
            } => RegistryError::Unavailable {
                host,
                cause,
                detail: if detail.is_empty() {
                    format!("token service of {}", self.api_host)
                } else {
                    format!("token service of {}: {detail}", self.api_host)
                },
            },
            other => other,
        }
    }
}

fn scope_repository(scope: &str) -> &str {
    scope
        .strip_prefix("repository:")
        .and_then(|s| s.rsplit_once(':'))
        .map_or(scope, |(repo, _)| repo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_repository_strips_actions() {
        assert_eq!(scope_repository("repository:a/b:pull"), "a/b");
    }
}
