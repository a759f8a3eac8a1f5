//! Checking images the way the kubelet will pull them: parse the reference, find the
//! credentials the kubelet would use, try each against the registry (through the cache),
//! and match the platforms — all inside a deadline.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use tokio::time::Instant;

use super::advice::{FactSources, ImageFacts};
use super::explain::{finding_for, Context};
use super::facts::{Found, Gatherer};
use super::finding::{Finding, FindingClass};
use crate::kubelet::credentials::{Keyring, MatchedCredential};
use crate::kubelet::platform::Platform;
use crate::kubelet::reference::ImageRef;
use crate::registry::cache::{CachedRegistry, Stale};
use crate::registry::ratelimit::Budgets;
use crate::registry::{RegistryConfig, RegistryError, Resolved, TimeoutLimit};
use crate::text::{clip, human_duration, QUOTE_LIMIT};

/// The verdict on one image.
#[derive(Clone, Debug, Serialize)]
pub struct ImageCheck {
    /// The image as written in the manifest or on the command line.
    pub image: String,
    /// `domain/path[:tag][@digest]`, when the reference is valid.
    pub canonical: Option<String>,
    /// What the reference resolved to (a stale answer when the registry failed and one was
    /// known).
    pub resolved: Option<Resolved>,
    pub finding: Option<Finding>,
    /// Wanted platforms the image does not have while others are covered.
    pub missing_platforms: Vec<Platform>,
    /// The credential source that worked (`secret/regcred`), when one was used.
    pub credential_source: Option<String>,
    /// Sources of every credential that matched the registry, in the kubelet's order.
    pub credentials_tried: Vec<String>,
    /// Age of the last good answer used while the registry fails.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
    pub stale_age: Option<Duration>,
    /// Facts worth telling that are not findings.
    pub notes: Vec<String>,
    /// What advice is made of (kept with the verdict; see [`super::advice`]).
    #[serde(skip)]
    pub facts: ImageFacts,
}

impl ImageCheck {
    pub(crate) fn new(image: &str) -> Self {
        Self {
            image: image.to_string(),
            canonical: None,
            resolved: None,
            finding: None,
            missing_platforms: Vec::new(),
            credential_source: None,
            credentials_tried: Vec::new(),
            stale_age: None,
            notes: Vec::new(),
            facts: ImageFacts::default(),
        }
    }

    /// `ok`, or the class of the finding.
    pub fn verdict(&self) -> &'static str {
        self.finding.as_ref().map_or("ok", |f| f.class.as_str())
    }

    /// The finding's class.
    pub fn class(&self) -> Option<FindingClass> {
        self.finding.as_ref().map(|f| f.class)
    }
}

mod opt_secs {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

/// Checks images against registries through a shared cache.
pub struct Checker {
    registry: Arc<CachedRegistry>,
    config: Arc<RegistryConfig>,
    /// Verdicts by hash of (image, keyring, context, wanted platforms).
    verdicts: moka::sync::Cache<u64, Arc<Verdict>, foldhash::fast::RandomState>,
    /// Keys only pick a slot: a hit is compared field by field, so a fast hash will do.
    hasher: foldhash::fast::RandomState,
    verdict_hits: prometheus_client::metrics::counter::Counter,
    verdict_misses: prometheus_client::metrics::counter::Counter,
    /// Gathers the facts advice is made of (see [`Self::with_advice`]).
    facts: Gatherer,
}

/// A verdict reused for as long as every registry answer behind it stays cached: the
/// same inputs then give the same verdict, so a warm review costs a hash lookup per image
/// instead of parsing, keyring matching and result-cache lookups. Verdicts that rest on a
/// transient failure (timeouts, outages, stale answers) are never kept.
struct Verdict {
    image: String,
    keyring: u64,
    context: Context,
    wanted: Vec<Platform>,
    check: Arc<ImageCheck>,
    expires: std::time::Instant,
}

impl Verdict {
    fn answers(
        &self,
        image: &str,
        keyring: &Keyring,
        context: Context,
        wanted: &[Platform],
    ) -> bool {
        self.image == image
            && self.keyring == keyring.id()
            && self.context == context
            && self.wanted == wanted
            && std::time::Instant::now() < self.expires
    }
}

struct VerdictExpiry;

impl moka::Expiry<u64, Arc<Verdict>> for VerdictExpiry {
    fn expire_after_create(
        &self,
        _: &u64,
        v: &Arc<Verdict>,
        now: std::time::Instant,
    ) -> Option<Duration> {
        Some(v.expires.saturating_duration_since(now))
    }
}

/// Until when a verdict holds: the earliest end of the answers it used; `None` once any
/// of them was not a cached answer.
struct Validity(Option<std::time::Instant>);

impl Validity {
    fn start() -> Self {
        Validity(Some(
            std::time::Instant::now() + Duration::from_secs(24 * 3600),
        ))
    }

