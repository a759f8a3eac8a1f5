//! OCI platforms as containerd sees them: the specifier syntax of containerd/platforms'
//! `Parse` (`os[(version[+feature…])][/arch[/variant]]`, `FormatAll`), its `Normalize`, and
//! the node labels platforms are read from. Which platforms match which — `Only`,
//! `OnlyStrict`, Windows `os.version`, by containerd version — is [`super::platform_match`];
//! which platforms an image offers is read in [`super::manifest`].
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
/// The Windows build of a Windows node (`10.0.20348`), set by the kubelet: the
/// `os.version` containerd on that node wants.
pub const LABEL_WINDOWS_BUILD: &str = "node.kubernetes.io/windows-build";

/// An OCI platform (`os`, `architecture`, `variant`, `os.version`, `os.features`), as found
/// in image index entries and image config blobs.
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
    /// OS features, e.g. `win32k` (Windows), `gpu`.
    #[serde(default, rename = "os.features", skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
}

/// Known operating systems (containerd `isKnownOS`).
const KNOWN_OS: [&str; 17] = [
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "windows",
    "zos",
];

/// Known architectures (containerd `isKnownArch`).
const KNOWN_ARCH: [&str; 24] = [
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

/// The containerd/platforms release whose rules apply (they differ on arm64 variants, on
/// Windows builds and on OS features).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlatformRules {
    /// v0.2.1 (containerd 1.7): arm64 variants other than `8`/`v8` are kept as written
    /// (`arm64/v9` then also runs `arm/v9`); no Windows build floor beyond WS2022.
    V0_2,
    /// v1.0.0-rc.0 (containerd 2.0): arm64 minor variants computed (`v9.x` runs
    /// `v8.(x+5)`, at most `v8.9`).
    Rc0,
    /// v1.0.0-rc.1 (containerd 2.1): the arm64 variant table; a variant it does not know
    /// (`v8.10`) runs nothing.
    Rc1,
    /// v1.0.0-rc.2 (containerd 2.2): Windows Server 2025 joins the build floors.
    Rc2,
    /// v1.0.0-rc.4 (containerd 2.3 and later): OS features must be a subset of the node's;
    /// `win32k` is not a feature that counts on Windows.
    Rc4,
}

