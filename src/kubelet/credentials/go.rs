//! Byte-exact emulations of the Go standard-library functions the keyring depends on.
//!
//! Why not the `url` crate: it implements the WHATWG URL standard, which differs from Go's
//! `net/url` exactly where it matters here. It lowercases hosts (Go keeps "Quay.io", and since
//! label matching is case-sensitive the kubelet does NOT match it against "quay.io"), drops
//! default ports ("quay.io:443" would become "quay.io", but Go keeps the port and then only
//! images named "quay.io:443/..." match), applies IDNA and IPv4 number parsing, resolves "."
//! and ".." path segments, keeps paths percent-encoded (Go decodes them), and accepts or
//! rejects different characters. Reproducing Go here is less code than correcting all that.

/// The parts of a Go `*url.URL` the kubelet uses. Go strings are bytes, and percent-decoded
/// hosts and paths need not be UTF-8, so these are bytes too.
pub(crate) struct Url {
    pub(crate) host: Vec<u8>,
    pub(crate) path: Vec<u8>,
}

/// `net/url.Parse` as of Go 1.25 (including the Go 1.24.8/1.25.2 fix requiring bracketed
/// hosts to be IPv6 literals and '[' only at the start); only `Host` and `Path` are kept.
pub(crate) fn url_parse(raw: &[u8]) -> Result<Url, &'static str> {
    let (before, fragment) = match raw.iter().position(|&b| b == b'#') {
        Some(i) => (&raw[..i], raw.get(i + 1..).unwrap_or_default()),
        None => (raw, &raw[..0]),
    };
    let url = parse(before)?;
    if !fragment.is_empty() {
        unescape(fragment, Mode::Fragment)?;
    }
    Ok(url)
}

fn parse(raw: &[u8]) -> Result<Url, &'static str> {
    if raw.iter().any(|&b| b < b' ' || b == 0x7f) {
        return Err("net/url: invalid control character in URL");
    }
    if raw == b"*" {
        return Ok(Url {
            host: Vec::new(),
            path: b"*".to_vec(),
        });
    }
    let (scheme, mut rest) = get_scheme(raw)?;
    if rest.ends_with(b"?") && rest.iter().filter(|&&b| b == b'?').count() == 1 {
        rest = &rest[..rest.len() - 1];
    } else if let Some(i) = rest.iter().position(|&b| b == b'?') {
        rest = &rest[..i];
    }
    if !rest.starts_with(b"/") {
        if !scheme.is_empty() {
            // Opaque URL ("https:foo"): no host, no path.
            return Ok(Url {
                host: Vec::new(),
                path: Vec::new(),
            });
        }
        let segment = rest.split(|&b| b == b'/').next().unwrap_or_default();
        if segment.contains(&b':') {
            return Err("first path segment in URL cannot contain colon");
        }
    }
    let mut host = Vec::new();
    if (!scheme.is_empty() || !rest.starts_with(b"///")) && rest.starts_with(b"//") {
        let after = rest.get(2..).unwrap_or_default();
        let (authority, path) = match after.iter().position(|&b| b == b'/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, &after[after.len()..]),
        };
        host = parse_authority(authority)?;
        rest = path;
    }
    let path = unescape(rest, Mode::Path)?;
    Ok(Url { host, path })
}

fn get_scheme(raw: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    for (i, &c) in raw.iter().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i == 0 => return Ok((&raw[..0], raw)),
            b'0'..=b'9' | b'+' | b'-' | b'.' => {}
            b':' if i == 0 => return Err("missing protocol scheme"),
            b':' => return Ok((&raw[..i], raw.get(i + 1..).unwrap_or_default())),
            _ => return Ok((&raw[..0], raw)),
        }
    }
    Ok((&raw[..0], raw))
}

fn parse_authority(authority: &[u8]) -> Result<Vec<u8>, &'static str> {
    let at = authority.iter().rposition(|&b| b == b'@');
    let host = parse_host(match at {
        Some(i) => authority.get(i + 1..).unwrap_or_default(),
        None => authority,
    })?;
    if let Some(i) = at {
        let userinfo = &authority[..i];
        if !userinfo
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&b))
        {
            return Err("net/url: invalid userinfo");
        }
        match userinfo.iter().position(|&b| b == b':') {
            None => {
                unescape(userinfo, Mode::UserPassword)?;
            }
            Some(c) => {
                unescape(&userinfo[..c], Mode::UserPassword)?;
                unescape(
                    userinfo.get(c + 1..).unwrap_or_default(),
                    Mode::UserPassword,
                )?;
            }
        }
    }
    Ok(host)
}

