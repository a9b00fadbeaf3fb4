//! The host's IPv4 and IPv6 routes, which a new network's default subnets must not overlap.

use std::net::Ipv4Addr;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::RouteMessageBuilder;

use super::{request, Netlink, NetlinkError};

/// The kernel's `local` routing table (`RT_TABLE_LOCAL`), which holds the host's own addresses.
const RT_TABLE_LOCAL: u8 = 255;

impl Netlink {
    /// The destinations of all IPv4 routes of every table but `local`, without default routes.
    pub async fn ipv4_routes(&self) -> Result<Vec<Ipv4Net>, NetlinkError> {
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let mut routes = self.handle.route().get(query).execute();
        let mut found = Vec::new();
        while let Some(msg) = routes.try_next().await.map_err(request("listing routes"))? {
            let prefix = msg.header.destination_prefix_length;
            if msg.header.table == RT_TABLE_LOCAL || prefix == 0 {
                continue;
            }
            let destination = msg.attributes.iter().find_map(|attr| match attr {
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(*ip),
                _ => None,
            });
            if let Some(net) = destination.and_then(|ip| Ipv4Net::new(ip, prefix).ok()) {
                found.push(net.trunc());
            }
        }
        Ok(found)
    }
}

impl Netlink {
    /// The destinations of all IPv6 routes of every table but `local`, without default routes
    /// and link-local ones.
    pub async fn ipv6_routes(&self) -> Result<Vec<ipnet::Ipv6Net>, NetlinkError> {
        let query = RouteMessageBuilder::<std::net::Ipv6Addr>::new().build();
        let mut routes = self.handle.route().get(query).execute();
        let mut found = Vec::new();
        while let Some(msg) = routes.try_next().await.map_err(request("listing routes"))? {
            let prefix = msg.header.destination_prefix_length;
            if msg.header.table == RT_TABLE_LOCAL || prefix == 0 {
                continue;
            }
            let destination = msg.attributes.iter().find_map(|attr| match attr {
                RouteAttribute::Destination(RouteAddress::Inet6(ip)) => Some(*ip),
                _ => None,
            });
            if let Some(net) = destination.and_then(|ip| ipnet::Ipv6Net::new(ip, prefix).ok()) {
                if net.addr().segments()[0] & 0xffc0 != 0xfe80 {
                    found.push(net.trunc());
                }
            }
        }
        Ok(found)
    }
}
