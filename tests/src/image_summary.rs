//! A builder-independent summary of an image, read from a `docker save` archive, so that an image
//! built by berthd can be compared with the golden one Docker's builder made from the same
//! Dockerfile (`crates/build/tests/corpus`).
//!
//! [`summarize`] reads either format a save archive comes in: the docker-archive one
//! (`manifest.json`, a config file, one tar per layer) or an OCI image layout (`index.json`,
//! `blobs/sha256/...`, an index or manifest that names the config and layers). When an archive
//! holds both (Docker 25+ writes both) `manifest.json` wins. Only the first image of an archive is
//! read. Layers may be plain, gzip or zstd tars; the compression is found by the magic bytes.
//!
//! What is kept:
//! * the config fields a Dockerfile sets, under Docker's names ([`CONFIG_FIELDS`]). A `null`
//!   field is the same as an absent one, and so is an empty string (Docker's classic builder
//!   writes `"User": ""`, `"WorkingDir": ""`, `"Entrypoint": null` where BuildKit omits them);
//!   an empty list or map is kept, so `"Cmd": []` differs from no `Cmd`;
//! * `author` (set by `MAINTAINER`), `architecture`, `os` and `variant`;
//! * the number of layers (`rootfs.diff_ids`) and of history entries that are not
//!   `empty_layer`;
//! * for each layer, every entry sorted by path: its type, permission and special bits, owner,
//!   size, link target and, for regular files, the sha256 of the content. Paths lose their
//!   leading `./` or `/` and trailing `/`; the layer's root directory (`./`) is left out. An AUFS
//!   whiteout `dir/.wh.name` is the entry `dir/name` of type `whiteout`, an opaque marker
//!   `dir/.wh..wh..opq` is `dir` of type `opaque`; both have mode, owner and size 0 since
//!   builders write different headers for them. Times, xattrs and device numbers are not kept.
//!
//! [`compare`] lists the differences between two summaries as readable lines; [`check`] checks
//! a summary against a hand-written partial [`Expectation`] over the image's final filesystem
//! ([`flatten`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io::{Cursor, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The config fields a summary keeps, in Docker's spelling.
pub const CONFIG_FIELDS: &[&str] = &[
    "Cmd",
    "Entrypoint",
    "Env",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
];

/// Why an archive could not be summarized.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("reading {0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("{0} is missing from the archive")]
    Missing(String),
    #[error("{0} is not valid JSON: {1}")]
    Json(String, #[source] serde_json::Error),
    #[error("invalid archive: {0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, SummaryError>;

/// One entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    /// `file`, `dir`, `symlink`, `hardlink`, `whiteout`, `opaque`, `char`, `block` or `fifo`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Permission and special bits in octal, four digits (`0755`, `1777`).
    pub mode: String,
    pub uid: u64,
    pub gid: u64,
    /// The content's size for a regular file, 0 for anything else.
    pub size: u64,
    /// A symlink's target as written, or a hardlink's target path (normalized like `path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// `sha256:<hex>` of a regular file's content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} {} {}:{}",
            self.path, self.kind, self.mode, self.uid, self.gid
        )?;
        if self.kind == "file" {
            write!(f, " {} bytes", self.size)?;
        }
        if let Some(link) = &self.link {
            write!(f, " -> {link}")?;
        }
        write!(f, ")")
    }
}

/// A builder-independent description of an image; see the module doc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The kept fields of the config's `config`, absent ones left out.
    pub config: Map<String, Value>,
    /// The image's `author` (`MAINTAINER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// `rootfs.diff_ids`' length.
    pub layers: usize,
    /// History entries without `empty_layer: true`.
    pub non_empty_history: usize,
    /// Each layer's entries, sorted by path; `layer_files.len() == layers` for a sane image.
    pub layer_files: Vec<Vec<Entry>>,
}

