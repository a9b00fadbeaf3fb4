//! What criu must be told about the parts of a container that lead outside it.
//!
//! Mounts: a bind mount from the host cannot be dumped, only named. Each one (the config's bind
//! mounts, the cgroup hierarchies bound without a cgroup namespace, device nodes, masked files
//! bound to /dev/null) is dumped as `--external mnt[DEST]:KEY` and bound again from its source on
//! restore with `--external mnt[KEY]:SOURCE`, as runc's `addCriuDumpMount` and
//! `addCriuRestoreMount` do (criu ignores names that match no mount).
//!
//! Namespaces: a network or pid namespace the container joined by path is dumped as external and
//! handed back on restore as an inherited descriptor; other namespaces given by path are joined
//! by criu (`--join-ns`).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_cgroups::Manager;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};

use super::criu::Args;
use super::{io_err, CheckpointError};
use crate::rootfs::{cgroupfs, devices, options, paths};
use crate::state::Record;

/// A bind mount from the host: where it is in the container, and what is bound there.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostBind {
    /// The destination inside the container, symlinks resolved (`/etc/hosts`).
    dest: PathBuf,
    /// The host path bound there.
    source: PathBuf,
}

/// The name criu gives /dev/null, bound over each masked file.
const DEV_NULL: &str = "/dev/null";

/// `--external mnt[DEST]:DEST` for every host bind of the container, and
/// `mnt[FILE]:/dev/null` for each masked file.
pub(super) fn add_dump_mounts(
    args: &mut Args,
    spec: &Spec,
    record: &Record,
    cgroup: &Manager,
) -> Result<(), CheckpointError> {
    for bind in host_binds(spec, &record.rootfs, &record.bundle, cgroup)? {
        let dest = bind.dest.display();
        args.opt("--external", format!("mnt[{dest}]:{dest}"));
    }
    for file in masked_files(spec, record.pid) {
        args.opt("--external", format!("mnt[{}]:{DEV_NULL}", file.display()));
    }
    Ok(())
}

/// `--external mnt[DEST]:SOURCE` for every host bind of the container, and /dev/null for the
/// masked files.
pub(super) fn add_restore_mounts(
    args: &mut Args,
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    cgroup: &Manager,
) -> Result<(), CheckpointError> {
    for bind in host_binds(spec, rootfs, bundle, cgroup)? {
        args.opt(
            "--external",
            format!("mnt[{}]:{}", bind.dest.display(), bind.source.display()),
        );
    }
    let masks = spec.linux().as_ref().and_then(|l| l.masked_paths().clone());
    if masks.is_some_and(|m| !m.is_empty()) {
        args.opt("--external", format!("mnt[{DEV_NULL}]:{DEV_NULL}"));
    }
    Ok(())
}

/// Every bind from the host: the config's bind mounts, the cgroup hierarchies, the devices.
fn host_binds(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
    cgroup: &Manager,
) -> Result<Vec<HostBind>, CheckpointError> {
    let mut binds = Vec::new();
    for m in spec.mounts().iter().flatten() {
        if is_bind(m) {
            binds.push(HostBind {
                dest: container_path(rootfs, m.destination())?,
                source: bind_source(m, bundle),
            });
        } else if is_cgroup(m) && !has_cgroupns(spec) {
            binds.extend(cgroup_binds(rootfs, m.destination(), cgroup)?);
        }
    }
    binds.extend(device_binds(spec));
    Ok(binds)
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || options::parse(m.options().as_deref().unwrap_or_default()).is_bind()
}

fn is_cgroup(m: &Mount) -> bool {
    matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2"))
}

/// A bind mount's source, relative to the bundle unless absolute.
fn bind_source(m: &Mount, bundle: &Path) -> PathBuf {
    let source = m.source().clone().unwrap_or_default();
    if source.is_absolute() {
        source
    } else {
        bundle.join(source)
    }
}

fn has_cgroupns(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup))
}

