//! Where the access-log writer thread puts its bytes: stdout, a file with
//! size-based rotation and reopen, or any `Write` (tests, pipes).
//!
//! Invariants: only the writer thread touches a `LogSink`; a batch is
//! written whole into one file (rotation happens between batches, so files
//! hold whole lines); a rotated set is `path`, `path.1` (newest) … `path.keep`
//! (oldest), and nothing older survives.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where access-log lines go.
pub enum LogTarget {
    Stdout,
    /// A file, appended to. `max_bytes == 0` never rotates; otherwise the
    /// file is rotated before a batch would take it past `max_bytes`, and
    /// `keep` rotated files are kept (`keep == 0`: the file is truncated).
    File {
        path: PathBuf,
        max_bytes: u64,
        keep: usize,
    },
    Writer(Box<dyn Write + Send>),
}

pub(super) enum LogSink {
    Stdout,
    File(RotatingFile),
    Writer(Box<dyn Write + Send>),
}

impl LogSink {
    /// Opens the target now, so a bad path fails at start-up.
    pub(super) fn open(target: LogTarget) -> io::Result<LogSink> {
        Ok(match target {
            LogTarget::Stdout => LogSink::Stdout,
            LogTarget::File {
                path,
                max_bytes,
                keep,
            } => LogSink::File(RotatingFile::open(path, max_bytes, keep)?),
            LogTarget::Writer(w) => LogSink::Writer(w),
        })
    }

    pub(super) fn write_batch(&mut self, batch: &[u8]) -> io::Result<()> {
        match self {
            LogSink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(batch)?;
                out.flush()
            }
            LogSink::File(f) => f.write_batch(batch),
            LogSink::Writer(w) => {
                w.write_all(batch)?;
                w.flush()
            }
        }
    }

    /// Reopens a file target (after an external logrotate moved it);
    /// nothing to do for the others.
    pub(super) fn reopen(&mut self) -> io::Result<()> {
        match self {
            LogSink::File(f) => f.reopen(),
            LogSink::Stdout | LogSink::Writer(_) => Ok(()),
        }
    }
}

pub(super) struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: File,
    /// Bytes in the current file.
    size: u64,
}

impl RotatingFile {
    fn open(path: PathBuf, max_bytes: u64, keep: usize) -> io::Result<RotatingFile> {
        let (file, size) = open_append(&path)?;
        Ok(RotatingFile {
            path,
            max_bytes,
            keep,
            file,
            size,
        })
    }

    fn write_batch(&mut self, batch: &[u8]) -> io::Result<()> {
        let len = batch.len() as u64;
        if self.max_bytes > 0 && self.size > 0 && self.size + len > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(batch)?;
        self.size += len;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.keep == 0 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        // Drop the oldest, shift the rest up by one, then the live file to .1.
        ignore_missing(std::fs::remove_file(numbered(&self.path, self.keep)))?;
        for i in (1..self.keep).rev() {
            ignore_missing(std::fs::rename(
                numbered(&self.path, i),
                numbered(&self.path, i + 1),
            ))?;
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.reopen()
    }

    fn reopen(&mut self) -> io::Result<()> {
        let (file, size) = open_append(&self.path)?;
        self.file = file;
        self.size = size;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

/// `path.n`
fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}
