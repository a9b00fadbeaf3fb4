//! `RUN` steps: the container's mounts (`RUN --mount`), its run with the output streamed, and
//! its changes stored as a layer.

use berth_api::models::{Mount, MountTmpfsOptions, MountType as MountTypeEnum};
use berth_api::stdcopy;
use berth_build::solver::{BackendError, Output, RunRequest};
use berth_image::digest::Digest;
use sha2::{Digest as _, Sha256};

use super::snapshots::{host_path_inside, DiscardedWrites, View};
use super::steps::err;
use super::EngineBackend;
use crate::lifecycle::WaitCondition;
use crate::logs::LogOptions;

/// The mounts of a `RUN` step, and what must stay mounted while it runs.
pub(super) struct StepMounts {
    /// As the container's `HostConfig.Mounts`.
    pub(super) mounts: Vec<Mount>,
    /// Each target, and whether it is a directory (for the init layer).
    pub(super) stubs: Vec<(String, bool)>,
    /// Views of the images bind mounts take from.
    _views: Vec<View>,
    /// The writable layers of `rw` bind mounts.
    _writable: Vec<DiscardedWrites>,
}

impl EngineBackend<'_> {
    /// The mounts of a `RUN --mount` step: a cache mount is a directory of the build cache
    /// kept between builds (per `id`, else per target), a tmpfs a tmpfs, a bind mount a
    /// read-only bind of a path of the context or of an image (resolved inside it); with `rw`,
    /// a writable layer over that path whose writes are thrown away after the step, as
    /// BuildKit does.
    pub(super) fn run_mounts(&self, req: &RunRequest) -> Result<StepMounts, BackendError> {
        use berth_build::instructions::MountType as M;
        let mut mounts = Vec::new();
        let mut stubs = Vec::new();
        let mut views = Vec::new();
        let mut writable = Vec::new();
        for (m, image) in req.mounts.iter().zip(&req.mount_images) {
            let target = m
                .target
                .as_deref()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| BackendError::new("mount target must be specified"))?;
            let target = berth_build::solver::config::workdir(&req.workdir, target);
            let mut mount = Mount {
                target: Some(target.clone()),
                ..Mount::default()
            };
            let is_dir = match m.mount_type {
                M::Cache => {
                    let id = m.id.clone().unwrap_or_else(|| target.clone());
                    let name = hex::encode(Sha256::digest(id.as_bytes()));
                    let dir = self.engine.build_dir().join("cache-mounts").join(name);
                    if !dir.exists() {
                        std::fs::create_dir_all(&dir).map_err(err)?;
                        let mode = m.mode.unwrap_or(0o755);
                        std::fs::set_permissions(
                            &dir,
                            std::os::unix::fs::PermissionsExt::from_mode(mode),
                        )
                        .map_err(err)?;
                        std::os::unix::fs::chown(&dir, m.uid, m.gid).map_err(err)?;
                    }
                    mount.typ = Some(MountTypeEnum::BIND);
                    mount.source = Some(dir.display().to_string());
                    mount.read_only = Some(m.readonly);
                    true
                }
                M::Tmpfs => {
                    mount.typ = Some(MountTypeEnum::TMPFS);
                    mount.tmpfs_options = m.size.map(|size| MountTmpfsOptions {
                        size_bytes: i64::try_from(size).ok(),
                        ..MountTmpfsOptions::default()
                    });
                    true
                }
                M::Bind => {
                    let root = match image {
                        Some(img) => {
                            let view = self.view(img)?;
                            let dir = view.dir.clone();
                            views.push(view);
                            dir
                        }
                        None => req
                            .context
                            .dir()
                            .map_err(|e| BackendError::new(format!("RUN --mount failed: {e}")))?,
                    };
                    let source = m.source.as_deref().unwrap_or(".");
                    let (path, is_dir) = host_path_inside(&root, source)?;
                    mount.typ = Some(MountTypeEnum::BIND);
                    mount.read_only = Some(m.readonly);
                    if m.readonly {
                        mount.source = Some(path.display().to_string());
                    } else {
                        let w = self.discarded_writes(&path, is_dir)?;
                        mount.source = Some(w.path().display().to_string());
                        writable.push(w);
                    }
                    is_dir
                }
                other => {
                    return Err(BackendError::new(format!(
                        "RUN --mount=type={} is not supported by this builder yet",
                        other.as_str()
                    )))
                }
            };
            stubs.push((target, is_dir));
            mounts.push(mount);
        }
        Ok(StepMounts {
            mounts,
            stubs,
            _views: views,
            _writable: writable,
        })
    }

    /// Starts the step's container, streams its output, waits for it, and stores its changes
    /// as a layer (`None`: no change). A process failing is an error with its code.
    pub(super) fn run_container(
        &self,
        id: &str,
        out: &Output,
    ) -> Result<Option<(Digest, u64)>, BackendError> {
        self.handle.block_on(self.engine.start(id)).map_err(err)?;
        self.follow_output(id, out)?;
        let code = self
            .handle
            .block_on(self.engine.wait(id, WaitCondition::NotRunning))
            .map_err(err)?;
        if code != 0 {
            return Err(BackendError {
                message: format!("exit code {code}"),
                code: Some(code),
            });
        }
        let upper = self
            .engine
            .images
            .store
            .snapshots
            .upper_dir(&format!("container-{id}"))
            .map_err(err)?;
        let ids = self.engine.containers.get(id).ok().and_then(|c| {
            self.engine
                .remap_of(&c)
                .map(crate::userns::Remap::to_container)
        });
        self.store_layer_mapped(&upper, ids.as_ref())
    }

    /// Streams the container's output (stdcopy frames of its log) to `out` until it stops.
    pub(super) fn follow_output(&self, id: &str, out: &Output) -> Result<(), BackendError> {
        let o = LogOptions {
            stdout: true,
            stderr: true,
            follow: true,
            ..LogOptions::default()
        };
        let (_, mut rx) = self.engine.logs(id, o).map_err(err)?;
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = rx.blocking_recv() {
            pending.extend_from_slice(&chunk);
            let mut reader = std::io::Cursor::new(&pending[..]);
            let mut consumed = 0;
            while let Ok(Some((_, payload))) = stdcopy::read_frame(&mut reader) {
                consumed = reader.position() as usize;
                out.stream(&String::from_utf8_lossy(&payload));
            }
            pending.drain(..consumed);
        }
        Ok(())
    }
}
