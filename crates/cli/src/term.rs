//! The local terminal: raw mode (restored on drop) and the window size.

use std::os::fd::BorrowedFd;

use rustix::termios::{self, Termios};

/// Raw mode on stdin while alive; the previous mode comes back on drop.
pub struct RawMode {
    saved: Termios,
}

fn stdin_fd() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

fn stdout_fd() -> BorrowedFd<'static> {
    // SAFETY: fd 1 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(1) }
}

impl RawMode {
    /// Puts stdin in raw mode (as Go's `term.MakeRaw`).
    pub fn enable() -> std::io::Result<RawMode> {
        let saved = termios::tcgetattr(stdin_fd())?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(stdin_fd(), termios::OptionalActions::Now, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(stdin_fd(), termios::OptionalActions::Now, &self.saved);
    }
}

/// (rows, cols) of the terminal on stdout (else stdin), if any.
pub fn size() -> Option<(u16, u16)> {
    for fd in [stdout_fd(), stdin_fd()] {
        if let Ok(ws) = termios::tcgetwinsize(fd) {
            if ws.ws_row > 0 || ws.ws_col > 0 {
                return Some((ws.ws_row, ws.ws_col));
            }
        }
    }
    None
}
