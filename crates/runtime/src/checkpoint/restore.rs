//! `restore`: a new container record, its cgroup, and `criu restore` of a checkpoint into it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_cgroups::Manager;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use super::{
    add_shared_flags, criu, externals, io_err, refuse_terminal, CheckpointError, RestoreOptions,
    Restored, WorkDirs, DESCRIPTORS,
};
use crate::container::Runtime;
use crate::error::Error;
use crate::state::{self, Record, StateError, Store};

/// criu's log in the work directory.
const RESTORE_LOG: &str = "restore.log";

/// Where criu writes the restored init's pid, in the container's state directory.
const PID_FILE: &str = "criu-restore.pid";

/// How long a failed restore waits for what criu left in the cgroup to die.
const CLEANUP_WAIT: Duration = Duration::from_secs(10);

/// `restore`: creates container `id` from `opts.bundle` and the checkpoint in `opts.image_path`.
/// On return the record is saved and the restored init runs, a child of this process.
pub fn restore(
    runtime: &Runtime,
    id: &str,
    opts: &RestoreOptions,
) -> Result<Restored, CheckpointError> {
    let store = runtime.store();
    refuse_taken(store, id)?;
    let criu_path = criu::locate()?;
    let source = Source::load(&opts.bundle)?;
    let dirs = WorkDirs::prepare(&opts.image_path, opts.work_path.as_deref())?;

    store.claim(id)?;
    let mut rollback = Rollback {
        store,
        id: id.to_string(),
        cgroup: None,
        armed: true,
    };
    save_config(store, id, &source.spec)?;
    let cgroup = make_cgroup(id, &source.spec, &mut rollback)?;
    let pid_file = store.dir(id).join(PID_FILE);
    let args = restore_args(&source, &cgroup, &dirs, &pid_file, opts)?;
    run_restore(&criu_path, &source, &cgroup, args, &dirs, opts)?;
    let pid = read_pid(&pid_file)?;
    let record = source.into_record(id, pid, &cgroup);
    store.save(&record)?;
    if let Some(path) = &opts.pid_file {
        crate::launch::write_pid_file(path, pid)?;
    }
    rollback.armed = false;
    Ok(Restored {
        record,
        pid: Pid::from_raw(pid),
    })
}

/// A restore needs its id free.
fn refuse_taken(store: &Store, id: &str) -> Result<(), CheckpointError> {
    state::validate_id(id)?;
    if store.load(id).is_ok() {
        return Err(StateError::Exists(id.to_string()).into());
    }
    Ok(())
}

/// The copy of the config that `exec`, `delete` and the others read.
fn save_config(store: &Store, id: &str, spec: &Spec) -> Result<(), CheckpointError> {
    let path = store.config_path(id);
    let data = serde_json::to_vec(spec).map_err(Error::Json)?;
    std::fs::write(&path, data).map_err(io_err(format!("writing {}", path.display())))
}

/// Creates the container's cgroup with its limits, as `create` does; the rollback removes it.
fn make_cgroup(
    id: &str,
    spec: &Spec,
    rollback: &mut Rollback<'_>,
) -> Result<Manager, CheckpointError> {
    let linux = spec.linux().as_ref().ok_or(Error::NoLinux)?;
    let path = linux
        .cgroups_path()
        .clone()
        .unwrap_or_else(|| crate::launch::default_cgroups_path(id));
    let cgroup = Manager::new(&path)?;
    refuse_busy(&cgroup)?;
    cgroup.create()?;
    rollback.cgroup = Some(cgroup.clone());
    cgroup.apply(&crate::launch::cgroup_resources(linux))?;
    Ok(cgroup)
}

/// A failed restore kills what is in its cgroup: it must not be one where processes already run.
fn refuse_busy(cgroup: &Manager) -> Result<(), CheckpointError> {
    let found = cgroup.pids().unwrap_or_default().len();
    if found > 0 {
        return Err(CheckpointError::Invalid(format!(
            "cgroup {} is not empty: {found} process(es) found (is cgroupsPath another \
             container's?)",
            cgroup.path().display()
        )));
    }
    Ok(())
}

