//! What `pullcheck check` reads, and how: CI runs it on the files of untrusted pull
//! requests, so every input is a regular file read through a bounded reader.
//!
//! - A FIFO, socket or device (given, found in a directory, or behind a symbolic link) is
//!   an error naming it and what it is; it is never opened for reading, and what is opened
//!   is checked again on the open handle (`fstat`), so a swap in between cannot block a run.
//! - Paths given on the command line are followed wherever they point: the user named them.
//! - Inside a directory, symbolic links to directories are not followed (a link cannot
//!   make the walk loop, leave the tree or read a file twice), and a symbolic link to a
//!   file is read only when it resolves to a regular file inside the directory given
//!   (a pull request cannot make CI read `/proc/self/environ` or the runner's credentials
//!   through a link). Links not followed are warnings; directories already walked (bind
//!   mounts) and files already read (by device and inode) are skipped.
//! - Every input, standard input included, is capped at `--max-input-bytes`.

use std::collections::HashSet;
use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ci::manifests::InputError;
use crate::files::{self, kind_of, open_nonblocking, Unread};
use crate::text::describe_bytes;

/// One input's text.
#[derive(Debug)]
pub struct Input {
    /// The path as given (or found under a directory), `-` for standard input.
    pub name: Arc<str>,
    pub text: String,
    /// Named `*.json`: parsed as JSON whatever it starts with.
    pub json: bool,
}

/// Everything read, with what could not be.
#[derive(Debug, Default)]
pub struct Inputs {
    pub inputs: Vec<Input>,
    pub errors: Vec<InputError>,
    /// Links not followed.
    pub warnings: Vec<InputError>,
}

/// Reads `paths` (`-` is `stdin`), each capped at `max_bytes`.
pub fn read_all(paths: &[String], stdin: &mut dyn Read, max_bytes: u64) -> Inputs {
    let mut reader = Reader {
        max_bytes,
        seen_files: HashSet::new(),
        out: Inputs::default(),
    };
    for p in paths {
        if p == "-" {
            reader.read_stdin(stdin);
            continue;
        }
        let path = Path::new(p);
        match std::fs::metadata(path) {
            Err(e) => reader.error(p, format!("cannot read: {}", io_reason(&e, path))),
            Ok(m) if m.is_dir() => reader.walk(path),
            Ok(m) => reader.read_file(path, p, &m),
        }
    }
    reader.out
}

/// [`files::read_regular`], its refusals in `check`'s words.
pub fn read_regular(file: File, max_bytes: u64) -> Result<(Metadata, Vec<u8>), String> {
    files::read_regular(file, max_bytes).map_err(|e| match e {
        Unread::NotRegular(kind) => format!("{kind}, not a regular file: not read"),
        Unread::TooLarge => too_large(max_bytes),
        Unread::Io(e) => format!("cannot read: {e}"),
    })
}

fn too_large(max_bytes: u64) -> String {
    format!(
        "larger than the input limit of {} (--max-input-bytes): not read",
        describe_bytes(max_bytes)
    )
}

fn io_reason(e: &std::io::Error, path: &Path) -> String {
    if e.kind() == std::io::ErrorKind::NotFound && path.symlink_metadata().is_ok() {
        "a symbolic link to nothing (broken link)".into()
    } else {
        e.to_string()
    }
}

struct Reader {
    max_bytes: u64,
    /// (device, inode) of every file read.
    seen_files: HashSet<(u64, u64)>,
    out: Inputs,
}

impl Reader {
    fn error(&mut self, file: &str, message: String) {
        self.out.errors.push(InputError {
            file: file.into(),
            line: None,
            message,
        });
    }

    fn warning(&mut self, file: &str, message: String) {
        self.out.warnings.push(InputError {
            file: file.into(),
            line: None,
            message,
        });
    }

