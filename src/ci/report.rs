//! The one writer of `check`'s output. Every path — objects from manifests, `--image`,
//! unreadable inputs — describes what it found as [`Line`]s of one schema, and the writer
//! renders them in the chosen format: text (grouped by file and object), JSON lines (the
//! [`Line`] itself; README, "CI usage", lists the fields of each kind), or GitHub Actions
//! workflow commands. It also counts, so the exit code follows what was printed: a `FAIL`
//! line (`::error`, `"action": "deny"`) is exactly what fails the run.
//!
//! Every value from the input is clipped ([`FIELD_LIMIT`], [`MESSAGE_LIMIT`]) and escaped
//! for its format: control characters shown as escapes in text, workflow command escaping
//! for GitHub (`%`, CR, LF in data; also `:` and `,` in properties), JSON's own.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::Arc;

use serde::Serialize;

use super::manifests::{Document, InputError};
use crate::config::Format;
use crate::engine::policy::action;
use crate::engine::{place, Action, Actions, Advice, Evaluation, ImageCheck, Located, Mode};
use crate::text::{clip, FIELD_LIMIT, MESSAGE_LIMIT};

/// One object and what its evaluation found.
pub(super) struct Report {
    pub(super) doc: Document,
    pub(super) eval: Evaluation,
}

/// What a run wrote, for the summary and the exit code.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub objects: usize,
    pub images: usize,
    /// Findings the run fails on (`FAIL`): what the webhook would deny, and with `--strict`
    /// transient findings too.
    pub failing: usize,
    /// Findings that do not fail the run (`WARN`, `NOTE`), and advisories.
    pub warnings: usize,
    /// Inputs or documents that could not be read.
    pub input_errors: usize,
}

/// The object a line belongs to (`object` in JSON).
#[derive(Serialize)]
struct Object {
    kind: String,
    namespace: Option<String>,
    name: String,
}

/// One line of `check`'s output, in the JSON schema: every key is always present (`null`
/// or `[]` when it does not apply). `verdict` tells the kind: `ok` or a finding class (an
/// image, or with `image: null` a finding about the object, e.g. a broken pull secret),
/// an advice class (`latest_tag`, `giant_image`, …: an image that pulls but is fragile),
/// `note` (an advisory), `skipped` (an object or image not checked, and why),
/// `input_error`, `input_warning`.
#[derive(Serialize)]
pub struct Line {
    file: Option<Arc<str>>,
    line: Option<usize>,
    object: Option<Object>,
    container: Option<String>,
    image: Option<String>,
    canonical: Option<String>,
    verdict: &'static str,
    action: Option<&'static str>,
    digest: Option<String>,
    platforms: Vec<String>,
    missing_platforms: Vec<String>,
    credential_source: Option<String>,
    stale_age_seconds: Option<f64>,
    notes: Vec<String>,
    message: Option<String>,
    hint: Option<String>,
    /// How text and GitHub name the object or image (`Deployment team-a/web`).
    #[serde(skip)]
    subject: Option<String>,
    /// Text: where an image is used (`container "web"`).
    #[serde(skip)]
    place: Option<String>,
    /// Text: the line the object starts on (its header).
    #[serde(skip)]
    object_line: Option<usize>,
}

impl Line {
    fn new(verdict: &'static str) -> Self {
        Self {
            file: None,
            line: None,
            object: None,
            container: None,
            image: None,
            canonical: None,
            verdict,
            action: None,
            digest: None,
            platforms: Vec::new(),
            missing_platforms: Vec::new(),
            credential_source: None,
            stale_age_seconds: None,
            notes: Vec::new(),
            message: None,
            hint: None,
            subject: None,
            place: None,
            object_line: None,
        }
    }

