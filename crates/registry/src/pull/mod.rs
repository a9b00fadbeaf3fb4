//! Pull: a reference resolved to an image manifest, its config and layers fetched into the
//! content store and unpacked into snapshots, then the name recorded.
//!
//! Layers are fetched in parallel. Where the snapshotter can rebase (overlayfs), each layer is
//! applied into a snapshot of its own *while it downloads*: the body is streamed through
//! decompression straight into the snapshot and, byte for byte, into the content store's ingest,
//! which checks size and digest at the end. The snapshots are then committed in order, each on
//! the one below. Elsewhere the blobs are fetched in parallel and unpacked in order afterwards.
//!
//! Nothing is named until everything is verified. A failed pull removes its snapshots; blobs that
//! were verified stay (a retry does not fetch them again), an interrupted download stays in the
//! ingest area and is resumed with a `Range` request. A lease protects the pull's blobs and
//! snapshots from garbage collection while it runs.

mod layers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_image::content::ContentError;
use berth_image::digest::Digest;
use berth_image::import::ImageStore;
use berth_image::layer::LayerError;
use berth_image::manifest::Platform;
use berth_image::metadata::{Image, Lease, MetadataError};
use berth_image::reference::Reference;
use berth_image::snapshot::SnapshotError;
use berth_image::unpack::{chain_id, UnpackError};
use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt};
use reqwest::Method;

use crate::client::{error_of, http_err, Access, Client, ClientError};
use crate::progress::{short_id, ProgressFn, Reporter, Status};
use crate::resolve::{resolve, ResolveError};

/// Layer media types a pull accepts (gzip, zstd or plain tars, OCI or Docker names).
pub const LAYER_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
];
/// Image config media types a pull accepts.
pub const CONFIG_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];
/// Image configs larger than this are refused.
const CONFIG_MAX: u64 = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error("layer {digest}: {source}")]
    Layer {
        digest: Digest,
        #[source]
        source: LayerError,
    },
    #[error("unsupported media type {media_type} for {what} {digest}")]
    MediaType {
        media_type: String,
        what: &'static str,
        digest: String,
    },
    #[error("blob {digest}: {message}")]
    Blob { digest: Digest, message: String },
    #[error("image config {digest}: {message}")]
    Config { digest: Digest, message: String },
    #[error("layer {layer}: its content has diff_id {got}, but the image config says {expected}")]
    DiffId {
        layer: Digest,
        expected: Digest,
        got: Digest,
    },
    #[error("pull cancelled")]
    Cancelled,
    #[error("internal error: {0}")]
    Task(String),
}

/// How to pull.
#[derive(Clone)]
pub struct PullOptions {
    /// The platform to pick from an index (default: this machine's).
    pub platform: Option<Platform>,
    /// Layers fetched at once (default 4).
    pub concurrency: usize,
    pub progress: Option<ProgressFn>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            concurrency: 4,
            progress: None,
        }
    }
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("platform", &self.platform)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The name recorded in the image store.
    pub name: String,
    /// What the reference resolved to (the index's digest if it named one).
    pub digest: Digest,
    /// The image manifest.
    pub manifest: Digest,
    /// The image config: the image id.
    pub config: Digest,
    /// The chain id of the top layer's snapshot (None for an image without layers).
    pub top: Option<Digest>,
    /// Whether any blob had to be fetched (docker: "Downloaded newer image" against "Image is up
    /// to date").
    pub downloaded: bool,
}

/// One layer of the manifest, with what the config says of it.
#[derive(Debug, Clone)]
pub(crate) struct LayerPlan {
    pub blob: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub chain: Digest,
}

/// What every layer task shares.
pub(crate) struct Ctx<'a> {
    pub client: &'a Client,
    pub store: Arc<ImageStore>,
    pub reference: &'a Reference,
    pub reporter: Reporter,
    pub cancel: Arc<AtomicBool>,
    pub lease: String,
}

