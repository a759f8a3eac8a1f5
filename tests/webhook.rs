//! `pullcheck serve` end to end: the real binary on loopback, a real registry (TLS + token
//! auth), an API-server stand-in for Secrets, ServiceAccounts and Nodes, and
//! AdmissionReviews posted the way the API server posts them (HTTPS verified against the
//! CA for `pullcheck.pullcheck.svc`, HTTP/2, `?timeout=10s`).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::apiserver::FakeApiServer;
use support::double::{Behaviour, Double};
use support::serve::{
    client_trusting, dockerconfig, free_port, Options, Server, DOCKERCONFIGJSON, SERVICE_NAME,
};
use support::{Auth, RegistryOptions, TestRegistry, ALICE, BOB};

fn write_certs(dir: &Path, tag: &str) -> (PathBuf, PathBuf, String) {
    let (ca, serving) = pullcheck::webhook::certs::generate("pullcheck", "pullcheck", 30).unwrap();
    let cert = dir.join(format!("tls-{tag}.crt"));
    let key = dir.join(format!("tls-{tag}.key"));
    std::fs::write(&cert, &serving.cert).unwrap();
    std::fs::write(&key, &serving.key).unwrap();
    (cert, key, ca.cert)
}

/// `pullcheck serve` with `config`, trusting `registry`, reading `api` (none: no cluster).
async fn start(registry: &TestRegistry, api: Option<&FakeApiServer>, config: &str) -> Server {
    Server::start(Options {
        config: config.to_string(),
        registry: Some(registry),
        api,
        ..Options::default()
    })
    .await
}

/// Posts a review like the API server (`?timeout=10s`, HTTP/2); returns the response.
async fn post(s: &Server, path: &str, review: &Value) -> Value {
    s.review(path, "10s", review).await.0
}

/// Loads a fixture and points its images at `registry`: the fixtures' team images (pulled
/// with credentials) go under `private/`, the others under `public/`.
fn fixture(name: &str, registry: &TestRegistry) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/admission")
        .join(name);
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    rewrite_images(&mut v, &registry.host());
    v
}

fn rewrite(image: &str, host: &str) -> String {
    let r = pullcheck::kubelet::reference::ImageRef::parse(image).unwrap();
    let private = r.path().starts_with("team/") || r.path().contains("private-tool");
    let prefix = if private { "private" } else { "public" };
    let mut out = format!("{host}/{prefix}/{}", r.path());
    if let Some(t) = r.tag() {
        out.push(':');
        out.push_str(t);
    }
    if let Some(d) = r.digest() {
        out.push('@');
        out.push_str(d);
    }
    out
}

fn rewrite_images(v: &mut Value, host: &str) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if (k == "image" || k == "reference") && val.is_string() {
                    *val = Value::String(rewrite(val.as_str().unwrap(), host));
                } else {
                    rewrite_images(val, host);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite_images(i, host)),
        _ => {}
    }
}

/// Replaces every image string equal to `from` (after rewriting) with `to`.
fn replace_image(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::Object(map) => map.values_mut().for_each(|x| replace_image(x, from, to)),
        Value::Array(items) => items.iter_mut().for_each(|x| replace_image(x, from, to)),
        Value::String(s) if s == from => *s = to.to_string(),
        _ => {}
    }
}

/// The registry content the fixtures name.
async fn populate(reg: &TestRegistry) {
    reg.push_index(
        "public/library/nginx",
        "1.25",
        &["linux/amd64", "linux/arm64"],
        true,
    )
    .await;
    reg.push_index(
        "public/library/nginx",
        "1.26",
        &["linux/amd64", "linux/arm64"],
        false,
    )
    .await;
    reg.push_tags("public/library/nginx", &["1.24", "1.25.3", "1.27"])
        .await;
    reg.push_index(
        "public/library/busybox",
        "1.36",
        &["linux/amd64", "linux/arm64"],
        false,
    )
    .await;
    reg.push_image("public/acme/x", Some("1.0"), "linux/amd64")
        .await;
    reg.push_image("private/team/report", Some("2024.10"), "linux/amd64")
        .await;
    reg.push_image("private/team/app", Some("v1.2.3"), "linux/amd64")
        .await;
    reg.push_image("private/team/migrate", Some("v1.2.3"), "linux/amd64")
        .await;
    reg.push_image("public/models/llm", Some("v3"), "linux/amd64")
        .await;
}

