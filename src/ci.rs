//! `pullcheck check PATH…`: the webhook's decision path over manifests, before apply.
//! Objects are evaluated by [`Webhook::evaluate`] in enforce mode against a cluster double
//! filled with the input's Secrets and ServiceAccounts, so a finding reads the same here as
//! in `kubectl apply`.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tokio::time::Instant;

use crate::admission::{Evaluation, Subject, Webhook};
use crate::manifests::{Document, InputError};
use crate::policy::{Action, Mode};
use crate::workload::WorkloadKind;

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
}

struct Report<'a> {
    doc: &'a Document,
    eval: Evaluation,
}

/// Evaluates every workload of `docs`; writes the report in `format`.
pub async fn check_documents(
    webhook: &Webhook,
    docs: &[Document],
    default_namespace: &str,
    timeout: Duration,
    concurrency: usize,
    format: Format,
    out: &mut dyn Write,
) -> std::io::Result<Tally> {
    let mut tally = Tally::default();
    let workloads: Vec<(&Document, WorkloadKind)> = docs
        .iter()
        .filter_map(|d| {
            let (group, kind) = d.group_kind();
            let k = WorkloadKind::from_group_kind(group, kind);
            if k.is_none() {
                tally.skipped += 1;
            }
            k.map(|k| (d, k))
        })
        .collect();
    let done = Arc::new(AtomicUsize::new(0));
    let progress = progress_reporter(Arc::clone(&done), workloads.len());
    let futures: Vec<_> = workloads
        .iter()
        .map(|(doc, kind)| {
            let done = Arc::clone(&done);
            async move {
                let namespace = doc.namespace().unwrap_or(default_namespace);
                let subject = Subject {
                    kind: *kind,
                    namespace,
                    name: doc.name(),
                    workload: crate::workload::decode(*kind, &doc.value),
                    old: None,
                    ephemeral: false,
                    // Nothing ran ServiceAccount admission on manifests: apply it here.
                    service_account_rule: true,
                };
                let eval = webhook
                    .evaluate(&subject, Mode::Enforce, Instant::now() + timeout)
                    .await;
                done.fetch_add(1, Ordering::Relaxed);
                Report { doc, eval }
            }
        })
        .collect();
    let reports: Vec<Report<'_>> = futures::stream::iter(futures)
        .buffered(concurrency.max(1))
        .collect()
        .await;
    if let Some(p) = progress {
        p.abort();
        eprint!("\r\x1b[K");
    }
    let mut last_file: Option<&str> = None;
    for r in &reports {
        tally.objects += 1;
        tally.images += r.eval.uses.len();
        let actions = &webhook.settings.actions;
        for f in &r.eval.findings {
            match actions.of(f.finding.class) {
                Action::Deny => tally.failing += 1,
                _ => tally.warnings += 1,
            }
        }
        tally.warnings += r.eval.advisories.len();
        match format {
            Format::Text => write_text(out, r, actions, &mut last_file)?,
            Format::Json => write_json(out, r, actions)?,
            Format::Github => write_github(out, r, actions)?,
        }
    }
    Ok(tally)
}

fn progress_reporter(done: Arc<AtomicUsize>, total: usize) -> Option<tokio::task::JoinHandle<()>> {
    if !std::io::stderr().is_terminal() || total < 2 {
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

fn line_of(r: &Report<'_>, image: &str) -> usize {
    r.doc.line_of(image).unwrap_or(r.doc.line)
}

fn label(action: Action) -> &'static str {
    match action {
        Action::Deny => "FAIL",
        Action::Warn => "warn",
        Action::Audit => "note",
    }
}

fn write_text<'d>(
    out: &mut dyn Write,
    r: &Report<'d>,
    actions: &crate::policy::Actions,
    last_file: &mut Option<&'d str>,
) -> std::io::Result<()> {
    if r.eval.uses.is_empty() && r.eval.findings.is_empty() && r.eval.advisories.is_empty() {
        return Ok(());
    }
    let file: &'d str = r.doc.file.as_str();
    if *last_file != Some(file) {
        writeln!(out, "{file}")?;
        *last_file = Some(r.doc.file.as_str());
    }
    writeln!(out, "  {} (line {})", r.eval.subject, r.doc.line)?;
    for f in &r.eval.findings {
        writeln!(
            out,
            "    {:>5}  {}  {} [{}]",
            line_of(r, &f.image),
            label(actions.of(f.finding.class)),
            f.sentence(),
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
            "    {:>5}  ok    {} ({}) {digest}",
            line_of(r, &u.image),
            crate::admission::place(u),
            u.image
        )?;
    }
    for a in &r.eval.advisories {
        writeln!(out, "           warn  {a}")?;
    }
    Ok(())
}

