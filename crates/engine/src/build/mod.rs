//! `POST /build`: the engine's side of the builder. `berth_build`'s solver runs the Dockerfile;
//! this module is its [`Backend`]: base images (pulled if missing), each step's image written
//! to the store (config, manifest, the layer of its changes, uncompressed), `RUN` steps run as
//! containers through the same monitor and runtime as any, and the build cache.
//!
//! - Every image a build makes is held by a lease of the build (`build-<pid>-<time>`, swept at
//!   open if berthd died), so that a garbage collection meanwhile cannot take it.
//! - The cache ([`cache`]) maps a step's key to the manifest of the image it made, and holds
//!   those images with a lease of its own (`build-cache`).

pub mod cache;
mod fetch;
pub mod prune;
mod run;
mod snapshots;
mod steps;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use berth_build::solver::{self, BackendError, BuildOptions, Image, Output};
use berth_image::digest::Digest;
use berth_image::metadata::Lease;
use berth_image::reference::Reference;

use crate::error::EngineError;
use crate::Engine;

/// What a client asks of a build, besides the solver's options.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The Dockerfile's text.
    pub dockerfile: String,
    pub options: BuildOptions,
    /// `-t`: names for the result.
    pub tags: Vec<String>,
    /// What every `RUN` container gets (the API's `extrahosts`, `shmsize`, `memory`...).
    pub resources: RunResources,
    /// Credentials for the registries base images are pulled from (`X-Registry-Config`), by
    /// domain.
    pub auth: RegistryAuth,
    /// Set when the client has gone: the build stops, a running step is killed.
    pub cancel: Arc<AtomicBool>,
}

/// Credentials by registry domain (`X-Registry-Config`, decoded by
/// [`crate::distribution::decode_registry_config`]).
pub type RegistryAuth = std::collections::HashMap<String, berth_registry::credentials::Credential>;

/// The resources of `RUN` containers, as `POST /build` gives them.
#[derive(Debug, Clone, Default)]
pub struct RunResources {
    pub extra_hosts: Vec<String>,
    pub shm_size: Option<i64>,
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub ulimits: Vec<berth_api::models::ResourcesUlimits>,
}

impl RunResources {
    /// These resources set on `hc`.
    pub(crate) fn apply(&self, hc: &mut berth_api::models::HostConfig) {
        if !self.extra_hosts.is_empty() {
            hc.extra_hosts = Some(self.extra_hosts.clone());
        }
        hc.shm_size = self.shm_size.filter(|s| *s > 0);
        hc.memory = self.memory.filter(|m| *m > 0);
        hc.memory_swap = self.memory_swap.filter(|m| *m != 0);
        hc.cpu_shares = self.cpu_shares.filter(|c| *c > 0);
        hc.cpu_period = self.cpu_period.filter(|c| *c > 0);
        hc.cpu_quota = self.cpu_quota.filter(|c| *c > 0);
        hc.cpuset_cpus = self.cpuset_cpus.clone().filter(|c| !c.is_empty());
        hc.cpuset_mems = self.cpuset_mems.clone().filter(|c| !c.is_empty());
        if !self.ulimits.is_empty() {
            hc.ulimits = Some(self.ulimits.clone());
        }
    }
}

/// The engine as the solver's backend, for one build.
pub(crate) struct EngineBackend<'a> {
    engine: &'a Engine,
    handle: tokio::runtime::Handle,
    lease: Mutex<Lease>,
    cancel: Arc<AtomicBool>,
    resources: &'a RunResources,
    auth: &'a RegistryAuth,
    /// Directories of the build's own (downloads), removed when it ends.
    temp_dirs: Mutex<Vec<std::path::PathBuf>>,
}

impl Engine {
    /// Builds `req` (on a blocking thread: it waits for containers); returns the image id.
    /// `cancel` set (the client went away) stops the build at its next step.
    pub fn build(
        &self,
        req: &BuildRequest,
        out: &Output,
    ) -> std::result::Result<String, BuildError> {
        let tags: Vec<Reference> = req
            .tags
            .iter()
            .map(|t| {
                t.parse::<Reference>()
                    .map_err(|e| BuildError::Invalid(format!("invalid reference format: {e}")))
            })
            .collect::<std::result::Result<_, _>>()?;
        let df =
            berth_build::parse(&req.dockerfile).map_err(|e| BuildError::Invalid(e.to_string()))?;
        let handle = tokio::runtime::Handle::current();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let lease = Lease {
            id: format!("build-{}-{}", std::process::id(), now.as_nanos()),
            expires: now.as_secs() + 7 * 24 * 3600,
            blobs: Vec::new(),
            snapshots: Vec::new(),
        };
        let backend = EngineBackend {
            engine: self,
            handle,
            lease: Mutex::new(lease),
            cancel: Arc::clone(&req.cancel),
            resources: &req.resources,
            auth: &req.auth,
            temp_dirs: Mutex::new(Vec::new()),
        };
        let result = solver::solve(&df, &req.options, &backend, out);
        for dir in backend
            .temp_dirs
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
        let lease_id = backend.lease_id();
        let outcome = result
            .map_err(BuildError::from)
            .and_then(|image| self.finish_build(&image, &tags, out));
        if let Err(e) = self.images.store.metadata.remove_lease(&lease_id) {
            tracing::warn!(error = %e, "removing a build's lease");
        }
        if let Some(keep) = self.config.builder_keep_storage {
            let o = prune::PruneOptions {
                keep_storage: keep.max(1),
                ..prune::PruneOptions::default()
            };
            if let Err(e) = self.prune_build_cache(&o) {
                tracing::warn!(error = %e, "the build cache's garbage collection");
            }
        }
        outcome
    }

