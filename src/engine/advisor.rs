//! Advice from kept facts: a review turns the [`ImageFacts`] kept with an image's verdict
//! into [`Advice`] for one use of the image, by the classes' actions, without asking
//! anyone (the rate-limit budgets only when some budget is low: one atomic load
//! otherwise).

use std::time::Duration;

use super::advice::{Advice, AdviceAction, AdviceClass, AdviceSettings, AnonymousLimit, Floating};
use super::finding::place;
use super::image::ImageCheck;
use super::policy::Actions;
use crate::kubelet::workload::ImageUse;
use crate::registry::ratelimit::{Budgets, RateLimit};
use crate::text::{clip, human_bytes, human_duration, human_rate};

/// Turns kept facts into advice for one use of an image.
pub struct Advisor<'a> {
    pub settings: &'a AdviceSettings,
    pub actions: &'a Actions,
    pub budgets: &'a Budgets,
}

impl Advisor<'_> {
    fn on(&self, class: AdviceClass) -> bool {
        self.actions.advice(class) != AdviceAction::Off
    }

    /// Advice on `check` (resolved without a finding) where `u` uses it. `u.name` empty:
    /// no place (`check --image`).
    pub fn advise(&self, u: &ImageUse, check: &ImageCheck, out: &mut Vec<Advice>) {
        let f = &check.facts;
        let mut say = |class: AdviceClass, message: String, hint: String| {
            out.push(Advice {
                class,
                place: if u.name.is_empty() {
                    String::new()
                } else {
                    place(u)
                },
                image: u.image.clone(),
                message,
                hint,
            })
        };
        if let Some(floating) = f.floating.filter(|_| self.on(AdviceClass::LatestTag)) {
            let what = match floating {
                Floating::NoTag => "no tag: the kubelet pulls \":latest\", which",
                Floating::Latest => "\":latest\"",
            };
            say(
                AdviceClass::LatestTag,
                format!("{what} resolves again at every pull: nodes and restarts can run different images"),
                "pin a version tag or a digest (@sha256:…)".into(),
            );
        }
        let always = match u.pull_policy.as_deref() {
            Some(p) => p == "Always",
            None => f.default_always,
        };
        if let (true, Some(limit)) = (always, f.anonymous_limit) {
            if self.on(AdviceClass::AlwaysPullRateLimited) {
                let limit = match limit {
                    AnonymousLimit::Reported(r) => format!(
                        "{} limits anonymous pulls ({}) per address",
                        f.registry,
                        quota(&r).unwrap_or_else(|| format!("{} left", r.remaining))
                    ),
                    AnonymousLimit::Documented(said) => said.to_owned(),
                };
                say(
                    AdviceClass::AlwaysPullRateLimited,
                    format!("imagePullPolicy Always pulls anonymously at every start; {limit}"),
                    "use IfNotPresent with a pinned tag, a pull secret or a mirror".into(),
                );
            }
        }
        if let Some(m) = f.moved.as_ref().filter(|_| self.on(AdviceClass::TagMoved)) {
            let current = check.resolved.as_ref().map_or("", |r| r.digest.as_str());
            let when = m
                .seen
                .map(|at| format!(" (seen {} ago)", human_duration(at.elapsed())))
                .unwrap_or_default();
            say(
                AdviceClass::TagMoved,
                format!(
                    "tag {:?} moved from {}{when} to {}: Pods started before run another image",
                    clip(f.tag.as_deref().unwrap_or("latest"), 64),
                    short(&m.previous),
                    short(current),
                ),
                format!("pin the digest (@{})", short(current)),
            );
        }
        if let (true, Some(key)) = (self.budgets.any_low(), &f.budget) {
            if let Some(o) = self
                .budgets
                .low(key)
                .filter(|_| self.on(AdviceClass::PullBudgetLow))
            {
                let left = match (o.rate.limit, o.rate.window) {
                    (Some(l), Some(w)) => format!(
                        "{} of {l} pulls left in its {} window",
                        o.rate.remaining,
                        human_duration(w)
                    ),
                    (Some(l), None) => format!("{} of {l} pulls left", o.rate.remaining),
                    (None, Some(w)) => format!(
                        "{} pulls left in its {} window",
                        o.rate.remaining,
                        human_duration(w)
                    ),
                    (None, None) => format!("{} pulls left", o.rate.remaining),
                };
                let (who, fix) = match (&key.account, &check.credential_source) {
                    (None, _) => (
                        "anonymous pulls".to_owned(),
                        "authenticate with a pull secret, or use a mirror or pull-through cache",
                    ),
                    (Some(_), source) => (
                        format!(
                            "the credentials of {}",
                            clip(source.as_deref().unwrap_or("the pull secret"), 64)
                        ),
                        "use an account with a higher limit, or a mirror or pull-through cache",
                    ),
                };
                say(
                    AdviceClass::PullBudgetLow,
                    format!(
                        "{} has {left} for {who} (seen {} ago)",
                        f.registry,
                        human_duration(o.at.elapsed())
                    ),
                    fix.into(),
                );
            }
        }
        if let Some(size) = f
            .size
            .as_ref()
            .filter(|s| s.bytes > self.settings.giant_image && self.on(AdviceClass::GiantImage))
        {
            let bandwidth = self.settings.node_bandwidth.max(1);
            let secs = size.bytes.div_ceil(bandwidth);
            let platform = size
                .platform
                .as_ref()
                .map(|p| format!(" for {p}"))
                .unwrap_or_default();
            say(
                AdviceClass::GiantImage,
                format!(
                    "{} compressed{platform}: ~{} per pull on a new node at {}",
                    human_bytes(size.bytes),
                    human_duration(Duration::from_secs(secs)),
                    human_rate(bandwidth)
                ),
                "slim or pre-pull it: nodes pull one image at a time (serializeImagePulls)".into(),
            );
        }
    }
}

