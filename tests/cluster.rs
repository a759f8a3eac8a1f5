//! `KubeCluster` (kube-rs) against the loopback API server stand-in: Secrets,
//! ServiceAccounts, pull-secret listing, caching and coalescing (counted on the server),
//! the Node metadata watch, error classes, and `connect`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use pullcheck::cluster::{Cluster, ClusterError, KubeCluster, SecretData};
use pullcheck::kubelet::platform::Platform;
use support::apiserver::FakeApiServer;
use tokio::time::Instant;

const DCJ: &str = "kubernetes.io/dockerconfigjson";
const DCFG: &str = "kubernetes.io/dockercfg";
const TTL: Duration = Duration::from_secs(10);
const NEG_TTL: Duration = Duration::from_secs(1);

async fn cluster(api: &FakeApiServer) -> KubeCluster {
    KubeCluster::new(api.client().await, TTL, NEG_TTL)
}

fn p(os: &str, arch: &str) -> Platform {
    Platform::new(os, arch, None)
}

/// Polls `f` every 50 ms until it is true or `within` has passed.
async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn secret_found_and_absent() {
    let api = FakeApiServer::start().await;
    let json = br#"{"auths":{"r.example":{"auth":"dTpw"}}}"#;
    api.put_secret("team-a", "regcred", DCJ, &[(".dockerconfigjson", json)]);
    api.put_secret("team-a", "binary", "Opaque", &[("k", &[0, 159, 255, 10])]);
    let c = cluster(&api).await;

    let s = c.secret("team-a", "regcred").await.unwrap().expect("found");
    assert_eq!(
        s,
        SecretData::dockerconfigjson(std::str::from_utf8(json).unwrap()).into()
    );
    let b = c.secret("team-a", "binary").await.unwrap().expect("found");
    assert_eq!(b.secret_type, "Opaque");
    assert_eq!(b.data["k"], vec![0, 159, 255, 10]);

    assert_eq!(c.secret("team-a", "nope").await, Ok(None));
    assert_eq!(c.secret("team-b", "regcred").await, Ok(None));
    // A name that cannot exist is not even asked for.
    assert_eq!(c.secret("team-a", "../../nodes").await, Ok(None));
    assert_eq!(api.count("GET", "nodes/"), 0);
    assert!(c.available());
}

#[tokio::test]
async fn secret_created_after_an_absent_read_is_seen_after_negative_ttl() {
    let api = FakeApiServer::start().await;
    let c = cluster(&api).await;
    assert_eq!(c.secret("team-a", "late").await, Ok(None));
    api.put_secret("team-a", "late", DCJ, &[(".dockerconfigjson", b"{}")]);
    // The absence is cached for a moment...
    assert_eq!(c.secret("team-a", "late").await, Ok(None));
    assert_eq!(api.count("GET", "/secrets/late"), 1);
    // ...but no longer than negative_ttl.
    let start = Instant::now();
    let mut found = None;
    while start.elapsed() < Duration::from_secs(3) && found.is_none() {
        found = c.secret("team-a", "late").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found.is_some(), "not seen within 3 s");
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(api.count("GET", "/secrets/late"), 2);
}

#[tokio::test]
async fn found_secrets_are_cached_for_ttl() {
    let api = FakeApiServer::start().await;
    api.put_secret("team-a", "regcred", DCJ, &[(".dockerconfigjson", b"{}")]);
    let c = cluster(&api).await;
    assert!(c.secret("team-a", "regcred").await.unwrap().is_some());
    assert!(c.secret("team-a", "regcred").await.unwrap().is_some());
    assert_eq!(
        api.count("GET", "/api/v1/namespaces/team-a/secrets/regcred"),
        1
    );
    // Within ttl the cached value stands even though the Secret is gone.
    api.delete_secret("team-a", "regcred");
    assert!(c.secret("team-a", "regcred").await.unwrap().is_some());
    assert_eq!(api.count("GET", "/secrets/regcred"), 1);

    // With a short ttl the deletion is seen.
    let short = KubeCluster::new(api.client().await, Duration::from_millis(200), NEG_TTL);
    api.put_secret("team-a", "regcred", DCJ, &[(".dockerconfigjson", b"{}")]);
    assert!(short.secret("team-a", "regcred").await.unwrap().is_some());
    api.delete_secret("team-a", "regcred");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(short.secret("team-a", "regcred").await, Ok(None));
}

