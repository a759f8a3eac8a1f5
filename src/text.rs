//! Words and numbers as pullcheck reads and writes them, in one place: the one clipper for
//! anything echoed from input (cut on a character boundary, marked with one `…`), host
//! globs, durations (`10s` in, `1.5s` out), sizes (`64MiB` in, `64 MiB (67108864 bytes)`
//! out), hex, and an error with its sources on one line.
//!
//! A leaf: it imports nothing of the crate, and every layer may use it.

use std::borrow::Cow;
use std::time::{Duration, Instant};

/// Longest user input quoted in a message (an image string can be megabytes long).
pub const QUOTE_LIMIT: usize = 256;
/// Longest sentence pullcheck writes (messages may quote the input, and an input can hold a
/// 50 MB image string).
pub const MESSAGE_LIMIT: usize = 2048;
/// Longest single value pullcheck writes (image, name, …): beyond any valid reference (a
/// 255-byte name, a 128-byte tag and a digest).
pub const FIELD_LIMIT: usize = 1024;

/// The mark of a cut.
pub const ELLIPSIS: char = '…';

/// `s` when it fits in `limit` bytes, else its longest prefix (on a character boundary)
/// that fits together with `…`. The result is never longer than `limit` bytes.
pub fn clip(s: &str, limit: usize) -> Cow<'_, str> {
    if s.len() <= limit {
        return Cow::Borrowed(s);
    }
    let mut end = limit.saturating_sub(ELLIPSIS.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + ELLIPSIS.len_utf8());
    out.push_str(&s[..end]);
    out.push(ELLIPSIS);
    Cow::Owned(out)
}

/// [`clip`], owned.
pub fn truncate(s: &str, limit: usize) -> String {
    clip(s, limit).into_owned()
}

/// Case-insensitive glob with `*` only (host names and namespaces have no other wildcard
/// in practice); `pattern` is lowercased, `text` is compared as given.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// "500ms", "10s", "2m", "1h", or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 10s, 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?}: use ms, s, m or h")),
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// "1.5s", "250ms", "3m20s", "6h", "1h30m", "2d": short, for messages.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    let two = |big: u64, unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{small_unit}")
        }
    };
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let s = d.as_secs_f64();
        if (s - s.round()).abs() < 0.05 {
            format!("{}s", s.round() as u64)
        } else {
            format!("{s:.1}s")
        }
    } else if s < 3600 {
        two(s / 60, "m", s % 60, "s")
    } else if s < 86_400 {
        two(s / 3600, "h", s % 3600 / 60, "m")
    } else {
        two(s / 86_400, "d", s % 86_400 / 3600, "h")
    }
}

/// `3.2 GiB`, `512 MiB`, `900 KiB`, `12 B`: one decimal under ten units, for messages.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// A transfer rate in bytes per second: `100Mbit/s`, `1Gbit/s`, `12.5MB/s`, `50MiB/s`,
/// `1000000` (bytes per second); bits in powers of 1000, bytes in 1000 (`MB`) or 1024
/// (`MiB`).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid bandwidth {s:?}: e.g. 100Mbit/s, 1Gbit/s, 50MB/s, 40MiB/s");
    let t = s.trim();
    let t = t
        .strip_suffix("/s")
        .or_else(|| t.strip_suffix("ps"))
        .unwrap_or(t);
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let factor: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "kbit" | "Kbit" | "kb" => 125.0,
        "Mbit" | "Mb" => 125_000.0,
        "Gbit" | "Gb" => 125_000_000.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1_048_576.0,
        "GiB" => 1_073_741_824.0,
        _ => return Err(bad()),
    };
    let bytes = n * factor;
    if !bytes.is_finite() || !(1.0..=1e13).contains(&bytes) {
        return Err(bad());
    }
    Ok(bytes.round() as u64)
}

/// `100 Mbit/s`, `1 Gbit/s`, `12.3 MB/s`: a rate in bytes per second, for messages.
pub fn human_rate(bytes_per_second: u64) -> String {
    let bits = u128::from(bytes_per_second) * 8;
    if bits % 1_000_000_000 == 0 {
        format!("{} Gbit/s", bits / 1_000_000_000)
    } else if bits % 1_000_000 == 0 {
        format!("{} Mbit/s", bits / 1_000_000)
    } else {
        format!("{:.1} MB/s", bytes_per_second as f64 / 1e6)
    }
}

/// `64 MiB (67108864 bytes)`.
pub fn describe_bytes(n: u64) -> String {
    let unit = |shift: u32, name: &str| {
        (n >= 1 << shift && n.is_multiple_of(1 << shift)).then(|| format!("{} {name}", n >> shift))
    };
    match unit(30, "GiB")
        .or_else(|| unit(20, "MiB"))
        .or_else(|| unit(10, "KiB"))
    {
        Some(s) => format!("{s} ({n} bytes)"),
        None => format!("{n} bytes"),
    }
}

/// A size: `1048576`, `512KiB`, `64MiB`, `1GiB` (also `K`, `M`, `G`, `KB`…, all powers of
/// 1024), between 1 byte and `max`.
pub fn parse_bytes(s: &str, max: u64) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. 64MiB, 512KiB, 1048576"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("invalid size unit in {s:?}: use KiB, MiB or GiB")),
    };
    n.checked_mul(1 << shift)
        .filter(|b| (1..=max).contains(b))
        .ok_or_else(|| {
            format!(
                "invalid size {s:?}: between 1 byte and {}",
                describe_bytes(max)
            )
        })
}

