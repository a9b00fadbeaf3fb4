//! Creating a container: the runtime's side of the fork.
//!
//! The runtime claims the id, prepares everything that can fail before the fork (config, cgroup,
//! seccomp program, namespace descriptors, console socket), clones the init straight into its new
//! namespaces, writes the id maps, moves it into its cgroup, runs the prestart and createRuntime
//! hooks and tells it to go on. Any failure undoes every step already taken (see [`Rollback`]).

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use berth_cgroups::Manager;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::capabilities::CapabilitySets;
use crate::error::Error;
use crate::hooks;
use crate::init::{self, InitPlan};
use crate::namespaces::Plan;
use crate::process::Argv;
use crate::rootfs::Rootfs;
use crate::spec;
use crate::state::{self, Record, Status, Store};
use crate::sync::{self, Msg};

/// How the init goes on once it is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `create`: wait on the exec fifo until `start`.
    Create,
    /// `run`: exec the program at once.
    Run,
}

/// Options of `create` and `run`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    /// `run` in the foreground: with a terminal and no console socket, the runtime itself receives
    /// the pty master (in [`Launched::console`]) to relay it, as runc does.
    pub foreground: bool,
}

/// A container whose init was forked by this process.
#[derive(Debug)]
pub struct Launched {
    pub record: Record,
    pub spec: Spec,
    pub pid: Pid,
    /// With [`CreateOptions::foreground`] and a terminal: where the pty master arrives.
    pub console: Option<UnixStream>,
}

/// The default cgroup of a container whose config names none.
pub fn default_cgroups_path(id: &str) -> PathBuf {
    PathBuf::from(format!("/berth-runtime/{id}"))
}

/// The limits of the container's cgroup: the config's, with the device rules for the default and
/// configured devices appended, as runc does.
pub(crate) fn cgroup_resources(
    linux: &oci_spec::runtime::Linux,
) -> oci_spec::runtime::LinuxResources {
    let mut resources = linux.resources().clone().unwrap_or_default();
    let mut device_rules = resources.devices().clone().unwrap_or_default();
    device_rules.extend(crate::rootfs::devices::cgroup_rules(
        linux.devices().as_deref().unwrap_or_default(),
    ));
    resources.set_devices(Some(device_rules));
    resources
}

/// Undoes a half-made container when dropped, unless disarmed.
struct Rollback<'a> {
    store: &'a Store,
    id: String,
    cgroup: Option<Manager>,
    child: Option<Pid>,
    /// Once the hooks have begun: the poststop hooks and the state to run them with.
    poststop: Option<(Vec<oci_spec::runtime::Hook>, crate::state::OciState)>,
    /// Without a mount namespace: the rootfs, below which the init's mounts are the host's.
    host_mounts_below: Option<PathBuf>,
    armed: bool,
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.child {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.destroy();
        }
        if let Some(rootfs) = &self.host_mounts_below {
            let _ = crate::rootfs::unmount_below(rootfs);
        }
        let _ = self.store.remove(&self.id);
        // runtime.md "Lifecycle": a failed create goes on at step 12 (destroy), then 13 (poststop).
        if let Some((hooks, state)) = &self.poststop {
            if let Err(e) = hooks::run_all("poststop", hooks, state, hooks::DefaultEnv::Runtime) {
                eprintln!("warning: {e}");
            }
        }
    }
}

