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
//! [`Context::extract`] streams the tar into the directory (see [`crate::unpack`] for what is
//! refused), reads the Dockerfile (a missing `Dockerfile` falls back to `dockerfile`, as dockerd
//! does), then applies the ignore file (`<Dockerfile>.dockerignore` beside the Dockerfile, else
//! `.dockerignore`): ignored paths are removed from the directory, so COPY never sees them. The
//! Dockerfile and the ignore file were read before that, so the builder always has them, but
//! COPY sees them only when they are not ignored themselves (dockerd's `removeDockerfile`).

mod pack;
mod prune;

use std::io::{self, Cursor, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::compression::{self, Compression, BLOCK};
use crate::fsops::{self, Resolve};
use crate::ignore::{self, IgnoreError, Matcher};
use crate::unpack::{self, UnpackError, UnpackOptions};

pub use pack::pack_dir;

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
    #[error("applying {file}: {path}: {source}")]
    Prune {
        file: String,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("writing the context archive: {0}")]
    Pack(#[source] io::Error),
}

/// Sizes and time of an extraction, for the progress output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextStats {
    /// Bytes read from the request body (compressed, as sent).
    pub transferred: u64,
    /// Entries written (files, directories, links).
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Device nodes and FIFOs left out.
    pub skipped: u64,
    /// Paths removed because the ignore file excludes them.
    pub ignored: u64,
    pub elapsed: Duration,
}

/// An extracted build context.
#[derive(Debug)]
pub struct Context {
    dir: PathBuf,
    compression: Compression,
    dockerfile_path: String,
    dockerfile: Vec<u8>,
    ignore_file: Option<String>,
    ignore: Matcher,
    stats: ContextStats,
}

impl Context {
    /// Extracts the request body `reader` into `dir` (an existing, empty directory the caller
    /// owns and removes afterwards, also after an error) and finds the Dockerfile named
    /// `dockerfile_name` (a path inside the context; empty means `Dockerfile`).
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
        let top = fsops::open_top(dir).map_err(|source| ContextError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
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
            let opts = UnpackOptions {
                resolve: Resolve::NoSymlinks,
                owner: None,
                parent_owner: (0, 0),
            };
            let mut padded = Padded::new(Cursor::new(first).chain(decoded));
            let unpacked = unpack::unpack(&mut padded, top.as_fd(), opts)?;
            // The stream ended inside a block: as Go's tar reader, that is the end of the
            // archive only right after an entry's data (the docker CLI sends no padding and no
            // end blocks after the last entry when it adds a Dockerfile from outside the
            // context); anywhere else it is truncated.
            if let Some(end) = padded.unaligned_eof {
                if unpacked.data_end != end {
                    return Err(ContextError::Read(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the build context's tar ends in the middle of an entry",
                    )));
                }
            }
            stats.entries = unpacked.entries;
            stats.bytes = unpacked.bytes;
            stats.skipped = unpacked.skipped;
            find_dockerfile(dir, dockerfile_name, &dockerfile_components)?
        };
        if dockerfile.is_empty() {
            return Err(ContextError::EmptyDockerfile {
                path: dockerfile_name.to_string(),
            });
        }
        let (ignore_file, ignore) = read_ignore_file(dir, &dockerfile_path)?;
        if let Some(file) = &ignore_file {
            stats.ignored =
                prune::remove_ignored(top.as_fd(), &ignore).map_err(|(path, source)| {
                    ContextError::Prune {
                        file: file.clone(),
                        path,
                        source,
                    }
                })?;
        }
        stats.transferred = counted.count;
        stats.elapsed = start.elapsed();
        Ok(Context {
            dir: dir.to_path_buf(),
            compression,
            dockerfile_path,
            dockerfile,
            ignore_file,
            ignore,
            stats,
        })
    }

    /// The directory the context was extracted into.
    pub fn dir(&self) -> &Path {
        &self.dir
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

/// Reads the Dockerfile inside `dir`; symlinks resolve inside the context, as dockerd's
/// `FullPath` does.
fn find_dockerfile(
    dir: &Path,
    name: &str,
    components: &[std::ffi::OsString],
) -> Result<(String, Vec<u8>), ContextError> {
    let path = fsops::display(components);
    match read_in_context(dir, &path)? {
        Some(data) => Ok((path, data)),
        None if name == DEFAULT_DOCKERFILE => {
            let lower = name.to_lowercase();
            match read_in_context(dir, &lower)? {
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
    dir: &Path,
    dockerfile_path: &str,
) -> Result<(Option<String>, Matcher), ContextError> {
    for candidate in ignore::ignore_file_candidates(dockerfile_path) {
        let Some(data) = read_in_context(dir, &candidate)? else {
            continue;
        };
        let text = String::from_utf8_lossy(&data);
        let matcher = Matcher::from_dockerignore(&text).map_err(|source| ContextError::Ignore {
            file: candidate.clone(),
            source,
        })?;
        return Ok((Some(candidate), matcher));
    }
    Ok((None, Matcher::default()))
}

/// A regular file inside the context (symlinks resolved inside it), `None` when missing.
fn read_in_context(dir: &Path, rel: &str) -> Result<Option<Vec<u8>>, ContextError> {
    let read_error = |source: io::Error| ContextError::ReadFile {
        path: rel.to_string(),
        source,
    };
    let top = fsops::open_top(dir).map_err(|source| ContextError::Dir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK;
    let fd = match fsops::open_at(top.as_fd(), Path::new(rel), flags, Resolve::InRoot) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(None),
        Err(e) => return Err(read_error(e.into())),
    };
    let file = std::fs::File::from(fd);
    if !file.metadata().map_err(read_error)?.is_file() {
        return Ok(None);
    }
    let mut data = Vec::new();
    file.take(MAX_DOCKERFILE_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(read_error)?;
    if data.len() as u64 > MAX_DOCKERFILE_SIZE {
        return Err(ContextError::TooLarge {
            path: rel.to_string(),
        });
    }
    Ok(Some(data))
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
