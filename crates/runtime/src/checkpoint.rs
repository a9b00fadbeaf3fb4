//! Checkpoint and restore through CRIU's command line: `criu dump` (or `criu pre-dump`) of a
//! running container's process tree into an image directory, and `criu restore` of such a
//! directory into a new container record, as runc's `checkpoint` and `restore` do. runc talks to
//! `criu swrk` over its protobuf RPC; this module runs the `criu` command with the command-line
//! equivalents of the options runc sets.
//!
//! criu runs under a time limit and is killed after it. When it fails, the error holds criu's own
//! `Error (...)` lines from its log file, and the log file's path. A failed checkpoint leaves the
//! container running as it was; a failed restore removes everything it made (record, cgroup).
//!
//! Not supported: lazy pages and the page server (they need a second criu process serving pages),
//! containers with a terminal (criu hands the restored pty's master back only in RPC mode), and
//! the hooks (runc runs prestart and createRuntime from criu's RPC notifications).

mod criu;
mod externals;
mod restore;

pub use restore::restore;

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_cgroups::Manager;
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::container::Runtime;
use crate::error::Error;
use crate::state::{Record, StateError, Status};

/// How long criu may run before it is killed.
pub const CRIU_TIME_LIMIT: Duration = Duration::from_secs(300);

/// criu's log in the work directory (the image directory unless `work_path` is given).
const DUMP_LOG: &str = "dump.log";

/// Where a checkpoint records what the init's stdin, stdout and stderr were (runc's file and
/// format: a JSON array of the `/proc/PID/fd/N` link targets), so that restore can hand the
/// restoring process's own stdio to criu for the pipes among them.
const DESCRIPTORS: &str = "descriptors.json";

/// Errors of checkpoint and restore.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("Container cannot be checkpointed in {0} state")]
    NotCheckpointable(Status),
    #[error(
        "criu was not found in PATH: checkpoint and restore run criu(8); install the package \
         criu (apt-get install criu)"
    )]
    CriuMissing,
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
    #[error("criu {action} failed: {errors} (log file: {})", log.display())]
    Criu {
        action: &'static str,
        /// criu's `Error (...)` lines, or its stderr, joined with `; `.
        errors: String,
        log: PathBuf,
    },
    #[error("criu {action} did not finish within {secs} s and was killed (log file: {})", log.display())]
    CriuTimeout {
        action: &'static str,
        secs: u64,
        log: PathBuf,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys { what: String, source: nix::Error },
    #[error(transparent)]
    Runtime(Box<Error>),
}

impl From<Error> for CheckpointError {
    fn from(e: Error) -> Self {
        CheckpointError::Runtime(Box::new(e))
    }
}

impl From<StateError> for CheckpointError {
    fn from(e: StateError) -> Self {
        Error::State(e).into()
    }
}

impl From<crate::spec::SpecError> for CheckpointError {
    fn from(e: crate::spec::SpecError) -> Self {
        Error::Spec(e).into()
    }
}

impl From<berth_cgroups::Error> for CheckpointError {
    fn from(e: berth_cgroups::Error) -> Self {
        Error::Cgroup(e).into()
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CheckpointError {
    let what = what.into();
    move |source| CheckpointError::Io { what, source }
}

/// criu's `--manage-cgroups` modes that runc's `--manage-cgroups-mode` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    Soft,
    Full,
    Strict,
    Ignore,
}

impl CgroupMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupMode::Soft => "soft",
            CgroupMode::Full => "full",
            CgroupMode::Strict => "strict",
            CgroupMode::Ignore => "ignore",
        }
    }
}

impl std::str::FromStr for CgroupMode {
    type Err = CheckpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "soft" => Ok(CgroupMode::Soft),
            "full" => Ok(CgroupMode::Full),
            "strict" => Ok(CgroupMode::Strict),
            "ignore" => Ok(CgroupMode::Ignore),
            _ => Err(CheckpointError::Invalid(
                "Invalid manage-cgroups-mode value".into(),
            )),
        }
    }
}

/// The options `checkpoint` and `restore` share; each is criu's flag of the same name.
#[derive(Debug, Clone, Default)]
pub struct CriuFlags {
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub auto_dedup: bool,
    /// `--manage-cgroups=MODE`; `None` is criu's default (soft).
    pub manage_cgroups_mode: Option<CgroupMode>,
}

/// Options of [`checkpoint`].
#[derive(Debug, Clone)]
pub struct CheckpointOptions {
    /// Where criu writes the images (created if missing).
    pub image_path: PathBuf,
    /// Where criu writes its log and work files; the image directory if `None`.
    pub work_path: Option<PathBuf>,
    /// Images of a previous pre-dump, relative to `image_path`.
    pub parent_path: Option<PathBuf>,
    pub leave_running: bool,
    /// Dump the memory only (`criu pre-dump`), leaving the container running.
    pub pre_dump: bool,
    pub criu: CriuFlags,
    pub time_limit: Duration,
}