    fn limit(&mut self, until: Option<std::time::Instant>) {
        self.0 = match (self.0, until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            _ => None,
        };
    }
}

impl Checker {
    pub fn new(registry: Arc<CachedRegistry>, config: Arc<RegistryConfig>) -> Self {
        let verdicts = moka::sync::Cache::builder()
            .max_capacity(registry.capacity())
            .expire_after(VerdictExpiry)
            .build_with_hasher(foldhash::fast::RandomState::default());
        let metrics = registry.metrics();
        Self {
            verdict_hits: metrics.cache_counter("verdict", "hit"),
            verdict_misses: metrics.cache_counter("verdict", "miss"),
            registry,
            config,
            verdicts,
            hasher: foldhash::fast::RandomState::default(),
            facts: Gatherer::default(),
        }
    }

    /// Where advice's facts come from: the budgets the registries report (the
    /// `Distribution`'s), whether to fetch platform sizes, the cluster view's tag history.
    pub fn with_advice(mut self, budgets: Arc<Budgets>, sources: FactSources) -> Self {
        self.facts = Gatherer::new(budgets, sources);
        self
    }

    /// The rate-limit budgets advice reads.
    pub fn budgets(&self) -> &Budgets {
        self.facts.budgets()
    }

    /// The result cache the checker asks (its registry answers).
    pub fn cache(&self) -> &CachedRegistry {
        &self.registry
    }

    fn verdict_key(
        &self,
        image: &str,
        keyring: &Keyring,
        context: Context,
        wanted: &[Platform],
    ) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = self.hasher.build_hasher();
        image.hash(&mut h);
        keyring.id().hash(&mut h);
        (context as u8).hash(&mut h);
        wanted.hash(&mut h);
        h.finish()
    }

    /// Checks many images, at most `concurrency` at once, each inside `deadline`; results
    /// in input order.
    pub async fn check_all(
        &self,
        images: &[String],
        keyring: &Keyring,
        wanted: &[Platform],
        context: Context,
        deadline: Instant,
        concurrency: usize,
    ) -> Vec<Arc<ImageCheck>> {
        // Verdicts at hand first: a warm review needs nothing else.
        let known: Vec<Option<Arc<ImageCheck>>> = images
            .iter()
            .map(|image| self.known_verdict(image, keyring, wanted, context))
            .collect();
        if known.iter().all(Option::is_some) {
            return known.into_iter().flatten().collect();
        }
        // Futures built up front (they do nothing until polled): a closure over `&String`
        // here would make the stream's future not `Send` for axum handlers.
        let futures: Vec<_> = images
            .iter()
            .zip(known)
            .map(|(image, known)| async move {
                match known {
                    Some(check) => check,
                    None => {
                        self.check_unknown(image, keyring, wanted, context, deadline)
                            .await
                    }
                }
            })
            .collect();
        futures::stream::iter(futures)
            .buffered(concurrency.max(1))
            .collect()
            .await
    }

