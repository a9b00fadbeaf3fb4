//! The attachments of CNI networks on disk: `<dir>/<network id>/<container id>.json`, written
//! (durably) before ADD runs, with the result once it succeeded, and removed after DEL. A
//! record without a result is an ADD that did not finish (the daemon died in it): DEL runs
//! for it without `prevResult`. The records are also the list of a network's attachments.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{conf, CniError, Invocation};
use crate::persist;
use crate::ports::PublishedPort;

/// One container's attachment to a CNI network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS` at ADD.
    pub netns: PathBuf,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    #[serde(default)]
    pub args: String,
    /// The result of ADD (None while it runs).
    #[serde(default)]
    pub result: Option<Value>,
    /// The published ports, passed as the `portMappings` capability; their container address
    /// is unspecified until ADD gave one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PublishedPort>,
}

impl Attachment {
    /// The plugins' view of it.
    pub fn invocation(&self) -> Invocation {
        let mut runtime_config = serde_json::Map::new();
        if !self.ports.is_empty() {
            runtime_config.insert(
                conf::CAP_PORT_MAPPINGS.to_string(),
                conf::port_mappings(&self.ports),
            );
        }
        Invocation {
            container_id: self.container_id.clone(),
            netns: self.netns.clone(),
            ifname: self.ifname.clone(),
            args: self.args.clone(),
            runtime_config,
        }
    }
}

/// The records of the CNI networks under one directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache at `dir` (`<state>/cni`).
    pub fn new(dir: &Path) -> Cache {
        Cache {
            dir: dir.to_path_buf(),
        }
    }

    fn network_dir(&self, network: &str) -> Result<PathBuf, CniError> {
        if !crate::valid_id(network) {
            return Err(CniError::BadId(network.to_string()));
        }
        Ok(self.dir.join(network))
    }

    fn path(&self, network: &str, container: &str) -> Result<PathBuf, CniError> {
        if !crate::valid_id(container) {
            return Err(CniError::BadId(container.to_string()));
        }
        Ok(self.network_dir(network)?.join(format!("{container}.json")))
    }

    /// The record of `container` on `network`, if there is one.
    pub fn get(&self, network: &str, container: &str) -> Result<Option<Attachment>, CniError> {
        let path = self.path(network, container)?;
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(persist::read_json(&path)?))
    }

    /// Writes the record (atomically and durably).
    pub fn put(&self, network: &str, attachment: &Attachment) -> Result<(), CniError> {
        let path = self.path(network, &attachment.container_id)?;
        Ok(persist::write_json(&path, attachment)?)
    }

    /// Removes the record (a missing one is fine).
    pub fn remove(&self, network: &str, container: &str) -> Result<(), CniError> {
        Ok(persist::remove(&self.path(network, container)?)?)
    }

    /// The records of `network`, in container order; unreadable ones are skipped (and logged).
    pub fn list(&self, network: &str) -> Result<Vec<Attachment>, CniError> {
        let mut out = Vec::new();
        for path in persist::list(&self.network_dir(network)?)? {
            match persist::read_json::<Attachment>(&path) {
                Ok(a) => out.push(a),
                Err(e) => tracing::warn!(error = %e, "skipping a cni attachment record"),
            }
        }
        Ok(out)
    }

    /// Removes the directory of `network` (its records must be gone).
    pub fn remove_network(&self, network: &str) -> Result<(), CniError> {
        let dir = self.network_dir(network)?;
        match std::fs::remove_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(CniError::Persist(persist::PersistError::Io {
                    op: "removing",
                    path: dir,
                    source: e,
                }))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_list_per_network() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let a = Attachment {
            container_id: "c1".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            args: String::new(),
            result: Some(serde_json::json!({"cniVersion": "1.0.0"})),
            ports: vec![PublishedPort {
                proto: crate::ports::Proto::Tcp,
                host_ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
                host_port: 8080,
                container_ip: std::net::Ipv4Addr::new(10, 9, 0, 2).into(),
                container_port: 80,
            }],
        };
        assert_eq!(
            a.invocation().runtime_config["portMappings"][0]["hostPort"],
            8080
        );
        assert_eq!(cache.get("n1", "c1").unwrap(), None);
        cache.put("n1", &a).unwrap();
        assert_eq!(cache.get("n1", "c1").unwrap(), Some(a.clone()));
        assert_eq!(cache.list("n1").unwrap(), vec![a]);
        assert!(cache.list("n2").unwrap().is_empty());
        assert!(cache.get("n1", "../x").is_err());
        cache.remove("n1", "c1").unwrap();
        cache.remove("n1", "c1").unwrap();
        cache.remove_network("n1").unwrap();
        assert!(!dir.path().join("n1").exists());
    }
}
