//! Image archives and housekeeping: `save` and `load` (Docker's archive format, through
//! `berth_image::archive`), `history`, `image prune`, `system df`, and `login` (`POST /auth`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};

use berth_api::models::{ContainerSummary, ImageSummary};
use berth_api::query::{bool_value, Filters};
use berth_image::digest::Digest;
use berth_image::manifest::Platform;
use berth_image::metadata::Image;
use berth_image::reference::Reference;
use berth_registry::credentials::Credential;
use berth_registry::{Client, ClientError, ClientOptions};
use serde_json::{json, Value};

use crate::error::{EngineError, Result};
use crate::images::{self, Images, Resolved};
use crate::Engine;

fn internal(e: impl Into<crate::error::Source>) -> EngineError {
    EngineError::internal("", e)
}

/// Why a login failed: the registry refused the credential (401), or something else.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("{0}")]
    Unauthorized(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// One image of the store: its manifest, what it resolved to, and every name pointing at it.
pub(crate) struct Entry {
    pub res: Resolved,
    pub names: Vec<Image>,
}

impl Images {
    /// Every image (one per manifest), with its names.
    pub(crate) fn entries(&self) -> Result<Vec<Entry>> {
        let mut by_target: BTreeMap<String, Entry> = BTreeMap::new();
        for img in self.store.metadata.images().map_err(internal)? {
            let key = img.target.to_string();
            if let Some(e) = by_target.get_mut(&key) {
                e.names.push(img);
                continue;
            }
            let Ok(res) = self.load_resolved(&img.target, None) else {
                continue;
            };
            by_target.insert(
                key,
                Entry {
                    res,
                    names: vec![img],
                },
            );
        }
        Ok(by_target.into_values().collect())
    }

    /// The names `docker save` writes for `keys` (each a name, an id or an id prefix); fails
    /// before anything is written when one is unknown.
    pub fn save_names(&self, keys: &[String]) -> Result<Vec<Reference>> {
        let mut out: Vec<Reference> = Vec::new();
        for key in keys {
            let res = self.resolve(key)?;
            let names: Vec<Reference> = match &res.name {
                Some(n) => n.parse().into_iter().collect(),
                // By id: every tag of the image.
                None => self
                    .store
                    .metadata
                    .images()
                    .map_err(internal)?
                    .iter()
                    .filter(|i| i.target == res.manifest && images::is_named(&i.name))
                    .filter_map(|i| i.name.parse::<Reference>().ok())
                    .filter(|r| r.digest().is_none())
                    .collect(),
            };
            if names.is_empty() {
                return Err(EngineError::InvalidParameter(format!(
                    "image {key} has no name to save it under: tag it first"
                )));
            }
            for n in names {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        Ok(out)
    }

    /// Writes `names` as a `docker save` archive.
    pub fn save(&self, names: &[Reference], out: impl Write) -> Result<()> {
        berth_image::archive::save(&self.store, names, out).map_err(internal)
    }

    /// Reads a `docker save` archive (or an OCI layout tar) into the store; returns the lines
    /// `docker load` prints (`Loaded image: bb:local`, `Loaded image ID: sha256:...`). Nothing
    /// is named unless the whole archive loaded.
    pub fn load_archive(&self, input: impl Read) -> Result<Vec<String>> {
        let before: HashMap<String, Digest> = self
            .store
            .metadata
            .images()
            .map_err(internal)?
            .into_iter()
            .map(|i| (i.name, i.target))
            .collect();
        let loaded = match berth_image::archive::load(&self.store, input, &Platform::host()) {
            Ok(l) => l,
            Err(e) => {
                // Blobs of a half-read archive are unnamed: collect them.
                self.collect_garbage();
                return Err(EngineError::InvalidParameter(e.to_string()));
            }
        };
        let mut lines = Vec::new();
        let after: Vec<Image> = self.store.metadata.images().map_err(internal)?;
        for name in &loaded {
            if !images::is_named(name) {
                let id = self
                    .store
                    .metadata
                    .image(name)
                    .ok()
                    .and_then(|i| self.load_resolved(&i.target, None).ok())
                    .map_or_else(|| name.clone(), |r| r.id.to_string());
                lines.push(format!("Loaded image ID: {id}"));
                continue;
            }
            // A name that moved: the image it named stays, as Docker keeps it, untagged.
            if let Some(old) = before.get(name) {
                let still_named = after.iter().any(|i| &i.target == old);
                let new_target = after.iter().find(|i| &i.name == name).map(|i| &i.target);
                if new_target != Some(old) && !still_named {
                    if let Ok(res) = self.load_resolved(old, None) {
                        let _ = self.store.metadata.put_image(&Image {
                            name: res.id.to_string(),
                            target: old.clone(),
                            media_type: berth_image::manifest::OCI_MANIFEST.to_string(),
                            size: 0,
                            created: crate::container::now_rfc3339(),
                        });
                        let familiar = familiar(name);
                        lines.push(format!(
                            "The image {familiar} already exists, renaming the old one with ID {} to empty string",
                            res.id
                        ));
                    }
                }
            }
            lines.push(format!("Loaded image: {}", familiar(name)));
        }
        Ok(lines)
    }

    /// `GET /images/{name}/history`: the config's history, newest first; the top entry has
    /// the image's id and tags, older ones `<missing>` (as Docker shows pulled images).
    pub fn history(&self, key: &str) -> Result<Vec<Value>> {
        let res = self.resolve(key)?;
        let names: Vec<Image> = self
            .store
            .metadata
            .images()
            .map_err(internal)?
            .into_iter()
            .filter(|i| i.target == res.manifest)
            .collect();
        let (tags, _) = images::repo_names(&names);
        let mut layers = res.layers.iter().map(|(_, s)| *s as i64);
        let mut items: Vec<Value> = res.config["history"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| {
                let empty = h["empty_layer"].as_bool().unwrap_or(false);
                let size = if empty { 0 } else { layers.next().unwrap_or(0) };
                json!({
                    "Id": "<missing>",
                    "Created": images::secs(h["created"].as_str().unwrap_or_default()),
                    "CreatedBy": h["created_by"].as_str().unwrap_or_default(),
                    "Tags": null,
                    "Size": size,
                    "Comment": h["comment"].as_str().unwrap_or_default(),
                })
            })
            .collect();
        // Layers the history does not account for (an image without history).
        let rest: i64 = layers.sum();
        if items.is_empty() || rest > 0 {
            items.push(json!({
                "Id": "<missing>",
                "Created": images::secs(res.config["created"].as_str().unwrap_or_default()),
                "CreatedBy": "",
                "Tags": null,
                "Size": rest,
                "Comment": "",
            }));
        }
        items.reverse();
        if let Some(top) = items.first_mut() {
            top["Id"] = json!(res.id.to_string());
            top["Tags"] = if tags.is_empty() {
                Value::Null
            } else {
                json!(tags)
            };
        }
        Ok(items)
    }
}

/// `docker.io/library/bb:local` → `bb:local`.
fn familiar(name: &str) -> String {
    name.parse::<Reference>()
        .map(|r| r.familiar())
        .unwrap_or_else(|_| name.to_string())
}

/// The sizes of blobs reachable from `roots`.
fn reachable_size(
    images: &Images,
    roots: impl IntoIterator<Item = Digest>,
) -> HashMap<Digest, u64> {
    berth_image::gc::reachable(&images.store.content, roots)
        .into_iter()
        .map(|d| {
            let size = images.store.content.info(&d).map(|i| i.size).unwrap_or(0);
            (d, size)
        })
        .collect()
}

/// Seconds since the epoch of `until`/`before` filter values: a Unix time, an RFC 3339 time,
/// or a duration (`10m`) before now.
pub(crate) fn parse_time(v: &str) -> Option<i64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    if let Ok(n) = v.parse::<f64>() {
        return Some(n as i64);
    }
    if let Ok(d) = humantime::parse_duration(v) {
        return Some(now - d.as_secs() as i64);
    }
    Some(images::secs(v)).filter(|s| *s > 0)
}

impl Engine {
    /// Manifests and image ids used by containers (any state).
    fn images_in_use(&self) -> (HashSet<String>, HashMap<String, i64>) {
        let mut manifests = HashSet::new();
        let mut by_id: HashMap<String, i64> = HashMap::new();
        for c in self.containers.all() {
            manifests.insert(c.image_manifest.clone());
            *by_id.entry(c.image_id.clone()).or_default() += 1;
        }
        (manifests, by_id)
    }

    /// `POST /images/prune`: removes dangling images (every unused image when the filter says
    /// `dangling=false`); images containers use are kept. Returns Docker's `Untagged`/`Deleted`
    /// entries and the bytes reclaimed.
    pub fn prune_images(&self, filters: &Filters) -> Result<(Vec<(String, String)>, u64)> {
        for key in filters.0.keys() {
            if !matches!(key.as_str(), "dangling" | "until" | "label" | "label!") {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid filter '{key}'"
                )));
            }
        }
        let dangling_only = filters.get("dangling").iter().all(|v| bool_value(v));
        let until: Vec<i64> = filters
            .get("until")
            .iter()
            .map(|v| {
                parse_time(v).ok_or_else(|| {
                    EngineError::InvalidParameter(format!("invalid until filter {v:?}"))
                })
            })
            .collect::<Result<_>>()?;
        let (in_use, in_use_ids) = self.images_in_use();
        let entries = self.images.entries()?;
        let mut doomed = Vec::new();
        let mut kept = Vec::new();
        for e in entries {
            let (tags, _) = images::repo_names(&e.names);
            let labels = images::labels(&e.res.config);
            let created = images::created_secs(&e.res.config);
            let prune = (!dangling_only || tags.is_empty())
                && !in_use.contains(&e.res.manifest.to_string())
                && !in_use_ids.contains_key(&e.res.id.to_string())
                && until.iter().all(|u| created < *u)
                && filters.labels_match(|k| labels.get(k).map(String::as_str));
            if prune {
                doomed.push(e);
            } else {
                kept.push(e.res.manifest.clone());
            }
        }
        let keep = reachable_size(&self.images, kept);
        let gone = reachable_size(&self.images, doomed.iter().map(|e| e.res.manifest.clone()));
        let mut out = Vec::new();
        let mut deleted_ids = HashSet::new();
        for e in &doomed {
            let mut untagged = Vec::new();
            let mut failed = false;
            for img in &e.names {
                match self.images.store.metadata.delete_image(&img.name, false) {
                    Ok(_) => {
                        if images::is_named(&img.name) {
                            untagged.push(("Untagged".to_string(), familiar(&img.name)));
                        }
                    }
                    Err(err) => {
                        tracing::warn!(name = %img.name, error = %err, "image prune");
                        failed = true;
                    }
                }
            }
            out.extend(untagged);
            if !failed && deleted_ids.insert(e.res.id.to_string()) {
                out.push(("Deleted".to_string(), e.res.id.to_string()));
            }
        }
        let reclaimed: u64 = gone
            .iter()
            .filter(|(d, _)| !keep.contains_key(*d))
            .map(|(_, s)| *s)
            .sum();
        if !doomed.is_empty() {
            self.images.collect_garbage();
        }
        for e in &doomed {
            self.events.publish(
                berth_api::models::EventMessageTypeEnum::IMAGE,
                "delete",
                &e.res.id.to_string(),
                HashMap::new(),
            );
        }
        // dockerd's one `prune` event, no actor, with the bytes freed.
        self.events.publish(
            berth_api::models::EventMessageTypeEnum::IMAGE,
            "prune",
            "",
            [("reclaimed".to_string(), reclaimed.to_string())].into(),
        );
        Ok((out, reclaimed))
    }

    /// `GET /system/df`: images (with how many containers use each and the size they share),
    /// containers (with their writable layer's size), volumes, and an empty build cache.
    pub fn disk_usage(&self) -> Result<Value> {
        let entries = self.images.entries()?;
        let (_, in_use_ids) = self.images_in_use();
        // How many images each layer blob belongs to.
        let mut layer_users: HashMap<&Digest, u32> = HashMap::new();
        let mut layer_sizes: HashMap<&Digest, u64> = HashMap::new();
        let mut seen_ids = HashSet::new();
        for e in &entries {
            if !seen_ids.insert(e.res.id.to_string()) {
                continue;
            }
            for (d, s) in &e.res.layers {
                *layer_users.entry(d).or_default() += 1;
                layer_sizes.insert(d, *s);
            }
        }
        let layers_size: u64 = layer_sizes.values().sum();
        let mut images_out: BTreeMap<String, ImageSummary> = BTreeMap::new();
        for e in &entries {
            let id = e.res.id.to_string();
            let (tags, digests) = images::repo_names(&e.names);
            if let Some(existing) = images_out.get_mut(&id) {
                existing.repo_tags.extend(tags);
                existing.repo_digests.extend(digests);
                continue;
            }
            let size = images::size_of(&e.res);
            let shared: i64 = e
                .res
                .layers
                .iter()
                .filter(|(d, _)| layer_users.get(d).copied().unwrap_or(0) > 1)
                .map(|(_, s)| *s as i64)
                .sum();
            images_out.insert(
                id.clone(),
                ImageSummary {
                    id: id.clone(),
                    parent_id: images::parent_of(&e.res.config),
                    repo_tags: tags,
                    repo_digests: digests,
                    created: images::created_secs(&e.res.config),
                    size,
                    shared_size: shared,
                    labels: images::labels(&e.res.config),
                    containers: in_use_ids.get(&id).copied().unwrap_or(0),
                    ..Default::default()
                },
            );
        }
        let mut images_list: Vec<ImageSummary> = images_out.into_values().collect();
        images_list.sort_by_key(|i| std::cmp::Reverse(i.created));
        let mut containers: Vec<ContainerSummary> = self.list(true, None, &Filters::default())?;
        let image_sizes: HashMap<String, i64> =
            images_list.iter().map(|i| (i.id.clone(), i.size)).collect();
        for c in &mut containers {
            let id = c.id.clone().unwrap_or_default();
            let rw = self
                .images
                .store
                .snapshots
                .upper_dir(&format!("container-{id}"))
                .map(|p| crate::volumes::dir_size(&p))
                .unwrap_or(0) as i64;
            let base = c
                .image_id
                .as_ref()
                .and_then(|i| image_sizes.get(i))
                .copied()
                .unwrap_or(0);
            c.size_rw = Some(rw);
            c.size_root_fs = Some(rw + base);
        }
        let volumes = self.volume_usage();
        let (build_cache, builder_size) = self.build_cache_usage();
        let mut df = json!({
            "LayersSize": layers_size,
            "Images": images_list,
            "Containers": containers,
            "Volumes": volumes,
            "BuildCache": build_cache,
            "BuilderSize": builder_size,
        });
        if let Some(list) = df["Images"].as_array_mut() {
            list.iter_mut().for_each(crate::wire::image_summary);
        }
        if let Some(list) = df["Containers"].as_array_mut() {
            list.iter_mut().for_each(crate::wire::container_summary);
        }
        Ok(df)
    }

    /// `POST /auth`: checks `username`/`password` against the registry `server` (as
    /// `docker login` names it: `host[:port]`, a URL, or Docker Hub's index URL).
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        server: &str,
    ) -> std::result::Result<(), LoginError> {
        let domain = registry_domain(server);
        let mut credentials = HashMap::new();
        credentials.insert(
            domain.clone(),
            Credential {
                username: username.to_string(),
                password: password.to_string(),
            },
        );
        let client = Client::new(ClientOptions {
            insecure: self.config.insecure_registries.clone(),
            credentials,
            certs_dir: Some(self.config.certs_dir.clone()),
            mirrors: self.config.registry_mirrors.clone(),
            ..Default::default()
        })
        .map_err(|e| EngineError::internal("registry client", e))?;
        match client.check_login(&domain).await {
            Ok(()) => Ok(()),
            Err(e) => Err(login_error(&domain, e)),
        }
    }
}

/// The registry host `docker login` means by `server`.
pub fn registry_domain(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or_default();
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => {
            berth_image::reference::DEFAULT_DOMAIN.to_string()
        }
        h => h.to_string(),
    }
}

/// A refused credential is Docker's 401 `login attempt to <url> failed with status: 401
/// Unauthorized`; anything else is a 500 with the client's message.
fn login_error(domain: &str, e: ClientError) -> LoginError {
    let refused = match &e {
        ClientError::Unauthorized { .. } | ClientError::Token { .. } => true,
        ClientError::Registry(r) => r.status.as_u16() == 401,
        ClientError::Status { status, .. } => status.as_u16() == 401,
        _ => false,
    };
    if !refused {
        return LoginError::Engine(EngineError::Internal(e.to_string()));
    }
    let url = match &e {
        ClientError::Unauthorized { url, .. } | ClientError::Status { url, .. } => url.clone(),
        _ => format!("https://{domain}/v2/"),
    };
    LoginError::Unauthorized(format!(
        "login attempt to {url} failed with status: 401 Unauthorized"
    ))
}
