//! Replays the committed fuzz corpus (`tests/fuzz/corpus/<target>/*`) through the same
//! harnesses the cargo-fuzz targets run (`tests/fuzz/src/lib.rs`), so that every `cargo test`
//! exercises the inputs the fuzzers found, including the regression inputs of fixed bugs,
//! without a fuzzer. See tests/fuzz/README.md for running the fuzzers themselves.

use std::path::{Path, PathBuf};
use std::time::Instant;

#[path = "fuzz/src/lib.rs"]
mod harness;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target)
}

/// Runs every file of one target's corpus; fails if the directory is missing or empty.
fn replay(target: &str) {
    let run = harness::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, run)| *run)
        .unwrap_or_else(|| panic!("no harness named {target}"));
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {} is missing: {e}", dir.display()))
        .map(|entry| entry.expect("readable corpus directory").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "fuzz corpus {} is empty", dir.display());
    let started = Instant::now();
    for file in &files {
        let data = std::fs::read(file).expect("readable corpus file");
        // A panic names the file that caused it.
        eprintln!("{target}: {}", file.display());
        run(&data);
    }
    eprintln!(
        "{target}: {} inputs in {:?}",
        files.len(),
        started.elapsed()
    );
}

#[test]
fn every_target_has_a_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus");
    assert!(root.is_dir(), "{} is missing", root.display());
    for (target, _) in harness::TARGETS {
        assert!(corpus_dir(target).is_dir(), "no corpus for {target}");
    }
}

#[test]
fn reference_corpus() {
    replay("reference");
}

#[test]
fn credentials_corpus() {
    replay("credentials");
}

#[test]
fn admission_corpus() {
    replay("admission");
}

#[test]
fn platform_corpus() {
    replay("platform");
}

#[test]
fn manifests_corpus() {
    replay("manifests");
}

#[test]
fn registry_headers_corpus() {
    replay("registry_headers");
}
