//! The steps of a build as the engine makes them: images written to the store, `RUN` in a
//! container, `WORKDIR` in a snapshot of its own.

use std::path::Path;

use berth_api::models::{ContainerCreateBody, HostConfig};
use berth_api::stdcopy;
use berth_build::instructions::NetworkMode;
use berth_build::solver::{
    Backend, BackendError, CopyRequest, CopySource, Image, Output, RunRequest,
};
use berth_image::commit::{self, LayerDescriptor};
use berth_image::digest::Digest;
use berth_image::reference::Reference;
use serde_json::{json, Value};

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
        let top = self
            .engine
            .images
            .load_resolved(&parent.handle.parse().map_err(err)?, None)
            .ok()
            .and_then(|r| crate::create::chain_top(&r.config));
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

    /// Runs `work` on a read-only view of `image`'s filesystem (`COPY --from`), mounted for
    /// the time of the call.
    fn with_view<T>(
        &self,
        image: &Image,
        work: impl FnOnce(&Path) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let store = &self.engine.images.store;
        let top = if image.handle.is_empty() {
            None
        } else {
            let manifest: Digest = image.handle.parse().map_err(err)?;
            let r = self
                .engine
                .images
                .load_resolved(&manifest, None)
                .map_err(err)?;
            crate::create::chain_top(&r.config)
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let key = format!("unpack-{}-view-{now}", std::process::id());
        let mounts = store.snapshots.view(&key, top.as_deref()).map_err(err)?;
        let dir = store.tmp_dir().join(format!("{key}-root"));
        let result = (|| {
            std::fs::create_dir_all(&dir).map_err(err)?;
            for m in &mounts {
                m.mount(&dir).map_err(err)?;
            }
            let worked = work(&dir);
            let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
            worked
        })();
        let _ = std::fs::remove_dir(&dir);
        if let Err(e) = store.snapshots.remove(&key) {
            tracing::warn!(error = %e, "removing a build view");
        }
        result
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
        let reference: Reference = name
            .parse()
            .map_err(|e| BackendError::new(format!("invalid reference format: {e}")))?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let pulled = self.handle.block_on(async {
            let forward = async {
                while let Some(v) = rx.recv().await {
                    out.send(berth_build::solver::output::Message::Progress(v));
                }
            };
            let (pulled, ()) = tokio::join!(self.engine.pull(&reference, None, tx), forward);
            pulled
        });
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
        let body = ContainerCreateBody {
            image: Some(parent.id.clone()),
            cmd: Some(req.argv.clone()),
            entrypoint: Some(Vec::new()),
            env: Some(env),
            user: Some(req.user.clone()),
            working_dir: Some(req.workdir.clone()),
            host_config: Some(HostConfig {
                network_mode: Some(network.to_string()),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let name = (0..)
            .map(crate::ids::generate_name)
            .find(|n| !self.engine.containers.name_taken(n))
            .unwrap_or_else(crate::ids::new_id);
        let (id, _) = self.engine.create_from(name, body, resolved).map_err(err)?;
        out.arrow(&format!("Running in {}", short(&id)));
        let result = (|| {
            self.handle.block_on(self.engine.start(&id)).map_err(err)?;
            self.follow_output(&id, out)?;
            let code = self
                .handle
                .block_on(self.engine.wait(&id, WaitCondition::NotRunning))
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
        })();
        out.stream(&format!("Removing intermediate container {}\n", short(&id)));
        if let Err(e) = self.handle.block_on(self.engine.remove(&id, true)) {
            tracing::warn!(container = %id, error = %e, "removing a build container");
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
        };
        let run = |src: &Path| {
            self.in_snapshot(parent, &req.config, |root| {
                berth_build::copy::copy(src, root, &copy_req)
                    .map(|_| ())
                    .map_err(err)
            })
        };
        match &req.source {
            CopySource::Context(dir) => run(dir),
            CopySource::Image(image) => self.with_view(image, run),
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
