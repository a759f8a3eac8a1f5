//! TLS trust as Go's `crypto/x509` gives it to containerd, CRI-O and skopeo, and every
//! refusal in plain words.
//!
//! The nodes' runtimes trust a registry whose certificate is byte-equal to one configured
//! as its CA, whatever the certificate's basicConstraints: Go's `Certificate.Verify`
//! returns the one-certificate chain when the pool contains the leaf itself, after checking
//! only its validity dates, its name (SANs) and its extended key usage. The certificate
//! Docker's registry documentation makes (`openssl req -x509 …`, marked `CA:TRUE`) is such
//! a case; webpki refuses it as `CaUsedAsEndEntity` before looking at trust anchors.
//! [`GoTrust`] asks the usual verifier (system roots plus the configured CAs) first and,
//! when it refuses a certificate that is byte-equal to a configured CA, applies Go's leaf
//! checks instead. Refusals carry a [`TrustProblem`], which
//! [`super::http::classify`] turns into words naming the fix.

use std::fmt;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, SignatureScheme};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// Why a registry's certificate is not trusted, in terms a user can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrustProblem {
    /// Self-signed (issuer = subject) and not configured as the registry's CA.
    #[error("its certificate is self-signed ({subject}) and not trusted")]
    SelfSigned { subject: String },
    /// Issued by a CA that is neither a system root nor configured.
    #[error("its certificate is issued by {issuer}, which is not trusted")]
    UntrustedIssuer { issuer: String },
    /// A CA certificate (`CA:TRUE`) served as the server's own, not configured as the
    /// registry's CA: rustls refuses it whoever signed it (Go would accept it when its
    /// issuer is trusted).
    #[error("its certificate ({subject}) is a CA certificate (basicConstraints CA:TRUE), not a server certificate")]
    CaAsServer { subject: String },
    #[error("its certificate expired on {not_after}")]
    Expired { not_after: String },
    #[error("its certificate is not valid before {not_before}")]
    NotYetValid { not_before: String },
    #[error(
        "its certificate is valid for {}, not {wanted}",
        names_or_none(valid_for)
    )]
    WrongName {
        wanted: String,
        valid_for: Vec<String>,
    },
    #[error("its certificate is not for servers (its extended key usage lacks serverAuth)")]
    KeyUsage,
}

fn names_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "no name (it has no subjectAltName)".to_owned()
    } else {
        names.join(", ")
    }
}

impl TrustProblem {
    /// The problem and how to fix it, for the registry host `host` (`host[:port]`).
    pub fn describe(&self, host: &str) -> String {
        match self {
            TrustProblem::SelfSigned { .. } | TrustProblem::CaAsServer { .. } => {
                format!("{self}: trust it with --registry-ca {host}=FILE")
            }
            TrustProblem::UntrustedIssuer { .. } => {
                format!("{self}: trust that CA with --registry-ca {host}=FILE")
            }
            _ => self.to_string(),
        }
    }
}

/// A distinguished name for messages (clipped: admission warnings are short).
fn name_of(name: &x509_parser::x509::X509Name<'_>) -> String {
    crate::text::clip(&name.to_string(), 80).into_owned()
}

/// The rustls client configuration of registry clients: [`GoTrust`] over the system roots
/// and `ca_pems` (PEM bundles), HTTP/2 and HTTP/1.1 offered.
pub fn client_config(ca_pems: &[Vec<u8>]) -> anyhow::Result<rustls::ClientConfig> {
    let mut configured = Vec::new();
    for pem in ca_pems {
        let certs = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .context("invalid CA certificate PEM")?;
        if certs.is_empty() {
            anyhow::bail!("CA file holds no PEM certificate");
        }
        configured.extend(certs);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let inner = if configured.is_empty() {
        rustls_platform_verifier::Verifier::new(Arc::clone(&provider))
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(
            configured.iter().cloned(),
            Arc::clone(&provider),
        )
    }
    .context("cannot load the system's trusted certificates")?;
    let verifier = GoTrust {
        inner: Arc::new(inner),
        configured,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Server certificate verification as Go's: the inner (webpki) verifier's answer, except
/// that a certificate byte-equal to a configured CA is trusted after Go's leaf checks.
pub struct GoTrust {
    inner: Arc<dyn ServerCertVerifier>,
    configured: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for GoTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoTrust")
            .field("configured", &self.configured.len())
            .finish()
    }
}

impl GoTrust {
    #[cfg(test)]
    fn new(inner: Arc<dyn ServerCertVerifier>, configured: Vec<CertificateDer<'static>>) -> Self {
        Self { inner, configured }
    }
}

fn refuse(problem: TrustProblem) -> Error {
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(problem))))
}

