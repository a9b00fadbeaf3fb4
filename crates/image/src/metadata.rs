//! The image metadata store: names and tags of images, references to images from containers,
//! and leases that keep in-flight content alive, in one embedded transactional database
//! (`redb`: ACID, single file, no server). Blobs live in the content store; this holds names.
//!
//! Every change is one write transaction: a crash leaves the previous state or the new one.
//!
//! After an I/O error (a full disk) redb refuses every later call with
//! [`redb::Error::PreviousIo`] until the database is closed and opened again. So the database
//! sits in a slot: a call that meets an I/O error drops the handle (it holds the file's lock)
//! and opens the file again, and a call refused with `PreviousIo` (which did nothing) is
//! retried once on the new handle. A reopen that fails leaves the slot empty, and the next call
//! tries again. Calls run under the slot's read lock, a reopen under its write lock.
//!
//! Reopening loses the user records committed without a sync since the last synced commit (see
//! [`Metadata::add_user`]); the check of [`Metadata::delete_image`] reads the users from memory,
//! kept in step with every commit, so it loses nothing.
//!
//! A commit writes new pages, and a full disk has no blocks for them: removals, which are what
//! frees space, would fail there. So [`RESERVE`] bytes are held beside the database, allocated
//! in `<name>.reserve` (CockroachDB's "emergency ballast"). A removal (of a name, a user, a
//! lease) whose commit fails for lack of space deletes that file and is tried again; the
//! reserve is made again by the first call that succeeds once there is room for it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// image name (normalised reference) → JSON of [`Image`].
const IMAGES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("images");
/// "<image digest>\0<container id>" → () : containers using an image.
const USERS: TableDefinition<'_, &str, ()> = TableDefinition::new("image_users");
/// lease id → JSON of [`Lease`].
const LEASES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("leases");

/// Bytes held in reserve for the commits of removals on a full disk (see the module doc).
pub const RESERVE: u64 = 2 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata store {path}: {source}")]
    Open {
        path: String,
        source: redb::DatabaseError,
    },
    /// What redb said (boxed: some of its variants are large).
    #[error("metadata store: {0}")]
    Db(#[source] Box<redb::Error>),
    #[error("metadata store: encoding a record: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("metadata store: corrupt record {key}: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("conflict: unable to remove image {name} ({digest}): image is being used by container {container}")]
    InUse {
        name: String,
        digest: Digest,
        container: String,
    },
}

fn dberr(e: impl Into<redb::Error>) -> MetadataError {
    MetadataError::Db(Box::new(e.into()))
}

/// What a name points at: the manifest (or index) of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub name: String,
    pub target: Digest,
    pub media_type: String,
    pub size: u64,
    /// RFC 3339.
    pub created: String,
}

/// Content kept alive while something is in flight (a pull, an import).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: String,
    /// Seconds since the epoch after which the lease no longer protects anything.
    pub expires: u64,
    pub blobs: Vec<Digest>,
    pub snapshots: Vec<String>,
}

#[derive(Debug)]
pub struct Metadata {
    path: PathBuf,
    slot: RwLock<Slot>,
    /// The user records ("<digest>\0<container>") as committed, for [`Metadata::delete_image`].
    users: Mutex<BTreeSet<String>>,
    /// Whether the reserve file is there (see the module doc).
    reserved: AtomicBool,
}

/// The open database, if any (see the module doc).
#[derive(Debug)]
struct Slot {
    db: Option<Database>,
    /// Counts the opens: of several calls failing on one handle, only the first reopens it.
    generation: u64,
}

/// What a failed call says about the handle it ran on.
enum Failure {
    /// Nothing to do with the handle.
    Other,
    /// It met an I/O error: the handle is of no use any more.
    Io,
    /// The handle was already of no use: the call did nothing.
    Refused,
}

fn failure(e: &MetadataError) -> Failure {
    match e {
        MetadataError::Db(e) => match **e {
            redb::Error::Io(_) => Failure::Io,
            redb::Error::PreviousIo => Failure::Refused,
            _ => Failure::Other,
        },
        _ => Failure::Other,
    }
}

