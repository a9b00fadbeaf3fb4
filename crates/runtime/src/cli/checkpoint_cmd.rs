//! `checkpoint` and `restore`: runc's flags over the library's criu driver
//! (`berth_runtime::checkpoint`).
//!
//! Neither needs the read-only re-exec (`readonly_exe`) that `create`, `run` and `exec` do. That
//! guards against a process of the container reaching the runtime's binary through
//! `/proc/PID/exe`, which needs a runtime process inside the container's pid namespace (the init
//! before its exec, an exec'd process before its exec). Here no runtime process enters the
//! container: criu works on it from outside, and a foreground `restore` waits outside it.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_runtime::checkpoint::{self, CheckpointOptions, CriuFlags, RestoreOptions};
use berth_runtime::Runtime;

/// The flags `checkpoint` and `restore` share.
#[derive(clap::Args, Debug)]
pub struct SharedArgs {
    /// Path for the criu image files (default: ./checkpoint).
    #[arg(long = "image-path")]
    image_path: Option<PathBuf>,
    /// Path for criu's work files and log (default: the image path).
    #[arg(long = "work-path")]
    work_path: Option<PathBuf>,
    /// Allow open TCP connections.
    #[arg(long = "tcp-established")]
    tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk")]
    ext_unix_sk: bool,
    /// Allow shell jobs.
    #[arg(long = "shell-job")]
    shell_job: bool,
    /// Handle file locks, for safety.
    #[arg(long = "file-locks")]
    file_locks: bool,
    /// Cgroups mode: soft|full|strict|ignore (default: soft).
    #[arg(long = "manage-cgroups-mode")]
    manage_cgroups_mode: Option<String>,
    /// Create a namespace, but don't restore its properties (only "network"; always so, as runc).
    #[arg(long = "empty-ns")]
    empty_ns: Vec<String>,
    /// Enable auto deduplication of memory images.
    #[arg(long = "auto-dedup")]
    auto_dedup: bool,
    /// Not supported: lazy restore of memory pages needs criu's page server.
    #[arg(long = "lazy-pages")]
    lazy_pages: bool,
}

impl SharedArgs {
    fn image_path(&self) -> Result<PathBuf> {
        match &self.image_path {
            Some(path) => Ok(path.clone()),
            None => Ok(std::env::current_dir()
                .context("reading the working directory")?
                .join("checkpoint")),
        }
    }

    fn criu_flags(&self) -> Result<CriuFlags> {
        if self.lazy_pages {
            bail!(
                "--lazy-pages is not supported: berth-runtime runs criu's command line, and lazy \
                 migration needs criu's lazy-pages daemon and page server"
            );
        }
        for ns in &self.empty_ns {
            if ns != "network" {
                bail!("namespace {ns:?} is not supported");
            }
        }
        let manage_cgroups_mode = match self.manage_cgroups_mode.as_deref() {
            None | Some("") => None,
            Some(mode) => Some(mode.parse()?),
        };
        Ok(CriuFlags {
            tcp_established: self.tcp_established,
            ext_unix_sk: self.ext_unix_sk,
            shell_job: self.shell_job,
            file_locks: self.file_locks,
            auto_dedup: self.auto_dedup,
            manage_cgroups_mode,
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct CheckpointArgs {
    #[command(flatten)]
    shared: SharedArgs,
    /// Path of the images of a previous pre-dump, relative to the image path.
    #[arg(long = "parent-path")]
    parent_path: Option<PathBuf>,
    /// Leave the process running after checkpointing.
    #[arg(long = "leave-running")]
    leave_running: bool,
    /// Not supported: criu writes \0 to this descriptor once lazy pages are ready.
    #[arg(long = "status-fd", allow_negative_numbers = true)]
    status_fd: Option<i32>,
    /// Not supported: ADDRESS:PORT of a criu page server.
    #[arg(long = "page-server")]
    page_server: Option<String>,
    /// Dump the container's memory only, leaving it running.
    #[arg(long = "pre-dump")]
    pre_dump: bool,
    container_id: String,
}

impl CheckpointArgs {
    fn options(&self) -> Result<CheckpointOptions> {
        if self.page_server.is_some() {
            bail!(
                "--page-server is not supported: berth-runtime runs criu's command line and \
                 writes the images to --image-path"
            );
        }
        if self.status_fd.is_some_and(|fd| fd != -1) {
            bail!("--status-fd is not supported: it belongs to --lazy-pages, which is not");
        }
        let mut opts = CheckpointOptions::new(self.shared.image_path()?);
        opts.criu = self.shared.criu_flags()?;
        opts.work_path = self.shared.work_path.clone();
        opts.parent_path = self.parent_path.clone();
        opts.leave_running = self.leave_running;
        opts.pre_dump = self.pre_dump;
        Ok(opts)
    }
}

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    shared: SharedArgs,
    /// Not supported: a container with a terminal cannot be restored through criu's command line.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Path to the bundle directory.
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Detach from the container's process.
    #[arg(short, long)]
    detach: bool,
    /// File to write the pid of the restored init to.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Accepted for compatibility: the foreground restore waits for its own child, the restored
    /// init, and needs no subreaper.
    #[arg(long = "no-subreaper")]
    no_subreaper: bool,
    /// Accepted for compatibility: criu, not the runtime, sets up the restored root.
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// LSM profile for the restored process, TYPE:NAME (apparmor or selinux).
    #[arg(long = "lsm-profile")]
    lsm_profile: Option<String>,
    /// Mount context for the restored mounts that have one.
    #[arg(long = "lsm-mount-context")]
    lsm_mount_context: Option<String>,
    container_id: String,
}

impl RestoreArgs {
    fn options(&self) -> Result<RestoreOptions> {
        if self.console_socket.is_some() {
            bail!(
                "--console-socket is not supported: criu hands a restored terminal back only in \
                 its RPC mode, and berth-runtime runs criu's command line"
            );
        }
        let mut opts = RestoreOptions::new(&self.bundle, self.shared.image_path()?);
        opts.criu = self.shared.criu_flags()?;
        opts.work_path = self.shared.work_path.clone();
        opts.pid_file = self.pid_file.clone();
        opts.lsm_profile = self.lsm_profile.clone();
        opts.lsm_mount_context = self.lsm_mount_context.clone();
        Ok(opts)
    }
}

/// `checkpoint`: criu dumps the container; it is deleted after unless left running.
pub fn checkpoint(rt: &Runtime, args: CheckpointArgs) -> Result<i32> {
    let opts = args.options()?;
    checkpoint::checkpoint(rt, &args.container_id, &opts)?;
    Ok(0)
}

/// `restore`: the container runs again from its images. Without `--detach`, waits for it
/// (forwarding signals), deletes it and returns its exit code, as `run` does.
pub fn restore(rt: &Runtime, args: RestoreArgs) -> Result<i32> {
    let opts = args.options()?;
    if !args.detach {
        // A signal that comes while criu restores waits to be forwarded (criu itself starts with
        // an empty signal mask).
        super::wait::block_forwarded_signals()?;
    }
    let restored = checkpoint::restore(rt, &args.container_id, &opts)?;
    if args.detach {
        return Ok(0);
    }
    let code = super::wait::wait_forwarding(restored.pid)?;
    rt.delete(&args.container_id, true)?;
    Ok(code)
}
