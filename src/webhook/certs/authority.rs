//! A CA able to sign: created (ECDSA P-256, 10 years) or loaded from `--ca-cert/--ca-key`
//! (its subject copied byte for byte into what it issues), and the webpki check of every
//! chain before anything is written.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::RootCertStore;
use sha2::{Digest, Sha256};
use x509_parser::extensions::ParsedExtension;
use x509_parser::x509::X509Name;

use super::{read, CertError, Pem, BACKDATE, CA_DAYS, DAY};

/// A CA able to sign: its certificate, its key, and what rcgen needs to name it as issuer.
pub(super) struct Authority {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
    /// Whether the serving certificate gets an authorityKeyIdentifier: when the CA has a
    /// subjectKeyIdentifier for it to repeat.
    key_id: bool,
    /// End of a loaded CA's validity (Unix seconds): nothing it signs may outlive it.
    not_after: Option<i64>,
}

impl Authority {
    pub(super) fn create(now: SystemTime) -> Result<Authority, CertError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        // A short fingerprint in the name tells CAs apart while two are trusted (rotation).
        let fingerprint = Sha256::digest(key.public_key_raw());
        let short = crate::text::hex(&fingerprint[..4]);
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "pullcheck");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("pullcheck webhook CA {short}"));
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + DAY * CA_DAYS).into();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Authority {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
            key_id: true,
            not_after: None,
        })
    }

    /// The CA of `--ca-cert`/`--ca-key`: refused when the key is not the certificate's, when
    /// it is not valid at `now`, or when its subject cannot be repeated exactly.
    pub(super) fn load(
        cert_path: &Path,
        key_path: &Path,
        now: SystemTime,
    ) -> Result<Authority, CertError> {
        let cert_err = |reason: String| CertError::CaCert {
            path: cert_path.to_path_buf(),
            reason,
        };
        let key_err = |reason: String| CertError::CaKey {
            path: key_path.to_path_buf(),
            reason,
        };
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;

        let cert_der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .next()
            .ok_or_else(|| cert_err("no PEM CERTIFICATE block".into()))?
            .map_err(|e| cert_err(format!("not PEM: {e}")))?;
        let (_, x509) = x509_parser::parse_x509_certificate(cert_der.as_ref())
            .map_err(|e| cert_err(format!("not an X.509 certificate: {e}")))?;
        check_subject(x509.subject()).map_err(cert_err)?;
        let validity = x509.validity();
        let (not_before, not_after) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        let now = unix(now);
        if now < not_before {
            return Err(cert_err(format!(
                "not valid before {}",
                validity.not_before
            )));
        }
        if now > not_after {
            return Err(cert_err(format!(
                "expired on {}: the API server no longer trusts what it signed",
                validity.not_after
            )));
        }

        let key_der = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .map_err(|e| key_err(format!("not PEM: {e}")))?
            .ok_or_else(|| key_err("no PEM PRIVATE KEY block".into()))?;
        if !matches!(key_der, PrivateKeyDer::Pkcs8(_)) {
            return Err(key_err(format!(
                "not PKCS#8; convert it with `openssl pkcs8 -topk8 -nocrypt -in {0} -out {0}.pk8`",
                key_path.display()
            )));
        }
        let key =
            KeyPair::try_from(&key_der).map_err(|e| key_err(format!("unsupported key: {e}")))?;
        if key.public_key_raw() != &*x509.public_key().subject_public_key.data {
            return Err(CertError::CaKeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            });
        }

        // The authorityKeyIdentifier of what it signs repeats the CA's subjectKeyIdentifier,
        // however it was computed (rcgen reads it); without one, there is none.
        let key_id = x509.iter_extensions().any(|e| {
            matches!(
                e.parsed_extension(),
                ParsedExtension::SubjectKeyIdentifier(_)
            )
        });
        let key_pem = key.serialize_pem();
        // rcgen reads the subject (each attribute with its string type, so the issuer of
        // what it signs is the CA's subject byte for byte), the key identifier and the key
        // usages.
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| cert_err(format!("cannot sign as this CA: {e}")))?;
        Ok(Authority {
            cert_pem: pem_of(&cert_der),
            cert_der,
            key_pem,
            issuer,
            key_id,
            not_after: Some(not_after),
        })
    }

    pub(super) fn pem(&self) -> Pem {
        Pem {
            cert: self.cert_pem.clone(),
            key: self.key_pem.clone(),
        }
    }

    /// A serving certificate for `names`, verified against this CA for every name.
    pub(super) fn issue(
        &self,
        names: &[String],
        days: u32,
        now: SystemTime,
    ) -> Result<Pem, CertError> {
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = DistinguishedName::new();
        if let Some(name) = names.get(2).or(names.first()) {
            params
                .distinguished_name
                .push(DnType::CommonName, name.as_str());
        }
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + DAY * days).into();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = self.key_id;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        for name in names {
            verify(&self.cert_der, cert.der(), name)?;
        }
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

impl Authority {
    /// A TLS client certificate for the API server (`serve --client-ca` trusts this CA),
    /// verified as a client certificate before it is returned.
    pub(super) fn issue_client(&self, days: u32, now: SystemTime) -> Result<Pem, CertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            crate::webhook::certs::apiserver_auth::CLIENT_NAME,
        );
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + DAY * days).into();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = self.key_id;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        crate::webhook::certs::apiserver_auth::verify_client(&self.cert_der, cert.der())
            .map_err(|e| CertError::Verify(format!("client certificate: {e}")))?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

impl Authority {
    /// Whole days a loaded CA is still valid at `now` (`None` for a CA created here): what
    /// it signs must not outlive it, or it stops verifying (the API server checks the CA's
    /// dates) on a day nobody chose.
    pub(super) fn days_left(&self, now: SystemTime) -> Option<i64> {
        self.not_after
            .map(|end| (end - unix(now)).max(0) / DAY.as_secs() as i64)
    }
}

/// Seconds since the Unix epoch (negative before it).
fn unix(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A subject name rcgen repeats exactly: one attribute per RDN, each type once (rcgen's
/// name keeps one value per type, so a second `OU` would vanish from the issuer field and
/// nothing signed would chain).
fn check_subject(name: &X509Name<'_>) -> Result<(), String> {
    let mut seen = Vec::new();
    for rdn in name.iter_rdn() {
        let mut attributes = rdn.iter();
        let (Some(attribute), None) = (attributes.next(), attributes.next()) else {
            return Err("multi-valued subject name attributes are not supported".into());
        };
        let oid = attribute.attr_type();
        if seen.contains(&oid) {
            return Err("repeated subject name attributes are not supported".into());
        }
        seen.push(oid);
    }
    Ok(())
}

/// Verifies `leaf` for `name` with webpki, trusting only `ca`.
pub(super) fn verify(
    ca: &CertificateDer<'_>,
    leaf: &CertificateDer<'_>,
    name: &str,
) -> Result<(), CertError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.clone().into_owned())
        .map_err(|e| CertError::Verify(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| CertError::Verify(e.to_string()))?;
    let server_name =
        ServerName::try_from(name.to_string()).map_err(|e| CertError::Verify(e.to_string()))?;
    verifier
        .verify_server_cert(leaf, &[], &server_name, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| CertError::Verify(format!("{name}: {e}")))
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
