//! HTTP/1.1 by hand, for the fixtures: messages read and written, bodies relayed (optionally
//! paced or cut short), and a small client.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::IO_TIMEOUT;

// --- HTTP/1.1 messages -----------------------------------------------------------------------

/// The start line and headers of an HTTP/1.1 request or response.
#[derive(Debug, Clone)]
pub(super) struct Head {
    pub(super) start: String,
    pub(super) headers: Vec<(String, String)>,
}

impl Head {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    pub(super) fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// How the body that follows this head ends.
    pub(super) fn framing(&self) -> io::Result<Framing> {
        if self.has_token("transfer-encoding", "chunked") {
            return Ok(Framing::Chunked);
        }
        match self.header("content-length") {
            Some(n) => n
                .trim()
                .parse()
                .map(Framing::Length)
                .map_err(|_| invalid(format!("bad Content-Length {n:?}"))),
            None => Ok(Framing::Close),
        }
    }

    pub(super) fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut text = format!("{}\r\n", self.start);
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        out.write_all(text.as_bytes())
    }
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Length(u64),
    Chunked,
    /// Until the connection closes (responses only; a request without either header has none).
    Close,
}

pub(super) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub(super) fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads one line (without its CRLF), at most 64 KiB; `None` at a clean end of stream.
pub(super) fn read_line(from: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let n = from.take(64 * 1024).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(invalid("line too long or cut short".into()));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| invalid("header is not UTF-8".into()))
}

/// Reads a message head; `None` if the peer closed the connection before sending one.
pub(super) fn read_head(from: &mut impl BufRead) -> io::Result<Option<Head>> {
    let start = match read_line(from)? {
        Some(line) if !line.is_empty() => line,
        Some(_) => return Err(invalid("empty start line".into())),
        None => return Ok(None),
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(from)?.ok_or_else(|| invalid("headers cut short".into()))?;
        if line.is_empty() {
            return Ok(Some(Head { start, headers }));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
}

/// Limits on the copy of one body: stop (and report it) after `limit` bytes, send at most
/// `bytes_per_sec` on average, give up when `stop` is set.
#[derive(Clone, Copy, Default)]
pub(super) struct Pace<'a> {
    pub(super) limit: Option<u64>,
    pub(super) bytes_per_sec: Option<u64>,
    pub(super) stop: Option<&'a AtomicBool>,
}

/// What copying a body did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Copied {
    All,
    /// The `limit` of the [`Pace`] was reached first.
    Cut,
}

/// Copies a body framed by `framing` from `from` to `to`, keeping chunked encoding chunked.
pub(super) fn copy_body(
    from: &mut impl BufRead,
    to: &mut impl Write,
    framing: Framing,
    pace: Pace<'_>,
) -> io::Result<Copied> {
    let mut sent = 0u64;
    let started = Instant::now();
    // copy N bytes (all of them if N is None), minding the pace; Ok(false) once the limit is hit
    let mut copy =
        |from: &mut dyn BufRead, to: &mut dyn Write, n: Option<u64>| -> io::Result<bool> {
            let mut left = n;
            let mut buf = vec![0u8; 64 * 1024];
            while left != Some(0) {
                let mut want = left.unwrap_or(u64::MAX).min(buf.len() as u64);
                if let Some(rate) = pace.bytes_per_sec {
                    want = want.min((rate / 20).max(1));
                    let due = Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                if let Some(limit) = pace.limit {
                    if sent >= limit {
                        return Ok(false);
                    }
                    want = want.min(limit - sent);
                }
                if pace.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                    return Err(io::Error::other("proxy stopped"));
                }
                let want = usize::try_from(want).unwrap_or(buf.len());
                let got = from.read(&mut buf[..want])?;
                if got == 0 {
                    if left.is_none() {
                        return Ok(true);
                    }
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                to.write_all(&buf[..got])?;
                sent += got as u64;
                left = left.map(|l| l - got as u64);
            }
            Ok(true)
        };
    let done = match framing {
        Framing::Length(n) => copy(from, to, Some(n))?,
        Framing::Close => copy(from, to, None)?,
        Framing::Chunked => loop {
            let line = read_line(from)?.ok_or(io::ErrorKind::UnexpectedEof)?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
            write!(to, "{size:x}\r\n")?;
            if size == 0 {
                // trailers, up to the empty line
                loop {
                    let trailer = read_line(from)?.ok_or(io::ErrorKind::UnexpectedEof)?;
                    write!(to, "{trailer}\r\n")?;
                    if trailer.is_empty() {
                        break;
                    }
                }
                break true;
            }
            if !copy(from, to, Some(size))? {
                break false;
            }
            let _ = read_line(from)?; // the CRLF after the data
            to.write_all(b"\r\n")?;
        },
    };
    to.flush()?;
    Ok(if done { Copied::All } else { Copied::Cut })
}

// --- client ----------------------------------------------------------------------------------

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, in order, as sent.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// Sends one HTTP/1.1 request to `host` (`IP:PORT`) on a new connection and reads the whole
/// response. `target` is a path with its query, or an absolute `http://` URL (as in `Location`
/// headers), whose host then replaces `host`. A `Content-Length` is sent whenever `body` is not
/// empty or the method is PUT, POST or PATCH.
pub fn request(
    host: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let (host, path) = match target.strip_prefix("http://") {
        Some(rest) => match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        },
        None => (host, target),
    };
    let stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Head {
        start: format!("{method} {path} HTTP/1.1"),
        headers: vec![
            ("Host".into(), host.into()),
            ("Connection".into(), "close".into()),
        ],
    };
    head.headers
        .extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    if !body.is_empty() || matches!(method, "PUT" | "POST" | "PATCH") {
        head.headers
            .push(("Content-Length".into(), body.len().to_string()));
    }
    let mut out = io::BufWriter::new(&stream);
    head.write_to(&mut out)?;
    out.write_all(body)?;
    out.flush()?;
    drop(out);
    let mut from = BufReader::new(&stream);
    let head = loop {
        let head = read_head(&mut from)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        if !head
            .start
            .split(' ')
            .nth(1)
            .is_some_and(|s| s.starts_with('1'))
        {
            break head;
        }
    };
    let status = head
        .start
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {:?}", head.start)))?;
    let mut body = Vec::new();
    if method != "HEAD" && !matches!(status, 204 | 304) {
        copy_body(&mut from, &mut body, head.framing()?, Pace::default())?;
        if head.framing()? == Framing::Chunked {
            body = dechunk(&body)?;
        }
    }
    Ok(Response {
        status,
        headers: head.headers,
        body,
    })
}

/// Decodes a chunked body (as `copy_body` writes it).
pub(super) fn dechunk(mut data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let mut line = String::new();
        data.read_line(&mut line)?; // advances `data`
        let size = usize::from_str_radix(line.trim(), 16)
            .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = data
            .get(..size)
            .ok_or_else(|| invalid("chunk cut short".into()))?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

/// The value of an `Authorization` header for HTTP Basic authentication.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// Standard base64 with padding.
pub(super) fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
