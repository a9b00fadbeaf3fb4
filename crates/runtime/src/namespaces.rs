//! Which namespaces a container gets: new ones become clone flags, existing ones (by `path`) are
//! opened in the runtime before the fork and joined with setns(2) by the child.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("opening namespace {typ} at {path}: {source}")]
    Open {
        typ: LinuxNamespaceType,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("joining namespace {typ} at {path}: {source}")]
    Join {
        typ: LinuxNamespaceType,
        path: PathBuf,
        source: nix::Error,
    },
}

/// The clone flag of a namespace type.
pub fn clone_flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        // Not a clone(2) flag (its bit is CSIGNAL's): the init unshares it (see init.rs).
        LinuxNamespaceType::Time => CloneFlags::empty(),
    }
}

/// An existing namespace to join, opened before the fork.
#[derive(Debug)]
pub struct Join {
    pub typ: LinuxNamespaceType,
    pub path: PathBuf,
    pub file: File,
}

impl Join {
    pub fn enter(&self) -> Result<(), NamespaceError> {
        nix::sched::setns(self.file.as_fd(), clone_flag(self.typ)).map_err(|source| {
            NamespaceError::Join {
                typ: self.typ,
                path: self.path.clone(),
                source,
            }
        })
    }
}

/// The namespace plan of one container.
#[derive(Debug)]
pub struct Plan {
    /// Namespaces to create, as clone flags.
    pub new: CloneFlags,
    /// Namespaces to join, user namespace first, mount namespace last (paths are resolved before it).
    pub join: Vec<Join>,
    /// A new time namespace, which clone(2) cannot create.
    pub new_time: bool,
}

impl Plan {
    pub fn from_spec(namespaces: &[LinuxNamespace]) -> Result<Plan, NamespaceError> {
        let mut plan = Plan {
            new: CloneFlags::empty(),
            join: Vec::new(),
            new_time: false,
        };
        for ns in namespaces {
            match ns.path() {
                None if ns.typ() == LinuxNamespaceType::Time => plan.new_time = true,
                None => plan.new |= clone_flag(ns.typ()),
                Some(path) => {
                    let file = File::open(path).map_err(|source| NamespaceError::Open {
                        typ: ns.typ(),
                        path: path.clone(),
                        source,
                    })?;
                    plan.join.push(Join {
                        typ: ns.typ(),
                        path: path.clone(),
                        file,
                    });
                }
            }
        }
        plan.join.sort_by_key(|j| match j.typ {
            LinuxNamespaceType::User => 0,
            LinuxNamespaceType::Mount => 2,
            _ => 1,
        });
        Ok(plan)
    }

    pub fn has_new(&self, typ: LinuxNamespaceType) -> bool {
        match typ {
            LinuxNamespaceType::Time => self.new_time,
            _ => self.new.contains(clone_flag(typ)),
        }
    }

    /// Takes the pid namespace to join out of the plan: the runtime enters it itself before forking,
    /// because setns(CLONE_NEWPID) only applies to children.
    pub fn take_pid_join(&mut self) -> Option<Join> {
        let idx = self
            .join
            .iter()
            .position(|j| j.typ == LinuxNamespaceType::Pid)?;
        Some(self.join.remove(idx))
    }
}

/// The time namespace's clone flag, which nix does not name.
const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);

/// Puts the calling process into a new time namespace whose clocks are offset by `offsets`
/// (clock name, seconds, nanoseconds): unshare makes it for the children, the offsets are
/// written while no process is in it yet, and setns enters it.
pub fn enter_new_time(offsets: &[(String, i64, u32)]) -> Result<(), NamespaceError> {
    let path = PathBuf::from("/proc/self/ns/time_for_children");
    let err = |source: nix::Error| NamespaceError::Join {
        typ: LinuxNamespaceType::Time,
        path: path.clone(),
        source,
    };
    nix::sched::unshare(CLONE_NEWTIME).map_err(err)?;
    let text: String = offsets
        .iter()
        .map(|(clock, secs, nanos)| format!("{clock} {secs} {nanos}\n"))
        .collect();
    if !text.is_empty() {
        std::fs::write("/proc/self/timens_offsets", text).map_err(|source| {
            NamespaceError::Open {
                typ: LinuxNamespaceType::Time,
                path: PathBuf::from("/proc/self/timens_offsets"),
                source,
            }
        })?;
    }
    let file = File::open(&path).map_err(|source| NamespaceError::Open {
        typ: LinuxNamespaceType::Time,
        path: path.clone(),
        source,
    })?;
    nix::sched::setns(file.as_fd(), CLONE_NEWTIME).map_err(err)
}
