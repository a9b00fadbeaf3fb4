//! Fixtures for the DNS server tests: a named network namespace removed on drop, a fake
//! resolver, a fake upstream resolver on the host's loopback that counts what reaches it, and
//! a tiny DNS client that queries from inside a namespace. Every wait is bounded.
#![allow(dead_code)] // not every test uses every helper

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_network::dns::{Resolver, ADDRESS};
use nix::sched::{setns, CloneFlags};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a reply may take (longer than one upstream timeout).
pub const REPLY_WAIT: Duration = Duration::from_secs(5);

pub const TYPE_A: u16 = 1;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_AAAA: u16 = 28;

/// A network namespace made with `ip netns add`, with `lo` up and an `/etc/netns` resolv.conf
/// pointing at 127.0.0.11; deleted on drop.
pub struct Netns {
    pub name: String,
    deleted: bool,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("berth-dnstest-{}-{tag}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let netns = Netns {
            name,
            deleted: false,
        };
        run(&["ip", "-n", &netns.name, "link", "set", "lo", "up"]);
        let etc = netns.etc();
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.11\n").unwrap();
        netns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    fn etc(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.name)
    }

    /// Deletes the namespace now; whether `ip netns delete` succeeded.
    pub fn delete(&mut self) -> bool {
        self.deleted = true;
        let _ = std::fs::remove_dir_all(self.etc());
        Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.deleted {
            self.delete();
        }
    }
}

fn run(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(status.success(), "{args:?} failed");
}

/// `web` → 10.9.0.2, `db` → 10.9.0.3, and `web` for 10.9.0.2; forwards to `upstreams`.
pub struct FakeResolver {
    pub upstreams: Mutex<Vec<SocketAddr>>,
}

impl FakeResolver {
    pub fn new(upstreams: Vec<SocketAddr>) -> Arc<FakeResolver> {
        Arc::new(FakeResolver {
            upstreams: Mutex::new(upstreams),
        })
    }
}

impl Resolver for FakeResolver {
    fn lookup(&self, _container_id: &str, name: &str) -> Option<Vec<Ipv4Addr>> {
        match name {
            "web" => Some(vec![Ipv4Addr::new(10, 9, 0, 2)]),
            "db" => Some(vec![Ipv4Addr::new(10, 9, 0, 3)]),
            _ => None,
        }
    }
    fn reverse(&self, _container_id: &str, ip: Ipv4Addr) -> Option<String> {
        (ip == Ipv4Addr::new(10, 9, 0, 2)).then(|| "web".to_string())
    }
    fn upstreams(&self, _container_id: &str) -> Vec<SocketAddr> {
        self.upstreams.lock().unwrap().clone()
    }
}

/// A query with RD set.
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&[0, 1]);
    out
}

/// A response, read loosely.
#[derive(Debug)]
pub struct Response {
    pub id: u16,
    pub flags: u16,
    /// The question's name as sent (labels joined by dots) and type.
    pub question: (String, u16),
    /// (type, ttl, rdata)
    pub answers: Vec<(u16, u32, Vec<u8>)>,
}

impl Response {
    pub fn rcode(&self) -> u16 {
        self.flags & 0xf
    }
    pub fn ips(&self) -> Vec<Ipv4Addr> {
        self.answers
            .iter()
            .filter(|a| a.0 == TYPE_A)
            .map(|a| Ipv4Addr::new(a.2[0], a.2[1], a.2[2], a.2[3]))
            .collect()
    }
}

/// The labels at `at` (pointers followed, at most 10), and the offset after the name there.
fn name(m: &[u8], mut at: usize) -> (String, usize) {
    let (mut text, mut end, mut hops) = (String::new(), None, 0);
    loop {
        let len = usize::from(m[at]);
        if len == 0 {
            return (text, end.unwrap_or(at + 1));
        }
        if len & 0xc0 == 0xc0 {
            end.get_or_insert(at + 2);
            at = (len & 0x3f) << 8 | usize::from(m[at + 1]);
            hops += 1;
            assert!(hops < 10, "pointer loop");
            continue;
        }
        if !text.is_empty() {
            text.push('.');
        }
        text.push_str(&String::from_utf8_lossy(&m[at + 1..at + 1 + len]));
        at += 1 + len;
    }
}

pub fn parse(m: &[u8]) -> Response {
    let be16 = |at: usize| u16::from_be_bytes([m[at], m[at + 1]]);
    let (qname, mut at) = name(m, 12);
    assert_eq!(be16(4), 1, "one question");
    let question = (qname, be16(at));
    at += 4;
    let mut answers = Vec::new();
    for _ in 0..be16(6) {
        at = name(m, at).1;
        let ttl = u32::from_be_bytes([m[at + 4], m[at + 5], m[at + 6], m[at + 7]]);
        let len = usize::from(be16(at + 8));
        answers.push((be16(at), ttl, m[at + 10..at + 10 + len].to_vec()));
        at += 10 + len;
    }
    Response {
        id: be16(0),
        flags: be16(2),
        question,
        answers,
    }
}

