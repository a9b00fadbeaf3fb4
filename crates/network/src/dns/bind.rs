//! The server's sockets, created inside the container's network namespace.
//!
//! A socket belongs to the namespace of the thread that created it, for its whole life, and
//! `setns` changes only the calling thread. So one short-lived thread joins the namespace,
//! binds the UDP socket and the TCP listener (close-on-exec, as std makes every socket, then
//! non-blocking), hands them back and ends; the caller's threads never leave the daemon's
//! namespace.

use std::fs::File;
use std::net::{SocketAddrV4, TcpListener, UdpSocket};
use std::path::Path;

use nix::sched::{setns, CloneFlags};

use super::DnsError;

/// The server's two sockets, still std ones.
pub(crate) struct Sockets {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

/// Binds UDP and TCP `addr` in the network namespace at `netns`.
pub(crate) fn bind_in_netns(netns: &Path, addr: SocketAddrV4) -> Result<Sockets, DnsError> {
    let netns_err = |source| DnsError::Netns {
        path: netns.to_path_buf(),
        source,
    };
    let file = File::open(netns).map_err(netns_err)?;
    let bind_err = |proto| {
        move |source| DnsError::Bind {
            proto,
            addr,
            source,
        }
    };
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("berth-dns-bind".to_string())
            .spawn_scoped(scope, || {
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| netns_err(std::io::Error::from(e)))?;
                let udp = UdpSocket::bind(addr).map_err(bind_err("udp"))?;
                udp.set_nonblocking(true).map_err(bind_err("udp"))?;
                let tcp = TcpListener::bind(addr).map_err(bind_err("tcp"))?;
                tcp.set_nonblocking(true).map_err(bind_err("tcp"))?;
                Ok(Sockets { udp, tcp })
            })
            .map_err(|e| DnsError::Thread(e.to_string()))?;
        thread
            .join()
            .map_err(|_| DnsError::Thread("the thread panicked".to_string()))?
    })
}
