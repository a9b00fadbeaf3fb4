//! Performing COPY and ADD into a step's root filesystem, with Docker's semantics.
//!
//! ```no_run
//! # fn f() -> Result<(), berth_build::copy::CopyError> {
//! use berth_build::copy::{copy, CopyRequest};
//! let req = CopyRequest {
//!     sources: &["src/".into(), "*.toml".into()],
//!     dest: "/app/",                      // absolute: the caller resolved it against WORKDIR
//!     chown: Some("app:staff"),
//!     ..CopyRequest::new("COPY")
//! };
//! let src = berth_build::sources::SourceRoot::Dir("/ctx".as_ref());
//! let stats = copy(src, "/snapshots/42/fs".as_ref(), &req)?;
//! # let _ = stats; Ok(()) }
//! ```
//!
//! * A source directory copies its contents, not itself; a file goes to `dest` itself, or into
//!   it when `dest` ends with `/` or is an existing directory. More than one source (after
//!   wildcards) needs a `dest` ending with `/`.
//! * `--parents` keeps each source's path (from a `/./` pivot on, when there is one).
//! * `--exclude` patterns leave out matching paths below a copied directory, and wildcard
//!   matches by name.
//! * Everything written, and every directory created on the way, is owned by `--chown`'s user
//!   (looked up in the destination's own `/etc/passwd` and `/etc/group`), else by 0:0, as the
//!   classic builder does. Modes are the source's unless `--chmod` gives one; created parent
//!   directories are 0755. Files and directories keep the source's mtime and xattrs.
//!   Files linked more than once inside what is copied stay hardlinked.
//! * ADD extracts a local tar (plain, gzip, bzip2, xz, zstd) into `dest` as a directory; the
//!   tar's owners are kept unless `--chown` is given. [`add_downloaded`] writes an `ADD <url>`
//!   file the caller fetched.
//! * Errors carry the classic builder's words; the caller prefixes `COPY failed: ` where dockerd
//!   does (source errors).

mod chown;
mod writer;

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::SystemTime;

use rustix::fs::{Mode, OFlags, Timespec, Timestamps};

use crate::compression;
use crate::fsops::{self, Components};
use crate::ignore::Matcher;
use crate::sources::{Attrs, Content, Node, Opened, SourceError, SourceMatch, SourceRoot};
use crate::unpack::{self, UnpackError, UnpackOptions};
use writer::{write_error, Writer};

/// Errors of COPY/ADD.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("When using {instruction} with more than one source file, the destination must be a directory and end with a /")]
    MultipleSources { instruction: String },
    #[error("unable to convert uid/gid chown string to host mapping: {0}")]
    Chown(String),
    #[error("invalid chmod parameter: {0}")]
    Chmod(String),
    #[error("cannot determine filename for source {0}")]
    NoFileName(String),
    #[error("opening {path}: {source}")]
    Root {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("copying to {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("extracting {archive} to {dest}: {source}")]
    Extract {
        archive: String,
        dest: String,
        #[source]
        source: UnpackError,
    },
}

/// One COPY or ADD, its arguments already expanded.
#[derive(Debug, Clone, Copy)]
pub struct CopyRequest<'a> {
    /// `COPY` or `ADD`, for messages.
    pub instruction: &'a str,
    pub sources: &'a [String],
    /// Absolute path in the destination root; a trailing `/` makes it a directory.
    pub dest: &'a str,
    pub chown: Option<&'a str>,
    /// Octal, e.g. `755`.
    pub chmod: Option<&'a str>,
    pub parents: bool,
    pub excludes: &'a [String],
    /// ADD of local sources: extract tar archives.
    pub extract_archives: bool,
    /// Without `--chown`, keep each source entry's owner (`COPY --from`, as the classic
    /// builder) instead of 0:0.
    pub preserve_owner: bool,
}

impl<'a> CopyRequest<'a> {
    /// A request with no sources, `dest` `/`, and no flags.
    pub fn new(instruction: &'a str) -> CopyRequest<'a> {
        CopyRequest {
            instruction,
            sources: &[],
            dest: "/",
            chown: None,
            chmod: None,
            parents: false,
            excludes: &[],
            extract_archives: false,
            preserve_owner: false,
        }
    }
}

/// What a copy wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    /// Archives ADD extracted.
    pub archives: u64,
    pub bytes: u64,
}

