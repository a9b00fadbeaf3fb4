//! Which snapshotter an image store uses, by the names dockerd gives its storage drivers
//! (`overlay2`, `btrfs`, and `vfs` for the copy snapshotter), chosen as dockerd chooses.
//!
//! Each snapshotter has a root of its own under the store (`snapshots/overlay`, `snapshots/copy`,
//! `snapshots/btrfs`). Without a driver named ([`Backend::Auto`]) a store keeps the one it was
//! made with (dockerd's "prior storage driver"; the one holding layers if several roots exist),
//! and a new store gets overlay where overlayfs works, copies elsewhere. A driver named
//! explicitly must work there: `btrfs` needs the store on btrfs (else dockerd's "prerequisites
//! for driver not satisfied (wrong filesystem?)"), `overlay2` a working overlayfs. A store whose
//! layers were made by another driver is refused: the names and the content are shared by all
//! snapshotters, so the images would be listed without their layers (dockerd keeps an image
//! store per driver and shows none of them instead); start with the prior driver, or with none.

use std::path::{Path, PathBuf};

use crate::import::Backend;
use crate::snapshot;

/// A storage driver that cannot be used on a store.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// No such driver.
    #[error("error initializing graphdriver: driver not supported: {0}")]
    NotSupported(String),
    /// The store's filesystem cannot hold the driver's snapshots.
    #[error(
        "error initializing graphdriver: prerequisites for driver not satisfied (wrong \
         filesystem?): storage driver {driver} cannot be used on {root}"
    )]
    Prerequisites { driver: &'static str, root: PathBuf },
    /// The store holds the layers of another driver.
    #[error(
        "error initializing graphdriver: {root} holds the layers of storage driver {prior}: \
         start with --storage-driver {prior} (or none), or with another data-root"
    )]
    Prior { root: PathBuf, prior: &'static str },
    /// The store's directory could not be read.
    #[error("error initializing graphdriver: {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The backends a store can have a root of, in the order [`Backend::Auto`] prefers them.
const BACKENDS: [Backend; 3] = [Backend::Overlay, Backend::Copy, Backend::Btrfs];

impl Backend {
    /// dockerd's name of this storage driver (`Info.Driver`); empty for [`Backend::Auto`].
    pub fn driver_name(self) -> &'static str {
        match self {
            Backend::Auto => "",
            Backend::Overlay => "overlay2",
            Backend::Copy => "vfs",
            Backend::Btrfs => "btrfs",
        }
    }

    /// The backend of dockerd's storage driver `name` (`overlay2`, `btrfs`, `vfs`).
    pub fn from_driver_name(name: &str) -> Result<Backend, DriverError> {
        BACKENDS
            .into_iter()
            .find(|b| b.driver_name() == name)
            .ok_or_else(|| DriverError::NotSupported(name.to_owned()))
    }

    /// The directory of its snapshotter's root, under the store's `snapshots/`.
    pub(crate) fn dir_name(self) -> &'static str {
        match self {
            Backend::Auto | Backend::Overlay => "overlay",
            Backend::Copy => "copy",
            Backend::Btrfs => "btrfs",
        }
    }
}

/// The backend the store at `root` (which exists) uses when asked for `backend`; see the module
/// doc.
pub fn choose(root: &Path, backend: Backend) -> Result<Backend, DriverError> {
    let snapshotter_root = |b: Backend| root.join("snapshots").join(b.dir_name());
    let made_with = |b: &Backend| snapshotter_root(*b).join("metadata.json").exists();
    let has_layers = |b: &Backend| {
        std::fs::read_dir(snapshotter_root(*b).join("snapshots"))
            .is_ok_and(|mut entries| entries.next().is_some())
    };
    let prior: Vec<Backend> = BACKENDS.into_iter().filter(made_with).collect();
    if backend == Backend::Auto {
        let chosen = prior
            .iter()
            .find(|b| has_layers(b))
            .or(prior.first())
            .copied();
        return Ok(chosen.unwrap_or_else(|| {
            if snapshot::overlay_supported(root) {
                Backend::Overlay
            } else {
                Backend::Copy
            }
        }));
    }
    if let Some(other) = prior.iter().find(|b| **b != backend && has_layers(b)) {
        return Err(DriverError::Prior {
            root: root.to_owned(),
            prior: other.driver_name(),
        });
    }
    let usable = match backend {
        Backend::Btrfs => snapshot::btrfs::on_btrfs(root).map_err(|source| DriverError::Io {
            path: root.to_owned(),
            source,
        })?,
        // (the check mounts in a scratch directory, which a full disk refuses: a store that
        // has its overlay root already is not checked again)
        Backend::Overlay => prior.contains(&backend) || snapshot::overlay_supported(root),
        Backend::Copy | Backend::Auto => true,
    };
    if !usable {
        return Err(DriverError::Prerequisites {
            driver: backend.driver_name(),
            root: root.to_owned(),
        });
    }
    Ok(backend)
}
