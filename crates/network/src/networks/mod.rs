//! [`Networks`]: the façade the engine calls. It owns one host netlink connection, the
//! firewall table, the IPAM pools and the port table, behind one lock, so network operations
//! are serialized; each undoes its finished steps when a later one fails. Networks of the
//! `cni` driver are handed to their CNI plugins instead (see `cni`).

mod attach;
mod cni;
mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tokio::sync::Mutex;

pub use types::{
    AttachRequest, CniSpec, Config, Endpoint, Net6, Network, NetworkError, NetworkSpec, DRIVER_CNI,
    OPT_BRIDGE_NAME, OPT_CNI_CONFLIST, OPT_MTU,
};

use crate::cni::cache::Cache as CniCache;
use crate::cni::Cni;
use crate::firewall::{Firewall, NetworkRules};
use crate::ipam::{subnets, Ipam, Pool, Pool6};
use crate::netlink::Netlink;
use crate::persist;
use crate::ports::PortTable;
use crate::sysctl;

const DEFAULT_MTU: u32 = 1500;

/// The networks of one daemon.
#[derive(Debug)]
pub struct Networks {
    netlink: Netlink,
    firewall: Firewall,
    records: PathBuf,
    cni: Cni,
    cni_cache: CniCache,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    networks: BTreeMap<String, Network>,
    ipam: Ipam,
    ports: PortTable,
}

impl Networks {
    /// Loads the recorded networks and makes sure each has its bridge and rules (after a reboot
    /// they are gone); reads the published ports back from the firewall. Must be called inside
    /// a tokio runtime.
    pub async fn open(config: Config) -> Result<Self, NetworkError> {
        let netlink = Netlink::host()?;
        let firewall = Firewall::new(&config.table)?;
        let records = config.state_dir.join("networks");
        let cni_cache = CniCache::new(&config.state_dir.join("cni"));
        let mut ipam = Ipam::open(&config.state_dir.join("ipam"))?;
        let mut networks = BTreeMap::new();
        for path in persist::list(&records)? {
            let network: Network = persist::read_json(&path)?;
            networks.insert(network.id.clone(), network);
        }
        // The pool of a network whose creation a crash cut short, before its record.
        for id in ipam.pool_ids() {
            if !networks.contains_key(&id) {
                tracing::info!(network = %id, "removing the address pool of a network never made");
                ipam.remove_pool(&id)?;
            }
        }
        // Ports published to addresses no pool holds any more (a crash between the two) are
        // dropped; the rest are taken again.
        let held: BTreeSet<IpAddr> = networks
            .keys()
            .filter_map(|id| ipam.pool(id))
            .flat_map(|pool| {
                let v6 = pool.v6.iter().flat_map(|v6| v6.allocated.values());
                let v6 = v6.map(|ip| IpAddr::V6(*ip));
                pool.allocated.values().map(|ip| IpAddr::V4(*ip)).chain(v6)
            })
            .collect();
        let kept: Vec<_> = firewall
            .published()
            .await?
            .into_iter()
            .filter(|port| held.contains(&port.container_ip))
            .collect();
        // The table is Berth's: rebuilt from the records in one transaction, as dockerd
        // rebuilds its chains. The bridges an earlier table knew and no record names (a wiped
        // data root, a restored backup) go too; bridges the table never knew (another
        // engine's) are not touched.
        let bridges_of_records: BTreeSet<&str> =
            networks.values().map(|n| n.bridge.as_str()).collect();
        for bridge in firewall.bridges().await? {
            if !bridges_of_records.contains(bridge.as_str()) {
                tracing::info!(%bridge, "deleting a bridge no network record names");
                if let Err(e) = netlink.delete_link(&bridge).await {
                    tracing::warn!(%bridge, error = %e, "deleting a stale bridge");
                }
            }
        }
        let rules: Vec<NetworkRules<'_>> = networks
            .values()
            .filter(|n| n.cni.is_none())
            .map(rules_of)
            .collect();
        firewall.rebuild(&rules, &kept).await?;
        let mut ports = PortTable::new(PortTable::ephemeral_range());
        for port in kept {
            ports.insert(port);
        }
        let this = Networks {
            netlink,
            firewall,
            records,
            cni: Cni::new(),
            cni_cache,
            state: Mutex::new(State {
                networks,
                ipam,
                ports,
            }),
        };
        let networks: Vec<Network> = this.state.lock().await.networks.values().cloned().collect();
        // The ports of CNI attachments are in their records, not in the firewall.
        let cni_ports = this.cni_ports(&networks);
        {
            let mut state = this.state.lock().await;
            for port in cni_ports {
                state.ports.insert(port);
            }
        }
        for network in networks.iter().filter(|n| n.cni.is_none()) {
            this.install_link(network).await?;
        }
        Ok(this)
    }