fn parse_host(host: &[u8]) -> Result<Vec<u8>, &'static str> {
    match host.iter().rposition(|&b| b == b'[') {
        Some(open) if open > 0 => Err("invalid IP-literal"),
        Some(_) => {
            let close = host
                .iter()
                .rposition(|&b| b == b']')
                .ok_or("missing ']' in host")?;
            let colon_port = host.get(close + 1..).unwrap_or_default();
            if !valid_optional_port(colon_port) {
                return Err("invalid port after host");
            }
            let port = unescape(colon_port, Mode::Host)?;
            let hostname = host.get(1..close).ok_or("invalid IP-literal")?;
            let unescaped = match find(hostname, b"%25") {
                Some(zone) => {
                    let mut h = unescape(&hostname[..zone], Mode::Host)?;
                    h.extend(unescape(&hostname[zone..], Mode::Zone)?);
                    h
                }
                None => unescape(hostname, Mode::Host)?,
            };
            if !is_ipv6_address(&unescaped) {
                return Err("invalid IP-literal");
            }
            let mut out = Vec::with_capacity(unescaped.len() + port.len() + 2);
            out.push(b'[');
            out.extend(unescaped);
            out.push(b']');
            out.extend(port);
            Ok(out)
        }
        None => {
            if let Some(i) = host.iter().rposition(|&b| b == b':') {
                if !valid_optional_port(&host[i..]) {
                    return Err("invalid port after host");
                }
            }
            unescape(host, Mode::Host)
        }
    }
}

/// `netip.ParseAddr(s)` succeeds and is not IPv4 (zones allowed, but not empty).
fn is_ipv6_address(s: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(s) else {
        return false;
    };
    let addr = match s.split_once('%') {
        Some((_, "")) => return false,
        Some((addr, _)) => addr,
        None => s,
    };
    addr.parse::<std::net::Ipv6Addr>().is_ok()
}

/// Empty, or ':' followed by digits only.
fn valid_optional_port(port: &[u8]) -> bool {
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Path,
    Host,
    Zone,
    UserPassword,
    Fragment,
}

/// `!shouldEscape(c, encodeHost)` for ASCII bytes.
fn host_byte_ok(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!$&'()*+,;=:[]<>\"-_.~".contains(&c)
}

fn unhex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// `net/url.unescape` for the modes used by `Parse` ('+' is never special there).
fn unescape(s: &[u8], mode: Mode) -> Result<Vec<u8>, &'static str> {
    let host_like = matches!(mode, Mode::Host | Mode::Zone);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if c == b'%' {
            let (Some(&hi), Some(&lo)) = (s.get(i + 1), s.get(i + 2)) else {
                return Err("invalid URL escape");
            };
            if !hi.is_ascii_hexdigit() || !lo.is_ascii_hexdigit() {
                return Err("invalid URL escape");
            }
            let is_25 = hi == b'2' && lo == b'5';
            let v = (unhex(hi) << 4) | unhex(lo);
            // In hosts, %-encoding is only allowed for non-ASCII bytes (and %25).
            if mode == Mode::Host && unhex(hi) < 8 && !is_25 {
                return Err("invalid URL escape");
            }
            if mode == Mode::Zone && !is_25 && v != b' ' && !(v < 0x80 && host_byte_ok(v)) {
                return Err("invalid URL escape");
            }
            out.push(v);
            i += 3;
        } else {
            if host_like && c < 0x80 && c != b'+' && !host_byte_ok(c) {
                return Err("invalid character in host name");
            }
            out.push(c);
            i += 1;
        }
    }
    Ok(out)
}

/// `net.SplitHostPort`; `None` on any error.
pub(crate) fn split_host_port(hostport: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = hostport.iter().rposition(|&b| b == b':')?;
    let (host, j, k) = if hostport.first() == Some(&b'[') {
        let end = hostport.iter().position(|&b| b == b']')?;
        if end + 1 != i {
            // ']' at the end (missing port), or not directly followed by the last ':'.
            return None;
        }
        (hostport.get(1..end)?, 1, end + 1)
    } else {
        let host = &hostport[..i];
        if host.contains(&b':') {
            return None; // too many colons
        }
        (host, 0, 0)
    };
    if hostport.get(j..)?.contains(&b'[') || hostport.get(k..)?.contains(&b']') {
        return None;
    }
    Some((host, hostport.get(i + 1..)?))
}

/// Kubelet `SplitURL`: labels of the host (split on '.') and the port, where a host that
/// `net.SplitHostPort` rejects (no port, "[::1]", "a:b:c") is used whole with port "".
pub(crate) fn split_url(host: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let (name, port) = split_host_port(host).unwrap_or((host, &host[..0]));
    (name.split(|&b| b == b'.').collect(), port)
}

