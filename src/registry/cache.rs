//! Result cache in front of a [`Registry`]: a burst of identical lookups costs the registry
//! one resolution, good answers live for minutes, definite negative ones for seconds (a tag
//! pushed a moment ago must pass on retry), transient failures are never cached. The last
//! good answer is kept apart, with its time, to stand in while the registry is failing.
//!
//! Entries are keyed by canonical reference *and* credential identity: an answer obtained
//! with one tenant's credentials is never served to a caller with other credentials.
//!
//! A tag whose fresh answer names another digest than the last good one has moved: the
//! previous digest is kept with the answers (for as long as the last good answer, at most
//! `staleTtl`), and every lookup of the tag says so ([`Lookup::moved`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;

use crate::kubelet::credentials::Credential;
use crate::kubelet::reference::ImageRef;
use crate::metrics::Metrics;
use crate::registry::{Registry, RegistryError, Resolved};
use crate::text::instant_after;

/// Sizes and lifetimes of the caches.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// How long a good resolution (tag → digest, platforms) is reused.
    pub positive_ttl: Duration,
    /// How long a definite negative answer (not found, unauthorized) is reused.
    pub negative_ttl: Duration,
    /// Most cached resolutions.
    pub max_results: u64,
    /// How long the last good answer may stand in for a failing registry.
    pub stale_ttl: Duration,
    /// Most last-good answers kept.
    pub max_stale: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            positive_ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(10),
            max_results: 20_000,
            stale_ttl: Duration::from_secs(24 * 3600),
            max_stale: 20_000,
        }
    }
}

/// (canonical reference, credential identity)
type Key = (String, String);

#[derive(Clone)]
enum Answer {
    Good(Resolved),
    /// Only definite errors are stored.
    Bad(RegistryError),
}

/// An answer and the moment it stops being reused.
#[derive(Clone)]
struct Entry {
    answer: Answer,
    expires: Instant,
    moved: Option<Moved>,
}

impl Entry {
    fn new(answer: Answer, positive: Duration, negative: Duration) -> Self {
        let ttl = match answer {
            Answer::Good(_) => positive,
            Answer::Bad(_) => negative,
        };
        Entry {
            answer,
            expires: instant_after(ttl),
            moved: None,
        }
    }
}

/// A tag seen at another digest before the current one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moved {
    /// The digest the tag pointed to before.
    pub previous: String,
    /// When the previous digest was last answered.
    pub seen: Instant,
}

/// The last good answer for a key, and what the tag pointed to before it.
#[derive(Clone)]
struct LastGood {
    resolved: Resolved,
    at: Instant,
    moved: Option<Moved>,
}

struct EntryExpiry;

impl moka::Expiry<Key, Entry> for EntryExpiry {
    fn expire_after_create(&self, _: &Key, value: &Entry, now: Instant) -> Option<Duration> {
        Some(value.expires.saturating_duration_since(now))
    }
}

/// A good answer from before, standing in while the registry fails.
#[derive(Clone, Debug)]
pub struct Stale {
    pub resolved: Resolved,
    pub age: Duration,
}

/// One cached lookup.
#[derive(Clone, Debug)]
pub struct Lookup {
    pub result: Result<Resolved, RegistryError>,
    /// Set when `result` is a transient error and a last good answer exists.
    pub stale: Option<Stale>,
    /// Until when the cache gives this same answer (`None` for a transient error: never
    /// cached, the next lookup asks again).
    pub valid_until: Option<Instant>,
    /// The tag answered another digest before this one (within `staleTtl`).
    pub moved: Option<Moved>,
}

pub struct CachedRegistry {
    inner: Arc<dyn Registry>,
    results: Cache<Key, Entry>,
    last_good: Cache<Key, LastGood>,
    metrics: Arc<Metrics>,
    capacity: u64,
    positive_ttl: Duration,
    negative_ttl: Duration,
}

