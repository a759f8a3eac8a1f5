//! `pullcheck scan` over a large cluster: 20,000 workloads (8,000 Deployments with their
//! 8,000 ReplicaSets, 2,000 StatefulSets, 1,000 DaemonSets, 500 CronJobs with their 500
//! Jobs) and 100,000 Pods (owned by the ReplicaSets, StatefulSets and DaemonSets; 1% stuck
//! in ImagePullBackOff, half of them with the error only in events) in 100 namespaces,
//! sharing 1,000 images of one registry; half the namespaces pull with a pull secret.
//!
//! The API server is the tests' stand-in (tests/support/apiserver.rs: HTTPS, paginated
//! lists, field selectors, metadata-only lists) in this process; the registry is Debian's
//! `docker-registry` on loopback; `pullcheck scan` (release) runs as a child process under
//! `/usr/bin/time`. Reported: wall time, peak RSS of `pullcheck scan`, API-server requests
//! (by kind), registry requests (manifest HEADs must equal the distinct image × credential
//! sets; the first sight of a digest also reads its manifest and config for its platforms),
//! and the scan's own counts.
//!
//! ```sh
//! cargo bench --bench scan                       # 20,000 workloads, 100,000 Pods, 1,000 images
//! cargo bench --bench scan -- 2000 10000 100     # smaller: workloads, Pods, images
//! ```
//!
//! The scan runs with `--scan-registry-rate 1000` (per registry host): at the default 10
//! resolutions/s, 1,000 distinct images take at least 100 s by design.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{json, Value};
use support::apiserver::FakeApiServer;
use support::serve::{dockerconfig, DOCKERCONFIGJSON};
use support::{Auth, RegistryOptions, TestRegistry, ALICE};

const NAMESPACES: usize = 100;
const NODES: usize = 50;

fn ns(i: usize) -> String {
    format!("ns-{:02}", i % NAMESPACES)
}

fn spec(image: &str, with_secret: bool, node: Option<usize>) -> Value {
    let mut s = json!({
        "containers": [{
            "name": "app", "image": image, "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "REGION", "value": "eu-west-1"}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5},
        }],
        "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default", "schedulerName": "default-scheduler",
    });
    if with_secret {
        s["imagePullSecrets"] = json!([{"name": "regcred"}]);
    }
    if let Some(n) = node {
        s["nodeName"] = json!(format!("node-{:02}", n % NODES));
    }
    s
}

fn meta(name: &str, namespace: &str, owner: Option<&Value>) -> Value {
    let mut m = json!({
        "name": name, "namespace": namespace,
        "labels": {"app": name, "team": namespace, "app.kubernetes.io/managed-by": "bench"},
        "annotations": {"example.com/owner": namespace},
    });
    if let Some(o) = owner {
        m["ownerReferences"] = json!([{
            "apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"],
            "uid": o["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
        }]);
    }
    m
}

fn template(image: &str, with_secret: bool) -> Value {
    json!({"metadata": {"labels": {"app": "x"}}, "spec": spec(image, with_secret, None)})
}

struct Counts {
    workloads: usize,
    pods: usize,
    stuck: usize,
    /// (image, with a pull secret) of everything checked.
    pairs: BTreeSet<(usize, bool)>,
}