/// `100 per 6h`: a reading's quota, when it says one.
fn quota(r: &RateLimit) -> Option<String> {
    match (r.limit, r.window) {
        (Some(l), Some(w)) => Some(format!("{l} per {}", human_duration(w))),
        (Some(l), None) => Some(format!("{l}")),
        _ => None,
    }
}

/// `sha256:0123456789ab…`: a digest in messages that must fit 256 characters.
fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algorithm, hex)) if hex.len() > 12 => {
            format!("{algorithm}:{}…", hex.get(..12).unwrap_or(hex))
        }
        _ => clip(digest, 80).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::engine::advice::{ImageFacts, ImageSize, TagMove, DEFAULT_GIANT_IMAGE};
    use crate::kubelet::platform::Platform;
    use crate::kubelet::reference::ImageRef;
    use crate::kubelet::workload::ImageSlot;
    use crate::metrics::Metrics;
    use crate::registry::names::TrackedHosts;
    use crate::registry::ratelimit::BudgetKey;
    use rstest::rstest;

    fn use_of(image: &str, policy: Option<&str>) -> ImageUse {
        ImageUse {
            slot: ImageSlot::Container,
            name: "web".into(),
            image: image.into(),
            pull_policy: policy.map(str::to_owned),
        }
    }

    fn budgets() -> Budgets {
        Budgets::new(
            Arc::new(TrackedHosts::new(Vec::new(), 10)),
            Arc::new(Metrics::default()),
        )
    }

    fn advise(
        actions: &Actions,
        budgets: &Budgets,
        u: &ImageUse,
        check: &ImageCheck,
    ) -> Vec<Advice> {
        let settings = AdviceSettings::default();
        let advisor = Advisor {
            settings: &settings,
            actions,
            budgets,
        };
        let mut out = Vec::new();
        advisor.advise(u, check, &mut out);
        out
    }

    fn check_of(image: &str) -> ImageCheck {
        let mut c = ImageCheck::new(image);
        c.facts = ImageFacts::of_reference(&ImageRef::parse(image).unwrap());
        c
    }

    #[test]
    fn every_class_says_what_and_fits_a_warning() {
        let b = budgets();
        let key = BudgetKey::new("registry-1.docker.io", None);
        b.record(
            key.clone(),
            RateLimit {
                remaining: 3,
                limit: Some(100),
                window: Some(Duration::from_secs(21600)),
                reset: None,
            },
        );
        let mut check = check_of("registry.example.com/team/web-frontend");
        check.facts.anonymous_limit = Some(AnonymousLimit::Reported(RateLimit {
            remaining: 3,
            limit: Some(100),
            window: Some(Duration::from_secs(21600)),
            reset: None,
        }));
        check.facts.budget = Some(key);
        check.facts.size = Some(ImageSize {
            platform: Some(Platform::new("linux", "amd64", None)),
            bytes: 3 << 30,
        });
        check.facts.moved = Some(TagMove {
            previous: format!("sha256:{}", "a".repeat(64)),
            seen: Some(Instant::now()),
        });
        let u = use_of("registry.example.com/team/web-frontend", None);
        let advice = advise(&Actions::default(), &b, &u, &check);
        let classes: Vec<AdviceClass> = advice.iter().map(|a| a.class).collect();
        assert_eq!(classes, AdviceClass::ALL);
        for a in &advice {
            let s = a.sentence();
            assert!(s.chars().count() <= 256, "{} chars: {s}", s.chars().count());
            assert!(
                s.starts_with("container \"web\" (registry.example.com/team/web-frontend): "),
                "{s}"
            );
        }
        let text: Vec<String> = advice.iter().map(Advice::sentence).collect();
        assert!(
            text[0].contains("no tag: the kubelet pulls \":latest\""),
            "{}",
            text[0]
        );
        assert!(
            text[1].contains("limits anonymous pulls (100 per 6h) per address"),
            "{}",
            text[1]
        );
        assert!(
            text[2].contains("moved from sha256:aaaaaaaaaaaa… (seen 0ms ago) to"),
            "{}",
            text[2]
        );
        assert!(
            text[3].contains("has 3 of 100 pulls left in its 6h window for anonymous pulls"),
            "{}",
            text[3]
        );
        assert!(
            text[3].ends_with(
                "fix: authenticate with a pull secret, or use a mirror or pull-through cache"
            ),
            "{}",
            text[3]
        );
        assert!(
            text[4].contains(
                "3.0 GiB compressed for linux/amd64: ~4m18s per pull on a new node at 100 Mbit/s"
            ),
            "{}",
            text[4]
        );
    }

    #[test]
    fn off_classes_say_nothing() {
        let mut actions = Actions::default();
        for c in AdviceClass::ALL {
            actions.set_advice(c, AdviceAction::Off);
        }
        let mut check = check_of("nginx");
        check.facts.anonymous_limit = Some(AnonymousLimit::Documented(
            "Docker Hub limits anonymous pulls per IP address",
        ));
        check.facts.size = Some(ImageSize {
            platform: None,
            bytes: u64::MAX,
        });
        assert!(advise(&actions, &budgets(), &use_of("nginx", None), &check).is_empty());
        assert_eq!(
            advise(
                &Actions::default(),
                &budgets(),
                &use_of("nginx", None),
                &check
            )
            .len(),
            3
        );
    }

    #[rstest]
    #[case(Some("Always"), "nginx:1.27", true)]
    #[case(Some("IfNotPresent"), "nginx:latest", false)]
    #[case(None, "nginx:latest", true)]
    #[case(None, "nginx:1.27", false)]
    fn always_pulls_are_written_or_defaulted(
        #[case] policy: Option<&str>,
        #[case] image: &str,
        #[case] said: bool,
    ) {
        let mut check = check_of(image);
        check.facts.anonymous_limit = Some(AnonymousLimit::Documented(
            "Docker Hub limits anonymous pulls per IP address",
        ));
        let advice = advise(
            &Actions::default(),
            &budgets(),
            &use_of(image, policy),
            &check,
        );
        assert_eq!(
            advice
                .iter()
                .any(|a| a.class == AdviceClass::AlwaysPullRateLimited),
            said,
            "{advice:?}"
        );
    }

    #[test]
    fn small_images_and_fresh_budgets_say_nothing() {
        let b = budgets();
        let key = BudgetKey::new("r.example", None);
        b.record(
            key.clone(),
            RateLimit {
                remaining: 90,
                limit: Some(100),
                window: None,
                reset: None,
            },
        );
        let mut check = check_of("r.example/app:1");
        check.facts.budget = Some(key);
        check.facts.size = Some(ImageSize {
            platform: None,
            bytes: DEFAULT_GIANT_IMAGE,
        });
        assert!(advise(
            &Actions::default(),
            &b,
            &use_of("r.example/app:1", None),
            &check
        )
        .is_empty());
    }
}
