//! The containers of one data root: loaded at start, kept in memory, each change written to its
//! record file atomically (temp file, fsync, rename), so a `kill -9` at any moment leaves either
//! the old or the new record.
//!
//! A change is written first and seen after: it is made on a copy of the container, the copy is
//! written, and only then does it replace the container in memory. A write that fails (a full
//! disk) changes nothing, in memory or on disk. Changes of one container are serialized by a
//! lock of its own (its writer), held from the copy to the replacement; a new name (create,
//! rename) is reserved while its record is written, so no other container takes it meanwhile.
//!
//! The slow part, the fsync, happens outside the lock of the in-memory map, so that containers
//! created and started together do not queue behind each other's disk writes. Each change takes
//! a sequence number under that lock; a record is renamed into place only if it is newer than
//! the one already there. A removal does not wait for a write in flight: it wins, the late
//! write is dropped (and its change never seen).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{record, Container};
use crate::error::{EngineError, Result};

/// Every container, by id, with the name index.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    inner: Arc<Mutex<Inner>>,
    /// Per container with writes in flight or done: what is on disk. Locked after `inner`.
    written: Arc<Mutex<HashMap<String, Written>>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By id, ordered so that an id prefix is a range (O(log n)); each record behind an `Arc`,
    /// so that a listing takes pointers, not copies.
    containers: BTreeMap<String, Arc<Container>>,
    /// Name to id, so that a name is found without a scan.
    names: HashMap<String, String>,
    /// Per container: its writer, held by whoever changes it from the copy to the replacement
    /// (taken before `inner`, never while holding it).
    writers: HashMap<String, Arc<Mutex<()>>>,
    /// Names whose record is being written (create, rename), with the container taking them.
    reserved: HashMap<String, String>,
    /// The sequence number of the last change.
    seq: u64,
}

