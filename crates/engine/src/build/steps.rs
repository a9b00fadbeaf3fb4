//! The steps of a build as the engine makes them: images written to the store, `RUN` in a
//! container, `WORKDIR` in a snapshot of its own.

use std::sync::atomic::{AtomicBool, Ordering};

use berth_api::models::{ContainerCreateBody, HostConfig};
use berth_build::instructions::NetworkMode;
use berth_build::solver::{
    Backend, BackendError, CopyRequest, CopySource, Image, Output, RunRequest,
};
use berth_build::sources::SourceRoot;
use berth_image::commit::{self, LayerDescriptor};
use berth_image::digest::Digest;
use berth_image::reference::Reference;
use serde_json::{json, Value};

use super::EngineBackend;

/// The media type of the layers a build writes (uncompressed: compression is for push and
/// save).
const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

pub(super) fn err(e: impl std::fmt::Display) -> BackendError {
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
    pub(super) fn make_image(
        &self,
        parent: &Image,
        config: Value,
        layer: Option<(Digest, u64)>,
    ) -> Result<Image, BackendError> {
        // A layer a build wrote is uncompressed: its blob's digest is its diff_id.
        let layer = layer.map(|(d, size)| ((d.clone(), size, LAYER_TAR.to_string()), d));
        self.make_image_with(parent, config, layer)
    }

    /// [`Self::make_image`] with any layer: its descriptor in the manifest and its diff_id.
    pub(super) fn make_image_with(
        &self,
        parent: &Image,
        mut config: Value,
        layer: Option<(LayerDescriptor, Digest)>,
    ) -> Result<Image, BackendError> {
        let store = &self.engine.images.store;
        let mut layers = self.layers(parent)?;
        let mut diff_ids: Vec<Value> = parent.config["rootfs"]["diff_ids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        match layer {
            Some((descriptor, diff_id)) => {
                diff_ids.push(json!(diff_id.to_string()));
                layers.push(descriptor);
            }
            None => {
                berth_build::solver::config::mark_last_empty(&mut config);
            }
        }
        let set = berth_build::solver::config::set_top;
        set(
            &mut config,
            "rootfs",
            json!({"type": "layers", "diff_ids": diff_ids}),
        );
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        set(&mut config, "created", json!(now));
        let manifest = {
            let _shared = self.engine.images.gc_lock.read();
            let (manifest, _) = commit::write_image(store, &config, &layers).map_err(err)?;
            self.hold(&manifest);
            manifest
        };
        berth_image::unpack::unpack(store, &manifest).map_err(err)?;
        let r = self
            .engine
            .images
            .load_resolved(&manifest, None)
            .map_err(err)?;
        Ok(Self::to_image(r))
    }

    /// `COPY <<EOF /dst`: the heredocs written as files (0644) of a directory of their own
    /// (removed when the guard goes), to copy from as any source.
    fn heredoc_dir(&self, inline: &[(String, String)]) -> Result<ScratchDir, BackendError> {
        let dir = ScratchDir(
            self.engine
                .images
                .store
                .tmp_dir()
                .join(super::scratch_name("heredoc")),
        );
        std::fs::create_dir_all(&dir.0).map_err(err)?;
        for (name, data) in inline {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(BackendError::new(format!("invalid heredoc name {name:?}")));
            }
            std::fs::write(dir.0.join(name), data).map_err(err)?;
        }
        Ok(dir)
    }
}