    /// The verdict on one image: its check, and the finding located in the object (or, for
    /// `--image`, the check's own), with what the policy makes of it.
    fn image(check: &ImageCheck, finding: Option<&Located>, action: Option<Action>) -> Self {
        let mut l = Line::new(finding.map_or("ok", |f| f.finding.class.as_str()));
        l.image = Some(field(&check.image));
        l.canonical = check.canonical.as_deref().map(field);
        l.action = action.map(Action::as_str);
        if let Some(r) = &check.resolved {
            l.digest = Some(field(&r.digest));
            l.platforms = r
                .platforms
                .platforms
                .iter()
                .map(|p| field(&p.to_string()))
                .collect();
        }
        l.missing_platforms = check
            .missing_platforms
            .iter()
            .map(|p| field(&p.to_string()))
            .collect();
        l.credential_source = check.credential_source.as_deref().map(field);
        l.stale_age_seconds = check.stale_age.map(|d| d.as_secs_f64());
        l.notes = check.notes.iter().map(|n| sentence(n)).collect();
        if let Some(f) = finding {
            l.message = Some(sentence(&f.sentence()));
            l.hint = f.finding.hint.as_deref().map(sentence);
        }
        l
    }

    /// A piece of advice on an image, with what the policy makes of it.
    fn advice(a: &Advice, action: Action) -> Self {
        let mut l = Line::new(a.class.as_str());
        l.image = Some(field(&a.image));
        l.action = Some(action.as_str());
        l.message = Some(sentence(&a.sentence()));
        l.hint = Some(sentence(&a.hint));
        l
    }

    /// What text and GitHub show as the level of a finding or note.
    fn level(&self) -> Level {
        match self.action {
            Some("deny") => Level::Fail,
            Some("audit") => Level::Note,
            _ => Level::Warn,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Fail,
    Warn,
    Note,
}

impl Level {
    fn text(self) -> &'static str {
        match self {
            Level::Fail => "FAIL",
            Level::Warn => "WARN",
            Level::Note => "NOTE",
        }
    }

    fn github(self) -> &'static str {
        match self {
            Level::Fail => "error",
            Level::Warn => "warning",
            Level::Note => "notice",
        }
    }
}

/// A value from the input (image, name, …) as written out.
fn field(s: &str) -> String {
    clip(s, FIELD_LIMIT).into_owned()
}

/// A sentence (which may quote the input) as written out.
fn sentence(s: &str) -> String {
    clip(s, MESSAGE_LIMIT).into_owned()
}

/// The one writer of `check`'s output (see the module's documentation).
pub struct Writer<'w> {
    out: &'w mut dyn Write,
    err: &'w mut dyn Write,
    format: Format,
    /// Text: the file (or `--image`) and the object whose headers were written last.
    group: Option<Arc<str>>,
    object: Option<(Arc<str>, usize)>,
    tally: Tally,
    /// The first write error (a closed pipe): writing stops there, the run goes on to its
    /// end (the disk cache is saved), and [`Writer::finish`] returns it.
    failed: Option<io::Error>,
}

impl<'w> Writer<'w> {
    pub fn new(out: &'w mut dyn Write, err: &'w mut dyn Write, format: Format) -> Self {
        Self {
            out,
            err,
            format,
            group: None,
            object: None,
            tally: Tally::default(),
            failed: None,
        }
    }

    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// Objects the first pass saw that were never checked: never a silent pass, an input
    /// error (exit 2) without a file.
    pub fn unchecked(&mut self, missing: usize) {
        self.tally.input_errors += 1;
        let mut l = Line::new("input_error");
        l.message = Some(format!("{missing} objects were not checked"));
        self.write(&l);
    }