    /// Runs CNI plugins as `cni` says (plugin path, time limit); by default from `CNI_PATH`,
    /// else [`crate::cni::DEFAULT_PATH`].
    pub fn set_cni(&mut self, cni: Cni) {
        self.cni = cni;
    }

    /// The nftables table this instance uses.
    pub fn firewall(&self) -> &Firewall {
        &self.firewall
    }

    /// All networks, by id.
    pub async fn list(&self) -> Vec<Network> {
        self.state.lock().await.networks.values().cloned().collect()
    }

    /// The network with this id, name, or unique id prefix.
    pub async fn get(&self, name_or_id: &str) -> Result<Network, NetworkError> {
        let state = self.state.lock().await;
        find(&state.networks, name_or_id).cloned()
    }

    /// Creates a network: subnet, bridge with the gateway address, firewall rules, record.
    pub async fn create(&self, spec: NetworkSpec) -> Result<Network, NetworkError> {
        let mut state = self.state.lock().await;
        let name = spec.name.clone();
        // dockerd's rule: any name but an empty or blank one (records are kept by id).
        if name.trim().is_empty() {
            return Err(NetworkError::BadName(name));
        }
        if state.networks.values().any(|n| n.name == name) {
            return Err(NetworkError::NameExists(name));
        }
        let id = random_id()?;
        match spec.driver.as_str() {
            "" | "bridge" => {}
            DRIVER_CNI => return self.create_cni(&mut state, spec, id).await,
            other => return Err(NetworkError::BadDriver(other.to_string())),
        }
        let bridge = match spec.options.get(OPT_BRIDGE_NAME) {
            Some(bridge) => bridge.clone(),
            None => format!("br-{}", &id[..12]),
        };
        check_bridge_name(&bridge)?;
        if state.networks.values().any(|n| n.bridge == bridge)
            || self.netlink.link_index(&bridge).await?.is_some()
        {
            return Err(NetworkError::BadBridge(
                bridge,
                "an interface with this name exists",
            ));
        }
        let mtu = match spec.options.get(OPT_MTU) {
            None => DEFAULT_MTU,
            Some(value) => value
                .parse::<u32>()
                .ok()
                .filter(|mtu| (68..=65535).contains(mtu))
                .ok_or_else(|| NetworkError::BadOption {
                    option: OPT_MTU.to_string(),
                    value: value.clone(),
                })?,
        };
        let subnet = match spec.subnet {
            Some(subnet) => subnet,
            None => {
                let mut in_use = self.netlink.ipv4_routes().await?;
                in_use.extend(state.ipam.subnets().into_iter().filter_map(|n| match n {
                    IpNet::V4(n) => Some(n),
                    IpNet::V6(_) => None,
                }));
                in_use.extend(state.networks.values().filter_map(cni::cni_subnet));
                subnets::choose(&in_use, spec.default_bridge)
                    .ok_or(crate::ipam::IpamError::NoDefaultPool)?
            }
        };
        if state
            .networks
            .values()
            .filter_map(cni::cni_subnet)
            .any(|other| other.contains(&subnet) || subnet.contains(&other))
        {
            return Err(crate::ipam::IpamError::Overlap.into());
        }
        let v6 = match (spec.ipv6, spec.subnet6) {
            (false, _) => None,
            (true, Some(subnet6)) => Some((subnet6, false)),
            (true, None) => {
                let mut in_use = self.netlink.ipv6_routes().await?;
                in_use.extend(state.ipam.subnets().into_iter().filter_map(|n| match n {
                    IpNet::V6(n) => Some(n),
                    IpNet::V4(_) => None,
                }));
                let chosen = subnets::choose6(&spec.pool6_seed, &in_use)
                    .ok_or(crate::ipam::IpamError::NoDefaultPool6)?;
                Some((chosen, true))
            }
        };
        let (aux4, aux6) = split_aux(&spec.aux_addresses, subnet, v6.map(|v| v.0))?;
        let mut pool = Pool::new(subnet, spec.gateway, spec.ip_range)?.with_reserved(aux4)?;
        if let Some((subnet6, _)) = v6 {
            pool.v6 = Some(Pool6::new(subnet6, spec.gateway6, spec.ip_range6, aux6)?);
        }
        let net6 = pool.v6.as_ref().map(|p6| Net6 {
            subnet: p6.subnet,
            gateway: p6.gateway,
            ip_range: p6.ip_range,
            chosen: v6.is_some_and(|v| v.1),
        });
        let network = Network {
            id: id.clone(),
            name,
            driver: "bridge".to_string(),
            bridge,
            subnet: pool.subnet,
            gateway: pool.gateway,
            ip_range: pool.ip_range,
            internal: spec.internal,
            subnet_chosen: spec.subnet.is_none(),
            v6: net6,
            aux_addresses: spec.aux_addresses,
            labels: spec.labels,
            options: spec.options,
            mtu,
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            cni: None,
        };
        // Pool, record, then bridge and rules: a crash in between leaves a pool without a
        // record (dropped by `open`) or a record whose bridge and rules `open` installs.
        state.ipam.add_pool(&id, pool)?;
        let made = async {
            persist::write_json(&self.record(&id), &network)?;
            self.install(&network).await?;
            Ok::<_, NetworkError>(())
        }
        .await;
        if let Err(e) = made {
            self.uninstall(&network).await;
            let _ = persist::remove(&self.record(&id));
            let _ = state.ipam.remove_pool(&id);
            return Err(e);
        }
        state.networks.insert(id, network.clone());
        Ok(network)
    }

