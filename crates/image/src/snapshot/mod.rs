//! Snapshotters: the directories that layers are applied into and that containers run on, stacked
//! the way containerd's snapshotters stack them.
//!
//! A snapshotter never mounts anything: [`Snapshotter::prepare`] and [`Snapshotter::view`] return
//! the [`Mount`]s that make up the snapshot, and the caller (the layer applier, the runtime through
//! the OCI config's `root`/`mounts`) mounts them. [`Mount::mount`] is a helper that does it the way
//! mount(2) wants it, for callers that mount in-process and for the tests.
//!
//! Snapshots are `Active` (writable, made by `prepare`), `View` (read-only, made by `view`) or
//! `Committed` (immutable, made by `commit` from an active one, and the only kind that can be a
//! parent). Three backends implement the same [`Snapshotter`] trait and pass the same conformance
//! suite (`tests/snapshot.rs`):
//! - [`OverlaySnapshotter`]: one directory per snapshot, stacked with overlayfs;
//! - [`CopySnapshotter`]: for filesystems without overlay, each active snapshot is a full copy of
//!   its parent's tree, bind-mounted;
//! - [`BtrfsSnapshotter`]: on btrfs, each snapshot is a subvolume, an active one a writable
//!   btrfs snapshot of its parent's, bind-mounted.
//!
//! All keep their metadata in `root/metadata.json` and the log of its changes since,
//! `root/metadata.log` ([`metadata`], [`journal`]).

pub mod btrfs;
pub mod copy;
pub(crate) mod journal;
pub mod metadata;
pub mod overlay;

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use serde::{Deserialize, Serialize};

pub use btrfs::BtrfsSnapshotter;
pub use copy::CopySnapshotter;
pub use overlay::{overlay_supported, OverlaySnapshotter};

/// The kind of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Read-only, made by [`Snapshotter::view`].
    View,
    /// Writable, made by [`Snapshotter::prepare`]; becomes committed by [`Snapshotter::commit`].
    Active,
    /// Immutable; the only kind that can be a parent.
    Committed,
}

/// What [`Snapshotter::stat`] and [`Snapshotter::list`] tell of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The key (for committed snapshots, the name given to `commit`).
    pub key: String,
    /// The committed snapshot it sits on, if any.
    pub parent: Option<String>,
    /// Its kind.
    pub kind: Kind,
}

/// One mount, as mount(2) takes it; the caller mounts (the runtime puts these in the OCI config's
/// mounts / rootfs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The filesystem type: `overlay`, or `bind` for a bind mount (mount(2) gets no type then and
    /// `MS_BIND`).
    pub typ: String,
    /// The source: `overlay`, or the directory to bind.
    pub source: String,
    /// Options as `mount -o` takes them: flags (`rbind`, `ro`, `rw`, `nosuid`, ...) and
    /// filesystem data (`lowerdir=...`).
    pub options: Vec<String>,
    /// When set, the paths in `options` are relative to this directory and the mount must be made
    /// with it as the working directory (as Docker's overlay2 does with its `l/` links): this is
    /// how a stack of many layers stays within the one page mount(2) copies its data from.
    /// [`Mount::mount`] does this. `None` when every path is absolute (the usual case).
    pub cwd: Option<PathBuf>,
}

