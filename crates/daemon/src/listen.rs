//! Where berthd listens, as dockerd's `-H`: `unix://PATH` (the socket `root:GROUP 0660`, as
//! dockerd's `--group`), `tcp://HOST:PORT` (with TLS when configured, see [`crate::tls`]) and
//! `fd://` / `fd://N` (sockets handed over by systemd's socket activation, `LISTEN_FDS` and
//! `LISTEN_PID`). Every listener gets an accept loop; every connection its own task.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::net::TcpListener;
use std::os::unix::net::UnixListener;

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::hijack::Connection;
use crate::server::{self, State};

/// The default address (`-H` absent, daemon.json without `hosts`).
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

/// dockerd's default socket group: missing, it is silently left alone.
pub const DEFAULT_GROUP: &str = "docker";

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("error parsing -H {host} : {reason}")]
    Parse { host: String, reason: String },
    #[error("can't create unix socket {path:?}: {source}")]
    Unix {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("group {0} not found")]
    Group(String),
    #[error("listen tcp {addr}: {source}")]
    Tcp {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "no sockets found via socket activation: make sure the service was started by systemd"
    )]
    NoActivation,
    #[error("no socket activated file descriptor {0} (LISTEN_FDS)")]
    NoSuchFd(RawFd),
    #[error("the socket activated descriptor {fd}: {source}")]
    Fd { fd: RawFd, source: std::io::Error },
    #[error("the socket activated descriptor {0} is neither a unix nor a tcp socket")]
    FdKind(RawFd),
}

/// One `-H` address, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    /// `HOST:PORT`.
    Tcp(String),
    /// `fd://` (None: every activated socket) or `fd://N`.
    Fd(Option<RawFd>),
}

impl Host {
    /// Parses `addr` as dockerd does: no scheme means `tcp://`; a TCP address without a port
    /// gets 2376 with TLS, else 2375; without a host, 127.0.0.1.
    pub fn parse(addr: &str, tls: bool) -> Result<Host, ListenError> {
        let bad = |reason: &str| ListenError::Parse {
            host: addr.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = addr.split_once("://").unwrap_or(("tcp", addr));
        match scheme {
            "unix" => {
                let path = if rest.is_empty() {
                    DEFAULT_HOST.trim_start_matches("unix://")
                } else {
                    rest
                };
                Ok(Host::Unix(PathBuf::from(path)))
            }
            "fd" if rest.is_empty() => Ok(Host::Fd(None)),
            "fd" => rest
                .parse()
                .map(|fd| Host::Fd(Some(fd)))
                .map_err(|_| bad("invalid file descriptor")),
            "tcp" => {
                let rest = rest.trim_end_matches('/');
                if rest.contains('/') {
                    return Err(bad("invalid bind address: paths are not supported"));
                }
                let default_port = if tls { "2376" } else { "2375" };
                let (host, port) = match rest.rsplit_once(':') {
                    // An IPv6 address needs brackets with a port: `[::1]:2376`.
                    Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, p),
                    _ => (rest, ""),
                };
                let host = if host.is_empty() { "127.0.0.1" } else { host };
                let port = if port.is_empty() { default_port } else { port };
                if port.parse::<u16>().is_err() {
                    return Err(bad("invalid port"));
                }
                Ok(Host::Tcp(format!("{host}:{port}")))
            }
            other => Err(bad(&format!("invalid bind address format: {other}"))),
        }
    }
}

/// A bound listener (std's: binding happens before the runtime starts; see [`serve`]).
enum Bound {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// What [`bind`] made: the listeners, and the socket files to remove at exit.
pub struct Listeners {
    bound: Vec<(String, Bound)>,
    pub socket_files: Vec<PathBuf>,
}

/// The socket group's id: a name from the group database, else a number; `None` for the
/// default group when it does not exist (the socket stays root's).
fn socket_gid(group: &str, explicit: bool) -> Result<Option<u32>, ListenError> {
    if group.is_empty() {
        return Ok(None);
    }
    if let Ok(Some(g)) = nix::unistd::Group::from_name(group) {
        return Ok(Some(g.gid.as_raw()));
    }
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(Some(gid));
    }
    if explicit || group != DEFAULT_GROUP {
        return Err(ListenError::Group(group.to_string()));
    }
    tracing::debug!(
        group,
        "the default socket group does not exist: socket left root:root"
    );
    Ok(None)
}

