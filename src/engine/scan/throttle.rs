//! What a scan asks registries, and how fast: [`ScanRegistry`] sits between the scan's
//! result cache and the registries and
//!
//! - asks each registry for each distinct (image, credential) **once per scan**, whatever
//!   the answer (a failure too: a failing registry is not asked again for every workload
//!   that uses it), concurrent identical questions waiting for the one in flight;
//! - keeps at most `concurrency` resolutions in flight per registry host and starts at most
//!   `rate` per second per host ([`Throttle`], shared by the scan and the diagnoses of
//!   Pods stuck pulling), so a scan of a large cluster never looks like a flood to a
//!   registry (Docker Hub's abuse limit is "in the order of thousands of requests per
//!   minute" per address).
//!
//! A resolution is one manifest HEAD with a warm token and known platforms (what Docker
//! Hub does not count as a pull), up to a few requests the first time (challenge, token,
//! the index and config of a digest never seen).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::kubelet::credentials::Credential;
use crate::kubelet::reference::ImageRef;
use crate::registry::{Registry, RegistryError, Resolved};

/// Registry hosts with a gate kept at most (beyond, the gates are dropped and made anew).
const MAX_HOSTS: usize = 10_000;
/// Answers a scan remembers at most (beyond, questions are asked without memo).
const MAX_MEMO: usize = 200_000;

/// Limits per registry host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Resolutions in flight at once per host.
    pub concurrency: usize,
    /// Resolutions started per second per host.
    pub rate: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            concurrency: 4,
            rate: 10.0,
        }
    }
}

/// One host's gate: a semaphore and the earliest start of the next resolution.
struct Gate {
    permits: Arc<Semaphore>,
    next: tokio::sync::Mutex<Instant>,
}

/// Per-host concurrency and rate of resolutions.
pub struct Throttle {
    limits: Limits,
    gates: Mutex<HashMap<String, Arc<Gate>>>,
}

impl Throttle {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits: Limits {
                concurrency: limits.concurrency.max(1),
                rate: if limits.rate.is_finite() && limits.rate > 0.0 {
                    limits.rate
                } else {
                    f64::INFINITY
                },
            },
            gates: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn gate(&self, host: &str) -> Arc<Gate> {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        if gates.len() >= MAX_HOSTS && !gates.contains_key(host) {
            gates.clear();
        }
        Arc::clone(gates.entry(host.to_owned()).or_insert_with(|| {
            Arc::new(Gate {
                permits: Arc::new(Semaphore::new(self.limits.concurrency)),
                next: tokio::sync::Mutex::new(Instant::now()),
            })
        }))
    }

    /// Waits for a slot on `host`: a permit, then the next start the rate allows.
    async fn admit(&self, host: &str) -> tokio::sync::OwnedSemaphorePermit {
        let gate = self.gate(host);
        let permit = Arc::clone(&gate.permits)
            .acquire_owned()
            .await
            .unwrap_or_else(|_| unreachable!("the semaphore is never closed"));
        if self.limits.rate.is_finite() {
            let start = {
                let mut next = gate.next.lock().await;
                let start = (*next).max(Instant::now());
                *next = start + Duration::from_secs_f64(1.0 / self.limits.rate);
                start
            };
            tokio::time::sleep_until(start).await;
        }
        permit
    }
}

type Answer = Result<Resolved, RegistryError>;
type InFlight = Shared<BoxFuture<'static, Answer>>;

/// (canonical reference, credential fingerprint or `anonymous`).
type Key = (String, String);

/// The registries as a scan asks them: once per (image, credential) per scan, throttled.
pub struct ScanRegistry {
    inner: Arc<dyn Registry>,
    throttle: Arc<Throttle>,
    /// Answers of this scan (or, with `max_age`, of the last moments), and those in flight.
    memo: Mutex<HashMap<Key, (Instant, InFlight)>>,
    /// `None`: answers are kept until [`ScanRegistry::begin`]; `Some`: for this long.
    max_age: Option<Duration>,
    resolutions: AtomicU64,
}

impl ScanRegistry {
    /// Answers kept for the whole scan (until the next [`ScanRegistry::begin`]).
    pub fn per_scan(inner: Arc<dyn Registry>, throttle: Arc<Throttle>) -> Self {
        Self::new(inner, throttle, None)
    }

    /// Answers kept `max_age` (the diagnoses of Pods stuck pulling, between scans: a burst
    /// of Pods of one Deployment asks once, a Pod later gets a fresh answer).
    pub fn fresh(inner: Arc<dyn Registry>, throttle: Arc<Throttle>, max_age: Duration) -> Self {
        Self::new(inner, throttle, Some(max_age))
    }

