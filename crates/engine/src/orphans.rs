//! What a dead monitor or a dead daemon leaves behind, and its removal: a container whose
//! monitor was killed keeps running with nobody to report its exit; a daemon killed in the
//! middle of a start leaves a monitor and an init blocked before the program runs. Neither
//! may outlive its record: [`Engine::tear_down_runtime`] kills the monitor and every process
//! of the container's cgroup, and deletes the runtime's state and cgroup, as containerd does
//! when a shim dies (the container ends with 137).

use std::path::Path;

use crate::error::{EngineError, Result};
use crate::{monitor, Engine};

/// The exit code of a container whose monitor was lost: it was killed (SIGKILL).
pub(crate) const LOST_MONITOR_EXIT: i32 = 137;

/// The pid of the process serving the monitor socket `sock`, if one answers there.
async fn monitor_pid(sock: &Path) -> Option<i32> {
    let stream = tokio::net::UnixStream::connect(sock).await.ok()?;
    stream.peer_cred().ok()?.pid()
}

impl Engine {
    /// Whether anything of container `id` is still alive below the engine: its monitor, or
    /// the runtime's state of it.
    pub(crate) async fn has_runtime_leftovers(&self, id: &str) -> bool {
        self.driver_of(id).exists(id)
            || monitor_pid(&monitor::socket(&self.run_dir(id)))
                .await
                .is_some()
    }

    /// Kills the monitor of container `id` (if one still runs), then every process of the
    /// container, and deletes the runtime's state and cgroup. Nothing there is fine.
    pub(crate) async fn tear_down_runtime(&self, id: &str) -> Result<()> {
        let sock = monitor::socket(&self.run_dir(id));
        if let Some(pid) = monitor_pid(&sock).await {
            tracing::info!(container = %id, monitor = pid, "killing a monitor left behind");
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = std::fs::remove_file(&sock);
        }
        let driver = self.driver_of(id);
        let id = id.to_string();
        // `delete --force` waits (bounded) for the processes to go.
        tokio::task::spawn_blocking(move || driver.delete(&id, true))
            .await
            .map_err(|e| EngineError::internal("delete the runtime's container", e))?
            .map_err(|e| EngineError::internal("delete the runtime's container", e))
    }
}
