//! File-system helpers for cgroupfs: reads, writes, `mkdir -p` and bounded
//! `rmdir`, each failure carrying the file (and, for writes, the value).
//!
//! Error messages read like
//! `writing "100" to /sys/fs/cgroup/memory/x/memory.limit_in_bytes: Device or resource busy`.

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A failed file-system operation on a cgroup file or directory.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// Writing a value to a cgroup file failed.
    #[error("writing {value:?} to {}: {}", path.display(), describe(err))]
    Write {
        /// The file written to.
        path: PathBuf,
        /// The value that was written.
        value: String,
        /// The underlying error.
        err: io::Error,
    },
    /// Reading a cgroup file failed.
    #[error("reading {}: {}", path.display(), describe(err))]
    Read {
        /// The file read.
        path: PathBuf,
        /// The underlying error.
        err: io::Error,
    },
    /// A cgroup file held something we could not parse.
    #[error("parsing {}: unexpected content {content:?}: {reason}", path.display())]
    Parse {
        /// The file read.
        path: PathBuf,
        /// The content (or the offending part of it).
        content: String,
        /// What was expected.
        reason: String,
    },
    /// Creating a cgroup directory failed.
    #[error("creating directory {}: {}", path.display(), describe(err))]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        err: io::Error,
    },
    /// Removing a cgroup directory failed (after retries when busy).
    #[error("removing directory {}: {}", path.display(), describe(err))]
    RemoveDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        err: io::Error,
    },
    /// Listing a cgroup directory failed.
    #[error("listing directory {}: {}", path.display(), describe(err))]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        err: io::Error,
    },
}

impl FsError {
    /// The OS error behind this failure, when there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Self::Write { err, .. }
            | Self::Read { err, .. }
            | Self::CreateDir { err, .. }
            | Self::RemoveDir { err, .. }
            | Self::ReadDir { err, .. } => Some(err),
            Self::Parse { .. } => None,
        }
    }

    /// The raw errno behind this failure, when there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.io_error().and_then(io::Error::raw_os_error)
    }

    /// Whether the failure is "no such file or directory".
    pub fn is_not_found(&self) -> bool {
        self.io_error()
            .is_some_and(|e| e.kind() == ErrorKind::NotFound)
    }
}

/// `Device or resource busy` rather than `Device or resource busy (os error 16)`.
fn describe(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}

/// Writes `value` to `path` in a single `write(2)`, as cgroupfs expects.
pub fn write(path: &Path, value: &str) -> Result<(), FsError> {
    // No `create`: cgroup files exist when supported. O_TRUNC as runc does.
    let res = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| io::Write::write_all(&mut f, value.as_bytes()));
    res.map_err(|err| FsError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        err,
    })
}

/// Writes `value` to `dir/file`.
pub fn write_in(dir: &Path, file: &str, value: &str) -> Result<(), FsError> {
    write(&dir.join(file), value)
}

/// Writes `value` to `dir/file` if that file exists; returns whether it did.
pub fn write_if_exists(dir: &Path, file: &str, value: &str) -> Result<bool, FsError> {
    match write_in(dir, file, value) {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads a whole cgroup file.
pub fn read(path: &Path) -> Result<String, FsError> {
    std::fs::read_to_string(path).map_err(|err| FsError::Read {
        path: path.to_path_buf(),
        err,
    })
}

/// Reads `dir/file`.
pub fn read_in(dir: &Path, file: &str) -> Result<String, FsError> {
    read(&dir.join(file))
}

/// Reads `dir/file`, or `None` when it does not exist.
pub fn read_opt(dir: &Path, file: &str) -> Result<Option<String>, FsError> {
    match read_in(dir, file) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads `dir/file` as one unsigned number; `max` reads as `u64::MAX`.
pub fn read_u64(dir: &Path, file: &str) -> Result<u64, FsError> {
    let path = dir.join(file);
    let text = read(&path)?;
    parse_u64(text.trim()).ok_or_else(|| FsError::Parse {
        path,
        content: text.trim().to_string(),
        reason: "expected an unsigned integer or \"max\"".to_string(),
    })
}

/// Like [`read_u64`], but a missing file reads as `None`.
pub fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>, FsError> {
    match read_u64(dir, file) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses a cgroup number; `max` is `u64::MAX`, and the v1 "unlimited"
/// values close to `i64::MAX` are kept as they are.
pub fn parse_u64(s: &str) -> Option<u64> {
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// Creates `path` and any missing parents (`mkdir -p`).
pub fn create_dir_all(path: &Path) -> Result<(), FsError> {
    std::fs::create_dir_all(path).map_err(|err| FsError::CreateDir {
        path: path.to_path_buf(),
        err,
    })
}

/// Creates one directory; an existing one is fine.
pub fn create_dir(path: &Path) -> Result<(), FsError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(FsError::CreateDir {
            path: path.to_path_buf(),
            err,
        }),
    }
}

/// Lists the sub-directories of a cgroup directory (its child cgroups).
pub fn child_dirs(path: &Path) -> Result<Vec<PathBuf>, FsError> {
    let to_err = |err| FsError::ReadDir {
        path: path.to_path_buf(),
        err,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).map_err(to_err)? {
        let entry = entry.map_err(to_err)?;
        if entry.file_type().map_err(to_err)?.is_dir() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Removes a cgroup directory and its child cgroups, deepest first.
///
/// `EBUSY` (tasks still leaving, or a zombie being reaped) is retried with a
/// growing delay until `deadline`; after it each directory gets one try.
/// A missing directory is fine.
pub fn remove_cgroup_dir(path: &Path, deadline: Instant) -> Result<(), FsError> {
    let children = match child_dirs(path) {
        Ok(c) => c,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    for child in children {
        remove_cgroup_dir(&child, deadline)?;
    }
    let mut delay = Duration::from_millis(5);
    loop {
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(()),
            Err(err)
                if err.raw_os_error() == Some(nix::libc::EBUSY) && Instant::now() < deadline =>
            {
                sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            Err(err) => {
                return Err(FsError::RemoveDir {
                    path: path.to_path_buf(),
                    err,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_error_names_file_and_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing").join("memory.limit_in_bytes");
        let err = write(&path, "100").expect_err("must fail");
        assert_eq!(
            err.to_string(),
            format!(
                "writing \"100\" to {}: No such file or directory",
                path.display()
            )
        );
        assert!(err.is_not_found());
    }

    #[test]
    fn parse_numbers() {
        assert_eq!(parse_u64("max"), Some(u64::MAX));
        assert_eq!(parse_u64("42"), Some(42));
        assert_eq!(parse_u64("-1"), None);
    }

    #[test]
    fn remove_missing_dir_is_ok() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = dir.path().join("gone");
        remove_cgroup_dir(&gone, Instant::now()).expect("missing is fine");
        let nested = dir.path().join("a/b/c");
        create_dir_all(&nested).expect("mkdir");
        remove_cgroup_dir(&dir.path().join("a"), Instant::now()).expect("rmdir");
        assert!(!dir.path().join("a").exists());
    }
}
