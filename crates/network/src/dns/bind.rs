//! The server's sockets, created inside the container's network namespace.
//!
//! A socket belongs to the namespace of the thread that created it, for its whole life, and
//! `setns` changes only the calling thread. So one short-lived thread joins the namespace,
//! binds the UDP socket and the TCP listener (close-on-exec, as std makes every socket, then
//! non-blocking) on random ports, runs `nft` to redirect port 53 to them (a child of that
//! thread starts in its namespace), hands them back and ends; the caller's threads never
//! leave the daemon's namespace.

use std::fs::File;
use std::io::Write;
use std::net::{SocketAddrV4, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};

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
                let udp_port = udp.local_addr().map_err(bind_err("udp"))?.port();
                let tcp_port = tcp.local_addr().map_err(bind_err("tcp"))?.port();
                redirect(&redirect_script(udp_port, tcp_port))?;
                Ok(Sockets { udp, tcp })
            })
            .map_err(|e| DnsError::Thread(e.to_string()))?;
        thread
            .join()
            .map_err(|_| DnsError::Thread("the thread panicked".to_string()))?
    })
}

/// The namespace's redirection of 127.0.0.11 port 53 to the server's ports, replacing an
/// earlier one (a server of an earlier daemon).
pub(crate) fn redirect_script(udp_port: u16, tcp_port: u16) -> String {
    let (t, ip, port) = (super::REDIRECT_TABLE, super::ADDRESS, super::PORT);
    format!(
        "add table ip {t}\ndelete table ip {t}\nadd table ip {t}\n\
         add chain ip {t} output {{ type nat hook output priority -100; policy accept; }}\n\
         add rule ip {t} output ip daddr {ip} udp dport {port} dnat to {ip}:{udp_port}\n\
         add rule ip {t} output ip daddr {ip} tcp dport {port} dnat to {ip}:{tcp_port}\n"
    )
}

/// Runs `nft -f -` with `script` from the calling thread (in the container's namespace).
fn redirect(script: &str) -> Result<(), super::DnsError> {
    let failed = |e: String| super::DnsError::Redirect(e);
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("running nft: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| failed(format!("writing to nft: {e}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| failed(format!("waiting for nft: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(failed(
        String::from_utf8_lossy(&output.stderr).trim().to_string(),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_redirection_names_both_ports() {
        let s = super::redirect_script(40001, 40002);
        assert!(s.contains("udp dport 53 dnat to 127.0.0.11:40001\n"), "{s}");
        assert!(s.contains("tcp dport 53 dnat to 127.0.0.11:40002\n"), "{s}");
        assert!(s.starts_with("add table ip berth_dns\ndelete table ip berth_dns\n"));
    }
}
