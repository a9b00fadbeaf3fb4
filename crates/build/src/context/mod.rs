//! The build context as the classic `POST /build` API carries it: a tar stream (plain, gzip,
//! bzip2, xz or zstd, detected from the first bytes), or a body that is not an archive at all,
//! which is then the Dockerfile itself (BuildKit's `DetectContext`, which dockerd's API path
//! uses).
//!
//! ```no_run
//! # fn f(body: impl std::io::Read) -> Result<(), berth_build::context::ContextError> {
//! use berth_build::context::Context;
//! let ctx = Context::extract(body, std::path::Path::new("/var/lib/berth/tmp/ctx-1"), "Dockerfile")?;
//! let text = ctx.dockerfile();             // read before .dockerignore applied
//! let stats = ctx.stats();                 // for "transferring context: 2.05kB 0.1s"
//! # let _ = (text, stats); Ok(()) }
//! ```
//!
//! [`Context::extract`] reads the tar as it streams in: each entry goes into an index in memory
//! ([`tree`]; see [`crate::unpack`] for what is refused), each file's content is appended to one
//! spool file in the directory and hashed on the way. Nothing else is written: COPY reads the
//! files it copies from the spool, checksums come from the index, and only a `RUN
//! --mount=type=bind` of the context makes a directory of it ([`ContextFiles::materialise`]).
//! Then the Dockerfile is read (a missing `Dockerfile` falls back to `dockerfile`, as dockerd
//! does) and the ignore file applied (`<Dockerfile>.dockerignore` beside the Dockerfile, else
//! `.dockerignore`): ignored paths leave the index, so COPY never sees them. The Dockerfile and
//! the ignore file were read before that, so the builder always has them, but COPY sees them
//! only when they are not ignored themselves (dockerd's `removeDockerfile`).

mod pack;
pub(crate) mod tree;

