//! The daemon's side of `berth-monitor`: starting one for a container, and talking to it over
//! its socket (one JSON request per connection; attach and exec turn the connection into the
//! container's stream), in the types of `berth_monitor::protocol`, which the monitor uses too.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_monitor::protocol::{self, Op, Ready, Request};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::error::{EngineError, Result};

pub use berth_monitor::protocol::{ExecState, ExitStatus, Reply, State, Status};

/// How long a monitor may take to create its container.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What the monitor of one container is started with.
#[derive(Debug, Clone)]
pub struct Launch {
    pub binary: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub runtime_root: PathBuf,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    /// `json-file`, `local`, `none` or `cri`.
    pub log_driver: &'static str,
    pub log_max_size: Option<u64>,
    pub log_max_file: Option<u32>,
    /// `local`: the rotated files are compressed.
    pub log_compress: bool,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    /// The health check's file (`--healthcheck`).
    pub healthcheck: Option<PathBuf>,
    /// The daemon's cgroup mount lines (`--cgroup-mounts`), if written.
    pub cgroup_mounts: Option<PathBuf>,
    /// A foreign runtime to drive instead of Berth's own (`--runtime-path`, `--runtime-arg`).
    pub foreign: Option<berth_monitor::driver::Foreign>,
}

/// The monitor socket of a container's state directory.
pub fn socket(state_dir: &Path) -> PathBuf {
    state_dir.join("monitor.sock")
}

/// Starts the monitor (in a process group of its own, so it outlives the daemon and its
/// signals) and waits until it has created the container; returns the init's pid. The error
/// is the runtime's message.
pub async fn spawn(l: &Launch) -> Result<i64> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| EngineError::internal("pipe", e))?;
    let mut cmd = tokio::process::Command::new(&l.binary);
    cmd.arg("--id")
        .arg(&l.id)
        .arg("--bundle")
        .arg(&l.bundle)
        .arg("--runtime-root")
        .arg(&l.runtime_root)
        .arg("--dir")
        .arg(&l.state_dir)
        .arg("--log")
        .arg(&l.log)
        .arg("--log-driver")
        .arg(l.log_driver)
        .arg("--ready-fd")
        .arg("1");
    if let Some(s) = l.log_max_size {
        cmd.arg("--log-max-size").arg(s.to_string());
    }
    if let Some(n) = l.log_max_file {
        cmd.arg("--log-max-file").arg(n.to_string());
    }
    if l.log_compress {
        cmd.arg("--log-compress");
    }
    if let Some(path) = &l.cgroup_mounts {
        cmd.arg("--cgroup-mounts").arg(path);
    }
    if let Some(path) = &l.healthcheck {
        cmd.arg("--healthcheck").arg(path);
    }
    if let Some(foreign) = &l.foreign {
        cmd.arg("--runtime-path").arg(&foreign.path);
        for arg in &foreign.args {
            // `=`: an argument that starts with `-` is still the flag's value.
            cmd.arg(format!("--runtime-arg={arg}"));
        }
    }
    for (on, flag) in [
        (l.tty, "--tty"),
        (l.stdin, "--stdin"),
        (l.stdin_once, "--stdin-once"),
    ] {
        if on {
            cmd.arg(flag);
        }
    }
    // The ready pipe is the monitor's stdout: no descriptor to carry over by hand, so the
    // spawn can use posix_spawn (vfork) rather than a fork of the daemon.
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(write))
        .stderr(std::process::Stdio::null())
        .process_group(0);
    let child = cmd
        .spawn()
        .map_err(|e| EngineError::internal(&format!("start {}", l.binary.display()), e))?;
    // The child is reaped by tokio when it exits (the handle is dropped, not killed).
    drop(child);
    let line = tokio::time::timeout(READY_TIMEOUT, read_line(read))
        .await
        .map_err(|_| EngineError::Internal("the container monitor did not start in time".into()))?;
    let line = line.map_err(|e| EngineError::internal("reading the monitor's answer", e))?;
    match Ready::parse(&line) {
        Ready::Created { pid } => Ok(i64::from(pid)),
        Ready::Failed(message) => Err(start_failure(message)),
    }
}

async fn read_line(fd: OwnedFd) -> std::io::Result<String> {
    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
    let mut reader = BufReader::new(pipe);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    Ok(line)
}