#[tokio::test]
async fn concurrent_identical_reads_are_coalesced() {
    let api = FakeApiServer::start().await;
    api.put_secret("team-a", "regcred", DCJ, &[(".dockerconfigjson", b"{}")]);
    api.put_service_account("team-a", "default", &["regcred"]);
    let c = Arc::new(cluster(&api).await);
    api.set_delay(Some(Duration::from_millis(300)));
    let reads = (0..16).map(|_| {
        let c = c.clone();
        tokio::spawn(async move { c.secret("team-a", "regcred").await })
    });
    let sa_reads = (0..8).map(|_| {
        let c = c.clone();
        tokio::spawn(async move { c.service_account_pull_secrets("team-a", "default").await })
    });
    let lists = (0..8).map(|_| {
        let c = c.clone();
        tokio::spawn(async move { c.pull_secrets_in("team-a").await })
    });
    for r in futures::future::join_all(reads).await {
        assert!(r.unwrap().unwrap().is_some());
    }
    for r in futures::future::join_all(sa_reads).await {
        assert_eq!(r.unwrap().unwrap(), Some(vec!["regcred".to_owned()]));
    }
    for r in futures::future::join_all(lists).await {
        assert_eq!(r.unwrap().unwrap().len(), 1);
    }
    assert_eq!(api.count("GET", "/secrets/regcred"), 1);
    assert_eq!(api.count("GET", "/serviceaccounts/default"), 1);
    assert_eq!(api.count("GET", "/namespaces/team-a/secrets?"), 2);
}

#[tokio::test]
async fn service_account_pull_secrets() {
    let api = FakeApiServer::start().await;
    api.put_service_account("team-a", "default", &["regcred", "other"]);
    api.put_service_account("team-a", "bare", &[]);
    let c = cluster(&api).await;
    assert_eq!(
        c.service_account_pull_secrets("team-a", "default").await,
        Ok(Some(vec!["regcred".to_owned(), "other".to_owned()]))
    );
    assert_eq!(
        c.service_account_pull_secrets("team-a", "bare").await,
        Ok(Some(vec![]))
    );
    assert_eq!(
        c.service_account_pull_secrets("team-a", "missing").await,
        Ok(None)
    );
    assert_eq!(
        c.service_account_pull_secrets("team-b", "default").await,
        Ok(None)
    );
    assert_eq!(
        api.count("GET", "/api/v1/namespaces/team-a/serviceaccounts/default"),
        1
    );
}

#[tokio::test]
async fn pull_secrets_in_lists_both_types_only() {
    let api = FakeApiServer::start().await;
    api.put_secret("team-a", "zeta-json", DCJ, &[(".dockerconfigjson", b"{}")]);
    api.put_secret("team-a", "alpha-cfg", DCFG, &[(".dockercfg", b"{}")]);
    api.put_secret("team-a", "opaque", "Opaque", &[("password", b"x")]);
    api.put_secret(
        "team-a",
        "token",
        "kubernetes.io/service-account-token",
        &[("token", b"x")],
    );
    api.put_secret("team-b", "elsewhere", DCJ, &[(".dockerconfigjson", b"{}")]);
    let c = cluster(&api).await;

    let list = c.pull_secrets_in("team-a").await.unwrap();
    let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["alpha-cfg", "zeta-json"]);
    assert_eq!(list[0].1.secret_type, DCFG);
    assert_eq!(list[1].1.secret_type, DCJ);
    // Exactly two LISTs, each with its type field selector (form-encoded as kube sends it).
    assert_eq!(
        api.count("GET", "/api/v1/namespaces/team-a/secrets?&fieldSelector=type%3Dkubernetes.io%2Fdockerconfigjson"),
        1,
        "{:?}",
        api.requests()
    );
    assert_eq!(
        api.count("GET", "fieldSelector=type%3Dkubernetes.io%2Fdockercfg"),
        1
    );
    // Cached per namespace.
    assert_eq!(c.pull_secrets_in("team-a").await.unwrap().len(), 2);
    assert_eq!(api.count("GET", "/namespaces/team-a/secrets?"), 2);
    assert_eq!(c.pull_secrets_in("empty").await, Ok(vec![]));
}

