//! Filesystem operations confined to a directory tree that is not ours (a build context being
//! unpacked, an image's root filesystem): every path is resolved by the kernel relative to a
//! descriptor of the tree's top, with openat2, so neither `..` nor a symlink (even one written a
//! moment earlier by the same tar) can reach outside it. Single names are then created or
//! removed relative to a resolved parent descriptor, never following a final symlink.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Uid, XattrFlags};
use rustix::io::Errno;

/// A directory path below the top: no `.`, `..` or empty components; empty is the top itself.
pub(crate) type Components = Vec<OsString>;

/// Opens the directory at `path` (an ordinary host path: the top of a tree).
pub(crate) fn open_top(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Normalises a raw path (tar entry name, link target, COPY source) lexically, as Go's
/// `filepath.Clean("/" + p)` does: a leading `/` is dropped and `.` components vanish. `None` when
/// a `..` climbs above the top (`clamp` false); with `clamp`, such a `..` stays at the top.
pub(crate) fn components(raw: &[u8], clamp: bool) -> Option<Components> {
    let mut out: Components = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() && !clamp {
                    return None;
                }
            }
            name => out.push(OsStr::from_bytes(name).to_os_string()),
        }
    }
    Some(out)
}

/// `components` as a relative path (`.` for the top).
pub(crate) fn to_path(components: &[OsString]) -> PathBuf {
    if components.is_empty() {
        return PathBuf::from(".");
    }
    components.iter().collect()
}

/// `components` joined with `/`, for messages and pattern matching.
pub(crate) fn display(components: &[OsString]) -> String {
    let parts: Vec<_> = components.iter().map(|c| c.to_string_lossy()).collect();
    parts.join("/")
}

/// openat2 below `top`, with symlinks and `..` followed as if the top were `/` (a chroot): an
/// image's `/app -> /etc` is the image's `/etc`. The kernel answers EAGAIN when a rename or mount raced with a `..` of the
/// walk; the walk is then tried again, a bounded number of times.
pub(crate) fn open_at(top: BorrowedFd<'_>, path: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(top, path, flags | OFlags::CLOEXEC, Mode::empty(), how) {
            Err(Errno::AGAIN) if tries < 64 => tries += 1,
            other => return other,
        }
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY);

/// Opens the existing directory `components` below `top`.
pub(crate) fn open_dir(top: BorrowedFd<'_>, components: &[OsString]) -> Result<OwnedFd, Errno> {
    open_at(top, &to_path(components), DIR_FLAGS)
}

/// Owner and mode of the directories [`make_dirs`] creates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewDir {
    pub mode: u32,
    pub owner: (u32, u32),
}

/// Opens the directory `components` below `top`, creating the missing ones (`mkdir -p`) with
/// `new`'s mode and owner. A component that exists but is not a directory is ENOTDIR.
pub(crate) fn make_dirs(
    top: BorrowedFd<'_>,
    components: &[OsString],
    new: NewDir,
) -> Result<OwnedFd, Errno> {
    let mut current = open_dir(top, &[])?;
    for i in 0..components.len() {
        let prefix = &components[..=i];
        current = match open_dir(top, prefix) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                let name = &components[i];
                match rustix::fs::mkdirat(&current, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => {
                        let fd = rustix::fs::openat(
                            &current,
                            name,
                            DIR_FLAGS | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::empty(),
                        )?;
                        set_owner_mode(fd.as_fd(), new.owner, new.mode)?;
                        fd
                    }
                    // A dangling symlink, or a race: resolve again, which tells which.
                    Err(Errno::EXIST) => open_dir(top, prefix)?,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
    }
    Ok(current)
}

/// Owner first (chown clears set-id bits), then the mode.
pub(crate) fn set_owner_mode(
    fd: BorrowedFd<'_>,
    owner: (u32, u32),
    mode: u32,
) -> Result<(), Errno> {
    rustix::fs::fchown(
        fd,
        Some(Uid::from_raw(owner.0)),
        Some(Gid::from_raw(owner.1)),
    )?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode & 0o7777))
}

