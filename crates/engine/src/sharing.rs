//! The namespaces a container shares (`HostConfig.IpcMode`, `PidMode`, `UTSMode`) and its
//! cgroup (`CgroupParent`), as dockerd 20.10 sets them up:
//! - IPC: `private` (the default, as dockerd's `default-ipc-mode`) and `""`: a namespace and a
//!   `/dev/shm` of its own; `shareable`: the same, its `/dev/shm` a tmpfs mounted on the host
//!   at `<run-dir>/shm` that `container:X` containers bind; `container:X`: X's namespace
//!   (X running and shareable) and X's `/dev/shm`; `host`: the host's namespace and `/dev/shm`;
//!   `none`: a namespace of its own and no `/dev/shm`.
//! - PID: `host` (no namespace) or `container:X` (X's, X running).
//! - UTS: `host` (no namespace, no hostname of its own). The engine also takes `container:X`
//!   (X's namespace), which dockerd's API refuses: the CRI puts a pod's containers in their
//!   sandbox's that way.
//!
//! A namespace `container:X` gives is X's init's, through `/proc/<pid>/ns/<type>`.

use std::path::{Path, PathBuf};

use crate::container::spec::HostSpec;
use crate::container::Container;
use crate::error::{EngineError, Result};
use crate::Engine;

/// dockerd's default `/dev/shm` size (64 MiB).
pub const DEFAULT_SHM_SIZE: i64 = 64 << 20;

/// `HostConfig.IpcMode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpcMode {
    /// `private` or `""`.
    Private,
    Shareable,
    Host,
    None,
    Container(String),
}

/// `HostConfig.PidMode` and `UTSMode`: a namespace of its own, the host's or another
/// container's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsMode {
    Private,
    Host,
    Container(String),
}

/// `container:X` as X (None: not that form, or no X).
fn container_of(mode: &str) -> Option<Option<&str>> {
    mode.strip_prefix("container:")
        .map(|x| Some(x).filter(|x| !x.is_empty()))
}

/// The IPC mode of `hc`; `None` when it is none of dockerd's.
pub fn ipc_mode(hc: &HostSpec) -> Option<IpcMode> {
    match hc.ipc_mode.as_deref().unwrap_or("") {
        "" | "private" => Some(IpcMode::Private),
        "shareable" => Some(IpcMode::Shareable),
        "host" => Some(IpcMode::Host),
        "none" => Some(IpcMode::None),
        other => container_of(other)?.map(|x| IpcMode::Container(x.to_string())),
    }
}

fn ns_mode(mode: Option<&str>) -> Option<NsMode> {
    match mode.unwrap_or("") {
        "" => Some(NsMode::Private),
        "host" => Some(NsMode::Host),
        other => container_of(other)?.map(|x| NsMode::Container(x.to_string())),
    }
}

/// The PID mode of `hc`; `None` when it is none of dockerd's.
pub fn pid_mode(hc: &HostSpec) -> Option<NsMode> {
    ns_mode(hc.pid_mode.as_deref())
}

/// The UTS mode of `hc` (`container:X` too, the engine's own); `None` when it is none of
/// those.
pub fn uts_mode(hc: &HostSpec) -> Option<NsMode> {
    ns_mode(hc.uts_mode.as_deref())
}

/// dockerd's refusals at create (400): a mode it does not know, a hostname with the host's
/// UTS namespace, a cgroup parent that climbs out with `..`.
pub fn check_create(hc: &HostSpec, hostname: Option<&str>) -> Result<()> {
    let invalid = |what: &str, mode: &Option<String>| {
        EngineError::InvalidParameter(format!(
            "invalid {what} mode: {}",
            mode.as_deref().unwrap_or("")
        ))
    };
    if ipc_mode(hc).is_none() {
        return Err(invalid("IPC", &hc.ipc_mode));
    }
    if pid_mode(hc).is_none() {
        return Err(invalid("PID", &hc.pid_mode));
    }
    let uts = uts_mode(hc).ok_or_else(|| invalid("UTS", &hc.uts_mode))?;
    if uts != NsMode::Private && hostname.is_some_and(|h| !h.is_empty()) {
        return Err(EngineError::InvalidParameter(
            "conflicting options: hostname and the UTS mode".into(),
        ));
    }
    if let Some(parent) = hc.cgroup_parent.as_deref() {
        if Path::new(parent)
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(EngineError::InvalidParameter(format!(
                "invalid cgroup parent {parent:?}: \"..\" is not allowed"
            )));
        }
    }
    Ok(())
}

