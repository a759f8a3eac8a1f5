//! Advice end to end (issue 14), through `pullcheck serve` and `pullcheck check`, against the
//! registry double answering as a [`Hub`] (tests/support/double.rs) speaking Docker Hub's
//! pull limit: the rate-limit budget read from HEAD answers too and exported per registry and
//! identity, the warning under a low budget, a 429 that says its window; a multi-platform
//! image whose platform manifests declare layers above the threshold (the double serves
//! no blobs, so the layers can be declared 3 GiB for free); every fragile-reference class
//! in warn, deny and off.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};
use std::sync::Arc;

use support::double::{Double, Hub};
use support::serve::{metric, review_of, Options, Server};

const GIB: u64 = 1 << 30;

/// Docker Hub's anonymous limit: 100 pulls in 6 hours.
const HUB: Option<(u64, u64)> = Some((100, 21_600));

/// A hub and the double serving it.
async fn hub(limit: Option<(u64, u64)>) -> (Arc<Hub>, Double) {
    let hub = Hub::new(limit);
    let double = hub.serve().await;
    (hub, double)
}

/// A Pod on `arch` nodes with one container; `policy` as the API server leaves it
/// (admission sees the defaulted value).
fn pod(name: &str, image: &str, arch: &str, policy: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {
            "nodeSelector": {"kubernetes.io/os": "linux", "kubernetes.io/arch": arch},
            "containers": [{"name": "web", "image": image, "imagePullPolicy": policy}],
        },
    })
}

async fn serve(bad: &Double, config: &str) -> Server {
    Server::start(Options {
        config: config.to_string(),
        plain_http: vec![bad.host()],
        registry: None,
        api: None,
        args: Vec::new(),
        identity: None,
        certificates: None,
        env: Vec::new(),
    })
    .await
}

