//! Applying a layer tar into a snapshot directory, in the form overlayfs reads.
//!
//! Entries are handled in order, each relative to a descriptor of its parent directory (opened by
//! [`paths::open_dir`] without following symlinks). An entry replaces whatever an earlier one put
//! at its path, except that a directory over a directory keeps the contents and takes the new
//! metadata. Ownership is set before the mode (chown clears setuid bits) and xattrs after both
//! (chown clears `security.capability`); directory times are set once every entry is written,
//! since creating children changes them. The diff_id is the sha256 of every byte the tar reader
//! consumes, plus whatever follows the end-of-archive marker.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::AtFlags as NixAtFlags;
use nix::sys::stat::{Mode as NixMode, SFlag};
use nix::unistd::{Gid as NixGid, Uid as NixUid};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;

use super::paths::{self, Components};
use super::{compression, io_err, Applied, LayerError, OPAQUE_WHITEOUT, OPAQUE_XATTR};
use crate::digest::DigestWriter;

/// How whiteouts are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// As overlayfs reads them: 0/0 devices and the opaque xattr (the layer dir is an upper).
    Overlay,
    /// Carried out: the layer is applied onto a full copy of the tree below it (the copy
    /// snapshotter), so `.wh.X` removes X, and an opaque marker removes what the directory held
    /// before this layer.
    Delete,
}

/// Reads the (possibly compressed: detected) layer from `reader` and applies it into `dir`.
/// Returns the diff_id (sha256 of the uncompressed tar) and the uncompressed size.
pub fn apply(reader: impl Read, dir: &Path) -> Result<Applied, LayerError> {
    apply_with(reader, dir, Whiteouts::Overlay)
}

/// [`apply`], with whiteouts written as `whiteouts` says.
pub fn apply_with(
    reader: impl Read,
    dir: &Path,
    whiteouts: Whiteouts,
) -> Result<Applied, LayerError> {
    let root = rustix::fs::openat(
        rustix::fs::CWD,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err(format!("opening layer directory {}", dir.display())))?;
    let (_, decoded) = compression::decompress(reader)?;
    let mut archive = tar::Archive::new(HashingReader::new(decoded));
    let mut state = State {
        dir_times: Vec::new(),
        parent: None,
        whiteouts,
        created: std::collections::HashSet::new(),
    };
    for entry in archive.entries().map_err(LayerError::Read)? {
        let mut entry = entry.map_err(LayerError::Read)?;
        apply_entry(root.as_fd(), &mut entry, &mut state)?;
    }
    let mut rest = archive.into_inner();
    // The end-of-archive blocks and any padding are part of the diff_id.
    io::copy(&mut rest, &mut io::sink()).map_err(LayerError::Read)?;
    for (components, mtime) in &state.dir_times {
        set_dir_time(root.as_fd(), components, *mtime)?;
    }
    let size = rest.digest.size();
    let (diff_id, _) = rest.digest.finish();
    Ok(Applied { diff_id, size })
}

/// What applying remembers between entries.
struct State {
    /// Directory times, set once all entries are written.
    dir_times: Vec<(Components, Timespec)>,
    /// The parent directory of the previous entry (tars list a directory's entries together).
    /// Reusing it is safe: an entry only ever removes or replaces a child of its own parent, so
    /// the cached directory can only be replaced by an entry with another parent, which moves
    /// the cache first.
    parent: Option<(Components, OwnedFd)>,
    whiteouts: Whiteouts,
    /// With [`Whiteouts::Delete`]: the paths this layer wrote, which an opaque marker keeps.
    created: std::collections::HashSet<Components>,
}

impl State {
    fn parent(
        &mut self,
        root: BorrowedFd<'_>,
        components: &[OsString],
        name: &str,
    ) -> Result<BorrowedFd<'_>, LayerError> {
        let cached = matches!(&self.parent, Some((c, _)) if c.as_slice() == components);
        if !cached {
            let fd = paths::open_dir(root, components, true, name)?;
            self.parent = Some((components.to_vec(), fd));
        }
        match &self.parent {
            Some((_, fd)) => Ok(fd.as_fd()),
            None => Err(LayerError::InvalidEntry {
                entry: name.to_string(),
                what: "parent directory not open".to_string(),
            }),
        }
    }
}