use std::fs::File;
use std::io::{self, BufWriter, Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustix::fs::Timespec;

use crate::compression::{self, Compression, BLOCK};
use crate::copy::{CopyError, CopyRequest};
use crate::fsops;
use crate::ignore::{self, IgnoreError, Matcher};
use crate::sources::SourceRoot;
use crate::unpack::{UnpackError, UnpackStats};
use tree::{Body, SpoolWriter, Tree};

pub use pack::pack_dir;
pub use tree::MAX_CONTEXT_ENTRIES;

/// The largest Dockerfile or ignore file read into memory.
pub const MAX_DOCKERFILE_SIZE: u64 = 16 << 20;

/// The Dockerfile name when the request names none.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";

/// Errors of this module; the texts are dockerd's where it has one.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("forbidden path outside the build context: {path} ()")]
    OutsideContext { path: String },
    #[error("Cannot locate specified Dockerfile: {path}")]
    DockerfileNotFound { path: String },
    #[error("the Dockerfile ({path}) cannot be empty")]
    EmptyDockerfile { path: String },
    #[error("{path} is larger than {MAX_DOCKERFILE_SIZE} bytes")]
    TooLarge { path: String },
    #[error("reading {path}: {source}")]
    ReadFile {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("reading the build context: {0}")]
    Read(#[source] io::Error),
    #[error("opening the context directory {}: {source}", dir.display())]
    Dir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("extracting the build context: {0}")]
    Unpack(#[from] UnpackError),
    #[error("{file}: {source}")]
    Ignore {
        file: String,
        #[source]
        source: IgnoreError,
    },
    #[error("writing the context's files: {0}")]
    Materialise(#[source] Box<CopyError>),
    #[error("writing the context's spool: {0}")]
    Spool(#[source] io::Error),
    #[error("writing the context archive: {0}")]
    Pack(#[source] io::Error),
}

/// Sizes and time of an extraction, for the progress output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextStats {
    /// Bytes read from the request body (compressed, as sent).
    pub transferred: u64,
    /// Entries read (files, directories, links).
    pub entries: u64,
    /// Bytes of file content read.
    pub bytes: u64,
    /// Device nodes and FIFOs left out.
    pub skipped: u64,
    /// Paths removed because the ignore file excludes them.
    pub ignored: u64,
    pub elapsed: Duration,
}

/// A received build context.
#[derive(Debug)]
pub struct Context {
    files: Arc<ContextFiles>,
    compression: Compression,
    dockerfile_path: String,
    dockerfile: Vec<u8>,
    ignore_file: Option<String>,
    ignore: Matcher,
    stats: ContextStats,
}

impl Context {
    /// Reads the request body `reader` (its files' contents go to a spool file in `dir`, an
    /// existing, empty directory the caller owns and removes afterwards, also after an error)
    /// and finds the Dockerfile named `dockerfile_name` (a path inside the context; empty means
    /// `Dockerfile`).
    pub fn extract(
        reader: impl Read,
        dir: &Path,
        dockerfile_name: &str,
    ) -> Result<Context, ContextError> {
        let start = Instant::now();
        let dockerfile_name = match dockerfile_name {
            "" => DEFAULT_DOCKERFILE,
            name => name,
        };
        let Some(dockerfile_components) = fsops::components(dockerfile_name.as_bytes(), false)
        else {
            return Err(ContextError::OutsideContext {
                path: dockerfile_name.to_string(),
            });
        };
        let dir_error = |source| ContextError::Dir {
            dir: dir.to_path_buf(),
            source,
        };
        let spool = File::options()
            .read(true)
            .append(true)
            .create_new(true)
            .open(dir.join("spool"))
            .map_err(dir_error)?;
        let mut counted = CountingReader {
            inner: reader,
            count: 0,
        };
        let (compression, mut decoded) =
            compression::decompress(&mut counted).map_err(ContextError::Read)?;
        let mut first = vec![0u8; BLOCK];
        let n = compression::read_up_to(&mut decoded, &mut first).map_err(ContextError::Read)?;
        first.truncate(n);
        let mut stats = ContextStats::default();
        let lone_dockerfile = compression == Compression::None
            && !first.is_empty()
            && !compression::is_tar_start(&first);
        let mut files = ContextFiles {
            dir: dir.to_path_buf(),
            spool,
            tree: Tree::new(now()),
            materialised: Mutex::new(false),
        };
        let (dockerfile_path, dockerfile) = if lone_dockerfile {
            // The body is the Dockerfile; the context is empty.
            let mut data = Vec::new();
            Cursor::new(first)
                .chain(decoded)
                .take(MAX_DOCKERFILE_SIZE + 1)
                .read_to_end(&mut data)
                .map_err(ContextError::Read)?;
            if data.len() as u64 > MAX_DOCKERFILE_SIZE {
                return Err(ContextError::TooLarge {
                    path: dockerfile_name.to_string(),
                });
            }
            (fsops::display(&dockerfile_components), data)
        } else {
            let mut padded = Padded::new(Cursor::new(first).chain(decoded));
            let mut writer = SpoolWriter::new(BufWriter::with_capacity(1 << 20, &files.spool));
            let received = receive(&mut padded, &mut files.tree, &mut writer)?;
            writer.into_inner().flush().map_err(ContextError::Spool)?;
            // The stream ended inside a block: as Go's tar reader, that is the end of the
            // archive only right after an entry's data (the docker CLI sends no padding and no
            // end blocks after the last entry when it adds a Dockerfile from outside the
            // context); anywhere else it is truncated.
            if let Some(end) = padded.unaligned_eof {
                if received.data_end != end {
                    return Err(ContextError::Read(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the build context's tar ends in the middle of an entry",
                    )));
                }
            }
            stats.entries = received.entries;
            stats.bytes = received.bytes;
            stats.skipped = received.skipped;
            files.find_dockerfile(dockerfile_name, &dockerfile_components)?
        };
        if dockerfile.is_empty() {
            return Err(ContextError::EmptyDockerfile {
                path: dockerfile_name.to_string(),
            });
        }
        let (ignore_file, ignore) = files.read_ignore_file(&dockerfile_path)?;
        stats.ignored = files.tree.remove_ignored(&ignore);
        stats.transferred = counted.count;
        stats.elapsed = start.elapsed();
        Ok(Context {
            files: Arc::new(files),
            compression,
            dockerfile_path,
            dockerfile,
            ignore_file,
            ignore,
            stats,
        })
    }

    /// The context's files, for COPY, ADD and `RUN --mount=type=bind`.
    pub fn files(&self) -> BuildContext {
        BuildContext::Received(Arc::clone(&self.files))
    }

    /// How the body was compressed.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The Dockerfile's path inside the context, cleaned (`dockerfile` when the lowercase
    /// fallback was taken).
    pub fn dockerfile_path(&self) -> &str {
        &self.dockerfile_path
    }

    /// The Dockerfile's bytes.
    pub fn dockerfile(&self) -> &[u8] {
        &self.dockerfile
    }

    /// The ignore file that applied, if any (`Dockerfile.dockerignore` or `.dockerignore`).
    pub fn ignore_file(&self) -> Option<&str> {
        self.ignore_file.as_deref()
    }

    /// The ignore patterns that applied (empty without an ignore file).
    pub fn ignore(&self) -> &Matcher {
        &self.ignore
    }

    pub fn stats(&self) -> &ContextStats {
        &self.stats
    }
}

/// Where COPY finds its files: a directory, or the context as received.
#[derive(Debug, Clone)]
pub enum BuildContext {
    Dir(PathBuf),
    Received(Arc<ContextFiles>),
}

impl Default for BuildContext {
    fn default() -> BuildContext {
        BuildContext::Dir(PathBuf::new())
    }
}

impl BuildContext {
    /// The root COPY and checksums read.
    pub fn source(&self) -> SourceRoot<'_> {
        match self {
            BuildContext::Dir(dir) => SourceRoot::Dir(dir),
            BuildContext::Received(files) => SourceRoot::Context(files),
        }
    }

    /// A directory holding the context's files (written out on the first call for a received
    /// context).
    pub fn dir(&self) -> Result<PathBuf, ContextError> {
        match self {
            BuildContext::Dir(dir) => Ok(dir.clone()),
            BuildContext::Received(files) => files.materialise(),
        }
    }
}

/// The files of a received context: the index and the spool of contents.
#[derive(Debug)]
pub struct ContextFiles {
    dir: PathBuf,
    spool: File,
    tree: Tree,
    /// Whether [`ContextFiles::materialise`] has written the files out.
    materialised: Mutex<bool>,
}

impl ContextFiles {
    pub(crate) fn tree(&self) -> &Tree {
        &self.tree
    }

    pub(crate) fn spool(&self) -> &File {
        &self.spool
    }

    /// Writes the files out (ignored ones left out) into `files/` of the context's directory,
    /// once, and returns that directory.
    pub fn materialise(&self) -> Result<PathBuf, ContextError> {
        let out = self.dir.join("files");
        let mut done = self
            .materialised
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*done {
            let dir_error = |source| ContextError::Dir {
                dir: out.clone(),
                source,
            };
            match std::fs::remove_dir_all(&out) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(dir_error(e)),
                _ => {}
            }
            std::fs::create_dir(&out).map_err(dir_error)?;
            let sources = [".".to_string()];
            let req = CopyRequest {
                sources: &sources,
                preserve_owner: true,
                ..CopyRequest::new("COPY")
            };
            crate::copy::copy(SourceRoot::Context(self), &out, &req)
                .map_err(|e| ContextError::Materialise(Box::new(e)))?;
            *done = true;
        }
        Ok(out)
    }

    /// Reads the Dockerfile; symlinks resolve inside the context, as dockerd's `FullPath`
    /// does.
    fn find_dockerfile(
        &self,
        name: &str,
        components: &[std::ffi::OsString],
    ) -> Result<(String, Vec<u8>), ContextError> {
        let path = fsops::display(components);
        match self.read_file(&path)? {
            Some(data) => Ok((path, data)),
            None if name == DEFAULT_DOCKERFILE => {
                let lower = name.to_lowercase();
                match self.read_file(&lower)? {
                    Some(data) => Ok((lower, data)),
                    None => Err(ContextError::DockerfileNotFound {
                        path: name.to_string(),
                    }),
                }
            }
            None => Err(ContextError::DockerfileNotFound {
                path: name.to_string(),
            }),
        }
    }

    /// The first ignore file that exists, and its patterns.
    fn read_ignore_file(
        &self,
        dockerfile_path: &str,
    ) -> Result<(Option<String>, Matcher), ContextError> {
        for candidate in ignore::ignore_file_candidates(dockerfile_path) {
            let Some(data) = self.read_file(&candidate)? else {
                continue;
            };
            let text = String::from_utf8_lossy(&data);
            let matcher =
                Matcher::from_dockerignore(&text).map_err(|source| ContextError::Ignore {
                    file: candidate.clone(),
                    source,
                })?;
            return Ok((Some(candidate), matcher));
        }
        Ok((None, Matcher::default()))
    }

    /// A regular file of the context (symlinks resolved inside it), `None` when missing.
    fn read_file(&self, rel: &str) -> Result<Option<Vec<u8>>, ContextError> {
        let components = fsops::components(rel.as_bytes(), true).unwrap_or_default();
        let Ok(id) = self.tree.lookup(&components, true) else {
            return Ok(None);
        };
        let Some(Body::File { offset, size, .. }) = self.tree.inode(id).map(|i| &i.body) else {
            return Ok(None);
        };
        if *size > MAX_DOCKERFILE_SIZE {
            return Err(ContextError::TooLarge {
                path: rel.to_string(),
            });
        }
        let mut data = vec![0u8; usize::try_from(*size).unwrap_or(0)];
        std::os::unix::fs::FileExt::read_exact_at(&self.spool, &mut data, *offset).map_err(
            |source| ContextError::ReadFile {
                path: rel.to_string(),
                source,
            },
        )?;
        Ok(Some(data))
    }
}

