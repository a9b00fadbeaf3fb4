//! Networks backed by a CNI configuration list (`--driver cni -o cni.conflist=PATH`): the list
//! is read and checked at create and kept in the network's record; attach is the list's ADD,
//! detach its DEL (with the cached result), and Berth makes no bridge, address pool or
//! firewall rule of its own for them: published ports are the `portMappings` capability of a
//! plugin (`portmap`), their host ports from Berth's port table. The bridge a `bridge` plugin
//! makes is deleted with the network when it did not exist before.

use std::io::Read;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::Ipv4Net;

use super::types::{
    AttachRequest, CniSpec, Endpoint, Network, NetworkError, NetworkSpec, DRIVER_CNI,
    OPT_CNI_CONFLIST,
};
use super::{Networks, State};
use crate::cni::cache::Attachment;
use crate::cni::conf::{CAP_PORT_MAPPINGS, MAX_SIZE};
use crate::cni::{CniError, CniResult, ConfList};
use crate::ipam::IpamError;
use crate::persist;
use crate::ports::PublishedPort;

impl Networks {
    /// Creates a CNI network (the state locked, its name checked): reads and checks the
    /// conflist named by [`OPT_CNI_CONFLIST`], and records it. Nothing is stored on an error.
    pub(super) async fn create_cni(
        &self,
        state: &mut State,
        spec: NetworkSpec,
        id: String,
    ) -> Result<Network, NetworkError> {
        if spec.subnet.is_some() || spec.gateway.is_some() || spec.ip_range.is_some() {
            return Err(NetworkError::CniUnsupported {
                what: "--subnet, --gateway or --ip-range",
            });
        }
        if spec.ipv6 || !spec.aux_addresses.is_empty() {
            return Err(NetworkError::CniUnsupported {
                what: "--ipv6 or --aux-address",
            });
        }
        if spec.internal {
            return Err(NetworkError::CniUnsupported { what: "--internal" });
        }
        let source = spec
            .options
            .get(OPT_CNI_CONFLIST)
            .filter(|p| !p.is_empty())
            .ok_or(CniError::MissingConflist {
                option: OPT_CNI_CONFLIST,
            })?;
        let source = Path::new(source).to_path_buf();
        if !source.is_absolute() {
            return Err(CniError::Read {
                path: source,
                source: std::io::Error::other("not an absolute path"),
            }
            .into());
        }
        let text = read_conflist(&source)?;
        let conf = ConfList::parse(&text)?;
        self.cni.check(&conf)?;
        let (subnet, gateway) = match conf.ipam_subnet() {
            Some((subnet, gateway)) => {
                let overlaps = state
                    .ipam
                    .subnets()
                    .into_iter()
                    .filter_map(|n| match n {
                        ipnet::IpNet::V4(n) => Some(n),
                        ipnet::IpNet::V6(_) => None,
                    })
                    .chain(state.networks.values().filter_map(cni_subnet))
                    .any(|other| other.contains(&subnet) || subnet.contains(&other));
                if overlaps {
                    return Err(IpamError::Overlap.into());
                }
                let first = subnet.hosts().next().unwrap_or(Ipv4Addr::UNSPECIFIED);
                (subnet, gateway.unwrap_or(first))
            }
            None => (Ipv4Net::default(), Ipv4Addr::UNSPECIFIED),
        };
        let mut bridge = String::new();
        for name in conf.bridges() {
            let taken = state.networks.values().any(|n| n.bridge == name);
            if !taken && self.netlink.link_index(&name).await?.is_none() {
                bridge = name;
                break;
            }
        }
        let network = Network {
            id: id.clone(),
            name: spec.name,
            driver: DRIVER_CNI.to_string(),
            bridge,
            subnet,
            gateway,
            ip_range: None,
            internal: false,
            subnet_chosen: false,
            v6: None,
            aux_addresses: Default::default(),
            labels: spec.labels,
            options: spec.options,
            mtu: conf.mtu().unwrap_or(super::DEFAULT_MTU),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            cni: Some(CniSpec {
                source,
                conflist: text,
            }),
        };
        persist::write_json(&self.record(&id), &network)?;
        state.networks.insert(id, network.clone());
        Ok(network)
    }

