//! Which daemon a command talks to, and how, as the docker CLI decides it: `-H` / `--context`
//! (not both), `DOCKER_HOST`, `DOCKER_CONTEXT`, config.json's `currentContext`, the default;
//! TLS from `--tls`, `--tlsverify`, `--tlscacert`, `--tlscert`, `--tlskey`, `DOCKER_TLS_VERIFY`,
//! `DOCKER_CERT_PATH` (default: the config directory, `~/.docker`), or from the context's
//! TLS material. Every variable has a `BERTH_` twin, read first.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Result};
use berth_api::client::DEFAULT_HOST;
use berth_api::client_conn::TlsOptions;
use clap::Args;

use crate::context::{self, Store};

/// The global connection flags.
#[derive(Args, Debug, Default)]
pub struct ConnFlags {
    /// Daemon socket to connect to
    #[arg(short = 'H', long = "host", global = true)]
    pub host: Option<String>,
    /// Use TLS; implied by --tlsverify
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls: Option<bool>,
    /// Use TLS and verify the remote
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tlsverify: Option<bool>,
    /// Trust certs signed only by this CA
    #[arg(long, global = true)]
    pub tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file
    #[arg(long, global = true)]
    pub tlscert: Option<PathBuf>,
    /// Path to TLS key file
    #[arg(long, global = true)]
    pub tlskey: Option<PathBuf>,
}

/// The resolved target.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub tls: Option<TlsOptions>,
    /// The context's name (`default` for `-H`, the variables and the default socket).
    pub context: String,
}

static TARGET: OnceLock<Target> = OnceLock::new();

/// The TLS options of `host` (set by [`resolve`]).
pub fn tls_for(host: &str) -> Option<TlsOptions> {
    TARGET
        .get()
        .filter(|t| t.host == host)
        .and_then(|t| t.tls.clone())
}

/// The context this command uses (`version` and `info` show it).
pub fn current_context() -> String {
    TARGET
        .get()
        .map_or_else(|| context::DEFAULT.to_string(), |t| t.context.clone())
}

/// `BERTH_NAME`, else `DOCKER_NAME`, when set and not empty.
pub fn env(name: &str) -> Option<String> {
    [format!("BERTH_{name}"), format!("DOCKER_{name}")]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

/// The docker CLI's configuration directory: `DOCKER_CONFIG` (or `BERTH_CONFIG`), else
/// `~/.docker`.
pub fn config_dir() -> PathBuf {
    match env("CONFIG") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".docker"),
    }
}

/// The context a command uses (the docker CLI's order).
pub fn context_name(flags: &ConnFlags, flag: Option<&str>) -> Result<String> {
    if let Some(c) = flag.filter(|c| !c.is_empty()) {
        if flags.host.is_some() {
            bail!("conflicting options: either specify --host or --context, not both");
        }
        return Ok(c.to_string());
    }
    if flags.host.is_some() || env("HOST").is_some() {
        return Ok(context::DEFAULT.to_string());
    }
    if let Some(c) = env("CONTEXT") {
        return Ok(c);
    }
    Ok(Store::open()
        .current()
        .unwrap_or_else(|| context::DEFAULT.to_string()))
}

/// Resolves the target of this command once (the host string the commands get back).
pub fn resolve(flags: &ConnFlags, context_flag: Option<&str>) -> Result<Target> {
    let name = context_name(flags, context_flag)?;
    let target = if name == context::DEFAULT {
        let host = flags
            .host
            .clone()
            .or_else(|| env("HOST"))
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let tls = flag_tls(flags);
        Target {
            host,
            tls,
            context: name,
        }
    } else {
        let store = Store::open();
        let ctx = store.load(&name).map_err(|e| {
            if store.current().as_deref() == Some(name.as_str()) && env("CONTEXT").is_none() {
                anyhow::anyhow!(
                    "current context {name:?} is not found on the file system, please check your config file at {}",
                    config_dir().join("config.json").display()
                )
            } else {
                anyhow::anyhow!("{e}")
            }
        })?;
        let tls = ctx.tls_options(&store);
        Target {
            host: ctx.host().to_string(),
            tls,
            context: name,
        }
    };
    let _ = TARGET.set(target.clone());
    Ok(target)
}

/// TLS from the flags and the variables; `None` without `--tls`, `--tlsverify` or
/// `DOCKER_TLS_VERIFY`/`DOCKER_TLS`.
fn flag_tls(flags: &ConnFlags) -> Option<TlsOptions> {
    // As the docker CLI: a set DOCKER_TLS_VERIFY means verify, whatever its value; the flag
    // given at all turns TLS on.
    let verify = flags
        .tlsverify
        .unwrap_or_else(|| env("TLS_VERIFY").is_some());
    let tls =
        flags.tls.unwrap_or_else(|| env("TLS").is_some()) || verify || flags.tlsverify.is_some();
    if !tls {
        return None;
    }
    let dir = env("CERT_PATH").map_or_else(config_dir, PathBuf::from);
    // A default file that does not exist is left out; a named one must exist.
    let pick = |given: &Option<PathBuf>, name: &str| -> Option<PathBuf> {
        match given {
            Some(p) => Some(p.clone()),
            None => Some(dir.join(name)).filter(|p| Path::exists(p)),
        }
    };
    Some(TlsOptions {
        ca: pick(&flags.tlscacert, "ca.pem").or_else(|| verify.then(|| dir.join("ca.pem"))),
        cert: pick(&flags.tlscert, "cert.pem"),
        key: pick(&flags.tlskey, "key.pem"),
        verify,
    })
}
