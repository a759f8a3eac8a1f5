//! Just enough DER to copy a CA's subject name into rcgen and to compare its public key
//! with the key file (webpki hands over both as the contents of their SEQUENCE).

use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString, UniversalString};
use rcgen::{DistinguishedName, DnType, DnValue};

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;

/// One tag-length-value: (tag, contents, rest). Single-byte tags, definite lengths.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

fn expect(input: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
    match tlv(input)? {
        (tag, contents, rest) if tag == want => Some((contents, rest)),
        _ => None,
    }
}

/// The subjectKeyIdentifier extension of a certificate, if it has one.
pub(super) fn subject_key_id(cert: &[u8]) -> Option<Vec<u8>> {
    const SKI: &[u8] = &[0x55, 0x1d, 0x0e]; // 2.5.29.14
    let (certificate, _) = expect(cert, SEQUENCE)?;
    let (mut tbs, _) = expect(certificate, SEQUENCE)?;
    // version [0], serial, signature, issuer, validity, subject, subjectPublicKeyInfo,
    // then optional issuerUniqueID [1], subjectUniqueID [2], extensions [3].
    while let Some((tag, contents, rest)) = tlv(tbs) {
        tbs = rest;
        if tag != 0xa3 {
            continue;
        }
        let (mut extensions, _) = expect(contents, SEQUENCE)?;
        while let Some((extension, rest)) = expect(extensions, SEQUENCE) {
            extensions = rest;
            let (oid, rest) = expect(extension, OID)?;
            if oid != SKI {
                continue;
            }
            let rest = match tlv(rest)? {
                (0x01, _, after_critical) => after_critical,
                _ => rest,
            };
            let (value, _) = expect(rest, OCTET_STRING)?;
            let (key_id, _) = expect(value, OCTET_STRING)?;
            return Some(key_id.to_vec());
        }
        return None;
    }
    None
}

/// The public key bits of a subjectPublicKeyInfo's contents.
pub(super) fn spki_public_key(contents: &[u8]) -> Option<&[u8]> {
    let (_algorithm, rest) = expect(contents, SEQUENCE)?;
    let (bits, rest) = expect(rest, BIT_STRING)?;
    match bits.split_first()? {
        (0, key) if rest.is_empty() => Some(key),
        _ => None,
    }
}

/// The contents of a Name as an rcgen name that encodes to the same bytes.
pub(super) fn name(mut contents: &[u8]) -> Result<DistinguishedName, String> {
    let malformed = || "malformed subject name".to_string();
    let mut dn = DistinguishedName::new();
    while !contents.is_empty() {
        let (rdn, rest) = expect(contents, SET).ok_or_else(malformed)?;
        contents = rest;
        let (attribute, more) = expect(rdn, SEQUENCE).ok_or_else(malformed)?;
        if !more.is_empty() {
            return Err("multi-valued subject name attributes are not supported".into());
        }
        let (oid, value) = expect(attribute, OID).ok_or_else(malformed)?;
        let (tag, bytes, end) = tlv(value).ok_or_else(malformed)?;
        if !end.is_empty() {
            return Err(malformed());
        }
        let ty = DnType::from_oid(&oid_arcs(oid).ok_or_else(malformed)?);
        if dn.get(&ty).is_some() {
            return Err("repeated subject name attributes are not supported".into());
        }
        dn.push(ty, value_of(tag, bytes)?);
    }
    Ok(dn)
}

fn value_of(tag: u8, bytes: &[u8]) -> Result<DnValue, String> {
    let text = || std::str::from_utf8(bytes).map_err(|e| format!("subject name: {e}"));
    let asn1 = |e: rcgen::Error| format!("subject name: {e}");
    Ok(match tag {
        0x0c => DnValue::Utf8String(text()?.to_string()),
        0x13 => DnValue::PrintableString(PrintableString::try_from(text()?).map_err(asn1)?),
        0x14 => DnValue::TeletexString(TeletexString::try_from(text()?).map_err(asn1)?),
        0x16 => DnValue::Ia5String(Ia5String::try_from(text()?).map_err(asn1)?),
        0x1c => {
            DnValue::UniversalString(UniversalString::from_utf32be(bytes.to_vec()).map_err(asn1)?)
        }
        0x1e => DnValue::BmpString(BmpString::from_utf16be(bytes.to_vec()).map_err(asn1)?),
        other => {
            return Err(format!(
                "subject name: unsupported string type 0x{other:02x}"
            ))
        }
    })
}

/// Arcs of an OBJECT IDENTIFIER's contents.
fn oid_arcs(contents: &[u8]) -> Option<Vec<u64>> {
    let mut arcs = Vec::new();
    let mut value: u64 = 0;
    for (i, &b) in contents.iter().enumerate() {
        if value > (u64::MAX >> 7) {
            return None;
        }
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 != 0 {
            continue;
        }
        if arcs.is_empty() {
            let first = (value / 40).min(2);
            arcs.push(first);
            arcs.push(value - first * 40);
        } else {
            arcs.push(value);
        }
        value = 0;
        if i + 1 == contents.len() {
            return Some(arcs);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256};

    #[test]
    fn oid_arcs_decode_common_name_and_large_arcs() {
        assert_eq!(oid_arcs(&[0x55, 0x04, 0x03]), Some(vec![2, 5, 4, 3]));
        // 1.2.840.113549 (rsadsi)
        assert_eq!(
            oid_arcs(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]),
            Some(vec![1, 2, 840, 113549])
        );
        assert_eq!(oid_arcs(&[0x55, 0x84]), None, "truncated arc");
        assert_eq!(oid_arcs(&[]), None);
    }

    #[test]
    fn subject_key_id_is_found_where_present() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        assert_eq!(subject_key_id(ca.der()), Some(params.key_identifier(&key)));
        // No extensions at all: no identifier, and no error.
        let bare = CertificateParams::default().self_signed(&key).unwrap();
        assert_eq!(subject_key_id(bare.der()), None);
        assert_eq!(subject_key_id(&[0x30, 0x00]), None);
    }

    #[test]
    fn tlv_refuses_truncated_and_indefinite_lengths() {
        assert_eq!(tlv(&[0x30, 0x03, 0x01]), None);
        assert_eq!(tlv(&[0x30, 0x80, 0x00, 0x00]), None);
        assert_eq!(
            tlv(&[0x30, 0x81, 0x01, 0x05]),
            Some((0x30, &[0x05][..], &[][..]))
        );
    }
}
