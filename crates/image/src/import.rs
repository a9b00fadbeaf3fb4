//! The image store's façade over its parts, and `import`: a root filesystem tarball becomes a
//! one-layer image (Docker's `docker import`), with `--change` instructions for its config.
//!
//! The tarball is read once: it is applied into a new snapshot (which computes the diff_id)
//! while a copy goes to a temporary file and is digested; that file then becomes the layer
//! blob, the snapshot is committed under the layer's chain id, and the config and manifest are
//! written. Nothing is named before every blob is in the store.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::content::{ContentError, Store};
use crate::digest::{Digest, DigestWriter};
use crate::layer::{self, Compression, LayerError, Whiteouts};
use crate::manifest::{Platform, OCI_MANIFEST};
use crate::metadata::{Image, Metadata, MetadataError};
use crate::reference::Reference;
use crate::snapshot::{self, SnapshotError, Snapshotter};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Driver(#[from] crate::driver::DriverError),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("invalid change {change:?}: {message}")]
    Change { change: String, message: String },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ImportError {
    let what = what.into();
    move |source| ImportError::Io { what, source }
}

/// Which snapshotter an [`ImageStore`] uses (dockerd's storage driver: [`crate::driver`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// The one the store was made with (whose `metadata.json` is there); for a new store,
    /// overlayfs where it works at the root, copies elsewhere. The check mounts in a scratch
    /// directory, which a full disk refuses: were it made at every open, such a disk would
    /// switch a store of overlay snapshots to an empty copy one.
    #[default]
    Auto,
    /// `overlay2`.
    Overlay,
    /// `vfs`.
    Copy,
    /// `btrfs`.
    Btrfs,
}

/// The image store of one data root: content, names, snapshots.
pub struct ImageStore {
    root: PathBuf,
    pub content: Store,
    pub metadata: Metadata,
    pub snapshots: Box<dyn Snapshotter>,
    whiteouts: Whiteouts,
    backend: Backend,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.root)
            .finish()
    }
}

impl ImageStore {
    /// Opens the store under `root`; snapshots use overlayfs where it works, copies elsewhere.
    pub fn open(root: &Path) -> Result<ImageStore, ImportError> {
        ImageStore::open_with(root, Backend::Auto)
    }

    /// Opens the store under `root` with the snapshotter `backend` says (see
    /// [`crate::driver::choose`]).
    pub fn open_with(root: &Path, backend: Backend) -> Result<ImageStore, ImportError> {
        std::fs::create_dir_all(root.join("tmp"))
            .map_err(io_err(format!("creating {}", root.display())))?;
        let backend = crate::driver::choose(root, backend)?;
        let content = Store::open(&root.join("content"))?;
        let metadata = Metadata::open(&root.join("metadata.redb"))?;
        let snapshots_root = root.join("snapshots").join(backend.dir_name());
        let (snapshots, whiteouts): (Box<dyn Snapshotter>, Whiteouts) = match backend {
            Backend::Auto | Backend::Overlay => (
                Box::new(snapshot::OverlaySnapshotter::new(snapshots_root)?),
                Whiteouts::Overlay,
            ),
            Backend::Copy => (
                Box::new(snapshot::CopySnapshotter::new(snapshots_root)?),
                Whiteouts::Delete,
            ),
            Backend::Btrfs => (
                Box::new(snapshot::BtrfsSnapshotter::new(snapshots_root)?),
                Whiteouts::Delete,
            ),
        };
        Ok(ImageStore {
            root: root.to_path_buf(),
            content,
            metadata,
            snapshots,
            whiteouts,
            backend,
        })
    }

    /// The snapshotter this store uses (never [`Backend::Auto`]).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where the store keeps temporary files (on the same filesystem as its content).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// How layers are applied into this store's snapshots.
    pub fn whiteouts(&self) -> Whiteouts {
        self.whiteouts
    }

    /// Imports a root filesystem tarball (plain, gzip or zstd) as a one-layer image, named
    /// `name` if given; returns the image id (the digest of its config).
    pub fn import(
        &self,
        tarball: impl Read,
        name: Option<&Reference>,
        changes: &[String],
    ) -> Result<Digest, ImportError> {
        let config_changes = parse_changes(changes)?;
        let nonce = format!("{}-{}", std::process::id(), now_nanos());
        let key = format!("import-{nonce}");
        self.snapshots.prepare(&key, None)?;
        let result = self.import_into(tarball, name, config_changes, &key, &nonce);
        if result.is_err() {
            let _ = self.snapshots.remove(&key);
        }
        result
    }

