//! Container files and figures: archive (`docker cp`), export, top, stats, commit.
//!
//! Every file operation works on the container's root filesystem as the host sees it: the
//! snapshot `container-<id>` mounted at `<exec-root>/c/<id>/rootfs`; `docker cp` into or out of a
//! running container sees its mounts too (volumes, binds), through `/proc/<pid>/root`; into or
//! out of a stopped one, its volumes and binds are mounted on its root for the operation, in a
//! mount namespace of their own (`volumes`). A running container has it
//! mounted already; for a stopped (or never started) one, [`Engine::rootfs`] mounts it there for
//! the time of the operation (a start meanwhile reuses that mount) and unmounts it afterwards,
//! unless the container runs by then. Paths are resolved inside that root with
//! `openat2(RESOLVE_IN_ROOT)`, so a symlink in the container never leads outside it.

pub mod archive;
pub mod changes;
pub mod commit;
mod extract;
pub mod stats;
pub mod top;
pub mod view;
mod volumes;

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{Mode, OFlags};

use crate::container::Container;
use crate::error::{EngineError, Result};
use crate::Engine;

/// Temporary mounts of stopped containers' roots, by rootfs path: how many operations use each.
static TEMPORARY: Mutex<Option<HashMap<PathBuf, usize>>> = Mutex::new(None);

fn with_temporary<T>(f: impl FnOnce(&mut HashMap<PathBuf, usize>) -> T) -> T {
    let mut guard = TEMPORARY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(guard.get_or_insert_with(HashMap::new))
}

/// A container's mounted root filesystem, held open for one operation.
#[derive(Debug)]
pub struct Rootfs {
    /// The container as it was when the root was opened.
    pub container: Container,
    /// The key the client named the container by (for Docker's error messages).
    pub key: String,
    path: PathBuf,
    root: OwnedFd,
    /// Mounted for this operation (the container was not running).
    temporary: bool,
    /// The mount namespace holding the volumes of a stopped container's view.
    _volumes: Option<OwnedFd>,
    engine: Engine,
}

impl Engine {
    /// The container `key`'s files as its processes see them, for `docker cp`: while it runs,
    /// its root with every mount in it (volumes, binds, `/etc/hosts`...), through
    /// `/proc/<pid>/root`; otherwise (or if the process just went) [`Engine::rootfs`].
    pub fn container_view(&self, key: &str) -> Result<Rootfs> {
        let mut rootfs = self.rootfs(key)?;
        let pid = rootfs.container.state.pid;
        if rootfs.container.is_running() && pid > 0 {
            let view = rustix::fs::openat(
                rustix::fs::CWD,
                format!("/proc/{pid}/root"),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            );
            // The process is the container's only if it still is after the open (a pid can
            // be reused once the container exited).
            let still = self
                .containers
                .get(&rootfs.container.id)
                .is_ok_and(|c| c.is_running() && c.state.pid == pid);
            if let (Ok(view), true) = (view, still) {
                rootfs.root = view;
                return Ok(rootfs);
            }
        }
        // Not running: its volumes and binds, mounted for the operation.
        let mounts =
            volumes::copy_mounts(&rootfs.container, &crate::volumes::root(self.data_root()));
        if !mounts.is_empty() {
            let (root, ns) = volumes::mount_view(&rootfs.path, mounts)?;
            rootfs.root = root;
            rootfs._volumes = Some(ns);
        }
        Ok(rootfs)
    }

    /// The root filesystem of the container `key`, mounted (temporarily if it is not running).
    pub fn rootfs(&self, key: &str) -> Result<Rootfs> {
        let c = self.containers.get(key)?;
        let path = self.run_dir(&c.id).join("rootfs");
        let temporary = !c.is_running();
        if temporary {
            // Counted before mounting, so a concurrent release does not unmount under us.
            with_temporary(|m| *m.entry(path.clone()).or_insert(0) += 1);
            let mounted = std::fs::create_dir_all(&path)
                .map_err(|e| EngineError::internal("mkdir rootfs", e))
                .and_then(|()| self.mount_rootfs(&c, &path));
            if let Err(e) = mounted {
                release_temporary(self, &c.id, &path);
                return Err(e);
            }
        }
        let root = rustix::fs::openat(
            rustix::fs::CWD,
            &path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| EngineError::internal("open the container's rootfs", e));
        let root = match root {
            Ok(r) => r,
            Err(e) => {
                if temporary {
                    release_temporary(self, &c.id, &path);
                }
                return Err(e);
            }
        };
        if !temporary && !is_mountpoint(&path) {
            return Err(EngineError::Internal(format!(
                "the rootfs of container {} is not mounted",
                c.id
            )));
        }
        Ok(Rootfs {
            container: c,
            key: key.to_string(),
            path,
            root,
            temporary,
            _volumes: None,
            engine: self.clone(),
        })
    }
}

/// Drops one use of a temporary mount; the last one unmounts it, unless the container was
/// started meanwhile (its start reused the mount) or a start holds it ([`hold_rootfs`]). The
/// unmount is made under the map's lock, so that a start that comes at the same moment
/// either holds the mount before (and keeps it) or mounts its own after.
fn release_temporary(engine: &Engine, id: &str, path: &Path) {
    with_temporary(|m| {
        let n = m.entry(path.to_path_buf()).or_insert(1);
        *n = n.saturating_sub(1);
        if *n > 0 {
            return;
        }
        m.remove(path);
        let running = engine.containers.get(id).is_ok_and(|c| c.is_running());
        if running {
            return;
        }
        while is_mountpoint(path) {
            if nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH).is_err() {
                break;
            }
        }
    });
}

/// A start's hold on the container's rootfs path: while it lasts, the release of a temporary
/// mount of the same root (a `docker cp` that ended just before the start) leaves the mount,
/// which the start then uses, instead of unmounting what the start mounted.
pub(crate) struct RootfsHold(PathBuf);

pub(crate) fn hold_rootfs(path: PathBuf) -> RootfsHold {
    with_temporary(|m| *m.entry(path.clone()).or_insert(0) += 1);
    RootfsHold(path)
}

impl Drop for RootfsHold {
    fn drop(&mut self) {
        with_temporary(|m| {
            if let Some(n) = m.get_mut(&self.0) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&self.0);
                }
            }
        });
    }
}

impl Rootfs {
    /// The mounted root, as a path (for the library functions that take one).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A descriptor of the root directory.
    pub fn root(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.root.as_fd()
    }

    /// Writes the whole tree as one tar (`docker export`).
    pub fn export(&self, out: impl std::io::Write) -> Result<()> {
        // The mount point itself (the daemon's own directory): the tree below it is walked
        // without following symlinks.
        let ids = self
            .engine
            .remap_of(&self.container)
            .map(crate::userns::Remap::to_container);
        berth_image::export::export_mapped(&self.path, out, ids.as_ref())
            .map(|_| ())
            .map_err(|e| EngineError::internal("export", e))
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        if self.temporary {
            release_temporary(&self.engine, &self.container.id, &self.path);
        }
    }
}

fn is_mountpoint(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let Some(parent) = path.parent().and_then(|p| std::fs::metadata(p).ok()) else {
        return false;
    };
    meta.dev() != parent.dev() || meta.ino() == parent.ino()
}
