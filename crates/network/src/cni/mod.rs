//! The runtime side of the Container Network Interface (CNI spec 1.0.0; 0.3.x and 0.4.0
//! configuration lists are accepted too): how third-party network drivers plug in.
//!
//! - [`conf`]: a network configuration list (`.conflist`, or a single-plugin `.conf`), parsed
//!   and checked (version, name, plugin types found in the plugin path);
//! - `exec`: one plugin run, with the spec's `CNI_*` environment, the configuration on stdin,
//!   a time limit, and the plugin's JSON error turned into [`CniError::Plugin`];
//! - [`result`]: the result a plugin prints (interfaces, IPs, routes, DNS);
//! - [`cache`]: the result of each ADD, per (network, container), on disk, so that DEL gets its
//!   `prevResult` after a daemon restart too.
//!
//! [`Cni::add`] runs the list's plugins in order, each with the previous one's result as
//! `prevResult`, and undoes what it did (DEL of the whole list) when one fails; [`Cni::del`]
//! runs them in reverse order with the cached result. Both give the runtime's capability
//! values ([`Invocation::runtime_config`], e.g. `portMappings`) as `runtimeConfig` to the
//! plugins declaring them. Written by hand: the spec is small
//! (environment, stdin, stdout), and the Rust crates for it are clients of a different shape
//! (async runtimes of their own, or plugin-side only).

pub mod cache;
pub mod conf;
mod exec;
pub mod result;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

pub use conf::ConfList;
pub use result::{CniResult, Dns};

use crate::persist::PersistError;

/// The plugin path when `CNI_PATH` is not set: Debian's, then the upstream default.
pub const DEFAULT_PATH: &str = "/usr/lib/cni:/opt/cni/bin";
/// How long one plugin run may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a CNI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// `--driver cni` without the conflist option.
    #[error(
        "the cni driver needs the option {option}=PATH naming a CNI network configuration list"
    )]
    MissingConflist {
        /// The option's name.
        option: &'static str,
    },
    /// The conflist file could not be read.
    #[error("reading the cni conflist {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The conflist is not valid.
    #[error("invalid cni conflist: {0}")]
    Invalid(String),
    /// A plugin named by the conflist is not in the plugin path.
    #[error("cni plugin {plugin:?} not found in {path}")]
    PluginNotFound {
        /// The plugin's type.
        plugin: String,
        /// The plugin path searched.
        path: String,
    },
    /// A plugin answered with the spec's error object.
    #[error("cni plugin {plugin} failed ({command}): {msg}{}{} (code {code})",
        if details.is_empty() { "" } else { ": " }, details)]
    Plugin {
        /// The plugin's type.
        plugin: String,
        /// ADD or DEL.
        command: &'static str,
        /// The spec's error code.
        code: u64,
        /// The message.
        msg: String,
        /// More of it.
        details: String,
    },
    /// A plugin failed without an error object (crashed, or printed something else).
    #[error("cni plugin {plugin} failed ({command}): {reason}")]
    PluginFailed {
        /// The plugin's type.
        plugin: String,
        /// ADD or DEL.
        command: &'static str,
        /// What happened: exit status and stderr, or the spawn error.
        reason: String,
    },
    /// A plugin took longer than allowed.
    #[error("cni plugin {plugin} ({command}) did not finish within {}s", timeout.as_secs())]
    Timeout {
        /// The plugin's type.
        plugin: String,
        /// ADD or DEL.
        command: &'static str,
        /// The limit.
        timeout: Duration,
    },
    /// A plugin's result could not be understood.
    #[error("cni plugin {plugin} printed an invalid result: {reason}")]
    BadResult {
        /// The plugin's type.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The result of the list gave the container no IPv4 address.
    #[error("cni network {0} gave the container no IPv4 address")]
    NoAddress(String),
    /// An id that cannot name a cache file.
    #[error("invalid id {0:?}")]
    BadId(String),
    /// The cache could not be read or written.
    #[error(transparent)]
    Persist(#[from] PersistError),
}

impl CniError {
    /// Whether the error is about the configuration the client gave (a 400), rather than about
    /// running it.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            CniError::MissingConflist { .. }
                | CniError::Read { .. }
                | CniError::Invalid(_)
                | CniError::PluginNotFound { .. }
        )
    }
}

