//! Docker's legacy (v1) plugins, found and called as dockerd does (`pkg/plugins`):
//!
//! - found by name: a unix socket `<sockets>/NAME.sock` or `<sockets>/NAME/NAME.sock`, else in
//!   each spec directory `NAME.spec`, `NAME/NAME.spec`, `NAME.json`, `NAME/NAME.json`, in that
//!   order ([`Dirs`]; dockerd's are `/run/docker/plugins`, then `/etc/docker/plugins` and
//!   `/usr/lib/docker/plugins`). A `.spec` file holds an address (`unix:///path.sock`,
//!   `tcp://host:port`, `http(s)://host:port`); a `.json` file `{"Addr": ..., "TLSConfig": ...}`;
//! - activated once (`POST /Plugin.Activate` → `{"Implements": ["VolumeDriver"]}`) and kept
//!   ([`Registry`]);
//! - called with `POST /METHOD`, a JSON body, `Accept` (and `Content-Type`)
//!   `application/vnd.docker.plugins.v1.2+json`. An answer other than 200 is the error
//!   `METHOD: <its Err, else its body>`; a 200 answer with a non-empty `Err` the error `<Err>`.
//!
//! Waits are bounded: a connection refused is tried again with a backoff for
//! [`RETRY_FOR`] (dockerd: 30 s), and each call has [`CALL_TIMEOUT`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// What volume plugins implement.
pub(crate) const VOLUME_DRIVER: &str = "VolumeDriver";
/// The media type dockerd sends plugins (`pkg/plugins/transport.VersionMimetype`).
pub(crate) const MIME: &str = "application/vnd.docker.plugins.v1.2+json";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a plugin that refuses connections is tried again.
const RETRY_FOR: Duration = Duration::from_secs(5);
/// The most of an answer that is read.
const MAX_ANSWER: usize = 16 << 20;

/// What went wrong with a plugin, in dockerd's words.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin \"{0}\" not found")]
    NotFound(String),
    #[error("Plugin does not implement the requested driver")]
    NotImplements,
    /// An answer other than 200: its `Err`, else its body.
    #[error("{method}: {message}")]
    Status {
        method: String,
        status: u16,
        message: String,
    },
    /// The `Err` of a 200 answer.
    #[error("{0}")]
    Answer(String),
    /// The plugin could not be reached, or its answer read.
    #[error("{method}: {message}")]
    Transport { method: String, message: String },
    /// A spec file that does not say where the plugin is.
    #[error("{path}: {reason}")]
    Spec { path: String, reason: String },
    #[error("calling the plugin: {0}")]
    Thread(String),
}

impl PluginError {
    /// Whether the plugin could not be reached (dockerd's `net.Error`), rather than answered.
    pub(crate) fn is_transport(&self) -> bool {
        matches!(self, PluginError::Transport { .. })
    }
}

type Result<T> = std::result::Result<T, PluginError>;

/// Where plugins are looked for.
#[derive(Debug, Clone)]
pub(crate) struct Dirs {
    sockets: PathBuf,
    specs: Vec<PathBuf>,
}

impl Dirs {
    /// dockerd's directories, or sockets and spec files all in `dir`.
    pub(crate) fn new(dir: Option<&Path>) -> Dirs {
        match dir {
            Some(dir) => Dirs {
                sockets: dir.to_path_buf(),
                specs: vec![dir.to_path_buf()],
            },
            None => Dirs {
                sockets: PathBuf::from("/run/docker/plugins"),
                specs: vec![
                    PathBuf::from("/etc/docker/plugins"),
                    PathBuf::from("/usr/lib/docker/plugins"),
                ],
            },
        }
    }

