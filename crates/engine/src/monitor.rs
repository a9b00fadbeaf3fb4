//! The daemon's side of `berth-monitor`: starting one for a container, and talking to it over
//! its socket (one JSON request per connection; attach and exec turn the connection into the
//! container's stream).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::error::{EngineError, Result};

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
    pub log_max_size: Option<u64>,
    pub log_max_file: Option<u32>,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
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
        .arg("--ready-fd")
        .arg("1");
    if let Some(s) = l.log_max_size {
        cmd.arg("--log-max-size").arg(s.to_string());
    }
    if let Some(n) = l.log_max_file {
        cmd.arg("--log-max-file").arg(n.to_string());
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
    if let Some(pid) = line.strip_prefix("ready ") {
        return pid
            .trim()
            .parse()
            .map_err(|e| EngineError::internal("the monitor's pid", e));
    }
    let message = line
        .strip_prefix("error ")
        .unwrap_or(&line)
        .trim()
        .to_string();
    Err(EngineError::InvalidParameter(if message.is_empty() {
        "the container monitor exited without a word".to_string()
    } else {
        message
    }))
}

async fn read_line(fd: OwnedFd) -> std::io::Result<String> {
    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
    let mut reader = BufReader::new(pipe);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    Ok(line)
}

/// Sends `request` and reads the one-line answer; an `{"error":...}` answer is an error.
pub async fn call(sock: &Path, request: Value) -> Result<Value> {
    let (answer, _) = open(sock, request).await?;
    Ok(answer)
}

/// Sends `request`, reads the one-line answer, and hands back the connection (for attach and
/// exec, which go on as streams).
pub async fn open(sock: &Path, mut request: Value) -> Result<(Value, BufReader<UnixStream>)> {
    request["version"] = json!(1);
    let stream = UnixStream::connect(sock).await.map_err(|e| {
        EngineError::Internal(format!(
            "cannot reach the container's monitor ({}): {e}",
            sock.display()
        ))
    })?;
    let mut stream = BufReader::new(stream);
    let mut line = serde_json::to_vec(&request).map_err(|e| EngineError::internal("encode", e))?;
    line.push(b'\n');
    stream
        .get_mut()
        .write_all(&line)
        .await
        .map_err(|e| EngineError::internal("write to the monitor", e))?;
    let mut answer = String::new();
    stream
        .read_line(&mut answer)
        .await
        .map_err(|e| EngineError::internal("read from the monitor", e))?;
    if answer.is_empty() {
        return Err(EngineError::Internal(
            "the container's monitor closed the connection".into(),
        ));
    }
    let value: Value =
        serde_json::from_str(&answer).map_err(|e| EngineError::internal("monitor answer", e))?;
    if let Some(err) = value.get("error").and_then(Value::as_str) {
        return Err(EngineError::InvalidParameter(err.to_string()));
    }
    Ok((value, stream))
}

/// What `exit.json` (written by the monitor when the container exited) says.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Exit {
    pub exit_code: i64,
    #[serde(default)]
    pub oom_killed: bool,
    #[serde(default)]
    pub finished_at: String,
}

/// Reads `exit.json` of a state directory, if the container has exited.
pub fn read_exit(state_dir: &Path) -> Option<Exit> {
    let bytes = std::fs::read(state_dir.join("exit.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}
