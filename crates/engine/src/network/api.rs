//! The `/networks` API: list, inspect, create, remove, prune, connect, disconnect.

use berth_api::models::{EndpointResource, NetworkInspect};

use super::*;
use crate::container::CRI_LABEL;
use crate::wire;

const NO_NETWORK: &str =
    "container cannot be connected to multiple networks with one of the networks in private (none) mode";

impl Engine {
    /// `GET /networks?filters=`.
    pub async fn network_list(&self, filters: &Filters) -> Result<Vec<Value>> {
        for key in filters.0.keys() {
            if !matches!(
                key.as_str(),
                "name" | "id" | "label" | "driver" | "type" | "scope" | "dangling"
            ) {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid filter '{key}'"
                )));
            }
        }
        let net = self.net()?;
        let mut out = self.predefined_models(net);
        for n in net.networks.list().await {
            if n.labels.contains_key(CRI_LABEL) {
                continue;
            }
            out.push(wire::network::network_model(&n, HashMap::new()));
        }
        let used: BTreeSet<String> = self
            .containers
            .all()
            .iter()
            .flat_map(|c| c.networks.endpoints.iter().map(|e| e.network_id.clone()))
            .collect();
        Ok(out
            .iter()
            .filter(|n| {
                let name = n.name.as_deref().unwrap_or_default();
                let id = n.id.as_deref().unwrap_or_default();
                let driver = n.driver.as_deref().unwrap_or_default();
                let any = |key: &str, pred: &dyn Fn(&str) -> bool| {
                    let values = filters.get(key);
                    values.is_empty() || values.iter().any(|x| pred(x))
                };
                let builtin = ["bridge", "host", "none"].contains(&name);
                any("name", &|x| name.contains(x))
                    && any("id", &|x| id.starts_with(x))
                    && any("driver", &|x| driver == x)
                    && any("scope", &|x| x == "local")
                    && any("type", &|x| (x == "builtin") == builtin)
                    && any("dangling", &|x| {
                        (x == "true" || x == "1") == (!builtin && !used.contains(id))
                    })
                    && filters.labels_match(|k| {
                        n.labels.as_ref().and_then(|l| l.get(k)).map(String::as_str)
                    })
            })
            .map(wire::network::network_json)
            .collect())
    }

    /// `GET /networks/{id}`.
    pub async fn network_inspect(&self, key: &str) -> Result<Value> {
        let net = self.net()?;
        if let Some(model) = self
            .predefined_models(net)
            .into_iter()
            .find(|n| n.name.as_deref() == Some(key) || n.id.as_deref() == Some(key))
        {
            return Ok(wire::network::network_json(&model));
        }
        let n = net.networks.get(key).await.map_err(net_error)?;
        let mut containers = HashMap::new();
        for c in self.containers.all() {
            for e in &c.networks.endpoints {
                if let (true, Some(live)) = (e.network_id == n.id, &e.live) {
                    let ep = &live.endpoint;
                    containers.insert(
                        c.id.clone(),
                        EndpointResource {
                            name: Some(c.name.clone()),
                            endpoint_id: Some(live.endpoint_id.clone()),
                            mac_address: Some(ep.mac.clone()),
                            ipv4_address: Some(format!("{}/{}", ep.ip, ep.prefix_len)),
                            ipv6_address: Some(
                                ep.ip6
                                    .map(|ip6| format!("{ip6}/{}", ep.prefix_len6))
                                    .unwrap_or_default(),
                            ),
                        },
                    );
                }
            }
        }
        Ok(wire::network::network_json(&wire::network::network_model(
            &n, containers,
        )))
    }

    /// The models of the predefined networks `host` and `none`.
    fn predefined_models(&self, net: &NetState) -> Vec<NetworkInspect> {
        let p = &net.predefined;
        [("host", "host", &p.host), ("none", "null", &p.none)]
            .into_iter()
            .map(|(name, driver, id)| wire::network::predefined_model(name, driver, id, &p.created))
            .collect()
    }

    /// `POST /networks/create`: the new network's id.
    pub async fn network_create(&self, req: NetworkCreateRequest) -> Result<String> {
        let net = self.net()?;
        if ["host", "none"].contains(&req.name.as_str()) {
            return Err(EngineError::Conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        if req.name.is_empty() {
            return Err(EngineError::InvalidParameter(
                "network name cannot be empty".into(),
            ));
        }
        let driver = req.driver.clone().unwrap_or_default();
        match driver.as_str() {
            "" | "bridge" | berth_network::DRIVER_CNI => {}
            other => {
                return Err(EngineError::NotFound(format!(
                    "plugin \"{other}\" not found"
                )))
            }
        }
        let mut spec = NetworkSpec {
            name: req.name.clone(),
            driver,
            internal: req.internal.unwrap_or(false),
            ipv6: req.enable_ipv6 == Some(true),
            pool6_seed: machine_id(),
            labels: req.labels.unwrap_or_default().into_iter().collect(),
            options: req.options.unwrap_or_default().into_iter().collect(),
            ..Default::default()
        };
        let configs = req.ipam.and_then(|i| i.config).unwrap_or_default();
        ipam_configs(&mut spec, &configs)?;
        let made = net.networks.create(spec).await.map_err(net_error);
        self.refresh_cache(net).await;
        let n = made?;
        self.network_event("create", (&n.id, &n.name, Some(&n.driver)), None);
        Ok(n.id)
    }

    /// `DELETE /networks/{id}`.
    pub async fn network_remove(&self, key: &str) -> Result<()> {
        let net = self.net()?;
        let n = match net.networks.get(key).await {
            Ok(n) => n,
            Err(e) => {
                let p = &net.predefined;
                if ["host", "none"].contains(&key) || key == p.host || key == p.none {
                    let name = if key == p.host {
                        "host"
                    } else if key == p.none {
                        "none"
                    } else {
                        key
                    };
                    return Err(EngineError::Forbidden(format!(
                        "{name} is a pre-defined network and cannot be removed"
                    )));
                }
                return Err(net_error(e));
            }
        };
        if n.name == DEFAULT_BRIDGE {
            return Err(EngineError::Forbidden(format!(
                "{DEFAULT_BRIDGE} is a pre-defined network and cannot be removed"
            )));
        }
        let removed = net.networks.remove(&n.id).await.map_err(net_error);
        self.refresh_cache(net).await;
        removed?;
        self.network_event("destroy", (&n.id, &n.name, Some(&n.driver)), None);
        Ok(())
    }

    /// `POST /networks/prune`: removes the user networks nothing is attached to; their names.
    pub async fn network_prune(&self, filters: &Filters) -> Result<Vec<String>> {
        let net = self.net()?;
        let mut removed = Vec::new();
        for n in net.networks.list().await {
            if n.name == DEFAULT_BRIDGE || n.labels.contains_key(CRI_LABEL) {
                continue;
            }
            if !filters.labels_match(|k| n.labels.get(k).map(String::as_str)) {
                continue;
            }
            if net.networks.remove(&n.id).await.is_ok() {
                removed.push(n.name);
            }
        }
        self.refresh_cache(net).await;
        Ok(removed)
    }

    /// `POST /networks/{id}/connect`: a running container is attached now, a stopped one at
    /// its next start.
    pub async fn network_connect(
        &self,
        network: &str,
        container: &str,
        settings: Option<EndpointSettings>,
    ) -> Result<()> {
        let net = self.net()?;
        let n = self.network_for_connect(net, network).await?;
        let c = self.containers.get(container)?;
        self.check_connectable(&c)?;
        if c.networks.endpoints.iter().any(|e| e.network_id == n.id) {
            return Err(EngineError::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                c.name, n.name
            )));
        }
        let mut entry = entry_for(&n, settings.as_ref())?;
        if c.is_running() {
            let netns = self.netns_path(&c.id);
            let used: BTreeSet<String> = c
                .networks
                .endpoints
                .iter()
                .filter_map(|e| e.live.as_ref().map(|l| l.endpoint.interface.clone()))
                .collect();
            let interface = (0..)
                .map(|i| format!("eth{i}"))
                .find(|name| !used.contains(name))
                .unwrap_or_else(|| "eth9".into());
            let first = used.is_empty();
            // Recorded first so that `attach_one` finds the entry to mark live.
            let pending = entry.clone();
            self.containers
                .update_in_memory(&c.id, move |c| c.networks.endpoints.push(pending))?;
            match self
                .attach_one(net, &c, &entry, &netns, &interface, first, Vec::new())
                .await
            {
                Ok(live) => entry.live = Some(live),
                Err(e) => {
                    let id = n.id.clone();
                    let _ = self.containers.update_in_memory(&c.id, move |c| {
                        c.networks.endpoints.retain(|e| e.network_id != id)
                    });
                    return Err(e);
                }
            }
            let id = n.id.clone();
            let recorded = self.containers.update(&c.id, move |c| {
                c.networks.endpoints.retain(|e| e.network_id != id);
                c.networks.endpoints.push(entry);
            });
            let c = match recorded {
                Ok(c) => c,
                Err(e) => {
                    // Not recorded (a full disk): not connected either.
                    let _ = net.networks.detach(&n.id, &c.id).await;
                    let id = n.id.clone();
                    let _ = self.containers.update_in_memory(&c.id, move |c| {
                        c.networks.endpoints.retain(|e| e.network_id != id)
                    });
                    return Err(e);
                }
            };
            if dns::uses_embedded_dns(&c) {
                self.start_dns(net, &c.id, &netns)?;
            }
        } else {
            self.containers
                .update(&c.id, move |c| c.networks.endpoints.push(entry))?;
        }
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn network_disconnect(
        &self,
        network: &str,
        container: &str,
        force: bool,
    ) -> Result<()> {
        let net = self.net()?;
        let n = self.network_for_connect(net, network).await?;
        let c = match self.containers.get(container) {
            Ok(c) => c,
            Err(_) if force => {
                // A container that is gone: its endpoint (if any) goes with force.
                let _ = net.networks.detach(&n.id, container).await;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.check_connectable(&c)?;
        let Some(entry) = c
            .networks
            .endpoints
            .iter()
            .find(|e| e.network_id == n.id)
            .cloned()
        else {
            // dockerd 20.10 answers this one with a 500.
            return Err(EngineError::Internal(format!(
                "container {} is not connected to network {}",
                c.id, n.name
            )));
        };
        if entry.live.is_some() {
            match net.networks.detach(&n.id, &c.id).await {
                Ok(()) | Err(NetworkError::NotAttached { .. }) => {}
                Err(e) => return Err(net_error(e)),
            }
            self.network_event("disconnect", (&n.id, &n.name, Some(&n.driver)), Some(&c.id));
        }
        let id = n.id.clone();
        let recorded = self.containers.update(&c.id, move |c| {
            c.networks.endpoints.retain(|e| e.network_id != id)
        });
        let c = match recorded {
            Ok(c) => c,
            Err(e) => {
                // Detached, but the record still names the network (a full disk): it is
                // connected again at the next start, as the record says.
                let id = n.id.clone();
                let _ = self.containers.update_in_memory(&c.id, move |c| {
                    for e in c.networks.endpoints.iter_mut() {
                        if e.network_id == id {
                            e.live = None;
                        }
                    }
                });
                return Err(e);
            }
        };
        if !dns::uses_embedded_dns(&c) {
            self.stop_dns(net, &c.id).await;
        }
        Ok(())
    }

    async fn network_for_connect(&self, net: &NetState, key: &str) -> Result<Network> {
        let p = &net.predefined;
        // Statuses and words of dockerd 20.10.
        if key == "host" || key == p.host {
            return Err(EngineError::InvalidParameter(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        if key == "none" || key == p.none {
            return Err(EngineError::InvalidParameter(NO_NETWORK.into()));
        }
        net.networks.get(key).await.map_err(net_error)
    }

    fn check_connectable(&self, c: &Container) -> Result<()> {
        match mode(&c.host_config) {
            Mode::Networks(_) => Ok(()),
            Mode::None => Err(EngineError::InvalidParameter(NO_NETWORK.into())),
            Mode::Host | Mode::Container(_) => Err(EngineError::InvalidParameter(
                "container sharing network namespace with another container or host cannot be connected to any other network".into(),
            )),
        }
    }
}

/// The `IPAM.Config` entries of a create request into `spec`: one IPv4 subnet at most and
/// one IPv6 subnet at most (which needs `EnableIPv6`), each with its gateway, range and
/// auxiliary addresses.
fn ipam_configs(spec: &mut NetworkSpec, configs: &[berth_api::models::IpamConfig]) -> Result<()> {
    let bad = |m: String| EngineError::InvalidParameter(m);
    let text = |s: &Option<String>| s.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
    let cidr = |s: &Option<String>| -> Result<Option<ipnet::IpNet>> {
        match text(s) {
            None => Ok(None),
            Some(s) => s
                .parse::<ipnet::IpNet>()
                .map(Some)
                .map_err(|_| bad(format!("invalid CIDR address: {s}"))),
        }
    };
    let addr = |s: &Option<String>, what: &str| -> Result<Option<IpAddr>> {
        match text(s) {
            None => Ok(None),
            Some(s) => s
                .parse::<IpAddr>()
                .map(Some)
                .map_err(|_| bad(format!("invalid {what} address: {s}"))),
        }
    };
    let (mut seen4, mut seen6) = (false, false);
    for cfg in configs {
        let subnet = cidr(&cfg.subnet)?;
        let range = cidr(&cfg.ip_range)?;
        let gateway = addr(&cfg.gateway, "gateway")?;
        let v6 = match (subnet, range, gateway) {
            (Some(n), ..) => n.addr().is_ipv6(),
            (None, Some(_), _) | (None, _, Some(_)) => {
                return Err(bad("ip-range and gateway need a subnet".into()))
            }
            (None, None, None) => false,
        };
        let family_mix = range.is_some_and(|r| r.addr().is_ipv6() != v6)
            || gateway.is_some_and(|g| g.is_ipv6() != v6);
        if family_mix {
            return Err(bad(format!(
                "ip-range and gateway must be of the subnet's family: {}",
                text(&cfg.subnet).unwrap_or_default()
            )));
        }
        let seen = if v6 { &mut seen6 } else { &mut seen4 };
        if *seen {
            return Err(bad(format!(
                "berth supports one {} subnet per network",
                if v6 { "IPv6" } else { "IPv4" }
            )));
        }
        *seen = true;
        if v6 && !spec.ipv6 {
            return Err(bad(
                "enable IPv6 (--ipv6) to configure an IPv6 subnet".into()
            ));
        }
        match (subnet, range, gateway) {
            (Some(ipnet::IpNet::V6(n)), r, g) => {
                spec.subnet6 = Some(n.trunc());
                spec.ip_range6 = r.and_then(|r| match r {
                    ipnet::IpNet::V6(r) => Some(r),
                    ipnet::IpNet::V4(_) => None,
                });
                spec.gateway6 = g.and_then(|g| match g {
                    IpAddr::V6(g) => Some(g),
                    IpAddr::V4(_) => None,
                });
            }
            (Some(ipnet::IpNet::V4(n)), r, g) => {
                spec.subnet = Some(n.trunc());
                spec.ip_range = r.and_then(|r| match r {
                    ipnet::IpNet::V4(r) => Some(r),
                    ipnet::IpNet::V6(_) => None,
                });
                spec.gateway = g.and_then(|g| match g {
                    IpAddr::V4(g) => Some(g),
                    IpAddr::V6(_) => None,
                });
            }
            _ => {}
        }
        for (name, value) in cfg.auxiliary_addresses.iter().flatten() {
            let ip = value
                .parse::<IpAddr>()
                .map_err(|_| bad(format!("invalid auxiliary address {name}: {value}")))?;
            if subnet.is_none() {
                return Err(bad(format!("auxiliary address {name} needs a subnet")));
            }
            spec.aux_addresses.insert(name.clone(), ip);
        }
    }
    Ok(())
}

/// The host's machine id (`/etc/machine-id`), the seed of its IPv6 default pool; the host
/// name when there is none.
pub(super) fn machine_id() -> Vec<u8> {
    std::fs::read("/etc/machine-id")
        .ok()
        .filter(|id| !id.is_empty())
        .or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .map(|h| h.as_encoded_bytes().to_vec())
        })
        .unwrap_or_default()
}
