//! Fault tolerance of `pullcheck serve`, end to end: the real binary, AdmissionReviews posted
//! the way the API server posts them (HTTPS verified for `pullcheck.pullcheck.svc`, HTTP/2,
//! `?timeout=`), and registries that fail in every way a registry fails in production:
//! down, accepting but never answering, slow, 500s, 429 with `Retry-After`, TLS from an
//! unknown CA, a token service that is down, a name that does not resolve.
//!
//! Each fault must be answered before the API server's deadline, admitted with a warning
//! that names the host and the cause (transient classes warn by default), and denied with
//! the same words when the configuration says `deny` for that class. Then: no answer crosses
//! tenants under concurrency, the largest review the API server sends is served, bodies over
//! the limit get 413, and malformed or adversarial reviews get 400 without hurting the
//! server.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::apiserver::FakeApiServer;
use support::double::{dead_port, Behaviour, Double};
use support::serve::{dockerconfig, Options, Server, DOCKERCONFIGJSON};
use support::{Auth, RegistryOptions, TestRegistry, ALICE, BOB};

/// Every transient class denied: what `actions:` says for a registry one owns and trusts.
const DENY_TRANSIENT: &str =
    "actions:\n  unavailable: deny\n  timeout: deny\n  rate_limited: deny\n  blocked: deny\n";

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/admission")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The Deployment fixture with these images as its containers.
fn deployment(uid: &str, images: &[String]) -> Value {
    let mut review = fixture("deployment-create.json");
    review["request"]["uid"] = json!(uid);
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    review["request"]["object"]["spec"]["template"]["spec"]["containers"] = json!(containers);
    review
}

/// A Pod CREATE in `namespace` with these images and pull secrets.
fn pod(uid: &str, namespace: &str, images: &[String], pull_secrets: &[&str]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    let secrets: Vec<Value> = pull_secrets.iter().map(|s| json!({"name": s})).collect();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "p",
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "tester"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "namespace": namespace},
                "spec": {"containers": containers, "imagePullSecrets": secrets}
            },
            "oldObject": null,
            "dryRun": false
        }
    })
}