/// Hashes every byte read through it.
struct HashingReader<R> {
    inner: R,
    digest: DigestWriter<io::Sink>,
}

impl<R> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            digest: DigestWriter::new(io::sink()),
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        io::Write::write_all(&mut self.digest, &buf[..n])?;
        Ok(n)
    }
}

/// The metadata of an entry, from its header and PAX records.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: Timespec,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

impl Meta {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta, LayerError> {
        let invalid = |what: String| LayerError::InvalidEntry {
            entry: name.to_string(),
            what,
        };
        let header = entry.header();
        // The tar crate already applies PAX `uid`/`gid` records to the header.
        let uid = header.uid().map_err(|e| invalid(format!("bad uid: {e}")))?;
        let gid = header.gid().map_err(|e| invalid(format!("bad gid: {e}")))?;
        let mode = header
            .mode()
            .map_err(|e| invalid(format!("bad mode: {e}")))?;
        let secs = header
            .mtime()
            .map_err(|e| invalid(format!("bad mtime: {e}")))?;
        let mut mtime = Timespec {
            tv_sec: i64::try_from(secs).map_err(|_| invalid(format!("mtime {secs} too large")))?,
            tv_nsec: 0,
        };
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions().map_err(LayerError::Read)? {
            for record in pax {
                let record = record.map_err(|e| invalid(format!("bad PAX record: {e}")))?;
                let key = record.key_bytes();
                if let Some(attr) = key.strip_prefix(b"SCHILY.xattr.") {
                    if !is_overlay_xattr(attr) {
                        xattrs.push((
                            OsStr::from_bytes(attr).to_os_string(),
                            record.value_bytes().to_vec(),
                        ));
                    }
                } else if key == b"mtime" {
                    if let Some(t) = parse_pax_time(record.value_bytes()) {
                        mtime = t;
                    }
                }
            }
        }
        Ok(Meta {
            uid: u32::try_from(uid).map_err(|_| invalid(format!("uid {uid} too large")))?,
            gid: u32::try_from(gid).map_err(|_| invalid(format!("gid {gid} too large")))?,
            mode: mode & 0o7777,
            mtime,
            xattrs,
        })
    }

    fn timestamps(&self) -> Timestamps {
        Timestamps {
            last_access: self.mtime,
            last_modification: self.mtime,
        }
    }
}

/// Overlay's own xattrs (`trusted.overlay.*`, `user.overlay.*` with `userxattr`) would change how
/// overlayfs reads the layer (redirects, metacopy, opaque): a layer never sets them directly.
pub(crate) fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// A PAX time, `SECONDS[.FRACTION]`.
fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    while digits.len() < 9 {
        digits.push('0');
    }
    let mut tv_nsec: i64 = digits.parse().ok()?;
    let mut tv_sec = tv_sec;
    if secs.starts_with('-') && tv_nsec > 0 {
        tv_sec -= 1;
        tv_nsec = 1_000_000_000 - tv_nsec;
    }
    Some(Timespec {
        tv_sec,
        tv_nsec: tv_nsec as _,
    })
}

