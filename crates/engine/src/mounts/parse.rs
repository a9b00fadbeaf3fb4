//! One `HostConfig.Binds` entry or one `HostConfig.Mounts` entry to a [`Planned`] mount, with
//! the checks and the words of moby's Linux mount parser (`volume/mounts/linux_parser.go`):
//! a `Binds` entry is `[SOURCE:]TARGET[:MODE]`, whose source is a host path when absolute and
//! a volume name otherwise; a `Mounts` entry is checked field by field for its type.

use crate::container::spec::{Mount, MountType, Propagation};

use super::{Kind, MountError, Origin, Planned};

/// The propagation modes of Linux.
pub(crate) const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "slave", "rslave", "shared", "rshared",
];
const RW_MODES: &[&str] = &["rw", "ro"];
/// SELinux relabelling: accepted and ignored (Berth has no SELinux labels).
const LABEL_MODES: &[&str] = &["z", "Z"];
/// Docker Desktop's consistency modes: accepted and ignored on Linux, as by dockerd.
const CONSISTENCY_MODES: &[&str] = &["consistent", "cached", "delegated"];
const COPY_MODES: &[&str] = &["nocopy"];
/// The default propagation of binds.
pub(crate) const DEFAULT_PROPAGATION: &str = "rprivate";

/// Whether `mode` is a valid mode of a `Binds` entry: comma-separated, at most one of each
/// kind (read-write, label, propagation, copy, consistency).
pub(crate) fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let kinds = [
        RW_MODES,
        LABEL_MODES,
        PROPAGATIONS,
        COPY_MODES,
        CONSISTENCY_MODES,
    ];
    let mut counts = [0usize; 5];
    for option in mode.split(',') {
        match kinds.iter().position(|k| k.contains(&option)) {
            Some(i) => counts[i] += 1,
            None => return false,
        }
    }
    counts.iter().all(|c| *c <= 1)
}

/// One `Binds` entry (`-v`).
pub(crate) fn bind(raw: &str) -> Result<Planned, MountError> {
    let invalid = || MountError::InvalidSpec(raw.to_string());
    let parts: Vec<&str> = raw.splitn(4, ':').collect();
    if parts[0].is_empty() {
        return Err(invalid());
    }
    let (source, target, mode) = match parts.as_slice() {
        [target] => ("", *target, ""),
        // `/path:ro` is a destination with a mode, which volumes cannot have.
        [_, second] if valid_mode(second) => return Err(invalid()),
        [source, target] => (*source, *target, ""),
        [source, target, mode] => (*source, *target, *mode),
        _ => return Err(invalid()),
    };
    if !valid_mode(mode) {
        return Err(MountError::InvalidMode(mode.to_string()));
    }
    let options: Vec<&str> = mode.split(',').collect();
    let kind = if source.starts_with('/') {
        Kind::Bind
    } else {
        Kind::Volume
    };
    let typ = kind.as_str();
    let wrapped = |e: MountError| MountError::InvalidSpecBecause {
        spec: raw.to_string(),
        source: Box::new(e),
    };
    check_target(typ, target).map_err(wrapped)?;
    let propagation = options
        .iter()
        .find(|o| PROPAGATIONS.contains(o))
        .map(|p| p.to_string());
    let nocopy = options.contains(&"nocopy");
    match kind {
        // A copy mode is a volume option, a propagation a bind option.
        Kind::Bind if nocopy => {
            return Err(wrapped(MountError::config(
                typ,
                "field VolumeOptions must not be specified",
            )))
        }
        Kind::Volume if propagation.is_some() => {
            return Err(wrapped(MountError::config(
                typ,
                "field BindOptions must not be specified",
            )))
        }
        _ => {}
    }
    Ok(Planned {
        kind,
        source: if kind == Kind::Bind {
            clean(source)
        } else {
            source.to_string()
        },
        destination: clean(target),
        rw: !options.contains(&"ro"),
        mode: mode.to_string(),
        propagation: (kind == Kind::Bind)
            .then(|| propagation.unwrap_or_else(|| DEFAULT_PROPAGATION.to_string())),
        copy: !nocopy,
        create_source: true,
        origin: Origin::Binds,
        ..Planned::default()
    })
}

