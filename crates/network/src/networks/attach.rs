//! Attaching a container's network namespace to a network and detaching it. The attach path
//! costs one IPAM record write, one netlink request on the host connection, one connection in
//! the container's namespace (three requests), and an `nft` run only if ports are published.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::types::{AttachRequest, Endpoint, NetworkError};
use super::{find, Networks};
use crate::netlink::{ContainerSide, Netlink, VethPair};
use crate::ports::PublishedPort;

impl Networks {
    /// Attaches the network namespace of `req.container_id` to `req.network`: an address, a
    /// veth pair (host end on the bridge, `req.interface` inside), the default route, and the
    /// published ports. Nothing is left behind when it fails.
    pub async fn attach(&self, req: &AttachRequest) -> Result<Endpoint, NetworkError> {
        let mut state = self.state.lock().await;
        let network = find(&state.networks, &req.network)?.clone();
        if network.cni.is_some() {
            return self.attach_cni(state, &network, req).await;
        }
        let container = req.container_id.as_str();
        let attached = state
            .ipam
            .pool(&network.id)
            .and_then(|p| p.address_of(container))
            .is_some();
        if attached {
            return Err(NetworkError::AlreadyAttached {
                container: container.to_string(),
                network: network.name,
            });
        }
        let netns = File::open(&req.netns).map_err(|source| NetworkError::Netns {
            path: req.netns.clone(),
            source,
        })?;
        if network.v6.is_none() && req.ip6.is_some() {
            return Err(NetworkError::AddressNotConfigurable);
        }
        let (ip, ip6, save) =
            state
                .ipam
                .allocate_dual_unsaved(&network.id, container, req.ip, req.ip6)?;
        // The record is written on a blocking thread while the netlink requests go on.
        let saved = tokio::task::spawn_blocking(move || save.write());
        let bindings = if network.internal {
            &[][..]
        } else {
            &req.ports[..]
        };
        let ports = match state.ports.reserve_dual(ip, ip6, bindings) {
            Ok(ports) => ports,
            Err(e) => {
                let _ = saved.await;
                let _ = state.ipam.release(&network.id, container);
                return Err(e.into());
            }
        };
        let host_veth = host_veth_name(container, &network.id);
        let mac = req.mac.unwrap_or_else(|| mac_for(ip));
        let wired = async {
            let bridge_index = self
                .netlink
                .link_index(&network.bridge)
                .await?
                .ok_or_else(|| crate::netlink::NetlinkError::NoLink(network.bridge.clone()))?;
            self.netlink
                .add_veth(VethPair {
                    host: &host_veth,
                    bridge_index,
                    netns: netns.as_fd(),
                    peer: &req.interface,
                    mac,
                    mtu: network.mtu,
                })
                .await?;
            let inside = Netlink::in_netns(&req.netns)?;
            let gateway = (req.default_route && !network.internal).then_some(network.gateway);
            let v6 = network.v6.as_ref().zip(ip6);
            if v6.is_some() || req.link_local.iter().any(IpAddr::is_ipv6) {
                crate::sysctl::enable_ipv6_in_netns(&req.netns, &req.interface)?;
            }
            inside
                .configure_container_side(&ContainerSide {
                    interface: req.interface.clone(),
                    address: Ipv4Net::new(ip, network.subnet.prefix_len())
                        .unwrap_or(network.subnet),
                    gateway,
                    address6: v6.map(|(net6, ip6)| {
                        Ipv6Net::new(ip6, net6.subnet.prefix_len()).unwrap_or(net6.subnet)
                    }),
                    gateway6: v6
                        .filter(|_| req.default_route && !network.internal)
                        .map(|(net6, _)| net6.gateway),
                    extra: req.link_local.iter().map(|ip| IpNet::from(*ip)).collect(),
                })
                .await?;
            self.firewall.publish(&ports).await?;
            Ok::<_, NetworkError>(())
        }
        .await;
        let saved = match saved.await {
            Ok(saved) => saved.map_err(NetworkError::from),
            Err(e) => Err(crate::ipam::IpamError::SaveTask(e.to_string()).into()),
        };
        if let Err(e) = wired.and(saved) {
            if let Err(e) = self.netlink.delete_link(&host_veth).await {
                tracing::warn!("deleting {host_veth} after a failed attach: {e}");
            }
            state.ports.release(ip.into());
            if let Some(ip6) = ip6 {
                state.ports.release(ip6.into());
            }
            let _ = state.ipam.release(&network.id, container);
            return Err(e);
        }
        Ok(Endpoint {
            network_id: network.id,
            container_id: container.to_string(),
            interface: req.interface.clone(),
            host_veth,
            ip,
            prefix_len: network.subnet.prefix_len(),
            gateway: network.gateway,
            mac: mac
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
            ports,
            dns: None,
            ip6,
            prefix_len6: network.v6.as_ref().map_or(0, |v6| v6.subnet.prefix_len()),
            gateway6: network.v6.as_ref().map(|v6| v6.gateway),
        })
    }

