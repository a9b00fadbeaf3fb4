#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] functions unwrap too

//! Hostile HTTP on berthd's socket (issue 12, "one request must never kill the daemon"): raw
//! bytes written by hand, as no well-behaved client sends them. Bad UTF-8 and bad percent
//! escapes in the path and query, NUL bytes, huge heads, gigabyte bodies (streamed from a
//! generator, never allocated) to routes that take none and to JSON routes, absurd lengths,
//! broken chunked encoding, slow, stalled and idle clients, descriptor exhaustion.
//!
//! After each case the same berthd (same pid, still our unreaped child) must answer `/_ping`
//! and `GET /containers/json`, and its RSS must not have grown by 100 MB. berthd aborts on any
//! panic in every build (as `panic = "abort"` does in release), so a panic is caught here as
//! a dead daemon. Every wait is bounded.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{skip, Daemon};

/// The RSS growth allowed over the daemon's first measure.
const MAX_GROWTH_KB: u64 = 100 * 1024;
/// berthd's header read timeout (`server::HEADER_TIMEOUT`).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
const GIB: u64 = 1 << 30;

/// A daemon under attack and what it looked like before.
struct Target {
    d: Daemon,
    pid: u32,
    rss_kb: u64,
}

impl Target {
    fn start() -> Target {
        let d = Daemon::start();
        let pid = d.pid();
        let mut t = Target { d, pid, rss_kb: 0 };
        // Warm up the routes the checks use before the first measure.
        t.alive("start");
        t.rss_kb = rss_kb(pid);
        t
    }

    fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(&self.d.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Sends `raw` on a new connection (write errors ignored: the daemon may close first) and
    /// reads the answer.
    fn send(&self, raw: &[u8]) -> Answer {
        self.send_within(raw, Duration::from_secs(10))
    }

    /// [`Target::send`], reading for at most `limit` (a streamed answer never ends).
    fn send_within(&self, raw: &[u8], limit: Duration) -> Answer {
        let mut s = self.connect();
        s.set_read_timeout(Some(limit)).unwrap();
        let _ = s.write_all(raw);
        read_answer(&mut s, limit)
    }

    /// The same daemon still answers, and has not grown.
    fn alive(&mut self, after: &str) {
        if let Some(status) = self.d.exited() {
            panic!(
                "berthd died after {after}: {status}\n{}",
                tail(&self.d.log())
            );
        }
        assert_eq!(self.d.pid(), self.pid, "after {after}");
        let ping = self.send(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(ping.status, Some(200), "ping after {after}: {ping:?}");
        assert_eq!(ping.body, b"OK", "ping after {after}");
        let list = self.send(
            b"GET /v1.43/containers/json?all=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(list.status, Some(200), "containers after {after}: {list:?}");
        let v: serde_json::Value = serde_json::from_slice(&list.body)
            .unwrap_or_else(|e| panic!("containers after {after}: {e}: {list:?}"));
        assert!(v.is_array(), "containers after {after}: {v}");
        if self.rss_kb > 0 {
            let now = rss_kb(self.pid);
            assert!(
                now < self.rss_kb + MAX_GROWTH_KB,
                "after {after}: RSS {now} kB, was {} kB",
                self.rss_kb
            );
        }
    }
}

/// What came back: the status (None: the connection closed without an answer), the head and
/// the body (by Content-Length, else what came until the end).
struct Answer {
    status: Option<u16>,
    head: String,
    body: Vec<u8>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} {:?} {:?}",
            self.status,
            self.head,
            String::from_utf8_lossy(&self.body)
        )
    }
}

impl Answer {
    /// The `message` of Docker's error body.
    fn message(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"));
        v["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message: {self:?}"))
            .to_string()
    }
}

