//! Operations on containers that exist: state, start, kill, pause, resume, delete, list, stats.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use berth_cgroups::Manager;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::error::Error;
use crate::hooks;
use crate::launch::{self, CreateOptions, Launched, Mode};
use crate::state::{OciState, Record, StateError, Status, Store};

/// How long `delete --force` waits for a killed container's processes to go.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// The runtime's view of the containers under one `--root`.
#[derive(Debug, Clone)]
pub struct Runtime {
    store: Store,
}

impl Runtime {
    pub fn new(root: impl Into<std::path::PathBuf>) -> Self {
        Self {
            store: Store::new(root),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn load(&self, id: &str) -> Result<Record, Error> {
        Ok(self.store.load(id)?)
    }

    /// The stored copy of the configuration the container was created with.
    pub fn config(&self, id: &str) -> Result<Spec, Error> {
        let path = self.store.config_path(id);
        let data = std::fs::read(&path).map_err(|source| Error::Io {
            what: format!("reading {}", path.display()),
            source,
        })?;
        serde_json::from_slice(&data).map_err(Error::Json)
    }

    pub fn cgroup(&self, record: &Record) -> Result<Manager, Error> {
        if record.cgroups_path.is_relative() && !record.cgroup_dirs.is_empty() {
            return Ok(Manager::with_dirs(
                &record.cgroups_path,
                &record.cgroup_dirs,
            )?);
        }
        Ok(Manager::new(&record.cgroups_path)?)
    }

    /// The current status, derived from the init process, the exec fifo and the freezer.
    pub fn status(&self, record: &Record) -> Status {
        let alive = record.init_alive();
        if record.creating {
            return if alive {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if !alive {
            return Status::Stopped;
        }
        if self.store.fifo_path(&record.id).exists() {
            return Status::Created;
        }
        let frozen = self
            .cgroup(record)
            .and_then(|cg| Ok(cg.is_frozen()?))
            .unwrap_or(false);
        if frozen {
            Status::Paused
        } else {
            Status::Running
        }
    }

    pub fn state(&self, id: &str) -> Result<OciState, Error> {
        let record = self.load(id)?;
        Ok(record.oci_state(self.status(&record)))
    }

    pub fn list(&self) -> Result<Vec<OciState>, Error> {
        let mut out = Vec::new();
        for id in self.store.list()? {
            match self.state(&id) {
                Ok(s) => out.push(s),
                // A container deleted while we listed is simply gone.
                Err(Error::State(StateError::NotFound(_))) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// `create`: the container is set up and waits for `start`.
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<Launched, Error> {
        launch::launch(&self.store, id, opts, Mode::Create)
    }

    /// `run`: the container's program runs when this returns.
    pub fn create_and_start(&self, id: &str, opts: &CreateOptions) -> Result<Launched, Error> {
        let launched = launch::launch(&self.store, id, opts, Mode::Run)?;
        self.poststart(&launched.record, &launched.spec);
        Ok(launched)
    }

    /// `start`: lets a created container's init exec the program.
    pub fn start(&self, id: &str) -> Result<(), Error> {
        let record = self.load(id)?;
        let status = self.status(&record);
        if status != Status::Created {
            return Err(wrong(id, status, "start", "created"));
        }
        let fifo_path = self.store.fifo_path(id);
        let fifo = rustix::fs::open(
            &fifo_path,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| Error::Io {
            what: format!("opening {}", fifo_path.display()),
            source: e.into(),
        })?;
        // Read to the end: "0" then end-of-file once the program is executed (see init.rs).
        let mut got = Vec::new();
        loop {
            let mut fds = [rustix::event::PollFd::new(
                &fifo,
                rustix::event::PollFlags::IN,
            )];
            let timeout = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 100_000_000,
            };
            let ready = rustix::event::poll(&mut fds, Some(&timeout)).unwrap_or(0);
            if ready > 0 {
                let mut buf = [0u8; 4096];
                match rustix::io::read(fifo.as_fd(), &mut buf) {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
                    Err(_) => break,
                }
                continue;
            }
            if !record.init_alive() {
                break;
            }
        }
        let _ = std::fs::remove_file(&fifo_path);
        match got.split_first() {
            Some((b'0', [])) => {}
            Some((_, text)) if !text.is_empty() => {
                return Err(Error::Init(
                    String::from_utf8_lossy(text)
                        .trim_start_matches('1')
                        .to_string(),
                ))
            }
            _ => return Err(Error::Init("container init exited before start".into())),
        }
        let spec = self.config(id)?;
        self.poststart(&record, &spec);
        Ok(())
    }

    /// Runs the poststart hooks; their failure is only a warning, as the spec says.
    fn poststart(&self, record: &Record, spec: &Spec) {
        let hooks = spec.hooks().as_ref().and_then(|h| h.poststart().as_deref());
        if let Err(e) = hooks::run_all(
            "poststart",
            hooks.unwrap_or_default(),
            &record.oci_state(Status::Running),
            hooks::DefaultEnv::Runtime,
        ) {
            eprintln!("warning: {e}");
        }
    }

    /// `kill`: sends `signal` to the init, or with `all` to every process of the container.
    pub fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<(), Error> {
        let record = self.load(id)?;
        let status = self.status(&record);
        if !matches!(status, Status::Created | Status::Running | Status::Paused) {
            return Err(wrong(id, status, "kill", "created or running"));
        }
        self.signal(&record, signal, all)?;
        if status == Status::Paused && signal == Signal::SIGKILL {
            // A frozen process cannot act on SIGKILL until it is thawed.
            self.cgroup(&record)?.thaw()?;
        }
        Ok(())
    }

    fn signal(&self, record: &Record, signal: Signal, all: bool) -> Result<(), Error> {
        let pids = if all {
            self.cgroup(record)?.pids()?
        } else {
            vec![record.pid]
        };
        for pid in pids {
            match kill(Pid::from_raw(pid), signal) {
                Ok(()) | Err(nix::Error::ESRCH) => {}
                Err(source) => {
                    return Err(Error::Sys {
                        what: format!("sending {signal} to {pid}"),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// `update`: writes new limits to the cgroup of a container that is not stopped.
    pub fn update(
        &self,
        id: &str,
        resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<(), Error> {
        let record = self.load(id)?;
        let status = self.status(&record);
        if status == Status::Stopped {
            return Err(wrong(id, status, "update", "created, running or paused"));
        }
        Ok(self.cgroup(&record)?.apply(resources)?)
    }

    pub fn pause(&self, id: &str) -> Result<(), Error> {
        let record = self.load(id)?;
        let status = self.status(&record);
        if status != Status::Running {
            return Err(wrong(id, status, "pause", "running"));
        }
        Ok(self.cgroup(&record)?.freeze()?)
    }

    pub fn resume(&self, id: &str) -> Result<(), Error> {
        let record = self.load(id)?;
        let status = self.status(&record);
        if status != Status::Paused {
            return Err(wrong(id, status, "resume", "paused"));
        }
        Ok(self.cgroup(&record)?.thaw()?)
    }

    /// `delete`: removes a stopped container, or a created one (killed first: the program never
    /// ran, as runc does); with `force`, kills a running or paused one first.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), Error> {
        let record = match self.load(id) {
            Err(Error::State(StateError::NotFound(_))) if force => return Ok(()),
            other => other?,
        };
        let status = self.status(&record);
        if status != Status::Stopped {
            if !force && status != Status::Created {
                return Err(Error::NotStopped {
                    id: id.to_string(),
                    status,
                });
            }
            self.signal(&record, Signal::SIGKILL, true)?;
            let cgroup = self.cgroup(&record)?;
            let _ = cgroup.thaw();
            let deadline = Instant::now() + KILL_WAIT;
            while record.init_alive() || !cgroup.pids().unwrap_or_default().is_empty() {
                if Instant::now() >= deadline {
                    return Err(Error::Timeout {
                        what: format!("the processes of container {id} to exit"),
                        secs: KILL_WAIT.as_secs(),
                    });
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.destroy(&record)
    }

    /// Removes what a stopped container leaves (its cgroup and record), then runs the poststop
    /// hooks: the spec runs them after the container is deleted.
    pub fn destroy(&self, record: &Record) -> Result<(), Error> {
        let spec = self.config(&record.id).ok();
        let cgroup = self.cgroup(record)?;
        if spec.as_ref().is_some_and(|s| !has_own_pid_namespace(s)) {
            // As runc: in the host's or another container's PID namespace, the container's
            // processes do not die with its init (its orphans go to that namespace's init); they
            // go with the container.
            kill_all(&cgroup);
        }
        cgroup.destroy()?;
        if spec.as_ref().is_some_and(|s| !has_mount_namespace(s)) {
            // The mounts of a container without a mount namespace are the host's.
            crate::rootfs::unmount_below(&record.rootfs)?;
        }
        self.store.remove(&record.id)?;
        if let Some(spec) = spec {
            let hooks = spec.hooks().as_ref().and_then(|h| h.poststop().as_deref());
            if let Err(e) = hooks::run_all(
                "poststop",
                hooks.unwrap_or_default(),
                &record.oci_state(Status::Stopped),
                hooks::DefaultEnv::Runtime,
            ) {
                eprintln!("warning: {e}");
            }
        }
        Ok(())
    }

    /// Pids of every process in the container, in the runtime's pid namespace.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>, Error> {
        let record = self.load(id)?;
        Ok(self.cgroup(&record)?.pids()?)
    }

    pub fn stats(&self, id: &str) -> Result<berth_cgroups::Stats, Error> {
        let record = self.load(id)?;
        Ok(self.cgroup(&record)?.stats()?)
    }
}

/// Whether `spec` makes a PID namespace for the container (one given by path is another's).
fn has_own_pid_namespace(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter().any(|n| {
                n.typ() == oci_spec::runtime::LinuxNamespaceType::Pid && n.path().is_none()
            })
        })
}

/// SIGKILLs every process of `cgroup` (frozen meanwhile, so none forks past it) and waits, at
/// most [`KILL_WAIT`], for the cgroup to be empty.
fn kill_all(cgroup: &Manager) {
    let frozen = cgroup.freeze().is_ok();
    for pid in cgroup.pids().unwrap_or_default() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    if frozen {
        let _ = cgroup.thaw();
    }
    let deadline = Instant::now() + KILL_WAIT;
    while !cgroup.pids().unwrap_or_default().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether the config lists a mount namespace (new or joined).
pub(crate) fn has_mount_namespace(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Mount)
        })
}

fn wrong(id: &str, status: Status, action: &'static str, needs: &'static str) -> Error {
    Error::WrongStatus {
        id: id.to_string(),
        status,
        action,
        needs,
    }
}
