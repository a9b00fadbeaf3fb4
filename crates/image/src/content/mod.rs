//! The content store, after containerd's: blobs addressed by their sha256 digest.
//!
//! Layout under the store's root:
//! - `blobs/sha256/<hex>`: committed blobs, immutable and read-only;
//! - `ingest/<sha256 of ref>/`: a write in progress (`data`, `lock`, `expected`, `ref`). The
//!   directory is named by the digest of the ref so any ref string is a safe name; the `ref`
//!   file keeps the ref for humans.
//!
//! Data only becomes visible in `blobs/` through the rename in [`Writer::commit`], after its
//! size and digest have been checked, so readers never see a half-written blob.

mod lock;
mod writer;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::digest::{Digest, DigestWriter};
use lock::{Acquire, IngestLock};
pub use writer::Writer;

/// How many times [`Store::writer`] starts over when its ingest vanishes under it (another
/// writer committed or a cleaner removed it between our open and our lock).
const STALE_RETRIES: usize = 32;

/// Errors of the content store.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("content {0}: not found")]
    NotFound(Digest),
    #[error("content {0}: already exists")]
    AlreadyExists(Digest),
    #[error("ingest {reference:?} is in use by another writer")]
    InUse { reference: String },
    #[error("invalid ingest ref {0:?}: must not be empty")]
    InvalidRef(String),
    #[error("digest mismatch for {reference}: expected {expected}, got {actual}")]
    DigestMismatch {
        reference: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("size mismatch for {reference}: expected {expected}, got {actual}")]
    SizeMismatch {
        reference: String,
        expected: u64,
        actual: u64,
    },
}

/// Wraps an I/O error with what was being done and on which path.
pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ContentError {
    let path = path.to_path_buf();
    move |source| ContentError::Io { op, path, source }
}

/// What the store knows about a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub digest: Digest,
    pub size: u64,
}

