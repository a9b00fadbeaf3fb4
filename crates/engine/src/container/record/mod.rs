//! A container's record as it is on disk (`<data-root>/containers/<id>/config.json`): the
//! [`Container`] with the version of its format, `record_version`.
//!
//! - Version 1 (no `record_version`; what Berth wrote before the engine had types of its own):
//!   `config` and `host_config` are the API's `ContainerConfig` and `HostConfig`, as the API's
//!   models serialize them. It loads through [`from_v1`], the same conversion a create body
//!   goes through, and is written back as version 2 at the container's next change.
//! - Version 2: `config` and `host_config` are the engine's [`ContainerSpec`] and
//!   [`HostSpec`](super::spec::HostSpec).
//!
//! A record of a version this code does not know (written by a newer Berth) is refused: the
//! container is not loaded and its directory is left as it is, for the newer Berth.

use std::path::PathBuf;

use berth_api::models as api;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::spec::ContainerSpec;
use super::{Container, State};
use crate::network::ContainerNetworks;
use crate::wire::spec::Bridge;

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
        1 => Ok(from_v1(serde_json::from_value(v)?)),
        RECORD_VERSION => Ok(serde_json::from_value(v)?),
        0 => Err(RecordError::BadVersion(Value::from(0))),
        found => Err(RecordError::TooNew { found }),
    }
}

/// A version 1 record: the container with the API's models for its config.
#[derive(Debug, Deserialize)]
pub struct RecordV1 {
    pub id: String,
    pub name: String,
    pub created: String,
    pub image_id: String,
    pub image_manifest: String,
    pub image_top: Option<String>,
    pub path: String,
    pub args: Vec<String>,
    pub config: api::ContainerConfig,
    pub host_config: api::HostConfig,
    pub state: State,
    pub restart_count: u64,
    #[serde(default)]
    pub restart_delay_ms: u64,
    pub manually_stopped: bool,
    pub log_path: PathBuf,
    #[serde(default)]
    pub networks: ContainerNetworks,
    #[serde(default)]
    pub anonymous_volumes: Vec<String>,
}

/// Version 1 to version 2: the API's models become the engine's spec, as at create.
pub fn from_v1(r: RecordV1) -> Container {
    let config: ContainerSpec = r.config.bridge();
    Container {
        id: r.id,
        name: r.name,
        created: r.created,
        image_id: r.image_id,
        image_manifest: r.image_manifest,
        image_top: r.image_top,
        path: r.path,
        args: r.args,
        config,
        host_config: r.host_config.bridge(),
        state: r.state,
        restart_count: r.restart_count,
        restart_delay_ms: r.restart_delay_ms,
        manually_stopped: r.manually_stopped,
        log_path: r.log_path,
        networks: r.networks,
        anonymous_volumes: r.anonymous_volumes,
    }
}

#[cfg(test)]
mod tests;