/// The [`TrustProblem`] inside a rustls error, if it is one of [`GoTrust`]'s.
pub fn trust_problem(err: &Error) -> Option<&TrustProblem> {
    match err {
        Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<TrustProblem>()
        }
        _ => None,
    }
}

impl ServerCertVerifier for GoTrust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let err = match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(err) => err,
        };
        let Ok((_, cert)) = X509Certificate::from_der(end_entity.as_ref()) else {
            return Err(err);
        };
        if self
            .configured
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            go_leaf_checks(&cert, end_entity, server_name, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        Err(explain(err, &cert, server_name))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What Go's `isValid(leafCertificate)` and `VerifyHostname` check of a certificate the
/// pool contains: validity (both bounds inclusive), the name (SANs only; webpki's rules
/// are Go's), and the extended key usage when there is one. Unknown critical extensions
/// are refused by the parser rustls uses, as Go refuses them.
fn go_leaf_checks(
    cert: &X509Certificate<'_>,
    der: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), Error> {
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = cert.validity();
    if now < validity.not_before.timestamp() {
        return Err(refuse(TrustProblem::NotYetValid {
            not_before: date(validity.not_before),
        }));
    }
    if now > validity.not_after.timestamp() {
        return Err(refuse(TrustProblem::Expired {
            not_after: date(validity.not_after),
        }));
    }
    let parsed = rustls::server::ParsedCertificate::try_from(der)?;
    if rustls::client::verify_server_name(&parsed, server_name).is_err() {
        return Err(refuse(wrong_name(cert, server_name)));
    }
    match cert.extended_key_usage() {
        Ok(None) => {}
        Ok(Some(eku)) if eku.value.any || eku.value.server_auth => {}
        _ => return Err(refuse(TrustProblem::KeyUsage)),
    }
    Ok(())
}

/// The inner verifier's refusal in plain words where the certificate says why; other
/// errors as they are.
fn explain(err: Error, cert: &X509Certificate<'_>, server_name: &ServerName<'_>) -> Error {
    let Error::InvalidCertificate(ce) = &err else {
        return err;
    };
    let validity = cert.validity();
    let problem = match ce {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            TrustProblem::Expired {
                not_after: date(validity.not_after),
            }
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            TrustProblem::NotYetValid {
                not_before: date(validity.not_before),
            }
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            wrong_name(cert, server_name)
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            TrustProblem::KeyUsage
        }
        CertificateError::UnknownIssuer | CertificateError::Other(_) => {
            if cert.subject().as_raw() == cert.issuer().as_raw() {
                TrustProblem::SelfSigned {
                    subject: name_of(cert.subject()),
                }
            } else if cert.is_ca() {
                TrustProblem::CaAsServer {
                    subject: name_of(cert.subject()),
                }
            } else if matches!(ce, CertificateError::UnknownIssuer) {
                TrustProblem::UntrustedIssuer {
                    issuer: name_of(cert.issuer()),
                }
            } else {
                return err;
            }
        }
        _ => return err,
    };
    refuse(problem)
}