struct World {
    reg: TestRegistry,
    api: FakeApiServer,
}

async fn world() -> World {
    let reg = TestRegistry::start(RegistryOptions {
        tls: true,
        auth: Auth::Token,
    })
    .await;
    populate(&reg).await;
    let api = FakeApiServer::start().await;
    let cfg = dockerconfig(&reg.host(), ALICE.0, ALICE.1);
    api.put_secret(
        "team-a",
        "regcred",
        DOCKERCONFIGJSON,
        &[(".dockerconfigjson", &cfg)],
    );
    api.put_service_account("team-a", "default", &[]);
    api.put_service_account("team-a", "reporter", &["regcred"]);
    api.put_node("node-amd64", "linux", "amd64");
    World { reg, api }
}

fn denied(resp: &Value) -> bool {
    resp["allowed"] == false
}

fn message(resp: &Value) -> String {
    resp["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn warnings(resp: &Value) -> Vec<String> {
    resp["warnings"]
        .as_array()
        .map(|w| w.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_workload_kind_is_checked() {
    let w = world().await;
    let s = start(&w.reg, Some(&w.api), "defaultMode: enforce\n").await;
    for name in [
        "deployment-create.json",
        "statefulset-create.json",
        "daemonset-create.json",
        "replicaset-create.json",
        "job-create.json",
        "replicationcontroller-create.json",
        "pod-create-owned.json",
        "pod-image-volume.json",
    ] {
        let review = fixture(name, &w.reg);
        let resp = post(&s, "/validate/enforce", &review).await;
        assert_eq!(resp["allowed"], true, "{name}: {resp}");
        assert!(warnings(&resp).is_empty(), "{name}: {resp}");
        let images = resp["auditAnnotations"]["images"]
            .as_str()
            .unwrap_or_default();
        assert!(
            images.contains("sha256:"),
            "{name}: resolved digests recorded: {resp}"
        );

        // The same object with a tag that does not exist is denied, naming the container.
        let mut bad = review.clone();
        let nginx = format!("{}/public/library/nginx:1.25", w.reg.host());
        let busted = format!("{}/public/library/nginx:1.25-typo", w.reg.host());
        replace_image(&mut bad, &nginx, &busted);
        if bad == review {
            continue;
        }
        let resp = post(&s, "/validate/enforce", &bad).await;
        if name == "pod-create-owned.json" {
            // Controller-owned Pods: audit only by default (the template was checked).
            assert_eq!(resp["allowed"], true, "{name}: {resp}");
            assert!(resp["auditAnnotations"]["findings"]
                .as_str()
                .unwrap()
                .contains("tag_not_found"));
            continue;
        }
        assert!(denied(&resp), "{name}: {resp}");
        let m = message(&resp);
        assert!(
            m.contains("container \"web\"") || m.contains("container \""),
            "{m}"
        );
        assert!(m.contains(&busted) && m.contains("1.25.3"), "{name}: {m}");
    }
}

#[tokio::test]
async fn modes_decide_differently_on_the_same_finding() {
    let w = world().await;
    let s = start(&w.reg, Some(&w.api), "defaultMode: warn\n").await;
    let mut review = fixture("deployment-create.json", &w.reg);
    let nginx = format!("{}/public/library/nginx:1.25", w.reg.host());
    replace_image(
        &mut review,
        &nginx,
        &format!("{}/public/library/nginx:1.2x", w.reg.host()),
    );

    let enforce = post(&s, "/validate/enforce", &review).await;
    assert!(denied(&enforce));
    assert!(message(&enforce)
        .starts_with("pullcheck: 1 image of Deployment team-a/web would fail to pull:"));

    let warn = post(&s, "/validate/warn", &review).await;
    assert_eq!(warn["allowed"], true);
    let ws = warnings(&warn);
    assert_eq!(ws.len(), 1, "{ws:?}");
    assert!(
        ws[0].len() <= 256 && ws[0].contains("does not exist"),
        "{ws:?}"
    );

    let audit = post(&s, "/validate/audit", &review).await;
    assert_eq!(audit["allowed"], true);
    assert!(warnings(&audit).is_empty());
    assert!(audit["auditAnnotations"]["findings"]
        .as_str()
        .unwrap()
        .contains("tag_not_found"));

    // /validate uses the configured default (warn).
    let default = post(&s, "/validate", &review).await;
    assert_eq!(default["allowed"], true);
    assert_eq!(warnings(&default).len(), 1);

    // dryRun: the same answer.
    let mut dry = review.clone();
    dry["request"]["dryRun"] = json!(true);
    let resp = post(&s, "/validate/enforce", &dry).await;
    assert_eq!(message(&resp), message(&enforce));
}

#[tokio::test]
async fn updates_without_image_changes_make_no_registry_request() {
    let w = world().await;
    let s = start(&w.reg, Some(&w.api), "defaultMode: enforce\n").await;
    w.reg.clear_requests().await;
    for name in ["deployment-update-scale.json", "deployment-delete.json"] {
        let resp = post(&s, "/validate/enforce", &fixture(name, &w.reg)).await;
        assert_eq!(resp["allowed"], true, "{name}");
    }
    assert!(w.reg.requests().await.is_empty(), "no registry request");

    let resp = post(
        &s,
        "/validate/enforce",
        &fixture("deployment-update-image.json", &w.reg),
    )
    .await;
    assert_eq!(resp["allowed"], true, "{resp}");
    let heads: Vec<_> = w
        .reg
        .requests()
        .await
        .into_iter()
        .filter(|r| r.method == "HEAD")
        .collect();
    assert_eq!(heads.len(), 1, "only the changed image: {heads:?}");
    assert!(heads[0].path.contains("1.26"));

    // Ephemeral containers (kubectl debug): the new image is checked.
    let resp = post(
        &s,
        "/validate/enforce",
        &fixture("pod-ephemeralcontainers-update.json", &w.reg),
    )
    .await;
    assert_eq!(resp["allowed"], true, "{resp}");

    // Unknown kinds are allowed without a look.
    let mut cm = fixture("deployment-create.json", &w.reg);
    cm["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
    assert_eq!(post(&s, "/validate/enforce", &cm).await["allowed"], true);
}

#[tokio::test]
async fn pull_secrets_findings_and_a_secret_created_between_attempts() {
    let w = world().await;
    let s = start(&w.reg, Some(&w.api), "defaultMode: enforce\n").await;
    let host = w.reg.host();

    // A Pod naming a secret that does not exist, for a private image.
    let mut pod = fixture("pod-create-dryrun.json", &w.reg);
    let spec = &mut pod["request"]["object"]["spec"];
    spec["containers"][0]["image"] = json!(format!("{host}/private/team/app:v1.2.3"));
    spec["imagePullSecrets"] = json!([{"name": "later"}]);
    let ns = pod["request"]["namespace"].as_str().unwrap().to_string();
    let resp = post(&s, "/validate/enforce", &pod).await;
    assert!(denied(&resp), "{resp}");
    let m = message(&resp);
    assert!(
        m.contains("\"later\"") && m.contains("does not exist"),
        "{m}"
    );

    // Created a second later: the retry is admitted.
    let cfg = dockerconfig(&host, ALICE.0, ALICE.1);
    w.api.put_secret(
        &ns,
        "later",
        DOCKERCONFIGJSON,
        &[(".dockerconfigjson", &cfg)],
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let resp = post(&s, "/validate/enforce", &pod).await;
    assert_eq!(resp["allowed"], true, "{resp}");

    // No secret at all: the hint names the unattached secret of the namespace that works
    // ("regcred", created with the world).
    let mut bare = pod.clone();
    bare["request"]["object"]["spec"]["imagePullSecrets"] = json!([]);
    let resp = post(&s, "/validate/enforce", &bare).await;
    assert!(denied(&resp));
    assert!(
        message(&resp).contains("add imagePullSecrets: [{name: regcred}]"),
        "{}",
        message(&resp)
    );

    // Credentials refused.
    let bob = dockerconfig(&host, BOB.0, BOB.1);
    w.api.put_secret(
        &ns,
        "bobs",
        DOCKERCONFIGJSON,
        &[(".dockerconfigjson", &bob)],
    );
    let mut refused = pod.clone();
    refused["request"]["object"]["spec"]["imagePullSecrets"] = json!([{"name": "bobs"}]);
    let resp = post(&s, "/validate/enforce", &refused).await;
    assert!(denied(&resp));
    assert!(message(&resp).contains("secret/bobs"), "{}", message(&resp));

    // Wrong type, and a broken payload.
    w.api
        .put_secret(&ns, "opaque", "Opaque", &[(".dockerconfigjson", &cfg)]);
    w.api.put_secret(
        &ns,
        "broken",
        DOCKERCONFIGJSON,
        &[(".dockerconfigjson", b"{not json")],
    );
    let mut wrong = pod.clone();
    wrong["request"]["object"]["spec"]["imagePullSecrets"] = json!([{"name": "opaque"}]);
    let resp = post(&s, "/validate/enforce", &wrong).await;
    assert!(denied(&resp));
    assert!(message(&resp).contains("Opaque"), "{}", message(&resp));
    let mut broken = pod.clone();
    broken["request"]["object"]["spec"]["imagePullSecrets"] = json!([{"name": "broken"}]);
    let resp = post(&s, "/validate/enforce", &broken).await;
    assert!(denied(&resp));
    assert!(
        message(&resp).contains("\"broken\"") && message(&resp).contains("not valid JSON"),
        "{}",
        message(&resp)
    );

    // Templates take the ServiceAccount's pull secrets (cronjob: ServiceAccount "reporter").
    w.api.put_node("node-arm64", "linux", "arm64");
    let resp = post(
        &s,
        "/validate/enforce",
        &fixture("cronjob-create.json", &w.reg),
    )
    .await;
    // report:2024.10 is amd64-only and the CronJob pins arm64 nodes.
    assert!(denied(&resp), "{resp}");
    let m = message(&resp);
    assert!(
        m.contains("linux/arm64") && m.contains("kubernetes.io/arch"),
        "{m}"
    );
}

#[tokio::test]
async fn mixed_node_platforms_warn_with_the_node_selector_to_add() {
    let w = world().await;
    w.api.put_node("node-arm64", "linux", "arm64");
    let s = start(&w.reg, Some(&w.api), "defaultMode: enforce\n").await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // node watch
    let mut review = fixture("deployment-create.json", &w.reg);
    let nginx = format!("{}/public/library/nginx:1.25", w.reg.host());
    replace_image(
        &mut review,
        &nginx,
        &format!("{}/public/acme/x:1.0", w.reg.host()),
    );
    let resp = post(&s, "/validate/enforce", &review).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    let ws = warnings(&resp);
    assert!(
        ws.iter()
            .any(|w| w.contains("linux/arm64")
                && w.contains("nodeSelector kubernetes.io/arch: amd64")),
        "{ws:?}"
    );
}

#[tokio::test]
async fn a_registry_that_never_answers_is_answered_before_the_deadline() {
    // Accepts connections and never says a word.
    let silent = Double::behaving(Behaviour::Silent).await;
    let silent = silent.host();
    let w = world().await;
    let s = start(
        &w.reg,
        Some(&w.api),
        &format!("defaultMode: enforce\nregistries:\n  \"{silent}\":\n    plainHttp: true\n"),
    )
    .await;
    let mut review = fixture("deployment-create.json", &w.reg);
    let nginx = format!("{}/public/library/nginx:1.25", w.reg.host());
    replace_image(&mut review, &nginx, &format!("{silent}/app:1"));
    let started = Instant::now();
    let resp = s
        .client
        .post(s.url("/validate/enforce?timeout=3s"))
        .json(&review)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["response"]
        .clone();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "answered in {took:?}");
    assert_eq!(resp["allowed"], true, "transient: admitted {resp}");
    let ws = warnings(&resp);
    assert!(ws.iter().any(|w| w.contains("did not answer")), "{ws:?}");
}

/// The HTTP layer's rules (routes, body limits, deadlines, status codes) are tested in
/// process in `webhook::http`; this checks the served binary wires them and says why it
/// runs without a cluster.
#[tokio::test]
async fn the_served_binary_answers_probes_and_refuses_undecodable_bodies() {
    let reg = TestRegistry::start(RegistryOptions {
        tls: false,
        auth: Auth::None,
    })
    .await;
    let s = start(&reg, None, "").await;
    let (status, reason) = s.post_raw(b"{".to_vec()).await;
    assert_eq!(status, 400, "{reason}");
    let big = vec![b' '; 8 << 20];
    assert_eq!(s.post_raw(big).await.0, 413);
    assert_eq!(s.get("/healthz").await.0, 200);
    let (_, ready) = s.get("/readyz").await;
    assert!(ready.contains("no cluster"), "{ready}");
    let (_, metrics) = s.get("/metrics").await;
    assert!(metrics.contains("decision=\"invalid\"} 2"), "{metrics}");
    assert!(s.log().contains("no cluster") || s.log().contains("--no-cluster"));
}

#[tokio::test]
async fn certificate_is_reloaded_without_restart() {
    let reg = TestRegistry::start(RegistryOptions {
        tls: false,
        auth: Auth::None,
    })
    .await;
    let s = start(&reg, None, "").await;
    // New CA and certificate written over the served files.
    let (cert, key, new_ca) = write_certs(s.dir.path(), "b");
    std::fs::rename(&cert, s.dir.path().join("tls.crt")).unwrap();
    std::fs::rename(&key, s.dir.path().join("tls.key")).unwrap();
    let client = client_trusting(&new_ca, s.addr);
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(s.url("/healthz")).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not reloaded:\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(s.log().contains("reloaded"));
}

#[tokio::test]
async fn serve_starts_with_no_flags() {
    // Self-signed certificate, no cluster needed: `pullcheck serve` alone must come up.
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pullcheck"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let start = Instant::now();
    let mut ok = false;
    while start.elapsed() < Duration::from_secs(15) {
        if let Ok(r) = client
            .get(format!("https://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            ok = r.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(ok, "{log}");
    assert!(log.contains("SELF-SIGNED"), "{log}");
}

#[tokio::test]
async fn certificates_from_pullcheck_certs_serve_the_service_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pullcheck"))
        .args(["certs", "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pullcheck"))
        .args(["serve", "--no-cluster", "--listen", &addr.to_string()])
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ca = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
    let client = client_trusting(&ca, addr);
    let start = Instant::now();
    let result = loop {
        match client
            .get(format!("https://{SERVICE_NAME}:{port}/healthz"))
            .send()
            .await
        {
            Ok(r) => break Ok(r.version()),
            Err(e) if start.elapsed() > Duration::from_secs(15) => break Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    // The same CA does not vouch for another name.
    let other = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca.as_bytes()).unwrap())
        .resolve("other.pullcheck.svc", addr)
        .build()
        .unwrap();
    let wrong_name = other
        .get(format!("https://other.pullcheck.svc:{port}/healthz"))
        .send()
        .await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        result.expect("verified for pullcheck.pullcheck.svc"),
        reqwest::Version::HTTP_2
    );
    assert!(
        wrong_name.is_err(),
        "certificate must not be valid for another name"
    );
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_reviews() {
    // A registry that never answers keeps a review in flight until its deadline.
    let silent = Double::behaving(Behaviour::Silent).await;
    let silent = silent.host();
    let reg = TestRegistry::start(RegistryOptions {
        tls: false,
        auth: Auth::None,
    })
    .await;
    let mut s = start(
        &reg,
        None,
        &format!("registries:\n  \"{silent}\":\n    plainHttp: true\n"),
    )
    .await;
    let mut review = fixture("deployment-create.json", &reg);
    let nginx = format!("{}/public/library/nginx:1.25", reg.host());
    replace_image(&mut review, &nginx, &format!("{silent}/app:1"));
    let request = s
        .client
        .post(s.url("/validate/enforce?timeout=3s"))
        .json(&review)
        .send();
    let pid = s.child.id().to_string();
    let signal = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
    };
    let (resp, ()) = tokio::join!(request, signal);
    let resp = resp.expect("in-flight review answered during shutdown");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["response"]["allowed"], true);
    // Then the process exits by itself.
    let start = Instant::now();
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still running:\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(s.log().contains("shutting down"));
}
