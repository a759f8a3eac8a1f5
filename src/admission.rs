//! One AdmissionReview in, one AdmissionResponse out: find the PodSpec, skip what cannot
//! change a pull (other kinds, DELETE, scale), gather the credentials the kubelet would use
//! and the platforms the Pod may land on, check the images, and let the policy decide.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::DynamicObject;
use serde::Serialize;
use tokio::time::Instant;

use crate::check::{Checker, Context, Finding, ImageCheck};
use crate::cluster::{Cluster, ClusterError, SecretData};
use crate::kubelet::credentials::{self, Keyring};
use crate::kubelet::platform::Platform;
use crate::kubelet::reference::ImageRef;
use crate::kubelet::workload::{
    self, ImageUse, PlatformConstraint, PullChange, Workload, WorkloadError, WorkloadKind,
};
use crate::metrics::Metrics;
use crate::policy::{self, Actions, Decision, Located, Mode};
use crate::registry::FindingClass;
use crate::text::{glob_match, human_duration, truncate};

/// What to do with Pods owned by a controller (their template was checked when the
/// Deployment, Job, … was admitted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OwnedPods {
    /// Check them like any Pod, in the route's mode.
    Check,
    /// Check them and record findings in audit annotations only.
    Audit,
    /// Do not check them at all.
    Skip,
}

/// Webhook settings, from flags and the config file.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Mode of `POST /validate`.
    pub default_mode: Mode,
    pub actions: Actions,
    pub owned_pods: OwnedPods,
    /// Namespaces never checked (globs).
    pub exempt_namespaces: Vec<String>,
    /// Images never checked (globs over the image as written and its canonical form).
    pub exempt_images: Vec<String>,
    /// Images of one object resolved at once.
    pub concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_mode: Mode::Warn,
            actions: Actions::default(),
            owned_pods: OwnedPods::Audit,
            exempt_namespaces: Vec::new(),
            exempt_images: Vec::new(),
            concurrency: 16,
        }
    }
}

/// The decision engine of the webhook.
pub struct Webhook {
    pub checker: Arc<Checker>,
    pub cluster: Arc<dyn Cluster>,
    /// The webhook's own credentials (`--docker-config`): what the nodes hold besides pull
    /// secrets, tried after them like the kubelet's node keyring.
    node_keyring: Arc<Keyring>,
    /// An empty keyring with the node's after it: the keyring of a Pod without secrets.
    node_only: Arc<Keyring>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    /// Parsed pull secrets by hash of (namespace, names); a hit is compared in full.
    parsed: moka::sync::Cache<u64, Arc<ParsedSecrets>>,
    parsed_hasher: foldhash::fast::RandomState,
    /// Secret sets by hash of (namespace, names, ServiceAccount); a hit is compared in full.
    secret_sets: moka::sync::Cache<u64, Arc<SecretSet>>,
}

impl Webhook {
    pub fn new(
        checker: Arc<Checker>,
        cluster: Arc<dyn Cluster>,
        node_keyring: Arc<Keyring>,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let node_only = Arc::new(Keyring::new().with_fallback(Arc::clone(&node_keyring)));
        Self {
            checker,
            cluster,
            node_keyring,
            node_only,
            settings,
            metrics,
            parsed: moka::sync::Cache::builder()
                .max_capacity(PARSED_SECRETS_BYTES)
                .weigher(|_, v: &Arc<ParsedSecrets>| v.weight())
                .time_to_idle(std::time::Duration::from_secs(600))
                .build(),
            parsed_hasher: foldhash::fast::RandomState::default(),
            secret_sets: moka::sync::Cache::builder()
                .max_capacity(SECRET_SETS)
                .expire_after(SecretSetExpiry)
                .build(),
        }
    }
}

/// A response with the labels of its decision, for metrics and logs.
pub struct Reviewed {
    pub response: AdmissionResponse,
    /// `allowed`, `denied`, `warned`, `skipped`.
    pub decision: &'static str,
    pub mode: Mode,
}

/// The credentials of a PodSpec as the kubelet builds them.
struct Secrets {
    keyring: Arc<Keyring>,
    /// Where the names came from: `imagePullSecrets` or `ServiceAccount "x"`.
    origin: String,
    names: Vec<String>,
    missing: Vec<String>,
    /// (name, type) of secrets the kubelet ignores.
    wrong_type: Vec<(String, String)>,
    /// (name, problem) of secrets that make the kubelet fail every pull.
    broken: Vec<(String, String)>,
    cluster_error: Option<ClusterError>,
    /// Whether the ServiceAccount, when one was read, exists.
    service_account_found: bool,
    /// The Secrets as read (all of them unless `cluster_error`).
    parsed: Option<Arc<ParsedSecrets>>,
}

