//! The cluster view against the API-server stand-in and real registries: `pullcheck scan`
//! finds what changed since admission (a tag deleted, a pull secret deleted, the arm64
//! nodes gone), folds owners, marks scaled-to-zero and suspended workloads, explains a Pod
//! stuck pulling with the kubelet's words, and asks each registry once per image ×
//! credential; `serve` replicas elect one scanner with a Lease, write each Event once, and
//! hand over when the holder stops.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::apiserver::FakeApiServer;
use support::serve::{dockerconfig, Options, Server, DOCKERCONFIGJSON};
use support::{Auth, RegistryOptions, TestRegistry, ALICE};

const NS: &str = "team";

fn template(image: &str, secret: Option<&str>) -> Value {
    let mut spec = json!({"containers": [{"name": "app", "image": image}]});
    if let Some(s) = secret {
        spec["imagePullSecrets"] = json!([{ "name": s }]);
    }
    json!({ "metadata": {"labels": {"app": "x"}}, "spec": spec })
}

fn deployment(name: &str, image: &str, secret: Option<&str>, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "x"}}, "template": template(image, secret)},
    })
}

fn owner(of: &Value) -> Value {
    json!([{
        "apiVersion": of["apiVersion"], "kind": of["kind"], "name": of["metadata"]["name"],
        "uid": of["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
    }])
}

fn pod(
    name: &str,
    image: &str,
    secret: Option<&str>,
    owners: Value,
    waiting: Option<(&str, &str)>,
) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "ownerReferences": owners},
        "spec": template(image, secret)["spec"].clone(),
        "status": {"phase": "Running", "containerStatuses": [{"name": "app", "image": image, "ready": true, "restartCount": 0, "state": {"running": {}}}]},
    });
    p["spec"]["nodeName"] = json!("n1");
    if let Some((reason, message)) = waiting {
        p["status"] = json!({"phase": "Pending", "containerStatuses": [{"name": "app", "image": image, "ready": false, "restartCount": 0, "imageID": "", "state": {"waiting": {"reason": reason, "message": message}}}]});
    }
    p
}

fn scan(api: &FakeApiServer, reg: &TestRegistry, extra: &[&str]) -> (Output, Vec<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_pullcheck"))
        .arg("scan")
        .args(["--format", "json", "--registry-ca"])
        .arg(format!(
            "{}={}",
            reg.host(),
            reg.ca_path().unwrap().display()
        ))
        .args(extra)
        .env("KUBECONFIG", api.kubeconfig_path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("PULLCHECK_CONFIG")
        .output()
        .expect("pullcheck scan runs");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (out, lines)
}

fn line<'a>(lines: &'a [Value], kind: &str, name: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["type"] == "workload" && l["kind"] == kind && l["name"] == name)
        .unwrap_or_else(|| panic!("no line for {kind}/{name} in {lines:#?}"))
}

fn summary(lines: &[Value]) -> &Value {
    lines
        .iter()
        .find(|l| l["type"] == "summary")
        .expect("a summary line")
}

