//! Writing source nodes into the destination root. Every path is resolved from the root's
//! descriptor with `RESOLVE_IN_ROOT`, so an image's symlink (`/app -> /etc`, `-> ../../..`)
//! resolves as it would inside the container and never outside; single names are then created
//! relative to the resolved parent without following them.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps};
use rustix::io::Errno;

use super::{CopyError, CopyStats};
use crate::fsops::{self, Components, NewDir};
use crate::sources::Attrs;

/// The destination side of one COPY/ADD.
pub(crate) struct Writer {
    pub top: OwnedFd,
    pub owner: (u32, u32),
    /// Copied entries keep their source's owner (`COPY --from` without `--chown`, as the
    /// classic builder); created parent directories still get `owner`.
    pub preserve_owner: bool,
    pub chmod: Option<u32>,
    /// Source link key of files linked more than once → where the first copy went.
    links: HashMap<(u64, u64), Components>,
    /// The parent directory of the previous entry.
    parent: Option<(Components, OwnedFd)>,
    pub stats: CopyStats,
}

pub(crate) fn write_error(path: &[OsString]) -> impl Fn(Errno) -> CopyError + '_ {
    move |e| CopyError::Write {
        path: format!("/{}", fsops::display(path)),
        source: e.into(),
    }
}

fn times(attrs: &Attrs) -> Timestamps {
    Timestamps {
        last_access: attrs.mtime,
        last_modification: attrs.mtime,
    }
}

impl Writer {
    pub(crate) fn new(top: OwnedFd, owner: (u32, u32), chmod: Option<u32>) -> Writer {
        Writer {
            top,
            owner,
            preserve_owner: false,
            chmod,
            links: HashMap::new(),
            parent: None,
            stats: CopyStats::default(),
        }
    }

    /// The owner of an entry copied from a source whose metadata is `attrs`.
    fn owner_of(&self, attrs: &Attrs) -> (u32, u32) {
        if self.preserve_owner {
            attrs.owner
        } else {
            self.owner
        }
    }

    fn new_dir(&self) -> NewDir {
        NewDir {
            mode: 0o755,
            owner: self.owner,
        }
    }

    /// Opens (creating what is missing, owned by the copy's owner) the directory `path`.
    pub(crate) fn ensure_dir(&self, path: &[OsString]) -> Result<OwnedFd, CopyError> {
        fsops::make_dirs(self.top.as_fd(), path, self.new_dir()).map_err(write_error(path))
    }

    /// Whether `path` exists and is a directory (symlinks followed inside the root).
    pub(crate) fn is_dir(&self, path: &[OsString]) -> bool {
        fsops::open_dir(self.top.as_fd(), path).is_ok()
    }