fn bind_unix(path: &Path, gid: Option<u32>) -> Result<UnixListener, ListenError> {
    let err = |source| ListenError::Unix {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    if let Some(gid) = gid {
        rustix::fs::chown(path, None, Some(rustix::fs::Gid::from_raw(gid)))
            .map_err(|e| err(e.into()))?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    Ok(listener)
}

/// The sockets systemd passed (`LISTEN_PID` is this process, `LISTEN_FDS` of them from
/// descriptor 3); the variables are removed, so that children do not see them.
fn activated() -> Vec<OwnedFd> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    if pid.and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id()) {
        return Vec::new();
    }
    let count: RawFd = count.and_then(|c| c.parse().ok()).unwrap_or(0);
    (3..3 + count.clamp(0, 1024))
        // SAFETY: the borrow lasts the one F_GETFD call, which only reads the descriptor's
        // flags; a number that is not an open descriptor fails with EBADF.
        .filter(|fd| rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(*fd) }).is_ok())
        // SAFETY: systemd hands these descriptors over to this process (LISTEN_PID is ours),
        // each once; nothing else in berthd owns them.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect()
}

fn from_activated(fd: OwnedFd) -> Result<Bound, ListenError> {
    let raw = fd.as_raw_fd();
    let addr = rustix::net::getsockname(&fd).map_err(|e| ListenError::Fd {
        fd: raw,
        source: e.into(),
    })?;
    let io = |source| ListenError::Fd { fd: raw, source };
    match addr.address_family() {
        rustix::net::AddressFamily::UNIX => {
            let l = UnixListener::from(fd);
            l.set_nonblocking(true).map_err(io)?;
            Ok(Bound::Unix(l))
        }
        rustix::net::AddressFamily::INET | rustix::net::AddressFamily::INET6 => {
            let l = TcpListener::from(fd);
            l.set_nonblocking(true).map_err(io)?;
            Ok(Bound::Tcp(l))
        }
        _ => Err(ListenError::FdKind(raw)),
    }
}

/// Binds every host (before the engine opens, so that a wrong address fails the start; and
/// before any thread runs, as the activation variables are removed from the environment).
pub fn bind(hosts: &[Host], group: &str, group_explicit: bool) -> Result<Listeners, ListenError> {
    let mut out = Listeners {
        bound: Vec::new(),
        socket_files: Vec::new(),
    };
    let mut fds: Vec<Option<OwnedFd>> = if hosts.iter().any(|h| matches!(h, Host::Fd(_))) {
        activated().into_iter().map(Some).collect()
    } else {
        Vec::new()
    };
    for host in hosts {
        match host {
            Host::Unix(path) => {
                let gid = socket_gid(group, group_explicit)?;
                let l = bind_unix(path, gid)?;
                out.socket_files.push(path.clone());
                out.bound
                    .push((format!("unix://{}", path.display()), Bound::Unix(l)));
            }
            Host::Tcp(addr) => {
                let tcp_err = |source| ListenError::Tcp {
                    addr: addr.clone(),
                    source,
                };
                let l = TcpListener::bind(addr.as_str()).map_err(tcp_err)?;
                l.set_nonblocking(true).map_err(tcp_err)?;
                let shown = l
                    .local_addr()
                    .map_or_else(|_| addr.clone(), |a| a.to_string());
                out.bound.push((format!("tcp://{shown}"), Bound::Tcp(l)));
            }
            Host::Fd(which) => {
                if fds.is_empty() {
                    return Err(ListenError::NoActivation);
                }
                let picked: Vec<OwnedFd> = match which {
                    None => fds.iter_mut().filter_map(Option::take).collect(),
                    Some(n) => {
                        let slot = fds
                            .iter_mut()
                            .find(|f| f.as_ref().is_some_and(|f| f.as_raw_fd() == *n))
                            .and_then(Option::take)
                            .ok_or(ListenError::NoSuchFd(*n))?;
                        vec![slot]
                    }
                };
                for fd in picked {
                    let shown = format!("fd://{}", fd.as_raw_fd());
                    out.bound.push((shown, from_activated(fd)?));
                }
            }
        }
    }
    Ok(out)
}

