//! Container networking for Berth: the bridge driver, and networks backed by CNI plugins.
//!
//! - [`netlink`]: bridges, veth pairs, addresses and routes over rtnetlink, in the host's
//!   namespace or a container's;
//! - [`ipam`]: per-network address pools, persisted, and default subnets that avoid the host's
//!   routes and other networks;
//! - [`firewall`]: Berth's own nftables table: masquerade, isolation between bridges,
//!   `--internal`, published ports (with hairpin and 127.0.0.1);
//! - [`ports`]: the host port allocator;
//! - [`cni`]: the runtime side of the Container Network Interface: configuration lists, plugin
//!   runs (ADD, DEL), results and their cache;
//! - [`dns`]: the embedded DNS server at 127.0.0.11 in containers on user-defined networks;
//! - [`Networks`]: the façade the engine calls: create/remove/list networks, attach a
//!   container's network namespace between runtime create and start, detach it on stop.
//!
//! Bridge networks are IPv4, and IPv6 too when made with `--ipv6` (an `ip6` table beside the
//! `ip` one); CNI networks take the first IPv4 address of their result.

pub mod cni;
pub mod dns;
pub mod firewall;
pub mod ipam;
pub mod netlink;
mod networks;
mod persist;
pub mod ports;
pub mod sysctl;

pub use networks::{
    AttachRequest, CniSpec, Config, Endpoint, Network, NetworkError, NetworkSpec, Networks,
    DRIVER_CNI, OPT_BRIDGE_NAME, OPT_CNI_CONFLIST, OPT_MTU,
};
pub use persist::PersistError;
pub use ports::{PortBinding, Proto, PublishedPort};

/// Whether `id` can name a record file: ASCII letters, digits, `_`, `-`, not empty.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