impl Platform {
    /// A platform without OS version. An empty variant is stored as `None`. Not normalized.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.filter(|v| !v.is_empty()).map(str::to_owned),
            os_version: None,
            os_features: Vec::new(),
        }
    }

    /// A node's platform as a user writes it (`--platform`, node labels): containerd's
    /// [`Platform::containerd_parse`] of `os[(version[+feature…])]/arch[/variant]`, with the
    /// operating system required (a webhook has no host of its own to fill it from).
    /// Surrounding whitespace is ignored. Normalize the result before matching.
    pub fn parse(s: &str) -> Result<Platform, PlatformError> {
        let trimmed = s.trim();
        if !trimmed.contains('/') {
            return Err(PlatformError::InvalidPlatform {
                input: clip_echo(s),
                reason: "expected os/arch[/variant]".to_owned(),
            });
        }
        // Any host will do: with an os and an arch given, none of it is used.
        Self::containerd_parse(trimmed, &Platform::new("linux", "amd64", None)).map_err(|e| match e
        {
            PlatformError::InvalidPlatform { reason, .. } => PlatformError::InvalidPlatform {
                input: clip_echo(s),
                reason,
            },
            other => other,
        })
    }

    /// containerd/platforms `Parse(specifier)`, with `host` standing for the machine it runs
    /// on (`runtime.GOOS`/`GOARCH` and the CPU variant): `linux` alone is the host's
    /// architecture on linux, `arm64` alone is linux/arm64 on a linux host, `linux/arm` has
    /// no variant (`arm/v7` neither), `linux/arm64/v8` keeps `v8`. `os.version` and
    /// `os.features` come in parentheses after the OS, `%`-encoded. Wildcards and more than
    /// three parts are refused.
    pub fn containerd_parse(specifier: &str, host: &Platform) -> Result<Platform, PlatformError> {
        let invalid = |reason: String| PlatformError::InvalidPlatform {
            input: clip_echo(specifier),
            reason,
        };
        if specifier.contains('*') {
            return Err(invalid("wildcards not yet supported".into()));
        }
        let parts: Vec<&str> = specifier.splitn(4, '/').collect();
        let (os_name, os_version, os_features) = parse_os_part(parts[0]).map_err(invalid)?;
        for part in &parts[1..] {
            if part.is_empty()
                || !part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            {
                return Err(invalid(format!(
                    "{:?}: the architecture and variant may only contain letters, digits, '_', '.' and '-'",
                    clip_echo(part)
                )));
            }
        }
        let mut p = Platform {
            os: normalize_os(&os_name, &host.os),
            architecture: String::new(),
            variant: None,
            os_version,
            os_features,
        };
        let arm_v7_to_none = |(arch, variant): (String, String)| {
            if arch == "arm" && variant == "v7" {
                (arch, String::new())
            } else {
                (arch, variant)
            }
        };
        let (arch, variant) = match parts.len() {
            1 => {
                if KNOWN_OS.contains(&p.os.as_str()) {
                    let variant = match host.variant.as_deref() {
                        Some(v) if host.architecture == "arm" && v != "v7" => v.to_owned(),
                        _ => String::new(),
                    };
                    (host.architecture.clone(), variant)
                } else {
                    let (arch, variant) =
                        arm_v7_to_none(normalize_arch(parts[0], "", PlatformRules::Rc4));
                    if !KNOWN_ARCH.contains(&arch.as_str()) {
                        return Err(invalid("unknown operating system or architecture".into()));
                    }
                    p.os.clone_from(&host.os);
                    (arch, variant)
                }
            }
            2 => arm_v7_to_none(normalize_arch(parts[1], "", PlatformRules::Rc4)),
            3 => {
                let (arch, variant) = normalize_arch(parts[1], parts[2], PlatformRules::Rc4);
                if arch == "arm64" && variant.is_empty() {
                    (arch, "v8".to_owned())
                } else {
                    (arch, variant)
                }
            }
            _ => return Err(invalid("cannot parse platform specifier".into())),
        };
        p.architecture = arch;
        p.variant = (!variant.is_empty()).then_some(variant);
        Ok(p)
    }

    /// containerd's `platforms.Normalize` (`normalizeOS` + `normalizeArch` in
    /// `database.go`, as of containerd/platforms v1.0.0-rc.4): lowercases; `macos` ->
    /// `darwin`; `i386` -> `386` (variant dropped); `x86_64`/`x86-64` -> `amd64` (variant
    /// `v1` dropped); `aarch64` -> `arm64` (`8`/`v8`/`v8.0` dropped, `9`/`9.0`/`v9.0` ->
    /// `v9`); `armhf` -> `arm/v7`; `armel` -> `arm/v6`; `arm` without variant or with `7` ->
    /// `arm/v7`, with `5`/`6`/`8` -> `v5`/`v6`/`v8`; OS features sorted and deduplicated.
    /// `os.version` is kept.
    pub fn normalize(&self) -> Platform {
        self.normalize_as(PlatformRules::Rc4)
    }

    /// `Normalize` as the containerd/platforms release of `rules` does it.
    pub fn normalize_as(&self, rules: PlatformRules) -> Platform {
        let (architecture, variant) = normalize_arch(
            &self.architecture,
            self.variant.as_deref().unwrap_or_default(),
            rules,
        );
        let mut os_features = self.os_features.clone();
        os_features.sort();
        os_features.dedup();
        Platform {
            os: normalize_os(&self.os, ""),
            architecture,
            variant: (!variant.is_empty()).then_some(variant),
            os_version: self.os_version.clone(),
            os_features,
        }
    }

    /// containerd's `FormatAll`: `os[(version[+features])]/arch[/variant]`, the version and
    /// features `%`-encoded, features sorted, empty and repeated ones left out.
    pub fn format_all(&self) -> String {
        if self.os.is_empty() {
            return "unknown".into();
        }
        let mut features: Vec<&str> = self
            .os_features
            .iter()
            .map(String::as_str)
            .filter(|f| !f.is_empty())
            .collect();
        features.sort_unstable();
        features.dedup();
        let version = encode_os_option(self.os_version.as_deref().unwrap_or_default());
        let mut out = self.os.clone();
        if !version.is_empty() || !features.is_empty() {
            out.push('(');
            out.push_str(&version);
            for f in features {
                out.push('+');
                out.push_str(&encode_os_option(f));
            }
            out.push(')');
        }
        push_path(&mut out, &self.architecture);
        push_path(&mut out, self.variant.as_deref().unwrap_or_default());
        out
    }
}

/// `path.Join`'s treatment of the architecture and variant: empty parts vanish.
fn push_path(out: &mut String, part: &str) {
    if !part.is_empty() {
        out.push('/');
        out.push_str(part);
    }
}

