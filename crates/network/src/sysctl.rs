//! The kernel switches networks need: IPv4 and IPv6 forwarding (for outbound traffic and
//! published ports), IPv6 on bridges and container interfaces of networks with IPv6, and
//! `route_localnet` on a bridge (so traffic to 127.0.0.1 DNATed to a container in the `output`
//! chain may be routed out of the bridge; the firewall then masquerades its source).

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

/// Turns on `net.ipv6.conf.all.forwarding` (for networks with IPv6; left on, as dockerd
/// leaves it).
pub fn enable_ipv6_forward() -> Result<(), SysctlError> {
    set(PathBuf::from("/proc/sys/net/ipv6/conf/all/forwarding"), "1")
}

/// Turns IPv6 on for `interface` (`net.ipv6.conf.<interface>.disable_ipv6=0`): a host whose
/// default is off would refuse the bridge's IPv6 address.
pub fn enable_ipv6(interface: &str) -> Result<(), SysctlError> {
    set(ipv6_switch(interface), "0")
}

/// [`enable_ipv6`] for `interface` inside the network namespace at `netns`: a short-lived
/// thread joins it (the files under `/proc/sys/net` are those of the opener's namespace).
pub fn enable_ipv6_in_netns(netns: &std::path::Path, interface: &str) -> Result<(), SysctlError> {
    use nix::sched::{setns, CloneFlags};
    let path = ipv6_switch(interface);
    let err = |source| SysctlError {
        path: netns.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(netns).map_err(err)?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| err(e.into()))?;
                set(path.clone(), "0")
            })
            .join()
            .map_err(|_| err(std::io::Error::other("the netns thread panicked")))?
    })
}

fn ipv6_switch(interface: &str) -> PathBuf {
    PathBuf::from(format!("/proc/sys/net/ipv6/conf/{interface}/disable_ipv6"))
}
