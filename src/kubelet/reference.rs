//! Image references: what image a string in a PodSpec names, decided exactly as the kubelet and
//! containerd decide it.
//!
//! This module owns parsing and normalization. It mirrors distribution/reference
//! `ParseNormalizedNamed` (the grammar of `regexp.go`, the Docker Hub defaults of
//! `normalize.go`, the checks of `Parse` in `reference.go`) and go-digest's digest validation,
//! so that a string is accepted here if and only if the kubelet accepts it, with the same
//! domain, path, tag and digest. Only the wording of rejections differs: where Go says
//! "invalid reference format", the error here says which part is wrong. The grammar is parsed
//! by hand; every check is linear in the input and nothing panics on any input.

use std::fmt;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const DOCKER_HUB_REGISTRY_HOST: &str = "registry-1.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const LOCALHOST: &str = "localhost";
const DEFAULT_TAG: &str = "latest";
/// `NameTotalLengthMax`: checked on the whole name, domain included.
const NAME_TOTAL_LENGTH_MAX: usize = 255;
const TAG_LENGTH_MAX: usize = 128;
/// Longest piece of input quoted in an error message, in characters.
/// Most bytes of the input an error repeats.
const EXCERPT_MAX: usize = 80;

fn excerpt(s: &str) -> String {
    crate::text::truncate(s, EXCERPT_MAX)
}

/// A parsed and normalized image reference (distribution's `Named`, possibly tagged and/or
/// digested).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// ParseNormalizedNamed: "nginx" -> domain "docker.io", path "library/nginx", tag None,
    /// digest None.
    pub fn parse(input: &str) -> Result<ImageRef, ReferenceError> {
        if input.is_empty() {
            // Go reaches ErrReferenceInvalidFormat here ("docker.io/library/" fails the
            // grammar); the verdict is the same, the message clearer.
            return Err(ReferenceError::Empty);
        }
        if is_image_id(input) {
            return Err(ReferenceError::LooksLikeImageId);
        }
        let split = split_docker_domain(input);
        // Go checks the remainder up to its first ':' (not the last): uppercase in a tag is
        // fine, but "nginx@SHA256:..." is refused here as an uppercase name.
        let remote = split
            .remainder
            .split_once(':')
            .map_or(split.remainder, |(r, _)| r);
        if has_uppercase(remote) {
            return Err(ReferenceError::Uppercase {
                name: excerpt(remote),
            });
        }
        let prefix = if split.library {
            OFFICIAL_REPO_PREFIX
        } else {
            ""
        };
        let composed = format!("{}/{prefix}{}", split.domain, split.remainder);
        let Some(m) = match_reference(&composed) else {
            if match_reference(&go_to_lower(&composed)).is_some() {
                return Err(ReferenceError::Uppercase {
                    name: excerpt(input),
                });
            }
            return Err(diagnose(input, &split));
        };
        if m.name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong {
                length: m.name.len(),
            });
        }
        if let Some(digest) = m.digest {
            validate_digest(digest)?;
        }
        Ok(ImageRef {
            domain: m.domain.to_owned(),
            path: m.path.to_owned(),
            tag: m.tag.map(str::to_owned),
            digest: m.digest.map(str::to_owned),
        })
    }

    /// "docker.io", "localhost:5000", "[fc00::1]:5000", "quay.io". Empty in the one case Go
    /// leaves it empty: a first component that contains '.' or ':' (so it is not Docker Hub)
    /// yet is no valid host, while the whole name is a valid path, e.g. "a_b.c/d".
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// "library/nginx".
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// "sha256:<hex>".
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// Name() of distribution: "docker.io/library/nginx" (domain + "/" + path). This is what
    /// the kubelet keyring matches against.
    pub fn name(&self) -> String {
        if self.domain.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// domain/path[:tag][@digest]; tag "latest" only when neither tag nor digest was given.
    pub fn canonical(&self) -> String {
        let mut out = self.name();
        if self.tag.is_none() && self.digest.is_none() {
            out.push(':');
            out.push_str(DEFAULT_TAG);
        }
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }

    /// The host:port to contact for the registry API: "registry-1.docker.io" for domain
    /// "docker.io", else the domain itself (empty when [`ImageRef::domain`] is).
    pub fn registry_host(&self) -> &str {
        if self.domain == DEFAULT_DOMAIN {
            DOCKER_HUB_REGISTRY_HOST
        } else {
            &self.domain
        }
    }

    /// What to put after /v2/<path>/manifests/: the digest when there is one (tag+digest pulls
    /// by digest, as containerd does), else the tag, else "latest".
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// A copy with tag and digest replaced: no tag, this digest (used to address a digest found
    /// by a tag lookup). The digest is taken as given, not validated.
    pub fn with_digest(&self, digest: &str) -> ImageRef {
        ImageRef {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest.to_owned()),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// Why a string is not an image reference the kubelet would pull. Quoted parts come from the
/// input only and are shortened to 80 characters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("image reference is empty")]
    Empty,
    #[error(
        "invalid repository name: 64-character hexadecimal string is not allowed \
         (it looks like an image ID, use @sha256:<digest>)"
    )]
    LooksLikeImageId,
    #[error("repository name must be lowercase: {name:?}")]
    Uppercase { name: String },
    #[error(
        "repository name must not be more than 255 characters \
         (it has {length} including the registry domain)"
    )]
    NameTooLong { length: usize },
    #[error(
        "invalid reference format: invalid character {ch:?} at position {position} in {input:?}"
    )]
    InvalidCharacter {
        input: String,
        ch: char,
        /// 1-based, in characters.
        position: usize,
    },
    #[error("invalid reference format: no repository name in {input:?}")]
    MissingName { input: String },
    #[error("invalid reference format: an image reference has no URL scheme, remove {scheme:?}")]
    HasScheme { scheme: String },
    #[error(
        "invalid reference format: empty path component in {input:?} \
         (no leading, trailing or double '/')"
    )]
    EmptyPathComponent { input: String },
    #[error(
        "invalid reference format: invalid path component {component:?} (path components are \
         lowercase letters and digits, joined by '.', '_', '__' or dashes)"
    )]
    InvalidPathComponent { component: String },
    #[error(
        "invalid reference format: invalid registry domain {domain:?} (expected a host name, \
         an IPv4 address or an [IPv6] address, optionally with :port)"
    )]
    InvalidDomain { domain: String },
    #[error("invalid tag {tag:?}: {reason}")]
    InvalidTag { tag: String, reason: String },
    #[error("invalid digest format {digest:?}: {reason}")]
    InvalidDigest { digest: String, reason: String },
    #[error(
        "unsupported digest algorithm {algorithm:?} (only sha256, sha384 and sha512 are accepted)"
    )]
    UnsupportedDigestAlgorithm { algorithm: String },
    #[error("invalid reference format: {input:?}")]
    InvalidFormat { input: String },
}

