//! The result a plugin prints on ADD (spec 1.0.0; 0.3.x and 0.4.0 results have the same
//! fields but `version` in `ips`, which is ignored): the interfaces made, the addresses with
//! their gateways, the routes and DNS settings. Only what Berth uses is read; the result
//! itself is kept as JSON, so `prevResult` passes the rest on unchanged.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A result, as far as Berth reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CniResult {
    /// The interfaces the plugins made or used.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// The addresses given.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// The routes set up.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// DNS settings for the container.
    #[serde(default)]
    pub dns: Dns,
}

/// An interface of the result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its MAC address.
    #[serde(default)]
    pub mac: String,
    /// The network namespace it is in; empty for the host's.
    #[serde(default)]
    pub sandbox: String,
}

/// An address of the result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IpConfig {
    /// The address with its prefix (`10.1.0.5/24`).
    pub address: IpNet,
    /// Its gateway.
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces` of the interface that has it.
    #[serde(default)]
    pub interface: Option<usize>,
}

/// A route of the result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Route {
    /// The destination.
    pub dst: IpNet,
    /// The next hop.
    #[serde(default)]
    pub gw: Option<IpAddr>,
}

/// DNS settings a plugin gives (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// `nameserver` lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// The search list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// `options` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self == &Dns::default()
    }
}

/// What a container got on interface `ifname`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The address and prefix.
    pub address: Ipv4Net,
    /// Its gateway, if the result names one.
    pub gateway: Option<Ipv4Addr>,
    /// The MAC address of the interface in the container, if the result names it.
    pub mac: Option<String>,
    /// The host end of the container's link: the last host-side interface that is not one of
    /// `bridges`.
    pub host_interface: Option<String>,
}

impl CniResult {
    /// Reads a result's JSON.
    pub fn from_value(value: &Value) -> Result<CniResult, serde_json::Error> {
        CniResult::deserialize(value)
    }

    /// The first IPv4 address on `ifname` inside the sandbox (or, when the result does not
    /// say which interface has it, the first IPv4 address).
    pub fn address(&self, ifname: &str, bridges: &[String]) -> Option<Address> {
        let inside = |i: usize| {
            self.interfaces
                .get(i)
                .is_some_and(|it| it.name == ifname && !it.sandbox.is_empty())
        };
        fn v4(ip: &IpConfig) -> Option<(&IpConfig, Ipv4Net)> {
            match ip.address {
                IpNet::V4(net) => Some((ip, net)),
                IpNet::V6(_) => None,
            }
        }
        let (ip, address) = self
            .ips
            .iter()
            .filter_map(v4)
            .find(|(ip, _)| ip.interface.is_some_and(inside))
            .or_else(|| self.ips.iter().find_map(v4))?;
        let gateway = match ip.gateway {
            Some(IpAddr::V4(g)) => Some(g),
            _ => None,
        };
        let mac = self
            .interfaces
            .iter()
            .find(|it| it.name == ifname && !it.sandbox.is_empty() && !it.mac.is_empty())
            .map(|it| it.mac.to_ascii_lowercase());
        let host_interface = self
            .interfaces
            .iter()
            .rev()
            .find(|it| it.sandbox.is_empty() && !bridges.contains(&it.name))
            .map(|it| it.name.clone());
        Some(Address {
            address,
            gateway,
            mac,
            host_interface,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_result_gives_address_gateway_mac_and_host_veth() {
        let value = serde_json::json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni9", "mac": "aa:aa:aa:aa:aa:aa"},
                {"name": "veth1234", "mac": "bb:bb:bb:bb:bb:bb"},
                {"name": "eth0", "mac": "CC:CC:CC:CC:CC:CC", "sandbox": "/run/netns/x"}
            ],
            "ips": [{"interface": 2, "address": "10.9.0.2/24", "gateway": "10.9.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {"nameservers": ["10.9.0.1"]}
        });
        let r = CniResult::from_value(&value).unwrap();
        let a = r.address("eth0", &["cni9".to_string()]).unwrap();
        assert_eq!(a.address, "10.9.0.2/24".parse::<Ipv4Net>().unwrap());
        assert_eq!(a.gateway, Some(Ipv4Addr::new(10, 9, 0, 1)));
        assert_eq!(a.mac.as_deref(), Some("cc:cc:cc:cc:cc:cc"));
        assert_eq!(a.host_interface.as_deref(), Some("veth1234"));
        assert_eq!(r.dns.nameservers, ["10.9.0.1"]);
        assert!(
            r.address("eth1", &[]).is_some(),
            "falls back to the first address"
        );
    }

    #[test]
    fn a_0_4_0_result_without_interfaces_reads() {
        let value = serde_json::json!({
            "cniVersion": "0.4.0",
            "ips": [{"version": "6", "address": "fd00::2/64"},
                    {"version": "4", "address": "10.1.2.3/16"}]
        });
        let r = CniResult::from_value(&value).unwrap();
        let a = r.address("eth0", &[]).unwrap();
        assert_eq!(a.address, "10.1.2.3/16".parse::<Ipv4Net>().unwrap());
        assert_eq!((a.gateway, a.mac, a.host_interface), (None, None, None));
        assert!(CniResult::default().address("eth0", &[]).is_none());
    }
}