/// The disk side of one container's record.
#[derive(Debug, Default)]
struct Written {
    /// The sequence number of the record in place.
    last: u64,
    /// Writes begun and not finished.
    in_flight: u32,
    /// Removed while writes were in flight: they are dropped.
    removed: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    /// Loads every `<dir>/<id>/config.json` (of any record version this code reads, see
    /// [`super::record`]); unreadable records are skipped with a warning, records of a newer
    /// Berth with an error, and both are left on disk as they are.
    pub fn open(dir: &Path) -> Result<Store> {
        fs::create_dir_all(dir).map_err(|e| EngineError::internal("create containers dir", e))?;
        let mut map = BTreeMap::new();
        let mut names = HashMap::new();
        for entry in
            fs::read_dir(dir).map_err(|e| EngineError::internal("read containers dir", e))?
        {
            let Ok(entry) = entry else { continue };
            if entry.file_name().to_string_lossy().starts_with(".removed-") {
                let _ = fs::remove_dir_all(entry.path());
                continue;
            }
            // Temporary records of writes that a crash interrupted.
            for file in fs::read_dir(entry.path()).into_iter().flatten().flatten() {
                if file.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = fs::remove_file(file.path());
                }
            }
            let path = entry.path().join("config.json");
            if !path.exists() && entry.path().is_dir() {
                // A create cut short before its first record: nothing names it.
                tracing::info!(dir = %entry.path().display(), "removing a container never made");
                let _ = fs::remove_dir_all(entry.path());
                continue;
            }
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping container record");
                    continue;
                }
            };
            match record::decode(&bytes) {
                Ok(c) => {
                    names.insert(c.name.clone(), c.id.clone());
                    map.insert(c.id.clone(), Arc::new(c));
                }
                Err(e @ record::RecordError::TooNew { .. }) => {
                    tracing::error!(path = %path.display(), error = %e, "not loading container")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping container record")
                }
            }
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            inner: Arc::new(Mutex::new(Inner {
                containers: map,
                names,
                ..Inner::default()
            })),
            written: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The directory of container `id`'s record and logs.
    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Adds a new container, refusing a name in use. It is seen once its record is written.
    pub fn insert(&self, c: Container) -> Result<()> {
        self.place(c, None).map(|_| ())
    }

    /// Adds a new container under the first of `draw(0)`, `draw(1)`... that no container has
    /// or is taking, drawn under the map's lock: creates at once never draw the same name (as
    /// dockerd reserves its generated names). Returns the name.
    pub fn insert_with_drawn_name(
        &self,
        c: Container,
        mut draw: impl FnMut(u32) -> String,
    ) -> Result<String> {
        self.place(c, Some(&mut draw))
    }

    fn place(
        &self,
        mut c: Container,
        draw: Option<&mut dyn FnMut(u32) -> String>,
    ) -> Result<String> {
        let seq = {
            let mut inner = lock(&self.inner);
            if let Some(draw) = draw {
                let free =
                    |n: &String| !inner.names.contains_key(n) && !inner.reserved.contains_key(n);
                c.name = (0..1000)
                    .map(draw)
                    .find(free)
                    .unwrap_or_else(|| c.id.clone());
            }
            check_name(&inner, &c.name, &c.id)?;
            inner.reserved.insert(c.name.clone(), c.id.clone());
            self.begin_write(&mut inner, &c.id)
        };
        let written = self.write(&c, seq);
        let mut inner = lock(&self.inner);
        inner.reserved.remove(&c.name);
        if let Err(e) = written {
            drop(inner);
            // Nothing of it is left: no record was placed, and its directory holds nothing else.
            let mut all = lock(&self.written);
            if all.get(&c.id).is_some_and(|w| w.in_flight == 0) {
                all.remove(&c.id);
            }
            let _ = fs::remove_dir(self.dir.join(&c.id));
            return Err(e);
        }
        let name = c.name.clone();
        inner.names.insert(c.name.clone(), c.id.clone());
        inner.containers.insert(c.id.clone(), Arc::new(c));
        Ok(name)
    }

    /// Finds a container by full id, name (with or without `/`), or unique id prefix.
    pub fn get(&self, key: &str) -> Result<Container> {
        let inner = lock(&self.inner);
        find(&inner, key).map(|c| Container::clone(c))
    }

    /// Every container (shared, not copied: a later change replaces the record, never changes
    /// one handed out).
    pub fn all(&self) -> Vec<Arc<Container>> {
        lock(&self.inner).containers.values().cloned().collect()
    }

    /// What `f` makes of each container, looked at in place (nothing is cloned).
    pub fn scan<T>(&self, mut f: impl FnMut(&Container) -> Option<T>) -> Vec<T> {
        lock(&self.inner)
            .containers
            .values()
            .filter_map(|c| f(c))
            .collect()
    }

    /// Changes container `id` with `f` and writes the record; returns the new record. The change
    /// is seen once it is on disk: an error means it was made neither on disk nor in memory.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Container)) -> Result<Container> {
        self.change(id, None, f)
    }

    /// [`Store::update`], or, when the record cannot be written (a full disk), the change in
    /// memory only, with a warning: for what happened whatever the disk says (an exit, a stop
    /// asked for) and for a container about to be removed. The record on disk keeps its last
    /// state, which `reconcile` corrects after a restart (it sees the exit again).
    pub fn update_or_in_memory(&self, id: &str, f: impl Fn(&mut Container)) -> Result<Container> {
        match self.update(id, &f) {
            Err(e) if e.is_internal() => {
                tracing::warn!(container = %id, error = %e, "the change is kept in memory only");
                self.update_in_memory(id, f)
            }
            other => other,
        }
    }

    /// The writer of container `id` (see [`Inner::writers`]), or Docker's not-found.
    fn writer(&self, id: &str) -> Result<Arc<Mutex<()>>> {
        let mut inner = lock(&self.inner);
        entry(&mut inner, id)?;
        Ok(Arc::clone(inner.writers.entry(id.to_string()).or_default()))
    }

    /// Changes a copy of container `id` with `f` (taking the name `rename`, if given), writes
    /// it, and only then puts it in place of the container in memory.
    fn change(
        &self,
        id: &str,
        rename: Option<&str>,
        f: impl FnOnce(&mut Container),
    ) -> Result<Container> {
        let writer = self.writer(id)?;
        let _writing = lock(&writer);
        let (mut changed, seq) = {
            let mut inner = lock(&self.inner);
            let c = Container::clone(entry(&mut inner, id)?);
            if let Some(name) = rename {
                check_name(&inner, name, id)?;
                inner.reserved.insert(name.to_string(), id.to_string());
            }
            (c, self.begin_write(&mut inner, id))
        };
        f(&mut changed);
        if let Some(name) = rename {
            changed.name = name.to_string();
        }
        let written = self.write(&changed, seq);
        let mut inner = lock(&self.inner);
        if let Some(name) = rename {
            inner.reserved.remove(name);
        }
        written?;
        // Removed meanwhile: it stays removed.
        if let Some(c) = inner.containers.get_mut(id) {
            let old = std::mem::replace(c, Arc::new(changed.clone()));
            if old.name != changed.name {
                if inner.names.get(&old.name).is_some_and(|named| named == id) {
                    inner.names.remove(&old.name);
                }
                inner.names.insert(changed.name.clone(), id.to_string());
            }
        }
        Ok(changed)
    }

    /// Numbers a change of `id` and counts its write in flight (under the map's lock, so that a
    /// removal sees it).
    fn begin_write(&self, inner: &mut Inner, id: &str) -> u64 {
        inner.seq += 1;
        lock(&self.written)
            .entry(id.to_string())
            .or_default()
            .in_flight += 1;
        inner.seq
    }

    /// Writes change `seq` of `c`'s record, and puts it in place unless a newer one is there or
    /// the container was removed meanwhile.
    fn write(&self, c: &Container, seq: u64) -> Result<()> {
        let cdir = self.dir.join(&c.id);
        let tmp = cdir.join(format!("config.json.{seq}.tmp"));
        let written = (|| -> std::io::Result<()> {
            fs::create_dir_all(&cdir)?;
            let bytes = record::encode(c).map_err(std::io::Error::other)?;
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()
        })();
        let mut all = lock(&self.written);
        let Some(w) = all.get_mut(&c.id) else {
            return Ok(());
        };
        w.in_flight -= 1;
        let placed = match written {
            Ok(()) if !w.removed && seq > w.last => {
                fs::rename(&tmp, cdir.join("config.json")).map(|()| w.last = seq)
            }
            Ok(()) => {
                let _ = fs::remove_file(&tmp);
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        };
        if w.removed {
            // What this late write made is all that is left of the container's directory.
            let _ = fs::remove_dir(&cdir);
            if w.in_flight == 0 {
                all.remove(&c.id);
            }
        }
        placed.map_err(|e| EngineError::internal("write container record", e))
    }

    /// Changes container `id` with `f` in memory only, for a container about to be removed: the
    /// record on disk keeps its last state (after a crash, `reconcile` sees the exit again).
    pub fn update_in_memory(&self, id: &str, f: impl FnOnce(&mut Container)) -> Result<Container> {
        let writer = self.writer(id)?;
        let _writing = lock(&writer);
        let mut inner = lock(&self.inner);
        let c = Arc::make_mut(entry(&mut inner, id)?);
        f(c);
        Ok(c.clone())
    }

    /// Renames a container; refused if the new name is taken. A failed write leaves the old
    /// name, in memory and on disk.
    pub fn rename(&self, id: &str, name: &str) -> Result<Container> {
        self.change(id, Some(name), |_| {})
    }

    /// Forgets container `id` and removes its directory (record and logs).
    pub fn remove(&self, id: &str) -> Result<()> {
        {
            let mut inner = lock(&self.inner);
            if let Some(c) = inner.containers.remove(id) {
                if inner.names.get(&c.name).is_some_and(|named| named == id) {
                    inner.names.remove(&c.name);
                }
            }
            inner.writers.remove(id);
            let mut written = lock(&self.written);
            match written.get_mut(id) {
                Some(w) if w.in_flight > 0 => w.removed = true,
                _ => {
                    written.remove(id);
                }
            }
        }
        // Renamed out of the way at once (a crash leaves a `.removed-` directory, which `open`
        // deletes), then deleted on a thread of its own.
        let dir = self.dir.join(id);
        let trash = self.dir.join(format!(".removed-{id}"));
        match fs::rename(&dir, &trash) {
            Ok(()) => {
                std::thread::spawn(move || {
                    let _ = fs::remove_dir_all(trash);
                });
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(EngineError::internal("remove container dir", e)),
        }
    }

    /// Whether a name is taken.
    pub fn name_taken(&self, name: &str) -> bool {
        let inner = lock(&self.inner);
        inner.reserved.contains_key(name) || inner.names.contains_key(name)
    }
}

/// Refuses `name` for container `id` if another container has it or is taking it.
fn check_name(inner: &Inner, name: &str, id: &str) -> Result<()> {
    if let Some(other) = inner.names.get(name).filter(|other| *other != id) {
        return Err(name_in_use(name, other));
    }
    match inner.reserved.get(name) {
        Some(other) if other != id => Err(name_in_use(name, other)),
        _ => Ok(()),
    }
}

/// Container `id` (a full id) of the map, or Docker's not-found.
fn entry<'a>(inner: &'a mut Inner, id: &str) -> Result<&'a mut Arc<Container>> {
    inner
        .containers
        .get_mut(id)
        .ok_or_else(|| EngineError::NotFound(format!("No such container: {id}")))
}

