//! `commit`: a container's changes (the upper directory of its overlay snapshot) become a new
//! layer on top of its image: a new image whose config and manifest extend the parent's.

use std::fs::File;
use std::io;
use std::path::Path;

use serde_json::{json, Value};

use crate::digest::Digest;
use crate::import::ImageStore;
use crate::layer;
use crate::layout::LayoutError;
use crate::manifest::{self, Manifest};
use crate::metadata::Image;
use crate::reference::Reference;
use crate::unpack::{self, UnpackError};

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Store(#[from] LayoutError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error(transparent)]
    Layer(#[from] layer::LayerError),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("image {0} has no usable config")]
    Config(String),
}

fn store_err(e: impl Into<LayoutError>) -> CommitError {
    CommitError::Store(e.into())
}

/// What the new image says about itself.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub comment: String,
    pub author: String,
    /// Image config fields to set (`Cmd`, `Env`...), as `--change` gives them.
    pub config: serde_json::Map<String, Value>,
    /// Top-level fields of the new config, as dockerd's V1 image has them for a commit
    /// (`container`, `container_config`).
    pub top: serde_json::Map<String, Value>,
    /// The owners of `upper`'s files back to the container's ids (a container in a remapped
    /// user namespace wrote them with host ids).
    pub ids: Option<layer::IdMap>,
}

/// Writes the changes in `upper` (an overlay upper dir) as a layer on top of the image whose
/// manifest is `parent`, names the result `name` if given, and returns its id (config digest).
pub fn commit(
    store: &ImageStore,
    parent: &Digest,
    upper: &Path,
    name: Option<&Reference>,
    opts: &CommitOptions,
) -> Result<Digest, CommitError> {
    let manifest_bytes = store.content.read_to_vec(parent).map_err(store_err)?;
    let Manifest::Image(parent_manifest) =
        manifest::parse(None, &manifest_bytes).map_err(store_err)?
    else {
        return Err(CommitError::Config(parent.to_string()));
    };
    let parent_config_digest: Digest = parent_manifest
        .config()
        .digest()
        .to_string()
        .parse()
        .map_err(|_| CommitError::Config(parent.to_string()))?;
    let mut config: Value = serde_json::from_slice(
        &store
            .content
            .read_to_vec(&parent_config_digest)
            .map_err(store_err)?,
    )
    .map_err(|_| CommitError::Config(parent.to_string()))?;

    // The layer: the diff, uncompressed, so its blob digest is its diff_id (kept even when
    // empty: `docker commit` always adds a layer).
    let (diff_id, size) = write_layer(store, upper, true, opts.ids.as_ref())?
        .ok_or_else(|| CommitError::Config(parent.to_string()))?;

    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    config["created"] = json!(created);
    if !opts.author.is_empty() {
        config["author"] = json!(opts.author);
    }
    // Docker's image config keeps the commit message at the top too (`docker inspect
    // --format {{.Comment}}`).
    if !opts.comment.is_empty() {
        config["comment"] = json!(opts.comment);
    } else if let Some(o) = config.as_object_mut() {
        o.remove("comment");
    }
    if let Some(diff_ids) = config["rootfs"]["diff_ids"].as_array_mut() {
        diff_ids.push(json!(diff_id.to_string()));
    } else {
        return Err(CommitError::Config(parent.to_string()));
    }
    let mut history = config["history"].as_array().cloned().unwrap_or_default();
    history
        .push(json!({"created": created, "created_by": "berth commit", "comment": opts.comment}));
    config["history"] = Value::Array(history);
    if !config["config"].is_object() {
        config["config"] = json!({});
    }
    for (k, v) in &opts.config {
        config["config"][k] = v.clone();
    }
    // The image it was made from, as dockerd's `Parent` (a V1 image field docker load reads).
    config["parent"] = json!(parent_config_digest.to_string());
    for (k, v) in &opts.top {
        config[k] = v.clone();
    }
    let config_bytes = config.to_string().into_bytes();
    let config_digest = store.content.write_blob(&config_bytes).map_err(store_err)?;

    let mut layers: Vec<Value> = parent_manifest
        .layers()
        .iter()
        .map(|l| json!({"mediaType": l.media_type().to_string(), "size": l.size(), "digest": l.digest().to_string()}))
        .collect();
    layers.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": size, "digest": diff_id.to_string()}));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config_bytes.len(), "digest": config_digest.to_string()},
        "layers": layers,
    });
    let new_manifest = manifest.to_string().into_bytes();
    let manifest_digest = store.content.write_blob(&new_manifest).map_err(store_err)?;
    // The new layer's snapshot, from the blob, so it is exactly what a pull of this image makes.
    unpack::unpack(store, &manifest_digest)?;
    let image_name = name
        .map(ToString::to_string)
        .unwrap_or_else(|| config_digest.to_string());
    store
        .metadata
        .put_image(&Image {
            name: image_name,
            target: manifest_digest,
            media_type: manifest::OCI_MANIFEST.to_string(),
            size: new_manifest.len() as u64,
            created,
        })
        .map_err(store_err)?;
    Ok(config_digest)
}

