//! OCI platforms as containerd sees them: parsing `os/arch[/variant]` specifiers,
//! containerd's normalization (`platforms.Normalize`) and default matcher
//! (`platforms.Only`), and reading the platforms an image offers from the documents a
//! registry serves: image indexes / manifest lists, image manifests and image config blobs.
//!
//! Pure code over bytes and strings: no I/O. Nothing here panics on any input, and error
//! messages echo at most [`MAX_ECHO`] bytes of what they were given.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

/// An OCI platform (`os`, `architecture`, `variant`, `os.version`), as found in image
/// index entries and image config blobs. `os.features` is not kept.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Platform {
    /// Operating system, e.g. `linux`, `windows`.
    pub os: String,
    /// CPU architecture, e.g. `amd64`, `arm64`, `arm`.
    pub architecture: String,
    /// CPU variant, e.g. `v7` for `arm`, `v3` for `amd64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// OS version (Windows build), e.g. `10.0.20348.2113`.
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Platform {
    /// A platform without OS version. An empty variant is stored as `None`. Not normalized.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.filter(|v| !v.is_empty()).map(str::to_owned),
            os_version: None,
        }
    }

    /// Parses `os/arch` or `os/arch/variant` (`linux/amd64`, `linux/arm64/v8`,
    /// `windows/amd64`), lowercased. Surrounding whitespace is ignored.
    ///
    /// containerd's `platforms.Parse` also accepts a lone `os` or `arch` and fills the other
    /// half from the host it runs on; a webhook has no such host, so at least `os/arch` is
    /// required. containerd's `os(version)` syntax is not supported. The result is NOT
    /// normalized: call [`Platform::normalize`].
    pub fn parse(s: &str) -> Result<Platform, PlatformError> {
        let invalid = |reason: &str| PlatformError::InvalidPlatform {
            input: clip_echo(s),
            reason: reason.to_owned(),
        };
        let trimmed = s.trim();
        let parts: Vec<&str> = trimmed.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(invalid("expected os/arch[/variant]"));
        }
        // Same character sets as containerd's specifier regexes (the OS without options).
        if !parts[0]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(invalid(
                "the os may only contain letters, digits, '_' and '-'",
            ));
        }
        let arch_ok = |p: &str| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        };
        if !parts[1..].iter().all(|p| arch_ok(p)) {
            return Err(invalid(
                "the architecture and variant may only contain letters, digits, '_', '.' and '-'",
            ));
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
            os_version: None,
        })
    }

    /// containerd's `platforms.Normalize` (`normalizeOS` + `normalizeArch` in
    /// `database.go`): lowercases; `macos` -> `darwin`; `i386` -> `386` (variant dropped);
    /// `x86_64`/`x86-64` -> `amd64` (variant `v1` dropped); `aarch64` -> `arm64` (variant
    /// `8`/`v8` dropped); `armhf` -> `arm/v7`; `armel` -> `arm/v6`; `arm` without variant
    /// or with `7` -> `arm/v7`, with `5`/`6`/`8` -> `v5`/`v6`/`v8`. `os.version` is kept.
    pub fn normalize(&self) -> Platform {
        let mut os = self.os.to_ascii_lowercase();
        if os == "macos" {
            os = "darwin".to_owned();
        }
        let mut arch = self.architecture.to_ascii_lowercase();
        let mut variant = self
            .variant
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match arch.as_str() {
            "i386" => {
                arch = "386".to_owned();
                variant.clear();
            }
            "x86_64" | "x86-64" | "amd64" => {
                arch = "amd64".to_owned();
                if variant == "v1" {
                    variant.clear();
                }
            }
            "aarch64" | "arm64" => {
                arch = "arm64".to_owned();
                if variant == "8" || variant == "v8" {
                    variant.clear();
                }
            }
            "armhf" => {
                arch = "arm".to_owned();
                variant = "v7".to_owned();
            }
            "armel" => {
                arch = "arm".to_owned();
                variant = "v6".to_owned();
            }
            "arm" => match variant.as_str() {
                "" | "7" => variant = "v7".to_owned(),
                "5" | "6" | "8" => variant.insert(0, 'v'),
                _ => {}
            },
            _ => {}
        }
        Platform {
            os,
            architecture: arch,
            variant: (!variant.is_empty()).then_some(variant),
            os_version: self.os_version.clone(),
        }
    }
}

impl fmt::Display for Platform {
    /// `os/arch[/variant]` (no OS version), like containerd's `platforms.Format`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match self.variant.as_deref() {
            Some(v) if !v.is_empty() => write!(f, "/{v}"),
            _ => Ok(()),
        }
    }
}

/// containerd's `platforms.Only(wanted).Match(available)`: true when an image built for
/// `available` is acceptable to a node of platform `wanted`. Both are normalized first.
///
/// `wanted` expands to containerd's `platformVector`: `amd64/vN` also accepts `amd64/vN-1`
/// .. `amd64` and then `386`; `arm/vN` accepts `arm/vN-1` .. `arm/v5`; `arm64/v8.x`
/// accepts `arm64/v8.x-1` .. `arm64`, `arm64/v9.x` accepts `arm64/v9.x-1` .. `arm64/v9`
/// and `arm64/v8.x+5` .. `arm64`, and `arm64` then accepts `arm/v8` .. `arm/v5`. A vector
/// entry matches when os, architecture and variant are equal.
///
/// `os.version` and `os.features` are ignored: containerd also matches Windows builds
/// (`os.version`) on Windows nodes, which is out of scope here.
pub fn matches(wanted: &Platform, available: &Platform) -> bool {
    let w = wanted.normalize();
    let a = available.normalize();
    w.os == a.os && vector_matches(&w.architecture, variant_of(&w), &a)
}