/// `ttl` from now; a TTL too long for the clock counts as a century.
pub fn instant_after(ttl: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(ttl)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// `err: source: source…` on one line, skipping a source whose text is already said.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("short", 10, "short")]
    #[case("exactly10!", 10, "exactly10!")]
    #[case("abcdefghijk", 10, "abcdefg…")]
    #[case("ééééé", 8, "éé…")]
    #[case("abc", 0, "…")]
    fn clips_fit_the_limit_on_a_character_boundary(
        #[case] s: &str,
        #[case] limit: usize,
        #[case] want: &str,
    ) {
        assert_eq!(clip(s, limit), want);
        assert!(want.len() <= limit.max(ELLIPSIS.len_utf8()));
        assert!(matches!(clip("kept", 4), Cow::Borrowed(_)));
    }

    #[rstest]
    #[case("*.example.com", "a.example.com", true)]
    #[case("*.example.com", "example.com", false)]
    #[case("*.example.com", "a.b.example.com", true)]
    #[case("registry.example.com", "REGISTRY.example.com", true)]
    #[case("*", "anything", true)]
    #[case("ghcr.io", "ghcr.io.evil.com", false)]
    fn globs(#[case] pattern: &str, #[case] host: &str, #[case] want: bool) {
        assert_eq!(glob_match(pattern, &host.to_ascii_lowercase()), want);
    }

    #[rstest]
    #[case("500ms", Some(500))]
    #[case("10s", Some(10_000))]
    #[case("2m", Some(120_000))]
    #[case("3", Some(3000))]
    #[case("1.5s", Some(1500))]
    #[case("x", None)]
    #[case("10d", None)]
    #[case("", None)]
    fn durations(#[case] s: &str, #[case] ms: Option<u128>) {
        assert_eq!(parse_duration(s).ok().map(|d| d.as_millis()), ms);
    }

    #[rstest]
    #[case(Duration::from_millis(250), "250ms")]
    #[case(Duration::from_secs(3), "3s")]
    #[case(Duration::from_millis(1500), "1.5s")]
    #[case(Duration::from_secs(200), "3m20s")]
    #[case(Duration::from_secs(120), "2m")]
    #[case(Duration::from_secs(21_600), "6h")]
    #[case(Duration::from_secs(5_400), "1h30m")]
    #[case(Duration::from_secs(90_000), "1d1h")]
    fn human_durations(#[case] d: Duration, #[case] want: &str) {
        assert_eq!(human_duration(d), want);
    }

    #[rstest]
    #[case(12, "12 B")]
    #[case(2048, "2.0 KiB")]
    #[case(3 << 30, "3.0 GiB")]
    #[case((3 << 30) + (1 << 29), "3.5 GiB")]
    #[case(700 << 20, "700 MiB")]
    #[case(u64::MAX, "16384 PiB")]
    fn human_sizes(#[case] n: u64, #[case] want: &str) {
        assert_eq!(human_bytes(n), want);
    }

    #[rstest]
    #[case("100Mbit/s", Some(12_500_000), "100 Mbit/s")]
    #[case("1Gbit/s", Some(125_000_000), "1 Gbit/s")]
    #[case("12.5MB/s", Some(12_500_000), "100 Mbit/s")]
    #[case("50MiB/s", Some(52_428_800), "52.4 MB/s")]
    #[case(" 1000000 ", Some(1_000_000), "8 Mbit/s")]
    #[case("100Mbps", Some(12_500_000), "100 Mbit/s")]
    #[case("fast", None, "")]
    #[case("0MB/s", None, "")]
    #[case("1e400MB/s", None, "")]
    #[case("10 parsecs/s", None, "")]
    fn rates(#[case] s: &str, #[case] bytes: Option<u64>, #[case] shown: &str) {
        assert_eq!(parse_rate(s).ok(), bytes);
        if let Some(b) = bytes {
            assert_eq!(human_rate(b), shown);
        }
    }

    #[test]
    fn sizes() {
        let max = u64::from(u32::MAX);
        assert_eq!(parse_bytes("64MiB", max), Ok(64 << 20));
        assert_eq!(parse_bytes("512k", max), Ok(512 << 10));
        assert_eq!(parse_bytes("1000", max), Ok(1000));
        assert!(parse_bytes("0", max).is_err());
        assert!(parse_bytes("5GiB", max).is_err(), "over the limit");
        assert!(parse_bytes("12parsecs", max).is_err());
        assert_eq!(describe_bytes(64 << 20), "64 MiB (67108864 bytes)");
        assert_eq!(describe_bytes(1000), "1000 bytes");
    }

    #[test]
    fn any_ttl_gives_an_instant() {
        assert!(instant_after(Duration::MAX) > Instant::now());
        let soon = instant_after(Duration::from_secs(1));
        assert!(soon > Instant::now() && soon <= Instant::now() + Duration::from_secs(1));
    }

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn error_chains_skip_what_was_said() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let e = E(
            "request failed: connection refused",
            Some(Box::new(E(
                "connection refused",
                Some(Box::new(E("os error 111", None))),
            ))),
        );
        assert_eq!(
            error_chain(&e),
            "request failed: connection refused: os error 111"
        );
    }
}
