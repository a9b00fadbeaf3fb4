//! Turning the process that will become the container's program into what `process` describes:
//! rlimits, no_new_privs, user and groups, capabilities, umask, working directory, and the exec.
//!
//! Shared by the container's init and by `exec`; everything here runs in the forked child.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType, Process};

use crate::capabilities::{CapabilityError, CapabilitySets};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("setting rlimit {typ:?} to soft {soft} hard {hard}: {source}")]
    Rlimit {
        typ: PosixRlimitType,
        soft: u64,
        hard: u64,
        source: nix::Error,
    },
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    #[error("exec: {name:?}: executable file not found in $PATH")]
    NotFound { name: String },
    /// Worded as runc words it (Go's lower-case errno text: `permission denied`), which is
    /// what Docker derives exit codes 126/127 from.
    #[error("exec: {path:?}: {}", source.desc().to_lowercase())]
    Exec { path: PathBuf, source: nix::Error },
    #[error("process.cwd {cwd}: {message}")]
    Cwd { cwd: PathBuf, message: String },
    #[error("{0} contains a NUL byte")]
    Nul(String),
}

fn sys(what: &str) -> impl FnOnce(nix::Error) -> ProcessError + '_ {
    move |source| ProcessError::Sys {
        what: what.to_string(),
        source,
    }
}

fn resource(typ: PosixRlimitType) -> Resource {
    match typ {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

pub fn set_rlimits(rlimits: &[PosixRlimit]) -> Result<(), ProcessError> {
    for r in rlimits {
        setrlimit(resource(r.typ()), r.soft(), r.hard()).map_err(|source| {
            ProcessError::Rlimit {
                typ: r.typ(),
                soft: r.soft(),
                hard: r.hard(),
                source,
            }
        })?;
    }
    Ok(())
}

pub fn set_no_new_privs() -> Result<(), ProcessError> {
    nix::sys::prctl::set_no_new_privs().map_err(sys("setting no_new_privs"))
}

/// Switches to the process's user and groups and leaves it exactly the configured capabilities.
pub fn change_user(process: &Process, caps: Option<&CapabilitySets>) -> Result<(), ProcessError> {
    let user = process.user();
    if let Some(caps) = caps {
        caps.apply_bounding()?;
    }
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // setgroups is refused in a user namespace whose gid map was written without it: ignore EPERM
    // when no supplementary groups were asked for.
    match setgroups(&gids) {
        Err(nix::Error::EPERM) if gids.is_empty() => {}
        other => other.map_err(sys("setting supplementary groups"))?,
    }
    nix::sys::prctl::set_keepcaps(true).map_err(sys("setting keepcaps"))?;
    let gid = Gid::from_raw(user.gid());
    let uid = Uid::from_raw(user.uid());
    setresgid(gid, gid, gid).map_err(sys("setting gid"))?;
    setresuid(uid, uid, uid).map_err(sys("setting uid"))?;
    nix::sys::prctl::set_keepcaps(false).map_err(sys("clearing keepcaps"))?;
    if let Some(caps) = caps {
        caps.apply()?;
    }
    Ok(())
}

pub fn set_umask(process: &Process) {
    let mask = process.user().umask().unwrap_or(0o022);
    umask(Mode::from_bits_truncate(mask));
}

/// Enters the working directory and checks that it lies inside the container's root: a cwd reached
/// through a descriptor leaked from the host (`/proc/self/fd/N`) would be outside it.
pub fn enter_cwd(cwd: &Path) -> Result<(), ProcessError> {
    nix::unistd::chdir(cwd).map_err(|e| ProcessError::Cwd {
        cwd: cwd.to_path_buf(),
        message: e.desc().to_string(),
    })?;
    match nix::unistd::getcwd() {
        Ok(path) if path.is_absolute() => Ok(()),
        _ => Err(ProcessError::Cwd {
            cwd: cwd.to_path_buf(),
            message: "is outside the container's root filesystem".to_string(),
        }),
    }
}

/// Finds `name` the way execvp would, in the PATH of `env`.
pub fn find_executable(name: &str, env: &[String]) -> Result<CString, ProcessError> {
    let not_found = || ProcessError::NotFound {
        name: name.to_string(),
    };
    if name.contains('/') {
        return cstring(name);
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(name);
        if nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok()
            && candidate.is_file()
        {
            return CString::new(candidate.as_os_str().as_bytes())
                .map_err(|_| ProcessError::Nul(name.to_string()));
        }
    }
    Err(not_found())
}

fn cstring(s: &str) -> Result<CString, ProcessError> {
    CString::new(s).map_err(|_| ProcessError::Nul(s.to_string()))
}

/// Argument and environment vectors, converted before the point of no return.
#[derive(Debug)]
pub struct Argv {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
}

impl Argv {
    pub fn new(args: &[String], env: &[String]) -> Result<Self, ProcessError> {
        Ok(Self {
            args: args.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
            env: env.iter().map(|e| cstring(e)).collect::<Result<_, _>>()?,
        })
    }
}

/// Marks every descriptor from `first` up close-on-exec, so that nothing of the runtime's reaches
/// the container's program. With `close_range(CLOSE_RANGE_CLOEXEC)` where the kernel and any
/// seccomp filter already loaded allow it, else (EPERM, ENOSYS, EINVAL) one `fcntl` per
/// descriptor listed in `/proc/self/fd`, as runc does.
pub fn close_fds_on_exec(first: u32) -> Result<(), ProcessError> {
    match crate::sys::cloexec_from(first) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM | libc::ENOSYS | libc::EINVAL)
            ) =>
        {
            cloexec_listed(first)
        }
        Err(e) => Err(ProcessError::Sys {
            what: "marking descriptors close-on-exec".to_string(),
            source: nix::Error::from_raw(e.raw_os_error().unwrap_or(0)),
        }),
    }
}