/// Secrets as read (`None`: absent) and what the kubelet makes of them.
struct ParsedSecrets {
    namespace: String,
    /// (name, Secret) in the Pod's order.
    reads: Vec<(String, Option<Arc<SecretData>>)>,
    /// Their keyring, with the node's own after it.
    keyring: Arc<Keyring>,
    missing: Vec<String>,
    wrong_type: Vec<(String, String)>,
    broken: Vec<(String, String)>,
}

impl ParsedSecrets {
    /// Rough bytes held, for the cache's bound.
    fn weight(&self) -> u32 {
        let w: usize = self
            .reads
            .iter()
            .map(|(n, r)| n.len() + r.as_deref().map_or(16, SecretData::weight))
            .sum();
        u32::try_from(w + 256).unwrap_or(u32::MAX)
    }
}

/// The pull secrets of one (namespace, imagePullSecrets, ServiceAccount), as long as the
/// cluster's cache gives the same answers.
struct SecretSet {
    namespace: String,
    names: Vec<String>,
    service_account: Option<String>,
    secrets: Arc<Secrets>,
    valid_until: std::time::Instant,
}

struct SecretSetExpiry;

impl moka::Expiry<u64, Arc<SecretSet>> for SecretSetExpiry {
    fn expire_after_create(
        &self,
        _: &u64,
        v: &Arc<SecretSet>,
        now: std::time::Instant,
    ) -> Option<std::time::Duration> {
        Some(v.valid_until.saturating_duration_since(now))
    }
}

/// Most secret sets kept.
const SECRET_SETS: u64 = 20_000;

/// Most bytes of Secrets kept parsed (they are mostly shared with the cluster's cache).
const PARSED_SECRETS_BYTES: u64 = 64 << 20;

/// One object to evaluate, from an AdmissionRequest or a manifest.
pub struct Subject<'a> {
    pub kind: WorkloadKind,
    pub namespace: &'a str,
    /// `metadata.name` (or `generateName*`), for messages.
    pub name: String,
    /// The object, decoded (or why it could not be).
    pub workload: Result<Workload, WorkloadError>,
    /// The previous object on UPDATE, when it decodes.
    pub old: Option<Workload>,
    /// `pods/ephemeralcontainers` (`kubectl debug`): always checked in the route's mode.
    pub ephemeral: bool,
    /// Whether the Pod's ServiceAccount's pull secrets apply when it names none. The API
    /// server's ServiceAccount admission did that already for Pods it admits; pod templates
    /// and Pods read from manifests (CI) never went through it.
    pub service_account_rule: bool,
}

/// What an evaluation found, before it is turned into an answer.
pub struct Evaluation {
    /// `Deployment team-a/web`.
    pub subject: String,
    pub mode: Mode,
    /// Why nothing was checked, when nothing was.
    pub skipped: Option<String>,
    /// The images checked, where they are used.
    pub uses: Vec<ImageUse>,
    pub checks: Vec<Arc<ImageCheck>>,
    pub findings: Vec<Located>,
    /// Worth saying, never a reason to deny (a missing secret the image does not need, an
    /// image that covers only some node platforms, `imagePullPolicy: Never`).
    pub advisories: Vec<String>,
}

impl Evaluation {
    fn skipped(subject: String, mode: Mode, why: impl Into<String>) -> Self {
        Self {
            subject,
            mode,
            skipped: Some(why.into()),
            uses: Vec::new(),
            checks: Vec::new(),
            findings: Vec::new(),
            advisories: Vec::new(),
        }
    }

    /// The policy's decision for this evaluation.
    pub fn decision(&self, actions: &Actions) -> Decision {
        policy::decide(self.mode, actions, &self.subject, &self.findings)
    }
}