    /// Where plugin `name` is, if it is anywhere.
    pub(crate) fn find(&self, name: &str) -> Result<Option<Address>> {
        if !valid_name(name) {
            return Ok(None);
        }
        use std::os::unix::fs::FileTypeExt;
        for p in paths(&self.sockets, name, "sock") {
            if std::fs::metadata(&p).is_ok_and(|m| m.file_type().is_socket()) {
                return Ok(Some(Address::unix(p)));
            }
        }
        for dir in &self.specs {
            let spec = paths(dir, name, "spec");
            let json = paths(dir, name, "json");
            for p in spec.into_iter().chain(json) {
                if std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
                    return read_spec(&p).map(Some);
                }
            }
        }
        Ok(None)
    }

    /// The names of the plugins found (sockets, then spec files; one or two levels deep).
    pub(crate) fn scan(&self) -> Vec<String> {
        let mut names = BTreeSet::new();
        let dirs =
            std::iter::once((&self.sockets, true)).chain(self.specs.iter().map(|d| (d, false)));
        for (dir, sockets) in dirs {
            for (path, socket) in files(dir, 2) {
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
                let wanted = if sockets {
                    socket && ext == "sock"
                } else {
                    !socket && (ext == "spec" || ext == "json")
                };
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                if wanted && valid_name(stem) {
                    names.insert(stem.to_string());
                }
            }
        }
        names.into_iter().collect()
    }
}

/// A plugin name that can be a file name: not empty, no `/`, not `.` or `..`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

fn paths(base: &Path, name: &str, ext: &str) -> [PathBuf; 2] {
    [
        base.join(format!("{name}.{ext}")),
        base.join(name).join(format!("{name}.{ext}")),
    ]
}

/// The files under `dir`, down to `depth` levels, with whether each is a socket.
fn files(dir: &Path, depth: usize) -> Vec<(PathBuf, bool)> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if depth > 1 {
                out.extend(files(&entry.path(), depth - 1));
            }
        } else {
            out.push((entry.path(), kind.is_socket()));
        }
    }
    out
}

/// How a plugin is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    /// The unix socket, if it is one.
    socket: Option<PathBuf>,
    /// `http://plugin` for a socket, else `http(s)://host:port`.
    base: String,
    tls: Tls,
}

/// A `.json` spec's `TLSConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tls {
    #[serde(default, rename = "CAFile")]
    ca_file: String,
    #[serde(default)]
    cert_file: String,
    #[serde(default)]
    key_file: String,
    #[serde(default)]
    insecure_skip_verify: bool,
}

impl Address {
    fn unix(path: PathBuf) -> Address {
        Address {
            socket: Some(path),
            base: "http://plugin".to_string(),
            tls: Tls::default(),
        }
    }

    /// A spec's address: `unix:///path`, `tcp://host:port`, `http://` or `https://`.
    fn parse(addr: &str, path: &Path) -> Result<Address> {
        let bad = |reason: &str| PluginError::Spec {
            path: path.display().to_string(),
            reason: reason.to_string(),
        };
        let Some((scheme, rest)) = addr.split_once("://") else {
            return Err(bad("Unknown protocol"));
        };
        match scheme {
            "unix" if rest.starts_with('/') => Ok(Address::unix(PathBuf::from(rest))),
            "unix" => Err(bad("the socket path must be absolute")),
            "tcp" | "http" | "https" => {
                let host = rest.split('/').next().unwrap_or("");
                if host.is_empty() {
                    return Err(bad("no host in the address"));
                }
                let scheme = if scheme == "https" { "https" } else { "http" };
                Ok(Address {
                    socket: None,
                    base: format!("{scheme}://{host}"),
                    tls: Tls::default(),
                })
            }
            "" => Err(bad("Unknown protocol")),
            _ => Err(bad(&format!("unsupported protocol {scheme}"))),
        }
    }
}

/// Reads a `.spec` (an address) or `.json` (`{"Addr", "TLSConfig"}`) file.
fn read_spec(path: &Path) -> Result<Address> {
    let bad = |reason: String| PluginError::Spec {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    if path.extension().is_some_and(|e| e == "json") {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Spec {
            #[serde(default)]
            addr: String,
            #[serde(default, rename = "TLSConfig")]
            tls_config: Option<Tls>,
        }
        let spec: Spec = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut addr = Address::parse(spec.addr.trim(), path)?;
        let tls = spec.tls_config.unwrap_or_default();
        addr.tls = Tls {
            // As dockerd: without a CA, the plugin's certificate is not checked.
            insecure_skip_verify: tls.insecure_skip_verify || tls.ca_file.is_empty(),
            ..tls
        };
        return Ok(addr);
    }
    let mut addr = Address::parse(text.trim(), path)?;
    addr.tls.insecure_skip_verify = true;
    Ok(addr)
}

/// An activated plugin.
#[derive(Debug)]
pub(crate) struct Plugin {
    pub name: String,
    client: reqwest::Client,
    base: String,
    implements: Vec<String>,
    /// `VolumeDriver.Capabilities`' scope, asked once.
    scope: OnceLock<String>,
}

/// A volume as `VolumeDriver.Get` and `.List` give it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Listed {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub mountpoint: String,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub status: Option<serde_json::Map<String, Value>>,
}

