//! Entry paths, normalised as Docker does, and directories opened below the layer root without
//! ever following a symlink.
//!
//! A tar entry's name is made relative (a leading `/` is dropped) and `.`/`..` are resolved
//! lexically; a `..` that would climb above the root is a [`LayerError::PathEscape`]. Parent
//! directories are then opened one component at a time with `O_NOFOLLOW | O_DIRECTORY` relative to
//! the previous descriptor, so a symlink anywhere along the path (which the layer itself may have
//! written a moment earlier) stops the entry with [`LayerError::SymlinkInPath`] instead of being
//! followed.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{io_err, LayerError};

/// A normalised path below the layer root: no `.`, `..` or empty components; empty is the root.
pub(crate) type Components = Vec<OsString>;

/// Normalises the raw tar name `raw`; `entry` is the name as errors show it.
pub(crate) fn normalize(raw: &[u8], entry: &str) -> Result<Components, LayerError> {
    let mut out: Components = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(LayerError::PathEscape {
                        entry: entry.to_string(),
                    });
                }
            }
            name => out.push(OsStr::from_bytes(name).to_os_string()),
        }
    }
    Ok(out)
}

/// `components` joined with `/`, for messages.
pub(crate) fn display(components: &[OsString]) -> String {
    let joined: Vec<_> = components.iter().map(|c| c.to_string_lossy()).collect();
    joined.join("/")
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens the directory `components` below `root`, never following a symlink. With `create`,
/// missing directories are made (mode 0755, owned by the caller), as Docker does for entries whose
/// parents the tar does not list.
pub(crate) fn open_dir(
    root: BorrowedFd<'_>,
    components: &[OsString],
    create: bool,
    entry: &str,
) -> Result<OwnedFd, LayerError> {
    let mut current = rustix::fs::openat(root, ".", DIR_FLAGS, Mode::empty())
        .map_err(io_err("opening the layer directory"))?;
    for (i, name) in components.iter().enumerate() {
        let opened = match rustix::fs::openat(&current, name, DIR_FLAGS, Mode::empty()) {
            Err(Errno::NOENT) if create => {
                match rustix::fs::mkdirat(&current, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => {
                        return Err(io_err(format!(
                            "creating directory {:?} for layer entry {entry:?}",
                            display(&components[..=i])
                        ))(e))
                    }
                }
                rustix::fs::openat(&current, name, DIR_FLAGS, Mode::empty())
            }
            other => other,
        };
        current = match opened {
            Ok(fd) => fd,
            Err(e @ (Errno::NOTDIR | Errno::LOOP)) => {
                return Err(not_a_directory(
                    current.as_fd(),
                    name,
                    &components[..=i],
                    entry,
                    e,
                ))
            }
            Err(e) => {
                return Err(io_err(format!(
                    "opening directory {:?} for layer entry {entry:?}",
                    display(&components[..=i])
                ))(e))
            }
        };
    }
    Ok(current)
}

/// The error for a path component that could not be opened as a directory.
fn not_a_directory(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    prefix: &[OsString],
    entry: &str,
    errno: Errno,
) -> LayerError {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
            LayerError::SymlinkInPath {
                entry: entry.to_string(),
                symlink: display(prefix),
            }
        }
        Ok(_) => LayerError::NotADirectory {
            entry: entry.to_string(),
            component: display(prefix),
        },
        Err(_) => io_err(format!("opening directory {:?}", display(prefix)))(errno),
    }
}

/// The type of `name` in `parent` (not following a symlink), or `None` if it does not exist.
pub(crate) fn file_type_at(
    parent: BorrowedFd<'_>,
    name: &OsStr,
) -> Result<Option<FileType>, Errno> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes `name` in `parent`, a directory with everything below it; never follows a symlink.
pub(crate) fn remove_all_at(parent: BorrowedFd<'_>, name: &OsStr) -> Result<(), Errno> {
    match file_type_at(parent, name)? {
        None => Ok(()),
        Some(FileType::Directory) => {
            let dir = rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())?;
            let mut children = Vec::new();
            for child in rustix::fs::Dir::read_from(&dir)? {
                let child = child?;
                let child_name = child.file_name().to_bytes();
                if child_name != b"." && child_name != b".." {
                    children.push(OsStr::from_bytes(child_name).to_os_string());
                }
            }
            for child in &children {
                remove_all_at(dir.as_fd(), child)?;
            }
            rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)
        }
        Some(_) => rustix::fs::unlinkat(parent, name, AtFlags::empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Result<String, LayerError> {
        normalize(s.as_bytes(), s).map(|c| display(&c))
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(norm("/etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(norm("./a//b/./c/").unwrap(), "a/b/c");
        assert_eq!(norm("a/b/../c").unwrap(), "a/c");
        assert_eq!(norm("./").unwrap(), "");
        assert!(matches!(norm("../x"), Err(LayerError::PathEscape { .. })));
        assert!(matches!(
            norm("a/../../x"),
            Err(LayerError::PathEscape { .. })
        ));
        assert!(matches!(norm("/../x"), Err(LayerError::PathEscape { .. })));
    }

    #[test]
    fn refuses_symlinks_along_the_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
        let root = std::fs::File::open(dir.path()).unwrap();
        let comps = normalize(b"link/x", "link/x").unwrap();
        let err = open_dir(root.as_fd(), &comps[..1], true, "link/x").unwrap_err();
        assert!(matches!(err, LayerError::SymlinkInPath { ref symlink, .. } if symlink == "link"));
        let comps = normalize(b"new/sub", "new/sub").unwrap();
        open_dir(root.as_fd(), &comps, true, "new/sub").unwrap();
        assert!(dir.path().join("new/sub").is_dir());
        remove_all_at(root.as_fd(), OsStr::new("new")).unwrap();
        assert!(!dir.path().join("new").exists());
    }
}
