//! The Bearer-token front and fault injector in front of a [`super::Registry`].

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use super::http::*;
use super::{Registry, IO_TIMEOUT};

// --- proxy -----------------------------------------------------------------------------------

/// The `service` of the proxy's Bearer challenges.
pub const TOKEN_SERVICE: &str = "berth-test";

/// An HTTP front for a [`Registry`] on 127.0.0.1, with the OCI Bearer-token flow and fault
/// injection.
///
/// With authentication ([`AuthProxy::start`]), `GET /token` with the right Basic credentials
/// issues a token, and every `/v2/` request needs `Authorization: Bearer <token>`: without it the
/// answer is 401 with a `WWW-Authenticate: Bearer realm=...,service="berth-test",scope=...`
/// challenge. Without ([`AuthProxy::without_auth`]), everything is forwarded.
///
/// Forwarded requests keep their method, target, headers (but `Authorization` and `Host`) and
/// body; responses come back whole, with `Location` headers pointing at the registry rewritten to
/// point at the proxy. The faults ([`AuthProxy::truncate_blobs_after`],
/// [`AuthProxy::throttle`]) apply to blob downloads (`GET /v2/<name>/blobs/<digest>`) and can be
/// changed at any time; they hit the requests that come after.
pub struct AuthProxy {
    shared: Arc<Shared>,
    port: u16,
    accept: Option<JoinHandle<()>>,
}

/// The state the proxy's threads share.
struct Shared {
    upstream: String,
    /// `127.0.0.1:PORT` of the proxy itself, for `Location` rewrites and the token realm.
    host: String,
    credentials: Option<String>,
    tokens: Mutex<HashSet<String>>,
    stop: AtomicBool,
    /// u64::MAX: no truncation.
    truncate_after: AtomicU64,
    /// 0: no throttling.
    bytes_per_sec: AtomicU64,
    blob_gets: AtomicUsize,
    ranges: Mutex<Vec<String>>,
    /// Clones of every open socket, so that `Drop` can shut them down.
    sockets: Mutex<HashMap<u64, TcpStream>>,
    next_socket: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AuthProxy {
    /// Starts a proxy in front of `registry` (itself without authentication) that issues tokens
    /// to `user` / `password` and requires them on `/v2/`.
    pub fn start(registry: &Registry, user: &str, password: &str) -> io::Result<AuthProxy> {
        AuthProxy::spawn(registry.host(), Some(basic_auth(user, password)))
    }

    /// Starts a proxy in front of `registry` that forwards everything without authentication
    /// (for the faults alone).
    pub fn without_auth(registry: &Registry) -> io::Result<AuthProxy> {
        AuthProxy::spawn(registry.host(), None)
    }

    fn spawn(upstream: String, credentials: Option<String>) -> io::Result<AuthProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            upstream,
            host: format!("127.0.0.1:{port}"),
            credentials,
            tokens: Mutex::new(HashSet::new()),
            stop: AtomicBool::new(false),
            truncate_after: AtomicU64::new(u64::MAX),
            bytes_per_sec: AtomicU64::new(0),
            blob_gets: AtomicUsize::new(0),
            ranges: Mutex::new(Vec::new()),
            sockets: Mutex::new(HashMap::new()),
            next_socket: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("auth-proxy".into())
            .spawn(move || accept_loop(&listener, &accept_shared))?;
        Ok(AuthProxy {
            shared,
            port,
            accept: Some(accept),
        })
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn host(&self) -> String {
        self.shared.host.clone()
    }

    /// The port the proxy listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Blob downloads from now on send their headers (with the full `Content-Length`) and then
    /// only `bytes` bytes of body before the connection is closed; `None` turns this off.
    pub fn truncate_blobs_after(&self, bytes: Option<u64>) {
        let value = bytes.unwrap_or(u64::MAX);
        self.shared.truncate_after.store(value, Ordering::SeqCst);
    }

    /// Blob downloads from now on are sent at `bytes_per_sec` on average; `None` turns this off.
    pub fn throttle(&self, bytes_per_sec: Option<u64>) {
        let value = bytes_per_sec.unwrap_or(0);
        self.shared.bytes_per_sec.store(value, Ordering::SeqCst);
    }

    /// How many blob downloads (`GET /v2/<name>/blobs/<digest>`) were forwarded.
    pub fn blob_gets(&self) -> usize {
        self.shared.blob_gets.load(Ordering::SeqCst)
    }

    /// The `Range` headers of the forwarded blob downloads, in order.
    pub fn ranges(&self) -> Vec<String> {
        lock(&self.shared.ranges).clone()
    }
}

impl Drop for AuthProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // wakes the accept() of the listener thread, which then sees `stop`
        let _ = TcpStream::connect(&self.shared.host);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for socket in lock(&self.shared.sockets).values() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let conn_shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("auth-proxy-conn".into())
            .spawn(move || {
                let _ = serve_connection(stream, &conn_shared);
            });
        if let Ok(handle) = spawned {
            let mut threads = lock(&shared.threads);
            threads.retain(|t| !t.is_finished());
            threads.push(handle);
        }
    }
}