impl Plugin {
    /// Connects to `addr` and activates the plugin there (trying again while it refuses
    /// connections when `retry`).
    async fn activate(name: &str, addr: &Address, retry: bool) -> Result<Plugin> {
        let failed = |e: &dyn std::fmt::Display| PluginError::Transport {
            method: "Plugin.Activate".to_string(),
            message: e.to_string(),
        };
        // No idle connections: a call may come from a runtime of its own (see [`wait`]).
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .pool_max_idle_per_host(0)
            .no_proxy();
        if let Some(socket) = &addr.socket {
            builder = builder.unix_socket(socket.as_path());
        }
        if addr.base.starts_with("https:") {
            let tls = &addr.tls;
            if !tls.ca_file.is_empty() {
                let pem = std::fs::read(&tls.ca_file).map_err(|e| failed(&e))?;
                let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| failed(&e))?;
                builder = builder.add_root_certificate(cert);
            }
            if !tls.cert_file.is_empty() && !tls.key_file.is_empty() {
                let mut pem = std::fs::read(&tls.cert_file).map_err(|e| failed(&e))?;
                pem.extend(std::fs::read(&tls.key_file).map_err(|e| failed(&e))?);
                let id = reqwest::Identity::from_pem(&pem).map_err(|e| failed(&e))?;
                builder = builder.identity(id);
            }
            builder = builder.tls_danger_accept_invalid_certs(tls.insecure_skip_verify);
        }
        let client = builder.build().map_err(|e| failed(&e))?;
        let mut plugin = Plugin {
            name: name.to_string(),
            client,
            base: addr.base.clone(),
            implements: Vec::new(),
            scope: OnceLock::new(),
        };
        #[derive(Deserialize)]
        struct Manifest {
            #[serde(default, rename = "Implements")]
            implements: Vec<String>,
        }
        let manifest: Manifest = plugin.call_with("Plugin.Activate", None, retry).await?;
        plugin.implements = manifest.implements;
        Ok(plugin)
    }

    pub(crate) fn implements(&self, what: &str) -> bool {
        self.implements.iter().any(|i| i == what)
    }

    /// `POST /METHOD` with `body`; the answer decoded, its `Err` an error.
    async fn call<T: DeserializeOwned>(&self, method: &str, body: Option<Value>) -> Result<T> {
        self.call_with(method, body, true).await
    }

    async fn call_with<T: DeserializeOwned>(
        &self,
        method: &str,
        body: Option<Value>,
        retry: bool,
    ) -> Result<T> {
        let failed = |e: &dyn std::fmt::Display| PluginError::Transport {
            method: method.to_string(),
            message: e.to_string(),
        };
        // As Go's JSON encoder: a line; nothing for Plugin.Activate.
        let text = body.map(|b| format!("{b}\n")).unwrap_or_default();
        let url = format!("{}/{method}", self.base);
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        let mut answer = loop {
            let sent = self
                .client
                .post(&url)
                .header(reqwest::header::ACCEPT, MIME)
                .header(reqwest::header::CONTENT_TYPE, MIME)
                .body(text.clone())
                .send()
                .await;
            match sent {
                Ok(answer) => break answer,
                Err(e) if retry && e.is_connect() && started.elapsed() + pause < RETRY_FOR => {
                    tracing::warn!(plugin = %self.name, method, error = %e, "plugin unreachable, trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(failed(&error_chain(&e))),
            }
        };
        let status = answer.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = answer.chunk().await.map_err(|e| failed(&error_chain(&e)))? {
            if bytes.len() + chunk.len() > MAX_ANSWER {
                return Err(failed(&"the answer is too large"));
            }
            bytes.extend_from_slice(&chunk);
        }
        let value: Option<Value> = serde_json::from_slice(&bytes).ok();
        let err = value
            .as_ref()
            .and_then(|v| v.get("Err"))
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
            .map(str::to_string);
        if status != reqwest::StatusCode::OK {
            return Err(PluginError::Status {
                method: method.to_string(),
                status: status.as_u16(),
                message: err.unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()),
            });
        }
        if let Some(err) = err {
            return Err(PluginError::Answer(err));
        }
        let Some(value) = value else {
            return Err(failed(&"the answer is not JSON"));
        };
        serde_json::from_value(value).map_err(|e| failed(&format!("invalid answer: {e}")))
    }

    pub(crate) async fn create(&self, name: &str, opts: &BTreeMap<String, String>) -> Result<()> {
        let _: Value = self
            .call(
                "VolumeDriver.Create",
                Some(json!({"Name": name, "Opts": opts})),
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn remove(&self, name: &str) -> Result<()> {
        let _: Value = self
            .call("VolumeDriver.Remove", Some(json!({"Name": name})))
            .await?;
        Ok(())
    }

    /// Mounts volume `name` for caller `id`; its mount point.
    pub(crate) async fn mount(&self, name: &str, id: &str) -> Result<String> {
        let v: Value = self
            .call("VolumeDriver.Mount", Some(json!({"Name": name, "ID": id})))
            .await?;
        Ok(mountpoint(&v))
    }

    pub(crate) async fn unmount(&self, name: &str, id: &str) -> Result<()> {
        let _: Value = self
            .call(
                "VolumeDriver.Unmount",
                Some(json!({"Name": name, "ID": id})),
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn path(&self, name: &str) -> Result<String> {
        let v: Value = self
            .call("VolumeDriver.Path", Some(json!({"Name": name})))
            .await?;
        Ok(mountpoint(&v))
    }

    /// The volume `name`, if the plugin has it (`Volume: null` says it has not).
    pub(crate) async fn get(&self, name: &str) -> Result<Option<Listed>> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default, rename = "Volume")]
            volume: Option<Listed>,
        }
        let a: Answer = self
            .call("VolumeDriver.Get", Some(json!({"Name": name})))
            .await?;
        Ok(a.volume)
    }

    pub(crate) async fn list(&self) -> Result<Vec<Listed>> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default, rename = "Volumes")]
            volumes: Option<Vec<Listed>>,
        }
        let a: Answer = self.call("VolumeDriver.List", Some(json!({}))).await?;
        Ok(a.volumes.unwrap_or_default())
    }

    /// The scope of the plugin's volumes: `local` or `global` (`VolumeDriver.Capabilities`,
    /// asked once; `local` when the plugin does not say, as dockerd).
    pub(crate) async fn scope(&self) -> String {
        if let Some(scope) = self.scope.get() {
            return scope.clone();
        }
        #[derive(Deserialize, Default)]
        struct Capabilities {
            #[serde(default, rename = "Scope")]
            scope: String,
        }
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default, rename = "Capabilities")]
            capabilities: Capabilities,
        }
        let scope = match self
            .call::<Answer>("VolumeDriver.Capabilities", Some(json!({})))
            .await
        {
            Ok(a) => match a.capabilities.scope.to_lowercase().as_str() {
                "global" => "global",
                _ => "local",
            },
            Err(e) => {
                tracing::debug!(plugin = %self.name, error = %e, "no capabilities: local scope");
                return "local".to_string();
            }
        };
        self.scope.get_or_init(|| scope.to_string()).clone()
    }
}