/// The subset of `wanted` (in order) that at least one of `available` satisfies.
pub fn satisfied<'a>(wanted: &'a [Platform], available: &[Platform]) -> Vec<&'a Platform> {
    // `matches` for every pair, with each platform normalized once rather than once per
    // pair: a registry's index may list tens of thousands of platforms.
    let available: Vec<Platform> = available.iter().map(Platform::normalize).collect();
    wanted
        .iter()
        .filter(|w| {
            let w = w.normalize();
            available
                .iter()
                .any(|a| w.os == a.os && vector_matches(&w.architecture, variant_of(&w), a))
        })
        .collect()
}

fn variant_of(p: &Platform) -> &str {
    p.variant.as_deref().unwrap_or_default()
}

/// Whether `a` (normalized, same OS) equals one entry of containerd's `platformVector` for
/// `arch/variant`. The version ranges are checked arithmetically rather than enumerated
/// as containerd does, so a variant such as `v999999999999` costs nothing.
fn vector_matches(arch: &str, variant: &str, a: &Platform) -> bool {
    // The vector's first entry: the platform itself (normalized by containerd's matcher).
    let own = Platform::new("", arch, Some(variant)).normalize();
    if own.architecture == a.architecture && own.variant == a.variant {
        return true;
    }
    match arch {
        "amd64" => {
            if let Some(n) = go_atoi(trim_v(variant)).filter(|&n| n > 1) {
                // amd64/v(n-1) .. amd64/v1; v1 normalizes to no variant.
                if a.architecture == "amd64"
                    && a.variant.as_deref().is_none_or(|v| in_v_range(v, 1, n - 1))
                {
                    return true;
                }
            }
            a.architecture == "386" && a.variant.is_none()
        }
        "arm" => go_atoi(trim_v(variant)).is_some_and(|n| {
            n > 5
                && a.architecture == "arm"
                && a.variant
                    .as_deref()
                    .is_some_and(|v| in_v_range(v, 5, n - 1))
        }),
        "arm64" => {
            let variant = if variant.is_empty() { "v8" } else { variant };
            if a.architecture == "arm64"
                && arm64_lower_variants(variant)
                    .iter()
                    .any(|v| Platform::new("", "arm64", Some(v)).normalize().variant == a.variant)
            {
                return true;
            }
            let arm_variant = if variant.starts_with("v8.") || variant.starts_with("v9.") {
                "v8"
            } else {
                variant
            };
            vector_matches("arm", arm_variant, a)
        }
        _ => false,
    }
}

/// The `arm64` variants containerd's `platformVector` lists after the platform itself
/// (at most ~110, since only a one-character minor is ever read).
fn arm64_lower_variants(variant: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (major_s, minor_s, has_minor) = match variant.split_once('.') {
        Some((major, minor)) => (major, minor, true),
        None => (variant, "", false),
    };
    let Some(mut major) = go_atoi(trim_v(major_s)).filter(|&m| m >= 8) else {
        return out;
    };
    let mut minor = 0;
    if variant.len() == 4 && has_minor {
        if let Some(m) = go_atoi(minor_s) {
            minor = m;
        }
    }
    let name = |major: i64, minor: i64| {
        if minor == 0 {
            format!("v{major}")
        } else {
            format!("v{major}.{minor}")
        }
    };
    if major == 9 {
        out.extend((0..minor).rev().map(|m| name(9, m)));
        // v9.0 diverged from v8.5: v9.x is compatible with v8.(x+5).
        minor += 5;
        major = 8;
        out.push(format!("v8.{minor}"));
    }
    out.extend((0..minor).rev().map(|m| name(major, m)));
    out
}

/// `v` followed by the canonical decimal `k` with `lo <= k <= hi`.
fn in_v_range(variant: &str, lo: i64, hi: i64) -> bool {
    variant
        .strip_prefix('v')
        .and_then(|d| d.parse::<i64>().ok())
        .is_some_and(|k| lo <= k && k <= hi && format!("v{k}") == variant)
}

fn trim_v(s: &str) -> &str {
    s.strip_prefix('v').unwrap_or(s)
}

/// Go's `strconv.Atoi` on a 64-bit platform (optional sign, decimal, no overflow).
fn go_atoi(s: &str) -> Option<i64> {
    s.parse::<i64>().ok()
}

/// OCI image index.
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker manifest list (schema 2).
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker image manifest, schema 2.
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// OCI image config blob.
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config blob.
pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

const MEDIA_DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const MEDIA_DOCKER_SCHEMA1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// What a manifest body is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestKind {
    /// Image index / manifest list: the platforms of its runnable entries (entries with a
    /// platform, minus attestations and `unknown` platforms), as written (not normalized),
    /// in document order, without duplicates.
    Index { platforms: Vec<Platform> },
    /// Single image manifest: digest of its config blob (fetch it to learn the platform)
    /// and the config media type (empty when the manifest omits it).
    Image {
        config_digest: String,
        config_media_type: String,
    },
}

