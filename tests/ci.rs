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

// ---------------------------------------------------------------------------------------
// Hostile input: what a pull request can put in front of `pullcheck check` in CI.
// ---------------------------------------------------------------------------------------

#[allow(dead_code)]
#[path = "../examples/big_list.rs"]
mod big_list;

use std::time::{Duration, Instant};

/// `pullcheck ARGS` with `stdin`, killed (and the test failed) after `limit`.
fn run_within(args: &[&str], stdin: Stdio, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pullcheck"))
        .args(args)
        .env_remove("PULLCHECK_DOCKER_CONFIG")
        .env_remove("PULLCHECK_CACHE_DIR")
        .env_remove("PULLCHECK_MAX_INPUT_BYTES")
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pullcheck runs");
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pullcheck {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (output, started.elapsed())
}

/// A loopback address where nothing listens: every image is `unavailable` at once, and no
/// traffic leaves the machine.
fn closed_registry() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("127.0.0.1:{port}")
}

fn pod_yaml(name: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: {image}\n"
    )
}

fn json_lines_of(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn symlink_loops_end_and_no_file_is_read_twice() {
    use std::os::unix::fs::symlink;
    let reg = closed_registry();
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    write(
        &root,
        "b/pod.yaml",
        &pod_yaml("only", &format!("{reg}/a:1")),
    );
    write(outside.path(), "secret.yaml", &pod_yaml("outside", "x:1"));
    symlink("..", root.join("b/up")).unwrap(); // a loop
    symlink(".", root.join("b/self")).unwrap(); // another
    symlink(&root, root.join("b/abs")).unwrap(); // and one by absolute path
    symlink("pod.yaml", root.join("b/again.yaml")).unwrap(); // the same file twice
    symlink(outside.path().join("secret.yaml"), root.join("b/out.yaml")).unwrap();
    let root_s = root.to_str().unwrap();

    let (out, took) = run_within(
        &["check", "--format", "json", root_s, root_s],
        Stdio::null(),
        Duration::from_secs(60),
    );
    let lines = json_lines_of(&out);
    let pods: Vec<_> = lines
        .iter()
        .filter(|l| l["object"]["name"] == "only")
        .collect();
    assert_eq!(pods.len(), 1, "one result for one file: {lines:?}");
    assert_eq!(pods[0]["verdict"], "unavailable");
    assert!(
        lines.iter().all(|l| l["object"]["name"] != "outside"),
        "a link out of the tree is not read: {lines:?}"
    );
    let warnings: Vec<String> = lines
        .iter()
        .filter(|l| l["verdict"] == "input_warning")
        .map(|l| format!("{}: {}", l["file"].as_str().unwrap(), l["message"]))
        .collect();
    for (link, why) in [
        ("b/up", "a symbolic link to a directory: not followed"),
        ("b/self", "a symbolic link to a directory: not followed"),
        ("b/abs", "a symbolic link to a directory: not followed"),
        ("b/out.yaml", "outside"),
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(link) && w.contains(why)),
            "{link}: {warnings:?}"
        );
    }
    assert_eq!(
        out.status.code(),
        Some(0),
        "warnings only: {}",
        stderr(&out)
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn fifos_sockets_and_devices_are_named_never_read() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fifo = d.join("tree/pipe.yaml");
    std::fs::create_dir_all(d.join("tree")).unwrap();
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", fifo.display());
    let _socket = std::os::unix::net::UnixListener::bind(d.join("tree/sock.json")).unwrap();
    symlink("/dev/zero", d.join("tree/zero.yaml")).unwrap();
    symlink("pipe.yaml", d.join("tree/to-pipe.yml")).unwrap();
    symlink("/dev/zero", d.join("zero-link")).unwrap();
    write(d, "tree/ok.yaml", &pod_yaml("fine", "x:1"));
    let tree = d.join("tree");
    let zero_link = d.join("zero-link");

    // In a directory: each named with what it is; the rest still checked.
    let (out, took) = run_within(
        &["check", tree.to_str().unwrap()],
        Stdio::null(),
        Duration::from_secs(30),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for (name, what) in [
        (
            "pipe.yaml",
            "a FIFO (named pipe), not a regular file: not read",
        ),
        ("sock.json", "a socket, not a regular file: not read"),
        (
            "zero.yaml",
            "a symbolic link to a character device, not a regular file: not read",
        ),
        (
            "to-pipe.yml",
            "a symbolic link to a FIFO (named pipe), not a regular file",
        ),
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with("error: ") && l.contains(name) && l.contains(what)),
            "{name}: {err}"
        );
    }
    assert!(
        stdout(&out).contains("Pod default/fine"),
        "{}",
        stdout(&out)
    );
    assert!(took < Duration::from_secs(20), "{took:?}");

    // Given directly (a link given is followed, to what it is).
    for (path, what) in [
        (fifo.to_str().unwrap(), "a FIFO (named pipe)"),
        ("/dev/zero", "a character device"),
        (zero_link.to_str().unwrap(), "a character device"),
    ] {
        let (out, _) = run_within(&["check", path], Stdio::null(), Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            stderr(&out).lines().next().unwrap_or_default(),
            format!("error: {path}: {what}, not a regular file: not read"),
        );
    }
}

