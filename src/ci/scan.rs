//! `pullcheck scan`: what runs in the cluster, checked with the webhook's engine (its
//! settings, `--config`, enforce mode), and every Pod stuck pulling explained. The cluster
//! is the one kubectl would find (in-cluster config, `KUBECONFIG`). Exit codes: 0 every
//! image would pull, 1 something would not (a finding enforce mode denies, or a Pod stuck
//! pulling), 2 usage errors, no cluster, or a list that failed (an incomplete scan says
//! nothing about what it did not see).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::assemble::{self, ClusterWiring, Wiring};
use crate::config::{ScanArgs, ScanConfig, ScanFormat, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE};
use crate::engine::scan::inventory::Listing;
use crate::engine::scan::{
    Progress, Report, ScanRegistry, Scanner, StuckLine, Throttle, WorkloadLine,
};
use crate::kubelet::workload::WorkloadKind;
use crate::metrics::Metrics;

/// `pullcheck scan`.
pub async fn run_scan(
    args: &ScanArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let config = match ScanConfig::resolve(args) {
        Ok(c) => c,
        Err(e) => {
            writeln!(err, "error: {e:#}")?;
            return Ok(EXIT_USAGE);
        }
    };
    let wiring = Wiring::new(
        ClusterWiring::Configured(config.cluster),
        Arc::new(Metrics::default()),
    );
    let assembled = match assemble::engine(&config.engine, wiring).await {
        Ok(a) => a,
        Err(e) => {
            writeln!(err, "error: {e:#}")?;
            return Ok(EXIT_USAGE);
        }
    };
    for w in &assembled.warnings {
        writeln!(err, "warning: {w}")?;
    }
    let Some(view) = assembled.view.clone() else {
        writeln!(
            err,
            "error: no Kubernetes cluster to scan{}",
            assembled.cluster_status
        )?;
        return Ok(EXIT_USAGE);
    };
    let throttle = Arc::new(Throttle::new(config.scan.registry));
    let registry = Arc::new(ScanRegistry::per_scan(
        Arc::clone(&assembled.registry),
        throttle,
    ));
    let engine = assembled.sibling(registry.clone(), &config.engine);
    let scanner = Scanner::new(engine, registry, Arc::new(view), config.run.clone());
    let bar = Bar::new(!args.quiet && std::io::stderr().is_terminal());
    let report = scanner.scan(&bar).await;
    bar.finish();
    write_report(out, &report, args.format)?;
    for e in &report.errors {
        writeln!(err, "error: {e}")?;
    }
    Ok(if !report.errors.is_empty() {
        EXIT_USAGE
    } else if report.failing() {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    })
}

/// The report in `format`: JSON, one object per line (`"type"`: `workload`, `stuck`,
/// `summary`); text, what would not pull and every Pod stuck pulling, then a summary.
pub fn write_report(
    out: &mut dyn Write,
    report: &Report,
    format: ScanFormat,
) -> std::io::Result<()> {
    match format {
        ScanFormat::Json => {
            for l in &report.workloads {
                writeln!(out, "{}", workload_json(l))?;
            }
            for l in &report.stuck {
                writeln!(out, "{}", stuck_json(l))?;
            }
            writeln!(out, "{}", summary_json(report))
        }
        ScanFormat::Text => write_text(out, report),
    }
}

fn workload_json(l: &WorkloadLine) -> Value {
    json!({
        "type": "workload",
        "namespace": l.namespace,
        "kind": l.kind.as_str(),
        "name": l.name,
        "container": l.container,
        "image": l.image,
        "verdict": l.verdict,
        "message": l.message,
        "fix": l.fix,
        "denied": l.denied,
        "scale": l.scale.as_str(),
        "on_behalf_of": l.on_behalf_of,
        "notes": l.notes,
    })
}

fn stuck_json(l: &StuckLine) -> Value {
    json!({
        "type": "stuck",
        "namespace": l.namespace,
        "pod": l.pod,
        "node": l.node,
        "controller": l.controller,
        "container": l.container,
        "image": l.image,
        "reason": l.reason,
        "kubelet_message": l.kubelet_message,
        "kubelet_source": l.kubelet_source,
        "kubelet_cause": l.kubelet_cause.as_str(),
        "verdict": l.verdict,
        "message": l.message,
        "fix": l.fix,
        "agreement": l.agreement.as_str(),
        "meaning": l.meaning,
    })
}

