//! A container's veth pair: the host end enslaved to the bridge and up, the container end
//! created directly inside the container's namespace under its final name.

use std::os::fd::{AsRawFd, BorrowedFd};

use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoPortKind, InfoVeth};
use rtnetlink::{LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};

use super::{request, Netlink, NetlinkError};

/// The two ends of a veth pair to make.
#[derive(Debug, Clone, Copy)]
pub struct VethPair<'a> {
    /// The host end's name.
    pub host: &'a str,
    /// The bridge the host end joins.
    pub bridge_index: u32,
    /// The container's network namespace.
    pub netns: BorrowedFd<'a>,
    /// The container end's name in its namespace (`eth0`).
    pub peer: &'a str,
    /// The container end's MAC address.
    pub mac: [u8; 6],
    /// Both ends' MTU.
    pub mtu: u32,
}

impl Netlink {
    /// Makes the pair in one request: the host end up and on the bridge, the peer inside the
    /// namespace (down, until [`Netlink::configure_container_side`]); then turns on hairpin
    /// mode on the bridge port (a second request: the kernel ignores port options when it
    /// creates a link). Hairpin mode is needed where `br_netfilter` is loaded: a container's
    /// packet to a port it publishes itself is DNATed back to it in the bridge's prerouting
    /// and bridged out of the port it came in by.
    pub async fn add_veth(&self, pair: VethPair<'_>) -> Result<(), NetlinkError> {
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(pair.peer)
            .address(pair.mac.to_vec())
            .mtu(pair.mtu)
            .setns_by_fd(pair.netns.as_raw_fd())
            .build();
        let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(pair.host)
            .mtu(pair.mtu)
            .controller(pair.bridge_index)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.handle
            .link()
            .add(veth)
            .execute()
            .await
            .map_err(request(format!("creating veth {}", pair.host)))?;
        let port = LinkMessageBuilder::<LinkBridgePort>::default()
            .name(pair.host)
            .set_port_kind(InfoPortKind::Bridge)
            .hairpin(true)
            .build();
        self.handle
            .link()
            .set_port(port)
            .execute()
            .await
            .map_err(request(format!("setting hairpin mode on {}", pair.host)))
    }
}
