//! The containers of one data root: loaded at start, kept in memory, each change written to its
//! record file atomically (temp file, fsync, rename), so a `kill -9` at any moment leaves either
//! the old or the new record.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::Container;
use crate::error::{EngineError, Result};

/// Every container, by id, with the name index.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    inner: Arc<Mutex<HashMap<String, Container>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    /// Loads every `<dir>/<id>/config.json`; unreadable records are skipped with a warning.
    pub fn open(dir: &Path) -> Result<Store> {
        fs::create_dir_all(dir).map_err(|e| EngineError::internal("create containers dir", e))?;
        let mut map = HashMap::new();
        for entry in
            fs::read_dir(dir).map_err(|e| EngineError::internal("read containers dir", e))?
        {
            let Ok(entry) = entry else { continue };
            let path = entry.path().join("config.json");
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Container>(&b).map_err(|e| e.to_string()))
            {
                Ok(c) => {
                    map.insert(c.id.clone(), c);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping container record")
                }
            }
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            inner: Arc::new(Mutex::new(map)),
        })
    }

    /// The directory of container `id`'s record and logs.
    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Adds a new container, refusing a name in use.
    pub fn insert(&self, c: Container) -> Result<()> {
        let mut map = lock(&self.inner);
        if let Some(other) = map.values().find(|o| o.name == c.name) {
            return Err(name_in_use(&c.name, &other.id));
        }
        write_record(&self.dir, &c)?;
        map.insert(c.id.clone(), c);
        Ok(())
    }

    /// Finds a container by full id, name (with or without `/`), or unique id prefix.
    pub fn get(&self, key: &str) -> Result<Container> {
        let map = lock(&self.inner);
        find(&map, key).cloned()
    }

    /// Every container.
    pub fn all(&self) -> Vec<Container> {
        lock(&self.inner).values().cloned().collect()
    }

    /// Changes container `id` with `f` and writes the record; returns the new record.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Container)) -> Result<Container> {
        let mut map = lock(&self.inner);
        let c = map
            .get_mut(id)
            .ok_or_else(|| EngineError::NotFound(format!("No such container: {id}")))?;
        let mut changed = c.clone();
        f(&mut changed);
        write_record(&self.dir, &changed)?;
        *c = changed.clone();
        Ok(changed)
    }

    /// Changes container `id` with `f` in memory only, for a container about to be removed: the
    /// record on disk keeps its last state (after a crash, `reconcile` sees the exit again).
    pub fn update_in_memory(&self, id: &str, f: impl FnOnce(&mut Container)) -> Result<Container> {
        let mut map = lock(&self.inner);
        let c = map
            .get_mut(id)
            .ok_or_else(|| EngineError::NotFound(format!("No such container: {id}")))?;
        f(c);
        Ok(c.clone())
    }

    /// Renames a container; refused if the new name is taken.
    pub fn rename(&self, id: &str, name: &str) -> Result<Container> {
        {
            let map = lock(&self.inner);
            if let Some(other) = map.values().find(|o| o.name == name && o.id != id) {
                return Err(name_in_use(name, &other.id));
            }
        }
        self.update(id, |c| c.name = name.to_string())
    }

    /// Forgets container `id` and removes its directory (record and logs).
    pub fn remove(&self, id: &str) -> Result<()> {
        let mut map = lock(&self.inner);
        map.remove(id);
        let dir = self.dir.join(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(EngineError::internal("remove container dir", e)),
        }
    }

    /// Whether a name is taken.
    pub fn name_taken(&self, name: &str) -> bool {
        lock(&self.inner).values().any(|c| c.name == name)
    }
}

fn name_in_use(name: &str, id: &str) -> EngineError {
    EngineError::Conflict(format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". \
         You have to remove (or rename) that container to be able to reuse that name."
    ))
}

fn find<'a>(map: &'a HashMap<String, Container>, key: &str) -> Result<&'a Container> {
    let not_found = || EngineError::NotFound(format!("No such container: {key}"));
    if key.is_empty() {
        return Err(not_found());
    }
    if let Some(c) = map.get(key) {
        return Ok(c);
    }
    let name = key.strip_prefix('/').unwrap_or(key);
    if let Some(c) = map.values().find(|c| c.name == name) {
        return Ok(c);
    }
    let mut matches = map.values().filter(|c| c.id.starts_with(key));
    match (matches.next(), matches.next()) {
        (Some(c), None) => Ok(c),
        (Some(_), Some(_)) => Err(EngineError::NotFound(format!(
            "No such container: {key} (the prefix is ambiguous)"
        ))),
        _ => Err(not_found()),
    }
}

fn write_record(dir: &Path, c: &Container) -> Result<()> {
    let cdir = dir.join(&c.id);
    fs::create_dir_all(&cdir).map_err(|e| EngineError::internal("create container dir", e))?;
    let bytes = serde_json::to_vec(c).map_err(|e| EngineError::internal("encode record", e))?;
    let tmp = cdir.join("config.json.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, cdir.join("config.json"))
    };
    write().map_err(|e| EngineError::internal("write container record", e))
}
