//! AdmissionReview in, AdmissionResponse out: an [`AdmissionRequest`] becomes a
//! [`Subject`] (what cannot change a pull — other kinds, DELETE, other subresources — is
//! allowed at once; owned Pods, UPDATE diffs and `pods/ephemeralcontainers` are told to the
//! engine), the engine's [`Evaluation`] becomes the answer: allowed or denied, warnings,
//! audit annotations (`images` with their digests, `findings`, `advice`, `mode`, `notes`).

use kube::core::admission::Operation;
use serde::Serialize;
use tokio::time::Instant;

use crate::engine::policy::{self, Decision, Mode};
use crate::engine::{Engine, Evaluation, FindingClass, Subject};
use crate::kubelet::workload::{self, WorkloadKind};
use crate::text::truncate;

use super::wire::{Answer, RequestIn};

/// A response with the labels of its decision, for metrics and logs.
pub struct Reviewed {
    pub response: Answer,
    /// `allowed`, `denied`, `warned`, `skipped`.
    pub decision: &'static str,
    pub mode: Mode,
}

/// Answers one request. `route_mode`: the mode of the path, `None` for `/validate`.
pub async fn review(
    engine: &Engine,
    req: &RequestIn<'_>,
    route_mode: Option<Mode>,
    deadline: Instant,
) -> Reviewed {
    let mode = route_mode.unwrap_or(engine.settings.default_mode);
    let mut response = Answer::allow(req);
    let skip = |response: Answer, mode| Reviewed {
        response,
        decision: "skipped",
        mode,
    };
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return skip(response, mode);
    }
    let Some(kind) = WorkloadKind::from_group_kind(&req.kind.group, &req.kind.kind) else {
        return skip(response, mode);
    };
    let ephemeral = req.sub_resource.as_deref() == Some("ephemeralcontainers");
    if req.sub_resource.is_some() && !ephemeral {
        return skip(response, mode);
    }
    // Only what decides pulls is read from the object's text (see `wire`).
    let decode = |o: &&serde_json::value::RawValue| workload::decode_raw(kind, o.get());
    let Some(workload) = req.object.as_ref().map(decode) else {
        return skip(response, mode);
    };
    let old = match req.operation {
        Operation::Update => req.old_object.as_ref().map(decode).and_then(Result::ok),
        _ => None,
    };
    let namespace = req.namespace.clone().unwrap_or_default();
    let subject = Subject {
        kind,
        namespace: &namespace,
        name: display_name(req, workload.as_ref().ok()),
        workload,
        old,
        ephemeral,
        service_account_rule: kind.is_template(),
    };
    let evaluation = engine.evaluate(&subject, mode, deadline).await;
    if let Some(why) = &evaluation.skipped {
        response
            .audit_annotations
            .insert("skipped".into(), why.clone());
        if evaluation.advisories.is_empty() {
            return skip(response, evaluation.mode);
        }
    }
    let decision = finish(engine, &mut response, &evaluation);
    Reviewed {
        response,
        decision,
        mode: evaluation.mode,
    }
}

/// Fills the response: decision, warnings, audit annotations. Returns the decision label.
fn finish(engine: &Engine, response: &mut Answer, ev: &Evaluation) -> &'static str {
    let Decision { deny, mut warnings } = ev.decision(&engine.settings.actions);
    if ev.mode != Mode::Audit {
        warnings.extend(
            ev.advisories
                .iter()
                .map(|a| truncate(a, policy::WARNING_LIMIT)),
        );
        warnings.truncate(policy::MAX_WARNINGS);
    }
    #[derive(Serialize)]
    struct Resolved<'a> {
        image: &'a str,
        digest: Option<&'a str>,
    }
    let resolved: Vec<Resolved<'_>> = ev
        .checks
        .iter()
        .map(|c| Resolved {
            image: &c.image,
            digest: c.resolved.as_ref().map(|r| r.digest.as_str()),
        })
        .collect();
    let annotations = &mut response.audit_annotations;
    annotations.insert("mode".into(), ev.mode.as_str().into());
    if !resolved.is_empty() {
        if let Ok(v) = serde_json::to_string(&resolved) {
            annotations.insert("images".into(), v);
        }
    }
    if !ev.findings.is_empty() {
        #[derive(Serialize)]
        struct F<'a> {
            place: &'a str,
            image: &'a str,
            class: FindingClass,
            message: &'a str,
        }
        let list: Vec<F<'_>> = ev
            .findings
            .iter()
            .map(|l| F {
                place: &l.place,
                image: &l.image,
                class: l.finding.class,
                message: &l.finding.message,
            })
            .collect();
        if let Ok(v) = serde_json::to_string(&list) {
            annotations.insert("findings".into(), v);
        }
    }
    if !ev.advice.is_empty() {
        #[derive(Serialize)]
        struct A<'a> {
            place: &'a str,
            image: &'a str,
            class: crate::engine::AdviceClass,
            message: &'a str,
        }
        let list: Vec<A<'_>> = ev
            .advice
            .iter()
            .map(|a| A {
                place: &a.place,
                image: &a.image,
                class: a.class,
                message: &a.message,
            })
            .collect();
        if let Ok(v) = serde_json::to_string(&list) {
            annotations.insert("advice".into(), v);
        }
    }
    if !ev.advisories.is_empty() {
        annotations.insert("notes".into(), ev.advisories.join("\n"));
    }
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    match deny {
        Some(message) => {
            response.allowed = false;
            response.result.message = message;
            response.result.code = 403;
            response.result.reason = "Forbidden".into();
            "denied"
        }
        None if response.warnings.is_some() => "warned",
        None => "allowed",
    }
}

