//! What the CRI keeps of its pods and containers: a record in the engine container's
//! [`CRI_LABEL`] label (JSON), beside the engine's own record. The engine container is the
//! truth about processes, times and exit codes; this record holds what only the CRI knows
//! (the pod's metadata, labels, annotations, log paths, namespace modes).

use std::collections::{BTreeMap, HashMap};
use std::time::UNIX_EPOCH;

use berth_engine::container::{Container, CRI_LABEL};
use serde::{Deserialize, Serialize};

/// A CRI object's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    Sandbox(SandboxRecord),
    Container(ContainerRecord),
}

/// A pod sandbox: the pause container's record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub attempt: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub log_directory: String,
    #[serde(default)]
    pub runtime_handler: String,
    /// The CRI namespace modes (`NamespaceMode` values) of network, pid and ipc.
    pub network_mode: i32,
    pub pid_mode: i32,
    pub ipc_mode: i32,
    /// The pod cgroup kubelet gave (`cgroup_parent`), for the pod's containers.
    #[serde(default)]
    pub cgroup_parent: String,
    /// The engine network the pod is attached to (the CNI one), if any.
    #[serde(default)]
    pub network: Option<String>,
}

/// A container of a pod.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub sandbox_id: String,
    pub name: String,
    pub attempt: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The image as asked (`ImageSpec.image`).
    pub image: String,
    /// The log file: the pod's log directory joined with the container's `log_path`; empty
    /// when kubelet gave none.
    #[serde(default)]
    pub log_path: String,
    #[serde(default)]
    pub mounts: Vec<MountRecord>,
}

/// A mount as `CreateContainer` asked it, for `ContainerStatus`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MountRecord {
    pub container_path: String,
    pub host_path: String,
    pub readonly: bool,
    pub propagation: i32,
}

impl Record {
    /// The label value of the record.
    pub fn label(&self) -> HashMap<String, String> {
        let text = serde_json::to_string(self).unwrap_or_default();
        [(CRI_LABEL.to_string(), text)].into()
    }

    /// The record of an engine container, if the CRI made it.
    pub fn of(c: &Container) -> Option<Record> {
        let text = c.config.labels.as_ref()?.get(CRI_LABEL)?;
        match serde_json::from_str(text) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(container = %c.id, error = %e, "unreadable CRI record");
                None
            }
        }
    }
}

impl crate::Cri {
    /// The engine container `id` names (an id or a unique prefix) if it is a CRI object of
    /// the kind `pick` keeps (`what` names it in the errors), with its record.
    pub(crate) fn object<T>(
        &self,
        what: &str,
        id: &str,
        pick: impl Fn(Record) -> Option<T>,
    ) -> Result<(Container, T), tonic::Status> {
        let not_found = || tonic::Status::not_found(format!("{what} {id:?} not found"));
        if id.is_empty() {
            return Err(tonic::Status::invalid_argument(format!(
                "no {what} id given"
            )));
        }
        let c = match self.engine.containers.get(id) {
            Ok(c) => c,
            Err(berth_engine::error::EngineError::NotFound(_)) => return Err(not_found()),
            Err(e) => return Err(crate::status(e)),
        };
        let r = Record::of(&c).and_then(pick).ok_or_else(not_found)?;
        Ok((c, r))
    }

    /// Every CRI object of the kind `pick` keeps, with its record.
    pub(crate) fn objects<T>(&self, pick: impl Fn(Record) -> Option<T>) -> Vec<(Container, T)> {
        self.engine
            .containers
            .scan(|c| Some((c.clone(), pick(Record::of(c)?)?)))
    }
}

/// The map the CRI's messages carry.
pub fn to_map(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The map a record keeps.
pub fn from_map(m: &HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Whether `labels` has every pair of `selector`.
pub fn selected(labels: &BTreeMap<String, String>, selector: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Nanoseconds since the epoch of an RFC 3339 time (0 for Docker's "never" and bad times).
pub fn nanos(rfc3339: &str) -> i64 {
    if rfc3339 == berth_engine::container::NEVER {
        return 0;
    }
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_with_their_nanoseconds() {
        assert_eq!(nanos("1970-01-01T00:00:01.000000002Z"), 1_000_000_002);
        assert_eq!(nanos(berth_engine::container::NEVER), 0);
        assert_eq!(nanos("garbage"), 0);
    }

    #[test]
    fn selectors_need_every_pair() {
        let labels: BTreeMap<String, String> =
            [("a".into(), "1".into()), ("b".into(), "2".into())].into();
        assert!(selected(&labels, &HashMap::new()));
        assert!(selected(&labels, &[("a".into(), "1".into())].into()));
        assert!(!selected(&labels, &[("a".into(), "2".into())].into()));
        assert!(!selected(&labels, &[("c".into(), "1".into())].into()));
    }

    #[test]
    fn records_round_trip_through_their_label() {
        let r = Record::Container(ContainerRecord {
            sandbox_id: "s".into(),
            name: "c".into(),
            attempt: 2,
            image: "busybox".into(),
            ..Default::default()
        });
        let label = r.label();
        let back: Record = serde_json::from_str(&label[CRI_LABEL]).unwrap();
        assert!(matches!(back, Record::Container(c) if c.attempt == 2 && c.name == "c"));
    }
}
