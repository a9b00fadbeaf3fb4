//! `run` in the foreground with `terminal: true` and no `--console-socket`: the runtime receives
//! the pty master itself and relays it to its own stdin/stdout, in raw mode when stdin is a
//! terminal, passing window size changes on, until the container's program exits.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Receives the pty master sent by the container's init over `socket`.
fn receive_master(socket: &UnixStream) -> Result<OwnedFd> {
    let mut name = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context("receiving the terminal")?;
    for cmsg in msg.cmsgs().context("reading the terminal's message")? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(fd) = fds.first() {
                // SAFETY: SCM_RIGHTS gave this process a new descriptor that nothing else owns.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    bail!("the container's init sent no terminal")
}

/// Puts stdin in raw mode while alive, if it is a terminal.
struct RawMode(Option<termios::Termios>);

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

fn copy_size(master: &OwnedFd) {
    if let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdin()) {
        let _ = rustix::termios::tcsetwinsize(master, size);
    }
}

/// Relays until `pid` exits; returns its exit code (128 + signal if killed).
pub fn relay(socket: &UnixStream, pid: Pid) -> Result<i32> {
    let master = receive_master(socket)?;
    copy_size(&master);
    let mut signals = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGWINCH,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        signals.add(s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None)
        .context("blocking signals")?;
    let sfd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC).context("signalfd")?;
    let _raw = RawMode::enter();
    let stdin = std::io::stdin();
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    loop {
        if let Some(code) = exited(pid)? {
            drain(&master, &mut buf);
            return Ok(code);
        }
        let mut fds = vec![
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        let ready = |i: usize| {
            fds.get(i).and_then(|f| f.revents()).is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            })
        };
        let (master_ready, sig_ready, stdin_ready) = (ready(0), ready(1), ready(2));
        if master_ready {
            match rustix::io::read(&master, &mut buf) {
                Ok(0) | Err(_) => {
                    // The pty closed: the program is gone or about to be.
                    let code = wait_blocking(pid)?;
                    return Ok(code);
                }
                Ok(n) => write_all(std::io::stdout().as_fd(), &buf[..n]),
            }
        }
        if stdin_ready {
            match rustix::io::read(stdin.as_fd(), &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => write_all(master.as_fd(), &buf[..n]),
            }
        }
        if sig_ready {
            if let Ok(Some(info)) = sfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGWINCH) => copy_size(&master),
                    Ok(Signal::SIGCHLD) | Err(_) => {}
                    Ok(other) => {
                        let _ = nix::sys::signal::kill(pid, other);
                    }
                }
            }
        }
    }
}

fn write_all(fd: std::os::fd::BorrowedFd<'_>, mut data: &[u8]) {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

/// Copies what the pty still holds after the program exited.
fn drain(master: &OwnedFd, buf: &mut [u8]) {
    let _ = rustix::fs::fcntl_setfl(master, rustix::fs::OFlags::NONBLOCK);
    while let Ok(n) = rustix::io::read(master, &mut *buf) {
        if n == 0 {
            break;
        }
        write_all(std::io::stdout().as_fd(), &buf[..n]);
    }
}

fn code_of(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

fn exited(pid: Pid) -> Result<Option<i32>> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(status) => Ok(code_of(status)),
        Err(nix::Error::ECHILD) => Ok(Some(0)),
        Err(e) => Err(e).context("waiting for the container"),
    }
}

fn wait_blocking(pid: Pid) -> Result<i32> {
    loop {
        match waitpid(pid, None) {
            Ok(status) => {
                if let Some(code) = code_of(status) {
                    return Ok(code);
                }
            }
            Err(nix::Error::EINTR) => {}
            Err(nix::Error::ECHILD) => return Ok(0),
            Err(e) => return Err(e).context("waiting for the container"),
        }
    }
}
