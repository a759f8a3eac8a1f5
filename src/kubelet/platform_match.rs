//! Which image platforms a node accepts, as containerd decides it: `platforms.Only` (the
//! node's platform and the ones it also runs: amd64 runs 386, arm64 runs arm/v8…v5, arm/v7
//! runs v6 and v5) or `platforms.OnlyStrict` (the node's platform only), Windows
//! `os.version` compatibility and OS features — each as the containerd/platforms release of
//! a containerd version has it ([`PlatformRules`]). Which one a node uses follows from its
//! runtime ([`super::runtime`]).
//!
//! Matching is arithmetic where containerd enumerates (`amd64/v9223372036854775807` costs
//! nothing here), so no input makes it slow; nothing panics on any input.

use super::platform::{normalize_arch, Platform, PlatformRules};

/// How a node picks a platform from an image index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PlatformMatcher {
    pub rules: PlatformRules,
    /// `OnlyStrict` (containerd 2.1+'s CRI pull through the transfer service): the node's
    /// own platform only, no fallbacks.
    pub strict: bool,
}

impl Default for PlatformMatcher {
    /// `Only` with the newest rules: what a node of unknown containerd version is assumed to
    /// do (the more lenient matcher, so an unknown version never denies a Pod that pulls).
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl PlatformMatcher {
    pub const DEFAULT: PlatformMatcher = PlatformMatcher {
        rules: PlatformRules::Rc4,
        strict: false,
    };

    /// `Only` with the rules of one release.
    pub const fn only(rules: PlatformRules) -> Self {
        PlatformMatcher {
            rules,
            strict: false,
        }
    }

    /// `OnlyStrict` with the rules of one release.
    pub const fn strict(rules: PlatformRules) -> Self {
        PlatformMatcher {
            rules,
            strict: true,
        }
    }

    /// Whether a node of platform `wanted` accepts an image entry of platform `available`
    /// (`Only(wanted).Match(available)` or `OnlyStrict(wanted).Match(available)`).
    pub fn matches(&self, wanted: &Platform, available: &Platform) -> bool {
        let w = wanted.normalize_as(self.rules);
        let a = available.normalize_as(self.rules);
        self.matches_normalized(&w, available, &a)
    }

    /// The subset of `wanted` (in order) that at least one of `available` satisfies. Each
    /// platform is normalized once: a registry's index may list thousands.
    pub fn satisfied<'a>(
        &self,
        wanted: &'a [Platform],
        available: &[Platform],
    ) -> Vec<&'a Platform> {
        let available: Vec<(&Platform, Platform)> = available
            .iter()
            .map(|a| (a, a.normalize_as(self.rules)))
            .collect();
        wanted
            .iter()
            .filter(|w| {
                let w = w.normalize_as(self.rules);
                available
                    .iter()
                    .any(|(raw, a)| self.matches_normalized(&w, raw, a))
            })
            .collect()
    }

    /// The entry of `available` a node of platform `wanted` pulls: containerd sorts the
    /// matching entries stably by its matcher's `Less` — the order of the platform vector:
    /// the node's own architecture before the ones it also runs (arm64 before arm, amd64
    /// before 386), higher variants first (`amd64/v3` before `v2` before `v1`, `arm/v7`
    /// before `v6`, `arm64/v9.1` before `v9` before `v8.6`) — and takes the first.
    /// `None` when none matches.
    pub fn best_match(&self, wanted: &Platform, available: &[Platform]) -> Option<usize> {
        let w = wanted.normalize_as(self.rules);
        let version = |variant: Option<&str>| -> (u64, u64) {
            let digits = variant.unwrap_or_default().trim_start_matches('v');
            let (major, minor) = digits.split_once('.').unwrap_or((digits, "0"));
            (major.parse().unwrap_or(0), minor.parse().unwrap_or(0))
        };
        available
            .iter()
            .enumerate()
            .filter_map(|(i, raw)| {
                let a = raw.normalize_as(self.rules);
                self.matches_normalized(&w, raw, &a).then(|| {
                    let other_arch = a.architecture != w.architecture;
                    let higher_first = std::cmp::Reverse(version(a.variant.as_deref()));
                    ((other_arch, higher_first), i)
                })
            })
            .min()
            .map(|(_, i)| i)
    }

    /// `w` and `a` normalized; `raw` is the image's platform as given (containerd compares
    /// the raw `os.version`).
    fn matches_normalized(&self, w: &Platform, raw: &Platform, a: &Platform) -> bool {
        if w.os != a.os || !self.os_version_matches(w, raw) || !self.features_match(w, a) {
            return false;
        }
        let wv = w.variant.as_deref().unwrap_or_default();
        if self.strict {
            return w.architecture == a.architecture && w.variant == a.variant;
        }
        self.vector_matches(&w.architecture, wv, a)
    }

    /// containerd's `windowsVersionMatcher` for a Windows node: the image's build must be
    /// one the node's build runs (an image or a node without a version always matches).
    fn os_version_matches(&self, w: &Platform, raw: &Platform) -> bool {
        if w.os != "windows" {
            return true;
        }
        let host = WindowsVersion::parse(w.os_version.as_deref().unwrap_or_default());
        let image = raw.os_version.as_deref().unwrap_or_default();
        if host.is_empty() || image.is_empty() {
            return true;
        }
        host.runs(WindowsVersion::parse(image), self.rules)
    }

    /// rc.4: the image's OS features (without `win32k` on Windows) are a subset of the
    /// node's; earlier releases ignore features.
    fn features_match(&self, w: &Platform, a: &Platform) -> bool {
        if self.rules < PlatformRules::Rc4 {
            return true;
        }
        a.os_features
            .iter()
            .filter(|f| !(w.os == "windows" && f.as_str() == "win32k"))
            .all(|f| w.os_features.binary_search(f).is_ok())
    }

    /// Whether `a` (normalized) equals one entry of containerd's `platformVector` for
    /// `arch/variant` (normalized), each entry normalized as `NewMatcher` does.
    fn vector_matches(&self, arch: &str, variant: &str, a: &Platform) -> bool {
        let equal = |arch: &str, variant: &str| {
            let (arch, variant) = normalize_arch(arch, variant, self.rules);
            a.architecture == arch && a.variant.as_deref().unwrap_or_default() == variant
        };
        match arch {
            "amd64" => {
                if equal(arch, variant) {
                    return true;
                }
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
            "arm" => arm_vector_matches(variant, a, &equal),
            "arm64" => self.arm64_vector_matches(variant, a, &equal),
            _ => equal(arch, variant),
        }
    }

    fn arm64_vector_matches(
        &self,
        variant: &str,
        a: &Platform,
        equal: &dyn Fn(&str, &str) -> bool,
    ) -> bool {
        let variant = if variant.is_empty() { "v8" } else { variant };
        match self.rules {
            PlatformRules::V0_2 => {
                // [arm64/variant] + the arm vector of the same variant.
                equal("arm64", variant) || arm_vector_matches(variant, a, equal)
            }
            PlatformRules::Rc0 => {
                if equal("arm64", variant)
                    || rc0_arm64_lower(variant).iter().any(|v| equal("arm64", v))
                {
                    return true;
                }
                let arm = if variant.starts_with("v8.") || variant.starts_with("v9.") {
                    "v8"
                } else {
                    variant
                };
                arm_vector_matches(arm, a, equal)
            }
            _ => {
                let Some(versions) = arm64_table(variant) else {
                    // A variant the table does not know: an empty vector, nothing matches.
                    return false;
                };
                let listed = versions.iter().any(|&(major, top)| {
                    (0..=top).any(|minor| {
                        let v = if minor == 0 {
                            format!("v{major}")
                        } else {
                            format!("v{major}.{minor}")
                        };
                        equal("arm64", &v)
                    })
                });
                listed || arm_vector_matches("v8", a, equal)
            }
        }
    }
}

