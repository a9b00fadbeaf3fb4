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
