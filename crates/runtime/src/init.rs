//! The container's init: the child the runtime forks into the new namespaces, which sets up the
//! container around itself and then becomes the user's program.
//!
//! It is forked by `clone(2)` from the runtime process itself: no second binary and no re-exec, so
//! creating a container costs one clone and one execve. The steps, in the spec's order:
//! wait for the runtime's `Go` (uid/gid maps written) → join namespaces given by path → hostname →
//! the mounts before the first cgroup mount → wait for `Placed` (cgroup joined, prestart and
//! createRuntime hooks run) → new cgroup namespace → the other mounts, `/dev` → createContainer hooks → pivot_root → sysctl, read-only and masked paths → terminal → rlimits,
//! no_new_privs, user, capabilities → `Ready` → (with `create`) block on the exec fifo until
//! `start` → startContainer hooks → seccomp → execve.

use std::convert::Infallible;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sched::{unshare, CloneFlags};
use oci_spec::runtime::Spec;

use crate::capabilities::CapabilitySets;
use crate::hooks::{self, HookError};
use crate::namespaces::{Join, NamespaceError};
use crate::process::{self, Argv, ProcessError};
use crate::rootfs::{Rootfs, RootfsError};
use crate::state::OciState;
use crate::sync::{Channel, Msg, SyncError};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    #[error(transparent)]
    Seccomp(#[from] berth_seccomp::Error),
    #[error(transparent)]
    Scheduling(#[from] crate::scheduling::SchedulingError),
    #[error(transparent)]
    Cgroup(#[from] berth_cgroups::Error),
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> InitError {
    let what = what.into();
    move |source| InitError::Sys { what, source }
}

/// Everything the init needs, prepared by the runtime before the fork.
pub struct InitPlan<'a> {
    pub spec: &'a Spec,
    pub rootfs: Rootfs,
    pub join: &'a [Join],
    pub new_cgroupns: bool,
    pub new_time: bool,
    pub new_uts: bool,
    pub channel: &'a Channel,
    /// With `create`: an `O_PATH` descriptor of the fifo that `start` opens.
    pub fifo: Option<OwnedFd>,
    pub console: Option<&'a UnixStream>,
    pub seccomp: Option<&'a berth_seccomp::Program>,
    pub caps: Option<&'a CapabilitySets>,
    pub argv: &'a Argv,
    pub preserve_fds: u32,
    pub state: &'a OciState,
    /// When the init moves itself into its cgroups (not in a new user namespace, whose root
    /// cannot write the host's cgroup files; the runtime moves it then).
    pub cgroup: Option<&'a berth_cgroups::Manager>,
    /// Whether the init was created in its cgroup2 directory (clone3 CLONE_INTO_CGROUP).
    pub born_in_v2: std::cell::Cell<bool>,
}

/// The body of the forked child. Never returns: it execs the program or exits with status 1 after
/// telling the runtime why.
pub fn run(plan: &InitPlan<'_>) -> isize {
    let err = match init(plan) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = plan.channel.send(&Msg::Error(err.to_string()));
    // SAFETY: _exit ends the forked child without running the parent's atexit handlers or
    // destructors, which belong to the runtime process the child was copied from.
    unsafe { libc::_exit(1) }
}

fn init(plan: &InitPlan<'_>) -> Result<Infallible, InitError> {
    process::reset_signals();
    let spec = plan.spec;
    let proc = spec.process().as_ref().ok_or_else(|| InitError::Io {
        what: "config.json".into(),
        source: std::io::Error::other("no process"),
    })?;
    match plan.channel.recv()? {
        Msg::Go => {}
        // The runtime gave up before starting us (a hook failed): leave quietly.
        _ => {
            // SAFETY: see `run`.
            unsafe { libc::_exit(1) }
        }
    }
    crate::scheduling::initial_affinity(proc)?;
    if let Some(cgroup) = plan.cgroup {
        cgroup.join_v1_self()?;
        if !plan.born_in_v2.get() {
            cgroup.join_v2_self()?;
        }
        plan.channel.send(&Msg::Joined)?;
    }
    crate::namespaces::enter_all(plan.join)?;
    if plan.new_time {
        let offsets: Vec<(String, i64, u32)> = spec
            .linux()
            .as_ref()
            .and_then(|l| l.time_offsets().as_ref())
            .iter()
            .flat_map(|t| t.iter())
            .map(|(clock, o)| {
                (
                    clock.clone(),
                    o.secs().unwrap_or(0),
                    o.nanosecs().unwrap_or(0),
                )
            })
            .collect();
        crate::namespaces::enter_new_time(&offsets)?;
    }
    if plan.rootfs.in_userns {
        // Our host uid (0) is not mapped in the new user namespace: files we create would get
        // EOVERFLOW. Become the namespace's root, which the maps just written make valid.
        let root_gid = nix::unistd::Gid::from_raw(0);
        let root_uid = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresgid(root_gid, root_gid, root_gid)
            .map_err(sys("setting gid 0 in the user namespace"))?;
        nix::unistd::setresuid(root_uid, root_uid, root_uid)
            .map_err(sys("setting uid 0 in the user namespace"))?;
    }
    nix::unistd::setsid().map_err(sys("setsid"))?;
    if plan.new_uts {
        if let Some(name) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            nix::unistd::sethostname(name).map_err(sys(format!("setting hostname {name:?}")))?;
        }
        if let Some(name) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
            rustix::system::setdomainname(name.as_bytes()).map_err(|e| InitError::Io {
                what: format!("setting domainname {name:?}"),
                source: e.into(),
            })?;
        }
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    // The mounts before the first cgroup mount are made while the runtime moves us into our
    // cgroup (a migration waits for an RCU grace period, milliseconds): they overlap.
    let split = Rootfs::cgroup_split(spec);
    // From here on host paths are out of reach with a mount template (the namespaces given
    // by path are joined above).
    let rootfs = plan.rootfs.in_template()?;
    rootfs.prepare_early(spec, split)?;
    if plan.channel.recv()? != Msg::Placed {
        // The runtime gave up (a hook failed): leave quietly.
        // SAFETY: see `run`.
        unsafe { libc::_exit(1) }
    }
    // Where our cgroup is in the host's hierarchies, before the cgroup namespace hides it.
    let host_cgroup = std::fs::read_to_string("/proc/self/cgroup").ok();
    if plan.new_cgroupns {
        // Made after the runtime moved us into our cgroup, so that the namespace's root is it.
        unshare(CloneFlags::CLONE_NEWCGROUP).map_err(sys("creating the cgroup namespace"))?;
    }
    rootfs.prepare_late(spec, split, host_cgroup.as_deref())?;
    let hooks = spec.hooks().as_ref();
    // Hooks in the container's namespaces get the pid as the container sees it (state.md).
    let mut hook_state = plan.state.clone();
    hook_state.pid = nix::unistd::getpid().as_raw();
    hooks::run_all(
        "createContainer",
        hooks
            .and_then(|h| h.create_container().as_deref())
            .unwrap_or_default(),
        &hook_state,
        hooks::DefaultEnv::Container(proc.env().as_deref().unwrap_or_default()),
    )?;
    rootfs.enter(spec)?;
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        write_sysctls(sysctl)?;
    }
    rootfs.finish(spec)?;

    if let Some(p) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) {
        crate::scheduling::set_personality(p)?;
    }
    if let Some(p) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref())
    {
        crate::scheduling::set_memory_policy(p)?;
    }
    let prepared = become_process(
        proc,
        plan.console,
        plan.seccomp,
        plan.caps,
        plan.preserve_fds,
        plan.channel,
    )?;
    if let Some(fifo) = &plan.fifo {
        // Whatever would keep us from opening the fifo is a failure of `create`, not of `start`.
        check_fifo_writable(fifo)?;
    }

    plan.channel.send(&Msg::Ready)?;
    // With `create`: blocks until `start` opens the fifo. From then on `start` reads it to the
    // end: "0" once the startContainer hooks passed, then end-of-file when the exec closes it
    // (close-on-exec); any text after the "0", or a "1" and text, is the error that stopped us.
    let mut start = plan.fifo.as_ref().map(wait_for_start).transpose()?;
    hook_state.status = crate::state::Status::Created;
    let result = (|| -> Result<Infallible, InitError> {
        hooks::run_all(
            "startContainer",
            hooks
                .and_then(|h| h.start_container().as_deref())
                .unwrap_or_default(),
            &hook_state,
            hooks::DefaultEnv::Container(proc.env().as_deref().unwrap_or_default()),
        )?;
        if let Some(f) = &mut start {
            f.write_all(b"0").map_err(|source| InitError::Io {
                what: "writing the exec fifo".into(),
                source,
            })?;
        }
        Err(exec_program(&prepared, plan.argv))
    })();
    let err = match result {
        Ok(never) => match never {},
        Err(e) => e,
    };
    if let Some(f) = &mut start {
        let _ = f.write_all(format!("1{err}").as_bytes());
    }
    Err(err)
}

