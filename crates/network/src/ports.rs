//! Published ports: what a container asks for (`-p [IP:][HOST:]CTR[/PROTO]`), what it gets,
//! and the host-wide table that hands out host ports and refuses conflicts, as Docker's port
//! allocator does. Pure bookkeeping; [`crate::firewall`] installs the DNAT rules.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// A transport protocol that ports are published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// The name nftables and Docker use (`tcp`, `udp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A port a container asks to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    /// The protocol.
    pub proto: Proto,
    /// The host address to listen on; `None` for all (`0.0.0.0`, and `::` for a container
    /// with an IPv6 address).
    pub host_ip: Option<IpAddr>,
    /// The host port; `None` for one chosen from the ephemeral range (`-p CTR`, `-P`).
    pub host_port: Option<u16>,
    /// The container's port.
    pub container_port: u16,
}

/// A published port: host address and port to container address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublishedPort {
    /// The protocol.
    pub proto: Proto,
    /// The host address; `0.0.0.0` (or `::`) for all of its family.
    pub host_ip: IpAddr,
    /// The host port.
    pub host_port: u16,
    /// The container's address (of the host address's family).
    pub container_ip: IpAddr,
    /// The container's port.
    pub container_port: u16,
}

/// A port that cannot be published.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Another container has the host port (Docker's wording).
    #[error("Bind for {ip}:{port} failed: port is already allocated")]
    Allocated {
        /// The host address asked for.
        ip: IpAddr,
        /// The host port asked for.
        port: u16,
    },
    /// No free port is left in the ephemeral range.
    #[error("no free host port left in {lo}-{hi} for {ip}/{proto}")]
    Exhausted {
        /// The host address asked for.
        ip: IpAddr,
        /// The protocol.
        proto: Proto,
        /// The range's first port.
        lo: u16,
        /// The range's last port.
        hi: u16,
    },
    /// Port 0 is not a port.
    #[error("invalid port 0")]
    Zero,
}

/// Every port published on the host, by protocol and host port.
#[derive(Debug, Clone)]
pub struct PortTable {
    by_port: BTreeMap<(Proto, u16), Vec<PublishedPort>>,
    range: (u16, u16),
    next: u16,
}

impl PortTable {
    /// An empty table whose random ports come from `range` (inclusive).
    pub fn new(range: (u16, u16)) -> Self {
        let range = (range.0.max(1), range.1.max(range.0.max(1)));
        PortTable {
            by_port: BTreeMap::new(),
            range,
            next: range.0,
        }
    }

    /// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`), Docker's default
    /// 49153-60999 when it cannot be read.
    pub fn ephemeral_range() -> (u16, u16) {
        let text =
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
        let mut parts = text.split_whitespace().map(str::parse::<u16>);
        match (parts.next(), parts.next()) {
            (Some(Ok(lo)), Some(Ok(hi))) if lo > 0 && lo <= hi => (lo, hi),
            _ => (49153, 60999),
        }
    }

    /// Records a port published before (read back from the firewall on start).
    pub fn insert(&mut self, port: PublishedPort) {
        let entry = self
            .by_port
            .entry((port.proto, port.host_port))
            .or_default();
        if !entry.contains(&port) {
            entry.push(port);
        }
    }

    /// Gives `container_ip` all of `bindings`, or none of them.
    pub fn reserve(
        &mut self,
        container_ip: Ipv4Addr,
        bindings: &[PortBinding],
    ) -> Result<Vec<PublishedPort>, PortError> {
        self.reserve_dual(container_ip, None, bindings)
    }