/// The OCI `cgroupsPath` of container `id`: `<parent>/<id>` with `--cgroup-parent` (absolute:
/// from each hierarchy's root; relative: below the cgroup of the daemon, whose monitor runs the
/// runtime, as runc and dockerd's cgroupfs driver take it), else `/berth/<id>`.
pub fn cgroups_path(hc: &HostSpec, id: &str) -> String {
    match hc.cgroup_parent.as_deref().filter(|p| !p.is_empty()) {
        Some(parent) => Path::new(parent).join(id).display().to_string(),
        None => format!("/berth/{id}"),
    }
}

/// One namespace as the OCI config gets it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Ns {
    /// A new one.
    #[default]
    New,
    /// The host's: no namespace in the config.
    Host,
    /// An existing one to join.
    Join(PathBuf),
}

/// The container's `/dev/shm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shm {
    /// A tmpfs of this size the runtime mounts.
    Tmpfs(i64),
    /// A directory bound there (a shareable container's tmpfs, or the host's `/dev/shm`).
    Bind(PathBuf),
    /// None (`--ipc none`).
    None,
}

impl Default for Shm {
    fn default() -> Self {
        Shm::Tmpfs(DEFAULT_SHM_SIZE)
    }
}

/// The namespaces a starting container gets and its `/dev/shm`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sharing {
    pub ipc: Ns,
    pub pid: Ns,
    pub uts: Ns,
    pub shm: Shm,
}

impl Engine {
    /// Where a shareable container's `/dev/shm` is mounted on the host.
    pub(crate) fn shm_path(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("shm")
    }

    /// The namespaces `c` joins at its start, checked as dockerd checks them (the containers
    /// it joins run; an IPC donor is shareable), and the shareable `/dev/shm` of `c` mounted.
    pub(crate) fn sharing(&self, c: &Container) -> Result<Sharing> {
        let hc = &c.host_config;
        let size = hc.shm_size.filter(|s| *s > 0).unwrap_or(DEFAULT_SHM_SIZE);
        let invalid = |what: &str, mode: &Option<String>| {
            EngineError::InvalidParameter(format!(
                "invalid {what} mode: {}",
                mode.as_deref().unwrap_or("")
            ))
        };
        let (ipc, shm) = match ipc_mode(hc).ok_or_else(|| invalid("IPC", &hc.ipc_mode))? {
            IpcMode::Private => (Ns::New, Shm::Tmpfs(size)),
            IpcMode::None => (Ns::New, Shm::None),
            IpcMode::Host => (Ns::Host, Shm::Bind(PathBuf::from("/dev/shm"))),
            IpcMode::Shareable => {
                let path = self.shm_path(&c.id);
                self.mount_shm(c, &path, size)?;
                (Ns::New, Shm::Bind(path))
            }
            IpcMode::Container(name) => {
                let donor = self.running(&name, "IPC")?;
                let path = self.shm_path(&donor.id);
                let shareable = ipc_mode(&donor.host_config) == Some(IpcMode::Shareable);
                if !shareable || !crate::lifecycle::is_mountpoint(&path) {
                    return Err(EngineError::InvalidParameter(format!(
                        "can't join IPC of container {name}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
                    )));
                }
                (join(&donor, "ipc"), Shm::Bind(path))
            }
        };
        let pid = match pid_mode(hc).ok_or_else(|| invalid("PID", &hc.pid_mode))? {
            NsMode::Private => Ns::New,
            NsMode::Host => Ns::Host,
            NsMode::Container(name) => {
                let joined = self.running(&name, "PID")?;
                if self.remap_of(c).is_some() {
                    // Its /proc could not be mounted: the namespace belongs to the other
                    // container's user namespace, which dockerd's runc joins too and
                    // berth-runtime cannot yet (it makes the other namespaces before).
                    return Err(EngineError::InvalidParameter(format!(
                        "cannot join PID of container {name} with --userns-remap: sharing a user namespace is not supported"
                    )));
                }
                join(&joined, "pid")
            }
        };
        let uts = match uts_mode(hc).ok_or_else(|| invalid("UTS", &hc.uts_mode))? {
            NsMode::Private => Ns::New,
            NsMode::Host => Ns::Host,
            NsMode::Container(name) => join(&self.running(&name, "UTS")?, "uts"),
        };
        Ok(Sharing { ipc, pid, uts, shm })
    }

    /// Container `name`, which must run to have its namespace of type `what` joined.
    fn running(&self, name: &str, what: &str) -> Result<Container> {
        let c = self.containers.get(name)?;
        if !c.is_running() || c.is_restarting() || c.state.pid <= 0 {
            return Err(EngineError::Conflict(format!(
                "cannot join {what} of a non running container: {name}"
            )));
        }
        Ok(c)
    }