/// Creates container `id` from `opts.bundle`; with [`Mode::Run`] its program is running on return.
pub fn launch(
    store: &Store,
    id: &str,
    opts: &CreateOptions,
    mode: Mode,
) -> Result<Launched, Error> {
    let bundle = std::fs::canonicalize(&opts.bundle).map_err(|source| Error::Io {
        what: format!("bundle {}", opts.bundle.display()),
        source,
    })?;
    let spec = spec::load(&bundle)?;
    spec::validate(&spec)?;
    let rootfs_path = spec::rootfs(&bundle, &spec)?;
    let process = spec.process().as_ref().ok_or(Error::NoProcess)?;
    let linux = spec.linux().as_ref().ok_or(Error::NoLinux)?;
    let terminal = process.terminal().unwrap_or(false);
    let relay_tty = terminal && opts.console_socket.is_none() && opts.foreground;
    if terminal && opts.console_socket.is_none() && !relay_tty {
        return Err(Error::Usage(
            "cannot allocate tty if runc will detach without setting console socket".into(),
        ));
    }
    if !terminal && opts.console_socket.is_some() {
        return Err(Error::Usage(
            "cannot use console socket if runc will not detach or allocate tty".into(),
        ));
    }

    let dir = store.claim(id)?;
    let mut rollback = Rollback {
        store,
        id: id.to_string(),
        cgroup: None,
        child: None,
        poststop: None,
        host_mounts_below: None,
        armed: true,
    };
    std::fs::write(
        store.config_path(id),
        serde_json::to_vec(&spec).map_err(Error::Json)?,
    )
    .map_err(|source| Error::Io {
        what: format!("saving config in {}", dir.display()),
        source,
    })?;

    let mut ns = Plan::from_spec(linux.namespaces().as_deref().unwrap_or_default())?;
    let new_cgroupns = ns.has_new(LinuxNamespaceType::Cgroup);
    let clone_flags = ns.new & !CloneFlags::CLONE_NEWCGROUP;
    if let Some(pid_ns) = ns.take_pid_join() {
        pid_ns.enter()?;
    }
    let before_userns = ns.take_before_userns();

    let cgroups_path = linux
        .cgroups_path()
        .clone()
        .unwrap_or_else(|| default_cgroups_path(id));
    let cgroup = Manager::new(&cgroups_path)?;
    cgroup.create()?;
    rollback.cgroup = Some(cgroup.clone());
    cgroup.apply(&cgroup_resources(linux))?;

    let fifo = if mode == Mode::Create {
        Some(make_exec_fifo(&store.fifo_path(id), linux)?)
    } else {
        None
    };
    let (console, relay) = if relay_tty {
        let (ours, theirs) = UnixStream::pair().map_err(|source| Error::Io {
            what: "creating the console socket pair".into(),
            source,
        })?;
        (Some(theirs), Some(ours))
    } else {
        let console = opts
            .console_socket
            .as_deref()
            .map(crate::console::connect)
            .transpose()?;
        (console, None)
    };
    if let Some(seccomp) = linux.seccomp() {
        crate::notify::check(seccomp)?;
    }
    let seccomp = compile_seccomp(store, linux)?;
    let caps = process
        .capabilities()
        .as_ref()
        .map(CapabilitySets::from_spec)
        .transpose()?;
    let argv = Argv::new(
        process.args().as_deref().unwrap_or_default(),
        process.env().as_deref().unwrap_or_default(),
    )?;

    let created = state::rfc3339(std::time::SystemTime::now());
    let mut record = Record {
        id: id.to_string(),
        pid: 0,
        pid_start_time: 0,
        bundle: bundle.clone(),
        rootfs: rootfs_path.clone(),
        created,
        cgroups_path: cgroups_path.clone(),
        cgroup_dirs: cgroup.dirs(),
        owner: String::new(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        creating: true,
        mount_template: false,
    };
    let mut oci_state = record.oci_state(Status::Creating);

    let mut idmaps = crate::idmap::prepare(
        spec.mounts().as_deref().unwrap_or_default(),
        (
            linux.uid_mappings().as_deref().unwrap_or_default(),
            linux.gid_mappings().as_deref().unwrap_or_default(),
        ),
        &bundle,
    )?;
    let (parent_end, child_end) = sync::pair()?;
    let userns = ns.has_new(LinuxNamespaceType::User)
        || ns.join.iter().any(|j| j.typ == LinuxNamespaceType::User);
    let template = crate::mount_template::for_container(
        &spec,
        &rootfs_path,
        mount_ns_of(&ns) == crate::rootfs::MountNs::New,
        userns,
        opts.no_pivot,
    )
    .map_err(|e| Error::Init(e.to_string()))?;
    let mut clone_flags = clone_flags;
    record.mount_template = template.is_some();
    if template.is_some() {
        // The init copies the template's namespace, not ours.
        clone_flags.remove(CloneFlags::CLONE_NEWNS);
        bind_sources(&spec, &bundle, &mut idmaps)?;
    }
    let plan = InitPlan {
        spec: &spec,
        rootfs: Rootfs {
            path: rootfs_path,
            bundle: bundle.clone(),
            in_userns: userns,
            no_pivot: opts.no_pivot,
            mount_ns: mount_ns_of(&ns),
            idmaps: std::sync::Arc::new(idmaps),
            template: template.map(std::sync::Arc::new),
        },
        join: &ns.join,
        new_cgroupns,
        new_time: ns.new_time,
        new_uts: ns.has_new(LinuxNamespaceType::Uts),
        channel: &child_end,
        fifo,
        console: console.as_ref(),
        seccomp: seccomp.as_ref(),
        caps: caps.as_ref(),
        argv: &argv,
        preserve_fds: opts.preserve_fds,
        state: &oci_state,
        cgroup: (!userns).then_some(&cgroup),
        born_in_v2: std::cell::Cell::new(false),
    };
    if plan.rootfs.mount_ns == crate::rootfs::MountNs::Inherited {
        rollback.host_mounts_below = Some(plan.rootfs.path.clone());
    }
    let cgroup_dir = cgroup2_dir(&cgroup)?;
    // The child is born in the namespaces its new user namespace would not let it join.
    let entered = crate::namespaces::enter_for_child(&before_userns)?;
    let pid = fork_child(clone_flags, cgroup_dir.as_ref(), &plan.born_in_v2, || {
        init::run(&plan)
    });
    drop(entered);
    let pid = pid?;
    rollback.child = Some(pid);
    drop(child_end);
    drop(console);

    if ns.has_new(LinuxNamespaceType::User) {
        write_id_maps(pid, linux.uid_mappings(), linux.gid_mappings())?;
    }
    if let Some(text) = parent_end.send_to_child(&Msg::Go)? {
        return Err(Error::Init(text));
    }
    if !userns {
        // The child moves itself (no global lock, no RCU grace period) and says so.
        match parent_end.recv()? {
            Msg::Joined => {}
            Msg::Error(text) => return Err(Error::Init(text)),
            other => return Err(Error::Init(format!("unexpected message {other:?}"))),
        }
    } else {
        // In a new user namespace the child's root cannot write the host's cgroup files.
        cgroup.add_task(pid.as_raw())?;
    }
    for (name, dev) in linux.net_devices().iter().flatten() {
        crate::netdev::move_into(pid, name, dev.name().as_deref())?;
    }
    if let Some(score) = process.oom_score_adj() {
        let path = format!("/proc/{pid}/oom_score_adj");
        std::fs::write(&path, score.to_string()).map_err(|source| Error::Io {
            what: format!("setting oom_score_adj {score}"),
            source,
        })?;
    }
    record.pid = pid.as_raw();
    record.pid_start_time = state::proc_stat(pid.as_raw())
        .map(|s| s.start_time)
        .unwrap_or_default();
    store.save(&record)?;
    oci_state.pid = record.pid;
    let hooks_cfg = spec.hooks().as_ref();
    rollback.poststop = Some((
        hooks_cfg
            .and_then(|h| h.poststop().clone())
            .unwrap_or_default(),
        record.oci_state(Status::Stopped),
    ));
    hooks::run_all(
        "prestart",
        hooks_cfg
            .and_then(|h| h.prestart().as_deref())
            .unwrap_or_default(),
        &oci_state,
        hooks::DefaultEnv::Runtime,
    )?;
    hooks::run_all(
        "createRuntime",
        hooks_cfg
            .and_then(|h| h.create_runtime().as_deref())
            .unwrap_or_default(),
        &oci_state,
        hooks::DefaultEnv::Runtime,
    )?;

    if let Some(text) = parent_end.send_to_child(&Msg::Placed)? {
        return Err(Error::Init(text));
    }
    loop {
        match parent_end.recv_with_fd()? {
            (Msg::Ready, _) => break,
            (Msg::Listener, Some(listener)) => {
                let seccomp = linux.seccomp().as_ref().ok_or(Error::NoLinux)?;
                crate::notify::forward(seccomp, &oci_state, pid.as_raw(), listener)?;
            }
            (Msg::Error(text), _) => return Err(Error::Init(text)),
            _ => {
                return Err(Error::Init(
                    "container init exited before it was ready".into(),
                ))
            }
        }
    }
    if mode == Mode::Run {
        // The child's end of the channel is close-on-exec: end-of-file means the exec succeeded.
        match parent_end.recv()? {
            Msg::Closed => {}
            Msg::Error(text) => return Err(Error::Init(text)),
            other => return Err(Error::Init(format!("unexpected message {other:?}"))),
        }
    }
    record.creating = false;
    store.save(&record)?;
    if let Some(pid_file) = &opts.pid_file {
        write_pid_file(pid_file, pid.as_raw())?;
    }
    rollback.armed = false;
    Ok(Launched {
        record,
        spec,
        pid,
        console: relay,
    })
}

/// Makes the exec fifo that `start` opens, as runc does: mode 0622, owned by the container's
/// root (the host ids its uid and gid 0 map to), so that the init can open it for writing
/// whoever it runs as by then (a user namespace's root, or a non-root user without
/// CAP_DAC_OVERRIDE). Returns an `O_PATH` descriptor of it, which the init inherits and
/// reopens through /proc/self/fd: the init never resolves the state directory's path.
/// The compiled filter of `linux.seccomp`, if any, through the cache under the state root (the
/// same configuration is built with libseccomp once, not at every create and exec). In the
/// parent, before the fork.
pub(crate) fn compile_seccomp(
    store: &Store,
    linux: &oci_spec::runtime::Linux,
) -> Result<Option<berth_seccomp::Program>, Error> {
    let Some(seccomp) = linux.seccomp() else {
        return Ok(None);
    };
    // A cache that cannot be used (read-only root, another owner...) only costs the compile.
    let (program, _outcome) =
        berth_seccomp::Cache::new(store.seccomp_cache_dir()).compile(seccomp)?;
    Ok(Some(program))
}

fn make_exec_fifo(path: &Path, linux: &oci_spec::runtime::Linux) -> Result<OwnedFd, Error> {
    let sys = |what: String| move |source| Error::Sys { what, source };
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .map_err(sys(format!("creating {}", path.display())))?;
    // mkfifo's mode went through the umask.
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        path,
        nix::sys::stat::Mode::from_bits_truncate(0o622),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(sys(format!("chmod {}", path.display())))?;
    let uid = host_id_of_root(linux.uid_mappings());
    let gid = host_id_of_root(linux.gid_mappings());
    nix::unistd::chown(
        path,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .map_err(sys(format!("chown {}", path.display())))?;
    rustix::fs::open(
        path,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::Io {
        what: format!("opening {}", path.display()),
        source: e.into(),
    })
}

/// The host id that id 0 of the container maps to (0 without a mapping).
fn host_id_of_root(maps: &Option<Vec<LinuxIdMapping>>) -> u32 {
    maps.iter()
        .flatten()
        .find(|m| m.container_id() == 0 && m.size() > 0)
        .map(|m| m.host_id())
        .unwrap_or(0)
}

/// For a container made in the mount template: a detached copy of each bind mount's source
/// (recursive for `rbind`) that has none yet, in `trees` (indexed as the config's mounts).
fn bind_sources(
    spec: &oci_spec::runtime::Spec,
    bundle: &std::path::Path,
    trees: &mut [Option<OwnedFd>],
) -> Result<(), Error> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    for (m, tree) in mounts.iter().zip(trees.iter_mut()) {
        let opts = crate::rootfs::options::parse(m.options().as_deref().unwrap_or_default());
        if tree.is_some() || !(m.typ().as_deref() == Some("bind") || opts.is_bind()) {
            continue;
        }
        let Some(source) = m.source() else { continue };
        let source = bundle.join(source);
        let copy = crate::mount_template::detached_copy(
            &source,
            opts.flags.contains(nix::mount::MsFlags::MS_REC),
        )
        .map_err(|source_err| Error::Io {
            what: format!("bind mount source {}", source.display()),
            source: source_err,
        })?;
        *tree = Some(copy);
    }
    Ok(())
}

/// Which mount namespace the plan gives the container.
fn mount_ns_of(ns: &Plan) -> crate::rootfs::MountNs {
    use crate::rootfs::MountNs;
    if ns.has_new(LinuxNamespaceType::Mount) {
        MountNs::New
    } else if ns.join.iter().any(|j| j.typ == LinuxNamespaceType::Mount) {
        MountNs::Joined
    } else {
        MountNs::Inherited
    }
}

/// Opens the cgroup2 directory of `cgroup`, if it has one, for clone3(CLONE_INTO_CGROUP).
pub(crate) fn cgroup2_dir(cgroup: &Manager) -> Result<Option<OwnedFd>, Error> {
    let Some(dir) = cgroup.controller_dir("") else {
        return Ok(None);
    };
    rustix::fs::open(
        &dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map(Some)
    .map_err(|e| Error::Io {
        what: format!("opening cgroup {}", dir.display()),
        source: e.into(),
    })
}

/// Forks a child with `flags` that runs `body` (which must end in execve or `_exit`). With
/// `cgroup_dir` (a cgroup2 directory) the child is created in it by clone3(CLONE_INTO_CGROUP),
/// and `born_in_v2` says whether that worked (kernels before 5.7 fall back to a plain clone).
pub(crate) fn fork_child<'a>(
    flags: CloneFlags,
    cgroup_dir: Option<&OwnedFd>,
    born_in_v2: &std::cell::Cell<bool>,
    mut body: impl FnMut() -> isize + 'a,
) -> Result<Pid, Error> {
    if let Some(dir) = cgroup_dir {
        born_in_v2.set(true);
        // SAFETY: this process is single-threaded; the child runs `body`, which ends in execve
        // or _exit, and `_exit` below covers its return.
        match unsafe { crate::sys::fork_into_cgroup(flags.bits() as u64, dir.as_fd()) } {
            Ok(0) => {
                let code = body();
                // SAFETY: the child must not return into the parent's frames.
                unsafe { libc::_exit(code as i32) }
            }
            Ok(pid) => return Ok(Pid::from_raw(pid)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::E2BIG)) => {
                born_in_v2.set(false);
            }
            Err(source) => {
                return Err(Error::Io {
                    what: "cloning a process into its cgroup".into(),
                    source,
                })
            }
        }
    }
    // The child runs on this stack until it execs: hooks and mount setup need room. The pages
    // are only touched as used.
    let mut stack = vec![0u8; 4 << 20];
    // SAFETY: the child gets a copy of this single-threaded process's memory (no CLONE_VM), runs
    // `body` on `stack`, and ends in execve or _exit without returning into our frames.
    unsafe { nix::sched::clone(Box::new(body), &mut stack, flags, Some(libc::SIGCHLD)) }.map_err(
        |source| Error::Sys {
            what: "cloning a process".into(),
            source,
        },
    )
}

fn write_id_maps(
    pid: Pid,
    uid: &Option<Vec<LinuxIdMapping>>,
    gid: &Option<Vec<LinuxIdMapping>>,
) -> Result<(), Error> {
    let format = |maps: &Option<Vec<LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    for (file, maps) in [("uid_map", uid), ("gid_map", gid)] {
        let text = format(maps);
        if text.is_empty() {
            continue;
        }
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, text).map_err(|source| Error::Io {
            what: format!("writing {path}"),
            source,
        })?;
    }
    Ok(())
}

/// Writes the pid file atomically, as runc does.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<(), Error> {
    let tmp = path.with_extension("tmp-berth");
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| Error::Io {
            what: format!("writing pid file {}", path.display()),
            source,
        })
}
