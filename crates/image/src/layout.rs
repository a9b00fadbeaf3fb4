//! OCI image layouts (image-layout.md): `oci-layout`, `index.json` and `blobs/sha256/<hex>`,
//! written from the store (`save`) and read into it (`load`), every blob verified on the way in.
//! Names travel in the annotations Docker and containerd use: `io.containerd.image.name` (the
//! full reference) and `org.opencontainers.image.ref.name` (the tag).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;

use serde_json::{json, Value};

use crate::content::ContentError;
use crate::digest::Digest;
use crate::gc;
use crate::import::ImageStore;
use crate::manifest::{self, Manifest, Platform};
use crate::metadata::{Image, MetadataError};
use crate::reference::Reference;
use crate::unpack::{self, UnpackError};

const LAYOUT_FILE: &str = "oci-layout";
const NAME_ANNOTATION: &str = "io.containerd.image.name";
const REF_ANNOTATION: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: io::Error,
    },
    #[error("{path} is not an OCI image layout: {message}")]
    Invalid { path: String, message: String },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LayoutError + 'a {
    move |source| LayoutError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// The most `load` reads whole of a file (`oci-layout`, `index.json`, Docker's `manifest.json`
/// and configs); blobs are streamed.
pub(crate) const MAX_JSON: u64 = 16 << 20;
/// How deep indexes may nest (an index naming an index...) before `load` gives up.
const MAX_NESTING: usize = 8;

/// Writes the images `names` (with every blob they reach) as an OCI layout in `dir`.
pub fn save(store: &ImageStore, names: &[Reference], dir: &Path) -> Result<(), LayoutError> {
    let blobs_dir = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs_dir).map_err(io_err("creating", &blobs_dir))?;
    let mut manifests = Vec::new();
    let mut roots = BTreeSet::new();
    for name in names {
        let image = store.metadata.image(&name.to_string())?;
        manifests.push(json!({
            "mediaType": image.media_type,
            "digest": image.target.to_string(),
            "size": image.size,
            "annotations": {
                NAME_ANNOTATION: name.to_string(),
                REF_ANNOTATION: name.tag().unwrap_or("latest"),
            },
        }));
        roots.insert(image.target);
    }
    for digest in gc::reachable(&store.content, roots) {
        let target = blobs_dir.join(digest.hex());
        if !target.exists() {
            fs::copy(store.content.path(&digest), &target).map_err(io_err("writing", &target))?;
        }
    }
    let write = |name: &str, value: Value| {
        let path = dir.join(name);
        fs::write(&path, value.to_string()).map_err(io_err("writing", &path))
    };
    write(LAYOUT_FILE, json!({"imageLayoutVersion": "1.0.0"}))?;
    write(
        "index.json",
        json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": manifests}),
    )
}

