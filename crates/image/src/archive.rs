//! Image archives as `docker save` writes them and `docker load` reads them: a tar holding an
//! OCI layout (`oci-layout`, `index.json`, `blobs/`) and Docker's `manifest.json` (each image's
//! config, tags and layer paths). Loading takes either: the OCI index when there is one, else
//! `manifest.json`, which is all an archive from an older Docker has.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use serde_json::{json, Value};

use crate::digest::{Digest, DigestWriter};
use crate::import::ImageStore;
use crate::layout::{self, LayoutError};
use crate::manifest::{self, Manifest, Platform};
use crate::metadata::Image;
use crate::reference::Reference;
use crate::unpack;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("invalid image archive: {0}")]
    Invalid(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ArchiveError {
    let what = what.into();
    move |source| ArchiveError::Io { what, source }
}

fn layout_err(e: impl Into<LayoutError>) -> ArchiveError {
    ArchiveError::Layout(e.into())
}

/// Writes `names` as a `docker save` archive to `out`.
pub fn save(store: &ImageStore, names: &[Reference], out: impl Write) -> Result<(), ArchiveError> {
    let tmp = tempdir(store)?;
    let dir = tmp.path();
    layout::save(store, names, dir)?;
    let mut entries = Vec::new();
    for name in names {
        let image = store
            .metadata
            .image(&name.to_string())
            .map_err(layout_err)?;
        let bytes = store
            .content
            .read_to_vec(&image.target)
            .map_err(layout_err)?;
        let Manifest::Image(m) =
            manifest::parse(Some(&image.media_type), &bytes).map_err(layout_err)?
        else {
            return Err(ArchiveError::Invalid(format!(
                "{name} is an index; save a platform's image"
            )));
        };
        let blob = |d: String| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
        entries.push(json!({
            "Config": blob(m.config().digest().to_string()),
            "RepoTags": [name.familiar()],
            "Layers": m.layers().iter().map(|l| blob(l.digest().to_string())).collect::<Vec<_>>(),
        }));
    }
    fs::write(dir.join("manifest.json"), Value::Array(entries).to_string())
        .map_err(io_err("writing manifest.json"))?;
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    tar.append_dir_all(".", dir)
        .map_err(io_err("writing the archive"))?;
    tar.into_inner()
        .map_err(io_err("writing the archive"))?
        .flush()
        .map_err(io_err("writing the archive"))
}

/// Reads a `docker save` archive (or a tar of an OCI layout) from `input` into the store;
/// returns the names loaded.
pub fn load(
    store: &ImageStore,
    input: impl Read,
    platform: &Platform,
) -> Result<Vec<String>, ArchiveError> {
    let tmp = tempdir(store)?;
    let dir = tmp.path();
    // The tar crate refuses entries that would land outside `dir`.
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(false);
    archive.unpack(dir).map_err(io_err("reading the archive"))?;
    if dir.join("index.json").is_file() && dir.join("oci-layout").is_file() {
        return Ok(layout::load(store, dir, platform)?);
    }
    load_docker_manifest(store, dir)
}

/// The `manifest.json` of an archive without an OCI index: configs and layer tars by path.
fn load_docker_manifest(store: &ImageStore, dir: &Path) -> Result<Vec<String>, ArchiveError> {
    let text = match crate::inside::read_file(dir, "manifest.json", layout::MAX_JSON) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ArchiveError::Invalid(
                "no manifest.json and no index.json".to_string(),
            ))
        }
        Err(e) => return Err(io_err("reading manifest.json")(e)),
    };
    let entries: Vec<Value> = serde_json::from_slice(&text)
        .map_err(|e| ArchiveError::Invalid(format!("manifest.json: {e}")))?;
    let mut named = Vec::new();
    let mut to_name = Vec::new();
    for entry in &entries {
        // Paths inside the archive; symlinks in it are resolved inside it too.
        fn path(v: &Value) -> Result<&str, ArchiveError> {
            let p = v
                .as_str()
                .ok_or_else(|| ArchiveError::Invalid(format!("bad path {v}")))?;
            if p.split('/').any(|c| c == "..") || p.starts_with('/') {
                return Err(ArchiveError::Invalid(format!(
                    "path {p:?} leaves the archive"
                )));
            }
            Ok(p)
        }
        let config_path = path(&entry["Config"])?;
        let config = crate::inside::read_file(dir, config_path, layout::MAX_JSON)
            .map_err(io_err(format!("reading {config_path}")))?;
        let config_digest = store.content.write_blob(&config).map_err(layout_err)?;
        let mut layers = Vec::new();
        for layer in entry["Layers"].as_array().into_iter().flatten() {
            let (digest, size) = store_file(store, dir, path(layer)?)?;
            layers.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": size, "digest": digest.to_string()}));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest.to_string()},
            "layers": layers,
        });
        let manifest_bytes = manifest.to_string().into_bytes();
        let manifest_digest = store
            .content
            .write_blob(&manifest_bytes)
            .map_err(layout_err)?;
        unpack::unpack(store, &manifest_digest).map_err(layout_err)?;
        let tags: Vec<String> = entry["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str()?.parse::<Reference>().ok())
            .map(|r| r.to_string())
            .collect();
        let names = if tags.is_empty() {
            vec![config_digest.to_string()]
        } else {
            tags
        };
        for name in names {
            to_name.push((name, manifest_digest.clone(), manifest_bytes.len() as u64));
        }
    }
    // Names last, once everything is stored and unpacked.
    for (name, target, size) in to_name {
        store
            .metadata
            .put_image(&Image {
                name: name.clone(),
                target,
                media_type: manifest::OCI_MANIFEST.to_string(),
                size,
                created: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                    .to_string(),
            })
            .map_err(layout_err)?;
        named.push(name);
    }
    Ok(named)
}

/// Stores the file `rel` of the archive in `dir` as a blob: digested first, then written
/// through the verifying writer.
fn store_file(store: &ImageStore, dir: &Path, rel: &str) -> Result<(Digest, u64), ArchiveError> {
    use std::io::Seek;
    let what = || format!("reading {rel}");
    let mut file = crate::inside::open_file(dir, rel).map_err(io_err(what()))?;
    let mut digester = DigestWriter::new(io::sink());
    io::copy(&mut file, &mut digester).map_err(io_err(what()))?;
    let size = digester.size();
    let (digest, _) = digester.finish();
    if !store.content.contains(&digest) {
        let mut writer = store
            .content
            .writer(&format!("load-{digest}"), &digest, Some(size))
            .map_err(layout_err)?;
        file.rewind().map_err(io_err(what()))?;
        io::copy(&mut file, &mut writer).map_err(io_err(what()))?;
        writer.commit().map_err(layout_err)?;
    }
    Ok((digest, size))
}

fn tempdir(store: &ImageStore) -> Result<TempDir, ArchiveError> {
    let path = store.tmp_dir().join(format!(
        "archive-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    fs::create_dir_all(&path).map_err(io_err(format!("creating {}", path.display())))?;
    Ok(TempDir(path))
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