/// The process, set up and about to exec; see [`become_process`].
pub(crate) struct Prepared<'a> {
    program: CString,
    /// The seccomp filter still to load just before the exec (with no_new_privs).
    seccomp: Option<&'a berth_seccomp::Program>,
}

/// Turns the calling process (the init, or `exec`'s child, already in the container's
/// namespaces and root) into what `proc` describes: terminal, rlimits, I/O priority and
/// scheduler, no_new_privs, descriptors past stdio and the `preserve_fds` close-on-exec, user
/// and capabilities, umask, working directory; and finds the program. Without no_new_privs the
/// seccomp filter is loaded here, while CAP_SYS_ADMIN is still there; with it, as late as
/// possible, by [`exec_program`]. Whatever the runtime needs that a profile may deny
/// (`close_range`, `openat2`, `clone3`...) happens before either.
///
/// A filter with `SCMP_ACT_NOTIFY` rules is loaded here in either case, as runc does: its
/// listener goes to the runtime over `channel` (which hands it to the seccomp agent), and with
/// `create` the runtime is gone by the time of the exec.
pub(crate) fn become_process<'a>(
    proc: &oci_spec::runtime::Process,
    console: Option<&UnixStream>,
    seccomp: Option<&'a berth_seccomp::Program>,
    caps: Option<&CapabilitySets>,
    preserve_fds: u32,
    channel: &Channel,
) -> Result<Prepared<'a>, InitError> {
    if let Some(console) = console {
        let size = proc
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        crate::console::setup(console, size)?;
    }
    process::set_rlimits(proc.rlimits().as_deref().unwrap_or_default())?;
    crate::scheduling::apply(proc)?;
    let no_new_privs = proc.no_new_privileges().unwrap_or(false);
    if no_new_privs {
        process::set_no_new_privs()?;
    }
    process::close_fds_on_exec(3 + preserve_fds)?;
    let load_now = seccomp.filter(|f| !no_new_privs || f.uses_notify());
    if let Some(filter) = load_now {
        if let Some(listener) = filter.load()? {
            channel.send_listener(listener.as_fd())?;
        }
    }
    process::change_user(proc, caps)?;
    process::set_umask(proc);
    process::enter_cwd(proc.cwd())?;
    let env = proc.env().as_deref().unwrap_or_default();
    let program = process::find_executable(&proc.args().as_deref().unwrap_or_default()[0], env)?;
    Ok(Prepared {
        program,
        seccomp: if load_now.is_some() { None } else { seccomp },
    })
}

