//! Explanations: a registry error becomes a [`Finding`] with the fix in the user's terms
//! ([`finding_for`]), for a check in CI or in the cluster ([`Context`]). What a finding
//! means for a Pod's pull secrets is said by `secrets::in_pod_terms`.

use super::finding::{Finding, FindingClass};
use crate::kubelet::credentials::{Keyring, MatchedCredential};
use crate::kubelet::reference::ImageRef;
use crate::registry::{AuthProblem, RegistryError};

/// Where a check's credentials come from, for hints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// `pullcheck check` with `--docker-config`.
    Cli,
    /// An admission review: credentials come from pull secrets.
    Cluster,
}

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

/// `"a", "b"`: names as messages quote them.
pub(super) fn quote_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}
