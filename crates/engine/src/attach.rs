//! Attach: a client's stream joined to the container's monitor. The docker CLI attaches
//! *before* it starts the container, when there is no monitor yet: such attaches wait here and
//! are connected by `start` once the monitor exists, before the process runs, so no output is
//! lost.

use berth_monitor::protocol::Op;
use tokio::io::BufReader;
use tokio::net::UnixStream;
use tokio::sync::oneshot;

use crate::error::Result;
use crate::{monitor, Engine};

/// A connection to a monitor, after its one-line answer: the container's stream.
pub type MonitorStream = BufReader<UnixStream>;

/// Which streams to attach.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttachOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// An attach now, or once the container starts.
#[derive(Debug)]
pub enum Attached {
    Now(MonitorStream),
    AtStart(oneshot::Receiver<MonitorStream>),
}

#[derive(Debug)]
pub(crate) struct Pending {
    opts: AttachOptions,
    tx: oneshot::Sender<MonitorStream>,
}

fn request(o: AttachOptions) -> Op {
    Op::Attach {
        stdin: o.stdin,
        stdout: o.stdout,
        stderr: o.stderr,
        logs: false,
    }
}

impl Engine {
    /// `POST /containers/{id}/attach`; also says whether the container has a tty (raw stream)
    /// or not (stdcopy frames).
    pub async fn attach(&self, key: &str, opts: AttachOptions) -> Result<(bool, Attached)> {
        let c = self.containers.get(key)?;
        if c.is_running() {
            let sock = monitor::socket(&self.run_dir(&c.id));
            let (_, stream) = monitor::open(&sock, request(opts)).await?;
            return Ok((c.tty(), Attached::Now(stream)));
        }
        let (tx, rx) = oneshot::channel();
        self.pending_attaches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(c.id.clone())
            .or_default()
            .push(Pending { opts, tx });
        Ok((c.tty(), Attached::AtStart(rx)))
    }

    /// Connects the attaches waiting for container `id` to its new monitor.
    pub(crate) async fn connect_pending_attaches(&self, id: &str) {
        let pending = self
            .pending_attaches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id)
            .unwrap_or_default();
        let sock = monitor::socket(&self.run_dir(id));
        for p in pending {
            if p.tx.is_closed() {
                continue;
            }
            match monitor::open(&sock, request(p.opts)).await {
                Ok((_, stream)) => {
                    let _ = p.tx.send(stream);
                }
                Err(e) => tracing::warn!(container = %id, error = %e, "attach at start"),
            }
        }
    }

    /// `POST /containers/{id}/resize?h=&w=`.
    pub async fn resize(&self, key: &str, height: u32, width: u32) -> Result<()> {
        let c = self.containers.get(key)?;
        if !c.is_running() {
            return Err(crate::EngineError::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let sock = monitor::socket(&self.run_dir(&c.id));
        monitor::call::<monitor::Reply>(&sock, resize(None, height, width)).await?;
        Ok(())
    }
}

/// A resize request; sizes beyond a terminal's 65535 are clamped.
pub(crate) fn resize(exec_id: Option<String>, height: u32, width: u32) -> Op {
    let clamp = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
    Op::Resize {
        height: clamp(height),
        width: clamp(width),
        exec_id,
    }
}
