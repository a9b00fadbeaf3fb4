//! A container's own mounts as OCI config mounts, made at start as dockerd makes them:
//!
//! - binds: `rbind` (`bind` with `NonRecursive`), `ro` when read-only (`rro` with
//!   `ReadOnlyForceRecursive`), and their propagation; a missing source is made for `-v`
//!   and `CreateMountpoint`, refused otherwise. A shared (slave) propagation needs a source on
//!   a shared (shared or slave) mount of the host, and makes the container's root propagation
//!   shared (rslave), as the kernel would otherwise not propagate anything;
//! - volumes: their data directory, or the mount point their plugin gave (an empty one gets
//!   the image's files first, unless `nocopy`), or with a `Subpath` the path inside it, opened beneath the volume
//!   (`openat2(RESOLVE_BENEATH)`, so no symlink leads out) and bound from that descriptor on a
//!   private mount point under the container's run directory, which the runtime binds in: a
//!   path swapped meanwhile cannot redirect the mount. [`release`] unmounts those at exit;
//! - tmpfs mounts (`--tmpfs`, and `Mounts` of type tmpfs), `nosuid,nodev,noexec` and theirs.
//!
//! A `--tmpfs` takes the place of a `Mounts` entry on the same target (dockerd skips it).

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Mount;

use super::{plan, Check, Kind, MountError, Planned};
use crate::container::Container;
use crate::{EngineError, Result};

/// Where the mounts of a container come from and go.
#[derive(Debug, Clone)]
pub(crate) struct Context<'a> {
    /// The volumes directory of the data root.
    pub volumes: &'a Path,
    /// The container's mounted root filesystem (for the copy of the image's files).
    pub rootfs: &'a Path,
    /// Where subpath mounts are made (`<run-dir>/mounts`).
    pub subpaths: &'a Path,
    /// The mount points of the plugin volumes, by name, their plugins gave at this start.
    pub plugin_volumes: &'a HashMap<String, PathBuf>,
}

/// The OCI mounts of a container's own mounts, and the root propagation they need.
#[derive(Debug, Default)]
pub(crate) struct UserMounts {
    pub mounts: Vec<Mount>,
    pub rootfs_propagation: Option<&'static str>,
}

/// The mounts of `c` for its OCI config.
pub(crate) fn user_mounts(c: &Container, cx: &Context<'_>) -> Result<UserMounts> {
    let hc = &c.host_config;
    let planned = plan(hc, &c.anonymous_volumes, Check::Start)?;
    let tmpfs: Vec<String> = hc
        .tmpfs
        .iter()
        .flatten()
        .map(|(d, _)| super::parse::clean(d))
        .collect();
    let mut out = UserMounts::default();
    for (dest, opts) in hc.tmpfs.iter().flatten() {
        out.mounts.push(tmpfs_mount(dest, opts));
    }
    for (index, p) in planned.iter().enumerate() {
        if tmpfs.contains(&p.destination) {
            continue;
        }
        let mount = match p.kind {
            Kind::Tmpfs => tmpfs_mount(&p.destination, &p.tmpfs),
            Kind::Bind => {
                bind_source(p)?;
                match p.propagation.as_deref() {
                    Some("shared" | "rshared") => {
                        ensure_propagation(&p.source, Wanted::Shared)?;
                        out.rootfs_propagation = Some("shared");
                    }
                    Some("slave" | "rslave") => {
                        ensure_propagation(&p.source, Wanted::SharedOrSlave)?;
                        if out.rootfs_propagation.is_none() {
                            out.rootfs_propagation = Some("rslave");
                        }
                    }
                    _ => {}
                }
                bind(Path::new(&p.source), p)
            }
            Kind::Volume => {
                if p.source.is_empty() {
                    return Err(EngineError::Internal(format!(
                        "no volume recorded for the anonymous mount on {}",
                        p.destination
                    )));
                }
                let plugin = cx.plugin_volumes.get(&p.source);
                let data = match plugin {
                    Some(mountpoint) => mountpoint.clone(),
                    None => crate::volumes::source(cx.volumes, &p.source)?,
                };
                let source = match &p.subpath {
                    Some(sub) => {
                        let target = cx.subpaths.join(index.to_string());
                        mount_subpath(&data, sub, &target)?;
                        target
                    }
                    None => {
                        match plugin {
                            Some(_) if p.copy => {
                                crate::volumes::copy_into(&data, cx.rootfs, &p.destination)?;
                            }
                            None if p.copy => crate::volumes::copy_up(
                                cx.volumes,
                                &p.source,
                                cx.rootfs,
                                &p.destination,
                            )?,
                            _ => {}
                        }
                        data
                    }
                };
                bind(&source, p)
            }
        };
        out.mounts.push(mount);
    }
    Ok(out)
}

