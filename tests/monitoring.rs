//! `webhook-config/components/monitoring`: rendered with an overlay by `kubectl kustomize`
//! (offline), its alerts checked by `promtool check rules` and unit-tested by `promtool
//! test rules` (Debian's `prometheus` package; the test fails when promtool is missing),
//! and every metric its rules and Grafana dashboard name exported by pullcheck.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

mod support;
use support::apiserver::FakeApiServer;
use support::serve::{metric, pod_review, Options, Server};
use support::{Auth, RegistryOptions, TestRegistry};

fn component() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("webhook-config/components/monitoring")
}

/// `to` relative to the directory `from` (kustomize refuses absolute paths).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c);
    }
    out
}

/// `kubectl kustomize` of overlays/warn with the monitoring component.
fn render() -> Vec<Value> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("webhook-config");
    let base = dir.path().canonicalize().unwrap();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\ncomponents:\n  - {}\n",
            relative(&base, &root.join("overlays/warn").canonicalize().unwrap()).display(),
            relative(&base, &component().canonicalize().unwrap()).display()
        ),
    )
    .unwrap();
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("`kubectl kustomize` is needed and cannot run: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap()
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "{kind}: {found:#?}");
    found[0]
}

/// Every sample name a running `pullcheck serve` exports once it has answered a review,
/// run a background scan and seen a Pod stuck pulling (`# TYPE` lines, with the suffixes
/// of counters and histograms).
async fn exported() -> BTreeSet<String> {
    let reg = TestRegistry::start(RegistryOptions {
        tls: false,
        auth: Auth::None,
    })
    .await;
    reg.push_image("team/web", Some("1"), "linux/amd64").await;
    let image = format!("{}/team/web:1", reg.host());
    let api = FakeApiServer::start().await;
    api.put_node("n1", "linux", "amd64");
    api.put_object(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "team"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image}]}}},
    }));
    api.put_object(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "stuck", "namespace": "team"},
        "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": format!("{image}x")}]},
        "status": {"phase": "Pending", "containerStatuses": [{"name": "web", "image": format!("{image}x"), "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}]},
    }));
    let server = Server::start(Options {
        api: Some(&api),
        registry: Some(&reg),
        args: vec!["--scan-interval=1h".into()],
        env: vec![
            ("POD_NAME".into(), "p-0".into()),
            ("POD_NAMESPACE".into(), "pullcheck".into()),
        ],
        ..Options::default()
    })
    .await;
    server
        .review("/validate", "10s", &pod_review("u1", "team", &image, &[]))
        .await;
    let start = std::time::Instant::now();
    let text = loop {
        let (_, text) = server.get("/metrics").await;
        if metric(&text, "pullcheck_scans_total{outcome=\"completed\"}") >= 1.0
            && text.contains("pullcheck_pods_stuck_pulling{")
        {
            break text;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "no scan: {text}\n{}",
            server.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for s in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{s}"));
                }
            }
            _ => {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// The `pullcheck_*` names an expression uses.
fn named(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("pullcheck_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_component_scrapes_the_metrics_port_and_ships_rules_and_a_dashboard() {
    let objects = render();
    let sm = one(&objects, "ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["metadata"]["namespace"], "pullcheck");
    let port = sm["spec"]["endpoints"][0]["port"].as_str().unwrap();
    let service = one(&objects, "Service");
    let sp = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == port)
        .unwrap_or_else(|| panic!("the Service has no port {port}: {service}"));
    let selector = sm["spec"]["selector"]["matchLabels"].as_object().unwrap();
    for (k, v) in selector {
        assert_eq!(
            &service["metadata"]["labels"][k], v,
            "the ServiceMonitor selects the Service"
        );
    }
    // The Service's metrics port reaches the container's --metrics-listen port.
    let deployment = one(&objects, "Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let cp = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == sp["targetPort"])
        .expect("the target port is a container port");
    assert!(container["args"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a.as_str() == Some(&format!("--metrics-listen=0.0.0.0:{}", cp["containerPort"]))));
    let rule = one(&objects, "PrometheusRule");
    assert_eq!(rule["metadata"]["namespace"], "pullcheck");
    let cm = objects
        .iter()
        .find(|o| {
            o["kind"] == "ConfigMap" && o["metadata"]["name"] == "pullcheck-grafana-dashboard"
        })
        .expect("the dashboard ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value =
        serde_json::from_str(cm["data"]["pullcheck.json"].as_str().unwrap()).unwrap();
    assert_eq!(dashboard["uid"], "pullcheck");
}

#[test]
fn promtool_checks_the_rules_and_their_alert_unit_tests_pass() {
    let objects = render();
    let groups = &one(&objects, "PrometheusRule")["spec"]["groups"];
    let dir = tempfile::tempdir().unwrap();
    // JSON is YAML: promtool reads it.
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_json::json!({ "groups": groups }).to_string(),
    )
    .unwrap();
    std::fs::copy(
        component().join("alerts.test.yaml"),
        dir.path().join("alerts.test.yaml"),
    )
    .unwrap();
    for args in [
        ["check", "rules", "rules.yaml"],
        ["test", "rules", "alerts.test.yaml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| {
                panic!("promtool is needed (Debian: apt-get install prometheus; .ci/setup installs it) and cannot run: {e}")
            });
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every alert has a unit test.
    let tests = std::fs::read_to_string(component().join("alerts.test.yaml")).unwrap();
    for g in groups.as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let alert = r["alert"].as_str().unwrap();
            assert!(
                tests.contains(&format!("alertname: {alert}")),
                "no unit test for {alert}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_and_dashboard_name_only_metrics_pullcheck_exports() {
    let exported = exported().await;
    assert!(
        exported.contains("pullcheck_workload_images"),
        "{exported:?}"
    );
    let mut used = Vec::new();
    let objects = render();
    for g in one(&objects, "PrometheusRule")["spec"]["groups"]
        .as_array()
        .unwrap()
    {
        for r in g["rules"].as_array().unwrap() {
            used.extend(named(r["expr"].as_str().unwrap()));
        }
    }
    let text = std::fs::read_to_string(component().join("grafana-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut exprs = 0;
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            used.extend(named(t["expr"].as_str().unwrap()));
            exprs += 1;
        }
    }
    assert!(exprs >= 10, "{exprs}");
    let unknown: BTreeSet<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "not exported by pullcheck: {unknown:?}; exported: {exported:?}"
    );
    // And the dashboard shows every family of the cluster view.
    for m in [
        "pullcheck_workload_images",
        "pullcheck_pods_stuck_pulling",
        "pullcheck_scan_duration_seconds",
        "pullcheck_scan_last_completed_timestamp_seconds",
    ] {
        assert!(used.iter().any(|u| u == m), "{m} unused");
    }
}
