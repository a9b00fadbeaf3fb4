//! Performing the `mounts` of config.json inside the container's root filesystem.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};
use oci_spec::runtime::Mount;

use super::options::{self, Options};
use super::paths;
use super::RootfsError;

/// The state the mounts of one container share.
pub struct Target<'a> {
    /// The root filesystem on the host, canonical.
    pub root: &'a Path,
    /// An `O_PATH` descriptor of `root`.
    pub root_fd: &'a OwnedFd,
    /// The bundle directory, against which relative bind sources are resolved.
    pub bundle: &'a Path,
    /// Whether the container has a user namespace.
    pub in_userns: bool,
    /// /proc/self/cgroup as read before the cgroup namespace was made (for `cgroup` mounts).
    pub host_cgroup: Option<&'a str>,
}

pub(super) fn sys_err(what: String) -> impl FnOnce(nix::Error) -> RootfsError {
    move |e| RootfsError::Sys { what, source: e }
}

pub(super) fn io_err(what: String) -> impl FnOnce(std::io::Error) -> RootfsError {
    move |e| RootfsError::Io { what, source: e }
}

/// Mounts `m` into the root filesystem; `idmap` is the detached copy of its source, if the
/// runtime made one.
pub fn mount_one(
    target: &Target<'_>,
    m: &Mount,
    idmap: Option<&OwnedFd>,
) -> Result<(), RootfsError> {
    let opts = options::parse(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("");
    if matches!(typ, "proc" | "sysfs") {
        refuse_non_directory(target.root, m.destination(), typ)?;
    }
    let dest = paths::resolve(target.root, m.destination())?;
    if typ == "cgroup" || typ == "cgroup2" {
        return super::cgroupfs::mount_cgroups(&dest, &opts, target);
    }
    if typ == "bind" || opts.is_bind() {
        return bind(target, m, &dest, &opts, idmap);
    }
    if idmap.is_some() {
        return Err(RootfsError::Config(format!(
            "mount on {}: uidMappings and gidMappings need a bind mount",
            m.destination().display()
        )));
    }
    fs::create_dir_all(&dest)
        .map_err(io_err(format!("creating mount point {}", dest.display())))?;
    let fd = paths::open_in_root(target.root_fd, target.root, &dest)?;
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    let flags = opts.flags & !MsFlags::MS_REMOUNT;
    match mount(Some(&source), &paths::fd_path(&fd), Some(typ), flags, data) {
        // As runc: in a user namespace that does not own the network namespace (one the
        // engine made), sysfs cannot be mounted; the host's /sys is bound instead.
        Err(nix::Error::EPERM) if typ == "sysfs" && target.in_userns => {
            return bind_host_sys(target, &fd, &dest, &opts, m.destination());
        }
        r => r.map_err(sys_err(format!(
            "mounting {typ} on {}",
            m.destination().display()
        )))?,
    }
    // The descriptor names the directory under the new mount: open the mount itself.
    let mounted = paths::open_in_root(target.root_fd, target.root, &dest)?;
    apply_recursive_attrs(&mounted, &opts, m.destination())?;
    apply_propagation(&mounted, &opts, m.destination())
}

/// The host's /sys bound (recursively) on `fd` for a sysfs mount, read-only (every mount
/// below too) when the mount asks for it.
fn bind_host_sys(
    target: &Target<'_>,
    fd: &OwnedFd,
    dest: &Path,
    opts: &Options,
    destination: &Path,
) -> Result<(), RootfsError> {
    let what = || {
        format!(
            "binding /sys on {} (sysfs in a user namespace)",
            destination.display()
        )
    };
    mount(
        Some("/sys"),
        &paths::fd_path(fd),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys_err(what()))?;
    let mounted = paths::open_in_root(target.root_fd, target.root, dest)?;
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        let attr = crate::sys::MountAttr {
            attr_set: crate::sys::mount_attr::RDONLY,
            ..Default::default()
        };
        crate::sys::mount_setattr(mounted.as_fd(), true, &attr).map_err(io_err(what()))?;
    }
    apply_propagation(&mounted, opts, destination)
}

/// proc and sysfs only go on an ordinary directory of the rootfs, never through a symlink the
/// image controls (runc's rule, from the attacks that mounted them over host paths).
fn refuse_non_directory(root: &Path, destination: &Path, typ: &str) -> Result<(), RootfsError> {
    let unresolved = root.join(destination.strip_prefix("/").unwrap_or(destination));
    match fs::symlink_metadata(&unresolved) {
        Ok(meta) if !meta.is_dir() => Err(RootfsError::Config(format!(
            "filesystem {typ:?} must be mounted on ordinary directory"
        ))),
        _ => Ok(()),
    }
}