    /// Removes a CNI network without attachments: its bridge if it made it, its records.
    pub(super) async fn remove_cni(
        &self,
        state: &mut State,
        network: &Network,
    ) -> Result<(), NetworkError> {
        if !self.cni_cache.list(&network.id)?.is_empty() {
            return Err(NetworkError::ActiveEndpoints {
                name: network.name.clone(),
                id: network.id.clone(),
            });
        }
        let shared = state.networks.values().any(|n| {
            n.id != network.id
                && (n.bridge == network.bridge
                    || conf_of(n)
                        .is_some_and(|c| c.is_ok_and(|c| c.bridges().contains(&network.bridge))))
        });
        if !network.bridge.is_empty() && !shared {
            self.netlink.delete_link(&network.bridge).await?;
        }
        self.cni_cache.remove_network(&network.id)?;
        persist::remove(&self.record(&network.id))?;
        state.networks.remove(&network.id);
        Ok(())
    }

    /// Attaches a container to a CNI network: the list's ADD, its result cached. Published
    /// ports take host ports from the port table, as on a bridge, and are given to the plugins
    /// declaring the `portMappings` capability (`portmap`); a list without one refuses them.
    /// Nothing is left behind when it fails (the list is deleted again). The state is not
    /// held while the plugins run, so that containers attach in parallel (the cache record,
    /// written first, keeps the network from being removed and the container from being
    /// attached twice meanwhile).
    pub(super) async fn attach_cni(
        &self,
        mut state: tokio::sync::MutexGuard<'_, State>,
        network: &Network,
        req: &AttachRequest,
    ) -> Result<Endpoint, NetworkError> {
        let conf = conf_of(network).ok_or_else(|| CniError::Invalid("no conflist".into()))??;
        if !req.ports.is_empty() && !conf.has_capability(CAP_PORT_MAPPINGS) {
            return Err(NetworkError::CniPorts(network.name.clone()));
        }
        let container = req.container_id.as_str();
        if self.cni_cache.get(&network.id, container)?.is_some() {
            return Err(NetworkError::AlreadyAttached {
                container: container.to_string(),
                network: network.name.clone(),
            });
        }
        // The container's address is known after ADD only, and the plugins need the host
        // ports in it: reserved for the unspecified address, moved to the real one after.
        let reserved = state.ports.reserve(Ipv4Addr::UNSPECIFIED, &req.ports)?;
        let mut record = Attachment {
            container_id: container.to_string(),
            netns: req.netns.clone(),
            ifname: req.interface.clone(),
            // host-local takes a requested address from CNI_ARGS.
            args: req
                .ip
                .map(|ip| format!("IgnoreUnknown=1;IP={ip}"))
                .unwrap_or_default(),
            result: None,
            ports: reserved.clone(),
        };
        // Written first, so that a daemon dying in ADD leaves a record to DEL at its start.
        if let Err(e) = self.cni_cache.put(&network.id, &record) {
            state.ports.remove(&reserved);
            return Err(e.into());
        }
        drop(state);
        let added = self.cni.add(&conf, &record.invocation()).await;
        let mut state = self.state.lock().await;
        let value = match added {
            Ok(value) => value,
            Err(e) => {
                state.ports.remove(&reserved);
                self.cni_cache.remove(&network.id, container)?;
                return Err(e.into());
            }
        };
        let made = (|| {
            let result = CniResult::from_value(&value).map_err(|e| CniError::BadResult {
                plugin: conf.name.clone(),
                reason: e.to_string(),
            })?;
            let address = result
                .address(&req.interface, &conf.bridges())
                .ok_or_else(|| CniError::NoAddress(network.name.clone()))?;
            let ip = address.address.addr();
            record.result = Some(value.clone());
            record.ports = reserved
                .iter()
                .map(|p| PublishedPort {
                    container_ip: ip.into(),
                    ..*p
                })
                .collect();
            self.cni_cache.put(&network.id, &record)?;
            Ok::<_, CniError>(Endpoint {
                network_id: network.id.clone(),
                container_id: container.to_string(),
                interface: req.interface.clone(),
                host_veth: address.host_interface.unwrap_or_default(),
                ip,
                prefix_len: address.address.prefix_len(),
                gateway: address.gateway.unwrap_or(Ipv4Addr::UNSPECIFIED),
                mac: address.mac.unwrap_or_default(),
                ports: record.ports.clone(),
                dns: (!result.dns.is_empty()).then_some(result.dns),
                ip6: None,
                prefix_len6: 0,
                gateway6: None,
            })
        })();
        match made {
            Ok(endpoint) => {
                state.ports.remove(&reserved);
                for port in &endpoint.ports {
                    state.ports.insert(*port);
                }
                Ok(endpoint)
            }
            Err(e) => {
                let inv = record.invocation();
                if let Err(undo) = self.cni.del(&conf, &inv, Some(&value)).await {
                    tracing::warn!(network = %network.name, error = %undo, "cni DEL after a bad result");
                }
                state.ports.remove(&reserved);
                self.cni_cache.remove(&network.id, container)?;
                Err(e.into())
            }
        }
    }

