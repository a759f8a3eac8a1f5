//! Environment: registry, API server, binaries, certificates

use super::*;

pub(crate) struct Env {
    pub(crate) reg: TestRegistry,
    pub(crate) api: FakeApiServer,
    pub(crate) dir: tempfile::TempDir,
    /// The CA and the serving certificate of both servers, and its files.
    pub(crate) certificates: (Pem, Pem),
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    /// A docker config.json with alice's credentials for the registry.
    pub(crate) docker_config: PathBuf,
}

impl Env {
    pub(crate) async fn start() -> Env {
        check_binaries();
        let reg = TestRegistry::start(RegistryOptions {
            tls: true,
            auth: Auth::Token,
        })
        .await;
        let api = FakeApiServer::start().await;
        api.put_node("node-amd64", "linux", "amd64");
        api.put_node("node-arm64", "linux", "arm64");
        let dir = tempfile::tempdir().expect("temp dir");
        let certificates = pullcheck::webhook::certs::generate("pullcheck", "pullcheck", 30)
            .expect("certificates");
        let serving = &certificates.1;
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, &serving.cert).expect("write cert");
        std::fs::write(&key, &serving.key).expect("write key");
        let docker_config = dir.path().join("config.json");
        std::fs::write(&docker_config, dockerconfig(&reg.host(), ALICE.0, ALICE.1))
            .expect("write docker config");
        Env {
            reg,
            api,
            dir,
            certificates,
            cert,
            key,
            docker_config,
        }
    }

    /// A namespace whose `default` ServiceAccount lists a pull secret with alice's
    /// credentials for `host`.
    pub(crate) fn tenant(&self, namespace: &str, host: &str) {
        let cfg = dockerconfig(host, ALICE.0, ALICE.1);
        self.api.put_secret(
            namespace,
            "regcred",
            DOCKERCONFIGJSON,
            &[(".dockerconfigjson", &cfg)],
        );
        self.api
            .put_service_account(namespace, "default", &["regcred"]);
    }
}

pub(crate) fn pullcheck_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pullcheck"))
}

pub(crate) fn responder_bin() -> PathBuf {
    pullcheck_bin()
        .parent()
        .expect("target dir")
        .join("examples/minimal_responder")
}

pub(crate) fn check_binaries() {
    let responder = responder_bin();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/minimal_responder.rs");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = match (modified(&responder), modified(&source)) {
        (Some(built), Some(src)) => built < src,
        _ => true,
    };
    if stale {
        eprintln!(
            "\n{} is missing or older than its source: build it first:\n  cargo build --release --example minimal_responder && cargo bench --bench admission\n",
            responder.display()
        );
        std::process::exit(2);
    }
    if !cfg!(debug_assertions) {
        return;
    }
    eprintln!("note: built without optimizations; run with `cargo bench` for real figures");
}
