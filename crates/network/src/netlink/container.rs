//! The container end, configured from a connection inside the container's namespace: address,
//! link up, default route via the gateway.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rtnetlink::RouteMessageBuilder;

use super::{libc_errno, request, Netlink, NetlinkError};

/// How the container end is configured.
#[derive(Debug, Clone)]
pub struct ContainerSide {
    /// Its name (`eth0`).
    pub interface: String,
    /// Its address, with the subnet's prefix.
    pub address: Ipv4Net,
    /// The default route's gateway; `None` for a network that does not give the default route.
    pub gateway: Option<Ipv4Addr>,
    /// Its IPv6 address, on a network with IPv6 (the interface must have IPv6 enabled).
    pub address6: Option<Ipv6Net>,
    /// The IPv6 default route's gateway.
    pub gateway6: Option<Ipv6Addr>,
    /// More addresses (`--link-local-ip`), as given.
    pub extra: Vec<IpNet>,
}

impl Netlink {
    /// Configures the container end; this connection must be in the container's namespace.
    pub async fn configure_container_side(&self, side: &ContainerSide) -> Result<(), NetlinkError> {
        let name = &side.interface;
        let index = self
            .link_index(name)
            .await?
            .ok_or_else(|| NetlinkError::NoLink(name.clone()))?;
        self.add_address(index, side.address, name).await?;
        if let Some(address6) = side.address6 {
            self.add_address(index, address6, name).await?;
        }
        for extra in &side.extra {
            self.add_address(index, *extra, name).await?;
        }
        self.set_up(index, name).await?;
        if let Some(gateway) = side.gateway6 {
            let route = RouteMessageBuilder::<Ipv6Addr>::new()
                .output_interface(index)
                .gateway(gateway)
                .build();
            if let Err(e) = self.handle.route().add(route).execute().await {
                let e = request(format!("adding the IPv6 default route via {gateway}"))(e);
                if e.errno() != Some(libc_errno::EEXIST) {
                    return Err(e);
                }
            }
        }
        if let Some(gateway) = side.gateway {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .output_interface(index)
                .gateway(gateway)
                .build();
            if let Err(e) = self.handle.route().add(route).execute().await {
                let e = request(format!("adding the default route via {gateway}"))(e);
                if e.errno() != Some(libc_errno::EEXIST) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}