/// `--chmod`: an octal mode.
pub fn parse_chmod(text: &str) -> Result<u32, CopyError> {
    match u32::from_str_radix(text, 8) {
        Ok(mode) if !text.is_empty() && mode <= 0o7777 => Ok(mode),
        _ => Err(CopyError::Chmod(text.to_string())),
    }
}

/// The uid and gid `--chown=spec` names in the root filesystem `dest_root`.
pub fn resolve_chown(dest_root: &Path, spec: &str) -> Result<(u32, u32), CopyError> {
    let top = open_root(dest_root)?;
    chown::resolve(top.as_fd(), spec)
}

fn open_root(path: &Path) -> Result<std::os::fd::OwnedFd, CopyError> {
    fsops::open_top(path).map_err(|source| CopyError::Root {
        path: path.display().to_string(),
        source,
    })
}

fn start(dest_root: &Path, chown: Option<&str>, chmod: Option<&str>) -> Result<Writer, CopyError> {
    let top = open_root(dest_root)?;
    let owner = match chown {
        Some(spec) => chown::resolve(top.as_fd(), spec)?,
        None => (0, 0),
    };
    let chmod = chmod.map(parse_chmod).transpose()?;
    Ok(Writer::new(top, owner, chmod))
}

/// Performs `req` from the source root `src_root` (the context, or another stage's root) into
/// the root filesystem `dest_root`.
pub fn copy(
    src_root: SourceRoot<'_>,
    dest_root: &Path,
    req: &CopyRequest<'_>,
) -> Result<CopyStats, CopyError> {
    let src = src_root.open()?;
    let excludes = Matcher::new(req.excludes).map_err(SourceError::from)?;
    let mut w = start(dest_root, req.chown, req.chmod)?;
    w.preserve_owner = req.preserve_owner && req.chown.is_none();
    let matches = src.resolve(req.sources, &excludes)?;
    let dest_is_dir = req.dest.ends_with('/') || req.dest.ends_with("/.");
    if matches.len() > 1 && !dest_is_dir {
        return Err(CopyError::MultipleSources {
            instruction: req.instruction.to_string(),
        });
    }
    let dest = fsops::components(req.dest.as_bytes(), true).unwrap_or_default();
    for m in &matches {
        copy_match(&src, m, &dest, dest_is_dir, req, &excludes, &mut w)?;
    }
    Ok(w.stats)
}

fn copy_match(
    src: &Opened<'_>,
    m: &SourceMatch,
    dest: &[OsString],
    dest_is_dir: bool,
    req: &CopyRequest<'_>,
    excludes: &Matcher,
    w: &mut Writer,
) -> Result<(), CopyError> {
    // Where the match itself goes: with --parents, its path below the pivot.
    let mut base: Components = dest.to_vec();
    if req.parents {
        base.extend(m.components.iter().skip(m.pivot).cloned());
    }
    let at = |rel: &[OsString]| {
        let mut p = base.clone();
        p.extend_from_slice(rel);
        p
    };
    src.walk::<CopyError>(m, excludes, &mut |node| match node {
        Node::Dir { rel, attrs } => {
            if rel.is_empty() {
                w.ensure_dir(&base).map(drop)
            } else {
                w.dir(&at(rel), attrs)
            }
        }
        Node::DirEnd { rel, attrs } if !rel.is_empty() => w.dir_end(&at(rel), attrs),
        Node::DirEnd { .. } => Ok(()),
        Node::Symlink { rel, target, attrs } => w.symlink(&at(rel), &target, attrs),
        Node::File {
            rel,
            content,
            attrs,
            ..
        } if !rel.is_empty() => w.file(&at(rel), content, attrs),
        Node::File { content, attrs, .. } => {
            top_file(m, &base, dest_is_dir, req, content, attrs, w)
        }
    })
}

