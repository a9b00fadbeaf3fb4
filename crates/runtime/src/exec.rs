//! `exec`: a new process in a running container, in all its namespaces and its cgroup.
//!
//! The runtime enters the container's pid namespace itself (setns only moves children), forks, and
//! the child joins the other namespaces (user first, mount last), becomes what `process` says and
//! execs. The child is made non-dumpable at once, so that processes of the container cannot open
//! its `/proc/PID/exe` (the runtime's binary) while it is still the runtime.

use std::convert::Infallible;
use std::fs::File;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Process};

use crate::capabilities::CapabilitySets;
use crate::container::Runtime;
use crate::error::Error;
use crate::init::{become_process, exec_program, InitError};
use crate::launch::write_pid_file;
use crate::namespaces::Join;
use crate::process::{self, Argv};
use crate::state::Status;
use crate::sync::{self, Channel, Msg};

/// Options of `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// The process to start, complete (args, env, cwd, user, capabilities...).
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    /// Run in a paused container too: the process starts frozen and runs once it is resumed.
    pub ignore_paused: bool,
    /// Sub-cgroups to run in instead of the container's own: (controllers, path relative to the
    /// container's cgroup); no controllers means every hierarchy (runc's `--cgroup`).
    pub sub_cgroups: Vec<(Vec<String>, PathBuf)>,
}

struct ExecPlan<'a> {
    process: &'a Process,
    cgroup: &'a berth_cgroups::Manager,
    born_in_v2: std::cell::Cell<bool>,
    join: &'a [Join],
    channel: &'a Channel,
    console: Option<&'a UnixStream>,
    seccomp: Option<&'a berth_seccomp::Program>,
    caps: Option<&'a CapabilitySets>,
    argv: &'a Argv,
    preserve_fds: u32,
    personality: Option<&'a oci_spec::runtime::LinuxPersonality>,
    /// Without a mount namespace to join: the init's root (`/proc/PID/root`), to chroot into.
    chroot: Option<PathBuf>,
}

/// Starts the process; returns its pid once it has exec'd.
pub fn exec(runtime: &Runtime, id: &str, opts: &ExecOptions) -> Result<Pid, Error> {
    let record = runtime.load(id)?;
    let status = runtime.status(&record);
    if status == Status::Paused && !opts.ignore_paused {
        return Err(Error::Usage(
            "cannot exec in a paused container (use --ignore-paused to override)".into(),
        ));
    }
    if status != Status::Running && !(status == Status::Paused && opts.ignore_paused) {
        return Err(Error::WrongStatus {
            id: id.to_string(),
            status,
            action: "exec",
            needs: "running",
        });
    }
    let spec = runtime.config(id)?;
    let linux = spec.linux().as_ref().ok_or(Error::NoLinux)?;
    let process = &opts.process;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::Usage("exec: no command given".into()));
    }
    let terminal = process.terminal().unwrap_or(false);
    if terminal != opts.console_socket.is_some() {
        return Err(Error::Usage(
            "exec: a terminal needs --console-socket, and --console-socket needs a terminal".into(),
        ));
    }

    let mut join = Vec::new();
    let mut pid_ns = None;
    for ns in linux.namespaces().iter().flatten() {
        let path = PathBuf::from(format!(
            "/proc/{}/ns/{}",
            record.pid,
            crate::namespaces::file_name(ns.typ())
        ));
        let file = File::open(&path).map_err(|source| Error::Io {
            what: format!("opening {}", path.display()),
            source,
        })?;
        let j = Join {
            typ: ns.typ(),
            path,
            file,
        };
        if ns.typ() == LinuxNamespaceType::Pid {
            pid_ns = Some(j);
        } else {
            join.push(j);
        }
    }
    join.sort_by_key(|j| match j.typ {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    });
    // setns(CLONE_NEWPID) changes where this process's *children* are born; a long-lived
    // caller (the monitor) must get its own back once the child exists, or it could not fork
    // after the container died.
    let _restore_pid_ns = match pid_ns {
        Some(pid_ns) => {
            let guard = PidNsRestore::capture()?;
            pid_ns.enter()?;
            Some(guard)
        }
        None => None,
    };
    let mut cgroup = runtime.cgroup(&record)?;
    for (controllers, sub) in &opts.sub_cgroups {
        cgroup = cgroup.sub_cgroup(controllers, sub)?;
    }
    let console = opts
        .console_socket
        .as_deref()
        .map(crate::console::connect)
        .transpose()?;
    if let Some(seccomp) = linux.seccomp() {
        crate::notify::check(seccomp)?;
    }
    let seccomp = crate::launch::compile_seccomp(runtime.store(), linux)?;
    let caps = process
        .capabilities()
        .as_ref()
        .map(CapabilitySets::from_spec)
        .transpose()?;
    let argv = Argv::new(
        process.args().as_deref().unwrap_or_default(),
        process.env().as_deref().unwrap_or_default(),
    )?;
    let (parent_end, child_end) = sync::pair()?;
    let plan = ExecPlan {
        process,
        cgroup: &cgroup,
        born_in_v2: std::cell::Cell::new(false),
        join: &join,
        channel: &child_end,
        console: console.as_ref(),
        seccomp: seccomp.as_ref(),
        caps: caps.as_ref(),
        argv: &argv,
        preserve_fds: opts.preserve_fds,
        personality: linux.personality().as_ref(),
        chroot: (!crate::container::has_mount_namespace(&spec))
            .then(|| PathBuf::from(format!("/proc/{}/root", record.pid))),
    };
    let cgroup_dir = crate::launch::cgroup2_dir(&cgroup)?;
    let pid = crate::launch::fork_child(
        CloneFlags::empty(),
        cgroup_dir.as_ref(),
        &plan.born_in_v2,
        || child(&plan),
    )?;
    drop(child_end);
    drop(console);
    let result = (|| {
        if let Some(text) = parent_end.send_to_child(&Msg::Go)? {
            return Err(Error::Init(text));
        }
        loop {
            match parent_end.recv_with_fd()? {
                (Msg::Closed, _) => return Ok(()),
                (Msg::Listener, Some(listener)) => {
                    let seccomp = linux.seccomp().as_ref().ok_or(Error::NoLinux)?;
                    let state = record.oci_state(Status::Running);
                    crate::notify::forward(seccomp, &state, pid.as_raw(), listener)?;
                }
                (Msg::Error(text), _) => return Err(Error::Init(text)),
                (other, _) => return Err(Error::Init(format!("unexpected message {other:?}"))),
            }
        }
    })();
    if let Err(e) = result {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
        return Err(e);
    }
    if let Some(pid_file) = &opts.pid_file {
        write_pid_file(pid_file, pid.as_raw())?;
    }
    Ok(pid)
}

