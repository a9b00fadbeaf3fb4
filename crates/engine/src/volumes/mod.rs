//! Named volumes. Each has a directory `<data-root>/volumes/<name>` with `berth.json`: what
//! `volume create` was given (labels, driver options, creation time) and its driver.
//!
//! - Volumes of the `local` driver keep their data beside it, in `_data`. A volume first named
//!   by a container's `-v NAME:/path` or `--mount source=NAME` is made when that container is
//!   created (see [`crate::mounts`]), as Docker does. Driver options are the local driver's:
//!   `type=none,o=bind,device=DIR` makes a volume whose mounts use the host directory `DIR` (a
//!   "bind-backed" volume); other mount types are refused. As Docker's, an empty volume mounted
//!   where the image has files gets a copy of them first ([`copy_up`]; `-v NAME:/path:nocopy`
//!   and `--mount ...,volume-nocopy` skip it).
//! - Volumes of a plugin driver (`volume create --driver NAME`, `--volume-driver`,
//!   `--mount volume-driver=`) are the plugin's ([`plugin`], dockerd's legacy plugin protocol;
//!   [`plugin_volumes`]): the record says whose they are, so that they stay that driver's
//!   after a restart.

mod mount_events;
mod plugin;
mod plugin_volumes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use berth_api::models::{EventMessageTypeEnum, VolumeCreateRequest};
use berth_api::query::Filters;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::container::Container;
use crate::{Engine, EngineError, Result};

pub(crate) use plugin::Registry;

const META: &str = "berth.json";
/// The label of volumes made without a name, the only ones `volume prune` removes unless
/// given the `all` filter (API 1.42 on).
const ANONYMOUS: &str = "com.docker.volume.anonymous";
/// The driver of volumes that name none.
const LOCAL: &str = "local";

/// What `volume create` recorded.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Meta {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    options: BTreeMap<String, String>,
    #[serde(default)]
    created: String,
    /// The plugin whose volume it is; empty for the local driver.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    driver: String,
    /// A plugin volume's mount point, as the plugin last said.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    mountpoint: String,
}

impl Meta {
    fn driver(&self) -> &str {
        if self.driver.is_empty() {
            LOCAL
        } else {
            &self.driver
        }
    }
}

/// Whether `driver` names the local driver (as an empty one does).
fn is_local(driver: &str) -> bool {
    driver.is_empty() || driver == LOCAL
}

/// The volumes directory of a data root.
pub(crate) fn root(data_root: &Path) -> PathBuf {
    data_root.join("volumes")
}

/// The host directory that mounts of local volume `name` use, made on first use: its `_data`,
/// or the `device` of a bind-backed volume. A plugin's volume has none: the plugin mounts it.
pub(crate) fn source(volumes: &Path, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    let meta = read_meta(volumes, name);
    if !is_local(&meta.driver) {
        return Err(EngineError::Internal(format!(
            "volume {name} of driver {} is not mounted",
            meta.driver
        )));
    }
    if let Some(device) = bind_device(&meta.options) {
        return Ok(PathBuf::from(device));
    }
    let data = volumes.join(name).join("_data");
    std::fs::create_dir_all(&data).map_err(|e| EngineError::internal("create volume", e))?;
    Ok(data)
}

/// The driver of volume `name` and the host path its mounts use, for views (no plugin is
/// asked: a plugin volume's mount point is the one its plugin last gave).
pub(crate) fn mount_info(volumes: &Path, name: &str) -> (String, String) {
    let meta = read_meta(volumes, name);
    if is_local(&meta.driver) {
        let data = volumes.join(name).join("_data");
        return (LOCAL.to_string(), data.display().to_string());
    }
    (meta.driver, meta.mountpoint)
}

