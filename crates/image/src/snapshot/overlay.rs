//! The overlayfs snapshotter: each snapshot is a directory `root/snapshots/<id>/fs` holding only
//! its own changes (deletions as overlay whiteouts), and an active snapshot's mount stacks its
//! parents' `fs` directories as `lowerdir` under its own as `upperdir` (with `work` as
//! `workdir`).
//!
//! | snapshot | mounts |
//! | --- | --- |
//! | active, no parent | `bind` of its `fs`, `rbind,rw` |
//! | active, parents | `overlay`: `lowerdir=` (nearest parent first), `upperdir=`, `workdir=` |
//! | view, no parent / one parent | `bind` of its own (empty) / its parent's `fs`, `rbind,ro` |
//! | view, several parents | `overlay` with only `lowerdir=` (read-only by itself) |
//!
//! mount(2) copies its data from one page (4096 bytes), which absolute `lowerdir` paths overflow
//! well before overlayfs's limit of 500 layers. Like Docker's overlay2, every snapshot has a short
//! link `root/l/<id>` → `../snapshots/<id>/fs`; when the absolute options would not fit, the
//! mount uses `l/<id>` lower paths and `snapshots/<id>/…` upper and work paths relative to `root`,
//! and says so with [`Mount::cwd`] = `root` (the caller mounts from that working directory;
//! [`Mount::mount`] does). Ids are short numbers, so 500 layers need about 3.5 KB.
//!
//! Committed snapshots' directories are never written again: only active ones are ever an
//! `upperdir`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::metadata::{Record, Store};
use super::{bind_mount, lock, remove_dir, Info, Kind, Mount, SnapshotError, Snapshotter};

/// mount(2)'s data must fit in one page, with its NUL.
const PAGE_SIZE: usize = 4096;
/// overlayfs's OVL_MAX_STACK.
const MAX_LAYERS: usize = 500;

/// Snapshots stacked with overlayfs; see the module doc.
#[derive(Debug)]
pub struct OverlaySnapshotter {
    root: PathBuf,
    store: Mutex<Store>,
}

impl OverlaySnapshotter {
    /// Opens (creating if needed) the snapshotter at `root`, with the metadata already there.
    pub fn new(root: impl AsRef<Path>) -> Result<OverlaySnapshotter, SnapshotError> {
        let root = std::path::absolute(root.as_ref()).map_err(SnapshotError::io(
            "",
            "resolve",
            root.as_ref(),
        ))?;
        if root.to_string_lossy().contains([',', ':']) {
            return Err(SnapshotError::UnusableRoot { root });
        }
        for dir in [root.join("snapshots"), root.join("l")] {
            fs::create_dir_all(&dir).map_err(SnapshotError::io("", "create", &dir))?;
        }
        let store = Mutex::new(Store::open(&root)?);
        Ok(OverlaySnapshotter { root, store })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.join("snapshots").join(id.to_string())
    }

    fn link(&self, id: u64) -> PathBuf {
        self.root.join("l").join(id.to_string())
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
        // Refuse a stack that cannot be mounted before making anything.
        let mounts = self.mounts_of(key, &record, &store)?;
        let made = self
            .make_dirs(key, id, kind)
            .and_then(|()| store.insert(key, record));
        if let Err(e) = made {
            let _ = remove_dir(key, &self.dir(id));
            let _ = fs::remove_file(self.link(id));
            return Err(e);
        }
        Ok(mounts)
    }

    fn make_dirs(&self, key: &str, id: u64, kind: Kind) -> Result<(), SnapshotError> {
        let dir = self.dir(id);
        // A directory with an id the metadata never recorded is an orphan of a crash.
        remove_dir(key, &dir)?;
        let mut dirs = vec![dir.join("fs")];
        if kind == Kind::Active {
            dirs.push(dir.join("work"));
        }
        for d in &dirs {
            fs::create_dir_all(d).map_err(SnapshotError::io(key, "create", d))?;
        }
        let link = self.link(id);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(
            Path::new("../snapshots").join(id.to_string()).join("fs"),
            &link,
        )
        .map_err(SnapshotError::io(key, "symlink", &link))
    }

    fn mounts_of(
        &self,
        key: &str,
        record: &Record,
        store: &Store,
    ) -> Result<Vec<Mount>, SnapshotError> {
        let lowers = store.chain(record.parent.as_deref())?;
        let fs_dir = |id: u64| self.dir(id).join("fs");
        let mount = match (record.kind, lowers.as_slice()) {
            (Kind::Committed, _) => {
                return Err(SnapshotError::WrongKind {
                    key: key.to_owned(),
                    kind: record.kind,
                    op: "mounts",
                    wanted: "an active snapshot or a view",
                })
            }
            (Kind::Active, []) => bind_mount(&fs_dir(record.id), true),
            (Kind::View, []) => bind_mount(&fs_dir(record.id), false),
            (Kind::View, [parent]) => bind_mount(&fs_dir(*parent), false),
            (kind, lowers) => self.overlay(key, record.id, kind == Kind::Active, lowers)?,
        };
        Ok(vec![mount])
    }