fn child(plan: &ExecPlan<'_>) -> isize {
    let err = match exec_child(plan) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = plan.channel.send(&Msg::Error(err.to_string()));
    // SAFETY: _exit ends the forked child without running the parent's destructors.
    unsafe { libc::_exit(1) }
}

fn exec_child(plan: &ExecPlan<'_>) -> Result<Infallible, InitError> {
    let _ = nix::sys::prctl::set_dumpable(false);
    process::reset_signals();
    if plan.channel.recv()? != Msg::Go {
        // SAFETY: see `child`.
        unsafe { libc::_exit(1) }
    }
    // Into the container's cgroups before its user namespace takes our rights on the host's
    // cgroup files; by ourselves, so that no global lock is taken (see Manager::join_v1_self).
    crate::scheduling::initial_affinity(plan.process)?;
    plan.cgroup.join_v1_self()?;
    if !plan.born_in_v2.get() {
        plan.cgroup.join_v2_self()?;
    }
    crate::namespaces::enter_all(plan.join)?;
    if let Some(root) = &plan.chroot {
        let sys = |what: &'static str| {
            move |source| InitError::Sys {
                what: what.into(),
                source,
            }
        };
        nix::unistd::chdir(root).map_err(sys("entering the container's root"))?;
        nix::unistd::chroot(".").map_err(sys("chroot into the container's root"))?;
        nix::unistd::chdir("/").map_err(sys("chdir to /"))?;
    }
    // As runc: the container's execution domain holds for every process in it, not the init's only.
    if let Some(p) = plan.personality {
        crate::scheduling::set_personality(p)?;
    }
    if plan.console.is_some() {
        // The terminal must become the controlling terminal of a new session.
        nix::unistd::setsid().map_err(|source| InitError::Sys {
            what: "setsid".into(),
            source,
        })?;
    }
    let prepared = become_process(
        plan.process,
        plan.console,
        plan.seccomp,
        plan.caps,
        plan.preserve_fds,
        plan.channel,
    )?;
    Err(exec_program(&prepared, plan.argv))
}

/// The caller's namespace for its children, set back on drop.
struct PidNsRestore(File);

impl PidNsRestore {
    fn capture() -> Result<PidNsRestore, Error> {
        let path = "/proc/thread-self/ns/pid_for_children";
        File::open(path)
            .map(PidNsRestore)
            .map_err(|source| Error::Io {
                what: format!("opening {path}"),
                source,
            })
    }
}

impl Drop for PidNsRestore {
    fn drop(&mut self) {
        use std::os::fd::AsFd;
        let _ = nix::sched::setns(self.0.as_fd(), CloneFlags::CLONE_NEWPID);
    }
}
