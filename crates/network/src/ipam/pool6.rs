//! The IPv6 half of a network's address pool (`--ipv6 --subnet fd00:1::/64`): its subnet,
//! gateway, optional `--ip-range`, auxiliary addresses and the address of each container.
//! Addresses are given in order as Docker's IPAM gives them (the gateway first, `::1`; the
//! subnet's own address never), without reuse until the range wraps.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};

use super::IpamError;

/// A network's IPv6 addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool6 {
    /// The subnet (host bits zero).
    pub subnet: Ipv6Net,
    /// The bridge's address, never given to a container.
    pub gateway: Ipv6Addr,
    /// Where dynamic addresses come from; the whole subnet when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Ipv6Net>,
    /// Auxiliary addresses (`--aux-address`): never given.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub reserved: BTreeSet<Ipv6Addr>,
    /// Container id to its address.
    #[serde(default)]
    pub allocated: BTreeMap<String, Ipv6Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<Ipv6Addr>,
}

impl Pool6 {
    /// A pool for `subnet` with `gateway` (default: its first address), dynamic addresses
    /// from `ip_range` (default: the whole subnet), and `reserved` addresses.
    pub fn new(
        subnet: Ipv6Net,
        gateway: Option<Ipv6Addr>,
        ip_range: Option<Ipv6Net>,
        reserved: BTreeSet<Ipv6Addr>,
    ) -> Result<Self, IpamError> {
        let subnet = subnet.trunc();
        if subnet.prefix_len() > 126 {
            return Err(IpamError::SubnetTooSmall(subnet.to_string()));
        }
        let gateway = match gateway {
            Some(gw) if !is_host(&subnet, gw) => return Err(IpamError::GatewayOutside(gw.into())),
            Some(gw) => gw,
            None => Ipv6Addr::from(u128::from(subnet.network()) + 1),
        };
        let ip_range = ip_range.map(|r| r.trunc());
        if let Some(range) = ip_range {
            if !subnet.contains(&range) {
                return Err(IpamError::RangeOutside(range.to_string()));
            }
        }
        if let Some(aux) = reserved.iter().find(|a| !subnet.contains(*a)) {
            return Err(IpamError::AuxOutside((*aux).into()));
        }
        Ok(Pool6 {
            subnet,
            gateway,
            ip_range,
            reserved,
            allocated: BTreeMap::new(),
            last: None,
        })
    }

    /// Gives `container` an address: `requested` if given (in the subnet, free), else the
    /// next free one of the range.
    pub fn allocate(
        &mut self,
        container: &str,
        requested: Option<Ipv6Addr>,
    ) -> Result<Ipv6Addr, IpamError> {
        if let Some(ip) = self.allocated.get(container) {
            return Err(IpamError::ContainerHasAddress {
                container: container.to_string(),
                ip: (*ip).into(),
            });
        }
        let ip = match requested {
            Some(ip) => {
                if !is_host(&self.subnet, ip) {
                    return Err(IpamError::NotInSubnet(ip.into()));
                }
                if !self.free(ip) {
                    return Err(IpamError::InUse(ip.into()));
                }
                ip
            }
            None => {
                let ip = self.next_free().ok_or(IpamError::Exhausted)?;
                self.last = Some(ip);
                ip
            }
        };
        self.allocated.insert(container.to_string(), ip);
        Ok(ip)
    }

    /// Takes `container`'s address back.
    pub fn release(&mut self, container: &str) -> Option<Ipv6Addr> {
        self.allocated.remove(container)
    }

    /// The address of `container`.
    pub fn address_of(&self, container: &str) -> Option<Ipv6Addr> {
        self.allocated.get(container).copied()
    }

    fn free(&self, ip: Ipv6Addr) -> bool {
        ip != self.gateway
            && !self.reserved.contains(&ip)
            && !self.allocated.values().any(|a| *a == ip)
    }

    /// The first free address of the range after `last`, wrapping around once. Only taken
    /// addresses are skipped, so the search looks at no more than their number plus one
    /// candidates on each side of the wrap.
    fn next_free(&self) -> Option<Ipv6Addr> {
        let range = self.ip_range.unwrap_or(self.subnet);
        let lo = u128::from(range.network());
        let hi = u128::from(range.broadcast());
        let start = match self.last.map(u128::from) {
            Some(last) if last >= lo && last < hi => last + 1,
            _ => lo,
        };
        let taken = self.allocated.len() + self.reserved.len() + 2;
        let bound = u128::try_from(taken).unwrap_or(u128::MAX);
        let search = |from: u128, to: u128| {
            let to = to.min(from.saturating_add(bound));
            (from..=to)
                .map(Ipv6Addr::from)
                .find(|ip| is_host(&self.subnet, *ip) && self.free(*ip))
        };
        search(start, hi).or_else(|| (start > lo).then(|| search(lo, start - 1)).flatten())
    }
}

/// Whether `ip` is in `subnet` and not the subnet's own address.
fn is_host(subnet: &Ipv6Net, ip: Ipv6Addr) -> bool {
    subnet.contains(&ip) && ip != subnet.network()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn gateway_first_then_containers_in_order() {
        let aux = [ip("fd00:1::3")].into_iter().collect();
        let mut pool = Pool6::new("fd00:1::7/64".parse().unwrap(), None, None, aux).unwrap();
        assert_eq!(pool.subnet.to_string(), "fd00:1::/64");
        assert_eq!(pool.gateway, ip("fd00:1::1"));
        assert_eq!(pool.allocate("a", None).unwrap(), ip("fd00:1::2"));
        assert_eq!(
            pool.allocate("b", None).unwrap(),
            ip("fd00:1::4"),
            "aux skipped"
        );
        assert!(matches!(
            pool.allocate("c", Some(ip("fd00:1::3"))),
            Err(IpamError::InUse(_))
        ));
        assert!(matches!(
            pool.allocate("c", Some(ip("fd00:2::3"))),
            Err(IpamError::NotInSubnet(_))
        ));
        assert_eq!(
            pool.allocate("c", Some(ip("fd00:1::ff"))).unwrap(),
            ip("fd00:1::ff")
        );
        assert_eq!(pool.release("a"), Some(ip("fd00:1::2")));
        assert_eq!(pool.allocate("d", None).unwrap(), ip("fd00:1::5"));
    }

    #[test]
    fn a_small_range_wraps_and_runs_out() {
        let mut pool = Pool6::new(
            "fd00:1::/120".parse().unwrap(),
            None,
            Some("fd00:1::/126".parse().unwrap()),
            BTreeSet::new(),
        )
        .unwrap();
        assert_eq!(pool.allocate("a", None).unwrap(), ip("fd00:1::2"));
        assert_eq!(pool.allocate("b", None).unwrap(), ip("fd00:1::3"));
        assert!(matches!(
            pool.allocate("c", None),
            Err(IpamError::Exhausted)
        ));
        pool.release("a");
        assert_eq!(pool.allocate("c", None).unwrap(), ip("fd00:1::2"));
    }

    #[test]
    fn bad_pools_are_refused() {
        let none = BTreeSet::new;
        assert!(Pool6::new("fd00::/127".parse().unwrap(), None, None, none()).is_err());
        assert!(Pool6::new(
            "fd00::/64".parse().unwrap(),
            Some(ip("fd01::1")),
            None,
            none()
        )
        .is_err());
        let aux = [ip("fd01::9")].into_iter().collect();
        assert!(Pool6::new("fd00::/64".parse().unwrap(), None, None, aux).is_err());
    }
}