/// Reads one answer within `limit`: the head, then the body by its Content-Length (or to the
/// end of the connection).
fn read_answer(s: &mut UnixStream, limit: Duration) -> Answer {
    let deadline = Instant::now() + limit;
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let mut head_end = None;
    let mut want = None;
    while Instant::now() < deadline {
        if let (Some(end), Some(len)) = (head_end, want) {
            if raw.len() >= end + len {
                break;
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
        if head_end.is_none() {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                head_end = Some(i + 4);
                let head = String::from_utf8_lossy(&raw[..i]).to_ascii_lowercase();
                want = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
            }
        }
    }
    let Some(end) = head_end else {
        return Answer {
            status: None,
            head: String::from_utf8_lossy(&raw).into_owned(),
            body: Vec::new(),
        };
    };
    let head = String::from_utf8_lossy(&raw[..end - 4]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok());
    let mut body = raw[end..].to_vec();
    if let Some(len) = want {
        body.truncate(len);
    }
    Answer { status, head, body }
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// The soft limit of open files of process `pid` (or `self`).
fn soft_nofile(pid: &str) -> u64 {
    // "Max open files   SOFT   HARD   files"
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Sends `head`, then streams up to `total` body bytes from a generator (64 KiB at a time,
/// chunked or not) on another thread while this one reads the answer. Returns the answer and
/// how many body bytes the daemon let us write before it closed.
fn stream_body(t: &Target, head: &str, total: u64, chunked: bool) -> (Answer, u64) {
    let mut s = t.connect();
    s.write_all(head.as_bytes()).unwrap();
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let block = vec![b'x'; 64 * 1024];
        let mut sent = 0u64;
        let started = Instant::now();
        while sent < total && started.elapsed() < Duration::from_secs(60) {
            let n = block.len().min((total - sent) as usize);
            let ok = if chunked {
                writer
                    .write_all(format!("{n:x}\r\n").as_bytes())
                    .and_then(|()| writer.write_all(&block[..n]))
                    .and_then(|()| writer.write_all(b"\r\n"))
            } else {
                writer.write_all(&block[..n])
            };
            if ok.is_err() {
                break;
            }
            sent += n as u64;
        }
        if chunked && sent == total {
            let _ = writer.write_all(b"0\r\n\r\n");
        }
        sent
    });
    let answer = read_answer(&mut s, Duration::from_secs(30));
    // Whatever the daemon does with the rest, the writer stops now.
    let _ = s.shutdown(std::net::Shutdown::Both);
    let sent = sender.join().unwrap();
    (answer, sent)
}

#[test]
fn bad_bytes_in_the_request_line_are_answered() {
    if skip() {
        return;
    }
    let mut t = Target::start();
    // Issue 12: '%', one hex digit, then 'é' sliced the query inside the character.
    let a = t.send(
        b"GET /containers/json?all=%a\xc3\xa9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    t.alive("the request of issue 12");
    assert_eq!(a.status, Some(200), "{a:?}");
    for query in [
        &b"all=%"[..],
        b"all=%%%%&limit=%f",
        b"%e9=%C3%28&all=%ff%fe",
        b"all=%\xc3\xa9%\xc3",
        b"=&&&=%&limit=99999999999999999999999",
        b"all=1&all=%00&limit=-1",
    ] {
        let mut req = b"GET /v1.43/containers/json?".to_vec();
        req.extend_from_slice(query);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let a = t.send(&req);
        assert!(
            matches!(a.status, Some(200 | 400)),
            "{:?}: {a:?}",
            String::from_utf8_lossy(query)
        );
        t.alive(&format!("query {:?}", String::from_utf8_lossy(query)));
    }
    // Filters that decode to bad JSON, and JSON nested past serde's limit: 400s.
    for filters in [
        "%7B%zz%C3%28",
        "%7B%22status%22%3A%5B1%2C%7B%7D%5D%7D",
        &"%5B".repeat(20_000),
        &format!(
            "%7B%22label%22%3A%7B{}%7D%7D",
            "%22a%22%3Atrue%2C".repeat(2_000) + "%22b%22%3A1"
        ),
    ] {
        let a = t.send(
            format!(
                "GET /v1.43/containers/json?filters={filters} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        assert!(matches!(a.status, Some(200 | 400)), "{a:?}");
        if a.status == Some(400) {
            assert!(a.message().contains("invalid filter"), "{a:?}");
        }
        t.alive("bad filters");
    }
    // A reference filter that once recursed once per star (the URI's limit is 64 KiB).
    t.d.busybox("bb:local");
    let stars = "*".repeat(60_000);
    let a = t.send(
        format!(
            "GET /v1.43/images/json?filters=%7B%22reference%22%3A%5B%22{stars}%22%5D%7D HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(a.status, Some(200), "{a:?}");
    t.alive("a reference filter of 60000 stars");
    // Times past Duration's range (a panic in Duration::from_secs_f64, once).
    for query in [
        "since=%ff&until=1e300",
        "until=inf",
        "until=NaN&since=-inf",
        "since=1e308",
    ] {
        let a = t.send_within(
            format!("GET /events?{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
            Duration::from_secs(1),
        );
        assert_eq!(a.status, Some(200), "{query}: {a:?}");
        t.alive(&format!("events?{query}"));
    }
    // Raw bytes that are not UTF-8 in the path or query; NUL bytes; bad escapes in the path.
    for (raw, statuses) in [
        (&b"GET /containers/\xff\xfe/json HTTP/1.1\r\nHost: x\r\n\r\n"[..], &[400][..]),
        (b"GET /containers/json?all=\xc3\x28 HTTP/1.1\r\nHost: x\r\n\r\n", &[400]),
        (b"GET /_ping\x00 HTTP/1.1\r\nHost: x\r\n\r\n", &[400]),
        (b"GET\x00/_ping HTTP/1.1\r\nHost: x\r\n\r\n", &[400]),
        (b"GET /_ping HTTP/1.1\x00\r\nHost: x\r\n\r\n", &[400]),
        (b"GET /_ping HTTP/1.1\r\nHost: x\x00y\r\n\r\n", &[400]),
        (b"\xc3\xa9 /_ping HTTP/1.1\r\nHost: x\r\n\r\n", &[400]),
        (b"GARBAGE\r\n\r\n", &[400]),
        (b"GET /_ping HTTP/9.9\r\nHost: x\r\n\r\n", &[400, 505]),
        (b"GET /containers/%zz%/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &[404]),
        (b"GET /containers/%00%ff/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &[404]),
        (b"GET /v1.%e9/_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &[404]),
        (b"GET /v99999999999999999999.1/_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &[404]),
        (b"GET /v1.41/../../_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &[404]),
        (b"DELETE /images/%C3%A9%/%%/x:%ff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &[400, 404]),
        (b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-Registry-Auth: \xff\xfe\r\nConnection: close\r\n\r\n", &[200]),
    ] {
        let a = t.send(raw);
        let what = String::from_utf8_lossy(raw).escape_debug().to_string();
        assert!(
            a.status.is_some_and(|s| statuses.contains(&s)),
            "{what}: {a:?}"
        );
        t.alive(&what);
    }
}

#[test]
fn a_declared_100_mb_body_is_answered_before_it_is_sent() {
    if skip() {
        return;
    }
    let mut t = Target::start();
    // 100 MB declared and ten bytes of junk sent, nothing more: the 413 comes at once, from
    // the declared length alone (dockerd has no limit: its JSON decoder reads the body as it
    // comes, so junk is a 400 at its first byte and a valid 100 MB body is read whole).
    for (path, limit) in [
        ("POST /v1.43/containers/create", 8 << 20),
        ("POST /v1.43/containers/abc/exec", 8 << 20),
        ("POST /v1.43/networks/create", 1 << 20),
        ("POST /v1.43/volumes/create", 1 << 20),
        ("POST /v1.43/containers/abc/start", 64 << 10),
    ] {
        let mut s = t.connect();
        let head = format!(
            "{path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\nxxxxxxxxxx"
        );
        s.write_all(head.as_bytes()).unwrap();
        let started = Instant::now();
        let a = read_answer(&mut s, Duration::from_secs(5));
        let took = started.elapsed();
        assert_eq!(a.status, Some(413), "{path}: {a:?}");
        assert_eq!(
            a.message(),
            format!("request body too large: this route takes at most {limit} bytes"),
            "{path}"
        );
        assert!(
            took < Duration::from_secs(2),
            "{path}: answered after {took:?}"
        );
        t.alive(&format!("100 MB declared to {path}"));
    }
}

#[test]
fn huge_heads_and_bodies_are_refused_unread() {
    if skip() {
        return;
    }
    let mut t = Target::start();
    // A 1 MB header, and ten thousand small ones: 431 from hyper, which reads at most ~400 KiB
    // of head and 100 headers.
    let mut big = b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 1 << 20));
    big.extend_from_slice(b"\r\n\r\n");
    let a = t.send(&big);
    assert!(matches!(a.status, None | Some(431)), "{a:?}");
    t.alive("a 1 MB header");
    let mut many = b"GET /_ping HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..10_000 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let a = t.send(&many);
    assert!(matches!(a.status, None | Some(431)), "{a:?}");
    t.alive("10000 headers");

    // 1 GB declared to a route that takes no body, and to a JSON route: 413 at once.
    for path in [
        "GET /v1.43/containers/json",
        "POST /v1.43/containers/abc/start",
        "POST /v1.43/containers/create?name=big",
        "POST /v1.43/volumes/create",
    ] {
        let head = format!(
            "{path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {GIB}\r\n\r\n"
        );
        let (a, sent) = stream_body(&t, &head, GIB, false);
        assert_eq!(a.status, Some(413), "{path}: {a:?}");
        assert!(a.message().contains("too large"), "{a:?}");
        assert!(
            a.head.to_ascii_lowercase().contains("connection: close"),
            "{a:?}"
        );
        assert!(sent < 64 << 20, "{path}: {sent} bytes taken");
        t.alive(&format!("1 GB declared to {path}"));
    }
    // 1 GB chunked (no length to refuse up front): a JSON route reads up to its limit and
    // answers 413; a route without body answers and leaves it unread.
    for (path, status) in [
        ("POST /v1.43/containers/create", 413),
        ("POST /v1.43/networks/create", 413),
        ("GET /_ping", 200),
        ("GET /v1.43/containers/json", 200),
    ] {
        let head = format!(
            "{path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let (a, sent) = stream_body(&t, &head, GIB, true);
        assert_eq!(a.status, Some(status), "{path}: {a:?}");
        assert!(sent < 256 << 20, "{path}: {sent} bytes taken");
        t.alive(&format!("1 GB chunked to {path}"));
    }
    // Absurd and contradictory lengths.
    for head in [
        "POST /v1.43/volumes/create HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999999\r\n\r\n",
        "POST /v1.43/volumes/create HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\n",
        "POST /v1.43/volumes/create HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        "POST /v1.43/volumes/create HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n{}",
        "POST /v1.43/volumes/create HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        "POST /v1.43/volumes/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "GET /_ping HTTP/1.1\r\nHost: x\r\nContent-Length: 1e9\r\n\r\n",
    ] {
        let a = t.send(head.as_bytes());
        assert!(
            a.status.is_none_or(|s| (400..500).contains(&s) || s == 201),
            "{head:?}: {a:?}"
        );
        t.alive(&format!("{head:?}"));
    }
    // Broken chunked encoding: bad sizes, a size past u64, missing CRLF, garbage extensions.
    for chunks in [
        &b"zz\r\n{}\r\n0\r\n\r\n"[..],
        b"ffffffffffffffffffffffff\r\nab\r\n",
        b"5\r\n{}\r\n0\r\n\r\n",
        b"2\r\n{}XX0\r\n\r\n",
        b"2;\xff\xfe=\x00\r\n{}\r\n0\r\n\r\n",
        b"-2\r\n{}\r\n0\r\n\r\n",
        b"2\r\n{}\r\n0\r\nTrailer\x00: \xff\r\n\r\n",
    ] {
        let mut raw =
            b"POST /v1.43/volumes/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        raw.extend_from_slice(chunks);
        let mut s = t.connect();
        let _ = s.write_all(&raw);
        // The daemon may wait for more: end our side, then read.
        let _ = s.shutdown(std::net::Shutdown::Write);
        let a = read_answer(&mut s, Duration::from_secs(15));
        assert!(
            a.status.is_none_or(|s| s == 400 || s == 201),
            "{:?}: {a:?}",
            String::from_utf8_lossy(chunks)
        );
        t.alive(&format!("chunks {:?}", String::from_utf8_lossy(chunks)));
    }
    // A body shorter than declared, the client gone half-way.
    let mut s = t.connect();
    let _ = s.write_all(
        b"POST /v1.43/volumes/create HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"Name\":",
    );
    let _ = s.shutdown(std::net::Shutdown::Write);
    let a = read_answer(&mut s, Duration::from_secs(15));
    assert!(a.status.is_none_or(|s| s == 400), "{a:?}");
    t.alive("a body cut short");
    // JSON nested past serde's recursion limit, and a body that decodes to many strings.
    let deep = "[".repeat(1 << 20);
    let a = t.send(
        format!(
            "POST /v1.43/volumes/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{deep}",
            deep.len()
        )
        .as_bytes(),
    );
    assert_eq!(a.status, Some(400), "{a:?}");
    assert!(a.message().starts_with("invalid JSON"), "{a:?}");
    t.alive("1 MiB of '['");
    let body = format!(
        "{{\"Image\":\"none\",\"Env\":[{}\"\"]}}",
        "\"\",".repeat(2_700_000)
    );
    let a = t.send(
        format!(
            "POST /v1.43/containers/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert!(matches!(a.status, Some(400 | 404)), "{a:?}");
    t.alive("8 MB of empty strings");
}

#[test]
fn slow_stalled_and_idle_clients_hold_nothing() {
    if skip() {
        return;
    }
    let mut t = Target::start();
    // A request a byte every 100 ms: answered in the end, others served meanwhile.
    let mut slow = t.connect();
    let request = b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let trickle = {
        let mut w = slow.try_clone().unwrap();
        std::thread::spawn(move || {
            for b in request {
                if w.write_all(&[*b]).is_err() {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            true
        })
    };
    for i in 0..3 {
        t.alive(&format!("a slow client, {i}"));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(trickle.join().unwrap());
    let a = read_answer(&mut slow, Duration::from_secs(10));
    assert_eq!(a.status, Some(200), "{a:?}");
    // A body a byte every 100 ms.
    let mut s = t.connect();
    let body = br#"{"Name":"hostile-slow"}"#;
    s.write_all(
        format!(
            "POST /v1.43/volumes/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    for b in body {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let a = read_answer(&mut s, Duration::from_secs(10));
    assert_eq!(a.status, Some(201), "{a:?}");
    t.alive("a slow body");

    // Stalled heads: the daemon serves others, then drops them after its header timeout.
    let stalled: Vec<UnixStream> = (0..20)
        .map(|i| {
            let mut s = t.connect();
            s.write_all(&b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-Stall: "[..20 + i])
                .unwrap();
            s
        })
        .collect();
    t.alive("20 stalled heads");

    // A thousand idle connections (fewer where berthd or this test may not open that many).
    let room = |pid: &str| {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count() as u64;
        soft_nofile(pid).saturating_sub(fds + 100)
    };
    let n = 1000.min(room(&t.pid.to_string())).min(room("self"));
    let idle: Vec<UnixStream> = (0..n).map(|_| t.connect()).collect();
    t.alive(&format!("{n} idle connections"));
    drop(idle);
    t.alive(&format!("{n} idle connections closed"));

    let started = Instant::now();
    for mut s in stalled {
        s.set_read_timeout(Some(HEADER_TIMEOUT + Duration::from_secs(15)))
            .unwrap();
        let mut buf = [0u8; 1024];
        // 408 from hyper, or the end of the connection.
        let n = s.read(&mut buf).unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text:?}");
    }
    assert!(
        started.elapsed() < HEADER_TIMEOUT + Duration::from_secs(15),
        "stalled heads were kept {:?}",
        started.elapsed()
    );
    t.alive("stalled heads dropped");

    // Out of descriptors: a failed accept must not end the daemon.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", t.pid))
        .unwrap()
        .count();
    let limit = |soft: &str| {
        let status = Command::new("prlimit")
            .arg("--pid")
            .arg(t.pid.to_string())
            .arg(format!("--nofile={soft}:"))
            .status()
            .unwrap();
        assert!(status.success());
    };
    let soft = soft_nofile(&t.pid.to_string()).to_string();
    limit(&(fds + 16).to_string());
    let flood: Vec<UnixStream> = (0..100).map(|_| t.connect()).collect();
    std::thread::sleep(Duration::from_secs(2));
    assert!(t.d.exited().is_none(), "berthd died out of descriptors");
    drop(flood);
    limit(&soft);
    // The connections that waited in the backlog are accepted (and end) first.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = t.send(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if a.status == Some(200) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    t.alive("descriptor exhaustion");
    assert!(
        t.d.log().contains("accepting a connection"),
        "no accept failure logged: {}",
        tail(&t.d.log())
    );
}