/// Without a cgroup namespace the container's cgroup directories are bound from the host, one per
/// hierarchy (see `rootfs::cgroupfs`); the source of each is the container's cgroup there.
fn cgroup_binds(
    rootfs: &Path,
    dest: &Path,
    cgroup: &Manager,
) -> Result<Vec<HostBind>, CheckpointError> {
    let dest = container_path(rootfs, dest)?;
    let layout = cgroupfs::bind_destinations(&dest).map_err(io_err(
        "reading the cgroup hierarchies in /proc/self/mountinfo",
    ))?;
    let dirs = cgroup.dirs();
    Ok(layout
        .into_iter()
        .filter_map(|(dest, mount_point)| {
            let source = dirs.iter().find(|d| d.starts_with(&mount_point))?;
            Some(HostBind {
                dest,
                source: source.clone(),
            })
        })
        .collect())
}

/// The default devices and the config's: bound from the host in a user namespace (mknod is not
/// allowed there), so named to criu whatever the namespaces, as runc does.
fn device_binds(spec: &Spec) -> Vec<HostBind> {
    let configured = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    let mut paths: Vec<PathBuf> = devices::defaults().into_iter().map(|d| d.0).collect();
    for device in configured {
        if !paths.contains(device.path()) {
            paths.push(device.path().clone());
        }
    }
    paths
        .into_iter()
        .map(|path| HostBind {
            dest: path.clone(),
            source: path,
        })
        .collect()
}

/// The masked paths that are files (bound to /dev/null; masked directories get a tmpfs, which
/// criu dumps itself), as the container sees them through `/proc/PID/root`.
fn masked_files(spec: &Spec, pid: i32) -> Vec<PathBuf> {
    let masks = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default();
    masks
        .into_iter()
        .filter(|path| {
            let seen = Path::new("/proc")
                .join(pid.to_string())
                .join("root")
                .join(path.trim_start_matches('/'));
            std::fs::metadata(seen).is_ok_and(|m| !m.is_dir())
        })
        .map(PathBuf::from)
        .collect()
}

/// `dest` (a path in the container) with its symlinks resolved inside `rootfs`, as an absolute
/// path of the container: the mount point criu sees.
fn container_path(rootfs: &Path, dest: &Path) -> Result<PathBuf, CheckpointError> {
    let host = paths::resolve(rootfs, dest).map_err(|e| CheckpointError::Invalid(e.to_string()))?;
    let inside = host.strip_prefix(rootfs).unwrap_or(&host);
    Ok(Path::new("/").join(inside))
}

/// Before a restore: the mount points of the config's bind mounts exist in the rootfs (a fresh
/// copy of the rootfs may lack them, and criu does not make them), unless they sit on a tmpfs of
/// the container, whose content criu restores.
pub(super) fn make_mount_points(
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
) -> Result<(), CheckpointError> {
    let mounts = spec.mounts().clone().unwrap_or_default();
    let tmpfs: Vec<&Path> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| m.destination().as_path())
        .collect();
    for m in mounts.iter().filter(|m| is_bind(m)) {
        if tmpfs.iter().any(|t| m.destination().starts_with(t)) {
            continue;
        }
        let target = paths::resolve(rootfs, m.destination())
            .map_err(|e| CheckpointError::Invalid(e.to_string()))?;
        make_mount_point(&target, bind_source(m, bundle).is_dir())?;
    }
    Ok(())
}

fn make_mount_point(target: &Path, dir: bool) -> Result<(), CheckpointError> {
    if target.symlink_metadata().is_ok() {
        return Ok(());
    }
    let what = || format!("creating mount point {}", target.display());
    if dir {
        return std::fs::create_dir_all(target).map_err(io_err(what()));
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(what()))?;
    }
    std::fs::File::create(target)
        .map(drop)
        .map_err(io_err(what()))
}

