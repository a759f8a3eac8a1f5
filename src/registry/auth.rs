//! Registry authentication as the distribution spec defines it: the `/v2/` ping and its
//! `WWW-Authenticate` challenge, Basic credentials, and Bearer tokens from the realm the
//! registry names (with the Basic credentials of the pull secret, or anonymously).

use std::time::{Duration, Instant};

use serde::Deserialize;

/// What `/v2/` asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `/v2/` answered 200: no authentication.
    None,
    /// `Basic realm=…`: send the credentials on every request.
    Basic,
    /// `Bearer realm=…,service=…`: exchange credentials for a token per repository scope.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// One parsed challenge: scheme (lowercase) and its parameters (keys lowercase).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedChallenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl ParsedChallenge {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a `WWW-Authenticate` value (RFC 7235: several challenges may share one header).
pub fn parse_www_authenticate(header: &str) -> Vec<ParsedChallenge> {
    let mut out: Vec<ParsedChallenge> = Vec::new();
    let chars: Vec<char> = header.chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && (chars[*i] == ' ' || chars[*i] == '\t' || chars[*i] == ',') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && !matches!(chars[*i], ' ' | '\t' | ',' | '=' | '"') {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    while i < chars.len() {
        skip_ws(&mut i);
        let word = token(&mut i);
        if word.is_empty() {
            i += 1;
            continue;
        }
        // A parameter has `=` right after its name; otherwise the word starts a challenge.
        let mut j = i;
        while j < chars.len() && (chars[j] == ' ' || chars[j] == '\t') {
            j += 1;
        }
        if j < chars.len() && chars[j] == '=' && !out.is_empty() {
            i = j + 1;
            while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
                i += 1;
            }
            let value = if i < chars.len() && chars[i] == '"' {
                i += 1;
                let mut v = String::new();
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    v.push(chars[i]);
                    i += 1;
                }
                i += 1;
                v
            } else {
                token(&mut i)
            };
            if let Some(last) = out.last_mut() {
                last.params.push((word.to_ascii_lowercase(), value));
            }
        } else {
            out.push(ParsedChallenge {
                scheme: word.to_ascii_lowercase(),
                params: Vec::new(),
            });
        }
    }
    out
}

/// The challenge pullcheck follows: Bearer when offered, else Basic.
pub fn challenge_from_header(header: Option<&str>) -> Option<Challenge> {
    let parsed = parse_www_authenticate(header?);
    if let Some(b) = parsed.iter().find(|c| c.scheme == "bearer") {
        let realm = b.param("realm")?.to_string();
        return Some(Challenge::Bearer {
            realm,
            service: b.param("service").map(str::to_string),
        });
    }
    parsed
        .iter()
        .any(|c| c.scheme == "basic")
        .then_some(Challenge::Basic)
}

/// Whether a 401 says the token lacks the scope (distribution: `error="insufficient_scope"`).
pub fn is_insufficient_scope(header: Option<&str>) -> bool {
    header.is_some_and(|h| {
        parse_www_authenticate(h)
            .iter()
            .any(|c| c.param("error") == Some("insufficient_scope"))
    })
}

/// A bearer token; never printed.
#[derive(Clone)]
pub struct Token {
    pub value: String,
    pub lifetime: Duration,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("value", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Decodes a token service answer (`token` or `access_token`; `expires_in` defaults to 60 s
/// as in the spec). The lifetime is shortened by a margin so a token is never used at its edge.
pub fn decode_token(body: &[u8]) -> Result<Token, String> {
    let r: TokenResponse =
        serde_json::from_slice(body).map_err(|e| format!("token answer is not JSON: {e}"))?;
    let value = r
        .token
        .filter(|t| !t.is_empty())
        .or(r.access_token.filter(|t| !t.is_empty()))
        .ok_or("token answer has no token")?;
    let secs = r.expires_in.unwrap_or(60).clamp(1, 24 * 3600);
    let margin = (secs / 10).clamp(1, 30);
    Ok(Token {
        value,
        lifetime: Duration::from_secs(secs.saturating_sub(margin).max(1)),
    })
}

/// How a request was authorized; decides what a 401 means.
#[derive(Clone, Debug)]
pub(super) enum Auth {
    None,
    Basic,
    /// Bearer token; `fresh` when fetched for this request (a cached one may have been revoked).
    Bearer {
        token: String,
        fresh: bool,
    },
}

pub(super) struct TokenExpiry;

impl moka::Expiry<String, Token> for TokenExpiry {
    fn expire_after_create(&self, _: &String, token: &Token, _: Instant) -> Option<Duration> {
        Some(token.lifetime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn docker_hub_challenge() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io""#;
        assert_eq!(
            challenge_from_header(Some(h)),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
    }

    #[test]
    fn insufficient_scope_challenge() {
        let h = r#"Bearer realm="https://r/token",service="s",scope="repository:a/b:pull",error="insufficient_scope""#;
        assert!(is_insufficient_scope(Some(h)));
        assert!(!is_insufficient_scope(Some(r#"Bearer realm="x""#)));
    }

    #[rstest]
    #[case(r#"Basic realm="Registry Realm""#, Some(Challenge::Basic))]
    #[case(r#"basic realm=x"#, Some(Challenge::Basic))]
    #[case(r#"Bearer service="s""#, None)]
    #[case("", None)]
    #[case("Negotiate", None)]
    #[case(
        r#"Basic realm="a", Bearer realm="https://t/token""#,
        Some(Challenge::Bearer { realm: "https://t/token".into(), service: None })
    )]
    #[case(r#"Bearer realm="with \"quote\"""#, Some(Challenge::Bearer { realm: "with \"quote\"".into(), service: None }))]
    fn challenges(#[case] header: &str, #[case] want: Option<Challenge>) {
        assert_eq!(challenge_from_header(Some(header)), want);
    }

    #[test]
    fn garbage_headers_do_not_panic() {
        for h in [
            "=",
            "\"",
            "Bearer realm=\"",
            "Bearer ,,,=,",
            "Bearer realm",
            "\\",
        ] {
            let _ = challenge_from_header(Some(h));
        }
    }

    #[rstest]
    #[case(r#"{"token":"t","expires_in":300}"#, Some(270))]
    #[case(r#"{"access_token":"t"}"#, Some(54))]
    #[case(r#"{"token":"","access_token":"t","expires_in":1}"#, Some(1))]
    #[case(r#"{"expires_in":300}"#, None)]
    #[case("not json", None)]
    fn tokens(#[case] body: &str, #[case] lifetime: Option<u64>) {
        let got = decode_token(body.as_bytes())
            .ok()
            .map(|t| t.lifetime.as_secs());
        assert_eq!(got, lifetime);
    }

    #[test]
    fn token_debug_is_redacted() {
        let t = decode_token(br#"{"token":"very-secret"}"#).unwrap();
        assert!(!format!("{t:?}").contains("very-secret"));
    }
}
