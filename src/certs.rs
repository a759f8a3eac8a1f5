//! Certificates for the webhook's HTTPS endpoint: a private CA plus a serving certificate
//! for the in-cluster Service (`pullcheck certs`), and a self-signed certificate for
//! `serve` when it is started without `--tls-cert`.
//!
//! The API server calls the webhook at `https://<service>.<namespace>.svc:443` and trusts
//! only the `caBundle` of the ValidatingWebhookConfiguration. Go's verifier ignores the
//! common name, so every name is a subjectAltName. Keys are ECDSA P-256.
//!
//! Rotating only the serving certificate reuses an existing CA (`--ca-cert/--ca-key`), which
//! may come from elsewhere (openssl, cert-manager): its subject name is copied byte for byte
//! into the new certificate's issuer field, and every chain is verified with webpki before
//! anything is written.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::CertsArgs;
use std::time::{Duration, SystemTime};

use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString, UniversalString};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::RootCertStore;
use sha2::{Digest, Sha256};

/// Validity of a CA created by [`generate`].
pub const CA_DAYS: u32 = 3650;
/// Longest validity accepted for a serving certificate.
pub const MAX_DAYS: u32 = 3650;
/// Secret the Deployment mounts (`webhook-config/base/deployment.yaml`).
pub const SECRET_NAME: &str = "pullcheck-tls";
/// ValidatingWebhookConfiguration whose `caBundle`s trust the CA.
pub const WEBHOOK_CONFIGURATION: &str = "pullcheck";
/// Certificates start this long before "now": nodes' clocks are not all in step.
const BACKDATE: Duration = Duration::from_secs(5 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A certificate and its private key, both PEM (the key in PKCS#8).
#[derive(Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pem")
            .field("cert", &self.cert)
            .field("key", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("no names given for the certificate")]
    NoNames,
    #[error("validity must be between 1 and {MAX_DAYS} days, not {0}")]
    Days(u32),
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("CA certificate {}: {reason}", path.display())]
    CaCert { path: PathBuf, reason: String },
    #[error("CA key {}: {reason}", path.display())]
    CaKey { path: PathBuf, reason: String },
    #[error("the CA key {} does not belong to the CA certificate {}", key.display(), cert.display())]
    CaKeyMismatch { cert: PathBuf, key: PathBuf },
    #[error(
        "{} holds a different CA key, which the cluster may trust: pass --ca-cert/--ca-key to \
         keep that CA, --force to replace it, or another --out-dir",
        .0.display()
    )]
    WouldReplaceCa(PathBuf),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the new serving certificate does not verify against the CA: {0}")]
    Verify(String),
}

/// A CA (10 years) and a serving certificate signed by it for the DNS names `<service>`,
/// `<service>.<namespace>`, `<service>.<namespace>.svc`,
/// `<service>.<namespace>.svc.cluster.local` (validity `days`), ECDSA P-256.
pub fn generate(service: &str, namespace: &str, days: u32) -> Result<(Pem, Pem), CertError> {
    let names = service_names(service, namespace)?;
    check_days(days)?;
    let ca = Authority::create(SystemTime::now())?;
    let serving = ca.issue(&names, days, SystemTime::now())?;
    Ok((ca.pem(), serving))
}

/// A self-signed serving certificate for `names` (DNS names or IP addresses), used by
/// `serve` when no certificate is given.
pub fn self_signed(names: &[String], days: u32) -> Result<Pem, CertError> {
    check_days(days)?;
    let first = names.first().ok_or(CertError::NoNames)?;
    for name in names {
        if ServerName::try_from(name.as_str()).is_err() {
            return Err(CertError::InvalidName {
                what: "name",
                value: name.clone(),
                reason: "not a DNS name or IP address",
            });
        }
    }
    let now = SystemTime::now();
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, first.as_str());
    params.not_before = (now - BACKDATE).into();
    params.not_after = (now + DAY * days).into();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Writes ca.crt, ca.key (0600), tls.crt, tls.key (0600) into `args.out_dir` and prints what