    fn read_stdin(&mut self, stdin: &mut dyn Read) {
        let mut bytes = Vec::new();
        match stdin
            .take(self.max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
        {
            Err(e) => self.error("-", format!("cannot read standard input: {e}")),
            Ok(_) if bytes.len() as u64 > self.max_bytes => {
                self.error("-", format!("standard input {}", too_large(self.max_bytes)));
            }
            Ok(_) => self.push_text("-", false, bytes),
        }
    }

    /// A path whose metadata (links followed) is `meta`; `name` is how errors name it.
    fn read_file(&mut self, path: &Path, name: &str, meta: &Metadata) {
        if !meta.is_file() {
            self.error(
                name,
                format!("{}, not a regular file: not read", kind_of(meta)),
            );
            return;
        }
        let file = match open_nonblocking(path) {
            Ok(f) => f,
            Err(e) => return self.error(name, format!("cannot read: {e}")),
        };
        match read_regular(file, self.max_bytes) {
            Err(message) => self.error(name, message),
            Ok((meta, bytes)) => {
                use std::os::unix::fs::MetadataExt;
                if !self.seen_files.insert((meta.dev(), meta.ino())) {
                    return; // the same file under another name: read once
                }
                let json = path.extension().and_then(|e| e.to_str()) == Some("json")
                    || Path::new(name).extension().and_then(|e| e.to_str()) == Some("json");
                self.push_text(name, json, bytes);
            }
        }
    }

    fn push_text(&mut self, name: &str, json: bool, bytes: Vec<u8>) {
        match String::from_utf8(bytes) {
            Ok(text) => self.out.inputs.push(Input {
                name: name.into(),
                text,
                json,
            }),
            Err(_) => self.error(name, "not UTF-8 text".into()),
        }
    }

    /// Every manifest under `root`, in path order.
    fn walk(&mut self, root: &Path) {
        use std::os::unix::fs::MetadataExt;
        let canonical_root = match std::fs::canonicalize(root) {
            Ok(r) => r,
            Err(e) => return self.error(&root.display().to_string(), format!("cannot read: {e}")),
        };
        let mut seen_dirs: HashSet<(u64, u64)> = HashSet::new();
        let mut stack = vec![root.to_path_buf()];
        // (path to name it by, path to open)
        let mut files: Vec<(PathBuf, PathBuf)> = Vec::new();
        while let Some(dir) = stack.pop() {
            let name = dir.display().to_string();
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if !seen_dirs.insert((m.dev(), m.ino())) => continue,
                Ok(_) => {}
                Err(e) => {
                    self.error(&name, format!("cannot read directory: {e}"));
                    continue;
                }
            }
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) => {
                    self.error(&name, format!("cannot read directory: {e}"));
                    continue;
                }
            };
            for entry in entries {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        self.error(&name, format!("cannot read directory: {e}"));
                        break;
                    }
                };
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let path = entry.path();
                let Ok(file_type) = entry.file_type() else {
                    continue;
                };
                if file_type.is_dir() {
                    stack.push(path);
                } else if file_type.is_symlink() {
                    if let Some(target) = self.follow_link(&path, &canonical_root) {
                        files.push((path, target));
                    }
                } else if is_manifest_name(&path) {
                    files.push((path.clone(), path));
                }
            }
        }
        files.sort();
        for (path, open) in files {
            let name = path.display().to_string();
            match std::fs::symlink_metadata(&open) {
                Ok(m) => self.read_file(&open, &name, &m),
                Err(e) => self.error(&name, format!("cannot read: {e}")),
            }
        }
    }

    /// The target to read for a link found in a directory, if it is followed.
    fn follow_link(&mut self, link: &Path, root: &Path) -> Option<PathBuf> {
        let name = link.display().to_string();
        let meta = match std::fs::metadata(link) {
            Ok(m) => m,
            Err(e) => {
                if is_manifest_name(link) {
                    self.error(&name, format!("cannot read: {}", io_reason(&e, link)));
                }
                return None;
            }
        };
        if meta.is_dir() {
            self.warning(
                &name,
                "a symbolic link to a directory: not followed (name the directory itself)".into(),
            );
            return None;
        }
        if !is_manifest_name(link) {
            return None;
        }
        if !meta.is_file() {
            self.error(
                &name,
                format!(
                    "a symbolic link to {}, not a regular file: not read",
                    kind_of(&meta)
                ),
            );
            return None;
        }
        match std::fs::canonicalize(link) {
            Ok(target) if target.starts_with(root) => Some(target),
            Ok(target) => {
                self.warning(
                    &name,
                    format!(
                        "a symbolic link to {}, outside {}: not followed (name the file itself)",
                        target.display(),
                        root.display()
                    ),
                );
                None
            }
            Err(e) => {
                self.error(&name, format!("cannot read: {e}"));
                None
            }
        }
    }
}

fn is_manifest_name(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}