    /// Gives a container with addresses `v4` and `v6` all of `bindings`, or none of them. A
    /// binding without a host address is published on `0.0.0.0` and, when the container has
    /// an IPv6 address, on `::` with the same host port (as dockerd with `ip6tables`); one for
    /// an IPv6 host address is skipped when the container has none (no proxy to carry it).
    pub fn reserve_dual(
        &mut self,
        v4: Ipv4Addr,
        v6: Option<Ipv6Addr>,
        bindings: &[PortBinding],
    ) -> Result<Vec<PublishedPort>, PortError> {
        let saved = self.clone();
        let mut given = Vec::new();
        let mut reserve = |table: &mut Self, container: IpAddr, binding: &PortBinding| {
            let port = table.reserve_one(container, binding)?;
            given.push(port);
            Ok::<_, PortError>(port)
        };
        for binding in bindings {
            let done = match (binding.host_ip, v6) {
                (None, None) | (Some(IpAddr::V4(_)), _) => {
                    reserve(self, IpAddr::V4(v4), binding).map(|_| ())
                }
                (Some(IpAddr::V6(_)), None) => Ok(()),
                (Some(IpAddr::V6(_)), Some(v6)) => {
                    reserve(self, IpAddr::V6(v6), binding).map(|_| ())
                }
                (None, Some(v6)) => reserve(self, IpAddr::V4(v4), binding).and_then(|first| {
                    let same = PortBinding {
                        host_ip: Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
                        host_port: Some(first.host_port),
                        ..*binding
                    };
                    reserve(self, IpAddr::V6(v6), &same).map(|_| ())
                }),
            };
            if let Err(e) = done {
                *self = saved;
                return Err(e);
            }
        }
        Ok(given)
    }

    fn reserve_one(
        &mut self,
        container_ip: IpAddr,
        binding: &PortBinding,
    ) -> Result<PublishedPort, PortError> {
        if binding.container_port == 0 {
            return Err(PortError::Zero);
        }
        let ip = binding.host_ip.unwrap_or(match container_ip {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        });
        let host_port = match binding.host_port {
            Some(0) => return Err(PortError::Zero),
            Some(port) if self.taken(binding.proto, ip, port) => {
                return Err(PortError::Allocated { ip, port })
            }
            Some(port) => port,
            None => self.random(binding.proto, ip)?,
        };
        let port = PublishedPort {
            proto: binding.proto,
            host_ip: ip,
            host_port,
            container_ip,
            container_port: binding.container_port,
        };
        self.insert(port);
        Ok(port)
    }

    /// Frees `ports` (those of a CNI attachment, whose container address may be shared with
    /// another network's).
    pub fn remove(&mut self, ports: &[PublishedPort]) {
        for port in ports {
            if let Some(entry) = self.by_port.get_mut(&(port.proto, port.host_port)) {
                entry.retain(|p| p != port);
                if entry.is_empty() {
                    self.by_port.remove(&(port.proto, port.host_port));
                }
            }
        }
    }

    /// Frees and returns every port published to `container_ip`.
    pub fn release(&mut self, container_ip: IpAddr) -> Vec<PublishedPort> {
        let mut freed = Vec::new();
        self.by_port.retain(|_, ports| {
            ports.retain(|p| {
                let mine = p.container_ip == container_ip;
                if mine {
                    freed.push(*p);
                }
                !mine
            });
            !ports.is_empty()
        });
        freed
    }

    /// All published ports.
    pub fn all(&self) -> impl Iterator<Item = &PublishedPort> {
        self.by_port.values().flatten()
    }

    /// Whether `ip:port` clashes with a published port of the same family: same address, or
    /// either is the unspecified one (`0.0.0.0`, `::`).
    fn taken(&self, proto: Proto, ip: IpAddr, port: u16) -> bool {
        self.by_port.get(&(proto, port)).is_some_and(|ports| {
            ports.iter().any(|p| {
                p.host_ip.is_ipv4() == ip.is_ipv4()
                    && (p.host_ip == ip || p.host_ip.is_unspecified() || ip.is_unspecified())
            })
        })
    }