fn apply_entry<R: Read>(
    root: BorrowedFd<'_>,
    entry: &mut tar::Entry<'_, R>,
    state: &mut State,
) -> Result<(), LayerError> {
    let raw = entry.path_bytes().into_owned();
    let name = String::from_utf8_lossy(&raw).into_owned();
    let kind = entry.header().entry_type();
    if matches!(kind, EntryType::XGlobalHeader) {
        return Ok(());
    }
    let components = paths::normalize(&raw, &name)?;
    let meta = Meta::read(entry, &name)?;

    let Some((base, parent_components)) = components.split_last() else {
        // The root itself (`./`): only its metadata.
        if !kind.is_dir() {
            return Err(LayerError::InvalidEntry {
                entry: name,
                what: "the layer root must be a directory".to_string(),
            });
        }
        let fd = rustix::fs::openat(root, ".", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(io_err("opening the layer directory"))?;
        set_fd_meta(fd.as_fd(), &meta, &name)?;
        state.dir_times.push((components, meta.mtime));
        return Ok(());
    };
    let is_whiteout = base.as_bytes().starts_with(b".wh.");
    let delete_mode = state.whiteouts == Whiteouts::Delete;
    if delete_mode && !is_whiteout {
        state.created.insert(components.clone());
    }
    // Lent out while the parent directory (borrowed from `state`) is in use.
    let created = (delete_mode && is_whiteout).then(|| std::mem::take(&mut state.created));
    let parent = state.parent(root, parent_components, &name)?;

    if let Some(target) = base.as_bytes().strip_prefix(b".wh.") {
        if let Some(created) = created {
            let result = delete_whiteout(parent, base, target, parent_components, &created, &name);
            state.created = created;
            return result;
        }
        return whiteout(parent.as_fd(), base, target, &meta, &name);
    }

    // Whatever an earlier entry put here goes, unless a directory stays a directory.
    let existing = paths::file_type_at(parent.as_fd(), base)
        .map_err(io_err(format!("inspecting {name:?}")))?;
    match existing {
        None => {}
        Some(FileType::Directory) if kind.is_dir() => {}
        Some(_) => paths::remove_all_at(parent.as_fd(), base)
            .map_err(io_err(format!("replacing {name:?}")))?,
    }

    match kind {
        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
            let fd = rustix::fs::openat(
                parent.as_fd(),
                base,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(io_err(format!("creating {name:?}")))?;
            let mut file = File::from(fd);
            let expected = entry.size();
            let got = io::copy(entry, &mut file).map_err(LayerError::Read)?;
            if got != expected {
                return Err(LayerError::Truncated {
                    entry: name,
                    expected,
                    got,
                });
            }
            set_fd_meta(file.as_fd(), &meta, &name)?;
            rustix::fs::futimens(&file, &meta.timestamps())
                .map_err(io_err(format!("setting the times of {name:?}")))?;
        }
        EntryType::Directory => {
            if existing != Some(FileType::Directory) {
                rustix::fs::mkdirat(parent.as_fd(), base, Mode::from_raw_mode(0o700))
                    .map_err(io_err(format!("creating directory {name:?}")))?;
            }
            let fd = rustix::fs::openat(
                parent.as_fd(),
                base,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io_err(format!("opening directory {name:?}")))?;
            set_fd_meta(fd.as_fd(), &meta, &name)?;
            state.dir_times.push((components.clone(), meta.mtime));
        }
        EntryType::Symlink => {
            let target = link_name(entry, &name)?;
            rustix::fs::symlinkat(OsStr::from_bytes(&target), parent.as_fd(), base)
                .map_err(io_err(format!("creating symlink {name:?}")))?;
            chown_at(parent.as_fd(), base, &meta, &name)?;
            set_xattrs_at(parent.as_fd(), base, &meta, &name)?;
            set_times_at(parent.as_fd(), base, &meta, &name)?;
        }
        EntryType::Link => {
            let target = link_name(entry, &name)?;
            hardlink(root, parent.as_fd(), base, &target, &name)?;
        }
        EntryType::Char | EntryType::Block | EntryType::Fifo => {
            let (sflag, dev) = match kind {
                EntryType::Fifo => (SFlag::S_IFIFO, 0),
                _ => {
                    let header = entry.header();
                    let bad = |e: io::Error| LayerError::InvalidEntry {
                        entry: name.clone(),
                        what: format!("bad device number: {e}"),
                    };
                    let major = header.device_major().map_err(bad)?.unwrap_or(0);
                    let minor = header.device_minor().map_err(bad)?.unwrap_or(0);
                    let sflag = if kind == EntryType::Char {
                        SFlag::S_IFCHR
                    } else {
                        SFlag::S_IFBLK
                    };
                    (sflag, rustix::fs::makedev(major, minor))
                }
            };
            nix::sys::stat::mknodat(
                parent.as_fd(),
                base.as_os_str(),
                sflag,
                NixMode::from_bits_truncate(0o600),
                dev,
            )
            .map_err(io_err(format!("creating device or fifo {name:?}")))?;
            chown_at(parent.as_fd(), base, &meta, &name)?;
            rustix::fs::chmodat(
                parent.as_fd(),
                base,
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            )
            .map_err(io_err(format!("setting the mode of {name:?}")))?;
            set_xattrs_at(parent.as_fd(), base, &meta, &name)?;
            set_times_at(parent.as_fd(), base, &meta, &name)?;
        }
        other => {
            return Err(LayerError::Unsupported {
                entry: name,
                kind: format!("{other:?}"),
            })
        }
    }
    Ok(())
}

/// `.wh.TARGET` becomes a 0/0 character device named TARGET; `.wh..wh..opq` makes the parent
/// opaque; other `.wh..wh.` names are aufs bookkeeping and are skipped. The device is owned by
/// root with mode 0, as overlayfs makes them.
fn whiteout(
    parent: BorrowedFd<'_>,
    base: &OsStr,
    target: &[u8],
    meta: &Meta,
    name: &str,
) -> Result<(), LayerError> {
    if base.as_bytes() == OPAQUE_WHITEOUT.as_bytes() {
        return rustix::fs::fsetxattr(parent, OPAQUE_XATTR, b"y", XattrFlags::empty())
            .map_err(io_err(format!("marking the directory of {name:?} opaque")));
    }
    if target.starts_with(b".wh.") {
        return Ok(());
    }
    if target.is_empty() || target == b"." || target == b".." {
        return Err(LayerError::InvalidWhiteout {
            entry: name.to_string(),
        });
    }
    let target = OsStr::from_bytes(target);
    paths::remove_all_at(parent, target).map_err(io_err(format!("whiting out {name:?}")))?;
    nix::sys::stat::mknodat(parent, target, SFlag::S_IFCHR, NixMode::empty(), 0)
        .map_err(io_err(format!("creating the whiteout device for {name:?}")))?;
    // The marker's time, so that a diff of this directory gives the same tar back.
    set_times_at(parent, target, meta, name)
}

/// [`Whiteouts::Delete`]: `.wh.TARGET` removes TARGET; `.wh..wh..opq` removes every child of
/// the directory that this layer did not write itself.
fn delete_whiteout(
    parent: BorrowedFd<'_>,
    base: &OsStr,
    target: &[u8],
    parent_components: &[OsString],
    created: &std::collections::HashSet<Components>,
    name: &str,
) -> Result<(), LayerError> {
    if base.as_bytes() == OPAQUE_WHITEOUT.as_bytes() {
        let dir = rustix::fs::openat(
            parent,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err(format!("opening the directory of {name:?}")))?;
        let mut children = Vec::new();
        for entry in rustix::fs::Dir::read_from(&dir)
            .map_err(io_err(format!("reading the directory of {name:?}")))?
        {
            let entry = entry.map_err(io_err(format!("reading the directory of {name:?}")))?;
            let child = OsStr::from_bytes(entry.file_name().to_bytes()).to_os_string();
            if child == "." || child == ".." {
                continue;
            }
            let mut path = parent_components.to_vec();
            path.push(child.clone());
            if !created.contains(&path) {
                children.push(child);
            }
        }
        for child in children {
            paths::remove_all_at(parent, &child)
                .map_err(io_err(format!("emptying the directory of {name:?}")))?;
        }
        return Ok(());
    }
    if target.starts_with(b".wh.") {
        return Ok(());
    }
    if target.is_empty() || target == b"." || target == b".." {
        return Err(LayerError::InvalidWhiteout {
            entry: name.to_string(),
        });
    }
    paths::remove_all_at(parent, OsStr::from_bytes(target))
        .map_err(io_err(format!("whiting out {name:?}")))
}

/// Links `base` in `parent` to `target` (a name relative to the layer root, which must stay
/// inside it). A symlink at the end of `target` is linked itself, never followed.
fn hardlink(
    root: BorrowedFd<'_>,
    parent: BorrowedFd<'_>,
    base: &OsStr,
    target: &[u8],
    name: &str,
) -> Result<(), LayerError> {
    let target_name = String::from_utf8_lossy(target).into_owned();
    let escape = || LayerError::HardlinkEscape {
        entry: name.to_string(),
        target: target_name.clone(),
    };
    let components = paths::normalize(target, &target_name).map_err(|_| escape())?;
    let Some((target_base, target_parent)) = components.split_last() else {
        return Err(escape());
    };
    let target_dir: OwnedFd = paths::open_dir(root, target_parent, false, name)?;
    rustix::fs::linkat(target_dir, target_base, parent, base, AtFlags::empty()).map_err(io_err(
        format!(
            "creating hardlink {name:?} to {target_name:?} (the target must be an earlier entry)"
        ),
    ))
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, name: &str) -> Result<Vec<u8>, LayerError> {
    match entry.link_name_bytes() {
        Some(target) if !target.is_empty() => Ok(target.into_owned()),
        _ => Err(LayerError::InvalidEntry {
            entry: name.to_string(),
            what: "link without a target".to_string(),
        }),
    }
}

/// Owner, mode and xattrs of an open file or directory.
fn set_fd_meta(fd: BorrowedFd<'_>, meta: &Meta, name: &str) -> Result<(), LayerError> {
    rustix::fs::fchown(
        fd,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )
    .map_err(io_err(format!("setting the owner of {name:?}")))?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode))
        .map_err(io_err(format!("setting the mode of {name:?}")))?;
    for (attr, value) in &meta.xattrs {
        match rustix::fs::fsetxattr(fd, attr, value, XattrFlags::empty()) {
            Ok(()) | Err(Errno::NOTSUP) => {}
            Err(e) => return Err(xattr_error(attr, name, e)),
        }
    }
    Ok(())
}

