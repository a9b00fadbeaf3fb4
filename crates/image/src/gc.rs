//! Garbage collection of the content store: a blob stays while something reaches it from a
//! root (a named image's manifest or index, or a live lease); everything else is removed.
//! Manifests and indexes are followed to their configs, layers and per-platform manifests.

use std::collections::HashSet;

use crate::content::{ContentError, Store};
use crate::digest::Digest;
use crate::manifest::{self, Manifest};
use crate::metadata::{Metadata, MetadataError};

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
}

/// What a collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collected {
    pub blobs: Vec<Digest>,
}

/// Every blob reachable from `roots` through manifests and indexes present in `store`.
pub fn reachable(store: &Store, roots: impl IntoIterator<Item = Digest>) -> HashSet<Digest> {
    let mut seen = HashSet::new();
    let mut todo: Vec<Digest> = roots.into_iter().collect();
    while let Some(d) = todo.pop() {
        if !seen.insert(d.clone()) {
            continue;
        }
        // Only small JSON documents are worth parsing; layers are never manifests.
        let is_small = store.info(&d).is_ok_and(|i| i.size < 4 << 20);
        let Some(bytes) = is_small.then(|| store.read_to_vec(&d).ok()).flatten() else {
            continue;
        };
        let children: Vec<String> = match manifest::parse(None, &bytes) {
            Ok(Manifest::Image(m)) => std::iter::once(m.config().digest().to_string())
                .chain(m.layers().iter().map(|l| l.digest().to_string()))
                .collect(),
            Ok(Manifest::Index(i)) => i
                .manifests()
                .iter()
                .map(|m| m.digest().to_string())
                .collect(),
            Err(_) => Vec::new(),
        };
        todo.extend(children.iter().filter_map(|c| c.parse().ok()));
    }
    seen
}

/// Removes the blobs no image name and no live lease reaches. `now` is seconds since the epoch.
pub fn collect(store: &Store, meta: &Metadata, now: u64) -> Result<Collected, GcError> {
    let mut roots: Vec<Digest> = meta.images()?.into_iter().map(|i| i.target).collect();
    for lease in meta.live_leases(now)? {
        roots.extend(lease.blobs);
    }
    let keep = reachable(store, roots);
    let mut removed = Vec::new();
    for blob in store.list()? {
        if !keep.contains(&blob) {
            store.delete(&blob)?;
            removed.push(blob);
        }
    }
    Ok(Collected { blobs: removed })
}