    fn new(inner: Arc<dyn Registry>, throttle: Arc<Throttle>, max_age: Option<Duration>) -> Self {
        Self {
            inner,
            throttle,
            memo: Mutex::new(HashMap::new()),
            max_age,
            resolutions: AtomicU64::new(0),
        }
    }

    fn memo(&self) -> MutexGuard<'_, HashMap<Key, (Instant, InFlight)>> {
        self.memo.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new scan: what the last one learnt is forgotten.
    pub fn begin(&self) {
        self.memo().clear();
    }

    /// Resolutions sent to the registries so far (each one (image, credential) question).
    pub fn resolutions(&self) -> u64 {
        self.resolutions.load(Ordering::Relaxed)
    }

    pub fn throttle(&self) -> &Arc<Throttle> {
        &self.throttle
    }

    fn ask(&self, image: &ImageRef, credential: Option<&Credential>) -> InFlight {
        let inner = Arc::clone(&self.inner);
        let throttle = Arc::clone(&self.throttle);
        let image = image.clone();
        let credential = credential.cloned();
        self.resolutions.fetch_add(1, Ordering::Relaxed);
        async move {
            let _permit = throttle.admit(image.domain()).await;
            inner.resolve(&image, credential.as_ref()).await
        }
        .boxed()
        .shared()
    }
}

#[async_trait::async_trait]
impl Registry for ScanRegistry {
    async fn resolve(
        &self,
        image: &ImageRef,
        credential: Option<&Credential>,
    ) -> Result<Resolved, RegistryError> {
        let key: Key = (
            image.canonical(),
            credential
                .map_or("anonymous", Credential::fingerprint)
                .to_owned(),
        );
        let now = Instant::now();
        let answer = {
            let mut memo = self.memo();
            if let Some(max_age) = self.max_age {
                memo.retain(|_, (at, _)| now.duration_since(*at) < max_age);
            }
            match memo.get(&key) {
                Some((_, known)) => known.clone(),
                None => {
                    let asked = self.ask(image, credential);
                    if memo.len() < MAX_MEMO {
                        memo.insert(key, (now, asked.clone()));
                    }
                    asked
                }
            }
        };
        answer.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::cache::scripted::{down, good, Scripted};

    fn image(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    #[tokio::test]
    async fn one_question_per_image_and_credential_per_scan_failures_included() {
        let inner = Scripted::new(
            vec![down(), good("sha256:a"), good("sha256:b")],
            Duration::from_millis(20),
        );
        let scan =
            ScanRegistry::per_scan(inner.clone(), Arc::new(Throttle::new(Limits::default())));
        let a = image("r.example/a:1");
        let answers = futures::future::join_all((0..20).map(|_| scan.resolve(&a, None))).await;
        assert!(
            answers.iter().all(Result::is_err),
            "the one answer, a failure, for all"
        );
        assert!(
            scan.resolve(&a, None).await.is_err(),
            "not asked again this scan"
        );
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
        assert_eq!(scan.resolutions(), 1);
        scan.begin();
        assert_eq!(scan.resolve(&a, None).await.unwrap().digest, "sha256:a");
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn fresh_answers_age_out() {
        let inner = Scripted::new(vec![good("sha256:a"), good("sha256:b")], Duration::ZERO);
        let live = ScanRegistry::fresh(
            inner.clone(),
            Arc::new(Throttle::new(Limits::default())),
            Duration::from_millis(50),
        );
        let a = image("r.example/a:1");
        assert_eq!(live.resolve(&a, None).await.unwrap().digest, "sha256:a");
        assert_eq!(live.resolve(&a, None).await.unwrap().digest, "sha256:a");
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(live.resolve(&a, None).await.unwrap().digest, "sha256:b");
    }

    #[tokio::test(start_paused = true)]
    async fn each_host_gets_its_rate_and_concurrency() {
        let answers = (0..40).map(|i| good(&format!("sha256:{i}"))).collect();
        let inner = Scripted::new(answers, Duration::from_millis(1));
        let scan = ScanRegistry::per_scan(
            inner.clone(),
            Arc::new(Throttle::new(Limits {
                concurrency: 2,
                rate: 10.0,
            })),
        );
        let started = Instant::now();
        let images: Vec<ImageRef> = (0..20)
            .map(|i| {
                image(&format!(
                    "{}.example/app:{i}",
                    if i % 2 == 0 { "one" } else { "two" }
                ))
            })
            .collect();
        futures::future::join_all(images.iter().map(|i| scan.resolve(i, None))).await;
        // Ten per host at ten per second: the last of each host starts 0.9 s after the first.
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(1100),
            "{took:?}"
        );
        assert_eq!(inner.calls.load(Ordering::SeqCst), 20);
    }
}
