//! `pullcheck check PATH…` over manifest trees, stdin streams, outputs and the disk cache,
//! against a real registry (TLS + token auth).

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::{Auth, RegistryOptions, TestRegistry, ALICE};

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pullcheck"))
        .args(args)
        .env_remove("PULLCHECK_DOCKER_CONFIG")
        .env_remove("PULLCHECK_CACHE_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pullcheck runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn registry() -> TestRegistry {
    let reg = TestRegistry::start(RegistryOptions {
        tls: true,
        auth: Auth::Token,
    })
    .await;
    reg.push_image("private/team/app", Some("v1.2.3"), "linux/amd64")
        .await;
    reg.push_index(
        "public/library/busybox",
        "1.36",
        &["linux/amd64", "linux/arm64"],
        false,
    )
    .await;
    reg.push_tags("public/library/nginx", &["1.25", "1.25.3", "1.26"])
        .await;
    reg.push_index("public/tools/armonly", "v1", &["linux/arm64"], false)
        .await;
    reg
}

/// A kustomize-style stream: Secret + ServiceAccount + Deployment using the SA's secret,
/// plus kinds pullcheck skips.
fn kustomized(host: &str) -> String {
    let auth = b64(&format!("{}:{}", ALICE.0, ALICE.1));
    let config = b64(&format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#));
    format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: regcred
  namespace: team-a
type: kubernetes.io/dockerconfigjson
data:
  .dockerconfigjson: {config}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: builder
  namespace: team-a
imagePullSecrets:
- name: regcred
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: team-a
spec:
  ports: [{{port: 80}}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: team-a
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      serviceAccountName: builder
      initContainers:
      - name: init
        image: {host}/public/library/busybox:1.36
      containers:
      - name: web
        image: "{host}/private/team/app:v1.2.3"
"#
    )
}

fn cronjob(host: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: report
  namespace: team-a
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: report
            image: {host}/public/library/nginx:1.2x
"#
    )
}

