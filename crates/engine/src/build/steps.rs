//! The steps of a build as the engine makes them: images written to the store, `RUN` in a
//! container, `WORKDIR` in a snapshot of its own.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use berth_api::models::{
    ContainerCreateBody, HostConfig, Mount, MountTmpfsOptions, MountType as MountTypeEnum,
};
use berth_api::stdcopy;
use berth_build::instructions::NetworkMode;
use berth_build::solver::{
    Backend, BackendError, CopyRequest, CopySource, Image, Output, RunRequest,
};
use berth_image::commit::{self, LayerDescriptor};
use berth_image::digest::Digest;
use berth_image::reference::Reference;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::EngineBackend;
use crate::lifecycle::WaitCondition;
use crate::logs::LogOptions;

/// The media type of the layers a build writes (uncompressed: compression is for push and
/// save).
const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

fn err(e: impl std::fmt::Display) -> BackendError {
    BackendError::new(e.to_string())
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

impl EngineBackend<'_> {
    fn to_image(r: crate::images::Resolved) -> Image {
        Image {
            id: r.id.to_string(),
            handle: r.manifest.to_string(),
            config: r.config,
        }
    }

    /// The layers of `parent` (none for scratch).
    fn layers(&self, parent: &Image) -> Result<Vec<LayerDescriptor>, BackendError> {
        if parent.handle.is_empty() {
            return Ok(Vec::new());
        }
        let manifest: Digest = parent.handle.parse().map_err(err)?;
        commit::manifest_layers(&self.engine.images.store, &manifest).map_err(err)
    }

    /// The image of `parent`'s layers, `layer` on top if some, and `config` (whose last history
    /// entry is marked empty without a layer); held by the build.
    fn make_image(
        &self,
        parent: &Image,
        mut config: Value,
        layer: Option<(Digest, u64)>,
    ) -> Result<Image, BackendError> {
        let store = &self.engine.images.store;
        let mut layers = self.layers(parent)?;
        let mut diff_ids: Vec<Value> = parent.config["rootfs"]["diff_ids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        match layer {
            Some((digest, size)) => {
                diff_ids.push(json!(digest.to_string()));
                layers.push((digest, size, LAYER_TAR.to_string()));
            }
            None => {
                if let Some(last) = config["history"].as_array_mut().and_then(|h| h.last_mut()) {
                    last["empty_layer"] = json!(true);
                }
            }
        }
        config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
        config["created"] =
            json!(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
        let (manifest, _) = commit::write_image(store, &config, &layers).map_err(err)?;
        self.hold(&manifest);
        berth_image::unpack::unpack(store, &manifest).map_err(err)?;
        let r = self
            .engine
            .images
            .load_resolved(&manifest, None)
            .map_err(err)?;
        Ok(Self::to_image(r))
    }

    /// Runs `work` on `parent`'s filesystem mounted in a snapshot of its own, then makes the
    /// image of its changes with `config`. The snapshot goes, whatever happens.
    fn in_snapshot(
        &self,
        parent: &Image,
        config: &Value,
        work: impl FnOnce(&Path) -> Result<(), BackendError>,
    ) -> Result<Image, BackendError> {
        let store = &self.engine.images.store;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let key = format!("unpack-{}-build-{now}", std::process::id());
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
            commit::store_layer(store, &upper).map_err(err)
        })();
        let _ = std::fs::remove_dir(&dir);
        if let Err(e) = store.snapshots.remove(&key) {
            tracing::warn!(error = %e, "removing a build snapshot");
        }
        self.make_image(parent, config.clone(), result?)
    }

    /// A read-only view of `image`'s filesystem (`COPY --from`, `RUN --mount=from=`), mounted
    /// until the [`View`] is dropped.
    fn view(&self, image: &Image) -> Result<View, BackendError> {
        let store = Arc::clone(&self.engine.images.store);
        let top = crate::create::chain_top(&image.config);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let key = format!("unpack-{}-view-{now}", std::process::id());
        let mounts = store.snapshots.view(&key, top.as_deref()).map_err(err)?;
        let view = View {
            dir: store.tmp_dir().join(format!("{key}-root")),
            key,
            store,
            mounted: false,
        };
        let mut view = view;
        std::fs::create_dir_all(&view.dir).map_err(err)?;
        for m in &mounts {
            m.mount(&view.dir).map_err(err)?;
            view.mounted = true;
        }
        Ok(view)
    }

    /// The mounts of a `RUN --mount` step as the container's `HostConfig.Mounts`: a cache
    /// mount is a directory of the build cache kept between builds (per `id`, else per
    /// target), a tmpfs a tmpfs, a bind mount a read-only bind of a path of the context or of
    /// an image (resolved inside it). Also the targets (and whether each is a directory), and
    /// the views to keep mounted while the step runs.
    #[allow(clippy::type_complexity)]
    fn run_mounts(
        &self,
        req: &RunRequest,
    ) -> Result<(Vec<Mount>, Vec<(String, bool)>, Vec<View>), BackendError> {
        use berth_build::instructions::MountType as M;
        let mut mounts = Vec::new();
        let mut stubs = Vec::new();
        let mut views = Vec::new();
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
                        None => req.context.clone(),
                    };
                    let source = m.source.as_deref().unwrap_or(".");
                    let (path, is_dir) = host_path_inside(&root, source)?;
                    mount.typ = Some(MountTypeEnum::BIND);
                    mount.source = Some(path.display().to_string());
                    // Read-only always: BuildKit discards what a step writes to a `rw` bind;
                    // here such a write fails instead.
                    mount.read_only = Some(true);
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
        Ok((mounts, stubs, views))
    }

    /// `COPY <<EOF /dst`: the heredocs written as files (0644) of a directory of their own,
    /// then copied from there as any source.
    fn copy_inline(&self, parent: &Image, req: &CopyRequest) -> Result<Image, BackendError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = self
            .engine
            .images
            .store
            .tmp_dir()
            .join(format!("heredoc-{}-{now}", std::process::id()));
        let result = (|| {
            std::fs::create_dir_all(&dir).map_err(err)?;
            let mut names = Vec::new();
            for (name, data) in &req.inline {
                if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                    return Err(BackendError::new(format!("invalid heredoc name {name:?}")));
                }
                std::fs::write(dir.join(name), data).map_err(err)?;
                names.push(name.clone());
            }
            let copy_req = berth_build::copy::CopyRequest {
                instruction: if req.add { "ADD" } else { "COPY" },
                sources: &names,
                dest: &req.dest,
                chown: req.chown.as_deref(),
                chmod: req.chmod.as_deref(),
                parents: false,
                excludes: &[],
                extract_archives: false,
                preserve_owner: false,
            };
            self.in_snapshot(parent, &req.config, |root| {
                berth_build::copy::copy(&dir, root, &copy_req)
                    .map(|_| ())
                    .map_err(err)
            })
        })();
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    /// Starts the step's container, streams its output, waits for it, and stores its changes
    /// as a layer (`None`: no change). A process failing is an error with its code.
    fn run_container(&self, id: &str, out: &Output) -> Result<Option<(Digest, u64)>, BackendError> {
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
        commit::store_layer(&self.engine.images.store, &upper).map_err(err)
    }

    /// The init layer of a `RUN` container, as Docker's: a committed snapshot on `top` with
    /// the mount points the runtime needs and the image may lack (`/proc`, `/sys`, `/dev`,
    /// `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`), so that they are not in the
    /// container's changes, hence not in the step's layer. The caller removes it after the
    /// container; if berthd dies first, it is a layer no image uses (collected at open).
    fn init_layer(
        &self,
        top: Option<&str>,
        extra: &[(String, bool)],
    ) -> Result<String, BackendError> {
        let store = &self.engine.images.store;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let key = format!("unpack-{}-init-{now}", std::process::id());
        let name = format!("build-init-{}-{now}", std::process::id());
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
        let committed = made.and_then(|()| store.snapshots.commit(&name, &key).map_err(err));
        if let Err(e) = committed {
            let _ = store.snapshots.remove(&key);
            return Err(e);
        }
        Ok(name)
    }

    /// Streams the container's output (stdcopy frames of its log) to `out` until it stops.
    fn follow_output(&self, id: &str, out: &Output) -> Result<(), BackendError> {
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

impl Backend for EngineBackend<'_> {
    fn image(&self, name: &str, pull: bool, out: &Output) -> Result<Image, BackendError> {
        // The solver's stage threads are not the runtime's: enter it for what spawns tasks.
        let _runtime = self.handle.enter();
        if !pull {
            if let Ok(r) = self.engine.images.resolve(name) {
                return Ok(Self::to_image(r));
            }
        }
        let reference: Reference = name.parse().map_err(err)?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let auth = self.auth.get(reference.domain()).cloned();
        let engine = self.engine.clone();
        let pull_ref = reference.clone();
        let pulling = self
            .handle
            .spawn(async move { engine.pull(&pull_ref, auth, tx).await });
        // The progress is passed on from this thread (the output may block on the client),
        // until the pull drops its sender.
        while let Some(v) = rx.blocking_recv() {
            out.send(berth_build::solver::output::Message::Progress(v));
        }
        let pulled = self
            .handle
            .block_on(pulling)
            .map_err(|e| BackendError::new(format!("pulling {name}: {e}")))?;
        pulled.map_err(|e| {
            BackendError::new(format!(
                "pull access denied for {}, repository does not exist or may require 'docker login': {e}",
                reference.familiar_name()
            ))
        })?;
        self.engine
            .images
            .resolve(&reference.to_string())
            .map(Self::to_image)
            .map_err(err)
    }

    fn run(&self, parent: &Image, req: &RunRequest, out: &Output) -> Result<Image, BackendError> {
        // The solver's stage threads are not the runtime's: enter it for what spawns tasks.
        let _runtime = self.handle.enter();
        let manifest: Digest = parent.handle.parse().map_err(|_| {
            BackendError::new("no such file or directory: a RUN needs a base image")
        })?;
        let resolved = self
            .engine
            .images
            .load_resolved(&manifest, None)
            .map_err(err)?;
        let image_env = crate::build::steps::strings(&parent.config["config"]["Env"]);
        let env: Vec<String> = req
            .env
            .iter()
            .filter(|e| !image_env.contains(e))
            .cloned()
            .collect();
        let network = match req.network {
            Some(NetworkMode::None) => "none",
            Some(NetworkMode::Host) => "host",
            Some(NetworkMode::Default) | None => "bridge",
        };
        let mut host_config = HostConfig {
            network_mode: Some(network.to_string()),
            ..HostConfig::default()
        };
        self.resources.apply(&mut host_config);
        let mut body = ContainerCreateBody {
            image: Some(parent.id.clone()),
            cmd: Some(req.argv.clone()),
            entrypoint: Some(Vec::new()),
            env: Some(env),
            user: Some(req.user.clone()),
            working_dir: Some(req.workdir.clone()),
            host_config: Some(host_config),
            ..ContainerCreateBody::default()
        };
        let name = (0..)
            .map(crate::ids::generate_name)
            .find(|n| !self.engine.containers.name_taken(n))
            .unwrap_or_else(crate::ids::new_id);
        // The step's own mounts (`RUN --mount`), with the views of the images they take from
        // (mounted until the step ends).
        let (mounts, stubs, _views) = self.run_mounts(req)?;
        if let Some(hc) = body.host_config.as_mut() {
            hc.mounts = (!mounts.is_empty()).then_some(mounts);
        }
        let top = crate::create::chain_top(&resolved.config);
        let init = self.init_layer(top.as_deref(), &stubs)?;
        let created = self
            .engine
            .create_from(name, body, resolved)
            .and_then(|(id, _)| {
                self.engine
                    .containers
                    .update(&id, |c| c.image_top = Some(init.clone()))
                    .map(|_| id)
            });
        let id = match created {
            Ok(id) => id,
            Err(e) => {
                let _ = self.engine.images.store.snapshots.remove(&init);
                return Err(err(e));
            }
        };
        out.arrow(&format!("Running in {}", short(&id)));
        let done = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            // The client gone, the step's process is killed (its output then ends).
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    if self.cancel.load(Ordering::Relaxed) {
                        let _ = self.handle.block_on(self.engine.kill(&id, Some("KILL")));
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            });
            let result = self.run_container(&id, out);
            done.store(true, Ordering::Relaxed);
            result
        });
        out.stream(&format!("Removing intermediate container {}\n", short(&id)));
        if let Err(e) = self.handle.block_on(self.engine.remove(&id, true)) {
            tracing::warn!(container = %id, error = %e, "removing a build container");
        }
        // The container's snapshot may go in the background: the init layer once it has.
        self.engine.images.settle_removals();
        if let Err(e) = self.engine.images.store.snapshots.remove(&init) {
            tracing::warn!(error = %e, "removing a build container's init layer");
        }
        self.make_image(parent, req.config.clone(), result?)
    }

    fn copy(&self, parent: &Image, req: &CopyRequest) -> Result<Image, BackendError> {
        // The solver's stage threads are not the runtime's: enter it for what spawns tasks.
        let _runtime = self.handle.enter();
        let copy_req = berth_build::copy::CopyRequest {
            instruction: if req.add { "ADD" } else { "COPY" },
            sources: &req.sources,
            dest: &req.dest,
            chown: req.chown.as_deref(),
            chmod: req.chmod.as_deref(),
            parents: req.parents,
            excludes: &req.exclude,
            extract_archives: req.add,
            preserve_owner: matches!(req.source, CopySource::Image(_)),
        };
        let run = |src: &Path| {
            self.in_snapshot(parent, &req.config, |root| {
                berth_build::copy::copy(src, root, &copy_req)
                    .map(|_| ())
                    .map_err(err)
            })
        };
        if !req.inline.is_empty() {
            return self.copy_inline(parent, req);
        }
        match &req.source {
            CopySource::Context(dir) => run(dir),
            CopySource::Image(image) => run(&self.view(image)?.dir),
        }
    }

    fn mkdir(&self, parent: &Image, dir: &str, config: &Value) -> Result<Image, BackendError> {
        // The solver's stage threads are not the runtime's: enter it for what spawns tasks.
        let _runtime = self.handle.enter();
        if parent.handle.is_empty() {
            return self.make_image(parent, config.clone(), None);
        }
        self.in_snapshot(parent, config, |root| mkdir_in_root(root, dir))
    }

    fn set_config(&self, parent: &Image, config: &Value) -> Result<Image, BackendError> {
        // The solver's stage threads are not the runtime's: enter it for what spawns tasks.
        let _runtime = self.handle.enter();
        let mut config = config.clone();
        if let Some(last) = config["history"].as_array_mut().and_then(|h| h.last_mut()) {
            last["empty_layer"] = json!(true);
        }
        self.make_image(parent, config, None)
    }

    fn cache_get(&self, key: &str) -> Option<Image> {
        self.engine.cache_get(key)
    }

    fn cache_put(&self, key: &str, image: &Image) {
        self.engine.cache_put(key, image);
    }

    fn cancelled(&self) -> bool {
        EngineBackend::cancelled(self)
    }
}

/// A string list of a JSON value (empty if it is not one).
pub(crate) fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `mkdir -p dir` inside `root`: each component is looked up inside the root (a symlink in the
/// image resolves within it) and made (0755) where missing.
fn mkdir_in_root(root: &Path, dir: &str) -> Result<(), BackendError> {
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
fn touch_in_root(root: &Path, file: &str) -> Result<(), BackendError> {
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
struct View {
    dir: std::path::PathBuf,
    key: String,
    store: Arc<berth_image::import::ImageStore>,
    mounted: bool,
}

impl Drop for View {
    fn drop(&mut self) {
        if self.mounted {
            let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir(&self.dir);
        if let Err(e) = self.store.snapshots.remove(&self.key) {
            tracing::warn!(error = %e, "removing a build view");
        }
    }
}

/// `rel` inside `root` as a host path that stays inside it: resolved with `RESOLVE_IN_ROOT`
/// (a symlink in the context or the image cannot point a bind mount at the host), then named
/// by what the kernel says the opened path is. Also whether it is a directory.
fn host_path_inside(root: &Path, rel: &str) -> Result<(std::path::PathBuf, bool), BackendError> {
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