/// The chain ids of every layer of the image whose manifest is `manifest` (without unpacking).
pub fn image_chain_ids(store: &Store, manifest: &Digest) -> Vec<Digest> {
    let Some(Manifest::Image(m)) = store
        .read_to_vec(manifest)
        .ok()
        .and_then(|b| manifest::parse(None, &b).ok())
    else {
        return Vec::new();
    };
    let config: Option<serde_json::Value> = m
        .config()
        .digest()
        .to_string()
        .parse::<Digest>()
        .ok()
        .and_then(|d| store.read_to_vec(&d).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    let mut chains = Vec::new();
    let mut parent: Option<Digest> = None;
    let diff_ids = config
        .as_ref()
        .and_then(|c| c["rootfs"]["diff_ids"].as_array().cloned())
        .unwrap_or_default();
    for diff_id in diff_ids
        .iter()
        .filter_map(|d| d.as_str()?.parse::<Digest>().ok())
    {
        let chain = crate::unpack::chain_id(parent.as_ref(), &diff_id);
        chains.push(chain.clone());
        parent = Some(chain);
    }
    chains
}

/// Removes committed snapshots that no named image, no live lease and no other snapshot
/// (an active container's, a view) needs. Returns the keys removed. Names and leases that
/// cannot be read (the metadata store failing) stop it before it removes anything: read as
/// "none", they would doom every layer.
pub fn collect_snapshots(
    store: &crate::import::ImageStore,
    now: u64,
) -> Result<Vec<String>, GcError> {
    use crate::snapshot::Kind;
    let mut keep: HashSet<String> = HashSet::new();
    for image in store.metadata.images()? {
        let mut roots = vec![image.target.clone()];
        // An index keeps the chains of the platform images it lists.
        if let Ok(bytes) = store.content.read_to_vec(&image.target) {
            if let Ok(Manifest::Index(i)) = manifest::parse(None, &bytes) {
                roots.extend(
                    i.manifests()
                        .iter()
                        .filter_map(|m| m.digest().to_string().parse().ok()),
                );
            }
        }
        for root in roots {
            keep.extend(
                image_chain_ids(&store.content, &root)
                    .into_iter()
                    .map(|c| c.to_string()),
            );
        }
    }
    for lease in store.metadata.live_leases(now)? {
        keep.extend(lease.snapshots);
    }
    let infos = store.snapshots.list()?;
    // What is not committed belongs to someone (a container, a view): it and its parents stay.
    let by_key: std::collections::HashMap<&str, &crate::snapshot::Info> =
        infos.iter().map(|i| (i.key.as_str(), i)).collect();
    for info in infos.iter().filter(|i| i.kind != Kind::Committed) {
        let mut parent = info.parent.as_deref();
        while let Some(p) = parent {
            keep.insert(p.to_string());
            parent = by_key.get(p).and_then(|i| i.parent.as_deref());
        }
    }
    let mut removed = Vec::new();
    // Children before parents: repeat until nothing more can go.
    loop {
        let infos = store.snapshots.list()?;
        let parents: HashSet<&str> = infos.iter().filter_map(|i| i.parent.as_deref()).collect();
        let doomed: Vec<String> = infos
            .iter()
            .filter(|i| {
                i.kind == Kind::Committed
                    && !keep.contains(&i.key)
                    && !parents.contains(i.key.as_str())
            })
            .map(|i| i.key.clone())
            .collect();
        if doomed.is_empty() {
            return Ok(removed);
        }
        for key in doomed {
            store.snapshots.remove(&key)?;
            removed.push(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{Image, Lease};

    #[test]
    fn unreferenced_blobs_go_and_reachable_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("content")).unwrap();
        let meta = Metadata::open(&dir.path().join("meta.redb")).unwrap();
        let config = store
            .write_blob(b"{\"architecture\":\"amd64\",\"os\":\"linux\"}")
            .unwrap();
        let layer = store.write_blob(b"layer bytes").unwrap();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":1,"digest":"{config}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":1,"digest":"{layer}"}}]}}"#,
            crate::manifest::OCI_MANIFEST
        );
        let manifest = store.write_blob(manifest.as_bytes()).unwrap();
        let orphan = store.write_blob(b"nobody's").unwrap();
        let leased = store.write_blob(b"in flight").unwrap();
        meta.put_image(&Image {
            name: "docker.io/library/a:latest".into(),
            target: manifest.clone(),
            media_type: crate::manifest::OCI_MANIFEST.into(),
            size: 1,
            created: String::new(),
        })
        .unwrap();
        meta.put_lease(&Lease {
            id: "pull".into(),
            expires: 1000,
            blobs: vec![leased.clone()],
            snapshots: vec![],
        })
        .unwrap();
        let collected = collect(&store, &meta, 10).unwrap();
        assert_eq!(collected.blobs, vec![orphan.clone()]);
        for kept in [&config, &layer, &manifest, &leased] {
            assert!(store.contains(kept), "{kept} removed");
        }
        // Once the lease has expired and the name is gone, everything goes.
        meta.delete_image("docker.io/library/a:latest", false)
            .unwrap();
        let collected = collect(&store, &meta, 2000).unwrap();
        assert_eq!(collected.blobs.len(), 4);
        assert!(store.list().unwrap().is_empty());
    }
}
