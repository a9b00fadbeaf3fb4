//! The image metadata store: names and tags of images, references to images from containers,
//! and leases that keep in-flight content alive, in one embedded transactional database
//! (`redb`: ACID, single file, no server). Blobs live in the content store; this holds names.
//!
//! Every change is one write transaction: a crash leaves the previous state or the new one.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// image name (normalised reference) → JSON of [`Image`].
const IMAGES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("images");
/// "<image digest>\0<container id>" → () : containers using an image.
const USERS: TableDefinition<'_, &str, ()> = TableDefinition::new("image_users");
/// lease id → JSON of [`Lease`].
const LEASES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("leases");

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata store {path}: {source}")]
    Open {
        path: String,
        source: redb::DatabaseError,
    },
    #[error("metadata store: {0}")]
    Db(String),
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

fn dberr<E: std::fmt::Display>(e: E) -> MetadataError {
    MetadataError::Db(e.to_string())
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
    db: Database,
}

impl Metadata {
    /// Opens (creating if needed) the database file.
    pub fn open(path: &Path) -> Result<Metadata, MetadataError> {
        let db = Database::create(path).map_err(|source| MetadataError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let txn = db.begin_write().map_err(dberr)?;
        txn.open_table(IMAGES).map_err(dberr)?;
        txn.open_table(USERS).map_err(dberr)?;
        txn.open_table(LEASES).map_err(dberr)?;
        txn.commit().map_err(dberr)?;
        Ok(Metadata { db })
    }

    /// Names `image.name` → `image` (a tag moves if it pointed elsewhere).
    pub fn put_image(&self, image: &Image) -> Result<(), MetadataError> {
        let data = serde_json::to_vec(image).map_err(dberr)?;
        let txn = self.db.begin_write().map_err(dberr)?;
        txn.open_table(IMAGES)
            .map_err(dberr)?
            .insert(image.name.as_str(), data.as_slice())
            .map_err(dberr)?;
        txn.commit().map_err(dberr)
    }

    pub fn image(&self, name: &str) -> Result<Image, MetadataError> {
        let txn = self.db.begin_read().map_err(dberr)?;
        let table = txn.open_table(IMAGES).map_err(dberr)?;
        let value = table
            .get(name)
            .map_err(dberr)?
            .ok_or_else(|| MetadataError::NoSuchImage(name.to_string()))?;
        decode(name, value.value())
    }

    /// Every name, sorted.
    pub fn images(&self) -> Result<Vec<Image>, MetadataError> {
        let txn = self.db.begin_read().map_err(dberr)?;
        let table = txn.open_table(IMAGES).map_err(dberr)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(dberr)? {
            let (k, v) = entry.map_err(dberr)?;
            out.push(decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Removes the name. Refused while a container uses the image it names and no other name
    /// points at it, unless `force`.
    pub fn delete_image(&self, name: &str, force: bool) -> Result<Image, MetadataError> {
        let txn = self.db.begin_write().map_err(dberr)?;
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
                let users = txn.open_table(USERS).map_err(dberr)?;
                let prefix = format!("{}\0", image.target);
                let user = users
                    .range(prefix.as_str()..)
                    .map_err(dberr)?
                    .filter_map(Result::ok)
                    .map(|(k, _)| k.value().to_string())
                    .take_while(|k| k.starts_with(&prefix))
                    .next();
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
    }

    /// Records that `container` uses the image `target`.
    ///
    /// Users are derived state: whoever keeps the containers restates them all at start with
    /// [`Metadata::set_users`]. So this and [`Metadata::remove_user`] commit without waiting for
    /// the disk (a machine crash can lose them, never half-apply them), which keeps two syncs off
    /// every container's create and removal.
    pub fn add_user(&self, target: &Digest, container: &str) -> Result<(), MetadataError> {
        let key = format!("{target}\0{container}");
        let mut txn = self.db.begin_write().map_err(dberr)?;
        txn.set_durability(redb::Durability::None);
        txn.open_table(USERS)
            .map_err(dberr)?
            .insert(key.as_str(), ())
            .map_err(dberr)?;
        txn.commit().map_err(dberr)
    }

    /// Forgets that `container` uses the image `target` (see [`Metadata::add_user`]).
    pub fn remove_user(&self, target: &Digest, container: &str) -> Result<(), MetadataError> {
        let key = format!("{target}\0{container}");
        let mut txn = self.db.begin_write().map_err(dberr)?;
        txn.set_durability(redb::Durability::None);
        txn.open_table(USERS)
            .map_err(dberr)?
            .remove(key.as_str())
            .map_err(dberr)?;
        txn.commit().map_err(dberr)
    }

    /// Replaces every user record with `users` (image, container), durably.
    pub fn set_users<'a>(
        &self,
        users: impl IntoIterator<Item = (&'a Digest, &'a str)>,
    ) -> Result<(), MetadataError> {
        let txn = self.db.begin_write().map_err(dberr)?;
        txn.delete_table(USERS).map_err(dberr)?;
        {
            let mut table = txn.open_table(USERS).map_err(dberr)?;
            for (target, container) in users {
                let key = format!("{target}\0{container}");
                table.insert(key.as_str(), ()).map_err(dberr)?;
            }
        }
        txn.commit().map_err(dberr)
    }

    pub fn put_lease(&self, lease: &Lease) -> Result<(), MetadataError> {
        let data = serde_json::to_vec(lease).map_err(dberr)?;
        let txn = self.db.begin_write().map_err(dberr)?;
        txn.open_table(LEASES)
            .map_err(dberr)?
            .insert(lease.id.as_str(), data.as_slice())
            .map_err(dberr)?;
        txn.commit().map_err(dberr)
    }

    pub fn remove_lease(&self, id: &str) -> Result<(), MetadataError> {
        let txn = self.db.begin_write().map_err(dberr)?;
        txn.open_table(LEASES)
            .map_err(dberr)?
            .remove(id)
            .map_err(dberr)?;
        txn.commit().map_err(dberr)
    }

    /// Leases that have not expired at `now` (seconds since the epoch).
    pub fn live_leases(&self, now: u64) -> Result<Vec<Lease>, MetadataError> {
        let txn = self.db.begin_read().map_err(dberr)?;
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
    }
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
