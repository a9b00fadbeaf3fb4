//! Attached I/O for run/start/attach/exec: pumping a hijacked connection to and from the
//! terminal, tty resize, signal proxying and reading the wait status.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Result};
use berth_api::client::{encode_query, BodyStream, Client, HijackReader, HijackWriter};
use hyper::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::status;

/// Copies a container's output to stdout/stderr: raw with a tty, else demultiplexed.
pub(super) async fn pump_output(mut reader: HijackReader, tty: bool) -> std::io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    if tty {
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            let mut out = std::io::stdout().lock();
            out.write_all(&buf[..n])?;
            out.flush()?;
        }
    }
    let mut demux = Demux::default();
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        demux.feed(&buf[..n])?;
    }
}

/// Splits stdcopy frames arriving in arbitrary pieces.
#[derive(Default)]
pub(super) struct Demux {
    pending: Vec<u8>,
}

impl Demux {
    pub(super) fn feed(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.pending.extend_from_slice(data);
        loop {
            if self.pending.len() < 8 {
                return Ok(());
            }
            let len = u32::from_be_bytes([
                self.pending[4],
                self.pending[5],
                self.pending[6],
                self.pending[7],
            ]) as usize;
            if self.pending.len() < 8 + len {
                return Ok(());
            }
            let payload = &self.pending[8..8 + len];
            match self.pending[0] {
                2 | 3 => {
                    let mut e = std::io::stderr().lock();
                    e.write_all(payload)?;
                    e.flush()?;
                }
                _ => {
                    let mut o = std::io::stdout().lock();
                    o.write_all(payload)?;
                    o.flush()?;
                }
            }
            self.pending.drain(..8 + len);
        }
    }
}

/// Copies local stdin into the hijacked connection, then half-closes it. With a tty, ctrl-p
/// ctrl-q detaches (returns true).
/// Stdin copied to the container by a task of its own; `detached` is set (before the
/// connection is half-closed) when the user typed the detach keys.
pub(super) struct Input {
    task: tokio::task::JoinHandle<bool>,
    detached: Arc<AtomicBool>,
}

impl Input {
    pub(super) fn spawn(writer: HijackWriter, tty: bool) -> Input {
        let detached = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&detached);
        let task = tokio::spawn(async move { pump_input(writer, tty, &flag).await });
        Input { task, detached }
    }
}

async fn pump_input(mut writer: HijackWriter, tty: bool, detached: &AtomicBool) -> bool {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 8192];
    let mut saw_ctrl_p = false;
    loop {
        let n = match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        if tty {
            let mut out = Vec::with_capacity(n);
            for &b in chunk {
                if saw_ctrl_p {
                    saw_ctrl_p = false;
                    if b == 0x11 {
                        let _ = writer.write_all(&out).await;
                        detached.store(true, Ordering::SeqCst);
                        return true;
                    }
                    out.push(0x10);
                }
                if b == 0x10 {
                    saw_ctrl_p = true;
                    continue;
                }
                out.push(b);
            }
            if writer.write_all(&out).await.is_err() {
                return false;
            }
            continue;
        }
        while !chunk.is_empty() {
            match writer.write(chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(w) => chunk = &chunk[w..],
            }
        }
    }
    let _ = writer.shutdown().await;
    false
}

async fn resize(client: &Client, path: &str) {
    if let Some((h, w)) = crate::term::size() {
        let q = encode_query(&[("h", h.to_string()), ("w", w.to_string())]);
        let _ = client.call(Method::POST, path, &q).await;
    }
}

/// Sends the size after start and on every SIGWINCH.
pub(super) fn watch_resize(client: Client, path: String) {
    tokio::spawn(async move {
        resize(&client, &path).await;
        if let Ok(mut sig) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        {
            while sig.recv().await.is_some() {
                resize(&client, &path).await;
            }
        }
    });
}

/// Forwards the signals a user sends to the CLI to the container (docker's `--sig-proxy`).
pub(super) fn proxy_signals(client: Client, id: String) {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        (SignalKind::interrupt(), "INT"),
        (SignalKind::terminate(), "TERM"),
        (SignalKind::hangup(), "HUP"),
        (SignalKind::quit(), "QUIT"),
        (SignalKind::user_defined1(), "USR1"),
        (SignalKind::user_defined2(), "USR2"),
    ];
    for (kind, name) in kinds {
        let Ok(mut sig) = signal(kind) else {
            continue;
        };
        let client = client.clone();
        let id = id.clone();
        tokio::spawn(async move {
            while sig.recv().await.is_some() {
                let _ = client
                    .call(
                        Method::POST,
                        &format!("/containers/{id}/kill"),
                        &encode_query(&[("signal", name)]),
                    )
                    .await;
            }
        });
    }
}

/// docker's check: `-i -t` needs a terminal on stdin.
pub(super) fn check_tty(interactive: bool, tty: bool) -> Result<()> {
    if interactive && tty && !std::io::stdin().is_terminal() {
        return Err(status(1, "the input device is not a TTY".to_string()));
    }
    Ok(())
}

pub(super) struct Attached {
    pub(super) output: tokio::task::JoinHandle<std::io::Result<()>>,
    pub(super) input: Option<Input>,
    pub(super) _raw: Option<crate::term::RawMode>,
}

/// Attaches to a container (the hijack), before it starts.
pub(super) async fn attach_streams(
    client: &Client,
    id: &str,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> Result<Attached> {
    let mut q = vec![("stream", "1")];
    if stdin {
        q.push(("stdin", "1"));
    }
    if stdout {
        q.push(("stdout", "1"));
    }
    if stderr {
        q.push(("stderr", "1"));
    }
    let hj = client
        .hijack(
            &format!("/containers/{id}/attach"),
            &encode_query(&q),
            None::<&()>,
        )
        .await?;
    let (reader, mut writer) = hj.into_split();
    let raw = if tty && stdin && std::io::stdin().is_terminal() {
        Some(crate::term::RawMode::enable()?)
    } else {
        None
    };
    let input = if stdin {
        Some(Input::spawn(writer, tty))
    } else {
        let _ = writer.shutdown().await;
        None
    };
    let output = tokio::spawn(pump_output(reader, tty));
    Ok(Attached {
        output,
        input,
        _raw: raw,
    })
}

impl Attached {
    /// Until the output ends (or the user detaches); true if detached.
    pub(super) async fn finish(mut self) -> bool {
        let detached = match self.input.take() {
            Some(Input {
                task: mut input,
                detached,
            }) => {
                let mut output = self.output;
                tokio::select! {
                    d = &mut input => {
                        if matches!(d, Ok(true)) {
                            true
                        } else {
                            let _ = output.await;
                            false
                        }
                    }
                    // A detach ends the output too (the input's half-close tells the daemon,
                    // which ends it): whichever is seen first, the flag, set before the
                    // half-close, says it was a detach.
                    _ = &mut output => detached.load(Ordering::SeqCst),
                }
            }
            None => {
                let _ = self.output.await;
                false
            }
        };
        drop(self._raw.take());
        detached
    }
}

pub(super) async fn wait_status(resp: hyper::Response<hyper::body::Incoming>) -> Result<i32> {
    let mut s = BodyStream::new(resp);
    let v: Option<Value> = s.next_json().await?;
    let v = v.unwrap_or(Value::Null);
    if let Some(msg) = v
        .get("Error")
        .and_then(|e| e.get("Message"))
        .and_then(Value::as_str)
    {
        if !msg.is_empty() {
            bail!("{msg}");
        }
    }
    Ok(v.get("StatusCode").and_then(Value::as_i64).unwrap_or(0) as i32)
}
