//! The volumes and bind mounts of a container that does not run, for `docker cp` (dockerd
//! mounts them for the copy too). They are mounted on its root filesystem in a mount namespace
//! of their own, made by a short-lived thread: nothing appears in berthd's (the host's) mount
//! table, a start meanwhile sees none of them, and they all go at once when the last
//! descriptor of that namespace (held by the [`super::Rootfs`]) is closed.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use berth_image::inside::open_in_root;
use nix::mount::MsFlags;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::archive::fd_path;
use crate::container::Container;
use crate::error::{EngineError, Result};
use crate::mounts::{plan, Check, Kind};

/// One mount of the copy's view.
#[derive(Debug, Clone)]
pub(super) struct CopyMount {
    /// The host directory or file (a volume's data directory, a bind's source).
    pub source: PathBuf,
    /// A volume's `Subpath`, resolved beneath the source.
    pub subpath: Option<String>,
    /// The target in the container.
    pub destination: String,
    pub rw: bool,
}

/// The volumes and binds of `c` (tmpfs mounts have nothing to show), parents first.
pub(super) fn copy_mounts(c: &Container, volumes: &Path) -> Vec<CopyMount> {
    let planned = plan(&c.host_config, &c.anonymous_volumes, Check::Lenient).unwrap_or_default();
    let tmpfs: Vec<String> = c
        .host_config
        .tmpfs
        .iter()
        .flatten()
        .map(|(d, _)| d.trim_end_matches('/').to_string())
        .collect();
    let mut out: Vec<CopyMount> = planned
        .into_iter()
        .filter(|p| !tmpfs.contains(&p.destination))
        .filter_map(|p| {
            let source = match p.kind {
                Kind::Tmpfs => return None,
                Kind::Bind => PathBuf::from(&p.source),
                Kind::Volume if p.source.is_empty() => return None,
                Kind::Volume => crate::volumes::source(volumes, &p.source).ok()?,
            };
            Some(CopyMount {
                source,
                subpath: p.subpath.clone(),
                destination: p.destination,
                rw: p.rw,
            })
        })
        .collect();
    out.sort_by_key(|m| Path::new(&m.destination).components().count());
    out
}

/// The root of the filesystem at `rootfs` (mounted) with `mounts` on it, in a new mount
/// namespace: (a descriptor of the root, one of the namespace that keeps the mounts).
pub(super) fn mount_view(rootfs: &Path, mounts: Vec<CopyMount>) -> Result<(OwnedFd, OwnedFd)> {
    let rootfs = rootfs.to_path_buf();
    std::thread::Builder::new()
        .name("berth-cp-mounts".into())
        .spawn(move || in_new_namespace(&rootfs, &mounts))
        .map_err(|e| EngineError::internal("a thread for the copy's mounts", e))?
        .join()
        .unwrap_or_else(|_| Err(EngineError::Internal("the copy's mounts panicked".into())))
}

/// On the calling thread (which is left in the new namespace: it is a thread of its own).
fn in_new_namespace(rootfs: &Path, mounts: &[CopyMount]) -> Result<(OwnedFd, OwnedFd)> {
    let err = |what: &str| {
        let what = what.to_string();
        move |e: nix::Error| EngineError::internal(&what, e)
    };
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(err("a mount namespace for the copy"))?;
    // Nothing made here reaches the host's namespace.
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(err("making the copy's mounts private"))?;
    let root = rustix::fs::open(
        rootfs,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| EngineError::internal("open the container's rootfs", e))?;
    for m in mounts {
        if let Err(e) = mount_one(root.as_fd(), m) {
            tracing::warn!(target = %m.destination, error = %e, "docker cp: a mount of the container left out");
        }
    }
    let ns = rustix::fs::open(
        "/proc/thread-self/ns/mnt",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| EngineError::internal("the copy's mount namespace", e))?;
    Ok((root, ns))
}

fn mount_one(root: std::os::fd::BorrowedFd<'_>, m: &CopyMount) -> Result<()> {
    let io = |what: &str, e: Errno| EngineError::internal(what, e);
    let source = rustix::fs::open(&m.source, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io("open the mount's source", e))?;
    let source = match &m.subpath {
        Some(sub) => rustix::fs::openat2(
            &source,
            sub.as_str(),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| io("open the volume's subpath", e))?,
        None => source,
    };
    let is_dir = rustix::fs::fstat(&source)
        .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir())
        .map_err(|e| io("stat the mount's source", e))?;
    let rel = relative(&m.destination);
    let target = match open_in_root(root, &rel, OFlags::PATH) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => make_target(root, &rel, is_dir)?,
        Err(e) => return Err(io("open the mount's target", e)),
    };
    nix::mount::mount(
        Some(&fd_path(source.as_fd())),
        &fd_path(target.as_fd()),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| EngineError::internal("bind the mount for the copy", e))?;
    if !m.rw {
        // The mount just made is on top of the target now.
        let top = open_in_root(root, &rel, OFlags::PATH)
            .map_err(|e| io("open the mount for the copy", e))?;
        nix::mount::mount(
            None::<&str>,
            &fd_path(top.as_fd()),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| EngineError::internal("make the copy's mount read-only", e))?;
    }
    Ok(())
}

/// A target path as a relative path inside the root.
fn relative(destination: &str) -> PathBuf {
    Path::new(destination)
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

/// Makes the mount point `rel` inside the root (a directory, or an empty file for a file's
/// bind), with its missing parents, as the start would; returns it opened.
fn make_target(root: std::os::fd::BorrowedFd<'_>, rel: &Path, is_dir: bool) -> Result<OwnedFd> {
    let io = |e: Errno| EngineError::internal("make the mount's target", e);
    let parts: Vec<&std::ffi::OsStr> = rel.iter().collect();
    let mut done = PathBuf::new();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let parent = open_in_root(
            root,
            &done_or_dot(&done),
            OFlags::RDONLY | OFlags::DIRECTORY,
        )
        .map_err(io)?;
        let made = if last && !is_dir {
            rustix::fs::openat(
                &parent,
                *part,
                OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .map(drop)
        } else {
            rustix::fs::mkdirat(&parent, *part, Mode::from_raw_mode(0o755))
        };
        match made {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(io(e)),
        }
        done.push(part);
    }
    open_in_root(root, rel, OFlags::PATH).map_err(io)
}

fn done_or_dot(p: &Path) -> PathBuf {
    if p.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        p.to_path_buf()
    }
}
