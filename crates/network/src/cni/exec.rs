//! One plugin run, as the spec's "execution protocol" has it: the `CNI_*` variables in a clean
//! environment (plus `PATH`, for plugins that run tools), the configuration on stdin, the
//! result or an error object `{code, msg, details}` on stdout. The run is killed when it
//! takes longer than its time limit.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{CniError, Invocation};

/// `PATH` for plugins when the daemon has none.
const DEFAULT_PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How much of a failing plugin's stderr goes into the error.
const STDERR_MAX: usize = 2000;

/// What to run.
pub(super) struct Run<'a> {
    /// The executable.
    pub exe: &'a Path,
    /// The plugin's type (for errors).
    pub kind: &'a str,
    /// `CNI_COMMAND`.
    pub command: &'static str,
    /// The attachment.
    pub inv: &'a Invocation,
    /// `CNI_PATH`.
    pub cni_path: &'a str,
    /// The configuration.
    pub stdin: &'a [u8],
    /// The limit.
    pub timeout: Duration,
}

/// The spec's error object.
#[derive(Debug, Deserialize)]
struct ErrorObject {
    #[serde(default)]
    code: u64,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

/// Runs the plugin; its stdout when it succeeds.
pub(super) async fn run(r: &Run<'_>) -> Result<Vec<u8>, CniError> {
    let failed = |reason: String| CniError::PluginFailed {
        plugin: r.kind.to_string(),
        command: r.command,
        reason,
    };
    let path_env = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH_ENV.to_string());
    let mut child = Command::new(r.exe)
        .env_clear()
        .env("PATH", path_env)
        .env("CNI_COMMAND", r.command)
        .env("CNI_CONTAINERID", &r.inv.container_id)
        .env("CNI_NETNS", &r.inv.netns)
        .env("CNI_IFNAME", &r.inv.ifname)
        .env("CNI_ARGS", &r.inv.args)
        .env("CNI_PATH", r.cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("starting {}: {e}", r.exe.display())))?;
    let mut stdin = child.stdin.take();
    let input = r.stdin.to_vec();
    // Written alongside the wait, so a plugin that prints before it reads cannot block us.
    let write = async move {
        if let Some(pipe) = stdin.as_mut() {
            // A plugin that exits without reading makes this fail: its exit status tells.
            let _ = pipe.write_all(&input).await;
        }
        drop(stdin);
    };
    let both = async { tokio::join!(write, child.wait_with_output()).1 };
    let output = match tokio::time::timeout(r.timeout, both).await {
        Ok(output) => output.map_err(|e| failed(format!("waiting: {e}")))?,
        // Dropping the future dropped the child, which kill_on_drop kills.
        Err(_) => {
            return Err(CniError::Timeout {
                plugin: r.kind.to_string(),
                command: r.command,
                timeout: r.timeout,
            })
        }
    };
    if output.status.success() {
        return Ok(output.stdout);
    }
    if let Ok(e) = serde_json::from_slice::<ErrorObject>(&output.stdout) {
        if !e.msg.is_empty() || e.code != 0 {
            return Err(CniError::Plugin {
                plugin: r.kind.to_string(),
                command: r.command,
                code: e.code,
                msg: e.msg,
                details: e.details,
            });
        }
    }
    let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    if stderr.is_empty() {
        stderr = String::from_utf8_lossy(&output.stdout).trim().to_string();
    }
    if stderr.len() > STDERR_MAX {
        let mut end = STDERR_MAX;
        while !stderr.is_char_boundary(end) {
            end -= 1;
        }
        stderr.truncate(end);
    }
    Err(failed(format!("{}: {stderr}", output.status)))
}
