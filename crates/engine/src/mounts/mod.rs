//! A container's own mounts: `HostConfig.Binds` (`-v`), `HostConfig.Mounts` (`--mount`),
//! `HostConfig.Tmpfs` (`--tmpfs`) and its anonymous volumes, as dockerd handles them.
//!
//! - At create ([`Engine::create_mounts`]), every `Binds` and `Mounts` entry is parsed and
//!   checked ([`parse`]), and conflicts on one target refused (`Duplicate mount point`), before
//!   anything is made; then the named volumes they use are made (with a `Mounts` entry's labels
//!   and driver options), and the anonymous ones: a `volume` mount without a source, and each
//!   path of `Config.Volumes` and the image's `VOLUME`s no other mount covers.
//! - At start ([`oci`]), the same list ([`plan`]) becomes the OCI config's mounts.
//! - Inspect's and ps's `Mounts` are [`mount_points`].

pub(crate) mod oci;
pub(crate) mod parse;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use berth_api::models::{MountPoint, VolumeCreateRequest};

use crate::container::spec::{ContainerSpec, HostSpec};
use serde_json::Value;

use crate::container::Container;
use crate::{Engine, EngineError, Result};

/// What is wrong with a mount, in dockerd's words.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A `Binds` entry that does not split into source, target and mode.
    #[error("invalid volume specification: '{0}'")]
    InvalidSpec(String),
    /// A `Binds` entry whose parts are wrong.
    #[error("invalid volume specification: '{spec}': {source}")]
    InvalidSpecBecause {
        spec: String,
        source: Box<MountError>,
    },
    #[error("invalid mode: {0}")]
    InvalidMode(String),
    /// A mount of type `typ` that is wrong (the reason in moby's words).
    #[error("invalid mount config for type \"{typ}\": {reason}")]
    Config { typ: String, reason: String },
    /// Two mounts on one target.
    #[error("Duplicate mount point: {0}")]
    Duplicate(String),
    /// A volume's subpath that is not there.
    #[error("cannot access path {path}: {cause}")]
    NotAccessible { path: String, cause: String },
    /// A volume's subpath that leads out of the volume (through a symlink).
    #[error("path concatenation escapes the base directory, base: {base}, subpath: {subpath}")]
    Escapes { base: String, subpath: String },
    /// A bind with shared or slave propagation whose source is on a mount without it.
    #[error("path {path} is mounted on {mount_point} but it is not a {wanted} mount")]
    Propagation {
        path: String,
        mount_point: String,
        wanted: &'static str,
    },
    /// A system call that failed while making a mount.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl MountError {
    pub(crate) fn config(typ: &str, reason: impl Into<String>) -> MountError {
        MountError::Config {
            typ: typ.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: impl Into<std::io::Error>) -> MountError {
        MountError::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}

impl From<MountError> for EngineError {
    fn from(e: MountError) -> EngineError {
        match e {
            MountError::NotAccessible { .. } => EngineError::NotFound(e.to_string()),
            MountError::Io { .. } => EngineError::internal("", e),
            _ => EngineError::InvalidParameter(e.to_string()),
        }
    }
}

/// The three kinds of mount a container can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Kind {
    #[default]
    Bind,
    Volume,
    Tmpfs,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Bind => "bind",
            Kind::Volume => "volume",
            Kind::Tmpfs => "tmpfs",
        }
    }
}

/// Where a mount was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Origin {
    #[default]
    Binds,
    Mounts,
    /// `Config.Volumes` or the image's `VOLUME`.
    Anonymous,
}

/// One mount of a container, from any of its sources.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Planned {
    pub kind: Kind,
    /// A bind's host path (cleaned); a volume's name (empty for an anonymous volume until it
    /// is made); empty for tmpfs.
    pub source: String,
    /// The target in the container, cleaned.
    pub destination: String,
    pub rw: bool,
    /// A `Binds` entry's mode as given.
    pub mode: String,
    /// A bind's propagation (`rprivate` when not given).
    pub propagation: Option<String>,
    /// Whether an empty volume gets the image's files first (not with `nocopy`).
    pub copy: bool,
    /// The path inside the volume that is mounted (`VolumeOptions.Subpath`).
    pub subpath: Option<String>,
    /// `BindOptions.NonRecursive`: a plain bind, without the mounts below the source.
    pub non_recursive: bool,
    /// `BindOptions.ReadOnlyForceRecursive`: read-only mounts below the source too.
    pub force_recursive_ro: bool,
    /// Whether a missing bind source is made at start (`-v`, `CreateMountpoint`).
    pub create_source: bool,
    /// A `Mounts` tmpfs's options (`ro,mode=700,size=1m`).
    pub tmpfs: String,
    pub origin: Origin,
    /// For a volume a `Mounts` entry makes: its driver, labels and driver options.
    pub driver: String,
    pub labels: HashMap<String, String>,
    pub driver_opts: HashMap<String, String>,
}

