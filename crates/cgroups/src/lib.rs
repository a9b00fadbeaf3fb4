//! Control groups for Berth: one [`Manager`] per container cgroup, working
//! the same on cgroup v1 (legacy), hybrid (v1 controllers plus a cgroup2
//! mount, where some controllers such as hugetlb may live on v2) and pure
//! cgroup v2, driven by OCI [`LinuxResources`].
//!
//! Each controller is looked up where it is actually mounted: a v1
//! hierarchy that has it, else the cgroup2 hierarchy if its root lists it in
//! `cgroup.controllers`. File names, units and write orders follow runc.
//!
//! Device rules are written to the v1 devices controller when there is one;
//! on pure cgroup v2 they are compiled into a BPF_CGROUP_DEVICE eBPF program
//! with the same semantics and attached to the cgroup.
//!
//! Not supported (yet):
//! - on cgroup v2, settings without a v2 file are errors when requested:
//!   `network` (net_cls/net_prio), `cpu.realtimeRuntime/Period`,
//!   `blockIO.leafWeight`; `memory.disableOOMKiller` and
//!   `memory.swappiness` are accepted and ignored, as by runc
//!   (`memory.oom.group` and other v2-only files go through `unified`);
//! - kernel memory limits are ignored where the kernel dropped them;
//!   `memory.useHierarchy` is ignored (always on in modern kernels);
//! - systemd-managed cgroups: this crate writes cgroupfs directly.

mod bpf;
mod convert;
mod device_filter;
mod fs;
mod mountinfo;
mod stats;
mod stats_v1;
mod stats_v2;
mod v1;
mod v2;

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};

pub use bpf::BpfError;
pub use convert::ConvertError;
pub use fs::FsError;
pub use mountinfo::{cgroup_mounts, preset_cgroup_mounts, Mode, MountinfoError};
pub use stats::{
    Blkio, BlkioEntry, Cpu, CpuUsage, Hugetlb, Memory, MemoryEntry, Pids, Stats, Throttling,
};
pub use v1::V1Error;
pub use v2::V2Error;

use mountinfo::{Hierarchy, Layout, Version};

/// How long freeze/thaw wait for the freezer to reach the state.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `destroy` retries `rmdir` on EBUSY, over all hierarchies.
const DESTROY_TIMEOUT: Duration = Duration::from_secs(2);