fn wrong_name(cert: &X509Certificate<'_>, server_name: &ServerName<'_>) -> TrustProblem {
    let mut valid_for = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => valid_for.push(crate::text::clip(n, 253).into_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                        valid_for.push(std::net::Ipv4Addr::from(v4).to_string());
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                        valid_for.push(std::net::Ipv6Addr::from(v6).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    valid_for.truncate(8);
    TrustProblem::WrongName {
        wanted: server_name.to_str().into_owned(),
        valid_for,
    }
}

/// A certificate time as an HTTP date (`Sun, 29 Nov 2026 12:00:00 GMT`).
fn date(t: x509_parser::time::ASN1Time) -> String {
    match u64::try_from(t.timestamp()) {
        Ok(secs) => {
            httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        }
        Err(_) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };

    struct Made {
        der: CertificateDer<'static>,
    }

    /// A self-signed certificate for `names`, `CA:TRUE` when `ca`, valid from 2020 to
    /// `until_year`.
    fn self_signed(names: &[&str], ca: bool, until_year: i32, eku: bool) -> Made {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "registry.test");
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        if eku {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(until_year, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Made {
            der: cert.der().clone(),
        }
    }

    fn verifier(configured: &[&Made]) -> GoTrust {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let ders: Vec<CertificateDer<'static>> = configured.iter().map(|m| m.der.clone()).collect();
        let inner = if ders.is_empty() {
            rustls_platform_verifier::Verifier::new(provider).unwrap()
        } else {
            rustls_platform_verifier::Verifier::new_with_extra_roots(ders.clone(), provider)
                .unwrap()
        };
        GoTrust::new(Arc::new(inner), ders)
    }

    fn verify(v: &GoTrust, cert: &Made, name: &str) -> Result<(), TrustProblem> {
        let name = ServerName::try_from(name.to_owned()).unwrap();
        // 2026-06-01
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_780_272_000));
        match v.verify_server_cert(&cert.der, &[], &name, &[], now) {
            Ok(_) => Ok(()),
            Err(e) => Err(trust_problem(&e)
                .cloned()
                .unwrap_or_else(|| panic!("not in plain words: {e}"))),
        }
    }

    #[test]
    fn a_configured_self_signed_ca_true_certificate_is_trusted_as_go_trusts_it() {
        let cert = self_signed(&["localhost", "127.0.0.1"], true, 2030, false);
        let v = verifier(&[&cert]);
        // webpki alone refuses it (CaUsedAsEndEntity), configured or not.
        let name = ServerName::try_from("localhost").unwrap();
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_780_272_000));
        assert!(v
            .inner
            .verify_server_cert(&cert.der, &[], &name, &[], now)
            .is_err());
        assert_eq!(verify(&v, &cert, "127.0.0.1"), Ok(()));
        assert_eq!(verify(&verifier(&[&cert]), &cert, "localhost"), Ok(()));
    }

    #[test]
    fn go_still_checks_the_name_the_dates_and_the_key_usage() {
        let cert = self_signed(&["localhost"], true, 2030, false);
        assert_eq!(
            verify(&verifier(&[&cert]), &cert, "registry.example"),
            Err(TrustProblem::WrongName {
                wanted: "registry.example".into(),
                valid_for: vec!["localhost".into()],
            })
        );
        let old = self_signed(&["localhost"], true, 2025, false);
        assert_eq!(
            verify(&verifier(&[&old]), &old, "localhost"),
            Err(TrustProblem::Expired {
                not_after: "Wed, 01 Jan 2025 00:00:00 GMT".into()
            })
        );
        let client_only = self_signed(&["localhost"], true, 2030, true);
        assert_eq!(
            verify(&verifier(&[&client_only]), &client_only, "localhost"),
            Err(TrustProblem::KeyUsage)
        );
    }

    #[test]
    fn refusals_say_why_in_plain_words() {
        let cert = self_signed(&["localhost"], true, 2030, false);
        let other = self_signed(&["localhost"], true, 2030, false);
        // Not configured (another certificate is): self-signed, whatever webpki's reason.
        let problem = verify(&verifier(&[&other]), &cert, "localhost").unwrap_err();
        assert_eq!(
            problem,
            TrustProblem::SelfSigned {
                subject: "CN=registry.test".into()
            }
        );
        assert_eq!(
            problem.describe("localhost:5000"),
            "its certificate is self-signed (CN=registry.test) and not trusted: trust it with --registry-ca localhost:5000=FILE"
        );
        let leaf_ca_false = self_signed(&["localhost"], false, 2030, false);
        assert!(matches!(
            verify(&verifier(&[]), &leaf_ca_false, "localhost"),
            Err(TrustProblem::SelfSigned { .. })
        ));
    }

    #[test]
    fn a_certificate_of_an_unknown_issuer_names_the_issuer() {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Corp Root CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        leaf.not_before = rcgen::date_time_ymd(2020, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(2030, 1, 1);
        let key = KeyPair::generate().unwrap();
        let cert = Made {
            der: leaf.signed_by(&key, &issuer).unwrap().der().clone(),
        };
        let problem = verify(&verifier(&[]), &cert, "localhost").unwrap_err();
        assert_eq!(
            problem,
            TrustProblem::UntrustedIssuer {
                issuer: "CN=Corp Root CA".into()
            }
        );
        assert!(problem
            .describe("r.example")
            .ends_with("which is not trusted: trust that CA with --registry-ca r.example=FILE"));
    }
}
