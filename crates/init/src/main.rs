//! `berth-init`: the init of `docker run --init` containers, what tini (`docker-init`) is to
//! Docker. The daemon bind-mounts it read-only at `/dev/init` and runs
//! `/dev/init -- ENTRYPOINT CMD...` as the container's PID 1.
//!
//! As tini does, it
//! - blocks every asynchronous signal and reads them from a signalfd (a blocked signal is
//!   queued even for a PID 1 that has no handler, so `docker stop`'s SIGTERM is not lost);
//! - starts the command as its only child, in a process group of its own that it makes the
//!   terminal's foreground group when stdin is a terminal (so ctrl-c and ctrl-z reach the
//!   command, as the terminal's signals reach a shell's job);
//! - forwards every signal it receives (TERM, INT, HUP, QUIT, USR1, USR2, WINCH, real-time
//!   ones...) to the child, except SIGCHLD;
//! - on SIGCHLD reaps every zombie (orphans are re-parented to PID 1, or to it as a child
//!   subreaper when it is not PID 1);
//! - exits with the child's exit code, or 128+N when a signal N killed it; 127 (126) when the
//!   command is not found (not executable), as a shell.
//!
//! `berth-init --pause` is instead the "pause" process of a Kubernetes pod sandbox (what
//! Kubernetes' `pause.c` is): the PID 1 of the pod's shared PID namespace, it runs nothing,
//! reaps every zombie re-parented to it, exits 0 on SIGINT or SIGTERM and ignores every other
//! signal.
//!
//! Written by hand (no crate does this) over nix, and rustix's `kill` for real-time signals,
//! which nix's `Signal` cannot name. `build.rs` links it statically.

use std::ffi::{CString, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;

use nix::errno::Errno;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::SignalFd;
use nix::unistd::{execvp, fork, getpid, setpgid, tcsetpgrp, ForkResult, Pid};

const USAGE: &str = "usage: berth-init [--] PROGRAM [ARGS...]\n       berth-init --pause";

/// Signals left unblocked, as tini leaves them: the synchronous ones (a fault in berth-init
/// itself must kill it) and the terminal's job-control stops (ignored instead).
const UNBLOCKED: [Signal; 9] = [
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

fn main() {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match args.first().and_then(|a| a.to_str()) {
        Some("--version" | "-V") => {
            println!("berth-init version {}", env!("CARGO_PKG_VERSION"));
            return;
        }
        Some("--help" | "-h") => {
            println!("{USAGE}");
            return;
        }
        Some("--pause") if args.len() == 1 => pause(),
        Some("--") => {
            args.remove(0);
        }
        _ => {}
    }
    if args.is_empty() {
        fatal(USAGE, 1);
    }
    let argv: Vec<CString> = match args
        .into_iter()
        .map(|a| CString::new(a.into_vec()))
        .collect()
    {
        Ok(v) => v,
        Err(_) => fatal("an argument holds a NUL byte", 1),
    };
    std::process::exit(run(&argv));
}

/// `--pause`: reaps zombies until SIGINT or SIGTERM, then exits 0. Never returns.
fn pause() -> ! {
    if getpid().as_raw() != 1 {
        // As pause.c: said, not refused; orphans of the namespace still come here.
        eprintln!("berth-init: warning: --pause should be the first process");
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }
    let mut blocked = SigSet::all();
    for s in UNBLOCKED
        .into_iter()
        .chain([Signal::SIGKILL, Signal::SIGSTOP])
    {
        blocked.remove(s);
    }
    if let Err(e) = blocked.thread_set_mask() {
        fatal(&format!("blocking signals: {e}"), 1);
    }
    let signals = match SignalFd::new(&blocked) {
        Ok(fd) => fd,
        Err(e) => fatal(&format!("signalfd: {e}"), 1),
    };
    loop {
        let signo = match signals.read_signal() {
            Ok(Some(info)) => info.ssi_signo as i32,
            Ok(None) | Err(Errno::EINTR) => continue,
            Err(e) => fatal(&format!("reading signals: {e}"), 1),
        };
        if signo == Signal::SIGINT as i32 || signo == Signal::SIGTERM as i32 {
            std::process::exit(0);
        }
        if signo == Signal::SIGCHLD as i32 {
            reap_all();
        }
    }
}

/// Reaps every zombie there is.
fn reap_all() {
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::NOHANG) {
            Ok(Some(_)) | Err(rustix::io::Errno::INTR) => {}
            Ok(None) | Err(_) => return,
        }
    }
}

/// Prints `berth-init: MESSAGE` and exits with `code`.
fn fatal(message: &str, code: i32) -> ! {
    eprintln!("berth-init: {message}");
    std::process::exit(code)
}

