//! The copy snapshotter, for filesystems without overlay (or where overlay cannot be mounted, as
//! in some nested setups): each active snapshot `root/snapshots/<id>/fs` holds the whole tree, a
//! copy of its parent's made by `prepare`, and its mount is one bind mount of that directory.
//!
//! The copy keeps what a layer can carry: modes (with setuid/setgid/sticky), owners, symlinks,
//! hard links (within the tree), extended attributes, device nodes, fifos and sockets, and
//! modification times. A view of a committed parent needs no copy: committed directories are never
//! written again, so it is a read-only bind mount of the parent's directory. A layer deletion is a
//! plain delete in [`Snapshotter::upper_dir`] (no whiteouts).
//!
//! Written by hand (rather than `cp -a` or a crate) because no crate copies all of this, and a
//! subprocess would make the snapshotter depend on the host's coreutils.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::metadata::{Record, Store};
use super::{bind_mount, lock, remove_dir, Info, Kind, Mount, SnapshotError, Snapshotter};

/// Snapshots as full copies; see the module doc.
#[derive(Debug)]
pub struct CopySnapshotter {
    root: PathBuf,
    store: Mutex<Store>,
}

impl CopySnapshotter {
    /// Opens (creating if needed) the snapshotter at `root`, with the metadata already there.
    pub fn new(root: impl AsRef<Path>) -> Result<CopySnapshotter, SnapshotError> {
        let root = std::path::absolute(root.as_ref()).map_err(SnapshotError::io(
            "",
            "resolve",
            root.as_ref(),
        ))?;
        let snapshots = root.join("snapshots");
        fs::create_dir_all(&snapshots).map_err(SnapshotError::io("", "create", &snapshots))?;
        let store = Mutex::new(Store::open(&root)?);
        Ok(CopySnapshotter { root, store })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn fs_dir(&self, id: u64) -> PathBuf {
        self.root.join("snapshots").join(id.to_string()).join("fs")
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
        let dir = self.root.join("snapshots").join(id.to_string());
        let made = self
            .make_dir(key, &record, &store)
            .and_then(|()| self.mounts_of(key, &record, &store))
            .and_then(|mounts| store.insert(key, record).map(|()| mounts));
        if made.is_err() {
            let _ = remove_dir(key, &dir);
        }
        made
    }

    fn make_dir(&self, key: &str, record: &Record, store: &Store) -> Result<(), SnapshotError> {
        let dir = self.root.join("snapshots").join(record.id.to_string());
        // A directory with an id the metadata never recorded is an orphan of a crash.
        remove_dir(key, &dir)?;
        fs::create_dir_all(&dir).map_err(SnapshotError::io(key, "create", &dir))?;
        let fs_dir = self.fs_dir(record.id);
        match (&record.parent, record.kind) {
            (Some(parent), Kind::Active) => {
                let source = self.fs_dir(store.get(parent)?.id);
                copy_tree(key, &source, &fs_dir)
            }
            _ => fs::create_dir(&fs_dir).map_err(SnapshotError::io(key, "create", &fs_dir)),
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

impl Snapshotter for CopySnapshotter {
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
        lock(&self.store).commit(name, key)
    }

    fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        let free = |record: &Record| {
            remove_dir(
                key,
                &self.root.join("snapshots").join(record.id.to_string()),
            )
        };
        // Deleted outside the lock, unless the disk was full (then it went first).
        let saved = lock(&self.store).remove(key, free)?;
        saved.map_or(Ok(()), |record| free(&record))
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

/// Copies the tree at `source` to `target` (which must not exist), keeping everything the module
/// doc lists.
pub fn copy_tree(key: &str, source: &Path, target: &Path) -> Result<(), SnapshotError> {
    let mut copier = Copier {
        key,
        links: HashMap::new(),
    };
    let meta = fs::symlink_metadata(source).map_err(SnapshotError::io(key, "stat", source))?;
    copier.copy(source, target, &meta)
}

struct Copier<'a> {
    key: &'a str,
    /// Files with several links already copied, by (device, inode): the next link is a hard link.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Copier<'_> {
    fn copy(
        &mut self,
        source: &Path,
        target: &Path,
        meta: &fs::Metadata,
    ) -> Result<(), SnapshotError> {
        let key = self.key;
        let file_type = meta.file_type();
        if !file_type.is_dir() && meta.nlink() > 1 {
            if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                return fs::hard_link(first, target)
                    .map_err(SnapshotError::io(key, "link", target));
            }
            self.links
                .insert((meta.dev(), meta.ino()), target.to_owned());
        }
        if file_type.is_dir() {
            fs::create_dir(target).map_err(SnapshotError::io(key, "create", target))?;
            let entries = fs::read_dir(source).map_err(SnapshotError::io(key, "read", source))?;
            for entry in entries {
                let entry = entry.map_err(SnapshotError::io(key, "read", source))?;
                let path = entry.path();
                let child =
                    fs::symlink_metadata(&path).map_err(SnapshotError::io(key, "stat", &path))?;
                self.copy(&path, &target.join(entry.file_name()), &child)?;
            }
        } else if file_type.is_symlink() {
            let link = fs::read_link(source).map_err(SnapshotError::io(key, "readlink", source))?;
            std::os::unix::fs::symlink(link, target)
                .map_err(SnapshotError::io(key, "symlink", target))?;
        } else if file_type.is_file() {
            fs::copy(source, target).map_err(SnapshotError::io(key, "copy", target))?;
        } else {
            let kind = rustix::fs::FileType::from_raw_mode(meta.mode());
            let mode = rustix::fs::Mode::from_raw_mode(meta.mode() & 0o7777);
            rustix::fs::mknodat(rustix::fs::CWD, target, kind, mode, meta.rdev())
                .map_err(|e| SnapshotError::io(key, "mknod", target)(e.into()))?;
        }
        self.attributes(source, target, meta)
    }

    /// Owner, mode, extended attributes and times, in that order (chown clears setuid bits and
    /// file capabilities, so it goes first).
    fn attributes(
        &self,
        source: &Path,
        target: &Path,
        meta: &fs::Metadata,
    ) -> Result<(), SnapshotError> {
        let key = self.key;
        std::os::unix::fs::lchown(target, Some(meta.uid()), Some(meta.gid()))
            .map_err(SnapshotError::io(key, "chown", target))?;
        let is_symlink = meta.file_type().is_symlink();
        if !is_symlink {
            fs::set_permissions(target, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(SnapshotError::io(key, "chmod", target))?;
        }
        match xattr::list(source) {
            Ok(names) => {
                for name in names {
                    if let Some(value) = xattr::get(source, &name)
                        .map_err(SnapshotError::io(key, "getxattr", source))?
                    {
                        xattr::set(target, &name, &value)
                            .map_err(SnapshotError::io(key, "setxattr", target))?;
                    }
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {}
            Err(e) => return Err(SnapshotError::io(key, "listxattr", source)(e)),
        }
        let mtime = filetime::FileTime::from_last_modification_time(meta);
        let atime = filetime::FileTime::from_last_access_time(meta);
        filetime::set_symlink_file_times(target, atime, mtime)
            .map_err(SnapshotError::io(key, "utimes", target))
    }
}
