//! Containers as the engine keeps them: the record (what was asked, in the engine's own
//! [`spec`] types, and what happened), written atomically to
//! `<data-root>/containers/<id>/config.json` on every change with the version of its format
//! ([`record`]), and the in-memory store that finds them by id, name or unique id prefix.

pub mod record;
pub mod spec;
pub mod store;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a container is in its life, as Docker names the states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

/// The runtime state of a container.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub pid: i64,
    pub exit_code: i64,
    pub oom_killed: bool,
    /// The error that stopped the last start, if any.
    pub error: String,
    /// RFC 3339 with nanoseconds; `0001-01-01T00:00:00Z` for never, as Docker shows it.
    pub started_at: String,
    pub finished_at: String,
}

/// Docker's "never" timestamp.
pub const NEVER: &str = "0001-01-01T00:00:00Z";

/// One container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub created: String,
    /// The image id (`sha256:` of its config).
    pub image_id: String,
    /// The manifest the container's image was when it was created.
    pub image_manifest: String,
    /// The chain id of the image's top layer: the snapshot the rootfs is prepared on.
    pub image_top: Option<String>,
    /// The program and its arguments (entrypoint + cmd), as Docker's `Path` and `Args`.
    pub path: String,
    pub args: Vec<String>,
    /// What was asked: Docker's `Config` and `HostConfig`, in the engine's types.
    pub config: spec::ContainerSpec,
    pub host_config: spec::HostSpec,
    pub state: State,
    pub restart_count: u64,
    /// The wait before the next restart by its policy: dockerd's backoff (100 ms, doubled at
    /// each restart of a container that ran less than 10 s, at most a minute).
    #[serde(default)]
    pub restart_delay_ms: u64,
    /// Set when a user stopped the container (for `unless-stopped` after a daemon restart).
    pub manually_stopped: bool,
    pub log_path: PathBuf,
    /// The networks it is connected to (`NetworkingConfig`, `network connect`), and what it
    /// got on them while it runs.
    #[serde(default)]
    pub networks: crate::network::ContainerNetworks,
    /// The anonymous volumes made for it at create (`-v /path`, the image's `VOLUME`s), as
    /// `NAME:/path` binds; removed with it by `rm -v` and `--rm`.
    #[serde(default)]
    pub anonymous_volumes: Vec<String>,
}

/// The label that marks what the CRI made (a pod sandbox, a pod's container, the pods'
/// network): such objects are kept out of the Docker API's lists and prunes, as containerd
/// keeps its `k8s.io` namespace apart. On a container its value is the CRI's own record of it.
pub const CRI_LABEL: &str = "io.berth.cri";

impl Container {
    /// Whether the CRI made it (see [`CRI_LABEL`]).
    pub fn is_cri(&self) -> bool {
        self.config
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(CRI_LABEL))
    }

    /// Whether the container's process is alive (running or paused).
    pub fn is_running(&self) -> bool {
        matches!(
            self.state.status,
            Status::Running | Status::Paused | Status::Restarting
        )
    }

    /// Whether it waits to be started again by its restart policy (dockerd counts that as
    /// running, with no process).
    pub fn is_restarting(&self) -> bool {
        self.state.status == Status::Restarting
    }

    pub fn tty(&self) -> bool {
        self.config.tty.unwrap_or(false)
    }
}

/// Now, as Docker writes times (RFC 3339, nanoseconds, UTC).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}
