//! The build cache: one file per step key (`<data-root>/build/cache/<key>`) naming the
//! manifest of the image the step made, and a lease (`build-cache`) holding those images'
//! blobs and layers. A record whose image is gone is a miss.

use std::path::{Path, PathBuf};

use berth_build::solver::Image;
use berth_image::digest::Digest;
use berth_image::metadata::Lease;

use crate::Engine;

/// The lease that keeps the cached images.
pub const LEASE: &str = "build-cache";

fn record_path(dir: &Path, key: &str) -> Option<PathBuf> {
    // Keys are hex digests; anything else is not a key of ours.
    (key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| dir.join("cache").join(key))
}

impl Engine {
    /// The image a step with `key` made, if its record and the image are still here.
    pub(crate) fn cache_get(&self, key: &str) -> Option<Image> {
        let path = record_path(&self.build_dir(), key)?;
        let text = std::fs::read_to_string(&path).ok()?;
        let manifest: Digest = text.trim().parse().ok()?;
        let r = self.images.load_resolved(&manifest, None).ok()?;
        // The record's time says when it was last used (`builder prune` keeps the newest).
        if let Ok(f) = std::fs::File::options().write(true).open(&path) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
        Some(Image {
            id: r.id.to_string(),
            handle: r.manifest.to_string(),
            config: r.config,
        })
    }

    /// Records that the step with `key` made `image`, and holds the image.
    pub(crate) fn cache_put(&self, key: &str, image: &Image) {
        let (Some(path), Ok(manifest)) = (
            record_path(&self.build_dir(), key),
            image.handle.parse::<Digest>(),
        ) else {
            return;
        };
        let store = &self.images.store;
        let chains = berth_image::gc::image_chain_ids(&store.content, &manifest);
        let mut lease = store
            .metadata
            .live_leases(0)
            .ok()
            .and_then(|l| l.into_iter().find(|l| l.id == LEASE))
            .unwrap_or(Lease {
                id: LEASE.to_string(),
                expires: u64::MAX,
                blobs: Vec::new(),
                snapshots: Vec::new(),
            });
        if !lease.blobs.contains(&manifest) {
            lease.blobs.push(manifest.clone());
        }
        for c in chains.into_iter().map(|c| c.to_string()) {
            if !lease.snapshots.contains(&c) {
                lease.snapshots.push(c);
            }
        }
        if let Err(e) = store.metadata.put_lease(&lease) {
            tracing::warn!(error = %e, "recording the build cache's lease");
            return;
        }
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, manifest.to_string())?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            tracing::warn!(error = %e, "recording a build cache entry");
        }
    }
}

impl Engine {
    /// Makes the cache's lease hold exactly the images of the records left (after a prune).
    pub(crate) fn rebuild_cache_lease(&self) {
        let store = &self.images.store;
        let mut lease = Lease {
            id: LEASE.to_string(),
            expires: u64::MAX,
            blobs: Vec::new(),
            snapshots: Vec::new(),
        };
        for e in self.build_cache_entries() {
            let chains = berth_image::gc::image_chain_ids(&store.content, &e.manifest);
            lease
                .snapshots
                .extend(chains.into_iter().map(|c| c.to_string()));
            lease.blobs.push(e.manifest);
        }
        lease.snapshots.sort();
        lease.snapshots.dedup();
        let result = if lease.blobs.is_empty() {
            store.metadata.remove_lease(LEASE)
        } else {
            store.metadata.put_lease(&lease)
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "recording the build cache's lease");
        }
    }
}
