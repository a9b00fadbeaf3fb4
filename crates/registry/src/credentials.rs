//! Saved registry credentials, in the `auths` section of a file shaped like docker's
//! `config.json`: `{"auths": {"HOST": {"auth": "base64(user:password)"}}}`, so `berth login` and
//! `docker login` read each other's entries. Other keys of the file are kept as they are.
//!
//! Docker Hub's entry is keyed `https://index.docker.io/v1/`, as docker keys it. Credential
//! helpers (`credsStore`, `credHelpers`) are not run.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

/// The key docker uses for Docker Hub in `auths`.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: invalid config file: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// A user name and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The credentials file, loaded: the whole JSON document, of which `auths` is read and written.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    doc: Map<String, Value>,
}

/// Where the file is: `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn default_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return PathBuf::from(dir).join("config.json");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".docker/config.json")
}

/// The `auths` key of a registry host: docker.io and its aliases share Docker Hub's key.
pub fn key_for(host: &str) -> String {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_string(),
        other => other.to_string(),
    }
}

impl Credentials {
    /// Loads the file at `path`; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Credentials::default()),
            Err(source) => {
                return Err(CredentialsError::Io {
                    op: "read",
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let invalid = |message: String| CredentialsError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        match serde_json::from_slice::<Value>(&bytes).map_err(|e| invalid(e.to_string()))? {
            Value::Object(doc) => Ok(Credentials { doc }),
            _ => Err(invalid("not a JSON object".to_string())),
        }
    }

    /// The credential saved for `host` (a registry host as references name it), if any.
    /// Entries keyed with a scheme (`https://host`) or a path (`host/v1/`) match too, as docker
    /// reads them.
    pub fn get(&self, host: &str) -> Option<Credential> {
        let key = key_for(host);
        let auths = self.doc.get("auths")?.as_object()?;
        let entry = auths.get(&key).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| normalise_key(k) == normalise_key(&key))
                .map(|(_, v)| v)
        })?;
        let encoded = entry.get("auth")?.as_str()?;
        let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
        let (username, password) = decoded.split_once(':')?;
        Some(Credential {
            username: username.to_string(),
            password: password.to_string(),
        })
    }

    /// Records `credential` for `host`.
    pub fn set(&mut self, host: &str, credential: &Credential) {
        let auth = STANDARD.encode(format!("{}:{}", credential.username, credential.password));
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(auths) = auths {
            auths.insert(key_for(host), json!({ "auth": auth }));
        } else {
            self.doc
                .insert("auths".into(), json!({ key_for(host): { "auth": auth } }));
        }
    }

    /// Forgets `host`'s credential; returns whether there was one.
    pub fn remove(&mut self, host: &str) -> bool {
        let key = key_for(host);
        self.doc
            .get_mut("auths")
            .and_then(Value::as_object_mut)
            .is_some_and(|auths| auths.remove(&key).is_some())
    }

    /// Writes the file atomically (temp file, fsync, rename), readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), CredentialsError> {
        let io = |op, source| CredentialsError::Io {
            op,
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
        }
        let bytes = serde_json::to_vec_pretty(&self.doc).map_err(|e| io("encode", e.into()))?;
        let tmp = path.with_extension("json.tmp");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io("create", e))?;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| io("chmod", e))?;
        file.write_all(&bytes).map_err(|e| io("write", e))?;
        file.sync_all().map_err(|e| io("fsync", e))?;
        fs::rename(&tmp, path).map_err(|e| io("rename", e))
    }
}

/// `https://host/v1/` and `host` name the same registry.
fn normalise_key(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_other_keys_and_reads_docker_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(
            &path,
            r#"{"auths": {"https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
                          "http://old.example:5000/v1/": {"auth": "b2xkOnB3"}},
                "psFormat": "{{.ID}}"}"#,
        )
        .unwrap();
        let mut creds = Credentials::load(&path).unwrap();
        assert_eq!(creds.get("docker.io").unwrap().username, "hub");
        assert_eq!(creds.get("old.example:5000").unwrap().password, "pw");
        assert!(creds.get("127.0.0.1:5000").is_none());
        creds.set(
            "127.0.0.1:5000",
            &Credential {
                username: "u".into(),
                password: "p:with:colons".into(),
            },
        );
        creds.save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut again = Credentials::load(&path).unwrap();
        assert_eq!(
            again.get("127.0.0.1:5000").unwrap().password,
            "p:with:colons"
        );
        let raw: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(raw["psFormat"], "{{.ID}}");
        assert_eq!(
            raw["auths"]["127.0.0.1:5000"]["auth"],
            "dTpwOndpdGg6Y29sb25z"
        );
        assert!(again.remove("127.0.0.1:5000"));
        assert!(!again.remove("127.0.0.1:5000"));
        assert!(again.get("127.0.0.1:5000").is_none());
    }

    #[test]
    fn missing_file_is_empty_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        assert!(Credentials::load(&path).unwrap().get("x").is_none());
        fs::write(&path, "[1,2").unwrap();
        let err = Credentials::load(&path).unwrap_err();
        assert!(err.to_string().contains("invalid config file"), "{err}");
    }
}
