//! The rules of the outbound host guard that do not depend on configuration: how host
//! names are compared (lowercase, without brackets, without a trailing dot), which
//! `--allow-host` / `--deny-host` globs are valid (checked once at start, so a glob that
//! could never match is an error instead of a silent hole), and which addresses are never
//! contacted unless `--allow-link-local` is set.
//!
//! Blocked addresses: the IPv4 link-local range (where nearly every cloud serves instance
//! metadata and credentials), the unspecified address, the cloud metadata and host
//! endpoints outside 169.254.0.0/16, IPv6 link-local and the cloud endpoints on IPv6, and
//! every IPv6 form that carries a blocked IPv4 address inside it (IPv4-mapped,
//! IPv4-translated, IPv4-compatible, NAT64 well-known and local-use prefixes, 6to4,
//! Teredo): a resolver or a user may hand out any of them, and the host's network stack or
//! a translator on the path delivers them to the IPv4 address.

use anyhow::anyhow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Cloud metadata and host endpoints outside 169.254.0.0/16 (which is blocked whole).
const METADATA_V4: [(Ipv4Addr, &str); 3] = [
    // Alibaba Cloud ECS instance metadata (with RAM role credentials):
    // https://www.alibabacloud.com/help/en/ecs/user-guide/view-instance-metadata
    (
        Ipv4Addr::new(100, 100, 100, 200),
        "Alibaba Cloud's instance metadata service",
    ),
    // Azure WireServer, the host's virtual public IP for the VM agent, DNS, DHCP and health
    // probes: https://learn.microsoft.com/azure/virtual-network/what-is-ip-address-168-63-129-16
    (
        Ipv4Addr::new(168, 63, 129, 16),
        "Azure's WireServer host endpoint",
    ),
    // Oracle Cloud (Cloud at Customer, classic) instance metadata:
    // https://docs.oracle.com/en/cloud/cloud-at-customer/occ-get-started/retrieve-predefined-instance-metadata.html
    (
        Ipv4Addr::new(192, 0, 0, 192),
        "Oracle Cloud's classic instance metadata service",
    ),
];

/// IPv6 cloud metadata endpoints (IPv6 link-local, fe80::/10, is blocked whole).
const METADATA_V6: [(Ipv6Addr, &str); 2] = [
    // Scaleway instance metadata (IPv4 169.254.42.42):
    // https://www.scaleway.com/en/developers/api/instance/user-data and
    // https://docs.cloud-init.io/en/latest/reference/datasources/scaleway.html
    (
        Ipv6Addr::new(0xfd00, 0x42, 0, 0, 0, 0, 0, 0x42),
        "Scaleway's instance metadata service",
    ),
    // Akamai (Linode) metadata service (IPv4 169.254.169.254):
    // https://docs.cloud-init.io/en/latest/reference/datasources/akamai.html
    (
        Ipv6Addr::new(0xfd00, 0xa9fe, 0xa9fe, 0, 0, 0, 0, 1),
        "Akamai's (Linode's) metadata service",
    ),
];

/// AWS serves the IPv6 counterparts of its 169.254.0.0/16 services from fd00:ec2::/32:
/// instance metadata fd00:ec2::254, DNS fd00:ec2::253, NTP fd00:ec2::123
/// (https://docs.aws.amazon.com/whitepapers/latest/ipv6-on-aws/supporting-amazon-vpc-services.html,
/// https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html)
/// and the EKS Pod Identity agent's credentials fd00:ec2::23
/// (https://docs.aws.amazon.com/eks/latest/userguide/pod-id-agent-setup.html).
fn is_aws_services_v6(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    s[0] == 0xfd00 && s[1] == 0x0ec2
}

/// Why an address is never contacted, or `None` when it may be.
pub fn blocked_reason(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4).map(str::to_string),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn blocked_v4(v4: Ipv4Addr) -> Option<&'static str> {
    if v4.is_unspecified() {
        return Some("the unspecified address");
    }
    if v4.is_link_local() {
        return Some("a link-local address (where clouds serve instance metadata)");
    }
    METADATA_V4
        .iter()
        .find(|(addr, _)| *addr == v4)
        .map(|(_, what)| *what)
}