/// Errors of the snapshotters; each names the snapshot (or the path) it is about.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// No snapshot with that key.
    #[error("snapshot {key}: not found")]
    NotFound { key: String },
    /// The key (or commit name) is taken.
    #[error("snapshot {key}: already exists")]
    AlreadyExists { key: String },
    /// The key is empty or not a single path-safe name.
    #[error("snapshot {key:?}: invalid key")]
    InvalidKey { key: String },
    /// The parent given to prepare or view is not a committed snapshot.
    #[error("snapshot {key}: parent {parent} is {kind:?}, not committed")]
    ParentNotCommitted {
        key: String,
        parent: String,
        kind: Kind,
    },
    /// The operation needs another kind of snapshot (commit or upper_dir of a non-active one,
    /// mounts of a committed one).
    #[error("snapshot {key}: is {kind:?}, {op} needs {wanted}")]
    WrongKind {
        key: String,
        kind: Kind,
        op: &'static str,
        wanted: &'static str,
    },
    /// Remove of a snapshot other snapshots sit on.
    #[error("snapshot {key}: has children ({children:?}), remove them first")]
    HasChildren { key: String, children: Vec<String> },
    /// The backend cannot do this.
    #[error("snapshot {key}: this snapshotter cannot {op}")]
    Unsupported { key: String, op: &'static str },
    /// The lower directories do not fit in mount(2)'s data even with short links.
    #[error("snapshot {key}: {layers} layers do not fit in one overlay mount")]
    TooManyLayers { key: String, layers: usize },
    /// A filesystem operation on a snapshot's directories failed.
    #[error("snapshot {key}: {op} {path}: {source}")]
    Io {
        key: String,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The metadata file could not be read, parsed or written.
    #[error("snapshot metadata {path}: {source}")]
    Metadata {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another snapshotter instance has this root open.
    #[error("snapshotter root {root}: in use by another instance (lock held)")]
    Locked { root: PathBuf },
    /// The btrfs snapshotter's root is on another filesystem.
    #[error("snapshotter root {root}: not on btrfs")]
    NotBtrfs { root: PathBuf },
    /// The root path cannot be written into overlay mount options.
    #[error(
        "snapshotter root {root}: contains ',' or ':', which overlay mount options cannot hold"
    )]
    UnusableRoot { root: PathBuf },
    /// [`Mount::mount`] failed.
    #[error("mount {typ} {source_path} on {target}: {source}")]
    Mount {
        typ: String,
        source_path: String,
        target: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SnapshotError {
    /// Whether this is a write refused for lack of space (ENOSPC, EDQUOT).
    pub fn is_no_space(&self) -> bool {
        let source = match self {
            SnapshotError::Io { source, .. } | SnapshotError::Metadata { source, .. } => source,
            _ => return false,
        };
        matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
    }

    /// An [`SnapshotError::Io`] for `key`, as a closure for `map_err`.
    pub(crate) fn io(
        key: &str,
        op: &'static str,
        path: &Path,
    ) -> impl FnOnce(std::io::Error) -> SnapshotError {
        let key = key.to_owned();
        let path = path.to_owned();
        move |source| SnapshotError::Io {
            key,
            op,
            path,
            source,
        }
    }
}

/// containerd's snapshotter, simplified: returns mounts, never mounts.
pub trait Snapshotter: Send + Sync {
    /// A new writable snapshot `key` on top of committed `parent` (None: empty). Returns its mounts.
    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError>;
    /// A read-only view of committed `parent` (None: an empty read-only directory).
    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError>;
    /// The mounts of an active snapshot or a view.
    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError>;
    /// Makes active snapshot `key` the committed snapshot `name` (immutable from then on).
    fn commit(&self, name: &str, key: &str) -> Result<(), SnapshotError>;
    /// Removes a snapshot; refused (error) while it has children.
    fn remove(&self, key: &str) -> Result<(), SnapshotError>;
    /// What is known of one snapshot.
    fn stat(&self, key: &str) -> Result<Info, SnapshotError>;
    /// Every snapshot, sorted by key.
    fn list(&self) -> Result<Vec<Info>, SnapshotError>;
    /// The directory a layer is applied into for an active snapshot (its upper/fs dir), for the
    /// layer applier. For the overlay backend it holds only the snapshot's own changes (deletions
    /// are overlay whiteouts); for the copy backend it holds the whole tree (deletions delete).
    fn upper_dir(&self, key: &str) -> Result<PathBuf, SnapshotError>;
    /// Where a snapshot's files are, as dockerd's `GraphDriver.Data` names them: `UpperDir` (its
    /// own files), `LowerDir` (its parents', top first, `:`-joined, absent without parents) and
    /// `WorkDir`. Empty for a backend without such directories.
    fn graph_data(&self, key: &str) -> Result<Vec<(&'static str, String)>, SnapshotError> {
        let _ = key;
        Ok(Vec::new())
    }
    /// Whether an active snapshot's upper dir holds only its own changes whatever it sits on, so
    /// that a layer can be applied into a snapshot prepared without a parent and then committed
    /// on top of one with [`Snapshotter::commit_onto`] (containerd's "rebase" capability). This
    /// is what lets a pull unpack its layers in parallel.
    fn can_rebase(&self) -> bool {
        false
    }
    /// Makes active snapshot `key` the committed snapshot `name` on top of committed `parent`,
    /// whatever it was prepared on. Only where [`Snapshotter::can_rebase`] says so.
    fn commit_onto(
        &self,
        name: &str,
        key: &str,
        parent: Option<&str>,
    ) -> Result<(), SnapshotError> {
        let _ = (name, parent);
        Err(SnapshotError::Unsupported {
            key: key.to_owned(),
            op: "commit onto another parent",
        })
    }
}

impl Mount {
    /// Mounts this on `target` with mount(2): `bind`/`rbind` become `MS_BIND`/`MS_REC` (and a
    /// read-only bind is remounted read-only, since the kernel ignores `MS_RDONLY` on the first
    /// bind), known flags become `MsFlags`, the rest is the filesystem's data joined by `,`.
    /// With [`Mount::cwd`] set, the mount is made from a thread whose working directory (unshared
    /// with `CLONE_FS`, so the process's is untouched) is `cwd`.
    pub fn mount(&self, target: &Path) -> Result<(), SnapshotError> {
        let err = |source: std::io::Error| SnapshotError::Mount {
            typ: self.typ.clone(),
            source_path: self.source.clone(),
            target: target.to_owned(),
            source,
        };
        match &self.cwd {
            None => self.mount_here(target).map_err(err),
            Some(cwd) => {
                let target = std::path::absolute(target).map_err(err)?;
                std::thread::scope(|scope| {
                    scope
                        .spawn(|| -> Result<(), std::io::Error> {
                            nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)?;
                            std::env::set_current_dir(cwd)?;
                            self.mount_here(&target)
                        })
                        .join()
                        .unwrap_or_else(|_| Err(std::io::Error::other("mount thread panicked")))
                })
                .map_err(err)
            }
        }
    }

    fn mount_here(&self, target: &Path) -> Result<(), std::io::Error> {
        let mut flags = MsFlags::empty();
        let mut data = Vec::new();
        for option in &self.options {
            match option.as_str() {
                "bind" => flags |= MsFlags::MS_BIND,
                "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
                "ro" => flags |= MsFlags::MS_RDONLY,
                "rw" | "defaults" => {}
                "nosuid" => flags |= MsFlags::MS_NOSUID,
                "nodev" => flags |= MsFlags::MS_NODEV,
                "noexec" => flags |= MsFlags::MS_NOEXEC,
                "noatime" => flags |= MsFlags::MS_NOATIME,
                "relatime" => flags |= MsFlags::MS_RELATIME,
                other => data.push(other),
            }
        }
        if self.typ == "bind" {
            flags |= MsFlags::MS_BIND;
        }
        let data = data.join(",");
        let fstype = (!flags.contains(MsFlags::MS_BIND)).then_some(self.typ.as_str());
        let data = (!data.is_empty()).then_some(data.as_str());
        nix::mount::mount(Some(self.source.as_str()), target, fstype, flags, data)?;
        if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
            let remount = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
            if let Err(e) =
                nix::mount::mount(None::<&str>, target, None::<&str>, remount, None::<&str>)
            {
                let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
                return Err(e.into());
            }
        }
        Ok(())
    }
}

