//! The record of the container's end: `exit.json`, written atomically (temp file, rename), and
//! the OOM kill count read from the cgroup before it goes.
//!
//! It lives in the exec root, which dies with the machine (a tmpfs): it has to outlive the
//! monitor and the daemon, not a power cut, so it is not fsynced. Once written, a `kill -9` of
//! either process cannot lose it; the daemon copies it into the container's durable record.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::protocol::{self, ExitStatus};

#[derive(Debug, thiserror::Error)]
pub enum ExitError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes `status` to `path` atomically.
pub fn write(path: &Path, status: &ExitStatus) -> Result<(), ExitError> {
    let tmp = path.with_extension("json.tmp");
    let err = |what, p: &Path| {
        let path = p.to_path_buf();
        move |source| ExitError::Io { what, path, source }
    };
    let mut file = std::fs::File::create(&tmp).map_err(err("creating", &tmp))?;
    file.write_all(&protocol::to_line(status))
        .map_err(err("writing", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(err("renaming to", path))
}

/// Reads `exit.json` (for the daemon after a restart).
pub fn read(path: &Path) -> Option<ExitStatus> {
    let data = std::fs::read(path).ok()?;
    protocol::from_line(data.trim_ascii_end()).ok()
}

/// Whether the container's cgroup saw an OOM kill.
pub fn oom_killed(cgroup: &berth_cgroups::Manager) -> bool {
    cgroup.oom_kill_count().is_ok_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exit.json");
        let status = ExitStatus {
            exit_code: 3,
            oom_killed: false,
            finished_at: "2026-01-01T00:00:00.000000001Z".into(),
        };
        write(&path, &status).unwrap();
        assert_eq!(read(&path), Some(status));
        assert!(!dir.path().join("exit.json.tmp").exists());
    }
}
