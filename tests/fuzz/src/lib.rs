//! Fuzz harnesses for pullcheck's untrusted inputs, shared by the cargo-fuzz targets in
//! `fuzz_targets/` and by the main crate's `tests/fuzz_corpus.rs`, which replays the committed
//! corpus through the same functions on every `cargo test`.
//!
//! Each harness feeds one input the way the webhook or the CLI meets it, walks everything
//! that comes out, and asserts a few cheap invariants (round trips, agreement between entry
//! points, bounded error messages). Any panic is a finding.

use std::collections::BTreeMap;

use pullcheck::ci::input::Input;
use pullcheck::ci::{manifest_stream, manifests as ci_manifests};
use pullcheck::cluster::InMemoryCluster;
use pullcheck::kubelet::credentials::{
    self, DockerConfig, Keyring, DOCKERCFG_KEY, DOCKER_CONFIG_JSON_KEY, SECRET_TYPE_DOCKERCFG,
    SECRET_TYPE_DOCKER_CONFIG_JSON,
};
use pullcheck::kubelet::manifest;
use pullcheck::kubelet::platform::Platform;
use pullcheck::kubelet::platform::PlatformRules;
use pullcheck::kubelet::platform_match::PlatformMatcher;
use pullcheck::kubelet::reference::ImageRef;
use pullcheck::kubelet::workload::{
    self, PlatformConstraint, PullChange, WorkloadError, WorkloadKind,
};
use pullcheck::registry::{auth, client};
use pullcheck::webhook::wire;

/// One harness: takes any bytes, panics on a finding.
pub type Harness = fn(&[u8]);

/// Every harness, by the name of its cargo-fuzz target and corpus directory.
pub const TARGETS: &[(&str, Harness)] = &[
    ("reference", reference),
    ("credentials", credentials),
    ("admission", admission),
    ("platform", platform),
    ("manifests", manifests),
    ("registry_headers", registry_headers),
];

/// Upper bound, in characters, for any error message built from untrusted input. Every
/// module quotes at most a few hundred characters of its input; this only catches messages
/// that echo an input whole.
const MESSAGE_MAX: usize = 2000;

