//! dockerd's `mount` and `unmount` volume events: one per volume a container mounts, `mount`
//! when its mounts are set up for a start (`container`, `destination`, `driver`,
//! `propagation`, `read/write`), `unmount` when it has exited (`container`, `driver`).

use std::collections::HashMap;

use berth_api::models::EventMessageTypeEnum;

use super::read_meta;
use crate::container::Container;
use crate::mounts::{plan, Check, Kind, Planned};
use crate::Engine;

impl Engine {
    /// The volume mounts of `c` with each volume's driver.
    fn volume_mounts(&self, c: &Container) -> Vec<(Planned, String)> {
        let dir = self.volumes_dir();
        plan(&c.host_config, &c.anonymous_volumes, Check::Lenient)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.kind == Kind::Volume && !p.source.is_empty())
            .map(|p| {
                let driver = read_meta(&dir, &p.source).driver().to_string();
                (p, driver)
            })
            .collect()
    }

    /// Publishes the `mount` event of each volume `c` mounts.
    pub(crate) fn publish_volume_mounts(&self, c: &Container) {
        for (p, driver) in self.volume_mounts(c) {
            let attributes: HashMap<String, String> = [
                ("driver", driver),
                ("container", c.id.clone()),
                ("destination", p.destination.clone()),
                ("read/write", p.rw.to_string()),
                ("propagation", p.propagation.clone().unwrap_or_default()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            self.events
                .publish(EventMessageTypeEnum::VOLUME, "mount", &p.source, attributes);
        }
    }

    /// Publishes the `unmount` event of each volume `c` mounts.
    pub(crate) fn publish_volume_unmounts(&self, c: &Container) {
        for (p, driver) in self.volume_mounts(c) {
            let attributes: HashMap<String, String> = [
                ("driver".to_string(), driver),
                ("container".to_string(), c.id.clone()),
            ]
            .into();
            self.events.publish(
                EventMessageTypeEnum::VOLUME,
                "unmount",
                &p.source,
                attributes,
            );
        }
    }
}
