//! Kubernetes' channel protocol over WebSocket (`channel.k8s.io` and its versions): every
//! message starts with a channel number (for the base64 variants an ASCII digit, the rest
//! base64 in a text message). In `v5.channel.k8s.io` the message `[255, n]` closes the
//! client's side of channel `n` (stdin's end of file).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::session::Sink;

/// The close message of `v5.channel.k8s.io`.
const CLOSE_CHANNEL: u8 = 255;

/// Bounds on what a client may send.
pub(crate) fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(4 << 20))
        .max_frame_size(Some(1 << 20))
}

/// How the channels are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Framing {
    pub base64: bool,
    pub v5: bool,
}

fn encode(framing: Framing, ch: u8, data: &[u8]) -> Message {
    if framing.base64 {
        let mut text = String::with_capacity(1 + data.len() * 4 / 3 + 4);
        text.push(char::from(b'0'.wrapping_add(ch)));
        base64::engine::general_purpose::STANDARD.encode_string(data, &mut text);
        Message::text(text)
    } else {
        let mut frame = Vec::with_capacity(data.len() + 1);
        frame.push(ch);
        frame.extend_from_slice(data);
        Message::binary(frame)
    }
}

/// One output channel.
pub(crate) struct WsSink {
    ch: u8,
    framing: Framing,
    out: mpsc::Sender<Message>,
}

#[async_trait]
impl Sink for WsSink {
    async fn send(&self, data: &[u8]) -> bool {
        self.out
            .send(encode(self.framing, self.ch, data))
            .await
            .is_ok()
    }

    async fn close(&self) {}
}

/// A running connection: a reader routing the client's messages to input channels and a
/// writer sending the output channels' messages.
pub(crate) struct WsConn {
    framing: Framing,
    out: mpsc::Sender<Message>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl WsConn {
    /// Starts the connection; `inputs[n]` receives what the client sends on channel `n`.
    /// Nothing read or written for `idle` closes it.
    pub(crate) fn start<IO>(
        ws: WebSocketStream<IO>,
        framing: Framing,
        inputs: Vec<Option<mpsc::Sender<Bytes>>>,
        idle: Duration,
    ) -> Self
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (mut sink, mut stream) = ws.split();
        let (out, mut rx) = mpsc::channel::<Message>(64);
        let started = Instant::now();
        let last_write = Arc::new(AtomicU64::new(0));
        let wrote = last_write.clone();
        let writer = tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                if sink.send(msg).await.is_err() {
                    return;
                }
                let ms = started.elapsed().as_millis().min(u128::from(u64::MAX)) as u64;
                wrote.store(ms, Ordering::Relaxed);
            }
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                })))
                .await;
            let _ = sink.close().await;
        });
        let closer = out.downgrade();
        let reader = tokio::spawn(async move {
            let mut inputs = inputs;
            let mut last_read = Instant::now();
            loop {
                let msg = match tokio::time::timeout(idle, stream.next()).await {
                    Ok(Some(Ok(msg))) => {
                        last_read = Instant::now();
                        msg
                    }
                    Ok(_) => break,
                    Err(_) => {
                        let wrote = Duration::from_millis(last_write.load(Ordering::Relaxed));
                        if last_read.max(started + wrote).elapsed() < idle {
                            continue;
                        }
                        tracing::debug!("WebSocket connection idle for {idle:?}");
                        if let Some(out) = closer.upgrade() {
                            let _ = out.try_send(Message::Close(Some(CloseFrame {
                                code: CloseCode::Away,
                                reason: "idle".into(),
                            })));
                        }
                        break;
                    }
                };
                let (ch, payload) = match msg {
                    Message::Binary(b) if !framing.base64 => match b.split_first() {
                        Some((ch, rest)) => (*ch, Bytes::copy_from_slice(rest)),
                        None => continue,
                    },
                    Message::Text(t) if framing.base64 => {
                        let t = t.as_bytes();
                        let Some((ch, rest)) = t.split_first() else {
                            continue;
                        };
                        match base64::engine::general_purpose::STANDARD.decode(rest) {
                            Ok(data) => (ch.wrapping_sub(b'0'), Bytes::from(data)),
                            Err(_) => continue,
                        }
                    }
                    Message::Close(_) => break,
                    _ => continue,
                };
                if framing.v5 && ch == CLOSE_CHANNEL {
                    if let Some(slot) = payload
                        .first()
                        .and_then(|n| inputs.get_mut(usize::from(*n)))
                    {
                        *slot = None;
                    }
                    continue;
                }
                // Messages for channels the client may not write are dropped, as kubelet does.
                if let Some(slot) = inputs.get_mut(usize::from(ch)) {
                    if let Some(tx) = slot {
                        if payload.is_empty() {
                            continue;
                        }
                        if tx.send(payload).await.is_err() {
                            *slot = None;
                        }
                    }
                }
            }
        });
        Self {
            framing,
            out,
            reader,
            writer,
        }
    }

    /// An output channel.
    pub(crate) fn sink(&self, ch: u8) -> WsSink {
        WsSink {
            ch,
            framing: self.framing,
            out: self.out.clone(),
        }
    }

    /// Closes once every sink is dropped and their messages are sent.
    pub(crate) async fn finish(self) {
        drop(self.out);
        let mut writer = self.writer;
        if tokio::time::timeout(Duration::from_secs(10), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
        let mut reader = self.reader;
        if tokio::time::timeout(Duration::from_secs(2), &mut reader)
            .await
            .is_err()
        {
            reader.abort();
        }
    }
}
