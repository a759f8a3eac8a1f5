//! Servers under test

use super::*;

/// A server under test: `pullcheck serve` as the tests drive it, or the minimal responder.
pub(crate) enum Served {
    Pullcheck(Server),
    Responder {
        child: Child,
        addr: SocketAddr,
        log: PathBuf,
    },
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Served::Responder { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Served {
    /// `pullcheck serve` (release) with `config`, the registry's CA, the fake API server,
    /// and the environment's serving certificate.
    pub(crate) async fn pullcheck(env: &Env, config: &str, plain_http: &[String]) -> Served {
        Served::Pullcheck(
            Server::start(Options {
                config: config.to_string(),
                plain_http: plain_http.to_vec(),
                registry: Some(&env.reg),
                api: Some(&env.api),
                certificates: Some(&env.certificates),
                ..Options::default()
            })
            .await,
        )
    }

    pub(crate) async fn responder(env: &Env) -> Served {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = env.dir.path().join("responder.log");
        let child = Command::new(responder_bin())
            .arg(addr.to_string())
            .arg(&env.cert)
            .arg(&env.key)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn minimal_responder");
        let served = Served::Responder { child, addr, log };
        served.wait_ready(&env.certificates.0.cert).await;
        served
    }

    async fn wait_ready(&self, ca: &str) {
        let client = h2_client(ca, self.addr());
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(r) = client.get(self.url("/healthz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} did not come up:\n{}", self.addr(), self.log());
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        match self {
            Served::Pullcheck(server) => server.addr,
            Served::Responder { addr, .. } => *addr,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://{SERVICE_NAME}:{}{path}", self.addr().port())
    }

    pub(crate) fn pid(&self) -> u32 {
        match self {
            Served::Pullcheck(server) => server.child.id(),
            Served::Responder { child, .. } => child.id(),
        }
    }

    pub(crate) fn log(&self) -> String {
        match self {
            Served::Pullcheck(server) => server.log(),
            Served::Responder { log, .. } => std::fs::read_to_string(log).unwrap_or_default(),
        }
    }
}

/// An HTTP/2 client over TLS trusting `ca` for the webhook's service name: one client, one
/// connection.
pub(crate) fn h2_client(ca: &str, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca.as_bytes()).expect("CA"))
        .resolve(SERVICE_NAME, addr)
        .http2_prior_knowledge()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// CPU time (user + system) of a process so far, from /proc/<pid>/stat.
pub(crate) fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after ") ".
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// VmRSS of a process in KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
