//! Progress of a pull or push, per layer, in the words of Docker's progress messages: what the
//! API streams as JSON lines and the CLI draws as bars.

use std::fmt;
use std::sync::Arc;

/// Where a layer (or the manifest) is in a pull or push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    PullingFsLayer,
    Waiting,
    Downloading,
    DownloadComplete,
    PullComplete,
    AlreadyExists,
    Preparing,
    Pushing,
    Pushed,
    LayerAlreadyExists,
    /// Mounted from another repository of the same registry (its name).
    MountedFrom(String),
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::PullingFsLayer => f.write_str("Pulling fs layer"),
            Status::Waiting => f.write_str("Waiting"),
            Status::Downloading => f.write_str("Downloading"),
            Status::DownloadComplete => f.write_str("Download complete"),
            Status::PullComplete => f.write_str("Pull complete"),
            Status::AlreadyExists => f.write_str("Already exists"),
            Status::Preparing => f.write_str("Preparing"),
            Status::Pushing => f.write_str("Pushing"),
            Status::Pushed => f.write_str("Pushed"),
            Status::LayerAlreadyExists => f.write_str("Layer already exists"),
            Status::MountedFrom(repo) => write!(f, "Mounted from {repo}"),
        }
    }
}

/// One progress event: the layer's short id (12 hex digits, as Docker shows it), its status,
/// and for transfers the bytes done of the total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub id: String,
    pub status: Status,
    pub current: u64,
    pub total: u64,
}

/// Receives progress events; called from the pulling task, so it must be quick.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Sends events to an optional [`ProgressFn`].
#[derive(Clone, Default)]
pub(crate) struct Reporter(pub(crate) Option<ProgressFn>);

impl Reporter {
    pub(crate) fn report(&self, id: &str, status: Status, current: u64, total: u64) {
        if let Some(f) = &self.0 {
            f(&Progress {
                id: id.to_string(),
                status,
                current,
                total,
            });
        }
    }
}

/// The short id Docker shows for a digest.
pub(crate) fn short_id(digest: &berth_image::digest::Digest) -> String {
    digest.hex().chars().take(12).collect()
}
