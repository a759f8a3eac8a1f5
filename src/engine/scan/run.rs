//! One scan: list and fold what runs ([`super::inventory`]), prepare every pod template
//! with the engine (its pull secrets, ServiceAccount and platforms, exactly as admission
//! does), check each distinct image × keyring × platforms once through the throttled
//! registries ([`super::throttle`]), and conclude every object with the engine, so a
//! verdict reads as admission would say it. Pods stuck pulling are explained
//! ([`super::diagnose`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use super::diagnose::{explain, Agreement, Facts};
use super::inventory::{self, Listing, StuckPod, Target};
use super::throttle::ScanRegistry;
use crate::cluster::view::{field_path, ClusterView, NodeHealth, Scale};
use crate::engine::evaluate::{place, Engine, Evaluation, Prepared, Subject};
use crate::engine::explain::Context;
use crate::engine::finding::{FindingClass, Located};
use crate::engine::image::ImageCheck;
use crate::engine::policy::{Action, Actions, Mode};
use crate::kubelet::credentials::Keyring;
use crate::kubelet::platform::Platform;
use crate::kubelet::pull_failure::{classify, event_error, runtime_error, PullCause};
use crate::kubelet::workload::{self, ImageSlot, Workload, WorkloadError, WorkloadKind};

/// What a scan covers and how fast it may go.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespaces to scan; all when empty.
    pub namespaces: Vec<String>,
    /// Distinct images checked at once (each still waits for its registry's turn).
    pub concurrency: usize,
    /// How long a check may take, its wait for the registry's turn included.
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            concurrency: 64,
            timeout: Duration::from_secs(600),
        }
    }
}

/// What a scan tells while it runs (a progress bar).
pub trait Progress: Listing {
    /// `n` distinct checks to make.
    fn planned(&self, n: usize);
    /// One more check done.
    fn checked(&self);
}

/// Says nothing.
pub struct Silent;

impl Listing for Silent {
    fn listed(&self, _: WorkloadKind, _: usize) {}
}

impl Progress for Silent {
    fn planned(&self, _: usize) {}
    fn checked(&self) {}
}

/// One image of one workload container, with its verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadLine {
    pub namespace: String,
    pub kind: WorkloadKind,
    pub name: String,
    pub uid: String,
    pub scale: Scale,
    /// `Rollout/web` for a Pod checked on behalf of a controller pullcheck cannot read.
    pub on_behalf_of: Option<String>,
    /// The container (or image volume); "" for a finding about the Pod's pull secrets.
    pub container: String,
    pub slot: Option<ImageSlot>,
    pub image: String,
    /// `ok`, a finding class, or `not_checked` (imagePullPolicy Never, no pod template).
    pub verdict: String,
    pub class: Option<FindingClass>,
    /// pullcheck's words (the finding's message; for `ok` what the image resolves to).
    pub message: String,
    pub fix: Option<String>,
    /// The sentence admission would write (`container "web" (img): …; fix: …`).
    pub sentence: String,
    /// Enforce mode denies it (a definite finding, per `actions:`).
    pub denied: bool,
    /// What else is worth saying (an image without a variant for some nodes).
    pub notes: Vec<String>,
}

/// One container stuck pulling, explained.
#[derive(Clone, Debug, PartialEq)]
pub struct StuckLine {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub node: Option<String>,
    /// `ReplicaSet/web-7d9f`.
    pub controller: Option<String>,
    pub container: String,
    pub slot: ImageSlot,
    pub image: String,
    /// `state.waiting.reason`.
    pub reason: String,
    /// The kubelet's words: the waiting message, or its last `Failed to pull image` event.
    pub kubelet_message: String,
    /// `status` or `event`.
    pub kubelet_source: &'static str,
    pub kubelet_cause: PullCause,
    /// pullcheck's verdict: `ok`, a finding class, `not_checked`.
    pub verdict: String,
    pub class: Option<FindingClass>,
    /// pullcheck's words.
    pub message: String,
    pub fix: Option<String>,
    pub agreement: Agreement,
    /// What the two together mean, and what to do.
    pub meaning: String,
}