#[tokio::test]
async fn node_platforms_follow_the_nodes() {
    let api = FakeApiServer::start().await;
    api.put_node("node-a", "linux", "amd64");
    api.put_node("node-b", "linux", "arm64");
    api.put_node("node-c", "linux", "amd64");
    let c = cluster(&api).await;
    let want = Some(vec![p("linux", "amd64"), p("linux", "arm64")]);
    assert!(
        eventually(Duration::from_secs(3), || c.node_platforms() == want).await,
        "{:?}",
        c.node_platforms()
    );
    // A node added later arrives through the watch.
    api.put_node("win-1", "windows", "amd64");
    let want = Some(vec![
        p("linux", "amd64"),
        p("linux", "arm64"),
        p("windows", "amd64"),
    ]);
    assert!(
        eventually(Duration::from_secs(3), || c.node_platforms() == want).await,
        "{:?}",
        c.node_platforms()
    );
    // And a removed one leaves.
    api.delete_node("node-b");
    let want = Some(vec![p("linux", "amd64"), p("windows", "amd64")]);
    assert!(
        eventually(Duration::from_secs(3), || c.node_platforms() == want).await,
        "{:?}",
        c.node_platforms()
    );
    // What kube's watcher sent: one metadata LIST (page size 500), then one WATCH from its
    // resourceVersion, which stayed open.
    assert_eq!(
        api.count("GET", "/api/v1/nodes?&limit=500"),
        1,
        "{:?}",
        api.requests()
    );
    assert_eq!(
        api.count("GET", "/api/v1/nodes?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=3"),
        1,
        "{:?}",
        api.requests()
    );
    assert_eq!(api.count("GET", "/api/v1/nodes"), 2);
    let nodes: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.target.starts_with("/api/v1/nodes"))
        .collect();
    assert_eq!(
        nodes[0].accept,
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
    );
    assert_eq!(
        nodes[1].accept,
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
    );
}

#[tokio::test]
async fn forbidden_is_forbidden_and_not_cached() {
    let api = FakeApiServer::start().await;
    api.put_secret("team-a", "regcred", DCJ, &[(".dockerconfigjson", b"{}")]);
    api.put_node("node-a", "linux", "amd64");
    api.fail_with(Some(403));
    let c = cluster(&api).await;
    let err = c.secret("team-a", "regcred").await.unwrap_err();
    assert!(matches!(err, ClusterError::Forbidden { .. }), "{err:?}");
    assert!(err.to_string().contains("Secret team-a/regcred"), "{err}");
    assert!(!err.is_transient());
    assert!(matches!(
        c.service_account_pull_secrets("team-a", "default").await,
        Err(ClusterError::Forbidden { .. })
    ));
    assert!(matches!(
        c.pull_secrets_in("team-a").await,
        Err(ClusterError::Forbidden { .. })
    ));
    // No Node list ever succeeded.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.node_platforms(), None);

    api.fail_with(None);
    assert!(c.secret("team-a", "regcred").await.unwrap().is_some());
    assert!(
        eventually(Duration::from_secs(5), || c.node_platforms().is_some()).await,
        "the Node watch did not recover"
    );
}

