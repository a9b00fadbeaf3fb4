//! Images as the API shows them, over `berth-image`'s store: finding an image by name, id or id
//! prefix; the list and inspect bodies; import, tag and remove.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use berth_api::models::{ImageConfig, ImageInspect, ImageInspectRootFs, ImageSummary};
use berth_image::digest::Digest;
use berth_image::import::ImageStore;
use berth_image::manifest::{self, Manifest};
use berth_image::metadata::{Image, MetadataError};
use berth_image::reference::Reference;
use serde_json::Value;

use crate::error::{EngineError, Result};

/// An image found by [`Images::resolve`].
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The stored name that found it (full form), if found by name.
    pub name: Option<String>,
    pub manifest: Digest,
    /// The image id: the config's digest.
    pub id: Digest,
    /// The config blob, parsed.
    pub config: Value,
    pub layers: Vec<(Digest, u64)>,
}

/// The engine's view of the image store.
#[derive(Debug, Clone)]
pub struct Images {
    pub store: Arc<ImageStore>,
}

fn internal(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(e.to_string())
}

impl Images {
    /// The manifest, config and layers behind `target`.
    fn load(&self, target: &Digest, name: Option<String>) -> Result<Resolved> {
        let bytes = self.store.content.read_to_vec(target).map_err(internal)?;
        let Manifest::Image(m) = manifest::parse(None, &bytes).map_err(internal)? else {
            return Err(internal(format!("{target} is an index")));
        };
        let id: Digest = m.config().digest().to_string().parse().map_err(internal)?;
        let config: Value =
            serde_json::from_slice(&self.store.content.read_to_vec(&id).map_err(internal)?)
                .map_err(internal)?;
        let layers = m
            .layers()
            .iter()
            .filter_map(|l| Some((l.digest().to_string().parse().ok()?, l.size())))
            .collect();
        Ok(Resolved {
            name,
            manifest: target.clone(),
            id,
            config,
            layers,
        })
    }