/// Counts of a scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Objects listed (Pods included).
    pub listed: usize,
    /// Checked on their own (workloads, bare Pods, Pods of unreadable controllers).
    pub objects: usize,
    /// Covered by their owner (ReplicaSets, Jobs, Pods).
    pub folded: usize,
    pub exempt: usize,
    /// Distinct image × keyring × platforms checked.
    pub checks: usize,
    /// Distinct image × credential questions sent to registries.
    pub resolutions: u64,
    pub duration: Duration,
}

/// What a scan found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub workloads: Vec<WorkloadLine>,
    pub stuck: Vec<StuckLine>,
    /// Lists that failed: the scan is incomplete.
    pub errors: Vec<String>,
    pub stats: Stats,
}

impl Report {
    /// Whether something would not pull: a denied finding, or a Pod stuck pulling.
    pub fn failing(&self) -> bool {
        self.workloads.iter().any(|l| l.denied) || !self.stuck.is_empty()
    }
}

/// Distinct checks: (image, keyring id, wanted platforms) → index.
#[derive(Default)]
struct Plan {
    index: HashMap<(String, u64, Vec<Platform>), usize>,
    units: Vec<(String, Arc<Keyring>, Vec<Platform>)>,
}

impl Plan {
    fn add(&mut self, p: &Prepared) {
        let Some(keyring) = p.keyring() else { return };
        for image in p.images() {
            let key = (image.clone(), keyring.id(), p.wanted().to_vec());
            if !self.index.contains_key(&key) {
                self.index.insert(key, self.units.len());
                self.units
                    .push((image.clone(), Arc::clone(keyring), p.wanted().to_vec()));
            }
        }
    }

    fn checks_for(&self, p: &Prepared, checks: &[Arc<ImageCheck>]) -> Vec<Arc<ImageCheck>> {
        let Some(keyring) = p.keyring() else {
            return Vec::new();
        };
        p.images()
            .iter()
            .filter_map(|image| {
                let key = (image.clone(), keyring.id(), p.wanted().to_vec());
                self.index.get(&key).and_then(|&i| checks.get(i).cloned())
            })
            .collect()
    }
}

/// Scans a cluster with an engine whose registries are a [`ScanRegistry`].
pub struct Scanner {
    engine: Arc<Engine>,
    registry: Arc<ScanRegistry>,
    view: Arc<dyn ClusterView>,
    settings: Settings,
}

