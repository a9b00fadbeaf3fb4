//! The solver: a parsed Dockerfile run step by step against a [`Backend`] (the engine), as
//! Docker's classic builder runs it, with BuildKit's improvements where they cost nothing:
//! only the stages the target needs are built, and metadata steps make no container.
//!
//! - [`plan`]: which stages the target needs, in an order where each comes after those it
//!   uses (`FROM <stage>`, `COPY --from=<stage>`, `RUN --mount=from=<stage>`).
//! - [`stage`]: one stage's instructions: build args and their scope, variable expansion,
//!   the image config each step leaves, its history entry, its cache key.
//! - [`config`]: what the metadata instructions do to an image config.
//! - [`output`]: the classic builder's JSON stream (`Step 1/4 : FROM busybox`, ` ---> id`).
//!
//! Each step's result is an image the backend keeps (an intermediate image: its config and
//! layers, no name). A step's cache key is the digest of its parent's id and of what the step
//! does (the instruction after substitution with the build args it sees; for `COPY`/`ADD` the
//! checksum of the files it reads), so a cache hit needs no work at all.

mod cache_from;
pub mod config;
mod copy_step;
pub mod output;
pub mod plan;
mod run_step;
pub mod stage;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::context::BuildContext;
use crate::instructions::{NetworkMode, RunMount};
use crate::platform::Platform;
use crate::Dockerfile;
pub use output::Output;

/// What went wrong in a build, in the classic builder's words where it has some.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// A `RUN` whose command failed.
    #[error("The command '{command}' returned a non-zero code: {code}")]
    NonZero { command: String, code: i64 },
    #[error("failed to reach build target {0} in Dockerfile")]
    UnknownTarget(String),
    #[error("invalid from flag value {0}: {1}")]
    UnknownFrom(String, String),
    #[error("circular dependency detected on stage: {0}")]
    Cycle(String),
    #[error("base name ({0}) should not be blank")]
    BlankBase(String),
    #[error("failed to process {word:?}: {message}")]
    Expand { word: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("the build was cancelled")]
    Cancelled,
}

/// An error of the backend, with the text the client is shown.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    pub message: String,
    /// The exit code of a failed step's process, if that is what failed.
    pub code: Option<i64>,
}

impl BackendError {
    pub fn new(message: impl Into<String>) -> BackendError {
        BackendError {
            message: message.into(),
            code: None,
        }
    }
}

/// An image the backend holds: a base image, or the result of a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// The image id (`sha256:` and the digest of its config); empty for `scratch`.
    pub id: String,
    /// The backend's own handle (for Berth, the manifest's digest); empty for `scratch`.
    pub handle: String,
    /// The whole image config (`config`, `rootfs`, `history`...).
    pub config: Value,
}

impl Image {
    /// `scratch`: no layers, an empty config for `platform`.
    pub fn scratch(platform: &Platform) -> Image {
        Image {
            id: String::new(),
            handle: String::new(),
            config: config::scratch(platform),
        }
    }

    /// The twelve hex digits Docker shows of an image id.
    pub fn short_id(&self) -> String {
        let hex = self.id.strip_prefix("sha256:").unwrap_or(&self.id);
        hex.chars().take(12).collect()
    }
}

/// The process of a `RUN` step.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The command line (SHELL and the command, or the exec form).
    pub argv: Vec<String>,
    /// `KEY=value`: the image's environment, then the build args in scope.
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    /// `RUN --network`, else the build's.
    pub network: Option<NetworkMode>,
    pub mounts: Vec<RunMount>,
    /// For each of `mounts`, the image its `from=` names (a stage or an image), if any.
    pub mount_images: Vec<Option<Image>>,
    /// The build context (the source of a bind mount without `from=`).
    pub context: BuildContext,
    /// The config of the image the step makes (its history entry included).
    pub config: Value,
}

/// Where the files of a `COPY`/`ADD` come from.
#[derive(Debug, Clone)]
pub enum CopySource {
    /// The build context.
    Context(BuildContext),
    /// An image or an earlier stage (`COPY --from`).
    Image(Image),
}

