//! Where a registry's requests go: containerd's `hosts.toml` (containerd 1.6/1.7,
//! `remotes/docker/config/hosts.go`) and dockerd's `registry-mirrors`.
//!
//! For a registry host `H` (`host[:port]`, as references name it) the configuration directory
//! `DIR` holds, as containerd's `certs.d`, the first that exists of `DIR/host_port_`,
//! `DIR/host:port` and `DIR/_default`. In it, `hosts.toml` lists the endpoints:
//!
//! ```toml
//! server = "https://registry.example.com"   # tried last; default https://H
//! [host."http://mirror.lan:5000"]           # tried first, in the file's order
//!   capabilities = ["pull", "resolve"]      # default: pull, resolve and push
//!   skip_verify = false
//!   ca = "mirror.crt"                       # or a list; relative to the file's directory
//!   client = [["client.cert", "client.key"]]
//!   override_path = true                    # the URL's path replaces /v2
//!   [host."http://mirror.lan:5000".header]
//!     x-custom = "value"
//! ```
//!
//! A directory without `hosts.toml` (or an empty one) gives the default server with the
//! directory's `*.crt` as CAs and its `*.cert`/`*.key` pairs as client certificates, as
//! containerd's docker-compatible layout. Unknown keys are ignored as containerd ignores them;
//! a file that is not TOML, or a known key of the wrong type, is an error naming the file
//! (containerd logs it and falls back; an error at the pull says what is wrong).

use std::path::{Path, PathBuf};

use reqwest::Url;
use toml::{Table, Value};

/// Docker Hub's registry host, for references on `docker.io`.
pub const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";

#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("registry configuration {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("registry configuration {}: invalid TOML: {message}", path.display())]
    Toml { path: PathBuf, message: String },
    #[error("registry configuration {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("invalid mirror: {0}")]
    Mirror(String),
}

/// What an endpoint may be used for (containerd's host capabilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Fetching manifests by digest and blobs.
    pub pull: bool,
    /// Resolving a tag to a manifest.
    pub resolve: bool,
    pub push: bool,
}

impl Capabilities {
    pub const ALL: Capabilities = Capabilities {
        pull: true,
        resolve: true,
        push: true,
    };

    /// Whether every capability `need` has is here.
    pub fn has(&self, need: Capabilities) -> bool {
        (self.pull || !need.pull) && (self.resolve || !need.resolve) && (self.push || !need.push)
    }
}

/// One place a registry's requests may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`.
    pub host: String,
    /// The API root that replaces `/v2` in request paths (`/v2` unless `override_path`).
    pub path: String,
    pub capabilities: Capabilities,
    /// CA files trusted for this endpoint besides the system's roots.
    pub ca: Vec<PathBuf>,
    /// Client certificates: a PEM with both, or the certificate and its key.
    pub client: Vec<(PathBuf, Option<PathBuf>)>,
    pub skip_verify: Option<bool>,
    /// Headers sent on each request, in the file's order.
    pub header: Vec<(String, Vec<String>)>,
    /// The registry's own default server, which no configuration named: for loopback and
    /// insecure registries plain HTTP is tried when HTTPS fails.
    pub default_server: bool,
}

impl Endpoint {
    fn empty() -> Endpoint {
        Endpoint {
            scheme: String::new(),
            host: String::new(),
            path: String::new(),
            capabilities: Capabilities::ALL,
            ca: Vec::new(),
            client: Vec::new(),
            skip_verify: None,
            header: Vec::new(),
            default_server: false,
        }
    }

    /// `scheme://host`.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    /// Whether requests need a client of their own (TLS settings of this endpoint).
    pub fn has_tls_settings(&self) -> bool {
        !self.ca.is_empty() || !self.client.is_empty() || self.skip_verify.is_some()
    }
}

/// containerd's directory names for `host`: `host_port_` (when it has a port), `host:port`,
/// then `_default`.
fn host_dirs(root: &Path, host: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some((name, port)) = host.rsplit_once(':').filter(|(n, _)| !n.is_empty()) {
        dirs.push(root.join(format!("{name}_{port}_")));
    }
    dirs.push(root.join(host));
    dirs.push(root.join("_default"));
    dirs
}

