//! The nft scripts, as text: pure functions, unit-tested, applied by [`super::Firewall`].
//!
//! Layout of Berth's table (`table ip <name>`, `berth` by default):
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
//! Every script is one nft transaction and idempotent: objects are `add`ed (a no-op when they
//! exist), chains flushed before their rules are added, and removals first add what they
//! delete.

use std::fmt::Write;

use ipnet::Ipv4Net;

use crate::ports::{Proto, PublishedPort};

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

/// The table with its sets, maps and base chains; keeps existing elements and per-bridge
/// chains, rewrites the base chains' rules.
pub fn table(t: &str) -> String {
    let mut s = format!("add table ip {t}\nadd set ip {t} bridges {{ type ifname; }}\n");
    for proto in [Proto::Tcp, Proto::Udp] {
        let any = port_map(proto, true);
        let ip = port_map(proto, false);
        let _ = writeln!(
            s,
            "add map ip {t} {any} {{ type inet_service : ipv4_addr . inet_service; }}\n\
             add map ip {t} {ip} {{ type ipv4_addr . inet_service : ipv4_addr . inet_service; }}"
        );
    }
    for (map, _) in DISPATCH {
        let _ = writeln!(s, "add map ip {t} {map} {{ type ifname : verdict; }}");
    }
    let _ = writeln!(
        s,
        "add map ip {t} snat_src {{ type ipv4_addr : verdict; flags interval; }}"
    );
    let _ = writeln!(
        s,
        "add chain ip {t} published\nflush chain ip {t} published"
    );
    for proto in [Proto::Tcp, Proto::Udp] {
        let (any, ip) = (port_map(proto, true), port_map(proto, false));
        let _ = writeln!(
            s,
            "add rule ip {t} published dnat ip to ip daddr . {proto} dport map @{ip}\n\
             add rule ip {t} published dnat ip to {proto} dport map @{any}"
        );
    }
    let base = [
        (
            "prerouting",
            "nat hook prerouting priority dstnat",
            &["fib daddr type local jump published"][..],
        ),
        (
            "output",
            "nat hook output priority -100",
            &["fib daddr type local jump published"][..],
        ),
        (
            "forward",
            "filter hook forward priority filter",
            &["iifname vmap @fwd_in", "oifname vmap @fwd_out"][..],
        ),
        (
            "postrouting",
            "nat hook postrouting priority srcnat",
            &["ip saddr vmap @snat_src", "oifname vmap @lo_out"][..],
        ),
    ];
    for (chain, hook, rules) in base {
        let _ = writeln!(
            s,
            "add chain ip {t} {chain} {{ type {hook}; policy accept; }}\nflush chain ip {t} {chain}"
        );
        for rule in rules {
            let _ = writeln!(s, "add rule ip {t} {chain} {rule}");
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
    /// No traffic in or out but to and from the same bridge.
    pub internal: bool,
}

/// Installs (or rewrites) a network's chains and hooks them into the dispatch maps.
pub fn add_network(t: &str, n: &NetworkRules<'_>) -> String {
    let b = n.bridge;
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
    } else {
        snat.push(format!(
            "ip saddr {} oifname != \"{b}\" masquerade",
            n.subnet
        ));
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
    chains.push(("lo", vec!["ip saddr 127.0.0.0/8 masquerade".to_string()]));

    let mut s = String::new();
    for (prefix, rules) in &chains {
        let _ = writeln!(
            s,
            "add chain ip {t} {prefix}-{b}\nflush chain ip {t} {prefix}-{b}"
        );
        for rule in rules {
            let _ = writeln!(s, "add rule ip {t} {prefix}-{b} {rule}");
        }
    }
    let _ = writeln!(s, "add element ip {t} bridges {{ \"{b}\" }}");
    for (map, prefix) in DISPATCH {
        let _ = writeln!(
            s,
            "add element ip {t} {map} {{ \"{b}\" : jump {prefix}-{b} }}"
        );
    }
    let _ = writeln!(
        s,
        "add element ip {t} snat_src {{ {} : jump snat-{b} }}",
        n.subnet
    );
    s
}

/// Removes a network's chains and dispatch elements (whether or not they exist).
pub fn remove_network(t: &str, bridge: &str, subnet: Ipv4Net) -> String {
    let b = bridge;
    let mut s = String::new();
    for prefix in CHAINS {
        let _ = writeln!(s, "add chain ip {t} {prefix}-{b}");
    }
    let _ = writeln!(
        s,
        "add element ip {t} snat_src {{ {subnet} : jump snat-{b} }}\n\
         delete element ip {t} snat_src {{ {subnet} }}"
    );
    let _ = writeln!(
        s,
        "add element ip {t} bridges {{ \"{b}\" }}\ndelete element ip {t} bridges {{ \"{b}\" }}"
    );
    for (map, prefix) in DISPATCH {
        let _ = writeln!(
            s,
            "add element ip {t} {map} {{ \"{b}\" : jump {prefix}-{b} }}\n\
             delete element ip {t} {map} {{ \"{b}\" }}"
        );
    }
    for prefix in CHAINS {
        let _ = writeln!(
            s,
            "flush chain ip {t} {prefix}-{b}\ndelete chain ip {t} {prefix}-{b}"
        );
    }
    s
}

fn port_element(p: &PublishedPort) -> (String, String, String) {
    let any = p.host_ip.is_unspecified();
    let key = if any {
        p.host_port.to_string()
    } else {
        format!("{} . {}", p.host_ip, p.host_port)
    };
    let value = format!("{} . {}", p.container_ip, p.container_port);
    (port_map(p.proto, any).to_string(), key, value)
}

/// Publishes ports.
pub fn add_ports(t: &str, ports: &[PublishedPort]) -> String {
    let mut s = String::new();
    for p in ports {
        let (map, key, value) = port_element(p);
        let _ = writeln!(s, "add element ip {t} {map} {{ {key} : {value} }}");
    }
    s
}

/// Unpublishes ports (whether or not they are published).
pub fn remove_ports(t: &str, ports: &[PublishedPort]) -> String {
    let mut s = String::new();
    for p in ports {
        let (map, key, value) = port_element(p);
        let _ = writeln!(
            s,
            "add element ip {t} {map} {{ {key} : {value} }}\ndelete element ip {t} {map} {{ {key} }}"
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
    }

    #[test]
    fn ports_are_map_elements() {
        let p = PublishedPort {
            proto: Proto::Udp,
            host_ip: Ipv4Addr::LOCALHOST,
            host_port: 5353,
            container_ip: Ipv4Addr::new(172, 18, 0, 2),
            container_port: 53,
        };
        assert_eq!(
            add_ports("t", &[p]),
            "add element ip t udp_ip { 127.0.0.1 . 5353 : 172.18.0.2 . 53 }\n"
        );
        let any = PublishedPort {
            host_ip: Ipv4Addr::UNSPECIFIED,
            proto: Proto::Tcp,
            ..p
        };
        assert!(remove_ports("t", &[any]).ends_with("delete element ip t tcp_any { 5353 }\n"));
    }
}
