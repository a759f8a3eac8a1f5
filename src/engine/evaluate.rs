//! The engine: one object (a [`Subject`], from an AdmissionRequest or a manifest) in, an
//! [`Evaluation`] out — what is exempt or skipped, which images are pulled where, the
//! verdict on each image with the Pod's credentials and platforms, findings located and
//! explained. The webhook and `pullcheck check` both decide through [`Engine::evaluate`].

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::time::Instant;

use super::advice::{Advice, AdviceSettings};
use super::advisor::Advisor;
use super::explain::{quote_list, Context};
pub use super::finding::place;
use super::finding::{Finding, FindingClass, Located};
use super::image::{Checker, ImageCheck};
use super::policy::{self, Actions, Decision, Mode};
use super::secrets::{in_pod_terms, PullSecrets, Secrets};
use crate::cluster::Cluster;
use crate::kubelet::credentials::Keyring;
use crate::kubelet::platform::Platform;
use crate::kubelet::reference::ImageRef;
use crate::kubelet::workload::{
    self, ImageUse, PlatformConstraint, PullChange, Workload, WorkloadError, WorkloadKind,
};
use crate::metrics::Metrics;
use crate::text::glob_match;

/// What to do with Pods owned by a controller (their template was checked when the
/// Deployment, Job, … was admitted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OwnedPods {
    /// Check them like any Pod, in the route's mode.
    Check,
    /// Check them and record findings in audit annotations only.
    Audit,
    /// Do not check them at all.
    Skip,
}

/// The engine's settings, from flags and the config file (`check`: enforce, every Pod).
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
    /// Thresholds of advice (its classes' actions are in `actions`).
    pub advice: AdviceSettings,
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
            advice: AdviceSettings::default(),
        }
    }
}

/// The decision engine shared by the webhook and `pullcheck check`: images checked the way
/// the kubelet pulls them, with the Pod's pull secrets and platforms, under the settings.
pub struct Engine {
    pub checker: Arc<Checker>,
    pub cluster: Arc<dyn Cluster>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pull_secrets: PullSecrets,
}

impl Engine {
    pub fn new(
        checker: Arc<Checker>,
        cluster: Arc<dyn Cluster>,
        node_keyring: Arc<Keyring>,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            checker,
            pull_secrets: PullSecrets::new(Arc::clone(&cluster), node_keyring),
            cluster,
            settings,
            metrics,
        }
    }
}

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
    /// Advice on images that pull today but are fragile (see [`super::advice`]); the
    /// settings say which classes warn and which deny.
    pub advice: Vec<Advice>,
}

impl Evaluation {
    pub(crate) fn skipped(subject: String, mode: Mode, why: impl Into<String>) -> Self {
        Self {
            subject,
            mode,
            skipped: Some(why.into()),
            uses: Vec::new(),
            checks: Vec::new(),
            findings: Vec::new(),
            advisories: Vec::new(),
            advice: Vec::new(),
        }
    }

    /// The policy's decision for this evaluation.
    pub fn decision(&self, actions: &Actions) -> Decision {
        policy::decide(
            self.mode,
            actions,
            &self.subject,
            &self.findings,
            &self.advice,
        )
    }
}

/// An object made ready to check: the images to resolve, with the credentials and
/// platforms of its Pod ([`Engine::prepare`]); [`Engine::conclude`] turns the checks into
/// the [`Evaluation`]. Between the two a caller may check the images itself (the scan
/// checks each distinct image × credentials × platforms of a whole cluster once).
pub struct Prepared {
    evaluation: Evaluation,
    namespace: String,
    uses: Vec<ImageUse>,
    /// The images to check, distinct, sorted.
    images: Vec<String>,
    secrets: Option<Arc<Secrets>>,
    constraint: PlatformConstraint,
    wanted: Vec<Platform>,
}

impl Prepared {
    fn done(evaluation: Evaluation) -> Self {
        Self {
            evaluation,
            namespace: String::new(),
            uses: Vec::new(),
            images: Vec::new(),
            secrets: None,
            constraint: PlatformConstraint::default(),
            wanted: Vec::new(),
        }
    }

    /// The distinct images to check (none when the object was skipped).
    pub fn images(&self) -> &[String] {
        &self.images
    }

    /// The keyring the kubelet would use for the Pod (`None` when nothing is checked).
    pub fn keyring(&self) -> Option<&Arc<Keyring>> {
        self.secrets.as_ref().map(|s| &s.keyring)
    }

    /// The platforms the Pod may run on.
    pub fn wanted(&self) -> &[Platform] {
        &self.wanted
    }