fn chown_at(
    parent: BorrowedFd<'_>,
    base: &OsStr,
    meta: &Meta,
    name: &str,
) -> Result<(), LayerError> {
    nix::unistd::fchownat(
        parent,
        base,
        Some(NixUid::from_raw(meta.uid)),
        Some(NixGid::from_raw(meta.gid)),
        NixAtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(io_err(format!("setting the owner of {name:?}")))
}

/// Xattrs of a symlink or device, which cannot be opened for `fsetxattr`: `lsetxattr` through
/// the parent's `/proc/self/fd` entry, which does not follow the final component.
fn set_xattrs_at(
    parent: BorrowedFd<'_>,
    base: &OsStr,
    meta: &Meta,
    name: &str,
) -> Result<(), LayerError> {
    if meta.xattrs.is_empty() {
        return Ok(());
    }
    let path = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd())).join(base);
    for (attr, value) in &meta.xattrs {
        match rustix::fs::lsetxattr(&path, attr, value, XattrFlags::empty()) {
            Ok(()) | Err(Errno::NOTSUP) => {}
            Err(e) => return Err(xattr_error(attr, name, e)),
        }
    }
    Ok(())
}

fn xattr_error(attr: &OsStr, name: &str, e: Errno) -> LayerError {
    io_err(format!("setting xattr {attr:?} on {name:?}"))(e)
}

