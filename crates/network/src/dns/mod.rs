//! Docker's embedded DNS server: a resolver at `127.0.0.11:53` inside a container's network
//! namespace, for containers on user-defined networks. As dockerd's, its sockets listen on
//! random ports of 127.0.0.11, and a `nat` table in the namespace (`table ip berth_dns`)
//! sends UDP and TCP port 53 of 127.0.0.11 there: port 53 of every other address stays free
//! for a DNS server of the container's own.
//!
//! It answers the engine's names (container names, network aliases) from the engine's own data
//! through a [`Resolver`], and forwards every other query to the upstream resolvers the
//! `Resolver` names. One [`DnsServer`] serves one container:
//!
//! - its UDP socket and TCP listener are created inside the container's namespace by a
//!   short-lived thread (`bind`), which also installs the redirection (an `nft` run, which
//!   inherits the thread's namespace), then served as tasks on the caller's tokio runtime;
//! - `A` and `AAAA` queries for an engine name get the addresses (TTL 600, AA and RA set);
//!   other types for an engine name get an empty NOERROR, so they are not leaked upstream;
//!   `PTR` queries (`in-addr.arpa`, `ip6.arpa`) for a container's address get its name
//!   (`answer`);
//! - anything else is forwarded from the daemon's namespace, upstream by upstream, over the
//!   transport it came in on, and the reply relayed unchanged; SERVFAIL when none answers
//!   (`forward`);
//! - malformed queries get FORMERR when they have a header, nothing otherwise (`wire`).
//!
//! Dropping the `DnsServer` stops it: its tasks end and close their sockets within a moment
//! (an open socket would keep the namespace alive). [`DnsServer::shutdown`] does the same and
//! returns once every socket is closed.

mod answer;
mod bind;
mod forward;
mod wire;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use answer::{answer, servfail, Action};
use forward::{forward, Transport};
use wire::{MAX_TCP, MAX_UDP};

/// The address containers use.
pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// The port containers ask on, UDP and TCP (redirected to the server's own ports).
pub const PORT: u16 = 53;
/// The nftables table in a container's namespace that redirects [`PORT`] to the server.
pub const REDIRECT_TABLE: &str = "berth_dns";

/// How long a TCP connection may stay idle (or take to send one query).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Forwarded UDP queries in flight at once, per server; more get SERVFAIL.
const MAX_UDP_FORWARDS: usize = 256;
/// TCP connections at once, per server; more are closed at once.
const MAX_TCP_CONNECTIONS: usize = 64;

/// What the engine supplies. Called on every query; must be cheap and non-blocking.
pub trait Resolver: Send + Sync + 'static {
    /// IPv4 addresses of `name` (lowercase, without trailing dot) as seen by container
    /// `container_id`; None when the name is not one of the engine's (then the query is
    /// forwarded). The answer keeps the order given.
    fn lookup(&self, container_id: &str, name: &str) -> Option<Vec<Ipv4Addr>>;
    /// The name of `ip` for a PTR query (in-addr.arpa) from `container_id`, if it is a
    /// container's.
    fn reverse(&self, container_id: &str, ip: Ipv4Addr) -> Option<String>;
    /// Where to forward other queries for this container (host resolvers, or the container's
    /// --dns), usually port 53. Reached from the daemon's network namespace.
    fn upstreams(&self, container_id: &str) -> Vec<SocketAddr>;
    /// IPv6 addresses of `name` (one [`Resolver::lookup`] knows) for `AAAA` queries; none by
    /// default.
    fn lookup6(&self, _container_id: &str, _name: &str) -> Option<Vec<Ipv6Addr>> {
        None
    }
    /// The name of `ip` for a PTR query (ip6.arpa); none by default.
    fn reverse6(&self, _container_id: &str, _ip: Ipv6Addr) -> Option<String> {
        None
    }
}

/// What the server sends back for `message` (a query from container `container_id`) when no
/// upstream answers: its own answer, or SERVFAIL for a name it would forward, or nothing
/// (`None`) for what it drops. Replies are at most `max_len` bytes (512 for UDP, 65535 for
/// TCP). The server's own reading of untrusted bytes, without sockets: the fuzz targets call
/// it.
pub fn answer_offline(
    message: &[u8],
    container_id: &str,
    resolver: &dyn Resolver,
    max_len: usize,
) -> Option<Vec<u8>> {
    match answer(message, container_id, resolver, max_len) {
        Action::Reply(reply) => Some(reply),
        Action::Drop => None,
        Action::Forward { header, question } => Some(servfail(&header, &question, max_len)),
    }
}