fn summary_json(r: &Report) -> Value {
    let s = &r.stats;
    json!({
        "type": "summary",
        "listed": s.listed,
        "objects": s.objects,
        "folded": s.folded,
        "exempt": s.exempt,
        "images": r.workloads.len(),
        "failing": r.workloads.iter().filter(|l| l.denied).count(),
        "stuck": r.stuck.len(),
        "checks": s.checks,
        "resolutions": s.resolutions,
        "seconds": s.duration.as_secs_f64(),
        "errors": r.errors,
    })
}

fn write_text(out: &mut dyn Write, r: &Report) -> std::io::Result<()> {
    for l in r.workloads.iter().filter(|l| l.verdict != "ok") {
        let label = if l.denied {
            "FAIL"
        } else if l.verdict == "not_checked" {
            "note"
        } else {
            "warn"
        };
        let mut marks = String::new();
        if l.scale.as_str() != "active" {
            marks.push_str(&format!(" [{}]", l.scale.as_str()));
        }
        if let Some(o) = &l.on_behalf_of {
            marks.push_str(&format!(" [for {o}]"));
        }
        writeln!(
            out,
            "{label} {}/{}/{}{marks}: {}",
            l.namespace, l.kind, l.name, l.sentence
        )?;
    }
    for l in r.workloads.iter().filter(|l| !l.notes.is_empty()) {
        for n in &l.notes {
            writeln!(out, "note {}/{}/{}: {n}", l.namespace, l.kind, l.name)?;
        }
    }
    for l in &r.stuck {
        writeln!(
            out,
            "STUCK Pod {}/{} {} {:?} ({}): {}",
            l.namespace,
            l.pod,
            slot_word(l),
            l.container,
            l.image,
            l.reason
        )?;
        writeln!(out, "  kubelet:   {}", l.kubelet_message)?;
        let fix = l
            .fix
            .as_deref()
            .map(|f| format!("; fix: {f}"))
            .unwrap_or_default();
        writeln!(out, "  pullcheck: {}: {}{fix}", l.verdict, l.message)?;
        writeln!(out, "  meaning:   {}", l.meaning)?;
    }
    let s = &r.stats;
    writeln!(
        out,
        "{} workload images checked ({} objects, {} folded into their owners, {} exempt): {} would not pull, {} Pods' containers stuck pulling; {} registry resolutions in {:.1}s",
        r.workloads.len(),
        s.objects,
        s.folded,
        s.exempt,
        r.workloads.iter().filter(|l| l.denied).count(),
        r.stuck.len(),
        s.resolutions,
        s.duration.as_secs_f64()
    )
}

fn slot_word(l: &StuckLine) -> &'static str {
    l.slot.as_str()
}

/// The progress bar on stderr: objects listed, then checks done of planned.
struct Bar {
    on: bool,
    listed: AtomicUsize,
    planned: AtomicUsize,
    done: AtomicUsize,
    last: Mutex<Option<Instant>>,
}

impl Bar {
    fn new(on: bool) -> Self {
        Self {
            on,
            listed: AtomicUsize::new(0),
            planned: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            last: Mutex::new(None),
        }
    }

    fn draw(&self, force: bool) {
        if !self.on {
            return;
        }
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if !force && last.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
                return;
            }
            *last = Some(Instant::now());
        }
        let planned = self.planned.load(Ordering::Relaxed);
        let line = if planned == 0 {
            format!("listed {} objects", self.listed.load(Ordering::Relaxed))
        } else {
            let done = self.done.load(Ordering::Relaxed);
            let width = 30;
            let filled = done * width / planned.max(1);
            format!(
                "[{}{}] {done}/{planned} images",
                "#".repeat(filled),
                "-".repeat(width - filled.min(width))
            )
        };
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "\r\x1b[2K{line}");
        let _ = e.flush();
    }

    fn finish(&self) {
        if self.on {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[2K");
            let _ = e.flush();
        }
    }
}

impl Listing for Bar {
    fn listed(&self, _: WorkloadKind, n: usize) {
        self.listed.fetch_add(n, Ordering::Relaxed);
        self.draw(false);
    }
}

impl Progress for Bar {
    fn planned(&self, n: usize) {
        self.planned.store(n, Ordering::Relaxed);
        self.draw(true);
    }

    fn checked(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
        self.draw(false);
    }
}
