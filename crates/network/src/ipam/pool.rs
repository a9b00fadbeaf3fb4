//! One network's address pool: its subnet, gateway, optional `--ip-range`, and the address of
//! each container attached to it. Pure data and rules; [`super::Ipam`] persists it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::IpamError;

/// A network's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// The network's subnet (its host bits zero).
    pub subnet: Ipv4Net,
    /// The bridge's address, never given to a container.
    pub gateway: Ipv4Addr,
    /// Where dynamic addresses come from (`--ip-range`); the whole subnet when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Ipv4Net>,
    /// Auxiliary addresses (`--aux-address`): never given.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub reserved: BTreeSet<Ipv4Addr>,
    /// The IPv6 half, for a network with IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v6: Option<super::Pool6>,
    /// Container id to its address.
    #[serde(default)]
    pub allocated: BTreeMap<String, Ipv4Addr>,
    /// The last dynamic address given, where the next search starts (as Docker, addresses are
    /// not reused at once after a release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<Ipv4Addr>,
}

impl Pool {
    /// A pool for `subnet` (host bits are cleared), with `gateway` (default: the first address)
    /// and dynamic addresses from `ip_range` (default: the whole subnet).
    pub fn new(
        subnet: Ipv4Net,
        gateway: Option<Ipv4Addr>,
        ip_range: Option<Ipv4Net>,
    ) -> Result<Self, IpamError> {
        let subnet = subnet.trunc();
        if subnet.prefix_len() > 30 {
            return Err(IpamError::SubnetTooSmall(subnet.to_string()));
        }
        let gateway = match gateway {
            Some(gw) if !is_host(&subnet, gw) => return Err(IpamError::GatewayOutside(gw.into())),
            Some(gw) => gw,
            None => first_host(&subnet),
        };
        let ip_range = ip_range.map(|r| r.trunc());
        if let Some(range) = ip_range {
            if !subnet.contains(&range) {
                return Err(IpamError::RangeOutside(range.to_string()));
            }
        }
        Ok(Pool {
            subnet,
            gateway,
            ip_range,
            reserved: BTreeSet::new(),
            v6: None,
            allocated: BTreeMap::new(),
            last: None,
        })
    }

