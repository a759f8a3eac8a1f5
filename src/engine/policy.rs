//! Mode × finding class → deny, warn or record, and mode × advice class → deny, warn or
//! nothing. Also the words: the denial message, the warnings (one per finding or advice,
//! ≤ 256 characters), shared by the webhook and `pullcheck check` so a finding reads the
//! same in CI and in `kubectl apply`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::advice::{Advice, AdviceAction, AdviceClass};
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
/// must not stop a cluster from deploying), advice warns, unless configured otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actions {
    overrides: BTreeMap<FindingClass, Action>,
    advice: BTreeMap<AdviceClass, AdviceAction>,
}

impl Actions {
    pub fn set(&mut self, class: FindingClass, action: Action) {
        self.overrides.insert(class, action);
    }

    pub fn set_advice(&mut self, class: AdviceClass, action: AdviceAction) {
        self.advice.insert(class, action);
    }

    /// What is done with a class of advice (`warn` unless configured).
    pub fn advice(&self, class: AdviceClass) -> AdviceAction {
        self.advice
            .get(&class)
            .copied()
            .unwrap_or(AdviceAction::Warn)
    }

    /// What a mode makes of a piece of advice: deny only in enforce, nothing in audit
    /// (recorded in the annotation) or when off.
    pub fn advice_in(&self, mode: Mode, class: AdviceClass) -> Action {
        match (mode, self.advice(class)) {
            (Mode::Audit, _) | (_, AdviceAction::Off) => Action::Audit,
            (Mode::Enforce, AdviceAction::Deny) => Action::Deny,
            _ => Action::Warn,
        }
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

/// Applies `mode` and `actions` to the findings and the advice of one object. `subject`
/// names it (`Deployment team-a/web`).
pub fn decide(
    mode: Mode,
    actions: &Actions,
    subject: &str,
    findings: &[Located],
    advice: &[Advice],
) -> Decision {
    let mut denied = Vec::new();
    let mut warnings = Vec::new();
    for f in findings {
        match action(mode, actions, f.finding.class) {
            Action::Deny => denied.push(f),
            Action::Warn => warnings.push(truncate(&f.sentence(), WARNING_LIMIT)),
            Action::Audit => {}
        }
    }
    let mut refused = Vec::new();
    for a in advice {
        match actions.advice_in(mode, a.class) {
            Action::Deny => refused.push(a),
            Action::Warn => warnings.push(truncate(&a.sentence(), WARNING_LIMIT)),
            Action::Audit => {}
        }
    }
    warnings.truncate(MAX_WARNINGS);
    let mut deny = (!denied.is_empty()).then(|| {
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
    if !refused.is_empty() {
        let msg = deny.get_or_insert_with(String::new);
        if !msg.is_empty() {
            msg.push('\n');
        }
        msg.push_str(&format!("pullcheck: advice set to deny for {subject}:"));
        for a in &refused {
            msg.push_str("\n- ");
            msg.push_str(&a.sentence());
            msg.push_str(&format!(" [{}]", a.class));
        }
    }
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
        let d = decide(
            mode,
            &Actions::default(),
            "Pod a/b",
            &[located(class, "m")],
            &[],
        );
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
        let d = decide(Mode::Enforce, &a, "Pod a/b", &findings, &[]);
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
            &[],
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
            &[],
        );
        assert!(d.warnings[0].len() <= WARNING_LIMIT);
        assert!(d.warnings[0].ends_with('…'));
    }

    fn advised(class: AdviceClass) -> Advice {
        Advice {
            class,
            place: "container \"web\"".into(),
            image: "nginx".into(),
            message: "no tag".into(),
            hint: "pin it".into(),
        }
    }

    #[rstest]
    #[case(Mode::Enforce, AdviceAction::Deny, true, 0)]
    #[case(Mode::Enforce, AdviceAction::Warn, false, 1)]
    #[case(Mode::Enforce, AdviceAction::Off, false, 0)]
    #[case(Mode::Warn, AdviceAction::Deny, false, 1)]
    #[case(Mode::Warn, AdviceAction::Warn, false, 1)]
    #[case(Mode::Audit, AdviceAction::Deny, false, 0)]
    fn advice_by_mode_and_action(
        #[case] mode: Mode,
        #[case] action: AdviceAction,
        #[case] denied: bool,
        #[case] warnings: usize,
    ) {
        let mut a = Actions::default();
        a.set_advice(AdviceClass::LatestTag, action);
        let d = decide(mode, &a, "Pod a/b", &[], &[advised(AdviceClass::LatestTag)]);
        assert_eq!(d.deny.is_some(), denied);
        assert_eq!(d.warnings.len(), warnings);
        if denied {
            assert_eq!(
                d.deny.unwrap(),
                "pullcheck: advice set to deny for Pod a/b:\n- container \"web\" (nginx): no tag; fix: pin it [latest_tag]"
            );
        }
    }

    #[test]
    fn denied_findings_and_advice_share_one_message() {
        let mut a = Actions::default();
        a.set_advice(AdviceClass::GiantImage, AdviceAction::Deny);
        let d = decide(
            Mode::Enforce,
            &a,
            "Pod a/b",
            &[located(FindingClass::TagNotFound, "no tag")],
            &[
                advised(AdviceClass::GiantImage),
                advised(AdviceClass::LatestTag),
            ],
        );
        let msg = d.deny.unwrap();
        assert!(
            msg.starts_with("pullcheck: 1 image of Pod a/b would fail to pull:"),
            "{msg}"
        );
        assert!(
            msg.contains("\npullcheck: advice set to deny for Pod a/b:\n- "),
            "{msg}"
        );
        assert!(msg.ends_with("[giant_image]"), "{msg}");
        assert_eq!(d.warnings.len(), 1, "latest_tag warns");
    }

    #[test]
    fn modes_parse() {
        assert_eq!("warn".parse::<Mode>(), Ok(Mode::Warn));
        assert!("loud".parse::<Mode>().is_err());
    }
}
