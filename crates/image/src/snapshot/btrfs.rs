//! The btrfs snapshotter (dockerd's `btrfs` storage driver): each snapshot's tree is a btrfs
//! subvolume `root/snapshots/<id>/fs`, and making one on a parent costs no copy.
//!
//! | snapshot | what `fs` is | mounts |
//! | --- | --- | --- |
//! | active, no parent | a new empty subvolume | `bind` of its `fs`, `rbind,rw` |
//! | active, parent | a writable snapshot of the parent's subvolume | `bind` of its `fs`, `rbind,rw` |
//! | view, no parent | a new empty subvolume, read-only | `bind` of its `fs`, `rbind,ro` |
//! | view, parent | none (`root/snapshots/<id>` stays empty) | `bind` of the parent's `fs`, `rbind,ro` |
//! | committed | the active snapshot's subvolume, made read-only | none |
//!
//! As with the copy snapshotter, an active snapshot's [`Snapshotter::upper_dir`] is its whole
//! tree (a layer deletion deletes, no whiteouts) and a layer cannot be rebased.
//!
//! The subvolumes are made and deleted with btrfs's ioctls ([`subvolume`]); the bookkeeping is
//! the shared [`super::metadata`]. What a crash leaves is put right when the root is opened: a
//! directory `root/snapshots/<id>` that the metadata does not name (a snapshot made but not
//! recorded, or a removal recorded but not carried out) is deleted with its subvolume, and an
//! active snapshot whose subvolume is read-only (a commit made read-only but not recorded) is
//! made writable again. A removal on a full disk deletes the subvolume before the metadata is
//! saved, as the other backends do; btrfs frees its space in the background once it is gone, and
//! the removal then starts that at once (`BTRFS_IOC_SYNC`) instead of at the next periodic
//! commit.

mod subvolume;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::metadata::{Record, Store};
use super::{bind_mount, lock, remove_dir, Info, Kind, Mount, SnapshotError, Snapshotter};

pub use subvolume::on_btrfs;

/// The name of a snapshot's subvolume in its directory.
const FS: &str = "fs";

/// Snapshots as btrfs subvolumes; see the module doc.
#[derive(Debug)]
pub struct BtrfsSnapshotter {
    root: PathBuf,
    store: Mutex<Store>,
}

impl BtrfsSnapshotter {
    /// Opens (creating if needed) the snapshotter at `root`, which must be on btrfs, with the
    /// metadata already there; removes what a crash left (see the module doc).
    pub fn new(root: impl AsRef<Path>) -> Result<BtrfsSnapshotter, SnapshotError> {
        let root = std::path::absolute(root.as_ref()).map_err(SnapshotError::io(
            "",
            "resolve",
            root.as_ref(),
        ))?;
        let snapshots = root.join("snapshots");
        fs::create_dir_all(&snapshots).map_err(SnapshotError::io("", "create", &snapshots))?;
        if !on_btrfs(&root).map_err(SnapshotError::io("", "statfs", &root))? {
            return Err(SnapshotError::NotBtrfs { root });
        }
        let store = Store::open(&root)?;
        let snapshotter = BtrfsSnapshotter {
            root,
            store: Mutex::new(store),
        };
        snapshotter.repair();
        Ok(snapshotter)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.join("snapshots").join(id.to_string())
    }

    fn fs_dir(&self, id: u64) -> PathBuf {
        self.dir(id).join(FS)
    }