/// The golden record of one corpus case (`golden.json`): either the image's summary or the
/// error the build ended with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Golden {
    /// Who made it: `dockerd 20.10.24 classic`.
    pub builder: String,
    /// How it was made when not by running `builder` (a hand-written expectation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The build's error output (for a case that must fail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Summary>,
    /// What is certain of the image when no builder at hand could make it (BuildKit-only
    /// syntax): checked with [`check`] instead of [`compare`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expectation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// A partial, hand-written description of an image: only what it names is checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Expectation {
    /// Config fields that must have these values (`null`: must be absent).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map<String, Value>,
    /// Entries of the final filesystem (all layers applied), with the properties to check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ExpectedFile>,
    /// Paths that must not be in the final filesystem.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent: Vec<String>,
}

/// One entry of an [`Expectation`]; `None` fields are not checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExpectedFile {
    pub path: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u64>,
    /// A regular file's whole content, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// Reads the `docker save` archive at `save_tar` and summarizes its first image.
pub fn summarize(save_tar: &Path) -> Result<Summary> {
    let file = fs::File::open(save_tar)
        .map_err(|e| SummaryError::Io(save_tar.display().to_string(), e))?;
    let files = read_archive(file)?;
    summarize_files(&files)
}

/// Like [`summarize`], for an archive already in memory.
pub fn summarize_bytes(archive: &[u8]) -> Result<Summary> {
    let files = read_archive(Cursor::new(archive))?;
    summarize_files(&files)
}

/// The regular files of the outer archive, by normalized path.
fn read_archive(reader: impl Read) -> Result<HashMap<String, Vec<u8>>> {
    let mut archive = tar::Archive::new(reader);
    let mut files = HashMap::new();
    let entries = archive
        .entries()
        .map_err(|e| SummaryError::Io("the archive".into(), e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| SummaryError::Io("the archive".into(), e))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| SummaryError::Io("an archive entry's path".into(), e))?;
        let path = normalize(&path.to_string_lossy());
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| SummaryError::Io(path.clone(), e))?;
        files.insert(path, data);
    }
    Ok(files)
}

fn get<'a>(files: &'a HashMap<String, Vec<u8>>, path: &str) -> Result<&'a [u8]> {
    files
        .get(&normalize(path))
        .map(Vec::as_slice)
        .ok_or_else(|| SummaryError::Missing(path.to_string()))
}

fn json(files: &HashMap<String, Vec<u8>>, path: &str) -> Result<Value> {
    serde_json::from_slice(get(files, path)?).map_err(|e| SummaryError::Json(path.to_string(), e))
}

/// `sha256:abc` → `blobs/sha256/abc`.
fn blob_path(digest: &str) -> Result<String> {
    let (algo, hex) = digest
        .split_once(':')
        .ok_or_else(|| SummaryError::Invalid(format!("bad digest {digest:?}")))?;
    Ok(format!("blobs/{algo}/{hex}"))
}

fn digest_of(descriptor: &Value) -> Result<&str> {
    descriptor["digest"]
        .as_str()
        .ok_or_else(|| SummaryError::Invalid(format!("descriptor without digest: {descriptor}")))
}

/// The config and the layers' paths of the archive's first image.
fn locate(files: &HashMap<String, Vec<u8>>) -> Result<(String, Vec<String>)> {
    if files.contains_key("manifest.json") {
        let manifest = json(files, "manifest.json")?;
        let first = manifest
            .get(0)
            .ok_or_else(|| SummaryError::Invalid("manifest.json lists no image".into()))?;
        let config = first["Config"]
            .as_str()
            .ok_or_else(|| SummaryError::Invalid("manifest.json: no Config".into()))?;
        let layers = first["Layers"]
            .as_array()
            .map(|l| l.iter().filter_map(Value::as_str).map(normalize).collect())
            .unwrap_or_default();
        return Ok((normalize(config), layers));
    }
    if !files.contains_key("index.json") {
        return Err(SummaryError::Invalid(
            "neither manifest.json nor index.json: not a docker save archive".into(),
        ));
    }
    // Follow indexes (at most a few levels) down to the first image manifest.
    let mut doc = json(files, "index.json")?;
    for _ in 0..8 {
        if let Some(manifests) = doc.get("manifests").and_then(Value::as_array) {
            let first = manifests
                .first()
                .ok_or_else(|| SummaryError::Invalid("an index lists no manifest".into()))?;
            let path = blob_path(digest_of(first)?)?;
            doc = json(files, &path)?;
            continue;
        }
        let config = blob_path(digest_of(&doc["config"])?)?;
        let mut layers = Vec::new();
        for layer in doc["layers"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            layers.push(blob_path(digest_of(layer)?)?);
        }
        return Ok((config, layers));
    }
    Err(SummaryError::Invalid("indexes nested too deep".into()))
}

