//! One exec or attach session once its transport is set up: the container's streams are
//! pipes pumped to and from the transport's channels, resize messages are parsed, and the
//! outcome goes out on the error channel (a JSON `Status` in protocol v4 and later, the bare
//! message before) before the transport closes.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::backend::{Streams, TerminalSize};

/// How long the output pumps may take to drain once the command is over.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes of one resize message kept while it is incomplete.
const MAX_RESIZE_MESSAGE: usize = 4096;

/// Where bytes for the client go.
#[async_trait]
pub(crate) trait Sink: Send + Sync {
    /// False once the client is gone.
    async fn send(&self, data: &[u8]) -> bool;
    /// Ends this direction (a SPDY FIN; nothing on WebSocket).
    async fn close(&self);
}

/// Where bytes from the client come from; `None` at its end.
#[async_trait]
pub(crate) trait Source: Send {
    async fn next(&mut self) -> Option<Bytes>;
}

#[async_trait]
impl Source for mpsc::Receiver<Bytes> {
    async fn next(&mut self) -> Option<Bytes> {
        self.recv().await
    }
}

/// The transport's channels of one session.
#[derive(Default)]
pub(crate) struct Channels {
    pub stdin: Option<Box<dyn Source>>,
    pub stdout: Option<Box<dyn Sink>>,
    pub stderr: Option<Box<dyn Sink>>,
    pub error: Option<Box<dyn Sink>>,
    pub resize: Option<Box<dyn Source>>,
    /// Protocol v4 and later: the error channel carries a JSON `Status`.
    pub json_status: bool,
}

/// The time limits of a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// For a SPDY client to open the streams of a session or a port-forward pair.
    pub creation: Duration,
    /// With nothing read or written.
    pub idle: Duration,
}

/// How a session ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The command exited with this code.
    Exit(i32),
    /// An attach ended.
    Done,
    /// The engine failed.
    Failed(String),
}

#[derive(Serialize)]
struct Cause {
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    message: String,
}

#[derive(Serialize)]
struct Details {
    causes: Vec<Cause>,
}

#[derive(Serialize)]
struct Metadata {}

/// Kubernetes' `metav1.Status`, with the fields the streaming protocol uses.
#[derive(Serialize)]
struct Status {
    metadata: Metadata,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

/// What the error channel carries for an outcome, if anything.
pub(crate) fn status_bytes(outcome: &Outcome, cmd: &[String], json: bool) -> Option<Vec<u8>> {
    let status = match outcome {
        Outcome::Exit(0) | Outcome::Done => Status {
            metadata: Metadata {},
            status: "Success",
            message: None,
            reason: None,
            details: None,
            code: None,
        },
        Outcome::Exit(code) => Status {
            metadata: Metadata {},
            status: "Failure",
            message: Some(format!(
                "command terminated with non-zero exit code: error executing command {cmd:?}, exit code {code}"
            )),
            reason: Some("NonZeroExitCode"),
            details: Some(Details {
                causes: vec![Cause {
                    reason: Some("ExitCode"),
                    message: code.to_string(),
                }],
            }),
            code: None,
        },
        Outcome::Failed(err) => {
            let err = format!("error executing command in container: {err}");
            Status {
                metadata: Metadata {},
                status: "Failure",
                message: Some(format!("Internal error occurred: {err}")),
                reason: Some("InternalError"),
                details: Some(Details {
                    causes: vec![Cause {
                        reason: None,
                        message: err,
                    }],
                }),
                code: Some(500),
            }
        }
    };
    if json {
        serde_json::to_vec(&status).ok()
    } else {
        // Before v4 only failures are written, as their message.
        status.message.map(String::into_bytes)
    }
}

fn pump_in(mut source: Box<dyn Source>) -> (tokio::io::DuplexStream, JoinHandle<()>) {
    let (mut ours, theirs) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(async move {
        while let Some(chunk) = source.next().await {
            if ours.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = ours.shutdown().await;
    });
    (theirs, task)
}

fn pump_out(sink: Box<dyn Sink>) -> (tokio::io::DuplexStream, JoinHandle<()>) {
    let (mut ours, theirs) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match ours.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !sink.send(buf.get(..n).unwrap_or_default()).await {
                        break;
                    }
                }
            }
        }
        sink.close().await;
    });
    (theirs, task)
}

/// Parses the resize channel: JSON objects one after the other (kubectl ends each with a
/// newline, which the parser does not need).
fn pump_resize(mut source: Box<dyn Source>) -> (mpsc::Receiver<TerminalSize>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(8);
    let task = tokio::spawn(async move {
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = source.next().await {
            pending.extend_from_slice(&chunk);
            let mut stream =
                serde_json::Deserializer::from_slice(&pending).into_iter::<TerminalSize>();
            let mut consumed = 0;
            loop {
                match stream.next() {
                    Some(Ok(size)) => {
                        consumed = stream.byte_offset();
                        if tx.send(size).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    // Garbage ends the resize stream, as Go's decoder does.
                    Some(Err(_)) => return,
                    None => {
                        consumed = pending.len();
                        break;
                    }
                }
            }
            pending.drain(..consumed.min(pending.len()));
            if pending.len() > MAX_RESIZE_MESSAGE {
                return;
            }
        }
    });
    (rx, task)
}

/// Runs a session: `run` gets the container's streams; its outcome is reported on the error
/// channel once the output is drained.
pub(crate) async fn run<F, Fut>(channels: Channels, cmd: &[String], run: F)
where
    F: FnOnce(Streams) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let mut streams = Streams::default();
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    if let Some(source) = channels.stdin {
        let (pipe, task) = pump_in(source);
        streams.stdin = Some(Box::new(pipe));
        inputs.push(task);
    }
    if let Some(source) = channels.resize {
        let (rx, task) = pump_resize(source);
        streams.resize = Some(rx);
        inputs.push(task);
    }
    if let Some(sink) = channels.stdout {
        let (pipe, task) = pump_out(sink);
        streams.stdout = Some(Box::new(pipe));
        outputs.push(task);
    }
    if let Some(sink) = channels.stderr {
        let (pipe, task) = pump_out(sink);
        streams.stderr = Some(Box::new(pipe));
        outputs.push(task);
    }
    let outcome = run(streams).await;
    for task in outputs {
        let abort = task.abort_handle();
        if tokio::time::timeout(DRAIN_TIMEOUT, task).await.is_err() {
            abort.abort();
        }
    }
    for task in inputs {
        task.abort();
    }
    if let Some(error) = channels.error {
        if let Some(bytes) = status_bytes(&outcome, cmd, channels.json_status) {
            error.send(&bytes).await;
        }
        error.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_kubelets() {
        let ok = status_bytes(&Outcome::Exit(0), &[], true).unwrap();
        assert_eq!(ok, br#"{"metadata":{},"status":"Success"}"#);
        let failed = status_bytes(&Outcome::Exit(3), &["false".into()], true).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&failed).unwrap();
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        assert!(status_bytes(&Outcome::Exit(0), &[], false).is_none());
        let text = status_bytes(&Outcome::Exit(2), &[], false).unwrap();
        assert!(String::from_utf8(text).unwrap().contains("exit code 2"));
    }
}