/// The request's name; for an object named by `generateName` (not yet named when
/// admitted), that prefix and `*`.
fn display_name(req: &RequestIn<'_>, workload: Option<&workload::Workload>) -> String {
    if !req.name.is_empty() {
        return req.name.clone();
    }
    match workload {
        Some(w) if !w.name.is_empty() => format!("{}*", w.name),
        _ => "<unnamed>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Cluster, ClusterError, InMemoryCluster, SecretData};
    use crate::config::assemble::{self, ClusterWiring, Wiring};
    use crate::config::EngineConfig;
    use crate::engine::Settings;
    use crate::kubelet::credentials::Credential;
    use crate::kubelet::{ImageRef, Platform};
    use crate::metrics::Metrics;
    use crate::registry::{AuthProblem, ImagePlatforms, Registry, RegistryError, Resolved};
    use crate::webhook::wire::ReviewIn;
    use async_trait::async_trait;
    use std::sync::Arc;
    use std::time::Duration;

    /// A registry where `private/…` needs the user "alice" and everything else is public.
    struct Fake;

    #[async_trait]
    impl Registry for Fake {
        async fn resolve(
            &self,
            image: &ImageRef,
            credential: Option<&Credential>,
        ) -> Result<Resolved, RegistryError> {
            if image.path().starts_with("private/")
                && credential.is_none_or(|c| c.username() != "alice")
            {
                return Err(RegistryError::Unauthorized {
                    registry: image.domain().into(),
                    repository: image.path().into(),
                    problem: if credential.is_some() {
                        AuthProblem::CredentialsRefused
                    } else {
                        AuthProblem::NoCredentials
                    },
                });
            }
            if image.tag() == Some("missing") {
                return Err(RegistryError::TagNotFound {
                    registry: image.domain().into(),
                    repository: image.path().into(),
                    tag: "missing".into(),
                    closest: vec!["1.0".into()],
                });
            }
            Ok(Resolved {
                digest: format!("sha256:{}", "0".repeat(64)),
                platforms: Arc::new(ImagePlatforms {
                    is_index: true,
                    platforms: vec![Platform::new("linux", "amd64", None)],
                    ..ImagePlatforms::default()
                }),
            })
        }
    }

    async fn engine(cluster: Arc<dyn Cluster>) -> Arc<Engine> {
        engine_with(cluster, Settings::default()).await
    }

    /// The engine over [`Fake`], in enforce mode by default.
    async fn engine_with(cluster: Arc<dyn Cluster>, settings: Settings) -> Arc<Engine> {
        let config = EngineConfig {
            settings: Settings {
                default_mode: Mode::Enforce,
                ..settings
            },
            ..EngineConfig::default()
        };
        let wiring = Wiring::new(ClusterWiring::Given(cluster), Arc::new(Metrics::default()))
            .with_registry(Arc::new(Fake));
        assemble::engine(&config, wiring)
            .await
            .expect("engine")
            .engine
    }

    /// A CREATE of `object` in namespace "ns", as the API server sends it.
    fn create_review(group: &str, resource: &str, object: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {"group": group, "version": "v1", "kind": object["kind"]},
                "resource": {"group": group, "version": "v1", "resource": resource},
                "name": object["metadata"]["name"],
                "namespace": "ns",
                "operation": "CREATE",
                "userInfo": {},
                "object": object,
            }
        }))
        .unwrap()
    }

    fn pod_review(image: &str, secrets: &[&str]) -> Vec<u8> {
        let secrets: Vec<_> = secrets
            .iter()
            .map(|s| serde_json::json!({"name": s}))
            .collect();
        create_review(
            "",
            "pods",
            serde_json::json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "namespace": "ns"},
                "spec": {
                    "containers": [{"name": "c", "image": image}],
                    "imagePullSecrets": secrets,
                }
            }),
        )
    }

    async fn review(w: &Engine, body: &[u8]) -> Answer {
        let deadline = Instant::now() + Duration::from_secs(5);
        let review = ReviewIn::decode(body).expect("a review");
        let request = review.request.as_ref().expect("a request");
        super::review(w, request, None, deadline).await.response
    }

    #[tokio::test]
    async fn missing_secret_is_named_when_the_image_needs_it() {
        let cluster = Arc::new(InMemoryCluster::new());
        let w = engine(cluster.clone()).await;
        let resp = review(&w, &pod_review("r.example/private/app:1", &["later"])).await;
        assert!(!resp.allowed);
        assert!(
            resp.result.message.contains("\"later\" does not exist"),
            "{}",
            resp.result.message
        );

        // Public image: a missing secret is only a warning.
        let resp = review(&w, &pod_review("r.example/public/app:1", &["later"])).await;
        assert!(resp.allowed);
        assert!(resp.warnings.unwrap()[0].contains("\"later\""));

        cluster.put_secret(
            "ns",
            "later",
            SecretData::for_registry("r.example", "alice", "pw"),
        );
        let resp = review(&w, &pod_review("r.example/private/app:1", &["later"])).await;
        assert!(resp.allowed, "{}", resp.result.message);
    }

    /// A cluster whose answers hold for an hour, as long as they are still the ones the
    /// caller read; it counts reads, and can change a Secret right after it was read (as a
    /// cache refresh racing a review would).
    struct Promising {
        inner: InMemoryCluster,
        reads: std::sync::atomic::AtomicUsize,
        change_after_read: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl Cluster for Promising {
        async fn secret(
            &self,
            namespace: &str,
            name: &str,
        ) -> Result<Option<Arc<SecretData>>, ClusterError> {
            use std::sync::atomic::Ordering::SeqCst;
            self.reads.fetch_add(1, SeqCst);
            let read = self.inner.secret(namespace, name).await;
            if self.change_after_read.swap(false, SeqCst) {
                let alice = SecretData::for_registry("r.example", "alice", "pw");
                self.inner.put_secret(namespace, name, alice);
            }
            read
        }

        async fn service_account_pull_secrets(
            &self,
            namespace: &str,
            name: &str,
        ) -> Result<Option<Vec<String>>, ClusterError> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner
                .service_account_pull_secrets(namespace, name)
                .await
        }

        async fn pull_secrets_in(
            &self,
            namespace: &str,
        ) -> Result<Vec<(String, SecretData)>, ClusterError> {
            self.inner.pull_secrets_in(namespace).await
        }

        fn node_platforms(&self) -> Option<Vec<Platform>> {
            self.inner.node_platforms()
        }

        fn available(&self) -> bool {
            true
        }

        async fn answers_hold_until(
            &self,
            namespace: &str,
            service_account: Option<(&str, Option<&[String]>)>,
            secrets: &[(String, Option<Arc<SecretData>>)],
        ) -> Option<std::time::Instant> {
            if let Some((sa, names)) = service_account {
                let now = self.inner.service_account_pull_secrets(namespace, sa).await;
                if now.ok()?.as_deref() != names {
                    return None;
                }
            }
            for (name, read) in secrets {
                if self.inner.secret(namespace, name).await.ok()? != *read {
                    return None;
                }
            }
            Some(std::time::Instant::now() + Duration::from_secs(3600))
        }
    }

    fn deployment_review(image: &str, service_account: &str) -> Vec<u8> {
        create_review(
            "apps",
            "deployments",
            serde_json::json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "d", "namespace": "ns"},
                "spec": {"template": {"spec": {
                    "serviceAccountName": service_account,
                    "containers": [{"name": "c", "image": image}],
                }}}
            }),
        )
    }

    /// A Pod's secret set is reused without a cluster read while the cluster promises the
    /// same answers, and not at all when an answer changed between the read and the promise.
    #[tokio::test]
    async fn secret_sets_are_reused_while_the_cluster_answers_hold() {
        use std::sync::atomic::Ordering::SeqCst;
        let cluster = Arc::new(Promising {
            inner: InMemoryCluster::new(),
            reads: Default::default(),
            change_after_read: Default::default(),
        });
        let bob = SecretData::for_registry("r.example", "bob", "pw");
        cluster.inner.put_secret("ns", "regcred", bob);
        cluster
            .inner
            .put_service_account("ns", "builder", &["regcred"]);
        let w = engine(cluster.clone()).await;
        let pod = pod_review("r.example/private/app:1", &["regcred"]);

        assert!(!review(&w, &pod).await.allowed, "bob is refused");
        assert_eq!(cluster.reads.load(SeqCst), 1);
        assert!(!review(&w, &pod).await.allowed);
        assert_eq!(cluster.reads.load(SeqCst), 1, "reused: no read");

        // Templates: the ServiceAccount and its Secret, read once.
        let deployment = deployment_review("r.example/private/app:1", "builder");
        assert!(!review(&w, &deployment).await.allowed);
        assert_eq!(cluster.reads.load(SeqCst), 3);
        assert!(!review(&w, &deployment).await.allowed);
        assert_eq!(cluster.reads.load(SeqCst), 3, "reused: no read");

        // A Secret that changes right after it is read: what was read is not promised, so
        // the next review reads again and sees the new contents.
        let other = pod_review("r.example/private/app:1", &["regcred", "absent"]);
        cluster.change_after_read.store(true, SeqCst);
        assert!(!review(&w, &other).await.allowed, "bob, as read");
        assert_eq!(cluster.reads.load(SeqCst), 5);
        let resp = review(&w, &other).await;
        assert!(resp.allowed, "alice: {}", resp.result.message);
        assert_eq!(cluster.reads.load(SeqCst), 7, "read again");
        assert!(review(&w, &other).await.allowed);
        assert_eq!(cluster.reads.load(SeqCst), 7, "now reused");
    }

    #[tokio::test]
    async fn changed_secrets_are_read_again() {
        let cluster = Arc::new(InMemoryCluster::new());
        let w = engine(cluster.clone()).await;
        let image = "r.example/private/app:1";
        let put = |user: &str| {
            cluster.put_secret(
                "ns",
                "regcred",
                SecretData::for_registry("r.example", user, "pw"),
            )
        };
        put("bob");
        let denied = review(&w, &pod_review(image, &["regcred"])).await;
        assert!(!denied.allowed);
        put("alice");
        let allowed = review(&w, &pod_review(image, &["regcred"])).await;
        assert!(allowed.allowed, "{}", allowed.result.message);
        // Same contents under a new object: still the parsed keyring of before.
        put("alice");
        assert!(review(&w, &pod_review(image, &["regcred"])).await.allowed);
        put("bob");
        assert!(!review(&w, &pod_review(image, &["regcred"])).await.allowed);
        cluster.delete_secret("ns", "regcred");
        let missing = review(&w, &pod_review(image, &["regcred"])).await;
        assert!(
            missing.result.message.contains("does not exist"),
            "{}",
            missing.result.message
        );
    }

    #[tokio::test]
    async fn unattached_secret_is_suggested() {
        let cluster = Arc::new(InMemoryCluster::new());
        cluster.put_secret(
            "ns",
            "team-registry",
            SecretData::for_registry("r.example", "alice", "pw"),
        );
        cluster.put_secret(
            "ns",
            "other",
            SecretData::for_registry("elsewhere.example", "alice", "pw"),
        );
        let w = engine(cluster).await;
        let resp = review(&w, &pod_review("r.example/private/app:1", &[])).await;
        assert!(!resp.allowed);
        let m = &resp.result.message;
        assert!(
            m.contains("imagePullSecrets: [{name: team-registry}]") && !m.contains("other"),
            "{m}"
        );
    }

    #[tokio::test]
    async fn cluster_outage_turns_auth_findings_transient() {
        let cluster = Arc::new(InMemoryCluster::new());
        cluster.fail_with(Some(crate::cluster::ClusterError::Unavailable {
            detail: "connection refused".into(),
        }));
        let w = engine(cluster).await;
        let resp = review(&w, &pod_review("r.example/private/app:1", &["regcred"])).await;
        assert!(resp.allowed, "{}", resp.result.message);
        assert!(resp.warnings.unwrap()[0].contains("could not read the pull secrets"));
    }

    #[tokio::test]
    async fn image_exemptions_and_audit_annotations() {
        let cluster = Arc::new(InMemoryCluster::new());
        let w = engine(cluster.clone()).await;
        let resp = review(&w, &pod_review("r.example/public/app:missing", &[])).await;
        assert!(!resp.allowed);
        assert!(resp.audit_annotations["findings"].contains("tag_not_found"));
        assert_eq!(resp.audit_annotations["mode"], "enforce");
        let exempt = Settings {
            exempt_images: vec!["r.example/public/*".into()],
            ..Settings::default()
        };
        let w = engine_with(cluster, exempt).await;
        let resp = review(&w, &pod_review("r.example/public/app:missing", &[])).await;
        assert!(resp.allowed);
    }
}
