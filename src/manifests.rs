//! Manifests for `pullcheck check`: files, directories (recursively), stdin; YAML streams,
//! JSON, `kind: List`; whatever `kustomize build` or `helm template` prints. Every document
//! keeps its file and line so findings point at the line of the image.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use serde_json::Value;

use crate::cluster::{InMemoryCluster, SecretData};

/// One Kubernetes object read from an input.
#[derive(Clone, Debug)]
pub struct Document {
    /// The path as given (or found under a directory), `-` for standard input.
    pub file: String,
    /// 1-based line where the document starts.
    pub line: usize,
    pub value: Value,
    /// The whole input text, shared by its documents, to find image lines.
    text: Arc<str>,
    /// 1-based line after the document's last.
    end_line: usize,
}

/// An input that could not be read, or a document that is not a Kubernetes object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl Document {
    /// (`apiVersion` group, `kind`).
    pub fn group_kind(&self) -> (&str, &str) {
        let api_version = self.value["apiVersion"].as_str().unwrap_or_default();
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        (group, self.value["kind"].as_str().unwrap_or_default())
    }

    pub fn name(&self) -> String {
        let meta = &self.value["metadata"];
        match (meta["name"].as_str(), meta["generateName"].as_str()) {
            (Some(n), _) if !n.is_empty() => n.to_string(),
            (_, Some(g)) => format!("{g}*"),
            _ => "<unnamed>".into(),
        }
    }

    pub fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"]
            .as_str()
            .filter(|n| !n.is_empty())
    }

    /// The line of the first `image:` / `reference:` (or JSON `"image":`) naming `image`
    /// within this document.
    pub fn line_of(&self, image: &str) -> Option<usize> {
        if image.is_empty() {
            return None;
        }
        self.text
            .lines()
            .enumerate()
            .skip(self.line.saturating_sub(1))
            .take(self.end_line.saturating_sub(self.line))
            .find(|(_, l)| {
                (l.contains("image") || l.contains("reference"))
                    && l.match_indices(image).any(|(at, _)| {
                        // The whole value, not a prefix of a longer one (`app:1` in `app:10`).
                        let before = l[..at].chars().next_back();
                        let after = l[at + image.len()..].chars().next();
                        let edge = |c: Option<char>| {
                            c.is_none_or(|c| matches!(c, '"' | '\'' | ' ' | ',' | '}' | ']'))
                        };
                        edge(before) && edge(after)
                    })
            })
            .map(|(i, _)| i + 1)
    }
}

/// Reads every input; errors are collected per file/document, the rest still read.
pub fn read(paths: &[String], stdin: &mut dyn Read) -> (Vec<Document>, Vec<InputError>) {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        if p == "-" {
            let mut text = String::new();
            match stdin.read_to_string(&mut text) {
                Ok(_) => parse_text("-", false, text, &mut docs, &mut errors),
                Err(e) => errors.push(InputError {
                    file: "-".into(),
                    line: None,
                    message: format!("cannot read standard input: {e}"),
                }),
            }
            continue;
        }
        let path = Path::new(p);
        if path.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files, &mut errors);
            files.sort();
            for f in files {
                read_file(&f, &mut docs, &mut errors);
            }
        } else {
            read_file(path, &mut docs, &mut errors);
        }
    }
    (docs, errors)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<InputError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(InputError {
                file: dir.display().to_string(),
                line: None,
                message: format!("cannot read directory: {e}"),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if path.is_dir() {
            if !hidden {
                walk(&path, files, errors);
            }
        } else if !hidden
            && matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        {
            files.push(path);
        }
    }
}

fn read_file(path: &Path, docs: &mut Vec<Document>, errors: &mut Vec<InputError>) {
    let file = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => {
                let json = path.extension().and_then(|e| e.to_str()) == Some("json");
                parse_text(&file, json, text, docs, errors);
            }
            Err(_) => errors.push(InputError {
                file,
                line: None,
                message: "not UTF-8 text".into(),
            }),
        },
        Err(e) => errors.push(InputError {
            file,
            line: None,
            message: format!("cannot read: {e}"),
        }),
    }
}

