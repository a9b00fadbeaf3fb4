//! Choosing a subnet for a new network: Docker's default address pools, minus what the host
//! already routes and what other networks hold.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The subnet of the `docker0` bridge of a Docker running on the same host, skipped when
/// choosing the subnet of Berth's own default bridge so that both can run side by side.
pub const DOCKER0: Ipv4Net = net(172, 17, 0, 0, 16);

const fn net(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    // Every caller passes a prefix of at most 32, which is all `new_assert` asserts.
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

/// Docker's default address pools, in Docker's order: 172.17.0.0/16 to 172.31.0.0/16, then
/// 192.168.0.0/16 cut into /20s.
pub fn default_pools() -> impl Iterator<Item = Ipv4Net> {
    let big = (17..=31).map(|b| net(172, b, 0, 0, 16));
    let small = (0..16).map(|i| net(192, 168, i * 16, 0, 20));
    big.chain(small)
}

/// Whether two subnets share any address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first default pool that overlaps none of `in_use` (host routes and other networks),
/// skipping [`DOCKER0`] when `skip_docker0`.
pub fn choose(in_use: &[Ipv4Net], skip_docker0: bool) -> Option<Ipv4Net> {
    default_pools()
        .filter(|candidate| !(skip_docker0 && *candidate == DOCKER0))
        .find(|candidate| !in_use.iter().any(|used| overlaps(candidate, used)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Ipv4Net {
        s.parse().unwrap_or_else(|_| panic!("{s}"))
    }

    #[test]
    fn pools_are_dockers() {
        let pools: Vec<_> = default_pools().collect();
        assert_eq!(pools.len(), 31);
        assert_eq!(pools[0], n("172.17.0.0/16"));
        assert_eq!(pools[14], n("172.31.0.0/16"));
        assert_eq!(pools[15], n("192.168.0.0/20"));
        assert_eq!(pools[30], n("192.168.240.0/20"));
    }

    #[test]
    fn overlap_both_ways() {
        assert!(overlaps(&n("10.0.0.0/8"), &n("10.1.0.0/16")));
        assert!(overlaps(&n("10.1.0.0/16"), &n("10.0.0.0/8")));
        assert!(!overlaps(&n("10.1.0.0/16"), &n("10.2.0.0/16")));
    }

    #[test]
    fn choose_skips_routes_networks_and_docker0() {
        assert_eq!(choose(&[], false), Some(n("172.17.0.0/16")));
        assert_eq!(choose(&[], true), Some(n("172.18.0.0/16")));
        let used = [n("172.17.0.0/16"), n("172.18.5.0/24"), n("172.16.0.0/12")];
        assert_eq!(choose(&used[..2], false), Some(n("172.19.0.0/16")));
        assert_eq!(choose(&used, false), Some(n("192.168.0.0/20")));
        assert_eq!(choose(&[n("0.0.0.0/1"), n("128.0.0.0/1")], false), None);
    }
}