    /// The next free port of the range, going round from where the last search stopped.
    fn random(&mut self, proto: Proto, ip: IpAddr) -> Result<u16, PortError> {
        let (lo, hi) = self.range;
        let start = self.next.clamp(lo, hi);
        let found = (start..=hi)
            .chain(lo..start)
            .find(|port| !self.taken(proto, ip, *port));
        let port = found.ok_or(PortError::Exhausted { ip, proto, lo, hi })?;
        self.next = if port == hi { lo } else { port + 1 };
        Ok(port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(host_ip: Option<&str>, host_port: Option<u16>, ctr: u16) -> PortBinding {
        PortBinding {
            proto: Proto::Tcp,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
            host_port,
            container_port: ctr,
        }
    }

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

    #[test]
    fn conflicts_follow_docker() {
        let mut table = PortTable::new((40000, 40001));
        table.reserve(A, &[bind(None, Some(8080), 80)]).unwrap();
        let err = table.reserve(B, &[bind(None, Some(8080), 80)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Bind for 0.0.0.0:8080 failed: port is already allocated"
        );
        assert!(table
            .reserve(B, &[bind(Some("127.0.0.1"), Some(8080), 80)])
            .is_err());
        let udp = PortBinding {
            proto: Proto::Udp,
            ..bind(None, Some(8080), 80)
        };
        assert!(table.reserve(B, &[udp]).is_ok());
        table
            .reserve(B, &[bind(Some("127.0.0.1"), Some(9090), 80)])
            .unwrap();
        assert!(table
            .reserve(A, &[bind(Some("127.0.0.2"), Some(9090), 80)])
            .is_ok());
    }

    #[test]
    fn all_or_nothing_and_release() {
        let mut table = PortTable::new((40000, 40001));
        table.reserve(A, &[bind(None, Some(8080), 80)]).unwrap();
        let both = [bind(None, Some(8081), 81), bind(None, Some(8080), 80)];
        assert!(table.reserve(B, &both).is_err());
        assert_eq!(table.all().count(), 1);
        assert_eq!(table.release(A.into()).len(), 1);
        let given = table.reserve(B, &both).unwrap();
        assert_eq!(given.len(), 2);
        table.remove(&given[..1]);
        assert_eq!(table.all().collect::<Vec<_>>(), vec![&given[1]]);
        table.remove(&given);
        assert_eq!(table.all().count(), 0);
    }

    #[test]
    fn random_ports_come_from_the_range() {
        let mut table = PortTable::new((40000, 40001));
        let a = table.reserve(A, &[bind(None, None, 80)]).unwrap();
        let b = table.reserve(B, &[bind(None, None, 80)]).unwrap();
        assert_eq!((a[0].host_port, b[0].host_port), (40000, 40001));
        assert!(matches!(
            table.reserve(B, &[bind(None, None, 81)]),
            Err(PortError::Exhausted { .. })
        ));
        table.release(A.into());
        assert_eq!(
            table.reserve(B, &[bind(None, None, 81)]).unwrap()[0].host_port,
            40000
        );
    }

    #[test]
    fn dual_stack_bindings_share_the_host_port_and_conflict_per_family() {
        let v6: Ipv6Addr = "fd00:1::2".parse().unwrap();
        let mut table = PortTable::new((40000, 40010));
        let given = table
            .reserve_dual(A, Some(v6), &[bind(None, None, 80)])
            .unwrap();
        assert_eq!(given.len(), 2);
        assert_eq!(given[0].host_port, given[1].host_port);
        assert_eq!(given[1].host_ip, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        assert_eq!(given[1].container_ip, IpAddr::V6(v6));
        let err = table
            .reserve_dual(B, None, &[bind(Some("::1"), Some(given[0].host_port), 80)])
            .unwrap();
        assert!(
            err.is_empty(),
            "an IPv6 host address needs an IPv6 container"
        );
        let err = table
            .reserve_dual(B, Some(v6), &[bind(Some("::1"), Some(40000), 80)])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Bind for ::1:40000 failed: port is already allocated"
        );
        // Only IPv4 left: the same port on another IPv6 address of a v4-only binding is fine.
        assert_eq!(table.release(IpAddr::V6(v6)).len(), 1);
        assert!(table
            .reserve_dual(B, Some(v6), &[bind(Some("::1"), Some(40000), 80)])
            .is_ok());
    }
}
