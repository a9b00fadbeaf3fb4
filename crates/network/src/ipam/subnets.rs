//! Choosing a subnet for a new network: Docker's default address pools, minus what the host
//! already routes and what other networks hold.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

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

/// The host's IPv6 default pool, as dockerd 27 makes it: a unique local /48
/// (`fdXX:XXXX:XXXX::/48`, its 40 bits from `seed`, the host's machine id) cut into /64s.
pub fn default_pools6(seed: &[u8]) -> impl Iterator<Item = Ipv6Net> {
    // FNV-1a, 64 bits: stable across builds.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in seed {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let global_id = u128::from(hash & 0xff_ffff_ffff);
    let prefix = (0xfd_u128 << 120) | (global_id << 80);
    (0..=u16::MAX).filter_map(move |subnet| {
        Ipv6Net::new(Ipv6Addr::from(prefix | (u128::from(subnet) << 64)), 64).ok()
    })
}

/// Whether two IPv6 subnets share any address.
pub fn overlaps6(a: &Ipv6Net, b: &Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first IPv6 default pool of [`default_pools6`] that overlaps none of `in_use`.
pub fn choose6(seed: &[u8], in_use: &[Ipv6Net]) -> Option<Ipv6Net> {
    default_pools6(seed).find(|candidate| !in_use.iter().any(|used| overlaps6(candidate, used)))
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

    #[test]
    fn ipv6_pools_are_unique_local_64s_of_one_48() {
        let pools: Vec<_> = default_pools6(b"machine").take(2).collect();
        assert_eq!(pools[0].prefix_len(), 64);
        assert_eq!(pools[0].addr().segments()[0] >> 8, 0xfd);
        assert_eq!(
            pools[0].addr().segments()[..3],
            pools[1].addr().segments()[..3]
        );
        assert_eq!(pools[1].addr().segments()[3], 1);
        assert_ne!(pools[0], default_pools6(b"other").next().unwrap());
        let chosen = choose6(b"machine", &[pools[0]]).unwrap();
        assert_eq!(chosen, pools[1]);
    }
}
