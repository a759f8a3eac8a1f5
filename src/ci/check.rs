//! `pullcheck check [PATH|-]… [--image REF]…`: the webhook's decision path over manifests,
//! before apply. Objects are evaluated by [`Engine::evaluate`] in enforce mode against an
//! in-memory cluster filled with the input's Secrets and ServiceAccounts, so a finding reads
//! the same here as in `kubectl apply`. Exit codes: 0 clean, 1 findings, 2 usage or
//! unreadable input.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;

use super::input;
use super::manifest_stream::{self, Item};
use super::manifests::{self, Document};
use super::report::{self, Report};
use crate::cluster::{Cluster, InMemoryCluster};
use crate::config::assemble::{self, ClusterWiring, Wiring};
use crate::config::{CheckArgs, CheckConfig, Format, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE};
use crate::engine::{Action, Context, Engine, Evaluation, Mode, Subject};
use crate::kubelet::workload::{self, WorkloadKind};
use crate::metrics::Metrics;

/// `pullcheck check [PATH|-]… [--image REF]…`.
pub async fn run_check(
    args: &CheckArgs,
    stdin: &mut dyn std::io::Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<u8> {
    let usage = |err: &mut dyn Write, msg: String| -> std::io::Result<u8> {
        writeln!(err, "error: {msg}")?;
        Ok(EXIT_USAGE)
    };
    if args.paths.is_empty() && args.images.is_empty() {
        return usage(
            err,
            "nothing to check: give manifests (PATH…, - for standard input) or --image REF".into(),
        );
    }
    let config = match CheckConfig::resolve(args) {
        Ok(c) => c,
        Err(e) => return usage(err, format!("{e:#}")),
    };
    let wanted = &config.platforms;
    // The cluster of a run is what its manifests hold (filled after the first pass) and
    // the nodes of --platform.
    let cluster = Arc::new(InMemoryCluster::new());
    cluster.set_node_platforms(Some(wanted.clone()));
    let wiring = Wiring::new(
        ClusterWiring::Given(Arc::clone(&cluster) as Arc<dyn Cluster>),
        Arc::new(Metrics::default()),
    );
    let assembled = match assemble::engine(&config.engine, wiring).await {
        Ok(a) => a,
        Err(e) => return usage(err, format!("{e:#}")),
    };
    for w in &assembled.warnings {
        writeln!(err, "warning: {w}")?;
    }
    let engine = &assembled.engine;
    let actions = &engine.settings.actions;
    let mut failing = 0;
    let mut transient = 0;

    if !args.images.is_empty() {
        let deadline = tokio::time::Instant::now() + args.timeout;
        let results = engine
            .checker
            .check_all(
                &args.images,
                &assembled.keyring,
                wanted,
                Context::Cli,
                deadline,
                args.concurrency,
            )
            .await;
        for r in &results {
            match r.class() {
                Some(c) if actions.of(c) == Action::Deny => failing += 1,
                Some(_) => transient += 1,
                None => {}
            }
            report::write_image(out, r, args.format, actions)?;
        }
    }

    let mut input_errors = 0;
    if !args.paths.is_empty() {
        let read = input::read_all(&args.paths, stdin, args.max_input_bytes);
        let mut survey = manifest_stream::survey(read.inputs).await;
        let mut errors = read.errors;
        errors.append(&mut survey.errors);
        errors.extend(manifests::load_cluster(
            &survey.cluster,
            &args.namespace,
            &cluster,
        ));
        survey.cluster = Vec::new();
        report::write_input_errors(out, err, &errors, &read.warnings, args.format)?;
        let run = Run {
            engine,
            default_namespace: &args.namespace,
            timeout: args.timeout,
            concurrency: args.concurrency,
            format: args.format,
        };
        let items = manifest_stream::spawn_stream(&mut survey);
        let tally = check_stream(&run, items, survey.workloads, out, err).await?;
        input_errors = errors.len() + tally.input_errors;
        if tally.objects + tally.input_errors < survey.workloads {
            // Never a silent pass: objects the first pass saw were not all checked.
            let missing = survey.workloads - tally.objects - tally.input_errors;
            writeln!(err, "error: pullcheck: {missing} objects were not checked")?;
            input_errors += 1;
        }
        failing += tally.failing;
        transient += tally.warnings;
        if args.format == Format::Text {
            writeln!(
                out,
                "pullcheck: {} objects, {} images checked ({} other objects skipped): {} failing, {} warnings{}",
                tally.objects,
                tally.images,
                survey.skipped,
                tally.failing,
                tally.warnings,
                if input_errors > 0 { format!(", {input_errors} unreadable inputs") } else { String::new() }
            )?;
        }
    }
    if let Some(disk) = &assembled.disk {
        if let Err(e) = disk.save() {
            writeln!(err, "warning: {e}")?;
        }
    }
    Ok(if input_errors > 0 {
        EXIT_USAGE
    } else if failing > 0 || (args.strict && transient > 0) {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    })
}

/// What a run found, for the exit code.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub objects: usize,
    pub images: usize,
    pub skipped: usize,
    /// Findings the webhook would deny in enforce mode.
    pub failing: usize,
    /// Findings admitted with a warning (transient), and advisories.
    pub warnings: usize,
    /// Inputs or documents that could not be read.
    pub input_errors: usize,
}