    /// The report of one object: its images in spec order (a finding or `ok`), findings
    /// about the object itself, advisories; or why it was skipped.
    pub(super) fn object(&mut self, r: &Report, actions: &Actions) {
        let ev = &r.eval;
        let doc = &r.doc;
        self.tally.objects += 1;
        self.tally.images += ev.uses.len();
        let (_, kind) = doc.group_kind();
        let object = || Object {
            kind: field(kind),
            namespace: doc.namespace().map(field),
            name: field(&doc.name()),
        };
        let at = |mut l: Line, line: usize| {
            l.file = Some(Arc::clone(&doc.file));
            l.line = Some(line);
            l.object = Some(object());
            l.subject = Some(field(&ev.subject));
            l.object_line = Some(doc.line);
            l
        };
        let mut lines = Vec::new();
        if let Some(why) = &ev.skipped {
            let mut l = Line::new("skipped");
            l.message = Some(sentence(why));
            lines.push(at(l, doc.line));
        }
        for u in &ev.uses {
            let Some(check) = ev.checks.iter().find(|c| c.image == u.image) else {
                continue;
            };
            let place = place(u);
            let finding = ev
                .findings
                .iter()
                .find(|f| f.image == u.image && f.place == place);
            let action = finding.map(|f| action(ev.mode, actions, f.finding.class));
            let line = doc.line_of(&u.image).unwrap_or(doc.line);
            let advice = ev
                .advice
                .iter()
                .filter(|a| a.image == u.image && a.place == place);
            let advice = advice.map(|a| Line::advice(a, actions.advice_in(ev.mode, a.class)));
            for mut l in std::iter::once(Line::image(check, finding, action)).chain(advice) {
                l.container = Some(field(&u.name));
                l.place = Some(field(&place));
                lines.push(at(l, line));
            }
        }
        for f in ev.findings.iter().filter(|f| f.image.is_empty()) {
            let mut l = Line::new(f.finding.class.as_str());
            l.action = Some(action(ev.mode, actions, f.finding.class).as_str());
            l.message = Some(sentence(&f.sentence()));
            l.hint = f.finding.hint.as_deref().map(sentence);
            lines.push(at(l, doc.line));
        }
        for a in &ev.advisories {
            lines.push(at(note(a, ev.mode), doc.line));
        }
        for l in &lines {
            self.write(l);
        }
    }

    /// An `--image` that `exemptImages` names: not checked, as the webhook skips it.
    pub fn exempt_image(&mut self, image: &str) {
        let mut l = Line::new("skipped");
        l.image = Some(field(image));
        l.subject = l.image.clone();
        l.message = Some("exempt (exemptImages): not checked".into());
        self.write(&l);
    }

    /// The verdict on one `--image`, and the advice on it, decided in `mode`.
    pub fn image(&mut self, check: &ImageCheck, advice: &[Advice], mode: Mode, actions: &Actions) {
        self.tally.images += 1;
        let subject = Some(field(&check.image));
        let located = check.finding.as_ref().map(|f| Located {
            place: String::new(),
            image: check.image.clone(),
            finding: f.clone(),
        });
        let action = located
            .as_ref()
            .map(|f| action(mode, actions, f.finding.class));
        let mut l = Line::image(check, located.as_ref(), action);
        l.subject = subject.clone();
        self.write(&l);
        for a in advice {
            let mut a = Line::advice(a, actions.advice_in(mode, a.class));
            a.subject = subject.clone();
            self.write(&a);
        }
        if !check.missing_platforms.is_empty() {
            // The words the webhook's advisory uses for an object's images.
            let mut n = note(
                &format!(
                    "({}): no {} variant: Pods placed on such nodes fail to pull",
                    check.image,
                    l.missing_platforms.join(", ")
                ),
                mode,
            );
            n.image = l.image.clone();
            n.subject = subject;
            self.write(&n);
        }
    }

    /// Inputs that could not be read (errors: the run exits 2) and inputs not read on
    /// purpose (warnings). Text writes them to standard error, the other formats with the
    /// rest.
    pub fn input_errors(&mut self, errors: &[InputError], warnings: &[InputError]) {
        self.tally.input_errors += errors.len();
        let all = errors
            .iter()
            .map(|e| (e, "input_error"))
            .chain(warnings.iter().map(|w| (w, "input_warning")));
        for (e, verdict) in all {
            let mut l = Line::new(verdict);
            l.file = Some(Arc::from(field(&e.file)));
            l.line = e.line;
            l.message = Some(sentence(&e.message));
            self.write(&l);
        }
    }

