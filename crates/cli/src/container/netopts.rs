//! The network flags of run/create (`--network-alias`, `--link`, `--ip`, `--ip6`,
//! `--link-local-ip`, `--mac-address`) turned into the endpoint the create body carries, checked
//! as the docker CLI checks them.

use anyhow::{bail, Result};
use berth_api::models::{EndpointIpamConfig, EndpointSettings};

use super::CreateOpts;

/// A `--link` value as the docker CLI takes it: `NAME` or `NAME:ALIAS`, sent as given.
pub(crate) fn validate_link(val: &str) -> std::result::Result<String, String> {
    if val.is_empty() {
        return Err("empty string specified for links".to_string());
    }
    if val.split(':').count() > 2 {
        return Err(format!("bad format for links: {val}"));
    }
    Ok(val.to_string())
}

/// Whether `text` is a MAC address as Go's `net.ParseMAC` reads one: 6, 8 or 20 octets, as
/// hex pairs split by `:` or `-`, or hex quads split by `.`.
pub(crate) fn valid_mac(text: &str) -> bool {
    let text = text.trim();
    let (sep, width, counts): (char, usize, [usize; 3]) = if text.contains(':') {
        (':', 2, [6, 8, 20])
    } else if text.contains('-') {
        ('-', 2, [6, 8, 20])
    } else {
        ('.', 4, [3, 4, 10])
    };
    let groups: Vec<&str> = text.split(sep).collect();
    counts.contains(&groups.len())
        && groups
            .iter()
            .all(|g| g.len() == width && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Whether `mode` names a user-defined network (not `default`, `bridge`, `host`, `none` nor
/// `container:...`), as the docker CLI's `NetworkMode.IsUserDefined`.
fn user_defined(mode: &str) -> bool {
    !matches!(mode, "default" | "bridge" | "host" | "none") && !mode.starts_with("container:")
}

/// The endpoint settings for `network` from the flags (empty settings when none is given).
pub(super) fn endpoint(o: &CreateOpts, network: &str) -> Result<EndpointSettings> {
    if let Some(mac) = &o.mac_address {
        if !valid_mac(mac) {
            bail!("{mac} is not a valid mac address");
        }
    }
    let user = user_defined(network);
    if !o.network_alias.is_empty() && !user {
        bail!("network-scoped aliases are only supported for user-defined networks");
    }
    let ipam = (o.ip.is_some() || o.ip6.is_some() || !o.link_local_ip.is_empty()).then(|| {
        EndpointIpamConfig {
            ipv4_address: o.ip.clone(),
            ipv6_address: o.ip6.clone(),
            link_local_ips: (!o.link_local_ip.is_empty()).then(|| o.link_local_ip.clone()),
        }
    });
    Ok(EndpointSettings {
        aliases: (!o.network_alias.is_empty()).then(|| o.network_alias.clone()),
        // Legacy links go in `HostConfig.Links`; on a user-defined network they are the
        // endpoint's too (an alias for the linked container), as the docker CLI sends them.
        links: (user && !o.link.is_empty()).then(|| o.link.clone()),
        ipam_config: ipam,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::{valid_mac, validate_link};

    #[test]
    fn macs_as_go_reads_them() {
        assert!(valid_mac("02:42:ac:11:00:02"));
        assert!(valid_mac("02-42-AC-11-00-02"));
        assert!(valid_mac("0242.ac11.0002"));
        assert!(valid_mac("00:00:00:00:fe:80:00:00"));
        assert!(!valid_mac("02:42:ac:11:00"));
        assert!(!valid_mac("zz:42:ac:11:00:02"));
        assert!(!valid_mac("02:42-ac:11:00:02"));
        assert!(!valid_mac("0242ac110002"));
        assert!(!valid_mac(""));
    }

    #[test]
    fn links_as_the_docker_cli_takes_them() {
        assert_eq!(validate_link("db:alias"), Ok("db:alias".to_string()));
        assert_eq!(validate_link("db"), Ok("db".to_string()));
        assert_eq!(
            validate_link("a:b:c"),
            Err("bad format for links: a:b:c".to_string())
        );
        assert!(validate_link("").is_err());
    }
}