/// splitDockerDomain, with the remainder kept as a slice of the input: the "library/" prefix
/// is a flag, so that messages quote the input only.
struct DomainSplit<'a> {
    domain: &'a str,
    /// The first component when it was taken as the domain, as written.
    explicit_domain: Option<&'a str>,
    remainder: &'a str,
    library: bool,
}

fn split_docker_domain(input: &str) -> DomainSplit<'_> {
    let (domain, explicit_domain, remainder) = match input.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == LOCALHOST || has_uppercase(first) =>
        {
            (first, Some(first), rest)
        }
        _ => (DEFAULT_DOMAIN, None, input),
    };
    let domain = if domain == LEGACY_DEFAULT_DOMAIN {
        DEFAULT_DOMAIN
    } else {
        domain
    };
    DomainSplit {
        domain,
        explicit_domain,
        remainder,
        library: domain == DEFAULT_DOMAIN && !remainder.contains('/'),
    }
}

/// The submatches of distribution's anchored `ReferenceRegexp`, with the name split as by
/// `anchoredNameRegexp`.
struct Matched<'a> {
    name: &'a str,
    domain: &'a str,
    path: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

/// `^(name)(?::(tag))?(?:@(digest))?$`. No part may contain '@', tags hold no ':' or '/', and
/// every ':' of a name (port, IPv6) has a '/' after it, so every split below is the only one
/// the regex could make.
fn match_reference(s: &str) -> Option<Matched<'_>> {
    let (left, digest) = match s.split_once('@') {
        Some((left, digest)) => (left, Some(digest)),
        None => (s, None),
    };
    if digest.is_some_and(|d| digest_pattern_problem(d).is_some()) {
        return None;
    }
    let (name, tag) = split_tag(left);
    if tag.is_some_and(|t| tag_problem(t).is_some()) {
        return None;
    }
    let (domain, path) = split_name(name)?;
    Some(Matched {
        name,
        domain,
        path,
        tag,
        digest,
    })
}

/// The tag follows the last ':' unless a '/' comes after it.
fn split_tag(left: &str) -> (&str, Option<&str>) {
    match left.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (left, None),
    }
}