fn write_json(
    out: &mut dyn Write,
    r: &Report<'_>,
    actions: &crate::policy::Actions,
) -> std::io::Result<()> {
    let object = json!({
        "kind": r.doc.group_kind().1,
        "namespace": r.doc.namespace(),
        "name": r.doc.name(),
    });
    for u in &r.eval.uses {
        let check = r.eval.checks.iter().find(|c| c.image == u.image);
        let finding = r.eval.findings.iter().find(|f| f.image == u.image);
        let resolved = check.and_then(|c| c.resolved.as_ref());
        let line = json!({
            "file": r.doc.file,
            "line": line_of(r, &u.image),
            "object": object,
            "container": u.name,
            "image": u.image,
            "canonical": check.and_then(|c| c.canonical.clone()),
            "verdict": finding.map_or("ok", |f| f.finding.class.as_str()),
            "action": finding.map(|f| match actions.of(f.finding.class) {
                Action::Deny => "deny",
                Action::Warn => "warn",
                Action::Audit => "audit",
            }),
            "digest": resolved.map(|x| x.digest.clone()),
            "platforms": resolved.map(|x| x.platforms.platforms.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap_or_default(),
            "message": finding.map(|f| f.sentence()),
            "hint": finding.and_then(|f| f.finding.hint.clone()),
        });
        writeln!(out, "{line}")?;
    }
    for f in r.eval.findings.iter().filter(|f| f.image.is_empty()) {
        let line = json!({
            "file": r.doc.file, "line": r.doc.line, "object": object,
            "verdict": f.finding.class.as_str(), "action": "deny", "message": f.sentence(),
        });
        writeln!(out, "{line}")?;
    }
    for a in &r.eval.advisories {
        let line = json!({
            "file": r.doc.file, "line": r.doc.line, "object": object,
            "verdict": "note", "action": "warn", "message": a,
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Escapes data of a workflow command (GitHub's rules).
fn gh_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value of a workflow command.
fn gh_property(s: &str) -> String {
    gh_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn write_github(
    out: &mut dyn Write,
    r: &Report<'_>,
    actions: &crate::policy::Actions,
) -> std::io::Result<()> {
    let file = gh_property(&r.doc.file);
    for f in &r.eval.findings {
        let level = match actions.of(f.finding.class) {
            Action::Deny => "error",
            _ => "warning",
        };
        writeln!(
            out,
            "::{level} file={file},line={},title={}::{}",
            line_of(r, &f.image),
            gh_property(&format!(
                "pullcheck {}: {}",
                f.finding.class, r.eval.subject
            )),
            gh_data(&f.sentence())
        )?;
    }
    for a in &r.eval.advisories {
        writeln!(
            out,
            "::warning file={file},line={},title={}::{}",
            r.doc.line,
            gh_property(&format!("pullcheck: {}", r.eval.subject)),
            gh_data(a)
        )?;
    }
    Ok(())
}

/// Writes input errors in `format`.
pub fn write_input_errors(
    out: &mut dyn Write,
    err: &mut dyn Write,
    errors: &[InputError],
    format: Format,
) -> std::io::Result<()> {
    for e in errors {
        match format {
            Format::Text => writeln!(err, "error: {e}")?,
            Format::Json => writeln!(
                out,
                "{}",
                json!({"file": e.file, "line": e.line, "verdict": "input_error", "message": e.message})
            )?,
            Format::Github => {
                let line = e.line.map(|l| format!(",line={l}")).unwrap_or_default();
                writeln!(
                    out,
                    "::error file={}{line},title={}::{}",
                    gh_property(&e.file),
                    gh_property("pullcheck: unreadable input"),
                    gh_data(&e.message)
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