fn blocked_v6(v6: Ipv6Addr) -> Option<String> {
    if v6.is_unspecified() {
        return Some("the unspecified address".into());
    }
    if (v6.segments()[0] & 0xffc0) == 0xfe80 {
        return Some("a link-local address (where clouds serve instance metadata)".into());
    }
    if let Some((_, what)) = METADATA_V6.iter().find(|(addr, _)| *addr == v6) {
        return Some((*what).into());
    }
    if is_aws_services_v6(v6) {
        return Some("in fd00:ec2::/32, AWS's instance metadata and host services".into());
    }
    embedded_v4(v6).into_iter().find_map(|(v4, form)| {
        blocked_v4(v4).map(|what| format!("the {form} form of {v4}, {what}"))
    })
}

/// The IPv4 addresses an IPv6 address may stand for, with the name of the form.
fn embedded_v4(v6: Ipv6Addr) -> Vec<(Ipv4Addr, &'static str)> {
    let o = v6.octets();
    let s = v6.segments();
    let v4 = |a: usize, b: usize, c: usize, d: usize| Ipv4Addr::new(o[a], o[b], o[c], o[d]);
    let low = v4(12, 13, 14, 15);
    let mut out = Vec::new();
    match s {
        // ::ffff:a.b.c.d (RFC 4291 2.5.5.2)
        [0, 0, 0, 0, 0, 0xffff, _, _] => out.push((low, "IPv4-mapped")),
        // ::ffff:0:a.b.c.d (RFC 2765 SIIT)
        [0, 0, 0, 0, 0xffff, 0, _, _] => out.push((low, "IPv4-translated")),
        // ::a.b.c.d (RFC 4291 2.5.5.1, deprecated); :: and ::1 are not IPv4 addresses.
        [0, 0, 0, 0, 0, 0, _, _] if v6 != Ipv6Addr::LOCALHOST => {
            out.push((low, "IPv4-compatible"));
        }
        // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052).
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => out.push((low, "NAT64")),
        // NAT64 local-use prefix 64:ff9b:1::/48 (RFC 8215): the operator picks the prefix
        // length inside it, so every RFC 6052 layout that fits is considered (bits 64..71
        // are the reserved "u" octet).
        [0x64, 0xff9b, 1, ..] => {
            out.push((v4(6, 7, 9, 10), "NAT64 (local-use, /48)"));
            out.push((v4(7, 9, 10, 11), "NAT64 (local-use, /56)"));
            out.push((v4(9, 10, 11, 12), "NAT64 (local-use, /64)"));
            out.push((low, "NAT64 (local-use, /96)"));
        }
        // 6to4 2002:AABB:CCDD::/48 (RFC 3056).
        [0x2002, ..] => out.push((v4(2, 3, 4, 5), "6to4")),
        // Teredo 2001:0::/32 (RFC 4380): the server's address, and the client's
        // (obfuscated: every bit inverted).
        [0x2001, 0, ..] => {
            out.push((v4(4, 5, 6, 7), "Teredo server"));
            out.push((
                Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15]),
                "Teredo client",
            ));
        }
        _ => {}
    }
    // 0.0.0.0 means "this host" only to the host's own stack (mapped and translated
    // forms); behind a translator or tunnel it reaches nothing, and zero bits read in a
    // NAT64 layout the operator did not choose would decode as it.
    out.retain(|(a, form)| !a.is_unspecified() || form.starts_with("IPv4-"));
    out
}