/// Pulls `reference` into `store`.
pub async fn pull(
    client: &Client,
    store: &Arc<ImageStore>,
    reference: &Reference,
    options: &PullOptions,
) -> Result<Pulled, PullError> {
    recover(store)?;
    let platform = options.platform.clone().unwrap_or_else(Platform::host);
    let resolved = resolve(client, reference, &platform).await?;
    let manifest = &resolved.parsed;
    let config_desc = manifest.config();
    let config_type = config_desc.media_type().to_string();
    if !CONFIG_MEDIA_TYPES.contains(&config_type.as_str()) {
        return Err(PullError::MediaType {
            media_type: config_type,
            what: "image config",
            digest: config_desc.digest().to_string(),
        });
    }
    for layer in manifest.layers() {
        let media_type = layer.media_type().to_string();
        if !LAYER_MEDIA_TYPES.contains(&media_type.as_str()) {
            return Err(PullError::MediaType {
                media_type,
                what: "layer",
                digest: layer.digest().to_string(),
            });
        }
    }
    let config_digest = parse_digest(config_desc.digest().as_ref(), "config")?;
    let lease = format!(
        "pull-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let mut blobs = vec![config_digest.clone()];
    for layer in manifest.layers() {
        blobs.push(parse_digest(layer.digest().as_ref(), "layer")?);
    }
    store.metadata.put_lease(&Lease {
        id: lease.clone(),
        expires: now_secs() + 24 * 3600,
        blobs,
        snapshots: (0..manifest.layers().len())
            .map(|i| layers::snapshot_key(&lease, i))
            .collect(),
    })?;
    let ctx = Ctx {
        client,
        store: Arc::clone(store),
        reference,
        reporter: Reporter(options.progress.clone()),
        cancel: Arc::new(AtomicBool::new(false)),
        lease: lease.clone(),
    };
    let result = pull_leased(&ctx, &resolved, &config_digest, options).await;
    let _ = store.metadata.remove_lease(&lease);
    result
}

async fn pull_leased(
    ctx: &Ctx<'_>,
    resolved: &crate::resolve::Resolved,
    config_digest: &Digest,
    options: &PullOptions,
) -> Result<Pulled, PullError> {
    let store = &ctx.store;
    // The config is kept in memory and stored with the manifest at the end.
    let (config_bytes, mut downloaded) = if store.content.contains(config_digest) {
        (store.content.read_to_vec(config_digest)?, false)
    } else {
        let size = resolved.parsed.config().size();
        (fetch_small_blob(ctx, config_digest, size).await?, true)
    };
    let config: serde_json::Value =
        serde_json::from_slice(&config_bytes).map_err(|e| PullError::Config {
            digest: config_digest.clone(),
            message: e.to_string(),
        })?;
    let plans = plan_layers(&resolved.parsed, &config, config_digest)?;
    for plan in &plans {
        ctx.reporter
            .report(&short_id(&plan.blob), Status::PullingFsLayer, 0, plan.size);
    }
    let rebase = store.snapshots.can_rebase();
    // Boxed, so the future of a pull is `Send` for any caller's lifetimes (a plain closure in
    // the stream trips rustc's higher-ranked inference when the pull is spawned).
    let mut jobs: Vec<BoxFuture<'_, Result<layers::Fetched, PullError>>> = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let needs_snapshot = rebase && store.snapshots.stat(&plan.chain.to_string()).is_err();
        jobs.push(Box::pin(layers::fetch_layer(ctx, i, plan, needs_snapshot)));
    }
    // Every job runs to its end (a failure sets `cancel`, which stops the others quickly), so
    // each has cleaned up after itself before the pull returns.
    let results: Vec<Result<layers::Fetched, PullError>> = stream::iter(jobs)
        .buffered(options.concurrency.max(1))
        .collect()
        .await;
    let mut fetched = Vec::with_capacity(results.len());
    let mut first_err = None;
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(f) => fetched.push((i, f)),
            // A task that stopped because another failed is not the cause.
            Err(PullError::Cancelled) => {
                first_err.get_or_insert(PullError::Cancelled);
            }
            Err(e) => {
                if matches!(first_err, None | Some(PullError::Cancelled)) {
                    first_err = Some(e);
                }
            }
        }
    }
    if let Some(err) = first_err {
        discard(ctx, &plans, &fetched);
        return Err(err);
    }
    downloaded |= fetched.iter().any(|(_, f)| f.downloaded);
    let top = if rebase {
        commit_in_order(ctx, &plans, &fetched)
    } else {
        unpack_in_order(ctx, resolved, &config_bytes).await
    };
    let top = match top {
        Ok(top) => top,
        Err(e) => {
            discard(ctx, &plans, &fetched);
            return Err(e);
        }
    };
    for (plan, (_, f)) in plans.iter().zip(&fetched) {
        if f.downloaded || f.snapshot.is_some() {
            ctx.reporter
                .report(&short_id(&plan.blob), Status::PullComplete, 0, 0);
        }
    }
    store.content.write_blob(&config_bytes)?;
    store.content.write_blob(&resolved.manifest.bytes)?;
    if let Some(index) = &resolved.index {
        store.content.write_blob(&index.bytes)?;
    }
    let name = match ctx.reference.digest() {
        Some(_) => ctx.reference.to_string(),
        None => ctx
            .reference
            .with_tag(
                ctx.reference
                    .tag()
                    .unwrap_or(berth_image::reference::DEFAULT_TAG),
            )
            .map_err(|e| PullError::Task(e.to_string()))?
            .to_string(),
    };
    store.metadata.put_image(&Image {
        name: name.clone(),
        target: resolved.manifest.digest.clone(),
        media_type: resolved.manifest.media_type.clone(),
        size: resolved.manifest.bytes.len() as u64,
        created: humantime_now(),
    })?;
    // The repository's digest reference too (`repo@sha256:...`, what the tag resolved to), as
    // Docker records it: the image's RepoDigests.
    if ctx.reference.digest().is_none() {
        let by_digest = format!("{}@{}", ctx.reference.name(), resolved.digest())
            .parse::<Reference>()
            .map(|r| r.to_string());
        if let Ok(by_digest) = by_digest {
            store.metadata.put_image(&Image {
                name: by_digest,
                target: resolved.manifest.digest.clone(),
                media_type: resolved.manifest.media_type.clone(),
                size: resolved.manifest.bytes.len() as u64,
                created: humantime_now(),
            })?;
        }
    }
    Ok(Pulled {
        name,
        digest: resolved.digest().clone(),
        manifest: resolved.manifest.digest.clone(),
        config: config_digest.clone(),
        top,
        downloaded,
    })
}