fn mountpoint(v: &Value) -> String {
    v.get("Mountpoint")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// An error with its causes (reqwest's own message says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The plugins activated so far, each kept once activated (as dockerd keeps them).
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    dirs: Dirs,
    active: Arc<Mutex<BTreeMap<String, Arc<Plugin>>>>,
}

impl Registry {
    pub(crate) fn new(dir: Option<&Path>) -> Registry {
        Registry {
            dirs: Dirs::new(dir),
            active: Arc::default(),
        }
    }

    pub(crate) fn dirs(&self) -> &Dirs {
        &self.dirs
    }

    /// Whether plugin `name` can be found (without activating it).
    pub(crate) fn exists(&self, name: &str) -> bool {
        self.cached(name).is_some() || matches!(self.dirs.find(name), Ok(Some(_)) | Err(_))
    }

    fn cached(&self, name: &str) -> Option<Arc<Plugin>> {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Plugin `name`, activated, if it implements `what`.
    pub(crate) async fn get(&self, name: &str, what: &str) -> Result<Arc<Plugin>> {
        self.load(name, what, true).await
    }

    /// [`Registry::get`] for a plugin a scan found: one that refuses connections is given up
    /// at once (as dockerd's `GetAll`), so that a stale socket does not hold up a listing.
    pub(crate) async fn get_found(&self, name: &str, what: &str) -> Result<Arc<Plugin>> {
        self.load(name, what, false).await
    }

    async fn load(&self, name: &str, what: &str, retry: bool) -> Result<Arc<Plugin>> {
        let plugin = match self.cached(name) {
            Some(p) => p,
            None => {
                let addr = self
                    .dirs
                    .find(name)?
                    .ok_or_else(|| PluginError::NotFound(name.to_string()))?;
                let plugin = Arc::new(Plugin::activate(name, &addr, retry).await?);
                self.active
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(name.to_string())
                    .or_insert(plugin)
                    .clone()
            }
        };
        if plugin.implements(what) {
            Ok(plugin)
        } else {
            Err(PluginError::NotImplements)
        }
    }

    /// The names of the activated plugins that implement `what`.
    pub(crate) fn active(&self, what: &str) -> Vec<String> {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|p| p.implements(what))
            .map(|p| p.name.clone())
            .collect()
    }
}

