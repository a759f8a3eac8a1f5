//! A throw-away CA (rcgen) signing the registry's and the token server's certificates,
//! and the token signing key with its certificate.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use sha2::{Digest, Sha256};
use std::sync::Once;

/// Installs aws-lc-rs as the process-wide rustls provider (once; "already installed" is fine).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// A certificate and its private key, both PEM (key in PKCS#8).
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

pub struct TestCa {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, "pullcheck test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-signed CA");
        TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A TLS server certificate for `127.0.0.1` (IP SAN) and `localhost`.
    pub fn server_leaf(&self, common_name: &str) -> Leaf {
        self.server_leaf_for(&["127.0.0.1", "localhost"], common_name)
    }

    /// A TLS server certificate for these names (IP addresses become IP SANs).
    pub fn server_leaf_for(&self, names: &[&str], common_name: &str) -> Leaf {
        let mut names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        names.sort();
        names.dedup();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A certificate for the token signing key (ES256, P-256).
    pub fn token_signer(&self) -> (Leaf, KeyPair) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("signer params");
        params
            .distinguished_name
            .push(DnType::CommonName, "pullcheck test token signer");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("signer key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign signer cert");
        let leaf = Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        (leaf, key)
    }

    fn sign(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// The libtrust key ID of a public key, as docker/distribution 2.8 computes it for the
/// keys of `rootcertbundle`: SHA-256 of the DER SubjectPublicKeyInfo, first 30 bytes,
/// base32 (RFC 4648, no padding), 12 groups of 4 characters joined with ':'.
pub fn libtrust_key_id(key: &impl PublicKeyData) -> String {
    let spki = key.subject_public_key_info();
    let hash = Sha256::digest(&spki);
    let b32 = base32_nopad(&hash[..30]);
    let groups: Vec<&str> = (0..b32.len())
        .step_by(4)
        .map(|i| &b32[i..(i + 4).min(b32.len())])
        .collect();
    groups.join(":")
}

fn base32_nopad(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer: u64 = 0;
    let mut bits = 0u32;
    for &byte in data {
        buffer = (buffer << 8) | u64::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}
