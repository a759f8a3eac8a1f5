//! Load generation

use super::*;

#[derive(Clone, Debug, Default)]
pub(crate) struct Stats {
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
    /// Every latency, microseconds, sorted.
    pub(crate) latencies: Vec<u64>,
    pub(crate) cpu: Duration,
}

impl Stats {
    /// Several runs of the same load as one.
    pub(crate) fn merge(runs: &[Stats]) -> Stats {
        let mut all = Stats::default();
        for r in runs {
            all.ok += r.ok;
            all.errors += r.errors;
            all.elapsed += r.elapsed;
            all.cpu += r.cpu;
            all.latencies.extend_from_slice(&r.latencies);
        }
        all.latencies.sort_unstable();
        all
    }

    pub(crate) fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub(crate) fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len());
        Duration::from_micros(self.latencies[i - 1])
    }

    pub(crate) fn cpu_per_review(&self) -> Duration {
        if self.ok == 0 {
            return Duration::ZERO;
        }
        self.cpu / self.ok as u32
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// One request; Ok(latency) when answered 200 with a full body.
pub(crate) async fn post_once(
    client: &reqwest::Client,
    url: &str,
    body: &Bytes,
) -> Result<(), String> {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    if status != StatusCode::OK || bytes.is_empty() {
        return Err(format!("HTTP {status}"));
    }
    Ok(())
}

/// Clients with their HTTP/2 connection established.
pub(crate) async fn connect(
    ca: &str,
    served: &Served,
    n: usize,
    url: &str,
    body: &Bytes,
) -> Vec<reqwest::Client> {
    let mut clients = Vec::new();
    for _ in 0..n {
        let c = h2_client(ca, served.addr());
        post_once(&c, url, body).await.expect("first review");
        clients.push(c);
    }
    clients
}

/// Closed loop: every stream sends its next review as soon as the last is answered.
pub(crate) async fn closed_loop(
    clients: &[reqwest::Client],
    streams: usize,
    url: &str,
    body: &Bytes,
    pid: u32,
    duration: Duration,
) -> Stats {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_time(pid);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in clients {
        for _ in 0..streams {
            let (client, url, body, stop, errors) = (
                client.clone(),
                url.to_string(),
                body.clone(),
                Arc::clone(&stop),
                Arc::clone(&errors),
            );
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(1 << 16);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match post_once(&client, &url, &body).await {
                        Ok(()) => lat.push(t.elapsed().as_micros() as u64),
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                lat
            }));
        }
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("load task"));
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    latencies.sort_unstable();
    Stats {
        ok: latencies.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        latencies,
        cpu,
    }
}

/// Open loop: reviews start on a fixed schedule (`rate` per second) whatever the answers do;
/// each latency counts from its scheduled start (no coordinated omission).
pub(crate) async fn open_loop(
    clients: &[reqwest::Client],
    url: &str,
    body: &Bytes,
    pid: u32,
    rate: u64,
    duration: Duration,
) -> Stats {
    let total = rate * duration.as_secs();
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let results = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_time(pid);
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = started + interval * i as u32;
        tokio::time::sleep_until(scheduled).await;
        let (client, url, body, results, errors) = (
            clients[i as usize % clients.len()].clone(),
            url.to_string(),
            body.clone(),
            Arc::clone(&results),
            Arc::clone(&errors),
        );
        tasks.push(tokio::spawn(async move {
            match post_once(&client, &url, &body).await {
                Ok(()) => results
                    .lock()
                    .unwrap()
                    .push(scheduled.elapsed().as_micros() as u64),
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    let mut latencies = std::mem::take(&mut *results.lock().unwrap());
    latencies.sort_unstable();
    Stats {
        ok: latencies.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        latencies,
        cpu,
    }
}
