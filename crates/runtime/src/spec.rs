//! Loading and checking a bundle's `config.json`.
//!
//! Parsing goes through `serde_path_to_error` so that a malformed field is reported by its JSON path
//! (`process.user.uid: invalid type ...`), then [`validate`] checks what serde cannot: the things the
//! runtime needs before it forks anything.

use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// Why a bundle's configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid configuration at `{field}`: {message}")]
    Parse {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("config.json: `{field}`: {message}")]
    Invalid { field: String, message: String },
    #[error("rootfs {path} does not exist or is not a directory")]
    MissingRootfs { path: PathBuf },
}

fn invalid(field: &str, message: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Reads `config.json` from `bundle`.
pub fn load(bundle: &Path) -> Result<Spec, SpecError> {
    let path = bundle.join("config.json");
    let file = File::open(&path).map_err(|source| SpecError::Open {
        path: path.clone(),
        source,
    })?;
    let mut de = serde_json::Deserializer::from_reader(BufReader::new(file));
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let field = err.path().to_string();
        SpecError::Parse {
            path,
            field,
            message: err.into_inner().to_string(),
        }
    })
}

/// The rootfs directory of `spec`, resolved against the bundle when relative.
pub fn rootfs(bundle: &Path, spec: &Spec) -> Result<PathBuf, SpecError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "missing"))?;
    let path = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    match std::fs::canonicalize(&path) {
        Ok(p) if p.is_dir() => Ok(p),
        _ => Err(SpecError::MissingRootfs { path }),
    }
}

/// Checks the parts of the configuration that the runtime relies on before it creates anything.
pub fn validate(spec: &Spec) -> Result<(), SpecError> {
    if !spec.version().starts_with("1.") {
        return Err(invalid(
            "ociVersion",
            format!("unsupported version {:?}", spec.version()),
        ));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process", "missing"))?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err(invalid("process.args", "must name a program to run")),
    }
    if !process.cwd().is_absolute() {
        return Err(invalid("process.cwd", "must be an absolute path"));
    }
    for env in process.env().iter().flatten() {
        if !env.contains('=') {
            return Err(invalid(
                "process.env",
                format!("{env:?} is not of the form KEY=VALUE"),
            ));
        }
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| invalid("linux", "missing"))?;
    let mut seen = HashSet::new();
    let mut has_mount_ns = false;
    let mut has_user_ns = false;
    for ns in linux.namespaces().iter().flatten() {
        if !seen.insert(ns.typ()) {
            return Err(invalid(
                "linux.namespaces",
                format!("namespace {} is listed twice", ns.typ()),
            ));
        }
        if let Some(path) = ns.path() {
            if !path.is_absolute() {
                return Err(invalid(
                    "linux.namespaces",
                    format!(
                        "path {} of namespace {} is not absolute",
                        path.display(),
                        ns.typ()
                    ),
                ));
            }
        }
        match ns.typ() {
            LinuxNamespaceType::Mount => has_mount_ns = true,
            LinuxNamespaceType::User => has_user_ns = true,
            _ => {}
        }
    }
    if !has_mount_ns {
        // The runtime's own mount namespace is the host's: nothing may be changed in it but
        // the mounts below the rootfs (runc refuses the paths too).
        if linux.masked_paths().as_ref().is_some_and(|p| !p.is_empty())
            || linux
                .readonly_paths()
                .as_ref()
                .is_some_and(|p| !p.is_empty())
        {
            return Err(invalid(
                "linux.maskedPaths",
                "unable to restrict sys entries without a private MNT namespace",
            ));
        }
        if spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false)
        {
            return Err(invalid(
                "root.readonly",
                "unable to make the root filesystem read-only without a private MNT namespace",
            ));
        }
        if linux
            .rootfs_propagation()
            .as_ref()
            .is_some_and(|p| !p.is_empty())
        {
            return Err(invalid(
                "linux.rootfsPropagation",
                "unable to set the root propagation without a private MNT namespace",
            ));
        }
    }
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        && linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if has_user_ns && !has_maps && !seen_path(linux.namespaces(), LinuxNamespaceType::User) {
        return Err(invalid(
            "linux.uidMappings",
            "a new user namespace needs uidMappings and gidMappings",
        ));
    }
    if !has_user_ns && (linux.uid_mappings().is_some() || linux.gid_mappings().is_some()) {
        let maps_used = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        if maps_used {
            return Err(invalid(
                "linux.uidMappings",
                "id mappings are given but there is no user namespace",
            ));
        }
    }
    for (i, mount) in spec.mounts().iter().flatten().enumerate() {
        if !mount.destination().is_absolute() {
            return Err(invalid(
                &format!("mounts[{i}].destination"),
                format!("{} is not an absolute path", mount.destination().display()),
            ));
        }
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty())
        && !linux
            .namespaces()
            .iter()
            .flatten()
            .any(|ns| ns.typ() == LinuxNamespaceType::Network)
    {
        return Err(invalid(
            "linux.netDevices",
            "moving network devices needs a network namespace",
        ));
    }
    let time_offsets = linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty());
    let new_time = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|ns| ns.typ() == LinuxNamespaceType::Time && ns.path().is_none());
    if time_offsets && !new_time {
        return Err(invalid(
            "linux.timeOffsets",
            "time offsets need a new time namespace",
        ));
    }
    for clock in linux.time_offsets().iter().flat_map(|t| t.keys()) {
        if clock != "monotonic" && clock != "boottime" {
            return Err(invalid(
                "linux.timeOffsets",
                format!("unknown clock {clock:?} (monotonic or boottime)"),
            ));
        }
    }
    if let Some(hooks) = spec.hooks() {
        let stages = [
            ("prestart", hooks.prestart()),
            ("createRuntime", hooks.create_runtime()),
            ("createContainer", hooks.create_container()),
            ("startContainer", hooks.start_container()),
            ("poststart", hooks.poststart()),
            ("poststop", hooks.poststop()),
        ];
        for (stage, list) in stages {
            for (i, hook) in list.iter().flatten().enumerate() {
                if hook.timeout().is_some_and(|t| t <= 0) {
                    return Err(invalid(
                        &format!("hooks.{stage}[{i}].timeout"),
                        "must be greater than zero",
                    ));
                }
            }
        }
    }
    if let Some(hostname) = spec.hostname() {
        if !hostname.is_empty() && !seen.contains(&LinuxNamespaceType::Uts) {
            return Err(invalid(
                "hostname",
                "setting a hostname needs a new uts namespace",
            ));
        }
    }
    Ok(())
}

