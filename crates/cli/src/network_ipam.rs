//! `network create`'s `--subnet`, `--ip-range`, `--gateway` and `--aux-address` gathered into
//! the IPAM configs of the create body as the docker CLI gathers them: each range, gateway
//! and auxiliary address goes to the subnet that holds it, with the docker CLI's errors.

use std::net::IpAddr;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

/// `ADDR/LEN` parsed, or the docker CLI's error.
fn cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = text.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

/// The address's bits, left-aligned in a u128 (IPv4 and IPv6 kept apart by the caller).
fn bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Whether `subnet` (`ADDR/LEN`) holds `addr`.
fn contains(subnet: (IpAddr, u8), addr: IpAddr) -> bool {
    if subnet.0.is_ipv4() != addr.is_ipv4() {
        return false;
    }
    let mask = match subnet.1 {
        0 => 0,
        n => u128::MAX << (128 - u32::from(n)),
    };
    bits(subnet.0) & mask == bits(addr) & mask
}

/// `subnetMatches` of the docker CLI: whether `subnet` holds `data` (an address or the
/// address part of a CIDR).
fn matches(subnet: &str, data: &str) -> Result<bool> {
    let s =
        cidr(subnet).ok_or_else(|| anyhow!("invalid subnet: invalid CIDR address: {subnet}"))?;
    let ip = if data.contains('/') {
        cidr(data)
            .ok_or_else(|| anyhow!("invalid CIDR address: {data}"))?
            .0
    } else {
        match data.parse() {
            Ok(ip) => ip,
            Err(_) => return Ok(false),
        }
    };
    Ok(contains(s, ip))
}

/// The `IPAM.Config` list of a network create body.
pub(crate) fn config(
    subnets: &[String],
    ranges: &[String],
    gateways: &[String],
    aux: &[String],
) -> Result<Vec<Value>> {
    if subnets.len() < ranges.len() || subnets.len() < gateways.len() {
        bail!("every ip-range or gateway must have a corresponding subnet");
    }
    let mut configs: Vec<(String, Map<String, Value>)> = Vec::new();
    for s in subnets {
        for (k, _) in &configs {
            if matches(s, k)? || matches(k, s)? {
                bail!("multiple overlapping subnet configuration is not supported");
            }
        }
        let mut c = Map::new();
        c.insert("Subnet".into(), json!(s));
        configs.push((s.clone(), c));
    }
    for r in ranges {
        cidr(r).ok_or_else(|| anyhow!("invalid CIDR address: {r}"))?;
        let mut found = false;
        for (s, c) in configs.iter_mut() {
            if !matches(s, r)? {
                continue;
            }
            if let Some(old) = c.get("IPRange").and_then(Value::as_str) {
                bail!("cannot configure multiple ranges ({r}, {old}) on the same subnet ({s})");
            }
            c.insert("IPRange".into(), json!(r));
            found = true;
        }
        if !found {
            bail!("no matching subnet for range {r}");
        }
    }
    for g in gateways {
        if g.parse::<IpAddr>().is_err() {
            bail!("invalid string being converted to IP address: {g}");
        }
        let mut found = false;
        for (s, c) in configs.iter_mut() {
            if !matches(s, g)? {
                continue;
            }
            if let Some(old) = c.get("Gateway").and_then(Value::as_str) {
                bail!("cannot configure multiple gateways ({g}, {old}) for the same subnet ({s})");
            }
            c.insert("Gateway".into(), json!(g));
            found = true;
        }
        if !found {
            bail!("no matching subnet for gateway {g}");
        }
    }
    for a in aux {
        let (key, value) = a.split_once('=').unwrap_or((a.as_str(), ""));
        if value.parse::<IpAddr>().is_err() {
            bail!("ParseAddr({value:?}): unable to parse IP");
        }
        let mut found = false;
        for (s, c) in configs.iter_mut() {
            if !matches(s, value)? {
                continue;
            }
            let map = c
                .entry("AuxiliaryAddresses")
                .or_insert_with(|| Value::Object(Map::new()));
            map[key] = json!(value);
            found = true;
        }
        if !found {
            bail!("no matching subnet for aux-address {value}");
        }
    }
    Ok(configs.into_iter().map(|(_, c)| Value::Object(c)).collect())
}

#[cfg(test)]
mod tests {
    use super::config;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_goes_to_the_subnet_that_holds_it() {
        let c = config(
            &strings(&["10.9.0.0/24", "fd00:9::/64"]),
            &[],
            &strings(&["fd00:9::1", "10.9.0.1"]),
            &strings(&["r=10.9.0.5", "r6=fd00:9::5"]),
        )
        .unwrap();
        assert_eq!(c[0]["Gateway"], "10.9.0.1");
        assert_eq!(c[0]["AuxiliaryAddresses"]["r"], "10.9.0.5");
        assert_eq!(c[1]["Gateway"], "fd00:9::1");
        assert_eq!(c[1]["AuxiliaryAddresses"]["r6"], "fd00:9::5");
    }

    #[test]
    fn the_docker_clis_errors() {
        let err = |s: &[&str], r: &[&str], g: &[&str], a: &[&str]| {
            config(&strings(s), &strings(r), &strings(g), &strings(a))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&[], &[], &["10.0.0.1"], &[]),
            "every ip-range or gateway must have a corresponding subnet"
        );
        assert_eq!(
            err(&["10.0.0.0/16", "10.0.1.0/24"], &[], &[], &[]),
            "multiple overlapping subnet configuration is not supported"
        );
        assert_eq!(
            err(&["10.0.0.0/24"], &[], &["10.1.0.1"], &[]),
            "no matching subnet for gateway 10.1.0.1"
        );
        assert_eq!(
            err(&["10.0.0.0/24"], &[], &[], &["x=10.1.0.1"]),
            "no matching subnet for aux-address 10.1.0.1"
        );
        assert_eq!(
            err(&["10.0.0.0/24"], &["10.2.0.0/25"], &[], &[]),
            "no matching subnet for range 10.2.0.0/25"
        );
    }
}