/// A host as the guard compares it: lowercase, IPv6 without brackets, and without the
/// trailing dot(s) of a fully qualified name (`deny.example.` is `deny.example`).
pub fn normalize_host(host: &str) -> String {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// An IP literal written in a glob or host (`10.0.0.1`, `fd00::1`, `[fd00::1]`).
pub fn ip_literal(text: &str) -> Option<IpAddr> {
    let bare = text
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse().ok()
}

/// Checks a host glob of `--allow-host` / `--deny-host` / `allowHosts` / `denyHosts` and
/// returns it as it is compared (lowercase; an IPv6 literal without brackets). `*` matches
/// any run of characters. A glob that could never match a host is refused with the reason.
pub fn validate_glob(glob: &str) -> Result<String, String> {
    if glob.is_empty() {
        return Err("is empty".into());
    }
    if let Some(ip) = ip_literal(glob) {
        return Ok(ip.to_string());
    }
    if glob.contains("://") {
        return Err("has a scheme: write the host name only (e.g. registry.example.com)".into());
    }
    if glob.contains('/') {
        return Err("has a path: write the host name only (e.g. registry.example.com)".into());
    }
    if glob.contains(':') {
        let is_port = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit() || b == b'*');
        let with_port = match glob.strip_prefix('[').and_then(|g| g.split_once("]:")) {
            Some((addr, port)) => is_port(port).then_some(addr),
            None => glob
                .split_once(':')
                .filter(|(_, port)| !port.contains(':') && is_port(port))
                .map(|(host, _)| host),
        };
        if let Some(host) = with_port {
            return Err(format!(
                "has a port: hosts are matched without their port (write {host:?})"
            ));
        }
        return Err(if glob.contains('*') {
            "is an IPv6 address with `*`: IPv6 addresses are matched exactly".into()
        } else {
            "is not a host name or IP address (`:` is only valid in IPv6 addresses)".into()
        });
    }
    if let Some(stripped) = glob.strip_suffix('.') {
        return Err(format!(
            "ends with a dot: host names are compared without it (write {:?})",
            stripped.trim_end_matches('.')
        ));
    }
    if glob.starts_with('.') || glob.contains("..") {
        return Err(
            "has an empty label (write `*.example.com` to match the names under example.com)"
                .into(),
        );
    }
    if let Some(c) = glob
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*' | '_')))
    {
        return Err(if c.is_ascii() {
            format!("has {c:?}, which is not valid in a host name")
        } else {
            format!(
                "has {c:?}: write internationalized names in their ASCII (xn--) form, as they are compared"
            )
        });
    }
    Ok(glob.to_ascii_lowercase())
}

