//! The file systems a build works in: a step's own snapshot mounted under `image/tmp` (COPY,
//! ADD, WORKDIR), read-only views of images (`COPY --from`, `RUN --mount=from=`), the init
//! layer of a `RUN` container, and paths resolved inside a root (never through a symlink to
//! the host).

use std::path::Path;

use berth_build::solver::{BackendError, Image};
use berth_image::digest::Digest;
use serde_json::Value;

use super::steps::err;
use super::EngineBackend;
pub(super) use crate::files::view::View;

impl EngineBackend<'_> {
    /// Runs `work` on `parent`'s filesystem mounted in a snapshot of its own, then makes the
    /// image of its changes with `config`. The snapshot goes, whatever happens.
    pub(super) fn in_snapshot(
        &self,
        parent: &Image,
        config: &Value,
        work: impl FnOnce(&Path) -> Result<(), BackendError>,
    ) -> Result<Image, BackendError> {
        let store = &self.engine.images.store;
        let key = super::scratch_name("unpack");
        let top = crate::create::chain_top(&parent.config);
        let mounts = store.snapshots.prepare(&key, top.as_deref()).map_err(err)?;
        let dir = store.tmp_dir().join(format!("{key}-root"));
        let result = (|| {
            std::fs::create_dir_all(&dir).map_err(err)?;
            for m in &mounts {
                m.mount(&dir).map_err(err)?;
            }
            let worked = work(&dir);
            let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
            worked?;
            let upper = store.snapshots.upper_dir(&key).map_err(err)?;
            self.store_layer(&upper)
        })();
        let _ = std::fs::remove_dir(&dir);
        // The step's snapshot becomes its layer's (committed under the layer's chain id), so
        // that making the image does not apply the layer's blob again; without changes, or if
        // that layer exists already, it goes.
        let committed = match &result {
            Ok(Some((diff_id, _))) => {
                let parent_chain = top.as_deref().and_then(|t| t.parse::<Digest>().ok());
                let chain = berth_image::unpack::chain_id(parent_chain.as_ref(), diff_id);
                let _shared = self.engine.images.gc_lock.read();
                self.hold_in_lease(None, vec![chain.to_string()]);
                store.snapshots.stat(&chain.to_string()).is_err()
                    && store.snapshots.commit(&chain.to_string(), &key).is_ok()
            }
            _ => false,
        };
        if !committed {
            if let Err(e) = store.snapshots.remove(&key) {
                tracing::warn!(error = %e, "removing a build snapshot");
            }
        }
        self.make_image(parent, config.clone(), result?)
    }

    /// A read-only view of `image`'s filesystem (`COPY --from`, `RUN --mount=from=`), mounted
    /// until the [`View`] is dropped.
    pub(super) fn view(&self, image: &Image) -> Result<View, BackendError> {
        let top = crate::create::chain_top(&image.config);
        View::mount(&self.engine.images.store, top.as_deref()).map_err(err)
    }

    /// The init layer of a `RUN` container, as Docker's: a committed snapshot on `top` with
    /// the mount points the runtime needs and the image may lack (`/proc`, `/sys`, `/dev`,
    /// `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`), so that they are not in the
    /// container's changes, hence not in the step's layer. The caller removes it after the
    /// container; if berthd dies first, it is a layer no image uses (collected at open).
    pub(super) fn init_layer(
        &self,
        top: Option<&str>,
        extra: &[(String, bool)],
    ) -> Result<String, BackendError> {
        let store = &self.engine.images.store;
        let key = super::scratch_name("unpack");
        let name = super::scratch_name("build-init");
        let mounts = store.snapshots.prepare(&key, top).map_err(err)?;
        let dir = store.tmp_dir().join(format!("{key}-root"));
        let made = (|| {
            std::fs::create_dir_all(&dir).map_err(err)?;
            for m in &mounts {
                m.mount(&dir).map_err(err)?;
            }
            let stubs = (|| {
                for d in ["proc", "sys", "dev", "etc"] {
                    mkdir_in_root(&dir, d)?;
                }
                for f in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
                    touch_in_root(&dir, f)?;
                }
                // The targets of the step's own mounts, so that they are not in its layer
                // either (BuildKit leaves them out too).
                for (path, is_dir) in extra {
                    let path = path.trim_start_matches('/');
                    if *is_dir {
                        mkdir_in_root(&dir, path)?;
                    } else {
                        if let Some((parent, _)) = path.rsplit_once('/') {
                            mkdir_in_root(&dir, parent)?;
                        }
                        touch_in_root(&dir, path)?;
                    }
                }
                Ok(())
            })();
            let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
            stubs
        })();
        let _ = std::fs::remove_dir(&dir);
        // Held by the build's lease before it exists: a collection meanwhile leaves it.
        let committed = made.and_then(|()| {
            let _shared = self.engine.images.gc_lock.read();
            self.hold_in_lease(None, vec![name.clone()]);
            store.snapshots.commit(&name, &key).map_err(err)
        });
        if let Err(e) = committed {
            let _ = store.snapshots.remove(&key);
            return Err(e);
        }
        Ok(name)
    }
}

