//! The container's root filesystem: mounts, `/dev`, `pivot_root`, masked and read-only paths.
//!
//! Runs in the container's init, in its new mount namespace, in three steps so that the
//! `createContainer` hooks can run between them, as the runtime spec orders:
//! [`prepare`] (propagation, the rootfs bind, config mounts, devices), [`enter`] (`pivot_root`, or
//! `chroot` with `--no-pivot`), [`finish`] (masked and read-only paths, read-only root).

mod cgroupfs;
pub mod devices;
mod mounts;
mod options;
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
}

impl Rootfs {
    /// Step 1: make the rootfs a mount point, mount the config's mounts into it, populate `/dev`.
    pub fn prepare(&self, spec: &Spec) -> Result<(), RootfsError> {
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

        let root_fd = open_dir(&self.path)?;
        let target = mounts::Target {
            root: &self.path,
            root_fd: &root_fd,
            bundle: &self.bundle,
            in_userns: self.in_userns,
        };
        let mut dev_is_tmpfs = false;
        for m in spec.mounts().iter().flatten() {
            mounts::mount_one(&target, m)?;
            if m.destination() == Path::new("/dev") && m.typ().as_deref() != Some("bind") {
                dev_is_tmpfs = true;
            }
        }
        if dev_is_tmpfs {
            let devices = linux
                .and_then(|l| l.devices().as_deref())
                .unwrap_or_default();
            devices::create(&self.path, devices, target.in_userns)?;
            devices::symlinks(&self.path)?;
        }
        Ok(())
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
