//! `serve --client-ca`: only callers with a client certificate from that CA are served.
//! A forged AdmissionReview asking with another namespace's pull secret, sent without a
//! certificate or with one from another CA, is refused during the TLS handshake and
//! pullcheck does nothing: no Secret is read from the API server stand-in and no request
//! reaches the registry (both are observed: they log every request). The client
//! certificate `pullcheck certs --api-server-client` issues is served; the probes and
//! metrics stay reachable without a certificate on `--metrics-listen`; a new CA file is
//! used without a restart.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::apiserver::FakeApiServer;
use support::serve::{
    client_with, dockerconfig, free_port, metric, pod_review, Options, Server, DOCKERCONFIGJSON,
};
use support::{Auth, RegistryOptions, TestRegistry};

/// `pullcheck certs --api-server-client` into a new directory: a CA, the API server's
/// client certificate, and the two files of its AdmissionConfiguration.
fn issue(dir: &Path) -> (PathBuf, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pullcheck"))
        .args(["certs", "--api-server-client", "--out-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("apiserver-client.crt"), "{stdout}");
    let identity = std::fs::read_to_string(dir.join("apiserver-client.crt")).unwrap()
        + &std::fs::read_to_string(dir.join("apiserver-client.key")).unwrap();
    (dir.join("ca.crt"), identity)
}

/// Posts a review; the response, or the error that stopped it.
async fn post(client: &reqwest::Client, s: &Server, review: &Value) -> Result<Value, String> {
    let resp = client
        .post(s.url("/validate/enforce?timeout=10s"))
        .json(review)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    if resp.status() != 200 {
        return Err(format!("HTTP {}", resp.status()));
    }
    resp.json().await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn only_callers_with_a_certificate_from_the_client_ca_are_served() {
    let dirs = tempfile::tempdir().unwrap();
    let (client_ca, good) = issue(&dirs.path().join("good"));
    let (other_ca, other) = issue(&dirs.path().join("other"));

    let reg = TestRegistry::start(RegistryOptions {
        tls: false,
        auth: Auth::None,
    })
    .await;
    reg.push_image("private/app", Some("1.0"), "linux/amd64")
        .await;
    let api = FakeApiServer::start().await;
    // Namespace b's pull secret, which the forged review asks pullcheck to use.
    api.put_secret(
        "b",
        "bcred",
        DOCKERCONFIGJSON,
        &[(
            ".dockerconfigjson",
            &dockerconfig(&reg.host(), "b-user", "b-password"),
        )],
    );
    let ca_file = dirs.path().join("client-ca.crt");
    std::fs::copy(&client_ca, &ca_file).unwrap();
    let metrics_port = free_port();
    let s = Server::start(Options {
        registry: Some(&reg),
        api: Some(&api),
        args: vec![
            "--client-ca".into(),
            ca_file.display().to_string(),
            format!("--metrics-listen=127.0.0.1:{metrics_port}"),
        ],
        identity: Some(good.clone()),
        ..Options::default()
    })
    .await;
    reg.clear_requests().await;
    let secret_reads = || api.count("GET", "/namespaces/b/secrets");
    assert_eq!(secret_reads(), 0);

    let forged = pod_review(
        "00000000-0000-4000-8000-00000000000f",
        "b",
        &format!("{}/private/app:1.0", reg.host()),
        &["bcred"],
    );
    let anonymous = client_with(&s.ca, s.addr, None);
    let foreign = client_with(&s.ca, s.addr, Some(&other));
    for (who, client) in [("no certificate", &anonymous), ("another CA", &foreign)] {
        let refused = post(client, &s, &forged).await;
        assert!(refused.is_err(), "{who}: answered {refused:?}");
        // No HTTP answer at all: the connection ended (with TLS 1.3 the client learns of the
        // refusal only after its side of the handshake, as the connection closes).
        let error = refused.unwrap_err();
        assert!(!error.starts_with("HTTP "), "{who}: {error}");
    }
    // Refused by TLS (the server counts both handshakes as failed), and nothing was done.
    let plain = reqwest::Client::new();
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let text = plain
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(
            &text,
            "pullcheck_connections_closed_total{listener=\"webhook\",reason=\"tls_error\"}"
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "pullcheck_admissions_total{kind=\"Pod\",operation=\"CREATE\",mode=\"enforce\",decision=\"allowed\"}"),
        0.0
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(secret_reads(), 0, "a Secret was read for a refused caller");
    assert_eq!(
        reg.requests().await,
        vec![],
        "the registry was contacted for a refused caller"
    );

    // The API server's certificate is served, and then pullcheck does read and ask (which
    // shows that the two observations above would have seen it).
    let answer = post(&s.client, &s, &forged).await.unwrap();
    assert_eq!(answer["response"]["uid"], forged["request"]["uid"]);
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert!(secret_reads() >= 1);
    assert!(!reg.requests().await.is_empty());

    // Probes and metrics without a certificate on the plain listener; never reviews.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = plain
            .get(format!("http://127.0.0.1:{metrics_port}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let review_there = plain
        .post(format!("http://127.0.0.1:{metrics_port}/validate/enforce"))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(review_there.status(), 404);

    // Another CA in the file: its clients are served from then on, the old ones refused.
    std::fs::copy(&other_ca, dirs.path().join("next.crt")).unwrap();
    std::fs::rename(dirs.path().join("next.crt"), &ca_file).unwrap();
    let start = Instant::now();
    loop {
        let fresh = client_with(&s.ca, s.addr, Some(&other));
        if post(&fresh, &s, &forged).await.is_ok() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "client CA not reloaded:\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let old = client_with(&s.ca, s.addr, Some(&good));
    assert!(post(&old, &s, &forged).await.is_err());
    assert!(s.log().contains("client CA reloaded"), "{}", s.log());
}

#[tokio::test]
async fn a_client_ca_file_without_a_certificate_stops_serve_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-a-ca.pem");
    std::fs::write(&bad, "hello\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pullcheck"))
        .args([
            "serve",
            "--no-cluster",
            "--listen",
            "127.0.0.1:0",
            "--client-ca",
        ])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("client CA") && stderr.contains("not-a-ca.pem"),
        "{stderr}"
    );
}