/// `osRe`: `^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?$`, then the
/// version and features `%`-decoded (a feature that decodes to nothing is dropped, an empty
/// one between `+`s is an error).
fn parse_os_part(part: &str) -> Result<(String, Option<String>, Vec<String>), String> {
    let name_end = part.find('(').unwrap_or(part.len());
    let name = &part[..name_end];
    let name_ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let option_ok = |b: u8| b.is_ascii_alphanumeric() || b"_.%-".contains(&b);
    if name.is_empty() || !name.bytes().all(name_ok) {
        return Err(format!(
            "{:?}: the os may only contain letters, digits, '_' and '-' (then optionally a version and features in parentheses)",
            clip_echo(part)
        ));
    }
    let rest = &part[name_end..];
    if rest.is_empty() {
        return Ok((name.to_owned(), None, Vec::new()));
    }
    let Some(inner) = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) else {
        return Err(format!(
            "{:?}: expected os(version+feature…)",
            clip_echo(part)
        ));
    };
    let mut pieces = inner.split('+');
    let version = pieces.next().unwrap_or_default();
    let features: Vec<&str> = pieces.collect();
    if !version.bytes().all(option_ok) || features.iter().any(|f| !f.bytes().all(option_ok)) {
        return Err(format!(
            "{:?}: os versions and features may only contain letters, digits, '_', '.', '%' and '-'",
            clip_echo(part)
        ));
    }
    if features.iter().any(|f| f.is_empty()) {
        return Err("empty os feature".into());
    }
    let version = decode_os_option(version)?;
    let mut decoded = Vec::with_capacity(features.len());
    for f in features {
        let f = decode_os_option(f)?;
        if !f.is_empty() {
            decoded.push(f);
        }
    }
    Ok((
        name.to_owned(),
        (!version.is_empty()).then_some(version),
        decoded,
    ))
}

/// Go's `url.PathUnescape` when the value holds a `%` (the encoding of `FormatAll`).
fn decode_os_option(v: &str) -> Result<String, String> {
    if !v.contains('%') {
        return Ok(v.to_owned());
    }
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => {
                    return Err(format!(
                        "invalid URL escape {:?}",
                        clip_echo(&v[i..v.len().min(i + 3)])
                    ))
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "escapes that are not UTF-8".to_owned())
}

