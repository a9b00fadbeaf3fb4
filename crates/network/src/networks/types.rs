//! The façade's data: configuration, what a caller asks for, what it gets back, and errors.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::cni::{CniError, Dns};
use crate::firewall::FirewallError;
use crate::ipam::IpamError;
use crate::netlink::NetlinkError;
use crate::persist::PersistError;
use crate::ports::{PortBinding, PortError, PublishedPort};
use crate::sysctl::SysctlError;

/// Docker's driver option naming the bridge interface (`-o com.docker.network.bridge.name=`).
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
/// Docker's driver option setting the MTU (`-o com.docker.network.driver.mtu=`).
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";

/// The driver option naming a CNI network configuration list file, for `--driver cni`
/// (`-o cni.conflist=/etc/cni/net.d/x.conflist`); the file is read at create.
pub const OPT_CNI_CONFLIST: &str = "cni.conflist";
/// The driver of networks backed by a CNI configuration list.
pub const DRIVER_CNI: &str = "cni";

/// Where and how [`super::Networks`] keeps its state.
#[derive(Debug, Clone)]
pub struct Config {
    /// The state directory (`<data-root>/network`): `networks/<id>.json`, `ipam/<id>.json`.
    pub state_dir: PathBuf,
    /// Berth's nftables table (`berth`); tests use one of their own.
    pub table: String,
}

impl Config {
    /// The daemon's configuration under `data_root`.
    pub fn new(data_root: &std::path::Path) -> Self {
        Config {
            state_dir: data_root.join("network"),
            table: "berth".to_string(),
        }
    }
}

/// A network to create (`docker network create` and the default `bridge` network).
#[derive(Debug, Clone, Default)]
pub struct NetworkSpec {
    /// Its name.
    pub name: String,
    /// `--driver`: `bridge` (or empty) or [`DRIVER_CNI`] (which needs [`OPT_CNI_CONFLIST`]
    /// and takes neither subnet, gateway, range nor `--internal`).
    pub driver: String,
    /// `--subnet`; chosen from the default pools when absent.
    pub subnet: Option<Ipv4Net>,
    /// `--gateway`; the subnet's first address when absent.
    pub gateway: Option<Ipv4Addr>,
    /// `--ip-range`.
    pub ip_range: Option<Ipv4Net>,
    /// `--internal`: no traffic to or from outside the bridge.
    pub internal: bool,
    /// `--ipv6`: an IPv6 subnet too (`subnet6`, else one of the host's default pool).
    pub ipv6: bool,
    /// The IPv6 `--subnet`.
    pub subnet6: Option<Ipv6Net>,
    /// The IPv6 `--gateway`; the subnet's first address when absent.
    pub gateway6: Option<Ipv6Addr>,
    /// The IPv6 `--ip-range`.
    pub ip_range6: Option<Ipv6Net>,
    /// `--aux-address NAME=IP`: addresses of either family never given to a container.
    pub aux_addresses: BTreeMap<String, IpAddr>,
    /// Seed of the IPv6 default pool (the host's machine id); see
    /// [`crate::ipam::subnets::default_pools6`].
    pub pool6_seed: Vec<u8>,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `-o`: [`OPT_BRIDGE_NAME`] (default `br-<id[..12]>`) and [`OPT_MTU`] (default 1500) are
    /// understood; the rest are kept.
    pub options: BTreeMap<String, String>,
    /// The default `bridge` network: a chosen subnet skips 172.17.0.0/16, which a Docker on the
    /// same host would take for `docker0`.
    pub default_bridge: bool,
}

/// A network as recorded (`networks/<id>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// 64 hex digits.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `bridge` or [`DRIVER_CNI`].
    pub driver: String,
    /// The bridge interface; for a CNI network, the bridge its `bridge` plugin makes when no
    /// such interface existed at create (deleted with the network), else empty.
    pub bridge: String,
    /// The subnet.
    pub subnet: Ipv4Net,
    /// The bridge's address.
    pub gateway: Ipv4Addr,
    /// `--ip-range`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Ipv4Net>,
    /// `--internal`.
    #[serde(default)]
    pub internal: bool,
    /// Whether the IPv4 subnet was chosen from the default pools (not `--subnet`): then no
    /// container may ask for an address of its own.
    #[serde(default)]
    pub subnet_chosen: bool,
    /// `--ipv6`: its IPv6 subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v6: Option<Net6>,
    /// `--aux-address`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, IpAddr>,
    /// `--label`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `-o`.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The MTU of the bridge and the veths.
    pub mtu: u32,
    /// Creation time, seconds since the epoch.
    pub created: u64,
    /// For a CNI network, its configuration list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni: Option<CniSpec>,
}

/// The IPv6 side of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Net6 {
    /// The subnet.
    pub subnet: Ipv6Net,
    /// The bridge's IPv6 address.
    pub gateway: Ipv6Addr,
    /// `--ip-range`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Ipv6Net>,
    /// Whether the subnet was chosen from the default pool (not `--subnet`).
    #[serde(default)]
    pub chosen: bool,
}

