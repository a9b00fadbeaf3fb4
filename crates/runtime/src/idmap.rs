//! Idmapped mounts (`mounts[].uidMappings` / `gidMappings`, or the `idmap`/`ridmap` options
//! with the container's own mappings): the kernel needs a user namespace that carries the
//! mappings, and CAP_SYS_ADMIN over the filesystem, which the init of a container with a user
//! namespace does not have. So the runtime does it all before the fork, as runc does: a
//! short-lived helper cloned into a new user namespace whose maps it writes gives the namespace;
//! a detached copy of the source (open_tree) is made idmapped with it (mount_setattr); the init
//! only attaches that copy on its destination (move_mount), which its own namespaces allow.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use oci_spec::runtime::{LinuxIdMapping, Mount};

#[derive(Debug, thiserror::Error)]
pub enum IdmapError {
    #[error("mounts[{index}]: uidMappings and gidMappings must be given together")]
    Incomplete { index: usize },
    #[error("mounts[{index}]: the idmap option needs uidMappings and gidMappings, on the mount or in linux (a user namespace)")]
    NoMappings { index: usize },
    #[error("making the user namespace of an idmapped mount: {what}: {source}")]
    Userns {
        what: String,
        source: std::io::Error,
    },
    #[error("mounts[{index}]: idmapped mounts are bind mounts of a source")]
    NoSource { index: usize },
    #[error("mounts[{index}]: making an idmapped copy of {source_path}: {source}")]
    Tree {
        index: usize,
        source_path: String,
        source: std::io::Error,
    },
}

fn userns_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> IdmapError {
    let what = what.into();
    move |source| IdmapError::Userns { what, source }
}

/// One descriptor per mount of `mounts`: the detached, idmapped copy of an idmapped mount's
/// source, ready for move_mount, or None. A mount with the `idmap` or `ridmap` option and no
/// mappings of its own takes the container's (`container`: `linux.uidMappings`,
/// `linux.gidMappings`), as runc does. Relative sources are relative to `bundle`.
pub fn prepare(
    mounts: &[Mount],
    container: (&[LinuxIdMapping], &[LinuxIdMapping]),
    bundle: &Path,
) -> Result<Vec<Option<OwnedFd>>, IdmapError> {
    mounts
        .iter()
        .enumerate()
        .map(|(index, m)| {
            let (uid, gid) = match (m.uid_mappings(), m.gid_mappings()) {
                (None, None) if wants_idmap(m) => match container {
                    ([], _) | (_, []) => return Err(IdmapError::NoMappings { index }),
                    maps => maps,
                },
                (None, None) => return Ok(None),
                (Some(uid), Some(gid)) => (uid.as_slice(), gid.as_slice()),
                _ => return Err(IdmapError::Incomplete { index }),
            };
            let source = m.source().as_ref().ok_or(IdmapError::NoSource { index })?;
            let options = super::rootfs::options::parse(m.options().as_deref().unwrap_or_default());
            let recursive_bind = options.flags.contains(nix::mount::MsFlags::MS_REC);
            // `idmap` maps the top mount only, `ridmap` every one; mappings without either
            // option follow the bind (rbind: all).
            let recursive_idmap = options.idmap.unwrap_or(recursive_bind);
            let userns = userns_with(uid, gid)?;
            idmapped_tree(
                &bundle.join(source),
                &userns,
                recursive_bind,
                recursive_idmap,
            )
            .map(Some)
            .map_err(|e| IdmapError::Tree {
                index,
                source_path: source.display().to_string(),
                source: e,
            })
        })
        .collect()
}

/// A detached copy of `source` (with the mounts below it when `recursive_bind`) whose ids go
/// through the mappings of `userns` (the mounts below too when `recursive_idmap`).
fn idmapped_tree(
    source: &Path,
    userns: &OwnedFd,
    recursive_bind: bool,
    recursive_idmap: bool,
) -> std::io::Result<OwnedFd> {
    use rustix::mount::OpenTreeFlags;
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive_bind {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let tree = rustix::mount::open_tree(rustix::fs::CWD, source, flags)?;
    let attr = crate::sys::MountAttr {
        attr_set: crate::sys::mount_attr::IDMAP,
        userns_fd: std::os::fd::AsRawFd::as_raw_fd(userns) as u64,
        ..Default::default()
    };
    crate::sys::mount_setattr(tree.as_fd(), recursive_idmap, &attr)?;
    Ok(tree)
}

fn wants_idmap(m: &Mount) -> bool {
    m.options()
        .iter()
        .flatten()
        .any(|o| o == "idmap" || o == "ridmap")
}

fn format_map(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// A user namespace with these mappings, held by a descriptor (which keeps it alive: the
/// helper process that made it is gone on return). berthd's `--userns-remap` makes one to
/// idmap the image layers with.
pub fn userns_with(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd, IdmapError> {
    let mut stack = vec![0u8; 64 * 1024];
    let body = Box::new(|| -> isize {
        // The helper only has to exist while the runtime writes its maps and opens its
        // namespace; it is killed then.
        loop {
            nix::unistd::pause();
        }
    });
    // SAFETY: the child gets a copy of this single-threaded process's memory (no CLONE_VM) and
    // only calls pause() until it is killed: it never returns into our frames.
    let pid = unsafe {
        nix::sched::clone(
            body,
            &mut stack,
            CloneFlags::CLONE_NEWUSER,
            Some(libc::SIGCHLD),
        )
    }
    .map_err(|e| userns_err("clone")(e.into()))?;
    let result = (|| {
        std::fs::write(format!("/proc/{pid}/uid_map"), format_map(uid))
            .map_err(userns_err("writing uid_map"))?;
        std::fs::write(format!("/proc/{pid}/gid_map"), format_map(gid))
            .map_err(userns_err("writing gid_map"))?;
        File::open(format!("/proc/{pid}/ns/user"))
            .map(OwnedFd::from)
            .map_err(userns_err("opening the namespace"))
    })();
    let _ = kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
    result
}