/// One `Mounts` entry (`--mount`). With `source_must_exist`, a bind's missing source is an
/// error unless `CreateMountpoint` is set (dockerd checks it at create).
pub(crate) fn mount(m: &Mount, source_must_exist: bool) -> Result<Planned, MountError> {
    let (kind, typ) = match m.typ {
        Some(MountType::Bind) => (Some(Kind::Bind), "bind"),
        Some(MountType::Volume) => (Some(Kind::Volume), "volume"),
        Some(MountType::Tmpfs) => (Some(Kind::Tmpfs), "tmpfs"),
        Some(other) => (None, other.as_str()),
        None => (None, ""),
    };
    let target = m.target.as_deref().unwrap_or("");
    check_target(typ, target)?;
    let Some(kind) = kind else {
        return Err(MountError::config(typ, "mount type unknown"));
    };
    let source = m.source.as_deref().unwrap_or("");
    let read_only = m.read_only.unwrap_or(false);
    let mut planned = Planned {
        kind,
        destination: clean(target),
        rw: !read_only,
        origin: Origin::Mounts,
        ..Planned::default()
    };
    match kind {
        Kind::Bind => {
            if source.is_empty() {
                return Err(MountError::config(typ, "field Source must not be empty"));
            }
            if m.volume_options.is_some() {
                return Err(MountError::config(
                    typ,
                    "field VolumeOptions must not be specified",
                ));
            }
            check_absolute(typ, source)?;
            let opts = m.bind_options.clone().unwrap_or_default();
            let create = opts.create_mountpoint.unwrap_or(false);
            if source_must_exist {
                match std::fs::metadata(source) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        if !create {
                            return Err(MountError::config(
                                typ,
                                format!("bind source path does not exist: {source}"),
                            ));
                        }
                    }
                    Err(e) => return Err(MountError::config(typ, format!("stat {source}: {e}"))),
                }
            }
            planned.source = clean(source);
            planned.propagation = Some(
                opts.propagation
                    .filter(|p| *p != Propagation::Empty)
                    .map_or(DEFAULT_PROPAGATION.to_string(), |p| p.as_str().to_string()),
            );
            planned.non_recursive = opts.non_recursive.unwrap_or(false);
            planned.force_recursive_ro = opts.read_only_force_recursive.unwrap_or(false);
            planned.create_source = create;
        }
        Kind::Volume => {
            if m.bind_options.is_some() {
                return Err(MountError::config(
                    typ,
                    "field BindOptions must not be specified",
                ));
            }
            let anonymous = source.is_empty();
            let opts = m.volume_options.clone().unwrap_or_default();
            let subpath = opts.subpath.clone().filter(|s| !s.is_empty());
            if let Some(sub) = &subpath {
                if anonymous {
                    return Err(MountError::config(
                        typ,
                        "must not set Subpath when using anonymous volumes",
                    ));
                }
                if !is_local(sub) {
                    return Err(MountError::config(
                        typ,
                        "subpath must be a relative path within the volume",
                    ));
                }
            }
            if read_only && anonymous {
                return Err(MountError::config(
                    typ,
                    "must not set ReadOnly mode when using anonymous volumes",
                ));
            }
            let driver = opts.driver_config.clone().unwrap_or_default();
            planned.source = source.to_string();
            planned.copy = !opts.no_copy.unwrap_or(false);
            planned.subpath = subpath;
            planned.driver = driver.name.unwrap_or_default();
            planned.driver_opts = driver.options.unwrap_or_default();
            planned.labels = opts.labels.unwrap_or_default();
        }
        Kind::Tmpfs => {
            if m.bind_options.is_some() {
                return Err(MountError::config(
                    typ,
                    "field BindOptions must not be specified",
                ));
            }
            if !source.is_empty() {
                return Err(MountError::config(
                    typ,
                    "field Source must not be specified",
                ));
            }
            planned.tmpfs = tmpfs_options(m, read_only).map_err(|e| MountError::config(typ, e))?;
        }
    }
    Ok(planned)
}

/// The checks of a mount's target, in dockerd's order: present, not `/`, absolute.
pub(crate) fn check_target(typ: &str, target: &str) -> Result<(), MountError> {
    if target.is_empty() {
        return Err(MountError::config(typ, "field Target must not be empty"));
    }
    if clean(&target.replace('\\', "/")) == "/" {
        return Err(MountError::config(
            typ,
            "invalid specification: destination can't be '/'",
        ));
    }
    check_absolute(typ, target)
}