fn seen_path(
    namespaces: &Option<Vec<oci_spec::runtime::LinuxNamespace>>,
    typ: LinuxNamespaceType,
) -> bool {
    namespaces
        .iter()
        .flatten()
        .any(|ns| ns.typ() == typ && ns.path().is_some())
}

/// The default configuration written by `berth-runtime spec`: runc's defaults, with Berth's name.
pub fn default_spec(rootless: bool) -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(Some("berth".to_string()));
    // As runc: deny every device; the runtime allows the ones it creates.
    if let Some(resources) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.resources_mut().as_mut())
    {
        let mut deny_all = oci_spec::runtime::LinuxDeviceCgroup::default();
        deny_all.set_allow(false);
        deny_all.set_access(Some("rwm".to_string()));
        resources.set_devices(Some(vec![deny_all]));
    }
    if let Some(process) = spec.process_mut() {
        process.set_terminal(Some(true));
    }
    if rootless {
        if let Some(linux) = spec.linux_mut() {
            let uid = nix::unistd::getuid().as_raw();
            let gid = nix::unistd::getgid().as_raw();
            let mut rootless = oci_spec::runtime::Linux::rootless(uid, gid);
            rootless.set_masked_paths(linux.masked_paths().clone());
            rootless.set_readonly_paths(linux.readonly_paths().clone());
            *linux = rootless;
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, json: &str) {
        std::fs::write(dir.join("config.json"), json).unwrap();
    }

    #[test]
    fn parse_error_names_the_field() {
        let dir = tempfile_dir();
        write(
            &dir,
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":"root","gid":0}}}"#,
        );
        let err = load(&dir).unwrap_err().to_string();
        assert!(err.contains("process.user.uid"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn default_spec_is_valid() {
        validate(&default_spec(false)).unwrap();
    }

    #[test]
    fn relative_cwd_is_rejected() {
        let mut spec = default_spec(false);
        spec.process_mut()
            .as_mut()
            .unwrap()
            .set_cwd(PathBuf::from("tmp"));
        let err = validate(&spec).unwrap_err().to_string();
        assert!(err.contains("process.cwd"), "{err}");
    }

    #[test]
    fn duplicate_namespace_is_rejected() {
        let mut spec = default_spec(false);
        let linux = spec.linux_mut().as_mut().unwrap();
        let mut ns = linux.namespaces().clone().unwrap();
        ns.push(ns[0].clone());
        linux.set_namespaces(Some(ns));
        let err = validate(&spec).unwrap_err().to_string();
        assert!(err.contains("listed twice"), "{err}");
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "berth-spec-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