fn summarize_files(files: &HashMap<String, Vec<u8>>) -> Result<Summary> {
    let (config_path, layer_paths) = locate(files)?;
    let image = json(files, &config_path)?;
    let mut config = Map::new();
    if let Some(c) = image.get("config").and_then(Value::as_object) {
        for field in CONFIG_FIELDS {
            match c.get(*field) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s.is_empty() => {}
                Some(v) => {
                    config.insert(field.to_string(), v.clone());
                }
            }
        }
    }
    let text = |key: &str| {
        image
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let layers = image["rootfs"]["diff_ids"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    let non_empty_history = image["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter(|e| !e["empty_layer"].as_bool().unwrap_or(false))
                .count()
        })
        .unwrap_or(0);
    let mut layer_files = Vec::new();
    for path in &layer_paths {
        let data = get(files, path)?;
        layer_files.push(layer_entries(data).map_err(|e| SummaryError::Io(path.clone(), e))?);
    }
    Ok(Summary {
        config,
        author: text("author"),
        architecture: text("architecture"),
        os: text("os"),
        variant: text("variant"),
        layers,
        non_empty_history,
        layer_files,
    })
}

/// `./a/b/`, `/a/b` → `a/b`; `./` → ``.
fn normalize(path: &str) -> String {
    let mut p = path;
    loop {
        if let Some(rest) = p.strip_prefix("./") {
            p = rest;
        } else if let Some(rest) = p.strip_prefix('/') {
            p = rest;
        } else {
            break;
        }
    }
    let p = p.trim_end_matches('/');
    if p == "." {
        String::new()
    } else {
        p.to_string()
    }
}

/// Decompresses a layer as its magic bytes say.
fn decompress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out)?;
        Ok(out)
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::decode_all(data)
    } else {
        Ok(data.to_vec())
    }
}

/// The sorted entries of one layer tar (plain or compressed).
pub fn layer_entries(data: &[u8]) -> std::io::Result<Vec<Entry>> {
    let plain = decompress(data)?;
    let mut archive = tar::Archive::new(plain.as_slice());
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.to_string_lossy().into_owned();
        let path = normalize(&raw);
        if path.is_empty() {
            continue;
        }
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (Some(d), n),
            None => (None, path.as_str()),
        };
        let join = |n: &str| match dir {
            Some(d) => format!("{d}/{n}"),
            None => n.to_string(),
        };
        if name == ".wh..wh..opq" {
            out.push(marker(dir.unwrap_or("").to_string(), "opaque"));
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            out.push(marker(join(hidden), "whiteout"));
            continue;
        }
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => "file",
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Link => "hardlink",
            tar::EntryType::Char => "char",
            tar::EntryType::Block => "block",
            tar::EntryType::Fifo => "fifo",
            other => {
                return Err(std::io::Error::other(format!(
                    "{raw}: unexpected tar entry type {other:?}"
                )))
            }
        };
        let mode = format!("{:04o}", header.mode()? & 0o7777);
        let uid = header.uid()?;
        let gid = header.gid()?;
        let link = match kind {
            "symlink" => entry.link_name()?.map(|l| l.to_string_lossy().into_owned()),
            "hardlink" => entry.link_name()?.map(|l| normalize(&l.to_string_lossy())),
            _ => None,
        };
        let (size, sha256) = if kind == "file" {
            let mut hasher = Sha256::new();
            let size = std::io::copy(&mut entry, &mut hasher)?;
            (size, Some(format!("sha256:{}", hex(&hasher.finalize()))))
        } else {
            (0, None)
        };
        out.push(Entry {
            path,
            kind: kind.to_string(),
            mode,
            uid,
            gid,
            size,
            link,
            sha256,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path).then_with(|| a.kind.cmp(&b.kind)));
    Ok(out)
}

