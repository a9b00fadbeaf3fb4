//! Applying `.dockerignore` to an extracted context: ignored paths are removed, so nothing that
//! reads the context later (COPY, checksums) can see them.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{FileType, Mode, OFlags};

use crate::fsops;
use crate::ignore::Matcher;

/// Removes every path below `top` that `ignore` matches. A directory that is ignored but may
/// hold re-included paths (`!` patterns) is kept and searched. Returns how many paths were
/// removed, or the path and error that stopped it.
pub(super) fn remove_ignored(
    top: BorrowedFd<'_>,
    ignore: &Matcher,
) -> Result<u64, (String, io::Error)> {
    if ignore.patterns().is_empty() {
        return Ok(0);
    }
    let mut removed = 0;
    let mut prefix = Vec::new();
    walk(top, &mut prefix, ignore, &mut removed)?;
    Ok(removed)
}

fn walk(
    dir: BorrowedFd<'_>,
    prefix: &mut Vec<OsString>,
    ignore: &Matcher,
    removed: &mut u64,
) -> Result<(), (String, io::Error)> {
    let at = |prefix: &[OsString]| fsops::display(prefix);
    let names = fsops::list_dir(dir).map_err(|e| (at(prefix), e.into()))?;
    for name in names {
        prefix.push(name.clone());
        let rel = at(prefix);
        let kind = fsops::file_type_at(dir, &name).map_err(|e| (rel.clone(), e.into()))?;
        if kind == Some(FileType::Directory) {
            if ignore.can_skip_dir(&rel) {
                fsops::remove_all_at(dir, &name).map_err(|e| (rel.clone(), e.into()))?;
                *removed += 1;
            } else {
                let sub = rustix::fs::openat(
                    dir,
                    &name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| (rel.clone(), e.into()))?;
                walk(sub.as_fd(), prefix, ignore, removed)?;
            }
        } else if ignore.matches(&rel) {
            fsops::remove_all_at(dir, &name).map_err(|e| (rel.clone(), e.into()))?;
            *removed += 1;
        }
        prefix.pop();
    }
    Ok(())
}
