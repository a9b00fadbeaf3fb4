//! Resolving a path inside the container's root, the way the kernel would once the root is pivoted.
//!
//! A mount destination in config.json is a path inside the container, and the image controls the
//! symlinks along it: `/data -> /../../etc` must not send a mount to the host's `/etc`. [`resolve`]
//! walks the path component by component, following symlinks relative to the root and never above it,
//! like `filepath-securejoin`. The final mount is then made on a file descriptor opened with
//! `openat2(RESOLVE_IN_ROOT)` ([`open_in_root`]), so a symlink swapped in between cannot redirect it.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("resolving {path} in the container: too many levels of symbolic links")]
    Loop { path: PathBuf },
    #[error("opening {path} inside the root filesystem: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
}

const MAX_SYMLINKS: usize = 255;

/// Resolves `unsafe_path` (absolute or relative, inside the container) to a host path below `root`.
/// Components that do not exist yet are kept as they are.
pub fn resolve(root: &Path, unsafe_path: &Path) -> Result<PathBuf, PathError> {
    let mut pending: Vec<PathBuf> = Vec::new();
    push_components(&mut pending, unsafe_path);
    // `resolved` is relative to root and never contains `..`.
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part.as_os_str() == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let full = root.join(&candidate);
        match std::fs::read_link(&full) {
            Ok(target) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(PathError::Loop {
                        path: unsafe_path.to_path_buf(),
                    });
                }
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                push_components(&mut pending, &target);
            }
            Err(_) => resolved = candidate,
        }
    }
    Ok(root.join(resolved))
}

/// Pushes the components of `path` onto the stack so that the first component is popped first.
fn push_components(stack: &mut Vec<PathBuf>, path: &Path) {
    let parts: Vec<&OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            Component::ParentDir => Some(OsStr::new("..")),
            _ => None,
        })
        .collect();
    stack.extend(parts.into_iter().rev().map(PathBuf::from));
}

/// Opens `host_path` (which [`resolve`] placed below `root`) as an `O_PATH` descriptor, resolving it
/// again inside `root` with the kernel's `RESOLVE_IN_ROOT`, so that the descriptor is below `root`
/// whatever changed on disk since.
pub fn open_in_root(
    root: &OwnedFd,
    root_path: &Path,
    host_path: &Path,
) -> Result<OwnedFd, PathError> {
    let rel = host_path.strip_prefix(root_path).unwrap_or(host_path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| PathError::Open {
        path: host_path.to_path_buf(),
        source: e.into(),
    })
}

/// The `/proc/self/fd/N` path through which a mount can target an `O_PATH` descriptor.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        symlink("/../../../etc", root.join("escape")).unwrap();
        symlink("../../..", root.join("real/up")).unwrap();
        symlink("real", root.join("rel")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        assert_eq!(
            resolve(root, Path::new("/escape/passwd")).unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            resolve(root, Path::new("/real/up/x")).unwrap(),
            root.join("x")
        );
        assert_eq!(
            resolve(root, Path::new("/rel/sub")).unwrap(),
            root.join("real/sub")
        );
        assert_eq!(
            resolve(root, Path::new("/../../a")).unwrap(),
            root.join("a")
        );
        assert!(resolve(root, Path::new("/loop1")).is_err());
    }
}