fn marker(path: String, kind: &str) -> Entry {
    Entry {
        path,
        kind: kind.to_string(),
        mode: "0000".into(),
        uid: 0,
        gid: 0,
        size: 0,
        link: None,
        sha256: None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The image's final filesystem: the layers applied in order, whiteouts and opaque markers
/// removing what lower layers had.
pub fn flatten(summary: &Summary) -> BTreeMap<String, Entry> {
    let mut fs: BTreeMap<String, Entry> = BTreeMap::new();
    let remove_below = |fs: &mut BTreeMap<String, Entry>, dir: &str| {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        fs.retain(|p, _| !p.starts_with(&prefix) || p.as_str() == dir);
    };
    for layer in &summary.layer_files {
        // Markers first: an opaque directory's own new entries are in the same layer.
        for e in layer
            .iter()
            .filter(|e| e.kind == "opaque" || e.kind == "whiteout")
        {
            remove_below(&mut fs, &e.path);
            if e.kind == "whiteout" {
                fs.remove(&e.path);
            }
        }
        for e in layer
            .iter()
            .filter(|e| e.kind != "opaque" && e.kind != "whiteout")
        {
            if e.kind != "dir" {
                remove_below(&mut fs, &e.path);
            }
            fs.insert(e.path.clone(), e.clone());
        }
    }
    fs
}

/// What of `expect` `actual` does not satisfy, one readable line each.
pub fn check(expect: &Expectation, actual: &Summary) -> Vec<String> {
    let mut diffs = Vec::new();
    for (field, want) in &expect.config {
        let got = actual.config.get(field);
        let ok = match want {
            Value::Null => got.is_none(),
            w => got == Some(w),
        };
        if !ok {
            diffs.push(format!(
                "config.{field}: expected {}, got {}",
                if want.is_null() {
                    "(absent)".to_string()
                } else {
                    want.to_string()
                },
                show(got)
            ));
        }
    }
    let fs = flatten(actual);
    for want in &expect.files {
        let path = normalize(&want.path);
        let Some(got) = fs.get(&path) else {
            diffs.push(format!("{path}: missing"));
            continue;
        };
        let mut parts = Vec::new();
        if want.kind.as_ref().is_some_and(|k| *k != got.kind) {
            parts.push(format!("type {:?} != {}", want.kind, got.kind));
        }
        if want.mode.as_ref().is_some_and(|m| *m != got.mode) {
            parts.push(format!("mode {:?} != {}", want.mode, got.mode));
        }
        if want.uid.is_some_and(|u| u != got.uid) || want.gid.is_some_and(|g| g != got.gid) {
            parts.push(format!(
                "owner {:?}:{:?} != {}:{}",
                want.uid, want.gid, got.uid, got.gid
            ));
        }
        if let Some(content) = &want.content {
            let sha = format!("sha256:{}", hex(&Sha256::digest(content.as_bytes())));
            if got.sha256.as_deref() != Some(sha.as_str()) {
                parts.push(format!("content is not {content:?}"));
            }
        }
        if want.link.is_some() && want.link != got.link {
            parts.push(format!("link {:?} != {:?}", want.link, got.link));
        }
        if !parts.is_empty() {
            diffs.push(format!("{path}: {}", parts.join(", ")));
        }
    }
    for path in &expect.absent {
        let path = normalize(path);
        if let Some(got) = fs.get(&path) {
            diffs.push(format!("{path}: expected absent, got {got}"));
        }
    }
    diffs
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "(absent)".to_string(), Value::to_string)
}

/// The differences between `expected` and `actual`, one readable line each; empty when they
/// match.
pub fn compare(expected: &Summary, actual: &Summary) -> Vec<String> {
    let mut diffs = Vec::new();
    for field in CONFIG_FIELDS {
        let (e, a) = (expected.config.get(*field), actual.config.get(*field));
        if e != a {
            diffs.push(format!(
                "config.{field}: expected {}, got {}",
                show(e),
                show(a)
            ));
        }
    }
    let mut other: Vec<&String> = actual
        .config
        .keys()
        .chain(expected.config.keys())
        .filter(|k| !CONFIG_FIELDS.contains(&k.as_str()))
        .collect();
    other.sort();
    other.dedup();
    for field in other {
        let (e, a) = (expected.config.get(field), actual.config.get(field));
        if e != a {
            diffs.push(format!(
                "config.{field}: expected {}, got {}",
                show(e),
                show(a)
            ));
        }
    }
    for (name, e, a) in [
        ("author", &expected.author, &actual.author),
        ("architecture", &expected.architecture, &actual.architecture),
        ("os", &expected.os, &actual.os),
        ("variant", &expected.variant, &actual.variant),
    ] {
        if e != a {
            diffs.push(format!("{name}: expected {e:?}, got {a:?}"));
        }
    }
    if expected.layers != actual.layers {
        diffs.push(format!(
            "layers: expected {}, got {}",
            expected.layers, actual.layers
        ));
    }
    if expected.non_empty_history != actual.non_empty_history {
        diffs.push(format!(
            "non-empty history entries: expected {}, got {}",
            expected.non_empty_history, actual.non_empty_history
        ));
    }
    let (ne, na) = (expected.layer_files.len(), actual.layer_files.len());
    if ne != na {
        diffs.push(format!("layer tars: expected {ne}, got {na}"));
    }
    for (i, (e, a)) in expected
        .layer_files
        .iter()
        .zip(&actual.layer_files)
        .enumerate()
    {
        compare_layer(i, e, a, &mut diffs);
    }
    diffs
}

fn compare_layer(index: usize, expected: &[Entry], actual: &[Entry], diffs: &mut Vec<String>) {
    let key = |e: &Entry| (e.path.clone(), e.kind.clone());
    let by_key = |list: &[Entry]| -> BTreeMap<(String, String), Entry> {
        list.iter().map(|e| (key(e), e.clone())).collect()
    };
    let (e, a) = (by_key(expected), by_key(actual));
    for (k, want) in &e {
        match a.get(k) {
            None => {
                // Same path with another type reads better as one line.
                if let Some(got) = a.values().find(|g| g.path == want.path) {
                    diffs.push(format!("layer {index}: expected {want}, got {got}"));
                } else {
                    diffs.push(format!("layer {index}: missing {want}"));
                }
            }
            Some(got) if got != want => {
                let mut parts = Vec::new();
                if got.mode != want.mode {
                    parts.push(format!("mode {} != {}", want.mode, got.mode));
                }
                if (got.uid, got.gid) != (want.uid, want.gid) {
                    parts.push(format!(
                        "owner {}:{} != {}:{}",
                        want.uid, want.gid, got.uid, got.gid
                    ));
                }
                if got.size != want.size {
                    parts.push(format!("size {} != {}", want.size, got.size));
                }
                if got.link != want.link {
                    parts.push(format!("link {:?} != {:?}", want.link, got.link));
                }
                if got.sha256 != want.sha256 {
                    parts.push("content differs".to_string());
                }
                diffs.push(format!(
                    "layer {index}: {} (expected != got): {}",
                    want.path,
                    parts.join(", ")
                ));
            }
            Some(_) => {}
        }
    }
    for (k, got) in &a {
        if !e.contains_key(k) && !e.values().any(|w| w.path == got.path) {
            diffs.push(format!("layer {index}: unexpected {got}"));
        }
    }
}

#[cfg(test)]
mod tests;
