//! What berthd finds at its start: the containers that kept running while it was away (their
//! monitors are alive) are watched again, those that exited meanwhile get their exit from
//! `exit.json`, what a start cut short left is removed, and restart policies apply.

use berth_monitor::protocol::{ExitStatus, Op};

use crate::container::now_rfc3339;
use crate::container::spec::RestartPolicyName;
use crate::container::Status;
use crate::{monitor, Engine};

impl Engine {
    /// After a daemon (re)start: containers whose monitor still runs are watched again; those
    /// that exited meanwhile get their real exit code from `exit.json`; restart policies apply.
    pub async fn reconcile(&self) {
        for c in self.containers.all() {
            if !c.is_running() {
                // Mounts and namespace files of a run that ended while berthd was away.
                self.cleanup_after_exit(&c).await;
            }
            if !c.is_running() && self.has_runtime_leftovers(&c.id).await {
                // A start cut short by the daemon's death: a monitor and an init blocked before
                // the program, which no record says runs. They go; the record stays as it was.
                tracing::info!(container = %c.id, "removing what an interrupted start left");
                let _guard = self.lifecycle_lock(&c.id).await;
                if let Err(e) = self.tear_down_runtime(&c.id).await {
                    tracing::warn!(container = %c.id, error = %e, "tear down");
                }
                self.disconnect_on_exit(&c.id).await;
                self.cleanup_after_exit(&c).await;
            }
            if !c.is_running() {
                // As dockerd at start: `always` and `unless-stopped` containers that a user
                // did not stop are started again.
                let policy = c.host_config.restart_policy.as_ref().and_then(|p| p.name);
                if matches!(
                    policy,
                    Some(RestartPolicyName::Always) | Some(RestartPolicyName::UnlessStopped)
                ) && !c.manually_stopped
                    && matches!(c.state.status, Status::Exited | Status::Restarting)
                {
                    if let Err(e) = self.start(&c.id).await {
                        tracing::warn!(container = %c.id, error = %e, "restart at daemon start");
                    }
                }
                continue;
            }
            let sock = monitor::socket(&self.run_dir(&c.id));
            match monitor::call::<monitor::State>(&sock, Op::State).await {
                Ok(state) if state.status != monitor::Status::Exited => {
                    self.watch_exit(c.id.clone());
                    if self.run_dir(&c.id).join("healthcheck.json").exists() {
                        self.watch_health(c.id.clone());
                    }
                }
                _ => {
                    let exit = match monitor::read_exit(&self.run_dir(&c.id)) {
                        Some(exit) => exit,
                        None => {
                            // Its monitor is gone without a word: the container ends here.
                            if let Err(e) = self.tear_down_runtime(&c.id).await {
                                tracing::warn!(container = %c.id, error = %e, "tear down");
                            }
                            ExitStatus {
                                exit_code: crate::orphans::LOST_MONITOR_EXIT,
                                oom_killed: false,
                                finished_at: now_rfc3339(),
                            }
                        }
                    };
                    self.on_exit(&c.id, exit).await;
                }
            }
        }
    }
}