/// Runs `f` on a fresh thread inside the namespace at `path`.
pub fn in_netns<T: Send + 'static>(path: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(path).unwrap();
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// Sends `message` over UDP to 127.0.0.11:53 from inside `netns`; the raw reply.
pub fn udp_raw(netns: &Path, message: Vec<u8>, wait: Duration) -> std::io::Result<Vec<u8>> {
    in_netns(netns, move || {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        socket.connect((ADDRESS, 53))?;
        socket.set_read_timeout(Some(wait))?;
        socket.send(&message)?;
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf)?;
        Ok(buf[..n].to_vec())
    })
}

/// Asks `name` of `qtype` over UDP from inside `netns`.
pub fn udp_ask(netns: &Path, name: &str, qtype: u16) -> Response {
    let reply = udp_raw(netns, query(0x4242, name, qtype), REPLY_WAIT).unwrap();
    let response = parse(&reply);
    assert_eq!(response.id, 0x4242);
    response
}

/// Sends all `queries` on one TCP connection to 127.0.0.11:53 from inside `netns`, then reads
/// as many replies.
pub fn tcp_ask(netns: &Path, queries: Vec<Vec<u8>>) -> std::io::Result<Vec<Response>> {
    in_netns(netns, move || {
        let addr = SocketAddr::from((ADDRESS, 53));
        let mut stream = TcpStream::connect_timeout(&addr, REPLY_WAIT)?;
        stream.set_read_timeout(Some(REPLY_WAIT))?;
        for q in &queries {
            stream.write_all(&(q.len() as u16).to_be_bytes())?;
            stream.write_all(q)?;
        }
        let mut replies = Vec::new();
        for _ in &queries {
            let mut len = [0u8; 2];
            stream.read_exact(&mut len)?;
            let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut reply)?;
            replies.push(parse(&reply));
        }
        Ok(replies)
    })
}

/// The upstream's answer: `outside.test` A → 192.0.2.7; other A queries NXDOMAIN; the rest
/// empty NOERROR.
fn upstream_answer(q: &[u8]) -> Vec<u8> {
    let (qname, end) = name(q, 12);
    let qtype = u16::from_be_bytes([q[end], q[end + 1]]);
    let known = qname.eq_ignore_ascii_case("outside.test");
    let rcode = if qtype == TYPE_A && !known { 3 } else { 0 };
    let mut out = q[..2].to_vec();
    out.extend_from_slice(&(0x8180u16 | rcode).to_be_bytes());
    let answer = known && qtype == TYPE_A;
    out.extend_from_slice(&[0, 1, 0, u8::from(answer), 0, 0, 0, 0]);
    out.extend_from_slice(&q[12..end + 4]);
    if answer {
        out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
    }
    out
}

/// (name, type, "udp"/"tcp") of every query that reached the upstream.
pub type Log = Arc<Mutex<Vec<(String, u16, &'static str)>>>;

/// A fake upstream on 127.0.0.1 (UDP and TCP, one port) in the host's namespace, as tasks on
/// the test's runtime.
pub struct Upstream {
    pub addr: SocketAddr,
    pub log: Log,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Upstream {
    pub async fn start() -> Upstream {
        let (udp, tcp) = loop {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let log = Log::default();
        let record = |log: &Log, q: &[u8], proto| {
            let (qname, end) = name(q, 12);
            let qtype = u16::from_be_bytes([q[end], q[end + 1]]);
            log.lock()
                .unwrap()
                .push((qname.to_lowercase(), qtype, proto));
        };
        let udp_log = log.clone();
        let udp_task = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                record(&udp_log, &buf[..n], "udp");
                let _ = udp.send_to(&upstream_answer(&buf[..n]), peer).await;
            }
        });
        let tcp_log = log.clone();
        let tcp_task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = tcp.accept().await {
                let log = tcp_log.clone();
                tokio::spawn(async move {
                    let mut len = [0u8; 2];
                    while stream.read_exact(&mut len).await.is_ok() {
                        let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        if stream.read_exact(&mut q).await.is_err() {
                            return;
                        }
                        record(&log, &q, "tcp");
                        let reply = upstream_answer(&q);
                        let mut out = (reply.len() as u16).to_be_bytes().to_vec();
                        out.extend_from_slice(&reply);
                        if stream.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Upstream {
            addr,
            log,
            tasks: vec![udp_task, tcp_task],
        }
    }

    /// How many queries for `name` reached the upstream.
    pub fn count(&self, name: &str) -> usize {
        let log = self.log.lock().unwrap();
        log.iter().filter(|(n, _, _)| n == name).count()
    }
}
