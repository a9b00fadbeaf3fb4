//! A Docker Engine API client (over a Unix socket, TCP with TLS, or ssh: see
//! [`crate::client_conn`]), as the docker CLI speaks it: `HEAD /_ping`
//! version negotiation, `/vX.YY`-prefixed requests, JSON bodies, `{"message":...}` errors,
//! streamed response bodies, chunked request bodies and hijacked (upgraded) connections.
//!
//! Every request opens its own connection, so requests never wait on each other (`docker run`
//! keeps `wait` pending on one connection while it starts the container on another).

use std::io;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::client_conn::{ConnError, Endpoint, Stream, TlsOptions};
use crate::API_VERSION;

pub use crate::client_hijack::{HijackReader, HijackWriter, Hijacked};

/// The default daemon address.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

/// A request body: empty, complete, or streamed (sent with `Transfer-Encoding: chunked`).
pub type Body = UnsyncBoxBody<Bytes, io::Error>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Host(#[from] ConnError),
    #[error("Cannot connect to the Docker daemon at {host}. Is the docker daemon running?")]
    Connect { host: String, source: io::Error },
    /// A TLS handshake or ssh that failed.
    #[error("error during connect: {host}: {source}")]
    Dial { host: String, source: io::Error },
    #[error("error during connect: {}", chain(.0))]
    Http(#[from] hyper::Error),
    /// A plain TCP client answered in TLS.
    #[error("error during connect: {}\n* Are you trying to connect to a TLS-enabled daemon without TLS?", chain(.0))]
    NotTls(hyper::Error),
    #[error("invalid request: {0}")]
    Request(String),
    /// An error answer of the daemon (status >= 400), with its `message`.
    #[error("Error response from daemon: {message}")]
    Daemon { status: u16, message: String },
    #[error("invalid JSON from the daemon: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// An error and its sources, `: `-separated (a TLS alert under hyper's "connection error").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

impl ClientError {
    /// The HTTP status of a daemon error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Daemon { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The daemon's message (or this error's text).
    pub fn message(&self) -> String {
        match self {
            ClientError::Daemon { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// An empty request body.
pub fn empty_body() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A complete request body.
pub fn full_body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body streamed from `reader`, sent chunked.
pub fn reader_body<R: AsyncRead + Send + Unpin + 'static>(reader: R) -> Body {
    let stream = futures_util::stream::unfold(Some(reader), |state| async move {
        let mut reader = state?;
        let mut buf = vec![0u8; 64 * 1024];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Frame::data(Bytes::from(buf))), Some(reader)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    StreamBody::new(stream).boxed_unsync()
}

/// Percent-encodes a query component (everything but RFC 3986's unreserved characters).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `k=v&k2=v2`, encoded, in the given order.
pub fn encode_query<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                encode_component(k.as_ref()),
                encode_component(v.as_ref())
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn path_with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// Compares dotted versions numerically (`1.9` < `1.41`).
pub fn version_less(a: &str, b: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(a) < parse(b)
}

/// A client for one daemon.
#[derive(Debug, Clone)]
pub struct Client {
    host: String,
    endpoint: Endpoint,
    version: String,
    user_agent: String,
}

impl Client {
    /// A client for `host` (`unix:///path` or a plain path), not yet negotiated: requests use
    /// [`API_VERSION`] until [`Client::negotiate`] runs.
    pub fn new(host: &str) -> Result<Client, ClientError> {
        Client::with_tls(host, None)
    }

    /// [`Client::new`] for any host of [`Endpoint::parse`], with `tls` on `tcp://`.
    pub fn with_tls(host: &str, tls: Option<&TlsOptions>) -> Result<Client, ClientError> {
        let endpoint = Endpoint::parse(host, tls)?;
        Ok(Client {
            host: if host.starts_with('/') {
                format!("unix://{host}")
            } else {
                host.to_string()
            },
            endpoint,
            version: API_VERSION.to_string(),
            user_agent: format!("Berth-Client/{} (linux)", env!("CARGO_PKG_VERSION")),
        })
    }

    /// Sets the `User-Agent` header.
    pub fn with_user_agent(mut self, agent: &str) -> Client {
        self.user_agent = agent.to_string();
        self
    }

    /// Pins the API version (as `DOCKER_API_VERSION` does).
    pub fn pin_version(&mut self, version: &str) {
        self.version = version.trim_start_matches('v').to_string();
    }

    /// The host as given (`unix:///...`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The API version requests use.
    pub fn api_version(&self) -> &str {
        &self.version
    }

    /// `HEAD /_ping` (then `GET /_ping` on 404), and uses min(ours, the daemon's `Api-Version`);
    /// no header means 1.24. A daemon that keeps failing the ping with a 5xx is used
    /// un-negotiated, at [`API_VERSION`], as the docker CLI does. Returns the ping's headers.
    pub async fn negotiate(&mut self) -> Result<hyper::HeaderMap, ClientError> {
        let headers = match self.ping().await {
            Ok(h) => h,
            Err(ClientError::Daemon { status, .. }) if status >= 500 => {
                self.version = API_VERSION.to_string();
                return Ok(hyper::HeaderMap::new());
            }
            Err(e) => return Err(e),
        };
        let theirs = headers
            .get("api-version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("1.24")
            .to_string();
        self.version = if version_less(&theirs, API_VERSION) {
            theirs
        } else {
            API_VERSION.to_string()
        };
        Ok(headers)
    }

    /// `HEAD /_ping` (twice on a 5xx), falling back to `GET /_ping` on 404; the response
    /// headers.
    pub async fn ping(&self) -> Result<hyper::HeaderMap, ClientError> {
        let mut resp = self
            .send_raw(Method::HEAD, "/_ping", &[], empty_body())
            .await?;
        if resp.status().is_server_error() {
            resp = self
                .send_raw(Method::HEAD, "/_ping", &[], empty_body())
                .await?;
        }
        if resp.status() == StatusCode::NOT_FOUND {
            // daemons without the HEAD route
            resp = self
                .send_raw(Method::GET, "/_ping", &[], empty_body())
                .await?;
        }
        if resp.status().is_success() {
            return Ok(resp.headers().clone());
        }
        Err(error_from(resp).await)
    }

    /// A new connection to the daemon (a TLS handshake, an ssh process...).
    pub async fn connect(&self) -> Result<Stream, ClientError> {
        self.endpoint.connect().await.map_err(|source| {
            let refused = matches!(
                source.kind(),
                io::ErrorKind::NotFound
                    | io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::PermissionDenied
            );
            if refused || matches!(self.endpoint, Endpoint::Unix(_)) {
                ClientError::Connect {
                    host: self.host.clone(),
                    source,
                }
            } else {
                ClientError::Dial {
                    host: self.host.clone(),
                    source,
                }
            }
        })
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Body,
        content_length: Option<u64>,
    ) -> Result<Request<Body>, ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("Host", "api.moby.localhost")
            .header("User-Agent", &self.user_agent);
        if let Some(len) = content_length {
            req = req.header("Content-Length", len.to_string());
        }
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| ClientError::Request(e.to_string()))?;
            let value =
                HeaderValue::from_str(v).map_err(|e| ClientError::Request(e.to_string()))?;
            req = req.header(name, value);
        }
        req.body(body)
            .map_err(|e| ClientError::Request(e.to_string()))
    }

    /// Sends one request on its own connection; `path` is used as is (no version prefix).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Body,
    ) -> Result<Response<Incoming>, ClientError> {
        let stream = self.connect().await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let (failed, conn_error) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                let _ = failed.send(e);
            }
        });
        use hyper::body::Body as _;
        let len = body.size_hint().exact();
        let bodyless = len == Some(0);
        let content_length = if bodyless && matches!(method, Method::POST | Method::PUT) {
            Some(0)
        } else {
            None
        };
        let req = self.build(method, path, headers, body, content_length)?;
        match sender.send_request(req).await {
            Ok(resp) => Ok(resp),
            Err(e) => Err(self.explain(why_failed(e, conn_error).await)),
        }
    }

    /// A garbled answer on plain TCP is most likely a TLS daemon's: says so, as the docker CLI.
    fn explain(&self, e: ClientError) -> ClientError {
        let plain_tcp = matches!(self.endpoint, Endpoint::Tcp { tls: None, .. });
        match e {
            ClientError::Http(h) if plain_tcp && h.is_parse() => ClientError::NotTls(h),
            other => other,
        }
    }

    /// The versioned path (`/v1.41/containers/json`).
    pub fn versioned(&self, path: &str) -> String {
        format!("/v{}{}", self.version, path)
    }

    /// Sends a request to the versioned `path` with `query` (already encoded, may be empty); a
    /// status >= 400 becomes [`ClientError::Daemon`].
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        query: &str,
        headers: &[(&str, String)],
        body: Body,
    ) -> Result<Response<Incoming>, ClientError> {
        let full = path_with_query(&self.versioned(path), query);
        let resp = self.send_raw(method, &full, headers, body).await?;
        if resp.status().as_u16() >= 400 {
            return Err(error_from(resp).await);
        }
        Ok(resp)
    }

    /// A request whose answer is JSON.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let resp = match body {
            Some(b) => {
                let bytes = serde_json::to_vec(b)?;
                self.request(
                    method,
                    path,
                    query,
                    &[("Content-Type", "application/json".to_string())],
                    full_body(bytes),
                )
                .await?
            }
            None => self.request(method, path, query, &[], empty_body()).await?,
        };
        let bytes = read_all(resp).await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// `GET` of a JSON document.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &str,
    ) -> Result<T, ClientError> {
        self.json(Method::GET, path, query, None::<&()>).await
    }

    /// A request whose answer body does not matter (204, 304, 200 empty...).
    pub async fn call(&self, method: Method, path: &str, query: &str) -> Result<(), ClientError> {
        let resp = self.request(method, path, query, &[], empty_body()).await?;
        read_all(resp).await?;
        Ok(())
    }

    /// Opens a hijacked connection: `POST` with `Connection: Upgrade`, `Upgrade: tcp`, expecting
    /// `101` (or a legacy `200`); `json` is the request body (exec start), else empty with
    /// `Content-Type: text/plain`.
    pub async fn hijack(
        &self,
        path: &str,
        query: &str,
        json: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<Hijacked, ClientError> {
        let full = path_with_query(&self.versioned(path), query);
        let stream = self.connect().await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let (failed, conn_error) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                let _ = failed.send(e);
            }
        });
        let (body, ctype, len) = match json {
            Some(j) => {
                let mut bytes = serde_json::to_vec(j)?;
                bytes.push(b'\n');
                let len = bytes.len() as u64;
                (full_body(bytes), "application/json", len)
            }
            None => (empty_body(), "text/plain", 0),
        };
        let req = self.build(
            Method::POST,
            &full,
            &[
                ("Content-Type", ctype.to_string()),
                ("Connection", "Upgrade".to_string()),
                ("Upgrade", "tcp".to_string()),
            ],
            body,
            Some(len),
        )?;
        let resp = match sender.send_request(req).await {
            Ok(resp) => resp,
            Err(e) => return Err(self.explain(why_failed(e, conn_error).await)),
        };
        let status = resp.status();
        if status.as_u16() >= 400 {
            return Err(error_from(resp).await);
        }
        if status != StatusCode::SWITCHING_PROTOCOLS {
            return Err(ClientError::Request(format!(
                "expected 101 Switching Protocols to hijack, got {status}"
            )));
        }
        let upgraded = hyper::upgrade::on(resp).await?;
        let parts = upgraded
            .downcast::<TokioIo<Stream>>()
            .map_err(|_| ClientError::Request("hijacked connection of unknown type".into()))?;
        Ok(Hijacked {
            stream: parts.io.into_inner(),
            buffered: parts.read_buf.to_vec(),
        })
    }
}