    /// Checks one image as the kubelet would pull it; answers by `deadline` at the latest.
    pub async fn check(
        &self,
        image: &str,
        keyring: &Keyring,
        wanted: &[Platform],
        context: Context,
        deadline: Instant,
    ) -> Arc<ImageCheck> {
        match self.known_verdict(image, keyring, wanted, context) {
            Some(check) => check,
            None => {
                self.check_unknown(image, keyring, wanted, context, deadline)
                    .await
            }
        }
    }

    /// The kept verdict for these inputs, if one holds.
    fn known_verdict(
        &self,
        image: &str,
        keyring: &Keyring,
        wanted: &[Platform],
        context: Context,
    ) -> Option<Arc<ImageCheck>> {
        let key = self.verdict_key(image, keyring, context, wanted);
        let v = self.verdicts.get(&key)?;
        if !v.answers(image, keyring, context, wanted) {
            return None;
        }
        self.verdict_hits.inc();
        Some(Arc::clone(&v.check))
    }

    async fn check_unknown(
        &self,
        image: &str,
        keyring: &Keyring,
        wanted: &[Platform],
        context: Context,
        deadline: Instant,
    ) -> Arc<ImageCheck> {
        let mut validity = Validity::start();
        let out = Arc::new(
            self.check_uncached(image, keyring, wanted, context, deadline, &mut validity)
                .await,
        );
        if let Some(expires) = validity.0 {
            self.verdict_misses.inc();
            let key = self.verdict_key(image, keyring, context, wanted);
            self.verdicts.insert(
                key,
                Arc::new(Verdict {
                    image: image.to_owned(),
                    keyring: keyring.id(),
                    context,
                    wanted: wanted.to_vec(),
                    check: Arc::clone(&out),
                    expires,
                }),
            );
        }
        out
    }

    async fn check_uncached(
        &self,
        image: &str,
        keyring: &Keyring,
        wanted: &[Platform],
        context: Context,
        deadline: Instant,
        validity: &mut Validity,
    ) -> ImageCheck {
        let mut out = ImageCheck::new(image);
        let reference = match ImageRef::parse(image) {
            Ok(r) => r,
            Err(e) => {
                out.finding = Some(Finding {
                    class: FindingClass::InvalidReference,
                    message: format!(
                        "invalid image reference {:?}: {e}",
                        clip(image, QUOTE_LIMIT)
                    ),
                    hint: None,
                });
                return out;
            }
        };
        if reference.domain().is_empty() {
            // distribution accepts `a_b.c/d` as a path with no domain; nothing can pull it.
            out.finding = Some(Finding {
                class: FindingClass::InvalidReference,
                message: format!(
                    "invalid image reference {:?}: no usable registry host",
                    clip(image, QUOTE_LIMIT)
                ),
                hint: None,
            });
            return out;
        }
        out.canonical = Some(reference.canonical());
        out.facts = ImageFacts::of_reference(&reference);
        let started = Instant::now();
        let resolution = self.resolve(&reference, keyring, context, &mut out, validity);
        match tokio::time::timeout_at(deadline, resolution).await {
            Ok(Ok(Some(found))) => {
                self.match_platforms(&found.resolved, wanted, &mut out);
                if out.finding.is_none() {
                    let facts = &mut out.facts;
                    let gathered = self.facts.gather(
                        &self.registry,
                        &reference,
                        &found,
                        wanted,
                        deadline,
                        facts,
                    );
                    if let Some(again) = gathered.await {
                        validity.limit(Some(again));
                    }
                }
                out.resolved = Some(found.resolved);
            }
            Ok(Ok(None)) => {}
            Ok(Err(finding)) => out.finding = Some(finding),
            Err(_) => {
                validity.limit(None);
                let err = RegistryError::Timeout {
                    host: reference.domain().to_string(),
                    after: started.elapsed(),
                    limit: match context {
                        Context::Cli => TimeoutLimit::Check,
                        Context::Cluster => TimeoutLimit::Review,
                    },
                };
                out.finding = Some(finding_for(&err, &reference, keyring, &[], context));
            }
        }
        out
    }