fn check_absolute(typ: &str, path: &str) -> Result<(), MountError> {
    let path = path.replace('\\', "/");
    if path.starts_with('/') {
        return Ok(());
    }
    Err(MountError::config(
        typ,
        format!("invalid mount path: '{path}' mount path must be absolute"),
    ))
}

/// The tmpfs options of a `Mounts` entry as mount data: `ro`, `mode=` (octal), `size=` (with
/// the largest of g, m, k that divides it), then the `exec`/`noexec` of `Options`.
fn tmpfs_options(m: &Mount, read_only: bool) -> Result<String, String> {
    let mut out = Vec::new();
    if read_only {
        out.push("ro".to_string());
    }
    let opts = m.tmpfs_options.clone().unwrap_or_default();
    if let Some(mode) = opts.mode.filter(|m| *m != 0) {
        out.push(format!("mode={mode:o}"));
    }
    if let Some(size) = opts.size_bytes.filter(|s| *s != 0) {
        let (value, suffix) = [("g", 1i64 << 30), ("m", 1 << 20), ("k", 1 << 10)]
            .into_iter()
            .find(|(_, d)| size % d == 0)
            .map_or((size, ""), |(s, d)| (size / d, s));
        out.push(format!("size={value}{suffix}"));
    }
    for option in opts.options.iter().flatten() {
        let (name, value) = match option.as_slice() {
            [name] => (name, None),
            [name, value] => (name, Some(value)),
            _ => return Err("invalid option array length".to_string()),
        };
        if name != "exec" && name != "noexec" {
            return Err(format!("invalid option: {name}"));
        }
        out.push(match value {
            Some(v) => format!("{name}={v}"),
            None => name.clone(),
        });
    }
    Ok(out.join(","))
}

