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
//!
//! `authority` signs (a new CA, or one loaded from files and read back with rcgen's
//! `x509-parser` feature, its subject copied byte for byte); `apiserver_auth` writes the API server's client
//! certificate files (`--api-server-client`). Depends on: [`crate::config`] (its
//! arguments) and [`crate::text`].

mod apiserver_auth;
mod authority;

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use authority::Authority;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::ServerName;

use crate::config::CertsArgs;

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
        "the CA certificate {} expires within a day: create a new CA (without --ca-cert/--ca-key) \
         and trust it next to the old one",
        .0.display()
    )]
    CaExpiresSoon(PathBuf),
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
    /// Validity of what was issued: `--days`, or fewer when the given CA ends sooner.
    pub days: u32,
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
        (Some(cert), Some(key)) => (Authority::load(cert, key, now)?, true),
        // clap's `requires` makes one without the other a usage error.
        _ => (Authority::create(now)?, false),
    };
    // Nothing outlives the CA that signed it.
    let days = match ca.days_left(now) {
        Some(left) if left < 1 => {
            return Err(CertError::CaExpiresSoon(
                args.ca_cert.clone().unwrap_or_default(),
            ))
        }
        Some(left) => args.days.min(u32::try_from(left).unwrap_or(u32::MAX)),
        None => args.days,
    };
    let serving = ca.issue(&names, days, now)?;
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
        use crate::webhook::certs::apiserver_auth as a;
        let client = ca.issue_client(days, now)?;
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
        days,
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
        "  tls.crt, tls.key serving certificate for {}, valid {} days{}",
        written.names.join(", "),
        written.days,
        if written.days < args.days {
            " (the CA ends then)"
        } else {
            ""
        }
    )?;
    if let Some(host) = &written.api_server_client {
        crate::webhook::certs::apiserver_auth::print_next_steps(out, dir, host)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use authority::verify;
    use rcgen::string::PrintableString;
    use rcgen::{BasicConstraints, DnValue};
    use rstest::rstest;
    use rustls::pki_types::CertificateDer;

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
        use crate::webhook::certs::apiserver_auth::{
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
        let ca = Authority::load(&cert_path, &key_path, SystemTime::now()).unwrap();
        let names = service_names("hook", "infra").unwrap();
        let leaf = ca.issue(&names, 10, SystemTime::now()).unwrap();
        verify(cert.der(), &der_of(&leaf.cert), "hook.infra.svc").unwrap();

        // A key that is not the CA's is refused before anything is signed.
        let stranger = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        fs::write(&key_path, stranger.serialize_pem()).unwrap();
        assert!(matches!(
            Authority::load(&cert_path, &key_path, SystemTime::now()),
            Err(CertError::CaKeyMismatch { .. })
        ));
    }

    /// A CA valid from `now + from` to `now + to` (seconds; negative in the past), written
    /// to `dir` as ca.pem and ca-key.pem.
    fn dated_ca(dir: &Path, from: i64, to: i64, ski: bool) -> (PathBuf, PathBuf) {
        let at = |secs: i64| {
            let now = SystemTime::now();
            let d = Duration::from_secs(secs.unsigned_abs());
            if secs < 0 {
                now - d
            } else {
                now + d
            }
        };
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "Dated CA");
        params.not_before = at(from).into();
        params.not_after = at(to).into();
        if ski {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let paths = (dir.join("ca.pem"), dir.join("ca-key.pem"));
        fs::write(&paths.0, cert.pem()).unwrap();
        fs::write(&paths.1, key.serialize_pem()).unwrap();
        paths
    }

    #[test]
    fn a_given_ca_outside_its_dates_is_refused_and_nothing_outlives_it() {
        let tmp = tempfile::tempdir().unwrap();
        let day = DAY.as_secs() as i64;
        let refused = |from, to| {
            let (cert, key) = dated_ca(tmp.path(), from, to, true);
            match Authority::load(&cert, &key, SystemTime::now()) {
                Err(e @ CertError::CaCert { .. }) => e.to_string(),
                Err(e) => panic!("another error: {e}"),
                Ok(_) => panic!("accepted"),
            }
        };
        let expired = refused(-30 * day, -day);
        assert!(expired.contains("ca.pem: expired on "), "{expired}");
        let early = refused(day, 30 * day);
        assert!(early.contains("ca.pem: not valid before "), "{early}");

        // 9 days and 23 hours left: a 30-day request gets 9 whole days, for the serving and
        // the client certificate, and the output says why.
        let (cert, key) = dated_ca(tmp.path(), -day, 10 * day - 3600, true);
        let mut a = args(&tmp.path().join("out"));
        (a.ca_cert, a.ca_key, a.api_server_client) = (Some(cert.clone()), Some(key), true);
        let mut out = Vec::new();
        assert_eq!(run_certs(&a, &mut out).unwrap(), 0);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("valid 9 days (the CA ends then)"), "{text}");
        let ca_end = x509_end(&fs::read_to_string(&cert).unwrap());
        for issued in ["tls.crt", apiserver_auth::CLIENT_CERT] {
            let pem = fs::read_to_string(a.out_dir.join(issued)).unwrap();
            assert!(x509_end(&pem) <= ca_end, "{issued} outlives the CA");
        }

        // Less than a day left: nothing is issued.
        let (cert, key) = dated_ca(tmp.path(), -day, day / 2, true);
        let mut a = args(&tmp.path().join("late"));
        (a.ca_cert, a.ca_key) = (Some(cert), Some(key));
        let e = write_certs(&a).unwrap_err();
        assert!(matches!(e, CertError::CaExpiresSoon(_)), "{e}");
        assert!(!a.out_dir.join("tls.crt").exists());
    }

    fn x509_end(pem: &str) -> i64 {
        let der = der_of(pem);
        let (_, x509) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        x509.validity().not_after.timestamp()
    }

    fn has_extension(pem: &str, oid: &x509_parser::oid_registry::Oid<'_>) -> bool {
        let der = der_of(pem);
        let (_, x509) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let found = x509.iter_extensions().any(|e| &e.oid == oid);
        found
    }

    /// The authorityKeyIdentifier repeats the CA's subjectKeyIdentifier; a CA without one
    /// gets certificates without one (nothing to repeat), which still verify.
    #[test]
    fn the_authority_key_identifier_follows_the_ca() {
        use x509_parser::oid_registry::{
            OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER as AKI,
            OID_X509_EXT_SUBJECT_KEY_IDENTIFIER as SKI,
        };
        let day = DAY.as_secs() as i64;
        for with_ski in [true, false] {
            let tmp = tempfile::tempdir().unwrap();
            let (cert, key) = dated_ca(tmp.path(), -day, 400 * day, with_ski);
            let ca_pem = fs::read_to_string(&cert).unwrap();
            assert_eq!(has_extension(&ca_pem, &SKI), with_ski);
            let ca = Authority::load(&cert, &key, SystemTime::now()).unwrap();
            let names = service_names("hook", "infra").unwrap();
            let leaf = ca.issue(&names, 30, SystemTime::now()).unwrap();
            assert_eq!(has_extension(&leaf.cert, &AKI), with_ski);
            verify(&der_of(&ca_pem), &der_of(&leaf.cert), "hook.infra.svc").unwrap();
            if with_ski {
                let aki = |pem: &str| {
                    let der = der_of(pem);
                    let (_, x509) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
                    let id = x509
                        .iter_extensions()
                        .find_map(|e| match e.parsed_extension() {
                            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                                a.key_identifier.as_ref().map(|k| k.0.to_vec())
                            }
                            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                                Some(k.0.to_vec())
                            }
                            _ => None,
                        });
                    id
                };
                assert_eq!(aki(&leaf.cert), aki(&ca_pem));
            }
        }
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
            Authority::load(&missing, &junk, SystemTime::now()),
            Err(CertError::Read { .. })
        ));
        assert!(matches!(
            Authority::load(&junk, &junk, SystemTime::now()),
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
