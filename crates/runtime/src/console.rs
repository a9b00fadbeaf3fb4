//! `process.terminal`: a pseudo-terminal made inside the container, whose master end is handed to
//! the caller over `--console-socket` with SCM_RIGHTS, as runc does.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("connecting to console socket {path}: {source}")]
    Connect {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("sending the terminal over the console socket: {0}")]
    Send(nix::Error),
}

fn sys(what: &'static str) -> impl FnOnce(rustix::io::Errno) -> ConsoleError {
    move |e| ConsoleError::Sys {
        what,
        source: e.into(),
    }
}

/// Connects to the caller's console socket (in the runtime, before the fork).
pub fn connect(path: &Path) -> Result<UnixStream, ConsoleError> {
    UnixStream::connect(path).map_err(|source| ConsoleError::Connect {
        path: path.to_path_buf(),
        source,
    })
}

/// Makes a pty in the container (its `/dev/ptmx`), sends the master to `socket`, and makes the
/// slave the calling process's controlling terminal and stdio. `size` is (rows, columns).
pub fn setup(socket: &UnixStream, size: Option<(u16, u16)>) -> Result<(), ConsoleError> {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .map_err(sys("opening /dev/ptmx"))?;
    grantpt(&master).map_err(sys("grantpt"))?;
    unlockpt(&master).map_err(sys("unlockpt"))?;
    let name = ptsname(&master, Vec::new()).map_err(sys("ptsname"))?;
    if let Some((rows, cols)) = size {
        let ws = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&master, ws).map_err(sys("setting the console size"))?;
    }
    let slave: OwnedFd = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(sys("opening the pty slave"))?;
    let fds: [RawFd; 1] = [master.as_raw_fd()];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(ConsoleError::Send)?;
    drop(master);
    rustix::process::ioctl_tiocsctty(&slave)
        .map_err(sys("making the pty the controlling terminal"))?;
    let stdio = |e: nix::Error| ConsoleError::Sys {
        what: "attaching stdio to the pty",
        source: e.into(),
    };
    nix::unistd::dup2_stdin(&slave).map_err(stdio)?;
    nix::unistd::dup2_stdout(&slave).map_err(stdio)?;
    nix::unistd::dup2_stderr(&slave).map_err(stdio)?;
    Ok(())
}
