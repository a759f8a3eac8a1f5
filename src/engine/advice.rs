//! Advice: what will pull today but fails later or in bulk, said before the workload runs.
//! Each [`AdviceClass`] is `off`, `warn` (the default) or `deny` ([`AdviceAction`], set per
//! class in [`super::Actions`]), in the webhook and in `check` alike:
//!
//! - `latest_tag`: no tag, or `:latest` without a digest — the runtime resolves the tag
//!   again at every pull, so nodes and restarts can run different images;
//! - `always_pull_rate_limited`: `imagePullPolicy: Always` (written, or the API server's
//!   default for `:latest`) on a registry that limits anonymous pulls, pulled anonymously —
//!   every container start asks the registry;
//! - `tag_moved`: the tag points to another digest than it did before — seen by this
//!   process (a fresh answer differing from the last good one) or by the cluster view
//!   through [`TagHistory`];
//! - `pull_budget_low`: the registry's rate-limit budget for the identity the Pod pulls
//!   with is low (`lowPullBudget`);
//! - `giant_image`: the compressed size (config + layers) for a platform the Pod can run on
//!   is above `giantImage`, with the expected pull time at `nodeBandwidth`.
//!
//! This module holds the vocabulary. The facts advice is made of ([`ImageFacts`]) are
//! gathered when an image is checked ([`super::facts`]) and kept with its verdict; a review
//! turns them into [`Advice`] without asking anyone ([`super::advisor`]).

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::kubelet::platform::Platform;
use crate::kubelet::reference::ImageRef;
use crate::registry::ratelimit::{BudgetKey, LowBudget, RateLimit};
use crate::text::{clip, QUOTE_LIMIT};

/// A kind of advice: what the settings act on and what `check --format json` prints as
/// `verdict`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdviceClass {
    LatestTag,
    AlwaysPullRateLimited,
    TagMoved,
    PullBudgetLow,
    GiantImage,
}

impl AdviceClass {
    pub const ALL: [AdviceClass; 5] = [
        Self::LatestTag,
        Self::AlwaysPullRateLimited,
        Self::TagMoved,
        Self::PullBudgetLow,
        Self::GiantImage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LatestTag => "latest_tag",
            Self::AlwaysPullRateLimited => "always_pull_rate_limited",
            Self::TagMoved => "tag_moved",
            Self::PullBudgetLow => "pull_budget_low",
            Self::GiantImage => "giant_image",
        }
    }
}

impl std::fmt::Display for AdviceClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AdviceClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Self::ALL.iter().map(|c| c.as_str()).collect();
                format!("unknown advice class {s:?}: one of {}", all.join(", "))
            })
    }
}

/// What is done with a class of advice: nothing (not even looked for), a warning (in
/// enforce and warn mode), or a denial (in enforce mode; a warning in warn mode). Audit
/// mode records advice in an annotation only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdviceAction {
    Off,
    Warn,
    Deny,
}

impl std::str::FromStr for AdviceAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Self::Off),
            "warn" => Ok(Self::Warn),
            "deny" => Ok(Self::Deny),
            _ => Err(format!("unknown advice action {s:?}: off, warn or deny")),
        }
    }
}

/// The thresholds of advice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdviceSettings {
    /// When a rate-limit budget counts as low.
    pub low_budget: LowBudget,
    /// Compressed bytes (config + layers, one platform) above which an image is giant.
    pub giant_image: u64,
    /// Bytes per second a node pulls at, for the expected pull time.
    pub node_bandwidth: u64,
}

/// 2 GiB.
pub const DEFAULT_GIANT_IMAGE: u64 = 2 << 30;
/// 100 Mbit/s: a node's link is shared with its other pulls and traffic, and registries and
/// their CDNs often deliver well below line rate; set what the kubelet's `Pulled` events
/// show (`Successfully pulled image … in 41s … Image size: N bytes`).
pub const DEFAULT_NODE_BANDWIDTH: u64 = 12_500_000;

impl Default for AdviceSettings {
    fn default() -> Self {
        Self {
            low_budget: LowBudget::default(),
            giant_image: DEFAULT_GIANT_IMAGE,
            node_bandwidth: DEFAULT_NODE_BANDWIDTH,
        }
    }
}

/// One piece of advice on one image of the object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Advice {
    pub class: AdviceClass,
    /// `container "web"`, as findings say it; empty for `check --image`.
    pub place: String,
    /// The image as written.
    pub image: String,
    pub message: String,
    pub hint: String,
}

impl Advice {
    /// `container "web" (nginx): <message>; fix: <hint>`
    pub fn sentence(&self) -> String {
        let mut s = String::new();
        if !self.place.is_empty() {
            s.push_str(&self.place);
            s.push(' ');
        }
        s.push('(');
        s.push_str(&clip(&self.image, QUOTE_LIMIT));
        s.push_str("): ");
        s.push_str(&self.message);
        s.push_str("; fix: ");
        s.push_str(&self.hint);
        s
    }
}