/// to do next (the kubectl commands); returns the process exit code (0 ok, 2 error).
/// Errors go to standard error.
pub fn run_certs(args: &CertsArgs, out: &mut impl Write) -> io::Result<u8> {
    match write_certs(args) {
        Ok(written) => {
            print_next_steps(args, &written, out)?;
            Ok(0)
        }
        Err(e) => {
            writeln!(io::stderr(), "error: {e}")?;
            Ok(2)
        }
    }
}

/// What [`write_certs`] wrote.
#[derive(Debug)]
pub struct Written {
    /// Absolute (when it could be resolved) output directory.
    pub dir: PathBuf,
    /// The serving certificate was signed by an existing CA (`--ca-cert`).
    pub reused_ca: bool,
    /// DNS names of the serving certificate.
    pub names: Vec<String>,
    /// The API server's client certificate was issued for this webhook host.
    pub api_server_client: Option<String>,
}

/// The work of `pullcheck certs` without the printing: create or load the CA, issue the
/// serving certificate, verify the chain, then write the four files.
pub fn write_certs(args: &CertsArgs) -> Result<Written, CertError> {
    let names = service_names(&args.service, &args.namespace)?;
    check_days(args.days)?;
    let now = SystemTime::now();
    let (ca, reused_ca) = match (&args.ca_cert, &args.ca_key) {
        (Some(cert), Some(key)) => (Authority::load(cert, key)?, true),
        // clap's `requires` makes one without the other a usage error.
        _ => (Authority::create(now)?, false),
    };
    let serving = ca.issue(&names, args.days, now)?;
    let ca_pem = ca.pem();

    let dir = &args.out_dir;
    fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.clone(),
        source,
    })?;
    let ca_key_path = dir.join("ca.key");
    if !args.force {
        match fs::read_to_string(&ca_key_path) {
            Ok(existing) if !same_key(&existing, &ca_pem.key) => {
                return Err(CertError::WouldReplaceCa(ca_key_path))
            }
            _ => {}
        }
    }
    write_file(dir, "ca.key", &ca_pem.key, true)?;
    write_file(dir, "ca.crt", &ca_pem.cert, false)?;
    write_file(dir, "tls.key", &serving.key, true)?;
    write_file(dir, "tls.crt", &serving.cert, false)?;
    let mut api_server_client = None;
    if args.api_server_client {
        use crate::apiserver_auth as a;
        let client = ca.issue_client(args.days, now)?;
        // The Service's host as the API server calls it (port 443).
        let host = names.get(2).cloned().unwrap_or_default();
        write_file(dir, a::CLIENT_KEY, &client.key, true)?;
        write_file(dir, a::CLIENT_CERT, &client.cert, false)?;
        write_file(dir, a::KUBECONFIG, &a::kubeconfig_yaml(&host), false)?;
        write_file(dir, a::ADMISSION_CONFIG, &a::admission_config_yaml(), false)?;
        api_server_client = Some(host);
    }
    Ok(Written {
        dir: fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()),
        reused_ca,
        names,
        api_server_client,
    })
}

