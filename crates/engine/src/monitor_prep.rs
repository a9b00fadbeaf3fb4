//! What every monitor is started with, prepared once when the engine opens, so that starting
//! a container costs the same with a thousand others running:
//! - a read-only view of the monitor's binary, `<exec-root>/bin/berth-monitor` (a read-only
//!   bind mount of it): a monitor started from a read-only mount need not make its own view
//!   (`berth_runtime::readonly_exe`), which costs a mount namespace of its own, a copy of the
//!   whole mount table (two mounts per container) and a recursive propagation change;
//! - the daemon's cgroup mount lines, `<exec-root>/cgroup-mounts`, which the monitor takes
//!   instead of reading the whole mount table (`berth_cgroups::preset_cgroup_mounts`).
//!
//! - the mount template, pinned at `<exec-root>/bin/mntns` (`berth_runtime::mount_template`):
//!   a small mount namespace that containers' mount namespaces are copied from, instead of
//!   the host's, which holds two mounts per running container.
//!
//! All are optional: when one cannot be made, monitors do the work themselves, as before.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// The prepared files ([`prepare`]).
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// The read-only view of the monitor's binary.
    pub binary: Option<PathBuf>,
    /// The cgroup mount lines.
    pub cgroup_mounts: Option<PathBuf>,
    /// The pinned mount template.
    pub mount_template: Option<PathBuf>,
}

/// Why a file could not be prepared (logged; the monitors then do without it).
#[derive(Debug, thiserror::Error)]
pub enum PrepError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {path}: {source}")]
    Mount {
        what: &'static str,
        path: PathBuf,
        source: nix::Error,
    },
    #[error(transparent)]
    Cgroups(#[from] berth_cgroups::MountinfoError),
}

/// Prepares all three under `exec_root` for the monitor binary `monitor`.
pub fn prepare(exec_root: &Path, monitor: &Path) -> Prepared {
    let binary = match readonly_binary(&exec_root.join("bin"), monitor) {
        Ok(path) => Some(path),
        Err(e) => {
            tracing::warn!(error = %e, "no read-only view of the monitor's binary: each monitor makes its own");
            None
        }
    };
    let cgroup_mounts = match write_cgroup_mounts(&exec_root.join("cgroup-mounts")) {
        Ok(path) => Some(path),
        Err(e) => {
            tracing::warn!(error = %e, "the cgroup mounts are not shared with the monitors");
            None
        }
    };
    let pin = exec_root.join("bin").join("mntns");
    let mount_template = match berth_runtime::mount_template::create(&pin) {
        Ok(()) => Some(pin),
        Err(e) => {
            tracing::warn!(error = %e, "no mount template: containers copy the host's mount table");
            None
        }
    };
    Prepared {
        binary,
        cgroup_mounts,
        mount_template,
    }
}

/// Binds `monitor` read-only at `dir/<its name>`, replacing what a previous daemon bound there
/// (running monitors keep the view they were started from).
fn readonly_binary(dir: &Path, monitor: &Path) -> Result<PathBuf, PrepError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| PrepError::Io { what, path, source }
    };
    let sys = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| PrepError::Mount { what, path, source }
    };
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let name = monitor
        .file_name()
        .unwrap_or(std::ffi::OsStr::new("berth-monitor"));
    let target = dir.join(name);
    // Every view bound there before, newest first, detached.
    while umount2(&target, MntFlags::MNT_DETACH).is_ok() {}
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&target)
        .map_err(io("creating", &target))?;
    mount(
        Some(monitor),
        &target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys("binding the monitor's binary at", &target))?;
    let readonly = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    if let Err(e) = mount(None::<&str>, &target, None::<&str>, readonly, None::<&str>) {
        let _ = umount2(&target, MntFlags::MNT_DETACH);
        return Err(sys("making read-only", &target)(e));
    }
    Ok(target)
}

/// Writes the daemon's cgroup mount lines to `path` (atomically).
fn write_cgroup_mounts(path: &Path) -> Result<PathBuf, PrepError> {
    let lines = berth_cgroups::cgroup_mounts()?;
    let tmp = path.with_extension("tmp");
    let io = |what: &'static str| {
        let path = path.to_path_buf();
        move |source| PrepError::Io { what, path, source }
    };
    std::fs::write(&tmp, lines).map_err(io("writing"))?;
    std::fs::rename(&tmp, path).map_err(io("renaming into"))?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup_mount_lines_are_only_cgroup_mounts() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_cgroup_mounts(&dir.path().join("cgroup-mounts")).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert!(!text.is_empty());
        assert!(text
            .lines()
            .all(|l| l.contains(" - cgroup ") || l.contains(" - cgroup2 ")));
    }
}
