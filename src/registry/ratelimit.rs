//! Rate-limit budgets, as registries report them on their answers (HEAD included), kept per
//! registry and credential identity, exported as metrics, and read by the engine to warn
//! before the budget runs out.
//!
//! Every syntax registries send is read ([`parse`]):
//!
//! - Docker Hub: `ratelimit-limit: 100;w=21600`, `ratelimit-remaining: 76;w=21600` (the
//!   IETF draft's early style, the window attached as `w=`; no reset header: the window
//!   rolls);
//! - the IETF drafts up to -06: `RateLimit-Limit: 100, 100;w=10`, `RateLimit-Remaining: 50`,
//!   `RateLimit-Reset: 50` (seconds), from -05 with `RateLimit-Policy: 100;w=10`;
//! - draft -07: one dictionary, `RateLimit: limit=100, remaining=50, reset=5`;
//! - drafts -08 to -10: named policies, `RateLimit-Policy: "burst";q=100;w=60` with
//!   `RateLimit: "burst";r=50;t=30` (several policies: the one with the fewest left binds);
//! - `X-RateLimit-*` with the same values, defensively (a reset above 10⁹ is read as a Unix
//!   time, as GitHub-style APIs send it).
//!
//! Readings are keyed by [`BudgetKey`]: the registry host and the credential's identity
//! (anonymous, or the credential's salted fingerprint — never the credential). Their
//! metric labels are bounded like the registry label ([`super::names`]): the registry's
//! tracked name or `other`, and `anonymous`, `account-<first 8 hex digits of the salted
//! fingerprint>` for the first [`TRACKED_IDENTITIES`] accounts, or `other`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

use super::names::{TrackedHosts, OTHER};
use crate::kubelet::credentials::Credential;
use crate::metrics::Metrics;

/// One reading of a registry's rate-limit headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests (Docker Hub: pulls) left in the window.
    pub remaining: u64,
    /// The quota of the window, when the registry says it.
    pub limit: Option<u64>,
    /// The window's length, when said (`w=`).
    pub window: Option<Duration>,
    /// Time until the quota resets (or more becomes available), when said.
    pub reset: Option<Duration>,
}

/// Header values longer than this are not read (a hostile registry's megabyte of commas).
const MAX_HEADER: usize = 4096;

/// The rate limit an answer reports, in any syntax registries send; `None` when it reports
/// none (or no remaining count).
pub fn parse(headers: &HeaderMap) -> Option<RateLimit> {
    if let Some(v) = value(headers, "ratelimit") {
        if let Some(r) = structured(&v, value(headers, "ratelimit-policy").as_deref()) {
            return Some(r);
        }
    }
    ["ratelimit-", "x-ratelimit-"]
        .into_iter()
        .find_map(|prefix| separate(headers, prefix))
}

/// A header's values joined as one list (RFC 9110: repeated fields are one list).
fn value(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut out = String::new();
    for v in headers.get_all(name) {
        let v = v.to_str().ok()?;
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(v);
        if out.len() > MAX_HEADER {
            return None;
        }
    }
    (!out.trim().is_empty()).then_some(out)
}

/// One member of a header list: its value and parameters (`100;w=21600`,
/// `"burst";q=100;w=60`, `remaining=50`).
struct Member<'a> {
    value: &'a str,
    params: Vec<(&'a str, &'a str)>,
}

impl<'a> Member<'a> {
    fn param(&self, key: &str) -> Option<&'a str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| *v)
    }
}

/// Splits on `sep` outside double quotes.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn members(s: &str) -> Vec<Member<'_>> {
    split_outside_quotes(s, ',')
        .into_iter()
        .filter(|m| !m.trim().is_empty())
        .map(|m| {
            let mut parts = split_outside_quotes(m, ';').into_iter();
            let value = parts.next().unwrap_or_default().trim();
            let params = parts
                .filter_map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    let k = k.trim();
                    (!k.is_empty()).then_some((k, v.trim()))
                })
                .collect();
            Member { value, params }
        })
        .collect()
}