/// How strictly [`plan`] reads a container's mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// At create: everything, and a `Mounts` bind's source must exist.
    Create,
    /// At start: everything but the sources (made, or refused, when mounting).
    Start,
    /// For views: entries that do not parse (records older than the checks) are left out.
    Lenient,
}

/// The mounts of a container with host config `hc`, in dockerd's order: `Binds`, then
/// `Mounts`, then the anonymous volumes (`NAME:/path`) on the targets nothing else takes; an
/// anonymous volume on a target of a source-less volume entry names that entry's volume.
pub(crate) fn plan(
    hc: &HostSpec,
    anonymous: &[String],
    check: Check,
) -> std::result::Result<Vec<Planned>, MountError> {
    let strict = check != Check::Lenient;
    let tmpfs: HashSet<&str> = hc.tmpfs.iter().flatten().map(|(d, _)| d.as_str()).collect();
    let mut out: Vec<Planned> = Vec::new();
    for raw in hc.binds.iter().flatten() {
        let p = match parse::bind(raw) {
            Ok(p) => p,
            Err(e) if strict => return Err(e),
            Err(_) => continue,
        };
        let taken = out.iter().any(|o| o.destination == p.destination);
        if taken || tmpfs.contains(p.destination.as_str()) {
            if strict {
                return Err(MountError::Duplicate(p.destination));
            }
            continue;
        }
        out.push(p);
    }
    for m in hc.mounts.iter().flatten() {
        let p = match parse::mount(m, check == Check::Create) {
            Ok(p) => p,
            Err(e) if strict => return Err(e),
            Err(_) => continue,
        };
        if out.iter().any(|o| o.destination == p.destination) {
            if strict {
                return Err(MountError::Duplicate(m.target.clone().unwrap_or_default()));
            }
            continue;
        }
        out.push(p);
    }
    for entry in anonymous {
        let Some((name, dest)) = entry.split_once(':') else {
            continue;
        };
        match out.iter_mut().find(|p| p.destination == dest) {
            Some(p) if p.kind == Kind::Volume && p.source.is_empty() => p.source = name.to_string(),
            Some(_) => {}
            None => out.push(Planned {
                kind: Kind::Volume,
                source: name.to_string(),
                destination: dest.to_string(),
                rw: true,
                copy: true,
                origin: Origin::Anonymous,
                ..Planned::default()
            }),
        }
    }
    Ok(out)
}

/// The checks of `hc`'s `Mounts` entries alone (dockerd makes them first, before it looks the
/// image up).
pub(crate) fn check_mounts(hc: &HostSpec) -> Result<()> {
    for m in hc.mounts.iter().flatten() {
        parse::mount(m, true)?;
    }
    Ok(())
}

/// Parses every `Binds` and `Mounts` entry of `hc` without looking at the host (a bind's
/// source need not exist): the checks of untrusted mount text alone, which the fuzz targets run.
pub fn check_specs(hc: &HostSpec) -> Result<()> {
    for b in hc.binds.iter().flatten() {
        parse::bind(b)?;
    }
    for m in hc.mounts.iter().flatten() {
        parse::mount(m, false)?;
    }
    Ok(())
}

/// dockerd's errors for `HostConfig.Mounts` entries whose `Type` or `BindOptions.Propagation`
/// Docker does not know (the API's types cannot hold them), checked on the raw create body
/// `body` before it is decoded.
pub fn check_raw_mounts(body: &Value) -> Result<()> {
    let Some(mounts) = body
        .get("HostConfig")
        .and_then(|h| h.get("Mounts"))
        .and_then(Value::as_array)
    else {
        return Ok(());
    };
    for m in mounts {
        let typ = m.get("Type").and_then(Value::as_str).unwrap_or("");
        let known = matches!(
            typ,
            "bind" | "volume" | "tmpfs" | "image" | "npipe" | "cluster"
        );
        let propagation = m
            .get("BindOptions")
            .and_then(|b| b.get("Propagation"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if known && (propagation.is_empty() || parse::PROPAGATIONS.contains(&propagation)) {
            continue;
        }
        let target = m.get("Target").and_then(Value::as_str).unwrap_or("");
        parse::check_target(typ, target)?;
        let err = if !known {
            MountError::config(typ, "mount type unknown")
        } else if typ != "bind" {
            MountError::config(typ, "field BindOptions must not be specified")
        } else if m
            .get("Source")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            MountError::config(typ, "field Source must not be empty")
        } else {
            MountError::config(typ, format!("invalid propagation mode: {propagation}"))
        };
        return Err(err.into());
    }
    Ok(())
}

/// The names of the volumes `c` mounts (named and anonymous).
pub(crate) fn volume_names(c: &Container) -> Vec<String> {
    plan(&c.host_config, &c.anonymous_volumes, Check::Lenient)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.kind == Kind::Volume && !p.source.is_empty())
        .map(|p| p.source)
        .collect()
}

