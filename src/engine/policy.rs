//! Mode × finding class → deny, warn or record. Also the words: the denial message, the
//! warnings (one per finding, ≤ 256 characters) and the audit annotations, shared by the
//! webhook and `pullcheck check` so a finding reads the same in CI and in `kubectl apply`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::finding::{FindingClass, Located};
use crate::text::truncate;

/// How a namespace is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Record in audit annotations only.
    Audit,
    /// Admit, with warnings (shown by kubectl, also on `--dry-run=server`).
    Warn,
    /// Deny what will not pull; warn about the uncertain.
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audit => "audit",
            Self::Warn => "warn",
            Self::Enforce => "enforce",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "audit" => Ok(Self::Audit),
            "warn" => Ok(Self::Warn),
            "enforce" => Ok(Self::Enforce),
            _ => Err(format!("unknown mode {s:?}: use enforce, warn or audit")),
        }
    }
}

/// What enforce mode does with a finding class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Deny,
    Warn,
    Audit,
}

impl Action {
    /// `deny`, `warn`, `audit`: as in `actions:` and `check --format json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Warn => "warn",
            Self::Audit => "audit",
        }
    }
}

/// Decisions per class. Definite classes deny, transient ones warn (an outage of a registry
/// must not stop a cluster from deploying), unless configured otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actions {
    overrides: BTreeMap<FindingClass, Action>,
}

impl Actions {
    pub fn set(&mut self, class: FindingClass, action: Action) {
        self.overrides.insert(class, action);
    }

    pub fn of(&self, class: FindingClass) -> Action {
        self.overrides
            .get(&class)
            .copied()
            .unwrap_or(if class.is_definite() {
                Action::Deny
            } else {
                Action::Warn
            })
    }
}

/// What the webhook answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// `Some(message)` when denied.
    pub deny: Option<String>,
    pub warnings: Vec<String>,
}

/// Warnings longer than this may be truncated by the API server.
pub const WARNING_LIMIT: usize = 256;
/// Most warnings returned (the API server may drop a long list).
pub const MAX_WARNINGS: usize = 20;

/// What `mode` and `actions` make of a finding of `class`: the one rule behind [`decide`]
/// (the webhook's answer) and `pullcheck check`'s reports.
pub fn action(mode: Mode, actions: &Actions, class: FindingClass) -> Action {
    match (mode, actions.of(class)) {
        (Mode::Audit, _) | (_, Action::Audit) => Action::Audit,
        (Mode::Warn, _) => Action::Warn,
        (Mode::Enforce, a) => a,
    }
}

/// Applies `mode` and `actions` to the findings of one object. `subject` names it
/// (`Deployment team-a/web`).
pub fn decide(mode: Mode, actions: &Actions, subject: &str, findings: &[Located]) -> Decision {
    let mut denied = Vec::new();
    let mut warnings = Vec::new();
    for f in findings {
        match action(mode, actions, f.finding.class) {
            Action::Deny => denied.push(f),
            Action::Warn => warnings.push(truncate(&f.sentence(), WARNING_LIMIT)),
            Action::Audit => {}
        }
    }
    warnings.truncate(MAX_WARNINGS);
    let deny = (!denied.is_empty()).then(|| {
        let noun = if denied.len() == 1 { "image" } else { "images" };
        let mut msg = format!(
            "pullcheck: {} {noun} of {subject} would fail to pull:",
            denied.len()
        );
        for f in &denied {
            msg.push_str("\n- ");
            msg.push_str(&f.sentence());
        }
        msg
    });
    Decision { deny, warnings }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Finding;
    use rstest::rstest;

    fn located(class: FindingClass, message: &str) -> Located {
        Located {
            place: "container \"web\"".into(),
            image: "r.example/web:1".into(),
            finding: Finding {
                class,
                message: message.into(),
                hint: Some("do the thing".into()),
            },
        }
    }

    #[rstest]
    #[case(Mode::Enforce, FindingClass::TagNotFound, true, 0)]
    #[case(Mode::Enforce, FindingClass::Unavailable, false, 1)]
    #[case(Mode::Enforce, FindingClass::RateLimited, false, 1)]
    #[case(Mode::Warn, FindingClass::TagNotFound, false, 1)]
    #[case(Mode::Audit, FindingClass::TagNotFound, false, 0)]
    #[case(Mode::Audit, FindingClass::Timeout, false, 0)]
    fn modes_and_classes(
        #[case] mode: Mode,
        #[case] class: FindingClass,
        #[case] denied: bool,
        #[case] warnings: usize,
    ) {
        let d = decide(mode, &Actions::default(), "Pod a/b", &[located(class, "m")]);
        assert_eq!(d.deny.is_some(), denied);
        assert_eq!(d.warnings.len(), warnings);
    }

    #[test]
    fn actions_are_configurable_per_class() {
        let mut a = Actions::default();
        a.set(FindingClass::Unavailable, Action::Deny);
        a.set(FindingClass::TagNotFound, Action::Warn);
        let findings = [
            located(FindingClass::Unavailable, "down"),
            located(FindingClass::TagNotFound, "no tag"),
        ];
        let d = decide(Mode::Enforce, &a, "Pod a/b", &findings);
        assert!(d.deny.unwrap().contains("down"));
        assert_eq!(d.warnings.len(), 1);
    }

    #[test]
    fn denial_lists_every_failing_container() {
        let findings = [
            located(FindingClass::TagNotFound, "tag \"1.2x\" does not exist"),
            located(FindingClass::Unauthorized, "needs credentials"),
        ];
        let d = decide(
            Mode::Enforce,
            &Actions::default(),
            "Deployment team-a/web",
            &findings,
        );
        let msg = d.deny.unwrap();
        assert!(msg.starts_with("pullcheck: 2 images of Deployment team-a/web would fail to pull:"));
        assert!(msg.contains("\n- container \"web\" (r.example/web:1): tag \"1.2x\" does not exist; fix: do the thing"));
        assert!(msg.contains("needs credentials"));
    }

    #[test]
    fn warnings_fit_the_api_server_limit() {
        let long = "é".repeat(400);
        let d = decide(
            Mode::Warn,
            &Actions::default(),
            "Pod a/b",
            &[located(FindingClass::TagNotFound, &long)],
        );
        assert!(d.warnings[0].len() <= WARNING_LIMIT);
        assert!(d.warnings[0].ends_with('…'));
    }

    #[test]
    fn modes_parse() {
        assert_eq!("warn".parse::<Mode>(), Ok(Mode::Warn));
        assert!("loud".parse::<Mode>().is_err());
    }
}
