//! The container's stdio: pipes made by the monitor and handed to a new process as its fds 0/1/2
//! (the runtime's init and exec children inherit the caller's, as with runc), or a pty whose
//! master the process sends back over a socket (SCM_RIGHTS).

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use rustix::pipe::{pipe_with, PipeFlags};

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("receiving the terminal: {0}")]
    NoTerminal(&'static str),
}

fn sys<E: Into<std::io::Error>>(what: &'static str) -> impl FnOnce(E) -> StdioError {
    move |e| StdioError::Sys {
        what,
        source: e.into(),
    }
}

/// The ends a new process gets as its fds 0, 1 and 2.
#[derive(Debug)]
pub struct ChildStdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// The monitor's ends: stdin's write end (none without stdin), stdout's and stderr's read ends.
#[derive(Debug, Default)]
pub struct Ours {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

fn dev_null() -> Result<OwnedFd, StdioError> {
    rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(sys("opening /dev/null"))
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd, StdioError> {
    rustix::io::fcntl_dupfd_cloexec(fd, 3).map_err(sys("duplicating a descriptor"))
}

/// Sets O_NONBLOCK on one of the monitor's ends.
pub fn nonblocking(fd: &impl AsFd) -> Result<(), StdioError> {
    rustix::io::ioctl_fionbio(fd, true).map_err(sys("setting O_NONBLOCK"))
}

/// Pipes for stdout and stderr, and for stdin if `stdin` (else /dev/null).
pub fn pipes(stdin: bool) -> Result<(ChildStdio, Ours), StdioError> {
    let (out_r, out_w) = pipe_with(PipeFlags::CLOEXEC).map_err(sys("creating a pipe"))?;
    let (err_r, err_w) = pipe_with(PipeFlags::CLOEXEC).map_err(sys("creating a pipe"))?;
    let (child_in, our_in) = if stdin {
        let (r, w) = pipe_with(PipeFlags::CLOEXEC).map_err(sys("creating a pipe"))?;
        (r, Some(w))
    } else {
        (dev_null()?, None)
    };
    for fd in [Some(&out_r), Some(&err_r), our_in.as_ref()]
        .into_iter()
        .flatten()
    {
        nonblocking(fd)?;
    }
    Ok((
        ChildStdio {
            stdin: child_in,
            stdout: out_w,
            stderr: err_w,
        },
        Ours {
            stdin: our_in,
            stdout: Some(out_r),
            stderr: Some(err_r),
        },
    ))
}

/// /dev/null as 0/1/2, for a process that makes its own pty.
pub fn null() -> Result<ChildStdio, StdioError> {
    let null = dev_null()?;
    Ok(ChildStdio {
        stdin: dup(&null)?,
        stdout: dup(&null)?,
        stderr: null,
    })
}

/// Runs `f` with `child` as this process's fds 0/1/2, so that a process forked by `f` inherits
/// them; the monitor's own 0/1/2 are put back afterwards (and `child` is dropped by the caller,
/// so the monitor keeps no copy of the process's ends).
pub fn with_stdio<T>(child: &ChildStdio, f: impl FnOnce() -> T) -> Result<T, StdioError> {
    let saved = [
        rustix::io::fcntl_dupfd_cloexec(std::io::stdin(), 3),
        rustix::io::fcntl_dupfd_cloexec(std::io::stdout(), 3),
        rustix::io::fcntl_dupfd_cloexec(std::io::stderr(), 3),
    ];
    let set = |fds: [&OwnedFd; 3]| -> Result<(), StdioError> {
        nix::unistd::dup2_stdin(fds[0]).map_err(sys("setting fd 0"))?;
        nix::unistd::dup2_stdout(fds[1]).map_err(sys("setting fd 1"))?;
        nix::unistd::dup2_stderr(fds[2]).map_err(sys("setting fd 2"))?;
        Ok(())
    };
    let [a, b, c] = saved;
    let (a, b, c) = (
        a.map_err(sys("saving fd 0"))?,
        b.map_err(sys("saving fd 1"))?,
        c.map_err(sys("saving fd 2"))?,
    );
    set([&child.stdin, &child.stdout, &child.stderr])?;
    let result = f();
    set([&a, &b, &c])?;
    Ok(result)
}

/// Receives the pty master sent over `socket` by the process's console setup.
pub fn receive_master(socket: &UnixStream) -> Result<OwnedFd, StdioError> {
    let mut name = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(sys("receiving the pty master"))?;
    let cmsgs = msg.cmsgs().map_err(sys("receiving the pty master"))?;
    for cmsg in cmsgs {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            let mut fds = fds.into_iter();
            if let Some(fd) = fds.next() {
                // SAFETY: the kernel just installed this descriptor for us (SCM_RIGHTS); nothing
                // else owns it.
                let master = unsafe { OwnedFd::from_raw_fd(fd) };
                for extra in fds {
                    // SAFETY: as above; descriptors beyond the first are not ours to keep.
                    drop(unsafe { OwnedFd::from_raw_fd(extra) });
                }
                nonblocking(&master)?;
                return Ok(master);
            }
        }
    }
    Err(StdioError::NoTerminal("no descriptor in the message"))
}

/// A socket an exec's console setup connects to, at `path` (removed first if stale).
pub fn console_listener(path: &Path) -> Result<UnixListener, StdioError> {
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path).map_err(sys("binding the console socket"))
}

/// Takes the connection the exec made to `listener` (already queued) and its pty master.
pub fn accept_master(listener: &UnixListener) -> Result<OwnedFd, StdioError> {
    listener
        .set_nonblocking(true)
        .map_err(sys("accepting the console connection"))?;
    let (conn, _) = listener
        .accept()
        .map_err(sys("accepting the console connection"))?;
    conn.set_nonblocking(false)
        .map_err(sys("accepting the console connection"))?;
    receive_master(&conn)
}

/// TIOCSWINSZ on a pty master.
pub fn resize(master: &impl AsFd, height: u16, width: u16) -> Result<(), StdioError> {
    let ws = rustix::termios::Winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(master, ws).map_err(sys("setting the terminal size"))
}
