//! Discovering the cgroup hierarchies: parses `/proc/self/mountinfo` and
//! `/proc/self/cgroup` into a [`Layout`] (which hierarchies are mounted,
//! where, with which controllers, and where this process sits in each).
//!
//! Everything here except [`Layout::current`] is pure, so it is unit-tested
//! on sample text for legacy v1 (combined `cpu,cpuacct`), hybrid and pure v2.

use std::path::{Component, Path, PathBuf};

/// The v1 controllers the kernel knows; any `name=...` option also counts
/// as a (named, controller-less) hierarchy.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// A malformed `/proc/self/mountinfo` or `/proc/self/cgroup`.
#[derive(Debug, thiserror::Error)]
pub enum MountinfoError {
    /// A file under /proc could not be read.
    #[error("reading {path}: {err}")]
    Read {
        /// The file.
        path: &'static str,
        /// The underlying error.
        err: std::io::Error,
    },
    /// A line did not have the expected fields.
    #[error("malformed line in {file}: {line:?}")]
    Malformed {
        /// Which file (`mountinfo` or `cgroup`).
        file: &'static str,
        /// The line.
        line: String,
    },
    /// No cgroup hierarchy is mounted at all.
    #[error("no cgroup v1 or cgroup2 file system is mounted (see /proc/self/mountinfo)")]
    NoHierarchy,
}

/// One line of `/proc/self/mountinfo`, the fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The path inside the file system that is mounted (field 4).
    pub root: PathBuf,
    /// Where it is mounted (field 5).
    pub mount_point: PathBuf,
    /// File-system type (`cgroup`, `cgroup2`, ...).
    pub fs_type: String,
    /// Super-block options (for cgroup v1: the controllers).
    pub super_options: Vec<String>,
}

/// One line of `/proc/self/cgroup`: `id:controllers:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroup {
    /// Hierarchy id (0 for cgroup2).
    pub hierarchy_id: u32,
    /// Controllers bound to the hierarchy (empty for cgroup2).
    pub controllers: Vec<String>,
    /// The process's cgroup in that hierarchy.
    pub path: PathBuf,
}

/// cgroup v1 or v2 hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// A legacy (v1) hierarchy, one or more controllers per mount.
    V1,
    /// The unified (v2) hierarchy.
    V2,
}

/// How the machine's cgroups are set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only v1 hierarchies.
    Legacy,
    /// v1 hierarchies plus a cgroup2 mount (usually /sys/fs/cgroup/unified).
    Hybrid,
    /// Only cgroup2.
    Unified,
}

/// A mounted hierarchy and where this process sits in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// v1 or v2.
    pub version: Version,
    /// v1: the controllers bound here (`cpu`, `cpuacct`, `name=systemd`...).
    /// v2: filled in later from the root's `cgroup.controllers`.
    pub controllers: Vec<String>,
    /// Where the hierarchy is mounted.
    pub mount_point: PathBuf,
    /// The cgroup path that is mounted there (`/` unless in a container).
    pub mount_root: PathBuf,
    /// This process's cgroup in this hierarchy (from /proc/self/cgroup).
    pub own_path: PathBuf,
}

impl Hierarchy {
    /// The directory for an OCI cgroupsPath in this hierarchy.
    ///
    /// Absolute paths are taken from the hierarchy's mount point; relative
    /// ones from this process's own cgroup (as runc does). `cgroups_path`
    /// must already be checked to hold no `..`.
    pub fn resolve(&self, cgroups_path: &Path) -> PathBuf {
        let rel: PathBuf = cgroups_path
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        if cgroups_path.is_absolute() {
            return self.mount_point.join(rel);
        }
        let own = self
            .own_path
            .strip_prefix(&self.mount_root)
            .unwrap_or(&self.own_path);
        let own: PathBuf = own
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        self.mount_point.join(own).join(rel)
    }

    /// Whether `controller` is bound to this hierarchy.
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// All mounted cgroup hierarchies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// v1 hierarchies in mount order, then the cgroup2 one if mounted.
    pub hierarchies: Vec<Hierarchy>,
}

/// The lines of `/proc/self/mountinfo` that mount cgroup file systems, kept once known.
static CGROUP_MOUNTS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The lines of mountinfo `text` that mount a cgroup or cgroup2 file system.
fn cgroup_lines(text: &str) -> String {
    text.lines()
        .filter(|l| {
            l.split_once(" - ").is_some_and(|(_, post)| {
                post.starts_with("cgroup ") || post.starts_with("cgroup2 ")
            })
        })
        .flat_map(|l| [l, "\n"])
        .collect()
}

/// The lines of `/proc/self/mountinfo` that mount cgroup hierarchies, read once per process
/// (or given by [`preset_cgroup_mounts`]). The whole table grows by two mounts per container
/// (its root file system and its network namespace) and costs about 7 ms to read at 2,000
/// mounts; the cgroup mounts do not change while a process lives (a hierarchy mounted later is
/// seen by the next process).
pub fn cgroup_mounts() -> Result<&'static str, MountinfoError> {
    if let Some(lines) = CGROUP_MOUNTS.get() {
        return Ok(lines);
    }
    let path = "/proc/self/mountinfo";
    let text = std::fs::read_to_string(path).map_err(|err| MountinfoError::Read { path, err })?;
    Ok(CGROUP_MOUNTS.get_or_init(|| cgroup_lines(&text)))
}