/// Checks that a key (or commit name) is usable: not empty, no NUL. Keys are only ever stored in
/// the metadata, never used as paths, so `/` and the like are fine (containerd's keys contain
/// them).
pub(crate) fn check_key(key: &str) -> Result<(), SnapshotError> {
    if key.is_empty() || key.contains('\0') {
        return Err(SnapshotError::InvalidKey {
            key: key.to_owned(),
        });
    }
    Ok(())
}

/// A bind mount of `source`, read-write or read-only.
pub(crate) fn bind_mount(source: &Path, writable: bool) -> Mount {
    Mount {
        typ: "bind".to_owned(),
        source: source.to_string_lossy().into_owned(),
        options: vec![
            "rbind".to_owned(),
            if writable { "rw" } else { "ro" }.to_owned(),
        ],
        cwd: None,
    }
}

/// Removes a snapshot's directory; one that is already gone is fine.
pub(crate) fn remove_dir(key: &str, dir: &Path) -> Result<(), SnapshotError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(SnapshotError::io(key, "remove", dir)(e))
        }
        _ => Ok(()),
    }
}

/// Locks a backend's metadata; a poisoned lock (a panic in another thread mid-operation) still
/// holds consistent metadata, since every change is undone unless it was saved.
pub(crate) fn lock(
    store: &std::sync::Mutex<metadata::Store>,
) -> std::sync::MutexGuard<'_, metadata::Store> {
    store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
