//! What the streaming server asks of the container engine: run a command in a container,
//! attach to one, forward a port of a pod sandbox. The CRI implements [`Backend`].

use async_trait::async_trait;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// A terminal size, as kubectl sends it on the resize stream (`{"Width":80,"Height":24}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// A container's standard streams on the client's side. With a TTY there is no stderr (the
/// terminal merges it into stdout). `stdin` ends when the client closes it; `stdout` and
/// `stderr` are closed by dropping them; `resize` ends with the session.
#[derive(Default)]
pub struct Streams {
    pub stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    pub stdout: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    pub stderr: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
}

/// A byte stream to a forwarded port.
pub trait PortStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> PortStream for T {}

/// Why the engine could not do what was asked; the text goes to the client.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// The engine side of the streaming server.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Runs `cmd` in the container; returns its exit code once it exited and its output was
    /// written.
    async fn exec(
        &self,
        container_id: &str,
        cmd: &[String],
        tty: bool,
        streams: Streams,
    ) -> Result<i32, BackendError>;

    /// Attaches to the container's main process until it exits or the client goes.
    async fn attach(
        &self,
        container_id: &str,
        tty: bool,
        streams: Streams,
    ) -> Result<(), BackendError>;

    /// Connects `stream` to `port` inside the pod sandbox's network namespace until either
    /// side closes.
    async fn port_forward(
        &self,
        pod_sandbox_id: &str,
        port: u16,
        stream: Box<dyn PortStream>,
    ) -> Result<(), BackendError>;
}
