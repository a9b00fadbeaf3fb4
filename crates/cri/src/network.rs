//! Pods' networks through CNI, as kubelet expects of a runtime: the first network
//! configuration of `--cni-conf-dir` (libcni's order: file names sorted, `.conf`,
//! `.conflist` and `.json`), made an engine network of the `cni` driver (labelled
//! [`CRI_LABEL`], so out of `docker network ls`). The engine's CNI runtime then runs ADD when
//! a sandbox starts and DEL when it stops, with the pod's port mappings as the `portMappings`
//! capability, and keeps each attachment's result for the DEL that follows a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use berth_api::models::NetworkCreateRequest;
use berth_engine::container::CRI_LABEL;
use berth_engine::error::EngineError;
use berth_network::cni::ConfList;
use tonic::Status;

use crate::{status, Cri};

/// The first usable network configuration of a directory.
#[derive(Debug, Clone)]
pub struct PodNetworkConf {
    pub path: PathBuf,
    pub name: String,
    /// The digest of the file's text: a changed file makes a new engine network.
    pub digest: String,
}

/// The first configuration of `dir` that parses (libcni's `ConfFiles` order); why none does.
pub fn find_conf(dir: &Path) -> Result<PodNetworkConf, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cni config load failed: reading {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x, "conf" | "conflist" | "json"))
                && p.is_file()
        })
        .collect();
    files.sort();
    let mut last = format!("no network config found in {}", dir.display());
    for path in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                last = format!("reading {}: {e}", path.display());
                continue;
            }
        };
        match ConfList::parse(&text) {
            Ok(conf) => {
                return Ok(PodNetworkConf {
                    path,
                    name: conf.name,
                    digest: berth_image::digest::Digest::of(text.as_bytes()).to_string(),
                })
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping a CNI configuration");
                last = format!("{}: {e}", path.display());
            }
        }
    }
    Err(format!("cni config load failed: {last}"))
}

impl Cri {
    /// Whether pods can get a network now, and why not.
    pub(crate) fn network_ready(&self) -> Result<PodNetworkConf, String> {
        find_conf(&self.options.cni_conf_dir)
    }

    /// The engine network pods attach to, made (or made again, when the configuration changed
    /// and nothing is attached) from the first configuration.
    pub(crate) async fn pod_network(&self) -> Result<String, Status> {
        let _serial = self.network_lock.lock().await;
        let conf = self.network_ready().map_err(|m| {
            Status::failed_precondition(format!("Network plugin returns error: {m}"))
        })?;
        let name = format!("cri-{}", conf.name);
        match self.engine.network_inspect(&name).await {
            Ok(v) => {
                if v["Labels"][CRI_LABEL].as_str() == Some(conf.digest.as_str()) {
                    return Ok(name);
                }
                let attached = v["Containers"].as_object().is_some_and(|c| !c.is_empty());
                if attached {
                    tracing::warn!(network = %name, "the CNI configuration changed; pods attached keep the old one until they stop");
                    return Ok(name);
                }
                self.engine.network_remove(&name).await.map_err(status)?;
            }
            Err(EngineError::NotFound(_)) => {}
            Err(e) => return Err(status(e)),
        }
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some(berth_network::DRIVER_CNI.to_string()),
            options: Some(HashMap::from([(
                berth_network::OPT_CNI_CONFLIST.to_string(),
                conf.path.display().to_string(),
            )])),
            labels: Some(HashMap::from([(CRI_LABEL.to_string(), conf.digest)])),
            ..Default::default()
        };
        self.engine.network_create(request).await.map_err(status)?;
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"}]}"#;

    #[test]
    fn the_first_file_that_parses_wins() {
        let dir = std::env::temp_dir().join(format!("berth-cri-conf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(find_conf(&dir).unwrap_err().contains("no network config"));
        std::fs::write(dir.join("05-bad.conflist"), "{").unwrap();
        std::fs::write(dir.join("10-ignored.txt"), LIST).unwrap();
        std::fs::write(dir.join("20-pods.conflist"), LIST).unwrap();
        std::fs::write(
            dir.join("30-other.conf"),
            r#"{"cniVersion":"1.0.0","name":"other","type":"bridge"}"#,
        )
        .unwrap();
        let conf = find_conf(&dir).unwrap();
        assert_eq!(conf.name, "pods");
        assert!(conf.path.ends_with("20-pods.conflist"));
        std::fs::remove_file(dir.join("20-pods.conflist")).unwrap();
        assert_eq!(find_conf(&dir).unwrap().name, "other");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
