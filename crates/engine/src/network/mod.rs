//! The engine's side of networking: the glue between containers and `berth-network`.
//!
//! - [`Engine::open_networks`] (berthd at start): opens the [`Networks`] of the data root,
//!   detaches containers that are not running any more (recovery), and makes the default
//!   `bridge` network (`--bridge`, `--bip`); `host` and `none` are listed as Docker lists them.
//! - Create: `HostConfig.NetworkMode` (`default`/`bridge`, `host`, `none`, `container:X`, a
//!   network's name) and `NetworkingConfig.EndpointsConfig` (aliases, `IPAMConfig.IPv4Address`)
//!   become the record's [`ContainerNetworks`], checked as Docker checks them.
//! - Start: `Engine::sandbox` says which namespace the container makes or joins and where its
//!   `/etc` files are; once the namespace exists, `Engine::connect_on_start` attaches it to
//!   its networks (veth, address, route, published ports) before the monitor runs, and writes
//!   `hostname`, `hosts` and `resolv.conf`. Exit and removal call
//!   `Engine::disconnect_on_exit`.
//! - `api`: the network API (`/networks/...`); `views`: the containers' `NetworkSettings`
//!   and `Ports`; `ports`: `PortBindings` and `-P` as bindings; `etc`: the `/etc` files;
//!   `cni`: `resolv.conf` from a CNI result's DNS; `dns`: the embedded DNS server's resolver
//!   and when it runs; `open`: [`Engine::open_networks`]; `endpoint`: an endpoint's settings
//!   as the client gives them (MAC address included), checked; `links`: legacy links on the
//!   default bridge.

mod api;
mod cni;
mod dns;
mod endpoint;
mod etc;
mod links;
mod open;
mod ports;
mod views;

use endpoint::{entry_for, unresolved};
use etc::write_etc_files;
pub use links::LegacyLink;
pub(crate) use ports::merge_exposed_ports;
use ports::{parse_port_key, port_bindings};
pub(crate) use views::{summary_networks, summary_ports};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use berth_api::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, EventMessageTypeEnum,
    NetworkCreateRequest, NetworkSettings, PortMap, PortSummary, PortSummaryTypeEnum,
};
use berth_api::query::Filters;

use crate::container::spec::{ContainerSpec, HostSpec};
use berth_network::{
    AttachRequest, Network, NetworkError, NetworkSpec, Networks, PortBinding, Proto, PublishedPort,
    OPT_BRIDGE_NAME,
};
use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::container::Container;
use crate::error::{EngineError, Result};
use crate::Engine;

/// The name of the default network.
pub const DEFAULT_BRIDGE: &str = "bridge";

/// How berthd sets up networking (dockerd's `--bridge`, `--bip`; the nftables table is
/// Berth's own, so that several daemons can share a host, as the tests do).
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The default bridge's interface (dockerd's `-b`/`--bridge`; `berth0`).
    pub bridge: String,
    /// The default bridge's address and prefix (`--bip 10.99.0.1/24`); chosen when absent.
    pub bip: Option<Ipv4Net>,
    /// dockerd's `--ipv6`: the default bridge has IPv6 too.
    pub ipv6: bool,
    /// dockerd's `--fixed-cidr-v6`: the default bridge's IPv6 subnet (chosen from the host's
    /// default IPv6 pool when absent).
    pub fixed_cidr_v6: Option<Ipv6Net>,
    /// The nftables table (`berth`).
    pub table: String,
    /// Where CNI plugins are looked for (berthd's `--cni-bin-dir`); none: `CNI_PATH`, else
    /// [`berth_network::cni::DEFAULT_PATH`].
    pub cni_path: Option<Vec<PathBuf>>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            bridge: "berth0".to_string(),
            bip: None,
            ipv6: false,
            fixed_cidr_v6: None,
            cni_path: None,
            table: "berth".to_string(),
        }
    }
}

/// The opened networks, shared by the engine's clones.
#[derive(Debug)]
pub(crate) struct NetState {
    networks: Networks,
    predefined: Predefined,
    /// The networks as last listed, for the synchronous create path.
    cache: Mutex<Vec<Network>>,
    /// The embedded DNS servers of running containers.
    dns: dns::Servers,
}

/// The engine's slot for [`NetState`], set once by [`Engine::open_networks`].
pub(crate) type NetSlot = Arc<OnceLock<Arc<NetState>>>;