/// Fills the stand-in; returns what it holds.
fn fill(api: &FakeApiServer, host: &str, workloads: usize, pods: usize, images: usize) -> Counts {
    let mut c = Counts {
        workloads: 0,
        pods: 0,
        stuck: 0,
        pairs: BTreeSet::new(),
    };
    let auth = dockerconfig(host, ALICE.0, ALICE.1);
    for n in 0..NAMESPACES {
        api.put_service_account(&ns(n), "default", &[]);
        if n.is_multiple_of(2) {
            api.put_secret(
                &ns(n),
                "regcred",
                DOCKERCONFIGJSON,
                &[(".dockerconfigjson", &auth)],
            );
        }
    }
    for n in 0..NODES {
        api.put_node(&format!("node-{n:02}"), "linux", "amd64");
    }
    // Shares of the 20,000: 40% Deployments + 40% their ReplicaSets, 10% StatefulSets,
    // 5% DaemonSets, 2.5% CronJobs + 2.5% their Jobs.
    let deployments = workloads * 2 / 5;
    let statefulsets = workloads / 10;
    let daemonsets = workloads / 20;
    let cronjobs = workloads / 40;
    // Pods: 80% of ReplicaSets, 10% of StatefulSets, 10% of DaemonSets.
    let per = |share: usize, owners: usize| (pods * share / 100).checked_div(owners).unwrap_or(0);
    let mut k = 0usize; // index of a checked workload
    let image_of = |k: &mut usize| {
        let i = (*k * 7919) % images;
        let namespace = ns(*k);
        let secret = (*k % NAMESPACES).is_multiple_of(2);
        *k += 1;
        (i, namespace, secret)
    };
    let img = |i: usize| format!("{host}/bench/app:t{i}");
    let mut pod_no = 0usize;
    let mut put_pods = |c: &mut Counts,
                        owner: &Value,
                        n: usize,
                        i: usize,
                        namespace: &str,
                        secret: bool| {
        for j in 0..n {
            let name = format!("{}-{j}", owner["metadata"]["name"].as_str().unwrap());
            let stuck = pod_no.is_multiple_of(100);
            let status = if stuck {
                c.stuck += 1;
                let message = if pod_no.is_multiple_of(200) {
                    format!("Back-off pulling image \"{}\"", img(i))
                } else {
                    format!("Back-off pulling image \"{0}\": ErrImagePull: failed to pull and unpack image \"{0}\": failed to resolve reference \"{0}\": unexpected status from HEAD request: 503 Service Unavailable", img(i))
                };
                json!({"phase": "Pending", "containerStatuses": [{"name": "app", "image": img(i), "imageID": "", "ready": false, "restartCount": 0, "started": false, "state": {"waiting": {"reason": "ImagePullBackOff", "message": message}}}]})
            } else {
                json!({"phase": "Running", "podIP": "10.0.0.1", "startTime": "2025-01-01T00:00:00Z", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [{"name": "app", "image": img(i), "imageID": format!("{}@sha256:{:064x}", img(i), i), "ready": true, "restartCount": 0, "started": true, "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}}}]})
            };
            api.put_object(json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta(&name, namespace, Some(owner)), "spec": spec(&img(i), secret, Some(pod_no)), "status": status}));
            pod_no += 1;
            c.pods += 1;
        }
    };
    for d in 0..deployments {
        let (i, namespace, secret) = image_of(&mut k);
        c.pairs.insert((i, secret));
        let name = format!("web-{d}");
        let dep = api.put_object(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(&name, &namespace, None), "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "x"}}, "template": template(&img(i), secret)}}));
        let rs = api.put_object(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta(&format!("{name}-7d9f"), &namespace, Some(&dep)), "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "x"}}, "template": template(&img(i), secret)}}));
        c.workloads += 2;
        put_pods(&mut c, &rs, per(80, deployments), i, &namespace, secret);
    }
    for s in 0..statefulsets {
        let (i, namespace, secret) = image_of(&mut k);
        c.pairs.insert((i, secret));
        let sts = api.put_object(json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta(&format!("db-{s}"), &namespace, None), "spec": {"replicas": 5, "serviceName": "db", "selector": {"matchLabels": {"app": "x"}}, "template": template(&img(i), secret)}}));
        c.workloads += 1;
        put_pods(&mut c, &sts, per(10, statefulsets), i, &namespace, secret);
    }
    for d in 0..daemonsets {
        let (i, namespace, secret) = image_of(&mut k);
        c.pairs.insert((i, secret));
        let ds = api.put_object(json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta(&format!("agent-{d}"), &namespace, None), "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template(&img(i), secret)}}));
        c.workloads += 1;
        put_pods(&mut c, &ds, per(10, daemonsets), i, &namespace, secret);
    }
    for j in 0..cronjobs {
        let (i, namespace, secret) = image_of(&mut k);
        c.pairs.insert((i, secret));
        let cj = api.put_object(json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta(&format!("nightly-{j}"), &namespace, None), "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template(&img(i), secret)}}}}));
        api.put_object(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta(&format!("nightly-{j}-1"), &namespace, Some(&cj)), "spec": {"template": template(&img(i), secret)}}));
        c.workloads += 2;
    }
    c
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let numbers: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let workloads = numbers.first().copied().unwrap_or(20_000);
    let pods = numbers.get(1).copied().unwrap_or(100_000);
    let images = numbers.get(2).copied().unwrap_or(1_000).max(1);

    let reg = TestRegistry::start(RegistryOptions {
        tls: false,
        auth: Auth::None,
    })
    .await;
    let started = Instant::now();
    let tags: Vec<String> = (0..images).map(|i| format!("t{i}")).collect();
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    for chunk in tag_refs.chunks(100) {
        reg.push_tags("bench/app", chunk).await;
    }
    eprintln!(
        "pushed {images} images in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let api = FakeApiServer::start().await;
    let started = Instant::now();
    let c = fill(&api, &reg.host(), workloads, pods, images);
    eprintln!(
        "API server stand-in: {} workloads, {} Pods ({} stuck) in {:.1}s",
        c.workloads,
        c.pods,
        c.stuck,
        started.elapsed().as_secs_f64()
    );
    reg.clear_requests().await;
    let api_before = api.requests().len();

    let out_dir = tempfile::tempdir().unwrap();
    let out_path = out_dir.path().join("scan.jsonl");
    let time_path = out_dir.path().join("time.txt");
    let started = Instant::now();
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %M")
        .arg("-o")
        .arg(&time_path)
        .arg(env!("CARGO_BIN_EXE_pullcheck"))
        .args([
            "scan",
            "--format",
            "json",
            "--quiet",
            "--plain-http",
            &reg.host(),
            "--scan-registry-rate",
            "1000",
        ])
        .env("KUBECONFIG", api.kubeconfig_path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::inherit())
        .status()
        .expect("/usr/bin/time runs pullcheck scan (Debian: apt-get install time)");
    let wall = started.elapsed();
    let time = std::fs::read_to_string(&time_path).unwrap();
    let mut t = time.split_whitespace().rev();
    let rss_kib: u64 = t.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let text = std::fs::read_to_string(&out_path).unwrap();
    let summary: Value = serde_json::from_str(text.lines().last().unwrap_or("{}")).unwrap();
    assert_eq!(summary["type"], "summary", "{summary}");
    let lines = text.lines().count() - 1;

    let requests = api.requests();
    let mut by_kind: std::collections::BTreeMap<String, usize> = Default::default();
    for r in &requests[api_before..] {
        let path = r.target.split('?').next().unwrap_or("");
        let resource = path
            .split('/')
            .filter(|s| !s.is_empty())
            .rev()
            .find(|s| s.chars().all(|c| c.is_ascii_lowercase()))
            .unwrap_or("?");
        let key = if path.contains("/namespaces/")
            && ["secrets", "serviceaccounts"]
                .iter()
                .any(|r| path.contains(r))
        {
            format!("GET {resource} (one object)")
        } else {
            format!("{} {}", r.method, path.trim_start_matches('/'))
        };
        let key = if key.starts_with("GET api/v1/namespaces/") && key.ends_with("/events") {
            "GET api/v1/namespaces/*/events".to_owned()
        } else {
            key
        };
        let key = if key.starts_with("GET api/v1/nodes/") {
            "GET api/v1/nodes/*".to_owned()
        } else {
            key
        };
        let key = if key.contains("(one object)") {
            key
        } else {
            key.replace("api/v1/namespaces/", "").to_string()
        };
        *by_kind.entry(key).or_default() += 1;
    }
    let logged = reg.requests().await;
    let heads = logged
        .iter()
        .filter(|r| r.method == "HEAD" && r.path.contains("/manifests/"))
        .count();
    let gets = logged
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/manifests/"))
        .count();
    let blobs = logged.iter().filter(|r| r.path.contains("/blobs/")).count();

    println!(
        "pullcheck scan: {} workloads, {} Pods ({} stuck), {} images, {} namespaces",
        c.workloads, c.pods, c.stuck, images, NAMESPACES
    );
    println!("  exit status           {:?}", status.code());
    println!(
        "  wall time             {:.2} s (measured by /usr/bin/time: {})",
        wall.as_secs_f64(),
        time.trim()
    );
    println!("  peak RSS              {:.1} MiB", rss_kib as f64 / 1024.0);
    println!(
        "  listed / checked      {} objects listed, {} checked on their own, {} folded",
        summary["listed"], summary["objects"], summary["folded"]
    );
    println!(
        "  output                {lines} lines ({} workload images, {} stuck containers)",
        summary["images"], summary["stuck"]
    );
    println!("  distinct image × credential sets: {}", c.pairs.len());
    println!(
        "  registry resolutions  {} (the scan's count)",
        summary["resolutions"]
    );
    println!("  registry requests     {heads} manifest HEAD, {gets} manifest GET, {blobs} blob GET (platforms of digests first seen)");
    println!("  API-server requests   {}", requests.len() - api_before);
    for (k, n) in &by_kind {
        println!("    {n:>7}  {k}");
    }
    assert_eq!(
        summary["resolutions"].as_u64(),
        Some(c.pairs.len() as u64),
        "one resolution per distinct image × credential set"
    );
    assert_eq!(
        heads,
        c.pairs.len(),
        "one manifest HEAD per distinct image × credential set"
    );
    assert_eq!(
        summary["listed"].as_u64(),
        Some((c.workloads + c.pods) as u64),
        "every object listed once"
    );
}