/// A non-negative integer (Structured Fields allow 15 digits; more is not a count).
fn integer(s: &str) -> Option<u64> {
    let s = s.trim();
    (!s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn seconds(s: &str) -> Option<Duration> {
    integer(s).map(Duration::from_secs)
}

/// A quoted Structured Fields string, unquoted (names of -08+ policies).
fn unquote(s: &str) -> Option<&str> {
    s.strip_prefix('"')?.strip_suffix('"')
}

/// `RateLimit` of draft -07 (a dictionary) or -08+ (a list of named policies).
fn structured(v: &str, policy: Option<&str>) -> Option<RateLimit> {
    let list = members(v);
    let policies = policy.map(members).unwrap_or_default();
    // -08+: `"name";r=50;t=30`. The policy with the fewest left is the one that binds.
    let named = list
        .iter()
        .filter_map(|m| Some((m, integer(m.param("r")?)?)))
        .min_by_key(|(_, r)| *r);
    if let Some((m, remaining)) = named {
        let name = unquote(m.value);
        let policy = policies
            .iter()
            .find(|p| name.is_some() && unquote(p.value) == name)
            .or_else(|| (list.len() == 1 && policies.len() == 1).then(|| &policies[0]));
        return Some(RateLimit {
            remaining,
            limit: policy.and_then(|p| integer(p.param("q")?)),
            window: policy.and_then(|p| seconds(p.param("w")?)),
            reset: m.param("t").and_then(seconds),
        });
    }
    // -07: `limit=100, remaining=50, reset=5`.
    let key = |k: &str| {
        list.iter().find_map(|m| {
            let (key, value) = m.value.split_once('=')?;
            key.trim().eq_ignore_ascii_case(k).then(|| integer(value))?
        })
    };
    let remaining = key("remaining")?;
    Some(RateLimit {
        remaining,
        limit: key("limit"),
        window: policies.first().and_then(|p| seconds(p.param("w")?)),
        reset: key("reset").map(Duration::from_secs),
    })
}

/// `<prefix>limit`, `<prefix>remaining`, `<prefix>reset` (drafts up to -06, Docker Hub).
fn separate(headers: &HeaderMap, prefix: &str) -> Option<RateLimit> {
    let header = |name: &str| value(headers, &format!("{prefix}{name}"));
    let remaining_v = header("remaining")?;
    let remaining_m = members(&remaining_v);
    let first = remaining_m.first()?;
    let remaining = integer(first.value)?;
    let limit_v = header("limit").unwrap_or_default();
    let limit_m = members(&limit_v);
    let limit = limit_m.first().and_then(|m| integer(m.value));
    let policy_v = header("policy").unwrap_or_default();
    let policy_m = members(&policy_v);
    // The window: of the quota policy matching the limit, else the first said anywhere.
    let window = limit_m
        .iter()
        .filter(|m| limit.is_some() && integer(m.value) == limit)
        .chain(limit_m.iter())
        .chain(remaining_m.iter())
        .chain(policy_m.iter())
        .find_map(|m| seconds(m.param("w")?));
    let reset = header("reset").and_then(|v| {
        let n = integer(members(&v).first()?.value)?;
        if n > 1_000_000_000 {
            // A Unix time, not a delay.
            let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
            Some(Duration::from_secs(n.saturating_sub(now)))
        } else {
            Some(Duration::from_secs(n))
        }
    });
    Some(RateLimit {
        remaining,
        limit,
        window,
        reset,
    })
}

/// When a budget counts as low.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LowBudget {
    /// At most this many left.
    Count(u64),
    /// At most this percentage of the limit left (with no limit said: none left).
    Percent(u8),
}

impl Default for LowBudget {
    fn default() -> Self {
        LowBudget::Percent(20)
    }
}

impl LowBudget {
    pub fn is_low(self, rate: &RateLimit) -> bool {
        match self {
            LowBudget::Count(n) => rate.remaining <= n,
            LowBudget::Percent(p) => match rate.limit {
                Some(limit) if limit > 0 => {
                    u128::from(rate.remaining) * 100 <= u128::from(limit) * u128::from(p)
                }
                _ => rate.remaining == 0,
            },
        }
    }

    /// `20` or `20%` (a percentage at most 100).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || {
            format!(
                "invalid low pull budget {s:?}: a count (20) or a percentage of the limit (20%)"
            )
        };
        match s.strip_suffix('%') {
            Some(p) => match integer(p) {
                Some(n) if n <= 100 => Ok(LowBudget::Percent(n as u8)),
                _ => Err(bad()),
            },
            None => integer(s).map(LowBudget::Count).ok_or_else(bad),
        }
    }
}

