//! The vocabulary of verdicts, in one place: a [`Finding`] (why an image would not pull, or
//! might not: its class, what is wrong in plain words, how to fix it), its
//! [`FindingClass`] (what the policy acts on; definite or transient), a finding
//! [`Located`] in the object, and the class of each registry error.

use serde::{Deserialize, Serialize};

use crate::kubelet::workload::ImageUse;
use crate::registry::RegistryError;
use crate::text::{clip, QUOTE_LIMIT};

/// The class of a finding: what the policy decides on (deny, warn, audit) and what
/// `pullcheck check --format json` prints as `verdict`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FindingClass {
    InvalidReference,
    RepositoryNotFound,
    TagNotFound,
    DigestNotFound,
    Unauthorized,
    Denied,
    PlatformMismatch,
    SecretMissing,
    SecretInvalid,
    RateLimited,
    Unavailable,
    Timeout,
    Blocked,
}

impl FindingClass {
    /// The snake_case name used in JSON output, metrics labels and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidReference => "invalid_reference",
            Self::RepositoryNotFound => "repository_not_found",
            Self::TagNotFound => "tag_not_found",
            Self::DigestNotFound => "digest_not_found",
            Self::Unauthorized => "unauthorized",
            Self::Denied => "denied",
            Self::PlatformMismatch => "platform_mismatch",
            Self::SecretMissing => "secret_missing",
            Self::SecretInvalid => "secret_invalid",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Blocked => "blocked",
        }
    }

    /// Definite classes are answers of the registry (or of the input itself) that will not
    /// change by retrying; transient ones say nothing about whether the kubelet could pull.
    pub fn is_definite(self) -> bool {
        !matches!(
            self,
            Self::RateLimited | Self::Unavailable | Self::Timeout | Self::Blocked
        )
    }

    pub const ALL: [FindingClass; 13] = [
        Self::InvalidReference,
        Self::RepositoryNotFound,
        Self::TagNotFound,
        Self::DigestNotFound,
        Self::Unauthorized,
        Self::Denied,
        Self::PlatformMismatch,
        Self::SecretMissing,
        Self::SecretInvalid,
        Self::RateLimited,
        Self::Unavailable,
        Self::Timeout,
        Self::Blocked,
    ];
}

impl std::fmt::Display for FindingClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FindingClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown finding class {s:?}"))
    }
}

impl FindingClass {
    /// The class of a registry error. Registries answer with a subset of the classes: the
    /// others come from the reference, the pull secrets or the platforms.
    pub fn of(err: &RegistryError) -> Self {
        match err {
            RegistryError::RepositoryNotFound { .. } => Self::RepositoryNotFound,
            RegistryError::TagNotFound { .. } => Self::TagNotFound,
            RegistryError::DigestNotFound { .. } => Self::DigestNotFound,
            RegistryError::Unauthorized { .. } => Self::Unauthorized,
            RegistryError::Denied { .. } => Self::Denied,
            RegistryError::RateLimited { .. } => Self::RateLimited,
            RegistryError::Unavailable { .. } => Self::Unavailable,
            RegistryError::Timeout { .. } => Self::Timeout,
            RegistryError::Blocked { .. } => Self::Blocked,
        }
    }
}

/// Why an image would not pull (or might not): the class the policy acts on, what is wrong
/// in plain words, and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub class: FindingClass,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// `container "web"`, `initContainer "migrate"`, …: how findings and advice name a place.
pub fn place(u: &ImageUse) -> String {
    format!("{} {:?}", u.slot, u.name)
}

/// One finding on one image of the object, located for the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Located {
    /// `container "web"`, `initContainer "migrate"`, `ephemeralContainer "debugger"`,
    /// `image volume "models"`; empty for object-level findings.
    pub place: String,
    /// The image as written.
    pub image: String,
    pub finding: Finding,
}

impl Located {
    /// `container "web" (registry.example.com/web:1.2x): <message>; fix: <hint>`
    pub fn sentence(&self) -> String {
        let mut s = String::new();
        if !self.place.is_empty() {
            s.push_str(&self.place);
            s.push(' ');
        }
        if !self.image.is_empty() {
            s.push('(');
            s.push_str(&clip(&self.image, QUOTE_LIMIT));
            s.push_str("): ");
        }
        s.push_str(&self.finding.message);
        if let Some(h) = &self.finding.hint {
            s.push_str("; fix: ");
            s.push_str(h);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_round_trip() {
        for c in FindingClass::ALL {
            assert_eq!(c.as_str().parse::<FindingClass>(), Ok(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }

    #[test]
    fn registry_errors_are_definite_exactly_when_their_class_is() {
        use crate::registry::{AuthProblem, TimeoutLimit, Unreachable};
        let (r, p) = (String::from("r.example"), String::from("p"));
        let errors = [
            RegistryError::RepositoryNotFound {
                registry: r.clone(),
                repository: p.clone(),
            },
            RegistryError::TagNotFound {
                registry: r.clone(),
                repository: p.clone(),
                tag: "t".into(),
                closest: vec![],
            },
            RegistryError::DigestNotFound {
                registry: r.clone(),
                repository: p.clone(),
                digest: "d".into(),
            },
            RegistryError::Unauthorized {
                registry: r.clone(),
                repository: p.clone(),
                problem: AuthProblem::NoCredentials,
            },
            RegistryError::Denied {
                registry: r.clone(),
                repository: p.clone(),
                detail: String::new(),
            },
            RegistryError::RateLimited {
                registry: r.clone(),
                retry_after: None,
                limit: None,
                window: None,
            },
            RegistryError::Unavailable {
                host: r.clone(),
                cause: Unreachable::Dns,
                detail: String::new(),
            },
            RegistryError::Timeout {
                host: r.clone(),
                after: std::time::Duration::ZERO,
                limit: TimeoutLimit::Request,
            },
            RegistryError::Blocked { host: r, reason: p },
        ];
        for e in &errors {
            assert_eq!(FindingClass::of(e).is_definite(), e.is_definite(), "{e:?}");
        }
    }
}
