//! Unpacking an image: each layer of its manifest applied into a snapshot on top of the one
//! below, committed under its chain id, and checked against the diff_id its config names.
//! Layers already unpacked (same chain id) are skipped, so images share their lower layers.

use sha2::{Digest as _, Sha256};

use crate::content::ContentError;
use crate::digest::Digest;
use crate::import::ImageStore;
use crate::layer::LayerError;
use crate::manifest::{self, Manifest, ManifestError};
use crate::snapshot::SnapshotError;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("{0} is an index, not an image manifest: pick a platform first")]
    Index(Digest),
    #[error("image config {config}: {message}")]
    Config { config: String, message: String },
    #[error("layer {layer}: its content has diff_id {got}, but the image config says {expected}")]
    DiffId {
        layer: String,
        expected: String,
        got: Digest,
    },
}

/// The chain id of a layer on top of the chain `parent` (OCI image spec, config.md).
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => {
            let hex = hex::encode(Sha256::digest(format!("{p} {diff_id}").as_bytes()));
            format!("sha256:{hex}")
                .parse()
                .unwrap_or_else(|_| diff_id.clone())
        }
    }
}

/// Unpacks the image whose manifest is `manifest_digest`; returns the chain id of its top
/// layer (the snapshot a container's rootfs is prepared on), or None for an image without
/// layers.
pub fn unpack(store: &ImageStore, manifest_digest: &Digest) -> Result<Option<Digest>, UnpackError> {
    let bytes = store.content.read_to_vec(manifest_digest)?;
    let Manifest::Image(m) = manifest::parse(None, &bytes)? else {
        return Err(UnpackError::Index(manifest_digest.clone()));
    };
    let config_digest = m.config().digest().to_string();
    let bad_config = |message: &str| UnpackError::Config {
        config: config_digest.clone(),
        message: message.to_string(),
    };
    let config_id: Digest = config_digest
        .parse()
        .map_err(|_| bad_config("invalid digest"))?;
    let config: serde_json::Value = serde_json::from_slice(&store.content.read_to_vec(&config_id)?)
        .map_err(|e| bad_config(&e.to_string()))?;
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or_else(|| bad_config("no rootfs.diff_ids"))?
        .iter()
        .map(|d| d.as_str().unwrap_or_default().to_string())
        .collect();
    if diff_ids.len() != m.layers().len() {
        return Err(bad_config(&format!(
            "{} diff_ids for {} layers",
            diff_ids.len(),
            m.layers().len()
        )));
    }
    let mut parent: Option<Digest> = None;
    for (layer, expected) in m.layers().iter().zip(diff_ids) {
        let diff_id: Digest = expected
            .parse()
            .map_err(|_| bad_config(&format!("invalid diff_id {expected:?}")))?;
        let chain = chain_id(parent.as_ref(), &diff_id);
        if store.snapshots.stat(&chain.to_string()).is_err() {
            let blob: Digest = layer
                .digest()
                .to_string()
                .parse()
                .map_err(|_| bad_config("invalid layer digest"))?;
            let key = format!("unpack-{}-{}", std::process::id(), chain.hex());
            let parent_key = parent.as_ref().map(ToString::to_string);
            store.snapshots.prepare(&key, parent_key.as_deref())?;
            let applied = (|| {
                let file = store.content.open_blob(&blob)?;
                let upper = store.snapshots.upper_dir(&key)?;
                Ok::<_, UnpackError>(crate::layer::apply_with(file, &upper, store.whiteouts())?)
            })();
            match applied {
                Ok(a) if a.diff_id == diff_id => {}
                Ok(a) => {
                    let _ = store.snapshots.remove(&key);
                    return Err(UnpackError::DiffId {
                        layer: blob.to_string(),
                        expected,
                        got: a.diff_id,
                    });
                }
                Err(e) => {
                    let _ = store.snapshots.remove(&key);
                    return Err(e);
                }
            }
            store.snapshots.commit(&chain.to_string(), &key)?;
        }
        parent = Some(chain);
    }
    Ok(parent)
}
