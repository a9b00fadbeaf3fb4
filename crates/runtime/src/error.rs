//! The error of the runtime's operations: each module's error, plus the lifecycle's own.

use crate::state::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Namespace(#[from] crate::namespaces::NamespaceError),
    #[error(transparent)]
    Cgroup(#[from] berth_cgroups::Error),
    #[error(transparent)]
    Seccomp(#[from] berth_seccomp::Error),
    #[error(transparent)]
    Capability(#[from] crate::capabilities::CapabilityError),
    #[error(transparent)]
    Process(#[from] crate::process::ProcessError),
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    Idmap(#[from] crate::idmap::IdmapError),
    #[error(transparent)]
    NetDevice(#[from] crate::netdev::NetDeviceError),
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    #[error(transparent)]
    Notify(#[from] crate::notify::NotifyError),
    #[error("container init: {0}")]
    Init(String),
    #[error("config.json has no process to run")]
    NoProcess,
    #[error("config.json has no linux section")]
    NoLinux,
    #[error("{0}")]
    Usage(String),
    #[error("container {id} is {status}: {action} needs it {needs}")]
    WrongStatus {
        id: String,
        status: Status,
        action: &'static str,
        needs: &'static str,
    },
    #[error("cannot delete container {id} that is not stopped: {status}")]
    NotStopped { id: String, status: Status },
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("encoding JSON: {0}")]
    Json(serde_json::Error),
    #[error("invalid signal {0:?}")]
    Signal(String),
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout { what: String, secs: u64 },
}