fn warnings(resp: &Value) -> Vec<String> {
    resp["warnings"]
        .as_array()
        .map(|w| w.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn message(resp: &Value) -> String {
    resp["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn findings(resp: &Value) -> String {
    resp["auditAnnotations"]["findings"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// One fault, seen by two servers: one with the default actions (transient findings are
/// admitted with a warning) and one whose configuration denies transient classes. `expect`:
/// the words the warning and the denial must hold (the host among them).
struct FaultCase<'a> {
    image: String,
    plain_http: Vec<String>,
    /// The API server's `?timeout=`.
    timeout: Duration,
    class: &'a str,
    expect: Vec<String>,
}

async fn assert_fault(case: FaultCase<'_>) {
    let timeout = format!("{}ms", case.timeout.as_millis());
    let (default, strict) = tokio::join!(
        Server::start(Options {
            config: "defaultMode: enforce\n".into(),
            plain_http: case.plain_http.clone(),
            ..Options::default()
        }),
        Server::start(Options {
            config: format!("defaultMode: enforce\n{DENY_TRANSIENT}"),
            plain_http: case.plain_http.clone(),
            ..Options::default()
        }),
    );
    let review = deployment("fault-1", std::slice::from_ref(&case.image));
    let ((admitted, took_default), (denied, took_strict)) = tokio::join!(
        default.review("/validate/enforce", &timeout, &review),
        strict.review("/validate/enforce", &timeout, &review),
    );
    for (took, server) in [(took_default, &default), (took_strict, &strict)] {
        assert!(
            took < case.timeout,
            "{}: answered in {took:?}, after the API server's timeout {:?}\n{}",
            case.image,
            case.timeout,
            server.log()
        );
    }

    // Default: admitted, with one precise warning.
    assert_eq!(admitted["allowed"], true, "transient: admitted: {admitted}");
    let ws = warnings(&admitted);
    let warning = ws
        .iter()
        .find(|w| w.contains(&case.image))
        .unwrap_or_else(|| panic!("a warning names {}: {ws:?}", case.image));
    assert!(warning.len() <= 256, "{warning}");
    for word in &case.expect {
        assert!(warning.contains(word.as_str()), "{word:?} in {warning:?}");
    }
    assert!(
        findings(&admitted).contains(&format!("\"class\":\"{}\"", case.class)),
        "class {} recorded: {}",
        case.class,
        findings(&admitted)
    );

    // Configured to deny: the same fault denies, in the same words.
    assert_eq!(denied["allowed"], false, "configured deny: {denied}");
    let m = message(&denied);
    assert!(m.contains(&case.image), "{m}");
    for word in &case.expect {
        assert!(m.contains(word.as_str()), "{word:?} in {m:?}");
    }
}

fn host_of(image: &str) -> String {
    image.split('/').next().unwrap().to_string()
}

#[tokio::test]
async fn registry_down_refused_connection() {
    let host = format!("127.0.0.1:{}", dead_port());
    let image = format!("{host}/team/app:1");
    assert_fault(FaultCase {
        plain_http: vec![host.clone()],
        timeout: Duration::from_secs(3),
        class: "unavailable",
        expect: vec![format!("{host} refused the connection")],
        image,
    })
    .await;
}

#[tokio::test]
async fn registry_accepting_but_never_answering() {
    // HTTP level: the request is read, no answer ever comes.
    let hang = Double::behaving(Behaviour::Hang).await;
    let image = format!("{}/team/app:1", hang.host());
    assert_fault(FaultCase {
        plain_http: vec![hang.host()],
        timeout: Duration::from_secs(2),
        class: "timeout",
        expect: vec![format!("{} did not answer within", hang.host())],
        image,
    })
    .await;
    assert!(hang.requests() > 0, "the registry was asked");

    // TCP level: accepted, never a byte read or written (TLS handshake hangs).
    let silent = Double::behaving(Behaviour::Silent).await;
    let image = format!("{}/team/app:1", silent.host());
    assert_fault(FaultCase {
        plain_http: Vec::new(),
        timeout: Duration::from_secs(2),
        class: "timeout",
        expect: vec![format!("{} did not answer within", silent.host())],
        image,
    })
    .await;
}

#[tokio::test]
async fn slow_registry_within_the_deadline_is_answered_properly() {
    let slow = Double::behaving(Behaviour::Slow(Duration::from_millis(150))).await;
    let server = Server::start(Options {
        config: "defaultMode: enforce\n".into(),
        plain_http: vec![slow.host()],
        ..Options::default()
    })
    .await;
    let image = format!("{}/team/app:1", slow.host());
    let (resp, took) = server
        .review("/validate/enforce", "5s", &deployment("slow-1", &[image]))
        .await;
    assert_eq!(resp["allowed"], true, "{resp}");
    assert!(warnings(&resp).is_empty(), "{resp}");
    let images = resp["auditAnnotations"]["images"].as_str().unwrap();
    assert!(images.contains("sha256:"), "resolved: {images}");
    // ping, HEAD and GET of the index, each 150 ms late, one after the other.
    assert!(took >= Duration::from_millis(450), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn slow_registry_beyond_the_deadline_times_out() {
    let slow = Double::behaving(Behaviour::Slow(Duration::from_secs(4))).await;
    let image = format!("{}/team/app:1", slow.host());
    assert_fault(FaultCase {
        plain_http: vec![slow.host()],
        timeout: Duration::from_secs(2),
        class: "timeout",
        expect: vec![format!("{} did not answer within", slow.host())],
        image,
    })
    .await;
}

#[tokio::test]
async fn registry_answering_500() {
    let bad = Double::behaving(Behaviour::Status(500)).await;
    let image = format!("{}/team/app:1", bad.host());
    assert_fault(FaultCase {
        plain_http: vec![bad.host()],
        timeout: Duration::from_secs(3),
        class: "unavailable",
        expect: vec![format!("{} answered HTTP 500", bad.host())],
        image,
    })
    .await;
}

#[tokio::test]
async fn registry_rate_limiting_with_retry_after() {
    let bad = Double::behaving(Behaviour::RateLimited {
        retry_after_secs: 30,
    })
    .await;
    let image = format!("{}/team/app:1", bad.host());
    assert_fault(FaultCase {
        plain_http: vec![bad.host()],
        timeout: Duration::from_secs(3),
        class: "rate_limited",
        expect: vec![
            format!("{} is rate limiting", bad.host()),
            "retry after 30s".into(),
        ],
        image,
    })
    .await;
}

#[tokio::test]
async fn registry_with_a_certificate_from_an_unknown_ca() {
    let bad = Double::behaving_tls_unknown_ca(Behaviour::Ok).await;
    assert!(bad.is_tls());
    let image = format!("{}/team/app:1", bad.host());
    assert_fault(FaultCase {
        plain_http: Vec::new(),
        timeout: Duration::from_secs(3),
        class: "unavailable",
        expect: vec![format!(
            "TLS with {host} failed: its certificate is issued by CN=pullcheck test CA, which is not trusted: trust that CA with --registry-ca {host}=FILE",
            host = bad.host()
        )],
        image,
    })
    .await;
}

#[tokio::test]
async fn token_service_down() {
    let realm_host = format!("127.0.0.1:{}", dead_port());
    let bad = Double::behaving(Behaviour::TokenRealm(format!("http://{realm_host}/token"))).await;
    let image = format!("{}/team/app:1", bad.host());
    assert_fault(FaultCase {
        plain_http: vec![bad.host()],
        timeout: Duration::from_secs(3),
        class: "unavailable",
        expect: vec![
            format!("{realm_host} refused the connection"),
            format!("token service of {}", bad.host()),
        ],
        image,
    })
    .await;

    // A realm whose name does not resolve: the same, said of the token service.
    let realm = support::unresolvable_name("auth");
    let bad = Double::behaving(Behaviour::TokenRealm(format!("http://{realm}/token"))).await;
    let image = format!("{}/team/app:1", bad.host());
    assert_fault(FaultCase {
        plain_http: vec![bad.host()],
        timeout: Duration::from_secs(3),
        class: "unavailable",
        expect: vec![
            format!("the name {realm} does not resolve"),
            format!("token service of {}", bad.host()),
        ],
        image,
    })
    .await;
}

#[tokio::test]
async fn registry_name_that_does_not_resolve() {
    let name = support::unresolvable_name("registry");
    let image = format!("{name}/team/app:1");
    assert_fault(FaultCase {
        // Over TLS the name would be refused as a server name before any lookup.
        plain_http: vec![name.clone()],
        timeout: Duration::from_secs(3),
        class: "unavailable",
        expect: vec![format!("the name {name} does not resolve")],
        image,
    })
    .await;
}

#[tokio::test]
async fn every_fault_at_once_in_one_review_is_answered_in_time() {
    // One Deployment whose containers hit every kind of failing registry, and one good image:
    // the slowest fault sets the pace, nothing waits for another, every image gets its own
    // warning, and the good one is resolved.
    let good = Double::behaving(Behaviour::Ok).await;
    let hang = Double::behaving(Behaviour::Hang).await;
    let slow = Double::behaving(Behaviour::Slow(Duration::from_secs(5))).await;
    let e500 = Double::behaving(Behaviour::Status(503)).await;
    let e429 = Double::behaving(Behaviour::RateLimited {
        retry_after_secs: 30,
    })
    .await;
    let tls = Double::behaving_tls_unknown_ca(Behaviour::Ok).await;
    let realm_host = format!("127.0.0.1:{}", dead_port());
    let token = Double::behaving(Behaviour::TokenRealm(format!("http://{realm_host}/token"))).await;
    let down = format!("127.0.0.1:{}", dead_port());
    let unresolvable = support::unresolvable_name("registry");
    let plain: Vec<String> = [&good, &hang, &slow, &e500, &e429, &token]
        .iter()
        .map(|r| r.host())
        .chain([down.clone(), unresolvable.clone()])
        .collect();
    let server = Server::start(Options {
        config: "defaultMode: enforce\n".into(),
        plain_http: plain,
        ..Options::default()
    })
    .await;
    let mut images: Vec<String> = [&hang, &slow, &e500, &e429, &tls, &token]
        .iter()
        .map(|r| format!("{}/team/app:1", r.host()))
        .collect();
    images.push(format!("{down}/team/app:1"));
    images.push(format!("{unresolvable}/team/app:1"));
    let good_image = format!("{}/team/app:1", good.host());
    images.push(good_image.clone());
    let (resp, took) = server
        .review("/validate/enforce", "3s", &deployment("all-1", &images))
        .await;
    assert!(took < Duration::from_secs(3), "answered in {took:?}");
    assert_eq!(resp["allowed"], true, "{resp}");
    let ws = warnings(&resp);
    assert_eq!(
        ws.len(),
        images.len() - 1,
        "one warning per failing image: {ws:?}"
    );
    for image in &images[..images.len() - 1] {
        let host = host_of(image);
        assert!(
            ws.iter()
                .any(|w| w.contains(image.as_str()) && w.contains(&host)),
            "{image}: {ws:?}"
        );
    }
    assert!(!ws.iter().any(|w| w.contains(&good_image)), "{ws:?}");
    let resolved = resp["auditAnnotations"]["images"].as_str().unwrap();
    assert!(
        resolved.contains(&format!("{good_image}\",\"digest\":\"sha256:")),
        "{resolved}"
    );
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tenant {
    Alice,
    Bob,
    /// Names a pull secret that does not exist.
    Nobody,
}

#[tokio::test]
async fn no_answer_crosses_tenants_under_concurrency() {
    // One process, 60 namespaces: a third hold alice's credentials, a third bob's, a third
    // none. alice may pull private/*, bob only bob/*. 240 concurrent reviews, each of both
    // images, interleaved: every answer must be the one its namespace's credentials give.
    let reg = TestRegistry::start(RegistryOptions {
        tls: true,
        auth: Auth::Token,
    })
    .await;
    reg.push_image("private/team/app", Some("v1"), "linux/amd64")
        .await;
    reg.push_image("bob/tool", Some("v1"), "linux/amd64").await;
    let host = reg.host();
    let private_image = format!("{host}/private/team/app:v1");
    let bob_image = format!("{host}/bob/tool:v1");
    let api = FakeApiServer::start().await;
    let tenants = [Tenant::Alice, Tenant::Bob, Tenant::Nobody];
    let namespaces: Vec<(String, Tenant)> = (0..60)
        .map(|i| (format!("ns-{i:02}"), tenants[i % 3]))
        .collect();
    for (ns, tenant) in &namespaces {
        let creds = match tenant {
            Tenant::Alice => ALICE,
            Tenant::Bob => BOB,
            Tenant::Nobody => continue,
        };
        let cfg = dockerconfig(&host, creds.0, creds.1);
        api.put_secret(
            ns,
            "regcred",
            DOCKERCONFIGJSON,
            &[(".dockerconfigjson", &cfg)],
        );
    }
    let server = Server::start(Options {
        config: "defaultMode: enforce\n".into(),
        registry: Some(&reg),
        api: Some(&api),
        ..Options::default()
    })
    .await;
    reg.clear_requests().await;

    // 4 rounds over the namespaces, in an order that mixes tenants differently each round.
    let mut jobs = Vec::new();
    for round in 0..4usize {
        for k in 0..namespaces.len() {
            let (ns, tenant) = &namespaces[(k * 7 + round * 13) % namespaces.len()];
            jobs.push((format!("{ns}-r{round}"), ns.clone(), *tenant));
        }
    }
    let images = [private_image.clone(), bob_image.clone()];
    let started = Instant::now();
    let answers = futures::future::join_all(jobs.iter().map(|(uid, ns, _)| {
        let review = pod(uid, ns, &images, &["regcred"]);
        let server = &server;
        async move { server.review("/validate/enforce", "10s", &review).await.0 }
    }))
    .await;
    let took = started.elapsed();
    assert_eq!(answers.len(), 240);
    for ((uid, ns, tenant), resp) in jobs.iter().zip(&answers) {
        assert_eq!(resp["uid"], json!(uid));
        assert_eq!(resp["allowed"], false, "{ns} {tenant:?}: {resp}");
        let m = message(resp);
        let fails_private = m.contains(&private_image);
        let fails_bob = m.contains(&bob_image);
        match tenant {
            Tenant::Alice => {
                assert!(!fails_private && fails_bob, "{ns} alice: {m}");
                assert!(m.contains("not allowed to pull"), "{ns} alice: {m}");
            }
            Tenant::Bob => {
                assert!(fails_private && !fails_bob, "{ns} bob: {m}");
                assert!(m.contains("not allowed to pull"), "{ns} bob: {m}");
            }
            Tenant::Nobody => {
                assert!(fails_private && fails_bob, "{ns} nobody: {m}");
                assert!(m.contains("\"regcred\" does not exist"), "{ns} nobody: {m}");
            }
        }
        let resolved = resp["auditAnnotations"]["images"].as_str().unwrap();
        let digests = resolved.matches("sha256:").count();
        let want = if *tenant == Tenant::Nobody { 0 } else { 1 };
        assert_eq!(
            digests, want,
            "{ns} {tenant:?}: only its own pull resolved: {resolved}"
        );
    }
    // One token per repository and credential set (alice, bob, anonymous × 2 repositories),
    // one HEAD per image and credential set, whatever the concurrency.
    let tokens = reg.token_requests().await;
    assert!(
        tokens.len() <= 6,
        "{} token requests: {tokens:?}",
        tokens.len()
    );
    let mut pairs: Vec<(&str, &str)> = tokens
        .iter()
        .map(|t| (t.user.as_str(), t.scope.as_str()))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    assert_eq!(pairs.len(), tokens.len(), "a token asked twice: {tokens:?}");
    let heads = reg.count("HEAD", "/manifests/").await;
    assert!(heads <= 6, "{heads} HEAD requests");
    assert!(took < Duration::from_secs(20), "{took:?}");
}

/// A Deployment review whose object and oldObject each carry `annotation_bytes` of
/// annotations (the API server sends both on UPDATE; etcd allows ~1.5 MiB per object).
fn big_update(image_old: &str, image_new: &str, annotation_bytes: usize) -> Value {
    let mut review = fixture("deployment-create.json");
    review["request"]["uid"] = json!("big-1");
    review["request"]["operation"] = json!("UPDATE");
    let mut annotations = serde_json::Map::new();
    let chunk = 64 * 1024;
    for i in 0..annotation_bytes.div_ceil(chunk) {
        annotations.insert(
            format!("example.com/blob-{i}"),
            json!("x".repeat(chunk.min(annotation_bytes - i * chunk))),
        );
    }
    let mut object = review["request"]["object"].clone();
    object["metadata"]["annotations"] = Value::Object(annotations);
    let mut old = object.clone();
    object["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image_new);
    old["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image_old);
    review["request"]["object"] = object;
    review["request"]["oldObject"] = old;
    review
}

#[tokio::test]
async fn largest_review_is_served_and_bodies_over_the_limit_are_refused() {
    let good = Double::behaving(Behaviour::Ok).await;
    let server = Server::start(Options {
        config: "defaultMode: enforce\n".into(),
        plain_http: vec![good.host()],
        ..Options::default()
    })
    .await;
    let old = format!("{}/team/app:1", good.host());
    let new = format!("{}/team/app:2", good.host());
    let review = big_update(&old, &new, 1536 * 1024);
    let size = serde_json::to_vec(&review).unwrap().len();
    assert!(size > 3 << 20, "{size} bytes");
    let (resp, took) = server.review("/validate/enforce", "10s", &review).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    let images = resp["auditAnnotations"]["images"].as_str().unwrap();
    assert!(
        images.contains(&new) && !images.contains(&old),
        "only the new image: {images}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");

    // maxBodyBytes set to 1 MiB: a 2 MiB review is refused with 413, a 900 KiB one served.
    let mut small = Server::start(Options {
        config: "defaultMode: enforce\nmaxBodyBytes: 1048576\n".into(),
        plain_http: vec![good.host()],
        ..Options::default()
    })
    .await;
    let over = serde_json::to_vec(&big_update(&old, &new, 1024 * 1024)).unwrap();
    assert!(over.len() > 2 << 20);
    let (status, _) = small.post_raw(over).await;
    assert_eq!(status, 413);
    let under = big_update(&old, &new, 450 * 1024);
    assert!(serde_json::to_vec(&under).unwrap().len() < 1 << 20);
    let (resp, _) = small.review("/validate/enforce", "10s", &under).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    assert!(small.healthy().await);
}

/// `depth` nested arrays around `inner`.
fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn malformed_and_adversarial_reviews_get_400_and_the_server_keeps_serving() {
    let good = Double::behaving(Behaviour::Ok).await;
    let mut server = Server::start(Options {
        config: "defaultMode: enforce\n".into(),
        plain_http: vec![good.host()],
        ..Options::default()
    })
    .await;
    let image = format!("{}/team/app:1", good.host());
    let valid = deployment("valid-1", std::slice::from_ref(&image));
    let valid_text = serde_json::to_string(&valid).unwrap();
    let with_request = |f: &dyn Fn(&mut Value)| {
        let mut v = valid.clone();
        f(&mut v["request"]);
        serde_json::to_vec(&v).unwrap()
    };
    let huge = "a".repeat(5 << 20);

    let refused: Vec<(&str, Vec<u8>)> = vec![
        ("nesting 10k deep, top level", nested(10_000, "1").into_bytes()),
        (
            "objects nested 10k deep",
            format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)).into_bytes(),
        ),
        (
            "5 MiB string as the request",
            format!("{{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":\"{huge}\"}}")
                .into_bytes(),
        ),
        ("uid is a number", with_request(&|r| r["uid"] = json!(5))),
        (
            "operation unknown",
            with_request(&|r| r["operation"] = json!("EXPLODE")),
        ),
        ("kind is a string", with_request(&|r| r["kind"] = json!("Deployment"))),
        ("object is a string", with_request(&|r| r["object"] = json!("nginx"))),
        ("dryRun is a string", with_request(&|r| r["dryRun"] = json!("yes"))),
        ("userInfo is an array", with_request(&|r| r["userInfo"] = json!([1, 2]))),
        ("lone surrogate", br#"{"request":{"uid":"\ud800"}}"#.to_vec()),
        ("number out of range", br#"{"request":1e999}"#.to_vec()),
        ("not UTF-8", b"{\"request\":\"\xff\xfe\"}".to_vec()),
        ("truncated", valid_text.as_bytes()[..valid_text.len() / 2].to_vec()),
        ("trailing garbage", format!("{valid_text} x").into_bytes()),
    ];
    for (what, body) in refused {
        let started = Instant::now();
        let (status, text) = server.post_raw(body).await;
        assert_eq!(status, 400, "{what}: {}", &text[..text.len().min(300)]);
        assert!(!text.is_empty(), "{what}: a reason is given");
        assert!(
            text.len() < 4096,
            "{what}: the reason is short: {} bytes",
            text.len()
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
        assert!(
            server.healthy().await,
            "{what}: server still serves\n{}",
            server.log()
        );
    }

    // Nesting 10k deep inside the object, in a field that does not decide pulls: skipped
    // unread without recursion (serde_json skips values iteratively), so the review is
    // answered on its merits instead of refused.
    let deep = valid_text.replacen(
        "\"replicas\":3",
        &format!("\"replicas\":3,\"x\":{}", nested(10_000, "")),
        1,
    );
    assert_ne!(deep, valid_text, "the nesting went in");
    let (status, text) = server.post_raw(deep.into_bytes()).await;
    assert_eq!(status, 200, "{}", &text[..text.len().min(300)]);
    let answer: Value = serde_json::from_str(&text).expect("an AdmissionReview");
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert!(
        answer["response"]["auditAnnotations"]["images"]
            .as_str()
            .is_some_and(|i| i.contains("sha256:")),
        "resolved: {answer}"
    );

    // The review decodes but the object does not read as its kind: admitted with a warning
    // saying so (the API server validated the object; that is pullcheck's limit).
    for (what, patch) in [
        ("containers is a string", json!({"containers": "nginx"})),
        (
            "image is a number",
            json!({"containers": [{"name": "c", "image": 5}]}),
        ),
        (
            "containers nested 100 deep",
            json!({"containers": serde_json::from_str::<Value>(&nested(100, "")).unwrap()}),
        ),
    ] {
        let mut review = valid.clone();
        review["request"]["object"]["spec"]["template"]["spec"] = patch;
        let (resp, _) = server.review("/validate/enforce", "10s", &review).await;
        assert_eq!(resp["allowed"], true, "{what}: {resp}");
        let ws = warnings(&resp);
        assert!(
            ws.iter().any(|w| w.contains("could not read")),
            "{what}: {ws:?}"
        );
    }

    // Huge strings where strings belong: answered, and the answer stays small.
    let mut long_name = valid.clone();
    long_name["request"]["name"] = json!("n".repeat(100 << 10));
    long_name["request"]["object"]["metadata"]["annotations"] = json!({"a": huge});
    let (resp, _) = server.review("/validate/enforce", "10s", &long_name).await;
    assert_eq!(resp["allowed"], true, "{}", &resp.to_string()[..300]);
    let mut long_image = valid.clone();
    long_image["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!(format!("{}/{huge}:1", good.host()));
    let (resp, _) = server.review("/validate/enforce", "10s", &long_image).await;
    assert_eq!(resp["allowed"], false, "an invalid reference is denied");
    let size = resp.to_string().len();
    assert!(
        size < 64 * 1024,
        "the denial of a 5 MiB image reference is {size} bytes long"
    );

    // Still serving, and still right.
    assert!(server.healthy().await, "{}", server.log());
    let (resp, _) = server.review("/validate/enforce", "10s", &valid).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    assert!(warnings(&resp).is_empty(), "{resp}");
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