/// Undoes what the layer tasks of a failed pull did, so the store is as it was: their snapshots,
/// and the blobs they stored (unless another pull's lease wants them too).
fn discard(ctx: &Ctx<'_>, plans: &[LayerPlan], fetched: &[(usize, layers::Fetched)]) {
    let store = &ctx.store;
    let others: Vec<Digest> = store
        .metadata
        .live_leases(0)
        .unwrap_or_default()
        .into_iter()
        .filter(|l| l.id != ctx.lease)
        .flat_map(|l| l.blobs)
        .collect();
    for (i, f) in fetched {
        if let Some(key) = &f.snapshot {
            let _ = store.snapshots.remove(key);
        }
        if f.downloaded && !others.contains(&plans[*i].blob) {
            let _ = store.content.delete(&plans[*i].blob);
        }
    }
}

/// Cleans up after pulls whose process died (`kill -9`, a crash): their leases, and the layer
/// snapshots they had not committed. Their downloads stay in the ingest area, for the next pull
/// to resume. Returns how many pulls were cleaned up.
pub fn recover(store: &ImageStore) -> Result<usize, PullError> {
    let mut recovered = 0;
    for lease in store.metadata.live_leases(0)? {
        let Some(pid) = lease
            .id
            .strip_prefix("pull-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        for key in &lease.snapshots {
            let active = store
                .snapshots
                .stat(key)
                .is_ok_and(|info| info.kind != berth_image::snapshot::Kind::Committed);
            if active {
                store.snapshots.remove(key)?;
            }
        }
        store.metadata.remove_lease(&lease.id)?;
        recovered += 1;
    }
    Ok(recovered)
}

