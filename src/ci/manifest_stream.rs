//! Parsing `check` input in two linear passes with bounded memory.
//!
//! 1. [`survey`] reads every input once, keeping only what must be known before the first
//!    workload is checked: the Secrets and ServiceAccounts (for the in-memory cluster), the
//!    errors, and a plan of the documents that hold workloads. Inputs without workloads
//!    are dropped after this pass.
//! 2. [`spawn_stream`] parses the planned documents again on a thread of its own and sends
//!    the workloads one by one through a bounded channel, each holding permits for its
//!    source bytes, so at most [`IN_FLIGHT_BYTES`] of objects (or one larger object) and
//!    [`IN_FLIGHT_OBJECTS`] objects are parsed but not yet reported. The items of a
//!    `kind: List` are streamed from the parser, never held as one tree.
//!
//! Memory is the input text (kept for image lines), a 4-byte line index per line, and
//! a constant. Lines are found through the index: an object's image is searched only
//! within that object's bytes, so finding every image line is linear in the input.
//!
//! YAML goes through serde-saphyr with a budget proportional to each document's size:
//! aliases may add at most about half a document's size in events (billion laughs are
//! refused in microseconds), nesting is at most 128 levels (serde_json's limit).

use std::ops::Range;
use std::sync::Arc;

use serde::de::{DeserializeOwned, DeserializeSeed};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::ci::manifest_serde::{
    Fields, ItemsSeen, JsonElements, Probe, Root, RootSeed, YamlElements, STOPPED,
};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::ci::input::Input;
use crate::ci::manifests::{Document, InputError, LineIndex, Source};
use crate::config::yaml::{strip_location, yaml_message, yaml_options};
use crate::kubelet::workload::WorkloadKind;

/// Parsed but unreported objects, by source bytes.
pub const IN_FLIGHT_BYTES: usize = 16 << 20;
/// Parsed but unreported objects, by count.
pub const IN_FLIGHT_OBJECTS: usize = 256;
/// Stack of the parser threads: 128 levels of serde recursion in a debug build.
const PARSER_STACK: usize = 32 << 20;

/// One top-level document to parse again in pass 2.
#[derive(Debug)]
struct Planned {
    range: Range<usize>,
    line: usize,
    end_line: usize,
    /// A `List` whose items are streamed, or one object.
    list: bool,
}

#[derive(Debug)]
struct SourcePlan {
    source: Arc<Source>,
    docs: Vec<Planned>,
}

/// What pass 1 found.
#[derive(Debug, Default)]
pub struct Survey {
    /// Secrets and ServiceAccounts, for the in-memory cluster.
    pub cluster: Vec<Document>,
    pub errors: Vec<InputError>,
    /// Workload objects pass 2 will send.
    pub workloads: usize,
    /// Objects that are not workloads (Secrets and ServiceAccounts included).
    pub skipped: usize,
    plans: Vec<SourcePlan>,
}

/// What pass 2 sends.
#[derive(Debug)]
pub enum Item {
    Object(Document),
    /// An error pass 1 could not see (a document that parses but not into JSON values).
    Error(InputError),
}

/// Pass 1 over `inputs`, on a parser thread.
pub async fn survey(inputs: Vec<Input>) -> Survey {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("pullcheck-survey".into())
        .stack_size(PARSER_STACK)
        .spawn(move || {
            let _ = tx.send(survey_now(inputs));
        });
    let failed = |message: String| Survey {
        errors: vec![InputError {
            file: "pullcheck".into(),
            line: None,
            message,
        }],
        ..Survey::default()
    };
    match spawned {
        Ok(_) => rx
            .await
            .unwrap_or_else(|_| failed("the parser stopped: inputs not checked".into())),
        Err(e) => failed(format!("cannot start the parser thread: {e}")),
    }
}

