//! The container's root filesystem: mounts, `/dev`, `pivot_root`, masked and read-only paths.
//!
//! Runs in the container's init, in its new mount namespace, in steps so that the init can wait
//! for its cgroup between them and the `createContainer` hooks can run as the runtime spec orders:
//! [`Rootfs::prepare_early`] (propagation, the rootfs bind, the mounts before the first cgroup
//! mount, made while the runtime moves the init into its cgroup), [`Rootfs::prepare_late`] (the
//! rest, devices), [`Rootfs::enter`] (`pivot_root`, or `chroot` with `--no-pivot`),
//! [`Rootfs::finish`] (masked and read-only paths, read-only root).

pub(crate) mod cgroupfs;
pub mod devices;
mod mounts;
pub mod options;
pub mod paths;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, chroot, pivot_root};
use oci_spec::runtime::Spec;

pub use paths::PathError;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("{0}")]
    Config(String),
}

/// The container's mount namespace, as the config's `linux.namespaces` give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountNs {
    /// A new one (the usual case).
    New,
    /// An existing one, joined by path: set up as a new one, as runc does.
    Joined,
    /// None listed: the runtime's own, shared with the host. The rootfs is entered with
    /// chroot, and the propagation of `/` is left alone (changing it would change the host's);
    /// the config's mounts are made on the host, below the rootfs, and removed at delete
    /// ([`unmount_below`]).
    Inherited,
}

/// Everything the root filesystem steps need.
#[derive(Debug, Clone)]
pub struct Rootfs {
    /// The rootfs directory on the host, canonical.
    pub path: PathBuf,
    pub bundle: PathBuf,
    pub in_userns: bool,
    pub no_pivot: bool,
    /// Which mount namespace the container has.
    pub mount_ns: MountNs,
    /// Per mount of the config: the detached copy of its source, idmapped (see `idmap`) or
    /// for a container made in the mount template, or None (mounted from its path).
    pub idmaps: std::sync::Arc<Vec<Option<OwnedFd>>>,
    /// The mount template the init enters (see `mount_template`), with the rootfs's copy.
    pub template: Option<std::sync::Arc<crate::mount_template::Template>>,
}