    /// Names the result of a build: its tags, or its id alone (a dangling image) without one.
    fn finish_build(
        &self,
        image: &Image,
        tags: &[Reference],
        out: &Output,
    ) -> std::result::Result<String, BuildError> {
        let manifest: Digest = image
            .handle
            .parse()
            .map_err(|_| BuildError::Invalid("a build of scratch alone has no image".into()))?;
        let size = self
            .images
            .store
            .content
            .info(&manifest)
            .map(|i| i.size)
            .map_err(|e| BuildError::Engine(EngineError::internal("the built image", e)))?;
        let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let names: Vec<String> = if tags.is_empty() {
            vec![image.id.clone()]
        } else {
            tags.iter().map(ToString::to_string).collect()
        };
        for name in &names {
            self.images
                .store
                .metadata
                .put_image(&berth_image::metadata::Image {
                    name: name.clone(),
                    target: manifest.clone(),
                    media_type: berth_image::manifest::OCI_MANIFEST.to_string(),
                    size,
                    created: created.clone(),
                })
                .map_err(|e| BuildError::Engine(EngineError::internal("naming the image", e)))?;
        }
        out.send(solver::output::Message::Aux(
            serde_json::json!({ "ID": image.id }),
        ));
        out.stream(&format!("Successfully built {}\n", image.short_id()));
        for t in tags {
            out.stream(&format!("Successfully tagged {}\n", t.familiar()));
        }
        Ok(image.id.clone())
    }

    /// Where the build cache keeps its records.
    pub(crate) fn build_dir(&self) -> PathBuf {
        self.config.data_root.join("build")
    }
}

impl EngineBackend<'_> {
    fn lease_id(&self) -> String {
        self.lease.lock().map(|l| l.id.clone()).unwrap_or_default()
    }

    /// Adds the image whose manifest is `manifest` to the build's lease.
    fn hold(&self, manifest: &Digest) {
        let store = &self.engine.images.store;
        let chains = berth_image::gc::image_chain_ids(&store.content, manifest);
        self.hold_in_lease(
            Some(manifest.clone()),
            chains.into_iter().map(|c| c.to_string()).collect(),
        );
    }

    /// Adds a blob and snapshots to the build's lease (call with the image store's `gc_lock`
    /// held, from before they were written).
    fn hold_in_lease(&self, blob: Option<Digest>, snapshots: Vec<String>) {
        let Ok(mut lease) = self.lease.lock() else {
            return;
        };
        lease.blobs.extend(blob);
        lease.snapshots.extend(snapshots);
        if let Err(e) = self.engine.images.store.metadata.put_lease(&lease) {
            tracing::warn!(error = %e, "recording a build's lease");
        }
    }

    /// Writes the changes in `upper` as a layer blob, held by the build's lease at once.
    fn store_layer(&self, upper: &std::path::Path) -> Result<Option<(Digest, u64)>, BackendError> {
        self.store_layer_mapped(upper, None)
    }

    /// [`Self::store_layer`] with the owners mapped back through `ids` (a RUN step's container
    /// under `--userns-remap` wrote host ids).
    fn store_layer_mapped(
        &self,
        upper: &std::path::Path,
        ids: Option<&berth_image::layer::IdMap>,
    ) -> Result<Option<(Digest, u64)>, BackendError> {
        let _shared = self.engine.images.gc_lock.read();
        let layer = berth_image::commit::store_layer_mapped(&self.engine.images.store, upper, ids)
            .map_err(|e| BackendError::new(e.to_string()))?;
        if let Some((digest, _)) = &layer {
            self.hold_in_lease(Some(digest.clone()), Vec::new());
        }
        Ok(layer)
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// A name for what a build makes in the image store's `tmp` or as a snapshot:
/// `<kind>-<pid>-<time in ns>-<n>`, unique in the process (stages run in parallel); the pid
/// lets the sweep at open tell a dead build's leftovers.
pub fn scratch_name(kind: &str) -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{kind}-{}-{now}-{n}", std::process::id())
}

/// Why a build failed: what the client is told.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Solve(#[from] solver::SolveError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl BuildError {
    /// The `code` of the stream's `errorDetail` (a failed command's exit code).
    pub fn code(&self) -> Option<i64> {
        match self {
            BuildError::Solve(solver::SolveError::NonZero { code, .. }) => Some(*code),
            _ => None,
        }
    }
}
