//! What `check` writes: per object (its findings at the line of the image, resolved images,
//! advisories) or per `--image`, as text, JSON lines or GitHub Actions workflow commands;
//! and unreadable inputs. Every value from the input is clipped ([`FIELD_LIMIT`],
//! [`MESSAGE_LIMIT`]) and escaped for its format.

use std::borrow::Cow;
use std::io::Write;
use std::sync::Arc;

use serde_json::json;

use super::manifests::{Document, InputError};
use crate::config::Format;
use crate::engine::{Action, Actions, Evaluation, ImageCheck};
use crate::text::{clip, FIELD_LIMIT, MESSAGE_LIMIT};

/// One object and what its evaluation found.
pub(super) struct Report {
    pub(super) doc: Document,
    pub(super) eval: Evaluation,
}

/// Writes the report of one object in `format`.
pub(super) fn write_report(
    out: &mut dyn Write,
    r: &Report,
    format: Format,
    actions: &Actions,
    last_file: &mut Option<Arc<str>>,
) -> std::io::Result<()> {
    match format {
        Format::Text => write_text(out, r, actions, last_file),
        Format::Json => write_json(out, r, actions),
        Format::Github => write_github(out, r, actions),
    }
}

/// Writes the verdict on one `--image` in `format`.
pub(super) fn write_image(
    out: &mut dyn Write,
    r: &ImageCheck,
    format: Format,
    actions: &Actions,
) -> std::io::Result<()> {
    match format {
        Format::Json => writeln!(out, "{}", json_line(r)),
        Format::Text => write_image_text(out, r),
        Format::Github => write_github_image(out, r, actions),
    }
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
    actions: &Actions,
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

fn write_json(out: &mut dyn Write, r: &Report, actions: &Actions) -> std::io::Result<()> {
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

fn write_github(out: &mut dyn Write, r: &Report, actions: &Actions) -> std::io::Result<()> {
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

fn write_github_image(
    out: &mut dyn Write,
    r: &ImageCheck,
    actions: &Actions,
) -> std::io::Result<()> {
    if let Some(f) = &r.finding {
        let level = if actions.of(f.class) == Action::Deny {
            "error"
        } else {
            "warning"
        };
        let hint = f
            .hint
            .as_ref()
            .map(|h| format!("; fix: {h}"))
            .unwrap_or_default();
        writeln!(
            out,
            "::{level} title=pullcheck {}::{}",
            f.class,
            gh_data(&clip(
                &format!("{}: {}{hint}", clip(&r.image, FIELD_LIMIT), f.message),
                MESSAGE_LIMIT
            ))
        )?;
    }
    Ok(())
}

/// One line of `check --format json`.
pub fn json_line(r: &ImageCheck) -> String {
    let resolved = r.resolved.as_ref();
    let field = |s: &str| clip(s, FIELD_LIMIT).into_owned();
    let sentence = |s: &str| clip(s, MESSAGE_LIMIT).into_owned();
    let value = serde_json::json!({
        "image": field(&r.image),
        "canonical": r.canonical.as_deref().map(field),
        "verdict": r.verdict(),
        "digest": resolved.map(|x| field(&x.digest)),
        "platforms": resolved.map(|x| x.platforms.platforms.iter().map(|p| field(&p.to_string())).collect::<Vec<_>>()).unwrap_or_default(),
        "message": r.finding.as_ref().map(|f| sentence(&f.message)),
        "hint": r.finding.as_ref().and_then(|f| f.hint.as_deref()).map(sentence),
        "missing_platforms": r.missing_platforms.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "credential_source": r.credential_source.as_deref().map(field),
        "stale_age_seconds": r.stale_age.map(|d| d.as_secs_f64()),
        "notes": r.notes.iter().map(|n| sentence(n)).collect::<Vec<_>>(),
    });
    value.to_string()
}

fn write_image_text(out: &mut dyn Write, r: &ImageCheck) -> std::io::Result<()> {
    let image = clip(&r.image, FIELD_LIMIT);
    match &r.finding {
        None => writeln!(out, "ok    {image}")?,
        Some(f) => writeln!(
            out,
            "FAIL  {image}\n      {}: {}",
            f.class,
            clip(&f.message, MESSAGE_LIMIT)
        )?,
    }
    if let Some(h) = r.finding.as_ref().and_then(|f| f.hint.as_ref()) {
        writeln!(out, "      fix: {}", clip(h, MESSAGE_LIMIT))?;
    }
    if let (Some(c), Some(res)) = (&r.canonical, &r.resolved) {
        let platforms: Vec<String> = res
            .platforms
            .platforms
            .iter()
            .map(ToString::to_string)
            .collect();
        writeln!(
            out,
            "      {c} -> {} ({})",
            res.digest,
            platforms.join(", ")
        )?;
    }
    if !r.missing_platforms.is_empty() {
        let missing: Vec<String> = r
            .missing_platforms
            .iter()
            .map(ToString::to_string)
            .collect();
        writeln!(out, "      note: no variant for {}", missing.join(", "))?;
    }
    for n in &r.notes {
        writeln!(out, "      note: {}", clip(n, MESSAGE_LIMIT))?;
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