/// Gives this process the cgroup mount lines another one read (berthd's, for the monitors
/// it starts, which are in a copy of its mount namespace); lines that mount no cgroup are
/// dropped. Without effect once they are known.
pub fn preset_cgroup_mounts(mountinfo: &str) {
    let _ = CGROUP_MOUNTS.set(cgroup_lines(mountinfo));
}

impl Layout {
    /// This process's layout: its cgroup mounts ([`cgroup_mounts`]) and `/proc/self/cgroup`.
    pub fn current() -> Result<Self, MountinfoError> {
        let path = "/proc/self/cgroup";
        let own =
            std::fs::read_to_string(path).map_err(|err| MountinfoError::Read { path, err })?;
        Self::parse(cgroup_mounts()?, &own)
    }

    /// Builds the layout from the text of mountinfo and /proc/self/cgroup.
    pub fn parse(mountinfo: &str, proc_cgroup: &str) -> Result<Self, MountinfoError> {
        let mounts = parse_mountinfo(mountinfo)?;
        let procs = parse_proc_cgroup(proc_cgroup)?;
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        let mut v2: Option<Hierarchy> = None;
        for m in mounts {
            match m.fs_type.as_str() {
                "cgroup" => {
                    let controllers: Vec<String> = m
                        .super_options
                        .iter()
                        .filter(|o| V1_CONTROLLERS.contains(&o.as_str()) || o.starts_with("name="))
                        .cloned()
                        .collect();
                    if controllers.is_empty()
                        || hierarchies.iter().any(|h| h.controllers == controllers)
                    {
                        continue;
                    }
                    let own_path = procs
                        .iter()
                        .find(|p| {
                            p.hierarchy_id != 0
                                && p.controllers.iter().any(|c| controllers.contains(c))
                        })
                        .map_or_else(|| PathBuf::from("/"), |p| p.path.clone());
                    hierarchies.push(Hierarchy {
                        version: Version::V1,
                        controllers,
                        mount_point: m.mount_point,
                        mount_root: m.root,
                        own_path,
                    });
                }
                "cgroup2" if v2.is_none() => {
                    let own_path = procs
                        .iter()
                        .find(|p| p.hierarchy_id == 0 && p.controllers.is_empty())
                        .map_or_else(|| PathBuf::from("/"), |p| p.path.clone());
                    v2 = Some(Hierarchy {
                        version: Version::V2,
                        controllers: Vec::new(),
                        mount_point: m.mount_point,
                        mount_root: m.root,
                        own_path,
                    });
                }
                _ => {}
            }
        }
        hierarchies.extend(v2);
        if hierarchies.is_empty() {
            return Err(MountinfoError::NoHierarchy);
        }
        Ok(Self { hierarchies })
    }

    /// Legacy, hybrid or unified.
    pub fn mode(&self) -> Mode {
        let has_v2 = self.hierarchies.iter().any(|h| h.version == Version::V2);
        let has_v1_controller = self.hierarchies.iter().any(|h| {
            h.version == Version::V1 && h.controllers.iter().any(|c| !c.starts_with("name="))
        });
        match (has_v1_controller, has_v2) {
            (true, true) => Mode::Hybrid,
            (false, true) => Mode::Unified,
            _ => Mode::Legacy,
        }
    }
}

/// Parses `/proc/self/mountinfo` text.
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountEntry>, MountinfoError> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let malformed = || MountinfoError::Malformed {
            file: "mountinfo",
            line: line.to_string(),
        };
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields
            .iter()
            .position(|f| *f == "-")
            .ok_or_else(malformed)?;
        if sep < 6 || fields.len() < sep + 4 {
            return Err(malformed());
        }
        out.push(MountEntry {
            root: PathBuf::from(unescape(fields[3])),
            mount_point: PathBuf::from(unescape(fields[4])),
            fs_type: fields[sep + 1].to_string(),
            super_options: fields[sep + 3].split(',').map(str::to_string).collect(),
        });
    }
    Ok(out)
}

/// Parses `/proc/self/cgroup` text.
pub fn parse_proc_cgroup(text: &str) -> Result<Vec<ProcCgroup>, MountinfoError> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let malformed = || MountinfoError::Malformed {
            file: "cgroup",
            line: line.to_string(),
        };
        let mut parts = line.splitn(3, ':');
        let id = parts.next().ok_or_else(malformed)?;
        let controllers = parts.next().ok_or_else(malformed)?;
        let path = parts.next().ok_or_else(malformed)?;
        out.push(ProcCgroup {
            hierarchy_id: id.parse().map_err(|_| malformed())?,
            controllers: controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
            path: PathBuf::from(path),
        });
    }
    Ok(out)
}