/// One container's attachment, as the plugins see it.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`: the container's network namespace file (empty for a DEL after the namespace
    /// is gone).
    pub netns: PathBuf,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS` (`K=V;K=V`).
    pub args: String,
    /// The runtime's values of capabilities (`portMappings`), given as `runtimeConfig` to the
    /// plugins that declare them, on ADD and DEL alike.
    pub runtime_config: serde_json::Map<String, Value>,
}

/// The plugin path and time limit: how plugins are run.
#[derive(Debug, Clone)]
pub struct Cni {
    path: Vec<PathBuf>,
    timeout: Duration,
}

impl Default for Cni {
    fn default() -> Self {
        Cni::new()
    }
}

impl Cni {
    /// The plugin path from `CNI_PATH` (colon-separated), else [`DEFAULT_PATH`].
    pub fn new() -> Self {
        let path = std::env::var("CNI_PATH")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| DEFAULT_PATH.to_string());
        Cni {
            path: std::env::split_paths(&path).collect(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Searches `path` for plugins.
    pub fn with_path(mut self, path: Vec<PathBuf>) -> Self {
        self.path = path;
        self
    }

    /// Lets each plugin run take at most `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The plugin path.
    pub fn path(&self) -> &[PathBuf] {
        &self.path
    }

    fn path_text(&self) -> String {
        std::env::join_paths(&self.path)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The executable of plugin `kind`: the first in the path.
    pub fn find(&self, kind: &str) -> Result<PathBuf, CniError> {
        use std::os::unix::fs::PermissionsExt;
        self.path
            .iter()
            .map(|dir| dir.join(kind))
            .find(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .ok_or_else(|| CniError::PluginNotFound {
                plugin: kind.to_string(),
                path: self.path_text(),
            })
    }

    /// Checks that every plugin of `conf` is in the path.
    pub fn check(&self, conf: &ConfList) -> Result<(), CniError> {
        for plugin in &conf.plugins {
            self.find(conf::plugin_type(plugin))?;
        }
        Ok(())
    }

    /// ADD: runs the plugins in order; the last one's result. When one fails, the whole list
    /// is deleted again (reverse order, errors ignored) and its error returned.
    pub async fn add(&self, conf: &ConfList, inv: &Invocation) -> Result<Value, CniError> {
        let mut prev: Option<Value> = None;
        for (i, plugin) in conf.plugins.iter().enumerate() {
            let ran = self.run(conf, i, "ADD", inv, prev.as_ref()).await;
            let out = match ran.and_then(|out| parse_result(plugin, &out)) {
                Ok(out) => out,
                Err(e) => {
                    if let Err(undo) = self.del(conf, inv, prev.as_ref()).await {
                        tracing::warn!(network = %conf.name, error = %undo, "cni DEL after a failed ADD");
                    }
                    return Err(e);
                }
            };
            prev = Some(out);
        }
        prev.ok_or_else(|| CniError::Invalid("no plugins".into()))
    }

    /// DEL: runs the plugins in reverse order, each with `prev` (the cached ADD result) as
    /// `prevResult`. All run even when one fails; the first error is returned.
    pub async fn del(
        &self,
        conf: &ConfList,
        inv: &Invocation,
        prev: Option<&Value>,
    ) -> Result<(), CniError> {
        let mut inv = inv.clone();
        if !inv.netns.as_os_str().is_empty() && !is_netns(&inv.netns) {
            // The namespace is gone: the spec lets the runtime pass none, and the plugins
            // release what lives outside it (addresses, host interfaces, rules).
            inv.netns = PathBuf::new();
        }
        let mut first = None;
        for i in (0..conf.plugins.len()).rev() {
            if let Err(e) = self.run(conf, i, "DEL", &inv, prev).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    async fn run(
        &self,
        conf: &ConfList,
        index: usize,
        command: &'static str,
        inv: &Invocation,
        prev: Option<&Value>,
    ) -> Result<Vec<u8>, CniError> {
        let plugin = &conf.plugins[index];
        let kind = conf::plugin_type(plugin);
        let exe = self.find(kind)?;
        let config = conf.plugin_config(index, prev, &inv.runtime_config);
        let stdin = serde_json::to_vec(&config).map_err(|e| CniError::Invalid(e.to_string()))?;
        exec::run(&exec::Run {
            exe: &exe,
            kind,
            command,
            inv,
            cni_path: &self.path_text(),
            stdin: &stdin,
            timeout: self.timeout,
        })
        .await
    }
}

/// A plugin's stdout as a result object (checked to parse as one).
fn parse_result(plugin: &serde_json::Map<String, Value>, out: &[u8]) -> Result<Value, CniError> {
    let bad = |reason: String| CniError::BadResult {
        plugin: conf::plugin_type(plugin).to_string(),
        reason,
    };
    let value: Value = serde_json::from_slice(out).map_err(|e| bad(e.to_string()))?;
    CniResult::from_value(&value).map_err(|e| bad(e.to_string()))?;
    Ok(value)
}

/// Whether `path` is a network namespace (an `nsfs` file), not a file left behind.
fn is_netns(path: &Path) -> bool {
    use nix::sys::statfs::{statfs, NSFS_MAGIC};
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}