fn tmpfs_mount(dest: &str, opts: &str) -> Mount {
    let mut options = vec![
        "nosuid".to_string(),
        "nodev".to_string(),
        "noexec".to_string(),
    ];
    options.extend(
        opts.split(',')
            .filter(|o| !o.is_empty())
            .map(str::to_string),
    );
    crate::spec::mount(dest, "tmpfs", Path::new("tmpfs"), options)
}

fn bind(source: &Path, p: &Planned) -> Mount {
    let mut options = vec![if p.non_recursive { "bind" } else { "rbind" }];
    if !p.rw {
        options.push(if p.force_recursive_ro { "rro" } else { "ro" });
    }
    options.push(
        p.propagation
            .as_deref()
            .unwrap_or(super::parse::DEFAULT_PROPAGATION),
    );
    let options = options.into_iter().map(str::to_string).collect();
    crate::spec::mount(&p.destination, "bind", source, options)
}

/// A bind's source: there, or made (`-v`, `CreateMountpoint`), or an error.
fn bind_source(p: &Planned) -> std::result::Result<(), MountError> {
    let source = Path::new(&p.source);
    if source.exists() {
        return Ok(());
    }
    if !p.create_source {
        return Err(MountError::config(
            "bind",
            format!("bind source path does not exist: {}", p.source),
        ));
    }
    std::fs::create_dir_all(source).map_err(|e| {
        MountError::io(
            format!("error while creating mount source path '{}'", p.source),
            e,
        )
    })
}

/// The propagation a bind source's host mount must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Shared,
    SharedOrSlave,
}

/// dockerd's `ensureShared`/`ensureSharedOrSlave`: the host mount holding `source` must
/// propagate, else the bind's propagation would do nothing.
fn ensure_propagation(source: &str, wanted: Wanted) -> std::result::Result<(), MountError> {
    let (mount_point, optional) = source_mount(Path::new(source))?;
    let fields: Vec<&str> = optional.split_whitespace().collect();
    let shared = fields.iter().any(|f| f.starts_with("shared:"));
    let slave = fields.iter().any(|f| f.starts_with("master:"));
    let ok = match wanted {
        Wanted::Shared => shared,
        Wanted::SharedOrSlave => shared || slave,
    };
    if ok {
        return Ok(());
    }
    Err(MountError::Propagation {
        path: source.to_string(),
        mount_point,
        wanted: match wanted {
            Wanted::Shared => "shared",
            Wanted::SharedOrSlave => "shared or slave",
        },
    })
}

/// The mount point of the host mount that holds `path`, and its optional fields
/// (`shared:N`, `master:N`) from `/proc/self/mountinfo`.
fn source_mount(path: &Path) -> std::result::Result<(String, String), MountError> {
    let real = std::fs::canonicalize(path)
        .map_err(|e| MountError::io(format!("resolving {}", path.display()), e))?;
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| MountError::io("reading /proc/self/mountinfo", e))?;
    let mut best: Option<(String, String)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if sep < 6 {
            continue;
        }
        let mount_point = unescape(fields[4]);
        // Later lines are mounts on top of earlier ones: the last match is the visible one.
        let longer = best
            .as_ref()
            .is_none_or(|(b, _)| mount_point.len() >= b.len());
        if real.starts_with(&mount_point) && longer {
            best = Some((mount_point, fields[6..sep].join(" ")));
        }
    }
    best.ok_or_else(|| {
        MountError::io(
            format!("finding the mount of {}", path.display()),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    })
}

/// mountinfo's octal escapes (`\040` for a space), undone as the runtime does.
fn unescape(field: &str) -> String {
    berth_runtime::rootfs::unescape_mountinfo(field)
        .to_string_lossy()
        .into_owned()
}

