//! Manifests for `pullcheck check`: files, directories (recursively), stdin; YAML streams,
//! JSON, `kind: List`; whatever `kustomize build` or `helm template` prints. Every object
//! keeps its file and the bytes it came from, so findings point at the line of the image.
//!
//! Reading is [`crate::ci::input`] (regular files only, bounded); parsing is
//! [`crate::ci::manifest_stream`] (two linear passes, Lists streamed).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::Value;

use crate::cluster::{InMemoryCluster, SecretData};

/// One input's text, with its line index.
#[derive(Debug)]
pub struct Source {
    /// The path as given (or found under a directory), `-` for standard input.
    pub name: Arc<str>,
    pub text: String,
    pub(crate) json: bool,
    pub lines: LineIndex,
}

/// Offsets of the line ends of a text: line of an offset in O(log n), 4 bytes a line.
#[derive(Debug, Default)]
pub struct LineIndex(Vec<u32>);

impl LineIndex {
    pub fn new(text: &str) -> Self {
        Self(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| u32::try_from(i).unwrap_or(u32::MAX))
                .collect(),
        )
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&nl| (nl as usize) < offset) + 1
    }

    /// Byte offset where 1-based `line` starts.
    pub fn line_start(&self, line: usize) -> usize {
        match line.checked_sub(2) {
            None => 0,
            Some(i) => self.0.get(i).map_or(usize::MAX, |&nl| nl as usize + 1),
        }
    }
}

/// One Kubernetes object read from an input.
#[derive(Clone, Debug)]
pub struct Document {
    /// The path as given (or found under a directory), `-` for standard input.
    pub file: Arc<str>,
    /// 1-based line where the object starts.
    pub line: usize,
    pub value: Value,
    /// The input it came from, to find image lines.
    source: Option<Arc<Source>>,
    /// The object's bytes in the source.
    span: Range<usize>,
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
    pub(crate) fn new(source: &Arc<Source>, line: usize, span: Range<usize>, value: Value) -> Self {
        Self {
            file: Arc::clone(&source.name),
            line,
            value,
            source: Some(Arc::clone(source)),
            span,
        }
    }

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
    /// within this object's bytes.
    pub fn line_of(&self, image: &str) -> Option<usize> {
        let source = self.source.as_ref()?;
        if image.is_empty() {
            return None;
        }
        let text = source.text.as_str();
        let within = text.get(self.span.clone())?;
        let edge = |c: Option<char>| {
            c.is_none_or(|c| matches!(c, '"' | '\'' | ' ' | ',' | '}' | ']' | '\n' | '\r'))
        };
        within.match_indices(image).find_map(|(at, _)| {
            let at = self.span.start + at;
            // The whole value, not a prefix of a longer one (`app:1` in `app:10`).
            if !edge(text[..at].chars().next_back())
                || !edge(text[at + image.len()..].chars().next())
            {
                return None;
            }
            let line = source.lines.line(at);
            let start = source.lines.line_start(line).min(at);
            let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            let whole = &text[start..end];
            (whole.contains("image") || whole.contains("reference")).then_some(line)
        })
    }
}

/// Fills the in-memory cluster with the Secrets and ServiceAccounts of the input (namespace
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
                    file: doc.file.to_string(),
                    line: Some(doc.line),
                    message: crate::text::truncate(
                        &format!("Secret {}/{}: {message}", quote(ns), quote(&name)),
                        crate::text::MESSAGE_LIMIT,
                    ),
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

/// A name or key from the input, as quoted in a message.
fn quote(s: &str) -> std::borrow::Cow<'_, str> {
    crate::text::clip(s, crate::text::QUOTE_LIMIT)
}

