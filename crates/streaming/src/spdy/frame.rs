//! SPDY/3.1 frames: the 8-byte headers of control frames (`1 | version 3 | type`, flags,
//! 24-bit length) and data frames (`0 | stream id`, flags, 24-bit length), their bodies, and a
//! [`Decoder`] / [`Encoder`] pair holding each direction's header compression.
//!
//! The decoder reads bytes from the network: it refuses a frame whose announced length passes
//! its bound before buffering it, checks every body's size against its type, and never panics.

use bytes::{Buf, Bytes, BytesMut};

use super::headers::{decode_block, encode_block, Deflater, Header, HeaderError, Inflater};

pub const VERSION: u16 = 3;

pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const SETTINGS: u16 = 4;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;
pub const HEADERS: u16 = 8;
pub const WINDOW_UPDATE: u16 = 9;

/// FIN on DATA, SYN_STREAM, SYN_REPLY and HEADERS.
pub const FLAG_FIN: u8 = 0x01;
/// UNIDIRECTIONAL on SYN_STREAM.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// RST_STREAM status codes.
pub const PROTOCOL_ERROR: u32 = 1;
pub const INVALID_STREAM: u32 = 2;
pub const REFUSED_STREAM: u32 = 3;
pub const CANCEL: u32 = 5;
pub const INTERNAL_ERROR: u32 = 6;
pub const FLOW_CONTROL_ERROR: u32 = 7;

/// GOAWAY status codes.
pub const GOAWAY_OK: u32 = 0;
pub const GOAWAY_PROTOCOL_ERROR: u32 = 1;

/// SETTINGS id of the initial stream window.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;

/// The largest DATA payload accepted.
pub const MAX_DATA_LEN: usize = 4 << 20;
/// The largest control frame body accepted (header blocks are tiny in this protocol).
pub const MAX_CONTROL_LEN: usize = 64 * 1024;
/// The most entries in a SETTINGS frame.
pub const MAX_SETTINGS: usize = 64;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated: u32,
        priority: u8,
        flags: u8,
        headers: Vec<Header>,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Vec<Header>,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    /// Entries are (flags, id, value).
    Settings {
        flags: u8,
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Vec<Header>,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame of a type this codec does not know (ignored, as the spec says).
    Unknown {
        kind: u16,
    },
}