    /// Detaches `container_id` from `network`: unpublishes its ports, deletes its veth pair
    /// (the namespace may be gone already, which deleted it) and releases its address.
    pub async fn detach(&self, network: &str, container_id: &str) -> Result<(), NetworkError> {
        self.detach_inner(network, container_id, false).await
    }

    /// [`Networks::detach`] for a container whose network namespace is going away: its
    /// address and ports are released at once, the veth is deleted in the background.
    pub async fn detach_exited(
        &self,
        network: &str,
        container_id: &str,
    ) -> Result<(), NetworkError> {
        self.detach_inner(network, container_id, true).await
    }

    async fn detach_inner(
        &self,
        network: &str,
        container_id: &str,
        link_later: bool,
    ) -> Result<(), NetworkError> {
        let mut state = self.state.lock().await;
        let network = find(&state.networks, network)?.clone();
        if network.cni.is_some() {
            return self
                .detach_cni(state, &network, container_id, link_later)
                .await;
        }
        let host_veth = host_veth_name(container_id, &network.id);
        let Some(ip) = state
            .ipam
            .pool(&network.id)
            .and_then(|p| p.address_of(container_id))
        else {
            self.netlink.delete_link(&host_veth).await?;
            return Err(NetworkError::NotAttached {
                container: container_id.to_string(),
                network: network.name,
            });
        };
        let ip6 = state
            .ipam
            .pool(&network.id)
            .and_then(|p| p.address6_of(container_id));
        let mut ports: Vec<PublishedPort> = state.ports.release(ip.into());
        if let Some(ip6) = ip6 {
            ports.extend(state.ports.release(ip6.into()));
        }
        if let Err(e) = self.firewall.unpublish(&ports).await {
            for port in ports {
                state.ports.insert(port);
            }
            return Err(e.into());
        }
        if link_later {
            if let Some(index) = self.netlink.link_index(&host_veth).await? {
                self.netlink.delete_index_later(index, host_veth);
            }
        } else {
            self.netlink.delete_link(&host_veth).await?;
        }
        state.ipam.release(&network.id, container_id)?;
        Ok(())
    }

    /// The containers attached to a network, with their addresses.
    pub async fn endpoints(&self, network: &str) -> Result<Vec<(String, Ipv4Addr)>, NetworkError> {
        let state = self.state.lock().await;
        let network = find(&state.networks, network)?;
        if network.cni.is_some() {
            return self.cni_endpoints(network);
        }
        Ok(state
            .ipam
            .pool(&network.id)
            .map(|p| p.allocated.iter().map(|(c, ip)| (c.clone(), *ip)).collect())
            .unwrap_or_default())
    }

    /// Recovery on daemon start: detaches every container for which `exists` is false, from
    /// every network (a CNI network's DEL may fail: the record goes all the same). Returns the
    /// (network id, container id) pairs detached.
    pub async fn prune(
        &self,
        exists: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, String)>, NetworkError> {
        type Pairs = Vec<(String, String)>;
        let (stale, stale_cni): (Pairs, Pairs) = {
            let state = self.state.lock().await;
            let bridges = state
                .networks
                .keys()
                .filter_map(|id| state.ipam.pool(id).map(|p| (id, p)))
                .flat_map(|(id, p)| p.allocated.keys().map(move |c| (id.clone(), c.clone())));
            let cni = state
                .networks
                .values()
                .filter(|n| n.cni.is_some())
                .flat_map(|n| self.cni_attached(n).into_iter().map(|c| (n.id.clone(), c)))
                .collect::<Vec<_>>();
            (
                bridges.filter(|(_, c)| !exists(c)).collect(),
                cni.into_iter().filter(|(_, c)| !exists(c)).collect(),
            )
        };
        for (network, container) in &stale {
            self.detach(network, container).await?;
        }
        for (network, container) in &stale_cni {
            self.detach_exited(network, container).await?;
        }
        Ok(stale.into_iter().chain(stale_cni).collect())
    }
}

/// The host end's name: `vb` and 12 hex digits of a hash of container and network, so that it
/// is found again without a record, and differs per network of a container.
pub(crate) fn host_veth_name(container: &str, network_id: &str) -> String {
    // FNV-1a, 64 bits: stable across builds and platforms, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in container.bytes().chain([b'/']).chain(network_id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("vb{:012x}", hash & 0xffff_ffff_ffff)
}

/// Docker's MAC for an address: `02:42:` then the address's four bytes.
fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_are_short_stable_and_per_network() {
        let a = host_veth_name("abc", "net1");
        assert_eq!(a.len(), 14);
        assert_eq!(a, host_veth_name("abc", "net1"));
        assert_ne!(a, host_veth_name("abc", "net2"));
    }

    #[test]
    fn mac_is_dockers() {
        assert_eq!(
            mac_for(Ipv4Addr::new(172, 17, 0, 2)),
            [0x02, 0x42, 172, 17, 0, 2]
        );
    }
}