fn pod_json(host: &str) -> String {
    format!(
        r#"{{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {{"name": "lonely", "namespace": "team-b"}},
  "spec": {{
    "containers": [
      {{"name": "app", "image": "{host}/private/team/app:v1.2.3"}}
    ]
  }}
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_tree_text_json_and_github() {
    let reg = registry().await;
    let host = reg.host();
    let ca = format!("{host}={}", reg.ca_path().unwrap().display());
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "app/kustomized.yaml", &kustomized(&host));
    write(dir.path(), "app/cron.yaml", &cronjob(&host));
    write(dir.path(), "nested/deeper/pod.json", &pod_json(&host));
    write(
        dir.path(),
        "broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n",
    );
    write(dir.path(), "notes.txt", "not a manifest");
    let root = dir.path().to_str().unwrap();

    // Text: findings with file and line, in the webhook's words; the broken file is named
    // and the others still checked; exit 2 (unreadable input wins over findings).
    let out = run(&["check", "--registry-ca", &ca, root], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}\n{}", stderr(&out));
    assert!(
        stderr(&out).contains("broken.yaml:3: invalid YAML"),
        "{}",
        stderr(&out)
    );
    assert!(text.contains("cron.yaml"), "{text}");
    assert!(text.contains("CronJob team-a/report"), "{text}");
    assert!(
        text.contains(&format!("   15  FAIL  container \"report\" ({host}/public/library/nginx:1.2x): tag \"1.2x\" does not exist in")),
        "{text}"
    );
    assert!(
        text.contains("existing tags close to it: 1.26, 1.25"),
        "{text}"
    );
    assert!(text.contains("Pod team-b/lonely"), "{text}");
    assert!(text.contains("requires authentication"), "{text}");
    assert!(
        text.contains("ok    container \"web\""),
        "private image through the ServiceAccount's secret: {text}"
    );
    assert!(text.contains("   42  ok    container \"web\""), "{text}");
    assert!(
        text.contains("    7  FAIL  container \"app\""),
        "JSON line of the image: {text}"
    );
    assert!(
        text.contains("3 other objects skipped"),
        "Secret, ServiceAccount, Service: {text}"
    );

    // JSON: one object per image, plus the input error.
    let out = run(
        &["check", "--registry-ca", &ca, "--format", "json", root],
        None,
    );
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by = |image_part: &str, verdict: &str| {
        lines.iter().find(|l| {
            l["verdict"] == verdict && l["image"].as_str().is_some_and(|i| i.contains(image_part))
        })
    };
    let bad = by("nginx:1.2x", "tag_not_found").expect("tag finding");
    assert_eq!(bad["line"], 15);
    assert_eq!(bad["action"], "deny");
    assert!(bad["file"].as_str().unwrap().ends_with("app/cron.yaml"));
    assert_eq!(bad["object"]["kind"], "CronJob");
    let web = lines
        .iter()
        .find(|l| l["container"] == "web" && l["verdict"] == "ok")
        .expect("web ok");
    assert_eq!(web["line"], 42);
    assert!(web["digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(
        by("private/team/app", "unauthorized").is_some(),
        "{lines:?}"
    );
    assert!(lines
        .iter()
        .any(|l| l["verdict"] == "input_error" && l["line"] == 3));

    // GitHub annotations.
    let out = run(
        &["check", "--registry-ca", &ca, "--format", "github", root],
        None,
    );
    let gh = stdout(&out);
    let line = gh
        .lines()
        .find(|l| l.contains("tag_not_found"))
        .unwrap_or_else(|| panic!("{gh}"));
    assert!(line.starts_with("::error file="), "{line}");
    assert!(
        line.contains("cron.yaml,line=15,title=pullcheck tag_not_found%3A CronJob team-a/report::"),
        "{line}"
    );
    assert!(
        gh.contains("::error file=")
            && gh.contains("broken.yaml,line=3,title=pullcheck%3A unreadable input::"),
        "{gh}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_style_stream_on_stdin() {
    let reg = registry().await;
    let host = reg.host();
    let ca = format!("{host}={}", reg.ca_path().unwrap().display());
    let stream = format!(
        r#"---
# Source: tools/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: tools
spec:
  selector:
    matchLabels: {{app: tools}}
  template:
    metadata:
      labels: {{app: tools}}
    spec:
      containers:
        - name: busybox
          image: "{host}/public/library/busybox:1.36"
---
# Source: tools/templates/statefulset.yaml
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: arm
spec:
  serviceName: arm
  selector:
    matchLabels: {{app: arm}}
  template:
    metadata:
      labels: {{app: arm}}
    spec:
      containers:
        - name: arm
          image: "{host}/public/tools/armonly:v1"
"#
    );
    let out = run(
        &[
            "check",
            "--registry-ca",
            &ca,
            "--namespace",
            "tools",
            "--format",
            "json",
            "-",
        ],
        Some(&stream),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let arm = lines
        .iter()
        .find(|l| l["verdict"] == "platform_mismatch")
        .expect("platform finding");
    assert_eq!(arm["file"], "-");
    assert_eq!(arm["line"], 33);
    assert_eq!(arm["object"]["namespace"], serde_json::Value::Null);
    assert!(arm["message"].as_str().unwrap().contains("linux/arm64"));
    assert!(lines
        .iter()
        .any(|l| l["container"] == "busybox" && l["verdict"] == "ok"));

    // The same with arm64 nodes passes.
    let out = run(
        &[
            "check",
            "--registry-ca",
            &ca,
            "--platform",
            "linux/arm64",
            "-",
        ],
        Some(&stream),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_run_with_cache_dir_asks_the_registry_nothing() {
    let reg = registry().await;
    let host = reg.host();
    let ca = format!("{host}={}", reg.ca_path().unwrap().display());
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m/app.yaml", &kustomized(&host));
    let cache = dir.path().join("cache");
    let manifests = dir.path().join("m");
    let args = [
        "check",
        "--registry-ca",
        &ca,
        "--cache-dir",
        cache.to_str().unwrap(),
        manifests.to_str().unwrap(),
    ];

    reg.clear_requests().await;
    let first = run(&args, None);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );
    let cold = reg.requests().await;
    assert!(cold.iter().any(|r| r.method == "HEAD"), "{cold:?}");
    let cold_tokens = reg.token_requests().await.len();
    assert!(cold_tokens >= 2, "one per repository");

    reg.clear_requests().await;
    let second = run(&args, None);
    assert_eq!(second.status.code(), Some(0));
    assert_eq!(stdout(&second), stdout(&first), "same report");
    let warm = reg.requests().await;
    assert!(
        warm.is_empty(),
        "no registry request on the second run: {warm:?}"
    );
    assert!(reg.token_requests().await.is_empty());
    let on_disk = std::fs::read_to_string(cache.join("pullcheck-cache.json")).unwrap();
    assert!(!on_disk.contains(ALICE.1) && !on_disk.contains(ALICE.0));
}