impl CachedRegistry {
    pub fn new(inner: Arc<dyn Registry>, config: &CacheConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            results: Cache::builder()
                .max_capacity(config.max_results)
                .expire_after(EntryExpiry)
                .build(),
            last_good: Cache::builder()
                .max_capacity(config.max_stale)
                .time_to_live(config.stale_ttl)
                .build(),
            metrics,
            capacity: config.max_results,
            positive_ttl: config.positive_ttl,
            negative_ttl: config.negative_ttl,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Most results cached (`maxEntries`).
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Resolves through the cache. Concurrent identical lookups wait for one resolution.
    pub async fn lookup(&self, image: &ImageRef, credential: Option<&Credential>) -> Lookup {
        let key: Key = (
            image.canonical(),
            credential
                .map_or("anonymous", Credential::fingerprint)
                .to_owned(),
        );
        if let Some(entry) = self.results.get(&key).await {
            self.metrics.cache_event("result", "hit");
            return Self::from_entry(entry);
        }
        let ran = AtomicBool::new(false);
        let outcome = self
            .results
            .try_get_with(key.clone(), async {
                ran.store(true, Ordering::Relaxed);
                let answer = match self.inner.resolve(image, credential).await {
                    Ok(r) => Answer::Good(r),
                    Err(e) if e.is_definite() => Answer::Bad(e),
                    Err(e) => return Err(e),
                };
                let mut entry = Entry::new(answer, self.positive_ttl, self.negative_ttl);
                if let (Answer::Good(r), None) = (&entry.answer, image.digest()) {
                    entry.moved = match self.last_good.get(&key).await {
                        Some(before) if before.resolved.digest != r.digest => Some(Moved {
                            previous: before.resolved.digest,
                            seen: before.at,
                        }),
                        Some(before) => before.moved,
                        None => None,
                    };
                }
                Ok(entry)
            })
            .await;
        let ran = ran.load(Ordering::Relaxed);
        self.metrics
            .cache_event("result", if ran { "miss" } else { "coalesced" });
        match outcome {
            Ok(entry) => {
                if let (true, Answer::Good(r)) = (ran, &entry.answer) {
                    let last = LastGood {
                        resolved: r.clone(),
                        at: Instant::now(),
                        moved: entry.moved.clone(),
                    };
                    self.last_good.insert(key, last).await;
                }
                Self::from_entry(entry)
            }
            Err(err) => {
                let stale = self.last_good.get(&key).await.map(|last| Stale {
                    resolved: last.resolved,
                    age: last.at.elapsed(),
                });
                if stale.is_some() {
                    self.metrics.cache_event("result", "stale");
                }
                Lookup {
                    result: Err((*err).clone()),
                    stale,
                    valid_until: None,
                    moved: None,
                }
            }
        }
    }

    fn from_entry(entry: Entry) -> Lookup {
        Lookup {
            result: match entry.answer {
                Answer::Good(r) => Ok(r),
                Answer::Bad(e) => Err(e),
            },
            stale: None,
            valid_until: Some(entry.expires),
            moved: entry.moved,
        }
    }

    /// The compressed size of a platform manifest of `image` (see [`Registry::image_size`]);
    /// kept by the registry, content-addressed.
    pub async fn image_size(
        &self,
        image: &ImageRef,
        credential: Option<&Credential>,
        digest: &str,
    ) -> Result<Option<u64>, RegistryError> {
        self.inner.image_size(image, credential, digest).await
    }

    /// Entries currently cached (approximate; moka counts lazily).
    pub fn len(&self) -> u64 {
        self.results.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A registry double for the tests of this module and of `check`.
#[cfg(test)]
pub(crate) mod scripted {
    use super::*;
    use crate::kubelet::platform::Platform;
    use crate::registry::{ImagePlatforms, Unreachable};
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// A registry double answering from a script, counting calls, optionally slow.
    pub(crate) struct Scripted {
        pub(crate) calls: AtomicUsize,
        answers: Mutex<Vec<Result<Resolved, RegistryError>>>,
        delay: Duration,
    }

    impl Scripted {
        pub(crate) fn new(
            answers: Vec<Result<Resolved, RegistryError>>,
            delay: Duration,
        ) -> Arc<Self> {
            Arc::new(Self {
                calls: AtomicUsize::new(0),
                answers: Mutex::new(answers),
                delay,
            })
        }
    }

    #[async_trait]
    impl Registry for Scripted {
        async fn resolve(
            &self,
            _: &ImageRef,
            _: Option<&Credential>,
        ) -> Result<Resolved, RegistryError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            let mut answers = self.answers.lock().unwrap();
            if answers.len() > 1 {
                answers.remove(0)
            } else {
                answers[0].clone()
            }
        }
    }

    pub(crate) fn good(digest: &str) -> Result<Resolved, RegistryError> {
        Ok(Resolved {
            digest: digest.into(),
            platforms: Arc::new(ImagePlatforms {
                is_index: false,
                platforms: vec![Platform::new("linux", "amd64", None)],
                ..ImagePlatforms::default()
            }),
        })
    }

    pub(crate) fn down() -> Result<Resolved, RegistryError> {
        Err(RegistryError::Unavailable {
            host: "r.example".into(),
            cause: Unreachable::Status(503),
            detail: String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::scripted::{down, good, Scripted};
    use super::*;

    fn missing() -> Result<Resolved, RegistryError> {
        Err(RegistryError::RepositoryNotFound {
            registry: "r.example".into(),
            repository: "x".into(),
        })
    }

    fn cache(inner: Arc<Scripted>, config: CacheConfig) -> CachedRegistry {
        CachedRegistry::new(inner, &config, Arc::new(Metrics::default()))
    }

    fn image() -> ImageRef {
        ImageRef::parse("r.example/x:1").unwrap()
    }

    #[tokio::test]
    async fn concurrent_identical_lookups_resolve_once() {
        let inner = Scripted::new(vec![good("sha256:a")], Duration::from_millis(50));
        let c = Arc::new(cache(inner.clone(), CacheConfig::default()));
        let img = image();
        let all = futures::future::join_all((0..50).map(|_| c.lookup(&img, None))).await;
        assert!(all.iter().all(|l| l.result.is_ok()));
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
        assert_eq!(c.metrics.cache_count("result", "miss"), 1);
        assert_eq!(c.metrics.cache_count("result", "coalesced"), 49);
    }

    #[tokio::test]
    async fn results_are_keyed_by_credentials() {
        let inner = Scripted::new(vec![good("sha256:a")], Duration::ZERO);
        let c = cache(inner.clone(), CacheConfig::default());
        let a = Credential::new("a", "1");
        let b = Credential::new("b", "2");
        c.lookup(&image(), Some(&a)).await;
        c.lookup(&image(), Some(&a)).await;
        c.lookup(&image(), Some(&b)).await;
        c.lookup(&image(), None).await;
        assert_eq!(inner.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn transient_errors_are_not_cached_and_stale_is_offered() {
        let inner = Scripted::new(vec![good("sha256:a"), down(), down()], Duration::ZERO);
        let config = CacheConfig {
            positive_ttl: Duration::from_millis(1),
            ..CacheConfig::default()
        };
        let c = cache(inner.clone(), config);
        assert!(c.lookup(&image(), None).await.result.is_ok());
        tokio::time::sleep(Duration::from_millis(20)).await;
        let l = c.lookup(&image(), None).await;
        assert!(l.result.is_err());
        let stale = l.stale.expect("last good answer offered");
        assert_eq!(stale.resolved.digest, "sha256:a");
        assert!(stale.age >= Duration::from_millis(20));
        c.lookup(&image(), None).await;
        assert_eq!(inner.calls.load(Ordering::SeqCst), 3, "errors not cached");
    }

    #[tokio::test]
    async fn negative_answers_expire_quickly() {
        let inner = Scripted::new(vec![missing(), good("sha256:b")], Duration::ZERO);
        let config = CacheConfig {
            negative_ttl: Duration::from_millis(30),
            ..CacheConfig::default()
        };
        let c = cache(inner.clone(), config);
        assert!(c.lookup(&image(), None).await.result.is_err());
        assert!(c.lookup(&image(), None).await.result.is_err());
        assert_eq!(
            inner.calls.load(Ordering::SeqCst),
            1,
            "negative answer cached"
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(c.lookup(&image(), None).await.result.is_ok());
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_tag_answering_another_digest_has_moved_and_says_so_until_stale_ttl() {
        let inner = Scripted::new(
            vec![
                good("sha256:a"),
                good("sha256:a"),
                good("sha256:b"),
                good("sha256:b"),
            ],
            Duration::ZERO,
        );
        let config = CacheConfig {
            positive_ttl: Duration::from_millis(1),
            ..CacheConfig::default()
        };
        let c = cache(inner.clone(), config);
        let lookup = || async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            c.lookup(&image(), None).await
        };
        assert_eq!(lookup().await.moved, None, "first answer");
        assert_eq!(lookup().await.moved, None, "same digest");
        let moved = lookup().await.moved.expect("a then b");
        assert_eq!(moved.previous, "sha256:a");
        let again = lookup().await;
        assert_eq!(again.moved, Some(moved), "still said on the next answer");
        // A digest reference never moves.
        let pinned = ImageRef::parse(&format!("r.example/x@sha256:{}", "c".repeat(64))).unwrap();
        assert_eq!(c.lookup(&pinned, None).await.moved, None);
        assert_eq!(inner.calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn bounded_by_configuration() {
        let inner = Scripted::new(vec![good("sha256:a")], Duration::ZERO);
        let config = CacheConfig {
            max_results: 10,
            ..CacheConfig::default()
        };
        let c = cache(inner, config);
        for i in 0..100 {
            let img = ImageRef::parse(&format!("r.example/x:{i}")).unwrap();
            c.lookup(&img, None).await;
        }
        c.results.run_pending_tasks().await;
        assert!(c.len() <= 10, "{} entries", c.len());
    }
}