impl Webhook {
    /// Answers one request. `route_mode`: the mode of the path, `None` for `/validate`.
    pub async fn review(
        &self,
        req: &AdmissionRequest<DynamicObject>,
        route_mode: Option<Mode>,
        deadline: Instant,
    ) -> Reviewed {
        let mode = route_mode.unwrap_or(self.settings.default_mode);
        let mut response = AdmissionResponse::from(req);
        let skip = |response: AdmissionResponse, mode| Reviewed {
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
        // DynamicObject holds metadata apart and the rest as JSON: decode the PodSpec from
        // there, without a round trip through serde_json::Value of the whole object.
        let decode = |o: &DynamicObject| workload::decode_parts(kind, &o.metadata, &o.data);
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
            name: display_name(req),
            workload,
            old,
            ephemeral,
            service_account_rule: kind.is_template(),
        };
        let evaluation = self.evaluate(&subject, mode, deadline).await;
        if let Some(why) = &evaluation.skipped {
            response
                .audit_annotations
                .insert("skipped".into(), why.clone());
            if evaluation.advisories.is_empty() {
                return skip(response, evaluation.mode);
            }
        }
        let decision = self.finish(&mut response, &evaluation);
        Reviewed {
            response,
            decision,
            mode: evaluation.mode,
        }
    }

