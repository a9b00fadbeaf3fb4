//! The build cache as `system df` shows it and `builder prune` (`POST /build/prune`) and the
//! daemon's `builder.gc` reclaim it: one entry per cache record, its size that of the layer its
//! step made; an entry whose layer a named image also has is shared (not reclaimable).

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use berth_image::digest::Digest;
use serde_json::{json, Value};

use crate::error::Result;
use crate::Engine;

/// One record of the build cache.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    /// The step's cache key.
    pub id: String,
    pub manifest: Digest,
    /// The layer the step made (none for a metadata step), and its size.
    pub layer: Option<(Digest, u64)>,
    /// The step's history text.
    pub description: String,
    pub created: SystemTime,
    pub last_used: SystemTime,
    /// A named image has the step's layer too.
    pub shared: bool,
}

/// What to prune.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Every entry, not only those no image shares.
    pub all: bool,
    /// Keep the most recently used entries up to this many bytes (0: keep none).
    pub keep_storage: u64,
    /// Only entries unused for at least this long.
    pub until: Option<Duration>,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Engine {
    /// The layers of the named images.
    fn named_layers(&self) -> HashSet<Digest> {
        self.images
            .entries()
            .map(|entries| {
                entries
                    .iter()
                    .flat_map(|e| e.res.layers.iter().map(|(d, _)| d.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every record of the build cache whose image is still here.
    pub fn build_cache_entries(&self) -> Vec<CacheEntry> {
        let dir = self.build_dir().join("cache");
        let named = self.named_layers();
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if id.len() != 64 {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            let Some(manifest) = std::fs::read_to_string(e.path())
                .ok()
                .and_then(|t| t.trim().parse::<Digest>().ok())
            else {
                continue;
            };
            let Ok(r) = self.images.load_resolved(&manifest, None) else {
                continue;
            };
            let history = r.config["history"].as_array().cloned().unwrap_or_default();
            let last = history.last().cloned().unwrap_or(Value::Null);
            let made_layer = !last["empty_layer"].as_bool().unwrap_or(false);
            let layer = r.layers.last().filter(|_| made_layer).cloned();
            let shared = layer.as_ref().is_some_and(|(d, _)| named.contains(d));
            out.push(CacheEntry {
                id,
                manifest,
                layer,
                description: last["created_by"].as_str().unwrap_or("").to_string(),
                created: meta
                    .created()
                    .or_else(|_| meta.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                shared,
            });
        }
        out.sort_by_key(|e| e.last_used);
        out
    }

    /// The size of the cache mounts (`RUN --mount=type=cache`).
    fn cache_mounts_size(&self) -> u64 {
        crate::volumes::dir_size(&self.build_dir().join("cache-mounts"))
    }

    /// `system df`'s `BuildCache` list and `BuilderSize`.
    pub fn build_cache_usage(&self) -> (Vec<Value>, u64) {
        let mut seen = HashSet::new();
        let mut total = 0;
        let mut list: Vec<Value> = self
            .build_cache_entries()
            .into_iter()
            .map(|e| {
                let size = match &e.layer {
                    Some((d, s)) if seen.insert(d.clone()) => *s,
                    _ => 0,
                };
                total += size;
                json!({
                    "ID": e.id,
                    "Parent": "",
                    "Type": "regular",
                    "Description": e.description,
                    "InUse": false,
                    "Shared": e.shared,
                    "Size": size,
                    "CreatedAt": rfc3339(e.created),
                    "LastUsedAt": rfc3339(e.last_used),
                    "UsageCount": 1,
                })
            })
            .collect();
        let mounts = self.cache_mounts_size();
        if mounts > 0 {
            total += mounts;
            list.push(json!({
                "ID": "cache-mounts",
                "Parent": "",
                "Type": "exec.cachemount",
                "Description": "cached mounts of RUN --mount=type=cache",
                "InUse": false,
                "Shared": false,
                "Size": mounts,
                "CreatedAt": rfc3339(SystemTime::now()),
                "LastUsedAt": rfc3339(SystemTime::now()),
                "UsageCount": 1,
            }));
        }
        (list, total)
    }

    /// `POST /build/prune`: removes build cache records (see [`PruneOptions`]), the cache
    /// mounts, and then what no image or record holds any more. Returns the ids removed and
    /// the bytes reclaimed.
    pub fn prune_build_cache(&self, o: &PruneOptions) -> Result<(Vec<String>, u64)> {
        let entries = self.build_cache_entries();
        let now = SystemTime::now();
        let size_of = |e: &CacheEntry| e.layer.as_ref().map_or(0, |(_, s)| *s);
        let mut remaining: u64 = entries.iter().map(size_of).sum();
        let mut removed = Vec::new();
        let mut reclaimed = 0;
        // Oldest first: with keep-storage, the most recently used stay.
        for e in &entries {
            if o.keep_storage > 0 && remaining <= o.keep_storage {
                break;
            }
            let old_enough = o
                .until
                .is_none_or(|u| now.duration_since(e.last_used).unwrap_or_default() >= u);
            if (!o.all && e.shared) || !old_enough {
                continue;
            }
            if std::fs::remove_file(self.build_dir().join("cache").join(&e.id)).is_ok() {
                remaining -= size_of(e);
                if !e.shared {
                    reclaimed += size_of(e);
                }
                removed.push(e.id.clone());
            }
        }
        if o.keep_storage == 0 || remaining > o.keep_storage {
            let mounts = self.build_dir().join("cache-mounts");
            reclaimed += self.cache_mounts_size();
            let _ = std::fs::remove_dir_all(&mounts);
        }
        self.rebuild_cache_lease();
        self.images.collect_garbage();
        Ok((removed, reclaimed))
    }
}
