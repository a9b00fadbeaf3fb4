//! The bridge of a network: made once at network creation (or found again after a daemon
//! restart), with the gateway address, and up.

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::LinkBridge;

use super::{libc_errno, request, Netlink, NetlinkError};

impl Netlink {
    /// Makes bridge `name` (or takes the existing one), gives it `address` (the gateway with the
    /// subnet's prefix) and `mtu`, and sets it up. Returns its index.
    pub async fn ensure_bridge(
        &self,
        name: &str,
        address: Ipv4Net,
        mtu: Option<u32>,
    ) -> Result<u32, NetlinkError> {
        let mut bridge = LinkBridge::new(name);
        if let Some(mtu) = mtu {
            bridge = bridge.mtu(mtu);
        }
        if let Err(e) = self.handle.link().add(bridge.build()).execute().await {
            let e = request(format!("creating bridge {name}"))(e);
            if e.errno() != Some(libc_errno::EEXIST) {
                return Err(e);
            }
        }
        let index = self
            .link_index(name)
            .await?
            .ok_or_else(|| NetlinkError::NoLink(name.to_string()))?;
        if !self.has_address(index, address.into()).await? {
            self.add_address(index, address, name).await?;
        }
        self.set_up(index, name).await?;
        Ok(index)
    }

    /// Gives bridge `index` (named `name`) its IPv6 gateway address (its link must have IPv6
    /// enabled, see [`crate::sysctl::enable_ipv6`]), unless it has it.
    pub async fn ensure_address6(
        &self,
        index: u32,
        name: &str,
        address: ipnet::Ipv6Net,
    ) -> Result<(), NetlinkError> {
        if !self.has_address(index, address.into()).await? {
            self.add_address(index, address, name).await?;
        }
        Ok(())
    }

    /// Whether link `index` has `address` (same address and prefix).
    async fn has_address(&self, index: u32, address: ipnet::IpNet) -> Result<bool, NetlinkError> {
        use rtnetlink::packet_route::address::AddressAttribute;
        let mut addrs = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(msg) = addrs
            .try_next()
            .await
            .map_err(request("listing addresses"))?
        {
            let same = msg
                .attributes
                .iter()
                .any(|attr| matches!(attr, AddressAttribute::Address(ip) if *ip == address.addr()));
            if same && msg.header.prefix_len == address.prefix_len() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
