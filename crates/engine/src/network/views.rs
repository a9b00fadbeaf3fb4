//! Networks in `GET /containers/{id}/json` (`NetworkSettings`) and `GET /containers/json`
//! (`Ports`, `NetworkSettings.Networks`).

use super::*;

impl Engine {
    /// `NetworkSettings` of `GET /containers/{id}/json`.
    pub(crate) fn network_settings(&self, c: &Container) -> NetworkSettings {
        let running = c.is_running();
        let mut networks = HashMap::new();
        match mode(&c.host_config) {
            Mode::Host | Mode::None => {
                let name = if mode(&c.host_config) == Mode::Host {
                    "host"
                } else {
                    "none"
                };
                let id = self
                    .net
                    .get()
                    .map(|n| {
                        if name == "host" {
                            n.predefined.host.clone()
                        } else {
                            n.predefined.none.clone()
                        }
                    })
                    .unwrap_or_default();
                networks.insert(
                    name.to_string(),
                    EndpointSettings {
                        network_id: Some(id),
                        ..empty_endpoint()
                    },
                );
            }
            Mode::Container(_) => {}
            Mode::Networks(_) => {
                for e in &c.networks.endpoints {
                    networks.insert(e.name.clone(), endpoint_settings(e, running));
                }
            }
        }
        let ports = if running {
            Some(port_map(c))
        } else {
            Some(PortMap::new())
        };
        let sandbox_key = match (running, mode(&c.host_config)) {
            (true, Mode::None | Mode::Networks(_)) => self.netns_path(&c.id).display().to_string(),
            _ => String::new(),
        };
        NetworkSettings {
            sandbox_id: Some(String::new()),
            sandbox_key: Some(sandbox_key),
            ports,
            networks: Some(networks),
        }
    }
}

/// `GET /containers/json`'s `Ports`: published ports, then exposed ones that are not.
pub(crate) fn summary_ports(c: &Container) -> Vec<PortSummary> {
    if !c.is_running() {
        return Vec::new();
    }
    let published: Vec<&PublishedPort> = live_ports(c).collect();
    let mut out: Vec<PortSummary> = published
        .iter()
        .map(|p| PortSummary {
            ip: Some(p.host_ip.to_string()),
            private_port: p.container_port,
            public_port: Some(p.host_port),
            typ: Some(summary_type(p.proto)),
        })
        .collect();
    for key in c.config.exposed_ports.iter().flatten() {
        if let Ok((port, proto)) = parse_port_key(key) {
            if !published
                .iter()
                .any(|p| p.container_port == port && p.proto == proto)
            {
                out.push(PortSummary {
                    ip: None,
                    private_port: port,
                    public_port: None,
                    typ: Some(summary_type(proto)),
                });
            }
        }
    }
    out
}

/// `GET /containers/json`'s `NetworkSettings.Networks`.
pub(crate) fn summary_networks(
    engine: &Engine,
    c: &Container,
) -> HashMap<String, EndpointSettings> {
    engine.network_settings(c).networks.unwrap_or_default()
}

fn summary_type(p: Proto) -> PortSummaryTypeEnum {
    match p {
        Proto::Tcp => PortSummaryTypeEnum::TCP,
        Proto::Udp => PortSummaryTypeEnum::UDP,
    }
}

fn live_ports(c: &Container) -> impl Iterator<Item = &PublishedPort> {
    c.networks
        .endpoints
        .iter()
        .filter_map(|e| e.live.as_ref())
        .flat_map(|l| l.endpoint.ports.iter())
}

/// `NetworkSettings.Ports`: every exposed or published port, with its host bindings (null
/// when not published).
fn port_map(c: &Container) -> PortMap {
    let mut map = PortMap::new();
    let keys = c.config.exposed_ports.iter().flatten().cloned().chain(
        c.host_config
            .port_bindings
            .iter()
            .flat_map(|m| m.keys().cloned()),
    );
    for key in keys {
        if let Ok((port, proto)) = parse_port_key(&key) {
            map.entry(format!("{port}/{proto}")).or_insert(None);
        }
    }
    for p in live_ports(c) {
        let list = map
            .entry(format!("{}/{}", p.container_port, p.proto))
            .or_insert(None)
            .get_or_insert_with(Vec::new);
        list.push(berth_api::models::PortBinding {
            host_ip: Some(p.host_ip.to_string()),
            host_port: Some(p.host_port.to_string()),
        });
    }
    map
}

fn empty_endpoint() -> EndpointSettings {
    EndpointSettings {
        ipam_config: None,
        links: None,
        mac_address: Some(String::new()),
        aliases: None,
        driver_opts: None,
        gw_priority: Some(0),
        network_id: Some(String::new()),
        endpoint_id: Some(String::new()),
        gateway: Some(String::new()),
        ip_address: Some(String::new()),
        ip_prefix_len: Some(0),
        ipv6_gateway: Some(String::new()),
        global_ipv6_address: Some(String::new()),
        global_ipv6_prefix_len: Some(0),
        dns_names: None,
    }
}

/// A network of `NetworkSettings.Networks`: what was asked (aliases, links, driver
/// options, `IPAMConfig` as dockerd echoes it) and, while it runs, what it got.
fn endpoint_settings(e: &EndpointEntry, running: bool) -> EndpointSettings {
    let asked_ipam = e.ipv4.is_some() || e.ipv6.is_some() || !e.link_local.is_empty();
    let mut s = EndpointSettings {
        network_id: Some(e.network_id.clone()),
        aliases: (!e.aliases.is_empty()).then(|| e.aliases.clone()),
        links: (!e.links.is_empty()).then(|| e.links.clone()),
        driver_opts: (!e.driver_opts.is_empty())
            .then(|| e.driver_opts.clone().into_iter().collect()),
        ipam_config: asked_ipam.then(|| EndpointIpamConfig {
            ipv4_address: e.ipv4.map(|ip| ip.to_string()),
            ipv6_address: e.ipv6.map(|ip| ip.to_string()),
            link_local_ips: (!e.link_local.is_empty())
                .then(|| e.link_local.iter().map(ToString::to_string).collect()),
        }),
        mac_address: Some(e.mac.clone().unwrap_or_default()),
        ..empty_endpoint()
    };
    if let (true, Some(live)) = (running, &e.live) {
        let ep = &live.endpoint;
        s.endpoint_id = Some(live.endpoint_id.clone());
        s.gateway = Some(ep.gateway.to_string());
        s.ip_address = Some(ep.ip.to_string());
        s.ip_prefix_len = Some(i64::from(ep.prefix_len));
        s.mac_address = Some(ep.mac.clone());
        if let Some(ip6) = ep.ip6 {
            s.global_ipv6_address = Some(ip6.to_string());
            s.global_ipv6_prefix_len = Some(i64::from(ep.prefix_len6));
            s.ipv6_gateway = Some(ep.gateway6.map(|g| g.to_string()).unwrap_or_default());
        }
    }
    s
}