    /// Text: the last line, what the run found.
    pub fn summary(&mut self, manifests: Option<usize>) {
        if self.format != Format::Text {
            return;
        }
        let t = self.tally;
        let checked = match manifests {
            Some(skipped) => format!(
                "{} objects, {} images checked ({skipped} other objects skipped)",
                t.objects, t.images
            ),
            None => format!("{} images checked", t.images),
        };
        let unreadable = match t.input_errors {
            0 => String::new(),
            n => format!(", {n} unreadable inputs"),
        };
        let line = format!(
            "pullcheck: {checked}: {} failing, {} warnings{unreadable}",
            t.failing, t.warnings
        );
        self.emit(false, &line);
    }

    /// Renders `l` in the format, and counts it.
    fn write(&mut self, l: &Line) {
        let finding = !matches!(
            l.verdict,
            "ok" | "skipped" | "note" | "input_error" | "input_warning"
        );
        if finding || l.verdict == "note" {
            match l.level() {
                Level::Fail => self.tally.failing += 1,
                _ => self.tally.warnings += 1,
            }
        }
        match self.format {
            Format::Json => match serde_json::to_string(l) {
                Ok(json) => self.emit(false, &json),
                Err(e) => self.emit(true, &format!("error: {e}")),
            },
            Format::Github => {
                if let Some(command) = github(l, finding) {
                    self.emit(false, &command);
                }
            }
            Format::Text => self.text(l, finding),
        }
    }

    fn text(&mut self, l: &Line, finding: bool) {
        match l.verdict {
            "input_error" | "input_warning" => {
                let label = if l.verdict == "input_error" {
                    "error"
                } else {
                    "warning"
                };
                let file = l.file.as_deref().unwrap_or("pullcheck");
                let message = l.message.as_deref().unwrap_or_default();
                let line = match l.line {
                    Some(n) => format!("{label}: {file}:{n}: {message}"),
                    None => format!("{label}: {file}: {message}"),
                };
                return self.emit(true, &visible(&line));
            }
            _ => {}
        }
        let group: Arc<str> = l.file.clone().unwrap_or_else(|| Arc::from("--image"));
        if self.group.as_deref() != Some(&*group) {
            self.emit(false, &visible(&group));
            self.group = Some(Arc::clone(&group));
            self.object = None;
        }
        if let (Some(subject), Some(line)) = (&l.subject, l.object_line) {
            let key = (group, line);
            if self.object.as_ref() != Some(&key) {
                self.emit(false, &visible(&format!("  {subject} (line {})", key.1)));
                self.object = Some(key);
            }
        }
        let number = l.line.filter(|_| l.verdict != "note");
        let number = number.map_or(String::new(), |n| n.to_string());
        let what = match (&l.place, &l.image) {
            (Some(p), Some(i)) => format!("{p} ({i})"),
            (None, Some(i)) => i.clone(),
            _ => String::new(),
        };
        let body = if finding {
            format!(
                "{}  {} [{}]",
                l.level().text(),
                l.message.as_deref().unwrap_or_default(),
                l.verdict
            )
        } else if l.verdict == "note" {
            format!(
                "{}  {}",
                l.level().text(),
                l.message.as_deref().unwrap_or_default()
            )
        } else if l.verdict == "skipped" {
            let why = l.message.as_deref().unwrap_or_default();
            match l.image {
                Some(_) => format!("skip  {what}: {why}"),
                None => format!("skip  {why}"),
            }
        } else {
            let mut ok = format!("ok    {what}");
            if let Some(digest) = &l.digest {
                ok.push(' ');
                ok.push_str(digest);
            }
            if !l.platforms.is_empty() {
                ok.push_str(&format!(" ({})", l.platforms.join(", ")));
            }
            ok
        };
        self.emit(false, &visible(&format!("    {number:>5}  {body}")));
        if l.verdict != "note" {
            for n in &l.notes {
                self.emit(false, &visible(&format!("                 note: {n}")));
            }
        }
    }

