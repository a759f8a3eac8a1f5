//! The kubelet's words when a pull fails, read back: the waiting reasons it sets on a
//! container (`state.waiting.reason`), the shape of its waiting messages and of its
//! `Failed` events, and which cause the runtime's error text inside them names.
//!
//! Sources (kubernetes `pkg/kubelet/images/image_manager.go`, `types.go`, cri-api
//! `errors.go`, containerd's and containers/image's error texts, Go's `net` and
//! `crypto/tls`): `waiting.message` is the runtime's text as is for `ErrImagePull`; since
//! Kubernetes 1.32 `ImagePullBackOff` carries `Back-off pulling image "x": <Reason>:
//! <text>` (older kubelets give only the first part, and then the Pod's `Failed` events
//! `Failed to pull image "x": <text>` hold it); a gRPC error other than `Unknown` keeps its
//! `rpc error: code = <Code> desc = ` prefix; several credentials tried give `[a, b]`; the
//! kubelet's event aggregation may prefix `(combined from similar events): `.
//!
//! Pure: no I/O. Depends on nothing else of the crate.

/// The waiting reasons of a container whose image the kubelet could not pull (or would
/// not: `ErrImageNeverPull`). `RegistryUnavailable` and `SignatureValidationFailed` come
/// from CRI-O only.
pub const PULL_FAILURE_REASONS: [&str; 7] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "ImageInspectError",
    "RegistryUnavailable",
    "SignatureValidationFailed",
];

/// Whether a container waiting for this reason is stuck on its image.
pub fn is_pull_failure(reason: &str) -> bool {
    PULL_FAILURE_REASONS.contains(&reason)
}

/// The cause a kubelet message names, from the runtime's error text (first match wins, in
/// this order: a 429 text also says "unexpected status", a DNS timeout also says
/// "i/o timeout").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PullCause {
    /// The node's signature policy refused the image (CRI-O).
    Signature,
    RateLimited,
    /// No manifest for the node's platform.
    Platform,
    NotFound,
    Unauthorized,
    Forbidden,
    Tls,
    Dns,
    ConnectionRefused,
    /// Reset, no route, unreachable network.
    Network,
    Timeout,
    /// No space left on the node.
    Disk,
    /// 5xx from the registry.
    RegistryError,
    InvalidReference,
    /// `imagePullPolicy: Never` and the image is not on the node (or, since Kubernetes 1.35,
    /// the Pod's credentials were not verified for it).
    NeverPull,
    /// The runtime could not inspect the image on the node.
    Inspect,
    /// Schema 1 images and other formats the runtime refuses.
    Unsupported,
    /// The message says nothing this table knows.
    Unknown,
}

impl PullCause {
    /// snake_case, for JSON and Event keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::RateLimited => "rate_limited",
            Self::Platform => "platform",
            Self::NotFound => "not_found",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::Tls => "tls",
            Self::Dns => "dns",
            Self::ConnectionRefused => "connection_refused",
            Self::Network => "network",
            Self::Timeout => "timeout",
            Self::Disk => "disk",
            Self::RegistryError => "registry_error",
            Self::InvalidReference => "invalid_reference",
            Self::NeverPull => "never_pull",
            Self::Inspect => "inspect",
            Self::Unsupported => "unsupported",
            Self::Unknown => "unknown",
        }
    }

    /// What the node met, in a few words.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Signature => "the node's signature policy refused the image",
            Self::RateLimited => "the registry rate-limited the node",
            Self::Platform => "the image has no variant for the node's platform",
            Self::NotFound => "the registry said the image does not exist",
            Self::Unauthorized => "the registry refused the node's credentials (or it had none)",
            Self::Forbidden => "the registry forbade the pull",
            Self::Tls => "TLS with the registry failed on the node",
            Self::Dns => "the registry's name did not resolve on the node",
            Self::ConnectionRefused => "the node's connection to the registry was refused",
            Self::Network => "the node could not reach the registry (reset, no route)",
            Self::Timeout => "the node's pull timed out or made no progress",
            Self::Disk => "the node ran out of disk space",
            Self::RegistryError => "the registry answered with a server error",
            Self::InvalidReference => "the image reference is invalid",
            Self::NeverPull => "imagePullPolicy Never and the image is not usable on the node",
            Self::Inspect => "the runtime could not inspect the image on the node",
            Self::Unsupported => "the runtime does not support the image's format",
            Self::Unknown => "the kubelet's message names no known cause",
        }
    }

    /// Causes only the node's path to the registry explains when the registry answers
    /// pullcheck: DNS, TLS, connection, network, timeouts.
    pub fn is_node_path(self) -> bool {
        matches!(
            self,
            Self::Tls | Self::Dns | Self::ConnectionRefused | Self::Network | Self::Timeout
        )
    }
}