/// Starts `argv` and supervises it; the exit code to leave with.
fn run(argv: &[CString]) -> i32 {
    if getpid().as_raw() != 1 {
        // Not the namespace's init (a test, or `docker run --pid host`): orphans of the
        // command still come to us to be reaped.
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            eprintln!("berth-init: warning: cannot become a child subreaper: {e}");
        }
    }
    let mut blocked = SigSet::all();
    for s in UNBLOCKED
        .into_iter()
        .chain([Signal::SIGKILL, Signal::SIGSTOP])
    {
        blocked.remove(s);
    }
    let old_mask = match blocked.thread_swap_mask(SigmaskHow::SIG_SETMASK) {
        Ok(m) => m,
        Err(e) => fatal(&format!("blocking signals: {e}"), 1),
    };
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    let mut restore = Vec::new();
    for s in [Signal::SIGTTIN, Signal::SIGTTOU] {
        // SAFETY: SIG_IGN installs no handler function, so no code runs in signal context.
        match unsafe { sigaction(s, &ignore) } {
            Ok(old) => restore.push((s, old)),
            Err(e) => fatal(&format!("ignoring {s}: {e}"), 1),
        }
    }
    // Rust's runtime ignores SIGPIPE; the command gets the default back.
    restore.push((Signal::SIGPIPE, default));
    let signals = match SignalFd::new(&blocked) {
        Ok(fd) => fd,
        Err(e) => fatal(&format!("signalfd: {e}"), 1),
    };

    // SAFETY: berth-init is single-threaded (no thread is ever spawned), so the child is a
    // full copy of the only thread and may allocate and run any code before it execs.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(signals);
            exec_child(argv, &old_mask, &restore)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => fatal(&format!("fork: {e}"), 1),
    };
    supervise(child, &signals)
}

/// In the child: its own process group (the terminal's foreground one), the signal mask and
/// dispositions berth-init found, then the command. Never returns.
fn exec_child(argv: &[CString], old_mask: &SigSet, restore: &[(Signal, SigAction)]) -> ! {
    let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
    let stdin = std::io::stdin();
    if nix::unistd::isatty(stdin.as_fd()).unwrap_or(false) {
        // SIGTTOU is still ignored here, so a background group may take the terminal. No
        // controlling terminal (ENOTTY) or another session's (ENXIO, EPERM): nothing to do.
        let _ = tcsetpgrp(stdin.as_fd(), getpid());
    }
    for (s, action) in restore {
        // SAFETY: the actions are SIG_DFL or the ones the process started with, which this
        // process image never changed to a handler of its own.
        let _ = unsafe { sigaction(*s, action) };
    }
    let _ = old_mask.thread_set_mask();
    let err = match execvp(&argv[0], argv) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    let code = match err {
        Errno::ENOENT => 127,
        Errno::EACCES | Errno::ENOEXEC | Errno::EISDIR | Errno::EPERM => 126,
        _ => 1,
    };
    eprintln!(
        "berth-init: exec {} failed: {}",
        argv[0].to_string_lossy(),
        err.desc()
    );
    // Nothing is buffered in this copy of the process: a plain exit is fine.
    std::process::exit(code)
}

/// In berth-init: forwards signals to `child` and reaps zombies until `child` has exited.
fn supervise(child: Pid, signals: &SignalFd) -> i32 {
    loop {
        let info = match signals.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(Errno::EINTR) => continue,
            Err(e) => {
                // Cannot read signals any more: keep reaping until the child is gone.
                eprintln!("berth-init: reading signals: {e}");
                return wait_for(child);
            }
        };
        let signo = info.ssi_signo as i32;
        if signo == Signal::SIGCHLD as i32 {
            if let Some(code) = reap(child) {
                return code;
            }
            continue;
        }
        forward(child, signo);
    }
}

/// Sends signal number `signo` (as received, real-time ones included) to `child`.
fn forward(child: Pid, signo: i32) {
    let Some(pid) = rustix::process::Pid::from_raw(child.as_raw()) else {
        return;
    };
    if signo <= 0 {
        return;
    }
    // SAFETY: `signo` is a signal the kernel delivered to us through the signalfd, so a valid
    // non-zero number; libc's reserved ones (32, 33) are never in the blocked set (sigfillset
    // leaves them out), so they never arrive here.
    let sig = unsafe { rustix::process::Signal::from_raw_unchecked(signo) };
    match rustix::process::kill_process(pid, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
        Err(e) => eprintln!("berth-init: forwarding signal {signo}: {e}"),
    }
}

/// The exit code a wait status stands for: the exit status, or 128+N for a signal N.
fn exit_code(status: rustix::process::WaitStatus) -> Option<i32> {
    status
        .exit_status()
        .or_else(|| status.terminating_signal().map(|s| 128 + s))
}

/// Reaps every zombie there is; `Some(code)` once `child` is among them.
fn reap(child: Pid) -> Option<i32> {
    let mut code = None;
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::NOHANG) {
            Ok(Some((pid, status))) => {
                if pid.as_raw_nonzero().get() == child.as_raw() {
                    code = exit_code(status).or(code);
                }
            }
            Ok(None) | Err(rustix::io::Errno::CHILD) => return code,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                eprintln!("berth-init: waitpid: {e}");
                return code;
            }
        }
    }
}

/// Blocks reaping until `child` has exited; its exit code.
fn wait_for(child: Pid) -> i32 {
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::empty()) {
            Ok(Some((pid, status))) if pid.as_raw_nonzero().get() == child.as_raw() => {
                if let Some(code) = exit_code(status) {
                    return code;
                }
            }
            Err(rustix::io::Errno::CHILD) => return 1,
            _ => {}
        }
    }
}
