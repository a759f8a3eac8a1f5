//! OCI platforms as containerd sees them: parsing `os/arch[/variant]` specifiers,
//! containerd's normalization (`platforms.Normalize`) and default matcher
//! (`platforms.Only`). Which platforms an image offers is read in [`super::manifest`].
//!
//! Pure code over strings: no I/O. Nothing here panics on any input, and error messages
//! echo at most [`MAX_ECHO`] bytes of what they were given.

use std::fmt;

/// Node label holding the operating system (also what `nodeSelector` and node affinity
/// constrain).
pub const LABEL_OS: &str = "kubernetes.io/os";
/// Node label holding the CPU architecture.
pub const LABEL_ARCH: &str = "kubernetes.io/arch";
/// Deprecated labels still set by some old clusters, read like the GA ones.
pub const LABEL_OS_BETA: &str = "beta.kubernetes.io/os";
pub const LABEL_ARCH_BETA: &str = "beta.kubernetes.io/arch";

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

/// The entry of `available` a node of platform `wanted` pulls: containerd's ordered
/// matcher (`platforms.Only(wanted)`, whose `Less` prefers the platform vector's earlier
/// entries) sorts the matching entries stably and takes the first. `None` when none
/// matches.
pub fn best_match(wanted: &Platform, available: &[Platform]) -> Option<usize> {
    let w = wanted.normalize();
    available
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let a = a.normalize();
            if a.os != w.os {
                return None;
            }
            vector_rank(&w.architecture, variant_of(&w), &a).map(|rank| (rank, i))
        })
        .min()
        .map(|(_, i)| i)
}

/// The position of `a` (normalized, same OS) in containerd's `platformVector` for
/// `arch/variant`, computed like [`vector_matches`] decides membership.
fn vector_rank(arch: &str, variant: &str, a: &Platform) -> Option<u64> {
    let own = Platform::new("", arch, Some(variant)).normalize();
    if own.architecture == a.architecture && own.variant == a.variant {
        return Some(0);
    }
    let v_number = |v: &str| v.strip_prefix('v').and_then(|d| d.parse::<i64>().ok());
    match arch {
        "amd64" => {
            let n = go_atoi(trim_v(variant)).filter(|&n| n > 1);
            if let Some(n) = n {
                if a.architecture == "amd64" {
                    let k = match a.variant.as_deref() {
                        None => Some(1),
                        Some(v) if in_v_range(v, 1, n - 1) => v_number(v),
                        Some(_) => None,
                    };
                    if let Some(k) = k {
                        return u64::try_from(n - k).ok();
                    }
                }
            }
            (a.architecture == "386" && a.variant.is_none())
                .then(|| u64::try_from(n.unwrap_or(1)).unwrap_or(u64::MAX))
        }
        "arm" => {
            let n = go_atoi(trim_v(variant)).filter(|&n| n > 5)?;
            let v = a.variant.as_deref().filter(|v| in_v_range(v, 5, n - 1))?;
            (a.architecture == "arm")
                .then(|| u64::try_from(n - v_number(v)?).ok())
                .flatten()
        }
        "arm64" => {
            let variant = if variant.is_empty() { "v8" } else { variant };
            let lower = arm64_lower_variants(variant);
            if a.architecture == "arm64" {
                if let Some(at) = lower.iter().position(|v| {
                    Platform::new("", "arm64", Some(v)).normalize().variant == a.variant
                }) {
                    return Some(at as u64 + 1);
                }
            }
            let arm_variant = if variant.starts_with("v8.") || variant.starts_with("v9.") {
                "v8"
            } else {
                variant
            };
            vector_rank("arm", arm_variant, a).map(|r| r + lower.len() as u64 + 1)
        }
        _ => None,
    }
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

pub(crate) fn clip_echo(s: &str) -> String {
    crate::text::truncate(s, MAX_ECHO)
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

    #[test]
    fn best_match_prefers_the_platform_vector_order() {
        let p = |s: &str| Platform::parse(s).unwrap();
        let available = [
            p("linux/arm/v6"),
            p("linux/arm/v7"),
            p("linux/386"),
            p("linux/amd64"),
        ];
        assert_eq!(
            best_match(&p("linux/arm64"), &available),
            Some(1),
            "arm/v7 before arm/v6"
        );
        assert_eq!(
            best_match(&p("linux/amd64"), &available),
            Some(3),
            "exact before 386"
        );
        assert_eq!(best_match(&p("linux/amd64/v3"), &available), Some(3));
        assert_eq!(
            best_match(&p("linux/amd64/v3"), &available[..3]),
            Some(2),
            "386 last"
        );
        assert_eq!(best_match(&p("windows/amd64"), &available), None);
        let twice = [p("linux/amd64"), p("linux/amd64")];
        assert_eq!(
            best_match(&p("linux/amd64"), &twice),
            Some(0),
            "document order among equals"
        );
    }

    #[test]
    fn best_match_agrees_with_matches() {
        let all = [
            "linux/amd64",
            "linux/amd64/v2",
            "linux/amd64/v3",
            "linux/386",
            "linux/arm64",
            "linux/arm64/v8.2",
            "linux/arm64/v9.1",
            "linux/arm/v5",
            "linux/arm/v6",
            "linux/arm/v7",
            "linux/arm/v8",
            "linux/riscv64",
            "windows/amd64",
        ];
        let platforms: Vec<Platform> = all.iter().map(|s| Platform::parse(s).unwrap()).collect();
        for w in &platforms {
            for a in &platforms {
                assert_eq!(
                    best_match(w, std::slice::from_ref(a)).is_some(),
                    matches(w, a),
                    "{w} / {a}"
                );
            }
        }
    }
}