/// The recursive options (`rro`, `rnosuid`...): mount_setattr(2) with AT_RECURSIVE.
fn apply_recursive_attrs(fd: &OwnedFd, opts: &Options, dest: &Path) -> Result<(), RootfsError> {
    if opts.recursive == crate::sys::MountAttr::default() {
        return Ok(());
    }
    crate::sys::mount_setattr(fd.as_fd(), true, &opts.recursive).map_err(io_err(format!(
        "applying recursive mount options to {}",
        dest.display()
    )))
}

/// Attaches `tree`, a detached mount made by the runtime (a copy of the source, idmapped or
/// taken before the init entered the mount template), on the mount point `dest`.
fn attach_tree(tree: &OwnedFd, dest: &OwnedFd) -> std::io::Result<()> {
    use rustix::mount::MoveMountFlags;
    rustix::mount::move_mount(
        tree,
        "",
        dest,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )?;
    Ok(())
}

fn bind(
    target: &Target<'_>,
    m: &Mount,
    dest: &Path,
    opts: &Options,
    idmap: Option<&OwnedFd>,
) -> Result<(), RootfsError> {
    let source = m.source().as_ref().ok_or_else(|| {
        RootfsError::Config(format!(
            "bind mount on {} has no source",
            m.destination().display()
        ))
    })?;
    let source = if source.is_absolute() {
        source.clone()
    } else {
        target.bundle.join(source)
    };
    // A detached copy made before the init left the host's mount namespace is looked at
    // instead of the path, which the init may no longer reach.
    let is_dir = match idmap {
        Some(tree) => rustix::fs::fstat(tree)
            .map(|st| {
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
            })
            .map_err(|e| io_err(format!("bind mount source {}", source.display()))(e.into()))?,
        None => fs::metadata(&source)
            .map_err(io_err(format!("bind mount source {}", source.display())))?
            .is_dir(),
    };
    create_mount_point(dest, is_dir)?;
    let fd = paths::open_in_root(target.root_fd, target.root, dest)?;
    let dest_fd_path = paths::fd_path(&fd);
    let what = || {
        format!(
            "bind mounting {} on {}",
            source.display(),
            m.destination().display()
        )
    };
    match idmap {
        Some(tree) => attach_tree(tree, &fd).map_err(io_err(format!("{} (attaching)", what())))?,
        None => mount(
            Some(&source),
            &dest_fd_path,
            None::<&str>,
            MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC),
            None::<&str>,
        )
        .map_err(sys_err(what()))?,
    }
    // The descriptor names the directory under the new mount: open the mount itself.
    let mounted = paths::open_in_root(target.root_fd, target.root, dest)?;
    let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if !extra.is_empty() {
        remount(&paths::fd_path(&mounted), extra, &source).map_err(sys_err(what()))?;
    }
    apply_recursive_attrs(&mounted, opts, m.destination())?;
    apply_propagation(&mounted, opts, m.destination())
}

/// Remounts a bind mount with `flags`, keeping the flags the kernel locks on the source mount
/// (nosuid, nodev, noexec, atime flags): dropping them is refused inside a user namespace.
pub(super) fn remount(target: &Path, flags: MsFlags, source: &Path) -> nix::Result<()> {
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    match mount(
        None::<&str>,
        target,
        None::<&str>,
        base | flags,
        None::<&str>,
    ) {
        Err(nix::Error::EPERM) => {
            let locked = statvfs(source).map(|s| locked_flags(s.flags()))?;
            mount(
                None::<&str>,
                target,
                None::<&str>,
                base | flags | locked,
                None::<&str>,
            )
        }
        other => other,
    }
}

/// The `nosuid`, `nodev` and `noexec` flags of the mount `path` is on.
pub(super) fn security_flags(path: &Path) -> nix::Result<MsFlags> {
    let flags = statvfs(path)?.flags();
    Ok(locked_flags(flags) & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC))
}

fn locked_flags(f: FsFlags) -> MsFlags {
    let mut out = MsFlags::empty();
    for (fs_flag, ms_flag) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs_flag) {
            out |= ms_flag;
        }
    }
    out
}

fn apply_propagation(fd: &OwnedFd, opts: &Options, dest: &Path) -> Result<(), RootfsError> {
    for flag in &opts.propagation {
        mount(
            None::<&str>,
            &paths::fd_path(fd),
            None::<&str>,
            *flag,
            None::<&str>,
        )
        .map_err(sys_err(format!(
            "changing propagation of {}",
            dest.display()
        )))?;
    }
    Ok(())
}

/// Creates a directory, or an empty file for a file bind mount, with its parents.
pub(super) fn create_mount_point(dest: &Path, dir: bool) -> Result<(), RootfsError> {
    let err = || format!("creating mount point {}", dest.display());
    if dir {
        return fs::create_dir_all(dest).map_err(io_err(err()));
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(io_err(err()))?;
    }
    if fs::symlink_metadata(dest).is_err() {
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dest)
            .map_err(io_err(err()))?;
    }
    Ok(())
}