/// The ids of the `host` and `none` networks (made once, kept in `predefined.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Predefined {
    host: String,
    none: String,
    created: String,
}

/// The network part of a container's record: its endpoints, in the order they were connected
/// (the first gives `eth0`, the default route and the published ports).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerNetworks {
    #[serde(default)]
    pub endpoints: Vec<EndpointEntry>,
    /// Legacy links (`--link` on the default bridge), see `links`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legacy_links: Vec<LegacyLink>,
}

/// One network a container is connected to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointEntry {
    /// The network's name (the key of `NetworkSettings.Networks`).
    pub name: String,
    pub network_id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--ip`.
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    /// `--ip6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// `--link-local-ip`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_local: Vec<IpAddr>,
    /// `--link NAME[:ALIAS]` on this network: the alias resolves to NAME for this container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// `--driver-opt`: kept and shown.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// `--mac-address` (`MacAddress` of the endpoint, or `Config.MacAddress` for the first
    /// network), as `aa:bb:cc:dd:ee:ff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// What the container got, while it runs.
    #[serde(default)]
    pub live: Option<Live>,
}

/// An attached endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Live {
    pub endpoint_id: String,
    pub endpoint: berth_network::Endpoint,
}

/// How a container is networked (`HostConfig.NetworkMode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Its own namespace on networks (`default`, `bridge`, a network's name or id).
    Networks(String),
    Host,
    /// Its own namespace with loopback only.
    None,
    /// The namespace of another container.
    Container(String),
}

pub(crate) fn mode(hc: &HostSpec) -> Mode {
    match hc.network_mode.as_deref().unwrap_or("") {
        "" | "default" | "bridge" => Mode::Networks(DEFAULT_BRIDGE.to_string()),
        "host" => Mode::Host,
        "none" => Mode::None,
        other => match other.strip_prefix("container:") {
            Some(name) => Mode::Container(name.to_string()),
            None => Mode::Networks(other.to_string()),
        },
    }
}

/// Where a starting container's network namespace and `/etc` files are.
#[derive(Debug, Clone)]
pub(crate) struct Sandbox {
    /// The namespace to join (None: the host's).
    pub netns: Option<PathBuf>,
    /// Whether the container makes it (its own, not there yet).
    pub new_netns: bool,
    /// The directory of `hostname`, `hosts`, `resolv.conf` (another container's for
    /// `container:X`).
    pub etc_dir: PathBuf,
    /// Whether this container writes them.
    pub writes_etc: bool,
    /// The variables of its legacy links (`ALIAS_PORT_...`), for its environment.
    pub link_env: Vec<String>,
}

impl Sandbox {
    /// `c` with its links' variables before its own environment (its own win, as dockerd's).
    pub(crate) fn with_link_env(&self, c: &Container) -> Container {
        let mut c = c.clone();
        if !self.link_env.is_empty() {
            let mut env = self.link_env.clone();
            env.extend(c.config.env.take().unwrap_or_default());
            c.config.env = Some(env);
        }
        c
    }
}

fn net_error(e: NetworkError) -> EngineError {
    use berth_network::ipam::IpamError;
    let text = e.to_string();
    match e {
        NetworkError::NotFound(_) => EngineError::NotFound(text),
        NetworkError::NameExists(_) => EngineError::Conflict(text),
        // As dockerd 20.10: 403 for these, 500 for a container not connected.
        NetworkError::ActiveEndpoints { .. } | NetworkError::AlreadyAttached { .. } => {
            EngineError::Forbidden(text)
        }
        NetworkError::Ipam(IpamError::Overlap | IpamError::InUse(_)) => {
            EngineError::Forbidden(text)
        }
        NetworkError::BadDriver(_) => EngineError::NotFound(text),
        NetworkError::Cni(ref c) if c.is_config() => EngineError::InvalidParameter(text),
        NetworkError::Ambiguous(..)
        | NetworkError::AddressNotConfigurable
        | NetworkError::AuxOutside { .. }
        | NetworkError::CniPorts(_)
        | NetworkError::CniUnsupported { .. }
        | NetworkError::BadName(_)
        | NetworkError::BadBridge(..)
        | NetworkError::BadOption { .. }
        | NetworkError::Ipam(_) => EngineError::InvalidParameter(text),
        _ => EngineError::Internal(text),
    }
}