impl std::fmt::Display for LowBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LowBudget::Count(n) => write!(f, "{n}"),
            LowBudget::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Whose budget a reading is: a registry host (as contacted: `registry-1.docker.io`) and
/// the identity pulls are counted for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BudgetKey {
    pub host: String,
    /// `None`: anonymous (Docker Hub counts these per client IP address, so every node
    /// behind one NAT address shares it); else the credential's salted fingerprint.
    pub account: Option<String>,
}

impl BudgetKey {
    pub fn new(host: &str, credential: Option<&Credential>) -> Self {
        Self {
            host: host.to_ascii_lowercase(),
            account: credential.map(|c| c.fingerprint().to_owned()),
        }
    }
}

/// A reading and when it was taken.
#[derive(Clone, Copy, Debug)]
pub struct Observed {
    pub rate: RateLimit,
    pub at: Instant,
    low: bool,
}

/// How long a reading says anything without a window or reset: an hour.
const DEFAULT_FRESHNESS: Duration = Duration::from_secs(3600);

impl Observed {
    /// Whether the reading still describes the budget: within its reset, else its window.
    pub fn fresh(&self) -> bool {
        let span = self
            .rate
            .reset
            .or(self.rate.window)
            .unwrap_or(DEFAULT_FRESHNESS);
        self.at.elapsed() < span
    }
}

/// Identities with their own metric label besides `anonymous`.
pub const TRACKED_IDENTITIES: usize = 100;
/// Readings kept at most (the oldest goes when a new key comes).
pub const MAX_READINGS: usize = 4096;

/// The last reading per registry and identity, and the metrics that show them.
pub struct Budgets {
    readings: RwLock<HashMap<BudgetKey, Observed>>,
    /// Readings that were low when taken: a review looks budgets up only when some are.
    low: AtomicUsize,
    threshold: RwLock<LowBudget>,
    identities: Mutex<HashSet<String>>,
    hosts: Arc<TrackedHosts>,
    metrics: Arc<Metrics>,
}

impl Budgets {
    pub fn new(hosts: Arc<TrackedHosts>, metrics: Arc<Metrics>) -> Self {
        Self {
            readings: RwLock::new(HashMap::new()),
            low: AtomicUsize::new(0),
            threshold: RwLock::new(LowBudget::default()),
            identities: Mutex::new(HashSet::new()),
            hosts,
            metrics,
        }
    }

    /// Sets when a budget counts as low (readings taken from now on).
    pub fn set_threshold(&self, threshold: LowBudget) {
        if let Ok(mut t) = self.threshold.write() {
            *t = threshold;
        }
    }

    pub fn threshold(&self) -> LowBudget {
        self.threshold
            .read()
            .map_or_else(|_| LowBudget::default(), |t| *t)
    }

