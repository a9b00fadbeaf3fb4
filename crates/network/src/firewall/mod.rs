//! Berth's firewall: everything in its own nftables tables (`table ip berth` and `table ip6
//! berth`; see [`script`] for their layout), so Berth's rules can be listed (`nft list table
//! ip berth`) and removed as a whole without touching any other program's.
//!
//! The rules are applied by running `nft -f -` with a generated script (one transaction each)
//! and read back with `nft -j`, as Docker drives iptables by command: libnftables would save
//! the process but needs bindings, and the hot path stays free of it anyway. Per-network rules
//! are installed when the network is made; attaching a container spawns `nft` only when it
//! publishes ports (one element per port in a map, no rule edits).

pub mod script;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

pub use script::{Family, NetworkRules};

use crate::ports::{Proto, PublishedPort};

/// A firewall change that failed.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// The table name is not a plain identifier.
    #[error("invalid nftables table name {0:?}")]
    BadTable(String),
    /// `nft` could not be run.
    #[error("running nft (is the nftables package installed?): {0}")]
    Spawn(std::io::Error),
    /// `nft` refused a script.
    #[error("nft failed to {what}: {stderr}")]
    Nft {
        /// What the script was for.
        what: String,
        /// What nft said.
        stderr: String,
    },
    /// `nft -j` printed something that is not its JSON.
    #[error("reading nft's JSON output: {0}")]
    Json(String),
}

/// Berth's nftables table.
#[derive(Debug, Clone)]
pub struct Firewall {
    table: String,
}