/// Inspect's and ps's `Mounts` of `c` (volumes under `volumes`), filled as dockerd fills them:
/// binds with their source and propagation, volumes with their name, data directory and
/// driver, tmpfs mounts of `Mounts` with their target only; `Mode` is a `-v` entry's mode as
/// given (`z` for a volume without one), `z` for a `--mount` volume, empty otherwise.
/// dockerd lists them in the random order of a Go map; Berth by target.
pub(crate) fn mount_points(c: &Container, volumes: &Path) -> Vec<MountPoint> {
    let mut planned =
        plan(&c.host_config, &c.anonymous_volumes, Check::Lenient).unwrap_or_default();
    planned.sort_by(|a, b| a.destination.cmp(&b.destination));
    planned
        .into_iter()
        .map(|p| {
            let some = |s: String| (!s.is_empty()).then_some(s);
            let (name, source, driver, mode) = match p.kind {
                Kind::Bind => (None, p.source.clone(), None, p.mode.clone()),
                Kind::Tmpfs => (None, String::new(), None, String::new()),
                Kind::Volume => {
                    let mode = match p.origin {
                        Origin::Anonymous => String::new(),
                        _ if p.mode.is_empty() => "z".to_string(),
                        _ => p.mode.clone(),
                    };
                    let (driver, source) = crate::volumes::mount_info(volumes, &p.source);
                    (some(p.source.clone()), source, Some(driver), mode)
                }
            };
            MountPoint {
                typ: Some(p.kind.as_str().to_string()),
                name,
                source: Some(source),
                destination: Some(p.destination),
                driver,
                mode: Some(mode),
                rw: Some(p.rw),
                propagation: Some(p.propagation.unwrap_or_default()),
            }
        })
        .collect()
}

