//! Running the `criu` command: finding it, its arguments, a time limit, and its errors.

use std::ffi::{CString, OsStr, OsString};
use std::io::{Read, Seek};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use berth_cgroups::Manager;

use super::{io_err, CheckpointError};

/// At most this many of criu's error lines go into an error message.
const MAX_ERROR_LINES: usize = 8;

/// Where criu is looked for when there is no PATH.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The `criu` executable in PATH.
pub(super) fn locate() -> Result<PathBuf, CheckpointError> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    std::env::split_paths(&path)
        .map(|dir| dir.join("criu"))
        .find(|candidate| is_executable(candidate))
        .ok_or(CheckpointError::CriuMissing)
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// criu's command line: the action (`dump`, `pre-dump`, `restore`), then its options.
#[derive(Debug, Clone)]
pub(super) struct Args {
    action: &'static str,
    list: Vec<OsString>,
}

impl Args {
    pub(super) fn new(action: &'static str) -> Self {
        Self {
            action,
            list: Vec::new(),
        }
    }

    pub(super) fn flag(&mut self, name: &str) {
        self.list.push(name.into());
    }

    pub(super) fn flag_if(&mut self, on: bool, name: &str) {
        if on {
            self.flag(name);
        }
    }

    pub(super) fn opt(&mut self, name: &str, value: impl AsRef<OsStr>) {
        self.list.push(name.into());
        self.list.push(value.as_ref().to_os_string());
    }

    /// The whole command line after `criu`, for tests and debugging.
    #[cfg(test)]
    pub(super) fn to_strings(&self) -> Vec<String> {
        std::iter::once(self.action.to_string())
            .chain(self.list.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect()
    }
}

/// What criu's standard streams are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stdio {
    /// stdin and stdout /dev/null, stderr kept to report errors logged before the log file opened.
    Captured,
    /// This process's own: a restore hands them to the restored init (`--inherit-fd`).
    Inherited,
}

/// One run of criu.
pub(super) struct Run<'a> {
    pub args: &'a Args,
    /// The log file criu is told to write (`--log-file`), where its errors are read from.
    pub log: PathBuf,
    pub stdio: Stdio,
    /// Files criu writes `0` to before it starts, to move itself into the container's cgroup
    /// (see [`join_files`]); empty to stay where it is.
    pub join_cgroup: Vec<CString>,
    pub time_limit: Duration,
}

/// The files that move a process into `cgroup` by writing `0`: `tasks` of each v1 hierarchy (a
/// single-threaded process moving itself there takes no global lock), `cgroup.procs` of cgroup2.
/// As runc puts criu into the container's cgroup for a restore, so that the restored tasks are
/// born there whatever `--manage-cgroups` mode says.
pub(super) fn join_files(cgroup: &Manager) -> Result<Vec<CString>, CheckpointError> {
    let v2 = cgroup.controller_dir("");
    cgroup
        .dirs()
        .into_iter()
        .map(|dir| {
            let file = if Some(&dir) == v2.as_ref() {
                "cgroup.procs"
            } else {
                "tasks"
            };
            let path = dir.join(file);
            CString::new(path.as_os_str().as_bytes()).map_err(|_| {
                CheckpointError::Invalid(format!("cgroup path {} holds a NUL", path.display()))
            })
        })
        .collect()
}

/// Runs criu, killing it after the time limit; on failure the error holds criu's own errors.
pub(super) fn run(criu: &Path, run: &Run<'_>) -> Result<(), CheckpointError> {
    let mut cmd = Command::new(criu);
    cmd.arg(run.args.action).args(&run.args.list);
    let stderr = match run.stdio {
        Stdio::Captured => {
            let file = stderr_file()?;
            let for_child = file.try_clone().map_err(io_err("duplicating a memfd"))?;
            cmd.stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(for_child);
            Some(file)
        }
        Stdio::Inherited => None,
    };
    if !run.join_cgroup.is_empty() {
        let files = run.join_cgroup.clone();
        // SAFETY: the closure runs in the forked child before exec. It only calls open, write and
        // close (async-signal-safe) on strings allocated before the fork, and allocates nothing
        // (rustix passes a &CStr as it is; an errno becomes an io::Error without allocating).
        unsafe { cmd.pre_exec(move || join_cgroup(&files)) };
    }
    let mut child = cmd
        .spawn()
        .map_err(io_err(format!("running {}", criu.display())))?;
    drop(cmd);
    let Some(status) = wait_bounded(&mut child, run.time_limit)? else {
        return Err(CheckpointError::CriuTimeout {
            action: run.args.action,
            secs: run.time_limit.as_secs(),
            log: run.log.clone(),
        });
    };
    if status.success() {
        return Ok(());
    }
    let stderr_text = stderr.map(read_all).unwrap_or_default();
    let log_text = std::fs::read(&run.log)
        .map(|data| String::from_utf8_lossy(&data).into_owned())
        .unwrap_or_default();
    Err(CheckpointError::Criu {
        action: run.args.action,
        errors: error_summary(&log_text, &stderr_text, status),
        log: run.log.clone(),
    })
}