/// What a container is restored with: a bundle's config and rootfs.
struct Source {
    bundle: PathBuf,
    spec: Spec,
    rootfs: PathBuf,
}

impl Source {
    fn load(bundle: &Path) -> Result<Source, CheckpointError> {
        let bundle = std::fs::canonicalize(bundle)
            .map_err(io_err(format!("bundle {}", bundle.display())))?;
        let spec = crate::spec::load(&bundle)?;
        crate::spec::validate(&spec)?;
        refuse_terminal(&spec)?;
        let rootfs = crate::spec::rootfs(&bundle, &spec)?;
        Ok(Source {
            bundle,
            spec,
            rootfs,
        })
    }

    /// The record of the restored container, created now (as runc dates a restore).
    fn into_record(self, id: &str, pid: i32, cgroup: &Manager) -> Record {
        Record {
            id: id.to_string(),
            pid,
            pid_start_time: state::proc_stat(pid)
                .map(|s| s.start_time)
                .unwrap_or_default(),
            created: state::rfc3339(std::time::SystemTime::now()),
            cgroups_path: cgroup.path().to_path_buf(),
            cgroup_dirs: cgroup.dirs(),
            owner: String::new(),
            annotations: self.spec.annotations().clone().unwrap_or_default(),
            creating: false,
            mount_template: false,
            bundle: self.bundle,
            rootfs: self.rootfs,
        }
    }
}

/// The arguments of `criu restore`, but for `--root` and the namespaces (see [`run_restore`]).
fn restore_args(
    source: &Source,
    cgroup: &Manager,
    dirs: &WorkDirs,
    pid_file: &Path,
    opts: &RestoreOptions,
) -> Result<criu::Args, CheckpointError> {
    let mut args = criu::Args::new("restore");
    dirs.add_to(&mut args);
    args.opt("--log-file", RESTORE_LOG);
    args.flag("-v4");
    args.flag("--restore-detached");
    // The restored init becomes our child, as runc's is, so that a foreground restore waits for it.
    args.flag("--restore-sibling");
    args.opt("--pidfile", pid_file);
    args.flag("--evasive-devices");
    add_shared_flags(&mut args, &opts.criu);
    args.opt("--empty-ns", "net");
    let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(io_err("reading /proc/self/cgroup"))?;
    for root in cgroup_roots(cgroup.path(), &proc_cgroup) {
        args.opt("--cgroup-root", root);
    }
    if let Some(profile) = &opts.lsm_profile {
        args.opt("--lsm-profile", profile);
    }
    if let Some(context) = &opts.lsm_mount_context {
        args.opt("--lsm-mount-context", context);
    }
    externals::add_restore_mounts(
        &mut args,
        &source.spec,
        &source.rootfs,
        &source.bundle,
        cgroup,
    )?;
    for (fd, key) in inherited_stdio(&dirs.images) {
        args.opt("--inherit-fd", format!("fd[{fd}]:{key}"));
    }
    Ok(args)
}

/// Runs `criu restore` from inside the container's cgroup, with the rootfs bound where criu wants
/// it and the external namespaces open.
fn run_restore(
    criu_path: &Path,
    source: &Source,
    cgroup: &Manager,
    mut args: criu::Args,
    dirs: &WorkDirs,
    opts: &RestoreOptions,
) -> Result<(), CheckpointError> {
    externals::make_mount_points(&source.spec, &source.rootfs, &source.bundle)?;
    let root = externals::RootBind::mount(&source.rootfs)?;
    args.opt("--root", root.path());
    // Held open (and inherited by criu) until criu has run.
    let _namespaces = externals::add_restore_namespaces(&mut args, &source.spec)?;
    let run = criu::Run {
        args: &args,
        log: dirs.log(RESTORE_LOG),
        stdio: criu::Stdio::Inherited,
        join_cgroup: criu::join_files(cgroup)?,
        time_limit: opts.time_limit,
    };
    criu::run(criu_path, &run)
}