/// Serves every listener until the future is dropped; `tls` applies to TCP connections.
pub async fn serve(
    listeners: Listeners,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<State>,
) -> std::io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let mut loops = tokio::task::JoinSet::new();
    for (shown, bound) in listeners.bound {
        let bound = match bound {
            Bound::Unix(l) => Async::Unix(tokio::net::UnixListener::from_std(l)?),
            Bound::Tcp(l) => Async::Tcp(tokio::net::TcpListener::from_std(l)?),
        };
        tracing::info!(host = %shown, tls = acceptor.is_some() && matches!(bound, Async::Tcp(_)), "API listening");
        let state = Arc::clone(&state);
        match bound {
            Async::Unix(l) => {
                loops.spawn(async move {
                    loop {
                        match l.accept().await {
                            Ok((stream, _)) => {
                                let conn = Connection(stream.as_raw_fd());
                                server::spawn_connection(Arc::clone(&state), stream, conn);
                            }
                            Err(e) => server::accept_failed(&e).await,
                        }
                    }
                });
            }
            Async::Tcp(l) => {
                let acceptor = acceptor.clone();
                loops.spawn(async move {
                    loop {
                        match l.accept().await {
                            Ok((stream, peer)) => {
                                tcp_connection(Arc::clone(&state), stream, peer, acceptor.clone())
                            }
                            Err(e) => server::accept_failed(&e).await,
                        }
                    }
                });
            }
        }
    }
    while loops.join_next().await.is_some() {}
    Ok(())
}

enum Async {
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener),
}

fn tcp_connection(
    state: Arc<State>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    acceptor: Option<TlsAcceptor>,
) {
    // Interactive attach and exec send a byte at a time.
    let _ = stream.set_nodelay(true);
    let conn = Connection(stream.as_raw_fd());
    let Some(acceptor) = acceptor else {
        server::spawn_connection(state, stream, conn);
        return;
    };
    tokio::spawn(async move {
        match tokio::time::timeout(server::HEADER_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => server::spawn_connection(state, tls, conn),
            Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake refused"),
            Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
        }
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_as_dockerd() {
        assert_eq!(
            Host::parse("unix:///run/x.sock", false).unwrap(),
            Host::Unix("/run/x.sock".into())
        );
        assert_eq!(
            Host::parse("tcp://0.0.0.0", true).unwrap(),
            Host::Tcp("0.0.0.0:2376".into())
        );
        assert_eq!(
            Host::parse("tcp://:2375", false).unwrap(),
            Host::Tcp("127.0.0.1:2375".into())
        );
        assert_eq!(
            Host::parse("10.0.0.1:99", false).unwrap(),
            Host::Tcp("10.0.0.1:99".into())
        );
        assert_eq!(
            Host::parse("tcp://[::1]:2376", true).unwrap(),
            Host::Tcp("[::1]:2376".into())
        );
        assert_eq!(Host::parse("fd://", false).unwrap(), Host::Fd(None));
        assert_eq!(Host::parse("fd://3", false).unwrap(), Host::Fd(Some(3)));
        assert!(Host::parse("tcp://1.2.3.4:x", false).is_err());
        assert!(Host::parse("udp://1.2.3.4:1", false).is_err());
        assert!(Host::parse("fd://x", false).is_err());
    }
}
