//! The HTTP server: `GET`/`POST` `/exec/<token>`, `/attach/<token>` and
//! `/portforward/<token>`, each upgraded to SPDY/3.1 or WebSocket after the protocol
//! negotiation kubelet does (`X-Stream-Protocol-Version` for SPDY: 403 with
//! `X-Accepted-Stream-Protocol-Versions` when no version matches; `Sec-WebSocket-Protocol`
//! for WebSocket: 403 when no subprotocol matches). An unknown, used or expired token is a
//! 404.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request as HttpRequest, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::backend::Backend;
use crate::portforward;
use crate::remotecommand::{self, Options};
use crate::request::{
    AttachRequest, CacheError, ExecRequest, PortForwardRequest, Request, RequestCache,
};
use crate::session::{Outcome, Timeouts};
use crate::ws;

/// The most ports of one WebSocket port forward (two channels each, numbered in a byte).
const MAX_WS_PORTS: usize = 127;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; the default is a free loopback port.
    pub addr: SocketAddr,
    /// The start of the URLs handed out (`http://127.0.0.1:PORT` when `None`).
    pub base_url: Option<String>,
    /// How long a stored request waits for its connection (kubelet: 1 minute).
    pub request_ttl: Duration,
    /// The most requests waiting at once (kubelet: 1000).
    pub max_in_flight: usize,
    /// How long a SPDY client has to open its streams (kubelet: 30 s).
    pub stream_creation_timeout: Duration,
    /// How long a connection may stay with nothing read or written before it is closed
    /// (kubelet and containerd: 4 hours).
    pub stream_idle_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            base_url: None,
            request_ttl: Duration::from_secs(60),
            max_in_flight: 1000,
            stream_creation_timeout: Duration::from_secs(30),
            stream_idle_timeout: Duration::from_secs(4 * 3600),
        }
    }
}

/// Why a request cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("streaming server: bind {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("{0}")]
    InvalidArgument(&'static str),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

struct Inner {
    cache: RequestCache,
    backend: Arc<dyn Backend>,
    config: Config,
}

/// A running streaming server; dropping it stops accepting connections.
pub struct Server {
    addr: SocketAddr,
    base_url: String,
    inner: Arc<Inner>,
    accept: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Server {
    /// Binds and starts serving.
    pub async fn bind(config: Config, backend: Arc<dyn Backend>) -> Result<Self, ServerError> {
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|e| ServerError::Bind(config.addr, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServerError::Bind(config.addr, e))?;
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let inner = Arc::new(Inner {
            cache: RequestCache::new(config.request_ttl, config.max_in_flight),
            backend,
            config,
        });
        let accept = tokio::spawn(accept_loop(listener, inner.clone()));
        Ok(Self {
            addr,
            base_url: base_url.trim_end_matches('/').to_string(),
            inner,
            accept,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn url(&self, kind: &str, request: Request) -> Result<String, ServerError> {
        let token = self.inner.cache.insert(request)?;
        Ok(format!("{}/{kind}/{token}", self.base_url))
    }

    /// The URL of an exec session (CRI `Exec`).
    pub fn get_exec(&self, req: ExecRequest) -> Result<String, ServerError> {
        check_streams(
            &req.container_id,
            req.tty,
            req.stdin,
            req.stdout,
            req.stderr,
        )?;
        if req.cmd.is_empty() {
            return Err(ServerError::InvalidArgument("missing required cmd"));
        }
        self.url("exec", Request::Exec(req))
    }

    /// The URL of an attach session (CRI `Attach`).
    pub fn get_attach(&self, req: AttachRequest) -> Result<String, ServerError> {
        check_streams(
            &req.container_id,
            req.tty,
            req.stdin,
            req.stdout,
            req.stderr,
        )?;
        self.url("attach", Request::Attach(req))
    }

    /// The URL of a port forward (CRI `PortForward`).
    pub fn get_port_forward(&self, req: PortForwardRequest) -> Result<String, ServerError> {
        if req.pod_sandbox_id.is_empty() {
            return Err(ServerError::InvalidArgument(
                "missing required pod_sandbox_id",
            ));
        }
        self.url("portforward", Request::PortForward(req))
    }
}

/// kubelet's checks of GetExec and GetAttach.
fn check_streams(
    id: &str,
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
) -> Result<(), ServerError> {
    if id.is_empty() {
        return Err(ServerError::InvalidArgument(
            "missing required container_id",
        ));
    }
    if tty && stderr {
        return Err(ServerError::InvalidArgument(
            "tty and stderr cannot both be true",
        ));
    }
    if !stdin && !stdout && !stderr {
        return Err(ServerError::InvalidArgument(
            "one of stdin, stdout, or stderr must be set",
        ));
    }
    Ok(())
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!("streaming server: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small frames go out at once (Go's default, which kubelet has).
        let _ = stream.set_nodelay(true);
        let inner = inner.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let inner = inner.clone();
                async move { Ok::<_, Infallible>(handle(req, inner)) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
            if let Err(e) = served {
                tracing::debug!("streaming server: connection: {e}");
            }
        });
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.into())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn not_found() -> Response<Full<Bytes>> {
    text(StatusCode::NOT_FOUND, "404 page not found\n")
}

fn header_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn header_has(headers: &HeaderMap, name: impl header::AsHeaderName, word: &str) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains(word))
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        && header_has(headers, header::CONNECTION, "upgrade")
}

/// How the client will talk, once negotiated.
enum Transport {
    Spdy(String),
    WebSocket { protocol: String, accept: String },
}

/// The negotiation; `Err` is the response refusing it.
fn negotiate(
    headers: &HeaderMap,
    spdy: &[&'static str],
    websocket: &[&str],
) -> Result<Transport, Box<Response<Full<Bytes>>>> {
    if is_websocket(headers) {
        let key = headers
            .get("sec-websocket-key")
            .map(|k| derive_accept_key(k.as_bytes()));
        let version_ok = headers
            .get("sec-websocket-version")
            .is_some_and(|v| v.as_bytes() == b"13");
        let (Some(accept), true) = (key, version_ok) else {
            return Err(Box::new(text(
                StatusCode::BAD_REQUEST,
                "bad WebSocket handshake",
            )));
        };
        let client = header_values(headers, "sec-websocket-protocol");
        if client.is_empty() {
            return Ok(Transport::WebSocket {
                protocol: String::new(),
                accept,
            });
        }
        return match client.iter().find(|p| websocket.contains(&p.as_str())) {
            Some(p) => Ok(Transport::WebSocket {
                protocol: p.clone(),
                accept,
            }),
            None => Err(Box::new(text(
                StatusCode::FORBIDDEN,
                format!(
                    "requested protocol(s) are not supported: {client:?}; supports {websocket:?}"
                ),
            ))),
        };
    }
    let client = header_values(headers, "x-stream-protocol-version");
    if client.is_empty() {
        return Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: X-Stream-Protocol-Version is required",
        )));
    }
    let Some(protocol) = client.iter().find(|p| spdy.contains(&p.as_str())) else {
        let mut resp = text(
            StatusCode::FORBIDDEN,
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {client:?}, server accepts {spdy:?}"
            ),
        );
        for p in spdy {
            resp.headers_mut().append(
                "x-accepted-stream-protocol-versions",
                header::HeaderValue::from_static(p),
            );
        }
        return Err(Box::new(resp));
    };
    if !header_has(headers, header::CONNECTION, "upgrade")
        || !header_has(headers, header::UPGRADE, "spdy/3.1")
    {
        return Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request",
        )));
    }
    Ok(Transport::Spdy(protocol.clone()))
}