    /// Why nothing is checked, when nothing is.
    pub fn skipped(&self) -> Option<&str> {
        self.evaluation.skipped.as_deref()
    }
}

impl Engine {
    /// Checks one object: the decision path shared by the webhook and `pullcheck check`.
    pub async fn evaluate(&self, s: &Subject<'_>, mode: Mode, deadline: Instant) -> Evaluation {
        let prepared = self.prepare(s, mode).await;
        let Some(keyring) = prepared.keyring().cloned() else {
            return prepared.evaluation;
        };
        let checks = self
            .checker
            .check_all(
                &prepared.images,
                &keyring,
                &prepared.wanted,
                Context::Cluster,
                deadline,
                self.settings.concurrency,
            )
            .await;
        self.conclude(prepared, checks).await
    }

    /// Everything before the registry: exemptions, the images (and what is not checked),
    /// the Pod's pull secrets and platforms.
    pub async fn prepare(&self, s: &Subject<'_>, mode: Mode) -> Prepared {
        let mut mode = mode;
        let subject = format!("{} {}/{}", s.kind.as_str(), s.namespace, s.name);
        if self
            .settings
            .exempt_namespaces
            .iter()
            .any(|g| glob_match(g, s.namespace))
        {
            return Prepared::done(Evaluation::skipped(subject, mode, "namespace exempt"));
        }
        let workload = match &s.workload {
            Ok(w) => w,
            Err(e) => {
                // The API server validated the object; failing to read it is our limit,
                // not the user's mistake: admit and say so.
                let mut ev = Evaluation::skipped(subject.clone(), mode, "unreadable");
                ev.advisories
                    .push(format!("pullcheck could not read {subject}: {e}"));
                return Prepared::done(ev);
            }
        };
        if s.kind == WorkloadKind::Pod && workload.controller.is_some() && !s.ephemeral {
            match self.settings.owned_pods {
                OwnedPods::Skip => {
                    return Prepared::done(Evaluation::skipped(
                        subject,
                        mode,
                        "owned by a controller",
                    ))
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
                return Prepared::done(Evaluation::skipped(
                    subject,
                    mode,
                    "no change to images, pull secrets, ServiceAccount or platform",
                ))
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
        let evaluation = Evaluation {
            subject,
            mode,
            skipped: None,
            uses: Vec::new(),
            checks: Vec::new(),
            findings: Vec::new(),
            advisories,
            advice: Vec::new(),
        };
        if uses.is_empty() {
            return Prepared::done(evaluation);
        }

        let secrets = self
            .pull_secrets
            .of(s.service_account_rule, &workload.spec, s.namespace)
            .await;
        let constraint = PlatformConstraint::of(&workload.spec);
        let wanted = self.wanted_platforms(&constraint);
        // The same image in several containers is resolved once.
        let mut images: Vec<String> = uses.iter().map(|u| u.image.clone()).collect();
        images.sort();
        images.dedup();
        Prepared {
            evaluation,
            namespace: s.namespace.to_owned(),
            uses,
            images,
            secrets: Some(secrets),
            constraint,
            wanted,
        }
    }

    /// The evaluation of a prepared object from the checks of its images (those of
    /// [`Prepared::images`], in any order; images without a check are left out).
    pub async fn conclude(
        &self,
        prepared: Prepared,
        mut checks: Vec<Arc<ImageCheck>>,
    ) -> Evaluation {
        let Prepared {
            evaluation: mut ev,
            namespace,
            uses,
            secrets,
            constraint,
            ..
        } = prepared;
        let Some(secrets) = secrets else {
            return ev;
        };
        checks.sort_by(|a, b| a.image.cmp(&b.image));
        checks.dedup_by(|a, b| a.image == b.image);
        let namespace = namespace.as_str();
        let findings = &mut ev.findings;
        let advisories = &mut ev.advisories;
        let advisor = Advisor {
            settings: &self.settings.advice,
            actions: &self.settings.actions,
            budgets: self.checker.budgets(),
        };
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
            .pull_secrets
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
                advisor.advise(u, check, &mut ev.advice);
                continue;
            };
            let finding = in_pod_terms(
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

    /// Whether `image` is exempt (`exemptImages`): never checked.
    pub fn exempt_image(&self, image: &str) -> bool {
        if self.settings.exempt_images.is_empty() {
            return false;
        }
        let canonical = ImageRef::parse(image).map(|r| r.canonical()).ok();
        self.settings.exempt_images.iter().any(|g| {
            glob_match(g, &image.to_ascii_lowercase())
                || canonical.as_deref().is_some_and(|c| glob_match(g, c))
        })
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
}
