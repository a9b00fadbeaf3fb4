//! Images as the API shows them, over `berth-image`'s store: finding an image by name, id or id
//! prefix; the list and inspect bodies; import, tag and remove.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use berth_api::models::{ImageConfig, ImageInspect, ImageInspectRootFs, ImageSummary};
use berth_api::query::Filters;
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
    /// Container snapshots being removed in the background (see [`Images::remove_snapshot_later`]).
    pending: Arc<(std::sync::Mutex<usize>, std::sync::Condvar)>,
    /// Held (shared) while a build writes blobs or layers and records them in its lease, and
    /// (exclusive) by [`Images::collect_garbage`]: what a build just wrote is never collected
    /// before its lease holds it.
    pub(crate) gc_lock: Arc<std::sync::RwLock<()>>,
}

fn internal(e: impl Into<crate::error::Source>) -> EngineError {
    EngineError::internal("", e)
}

impl Images {
    /// The manifest, config and layers behind `target`.
    pub(crate) fn load_resolved(&self, target: &Digest, name: Option<String>) -> Result<Resolved> {
        self.load(target, name)
    }

    pub(crate) fn load(&self, target: &Digest, name: Option<String>) -> Result<Resolved> {
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
        self.list_filtered(&Filters::default())
    }

    /// `GET /images/json?filters=`: `dangling`, `reference` (globs as Docker's, on the familiar
    /// name with or without its tag), `label`, `before`, `since`.
    pub fn list_filtered(&self, filters: &Filters) -> Result<Vec<ImageSummary>> {
        for key in filters.0.keys() {
            if !matches!(
                key.as_str(),
                "dangling" | "reference" | "label" | "before" | "since" | "until"
            ) {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid filter '{key}'"
                )));
            }
        }
        for v in filters.get("dangling") {
            if !matches!(v.as_str(), "true" | "false" | "1" | "0") {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid filter 'dangling={v}'"
                )));
            }
        }
        let dangling: Option<bool> = filters
            .get("dangling")
            .first()
            .map(|v| v == "true" || v == "1");
        let created_of =
            |key: &str| -> Result<i64> { Ok(created_secs(&self.resolve(key)?.config)) };
        let before: Vec<i64> = filters
            .get("before")
            .iter()
            .map(|k| created_of(k))
            .collect::<Result<_>>()?;
        let since: Vec<i64> = filters
            .get("since")
            .iter()
            .map(|k| created_of(k))
            .collect::<Result<_>>()?;
        let patterns = filters.get("reference");
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
        let mut out = Vec::new();
        for (res, names) in by_id.into_values() {
            let (mut tags, mut digests) = repo_names(&names);
            let created = created_secs(&res.config);
            let labels = labels(&res.config);
            if let Some(d) = dangling {
                if d != tags.is_empty() {
                    continue;
                }
            }
            if !patterns.is_empty() {
                let keep = |r: &String| patterns.iter().any(|p| reference_matches(p, r));
                tags.retain(keep);
                digests.retain(keep);
                if tags.is_empty() && digests.is_empty() {
                    continue;
                }
            }
            if !filters.labels_match(|k| labels.get(k).map(String::as_str)) {
                continue;
            }
            if !before.iter().all(|b| created < *b) || !since.iter().all(|s| created > *s) {
                continue;
            }
            out.push(ImageSummary {
                id: res.id.to_string(),
                parent_id: parent_of(&res.config),
                repo_tags: tags,
                repo_digests: digests,
                created,
                size: size_of(&res),
                shared_size: -1,
                labels,
                containers: -1,
                ..Default::default()
            });
        }
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
        let (tags, digests) = repo_names(&names);
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

    /// `GET /images/{name}/json` as it goes on the wire: the model with the fields dockerd 20.10
    /// adds (API 1.43 still has `Container`, `ContainerConfig`, `VirtualSize`), see
    /// [`crate::wire`].
    pub fn inspect_json(&self, key: &str) -> Result<Value> {
        let model = self.inspect(key)?;
        let res = self.resolve(key)?;
        let text = |k: &str| res.config[k].as_str().unwrap_or_default().to_string();
        let graph_data = crate::create::chain_top(&res.config)
            .and_then(|top| self.store.snapshots.graph_data(&top).ok())
            .map(|mut data| {
                let upper = data.iter().find(|(k, _)| *k == "UpperDir");
                let merged = upper.map(|(_, p)| p.trim_end_matches("/fs").to_string() + "/merged");
                data.extend(merged.map(|m| ("MergedDir", m)));
                data
            })
            .unwrap_or_default();
        let last_tag_time = self
            .store
            .metadata
            .images()
            .map_err(internal)?
            .into_iter()
            .filter(|i| i.target == res.manifest)
            .map(|i| i.created)
            .max()
            .unwrap_or_else(|| crate::container::NEVER.to_string());
        let v = serde_json::to_value(&model).unwrap_or_default();
        Ok(crate::wire::image_inspect(
            v,
            crate::wire::ImageExtras {
                parent: parent_of(&res.config),
                container: text("container"),
                container_config: res.config["container_config"].clone(),
                docker_version: text("docker_version"),
                graph_data,
                driver: self.store.backend().driver_name().to_string(),
                last_tag_time,
            },
        ))
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
            None if !force && {
                let repos: std::collections::HashSet<String> = names
                    .iter()
                    .filter(|i| is_named(&i.name))
                    .filter_map(|i| i.name.parse::<Reference>().ok().map(|r| r.name()))
                    .collect();
                repos.len() > 1
            } => {
                return Err(EngineError::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    &res.id.hex()[..12]
                )))
            }
            None => names.iter().map(|i| i.name.clone()).collect(),
        };
        // A tag removed and no tag of its repository left: the repository's digest references
        // (`repo@sha256:...`, recorded by pulls) go too, as Docker does.
        let mut to_remove = to_remove;
        if let Some(r) = res.name.as_ref().and_then(|n| n.parse::<Reference>().ok()) {
            if r.digest().is_none() {
                let same_repo = |i: &Image| {
                    is_named(&i.name)
                        && i.name != r.to_string()
                        && i.name
                            .parse::<Reference>()
                            .is_ok_and(|o| o.name() == r.name())
                };
                let tag_left = names.iter().filter(|i| same_repo(i)).any(|i| {
                    i.name
                        .parse::<Reference>()
                        .is_ok_and(|o| o.digest().is_none())
                });
                if !tag_left {
                    to_remove.extend(
                        names
                            .iter()
                            .filter(|i| same_repo(i))
                            .map(|i| i.name.clone()),
                    );
                }
            }
        }
        let mut out = Vec::new();
        let mut removed: Vec<Image> = Vec::new();
        for name in &to_remove {
            let deleted = self.store.metadata.delete_image(name, force);
            if deleted.is_err() {
                // All or nothing: names already removed come back.
                for img in &removed {
                    let _ = self.store.metadata.put_image(img);
                }
            }
            let deleted = deleted.map_err(|e| match e {
                    MetadataError::InUse { container, .. } => EngineError::Conflict(format!(
                        "conflict: unable to remove repository reference \"{key}\" (must force) - container {} is using its referenced image {}",
                        container.get(..12).unwrap_or(&container),
                        &res.id.hex()[..12]
                    )),
                    other => internal(other),
                })?;
            removed.push(deleted);
            if is_named(name) {
                let display = name
                    .parse::<Reference>()
                    .map(|r| r.familiar())
                    .unwrap_or_else(|_| name.clone());
                out.push(("Untagged".to_string(), display));
            }
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
    pub fn new(store: ImageStore) -> Images {
        Images {
            store: Arc::new(store),
            pending: Arc::default(),
            gc_lock: Arc::default(),
        }
    }

    /// Removes snapshot `key` (a removed container's writable layer) on a thread of its own:
    /// the container is gone already, and deleting its files is nobody's wait. A crash before
    /// the end leaves a snapshot that `Engine::open` removes as an orphan.
    pub fn remove_snapshot_later(&self, key: String) {
        let (count, _) = &*self.pending;
        *count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        let store = Arc::clone(&self.store);
        let pending = Arc::clone(&self.pending);
        std::thread::spawn(move || {
            if let Err(e) = store.snapshots.remove(&key) {
                tracing::warn!(snapshot = %key, error = %e, "removing a container's layer");
            }
            let (count, done) = &*pending;
            let mut n = count
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *n = n.saturating_sub(1);
            done.notify_all();
        });
    }

    /// Waits (a bounded time) for the snapshots being removed: a container's layer holds its
    /// image's layers, which garbage collection would otherwise keep for next time.
    pub fn settle_removals(&self) {
        let (count, done) = &*self.pending;
        let guard = count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = done.wait_timeout_while(guard, std::time::Duration::from_secs(30), |n| *n > 0);
    }

    /// Removes the blobs and snapshots nothing needs any more (errors are logged: garbage left
    /// for next time is harmless).
    pub fn collect_garbage(&self) {
        self.settle_removals();
        let _exclusive = self.gc_lock.write();
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

/// Whether a stored name is a reference (an unnamed image is stored under its id,
/// `sha256:<hex>`, which would otherwise parse as the repository `sha256`).
pub(crate) fn is_named(name: &str) -> bool {
    !name.starts_with("sha256:") && name.parse::<Reference>().is_ok()
}

/// `RepoTags` and `RepoDigests` of `names` (familiar forms, sorted).
pub(crate) fn repo_names(names: &[Image]) -> (Vec<String>, Vec<String>) {
    let mut tags = Vec::new();
    let mut digests = Vec::new();
    for img in names {
        if !is_named(&img.name) {
            continue;
        }
        match img.name.parse::<Reference>() {
            Ok(r) if r.digest().is_some() => digests.push(r.familiar()),
            Ok(r) => tags.push(r.familiar()),
            Err(_) => {}
        }
    }
    tags.sort();
    tags.dedup();
    digests.sort();
    digests.dedup();
    (tags, digests)
}

/// Docker's `reference` filter: `pattern` (a glob, as Go's `path.Match`) against the familiar
/// reference, or failing that against its name without tag or digest.
pub fn reference_matches(pattern: &str, familiar: &str) -> bool {
    if path_match(pattern, familiar) {
        return true;
    }
    let name = familiar.split('@').next().unwrap_or(familiar);
    // Without the tag: what precedes the last ':' after the last '/' (a ':' before it is a
    // registry's port).
    let name = match name.rsplit_once(':') {
        Some((before, tag)) if !tag.contains('/') => before,
        _ => name,
    };
    path_match(pattern, name)
}

/// Go's `path.Match`: `*` (any run of characters but `/`), `?` (one character but `/`),
/// `[...]` classes with ranges and `^`, `\\` escapes. A malformed pattern matches nothing
/// (dockerd answers it with an error).
///
/// Go's algorithm, without recursion: the pattern is cut into chunks, each a run of stars and
/// then what follows up to the next star, and each chunk is matched at the first place it
/// fits (the stars never backtrack), so the work is at most the product of the two lengths.
pub fn path_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let mut pattern = pattern.as_slice();
    let mut name = name.as_slice();
    'chunks: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing star takes the rest of the name, unless it holds a '/'.
            return !name.contains(&'/');
        }
        // The last chunk must take the whole name.
        match match_chunk(chunk, name) {
            Ok(Some(after)) if after.is_empty() || !pattern.is_empty() => {
                name = after;
                continue;
            }
            Err(BadPattern) => return false,
            _ => {}
        }
        if star {
            for i in 0..name.len() {
                if name.get(i) == Some(&'/') {
                    break;
                }
                let skipped = name.get(i + 1..).unwrap_or_default();
                match match_chunk(chunk, skipped) {
                    Ok(Some(after)) if after.is_empty() || !pattern.is_empty() => {
                        name = after;
                        continue 'chunks;
                    }
                    Err(BadPattern) => return false,
                    _ => {}
                }
            }
        }
        return false;
    }
    name.is_empty()
}