/// A failed request's error: the connection's own when it failed (a TLS alert, the daemon
/// closing), which a request sees only as "connection was not ready".
async fn why_failed(
    e: hyper::Error,
    conn_error: tokio::sync::oneshot::Receiver<hyper::Error>,
) -> ClientError {
    match tokio::time::timeout(std::time::Duration::from_secs(1), conn_error).await {
        Ok(Ok(conn)) => ClientError::Http(conn),
        _ => ClientError::Http(e),
    }
}

/// Reads a whole response body.
pub async fn read_all(resp: Response<Incoming>) -> Result<Bytes, ClientError> {
    Ok(resp.into_body().collect().await?.to_bytes())
}

/// The [`ClientError::Daemon`] of an error response: its JSON `message`, else its text.
pub async fn error_from(resp: Response<Incoming>) -> ClientError {
    let status = resp.status().as_u16();
    let reason = resp
        .status()
        .canonical_reason()
        .unwrap_or("error")
        .to_string();
    // a body cut short still leaves the status to report
    let bytes = match resp.into_body().collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    };
    #[derive(serde::Deserialize)]
    struct Message {
        message: String,
    }
    let message = match serde_json::from_slice::<Message>(&bytes) {
        Ok(m) => m.message,
        Err(_) => {
            let text = String::from_utf8_lossy(&bytes).trim().to_string();
            if text.is_empty() {
                reason
            } else {
                text
            }
        }
    };
    ClientError::Daemon { status, message }
}

