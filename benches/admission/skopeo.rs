//! 5. skopeo inspect loop vs pullcheck check

use super::*;

pub(crate) struct Versus {
    pub(crate) images: usize,
    pub(crate) skopeo_version: String,
    /// (what, wall, counts, ok)
    pub(crate) rows: Vec<(String, Duration, Counts, bool)>,
}

pub(crate) async fn skopeo(env: &Env, report: &mut Report) {
    eprintln!("== skopeo inspect loop vs pullcheck check, 50 images");
    let version = match Command::new("skopeo").arg("--version").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => {
            eprintln!("   skopeo not installed (apt-get install -y skopeo): section skipped");
            return;
        }
    };
    let host = env.reg.host();
    const N: usize = 50;
    let repos: Vec<String> = (0..N)
        .map(|i| format!("private/fleet/svc-{i:02}"))
        .collect();
    for chunk in repos.chunks(10) {
        futures::future::join_all(chunk.iter().map(|r| {
            env.reg
                .push_index(r, "1", &["linux/amd64", "linux/arm64"], false)
        }))
        .await;
    }
    let images: Vec<String> = repos.iter().map(|r| format!("{host}/{r}:1")).collect();
    // skopeo trusts the registry's CA from a certificate directory.
    let cert_dir = env.dir.path().join("skopeo-certs");
    std::fs::create_dir_all(&cert_dir).expect("cert dir");
    std::fs::copy(env.reg.ca_path().expect("CA"), cert_dir.join("ca.crt")).expect("copy CA");
    let creds = format!("{}:{}", ALICE.0, ALICE.1);
    let mut rows = Vec::new();

    for raw in [false, true] {
        env.reg.clear_requests().await;
        let started = Instant::now();
        let mut ok = true;
        for image in &images {
            let mut cmd = Command::new("skopeo");
            cmd.arg("inspect");
            if raw {
                cmd.arg("--raw");
            }
            let out = cmd
                .arg("--creds")
                .arg(&creds)
                .arg("--cert-dir")
                .arg(&cert_dir)
                .arg(format!("docker://{image}"))
                .env("HOME", env.dir.path())
                .output()
                .expect("run skopeo");
            if !out.status.success() {
                ok = false;
                eprintln!(
                    "   skopeo inspect {image}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        let wall = started.elapsed();
        let c = counts(&env.reg).await;
        let what = if raw {
            "`skopeo inspect --raw` loop"
        } else {
            "`skopeo inspect` loop"
        };
        eprintln!(
            "   {what}: {} — registry requests {}",
            ms(wall),
            c.describe()
        );
        rows.push((what.to_string(), wall, c, ok));
    }

    env.reg.clear_requests().await;
    let mut cmd = Command::new(pullcheck_bin());
    cmd.arg("check")
        .arg("--format")
        .arg("json")
        .arg("--docker-config")
        .arg(&env.docker_config)
        .arg("--registry-ca")
        .arg(format!(
            "{host}={}",
            env.reg.ca_path().expect("CA").display()
        ));
    for image in &images {
        cmd.arg("--image").arg(image);
    }
    let started = Instant::now();
    let out = cmd.output().expect("run pullcheck check");
    let wall = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ok = out.status.success()
        && stdout
            .lines()
            .filter(|l| l.contains("\"verdict\":\"ok\""))
            .count()
            == N;
    if !ok {
        eprintln!(
            "   pullcheck check: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let c = counts(&env.reg).await;
    eprintln!(
        "   pullcheck check: {} — registry requests {}",
        ms(wall),
        c.describe()
    );
    rows.push((
        "`pullcheck check --image …` ×50 (one process)".to_string(),
        wall,
        c,
        ok,
    ));
    report.versus = Some(Versus {
        images: N,
        skopeo_version: version,
        rows,
    });
}