    /// The kubelet's try-each-credential loop through the cache. `Ok(None)`: not verifiable
    /// (nodes hold the credentials).
    async fn resolve(
        &self,
        reference: &ImageRef,
        keyring: &Keyring,
        context: Context,
        out: &mut ImageCheck,
        validity: &mut Validity,
    ) -> Result<Option<Found>, Finding> {
        let matched = keyring.lookup(reference);
        out.credentials_tried = matched.iter().map(|m| m.source.clone()).collect();
        let attempts: Vec<Option<&MatchedCredential>> = if matched.is_empty() {
            vec![None]
        } else {
            matched.iter().map(Some).collect()
        };
        let mut failures: Vec<(RegistryError, Option<Stale>)> = Vec::new();
        for attempt in &attempts {
            let lookup = self
                .registry
                .lookup(reference, attempt.map(|m| &m.credential))
                .await;
            validity.limit(lookup.valid_until);
            match lookup.result {
                Ok(resolved) => {
                    out.credential_source = attempt.map(|m| m.source.clone());
                    return Ok(Some(Found {
                        resolved,
                        credential: attempt.map(|m| m.credential.clone()),
                        moved: lookup.moved,
                    }));
                }
                Err(e) => failures.push((e, lookup.stale)),
            }
        }
        // Every attempt failed. An uncertain failure wins over a definite one (we cannot
        // tell that the kubelet would fail), then anything but auth (more specific).
        let pick = failures
            .iter()
            .position(|(e, _)| !e.is_definite())
            .or_else(|| failures.iter().position(|(e, _)| !e.is_auth()))
            .unwrap_or(failures.len().saturating_sub(1));
        let Some((err, stale)) = failures.into_iter().nth(pick) else {
            return Ok(None);
        };
        if err.is_auth() {
            if let Some(note) = self.config.node_pull(reference, !matched.is_empty()) {
                out.notes.push(note);
                return Ok(None);
            }
        }
        if let Some(s) = stale {
            out.stale_age = Some(s.age);
            out.notes.push(format!(
                "registry failing; using the last good answer, from {} ago",
                human_duration(s.age)
            ));
            out.resolved = Some(s.resolved);
        }
        Err(finding_for(&err, reference, keyring, &matched, context))
    }

    fn match_platforms(&self, resolved: &Resolved, wanted: &[Platform], out: &mut ImageCheck) {
        if wanted.is_empty() {
            return;
        }
        let available = &resolved.platforms.platforms;
        let satisfied = self.config.platform_matcher.satisfied(wanted, available);
        out.missing_platforms = wanted
            .iter()
            .filter(|w| !satisfied.contains(w))
            .cloned()
            .collect();
        if !satisfied.is_empty() {
            return;
        }
        let have = list(available);
        let want = list(wanted);
        out.finding = Some(if resolved.platforms.is_index {
            Finding {
                class: FindingClass::PlatformMismatch,
                message: format!("image has no {want} variant (it has {have}): the pull fails with \"no match for platform in manifest\""),
                hint: Some(format!("schedule the Pod on {have} nodes with a nodeSelector, or publish the image for {want}")),
            }
        } else {
            Finding {
                class: FindingClass::PlatformMismatch,
                message: format!("image is built for {have} only, nodes are {want}: the container will fail with \"exec format error\""),
                hint: Some(format!("schedule the Pod on {have} nodes with a nodeSelector, or publish the image for {want}")),
            }
        });
        out.missing_platforms.clear();
    }
}

