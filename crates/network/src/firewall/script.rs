//! The nft scripts, as text: pure functions, unit-tested, applied by [`super::Firewall`].
//!
//! Layout of Berth's tables (`table ip <name>` and, the same for IPv6, `table ip6 <name>`;
//! `berth` by default):
//! - set `bridges`: every Berth bridge (for isolation);
//! - maps `tcp_any`/`udp_any` (host port to container address . port) and `tcp_ip`/`udp_ip`
//!   (host address . host port to container address . port): the published ports, one element
//!   each, so publishing and unpublishing are element changes, never rule edits;
//! - base chains `prerouting` and `output` (nat): traffic to a local address jumps to
//!   `published`, which DNATs through the maps; `output` makes ports reachable from the host
//!   itself, over 127.0.0.1 too (with `route_localnet` on the bridge and the masquerade in
//!   `lo-<bridge>`);
//! - base chain `forward` (filter) dispatches on the interfaces through the verdict maps
//!   `fwd_in`/`fwd_out` to per-bridge chains `in-<bridge>` (from the bridge: same bridge
//!   accepted, other Berth bridges dropped, elsewhere dropped if internal) and `out-<bridge>`
//!   (into the bridge: replies and published ports only);
//! - base chain `postrouting` (nat) dispatches on the source subnet through the interval map
//!   `snat_src` to `snat-<bridge>` (masquerade of outbound traffic, and of hairpin traffic a
//!   container sends to a port published on its own bridge, so that the reply comes back
//!   through the host), and on the output interface through `lo_out` to `lo-<bridge>`
//!   (masquerade of 127.0.0.0/8 sources). The input interface is unknown in postrouting,
//!   hence the subnet.
//!
//! In the `ip6` table the `snat-<bridge>` chain masquerades the network's IPv6 subnet (only
//! networks with IPv6 have one, and an element in its `snat_src`), and `lo-<bridge>` names
//! `::1`, which the kernel never routes out of a bridge: published ports answer on the host's
//! IPv6 addresses, not on `[::1]` (dockerd without its proxy does the same).
//!
//! Every script is one nft transaction and idempotent: objects are `add`ed (a no-op when they
//! exist), chains flushed before their rules are added, and removals first add what they
//! delete.

use std::fmt::Write;

use ipnet::{Ipv4Net, Ipv6Net};

use crate::ports::{Proto, PublishedPort};

/// The family of one of Berth's two tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `table ip`.
    V4,
    /// `table ip6`.
    V6,
}

impl Family {
    /// Both, in the order scripts handle them.
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    /// The table family, which is also the keyword of its address matches (`ip saddr`).
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    fn addr_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }

    fn loopback(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.0/8",
            Family::V6 => "::1",
        }
    }

    /// The family of an address.
    pub fn of(ip: std::net::IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

/// The maps of published ports, by protocol and by whether the host address is given.
pub fn port_map(proto: Proto, any_ip: bool) -> &'static str {
    match (proto, any_ip) {
        (Proto::Tcp, true) => "tcp_any",
        (Proto::Tcp, false) => "tcp_ip",
        (Proto::Udp, true) => "udp_any",
        (Proto::Udp, false) => "udp_ip",
    }
}

/// The verdict maps keyed by interface name, and the per-bridge chain each dispatches to.
const DISPATCH: [(&str, &str); 3] = [("fwd_in", "in"), ("fwd_out", "out"), ("lo_out", "lo")];

/// The per-bridge chains.
const CHAINS: [&str; 4] = ["in", "out", "snat", "lo"];

/// Both tables with their sets, maps and base chains; keeps existing elements and per-bridge
/// chains, rewrites the base chains' rules.
pub fn table(t: &str) -> String {
    Family::BOTH.iter().map(|f| table_of(*f, t)).collect()
}