/// How a reference floats: resolved again at every pull.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Floating {
    /// No tag and no digest: the kubelet pulls `:latest`.
    NoTag,
    /// `:latest` without a digest.
    Latest,
}

/// What is known of a registry's limit on anonymous pulls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnonymousLimit {
    /// From its own headers, for anonymous pulls.
    Reported(RateLimit),
    /// From its documentation (until it says more).
    Documented(&'static str),
}

/// The largest compressed size among the platforms the Pod can run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSize {
    pub platform: Option<Platform>,
    pub bytes: u64,
}

/// A tag seen pointing to another digest before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagMove {
    pub previous: String,
    /// When the previous digest was last seen, when known.
    pub seen: Option<Instant>,
}

/// The digests tags pointed to when the workloads using them were admitted, as the cluster
/// view sees them (the hook for `pullcheck scan`: it compares the running Pods'
/// `imageID`s and the digests recorded at admission with what their tags resolve to now).
/// Asked once per image check, never on the warm path.
pub trait TagHistory: Send + Sync {
    /// Another digest `canonical` (a tag reference) pointed to than `current`, if any.
    fn moved(&self, canonical: &str, current: &str) -> Option<TagMove>;
}

/// The facts advice is made of, gathered when the image is checked and kept with its
/// verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageFacts {
    pub floating: Option<Floating>,
    /// The tag as written (for messages).
    pub tag: Option<String>,
    /// The API server defaults `imagePullPolicy` to `Always` for this reference (its tag is
    /// `latest` once defaulted, digest or not).
    pub default_always: bool,
    /// The registry as written in the reference (`docker.io`).
    pub registry: String,
    /// Whose rate-limit budget the pull spends.
    pub budget: Option<BudgetKey>,
    /// The pull is anonymous and the registry limits anonymous pulls.
    pub anonymous_limit: Option<AnonymousLimit>,
    pub size: Option<ImageSize>,
    pub moved: Option<TagMove>,
}

impl ImageFacts {
    /// What the reference alone says.
    pub fn of_reference(reference: &ImageRef) -> Self {
        let latest_tag = reference.tag().is_none_or(|t| t == "latest");
        Self {
            floating: match (reference.tag(), reference.digest()) {
                (_, Some(_)) => None,
                (None, None) => Some(Floating::NoTag),
                (Some("latest"), None) => Some(Floating::Latest),
                _ => None,
            },
            tag: reference.tag().map(str::to_owned),
            default_always: latest_tag
                && !(reference.tag().is_none() && reference.digest().is_some()),
            registry: reference.domain().to_owned(),
            ..Self::default()
        }
    }
}

/// Shared, cheap to clone: what an engine is built with to gather facts for advice.
#[derive(Clone, Default)]
pub struct FactSources {
    /// Fetch the sizes of platform manifests (one GET per new digest) for `giant_image`.
    pub sizes: bool,
    /// The cluster view's record of tags at admission, when there is one.
    pub tags: Option<Arc<dyn TagHistory>>,
    /// How the nodes pick a platform from an index (whose entry's size counts).
    pub matcher: crate::kubelet::platform_match::PlatformMatcher,
}

impl std::fmt::Debug for FactSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FactSources")
            .field("sizes", &self.sizes)
            .field("tags", &self.tags.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("nginx", Some(Floating::NoTag), true)]
    #[case("nginx:latest", Some(Floating::Latest), true)]
    #[case("nginx:1.27", None, false)]
    #[case(
        "nginx@sha256:0123456789012345678901234567890123456789012345678901234567890123",
        None,
        false
    )]
    #[case(
        "nginx:latest@sha256:0123456789012345678901234567890123456789012345678901234567890123",
        None,
        true
    )]
    fn references_float_and_default_to_always_like_the_api_server(
        #[case] image: &str,
        #[case] floating: Option<Floating>,
        #[case] always: bool,
    ) {
        let f = ImageFacts::of_reference(&ImageRef::parse(image).unwrap());
        assert_eq!(f.floating, floating);
        assert_eq!(f.default_always, always);
        assert_eq!(f.registry, "docker.io");
    }

    #[test]
    fn classes_and_actions_parse() {
        for c in AdviceClass::ALL {
            assert_eq!(c.as_str().parse::<AdviceClass>(), Ok(c));
        }
        assert!("latest"
            .parse::<AdviceClass>()
            .unwrap_err()
            .contains("latest_tag"));
        assert_eq!("deny".parse::<AdviceAction>(), Ok(AdviceAction::Deny));
        assert!("audit".parse::<AdviceAction>().is_err());
    }
}