impl Scanner {
    pub fn new(
        engine: Arc<Engine>,
        registry: Arc<ScanRegistry>,
        view: Arc<dyn ClusterView>,
        settings: Settings,
    ) -> Self {
        Self {
            engine,
            registry,
            view,
            settings,
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn view(&self) -> &Arc<dyn ClusterView> {
        &self.view
    }

    /// Scans the namespaces of the settings.
    pub async fn scan(&self, progress: &dyn Progress) -> Report {
        let started = Instant::now();
        self.registry.begin();
        let before = self.registry.resolutions();
        let inv = inventory::take(
            &*self.view,
            &self.settings.namespaces,
            &self.engine.settings.exempt_namespaces,
            progress,
        )
        .await;
        let engine = &self.engine;
        let targets: Vec<(Target, Prepared)> = futures::stream::iter(inv.targets)
            .map(|t| async move {
                let p = engine.prepare(&target_subject(&t), Mode::Enforce).await;
                (t, p)
            })
            .buffered(16)
            .collect()
            .await;
        let stuck: Vec<(StuckPod, Prepared)> = futures::stream::iter(inv.stuck)
            .map(|pod| async move {
                let p = engine.prepare(&pod_subject(&pod), Mode::Enforce).await;
                (pod, p)
            })
            .buffered(16)
            .collect()
            .await;

        let mut plan = Plan::default();
        for (_, p) in &targets {
            plan.add(p);
        }
        for (_, p) in &stuck {
            plan.add(p);
        }
        progress.planned(plan.units.len());
        let deadline = Instant::now() + self.settings.timeout;
        let checker = &self.engine.checker;
        // Futures built up front: a closure over the stream's `&(…)` items would make this
        // future not `Send` (the background scan spawns it).
        let pending: Vec<_> = plan
            .units
            .iter()
            .map(|(image, keyring, wanted)| async move {
                let c = checker
                    .check(image, keyring, wanted, Context::Cluster, deadline)
                    .await;
                progress.checked();
                c
            })
            .collect();
        let checks: Vec<Arc<ImageCheck>> = futures::stream::iter(pending)
            .buffered(self.settings.concurrency.max(1))
            .collect()
            .await;

        let mut report = Report {
            errors: inv.errors,
            ..Report::default()
        };
        let actions = &self.engine.settings.actions;
        report.stats.objects = targets.len();
        for (t, p) in targets {
            let own = plan.checks_for(&p, &checks);
            let ev = self.engine.conclude(p, own).await;
            report.workloads.extend(workload_lines(&t, &ev, actions));
        }
        let mut health: HashMap<String, Option<NodeHealth>> = HashMap::new();
        for (pod, p) in stuck {
            let own = plan.checks_for(&p, &checks);
            let ev = self.engine.conclude(p, own).await;
            report
                .stuck
                .extend(self.stuck_lines(&pod, &ev, &mut health).await);
        }
        report.stats.listed = inv.listed;
        report.stats.folded = inv.folded;
        report.stats.exempt = inv.exempt;
        report.stats.checks = plan.units.len();
        report.stats.resolutions = self.registry.resolutions() - before;
        report.stats.duration = started.elapsed();
        report
    }

    /// Explains one Pod stuck pulling with this scanner's engine (the background scan's
    /// watch, between scans).
    pub async fn explain_pod(&self, pod: &StuckPod) -> Vec<StuckLine> {
        let prepared = self.engine.prepare(&pod_subject(pod), Mode::Enforce).await;
        let checks = match prepared.keyring().cloned() {
            Some(keyring) => {
                let deadline = Instant::now() + self.settings.timeout;
                self.engine
                    .checker
                    .check_all(
                        prepared.images(),
                        &keyring,
                        prepared.wanted(),
                        Context::Cluster,
                        deadline,
                        self.engine.settings.concurrency,
                    )
                    .await
            }
            None => Vec::new(),
        };
        let ev = self.engine.conclude(prepared, checks).await;
        self.stuck_lines(pod, &ev, &mut HashMap::new()).await
    }

    async fn stuck_lines(
        &self,
        pod: &StuckPod,
        ev: &Evaluation,
        health: &mut HashMap<String, Option<NodeHealth>>,
    ) -> Vec<StuckLine> {
        let node = pod.spec.node_name.clone().filter(|n| !n.is_empty());
        let mut events: Option<Vec<crate::cluster::view::PullEvent>> = None;
        let mut out = Vec::new();
        for c in &pod.containers {
            let mut kubelet_message = c.message.clone();
            let mut source = "status";
            let mut text = runtime_error(&c.message).map(str::to_owned);
            if text.is_none() {
                // A back-off without the error: the kubelet's last Failed event has it.
                if events.is_none() {
                    events = Some(
                        self.view
                            .pull_events(&pod.namespace, &pod.uid)
                            .await
                            .unwrap_or_else(|e| {
                                tracing::debug!(error = %e, pod = %pod.name, "cannot read the Pod's events");
                                Vec::new()
                            }),
                    );
                }
                let path = field_path(c.slot, &c.container);
                let last = events.iter().flatten().rev().find(|e| {
                    e.field_path == path
                        && event_error(&e.message).is_some_and(|(image, _)| image == c.image)
                });
                if let Some(e) = last {
                    kubelet_message = e.message.clone();
                    source = "event";
                    text = event_error(&e.message).map(|(_, t)| t.to_owned());
                }
            }
            let cause = classify(&c.reason, text.as_deref().unwrap_or(""));
            let place = format!("{} {:?}", c.slot, c.container);
            let located = ev
                .findings
                .iter()
                .find(|l| l.place == place && l.image == c.image)
                .or_else(|| ev.findings.iter().find(|l| l.image.is_empty()));
            let checked = ev
                .uses
                .iter()
                .any(|u| u.slot == c.slot && u.name == c.container);
            let check = ev.checks.iter().find(|k| k.image == c.image);
            let node_health = match (&node, located.is_none() || cause == PullCause::Disk) {
                (Some(n), true) => {
                    if !health.contains_key(n) {
                        let h = self.view.node_health(n).await.unwrap_or_else(|e| {
                            tracing::debug!(error = %e, node = %n, "cannot read the Node");
                            None
                        });
                        health.insert(n.clone(), h);
                    }
                    health.get(n).cloned().flatten()
                }
                _ => None,
            };
            let (agreement, meaning) = explain(&Facts {
                image: &c.image,
                node: node.as_deref(),
                health: node_health.as_ref(),
                cause,
                checked,
                finding: located.map(|l| &l.finding),
                some_platforms_missing: check.is_some_and(|k| !k.missing_platforms.is_empty()),
            });
            let (verdict, message) = match (located, checked) {
                (Some(l), _) => (
                    l.finding.class.as_str().to_owned(),
                    l.finding.message.clone(),
                ),
                (None, true) => ("ok".to_owned(), resolves(check)),
                (None, false) => ("not_checked".to_owned(), "not checked".to_owned()),
            };
            out.push(StuckLine {
                namespace: pod.namespace.clone(),
                pod: pod.name.clone(),
                uid: pod.uid.clone(),
                node: node.clone(),
                controller: pod
                    .controller
                    .as_ref()
                    .map(|o| format!("{}/{}", o.kind, o.name)),
                container: c.container.clone(),
                slot: c.slot,
                image: c.image.clone(),
                reason: c.reason.clone(),
                kubelet_message,
                kubelet_source: source,
                kubelet_cause: cause,
                verdict,
                class: located.map(|l| l.finding.class),
                message,
                fix: located.and_then(|l| l.finding.hint.clone()),
                agreement,
                meaning,
            });
        }
        out
    }
}

fn target_subject(t: &Target) -> Subject<'_> {
    let workload = match &t.spec {
        Some(spec) => Ok(Workload {
            kind: t.kind,
            name: t.name.clone(),
            namespace: Some(t.namespace.clone()),
            spec: spec.clone(),
            // The scan checks what owners run; admission's rule for owned Pods is not its.
            controller: None,
        }),
        None => Err(WorkloadError::Decode {
            kind: t.kind.as_str().to_owned(),
            detail: "no pod template".to_owned(),
        }),
    };
    Subject {
        kind: t.kind,
        namespace: &t.namespace,
        name: t.name.clone(),
        workload,
        old: None,
        ephemeral: false,
        // A Pod went through ServiceAccount admission when it was created.
        service_account_rule: t.kind.is_template(),
    }
}

fn pod_subject(pod: &StuckPod) -> Subject<'_> {
    Subject {
        kind: WorkloadKind::Pod,
        namespace: &pod.namespace,
        name: pod.name.clone(),
        workload: Ok(Workload {
            kind: WorkloadKind::Pod,
            name: pod.name.clone(),
            namespace: Some(pod.namespace.clone()),
            spec: pod.spec.clone(),
            controller: None,
        }),
        old: None,
        ephemeral: false,
        service_account_rule: false,
    }
}