    /// The parent of `path` and the final name; the parent is created when missing.
    fn parent_of<'p>(
        &mut self,
        path: &'p [OsString],
    ) -> Result<(BorrowedFd<'_>, &'p OsString), CopyError> {
        let Some((name, parent)) = path.split_last() else {
            return Err(CopyError::Write {
                path: "/".to_string(),
                source: io::Error::from(io::ErrorKind::IsADirectory),
            });
        };
        let cached = matches!(&self.parent, Some((c, _)) if c.as_slice() == parent);
        if !cached {
            let fd = self.ensure_dir(parent)?;
            self.parent = Some((parent.to_vec(), fd));
        }
        match &self.parent {
            Some((_, fd)) => Ok((fd.as_fd(), name)),
            None => Err(write_error(path)(Errno::NOENT)),
        }
    }

    /// Removes what is at `path` unless it is a directory (or a symlink to one) and `keep_dir`.
    /// Returns whether a directory was kept.
    fn clear(&mut self, path: &[OsString], keep_dir: bool) -> Result<bool, CopyError> {
        let top_is_dir = keep_dir && self.is_dir(path);
        let (parent, name) = self.parent_of(path)?;
        match fsops::file_type_at(parent, name).map_err(write_error(path))? {
            None => Ok(false),
            Some(FileType::Directory | FileType::Symlink) if top_is_dir => Ok(true),
            Some(_) => {
                fsops::remove_all_at(parent, name).map_err(write_error(path))?;
                Ok(false)
            }
        }
    }

    /// Copies a regular file's content to `path`.
    pub(crate) fn file(
        &mut self,
        path: &[OsString],
        mut src: impl Read,
        attrs: &Attrs,
    ) -> Result<(), CopyError> {
        self.clear(path, false)?;
        if let Some(key) = attrs.link {
            if let Some(first) = self.links.get(&key).cloned() {
                if self.hardlink(&first, path).is_ok() {
                    self.stats.hardlinks += 1;
                    return Ok(());
                }
            }
            self.links.insert(key, path.to_vec());
        }
        let owner = self.owner_of(attrs);
        let mode = self.chmod.unwrap_or(attrs.mode);
        let (parent, name) = self.parent_of(path)?;
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(write_error(path))?;
        let mut dst = File::from(fd);
        let copied = io::copy(&mut src, &mut dst).map_err(|source| CopyError::Write {
            path: format!("/{}", fsops::display(path)),
            source,
        })?;
        fsops::set_owner_mode(dst.as_fd(), owner, mode).map_err(write_error(path))?;
        fsops::write_xattrs(dst.as_fd(), &attrs.xattrs).map_err(write_error(path))?;
        rustix::fs::futimens(&dst, &times(attrs)).map_err(write_error(path))?;
        self.stats.files += 1;
        self.stats.bytes += copied;
        Ok(())
    }

    fn hardlink(&mut self, first: &[OsString], path: &[OsString]) -> Result<(), CopyError> {
        let Some((first_name, first_parent)) = first.split_last() else {
            return Err(write_error(path)(Errno::INVAL));
        };
        let first_dir =
            fsops::open_dir(self.top.as_fd(), first_parent).map_err(write_error(path))?;
        let (parent, name) = self.parent_of(path)?;
        rustix::fs::linkat(&first_dir, first_name, parent, name, AtFlags::empty())
            .map_err(write_error(path))
    }

    /// A directory below the copied tree's top: created, or kept when one is there (a symlink to
    /// a directory is followed, as `usr`-merged images need), with the source's metadata.
    pub(crate) fn dir(&mut self, path: &[OsString], attrs: &Attrs) -> Result<(), CopyError> {
        let kept = self.clear(path, true)?;
        let (parent, name) = self.parent_of(path)?;
        let via_symlink = kept
            && fsops::file_type_at(parent, name).map_err(write_error(path))?
                == Some(FileType::Symlink);
        if !kept {
            rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                .map_err(write_error(path))?;
        }
        self.stats.dirs += 1;
        if via_symlink {
            return Ok(());
        }
        let fd = fsops::open_dir(self.top.as_fd(), path).map_err(write_error(path))?;
        let mode = self.chmod.unwrap_or(attrs.mode);
        fsops::set_owner_mode(fd.as_fd(), self.owner_of(attrs), mode).map_err(write_error(path))?;
        fsops::write_xattrs(fd.as_fd(), &attrs.xattrs).map_err(write_error(path))
    }

    /// A directory's time, once its contents are written.
    pub(crate) fn dir_end(&mut self, path: &[OsString], attrs: &Attrs) -> Result<(), CopyError> {
        let fd = fsops::open_dir(self.top.as_fd(), path).map_err(write_error(path))?;
        rustix::fs::futimens(&fd, &times(attrs)).map_err(write_error(path))
    }

    pub(crate) fn symlink(
        &mut self,
        path: &[OsString],
        target: &[u8],
        attrs: &Attrs,
    ) -> Result<(), CopyError> {
        self.clear(path, false)?;
        let owner = self.owner_of(attrs);
        let (parent, name) = self.parent_of(path)?;
        let target = OsStr::from_bytes(target);
        rustix::fs::symlinkat(target, parent, name).map_err(write_error(path))?;
        fsops::chown_at(parent, name, owner).map_err(write_error(path))?;
        rustix::fs::utimensat(parent, name, &times(attrs), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(write_error(path))?;
        self.stats.symlinks += 1;
        Ok(())
    }
}
