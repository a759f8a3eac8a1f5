//! `pullcheck check [PATH|-]… [--image REF]…`: the webhook's decision path over manifests,
//! before apply. Objects are evaluated by [`Engine::evaluate`] — in enforce mode unless the
//! configuration (`--config`, the webhook's file, or `--default-mode`) says otherwise —
//! against an in-memory cluster filled with the input's Secrets and ServiceAccounts, so a
//! finding reads the same here as in `kubectl apply`. Everything is written by the one
//! [`Writer`]. Exit codes: 0 clean, 1 findings that fail the run, 2 usage or unreadable
//! input.

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
use super::report::{Report, Writer};
use crate::cluster::{Cluster, InMemoryCluster};
use crate::config::assemble::{self, ClusterWiring, Wiring};
use crate::config::{CheckArgs, CheckConfig, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE};
use crate::engine::advisor::Advisor;
use crate::engine::{Context, Engine, Evaluation, Subject};
use crate::kubelet::workload::{self, ImageSlot, ImageUse, WorkloadKind};
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
    if let (Some(path), false) = (&args.config, config.serve_only.is_empty()) {
        writeln!(
            err,
            "note: config {}: {} apply to `pullcheck serve` only; check does not use them",
            path.display(),
            config.serve_only.join(", ")
        )?;
    }
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
    let settings = &engine.settings;
    let mut writer = Writer::new(out, err, args.format);

    if !args.images.is_empty() {
        let deadline = tokio::time::Instant::now() + args.timeout;
        let checked: Vec<String> = (args.images.iter())
            .filter(|i| !engine.exempt_image(i))
            .cloned()
            .collect();
        let results = engine
            .checker
            .check_all(
                &checked,
                &assembled.keyring,
                wanted,
                Context::Cli,
                deadline,
                settings.concurrency,
            )
            .await;
        let advisor = Advisor {
            settings: &settings.advice,
            actions: &settings.actions,
            budgets: engine.checker.budgets(),
        };
        // In the order given; an exempt image is said to be, as the webhook skips it.
        for image in &args.images {
            if engine.exempt_image(image) {
                writer.exempt_image(image);
            } else if let Some(r) = results.iter().find(|r| &r.image == image) {
                let mut advice = Vec::new();
                if r.finding.is_none() {
                    // No Pod: no place, and the pull policy the API server would default.
                    let u = ImageUse {
                        slot: ImageSlot::Container,
                        name: String::new(),
                        image: r.image.clone(),
                        pull_policy: None,
                    };
                    advisor.advise(&u, r, &mut advice);
                }
                writer.image(r, &advice, settings.default_mode, &settings.actions);
            }
        }
    }

    let mut skipped_kinds = None;
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
        writer.input_errors(&errors, &read.warnings);
        let run = Run {
            engine,
            default_namespace: &args.namespace,
            timeout: args.timeout,
            concurrency: config.objects_at_once,
        };
        let items = manifest_stream::spawn_stream(&mut survey);
        let before = writer.tally();
        check_stream(&run, items, survey.workloads, &mut writer).await;
        let after = writer.tally();
        let done = (after.objects - before.objects) + (after.input_errors - before.input_errors);
        if done < survey.workloads {
            // Never a silent pass: objects the first pass saw were not all checked.
            writer.unchecked(survey.workloads - done);
        }
        skipped_kinds = Some(survey.skipped);
    }
    writer.summary(skipped_kinds);
    let tally = writer.finish();
    if let Some(disk) = &assembled.disk {
        if let Err(e) = disk.save() {
            writeln!(err, "warning: {e}")?;
        }
    }
    let tally = tally?;
    Ok(if tally.input_errors > 0 {
        EXIT_USAGE
    } else if tally.failing > 0 {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    })
}

/// How `check` evaluates and writes.
pub struct Run<'a> {
    pub engine: &'a Engine,
    pub default_namespace: &'a str,
    pub timeout: Duration,
    pub concurrency: usize,
}

/// Evaluates the workloads of `items` as they arrive, `concurrency` at once, and writes
/// each report as soon as it and those before it are done (input order). `expected`
/// workloads are announced by the progress line.
pub async fn check_stream(
    run: &Run<'_>,
    mut items: mpsc::Receiver<(Item, OwnedSemaphorePermit)>,
    expected: usize,
    writer: &mut Writer<'_>,
) {
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
    let actions = &run.engine.settings.actions;
    while let Some((report, _permit)) = reports.next().await {
        match report {
            Err(e) => writer.input_errors(&[e], &[]),
            Ok(r) => writer.object(&r, actions),
        }
    }
    if let Some(p) = progress {
        p.abort();
        eprint!("\r\x1b[K");
    }
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
    let mode = run.engine.settings.default_mode;
    run.engine
        .evaluate(&subject, mode, Instant::now() + run.timeout)
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