/// Why the frames of a connection cannot be read on.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("frame of {len} bytes is over the {max} byte bound")]
    TooLong { len: usize, max: usize },
    #[error("{kind} frame has a bad length {len}")]
    BadLength { kind: &'static str, len: usize },
    #[error("stream id 0 on a frame that needs one")]
    ZeroStream,
    #[error("SETTINGS with {0} entries")]
    TooManySettings(usize),
    #[error(transparent)]
    Header(#[from] HeaderError),
}

fn be32(b: &[u8]) -> u32 {
    match b {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

/// Reads frames from a buffer, inflating header blocks on the peer's compression stream.
#[derive(Default)]
pub struct Decoder {
    inflate: Inflater,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next frame in `buf` (consumed from it), `None` until a whole frame is there.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let head = [
            buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7],
        ];
        let control = head[0] & 0x80 != 0;
        let flags = head[4];
        let len = (usize::from(head[5]) << 16) | (usize::from(head[6]) << 8) | usize::from(head[7]);
        let max = if control {
            MAX_CONTROL_LEN
        } else {
            MAX_DATA_LEN
        };
        if len > max {
            return Err(FrameError::TooLong { len, max });
        }
        if control {
            let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
            if version != VERSION {
                return Err(FrameError::Version(version));
            }
        }
        if buf.len() < 8 + len {
            buf.reserve(8 + len - buf.len());
            return Ok(None);
        }
        buf.advance(8);
        let body = buf.split_to(len).freeze();
        if !control {
            let stream_id = be32(&head) & 0x7fff_ffff;
            if stream_id == 0 {
                return Err(FrameError::ZeroStream);
            }
            return Ok(Some(Frame::Data {
                stream_id,
                flags,
                data: body,
            }));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        self.control(kind, flags, &body).map(Some)
    }

    fn control(&mut self, kind: u16, flags: u8, b: &[u8]) -> Result<Frame, FrameError> {
        let bad = |name| FrameError::BadLength {
            kind: name,
            len: b.len(),
        };
        let id = |b: &[u8]| be32(b) & 0x7fff_ffff;
        Ok(match kind {
            SYN_STREAM => {
                if b.len() < 10 {
                    return Err(bad("SYN_STREAM"));
                }
                let stream_id = id(b);
                if stream_id == 0 {
                    return Err(FrameError::ZeroStream);
                }
                let headers = self.headers(&b[10..])?;
                Frame::SynStream {
                    stream_id,
                    associated: id(&b[4..]),
                    priority: b[8] >> 5,
                    flags,
                    headers,
                }
            }
            SYN_REPLY | HEADERS => {
                if b.len() < 4 {
                    return Err(bad(if kind == SYN_REPLY {
                        "SYN_REPLY"
                    } else {
                        "HEADERS"
                    }));
                }
                let stream_id = id(b);
                if stream_id == 0 {
                    return Err(FrameError::ZeroStream);
                }
                let headers = self.headers(&b[4..])?;
                if kind == SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        flags,
                        headers,
                    }
                }
            }
            RST_STREAM => {
                if b.len() != 8 {
                    return Err(bad("RST_STREAM"));
                }
                Frame::RstStream {
                    stream_id: id(b),
                    status: be32(&b[4..]),
                }
            }
            SETTINGS => {
                if b.len() < 4 {
                    return Err(bad("SETTINGS"));
                }
                let n = be32(b) as usize;
                if n > MAX_SETTINGS {
                    return Err(FrameError::TooManySettings(n));
                }
                if b.len() != 4 + 8 * n {
                    return Err(bad("SETTINGS"));
                }
                let entries = b[4..]
                    .chunks_exact(8)
                    .map(|e| (e[0], be32(e) & 0x00ff_ffff, be32(&e[4..])))
                    .collect();
                Frame::Settings { flags, entries }
            }
            PING => {
                if b.len() != 4 {
                    return Err(bad("PING"));
                }
                Frame::Ping { id: be32(b) }
            }
            GOAWAY => {
                // SPDY/3 adds the status; accept the 4-byte SPDY/2 form too.
                if b.len() != 8 && b.len() != 4 {
                    return Err(bad("GOAWAY"));
                }
                Frame::GoAway {
                    last_good: id(b),
                    status: if b.len() == 8 { be32(&b[4..]) } else { 0 },
                }
            }
            WINDOW_UPDATE => {
                if b.len() != 8 {
                    return Err(bad("WINDOW_UPDATE"));
                }
                Frame::WindowUpdate {
                    stream_id: id(b),
                    delta: be32(&b[4..]) & 0x7fff_ffff,
                }
            }
            other => Frame::Unknown { kind: other },
        })
    }

    fn headers(&mut self, compressed: &[u8]) -> Result<Vec<Header>, FrameError> {
        let block = self.inflate.decompress(compressed)?;
        Ok(decode_block(&block)?)
    }
}

/// Writes frames, deflating header blocks on this side's compression stream.
#[derive(Default)]
pub struct Encoder {
    deflate: Deflater,
}