/// The arm part of `platformVector`: `arm/variant` itself, then, for `vN` with `N > 5`,
/// `arm/v(N-1)` … `arm/v5`.
fn arm_vector_matches(variant: &str, a: &Platform, equal: &dyn Fn(&str, &str) -> bool) -> bool {
    if equal("arm", variant) {
        return true;
    }
    go_atoi(trim_v(variant)).is_some_and(|n| {
        n > 5
            && a.architecture == "arm"
            && a.variant
                .as_deref()
                .is_some_and(|v| in_v_range(v, 5, n - 1))
    })
}

/// `arm64variantToVersion` (rc.1 and later): (major, highest minor) pairs, in order.
fn arm64_table(variant: &str) -> Option<&'static [(u8, u8)]> {
    const V8: [[(u8, u8); 1]; 10] = [
        [(8, 0)],
        [(8, 1)],
        [(8, 2)],
        [(8, 3)],
        [(8, 4)],
        [(8, 5)],
        [(8, 6)],
        [(8, 7)],
        [(8, 8)],
        [(8, 9)],
    ];
    const V9: [[(u8, u8); 2]; 8] = [
        [(9, 0), (8, 5)],
        [(9, 1), (8, 6)],
        [(9, 2), (8, 7)],
        [(9, 3), (8, 8)],
        [(9, 4), (8, 9)],
        [(9, 5), (8, 9)],
        [(9, 6), (8, 9)],
        [(9, 7), (8, 9)],
    ];
    let minor = |s: &str| -> Option<usize> {
        let b = s.as_bytes();
        (b.len() == 1 && b[0].is_ascii_digit()).then(|| usize::from(b[0] - b'0'))
    };
    match variant {
        "v8" => Some(&V8[0]),
        "v9" => Some(&V9[0]),
        _ => {
            if let Some(m) = variant.strip_prefix("v8.").and_then(minor) {
                V8.get(m).map(|e| &e[..])
            } else {
                variant
                    .strip_prefix("v9.")
                    .and_then(minor)
                    .and_then(|m| V9.get(m))
                    .map(|e| &e[..])
            }
        }
    }
}