impl std::fmt::Display for PullCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const BACK_OFF: &str = "Back-off pulling image \"";
const FAILED_TO_PULL: &str = "Failed to pull image \"";
const COMBINED: &str = "(combined from similar events): ";

/// Skips `"<image>"` (a Go `%q` string) at the start of `s`; the rest after the quote.
fn after_quoted(s: &str) -> Option<&str> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(&s[i + 1..]),
            _ => {}
        }
    }
    None
}

/// The runtime's error text inside a container's `waiting.message`: the message itself,
/// or, for a back-off, what follows `Back-off pulling image "x": <Reason>: `. `None` when
/// the message holds no error (empty, or a back-off message of a kubelet before 1.32 or
/// just restarted: then the Pod's `Failed` events hold it).
pub fn runtime_error(message: &str) -> Option<&str> {
    let message = message.trim();
    if message.is_empty() {
        return None;
    }
    let Some(rest) = message.strip_prefix(BACK_OFF) else {
        return Some(message);
    };
    let rest = after_quoted(rest)?.strip_prefix(": ")?;
    // `<Reason>: <text>`, the reason being one word (ErrImagePull, RegistryUnavailable, …).
    match rest.split_once(": ") {
        Some((reason, text)) if !reason.is_empty() && !reason.contains(' ') => Some(text),
        _ => Some(rest),
    }
}

/// The image and the runtime's error text of a kubelet `Failed` event
/// (`Failed to pull image "x": <text>`, maybe after `(combined from similar events): `).
/// `None` for the other `Failed` events (`Error: ImagePullBackOff`, container start
/// failures).
pub fn event_error(message: &str) -> Option<(&str, &str)> {
    let message = message.strip_prefix(COMBINED).unwrap_or(message);
    let rest = message.strip_prefix(FAILED_TO_PULL)?;
    let tail = after_quoted(rest)?;
    let image = &rest[..rest.len() - tail.len() - 1];
    Some((image, tail.strip_prefix(": ").unwrap_or(tail)))
}

