//! The background scan's metrics, registered beside the process's others:
//!
//! - `pullcheck_workload_images{namespace,kind,name,container,image,verdict}`: 1 per
//!   workload container image and its current verdict (`ok`, a finding class,
//!   `not_checked`); a changed verdict replaces the series. One series per workload
//!   container image is the cluster's own size, so it is capped (`scan.maxSeries`): lines
//!   that do not fit — `ok` ones go first, failing ones keep their series as long as they
//!   fit — are counted in the series whose other labels are empty, per verdict;
//! - `pullcheck_pods_stuck_pulling{namespace,reason}`: containers waiting on an image
//!   (from the Pod watch);
//! - `pullcheck_scan_duration_seconds`, `pullcheck_scan_last_completed_timestamp_seconds`,
//!   `pullcheck_scans_total{outcome}`, `pullcheck_scan_leader` (1 on the replica holding
//!   the Lease).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::run::WorkloadLine;

/// Default most series of `pullcheck_workload_images`.
pub const DEFAULT_MAX_SERIES: usize = 10_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkloadImageLabels {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub container: String,
    pub image: String,
    pub verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StuckLabels {
    pub namespace: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `completed`, `incomplete` (a list failed).
    pub outcome: &'static str,
}

/// Metrics of the background scan.
pub struct ScanMetrics {
    workload_images: Family<WorkloadImageLabels, Gauge>,
    stuck: Family<StuckLabels, Gauge>,
    duration: Gauge<f64, AtomicU64>,
    last_completed: Gauge<f64, AtomicU64>,
    scans: Family<OutcomeLabels, Counter>,
    leader: Gauge,
    max_series: usize,
    /// The label sets of `workload_images` now, to drop those a scan no longer has.
    current: Mutex<HashSet<WorkloadImageLabels>>,
}

impl ScanMetrics {
    /// Registers the metrics in `registry` (the process's, prefix `pullcheck`).
    pub fn register(registry: &mut Registry, max_series: usize) -> Self {
        let m = Self {
            workload_images: Family::default(),
            stuck: Family::default(),
            duration: Gauge::default(),
            last_completed: Gauge::default(),
            scans: Family::default(),
            leader: Gauge::default(),
            max_series,
            current: Mutex::new(HashSet::new()),
        };
        registry.register(
            "workload_images",
            "1 per workload container image and its verdict in the last scan (ok, a finding class, not_checked); lines beyond scan.maxSeries are counted in the series with empty labels",
            m.workload_images.clone(),
        );
        registry.register(
            "pods_stuck_pulling",
            "Containers waiting on an image pull (ErrImagePull, ImagePullBackOff, ...), by namespace and reason",
            m.stuck.clone(),
        );
        registry.register(
            "scan_duration_seconds",
            "Duration of the last completed scan",
            m.duration.clone(),
        );
        registry.register(
            "scan_last_completed_timestamp_seconds",
            "When the last scan completed (Unix time)",
            m.last_completed.clone(),
        );
        registry.register("scans", "Scans run, by outcome", m.scans.clone());
        registry.register(
            "scan_leader",
            "1 while this replica holds the scan's Lease",
            m.leader.clone(),
        );
        m
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The result of one scan: the series of its lines (within the cap), its duration and
    /// completion time.
    pub fn publish(&self, lines: &[WorkloadLine], duration: Duration, complete: bool) {
        let mut wanted: HashMap<WorkloadImageLabels, i64> = HashMap::new();
        let mut order: Vec<&WorkloadLine> = lines.iter().collect();
        // Failing lines keep their own series first.
        order.sort_by_key(|l| l.verdict == "ok");
        for (i, l) in order.iter().enumerate() {
            let labels = if i < self.max_series {
                WorkloadImageLabels {
                    namespace: l.namespace.clone(),
                    kind: l.kind.as_str().to_owned(),
                    name: l.name.clone(),
                    container: l.container.clone(),
                    image: l.image.clone(),
                    verdict: l.verdict.clone(),
                }
            } else {
                WorkloadImageLabels {
                    namespace: String::new(),
                    kind: String::new(),
                    name: String::new(),
                    container: String::new(),
                    image: String::new(),
                    verdict: l.verdict.clone(),
                }
            };
            let v = wanted.entry(labels).or_default();
            *v = if i < self.max_series { 1 } else { *v + 1 };
        }
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        for old in current.iter() {
            if !wanted.contains_key(old) {
                self.workload_images.remove(old);
            }
        }
        for (labels, v) in &wanted {
            self.workload_images.get_or_create(labels).set(*v);
        }
        *current = wanted.into_keys().collect();
        self.duration.set(duration.as_secs_f64());
        if complete {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.last_completed.set(now);
        }
        self.scans
            .get_or_create(&OutcomeLabels {
                outcome: if complete { "completed" } else { "incomplete" },
            })
            .inc();
    }

    /// Sets the count of stuck containers of (namespace, reason).
    pub fn set_stuck(&self, namespace: &str, reason: &str, n: i64) {
        let labels = StuckLabels {
            namespace: namespace.to_owned(),
            reason: reason.to_owned(),
        };
        if n <= 0 {
            self.stuck.remove(&labels);
        } else {
            self.stuck.get_or_create(&labels).set(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::view::Scale;
    use crate::kubelet::workload::WorkloadKind;

    fn line(name: &str, verdict: &str) -> WorkloadLine {
        WorkloadLine {
            namespace: "a".into(),
            kind: WorkloadKind::Deployment,
            name: name.into(),
            uid: name.into(),
            scale: Scale::Active,
            on_behalf_of: None,
            container: "c".into(),
            slot: None,
            image: format!("r/{name}:1"),
            verdict: verdict.into(),
            class: None,
            message: String::new(),
            fix: None,
            sentence: String::new(),
            denied: false,
            notes: Vec::new(),
        }
    }

    #[test]
    fn series_follow_the_last_scan_within_the_cap() {
        let mut registry = Registry::with_prefix("pullcheck");
        let m = ScanMetrics::register(&mut registry, 2);
        let text = |registry: &Registry| {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
            out
        };
        m.publish(
            &[
                line("x", "ok"),
                line("y", "tag_not_found"),
                line("z", "ok"),
                line("w", "ok"),
            ],
            Duration::from_secs(3),
            true,
        );
        let t = text(&registry);
        assert!(t.contains(r#"pullcheck_workload_images{namespace="a",kind="Deployment",name="y",container="c",image="r/y:1",verdict="tag_not_found"} 1"#), "{t}");
        assert!(t.contains(r#"pullcheck_workload_images{namespace="",kind="",name="",container="",image="",verdict="ok"} 2"#), "{t}");
        assert!(t.contains("pullcheck_scan_duration_seconds 3.0"), "{t}");
        assert!(
            t.contains(r#"pullcheck_scans_total{outcome="completed"} 1"#),
            "{t}"
        );
        // The verdict changes: the old series goes.
        m.publish(&[line("y", "ok")], Duration::from_secs(1), false);
        let t = text(&registry);
        assert!(!t.contains("tag_not_found"), "{t}");
        assert!(
            t.contains(r#"name="y",container="c",image="r/y:1",verdict="ok"} 1"#),
            "{t}"
        );
        assert!(
            t.contains(r#"pullcheck_scans_total{outcome="incomplete"} 1"#),
            "{t}"
        );
        m.set_stuck("a", "ImagePullBackOff", 2);
        assert!(text(&registry).contains(
            r#"pullcheck_pods_stuck_pulling{namespace="a",reason="ImagePullBackOff"} 2"#
        ));
        m.set_stuck("a", "ImagePullBackOff", 0);
        assert!(!text(&registry).contains(r#"reason="ImagePullBackOff"} "#));
    }
}
