//! Reading files that others control, bounded: CI input from untrusted pull requests and
//! the CI disk cache. A file is opened without blocking (a FIFO cannot stall a run), checked
//! on the open handle to be a regular file, and read up to a limit, never more.
//!
//! A leaf: it imports nothing of the crate, and every layer may use it.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;

/// Why a file was not read.
#[derive(Debug)]
pub enum Unread {
    /// Not a regular file: what it is instead ([`kind_of`]).
    NotRegular(&'static str),
    /// Larger than the limit.
    TooLarge,
    Io(std::io::Error),
}

/// Opens `path` for reading without blocking on a FIFO or claiming a terminal.
pub fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// Reads a file already opened, after checking on the handle that it is a regular file of
/// at most `max_bytes`.
pub fn read_regular(file: File, max_bytes: u64) -> Result<(Metadata, Vec<u8>), Unread> {
    let meta = file.metadata().map_err(Unread::Io)?;
    if !meta.is_file() {
        return Err(Unread::NotRegular(kind_of(&meta)));
    }
    if meta.len() > max_bytes {
        return Err(Unread::TooLarge);
    }
    // `len()` is a hint (0 for /proc files): the reader is what bounds the read.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(Unread::Io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(Unread::TooLarge);
    }
    Ok((meta, bytes))
}

/// The bytes of the regular file at `path` when it is one of at most `max_bytes`; anything
/// else (missing, a FIFO, a device, too large) is `None`: a directory restored from a CI
/// cache is never blocked on or read without bound.
pub fn read_small(path: &Path, max_bytes: u64) -> Option<Vec<u8>> {
    let file = open_nonblocking(path).ok()?;
    read_regular(file, max_bytes).ok().map(|(_, bytes)| bytes)
}

/// `a FIFO (named pipe)`, `a character device`, …
pub fn kind_of(m: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}