/// `mkdir -p dir` inside `root`: each component is looked up inside the root (a symlink in the
/// image resolves within it) and made (0755) where missing.
pub(super) fn mkdir_in_root(root: &Path, dir: &str) -> Result<(), BackendError> {
    use rustix::fs::{Mode, OFlags};
    let root_fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)?;
    let mut path = std::path::PathBuf::new();
    for part in dir.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let parent = berth_image::inside::open_in_root(
            std::os::fd::AsFd::as_fd(&root_fd),
            if path.as_os_str().is_empty() {
                Path::new(".")
            } else {
                &path
            },
            OFlags::PATH | OFlags::DIRECTORY,
        )
        .map_err(|e| BackendError::new(format!("mkdir {dir}: {e}")))?;
        match rustix::fs::mkdirat(&parent, part, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(BackendError::new(format!("mkdir {dir}: {e}"))),
        }
        path.push(part);
    }
    Ok(())
}

/// Creates the empty file `file` inside `root` if nothing is there (its directory must exist).
pub(super) fn touch_in_root(root: &Path, file: &str) -> Result<(), BackendError> {
    use rustix::fs::{Mode, OFlags};
    let root_fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)?;
    let (dir, base) = file.rsplit_once('/').unwrap_or((".", file));
    let parent = berth_image::inside::open_in_root(
        std::os::fd::AsFd::as_fd(&root_fd),
        Path::new(dir),
        OFlags::PATH | OFlags::DIRECTORY,
    )
    .map_err(|e| BackendError::new(format!("{file}: {e}")))?;
    match rustix::fs::openat(
        &parent,
        base,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    ) {
        // A symlink there (`/etc/resolv.conf -> ...`) or a file: the image has it.
        Ok(_) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(BackendError::new(format!("{file}: {e}"))),
    }
}

/// A mounted read-only view of an image's filesystem; unmounted and removed when dropped.
/// A writable layer over a directory or file whose writes are thrown away when it is dropped
/// (`RUN --mount=type=bind,rw`): an overlay with the directory as its lower layer and a scratch
/// upper one, or a copy of the file, under `image/tmp` (swept if berthd dies).
pub(super) struct DiscardedWrites {
    dir: std::path::PathBuf,
    target: std::path::PathBuf,
    mounted: bool,
}

impl DiscardedWrites {
    /// What to bind.
    pub(super) fn path(&self) -> &Path {
        &self.target
    }
}

impl Drop for DiscardedWrites {
    fn drop(&mut self) {
        if self.mounted {
            let _ = nix::mount::umount2(&self.target, nix::mount::MntFlags::MNT_DETACH);
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "removing a rw bind's layer");
        }
    }
}

impl EngineBackend<'_> {
    pub(super) fn discarded_writes(
        &self,
        source: &Path,
        is_dir: bool,
    ) -> Result<DiscardedWrites, BackendError> {
        let dir = self
            .engine
            .images
            .store
            .tmp_dir()
            .join(super::scratch_name("rwbind"));
        let mut w = DiscardedWrites {
            target: dir.join(if is_dir { "merged" } else { "file" }),
            dir,
            mounted: false,
        };
        std::fs::create_dir_all(&w.dir).map_err(err)?;
        if !is_dir {
            std::fs::copy(source, &w.target).map_err(err)?;
            return Ok(w);
        }
        // mount(2)'s overlay options are split at `,` and `:`.
        let text = source.to_str().filter(|s| !s.contains([',', ':', '\\']));
        let Some(lower) = text else {
            return Err(BackendError::new(format!(
                "a rw bind mount of {} is not supported: its path has ',', ':' or '\\'",
                source.display()
            )));
        };
        for d in ["upper", "work", "merged"] {
            std::fs::create_dir(w.dir.join(d)).map_err(err)?;
        }
        let overlay = berth_image::snapshot::Mount {
            typ: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                format!("lowerdir={lower}"),
                format!("upperdir={}", w.dir.join("upper").display()),
                format!("workdir={}", w.dir.join("work").display()),
            ],
            cwd: None,
        };
        overlay.mount(&w.target).map_err(err)?;
        w.mounted = true;
        Ok(w)
    }
}

/// `rel` inside `root` as a host path that stays inside it: resolved with `RESOLVE_IN_ROOT`
/// (a symlink in the context or the image cannot point a bind mount at the host), then named
/// by what the kernel says the opened path is. Also whether it is a directory.
pub(super) fn host_path_inside(
    root: &Path,
    rel: &str,
) -> Result<(std::path::PathBuf, bool), BackendError> {
    use rustix::fs::{Mode, OFlags};
    let root_fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)?;
    let rel = rel.trim_start_matches('/');
    let fd = berth_image::inside::open_in_root(
        std::os::fd::AsFd::as_fd(&root_fd),
        Path::new(if rel.is_empty() { "." } else { rel }),
        OFlags::PATH,
    )
    .map_err(|e| BackendError::new(format!("{rel}: {e}")))?;
    let is_dir = rustix::fs::fstat(&fd)
        .map(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
        })
        .map_err(err)?;
    let path = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .map_err(err)?;
    Ok((path, is_dir))
}