/// Runs the future `make` gives to completion from synchronous code: on a thread and a
/// runtime of its own, so that it works (and never panics) whichever thread calls it.
pub(crate) fn wait<F, Fut>(make: F) -> Result<Fut::Output>
where
    F: FnOnce() -> Fut + Send,
    Fut: std::future::Future,
    Fut::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| PluginError::Thread(e.to_string()))?;
            Ok(runtime.block_on(make()))
        })
        .join()
        .unwrap_or_else(|_| Err(PluginError::Thread("the call panicked".to_string())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_as_dockerd_looks_them_up() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs::new(Some(dir.path()));
        assert_eq!(dirs.find("nope").unwrap(), None);
        assert_eq!(dirs.find("../x").unwrap(), None);
        // A socket in a directory of its own.
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let sock = dir.path().join("sub/sub.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert_eq!(dirs.find("sub").unwrap(), Some(Address::unix(sock)));
        // Spec files: an address, or JSON.
        std::fs::write(dir.path().join("tcp.spec"), "tcp://127.0.0.1:9\n").unwrap();
        let a = dirs.find("tcp").unwrap().unwrap();
        assert_eq!((a.socket, a.base.as_str()), (None, "http://127.0.0.1:9"));
        std::fs::write(dir.path().join("u.spec"), "unix:///run/u.sock").unwrap();
        let a = dirs.find("u").unwrap().unwrap();
        assert_eq!(a.socket, Some(PathBuf::from("/run/u.sock")));
        std::fs::write(
            dir.path().join("j.json"),
            r#"{"Name": "j", "Addr": "https://example:443", "TLSConfig": {"InsecureSkipVerify": false}}"#,
        )
        .unwrap();
        let a = dirs.find("j").unwrap().unwrap();
        assert_eq!(a.base, "https://example:443");
        assert!(
            a.tls.insecure_skip_verify,
            "no CA: not verified, as dockerd"
        );
        std::fs::write(dir.path().join("bad.spec"), "localhost:80").unwrap();
        assert_eq!(
            dirs.find("bad").unwrap_err().to_string(),
            format!(
                "{}: Unknown protocol",
                dir.path().join("bad.spec").display()
            )
        );
        assert_eq!(dirs.scan(), ["bad", "j", "sub", "tcp", "u"]);
    }
}