/// A `COPY` or `ADD` step.
#[derive(Debug, Clone)]
pub struct CopyRequest {
    pub source: CopySource,
    /// The source paths, expanded (wildcards not yet).
    pub sources: Vec<String>,
    /// Files given inline (heredocs): name and content.
    pub inline: Vec<(String, String)>,
    /// The destination, absolute (resolved against WORKDIR).
    pub dest: String,
    /// The destination is a directory (ends in `/` or several sources).
    pub dest_is_dir: bool,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    /// `ADD`: local archives are extracted, URLs downloaded.
    pub add: bool,
    pub checksum: Option<String>,
    pub parents: bool,
    pub exclude: Vec<String>,
    /// The image whose `/etc/passwd` and `/etc/group` give `--chown`'s names when it is not the
    /// image copied into (`COPY --link`, which copies into an empty layer).
    pub users_from: Option<Image>,
    /// `ADD <url>`: the files the backend fetched (then `sources` is empty).
    pub downloads: Vec<Download>,
    /// The config of the image the step makes.
    pub config: Value,
}

/// A file `ADD <url>` fetched, kept by the backend until the build ends.
#[derive(Debug, Clone)]
pub struct Download {
    pub path: PathBuf,
    /// `sha256:` and the hex digest of the content.
    pub digest: String,
    /// The name it gets in a directory destination (the URL path's last segment).
    pub file_name: String,
    /// The server's `Last-Modified`, the file's time.
    pub last_modified: Option<std::time::SystemTime>,
}

/// What the solver needs from the engine. Each method that makes an image returns it; the
/// backend keeps every image it made until [`Backend::finish`] (or the end of the build).
pub trait Backend: Sync {
    /// The base image `name`, pulled if missing (or always, with `pull`).
    fn image(&self, name: &str, pull: bool, out: &Output) -> Result<Image, BackendError>;
    /// Runs `req` in a container of `parent` and commits its changes with `req.config`.
    /// A process exiting with a code other than 0 is an error with that code.
    fn run(&self, parent: &Image, req: &RunRequest, out: &Output) -> Result<Image, BackendError>;
    /// Copies files into `parent`'s filesystem and commits them with `req.config`.
    fn copy(&self, parent: &Image, req: &CopyRequest) -> Result<Image, BackendError>;
    /// Makes `dir` (absolute) in `parent` if it is missing (WORKDIR), committed with
    /// `config`; without a change, only the config changes.
    fn mkdir(&self, parent: &Image, dir: &str, config: &Value) -> Result<Image, BackendError>;
    /// Fetches `url` (`ADD <url>`).
    fn fetch(&self, url: &str) -> Result<Download, BackendError> {
        Err(BackendError::new(format!(
            "cannot fetch {url}: this backend has no network access"
        )))
    }
    /// An image with `parent`'s layers, layer `index` of `source` on top, and `config`
    /// (`--cache-from`).
    fn reuse_layer(
        &self,
        parent: &Image,
        source: &Image,
        index: usize,
        config: &Value,
    ) -> Result<Image, BackendError> {
        let _ = (parent, index, config);
        Err(BackendError::new(format!(
            "cannot reuse the layers of {}",
            source.id
        )))
    }
    /// An image with `parent`'s layers and `config`.
    fn set_config(&self, parent: &Image, config: &Value) -> Result<Image, BackendError>;
    /// The image a step with this cache key made before, if it still exists.
    fn cache_get(&self, key: &str) -> Option<Image>;
    /// Records `image` as the result of the step with this key.
    fn cache_put(&self, key: &str, image: &Image);
    /// Whether the client has gone (the build stops at the next step).
    fn cancelled(&self) -> bool {
        false
    }
}

/// What the client asked of the build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `--build-arg`: a value, or `None` for "from the client's environment" already
    /// resolved by the client (the API's `null`).
    pub build_args: BTreeMap<String, Option<String>>,
    pub target: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    pub pull: bool,
    /// The build's network mode for `RUN`.
    pub network: Option<NetworkMode>,
    pub platform: Option<Platform>,
    /// Where `COPY` finds its files.
    pub context: BuildContext,
    /// `--cache-from`: images whose history gives cache.
    pub cache_from: Vec<String>,
}

/// How many stages are built at once at most.
pub const MAX_PARALLEL_STAGES: usize = 4;