/// Whether a call failed for lack of space (ENOSPC, EDQUOT), in a commit or in a reopen.
fn no_space(e: &MetadataError) -> bool {
    let io = match e {
        MetadataError::Db(e) => match &**e {
            redb::Error::Io(io) => io,
            _ => return false,
        },
        MetadataError::Open {
            source: redb::DatabaseError::Storage(redb::StorageError::Io(io)),
            ..
        } => io,
        _ => return false,
    };
    matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

impl Metadata {
    /// Opens (creating if needed) the database file.
    pub fn open(path: &Path) -> Result<Metadata, MetadataError> {
        let db = open_db(path)?;
        // The tables are made once (a write at every open would fail on a full disk).
        let missing = {
            let txn = db.begin_read().map_err(dberr)?;
            let absent = |e: redb::TableError| match e {
                redb::TableError::TableDoesNotExist(_) => Ok(true),
                e => Err(dberr(e)),
            };
            txn.open_table(IMAGES).map_or_else(absent, |_| Ok(false))?
                || txn.open_table(USERS).map_or_else(absent, |_| Ok(false))?
                || txn.open_table(LEASES).map_or_else(absent, |_| Ok(false))?
        };
        if missing {
            let txn = db.begin_write().map_err(dberr)?;
            txn.open_table(IMAGES).map_err(dberr)?;
            txn.open_table(USERS).map_err(dberr)?;
            txn.open_table(LEASES).map_err(dberr)?;
            txn.commit().map_err(dberr)?;
        }
        let users = {
            let txn = db.begin_read().map_err(dberr)?;
            let table = txn.open_table(USERS).map_err(dberr)?;
            let mut users = BTreeSet::new();
            for entry in table.iter().map_err(dberr)? {
                users.insert(entry.map_err(dberr)?.0.value().to_string());
            }
            users
        };
        let metadata = Metadata {
            path: path.to_path_buf(),
            slot: RwLock::new(Slot {
                db: Some(db),
                generation: 0,
            }),
            users: Mutex::new(users),
            reserved: AtomicBool::new(false),
        };
        metadata.keep_reserve();
        Ok(metadata)
    }

    fn reserve_path(&self) -> PathBuf {
        self.path.with_extension("reserve")
    }

    /// Makes the reserve file if it is not there; a disk without room for it leaves none.
    fn keep_reserve(&self) {
        if self.reserved.load(Ordering::Acquire) {
            return;
        }
        let path = self.reserve_path();
        let made = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .and_then(|file| {
                rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, RESERVE)
                    .map_err(std::io::Error::from)
            });
        match made {
            Ok(()) => self.reserved.store(true, Ordering::Release),
            Err(_) => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// Runs the removal `op` ([`Metadata::run`]); when it fails for lack of space, the reserve
    /// goes and it is tried again.
    fn run_removal<T>(
        &self,
        op: impl Fn(&Database) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        match self.run(&op) {
            Err(e) if no_space(&e) => {
                self.reserved.store(false, Ordering::Release);
                if std::fs::remove_file(self.reserve_path()).is_err() {
                    return Err(e);
                }
                self.run(&op)
            }
            other => other,
        }
    }

    /// Runs `op` on the database, reopening it as the module doc says.
    fn run<T>(
        &self,
        op: impl Fn(&Database) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        let mut reopened = false;
        loop {
            let (result, generation) = {
                let slot = self.slot.read().unwrap_or_else(PoisonError::into_inner);
                (slot.db.as_ref().map(&op), slot.generation)
            };
            let Some(result) = result else {
                // A reopen failed earlier: this call tries again.
                if reopened {
                    return Err(dberr(redb::Error::PreviousIo));
                }
                self.reopen(generation)?;
                reopened = true;
                continue;
            };
            let Err(e) = result else {
                self.keep_reserve();
                return result;
            };
            match failure(&e) {
                Failure::Refused if !reopened => {
                    self.reopen(generation)?;
                    reopened = true;
                }
                Failure::Io | Failure::Refused => {
                    // The error is this call's; the next one finds a usable handle.
                    let _ = self.reopen(generation);
                    return Err(e);
                }
                Failure::Other => return Err(e),
            }
        }
    }

    /// Drops the handle of generation `failed` and opens the file again (unless another call
    /// did already).
    fn reopen(&self, failed: u64) -> Result<(), MetadataError> {
        let mut slot = self.slot.write().unwrap_or_else(PoisonError::into_inner);
        if slot.generation != failed && slot.db.is_some() {
            return Ok(());
        }
        // The old handle first: it holds the file's lock.
        slot.db = None;
        slot.generation += 1;
        slot.db = Some(open_db(&self.path)?);
        Ok(())
    }

    fn users(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Names `image.name` → `image` (a tag moves if it pointed elsewhere).
    pub fn put_image(&self, image: &Image) -> Result<(), MetadataError> {
        let data = serde_json::to_vec(image).map_err(MetadataError::Encode)?;
        self.run(|db| {
            let txn = db.begin_write().map_err(dberr)?;
            txn.open_table(IMAGES)
                .map_err(dberr)?
                .insert(image.name.as_str(), data.as_slice())
                .map_err(dberr)?;
            txn.commit().map_err(dberr)
        })
    }

    pub fn image(&self, name: &str) -> Result<Image, MetadataError> {
        self.run(|db| {
            let txn = db.begin_read().map_err(dberr)?;
            let table = txn.open_table(IMAGES).map_err(dberr)?;
            let value = table
                .get(name)
                .map_err(dberr)?
                .ok_or_else(|| MetadataError::NoSuchImage(name.to_string()))?;
            decode(name, value.value())
        })
    }

    /// Every name, sorted.
    pub fn images(&self) -> Result<Vec<Image>, MetadataError> {
        self.run(|db| {
            let txn = db.begin_read().map_err(dberr)?;
            let table = txn.open_table(IMAGES).map_err(dberr)?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(dberr)? {
                let (k, v) = entry.map_err(dberr)?;
                out.push(decode(k.value(), v.value())?);
            }
            Ok(out)
        })
    }

    /// Removes the name. Refused while a container uses the image it names and no other name
    /// points at it, unless `force`.
    pub fn delete_image(&self, name: &str, force: bool) -> Result<Image, MetadataError> {
        self.run_removal(|db| {
            let txn = db.begin_write().map_err(dberr)?;
            let image = {
                let mut images = txn.open_table(IMAGES).map_err(dberr)?;
                let image = match images.get(name).map_err(dberr)? {
                    Some(v) => decode(name, v.value())?,
                    None => return Err(MetadataError::NoSuchImage(name.to_string())),
                };
                let other_names = images
                    .iter()
                    .map_err(dberr)?
                    .filter_map(Result::ok)
                    .filter(|(k, v)| {
                        k.value() != name
                            && decode(k.value(), v.value()).is_ok_and(|i| i.target == image.target)
                    })
                    .count();
                if !force && other_names == 0 {
                    let prefix = format!("{}\0", image.target);
                    let user = self
                        .users()
                        .range(prefix.clone()..)
                        .take_while(|k| k.starts_with(&prefix))
                        .next()
                        .cloned();
                    if let Some(user) = user {
                        return Err(MetadataError::InUse {
                            name: name.to_string(),
                            digest: image.target.clone(),
                            container: user[prefix.len()..].to_string(),
                        });
                    }
                }
                images.remove(name).map_err(dberr)?;
                image
            };
            txn.commit().map_err(dberr)?;
            Ok(image)
        })
    }

    /// Records that `container` uses the image `target`.
    ///
    /// Users are derived state: whoever keeps the containers restates them all at start with
    /// [`Metadata::set_users`]. So this and [`Metadata::remove_user`] commit without waiting for
    /// the disk (a machine crash can lose them, never half-apply them), which keeps two syncs off
    /// every container's create and removal.
    pub fn add_user(&self, target: &Digest, container: &str) -> Result<(), MetadataError> {
        let key = format!("{target}\0{container}");
        self.run(|db| {
            let mut txn = db.begin_write().map_err(dberr)?;
            txn.set_durability(redb::Durability::None);
            txn.open_table(USERS)
                .map_err(dberr)?
                .insert(key.as_str(), ())
                .map_err(dberr)?;
            txn.commit().map_err(dberr)
        })?;
        self.users().insert(key);
        Ok(())
    }

    /// Forgets that `container` uses the image `target` (see [`Metadata::add_user`]). The user
    /// is forgotten in memory even when the commit fails (a full disk): a user that is gone
    /// must not keep its image, and the records are restated at the next start.
    pub fn remove_user(&self, target: &Digest, container: &str) -> Result<(), MetadataError> {
        let key = format!("{target}\0{container}");
        self.users().remove(&key);
        self.run_removal(|db| {
            let mut txn = db.begin_write().map_err(dberr)?;
            txn.set_durability(redb::Durability::None);
            txn.open_table(USERS)
                .map_err(dberr)?
                .remove(key.as_str())
                .map_err(dberr)?;
            txn.commit().map_err(dberr)
        })
    }

    /// Replaces every user record with `users` (image, container), durably. The users are
    /// known in memory even when the commit fails (a full disk): they are the truth, restated
    /// by whoever keeps the containers.
    pub fn set_users<'a>(
        &self,
        users: impl IntoIterator<Item = (&'a Digest, &'a str)>,
    ) -> Result<(), MetadataError> {
        let keys: BTreeSet<String> = users
            .into_iter()
            .map(|(target, container)| format!("{target}\0{container}"))
            .collect();
        self.users().clone_from(&keys);
        self.run(|db| {
            let txn = db.begin_write().map_err(dberr)?;
            txn.delete_table(USERS).map_err(dberr)?;
            {
                let mut table = txn.open_table(USERS).map_err(dberr)?;
                for key in &keys {
                    table.insert(key.as_str(), ()).map_err(dberr)?;
                }
            }
            txn.commit().map_err(dberr)
        })
    }

    pub fn put_lease(&self, lease: &Lease) -> Result<(), MetadataError> {
        let data = serde_json::to_vec(lease).map_err(MetadataError::Encode)?;
        self.run(|db| {
            let txn = db.begin_write().map_err(dberr)?;
            txn.open_table(LEASES)
                .map_err(dberr)?
                .insert(lease.id.as_str(), data.as_slice())
                .map_err(dberr)?;
            txn.commit().map_err(dberr)
        })
    }

    pub fn remove_lease(&self, id: &str) -> Result<(), MetadataError> {
        self.run_removal(|db| {
            let txn = db.begin_write().map_err(dberr)?;
            txn.open_table(LEASES)
                .map_err(dberr)?
                .remove(id)
                .map_err(dberr)?;
            txn.commit().map_err(dberr)
        })
    }

    /// Leases that have not expired at `now` (seconds since the epoch).
    pub fn live_leases(&self, now: u64) -> Result<Vec<Lease>, MetadataError> {
        self.run(|db| {
            let txn = db.begin_read().map_err(dberr)?;
            let table = txn.open_table(LEASES).map_err(dberr)?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(dberr)? {
                let (k, v) = entry.map_err(dberr)?;
                let lease: Lease =
                    serde_json::from_slice(v.value()).map_err(|source| MetadataError::Corrupt {
                        key: k.value().to_string(),
                        source,
                    })?;
                if lease.expires > now {
                    out.push(lease);
                }
            }
            Ok(out)
        })
    }
}

/// redb's page cache. Its default (1 GiB) let berthd's memory grow with every write (about
/// 16 kB per container created and removed, as users are recorded) up to that size; the store
/// holds names, users and leases: 1 MiB holds the users of thousands of containers.
const CACHE_SIZE: usize = 1 << 20;

/// Opens (creating if needed) the database file.
fn open_db(path: &Path) -> Result<Database, MetadataError> {
    Database::builder()
        .set_cache_size(CACHE_SIZE)
        .create(path)
        .map_err(|source| MetadataError::Open {
            path: path.display().to_string(),
            source,
        })
}

fn decode(key: &str, value: &[u8]) -> Result<Image, MetadataError> {
    serde_json::from_slice(value).map_err(|source| MetadataError::Corrupt {
        key: key.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, data: &[u8]) -> Image {
        Image {
            name: name.to_string(),
            target: Digest::of(data),
            media_type: crate::manifest::OCI_MANIFEST.to_string(),
            size: data.len() as u64,
            created: "2026-01-01T00:00:00Z".to_string(),
        }
    }

    #[test]
    fn names_survive_reopening_and_tags_move() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        {
            let m = Metadata::open(&path).unwrap();
            m.put_image(&image("docker.io/library/a:1", b"one"))
                .unwrap();
            m.put_image(&image("docker.io/library/a:latest", b"one"))
                .unwrap();
            m.put_image(&image("docker.io/library/a:latest", b"two"))
                .unwrap();
        }
        let m = Metadata::open(&path).unwrap();
        let names: Vec<String> = m.images().unwrap().into_iter().map(|i| i.name).collect();
        assert_eq!(
            names,
            ["docker.io/library/a:1", "docker.io/library/a:latest"]
        );
        assert_eq!(
            m.image("docker.io/library/a:latest").unwrap().target,
            Digest::of(b"two")
        );
        let err = m.image("nope").unwrap_err();
        assert_eq!(err.to_string(), "No such image: nope");
    }

    #[test]
    fn set_users_replaces_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metadata::open(&dir.path().join("meta.redb")).unwrap();
        let img = image("docker.io/library/a:latest", b"one");
        m.put_image(&img).unwrap();
        m.add_user(&img.target, "gone").unwrap();
        m.set_users([(&img.target, "kept")]).unwrap();
        let err = m.delete_image(&img.name, false).unwrap_err();
        assert!(err.to_string().contains("container kept"), "{err}");
        m.set_users([]).unwrap();
        m.delete_image(&img.name, false).unwrap();
    }

    #[test]
    fn removing_an_image_in_use_is_refused_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metadata::open(&dir.path().join("meta.redb")).unwrap();
        let img = image("docker.io/library/a:latest", b"one");
        m.put_image(&img).unwrap();
        m.add_user(&img.target, "c1").unwrap();
        let err = m.delete_image(&img.name, false).unwrap_err();
        assert!(
            err.to_string().contains("being used by container c1"),
            "{err}"
        );
        // Another name for the same image: removing this one only untags.
        m.put_image(&image("docker.io/library/b:latest", b"one"))
            .unwrap();
        m.delete_image(&img.name, false).unwrap();
        m.remove_user(&img.target, "c1").unwrap();
        m.delete_image("docker.io/library/b:latest", false).unwrap();
        assert!(m.images().unwrap().is_empty());
        m.put_image(&img).unwrap();
        m.add_user(&img.target, "c2").unwrap();
        m.delete_image(&img.name, true).unwrap();
    }

    /// A commit that fails for lack of space does not poison the store: the next calls work
    /// (reads at once, writes once there is space), without reopening it by hand; the users
    /// committed without a sync still keep their image.
    #[test]
    fn a_failed_commit_reopens_the_database() {
        if berth_tests::smallfs::skip(false) {
            return;
        }
        let mut small = berth_tests::smallfs::SmallFs::tmpfs(4 << 20).unwrap();
        let path = small.path().join("meta.redb");
        let m = Metadata::open(&path).unwrap();
        let img = image("docker.io/library/a:latest", b"one");
        m.put_image(&img).unwrap();
        m.add_user(&img.target, "c1").unwrap();
        small.fill().unwrap();
        let mut big = image("docker.io/library/big:latest", b"big");
        big.created = "x".repeat(2 << 20);
        let err = m.put_image(&big).unwrap_err();
        assert!(matches!(failure(&err), Failure::Io), "{err:?}");
        assert_eq!(
            m.images().unwrap(),
            vec![img.clone()],
            "read on a full disk"
        );
        small.unfill();
        let err = m.delete_image(&img.name, false).unwrap_err();
        assert!(matches!(err, MetadataError::InUse { .. }), "{err:?}");
        m.put_image(&image("docker.io/library/b:latest", b"two"))
            .unwrap();
        assert_eq!(m.images().unwrap().len(), 2);
        drop(m);
        assert_eq!(Metadata::open(&path).unwrap().images().unwrap().len(), 2);
    }

    /// On a full disk, where a commit has no blocks for its pages, removals still commit (with
    /// the reserve's space); the reserve is made again once there is room.
    #[test]
    fn a_removal_commits_on_a_full_disk() {
        if berth_tests::smallfs::skip(false) {
            return;
        }
        let mut small = berth_tests::smallfs::SmallFs::tmpfs(8 << 20).unwrap();
        let path = small.path().join("meta.redb");
        let reserve = small.path().join("meta.reserve");
        let m = Metadata::open(&path).unwrap();
        assert_eq!(std::fs::metadata(&reserve).unwrap().len(), RESERVE);
        let img = image("docker.io/library/a:latest", b"one");
        m.put_image(&img).unwrap();
        small.fill().unwrap();
        // Names until a commit finds no space (a few hundred at most).
        let failed = (0..500).find_map(|i| {
            let mut other = image(&format!("docker.io/library/tag:{i}"), b"two");
            other.created = "y".repeat(4096);
            m.put_image(&other).err()
        });
        let err = failed.expect("a commit fails on a full disk");
        assert!(no_space(&err), "{err:?}");
        m.delete_image(&img.name, false).unwrap();
        assert!(!m.images().unwrap().iter().any(|i| i.name == img.name));
        assert!(!reserve.exists(), "the reserve was used");
        small.unfill();
        m.put_image(&img).unwrap();
        assert_eq!(std::fs::metadata(&reserve).unwrap().len(), RESERVE);
    }

    #[test]
    fn leases_expire() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metadata::open(&dir.path().join("meta.redb")).unwrap();
        let lease = Lease {
            id: "pull-1".to_string(),
            expires: 100,
            blobs: vec![Digest::of(b"x")],
            snapshots: vec!["s1".to_string()],
        };
        m.put_lease(&lease).unwrap();
        assert_eq!(m.live_leases(50).unwrap(), vec![lease]);
        assert!(m.live_leases(150).unwrap().is_empty());
        m.remove_lease("pull-1").unwrap();
        assert!(m.live_leases(50).unwrap().is_empty());
    }
}