    /// Keeps a reading and shows it in the metrics.
    pub fn record(&self, key: BudgetKey, rate: RateLimit) {
        let low = self.threshold().is_low(&rate);
        let identity = self.identity_label(key.account.as_deref());
        let registry = self.hosts.label(&key.host).to_owned();
        if let Ok(mut readings) = self.readings.write() {
            if !readings.contains_key(&key) && readings.len() >= MAX_READINGS {
                let oldest = readings
                    .iter()
                    .min_by_key(|(_, o)| o.at)
                    .map(|(k, o)| (k.clone(), o.low));
                if let Some((k, was_low)) = oldest {
                    readings.remove(&k);
                    if was_low {
                        self.low.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
            let before = readings.insert(
                key,
                Observed {
                    rate,
                    at: Instant::now(),
                    low,
                },
            );
            match (before.is_some_and(|b| b.low), low) {
                (false, true) => {
                    self.low.fetch_add(1, Ordering::Relaxed);
                }
                (true, false) => {
                    self.low.fetch_sub(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        self.metrics.ratelimit(
            &registry,
            identity,
            rate.remaining,
            rate.limit,
            rate.window.map(|w| w.as_secs()),
        );
    }

    /// Whether any reading was low when taken (one atomic load: the warm path's gate).
    pub fn any_low(&self) -> bool {
        self.low.load(Ordering::Relaxed) > 0
    }

    /// The reading for `key` when it is fresh and low.
    pub fn low(&self, key: &BudgetKey) -> Option<Observed> {
        let readings = self.readings.read().ok()?;
        readings.get(key).filter(|o| o.low && o.fresh()).copied()
    }

    /// The last reading for `key`, fresh or not.
    pub fn get(&self, key: &BudgetKey) -> Option<Observed> {
        self.readings.read().ok()?.get(key).copied()
    }

    /// The metric label of an identity: `anonymous`, `account-<8 hex>`, or `other`.
    pub fn identity_label(&self, account: Option<&str>) -> String {
        let Some(fingerprint) = account else {
            return "anonymous".into();
        };
        let short: String = fingerprint.chars().take(8).collect();
        let Ok(mut seen) = self.identities.lock() else {
            return OTHER.into();
        };
        if seen.contains(&short) || seen.len() < TRACKED_IDENTITIES {
            seen.insert(short.clone());
            format!("account-{short}")
        } else {
            OTHER.into()
        }
    }
}

/// Registries documented to limit anonymous pulls, by the host pullcheck contacts, with
/// what their documentation says (used until the registry's own headers say more).
pub fn documented_anonymous_limit(host: &str) -> Option<&'static str> {
    match host {
        "registry-1.docker.io" => Some("Docker Hub limits anonymous pulls per IP address"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn rate(
        remaining: u64,
        limit: Option<u64>,
        window: Option<u64>,
        reset: Option<u64>,
    ) -> RateLimit {
        RateLimit {
            remaining,
            limit,
            window: window.map(Duration::from_secs),
            reset: reset.map(Duration::from_secs),
        }
    }

    #[rstest]
    #[case::docker_hub(
        &[("ratelimit-limit", "100;w=21600"), ("ratelimit-remaining", "76;w=21600"), ("docker-ratelimit-source", "192.0.2.1")],
        rate(76, Some(100), Some(21600), None)
    )]
    #[case::docker_hub_hourly(
        &[("RateLimit-Limit", "10;w=3600"), ("RateLimit-Remaining", "0;w=3600")],
        rate(0, Some(10), Some(3600), None)
    )]
    #[case::draft_03_expiring_limit_then_policies(
        &[("RateLimit-Limit", "10, 10;w=1, 50;w=60, 1000;w=3600"), ("RateLimit-Remaining", "7"), ("RateLimit-Reset", "1")],
        rate(7, Some(10), Some(1), Some(1))
    )]
    #[case::draft_01_plain(
        &[("RateLimit-Limit", "100"), ("RateLimit-Remaining", "50"), ("RateLimit-Reset", "50")],
        rate(50, Some(100), None, Some(50))
    )]
    #[case::draft_06_with_policy(
        &[("RateLimit-Policy", "100;w=10"), ("RateLimit-Limit", "100"), ("RateLimit-Remaining", "50"), ("RateLimit-Reset", "5")],
        rate(50, Some(100), Some(10), Some(5))
    )]
    #[case::draft_07_dictionary(
        &[("RateLimit-Policy", "100;w=10"), ("RateLimit", "limit=100, remaining=50, reset=5")],
        rate(50, Some(100), Some(10), Some(5))
    )]
    #[case::draft_10_named(
        &[("RateLimit-Policy", r#""burst";q=100;w=60,"daily";q=1000;w=86400"#), ("RateLimit", r#""daily";r=900;t=3000, "burst";r=3;t=40"#)],
        rate(3, Some(100), Some(60), Some(40))
    )]
    #[case::draft_10_one_policy_unnamed_match(
        &[("RateLimit-Policy", r#""default";q=100;w=60"#), ("RateLimit", r#""default";r=50"#)],
        rate(50, Some(100), Some(60), None)
    )]
    #[case::draft_10_quoted_comma(
        &[("RateLimit-Policy", r#""a,b";q=5;w=9"#), ("RateLimit", r#""a,b";r=1;t=2"#)],
        rate(1, Some(5), Some(9), Some(2))
    )]
    #[case::x_prefix(
        &[("X-RateLimit-Limit", "100;w=3600"), ("X-RateLimit-Remaining", "12")],
        rate(12, Some(100), Some(3600), None)
    )]
    #[case::two_header_lines(
        &[("RateLimit-Limit", "100;w=21600"), ("ratelimit-remaining", "9;w=21600"), ("ratelimit-remaining", "8;w=21600")],
        rate(9, Some(100), Some(21600), None)
    )]
    fn every_syntax_registries_send(#[case] pairs: &[(&str, &str)], #[case] want: RateLimit) {
        assert_eq!(parse(&headers(pairs)), Some(want));
    }

    #[rstest]
    #[case::none(&[("content-type", "application/json")])]
    #[case::limit_only(&[("ratelimit-limit", "100;w=21600")])]
    #[case::negative(&[("ratelimit-remaining", "-1")])]
    #[case::garbage(&[("ratelimit-remaining", "lots"), ("RateLimit", "nonsense")])]
    #[case::huge_number(&[("ratelimit-remaining", "99999999999999999999")])]
    #[case::empty(&[("RateLimit", ""), ("ratelimit-remaining", " ")])]
    fn nothing_usable_is_none(#[case] pairs: &[(&str, &str)]) {
        assert_eq!(parse(&headers(pairs)), None);
    }

    #[test]
    fn a_unix_time_reset_is_read_as_a_time() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let h = headers(&[
            ("x-ratelimit-remaining", "3"),
            ("x-ratelimit-reset", &(now + 120).to_string()),
        ]);
        let reset = parse(&h).unwrap().reset.unwrap().as_secs();
        assert!((118..=120).contains(&reset), "{reset}");
    }

    #[test]
    fn hostile_values_are_bounded() {
        let long = "1;w=1,".repeat(10_000);
        assert_eq!(
            parse(&headers(&[("ratelimit-remaining", long.as_str())])),
            None
        );
        let quotes = "\"".repeat(3000);
        let _ = parse(&headers(&[("RateLimit", quotes.as_str())]));
    }

    #[rstest]
    #[case("20%", LowBudget::Percent(20))]
    #[case(" 5 ", LowBudget::Count(5))]
    #[case("0", LowBudget::Count(0))]
    fn low_budgets_parse(#[case] s: &str, #[case] want: LowBudget) {
        assert_eq!(LowBudget::parse(s), Ok(want));
    }

    #[test]
    fn low_budgets_refuse_nonsense() {
        for s in ["", "101%", "-1", "lots", "5 %x"] {
            assert!(LowBudget::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn low_is_a_share_of_the_limit_or_a_count() {
        let r = rate(20, Some(100), None, None);
        assert!(LowBudget::Percent(20).is_low(&r));
        assert!(!LowBudget::Percent(19).is_low(&r));
        assert!(LowBudget::Count(20).is_low(&r));
        assert!(!LowBudget::Count(19).is_low(&r));
        assert!(!LowBudget::Percent(50).is_low(&rate(3, None, None, None)));
        assert!(LowBudget::Percent(50).is_low(&rate(0, None, None, None)));
    }

    #[test]
    fn budgets_keep_the_last_reading_and_count_low_ones() {
        let metrics = Arc::new(Metrics::default());
        let hosts = Arc::new(TrackedHosts::new(Vec::new(), 10));
        let b = Budgets::new(hosts, Arc::clone(&metrics));
        let anon = BudgetKey::new("Registry-1.Docker.io", None);
        let alice = Credential::new("alice", "pw");
        let account = BudgetKey::new("registry-1.docker.io", Some(&alice));
        assert!(!b.any_low());
        b.record(anon.clone(), rate(90, Some(100), Some(21600), None));
        assert!(!b.any_low());
        assert!(b.low(&anon).is_none());
        b.record(anon.clone(), rate(5, Some(100), Some(21600), None));
        assert!(b.any_low());
        assert_eq!(b.low(&anon).unwrap().rate.remaining, 5);
        assert!(b.low(&account).is_none(), "another identity's budget");
        b.record(account.clone(), rate(150, Some(200), Some(21600), None));
        b.record(anon.clone(), rate(60, Some(100), Some(21600), None));
        assert!(!b.any_low());
        let text = metrics.encode();
        let label = format!("account-{}", &alice.fingerprint()[..8]);
        for line in [
            "pullcheck_registry_ratelimit_remaining{registry=\"registry-1.docker.io\",identity=\"anonymous\"} 60".to_string(),
            "pullcheck_registry_ratelimit_limit{registry=\"registry-1.docker.io\",identity=\"anonymous\"} 100".to_string(),
            "pullcheck_registry_ratelimit_window_seconds{registry=\"registry-1.docker.io\",identity=\"anonymous\"} 21600".to_string(),
            format!("pullcheck_registry_ratelimit_remaining{{registry=\"registry-1.docker.io\",identity=\"{label}\"}} 150"),
        ] {
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        assert!(!text.contains("alice") && !text.contains("pw\""));
    }

    #[test]
    fn identities_and_readings_are_bounded() {
        let metrics = Arc::new(Metrics::default());
        let hosts = Arc::new(TrackedHosts::new(Vec::new(), 10));
        let b = Budgets::new(hosts, Arc::clone(&metrics));
        b.set_threshold(LowBudget::Count(10));
        for i in 0..(MAX_READINGS + 50) {
            let c = Credential::new(format!("user{i}"), "pw");
            b.record(
                BudgetKey::new(&format!("r{}.example", i % 20), Some(&c)),
                rate(1, Some(100), Some(60), None),
            );
        }
        assert_eq!(b.readings.read().unwrap().len(), MAX_READINGS);
        assert_eq!(b.low.load(Ordering::Relaxed), MAX_READINGS);
        let text = metrics.encode();
        let accounts: HashSet<&str> = text
            .lines()
            .filter(|l| l.starts_with("pullcheck_registry_ratelimit_remaining{"))
            .filter_map(|l| l.split("identity=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(
            accounts.len(),
            TRACKED_IDENTITIES + 1,
            "100 accounts and other"
        );
        let registries: HashSet<&str> = text
            .lines()
            .filter_map(|l| l.split("registry=\"").nth(1)?.split('"').next())
            .collect();
        assert!(registries.len() <= 11, "{registries:?}");
    }

    #[test]
    fn readings_age_out_with_their_reset_or_window() {
        let o = Observed {
            rate: rate(1, Some(10), Some(60), None),
            at: Instant::now() - Duration::from_secs(61),
            low: true,
        };
        assert!(!o.fresh());
        let o = Observed {
            rate: rate(1, Some(10), Some(60), Some(600)),
            ..o
        };
        assert!(o.fresh(), "the reset says more than the window");
    }
}