async fn cluster_and_registry() -> (FakeApiServer, TestRegistry) {
    let reg = TestRegistry::start(RegistryOptions {
        tls: true,
        auth: Auth::Htpasswd,
    })
    .await;
    for (repo, platform) in [
        ("team/web", "linux/amd64"),
        ("team/gone", "linux/amd64"),
        ("team/arm", "linux/arm64"),
        ("team/private", "linux/amd64"),
    ] {
        reg.push_image(repo, Some("1"), platform).await;
    }
    let api = FakeApiServer::start().await;
    let auth = dockerconfig(&reg.host(), ALICE.0, ALICE.1);
    for s in ["regcred", "other"] {
        api.put_secret(NS, s, DOCKERCONFIGJSON, &[(".dockerconfigjson", &auth)]);
    }
    api.put_node("n1", "linux", "amd64");
    api.put_node("n2", "linux", "arm64");
    (api, reg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_finds_what_changed_since_admission_and_asks_once_per_image_and_credential() {
    let (api, reg) = cluster_and_registry().await;
    let host = reg.host();
    let img = |repo: &str| format!("{host}/team/{repo}:1");
    // A Deployment, its ReplicaSet and Pods: checked once, through the Deployment.
    let web = api.put_object(deployment("web", &img("web"), Some("regcred"), 2));
    let rs = api.put_object(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-7d9f", "namespace": NS, "ownerReferences": owner(&web)},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "x"}}, "template": template(&img("web"), Some("regcred"))},
    }));
    for i in 0..2 {
        api.put_object(pod(
            &format!("web-7d9f-{i}"),
            &img("web"),
            Some("regcred"),
            owner(&rs),
            None,
        ));
    }
    api.put_object(deployment("gone", &img("gone"), Some("regcred"), 0));
    api.put_object(deployment("arm", &img("arm"), Some("regcred"), 1));
    api.put_object(deployment("private", &img("private"), Some("other"), 1));
    let cron = api.put_object(json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": NS},
        "spec": {"schedule": "0 3 * * *", "suspend": true, "jobTemplate": {"spec": {"template": template(&img("web"), Some("regcred"))}}},
    }));
    api.put_object(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "nightly-1", "namespace": NS, "ownerReferences": owner(&cron)},
        "spec": {"template": template(&img("web"), Some("regcred"))},
    }));
    // Exempt namespaces are not scanned.
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "exemptNamespaces: [kube-system]\n").unwrap();
    let mut sys = deployment("dns", "nowhere.invalid/dns:1", None, 1);
    sys["metadata"]["namespace"] = json!("kube-system");
    api.put_object(sys);
    let config_arg = format!("--config={}", config.path().display());

    let (out, lines) = scan(&api, &reg, &[&config_arg]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "everything pulls: {lines:#?}\n{stderr}"
    );
    for l in &lines[..lines.len() - 1] {
        assert_eq!(l["verdict"], "ok", "{l}");
        assert_ne!(l["namespace"], "kube-system");
    }
    assert!(
        !lines
            .iter()
            .any(|l| l["kind"] == "ReplicaSet" || l["kind"] == "Job" || l["kind"] == "Pod"),
        "owned objects fold into their owners: {lines:#?}"
    );
    assert_eq!(
        line(&lines, "Deployment", "gone")["scale"],
        "scaled_to_zero"
    );
    assert_eq!(line(&lines, "CronJob", "nightly")["scale"], "suspended");
    let s = summary(&lines);
    assert_eq!(s["folded"], 4, "{s}");
    // web (Deployment and CronJob share it), gone, arm, private: one credential each.
    assert_eq!(s["resolutions"], 4, "{s}");
    assert_eq!(s["checks"], 4, "{s}");

    // After admission: the tag is deleted, a pull secret too, and the arm64 nodes are gone;
    // a Pod of the deleted tag is stuck, its waiting message carrying no error (its
    // Failed event has it).
    let digest = reg.push_image("team/gone", Some("1"), "linux/amd64").await;
    reg.delete_manifest("team/gone", &digest).await;
    api.delete_secret(NS, "other");
    api.delete_node("n2");
    let stuck = api.put_object(pod(
        "gone-0",
        &img("gone"),
        Some("regcred"),
        json!([]),
        Some((
            "ImagePullBackOff",
            &format!("Back-off pulling image \"{}\"", img("gone")),
        )),
    ));
    let kubelet = format!(
        "Failed to pull image \"{0}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{0}\": failed to resolve reference \"{0}\": {0}: not found",
        img("gone")
    );
    api.put_object(json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "gone-0.17f0", "namespace": NS},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": NS, "name": "gone-0", "uid": stuck["metadata"]["uid"], "fieldPath": "spec.containers{app}"},
        "reason": "Failed", "type": "Warning", "message": kubelet, "count": 4,
        "firstTimestamp": "2025-01-01T00:00:00Z", "lastTimestamp": "2025-01-01T00:05:00Z",
        "source": {"component": "kubelet", "host": "n1"},
    }));
    reg.clear_requests().await;
    let (out, lines) = scan(&api, &reg, &[&config_arg]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{lines:#?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gone = line(&lines, "Deployment", "gone");
    assert_eq!(
        (gone["verdict"].as_str(), gone["denied"].as_bool()),
        (Some("tag_not_found"), Some(true)),
        "{gone}"
    );
    assert_eq!(gone["container"], "app");
    assert_eq!(gone["image"], img("gone"));
    assert!(
        gone["message"].as_str().unwrap().contains("does not exist"),
        "{gone}"
    );
    let private = line(&lines, "Deployment", "private");
    assert_eq!(private["verdict"], "secret_missing", "{private}");
    let arm = line(&lines, "Deployment", "arm");
    assert_eq!(arm["verdict"], "platform_mismatch", "{arm}");
    assert_eq!(line(&lines, "Deployment", "web")["verdict"], "ok");
    let stuck: Vec<&Value> = lines.iter().filter(|l| l["type"] == "stuck").collect();
    assert_eq!(stuck.len(), 1, "{lines:#?}");
    let st = stuck[0];
    assert_eq!(st["pod"], "gone-0");
    assert_eq!(st["reason"], "ImagePullBackOff");
    assert_eq!(
        st["kubelet_message"],
        kubelet.as_str(),
        "the kubelet's words, from its event"
    );
    assert_eq!(st["kubelet_source"], "event");
    assert_eq!(st["verdict"], "tag_not_found");
    assert_eq!(st["agreement"], "agrees", "{st}");
    let s = summary(&lines);
    // web, gone (the Deployment and the stuck Pod share it), arm; private now anonymous.
    assert_eq!(s["resolutions"], 4, "{s}");
    let heads = reg.count("HEAD", "/manifests/").await + reg.count("GET", "/manifests/").await;
    assert!(
        heads >= 4,
        "each distinct question reached the registry: {heads}"
    );

    // The text format says the same in sentences.
    let out = Command::new(env!("CARGO_BIN_EXE_pullcheck"))
        .args(["scan", "--namespace", NS, "--registry-ca"])
        .arg(format!(
            "{}={}",
            reg.host(),
            reg.ca_path().unwrap().display()
        ))
        .env("KUBECONFIG", api.kubeconfig_path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "FAIL {NS}/Deployment/gone [scaled_to_zero]: container \"app\" ({})",
            img("gone")
        )),
        "{text}"
    );
    assert!(
        text.contains("STUCK Pod team/gone-0") && text.contains(&format!("  kubelet:   {kubelet}")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_without_a_cluster_or_with_a_failing_list_exits_2() {
    let reg = TestRegistry::start(RegistryOptions {
        tls: true,
        auth: Auth::Htpasswd,
    })
    .await;
    let api = FakeApiServer::start().await;
    api.fail_with(Some(403));
    let (out, lines) = scan(&api, &reg, &[]);
    assert_eq!(out.status.code(), Some(2), "{lines:#?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error:"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pullcheck"))
        .arg("scan")
        .env("KUBECONFIG", dir.path().join("none"))
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no Kubernetes cluster to scan"), "{stderr}");
}

const LEASE_NS: &str = "pullcheck";

fn holder(api: &FakeApiServer) -> String {
    api.object(
        "coordination.k8s.io/v1",
        "Lease",
        LEASE_NS,
        "pullcheck-scan",
    )
    .map(|l| {
        l["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    })
    .unwrap_or_default()
}

/// pullcheck's Events about one object with one reason.
fn events_about(api: &FakeApiServer, name: &str, reason: &str) -> Vec<Value> {
    api.objects("events.k8s.io/v1", "Event")
        .into_iter()
        .filter(|e| e["regarding"]["name"] == name && e["reason"] == reason)
        .collect()
}

async fn until(what: &str, timeout: Duration, mut ok: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {timeout:?}");
}

async fn replica(api: &FakeApiServer, reg: &TestRegistry, name: &str) -> Server {
    Server::start(Options {
        api: Some(api),
        registry: Some(reg),
        args: vec!["--scan-interval=1h".into()],
        env: vec![
            ("POD_NAME".into(), name.into()),
            ("POD_NAMESPACE".into(), LEASE_NS.into()),
        ],
        ..Options::default()
    })
    .await
}

async fn metric_of(server: &Server, series: &str) -> f64 {
    let (status, text) = server.get("/metrics").await;
    assert_eq!(status, 200);
    support::serve::metric(&text, series)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_replicas_elect_one_scanner_write_each_event_once_and_hand_over() {
    let (api, reg) = cluster_and_registry().await;
    let gone = format!("{}/team/gone:1", reg.host());
    let digest = reg.push_image("team/gone", Some("1"), "linux/amd64").await;
    reg.delete_manifest("team/gone", &digest).await;
    api.put_object(deployment("gone", &gone, Some("regcred"), 1));

    let mut a = replica(&api, &reg, "pullcheck-a").await;
    until("a holds the Lease", Duration::from_secs(10), async || {
        holder(&api) == "pullcheck-a"
    })
    .await;
    let b = replica(&api, &reg, "pullcheck-b").await;
    until("a's first scan", Duration::from_secs(20), async || {
        metric_of(&a, "pullcheck_scans_total{outcome=\"completed\"}").await >= 1.0
    })
    .await;
    let ev = events_about(&api, "gone", "ImageNotPullable");
    assert_eq!(ev.len(), 1, "{ev:#?}\n{}", a.log());
    let e = &ev[0];
    assert_eq!(e["type"], "Warning");
    assert_eq!(e["reportingController"], "pullcheck.dev/pullcheck");
    assert_eq!(e["reportingInstance"], "pullcheck-a");
    assert_eq!(e["regarding"]["kind"], "Deployment");
    assert_eq!(
        e["regarding"]["fieldPath"],
        "spec.template.spec.containers{app}"
    );
    assert!(
        e["note"].as_str().unwrap().contains("does not exist"),
        "{e}"
    );
    assert_eq!(metric_of(&a, "pullcheck_scan_leader").await, 1.0);
    assert_eq!(metric_of(&b, "pullcheck_scan_leader").await, 0.0);
    let series = format!(
        "pullcheck_workload_images{{namespace=\"{NS}\",kind=\"Deployment\",name=\"gone\",container=\"app\",image=\"{gone}\",verdict=\"tag_not_found\"}}"
    );
    assert_eq!(
        metric_of(&a, &series).await,
        1.0,
        "{}",
        a.get("/metrics").await.1
    );
    assert!(metric_of(&a, "pullcheck_scan_last_completed_timestamp_seconds").await > 1.7e9);

    // A Pod stuck pulling after the scan is explained from the watch, within seconds, not
    // at the next scan (an hour away).
    let stuck = format!("{}/team/web:404", reg.host());
    let message = format!("failed to pull and unpack image \"{stuck}\": failed to resolve reference \"{stuck}\": {stuck}: not found");
    api.put_object(pod(
        "late-0",
        &stuck,
        Some("regcred"),
        json!([]),
        Some(("ErrImagePull", &message)),
    ));
    until(
        "the stuck Pod is diagnosed",
        Duration::from_secs(10),
        async || !events_about(&api, "late-0", "PullcheckDiagnosis").is_empty(),
    )
    .await;
    let d = &events_about(&api, "late-0", "PullcheckDiagnosis")[0];
    assert_eq!(d["regarding"]["fieldPath"], "spec.containers{app}");
    assert!(
        d["note"]
            .as_str()
            .unwrap()
            .starts_with("pullcheck (agrees)"),
        "{d}"
    );

    // The holder stops: it releases the Lease, the other takes over, adopts the Events
    // written before and continues their series instead of writing new ones.
    a.terminate();
    until("b takes over", Duration::from_secs(15), async || {
        holder(&api) == "pullcheck-b"
    })
    .await;
    until("b's first scan", Duration::from_secs(20), async || {
        metric_of(&b, "pullcheck_scans_total{outcome=\"completed\"}").await >= 1.0
    })
    .await;
    assert_eq!(metric_of(&b, "pullcheck_scan_leader").await, 1.0);
    let ev = events_about(&api, "gone", "ImageNotPullable");
    assert_eq!(
        ev.len(),
        1,
        "one Event per object and cause, not per scan: {ev:#?}\n{}",
        b.log()
    );
    assert_eq!(ev[0]["series"]["count"], 2, "{}", ev[0]);
    assert_eq!(events_about(&api, "late-0", "PullcheckDiagnosis").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_finds_a_password_changed_at_the_registry() {
    let (api, mut reg) = cluster_and_registry().await;
    let web = format!("{}/team/web:1", reg.host());
    api.put_object(deployment("web", &web, Some("regcred"), 1));
    let (out, lines) = scan(&api, &reg, &[]);
    assert_eq!(out.status.code(), Some(0), "{lines:#?}");
    assert_eq!(line(&lines, "Deployment", "web")["verdict"], "ok");
    // The registry's password rotates; the pull secret still holds the old one.
    reg.set_password(ALICE.0, "rotated-pw").await;
    let (out, lines) = scan(&api, &reg, &[]);
    assert_eq!(out.status.code(), Some(1), "{lines:#?}");
    let l = line(&lines, "Deployment", "web");
    assert_eq!(l["verdict"], "unauthorized", "{l}");
    assert!(
        l["message"]
            .as_str()
            .unwrap()
            .contains("refused the credentials"),
        "{l}"
    );
    assert!(
        l["fix"].as_str().unwrap().contains("secret/regcred"),
        "names the secret it tried: {l}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_pods_whose_image_pulls_for_pullcheck_are_explained_by_the_node() {
    let (api, reg) = cluster_and_registry().await;
    let web = format!("{}/team/web:1", reg.host());
    let registry_host = reg.host();
    // The node could not resolve the registry; pullcheck reaches it.
    let dns = format!("failed to pull and unpack image \"{web}\": failed to resolve reference \"{web}\": failed to do request: Head \"https://{registry_host}/v2/team/web/manifests/1\": dial tcp: lookup {registry_host}: no such host");
    api.put_object(pod(
        "dns-0",
        &web,
        Some("regcred"),
        json!([]),
        Some(("ErrImagePull", &dns)),
    ));
    // A node under DiskPressure.
    let mut disk = pod("disk-0", &web, Some("regcred"), json!([]), Some(("ErrImagePull", "failed to pull and unpack image: failed to extract layer: write /var/lib/containerd/tmp: no space left on device")));
    disk["spec"]["nodeName"] = json!("n2");
    api.put_object(disk);
    api.set_disk_pressure("n2", true);
    // The tag was missing when the kubelet tried; it is there now.
    let gone = format!("Back-off pulling image \"{web}\": ErrImagePull: failed to pull and unpack image \"{web}\": failed to resolve reference \"{web}\": {web}: not found");
    api.put_object(pod(
        "fixed-0",
        &web,
        Some("regcred"),
        json!([]),
        Some(("ImagePullBackOff", &gone)),
    ));

    let (out, lines) = scan(&api, &reg, &[]);
    assert_eq!(out.status.code(), Some(1), "Pods stuck pulling: {lines:#?}");
    let by_pod = |p: &str| {
        lines
            .iter()
            .find(|l| l["type"] == "stuck" && l["pod"] == p)
            .unwrap_or_else(|| panic!("no line for {p}: {lines:#?}"))
    };
    let d = by_pod("dns-0");
    assert_eq!(
        (
            d["verdict"].as_str(),
            d["agreement"].as_str(),
            d["kubelet_cause"].as_str()
        ),
        (Some("ok"), Some("node_only"), Some("dns")),
        "{d}"
    );
    assert!(
        d["meaning"]
            .as_str()
            .unwrap()
            .contains("a network path only nodes have"),
        "{d}"
    );
    assert_eq!(d["kubelet_message"], dns.as_str());
    let k = by_pod("disk-0");
    assert_eq!(
        (k["verdict"].as_str(), k["agreement"].as_str()),
        (Some("ok"), Some("disk_pressure")),
        "{k}"
    );
    assert!(
        k["meaning"]
            .as_str()
            .unwrap()
            .contains("node n2 has DiskPressure"),
        "{k}"
    );
    let f = by_pod("fixed-0");
    assert_eq!(
        (
            f["verdict"].as_str(),
            f["agreement"].as_str(),
            f["kubelet_source"].as_str()
        ),
        (Some("ok"), Some("fixed_since"), Some("status")),
        "{f}"
    );
    assert!(
        f["meaning"].as_str().unwrap().contains("delete the Pod"),
        "{f}"
    );
}