const RUNE_ERROR: u32 = 0xFFFD;

/// `utf8.DecodeRune`: (U+FFFD, 1) for an invalid or truncated sequence, (U+FFFD, 0) for
/// empty input.
pub(crate) fn decode_rune(b: &[u8]) -> (u32, usize) {
    let Some(&first) = b.first() else {
        return (RUNE_ERROR, 0);
    };
    let width = match first {
        0x00..=0x7F => return (u32::from(first), 1),
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (RUNE_ERROR, 1),
    };
    match b.get(..width).map(std::str::from_utf8) {
        Some(Ok(s)) => (s.chars().next().map_or(RUNE_ERROR, u32::from), width),
        _ => (RUNE_ERROR, 1),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadPattern;

/// `path/filepath.Match` on Unix (separator '/', '\\' escapes), Go >= 1.16 semantics: a
/// malformed pattern is an error even when the name already failed to match.
pub(crate) fn filepath_match(mut pattern: &[u8], mut name: &[u8]) -> Result<bool, BadPattern> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // Trailing * matches the rest of the string unless it has a '/'.
            return Ok(!name.contains(&b'/'));
        }
        // Look for a match at the current position; if this is the last chunk, it must
        // exhaust the name.
        match match_chunk(chunk, name) {
            Ok(Some(t)) if t.is_empty() || !pattern.is_empty() => {
                name = t;
                continue;
            }
            Err(e) => return Err(e),
            _ => {}
        }
        if star {
            // Look for a match skipping i+1 bytes; cannot skip '/'.
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                match match_chunk(chunk, name.get(i + 1..).unwrap_or_default()) {
                    Ok(Some(t)) => {
                        if pattern.is_empty() && !t.is_empty() {
                            i += 1;
                            continue;
                        }
                        name = t;
                        continue 'pattern;
                    }
                    Err(e) => return Err(e),
                    Ok(None) => {}
                }
                i += 1;
            }
        }
        // Before returning false, check that the rest of the pattern is well-formed.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, b"")?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// The next segment of the pattern: a non-star string, possibly preceded by stars.
fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while let Some((b'*', rest)) = pattern.split_first() {
        pattern = rest;
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while let Some(&c) = pattern.get(i) {
        match c {
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    let i = i.min(pattern.len());
    (star, &pattern[..i], &pattern[i..])
}

/// Whether `chunk` matches the beginning of `s`: `Ok(Some(rest))`, `Ok(None)` or a pattern
/// error. After a mismatch the rest of the chunk is still checked for well-formedness.
fn match_chunk<'s>(mut chunk: &[u8], mut s: &'s [u8]) -> Result<Option<&'s [u8]>, BadPattern> {
    let mut failed = false;
    while let Some(&c) = chunk.first() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match c {
            b'[' => {
                let mut r = 0;
                if !failed {
                    let (rune, n) = decode_rune(s);
                    r = rune;
                    s = s.get(n..).unwrap_or_default();
                }
                chunk = &chunk[1..];
                let mut negated = false;
                if let Some((b'^', rest)) = chunk.split_first() {
                    negated = true;
                    chunk = rest;
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if ranges > 0 {
                        if let Some((b']', rest)) = chunk.split_first() {
                            chunk = rest;
                            break;
                        }
                    }
                    let (lo, rest) = get_esc(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if let Some((b'-', rest)) = chunk.split_first() {
                        let (h, rest) = get_esc(rest)?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    ranges += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s.first() == Some(&b'/') {
                        failed = true;
                    }
                    let (_, n) = decode_rune(s);
                    s = s.get(n..).unwrap_or_default();
                }
                chunk = &chunk[1..];
            }
            _ => {
                let mut literal = c;
                if c == b'\\' {
                    chunk = &chunk[1..];
                    match chunk.first() {
                        Some(&escaped) => literal = escaped,
                        None => return Err(BadPattern),
                    }
                }
                if !failed {
                    if s.first() != Some(&literal) {
                        failed = true;
                    }
                    s = s.get(1..).unwrap_or_default();
                }
                chunk = chunk.get(1..).unwrap_or_default();
            }
        }
    }
    Ok((!failed).then_some(s))
}

/// A possibly escaped character of a character class.
fn get_esc(chunk: &[u8]) -> Result<(u32, &[u8]), BadPattern> {
    let mut chunk = match chunk.first() {
        None | Some(b'-') | Some(b']') => return Err(BadPattern),
        Some(_) => chunk,
    };
    if let Some((b'\\', rest)) = chunk.split_first() {
        if rest.is_empty() {
            return Err(BadPattern);
        }
        chunk = rest;
    }
    let (r, n) = decode_rune(chunk);
    if r == RUNE_ERROR && n == 1 {
        return Err(BadPattern);
    }
    let rest = chunk.get(n..).unwrap_or_default();
    if rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((r, rest))
}

#[cfg(test)]
mod tests {
    use crate::kubelet::credentials::go;
    use rstest::rstest;

    #[rstest]
    #[case("*", "abc", Ok(true))]
    #[case("*", "", Ok(true))]
    #[case("*", "a/b", Ok(false))]
    #[case("a*", "ab/c", Ok(false))]
    #[case("a*b*c", "axxbyyc", Ok(true))]
    #[case("a*b", "axxbyyb", Ok(true))]
    #[case("*x", "abx", Ok(true))]
    #[case("*x", "abxy", Ok(false))]
    #[case("a?c", "abc", Ok(true))]
    #[case("a?c", "ac", Ok(false))]
    #[case("a?c", "a/c", Ok(false))]
    #[case("??", "日本", Ok(true))]
    #[case("[a-c]", "b", Ok(true))]
    #[case("[a-c]", "d", Ok(false))]
    #[case("[^a-c]", "d", Ok(true))]
    #[case("[^a-c]", "a", Ok(false))]
    #[case("[abc]x", "cx", Ok(true))]
    #[case("[\\]]", "]", Ok(true))]
    #[case("\\*", "*", Ok(true))]
    #[case("\\*", "a", Ok(false))]
    #[case("abc", "abc", Ok(true))]
    #[case("abc", "ABC", Ok(false))]
    #[case("", "", Ok(true))]
    #[case("", "a", Ok(false))]
    #[case("[", "a", Err(go::BadPattern))]
    #[case("[]a]", "a", Err(go::BadPattern))]
    #[case("[a-]", "a", Err(go::BadPattern))]
    #[case("[-]", "-", Err(go::BadPattern))]
    #[case("\\", "a", Err(go::BadPattern))]
    #[case("ab[", "x", Err(go::BadPattern))] // malformed even though 'a' already failed
    #[case("*[", "x", Err(go::BadPattern))]
    #[case("a*[", "x", Err(go::BadPattern))]
    fn filepath_match(
        #[case] pattern: &str,
        #[case] name: &str,
        #[case] expected: Result<bool, go::BadPattern>,
    ) {
        assert_eq!(
            go::filepath_match(pattern.as_bytes(), name.as_bytes()),
            expected
        );
    }

    #[rstest]
    #[case("host:80", Some(("host", "80")))]
    #[case("host:", Some(("host", "")))]
    #[case("[::1]:80", Some(("::1", "80")))]
    #[case("host", None)]
    #[case("::1", None)]
    #[case("[::1]", None)]
    #[case("[::1]x:80", None)]
    #[case("a]:80", None)]
    #[case("[a[b]:80", None)]
    #[case("", None)]
    fn split_host_port(#[case] input: &str, #[case] expected: Option<(&str, &str)>) {
        let got = go::split_host_port(input.as_bytes());
        let want = expected.map(|(h, p)| (h.as_bytes(), p.as_bytes()));
        assert_eq!(got, want);
    }

    #[rstest]
    #[case("https://quay.io/a/b", Some(("quay.io", "/a/b")))]
    #[case("https://u:p@quay.io:5000/x?q#f", Some(("quay.io:5000", "/x")))]
    #[case("https://quay.io?", Some(("quay.io", "")))]
    #[case("https:///x", Some(("", "/x")))]
    #[case("https://Quay.IO/%41", Some(("Quay.IO", "/A")))]
    #[case("https://[::1]:80/x", Some(("[::1]:80", "/x")))]
    #[case("https://quay.io/a b", Some(("quay.io", "/a b")))]
    #[case("https://a<b>/", Some(("a<b>", "/")))]
    #[case("https://quay.io/%", None)]
    #[case("https://quay.io/\x7f", None)]
    #[case("https://a{b}/", None)]
    #[case("https://a%20b/", None)]
    #[case("https://a[b]/", None)]
    #[case("https://[::1]junk/", None)]
    #[case("https://[fe80::1%25]/", None)]
    #[case(":foo", None)]
    fn url_parse(#[case] raw: &str, #[case] expected: Option<(&str, &str)>) {
        let got = go::url_parse(raw.as_bytes()).ok().map(|u| (u.host, u.path));
        let want = expected.map(|(h, p)| (h.as_bytes().to_vec(), p.as_bytes().to_vec()));
        assert_eq!(got, want);
    }
}