fn set_times_at(
    parent: BorrowedFd<'_>,
    base: &OsStr,
    meta: &Meta,
    name: &str,
) -> Result<(), LayerError> {
    rustix::fs::utimensat(parent, base, &meta.timestamps(), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(io_err(format!("setting the times of {name:?}")))
}

/// Sets a directory's times after all entries are written. A directory that a later entry
/// replaced (or removed) is skipped.
fn set_dir_time(
    root: BorrowedFd<'_>,
    components: &[OsString],
    mtime: Timespec,
) -> Result<(), LayerError> {
    let name = paths::display(components);
    let times = Timestamps {
        last_access: mtime,
        last_modification: mtime,
    };
    let Some((base, parent_components)) = components.split_last() else {
        return rustix::fs::utimensat(root, ".", &times, AtFlags::empty())
            .map_err(io_err("setting the times of the layer root"));
    };
    let parent = match paths::open_dir(root, parent_components, false, &name) {
        Ok(fd) => fd,
        Err(LayerError::SymlinkInPath { .. } | LayerError::NotADirectory { .. }) => return Ok(()),
        Err(LayerError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    match paths::file_type_at(parent.as_fd(), base) {
        Ok(Some(FileType::Directory)) => {
            rustix::fs::utimensat(parent.as_fd(), base, &times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_err(format!("setting the times of {name:?}")))
        }
        Ok(_) => Ok(()),
        Err(e) => Err(io_err(format!("inspecting {name:?}"))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time(b"12").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (12, 0));
        assert!(parse_pax_time(b"x").is_none());
    }
}