pub(crate) fn check_name(name: &str) -> Result<()> {
    if crate::ids::valid_name(name) {
        return Ok(());
    }
    if name.len() == 1 {
        return Err(EngineError::InvalidParameter(format!(
            "create {name}: volume name is too short, names should be at least two alphanumeric characters"
        )));
    }
    Err(EngineError::InvalidParameter(format!(
        "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    )))
}

/// The local driver's options (`volume create -o`, `--mount volume-opt=`) for volume `name`:
/// `type`, `o` and `device`, of a bind-backed volume only.
pub(crate) fn check_options<'a, M>(name: &str, options: &'a M) -> Result<()>
where
    &'a M: IntoIterator<Item = (&'a String, &'a String)>,
{
    let options: BTreeMap<String, String> = options
        .into_iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for key in options.keys() {
        if !["type", "o", "device"].contains(&key.as_str()) {
            return Err(EngineError::InvalidParameter(format!(
                "create {name}: invalid option key: {key:?}"
            )));
        }
    }
    if options.is_empty() {
        return Ok(());
    }
    let ty = options.get("type").map(String::as_str).unwrap_or("");
    match bind_device(&options) {
        Some(device) if ty == "none" && Path::new(device).is_dir() => Ok(()),
        Some(device) if ty == "none" => Err(EngineError::InvalidParameter(format!(
            "create {name}: failed to mount local volume: mount {device}: no such file or directory"
        ))),
        _ => Err(EngineError::InvalidParameter(format!(
            "create {name}: only bind-backed local volumes (type=none, o=bind, device=DIR) are supported"
        ))),
    }
}

fn bind_device(options: &BTreeMap<String, String>) -> Option<&str> {
    let bind = options
        .get("o")
        .is_some_and(|o| o.split(',').any(|o| o == "bind"));
    bind.then(|| options.get("device").map(String::as_str))
        .flatten()
}

fn read_meta(volumes: &Path, name: &str) -> Meta {
    std::fs::read(volumes.join(name).join(META))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Rewrites the record of an existing volume (through a temporary file, never half written).
fn write_meta(volumes: &Path, name: &str, meta: &Meta) -> Result<()> {
    let dir = volumes.join(name);
    let tmp = dir.join(format!(".{META}.new"));
    let text = serde_json::to_vec(meta).map_err(|e| EngineError::internal("encode", e))?;
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, dir.join(META)))
        .map_err(|e| EngineError::internal("record volume", e))
}

/// Serializes copy-ups, so that two containers starting on one new volume do not both copy.
static COPY_UP: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Docker's first-mount copy into local volume `name` (see [`copy_into`]); not for
/// bind-backed volumes (the host's directory is theirs).
pub(crate) fn copy_up(volumes: &Path, name: &str, rootfs: &Path, dst: &str) -> Result<()> {
    if bind_device(&read_meta(volumes, name).options).is_some() {
        return Ok(());
    }
    copy_into(&volumes.join(name).join("_data"), rootfs, dst)
}

/// Docker's first-mount copy: when a volume's directory `data` is empty and `dst` in the
/// container's root filesystem `rootfs` is a directory with entries, they are copied into it
/// (owners, modes, extended attributes, times, hard links), and the data directory takes the
/// directory's owner and mode. A symlink on the way to `dst` stops it: the copy never reads
/// outside `rootfs`.
pub(crate) fn copy_into(data: &Path, rootfs: &Path, dst: &str) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut source = rootfs.to_path_buf();
    for part in Path::new(dst).components() {
        match part {
            std::path::Component::RootDir => {}
            std::path::Component::Normal(name) => {
                source.push(name);
                match std::fs::symlink_metadata(&source) {
                    Ok(m) if m.is_dir() => {}
                    _ => return Ok(()),
                }
            }
            _ => return Ok(()),
        }
    }
    let _one_at_a_time = COPY_UP
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let empty = |dir: &Path| std::fs::read_dir(dir).map(|mut d| d.next().is_none());
    if !empty(data).unwrap_or(false) || empty(&source).unwrap_or(true) {
        return Ok(());
    }
    let failed = |e: &dyn std::fmt::Display| {
        EngineError::Internal(format!(
            "copying the image's {dst} into volume {}: {e}",
            data.display()
        ))
    };
    let entries = std::fs::read_dir(&source).map_err(|e| failed(&e))?;
    for entry in entries {
        let entry = entry.map_err(|e| failed(&e))?;
        berth_image::snapshot::copy::copy_tree(dst, &entry.path(), &data.join(entry.file_name()))
            .map_err(|e| failed(&e))?;
    }
    let meta = std::fs::metadata(&source).map_err(|e| failed(&e))?;
    std::os::unix::fs::lchown(data, Some(meta.uid()), Some(meta.gid())).map_err(|e| failed(&e))?;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(|e| failed(&e))
}