/// Undoes mountinfo's octal escapes (`\040` for a space, etc.).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let octal = field
                .get(i + 1..i + 4)
                .filter(|d| d.bytes().all(|b| (b'0'..=b'7').contains(&b)))
                .and_then(|d| u8::from_str_radix(d, 8).ok());
            if let Some(v) = octal {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY_COMBINED: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 25 0:27 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
34 31 0:30 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
36 31 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpu,cpuacct
37 31 0:33 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,memory
38 31 0:34 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,net_cls,net_prio
39 31 0:35 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,cpuset,clone_children
";
    const LEGACY_COMBINED_CGROUP: &str = "\
12:cpuset:/
11:net_cls,net_prio:/
10:memory:/user.slice/user-1000.slice
9:cpu,cpuacct:/user.slice
1:name=systemd:/user.slice/user-1000.slice/session-2.scope
";

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
4:memory:/process_api/e1a4
2:cpuacct:/
1:cpu:/
0::/
";

    const UNIFIED: &str = "\
22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
26 22 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
    const UNIFIED_CGROUP: &str = "0::/user.slice/user-1000.slice/session-3.scope\n";

    #[test]
    fn legacy_with_combined_cpu_cpuacct() {
        let layout = Layout::parse(LEGACY_COMBINED, LEGACY_COMBINED_CGROUP).expect("parse");
        assert_eq!(layout.mode(), Mode::Legacy);
        assert_eq!(layout.hierarchies.len(), 5);
        let cpu = layout
            .hierarchies
            .iter()
            .find(|h| h.has("cpuacct"))
            .expect("cpu");
        assert!(cpu.has("cpu"));
        assert_eq!(cpu.mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(cpu.own_path, Path::new("/user.slice"));
        assert_eq!(
            cpu.resolve(Path::new("/berth/abc")),
            Path::new("/sys/fs/cgroup/cpu,cpuacct/berth/abc")
        );
        assert_eq!(
            cpu.resolve(Path::new("berth/abc")),
            Path::new("/sys/fs/cgroup/cpu,cpuacct/user.slice/berth/abc")
        );
        let cpuset = layout
            .hierarchies
            .iter()
            .find(|h| h.has("cpuset"))
            .expect("cpuset");
        assert_eq!(cpuset.controllers, vec!["cpuset".to_string()]);
        let systemd = layout
            .hierarchies
            .iter()
            .find(|h| h.has("name=systemd"))
            .expect("systemd");
        assert_eq!(systemd.version, Version::V1);
    }

    #[test]
    fn hybrid_with_split_cpu_and_cpuacct() {
        let layout = Layout::parse(HYBRID, HYBRID_CGROUP).expect("parse");
        assert_eq!(layout.mode(), Mode::Hybrid);
        let v2 = layout.hierarchies.last().expect("v2");
        assert_eq!(v2.version, Version::V2);
        assert_eq!(v2.mount_point, Path::new("/sys/fs/cgroup/unified"));
        let mem = layout
            .hierarchies
            .iter()
            .find(|h| h.has("memory"))
            .expect("memory");
        assert_eq!(
            mem.resolve(Path::new("berth/x")),
            Path::new("/sys/fs/cgroup/memory/process_api/e1a4/berth/x")
        );
        assert_eq!(
            mem.resolve(Path::new("/berth/x")),
            Path::new("/sys/fs/cgroup/memory/berth/x")
        );
        let cpu = layout
            .hierarchies
            .iter()
            .find(|h| h.has("cpu"))
            .expect("cpu");
        assert!(!cpu.has("cpuacct"));
    }

    #[test]
    fn pure_unified() {
        let layout = Layout::parse(UNIFIED, UNIFIED_CGROUP).expect("parse");
        assert_eq!(layout.mode(), Mode::Unified);
        assert_eq!(layout.hierarchies.len(), 1);
        let h = &layout.hierarchies[0];
        assert_eq!(
            h.resolve(Path::new("a/b")),
            Path::new("/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope/a/b")
        );
    }

    #[test]
    fn mount_root_inside_container_is_stripped() {
        let mi = "50 40 0:30 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n";
        let cg = "4:memory:/docker/abc/inner\n";
        let layout = Layout::parse(mi, cg).expect("parse");
        let h = &layout.hierarchies[0];
        assert_eq!(
            h.resolve(Path::new("sub")),
            Path::new("/sys/fs/cgroup/memory/inner/sub")
        );
    }

    #[test]
    fn escapes_and_errors() {
        assert_eq!(unescape("/mnt/with\\040space"), "/mnt/with space");
        assert_eq!(unescape("/trailing\\"), "/trailing\\");
        assert!(parse_mountinfo("garbage line\n").is_err());
        assert!(parse_proc_cgroup("x:y\n").is_err());
        assert!(matches!(
            Layout::parse("1 0 0:1 / / rw - ext4 /dev/vda rw\n", ""),
            Err(MountinfoError::NoHierarchy)
        ));
    }
}
