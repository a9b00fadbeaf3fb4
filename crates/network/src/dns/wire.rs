//! DNS messages (RFC 1035), as far as the embedded server needs them: the header, one
//! question (names read with compression pointers), and responses with A and PTR answers.
//!
//! Written by hand: the server reads one question and writes a handful of records, and the
//! full DNS crates would add far more code than this file to the daemon.
//!
//! Every read is bounds-checked; a compression pointer must point before the part of the name
//! it was found in, so names cannot loop, and a name may not exceed 255 bytes.

use std::net::Ipv4Addr;

use super::DnsError;

/// The length of a DNS header.
pub(crate) const HEADER_LEN: usize = 12;
/// The largest UDP message without EDNS (RFC 1035 4.2.1).
pub(crate) const MAX_UDP: usize = 512;
/// The largest message over TCP (2-byte length prefix).
pub(crate) const MAX_TCP: usize = u16::MAX as usize;

pub(crate) const TYPE_A: u16 = 1;
pub(crate) const TYPE_PTR: u16 = 12;
pub(crate) const TYPE_AAAA: u16 = 28;
pub(crate) const TYPE_ANY: u16 = 255;
pub(crate) const CLASS_IN: u16 = 1;

pub(crate) const RCODE_FORMERR: u8 = 1;
pub(crate) const RCODE_SERVFAIL: u8 = 2;
pub(crate) const RCODE_NOTIMP: u8 = 4;
pub(crate) const RCODE_REFUSED: u8 = 5;

/// The TTL of the engine's own answers, as Docker's.
pub(crate) const TTL: u32 = 600;

const MAX_NAME: usize = 255;
const MAX_LABEL: usize = 63;
const MAX_HOPS: usize = 64;

const FLAG_QR: u16 = 0x8000;
const MASK_OPCODE: u16 = 0x7800;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;

/// A message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

fn be16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

impl Header {
    /// The header at the start of `buf`, if there are 12 bytes.
    pub fn parse(buf: &[u8]) -> Option<Header> {
        Some(Header {
            id: be16(buf, 0)?,
            flags: be16(buf, 2)?,
            qdcount: be16(buf, 4)?,
            ancount: be16(buf, 6)?,
            nscount: be16(buf, 8)?,
            arcount: be16(buf, 10)?,
        })
    }

    pub fn is_response(&self) -> bool {
        self.flags & FLAG_QR != 0
    }

    pub fn opcode(&self) -> u8 {
        ((self.flags & MASK_OPCODE) >> 11) as u8
    }

    #[cfg(test)]
    pub fn truncated(&self) -> bool {
        self.flags & FLAG_TC != 0
    }

    pub fn rcode(&self) -> u8 {
        (self.flags & 0x000f) as u8
    }
}

/// The question of a query. `name` is in wire form, uncompressed, ending with the root label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Question {
    pub name: Vec<u8>,
    pub qtype: u16,
    pub qclass: u16,
}

impl Question {
    /// The labels of the name, in order.
    pub fn labels(&self) -> Labels<'_> {
        Labels {
            name: &self.name,
            at: 0,
        }
    }

    /// The name in lowercase dotted form without the trailing dot, or `None` when it is the
    /// root or a label holds a byte that cannot be in a host name (such as `.` or a space).
    pub fn text(&self) -> Option<String> {
        let mut text = String::with_capacity(self.name.len());
        for label in self.labels() {
            if !label.iter().all(|b| b.is_ascii_graphic() && *b != b'.') {
                return None;
            }
            if !text.is_empty() {
                text.push('.');
            }
            text.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
        }
        (!text.is_empty()).then_some(text)
    }
}

/// The labels of a wire-form name.
pub(crate) struct Labels<'a> {
    name: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(*self.name.get(self.at)?);
        if len == 0 {
            return None;
        }
        let label = self.name.get(self.at + 1..self.at + 1 + len)?;
        self.at += 1 + len;
        Some(label)
    }
}

