//! `POST /containers/prune`: the stopped containers that pass dockerd's filters go, and the
//! space their writable layers held is counted.

use crate::error::{EngineError, Result};
use crate::Engine;

impl Engine {
    /// `POST /containers/prune`: removes every stopped container; returns their ids.
    /// With dockerd's filters (`until`, `label`, `label!`); the bytes reclaimed are those of
    /// the writable layers removed.
    pub async fn prune(&self, filters: &berth_api::query::Filters) -> Result<(Vec<String>, u64)> {
        for key in filters.0.keys() {
            if !matches!(key.as_str(), "until" | "label" | "label!") {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid filter '{key}'"
                )));
            }
        }
        let until: Vec<i64> = filters
            .get("until")
            .iter()
            .map(|v| {
                crate::image_archive::parse_time(v).ok_or_else(|| {
                    EngineError::InvalidParameter(format!("invalid until filter {v:?}"))
                })
            })
            .collect::<Result<_>>()?;
        let mut removed = Vec::new();
        let mut reclaimed = 0;
        for c in self.containers.all() {
            let created = humantime::parse_rfc3339_weak(&c.created)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
            let labelled =
                filters.labels_match(|k| c.config.labels.as_ref()?.get(k).map(String::as_str));
            if c.is_running() || c.is_cri() || !labelled || !until.iter().all(|u| created < *u) {
                continue;
            }
            let size = self
                .images
                .store
                .snapshots
                .upper_dir(&format!("container-{}", c.id))
                .map_or(0, |p| crate::volumes::dir_size(&p));
            if self.remove(&c.id, false).await.is_ok() {
                removed.push(c.id.clone());
                reclaimed += size;
            }
        }
        // dockerd's one `prune` event, no actor, with the bytes freed.
        self.events.publish(
            berth_api::models::EventMessageTypeEnum::CONTAINER,
            "prune",
            "",
            [("reclaimed".to_string(), reclaimed.to_string())].into(),
        );
        Ok((removed, reclaimed))
    }
}