/// What goes wrong reading platforms and manifests.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// A platform specifier that is not `os/arch[/variant]`.
    #[error("invalid platform {input:?}: {reason}")]
    InvalidPlatform { input: String, reason: String },
    /// The manifest body does not decode as a JSON object.
    #[error("manifest is not valid JSON: {0}")]
    ManifestJson(String),
    /// A Docker schema 1 manifest.
    #[error("schema 1 manifests are not supported by containerd 2.x: the image must be re-pushed with a current client")]
    Schema1,
    /// A media type that is neither an index nor an image manifest (e.g. an artifact).
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    /// The declared media type says index and the body is an image manifest, or vice versa.
    #[error("manifest media type mismatch: declared {declared:?} but the body is {found}")]
    MediaTypeMismatch { declared: String, found: String },
    /// No media type and neither a `manifests` array nor a `config` object.
    #[error("manifest is neither an image index nor an image manifest (no media type, and not exactly one of a \"manifests\" array or a \"config\" object)")]
    UnknownManifest,
    /// A recognized manifest with missing or malformed fields.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// The config blob does not decode as JSON with string fields.
    #[error("image config is not valid JSON: {0}")]
    ConfigJson(String),
    /// The config blob has no `os` or no `architecture`.
    #[error("image config has no os/architecture")]
    ConfigNoPlatform,
}

/// How many bytes of any input an error message repeats.
pub const MAX_ECHO: usize = 200;

fn clip_echo(s: &str) -> String {
    crate::text::truncate(s, MAX_ECHO)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MediaClass {
    Index,
    Image,
    Schema1,
    /// Missing or too generic to say (`application/json`, `text/plain`, ...).
    Generic,
    Other,
}

fn classify(media_type: &str) -> MediaClass {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    match essence.as_str() {
        MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST => MediaClass::Index,
        MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST => MediaClass::Image,
        MEDIA_DOCKER_SCHEMA1 | MEDIA_DOCKER_SCHEMA1_SIGNED => MediaClass::Schema1,
        ""
        | "application/json"
        | "text/plain"
        | "application/octet-stream"
        | "binary/octet-stream" => MediaClass::Generic,
        _ => MediaClass::Other,
    }
}

#[derive(Deserialize)]
struct RawIndex {
    #[serde(default)]
    manifests: Option<Vec<RawEntry>>,
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(default, rename = "mediaType")]
    media_type: Option<String>,
    #[serde(default)]
    platform: Option<RawPlatform>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawPlatform {
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default, rename = "os.version")]
    os_version: Option<String>,
}

impl RawPlatform {
    /// `None` unless both os and architecture are present and non-empty.
    fn into_platform(self) -> Option<Platform> {
        let os = self.os.filter(|s| !s.is_empty())?;
        let architecture = self.architecture.filter(|s| !s.is_empty())?;
        Some(Platform {
            os,
            architecture,
            variant: self.variant.filter(|s| !s.is_empty()),
            os_version: self.os_version.filter(|s| !s.is_empty()),
        })
    }
}

#[derive(Deserialize)]
struct RawImage {
    #[serde(default)]
    config: Option<RawDescriptor>,
}

#[derive(Deserialize)]
struct RawDescriptor {
    #[serde(default, rename = "mediaType")]
    media_type: Option<String>,
    #[serde(default)]
    digest: Option<String>,
}

/// Classifies a manifest body. The `Content-Type` header (parameters such as
/// `; charset=utf-8` ignored) decides when it names an index, image manifest or schema 1
/// manifest, as in containerd's resolver; when it is missing or generic
/// (`application/json`, `text/plain`, `application/octet-stream`) the body's `mediaType`
/// decides, and without one its shape (`manifests` array: index, `config` object: image).
/// Any other content type is refused, as containerd cannot unpack it.
///
/// Errors for bodies that are not JSON objects, schema 1 manifests (by media type,
/// `"schemaVersion": 1` or `fsLayers`), bodies that contradict the declared kind
/// (containerd's `validateMediaType`), unknown shapes and bad config digests.
pub fn parse_manifest(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<ManifestKind, PlatformError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| PlatformError::ManifestJson(clip_echo(&e.to_string())))?;
    let Value::Object(obj) = &doc else {
        return Err(PlatformError::ManifestJson(
            "expected a JSON object".to_owned(),
        ));
    };
    let body_media_type = match obj.get("mediaType") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(PlatformError::InvalidManifest(
                "\"mediaType\" is not a string".to_owned(),
            ))
        }
    };
    let header_class = content_type.map_or(MediaClass::Generic, classify);
    let body_class = classify(body_media_type);
    let schema_version_1 = obj.get("schemaVersion").and_then(Value::as_f64) == Some(1.0);
    if header_class == MediaClass::Schema1
        || body_class == MediaClass::Schema1
        || schema_version_1
        || obj.contains_key("fsLayers")
    {
        return Err(PlatformError::Schema1);
    }

    let has_manifests = obj.get("manifests").is_some_and(Value::is_array);
    let has_config = obj.get("config").is_some_and(Value::is_object);
    let (class, declared) = match (header_class, body_class) {
        (MediaClass::Index | MediaClass::Image, _) => {
            (header_class, content_type.unwrap_or_default())
        }
        (MediaClass::Other, _) => {
            return Err(PlatformError::UnsupportedMediaType(clip_echo(
                content_type.unwrap_or_default(),
            )))
        }
        (_, MediaClass::Index | MediaClass::Image) => (body_class, body_media_type),
        (_, MediaClass::Other) => {
            return Err(PlatformError::UnsupportedMediaType(clip_echo(
                body_media_type,
            )))
        }
        _ => match (has_manifests, has_config) {
            (true, false) => (MediaClass::Index, ""),
            (false, true) => (MediaClass::Image, ""),
            _ => return Err(PlatformError::UnknownManifest),
        },
    };

    // containerd's validateMediaType: the body must not be the other kind.
    let non_empty = |key: &str| match obj.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    let mismatch = |found: &str| PlatformError::MediaTypeMismatch {
        declared: clip_echo(declared),
        found: found.to_owned(),
    };
    if class == MediaClass::Image && (non_empty("manifests") || body_class == MediaClass::Index) {
        return Err(mismatch("an image index"));
    }
    if class == MediaClass::Index
        && (non_empty("config") || non_empty("layers") || body_class == MediaClass::Image)
    {
        return Err(mismatch("an image manifest"));
    }

    let invalid = |e: serde_json::Error| PlatformError::InvalidManifest(clip_echo(&e.to_string()));
    if class == MediaClass::Index {
        let index: RawIndex = serde_json::from_value(doc).map_err(invalid)?;
        return Ok(ManifestKind::Index {
            platforms: index_platforms(index.manifests.unwrap_or_default()),
        });
    }
    let image: RawImage = serde_json::from_value(doc).map_err(invalid)?;
    let config = image.config.ok_or_else(|| {
        PlatformError::InvalidManifest("image manifest has no \"config\" descriptor".to_owned())
    })?;
    let digest = config.digest.unwrap_or_default();
    validate_digest(&digest)?;
    Ok(ManifestKind::Image {
        config_digest: digest,
        config_media_type: config.media_type.unwrap_or_default(),
    })
}

