//! Files opened inside a directory tree that is not ours (an image's root filesystem, an
//! unpacked archive, a container's root): symlinks and `..` are resolved as if the tree's top
//! were `/` (openat2's `RESOLVE_IN_ROOT`), so a hostile `etc -> /` or `manifest.json ->
//! /dev/zero` reaches nothing outside it, and magic links (`/proc/self/root`) are refused.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// Opens `path` (relative to `root`) with `flags` inside `root`.
///
/// The kernel answers EAGAIN when a mount or a rename anywhere on the system raced with a `..`
/// of the walk (openat2(2)); the walk is then tried again, a bounded number of times.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        let opened = rustix::fs::openat2(
            root,
            path,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        );
        match opened {
            Err(rustix::io::Errno::AGAIN) if tries < 64 => tries += 1,
            other => return other,
        }
    }
}

/// Opens `rel` as a regular file inside the directory `root` (see [`open_in_root`]); a FIFO,
/// a device or a directory is refused without blocking on it.
pub fn open_file(root: &Path, rel: &str) -> io::Result<File> {
    let dir = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = open_in_root(
        dir.as_fd(),
        Path::new(rel),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
    )?;
    let file = File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// Reads `rel` inside `root` (see [`open_file`]), at most `max` bytes: a larger file is an
/// error (`FileTooLarge`), never read whole.
pub fn read_file(root: &Path, rel: &str, max: u64) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    open_file(root, rel)?.take(max + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::write(root.join("real/passwd"), "inside\n").unwrap();
        // `etc -> /` must mean the root's own top, never the host's.
        std::os::unix::fs::symlink("/", root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/real/passwd", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../real/passwd", root.join("up")).unwrap();
        std::fs::write(dir.path().join("outside"), "host\n").unwrap();
        std::os::unix::fs::symlink("../outside", root.join("escape")).unwrap();
        assert_eq!(
            read_file(&root, "etc/real/passwd", 100).unwrap(),
            b"inside\n"
        );
        assert_eq!(read_file(&root, "abs", 100).unwrap(), b"inside\n");
        assert_eq!(read_file(&root, "up", 100).unwrap(), b"inside\n");
        assert!(read_file(&root, "escape", 100).is_err());
        assert!(read_file(&root, "etc/hostname", 100).is_err());
        assert!(
            read_file(&root, "real", 100).is_err(),
            "a directory is refused"
        );
        let err = read_file(&root, "real/passwd", 3).unwrap_err();
        assert_eq!(err.to_string(), "larger than 3 bytes");
    }
}
