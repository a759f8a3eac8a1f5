//! The layering of `src/`, enforced: every `crate::` path (and every `super::` path that
//! leaves its folder) points down the layers of README "Development", no two modules use
//! each other in a circle, and no source file holds more than [`LINE_BUDGET`] lines before
//! its tests.
//!
//! The files are read as text: a path counts where code names it (comment lines do not).
//! A folder's `mod.rs` naming its own children (`mod x; pub use x::Y;`) is its structure,
//! not a dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Most lines of a source file before its `#[cfg(test)] mod tests`.
const LINE_BUDGET: usize = 600;

/// The layers, leaves first: each may use itself and the layers it lists, nothing else.
const LAYERS: &[(&str, &[&str])] = &[
    ("text", &[]),
    ("files", &[]),
    ("metrics", &[]),
    ("kubelet", &["text"]),
    ("registry", &["kubelet", "text", "files", "metrics"]),
    ("cluster", &["kubelet", "text", "metrics"]),
    (
        "engine",
        &["registry", "cluster", "kubelet", "text", "metrics"],
    ),
    (
        "config",
        &[
            "engine", "registry", "cluster", "kubelet", "text", "files", "metrics",
        ],
    ),
    (
        "webhook",
        &[
            "config", "engine", "registry", "cluster", "kubelet", "text", "files", "metrics",
        ],
    ),
    (
        "ci",
        &[
            "config", "engine", "registry", "cluster", "kubelet", "text", "files", "metrics",
        ],
    ),
];

/// One source file of the library.
struct Source {
    path: PathBuf,
    /// `["engine", "image"]` for `src/engine/image.rs`, `["engine"]` for its `mod.rs`.
    module: Vec<String>,
    text: String,
}

impl Source {
    /// The lines before the unit tests.
    fn code(&self) -> &str {
        match self.text.find("\n#[cfg(test)]\nmod tests") {
            Some(at) => &self.text[..at],
            None => &self.text,
        }
    }

    fn layer(&self) -> Option<&str> {
        self.module.first().map(String::as_str)
    }
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).expect("under src/");
            let mut module: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            // The crate root and the binary declare; they are not a layer.
            if module == ["lib"] || module == ["main"] {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source is UTF-8");
            out.push(Source { path, module, text });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    assert!(out.len() > 20, "found only {} source files", out.len());
    out
}

/// Lines of code: comment lines dropped.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths a line names after `prefix` (`crate`, `super`): `crate::a::b` gives
/// `["a", "b"]`; `crate::{a, b::c}` gives `["a"]` and `["b", "c"]`. For `super`, the
/// number of `super`s comes first.
fn paths_after(line: &str, prefix: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        let before_ok = rest[..at].chars().next_back().is_none_or(|c| !is_ident(c));
        let mut tail = &rest[at + prefix.len()..];
        rest = tail;
        if !before_ok || !tail.starts_with("::") {
            continue;
        }
        let mut ups = 1;
        tail = &tail[2..];
        while prefix == "super" && tail.starts_with("super::") {
            ups += 1;
            tail = &tail["super::".len()..];
        }
        rest = tail;
        let group: Vec<&str> = if let Some(inner) = tail.strip_prefix('{') {
            let end = inner.find('}').unwrap_or(inner.len());
            inner[..end].split(',').collect()
        } else {
            vec![tail]
        };
        for item in group {
            let segments: Vec<String> = item
                .trim()
                .split("::")
                .map(|s| s.chars().take_while(|c| is_ident(*c)).collect::<String>())
                .take_while(|s| {
                    !s.is_empty() && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                })
                .collect();
            if !segments.is_empty() {
                out.push((ups, segments));
            }
        }
    }
    out
}

/// The longest module of `modules` that `path` starts with.
fn resolve(path: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
}