/// `--external net[INODE]:extRootNetNS` (and pid) for a network or pid namespace the container
/// joined by path: criu leaves it out of the images and expects it back on restore.
pub(super) fn add_dump_namespaces(args: &mut Args, spec: &Spec) -> Result<(), CheckpointError> {
    for (typ, path) in joined_namespaces(spec) {
        let Some(name) = external_name(typ) else {
            continue;
        };
        let inode = std::fs::metadata(&path)
            .map_err(io_err(format!("namespace {}", path.display())))?
            .ino();
        args.opt(
            "--external",
            format!("{name}[{inode}]:{}", external_key(name)),
        );
    }
    Ok(())
}

/// The restore's side of [`add_dump_namespaces`]: each external namespace is opened (without
/// close-on-exec, so that criu inherits it) and named with `--inherit-fd`; the other namespaces
/// given by path are joined with `--join-ns`. The returned descriptors must stay open until criu
/// has run.
pub(super) fn add_restore_namespaces(
    args: &mut Args,
    spec: &Spec,
) -> Result<Vec<OwnedFd>, CheckpointError> {
    let mut inherited = Vec::new();
    for (typ, path) in joined_namespaces(spec) {
        if let Some(name) = external_name(typ) {
            let fd = rustix::fs::open(&path, rustix::fs::OFlags::RDONLY, rustix::fs::Mode::empty())
                .map_err(|e| CheckpointError::Io {
                    what: format!("opening namespace {}", path.display()),
                    source: e.into(),
                })?;
            args.opt(
                "--inherit-fd",
                format!("fd[{}]:{}", fd.as_raw_fd(), external_key(name)),
            );
            inherited.push(fd);
        } else {
            args.opt(
                "--join-ns",
                format!("{}:{}", join_name(typ)?, path.display()),
            );
        }
    }
    Ok(inherited)
}

/// The namespaces of the config given by path.
fn joined_namespaces(spec: &Spec) -> Vec<(LinuxNamespaceType, PathBuf)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|ns| Some((ns.typ(), ns.path().clone()?)))
        .collect()
}

/// criu's name of the namespaces it takes as external.
fn external_name(typ: LinuxNamespaceType) -> Option<&'static str> {
    match typ {
        LinuxNamespaceType::Network => Some("net"),
        LinuxNamespaceType::Pid => Some("pid"),
        _ => None,
    }
}

/// The key runc gives an external namespace (`extRootNetNS`), so that images of either restore.
fn external_key(name: &str) -> String {
    match name {
        "net" => "extRootNetNS".into(),
        _ => "extRootPidNS".into(),
    }
}

fn join_name(typ: LinuxNamespaceType) -> Result<&'static str, CheckpointError> {
    match typ {
        LinuxNamespaceType::Ipc => Ok("ipc"),
        LinuxNamespaceType::Uts => Ok("uts"),
        LinuxNamespaceType::Mount => Ok("mnt"),
        LinuxNamespaceType::User => Ok("user"),
        LinuxNamespaceType::Time => Ok("time"),
        other => Err(CheckpointError::Unsupported(format!(
            "criu cannot restore into an existing {other} namespace (linux.namespaces path)"
        ))),
    }
}

/// The rootfs bound (recursively) onto a directory of its own for the length of a restore: criu
/// wants its `--root` to be a mount point whose parent is not mounted over. The directory is
/// outside the state directory, so that removing a failed container's state can never descend
/// into the rootfs. Unmounted (lazily) and removed on drop.
pub(super) struct RootBind {
    path: PathBuf,
}