/// A Secret manifest as the API server would store it: `data` base64, `stringData` merged
/// over it.
fn secret_data(v: &Value) -> Result<SecretData, String> {
    let mut data = BTreeMap::new();
    if let Some(map) = v["data"].as_object() {
        for (k, val) in map {
            let s = val
                .as_str()
                .ok_or_else(|| format!("data.{} is not a string", quote(k)))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|_| format!("data.{} is not valid base64", quote(k)))?;
            data.insert(k.clone(), bytes);
        }
    }
    if let Some(map) = v["stringData"].as_object() {
        for (k, val) in map {
            let s = val
                .as_str()
                .ok_or_else(|| format!("stringData.{} is not a string", quote(k)))?;
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
    use crate::ci::manifest_stream::collect;

    /// (cluster objects, workloads, errors) of one input.
    fn parse(name: &str, text: &str) -> (Vec<Document>, Vec<Document>, Vec<InputError>) {
        let c = collect(vec![crate::ci::input::Input {
            name: name.into(),
            text: text.into(),
            json: name.ends_with(".json"),
        }]);
        (c.cluster, c.workloads, c.errors)
    }

    const STREAM: &str = "# Source: chart/templates/a.yaml\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: \"nginx:1.25\"\n      - image: busybox\n        name: b\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: nginx:1.25}]}\n...\n";

    #[test]
    fn yaml_stream_with_lines() {
        let (cluster, docs, errors) = parse("f.yaml", STREAM);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(cluster.len(), 1);
        assert_eq!(cluster[0].line, 3);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].line, 8);
        assert_eq!(docs[0].group_kind(), ("apps", "Deployment"));
        assert_eq!(docs[0].line_of("nginx:1.25"), Some(17));
        assert_eq!(docs[0].line_of("busybox"), Some(18));
        assert_eq!(docs[1].line_of("nginx:1.25"), Some(24), "its own document");
        assert_eq!(cluster[0].line_of("nginx:1.25"), None, "other document");
    }

    #[test]
    fn broken_document_is_reported_and_others_kept() {
        let pod =
            |n: &str| format!("kind: Pod\nmetadata: {{name: {n}}}\nspec: {{containers: []}}\n");
        let text = format!(
            "{}---\nkind: [unclosed\n---\n- just\n- a list\n---\n{}",
            pod("a"),
            pod("b")
        );
        let (_, docs, errors) = parse("f.yaml", &text);
        assert_eq!(docs.len(), 2);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].line, Some(5));
        assert!(errors[0].message.starts_with("invalid YAML"), "{errors:?}");
        assert_eq!(errors[1].line, Some(7));
        assert!(errors[1]
            .message
            .contains("not a Kubernetes object (a list)"));
    }

    #[test]
    fn lists_and_json() {
        let json = r#"{"apiVersion":"v1","kind":"List","items":[
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"x:1"}]}},
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b"},"spec":{"containers":[{"name":"c","image":"y:1"}]}}, 7,
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"c"},"spec":{"containers":[{"name":"c","image":"x:1"}]}}]}"#;
        let (_, docs, errors) = parse("l.json", json);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, Some(3));
        assert!(errors[0].message.contains("(a number)"), "{errors:?}");
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1].name(), "b");
        assert_eq!(docs[1].line, 3);
        assert_eq!(docs[1].line_of("y:1"), Some(3));
        assert_eq!(docs[1].line_of("y"), None, "whole values only");
        assert_eq!(
            docs[2].line_of("x:1"),
            Some(4),
            "the item's own image, not the first"
        );
    }

    #[test]
    fn yaml_list_items_in_kubectl_order() {
        // `kubectl get -o yaml`: items before kind.
        let mut text = String::from("apiVersion: v1\nitems:\n");
        for i in 0..3 {
            text.push_str(&format!(
                "- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: p{i}\n  spec:\n    containers:\n    - name: c\n      image: same:1\n"
            ));
        }
        text.push_str("- apiVersion: v1\n  kind: Secret\n  metadata: {name: s}\n  stringData: {a: b}\nkind: List\nmetadata: {}\n");
        let (cluster, docs, errors) = parse("l.yaml", &text);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(cluster.len(), 1);
        assert_eq!(cluster[0].line, 27);
        let lines: Vec<_> = docs.iter().map(|d| (d.line, d.line_of("same:1"))).collect();
        assert_eq!(lines, [(3, Some(10)), (11, Some(18)), (19, Some(26))]);
        // The same items under a kind that is not a List are one object.
        let (_, docs, _) = parse("x.yaml", &text.replace("kind: List", "kind: Pod"));
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn yaml_numbers_and_duplicates_as_kubectl_reads_them() {
        let (_, docs, errors) = parse(
            "f.yaml",
            "kind: Pod\nmetadata: {name: a}\nspec:\n  containers: []\n  volumes:\n  - secret: {defaultMode: 0644}\n---\nkind: Pod\nkind: Pod\n",
        );
        assert_eq!(
            docs[0].value["spec"]["volumes"][0]["secret"]["defaultMode"],
            420
        );
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("duplicate"), "{errors:?}");
        assert_eq!(errors[0].line, Some(9));
    }

    #[test]
    fn secrets_and_service_accounts_feed_the_cluster() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: reg, namespace: t}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{\"auths\":{}}'\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: app}\nimagePullSecrets: [{name: reg}]\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: bad}\ndata: {x: '%%%'}\n";
        let (docs, _, errors) = parse("f.yaml", text);
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

    #[test]
    fn line_index() {
        let idx = LineIndex::new("a\nbc\n\nd");
        assert_eq!(
            [0, 1, 2, 4, 5, 6, 7].map(|o| idx.line(o)),
            [1, 1, 2, 2, 3, 4, 4]
        );
        assert_eq!([1, 2, 3, 4].map(|l| idx.line_start(l)), [0, 2, 5, 6]);
    }
}