/// Anything that can go wrong managing a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cgroup hierarchies could not be discovered.
    #[error(transparent)]
    Mountinfo(#[from] MountinfoError),
    /// A cgroup file or directory operation failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A cgroup v1 setting failed.
    #[error(transparent)]
    V1(#[from] V1Error),
    /// A cgroup v2 setting failed.
    #[error(transparent)]
    V2(#[from] V2Error),
    /// An OCI value could not be converted.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// The cgroup v2 device filter could not be loaded or attached.
    #[error(transparent)]
    Bpf(#[from] BpfError),
    /// The cgroupsPath is empty, the root, or climbs out with `..`.
    #[error(
        "invalid cgroupsPath {0:?}: must name a cgroup below the hierarchy root, without \"..\""
    )]
    InvalidPath(PathBuf),
    /// A setting was requested whose controller is mounted nowhere.
    #[error("{setting} was requested but the {controller} controller is not mounted (neither cgroup v1 nor enabled in cgroup2)")]
    ControllerMissing {
        /// The controller (`memory`, `blkio`/`io`...).
        controller: &'static str,
        /// The OCI setting (`memory`, `blockIO`...).
        setting: &'static str,
    },
    /// A `unified` key whose controller is not on the cgroup2 hierarchy.
    #[error("unified: {key:?} cannot be set: {reason}")]
    UnifiedOnV1 {
        /// The key.
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// No freezer: neither a v1 freezer hierarchy nor cgroup2.
    #[error("no freezer available (no v1 freezer hierarchy and no cgroup2 mount)")]
    NoFreezer,
    /// A sub-cgroup path that climbs out of the cgroup or is absolute.
    #[error("invalid sub-cgroup path {0:?}: must be relative, without \"..\"")]
    InvalidSubPath(PathBuf),
    /// A sub-cgroup that does not exist (it is never created for the caller).
    #[error("sub-cgroup {0} does not exist")]
    SubCgroupMissing(PathBuf),
    /// Controllers were named for a sub-cgroup on a pure cgroup2 host, or none of them is mounted.
    #[error("sub-cgroup for controllers {controllers:?}: {reason}")]
    SubCgroupControllers {
        /// The controllers as given.
        controllers: Vec<String>,
        /// Why they cannot be used.
        reason: &'static str,
    },
    /// Several hierarchies failed during `destroy`; the first error is kept.
    #[error("{first} (and {more} more error(s) removing the cgroup)")]
    Destroy {
        /// The first failure.
        first: Box<Error>,
        /// How many more failed.
        more: usize,
    },
}

/// One hierarchy and the container's directory in it.
#[derive(Debug, Clone)]
struct Cgroup {
    hierarchy: Hierarchy,
    dir: PathBuf,
}

impl Cgroup {
    fn is_v2(&self) -> bool {
        self.hierarchy.version == Version::V2
    }
}

/// The cgroup of one container, in every mounted hierarchy.
#[derive(Debug, Clone)]
pub struct Manager {
    path: PathBuf,
    mode: Mode,
    cgroups: Vec<Cgroup>,
}

impl Manager {
    /// `path` is the OCI cgroupsPath: absolute (`/berth/abc`) = relative to
    /// each hierarchy's root; relative (`berth/abc`) = relative to the
    /// calling process's own cgroup in each hierarchy.
    /// Detects v1 / v2 / hybrid from /proc/self/mountinfo. Creates nothing.
    pub fn new(path: &Path) -> Result<Manager, Error> {
        Self::with_layout(path, Layout::current()?)
    }

    fn with_layout(path: &Path, layout: Layout) -> Result<Manager, Error> {
        let mut named = 0;
        for comp in path.components() {
            match comp {
                Component::Normal(_) => named += 1,
                Component::RootDir | Component::CurDir => {}
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(Error::InvalidPath(path.to_path_buf()))
                }
            }
        }
        if named == 0 {
            return Err(Error::InvalidPath(path.to_path_buf()));
        }
        let mode = layout.mode();
        let cgroups = layout
            .hierarchies
            .into_iter()
            .map(|mut hierarchy| {
                if hierarchy.version == Version::V2 {
                    let root = hierarchy.mount_point.join("cgroup.controllers");
                    hierarchy.controllers = std::fs::read_to_string(root)
                        .unwrap_or_default()
                        .split_whitespace()
                        .map(str::to_string)
                        .collect();
                }
                let dir = hierarchy.resolve(path);
                Cgroup { hierarchy, dir }
            })
            .collect();
        Ok(Manager {
            path: path.to_path_buf(),
            mode,
            cgroups,
        })
    }

    /// The cgroup of `path` found at `dirs`, the [`Manager::dirs`] of a manager made earlier
    /// (perhaps by a process in another cgroup, for which a relative `path` named other
    /// directories): each hierarchy keeps the directory of `dirs` below its mount point, and
    /// resolves `path` where there is none.
    pub fn with_dirs(path: &Path, dirs: &[PathBuf]) -> Result<Manager, Error> {
        Ok(Self::new(path)?.keep_dirs(dirs))
    }

    fn keep_dirs(mut self, dirs: &[PathBuf]) -> Manager {
        for dir in dirs {
            if dir.components().any(|c| c == Component::ParentDir) {
                continue;
            }
            // The hierarchy whose mount point is the deepest one above `dir`.
            let owner = self
                .cgroups
                .iter_mut()
                .filter(|c| dir.starts_with(&c.hierarchy.mount_point))
                .max_by_key(|c| c.hierarchy.mount_point.components().count());
            if let Some(c) = owner {
                c.dir = dir.clone();
            }
        }
        self
    }

    /// The cgroupsPath this manager was made with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Legacy (v1), hybrid or unified (v2).
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The container's directory for `controller` (`memory`, `cpu`,
    /// `hugetlb`, `name=systemd`...), in whichever hierarchy has it. The
    /// cgroup2 directory is returned for `""`, when there is one.
    pub fn controller_dir(&self, controller: &str) -> Option<PathBuf> {
        if controller.is_empty() {
            return self.v2().map(|c| c.dir.clone());
        }
        self.locate(controller).map(|c| c.dir.clone())
    }

    /// The same cgroup with the directories of some hierarchies moved down to the existing
    /// sub-cgroup `sub` (relative): those holding one of `controllers`, or every hierarchy when
    /// `controllers` is empty (runc's `exec --cgroup [CONTROLLER,...:]PATH`). Naming controllers
    /// needs cgroup v1: on pure cgroup2 there is one directory for all of them.
    pub fn sub_cgroup(&self, controllers: &[String], sub: &Path) -> Result<Manager, Error> {
        let valid = sub
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !valid || sub.as_os_str().is_empty() {
            return Err(Error::InvalidSubPath(sub.to_path_buf()));
        }
        if !controllers.is_empty() && self.mode == Mode::Unified {
            return Err(Error::SubCgroupControllers {
                controllers: controllers.to_vec(),
                reason: "controllers can only be named on cgroup v1",
            });
        }
        let mut out = self.clone();
        let mut moved = 0;
        for c in &mut out.cgroups {
            let wanted = controllers.is_empty()
                || (!c.is_v2() && controllers.iter().any(|name| c.hierarchy.has(name)));
            if !wanted {
                continue;
            }
            let dir = c.dir.join(sub);
            if !dir.is_dir() {
                return Err(Error::SubCgroupMissing(dir));
            }
            c.dir = dir;
            moved += 1;
        }
        if moved == 0 {
            return Err(Error::SubCgroupControllers {
                controllers: controllers.to_vec(),
                reason: "none of them is mounted as a cgroup v1 hierarchy",
            });
        }
        Ok(out)
    }

    /// Every directory this cgroup has (one per hierarchy).
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.cgroups.iter().map(|c| c.dir.clone()).collect()
    }

    fn v2(&self) -> Option<&Cgroup> {
        self.cgroups.iter().find(|c| c.is_v2())
    }

    /// The hierarchy holding `controller`: v1 first, else cgroup2.
    fn locate(&self, controller: &str) -> Option<&Cgroup> {
        self.cgroups
            .iter()
            .find(|c| !c.is_v2() && c.hierarchy.has(controller))
            .or_else(|| self.v2().filter(|c| c.hierarchy.has(controller)))
    }

    fn require(&self, controller: &'static str, setting: &'static str) -> Result<&Cgroup, Error> {
        self.locate(controller).ok_or(Error::ControllerMissing {
            controller,
            setting,
        })
    }

    /// Creates the cgroup (`mkdir -p`) in every hierarchy. v1 cpuset levels
    /// inherit the parent's cpus/mems; on cgroup2 every available
    /// controller is enabled in the parents' `cgroup.subtree_control`.
    pub fn create(&self) -> Result<(), Error> {
        for c in &self.cgroups {
            if c.is_v2() {
                v2::create(&c.hierarchy.mount_point, &c.dir)?;
            } else if c.hierarchy.has("cpuset") {
                v1::create_cpuset(&c.hierarchy.mount_point, &c.dir)?;
            } else {
                fs::create_dir_all(&c.dir)?;
            }
        }
        Ok(())
    }

    /// Writes the limits in `resources`. A setting whose controller is not
    /// mounted, or whose file this kernel lacks, is an error naming it;
    /// settings that are absent are left alone.
    ///
    /// Devices: on v1 the rules go to devices.allow/devices.deny in order;
    /// without a v1 devices controller they become a cgroup2 eBPF device
    /// filter (see [`Manager::apply_device_filter`]).
    pub fn apply(&self, resources: &LinuxResources) -> Result<(), Error> {
        if let Some(cpu) = resources.cpu() {
            if v1::wants_cpuset(cpu) {
                let c = self.require("cpuset", "cpu.cpus/cpu.mems")?;
                if c.is_v2() {
                    v2::set_cpuset(&c.dir, cpu)?;
                } else {
                    v1::set_cpuset(&c.dir, cpu)?;
                }
            }
        }
        if let Some(rules) = resources.devices().as_ref().filter(|r| !r.is_empty()) {
            match self.locate("devices") {
                Some(c) => v1::set_devices(&c.dir, rules)?,
                None if self.v2().is_some() => self.apply_device_filter(rules)?,
                None => {
                    return Err(Error::ControllerMissing {
                        controller: "devices",
                        setting: "devices",
                    })
                }
            }
        }
        if let Some(mem) = resources.memory() {
            let c = self.require("memory", "memory")?;
            if c.is_v2() {
                v2::set_memory(&c.dir, mem)?;
            } else {
                v1::set_memory(&c.dir, mem)?;
            }
        }
        if let Some(cpu) = resources.cpu().as_ref().filter(|c| v1::wants_cpu(c)) {
            let c = self.require("cpu", "cpu")?;
            if c.is_v2() {
                v2::set_cpu(&c.dir, cpu)?;
            } else {
                v1::set_cpu(&c.dir, cpu)?;
            }
        }
        if let Some(pids) = resources.pids() {
            let c = self.require("pids", "pids")?;
            v1::set_pids(&c.dir, pids.limit())?;
        }
        if let Some(blkio) = resources.block_io().as_ref().filter(|b| v1::wants_blkio(b)) {
            match self.locate("blkio") {
                Some(c) => v1::set_blkio(&c.dir, blkio)?,
                None => v2::set_io(&self.require("io", "blockIO")?.dir, blkio)?,
            }
        }
        if let Some(limits) = resources
            .hugepage_limits()
            .as_ref()
            .filter(|l| !l.is_empty())
        {
            let c = self.require("hugetlb", "hugepageLimits")?;
            if c.is_v2() {
                v2::set_hugetlb(&c.dir, limits)?;
            } else {
                v1::set_hugetlb(&c.dir, limits)?;
            }
        }
        self.apply_network(resources)?;
        self.apply_rdma(resources)?;
        if let Some(unified) = resources.unified().as_ref().filter(|u| !u.is_empty()) {
            self.apply_unified(unified)?;
        }
        Ok(())
    }

    /// Enforces device `rules` on the cgroup2 directory with a
    /// BPF_CGROUP_DEVICE eBPF program, replacing the device programs this
    /// cgroup had. The rules are replayed with the v1 devices controller's
    /// semantics, starting from "allow all" (so a list usually starts with
    /// a deny-all rule). `apply` uses this on pure v2; on hybrid it can be
    /// called in addition to the v1 controller.
    pub fn apply_device_filter(&self, rules: &[LinuxDeviceCgroup]) -> Result<(), Error> {
        let c = self.v2().ok_or(Error::ControllerMissing {
            controller: "cgroup2",
            setting: "devices (eBPF filter)",
        })?;
        let program = device_filter::DeviceState::from_rules(rules)?.program();
        bpf::replace_device_filter(&c.dir, &program)?;
        Ok(())
    }

    /// net_cls.classid and net_prio.ifpriomap (v1 only).
    fn apply_network(&self, resources: &LinuxResources) -> Result<(), Error> {
        let Some(net) = resources.network() else {
            return Ok(());
        };
        if let Some(class_id) = net.class_id() {
            let c = self.require_v1("net_cls", "network.classID")?;
            fs::write_in(&c.dir, "net_cls.classid", &class_id.to_string())?;
        }
        for prio in net.priorities().iter().flatten() {
            let c = self.require_v1("net_prio", "network.priorities")?;
            let line = format!("{} {}", prio.name(), prio.priority());
            fs::write_in(&c.dir, "net_prio.ifpriomap", &line)?;
        }
        Ok(())
    }

    fn require_v1(
        &self,
        controller: &'static str,
        setting: &'static str,
    ) -> Result<&Cgroup, Error> {
        match self.locate(controller) {
            Some(c) if !c.is_v2() => Ok(c),
            _ => Err(Error::ControllerMissing {
                controller,
                setting,
            }),
        }
    }

    /// rdma.max, one line per device (same format on v1 and v2).
    fn apply_rdma(&self, resources: &LinuxResources) -> Result<(), Error> {
        let Some(rdma) = resources.rdma().as_ref().filter(|r| !r.is_empty()) else {
            return Ok(());
        };
        let c = self.require("rdma", "rdma")?;
        let mut devices: Vec<_> = rdma.iter().collect();
        devices.sort_by(|a, b| a.0.cmp(b.0));
        for (device, limit) in devices {
            let mut line = device.clone();
            if let Some(h) = limit.hca_handles() {
                line.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = limit.hca_objects() {
                line.push_str(&format!(" hca_object={o}"));
            }
            fs::write_in(&c.dir, "rdma.max", &line)?;
        }
        Ok(())
    }

    /// The `unified` map: written verbatim on cgroup2. In hybrid mode only
    /// keys of controllers that live on cgroup2 (and `cgroup.*` files) are
    /// accepted; on pure v1 it is an error.
    fn apply_unified(
        &self,
        unified: &std::collections::HashMap<String, String>,
    ) -> Result<(), Error> {
        let Some(v2c) = self.v2() else {
            let key = unified.keys().min().cloned().unwrap_or_default();
            return Err(Error::UnifiedOnV1 {
                key,
                reason: "there is no cgroup2 hierarchy (cgroup v1 only)",
            });
        };
        if self.mode == Mode::Hybrid {
            for key in unified.keys() {
                let controller = key.split('.').next().unwrap_or_default();
                if controller != "cgroup" && !v2c.hierarchy.has(controller) {
                    return Err(Error::UnifiedOnV1 {
                        key: key.clone(),
                        reason: "its controller is on a cgroup v1 hierarchy (hybrid mode)",
                    });
                }
            }
        }
        v2::set_unified(&v2c.dir, unified)?;
        Ok(())
    }

    /// Moves `pid` into the cgroup in every hierarchy (`cgroup.procs`).
    pub fn add_task(&self, pid: i32) -> Result<(), Error> {
        for c in &self.cgroups {
            fs::write_in(&c.dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Moves the calling thread into the cgroup in every v1 hierarchy by writing `0` to `tasks`.
    /// Unlike writing a pid to `cgroup.procs`, moving oneself thread by thread takes no global
    /// lock, so it does not wait for an RCU grace period (5 to 10 ms each time otherwise). For a
    /// single-threaded process this moves the whole process. cgroup2 hierarchies are left out:
    /// see [`Manager::join_v2_self`], or create the process there with `CLONE_INTO_CGROUP`.
    pub fn join_v1_self(&self) -> Result<(), Error> {
        for c in self.cgroups.iter().filter(|c| !c.is_v2()) {
            fs::write_in(&c.dir, "tasks", "0")?;
        }
        Ok(())
    }

    /// Moves the calling process into the cgroup2 directory, if there is one (`0` written to
    /// `cgroup.procs`; this one does take the global lock).
    pub fn join_v2_self(&self) -> Result<(), Error> {
        if let Some(c) = self.v2() {
            fs::write_in(&c.dir, "cgroup.procs", "0")?;
        }
        Ok(())
    }

    /// Where freezing happens: the v1 freezer, else cgroup2's cgroup.freeze.
    fn freezer(&self) -> Result<&Cgroup, Error> {
        self.locate("freezer")
            .filter(|c| !c.is_v2())
            .or_else(|| self.v2())
            .ok_or(Error::NoFreezer)
    }

    /// Freezes every task, waiting (bounded) until the kernel reports the
    /// cgroup frozen (v1 `freezer.state` FROZEN, v2 `cgroup.events` frozen 1).
    pub fn freeze(&self) -> Result<(), Error> {
        self.set_frozen(true)
    }

    /// Thaws the cgroup, waiting (bounded) until it is running again.
    pub fn thaw(&self) -> Result<(), Error> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, frozen: bool) -> Result<(), Error> {
        let c = self.freezer()?;
        if c.is_v2() {
            v2::set_frozen(&c.dir, frozen, FREEZE_TIMEOUT)?;
        } else {
            v1::set_frozen(&c.dir, frozen, FREEZE_TIMEOUT)?;
        }
        Ok(())
    }

    /// Whether the cgroup is frozen.
    pub fn is_frozen(&self) -> Result<bool, Error> {
        let c = self.freezer()?;
        if c.is_v2() {
            Ok(v2::frozen_state(&c.dir)?)
        } else {
            Ok(v1::is_frozen(&c.dir, FREEZE_TIMEOUT)?)
        }
    }

    /// Every pid in the cgroup and its descendants, sorted, read from the
    /// pids, freezer or memory hierarchy (or cgroup2), whichever exists.
    pub fn pids(&self) -> Result<Vec<i32>, Error> {
        let c = ["pids", "freezer", "memory"]
            .iter()
            .find_map(|ctl| self.locate(ctl).filter(|c| !c.is_v2()))
            .or_else(|| self.v2())
            .or_else(|| self.cgroups.first());
        let mut out = Vec::new();
        if let Some(c) = c {
            collect_pids(&c.dir, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Resource usage, with runc's `events --stats` field names. Parts
    /// whose controller is not mounted are left at zero.
    pub fn stats(&self) -> Result<Stats, Error> {
        let mut stats = Stats::default();
        if let Some(c) = self.locate("cpuacct").filter(|c| !c.is_v2()) {
            stats.cpu.usage = stats_v1::cpu_usage(&c.dir)?;
            if let Some(cpu) = self.locate("cpu").filter(|c| !c.is_v2()) {
                stats.cpu.throttling = stats_v1::cpu_throttling(&cpu.dir)?;
            }
        } else if let Some(c) = self.v2() {
            stats.cpu = stats_v2::cpu(&c.dir)?;
        }
        if let Some(c) = self.locate("memory") {
            stats.memory = if c.is_v2() {
                stats_v2::memory(&c.dir)?
            } else {
                stats_v1::memory(&c.dir)?
            };
        }
        if let Some(c) = self.locate("pids") {
            stats.pids = stats_v1::pids(&c.dir)?;
        }
        if let Some(c) = self.locate("blkio") {
            stats.blkio = stats_v1::blkio(&c.dir)?;
        } else if let Some(c) = self.locate("io") {
            stats.blkio = stats_v2::io(&c.dir)?;
        }
        if let Some(c) = self.locate("hugetlb") {
            stats.hugetlb = if c.is_v2() {
                stats_v2::hugetlb(&c.dir)?
            } else {
                stats_v1::hugetlb(&c.dir)?
            };
        }
        Ok(stats)
    }

    /// How many times the OOM killer killed a task in this cgroup (v1
    /// memory.oom_control `oom_kill`, v2 memory.events `oom_kill`).
    pub fn oom_kill_count(&self) -> Result<u64, Error> {
        let c = self.require("memory", "oom_kill_count")?;
        Ok(if c.is_v2() {
            v2::oom_kill_count(&c.dir)?
        } else {
            v1::oom_kill_count(&c.dir)?
        })
    }

    /// Removes the cgroup (and any child cgroups) in every hierarchy,
    /// retrying briefly on EBUSY. Missing directories are fine. Every
    /// hierarchy is attempted even after a failure.
    pub fn destroy(&self) -> Result<(), Error> {
        let deadline = Instant::now() + DESTROY_TIMEOUT;
        let mut errors: Vec<Error> = self
            .cgroups
            .iter()
            .filter_map(|c| fs::remove_cgroup_dir(&c.dir, deadline).err())
            .map(Error::from)
            .collect();
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            n => Err(Error::Destroy {
                first: Box::new(errors.remove(0)),
                more: n - 1,
            }),
        }
    }
}

/// Reads cgroup.procs of `dir` and all its descendants into `out`.
fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<(), FsError> {
    let path = dir.join("cgroup.procs");
    let text = fs::read(&path)?;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let pid = line.trim().parse().map_err(|_| FsError::Parse {
            path: path.clone(),
            content: line.to_string(),
            reason: "expected a pid".to_string(),
        })?;
        out.push(pid);
    }
    for child in fs::child_dirs(dir)? {
        collect_pids(&child, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod manager_tests;