/// Go's `path.Clean`: the shortest path with the same meaning (no `.`, `..` resolved
/// lexically, no doubled or trailing slash).
pub(crate) fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `filepath.IsLocal` on Unix: not empty, not absolute, not leaving its directory.
pub(crate) fn is_local(path: &str) -> bool {
    if path.is_empty() || path.starts_with('/') {
        return false;
    }
    let cleaned = clean(path);
    cleaned != ".." && !cleaned.starts_with("../")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::spec::{BindOptions, TmpfsOptions, VolumeOptions};

    #[test]
    fn binds_are_parsed_and_refused_as_moby_does() {
        for ok in [
            "/home",
            "/home:/home",
            "relative:/absolute-path",
            "hostPath:/containerPath:ro",
            "/hostPath:/containerPath:rw",
            "/rw:/ro",
            "/hostPath:/containerPath:rshared",
            "/hostPath:/containerPath:ro,Z,slave",
            "/hostPath:/containerPath:slave,ro,Z",
            "name:/x:nocopy",
            "name:/x:ro,cached",
        ] {
            bind(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let cases = [
            ("", "invalid volume specification: ''"),
            (":", "invalid volume specification: ':'"),
            ("/tmp:::", "invalid volume specification: '/tmp:::'"),
            ("/path:rw", "invalid volume specification: '/path:rw'"),
            ("/path:/path:sw", "invalid mode: sw"),
            ("v:/x:bogusmode", "invalid mode: bogusmode"),
            ("/p:/p:ro,rshared,rslave", "invalid mode: ro,rshared,rslave"),
            (
                "relvol:x",
                "invalid volume specification: 'relvol:x': invalid mount config for type \"volume\": invalid mount path: 'x' mount path must be absolute",
            ),
            (
                "/:../",
                "invalid volume specification: '/:../': invalid mount config for type \"bind\": invalid mount path: '../' mount path must be absolute",
            ),
            (
                "/a:/",
                "invalid volume specification: '/a:/': invalid mount config for type \"bind\": invalid specification: destination can't be '/'",
            ),
            (
                "name:/x:rshared",
                "invalid volume specification: 'name:/x:rshared': invalid mount config for type \"volume\": field BindOptions must not be specified",
            ),
            (
                "/h:/x:nocopy",
                "invalid volume specification: '/h:/x:nocopy': invalid mount config for type \"bind\": field VolumeOptions must not be specified",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(bind(raw).unwrap_err().to_string(), want, "{raw}");
        }
        let p = bind("/h//x/:/c/./d/:ro,rslave").unwrap();
        assert_eq!(
            (p.kind, p.source.as_str(), p.destination.as_str(), p.rw),
            (Kind::Bind, "/h/x", "/c/d", false)
        );
        assert_eq!(p.propagation.as_deref(), Some("rslave"));
        let p = bind("v:/x:nocopy").unwrap();
        assert_eq!((p.kind, p.copy, p.propagation), (Kind::Volume, false, None));
        let p = bind("/data").unwrap();
        assert_eq!((p.kind, p.source.as_str()), (Kind::Volume, ""));
    }

    fn mnt(typ: MountType, source: &str, target: &str) -> Mount {
        Mount {
            typ: Some(typ),
            source: (!source.is_empty()).then(|| source.to_string()),
            target: Some(target.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn mounts_are_checked_per_type() {
        let err = |m: &Mount| mount(m, true).unwrap_err().to_string();
        let missing = "/nonexistent/berth-test-source";
        assert_eq!(
            err(&mnt(MountType::Bind, missing, "/x")),
            format!("invalid mount config for type \"bind\": bind source path does not exist: {missing}")
        );
        let mut m = mnt(MountType::Bind, missing, "/x");
        m.bind_options = Some(BindOptions {
            create_mountpoint: Some(true),
            ..Default::default()
        });
        assert!(mount(&m, true).unwrap().create_source);
        assert_eq!(
            err(&mnt(MountType::Bind, "rel", "/x")),
            "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"
        );
        assert_eq!(
            err(&mnt(MountType::Volume, "v", "")),
            "invalid mount config for type \"volume\": field Target must not be empty"
        );
        assert_eq!(
            err(&mnt(MountType::Image, "img", "/x")),
            "invalid mount config for type \"image\": mount type unknown"
        );
        assert_eq!(
            err(&mnt(MountType::Tmpfs, "src", "/x")),
            "invalid mount config for type \"tmpfs\": field Source must not be specified"
        );
        let mut m = mnt(MountType::Volume, "v", "/x");
        m.volume_options = Some(VolumeOptions {
            subpath: Some("../up".into()),
            ..Default::default()
        });
        assert_eq!(
            err(&m),
            "invalid mount config for type \"volume\": subpath must be a relative path within the volume"
        );
        m.source = None;
        assert_eq!(
            err(&m),
            "invalid mount config for type \"volume\": must not set Subpath when using anonymous volumes"
        );
        let mut m = mnt(MountType::Volume, "", "/x");
        m.read_only = Some(true);
        assert_eq!(
            err(&m),
            "invalid mount config for type \"volume\": must not set ReadOnly mode when using anonymous volumes"
        );
        let mut m = mnt(MountType::Tmpfs, "", "/t/");
        m.tmpfs_options = Some(TmpfsOptions {
            size_bytes: Some(3 << 20),
            mode: Some(0o700),
            options: Some(vec![vec!["exec".into()]]),
        });
        m.read_only = Some(true);
        let p = mount(&m, true).unwrap();
        assert_eq!(
            (p.destination.as_str(), p.tmpfs.as_str(), p.rw),
            ("/t", "ro,mode=700,size=3m,exec", false)
        );
        m.tmpfs_options = Some(TmpfsOptions {
            options: Some(vec![vec!["uid".into(), "0".into()]]),
            ..Default::default()
        });
        assert_eq!(
            err(&m),
            "invalid mount config for type \"tmpfs\": invalid option: uid"
        );
    }

    #[test]
    fn paths_clean_as_go() {
        for (a, b) in [
            ("/a/b/../c/", "/a/c"),
            ("/../x", "/x"),
            ("a/../../b", "../b"),
            ("", "."),
            ("//", "/"),
        ] {
            assert_eq!(clean(a), b, "{a}");
        }
        assert!(is_local("a/b"));
        assert!(is_local("a/../b"));
        assert!(!is_local("a/../../b"));
        assert!(!is_local("/a"));
        assert!(!is_local(""));
        assert!(!is_local(".."));
    }
}