/// Owner of `name` in `dir`, not following a symlink.
pub(crate) fn chown_at(dir: BorrowedFd<'_>, name: &OsStr, owner: (u32, u32)) -> Result<(), Errno> {
    rustix::fs::chownat(
        dir,
        name,
        Some(Uid::from_raw(owner.0)),
        Some(Gid::from_raw(owner.1)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
}

/// The type of `name` in `dir` (a symlink is a symlink), or `None` when nothing is there.
pub(crate) fn file_type_at(dir: BorrowedFd<'_>, name: &OsStr) -> Result<Option<FileType>, Errno> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes `name` in `dir` and, for a directory, everything below it. Symlinks are removed, never
/// followed.
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &OsStr) -> Result<(), Errno> {
    match file_type_at(dir, name)? {
        None => Ok(()),
        Some(FileType::Directory) => {
            let sub = rustix::fs::openat(
                dir,
                name,
                DIR_FLAGS | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            for child in list_dir(sub.as_fd())? {
                remove_all_at(sub.as_fd(), &child)?;
            }
            rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
        }
        Some(_) => rustix::fs::unlinkat(dir, name, AtFlags::empty()),
    }
}

/// The names in an open directory, sorted bytewise, without `.` and `..`.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> Result<Vec<OsString>, Errno> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// Overlay's own xattrs would change how overlayfs reads a layer: never copied or written.
pub(crate) fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// An extended attribute: name and value.
pub(crate) type Xattr = (OsString, Vec<u8>);

/// The xattrs of an open file, sorted by name (overlay's own left out). A file system without
/// xattrs has none.
pub(crate) fn read_xattrs(fd: BorrowedFd<'_>) -> Result<Vec<Xattr>, Errno> {
    let size = match rustix::fs::flistxattr_query(fd) {
        Ok(0) | Err(Errno::NOTSUP) => return Ok(Vec::new()),
        Ok(n) => n,
        Err(e) => return Err(e),
    };
    let mut list = vec![0u8; size];
    let n = rustix::fs::flistxattr(fd, &mut list[..])?;
    list.truncate(n);
    let mut out = Vec::new();
    for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if is_overlay_xattr(name) {
            continue;
        }
        let name = OsStr::from_bytes(name);
        let len = match rustix::fs::fgetxattr_query(fd, name) {
            Ok(n) => n,
            // Removed meanwhile.
            Err(Errno::NODATA) => continue,
            Err(e) => return Err(e),
        };
        let mut value = vec![0u8; len];
        let got = rustix::fs::fgetxattr(fd, name, &mut value[..])?;
        value.truncate(got);
        out.push((name.to_os_string(), value));
    }
    out.sort();
    Ok(out)
}

/// Sets xattrs on an open file; a file system without xattr support ignores them.
pub(crate) fn write_xattrs(fd: BorrowedFd<'_>, xattrs: &[Xattr]) -> Result<(), Errno> {
    for (name, value) in xattrs {
        if is_overlay_xattr(name.as_bytes()) {
            continue;
        }
        match rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty()) {
            Ok(()) | Err(Errno::NOTSUP) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sets xattrs on `name` in `dir` without following it (a symlink cannot be opened for
/// `fsetxattr`): `lsetxattr` through the parent's `/proc/self/fd` entry. `name` is one
/// component, so the only symlink on that path is the magic link to `dir` itself.
pub(crate) fn write_xattrs_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    xattrs: &[Xattr],
) -> Result<(), Errno> {
    if xattrs.is_empty() {
        return Ok(());
    }
    let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
    for (attr, value) in xattrs {
        if is_overlay_xattr(attr.as_bytes()) {
            continue;
        }
        match rustix::fs::lsetxattr(&path, attr, value, XattrFlags::empty()) {
            // Linux refuses user.* xattrs on symlinks.
            Ok(()) | Err(Errno::NOTSUP) | Err(Errno::PERM) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(raw: &str, clamp: bool) -> Option<String> {
        components(raw.as_bytes(), clamp).map(|c| display(&c))
    }

    #[test]
    fn lexical_normalisation() {
        assert_eq!(comps("a/./b//c/", false).as_deref(), Some("a/b/c"));
        assert_eq!(comps("/etc/x", false).as_deref(), Some("etc/x"));
        assert_eq!(comps("a/../b", false).as_deref(), Some("b"));
        assert_eq!(comps("./", false).as_deref(), Some(""));
        assert_eq!(comps("../x", false), None);
        assert_eq!(comps("a/../../x", false), None);
        assert_eq!(comps("../x", true).as_deref(), Some("x"));
    }

    #[test]
    fn make_dirs_creates_inside_a_symlinked_parent_in_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink("/", root.join("up")).unwrap();
        let top = open_top(&root).unwrap();
        let new = NewDir {
            mode: 0o755,
            owner: (0, 0),
        };
        let comps = components(b"up/made/deep", false).unwrap();
        make_dirs(top.as_fd(), &comps, new).unwrap();
        assert!(root.join("made/deep").is_dir());
        assert!(!Path::new("/made").exists());
    }
}
