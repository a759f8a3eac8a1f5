//! The background scan of `serve`: the replicas elect one holder of a Lease (in
//! pullcheck's own namespace, under the Pod's name); the holder scans every `interval`,
//! publishes the metrics, writes the Events, and follows live Pods (a watch, so a Pod
//! stuck pulling is explained within seconds, not at the next scan). Another replica takes
//! over when the holder stops (it releases the Lease) or dies (after the Lease's
//! duration). Only the holder writes, so two replicas never write the same Event twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::inventory::StuckPod;
use super::metrics::ScanMetrics;
use super::recorder::Recorder;
use super::run::{Scanner, Silent};
use crate::cluster::events::EventSink;
use crate::cluster::lease::{Elector, LeaseTiming, Leases};
use crate::cluster::view::PodChange;
use crate::text::{glob_match, human_duration};

/// Where the Lease is and who holds it.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// pullcheck's namespace (`POD_NAMESPACE`).
    pub namespace: String,
    pub name: String,
    /// This replica (`POD_NAME`, else the host name).
    pub identity: String,
    pub timing: LeaseTiming,
}

/// Everything the background scan runs with.
pub struct Background {
    /// The periodic scans (answers kept for one scan).
    pub scanner: Arc<Scanner>,
    /// The diagnoses of the Pod watch (answers kept a few seconds).
    pub live: Arc<Scanner>,
    pub sink: Arc<dyn EventSink>,
    pub leases: Arc<dyn Leases>,
    pub metrics: Arc<ScanMetrics>,
    pub interval: Duration,
    pub lease: LeaseConfig,
    /// Writes of one Event's series between scans are at least this far apart.
    pub event_min_interval: Duration,
}

/// Aborts its task when dropped.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Background {
    /// Runs until `stop` turns true; then releases the Lease if held.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let lease = self.lease.clone();
        let mut elector = match Elector::new(
            Arc::clone(&self.leases),
            &lease.namespace,
            &lease.name,
            &lease.identity,
            lease.timing,
        ) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "background scan not started");
                return;
            }
        };
        tracing::info!(
            lease = %format!("{}/{}", lease.namespace, lease.name),
            identity = %lease.identity,
            interval = %human_duration(self.interval),
            "background scan: waiting for the Lease"
        );
        let this = Arc::new(self);
        let mut leading: Option<Task> = None;
        let mut last_renew = Instant::now();
        let mut failing = false;
        loop {
            match elector.try_acquire_or_renew().await {
                Ok(true) => {
                    last_renew = Instant::now();
                    failing = false;
                    if leading.is_none() {
                        tracing::info!(identity = %lease.identity, "holding the scan Lease: scanning");
                        this.metrics.set_leader(true);
                        leading = Some(Task(tokio::spawn(Arc::clone(&this).lead())));
                    }
                }
                Ok(false) => {
                    failing = false;
                    if leading.take().is_some() {
                        tracing::warn!(holder = %elector.holder(), "lost the scan Lease: not scanning");
                        this.metrics.set_leader(false);
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot read or write the scan Lease");
                        failing = true;
                    }
                    if leading.is_some() && last_renew.elapsed() > lease.timing.renew_deadline {
                        tracing::warn!("the scan Lease was not renewed in time: not scanning");
                        leading = None;
                        this.metrics.set_leader(false);
                    }
                }
            }
            let retry = lease.timing.retry_period;
            // Followers retry with up to 20% jitter, like client-go.
            let wait = if leading.is_some() {
                retry
            } else {
                retry.mul_f64(1.0 + f64::from(getrandom::u32().unwrap_or(0) % 200) / 1000.0)
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
        }
        drop(leading);
        this.metrics.set_leader(false);
        if let Err(e) = elector.release().await {
            tracing::warn!(error = %e, "cannot release the scan Lease (the next holder waits for it to expire)");
        }
    }

    /// What the holder does: adopt the Events written before, follow the Pods, scan.
    async fn lead(self: Arc<Self>) {
        let recorder = Arc::new(Recorder::new(
            Arc::clone(&self.sink),
            &self.lease.identity,
            self.event_min_interval,
        ));
        match recorder.adopt().await {
            Ok(n) => tracing::debug!(events = n, "took over the Events written before"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the Events written before (they will be written anew)")
            }
        }
        let _watch = Task(tokio::spawn(
            Arc::clone(&self).watch_pods(Arc::clone(&recorder)),
        ));
        loop {
            let generation = recorder.begin_scan();
            let report = self.scanner.scan(&Silent).await;
            let complete = report.errors.is_empty();
            for e in &report.errors {
                tracing::warn!(error = %e, "scan incomplete");
            }
            self.metrics
                .publish(&report.workloads, report.stats.duration, complete);
            let written = recorder
                .record_scan(&report.workloads, &report.stuck, generation)
                .await;
            let failing = report.workloads.iter().filter(|l| l.denied).count();
            tracing::info!(
                objects = report.stats.objects,
                listed = report.stats.listed,
                images = report.workloads.len(),
                failing,
                stuck = report.stuck.len(),
                resolutions = report.stats.resolutions,
                events_created = written.created,
                events_patched = written.patched,
                took = %human_duration(report.stats.duration),
                "scan complete"
            );
            tokio::time::sleep(self.interval).await;
        }
    }

    /// Explains every Pod that starts (or goes on) waiting on an image, as it happens.
    async fn watch_pods(self: Arc<Self>, recorder: Arc<Recorder>) {
        let exempt = self.live.engine().settings.exempt_namespaces.clone();
        let mut changes = self.live.view().pod_changes();
        // uid → (namespace, reasons of its stuck containers), and the counts per
        // (namespace, reason) they make.
        let mut known: HashMap<String, (String, Vec<(String, String)>)> = HashMap::new();
        let mut counts: HashMap<(String, String), i64> = HashMap::new();
        while let Some(change) = changes.next().await {
            let (uid, now) = match change {
                PodChange::Deleted { uid } => (uid, None),
                PodChange::Applied(pod) => {
                    let uid = pod.uid.clone();
                    let stuck = StuckPod::of(&pod)
                        .filter(|p| !exempt.iter().any(|g| glob_match(g, &p.namespace)));
                    (uid, stuck)
                }
            };
            let state = now.as_ref().map(|p| {
                let sig = p
                    .containers
                    .iter()
                    .map(|c| (c.container.clone(), c.reason.clone()))
                    .collect::<Vec<_>>();
                (p.namespace.clone(), sig)
            });
            let before = match &state {
                Some(s) => known.insert(uid.clone(), s.clone()),
                None => known.remove(&uid),
            };
            if before == state {
                continue;
            }
            for (sign, s) in [(-1, before.as_ref()), (1, state.as_ref())] {
                let Some((ns, sig)) = s else { continue };
                for (_, reason) in sig {
                    let key = (ns.clone(), reason.clone());
                    let n = counts.entry(key.clone()).or_default();
                    *n += sign;
                    self.metrics.set_stuck(&key.0, &key.1, *n);
                    if *n <= 0 {
                        counts.remove(&key);
                    }
                }
            }
            let Some(pod) = now else { continue };
            for line in self.live.explain_pod(&pod).await {
                tracing::info!(
                    namespace = %line.namespace,
                    pod = %line.pod,
                    container = %line.container,
                    reason = %line.reason,
                    verdict = %line.verdict,
                    agreement = %line.agreement.as_str(),
                    "Pod stuck pulling"
                );
                recorder.record(recorder.diagnosis(&line), false).await;
            }
        }
    }
}
