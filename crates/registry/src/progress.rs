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

impl Progress {
    /// The event as a line of Docker's JSON-lines progress stream (`jsonmessage`):
    /// `{"status":"Downloading","progressDetail":{"current":1,"total":2},"progress":"[=>  ] ...","id":"..."}`.
    pub fn json_message(&self) -> serde_json::Value {
        let mut message = serde_json::json!({
            "status": self.status.to_string(),
            "progressDetail": {},
            "id": self.id,
        });
        if matches!(self.status, Status::Downloading | Status::Pushing) && self.total > 0 {
            message["progressDetail"] =
                serde_json::json!({"current": self.current, "total": self.total});
            message["progress"] = serde_json::Value::String(self.bar());
        }
        message
    }

    /// Docker's progress text: a 50-column bar, then bytes done of the total.
    pub fn bar(&self) -> String {
        const WIDTH: u64 = 50;
        let filled = (WIDTH * self.current.min(self.total))
            .checked_div(self.total)
            .unwrap_or(0)
            .min(WIDTH - 1);
        format!(
            "[{}>{}] {:>8}/{}",
            "=".repeat(filled as usize),
            " ".repeat((WIDTH - 1 - filled) as usize),
            human_size(self.current),
            human_size(self.total)
        )
    }
}

/// Sizes as Docker prints them (go-units `HumanSize`): decimal units, 4 significant digits.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    // %.4g: four significant digits, without trailing zeros.
    let digits = if value >= 100.0 {
        1
    } else if value >= 10.0 {
        2
    } else {
        3
    };
    let text = format!("{value:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_docker_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(1_234_567), "1.235MB");
        assert_eq!(human_size(32_500_000), "32.5MB");
        assert_eq!(human_size(772_800), "772.8kB");
    }

    #[test]
    fn json_messages_have_dockers_shape() {
        let p = Progress {
            id: "0123456789ab".into(),
            status: Status::Downloading,
            current: 500_000,
            total: 1_000_000,
        };
        let m = p.json_message();
        assert_eq!(m["status"], "Downloading");
        assert_eq!(m["progressDetail"]["current"], 500_000);
        assert_eq!(m["id"], "0123456789ab");
        let bar = m["progress"].as_str().unwrap();
        assert!(bar.starts_with(&format!("[{}>", "=".repeat(25))), "{bar}");
        assert!(bar.ends_with("500kB/1MB"), "{bar}");
        let done = Progress {
            status: Status::PullComplete,
            ..p
        };
        assert_eq!(
            done.json_message(),
            serde_json::json!({"status": "Pull complete", "progressDetail": {}, "id": "0123456789ab"})
        );
    }
}
