//! The runtime a container runs on: Berth's own, called in-process, or a foreign one driven
//! through its command line ([`crate::oci_cli`]). The monitor and the engine (kill, pause,
//! update, stats, removal) go through this one type.

use std::path::{Path, PathBuf};

use berth_cgroups::Manager;
use nix::sys::signal::Signal;

use crate::oci_cli::{OciCli, OciCliError};

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// Berth's runtime's own message.
    #[error(transparent)]
    Berth(#[from] berth_runtime::Error),
    /// The foreign runtime's message.
    #[error(transparent)]
    Oci(#[from] OciCliError),
    #[error(transparent)]
    Cgroup(#[from] berth_cgroups::Error),
    #[error("resources: {0}")]
    Resources(serde_json::Error),
}

/// A foreign runtime as the daemon is configured with it: `--add-runtime NAME=PATH`, or
/// daemon.json's `runtimes` (`path`, `runtimeArgs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreign {
    pub path: PathBuf,
    pub args: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum Driver {
    Berth(berth_runtime::Runtime),
    Oci(OciCli),
}

impl Driver {
    /// Berth's runtime with its state under `root`, or `foreign` with its state under `root`
    /// (and the messages of its `create` and `exec` in `log`).
    pub fn new(root: &Path, foreign: Option<&Foreign>, log: Option<&Path>) -> Driver {
        match foreign {
            None => Driver::Berth(berth_runtime::Runtime::new(root)),
            Some(f) => Driver::Oci(OciCli::new(&f.path, &f.args, root, log)),
        }
    }

    pub fn start(&self, id: &str) -> Result<(), DriverError> {
        match self {
            Driver::Berth(rt) => Ok(rt.start(id)?),
            Driver::Oci(rt) => Ok(rt.start(id)?),
        }
    }

    /// Sends `signal` to the init (or to every process of the container, with `all`).
    pub fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<(), DriverError> {
        match self {
            Driver::Berth(rt) => Ok(rt.kill(id, signal, all)?),
            Driver::Oci(rt) => Ok(rt.kill(id, signal as i32, all)?),
        }
    }

    pub fn pause(&self, id: &str) -> Result<(), DriverError> {
        match self {
            Driver::Berth(rt) => Ok(rt.pause(id)?),
            Driver::Oci(rt) => Ok(rt.pause(id)?),
        }
    }

    pub fn resume(&self, id: &str) -> Result<(), DriverError> {
        match self {
            Driver::Berth(rt) => Ok(rt.resume(id)?),
            Driver::Oci(rt) => Ok(rt.resume(id)?),
        }
    }

    /// New limits for the cgroups of a container that is not stopped.
    pub fn update(
        &self,
        id: &str,
        resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<(), DriverError> {
        match self {
            Driver::Berth(rt) => Ok(rt.update(id, resources)?),
            Driver::Oci(rt) => {
                let json = serde_json::to_value(resources).map_err(DriverError::Resources)?;
                Ok(rt.update(id, &json)?)
            }
        }
    }

    /// Deletes the runtime's container (its state and cgroup); with `force`, kills it first,
    /// and a container the runtime does not know is fine.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), DriverError> {
        match self {
            Driver::Berth(rt) => Ok(rt.delete(id, force)?),
            Driver::Oci(rt) => Ok(rt.delete(id, force)?),
        }
    }

    /// Whether the runtime has state of container `id`.
    pub fn exists(&self, id: &str) -> bool {
        match self {
            Driver::Berth(rt) => rt.load(id).is_ok(),
            Driver::Oci(rt) => rt.state(id).is_ok(),
        }
    }

    /// The container's cgroup (pids, figures, OOM kills).
    pub fn cgroup(&self, id: &str) -> Result<Manager, DriverError> {
        match self {
            Driver::Berth(rt) => Ok(rt.cgroup(&rt.load(id)?)?),
            Driver::Oci(rt) => Ok(Manager::new(&rt.cgroups_path(id)?)?),
        }
    }

    /// Pids of every process of the container (in the host's pid namespace).
    pub fn pids(&self, id: &str) -> Result<Vec<i32>, DriverError> {
        Ok(self.cgroup(id)?.pids()?)
    }

    pub fn stats(&self, id: &str) -> Result<berth_cgroups::Stats, DriverError> {
        Ok(self.cgroup(id)?.stats()?)
    }
}