    fn import_into(
        &self,
        tarball: impl Read,
        name: Option<&Reference>,
        config_changes: Value,
        key: &str,
        nonce: &str,
    ) -> Result<Digest, ImportError> {
        let tmp_path = self.root.join("tmp").join(format!("import-{nonce}"));
        let tmp = File::create(&tmp_path).map_err(io_err("creating a temporary file"))?;
        let mut tee = Tee {
            inner: tarball,
            copy: DigestWriter::new(tmp),
            first: Vec::new(),
        };
        let upper = self.snapshots.upper_dir(key)?;
        let applied = layer::apply_with(&mut tee, &upper, self.whiteouts);
        // What the layer reader left (compression trailers) belongs to the blob too.
        let applied = applied.and_then(|a| {
            io::copy(&mut tee, &mut io::sink())
                .map(|_| a)
                .map_err(LayerError::Read)
        });
        let compression = layer::detect(&tee.first);
        let size = tee.copy.size();
        let (blob_digest, _) = tee.copy.finish();
        let applied = match applied {
            Ok(a) => a,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp_path);
                return Err(e.into());
            }
        };
        // The layer blob: the tarball as it came.
        if !self.content.contains(&blob_digest) {
            let mut writer =
                self.content
                    .writer(&format!("import-{nonce}"), &blob_digest, Some(size))?;
            let mut file = File::open(&tmp_path).map_err(io_err("reopening the temporary file"))?;
            io::copy(&mut file, &mut writer).map_err(io_err("storing the layer"))?;
            writer.commit()?;
        }
        let _ = std::fs::remove_file(&tmp_path);
        // One layer: its chain id is its diff_id.
        let chain = applied.diff_id.to_string();
        if self.snapshots.stat(&chain).is_ok() {
            self.snapshots.remove(key)?;
        } else {
            self.snapshots.commit(&chain, key)?;
        }

        let created = rfc3339_now();
        let platform = Platform::host();
        let config = json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "created": created,
            "config": config_changes,
            "rootfs": {"type": "layers", "diff_ids": [applied.diff_id.to_string()]},
            "history": [{"created": created, "created_by": "berth import", "comment": "Imported from tarball"}],
        });
        let config_bytes =
            serde_json::to_vec(&config).map_err(|e| io_err("encoding the config")(e.into()))?;
        let config_digest = self.content.write_blob(&config_bytes)?;
        let layer_media_type = match compression {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config_bytes.len(), "digest": config_digest.to_string()},
            "layers": [{"mediaType": layer_media_type, "size": size, "digest": blob_digest.to_string()}],
        });
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| io_err("encoding the manifest")(e.into()))?;
        let manifest_digest = self.content.write_blob(&manifest_bytes)?;
        let image_name = match name {
            Some(r) => r.to_string(),
            // An unnamed import is known by its id, as Docker shows `<none>:<none>`.
            None => config_digest.to_string(),
        };
        self.metadata.put_image(&Image {
            name: image_name,
            target: manifest_digest,
            media_type: OCI_MANIFEST.to_string(),
            size: manifest_bytes.len() as u64,
            created,
        })?;
        Ok(config_digest)
    }
}

/// Copies what is read into a digesting writer, and keeps the first bytes (for the magic).
struct Tee<R> {
    inner: R,
    copy: DigestWriter<File>,
    first: Vec<u8>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        if self.first.len() < 8 {
            let take = (8 - self.first.len()).min(n);
            self.first.extend_from_slice(&buf[..take]);
        }
        Ok(n)
    }
}

/// The image config fields that `docker import --change` may set.
fn parse_changes(changes: &[String]) -> Result<Value, ImportError> {
    let mut config = serde_json::Map::new();
    for change in changes {
        let bad = |message: &str| ImportError::Change {
            change: change.clone(),
            message: message.to_string(),
        };
        let (instr, rest) = change
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad("expected INSTRUCTION ARGUMENTS"))?;
        let rest = rest.trim();
        let list = || -> Value {
            match serde_json::from_str::<Vec<String>>(rest) {
                Ok(v) => json!(v),
                Err(_) => json!(["/bin/sh", "-c", rest]),
            }
        };
        match instr.to_ascii_uppercase().as_str() {
            "CMD" => {
                config.insert("Cmd".into(), list());
            }
            "ENTRYPOINT" => {
                config.insert("Entrypoint".into(), list());
            }
            "ENV" => {
                let (k, v) = rest
                    .split_once('=')
                    .or_else(|| rest.split_once(' '))
                    .ok_or_else(|| bad("ENV needs KEY=VALUE"))?;
                let env = config.entry("Env").or_insert_with(|| json!([]));
                if let Some(list) = env.as_array_mut() {
                    list.retain(|e| {
                        e.as_str()
                            .and_then(|s| s.split_once('='))
                            .is_none_or(|(key, _)| key != k.trim())
                    });
                    list.push(json!(format!("{}={}", k.trim(), v.trim())));
                }
            }
            "WORKDIR" => {
                config.insert("WorkingDir".into(), json!(rest));
            }
            "USER" => {
                config.insert("User".into(), json!(rest));
            }
            "STOPSIGNAL" => {
                config.insert("StopSignal".into(), json!(rest));
            }
            "EXPOSE" => {
                let ports = config.entry("ExposedPorts").or_insert_with(|| json!({}));
                for port in rest.split_whitespace() {
                    let port = if port.contains('/') {
                        port.to_string()
                    } else {
                        format!("{port}/tcp")
                    };
                    if let Some(map) = ports.as_object_mut() {
                        map.insert(port, json!({}));
                    }
                }
            }
            "LABEL" => {
                let (k, v) = rest
                    .split_once('=')
                    .ok_or_else(|| bad("LABEL needs KEY=VALUE"))?;
                let labels = config.entry("Labels").or_insert_with(|| json!({}));
                if let Some(map) = labels.as_object_mut() {
                    map.insert(k.trim().to_string(), json!(v.trim().trim_matches('"')));
                }
            }
            "VOLUME" => {
                let volumes = config.entry("Volumes").or_insert_with(|| json!({}));
                let paths: Vec<String> = serde_json::from_str(rest)
                    .unwrap_or_else(|_| rest.split_whitespace().map(String::from).collect());
                if let Some(map) = volumes.as_object_mut() {
                    for p in paths {
                        map.insert(p, json!({}));
                    }
                }
            }
            other => {
                return Err(bad(&format!("{other} is not supported; only CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR")));
            }
        }
    }
    Ok(Value::Object(config))
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// The current time, RFC 3339 UTC with seconds.
fn rfc3339_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