    /// Finds an image by reference (`bb`, `bb:local`, `localhost:5000/x@sha256:...`), by id
    /// (`sha256:<hex>`, `<hex>`) or by a unique id prefix.
    pub fn resolve(&self, key: &str) -> Result<Resolved> {
        let not_found = || EngineError::NotFound(format!("No such image: {key}"));
        let images = self.store.metadata.images().map_err(internal)?;
        if let Ok(r) = key.parse::<Reference>() {
            let full = r.to_string();
            if let Some(img) = images.iter().find(|i| i.name == full) {
                return self.load(&img.target, Some(full));
            }
        }
        let hex = key.strip_prefix("sha256:").unwrap_or(key);
        if hex.len() >= 4 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut found: HashMap<String, Digest> = HashMap::new();
            for img in &images {
                if let Ok(res) = self.load(&img.target, None) {
                    if res.id.hex().starts_with(hex) {
                        found.insert(res.id.to_string(), img.target.clone());
                    }
                }
            }
            if found.len() == 1 {
                if let Some(target) = found.values().next() {
                    return self.load(target, None);
                }
            }
        }
        Err(not_found())
    }

    /// `GET /images/json`: one entry per image id, with its names.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let mut by_id: BTreeMap<String, (Resolved, Vec<Image>)> = BTreeMap::new();
        for img in self.store.metadata.images().map_err(internal)? {
            let Ok(res) = self.load(&img.target, None) else {
                continue;
            };
            by_id
                .entry(res.id.to_string())
                .or_insert_with(|| (res, Vec::new()))
                .1
                .push(img);
        }
        let mut out: Vec<ImageSummary> = by_id
            .into_values()
            .map(|(res, names)| {
                let (tags, digests) = repo_names(&names, &res.manifest);
                ImageSummary {
                    id: res.id.to_string(),
                    parent_id: String::new(),
                    repo_tags: tags,
                    repo_digests: digests,
                    created: created_secs(&res.config),
                    size: size_of(&res),
                    shared_size: -1,
                    labels: labels(&res.config),
                    containers: -1,
                    ..Default::default()
                }
            })
            .collect();
        out.sort_by_key(|i| std::cmp::Reverse(i.created));
        Ok(out)
    }

    /// `GET /images/{name}/json`.
    pub fn inspect(&self, key: &str) -> Result<ImageInspect> {
        let res = self.resolve(key)?;
        let names: Vec<Image> = self
            .store
            .metadata
            .images()
            .map_err(internal)?
            .into_iter()
            .filter(|i| i.target == res.manifest)
            .collect();
        let (tags, digests) = repo_names(&names, &res.manifest);
        let config: Option<ImageConfig> = serde_json::from_value(res.config["config"].clone()).ok();
        let diff_ids = res.config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(ImageInspect {
            id: Some(res.id.to_string()),
            repo_tags: Some(tags),
            repo_digests: Some(digests),
            comment: res.config["comment"]
                .as_str()
                .map(str::to_string)
                .or(Some(String::new())),
            created: res.config["created"].as_str().map(str::to_string),
            author: res.config["author"]
                .as_str()
                .map(str::to_string)
                .or(Some(String::new())),
            config,
            architecture: res.config["architecture"].as_str().map(str::to_string),
            variant: res.config["variant"].as_str().map(str::to_string),
            os: res.config["os"].as_str().map(str::to_string),
            size: Some(size_of(&res)),
            root_fs: Some(ImageInspectRootFs {
                typ: "layers".to_string(),
                layers: Some(diff_ids),
            }),
            ..Default::default()
        })
    }

    /// Names `target` (an image found by `source`) as `repo[:tag]`.
    pub fn tag(&self, source: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        let res = self.resolve(source)?;
        let text = match tag.filter(|t| !t.is_empty()) {
            Some(t) => format!("{repo}:{t}"),
            None => repo.to_string(),
        };
        let reference: Reference = text
            .parse()
            .map_err(|e| EngineError::InvalidParameter(format!("invalid reference format: {e}")))?;
        let bytes = self
            .store
            .content
            .read_to_vec(&res.manifest)
            .map_err(internal)?;
        self.store
            .metadata
            .put_image(&Image {
                name: reference.to_string(),
                target: res.manifest.clone(),
                media_type: berth_image::manifest::OCI_MANIFEST.to_string(),
                size: bytes.len() as u64,
                created: crate::container::now_rfc3339(),
            })
            .map_err(internal)
    }

    /// `DELETE /images/{name}`: untags a name; removes the image when no name is left (its
    /// blobs and snapshots go with the next garbage collection). Returns Docker's list of
    /// `Untagged` / `Deleted` entries.
    pub fn remove(&self, key: &str, force: bool) -> Result<Vec<(String, String)>> {
        let res = self.resolve(key)?;
        let all = self.store.metadata.images().map_err(internal)?;
        let names: Vec<&Image> = all.iter().filter(|i| i.target == res.manifest).collect();
        // By name: untag that name. By id: every name (refused without force if several).
        let to_remove: Vec<String> = match &res.name {
            Some(n) => vec![n.clone()],
            None if names.len() > 1 && !force => {
                return Err(EngineError::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    &res.id.hex()[..12]
                )))
            }
            None => names.iter().map(|i| i.name.clone()).collect(),
        };
        let mut out = Vec::new();
        for name in &to_remove {
            self.store
                .metadata
                .delete_image(name, force)
                .map_err(|e| match e {
                    MetadataError::InUse { container, .. } => EngineError::Conflict(format!(
                        "conflict: unable to remove repository reference \"{key}\" (must force) - container {} is using its referenced image {}",
                        &container[..container.len().min(12)],
                        &res.id.hex()[..12]
                    )),
                    other => internal(other),
                })?;
            let display = name
                .parse::<Reference>()
                .map(|r| r.familiar())
                .unwrap_or_else(|_| name.clone());
            out.push(("Untagged".to_string(), display));
        }
        let left = self
            .store
            .metadata
            .images()
            .map_err(internal)?
            .iter()
            .any(|i| i.target == res.manifest);
        if !left {
            out.push(("Deleted".to_string(), res.id.to_string()));
            self.collect_garbage();
        }
        Ok(out)
    }
}

impl Images {
    /// Removes the blobs and snapshots nothing needs any more (errors are logged: garbage left
    /// for next time is harmless).
    pub fn collect_garbage(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        if let Err(e) = berth_image::gc::collect(&self.store.content, &self.store.metadata, now) {
            tracing::warn!(error = %e, "image garbage collection");
        }
        if let Err(e) = berth_image::gc::collect_snapshots(&self.store, now) {
            tracing::warn!(error = %e, "snapshot garbage collection");
        }
    }
}

/// `RepoTags` and `RepoDigests` of the names pointing at `manifest`.
fn repo_names(names: &[Image], _manifest: &Digest) -> (Vec<String>, Vec<String>) {
    let mut tags = Vec::new();
    let mut digests = Vec::new();
    for img in names {
        match img.name.parse::<Reference>() {
            Ok(r) if r.digest().is_some() => digests.push(r.familiar()),
            Ok(r) => tags.push(r.familiar()),
            // An unnamed import is stored under its id: no names to show.
            Err(_) => {}
        }
    }
    tags.sort();
    (tags, digests)
}

fn created_secs(config: &Value) -> i64 {
    config["created"]
        .as_str()
        .and_then(|c| humantime::parse_rfc3339_weak(c).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn size_of(res: &Resolved) -> i64 {
    res.layers.iter().map(|(_, s)| *s as i64).sum()
}

fn labels(config: &Value) -> HashMap<String, String> {
    config["config"]["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}