    /// Gives `container` an address: `requested` if given (it must be in the subnet and free),
    /// else the next free one of the range.
    pub fn allocate(
        &mut self,
        container: &str,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, IpamError> {
        if let Some(ip) = self.allocated.get(container) {
            return Err(IpamError::ContainerHasAddress {
                container: container.to_string(),
                ip: (*ip).into(),
            });
        }
        let mut used: BTreeSet<Ipv4Addr> = self.allocated.values().copied().collect();
        used.extend(self.reserved.iter().copied());
        let ip = match requested {
            Some(ip) => {
                if !is_host(&self.subnet, ip) {
                    return Err(IpamError::NotInSubnet(ip.into()));
                }
                if ip == self.gateway || used.contains(&ip) {
                    return Err(IpamError::InUse(ip.into()));
                }
                ip
            }
            None => {
                let ip = self.next_free(&used).ok_or(IpamError::Exhausted)?;
                self.last = Some(ip);
                ip
            }
        };
        self.allocated.insert(container.to_string(), ip);
        Ok(ip)
    }

    /// Reserves auxiliary addresses (`--aux-address`), which must be in the subnet.
    pub fn with_reserved(mut self, reserved: BTreeSet<Ipv4Addr>) -> Result<Self, IpamError> {
        if let Some(aux) = reserved.iter().find(|a| !self.subnet.contains(*a)) {
            return Err(IpamError::AuxOutside((*aux).into()));
        }
        self.reserved = reserved;
        Ok(self)
    }

    /// Takes `container`'s addresses (IPv4 and IPv6) back; returns the IPv4 one if it had
    /// one.
    pub fn release(&mut self, container: &str) -> Option<Ipv4Addr> {
        if let Some(v6) = self.v6.as_mut() {
            v6.release(container);
        }
        self.allocated.remove(container)
    }

    /// The IPv6 address of `container`, if it has one.
    pub fn address6_of(&self, container: &str) -> Option<std::net::Ipv6Addr> {
        self.v6.as_ref().and_then(|v6| v6.address_of(container))
    }

    /// The address of `container`, if it has one.
    pub fn address_of(&self, container: &str) -> Option<Ipv4Addr> {
        self.allocated.get(container).copied()
    }

    /// The first free host address of the range after `last`, wrapping around once.
    fn next_free(&self, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        let range = self.ip_range.unwrap_or(self.subnet);
        let lo = u32::from(range.network());
        let hi = u32::from(range.broadcast());
        let start = match self.last.map(u32::from) {
            Some(last) if last >= lo && last < hi => last + 1,
            _ => lo,
        };
        let free = |n: u32| {
            let ip = Ipv4Addr::from(n);
            (is_host(&self.subnet, ip) && ip != self.gateway && !used.contains(&ip)).then_some(ip)
        };
        (start..=hi).chain(lo..start).find_map(free)
    }
}

/// Whether `ip` is in `subnet` and neither its network nor its broadcast address.
fn is_host(subnet: &Ipv4Net, ip: Ipv4Addr) -> bool {
    subnet.contains(&ip) && ip != subnet.network() && ip != subnet.broadcast()
}

fn first_host(subnet: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn gateway_is_first_address_and_never_given() {
        let mut pool = Pool::new(net("10.9.0.7/24"), None, None).unwrap();
        assert_eq!(pool.subnet, net("10.9.0.0/24"));
        assert_eq!(pool.gateway, ip("10.9.0.1"));
        assert_eq!(pool.allocate("a", None).unwrap(), ip("10.9.0.2"));
        assert_eq!(pool.allocate("b", None).unwrap(), ip("10.9.0.3"));
        assert!(matches!(
            pool.allocate("c", Some(ip("10.9.0.1"))),
            Err(IpamError::InUse(_))
        ));
    }

    #[test]
    fn released_addresses_are_reused_only_after_wrapping() {
        let mut pool = Pool::new(net("10.9.0.0/29"), None, None).unwrap();
        let all: Vec<_> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|c| pool.allocate(c, None).unwrap())
            .collect();
        assert_eq!(all.last(), Some(&ip("10.9.0.6")));
        assert!(matches!(
            pool.allocate("f", None),
            Err(IpamError::Exhausted)
        ));
        assert_eq!(pool.release("b"), Some(ip("10.9.0.3")));
        assert_eq!(pool.allocate("f", None).unwrap(), ip("10.9.0.3"));
        assert_eq!(pool.release("a"), Some(ip("10.9.0.2")));
        assert_eq!(pool.release("e"), Some(ip("10.9.0.6")));
        assert_eq!(pool.allocate("g", None).unwrap(), ip("10.9.0.6"));
    }

    #[test]
    fn ip_range_and_fixed_ip() {
        let mut pool = Pool::new(
            net("10.9.0.0/16"),
            Some(ip("10.9.0.254")),
            Some(net("10.9.5.0/24")),
        )
        .unwrap();
        assert_eq!(pool.allocate("a", None).unwrap(), ip("10.9.5.0"));
        assert_eq!(
            pool.allocate("b", Some(ip("10.9.7.7"))).unwrap(),
            ip("10.9.7.7")
        );
        assert!(matches!(
            pool.allocate("c", Some(ip("10.9.7.7"))),
            Err(IpamError::InUse(_))
        ));
        assert!(matches!(
            pool.allocate("c", Some(ip("10.10.0.1"))),
            Err(IpamError::NotInSubnet(_))
        ));
        assert!(matches!(
            pool.allocate("a", None),
            Err(IpamError::ContainerHasAddress { .. })
        ));
    }

    #[test]
    fn bad_pools_are_refused() {
        assert!(Pool::new(net("10.0.0.0/31"), None, None).is_err());
        assert!(Pool::new(net("10.0.0.0/24"), Some(ip("10.0.1.1")), None).is_err());
        assert!(Pool::new(net("10.0.0.0/24"), None, Some(net("10.0.0.0/16"))).is_err());
    }
}