/// Runnable entries' platforms, in order, without duplicates. Skipped: entries without a
/// platform (or without os/architecture), BuildKit attestations (`unknown/unknown`,
/// `vnd.docker.reference.type: attestation-manifest`) and entries whose declared media
/// type is neither a manifest nor an index (artifacts).
fn index_platforms(entries: Vec<RawEntry>) -> Vec<Platform> {
    let mut out: Vec<Platform> = Vec::new();
    // Linear in the number of entries: a registry controls this list (a 4 MB index holds
    // ~60k entries, and `out.contains` made that minutes of CPU).
    let mut seen: HashSet<Platform> = HashSet::new();
    for entry in entries {
        let runnable_type = entry
            .media_type
            .as_deref()
            .is_none_or(|mt| matches!(classify(mt), MediaClass::Index | MediaClass::Image));
        let attestation = entry.annotations.as_ref().is_some_and(|a| {
            a.get("vnd.docker.reference.type")
                .is_some_and(|t| t == "attestation-manifest")
        });
        if !runnable_type || attestation {
            continue;
        }
        let Some(platform) = entry.platform.and_then(RawPlatform::into_platform) else {
            continue;
        };
        if platform.os.eq_ignore_ascii_case("unknown")
            || platform.architecture.eq_ignore_ascii_case("unknown")
        {
            continue;
        }
        if seen.insert(platform.clone()) {
            out.push(platform);
        }
    }
    out
}

/// OCI digest grammar (`algorithm:encoded`), with the registered algorithms' exact
/// lengths. The digest goes into a registry URL, so nothing else may pass.
fn validate_digest(digest: &str) -> Result<(), PlatformError> {
    let bad = |why: &str| {
        Err(PlatformError::InvalidManifest(format!(
            "config digest {:?} {why}",
            clip_echo(digest)
        )))
    };
    if digest.is_empty() {
        return Err(PlatformError::InvalidManifest(
            "image manifest config has no digest".to_owned(),
        ));
    }
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return bad("is not algorithm:hex");
    };
    let algo_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    let encoded_ok = !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'_' || b == b'-');
    if !algo_ok || !encoded_ok || digest.len() > 1024 {
        return bad("is not a valid digest");
    }
    let hex_len = match algorithm {
        "sha256" => Some(64),
        "sha512" => Some(128),
        _ => None,
    };
    if let Some(len) = hex_len {
        let lower_hex = encoded
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if encoded.len() != len || !lower_hex {
            return bad(&format!("is not {len} lowercase hex digits"));
        }
    }
    Ok(())
}

