//! The runtime's side of `SCMP_ACT_NOTIFY`: the listener a container process sends over the sync
//! channel (see `init::become_process`) goes on to the seccomp agent at
//! `linux.seccomp.listenerPath`, with the container process state.

use std::os::fd::{AsFd, OwnedFd};

use berth_seccomp::agent;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};

use crate::state::OciState;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("seccomp: SCMP_ACT_NOTIFY cannot be used for {0}: the runtime hands the listener over with it")]
    HandOverSyscall(String),
    #[error("seccomp: the container's state as the agent gets it: {0}")]
    State(#[source] serde_json::Error),
    #[error(transparent)]
    Agent(#[from] berth_seccomp::Error),
}

/// The calls the container process makes to hand the listener over: notifying them would wait
/// for an agent that cannot have the listener yet.
const HAND_OVER: &[&str] = &["sendmsg"];

/// Refuses notify rules on the calls of the hand-over.
pub fn check(seccomp: &LinuxSeccomp) -> Result<(), NotifyError> {
    let notified = seccomp
        .syscalls()
        .iter()
        .flatten()
        .filter(|s| s.action() == LinuxSeccompAction::ScmpActNotify)
        .flat_map(|s| s.names().iter());
    for name in notified {
        if HAND_OVER.contains(&name.as_str()) {
            return Err(NotifyError::HandOverSyscall(name.clone()));
        }
    }
    Ok(())
}

/// Sends `listener`, from process `pid` of the container whose state is `state`, to the agent
/// the config names, then closes the runtime's copy.
pub fn forward(
    seccomp: &LinuxSeccomp,
    state: &OciState,
    pid: i32,
    listener: OwnedFd,
) -> Result<(), NotifyError> {
    let Some(path) = seccomp.listener_path() else {
        // `compile` refuses notify rules without a listenerPath: nothing can arrive here.
        return Ok(());
    };
    let json = serde_json::to_value(state).map_err(NotifyError::State)?;
    let state: agent::State = serde_json::from_value(json).map_err(NotifyError::State)?;
    let process = agent::process_state(state, pid, seccomp.listener_metadata().clone());
    agent::send_to_agent(path, &process, listener.as_fd())?;
    Ok(())
}
