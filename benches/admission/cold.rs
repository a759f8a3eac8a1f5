//! 2. Cold path

use super::*;

pub(crate) struct Cold {
    pub(crate) one: Vec<Duration>,
    pub(crate) ten: Vec<Duration>,
    pub(crate) one_counts: Counts,
    pub(crate) ten_counts: Counts,
}

pub(crate) fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

pub(crate) async fn cold_path(env: &Env, report: &mut Report) {
    eprintln!("== cold path (registry behind a +{PROXY_DELAY:?} proxy)");
    let proxy = DelayProxy::start(&env.reg, PROXY_DELAY).await;
    let host = proxy.host();
    env.tenant("cold", &host);
    const TRIALS: usize = 3;
    // Distinct multi-platform images for every trial: nothing is cached anywhere.
    let mut repos = Vec::new();
    for t in 0..TRIALS {
        for i in 0..11 {
            repos.push(format!("private/cold/t{t}-img{i}"));
        }
    }
    futures::future::join_all(repos.iter().map(|r| {
        env.reg
            .push_index(r, "1", &["linux/amd64", "linux/arm64"], false)
    }))
    .await;
    let mut cold = Cold {
        one: Vec::new(),
        ten: Vec::new(),
        one_counts: Counts::default(),
        ten_counts: Counts::default(),
    };
    for t in 0..TRIALS {
        for n in [1usize, 10] {
            let images: Vec<String> = if n == 1 {
                vec![format!("{host}/private/cold/t{t}-img0:1")]
            } else {
                (1..=10)
                    .map(|i| format!("{host}/private/cold/t{t}-img{i}:1"))
                    .collect()
            };
            // A fresh process: no token, no challenge, no cached result.
            let served =
                Served::pullcheck(env, "defaultMode: enforce\n", std::slice::from_ref(&host)).await;
            tokio::time::sleep(Duration::from_millis(300)).await; // node watch settles
            env.reg.clear_requests().await;
            let client = h2_client(&env.certificates.0.cert, served.addr());
            client
                .get(served.url("/healthz"))
                .send()
                .await
                .expect("connect");
            let review = deployment(&format!("cold-{t}-{n}"), "cold", &images);
            let started = Instant::now();
            let answer: Value = client
                .post(served.url("/validate/enforce?timeout=10s"))
                .json(&review)
                .send()
                .await
                .expect("review")
                .json()
                .await
                .expect("JSON");
            let took = started.elapsed();
            let resp = &answer["response"];
            assert_eq!(resp["allowed"], true, "{resp}");
            assert!(resp["warnings"].is_null(), "{resp}");
            let c = counts(&env.reg).await;
            eprintln!(
                "   trial {t}, {n:>2} image(s): {} — registry requests {}",
                ms(took),
                c.describe()
            );
            if n == 1 {
                cold.one.push(took);
                cold.one_counts = c;
            } else {
                cold.ten.push(took);
                cold.ten_counts = c;
            }
        }
    }
    report.cold = Some(cold);
}
