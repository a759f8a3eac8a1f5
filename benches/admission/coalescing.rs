//! 3. Coalescing

use super::*;

pub(crate) struct Coalesced {
    pub(crate) reviews: usize,
    pub(crate) wall: Duration,
    pub(crate) counts: Counts,
    pub(crate) cache_events: String,
    /// Secret and ServiceAccount reads at the API server during the burst.
    pub(crate) api_reads: usize,
    pub(crate) rss_kib: u64,
}

pub(crate) async fn coalescing(env: &Env, report: &mut Report) {
    eprintln!("== coalescing: 500 concurrent reviews of one new image");
    let proxy = DelayProxy::start(&env.reg, PROXY_DELAY).await;
    let host = proxy.host();
    env.tenant("burst", &host);
    env.reg
        .push_index(
            "private/burst/app",
            "1",
            &["linux/amd64", "linux/arm64"],
            false,
        )
        .await;
    let served =
        Served::pullcheck(env, "defaultMode: enforce\n", std::slice::from_ref(&host)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let image = format!("{host}/private/burst/app:1");
    let clients: Vec<reqwest::Client> = (0..5)
        .map(|_| h2_client(&env.certificates.0.cert, served.addr()))
        .collect();
    for c in &clients {
        c.get(served.url("/healthz")).send().await.expect("connect");
    }
    env.reg.clear_requests().await;
    let api_before = env.api.count("GET", "/namespaces/burst/");
    let url = served.url("/validate/enforce?timeout=10s");
    let started = Instant::now();
    let answers = futures::future::join_all((0..500).map(|i| {
        let client = clients[i % clients.len()].clone();
        let review = deployment(&format!("burst-{i}"), "burst", std::slice::from_ref(&image));
        let url = url.clone();
        async move {
            let v: Value = client
                .post(&url)
                .json(&review)
                .send()
                .await
                .expect("review")
                .json()
                .await
                .expect("JSON");
            v["response"]["allowed"] == true
        }
    }))
    .await;
    let wall = started.elapsed();
    assert!(answers.iter().all(|a| *a), "every review admitted");
    let c = counts(&env.reg).await;
    let api_reads = env.api.count("GET", "/namespaces/burst/") - api_before;
    let metrics = clients[0]
        .get(served.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let cache_events: Vec<String> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("pullcheck_cache_events_total{") && l.contains("cache=\"result\"")
        })
        .map(|l| {
            let event = l
                .split("event=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or("?");
            let n = l.rsplit(' ').next().unwrap_or("0");
            format!("{event} {n}")
        })
        .collect();
    eprintln!(
        "   {} in {} — registry requests {}; result cache: {}",
        answers.len(),
        ms(wall),
        c.describe(),
        cache_events.join(", ")
    );
    report.coalescing = Some(Coalesced {
        reviews: answers.len(),
        wall,
        counts: c,
        cache_events: cache_events.join(", "),
        api_reads,
        rss_kib: rss_kib(served.pid()),
    });
}