/// Reads the (already decompressed) tar `reader` into `tree` and `spool`. Whatever follows the
/// end-of-archive blocks is read too (and dropped), so a request body is consumed whole.
fn receive<W: Write>(
    reader: impl Read,
    tree: &mut Tree,
    spool: &mut SpoolWriter<W>,
) -> Result<UnpackStats, UnpackError> {
    let now = now();
    let mut archive = tar::Archive::new(reader);
    let mut stats = UnpackStats::default();
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        stats.data_end = entry.raw_file_position() + entry.size();
        tree.add(&mut entry, spool, &mut stats, now)?;
    }
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(UnpackError::Read)?;
    Ok(stats)
}

fn now() -> Timespec {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(0),
        tv_nsec: d.subsec_nanos().into(),
    }
}

/// Counts the bytes read through it.
struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
pub(crate) mod tests;

/// A tar stream completed at its end: when the source ends inside a 512-byte block, zeros up
/// to the block's end and two zero blocks (the end of the archive) follow, and where it ended
/// is kept for the caller to check.
struct Padded<R> {
    inner: R,
    pos: u64,
    /// Zero bytes still to give after the source's end.
    padding: u64,
    ended: bool,
    unaligned_eof: Option<u64>,
}

impl<R: Read> Padded<R> {
    fn new(inner: R) -> Padded<R> {
        Padded {
            inner,
            pos: 0,
            padding: 0,
            ended: false,
            unaligned_eof: None,
        }
    }
}

impl<R: Read> Read for Padded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.ended {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.pos += n as u64;
                return Ok(n);
            }
            self.ended = true;
            let block = BLOCK as u64;
            let rest = self.pos % block;
            if rest != 0 {
                self.unaligned_eof = Some(self.pos);
                self.padding = block - rest + 2 * block;
            }
        }
        let n = buf
            .len()
            .min(usize::try_from(self.padding).unwrap_or(usize::MAX));
        buf.iter_mut().take(n).for_each(|b| *b = 0);
        self.padding -= n as u64;
        Ok(n)
    }
}