    /// Writes one line to standard output (or error), unless an earlier write failed.
    fn emit(&mut self, to_err: bool, line: &str) {
        if self.failed.is_some() {
            return;
        }
        let sink: &mut dyn Write = if to_err {
            &mut *self.err
        } else {
            &mut *self.out
        };
        if let Err(e) = writeln!(sink, "{line}") {
            self.failed = Some(e);
        }
    }

    /// The first write error, if any (the report is incomplete).
    pub fn finish(self) -> io::Result<Tally> {
        match self.failed {
            Some(e) => Err(e),
            None => Ok(self.tally),
        }
    }
}

/// An advisory: worth saying, never a reason to fail.
fn note(text: &str, mode: Mode) -> Line {
    let mut l = Line::new("note");
    l.action = Some(
        if mode == Mode::Audit {
            Action::Audit
        } else {
            Action::Warn
        }
        .as_str(),
    );
    l.message = Some(sentence(text));
    l
}

/// A GitHub Actions workflow command for `l`: findings and notes at their file and line,
/// unreadable inputs; nothing for `ok` and skipped lines.
fn github(l: &Line, finding: bool) -> Option<String> {
    let (level, title) = match l.verdict {
        "ok" | "skipped" => return None,
        "input_error" => (Level::Fail, "pullcheck: unreadable input".to_string()),
        "input_warning" => (Level::Warn, "pullcheck: input not read".to_string()),
        verdict => {
            let subject = l.subject.as_deref().unwrap_or_default();
            match finding {
                true => (l.level(), format!("pullcheck {verdict}: {subject}")),
                false => (l.level(), format!("pullcheck: {subject}")),
            }
        }
    };
    let mut properties = Vec::new();
    if let Some(file) = &l.file {
        properties.push(format!("file={}", gh_property(file)));
    }
    if let Some(line) = l.line {
        properties.push(format!("line={line}"));
    }
    properties.push(format!("title={}", gh_property(&title)));
    Some(format!(
        "::{} {}::{}",
        level.github(),
        properties.join(","),
        gh_data(l.message.as_deref().unwrap_or_default())
    ))
}

/// Escapes the data of a workflow command (GitHub's rules: `%`, CR, LF), other control
/// characters shown as escapes.
pub fn gh_data(s: &str) -> String {
    visible_keeping_lines(s)
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value of a workflow command: as data, and `:` and `,`.
pub fn gh_property(s: &str) -> String {
    gh_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// `s` with every control character shown as an escape (`\n`, `\u{1b}`): input cannot
/// start a line of its own in text output, nor send terminal sequences.
fn visible(s: &str) -> Cow<'_, str> {
    escape_controls(s, false)
}

fn visible_keeping_lines(s: &str) -> Cow<'_, str> {
    escape_controls(s, true)
}

fn escape_controls(s: &str, keep_lines: bool) -> Cow<'_, str> {
    let escaped = |c: char| c.is_control() && !(keep_lines && matches!(c, '\r' | '\n'));
    if !s.chars().any(escaped) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if escaped(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_escaping() {
        assert_eq!(gh_data("a%b\nc\rd"), "a%25b%0Ac%0Dd");
        assert_eq!(gh_property("x:y,z%\n"), "x%3Ay%2Cz%25%0A");
        assert_eq!(gh_data("\u{1b}[31mred"), "\\u{1b}[31mred");
    }

    #[test]
    fn text_shows_control_characters_as_escapes() {
        assert_eq!(visible("plain"), "plain");
        assert_eq!(visible("a\nFAIL\tb\u{1b}"), "a\\nFAIL\\tb\\u{1b}");
    }
}
