//! `ExecSync`: a command run in a container to its end (kubelet's exec probes), its output
//! and exit code returned at once; a timeout kills it, as containerd does.

use std::time::Duration;

use berth_api::models::ExecConfig;
use berth_engine::Engine;
use tokio::io::AsyncReadExt;
use tonic::Status;

use crate::{status, Cri};

/// The most output kept per stream (containerd keeps 16 MiB too); the rest is read and
/// dropped so that the command never blocks on a full pipe.
const MAX_OUTPUT: usize = 16 << 20;

/// How long the exit code may take to be known once the output ended.
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// What an `ExecSync` gives back.
#[derive(Debug, Default)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

impl Cri {
    pub(crate) async fn exec_sync(
        &self,
        container: &str,
        cmd: Vec<String>,
        timeout: Option<Duration>,
    ) -> Result<Output, Status> {
        let (c, _) = self.container(container)?;
        if cmd.is_empty() {
            return Err(Status::invalid_argument("no command given"));
        }
        let config = ExecConfig {
            cmd: Some(cmd),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            ..Default::default()
        };
        let exec = self.engine.exec_create(&c.id, config).map_err(status)?;
        let prepared = self.engine.exec_prepare(&exec).map_err(status)?;
        let stream = self.engine.exec_launch(prepared).await.map_err(status)?;
        let mut out = Output::default();
        let read = read_frames(stream, &mut out);
        match timeout {
            Some(t) => {
                if tokio::time::timeout(t, read).await.is_err() {
                    self.kill_exec(&exec).await;
                    return Err(Status::deadline_exceeded(format!(
                        "command timed out after {t:?}"
                    )));
                }
            }
            None => read.await,
        }
        out.exit_code = exit_code(&self.engine, &exec).await?;
        Ok(out)
    }

    /// Kills an exec's process (a timeout).
    async fn kill_exec(&self, exec: &str) {
        let pid = match self.engine.exec_inspect(exec).await {
            Ok(i) => i.pid.unwrap_or(0),
            Err(_) => 0,
        };
        let Ok(pid) = i32::try_from(pid) else { return };
        if pid > 0 {
            if let Err(e) = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            ) {
                tracing::warn!(exec, pid, error = %e, "killing an exec that timed out");
            }
        }
    }
}

/// The exit code of an exec whose output ended (the monitor may say it a moment later).
pub(crate) async fn exit_code(engine: &Engine, exec: &str) -> Result<i32, Status> {
    let deadline = tokio::time::Instant::now() + EXIT_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        let i = engine.exec_inspect(exec).await.map_err(status)?;
        if i.running != Some(true) {
            if let Some(code) = i.exit_code {
                return Ok(i32::try_from(code).unwrap_or(-1));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Status::internal("the exec's exit code did not come"));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Reads stdcopy frames from the monitor until the end, keeping at most [`MAX_OUTPUT`] bytes
/// per stream.
async fn read_frames(mut stream: impl tokio::io::AsyncRead + Unpin, out: &mut Output) {
    let mut buf = vec![0u8; 32 << 10];
    loop {
        let mut head = [0u8; 8];
        if stream.read_exact(&mut head).await.is_err() {
            return;
        }
        let mut left = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let sink = match head[0] {
            2 => &mut out.stderr,
            _ => &mut out.stdout,
        };
        while left > 0 {
            let want = left.min(buf.len());
            let Some(chunk) = buf.get_mut(..want) else {
                return;
            };
            match stream.read(chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let room = MAX_OUTPUT.saturating_sub(sink.len()).min(n);
                    sink.extend_from_slice(buf.get(..room).unwrap_or_default());
                    left -= n;
                }
            }
        }
    }
}