/// Loads a pending seccomp filter and execs: execve is the only call after the filter. Returns
/// only on failure.
pub(crate) fn exec_program(prepared: &Prepared<'_>, argv: &Argv) -> InitError {
    if let Some(filter) = prepared.seccomp {
        // Never a listener here: filters with notify rules are loaded by `become_process`.
        if let Err(e) = filter.load() {
            return e.into();
        }
    }
    process::exec(&prepared.program, argv).into()
}

/// Opens the exec fifo for writing without waiting: ENXIO (no reader yet) means it can be
/// opened once `start` comes; any other error is returned.
fn check_fifo_writable(fifo: &OwnedFd) -> Result<(), InitError> {
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    match rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        Err(rustix::io::Errno::NXIO) => Ok(()),
        // A reader already: cannot happen before `Ready` (`start` refuses a container still
        // being created), and would mean the fifo is usable anyway.
        Ok(_) => Ok(()),
        Err(e) => Err(InitError::Io {
            what: "opening the exec fifo".into(),
            source: e.into(),
        }),
    }
}

/// Opens the exec fifo for writing through our `O_PATH` descriptor (close-on-exec): this blocks
/// until `start` opens it for reading.
fn wait_for_start(fifo: &OwnedFd) -> Result<std::fs::File, InitError> {
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|source| InitError::Io {
            what: "opening the exec fifo".into(),
            source,
        })
}

fn write_sysctls(sysctl: &std::collections::HashMap<String, String>) -> Result<(), InitError> {
    for (key, value) in sysctl {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|source| InitError::Io {
            what: format!("setting sysctl {key}={value}"),
            source,
        })?;
    }
    Ok(())
}