fn control_head(out: &mut Vec<u8>, kind: u16, flags: u8, len: usize) {
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the frame's bytes to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<(), FrameError> {
        match frame {
            Frame::SynStream {
                stream_id,
                associated,
                priority,
                flags,
                headers,
            } => {
                let z = self.deflate.compress(&encode_block(headers))?;
                control_head(out, SYN_STREAM, *flags, 10 + z.len());
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&(associated & 0x7fff_ffff).to_be_bytes());
                out.push((priority & 0x07) << 5);
                out.push(0);
                out.extend_from_slice(&z);
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            }
            | Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                let kind = if matches!(frame, Frame::SynReply { .. }) {
                    SYN_REPLY
                } else {
                    HEADERS
                };
                let z = self.deflate.compress(&encode_block(headers))?;
                control_head(out, kind, *flags, 4 + z.len());
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&z);
            }
            Frame::RstStream { stream_id, status } => {
                control_head(out, RST_STREAM, 0, 8);
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&status.to_be_bytes());
            }
            Frame::Settings { flags, entries } => {
                control_head(out, SETTINGS, *flags, 4 + 8 * entries.len());
                out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
                for (f, id, value) in entries {
                    out.push(*f);
                    out.extend_from_slice(&id.to_be_bytes()[1..]);
                    out.extend_from_slice(&value.to_be_bytes());
                }
            }
            Frame::Ping { id } => {
                control_head(out, PING, 0, 4);
                out.extend_from_slice(&id.to_be_bytes());
            }
            Frame::GoAway { last_good, status } => {
                control_head(out, GOAWAY, 0, 8);
                out.extend_from_slice(&(last_good & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&status.to_be_bytes());
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control_head(out, WINDOW_UPDATE, 0, 8);
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                if data.len() > 0x00ff_ffff {
                    return Err(FrameError::TooLong {
                        len: data.len(),
                        max: 0x00ff_ffff,
                    });
                }
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.push(*flags);
                out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                out.extend_from_slice(data);
            }
            Frame::Unknown { .. } => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frames: &[Frame]) {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        let mut wire = Vec::new();
        for f in frames {
            enc.encode(f, &mut wire).unwrap();
        }
        let mut buf = BytesMut::from(&wire[..]);
        for f in frames {
            assert_eq!(dec.decode(&mut buf).unwrap().as_ref(), Some(f));
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn every_frame_round_trips() {
        let h = |v: &str| vec![("streamtype".to_string(), v.to_string())];
        round_trip(&[
            Frame::SynStream {
                stream_id: 1,
                associated: 0,
                priority: 3,
                flags: FLAG_FIN,
                headers: h("error"),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: vec![],
            },
            Frame::Headers {
                stream_id: 3,
                flags: FLAG_FIN,
                headers: h("x"),
            },
            Frame::RstStream {
                stream_id: 5,
                status: CANCEL,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![(0, SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20)],
            },
            Frame::Ping { id: 7 },
            Frame::GoAway {
                last_good: 9,
                status: GOAWAY_OK,
            },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 4096,
            },
            Frame::Data {
                stream_id: 1,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hello"),
            },
        ]);
    }

    #[test]
    fn partial_input_waits() {
        let mut wire = Vec::new();
        Encoder::new()
            .encode(&Frame::Ping { id: 1 }, &mut wire)
            .unwrap();
        let mut dec = Decoder::new();
        let mut buf = BytesMut::from(&wire[..5]);
        assert!(dec.decode(&mut buf).unwrap().is_none());
        buf.extend_from_slice(&wire[5..]);
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(Frame::Ping { id: 1 }));
    }

    #[test]
    fn hostile_headers_are_errors() {
        let mut dec = Decoder::new();
        // A data frame announcing 16 MiB - 1.
        let mut buf = BytesMut::from(&[0, 0, 0, 1, 0, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            dec.decode(&mut buf),
            Err(FrameError::TooLong { .. })
        ));
        // SPDY/2.
        let mut buf = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(matches!(dec.decode(&mut buf), Err(FrameError::Version(2))));
        // A PING of 3 bytes, a SYN_STREAM too short, a stream-0 DATA.
        for bad in [
            &[0x80, 3, 0, 6, 0, 0, 0, 3, 0, 0, 0][..],
            &[0x80, 3, 0, 1, 0, 0, 0, 2, 0, 0][..],
            &[0, 0, 0, 0, 0, 0, 0, 0][..],
        ] {
            let mut buf = BytesMut::from(bad);
            assert!(Decoder::new().decode(&mut buf).is_err());
        }
    }
}
