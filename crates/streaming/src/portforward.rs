//! Port forwarding (Kubernetes' `portforward.k8s.io`) over SPDY and WebSocket.
//!
//! SPDY: each forwarded connection is a pair of client streams with the headers
//! `streamtype` (`data` or `error`), `port` and `requestid`; once both are there the data
//! stream is connected to the port, and a failure is reported on the error stream as JSON
//! `{"closeConnection":true,"message":"..."}`. WebSocket: the ports come from the request;
//! port `i` has the data channel `2i` and the error channel `2i+1`, and the server's first
//! message on each carries the port (2 bytes, little endian).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;

use crate::backend::Backend;
use crate::session::{Sink, Source, Timeouts};
use crate::spdy::conn::{self, StreamReader, StreamWriter};
use crate::ws::{Framing, WsConn};

/// The SPDY protocol (`X-Stream-Protocol-Version`).
pub const SPDY_PROTOCOLS: &[&str] = &["portforward.k8s.io"];
/// WebSocket subprotocols; a client naming none gets binary framing.
pub const WS_PROTOCOLS: &[&str] = &["v4.channel.k8s.io", "v4.base64.channel.k8s.io"];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrResponse {
    close_connection: bool,
    message: String,
}

/// Copies between the client's channels and the port until both directions end.
async fn forward(
    backend: Arc<dyn Backend>,
    sandbox: String,
    port: u16,
    mut source: Box<dyn Source>,
    sink: Box<dyn Sink>,
) -> Result<(), String> {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut rd, mut wr) = tokio::io::split(ours);
    let inbound = async move {
        while let Some(chunk) = source.next().await {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let outbound = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !sink.send(buf.get(..n).unwrap_or_default()).await {
                        break;
                    }
                }
            }
        }
        sink.close().await;
    };
    let inbound = tokio::spawn(inbound);
    let outbound = tokio::spawn(outbound);
    let result = backend
        .port_forward(&sandbox, port, Box::new(theirs))
        .await
        .map_err(|e| format!("error forwarding port {port} to pod {sandbox}, uid : {e}"));
    let _ = outbound.await;
    inbound.abort();
    result
}

struct Pair {
    created: Instant,
    port: u16,
    data: Option<(StreamReader, StreamWriter)>,
    error: Option<StreamWriter>,
}

fn request_id(id: u32, kind: &str, given: Option<&str>) -> String {
    match given {
        Some(r) if !r.is_empty() => r.to_string(),
        // Old clients: the error stream's id names the pair, the data stream follows it.
        _ if kind == "error" => id.to_string(),
        _ => id.saturating_sub(2).to_string(),
    }
}

/// Serves port forwarding over SPDY until the client closes the connection.
pub(crate) async fn serve_spdy<IO>(
    io: IO,
    backend: Arc<dyn Backend>,
    sandbox: String,
    timeouts: Timeouts,
) where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (spdy, mut incoming) = conn::start(io, timeouts.idle);
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let stream = tokio::select! {
            s = incoming.recv() => match s {
                Some(s) => s,
                None => break,
            },
            _ = tick.tick() => {
                let expired: Vec<String> = pairs
                    .iter()
                    .filter(|(_, p)| p.created.elapsed() > timeouts.creation)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in expired {
                    if let Some(Pair { error: Some(err), .. }) = pairs.remove(&key) {
                        let msg = format!("timed out waiting for streams of request {key}");
                        let _ = err.write(msg.as_bytes()).await;
                        let _ = err.finish().await;
                    }
                }
                continue;
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let port = stream
            .header("port")
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p > 0);
        let kind = stream.header("streamtype").unwrap_or_default().to_string();
        let (Some(port), "data" | "error") = (port, kind.as_str()) else {
            stream.refuse().await;
            continue;
        };
        let key = request_id(stream.id, &kind, stream.header("requestid"));
        let Ok((reader, writer)) = stream.accept().await else {
            break;
        };
        let pair = pairs.entry(key.clone()).or_insert_with(|| Pair {
            created: Instant::now(),
            port,
            data: None,
            error: None,
        });
        let dup = if kind == "data" {
            pair.data.replace((reader, writer.clone())).is_some()
        } else {
            pair.error.replace(writer.clone()).is_some()
        };
        if dup {
            let msg = format!(
                "error processing stream for request {key}: {kind} stream already assigned"
            );
            let _ = writer.write(msg.as_bytes()).await;
            continue;
        }
        if pair.data.is_some() && pair.error.is_some() {
            if let Some(Pair {
                port,
                data: Some((reader, data_writer)),
                error: Some(error),
                ..
            }) = pairs.remove(&key)
            {
                let backend = backend.clone();
                let sandbox = sandbox.clone();
                tasks.spawn(async move {
                    let data = data_writer.clone();
                    let result = forward(
                        backend,
                        sandbox,
                        port,
                        Box::new(reader),
                        Box::new(data_writer),
                    )
                    .await;
                    // The client may never half-close a data stream whose port closed.
                    data.release();
                    if let Err(message) = result {
                        let mut body = serde_json::to_vec(&ErrResponse {
                            close_connection: true,
                            message,
                        })
                        .unwrap_or_default();
                        body.push(b'\n');
                        let _ = error.write(&body).await;
                    }
                    let _ = error.finish().await;
                    error.release();
                });
            }
        }
    }
    tasks.abort_all();
    spdy.close().await;
}

/// Serves port forwarding of `ports` over WebSocket.
pub(crate) async fn serve_ws<IO>(
    ws: WebSocketStream<IO>,
    protocol: &str,
    backend: Arc<dyn Backend>,
    sandbox: String,
    ports: Vec<u16>,
    idle: Duration,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let framing = Framing {
        base64: protocol.contains("base64"),
        v5: false,
    };
    let mut inputs = Vec::new();
    let mut receivers = Vec::new();
    for _ in &ports {
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        inputs.push(Some(tx));
        inputs.push(None);
        receivers.push(rx);
    }
    let conn = WsConn::start(ws, framing, inputs, idle);
    let mut tasks = JoinSet::new();
    for (i, (port, rx)) in ports.iter().zip(receivers).enumerate() {
        let (data, error) = (conn.sink((2 * i) as u8), conn.sink((2 * i + 1) as u8));
        let le = port.to_le_bytes();
        if !data.send(&le).await || !error.send(&le).await {
            break;
        }
        let (backend, sandbox, port) = (backend.clone(), sandbox.clone(), *port);
        tasks.spawn(async move {
            if let Err(message) =
                forward(backend, sandbox, port, Box::new(rx), Box::new(data)).await
            {
                error.send(message.as_bytes()).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    conn.finish().await;
}
