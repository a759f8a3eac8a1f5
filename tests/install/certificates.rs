//! Certificates

use super::*;

fn first_cert(pem: &str) -> rustls::pki_types::CertificateDer<'static> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
}

/// A TLS handshake in memory between a rustls server with `serving` and a client that
/// trusts only `ca_pem`, then one round trip of application data.
fn handshake(
    ca_pem: &str,
    serving: &pullcheck::webhook::certs::Pem,
    server_name: &str,
    version: &'static rustls::SupportedProtocolVersion,
) -> Result<(), rustls::Error> {
    use rustls::pki_types::ServerName;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain: Vec<_> = rustls_pemfile::certs(&mut serving.cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut serving.key.as_bytes())
        .unwrap()
        .unwrap();
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(first_cert(ca_pem))?;
    let mut client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_config.alpn_protocols = vec![b"h2".to_vec()];

    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let mut client = rustls::ClientConnection::new(Arc::new(client_config), name)?;
    let mut server = rustls::ServerConnection::new(Arc::new(server_config))?;
    client.writer().write_all(b"ping").unwrap();
    let mut received = Vec::new();
    for _ in 0..10 {
        let mut wire = Vec::new();
        client.write_tls(&mut wire).unwrap();
        server.read_tls(&mut wire.as_slice()).unwrap();
        server.process_new_packets()?;
        wire.clear();
        server.write_tls(&mut wire).unwrap();
        client.read_tls(&mut wire.as_slice()).unwrap();
        client.process_new_packets()?;
        let mut buf = [0u8; 16];
        if let Ok(n) = server.reader().read(&mut buf) {
            received.extend_from_slice(&buf[..n]);
        }
        if !client.is_handshaking() && !server.is_handshaking() && received == b"ping" {
            assert_eq!(client.alpn_protocol(), Some(&b"h2"[..]));
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

#[rstest]
#[case::tls13(&rustls::version::TLS13)]
#[case::tls12(&rustls::version::TLS12)]
fn generated_certificates_complete_a_tls_handshake_for_the_service_names(
    #[case] version: &'static rustls::SupportedProtocolVersion,
) {
    let (ca, serving) = pullcheck::webhook::certs::generate("pullcheck", "pullcheck", 30).unwrap();
    for name in [
        "pullcheck",
        "pullcheck.pullcheck",
        "pullcheck.pullcheck.svc",
        "pullcheck.pullcheck.svc.cluster.local",
    ] {
        handshake(&ca.cert, &serving, name, version).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(handshake(&ca.cert, &serving, "pullcheck.default.svc", version).is_err());
    let (other_ca, _) = pullcheck::webhook::certs::generate("pullcheck", "pullcheck", 30).unwrap();
    assert!(handshake(&other_ca.cert, &serving, "pullcheck.pullcheck.svc", version).is_err());
}

#[test]
fn self_signed_certificate_serves_its_own_names() {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let pem = pullcheck::webhook::certs::self_signed(&names, 1).unwrap();
    for name in &names {
        handshake(&pem.cert, &pem, name, &rustls::version::TLS13).unwrap();
    }
}

fn openssl(args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("openssl is needed for this test and cannot run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn write_pems(
    dir: &Path,
    ca: &pullcheck::webhook::certs::Pem,
    serving: &pullcheck::webhook::certs::Pem,
) -> (PathBuf, PathBuf) {
    let (ca_path, tls_path) = (dir.join("ca.crt"), dir.join("tls.crt"));
    std::fs::write(&ca_path, &ca.cert).unwrap();
    std::fs::write(&tls_path, &serving.cert).unwrap();
    (ca_path, tls_path)
}

#[test]
fn openssl_verifies_the_chain_strictly_and_sees_every_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, serving) = pullcheck::webhook::certs::generate("hook", "infra", 90).unwrap();
    let (ca_path, tls_path) = write_pems(tmp.path(), &ca, &serving);
    let (ca_path, tls_path) = (ca_path.to_str().unwrap(), tls_path.to_str().unwrap());

    let (ok, text) = openssl(&[
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-CAfile",
        ca_path,
        tls_path,
    ]);
    assert!(ok, "{text}");
    let (ok, san) = openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in", tls_path]);
    assert!(ok, "{san}");
    for name in [
        "hook",
        "hook.infra",
        "hook.infra.svc",
        "hook.infra.svc.cluster.local",
    ] {
        assert!(
            san.contains(&format!("DNS:{name},")) || san.contains(&format!("DNS:{name}\n")),
            "{name}: {san}"
        );
    }
    let (_, leaf) = openssl(&["x509", "-noout", "-text", "-in", tls_path]);
    assert!(leaf.contains("TLS Web Server Authentication"), "{leaf}");
    assert!(leaf.contains("prime256v1"), "{leaf}");
    assert!(leaf.contains("CA:FALSE"), "{leaf}");
    let (_, root) = openssl(&["x509", "-noout", "-text", "-in", ca_path]);
    assert!(root.contains("CA:TRUE"), "{root}");
    assert!(root.contains("Certificate Sign"), "{root}");
    // 10 years: the notAfter year is at least 9 years ahead.
    let (_, end) = openssl(&["x509", "-noout", "-enddate", "-in", ca_path]);
    let year: i32 = end
        .split_whitespace()
        .rev()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let (_, leaf_end) = openssl(&["x509", "-noout", "-enddate", "-in", tls_path]);
    let leaf_year: i32 = leaf_end
        .split_whitespace()
        .rev()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(year >= leaf_year + 9, "{end} vs {leaf_end}");
    // The key file is PKCS#8 and belongs to the certificate.
    assert!(serving.key.starts_with("-----BEGIN PRIVATE KEY-----"));
    let key_path = tmp.path().join("tls.key");
    std::fs::write(&key_path, &serving.key).unwrap();
    let (_, cert_pub) = openssl(&["x509", "-noout", "-pubkey", "-in", tls_path]);
    let (_, key_pub) = openssl(&["pkey", "-pubout", "-in", key_path.to_str().unwrap()]);
    assert_eq!(cert_pub, key_pub);
}

#[rstest]
#[case::ecdsa(&["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])]
#[case::rsa(&["-newkey", "rsa:2048"])]
fn rotation_with_a_ca_made_by_openssl_keeps_the_ca_and_verifies(#[case] key_args: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (ca_crt, ca_key) = (dir.join("their-ca.crt"), dir.join("their-ca.key"));
    let mut args = vec!["req", "-x509", "-nodes", "-days", "30"];
    args.extend_from_slice(key_args);
    args.extend_from_slice(&[
        "-keyout",
        ca_key.to_str().unwrap(),
        "-out",
        ca_crt.to_str().unwrap(),
        "-subj",
        "/C=DE/O=Example Platform/OU=Clusters/CN=Example Cluster CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    let (ok, text) = openssl(&args);
    assert!(ok, "{text}");

    let out = dir.join("out");
    let certs_args = pullcheck::config::CertsArgs {
        service: "pullcheck".into(),
        namespace: "pullcheck".into(),
        out_dir: out.clone(),
        days: 30,
        ca_cert: Some(ca_crt.clone()),
        ca_key: Some(ca_key),
        force: false,
        api_server_client: true,
    };
    let mut printed = Vec::new();
    assert_eq!(
        pullcheck::webhook::certs::run_certs(&certs_args, &mut printed).unwrap(),
        0
    );
    let printed = String::from_utf8(printed).unwrap();
    assert!(
        printed.contains("caBundle") && printed.contains("stays valid"),
        "{printed}"
    );
    assert!(
        !printed.contains("kubectl patch"),
        "the CA did not change: {printed}"
    );

    // Strict: the authorityKeyIdentifier repeats the CA's subjectKeyIdentifier.
    let (ok, text) = openssl(&[
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-CAfile",
        ca_crt.to_str().unwrap(),
        out.join("tls.crt").to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    // So does the API server's client certificate, for client authentication only.
    let client = out.join("apiserver-client.crt");
    let verify_as = |purpose: &str| {
        openssl(&[
            "verify",
            "-x509_strict",
            "-purpose",
            purpose,
            "-CAfile",
            ca_crt.to_str().unwrap(),
            client.to_str().unwrap(),
        ])
    };
    let (ok, text) = verify_as("sslclient");
    assert!(ok, "{text}");
    assert!(
        !verify_as("sslserver").0,
        "a client certificate must not serve"
    );
    let ca_pem = std::fs::read_to_string(&ca_crt).unwrap();
    let serving = pullcheck::webhook::certs::Pem {
        cert: std::fs::read_to_string(out.join("tls.crt")).unwrap(),
        key: std::fs::read_to_string(out.join("tls.key")).unwrap(),
    };
    handshake(
        &ca_pem,
        &serving,
        "pullcheck.pullcheck.svc",
        &rustls::version::TLS13,
    )
    .unwrap();
    assert_eq!(
        first_cert(&std::fs::read_to_string(out.join("ca.crt")).unwrap()),
        first_cert(&ca_pem),
        "ca.crt in the output is the given CA"
    );
}

/// Subjects rcgen cannot repeat byte for byte (a type twice: rcgen keeps one value per
/// type; several attributes in one RDN) are refused with the reason, before anything is
/// signed or written, never signed with a different issuer name.
#[rstest]
#[case::repeated("/O=Example/OU=Clusters/OU=Platform/CN=CA", &[], "repeated subject name attributes")]
#[case::multi_valued("/O=Example/CN=CA+OU=Platform", &["-multivalue-rdn"], "multi-valued subject name attributes")]
fn a_ca_whose_subject_cannot_be_repeated_is_refused(
    #[case] subject: &str,
    #[case] extra: &[&str],
    #[case] why: &str,
) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (ca_crt, ca_key) = (dir.join("their-ca.crt"), dir.join("their-ca.key"));
    let mut args = vec![
        "req",
        "-x509",
        "-nodes",
        "-days",
        "30",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-keyout",
        ca_key.to_str().unwrap(),
        "-out",
        ca_crt.to_str().unwrap(),
        "-subj",
        subject,
    ];
    args.extend_from_slice(extra);
    let (ok, text) = openssl(&args);
    assert!(ok, "{text}");
    let out = dir.join("out");
    let certs_args = pullcheck::config::CertsArgs {
        service: "pullcheck".into(),
        namespace: "pullcheck".into(),
        out_dir: out.clone(),
        days: 30,
        ca_cert: Some(ca_crt.clone()),
        ca_key: Some(ca_key),
        force: false,
        api_server_client: false,
    };
    let e = pullcheck::webhook::certs::write_certs(&certs_args).unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains(&*ca_crt.to_string_lossy()) && message.contains(why),
        "{message}"
    );
    assert!(!out.exists(), "nothing written");
}
