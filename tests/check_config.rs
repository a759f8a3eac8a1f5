//! `check --config` reads the webhook's file and decides as the webhook does: the same
//! objects through `pullcheck check` and through `pullcheck serve` with that file, their
//! verdicts, actions and words compared, against real registries reached only through the
//! file's settings (plain HTTP, a CA file, node credentials). And the one writer: one JSON
//! schema for every line, transient findings `WARN` unless `--strict`, GitHub's escaping.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Output};

use serde_json::{json, Value};
use support::apiserver::FakeApiServer;
use support::serve::{review_of, Options, Server};
use support::{Auth, RegistryOptions, TestRegistry};

/// `pullcheck ARGS`, with none of the environment's pullcheck variables.
fn pullcheck(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pullcheck"));
    cmd.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("PULLCHECK_") {
            cmd.env_remove(name);
        }
    }
    cmd.output().expect("pullcheck runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

const AMD64: &str = r#"{"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}"#;

/// A Pod on amd64 nodes (the `--platform` of `check`, the constraint in the cluster).
fn pod(namespace: &str, name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "nodeSelector": serde_json::from_str::<Value>(AMD64).unwrap(),
            "containers": [{"name": "c", "image": image}],
        },
    })
}

/// A loopback port where nothing listens.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("127.0.0.1:{port}")
}

/// The objects, one per rule of the file, and what both must find (verdict → action).
fn objects(
    public: &str,
    private: &str,
    down: &str,
) -> Vec<(Value, &'static [(&'static str, &'static str)])> {
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "team-a"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "nodeSelector": serde_json::from_str::<Value>(AMD64).unwrap(),
                    "containers": [
                        {"name": "web", "image": format!("{public}/team/web:1.0")},
                        {"name": "typo", "image": format!("{public}/team/web:1.2")},
                    ],
                },
            },
        },
    });
    let mut owned = pod("team-a", "web-1-abcde", &format!("{public}/team/web:1.2"));
    owned["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u-1",
        "controller": true,
    }]);
    vec![
        (deployment, &[("ok", ""), ("tag_not_found", "deny")]),
        // denyHosts: transient, warned.
        (
            pod("team-a", "blocked", "blocked.example/app:1"),
            &[("blocked", "warn")],
        ),
        // actions: {unavailable: deny}.
        (
            pod("team-a", "down", &format!("{down}/app:1")),
            &[("unavailable", "deny")],
        ),
        // exemptNamespaces.
        (
            pod("sandbox-1", "typo", &format!("{public}/team/web:1.2")),
            &[("skipped", "")],
        ),
        // exemptImages.
        (
            pod("team-a", "exempt", &format!("{public}/exempt/app:nope")),
            &[],
        ),
        // controllerOwnedPods: audit.
        (owned, &[("tag_not_found", "audit")]),
        // registries: caFile and nodeCredentials (anonymous is refused; nodes pull).
        (
            pod("team-a", "private", &format!("{private}/private/app:v1")),
            &[("ok", "")],
        ),
        (
            pod("team-a", "arm", &format!("{public}/tools/armonly:v1")),
            &[("platform_mismatch", "deny")],
        ),
    ]
}

