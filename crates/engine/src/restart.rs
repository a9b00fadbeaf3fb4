//! Restart policies, as dockerd applies them: whether an exit brings a start (`always`,
//! `unless-stopped`, `on-failure[:N]`, never after a user's stop), the wait before it
//! (dockerd's backoff), and the start itself once the wait is over.

use std::time::Duration;

use crate::container::spec::RestartPolicyName;

use crate::container::{Container, Status};
use crate::Engine;

impl Engine {
    /// Starts a `restarting` container after `delay`, unless it was stopped or removed
    /// meanwhile.
    pub(crate) fn restart_later(&self, id: String, delay: Duration) {
        let engine = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            match engine.start_by_policy(&id).await {
                // Removed meanwhile.
                Ok(()) | Err(crate::error::EngineError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(container = %id, error = %e, "restart");
                    // It stays down, as dockerd leaves a container whose restart failed.
                    let _ = engine.containers.update_or_in_memory(&id, |c| {
                        if c.is_restarting() {
                            c.state.status = Status::Exited;
                        }
                    });
                }
            }
        });
    }
}

/// Whether `c`'s restart policy starts it again after the exit just recorded in it.
pub(crate) fn wanted(c: &Container) -> bool {
    if c.manually_stopped {
        return false;
    }
    let Some(policy) = c.host_config.restart_policy.as_ref() else {
        return false;
    };
    match policy.name {
        Some(RestartPolicyName::Always) | Some(RestartPolicyName::UnlessStopped) => true,
        Some(RestartPolicyName::OnFailure) => {
            let max = policy.maximum_retry_count.unwrap_or(0);
            c.state.exit_code != 0 && (max == 0 || (c.restart_count as i64) < max)
        }
        _ => false,
    }
}

/// dockerd's restart backoff: 100 ms after a run of 10 s or more (or the first time), else
/// twice the last wait, at most a minute.
pub(crate) fn next_delay(c: &Container) -> u64 {
    const FIRST: u64 = 100;
    const MAX: u64 = 60_000;
    let ran = |t: &str| humantime::parse_rfc3339_weak(t).ok();
    let long_run = match (ran(&c.state.started_at), ran(&c.state.finished_at)) {
        (Some(start), Some(end)) => end
            .duration_since(start)
            .is_ok_and(|d| d >= Duration::from_secs(10)),
        _ => false,
    };
    if long_run || c.restart_delay_ms == 0 {
        FIRST
    } else {
        (c.restart_delay_ms * 2).min(MAX)
    }
}
