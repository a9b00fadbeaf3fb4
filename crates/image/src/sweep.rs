//! What a killed process leaves in the store, found and removed when the store is opened:
//! temporary directories of a `load` or an import (`tmp/<kind>-<pid>-...`), the active
//! snapshots of an unpack (`unpack-<pid>-<chain>`), and the lease of a pull
//! (`pull-<pid>-<time>`) with the active snapshots it names, all of a process that no longer
//! runs. (The committed layers and blobs they leave without an image are then garbage:
//! `gc::collect_snapshots`, `gc::collect`.) What is still mounted inside a temporary directory
//! (a build's views and writable binds) is unmounted first, so nothing is removed through a
//! mount.

use std::path::Path;

use crate::import::ImageStore;
use crate::snapshot::{Kind, SnapshotError};

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("sweeping {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Metadata(#[from] crate::metadata::MetadataError),
}

/// What a sweep removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Names in `tmp/`.
    pub temporary: Vec<String>,
    /// Snapshot keys.
    pub snapshots: Vec<String>,
    /// Lease ids.
    pub leases: Vec<String>,
}

/// The pid in a name made as `<kind>-<pid>-<anything>`.
fn owner_pid(name: &str) -> Option<u32> {
    name.split('-').nth(1)?.parse().ok()
}

/// Detaches every mount at or below `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<std::path::PathBuf> = text
        .lines()
        // The fifth field is the mount point, with space, tab, newline and `\` as octal escapes.
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| {
            std::path::PathBuf::from(
                p.replace("\\040", " ")
                    .replace("\\011", "\t")
                    .replace("\\012", "\n")
                    .replace("\\134", "\\"),
            )
        })
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        // (one that stays mounted makes the removal fail, which the sweep reports)
        let _ = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Whether process `pid` is gone (not this one, not any live one).
fn is_dead(pid: u32) -> bool {
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

impl ImageStore {
    /// Removes the leftovers of processes that died in the middle of an operation on this
    /// store (see the module's documentation). Those of live processes stay.
    pub fn sweep_leftovers(&self) -> Result<Swept, SweepError> {
        let mut swept = Swept::default();
        let tmp = self.tmp_dir();
        let entries = match std::fs::read_dir(&tmp) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(swept),
            Err(source) => return Err(SweepError::Io { path: tmp, source }),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !owner_pid(&name).is_some_and(is_dead) {
                continue;
            }
            let path = entry.path();
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                unmount_under(&path);
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|source| SweepError::Io { path, source })?;
            swept.temporary.push(name);
        }
        let mut dead_lease_snapshots = std::collections::HashSet::new();
        for lease in self.metadata.live_leases(0)? {
            if owner_pid(&lease.id).is_some_and(is_dead) {
                self.metadata.remove_lease(&lease.id)?;
                dead_lease_snapshots.extend(lease.snapshots);
                swept.leases.push(lease.id);
            }
        }
        for info in self.snapshots.list()? {
            let dead_unpack = info
                .key
                .strip_prefix("unpack-")
                .and_then(|rest| rest.split('-').next()?.parse::<u32>().ok())
                .is_some_and(is_dead);
            let dead_pull = dead_lease_snapshots.contains(&info.key);
            if info.kind == Kind::Active && (dead_unpack || dead_pull) {
                self.snapshots.remove(&info.key)?;
                swept.snapshots.push(info.key);
            }
        }
        Ok(swept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_their_owner() {
        assert_eq!(owner_pid("archive-1234-99"), Some(1234));
        assert_eq!(owner_pid("archive"), None);
        assert_eq!(owner_pid("x-y-z"), None);
        assert!(!is_dead(std::process::id()));
        assert!(is_dead(u32::MAX));
    }

    #[test]
    fn leftovers_of_dead_processes_go_and_those_of_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open_with(dir.path(), crate::import::Backend::Copy).unwrap();
        let dead = u32::MAX;
        let live = std::process::id();
        for name in [format!("archive-{dead}-1"), format!("archive-{live}-1")] {
            std::fs::create_dir_all(store.tmp_dir().join(&name).join("blobs")).unwrap();
        }
        store
            .snapshots
            .prepare(&format!("unpack-{dead}-aa"), None)
            .unwrap();
        store
            .snapshots
            .prepare(&format!("unpack-{live}-bb"), None)
            .unwrap();
        store.snapshots.prepare("container-cc", None).unwrap();
        let swept = store.sweep_leftovers().unwrap();
        assert_eq!(swept.temporary, vec![format!("archive-{dead}-1")]);
        assert_eq!(swept.snapshots, vec![format!("unpack-{dead}-aa")]);
        let keys: Vec<String> = store
            .snapshots
            .list()
            .unwrap()
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert!(
            keys.contains(&format!("unpack-{live}-bb"))
                && keys.contains(&"container-cc".to_string())
        );
        assert!(store.tmp_dir().join(format!("archive-{live}-1")).exists());
    }

    #[test]
    fn the_lease_of_a_dead_pull_goes_with_its_active_snapshots() {
        use crate::metadata::Lease;
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open_with(dir.path(), crate::import::Backend::Copy).unwrap();
        let dead = format!("pull-{}-1", u32::MAX);
        let live = format!("pull-{}-1", std::process::id());
        for id in [&dead, &live] {
            let key = format!("{id}-layer0");
            store.snapshots.prepare(&key, None).unwrap();
            store
                .metadata
                .put_lease(&Lease {
                    id: id.clone(),
                    expires: u64::MAX,
                    blobs: vec![],
                    snapshots: vec![key],
                })
                .unwrap();
        }
        let swept = store.sweep_leftovers().unwrap();
        assert_eq!(swept.leases, vec![dead.clone()]);
        assert_eq!(swept.snapshots, vec![format!("{dead}-layer0")]);
        let leases: Vec<String> = store
            .metadata
            .live_leases(0)
            .unwrap()
            .into_iter()
            .map(|l| l.id)
            .collect();
        assert_eq!(leases, vec![live.clone()]);
        assert!(store
            .snapshots
            .list()
            .unwrap()
            .iter()
            .any(|i| i.key == format!("{live}-layer0")));
    }
}
