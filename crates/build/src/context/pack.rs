//! `berth build DIR`: the directory as a context tar, as the docker CLI sends it
//! (`archive.TarWithOptions` with the `.dockerignore` patterns and owner 0:0).
//!
//! Entries come in bytewise name order, each directory before its contents, so the same tree
//! always gives the same tar. Ignored files are left out; an ignored directory is not entered
//! unless a `!` pattern could re-include something below it (then only its entry is left out).
//! Symlinks are stored as symlinks, files linked more than once as one file and hardlinks to it.
//! Sockets, FIFOs and devices are left out.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use tar::{EntryType, Header};

use super::ContextError;
use crate::fsops;
use crate::ignore::Matcher;

/// What [`pack_dir`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackStats {
    pub entries: u64,
    pub bytes: u64,
}

/// Writes the context tar of `dir` to `writer`, leaving out what `ignore` excludes.
pub fn pack_dir(
    dir: &Path,
    ignore: &Matcher,
    writer: impl Write,
) -> Result<PackStats, ContextError> {
    let top = fsops::open_top(dir).map_err(|source| ContextError::Dir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut packer = Packer {
        builder: tar::Builder::new(writer),
        ignore,
        links: HashMap::new(),
        stats: PackStats::default(),
    };
    let mut prefix = Vec::new();
    packer.walk(top.as_fd(), &mut prefix)?;
    packer.builder.into_inner().map_err(ContextError::Pack)?;
    Ok(packer.stats)
}

struct Packer<'a, W: Write> {
    builder: tar::Builder<W>,
    ignore: &'a Matcher,
    /// (device, inode) of files with more than one link → the path they were first written at.
    links: HashMap<(u64, u64), PathBuf>,
    stats: PackStats,
}

fn pack_err(e: impl Into<io::Error>) -> ContextError {
    ContextError::Pack(e.into())
}

impl<W: Write> Packer<'_, W> {
    fn walk(
        &mut self,
        dir: BorrowedFd<'_>,
        prefix: &mut Vec<OsString>,
    ) -> Result<(), ContextError> {
        for name in fsops::list_dir(dir).map_err(pack_err)? {
            prefix.push(name.clone());
            let rel = fsops::display(prefix);
            let path: PathBuf = prefix.iter().collect();
            let st = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW).map_err(pack_err)?;
            let kind = FileType::from_raw_mode(st.st_mode);
            let ignored = self.ignore.matches(&rel);
            let mut header = Header::new_gnu();
            header.set_mode(st.st_mode & 0o7777);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
            header.set_size(0);
            match kind {
                FileType::Directory => {
                    if ignored && self.ignore.can_skip_dir(&rel) {
                        prefix.pop();
                        continue;
                    }
                    if !ignored {
                        header.set_entry_type(EntryType::Directory);
                        let mut dir_name = path.as_os_str().to_os_string();
                        dir_name.push("/");
                        self.builder
                            .append_data(&mut header, Path::new(&dir_name), io::empty())
                            .map_err(ContextError::Pack)?;
                        self.stats.entries += 1;
                    }
                    let sub = rustix::fs::openat(
                        dir,
                        &name,
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(pack_err)?;
                    self.walk(sub.as_fd(), prefix)?;
                }
                _ if ignored => {}
                FileType::Symlink => {
                    let target =
                        rustix::fs::readlinkat(dir, &name, Vec::new()).map_err(pack_err)?;
                    let target = PathBuf::from(std::ffi::OsStr::from_bytes(target.as_bytes()));
                    header.set_entry_type(EntryType::Symlink);
                    self.builder
                        .append_link(&mut header, &path, &target)
                        .map_err(ContextError::Pack)?;
                    self.stats.entries += 1;
                }
                FileType::RegularFile => {
                    let key = (st.st_dev, st.st_ino);
                    if st.st_nlink > 1 {
                        if let Some(first) = self.links.get(&key) {
                            header.set_entry_type(EntryType::Link);
                            self.builder
                                .append_link(&mut header, &path, first)
                                .map_err(ContextError::Pack)?;
                            self.stats.entries += 1;
                            prefix.pop();
                            continue;
                        }
                        self.links.insert(key, path.clone());
                    }
                    let fd = rustix::fs::openat(
                        dir,
                        &name,
                        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(pack_err)?;
                    let file = File::from(fd);
                    let size = file.metadata().map_err(ContextError::Pack)?.len();
                    header.set_entry_type(EntryType::Regular);
                    header.set_size(size);
                    // A file that shrinks meanwhile would desynchronise the tar: read exactly
                    // `size` bytes, padding with zeros.
                    let body = io::Read::take(
                        io::Read::chain(io::Read::take(file, size), io::repeat(0)),
                        size,
                    );
                    self.builder
                        .append_data(&mut header, &path, body)
                        .map_err(ContextError::Pack)?;
                    self.stats.entries += 1;
                    self.stats.bytes += size;
                }
                _ => {}
            }
            prefix.pop();
        }
        Ok(())
    }
}
