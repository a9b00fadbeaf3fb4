//! The docker CLI's context store, shared with it: `CONFIG/contexts/meta/<sha256 of the
//! name>/meta.json` (`{"Name", "Metadata", "Endpoints": {"docker": {"Host", "SkipTLSVerify"}}}`),
//! the TLS material in `CONFIG/contexts/tls/<sha256 of the name>/docker/{ca,cert,key}.pem`, the
//! current context in `CONFIG/config.json`'s `currentContext`. Unknown keys are kept as found.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use berth_api::client_conn::TlsOptions;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::connection::config_dir;

/// The context that stands for `-H`/`DOCKER_HOST` and the default socket: never stored.
pub const DEFAULT: &str = "default";

/// The endpoint the store keeps for the daemon.
pub const ENDPOINT: &str = "docker";

/// TLS files: name (`ca.pem`...) and content.
pub type TlsFiles = Vec<(String, Vec<u8>)>;

/// The TLS files of an endpoint, in the order docker writes them.
pub const TLS_FILES: [&str; 3] = ["ca.pem", "cert.pem", "key.pem"];

pub struct Store {
    dir: PathBuf,
}

/// One stored context: its meta.json.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub meta: Value,
}

impl Ctx {
    pub fn new(name: &str, description: &str, host: &str, skip_tls_verify: bool) -> Ctx {
        let mut metadata = Map::new();
        if !description.is_empty() {
            metadata.insert("Description".into(), json!(description));
        }
        Ctx {
            meta: json!({
                "Name": name,
                "Metadata": metadata,
                "Endpoints": {ENDPOINT: {"Host": host, "SkipTLSVerify": skip_tls_verify}},
            }),
        }
    }

    pub fn name(&self) -> &str {
        self.meta["Name"].as_str().unwrap_or_default()
    }

    pub fn host(&self) -> &str {
        self.meta["Endpoints"][ENDPOINT]["Host"]
            .as_str()
            .unwrap_or_default()
    }

    pub fn description(&self) -> &str {
        self.meta["Metadata"]["Description"]
            .as_str()
            .unwrap_or_default()
    }

    pub fn skip_tls_verify(&self) -> bool {
        self.meta["Endpoints"][ENDPOINT]["SkipTLSVerify"]
            .as_bool()
            .unwrap_or(false)
    }

    /// TLS as the docker CLI makes it of an endpoint: with TLS material (the CA checked unless
    /// `SkipTLSVerify`, the client pair presented), or `SkipTLSVerify` alone; else none.
    pub fn tls_options(&self, store: &Store) -> Option<TlsOptions> {
        let dir = store.tls_dir(self.name()).join(ENDPOINT);
        let file = |n: &str| Some(dir.join(n)).filter(|p| p.exists());
        let (ca, cert, key) = (file("ca.pem"), file("cert.pem"), file("key.pem"));
        if ca.is_none() && cert.is_none() && !self.skip_tls_verify() {
            return None;
        }
        Some(TlsOptions {
            verify: !self.skip_tls_verify(),
            ca,
            cert,
            key,
        })
    }
}

/// The store's directory name of a context.
pub fn id(name: &str) -> String {
    hex::encode(Sha256::digest(name.as_bytes()))
}

/// Docker's rule for context names.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("context name cannot be empty");
    }
    if name == DEFAULT {
        bail!("\"default\" is a reserved context name");
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c));
    if !first_ok || !rest_ok || name.len() < 2 {
        bail!("context name {name:?} is invalid, names are validated against regexp \"^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$\"");
    }
    Ok(())
}

impl Store {
    pub fn open() -> Store {
        Store { dir: config_dir() }
    }

    pub fn config_file(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    pub fn meta_dir(&self, name: &str) -> PathBuf {
        self.dir.join("contexts/meta").join(id(name))
    }

    pub fn tls_dir(&self, name: &str) -> PathBuf {
        self.dir.join("contexts/tls").join(id(name))
    }

    fn config(&self) -> Value {
        std::fs::read(self.config_file())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}))
    }

    /// config.json's `currentContext`, when set.
    pub fn current(&self) -> Option<String> {
        self.config()["currentContext"]
            .as_str()
            .filter(|c| !c.is_empty())
            .map(str::to_string)
    }

    /// Sets `currentContext` (`default` removes it), keeping the rest of config.json.
    pub fn set_current(&self, name: &str) -> Result<()> {
        let mut config = self.config();
        if let Some(map) = config.as_object_mut() {
            if name == DEFAULT {
                map.remove("currentContext");
            } else {
                map.insert("currentContext".into(), json!(name));
            }
        }
        std::fs::create_dir_all(&self.dir)?;
        let text = serde_json::to_string_pretty(&config)?;
        write_private(&self.config_file(), text.as_bytes())
    }

    pub fn exists(&self, name: &str) -> bool {
        self.meta_dir(name).join("meta.json").is_file()
    }

    pub fn load(&self, name: &str) -> Result<Ctx> {
        let path = self.meta_dir(name).join("meta.json");
        let bytes = std::fs::read(&path).map_err(|e| {
            anyhow::anyhow!(
                "context {name:?}: context not found: open {}: {}",
                path.display(),
                go_error(&e)
            )
        })?;
        let meta: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {}", path.display()))?;
        if !meta.is_object() {
            bail!("{}: not a context", path.display());
        }
        Ok(Ctx { meta })
    }

    /// Every stored context, by name.
    pub fn list(&self) -> Vec<Ctx> {
        let dir = self.dir.join("contexts/meta");
        let mut all: Vec<Ctx> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("meta.json")).ok())
            .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
            .filter(|m| m["Name"].is_string())
            .map(|meta| Ctx { meta })
            .collect();
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all
    }

    /// Writes `ctx` and its TLS files (name, content).
    pub fn save(&self, ctx: &Ctx, tls: &[(String, Vec<u8>)]) -> Result<()> {
        let name = ctx.name().to_string();
        let meta_dir = self.meta_dir(&name);
        std::fs::create_dir_all(&meta_dir)?;
        write_private(
            &meta_dir.join("meta.json"),
            serde_json::to_string(&ctx.meta)?.as_bytes(),
        )?;
        let tls_dir = self.tls_dir(&name);
        let _ = std::fs::remove_dir_all(&tls_dir);
        if !tls.is_empty() {
            let dir = tls_dir.join(ENDPOINT);
            std::fs::create_dir_all(&dir)?;
            for (file, data) in tls {
                write_private(&dir.join(file), data)?;
            }
        }
        Ok(())
    }

    /// The TLS files of `name` (name, content).
    pub fn tls_files(&self, name: &str) -> TlsFiles {
        let dir = self.tls_dir(name).join(ENDPOINT);
        TLS_FILES
            .iter()
            .filter_map(|f| std::fs::read(dir.join(f)).ok().map(|d| (f.to_string(), d)))
            .collect()
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        std::fs::remove_dir_all(self.meta_dir(name))
            .with_context(|| format!("removing context {name:?}"))?;
        let _ = std::fs::remove_dir_all(self.tls_dir(name));
        Ok(())
    }
}

/// Go's text of an OS error (`no such file or directory`).
fn go_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Writes a file readable by its owner only (keys, credentials).
fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_as_docker() {
        // sha256("default")
        assert_eq!(
            id("default"),
            "37a8eec1ce19687d132fe29051dca629d164e2c4958ba141d5f4133a33f0688f"
        );
        assert!(check_name("remote-1").is_ok());
        assert!(check_name("default").is_err());
        assert!(check_name("-x").is_err());
        assert!(check_name("a/b").is_err());
    }
}