/// A socket registered with the proxy for the time it is open.
struct Tracked<'a> {
    stream: TcpStream,
    id: u64,
    shared: &'a Shared,
}

impl<'a> Tracked<'a> {
    fn new(stream: TcpStream, shared: &'a Shared) -> io::Result<Tracked<'a>> {
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let id = shared.next_socket.fetch_add(1, Ordering::SeqCst);
        lock(&shared.sockets).insert(id, stream.try_clone()?);
        // registered after `stop` was checked by Drop's shutdown pass: shut it down here
        if shared.stop.load(Ordering::SeqCst) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        Ok(Tracked { stream, id, shared })
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        lock(&self.shared.sockets).remove(&self.id);
    }
}

/// Serves the requests of one client connection (keep-alive) until it closes.
fn serve_connection(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let client = Tracked::new(stream, shared)?;
    let mut from = BufReader::new(&client.stream);
    let mut to = io::BufWriter::new(&client.stream);
    while let Some(head) = read_head(&mut from)? {
        if !serve_request(&head, &mut from, &mut to, shared)? {
            break;
        }
    }
    Ok(())
}

/// Answers one request; `Ok(false)` when the connection must close afterwards.
fn serve_request(
    head: &Head,
    from: &mut impl BufRead,
    to: &mut impl Write,
    shared: &Shared,
) -> io::Result<bool> {
    let mut parts = head.start.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let path = target.split('?').next().unwrap_or("");
    let request_framing = match head.framing()? {
        Framing::Close => Framing::Length(0),
        framing => framing,
    };
    let has_body = request_framing != Framing::Length(0);
    let keep_alive = !head.has_token("connection", "close");

    if path == "/token" {
        let authorized = shared
            .credentials
            .as_deref()
            .is_none_or(|c| head.header("authorization") == Some(c));
        if authorized {
            let token = random_token()?;
            lock(&shared.tokens).insert(token.clone());
            let body =
                format!(r#"{{"token":"{token}","access_token":"{token}","expires_in":300}}"#);
            simple_response(to, "200 OK", &[("Content-Type", "application/json")], &body)?;
        } else {
            simple_response(to, "401 Unauthorized", &[], "")?;
        }
        return Ok(keep_alive && !has_body);
    }

    if shared.credentials.is_some() {
        let token = head
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::trim);
        if !token.is_some_and(|t| lock(&shared.tokens).contains(t)) {
            let mut challenge = format!(
                r#"Bearer realm="http://{}/token",service="{TOKEN_SERVICE}""#,
                shared.host
            );
            if let Some(scope) = scope_of(path) {
                challenge.push_str(&format!(r#",scope="{scope}""#));
            }
            let body =
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
            let headers = [
                ("WWW-Authenticate", challenge.as_str()),
                ("Content-Type", "application/json"),
                ("Docker-Distribution-Api-Version", "registry/2.0"),
            ];
            simple_response(to, "401 Unauthorized", &headers, body)?;
            // the client may send the body anyway: rather than read it, close
            return Ok(keep_alive && !has_body);
        }
    }

    let is_blob_get = method == "GET" && is_blob_path(path);
    if is_blob_get {
        shared.blob_gets.fetch_add(1, Ordering::SeqCst);
        if let Some(range) = head.header("range") {
            lock(&shared.ranges).push(range.to_string());
        }
    }
    if head.has_token("expect", "100-continue") {
        to.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        to.flush()?;
    }

    // forward, on a connection of its own
    let upstream = Tracked::new(TcpStream::connect(&shared.upstream)?, shared)?;
    let mut forwarded = Head {
        start: head.start.clone(),
        headers: head
            .headers
            .iter()
            .filter(|(n, _)| {
                ![
                    "authorization",
                    "host",
                    "connection",
                    "expect",
                    "keep-alive",
                ]
                .iter()
                .any(|h| n.eq_ignore_ascii_case(h))
            })
            .cloned()
            .collect(),
    };
    forwarded
        .headers
        .push(("Host".into(), shared.upstream.clone()));
    forwarded
        .headers
        .push(("Connection".into(), "close".into()));
    let mut up_to = io::BufWriter::new(&upstream.stream);
    forwarded.write_to(&mut up_to)?;
    copy_body(from, &mut up_to, request_framing, Pace::default())?;
    drop(up_to);

    let mut up_from = BufReader::new(&upstream.stream);
    let mut response = loop {
        let response = read_head(&mut up_from)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        if !response
            .start
            .split(' ')
            .nth(1)
            .is_some_and(|s| s.starts_with('1'))
        {
            break response;
        }
    };
    let status = response.start.split(' ').nth(1).unwrap_or("").to_string();
    let framing = response.framing()?;
    let upstream_prefix = format!("http://{}", shared.upstream);
    response.headers.retain(|(n, _)| {
        !n.eq_ignore_ascii_case("connection") && !n.eq_ignore_ascii_case("keep-alive")
    });
    for (name, value) in &mut response.headers {
        if name.eq_ignore_ascii_case("location") && value.starts_with(&upstream_prefix) {
            *value = format!("http://{}{}", shared.host, &value[upstream_prefix.len()..]);
        }
    }
    let no_body = method == "HEAD" || status == "204" || status == "304";
    let keep_alive = keep_alive && (no_body || framing != Framing::Close);
    if !keep_alive {
        response.headers.push(("Connection".into(), "close".into()));
    }
    response.write_to(to)?;
    if no_body {
        to.flush()?;
        return Ok(keep_alive);
    }
    let mut pace = Pace {
        stop: Some(&shared.stop),
        ..Pace::default()
    };
    if is_blob_get {
        let limit = shared.truncate_after.load(Ordering::SeqCst);
        let rate = shared.bytes_per_sec.load(Ordering::SeqCst);
        pace.limit = (limit != u64::MAX).then_some(limit);
        pace.bytes_per_sec = (rate != 0).then_some(rate);
    }
    match copy_body(&mut up_from, to, framing, pace)? {
        Copied::All => Ok(keep_alive),
        Copied::Cut => Ok(false),
    }
}

fn simple_response(
    to: &mut impl Write,
    status: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> io::Result<()> {
    let mut head = Head {
        start: format!("HTTP/1.1 {status}"),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    };
    head.headers
        .push(("Content-Length".into(), body.len().to_string()));
    head.write_to(to)?;
    to.write_all(body.as_bytes())?;
    to.flush()
}

/// Whether `path` is that of a blob (`/v2/<name>/blobs/<digest>`, not an upload).
fn is_blob_path(path: &str) -> bool {
    path.starts_with("/v2/")
        && path
            .rsplit_once("/blobs/")
            .is_some_and(|(_, rest)| !rest.is_empty() && !rest.contains('/') && rest != "uploads")
}

/// The token scope a request on `path` needs: `repository:<name>:pull,push` for the
/// repositories' endpoints, `registry:catalog:*` for the catalog, none for `/v2/`.
fn scope_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    if rest == "_catalog" {
        return Some("registry:catalog:*".into());
    }
    let name = ["/blobs/", "/manifests/", "/tags/"]
        .iter()
        .filter_map(|sep| rest.rfind(sep).map(|i| &rest[..i]))
        .min_by_key(|name| name.len())?;
    Some(format!("repository:{name}:pull,push"))
}

/// 32 random hex digits from /dev/urandom.
fn random_token() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(basic_auth("user", "pass"), "Basic dXNlcjpwYXNz");
    }

    #[test]
    fn paths_and_scopes() {
        assert!(is_blob_path("/v2/a/b/blobs/sha256:00"));
        assert!(!is_blob_path("/v2/a/blobs/uploads/"));
        assert!(!is_blob_path("/v2/a/blobs/uploads/1234"));
        assert!(!is_blob_path("/v2/a/manifests/latest"));
        assert_eq!(scope_of("/v2/"), None);
        assert_eq!(
            scope_of("/v2/test/img/blobs/uploads/x").as_deref(),
            Some("repository:test/img:pull,push")
        );
        assert_eq!(
            scope_of("/v2/test/img/manifests/1").as_deref(),
            Some("repository:test/img:pull,push")
        );
    }

    #[test]
    fn chunked_bodies_stay_chunked() {
        let input = b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
        let mut out = Vec::new();
        let copied = copy_body(&mut &input[..], &mut out, Framing::Chunked, Pace::default());
        assert_eq!(copied.unwrap(), Copied::All);
        assert_eq!(dechunk(&out).unwrap(), b"hello world");
    }
}
