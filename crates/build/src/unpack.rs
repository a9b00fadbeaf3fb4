//! Writing a tar stream into a directory, safely: the archives `ADD` extracts (the build
//! context is read into an index instead: [`crate::context`]).
//!
//! Entry names are normalised lexically (a leading `/` is dropped: `/etc/x` lands at `etc/x`
//! inside the top); one whose `..` climbs above the top is refused. Parents are resolved by the
//! kernel below the top, as in a chroot, then the entry is created relative to that descriptor
//! without following its own name. Hardlinks may only name earlier entries inside the top.
//! Symlinks are written as symlinks and never followed. Device nodes and FIFOs are skipped.
//! Owner, mode, mtime and xattrs are those of the tar unless an owner is forced. Directory times
//! are set once every entry is written, since creating children changes them.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use tar::EntryType;

use crate::fsops::{self, Components, NewDir, Xattr};

/// Errors of [`unpack`].
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("reading the archive: {0}")]
    Read(#[source] io::Error),
    /// moby's `breakoutError`.
    #[error("{entry:?} is outside of the destination")]
    Escape { entry: String },
    #[error("invalid hardlink {entry:?} -> {target:?}: the target must be an earlier entry inside the destination")]
    Hardlink { entry: String, target: String },
    #[error("{entry:?}: a symlink or a non-directory is on its path")]
    NotADirectory { entry: String },
    #[error("{entry:?}: {what}")]
    InvalidEntry { entry: String, what: String },
    #[error("{entry:?}: {what}: {source}")]
    Io {
        entry: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// How entries are written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnpackOptions {
    /// Owner of every entry instead of the tar's (`ADD --chown`).
    pub(crate) owner: Option<(u32, u32)>,
    /// Owner of the parent directories the tar does not list.
    pub(crate) parent_owner: (u32, u32),
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Entries written (files, directories, links).
    pub entries: u64,
    /// Bytes of regular file content.
    pub bytes: u64,
    /// Device nodes and FIFOs left out.
    pub skipped: u64,
    /// Where the data of the last entry ends in the stream (its padding not counted).
    pub data_end: u64,
}

/// Writes the (already decompressed) tar `reader` below `top`.
/// Whatever follows the end-of-archive blocks is read too (and dropped), so a request body is
/// consumed whole.
pub(crate) fn unpack(
    reader: impl Read,
    top: BorrowedFd<'_>,
    opts: UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let mut archive = tar::Archive::new(reader);
    let mut stats = UnpackStats::default();
    let mut dir_times: Vec<(Components, Timespec)> = Vec::new();
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        stats.data_end = entry.raw_file_position() + entry.size();
        if let Some((components, mtime)) = write_entry(&mut entry, top, opts, &mut stats)? {
            dir_times.push((components, mtime));
        }
    }
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(UnpackError::Read)?;
    for (components, mtime) in dir_times.iter().rev() {
        // A directory a later entry replaced or removed is skipped.
        if let Ok(fd) = fsops::open_dir(top, components) {
            let times = Timestamps {
                last_access: *mtime,
                last_modification: *mtime,
            };
            rustix::fs::futimens(&fd, &times).map_err(|e| UnpackError::Io {
                entry: fsops::display(components),
                what: "setting the times",
                source: e.into(),
            })?;
        }
    }
    Ok(stats)
}

/// The metadata of an entry, from its header and PAX records.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub(crate) owner: (u32, u32),
    /// Permission bits (`0o7777`).
    pub(crate) mode: u32,
    pub(crate) mtime: Timespec,
    pub(crate) xattrs: Vec<Xattr>,
}