/// `^(?:(domain)/)?(remote-name)$`: the optional domain is greedy, so a first component that
/// is a valid domain is one whenever the rest is a valid remote name.
fn split_name(name: &str) -> Option<(&str, &str)> {
    if let Some((domain, path)) = name.split_once('/') {
        if is_domain(domain) && is_remote_name(path) {
            return Some((domain, path));
        }
    }
    is_remote_name(name).then_some(("", name))
}

/// `host(?::[0-9]+)?` where host is a domain name or `\[[a-fA-F0-9:]+\]`.
fn is_domain(s: &str) -> bool {
    let (host_ok, port) = match s.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ipv6, after)) => (
                !ipv6.is_empty() && ipv6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'),
                after,
            ),
            None => return false,
        },
        None => {
            let (host, port) = s.split_at(s.find(':').unwrap_or(s.len()));
            (is_domain_name(host), port)
        }
    };
    host_ok
        && (port.is_empty()
            || port
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
}

/// Components `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]` joined by '.'.
fn is_domain_name(s: &str) -> bool {
    s.split('.').all(|c| {
        let b = c.as_bytes();
        match (b.first(), b.last()) {
            (Some(first), Some(last)) => {
                first.is_ascii_alphanumeric()
                    && last.is_ascii_alphanumeric()
                    && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
            }
            _ => false,
        }
    })
}