/// Sends `op` and reads the one-line answer as a `T`; an `{"error":...}` answer is an error
/// ([`refusal`]).
pub async fn call<T: DeserializeOwned>(sock: &Path, op: Op) -> Result<T> {
    // One line comes back: a small buffer (a running container's exit wait holds it for the
    // container's whole life).
    let (line, _) = send(sock, op, CALL_BUFFER).await?;
    refused(&line)?;
    protocol::from_line(&line).map_err(|e| EngineError::internal("the monitor's answer", e))
}

/// Sends `op`, reads the one-line answer, and hands back the connection (for attach and exec,
/// which go on as streams); an `{"error":...}` answer is an error ([`refusal`]).
pub async fn open(sock: &Path, op: Op) -> Result<(Reply, BufReader<UnixStream>)> {
    let (reply, stream) = open_unchecked(sock, op).await?;
    match reply.error {
        Some(message) => Err(refusal(message)),
        None => Ok((reply, stream)),
    }
}

/// [`open`], with an error answer handed back as the reply (for callers that tell the causes
/// apart: an exec whose program could not start).
pub async fn open_unchecked(sock: &Path, op: Op) -> Result<(Reply, BufReader<UnixStream>)> {
    let (line, stream) = send(sock, op, STREAM_BUFFER).await?;
    let reply =
        protocol::from_line(&line).map_err(|e| EngineError::internal("the monitor's answer", e))?;
    Ok((reply, stream))
}

/// The status of a monitor's refusal: a request the container's state forbids is a conflict
/// (409, as dockerd answers a start of an exited process or an exec in a stopped container);
/// anything else failed (500).
pub fn refusal(message: String) -> EngineError {
    const STATE: [&str; 5] = [
        "not running",
        "has exited",
        "already started",
        "exists already",
        "has not exited",
    ];
    if STATE.iter().any(|s| message.contains(s)) {
        EngineError::Conflict(message)
    } else {
        EngineError::Internal(message)
    }
}

/// The status of a container the runtime could not create, as dockerd's
/// `translateContainerdStartErr` gives it: a program that is missing or cannot be run, or a
/// path of the config that is not there, is the caller's (400); anything else failed (500).
fn start_failure(message: String) -> EngineError {
    const CONFIG: [&str; 4] = [
        "executable file not found",
        "no such file or directory",
        "permission denied",
        "not a directory",
    ];
    let lower = message.to_ascii_lowercase();
    if CONFIG.iter().any(|s| lower.contains(s)) {
        EngineError::InvalidParameter(message)
    } else {
        EngineError::Internal(message)
    }
}

/// An error answer as an error.
fn refused(line: &[u8]) -> Result<()> {
    match protocol::from_line::<Reply>(line) {
        Ok(Reply {
            error: Some(message),
            ..
        }) => Err(refusal(message)),
        _ => Ok(()),
    }
}

/// The read buffer of a connection that carries one answer line ([`call`]).
const CALL_BUFFER: usize = 512;
/// The read buffer of a connection that goes on as a stream (attach, exec).
const STREAM_BUFFER: usize = 8 << 10;

async fn send(sock: &Path, op: Op, buffer: usize) -> Result<(Vec<u8>, BufReader<UnixStream>)> {
    let stream = UnixStream::connect(sock).await.map_err(|e| {
        EngineError::Internal(format!(
            "cannot reach the container's monitor ({}): {e}",
            sock.display()
        ))
    })?;
    let mut stream = BufReader::with_capacity(buffer, stream);
    stream
        .get_mut()
        .write_all(&protocol::to_line(&Request::from(op)))
        .await
        .map_err(|e| EngineError::internal("write to the monitor", e))?;
    let mut line = Vec::new();
    stream
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| EngineError::internal("read from the monitor", e))?;
    if line.is_empty() {
        return Err(EngineError::Internal(
            "the container's monitor closed the connection".into(),
        ));
    }
    Ok((line, stream))
}

/// Reads `exit.json` of a state directory, if the container has exited.
pub fn read_exit(state_dir: &Path) -> Option<ExitStatus> {
    berth_monitor::exit::read(&state_dir.join("exit.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_of_monitor_and_runtime_errors() {
        assert_eq!(refusal("the container is not running".into()).status(), 409);
        assert_eq!(refusal("the container has exited".into()).status(), 409);
        assert_eq!(refusal("no such exec: x".into()).status(), 500);
        let missing = "container init: exec: \"nosuch\": executable file not found in $PATH";
        assert_eq!(start_failure(missing.into()).status(), 400);
        assert_eq!(start_failure("cgroup: device busy".into()).status(), 500);
    }
}
