//! The per-ingest lock: an exclusive `flock(2)` on `<ingest>/<ref>/lock`, held by the
//! [`Writer`](super::Writer) for as long as it lives. The kernel releases it when the owning
//! descriptor closes, so a writer whose process dies never leaves a ref locked.
//!
//! The lock file is deleted together with its ingest directory while the lock is held; a
//! waiter that then obtains the lock on the unlinked inode notices (the path no longer names
//! the inode it locked) and reports [`Acquire::Stale`] so the caller starts over.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use rustix::fs::{flock, fstat, stat, FlockOperation};
use rustix::io::Errno;

/// An exclusive lock on one ingest; released when dropped.
#[derive(Debug)]
pub(crate) struct IngestLock {
    _file: File,
}

/// The outcome of one attempt to take a lock.
#[derive(Debug)]
pub(crate) enum Acquire {
    /// The lock is ours.
    Acquired(IngestLock),
    /// Another writer (in this or another process) holds it.
    Busy,
    /// The lock file was removed or replaced while we were taking it: try again.
    Stale,
}

impl IngestLock {
    /// Tries once, without waiting, to lock the file at `path` (created if missing).
    pub(crate) fn try_acquire(path: &Path) -> io::Result<Acquire> {
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
        {
            Ok(f) => f,
            // The ingest directory vanished under us (committed or cleaned): start over.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Acquire::Stale),
            Err(e) => return Err(e),
        };
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => return Ok(Acquire::Busy),
            Err(e) => return Err(e.into()),
        }
        let held = fstat(&file)?;
        match stat(path) {
            Ok(now) if now.st_dev == held.st_dev && now.st_ino == held.st_ino => {
                Ok(Acquire::Acquired(IngestLock { _file: file }))
            }
            Ok(_) | Err(Errno::NOENT) => Ok(Acquire::Stale),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_busy_until_first_fd_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = match IngestLock::try_acquire(&path).unwrap() {
            Acquire::Acquired(l) => l,
            other => panic!("expected lock, got {other:?}"),
        };
        assert!(matches!(
            IngestLock::try_acquire(&path).unwrap(),
            Acquire::Busy
        ));
        drop(first);
        assert!(matches!(
            IngestLock::try_acquire(&path).unwrap(),
            Acquire::Acquired(_)
        ));
    }

    #[test]
    fn lock_in_removed_directory_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone").join("lock");
        assert!(matches!(
            IngestLock::try_acquire(&missing).unwrap(),
            Acquire::Stale
        ));
    }
}
