//! `pullcheck check PATH…`: the webhook's decision path over manifests, before apply.
//! Objects are evaluated by [`Engine::evaluate`] in enforce mode against an in-memory cluster
//! filled with the input's Secrets and ServiceAccounts, so a finding reads the same here as
//! in `kubectl apply`.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::engine::policy::{Action, Mode};
use crate::engine::{Engine, Evaluation, Subject};
use crate::kubelet::workload::WorkloadKind;
use crate::manifest_stream::Item;
use crate::manifests::{Document, InputError, FIELD_LIMIT, MESSAGE_LIMIT};
use crate::text::clip;

/// Output formats of `check`.
#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    /// GitHub Actions workflow commands (`::error file=…,line=…::…`).
    Github,
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

struct Report {
    doc: Document,
    eval: Evaluation,
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
                written = written.and(write_input_errors(out, err, &[e], &[], run.format));
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
            written = match run.format {
                Format::Text => write_text(out, &r, actions, &mut last_file),
                Format::Json => write_json(out, &r, actions),
                Format::Github => write_github(out, &r, actions),
            };
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
        workload: crate::kubelet::workload::decode(kind, &doc.value),
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

fn line_of(r: &Report, image: &str) -> usize {
    r.doc.line_of(image).unwrap_or(r.doc.line)
}

fn label(action: Action) -> &'static str {
    match action {
        Action::Deny => "FAIL",
        Action::Warn => "warn",
        Action::Audit => "note",
    }
}

/// A value from the input (image, name, …) as written out.
fn field(s: &str) -> Cow<'_, str> {
    clip(s, FIELD_LIMIT)
}

/// A sentence (which may quote the input) as written out.
fn sentence(s: &str) -> Cow<'_, str> {
    clip(s, MESSAGE_LIMIT)
}

fn write_text(
    out: &mut dyn Write,
    r: &Report,
    actions: &crate::engine::policy::Actions,
    last_file: &mut Option<Arc<str>>,
) -> std::io::Result<()> {
    if r.eval.uses.is_empty() && r.eval.findings.is_empty() && r.eval.advisories.is_empty() {
        return Ok(());
    }
    if last_file.as_deref() != Some(&*r.doc.file) {
        writeln!(out, "{}", r.doc.file)?;
        *last_file = Some(Arc::clone(&r.doc.file));
    }
    writeln!(out, "  {} (line {})", field(&r.eval.subject), r.doc.line)?;
    for f in &r.eval.findings {
        writeln!(
            out,
            "    {:>5}  {}  {} [{}]",
            line_of(r, &f.image),
            label(actions.of(f.finding.class)),
            sentence(&f.sentence()),
            f.finding.class
        )?;
    }
    for u in &r.eval.uses {
        let Some(check) = r.eval.checks.iter().find(|c| c.image == u.image) else {
            continue;
        };
        if check.finding.is_some() {
            continue;
        }
        let digest = check.resolved.as_ref().map_or("", |x| x.digest.as_str());
        writeln!(
            out,
            "    {:>5}  ok    {} ({}) {}",
            line_of(r, &u.image),
            field(&crate::engine::place(u)),
            field(&u.image),
            field(digest)
        )?;
    }
    for a in &r.eval.advisories {
        writeln!(out, "           warn  {}", sentence(a))?;
    }
    Ok(())
}