/// The platform in an image config blob: top-level `os`, `architecture`, `variant` and
/// `os.version` (other fields are ignored). Missing or empty os/architecture is an error.
pub fn platform_from_config(body: &[u8]) -> Result<Platform, PlatformError> {
    let json_err = |e: serde_json::Error| PlatformError::ConfigJson(clip_echo(&e.to_string()));
    let doc: Value = serde_json::from_slice(body).map_err(json_err)?;
    if !doc.is_object() {
        // serde would also accept a JSON array as a struct.
        return Err(PlatformError::ConfigJson(
            "expected a JSON object".to_owned(),
        ));
    }
    let raw: RawPlatform = serde_json::from_value(doc).map_err(json_err)?;
    raw.into_platform().ok_or(PlatformError::ConfigNoPlatform)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    fn plat(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform::new(os, arch, variant)
    }

    #[rstest]
    #[case("linux/amd64", "linux", "amd64", None)]
    #[case("LINUX/AMD64", "linux", "amd64", None)]
    #[case("linux/arm64/v8", "linux", "arm64", Some("v8"))]
    #[case("linux/arm", "linux", "arm", None)]
    #[case("windows/amd64", "windows", "amd64", None)]
    #[case(" linux/arm/V7 ", "linux", "arm", Some("v7"))]
    #[case("linux/x86_64", "linux", "x86_64", None)]
    fn parse_ok(
        #[case] input: &str,
        #[case] os: &str,
        #[case] arch: &str,
        #[case] variant: Option<&str>,
    ) {
        assert_eq!(Platform::parse(input), Ok(plat(os, arch, variant)));
    }

    #[rstest]
    #[case("")]
    #[case("linux")]
    #[case("linux/")]
    #[case("/amd64")]
    #[case("a/b/c/d")]
    #[case("linux//v7")]
    #[case("linux/*")]
    #[case("windows(10.0.17763)/amd64")]
    #[case("linux/amd64/v8 x")]
    #[case("línux/amd64")]
    fn parse_err(#[case] input: &str) {
        let err = Platform::parse(input).unwrap_err();
        assert!(
            matches!(err, PlatformError::InvalidPlatform { .. }),
            "{err}"
        );
        assert!(err.to_string().starts_with("invalid platform \""), "{err}");
    }

    #[test]
    fn parse_error_message() {
        assert_eq!(
            Platform::parse("linux").unwrap_err().to_string(),
            "invalid platform \"linux\": expected os/arch[/variant]"
        );
    }

    #[test]
    fn errors_echo_at_most_200_chars() {
        let long = "x".repeat(10_000);
        let msg = Platform::parse(&long).unwrap_err().to_string();
        assert!(msg.len() < 300, "{}", msg.len());
        let ct = format!("application/vnd.{long}");
        let msg = parse_manifest(Some(&ct), br#"{"schemaVersion":2}"#)
            .unwrap_err()
            .to_string();
        assert!(msg.len() < 300, "{}", msg.len());
        let body = format!(r#"{{"config": "{long}"}}"#);
        let msg = parse_manifest(Some(MEDIA_OCI_MANIFEST), body.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(msg.len() < 300, "{msg}");
    }

    #[rstest]
    #[case(plat("linux", "aarch64", None), plat("linux", "arm64", None))]
    #[case(plat("linux", "x86_64", None), plat("linux", "amd64", None))]
    #[case(plat("linux", "x86-64", None), plat("linux", "amd64", None))]
    #[case(plat("linux", "i386", Some("v1")), plat("linux", "386", None))]
    #[case(plat("linux", "armhf", None), plat("linux", "arm", Some("v7")))]
    #[case(plat("linux", "armel", Some("v7")), plat("linux", "arm", Some("v6")))]
    #[case(plat("linux", "arm", None), plat("linux", "arm", Some("v7")))]
    #[case(plat("linux", "arm", Some("7")), plat("linux", "arm", Some("v7")))]
    #[case(plat("linux", "arm", Some("5")), plat("linux", "arm", Some("v5")))]
    #[case(plat("linux", "arm", Some("v6")), plat("linux", "arm", Some("v6")))]
    #[case(plat("linux", "arm64", Some("v8")), plat("linux", "arm64", None))]
    #[case(plat("linux", "arm64", Some("8")), plat("linux", "arm64", None))]
    #[case(
        plat("linux", "arm64", Some("v8.2")),
        plat("linux", "arm64", Some("v8.2"))
    )]
    #[case(plat("linux", "amd64", Some("v1")), plat("linux", "amd64", None))]
    #[case(plat("linux", "AMD64", Some("V3")), plat("linux", "amd64", Some("v3")))]
    #[case(plat("MacOS", "arm64", None), plat("darwin", "arm64", None))]
    #[case(plat("linux", "riscv64", None), plat("linux", "riscv64", None))]
    fn normalize(#[case] input: Platform, #[case] expected: Platform) {
        assert_eq!(input.normalize(), expected);
        // Idempotent.
        assert_eq!(expected.normalize(), expected);
    }

    #[test]
    fn normalize_keeps_os_version() {
        let mut win = plat("Windows", "AMD64", None);
        win.os_version = Some("10.0.20348.2113".to_owned());
        assert_eq!(
            win.normalize().os_version.as_deref(),
            Some("10.0.20348.2113")
        );
    }

    #[rstest]
    #[case("linux/amd64", "linux/amd64", true)]
    #[case("linux/amd64", "linux/386", true)]
    #[case("linux/amd64", "linux/i386", true)]
    #[case("linux/amd64", "linux/arm64", false)]
    #[case("linux/arm64", "linux/arm64", true)]
    #[case("linux/arm64", "linux/arm64/v8", true)]
    #[case("linux/arm64", "linux/aarch64", true)]
    #[case("linux/arm64", "linux/arm/v8", true)]
    #[case("linux/arm64", "linux/arm/v7", true)]
    #[case("linux/arm64", "linux/arm", true)]
    #[case("linux/arm64", "linux/arm/v5", true)]
    #[case("linux/arm64", "linux/amd64", false)]
    #[case("linux/arm64", "linux/arm64/v8.1", false)]
    #[case("linux/arm64/v8.2", "linux/arm64/v8.1", true)]
    #[case("linux/arm64/v8.2", "linux/arm64", true)]
    #[case("linux/arm64/v8.2", "linux/arm/v7", true)]
    #[case("linux/arm64/v9", "linux/arm64/v8.5", true)]
    #[case("linux/arm64/v9", "linux/arm64/v8.6", false)]
    #[case("linux/arm64/v9", "linux/arm/v9", true)]
    #[case("linux/arm64/v9.1", "linux/arm64/v9", true)]
    #[case("linux/arm/v7", "linux/arm/v7", true)]
    #[case("linux/arm/v7", "linux/arm", true)]
    #[case("linux/arm/v7", "linux/arm/v6", true)]
    #[case("linux/arm/v7", "linux/armel", true)]
    #[case("linux/arm/v7", "linux/arm/v8", false)]
    #[case("linux/arm/v7", "linux/arm64", false)]
    #[case("linux/arm/v6", "linux/arm/v7", false)]
    #[case("linux/arm", "linux/arm/v5", true)]
    #[case("linux/amd64", "windows/amd64", false)]
    #[case("windows/amd64", "linux/amd64", false)]
    #[case("windows/amd64", "windows/amd64", true)]
    #[case("linux/amd64/v3", "linux/amd64/v2", true)]
    #[case("linux/amd64/v3", "linux/amd64", true)]
    #[case("linux/amd64/v3", "linux/amd64/v1", true)]
    #[case("linux/amd64/v3", "linux/386", true)]
    #[case("linux/amd64/v3", "linux/amd64/v4", false)]
    #[case("linux/amd64", "linux/amd64/v2", false)]
    #[case("linux/x86_64", "linux/amd64/v1", true)]
    #[case("linux/amd64/v3", "linux/amd64/v02", false)]
    #[case("linux/amd64/v9223372036854775807", "linux/amd64/v4", true)]
    #[case("linux/arm/v9223372036854775807", "linux/arm/v5", true)]
    #[case("linux/arm64/v99999999999999999999", "linux/arm/v7", false)]
    #[case("linux/s390x", "linux/s390x", true)]
    #[case("linux/s390x", "linux/amd64", false)]
    fn matching(#[case] wanted: &str, #[case] available: &str, #[case] expected: bool) {
        assert_eq!(matches(&p(wanted), &p(available)), expected);
    }

    #[test]
    fn matching_ignores_os_version() {
        let mut wanted = p("windows/amd64");
        wanted.os_version = Some("10.0.17763.1".to_owned());
        let mut available = p("windows/amd64");
        available.os_version = Some("10.0.20348.2113".to_owned());
        assert!(matches(&wanted, &available));
    }

    #[test]
    fn satisfied_subset_in_order() {
        let wanted = [
            p("linux/amd64"),
            p("linux/arm64"),
            p("linux/arm/v6"),
            p("windows/amd64"),
        ];
        let available = [p("linux/arm/v7"), p("linux/386")];
        assert_eq!(satisfied(&wanted, &available), vec![&wanted[0], &wanted[1]]);
        assert!(satisfied(&wanted, &[]).is_empty());
        assert!(satisfied(&[], &available).is_empty());
    }

    #[test]
    fn display() {
        assert_eq!(p("linux/arm64/v8").to_string(), "linux/arm64/v8");
        assert_eq!(p("linux/amd64").to_string(), "linux/amd64");
        let mut win = p("windows/amd64");
        win.os_version = Some("10.0.20348.2113".to_owned());
        assert_eq!(win.to_string(), "windows/amd64");
    }

    #[test]
    fn serde_roundtrip_uses_oci_field_names() {
        let mut win = p("windows/amd64");
        win.os_version = Some("10.0.20348.2113".to_owned());
        let json = serde_json::to_string(&win).unwrap();
        assert_eq!(
            json,
            r#"{"os":"windows","architecture":"amd64","os.version":"10.0.20348.2113"}"#
        );
        assert_eq!(serde_json::from_str::<Platform>(&json).unwrap(), win);
    }

    const OCI_INDEX: &str = r#"{
      "schemaVersion": 2,
      "mediaType": "application/vnd.oci.image.index.v1+json",
      "manifests": [
        {
          "mediaType": "application/vnd.oci.image.manifest.v1+json",
          "digest": "sha256:0b7a4a4d1c7d3e2c9a3b1b1f86b6b7c4f2b5a9e1f0b1f1a2c3d4e5f60718293a",
          "size": 1020,
          "platform": { "architecture": "amd64", "os": "linux" }
        },
        {
          "mediaType": "application/vnd.oci.image.manifest.v1+json",
          "digest": "sha256:1c8b5b5e2d8e4f3d0b4c2c2097c7c8d5f3c6b0f2f1c2f2b3d4e5f60718293a4b",
          "size": 1020,
          "platform": { "architecture": "arm64", "os": "linux", "variant": "v8" }
        },
        {
          "mediaType": "application/vnd.oci.image.manifest.v1+json",
          "digest": "sha256:2d9c6c6f3e9f5a4e1c5d3d31a8d8d9e6a4d7c1a3a2d3a3c4e5f60718293a4b5c",
          "size": 839,
          "annotations": {
            "vnd.docker.reference.digest": "sha256:0b7a4a4d1c7d3e2c9a3b1b1f86b6b7c4f2b5a9e1f0b1f1a2c3d4e5f60718293a",
            "vnd.docker.reference.type": "attestation-manifest"
          },
          "platform": { "architecture": "unknown", "os": "unknown" }
        }
      ]
    }"#;

    const DOCKER_LIST: &str = r#"{
      "schemaVersion": 2,
      "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
      "manifests": [
        {
          "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
          "size": 527,
          "digest": "sha256:3e0f7e8e4b9e6b5f2d6e4e42b9e9eaf7b5e8d2b4b3e4b4d5e6f70718293a4b5c",
          "platform": { "architecture": "amd64", "os": "linux" }
        },
        {
          "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
          "size": 527,
          "digest": "sha256:4f1f8f9f5cae7c6a3e7f5f53cafafb08c6f9e3c5c4f5c5e6f70718293a4b5c6d",
          "platform": { "architecture": "arm", "os": "linux", "variant": "v7" }
        },
        {
          "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
          "size": 527,
          "digest": "sha256:5a2a9a0a6dbf8d7b4f8a6a64dbabac19d7a0f4d6d5a6d6f70718293a4b5c6d7e",
          "platform": { "architecture": "amd64", "os": "linux" }
        },
        {
          "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
          "size": 1125,
          "digest": "sha256:6b3bab1b7ec09e8c5a9b7b75ecbcbd2ae8b1a5e7e6b7e7a80718293a4b5c6d7e",
          "platform": {
            "architecture": "amd64",
            "os": "windows",
            "os.version": "10.0.20348.2113"
          }
        }
      ]
    }"#;

    const OCI_MANIFEST: &str = r#"{
      "schemaVersion": 2,
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7",
        "size": 7023
      },
      "layers": [
        {
          "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
          "digest": "sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0",
          "size": 32654
        }
      ]
    }"#;

    const DOCKER_MANIFEST_NO_MEDIA_TYPE: &str = r#"{
      "schemaVersion": 2,
      "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": 1469,
        "digest": "sha256:d2c94e258dcb3c5ac2798d32e1249e42ef01cba4841c2234249495f87264ac5a"
      },
      "layers": [
        {
          "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
          "size": 2479,
          "digest": "sha256:c1ec31eb59444d78df06a974d155e597c894ab4cda84f08294145e845394988e"
        }
      ]
    }"#;

    const SCHEMA1: &str = r#"{
      "schemaVersion": 1,
      "name": "library/hello-world",
      "tag": "latest",
      "architecture": "amd64",
      "fsLayers": [
        { "blobSum": "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4" }
      ],
      "history": [],
      "signatures": []
    }"#;

    fn index(platforms: &[&str]) -> ManifestKind {
        ManifestKind::Index {
            platforms: platforms.iter().map(|s| p(s)).collect(),
        }
    }

    #[rstest]
    #[case::oci_index(Some(MEDIA_OCI_INDEX), OCI_INDEX, index(&["linux/amd64", "linux/arm64/v8"]))]
    #[case::oci_index_no_content_type(None, OCI_INDEX, index(&["linux/amd64", "linux/arm64/v8"]))]
    #[case::oci_index_params(
        Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
        OCI_INDEX,
        index(&["linux/amd64", "linux/arm64/v8"])
    )]
    #[case::oci_index_as_json(Some("application/json"), OCI_INDEX, index(&["linux/amd64", "linux/arm64/v8"]))]
    #[case::oci_manifest(
        Some(MEDIA_OCI_MANIFEST),
        OCI_MANIFEST,
        ManifestKind::Image {
            config_digest: "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7".into(),
            config_media_type: MEDIA_OCI_CONFIG.into(),
        }
    )]
    #[case::docker_manifest(
        Some(MEDIA_DOCKER_MANIFEST),
        DOCKER_MANIFEST_NO_MEDIA_TYPE,
        ManifestKind::Image {
            config_digest: "sha256:d2c94e258dcb3c5ac2798d32e1249e42ef01cba4841c2234249495f87264ac5a".into(),
            config_media_type: MEDIA_DOCKER_CONFIG.into(),
        }
    )]
    #[case::docker_manifest_by_shape(
        None,
        DOCKER_MANIFEST_NO_MEDIA_TYPE,
        ManifestKind::Image {
            config_digest: "sha256:d2c94e258dcb3c5ac2798d32e1249e42ef01cba4841c2234249495f87264ac5a".into(),
            config_media_type: MEDIA_DOCKER_CONFIG.into(),
        }
    )]
    #[case::empty_index(Some(MEDIA_OCI_INDEX), r#"{"schemaVersion":2,"manifests":[]}"#, index(&[]))]
    #[case::index_by_shape(
        Some(""),
        r#"{"manifests":[{"digest":"sha256:x","platform":{"os":"linux","architecture":"s390x"}},{"digest":"sha256:y"}]}"#,
        index(&["linux/s390x"])
    )]
    #[case::artifact_entries_skipped(
        Some(MEDIA_OCI_INDEX),
        r#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a","size":1,
             "platform":{"os":"linux","architecture":"ppc64le"}},
            {"mediaType":"application/vnd.dev.cosign.artifact.sig.v1+json","digest":"sha256:b","size":1,
             "platform":{"os":"linux","architecture":"amd64"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:c","size":1,
             "platform":{"os":"linux"}}
        ]}"#,
        index(&["linux/ppc64le"])
    )]
    fn manifest_ok(
        #[case] content_type: Option<&str>,
        #[case] body: &str,
        #[case] expected: ManifestKind,
    ) {
        assert_eq!(parse_manifest(content_type, body.as_bytes()), Ok(expected));
    }

    #[test]
    fn docker_list_dedups_and_keeps_os_version() {
        let ManifestKind::Index { platforms } =
            parse_manifest(Some(MEDIA_DOCKER_LIST), DOCKER_LIST.as_bytes()).unwrap()
        else {
            panic!("expected an index");
        };
        let mut windows = p("windows/amd64");
        windows.os_version = Some("10.0.20348.2113".to_owned());
        assert_eq!(
            platforms,
            vec![p("linux/amd64"), p("linux/arm/v7"), windows]
        );
    }

    #[test]
    fn huge_index_is_deduplicated_in_linear_time() {
        // Found while fuzzing (tests/fuzz): 50k distinct platforms took minutes.
        let entries: Vec<String> = (0..60_000)
            .map(|i| {
                format!(
                    r#"{{"platform":{{"os":"linux","architecture":"a{}"}}}}"#,
                    i % 50_000
                )
            })
            .collect();
        let body = format!(r#"{{"manifests":[{}]}}"#, entries.join(","));
        let ManifestKind::Index { platforms } = parse_manifest(None, body.as_bytes()).unwrap()
        else {
            panic!("expected an index");
        };
        assert_eq!(platforms.len(), 50_000);
        assert_eq!(platforms[49_999], p("linux/a49999"));
    }

    #[rstest]
    #[case::schema1_body(None, SCHEMA1)]
    #[case::schema1_body_v2_header(Some(MEDIA_DOCKER_MANIFEST), SCHEMA1)]
    #[case::schema1_signed_header(
        Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
        r#"{"schemaVersion":2}"#
    )]
    #[case::schema1_header(Some(MEDIA_DOCKER_SCHEMA1), SCHEMA1)]
    #[case::schema1_text_plain(Some("text/plain"), SCHEMA1)]
    fn schema1_refused(#[case] content_type: Option<&str>, #[case] body: &str) {
        let err = parse_manifest(content_type, body.as_bytes()).unwrap_err();
        assert_eq!(err, PlatformError::Schema1);
        assert!(err
            .to_string()
            .starts_with("schema 1 manifests are not supported by containerd 2.x"));
    }

    #[rstest]
    #[case::garbage(
        Some(MEDIA_OCI_INDEX),
        "<html>502 Bad Gateway</html>",
        "manifest is not valid JSON"
    )]
    #[case::empty(None, "", "manifest is not valid JSON")]
    #[case::not_object(None, "[1,2]", "manifest is not valid JSON")]
    #[case::unknown_shape(None, r#"{"schemaVersion":2}"#, "manifest is neither")]
    #[case::both_shapes(None, r#"{"manifests":[],"config":{}}"#, "manifest is neither")]
    #[case::artifact_header(
        Some("application/vnd.oci.artifact.manifest.v1+json"),
        r#"{"schemaVersion":2}"#,
        "unsupported manifest media type \"application/vnd.oci.artifact.manifest.v1+json\""
    )]
    #[case::artifact_body(
        None,
        r#"{"mediaType":"application/vnd.cncf.helm.chart.v1+json"}"#,
        "unsupported manifest media type"
    )]
    #[case::index_header_image_body(
        Some(MEDIA_OCI_INDEX),
        OCI_MANIFEST,
        "manifest media type mismatch"
    )]
    #[case::image_header_index_body(
        Some(MEDIA_DOCKER_MANIFEST),
        OCI_INDEX,
        "manifest media type mismatch"
    )]
    #[case::no_config(
        Some(MEDIA_OCI_MANIFEST),
        r#"{"schemaVersion":2,"layers":[]}"#,
        "invalid manifest"
    )]
    #[case::no_digest(
        Some(MEDIA_OCI_MANIFEST),
        r#"{"config":{"mediaType":"x"}}"#,
        "invalid manifest"
    )]
    #[case::path_digest(
        Some(MEDIA_OCI_MANIFEST),
        r#"{"config":{"digest":"sha256:../../../v2/_catalog"}}"#,
        "invalid manifest"
    )]
    #[case::short_digest(
        Some(MEDIA_OCI_MANIFEST),
        r#"{"config":{"digest":"sha256:abc"}}"#,
        "invalid manifest"
    )]
    #[case::wrong_types(
        Some(MEDIA_OCI_INDEX),
        r#"{"manifests":[{"platform":"linux/amd64"}]}"#,
        "invalid manifest"
    )]
    #[case::media_type_number(None, r#"{"mediaType":7}"#, "invalid manifest")]
    fn manifest_err(#[case] content_type: Option<&str>, #[case] body: &str, #[case] prefix: &str) {
        let err = parse_manifest(content_type, body.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(prefix), "{err}");
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let err = parse_manifest(None, b"{\"mediaType\": \"\xff\"}").unwrap_err();
        assert!(matches!(err, PlatformError::ManifestJson(_)), "{err}");
        let err = platform_from_config(b"{\"os\": \"\xff\"}").unwrap_err();
        assert!(matches!(err, PlatformError::ConfigJson(_)), "{err}");
    }

    #[test]
    fn every_truncation_of_the_fixtures_is_handled() {
        for doc in [
            OCI_INDEX,
            DOCKER_LIST,
            OCI_MANIFEST,
            DOCKER_MANIFEST_NO_MEDIA_TYPE,
            SCHEMA1,
        ] {
            for end in 0..doc.len() {
                let _ = parse_manifest(None, &doc.as_bytes()[..end]);
                let _ = parse_manifest(Some(MEDIA_OCI_INDEX), &doc.as_bytes()[..end]);
                let _ = platform_from_config(&doc.as_bytes()[..end]);
            }
        }
    }

    #[test]
    fn deeply_nested_body_is_an_error_not_a_crash() {
        let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_manifest(None, body.as_bytes()).is_err());
        assert!(platform_from_config(body.as_bytes()).is_err());
    }

    #[rstest]
    #[case::plain(
        r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin"]},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        plat("linux", "amd64", None)
    )]
    #[case::variant(
        r#"{"architecture":"arm","os":"linux","variant":"v7","created":"2024-01-01T00:00:00Z"}"#,
        plat("linux", "arm", Some("v7"))
    )]
    #[case::os_version(
        r#"{"architecture":"amd64","os":"windows","os.version":"10.0.17763.5329","variant":""}"#,
        Platform { os_version: Some("10.0.17763.5329".into()), ..plat("windows", "amd64", None) }
    )]
    fn config_ok(#[case] body: &str, #[case] expected: Platform) {
        assert_eq!(platform_from_config(body.as_bytes()), Ok(expected));
    }

    #[rstest]
    #[case::no_architecture(r#"{"os":"linux","config":{}}"#, "image config has no os/architecture")]
    #[case::empty_os(
        r#"{"os":"","architecture":"amd64"}"#,
        "image config has no os/architecture"
    )]
    #[case::not_json("\u{0}", "image config is not valid JSON")]
    #[case::wrong_type(
        r#"{"os":"linux","architecture":64}"#,
        "image config is not valid JSON"
    )]
    #[case::array("[]", "image config is not valid JSON")]
    fn config_err(#[case] body: &str, #[case] expected: &str) {
        let err = platform_from_config(body.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(expected), "{err}");
    }
}