impl RootBind {
    pub(super) fn mount(rootfs: &Path) -> Result<RootBind, CheckpointError> {
        let dir = std::env::temp_dir().join(format!("berth-criu-root-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let path = match std::fs::canonicalize(&dir) {
            Ok(path) => path,
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                return Err(io_err(format!("resolving {}", dir.display()))(e));
            }
        };
        let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
        if let Err(source) = mount(Some(rootfs), &path, None::<&str>, flags, None::<&str>) {
            let _ = std::fs::remove_dir(&path);
            return Err(CheckpointError::Sys {
                what: format!("binding {} to {}", rootfs.display(), path.display()),
                source,
            });
        }
        Ok(RootBind { path })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RootBind {
    fn drop(&mut self) {
        let _ = umount2(&self.path, MntFlags::MNT_DETACH);
        // remove_dir, never remove_dir_all: were the unmount to fail, the rootfs stays untouched.
        let _ = std::fs::remove_dir(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn binds_are_named_by_their_resolved_destination() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("data")).unwrap();
        std::os::unix::fs::symlink("/data", root.path().join("link")).unwrap();
        let rootfs = std::fs::canonicalize(root.path()).unwrap();
        let m: Mount = serde_json::from_value(serde_json::json!({
            "destination": "/link/x", "type": "none", "source": "src", "options": ["rbind"]
        }))
        .unwrap();
        assert!(is_bind(&m));
        assert_eq!(
            container_path(&rootfs, m.destination()).unwrap(),
            Path::new("/data/x")
        );
        assert_eq!(bind_source(&m, Path::new("/b")), Path::new("/b/src"));
        let proc_mount: Mount = serde_json::from_value(serde_json::json!({
            "destination": "/proc", "type": "proc", "source": "proc"
        }))
        .unwrap();
        assert!(!is_bind(&proc_mount));
    }

    #[test]
    fn default_devices_and_configured_ones() {
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"devices": [
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                {"path": "/dev/null", "type": "c", "major": 1, "minor": 3}
            ]}
        }));
        let dests: Vec<PathBuf> = device_binds(&s).into_iter().map(|b| b.dest).collect();
        assert_eq!(dests.len(), 7, "{dests:?}");
        assert!(dests.contains(&PathBuf::from("/dev/fuse")));
    }

    #[test]
    fn namespaces_by_path() {
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"namespaces": [
                {"type": "pid"},
                {"type": "network", "path": "/proc/self/ns/net"},
                {"type": "uts", "path": "/proc/self/ns/uts"}
            ]}
        }));
        let mut dump = Args::new("dump");
        add_dump_namespaces(&mut dump, &s).unwrap();
        let ino = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        assert_eq!(
            dump.to_strings(),
            ["dump", "--external", &format!("net[{ino}]:extRootNetNS")]
        );
        let mut restore = Args::new("restore");
        let fds = add_restore_namespaces(&mut restore, &s).unwrap();
        assert_eq!(
            restore.to_strings(),
            [
                "restore",
                "--inherit-fd",
                &format!("fd[{}]:extRootNetNS", fds[0].as_raw_fd()),
                "--join-ns",
                "uts:/proc/self/ns/uts"
            ]
        );
        let cgroupns = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"namespaces": [{"type": "cgroup", "path": "/proc/self/ns/cgroup"}]}
        }));
        let err = add_restore_namespaces(&mut Args::new("restore"), &cgroupns).unwrap_err();
        assert!(
            err.to_string().contains("existing cgroup namespace"),
            "{err}"
        );
    }

    #[test]
    fn mount_points_are_made_for_binds_outside_tmpfs() {
        let root = tempfile::tempdir().unwrap();
        let bundle = tempfile::tempdir().unwrap();
        std::fs::create_dir(bundle.path().join("dir")).unwrap();
        std::fs::write(bundle.path().join("file"), "").unwrap();
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "mounts": [
                {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/a/dir", "type": "bind", "source": "dir"},
                {"destination": "/etc/file", "type": "bind", "source": "file"},
                {"destination": "/tmp/skipped", "type": "bind", "source": "dir"}
            ]
        }));
        make_mount_points(&s, root.path(), bundle.path()).unwrap();
        assert!(root.path().join("a/dir").is_dir());
        assert!(root.path().join("etc/file").is_file());
        assert!(!root.path().join("tmp").exists());
    }
}