/// An errno in Go's words: strerror in lower case (`no such file or directory`).
fn errno_text(e: rustix::io::Errno) -> String {
    let text = std::io::Error::from_raw_os_error(e.raw_os_error()).to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// Binds `subpath` of the volume data directory `base` on `target` (made for it), from a
/// descriptor opened beneath `base`.
fn mount_subpath(base: &Path, subpath: &str, target: &Path) -> std::result::Result<(), MountError> {
    use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
    let not_accessible = |path: PathBuf, e: rustix::io::Errno| MountError::NotAccessible {
        path: path.display().to_string(),
        cause: errno_text(e),
    };
    let dir = rustix::fs::open(
        base,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| not_accessible(base.to_path_buf(), e))?;
    let mut tries = 0;
    let fd = loop {
        match rustix::fs::openat2(
            &dir,
            subpath,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => break fd,
            // The kernel's answer to a rename racing the lookup: try again.
            Err(rustix::io::Errno::AGAIN) if tries < 16 => tries += 1,
            Err(rustix::io::Errno::XDEV | rustix::io::Errno::LOOP) => {
                return Err(MountError::Escapes {
                    base: base.display().to_string(),
                    subpath: subpath.to_string(),
                })
            }
            Err(e) => return Err(not_accessible(base.join(subpath), e)),
        }
    };
    let stat =
        rustix::fs::fstat(&fd).map_err(|e| MountError::io(format!("stat of {subpath}"), e))?;
    let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
    unmount_all(target);
    let made = if is_dir {
        std::fs::create_dir_all(target)
    } else {
        std::fs::create_dir_all(target.parent().unwrap_or(target))
            .and_then(|()| std::fs::File::create(target).map(drop))
    };
    made.map_err(|e| MountError::io(format!("creating {}", target.display()), e))?;
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let flags = nix::mount::MsFlags::MS_BIND;
    nix::mount::mount(
        Some(source.as_str()),
        target,
        None::<&str>,
        flags,
        None::<&str>,
    )
    .map_err(|e| MountError::io(format!("mounting the subpath {subpath}"), e))?;
    let private = nix::mount::MsFlags::MS_PRIVATE;
    nix::mount::mount(None::<&str>, target, None::<&str>, private, None::<&str>)
        .map_err(|e| MountError::io(format!("making {} private", target.display()), e))
}

/// Unmounts whatever is mounted on `path` (nothing when it is no mount point).
fn unmount_all(path: &Path) {
    for _ in 0..16 {
        if nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH).is_err() {
            break;
        }
    }
}

/// Unmounts and removes the subpath mount points under `dir` (at exit, before a removal). The
/// entries are removed one by one, never recursively: one still mounted is left alone.
pub(crate) fn release(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        unmount_all(&path);
        let removed = std::fs::remove_dir(&path).or_else(|_| std::fs::remove_file(&path));
        if let Err(e) = removed {
            tracing::warn!(path = %path.display(), error = %e, "removing a subpath mount point");
        }
    }
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_fields_unescape() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/x\"), "/x\\");
    }

    #[test]
    fn errnos_read_as_go_prints_them() {
        assert_eq!(
            errno_text(rustix::io::Errno::NOENT),
            "no such file or directory"
        );
    }

    #[test]
    fn subpaths_stay_beneath_the_volume() {
        if !nix::unistd::Uid::effective().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("data");
        std::fs::create_dir_all(base.join("sub")).unwrap();
        std::fs::write(base.join("sub/f"), "in").unwrap();
        std::os::unix::fs::symlink("/etc", base.join("out")).unwrap();
        std::os::unix::fs::symlink("sub", base.join("in")).unwrap();
        let target = dir.path().join("mnt/0");
        mount_subpath(&base, "in", &target).unwrap();
        assert_eq!(std::fs::read_to_string(target.join("f")).unwrap(), "in");
        let err = mount_subpath(&base, "out", &target)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("path concatenation escapes the base directory"),
            "{err}"
        );
        let err = mount_subpath(&base, "nope", &target)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "cannot access path {}/nope: no such file or directory",
                base.display()
            )
        );
        release(&dir.path().join("mnt"));
        assert!(!dir.path().join("mnt").exists());
        assert!(base.join("sub/f").exists());
    }
}
