//! The snapshotters' bookkeeping, shared by the backends: which snapshots exist, their kind,
//! parent and directory id, kept in `root/metadata.json` (a checkpoint) and `root/metadata.log`
//! (the changes since, see [`super::journal`]).
//!
//! A change is appended to the log and synced; once the log holds as many changes as there are
//! snapshots (at least 256), and when the root is opened or closed, the whole state is written
//! to `metadata.json.tmp`, synced and renamed over `metadata.json`, and the log emptied, so a
//! change costs the same whatever the number of snapshots. A change is made in memory first and
//! undone if the write fails (all under the backend's mutex: nobody sees it in between). Directory ids are
//! short numbers that are never reused (`next_id` is stored), so a directory left behind by a
//! crash before its metadata was written can be recognised as an orphan and replaced.
//!
//! A removal needs no space: when the metadata cannot be saved for lack of it (ENOSPC, EDQUOT),
//! the snapshot's directory is deleted first and the save tried again. From then on the snapshot
//! is gone, even if that save fails as well: the next save writes the metadata without it, and
//! [`Store::open`] drops a record whose directory is missing.
//!
//! One snapshotter instance owns a root at a time: [`Store::open`] takes an exclusive `flock` on
//! `root/lock` for the life of the instance (a second instance, in this process or another, gets
//! [`SnapshotError::Locked`]), and the backends serialise their own operations with a mutex around
//! the [`Store`].

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::journal::{Change, Journal};
use super::{check_key, Info, Kind, SnapshotError};

/// What is stored of one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The directory id: the snapshot lives in `root/snapshots/<id>`.
    pub id: u64,
    /// The committed snapshot it sits on.
    pub parent: Option<String>,
    /// Its kind.
    pub kind: Kind,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Data {
    /// The last id handed out.
    next_id: u64,
    snapshots: BTreeMap<String, Record>,
    /// The number of the last change this state holds (see [`super::journal`]).
    #[serde(default)]
    seq: u64,
}

impl Data {
    /// Replays a change of the log.
    fn apply(&mut self, change: Change) {
        match change {
            Change::Insert { key, record } => {
                self.next_id = self.next_id.max(record.id);
                self.snapshots.insert(key, record);
            }
            Change::Commit { name, key, parent } => {
                if let Some(mut record) = self.snapshots.remove(&key) {
                    record.kind = Kind::Committed;
                    record.parent = parent;
                    self.snapshots.insert(name, record);
                }
            }
            Change::Remove { key } => {
                self.snapshots.remove(&key);
            }
        }
    }
}

/// The metadata of one snapshotter root, loaded in memory.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    data: Data,
    journal: Journal,
    /// Whether `metadata.json` exists (the first change writes it: its presence says which
    /// backend made the root).
    checkpointed: bool,
    /// Holds the root's `flock` while open.
    _lock: fs::File,
}

/// How long a held lock of the root is waited for before another instance is assumed.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