/// Checks every glob of one setting; the error names the setting and the glob.
pub fn validate_globs(globs: &[String], setting: &str) -> anyhow::Result<Vec<String>> {
    globs
        .iter()
        .map(|g| validate_glob(g).map_err(|why| anyhow!("{setting}: host glob {g:?} {why}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    // IPv4 ranges and endpoints.
    #[case("169.254.169.254", false)]
    #[case("169.254.0.23", false)] // Tencent Cloud's metadata.tencentyun.com
    #[case("169.254.170.2", false)] // AWS ECS task credentials
    #[case("0.0.0.0", false)]
    #[case("100.100.100.200", false)]
    #[case("168.63.129.16", false)]
    #[case("192.0.0.192", false)]
    #[case("168.63.129.17", true)]
    #[case("100.100.100.201", true)]
    #[case("127.0.0.1", true)]
    #[case("10.0.0.1", true)]
    #[case("192.168.1.1", true)]
    #[case("100.64.0.1", true)]
    // IPv6 endpoints and ranges.
    #[case("::", false)]
    #[case("fe80::1", false)]
    #[case("febf::1", false)]
    #[case("fd00:ec2::254", false)]
    #[case("fd00:ec2::23", false)]
    #[case("fd00:ec2::123", false)]
    #[case("fd00:42::42", false)]
    #[case("fd00:a9fe:a9fe::1", false)]
    #[case("fd00:ec3::254", true)]
    #[case("fd00::1", true)]
    #[case("::1", true)]
    #[case("2001:db8::1", true)]
    // IPv4-mapped and IPv4-translated.
    #[case("::ffff:169.254.169.254", false)]
    #[case("::ffff:a9fe:a9fe", false)]
    #[case("::ffff:168.63.129.16", false)]
    #[case("::ffff:100.100.100.200", false)]
    #[case("::ffff:0.0.0.0", false)]
    #[case("::ffff:0:a9fe:a9fe", false)]
    #[case("::ffff:127.0.0.1", true)]
    // IPv4-compatible.
    #[case("::a9fe:a9fe", false)]
    #[case("::169.254.1.1", false)]
    #[case("::a83f:8110", false)] // ::168.63.129.16
    #[case("::6464:64c8", false)] // ::100.100.100.200
    #[case("::c000:c0", false)] // ::192.0.0.192
    #[case("::7f00:1", true)]
    // NAT64, well-known and local-use prefixes.
    #[case("64:ff9b::a9fe:a9fe", false)]
    #[case("64:ff9b::169.254.169.254", false)]
    #[case("64:ff9b::a83f:8110", false)]
    #[case("64:ff9b::6464:64c8", false)]
    #[case("64:ff9b::c000:c0", false)]
    #[case("64:ff9b::808:808", true)]
    #[case("64:ff9b:1::a9fe:a9fe", false)] // /96 layout
    #[case("64:ff9b:1:a9fe:a9:fe00::", false)] // /48 layout: 169.254 at bits 48..63, 169.254 after u
    #[case("64:ff9b:1:00a9:00fe:a9fe::", false)] // /56 layout
    #[case("64:ff9b:1:0:a9:fea9:fe00:0", false)] // /64 layout
    #[case("64:ff9b:1::808:808", true)]
    #[case("64:ff9b::", true)]
    // 6to4 and Teredo.
    #[case("2002:a9fe:a9fe::1", false)]
    #[case("2002:a83f:8110::", false)]
    #[case("2002:0808:0808::1", true)]
    #[case("2001:0:a9fe:a9fe::1", false)]
    #[case("2001:0:0808:0808::5601:5601", false)] // client: 169.254.169.254 inverted
    #[case("2001:0:0808:0808::f7f7:f7f7", true)] // client 8.8.8.8
    #[case("2002::1", true)]
    fn block_list(#[case] ip: &str, #[case] allowed: bool) {
        let addr: IpAddr = ip.parse().unwrap();
        assert_eq!(
            blocked_reason(addr).is_none(),
            allowed,
            "{ip}: {:?}",
            blocked_reason(addr)
        );
    }

    #[test]
    fn reasons_name_the_form_and_the_ipv4_address() {
        let r = blocked_reason("::a9fe:a9fe".parse().unwrap()).unwrap();
        assert_eq!(
            r,
            "the IPv4-compatible form of 169.254.169.254, a link-local address (where clouds serve instance metadata)"
        );
        let r = blocked_reason("64:ff9b::a83f:8110".parse().unwrap()).unwrap();
        assert!(
            r.contains("NAT64 form of 168.63.129.16, Azure's WireServer"),
            "{r}"
        );
    }

    #[rstest]
    #[case("deny.example.", "deny.example")]
    #[case("DENY.Example..", "deny.example")]
    #[case("[fd00::1]", "fd00::1")]
    #[case("registry.example.com", "registry.example.com")]
    fn normalized_hosts(#[case] host: &str, #[case] want: &str) {
        assert_eq!(normalize_host(host), want);
    }

    #[rstest]
    #[case("registry.example.com", Ok("registry.example.com"))]
    #[case("*.Example.COM", Ok("*.example.com"))]
    #[case("*", Ok("*"))]
    #[case("10.0.*", Ok("10.0.*"))]
    #[case("my_registry.corp", Ok("my_registry.corp"))]
    #[case("[FD00::1]", Ok("fd00::1"))]
    #[case("fd00:0:0::1", Ok("fd00::1"))]
    #[case("", Err("is empty"))]
    #[case("deny.example.", Err("ends with a dot"))]
    #[case("deny.example:5000", Err("has a port"))]
    #[case("[fd00::1]:5000", Err("has a port"))]
    #[case("*.example.com:*", Err("has a port"))]
    #[case("https://deny.example", Err("has a scheme"))]
    #[case("deny.example/v2", Err("has a path"))]
    #[case(".example.com", Err("empty label"))]
    #[case("a..example.com", Err("empty label"))]
    #[case("deny example", Err("not valid in a host name"))]
    #[case(" deny.example", Err("not valid in a host name"))]
    #[case("user@deny.example", Err("not valid in a host name"))]
    #[case("bücher.example", Err("xn--"))]
    #[case("fd00::*", Err("matched exactly"))]
    #[case("a:b", Err("not a host name"))]
    fn globs_are_validated(#[case] glob: &str, #[case] want: Result<&str, &str>) {
        match (validate_glob(glob), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(got), Err(want)) => assert!(got.contains(want), "{glob:?}: {got}"),
            (got, want) => panic!("{glob:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn glob_errors_name_the_setting_and_the_glob() {
        let err = validate_globs(
            &["ok.example".into(), "deny.example.".into()],
            "--deny-host",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "--deny-host: host glob \"deny.example.\" ends with a dot: host names are compared without it (write \"deny.example\")"
        );
    }
}