fn write_json(
    out: &mut dyn Write,
    r: &Report,
    actions: &crate::engine::policy::Actions,
) -> std::io::Result<()> {
    let object = json!({
        "kind": field(r.doc.group_kind().1),
        "namespace": r.doc.namespace().map(field),
        "name": field(&r.doc.name()),
    });
    for u in &r.eval.uses {
        let check = r.eval.checks.iter().find(|c| c.image == u.image);
        let finding = r.eval.findings.iter().find(|f| f.image == u.image);
        let resolved = check.and_then(|c| c.resolved.as_ref());
        let line = json!({
            "file": &*r.doc.file,
            "line": line_of(r, &u.image),
            "object": object,
            "container": field(&u.name),
            "image": field(&u.image),
            "canonical": check.and_then(|c| c.canonical.as_deref()).map(field),
            "verdict": finding.map_or("ok", |f| f.finding.class.as_str()),
            "action": finding.map(|f| match actions.of(f.finding.class) {
                Action::Deny => "deny",
                Action::Warn => "warn",
                Action::Audit => "audit",
            }),
            "digest": resolved.map(|x| field(&x.digest)),
            "platforms": resolved.map(|x| x.platforms.platforms.iter().map(|p| field(&p.to_string()).into_owned()).collect::<Vec<_>>()).unwrap_or_default(),
            "message": finding.map(|f| sentence(&f.sentence()).into_owned()),
            "hint": finding.and_then(|f| f.finding.hint.as_deref()).map(sentence),
        });
        writeln!(out, "{line}")?;
    }
    for f in r.eval.findings.iter().filter(|f| f.image.is_empty()) {
        let line = json!({
            "file": &*r.doc.file, "line": r.doc.line, "object": object,
            "verdict": f.finding.class.as_str(), "action": "deny",
            "message": sentence(&f.sentence()),
        });
        writeln!(out, "{line}")?;
    }
    for a in &r.eval.advisories {
        let line = json!({
            "file": &*r.doc.file, "line": r.doc.line, "object": object,
            "verdict": "note", "action": "warn", "message": sentence(a),
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Escapes data of a workflow command (GitHub's rules).
pub fn gh_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value of a workflow command.
pub fn gh_property(s: &str) -> String {
    gh_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn write_github(
    out: &mut dyn Write,
    r: &Report,
    actions: &crate::engine::policy::Actions,
) -> std::io::Result<()> {
    let file = gh_property(&r.doc.file);
    let subject = field(&r.eval.subject);
    for f in &r.eval.findings {
        let level = match actions.of(f.finding.class) {
            Action::Deny => "error",
            _ => "warning",
        };
        writeln!(
            out,
            "::{level} file={file},line={},title={}::{}",
            line_of(r, &f.image),
            gh_property(&format!("pullcheck {}: {subject}", f.finding.class)),
            gh_data(&sentence(&f.sentence()))
        )?;
    }
    for a in &r.eval.advisories {
        writeln!(
            out,
            "::warning file={file},line={},title={}::{}",
            r.doc.line,
            gh_property(&format!("pullcheck: {subject}")),
            gh_data(&sentence(a))
        )?;
    }
    Ok(())
}

/// Writes input errors and warnings in `format`.
pub fn write_input_errors(
    out: &mut dyn Write,
    err: &mut dyn Write,
    errors: &[InputError],
    warnings: &[InputError],
    format: Format,
) -> std::io::Result<()> {
    let all = errors
        .iter()
        .map(|e| (e, true))
        .chain(warnings.iter().map(|w| (w, false)));
    for (e, is_error) in all {
        let message = sentence(&e.message);
        match format {
            Format::Text => {
                let label = if is_error { "error" } else { "warning" };
                match e.line {
                    Some(l) => writeln!(err, "{label}: {}:{l}: {message}", e.file)?,
                    None => writeln!(err, "{label}: {}: {message}", e.file)?,
                }
            }
            Format::Json => writeln!(
                out,
                "{}",
                json!({
                    "file": e.file, "line": e.line, "message": message,
                    "verdict": if is_error { "input_error" } else { "input_warning" },
                })
            )?,
            Format::Github => {
                let line = e.line.map(|l| format!(",line={l}")).unwrap_or_default();
                let (level, title) = if is_error {
                    ("error", "pullcheck: unreadable input")
                } else {
                    ("warning", "pullcheck: input not read")
                };
                writeln!(
                    out,
                    "::{level} file={}{line},title={}::{}",
                    gh_property(&e.file),
                    gh_property(title),
                    gh_data(&message)
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_escaping() {
        assert_eq!(gh_data("a%b\nc"), "a%25b%0Ac");
        assert_eq!(gh_property("x:y,z"), "x%3Ay%2Cz");
    }
}