/// Builds the target stage of `df` (the last one without `--target`); returns its image.
///
/// Stages whose inputs are built run in parallel ([`MAX_PARALLEL_STAGES`] at most), each on a
/// thread of its own; their `Step N/M` numbers are those of a build in plan order. The first
/// stage to fail stops the others at their next step.
pub fn solve(
    df: &Dockerfile,
    opts: &BuildOptions,
    backend: &dyn Backend,
    out: &Output,
) -> Result<Image, SolveError> {
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let plan = plan::plan(df, opts, &platform)?;
    let total_steps = plan.total_steps + usize::from(!opts.labels.is_empty());
    // `--cache-from` images that are here (others are left out, as the classic builder does).
    let cache_from: Vec<Image> = opts
        .cache_from
        .iter()
        .filter_map(|name| backend.image(name, false, &Output::discard()).ok())
        .collect();
    // The step number each stage starts after, in plan order.
    let mut first_step = vec![0usize; df.stages.len()];
    let mut n = 0;
    for &i in &plan.order {
        if let Some(slot) = first_step.get_mut(i) {
            *slot = n;
        }
        n += df.stages.get(i).map_or(0, |s| s.commands.len() + 1);
    }
    let shared = Scheduler {
        state: std::sync::Mutex::new(SchedState {
            built: vec![None; df.stages.len()],
            started: vec![false; df.stages.len()],
            error: None,
            used_args: std::collections::BTreeSet::new(),
        }),
        changed: std::sync::Condvar::new(),
        abort: std::sync::atomic::AtomicBool::new(false),
    };
    let workers = plan.order.len().clamp(1, MAX_PARALLEL_STAGES);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                shared.work(&StageJob {
                    df,
                    opts,
                    plan: &plan,
                    platform: &platform,
                    backend,
                    out,
                    total_steps,
                    first_step: &first_step,
                    cache_from: &cache_from,
                })
            });
        }
    });
    let mut state = shared
        .state
        .into_inner()
        .map_err(|_| SolveError::Invalid("a stage's thread panicked".into()))?;
    if let Some(e) = state.error.take() {
        return Err(e);
    }
    let unused: Vec<&str> = opts
        .build_args
        .keys()
        .filter(|k| !state.used_args.contains(*k) && !crate::platform::is_proxy_arg(k))
        .map(String::as_str)
        .collect();
    if !unused.is_empty() {
        out.stream(&format!(
            "[Warning] One or more build-args [{}] were not consumed\n",
            unused.join(" ")
        ));
    }
    state
        .built
        .get_mut(plan.target)
        .and_then(Option::take)
        .ok_or_else(|| SolveError::Invalid("the target stage was not built".into()))
}

/// What every stage's worker shares.
struct StageJob<'a> {
    df: &'a Dockerfile,
    opts: &'a BuildOptions,
    plan: &'a plan::Plan,
    platform: &'a Platform,
    backend: &'a dyn Backend,
    out: &'a Output,
    total_steps: usize,
    first_step: &'a [usize],
    cache_from: &'a [Image],
}

struct SchedState {
    built: Vec<Option<Image>>,
    started: Vec<bool>,
    error: Option<SolveError>,
    used_args: std::collections::BTreeSet<String>,
}

/// The stages of a build handed to workers as their inputs are built.
struct Scheduler {
    state: std::sync::Mutex<SchedState>,
    changed: std::sync::Condvar,
    abort: std::sync::atomic::AtomicBool,
}

impl Scheduler {
    /// A worker: takes the next stage whose inputs are built, builds it, until none is left
    /// (or one failed).
    fn work(&self, job: &StageJob<'_>) {
        loop {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            let (index, built) = loop {
                if state.error.is_some() {
                    return;
                }
                let ready = job.plan.order.iter().copied().find(|&i| {
                    !state.started.get(i).copied().unwrap_or(true)
                        && job.plan.deps.get(i).is_none_or(|ds| {
                            ds.iter()
                                .all(|&d| state.built.get(d).is_some_and(Option::is_some))
                        })
                });
                match ready {
                    Some(i) => {
                        if let Some(s) = state.started.get_mut(i) {
                            *s = true;
                        }
                        break (i, state.built.clone());
                    }
                    None if job
                        .plan
                        .order
                        .iter()
                        .all(|&i| state.started.get(i) == Some(&true)) =>
                    {
                        return;
                    }
                    None => match self.changed.wait(state) {
                        Ok(s) => state = s,
                        Err(_) => return,
                    },
                }
            };
            drop(state);
            let ctx = stage::StageContext {
                df: job.df,
                opts: job.opts,
                plan: job.plan,
                platform: job.platform,
                backend: job.backend,
                out: job.out,
                built: &built,
                total_steps: job.total_steps,
                abort: &self.abort,
                cache_from: job.cache_from,
            };
            let mut step = job.first_step.get(index).copied().unwrap_or(0);
            let result = stage::build(&ctx, index, &mut step);
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            match result {
                Ok((image, used)) => {
                    state.used_args.extend(used);
                    if let Some(slot) = state.built.get_mut(index) {
                        *slot = Some(image);
                    }
                }
                Err(e) => {
                    self.abort.store(true, std::sync::atomic::Ordering::Relaxed);
                    if state.error.is_none() {
                        state.error = Some(e);
                    }
                }
            }
            self.changed.notify_all();
        }
    }
}