/// A streamed response body, read chunk by chunk or as JSON messages.
pub struct BodyStream {
    body: Incoming,
    pending: Vec<u8>,
}

impl BodyStream {
    pub fn new(resp: Response<Incoming>) -> BodyStream {
        BodyStream {
            body: resp.into_body(),
            pending: Vec::new(),
        }
    }

    /// The next data chunk; `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        if !self.pending.is_empty() {
            return Ok(Some(Bytes::from(std::mem::take(&mut self.pending))));
        }
        while let Some(frame) = self.body.frame().await {
            if let Ok(data) = frame?.into_data() {
                if !data.is_empty() {
                    return Ok(Some(data));
                }
            }
        }
        Ok(None)
    }

    /// The next JSON value of a stream of concatenated JSON documents (separated by `\n` or
    /// `\r\n`, as dockerd writes them); `None` at the end.
    pub async fn next_json<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ClientError> {
        loop {
            // skip whitespace
            let start = self
                .pending
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(self.pending.len());
            self.pending.drain(..start);
            if !self.pending.is_empty() {
                let mut de = serde_json::Deserializer::from_slice(&self.pending).into_iter::<T>();
                match de.next() {
                    Some(Ok(v)) => {
                        let used = de.byte_offset();
                        self.pending.drain(..used);
                        return Ok(Some(v));
                    }
                    Some(Err(e)) if e.is_eof() => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => {}
                }
            }
            let mut got = false;
            while let Some(frame) = self.body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    self.pending.extend_from_slice(&data);
                    got = true;
                    break;
                }
            }
            if !got {
                if self.pending.iter().all(|b| b.is_ascii_whitespace()) {
                    return Ok(None);
                }
                let v = serde_json::from_slice(&self.pending)?;
                self.pending.clear();
                return Ok(Some(v));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encodes_queries() {
        assert_eq!(
            encode_query(&[("filters", r#"{"a":{"b":true}}"#), ("t", "1")]),
            "filters=%7B%22a%22%3A%7B%22b%22%3Atrue%7D%7D&t=1"
        );
    }

    #[test]
    fn compares_versions() {
        assert!(version_less("1.9", "1.41"));
        assert!(!version_less("1.43", "1.41"));
        assert!(version_less("1.41", "1.43"));
    }

    use tokio::io::AsyncWriteExt;
    use tokio::net::{UnixListener, UnixStream};

    /// Reads one request head (up to the blank line) from `s`.
    async fn read_head(s: &mut UnixStream) -> String {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut b).await.unwrap() == 0 {
                break;
            }
            head.push(b[0]);
        }
        String::from_utf8_lossy(&head).to_string()
    }

    /// A fake daemon answering each accepted connection's first request with the next answer;
    /// sends back the request heads it saw.
    fn fake_daemon(
        answers: Vec<&'static [u8]>,
    ) -> (
        tempfile_dir::Dir,
        tokio::sync::mpsc::UnboundedReceiver<String>,
    ) {
        let dir = tempfile_dir::Dir::new();
        let listener = UnixListener::bind(dir.path.join("d.sock")).unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            for answer in answers {
                let (mut s, _) = listener.accept().await.unwrap();
                let head = read_head(&mut s).await;
                tx.send(head).unwrap();
                s.write_all(answer).await.unwrap();
            }
        });
        (dir, rx)
    }

    mod tempfile_dir {
        pub struct Dir {
            pub path: std::path::PathBuf,
        }
        impl Dir {
            pub fn new() -> Dir {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "berth-api-client-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                ));
                std::fs::create_dir_all(&path).unwrap();
                Dir { path }
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
    }

    #[tokio::test]
    async fn negotiates_and_reports_errors() {
        let (dir, mut heads) = fake_daemon(vec![
            b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]",
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 38\r\n\r\n{\"message\":\"No such container: nope\"}\n",
        ]);
        let host = format!("unix://{}", dir.path.join("d.sock").display());
        let mut c = Client::new(&host).unwrap();
        c.negotiate().await.unwrap();
        assert_eq!(c.api_version(), "1.41");
        assert!(heads
            .recv()
            .await
            .unwrap()
            .starts_with("HEAD /_ping HTTP/1.1\r\n"));
        let v: Vec<serde_json::Value> = c.get_json("/containers/json", "all=1").await.unwrap();
        assert!(v.is_empty());
        assert!(heads
            .recv()
            .await
            .unwrap()
            .starts_with("GET /v1.41/containers/json?all=1 HTTP/1.1\r\n"));
        let e = c
            .call(Method::POST, "/containers/nope/stop", "")
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(404), "{e:?}");
        assert_eq!(
            e.to_string(),
            "Error response from daemon: No such container: nope"
        );
        let head = heads.recv().await.unwrap().to_ascii_lowercase();
        assert!(head.contains("content-length: 0\r\n"), "{head}");
    }

    #[tokio::test]
    async fn hijacks_and_half_closes() {
        let dir = tempfile_dir::Dir::new();
        let sock = dir.path.join("d.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let head = read_head(&mut s).await;
            // the 101 and the first output in one write: the client must not lose it
            s.write_all(
                b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nhello",
            )
            .await
            .unwrap();
            let mut input = Vec::new();
            s.read_to_end(&mut input).await.unwrap();
            s.write_all(b" bye").await.unwrap();
            (head, input)
        });
        let c = Client::new(&format!("unix://{}", sock.display())).unwrap();
        let hj = c
            .hijack("/containers/x/attach", "stream=1&stdin=1", None::<&()>)
            .await
            .unwrap();
        let (mut r, mut w) = hj.into_split();
        w.write_all(b"typed").await.unwrap();
        w.shutdown().await.unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"hello bye");
        let (head, input) = server.await.unwrap();
        assert_eq!(input, b"typed");
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("post /v1.43/containers/x/attach?stream=1&stdin=1 http/1.1\r\n"));
        assert!(head.contains("upgrade: tcp\r\n"), "{head}");
        assert!(head.contains("connection: upgrade\r\n"), "{head}");
    }

    #[test]
    fn parses_hosts() {
        assert!(Client::new("unix:///run/x.sock").is_ok());
        assert!(Client::new("tcp://1.2.3.4:2375").is_ok());
        assert!(Client::new("udp://1.2.3.4:2375").is_err());
    }
}