    /// Mounts the tmpfs of a shareable `/dev/shm` at `path` (owned by the remapped root with
    /// `--userns-remap`), unless it is there already.
    fn mount_shm(&self, c: &Container, path: &Path, size: i64) -> Result<()> {
        if crate::lifecycle::is_mountpoint(path) {
            return Ok(());
        }
        std::fs::create_dir_all(path).map_err(|e| EngineError::internal("mkdir shm", e))?;
        let mut data = format!("mode=1777,size={size}");
        if let Some(remap) = self.remap_of(c) {
            let (uid, gid) = remap.root();
            data.push_str(&format!(",uid={uid},gid={gid}"));
        }
        use nix::mount::MsFlags;
        nix::mount::mount(
            Some("shm"),
            path,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(data.as_str()),
        )
        .map_err(|e| EngineError::internal("mount the shareable /dev/shm", e))
    }

    /// Unmounts the shareable `/dev/shm` of container `id` (at its exit, as dockerd's
    /// `UnmountIpcMount`: the containers that bound it keep theirs).
    pub(crate) fn unmount_shm(&self, id: &str) {
        let path = self.shm_path(id);
        while crate::lifecycle::is_mountpoint(&path) {
            if nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH).is_err() {
                break;
            }
        }
        let _ = std::fs::remove_dir(&path);
    }
}

/// The namespace of type `typ` of running container `c`'s init.
fn join(c: &Container, typ: &str) -> Ns {
    Ns::Join(PathBuf::from(format!("/proc/{}/ns/{typ}", c.state.pid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(ipc: &str, pid: &str, uts: &str) -> HostSpec {
        HostSpec {
            ipc_mode: Some(ipc.into()),
            pid_mode: Some(pid.into()),
            uts_mode: Some(uts.into()),
            ..Default::default()
        }
    }

    #[test]
    fn modes_parse_as_dockerd_takes_them() {
        let h = hc("container:abc", "container:x", "container:y");
        assert_eq!(ipc_mode(&h), Some(IpcMode::Container("abc".into())));
        assert_eq!(pid_mode(&h), Some(NsMode::Container("x".into())));
        assert_eq!(uts_mode(&h), Some(NsMode::Container("y".into())));
        for (mode, want) in [
            ("", IpcMode::Private),
            ("private", IpcMode::Private),
            ("shareable", IpcMode::Shareable),
            ("host", IpcMode::Host),
            ("none", IpcMode::None),
        ] {
            assert_eq!(ipc_mode(&hc(mode, "", "")), Some(want));
        }
        for bad in ["bogus", "container:", "Host", "container"] {
            assert_eq!(ipc_mode(&hc(bad, "", "")), None, "{bad}");
            assert_eq!(pid_mode(&hc("", bad, "")), None, "{bad}");
        }
        assert_eq!(pid_mode(&hc("", "private", "")), None);
    }

    #[test]
    fn create_refuses_what_dockerd_refuses() {
        let cfg = None;
        let err = check_create(&hc("bogus", "", ""), cfg).unwrap_err();
        assert_eq!(err.to_string(), "invalid IPC mode: bogus");
        assert_eq!(err.status(), 400);
        let err = check_create(&hc("", "nope", ""), cfg).unwrap_err();
        assert_eq!(err.to_string(), "invalid PID mode: nope");
        let named = Some("h");
        let err = check_create(&hc("", "", "host"), named).unwrap_err();
        assert_eq!(
            err.to_string(),
            "conflicting options: hostname and the UTS mode"
        );
        assert!(check_create(&hc("", "", "host"), cfg).is_ok());
        assert!(check_create(&hc("", "", ""), named).is_ok());
        let up = HostSpec {
            cgroup_parent: Some("a/../../b".into()),
            ..Default::default()
        };
        assert_eq!(check_create(&up, cfg).unwrap_err().status(), 400);
    }

    #[test]
    fn cgroups_paths_follow_the_parent() {
        let with = |p: &str| HostSpec {
            cgroup_parent: Some(p.into()),
            ..Default::default()
        };
        assert_eq!(cgroups_path(&HostSpec::default(), "i"), "/berth/i");
        assert_eq!(cgroups_path(&with(""), "i"), "/berth/i");
        assert_eq!(cgroups_path(&with("/pods/p1"), "i"), "/pods/p1/i");
        assert_eq!(cgroups_path(&with("/pods/p1/"), "i"), "/pods/p1/i");
        assert_eq!(cgroups_path(&with("rel"), "i"), "rel/i");
    }
}