    /// Detaches a container from a CNI network: the list's DEL with the cached result and
    /// ports, which are freed. When `gone` (the container exited or no longer exists), a
    /// failing DEL is logged and the record dropped all the same; otherwise the record (and
    /// its ports) stay for another try.
    pub(super) async fn detach_cni(
        &self,
        state: tokio::sync::MutexGuard<'_, State>,
        network: &Network,
        container: &str,
        gone: bool,
    ) -> Result<(), NetworkError> {
        let Some(record) = self.cni_cache.get(&network.id, container)? else {
            return Err(NetworkError::NotAttached {
                container: container.to_string(),
                network: network.name.clone(),
            });
        };
        let conf = conf_of(network).ok_or_else(|| CniError::Invalid("no conflist".into()))??;
        // The plugins run with the state free (as for ADD); the record stays until DEL is done.
        drop(state);
        let deleted = self
            .cni
            .del(&conf, &record.invocation(), record.result.as_ref())
            .await;
        match deleted {
            Ok(()) => {}
            Err(e) if gone => {
                tracing::warn!(network = %network.name, %container, error = %e, "cni DEL");
            }
            Err(e) => return Err(e.into()),
        }
        let mut state = self.state.lock().await;
        self.cni_cache.remove(&network.id, container)?;
        state.ports.remove(&record.ports);
        Ok(())
    }

    /// The ports published by the CNI attachments on disk (for the port table on start).
    pub(super) fn cni_ports(&self, networks: &[Network]) -> Vec<PublishedPort> {
        networks
            .iter()
            .filter(|n| n.cni.is_some())
            .flat_map(|n| self.cni_cache.list(&n.id).unwrap_or_default())
            .flat_map(|a| a.ports)
            .collect()
    }

    /// The containers attached to a CNI network, with their addresses (those whose ADD
    /// finished).
    pub(super) fn cni_endpoints(
        &self,
        network: &Network,
    ) -> Result<Vec<(String, Ipv4Addr)>, NetworkError> {
        let bridges = conf_of(network)
            .and_then(Result::ok)
            .map(|c| c.bridges())
            .unwrap_or_default();
        Ok(self
            .cni_cache
            .list(&network.id)?
            .into_iter()
            .filter_map(|a| {
                let result = CniResult::from_value(a.result.as_ref()?).ok()?;
                let address = result.address(&a.ifname, &bridges)?;
                Some((a.container_id, address.address.addr()))
            })
            .collect())
    }

    /// The containers with a record on a CNI network (finished ADD or not).
    pub(super) fn cni_attached(&self, network: &Network) -> Vec<String> {
        self.cni_cache
            .list(&network.id)
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.container_id)
            .collect()
    }
}

/// The parsed conflist of a CNI network (None for a bridge network).
fn conf_of(network: &Network) -> Option<Result<ConfList, CniError>> {
    network.cni.as_ref().map(|c| ConfList::parse(&c.conflist))
}

/// The subnet of a CNI network, when its conflist names one.
pub(super) fn cni_subnet(network: &Network) -> Option<Ipv4Net> {
    (network.cni.is_some() && network.subnet.prefix_len() > 0).then_some(network.subnet)
}

/// Reads a conflist file (at most [`MAX_SIZE`] bytes of UTF-8).
fn read_conflist(path: &Path) -> Result<String, CniError> {
    let err = |source| CniError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    let meta = file.metadata().map_err(err)?;
    if !meta.is_file() {
        return Err(err(std::io::Error::other("not a regular file")));
    }
    let mut text = String::new();
    file.take(MAX_SIZE + 1)
        .read_to_string(&mut text)
        .map_err(err)?;
    if text.len() as u64 > MAX_SIZE {
        return Err(err(std::io::Error::other("larger than 1 MiB")));
    }
    Ok(text)
}
