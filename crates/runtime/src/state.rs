//! The runtime's record of each container, kept under `--root` (`/run/berth-runtime/<id>/`).
//!
//! A container's directory holds `state.json` (written atomically: temp file, rename), a copy of
//! the configuration it was created from (`config.json`, used by `exec` and the poststop hooks), and while
//! the container is `created`, the `exec.fifo` that `start` opens to let the init run the user's program.
//! The status is never stored: it is derived from the init process (alive, zombie, same start time as
//! recorded) and the cgroup freezer, so it stays true when a process dies with nobody watching.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors of the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container with id {0} already exists")]
    Exists(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("invalid container id {0:?}: only letters, digits, '_', '+', '-' and '.' are allowed")]
    InvalidId(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state of container {id} is corrupt ({path}): {source}")]
    Corrupt {
        id: String,
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The lifecycle states of the OCI runtime spec, plus `paused` as runc reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What the runtime remembers of a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// Pid of the container's init, in the runtime's pid namespace; 0 before it exists.
    pub pid: i32,
    /// Start time of the init (field 22 of /proc/PID/stat), to tell it from a later process with the same pid.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 time of creation.
    pub created: String,
    pub cgroups_path: PathBuf,
    /// The directories `cgroups_path` named at the creation (one per hierarchy): a relative
    /// path is resolved once, from the creating runtime's cgroup, as runc keeps its paths.
    #[serde(default)]
    pub cgroup_dirs: Vec<PathBuf>,
    pub owner: String,
    #[serde(default)]
    pub annotations: std::collections::HashMap<String, String>,
    /// Set while the container is still being created.
    #[serde(default)]
    pub creating: bool,
    /// Whether its mount namespace was copied from the mount template (see `mount_template`).
    #[serde(default)]
    pub mount_template: bool,
}

/// The directory holding all containers' records.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Checks an id the way runc does: no path separators, no `.`/`..`, printable.
pub fn validate_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidId(id.to_string()))
    }
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// The directory of the compiled seccomp programs (`berth_seccomp::Cache`). The `@` keeps
    /// it apart from container directories: it is not valid in an id.
    pub fn seccomp_cache_dir(&self) -> PathBuf {
        self.root.join("@seccomp-cache")
    }

    pub fn fifo_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("exec.fifo")
    }

    pub fn config_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("config.json")
    }

    /// Claims `id` by creating its directory; fails if another container has it.
    pub fn claim(&self, id: &str) -> Result<PathBuf, StateError> {
        validate_id(id)?;
        fs::create_dir_all(&self.root).map_err(io_err("creating", &self.root))?;
        let dir = self.dir(id);
        match fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(StateError::Exists(id.to_string()))
            }
            Err(e) => Err(io_err("creating", &dir)(e)),
        }
    }

    /// Writes the record atomically.
    pub fn save(&self, record: &Record) -> Result<(), StateError> {
        let dir = self.dir(&record.id);
        let tmp = dir.join(".state.json.tmp");
        let path = dir.join("state.json");
        let data = serde_json::to_vec(record).map_err(|source| StateError::Corrupt {
            id: record.id.clone(),
            path: path.clone(),
            source,
        })?;
        let mut file = fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
        file.write_all(&data).map_err(io_err("writing", &tmp))?;
        // Atomic (rename), not durable: the records live in `--root`, on tmpfs by default, and
        // die with the machine like the containers they describe.
        fs::rename(&tmp, &path).map_err(io_err("renaming", &tmp))
    }

    pub fn load(&self, id: &str) -> Result<Record, StateError> {
        validate_id(id)?;
        let path = self.dir(id).join("state.json");
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(id.to_string()))
            }
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        serde_json::from_slice(&data).map_err(|source| StateError::Corrupt {
            id: id.to_string(),
            path,
            source,
        })
    }

    /// Ids of all containers with a record, sorted.
    pub fn list(&self) -> Result<Vec<String>, StateError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("reading", &self.root)(e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("state.json").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Removes the container's directory and everything in it.
    pub fn remove(&self, id: &str) -> Result<(), StateError> {
        let dir = self.dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("removing", &dir)(e)),
        }
    }
}

/// What /proc says of a pid: whether it runs, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

/// Reads the state letter and start time of `pid` from /proc; None if there is no such process.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3; the start time is field 22.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

impl Record {
    /// True while the recorded init process exists and is not a zombie.
    pub fn init_alive(&self) -> bool {
        if self.pid <= 0 {
            return false;
        }
        match proc_stat(self.pid) {
            Some(stat) => {
                stat.start_time == self.pid_start_time && !matches!(stat.state, 'Z' | 'X')
            }
            None => false,
        }
    }
}

impl Record {
    /// The record as the spec's state, with `status`.
    pub fn oci_state(&self, status: Status) -> OciState {
        OciState {
            oci_version: OCI_VERSION.to_string(),
            id: self.id.clone(),
            status,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

/// The version of the runtime spec this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";

/// The state as the OCI runtime spec defines it, with runc's extra fields, for `state` and hooks.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub annotations: std::collections::HashMap<String, String>,
}

/// Formats a time as RFC 3339 UTC with nanoseconds, as runc prints `created`.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        validate_id("abc-1.2_x+y").unwrap();
        for bad in ["", ".", "..", "a/b", "a b", "é"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn time_format() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000005Z");
    }

    #[test]
    fn own_stat() {
        let stat = proc_stat(std::process::id() as i32).unwrap();
        assert!(matches!(stat.state, 'R' | 'S'), "{stat:?}");
        assert!(stat.start_time > 0);
    }
}