/// A syntax error in a [`path_match`] pattern.
#[derive(Debug)]
struct BadPattern;

/// Splits off the pattern's first chunk: whether it starts with stars, the chunk up to the
/// next star outside a class, and the rest.
fn scan_chunk(pattern: &[char]) -> (bool, &[char], &[char]) {
    let star = pattern.iter().take_while(|&&c| c == '*').count();
    let pattern = pattern.get(star..).unwrap_or_default();
    let mut in_class = false;
    let mut i = 0;
    while let Some(&c) = pattern.get(i) {
        match c {
            '\\' if i + 1 < pattern.len() => i += 1,
            '[' => in_class = true,
            ']' => in_class = false,
            '*' if !in_class => break,
            _ => {}
        }
        i += 1;
    }
    let (chunk, rest) = pattern.split_at(i.min(pattern.len()));
    (star > 0, chunk, rest)
}

/// Matches `chunk` (no stars) at the start of `s`: what is left of `s` when it matches. Stops at
/// the first mismatch: where Go reads on to report a malformed pattern, the answer is "no
/// match" either way.
fn match_chunk<'a>(
    mut chunk: &[char],
    mut s: &'a [char],
) -> std::result::Result<Option<&'a [char]>, BadPattern> {
    while let Some((&c, after_c)) = chunk.split_first() {
        let Some((&first, rest_of_s)) = s.split_first() else {
            return Ok(None);
        };
        chunk = after_c;
        match c {
            '[' => {
                let negated = chunk.first() == Some(&'^');
                if negated {
                    chunk = chunk.get(1..).unwrap_or_default();
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if ranges > 0 && chunk.first() == Some(&']') {
                        chunk = chunk.get(1..).unwrap_or_default();
                        break;
                    }
                    let (lo, rest) = class_char(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if let Some(('-', rest)) = chunk.split_first().map(|(c, r)| (*c, r)) {
                        (hi, chunk) = class_char(rest)?;
                    }
                    matched |= lo <= first && first <= hi;
                    ranges += 1;
                }
                if matched == negated {
                    return Ok(None);
                }
            }
            '?' => {
                if first == '/' {
                    return Ok(None);
                }
            }
            '\\' => {
                let (&literal, rest) = chunk.split_first().ok_or(BadPattern)?;
                chunk = rest;
                if literal != first {
                    return Ok(None);
                }
            }
            literal => {
                if literal != first {
                    return Ok(None);
                }
            }
        }
        s = rest_of_s;
    }
    Ok(Some(s))
}

