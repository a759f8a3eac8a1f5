//! The `pullcheck` binary: `reference` and `check --image`, exit codes and output formats.

mod support;

use std::process::{Command, Output};

use serde_json::Value;
use support::{Auth, RegistryOptions, TestRegistry, ALICE};

fn pullcheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pullcheck"))
        .args(args)
        .env_remove("PULLCHECK_DOCKER_CONFIG")
        .output()
        .expect("pullcheck runs")
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn reference_json_normalizes_like_the_kubelet() {
    let out = pullcheck(&[
        "reference",
        "--json",
        "nginx",
        "quay.io/org/app:1.0@sha256:2d4e459f4ecb5329407ae3e47cbc107a2fbace221354ca75960af4c047b3cb13",
        "Nginx",
    ]);
    assert_eq!(out.status.code(), Some(1), "an invalid reference → exit 1");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["canonical"], "docker.io/library/nginx:latest");
    assert_eq!(lines[0]["domain"], "docker.io");
    assert_eq!(lines[0]["path"], "library/nginx");
    assert_eq!(lines[0]["valid"], true);
    assert_eq!(lines[1]["tag"], "1.0");
    assert!(lines[1]["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(lines[2]["valid"], false);
    assert!(lines[2]["error"].as_str().unwrap().contains("lowercase"));

    let out = pullcheck(&["reference", "nginx:1.25"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("docker.io/library/nginx:1.25"));
}

#[tokio::test]
async fn check_images_json_and_exit_codes() {
    let reg = TestRegistry::start(RegistryOptions {
        tls: false,
        auth: Auth::None,
    })
    .await;
    let digest = reg
        .push_index("team/app", "v1", &["linux/amd64", "linux/arm64"], false)
        .await;
    let host = reg.host();
    let good = format!("{host}/team/app:v1");
    let bad = format!("{host}/team/app:v2");

    let out = pullcheck(&[
        "check",
        "--plain-http",
        &host,
        "--format",
        "json",
        "--image",
        &good,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines[0]["verdict"], "ok");
    assert_eq!(lines[0]["digest"], digest.as_str());
    assert_eq!(lines[0]["canonical"], good.as_str());
    assert_eq!(
        lines[0]["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );

    let out = pullcheck(&[
        "check",
        "--plain-http",
        &host,
        "--format",
        "json",
        "--image",
        &good,
        "--image",
        &bad,
        "--platform",
        "linux/arm64",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    assert_eq!(lines[0]["verdict"], "ok");
    assert_eq!(lines[1]["verdict"], "tag_not_found");
    assert!(lines[1]["message"].as_str().unwrap().contains("\"v2\""));

    let out = pullcheck(&[
        "check",
        "--plain-http",
        &host,
        "--image",
        &good,
        "--platform",
        "windows/amd64",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL") && text.contains("platform_mismatch"),
        "{text}"
    );
}

#[tokio::test]
async fn check_with_docker_config_and_registry_ca() {
    let reg = TestRegistry::start(RegistryOptions {
        tls: true,
        auth: Auth::Htpasswd,
    })
    .await;
    reg.push_image("private/app", Some("v1"), "linux/amd64")
        .await;
    let host = reg.host();
    let image = format!("{host}/private/app:v1");
    let ca = reg.ca_path().unwrap();
    let ca = ca.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    let auth = base64_encode(&format!("{}:{}", ALICE.0, ALICE.1));
    std::fs::write(
        &config,
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();

    let out = pullcheck(&[
        "check",
        "--registry-ca",
        ca,
        "--format",
        "json",
        "--image",
        &image,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_lines(&out)[0]["verdict"], "unauthorized");

    let out = pullcheck(&[
        "check",
        "--registry-ca",
        &format!("{host}={ca}"),
        "--docker-config",
        config.to_str().unwrap(),
        "--format",
        "json",
        "--image",
        &image,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let line = &json_lines(&out)[0];
    assert_eq!(line["verdict"], "ok");
    assert_eq!(line["credential_source"], "--docker-config");

    // Without the CA the TLS failure is named. It is transient (the webhook would admit with
    // a warning): exit 0, unless --strict.
    let out = pullcheck(&["check", "--format", "json", "--image", &image]);
    assert_eq!(out.status.code(), Some(0));
    let line = &json_lines(&out)[0];
    assert_eq!(line["verdict"], "unavailable");
    assert!(line["message"].as_str().unwrap().contains("TLS"));
    let out = pullcheck(&["check", "--strict", "--format", "json", "--image", &image]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["check"],
        vec!["check", "--image", "nginx", "--platform", "linux"],
        vec![
            "check",
            "--image",
            "nginx",
            "--docker-config",
            "/nonexistent/config.json",
        ],
        vec![
            "check",
            "--image",
            "nginx",
            "--registry-ca",
            "/nonexistent/ca.pem",
        ],
        vec!["check", "--image", "nginx", "--format", "yaml"],
        vec!["check", "--image", "nginx", "--timeout", "soon"],
        vec![
            "check",
            "--image",
            "nginx",
            "--config",
            "/nonexistent/pullcheck.yaml",
        ],
        vec!["check", "--image", "nginx", "--default-mode", "loud"],
        vec!["frobnicate"],
    ] {
        let out = pullcheck(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty(), "{args:?} explains itself");
    }
}

/// `check --config` refuses a file `serve` would refuse, naming it and the line.
#[test]
fn check_config_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pullcheck.yaml");
    std::fs::write(
        &path,
        "defaultMode: enforce\nactions:\n  unavailabel: deny\n",
    )
    .unwrap();
    let out = pullcheck(&[
        "check",
        "--config",
        path.to_str().unwrap(),
        "--image",
        "nginx",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("config {}: line 3:", path.display())) && err.contains("unavailabel"),
        "{err}"
    );
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