fn print_next_steps(args: &CertsArgs, written: &Written, out: &mut impl Write) -> io::Result<()> {
    let dir = &written.dir;
    let file = |name: &str| shell_quote(&dir.join(name).display().to_string());
    let ns = shell_quote(&args.namespace);
    writeln!(out, "wrote {}:", dir.display())?;
    writeln!(
        out,
        "  ca.crt, ca.key   CA{} (keep ca.key private: it signs the next serving certificate)",
        if written.reused_ca {
            " given with --ca-cert"
        } else {
            ", valid 10 years"
        }
    )?;
    writeln!(
        out,
        "  tls.crt, tls.key serving certificate for {}, valid {} days",
        written.names.join(", "),
        args.days
    )?;
    if let Some(host) = &written.api_server_client {
        crate::apiserver_auth::print_next_steps(out, dir, host)?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Next (certs/install.sh does both steps), store the serving certificate:"
    )?;
    writeln!(
        out,
        "  kubectl -n {ns} create secret tls {SECRET_NAME} --cert={} --key={} \\\n    --dry-run=client -o yaml |\n    kubectl apply --server-side --force-conflicts --field-manager=pullcheck-certs -f -",
        file("tls.crt"),
        file("tls.key")
    )?;
    writeln!(out)?;
    if written.reused_ca {
        writeln!(
            out,
            "The CA did not change: the caBundle of the ValidatingWebhookConfiguration stays valid,\n\
             and the pods pick up the new certificate when the Secret volume updates (about a minute)."
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "and trust the CA in every webhook of the ValidatingWebhookConfiguration {WEBHOOK_CONFIGURATION}:"
    )?;
    writeln!(
        out,
        "  CA_BUNDLE=$(base64 < {} | tr -d '\\n')",
        file("ca.crt")
    )?;
    writeln!(
        out,
        "  n=$(kubectl get validatingwebhookconfiguration {WEBHOOK_CONFIGURATION} -o go-template='{{{{len .webhooks}}}}')"
    )?;
    writeln!(out, "  for i in $(seq 0 $((n - 1))); do")?;
    writeln!(
        out,
        "    kubectl patch validatingwebhookconfiguration {WEBHOOK_CONFIGURATION} --type=json \\\n      \
         -p \"[{{\\\"op\\\":\\\"add\\\",\\\"path\\\":\\\"/webhooks/$i/clientConfig/caBundle\\\",\\\"value\\\":\\\"$CA_BUNDLE\\\"}}]\""
    )?;
    writeln!(out, "  done")?;
    Ok(())
}

/// A CA able to sign: its certificate, its key, and what rcgen needs to name it as issuer.
struct Authority {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
    /// Whether the serving certificate gets an authorityKeyIdentifier: when the CA has a
    /// subjectKeyIdentifier for it to repeat.
    key_id: bool,
}

impl Authority {
    fn create(now: SystemTime) -> Result<Authority, CertError> {
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
        })
    }

    fn load(cert_path: &Path, key_path: &Path) -> Result<Authority, CertError> {
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
        let mut roots = RootCertStore::empty();
        roots
            .add(cert_der.clone())
            .map_err(|e| cert_err(format!("not an X.509 certificate: {e}")))?;
        let anchor = roots
            .roots
            .first()
            .ok_or_else(|| cert_err("not an X.509 certificate".into()))?;
        let subject = der::name(anchor.subject.as_ref()).map_err(cert_err)?;
        let public_key = der::spki_public_key(anchor.subject_public_key_info.as_ref())
            .ok_or_else(|| cert_err("malformed subjectPublicKeyInfo".into()))?;

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
        if key.public_key_raw() != public_key {
            return Err(CertError::CaKeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            });
        }

        // The authorityKeyIdentifier of the serving certificate must repeat the CA's
        // subjectKeyIdentifier, however it was computed; without one, there is none.
        let key_id = der::subject_key_id(cert_der.as_ref());
        let mut params = CertificateParams::default();
        params.distinguished_name = subject;
        params.key_identifier_method =
            KeyIdMethod::PreSpecified(key_id.clone().unwrap_or_default());
        let key_pem = key.serialize_pem();
        Ok(Authority {
            cert_pem: pem_of(&cert_der),
            cert_der,
            key_pem,
            issuer: Issuer::new(params, key),
            key_id: key_id.is_some(),
        })
    }

    fn pem(&self) -> Pem {
        Pem {
            cert: self.cert_pem.clone(),
            key: self.key_pem.clone(),
        }
    }

    /// A serving certificate for `names`, verified against this CA for every name.
    fn issue(&self, names: &[String], days: u32, now: SystemTime) -> Result<Pem, CertError> {
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
    fn issue_client(&self, days: u32, now: SystemTime) -> Result<Pem, CertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, crate::apiserver_auth::CLIENT_NAME);
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + DAY * days).into();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = self.key_id;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        crate::apiserver_auth::verify_client(&self.cert_der, cert.der())
            .map_err(|e| CertError::Verify(format!("client certificate: {e}")))?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// Verifies `leaf` for `name` with webpki, trusting only `ca`.