pub(crate) fn read_meta<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    name: &str,
) -> Result<Meta, UnpackError> {
    let invalid = |what: String| UnpackError::InvalidEntry {
        entry: name.to_string(),
        what,
    };
    let header = entry.header();
    // The tar crate already applies PAX `uid`/`gid` records to the header. An empty numeric
    // field is 0, as Go's tar reader has it (the tar crate calls it an error).
    let uid = header.uid().unwrap_or(0);
    let gid = header.gid().unwrap_or(0);
    let mode = header.mode().unwrap_or(0o644);
    let secs = header.mtime().unwrap_or(0);
    let mut mtime = Timespec {
        tv_sec: i64::try_from(secs).map_err(|_| invalid(format!("mtime {secs} too large")))?,
        tv_nsec: 0,
    };
    let mut xattrs = Vec::new();
    if let Some(pax) = entry.pax_extensions().map_err(UnpackError::Read)? {
        for record in pax {
            let record = record.map_err(|e| invalid(format!("bad PAX record: {e}")))?;
            let key = record.key_bytes();
            if let Some(attr) = key.strip_prefix(b"SCHILY.xattr.") {
                xattrs.push((
                    OsStr::from_bytes(attr).to_os_string(),
                    record.value_bytes().to_vec(),
                ));
            } else if key == b"mtime" {
                if let Some(t) = parse_pax_time(record.value_bytes()) {
                    mtime = t;
                }
            }
        }
    }
    Ok(Meta {
        owner: (
            u32::try_from(uid).map_err(|_| invalid(format!("uid {uid} too large")))?,
            u32::try_from(gid).map_err(|_| invalid(format!("gid {gid} too large")))?,
        ),
        mode: mode & 0o7777,
        mtime,
        xattrs,
    })
}

/// A PAX time, `SECONDS[.FRACTION]`.
fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let mut tv_sec: i64 = secs.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    while digits.len() < 9 {
        digits.push('0');
    }
    let mut tv_nsec: i64 = digits.parse().ok()?;
    if secs.starts_with('-') && tv_nsec > 0 {
        tv_sec -= 1;
        tv_nsec = 1_000_000_000 - tv_nsec;
    }
    Some(Timespec {
        tv_sec,
        tv_nsec: tv_nsec as _,
    })
}

/// Whether an entry of type `kind` is written: files, directories and links are; device nodes
/// and FIFOs are left out (and counted); global PAX headers, GNU volume labels and the like
/// carry no file.
pub(crate) fn is_written(kind: EntryType, stats: &mut UnpackStats) -> bool {
    match kind {
        EntryType::Regular
        | EntryType::Continuous
        | EntryType::GNUSparse
        | EntryType::Directory
        | EntryType::Symlink
        | EntryType::Link => true,
        EntryType::Char | EntryType::Block | EntryType::Fifo => {
            stats.skipped += 1;
            false
        }
        _ => false,
    }
}

