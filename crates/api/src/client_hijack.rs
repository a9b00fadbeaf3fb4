//! Hijacked connections (attach, exec): after the `101`, the connection is a raw full-duplex
//! byte stream, over whatever [`Stream`] it came on.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::client_conn::Stream;

/// The writing side of a hijacked connection: `shutdown` half-closes it.
pub type HijackWriter = tokio::io::WriteHalf<Stream>;

/// A hijacked connection: a raw full-duplex byte stream (bytes the HTTP layer had already
/// read come first).
pub struct Hijacked {
    pub(crate) stream: Stream,
    pub(crate) buffered: Vec<u8>,
}

impl Hijacked {
    /// Splits into a reader and a writer; dropping or shutting down the writer half-closes the
    /// connection (`shutdown(SHUT_WR)`), the reader keeps receiving.
    pub fn into_split(self) -> (HijackReader, HijackWriter) {
        let (r, w) = tokio::io::split(self.stream);
        (
            HijackReader {
                inner: r,
                buffered: self.buffered,
                pos: 0,
            },
            w,
        )
    }
}

/// The read side of a [`Hijacked`] connection.
pub struct HijackReader {
    inner: tokio::io::ReadHalf<Stream>,
    buffered: Vec<u8>,
    pos: usize,
}

impl AsyncRead for HijackReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.buffered.len() {
            let n = (self.buffered.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.buffered[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncRead for Hijacked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.buffered.is_empty() {
            let n = self.buffered.len().min(buf.remaining());
            buf.put_slice(&self.buffered[..n]);
            self.buffered.drain(..n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Hijacked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    /// Half-closes: shuts down the write side only.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