impl Firewall {
    /// The firewall in table `ip <table>` (letters, digits and `_` only).
    pub fn new(table: &str) -> Result<Self, FirewallError> {
        let plain = !table.is_empty()
            && table.len() <= 32
            && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plain {
            return Err(FirewallError::BadTable(table.to_string()));
        }
        Ok(Firewall {
            table: table.to_string(),
        })
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Makes the table, its maps and its base chains (keeping existing elements and networks).
    pub async fn ensure_table(&self) -> Result<(), FirewallError> {
        self.apply("create the table", &script::table(&self.table))
            .await
    }

    /// Replaces the whole table with the base chains, the rules of `networks` and `ports`
    /// published: whatever an earlier daemon left in a table of the same name (rules of
    /// networks no record names, elements of a wiped data root) goes. Two transactions: the
    /// empty table (deleted and made again), then its contents (nft 1.0 refuses elements of an
    /// interval map made in the same transaction).
    pub async fn rebuild(
        &self,
        networks: &[NetworkRules<'_>],
        ports: &[PublishedPort],
    ) -> Result<(), FirewallError> {
        let t = &self.table;
        let mut empty = delete_tables(t);
        empty.push_str(&script::table(t));
        self.apply("make the table again", &empty).await?;
        let mut contents = String::new();
        for rules in networks {
            contents.push_str(&script::add_network(t, rules));
        }
        if !ports.is_empty() {
            contents.push_str(&script::add_ports(t, ports));
        }
        if contents.is_empty() {
            return Ok(());
        }
        self.apply("install the networks' rules", &contents).await
    }

    /// Deletes the table with everything in it (whether or not it exists).
    pub async fn delete_table(&self) -> Result<(), FirewallError> {
        self.apply("delete the table", &delete_tables(&self.table))
            .await
    }

    /// Installs a network's rules.
    pub async fn add_network(&self, rules: &NetworkRules<'_>) -> Result<(), FirewallError> {
        let what = format!("add the rules of bridge {}", rules.bridge);
        self.apply(&what, &script::add_network(&self.table, rules))
            .await
    }

    /// Removes a network's rules.
    pub async fn remove_network(&self, rules: &NetworkRules<'_>) -> Result<(), FirewallError> {
        let what = format!("remove the rules of bridge {}", rules.bridge);
        let script = script::remove_network(&self.table, rules);
        self.apply(&what, &script).await
    }

    /// Publishes ports.
    pub async fn publish(&self, ports: &[PublishedPort]) -> Result<(), FirewallError> {
        if ports.is_empty() {
            return Ok(());
        }
        self.apply("publish ports", &script::add_ports(&self.table, ports))
            .await
    }

    /// Unpublishes ports.
    pub async fn unpublish(&self, ports: &[PublishedPort]) -> Result<(), FirewallError> {
        if ports.is_empty() {
            return Ok(());
        }
        self.apply("unpublish ports", &script::remove_ports(&self.table, ports))
            .await
    }

    /// The published ports, read back from the tables' maps (none if there is no table).
    pub async fn published(&self) -> Result<Vec<PublishedPort>, FirewallError> {
        let mut ports = Vec::new();
        for fam in Family::BOTH {
            if let Some(json) = self.list_json(fam).await? {
                ports.extend(parse_published(&json)?);
            }
        }
        Ok(ports)
    }

    /// The bridges whose chains are in the table (none if there is no table).
    pub async fn bridges(&self) -> Result<Vec<String>, FirewallError> {
        let Some(json) = self.list_json(Family::V4).await? else {
            return Ok(Vec::new());
        };
        let mut bridges = Vec::new();
        for object in nft_objects(&json)? {
            if let Some(name) = object.pointer("/chain/name").and_then(Value::as_str) {
                if let Some(bridge) = name.strip_prefix("in-") {
                    bridges.push(bridge.to_string());
                }
            }
        }
        Ok(bridges)
    }

    /// `nft -j list table` of family `fam`, or `None` when the table does not exist.
    async fn list_json(&self, fam: Family) -> Result<Option<Value>, FirewallError> {
        let output = Command::new("nft")
            .args(["-j", "list", "table", fam.name(), &self.table])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(FirewallError::Spawn)?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            if stderr.contains("No such file or directory") {
                return Ok(None);
            }
            return Err(FirewallError::Nft {
                what: format!("list table {}", self.table),
                stderr: stderr.trim().to_string(),
            });
        }
        serde_json::from_slice(&output.stdout)
            .map(Some)
            .map_err(|e| FirewallError::Json(e.to_string()))
    }

    /// Runs `nft -f -` with `script` as one transaction.
    async fn apply(&self, what: &str, script: &str) -> Result<(), FirewallError> {
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(FirewallError::Spawn)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .await
                .map_err(FirewallError::Spawn)?;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(FirewallError::Spawn)?;
        if output.status.success() {
            return Ok(());
        }
        Err(FirewallError::Nft {
            what: what.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Deletes both tables, whether or not they exist.
fn delete_tables(t: &str) -> String {
    Family::BOTH
        .iter()
        .map(|f| {
            let f = f.name();
            format!("add table {f} {t}\ndelete table {f} {t}\n")
        })
        .collect()
}

fn nft_objects(json: &Value) -> Result<&Vec<Value>, FirewallError> {
    json.get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| FirewallError::Json("no \"nftables\" array".to_string()))
}

/// The published ports in the maps of `nft -j list table` output.
fn parse_published(json: &Value) -> Result<Vec<PublishedPort>, FirewallError> {
    let mut ports = Vec::new();
    for object in nft_objects(json)? {
        let Some(map) = object.get("map") else {
            continue;
        };
        let name = map.get("name").and_then(Value::as_str).unwrap_or_default();
        let unspecified = match map.get("family").and_then(Value::as_str) {
            Some("ip6") => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let Some((proto, any)) = [Proto::Tcp, Proto::Udp]
            .into_iter()
            .flat_map(|p| [(p, true), (p, false)])
            .find(|(p, any)| script::port_map(*p, *any) == name)
        else {
            continue;
        };
        let elements = map.get("elem").and_then(Value::as_array);
        for element in elements.into_iter().flatten() {
            let bad = || FirewallError::Json(format!("unexpected element {element} in {name}"));
            let pair = element
                .as_array()
                .filter(|a| a.len() == 2)
                .ok_or_else(bad)?;
            let (host_ip, host_port) = if any {
                (unspecified, port(&pair[0]).ok_or_else(bad)?)
            } else {
                addr_port(&pair[0]).ok_or_else(bad)?
            };
            let (container_ip, container_port) = addr_port(&pair[1]).ok_or_else(bad)?;
            ports.push(PublishedPort {
                proto,
                host_ip,
                host_port,
                container_ip,
                container_port,
            });
        }
    }
    Ok(ports)
}

fn port(v: &Value) -> Option<u16> {
    v.as_u64().and_then(|n| u16::try_from(n).ok())
}

/// `{"concat": ["172.18.0.2", 80]}`.
fn addr_port(v: &Value) -> Option<(IpAddr, u16)> {
    let parts = v.get("concat")?.as_array()?;
    let ip = parts.first()?.as_str()?.parse().ok()?;
    Some((ip, port(parts.get(1)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_port_maps() {
        let json: Value = serde_json::from_str(
            r#"{"nftables": [{"metainfo": {}},
            {"map": {"name": "tcp_ip", "elem": [[{"concat": ["127.0.0.1", 8081]}, {"concat": ["172.18.0.2", 80]}]]}},
            {"map": {"name": "udp_any", "elem": [[8080, {"concat": ["172.18.0.3", 53]}]]}},
            {"map": {"name": "fwd_in", "elem": [["bx0", {"jump": {"target": "in-bx0"}}]]}}]}"#,
        )
        .unwrap();
        let ports = parse_published(&json).unwrap();
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].host_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!((ports[0].host_port, ports[0].container_port), (8081, 80));
        assert_eq!(ports[1].proto, Proto::Udp);
        assert!(ports[1].host_ip.is_unspecified());
        assert_eq!(
            ports[1].container_ip,
            IpAddr::V4(Ipv4Addr::new(172, 18, 0, 3))
        );
        let json: Value = serde_json::from_str(
            r#"{"nftables": [{"map": {"family": "ip6", "name": "tcp_any", "elem": [[8080, {"concat": ["fd00:1::2", 80]}]]}}]}"#,
        )
        .unwrap();
        let ports = parse_published(&json).unwrap();
        assert_eq!(ports[0].host_ip, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        assert_eq!(
            ports[0].container_ip,
            "fd00:1::2".parse::<IpAddr>().unwrap()
        );
    }
}