/// Pass 2: the workloads of `survey`'s plan, in input order, with permits for their bytes.
pub fn spawn_stream(survey: &mut Survey) -> mpsc::Receiver<(Item, OwnedSemaphorePermit)> {
    let plans = std::mem::take(&mut survey.plans);
    let (tx, rx) = mpsc::channel(IN_FLIGHT_OBJECTS);
    let budget = Arc::new(Semaphore::new(IN_FLIGHT_BYTES));
    let spawned = std::thread::Builder::new()
        .name("pullcheck-parse".into())
        .stack_size(PARSER_STACK)
        .spawn(move || {
            let mut send = |item: Item, bytes: usize| -> bool {
                let permits = bytes.clamp(1, IN_FLIGHT_BYTES) as u32;
                let Ok(permit) =
                    futures::executor::block_on(Arc::clone(&budget).acquire_many_owned(permits))
                else {
                    return false;
                };
                tx.blocking_send((item, permit)).is_ok()
            };
            stream_now(plans, &mut send);
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the parser thread: {e}");
    }
    rx
}

/// Pass 1, on the calling thread.
pub fn survey_now(inputs: Vec<Input>) -> Survey {
    let mut survey = Survey::default();
    for input in inputs {
        let source = Arc::new(Source::new(input));
        let mut docs = Vec::new();
        for top in top_documents(&source, &mut survey.errors) {
            if let Some(list) = survey_document(&source, &top, &mut survey) {
                docs.push(Planned {
                    range: top.range,
                    line: top.line,
                    end_line: top.end_line,
                    list,
                });
            }
        }
        if !docs.is_empty() {
            survey.plans.push(SourcePlan { source, docs });
        }
    }
    survey
}

/// Surveys one document; `Some(is_list)` when it holds workloads.
fn survey_document(source: &Arc<Source>, top: &TopDocument, survey: &mut Survey) -> Option<bool> {
    let mut items = ItemSurvey::default();
    let root = parse_root::<Probe>(source, top, &mut |probe, offset| {
        items.add(source, probe, offset);
        true
    });
    let error = |message: String| InputError {
        file: source.name.to_string(),
        line: Some(top.line),
        message,
    };
    match root {
        Err(e) => survey.errors.push(e),
        Ok(Root::Null) => {}
        Ok(Root::Other(what)) => survey.errors.push(error(not_object(what))),
        Ok(Root::Object(fields, seen)) => match fields.kind() {
            None => survey.errors.push(error("document has no kind".into())),
            Some(kind) if is_list(kind, seen != ItemsSeen::Absent) => {
                if seen != ItemsSeen::Sequence {
                    survey.errors.push(error("List without items".into()));
                    return None;
                }
                survey.errors.extend(items.errors);
                survey.cluster.extend(items.cluster);
                survey.workloads += items.workloads;
                survey.skipped += items.skipped;
                return (items.workloads > 0).then_some(true);
            }
            Some(_) => match classify(&fields) {
                Class::Cluster => {
                    survey.skipped += 1;
                    survey.cluster.push(Document::new(
                        source,
                        top.line,
                        top.range.clone(),
                        fields.into_value(),
                    ));
                }
                Class::Workload => {
                    survey.workloads += 1;
                    return Some(false);
                }
                Class::Other => survey.skipped += 1,
            },
        },
    }
    None
}

/// The items of one `items:` sequence, kept only where pass 2 will not look again.
#[derive(Default)]
struct ItemSurvey {
    errors: Vec<InputError>,
    cluster: Vec<Document>,
    workloads: usize,
    skipped: usize,
}

impl ItemSurvey {
    fn add(&mut self, source: &Arc<Source>, probe: Probe, offset: usize) {
        let line = source.lines.line(offset);
        let span = offset..offset;
        let error = |message: String| InputError {
            file: source.name.to_string(),
            line: Some(line),
            message,
        };
        let (fields, items) = match probe {
            Probe::Null => return self.errors.push(error(not_object("null"))),
            Probe::Other(what) => return self.errors.push(error(not_object(what))),
            Probe::Object(fields, items) => (fields, items),
        };
        match fields.kind() {
            None => self.errors.push(error("document has no kind".into())),
            Some(kind) if is_list(kind, items.is_some()) => {
                // A List inside a List: rare, expanded from its values.
                let mut value = fields.into_value();
                if let (Value::Object(map), Some(items)) = (&mut value, items) {
                    map.insert("items".into(), items);
                }
                objects(value, &mut |object| match object {
                    Err(message) => self.errors.push(error(message)),
                    Ok(v) => match classify(&Fields::of(&v)) {
                        Class::Cluster => {
                            self.cluster
                                .push(Document::new(source, line, span.clone(), v))
                        }
                        Class::Workload => self.workloads += 1,
                        Class::Other => self.skipped += 1,
                    },
                });
            }
            Some(_) => match classify(&fields) {
                Class::Cluster => {
                    self.skipped += 1;
                    self.cluster
                        .push(Document::new(source, line, span, fields.into_value()));
                }
                Class::Workload => self.workloads += 1,
                Class::Other => self.skipped += 1,
            },
        }
    }
}

/// Pass 2, on the calling thread; `send` returns false when nobody listens any more.
fn stream_now(plans: Vec<SourcePlan>, send: &mut dyn FnMut(Item, usize) -> bool) {
    for plan in plans {
        let source = &plan.source;
        for doc in &plan.docs {
            let top = TopDocument {
                range: doc.range.clone(),
                line: doc.line,
                end_line: doc.end_line,
            };
            let mut open = true;
            let mut emit = |value: Value, span: Range<usize>| -> bool {
                let line = source.lines.line(span.start);
                objects(value, &mut |object| {
                    if let Ok(v) = object {
                        if open && classify(&Fields::of(&v)) == Class::Workload {
                            let bytes = span.len();
                            let d = Document::new(source, line, span.clone(), v);
                            open = send(Item::Object(d), bytes);
                        }
                    }
                });
                open
            };
            let result = if doc.list {
                // Each item is sent when the next one starts: its bytes end there.
                let mut pending: Option<(Value, usize)> = None;
                let root = parse_root::<Value>(source, &top, &mut |value, offset| {
                    let go_on = match pending.take() {
                        Some((v, start)) => emit(v, start..offset.max(start)),
                        None => true,
                    };
                    pending = Some((value, offset));
                    go_on
                });
                if let Some((v, start)) = pending {
                    emit(v, start..top.range.end.max(start));
                }
                root.map(|_| ())
            } else {
                parse_value(source, &top).map(|v| {
                    emit(v, top.range.clone());
                })
            };
            if let Err(e) = result {
                if !open || e.message == STOPPED {
                    return;
                }
                open = send(Item::Error(e), 1);
            }
            if !open {
                return;
            }
        }
    }
}

/// The objects of a value, Lists expanded (as `kubectl` does), or why one is not.
fn objects(value: Value, f: &mut dyn FnMut(Result<Value, String>)) {
    let Value::Object(map) = &value else {
        return f(Err(not_object(json_type(&value))));
    };
    let Some(kind) = map.get("kind").and_then(Value::as_str) else {
        return f(Err("document has no kind".into()));
    };
    if is_list(kind, map.contains_key("items")) {
        let Value::Object(mut map) = value else {
            return;
        };
        match map.remove("items") {
            Some(Value::Array(items)) => {
                for item in items {
                    objects(item, f);
                }
            }
            _ => f(Err("List without items".into())),
        }
        return;
    }
    f(Ok(value));
}

fn is_list(kind: &str, has_items: bool) -> bool {
    kind == "List" || (kind.ends_with("List") && has_items)
}

fn not_object(what: &str) -> String {
    format!("document is not a Kubernetes object (a {what})")
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Class {
    /// A core Secret or ServiceAccount.
    Cluster,
    Workload,
    Other,
}

fn classify(fields: &Fields) -> Class {
    let api_version = fields.api_version.as_ref().and_then(Value::as_str);
    let group = api_version
        .unwrap_or_default()
        .rsplit_once('/')
        .map_or("", |(g, _)| g);
    let kind = fields.kind().unwrap_or_default();
    if group.is_empty() && matches!(kind, "Secret" | "ServiceAccount") {
        Class::Cluster
    } else if WorkloadKind::from_group_kind(group, kind).is_some() {
        Class::Workload
    } else {
        Class::Other
    }
}

/// A top-level document: a YAML document of a stream, or a JSON value of a sequence.
#[derive(Debug, Clone)]
struct TopDocument {
    range: Range<usize>,
    /// 1-based line where it starts, and the line after its last.
    line: usize,
    end_line: usize,
}

/// The documents of a source; a JSON syntax error ends the source (reported).
fn top_documents(source: &Source, errors: &mut Vec<InputError>) -> Vec<TopDocument> {
    if !source.is_json() {
        return yaml_documents(&source.text)
            .into_iter()
            .filter(|d| {
                !source.text[d.range.clone()]
                    .lines()
                    .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
            })
            .collect();
    }
    let text = source.text.as_str();
    let mut out = Vec::new();
    for raw in serde_json::Deserializer::from_str(text).into_iter::<&RawValue>() {
        match raw {
            Ok(raw) => {
                let start = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
                let end = (start + raw.get().len()).min(text.len());
                out.push(TopDocument {
                    range: start..end,
                    line: source.lines.line(start),
                    end_line: source.lines.line(end) + 1,
                });
            }
            Err(e) => {
                errors.push(InputError {
                    file: source.name.to_string(),
                    line: Some(e.line()),
                    message: crate::text::truncate(
                        &format!("invalid JSON: {e}"),
                        crate::text::MESSAGE_LIMIT,
                    ),
                });
                break;
            }
        }
    }
    out
}

/// Parses a top-level document, items to `emit` with their offsets.
fn parse_root<T: DeserializeOwned>(
    source: &Source,
    top: &TopDocument,
    emit: &mut dyn FnMut(T, usize) -> bool,
) -> Result<Root, InputError> {
    let text = &source.text[top.range.clone()];
    if source.is_json() {
        let elements = JsonElements { text: &source.text };
        let seed = RootSeed {
            elements: &elements,
            emit,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        return seed
            .deserialize(&mut de)
            .map_err(|e| json_error(source, top, &e));
    }
    let elements = YamlElements {
        source,
        base: top.range.start,
        base_line: top.line,
    };
    let seed = RootSeed {
        elements: &elements,
        emit,
    };
    serde_saphyr::with_deserializer_from_str_with_options(text, yaml_options(text.len()), |de| {
        seed.deserialize(de)
    })
    .map_err(|e| yaml_error(source, top, &e))
}

/// Parses a whole top-level document into one value.
fn parse_value(source: &Source, top: &TopDocument) -> Result<Value, InputError> {
    let text = &source.text[top.range.clone()];
    if source.is_json() {
        return serde_json::from_str(text).map_err(|e| json_error(source, top, &e));
    }
    serde_saphyr::from_str_with_options(text, yaml_options(text.len()))
        .map_err(|e| yaml_error(source, top, &e))
}

fn json_error(source: &Source, top: &TopDocument, e: &serde_json::Error) -> InputError {
    let line = top.line + e.line().saturating_sub(1);
    InputError {
        file: source.name.to_string(),
        line: Some(line),
        message: crate::text::truncate(
            &format!("invalid JSON: {}", strip_location(&e.to_string())),
            crate::text::MESSAGE_LIMIT,
        ),
    }
}

fn yaml_error(source: &Source, top: &TopDocument, e: &serde_saphyr::Error) -> InputError {
    // Unterminated constructs are reported at the end of input: keep the line inside the
    // document.
    let line = e.location().map(|l| {
        let l = usize::try_from(l.line()).unwrap_or(1).max(1);
        (top.line + l - 1).min(top.end_line.saturating_sub(1).max(top.line))
    });
    InputError {
        file: source.name.to_string(),
        line: line.or(Some(top.line)),
        message: yaml_message(e),
    }
}

/// Splits a YAML stream on `---` / `...` markers.
fn yaml_documents(text: &str) -> Vec<TopDocument> {
    let mut out = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 1;
    let mut offset = 0;
    let mut lines = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        lines = i + 1;
        let l = line.trim_end();
        let marker = l == "---" || l.starts_with("--- ") || l.starts_with("---\t") || l == "...";
        if marker {
            out.push(TopDocument {
                range: start_byte..offset,
                line: start_line,
                end_line: i + 1,
            });
            // `--- value` starts a document on the marker line itself.
            if l.starts_with("--- ") || l.starts_with("---\t") {
                start_byte = offset + 3;
                start_line = i + 1;
            } else {
                start_byte = offset + line.len();
                start_line = i + 2;
            }
        }
        offset += line.len();
    }
    out.push(TopDocument {
        range: start_byte.min(text.len())..text.len(),
        line: start_line,
        end_line: lines + 1,
    });
    out
}

impl Source {
    pub fn new(input: Input) -> Self {
        let lines = LineIndex::new(&input.text);
        Self {
            json: input.json || input.text.trim_start().starts_with(['{', '[']),
            name: input.name,
            text: input.text,
            lines,
        }
    }

    fn is_json(&self) -> bool {
        self.json
    }
}

/// Everything both passes find, collected (tests and small inputs).
#[derive(Debug, Default)]
pub struct Collected {
    pub cluster: Vec<Document>,
    pub workloads: Vec<Document>,
    pub errors: Vec<InputError>,
    pub skipped: usize,
}

/// Both passes on the calling thread, every workload kept.
pub fn collect(inputs: Vec<Input>) -> Collected {
    let mut survey = survey_now(inputs);
    let mut out = Collected {
        cluster: std::mem::take(&mut survey.cluster),
        errors: std::mem::take(&mut survey.errors),
        skipped: survey.skipped,
        workloads: Vec::new(),
    };
    stream_now(std::mem::take(&mut survey.plans), &mut |item, _| {
        match item {
            Item::Object(d) => out.workloads.push(d),
            Item::Error(e) => out.errors.push(e),
        }
        true
    });
    out
}
