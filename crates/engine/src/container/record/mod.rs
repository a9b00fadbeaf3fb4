//! A container's record as it is on disk (`<data-root>/containers/<id>/config.json`): the
//! [`Container`] with the version of its format, `record_version`.
//!
//! - Version 1 (no `record_version`; what Berth wrote before the engine had types of its own):
//!   `config` and `host_config` are the API's `ContainerConfig` and `HostConfig` as the API's
//!   models (bollard's) serialized them. It loads through [`v1_to_v2`], which owes nothing to
//!   those models, and is written back as version 2 at the container's next change.
//! - Version 2: `config` and `host_config` are the engine's
//!   [`ContainerSpec`](super::spec::ContainerSpec) and [`HostSpec`](super::spec::HostSpec).
//!
//! A record of a version this code does not know (written by a newer Berth) is refused: the
//! container is not loaded and its directory is left as it is, for the newer Berth.

use serde::Serialize;
use serde_json::Value;

use super::Container;

/// The version of the records this code writes.
pub const RECORD_VERSION: u64 = 2;

/// What keeps a record from loading.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not a container record: {0}")]
    Parse(#[from] serde_json::Error),
    #[error(
        "container record of version {found}, written by a newer Berth (this one reads up to \
         version {RECORD_VERSION}); left untouched"
    )]
    TooNew { found: u64 },
    #[error("container record with a bad record_version: {0}")]
    BadVersion(Value),
}

/// The record of `c`, as written.
pub fn encode(c: &Container) -> serde_json::Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Versioned<'a> {
        record_version: u64,
        #[serde(flatten)]
        container: &'a Container,
    }
    serde_json::to_vec(&Versioned {
        record_version: RECORD_VERSION,
        container: c,
    })
}

/// The container of a record of any version this code knows.
pub fn decode(bytes: &[u8]) -> Result<Container, RecordError> {
    let mut v: Value = serde_json::from_slice(bytes)?;
    let version = match v.as_object_mut().and_then(|o| o.remove("record_version")) {
        None => 1,
        Some(n) => n.as_u64().ok_or(RecordError::BadVersion(n))?,
    };
    match version {
        1 => {
            v1_to_v2(&mut v);
            Ok(serde_json::from_value(v)?)
        }
        RECORD_VERSION => Ok(serde_json::from_value(v)?),
        0 => Err(RecordError::BadVersion(Value::from(0))),
        found => Err(RecordError::TooNew { found }),
    }
}

/// Version 1 to version 2, on the record's JSON. The engine's types name their fields as
/// Docker does, as the API's models did, and spell the enums' values the same; what differs is
/// `config`'s `ExposedPorts` and `Volumes`: maps of empty objects (`{"80/tcp": {}}`) in version
/// 1, the sorted keys in version 2. The rest of the record (state, networks...) is unchanged.
pub fn v1_to_v2(record: &mut Value) {
    let Some(config) = record.get_mut("config").and_then(Value::as_object_mut) else {
        return;
    };
    for key in ["ExposedPorts", "Volumes"] {
        if let Some(set) = config.get_mut(key) {
            if let Value::Object(map) = set {
                let mut keys: Vec<String> = map.keys().cloned().collect();
                keys.sort();
                *set = Value::from(keys);
            }
        }
    }
}

#[cfg(test)]
mod tests;
