//! Sources in a directory, read through descriptors: every path resolves below the root's
//! descriptor with `RESOLVE_IN_ROOT`, so no symlink leads out of it.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::{io_error, Attrs, Content, Node, SourceError, SourceMatch};
use crate::fsops::{self, Components};
use crate::ignore::Matcher;

/// The root directory's descriptor, for [`super::resolve`].
pub(super) struct Lookup<'a>(pub(super) BorrowedFd<'a>);

impl super::Lookup for Lookup<'_> {
    fn exists(&self, path: &[OsString]) -> Result<bool, SourceError> {
        match fsops::open_at(self.0, &fsops::to_path(path), OFlags::PATH) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT | Errno::NOTDIR) => Ok(false),
            Err(e) => Err(io_error(path)(e)),
        }
    }

    fn list(&self, path: &[OsString]) -> Result<Option<Vec<OsString>>, SourceError> {
        let Ok(dir) = fsops::open_dir(self.0, path) else {
            return Ok(None);
        };
        fsops::list_dir(dir.as_fd())
            .map(Some)
            .map_err(io_error(path))
    }
}

fn attrs(fd: BorrowedFd<'_>, st: &Stat, rel: &[OsString]) -> Result<Attrs, SourceError> {
    let xattrs = fsops::read_xattrs(fd).map_err(io_error(rel))?;
    Ok(Attrs::of(st, xattrs))
}

pub(super) fn walk<E: From<SourceError>>(
    root: BorrowedFd<'_>,
    m: &SourceMatch,
    excludes: &Matcher,
    visit: &mut dyn FnMut(Node<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let top = fsops::open_at(
        root,
        &fsops::to_path(&m.components),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
    )
    .map_err(io_error(&m.components))?;
    let stat = rustix::fs::fstat(&top).map_err(io_error(&m.components))?;
    let mut rel = Vec::new();
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => walk_dir(top.as_fd(), &stat, &mut rel, excludes, visit),
        FileType::RegularFile => {
            let attrs = attrs(top.as_fd(), &stat, &m.components)?;
            visit(Node::File {
                rel: &rel,
                content: Content::File(File::from(top)),
                attrs: &attrs,
                digest: None,
            })
        }
        _ => Ok(()),
    }
}

fn walk_dir<E: From<SourceError>>(
    dir: BorrowedFd<'_>,
    stat: &Stat,
    rel: &mut Components,
    excludes: &Matcher,
    visit: &mut dyn FnMut(Node<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let dir_attrs = attrs(dir, stat, rel)?;
    visit(Node::Dir {
        rel,
        attrs: &dir_attrs,
    })?;
    for name in fsops::list_dir(dir).map_err(io_error(rel))? {
        rel.push(name.clone());
        let path = fsops::display(rel);
        let child_stat = rustix::fs::statat(dir, &name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_error(rel))?;
        let kind = FileType::from_raw_mode(child_stat.st_mode);
        let excluded = excludes.matches(&path);
        match kind {
            FileType::Directory if !(excluded && excludes.can_skip_dir(&path)) => {
                let sub = open_child(dir, &name, OFlags::DIRECTORY).map_err(io_error(rel))?;
                walk_dir(sub.as_fd(), &child_stat, rel, excludes, visit)?;
            }
            _ if excluded => {}
            FileType::RegularFile => {
                let fd = open_child(dir, &name, OFlags::empty()).map_err(io_error(rel))?;
                let attrs = attrs(fd.as_fd(), &child_stat, rel)?;
                visit(Node::File {
                    rel,
                    content: Content::File(File::from(fd)),
                    attrs: &attrs,
                    digest: None,
                })?;
            }
            FileType::Symlink => {
                let target =
                    rustix::fs::readlinkat(dir, &name, Vec::new()).map_err(io_error(rel))?;
                visit(Node::Symlink {
                    rel,
                    target: target.into_bytes(),
                    attrs: &Attrs::of(&child_stat, Vec::new()),
                })?;
            }
            _ => {}
        }
        rel.pop();
    }
    visit(Node::DirEnd {
        rel,
        attrs: &dir_attrs,
    })
}

fn open_child(dir: BorrowedFd<'_>, name: &OsString, extra: OFlags) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        Path::new(name),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | extra,
        Mode::empty(),
    )
}
