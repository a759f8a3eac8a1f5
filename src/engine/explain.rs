//! Explanations: a registry error becomes a [`Finding`] with the fix in the user's terms
//! ([`finding_for`]), and a finding on an image is then said in terms of the Pod's pull
//! secrets ([`in_pod_terms`]: a missing or mistyped secret, an unattached one that would
//! work, or the `kubectl create secret` to run).

use std::collections::HashMap;

use super::finding::{Finding, FindingClass};
use super::image::{Context, ImageCheck};
use super::secrets::Secrets;
use crate::kubelet::credentials::{Keyring, MatchedCredential};
use crate::kubelet::reference::ImageRef;
use crate::kubelet::workload::PlatformConstraint;
use crate::registry::{AuthProblem, RegistryError};
use crate::text::human_duration;

/// The finding for a registry error, with the fix in the user's terms.
pub fn finding_for(
    err: &RegistryError,
    reference: &ImageRef,
    keyring: &Keyring,
    tried: &[MatchedCredential],
    context: Context,
) -> Finding {
    let domain = reference.domain();
    let hint = match err {
        RegistryError::TagNotFound { closest, .. } if !closest.is_empty() => {
            Some(format!("existing tags close to it: {}", closest.join(", ")))
        }
        RegistryError::TagNotFound { .. } => {
            Some("check the tag; it may have been deleted by a retention policy".into())
        }
        RegistryError::RepositoryNotFound { .. } => Some(format!(
            "check the repository path {:?} and the registry host {domain:?}",
            reference.path()
        )),
        RegistryError::Unauthorized {
            problem: AuthProblem::NoCredentials,
            ..
        } => Some(match context {
            Context::Cli => format!("give credentials for {domain} with --docker-config"),
            Context::Cluster => {
                let available: Vec<String> = keyring
                    .keys()
                    .into_iter()
                    .filter(|(key, _)| key.split('/').next() == Some(domain))
                    .flat_map(|(_, sources)| sources)
                    .collect();
                if available.is_empty() {
                    format!("create a pull secret: kubectl create secret docker-registry <name> --docker-server={domain} --docker-username=<user> --docker-password=<password>, and list it in imagePullSecrets")
                } else {
                    format!("attach {} (imagePullSecrets)", available.join(", "))
                }
            }
        }),
        RegistryError::Unauthorized { .. } | RegistryError::Denied { .. } => {
            let sources: Vec<&str> = tried.iter().map(|m| m.source.as_str()).collect();
            Some(if sources.is_empty() {
                format!("use credentials allowed to pull from {domain}")
            } else {
                format!(
                    "check the credentials in {} for {domain}",
                    sources.join(", ")
                )
            })
        }
        RegistryError::RateLimited { .. } => {
            Some("use authenticated pulls or a mirror to raise the limit".into())
        }
        RegistryError::Unavailable { .. } | RegistryError::Timeout { .. } => None,
        RegistryError::Blocked { .. } => Some("adjust the registry host allow/deny list".into()),
        RegistryError::DigestNotFound { .. } => Some(
            "the digest may belong to another repository, or have been garbage collected".into(),
        ),
    };
    Finding {
        class: FindingClass::of(err),
        message: err.to_string(),
        hint,
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

/// `"a", "b"`: names as messages quote them.
pub(super) fn quote_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