fn bounded(what: &str, message: &str) {
    let n = message.chars().count();
    assert!(n <= MESSAGE_MAX, "{what}: error message of {n} characters");
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Image references
// ---------------------------------------------------------------------------------------------

/// `ImageRef::parse` and `ci::reference::report` on the input (lossily decoded as UTF-8).
pub fn reference(data: &[u8]) {
    check_reference(&text(data));
}

fn check_reference(input: &str) -> Option<ImageRef> {
    let parsed = ImageRef::parse(input);
    let report = pullcheck::ci::reference::report(input);
    assert_eq!(report.valid, parsed.is_ok(), "report disagrees with parse");
    match parsed {
        Ok(r) => {
            let canonical = r.canonical();
            assert_eq!(r.to_string(), canonical);
            assert_eq!(report.canonical.as_deref(), Some(canonical.as_str()));
            let _ = (r.registry_host(), r.manifest_reference(), r.name());
            // Normalization is idempotent: the canonical form names the same image (with the
            // implicit "latest" made explicit).
            let again = ImageRef::parse(&canonical)
                .unwrap_or_else(|e| panic!("canonical {canonical:?} of {input:?} fails: {e}"));
            assert_eq!(again.domain(), r.domain(), "domain of {input:?}");
            assert_eq!(again.path(), r.path(), "path of {input:?}");
            assert_eq!(again.digest(), r.digest(), "digest of {input:?}");
            let tag = r.tag().or(r.digest().map_or(Some("latest"), |_| None));
            assert_eq!(again.tag(), tag, "tag of {input:?}");
            let _ = r.with_digest(input).canonical();
            Some(r)
        }
        Err(e) => {
            let message = e.to_string();
            bounded("reference", &message);
            assert_eq!(report.error.as_deref(), Some(message.as_str()));
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Docker configs and the keyring
// ---------------------------------------------------------------------------------------------

/// Image names looked up in every keyring, besides the ones derived from the config keys and
/// those given after a NUL byte in the input.
const LOOKUPS: &[&str] = &[
    "nginx",
    "library/nginx:1.27",
    "quay.io/coreos/etcd:v3.5",
    "localhost:5000/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "registry.example.com:443/a/b/c",
    "[fc00::1]:5000/x",
    "foo.bar.example.com/baz",
];

/// At most this many lookups per input, to keep one execution fast.
const MAX_LOOKUPS: usize = 48;

/// The docker config parsers, `parse_secret`, and `Keyring::add` + `Keyring::lookup`.
///
/// Input: the payload, optionally followed by a NUL byte and newline-separated image
/// references to look up (a NUL never occurs in valid JSON, so it cannot hide a payload).
pub fn credentials(data: &[u8]) {
    let (payload, extra) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };

    let json = credentials::parse_dockerconfigjson(payload);
    let cfg = credentials::parse_dockercfg(payload);
    let file = credentials::parse_docker_config_file(payload);

    // config.json is read exactly like a dockerconfigjson payload.
    match (&json, &file) {
        (Ok(a), Ok((b, _))) => assert_same_config(a, b),
        (Err(a), Err(b)) => assert_eq!(a, b, "dockerconfigjson and config.json errors differ"),
        (a, b) => panic!(
            "dockerconfigjson and config.json disagree: {:?} vs {:?}",
            a.is_ok(),
            b.is_ok()
        ),
    }
    for e in [json.as_ref().err(), cfg.as_ref().err()]
        .into_iter()
        .flatten()
    {
        bounded("credentials", &e.to_string());
    }

    // parse_secret is the same parsers behind the kubelet's choice of secrets.
    let data_map = |key: &str| BTreeMap::from([(key.to_owned(), payload.to_vec())]);
    let as_json = credentials::parse_secret(
        SECRET_TYPE_DOCKER_CONFIG_JSON,
        &data_map(DOCKER_CONFIG_JSON_KEY),
    );
    let as_cfg = credentials::parse_secret(SECRET_TYPE_DOCKERCFG, &data_map(DOCKERCFG_KEY));
    if payload.is_empty() {
        assert!(matches!(as_json, Ok(None)) && matches!(as_cfg, Ok(None)));
    } else {
        assert_eq!(as_json.is_ok(), json.is_ok());
        assert_eq!(as_cfg.is_ok(), cfg.is_ok());
    }
    assert!(matches!(
        credentials::parse_secret("Opaque", &data_map(DOCKER_CONFIG_JSON_KEY)),
        Ok(None)
    ));

    let mut keyring = Keyring::new();
    let mut node = Keyring::new();
    let mut configs: Vec<&DockerConfig> = Vec::new();
    if let Ok(c) = &json {
        let _ = keyring.add("secret/json", c);
        configs.push(c);
    }
    if let Ok(c) = &cfg {
        let _ = keyring.add("secret/cfg", c);
        configs.push(c);
    }
    if let Ok((c, warnings)) = &file {
        let _ = node.add("node", c);
        let _ = warnings.iter().map(String::len).sum::<usize>();
    }
    let _ = (keyring.keys(), node.keys(), format!("{keyring:?}"));
    let keyring = keyring.with_fallback(std::sync::Arc::new(node));

    // Image names: fixed ones, ones built from the config keys (so keys and images share
    // hosts, ports and paths), and the input's own.
    let mut names: Vec<String> = LOOKUPS.iter().map(|s| (*s).to_owned()).collect();
    for entry in configs.iter().flat_map(|c| &c.entries) {
        let bare = entry
            .key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        names.push(bare.to_owned());
        names.push(format!("{bare}/app:1"));
        let _ = format!("{:?}", entry.credential);
        let _ = (entry.credential.username(), entry.credential.password());
    }
    names.extend(text(extra).lines().map(str::to_owned));
    for name in names.iter().take(MAX_LOOKUPS) {
        if let Ok(image) = ImageRef::parse(name) {
            for m in keyring.lookup(&image) {
                let _ = (m.key.len(), m.source.len(), m.credential.fingerprint());
            }
        }
    }
}

fn assert_same_config(a: &DockerConfig, b: &DockerConfig) {
    assert_eq!(a.entries.len(), b.entries.len(), "entry counts differ");
    for (x, y) in a.entries.iter().zip(&b.entries) {
        assert_eq!(x.key, y.key);
        assert_eq!(x.credential, y.credential);
    }
}

// ---------------------------------------------------------------------------------------------
// AdmissionReview bodies
// ---------------------------------------------------------------------------------------------

/// An AdmissionReview body, decoded as the server decodes it, then read as the webhook reads
/// it: the workload kind, its PodSpec read from the object's text (and checked to read the
/// same as through a `serde_json::Value`), images (each parsed as a reference), pull
/// secrets, ServiceAccount, platform constraint, and for an UPDATE the diff against the old
/// object.
pub fn admission(data: &[u8]) {
    let Ok(review) = wire::ReviewIn::decode(data) else {
        return;
    };
    let Some(req) = review.request.as_ref() else {
        return;
    };
    // The answer the server always builds (uid, allowed) and writes.
    let _ = wire::encode(&review, &wire::Answer::allow(req));

    let kinds: Vec<WorkloadKind> =
        match WorkloadKind::from_group_kind(&req.kind.group, &req.kind.kind) {
            Some(kind) => vec![kind],
            // Not a kind the webhook reads: still exercise the decoder on the object, with
            // every kind (it only looks at the PodSpec path of the kind it is given).
            None => ALL_KINDS.to_vec(),
        };
    let Some(raw) = req.object else {
        return;
    };
    let Ok(object) = serde_json::from_str::<serde_json::Value>(raw.get()) else {
        return;
    };
    let old = req
        .old_object
        .and_then(|o| serde_json::from_str::<serde_json::Value>(o.get()).ok());
    for kind in kinds {
        // The webhook's reading of the text and CI's reading of the value agree.
        assert_eq!(
            workload::decode_raw(kind, raw.get()),
            workload::decode(kind, &object),
            "the object's text and its value read differently as {kind}"
        );
        check_workload(kind, &object, old.as_ref());
    }
}

const ALL_KINDS: [WorkloadKind; 8] = WorkloadKind::ALL;

fn check_decode_error(e: &WorkloadError) {
    let WorkloadError::Decode { detail, .. } = e;
    let n = detail.chars().count();
    assert!(
        n <= workload::MAX_DETAIL,
        "workload error detail of {n} characters"
    );
}

fn check_workload(kind: WorkloadKind, object: &serde_json::Value, old: Option<&serde_json::Value>) {
    let w = match workload::decode(kind, object) {
        Ok(w) => w,
        Err(e) => {
            check_decode_error(&e);
            return;
        }
    };
    let spec = &w.spec;
    for u in workload::images(spec) {
        let _ = (u.pull_never(), u.slot.as_str());
        check_reference(&u.image);
    }
    let _ = (
        workload::pull_secret_names(spec),
        workload::service_account(spec),
    );
    let constraint = PlatformConstraint::of(spec);
    let _ = (constraint.describe(), constraint.is_constrained());
    let explicit = constraint.explicit_platforms();
    if let Some(platforms) = &explicit {
        assert!(platforms.len() <= workload::MAX_EXPLICIT_PLATFORMS);
        for p in platforms {
            assert!(
                constraint.allows(&p.os, &p.architecture),
                "explicit platform {p} is not allowed by its own constraint"
            );
        }
    }
    let nodes = [
        Platform::new("linux", "amd64", None),
        Platform::new("linux", "arm64", Some("v8")),
        Platform::new("windows", "amd64", None),
    ];
    let _ = constraint.filter(&nodes);
    assert_ne!(
        workload::diff(spec, spec),
        PullChange::Everything,
        "a PodSpec differs from itself"
    );
    if let Some(old) = old {
        match workload::decode(kind, old) {
            Ok(o) => {
                let _ = workload::diff(&o.spec, spec);
            }
            Err(e) => check_decode_error(&e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Manifests and image configs
// ---------------------------------------------------------------------------------------------

/// Content types a registry may answer with, `None` for no header.
const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some(manifest::MEDIA_OCI_INDEX),
    Some(manifest::MEDIA_DOCKER_LIST),
    Some(manifest::MEDIA_OCI_MANIFEST),
    Some(manifest::MEDIA_DOCKER_MANIFEST),
    Some("application/json; charset=utf-8"),
    Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
    Some("application/vnd.example.artifact"),
];

/// `parse_manifest` with every kind of content type, `platform_from_config`, and
/// `Platform::parse` on the input; the platforms found are normalized and matched against
/// each other.
pub fn platform(data: &[u8]) {
    let mut found: Vec<Platform> = Vec::new();
    for ct in CONTENT_TYPES {
        match manifest::parse_manifest(*ct, data) {
            Ok(manifest::ManifestKind::Index { platforms, .. }) => found.extend(platforms),
            Ok(manifest::ManifestKind::Image { .. }) => {}
            Err(e) => bounded("parse_manifest", &e.to_string()),
        }
    }
    match manifest::platform_from_config(data) {
        Ok(p) => found.push(p),
        Err(e) => bounded("platform_from_config", &e.to_string()),
    }
    let input = text(data);
    match Platform::parse(&input) {
        Ok(p) => {
            let _ = p.to_string();
            found.push(p);
        }
        Err(e) => bounded("Platform::parse", &e.to_string()),
    }
    found.truncate(32);
    let normalized: Vec<Platform> = found.iter().map(Platform::normalize).collect();
    for (p, n) in found.iter().zip(&normalized) {
        assert_eq!(n.normalize(), *n, "normalize is not idempotent on {p:?}");
        // containerd's `Only` matches nothing for an arm64 variant it does not know
        // (`v8.10`, `6`), so a platform need not match itself; its normalized form is
        // matched as it is.
        assert_eq!(
            PlatformMatcher::DEFAULT.matches(p, p),
            PlatformMatcher::DEFAULT.matches(n, n),
            "{p:?} and its normalized form are matched differently"
        );
        let _ = n.to_string();
    }
    // satisfied() is matches() over every pair.
    let mut available = normalized.clone();
    available.extend(
        NODE_PLATFORMS
            .iter()
            .filter_map(|s| Platform::parse(s).ok()),
    );
    // Every node runtime's matcher (containerd 1.7's, 2.0's, 2.1's strict one, the default).
    for matcher in [
        PlatformMatcher::DEFAULT,
        PlatformMatcher::only(PlatformRules::V0_2),
        PlatformMatcher::only(PlatformRules::Rc0),
        PlatformMatcher::strict(PlatformRules::Rc1),
    ] {
        let sat = matcher.satisfied(&found, &available);
        let naive: Vec<&Platform> = found
            .iter()
            .filter(|w| available.iter().any(|a| matcher.matches(w, a)))
            .collect();
        assert_eq!(sat, naive, "{matcher:?}: satisfied disagrees with matches");
    }
}

/// Platforms matched against whatever the input yields.
const NODE_PLATFORMS: &[&str] = &[
    "linux/amd64",
    "linux/amd64/v3",
    "linux/386",
    "linux/arm64",
    "linux/arm64/v9.2",
    "linux/arm/v7",
    "linux/arm/v5",
    "windows/amd64",
];

// ---------------------------------------------------------------------------------------------
// `check` input: manifests
// ---------------------------------------------------------------------------------------------

/// Stack of the thread the manifest harness parses on: `check` parses on threads with this
/// much (128 levels of serde recursion in a debug build); libFuzzer's and the test
/// harness's threads have less.
const PARSER_STACK: usize = 32 << 20;

/// A `check` input (lossily UTF-8), read as YAML and as a `*.json` file, both passes of the
/// manifest reader (`collect`), the in-memory cluster filled from its Secrets and
/// ServiceAccounts, and every workload read as the webhook reads it; checks error messages
/// stay short, lines stay within the input, and every image found is on a line that names it.
pub fn manifests(data: &[u8]) {
    let text = text(data);
    std::thread::Builder::new()
        .stack_size(PARSER_STACK)
        .spawn(move || {
            for json in [false, true] {
                check_manifests(&text, json);
            }
        })
        .expect("parser thread")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

fn check_manifests(text: &str, json: bool) {
    let name = if json { "fuzz.json" } else { "fuzz.yaml" };
    let lines = text.split('\n').count();
    let input = Input {
        name: name.into(),
        text: text.to_owned(),
        json,
    };
    let collected = manifest_stream::collect(vec![input]);
    for e in &collected.errors {
        bounded("manifest error", &e.message);
        assert!(e.line.is_none_or(|l| l >= 1 && l <= lines), "{e}");
    }
    let cluster = InMemoryCluster::new();
    for e in ci_manifests::load_cluster(&collected.cluster, "default", &cluster) {
        bounded("manifest error", &e.message);
    }
    for doc in &collected.workloads {
        assert!(
            doc.line >= 1 && doc.line <= lines,
            "object at line {}",
            doc.line
        );
        let (group, kind) = doc.group_kind();
        let Some(kind) = WorkloadKind::from_group_kind(group, kind) else {
            continue;
        };
        let _ = (doc.name(), doc.namespace());
        match workload::decode(kind, &doc.value) {
            Ok(w) => {
                for u in workload::images(&w.spec) {
                    if let Some(line) = doc.line_of(&u.image) {
                        assert!(line >= doc.line && line <= lines, "image at line {line}");
                    }
                }
            }
            Err(e) => check_decode_error(&e),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Registry answers: WWW-Authenticate, Link, Retry-After, rate-limit headers
// ---------------------------------------------------------------------------------------------

/// The input (lossily UTF-8) as a `WWW-Authenticate`, `Link` and `Retry-After` value:
/// `parse_www_authenticate`, `challenge_from_header`, `is_insufficient_scope`, `next_link`,
/// `retry_after`; checks the challenge followed is one the parser found (Bearer with its
/// realm first, else Basic), the next link is a part of the header, and a number of seconds
/// is read as that many seconds. Also as every rate-limit header at once (`ratelimit::parse`):
/// a count read is a Structured Fields integer (at most 15 digits).
pub fn registry_headers(data: &[u8]) {
    let value = text(data);
    let parsed = auth::parse_www_authenticate(&value);
    for c in &parsed {
        assert!(!c.scheme.is_empty(), "a challenge without a scheme");
        assert_eq!(c.scheme, c.scheme.to_ascii_lowercase());
        for (k, _) in &c.params {
            assert_eq!(*k, k.to_ascii_lowercase());
        }
    }
    match auth::challenge_from_header(Some(&value)) {
        Some(auth::Challenge::Bearer { realm, service }) => {
            let first = parsed
                .iter()
                .find(|c| c.scheme == "bearer")
                .expect("a Bearer challenge the parser did not find");
            assert_eq!(first.param("realm"), Some(realm.as_str()));
            assert_eq!(first.param("service"), service.as_deref());
        }
        Some(auth::Challenge::Basic) => {
            assert!(parsed.iter().any(|c| c.scheme == "basic"));
        }
        Some(auth::Challenge::None) | None => {}
    }
    let _ = auth::is_insufficient_scope(Some(&value));
    if let Some(next) = client::next_link(&value) {
        assert!(
            value.contains(&next),
            "next link {next:?} is not in the header"
        );
    }
    if let Ok(header) = http::header::HeaderValue::from_str(&value) {
        let mut headers = http::header::HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, header.clone());
        let after = client::retry_after(&headers);
        if let Ok(secs) = value.trim().parse::<u64>() {
            assert_eq!(after, Some(std::time::Duration::from_secs(secs)));
        }
        let mut limits = http::header::HeaderMap::new();
        for name in [
            "ratelimit",
            "ratelimit-policy",
            "ratelimit-limit",
            "ratelimit-remaining",
            "x-ratelimit-reset",
        ] {
            limits.insert(name, header.clone());
        }
        if let Some(r) = pullcheck::registry::ratelimit::parse(&limits) {
            let sf_integer = 999_999_999_999_999;
            assert!(r.remaining <= sf_integer && r.limit.is_none_or(|l| l <= sf_integer));
        }
    }
}