fn parse_text(
    file: &str,
    json_hint: bool,
    text: String,
    docs: &mut Vec<Document>,
    errors: &mut Vec<InputError>,
) {
    let text: Arc<str> = Arc::from(text);
    let looks_json = json_hint || text.trim_start().starts_with(['{', '[']);
    let mut found: Vec<(usize, usize, Result<Value, InputError>)> = Vec::new();
    if looks_json {
        let mut stream = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
        loop {
            let start = stream.byte_offset();
            match stream.next() {
                None => break,
                Some(Ok(v)) => {
                    let end = stream.byte_offset();
                    found.push((line_at(&text, start), line_at(&text, end) + 1, Ok(v)));
                }
                Some(Err(e)) => {
                    found.push((
                        e.line(),
                        e.line() + 1,
                        Err(InputError {
                            file: file.into(),
                            line: Some(e.line()),
                            message: format!("invalid JSON: {e}"),
                        }),
                    ));
                    break;
                }
            }
        }
    } else {
        for (start, end, chunk) in yaml_documents(&text) {
            if chunk
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
            {
                continue;
            }
            let parsed = serde_yaml::from_str::<Value>(chunk).map_err(|e| {
                // Unterminated constructs are reported at the end of input: keep the line
                // inside the document.
                let line = e.location().map(|l| {
                    (start + l.line().saturating_sub(1)).min(end.saturating_sub(1).max(start))
                });
                InputError {
                    file: file.into(),
                    line: line.or(Some(start)),
                    message: format!("invalid YAML: {}", strip_location(&e.to_string())),
                }
            });
            found.push((start, end, parsed));
        }
    }
    for (line, end_line, parsed) in found {
        match parsed {
            Err(e) => errors.push(e),
            Ok(Value::Null) => {}
            Ok(value) => add_document(file, line, end_line, value, &text, docs, errors),
        }
    }
}