    /// Deletes the directories the metadata does not name and makes the active snapshots
    /// writable (see the module doc). What cannot be put right stays as it is (an orphan is
    /// tried again at the next open, and deleted when a new snapshot gets its id): it must not
    /// keep the store from opening.
    fn repair(&self) {
        let store = lock(&self.store);
        let known: HashMap<u64, Kind> = store
            .list()
            .iter()
            .filter_map(|info| Some((store.get(&info.key).ok()?.id, info.kind)))
            .collect();
        let Ok(entries) = fs::read_dir(self.root.join("snapshots")) else {
            return;
        };
        for entry in entries.flatten() {
            let id = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok());
            match id.and_then(|id| known.get(&id)) {
                None => {
                    let _ = destroy_dir("", &entry.path());
                }
                Some(Kind::Active) => {
                    let fs_dir = entry.path().join(FS);
                    if subvolume::is_read_only(&fs_dir).unwrap_or(false) {
                        let _ = subvolume::set_read_only(&fs_dir, false);
                    }
                }
                Some(_) => {}
            }
        }
    }

    fn create(
        &self,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
    ) -> Result<Vec<Mount>, SnapshotError> {
        let mut store = lock(&self.store);
        let id = store.reserve(key, parent)?;
        let record = Record {
            id,
            parent: parent.map(str::to_owned),
            kind,
        };
        let made = self
            .make(key, &record, &store)
            .and_then(|()| self.mounts_of(key, &record, &store))
            .and_then(|mounts| store.insert(key, record).map(|()| mounts));
        if made.is_err() {
            let _ = destroy_dir(key, &self.dir(id));
        }
        made
    }

    fn make(&self, key: &str, record: &Record, store: &Store) -> Result<(), SnapshotError> {
        let dir = self.dir(record.id);
        // A directory with an id the metadata never recorded is an orphan of a crash.
        destroy_dir(key, &dir)?;
        fs::create_dir_all(&dir).map_err(SnapshotError::io(key, "create", &dir))?;
        let fs_dir = self.fs_dir(record.id);
        let name = OsStr::new(FS);
        match (record.kind, &record.parent) {
            (Kind::Active, Some(parent)) => {
                let source = self.fs_dir(store.get(parent)?.id);
                subvolume::snapshot(&source, &dir, name, false)
                    .map_err(SnapshotError::io(key, "snapshot", &fs_dir))
            }
            (Kind::Active, None) => subvolume::create(&dir, name).map_err(SnapshotError::io(
                key,
                "create subvolume",
                &fs_dir,
            )),
            (Kind::View, None) => subvolume::create(&dir, name)
                .and_then(|()| subvolume::set_read_only(&fs_dir, true))
                .map_err(SnapshotError::io(key, "create subvolume", &fs_dir)),
            // A view of a parent binds the parent's subvolume, which is read-only.
            (Kind::View, Some(_)) | (Kind::Committed, _) => Ok(()),
        }
    }

    fn mounts_of(
        &self,
        key: &str,
        record: &Record,
        store: &Store,
    ) -> Result<Vec<Mount>, SnapshotError> {
        let mount = match (record.kind, &record.parent) {
            (Kind::Committed, _) => {
                return Err(SnapshotError::WrongKind {
                    key: key.to_owned(),
                    kind: record.kind,
                    op: "mounts",
                    wanted: "an active snapshot or a view",
                })
            }
            (Kind::Active, _) => bind_mount(&self.fs_dir(record.id), true),
            (Kind::View, None) => bind_mount(&self.fs_dir(record.id), false),
            (Kind::View, Some(parent)) => bind_mount(&self.fs_dir(store.get(parent)?.id), false),
        };
        Ok(vec![mount])
    }
}

impl Snapshotter for BtrfsSnapshotter {
    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
        self.create(key, parent, Kind::Active)
    }

    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
        self.create(key, parent, Kind::View)
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        let store = lock(&self.store);
        let record = store.get(key)?;
        self.mounts_of(key, record, &store)
    }

    fn commit(&self, name: &str, key: &str) -> Result<(), SnapshotError> {
        let mut store = lock(&self.store);
        // Read-only first: the metadata never names a committed snapshot that can be written.
        // (Anything but an active snapshot is refused by the store's commit.)
        let active = store
            .get(key)
            .ok()
            .filter(|r| r.kind == Kind::Active)
            .map(|r| self.fs_dir(r.id));
        if let Some(fs_dir) = &active {
            subvolume::set_read_only(fs_dir, true).map_err(SnapshotError::io(
                key,
                "make read-only",
                fs_dir,
            ))?;
        }
        let committed = store.commit(name, key);
        if let (Err(_), Some(fs_dir)) = (&committed, &active) {
            let _ = subvolume::set_read_only(fs_dir, false);
        }
        committed
    }

    fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        let free = |record: &Record| destroy_dir(key, &self.dir(record.id));
        // Deleted outside the lock, unless the disk was full (then it went first).
        match lock(&self.store).remove(key, free)? {
            Some(record) => free(&record),
            None => {
                // On a full disk the space is wanted now, not at the next periodic commit.
                let _ = subvolume::sync(&self.root);
                Ok(())
            }
        }
    }

    fn stat(&self, key: &str) -> Result<Info, SnapshotError> {
        lock(&self.store).info(key)
    }

    fn list(&self) -> Result<Vec<Info>, SnapshotError> {
        Ok(lock(&self.store).list())
    }

    fn upper_dir(&self, key: &str) -> Result<PathBuf, SnapshotError> {
        let id = lock(&self.store).active_id(key)?;
        Ok(self.fs_dir(id))
    }
}

/// Deletes a snapshot's directory: its subvolume if it has one, then the rest (a directory
/// half made, or left by a view). One that is already gone is fine.
fn destroy_dir(key: &str, dir: &Path) -> Result<(), SnapshotError> {
    let fs_dir = dir.join(FS);
    if subvolume::is_subvolume(&fs_dir).unwrap_or(false) {
        subvolume::delete(&fs_dir).map_err(SnapshotError::io(key, "delete subvolume", &fs_dir))?;
    }
    remove_dir(key, dir)
}
