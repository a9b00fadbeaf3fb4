//! Test fixtures: a fake engine, and a SPDY/3.1 client written apart from the crate's codec
//! (frames assembled by hand, header blocks compressed with flate2 and the dictionary below).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_streaming::{Backend, BackendError, Config, PortStream, Server, Streams, TerminalSize};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every wait in the tests.
pub const WAIT: Duration = Duration::from_secs(20);

/// The fake engine. `exec` commands: `echo CODE` copies stdin to stdout, writes `err\n` to
/// stderr and exits with CODE; `big N` writes N bytes of `x`; `tty` reports each resize on
/// stdout until stdin ends. `attach` echoes. Port forwards answer `port N\n` then echo.
#[derive(Default)]
pub struct Fake {
    pub resizes: Mutex<Vec<TerminalSize>>,
    pub execs: Mutex<Vec<Vec<String>>>,
}

async fn echo(streams: &mut Streams) {
    if let (Some(stdin), Some(stdout)) = (streams.stdin.as_mut(), streams.stdout.as_mut()) {
        let _ = tokio::io::copy(stdin, stdout).await;
    }
}

#[async_trait]
impl Backend for Fake {
    async fn exec(
        &self,
        _id: &str,
        cmd: &[String],
        _tty: bool,
        mut streams: Streams,
    ) -> Result<i32, BackendError> {
        self.execs.lock().unwrap().push(cmd.to_vec());
        match cmd.first().map(String::as_str) {
            Some("echo") => {
                echo(&mut streams).await;
                if let Some(err) = streams.stderr.as_mut() {
                    err.write_all(b"err\n").await.unwrap();
                }
                Ok(cmd.get(1).and_then(|c| c.parse().ok()).unwrap_or(0))
            }
            Some("big") => {
                let n: usize = cmd[1].parse().unwrap();
                let out = streams.stdout.as_mut().unwrap();
                out.write_all(&vec![b'x'; n]).await.unwrap();
                Ok(0)
            }
            Some("tty") => {
                let mut resize = streams.resize.take().unwrap();
                let mut stdin = streams.stdin.take().unwrap();
                let mut out = streams.stdout.take().unwrap();
                let mut buf = [0u8; 64];
                loop {
                    tokio::select! {
                        size = resize.recv() => {
                            let Some(size) = size else { break };
                            self.resizes.lock().unwrap().push(size);
                            out.write_all(format!("{}x{}\n", size.width, size.height).as_bytes()).await.unwrap();
                        }
                        n = stdin.read(&mut buf) => if n.unwrap_or(0) == 0 { break },
                    }
                }
                Ok(0)
            }
            Some("fail") => Err(BackendError("no such container".into())),
            _ => Ok(127),
        }
    }

    async fn attach(
        &self,
        _id: &str,
        _tty: bool,
        mut streams: Streams,
    ) -> Result<(), BackendError> {
        echo(&mut streams).await;
        Ok(())
    }

    async fn port_forward(
        &self,
        _sandbox: &str,
        port: u16,
        mut stream: Box<dyn PortStream>,
    ) -> Result<(), BackendError> {
        if port == 1 {
            return Err(BackendError("connection refused".into()));
        }
        stream
            .write_all(format!("port {port}\n").as_bytes())
            .await
            .unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = stream.shutdown().await;
        Ok(())
    }
}

pub async fn server(config: Config) -> (Server, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let server = Server::bind(config, fake.clone()).await.unwrap();
    (server, fake)
}

/// `/kind/token` of a URL from the server.
pub fn path_of(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    rest[rest.find('/').unwrap()..].to_string()
}

/// Sends a raw HTTP/1.1 request; returns the status, the response head and the stream.
pub async fn http_upgrade(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, TcpStream) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, s.read(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "connection closed in the response head: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head, s)
}

/// The SPDY/3 dictionary, written out as the spec gives it (not taken from the crate).
pub const DICT: &[u8] = b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00\x00\x00\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset\x00\x00\x00\x0faccept-encoding\x00\x00\x00\x0faccept-language\x00\x00\x00\raccept-ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\rauthorization\x00\x00\x00\rcache-control\x00\x00\x00\nconnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10content-encoding\x00\x00\x00\x10content-language\x00\x00\x00\x0econtent-length\x00\x00\x00\x10content-location\x00\x00\x00\x0bcontent-md5\x00\x00\x00\rcontent-range\x00\x00\x00\x0ccontent-type\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect\x00\x00\x00\x07expires\x00\x00\x00\x04from\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modified-since\x00\x00\x00\rif-none-match\x00\x00\x00\x08if-range\x00\x00\x00\x13if-unmodified-since\x00\x00\x00\rlast-modified\x00\x00\x00\x08location\x00\x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-authorization\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretry-after\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07trailer\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgrade\x00\x00\x00\nuser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate\x00\x00\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06200 OK\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\nset-cookie\x00\x00\x00\nkeep-alive\x00\x00\x00\x06origin100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