/// The cause a waiting `reason` and the runtime's `text` name (the A1.5 table of the
/// research notes; case-insensitive substrings, first match wins).
pub fn classify(reason: &str, text: &str) -> PullCause {
    match reason {
        "SignatureValidationFailed" => return PullCause::Signature,
        "InvalidImageName" => return PullCause::InvalidReference,
        "ErrImageNeverPull" => return PullCause::NeverPull,
        _ => {}
    }
    let t = text.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| t.contains(n));
    if has(&["signaturevalidationfailed", "source image rejected"])
        || (t.contains("signature") && has(&["rejected", "invalid"]))
    {
        return PullCause::Signature;
    }
    if has(&[
        "429 too many requests",
        "toomanyrequests",
        "too many requests",
        "pull rate limit",
        "rate limit",
    ]) {
        return PullCause::RateLimited;
    }
    if has(&[
        "no match for platform in manifest",
        "no image found in image index for architecture",
        "no image found in manifest list for architecture",
        "choosing an image from manifest list",
    ]) {
        return PullCause::Platform;
    }
    if has(&[
        "code = notfound",
        "manifest unknown",
        "name unknown",
        "repository name not known to registry",
        "404 not found",
    ]) || t.trim_end().ends_with(": not found")
    {
        return PullCause::NotFound;
    }
    if has(&[
        "pull access denied",
        "insufficient_scope",
        "authorization failed",
        "no basic auth credentials",
        "401 unauthorized",
        "failed to fetch oauth token",
        "failed to fetch anonymous token",
        "authentication required",
        "requested access to the resource is denied",
        "invalid username/password",
        "unauthorized",
    ]) {
        return PullCause::Unauthorized;
    }
    if has(&["403 forbidden", "denied:"]) {
        return PullCause::Forbidden;
    }
    if has(&[
        "x509:",
        "tls: failed to verify certificate",
        "certificate signed by unknown authority",
        "certificate has expired or is not yet valid",
        "certificate is valid for",
        "tls: handshake failure",
        "remote error: tls:",
        "http: server gave http response to https client",
        "first record does not look like a tls handshake",
    ]) {
        return PullCause::Tls;
    }
    if has(&["no such host", "server misbehaving"])
        || (t.contains("lookup ") && has(&["i/o timeout", "temporary failure in name resolution"]))
    {
        return PullCause::Dns;
    }
    if reason == "RegistryUnavailable"
        || has(&["connection refused", "because the registry is unavailable"])
    {
        return PullCause::ConnectionRefused;
    }
    if has(&[
        "connection reset by peer",
        "no route to host",
        "network is unreachable",
    ]) {
        return PullCause::Network;
    }
    if has(&[
        "i/o timeout",
        "tls handshake timeout",
        "context deadline exceeded",
        "client.timeout exceeded",
        "request canceled while waiting for connection",
        "code = deadlineexceeded",
        "code = canceled",
        "context canceled",
        "408 request timeout",
        "504 gateway timeout",
    ]) {
        return PullCause::Timeout;
    }
    if has(&["no space left on device", "disk quota exceeded"]) {
        return PullCause::Disk;
    }
    if has(&[
        "500 internal server error",
        "502 bad gateway",
        "503 service unavailable",
        "received unexpected http status: 5",
    ]) {
        return PullCause::RegistryError;
    }
    if has(&[
        "failed to parse image reference",
        "couldn't parse image",
        "invalid reference format",
    ]) {
        return PullCause::InvalidReference;
    }
    if has(&[
        "code = unimplemented",
        "no longer supported since containerd v2.0",
    ]) {
        return PullCause::Unsupported;
    }
    if reason == "ImageInspectError" {
        return PullCause::Inspect;
    }
    PullCause::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("ErrImagePull", "rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/library/nginx:nope\": failed to resolve reference \"docker.io/library/nginx:nope\": docker.io/library/nginx:nope: not found", PullCause::NotFound)]
    #[case("ErrImagePull", "rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/library/x:1\": no match for platform in manifest: not found", PullCause::Platform)]
    #[case("ErrImagePull", "failed to pull and unpack image \"docker.io/acme/private:1\": failed to resolve reference \"docker.io/acme/private:1\": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed", PullCause::Unauthorized)]
    #[case("ErrImagePull", "failed to pull and unpack image \"r.example/a:1\": failed to resolve reference \"r.example/a:1\": failed to authorize: failed to fetch oauth token: unexpected status from GET request to https://auth.r.example/token?scope=repository%3Aa%3Apull: 401 Unauthorized", PullCause::Unauthorized)]
    #[case("ErrImagePull", "failed to pull and unpack image \"docker.io/library/nginx:1\": failed to copy: httpReadSeeker: failed open: unexpected status code https://registry-1.docker.io/v2/library/nginx/manifests/sha256:0: 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit.", PullCause::RateLimited)]
    #[case("ErrImagePull", "failed to pull and unpack image \"r.example/a:1\": failed to resolve reference \"r.example/a:1\": failed to do request: Head \"https://r.example/v2/a/manifests/1\": dial tcp: lookup r.example on 10.96.0.10:53: no such host", PullCause::Dns)]
    #[case("ErrImagePull", "failed to pull and unpack image \"r.example/a:1\": failed to resolve reference \"r.example/a:1\": failed to do request: Head \"https://r.example/v2/a/manifests/1\": dial tcp: lookup r.example: i/o timeout", PullCause::Dns)]
    #[case("ErrImagePull", "failed to pull and unpack image \"r.example/a:1\": failed to resolve reference \"r.example/a:1\": failed to do request: Head \"https://r.example/v2/a/manifests/1\": tls: failed to verify certificate: x509: certificate signed by unknown authority", PullCause::Tls)]
    #[case("ErrImagePull", "failed to pull and unpack image \"r.example/a:1\": failed to resolve reference \"r.example/a:1\": failed to do request: Head \"https://r.example/v2/a/manifests/1\": dial tcp 10.0.0.5:443: connect: connection refused", PullCause::ConnectionRefused)]
    #[case("RegistryUnavailable", "image pull failed for r.example/a:1 because the registry is unavailable: pinging container registry r.example: Get \"https://r.example/v2/\": dial tcp 10.0.0.5:443: connect: connection refused", PullCause::ConnectionRefused)]
    #[case("ErrImagePull", "failed to pull and unpack image \"r.example/a:1\": failed to resolve reference \"r.example/a:1\": failed to do request: Head \"https://r.example/v2/a/manifests/1\": dial tcp 10.0.0.5:443: connect: no route to host", PullCause::Network)]
    #[case("ErrImagePull", "rpc error: code = Canceled desc = failed to pull and unpack image \"r.example/big:1\": context canceled", PullCause::Timeout)]
    #[case("ErrImagePull", "failed to pull and unpack image \"r.example/big:1\": failed to extract layer sha256:0: write /var/lib/containerd/x: no space left on device: unknown", PullCause::Disk)]
    #[case(
        "ErrImagePull",
        "reading manifest nope in docker.io/library/nginx: manifest unknown",
        PullCause::NotFound
    )]
    #[case("ErrImagePull", "reading manifest 1 in quay.io/acme/a: unauthorized: access to the requested resource is not authorized", PullCause::Unauthorized)]
    #[case("ErrImagePull", "unable to retrieve auth token: invalid username/password: unauthorized: incorrect username or password", PullCause::Unauthorized)]
    #[case("ErrImagePull", "choosing an image from manifest list docker://r.example/a:1: no image found in image index for architecture \"arm64\", variant \"v8\", OS \"linux\"", PullCause::Platform)]
    #[case(
        "ErrImagePull",
        "received unexpected HTTP status: 503 Service Unavailable",
        PullCause::RegistryError
    )]
    #[case("ErrImagePull", "[rpc error: code = NotFound desc = failed to pull and unpack image \"r.example/a:1\": r.example/a:1: not found, failed to pull and unpack image \"r.example/a:1\": 401 Unauthorized]", PullCause::NotFound)]
    #[case("SignatureValidationFailed", "image pull failed for r.example/a:1 because the signature validation failed: Source image rejected: A signature was required, but no signature exists", PullCause::Signature)]
    #[case("InvalidImageName", "Failed to apply default image tag \"Nginx\": couldn't parse image name \"Nginx\": invalid reference format: repository name must be lowercase", PullCause::InvalidReference)]
    #[case(
        "ErrImageNeverPull",
        "Container image \"app:1\" is not present with pull policy of Never",
        PullCause::NeverPull
    )]
    #[case(
        "ImageInspectError",
        "Failed to inspect image \"\": rpc error: code = Unknown desc = oops",
        PullCause::Inspect
    )]
    #[case("ErrImagePull", "rpc error: code = Unimplemented desc = failed to pull and unpack image \"r.example/old:1\": media type \"application/vnd.docker.distribution.manifest.v1+prettyjws\" is no longer supported since containerd v2.0.0", PullCause::Unsupported)]
    #[case("ErrImagePull", "something new and strange", PullCause::Unknown)]
    fn runtime_texts_name_their_cause(
        #[case] reason: &str,
        #[case] text: &str,
        #[case] want: PullCause,
    ) {
        assert_eq!(classify(reason, text), want, "{text}");
    }

    #[test]
    fn waiting_messages_give_the_runtime_text() {
        assert_eq!(
            runtime_error("Back-off pulling image \"nginx:nope\": ErrImagePull: rpc error: code = NotFound desc = x: not found"),
            Some("rpc error: code = NotFound desc = x: not found")
        );
        assert_eq!(runtime_error("Back-off pulling image \"nginx:nope\""), None);
        assert_eq!(runtime_error("  "), None);
        assert_eq!(
            runtime_error("failed to pull and unpack image \"x\": boom"),
            Some("failed to pull and unpack image \"x\": boom")
        );
        assert_eq!(
            runtime_error("Back-off pulling image \"a\\\"b\": ErrImagePull: boom"),
            Some("boom")
        );
        // Unterminated quote: nothing to trust.
        assert_eq!(runtime_error("Back-off pulling image \"abc"), None);
    }

    #[test]
    fn failed_events_give_the_image_and_the_runtime_text() {
        assert_eq!(
            event_error(
                "Failed to pull image \"nginx:nope\": rpc error: code = NotFound desc = nope"
            ),
            Some(("nginx:nope", "rpc error: code = NotFound desc = nope"))
        );
        assert_eq!(
            event_error("(combined from similar events): Failed to pull image \"a:1\": boom"),
            Some(("a:1", "boom"))
        );
        assert_eq!(event_error("Error: ImagePullBackOff"), None);
        assert_eq!(event_error("Failed to pull image \"a"), None);
    }

    #[test]
    fn reasons() {
        for r in PULL_FAILURE_REASONS {
            assert!(is_pull_failure(r));
        }
        assert!(!is_pull_failure("CrashLoopBackOff"));
        assert!(!is_pull_failure("ContainerCreating"));
        assert!(PullCause::Dns.is_node_path() && !PullCause::NotFound.is_node_path());
    }
}