impl Store {
    /// Loads `root/metadata.json`, or starts empty if there is none (creating `root`).
    pub fn open(root: &Path) -> Result<Store, SnapshotError> {
        let path = root.join("metadata.json");
        let meta_err = |source| SnapshotError::Metadata {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(root).map_err(meta_err)?;
        let lock_path = root.join("lock");
        let lock = fs::File::create(&lock_path).map_err(|source| SnapshotError::Metadata {
            path: lock_path.clone(),
            source,
        })?;
        // A lock can outlive its instance for a moment: a child another thread of that
        // process forked shares the lock's open file until it execs. Another instance holds
        // it for good, and is refused once LOCK_WAIT is over.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    return Err(SnapshotError::Locked {
                        root: root.to_owned(),
                    })
                }
                Err(e) => {
                    return Err(SnapshotError::Metadata {
                        path: lock_path,
                        source: e.into(),
                    })
                }
            }
        }
        let (mut data, checkpointed) = match fs::read(&path) {
            Ok(bytes) => (
                serde_json::from_slice::<Data>(&bytes).map_err(|e| meta_err(e.into()))?,
                true,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Data::default(), false),
            Err(e) => return Err(meta_err(e)),
        };
        let log_path = root.join("metadata.log");
        let (journal, changes) =
            Journal::open(&log_path).map_err(|source| SnapshotError::Metadata {
                path: log_path.clone(),
                source,
            })?;
        for (seq, change) in changes {
            // Changes a checkpoint already holds (a crash before the log was emptied).
            if seq > data.seq {
                data.apply(change);
                data.seq = seq;
            }
        }
        let mut store = Store {
            path,
            data,
            journal,
            checkpointed,
            _lock: lock,
        };
        // Removals whose data went but whose metadata could not be saved (a full disk).
        let dropped = store.drop_missing(&root.join("snapshots"));
        if dropped || store.journal.entries() > 0 {
            let _ = store.checkpoint();
        }
        Ok(store)
    }

    /// Forgets the snapshots without children whose directory `snapshots/<id>` is missing (over
    /// and over: a parent can be next); whether any went.
    fn drop_missing(&mut self, snapshots: &Path) -> bool {
        let mut dropped = false;
        loop {
            let parents: std::collections::HashSet<String> = self
                .data
                .snapshots
                .values()
                .filter_map(|r| r.parent.clone())
                .collect();
            let gone: Vec<String> = self
                .data
                .snapshots
                .iter()
                .filter(|(key, r)| {
                    !parents.contains(*key)
                        && matches!(
                            fs::symlink_metadata(snapshots.join(r.id.to_string())),
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound
                        )
                })
                .map(|(key, _)| key.clone())
                .collect();
            if gone.is_empty() {
                return dropped;
            }
            for key in gone {
                self.data.snapshots.remove(&key);
            }
            dropped = true;
        }
    }

    /// The record of `key`.
    pub fn get(&self, key: &str) -> Result<&Record, SnapshotError> {
        self.data
            .snapshots
            .get(key)
            .ok_or_else(|| SnapshotError::NotFound {
                key: key.to_owned(),
            })
    }

    /// The id of active snapshot `key`, for `upper_dir`; an error for any other kind.
    pub fn active_id(&self, key: &str) -> Result<u64, SnapshotError> {
        let record = self.get(key)?;
        if record.kind != Kind::Active {
            return Err(SnapshotError::WrongKind {
                key: key.to_owned(),
                kind: record.kind,
                op: "upper_dir",
                wanted: "an active snapshot",
            });
        }
        Ok(record.id)
    }

    /// The [`Info`] of `key`.
    pub fn info(&self, key: &str) -> Result<Info, SnapshotError> {
        let record = self.get(key)?;
        Ok(info(key, record))
    }

    /// Every snapshot, sorted by key.
    pub fn list(&self) -> Vec<Info> {
        self.data
            .snapshots
            .iter()
            .map(|(key, record)| info(key, record))
            .collect()
    }

    /// The ids of `parent` and all its ancestors, nearest first (empty for no parent).
    pub fn chain(&self, parent: Option<&str>) -> Result<Vec<u64>, SnapshotError> {
        let mut ids = Vec::new();
        let mut next = parent;
        while let Some(key) = next {
            let record = self.get(key)?;
            ids.push(record.id);
            next = record.parent.as_deref();
        }
        Ok(ids)
    }

    /// Checks that `key` is free and `parent` (if any) is committed, and hands out the id the new
    /// snapshot's directory gets. Nothing is recorded until [`Store::insert`].
    pub fn reserve(&mut self, key: &str, parent: Option<&str>) -> Result<u64, SnapshotError> {
        check_key(key)?;
        if self.data.snapshots.contains_key(key) {
            return Err(SnapshotError::AlreadyExists {
                key: key.to_owned(),
            });
        }
        if let Some(parent) = parent {
            let record = self.get(parent)?;
            if record.kind != Kind::Committed {
                return Err(SnapshotError::ParentNotCommitted {
                    key: key.to_owned(),
                    parent: parent.to_owned(),
                    kind: record.kind,
                });
            }
        }
        self.data.next_id += 1;
        Ok(self.data.next_id)
    }

    /// Records a new snapshot (its directory made) and saves.
    pub fn insert(&mut self, key: &str, record: Record) -> Result<(), SnapshotError> {
        self.data.snapshots.insert(key.to_owned(), record.clone());
        let saved = self.persist(Change::Insert {
            key: key.to_owned(),
            record,
        });
        if saved.is_err() {
            self.data.snapshots.remove(key);
        }
        saved
    }

    /// Turns active `key` into committed `name` and saves.
    pub fn commit(&mut self, name: &str, key: &str) -> Result<(), SnapshotError> {
        let parent = self.get(key)?.parent.clone();
        self.commit_onto(name, key, parent.as_deref())
    }

    /// Turns active `key` into committed `name` sitting on committed `parent` (which may differ
    /// from the parent it was prepared on) and saves.
    pub fn commit_onto(
        &mut self,
        name: &str,
        key: &str,
        parent: Option<&str>,
    ) -> Result<(), SnapshotError> {
        check_key(name)?;
        if let Some(parent) = parent {
            let kind = self.get(parent)?.kind;
            if kind != Kind::Committed {
                return Err(SnapshotError::ParentNotCommitted {
                    key: key.to_owned(),
                    parent: parent.to_owned(),
                    kind,
                });
            }
        }
        let record = self.get(key)?;
        if record.kind != Kind::Active {
            return Err(SnapshotError::WrongKind {
                key: key.to_owned(),
                kind: record.kind,
                op: "commit",
                wanted: "an active snapshot",
            });
        }
        if self.data.snapshots.contains_key(name) {
            return Err(SnapshotError::AlreadyExists {
                key: name.to_owned(),
            });
        }
        let Some(mut record) = self.data.snapshots.remove(key) else {
            return Err(SnapshotError::NotFound {
                key: key.to_owned(),
            });
        };
        let active = record.clone();
        record.kind = Kind::Committed;
        record.parent = parent.map(str::to_owned);
        self.data.snapshots.insert(name.to_owned(), record);
        let saved = self.persist(Change::Commit {
            name: name.to_owned(),
            key: key.to_owned(),
            parent: parent.map(str::to_owned),
        });
        if saved.is_err() {
            self.data.snapshots.remove(name);
            self.data.snapshots.insert(key.to_owned(), active);
        }
        saved
    }

    /// Forgets `key` (refused while snapshots sit on it) and saves; returns its record so the
    /// caller can delete its data (outside the backend's lock). When the save fails for lack of
    /// space, the data is deleted here with `free` and the save tried again (see the module doc):
    /// then `None` is returned, and the snapshot is gone once `free` has run, whatever it says.
    pub fn remove(
        &mut self,
        key: &str,
        free: impl FnOnce(&Record) -> Result<(), SnapshotError>,
    ) -> Result<Option<Record>, SnapshotError> {
        self.get(key)?;
        let children: Vec<String> = self
            .data
            .snapshots
            .iter()
            .filter(|(_, r)| r.parent.as_deref() == Some(key))
            .map(|(k, _)| k.clone())
            .collect();
        if !children.is_empty() {
            return Err(SnapshotError::HasChildren {
                key: key.to_owned(),
                children,
            });
        }
        let Some(record) = self.data.snapshots.remove(key) else {
            return Err(SnapshotError::NotFound {
                key: key.to_owned(),
            });
        };
        let change = Change::Remove {
            key: key.to_owned(),
        };
        match self.persist(change.clone()) {
            Ok(()) => Ok(Some(record)),
            Err(e) if e.is_no_space() => {
                let freed = free(&record);
                // The data is gone, hence the snapshot: a failure here is made good by the next
                // checkpoint, or by `open`.
                let _ = self.persist(change);
                freed.map(|()| None)
            }
            Err(e) => {
                self.data.snapshots.insert(key.to_owned(), record);
                Err(e)
            }
        }
    }

    /// Records `change` (already made in memory): appended to the log, or, before the root has
    /// a checkpoint, in a first one. The log is folded into a checkpoint once it holds as many
    /// changes as there are snapshots.
    fn persist(&mut self, change: Change) -> Result<(), SnapshotError> {
        let seq = self.data.seq + 1;
        if !self.checkpointed {
            self.data.seq = seq;
            let saved = self.checkpoint();
            if saved.is_err() {
                self.data.seq = seq - 1;
            }
            return saved;
        }
        self.journal
            .append(seq, &change)
            .map_err(|source| SnapshotError::Metadata {
                path: self.journal.path().to_owned(),
                source,
            })?;
        self.data.seq = seq;
        if self.journal.entries() >= self.data.snapshots.len().max(256) {
            // The log stays good if this fails.
            let _ = self.checkpoint();
        }
        Ok(())
    }

    /// Writes the whole state to `metadata.json` and empties the log.
    fn checkpoint(&mut self) -> Result<(), SnapshotError> {
        self.save()?;
        self.checkpointed = true;
        self.journal
            .clear()
            .map_err(|source| SnapshotError::Metadata {
                path: self.journal.path().to_owned(),
                source,
            })
    }

    /// Writes the metadata atomically: temp file, fsync, rename. A failed write leaves no
    /// temporary file (it would hold the space the next try needs).
    fn save(&self) -> Result<(), SnapshotError> {
        let meta_err = |source| SnapshotError::Metadata {
            path: self.path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(&self.data).map_err(|e| meta_err(e.into()))?;
        let tmp = self.path.with_extension("json.tmp");
        let written = fs::File::create(&tmp).and_then(|mut file| {
            file.write_all(&bytes)?;
            file.sync_all()
        });
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(meta_err(e));
        }
        fs::rename(&tmp, &self.path).map_err(meta_err)
    }
}