fn switching(transport: &Transport) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    let value = |s: &str| header::HeaderValue::from_str(s).ok();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    match transport {
        Transport::Spdy(protocol) => {
            h.insert(
                header::UPGRADE,
                header::HeaderValue::from_static("SPDY/3.1"),
            );
            if let Some(v) = value(protocol) {
                h.insert("x-stream-protocol-version", v);
            }
        }
        Transport::WebSocket { protocol, accept } => {
            h.insert(
                header::UPGRADE,
                header::HeaderValue::from_static("websocket"),
            );
            if let Some(v) = value(accept) {
                h.insert("sec-websocket-accept", v);
            }
            if !protocol.is_empty() {
                if let Some(v) = value(protocol) {
                    h.insert("sec-websocket-protocol", v);
                }
            }
        }
    }
    resp
}

fn handle(mut req: HttpRequest<Incoming>, inner: Arc<Inner>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let Some((kind, token)) = path.trim_start_matches('/').split_once('/') else {
        return not_found();
    };
    if token.is_empty() || token.contains('/') {
        return not_found();
    }
    if !matches!(*req.method(), Method::GET | Method::POST) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed");
    }
    if !matches!(kind, "exec" | "attach" | "portforward") {
        return not_found();
    }
    let Some(request) = inner.cache.consume(token) else {
        return not_found();
    };
    let query_ports = query_ports(req.uri().query().unwrap_or_default());
    let (spdy, websocket) = match kind {
        "portforward" => (portforward::SPDY_PROTOCOLS, portforward::WS_PROTOCOLS),
        _ => (remotecommand::SPDY_PROTOCOLS, remotecommand::WS_PROTOCOLS),
    };
    let transport = match negotiate(req.headers(), spdy, websocket) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let session: Session = match (kind, request) {
        ("exec", Request::Exec(e)) => Session::Exec(e),
        ("attach", Request::Attach(a)) => Session::Attach(a),
        ("portforward", Request::PortForward(mut p)) => {
            if p.ports.is_empty() {
                match query_ports {
                    Ok(ports) => p.ports = ports,
                    Err(e) if matches!(transport, Transport::WebSocket { .. }) => {
                        return text(StatusCode::BAD_REQUEST, e);
                    }
                    Err(_) => {}
                }
            }
            if matches!(transport, Transport::WebSocket { .. })
                && (p.ports.is_empty() || p.ports.len() > MAX_WS_PORTS)
            {
                return text(
                    StatusCode::BAD_REQUEST,
                    "query parameter \"port\" is required",
                );
            }
            Session::PortForward(p)
        }
        _ => return not_found(),
    };
    let resp = switching(&transport);
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::debug!("streaming server: upgrade: {e}");
                return;
            }
        };
        match transport {
            Transport::Spdy(protocol) => session.serve_spdy(upgraded, &protocol, &inner).await,
            Transport::WebSocket { protocol, .. } => {
                let ws =
                    WebSocketStream::from_raw_socket(upgraded, Role::Server, Some(ws::config()))
                        .await;
                session.serve_ws(ws, &protocol, &inner).await;
            }
        }
    });
    resp
}

