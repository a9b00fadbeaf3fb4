//! Waiting in the foreground for a process of the container (`run`, `exec` without `-d`),
//! forwarding the signals the runtime receives, as runc does.

use anyhow::{Context, Result};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// The signals the foreground runtime takes for its process: all it can block.
fn forwarded() -> SigSet {
    let mut set = SigSet::all();
    for s in [
        Signal::SIGKILL,
        Signal::SIGSTOP,
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
    ] {
        set.remove(s);
    }
    set
}

/// Blocks the signals [`wait_forwarding`] forwards. Called before the process is started, a
/// signal that comes while it starts waits to be forwarded instead of ending the runtime (the
/// forked child clears its signal mask).
pub fn block_forwarded_signals() -> Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded()), None)
        .context("blocking signals")
}

/// Waits for `pid` and returns its exit code (128 + signal if it was killed).
pub fn wait_forwarding(pid: Pid) -> Result<i32> {
    let set = forwarded();
    block_forwarded_signals()?;
    loop {
        // Checked before each wait: a SIGCHLD that came before the mask was set is lost.
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => {}
            Err(nix::Error::ECHILD) => return Ok(0),
            Err(e) => return Err(e).context("waiting for the container"),
        }
        let sig = set.wait().context("waiting for signals")?;
        match sig {
            Signal::SIGCHLD => {}
            Signal::SIGURG | Signal::SIGWINCH => {}
            other => {
                let _ = kill(pid, other);
            }
        }
    }
}