/// Which driver a `volume create` goes to.
enum Target {
    Local,
    Plugin(String),
}

impl Engine {
    /// Removes the anonymous volumes of `c` (with `rm -v`, and `--rm`), unless another
    /// container uses them too.
    pub(crate) fn remove_anonymous_volumes(&self, c: &Container) {
        for bind in &c.anonymous_volumes {
            let Some((name, _)) = bind.split_once(':') else {
                continue;
            };
            let others = self
                .volume_users()
                .get(name)
                .is_some_and(|users| users.iter().any(|id| *id != c.id));
            if others {
                continue;
            }
            if let Err(e) = self.remove_volume_now(name) {
                tracing::warn!(volume = name, error = %e, "removing an anonymous volume");
            }
        }
    }

    /// Removes volume `name` from synchronous code (a plugin's through its `Remove`).
    pub(crate) fn remove_volume_now(&self, name: &str) -> Result<()> {
        let driver = read_meta(&self.volumes_dir(), name).driver;
        if is_local(&driver) {
            self.remove_volume_dir(name)?;
            self.volume_event("destroy", name, LOCAL);
            return Ok(());
        }
        plugin::wait(|| self.remove_plugin_volume(name, &driver, false))
            .map_err(|e| EngineError::Internal(e.to_string()))?
    }

    fn volumes_dir(&self) -> PathBuf {
        root(self.data_root())
    }