/// The size of a layer tar with no entry (its end-of-archive blocks only).
const EMPTY_TAR: u64 = 1024;

/// Writes the changes in `upper` (an overlay upper dir) as an uncompressed layer blob; returns
/// its digest (its diff_id too) and size, or `None` when nothing changed (Docker records such a
/// step as an empty layer).
pub fn store_layer(store: &ImageStore, upper: &Path) -> Result<Option<(Digest, u64)>, CommitError> {
    write_layer(store, upper, false, None)
}

/// [`store_layer`], the owners written through `ids` (a remapped container's layer).
pub fn store_layer_mapped(
    store: &ImageStore,
    upper: &Path,
    ids: Option<&layer::IdMap>,
) -> Result<Option<(Digest, u64)>, CommitError> {
    write_layer(store, upper, false, ids)
}

/// [`store_layer`], keeping an empty layer too when `keep_empty`.
fn write_layer(
    store: &ImageStore,
    upper: &Path,
    keep_empty: bool,
    ids: Option<&layer::IdMap>,
) -> Result<Option<(Digest, u64)>, CommitError> {
    let tmp_path = store.tmp_dir().join(format!(
        "layer-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let io_err = |what: &'static str| {
        move |source| CommitError::Io {
            what: what.to_string(),
            source,
        }
    };
    let result = (|| {
        let tmp = File::create(&tmp_path).map_err(io_err("creating the layer file"))?;
        let diff_id = layer::diff_upper_mapped(upper, tmp, ids)?;
        let size = std::fs::metadata(&tmp_path)
            .map_err(io_err("reading the layer file"))?
            .len();
        if size <= EMPTY_TAR && !keep_empty {
            return Ok(None);
        }
        if !store.content.contains(&diff_id) {
            let mut writer = store
                .content
                .writer(&format!("layer-{diff_id}"), &diff_id, Some(size))
                .map_err(store_err)?;
            let mut file = File::open(&tmp_path).map_err(io_err("reading the layer file"))?;
            io::copy(&mut file, &mut writer).map_err(io_err("storing the layer"))?;
            writer.commit().map_err(store_err)?;
        }
        Ok(Some((diff_id, size)))
    })();
    let _ = std::fs::remove_file(&tmp_path);
    result
}

/// One layer of a manifest: digest, size, media type.
pub type LayerDescriptor = (Digest, u64, String);

/// Writes `config` and an OCI manifest naming it and `layers`; returns the manifest's digest
/// and size. The layers' snapshots are made by the caller (`unpack::unpack`).
pub fn write_image(
    store: &ImageStore,
    config: &Value,
    layers: &[LayerDescriptor],
) -> Result<(Digest, u64), CommitError> {
    let config_bytes = serde_json::to_vec(config).map_err(|e| CommitError::Io {
        what: "encoding the image config".into(),
        source: io::Error::other(e),
    })?;
    let config_digest = store.content.write_blob(&config_bytes).map_err(store_err)?;
    let layers: Vec<Value> = layers
        .iter()
        .map(|(d, size, media)| json!({"mediaType": media, "size": size, "digest": d.to_string()}))
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config_bytes.len(), "digest": config_digest.to_string()},
        "layers": layers,
    });
    let bytes = manifest.to_string().into_bytes();
    let digest = store.content.write_blob(&bytes).map_err(store_err)?;
    Ok((digest, bytes.len() as u64))
}

/// The layers of the image whose manifest is `manifest`.
pub fn manifest_layers(
    store: &ImageStore,
    manifest_digest: &Digest,
) -> Result<Vec<LayerDescriptor>, CommitError> {
    let bytes = store
        .content
        .read_to_vec(manifest_digest)
        .map_err(store_err)?;
    let Manifest::Image(m) = manifest::parse(None, &bytes).map_err(store_err)? else {
        return Err(CommitError::Config(manifest_digest.to_string()));
    };
    m.layers()
        .iter()
        .map(|l| {
            let d: Digest = l
                .digest()
                .to_string()
                .parse()
                .map_err(|_| CommitError::Config(manifest_digest.to_string()))?;
            Ok((d, l.size(), l.media_type().to_string()))
        })
        .collect()
}
