//! A process whose stdio the monitor holds: the container's init or an exec. Its output ends
//! (pipes, or the pty master), what waits to be written to its stdin, and how it ended.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Instant, SystemTime};

use berth_api::stdcopy::Stream;

/// EOT: what a terminal reads as end of input (in canonical mode), sent when stdin ends on a pty.
const EOT: u8 = 4;

/// One output end: stdout's or stderr's pipe, or the pty master (as stdout).
#[derive(Debug)]
pub struct Output {
    /// `None` once at end of file.
    pub fd: Option<OwnedFd>,
    pub stream: Stream,
}

/// How a process ended, as the monitor saw it when reaping it.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    pub code: i32,
    pub at: SystemTime,
    /// When it was reaped: remaining output is drained for a while after this.
    pub reaped: Instant,
}

#[derive(Debug)]
pub struct Task {
    pub pid: i32,
    /// `None` for the container; the exec's id otherwise.
    pub exec_id: Option<String>,
    pub tty: bool,
    pub outputs: Vec<Output>,
    /// The write end of stdin's pipe (without a tty); `None` without stdin or once closed.
    pub stdin: Option<OwnedFd>,
    /// With a tty: whether stdin is still accepted (the master is `outputs[0]`).
    pub tty_stdin: bool,
    pub stdin_buf: Vec<u8>,
    /// Close stdin once `stdin_buf` is written.
    pub stdin_closing: bool,
    /// Whether the end of an attached client's stdin closes the process's stdin.
    pub stdin_once: bool,
    pub ended: Option<Ended>,
    /// Set once the end was handled: output drained, waiters answered.
    pub finished: bool,
}

impl Task {
    /// A task over pipes.
    pub fn with_pipes(pid: i32, ours: crate::stdio::Ours, stdin_once: bool) -> Task {
        let outputs = [(ours.stdout, Stream::Stdout), (ours.stderr, Stream::Stderr)]
            .into_iter()
            .map(|(fd, stream)| Output { fd, stream })
            .collect();
        Task {
            pid,
            exec_id: None,
            tty: false,
            outputs,
            stdin: ours.stdin,
            tty_stdin: false,
            stdin_buf: Vec::new(),
            stdin_closing: false,
            stdin_once,
            ended: None,
            finished: false,
        }
    }

    /// A task over a pty master; `stdin` says whether the client's input reaches it.
    pub fn with_tty(pid: i32, master: OwnedFd, stdin: bool, stdin_once: bool) -> Task {
        Task {
            pid,
            exec_id: None,
            tty: true,
            outputs: vec![Output {
                fd: Some(master),
                stream: Stream::Stdout,
            }],
            stdin: None,
            tty_stdin: stdin,
            stdin_buf: Vec::new(),
            stdin_closing: false,
            stdin_once,
            ended: None,
            finished: false,
        }
    }

    /// The descriptor stdin is written to, if stdin is open.
    pub fn stdin_fd(&self) -> Option<&OwnedFd> {
        if self.tty {
            if self.tty_stdin || !self.stdin_buf.is_empty() {
                return self.outputs.first().and_then(|o| o.fd.as_ref());
            }
            return None;
        }
        self.stdin.as_ref()
    }

    pub fn accepts_stdin(&self) -> bool {
        !self.stdin_closing && (self.stdin.is_some() || (self.tty && self.tty_stdin))
    }

    /// The pty master, for resize.
    pub fn master(&self) -> Option<&OwnedFd> {
        if self.tty {
            self.outputs.first().and_then(|o| o.fd.as_ref())
        } else {
            None
        }
    }

    /// The end of an attached client's stdin.
    pub fn client_stdin_ended(&mut self) {
        if !self.stdin_once || !self.accepts_stdin() {
            return;
        }
        if self.tty {
            self.stdin_buf.push(EOT);
            self.tty_stdin = false;
        } else {
            self.stdin_closing = true;
        }
        self.flush_stdin();
    }

    /// Writes what it can of `stdin_buf` without blocking; closes stdin when asked and done.
    pub fn flush_stdin(&mut self) {
        while !self.stdin_buf.is_empty() {
            let Some(fd) = self.stdin_fd() else {
                self.stdin_buf.clear();
                break;
            };
            match rustix::io::write(fd.as_fd(), &self.stdin_buf) {
                Ok(n) => {
                    self.stdin_buf.drain(..n);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return,
                Err(_) => {
                    // The reader is gone (EPIPE) or the pty closed: drop the input.
                    self.stdin_buf.clear();
                    self.stdin = None;
                    self.tty_stdin = false;
                }
            }
        }
        if self.stdin_closing {
            self.stdin = None;
        }
    }

    /// Whether every output end reached end of file.
    pub fn outputs_done(&self) -> bool {
        self.outputs.iter().all(|o| o.fd.is_none())
    }

    /// Drops every descriptor (after the process ended and its output was handled).
    pub fn close_all(&mut self) {
        for o in &mut self.outputs {
            o.fd = None;
        }
        self.stdin = None;
        self.tty_stdin = false;
        self.stdin_buf.clear();
    }
}

/// Docker's exit code of a wait status: the status, or 128 + the signal.
pub fn exit_code(status: nix::sys::wait::WaitStatus) -> Option<(i32, i32)> {
    use nix::sys::wait::WaitStatus;
    match status {
        WaitStatus::Exited(pid, code) => Some((pid.as_raw(), code)),
        WaitStatus::Signaled(pid, sig, _) => Some((pid.as_raw(), 128 + sig as i32)),
        _ => None,
    }
}
