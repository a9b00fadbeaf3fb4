//! Idmapped mounts (`mounts[].uidMappings` / `gidMappings`): the kernel needs a user namespace
//! that carries the mappings. The runtime makes one before the fork, with a short-lived helper
//! process cloned into a new user namespace whose maps it writes, and keeps a descriptor of
//! that namespace for the init, which attaches it to the bind mount with mount_setattr(2).

use std::fs::File;
use std::os::fd::OwnedFd;

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use oci_spec::runtime::{LinuxIdMapping, Mount};

#[derive(Debug, thiserror::Error)]
pub enum IdmapError {
    #[error("mounts[{index}]: uidMappings and gidMappings must be given together")]
    Incomplete { index: usize },
    #[error("making the user namespace of an idmapped mount: {what}: {source}")]
    Userns {
        what: String,
        source: std::io::Error,
    },
}

fn userns_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> IdmapError {
    let what = what.into();
    move |source| IdmapError::Userns { what, source }
}

/// One descriptor per mount of `mounts`: the user namespace of an idmapped mount, or None.
pub fn prepare(mounts: &[Mount]) -> Result<Vec<Option<OwnedFd>>, IdmapError> {
    mounts
        .iter()
        .enumerate()
        .map(|(index, m)| match (m.uid_mappings(), m.gid_mappings()) {
            (None, None) => Ok(None),
            (Some(uid), Some(gid)) => userns_with(uid, gid).map(Some),
            _ => Err(IdmapError::Incomplete { index }),
        })
        .collect()
}

fn format_map(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// A user namespace with these mappings, held by a descriptor.
fn userns_with(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd, IdmapError> {
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