    /// The names of the recorded volumes, of every driver.
    fn volume_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.volumes_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| crate::ids::valid_name(n))
            .collect();
        names.sort();
        names
    }

    /// The names of the local driver's volumes.
    fn local_volume_names(&self) -> Vec<String> {
        let dir = self.volumes_dir();
        self.volume_names()
            .into_iter()
            .filter(|n| is_local(&read_meta(&dir, n).driver))
            .collect()
    }

    /// Which containers mount each volume.
    fn volume_users(&self) -> HashMap<String, Vec<String>> {
        let mut users: HashMap<String, Vec<String>> = HashMap::new();
        for c in self.containers.all() {
            for name in crate::mounts::volume_names(&c) {
                let ids = users.entry(name).or_default();
                if !ids.contains(&c.id) {
                    ids.push(c.id.clone());
                }
            }
        }
        users
    }

    /// Docker's JSON of local volume `name`.
    fn volume_view(&self, name: &str) -> Value {
        let dir = self.volumes_dir().join(name);
        let meta = read_meta(&self.volumes_dir(), name);
        let created = if meta.created.is_empty() {
            std::fs::metadata(&dir)
                .and_then(|m| m.modified())
                .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                .unwrap_or_default()
        } else {
            meta.created.clone()
        };
        json!({
            "CreatedAt": created,
            "Driver": LOCAL,
            "Labels": meta.labels,
            "Mountpoint": dir.join("_data").display().to_string(),
            "Name": name,
            "Options": if meta.options.is_empty() { Value::Null } else { json!(meta.options) },
            "Scope": "local",
        })
    }

    fn volume_event(&self, action: &str, name: &str, driver: &str) {
        self.events.publish(
            EventMessageTypeEnum::VOLUME,
            action,
            name,
            [("driver".to_string(), driver.to_string())].into(),
        );
    }

    fn volume_exists(&self, name: &str) -> bool {
        crate::ids::valid_name(name) && self.volumes_dir().join(name).is_dir()
    }

    /// The volume drivers: `local` and the volume plugins used so far (`/info`'s
    /// `Plugins.Volume`).
    pub fn volume_drivers(&self) -> Vec<String> {
        let mut drivers = vec![LOCAL.to_string()];
        drivers.extend(self.plugins.active(plugin::VOLUME_DRIVER));
        drivers
    }

    /// Looks volume driver `driver` up (a plugin is found, not yet activated).
    pub(crate) fn check_volume_driver(&self, driver: &str) -> Result<()> {
        if is_local(driver) || self.plugins.exists(driver) {
            return Ok(());
        }
        Err(not_found_plugin(driver))
    }

    /// Where a `volume create` of `req` goes: an existing volume to its driver (another driver
    /// named is a conflict, as dockerd's), a new one to the driver named.
    fn create_target(&self, req: &VolumeCreateRequest) -> Result<Target> {
        let driver = req.driver.clone().unwrap_or_default();
        self.check_volume_driver(&driver)?;
        let name = req.name.as_deref().unwrap_or("");
        if !name.is_empty() && self.volume_exists(name) {
            let meta = read_meta(&self.volumes_dir(), name);
            if !driver.is_empty() && meta.driver() != driver {
                return Err(EngineError::Conflict(format!(
                    "create {name}: driver '{}' already has volume '{name}': volume name must be unique",
                    meta.driver()
                )));
            }
            return Ok(if is_local(&meta.driver) {
                Target::Local
            } else {
                Target::Plugin(meta.driver)
            });
        }
        Ok(if is_local(&driver) {
            Target::Local
        } else {
            Target::Plugin(driver)
        })
    }

    /// `POST /volumes/create`. An existing name gives the existing volume back, as Docker's.
    pub async fn volume_create(&self, req: VolumeCreateRequest) -> Result<Value> {
        match self.create_target(&req)? {
            Target::Local => self.create_local_volume(req),
            Target::Plugin(driver) => self.create_plugin_volume(&driver, req).await,
        }
    }

    /// [`Engine::volume_create`] from synchronous code.
    pub(crate) fn volume_create_now(&self, req: VolumeCreateRequest) -> Result<Value> {
        match self.create_target(&req)? {
            Target::Local => self.create_local_volume(req),
            Target::Plugin(driver) => plugin::wait(|| self.create_plugin_volume(&driver, req))
                .map_err(|e| EngineError::Internal(e.to_string()))?,
        }
    }

    /// The new name of `req` (a random one, labelled anonymous, when it has none), checked.
    fn new_volume_name(req: &VolumeCreateRequest) -> Result<(String, BTreeMap<String, String>)> {
        let mut labels: BTreeMap<String, String> =
            req.labels.clone().unwrap_or_default().into_iter().collect();
        let name = match req.name.clone().filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => {
                labels.insert(ANONYMOUS.to_string(), String::new());
                crate::ids::new_id()
            }
        };
        check_name(&name)?;
        Ok((name, labels))
    }

    fn create_local_volume(&self, req: VolumeCreateRequest) -> Result<Value> {
        let (name, labels) = Engine::new_volume_name(&req)?;
        let options: BTreeMap<String, String> =
            req.driver_opts.unwrap_or_default().into_iter().collect();
        check_options(&name, &options)?;
        if self.volume_exists(&name) {
            return Ok(self.volume_view(&name));
        }
        let meta = Meta {
            labels,
            options,
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            ..Meta::default()
        };
        if !self.record_volume(&name, &meta, true)? {
            return Ok(self.volume_view(&name));
        }
        self.volume_event("create", &name, LOCAL);
        Ok(self.volume_view(&name))
    }

    /// Records new volume `name` (with a `_data` directory when `data`): made under a
    /// temporary name and renamed into place, so that a half-made volume is never listed.
    /// False when another request made it meanwhile.
    fn record_volume(&self, name: &str, meta: &Meta, data: bool) -> Result<bool> {
        let dir = self.volumes_dir();
        let tmp = dir.join(format!(".new-{}", crate::ids::new_id()));
        let inner = if data { tmp.join("_data") } else { tmp.clone() };
        let made = std::fs::create_dir_all(&inner)
            .and_then(|()| match &self.config.userns_remap {
                // As dockerd's: a new volume's data is the remapped root's.
                Some(remap) if data => crate::userns::chown_root(remap, &inner),
                _ => Ok(()),
            })
            .and_then(|()| {
                let text = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
                std::fs::write(tmp.join(META), text)
            })
            .and_then(|()| std::fs::rename(&tmp, dir.join(name)));
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&tmp);
            if self.volume_exists(name) {
                return Ok(false);
            }
            return Err(EngineError::internal("create volume", e));
        }
        Ok(true)
    }

    /// `GET /volumes/NAME`.
    pub async fn volume_inspect(&self, name: &str) -> Result<Value> {
        if !self.volume_exists(name) {
            return self.find_plugin_volume(name).await;
        }
        let meta = read_meta(&self.volumes_dir(), name);
        if is_local(&meta.driver) {
            return Ok(self.volume_view(name));
        }
        self.inspect_plugin_volume(name, meta).await
    }

    /// `GET /volumes`: the local volumes and those of the volume plugins, with the `name`,
    /// `label`, `dangling` and `driver` filters.
    pub async fn volume_list(&self, filters: &Filters) -> Result<Value> {
        let users = self.volume_users();
        let mut all: Vec<Value> = self
            .local_volume_names()
            .iter()
            .map(|n| self.volume_view(n))
            .collect();
        let (listed, warnings) = self.list_plugin_volumes().await;
        all.extend(listed);
        let mut out = Vec::new();
        for view in all {
            let name = view["Name"].as_str().unwrap_or("");
            let names_ok = filters
                .get("name")
                .iter()
                .all(|n| name.contains(n.as_str()));
            let labels_ok = filters.labels_match(|k| view["Labels"].get(k).and_then(Value::as_str));
            let driver = view["Driver"].as_str().unwrap_or("");
            let driver_ok = filters.get("driver").iter().all(|d| d == driver);
            let dangling_ok = filters.get("dangling").iter().all(|d| {
                let dangling = matches!(d.as_str(), "true" | "1");
                dangling != users.contains_key(name)
            });
            if names_ok && labels_ok && driver_ok && dangling_ok {
                out.push(view);
            }
        }
        Ok(json!({"Volumes": out, "Warnings": warnings}))
    }

    /// `DELETE /volumes/NAME`: refused while a container (running or not) mounts it.
    pub async fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        if !self.volume_exists(name) {
            return self.remove_unrecorded_volume(name, force).await;
        }
        if let Some(ids) = self.volume_users().get(name) {
            return Err(EngineError::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                ids.join(", ")
            )));
        }
        let driver = read_meta(&self.volumes_dir(), name).driver;
        if !is_local(&driver) {
            return self.remove_plugin_volume(name, &driver, force).await;
        }
        self.remove_volume_dir(name)?;
        self.volume_event("destroy", name, LOCAL);
        Ok(())
    }

    /// Removes a volume's directory: renamed away first, so that it is gone from listings
    /// at once even if the removal of its data stops half way.
    pub(crate) fn remove_volume_dir(&self, name: &str) -> Result<()> {
        let dir = self.volumes_dir();
        let trash = dir.join(format!(".removed-{}", crate::ids::new_id()));
        std::fs::rename(dir.join(name), &trash)
            .map_err(|e| EngineError::internal("remove volume", e))?;
        std::fs::remove_dir_all(&trash).map_err(|e| EngineError::internal("remove volume", e))
    }

    /// `POST /volumes/prune`: removes the local driver's anonymous volumes no container
    /// mounts, or with the `all` filter every unused one (and the `label` filter); returns
    /// their names and the bytes freed.
    pub fn prune_volumes(&self, filters: &Filters) -> Result<(Vec<String>, u64)> {
        let users = self.volume_users();
        let all = filters
            .get("all")
            .iter()
            .any(|a| matches!(a.as_str(), "true" | "1"));
        let mut removed = Vec::new();
        let mut space = 0;
        for name in self.local_volume_names() {
            if users.contains_key(&name) {
                continue;
            }
            let view = self.volume_view(&name);
            let anonymous = view["Labels"].get(ANONYMOUS).is_some();
            if !(all || anonymous)
                || !filters.labels_match(|k| view["Labels"].get(k).and_then(Value::as_str))
            {
                continue;
            }
            let size = dir_size(&self.volumes_dir().join(&name));
            if self.remove_volume_dir(&name).is_ok() {
                space += size;
                self.volume_event("destroy", &name, LOCAL);
                removed.push(name);
            }
        }
        // As dockerd's volume service: one `prune` event (no actor) with the bytes freed.
        self.events.publish(
            EventMessageTypeEnum::VOLUME,
            "prune",
            "",
            [("reclaimed".to_string(), space.to_string())].into(),
        );
        Ok((removed, space))
    }

    /// The local volumes with their size and how many containers mount them (`system df`).
    pub(crate) fn volume_usage(&self) -> Vec<Value> {
        let users = self.volume_users();
        self.local_volume_names()
            .into_iter()
            .map(|name| {
                let mut view = self.volume_view(&name);
                let size = dir_size(&self.volumes_dir().join(&name).join("_data"));
                let refs = users.get(&name).map_or(0, Vec::len);
                view["UsageData"] = json!({"Size": size, "RefCount": refs});
                view
            })
            .collect()
    }
}