/// `Config.MacAddress` of a create body (API < 1.44; the models have no such field, the
/// daemon reads it from the request): checked, and moved to the endpoint settings of the
/// network of `HostConfig.NetworkMode` unless those have their own, as dockerd 25+ does.
pub fn apply_config_mac(body: &mut ContainerCreateBody, mac: &str) -> Result<()> {
    if mac.is_empty() {
        return Ok(());
    }
    endpoint::parse_mac(mac)?;
    let hc = crate::wire::spec::host_of_body(body);
    if matches!(mode(&hc), Mode::Host | Mode::Container(_)) {
        return Err(EngineError::InvalidParameter(
            "conflicting options: mac-address and the network mode".into(),
        ));
    }
    let key = match hc.network_mode.as_deref().unwrap_or("") {
        "" => DEFAULT_BRIDGE.to_string(),
        other => other.to_string(),
    };
    let endpoints = body
        .networking_config
        .get_or_insert_with(Default::default)
        .endpoints_config
        .get_or_insert_with(Default::default);
    let settings = endpoints.entry(key).or_default();
    if settings.mac_address.as_deref().unwrap_or("").is_empty() {
        settings.mac_address = Some(mac.to_string());
    }
    Ok(())
}

/// 64 random hex digits.
fn random_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| EngineError::internal("read /dev/urandom", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Engine {
    fn net(&self) -> Result<&Arc<NetState>> {
        self.net
            .get()
            .ok_or_else(|| EngineError::Internal("networking is not set up".into()))
    }

    /// The networks as last listed (for create, which is synchronous).
    fn cached_networks(&self) -> Vec<Network> {
        self.net
            .get()
            .map(|n| {
                n.cache
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
            })
            .unwrap_or_default()
    }

    async fn refresh_cache(&self, net: &NetState) {
        let list = net.networks.list().await;
        *net.cache.lock().unwrap_or_else(PoisonError::into_inner) = list;
    }

    fn find_cached(&self, name_or_id: &str) -> Result<Network> {
        let list = self.cached_networks();
        if let Some(n) = list
            .iter()
            .find(|n| n.id == name_or_id || n.name == name_or_id)
        {
            return Ok(n.clone());
        }
        let mut prefixed = list
            .iter()
            .filter(|n| !name_or_id.is_empty() && n.id.starts_with(name_or_id));
        match (prefixed.next(), prefixed.next()) {
            (Some(n), None) => Ok(n.clone()),
            _ => Err(EngineError::NotFound(format!(
                "network {name_or_id} not found"
            ))),
        }
    }

    /// A `network` event (`create`, `destroy`, `connect`, `disconnect`), with the network's
    /// driver as its `type` (looked up when not given), as dockerd's.
    pub(crate) fn network_event(
        &self,
        action: &str,
        (network_id, name, driver): (&str, &str, Option<&str>),
        container: Option<&str>,
    ) {
        let driver = match driver {
            Some(d) => d.to_string(),
            None => self
                .find_cached(network_id)
                .map_or_else(|_| "bridge".to_string(), |n| n.driver),
        };
        let mut attributes: HashMap<String, String> = [
            ("name".to_string(), name.to_string()),
            ("type".to_string(), driver),
        ]
        .into();
        if let Some(id) = container {
            attributes.insert("container".to_string(), id.to_string());
        }
        self.events.publish(
            EventMessageTypeEnum::NETWORK,
            action,
            network_id,
            attributes,
        );
    }

    /// The create body's networking, checked as dockerd checks it; returns the record's part
    /// and the warnings.
    pub(crate) fn networks_for_create(
        &self,
        body: &ContainerCreateBody,
        hc: &HostSpec,
    ) -> Result<(ContainerNetworks, Vec<String>)> {
        let mut warnings = Vec::new();
        let publishes = hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
            || hc.publish_all_ports == Some(true);
        // Checked now so that a bad `-p` is a 400 at create, as dockerd's.
        port_bindings(hc, &body.exposed_ports.clone().unwrap_or_default())?;
        let legacy_links = self.links_for_create(hc)?;
        let mode = mode(hc);
        let endpoints_config: HashMap<String, EndpointSettings> = body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.clone())
            .unwrap_or_default();
        let primary = match &mode {
            Mode::Host => {
                if publishes {
                    warnings.push(
                        "Published ports are discarded when using host network mode".to_string(),
                    );
                }
                return Ok((ContainerNetworks::default(), warnings));
            }
            Mode::None => return Ok((ContainerNetworks::default(), warnings)),
            Mode::Container(_) => {
                if publishes {
                    return Err(EngineError::InvalidParameter(
                        "conflicting options: port publishing and the container type network mode"
                            .into(),
                    ));
                }
                if body.hostname.as_deref().is_some_and(|h| !h.is_empty()) {
                    return Err(EngineError::InvalidParameter(
                        "conflicting options: hostname and the network mode".into(),
                    ));
                }
                // Whether the other container exists is the start's question, as dockerd's
                // (a 404 at create would make the docker CLI pull the image).
                return Ok((ContainerNetworks::default(), warnings));
            }
            Mode::Networks(name) => name.clone(),
        };
        if self.net.get().is_none() {
            return Ok((ContainerNetworks::default(), warnings));
        }
        let raw_mode = hc.network_mode.clone().unwrap_or_default();
        // As dockerd: an unknown network is an error of the start (a 404 at create would
        // make the docker CLI pull the image).
        let first = self
            .find_cached(&primary)
            .unwrap_or_else(|_| unresolved(&primary));
        let mut out = ContainerNetworks::default();
        let mut seen = BTreeSet::new();
        // The mode's network first (its settings under its name, id, or `default`), then the
        // other networks of EndpointsConfig (API 1.44+ sends them all at create).
        let mut keys: Vec<&String> = endpoints_config.keys().collect();
        keys.sort();
        let primary_settings = [primary.as_str(), raw_mode.as_str(), first.id.as_str()]
            .iter()
            .find_map(|k| endpoints_config.get(*k))
            .cloned();
        let mut wanted = vec![(first, primary_settings)];
        for key in keys {
            if [primary.as_str(), raw_mode.as_str(), "default"].contains(&key.as_str()) {
                continue;
            }
            let n = self.find_cached(key).unwrap_or_else(|_| unresolved(key));
            wanted.push((n, endpoints_config.get(key).cloned()));
        }
        for (network, settings) in wanted {
            if !seen.insert((network.id.clone(), network.name.clone())) {
                continue;
            }
            out.endpoints.push(entry_for(&network, settings.as_ref())?);
        }
        out.legacy_links = legacy_links;
        Ok((out, warnings))
    }

    /// The hostname a container gets when none was asked: the host's for `--network host`,
    /// the other container's for `container:X`, else the id's first 12 digits.
    pub(crate) fn default_hostname(&self, hc: &HostSpec, id: &str) -> String {
        match mode(hc) {
            Mode::Host => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| id[..12].to_string()),
            Mode::Container(other) => self
                .containers
                .get(&other)
                .ok()
                .and_then(|o| o.config.hostname)
                .unwrap_or_else(|| id[..12].to_string()),
            _ => id[..12].to_string(),
        }
    }

    /// Where a starting container's namespace and `/etc` files are, with its links checked
    /// (the start fails on a link to a container that does not run) and their variables.
    pub(crate) fn sandbox(&self, c: &Container) -> Result<Sandbox> {
        let mut sandbox = self.sandbox_files(c)?;
        sandbox.link_env = self.check_links(c)?;
        Ok(sandbox)
    }

    /// Where a container's namespace and `/etc` files are.
    fn sandbox_files(&self, c: &Container) -> Result<Sandbox> {
        let own = || Sandbox {
            netns: Some(self.netns_path(&c.id)),
            new_netns: !self.netns_path(&c.id).exists(),
            etc_dir: self.data_dir(&c.id),
            writes_etc: true,
            link_env: Vec::new(),
        };
        match mode(&c.host_config) {
            Mode::Host => Ok(Sandbox {
                netns: None,
                new_netns: false,
                etc_dir: self.data_dir(&c.id),
                writes_etc: true,
                link_env: Vec::new(),
            }),
            Mode::None | Mode::Networks(_) => Ok(own()),
            Mode::Container(name) => {
                let mut other = self.containers.get(&name)?;
                // `container:X` where X itself shares another's: follow (a few steps).
                for _ in 0..8 {
                    if !other.is_running() {
                        return Err(EngineError::Conflict(format!(
                            "cannot join network namespace of a non running container: {name}"
                        )));
                    }
                    match mode(&other.host_config) {
                        Mode::Container(next) => other = self.containers.get(&next)?,
                        Mode::Host => {
                            return Ok(Sandbox {
                                netns: None,
                                new_netns: false,
                                etc_dir: self.data_dir(&other.id),
                                writes_etc: false,
                                link_env: Vec::new(),
                            })
                        }
                        _ => {
                            return Ok(Sandbox {
                                netns: Some(self.netns_path(&other.id)),
                                new_netns: false,
                                etc_dir: self.data_dir(&other.id),
                                writes_etc: false,
                                link_env: Vec::new(),
                            })
                        }
                    }
                }
                Err(EngineError::InvalidParameter(format!(
                    "cannot join network namespace of container {name}: too many levels"
                )))
            }
        }
    }

    /// Between the namespace and the monitor: attaches the container to its networks and
    /// writes its `/etc` files. On an error, what was attached stays recorded for
    /// [`Engine::disconnect_on_exit`], which the failed start calls.
    /// The default bridge's gateway, for `--add-host NAME:host-gateway`, when the container has
    /// a namespace of its own.
    fn host_gateway(&self, sandbox: &Sandbox) -> Option<Ipv4Addr> {
        self.net().ok()?;
        sandbox.netns.as_ref()?;
        self.find_cached(DEFAULT_BRIDGE).ok().map(|n| n.gateway)
    }

    /// A first `hostname`, `hosts` and `resolv.conf`, without the container's address, so that
    /// the runtime has them to bind while [`Engine::connect_on_start`] attaches the networks; that
    /// one rewrites them in place (same files, so the binds show the new text) before the
    /// process starts, if an address was given.
    pub(crate) fn prepare_etc(&self, c: &Container, sandbox: &Sandbox) -> Result<()> {
        if !sandbox.writes_etc {
            return Ok(());
        }
        self.write_etc(c, sandbox, None)
    }

    /// `hostname`, `hosts` and `resolv.conf` of `c` in its sandbox, with its address and
    /// aliases on its first network when `own` gives them.
    fn write_etc(&self, c: &Container, sandbox: &Sandbox, own: Option<&etc::Own>) -> Result<()> {
        write_etc_files(
            &sandbox.etc_dir,
            &c.config,
            &c.host_config,
            c.config.hostname.as_deref().unwrap_or_default(),
            own,
            &etc::Extra {
                host_gateway: self.host_gateway(sandbox),
                links: &self.link_hosts(c),
            },
            dns::uses_embedded_dns(c),
        )
    }

    pub(crate) async fn connect_on_start(&self, c: &Container, sandbox: &Sandbox) -> Result<()> {
        if !sandbox.writes_etc {
            return Ok(());
        }
        let mut own: Option<etc::Own> = None;
        if let (Ok(net), Some(netns)) = (self.net(), sandbox.netns.as_deref()) {
            if mode(&c.host_config) != Mode::None {
                let ports = port_bindings(
                    &c.host_config,
                    &c.config.exposed_ports.clone().unwrap_or_default(),
                )?;
                for (i, entry) in c.networks.endpoints.iter().enumerate() {
                    let entry = self.resolve_entry(net, c, entry).await?;
                    let ports = if i == 0 { ports.clone() } else { Vec::new() };
                    let live = self
                        .attach_one(net, c, &entry, netns, &format!("eth{i}"), i == 0, ports)
                        .await?;
                    if i == 0 {
                        own = Some(etc::Own {
                            ip: live.endpoint.ip,
                            ip6: live.endpoint.ip6,
                            aliases: entry.aliases.clone(),
                        });
                    }
                }
                if dns::uses_embedded_dns(c) {
                    self.start_dns(net, &c.id, netns)?;
                }
            }
        }
        // Without an address, the files `prepare_etc` wrote are already right.
        if own.is_none() {
            return Ok(());
        }
        self.write_etc(c, sandbox, own.as_ref())?;
        self.cni_resolv_conf(&c.id, &sandbox.etc_dir)?;
        self.update_parents_hosts(&c.id);
        Ok(())
    }

    /// The entry's network now: by id, else by name (a network made again under the same
    /// name, or one that did not exist at create); the record follows.
    async fn resolve_entry(
        &self,
        net: &NetState,
        c: &Container,
        entry: &EndpointEntry,
    ) -> Result<EndpointEntry> {
        if !entry.network_id.is_empty() && net.networks.get(&entry.network_id).await.is_ok() {
            return Ok(entry.clone());
        }
        let n = net.networks.get(&entry.name).await.map_err(net_error)?;
        let mut resolved = entry.clone();
        resolved.network_id = n.id.clone();
        resolved.name = n.name.clone();
        let (old, new) = (entry.clone(), resolved.clone());
        self.containers.update_in_memory(&c.id, move |c| {
            for e in &mut c.networks.endpoints {
                if e.name == old.name && e.network_id == old.network_id {
                    e.network_id = new.network_id.clone();
                    e.name = new.name.clone();
                }
            }
        })?;
        Ok(resolved)
    }

    /// Attaches one endpoint and records it (in memory: the record is written when the start
    /// is).
    #[allow(clippy::too_many_arguments)]
    async fn attach_one(
        &self,
        net: &NetState,
        c: &Container,
        entry: &EndpointEntry,
        netns: &Path,
        interface: &str,
        default_route: bool,
        ports: Vec<PortBinding>,
    ) -> Result<Live> {
        let req = AttachRequest {
            network: entry.network_id.clone(),
            container_id: c.id.clone(),
            netns: netns.to_path_buf(),
            interface: interface.to_string(),
            ip: entry.ipv4,
            ip6: entry.ipv6,
            mac: entry.mac.as_deref().and_then(endpoint::mac_bytes),
            link_local: entry.link_local.clone(),
            ports,
            default_route,
        };
        let endpoint_id = random_id()?;
        let mut attached = net.networks.attach(&req).await;
        if let Err(NetworkError::AlreadyAttached { .. }) = attached {
            // Left from a start that did not finish: detach and go again.
            let _ = net.networks.detach(&entry.network_id, &c.id).await;
            attached = net.networks.attach(&req).await;
        }
        let endpoint = attached.map_err(|e| match e {
            NetworkError::Port(p) => EngineError::Internal(format!(
                "driver failed programming external connectivity on endpoint {} ({endpoint_id}): {p}",
                c.name
            )),
            e => net_error(e),
        })?;
        let live = Live {
            endpoint_id,
            endpoint,
        };
        let recorded = live.clone();
        let network_id = entry.network_id.clone();
        self.containers.update_in_memory(&c.id, move |c| {
            if let Some(e) = c
                .networks
                .endpoints
                .iter_mut()
                .find(|e| e.network_id == network_id)
            {
                e.live = Some(recorded);
            }
        })?;
        self.network_event(
            "connect",
            (&entry.network_id, &entry.name, None),
            Some(&c.id),
        );
        Ok(live)
    }

    /// Detaches a container that exited (or failed to start, or is removed) from its
    /// networks. Nothing to do for one that has no live endpoint.
    pub(crate) async fn disconnect_on_exit(&self, id: &str) {
        let Ok(c) = self.containers.get(id) else {
            return;
        };
        let Ok(net) = self.net() else {
            return;
        };
        self.stop_dns(net, id).await;
        let live: Vec<EndpointEntry> = c
            .networks
            .endpoints
            .iter()
            .filter(|e| e.live.is_some())
            .cloned()
            .collect();
        if live.is_empty() {
            return;
        }
        for entry in &live {
            match net.networks.detach_exited(&entry.network_id, id).await {
                Ok(()) | Err(NetworkError::NotAttached { .. }) | Err(NetworkError::NotFound(_)) => {
                }
                Err(e) => {
                    tracing::warn!(container = %id, network = %entry.name, error = %e, "detach")
                }
            }
            self.network_event(
                "disconnect",
                (&entry.network_id, &entry.name, None),
                Some(id),
            );
        }
        let _ = self.containers.update_in_memory(id, |c| {
            for e in &mut c.networks.endpoints {
                e.live = None;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_as_dockers() {
        let hc = |m: &str| HostSpec {
            network_mode: Some(m.to_string()),
            ..Default::default()
        };
        assert_eq!(mode(&hc("default")), Mode::Networks("bridge".into()));
        assert_eq!(mode(&HostSpec::default()), Mode::Networks("bridge".into()));
        assert_eq!(mode(&hc("host")), Mode::Host);
        assert_eq!(mode(&hc("none")), Mode::None);
        assert_eq!(mode(&hc("container:web")), Mode::Container("web".into()));
        assert_eq!(mode(&hc("net1")), Mode::Networks("net1".into()));
    }
}
