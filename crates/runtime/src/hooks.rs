//! OCI hooks: programs run at fixed points of the lifecycle with the container's state on stdin.
//!
//! Each hook runs in a process group of its own, so that aborting it at its `timeout` also kills
//! what it started. The state is written to its stdin without blocking, between checks of the
//! hook's exit and of the timeout: a hook that never reads its stdin can neither hang the runtime
//! past its timeout nor, by exiting, kill the writer with SIGPIPE (the container's init runs the
//! createContainer and startContainer hooks with SIGPIPE at its default action).

use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use oci_spec::runtime::Hook;
use rustix::io::Errno;

use crate::state::OciState;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{stage} hook #{index} {path}: {source}")]
    Spawn {
        stage: &'static str,
        index: usize,
        path: String,
        source: std::io::Error,
    },
    #[error("{stage} hook #{index} {path} failed: {status}")]
    Failed {
        stage: &'static str,
        index: usize,
        path: String,
        status: String,
    },
    #[error("{stage} hook #{index} {path} timed out after {secs} s")]
    Timeout {
        stage: &'static str,
        index: usize,
        path: String,
        secs: i64,
    },
    #[error("{stage} hook #{index} {path}: timeout must be greater than zero, not {secs}")]
    InvalidTimeout {
        stage: &'static str,
        index: usize,
        path: String,
        secs: i64,
    },
    /// Several hooks of a stage whose failures do not stop the others (poststart, poststop).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<HookError>),
}

/// The stages whose failing hooks are only warnings: the runtime spec has the remaining hooks and
/// the lifecycle go on "as if the hook had succeeded" (runtime.md, "Lifecycle", steps 9 and 13).
fn failure_is_a_warning(stage: &str) -> bool {
    matches!(stage, "poststart" | "poststop")
}

/// The environment of a hook whose config gives none, as runc's: the container's `process.env`
/// for the hooks run inside the container (createContainer, startContainer), the runtime's own
/// for the others.
#[derive(Debug, Clone, Copy)]
pub enum DefaultEnv<'a> {
    Container(&'a [String]),
    Runtime,
}

/// Runs `hooks` in order. For most stages the first failure stops the rest and is returned; for
/// poststart and poststop every hook runs and the failures are returned together, for the caller
/// to log as a warning.
pub fn run_all(
    stage: &'static str,
    hooks: &[Hook],
    state: &OciState,
    default_env: DefaultEnv<'_>,
) -> Result<(), HookError> {
    if hooks.is_empty() {
        return Ok(());
    }
    let state_json = serde_json::to_vec(state).unwrap_or_default();
    let mut runs = hooks
        .iter()
        .enumerate()
        .map(|(index, h)| run(stage, index, h, &state_json, default_env));
    if !failure_is_a_warning(stage) {
        return runs.try_for_each(|r| r);
    }
    let mut errors: Vec<HookError> = runs.filter_map(Result::err).collect();
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(HookError::Several(errors)),
    }
}

fn run(
    stage: &'static str,
    index: usize,
    hook: &Hook,
    state_json: &[u8],
    default_env: DefaultEnv<'_>,
) -> Result<(), HookError> {
    let path = hook.path().display().to_string();
    let timeout = match hook.timeout() {
        Some(secs) if secs <= 0 => {
            return Err(HookError::InvalidTimeout {
                stage,
                index,
                path,
                secs,
            })
        }
        other => other,
    };
    let spawn_err = |source| HookError::Spawn {
        stage,
        index,
        path: path.clone(),
        source,
    };
    let args = hook.args().as_deref().unwrap_or_default();
    let mut cmd = Command::new(hook.path());
    if let Some(arg0) = args.first() {
        cmd.arg0(arg0);
    }
    cmd.args(args.iter().skip(1))
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let env = match (hook.env().as_deref(), default_env) {
        (Some(env), _) | (None, DefaultEnv::Container(env)) => Some(env),
        (None, DefaultEnv::Runtime) => None,
    };
    if let Some(env) = env {
        cmd.env_clear();
        for kv in env {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    let mut child = cmd.spawn().map_err(spawn_err)?;
    let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t.unsigned_abs()));
    let status = match wait(&mut child, state_json, deadline) {
        Ok(Some(status)) => status,
        Ok(None) => {
            kill_group(&mut child);
            return Err(HookError::Timeout {
                stage,
                index,
                path,
                secs: timeout.unwrap_or_default(),
            });
        }
        Err(e) => {
            kill_group(&mut child);
            return Err(spawn_err(e));
        }
    };
    if status.success() {
        Ok(())
    } else {
        Err(HookError::Failed {
            stage,
            index,
            path,
            status: status.to_string(),
        })
    }
}

/// Feeds `state_json` to the hook's stdin while waiting for it to exit; None at `deadline`.
fn wait(
    child: &mut Child,
    state_json: &[u8],
    deadline: Option<Instant>,
) -> std::io::Result<Option<ExitStatus>> {
    let _sigpipe = IgnoreSigpipe::new();
    let mut stdin: Option<ChildStdin> = child.stdin.take();
    if let Some(pipe) = &stdin {
        rustix::io::ioctl_fionbio(pipe, true)?;
    }
    let mut rest = state_json;
    if rest.is_empty() {
        stdin = None;
    }
    let mut pause = Duration::from_micros(200);
    loop {
        if let Some(pipe) = &stdin {
            match rustix::io::write(pipe, rest) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::AGAIN | Errno::INTR) => {}
                // EPIPE: the hook closed its stdin or exited without reading it; not an error.
                Err(_) => rest = &[],
            }
            if rest.is_empty() {
                // End of file for the hook.
                stdin = None;
            }
        }
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        match &stdin {
            // Wake up as soon as the pipe has room again, or after `pause`.
            Some(pipe) => {
                let mut fds = [rustix::event::PollFd::new(
                    pipe,
                    rustix::event::PollFlags::OUT,
                )];
                let timeout = rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: i64::from(pause.subsec_nanos()),
                };
                // An error (EINTR) just means another round.
                let _ = rustix::event::poll(&mut fds, Some(&timeout));
            }
            None => std::thread::sleep(pause),
        }
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Kills the hook and everything in its process group, and reaps it.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // The hook leads its own process group (process_group(0)): its pgid is its pid.
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Ignores SIGPIPE while alive and restores the previous action when dropped, so that writing to
/// a hook that is gone is an EPIPE error, not the end of the writer.
struct IgnoreSigpipe {
    previous: Option<SigAction>,
}

impl IgnoreSigpipe {
    fn new() -> Self {
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: SIG_IGN installs no handler, so no code of ours runs in a signal context.
        let previous = unsafe { sigaction(Signal::SIGPIPE, &ignore) };
        Self {
            previous: previous.ok(),
        }
    }
}

impl Drop for IgnoreSigpipe {
    fn drop(&mut self) {
        if let Some(previous) = &self.previous {
            // SAFETY: puts back exactly the action that was in place before `new`.
            let _ = unsafe { sigaction(Signal::SIGPIPE, previous) };
        }
    }
}