/// `port` query parameters (repeated, or comma-separated), as kubelet parses them.
fn query_ports(query: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (k, v) in form_pairs(query) {
        if k != "port" {
            continue;
        }
        if v.is_empty() {
            return Err("query parameter \"port\" cannot be empty".into());
        }
        for p in v.split(',') {
            match p.parse::<u16>() {
                Ok(0) => return Err(format!("port {v:?} must be > 0")),
                Ok(port) => ports.push(port),
                Err(e) => return Err(format!("unable to parse {v:?} as a port: {e}")),
            }
        }
    }
    if ports.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    Ok(ports)
}

fn form_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|s| !s.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k.to_string(), v.replace("%2C", ",").replace("%2c", ","))
    })
}

enum Session {
    Exec(ExecRequest),
    Attach(AttachRequest),
    PortForward(PortForwardRequest),
}

fn options(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> Options {
    Options {
        stdin,
        stdout,
        // A terminal merges stderr into stdout.
        stderr: stderr && !tty,
        tty,
    }
}

impl Session {
    async fn serve_spdy(
        self,
        io: TokioIo<hyper::upgrade::Upgraded>,
        protocol: &str,
        inner: &Inner,
    ) {
        let backend = inner.backend.clone();
        let timeout = Timeouts {
            creation: inner.config.stream_creation_timeout,
            idle: inner.config.stream_idle_timeout,
        };
        match self {
            Session::Exec(e) => {
                let opts = options(e.stdin, e.stdout, e.stderr, e.tty);
                let cmd = e.cmd.clone();
                remotecommand::serve_spdy(
                    io,
                    protocol,
                    opts,
                    timeout,
                    &cmd,
                    |streams| async move {
                        exec_outcome(backend.exec(&e.container_id, &e.cmd, e.tty, streams).await)
                    },
                )
                .await;
            }
            Session::Attach(a) => {
                let opts = options(a.stdin, a.stdout, a.stderr, a.tty);
                remotecommand::serve_spdy(io, protocol, opts, timeout, &[], |streams| async move {
                    attach_outcome(backend.attach(&a.container_id, a.tty, streams).await)
                })
                .await;
            }
            Session::PortForward(p) => {
                portforward::serve_spdy(io, backend, p.pod_sandbox_id, timeout).await;
            }
        }
    }

    async fn serve_ws(
        self,
        ws: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
        protocol: &str,
        inner: &Inner,
    ) {
        let backend = inner.backend.clone();
        let idle = inner.config.stream_idle_timeout;
        match self {
            Session::Exec(e) => {
                let opts = options(e.stdin, e.stdout, e.stderr, e.tty);
                let cmd = e.cmd.clone();
                remotecommand::serve_ws(ws, protocol, opts, idle, &cmd, |streams| async move {
                    exec_outcome(backend.exec(&e.container_id, &e.cmd, e.tty, streams).await)
                })
                .await;
            }
            Session::Attach(a) => {
                let opts = options(a.stdin, a.stdout, a.stderr, a.tty);
                remotecommand::serve_ws(ws, protocol, opts, idle, &[], |streams| async move {
                    attach_outcome(backend.attach(&a.container_id, a.tty, streams).await)
                })
                .await;
            }
            Session::PortForward(p) => {
                portforward::serve_ws(ws, protocol, backend, p.pod_sandbox_id, p.ports, idle).await;
            }
        }
    }
}

fn exec_outcome(r: Result<i32, crate::backend::BackendError>) -> Outcome {
    match r {
        Ok(code) => Outcome::Exit(code),
        Err(e) => Outcome::Failed(e.0),
    }
}

fn attach_outcome(r: Result<(), crate::backend::BackendError>) -> Outcome {
    match r {
        Ok(()) => Outcome::Done,
        Err(e) => Outcome::Failed(e.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_as_kubelet() {
        assert_eq!(
            query_ports("port=80&port=443,8080").unwrap(),
            vec![80, 443, 8080]
        );
        assert!(query_ports("port=0").is_err());
        assert!(query_ports("port=").is_err());
        assert!(query_ports("port=70000").is_err());
        assert!(query_ports("").is_err());
    }
}
