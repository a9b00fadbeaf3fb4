//! Volumes of plugin drivers, as dockerd's volume store handles them:
//!
//! - made with the plugin's `Create` (unless its `Get` already knows the name), and recorded
//!   with the driver's name ([`super::Meta::driver`]);
//! - inspected with `Get` (its `Mountpoint`, else `Path`; its `Status`; the scope from
//!   `Capabilities`); a volume the plugin no longer has is forgotten ("no such volume"); a name
//!   not recorded is looked for in every plugin, and recorded when one has it;
//! - listed with every plugin's `List` (a plugin that fails adds a warning, and its recorded
//!   volumes);
//! - removed with `Remove` (with `force`, forgotten even when that fails);
//! - mounted when a container starts (`Mount` with the container's id, once per volume and
//!   container) and unmounted when it stops (`Unmount`): the run directory records what was
//!   mounted, so that each mount is undone once, also after a daemon restart.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use berth_api::models::VolumeCreateRequest;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::plugin::{Listed, Plugin, PluginError, VOLUME_DRIVER};
use super::{is_local, no_such_volume, not_found_plugin, read_meta, write_meta, Meta};
use crate::container::Container;
use crate::{Engine, EngineError, Result};

/// The run directory's record of the plugin volumes a container's run mounted.
const MOUNTED: &str = "plugin-volumes.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Mounted {
    name: String,
    driver: String,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl Engine {
    /// Volume plugin `driver`, activated.
    async fn volume_plugin(&self, driver: &str) -> Result<Arc<Plugin>> {
        match self.plugins.get(driver, VOLUME_DRIVER).await {
            Ok(p) => Ok(p),
            Err(PluginError::NotFound(_)) => Err(not_found_plugin(driver)),
            Err(e) => Err(EngineError::Internal(format!(
                "error looking up volume plugin {driver}: {e}"
            ))),
        }
    }

    /// `volume create` with plugin `driver` (or of a volume `driver` has).
    pub(super) async fn create_plugin_volume(
        &self,
        driver: &str,
        req: VolumeCreateRequest,
    ) -> Result<Value> {
        let plugin = self.volume_plugin(driver).await?;
        let (name, labels) = Engine::new_volume_name(&req)?;
        if self.volume_exists(&name) {
            return self
                .inspect_plugin_volume(&name, read_meta(&self.volumes_dir(), &name))
                .await;
        }
        let options: BTreeMap<String, String> =
            req.driver_opts.unwrap_or_default().into_iter().collect();
        let known = matches!(plugin.get(&name).await, Ok(Some(_)));
        if !known {
            plugin
                .create(&name, &options)
                .await
                .map_err(|e| EngineError::Internal(format!("create {name}: {e}")))?;
        }
        let meta = Meta {
            labels,
            options,
            created: now(),
            driver: driver.to_string(),
            mountpoint: String::new(),
        };
        if self.record_volume(&name, &meta, false)? {
            self.volume_event("create", &name, driver);
        }
        let meta = read_meta(&self.volumes_dir(), &name);
        Ok(self.plugin_volume_view(&plugin, &name, &meta, None).await)
    }

    /// Docker's JSON of plugin volume `name`: from `listed` (its `Get` or `List` entry), the
    /// mount point from `Path` when that has none.
    async fn plugin_volume_view(
        &self,
        plugin: &Plugin,
        name: &str,
        meta: &Meta,
        listed: Option<Listed>,
    ) -> Value {
        let listed = listed.unwrap_or_default();
        let mut mountpoint = listed.mountpoint;
        if mountpoint.is_empty() {
            mountpoint = plugin.path(name).await.unwrap_or_default();
        }
        let created = listed
            .created_at
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| meta.created.clone());
        let mut view = json!({
            "CreatedAt": created,
            "Driver": plugin.name,
            "Labels": meta.labels,
            "Mountpoint": mountpoint,
            "Name": name,
            "Options": if meta.options.is_empty() { Value::Null } else { json!(meta.options) },
            "Scope": plugin.scope().await,
        });
        if let Some(status) = listed.status.filter(|s| !s.is_empty()) {
            view["Status"] = Value::Object(status);
        }
        view
    }

    /// `volume inspect` of recorded plugin volume `name`.
    pub(super) async fn inspect_plugin_volume(&self, name: &str, meta: Meta) -> Result<Value> {
        let driver = meta.driver.clone();
        let checking = |e: &dyn std::fmt::Display| {
            EngineError::Internal(format!(
                "get {name}: error while checking if volume \"{name}\" exists in driver \"{driver}\": {e}"
            ))
        };
        let plugin = self
            .volume_plugin(&driver)
            .await
            .map_err(|e| checking(&e))?;
        match plugin.get(name).await {
            Ok(Some(listed)) => Ok(self
                .plugin_volume_view(&plugin, name, &meta, Some(listed))
                .await),
            Err(e) if e.is_transport() => Err(checking(&e)),
            // The plugin has it no more: forgotten, as dockerd purges it.
            _ => {
                let _ = self.remove_volume_dir(name);
                Err(no_such_volume(name))
            }
        }
    }

    /// The plugin that has volume `name` (not recorded), asking each in turn, as dockerd
    /// probes its drivers.
    async fn probe_plugins(&self, name: &str) -> Option<(Arc<Plugin>, Listed)> {
        for driver in self.plugins.dirs().scan() {
            let Ok(plugin) = self.plugins.get_found(&driver, VOLUME_DRIVER).await else {
                continue;
            };
            if let Ok(Some(listed)) = plugin.get(name).await {
                return Some((plugin, listed));
            }
        }
        None
    }

    /// `volume inspect` of a name not recorded: a plugin's volume, recorded from now on.
    pub(super) async fn find_plugin_volume(&self, name: &str) -> Result<Value> {
        if !crate::ids::valid_name(name) {
            return Err(no_such_volume(name));
        }
        let Some((plugin, listed)) = self.probe_plugins(name).await else {
            return Err(no_such_volume(name));
        };
        let meta = Meta {
            created: listed
                .created_at
                .clone()
                .filter(|c| !c.is_empty())
                .unwrap_or_else(now),
            driver: plugin.name.clone(),
            mountpoint: listed.mountpoint.clone(),
            ..Meta::default()
        };
        self.record_volume(name, &meta, false)?;
        Ok(self
            .plugin_volume_view(&plugin, name, &meta, Some(listed))
            .await)
    }

    /// The volumes of every volume plugin (those found, and those of recorded volumes), and
    /// the warnings of the plugins that could not list theirs.
    pub(super) async fn list_plugin_volumes(&self) -> (Vec<Value>, Vec<String>) {
        let dir = self.volumes_dir();
        let mut recorded: BTreeMap<String, Vec<(String, Meta)>> = BTreeMap::new();
        for name in self.volume_names() {
            let meta = read_meta(&dir, &name);
            if !is_local(&meta.driver) {
                recorded
                    .entry(meta.driver.clone())
                    .or_default()
                    .push((name, meta));
            }
        }
        let mut drivers: Vec<String> = self.plugins.dirs().scan();
        drivers.extend(recorded.keys().cloned());
        drivers.extend(self.plugins.active(VOLUME_DRIVER));
        drivers.sort();
        drivers.dedup();
        let (mut out, mut warnings) = (Vec::new(), Vec::new());
        let mut seen: HashMap<String, String> = HashMap::new();
        for driver in drivers {
            let mine = recorded.remove(&driver).unwrap_or_default();
            let plugin = if mine.is_empty() {
                self.plugins.get_found(&driver, VOLUME_DRIVER).await
            } else {
                self.plugins.get(&driver, VOLUME_DRIVER).await
            };
            let listed = match plugin {
                Ok(plugin) => match plugin.list().await {
                    Ok(listed) => Ok((plugin, listed)),
                    Err(e) => Err(format!("list {driver}: {e}")),
                },
                // A plugin found that is not a volume driver is none of this listing's.
                Err(PluginError::NotImplements) => continue,
                Err(_) if mine.is_empty() => continue,
                Err(PluginError::NotFound(_)) => Err(format!(
                    "list {driver}: error looking up volume plugin {driver}: plugin \"{driver}\" not found"
                )),
                Err(e) => Err(format!("list {driver}: {e}")),
            };
            match listed {
                Ok((plugin, listed)) => {
                    for volume in listed {
                        let name = volume.name.clone();
                        // A name recorded as another driver's stays that driver's.
                        let owner = read_meta(&dir, &name).driver;
                        if !crate::ids::valid_name(&name)
                            || seen.contains_key(&name)
                            || (self.volume_exists(&name) && owner != driver)
                        {
                            continue;
                        }
                        let meta = mine
                            .iter()
                            .find(|(n, _)| *n == name)
                            .map(|(_, m)| m.clone())
                            .unwrap_or_default();
                        let mut view = self
                            .plugin_volume_view(&plugin, &name, &meta, Some(volume))
                            .await;
                        if let Some(v) = view.as_object_mut() {
                            v.remove("Status");
                        }
                        seen.insert(name, driver.clone());
                        out.push(view);
                    }
                }
                Err(warning) => {
                    warnings.push(warning);
                    for (name, meta) in mine {
                        out.push(json!({
                            "CreatedAt": meta.created,
                            "Driver": driver,
                            "Labels": meta.labels,
                            "Mountpoint": meta.mountpoint,
                            "Name": name,
                            "Options": if meta.options.is_empty() { Value::Null } else { json!(meta.options) },
                            "Scope": "local",
                        }));
                    }
                }
            }
        }
        (out, warnings)
    }

    /// Removes plugin volume `name` of `driver` (its users checked by the caller); with
    /// `force` its record goes even when the plugin fails.
    pub(super) async fn remove_plugin_volume(
        &self,
        name: &str,
        driver: &str,
        force: bool,
    ) -> Result<()> {
        let removed = match self.volume_plugin(driver).await {
            Ok(plugin) => plugin
                .remove(name)
                .await
                .map_err(|e| EngineError::Internal(format!("remove {name}: {e}"))),
            Err(e) => Err(e),
        };
        if removed.is_ok() || force {
            self.remove_volume_dir(name)?;
        }
        if removed.is_ok() {
            self.volume_event("destroy", name, driver);
        }
        removed
    }

    /// `volume rm` of a name not recorded: a plugin's volume, if one has it.
    pub(super) async fn remove_unrecorded_volume(&self, name: &str, force: bool) -> Result<()> {
        let found = if crate::ids::valid_name(name) {
            self.probe_plugins(name).await
        } else {
            None
        };
        let Some((plugin, _)) = found else {
            return if force {
                Ok(())
            } else {
                Err(no_such_volume(name))
            };
        };
        plugin
            .remove(name)
            .await
            .map_err(|e| EngineError::Internal(format!("remove {name}: {e}")))?;
        self.volume_event("destroy", name, &plugin.name);
        Ok(())
    }

    /// Mounts the plugin volumes of `c` through their plugins (`Mount` with the container's
    /// id); their mount points by volume name. What is mounted is recorded in the run
    /// directory at once; on an error, what was mounted is unmounted again.
    pub(crate) async fn mount_plugin_volumes(
        &self,
        c: &Container,
    ) -> Result<HashMap<String, PathBuf>> {
        let dir = self.volumes_dir();
        let mut names = crate::mounts::volume_names(c);
        names.sort();
        names.dedup();
        let mut mounted: Vec<Mounted> = Vec::new();
        let mut out = HashMap::new();
        for name in names {
            let mut meta = read_meta(&dir, &name);
            if is_local(&meta.driver) {
                continue;
            }
            let result = match self.volume_plugin(&meta.driver).await {
                Ok(plugin) => plugin.mount(&name, &c.id).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(mountpoint) => {
                    mounted.push(Mounted {
                        name: name.clone(),
                        driver: meta.driver.clone(),
                    });
                    self.record_mounted(c, &mounted)?;
                    if meta.mountpoint != mountpoint {
                        meta.mountpoint = mountpoint.clone();
                        let _ = write_meta(&dir, &name, &meta);
                    }
                    out.insert(name, PathBuf::from(mountpoint));
                }
                Err(e) => {
                    self.unmount_plugin_volumes(c).await;
                    return Err(EngineError::Internal(format!(
                        "error while mounting volume '{}': {e}",
                        meta.mountpoint
                    )));
                }
            }
        }
        Ok(out)
    }

    fn record_mounted(&self, c: &Container, mounted: &[Mounted]) -> Result<()> {
        let path = self.run_dir(&c.id).join(MOUNTED);
        let text = serde_json::to_vec(mounted).map_err(|e| EngineError::internal("encode", e))?;
        std::fs::write(&path, text).map_err(|e| EngineError::internal("record mounts", e))
    }

    /// Unmounts what [`Engine::mount_plugin_volumes`] mounted for `c`'s last run (`Unmount`
    /// with the container's id), once.
    pub(crate) async fn unmount_plugin_volumes(&self, c: &Container) {
        let path = self.run_dir(&c.id).join(MOUNTED);
        let Ok(text) = std::fs::read(&path) else {
            return;
        };
        let _ = std::fs::remove_file(&path);
        let mounted: Vec<Mounted> = serde_json::from_slice(&text).unwrap_or_default();
        for m in mounted {
            let unmounted = match self.volume_plugin(&m.driver).await {
                Ok(plugin) => plugin
                    .unmount(&m.name, &c.id)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = unmounted {
                tracing::warn!(container = %c.id, volume = %m.name, error = %e, "unmounting a plugin volume");
            }
        }
    }
}