impl CheckpointOptions {
    pub fn new(image_path: impl Into<PathBuf>) -> Self {
        Self {
            image_path: image_path.into(),
            work_path: None,
            parent_path: None,
            leave_running: false,
            pre_dump: false,
            criu: CriuFlags::default(),
            time_limit: CRIU_TIME_LIMIT,
        }
    }
}

/// Options of [`restore`].
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The bundle whose config.json and rootfs the container is restored with.
    pub bundle: PathBuf,
    /// The images of a checkpoint.
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    /// criu's `--lsm-profile TYPE:NAME`.
    pub lsm_profile: Option<String>,
    /// criu's `--lsm-mount-context CONTEXT`.
    pub lsm_mount_context: Option<String>,
    pub criu: CriuFlags,
    pub time_limit: Duration,
}

impl RestoreOptions {
    pub fn new(bundle: impl Into<PathBuf>, image_path: impl Into<PathBuf>) -> Self {
        Self {
            bundle: bundle.into(),
            image_path: image_path.into(),
            work_path: None,
            pid_file: None,
            lsm_profile: None,
            lsm_mount_context: None,
            criu: CriuFlags::default(),
            time_limit: CRIU_TIME_LIMIT,
        }
    }
}

/// A restored container: its record is saved, its init runs as a child of this process.
#[derive(Debug)]
pub struct Restored {
    pub record: Record,
    pub pid: Pid,
}

/// `checkpoint`: dumps the running (or paused) container `id` with criu. Unless the container is
/// left running (`leave_running`, `pre_dump`), it is deleted once criu has dumped it, as runc does.
pub fn checkpoint(
    runtime: &Runtime,
    id: &str,
    opts: &CheckpointOptions,
) -> Result<(), CheckpointError> {
    let record = runtime.load(id)?;
    let status = runtime.status(&record);
    if !matches!(status, Status::Running | Status::Paused) {
        return Err(CheckpointError::NotCheckpointable(status));
    }
    let criu_path = criu::locate()?;
    let spec = runtime.config(id)?;
    refuse_terminal(&spec)?;
    let dirs = WorkDirs::prepare(&opts.image_path, opts.work_path.as_deref())?;
    check_parent(&dirs.images, opts.parent_path.as_deref())?;
    let cgroup = runtime.cgroup(&record)?;
    let args = dump_args(&record, &spec, &cgroup, opts, &dirs)?;
    if !opts.pre_dump {
        write_descriptors(record.pid, &dirs.images)?;
    }
    let run = criu::Run {
        args: &args,
        log: dirs.log(DUMP_LOG),
        stdio: criu::Stdio::Captured,
        join_cgroup: Vec::new(),
        time_limit: opts.time_limit,
    };
    if let Err(e) = criu::run(&criu_path, &run) {
        leave_as_found(&cgroup, status);
        return Err(e);
    }
    if !opts.leave_running && !opts.pre_dump {
        runtime.delete(id, true)?;
    }
    Ok(())
}

/// The arguments of `criu dump` (or `pre-dump`) for the container of `record`.
fn dump_args(
    record: &Record,
    spec: &Spec,
    cgroup: &Manager,
    opts: &CheckpointOptions,
    dirs: &WorkDirs,
) -> Result<criu::Args, CheckpointError> {
    let mut args = criu::Args::new(if opts.pre_dump { "pre-dump" } else { "dump" });
    args.opt("--tree", record.pid.to_string());
    dirs.add_to(&mut args);
    args.opt("--root", &record.rootfs);
    args.opt("--log-file", DUMP_LOG);
    args.flag("-v4");
    add_shared_flags(&mut args, &opts.criu);
    // As runc: the runtime does not manage network devices, so their state is not dumped.
    args.opt("--empty-ns", "net");
    if opts.leave_running && !opts.pre_dump {
        args.flag("--leave-running");
    }
    if let Some(freezer) = cgroup
        .controller_dir("freezer")
        .or_else(|| cgroup.controller_dir(""))
    {
        args.opt("--freeze-cgroup", freezer);
    }
    if let Some(parent) = &opts.parent_path {
        args.opt("--prev-images-dir", parent);
    }
    if opts.pre_dump || opts.parent_path.is_some() {
        args.flag("--track-mem");
    }
    externals::add_dump_namespaces(&mut args, spec)?;
    if !opts.pre_dump {
        externals::add_dump_mounts(&mut args, spec, record, cgroup)?;
    }
    Ok(args)
}

