//! Writes in progress: a [`Writer`] appends to `<ingest>/<ref>/data` while hashing, and
//! [`Writer::commit`] checks size and digest, makes the file read-only and durable, and renames
//! it into `blobs/` — the only step that makes a blob visible.
//!
//! A writer dropped without commit (or whose process dies) leaves its data behind; opening the
//! same ref again resumes from [`Writer::offset`], re-hashing what is already there.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::lock::IngestLock;
use super::{io_err, ContentError, Store};
use crate::digest::{Digest, DigestWriter};

/// A write in progress, keyed by a ref and holding that ref's lock.
#[derive(Debug)]
pub struct Writer {
    pub(super) store: Store,
    pub(super) reference: String,
    pub(super) dir: PathBuf,
    pub(super) expected: Digest,
    pub(super) size: Option<u64>,
    pub(super) file: File,
    pub(super) hash: DigestWriter<io::Sink>,
    pub(super) _lock: IngestLock,
}

impl Writer {
    /// Bytes already written (by this writer or an interrupted one before it). A resuming
    /// caller fetches the rest from here.
    pub fn offset(&self) -> u64 {
        self.hash.size()
    }

    /// The ref this write is keyed by.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// The digest the content must have.
    pub fn expected(&self) -> &Digest {
        &self.expected
    }

    /// The digest of what was written so far (a caller can check content without committing
    /// it).
    pub fn written_digest(&self) -> Digest {
        self.hash.current()
    }

    /// Checks size and digest, then moves the data into `blobs/` atomically (fsynced,
    /// read-only). On a mismatch the ingest is removed and nothing is stored. If the blob
    /// already exists the write succeeds and the ingest is dropped.
    pub fn commit(mut self) -> Result<Digest, ContentError> {
        let data = self.dir.join("data");
        self.file.flush().map_err(io_err("flush", &data))?;
        let actual_size = self.hash.size();
        if let Some(expected) = self.size.filter(|&s| s != actual_size) {
            self.remove_ingest()?;
            return Err(ContentError::SizeMismatch {
                reference: self.reference,
                expected,
                actual: actual_size,
            });
        }
        let actual = std::mem::replace(&mut self.hash, DigestWriter::new(io::sink()))
            .finish()
            .0;
        if actual != self.expected {
            self.remove_ingest()?;
            return Err(ContentError::DigestMismatch {
                reference: self.reference,
                expected: self.expected,
                actual,
            });
        }
        let target = self.store.path(&actual);
        if target.exists() {
            self.remove_ingest()?;
            return Ok(actual);
        }
        self.file
            .set_permissions(Permissions::from_mode(0o444))
            .map_err(io_err("chmod", &data))?;
        self.file.sync_all().map_err(io_err("fsync", &data))?;
        fs::rename(&data, &target).map_err(io_err("rename into blobs", &target))?;
        let blobs = self.store.blobs_dir();
        File::open(&blobs)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync", &blobs))?;
        // The blob is in; a leftover ingest directory (now without data) is harmless and goes
        // with the next `clean_ingest`.
        let _ = self.remove_ingest();
        Ok(actual)
    }

    /// Gives up this write: its data is removed instead of kept for a resume (for content
    /// that turned out to be bad).
    pub fn abort(self) -> Result<(), ContentError> {
        self.remove_ingest()
    }

    /// Removes this ingest's directory (its lock file with it) while the lock is still held.
    fn remove_ingest(&self) -> Result<(), ContentError> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove ingest", &self.dir)(e)),
        }
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.hash.size();
        if let Some(size) = self.size.filter(|&s| written + buf.len() as u64 > s) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "write past the expected size of {} ({size} bytes) for {}",
                    self.expected, self.reference
                ),
            ));
        }
        let n = self.file.write(buf)?;
        self.hash.write_all(&buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Opens (creating or resuming) the data file of an ingest whose lock the caller holds, and
/// hashes what is already there. An ingest begun for another digest, or already longer than
/// the expected size, is started over.
pub(super) fn open_data(
    dir: &std::path::Path,
    reference: &str,
    expected: &Digest,
    size: Option<u64>,
) -> Result<(File, DigestWriter<io::Sink>), ContentError> {
    let data = dir.join("data");
    let expected_path = dir.join("expected");
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(&data)
        .map_err(io_err("open", &data))?;
    let recorded = match fs::read_to_string(&expected_path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("read", &expected_path)(e)),
    };
    let len = file.metadata().map_err(io_err("stat", &data))?.len();
    let same_target = recorded.as_deref() == Some(expected.to_string().as_str());
    let fits = size.is_none_or(|s| len <= s);
    if !(same_target && fits) {
        file.set_len(0).map_err(io_err("truncate", &data))?;
        fs::write(&expected_path, expected.to_string()).map_err(io_err("write", &expected_path))?;
        let ref_path = dir.join("ref");
        fs::write(&ref_path, reference).map_err(io_err("write", &ref_path))?;
    }
    let mut hash = DigestWriter::new(io::sink());
    io::copy(&mut &file, &mut hash).map_err(io_err("re-hash", &data))?;
    Ok((file, hash))
}