fn table_of(fam: Family, t: &str) -> String {
    let (f, addr) = (fam.name(), fam.addr_type());
    let mut s = format!("add table {f} {t}\nadd set {f} {t} bridges {{ type ifname; }}\n");
    for proto in [Proto::Tcp, Proto::Udp] {
        let any = port_map(proto, true);
        let ip = port_map(proto, false);
        let _ = writeln!(
            s,
            "add map {f} {t} {any} {{ type inet_service : {addr} . inet_service; }}\n\
             add map {f} {t} {ip} {{ type {addr} . inet_service : {addr} . inet_service; }}"
        );
    }
    for (map, _) in DISPATCH {
        let _ = writeln!(s, "add map {f} {t} {map} {{ type ifname : verdict; }}");
    }
    let _ = writeln!(
        s,
        "add map {f} {t} snat_src {{ type {addr} : verdict; flags interval; }}"
    );
    let _ = writeln!(
        s,
        "add chain {f} {t} published\nflush chain {f} {t} published"
    );
    for proto in [Proto::Tcp, Proto::Udp] {
        let (any, ip) = (port_map(proto, true), port_map(proto, false));
        let _ = writeln!(
            s,
            "add rule {f} {t} published dnat {f} to {f} daddr . {proto} dport map @{ip}\n\
             add rule {f} {t} published dnat {f} to {proto} dport map @{any}"
        );
    }
    let snat = format!("{f} saddr vmap @snat_src");
    let base = [
        (
            "prerouting",
            "nat hook prerouting priority dstnat",
            vec!["fib daddr type local jump published"],
        ),
        (
            "output",
            "nat hook output priority -100",
            vec!["fib daddr type local jump published"],
        ),
        (
            "forward",
            "filter hook forward priority filter",
            vec!["iifname vmap @fwd_in", "oifname vmap @fwd_out"],
        ),
        (
            "postrouting",
            "nat hook postrouting priority srcnat",
            vec![snat.as_str(), "oifname vmap @lo_out"],
        ),
    ];
    for (chain, hook, rules) in base {
        let _ = writeln!(
            s,
            "add chain {f} {t} {chain} {{ type {hook}; policy accept; }}\nflush chain {f} {t} {chain}"
        );
        for rule in rules {
            let _ = writeln!(s, "add rule {f} {t} {chain} {rule}");
        }
    }
    s
}

/// A network's rules: its bridge, its subnet, and whether it is `--internal`.
#[derive(Debug, Clone, Copy)]
pub struct NetworkRules<'a> {
    /// The bridge.
    pub bridge: &'a str,
    /// The subnet.
    pub subnet: Ipv4Net,
    /// The IPv6 subnet, for a network with IPv6.
    pub subnet6: Option<Ipv6Net>,
    /// No traffic in or out but to and from the same bridge.
    pub internal: bool,
}

impl NetworkRules<'_> {
    /// The subnet of `fam`, as text.
    fn subnet_of(&self, fam: Family) -> Option<String> {
        match fam {
            Family::V4 => Some(self.subnet.to_string()),
            Family::V6 => self.subnet6.map(|s| s.to_string()),
        }
    }
}

/// Installs (or rewrites) a network's chains in both tables and hooks them into the
/// dispatch maps.
pub fn add_network(t: &str, n: &NetworkRules<'_>) -> String {
    Family::BOTH
        .iter()
        .map(|f| add_network_of(*f, t, n))
        .collect()
}

fn add_network_of(fam: Family, t: &str, n: &NetworkRules<'_>) -> String {
    let (f, b) = (fam.name(), n.bridge);
    let subnet = n.subnet_of(fam);
    let mut chains: Vec<(&str, Vec<String>)> = Vec::new();
    let mut from = vec![
        format!("oifname \"{b}\" accept"),
        "oifname @bridges drop".to_string(),
    ];
    let mut into = Vec::new();
    let mut snat = Vec::new();
    if n.internal {
        from.push("drop".to_string());
        into.push("drop".to_string());
    } else if let Some(subnet) = &subnet {
        snat.push(format!("{f} saddr {subnet} oifname != \"{b}\" masquerade"));
    }
    from.push("accept".to_string());
    into.extend([
        "ct state established,related accept".to_string(),
        "ct status dnat accept".to_string(),
        "drop".to_string(),
    ]);
    snat.push(format!("oifname \"{b}\" ct status dnat masquerade"));
    chains.push(("in", from));
    chains.push(("out", into));
    chains.push(("snat", snat));
    chains.push((
        "lo",
        vec![format!("{f} saddr {} masquerade", fam.loopback())],
    ));

    let mut s = String::new();
    for (prefix, rules) in &chains {
        let _ = writeln!(
            s,
            "add chain {f} {t} {prefix}-{b}\nflush chain {f} {t} {prefix}-{b}"
        );
        for rule in rules {
            let _ = writeln!(s, "add rule {f} {t} {prefix}-{b} {rule}");
        }
    }
    let _ = writeln!(s, "add element {f} {t} bridges {{ \"{b}\" }}");
    for (map, prefix) in DISPATCH {
        let _ = writeln!(
            s,
            "add element {f} {t} {map} {{ \"{b}\" : jump {prefix}-{b} }}"
        );
    }
    if let Some(subnet) = subnet {
        let _ = writeln!(
            s,
            "add element {f} {t} snat_src {{ {subnet} : jump snat-{b} }}"
        );
    }
    s
}

