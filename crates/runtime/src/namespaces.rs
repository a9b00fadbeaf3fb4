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

/// Joins of namespaces that a process in a new (or joined) user namespace may not make itself:
/// setns(2) needs CAP_SYS_ADMIN over the namespace's owner, and a namespace given by path
/// (the network namespace its engine made) is usually owned by the runtime's own user
/// namespace. runc joins them before it unshares the user namespace; so does Berth:
/// [`Plan::take_before_userns`] gives those of a container with a new user namespace to the
/// runtime, which enters them itself ([`enter_for_child`]) so that the child is born in them.
fn joined_before_userns(typ: LinuxNamespaceType) -> bool {
    matches!(
        typ,
        LinuxNamespaceType::Network | LinuxNamespaceType::Ipc | LinuxNamespaceType::Uts
    )
}

impl Plan {
    /// With a new user namespace: takes the network, IPC and UTS namespaces to join out of the
    /// plan (see [`joined_before_userns`]).
    pub fn take_before_userns(&mut self) -> Vec<Join> {
        if !self.has_new(LinuxNamespaceType::User) {
            return Vec::new();
        }
        let (before, rest) = std::mem::take(&mut self.join)
            .into_iter()
            .partition(|j| joined_before_userns(j.typ));
        self.join = rest;
        before
    }
}

/// The calling thread's own namespaces of the types it entered with [`enter_for_child`], to go
/// back to on drop (a child forked meanwhile stays in the entered ones).
#[derive(Debug)]
pub struct Entered {
    own: Vec<(LinuxNamespaceType, File)>,
}

/// Enters `joins` in the calling thread, keeping its own namespaces to return to.
pub fn enter_for_child(joins: &[Join]) -> Result<Entered, NamespaceError> {
    let mut entered = Entered { own: Vec::new() };
    for j in joins {
        let path = PathBuf::from(format!("/proc/thread-self/ns/{}", file_name(j.typ)));
        let own = File::open(&path).map_err(|source| NamespaceError::Open {
            typ: j.typ,
            path,
            source,
        })?;
        j.enter()?;
        entered.own.push((j.typ, own));
    }
    Ok(entered)
}

impl Drop for Entered {
    fn drop(&mut self) {
        for (typ, own) in self.own.drain(..).rev() {
            let _ = nix::sched::setns(own.as_fd(), clone_flag(typ));
        }
    }
}

/// The name of a namespace type's file in `/proc/PID/ns`.
pub fn file_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Joins `joins` (user namespace first, mount namespace last) from a process with the host's
/// rights: the namespaces of [`joined_before_userns`] that the user namespace would not let us
/// join any more are joined before it, the others after.
pub fn enter_all(joins: &[Join]) -> Result<(), NamespaceError> {
    let joins_user = joins.iter().any(|j| j.typ == LinuxNamespaceType::User);
    let mut after = Vec::new();
    if joins_user {
        for j in joins.iter().filter(|j| joined_before_userns(j.typ)) {
            if j.enter().is_err() {
                after.push(j);
            }
        }
    }
    for j in joins {
        if joins_user && joined_before_userns(j.typ) {
            continue;
        }
        j.enter()?;
        if j.typ == LinuxNamespaceType::User {
            for j in after.drain(..) {
                j.enter()?;
            }
        }
    }
    Ok(())
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
