//! A remapped container's rootfs, with no copy of its image: each lower layer of the overlay is
//! a detached idmapped copy of the layer's directory (open_tree, then mount_setattr with the
//! remap's user namespace), handed to overlayfs by descriptor (`lowerdir+`, fsconfig's
//! FSCONFIG_SET_FD, Linux 6.13+); the upper layer and its work directory are plain
//! directories, the upper one owned by the remapped root. Files of the layers owned by host id
//! N appear owned by N's image in the mappings (root: the remapped root), which the
//! container's user namespace maps back to N; a copy-up keeps that owner, and a new file gets
//! the creator's host id. Bind-mounted snapshots (the copy and btrfs snapshotters) are bound
//! idmapped as a whole.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags};

#[derive(Debug, thiserror::Error)]
#[error("mounting the remapped rootfs on {target}: {what}: {source}")]
pub struct RootfsError {
    target: PathBuf,
    what: String,
    source: std::io::Error,
}

/// A remapped container's rootfs: the snapshot `mounts` on `target`, the layers idmapped with
/// the remap's user namespace. The overlay's writable layer `upper` (its top directory is the
/// rootfs's `/`) is the remapped root's; a bound snapshot (vfs, btrfs) is idmapped whole, its
/// ids staying the image's on disk.
pub fn mount_container(
    mounts: &[berth_image::snapshot::Mount],
    upper: Option<&Path>,
    target: &Path,
    remap: &super::Remap,
) -> Result<(), RootfsError> {
    let overlay = mounts.iter().any(|m| m.typ == "overlay");
    if let Some(upper) = upper.filter(|_| overlay) {
        super::chown_root(remap, upper).map_err(|source| RootfsError {
            target: target.to_path_buf(),
            what: format!("chown {}", upper.display()),
            source,
        })?;
    }
    mount(mounts, target, remap.userns())
}

/// Mounts the snapshot `mounts` on `target` with the layers idmapped through `userns`.
pub fn mount(
    mounts: &[berth_image::snapshot::Mount],
    target: &Path,
    userns: BorrowedFd<'_>,
) -> Result<(), RootfsError> {
    for m in mounts {
        let err = |what: String| {
            let target = target.to_path_buf();
            move |source: std::io::Error| RootfsError {
                target,
                what,
                source,
            }
        };
        let resolve = |p: &str| match &m.cwd {
            Some(cwd) => cwd.join(p),
            None => PathBuf::from(p),
        };
        let tree = if m.typ == "overlay" {
            overlay(m, &resolve, userns).map_err(|(what, e)| err(what)(e))?
        } else {
            let source = resolve(&m.source);
            let recursive = m.options.iter().any(|o| o == "rbind");
            let tree = idmapped(&source, userns, recursive)
                .map_err(err(format!("idmapped bind of {}", source.display())))?;
            if m.options.iter().any(|o| o == "ro") {
                setattr(tree.as_fd(), berth_runtime::sys::mount_attr::RDONLY, None)
                    .map_err(err("read-only".into()))?;
            }
            tree
        };
        rustix::mount::move_mount(
            tree.as_fd(),
            "",
            rustix::fs::CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|e| err("attaching it".into())(e.into()))?;
    }
    Ok(())
}

/// The overlay of snapshot mount `m` (`lowerdir=`, `upperdir=`, `workdir=`), its lower layers
/// idmapped, as a detached mount.
fn overlay(
    m: &berth_image::snapshot::Mount,
    resolve: &dyn Fn(&str) -> PathBuf,
    userns: BorrowedFd<'_>,
) -> Result<OwnedFd, (String, std::io::Error)> {
    let step = |what: &str| {
        let what = what.to_string();
        move |e: rustix::io::Errno| (what, std::io::Error::from(e))
    };
    let fs =
        rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(step("fsopen"))?;
    let mut attrs = MountAttrFlags::empty();
    // The detached copies must stay open until the overlay is made: closing one unmounts it.
    let mut trees = Vec::new();
    for option in &m.options {
        if let Some(lowers) = option.strip_prefix("lowerdir=") {
            // Nearest layer first, as lowerdir= lists them.
            for lower in lowers.split(':').filter(|l| !l.is_empty()) {
                let path = resolve(lower);
                let tree = idmapped(&path, userns, false)
                    .map_err(|e| (format!("idmapped copy of {}", path.display()), e))?;
                rustix::mount::fsconfig_set_fd(fs.as_fd(), "lowerdir+", tree.as_fd()).map_err(
                    step(&format!(
                        "lowerdir+ {} (overlayfs takes layers by descriptor from Linux 6.13 on)",
                        path.display()
                    )),
                )?;
                trees.push(tree);
            }
        } else if let Some((key @ ("upperdir" | "workdir"), dir)) = option.split_once('=') {
            rustix::mount::fsconfig_set_string(fs.as_fd(), key, resolve(dir).as_path())
                .map_err(step(option))?;
        } else if option == "ro" {
            attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
        } else if let Some((key, value)) = option.split_once('=') {
            rustix::mount::fsconfig_set_string(fs.as_fd(), key, value).map_err(step(option))?;
        } else if option != "rw" {
            rustix::mount::fsconfig_set_flag(fs.as_fd(), option.as_str()).map_err(step(option))?;
        }
    }
    rustix::mount::fsconfig_create(fs.as_fd()).map_err(step("creating the overlay"))?;
    drop(trees);
    rustix::mount::fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(step("fsmount"))
}

/// A detached copy of `source` (and the mounts below when `recursive`) whose ids go through
/// the mappings of `userns`.
fn idmapped(source: &Path, userns: BorrowedFd<'_>, recursive: bool) -> std::io::Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let tree = rustix::mount::open_tree(rustix::fs::CWD, source, flags)?;
    setattr(
        tree.as_fd(),
        berth_runtime::sys::mount_attr::IDMAP,
        Some(userns),
    )?;
    Ok(tree)
}

fn setattr(tree: BorrowedFd<'_>, attr: u64, userns: Option<BorrowedFd<'_>>) -> std::io::Result<()> {
    let attr = berth_runtime::sys::MountAttr {
        attr_set: attr,
        userns_fd: userns.map(|u| u.as_raw_fd() as u64).unwrap_or_default(),
        ..Default::default()
    };
    berth_runtime::sys::mount_setattr(tree, false, &attr)
}