/// A content store rooted at one directory. Cheap to clone; clones share the directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the store at `root`, creating its directories if needed.
    pub fn open(root: &Path) -> Result<Store, ContentError> {
        let store = Store {
            root: root.to_path_buf(),
        };
        for dir in [store.blobs_dir(), store.ingest_dir()] {
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives (whether or not it is there).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// Whether the blob is committed.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// The blob's size.
    pub fn info(&self, digest: &Digest) -> Result<Info, ContentError> {
        let path = self.path(digest);
        let meta = fs::metadata(&path).map_err(self.not_found(digest, "stat", &path))?;
        Ok(Info {
            digest: digest.clone(),
            size: meta.len(),
        })
    }

    /// Opens the blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, ContentError> {
        let path = self.path(digest);
        File::open(&path).map_err(self.not_found(digest, "open", &path))
    }

    /// Reads a whole blob; meant for small ones (manifests, configs).
    pub fn read_to_vec(&self, digest: &Digest) -> Result<Vec<u8>, ContentError> {
        let path = self.path(digest);
        fs::read(&path).map_err(self.not_found(digest, "read", &path))
    }

    /// Starts, or resumes, the write keyed by `reference` (e.g. `pull-<digest>`) of content
    /// expected to have `expected` digest and, if given, `size` bytes.
    ///
    /// Resuming re-hashes the data already in the ingest; [`Writer::offset`] says how much
    /// there is. An ingest begun for a different digest is started over. Fails with
    /// [`ContentError::InUse`] while another writer holds the ref, and with
    /// [`ContentError::AlreadyExists`] if the blob is already committed (nothing to write).
    pub fn writer(
        &self,
        reference: &str,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<Writer, ContentError> {
        if reference.is_empty() {
            return Err(ContentError::InvalidRef(reference.to_string()));
        }
        if self.contains(expected) {
            return Err(ContentError::AlreadyExists(expected.clone()));
        }
        let dir = self
            .ingest_dir()
            .join(Digest::of(reference.as_bytes()).hex());
        let lock_path = dir.join("lock");
        for _ in 0..STALE_RETRIES {
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
            let lock =
                match IngestLock::try_acquire(&lock_path).map_err(io_err("lock", &lock_path))? {
                    Acquire::Acquired(lock) => lock,
                    Acquire::Busy => {
                        return Err(ContentError::InUse {
                            reference: reference.to_string(),
                        })
                    }
                    Acquire::Stale => continue,
                };
            let (file, hash) = writer::open_data(&dir, reference, expected, size)?;
            return Ok(Writer {
                store: self.clone(),
                reference: reference.to_string(),
                dir,
                expected: expected.clone(),
                size,
                file,
                hash,
                _lock: lock,
            });
        }
        Err(ContentError::InUse {
            reference: reference.to_string(),
        })
    }

    /// Stores `data` and returns its digest; a no-op if the blob is already there.
    pub fn write_blob(&self, data: &[u8]) -> Result<Digest, ContentError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let digest = Digest::of(data);
        // A ref of our own: concurrent stores of the same data must not collide on the lock.
        let reference = format!(
            "write-{}-{}-{}",
            digest.hex(),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut w = match self.writer(&reference, &digest, Some(data.len() as u64)) {
            Ok(w) => w,
            Err(ContentError::AlreadyExists(d)) => return Ok(d),
            Err(e) => return Err(e),
        };
        let ingest = w.dir.join("data");
        io::Write::write_all(&mut w, data).map_err(io_err("write", &ingest))?;
        w.commit()
    }

    /// Removes the blob.
    pub fn delete(&self, digest: &Digest) -> Result<(), ContentError> {
        let path = self.path(digest);
        fs::remove_file(&path).map_err(self.not_found(digest, "remove", &path))?;
        Ok(())
    }

    /// The digests of all committed blobs, sorted.
    pub fn list(&self) -> Result<Vec<Digest>, ContentError> {
        let dir = self.blobs_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
            let entry = entry.map_err(io_err("list", &dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Ok(d) = format!("sha256:{name}").parse::<Digest>() {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes ingests untouched for longer than `age` and not held by a writer (abandoned
    /// downloads). Returns how many were removed.
    pub fn clean_ingest(&self, age: Duration) -> Result<usize, ContentError> {
        let ingest = self.ingest_dir();
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in fs::read_dir(&ingest).map_err(io_err("list", &ingest))? {
            let dir = entry.map_err(io_err("list", &ingest))?.path();
            if !dir.is_dir() {
                continue;
            }
            let lock_path = dir.join("lock");
            let _lock =
                match IngestLock::try_acquire(&lock_path).map_err(io_err("lock", &lock_path))? {
                    Acquire::Acquired(lock) => lock,
                    Acquire::Busy | Acquire::Stale => continue,
                };
            let touched = [dir.join("data"), dir.clone()]
                .iter()
                .filter_map(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
                .max();
            let old =
                touched.is_none_or(|t| now.duration_since(t).unwrap_or(Duration::ZERO) >= age);
            if old {
                match fs::remove_dir_all(&dir) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("remove ingest", &dir)(e)),
                }
            }
        }
        Ok(removed)
    }

    /// Re-hashes every blob and returns those whose content no longer matches their digest.
    pub fn verify_all(&self) -> Result<Vec<Digest>, ContentError> {
        let mut bad = Vec::new();
        for digest in self.list()? {
            let path = self.path(&digest);
            let mut file = match File::open(&path) {
                Ok(f) => f,
                // Deleted while we were listing: not corrupt.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("open", &path)(e)),
            };
            let size = file.metadata().map_err(io_err("stat", &path))?.len();
            let mut hash = DigestWriter::new(io::sink());
            io::copy(&mut file, &mut hash).map_err(io_err("read", &path))?;
            let read = hash.size();
            if read != size || hash.finish().0 != digest {
                bad.push(digest);
            }
        }
        Ok(bad)
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    /// Maps ENOENT on a blob to [`ContentError::NotFound`], other errors to `Io`.
    fn not_found(
        &self,
        digest: &Digest,
        op: &'static str,
        path: &Path,
    ) -> impl FnOnce(io::Error) -> ContentError {
        let digest = digest.clone();
        let wrap = io_err(op, path);
        move |e| {
            if e.kind() == io::ErrorKind::NotFound {
                ContentError::NotFound(digest)
            } else {
                wrap(e)
            }
        }
    }
}