/// How `check` evaluates and writes.
pub struct Run<'a> {
    pub engine: &'a Engine,
    pub default_namespace: &'a str,
    pub timeout: Duration,
    pub concurrency: usize,
    pub format: Format,
}

/// Evaluates the workloads of `items` as they arrive, `concurrency` at once, and writes
/// each report as soon as it and those before it are done (input order). `expected`
/// workloads are announced by the progress line.
pub async fn check_stream(
    run: &Run<'_>,
    mut items: mpsc::Receiver<(Item, OwnedSemaphorePermit)>,
    expected: usize,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<Tally> {
    let mut tally = Tally::default();
    let done = Arc::new(AtomicUsize::new(0));
    let progress = progress_reporter(Arc::clone(&done), expected);
    let reports = futures::stream::poll_fn(|cx| items.poll_recv(cx))
        .map(|(item, permit)| {
            let done = Arc::clone(&done);
            async move {
                let doc = match item {
                    Item::Error(e) => return (Err(e), permit),
                    Item::Object(doc) => doc,
                };
                let eval = evaluate(run, &doc).await;
                done.fetch_add(1, Ordering::Relaxed);
                (Ok(Report { doc, eval }), permit)
            }
        })
        .buffered(run.concurrency.max(1));
    futures::pin_mut!(reports);
    let mut last_file: Option<Arc<str>> = None;
    let actions = &run.engine.settings.actions;
    let mut written = Ok(());
    while let Some((report, _permit)) = reports.next().await {
        let r = match report {
            Err(e) => {
                tally.input_errors += 1;
                written = written.and(report::write_input_errors(out, err, &[e], &[], run.format));
                continue;
            }
            Ok(r) => r,
        };
        tally.objects += 1;
        tally.images += r.eval.uses.len();
        for f in &r.eval.findings {
            match actions.of(f.finding.class) {
                Action::Deny => tally.failing += 1,
                _ => tally.warnings += 1,
            }
        }
        tally.warnings += r.eval.advisories.len();
        // A closed pipe stops the writing, not the counting (the exit code stays right).
        if written.is_ok() {
            written = report::write_report(out, &r, run.format, actions, &mut last_file);
        }
    }
    if let Some(p) = progress {
        p.abort();
        eprint!("\r\x1b[K");
    }
    written.map(|()| tally)
}

async fn evaluate(run: &Run<'_>, doc: &Document) -> Evaluation {
    let (group, kind) = doc.group_kind();
    let kind = WorkloadKind::from_group_kind(group, kind).unwrap_or(WorkloadKind::Pod);
    let subject = Subject {
        kind,
        namespace: doc.namespace().unwrap_or(run.default_namespace),
        name: doc.name(),
        workload: workload::decode(kind, &doc.value),
        old: None,
        ephemeral: false,
        // Nothing ran ServiceAccount admission on manifests: apply it here.
        service_account_rule: true,
    };
    run.engine
        .evaluate(&subject, Mode::Enforce, Instant::now() + run.timeout)
        .await
}

fn progress_reporter(done: Arc<AtomicUsize>, total: usize) -> Option<tokio::task::JoinHandle<()>> {
    // Reports stream to standard output: a progress line only when they go elsewhere.
    if !std::io::stderr().is_terminal() || std::io::stdout().is_terminal() || total < 2 {
        return None;
    }
    Some(tokio::spawn(async move {
        // Only when it runs long enough to wonder.
        tokio::time::sleep(Duration::from_secs(1)).await;
        loop {
            eprint!(
                "\r\x1b[Kpullcheck: {}/{total} objects checked",
                done.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }))
}
