//! WebSocket (RFC 6455), as far as `GET /containers/{id}/attach/ws` needs it: the handshake,
//! and a bridge between the upgraded connection and a local byte stream. Output goes out in
//! binary frames (API 1.42+: dockerd sent text frames before); the client's text, binary and
//! continuation frames are the container's stdin, its close ends stdin, pings are answered.
//! Frames from the client must be masked and at most [`MAX_FRAME`] long.

use base64::Engine as _;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// The longest frame accepted from a client.
pub const MAX_FRAME: u64 = 1 << 20;
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for the client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// One frame from the server (unmasked, final).
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A frame from the client.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// Why the client's frames end.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("a frame of {0} bytes is longer than the {MAX_FRAME} accepted")]
    TooLong(u64),
    #[error("a frame from the client is not masked")]
    Unmasked,
}

/// Reads one frame; `None` at the end of the connection.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, FrameError> {
    let mut head = [0u8; 2];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let opcode = head[0] & 0x0F;
    if head[1] & 0x80 == 0 {
        return Err(FrameError::Unmasked);
    }
    let len = match head[1] & 0x7F {
        126 => u64::from(r.read_u16().await?),
        127 => r.read_u64().await?,
        n => u64::from(n),
    };
    if len > MAX_FRAME {
        return Err(FrameError::TooLong(len));
    }
    let mut mask = [0u8; 4];
    r.read_exact(&mut mask).await?;
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Ok(Some(Frame { opcode, payload }))
}

/// Joins the upgraded connection `ws` to `local`: what `local` yields goes out in binary
/// frames, the client's data frames go into `local`. Ends when either side ends.
pub async fn bridge<W, L>(ws: W, local: L)
where
    W: AsyncRead + AsyncWrite + Send + 'static,
    L: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut ws_read, mut ws_write) = tokio::io::split(ws);
    let (mut local_read, mut local_write) = tokio::io::split(local);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            let close = bytes.first() == Some(&(0x80 | CLOSE));
            if ws_write.write_all(&bytes).await.is_err() || close {
                break;
            }
        }
        let _ = ws_write.shutdown().await;
    });
    let output = {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 << 10];
            loop {
                match local_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(frame(BINARY, &buf[..n])).await.is_err() {
                            return;
                        }
                    }
                }
            }
            // The stream ended: a normal closure.
            let _ = tx.send(frame(CLOSE, &1000u16.to_be_bytes())).await;
        })
    };
    loop {
        match read_frame(&mut ws_read).await {
            Ok(Some(f)) => match f.opcode {
                TEXT | BINARY | CONTINUATION => {
                    if local_write.write_all(&f.payload).await.is_err() {
                        break;
                    }
                }
                PING => {
                    let _ = tx.send(frame(PONG, &f.payload)).await;
                }
                PONG => {}
                _ => {
                    // A close (answered with one), or an opcode RFC 6455 does not define.
                    let _ = tx.send(frame(CLOSE, &1000u16.to_be_bytes())).await;
                    break;
                }
            },
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "websocket attach");
                let code: u16 = match e {
                    FrameError::TooLong(_) => 1009,
                    _ => 1002,
                };
                let _ = tx.send(frame(CLOSE, &code.to_be_bytes())).await;
                break;
            }
        }
    }
    // The client is done: the container's stdin ends (or the attach, with a tty).
    let _ = local_write.shutdown().await;
    drop(tx);
    let _ = output.await;
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_of_rfc_6455s_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frame_lengths() {
        assert_eq!(frame(BINARY, b"hi"), [0x82, 2, b'h', b'i']);
        let f = frame(BINARY, &[0u8; 300]);
        assert_eq!(&f[..4], &[0x82, 126, 1, 44]);
        let f = frame(BINARY, &[0u8; 70_000]);
        assert_eq!(&f[..2], &[0x82, 127]);
        assert_eq!(f.len(), 70_000 + 10);
    }

    fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![0x80 | opcode, 0x80 | payload.len() as u8];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[tokio::test]
    async fn client_frames_are_unmasked_and_bounded() {
        let data = masked(TEXT, b"echo hi\n");
        let f = read_frame(&mut &data[..]).await.unwrap().unwrap();
        assert_eq!(
            f,
            Frame {
                opcode: TEXT,
                payload: b"echo hi\n".to_vec()
            }
        );
        assert!(read_frame(&mut &[][..]).await.unwrap().is_none());
        let unmasked = [0x82u8, 1, b'x'];
        assert!(matches!(
            read_frame(&mut &unmasked[..]).await,
            Err(FrameError::Unmasked)
        ));
        let mut huge = vec![0x82u8, 0x80 | 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            read_frame(&mut &huge[..]).await,
            Err(FrameError::TooLong(_))
        ));
    }
}