/// Every module each module uses, with the line that says so (production code only, or
/// every line with `with_tests`).
fn uses(sources: &[Source], with_tests: bool) -> BTreeMap<Vec<String>, Vec<(Vec<String>, String)>> {
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let mut out = BTreeMap::new();
    for s in sources {
        let text = if with_tests {
            s.text.as_str()
        } else {
            s.code()
        };
        let mut found = Vec::new();
        for (n, line) in code_lines(text) {
            let at = format!("{}:{n}: {}", s.path.display(), line.trim());
            for (_, path) in paths_after(line, "crate") {
                if let Some(m) = resolve(&path, &modules) {
                    found.push((m, at.clone()));
                }
            }
            if !with_tests {
                for (ups, path) in paths_after(line, "super") {
                    let Some(base) = s.module.len().checked_sub(ups) else {
                        continue;
                    };
                    let mut full = s.module[..base].to_vec();
                    full.extend(path);
                    if let Some(m) = resolve(&full, &modules) {
                        found.push((m, at.clone()));
                    }
                }
            }
        }
        found.retain(|(m, _)| *m != s.module);
        out.insert(s.module.clone(), found);
    }
    out
}

#[test]
fn every_module_has_a_layer() {
    let known: BTreeSet<&str> = LAYERS.iter().map(|(l, _)| *l).collect();
    let strays: Vec<String> = sources()
        .iter()
        .filter(|s| s.layer().is_none_or(|l| !known.contains(l)))
        .map(|s| s.path.display().to_string())
        .collect();
    assert!(
        strays.is_empty(),
        "modules outside the layers of tests/layers.rs: {strays:?}"
    );
}

#[test]
fn imports_point_down_the_layers() {
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let sources = sources();
    let mut wrong = Vec::new();
    for (module, used) in uses(&sources, true) {
        let layer = module[0].as_str();
        let Some(may) = allowed.get(layer) else {
            continue; // reported by every_module_has_a_layer
        };
        for (target, at) in used {
            let to = target[0].as_str();
            if to != layer && !may.contains(&to) {
                wrong.push(format!("{layer} may not use {to}: {at}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering (README, Development):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_modules_use_each_other_in_a_circle() {
    let sources = sources();
    let graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = uses(&sources, false)
        .into_iter()
        .map(|(m, used)| (m, used.into_iter().map(|(t, _)| t).collect()))
        .collect();
    // Depth-first search; a module met again on the current path closes a circle.
    fn visit(
        m: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        path: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
        circles: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut circle: Vec<String> = path[at..].iter().map(|p| p.join("::")).collect();
            circle.push(m.join("::"));
            circles.push(circle.join(" -> "));
            return;
        }
        if !done.insert(m.clone()) {
            return;
        }
        path.push(m.clone());
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, path, done, circles);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    let mut circles = Vec::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done, &mut circles);
    }
    assert!(
        circles.is_empty(),
        "modules using each other in a circle:\n{}",
        circles.join("\n")
    );
}

#[test]
fn source_files_fit_the_line_budget_before_their_tests() {
    let over: Vec<String> = sources()
        .iter()
        .map(|s| (s, s.code().lines().count()))
        .filter(|(_, n)| *n > LINE_BUDGET)
        .map(|(s, n)| format!("{}: {n} lines before its tests", s.path.display()))
        .collect();
    assert!(
        over.is_empty(),
        "files over {LINE_BUDGET} lines (split them where responsibilities part):\n{}",
        over.join("\n")
    );
}

#[test]
fn the_path_reader_sees_what_rust_sees() {
    let p = |line: &str, prefix: &str| paths_after(line, prefix);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        p("use crate::engine::{Engine, Evaluation};", "crate"),
        vec![(1, s(&["engine"]))]
    );
    assert_eq!(
        p("use crate::{config::yaml, text};", "crate"),
        vec![(1, s(&["config", "yaml"])), (1, s(&["text"]))]
    );
    assert_eq!(
        p("let x = crate::text::clip(a, 3);", "crate"),
        vec![(1, s(&["text", "clip"]))]
    );
    assert_eq!(
        p("use super::super::registry::Registry;", "super"),
        vec![(2, s(&["registry"]))]
    );
    assert!(p("pullcheck_crate::x", "crate").is_empty());
}