/// The fallback of [`close_fds_on_exec`]: `fcntl(F_SETFD, FD_CLOEXEC)` on each open descriptor.
fn cloexec_listed(first: u32) -> Result<(), ProcessError> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let what = "marking descriptors close-on-exec (listing /proc/self/fd)";
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|e| ProcessError::Sys {
        what: what.to_string(),
        source: nix::Error::from_raw(e.raw_os_error().unwrap_or(0)),
    })?;
    // Collected first: the directory's own descriptor is among those listed, and gone after.
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|fd| u32::try_from(*fd).is_ok_and(|fd| fd >= first))
        .collect();
    for fd in fds {
        // SAFETY: the descriptor is only borrowed for the fcntl call; one that closed since the
        // listing (the directory's own) makes fcntl fail with EBADF, which is ignored.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        match fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)) {
            Ok(_) | Err(nix::Error::EBADF) => {}
            Err(source) => {
                return Err(ProcessError::Sys {
                    what: format!("marking descriptor {fd} close-on-exec"),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Replaces the process with the program. Returns only on failure.
pub fn exec(path: &CString, argv: &Argv) -> ProcessError {
    let err = nix::unistd::execve(path, &argv.args, &argv.env)
        .err()
        .unwrap_or(nix::Error::UnknownErrno);
    ProcessError::Exec {
        path: PathBuf::from(std::ffi::OsStr::from_bytes(path.as_bytes())),
        source: err,
    }
}

/// Resets what a forked runtime process must not pass on: the signal mask, and every signal's
/// disposition back to the default (a caller started under `nohup` ignores SIGHUP, a shell's
/// background job SIGINT and SIGQUIT, and ignored signals stay ignored across execve).
pub fn reset_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP)) {
        // SAFETY: SIG_DFL installs no handler, so no code of ours can run in a signal context.
        let _ = unsafe { sigaction(signal, &default) };
    }
    // The real-time signals, which nix does not name (and 32, 33, which glibc hides).
    for signo in 32..=libc::SIGRTMAX() {
        let _ = crate::sys::default_signal_action(signo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};

    #[test]
    fn the_fallback_marks_listed_descriptors_close_on_exec() {
        let file = std::fs::File::open("/proc/self/status").unwrap();
        fcntl(&file, FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
        let raw = std::os::fd::AsRawFd::as_raw_fd(&file);
        cloexec_listed(u32::try_from(raw).unwrap()).unwrap();
        let flags = FdFlag::from_bits_truncate(fcntl(&file, FcntlArg::F_GETFD).unwrap());
        assert!(flags.contains(FdFlag::FD_CLOEXEC));
    }
}