/// Something the DNS server could not do.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// Not called from inside a tokio runtime.
    #[error("the DNS server needs a tokio runtime: {0}")]
    NoRuntime(String),
    /// The network namespace file could not be opened or joined.
    #[error("network namespace {}: {source}", path.display())]
    Netns {
        /// The namespace file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A socket could not be made or bound.
    #[error("binding the DNS {proto} socket to {addr}: {source}")]
    Bind {
        /// `udp` or `tcp`.
        proto: &'static str,
        /// The address.
        addr: SocketAddrV4,
        /// The error.
        source: std::io::Error,
    },
    /// The thread that binds the sockets could not be started, or failed.
    #[error("the DNS socket thread: {0}")]
    Thread(String),
    /// Port 53 could not be redirected to the server's ports in the namespace.
    #[error("redirecting port 53 to the DNS server: {0}")]
    Redirect(String),
    /// A DNS message that cannot be read.
    #[error("malformed DNS message: {0}")]
    Malformed(&'static str),
}

/// A running server for one container; dropping it stops it and closes its sockets.
#[derive(Debug)]
pub struct DnsServer {
    /// Dropping it tells the tasks to stop.
    stop: Option<watch::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
}

/// What every task of one server shares.
struct Shared {
    container_id: String,
    resolver: Arc<dyn Resolver>,
}

impl DnsServer {
    /// Binds UDP and TCP on random ports of 127.0.0.11 inside the network namespace at
    /// `netns` (a bind-mounted nsfs file or /proc/PID/ns/net), redirects port 53 there (the
    /// namespace's `berth_dns` table, replaced if a server ran before) and serves them on the
    /// current tokio runtime.
    pub fn start(
        netns: &Path,
        container_id: String,
        resolver: Arc<dyn Resolver>,
    ) -> Result<DnsServer, DnsError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| DnsError::NoRuntime(e.to_string()))?;
        let addr = SocketAddrV4::new(ADDRESS, 0);
        let sockets = bind::bind_in_netns(netns, addr)?;
        let _entered = runtime.enter();
        let bind_err = |proto| {
            move |source| DnsError::Bind {
                proto,
                addr,
                source,
            }
        };
        let udp = UdpSocket::from_std(sockets.udp).map_err(bind_err("udp"))?;
        let tcp = TcpListener::from_std(sockets.tcp).map_err(bind_err("tcp"))?;
        let (stop, stopped) = watch::channel(());
        let shared = Arc::new(Shared {
            container_id,
            resolver,
        });
        let tasks = vec![
            runtime.spawn(serve_udp(Arc::new(udp), shared.clone(), stopped.clone())),
            runtime.spawn(serve_tcp(tcp, shared, stopped)),
        ];
        Ok(DnsServer {
            stop: Some(stop),
            tasks,
        })
    }

    /// Stops the server and returns once its sockets are closed.
    pub async fn shutdown(mut self) {
        self.stop = None;
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        // Dropping the sender ends the tasks; they close their sockets as they return.
        self.stop = None;
    }
}

/// Serves the UDP socket until `stop`'s sender is dropped.
async fn serve_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>, mut stop: watch::Receiver<()>) {
    let forwards = Arc::new(Semaphore::new(MAX_UDP_FORWARDS));
    let mut pending = JoinSet::new();
    // Queries over UDP are 512 bytes without EDNS and seldom over 4 kB with it; a longer one
    // arrives cut and gets FORMERR. (The buffer lives as long as the container.)
    let mut buf = vec![0u8; 4096];
    let id = &shared.container_id;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(done) = pending.join_next(), if !pending.is_empty() => {
                if let Err(e) = done {
                    tracing::warn!(container = id, error = %e, "dns forward task failed");
                }
            }
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, peer)) => {
                    let query = &buf[..n];
                    let action = answer(query, id, &*shared.resolver, MAX_UDP);
                    match action {
                        Action::Reply(reply) => send(&socket, &reply, peer, id).await,
                        Action::Drop => {}
                        Action::Forward { header, question } => {
                            let Ok(permit) = forwards.clone().try_acquire_owned() else {
                                tracing::debug!(container = id, "dns: too many forwards");
                                let reply = servfail(&header, &question, MAX_UDP);
                                send(&socket, &reply, peer, id).await;
                                continue;
                            };
                            let (socket, shared) = (socket.clone(), shared.clone());
                            let query = query.to_vec();
                            pending.spawn(async move {
                                let upstreams = shared.resolver.upstreams(&shared.container_id);
                                let reply = forward(&query, &upstreams, Transport::Udp)
                                    .await
                                    .unwrap_or_else(|| servfail(&header, &question, MAX_UDP));
                                send(&socket, &reply, peer, &shared.container_id).await;
                                drop(permit);
                            });
                        }
                    }
                }
                Err(e) => tracing::debug!(container = id, error = %e, "dns udp receive"),
            }
        }
    }
    pending.shutdown().await;
}

async fn send(socket: &UdpSocket, reply: &[u8], peer: SocketAddr, container_id: &str) {
    if let Err(e) = socket.send_to(reply, peer).await {
        tracing::debug!(container = container_id, %peer, error = %e, "dns udp send");
    }
}

/// Serves the TCP listener until `stop`'s sender is dropped.
async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<()>) {
    let mut connections = JoinSet::new();
    let id = &shared.container_id;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if connections.len() < MAX_TCP_CONNECTIONS => {
                    connections.spawn(serve_connection(stream, shared.clone()));
                }
                Ok(_) => tracing::debug!(container = id, "dns: too many tcp connections"),
                Err(e) => {
                    tracing::debug!(container = id, error = %e, "dns tcp accept");
                    // Out of descriptors, say: let some go before trying again.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Answers length-prefixed queries on one connection, one after the other, until the peer
/// closes it, stays idle for [`TCP_IDLE`], or sends something that is not a query.
async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>) {
    loop {
        let Ok(Some(query)) = tokio::time::timeout(TCP_IDLE, read_message(&mut stream)).await
        else {
            return;
        };
        let reply = match answer(&query, &shared.container_id, &*shared.resolver, MAX_TCP) {
            Action::Reply(reply) => reply,
            Action::Drop => return,
            Action::Forward { header, question } => {
                let upstreams = shared.resolver.upstreams(&shared.container_id);
                forward(&query, &upstreams, Transport::Tcp)
                    .await
                    .unwrap_or_else(|| servfail(&header, &question, MAX_TCP))
            }
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        let mut message = Vec::with_capacity(2 + reply.len());
        message.extend_from_slice(&len.to_be_bytes());
        message.extend_from_slice(&reply);
        match tokio::time::timeout(TCP_IDLE, stream.write_all(&message)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

/// One length-prefixed message, or `None` at the end of the stream or on an error.
async fn read_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.ok()?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message).await.ok()?;
    Some(message)
}
