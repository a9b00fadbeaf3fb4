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

/// Everything the root filesystem steps need.
#[derive(Debug, Clone)]
pub struct Rootfs {
    /// The rootfs directory on the host, canonical.
    pub path: PathBuf,
    pub bundle: PathBuf,
    pub in_userns: bool,
    pub no_pivot: bool,
    /// Per mount of the config: the user namespace of an idmapped mount (see `idmap`).
    pub idmaps: std::sync::Arc<Vec<Option<OwnedFd>>>,
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

    /// Step 1a: make the rootfs a mount point and mount the config's mounts before `split`.
    pub fn prepare_early(&self, spec: &Spec, split: usize) -> Result<(), RootfsError> {
        let linux = spec.linux().as_ref();
        let propagation = linux
            .and_then(|l| l.rootfs_propagation().as_deref())
            .filter(|p| !p.is_empty());
        let flag = match propagation {
            Some(name) => options::propagation_flag(name).ok_or_else(|| {
                RootfsError::Config(format!("unknown rootfsPropagation {name:?}"))
            })?,
            None => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        };
        mount(None::<&str>, "/", None::<&str>, flag, None::<&str>)
            .map_err(mounts::sys_err("setting the propagation of /".to_string()))?;
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
        if flag.contains(MsFlags::MS_SHARED) {
            // pivot_root refuses a new root whose mount is shared.
            mount(
                None::<&str>,
                &self.path,
                None::<&str>,
                MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .map_err(mounts::sys_err("making rootfs private".to_string()))?;
        }
        self.mount_range(spec, 0..split)
    }

    /// Step 1b: the mounts from `split` on (in the cgroup namespace by now), then `/dev`.
    pub fn prepare_late(&self, spec: &Spec, split: usize) -> Result<(), RootfsError> {
        let mounts = spec.mounts().as_deref().unwrap_or_default();
        self.mount_range(spec, split..mounts.len())?;
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

    fn mount_range(&self, spec: &Spec, range: std::ops::Range<usize>) -> Result<(), RootfsError> {
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
        };
        slice.iter().zip(range.clone()).try_for_each(|(m, i)| {
            let idmap = self.idmaps.get(i).and_then(Option::as_ref);
            mounts::mount_one(&target, m, idmap)
        })
    }

    /// Step 2: make the rootfs the process's `/`.
    pub fn enter(&self) -> Result<(), RootfsError> {
        chdir(&self.path).map_err(mounts::sys_err(format!("chdir to {}", self.path.display())))?;
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
            // then removes the old root, with no directory needed to hold it.
            pivot_root(".", ".").map_err(mounts::sys_err("pivot_root".to_string()))?;
            mount(
                None::<&str>,
                ".",
                None::<&str>,
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(mounts::sys_err("making the old root a slave".to_string()))?;
            umount2(".", MntFlags::MNT_DETACH)
                .map_err(mounts::sys_err("unmounting the old root".to_string()))?;
        }
        chdir("/").map_err(mounts::sys_err("chdir to /".to_string()))
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
    mounts::remount(path, MsFlags::MS_RDONLY | MsFlags::MS_REC, path)
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
