//! Named volumes of the `local` driver: `<data-root>/volumes/<name>/_data`, and beside it
//! `berth.json` with what `volume create` was given (labels, driver options, creation time).
//! A volume first named by `-v NAME:/path` is made then, without labels, as Docker does.
//!
//! Driver options are the local driver's: `type=none,o=bind,device=DIR` makes a volume whose
//! mounts use the host directory `DIR` (a "bind-backed" volume); other mount types are refused.
//!
//! As Docker's, an empty volume mounted where the image has files gets a copy of them first
//! ([`copy_up`]; `-v NAME:/path:nocopy` skips it), and inspect's `Mounts` lists the binds and
//! volumes of a container ([`mount_points`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use berth_api::models::{
    ContainerConfig, EventMessageTypeEnum, HostConfig, MountPoint, VolumeCreateRequest,
};
use berth_api::query::Filters;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::container::Container;
use crate::{Engine, EngineError, Result};

const META: &str = "berth.json";
/// The label of volumes made without a name, the only ones `volume prune` removes unless
/// given the `all` filter (API 1.42 on).
const ANONYMOUS: &str = "com.docker.volume.anonymous";

/// What `volume create` recorded.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Meta {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    options: BTreeMap<String, String>,
    #[serde(default)]
    created: String,
}

/// The volumes directory of a data root.
pub(crate) fn root(data_root: &Path) -> PathBuf {
    data_root.join("volumes")
}

/// The host directory that mounts of volume `name` use, made on first use: its `_data`, or
/// the `device` of a bind-backed volume.
pub(crate) fn source(volumes: &Path, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    let meta = read_meta(volumes, name);
    if let Some(device) = bind_device(&meta.options) {
        return Ok(PathBuf::from(device));
    }
    let data = volumes.join(name).join("_data");
    std::fs::create_dir_all(&data).map_err(|e| EngineError::internal("create volume", e))?;
    Ok(data)
}