    /// Removes a network without endpoints: rules, bridge, pool, record.
    pub async fn remove(&self, name_or_id: &str) -> Result<(), NetworkError> {
        let mut state = self.state.lock().await;
        let network = find(&state.networks, name_or_id)?.clone();
        if network.cni.is_some() {
            return self.remove_cni(&mut state, &network).await;
        }
        let busy = state
            .ipam
            .pool(&network.id)
            .is_some_and(|p| !p.allocated.is_empty());
        if busy {
            return Err(NetworkError::ActiveEndpoints {
                name: network.name,
                id: network.id,
            });
        }
        self.firewall.remove_network(&rules_of(&network)).await?;
        self.netlink.delete_link(&network.bridge).await?;
        state.ipam.remove_pool(&network.id)?;
        persist::remove(&self.record(&network.id))?;
        state.networks.remove(&network.id);
        Ok(())
    }

    /// Makes the bridge, its sysctls and its rules (all idempotent).
    async fn install(&self, network: &Network) -> Result<(), NetworkError> {
        self.install_link(network).await?;
        self.firewall.add_network(&rules_of(network)).await?;
        Ok(())
    }

    /// The bridge of a network and its sysctls (its rules are the firewall's part).
    async fn install_link(&self, network: &Network) -> Result<(), NetworkError> {
        let address =
            Ipv4Net::new(network.gateway, network.subnet.prefix_len()).unwrap_or(network.subnet);
        let index = self
            .netlink
            .ensure_bridge(&network.bridge, address, Some(network.mtu))
            .await?;
        sysctl::enable_route_localnet(&network.bridge)?;
        if let Some(v6) = &network.v6 {
            sysctl::enable_ipv6(&network.bridge)?;
            let address6 = Ipv6Net::new(v6.gateway, v6.subnet.prefix_len()).unwrap_or(v6.subnet);
            self.netlink
                .ensure_address6(index, &network.bridge, address6)
                .await?;
        }
        if !network.internal {
            sysctl::enable_ip_forward()?;
            if network.v6.is_some() {
                sysctl::enable_ipv6_forward()?;
            }
        }
        Ok(())
    }