/// rc.0's arm64 entries after the platform itself (`v9.x`: `v9.(x-1)` … `v9`, then
/// `v8.min(x+5, 9)` … `v8`; `v8.x`: `v8.(x-1)` … `v8`). Only a one-digit minor is read.
fn rc0_arm64_lower(variant: &str) -> Vec<String> {
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
        minor = (minor + 5).min(9);
        major = 8;
        out.push(format!("v8.{minor}"));
    }
    // Bounded: `minor` is one digit (or 9 at most after the cap).
    out.extend((0..minor.clamp(0, 9)).rev().map(|m| name(major, m)));
    out
}

/// A Windows `major.minor.build` (the revision is ignored); zero when it does not parse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct WindowsVersion {
    major: u8,
    minor: u8,
    build: u16,
}

/// Windows Server 2022 and 2025, the LTSC releases later builds also run.
const LTSC2022: u16 = 20348;
const LTSC2025: u16 = 26100;

impl WindowsVersion {
    /// `getWindowsOSVersion`: fewer than two dots, or a part that is not a plain number in
    /// range, gives the zero value.
    fn parse(v: &str) -> Self {
        if v.matches('.').count() < 2 {
            return Self::default();
        }
        let mut parts = v.splitn(4, '.');
        let number = |s: Option<&str>| -> Option<u64> {
            let s = s?;
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let (Some(major), Some(minor), Some(build)) = (
            number(parts.next()),
            number(parts.next()),
            number(parts.next()),
        ) else {
            return Self::default();
        };
        match (
            u8::try_from(major),
            u8::try_from(minor),
            u16::try_from(build),
        ) {
            (Ok(major), Ok(minor), Ok(build)) => Self {
                major,
                minor,
                build,
            },
            _ => Self::default(),
        }
    }

    fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `checkWindowsHostAndContainerCompat(self = host, image)`.
    fn runs(&self, image: WindowsVersion, rules: PlatformRules) -> bool {
        if self.major != image.major || self.minor != image.minor {
            return false;
        }
        if self.build < LTSC2022 {
            return self.build == image.build;
        }
        let floor = if rules >= PlatformRules::Rc2 && self.build > LTSC2025 {
            LTSC2025
        } else {
            LTSC2022
        };
        floor <= image.build && image.build <= self.build
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// `MustParse` on the linux/amd64 host of the upstream tests.
    fn parse(s: &str) -> Platform {
        Platform::containerd_parse(s, &Platform::new("linux", "amd64", None)).unwrap()
    }

    fn check(matcher: PlatformMatcher, wanted: &str, yes: &[&str], no: &[&str]) {
        let w = parse(wanted);
        for image in yes {
            assert!(
                matcher.matches(&w, &parse(image)),
                "{matcher:?}: {wanted} should run {image}"
            );
        }
        for image in no {
            assert!(
                !matcher.matches(&w, &parse(image)),
                "{matcher:?}: {wanted} should not run {image}"
            );
        }
        // satisfied() is matches() over every pair.
        let all: Vec<Platform> = yes.iter().chain(no).map(|s| parse(s)).collect();
        let wanted = [w];
        assert_eq!(
            matcher.satisfied(&wanted, &all).len(),
            usize::from(!yes.is_empty())
        );
    }

    // containerd/platforms `TestOnly` (v1.0.0-rc.4): Only(Parse(wanted)).Match(Parse(image)).
    #[rstest]
    #[case("linux/amd64", &["linux/amd64", "linux/386"], &["linux/amd64/v2", "linux/arm/v7", "linux/arm64", "windows/amd64", "windows/arm"])]
    #[case("linux/amd64/v2", &["linux/amd64", "linux/amd64/v1", "linux/amd64/v2", "linux/386"], &["linux/amd64/v3", "linux/amd64/v4", "linux/arm/v7", "linux/arm64", "windows/amd64", "windows/arm"])]
    #[case("linux/386", &["linux/386"], &["linux/amd64", "linux/arm/v7", "linux/arm64", "windows/amd64", "windows/arm"])]
    #[case("windows/amd64", &["windows/amd64", "windows(10.0.17763)/amd64"], &["linux/amd64", "linux/arm/v7", "linux/arm64", "windows/arm"])]
    #[case("linux/arm/v8", &["linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8"], &["linux/amd64", "linux/arm/v4", "linux/arm64", "windows/amd64", "windows/arm"])]
    #[case("linux/arm/v7", &["linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7"], &["linux/amd64", "linux/arm/v4", "linux/arm/v8", "linux/arm64", "windows/amd64", "windows/arm"])]
    #[case("linux/arm/v6", &["linux/arm/v5", "linux/arm/v6"], &["linux/amd64", "linux/arm", "linux/arm/v4", "linux/arm/v7", "linux/arm/v8", "linux/arm64", "windows/amd64", "windows/arm"])]
    #[case("linux/arm/v5", &["linux/arm/v5"], &["linux/amd64", "linux/arm", "linux/arm/v4", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/arm64", "windows/amd64", "windows/arm"])]
    #[case("linux/arm/v4", &["linux/arm/v4"], &["linux/amd64", "linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/arm64", "windows/amd64", "windows/arm"])]
    #[case("linux/arm64/v9.6", &["linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/arm64", "linux/arm64/v8", "linux/arm64/v8.1", "linux/arm64/v8.2", "linux/arm64/v8.3", "linux/arm64/v8.4", "linux/arm64/v8.5", "linux/arm64/v8.6", "linux/arm64/v8.7", "linux/arm64/v8.8", "linux/arm64/v8.9", "linux/arm64/v9", "linux/arm64/v9.0", "linux/arm64/v9.1", "linux/arm64/v9.2", "linux/arm64/v9.3", "linux/arm64/v9.4", "linux/arm64/v9.5", "linux/arm64/v9.6"], &["linux/amd64", "linux/arm/v4", "windows/amd64", "windows/arm", "linux/arm64/v8.10"])]
    #[case("linux/arm64/v9", &["linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/arm64", "linux/arm64/v8", "linux/arm64/v8.1", "linux/arm64/v8.2", "linux/arm64/v8.3", "linux/arm64/v8.4", "linux/arm64/v8.5", "linux/arm64/v9", "linux/arm64/v9.0"], &["linux/amd64", "linux/arm/v4", "windows/amd64", "windows/arm", "linux/arm64/v8.6"])]
    #[case("linux/arm64/v8.1", &["linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/arm64", "linux/arm64/v8", "linux/arm64/v8.1"], &["linux/amd64", "linux/arm/v4", "linux/arm/v9", "linux/arm64/v9", "windows/amd64", "windows/arm"])]
    #[case("linux/arm64", &["linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/arm64", "linux/arm64/v8"], &["linux/amd64", "linux/arm/v4", "linux/arm/v9", "linux/arm64/v9", "windows/amd64", "windows/arm"])]
    fn upstream_only(#[case] wanted: &str, #[case] yes: &[&str], #[case] no: &[&str]) {
        check(PlatformMatcher::only(PlatformRules::Rc4), wanted, yes, no);
    }

    // containerd/platforms `TestOnlyStrict` (v1.0.0-rc.4).
    #[rstest]
    #[case("linux/amd64", &["linux/amd64"], &["linux/386", "linux/arm/v7", "linux/arm64", "windows/amd64", "windows/arm"])]
    #[case("linux/386", &["linux/386"], &["linux/amd64", "linux/arm/v7", "linux/arm64", "windows/amd64", "windows/arm"])]
    #[case("windows/amd64", &["windows/amd64", "windows(10.0.17763)/amd64"], &["linux/amd64", "linux/arm/v7", "linux/arm64", "windows/arm"])]
    #[case("windows(10.0.17763)/amd64", &["windows/amd64", "windows(10.0.17763)/amd64"], &["linux/amd64", "linux/arm/v7", "linux/arm64", "windows/arm"])]
    #[case("linux/arm/v8", &["linux/arm/v8"], &["linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/amd64", "linux/arm/v4", "linux/arm64", "windows/amd64", "windows/arm"])]
    #[case("linux/arm/v7", &["linux/arm", "linux/arm/v7"], &["linux/arm/v5", "linux/arm/v6", "linux/amd64", "linux/arm/v4", "linux/arm/v8", "linux/arm64", "windows/amd64", "windows/arm"])]
    #[case("linux/arm/v6", &["linux/arm/v6"], &["linux/arm/v5", "linux/amd64", "linux/arm", "linux/arm/v4", "linux/arm/v7", "linux/arm/v8", "linux/arm64", "windows/amd64", "windows/arm"])]
    #[case("linux/arm/v5", &["linux/arm/v5"], &["linux/amd64", "linux/arm", "linux/arm/v4", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/arm64", "windows/amd64", "windows/arm"])]
    #[case("linux/arm/v4", &["linux/arm/v4"], &["linux/amd64", "linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/arm64", "windows/amd64", "windows/arm"])]
    #[case("linux/arm64/v9.5", &["linux/arm64/v9.5"], &["linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/amd64", "linux/arm/v4", "linux/arm64/v8", "linux/arm64/v8.1", "linux/arm64/v9", "linux/arm64/v9.1", "linux/arm64/v9.4", "windows/amd64", "windows/arm"])]
    #[case("linux/arm64/v9", &["linux/arm64/v9", "linux/arm64/v9.0"], &["linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/amd64", "linux/arm/v4", "linux/arm/v9", "linux/arm64/v8", "linux/arm64/v8.1", "windows/amd64", "windows/arm"])]
    #[case("linux/arm64/v8.1", &["linux/arm64/v8.1"], &["linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/amd64", "linux/arm/v4", "linux/arm/v9", "linux/arm64/v8", "linux/arm64/v9", "windows/amd64", "windows/arm"])]
    #[case("linux/arm64", &["linux/arm64", "linux/arm64/v8"], &["linux/arm", "linux/arm/v5", "linux/arm/v6", "linux/arm/v7", "linux/arm/v8", "linux/amd64", "linux/arm/v4", "linux/arm/v9", "linux/arm64/v9", "windows/amd64", "windows/arm"])]
    fn upstream_only_strict(#[case] wanted: &str, #[case] yes: &[&str], #[case] no: &[&str]) {
        check(PlatformMatcher::strict(PlatformRules::Rc4), wanted, yes, no);
    }

    // The cases of issue 12, by release: containerd 1.7 (v0.2.1), 2.0 (rc.0), 2.1+ (rc.1+).
    #[rstest]
    // arm64/v9.6 runs v8.9 but not v8.10 (a variant the table does not know), from rc.1 on.
    #[case(PlatformRules::Rc1, "linux/arm64/v9.6", "linux/arm64/v8.10", false)]
    #[case(PlatformRules::Rc4, "linux/arm64/v9.6", "linux/arm64/v8.9", true)]
    // rc.0 computes: v9.6 runs v8.(6+5 → 9) and below; v8.10 is not among them.
    #[case(PlatformRules::Rc0, "linux/arm64/v9.6", "linux/arm64/v8.9", true)]
    #[case(PlatformRules::Rc0, "linux/arm64/v9.6", "linux/arm64/v8.10", false)]
    // 1.7 knows no minor variants: v9.6 runs itself and the arm chain of "v9.6" (itself).
    #[case(PlatformRules::V0_2, "linux/arm64/v9.6", "linux/arm64/v8.9", false)]
    #[case(PlatformRules::V0_2, "linux/arm64/v9.6", "linux/arm64/v9.6", true)]
    // arm64/v9 accepts arm/v9 in 1.7 and 2.0, not from 2.1 on.
    #[case(PlatformRules::V0_2, "linux/arm64/v9", "linux/arm/v9", true)]
    #[case(PlatformRules::Rc0, "linux/arm64/v9", "linux/arm/v9", true)]
    #[case(PlatformRules::Rc1, "linux/arm64/v9", "linux/arm/v9", false)]
    // `9` / `v9.0` normalize to `v9` from rc.1 on; 1.7 keeps them as written.
    #[case(PlatformRules::Rc4, "linux/arm64/9", "linux/arm64/v9.0", true)]
    #[case(PlatformRules::V0_2, "linux/arm64/v9", "linux/arm64/v9.0", false)]
    // An unknown arm64 variant runs nothing from rc.1 on, itself included.
    #[case(PlatformRules::Rc4, "linux/arm64/v8.10", "linux/arm64/v8.10", false)]
    #[case(PlatformRules::Rc0, "linux/arm64/v8.10", "linux/arm64/v8.10", true)]
    // Huge variants cost nothing and match as the arithmetic says.
    #[case(
        PlatformRules::Rc4,
        "linux/amd64/v9223372036854775807",
        "linux/amd64/v4",
        true
    )]
    #[case(
        PlatformRules::Rc4,
        "linux/arm/v9223372036854775807",
        "linux/arm/v5",
        true
    )]
    #[case(
        PlatformRules::Rc4,
        "linux/arm64/v99999999999999999999",
        "linux/arm/v7",
        false
    )]
    #[case(
        PlatformRules::Rc0,
        "linux/arm64/v99999999999999999999",
        "linux/arm/v7",
        false
    )]
    #[case(PlatformRules::Rc4, "linux/amd64/v3", "linux/amd64/v02", false)]
    fn by_release(
        #[case] rules: PlatformRules,
        #[case] wanted: &str,
        #[case] image: &str,
        #[case] runs: bool,
    ) {
        // Platforms as the release's own Parse leaves them: not normalized here.
        let raw = |s: &str| {
            let parts: Vec<&str> = s.split('/').collect();
            Platform::new(parts[0], parts[1], parts.get(2).copied())
        };
        let m = PlatformMatcher::only(rules);
        assert_eq!(
            m.matches(&raw(wanted), &raw(image)),
            runs,
            "{rules:?}: {wanted} runs {image}"
        );
    }

    // `Test_PlatformCompat` (checkWindowsHostAndContainerCompat), major.minor 10.0.
    #[rstest]
    #[case(17763, 17763, true)]
    #[case(17763, 20348, false)]
    #[case(20348, 17763, false)]
    #[case(20348, 20348, true)]
    #[case(22621, 17763, false)]
    #[case(22621, 20348, true)]
    #[case(25398, 17763, false)]
    #[case(25398, 20348, true)]
    #[case(26100, 20348, true)]
    #[case(20348, 26100, false)]
    #[case(20348, 22621, false)]
    #[case(26100, 22621, true)]
    fn upstream_windows_compat(#[case] host: u16, #[case] image: u16, #[case] runs: bool) {
        let v = |build| WindowsVersion {
            major: 10,
            minor: 0,
            build,
        };
        assert_eq!(v(host).runs(v(image), PlatformRules::Rc4), runs);
    }

    #[test]
    fn windows_floor_moved_with_ws2025() {
        let v = |build| WindowsVersion {
            major: 10,
            minor: 0,
            build,
        };
        // Host 26200 runs 26100..26200 from rc.2 (containerd 2.2) on; before, 20348 and up.
        assert!(!v(26200).runs(v(20348), PlatformRules::Rc2));
        assert!(v(26200).runs(v(26100), PlatformRules::Rc2));
        assert!(v(26200).runs(v(20348), PlatformRules::Rc1));
    }

    // `TestMatchComparerMatch_ABICheckWCOW` and `TestFallbackOnOSVersion`.
    #[rstest]
    #[case("10.0.17763", "10.0.17763", true)]
    #[case("10.0.17763", "10.0.20348", false)]
    #[case("10.0.20348", "10.0.17763", false)]
    #[case("10.0.20348", "10.0.20348", true)]
    #[case("10.0.22621", "10.0.17763", false)]
    #[case("10.0.22621", "10.0.20348", true)]
    #[case("", "10.0.17763", true)]
    #[case("", "", true)]
    #[case("", "10.0.22621", true)]
    #[case("99.99.99.99", "", true)]
    // The revision is ignored; a malformed image version is 0.0.0 and runs nowhere.
    #[case("10.0.17763.1", "10.0.17763.2", true)]
    #[case("10.0.17763", "10.0.17762.1", false)]
    #[case("10.0.17763", "10.0", false)]
    #[case("10.0.17763", "x.y.z", false)]
    fn upstream_windows_versions(#[case] host: &str, #[case] image: &str, #[case] runs: bool) {
        let with = |v: &str| Platform {
            os_version: (!v.is_empty()).then(|| v.to_owned()),
            ..Platform::new("windows", "amd64", None)
        };
        for m in [
            PlatformMatcher::DEFAULT,
            PlatformMatcher::strict(PlatformRules::Rc4),
        ] {
            assert_eq!(
                m.matches(&with(host), &with(image)),
                runs,
                "{host} runs {image}"
            );
        }
        // Linux images never run on Windows nodes, whatever the versions.
        assert!(
            !PlatformMatcher::DEFAULT.matches(&with(host), &Platform::new("linux", "amd64", None))
        );
    }

    // `TestOnlyOS`'s feature rows, as `Only` applies them (rc.4): an image's features must
    // be a subset of the node's; `win32k` does not count on Windows; before rc.4 features
    // are ignored.
    #[rstest]
    #[case(PlatformRules::Rc4, "linux(+gpu)/amd64", "linux(+gpu)/amd64", true)]
    #[case(
        PlatformRules::Rc4,
        "linux(+gpu)/amd64",
        "linux(+gpu+simd)/amd64",
        false
    )]
    #[case(PlatformRules::Rc4, "linux/amd64", "linux(+gpu)/amd64", false)]
    #[case(PlatformRules::Rc4, "windows/amd64", "windows(+win32k)/amd64", true)]
    #[case(PlatformRules::Rc2, "linux/amd64", "linux(+gpu)/amd64", true)]
    fn os_features(
        #[case] rules: PlatformRules,
        #[case] wanted: &str,
        #[case] image: &str,
        #[case] runs: bool,
    ) {
        assert_eq!(
            PlatformMatcher::only(rules).matches(&parse(wanted), &parse(image)),
            runs
        );
    }

    #[test]
    fn the_default_matcher_is_the_lenient_one() {
        let (arm64, arm) = (parse("linux/arm64"), parse("linux/arm/v7"));
        assert!(PlatformMatcher::DEFAULT.matches(&arm64, &arm));
        assert!(!PlatformMatcher::strict(PlatformRules::Rc4).matches(&arm64, &arm));
        let wanted = [arm64.clone(), parse("linux/amd64")];
        assert_eq!(
            PlatformMatcher::DEFAULT.satisfied(&wanted, &[arm]),
            vec![&wanted[0]]
        );
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
            PlatformMatcher::DEFAULT.best_match(&p("linux/arm64"), &available),
            Some(1),
            "arm/v7 before arm/v6"
        );
        assert_eq!(
            PlatformMatcher::DEFAULT.best_match(&p("linux/amd64"), &available),
            Some(3),
            "exact before 386"
        );
        assert_eq!(
            PlatformMatcher::DEFAULT.best_match(&p("linux/amd64/v3"), &available),
            Some(3)
        );
        assert_eq!(
            PlatformMatcher::DEFAULT.best_match(&p("linux/amd64/v3"), &available[..3]),
            Some(2),
            "386 last"
        );
        assert_eq!(
            PlatformMatcher::DEFAULT.best_match(&p("windows/amd64"), &available),
            None
        );
        let twice = [p("linux/amd64"), p("linux/amd64")];
        assert_eq!(
            PlatformMatcher::DEFAULT.best_match(&p("linux/amd64"), &twice),
            Some(0),
            "document order"
        );
        let arm64 = [
            p("linux/arm64/v8.2"),
            p("linux/arm/v7"),
            p("linux/arm64/v9"),
        ];
        assert_eq!(
            PlatformMatcher::DEFAULT.best_match(&p("linux/arm64/v9.1"), &arm64),
            Some(2),
            "v9 before v8.x"
        );
        let amd64 = [p("linux/amd64"), p("linux/amd64/v2")];
        assert_eq!(
            PlatformMatcher::DEFAULT.best_match(&p("linux/amd64/v3"), &amd64),
            Some(1),
            "v2 before v1"
        );
        // The strict matcher of containerd 2.1+ takes only the node's own platform.
        let strict = PlatformMatcher::strict(PlatformRules::Rc4);
        assert_eq!(strict.best_match(&p("linux/arm64"), &available), None);
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
        for matcher in [
            PlatformMatcher::DEFAULT,
            PlatformMatcher::strict(PlatformRules::Rc4),
        ] {
            for w in &platforms {
                for a in &platforms {
                    assert_eq!(
                        matcher.best_match(w, std::slice::from_ref(a)).is_some(),
                        matcher.matches(w, a),
                        "{w} / {a}"
                    );
                }
            }
        }
    }
}
