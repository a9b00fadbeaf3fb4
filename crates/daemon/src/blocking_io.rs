//! Bridges between hyper's async bodies and the blocking code of the image store and the
//! archive code: a [`BodyWriter`] feeds a streamed response from a blocking thread, a
//! [`BodyReader`] reads a request body from one.

use std::io::{self, Read, Write};

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::mpsc;

/// A blocking writer that sends 64 KiB chunks into a streamed body.
pub struct BodyWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl BodyWriter {
    pub fn new(tx: mpsc::Sender<Bytes>) -> BodyWriter {
        BodyWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

/// A request body as a blocking reader: a task forwards its data frames.
pub struct BodyReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl BodyReader {
    /// Reads `body` (none: an empty body) as it arrives, 16 chunks ahead at most.
    pub fn spawn(body: crate::http::ReqBody) -> BodyReader {
        let (tx, rx) = mpsc::channel(16);
        let Some(mut body) = body.into_stream() else {
            return BodyReader {
                rx,
                cur: Bytes::new(),
            };
        };
        tokio::spawn(async move {
            while let Some(frame) = body.frame().await {
                let item = match frame {
                    Ok(f) => match f.into_data() {
                        Ok(d) => Ok(d),
                        Err(_) => continue,
                    },
                    Err(e) => Err(io::Error::other(e)),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        BodyReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl BodyReader {
    /// Reads and drops what is left of the body, up to `limit` bytes (a client sending more
    /// gets its connection closed, as before).
    pub fn drain(&mut self, limit: u64) {
        let _ = io::copy(&mut Read::take(&mut *self, limit), &mut io::sink());
    }
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}