impl Rootfs {
    /// The index of the first `cgroup` mount of `spec` (or the number of mounts): the mounts
    /// before it can be made before the process sits in its cgroup and cgroup namespace.
    pub fn cgroup_split(spec: &Spec) -> usize {
        let mounts = spec.mounts().as_deref().unwrap_or_default();
        mounts
            .iter()
            .position(|m| matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")))
            .unwrap_or(mounts.len())
    }

    /// Step 0, in the init: with a mount template, enters a copy of it with the rootfs
    /// attached at `/rootfs`, which is then the rootfs's path; else the rootfs as it is.
    pub fn in_template(&self) -> Result<Rootfs, RootfsError> {
        let Some(template) = &self.template else {
            return Ok(self.clone());
        };
        template
            .enter()
            .map_err(|e| RootfsError::Config(e.to_string()))?;
        Ok(Rootfs {
            path: PathBuf::from(crate::mount_template::ROOTFS),
            ..self.clone()
        })
    }

    /// Step 1a: make the rootfs a mount point and mount the config's mounts before `split`.
    pub fn prepare_early(&self, spec: &Spec, split: usize) -> Result<(), RootfsError> {
        if self.mount_ns == MountNs::Inherited {
            return self.mount_range(spec, 0..split, None);
        }
        let flag = root_propagation(spec)?.unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
        mount(None::<&str>, "/", None::<&str>, flag, None::<&str>)
            .map_err(mounts::sys_err("setting the propagation of /".to_string()))?;
        // As runc: the mount holding the rootfs becomes private, so that the bind below does not
        // propagate anywhere and pivot_root finds no shared parent (whatever rootfsPropagation
        // made of /); the configured propagation is given to the new / after pivot_root.
        make_holding_mount_private(&self.path)?;
        mount(
            Some(&self.path),
            &self.path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(mounts::sys_err(format!(
            "bind mounting rootfs {}",
            self.path.display()
        )))?;
        self.mount_range(spec, 0..split, None)
    }

    /// Step 1b: the mounts from `split` on (in the cgroup namespace by now), then `/dev`.
    /// `host_cgroup` is /proc/self/cgroup as read before the cgroup namespace was made.
    pub fn prepare_late(
        &self,
        spec: &Spec,
        split: usize,
        host_cgroup: Option<&str>,
    ) -> Result<(), RootfsError> {
        let mounts = spec.mounts().as_deref().unwrap_or_default();
        self.mount_range(spec, split..mounts.len(), host_cgroup)?;
        let dev_is_tmpfs = mounts
            .iter()
            .any(|m| m.destination() == Path::new("/dev") && m.typ().as_deref() != Some("bind"));
        if dev_is_tmpfs {
            let devices = spec
                .linux()
                .as_ref()
                .and_then(|l| l.devices().as_deref())
                .unwrap_or_default();
            devices::create(&self.path, devices, self.in_userns)?;
            devices::symlinks(&self.path)?;
        }
        Ok(())
    }

    fn mount_range(
        &self,
        spec: &Spec,
        range: std::ops::Range<usize>,
        host_cgroup: Option<&str>,
    ) -> Result<(), RootfsError> {
        let mounts = spec.mounts().as_deref().unwrap_or_default();
        let Some(slice) = mounts.get(range.clone()) else {
            return Ok(());
        };
        if slice.is_empty() {
            return Ok(());
        }
        let root_fd = open_dir(&self.path)?;
        let target = mounts::Target {
            root: &self.path,
            root_fd: &root_fd,
            bundle: &self.bundle,
            in_userns: self.in_userns,
            host_cgroup,
        };
        slice.iter().zip(range.clone()).try_for_each(|(m, i)| {
            let idmap = self.idmaps.get(i).and_then(Option::as_ref);
            mounts::mount_one(&target, m, idmap)
        })
    }

    /// Step 2: make the rootfs the process's `/`, with the configured `rootfsPropagation`.
    pub fn enter(&self, spec: &Spec) -> Result<(), RootfsError> {
        chdir(&self.path).map_err(mounts::sys_err(format!("chdir to {}", self.path.display())))?;
        if self.mount_ns == MountNs::Inherited {
            // The host's mount table: nothing to move or pivot, and nothing to propagate.
            chroot(".").map_err(mounts::sys_err("chroot".to_string()))?;
            return chdir("/").map_err(mounts::sys_err("chdir to /".to_string()));
        }
        if self.no_pivot {
            mount(
                Some(&self.path),
                "/",
                None::<&str>,
                MsFlags::MS_MOVE,
                None::<&str>,
            )
            .map_err(mounts::sys_err("moving rootfs to /".to_string()))?;
            chroot(".").map_err(mounts::sys_err("chroot".to_string()))?;
        } else {
            // pivot_root(".", ".") stacks the old root on top of the new one; unmounting "."
            // then removes the old root, with no directory needed to hold it. Before that the
            // old root's tree (only it: held by a descriptor taken before the pivot, so that
            // the propagation the config gave the container's own mounts stays) becomes a
            // slave, so that the unmount cannot reach the host.
            let old_root = open_dir(Path::new("/"))?;
            pivot_root(".", ".").map_err(mounts::sys_err("pivot_root".to_string()))?;
            let slave = crate::sys::MountAttr {
                propagation: MsFlags::MS_SLAVE.bits(),
                ..Default::default()
            };
            crate::sys::mount_setattr(std::os::fd::AsFd::as_fd(&old_root), true, &slave)
                .map_err(mounts::io_err("making the old root a slave".to_string()))?;
            drop(old_root);
            umount2(".", MntFlags::MNT_DETACH)
                .map_err(mounts::sys_err("unmounting the old root".to_string()))?;
        }
        chdir("/").map_err(mounts::sys_err("chdir to /".to_string()))?;
        // Private is what the holding mount already is; anything else is given to the new root
        // now that it is /, where it cannot reach the host.
        match root_propagation(spec)? {
            Some(flag) if !flag.contains(MsFlags::MS_PRIVATE) => {
                mount(None::<&str>, "/", None::<&str>, flag, None::<&str>).map_err(mounts::sys_err(
                    "applying rootfsPropagation to /".to_string(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Step 3 (inside the new root): masked paths, read-only paths, read-only root.
    pub fn finish(&self, spec: &Spec) -> Result<(), RootfsError> {
        let linux = spec.linux().as_ref();
        for path in linux
            .and_then(|l| l.readonly_paths().as_deref())
            .unwrap_or_default()
        {
            readonly_path(Path::new(path))?;
        }
        for path in linux
            .and_then(|l| l.masked_paths().as_deref())
            .unwrap_or_default()
        {
            mask_path(Path::new(path))?;
        }
        if spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false)
        {
            mounts::remount(Path::new("/"), MsFlags::MS_RDONLY, Path::new("/")).map_err(
                mounts::sys_err("making the root filesystem read-only".to_string()),
            )?;
        }
        Ok(())
    }
}

/// Unmounts (lazily, deepest first) every mount at or below `rootfs` in the caller's mount
/// namespace: what a container without a mount namespace of its own left on the host.
pub fn unmount_below(rootfs: &Path) -> Result<(), RootfsError> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(mounts::io_err("reading /proc/self/mountinfo".to_string()))?;
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|p| p.starts_with(rootfs))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        match umount2(&point, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL | nix::Error::ENOENT) => {}
            Err(e) => {
                return Err(mounts::sys_err(format!("unmounting {}", point.display()))(
                    e,
                ))
            }
        }
    }
    Ok(())
}

/// A mount point of /proc/self/mountinfo, with its octal escapes (`\040` for a space) undone.
pub fn unescape_mountinfo(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The mount flags of `linux.rootfsPropagation`, if set.
fn root_propagation(spec: &Spec) -> Result<Option<MsFlags>, RootfsError> {
    let name = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|p| !p.is_empty());
    name.map(|name| {
        options::propagation_flag(name)
            .ok_or_else(|| RootfsError::Config(format!("unknown rootfsPropagation {name:?}")))
    })
    .transpose()
}

/// Makes private the mount `path` is on: `path` itself if it is a mount point, else the first
/// ancestor that is (mount(2) says EINVAL for a directory that is not one).
fn make_holding_mount_private(path: &Path) -> Result<(), RootfsError> {
    let mut at = path;
    loop {
        match mount(
            None::<&str>,
            at,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            Err(nix::Error::EINVAL) if at.parent().is_some() => {
                at = at.parent().unwrap_or(Path::new("/"));
            }
            Err(e) => {
                return Err(mounts::sys_err(format!(
                    "making the mount holding {} private",
                    path.display()
                ))(e))
            }
        }
    }
}

fn open_dir(path: &Path) -> Result<OwnedFd, RootfsError> {
    rustix::fs::open(
        path,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| RootfsError::Io {
        what: format!("opening {}", path.display()),
        source: e.into(),
    })
}

fn readonly_path(path: &Path) -> Result<(), RootfsError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    let what = || format!("making {} read-only", path.display());
    mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(mounts::sys_err(what()))?;
    // A bind remount sets the mount's flags to those given: nosuid, nodev and noexec of the
    // mount below (/proc's) are kept, as runc keeps them.
    let kept = mounts::security_flags(path).map_err(mounts::sys_err(what()))?;
    mounts::remount(path, MsFlags::MS_RDONLY | MsFlags::MS_REC | kept, path)
        .map_err(mounts::sys_err(what()))
}

fn mask_path(path: &Path) -> Result<(), RootfsError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(_) => return Ok(()),
    };
    let what = || format!("masking {}", path.display());
    if meta.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(mounts::sys_err(what()))
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(mounts::sys_err(what()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(
            unescape_mountinfo("/a\\040b\\011c\\134d\\777"),
            PathBuf::from("/a b\tc\\d?")
        );
        assert_eq!(unescape_mountinfo("/plain\\"), PathBuf::from("/plain\\"));
    }
}