/// Loads every image of the layout in `dir`: blobs are copied in and verified, images for
/// `platform` unpacked, and names set last. Returns the names (or ids, for unnamed images).
pub fn load(
    store: &ImageStore,
    dir: &Path,
    platform: &Platform,
) -> Result<Vec<String>, LayoutError> {
    let invalid = |message: String| LayoutError::Invalid {
        path: dir.display().to_string(),
        message,
    };
    let layout: Value = crate::inside::read_file(dir, LAYOUT_FILE, MAX_JSON)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid(format!("missing or unreadable {LAYOUT_FILE}")))?;
    if layout["imageLayoutVersion"] != "1.0.0" {
        return Err(invalid(format!(
            "unsupported layout version {}",
            layout["imageLayoutVersion"]
        )));
    }
    let index_path = dir.join("index.json");
    let index_bytes = crate::inside::read_file(dir, "index.json", MAX_JSON)
        .map_err(io_err("reading", &index_path))?;
    let index: Value =
        serde_json::from_slice(&index_bytes).map_err(|e| invalid(format!("index.json: {e}")))?;
    let entries = index["manifests"]
        .as_array()
        .ok_or_else(|| invalid("index.json has no manifests".to_string()))?;
    let mut loaded = Vec::new();
    let mut names = Vec::new();
    for entry in entries {
        let digest: Digest = entry["digest"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| invalid(format!("bad manifest descriptor {entry}")))?;
        let media_type = entry["mediaType"]
            .as_str()
            .unwrap_or(manifest::OCI_MANIFEST)
            .to_string();
        // Everything it reaches, verified into the store, before anything is named.
        let image_manifest = copy_tree(store, dir, &digest, platform, 0)?;
        unpack::unpack(store, &image_manifest)?;
        let annotations = &entry["annotations"];
        let name = annotations[NAME_ANNOTATION]
            .as_str()
            .and_then(|n| n.parse::<Reference>().ok())
            .map(|r| r.to_string());
        let size = entry["size"].as_u64().unwrap_or_default();
        names.push((name, digest, media_type, size));
    }
    for (name, digest, media_type, size) in names {
        let shown = name.clone().unwrap_or_else(|| digest.to_string());
        store.metadata.put_image(&Image {
            name: shown.clone(),
            target: digest,
            media_type,
            size,
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        })?;
        loaded.push(shown);
    }
    Ok(loaded)
}

/// Copies `root` and what it reaches from the layout into the store; for an index, only the
/// manifest of `platform` is followed, through at most [`MAX_NESTING`] indexes. Returns the
/// image manifest's digest.
fn copy_tree(
    store: &ImageStore,
    dir: &Path,
    root: &Digest,
    platform: &Platform,
    depth: usize,
) -> Result<Digest, LayoutError> {
    let bytes = copy_blob(store, dir, root)?;
    match manifest::parse(None, &bytes)? {
        Manifest::Index(_) if depth >= MAX_NESTING => Err(LayoutError::Invalid {
            path: dir.display().to_string(),
            message: format!("indexes nested more than {MAX_NESTING} deep at {root}"),
        }),
        Manifest::Index(index) => {
            let chosen = manifest::select(&index, platform)?;
            let digest: Digest =
                chosen
                    .digest()
                    .to_string()
                    .parse()
                    .map_err(|_| LayoutError::Invalid {
                        path: dir.display().to_string(),
                        message: format!("bad digest in index {root}"),
                    })?;
            copy_tree(store, dir, &digest, platform, depth + 1)
        }
        Manifest::Image(m) => {
            let children = std::iter::once(m.config().digest().to_string())
                .chain(m.layers().iter().map(|l| l.digest().to_string()));
            for child in children {
                let digest: Digest = child.parse().map_err(|_| LayoutError::Invalid {
                    path: dir.display().to_string(),
                    message: format!("bad digest {child:?} in manifest {root}"),
                })?;
                copy_blob(store, dir, &digest)?;
            }
            Ok(root.clone())
        }
    }
}

/// Copies one blob into the store through a verifying writer; returns it if it is small
/// enough to be a manifest (the caller parses those).
fn copy_blob(store: &ImageStore, dir: &Path, digest: &Digest) -> Result<Vec<u8>, LayoutError> {
    let rel = format!("blobs/sha256/{}", digest.hex());
    let path = dir.join(&rel);
    if !store.content.contains(digest) {
        let mut file =
            crate::inside::open_file(dir, &rel).map_err(io_err("reading blob", &path))?;
        let size = file
            .metadata()
            .map_err(io_err("reading blob", &path))?
            .len();
        let mut writer = store
            .content
            .writer(&format!("load-{digest}"), digest, Some(size))?;
        io::copy(&mut file, &mut writer).map_err(io_err("copying blob", &path))?;
        writer.commit()?;
    }
    let small = store.content.info(digest).is_ok_and(|i| i.size < 4 << 20);
    Ok(if small {
        store.content.read_to_vec(digest)?
    } else {
        Vec::new()
    })
}