/// The configuration list of a CNI network, as read at create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniSpec {
    /// The file it was read from.
    pub source: PathBuf,
    /// Its content.
    pub conflist: String,
}

/// Attach a container's network namespace to a network (between runtime create and start).
#[derive(Debug, Clone)]
pub struct AttachRequest {
    /// The network: id, name, or unique id prefix.
    pub network: String,
    /// The container's id.
    pub container_id: String,
    /// The container's network namespace file (`<exec-root>/netns/<id>`).
    pub netns: PathBuf,
    /// The interface name inside (`eth0`, `eth1` for a second network).
    pub interface: String,
    /// `--ip`.
    pub ip: Option<Ipv4Addr>,
    /// `--ip6`, on a network with IPv6.
    pub ip6: Option<Ipv6Addr>,
    /// `--mac-address` (else one made from the IPv4 address, as dockerd makes it); a bridge
    /// network's only.
    pub mac: Option<[u8; 6]>,
    /// `--link-local-ip`: more addresses on the interface (as /32 and /128).
    pub link_local: Vec<IpAddr>,
    /// `-p`/`-P`, ignored on internal networks (as Docker does).
    pub ports: Vec<PortBinding>,
    /// Whether this network gives the container's default route (the first one does).
    pub default_route: bool,
}

/// What a container got on a network (for `NetworkSettings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The network's id.
    pub network_id: String,
    /// The container.
    pub container_id: String,
    /// The interface inside the container.
    pub interface: String,
    /// The veth end on the host.
    pub host_veth: String,
    /// The container's address.
    pub ip: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix_len: u8,
    /// The gateway.
    pub gateway: Ipv4Addr,
    /// The container's MAC address (`02:42:` and the address, as Docker).
    pub mac: String,
    /// The container's IPv6 address, on a network with IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    /// The IPv6 subnet's prefix length.
    #[serde(default)]
    pub prefix_len6: u8,
    /// The IPv6 gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
    /// The published ports.
    pub ports: Vec<PublishedPort>,
    /// DNS settings a CNI plugin gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
}

/// Why a network operation failed, in Docker's words where Docker has them.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// No network with this id, name or id prefix.
    #[error("network {0} not found")]
    NotFound(String),
    /// An id prefix matches several networks.
    #[error("network {0} is ambiguous ({1} matches found based on ID prefix)")]
    Ambiguous(String, usize),
    /// The name is taken.
    #[error("network with name {0} already exists")]
    NameExists(String),
    /// The name is not valid (empty, or only white space).
    #[error("invalid name: {0}")]
    BadName(String),
    /// A container asked for an address on a network whose subnet was not configured.
    #[error("user specified IP address is supported only when connecting to networks with user configured subnets")]
    AddressNotConfigurable,
    /// An auxiliary address is outside the network's subnets.
    #[error("auxiliary address: ({name}:{ip}) must belong to the master pool: {pool}")]
    AuxOutside {
        /// Its name.
        name: String,
        /// The address.
        ip: IpAddr,
        /// The subnet of its family.
        pool: String,
    },
    /// The bridge name is not a valid interface name, or is taken.
    #[error("invalid bridge name {0:?}: {1}")]
    BadBridge(String, &'static str),
    /// An option's value is not valid.
    #[error("invalid value {value:?} for option {option}")]
    BadOption {
        /// The option.
        option: String,
        /// Its value.
        value: String,
    },
    /// Containers are still attached.
    #[error("error while removing network: network {name} id {id} has active endpoints")]
    ActiveEndpoints {
        /// The network's name.
        name: String,
        /// The network's id.
        id: String,
    },
    /// The container is attached already.
    #[error("endpoint with name {container} already exists in network {network}")]
    AlreadyAttached {
        /// The container.
        container: String,
        /// The network's name.
        network: String,
    },
    /// The container is not attached.
    #[error("container {container} is not connected to network {network}")]
    NotAttached {
        /// The container.
        container: String,
        /// The network's name.
        network: String,
    },
    /// The container's network namespace could not be opened.
    #[error("opening network namespace {}: {source}", path.display())]
    Netns {
        /// The namespace file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `--driver` names no driver Berth has.
    #[error("plugin \"{0}\" not found")]
    BadDriver(String),
    /// A CNI network without a `portMappings` plugin was asked to publish ports.
    #[error(
        "port publishing is not supported on cni network {0}: no plugin of its conflist has the portMappings capability"
    )]
    CniPorts(String),
    /// A CNI network was asked for something only bridge networks do.
    #[error("{what} is not supported with the cni driver (the conflist's plugins decide)")]
    CniUnsupported {
        /// What.
        what: &'static str,
    },
    /// A CNI configuration or plugin run failed.
    #[error(transparent)]
    Cni(#[from] CniError),
    /// Address management refused.
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// A port could not be published.
    #[error(transparent)]
    Port(#[from] PortError),
    /// A netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// A firewall change failed.
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    /// A sysctl could not be set.
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    /// A record could not be read or written.
    #[error(transparent)]
    Persist(#[from] PersistError),
}