/// The endpoints of registry `host` (as references name it: `docker.io`, `host[:port]`), in
/// the order they are tried: dockerd's `mirrors` first (for `docker.io` only), then the
/// `hosts.toml` hosts, then the server.
pub fn endpoints(
    root: Option<&Path>,
    host: &str,
    mirrors: &[String],
) -> Result<Vec<Endpoint>, HostsError> {
    let mut list = match root.map(|r| find_dir(r, host)).transpose()?.flatten() {
        Some(dir) => load_dir(&dir)?,
        None => vec![Endpoint::empty()],
    };
    // The last one without a host is the registry's default server.
    if let Some(last) = list.last_mut().filter(|e| e.host.is_empty()) {
        if host == "docker.io" {
            last.host = DOCKER_HUB_REGISTRY.to_string();
        } else {
            last.host = host.to_string();
        }
        last.scheme = "https".to_string();
        last.path = "/v2".to_string();
        last.capabilities = Capabilities::ALL;
        last.default_server = true;
    }
    if host == "docker.io" && !mirrors.is_empty() {
        let mut all = Vec::with_capacity(mirrors.len() + list.len());
        for m in mirrors {
            let url = validate_mirror(m)?;
            let mut e = parse_url(&url, false).map_err(HostsError::Mirror)?;
            e.capabilities = Capabilities {
                pull: true,
                resolve: true,
                push: false,
            };
            all.push(e);
        }
        all.extend(list);
        list = all;
    }
    Ok(list)
}

/// The first of the directories of `host` that exists.
fn find_dir(root: &Path, host: &str) -> Result<Option<PathBuf>, HostsError> {
    for dir in host_dirs(root, host) {
        match std::fs::metadata(&dir) {
            Ok(_) => return Ok(Some(dir)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(HostsError::Read { path: dir, source }),
        }
    }
    Ok(None)
}

/// The endpoints of one host directory: its `hosts.toml`, else its certificate files.
pub fn load_dir(dir: &Path) -> Result<Vec<Endpoint>, HostsError> {
    let file = dir.join("hosts.toml");
    let text = match std::fs::read(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(HostsError::Read { path: file, source }),
    };
    if text.is_empty() {
        return cert_files(dir);
    }
    let text = String::from_utf8(text).map_err(|_| HostsError::Toml {
        path: file.clone(),
        message: "not UTF-8".to_string(),
    })?;
    parse(&text, dir, &file)
}

/// The default server with `dir`'s `*.crt` as CAs and `*.cert` (+ `*.key`) as client pairs.
fn cert_files(dir: &Path) -> Result<Vec<Endpoint>, HostsError> {
    let mut server = Endpoint::empty();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![server]),
        Err(source) => {
            return Err(HostsError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        if name.ends_with(".crt") {
            server.ca.push(dir.join(&name));
        }
        if let Some(stem) = name.strip_suffix(".cert") {
            let key = dir.join(format!("{stem}.key"));
            server
                .client
                .push((dir.join(&name), Some(key).filter(|k| k.exists())));
        }
    }
    Ok(vec![server])
}

/// Parses a `hosts.toml` whose directory is `dir`: the `[host."URL"]` tables in the file's
/// order, then the top level's server (with an empty host when `server` is not set).
pub fn parse(text: &str, dir: &Path, file: &Path) -> Result<Vec<Endpoint>, HostsError> {
    let table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| HostsError::Toml {
            path: file.to_path_buf(),
            message: e.message().to_string(),
        })?;
    let invalid = |message: String| HostsError::Invalid {
        path: file.to_path_buf(),
        message,
    };
    let mut list = Vec::new();
    match table.get("host") {
        None => {}
        Some(Value::Table(hosts)) => {
            for (url, config) in hosts {
                let Value::Table(config) = config else {
                    return Err(invalid(format!("host {url:?}: not a table")));
                };
                list.push(parse_host(url, config, dir).map_err(invalid)?);
            }
        }
        Some(_) => return Err(invalid("`host` is not a table".to_string())),
    }
    let server = match table.get("server") {
        None => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(invalid("`server` is not a string".to_string())),
    };
    list.push(parse_host(server, &table, dir).map_err(invalid)?);
    Ok(list)
}

