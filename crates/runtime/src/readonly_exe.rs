//! Protection of the runtime's (and the monitor's) binary against the container (the
//! CVE-2019-5736 class).
//!
//! A container whose program is a script starting with `#!/proc/self/exe` makes the kernel run
//! the binary of the process that execs it inside the container: the runtime's for `berth-runtime
//! run`/`exec`, the monitor's for the containers and execs the monitor starts with the runtime
//! library in-process. A process of the container could then open it through `/proc/PID/exe`
//! and, once nothing executes it any more, write to it, replacing the host's binary. So before
//! `create`, `run` and `exec` the runtime, and the monitor when it starts, re-execute themselves
//! from a read-only view of their binary that nobody can make writable again: in a mount
//! namespace of its own, the process bind mounts the binary onto itself read-only, opens it,
//! detaches the mount (the descriptor keeps it alive, and a detached mount cannot be reached to
//! be remounted), and execs the descriptor.
//!
//! The re-executed process then returns to the caller's mount namespace and working directory
//! (passed as descriptors), so that hooks and everything else see the host's mounts as before;
//! the binary it runs stays the read-only one.
//!
//! This costs an unshare, three mount calls and one exec (about a millisecond). runc's first fix
//! copied the binary into a sealed memfd instead, which costs a copy of the whole binary (6 ms for
//! ours here). A binary that already sits on a read-only mount needs nothing.
//!
//! [`ensure`] must run while the process has a single thread (setns(2) into a mount namespace
//! refuses a process whose threads share its filesystem information).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};

/// Why the read-only re-execution failed: what was being done, and the system's error.
#[derive(Debug, thiserror::Error)]
pub enum ReadonlyExeError {
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, ReadonlyExeError>;

/// Adds what was being done to a system error.
trait Context<T> {
    fn context(self, what: &str) -> Result<T>;
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<std::io::Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: &str) -> Result<T> {
        self.with_context(|| what.to_string())
    }
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| ReadonlyExeError::Sys {
            what: what(),
            source: e.into(),
        })
    }
}

/// Set in the re-executed runtime: `MNTNS_FD,CWD_FD`, the caller's mount namespace and working
/// directory.
const REEXEC_ENV: &str = "_BERTH_RUNTIME_REEXEC";

/// Returns if the running binary is already on a read-only mount; else re-executes from a
/// read-only, detached bind mount of it and does not return.
pub fn ensure() -> Result<()> {
    if let Some(fds) = std::env::var_os(REEXEC_ENV) {
        std::env::remove_var(REEXEC_ENV);
        return restore(&fds.to_string_lossy());
    }
    let readonly = statvfs("/proc/self/exe")
        .context("statvfs /proc/self/exe")?
        .flags()
        .contains(FsFlags::ST_RDONLY);
    if readonly {
        return Ok(());
    }
    let exe = std::fs::read_link("/proc/self/exe").context("reading /proc/self/exe")?;
    // Inherited by the re-executed runtime (no close-on-exec), which returns to them.
    let no_flags = rustix::fs::Mode::empty();
    let mnt_ns = rustix::fs::open("/proc/self/ns/mnt", rustix::fs::OFlags::RDONLY, no_flags)
        .context("opening /proc/self/ns/mnt")?;
    let cwd = rustix::fs::open(
        ".",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
        no_flags,
    )
    .context("opening the working directory")?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).context("unshare(CLONE_NEWNS)")?;
    // Nothing we mount may reach the host's namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .context("making / a slave mount")?;
    mount(
        Some(&exe),
        &exe,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("bind mounting {}", exe.display()))?;
    mount(
        None::<&str>,
        &exe,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .with_context(|| format!("making {} read-only", exe.display()))?;
    let fd = rustix::fs::open(
        &exe,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .context("opening the read-only binary")?;
    umount2(&exe, MntFlags::MNT_DETACH).context("detaching the read-only mount")?;
    let to_c = |s: &std::ffi::OsStr| {
        CString::new(s.as_bytes())
            .map_err(|_| ReadonlyExeError::Invalid("an argument holds a NUL byte".into()))
    };
    let args: Vec<CString> = std::env::args_os()
        .map(|a| to_c(&a))
        .collect::<Result<_>>()?;
    let mut env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            to_c(&kv)
        })
        .collect::<Result<_>>()?;
    env.push(to_c(std::ffi::OsStr::new(&format!(
        "{REEXEC_ENV}={},{}",
        mnt_ns.as_raw_fd(),
        cwd.as_raw_fd()
    )))?);
    let err = nix::unistd::fexecve(&fd, &args, &env).err();
    Err(ReadonlyExeError::Sys {
        what: "re-executing from the read-only binary".into(),
        source: err.map_or_else(std::io::Error::last_os_error, Into::into),
    })
}

/// In the re-executed runtime: back to the caller's mount namespace and working directory.
fn restore(fds: &str) -> Result<()> {
    let parse = |s: Option<&str>| -> Result<OwnedFd> {
        let raw: RawFd = s
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ReadonlyExeError::Invalid("malformed re-exec descriptors".into()))?;
        // SAFETY: the runtime that exec'd us opened this descriptor without close-on-exec for
        // us alone and named it in the environment; nothing else in this process owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(raw) })
    };
    let mut parts = fds.split(',');
    let mnt_ns = parse(parts.next())?;
    let cwd = parse(parts.next())?;
    nix::sched::setns(&mnt_ns, nix::sched::CloneFlags::CLONE_NEWNS)
        .context("returning to the caller's mount namespace")?;
    nix::unistd::fchdir(&cwd).context("returning to the working directory")?;
    Ok(())
}