/// A directory under the store's `tmp`, removed on drop.
struct ScratchDir(std::path::PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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
        let image_env = crate::spec::string_list(&parent.config["config"]["Env"]);
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
            // A RUN step runs no health check, whatever its base image says.
            healthcheck: Some(berth_api::models::HealthConfig {
                test: Some(vec!["NONE".to_string()]),
                ..Default::default()
            }),
            ..ContainerCreateBody::default()
        };
        // The step's own mounts (`RUN --mount`), with the views of the images they take from
        // (mounted until the step ends).
        let step_mounts = self.run_mounts(req)?;
        if let Some(hc) = body.host_config.as_mut() {
            hc.mounts = (!step_mounts.mounts.is_empty()).then(|| step_mounts.mounts.clone());
        }
        let top = crate::create::chain_top(&resolved.config);
        let init = self.init_layer(top.as_deref(), &step_mounts.stubs)?;
        let created = self
            .engine
            .create_from(
                // A generated name.
                String::new(),
                &body,
                crate::wire::spec::host_of_body(&body),
                resolved,
            )
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

    fn fetch(&self, url: &str) -> Result<berth_build::solver::Download, BackendError> {
        let _runtime = self.handle.enter();
        self.download(url)
    }

    fn copy(&self, parent: &Image, req: &CopyRequest) -> Result<Image, BackendError> {
        // The solver's stage threads are not the runtime's: enter it for what spawns tasks.
        let _runtime = self.handle.enter();
        // `--chown` names looked up in another image than the destination (`COPY --link`).
        let chown = match (&req.users_from, &req.chown) {
            (Some(image), Some(spec)) => {
                let view = self.view(image)?;
                let (uid, gid) = berth_build::copy::resolve_chown(&view.dir, spec).map_err(err)?;
                Some(format!("{uid}:{gid}"))
            }
            (_, chown) => chown.clone(),
        };
        let copy_req = berth_build::copy::CopyRequest {
            instruction: if req.add { "ADD" } else { "COPY" },
            sources: &req.sources,
            dest: &req.dest,
            chown: chown.as_deref(),
            chmod: req.chmod.as_deref(),
            parents: req.parents,
            excludes: &req.exclude,
            extract_archives: req.add,
            preserve_owner: matches!(req.source, CopySource::Image(_)),
        };
        let heredocs = if req.inline.is_empty() {
            None
        } else {
            Some(self.heredoc_dir(&req.inline)?)
        };
        let names: Vec<String> = req.inline.iter().map(|(n, _)| n.clone()).collect();
        let inline_req = berth_build::copy::CopyRequest {
            sources: &names,
            parents: false,
            excludes: &[],
            extract_archives: false,
            preserve_owner: false,
            ..copy_req
        };
        let view = match &req.source {
            CopySource::Image(image) if !req.sources.is_empty() => Some(self.view(image)?),
            _ => None,
        };
        let src = match (&req.source, &view) {
            _ if req.sources.is_empty() => None,
            (CopySource::Context(ctx), _) => Some(ctx.source()),
            (CopySource::Image(_), v) => v.as_ref().map(|v| SourceRoot::Dir(&v.dir)),
        };
        // In the order of the instruction's kinds: local sources, fetched files, heredocs.
        self.in_snapshot(parent, &req.config, |root| {
            if let Some(src) = src {
                berth_build::copy::copy(src, root, &copy_req).map_err(err)?;
            }
            for d in &req.downloads {
                let file = std::fs::File::open(&d.path).map_err(err)?;
                berth_build::copy::add_downloaded(
                    file,
                    &d.file_name,
                    root,
                    &req.dest,
                    chown.as_deref(),
                    req.chmod.as_deref(),
                    d.last_modified,
                )
                .map_err(err)?;
            }
            if let Some(dir) = &heredocs {
                berth_build::copy::copy(SourceRoot::Dir(&dir.0), root, &inline_req).map_err(err)?;
            }
            Ok(())
        })
    }

    fn reuse_layer(
        &self,
        parent: &Image,
        source: &Image,
        index: usize,
        config: &Value,
    ) -> Result<Image, BackendError> {
        let _runtime = self.handle.enter();
        let layers = self.layers(source)?;
        let descriptor = layers
            .get(index)
            .cloned()
            .ok_or_else(|| BackendError::new(format!("{} has no layer {index}", source.id)))?;
        let diff_id: Digest = source.config["rootfs"]["diff_ids"][index]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(err)?;
        self.make_image_with(parent, config.clone(), Some((descriptor, diff_id)))
    }

    fn mkdir(&self, parent: &Image, dir: &str, config: &Value) -> Result<Image, BackendError> {
        // The solver's stage threads are not the runtime's: enter it for what spawns tasks.
        let _runtime = self.handle.enter();
        if parent.handle.is_empty() {
            return self.make_image(parent, config.clone(), None);
        }
        self.in_snapshot(parent, config, |root| {
            super::snapshots::mkdir_in_root(root, dir)
        })
    }

    fn set_config(&self, parent: &Image, config: &Value) -> Result<Image, BackendError> {
        // The solver's stage threads are not the runtime's: enter it for what spawns tasks.
        let _runtime = self.handle.enter();
        // Without a layer, make_image marks the step's history entry empty.
        self.make_image(parent, config.clone(), None)
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