/// In the child, before exec: writes `0` to each file (see [`join_files`]).
fn join_cgroup(files: &[CString]) -> std::io::Result<()> {
    for file in files {
        let fd = rustix::fs::open(
            file.as_c_str(),
            rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        rustix::io::write(&fd, b"0")?;
    }
    Ok(())
}

/// An anonymous file for criu's stderr: it cannot fill up and block criu as a pipe could.
fn stderr_file() -> Result<std::fs::File, CheckpointError> {
    let fd =
        rustix::fs::memfd_create("criu-stderr", rustix::fs::MemfdFlags::CLOEXEC).map_err(|e| {
            CheckpointError::Io {
                what: "creating a memfd for criu's stderr".into(),
                source: e.into(),
            }
        })?;
    Ok(std::fs::File::from(fd))
}

fn read_all(mut file: std::fs::File) -> String {
    let mut text = String::new();
    if file.rewind().is_ok() {
        let _ = file.read_to_string(&mut text);
    }
    text
}

/// Waits for `child` up to `limit`; past it, kills it and returns `None`.
fn wait_bounded(child: &mut Child, limit: Duration) -> Result<Option<ExitStatus>, CheckpointError> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait().map_err(io_err("waiting for criu"))? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// criu's `Error (file:line): text` lines from its log, without their timestamps; else what it
/// wrote to stderr; else its exit status. Joined with `; `.
fn error_summary(log: &str, stderr: &str, status: ExitStatus) -> String {
    let mut lines: Vec<&str> = log
        .lines()
        .filter_map(|line| line.find("Error (").map(|at| line[at..].trim_end()))
        .take(MAX_ERROR_LINES)
        .collect();
    if lines.is_empty() {
        lines = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(MAX_ERROR_LINES)
            .collect();
    }
    if lines.is_empty() {
        return format!("criu ended with {status} and logged no error");
    }
    lines.join("; ")
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    const LOG: &str = "\
(00.000084) Version: 3.17.1 (gitid 0)
(00.017138) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds
(00.017140) Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable
(00.017194) Found mmap_min_addr 0x10000
(00.030575) Error (criu/crtools.c:260): Could not initialize kernel features detection.
";

    #[test]
    fn errors_come_from_the_log_without_timestamps() {
        let summary = error_summary(LOG, "ignored", ExitStatus::from_raw(1 << 8));
        assert_eq!(
            summary,
            "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds; \
             Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable; \
             Error (criu/crtools.c:260): Could not initialize kernel features detection."
        );
    }

    #[test]
    fn stderr_then_status_when_the_log_has_no_error() {
        let status = ExitStatus::from_raw(1 << 8);
        assert_eq!(
            error_summary("(00.1) Version\n", "\nunknown option --x\n", status),
            "unknown option --x"
        );
        assert_eq!(
            error_summary("", "", status),
            "criu ended with exit status: 1 and logged no error"
        );
    }

    #[test]
    fn a_command_past_its_time_limit_is_killed() {
        let mut child = Command::new("sleep").arg("10").spawn().unwrap();
        let start = Instant::now();
        let status = wait_bounded(&mut child, Duration::from_millis(100)).unwrap();
        assert!(status.is_none());
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn args_in_order() {
        let mut args = Args::new("restore");
        args.flag("-v4");
        args.flag_if(false, "--shell-job");
        args.opt("--root", Path::new("/r"));
        assert_eq!(args.to_strings(), ["restore", "-v4", "--root", "/r"]);
    }
}