fn verify(ca: &CertificateDer<'_>, leaf: &CertificateDer<'_>, name: &str) -> Result<(), CertError> {
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

/// The four names the API server and in-cluster clients may use for the Service.
fn service_names(service: &str, namespace: &str) -> Result<Vec<String>, CertError> {
    check_label("service name", service, true)?;
    check_label("namespace", namespace, false)?;
    Ok(vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ])
}

/// A DNS label as Kubernetes requires it: RFC 1035 for Service names (starts with a
/// letter), RFC 1123 for namespaces.
fn check_label(what: &'static str, value: &str, rfc1035: bool) -> Result<(), CertError> {
    let invalid = |reason| {
        Err(CertError::InvalidName {
            what,
            value: value.to_string(),
            reason,
        })
    };
    if value.is_empty() || value.len() > 63 {
        return invalid("must be 1 to 63 characters");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return invalid("only lowercase letters, digits and '-' are allowed");
    }
    if value.starts_with('-') || value.ends_with('-') {
        return invalid("must start and end with a letter or digit");
    }
    if rfc1035 && !value.starts_with(|c: char| c.is_ascii_lowercase()) {
        return invalid("must start with a letter");
    }
    Ok(())
}

fn check_days(days: u32) -> Result<(), CertError> {
    if (1..=MAX_DAYS).contains(&days) {
        Ok(())
    } else {
        Err(CertError::Days(days))
    }
}

fn read(path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|source| CertError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Two PEM private keys are the same key (ignoring line endings and surrounding space).
fn same_key(a: &str, b: &str) -> bool {
    let der = |pem: &str| {
        rustls_pemfile::private_key(&mut pem.as_bytes())
            .ok()
            .flatten()
    };
    match (der(a), der(b)) {
        (Some(a), Some(b)) => a.secret_der() == b.secret_der(),
        _ => false,
    }
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

/// Writes through a temporary file and a rename, so a reader never sees half a key; private
/// files are created 0600 (never wider, not even for a moment).
fn write_file(dir: &Path, name: &str, contents: &str, private: bool) -> Result<(), CertError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let err = |source| CertError::Write {
        path: path.clone(),
        source,
    };
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(err(e)),
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&tmp, &path))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            err(e)
        })
}

