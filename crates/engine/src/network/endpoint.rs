//! An endpoint's settings as a client gives them (`NetworkingConfig.EndpointsConfig` at
//! create, the body of `POST /networks/{id}/connect`), checked as dockerd checks them.

use super::*;

/// A record entry for `network` from the client's endpoint settings (aliases, links,
/// driver options, `IPAMConfig`, `MacAddress`), refused as dockerd refuses them.
pub(super) fn entry_for(
    network: &Network,
    settings: Option<&EndpointSettings>,
) -> Result<EndpointEntry> {
    let bad = |m: String| EngineError::InvalidParameter(m);
    let list = |l: Option<&Vec<String>>| -> Vec<String> {
        l.into_iter()
            .flatten()
            .filter(|a| !a.is_empty())
            .cloned()
            .collect()
    };
    let aliases = list(settings.and_then(|s| s.aliases.as_ref()));
    let links = list(settings.and_then(|s| s.links.as_ref()));
    let ipam = settings.and_then(|s| s.ipam_config.as_ref());
    let text = |v: Option<&String>| v.filter(|s| !s.is_empty()).cloned();
    let ip = text(ipam.and_then(|i| i.ipv4_address.as_ref()));
    let ip6 = text(ipam.and_then(|i| i.ipv6_address.as_ref()));
    let default_bridge = network.name == DEFAULT_BRIDGE;
    if default_bridge && !aliases.is_empty() {
        return Err(bad(
            "network-scoped alias is supported only for containers in user defined networks".into(),
        ));
    }
    if default_bridge && (ip.is_some() || ip6.is_some()) {
        return Err(bad(
            "user specified IP address is supported on user defined networks only".into(),
        ));
    }
    let known = !network.id.is_empty();
    let ipv4 = match ip {
        None => None,
        Some(s) => {
            let ip: Ipv4Addr = s
                .parse()
                .map_err(|_| bad(format!("invalid IPv4 address: {s}")))?;
            if known && network.subnet_chosen && network.cni.is_none() {
                return Err(net_error(NetworkError::AddressNotConfigurable));
            }
            if known && !network.subnet.contains(&ip) {
                return Err(bad(format!(
                    "no configured subnet or ip-range contain the IP address {ip}"
                )));
            }
            Some(ip)
        }
    };
    let ipv6 = match ip6 {
        None => None,
        Some(s) => {
            let ip: Ipv6Addr = s
                .parse()
                .map_err(|_| bad(format!("invalid IPv6 address: {s}")))?;
            match &network.v6 {
                _ if !known => {}
                Some(v6) if !v6.chosen => {
                    if !v6.subnet.contains(&ip) {
                        return Err(bad(format!(
                            "no configured subnet or ip-range contain the IP address {ip}"
                        )));
                    }
                }
                _ => return Err(net_error(NetworkError::AddressNotConfigurable)),
            }
            Some(ip)
        }
    };
    let mut link_local = Vec::new();
    for s in list(ipam.and_then(|i| i.link_local_ips.as_ref())) {
        match s.parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => link_local.push(ip),
            _ => return Err(bad(format!("invalid link-local IP address: {s}"))),
        }
    }
    for link in &links {
        let (name, alias) = link.split_once(':').unwrap_or((link, link));
        if name.is_empty() || alias.is_empty() || alias.contains(':') {
            return Err(bad(format!("invalid link format: {link}")));
        }
    }
    let mac = match settings.and_then(|s| s.mac_address.as_deref()) {
        Some(m) if !m.is_empty() => Some(parse_mac(m)?),
        _ => None,
    };
    let driver_opts = settings
        .and_then(|s| s.driver_opts.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    Ok(EndpointEntry {
        name: network.name.clone(),
        network_id: network.id.clone(),
        aliases,
        ipv4,
        ipv6,
        link_local,
        links,
        driver_opts,
        mac,
        live: None,
    })
}

/// A MAC address as dockerd takes it (six bytes, `:` or `-` between them), as
/// `aa:bb:cc:dd:ee:ff`; refused with dockerd's words.
pub(super) fn parse_mac(text: &str) -> Result<String> {
    let bad = || EngineError::InvalidParameter(format!("invalid MAC address {text}"));
    let bytes: Vec<&str> = text.trim().split([':', '-']).collect();
    if bytes.len() != 6
        || bytes
            .iter()
            .any(|b| b.len() != 2 || !b.bytes().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(bad());
    }
    Ok(bytes.join(":").to_ascii_lowercase())
}

/// The six bytes of a MAC address [`parse_mac`] made.
pub(super) fn mac_bytes(mac: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = mac.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// A network named at create that does not exist (yet): the start looks for it again.
pub(super) fn unresolved(name: &str) -> Network {
    Network {
        id: String::new(),
        name: name.to_string(),
        driver: "bridge".to_string(),
        bridge: String::new(),
        subnet: Ipv4Net::default(),
        gateway: Ipv4Addr::UNSPECIFIED,
        ip_range: None,
        internal: false,
        subnet_chosen: false,
        v6: None,
        aux_addresses: Default::default(),
        labels: Default::default(),
        options: Default::default(),
        mtu: 0,
        created: 0,
        cni: None,
    }
}