fn list(platforms: &[Platform]) -> String {
    let mut names: Vec<String> = platforms.iter().map(ToString::to_string).collect();
    names.dedup();
    if names.is_empty() {
        "no platform".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::credentials::DockerConfig;
    use crate::metrics::Metrics;
    use crate::registry::cache::scripted::{down, good, Scripted};
    use crate::registry::cache::CacheConfig;
    use crate::registry::Registry;
    use std::sync::atomic::Ordering;

    fn checker(
        answers: Vec<Result<Resolved, RegistryError>>,
        config: CacheConfig,
    ) -> (Checker, Arc<Scripted>, Arc<Metrics>) {
        let inner = Scripted::new(answers, Duration::ZERO);
        let metrics = Arc::new(Metrics::default());
        let cached = CachedRegistry::new(
            Arc::clone(&inner) as Arc<dyn Registry>,
            &config,
            Arc::clone(&metrics),
        );
        let c = Checker::new(Arc::new(cached), Arc::new(RegistryConfig::default()));
        (c, inner, metrics)
    }

    async fn check(c: &Checker, image: &str, k: &Keyring, wanted: &[Platform]) -> Arc<ImageCheck> {
        let deadline = Instant::now() + Duration::from_secs(5);
        c.check(image, k, wanted, Context::Cluster, deadline).await
    }

    fn keyring(user: &str) -> Keyring {
        let json =
            format!(r#"{{"auths":{{"r.example":{{"username":"{user}","password":"pw"}}}}}}"#);
        let config: DockerConfig =
            crate::kubelet::credentials::parse_dockerconfigjson(json.as_bytes()).expect("config");
        let mut k = Keyring::new();
        k.add("secret/regcred", &config);
        k
    }

    #[tokio::test]
    async fn verdicts_are_kept_while_their_answers_are_cached() {
        let config = CacheConfig {
            positive_ttl: Duration::from_millis(150),
            ..CacheConfig::default()
        };
        let (c, inner, metrics) = checker(vec![good("sha256:a"), good("sha256:b")], config);
        let k = keyring("alice");
        let amd64 = [Platform::new("linux", "amd64", None)];
        let first = check(&c, "r.example/app:1", &k, &amd64).await;
        let again = check(&c, "r.example/app:1", &k, &amd64).await;
        assert!(
            Arc::ptr_eq(&first, &again),
            "the kept verdict is handed out"
        );
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
        assert_eq!(metrics.cache_count("verdict", "hit"), 1);
        assert_eq!(
            metrics.cache_count("result", "hit"),
            0,
            "result cache not even asked"
        );

        // Other inputs, other verdicts: wanted platforms, credentials, image string.
        let other = check(&c, "r.example/app:1", &k, &[]).await;
        assert!(!Arc::ptr_eq(&first, &other));
        let same_content = k.clone();
        assert!(Arc::ptr_eq(
            &first,
            &check(&c, "r.example/app:1", &same_content, &amd64).await
        ));
        // The same credentials parsed again make another keyring: a verdict of its own
        // (ids are conservative), still without asking the registry.
        let rebuilt = keyring("alice");
        assert!(!Arc::ptr_eq(
            &first,
            &check(&c, "r.example/app:1", &rebuilt, &amd64).await
        ));
        let bob = keyring("bob");
        assert!(!Arc::ptr_eq(
            &first,
            &check(&c, "r.example/app:1", &bob, &amd64).await
        ));
        assert!(!Arc::ptr_eq(
            &first,
            &check(&c, "r.example/app:1.0", &k, &amd64).await
        ));

        // The verdict ends with the cached answer it rests on.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let later = check(&c, "r.example/app:1", &k, &amd64).await;
        assert_eq!(later.resolved.as_ref().unwrap().digest, "sha256:b");
    }

    #[tokio::test]
    async fn verdicts_resting_on_a_failure_are_not_kept() {
        let (c, inner, metrics) = checker(
            vec![good("sha256:a"), down()],
            CacheConfig {
                positive_ttl: Duration::from_millis(1),
                ..CacheConfig::default()
            },
        );
        let k = keyring("alice");
        check(&c, "r.example/app:1", &k, &[]).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        // The registry fails: a stale answer stands in, and nothing is kept.
        for _ in 0..3 {
            let v = check(&c, "r.example/app:1", &k, &[]).await;
            assert_eq!(v.class(), Some(FindingClass::Unavailable));
            assert!(v.stale_age.is_some());
        }
        assert_eq!(inner.calls.load(Ordering::SeqCst), 4);
        assert_eq!(metrics.cache_count("verdict", "hit"), 0);
    }
}