fn no_such_volume(name: &str) -> EngineError {
    EngineError::NotFound(format!("get {name}: no such volume"))
}

/// dockerd's error for a volume driver no plugin answers to.
fn not_found_plugin(driver: &str) -> EngineError {
    EngineError::NotFound(format!(
        "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
    ))
}

/// The bytes under `dir` (files counted once per inode; not following symlinks).
pub(crate) fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut seen = HashSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in rd.flatten() {
            let Ok(m) = entry.metadata() else { continue };
            if m.is_dir() {
                todo.push(entry.path());
            } else if m.is_file() && seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_up_copies_into_empty_volumes_only_and_never_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let (rootfs, volumes) = (dir.path().join("rootfs"), dir.path().join("volumes"));
        std::fs::create_dir_all(rootfs.join("seed/sub")).unwrap();
        std::fs::write(rootfs.join("seed/sub/f"), "x").unwrap();
        // A symlink that would lead out of the root filesystem.
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(&outside, rootfs.join("link")).unwrap();

        let data = source(&volumes, "vv").unwrap();
        copy_up(&volumes, "vv", &rootfs, "/seed").unwrap();
        assert_eq!(std::fs::read_to_string(data.join("sub/f")).unwrap(), "x");
        // Not empty any more: a change in the image is not copied again.
        std::fs::write(rootfs.join("seed/g"), "y").unwrap();
        copy_up(&volumes, "vv", &rootfs, "/seed").unwrap();
        assert!(!data.join("g").exists());

        let data = source(&volumes, "ww").unwrap();
        copy_up(&volumes, "ww", &rootfs, "/link").unwrap();
        copy_up(&volumes, "ww", &rootfs, "/missing/path").unwrap();
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
    }
}