#[test]
fn every_input_is_capped_standard_input_too() {
    let dir = tempfile::tempdir().unwrap();
    let pod = pod_yaml("big", "x:1");
    let padded = format!("{pod}# {}\n", "x".repeat(2000));
    write(dir.path(), "big.yaml", &padded);
    let big = dir.path().join("big.yaml");
    let big = big.to_str().unwrap();

    let (out, _) = run_within(
        &["check", "--max-input-bytes", "1KiB", big],
        Stdio::null(),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).lines().next().unwrap_or_default(),
        format!("error: {big}: larger than the input limit of 1 KiB (1024 bytes) (--max-input-bytes): not read")
    );

    // The environment sets it too; under the cap the file is read.
    let (out, _) = run_within(
        &["check", "--format", "json", big],
        Stdio::null(),
        Duration::from_secs(20),
    );
    assert!(stdout(&out).contains("\"big\""), "{}", stderr(&out));
    let mut c = Command::new(env!("CARGO_BIN_EXE_pullcheck"));
    let out = c
        .args(["check", big])
        .env("PULLCHECK_MAX_INPUT_BYTES", "2000")
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("limit of 2000 bytes"),
        "{}",
        stderr(&out)
    );

    // Standard input from /dev/zero: refused at the cap, memory never grows past it.
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let (out, took) = run_within(
        &["check", "--max-input-bytes", "1MiB", "-"],
        Stdio::from(zero),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).lines().next().unwrap_or_default(),
        "error: -: standard input larger than the input limit of 1 MiB (1048576 bytes) (--max-input-bytes): not read"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        run_within(
            &["check", "--max-input-bytes", "8GiB", "-"],
            Stdio::null(),
            Duration::from_secs(10)
        )
        .0
        .status
        .code()
            == Some(2)
    );
}