/// What the webhook's answer and `check`'s lines for one object say alike: allowed exactly
/// when no line denies; the denial lists exactly the denied lines' words; the warnings are
/// exactly the warned lines' words (as the API server gets them, at most 256 bytes); the
/// audit annotation names exactly the classes found; a skip says the same why.
fn agree(name: &str, lines: &[&Value], resp: &Value) {
    let with = |action: &'static str| {
        lines
            .iter()
            .filter(move |l| l["action"] == action)
            .map(|l| l["message"].as_str().unwrap().to_string())
    };
    let denied: Vec<String> = with("deny").collect();
    assert_eq!(
        resp["allowed"],
        denied.is_empty(),
        "{name}: {resp}\n{lines:?}"
    );
    let message = resp["status"]["message"].as_str().unwrap_or_default();
    assert_eq!(
        message.matches("\n- ").count(),
        denied.len(),
        "{name}: {message}"
    );
    for d in &denied {
        assert!(
            message.contains(&format!("\n- {d}")),
            "{name}: {message}\nvs {d}"
        );
    }
    let mut warned: Vec<String> = with("warn")
        .map(|m| pullcheck::text::truncate(&m, 256))
        .collect();
    let mut warnings: Vec<String> = resp["warnings"]
        .as_array()
        .map(|w| w.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    warned.sort();
    warnings.sort();
    assert_eq!(warned, warnings, "{name}");
    let found: BTreeSet<&str> = lines
        .iter()
        .map(|l| l["verdict"].as_str().unwrap())
        .filter(|v| !matches!(*v, "ok" | "note" | "skipped"))
        .collect();
    let annotations = &resp["auditAnnotations"];
    let filed: Vec<Value> = annotations["findings"]
        .as_str()
        .map(|f| serde_json::from_str(f).unwrap())
        .unwrap_or_default();
    let filed: BTreeSet<&str> = filed.iter().map(|f| f["class"].as_str().unwrap()).collect();
    assert_eq!(found, filed, "{name}: {resp}");
    let skipped = lines.iter().find(|l| l["verdict"] == "skipped");
    assert_eq!(
        skipped.map(|l| l["message"].clone()),
        annotations.get("skipped").cloned(),
        "{name}: {resp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_the_webhook_decide_alike_from_one_config_file() {
    let public = TestRegistry::start(RegistryOptions {
        tls: false,
        auth: Auth::None,
    })
    .await;
    let private = TestRegistry::start(RegistryOptions {
        tls: true,
        auth: Auth::Htpasswd,
    })
    .await;
    public
        .push_index("team/web", "1.0", &["linux/amd64", "linux/arm64"], false)
        .await;
    public.push_tags("team/web", &["1.1", "2.0"]).await;
    public
        .push_index("tools/armonly", "v1", &["linux/arm64"], false)
        .await;
    private
        .push_image("private/app", Some("v1"), "linux/amd64")
        .await;
    let (pub_host, priv_host, down) = (public.host(), private.host(), closed_port());
    let config = format!(
        "defaultMode: enforce\n\
         controllerOwnedPods: audit\n\
         exemptNamespaces: [\"sandbox-*\"]\n\
         exemptImages: [\"*/exempt/*\"]\n\
         actions: {{unavailable: deny}}\n\
         registries:\n  \"{pub_host}\": {{plainHttp: true}}\n  \"{priv_host}\": {{caFile: {}, nodeCredentials: true}}\n\
         denyHosts: [blocked.example]\n\
         registryTimeout: 5s\n\
         cache: {{positiveTtl: 1m}}\n\
         deadline: {{cap: 9s}}\n\
         server: {{idleTimeout: 30s}}\n",
        private.ca_path().unwrap().display()
    );
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("pullcheck.yaml");
    std::fs::write(&config_path, &config).unwrap();
    let cases = objects(&pub_host, &priv_host, &down);
    let manifests = dir.path().join("rendered.yaml");
    let stream: Vec<String> = cases
        .iter()
        .map(|(o, _)| serde_json::to_string_pretty(o).unwrap())
        .collect();
    // JSON documents in a YAML stream, as `helm template` might print them.
    std::fs::write(&manifests, format!("---\n{}\n", stream.join("\n---\n"))).unwrap();

    // The webhook: the same file, a cluster without Secrets; registries only as filed.
    let api = FakeApiServer::start().await;
    let server = Server::start(Options {
        config: config.clone(),
        api: Some(&api),
        ..Options::default()
    })
    .await;

    let (cfg, m) = (config_path.to_str().unwrap(), manifests.to_str().unwrap());
    for (route, flags) in [
        ("/validate", &[][..]),
        ("/validate/warn", &["--default-mode", "warn"][..]),
    ] {
        let mut args = vec!["check", "--config", cfg, "--format", "json", m];
        args.extend_from_slice(flags);
        let out = pullcheck(&args);
        let lines = json_lines(&out);
        assert!(
            stderr(&out).contains("deadline, server apply to `pullcheck serve` only")
                || stderr(&out).contains("server, deadline apply to `pullcheck serve` only"),
            "{}",
            stderr(&out)
        );
        let warn_mode = route.ends_with("warn");
        assert_eq!(
            out.status.code(),
            Some(if warn_mode { 0 } else { 1 }),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        for (i, (object, expected)) in cases.iter().enumerate() {
            let name = object["metadata"]["name"].as_str().unwrap();
            let of: Vec<&Value> = lines
                .iter()
                .filter(|l| l["object"]["name"] == name)
                .collect();
            // What the file makes of it, said the same way by both.
            let got: Vec<(&str, &str)> = of
                .iter()
                .map(|l| {
                    (
                        l["verdict"].as_str().unwrap(),
                        l["action"].as_str().unwrap_or(""),
                    )
                })
                .collect();
            let want: Vec<(&str, &str)> = expected
                .iter()
                .map(|&(v, a)| match (warn_mode, a) {
                    (true, "deny") => (v, "warn"),
                    _ => (v, a),
                })
                .collect();
            assert_eq!(got, want, "{name} ({route}): {of:?}");
            let (resp, _) = server
                .review(route, "10s", &review_of(&format!("u-{i}"), object))
                .await;
            agree(name, &of, &resp);
        }
        let private_line = lines
            .iter()
            .find(|l| l["object"]["name"] == "private")
            .unwrap();
        assert!(
            private_line["notes"][0]
                .as_str()
                .unwrap()
                .contains("with their own credentials"),
            "{private_line}"
        );
    }
    drop(server);
}

/// A transient finding that does not fail the run is `WARN` / `::warning` /
/// `"action": "warn"`, on the `--image` path and the manifest path alike; `--strict`
/// makes it fail, and then it is `FAIL` / `::error` / `"deny"`. (The `--image` text said
/// `FAIL` for every finding before the one writer.)
#[test]
fn transient_findings_warn_unless_strict_in_every_format() {
    let down = format!("{}/app:1", closed_port());
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pod.yaml");
    std::fs::write(
        &manifest,
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: {down}\n"),
    )
    .unwrap();
    let m = manifest.to_str().unwrap();
    for strict in [false, true] {
        let run = |format: &str, what: &[&str]| {
            let mut args = vec!["check", "--format", format];
            args.extend_from_slice(what);
            if strict {
                args.push("--strict");
            }
            let out = pullcheck(&args);
            assert_eq!(
                out.status.code(),
                Some(if strict { 1 } else { 0 }),
                "{args:?}"
            );
            stdout(&out)
        };
        for what in [&["--image", &down][..], &[m][..]] {
            let text = run("text", what);
            let finding = text.lines().find(|l| l.contains("[unavailable]")).unwrap();
            let (yes, no) = if strict {
                ("FAIL", "WARN")
            } else {
                ("WARN", "FAIL")
            };
            assert!(
                finding.contains(yes) && !text.contains(no),
                "{what:?}: {text}"
            );
            let gh = run("github", what);
            let (yes, no) = if strict {
                ("::error ", "::warning")
            } else {
                ("::warning ", "::error")
            };
            assert!(gh.starts_with(yes) && !gh.contains(no), "{what:?}: {gh}");
            let json: Value =
                serde_json::from_str(run("json", what).lines().next().unwrap()).unwrap();
            assert_eq!(json["verdict"], "unavailable");
            assert_eq!(json["action"], if strict { "deny" } else { "warn" });
        }
    }
}

/// Every line of `--format json`, whatever its kind and path, has the same keys.
#[test]
fn one_json_schema_for_every_line() {
    const KEYS: [&str; 16] = [
        "action",
        "canonical",
        "container",
        "credential_source",
        "digest",
        "file",
        "hint",
        "image",
        "line",
        "message",
        "missing_platforms",
        "notes",
        "object",
        "platforms",
        "stale_age_seconds",
        "verdict",
    ];
    let down = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        "exemptNamespaces: [skip-me]\nexemptImages: [\"*/exempt:*\"]\n",
    )
    .unwrap();
    let manifest = dir.path().join("m.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  imagePullSecrets: [{{name: broken}}]\n  containers:\n  - {{name: c, image: {down}/app:1}}\n  - {{name: nev, image: x:1, imagePullPolicy: Never}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: broken}}\ntype: kubernetes.io/dockerconfigjson\nstringData: {{.dockerconfigjson: '{{nope'}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: q, namespace: skip-me}}\nspec: {{containers: [{{name: c, image: x:1}}]}}\n---\nkind: [broken\n"
        ),
    )
    .unwrap();
    let out = pullcheck(&[
        "check",
        "--config",
        config.to_str().unwrap(),
        "--format",
        "json",
        "--image",
        &format!("{down}/exempt:1"),
        "--image",
        &format!("{down}/b:1"),
        "--image",
        "Not/Valid",
        manifest.to_str().unwrap(),
        dir.path().join("missing.yaml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let lines = json_lines(&out);
    let mut kinds = BTreeSet::new();
    for l in &lines {
        let keys: Vec<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, KEYS, "{l}");
        kinds.insert(l["verdict"].as_str().unwrap().to_string());
    }
    let want: BTreeSet<String> = [
        "skipped",
        "unavailable",
        "invalid_reference",
        "secret_invalid",
        "note",
        "input_error",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert!(want.is_subset(&kinds), "{kinds:?}\n{lines:?}");
}

/// What the input says reaches GitHub as data and properties escaped by GitHub's rules
/// (`%`, CR, LF; `:` and `,` in properties), and text with its control characters shown
/// as escapes: an object's name cannot end an annotation or start a line of its own.
#[test]
fn input_is_escaped_for_github_and_text() {
    let down = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("a,b:c.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: \"x,y:50%\\n::error::forged\\r\\u001b[2J\"}}\nspec:\n  containers:\n  - {{name: c, image: {down}/app:1}}\n"
        ),
    )
    .unwrap();
    let m = manifest.to_str().unwrap();
    let gh = stdout(&pullcheck(&["check", "--strict", "--format", "github", m]));
    assert_eq!(gh.lines().count(), 1, "{gh}");
    assert!(gh.starts_with("::error file="), "{gh}");
    assert!(gh.contains("a%2Cb%3Ac.yaml,line=6,title="), "{gh}");
    assert!(
        gh.contains("Pod default/x%2Cy%3A50%25%0A%3A%3Aerror%3A%3Aforged%0D\\u{1b}[2J::"),
        "{gh}"
    );
    let text = stdout(&pullcheck(&["check", m]));
    assert!(
        text.contains("  Pod default/x,y:50%\\n::error::forged\\r\\u{1b}[2J (line 1)"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
    assert!(text.lines().all(|l| !l.starts_with("::")), "{text}");
    let json = json_lines(&pullcheck(&["check", "--format", "json", m]));
    assert_eq!(
        json[0]["object"]["name"],
        "x,y:50%\n::error::forged\r\u{1b}[2J"
    );
}