fn is_remote_name(s: &str) -> bool {
    s.split('/').all(is_path_component)
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
fn is_path_component(s: &str) -> bool {
    let mut bytes = s.bytes().peekable();
    loop {
        let mut run = 0;
        while bytes
            .next_if(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            .is_some()
        {
            run += 1;
        }
        if run == 0 {
            return false;
        }
        match bytes.next() {
            None => return true,
            Some(b'.') => {}
            Some(b'_') => {
                bytes.next_if_eq(&b'_');
            }
            Some(b'-') => while bytes.next_if_eq(&b'-').is_some() {},
            Some(_) => return false,
        }
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Why `tag` fails `[\w][\w.-]{0,127}`, if it does.
fn tag_problem(tag: &str) -> Option<String> {
    let Some(first) = tag.chars().next() else {
        return Some("the tag after ':' is empty".to_owned());
    };
    if !is_word(first) {
        return Some("a tag must start with a letter, a digit or '_'".to_owned());
    }
    if let Some(c) = tag.chars().find(|&c| !(is_word(c) || c == '.' || c == '-')) {
        return Some(format!(
            "a tag may contain only letters, digits, '_', '.' and '-', not {c:?}"
        ));
    }
    (tag.len() > TAG_LENGTH_MAX).then(|| {
        format!(
            "a tag must not be more than {TAG_LENGTH_MAX} characters, this one has {}",
            tag.len()
        )
    })
}

/// Why `digest` fails the reference grammar's
/// `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[[:xdigit:]]{32,}`, if it does.
fn digest_pattern_problem(digest: &str) -> Option<String> {
    if digest.is_empty() {
        return Some("the digest after '@' is empty".to_owned());
    }
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return Some("expected <algorithm>:<hex>, e.g. sha256:<64 hex characters>".to_owned());
    };
    let algorithm_ok = algorithm.split(['-', '_', '+', '.']).all(|part| {
        let mut b = part.bytes();
        b.next().is_some_and(|f| f.is_ascii_alphabetic()) && b.all(|x| x.is_ascii_alphanumeric())
    });
    if !algorithm_ok {
        return Some(format!(
            "{:?} is not a digest algorithm name",
            excerpt(algorithm)
        ));
    }
    if !encoded.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some("the part after the algorithm must be hexadecimal".to_owned());
    }
    (encoded.len() < 32).then(|| {
        format!(
            "the hexadecimal part must have at least 32 characters, this one has {}",
            encoded.len()
        )
    })
}

/// go-digest `Digest.Validate`, for a digest that already matched the reference grammar.
fn validate_digest(digest: &str) -> Result<(), ReferenceError> {
    let (algorithm, encoded) = digest.split_once(':').unwrap_or((digest, ""));
    let expected = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        // go-digest's own pattern for unknown algorithms is lowercase only.
        _ if algorithm.bytes().any(|b| b.is_ascii_uppercase()) => {
            return Err(ReferenceError::InvalidDigest {
                digest: excerpt(digest),
                reason: "the algorithm name must be lowercase".to_owned(),
            })
        }
        _ => {
            return Err(ReferenceError::UnsupportedDigestAlgorithm {
                algorithm: excerpt(algorithm),
            })
        }
    };
    let reason = if encoded.len() != expected {
        format!(
            "a {algorithm} digest has {expected} hexadecimal characters, this one has {}",
            encoded.len()
        )
    } else if encoded.bytes().any(|b| b.is_ascii_uppercase()) {
        "the hexadecimal part must be lowercase".to_owned()
    } else {
        return Ok(());
    };
    Err(ReferenceError::InvalidDigest {
        digest: excerpt(digest),
        reason,
    })
}

/// `^[a-f0-9]{64}$`: an image ID, which `ParseNormalizedNamed` refuses as a name.
fn is_image_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Go's `unicode.ToLower` (simple case mapping): unlike Rust's full mapping, 'İ' becomes 'i'.
fn go_lower(c: char) -> char {
    if c == '\u{130}' {
        return 'i';
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// `strings.ToLower(s) != s`.
fn has_uppercase(s: &str) -> bool {
    s.chars().any(|c| go_lower(c) != c)
}

fn go_to_lower(s: &str) -> String {
    s.chars().map(go_lower).collect()
}

/// Characters that may appear somewhere in a valid reference.
fn is_reference_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@' | '[' | ']' | '+')
}

/// Names the first problem of an input that fails the grammar (and not only for uppercase).
/// Only the wording depends on this; the verdict was already taken by `match_reference`.
fn diagnose(input: &str, split: &DomainSplit<'_>) -> ReferenceError {
    if let Some((i, ch)) = input
        .chars()
        .enumerate()
        .find(|&(_, c)| !is_reference_char(c))
    {
        return ReferenceError::InvalidCharacter {
            input: excerpt(input),
            ch,
            position: i + 1,
        };
    }
    // "://" is never valid: a port or a path component cannot be empty.
    if let Some((scheme, _)) = input.split_once("://") {
        return ReferenceError::HasScheme {
            scheme: excerpt(&format!("{scheme}://")),
        };
    }
    let (left, digest) = match split.remainder.split_once('@') {
        Some((left, digest)) => (left, Some(digest)),
        None => (split.remainder, None),
    };
    if let Some((digest, reason)) = digest.and_then(|d| Some((d, digest_pattern_problem(d)?))) {
        return ReferenceError::InvalidDigest {
            digest: excerpt(digest),
            reason,
        };
    }
    let (path, tag) = split_tag(left);
    if let Some((tag, reason)) = tag.and_then(|t| Some((t, tag_problem(t)?))) {
        return ReferenceError::InvalidTag {
            tag: excerpt(tag),
            reason,
        };
    }
    if path.is_empty() {
        return ReferenceError::MissingName {
            input: excerpt(input),
        };
    }
    for component in path.split('/') {
        if component.is_empty() {
            return ReferenceError::EmptyPathComponent {
                input: excerpt(input),
            };
        }
        if !is_path_component(component) {
            return ReferenceError::InvalidPathComponent {
                component: excerpt(component),
            };
        }
    }
    match split.explicit_domain {
        Some(domain) if !is_domain(domain) => ReferenceError::InvalidDomain {
            domain: excerpt(domain),
        },
        _ => ReferenceError::InvalidFormat {
            input: excerpt(input),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rstest::rstest;

    use super::*;

    macro_rules! hex256 {
        () => {
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        };
    }
    macro_rules! hex384 {
        () => {
            "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b"
        };
    }
    macro_rules! hex512 {
        () => {
            "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
        };
    }

    /// The variant name, so tables can say which class of error they expect.
    fn kind(e: &ReferenceError) -> &'static str {
        match e {
            ReferenceError::Empty => "Empty",
            ReferenceError::LooksLikeImageId => "LooksLikeImageId",
            ReferenceError::Uppercase { .. } => "Uppercase",
            ReferenceError::NameTooLong { .. } => "NameTooLong",
            ReferenceError::InvalidCharacter { .. } => "InvalidCharacter",
            ReferenceError::MissingName { .. } => "MissingName",
            ReferenceError::HasScheme { .. } => "HasScheme",
            ReferenceError::EmptyPathComponent { .. } => "EmptyPathComponent",
            ReferenceError::InvalidPathComponent { .. } => "InvalidPathComponent",
            ReferenceError::InvalidDomain { .. } => "InvalidDomain",
            ReferenceError::InvalidTag { .. } => "InvalidTag",
            ReferenceError::InvalidDigest { .. } => "InvalidDigest",
            ReferenceError::UnsupportedDigestAlgorithm { .. } => "UnsupportedDigestAlgorithm",
            ReferenceError::InvalidFormat { .. } => "InvalidFormat",
        }
    }

    #[rustfmt::skip]
    #[rstest]
    #[case("nginx", "docker.io", "library/nginx", None, None, "docker.io/library/nginx:latest")]
    #[case("nginx:1.25", "docker.io", "library/nginx", Some("1.25"), None, "docker.io/library/nginx:1.25")]
    #[case("library/nginx", "docker.io", "library/nginx", None, None, "docker.io/library/nginx:latest")]
    #[case("docker.io/nginx", "docker.io", "library/nginx", None, None, "docker.io/library/nginx:latest")]
    #[case("docker.io/library/nginx", "docker.io", "library/nginx", None, None, "docker.io/library/nginx:latest")]
    #[case("index.docker.io/library/nginx", "docker.io", "library/nginx", None, None, "docker.io/library/nginx:latest")]
    #[case("index.docker.io/nginx", "docker.io", "library/nginx", None, None, "docker.io/library/nginx:latest")]
    #[case("bitnami/redis:7.2", "docker.io", "bitnami/redis", Some("7.2"), None, "docker.io/bitnami/redis:7.2")]
    #[case(concat!("ubuntu@sha256:", hex256!()), "docker.io", "library/ubuntu", None, Some(concat!("sha256:", hex256!())), concat!("docker.io/library/ubuntu@sha256:", hex256!()))]
    #[case(concat!("nginx:1.25@sha256:", hex256!()), "docker.io", "library/nginx", Some("1.25"), Some(concat!("sha256:", hex256!())), concat!("docker.io/library/nginx:1.25@sha256:", hex256!()))]
    #[case(concat!("quay.io/org/app@sha384:", hex384!()), "quay.io", "org/app", None, Some(concat!("sha384:", hex384!())), concat!("quay.io/org/app@sha384:", hex384!()))]
    #[case(concat!("quay.io/org/app:v1@sha512:", hex512!()), "quay.io", "org/app", Some("v1"), Some(concat!("sha512:", hex512!())), concat!("quay.io/org/app:v1@sha512:", hex512!()))]
    #[case("localhost/foo", "localhost", "foo", None, None, "localhost/foo:latest")]
    #[case("localhost:5000/foo:bar", "localhost:5000", "foo", Some("bar"), None, "localhost:5000/foo:bar")]
    // No '/': Go never takes the only component as a domain, so these are Docker Hub names.
    #[case("localhost", "docker.io", "library/localhost", None, None, "docker.io/library/localhost:latest")]
    #[case("localhost:5000", "docker.io", "library/localhost", Some("5000"), None, "docker.io/library/localhost:5000")]
    #[case("index.docker.io", "docker.io", "library/index.docker.io", None, None, "docker.io/library/index.docker.io:latest")]
    #[case("myregistry.com:5000/a/b/c", "myregistry.com:5000", "a/b/c", None, None, "myregistry.com:5000/a/b/c:latest")]
    #[case("registry.k8s.io/pause:3.9", "registry.k8s.io", "pause", Some("3.9"), None, "registry.k8s.io/pause:3.9")]
    #[case("gcr.io/distroless/static:nonroot", "gcr.io", "distroless/static", Some("nonroot"), None, "gcr.io/distroless/static:nonroot")]
    #[case("1.2.3.4/x", "1.2.3.4", "x", None, None, "1.2.3.4/x:latest")]
    #[case("foo--bar.example:1/x", "foo--bar.example:1", "x", None, None, "foo--bar.example:1/x:latest")]
    // A first component with an uppercase letter is a domain (and domains may be uppercase).
    #[case("Foo/bar", "Foo", "bar", None, None, "Foo/bar:latest")]
    #[case("Foo:5000/bar", "Foo:5000", "bar", None, None, "Foo:5000/bar:latest")]
    #[case("[fc00::1]:5000/x:1", "[fc00::1]:5000", "x", Some("1"), None, "[fc00::1]:5000/x:1")]
    #[case("[fc00::1]/x", "[fc00::1]", "x", None, None, "[fc00::1]/x:latest")]
    #[case("[::1]/x", "[::1]", "x", None, None, "[::1]/x:latest")]
    #[case("[FC00::1]:443/team/app", "[FC00::1]:443", "team/app", None, None, "[FC00::1]:443/team/app:latest")]
    // Only exactly 64 lowercase hex characters look like an image ID.
    #[case(&hex256!()[..63], "docker.io", &concat!("library/", hex256!())[..71], None, None, "docker.io/library/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85:latest")]
    #[case(concat!(hex256!(), ":latest"), "docker.io", concat!("library/", hex256!()), Some("latest"), None, concat!("docker.io/library/", hex256!(), ":latest"))]
    #[case("sha256", "docker.io", "library/sha256", None, None, "docker.io/library/sha256:latest")]
    // No '@': the digest-looking text is a repository "sha256" with a 64-hex tag.
    #[case(concat!("sha256:", hex256!()), "docker.io", "library/sha256", Some(hex256!()), None, concat!("docker.io/library/sha256:", hex256!()))]
    #[case("a__b", "docker.io", "library/a__b", None, None, "docker.io/library/a__b:latest")]
    #[case("a--b", "docker.io", "library/a--b", None, None, "docker.io/library/a--b:latest")]
    #[case("a---b_c.d", "docker.io", "library/a---b_c.d", None, None, "docker.io/library/a---b_c.d:latest")]
    #[case("a.b", "docker.io", "library/a.b", None, None, "docker.io/library/a.b:latest")]
    #[case("nginx:Latest_1.0-rc.2", "docker.io", "library/nginx", Some("Latest_1.0-rc.2"), None, "docker.io/library/nginx:Latest_1.0-rc.2")]
    #[case("nginx:_", "docker.io", "library/nginx", Some("_"), None, "docker.io/library/nginx:_")]
    // '.' makes "a_b.c" a domain for splitDockerDomain, but it is no valid host; Parse then
    // takes the whole name as a path and leaves the domain empty.
    #[case("a_b.c/d", "", "a_b.c/d", None, None, "a_b.c/d:latest")]
    fn parses_like_distribution(
        #[case] input: &str,
        #[case] domain: &str,
        #[case] path: &str,
        #[case] tag: Option<&str>,
        #[case] digest: Option<&str>,
        #[case] canonical: &str,
    ) {
        let r = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(r.domain(), domain);
        assert_eq!(r.path(), path);
        assert_eq!(r.tag(), tag);
        assert_eq!(r.digest(), digest);
        assert_eq!(r.canonical(), canonical);
        assert_eq!(r.to_string(), canonical);
        // The canonical form is a fixed point.
        let again = ImageRef::parse(canonical).unwrap_or_else(|e| panic!("{canonical:?}: {e}"));
        assert_eq!(again.canonical(), canonical);
    }

    #[rustfmt::skip]
    #[rstest]
    #[case("", "Empty")]
    #[case(hex256!(), "LooksLikeImageId")]
    #[case("quay.io/Foo", "Uppercase")]
    #[case("example.com/Foo", "Uppercase")]
    #[case("Nginx", "Uppercase")]
    #[case("Foo/Bar", "Uppercase")]
    #[case("docker.io/Library/nginx", "Uppercase")]
    #[case("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "Uppercase")]
    // Go checks the name up to the first ':', which here is inside the digest.
    #[case(concat!("nginx@SHA256:", hex256!()), "Uppercase")]
    // An uppercase first component that is no valid domain: Parse's retry in lowercase matches.
    #[case("Foo_bar/baz", "Uppercase")]
    // Go's ToLower maps KELVIN SIGN to 'k' and 'İ' to 'i', so these match once lowercased.
    #[case("\u{212a}/foo", "Uppercase")]
    #[case("\u{130}/foo", "Uppercase")]
    #[case("a//b", "EmptyPathComponent")]
    #[case("a/", "EmptyPathComponent")]
    #[case("/a", "EmptyPathComponent")]
    #[case("quay.io//x", "EmptyPathComponent")]
    #[case("docker.io/library/", "EmptyPathComponent")]
    #[case(":tag", "MissingName")]
    #[case("quay.io/", "MissingName")]
    #[case("@sha256:abc", "InvalidDigest")]
    #[case("nginx:", "InvalidTag")]
    #[case("nginx:-bad", "InvalidTag")]
    #[case("nginx:.bad", "InvalidTag")]
    #[case("nginx:a+b", "InvalidTag")]
    #[case("[fc00::1]", "InvalidTag")]
    #[case("nginx@", "InvalidDigest")]
    #[case("nginx@sha256", "InvalidDigest")]
    #[case(concat!("nginx@sha256:", hex256!(), "@x"), "InvalidDigest")]
    #[case(concat!("nginx@md5:", "d41d8cd98f00b204e9800998ecf8427e"), "UnsupportedDigestAlgorithm")]
    #[case(concat!("nginx@sha1:", "da39a3ee5e6b4b0d3255bfef95601890afd80709"), "UnsupportedDigestAlgorithm")]
    #[case(concat!("nginx@sha256+b64:", hex256!()), "UnsupportedDigestAlgorithm")]
    #[case(concat!("nginx@sha256:", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85"), "InvalidDigest")]
    #[case(concat!("nginx@sha256:", hex256!(), "0"), "InvalidDigest")]
    #[case(concat!("nginx@sha512:", hex256!()), "InvalidDigest")]
    #[case("nginx@sha256:e3b0c44298fc1c149afbf4c8996fb92", "InvalidDigest")]
    #[case("nginx@sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "InvalidDigest")]
    #[case("nginx@sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "InvalidDigest")]
    #[case(concat!("nginx@-sha256:", hex256!()), "InvalidDigest")]
    // Uppercase after the first ':' passes the name check; go-digest then refuses it.
    #[case(concat!("nginx:1@SHA256:", hex256!()), "InvalidDigest")]
    #[case(concat!("nginx:1@Md5:", "d41d8cd98f00b204e9800998ecf8427e"), "InvalidDigest")]
    #[case("a___b", "InvalidPathComponent")]
    #[case("a..b", "InvalidPathComponent")]
    #[case("a-", "InvalidPathComponent")]
    #[case("-a", "InvalidPathComponent")]
    #[case("a_", "InvalidPathComponent")]
    #[case(".a", "InvalidPathComponent")]
    #[case("a._b", "InvalidPathComponent")]
    #[case("a/b+c", "InvalidPathComponent")]
    #[case("nginx:1.25:2", "InvalidPathComponent")]
    #[case("[fc00::g]/x", "InvalidDomain")]
    // No '.', ':' or uppercase: "[]" is a (bad) path component, not a domain.
    #[case("[]/x", "InvalidPathComponent")]
    #[case("[]:5000/x", "InvalidDomain")]
    #[case("[fc00::1]:/x", "InvalidDomain")]
    #[case("[fc00::1]5000/x", "InvalidDomain")]
    #[case("[fc00::1/x", "InvalidDomain")]
    #[case("a_b.c:5000/d", "InvalidDomain")]
    #[case("-foo.com/bar", "InvalidDomain")]
    #[case("foo.com./bar", "InvalidDomain")]
    #[case("foo.com:abc/bar", "InvalidDomain")]
    #[case("foo.com:5000:1/bar", "InvalidDomain")]
    #[case("ngïnx", "InvalidCharacter")]
    #[case("nginx:ä", "InvalidCharacter")]
    #[case("Ä/b", "InvalidCharacter")]
    #[case("docker.io/🐳", "InvalidCharacter")]
    #[case(" nginx", "InvalidCharacter")]
    #[case("nginx ", "InvalidCharacter")]
    #[case("nginx\n", "InvalidCharacter")]
    #[case("\t", "InvalidCharacter")]
    #[case("nginx#1", "InvalidCharacter")]
    #[case("https://nginx", "HasScheme")]
    #[case("oci://quay.io/x", "HasScheme")]
    fn rejects_like_distribution(#[case] input: &str, #[case] expected: &str) {
        match ImageRef::parse(input) {
            Ok(r) => panic!("{input:?} accepted as {r}"),
            Err(e) => assert_eq!(kind(&e), expected, "{input:?}: {e}"),
        }
    }

    #[rustfmt::skip]
    #[rstest]
    // 18 characters of "docker.io/library/" count towards the 255.
    #[case("a".repeat(237), None)]
    #[case("a".repeat(238), Some(256))]
    #[case(format!("example.com/{}", "a".repeat(243)), None)]
    #[case(format!("example.com/{}", "a".repeat(244)), Some(256))]
    #[case(format!("example.com/{}:{}", "a".repeat(243), "t".repeat(128)), None)]
    #[case("a".repeat(100_000), Some(100_018))]
    fn name_length_limit(#[case] input: String, #[case] too_long: Option<usize>) {
        match (ImageRef::parse(&input), too_long) {
            (Ok(r), None) => assert_eq!(r.name().len(), 255),
            (Err(ReferenceError::NameTooLong { length }), Some(expected)) => {
                assert_eq!(length, expected)
            }
            (other, _) => panic!("{}: {other:?}", input.len()),
        }
    }

    #[rustfmt::skip]
    #[rstest]
    #[case(128, true)]
    #[case(129, false)]
    fn tag_length_limit(#[case] len: usize, #[case] ok: bool) {
        let input = format!("nginx:{}", "t".repeat(len));
        match ImageRef::parse(&input) {
            Ok(r) => assert!(ok && r.tag().map(str::len) == Some(len)),
            Err(e) => assert!(!ok && kind(&e) == "InvalidTag", "{e}"),
        }
    }

    #[rustfmt::skip]
    #[rstest]
    #[case("a".repeat(100_000))]
    #[case("a/".repeat(50_000))]
    #[case("é".repeat(100_000))]
    #[case(":".repeat(100_000))]
    #[case("@".repeat(100_000))]
    #[case(format!("nginx:{}", "t".repeat(100_000)))]
    #[case(format!("nginx@sha256:{}", "a".repeat(100_000)))]
    #[case(format!("{}/x", "[".repeat(100_000)))]
    fn huge_input_fails_fast_with_short_message(#[case] input: String) {
        let start = Instant::now();
        let err = ImageRef::parse(&input).err().map(|e| e.to_string());
        assert!(start.elapsed() < Duration::from_secs(1));
        let err = err.unwrap_or_else(|| panic!("accepted"));
        assert!(err.len() < 400, "{err}");
    }

    #[rustfmt::skip]
    #[rstest]
    #[case("nginx", "docker.io/library/nginx", "registry-1.docker.io", "latest")]
    #[case("nginx:1.25", "docker.io/library/nginx", "registry-1.docker.io", "1.25")]
    #[case(concat!("nginx:1.25@sha256:", hex256!()), "docker.io/library/nginx", "registry-1.docker.io", concat!("sha256:", hex256!()))]
    #[case("quay.io/org/app:v2", "quay.io/org/app", "quay.io", "v2")]
    #[case("localhost:5000/foo", "localhost:5000/foo", "localhost:5000", "latest")]
    #[case("[fc00::1]:5000/x:1", "[fc00::1]:5000/x", "[fc00::1]:5000", "1")]
    #[case("a_b.c/d", "a_b.c/d", "", "latest")]
    fn accessors(
        #[case] input: &str,
        #[case] name: &str,
        #[case] host: &str,
        #[case] manifest: &str,
    ) {
        let r = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(r.name(), name);
        assert_eq!(r.registry_host(), host);
        assert_eq!(r.manifest_reference(), manifest);
    }

    #[test]
    fn with_digest_drops_the_tag() {
        let r = ImageRef::parse("quay.io/org/app:v2").unwrap_or_else(|e| panic!("{e}"));
        let d = r.with_digest(concat!("sha256:", hex256!()));
        assert_eq!(d.tag(), None);
        assert_eq!(d.manifest_reference(), concat!("sha256:", hex256!()));
        assert_eq!(d.to_string(), concat!("quay.io/org/app@sha256:", hex256!()));
        assert_eq!(r.tag(), Some("v2"));
    }

    #[rustfmt::skip]
    #[rstest]
    #[case("", "image reference is empty")]
    #[case("quay.io/Foo", "repository name must be lowercase: \"Foo\"")]
    #[case("Nginx:Tag", "repository name must be lowercase: \"Nginx\"")]
    #[case(" nginx", "invalid reference format: invalid character ' ' at position 1 in \" nginx\"")]
    #[case("nginx:", "invalid tag \"\": the tag after ':' is empty")]
    #[case("a//b", "invalid reference format: empty path component in \"a//b\" (no leading, trailing or double '/')")]
    #[case(concat!("nginx@md5:", "d41d8cd98f00b204e9800998ecf8427e").to_owned(), "unsupported digest algorithm \"md5\" (only sha256, sha384 and sha512 are accepted)")]
    #[case("a".repeat(238), "repository name must not be more than 255 characters (it has 256 including the registry domain)")]
    fn messages(#[case] input: String, #[case] message: &str) {
        let err = ImageRef::parse(&input).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some(message));
    }

    /// Random strings over the characters that matter: no panic, bounded messages, and every
    /// accepted reference has an ASCII canonical form that parses back to itself.
    #[test]
    fn random_inputs_never_panic() {
        const ALPHABET: &[&str] = &[
            "a",
            "b",
            "z",
            "0",
            "9",
            "A",
            "F",
            "Z",
            ".",
            "_",
            "__",
            "-",
            "/",
            ":",
            "@",
            "[",
            "]",
            "+",
            " ",
            "é",
            "İ",
            "\u{212a}",
            "sha256:",
            hex256!(),
            "localhost",
            "docker.io",
            "index.docker.io",
            "library",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for _ in 0..50_000 {
            let len = (next() % 12) as usize;
            let input: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            match ImageRef::parse(&input) {
                Ok(r) => {
                    accepted += 1;
                    let canonical = r.canonical();
                    assert!(canonical.is_ascii(), "{input:?}");
                    let again = ImageRef::parse(&canonical)
                        .unwrap_or_else(|e| panic!("{input:?} -> {canonical:?}: {e}"));
                    assert_eq!(again.canonical(), canonical);
                    assert_eq!(again.name(), r.name());
                }
                Err(e) => assert!(e.to_string().len() < 400, "{input:?}: {e}"),
            }
        }
        assert!(accepted > 100, "only {accepted} accepted");
    }
}