/// A name/value block, uncompressed.
pub fn nv_block(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = (headers.len() as u32).to_be_bytes().to_vec();
    for (k, v) in headers {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

pub fn parse_nv(mut b: &[u8]) -> Vec<(String, String)> {
    let u32_ = |b: &mut &[u8]| {
        let v = u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
        *b = &b[4..];
        v
    };
    let n = u32_(&mut b);
    let mut out = Vec::new();
    for _ in 0..n {
        let l = u32_(&mut b);
        let k = String::from_utf8(b[..l].to_vec()).unwrap();
        b = &b[l..];
        let l = u32_(&mut b);
        let v = String::from_utf8(b[..l].to_vec()).unwrap();
        b = &b[l..];
        out.push((k, v));
    }
    out
}

/// One direction's compressor, independent of the crate.
pub struct Zout(Compress, bool);
impl Default for Zout {
    fn default() -> Self {
        Zout(Compress::new(Compression::best(), true), false)
    }
}
impl Zout {
    pub fn compress(&mut self, block: &[u8]) -> Vec<u8> {
        if !self.1 {
            self.0.set_dictionary(DICT).unwrap();
            self.1 = true;
        }
        let mut out = Vec::with_capacity(block.len() + 256);
        self.0
            .compress_vec(block, &mut out, FlushCompress::Sync)
            .unwrap();
        assert!(out.len() < out.capacity());
        out
    }
}

pub struct Zin(Decompress);
impl Default for Zin {
    fn default() -> Self {
        Zin(Decompress::new(true))
    }
}
impl Zin {
    pub fn decompress(&mut self, mut input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 * 1024);
        loop {
            let before = self.0.total_in();
            match self
                .0
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    input = &input[(self.0.total_in() - before) as usize..];
                    self.0.set_dictionary(DICT).unwrap();
                    continue;
                }
                Err(e) => panic!("inflate: {e}"),
            }
            input = &input[(self.0.total_in() - before) as usize..];
            if input.is_empty() {
                return out;
            }
        }
    }
}

/// A frame as the test client sees it.
#[derive(Debug)]
pub enum In {
    Control { kind: u16, flags: u8, body: Vec<u8> },
    Data { id: u32, flags: u8, data: Vec<u8> },
}

pub fn control(kind: u16, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80, 3, (kind >> 8) as u8, kind as u8, flags];
    f.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(body);
    f
}

pub fn data_frame(id: u32, fin: bool, data: &[u8]) -> Vec<u8> {
    let mut f = id.to_be_bytes().to_vec();
    f.push(u8::from(fin));
    f.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(data);
    f
}

/// A SPDY client on an upgraded connection.
pub struct Spdy {
    pub s: TcpStream,
    zout: Zout,
    zin: Zin,
}

impl Spdy {
    pub fn new(s: TcpStream) -> Self {
        Self {
            s,
            zout: Zout::default(),
            zin: Zin::default(),
        }
    }

    pub async fn syn_stream(&mut self, id: u32, headers: &[(&str, &str)], fin: bool) {
        let z = self.zout.compress(&nv_block(headers));
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        body.extend_from_slice(&z);
        let f = control(1, u8::from(fin), &body);
        self.s.write_all(&f).await.unwrap();
    }

    pub async fn data(&mut self, id: u32, data: &[u8], fin: bool) {
        self.s.write_all(&data_frame(id, fin, data)).await.unwrap();
    }

    /// The next frame; `None` at the end of the connection.
    pub async fn read(&mut self) -> Option<In> {
        let mut head = [0u8; 8];
        match tokio::time::timeout(WAIT, self.s.read_exact(&mut head))
            .await
            .expect("frame in time")
        {
            Ok(_) => {}
            Err(_) => return None,
        }
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        let mut body = vec![0u8; len];
        tokio::time::timeout(WAIT, self.s.read_exact(&mut body))
            .await
            .unwrap()
            .ok()?;
        if head[0] & 0x80 != 0 {
            assert_eq!(
                u16::from_be_bytes([head[0] & 0x7f, head[1]]),
                3,
                "SPDY version"
            );
            Some(In::Control {
                kind: u16::from_be_bytes([head[2], head[3]]),
                flags: head[4],
                body,
            })
        } else {
            Some(In::Data {
                id: u32::from_be_bytes(head[..4].try_into().unwrap()),
                flags: head[4],
                data: body,
            })
        }
    }

    /// Decompresses a SYN_REPLY's or HEADERS' header block.
    pub fn headers(&mut self, body: &[u8]) -> Vec<(String, String)> {
        parse_nv(&self.zin.decompress(&body[4..]))
    }
}

/// What a session sent back, per stream id, until the connection ended.
#[derive(Debug, Default)]
pub struct Collected {
    pub data: std::collections::HashMap<u32, Vec<u8>>,
    pub fin: std::collections::HashSet<u32>,
    pub replies: Vec<u32>,
    pub resets: Vec<(u32, u32)>,
    pub goaway: bool,
    pub window_updates: usize,
}

impl Spdy {
    /// Reads until `done` says so or the connection ends.
    pub async fn collect_until(&mut self, c: &mut Collected, done: impl Fn(&Collected) -> bool) {
        while !done(c) {
            let Some(frame) = self.read().await else {
                return;
            };
            match frame {
                In::Data { id, flags, data } => {
                    c.data.entry(id).or_default().extend_from_slice(&data);
                    if flags & 1 != 0 {
                        c.fin.insert(id);
                    }
                }
                In::Control { kind: 2, body, .. } => {
                    let _ = self.headers(&body);
                    c.replies
                        .push(u32::from_be_bytes(body[..4].try_into().unwrap()));
                }
                In::Control { kind: 3, body, .. } => c.resets.push((
                    u32::from_be_bytes(body[..4].try_into().unwrap()),
                    u32::from_be_bytes(body[4..8].try_into().unwrap()),
                )),
                In::Control { kind: 7, .. } => {
                    c.goaway = true;
                }
                In::Control { kind: 9, .. } => c.window_updates += 1,
                In::Control { .. } => {}
            }
        }
    }
}