/// Commits each layer's own snapshot onto the one below, bottom up; layers whose chain is
/// already there (unpacked before, or by a concurrent pull) drop theirs.
fn commit_in_order(
    ctx: &Ctx<'_>,
    plans: &[LayerPlan],
    fetched: &[(usize, layers::Fetched)],
) -> Result<Option<Digest>, PullError> {
    let snapshots = &ctx.store.snapshots;
    let mut parent: Option<String> = None;
    let mut result = Ok(());
    for (plan, (_, f)) in plans.iter().zip(fetched) {
        let chain = plan.chain.to_string();
        if let Some(key) = &f.snapshot {
            if result.is_ok() {
                result = if snapshots.stat(&chain).is_ok() {
                    snapshots.remove(key)
                } else {
                    snapshots.commit_onto(&chain, key, parent.as_deref())
                };
            } else {
                let _ = snapshots.remove(key);
            }
        }
        parent = Some(chain);
    }
    result?;
    Ok(plans.last().map(|p| p.chain.clone()))
}

/// For snapshotters that cannot rebase: the blobs are all here, so the layers are applied one on
/// top of the other by [`berth_image::unpack::unpack`], which reads the config and the manifest
/// from the store (they are written first: a failure leaves them unnamed, for gc).
async fn unpack_in_order(
    ctx: &Ctx<'_>,
    resolved: &crate::resolve::Resolved,
    config: &[u8],
) -> Result<Option<Digest>, PullError> {
    ctx.store.content.write_blob(config)?;
    ctx.store.content.write_blob(&resolved.manifest.bytes)?;
    let store = Arc::clone(&ctx.store);
    let digest = resolved.manifest.digest.clone();
    Ok(
        tokio::task::spawn_blocking(move || berth_image::unpack::unpack(&store, &digest))
            .await
            .map_err(|e| PullError::Task(e.to_string()))??,
    )
}

/// The layers with their diff_ids and chain ids, as the config lists them.
fn plan_layers(
    manifest: &oci_spec::image::ImageManifest,
    config: &serde_json::Value,
    config_digest: &Digest,
) -> Result<Vec<LayerPlan>, PullError> {
    let bad = |message: String| PullError::Config {
        digest: config_digest.clone(),
        message,
    };
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or_else(|| bad("no rootfs.diff_ids".to_string()))?;
    if diff_ids.len() != manifest.layers().len() {
        return Err(bad(format!(
            "{} diff_ids for {} layers",
            diff_ids.len(),
            manifest.layers().len()
        )));
    }
    let mut parent: Option<Digest> = None;
    let mut plans = Vec::new();
    for (layer, diff_id) in manifest.layers().iter().zip(diff_ids) {
        let diff_id: Digest = diff_id
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|_| bad(format!("invalid diff_id {diff_id}")))?;
        let chain = chain_id(parent.as_ref(), &diff_id);
        plans.push(LayerPlan {
            blob: parse_digest(layer.digest().as_ref(), "layer")?,
            size: layer.size(),
            diff_id,
            chain: chain.clone(),
        });
        parent = Some(chain);
    }
    Ok(plans)
}

/// Fetches a small blob (a config) whole and checks it.
async fn fetch_small_blob(ctx: &Ctx<'_>, digest: &Digest, size: u64) -> Result<Vec<u8>, PullError> {
    if size > CONFIG_MAX {
        return Err(PullError::Blob {
            digest: digest.clone(),
            message: format!("{size} bytes is too large for an image config"),
        });
    }
    let path = format!("/v2/{}/blobs/{digest}", ctx.reference.path());
    let r = ctx.reference;
    let resp = ctx
        .client
        .send(
            r.domain(),
            r.path(),
            Access::Pull,
            Method::GET,
            &path,
            |b| b,
        )
        .await?;
    if !resp.status().is_success() {
        return Err(error_of(Method::GET, &path, resp).await.into());
    }
    let bytes = resp.bytes().await.map_err(http_err(Method::GET, &path))?;
    let actual = Digest::of(&bytes);
    if &actual != digest || bytes.len() as u64 != size {
        return Err(PullError::Blob {
            digest: digest.clone(),
            message: format!(
                "digest mismatch: got {actual} ({} bytes, expected {size})",
                bytes.len()
            ),
        });
    }
    Ok(bytes.to_vec())
}

fn parse_digest(s: &str, what: &'static str) -> Result<Digest, PullError> {
    s.parse().map_err(|_| PullError::MediaType {
        media_type: format!("(invalid digest {s:?})"),
        what,
        digest: s.to_string(),
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn humantime_now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Stops the other layer tasks of a pull after one failed.
pub(crate) fn cancelled(cancel: &AtomicBool) -> bool {
    cancel.load(Ordering::Relaxed)
}
