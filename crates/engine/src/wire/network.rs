//! Networks as the API shows them (`GET /networks`, `GET /networks/{id}`): the API's model made
//! from the network library's record, then its JSON with what dockerd always sends.

use std::collections::{BTreeMap, HashMap};

use berth_api::models::{ConfigReference, EndpointResource, Ipam, IpamConfig, NetworkInspect};
use berth_network::Network;
use serde_json::{json, Value};

/// The model of network `n`, whose connected containers are `containers` (by id; empty in
/// lists, as dockerd's). A CNI network shows the subnet and IPAM type of its conflist (no
/// `Config` when the conflist names no subnet).
pub fn network_model(n: &Network, containers: HashMap<String, EndpointResource>) -> NetworkInspect {
    let aux = |v6: bool| -> Option<HashMap<String, String>> {
        let of_family: HashMap<String, String> = n
            .aux_addresses
            .iter()
            .filter(|(_, ip)| ip.is_ipv6() == v6)
            .map(|(k, ip)| (k.clone(), ip.to_string()))
            .collect();
        (!of_family.is_empty()).then_some(of_family)
    };
    let config = IpamConfig {
        subnet: Some(n.subnet.to_string()),
        gateway: Some(n.gateway.to_string()),
        ip_range: n.ip_range.map(|r| r.to_string()),
        auxiliary_addresses: aux(false),
    };
    let config6 = n.v6.as_ref().map(|v6| IpamConfig {
        subnet: Some(v6.subnet.to_string()),
        gateway: Some(v6.gateway.to_string()),
        ip_range: v6.ip_range.map(|r| r.to_string()),
        auxiliary_addresses: aux(true),
    });
    let cni = n
        .cni
        .as_ref()
        .and_then(|c| berth_network::cni::ConfList::parse(&c.conflist).ok());
    let configs = match &cni {
        Some(_) if n.subnet.prefix_len() == 0 => vec![],
        _ => [Some(config), config6].into_iter().flatten().collect(),
    };
    let ipam_driver = cni
        .as_ref()
        .map_or("default", |c| c.ipam_type().unwrap_or(""));
    NetworkInspect {
        name: Some(n.name.clone()),
        id: Some(n.id.clone()),
        created: Some(rfc3339_secs(n.created)),
        driver: Some(n.driver.clone()),
        enable_ipv6: Some(n.v6.is_some()),
        ipam: Some(Ipam {
            driver: Some(ipam_driver.to_string()),
            config: Some(configs),
            options: None,
        }),
        internal: Some(n.internal),
        containers: Some(containers),
        options: Some(map(&n.options)),
        labels: Some(map(&n.labels)),
        ..local()
    }
}

/// The model of a predefined network (`host`, `none`), which has no record.
pub fn predefined_model(name: &str, driver: &str, id: &str, created: &str) -> NetworkInspect {
    NetworkInspect {
        name: Some(name.to_string()),
        id: Some(id.to_string()),
        created: Some(created.to_string()),
        driver: Some(driver.to_string()),
        enable_ipv6: Some(false),
        ipam: Some(Ipam {
            driver: Some("default".to_string()),
            config: Some(Vec::new()),
            options: None,
        }),
        internal: Some(false),
        containers: Some(HashMap::new()),
        options: Some(HashMap::new()),
        labels: Some(HashMap::new()),
        ..local()
    }
}

/// What every local network of Berth's says.
fn local() -> NetworkInspect {
    NetworkInspect {
        scope: Some("local".to_string()),
        enable_ipv4: Some(true),
        attachable: Some(false),
        ingress: Some(false),
        config_from: Some(ConfigReference {
            network: Some(String::new()),
        }),
        config_only: Some(false),
        ..NetworkInspect::default()
    }
}

/// A network's JSON: the model's, with dockerd's `"IPAM": {"Options": null}`.
pub fn network_json(model: &NetworkInspect) -> Value {
    let mut v = serde_json::to_value(model).unwrap_or_default();
    super::fill(&mut v, &json!({"IPAM": {"Options": null}}));
    v
}

fn map(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn rfc3339_secs(secs: u64) -> String {
    humantime::format_rfc3339_nanos(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}
