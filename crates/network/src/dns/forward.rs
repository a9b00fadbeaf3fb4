//! Forwarding to the upstream resolvers, from the daemon's network namespace.
//!
//! Every forwarded query gets a fresh socket (a fresh source port, so replies cannot be
//! confused), made on a runtime worker thread, which is in the daemon's namespace: upstreams
//! such as `127.0.0.53` are the host's. Upstreams are tried in order, each for at most
//! [`UPSTREAM_TIMEOUT`]; a SERVFAIL or REFUSED reply moves on to the next one too, and is
//! relayed only when no upstream answers better. Replies are relayed byte for byte.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::wire::{Header, MAX_TCP, RCODE_REFUSED, RCODE_SERVFAIL};

/// How long one upstream may take to answer.
pub(crate) const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The transport a query came in on, and goes out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp,
    Tcp,
}

/// Forwards `query` to `upstreams` in order; the first good reply, or `None` when none
/// answered.
pub(crate) async fn forward(
    query: &[u8],
    upstreams: &[SocketAddr],
    transport: Transport,
) -> Option<Vec<u8>> {
    let id = Header::parse(query)?.id;
    let mut fallback = None;
    for &upstream in upstreams {
        let attempt = async {
            match transport {
                Transport::Udp => udp(query, id, upstream).await,
                Transport::Tcp => tcp(query, id, upstream).await,
            }
        };
        match tokio::time::timeout(UPSTREAM_TIMEOUT, attempt).await {
            Ok(Ok(reply)) => {
                let rcode = Header::parse(&reply).map(|h| h.rcode());
                if matches!(rcode, Some(RCODE_SERVFAIL | RCODE_REFUSED)) {
                    tracing::debug!(%upstream, "dns upstream refused or failed; trying the next");
                    fallback = Some(reply);
                    continue;
                }
                return Some(reply);
            }
            Ok(Err(e)) => tracing::debug!(%upstream, error = %e, "dns upstream failed"),
            Err(_) => tracing::debug!(%upstream, "dns upstream timed out"),
        }
    }
    fallback
}

/// Whether `reply` answers the query with `id`.
fn answers(reply: &[u8], id: u16) -> bool {
    Header::parse(reply).is_some_and(|h| h.id == id && h.is_response())
}

async fn udp(query: &[u8], id: u16, upstream: SocketAddr) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; MAX_TCP];
    loop {
        let n = socket.recv(&mut buf).await?;
        if answers(&buf[..n], id) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn tcp(query: &[u8], id: u16, upstream: SocketAddr) -> std::io::Result<Vec<u8>> {
    let len = u16::try_from(query.len()).map_err(std::io::Error::other)?;
    let mut stream = TcpStream::connect(upstream).await?;
    let mut message = Vec::with_capacity(2 + query.len());
    message.extend_from_slice(&len.to_be_bytes());
    message.extend_from_slice(query);
    stream.write_all(&message).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).await?;
    if !answers(&reply, id) {
        return Err(std::io::Error::other("the reply does not answer the query"));
    }
    Ok(reply)
}