/// One character of a class (`\\x` escapes it), and the rest of the chunk, which must go on.
fn class_char(chunk: &[char]) -> std::result::Result<(char, &[char]), BadPattern> {
    let (&c, rest) = chunk.split_first().ok_or(BadPattern)?;
    let (c, rest) = match c {
        '-' | ']' => return Err(BadPattern),
        '\\' => {
            let (&c, rest) = rest.split_first().ok_or(BadPattern)?;
            (c, rest)
        }
        c => (c, rest),
    };
    if rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((c, rest))
}

pub(crate) fn secs(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn created_secs(config: &Value) -> i64 {
    secs(config["created"].as_str().unwrap_or_default())
}

pub(crate) fn size_of(res: &Resolved) -> i64 {
    res.layers.iter().map(|(_, s)| *s as i64).sum()
}

pub(crate) fn labels(config: &Value) -> HashMap<String, String> {
    config["config"]["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The image a commit was made from (its config's `parent`, as dockerd's V1 image field), or "".
pub(crate) fn parent_of(config: &Value) -> String {
    config["parent"].as_str().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filter_globs_like_docker() {
        assert!(reference_matches("bb", "bb:local"));
        assert!(reference_matches("bb*", "bb:local"));
        assert!(reference_matches("bb:*", "bb:local"));
        assert!(reference_matches("b?:l[a-z]cal", "bb:local"));
        assert!(!reference_matches("bb:o*", "bb:local"));
        assert!(!reference_matches("b*", "team/bb:1"));
        assert!(reference_matches("*/bb", "team/bb:1"));
        assert!(reference_matches(
            "localhost:5000/bb",
            "localhost:5000/bb@sha256:0000"
        ));
        assert!(!reference_matches("[^b]b", "bb:local"));
    }

    #[test]
    fn globs_follow_go_path_match() {
        // From Go's path/match_test.go.
        for (pattern, name, want) in [
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("a[^a][^a][^a]b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "x", true),
            ("[\\-x]", "a", false),
            ("[]a]", "]", false),
            ("[-]", "-", false),
            ("[x-]", "x", false),
            ("[-x]", "x", false),
            ("\\", "a", false),
            ("[a-b-c]", "a", false),
            ("[", "a", false),
            ("[^", "a", false),
            ("[^bc", "a", false),
            ("a[", "a", false),
            ("*x", "xxx", true),
        ] {
            assert_eq!(path_match(pattern, name), want, "{pattern:?} {name:?}");
        }
    }

    #[test]
    fn hostile_globs_end_quickly() {
        // Once exponential (a recursion per star) and as deep as the pattern was long.
        let stars = "*".repeat(200_000);
        assert!(path_match(&stars, "bb:local"));
        let pattern = "*a".repeat(5_000) + "c";
        let start = std::time::Instant::now();
        assert!(!path_match(&pattern, &"a".repeat(300)));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        let long = "[".repeat(100_000);
        assert!(!path_match(&long, "bb"));
    }

    #[test]
    fn unnamed_images_are_not_references() {
        assert!(!is_named(&format!("sha256:{}", "a".repeat(64))));
        assert!(is_named("docker.io/library/bb:local"));
    }
}
