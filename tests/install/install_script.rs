//! certs/install.sh with the real `pullcheck certs` and a recording stand-in for kubectl

use super::*;

const FAKE_KUBECTL: &str = r#"#!/usr/bin/env bash
# Records every call; answers like a cluster, as told by FAKE_* variables.
printf '%s\n' "$*" >> "$FAKE_LOG"
case "$*" in
  "get namespace "*) [[ -n "${FAKE_HAS_NAMESPACE:-}" ]] ;;
  "create namespace "*) exit 0 ;;
  *"get validatingwebhookconfiguration"*"go-template"*) printf '%s' "${FAKE_WEBHOOKS:-4}" ;;
  "get validatingwebhookconfiguration "*) [[ -n "${FAKE_HAS_VWC:-}" ]] ;;
  *"create secret tls"*) printf 'kind: Secret\nmetadata:\n  name: pullcheck-tls\n' ;;
  "apply "*) cat > "$FAKE_APPLIED" ;;
  "patch "*) shift; while [[ $# -gt 0 ]]; do [[ "$1" == "-p" ]] && printf '%s' "$2" > "$FAKE_PATCH"; shift; done ;;
  *) echo "fake kubectl: unexpected call: $*" >&2; exit 3 ;;
esac
"#;

struct FakeCluster {
    tmp: tempfile::TempDir,
}

impl FakeCluster {
    fn new() -> FakeCluster {
        let tmp = tempfile::tempdir().unwrap();
        let kubectl = tmp.path().join("kubectl");
        std::fs::write(&kubectl, FAKE_KUBECTL).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        FakeCluster { tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn run(&self, dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
        let mut command = Command::new("bash");
        command
            .arg(repo().join("certs/install.sh"))
            .arg(dir)
            .env("KUBECTL", self.path("kubectl"))
            .env("PULLCHECK", env!("CARGO_BIN_EXE_pullcheck"))
            .env("FAKE_LOG", self.path("kubectl.log"))
            .env("FAKE_APPLIED", self.path("applied.yaml"))
            .env("FAKE_PATCH", self.path("patch.json"));
        for (k, v) in env {
            command.env(k, v);
        }
        command
            .output()
            .unwrap_or_else(|e| panic!("bash is needed to run certs/install.sh: {e}"))
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    fn take_patch(&self) -> Value {
        let patch = serde_json::from_str(&self.read("patch.json")).unwrap();
        std::fs::remove_file(self.path("patch.json")).unwrap();
        patch
    }
}

const CLUSTER_READY: [(&str, &str); 3] = [
    ("FAKE_HAS_VWC", "1"),
    ("FAKE_HAS_NAMESPACE", "1"),
    ("FAKE_WEBHOOKS", "4"),
];

fn assert_patch_sets_every_ca_bundle(patch: &Value, ca_pem: &str) {
    use base64::Engine as _;
    let ops = patch.as_array().unwrap();
    assert_eq!(ops.len(), 4, "{patch}");
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    for (i, op) in ops.iter().enumerate() {
        assert_eq!(op["op"], "add");
        assert_eq!(op["path"], format!("/webhooks/{i}/clientConfig/caBundle"));
        assert_eq!(op["value"], bundle.as_str());
    }
}

#[test]
fn install_script_stores_the_secret_patches_every_ca_bundle_and_rotates_in_place() {
    let cluster = FakeCluster::new();
    let dir = cluster.path("certs-out");
    let output = cluster.run(&dir, &CLUSTER_READY);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ca_pem = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
    let tls_pem = std::fs::read_to_string(dir.join("tls.crt")).unwrap();

    let kubectl = cluster.read("kubectl.log");
    assert!(
        kubectl.contains(&format!(
            "-n pullcheck create secret tls pullcheck-tls --cert={0}/tls.crt --key={0}/tls.key --dry-run=client -o yaml",
            dir.display()
        )),
        "{kubectl}"
    );
    assert!(kubectl.contains("apply --server-side"), "{kubectl}");
    assert!(cluster.read("applied.yaml").contains("kind: Secret"));
    assert_patch_sets_every_ca_bundle(&cluster.take_patch(), &ca_pem);

    // Second run: the CA in the directory is reused, only the serving certificate renews,
    // and the caBundle patch carries the same CA.
    let output = cluster.run(&dir, &CLUSTER_READY);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("reusing the CA"));
    assert_eq!(std::fs::read_to_string(dir.join("ca.crt")).unwrap(), ca_pem);
    assert_ne!(
        std::fs::read_to_string(dir.join("tls.crt")).unwrap(),
        tls_pem
    );
    assert_patch_sets_every_ca_bundle(&cluster.take_patch(), &ca_pem);

    // NEW_CA=1 replaces the CA (pullcheck certs --force).
    let mut env = CLUSTER_READY.to_vec();
    env.push(("NEW_CA", "1"));
    let output = cluster.run(&dir, &env);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let new_ca = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
    assert_ne!(new_ca, ca_pem);
    assert_patch_sets_every_ca_bundle(&cluster.take_patch(), &new_ca);
}

#[test]
fn install_script_creates_the_namespace_and_fails_without_the_webhook_configuration() {
    let cluster = FakeCluster::new();
    let output = cluster.run(&cluster.path("out"), &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not found"), "{stderr}");
    let kubectl = cluster.read("kubectl.log");
    assert!(kubectl.contains("create namespace pullcheck"), "{kubectl}");
    // The Secret is stored even so: the pods can start.
    assert!(
        kubectl.contains("create secret tls pullcheck-tls"),
        "{kubectl}"
    );
    assert!(!kubectl.contains("patch "), "{kubectl}");
}

#[test]
fn install_script_stops_when_pullcheck_certs_fails() {
    let cluster = FakeCluster::new();
    let mut env = CLUSTER_READY.to_vec();
    env.push(("SERVICE", "Not_A_Label"));
    let output = cluster.run(&cluster.path("out"), &env);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid service name"), "{stderr}");
    assert!(
        cluster.read("kubectl.log").is_empty(),
        "kubectl must not run"
    );
}