/// criu's `--cgroup-root` values that put the restored tasks in the container's cgroup: one per
/// v1 controller (`memory:/berth/abc`), and a default one for cgroup2. `proc_cgroup` is
/// `/proc/self/cgroup`, whose paths a relative cgroups path is taken from (as `Manager` does).
fn cgroup_roots(cgroups_path: &Path, proc_cgroup: &str) -> Vec<String> {
    let mut roots = Vec::new();
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(own)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = if cgroups_path.is_absolute() {
            cgroups_path.to_path_buf()
        } else {
            Path::new(own).join(cgroups_path)
        };
        let path = path.display();
        if controllers.is_empty() {
            roots.push(path.to_string());
        } else {
            roots.extend(controllers.split(',').map(|c| format!("{c}:{path}")));
        }
    }
    roots
}

/// The pipes among the checkpointed init's stdio: criu reopens each as our descriptor of the same
/// number. A missing or unreadable record means none (criu then says what is wrong with the
/// images).
fn inherited_stdio(images: &Path) -> Vec<(usize, String)> {
    let links: Vec<String> = std::fs::read(images.join(DESCRIPTORS))
        .ok()
        .and_then(|data| serde_json::from_slice(&data).ok())
        .unwrap_or_default();
    links
        .into_iter()
        .enumerate()
        .filter(|(_, link)| link.contains("pipe:"))
        .collect()
}

/// The pid criu wrote (`--pidfile`); the file is removed.
fn read_pid(path: &Path) -> Result<i32, CheckpointError> {
    let text =
        std::fs::read_to_string(path).map_err(io_err(format!("reading {}", path.display())))?;
    let _ = std::fs::remove_file(path);
    text.trim()
        .parse()
        .map_err(|_| CheckpointError::Invalid(format!("criu wrote no pid to {}", path.display())))
}

/// Undoes a half-restored container when dropped, unless disarmed: kills whatever criu left in
/// its cgroup, removes the cgroup and the record.
struct Rollback<'a> {
    store: &'a Store,
    id: String,
    cgroup: Option<Manager>,
    armed: bool,
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(cgroup) = &self.cgroup {
            kill_all(cgroup);
            let _ = cgroup.destroy();
        }
        let _ = self.store.remove(&self.id);
    }
}

/// Kills every process of `cgroup` and waits, bounded, until it is empty.
fn kill_all(cgroup: &Manager) {
    let deadline = Instant::now() + CLEANUP_WAIT;
    loop {
        let pids = cgroup.pids().unwrap_or_default();
        if pids.is_empty() || Instant::now() >= deadline {
            return;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = cgroup.thaw();
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_roots_per_controller() {
        let proc_cgroup = "9:name=systemd:/\n4:memory:/a\n2:cpu,cpuacct:/\n0::/b";
        assert_eq!(
            cgroup_roots(Path::new("/berth/x"), proc_cgroup),
            [
                "name=systemd:/berth/x",
                "memory:/berth/x",
                "cpu:/berth/x",
                "cpuacct:/berth/x",
                "/berth/x"
            ]
        );
        // A relative cgroups path is below this process's own cgroup in each hierarchy.
        assert_eq!(
            cgroup_roots(Path::new("x"), "4:memory:/a\n0::/b"),
            ["memory:/a/x", "/b/x"]
        );
    }

    #[test]
    fn stdio_pipes_are_inherited() {
        let dir = tempfile::tempdir().unwrap();
        assert!(inherited_stdio(dir.path()).is_empty());
        std::fs::write(
            dir.path().join(DESCRIPTORS),
            r#"["/dev/null","pipe:[1234]","pipe:[99]"]"#,
        )
        .unwrap();
        assert_eq!(
            inherited_stdio(dir.path()),
            [(1, "pipe:[1234]".to_string()), (2, "pipe:[99]".to_string())]
        );
    }
}