#[tokio::test]
async fn server_errors_are_unavailable() {
    let api = FakeApiServer::start().await;
    api.put_secret("team-a", "regcred", DCJ, &[(".dockerconfigjson", b"{}")]);
    api.fail_with(Some(503));
    let c = cluster(&api).await;
    let start = Instant::now();
    let err = c.secret("team-a", "regcred").await.unwrap_err();
    assert!(matches!(err, ClusterError::Unavailable { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(err.to_string().contains("Secret team-a/regcred"), "{err}");
    assert!(err.to_string().contains("503"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(api.count("GET", "/secrets/regcred"), 1);

    // Errors are not cached.
    api.fail_with(None);
    assert!(c.secret("team-a", "regcred").await.unwrap().is_some());
}

#[tokio::test]
async fn kube_retrying_client_is_bounded_by_the_request_timeout() {
    let api = FakeApiServer::start().await;
    api.fail_with(Some(503));
    // kube's default client retries 503 with backoff (up to 15 times); the request
    // timeout keeps a read inside an admission deadline.
    let client = kube::Client::try_from(api.config().await).unwrap();
    let c = KubeCluster::new(client, TTL, NEG_TTL).with_request_timeout(Duration::from_millis(700));
    let start = Instant::now();
    let err = c.secret("team-a", "regcred").await.unwrap_err();
    assert!(matches!(err, ClusterError::Unavailable { .. }), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    assert!(api.count("GET", "/secrets/regcred") > 1, "kube retried");
}

#[tokio::test]
async fn slow_api_server_times_out_as_unavailable() {
    let api = FakeApiServer::start().await;
    api.put_service_account("team-a", "default", &[]);
    api.set_delay(Some(Duration::from_secs(3)));
    let c = cluster(&api)
        .await
        .with_request_timeout(Duration::from_millis(300));
    let start = Instant::now();
    let err = c
        .service_account_pull_secrets("team-a", "default")
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::Unavailable { .. }), "{err:?}");
    assert!(
        err.to_string().contains("ServiceAccount team-a/default"),
        "{err}"
    );
    assert!(err.to_string().contains("no answer within 300 ms"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(1));
}

/// The only test that touches the process environment (KUBECONFIG); the others build their
/// kube::Config from the kubeconfig file directly.
#[tokio::test]
async fn connect_through_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let dead_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = dir.path().join("dead");
    std::fs::write(
        &dead,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: x\n  cluster:\n    server: https://127.0.0.1:{dead_port}\n\
             users:\n- name: x\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: x\n    user: x\n\
             current-context: x\n"
        ),
    )
    .unwrap();
    std::env::set_var("KUBECONFIG", &dead);
    let start = Instant::now();
    let err = format!(
        "{:#}",
        KubeCluster::connect(TTL, NEG_TTL).await.unwrap_err()
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(err.contains(&format!("127.0.0.1:{dead_port}")), "{err}");

    let missing = dir.path().join("missing");
    std::env::set_var("KUBECONFIG", &missing);
    assert!(KubeCluster::connect(TTL, NEG_TTL).await.is_err());

    let api = FakeApiServer::start().await;
    api.put_node("node-a", "linux", "arm64");
    std::env::set_var("KUBECONFIG", api.kubeconfig_path());
    let c = KubeCluster::connect(TTL, NEG_TTL).await.expect("connects");
    std::env::remove_var("KUBECONFIG");
    assert_eq!(api.count("GET", "/version"), 1);
    assert!(
        eventually(Duration::from_secs(3), || c.node_platforms()
            == Some(vec![p("linux", "arm64")]))
        .await,
        "{:?}",
        c.node_platforms()
    );
    // connect() turns kube's 503 retry off: one request, answered at once.
    api.fail_with(Some(503));
    assert!(matches!(
        c.secret("default", "x").await,
        Err(ClusterError::Unavailable { .. })
    ));
    assert_eq!(api.count("GET", "/secrets/x"), 1);
}

/// The cache says until when its answers hold: found ones `TTL` after the read, absent ones
/// `NEG_TTL`; nothing is promised for what was not read, has expired, or is no longer what
/// the caller read.
#[tokio::test]
async fn answers_hold_until_their_cache_expires() {
    let api = FakeApiServer::start().await;
    api.put_service_account("team-a", "default", &["regcred", "gone"]);
    api.put_secret(
        "team-a",
        "regcred",
        "kubernetes.io/dockerconfigjson",
        &[(".dockerconfigjson", br#"{"auths":{}}"#)],
    );
    let c = cluster(&api).await;
    let names = ["regcred".to_owned(), "gone".to_owned()];
    let sa = Some(("default", Some(&names[..])));
    assert_eq!(
        c.answers_hold_until("team-a", sa, &[]).await,
        None,
        "nothing read yet"
    );
    let before = std::time::Instant::now();
    let read_names = c
        .service_account_pull_secrets("team-a", "default")
        .await
        .unwrap();
    assert_eq!(read_names.as_deref(), Some(&names[..]));
    let regcred = c.secret("team-a", "regcred").await.unwrap();
    assert!(regcred.is_some());
    let mut reads = vec![
        ("regcred".to_owned(), regcred.clone()),
        ("gone".to_owned(), None),
    ];
    assert_eq!(
        c.answers_hold_until("team-a", sa, &reads).await,
        None,
        "\"gone\" not read yet"
    );
    assert!(c.secret("team-a", "gone").await.unwrap().is_none());
    let until = c
        .answers_hold_until("team-a", sa, &reads)
        .await
        .expect("all cached");
    let after = std::time::Instant::now();
    // The absent Secret expires first.
    assert!(
        until >= before + NEG_TTL && until <= after + NEG_TTL,
        "{until:?}"
    );
    let found_only = c
        .answers_hold_until("team-a", sa, &reads[..1])
        .await
        .expect("cached");
    assert!(found_only >= before + TTL && found_only <= after + TTL);

    // Answers other than the cached ones (the entry was re-read in between) promise nothing.
    let other_names = ["regcred".to_owned()];
    assert_eq!(
        c.answers_hold_until("team-a", Some(("default", Some(&other_names[..]))), &[])
            .await,
        None,
        "the ServiceAccount named other Secrets"
    );
    assert_eq!(
        c.answers_hold_until("team-a", Some(("default", None)), &[])
            .await,
        None,
        "the ServiceAccount was absent"
    );
    reads[1].1 = regcred.clone();
    assert_eq!(
        c.answers_hold_until("team-a", None, &reads[1..]).await,
        None,
        "\"gone\" was present"
    );
    let mut changed = regcred.as_deref().cloned().expect("read");
    changed.data.insert("extra".into(), b"x".to_vec());
    reads[0].1 = Some(std::sync::Arc::new(changed));
    assert_eq!(
        c.answers_hold_until("team-a", None, &reads[..1]).await,
        None,
        "\"regcred\" had other contents"
    );
    // The same contents in another allocation are the same answer.
    reads[0].1 = regcred.as_deref().cloned().map(std::sync::Arc::new);
    assert!(c
        .answers_hold_until("team-a", None, &reads[..1])
        .await
        .is_some());

    tokio::time::sleep(NEG_TTL + Duration::from_millis(50)).await;
    reads[1].1 = None;
    assert_eq!(
        c.answers_hold_until("team-a", None, &reads[1..]).await,
        None,
        "expired"
    );
}

/// `--node-runtime auto`: the runtime the Nodes report (`status.nodeInfo`), listed in
/// pages; the one they agree on decides how platforms are matched; Nodes that disagree, or
/// no cluster, leave containerd of unknown version (the lenient matcher).
#[tokio::test]
async fn node_runtimes_from_the_nodes_decide_the_platform_matcher() {
    use pullcheck::config::assemble::node_runtime;
    use pullcheck::kubelet::platform::PlatformRules;
    use pullcheck::kubelet::platform_match::PlatformMatcher;
    use pullcheck::kubelet::runtime::{NodeRuntime, RuntimeChoice, Version};

    let api = FakeApiServer::start().await;
    for i in 0..150 {
        api.put_node_with_runtime(
            &format!("node-{i:03}"),
            "linux",
            "amd64",
            "containerd://2.1.4",
        );
    }
    let c = cluster(&api).await;
    assert_eq!(
        c.node_runtimes().await,
        Some(vec!["containerd://2.1.4".to_string()])
    );
    assert!(
        api.requests()
            .iter()
            .any(|r| r.target.starts_with("/api/v1/nodes?") && r.target.contains("continue=")),
        "listed in pages"
    );
    let runtime = node_runtime(RuntimeChoice::Auto, &c).await;
    assert_eq!(
        runtime,
        NodeRuntime::Containerd(Some(Version::new(2, 1, 4)))
    );
    assert_eq!(
        runtime.platform_matcher(),
        PlatformMatcher::strict(PlatformRules::Rc1)
    );
    // A flag wins over the Nodes.
    let fixed = RuntimeChoice::parse("containerd://1.7.28").unwrap();
    assert_eq!(
        node_runtime(fixed, &c).await.platform_matcher(),
        PlatformMatcher::only(PlatformRules::V0_2)
    );

    api.put_node_with_runtime("node-crio", "linux", "amd64", "cri-o://1.34.1");
    let mixed = node_runtime(RuntimeChoice::Auto, &c).await;
    assert_eq!(mixed, NodeRuntime::Containerd(None));
    assert_eq!(mixed.platform_matcher(), PlatformMatcher::DEFAULT);

    let none = pullcheck::cluster::NoCluster {
        reason: "test".into(),
    };
    assert_eq!(
        node_runtime(RuntimeChoice::Auto, &none).await,
        NodeRuntime::Containerd(None)
    );
}