    /// Checks one object: the decision path shared by the webhook and `pullcheck check`.
    pub async fn evaluate(&self, s: &Subject<'_>, mode: Mode, deadline: Instant) -> Evaluation {
        let mut mode = mode;
        let subject = format!("{} {}/{}", s.kind.as_str(), s.namespace, s.name);
        if self
            .settings
            .exempt_namespaces
            .iter()
            .any(|g| glob_match(g, s.namespace))
        {
            return Evaluation::skipped(subject, mode, "namespace exempt");
        }
        let workload = match &s.workload {
            Ok(w) => w,
            Err(e) => {
                // The API server validated the object; failing to read it is our limit,
                // not the user's mistake: admit and say so.
                let mut ev = Evaluation::skipped(subject.clone(), mode, "unreadable");
                ev.advisories
                    .push(format!("pullcheck could not read {subject}: {e}"));
                return ev;
            }
        };
        if s.kind == WorkloadKind::Pod && workload.controller.is_some() && !s.ephemeral {
            match self.settings.owned_pods {
                OwnedPods::Skip => {
                    return Evaluation::skipped(subject, mode, "owned by a controller")
                }
                OwnedPods::Audit => mode = Mode::Audit,
                OwnedPods::Check => {}
            }
        }

        // UPDATE: only what changed can change a pull.
        let change = match &s.old {
            Some(old) => workload::diff(&old.spec, &workload.spec),
            None => PullChange::Everything,
        };
        let only: Option<BTreeSet<String>> = match change {
            PullChange::Nothing => {
                return Evaluation::skipped(
                    subject,
                    mode,
                    "no change to images, pull secrets, ServiceAccount or platform",
                )
            }
            PullChange::Images(images) => Some(images.into_iter().collect()),
            PullChange::Everything => None,
        };

        let mut advisories: Vec<String> = Vec::new();
        let mut uses: Vec<ImageUse> = Vec::new();
        for u in workload::images(&workload.spec) {
            if only.as_ref().is_some_and(|o| !o.contains(&u.image)) {
                continue;
            }
            if u.pull_never() {
                advisories.push(format!(
                    "{} ({}): imagePullPolicy Never, not checked: the image must already be on the node",
                    place(&u),
                    u.image
                ));
                continue;
            }
            if self.exempt_image(&u.image) {
                continue;
            }
            uses.push(u);
        }
        let mut ev = Evaluation {
            subject,
            mode,
            skipped: None,
            uses: Vec::new(),
            checks: Vec::new(),
            findings: Vec::new(),
            advisories,
        };
        if uses.is_empty() {
            return ev;
        }

        let secrets = self
            .secrets(s.service_account_rule, &workload.spec, s.namespace)
            .await;
        let constraint = PlatformConstraint::of(&workload.spec);
        let wanted = self.wanted_platforms(&constraint);

        // The same image in several containers is resolved once.
        let mut distinct: Vec<String> = uses.iter().map(|u| u.image.clone()).collect();
        distinct.sort();
        distinct.dedup();
        let checks = self
            .checker
            .check_all(
                &distinct,
                &secrets.keyring,
                &wanted,
                Context::Cluster,
                deadline,
                self.settings.concurrency,
            )
            .await;
        let namespace = s.namespace;
        let findings = &mut ev.findings;
        let advisories = &mut ev.advisories;
        for (name, problem) in &secrets.broken {
            findings.push(Located {
                place: format!("imagePullSecrets: secret {name:?}"),
                image: String::new(),
                finding: Finding {
                    class: FindingClass::SecretInvalid,
                    message: format!("{problem}: the kubelet fails every image pull of this Pod"),
                    hint: Some(format!("recreate it: kubectl create secret docker-registry {name} -n {namespace} --docker-server=<registry> --docker-username=<user> --docker-password=<password>")),
                },
            });
        }
        let unattached = self
            .unattached_suggestions(&checks, &secrets, namespace)
            .await;
        for u in &uses {
            // `checks` holds each distinct image once, sorted.
            let Ok(at) = checks.binary_search_by(|c| c.image.as_str().cmp(&u.image)) else {
                continue;
            };
            let check = &checks[at];
            if !check.missing_platforms.is_empty() && !constraint.is_constrained() {
                let missing: Vec<String> = check
                    .missing_platforms
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                let have: Vec<String> = check
                    .resolved
                    .as_ref()
                    .map(|r| {
                        r.platforms
                            .platforms
                            .iter()
                            .map(|p| p.architecture.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                advisories.push(format!(
                    "{} ({}): no {} variant: Pods placed on such nodes fail to pull; add nodeSelector kubernetes.io/arch: {}",
                    place(u),
                    u.image,
                    missing.join(", "),
                    have.first().cloned().unwrap_or_default()
                ));
            }
            let Some(finding) = &check.finding else {
                continue;
            };
            let finding = self.explain(
                finding,
                check,
                &secrets,
                namespace,
                &constraint,
                &unattached,
            );
            findings.push(Located {
                place: place(u),
                image: u.image.clone(),
                finding,
            });
        }
        if secrets.broken.is_empty() && !secrets.missing.is_empty() && findings.is_empty() {
            advisories.push(format!(
                "{}: {} not found in namespace {namespace} (the kubelet skips missing pull secrets)",
                secrets.origin,
                quote_list(&secrets.missing)
            ));
        }
        ev.uses = uses;
        ev.checks = checks;
        ev
    }

    fn exempt_image(&self, image: &str) -> bool {
        if self.settings.exempt_images.is_empty() {
            return false;
        }
        let canonical = ImageRef::parse(image).map(|r| r.canonical()).ok();
        self.settings.exempt_images.iter().any(|g| {
            glob_match(g, &image.to_ascii_lowercase())
                || canonical.as_deref().is_some_and(|c| glob_match(g, c))
        })
    }

    /// Pull secrets as the kubelet reads them: the Pod's `imagePullSecrets`, or — for pod
    /// templates, which ServiceAccount admission never touches — its ServiceAccount's.
    /// Reused, without a read, for as long as the cluster's cache promises the same answers.
    async fn secrets(
        &self,
        service_account_rule: bool,
        spec: &workload::PodSpec,
        namespace: &str,
    ) -> Arc<Secrets> {
        let names = workload::pull_secret_names(spec);
        let service_account =
            (names.is_empty() && service_account_rule).then(|| workload::service_account(spec));
        let key = {
            use std::hash::BuildHasher;
            self.parsed_hasher
                .hash_one((namespace, &names, &service_account))
        };
        if let Some(hit) = self.secret_sets.get(&key) {
            if hit.namespace == namespace
                && hit.names == names
                && hit.service_account == service_account
                && std::time::Instant::now() < hit.valid_until
            {
                return Arc::clone(&hit.secrets);
            }
        }
        let secrets = Arc::new(
            self.read_secrets(&names, service_account.as_deref(), namespace)
                .await,
        );
        if secrets.cluster_error.is_none() {
            let sa = service_account.as_deref().map(|sa| {
                let names = secrets.service_account_found;
                (sa, names.then_some(secrets.names.as_slice()))
            });
            let reads = secrets.parsed.as_ref().map_or(&[][..], |p| &p.reads[..]);
            if let Some(valid_until) = self.cluster.answers_hold_until(namespace, sa, reads).await {
                self.secret_sets.insert(
                    key,
                    Arc::new(SecretSet {
                        namespace: namespace.to_owned(),
                        names,
                        service_account,
                        secrets: Arc::clone(&secrets),
                        valid_until,
                    }),
                );
            }
        }
        secrets
    }

    async fn read_secrets(
        &self,
        names: &[String],
        service_account: Option<&str>,
        namespace: &str,
    ) -> Secrets {
        let mut out = Secrets {
            keyring: Arc::clone(&self.node_only),
            origin: "imagePullSecrets".into(),
            names: names.to_vec(),
            missing: Vec::new(),
            wrong_type: Vec::new(),
            broken: Vec::new(),
            cluster_error: None,
            service_account_found: false,
            parsed: None,
        };
        if let Some(sa) = service_account {
            match self
                .cluster
                .service_account_pull_secrets(namespace, sa)
                .await
            {
                Ok(Some(names)) => {
                    out.names = names;
                    out.service_account_found = true;
                    out.origin = format!("imagePullSecrets of ServiceAccount {sa:?}");
                }
                Ok(None) => {}
                Err(e) => {
                    out.cluster_error = Some(e);
                    return out;
                }
            }
        }
        if out.names.is_empty() {
            return out;
        }
        let reads = futures::future::join_all(
            out.names
                .iter()
                .map(|name| self.cluster.secret(namespace, name)),
        )
        .await;
        let mut read: Vec<(&str, Option<Arc<SecretData>>)> = Vec::with_capacity(reads.len());
        for (name, r) in out.names.iter().zip(reads) {
            match r {
                Ok(secret) => read.push((name, secret)),
                Err(e) => out.cluster_error = Some(e),
            }
        }
        let parsed = if out.cluster_error.is_some() {
            // What could be read still counts; nothing of a partial read is kept.
            Arc::new(self.parse_secrets(namespace, &read))
        } else {
            self.parsed_secrets(namespace, &read)
        };
        out.keyring = Arc::clone(&parsed.keyring);
        out.missing.clone_from(&parsed.missing);
        out.wrong_type.clone_from(&parsed.wrong_type);
        out.broken.clone_from(&parsed.broken);
        out.parsed = Some(parsed);
        out
    }

    /// The keyring of these Secrets, parsed once and reused for as long as every one of them
    /// reads back the same (the cluster's cache hands out the same `Arc` until it re-reads;
    /// a re-read Secret with other contents is parsed again).
    fn parsed_secrets(
        &self,
        namespace: &str,
        read: &[(&str, Option<Arc<SecretData>>)],
    ) -> Arc<ParsedSecrets> {
        let key = {
            use std::hash::{BuildHasher, Hash, Hasher};
            let mut h = self.parsed_hasher.build_hasher();
            namespace.hash(&mut h);
            for (name, _) in read {
                name.hash(&mut h);
            }
            h.finish()
        };
        if let Some(hit) = self.parsed.get(&key) {
            let same = |a: &Option<Arc<SecretData>>, b: &Option<Arc<SecretData>>| match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                _ => false,
            };
            if hit.namespace == namespace
                && hit.reads.len() == read.len()
                && hit
                    .reads
                    .iter()
                    .zip(read)
                    .all(|((na, a), (nb, b))| na == nb && same(a, b))
            {
                return hit;
            }
        }
        let parsed = Arc::new(self.parse_secrets(namespace, read));
        self.parsed.insert(key, Arc::clone(&parsed));
        parsed
    }

    fn parse_secrets(
        &self,
        namespace: &str,
        reads: &[(&str, Option<Arc<SecretData>>)],
    ) -> ParsedSecrets {
        let mut keyring = Keyring::new();
        let mut out = ParsedSecrets {
            namespace: namespace.to_owned(),
            reads: Vec::with_capacity(reads.len()),
            keyring: Arc::clone(&self.node_only),
            missing: Vec::new(),
            wrong_type: Vec::new(),
            broken: Vec::new(),
        };
        for (name, read) in reads {
            let name = (*name).to_owned();
            match read {
                None => out.missing.push(name.clone()),
                Some(secret) => {
                    match credentials::parse_secret(&secret.secret_type, &secret.data) {
                        Ok(Some(config)) => {
                            keyring.add(&format!("secret/{name}"), &config);
                        }
                        Ok(None) => out
                            .wrong_type
                            .push((name.clone(), secret.secret_type.clone())),
                        Err(e) => out.broken.push((name.clone(), e.to_string())),
                    }
                }
            }
            out.reads.push((name, read.clone()));
        }
        if !keyring.is_empty() {
            out.keyring = Arc::new(keyring.with_fallback(Arc::clone(&self.node_keyring)));
        }
        out
    }

    /// The platforms the Pod may run on: the cluster's nodes that its constraints allow,
    /// else what the constraints name.
    fn wanted_platforms(&self, constraint: &PlatformConstraint) -> Vec<Platform> {
        if let Some(nodes) = self.cluster.node_platforms().filter(|n| !n.is_empty()) {
            let allowed = constraint.filter(&nodes);
            if !allowed.is_empty() {
                return allowed;
            }
        }
        constraint.explicit_platforms().unwrap_or_default()
    }

    /// For images refused for lack of credentials: secrets of the namespace that hold
    /// credentials for the image's registry but are not attached. Read only when needed.
    async fn unattached_suggestions(
        &self,
        checks: &[Arc<ImageCheck>],
        secrets: &Secrets,
        namespace: &str,
    ) -> HashMap<String, Vec<String>> {
        let needs: Vec<&Arc<ImageCheck>> = checks
            .iter()
            .filter(|c| c.class() == Some(FindingClass::Unauthorized))
            .collect();
        let mut out = HashMap::new();
        if needs.is_empty() || secrets.cluster_error.is_some() {
            return out;
        }
        let Ok(all) = self.cluster.pull_secrets_in(namespace).await else {
            return out;
        };
        for check in needs {
            let Ok(reference) = ImageRef::parse(&check.image) else {
                continue;
            };
            let mut names = Vec::new();
            for (name, secret) in &all {
                if secrets.names.contains(name) {
                    continue;
                }
                if let Ok(Some(config)) =
                    credentials::parse_secret(&secret.secret_type, &secret.data)
                {
                    let mut k = Keyring::new();
                    k.add(name, &config);
                    if !k.lookup(&reference).is_empty() {
                        names.push(name.clone());
                    }
                }
            }
            out.insert(check.image.clone(), names);
        }
        out
    }

    /// Rewrites a registry finding in terms of the Pod's secrets.
    fn explain(
        &self,
        finding: &Finding,
        check: &ImageCheck,
        secrets: &Secrets,
        namespace: &str,
        constraint: &PlatformConstraint,
        unattached: &HashMap<String, Vec<String>>,
    ) -> Finding {
        let mut f = finding.clone();
        if let Some(age) = check.stale_age {
            f.message.push_str(&format!(
                "; the last good answer ({} ago) says it pulls",
                human_duration(age)
            ));
        }
        if f.class == FindingClass::PlatformMismatch && constraint.is_constrained() {
            f.message
                .push_str(&format!(" (the Pod requires {})", constraint.describe()));
        }
        if f.class != FindingClass::Unauthorized {
            return f;
        }
        if let Some(e) = &secrets.cluster_error {
            return Finding {
                class: FindingClass::Unavailable,
                message: format!(
                    "{}; pullcheck could not read the pull secrets: {e}",
                    f.message
                ),
                hint: None,
            };
        }
        if !check.credentials_tried.is_empty() {
            return f;
        }
        let registry = ImageRef::parse(&check.image)
            .map(|r| r.domain().to_string())
            .unwrap_or_default();
        let suggestion = unattached
            .get(&check.image)
            .filter(|names| !names.is_empty())
            .map(|names| {
                let entries: Vec<String> = names.iter().map(|n| format!("{{name: {n}}}")).collect();
                format!(
                    "secret {} in {namespace} has credentials for {registry}: add imagePullSecrets: [{}]",
                    quote_list(names),
                    entries.join(", ")
                )
            });
        let create = format!(
            "kubectl create secret docker-registry <name> -n {namespace} --docker-server={registry} --docker-username=<user> --docker-password=<password>, then list it in imagePullSecrets"
        );
        if !secrets.missing.is_empty() {
            return Finding {
                class: FindingClass::SecretMissing,
                message: format!(
                    "{}; {} {} not exist in namespace {namespace} (the kubelet skips it and pulls anonymously)",
                    f.message,
                    quote_list(&secrets.missing),
                    if secrets.missing.len() == 1 { "does" } else { "do" }
                ),
                hint: Some(suggestion.unwrap_or_else(|| format!("create it: {create}"))),
            };
        }
        if !secrets.wrong_type.is_empty() {
            let list: Vec<String> = secrets
                .wrong_type
                .iter()
                .map(|(n, t)| format!("{n:?} has type {t:?}"))
                .collect();
            return Finding {
                class: FindingClass::SecretInvalid,
                message: format!(
                    "{}; secret {}: the kubelet reads only kubernetes.io/dockerconfigjson and kubernetes.io/dockercfg secrets",
                    f.message,
                    list.join(", ")
                ),
                hint: Some(suggestion.unwrap_or(create)),
            };
        }
        if !secrets.names.is_empty() {
            f.message = format!(
                "{}; none of the pull secrets ({}) has credentials for {registry}",
                f.message,
                quote_list(&secrets.names)
            );
        }
        f.hint = Some(suggestion.unwrap_or(create));
        f
    }

    /// Fills the response: decision, warnings, audit annotations. Returns the decision label.
    fn finish(&self, response: &mut AdmissionResponse, ev: &Evaluation) -> &'static str {
        let Decision { deny, mut warnings } = ev.decision(&self.settings.actions);
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
}

fn display_name(req: &AdmissionRequest<DynamicObject>) -> String {
    if !req.name.is_empty() {
        return req.name.clone();
    }
    req.object
        .as_ref()
        .and_then(|o| o.metadata.generate_name.clone())
        .map(|g| format!("{g}*"))
        .unwrap_or_else(|| "<unnamed>".into())
}

/// `container "web"`, `initContainer "migrate"`, …: how findings name a place.
pub fn place(u: &ImageUse) -> String {
    format!("{} {:?}", u.slot, u.name)
}

fn quote_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{InMemoryCluster, SecretData};
    use crate::kubelet::credentials::Credential;
    use crate::registry::cache::{CacheConfig, CachedRegistry};
    use crate::registry::{
        AuthProblem, ImagePlatforms, Registry, RegistryConfig, RegistryError, Resolved,
    };
    use async_trait::async_trait;
    use kube::core::admission::AdmissionReview;
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
                }),
            })
        }
    }

    fn webhook(cluster: Arc<dyn Cluster>) -> Webhook {
        let metrics = Arc::new(Metrics::default());
        let cached = CachedRegistry::new(
            Arc::new(Fake),
            &CacheConfig::default(),
            Arc::clone(&metrics),
        );
        Webhook::new(
            Arc::new(Checker::new(
                Arc::new(cached),
                Arc::new(RegistryConfig::default()),
            )),
            cluster,
            Arc::new(Keyring::new()),
            Settings {
                default_mode: Mode::Enforce,
                ..Settings::default()
            },
            metrics,
        )
    }

    /// A CREATE of `object` in namespace "ns", as the API server sends it.
    fn create_review(
        group: &str,
        resource: &str,
        object: serde_json::Value,
    ) -> AdmissionRequest<DynamicObject> {
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(serde_json::json!({
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
        .unwrap();
        review.try_into().unwrap()
    }

    fn pod_review(image: &str, secrets: &[&str]) -> AdmissionRequest<DynamicObject> {
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

    async fn review(w: &Webhook, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let deadline = Instant::now() + Duration::from_secs(5);
        w.review(req, None, deadline).await.response
    }

    #[tokio::test]
    async fn missing_secret_is_named_when_the_image_needs_it() {
        let cluster = Arc::new(InMemoryCluster::new());
        let w = webhook(cluster.clone());
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

    fn deployment_review(image: &str, service_account: &str) -> AdmissionRequest<DynamicObject> {
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
        let w = webhook(cluster.clone());
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
        let w = webhook(cluster.clone());
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
        let w = webhook(cluster);
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
        let w = webhook(cluster);
        let resp = review(&w, &pod_review("r.example/private/app:1", &["regcred"])).await;
        assert!(resp.allowed, "{}", resp.result.message);
        assert!(resp.warnings.unwrap()[0].contains("could not read the pull secrets"));
    }

    #[tokio::test]
    async fn image_exemptions_and_audit_annotations() {
        let cluster = Arc::new(InMemoryCluster::new());
        let mut w = webhook(cluster);
        let resp = review(&w, &pod_review("r.example/public/app:missing", &[])).await;
        assert!(!resp.allowed);
        assert!(resp.audit_annotations["findings"].contains("tag_not_found"));
        assert_eq!(resp.audit_annotations["mode"], "enforce");
        w.settings.exempt_images = vec!["r.example/public/*".into()];
        let resp = review(&w, &pod_review("r.example/public/app:missing", &[])).await;
        assert!(resp.allowed);
    }
}