/// Writes one entry; returns a directory's path and time, set at the end.
fn write_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    top: BorrowedFd<'_>,
    opts: UnpackOptions,
    stats: &mut UnpackStats,
) -> Result<Option<(Components, Timespec)>, UnpackError> {
    let raw = entry.path_bytes().into_owned();
    let name = String::from_utf8_lossy(&raw).into_owned();
    let kind = entry.header().entry_type();
    if !is_written(kind, stats) {
        return Ok(None);
    }
    let components = fsops::components(&raw, false).ok_or_else(|| UnpackError::Escape {
        entry: name.clone(),
    })?;
    // The top itself (`./`) keeps its own metadata, as Docker's untar skips `.`.
    let Some((base, parent_components)) = components.split_last() else {
        return Ok(None);
    };
    let mut meta = read_meta(entry, &name)?;
    if let Some(owner) = opts.owner {
        meta.owner = owner;
    }
    let io_err = |what: &'static str| {
        let entry = name.clone();
        move |e: Errno| UnpackError::Io {
            entry,
            what,
            source: e.into(),
        }
    };
    let new_dir = NewDir {
        mode: 0o755,
        owner: opts.parent_owner,
    };
    let parent = match fsops::make_dirs(top, parent_components, new_dir) {
        Ok(fd) => fd,
        Err(Errno::LOOP | Errno::NOTDIR | Errno::XDEV) => {
            return Err(UnpackError::NotADirectory { entry: name })
        }
        Err(e) => return Err(io_err("creating the parent directories")(e)),
    };

    // Whatever an earlier entry put here goes, unless a directory stays a directory.
    let existing = fsops::file_type_at(parent.as_fd(), base).map_err(io_err("inspecting"))?;
    match existing {
        None => {}
        Some(FileType::Directory) if kind.is_dir() => {}
        Some(_) => {
            fsops::remove_all_at(parent.as_fd(), base).map_err(io_err("replacing"))?;
        }
    }
    let times = Timestamps {
        last_access: meta.mtime,
        last_modification: meta.mtime,
    };
    stats.entries += 1;
    match kind {
        EntryType::Directory => {
            if existing != Some(FileType::Directory) {
                rustix::fs::mkdirat(parent.as_fd(), base, Mode::from_raw_mode(0o700))
                    .map_err(io_err("creating the directory"))?;
            }
            let fd = rustix::fs::openat(
                parent.as_fd(),
                base,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io_err("opening the directory"))?;
            fsops::set_owner_mode(fd.as_fd(), meta.owner, meta.mode)
                .map_err(io_err("setting owner and mode"))?;
            fsops::write_xattrs(fd.as_fd(), &meta.xattrs).map_err(io_err("setting xattrs"))?;
            return Ok(Some((components.clone(), meta.mtime)));
        }
        EntryType::Symlink => {
            let target = link_name(entry, &name)?;
            rustix::fs::symlinkat(OsStr::from_bytes(&target), parent.as_fd(), base)
                .map_err(io_err("creating the symlink"))?;
            fsops::chown_at(parent.as_fd(), base, meta.owner)
                .map_err(io_err("setting the owner"))?;
            fsops::write_xattrs_at(parent.as_fd(), base, &meta.xattrs)
                .map_err(io_err("setting xattrs"))?;
            rustix::fs::utimensat(parent.as_fd(), base, &times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_err("setting the times"))?;
        }
        EntryType::Link => {
            let target = link_name(entry, &name)?;
            hardlink(top, parent.as_fd(), base, &target, &name)?;
        }
        _ => {
            let fd = rustix::fs::openat(
                parent.as_fd(),
                base,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(io_err("creating the file"))?;
            let mut file = File::from(fd);
            let expected = entry.size();
            let got = io::copy(entry, &mut file).map_err(UnpackError::Read)?;
            if got != expected {
                return Err(UnpackError::InvalidEntry {
                    entry: name,
                    what: format!("truncated: {got} of {expected} bytes"),
                });
            }
            stats.bytes += got;
            fsops::set_owner_mode(file.as_fd(), meta.owner, meta.mode)
                .map_err(io_err("setting owner and mode"))?;
            fsops::write_xattrs(file.as_fd(), &meta.xattrs).map_err(io_err("setting xattrs"))?;
            rustix::fs::futimens(&file, &times).map_err(io_err("setting the times"))?;
        }
    }
    Ok(None)
}

pub(crate) fn link_name<R: Read>(
    entry: &tar::Entry<'_, R>,
    name: &str,
) -> Result<Vec<u8>, UnpackError> {
    match entry.link_name_bytes() {
        Some(target) if !target.is_empty() => Ok(target.into_owned()),
        _ => Err(UnpackError::InvalidEntry {
            entry: name.to_string(),
            what: "link without a target".to_string(),
        }),
    }
}

/// Links `base` in `parent` to `target`, a name relative to the top that must stay inside it. A
/// symlink at the end of `target` is linked itself, never followed.
fn hardlink(
    top: BorrowedFd<'_>,
    parent: BorrowedFd<'_>,
    base: &OsString,
    target: &[u8],
    name: &str,
) -> Result<(), UnpackError> {
    let refused = || UnpackError::Hardlink {
        entry: name.to_string(),
        target: String::from_utf8_lossy(target).into_owned(),
    };
    let components = fsops::components(target, false).ok_or_else(refused)?;
    let Some((target_base, target_parent)) = components.split_last() else {
        return Err(refused());
    };
    let target_dir = fsops::open_dir(top, target_parent).map_err(|_| refused())?;
    rustix::fs::linkat(&target_dir, target_base, parent, base, AtFlags::empty())
        .map_err(|_| refused())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time(b"-1.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750_000_000));
        assert!(parse_pax_time(b"x").is_none());
    }
}