#[test]
fn yaml_bombs_are_refused_quickly_and_the_rest_checked() {
    let mut bomb = String::from("apiVersion: v1\nkind: Pod\nmetadata: {name: boom}\nlol:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (p, c) in ('a'..='h').zip('b'..='i') {
        bomb.push_str(&format!(
            "  {c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        ));
    }
    bomb.push_str("spec:\n  containers:\n  - name: c\n    image: x:1\n    args: *i\n");
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{}---\n{bomb}", pod_yaml("fine", "x:1"));
    write(dir.path(), "bomb.yaml", &text);
    let file = dir.path().join("bomb.yaml");
    let (out, took) = run_within(
        &["check", file.to_str().unwrap()],
        Stdio::null(),
        Duration::from_secs(30),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("error: {}:", file.display()))
            && err.contains("YAML aliases expand beyond")
            && err.contains("billion laughs"),
        "{err}"
    );
    assert!(
        stdout(&out).contains("Pod default/fine"),
        "{}",
        stdout(&out)
    );
    assert!(took < Duration::from_secs(10), "refused quickly: {took:?}");
}

#[test]
fn a_50_mb_image_string_is_never_echoed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let image = format!("r.example/{}:1", "a".repeat(50 << 20));
    // And a Secret whose name and data key are 20 MB each, for input errors.
    let huge = "s".repeat(20 << 20);
    write(dir.path(), "m/pod.yaml", &pod_yaml("huge", &image));
    write(
        dir.path(),
        "m/secret.json",
        &format!(
            r#"{{"apiVersion": "v1", "kind": "Secret", "metadata": {{"name": "{huge}"}}, "data": {{"{huge}": 1}}}}"#
        ),
    );
    let m = dir.path().join("m");
    for format in ["text", "json", "github"] {
        let (out, took) = run_within(
            &["check", "--format", format, m.to_str().unwrap()],
            Stdio::null(),
            Duration::from_secs(120),
        );
        assert_eq!(out.status.code(), Some(2), "{format}: {}", stderr(&out));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            all.len() < 32 << 10,
            "{format}: {} bytes written: {}…",
            all.len(),
            &all[..2000.min(all.len())]
        );
        assert!(
            all.contains("invalid_reference") || all.contains("invalid image reference"),
            "{format}: {all}"
        );
        assert!(
            all.contains("secret.json") && all.contains("is not a string"),
            "{format}: {all}"
        );
        assert!(
            all.contains("aaaa…") || all.contains("aaa…"),
            "{format}: clipped with a mark: {all}"
        );
        eprintln!("{format}: {took:?}");
    }
}

#[test]
fn a_20000_pod_list_streams_in_yaml_and_json() {
    let reg = closed_registry();
    let dir = tempfile::tempdir().unwrap();
    for (name, json) in [("pods.yaml", false), ("pods.json", true)] {
        let text = big_list::big_list(20_000, json, &reg);
        write(dir.path(), name, &text);
        let path = dir.path().join(name);
        let (out, took) = run_within(
            &[
                "check",
                "--plain-http",
                &reg,
                "--format",
                "json",
                path.to_str().unwrap(),
            ],
            Stdio::null(),
            Duration::from_secs(300),
        );
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        let lines = json_lines_of(&out);
        assert_eq!(lines.len(), 40_000, "{name}: two images a Pod");
        assert!(
            lines.iter().all(|l| l["verdict"] == "unavailable"),
            "{name}"
        );
        // Every image at its own line, in order.
        let last = lines.last().unwrap();
        assert_eq!(last["object"]["name"], "pod-019999");
        let line_of_last = text.lines().count() - if json { 1 } else { 3 };
        assert_eq!(last["line"], line_of_last, "{name}");
        eprintln!("{name}: {} bytes, {took:?}", text.len());
    }
}

