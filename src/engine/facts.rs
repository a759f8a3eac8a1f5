//! Gathering the facts advice is made of, when an image is checked (never on the warm
//! path: they are kept with the verdict): whose rate-limit budget the pull spends, whether
//! the registry limits anonymous pulls, whether the tag moved, and the compressed size for
//! the platforms the Pod can run on (one manifest GET per new platform manifest digest of
//! an index, inside the review's deadline, then kept content-addressed by the registry).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::advice::{AnonymousLimit, FactSources, ImageFacts, ImageSize, TagMove};
use crate::kubelet::credentials::Credential;
use crate::kubelet::platform::Platform;
use crate::kubelet::platform_match::PlatformMatcher;
use crate::kubelet::reference::ImageRef;
use crate::registry::cache::{CachedRegistry, Moved};
use crate::registry::names::TrackedHosts;
use crate::registry::ratelimit::{self, BudgetKey, Budgets};
use crate::registry::Resolved;

/// A size that could not be fetched is tried again after this long, not at every review.
const SIZE_RETRY: Duration = Duration::from_secs(30);

/// A resolution that worked: with which credential, and whether the tag moved.
pub struct Found {
    pub resolved: Resolved,
    pub credential: Option<Credential>,
    pub moved: Option<Moved>,
}

/// Where facts come from: the budgets the registries report, and the sources the engine
/// was built with.
pub struct Gatherer {
    budgets: Arc<Budgets>,
    sources: FactSources,
}

impl Default for Gatherer {
    /// No budgets reported (a registry double), no sizes, no cluster view.
    fn default() -> Self {
        let untracked = Arc::new(TrackedHosts::new(Vec::new(), 0));
        Self {
            budgets: Arc::new(Budgets::new(untracked, Arc::default())),
            sources: FactSources::default(),
        }
    }
}

impl Gatherer {
    pub fn new(budgets: Arc<Budgets>, sources: FactSources) -> Self {
        Self { budgets, sources }
    }

    /// The rate-limit budgets advice reads.
    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// Fills `facts` with what the resolution does not hold. Returns when the verdict must
    /// be checked again at the latest (a size that could not be fetched in time).
    pub async fn gather(
        &self,
        registry: &CachedRegistry,
        reference: &ImageRef,
        found: &Found,
        wanted: &[Platform],
        deadline: Instant,
        facts: &mut ImageFacts,
    ) -> Option<std::time::Instant> {
        let host = reference.registry_host();
        let credential = found.credential.as_ref();
        facts.budget = Some(BudgetKey::new(host, credential));
        if credential.is_none() {
            facts.anonymous_limit = match self.budgets.get(&BudgetKey::new(host, None)) {
                Some(o) => Some(AnonymousLimit::Reported(o.rate)),
                None => ratelimit::documented_anonymous_limit(&host.to_ascii_lowercase())
                    .map(AnonymousLimit::Documented),
            };
        }
        facts.moved = match (&found.moved, reference.digest(), &self.sources.tags) {
            (Some(m), _, _) => Some(TagMove {
                previous: m.previous.clone(),
                seen: Some(m.seen),
            }),
            (None, None, Some(tags)) => tags.moved(&reference.canonical(), &found.resolved.digest),
            _ => None,
        };
        if !self.sources.sizes {
            return None;
        }
        let (size, retry) = size_of(
            registry,
            reference,
            credential,
            &found.resolved,
            wanted,
            &self.sources.matcher,
            deadline,
        )
        .await;
        facts.size = size;
        retry
    }
}

/// The largest compressed size among the platforms the Pod can run on: a single
/// manifest's own, or for an index that of the entry containerd picks for each wanted
/// platform; and when to try again if a size could not be fetched.
async fn size_of(
    registry: &CachedRegistry,
    reference: &ImageRef,
    credential: Option<&Credential>,
    resolved: &Resolved,
    wanted: &[Platform],
    matcher: &PlatformMatcher,
    deadline: Instant,
) -> (Option<ImageSize>, Option<std::time::Instant>) {
    let p = &resolved.platforms;
    if !p.is_index {
        let size = p.size.map(|bytes| ImageSize {
            platform: p.platforms.first().cloned(),
            bytes,
        });
        return (size, None);
    }
    let mut picks: Vec<usize> = wanted
        .iter()
        .filter_map(|w| matcher.best_match(w, &p.platforms))
        .collect();
    picks.sort_unstable();
    picks.dedup();
    let lookups = picks.into_iter().filter_map(|i| {
        let digest = p.manifests.get(i).filter(|d| !d.is_empty())?;
        Some(async move { (i, registry.image_size(reference, credential, digest).await) })
    });
    let retry = Some(std::time::Instant::now() + SIZE_RETRY);
    let Ok(answers) = tokio::time::timeout_at(deadline, futures::future::join_all(lookups)).await
    else {
        return (None, retry);
    };
    let mut largest: Option<ImageSize> = None;
    let mut again = None;
    for (i, answer) in answers {
        match answer {
            Ok(Some(bytes)) if largest.as_ref().is_none_or(|l| bytes > l.bytes) => {
                largest = Some(ImageSize {
                    platform: p.platforms.get(i).cloned(),
                    bytes,
                });
            }
            Ok(_) => {}
            Err(_) => again = retry,
        }
    }
    (largest, again)
}