fn resolves(check: Option<&Arc<ImageCheck>>) -> String {
    match check.and_then(|c| c.resolved.as_ref()) {
        Some(r) => format!("pulls: resolves to {}", r.digest),
        None => "pulls".to_owned(),
    }
}

/// The lines of one concluded workload: one per image use (the same words as admission).
fn workload_lines(t: &Target, ev: &Evaluation, actions: &Actions) -> Vec<WorkloadLine> {
    let line = |container: &str, slot: Option<ImageSlot>, image: &str| WorkloadLine {
        namespace: t.namespace.clone(),
        kind: t.kind,
        name: t.name.clone(),
        uid: t.uid.clone(),
        scale: t.scale,
        on_behalf_of: t
            .on_behalf_of
            .as_ref()
            .map(|o| format!("{}/{}", o.kind, o.name)),
        container: container.to_owned(),
        slot,
        image: image.to_owned(),
        verdict: "ok".to_owned(),
        class: None,
        message: String::new(),
        fix: None,
        sentence: String::new(),
        denied: false,
        notes: Vec::new(),
    };
    let found = |mut l: WorkloadLine, f: &Located| {
        l.verdict = f.finding.class.as_str().to_owned();
        l.class = Some(f.finding.class);
        l.message = f.finding.message.clone();
        l.fix = f.finding.hint.clone();
        l.sentence = f.sentence();
        l.denied = actions.of(f.finding.class) == Action::Deny;
        l
    };
    let Some(spec) = t.spec.as_ref().filter(|_| ev.skipped.is_none()) else {
        let mut l = line("", None, "");
        l.verdict = "not_checked".into();
        l.message = ev
            .advisories
            .first()
            .cloned()
            .or_else(|| ev.skipped.clone())
            .unwrap_or_default();
        l.sentence = l.message.clone();
        return if ev.skipped.as_deref() == Some("namespace exempt") {
            Vec::new()
        } else {
            vec![l]
        };
    };
    let mut out: Vec<WorkloadLine> = ev
        .findings
        .iter()
        .filter(|f| f.image.is_empty())
        .map(|f| found(line("", None, ""), f))
        .collect();
    for u in workload::images(spec) {
        let at = place(&u);
        let mut l = line(&u.name, Some(u.slot), &u.image);
        let prefix = format!("{at} ({}): ", u.image);
        l.notes = ev
            .advisories
            .iter()
            .filter(|a| a.starts_with(&prefix))
            .cloned()
            .collect();
        if ev.uses.iter().any(|x| x == &u) {
            match ev
                .findings
                .iter()
                .find(|f| f.place == at && f.image == u.image)
            {
                Some(f) => l = found(l, f),
                None => {
                    let check = ev.checks.iter().find(|c| c.image == u.image);
                    l.message = resolves(check);
                    l.sentence = format!("{at} ({}): {}", u.image, l.message);
                }
            }
        } else if u.pull_never() {
            l.verdict = "not_checked".into();
            l.message =
                "imagePullPolicy Never, not checked: the image must already be on the node".into();
            l.sentence = format!("{prefix}{}", l.message);
        } else {
            continue; // an exempt image
        }
        out.push(l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::view::{Listed, MemoryView, Owner, PodState, Stuck};
    use crate::cluster::InMemoryCluster;
    use crate::engine::scan::throttle::{Limits, Throttle};
    use crate::engine::{Checker, Settings as EngineSettings};
    use crate::kubelet::credentials::Credential;
    use crate::kubelet::reference::ImageRef;
    use crate::kubelet::workload::PodSpec;
    use crate::metrics::Metrics;
    use crate::registry::cache::{CacheConfig, CachedRegistry};
    use crate::registry::{ImagePlatforms, Registry, RegistryConfig, RegistryError, Resolved};
    use serde_json::json;
    use std::sync::Mutex;

    /// Answers by image; every other image's tag does not exist. Counts questions.
    #[derive(Default)]
    struct ByImage {
        good: Vec<String>,
        asked: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl Registry for ByImage {
        async fn resolve(
            &self,
            image: &ImageRef,
            _: Option<&Credential>,
        ) -> Result<Resolved, RegistryError> {
            let canonical = image.canonical();
            self.asked.lock().unwrap().push(canonical.clone());
            if self.good.contains(&canonical) {
                return Ok(Resolved {
                    digest: format!("sha256:{}", canonical.len()),
                    platforms: Arc::new(ImagePlatforms {
                        is_index: false,
                        platforms: vec![Platform::new("linux", "amd64", None)],
                        manifests: Vec::new(),
                        size: None,
                    }),
                });
            }
            Err(RegistryError::TagNotFound {
                registry: image.domain().to_owned(),
                repository: image.path().to_owned(),
                tag: image.tag().unwrap_or("latest").to_owned(),
                closest: vec!["2".into()],
            })
        }
    }

    fn spec(container: &str, image: &str) -> PodSpec {
        serde_json::from_value(
            json!({"containers": [{"name": container, "image": image}], "nodeName": "n1"}),
        )
        .unwrap()
    }

    fn obj(kind: WorkloadKind, ns: &str, name: &str, image: &str) -> Listed {
        Listed {
            kind,
            namespace: ns.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            controller: None,
            spec: Some(spec(name, image)),
            scale: Scale::Active,
            pod: (kind == WorkloadKind::Pod).then(PodState::default),
        }
    }

    fn owned(mut o: Listed, api_version: &str, kind: &str, name: &str) -> Listed {
        o.controller = Some(Owner {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        });
        o
    }

    fn scanner(view: Arc<MemoryView>, good: &[&str]) -> (Scanner, Arc<ByImage>) {
        let registry = Arc::new(ByImage {
            good: good.iter().map(|s| (*s).to_owned()).collect(),
            ..ByImage::default()
        });
        let throttle = Arc::new(Throttle::new(Limits {
            concurrency: 2,
            rate: 1000.0,
        }));
        let scan_registry = Arc::new(ScanRegistry::per_scan(registry.clone(), throttle));
        let metrics = Arc::new(Metrics::default());
        let cache = CacheConfig {
            positive_ttl: Duration::ZERO,
            negative_ttl: Duration::ZERO,
            ..CacheConfig::default()
        };
        let cached = CachedRegistry::new(scan_registry.clone(), &cache, metrics.clone());
        let checker = Arc::new(Checker::new(
            Arc::new(cached),
            Arc::new(RegistryConfig::default()),
        ));
        let engine = Arc::new(Engine::new(
            checker,
            Arc::new(InMemoryCluster::new()),
            Arc::new(Keyring::new()),
            EngineSettings {
                exempt_namespaces: vec!["kube-*".into()],
                ..EngineSettings::default()
            },
            metrics,
        ));
        (
            Scanner::new(engine, scan_registry, view, Settings::default()),
            registry,
        )
    }

    #[tokio::test]
    async fn owners_fold_their_templates_and_each_image_is_asked_once() {
        use WorkloadKind as K;
        let view = Arc::new(MemoryView::new());
        view.set_page_size(2);
        view.put(obj(K::Deployment, "a", "web", "r.example/web:1"));
        view.put(obj(K::Deployment, "a", "api", "r.example/gone:1"));
        view.put(owned(
            obj(K::ReplicaSet, "a", "api-1", "r.example/gone:1"),
            "apps/v1",
            "Deployment",
            "api",
        ));
        view.put(obj(K::ReplicaSet, "a", "lonely", "r.example/web:1"));
        let mut db = obj(K::StatefulSet, "a", "db", "r.example/db:1");
        db.scale = Scale::ScaledToZero;
        view.put(db);
        let mut nightly = obj(K::CronJob, "b", "nightly", "r.example/job:1");
        nightly.scale = Scale::Suspended;
        view.put(nightly);
        view.put(owned(
            obj(K::Job, "b", "nightly-1", "r.example/job:1"),
            "batch/v1",
            "CronJob",
            "nightly",
        ));
        view.put(owned(
            obj(K::Pod, "b", "nightly-1-x", "r.example/job:1"),
            "batch/v1",
            "Job",
            "nightly-1",
        ));
        view.put(obj(K::Pod, "a", "debug", "r.example/web:1"));
        for p in ["roll-1", "roll-2"] {
            view.put(owned(
                obj(K::Pod, "a", p, "r.example/roll:1"),
                "argoproj.io/v1alpha1",
                "Rollout",
                "roll",
            ));
        }
        let mut stuck = owned(
            obj(K::Pod, "a", "api-1-x", "r.example/gone:1"),
            "apps/v1",
            "ReplicaSet",
            "api-1",
        );
        stuck.pod = Some(PodState {
            phase: "Pending".into(),
            stuck: vec![Stuck {
                slot: ImageSlot::Container,
                container: "api-1-x".into(),
                image: "r.example/gone:1".into(),
                reason: "ImagePullBackOff".into(),
                message: "Back-off pulling image \"r.example/gone:1\": ErrImagePull: rpc error: code = NotFound desc = failed to pull and unpack image \"r.example/gone:1\": r.example/gone:1: not found".into(),
            }],
        });
        view.put(stuck);
        view.put(obj(K::Deployment, "kube-system", "dns", "r.example/dns:1"));

        let (scanner, registry) = scanner(
            view.clone(),
            &[
                "r.example/web:1",
                "r.example/db:1",
                "r.example/job:1",
                "r.example/roll:1",
            ],
        );
        let report = scanner.scan(&Silent).await;
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let by = |kind: K, name: &str| {
            report
                .workloads
                .iter()
                .find(|l| l.kind == kind && l.name == name)
                .unwrap_or_else(|| panic!("no line for {kind} {name}: {:#?}", report.workloads))
        };
        let api = by(K::Deployment, "api");
        assert_eq!(api.verdict, "tag_not_found");
        assert!(api.denied);
        assert!(
            api.sentence
                .starts_with("container \"api\" (r.example/gone:1): tag \"1\""),
            "{}",
            api.sentence
        );
        assert_eq!(by(K::Deployment, "web").verdict, "ok");
        assert_eq!(by(K::ReplicaSet, "lonely").verdict, "ok");
        assert_eq!(by(K::Pod, "debug").verdict, "ok");
        assert_eq!(by(K::StatefulSet, "db").scale, Scale::ScaledToZero);
        assert_eq!(by(K::CronJob, "nightly").scale, Scale::Suspended);
        let rollout: Vec<_> = report
            .workloads
            .iter()
            .filter(|l| l.on_behalf_of.as_deref() == Some("Rollout/roll"))
            .collect();
        assert_eq!(rollout.len(), 1, "one Pod per unreadable controller");
        for folded in ["api-1", "nightly-1", "nightly-1-x", "api-1-x", "dns"] {
            assert!(
                report.workloads.iter().all(|l| l.name != folded),
                "{folded} has a line"
            );
        }
        assert_eq!(report.workloads.len(), 7);
        // Each distinct image asked once, however many objects use it.
        let mut asked = registry.asked.lock().unwrap().clone();
        asked.sort();
        assert_eq!(
            asked,
            [
                "r.example/db:1",
                "r.example/gone:1",
                "r.example/job:1",
                "r.example/roll:1",
                "r.example/web:1"
            ]
        );
        assert_eq!(report.stats.resolutions, 5);
        assert_eq!(report.stats.exempt, 1);

        let [line] = &report.stuck[..] else {
            panic!("{:#?}", report.stuck)
        };
        assert_eq!(line.reason, "ImagePullBackOff");
        assert_eq!(line.kubelet_cause, PullCause::NotFound);
        assert_eq!(line.kubelet_source, "status");
        assert_eq!(line.verdict, "tag_not_found");
        assert_eq!(line.agreement, Agreement::Agrees);
        assert!(
            line.meaning.starts_with("pullcheck agrees: tag \"1\""),
            "{}",
            line.meaning
        );
        assert_eq!(line.controller.as_deref(), Some("ReplicaSet/api-1"));
        assert!(report.failing());

        // The next scan asks again (a tag may have been deleted meanwhile).
        scanner.scan(&Silent).await;
        assert_eq!(registry.asked.lock().unwrap().len(), 10);
    }

    #[tokio::test]
    async fn a_bare_back_off_is_explained_from_the_pods_failed_event_and_the_node() {
        use WorkloadKind as K;
        let view = Arc::new(MemoryView::new());
        let mut pod = obj(K::Pod, "a", "p", "r.example/web:1");
        pod.pod = Some(PodState {
            phase: "Pending".into(),
            stuck: vec![Stuck {
                slot: ImageSlot::Container,
                container: "p".into(),
                image: "r.example/web:1".into(),
                reason: "ImagePullBackOff".into(),
                message: "Back-off pulling image \"r.example/web:1\"".into(),
            }],
        });
        view.put(pod);
        view.add_pull_event("a", "uid-p", crate::cluster::view::PullEvent {
            field_path: "spec.containers{p}".into(),
            message: "Failed to pull image \"r.example/web:1\": failed to pull and unpack image \"r.example/web:1\": failed to resolve reference \"r.example/web:1\": failed to do request: Head \"https://r.example/v2/web/manifests/1\": dial tcp: lookup r.example: no such host".into(),
            count: 3,
            last_seen: "2025-01-01T00:00:00Z".into(),
        });
        let (scanner, _) = scanner(view.clone(), &["r.example/web:1"]);
        let report = scanner.scan(&Silent).await;
        let [line] = &report.stuck[..] else {
            panic!("{:#?}", report.stuck)
        };
        assert_eq!(line.kubelet_source, "event");
        assert!(line.kubelet_message.starts_with("Failed to pull image"));
        assert_eq!(line.kubelet_cause, PullCause::Dns);
        assert_eq!(line.verdict, "ok");
        assert_eq!(line.agreement, Agreement::NodeOnly);
        assert!(
            line.meaning.contains("node n1 could not reach it"),
            "{}",
            line.meaning
        );

        // With DiskPressure on the node the disk is the answer.
        view.set_node(
            "n1",
            NodeHealth {
                disk_pressure: true,
                message: "ephemeral-storage low".into(),
            },
        );
        let lines = scanner
            .explain_pod(
                &StuckPod::of(
                    &view
                        .list(K::Pod, None, crate::cluster::view::Shape::Full, None)
                        .await
                        .unwrap()
                        .items[0],
                )
                .unwrap(),
            )
            .await;
        assert_eq!(lines[0].agreement, Agreement::DiskPressure);
        assert!(
            lines[0].meaning.contains("ephemeral-storage low"),
            "{}",
            lines[0].meaning
        );
    }

    #[tokio::test]
    async fn a_list_that_fails_is_reported_and_the_rest_goes_on() {
        let view = Arc::new(MemoryView::new());
        view.put(obj(WorkloadKind::Deployment, "a", "web", "r.example/web:1"));
        view.fail_with(Some(crate::cluster::ClusterError::Forbidden {
            detail: "list deployments: HTTP 403".into(),
        }));
        let (scanner, _) = scanner(view.clone(), &[]);
        let report = scanner.scan(&Silent).await;
        assert_eq!(
            report.errors.len(),
            8,
            "every kind, once: {:?}",
            report.errors
        );
        assert!(report.errors[0].contains("RBAC"), "{:?}", report.errors);
        assert!(report.workloads.is_empty());
    }
}
