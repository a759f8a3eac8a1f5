//! A Pod's pull secrets as the kubelet reads them: its `imagePullSecrets` (or, for pod
//! templates, its ServiceAccount's), read from the cluster and parsed into the keyring the
//! kubelet builds, with the node's own credentials after them; missing, mistyped and
//! broken secrets noted. Parsed Secrets and whole secret sets are kept exactly as long as
//! the cluster's cache promises the same answers, so a warm review reads and parses nothing.
//! A finding on an image is then said in terms of these secrets ([`in_pod_terms`]: a
//! missing or mistyped secret, an unattached one that would work, or the
//! `kubectl create secret` to run).

use std::collections::HashMap;
use std::sync::Arc;

use super::explain::quote_list;
use super::finding::{Finding, FindingClass};
use super::image::ImageCheck;
use crate::cluster::{Cluster, ClusterError, SecretData};
use crate::kubelet::credentials::{self, Keyring};
use crate::kubelet::reference::ImageRef;
use crate::kubelet::workload::{self, PlatformConstraint};
use crate::text::human_duration;

/// The pull secrets of Pods, read through the cluster and kept parsed.
pub(super) struct PullSecrets {
    cluster: Arc<dyn Cluster>,
    /// The webhook's own credentials (`--docker-config`): what the nodes hold besides pull
    /// secrets, tried after them like the kubelet's node keyring.
    node_keyring: Arc<Keyring>,
    /// An empty keyring with the node's after it: the keyring of a Pod without secrets.
    node_only: Arc<Keyring>,
    /// Parsed pull secrets by hash of (namespace, names); a hit is compared in full.
    parsed: moka::sync::Cache<u64, Arc<ParsedSecrets>, foldhash::fast::RandomState>,
    parsed_hasher: foldhash::fast::RandomState,
    /// Secret sets by hash of (namespace, names, ServiceAccount); a hit is compared in full.
    secret_sets: moka::sync::Cache<u64, Arc<SecretSet>, foldhash::fast::RandomState>,
}

/// The credentials of a PodSpec as the kubelet builds them.
pub(super) struct Secrets {
    pub(super) keyring: Arc<Keyring>,
    /// Where the names came from: `imagePullSecrets` or `ServiceAccount "x"`.
    pub(super) origin: String,
    pub(super) names: Vec<String>,
    pub(super) missing: Vec<String>,
    /// (name, type) of secrets the kubelet ignores.
    pub(super) wrong_type: Vec<(String, String)>,
    /// (name, problem) of secrets that make the kubelet fail every pull.
    pub(super) broken: Vec<(String, String)>,
    pub(super) cluster_error: Option<ClusterError>,
    /// Whether the ServiceAccount, when one was read, exists.
    pub(super) service_account_found: bool,
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

impl PullSecrets {
    pub(super) fn new(cluster: Arc<dyn Cluster>, node_keyring: Arc<Keyring>) -> Self {
        let node_only = Arc::new(Keyring::new().with_fallback(Arc::clone(&node_keyring)));
        Self {
            cluster,
            node_keyring,
            node_only,
            parsed: moka::sync::Cache::builder()
                .max_capacity(PARSED_SECRETS_BYTES)
                .weigher(|_, v: &Arc<ParsedSecrets>| v.weight())
                .time_to_idle(std::time::Duration::from_secs(600))
                .build_with_hasher(foldhash::fast::RandomState::default()),
            parsed_hasher: foldhash::fast::RandomState::default(),
            secret_sets: moka::sync::Cache::builder()
                .max_capacity(SECRET_SETS)
                .expire_after(SecretSetExpiry)
                .build_with_hasher(foldhash::fast::RandomState::default()),
        }
    }
    /// Pull secrets as the kubelet reads them: the Pod's `imagePullSecrets`, or — for pod
    /// templates, which ServiceAccount admission never touches — its ServiceAccount's.
    /// Reused, without a read, for as long as the cluster's cache promises the same answers.
    pub(super) async fn of(
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

    /// For images refused for lack of credentials: secrets of the namespace that hold
    /// credentials for the image's registry but are not attached. Read only when needed.
    pub(super) async fn unattached_suggestions(
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
}

/// Rewrites a registry finding in terms of the Pod's secrets.
pub(super) fn in_pod_terms(
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