/// A source that is a file: an archive ADD extracts, or a file copied to or into `base`.
fn top_file(
    m: &SourceMatch,
    base: &[OsString],
    dest_is_dir: bool,
    req: &CopyRequest<'_>,
    mut file: Content<'_>,
    attrs: &Attrs,
    w: &mut Writer,
) -> Result<(), CopyError> {
    let archive_name = fsops::display(&m.components);
    if req.extract_archives {
        let archive = compression::is_archive(&mut file);
        // Either way the file is read again from its start.
        let rewound = file.seek(io::SeekFrom::Start(0));
        rewound.map_err(|source| CopyError::Write {
            path: archive_name.clone(),
            source,
        })?;
        if archive {
            // The classic builder ignores `--chown` for an archive: its entries keep the tar's
            // owners, and the directories made for it are root's.
            let owner = std::mem::take(&mut w.owner);
            let extracted = extract(file, &archive_name, base, false, w);
            w.owner = owner;
            return extracted;
        }
    }
    let target = if req.parents {
        base.to_vec()
    } else if dest_is_dir || base.is_empty() || w.is_dir(base) {
        let mut t = base.to_vec();
        t.extend(m.components.last().cloned());
        t
    } else {
        base.to_vec()
    };
    w.file(&target, file, attrs)
}

/// ADD of a local archive: its entries below `dest`, which is a directory. Symlinks in the tar
/// resolve with `dest` as their root, as dockerd's chrooted untar has it.
fn extract(
    file: impl Read,
    name: &str,
    dest: &[OsString],
    chown: bool,
    w: &mut Writer,
) -> Result<(), CopyError> {
    let dir = w.ensure_dir(dest)?;
    let fail = |source| CopyError::Extract {
        archive: name.to_string(),
        dest: format!("/{}", fsops::display(dest)),
        source,
    };
    let (_, decoded) = compression::decompress(file).map_err(|e| fail(UnpackError::Read(e)))?;
    let opts = UnpackOptions {
        owner: chown.then_some(w.owner),
        parent_owner: w.owner,
    };
    let stats = unpack::unpack(decoded, dir.as_fd(), opts).map_err(fail)?;
    w.stats.archives += 1;
    w.stats.files += stats.entries;
    w.stats.bytes += stats.bytes;
    Ok(())
}

/// `ADD <url> dest` once the caller has downloaded the body: written as `file_name` into `dest`
/// when `dest` ends with `/` or is a directory, else as `dest`; mode 0600 (dockerd's download
/// file) unless `--chmod`; mtime from `Last-Modified`, else the epoch. Never extracted.
pub fn add_downloaded(
    body: impl Read,
    file_name: &str,
    dest_root: &Path,
    dest: &str,
    chown: Option<&str>,
    chmod: Option<&str>,
    last_modified: Option<SystemTime>,
) -> Result<CopyStats, CopyError> {
    let mut w = start(dest_root, chown, chmod)?;
    let mut target = fsops::components(dest.as_bytes(), true).unwrap_or_default();
    if dest.ends_with('/') || target.is_empty() || w.is_dir(&target) {
        let name = fsops::components(file_name.as_bytes(), true).unwrap_or_default();
        match name.last() {
            Some(base) => target.push(base.clone()),
            None => return Err(CopyError::NoFileName(file_name.to_string())),
        }
    }
    let mut body = body;
    let (parent, name) = match target.split_last() {
        Some((name, parent)) => (w.ensure_dir(parent)?, name.clone()),
        None => return Err(CopyError::NoFileName(file_name.to_string())),
    };
    fsops::remove_all_at(parent.as_fd(), &name).map_err(write_error(&target))?;
    let fd = rustix::fs::openat(
        &parent,
        &name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(write_error(&target))?;
    let mut out = File::from(fd);
    let copied = io::copy(&mut body, &mut out).map_err(|source| CopyError::Write {
        path: format!("/{}", fsops::display(&target)),
        source,
    })?;
    fsops::set_owner_mode(out.as_fd(), w.owner, w.chmod.unwrap_or(0o600))
        .map_err(write_error(&target))?;
    let secs = last_modified
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let time = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    rustix::fs::futimens(&out, &times).map_err(write_error(&target))?;
    w.stats.files += 1;
    w.stats.bytes += copied;
    Ok(w.stats)
}

#[cfg(test)]
mod tests;
