//! The kernel switches networks need: IPv4 forwarding (for outbound traffic and published
//! ports) and `route_localnet` on a bridge (so traffic to 127.0.0.1 DNATed to a container in the
//! `output` chain may be routed out of the bridge; the firewall then masquerades its source).

use std::path::PathBuf;

/// A sysctl that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("setting {}: {source}", path.display())]
pub struct SysctlError {
    /// The `/proc/sys` file.
    pub path: PathBuf,
    /// The error.
    pub source: std::io::Error,
}

fn set(path: PathBuf, value: &str) -> Result<(), SysctlError> {
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value).map_err(|source| SysctlError { path, source })
}

/// Turns on `net.ipv4.ip_forward` (left on, as Docker leaves it).
pub fn enable_ip_forward() -> Result<(), SysctlError> {
    set(PathBuf::from("/proc/sys/net/ipv4/ip_forward"), "1")
}

/// Turns on `net.ipv4.conf.<interface>.route_localnet`.
pub fn enable_route_localnet(interface: &str) -> Result<(), SysctlError> {
    set(
        PathBuf::from(format!(
            "/proc/sys/net/ipv4/conf/{interface}/route_localnet"
        )),
        "1",
    )
}