/// One host's settings (`server` is empty for a top level without `server`).
fn parse_host(server: &str, config: &Table, dir: &Path) -> Result<Endpoint, String> {
    let override_path = match config.get("override_path") {
        None => false,
        Some(Value::Boolean(b)) => *b,
        Some(_) => return Err(format!("{server}: override_path is not a boolean")),
    };
    let mut e = if server.is_empty() {
        Endpoint::empty()
    } else {
        parse_url(server, override_path)?
    };
    if let Some(v) = config.get("skip_verify") {
        e.skip_verify = Some(
            v.as_bool()
                .ok_or_else(|| format!("{server}: skip_verify is not a boolean"))?,
        );
    }
    match config.get("capabilities") {
        None => {}
        Some(Value::Array(caps)) if !caps.is_empty() => {
            e.capabilities = Capabilities::default();
            for c in caps {
                match c.as_str().map(str::to_ascii_lowercase).as_deref() {
                    Some("pull") => e.capabilities.pull = true,
                    Some("resolve") => e.capabilities.resolve = true,
                    Some("push") => e.capabilities.push = true,
                    _ => return Err(format!("{server}: unknown capability {c}")),
                }
            }
        }
        Some(Value::Array(_)) => {}
        Some(_) => return Err(format!("{server}: capabilities is not a list")),
    }
    let abs = |p: &str| {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        }
    };
    match config.get("ca") {
        None => {}
        Some(Value::String(p)) => e.ca.push(abs(p)),
        Some(Value::Array(list)) => {
            for p in list {
                let p = p
                    .as_str()
                    .ok_or_else(|| format!("{server}: unable to cast {p} to string"))?;
                e.ca.push(abs(p));
            }
        }
        Some(v) => return Err(format!("{server}: invalid type {v} for \"ca\"")),
    }
    match config.get("client") {
        None => {}
        Some(Value::String(p)) => e.client.push((abs(p), None)),
        Some(Value::Array(list)) => {
            for item in list {
                match item {
                    Value::String(p) => e.client.push((abs(p), None)),
                    Value::Array(pair) => {
                        let pair: Vec<&str> = pair.iter().filter_map(Value::as_str).collect();
                        let [cert, key] = pair[..] else {
                            return Err(format!("{server}: invalid pair {item} for \"client\""));
                        };
                        let key = Some(key).filter(|k| !k.is_empty()).map(abs);
                        e.client.push((abs(cert), key));
                    }
                    _ => return Err(format!("{server}: invalid type {item} for \"client\"")),
                }
            }
        }
        Some(v) => return Err(format!("{server}: invalid type {v} for \"client\"")),
    }
    match config.get("header") {
        None => {}
        Some(Value::Table(headers)) => {
            for (name, value) in headers {
                let values = match value {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(list) => list
                        .iter()
                        .map(|v| v.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| format!("{server}: invalid type for header {name:?}"))?,
                    _ => {
                        return Err(format!(
                            "{server}: invalid type {value} for header {name:?}"
                        ))
                    }
                };
                e.header.push((name.clone(), values));
            }
        }
        Some(_) => return Err(format!("{server}: header is not a table")),
    }
    Ok(e)
}

/// A host's URL (`https://` added when it does not start with `http`) to its endpoint:
/// the path, cleaned, gets `/v2` added unless it ends with it or `override_path` is set.
fn parse_url(server: &str, override_path: bool) -> Result<Endpoint, String> {
    let with_scheme = if server.starts_with("http") {
        server.to_string()
    } else {
        format!("https://{server}")
    };
    let url =
        Url::parse(&with_scheme).map_err(|e| format!("unable to parse server {server}: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "unable to parse server {server}: scheme {}",
            url.scheme()
        ));
    }
    let name = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("unable to parse server {server}: no host"))?;
    let host = match url.port() {
        Some(port) => format!("{name}:{port}"),
        None => name.to_string(),
    };
    let mut path = clean_path(url.path());
    if !override_path && !path.ends_with("/v2") {
        path.push_str("/v2");
    }
    Ok(Endpoint {
        scheme: url.scheme().to_string(),
        host,
        path,
        ..Endpoint::empty()
    })
}

/// `path.Clean` for a URL path, with `/` as the empty path: no `.`/`..`/empty segments, no
/// trailing slash.
fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.iter().map(|p| format!("/{p}")).collect()
}

/// dockerd's check of a `registry-mirrors` entry; the mirror with one trailing `/`.
pub fn validate_mirror(mirror: &str) -> Result<String, HostsError> {
    let bad = |m: String| Err(HostsError::Mirror(m));
    match mirror.split_once("://") {
        Some((scheme, _)) if !scheme.is_empty() => {}
        _ => {
            return bad(format!(
                "no scheme specified for {mirror:?}: must use either 'https://' or 'http://'"
            ))
        }
    }
    let url = match Url::parse(mirror) {
        Ok(u) => u,
        Err(e) => return bad(format!("{mirror:?} is not a valid URI: {e}")),
    };
    if url.scheme() != "http" && url.scheme() != "https" {
        return bad(format!(
            "unsupported scheme {:?} in {mirror:?}: must use either 'https://' or 'http://'",
            url.scheme()
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return bad(format!("query or fragment at end of the URI {mirror:?}"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        let mut shown = url.clone();
        let _ = shown.set_password(Some("xxxxx"));
        return bad(format!(
            "username/password not allowed in URI {:?}",
            shown.as_str()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return bad(format!("{mirror:?} is not a valid URI: no host"));
    }
    Ok(format!("{}/", mirror.trim_end_matches('/')))
}

#[cfg(test)]
#[path = "hosts_tests.rs"]
mod tests;