fn check_name(name: &str) -> Result<()> {
    if crate::ids::valid_name(name) {
        return Ok(());
    }
    Err(EngineError::InvalidParameter(format!(
        "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    )))
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

/// One `-v SRC:DST[:OPTS]` of `HostConfig.Binds`, split; `None` when it is malformed.
pub fn split_bind(spec: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [src, dst] => Some((src, dst, "")),
        [src, dst, opts] => Some((src, dst, opts)),
        _ => None,
    }
}

/// Serializes copy-ups, so that two containers starting on one new volume do not both copy.
static COPY_UP: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Docker's first-mount copy: when volume `name`'s data directory is empty and `dst` in the
/// container's root filesystem `rootfs` is a directory with entries, they are copied into it
/// (owners, modes, extended attributes, times, hard links), and the data directory takes the
/// directory's owner and mode. Not for bind-backed volumes (the host's directory is theirs).
/// A symlink on the way to `dst` stops it: the copy never reads outside `rootfs`.
pub(crate) fn copy_up(volumes: &Path, name: &str, rootfs: &Path, dst: &str) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if bind_device(&read_meta(volumes, name).options).is_some() {
        return Ok(());
    }
    let data = &volumes.join(name).join("_data");
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

/// Inspect's `Mounts` of a container: its bind mounts and volumes, as dockerd lists them.
pub(crate) fn mount_points(c: &Container, volumes: &Path) -> Vec<MountPoint> {
    c.host_config
        .binds
        .iter()
        .flatten()
        .chain(&c.anonymous_volumes)
        .filter_map(|b| split_bind(b))
        .map(|(src, dst, opts)| {
            let rw = !opts.split(',').any(|o| o == "ro");
            let mode = opts
                .split(',')
                .filter(|o| !matches!(*o, "ro" | "rw" | "nocopy"))
                .collect::<Vec<_>>()
                .join(",");
            if src.starts_with('/') {
                MountPoint {
                    typ: Some("bind".to_string()),
                    source: Some(src.to_string()),
                    destination: Some(dst.to_string()),
                    mode: Some(mode),
                    rw: Some(rw),
                    propagation: Some("rprivate".to_string()),
                    ..Default::default()
                }
            } else {
                MountPoint {
                    typ: Some("volume".to_string()),
                    name: Some(src.to_string()),
                    source: Some(volumes.join(src).join("_data").display().to_string()),
                    destination: Some(dst.to_string()),
                    driver: Some("local".to_string()),
                    mode: Some(if mode.is_empty() {
                        "z".to_string()
                    } else {
                        mode
                    }),
                    rw: Some(rw),
                    propagation: Some(String::new()),
                }
            }
        })
        .collect()
}

/// The names of the volumes `c` mounts.
fn mounted_by(c: &Container) -> impl Iterator<Item = String> + '_ {
    c.host_config
        .binds
        .iter()
        .flatten()
        .chain(&c.anonymous_volumes)
        .filter_map(|b| split_bind(b).map(|(src, _, _)| src))
        .filter(|src| !src.starts_with('/'))
        .map(str::to_string)
}

impl Engine {
    /// The anonymous volumes a new container needs: one for each path of the create body's
    /// `Volumes` and the image's `VOLUME`s that no bind or tmpfs covers (as `NAME:/path`).
    pub(crate) fn anonymous_volumes(
        &self,
        config: &ContainerConfig,
        hc: &HostConfig,
        image_config: &Value,
    ) -> Result<Vec<String>> {
        let covered: HashSet<&str> = hc
            .binds
            .iter()
            .flatten()
            .filter_map(|b| split_bind(b).map(|(_, dst, _)| dst))
            .chain(hc.tmpfs.iter().flatten().map(|(dst, _)| dst.as_str()))
            .map(|dst| dst.trim_end_matches('/'))
            .collect();
        let mut paths: Vec<String> = config
            .volumes
            .iter()
            .flatten()
            .cloned()
            .chain(
                image_config["Volumes"]
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.keys().cloned()),
            )
            .filter(|p| !covered.contains(p.trim_end_matches('/')))
            .collect();
        paths.sort();
        paths.dedup();
        let mut made = Vec::new();
        for path in paths {
            if !path.starts_with('/') || path.contains(':') {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid volume specification: '{path}': invalid mount config for type \"volume\": invalid mount path: '{path}' mount path must be absolute"
                )));
            }
            let view = self.volume_create(VolumeCreateRequest::default())?;
            let name = view["Name"].as_str().unwrap_or_default();
            made.push(format!("{name}:{path}"));
        }
        Ok(made)
    }

    /// Removes the anonymous volumes of `c` (with `rm -v`, and `--rm`), unless another
    /// container uses them too.
    pub(crate) fn remove_anonymous_volumes(&self, c: &Container) {
        for bind in &c.anonymous_volumes {
            let Some((name, _, _)) = split_bind(bind) else {
                continue;
            };
            let others = self
                .volume_users()
                .get(name)
                .is_some_and(|users| users.iter().any(|id| *id != c.id));
            if others {
                continue;
            }
            if let Err(e) = self.remove_volume_dir(name) {
                tracing::warn!(volume = name, error = %e, "removing an anonymous volume");
            } else {
                self.volume_event("destroy", name);
            }
        }
    }

    fn volumes_dir(&self) -> PathBuf {
        root(self.data_root())
    }

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

    /// Which containers mount each volume.
    fn volume_users(&self) -> HashMap<String, Vec<String>> {
        let mut users: HashMap<String, Vec<String>> = HashMap::new();
        for c in self.containers.all() {
            for name in mounted_by(&c) {
                users.entry(name).or_default().push(c.id.clone());
            }
        }
        users
    }

    /// Docker's JSON of volume `name`.
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
            "Driver": "local",
            "Labels": meta.labels,
            "Mountpoint": dir.join("_data").display().to_string(),
            "Name": name,
            "Options": if meta.options.is_empty() { Value::Null } else { json!(meta.options) },
            "Scope": "local",
        })
    }

    fn volume_event(&self, action: &str, name: &str) {
        self.events.publish(
            EventMessageTypeEnum::VOLUME,
            action,
            name,
            [("driver".to_string(), "local".to_string())].into(),
        );
    }

    fn volume_exists(&self, name: &str) -> bool {
        crate::ids::valid_name(name) && self.volumes_dir().join(name).is_dir()
    }

    /// `POST /volumes/create`. An existing name gives the existing volume back, as Docker's.
    pub fn volume_create(&self, req: VolumeCreateRequest) -> Result<Value> {
        let driver = req.driver.unwrap_or_default();
        if !driver.is_empty() && driver != "local" {
            return Err(EngineError::NotFound(format!(
                "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            )));
        }
        let mut labels: BTreeMap<String, String> =
            req.labels.unwrap_or_default().into_iter().collect();
        let name = match req.name.filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => {
                labels.insert(ANONYMOUS.to_string(), String::new());
                crate::ids::new_id()
            }
        };
        check_name(&name)?;
        let options: BTreeMap<String, String> =
            req.driver_opts.unwrap_or_default().into_iter().collect();
        for key in options.keys() {
            if !["type", "o", "device"].contains(&key.as_str()) {
                return Err(EngineError::InvalidParameter(format!(
                    "create {name}: invalid option key: {key:?}"
                )));
            }
        }
        if !options.is_empty() {
            let ty = options.get("type").map(String::as_str).unwrap_or("");
            match bind_device(&options) {
                Some(device) if ty == "none" && Path::new(device).is_dir() => {}
                Some(device) if ty == "none" => {
                    return Err(EngineError::InvalidParameter(format!(
                        "create {name}: failed to mount local volume: mount {device}: no such file or directory"
                    )))
                }
                _ => {
                    return Err(EngineError::InvalidParameter(format!(
                        "create {name}: only bind-backed local volumes (type=none, o=bind, device=DIR) are supported"
                    )))
                }
            }
        }
        if self.volume_exists(&name) {
            return Ok(self.volume_view(&name));
        }
        let meta = Meta {
            labels,
            options,
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        };
        // Made under a temporary name and renamed into place, so that a half-made volume is
        // never listed.
        let dir = self.volumes_dir();
        let tmp = dir.join(format!(".new-{}", crate::ids::new_id()));
        let made = std::fs::create_dir_all(tmp.join("_data"))
            .and_then(|()| {
                let text = serde_json::to_vec(&meta).map_err(std::io::Error::other)?;
                std::fs::write(tmp.join(META), text)
            })
            .and_then(|()| std::fs::rename(&tmp, dir.join(&name)));
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&tmp);
            if self.volume_exists(&name) {
                return Ok(self.volume_view(&name));
            }
            return Err(EngineError::internal("create volume", e));
        }
        self.volume_event("create", &name);
        Ok(self.volume_view(&name))
    }

    /// `GET /volumes/NAME`.
    pub fn volume_inspect(&self, name: &str) -> Result<Value> {
        if !self.volume_exists(name) {
            return Err(no_such_volume(name));
        }
        Ok(self.volume_view(name))
    }

    /// `GET /volumes`: with the `name`, `label`, `dangling` and `driver` filters.
    pub fn volume_list(&self, filters: &Filters) -> Result<Value> {
        let users = self.volume_users();
        let mut out = Vec::new();
        for name in self.volume_names() {
            let view = self.volume_view(&name);
            let names_ok = filters
                .get("name")
                .iter()
                .all(|n| name.contains(n.as_str()));
            let labels_ok = filters.labels_match(|k| view["Labels"].get(k).and_then(Value::as_str));
            let driver_ok = filters.get("driver").iter().all(|d| d == "local");
            let dangling_ok = filters.get("dangling").iter().all(|d| {
                let dangling = matches!(d.as_str(), "true" | "1");
                dangling != users.contains_key(&name)
            });
            if names_ok && labels_ok && driver_ok && dangling_ok {
                out.push(view);
            }
        }
        Ok(json!({"Volumes": out, "Warnings": []}))
    }

    /// `DELETE /volumes/NAME`: refused while a container (running or not) mounts it.
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        if !self.volume_exists(name) {
            if force {
                return Ok(());
            }
            return Err(no_such_volume(name));
        }
        if let Some(ids) = self.volume_users().get(name) {
            return Err(EngineError::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                ids.join(", ")
            )));
        }
        self.remove_volume_dir(name)?;
        self.volume_event("destroy", name);
        Ok(())
    }

    /// Removes a volume's directory: renamed away first, so that it is gone from listings
    /// at once even if the removal of its data stops half way.
    fn remove_volume_dir(&self, name: &str) -> Result<()> {
        let dir = self.volumes_dir();
        let trash = dir.join(format!(".removed-{}", crate::ids::new_id()));
        std::fs::rename(dir.join(name), &trash)
            .map_err(|e| EngineError::internal("remove volume", e))?;
        std::fs::remove_dir_all(&trash).map_err(|e| EngineError::internal("remove volume", e))
    }

    /// `POST /volumes/prune`: removes the anonymous volumes no container mounts, or with the
    /// `all` filter every unused one (and the `label` filter); returns their names and the
    /// bytes freed.
    pub fn prune_volumes(&self, filters: &Filters) -> Result<(Vec<String>, u64)> {
        let users = self.volume_users();
        let all = filters
            .get("all")
            .iter()
            .any(|a| matches!(a.as_str(), "true" | "1"));
        let mut removed = Vec::new();
        let mut space = 0;
        for name in self.volume_names() {
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
                self.volume_event("destroy", &name);
                removed.push(name);
            }
        }
        Ok((removed, space))
    }

    /// The volumes with their size and how many containers mount them (`system df`).
    pub(crate) fn volume_usage(&self) -> Vec<Value> {
        let users = self.volume_users();
        self.volume_names()
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