/// Removes a network's chains and dispatch elements from both tables (whether or not they
/// exist).
pub fn remove_network(t: &str, n: &NetworkRules<'_>) -> String {
    let mut s = String::new();
    for fam in Family::BOTH {
        let (f, b) = (fam.name(), n.bridge);
        for prefix in CHAINS {
            let _ = writeln!(s, "add chain {f} {t} {prefix}-{b}");
        }
        if let Some(subnet) = n.subnet_of(fam) {
            let _ = writeln!(
                s,
                "add element {f} {t} snat_src {{ {subnet} : jump snat-{b} }}\n\
                 delete element {f} {t} snat_src {{ {subnet} }}"
            );
        }
        let _ = writeln!(
            s,
            "add element {f} {t} bridges {{ \"{b}\" }}\ndelete element {f} {t} bridges {{ \"{b}\" }}"
        );
        for (map, prefix) in DISPATCH {
            let _ = writeln!(
                s,
                "add element {f} {t} {map} {{ \"{b}\" : jump {prefix}-{b} }}\n\
                 delete element {f} {t} {map} {{ \"{b}\" }}"
            );
        }
        for prefix in CHAINS {
            let _ = writeln!(
                s,
                "flush chain {f} {t} {prefix}-{b}\ndelete chain {f} {t} {prefix}-{b}"
            );
        }
    }
    s
}

fn port_element(p: &PublishedPort) -> (&'static str, String, String, String) {
    let any = p.host_ip.is_unspecified();
    let key = if any {
        p.host_port.to_string()
    } else {
        format!("{} . {}", p.host_ip, p.host_port)
    };
    let value = format!("{} . {}", p.container_ip, p.container_port);
    let f = Family::of(p.host_ip).name();
    (f, port_map(p.proto, any).to_string(), key, value)
}

/// Publishes ports.
pub fn add_ports(t: &str, ports: &[PublishedPort]) -> String {
    let mut s = String::new();
    for p in ports {
        let (f, map, key, value) = port_element(p);
        let _ = writeln!(s, "add element {f} {t} {map} {{ {key} : {value} }}");
    }
    s
}

/// Unpublishes ports (whether or not they are published).
pub fn remove_ports(t: &str, ports: &[PublishedPort]) -> String {
    let mut s = String::new();
    for p in ports {
        let (f, map, key, value) = port_element(p);
        let _ = writeln!(
            s,
            "add element {f} {t} {map} {{ {key} : {value} }}\ndelete element {f} {t} {map} {{ {key} }}"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn network_rules_masquerade_unless_internal() {
        let mut n = NetworkRules {
            bridge: "berth0",
            subnet: "172.18.0.0/16".parse().unwrap(),
            subnet6: None,
            internal: false,
        };
        let s = add_network("berth", &n);
        assert!(s.contains("add rule ip berth snat-berth0 ip saddr 172.18.0.0/16 oifname != \"berth0\" masquerade\n"));
        assert!(s.contains("add element ip berth fwd_in { \"berth0\" : jump in-berth0 }\n"));
        assert!(!s.contains("add rule ip berth in-berth0 drop\n"));
        n.internal = true;
        let s = add_network("berth", &n);
        assert!(!s.contains("masquerade\nadd rule ip berth snat-berth0 oifname"));
        assert!(s.contains("add rule ip berth in-berth0 drop\n"));
        assert!(s.contains("add rule ip6 berth in-berth0 drop\n"));
        assert!(!s.contains("snat_src { fd"));
        n.internal = false;
        n.subnet6 = Some("fd00:1::/64".parse().unwrap());
        let s = add_network("berth", &n);
        assert!(s.contains(
            "add rule ip6 berth snat-berth0 ip6 saddr fd00:1::/64 oifname != \"berth0\" masquerade\n"
        ));
        assert!(s.contains("add element ip6 berth snat_src { fd00:1::/64 : jump snat-berth0 }\n"));
        assert!(remove_network("berth", &n)
            .contains("delete element ip6 berth snat_src { fd00:1::/64 }\n"));
    }

    #[test]
    fn ports_are_map_elements() {
        let p = PublishedPort {
            proto: Proto::Udp,
            host_ip: Ipv4Addr::LOCALHOST.into(),
            host_port: 5353,
            container_ip: Ipv4Addr::new(172, 18, 0, 2).into(),
            container_port: 53,
        };
        assert_eq!(
            add_ports("t", &[p]),
            "add element ip t udp_ip { 127.0.0.1 . 5353 : 172.18.0.2 . 53 }\n"
        );
        let v6 = PublishedPort {
            host_ip: "fd00::2".parse().unwrap(),
            container_ip: "fd00:1::2".parse().unwrap(),
            ..p
        };
        assert_eq!(
            add_ports("t", &[v6]),
            "add element ip6 t udp_ip { fd00::2 . 5353 : fd00:1::2 . 53 }\n"
        );
        let any = PublishedPort {
            host_ip: Ipv4Addr::UNSPECIFIED.into(),
            proto: Proto::Tcp,
            ..p
        };
        assert!(remove_ports("t", &[any]).ends_with("delete element ip t tcp_any { 5353 }\n"));
    }
}
