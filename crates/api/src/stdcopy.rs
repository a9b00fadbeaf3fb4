//! Docker's stream multiplexing ("stdcopy"): without a tty, attach, logs and exec carry stdout
//! and stderr on one byte stream as frames, each an 8-byte header (the stream: 1 stdout,
//! 2 stderr, 3 system error; three zero bytes; the payload size as a big-endian u32) and the
//! payload.

use std::io::{self, Read};

/// Which stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
    /// Error text from the daemon (API ≥ 1.42).
    System = 3,
}

impl Stream {
    fn from_byte(b: u8) -> Option<Stream> {
        match b {
            0 => Some(Stream::Stdin),
            1 => Some(Stream::Stdout),
            2 => Some(Stream::Stderr),
            3 => Some(Stream::System),
            _ => None,
        }
    }
}

/// The header of a frame of `len` payload bytes on `stream`.
pub fn header(stream: Stream, len: usize) -> [u8; 8] {
    let size = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [stream as u8, 0, 0, 0, size[0], size[1], size[2], size[3]]
}

/// One frame (header and payload) as bytes. Payloads over 4 GiB do not occur: callers frame
/// what one read returned.
pub fn frame(stream: Stream, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&header(stream, payload.len()));
    out.extend_from_slice(payload);
    out
}

/// Reads the next frame from `r`; `None` at a clean end of stream (between frames).
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(Stream, Vec<u8>)>> {
    let mut head = [0u8; 8];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..])? {
            0 if got == 0 => return Ok(None),
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream ended inside a frame header",
                ))
            }
            n => got += n,
        }
    }
    let stream = Stream::from_byte(head[0]).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown stream {} in a frame header", head[0]),
        )
    })?;
    let len = u64::from(u32::from_be_bytes([head[4], head[5], head[6], head[7]]));
    // The header's size is the sender's word (up to 4 GiB): the buffer grows with what
    // actually arrives, never allocated from the header alone.
    let mut payload = Vec::new();
    r.take(len).read_to_end(&mut payload)?;
    if payload.len() as u64 != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "stream ended inside a frame",
        ));
    }
    Ok(Some((stream, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_as_written() {
        assert_eq!(frame(Stream::Stdout, b"hi\n"), b"\x01\0\0\0\0\0\0\x03hi\n");
        let mut bytes = frame(Stream::Stderr, b"err\n");
        bytes.extend(frame(Stream::Stdout, b""));
        let mut r = bytes.as_slice();
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((Stream::Stderr, b"err\n".to_vec()))
        );
        assert_eq!(read_frame(&mut r).unwrap(), Some((Stream::Stdout, vec![])));
        assert_eq!(read_frame(&mut r).unwrap(), None);
        let mut cut = &b"\x01\0\0"[..];
        assert!(read_frame(&mut cut).is_err());
    }

    #[test]
    fn a_huge_declared_size_allocates_nothing_it_does_not_read() {
        // 4 GiB announced, 3 bytes sent: an error, not a 4 GiB buffer.
        let mut r = &b"\x01\0\0\0\xff\xff\xff\xffabc"[..];
        let e = read_frame(&mut r).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