fn add_document(
    file: &str,
    line: usize,
    end_line: usize,
    value: Value,
    text: &Arc<str>,
    docs: &mut Vec<Document>,
    errors: &mut Vec<InputError>,
) {
    let error = |message: String| InputError {
        file: file.into(),
        line: Some(line),
        message,
    };
    let Value::Object(map) = &value else {
        errors.push(error(format!(
            "document is not a Kubernetes object (a {})",
            json_type(&value)
        )));
        return;
    };
    if map.get("kind").and_then(Value::as_str).is_none() {
        errors.push(error("document has no kind".into()));
        return;
    }
    if map.get("kind").and_then(Value::as_str) == Some("List")
        || map
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List") && map.get("items").is_some())
    {
        match map.get("items") {
            Some(Value::Array(items)) => {
                for item in items {
                    add_document(file, line, end_line, item.clone(), text, docs, errors);
                }
            }
            _ => errors.push(error("List without items".into())),
        }
        return;
    }
    docs.push(Document {
        file: file.into(),
        line,
        value,
        text: Arc::clone(text),
        end_line,
    });
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

/// serde_yaml appends "at line N column M" in its own numbering; ours is the file's.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Splits a YAML stream on `---` / `...` markers: (first line, line after last, text).
fn yaml_documents(text: &str) -> Vec<(usize, usize, &str)> {
    let mut out = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let l = line.trim_end();
        let marker = l == "---" || l.starts_with("--- ") || l.starts_with("---\t") || l == "...";
        if marker {
            out.push((start_line, i + 1, &text[start_byte..offset]));
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
    out.push((start_line, text.lines().count() + 1, &text[start_byte..]));
    out
}

/// Fills a cluster double with the Secrets and ServiceAccounts of the input (namespace
/// `default_namespace` for objects without one). Returns problems worth telling.
pub fn load_cluster(
    docs: &[Document],
    default_namespace: &str,
    cluster: &InMemoryCluster,
) -> Vec<InputError> {
    let mut problems = Vec::new();
    for doc in docs {
        let (group, kind) = doc.group_kind();
        if !group.is_empty() {
            continue;
        }
        let ns = doc.namespace().unwrap_or(default_namespace);
        let name = doc.name();
        match kind {
            "Secret" => match secret_data(&doc.value) {
                Ok(secret) => cluster.put_secret(ns, &name, secret),
                Err(message) => problems.push(InputError {
                    file: doc.file.clone(),
                    line: Some(doc.line),
                    message: format!("Secret {ns}/{name}: {message}"),
                }),
            },
            "ServiceAccount" => {
                let secrets: Vec<&str> = doc.value["imagePullSecrets"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|s| s["name"].as_str()).collect())
                    .unwrap_or_default();
                cluster.put_service_account(ns, &name, &secrets);
            }
            _ => {}
        }
    }
    problems
}

/// A Secret manifest as the API server would store it: `data` base64, `stringData` merged
/// over it.
fn secret_data(v: &Value) -> Result<SecretData, String> {
    let mut data = BTreeMap::new();
    if let Some(map) = v["data"].as_object() {
        for (k, val) in map {
            let s = val
                .as_str()
                .ok_or_else(|| format!("data.{k} is not a string"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|_| format!("data.{k} is not valid base64"))?;
            data.insert(k.clone(), bytes);
        }
    }
    if let Some(map) = v["stringData"].as_object() {
        for (k, val) in map {
            let s = val
                .as_str()
                .ok_or_else(|| format!("stringData.{k} is not a string"))?;
            data.insert(k.clone(), s.as_bytes().to_vec());
        }
    }
    Ok(SecretData {
        secret_type: v["type"].as_str().unwrap_or("Opaque").to_string(),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<Document>, Vec<InputError>) {
        let mut docs = Vec::new();
        let mut errors = Vec::new();
        parse_text("f.yaml", false, text.to_string(), &mut docs, &mut errors);
        (docs, errors)
    }

    const STREAM: &str = "# Source: chart/templates/a.yaml\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: \"nginx:1.25\"\n      - image: busybox\n        name: b\n...\n";

    #[test]
    fn yaml_stream_with_lines() {
        let (docs, errors) = parse(STREAM);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].line, 3);
        assert_eq!(docs[1].line, 8);
        assert_eq!(docs[1].group_kind(), ("apps", "Deployment"));
        assert_eq!(docs[1].line_of("nginx:1.25"), Some(17));
        assert_eq!(docs[1].line_of("busybox"), Some(18));
        assert_eq!(docs[0].line_of("nginx:1.25"), None, "other document");
    }

    #[test]
    fn broken_document_is_reported_and_others_kept() {
        let (docs, errors) =
            parse("kind: A\n---\nkind: [unclosed\n---\n- just\n- a list\n---\nkind: B\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].line, Some(3));
        assert!(errors[0].message.starts_with("invalid YAML"));
        assert_eq!(errors[1].line, Some(5));
        assert!(errors[1].message.contains("not a Kubernetes object"));
    }

    #[test]
    fn lists_and_json() {
        let mut docs = Vec::new();
        let mut errors = Vec::new();
        let json = r#"{"apiVersion":"v1","kind":"List","items":[
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"x:1"}]}},
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b"},"spec":{"containers":[{"name":"c","image":"y:1"}]}}]}"#;
        parse_text("l.json", true, json.into(), &mut docs, &mut errors);
        assert!(errors.is_empty());
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].name(), "b");
        assert_eq!(docs[1].line_of("y:1"), Some(3));
        assert_eq!(docs[1].line_of("y"), None, "whole values only");
    }

    #[test]
    fn secrets_and_service_accounts_feed_the_cluster() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: reg, namespace: t}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{\"auths\":{}}'\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: app}\nimagePullSecrets: [{name: reg}]\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: bad}\ndata: {x: '%%%'}\n";
        let (docs, errors) = parse(text);
        assert!(errors.is_empty());
        let cluster = InMemoryCluster::new();
        let problems = load_cluster(&docs, "dflt", &cluster);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("not valid base64"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            use crate::cluster::Cluster;
            let s = cluster.secret("t", "reg").await.unwrap().unwrap();
            assert_eq!(s.secret_type, "kubernetes.io/dockerconfigjson");
            let sa = cluster
                .service_account_pull_secrets("dflt", "app")
                .await
                .unwrap();
            assert_eq!(sa, Some(vec!["reg".to_string()]));
        });
    }
}