/// Quotes for a POSIX shell when needed (paths in the printed commands).
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Just enough DER to copy a CA's subject name into rcgen and to compare its public key
/// with the key file (webpki hands over both as the contents of their SEQUENCE).
mod der {
    use super::*;

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
            0x1c => DnValue::UniversalString(
                UniversalString::from_utf32be(bytes.to_vec()).map_err(asn1)?,
            ),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn der_of(pem: &str) -> CertificateDer<'static> {
        match rustls_pemfile::certs(&mut pem.as_bytes()).next() {
            Some(Ok(der)) => der,
            other => panic!("no certificate in PEM: {other:?}"),
        }
    }

    #[test]
    fn serving_certificate_verifies_for_every_service_name_and_no_other() {
        let (ca, serving) = generate("pullcheck", "pullcheck", 30).unwrap();
        let (ca_der, leaf) = (der_of(&ca.cert), der_of(&serving.cert));
        for name in [
            "pullcheck",
            "pullcheck.pullcheck",
            "pullcheck.pullcheck.svc",
            "pullcheck.pullcheck.svc.cluster.local",
        ] {
            verify(&ca_der, &leaf, name).unwrap();
        }
        assert!(verify(&ca_der, &leaf, "other.pullcheck.svc").is_err());
        let (other_ca, _) = generate("pullcheck", "pullcheck", 30).unwrap();
        assert!(verify(&der_of(&other_ca.cert), &leaf, "pullcheck.pullcheck.svc").is_err());
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let pem = self_signed(&["localhost".into()], 1).unwrap();
        let debug = format!("{pem:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    }

    #[test]
    fn self_signed_accepts_dns_names_and_ip_addresses() {
        let names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        let pem = self_signed(&names, 7).unwrap();
        let der = der_of(&pem.cert);
        for name in &names {
            verify(&der, &der, name).unwrap();
        }
    }

    #[rstest]
    #[case::empty(&[])]
    #[case::not_a_name(&["not a name"])]
    #[case::url(&["https://localhost"])]
    fn self_signed_refuses_bad_names(#[case] names: &[&str]) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        assert!(self_signed(&names, 1).is_err());
    }

    #[rstest]
    #[case::ok("pullcheck", "pullcheck", true)]
    #[case::digits_in_namespace("pullcheck", "9ns", true)]
    #[case::service_starts_with_digit("9pullcheck", "pullcheck", false)]
    #[case::uppercase("Pullcheck", "pullcheck", false)]
    #[case::dot("pull.check", "pullcheck", false)]
    #[case::trailing_dash("pullcheck-", "pullcheck", false)]
    #[case::empty_namespace("pullcheck", "", false)]
    #[case::too_long("pullcheck", &"a".repeat(64), false)]
    fn service_and_namespace_must_be_dns_labels(
        #[case] service: &str,
        #[case] namespace: &str,
        #[case] ok: bool,
    ) {
        assert_eq!(service_names(service, namespace).is_ok(), ok);
    }

    #[rstest]
    #[case(0, false)]
    #[case(1, true)]
    #[case(MAX_DAYS, true)]
    #[case(MAX_DAYS + 1, false)]
    fn days_are_bounded(#[case] days: u32, #[case] ok: bool) {
        assert_eq!(generate("pullcheck", "pullcheck", days).is_ok(), ok);
    }

    fn args(dir: &Path) -> CertsArgs {
        CertsArgs {
            service: "pullcheck".into(),
            namespace: "pullcheck".into(),
            out_dir: dir.to_path_buf(),
            days: 30,
            ca_cert: None,
            ca_key: None,
            force: false,
            api_server_client: false,
        }
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_four_files_with_private_keys_0600_and_prints_kubectl_steps() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let mut out = Vec::new();
        assert_eq!(run_certs(&args(&dir), &mut out).unwrap(), 0);
        for name in ["ca.crt", "ca.key", "tls.crt", "tls.key"] {
            assert!(dir.join(name).is_file(), "{name}");
        }
        #[cfg(unix)]
        {
            assert_eq!(mode(&dir.join("ca.key")), 0o600);
            assert_eq!(mode(&dir.join("tls.key")), 0o600);
        }
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("create secret tls pullcheck-tls"), "{text}");
        assert!(
            text.contains("/webhooks/$i/clientConfig/caBundle"),
            "{text}"
        );
    }

    #[test]
    fn the_api_server_client_certificate_verifies_as_a_client_only() {
        use crate::apiserver_auth::{
            verify_client, ADMISSION_CONFIG, CLIENT_CERT, CLIENT_KEY, KUBECONFIG,
        };
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut a = args(dir);
        a.api_server_client = true;
        let mut out = Vec::new();
        assert_eq!(run_certs(&a, &mut out).unwrap(), 0);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("--admission-control-config-file"), "{text}");
        #[cfg(unix)]
        assert_eq!(mode(&dir.join(CLIENT_KEY)), 0o600);
        let ca = der_of(&fs::read_to_string(dir.join("ca.crt")).unwrap());
        let client = der_of(&fs::read_to_string(dir.join(CLIENT_CERT)).unwrap());
        let serving = der_of(&fs::read_to_string(dir.join("tls.crt")).unwrap());
        verify_client(&ca, &client).unwrap();
        // The serving certificate cannot stand in for the API server (serverAuth only), nor
        // the client certificate for the webhook.
        assert!(verify_client(&ca, &serving).is_err());
        assert!(verify(&ca, &client, "pullcheck.pullcheck.svc").is_err());
        let kubeconfig = fs::read_to_string(dir.join(KUBECONFIG)).unwrap();
        assert!(
            kubeconfig.contains("- name: pullcheck.pullcheck.svc"),
            "{kubeconfig}"
        );
        assert!(dir.join(ADMISSION_CONFIG).is_file());
        // Rotation with the same CA issues a new client certificate the CA still vouches for.
        a.ca_cert = Some(dir.join("ca.crt"));
        a.ca_key = Some(dir.join("ca.key"));
        write_certs(&a).unwrap();
        let renewed = der_of(&fs::read_to_string(dir.join(CLIENT_CERT)).unwrap());
        assert_ne!(renewed, client);
        verify_client(&ca, &renewed).unwrap();
    }

    #[test]
    fn rotation_reuses_the_ca_and_refuses_to_replace_it_silently() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_certs(&args(dir)).unwrap();
        let ca_before = fs::read_to_string(dir.join("ca.crt")).unwrap();
        let tls_before = fs::read_to_string(dir.join("tls.crt")).unwrap();

        // A second plain run would replace the CA the cluster trusts.
        assert!(matches!(
            write_certs(&args(dir)),
            Err(CertError::WouldReplaceCa(_))
        ));

        // Reusing the CA in place rotates only the serving certificate.
        let mut rotate = args(dir);
        rotate.ca_cert = Some(dir.join("ca.crt"));
        rotate.ca_key = Some(dir.join("ca.key"));
        let written = write_certs(&rotate).unwrap();
        assert!(written.reused_ca);
        assert_eq!(fs::read_to_string(dir.join("ca.crt")).unwrap(), ca_before);
        let tls_after = fs::read_to_string(dir.join("tls.crt")).unwrap();
        assert_ne!(tls_after, tls_before);
        verify(
            &der_of(&ca_before),
            &der_of(&tls_after),
            "pullcheck.pullcheck.svc",
        )
        .unwrap();

        let mut force = args(dir);
        force.force = true;
        write_certs(&force).unwrap();
        assert_ne!(fs::read_to_string(dir.join("ca.crt")).unwrap(), ca_before);
    }

    #[test]
    fn a_foreign_ca_with_several_name_attributes_signs_verifiable_certificates() {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CountryName,
            DnValue::PrintableString(PrintableString::try_from("DE").unwrap()),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Grüne Wiese GmbH");
        params.distinguished_name.push(
            DnType::CommonName,
            DnValue::PrintableString(PrintableString::try_from("Platform CA").unwrap()),
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let cert = params.self_signed(&key).unwrap();

        let tmp = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (tmp.path().join("ca.pem"), tmp.path().join("ca-key.pem"));
        fs::write(&cert_path, cert.pem()).unwrap();
        fs::write(&key_path, key.serialize_pem()).unwrap();
        let ca = Authority::load(&cert_path, &key_path).unwrap();
        let names = service_names("hook", "infra").unwrap();
        let leaf = ca.issue(&names, 10, SystemTime::now()).unwrap();
        verify(cert.der(), &der_of(&leaf.cert), "hook.infra.svc").unwrap();

        // A key that is not the CA's is refused before anything is signed.
        let stranger = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        fs::write(&key_path, stranger.serialize_pem()).unwrap();
        assert!(matches!(
            Authority::load(&cert_path, &key_path),
            Err(CertError::CaKeyMismatch { .. })
        ));
    }

    #[test]
    fn unreadable_or_wrong_ca_files_are_errors_not_panics() {
        let tmp = tempfile::tempdir().unwrap();
        let junk = tmp.path().join("junk.pem");
        fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let missing = tmp.path().join("missing.pem");
        assert!(matches!(
            Authority::load(&missing, &junk),
            Err(CertError::Read { .. })
        ));
        assert!(matches!(
            Authority::load(&junk, &junk),
            Err(CertError::CaCert { .. })
        ));
        let mut a = args(tmp.path());
        a.ca_cert = Some(junk.clone());
        a.ca_key = Some(junk);
        assert_eq!(run_certs(&a, &mut Vec::new()).unwrap(), 2);
    }

    #[test]
    fn shell_quote_quotes_only_when_needed() {
        assert_eq!(shell_quote("/tmp/certs/ca.crt"), "/tmp/certs/ca.crt");
        assert_eq!(shell_quote("/tmp/my certs"), "'/tmp/my certs'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
