//! Writes a `kind: List` of N Pods to standard output, in `kubectl get -o yaml` order
//! (`items` before `kind`), as YAML or JSON (one item per line), for measuring
//! `pullcheck check` on large inputs (README, Performance; tests/ci.rs uses it too):
//!
//! ```sh
//! cargo run --release --example big_list -- 100000 yaml 127.0.0.1:9 > pods.yaml
//! /usr/bin/time -v target/release/pullcheck check --plain-http 127.0.0.1:9 pods.yaml
//! ```
//!
//! Each Pod has two containers: `REGISTRY/team-T/app-A:v1.2.3` (100 distinct images) and
//! `REGISTRY/infra/proxy:1.4`. 100,000 Pods are ~58 MB of YAML.

use std::io::Write;

/// The List of `pods` Pods whose images are on `registry`.
pub fn big_list(pods: usize, json: bool, registry: &str) -> String {
    let mut out = String::with_capacity(pods * 600);
    out.push_str(if json {
        "{\"apiVersion\": \"v1\", \"items\": [\n"
    } else {
        "apiVersion: v1\nitems:\n"
    });
    for i in 0..pods {
        let team = i % 10;
        let app = i % 100;
        if json {
            out.push_str(&format!(
                concat!(
                    "{{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {{\"name\": \"pod-{i:06}\", ",
                    "\"namespace\": \"team-{team}\", \"labels\": {{\"app\": \"app-{app}\", \"tier\": \"backend\"}}, ",
                    "\"annotations\": {{\"example.com/owner\": \"team-{team}\"}}}}, \"spec\": {{\"containers\": [",
                    "{{\"name\": \"app\", \"image\": \"{registry}/team-{team}/app-{app}:v1.2.3\", ",
                    "\"imagePullPolicy\": \"IfNotPresent\", \"env\": [{{\"name\": \"LOG_LEVEL\", \"value\": \"info\"}}], ",
                    "\"ports\": [{{\"containerPort\": 8080}}], ",
                    "\"resources\": {{\"requests\": {{\"cpu\": \"100m\", \"memory\": \"128Mi\"}}}}}}, ",
                    "{{\"name\": \"proxy\", \"image\": \"{registry}/infra/proxy:1.4\"}}], \"restartPolicy\": \"Always\"}}}}{comma}\n"
                ),
                i = i,
                team = team,
                app = app,
                registry = registry,
                comma = if i + 1 < pods { "," } else { "" },
            ));
        } else {
            out.push_str(&format!(
                concat!(
                    "- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: pod-{i:06}\n",
                    "    namespace: team-{team}\n    labels:\n      app: app-{app}\n",
                    "      tier: backend\n    annotations:\n      example.com/owner: team-{team}\n",
                    "  spec:\n    containers:\n    - name: app\n",
                    "      image: {registry}/team-{team}/app-{app}:v1.2.3\n",
                    "      imagePullPolicy: IfNotPresent\n      env:\n      - name: LOG_LEVEL\n        value: info\n",
                    "      ports:\n      - containerPort: 8080\n      resources:\n",
                    "        requests:\n          cpu: 100m\n          memory: 128Mi\n",
                    "    - name: proxy\n      image: {registry}/infra/proxy:1.4\n    restartPolicy: Always\n",
                ),
                i = i,
                team = team,
                app = app,
                registry = registry,
            ));
        }
    }
    out.push_str(if json {
        "], \"kind\": \"List\", \"metadata\": {}}\n"
    } else {
        "kind: List\nmetadata: {}\n"
    });
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pods = args.first().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let json = args.get(1).is_some_and(|f| f == "json");
    let registry = args.get(2).map_or("127.0.0.1:9", String::as_str);
    let text = big_list(pods, json, registry);
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .expect("stdout");
}
