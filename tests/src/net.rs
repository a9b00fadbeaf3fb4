//! Host-side networking helpers of the network tests (crate and daemon): free ports, the
//! host's address, and the firewall rules a CNI `portmap` plugin made for a container.

use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;

/// A TCP port nothing on the host listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a free TCP port")
}

/// The host's address on its default route (not loopback, not a test bridge's).
pub fn host_address() -> Ipv4Addr {
    let out = Command::new("ip")
        .args(["-4", "-o", "route", "get", "1.1.1.1"])
        .output()
        .expect("running ip route get");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "src")
        .nth(1)
        .and_then(|ip| ip.parse().ok())
        .expect("the host has an IPv4 default route")
}

/// The lines of `iptables-save` that are `portmap`'s for `container`: its rules in
/// `CNI-HOSTPORT-DNAT` (their comment names the container) and every line of the per-container
/// chains they jump to (`CNI-DN-<hash>`).
pub fn portmap_rules(container: &str) -> Vec<String> {
    let out = Command::new("iptables-save")
        .output()
        .expect("running iptables-save");
    assert!(out.status.success(), "iptables-save failed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let tag = format!("id: \\\"{container}\\\"");
    let chains: Vec<String> = text
        .lines()
        .filter(|l| l.contains(&tag))
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "-j").nth(1))
        .filter(|c| c.starts_with("CNI-DN-"))
        .map(str::to_string)
        .collect();
    text.lines()
        .filter(|l| l.contains(&tag) || chains.iter().any(|c| l.contains(c.as_str())))
        .map(str::to_string)
        .collect()
}
