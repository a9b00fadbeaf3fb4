//! Published ports: `HostConfig.PortBindings` and `-P` as the network library's bindings.

use super::*;

/// `80/tcp`, `53/udp`, `8080` (tcp).
pub(super) fn parse_port_key(key: &str) -> Result<(u16, Proto)> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" | "" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => {
            return Err(EngineError::InvalidParameter(format!(
                "invalid proto: {other}"
            )))
        }
    };
    let port =
        port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
            EngineError::InvalidParameter(format!("invalid containerPort: {port}"))
        })?;
    Ok((port, proto))
}

/// `HostConfig.PortBindings` (and `-P`: every exposed port, on a random host port) as the
/// network library's bindings. A binding without a host address is published on both
/// families when the container has an IPv6 address (`0.0.0.0` and `::`); `0.0.0.0` or an
/// IPv6 address (`[::1]`, `::`) names one family.
pub(super) fn port_bindings(hc: &HostSpec, exposed: &[String]) -> Result<Vec<PortBinding>> {
    let mut out = Vec::new();
    let map = hc.port_bindings.clone().unwrap_or_default();
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let mut bound = BTreeSet::new();
    for key in keys {
        let (container_port, proto) = parse_port_key(key)?;
        bound.insert((container_port, proto));
        for b in map[key].iter().flatten() {
            let host_ip = match b.host_ip.as_deref().unwrap_or("") {
                "" => None,
                s => Some(
                    s.trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .map_err(|_| {
                            EngineError::InvalidParameter(format!("invalid IP address: {s}"))
                        })?,
                ),
            };
            let host_port = match b.host_port.as_deref().unwrap_or("") {
                "" | "0" => None,
                s => {
                    let first = s.split('-').next().unwrap_or(s);
                    Some(first.parse::<u16>().map_err(|_| {
                        EngineError::InvalidParameter(format!("invalid hostPort: {s}"))
                    })?)
                }
            };
            out.push(PortBinding {
                proto,
                host_ip,
                host_port,
                container_port,
            });
        }
    }
    if hc.publish_all_ports == Some(true) {
        let mut exposed: Vec<(u16, Proto)> = exposed
            .iter()
            .filter_map(|k| parse_port_key(k).ok())
            .filter(|k| !bound.contains(k))
            .collect();
        exposed.sort();
        exposed.dedup();
        for (container_port, proto) in exposed {
            out.push(PortBinding {
                proto,
                host_ip: None,
                host_port: None,
                container_port,
            });
        }
    }
    Ok(out)
}

/// The image's `ExposedPorts` added to the container's (as dockerd merges them).
pub(crate) fn merge_exposed_ports(config: &mut ContainerSpec, image_config: &Value) {
    let Some(image) = image_config["ExposedPorts"].as_object() else {
        return;
    };
    let ports = config.exposed_ports.get_or_insert_with(Vec::new);
    for key in image.keys() {
        if !ports.contains(key) {
            ports.push(key.clone());
        }
    }
    ports.sort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::spec::PortMap;

    #[test]
    fn port_bindings_and_publish_all() {
        let mut map = PortMap::new();
        map.insert(
            "80/tcp".into(),
            Some(vec![crate::container::spec::PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some("8080".into()),
            }]),
        );
        map.insert(
            "53/udp".into(),
            Some(vec![crate::container::spec::PortBinding {
                host_ip: Some(String::new()),
                host_port: Some(String::new()),
            }]),
        );
        let hc = HostSpec {
            port_bindings: Some(map),
            publish_all_ports: Some(true),
            ..Default::default()
        };
        let b = port_bindings(&hc, &["80/tcp".into(), "443/tcp".into()]).unwrap();
        assert_eq!(b.len(), 3);
        assert!(b.contains(&PortBinding {
            proto: Proto::Udp,
            host_ip: None,
            host_port: None,
            container_port: 53
        }));
        assert!(b.contains(&PortBinding {
            proto: Proto::Tcp,
            host_ip: Some(Ipv4Addr::LOCALHOST.into()),
            host_port: Some(8080),
            container_port: 80
        }));
        assert!(b
            .iter()
            .any(|p| p.container_port == 443 && p.host_port.is_none()));
        assert!(parse_port_key("x/tcp").is_err());
        assert!(parse_port_key("80/sctp").is_err());
    }
}