/// The flags of [`CriuFlags`], and `--manage-cgroups` (always on, as runc has it).
fn add_shared_flags(args: &mut criu::Args, flags: &CriuFlags) {
    match flags.manage_cgroups_mode {
        Some(mode) => args.flag(&format!("--manage-cgroups={}", mode.as_str())),
        None => args.flag("--manage-cgroups"),
    }
    args.flag_if(flags.tcp_established, "--tcp-established");
    args.flag_if(flags.ext_unix_sk, "--ext-unix-sk");
    args.flag_if(flags.shell_job, "--shell-job");
    args.flag_if(flags.file_locks, "--file-locks");
    args.flag_if(flags.auto_dedup, "--auto-dedup");
}

/// A container with a terminal cannot be checkpointed or restored through criu's command line.
fn refuse_terminal(spec: &Spec) -> Result<(), CheckpointError> {
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if terminal {
        return Err(CheckpointError::Unsupported(
            "checkpoint and restore of a container with a terminal (process.terminal) are not \
             supported: criu hands the restored terminal back only in its RPC mode, and \
             berth-runtime runs the criu command"
                .into(),
        ));
    }
    Ok(())
}

/// After a failed dump: a container that was running is thawed if criu left it frozen.
fn leave_as_found(cgroup: &Manager, status_before: Status) {
    if status_before == Status::Running && cgroup.is_frozen().unwrap_or(false) {
        let _ = cgroup.thaw();
    }
}

/// The image and work directories, absolute (criu changes into the work directory).
struct WorkDirs {
    images: PathBuf,
    work: Option<PathBuf>,
}

impl WorkDirs {
    /// Creates the image directory (a container can be checkpointed more than once into it) and
    /// the work directory, as runc does.
    fn prepare(images: &Path, work: Option<&Path>) -> Result<WorkDirs, CheckpointError> {
        let images = make_dir(images)?;
        let work = work.map(make_dir).transpose()?;
        Ok(WorkDirs { images, work })
    }

    fn log(&self, name: &str) -> PathBuf {
        self.work.as_deref().unwrap_or(&self.images).join(name)
    }

    fn add_to(&self, args: &mut criu::Args) {
        args.opt("--images-dir", &self.images);
        if let Some(work) = &self.work {
            args.opt("--work-dir", work);
        }
    }
}

fn make_dir(path: &Path) -> Result<PathBuf, CheckpointError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_err(format!("creating {}", path.display())))?;
    std::path::absolute(path).map_err(io_err(format!("resolving {}", path.display())))
}

/// `--parent-path` must be relative to the image directory and name a directory there.
fn check_parent(images: &Path, parent: Option<&Path>) -> Result<(), CheckpointError> {
    let Some(parent) = parent else {
        return Ok(());
    };
    if parent.is_absolute() {
        return Err(CheckpointError::Invalid(
            "--parent-path must be relative".into(),
        ));
    }
    let full = images.join(parent);
    match std::fs::metadata(&full) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(CheckpointError::Invalid(format!(
            "invalid --parent-path: {} is not a directory",
            full.display()
        ))),
        Err(e) => Err(CheckpointError::Invalid(format!(
            "invalid --parent-path: {}: {e}",
            full.display()
        ))),
    }
}

/// Records the init's stdio (see [`DESCRIPTORS`]).
fn write_descriptors(pid: i32, images: &Path) -> Result<(), CheckpointError> {
    let links: Vec<String> = (0..3)
        .map(|fd| {
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        })
        .collect();
    let path = images.join(DESCRIPTORS);
    let data = serde_json::to_vec(&links).map_err(Error::Json)?;
    std::fs::write(&path, data).map_err(io_err(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_modes() {
        for mode in ["soft", "full", "strict", "ignore"] {
            let parsed: CgroupMode = mode.parse().unwrap();
            assert_eq!(parsed.as_str(), mode);
        }
        let err = "hard".parse::<CgroupMode>().unwrap_err();
        assert_eq!(err.to_string(), "Invalid manage-cgroups-mode value");
    }

    #[test]
    fn shared_flags() {
        let mut args = criu::Args::new("dump");
        add_shared_flags(
            &mut args,
            &CriuFlags {
                tcp_established: true,
                file_locks: true,
                manage_cgroups_mode: Some(CgroupMode::Full),
                ..CriuFlags::default()
            },
        );
        assert_eq!(
            args.to_strings(),
            [
                "dump",
                "--manage-cgroups=full",
                "--tcp-established",
                "--file-locks"
            ]
        );
    }

    #[test]
    fn parent_path_must_be_a_relative_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("parent")).unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        check_parent(dir.path(), None).unwrap();
        check_parent(dir.path(), Some(Path::new("parent"))).unwrap();
        let abs = check_parent(dir.path(), Some(Path::new("/abs"))).unwrap_err();
        assert_eq!(abs.to_string(), "--parent-path must be relative");
        for bad in ["file", "missing"] {
            let err = check_parent(dir.path(), Some(Path::new(bad))).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid --parent-path"),
                "{err}"
            );
        }
    }
}