    /// The overlay mount of `lowers` (with `id`'s upper and work dirs if `writable`): absolute
    /// paths if they fit in a page, else short paths relative to the root.
    fn overlay(
        &self,
        key: &str,
        id: u64,
        writable: bool,
        lowers: &[u64],
    ) -> Result<Mount, SnapshotError> {
        let too_many = || SnapshotError::TooManyLayers {
            key: key.to_owned(),
            layers: lowers.len(),
        };
        if lowers.len() > MAX_LAYERS {
            return Err(too_many());
        }
        let options = |lower: &dyn Fn(u64) -> String, dir: &dyn Fn(u64) -> String| {
            let lowerdir: Vec<String> = lowers.iter().map(|&l| lower(l)).collect();
            let mut options = vec![format!("lowerdir={}", lowerdir.join(":"))];
            if writable {
                options.push(format!("upperdir={}/fs", dir(id)));
                options.push(format!("workdir={}/work", dir(id)));
            }
            options
        };
        let fits = |options: &[String]| options.join(",").len() < PAGE_SIZE;
        let absolute = options(
            &|l| self.dir(l).join("fs").to_string_lossy().into_owned(),
            &|i| self.dir(i).to_string_lossy().into_owned(),
        );
        let (options, cwd) = if fits(&absolute) {
            (absolute, None)
        } else {
            let short = options(&|l| format!("l/{l}"), &|i| format!("snapshots/{i}"));
            if !fits(&short) {
                return Err(too_many());
            }
            (short, Some(self.root.clone()))
        };
        Ok(Mount {
            typ: "overlay".to_owned(),
            source: "overlay".to_owned(),
            options,
            cwd,
        })
    }
}

impl Snapshotter for OverlaySnapshotter {
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

    fn can_rebase(&self) -> bool {
        true
    }

    fn commit_onto(
        &self,
        name: &str,
        key: &str,
        parent: Option<&str>,
    ) -> Result<(), SnapshotError> {
        lock(&self.store).commit_onto(name, key, parent)
    }

    fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        let free = |record: &Record| {
            let link = self.link(record.id);
            match fs::remove_file(&link) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(SnapshotError::io(key, "remove", &link)(e))
                }
                _ => {}
            }
            remove_dir(key, &self.dir(record.id))
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

    fn graph_data(&self, key: &str) -> Result<Vec<(&'static str, String)>, SnapshotError> {
        let store = lock(&self.store);
        let record = store.get(key)?;
        let lowers = store.chain(record.parent.as_deref())?;
        let dir = self.dir(record.id);
        let text = |p: PathBuf| p.to_string_lossy().into_owned();
        let mut data = vec![("UpperDir", text(dir.join("fs")))];
        if !lowers.is_empty() {
            let lower: Vec<String> = lowers
                .iter()
                .map(|&l| text(self.dir(l).join("fs")))
                .collect();
            data.push(("LowerDir", lower.join(":")));
        }
        data.push(("WorkDir", text(dir.join("work"))));
        Ok(data)
    }

    fn upper_dir(&self, key: &str) -> Result<PathBuf, SnapshotError> {
        let id = lock(&self.store).active_id(key)?;
        Ok(self.dir(id).join("fs"))
    }
}

/// Whether overlayfs works at `root` (as the snapshotter would use it): mounts a two-layer overlay
/// with an upper dir in a scratch directory under `root`, unmounts it and cleans up.
pub fn overlay_supported(root: &Path) -> bool {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch = root.join(format!(".overlay-check-{}-{n}", std::process::id()));
    let dirs = ["lower1", "lower2", "upper", "work", "merged"].map(|d| scratch.join(d));
    let made = dirs.iter().try_for_each(fs::create_dir_all);
    let supported = made.is_ok() && {
        let [lower1, lower2, upper, work, merged] = &dirs;
        let data = format!(
            "lowerdir={}:{},upperdir={},workdir={}",
            lower1.display(),
            lower2.display(),
            upper.display(),
            work.display()
        );
        let mounted = nix::mount::mount(
            Some("overlay"),
            merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(data.as_str()),
        );
        mounted.is_ok() && nix::mount::umount2(merged, nix::mount::MntFlags::MNT_DETACH).is_ok()
    };
    let _ = fs::remove_dir_all(&scratch);
    supported
}