fn name_in_use(name: &str, id: &str) -> EngineError {
    EngineError::Conflict(format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". \
         You have to remove (or rename) that container to be able to reuse that name."
    ))
}

/// By full id, name (with or without `/`), or unique id prefix: each a map lookup or a range.
fn find<'a>(inner: &'a Inner, key: &str) -> Result<&'a Arc<Container>> {
    let not_found = || EngineError::NotFound(format!("No such container: {key}"));
    if key.is_empty() {
        return Err(not_found());
    }
    let map = &inner.containers;
    if let Some(c) = map.get(key) {
        return Ok(c);
    }
    let name = key.strip_prefix('/').unwrap_or(key);
    if let Some(c) = inner.names.get(name).and_then(|id| map.get(id)) {
        return Ok(c);
    }
    let mut matches = map
        .range::<str, _>((std::ops::Bound::Included(key), std::ops::Bound::Unbounded))
        .take_while(|(id, _)| id.starts_with(key))
        .map(|(_, c)| c);
    match (matches.next(), matches.next()) {
        (Some(c), None) => Ok(c),
        (Some(_), Some(_)) => Err(EngineError::NotFound(format!(
            "No such container: {key} (the prefix is ambiguous)"
        ))),
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, name: &str) -> Container {
        Container {
            id: id.into(),
            name: name.into(),
            created: String::new(),
            image_id: String::new(),
            image_manifest: String::new(),
            image_top: None,
            path: "true".into(),
            args: Vec::new(),
            config: Default::default(),
            host_config: Default::default(),
            state: Default::default(),
            restart_count: 0,
            restart_delay_ms: 0,
            manually_stopped: false,
            log_path: Default::default(),
            networks: Default::default(),
            anonymous_volumes: Vec::new(),
        }
    }

    #[test]
    fn concurrent_changes_reach_the_disk_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.insert(container("a", "one")).unwrap();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..25 {
                        store.update("a", |c| c.restart_count += 1).unwrap();
                    }
                });
            }
        });
        assert_eq!(store.get("a").unwrap().restart_count, 200);
        let reopened = Store::open(dir.path()).unwrap();
        assert_eq!(reopened.get("a").unwrap().restart_count, 200);
        let left: Vec<_> = fs::read_dir(dir.path().join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["config.json"]);
        assert!(store.insert(container("b", "one")).is_err(), "name in use");
    }

    /// Lookups by id, name and prefix follow creates, renames and removals, and survive a
    /// reopening; a listing keeps what it was given while the store changes.
    #[test]
    fn names_ids_and_prefixes_are_found_through_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.insert(container("abc1", "web")).unwrap();
        store.insert(container("abd2", "db")).unwrap();
        store.insert(container("b", "abc1x")).unwrap();
        assert_eq!(store.get("/web").unwrap().id, "abc1");
        assert_eq!(store.get("abd").unwrap().id, "abd2");
        let err = store.get("ab").unwrap_err().to_string();
        assert!(err.contains("ambiguous"), "{err}");
        assert!(store.get("abe").is_err() && store.get("").is_err());
        // A name that looks like an id prefix is the name.
        assert_eq!(store.get("abc1x").unwrap().id, "b");
        let listed = store.all();
        store.rename("abc1", "front").unwrap();
        assert!(store.get("web").is_err() && !store.name_taken("web"));
        assert_eq!(store.get("front").unwrap().id, "abc1");
        assert!(store.insert(container("c", "front")).is_err());
        store.insert(container("c", "web")).unwrap();
        store.remove("abd2").unwrap();
        assert!(store.get("db").is_err() && store.get("abd").is_err());
        assert!(!store.name_taken("db"));
        let names = |s: &Store| {
            let mut n: Vec<String> = s.all().iter().map(|c| c.name.clone()).collect();
            n.sort();
            n
        };
        assert_eq!(names(&store), ["abc1x", "front", "web"]);
        assert_eq!(
            names(&Store::open(dir.path()).unwrap()),
            ["abc1x", "front", "web"]
        );
        let mut before: Vec<&str> = listed.iter().map(|c| c.name.as_str()).collect();
        before.sort();
        assert_eq!(before, ["abc1x", "db", "web"]);
    }

    /// Creates at once that draw the same names each get a name of their own: the draw is
    /// made under the map's lock, before any of them is written.
    #[test]
    fn drawn_names_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.insert(container("taken", "same")).unwrap();
        let names: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|i| {
                    let store = &store;
                    s.spawn(move || {
                        store
                            .insert_with_drawn_name(container(&format!("c{i}"), ""), |n| {
                                if n == 0 {
                                    "same".to_string()
                                } else {
                                    format!("same{n}")
                                }
                            })
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut distinct = names.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 16, "{names:?}");
        assert!(!names.contains(&"same".to_string()));
        for name in &names {
            assert!(store.get(name).is_ok(), "{name}");
        }
    }

    /// A store on a tmpfs of its own, made full: every write fails with ENOSPC.
    fn full_store() -> Option<(berth_tests::smallfs::SmallFs, Store)> {
        if berth_tests::smallfs::skip(false) {
            return None;
        }
        let mut fs = berth_tests::smallfs::SmallFs::tmpfs(256 << 10).unwrap();
        let store = Store::open(fs.path()).unwrap();
        store.insert(container("a", "old")).unwrap();
        fs.fill().unwrap();
        Some((fs, store))
    }

    #[test]
    fn a_change_that_cannot_be_written_is_not_seen() {
        let Some((mut fs, store)) = full_store() else {
            return;
        };
        let err = store.update("a", |c| c.restart_count = 7).unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        assert_eq!(store.get("a").unwrap().restart_count, 0);
        let err = store.insert(container("b", "new")).unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        assert!(store.get("b").is_err() && !store.name_taken("new"));
        fs.unfill();
        store.update("a", |c| c.restart_count = 7).unwrap();
        assert_eq!(store.get("a").unwrap().restart_count, 7);
        let reopened = Store::open(fs.path()).unwrap();
        assert_eq!(reopened.get("a").unwrap().restart_count, 7);
    }

    #[test]
    fn a_rename_that_cannot_be_written_keeps_the_old_name() {
        let Some((mut fs, store)) = full_store() else {
            return;
        };
        let err = store.rename("a", "new").unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        assert_eq!(store.get("old").unwrap().id, "a");
        assert!(store.get("new").is_err());
        assert!(!store.name_taken("new"), "the name is free again");
        assert_eq!(
            Store::open(fs.path()).unwrap().get("a").unwrap().name,
            "old"
        );
        // What must happen whatever the disk says is kept in memory.
        let kept = store
            .update_or_in_memory("a", |c| c.manually_stopped = true)
            .unwrap();
        assert!(kept.manually_stopped && store.get("a").unwrap().manually_stopped);
        fs.unfill();
        store.rename("a", "new").unwrap();
        assert_eq!(store.get("new").unwrap().id, "a");
        assert!(store.get("old").is_err());
        assert_eq!(
            Store::open(fs.path()).unwrap().get("a").unwrap().name,
            "new"
        );
    }

    #[test]
    fn a_removal_beats_writes_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for round in 0..20 {
            let id = format!("c{round}");
            store.insert(container(&id, &id)).unwrap();
            std::thread::scope(|s| {
                s.spawn(|| {
                    for _ in 0..10 {
                        let _ = store.update(&id, |c| c.restart_count += 1);
                    }
                });
                s.spawn(|| {
                    let _ = store.remove(&id);
                });
            });
            // Every write has finished (the scope joined its threads): nothing is left.
            assert!(!dir.path().join(&id).exists(), "{id} is left");
            assert!(store.get(&id).is_err());
        }
        assert!(Store::open(dir.path()).unwrap().all().is_empty());
    }
}
