//! 1. Warm path

use super::*;

/// The Deployment fixture with `images` as its containers, in `namespace`.
pub(crate) fn deployment(uid: &str, namespace: &str, images: &[String]) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/admission/deployment-create.json");
    let mut review: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture"))
        .expect("fixture JSON");
    review["request"]["uid"] = json!(uid);
    review["request"]["namespace"] = json!(namespace);
    review["request"]["object"]["metadata"]["namespace"] = json!(namespace);
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image, "imagePullPolicy": "IfNotPresent"}))
        .collect();
    review["request"]["object"]["spec"]["template"]["spec"]["containers"] = json!(containers);
    review
}

pub(crate) async fn warm_path(env: &Env, report: &mut Report) {
    eprintln!("== warm path");
    let host = env.reg.host();
    env.reg
        .push_index(
            "private/team/web",
            "1.0",
            &["linux/amd64", "linux/arm64"],
            false,
        )
        .await;
    env.reg
        .push_index(
            "public/library/nginx",
            "1.25",
            &["linux/amd64", "linux/arm64"],
            true,
        )
        .await;
    env.tenant("team-a", &host);
    let images = [
        format!("{host}/private/team/web:1.0"),
        format!("{host}/public/library/nginx:1.25"),
    ];
    let review = deployment("7c4f3b0e-1d2a-4d8e-9b1f-000000000001", "team-a", &images);
    let body = Bytes::from(serde_json::to_vec(&review).expect("review JSON"));

    let pullcheck = Served::pullcheck(env, "defaultMode: enforce\n", &[]).await;
    let responder = Served::responder(env).await;
    let url_p = pullcheck.url("/validate/enforce?timeout=10s");
    let url_m = responder.url("/validate/enforce?timeout=10s");

    // The warm answer is the right one: admitted, both images resolved, no warning.
    let check = h2_client(&env.certificates.0.cert, pullcheck.addr());
    let answer: Value = check
        .post(&url_p)
        .body(body.clone())
        .send()
        .await
        .expect("review")
        .json()
        .await
        .expect("JSON");
    let resp = &answer["response"];
    assert_eq!(resp["allowed"], true, "{resp}");
    assert!(resp["warnings"].is_null(), "{resp}");
    assert_eq!(
        resp["auditAnnotations"]["images"]
            .as_str()
            .unwrap_or_default()
            .matches("sha256:")
            .count(),
        2,
        "{resp}"
    );
    env.reg.clear_requests().await;

    let servers = [
        ("minimal responder", &responder, &url_m),
        ("pullcheck serve", &pullcheck, &url_p),
    ];
    let mut clients = Vec::new();
    for (_, served, url) in servers {
        let c = connect(
            &env.certificates.0.cert,
            served,
            CLOSED_CONNECTIONS,
            url,
            &body,
        )
        .await;
        // Warm-up: connections, allocator, caches.
        closed_loop(
            &c,
            CLOSED_STREAMS,
            url,
            &body,
            served.pid(),
            Duration::from_secs(1),
        )
        .await;
        clients.push(c);
    }
    // Closed loop in alternating rounds, so that whatever else the machine does at the time
    // weighs on both servers alike.
    let mut closed: [Vec<Stats>; 2] = [Vec::new(), Vec::new()];
    for round in 0..CLOSED_ROUNDS {
        for (i, (name, served, url)) in servers.iter().enumerate() {
            eprintln!(
                "   round {round}: {name}: closed loop {CLOSED_CONNECTIONS}×{CLOSED_STREAMS} for {CLOSED_FOR:?}"
            );
            let s = closed_loop(
                &clients[i],
                CLOSED_STREAMS,
                url,
                &body,
                served.pid(),
                CLOSED_FOR,
            )
            .await;
            closed[i].push(s);
        }
    }
    let mut open = Vec::new();
    for (i, (name, served, url)) in servers.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        eprintln!("   {name}: open loop {OPEN_RATE}/s for {OPEN_FOR:?}");
        open.push(open_loop(&clients[i], url, &body, served.pid(), OPEN_RATE, OPEN_FOR).await);
    }
    let round_ratios: Vec<f64> = closed[1]
        .iter()
        .zip(&closed[0])
        .map(|(p, m)| p.rate() / m.rate())
        .collect();
    let (m_open, p_open) = (open[0].clone(), open[1].clone());
    let (m_closed, p_closed) = (Stats::merge(&closed[0]), Stats::merge(&closed[1]));
    let registry_requests = env.reg.requests().await.len();
    let rss = rss_kib(pullcheck.pid());
    report.warm = Some(Warm {
        round_ratios,
        minimal_closed: m_closed,
        minimal_open: m_open,
        pullcheck_closed: p_closed,
        pullcheck_open: p_open,
        registry_requests,
        rss_kib: rss,
    });
}

pub(crate) struct Warm {
    /// pullcheck / minimal throughput of each closed-loop round.
    pub(crate) round_ratios: Vec<f64>,
    pub(crate) minimal_closed: Stats,
    pub(crate) minimal_open: Stats,
    pub(crate) pullcheck_closed: Stats,
    pub(crate) pullcheck_open: Stats,
    pub(crate) registry_requests: usize,
    pub(crate) rss_kib: u64,
}