/// The review's warnings.
fn warnings(resp: &Value) -> Vec<String> {
    resp["warnings"]
        .as_array()
        .map(|w| w.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn assert_fit(warnings: &[String]) {
    for w in warnings {
        assert!(w.chars().count() <= 256, "{} chars: {w}", w.chars().count());
    }
}

/// Positive answers reused briefly, so a test can make the next review ask again.
const SHORT_CACHE: &str = "cache: {positiveTtl: 200ms}\n";

async fn after_the_cache() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn docker_hub_budgets_are_read_on_head_too_exported_and_warned_about_when_low() {
    let (hub, bad) = hub(HUB).await;
    let s = serve(&bad, SHORT_CACHE).await;
    let image = format!("{}/library/app:1", bad.host());
    let series = |name: &str| {
        format!(
            "pullcheck_registry_ratelimit_{name}{{registry=\"{}\",identity=\"anonymous\"}}",
            bad.host()
        )
    };
    let review = |uid: &str| review_of(uid, &pod("p", &image, "amd64", "IfNotPresent"));

    let (resp, _) = s.review("/validate/enforce", "10s", &review("1")).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    assert!(warnings(&resp).is_empty(), "98 of 100 left: {resp}");
    // HEAD the tag, GET the index, GET the linux/amd64 manifest (its size): two pulls.
    assert_eq!(hub.manifest_requests(), (1, 2));
    let (_, text) = s.get("/metrics").await;
    assert_eq!(metric(&text, &series("remaining")), 98.0, "{text}");
    assert_eq!(metric(&text, &series("limit")), 100.0);
    assert_eq!(metric(&text, &series("window_seconds")), 21_600.0);

    // Others pulled from the same address meanwhile: the next HEAD says so.
    hub.set_remaining(12);
    after_the_cache().await;
    let (resp, _) = s.review("/validate/enforce", "10s", &review("2")).await;
    assert_eq!(hub.manifest_requests(), (2, 2), "a HEAD only, not counted");
    let (_, text) = s.get("/metrics").await;
    assert_eq!(
        metric(&text, &series("remaining")),
        12.0,
        "read from the HEAD"
    );
    assert_eq!(resp["allowed"], true, "advice warns by default: {resp}");
    let w = warnings(&resp);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_fit(&w);
    assert!(
        w[0].contains(&format!(
            "{} has 12 of 100 pulls left in its 6h window for anonymous pulls",
            bad.host()
        )),
        "{w:?}"
    );
    assert!(
        w[0].ends_with(
            "fix: authenticate with a pull secret, or use a mirror or pull-through cache"
        ),
        "{w:?}"
    );

    // The warm path: the kept verdict, the budget as it is now, no registry request.
    let (resp, _) = s.review("/validate/enforce", "10s", &review("3")).await;
    assert_eq!(hub.manifest_requests(), (2, 2));
    let again = warnings(&resp);
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(again[0].contains("has 12 of 100 pulls left"), "{again:?}");
}

#[tokio::test]
async fn a_429_says_the_window_and_when_it_resets() {
    let (hub, bad) = hub(HUB).await;
    hub.set_remaining(0);
    let s = serve(&bad, "").await;
    let image = format!("{}/library/app:1", bad.host());
    let review = review_of("1", &pod("p", &image, "amd64", "IfNotPresent"));
    let (resp, _) = s.review("/validate/enforce", "10s", &review).await;
    assert_eq!(resp["allowed"], true, "a rate limit is transient: {resp}");
    let w = warnings(&resp);
    assert_fit(&w);
    let said = format!(
        "{} is rate limiting requests (429): limit 100 per 6h, resets within 6h (rolling window)",
        bad.host()
    );
    assert!(w.iter().any(|w| w.contains(&said)), "{w:?}");
}

#[tokio::test]
async fn giant_images_are_said_for_the_platforms_the_pod_runs_on_from_manifests_fetched_once() {
    let (hub, bad) = hub(None).await;
    hub.set_layer_sizes(3 * GIB, GIB);
    let s = serve(&bad, "advice: {nodeBandwidth: 1Gbit/s}\n").await;
    let image = format!("{}/ml/model:1", bad.host());
    let on = |uid: &str, arch: &str| review_of(uid, &pod("p", &image, arch, "IfNotPresent"));

    let (resp, _) = s
        .review("/validate/enforce", "10s", &on("1", "arm64"))
        .await;
    assert!(warnings(&resp).is_empty(), "1 GiB on arm64: {resp}");
    let (resp, _) = s
        .review("/validate/enforce", "10s", &on("2", "amd64"))
        .await;
    assert_eq!(resp["allowed"], true, "{resp}");
    let w = warnings(&resp);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_fit(&w);
    // 3 GiB of layers and a 1 KiB config at 125 MB/s: 25.8 s.
    assert!(
        w[0].contains(
            "3.0 GiB compressed for linux/amd64: ~26s per pull on a new node at 1 Gbit/s"
        ),
        "{w:?}"
    );
    assert!(w[0].contains("(serializeImagePulls)"), "{w:?}");
    // The index once, then each platform manifest once, by digest.
    assert_eq!(hub.manifest_requests().1, 3);
    let (resp, _) = s
        .review("/validate/enforce", "10s", &on("3", "amd64"))
        .await;
    assert_eq!(warnings(&resp), w);
    assert_eq!(hub.manifest_requests().1, 3, "kept");

    let strict = serve(
        &bad,
        "advice: {actions: {giant_image: deny}, giantImage: 4GiB}\n",
    )
    .await;
    let (resp, _) = strict
        .review("/validate/enforce", "10s", &on("4", "amd64"))
        .await;
    assert_eq!(resp["allowed"], true, "under 4 GiB: {resp}");
    hub.set_layer_sizes(5 * GIB, GIB);
    let strict = serve(&bad, "advice: {actions: {giant_image: deny}}\n").await;
    let (resp, _) = strict
        .review("/validate/enforce", "10s", &on("5", "amd64"))
        .await;
    assert_eq!(resp["allowed"], false, "{resp}");
    let msg = resp["status"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("pullcheck: advice set to deny for Pod team-a/p:\n- container \"web\""),
        "{msg}"
    );
    assert!(msg.contains("5.0 GiB compressed for linux/amd64"), "{msg}");
    assert!(msg.ends_with("[giant_image]"), "{msg}");
    // Warn mode never denies for advice.
    let (resp, _) = strict
        .review("/validate/warn", "10s", &on("6", "amd64"))
        .await;
    assert_eq!(resp["allowed"], true, "{resp}");
    assert_eq!(warnings(&resp).len(), 1);
    // Audit mode records advice only.
    let (resp, _) = strict
        .review("/validate/audit", "10s", &on("7", "amd64"))
        .await;
    assert_eq!(resp["allowed"], true, "{resp}");
    assert!(warnings(&resp).is_empty(), "{resp}");
    let recorded: Value =
        serde_json::from_str(resp["auditAnnotations"]["advice"].as_str().unwrap()).unwrap();
    assert_eq!(recorded[0]["class"], "giant_image", "{recorded}");
    assert_eq!(recorded[0]["place"], "container \"web\"");
}

/// What one review of the three fragile references said: (allowed, warnings, denial).
struct Said {
    allowed: bool,
    warnings: Vec<String>,
    denial: String,
}

async fn fragile_reviews(hub: &Hub, bad: &Double, action: &str) -> Vec<Said> {
    let config = format!(
        "{SHORT_CACHE}advice:\n  actions: {{latest_tag: {action}, always_pull_rate_limited: {action}, tag_moved: {action}}}\n"
    );
    let s = serve(bad, &config).await;
    let host = bad.host();
    let mut said = Vec::new();
    let mut ask = |resp: Value| {
        said.push(Said {
            allowed: resp["allowed"] == true,
            warnings: warnings(&resp),
            denial: resp["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
    };
    // No tag: the API server defaulted `Always`; Docker Hub's headers say anonymous
    // pulls are limited.
    let floating = pod("a", &format!("{host}/library/app"), "amd64", "Always");
    ask(s
        .review("/validate/enforce", "10s", &review_of("1", &floating))
        .await
        .0);
    // A pinned tag that moves between two reviews.
    let pinned = pod(
        "b",
        &format!("{host}/library/app:1"),
        "amd64",
        "IfNotPresent",
    );
    let (first, _) = s
        .review("/validate/enforce", "10s", &review_of("2", &pinned))
        .await;
    assert!(warnings(&first).is_empty(), "{first}");
    hub.move_tag();
    after_the_cache().await;
    ask(s
        .review("/validate/enforce", "10s", &review_of("3", &pinned))
        .await
        .0);
    said
}

#[tokio::test]
async fn fragile_references_warn_deny_or_say_nothing_in_the_webhook() {
    let (hub, bad) = hub(HUB).await;

    let warn = fragile_reviews(&hub, &bad, "warn").await;
    assert!(warn.iter().all(|s| s.allowed));
    let w = &warn[0].warnings;
    assert_eq!(w.len(), 2, "{w:?}");
    assert_fit(w);
    assert!(
        w[0].contains("no tag: the kubelet pulls \":latest\", which resolves again at every pull"),
        "{w:?}"
    );
    assert!(
        w[1].contains(&format!(
            "imagePullPolicy Always pulls anonymously at every start; {} limits anonymous pulls (100 per 6h) per address",
            bad.host()
        )),
        "{w:?}"
    );
    let moved = &warn[1].warnings;
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_fit(moved);
    assert!(
        moved[0].contains("tag \"1\" moved from sha256:"),
        "{moved:?}"
    );
    let now = hub.digest();
    assert!(
        moved[0].ends_with(&format!("fix: pin the digest (@sha256:{}…)", &now[7..19])),
        "{moved:?}"
    );

    let deny = fragile_reviews(&hub, &bad, "deny").await;
    assert!(deny.iter().all(|s| !s.allowed));
    assert!(
        deny[0].denial.contains("[latest_tag]"),
        "{}",
        deny[0].denial
    );
    assert!(
        deny[0].denial.contains("[always_pull_rate_limited]"),
        "{}",
        deny[0].denial
    );
    assert!(deny[1].denial.contains("[tag_moved]"), "{}", deny[1].denial);

    let off = fragile_reviews(&hub, &bad, "off").await;
    for s in &off {
        assert!(s.allowed && s.warnings.is_empty(), "{:?}", s.warnings);
    }
}

/// `pullcheck check ARGS` (no environment variables of pullcheck).
fn check(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pullcheck"));
    cmd.arg("check").args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("PULLCHECK_") {
            cmd.env_remove(name);
        }
    }
    cmd.output().expect("pullcheck runs")
}

/// `check --format json`'s lines of the advice classes, as (verdict, action).
fn advice_lines(o: &Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|l| {
            matches!(
                l["verdict"].as_str(),
                Some("latest_tag" | "always_pull_rate_limited" | "giant_image" | "tag_moved")
            )
        })
        .map(|l| {
            let message = l["message"].as_str().unwrap_or_default();
            assert!(message.chars().count() <= 1000, "{message}");
            (
                l["verdict"].as_str().unwrap().to_string(),
                l["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn fragile_references_and_giant_images_warn_deny_or_say_nothing_in_check() {
    let (hub, bad) = hub(HUB).await;
    hub.set_layer_sizes(3 * GIB, GIB);
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pod.yaml");
    let host = bad.host();
    let object = pod("a", &format!("{host}/library/app"), "amd64", "Always");
    std::fs::write(&manifest, serde_json::to_string(&object).unwrap()).unwrap();
    let file = manifest.to_str().unwrap();
    let classes = "latest_tag,always_pull_rate_limited,giant_image";
    let run = |action: &str| {
        let settings: Vec<String> = classes
            .split(',')
            .map(|c| format!("{c}={action}"))
            .collect();
        let o = check(&[
            "--plain-http",
            &host,
            "--format",
            "json",
            "--advice",
            &settings.join(","),
            file,
        ]);
        (o.status.code(), advice_lines(&o), o)
    };
    let want = |action: &str| -> Vec<(String, String)> {
        classes
            .split(',')
            .map(|c| (c.to_string(), action.to_string()))
            .collect()
    };

    let (code, lines, o) = run("warn");
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(lines, want("warn"));
    let (code, lines, _) = run("deny");
    assert_eq!(code, Some(1), "advice set to deny fails the run");
    assert_eq!(lines, want("deny"));
    let (code, lines, _) = run("off");
    assert_eq!(code, Some(0));
    assert!(lines.is_empty(), "{lines:?}");

    // The webhook's file, read by `check --config`, and `--image` (no Pod: the pull policy
    // the API server would default).
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "advice:\n  actions: {latest_tag: deny}\n  giantImage: 4GiB\n",
    )
    .unwrap();
    let image = format!("{host}/library/app:latest");
    let o = check(&[
        "--plain-http",
        &host,
        "--config",
        config.to_str().unwrap(),
        "--image",
        &image,
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL  (") && text.contains("\":latest\" resolves again at every pull"),
        "{text}"
    );
    assert!(text.contains("[latest_tag]"), "{text}");
    assert!(
        text.contains("WARN  ") && text.contains("[always_pull_rate_limited]"),
        "{text}"
    );
    assert!(
        !text.contains("giant_image"),
        "3 GiB is under 4 GiB: {text}"
    );
}