impl Engine {
    /// Checks the binds and mounts of a new container as dockerd does at create (nothing is
    /// made when one is wrong), then makes the volumes they name and the anonymous ones it
    /// needs; returns the anonymous ones as `NAME:/path`.
    pub(crate) fn create_mounts(
        &self,
        config: &ContainerSpec,
        hc: &HostSpec,
        image_config: &Value,
    ) -> Result<Vec<String>> {
        let mut planned = plan(hc, &[], Check::Create)?;
        // `--volume-driver` (`HostConfig.VolumeDriver`) is the driver of the `-v` volumes and
        // the anonymous ones; a `--mount` names its own.
        let default_driver = hc.volume_driver.clone().unwrap_or_default();
        for p in planned.iter_mut() {
            if p.kind == Kind::Volume && p.origin == Origin::Binds && p.driver.is_empty() {
                p.driver = default_driver.clone();
            }
        }
        for p in planned.iter().filter(|p| p.kind == Kind::Volume) {
            // In dockerd's order: the driver is looked up, then checks the name and options
            // (the local driver's; a plugin's are the plugin's).
            self.check_volume_driver(&p.driver)?;
            if !p.source.is_empty() {
                crate::volumes::check_name(&p.source)?;
            }
            if p.driver.is_empty() || p.driver == "local" {
                crate::volumes::check_options(&p.source, &p.driver_opts)?;
            }
        }
        let covered: HashSet<&str> = planned
            .iter()
            .map(|p| p.destination.as_str())
            .chain(hc.tmpfs.iter().flatten().map(|(d, _)| d.as_str()))
            .map(|d| d.trim_end_matches('/'))
            .collect();
        let mut paths: Vec<String> = config
            .volumes
            .iter()
            .flatten()
            .cloned()
            .chain(
                image_config["Volumes"]
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.keys().cloned()),
            )
            .filter(|p| !covered.contains(p.trim_end_matches('/')))
            .collect();
        paths.sort();
        paths.dedup();
        for path in &paths {
            if !path.starts_with('/') || path.contains(':') {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid volume specification: '{path}': invalid mount config for type \"volume\": invalid mount path: '{path}' mount path must be absolute"
                )));
            }
        }
        if !paths.is_empty() {
            self.check_volume_driver(&default_driver)?;
        }
        let mut made: Vec<String> = Vec::new();
        let result = (|| {
            for p in planned.iter().filter(|p| p.kind == Kind::Volume) {
                let view = self.volume_create_now(VolumeCreateRequest {
                    name: (!p.source.is_empty()).then(|| p.source.clone()),
                    driver: Some(p.driver.clone()),
                    driver_opts: Some(p.driver_opts.clone()),
                    labels: Some(p.labels.clone()),
                    ..Default::default()
                })?;
                if p.source.is_empty() {
                    let name = view["Name"].as_str().unwrap_or_default();
                    made.push(format!("{name}:{}", p.destination));
                }
            }
            for path in &paths {
                let view = self.volume_create_now(VolumeCreateRequest {
                    driver: Some(default_driver.clone()),
                    ..Default::default()
                })?;
                let name = view["Name"].as_str().unwrap_or_default();
                made.push(format!("{name}:{}", parse::clean(path)));
            }
            Ok::<(), EngineError>(())
        })();
        if let Err(e) = result {
            for entry in &made {
                if let Some((name, _)) = entry.split_once(':') {
                    let _ = self.remove_volume_now(name);
                }
            }
            return Err(e);
        }
        Ok(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::spec::{Mount, MountType};

    fn hc(binds: &[&str], mounts: Vec<Mount>, tmpfs: &[&str]) -> HostSpec {
        HostSpec {
            binds: Some(binds.iter().map(|b| b.to_string()).collect()),
            mounts: Some(mounts),
            tmpfs: Some(
                tmpfs
                    .iter()
                    .map(|t| (t.to_string(), String::new()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn volume(source: &str, target: &str) -> Mount {
        Mount {
            typ: Some(MountType::Volume),
            source: (!source.is_empty()).then(|| source.to_string()),
            target: Some(target.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn one_target_one_mount_as_dockerd() {
        let dup = |h: HostSpec| plan(&h, &[], Check::Start).unwrap_err().to_string();
        assert_eq!(
            dup(hc(&["a:/x", "b:/x/"], vec![], &[])),
            "Duplicate mount point: /x"
        );
        assert_eq!(
            dup(hc(&["a:/x"], vec![], &["/x"])),
            "Duplicate mount point: /x"
        );
        assert_eq!(
            dup(hc(&["a:/x"], vec![volume("v", "/x/")], &[])),
            "Duplicate mount point: /x/"
        );
        assert_eq!(
            dup(hc(&[], vec![volume("v", "/y"), volume("w", "/y")], &[])),
            "Duplicate mount point: /y"
        );
        // Lenient (views): the first one wins.
        let p = plan(&hc(&["a:/x", "b:/x"], vec![], &[]), &[], Check::Lenient).unwrap();
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn anonymous_volumes_name_source_less_volume_mounts() {
        let h = hc(&["/h:/bind"], vec![volume("", "/m")], &[]);
        let anon = [
            "n1:/m".to_string(),
            "n2:/img".to_string(),
            "n3:/bind".to_string(),
        ];
        let p = plan(&h, &anon, Check::Start).unwrap();
        let got: Vec<(Kind, &str, &str, Origin)> = p
            .iter()
            .map(|p| (p.kind, p.source.as_str(), p.destination.as_str(), p.origin))
            .collect();
        assert_eq!(
            got,
            [
                (Kind::Bind, "/h", "/bind", Origin::Binds),
                (Kind::Volume, "n1", "/m", Origin::Mounts),
                (Kind::Volume, "n2", "/img", Origin::Anonymous),
            ]
        );
    }

    #[test]
    fn raw_mounts_with_unknown_types_get_dockerds_errors() {
        let body = |m: Value| serde_json::json!({"HostConfig": {"Mounts": [m]}});
        let err = |m: Value| check_raw_mounts(&body(m)).unwrap_err().to_string();
        assert_eq!(
            err(serde_json::json!({"Type": "bogus", "Target": "/x"})),
            "invalid mount config for type \"bogus\": mount type unknown"
        );
        assert_eq!(
            err(serde_json::json!({"Type": "bogus"})),
            "invalid mount config for type \"bogus\": field Target must not be empty"
        );
        assert_eq!(
            err(
                serde_json::json!({"Type": "bind", "Source": "/s", "Target": "/x", "BindOptions": {"Propagation": "odd"}})
            ),
            "invalid mount config for type \"bind\": invalid propagation mode: odd"
        );
        check_raw_mounts(&body(serde_json::json!({"Type": "bind", "Source": "/s", "Target": "/x", "BindOptions": {"Propagation": "rshared"}}))).unwrap();
    }
}