/// The `%`, `+`, `(`, `)`, `/` of a version or feature, `%`-encoded (`encodeOSOption`).
fn encode_os_option(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '%' => out.push_str("%25"),
            '+' => out.push_str("%2B"),
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// `normalizeOS`: empty is the host's (`host_os`), lowercased, `macos` is `darwin`.
fn normalize_os(os: &str, host_os: &str) -> String {
    if os.is_empty() {
        return host_os.to_owned();
    }
    let os = os.to_ascii_lowercase();
    if os == "macos" {
        "darwin".to_owned()
    } else {
        os
    }
}

/// `normalizeArch(arch, variant)` of the containerd/platforms release of `rules`.
pub(super) fn normalize_arch(arch: &str, variant: &str, rules: PlatformRules) -> (String, String) {
    let arch = arch.to_ascii_lowercase();
    let mut variant = variant.to_ascii_lowercase();
    let arch = match arch.as_str() {
        "i386" => {
            variant.clear();
            "386".to_owned()
        }
        "x86_64" | "x86-64" | "amd64" => {
            if variant == "v1" {
                variant.clear();
            }
            "amd64".to_owned()
        }
        "aarch64" | "arm64" => {
            variant = normalize_arm64_variant(variant, rules);
            "arm64".to_owned()
        }
        "armhf" => {
            variant = "v7".to_owned();
            "arm".to_owned()
        }
        "armel" => {
            variant = "v6".to_owned();
            "arm".to_owned()
        }
        "arm" => {
            match variant.as_str() {
                "" | "7" => variant = "v7".to_owned(),
                "5" | "6" | "8" => variant.insert(0, 'v'),
                _ => {}
            }
            arch
        }
        _ => arch,
    };
    (arch, variant)
}

fn normalize_arm64_variant(variant: String, rules: PlatformRules) -> String {
    match rules {
        PlatformRules::V0_2 => match variant.as_str() {
            "8" | "v8" => String::new(),
            _ => variant,
        },
        PlatformRules::Rc0 => {
            // rc.0: `v8`, `8`, `v8.0` and `v` are the default; everything else becomes
            // `v<major>[.<minor>]` with a minor of `0` dropped.
            let (major, minor) = match variant.split_once('.') {
                Some((major, minor)) => (major, Some(minor)),
                None => (variant.as_str(), None),
            };
            let major = major.strip_prefix('v').unwrap_or(major);
            let minor = minor.filter(|m| *m != "0");
            if (major.is_empty() || major == "8") && minor.is_none() {
                return String::new();
            }
            match minor {
                Some(m) => format!("v{major}.{m}"),
                None => format!("v{major}"),
            }
        }
        _ => match variant.as_str() {
            "8" | "v8" | "v8.0" => String::new(),
            "9" | "9.0" | "v9.0" => "v9".to_owned(),
            _ => variant,
        },
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

    fn plat(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform::new(os, arch, variant)
    }

    fn full(os: &str, arch: &str, variant: &str, version: &str, features: &[&str]) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: (!variant.is_empty()).then(|| variant.into()),
            os_version: (!version.is_empty()).then(|| version.into()),
            os_features: features.iter().map(|f| f.to_string()).collect(),
        }
    }

    /// The host of the upstream tables: linux/amd64.
    fn host() -> Platform {
        plat("linux", "amd64", None)
    }

    // containerd/platforms `TestParseSelector` (v1.0.0-rc.4), for a linux/amd64 host:
    // input, the parsed platform, and its Format (or FormatAll when `all`).
    #[rstest]
    #[case("linux/arm64", full("linux", "arm64", "", "", &[]), "linux/arm64", false)]
    #[case("linux/arm64/v8", full("linux", "arm64", "v8", "", &[]), "linux/arm64/v8", false)]
    #[case("linux/arm", full("linux", "arm", "", "", &[]), "linux/arm", false)]
    #[case("linux/arm/v6", full("linux", "arm", "v6", "", &[]), "linux/arm/v6", false)]
    #[case("linux/arm/v7", full("linux", "arm", "v7", "", &[]), "linux/arm/v7", false)]
    #[case("arm", full("linux", "arm", "", "", &[]), "linux/arm", false)]
    #[case("armel", full("linux", "arm", "v6", "", &[]), "linux/arm/v6", false)]
    #[case("armhf", full("linux", "arm", "", "", &[]), "linux/arm", false)]
    #[case("Aarch64", full("linux", "arm64", "", "", &[]), "linux/arm64", false)]
    #[case("x86_64", full("linux", "amd64", "", "", &[]), "linux/amd64", false)]
    #[case("Linux/x86_64", full("linux", "amd64", "", "", &[]), "linux/amd64", false)]
    #[case("i386", full("linux", "386", "", "", &[]), "linux/386", false)]
    #[case("linux", full("linux", "amd64", "", "", &[]), "linux/amd64", false)]
    #[case("s390x", full("linux", "s390x", "", "", &[]), "linux/s390x", false)]
    #[case("linux/s390x", full("linux", "s390x", "", "", &[]), "linux/s390x", false)]
    #[case("macOS", full("darwin", "amd64", "", "", &[]), "darwin/amd64", false)]
    #[case("windows", full("windows", "amd64", "", "", &[]), "windows/amd64", false)]
    #[case("windows()", full("windows", "amd64", "", "", &[]), "windows/amd64", true)]
    #[case("windows(10.0.17763)", full("windows", "amd64", "", "10.0.17763", &[]), "windows(10.0.17763)/amd64", true)]
    #[case("windows(10.0.17763+win32k)", full("windows", "amd64", "", "10.0.17763", &["win32k"]), "windows(10.0.17763+win32k)/amd64", true)]
    #[case("linux(+gpu)", full("linux", "amd64", "", "", &["gpu"]), "linux(+gpu)/amd64", true)]
    #[case("linux(+gpu+simd)", full("linux", "amd64", "", "", &["gpu", "simd"]), "linux(+gpu+simd)/amd64", true)]
    #[case("linux(+unsorted+erofs)", full("linux", "amd64", "", "", &["unsorted", "erofs"]), "linux(+erofs+unsorted)/amd64", true)]
    #[case("windows(10.0.17763%2Bbuild.42)", full("windows", "amd64", "", "10.0.17763+build.42", &[]), "windows(10.0.17763%2Bbuild.42)/amd64", true)]
    #[case("windows(10.0.17763%2Bbuild.42+win32k)", full("windows", "amd64", "", "10.0.17763+build.42", &["win32k"]), "windows(10.0.17763%2Bbuild.42+win32k)/amd64", true)]
    #[case("windows(50%25done)", full("windows", "amd64", "", "50%done", &[]), "windows(50%25done)/amd64", true)]
    fn upstream_parse_selector(
        #[case] input: &str,
        #[case] expected: Platform,
        #[case] formatted: &str,
        #[case] all: bool,
    ) {
        let parsed = Platform::containerd_parse(input, &host()).unwrap();
        assert_eq!(parsed, expected, "{input}");
        let shown = if all {
            parsed.format_all()
        } else {
            parsed.to_string()
        };
        assert_eq!(shown, formatted, "{input}");
        // Formatted and parsed again: the same text.
        let again = Platform::containerd_parse(&shown, &host()).unwrap();
        let again = if all {
            again.format_all()
        } else {
            again.to_string()
        };
        assert_eq!(again, formatted, "{input}");
        // NewMatcher(expected) matches expected.
        assert!(
            crate::kubelet::platform_match::PlatformMatcher::strict(PlatformRules::Rc4)
                .matches(&expected, &expected)
        );
    }

    // The "must also match" column of `TestParseSelector`: NewMatcher(parsed).Match(other).
    #[rstest]
    #[case("linux/arm64", &["linux/aarch64", "linux/aarch64/v8", "linux/arm64/v8"])]
    #[case("linux/arm64/v8", &["linux/aarch64", "linux/aarch64/v8", "linux/arm64"])]
    #[case("linux/arm", &["linux/arm/v7", "linux/armhf", "linux/arm/7"])]
    #[case("linux/arm/v6", &["linux/armel"])]
    #[case("linux/arm/v7", &["linux/arm", "linux/armhf"])]
    fn upstream_parse_selector_matches(#[case] input: &str, #[case] others: &[&str]) {
        let parsed = Platform::containerd_parse(input, &host()).unwrap();
        for other in others {
            let (os, rest) = other.split_once('/').unwrap();
            let (arch, variant) = rest
                .split_once('/')
                .map_or((rest, None), |(a, v)| (a, Some(v)));
            let other = plat(os, arch, variant);
            assert!(
                crate::kubelet::platform_match::PlatformMatcher::strict(PlatformRules::Rc4)
                    .matches(&parsed, &other),
                "{input} does not match {other:?}"
            );
        }
    }

    // `TestFormatAllEncoding`, `TestFormatAllSkipsEmptyOSFeatures`.
    #[rstest]
    #[case(full("windows", "amd64", "", "10.0.17763+build.42", &[]), "windows(10.0.17763%2Bbuild.42)/amd64")]
    #[case(full("windows", "amd64", "", "10.0.17763+build.42", &["win32k"]), "windows(10.0.17763%2Bbuild.42+win32k)/amd64")]
    #[case(full("windows", "amd64", "", "50%done", &[]), "windows(50%25done)/amd64")]
    #[case(full("windows", "amd64", "", "1.0(beta)", &[]), "windows(1.0%28beta%29)/amd64")]
    #[case(full("windows", "amd64", "", "a/b", &[]), "windows(a%2Fb)/amd64")]
    #[case(full("windows", "amd64", "", "10.0.17763", &[]), "windows(10.0.17763)/amd64")]
    #[case(full("linux", "amd64", "", "", &["feat+v2"]), "linux(+feat%2Bv2)/amd64")]
    #[case(full("linux", "amd64", "", "", &["100%gpu"]), "linux(+100%25gpu)/amd64")]
    #[case(full("windows", "amd64", "", "10.0+build", &["feat+1"]), "windows(10.0%2Bbuild+feat%2B1)/amd64")]
    #[case(full("linux", "amd64", "", "", &["", "gpu", "", "simd"]), "linux(+gpu+simd)/amd64")]
    fn upstream_format_all(#[case] platform: Platform, #[case] want: &str) {
        assert_eq!(platform.format_all(), want);
        let back = Platform::containerd_parse(want, &host()).unwrap();
        assert_eq!(back.os_version, platform.os_version);
        let features: Vec<String> = platform
            .os_features
            .iter()
            .filter(|f| !f.is_empty())
            .cloned()
            .collect();
        assert_eq!(back.os_features, features);
    }

    // `TestParseSelectorInvalid`, and wildcards.
    #[rstest]
    #[case("")]
    #[case("/linux/arm")]
    #[case("linux/arm/")]
    #[case("linux /arm")]
    #[case("linux/&arm")]
    #[case("linux/arm/foo/bar")]
    #[case("*")]
    #[case("linux/*")]
    #[case("*/arm64")]
    #[case("linux(")]
    #[case("linux(+)")]
    #[case("windows(10.0%zz)")]
    #[case("nonsense")]
    fn upstream_parse_invalid(#[case] input: &str) {
        let err = Platform::containerd_parse(input, &host()).unwrap_err();
        assert!(err.to_string().starts_with("invalid platform \""), "{err}");
    }

    #[rstest]
    #[case("linux/amd64", "linux", "amd64", None)]
    #[case("LINUX/AMD64", "linux", "amd64", None)]
    #[case("linux/arm64/v8", "linux", "arm64", Some("v8"))]
    #[case("linux/arm", "linux", "arm", None)]
    #[case("windows/amd64", "windows", "amd64", None)]
    #[case(" linux/arm/V7 ", "linux", "arm", Some("v7"))]
    #[case("linux/x86_64", "linux", "amd64", None)]
    fn parse_ok(
        #[case] input: &str,
        #[case] os: &str,
        #[case] arch: &str,
        #[case] variant: Option<&str>,
    ) {
        assert_eq!(Platform::parse(input), Ok(plat(os, arch, variant)));
    }

    #[test]
    fn parse_reads_the_windows_build() {
        let p = Platform::parse("windows(10.0.20348)/amd64").unwrap();
        assert_eq!(p.os_version.as_deref(), Some("10.0.20348"));
        assert_eq!(p.format_all(), "windows(10.0.20348)/amd64");
    }

    #[rstest]
    #[case("")]
    #[case("linux")]
    #[case("linux/")]
    #[case("/amd64")]
    #[case("a/b/c/d")]
    #[case("linux//v7")]
    #[case("linux/*")]
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
    #[case(plat("linux", "arm64", Some("v8.0")), plat("linux", "arm64", None))]
    #[case(plat("linux", "arm64", Some("9")), plat("linux", "arm64", Some("v9")))]
    #[case(
        plat("linux", "arm64", Some("v9.0")),
        plat("linux", "arm64", Some("v9"))
    )]
    #[case(
        plat("linux", "arm64", Some("9.0")),
        plat("linux", "arm64", Some("v9"))
    )]
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
    fn normalize_keeps_os_version_and_sorts_features() {
        let win = full("Windows", "AMD64", "", "10.0.20348.2113", &["b", "a", "b"]);
        let n = win.normalize();
        assert_eq!(n.os_version.as_deref(), Some("10.0.20348.2113"));
        assert_eq!(n.os_features, ["a", "b"]);
    }

    // containerd 1.7 (v0.2.1) and 2.0 (rc.0) normalize arm64 variants their own way.
    #[rstest]
    #[case(PlatformRules::V0_2, "v8.0", Some("v8.0"))]
    #[case(PlatformRules::V0_2, "9", Some("9"))]
    #[case(PlatformRules::V0_2, "v8", None)]
    #[case(PlatformRules::Rc0, "v8.0", None)]
    #[case(PlatformRules::Rc0, "9", Some("v9"))]
    #[case(PlatformRules::Rc0, "v9.0", Some("v9"))]
    #[case(PlatformRules::Rc0, "8.2", Some("v8.2"))]
    #[case(PlatformRules::Rc1, "8.2", Some("8.2"))]
    fn normalize_by_release(
        #[case] rules: PlatformRules,
        #[case] variant: &str,
        #[case] want: Option<&str>,
    ) {
        let p = plat("linux", "arm64", Some(variant)).normalize_as(rules);
        assert_eq!(p.variant.as_deref(), want);
    }

    #[test]
    fn display() {
        assert_eq!(
            plat("linux", "arm64", Some("v8")).to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(plat("linux", "amd64", None).to_string(), "linux/amd64");
        let win = full("windows", "amd64", "", "10.0.20348.2113", &[]);
        assert_eq!(win.to_string(), "windows/amd64");
    }

    #[test]
    fn serde_roundtrip_uses_oci_field_names() {
        let win = full("windows", "amd64", "", "10.0.20348.2113", &["win32k"]);
        let json = serde_json::to_string(&win).unwrap();
        assert_eq!(
            json,
            r#"{"os":"windows","architecture":"amd64","os.version":"10.0.20348.2113","os.features":["win32k"]}"#
        );
        assert_eq!(serde_json::from_str::<Platform>(&json).unwrap(), win);
        let plain = plat("linux", "amd64", None);
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"os":"linux","architecture":"amd64"}"#
        );
    }
}