/// Reads the name at `start` of `message`, following compression pointers. Returns the name in
/// uncompressed wire form and the offset just after the name where it started.
pub(crate) fn read_name(message: &[u8], start: usize) -> Result<(Vec<u8>, usize), DnsError> {
    const TRUNCATED: DnsError = DnsError::Malformed("name runs past the end of the message");
    let mut name = Vec::new();
    let mut pos = start;
    // Where the current stretch of labels began; a pointer must point before it.
    let mut segment = start;
    let mut end = None;
    let mut hops = 0;
    loop {
        let len = *message.get(pos).ok_or(TRUNCATED)?;
        match len & 0xc0 {
            0x00 => {
                let len = usize::from(len);
                if len == 0 {
                    name.push(0);
                    return Ok((name, end.unwrap_or(pos + 1)));
                }
                let label = message
                    .get(pos + 1..pos + 1 + len)
                    .ok_or(DnsError::Malformed(
                        "label runs past the end of the message",
                    ))?;
                if name.len() + 1 + len + 1 > MAX_NAME {
                    return Err(DnsError::Malformed("name longer than 255 bytes"));
                }
                name.push(len as u8);
                name.extend_from_slice(label);
                pos += 1 + len;
            }
            0xc0 => {
                let low = *message.get(pos + 1).ok_or(TRUNCATED)?;
                let target = usize::from(len & 0x3f) << 8 | usize::from(low);
                if target >= segment {
                    return Err(DnsError::Malformed(
                        "compression pointer does not point back",
                    ));
                }
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(DnsError::Malformed("too many compression pointers"));
                }
                end.get_or_insert(pos + 2);
                segment = target;
                pos = target;
            }
            _ => return Err(DnsError::Malformed("unknown label type")),
        }
    }
}

/// The header and the single question of a query.
pub(crate) fn parse_query(message: &[u8]) -> Result<(Header, Question), DnsError> {
    let header = Header::parse(message).ok_or(DnsError::Malformed("shorter than a DNS header"))?;
    if header.qdcount != 1 {
        return Err(DnsError::Malformed("not exactly one question"));
    }
    let (name, end) = read_name(message, HEADER_LEN)?;
    let (Some(qtype), Some(qclass)) = (be16(message, end), be16(message, end + 2)) else {
        return Err(DnsError::Malformed(
            "question runs past the end of the message",
        ));
    };
    Ok((
        header,
        Question {
            name,
            qtype,
            qclass,
        },
    ))
}

/// `text` (dotted, an optional trailing dot) in uncompressed wire form, if it is a valid name.
pub(crate) fn encode_name(text: &str) -> Option<Vec<u8>> {
    let text = text.strip_suffix('.').unwrap_or(text);
    let mut name = Vec::with_capacity(text.len() + 2);
    if !text.is_empty() {
        for label in text.split('.') {
            if label.is_empty() || label.len() > MAX_LABEL {
                return None;
            }
            name.push(label.len() as u8);
            name.extend_from_slice(label.as_bytes());
        }
    }
    name.push(0);
    (name.len() <= MAX_NAME).then_some(name)
}

/// The data of an answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rdata {
    A(Ipv4Addr),
    Aaaa(std::net::Ipv6Addr),
    /// A name in uncompressed wire form.
    Ptr(Vec<u8>),
}

/// What a response says besides its question and answers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reply {
    pub rcode: u8,
    /// Whether the server answers from its own data (AA).
    pub authoritative: bool,
    /// The largest message to build; answers that do not fit are left out and TC is set.
    pub max_len: usize,
}

/// A response to the query with `header` (id, opcode and RD are echoed; RA is set). The
/// question is echoed as asked; every answer is about the question's name.
pub(crate) fn response(
    header: &Header,
    question: Option<&Question>,
    answers: &[Rdata],
    reply: Reply,
) -> Vec<u8> {
    let mut flags = FLAG_QR | (header.flags & (MASK_OPCODE | FLAG_RD)) | FLAG_RA;
    flags |= u16::from(reply.rcode & 0x0f);
    if reply.authoritative {
        flags |= FLAG_AA;
    }
    let mut out = Vec::with_capacity(MAX_UDP);
    out.extend_from_slice(&header.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&u16::from(question.is_some()).to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    let Some(question) = question else {
        return out;
    };
    out.extend_from_slice(&question.name);
    out.extend_from_slice(&question.qtype.to_be_bytes());
    out.extend_from_slice(&question.qclass.to_be_bytes());
    let mut count: u16 = 0;
    for answer in answers {
        let (rtype, rdata): (u16, &[u8]) = match answer {
            Rdata::A(ip) => (TYPE_A, &ip.octets()),
            Rdata::Aaaa(ip) => (TYPE_AAAA, &ip.octets()),
            Rdata::Ptr(name) => (TYPE_PTR, name),
        };
        // A pointer to the question's name, type, class, TTL, length, data.
        let len = 2 + 2 + 2 + 4 + 2 + rdata.len();
        if out.len() + len > reply.max_len || count == u16::MAX {
            flags |= FLAG_TC;
            out[2..4].copy_from_slice(&flags.to_be_bytes());
            break;
        }
        out.extend_from_slice(&[0xc0, HEADER_LEN as u8]);
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
        count += 1;
    }
    out[6..8].copy_from_slice(&count.to_be_bytes());
    out
}

#[cfg(test)]
#[path = "wire_tests.rs"]
pub(crate) mod tests;