/// `--image-credential-provider-config`: the kubelet's own file. An image its providers'
/// `matchImages` match (the kubelet's globs: per-label `*`, equal ports, the path a string
/// prefix) is pulled with node credentials, so the registry's "unauthorized" is a note, not
/// a finding; an image no provider matches still is one. A file the kubelet refuses to start
/// with stops `check` with the line that is wrong.
// Multi-threaded: the token server runs on this runtime while `run` blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_provider_config_as_the_kubelet_reads_it() {
    let reg = registry().await;
    let host = reg.host();
    let ca = format!("{host}={}", reg.ca_path().unwrap().display());
    let image = format!("{host}/private/team/app:v1.2.3");
    let dir = tempfile::tempdir().unwrap();
    let config = |match_images: &str, extra: &str| {
        format!(
            "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n\
             - name: corp-credential-provider\n  matchImages: [{match_images}]\n  \
             defaultCacheDuration: 12h\n  apiVersion: credentialprovider.kubelet.k8s.io/v1\n{extra}"
        )
    };
    let check = |file: Option<&str>| {
        let mut args = vec!["check", "--registry-ca", &ca, "--image", &image];
        let path = dir.path().join("providers.yaml");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
            args.extend(["--image-credential-provider-config", path.to_str().unwrap()]);
        }
        run(&args, None)
    };

    let without = check(None);
    assert_eq!(without.status.code(), Some(1), "{}", stdout(&without));
    assert!(stdout(&without).contains("requires authentication"));

    // `127.0.0.*:PORT/private` matches: one label glob, the same port, a path prefix.
    let glob = format!("\"127.0.0.*:{}/private\"", reg.port());
    let with = check(Some(&config(&glob, "")));
    assert_eq!(
        with.status.code(),
        Some(0),
        "{}{}",
        stdout(&with),
        stderr(&with)
    );
    assert!(
        stdout(&with).contains(&format!(
            "nodes pull {host}/private/team/app with credential provider \"corp-credential-provider\" (matchImages \"127.0.0.*:{}/private\"); access was not verified",
            reg.port()
        )),
        "{}",
        stdout(&with)
    );

    // Another path, or no port: no match, still a finding.
    for glob in [format!("\"{host}/public\""), "\"127.0.0.1\"".to_string()] {
        let other = check(Some(&config(&glob, "")));
        assert_eq!(other.status.code(), Some(1), "{glob}: {}", stdout(&other));
    }

    // KEP-4412: the plugin runs only for ServiceAccounts with the required annotation.
    let tokens = "  tokenAttributes:\n    serviceAccountTokenAudience: corp\n    requireServiceAccount: true\n    requiredServiceAccountAnnotationKeys: [corp.example/role]\n    cacheType: ServiceAccount\n";
    let sa = check(Some(&config(&glob, tokens)));
    assert_eq!(sa.status.code(), Some(0), "{}", stdout(&sa));
    assert!(
        stdout(&sa).contains("when the Pod's ServiceAccount has the annotation corp.example/role"),
        "{}",
        stdout(&sa)
    );

    // What the kubelet refuses, pullcheck refuses: a typo (strict decoding), a bad value.
    let typo = check(Some(&config(&glob, "  argz: [x]\n")));
    assert_eq!(typo.status.code(), Some(2), "{}", stderr(&typo));
    assert!(
        stderr(&typo).contains("line 8: unknown field `argz`"),
        "{}",
        stderr(&typo)
    );
    let negative = check(Some(&config(&glob, "").replace("12h", "-1h")));
    assert_eq!(negative.status.code(), Some(2));
    assert!(
        stderr(&negative)
            .contains("providers[0].defaultCacheDuration: must be greater than or equal to 0"),
        "{}",
        stderr(&negative)
    );
}

/// `--node-runtime` (and `nodeRuntime` in the webhook's file): how the nodes pick a platform
/// from an index follows their containerd. An arm64 node runs an arm/v7-only index on
/// containerd 2.0 (`Only`: arm64 falls back to arm/v8…v5) and refuses it on 2.1+, whose
/// CRI pulls through the transfer service with `OnlyStrict`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_runtime_decides_platform_fallbacks() {
    let reg = registry().await;
    reg.push_index("public/tools/armv7", "v1", &["linux/arm/v7"], false)
        .await;
    let host = reg.host();
    let ca = format!("{host}={}", reg.ca_path().unwrap().display());
    let image = format!("{host}/public/tools/armv7:v1");
    let base = [
        "check",
        "--registry-ca",
        &ca,
        "--platform",
        "linux/arm64",
        "--image",
        &image,
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        run(&args, None)
    };

    for lenient in [
        vec![],
        vec!["--node-runtime", "containerd://2.0.5"],
        vec!["--node-runtime", "containerd://1.7.28-0ubuntu1"],
    ] {
        let out = with(&lenient);
        assert_eq!(out.status.code(), Some(0), "{lenient:?}: {}", stdout(&out));
    }
    let strict = with(&["--node-runtime", "containerd://2.1.4"]);
    assert_eq!(strict.status.code(), Some(1), "{}", stdout(&strict));
    assert!(
        stdout(&strict).contains("linux/arm/v7"),
        "{}",
        stdout(&strict)
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "nodeRuntime: containerd://2.2.0\n").unwrap();
    let from_file = with(&["--config", config.to_str().unwrap()]);
    assert_eq!(from_file.status.code(), Some(1), "{}", stdout(&from_file));

    let unknown = with(&["--node-runtime", "docker"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("expected auto, containerd, cri-o"),
        "{}",
        stderr(&unknown)
    );
}
