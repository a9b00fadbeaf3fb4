//! Exec and attach sessions (Kubernetes' remotecommand protocol) over SPDY and WebSocket.
//!
//! SPDY: the client opens one stream per channel with a `streamtype` header (`error`,
//! `stdin`, `stdout`, `stderr`, `resize` from v3 on); the session starts once all expected
//! streams are there (error, plus each requested one, plus resize for a TTY), or is dropped
//! after the stream creation timeout. WebSocket: channels 0 stdin, 1 stdout, 2 stderr,
//! 3 error, 4 resize, and an empty message on the first output channel once connected.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;

use crate::backend::Streams;
use crate::session::{self, Channels, Outcome, Sink, Source, Timeouts};
use crate::spdy::conn::{self, StreamReader, StreamWriter};
use crate::ws::{Framing, WsConn};

/// SPDY protocol versions, most preferred first (`X-Stream-Protocol-Version`).
pub const SPDY_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// WebSocket subprotocols (`Sec-WebSocket-Protocol`); a client naming none gets plain
/// `channel.k8s.io` framing.
pub const WS_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];

/// The streams a session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Options {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

#[async_trait]
impl Sink for StreamWriter {
    async fn send(&self, data: &[u8]) -> bool {
        self.write(data).await.is_ok()
    }

    async fn close(&self) {
        let _ = self.finish().await;
    }
}

#[async_trait]
impl Source for StreamReader {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            match self.read().await {
                Some(b) if b.is_empty() => continue,
                other => return other,
            }
        }
    }
}

/// Serves a session over SPDY on an upgraded connection.
pub(crate) async fn serve_spdy<IO, F, Fut>(
    io: IO,
    protocol: &str,
    opts: Options,
    timeouts: Timeouts,
    cmd: &[String],
    run: F,
) where
    IO: AsyncRead + AsyncWrite + Send + 'static,
    F: FnOnce(Streams) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let json_status = matches!(protocol, "v5.channel.k8s.io" | "v4.channel.k8s.io");
    let resizable = json_status || protocol == "v3.channel.k8s.io";
    let (spdy, mut incoming) = conn::start(io, timeouts.idle);
    let expected = 1
        + usize::from(opts.stdin)
        + usize::from(opts.stdout)
        + usize::from(opts.stderr)
        + usize::from(opts.tty && resizable);
    let mut channels = Channels {
        json_status,
        ..Channels::default()
    };
    let mut received = 0;
    let deadline = tokio::time::sleep(timeouts.creation);
    tokio::pin!(deadline);
    while received < expected {
        let stream = tokio::select! {
            s = incoming.recv() => s,
            _ = &mut deadline => {
                tracing::debug!("timed out waiting for client to create streams");
                None
            }
        };
        let Some(stream) = stream else {
            spdy.close().await;
            return;
        };
        let kind = stream.header("streamtype").unwrap_or_default().to_string();
        // Like spdystream, every stream is answered; unknown ones are not counted.
        let Ok((reader, writer)) = stream.accept().await else {
            spdy.close().await;
            return;
        };
        match kind.as_str() {
            "error" => channels.error = Some(Box::new(writer)),
            // Protocol v1 closes stdin at once.
            "stdin" if protocol == "channel.k8s.io" => {}
            "stdin" => channels.stdin = Some(Box::new(reader)),
            "stdout" => channels.stdout = Some(Box::new(writer)),
            "stderr" => channels.stderr = Some(Box::new(writer)),
            "resize" if resizable => channels.resize = Some(Box::new(reader)),
            other => {
                tracing::debug!("unexpected stream type {other:?}");
                continue;
            }
        }
        received += 1;
    }
    session::run(channels, cmd, run).await;
    spdy.close().await;
}

/// Serves a session over WebSocket.
pub(crate) async fn serve_ws<IO, F, Fut>(
    ws: WebSocketStream<IO>,
    protocol: &str,
    opts: Options,
    idle: Duration,
    cmd: &[String],
    run: F,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    F: FnOnce(Streams) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let framing = Framing {
        base64: protocol.contains("base64"),
        v5: protocol == "v5.channel.k8s.io",
    };
    let json_status = protocol.starts_with("v4.") || protocol.starts_with("v5.");
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(16);
    let (resize_tx, resize_rx) = mpsc::channel::<Bytes>(4);
    let inputs = vec![
        opts.stdin.then_some(stdin_tx),
        None,
        None,
        None,
        Some(resize_tx),
    ];
    let conn = WsConn::start(ws, framing, inputs, idle);
    // The first writable channel gets an empty message: the client knows it is connected.
    let first = if opts.stdout {
        1
    } else if opts.stderr {
        2
    } else {
        3
    };
    if !conn.sink(first).send(&[]).await {
        conn.finish().await;
        return;
    }
    let channels = Channels {
        stdin: opts.stdin.then(|| Box::new(stdin_rx) as Box<dyn Source>),
        stdout: opts.stdout.then(|| Box::new(conn.sink(1)) as Box<dyn Sink>),
        stderr: opts.stderr.then(|| Box::new(conn.sink(2)) as Box<dyn Sink>),
        error: Some(Box::new(conn.sink(3))),
        resize: opts.tty.then(|| Box::new(resize_rx) as Box<dyn Source>),
        json_status,
    };
    session::run(channels, cmd, run).await;
    conn.finish().await;
}