    /// Undoes [`Networks::install`] as far as it can (used on failure paths).
    async fn uninstall(&self, network: &Network) {
        if let Err(e) = self.firewall.remove_network(&rules_of(network)).await {
            tracing::warn!("removing the rules of {}: {e}", network.bridge);
        }
        if let Err(e) = self.netlink.delete_link(&network.bridge).await {
            tracing::warn!("deleting bridge {}: {e}", network.bridge);
        }
    }

    fn record(&self, id: &str) -> PathBuf {
        self.records.join(format!("{id}.json"))
    }
}

fn rules_of(network: &Network) -> NetworkRules<'_> {
    NetworkRules {
        bridge: &network.bridge,
        subnet: network.subnet,
        subnet6: network.v6.as_ref().map(|v6| v6.subnet),
        internal: network.internal,
    }
}

/// The auxiliary addresses by family, each in its family's subnet (dockerd's words when
/// not).
fn split_aux(
    aux: &BTreeMap<String, IpAddr>,
    subnet: Ipv4Net,
    subnet6: Option<Ipv6Net>,
) -> Result<(BTreeSet<Ipv4Addr>, BTreeSet<Ipv6Addr>), NetworkError> {
    let mut v4 = BTreeSet::new();
    let mut v6 = BTreeSet::new();
    for (name, ip) in aux {
        let outside = |pool: String| NetworkError::AuxOutside {
            name: name.clone(),
            ip: *ip,
            pool,
        };
        match ip {
            IpAddr::V4(ip4) if subnet.trunc().contains(ip4) => {
                v4.insert(*ip4);
            }
            IpAddr::V4(_) => return Err(outside(subnet.trunc().to_string())),
            IpAddr::V6(ip6) => match subnet6.map(|s| s.trunc()) {
                Some(s6) if s6.contains(ip6) => {
                    v6.insert(*ip6);
                }
                Some(s6) => return Err(outside(s6.to_string())),
                None => return Err(outside(String::new())),
            },
        }
    }
    Ok((v4, v6))
}

/// A network by exact id, exact name, or unique id prefix (Docker's order).
fn find<'a>(
    networks: &'a BTreeMap<String, Network>,
    name_or_id: &str,
) -> Result<&'a Network, NetworkError> {
    if let Some(network) = networks.get(name_or_id) {
        return Ok(network);
    }
    if let Some(network) = networks.values().find(|n| n.name == name_or_id) {
        return Ok(network);
    }
    let matches: Vec<_> = networks
        .values()
        .filter(|n| !name_or_id.is_empty() && n.id.starts_with(name_or_id))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(NetworkError::NotFound(name_or_id.to_string())),
        many => Err(NetworkError::Ambiguous(name_or_id.to_string(), many.len())),
    }
}

fn check_bridge_name(name: &str) -> Result<(), NetworkError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(NetworkError::BadBridge(
            name.to_string(),
            "at most 15 letters, digits, '_' or '-'",
        ))
    }
}

/// 64 random hex digits, as Docker's ids.
fn random_id() -> Result<String, NetworkError> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| {
            NetworkError::Persist(crate::persist::PersistError::Io {
                op: "reading",
                path: PathBuf::from("/dev/urandom"),
                source,
            })
        })?;
    Ok(hex::encode(bytes))
}