impl Drop for Store {
    /// A root closed leaves its state in `metadata.json` alone (best effort: the log is as
    /// good).
    fn drop(&mut self) {
        if self.journal.entries() > 0 {
            let _ = self.checkpoint();
        }
    }
}

fn info(key: &str, record: &Record) -> Info {
    Info {
        key: key.to_owned(),
        parent: record.parent.clone(),
        kind: record.kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record of a new active snapshot, its directory made (a record without one is
    /// dropped at open).
    fn active(root: &Path, id: u64) -> Record {
        fs::create_dir_all(root.join("snapshots").join(id.to_string())).unwrap();
        Record {
            id,
            parent: None,
            kind: Kind::Active,
        }
    }

    fn keys(s: &Store) -> Vec<String> {
        s.list().into_iter().map(|i| i.key).collect()
    }

    /// Changes reach the log, not the checkpoint; a store that dies without closing (a
    /// `kill -9`) is whole at the next open, which folds the log into the checkpoint.
    #[test]
    fn changes_since_the_checkpoint_survive_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut s = Store::open(root).unwrap();
        for (i, key) in ["base", "a", "b"].iter().enumerate() {
            let id = s.reserve(key, None).unwrap();
            assert_eq!(id, i as u64 + 1);
            s.insert(key, active(root, id)).unwrap();
        }
        s.commit("base-c", "base").unwrap();
        s.remove("a", |_| Ok(())).unwrap();
        let checkpoint = fs::read_to_string(root.join("metadata.json")).unwrap();
        assert!(!checkpoint.contains("\"b\""), "b is only in the log");
        assert_eq!(
            fs::read_to_string(root.join("metadata.log"))
                .unwrap()
                .lines()
                .count(),
            4
        );
        std::mem::forget(s);
        // The crashed instance's lock went with its process: here, with its descriptor.
        for fd in fs::read_dir("/proc/self/fd").unwrap().flatten() {
            let target = fs::read_link(fd.path()).unwrap_or_default();
            if target == root.join("lock") || target == root.join("metadata.log") {
                let n: i32 = fd.file_name().to_string_lossy().parse().unwrap();
                // SAFETY: the descriptor belongs to the store forgotten above, which never
                // uses it again.
                drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n) });
            }
        }
        let mut s = Store::open(root).unwrap();
        assert_eq!(keys(&s), ["b", "base-c"]);
        assert_eq!(s.get("base-c").unwrap().kind, Kind::Committed);
        assert_eq!(fs::read(root.join("metadata.log")).unwrap(), b"");
        // Ids are never handed out twice.
        assert_eq!(s.reserve("c", None).unwrap(), 4);
        drop(s);
        let data: Data =
            serde_json::from_slice(&fs::read(root.join("metadata.json")).unwrap()).unwrap();
        assert_eq!(data.snapshots.len(), 2);
    }

    /// A crash after a checkpoint was written, before the log was emptied: the changes it holds
    /// are not replayed again (a removed key stays removed, a committed one is not lost).
    #[test]
    fn a_checkpoint_and_a_stale_log_replay_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut s = Store::open(root).unwrap();
        let id = s.reserve("x", None).unwrap();
        s.insert("x", active(root, id)).unwrap();
        s.commit("x-c", "x").unwrap();
        let log = fs::read(root.join("metadata.log")).unwrap();
        drop(s);
        // The state after the commit is in the checkpoint; the log comes back as it was.
        fs::write(root.join("metadata.log"), &log).unwrap();
        let s = Store::open(root).unwrap();
        assert_eq!(keys(&s), ["x-c"]);
        assert_eq!(s.get("x-c").unwrap().kind, Kind::Committed);
    }

    /// The log is folded into the checkpoint as it grows: it never holds more changes than
    /// there are snapshots (or 256).
    #[test]
    fn the_log_stays_short() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut s = Store::open(root).unwrap();
        for i in 0..300 {
            let key = format!("k{i}");
            let id = s.reserve(&key, None).unwrap();
            s.insert(&key, active(root, id)).unwrap();
            s.remove(&key, |_| Ok(())).unwrap();
            assert!(s.journal.entries() < 256, "{} entries", s.journal.entries());
        }
        assert!(keys(&s).is_empty());
    }
}
