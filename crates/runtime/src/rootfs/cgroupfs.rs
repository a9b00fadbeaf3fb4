//! The `cgroup` mount type: the container's view of its own control groups at `/sys/fs/cgroup`.
//!
//! In a cgroup namespace each hierarchy is mounted afresh and its root is the container's cgroup.
//! Without one, the container's cgroup directories are bind mounted from the host. On a hybrid host
//! (v1 controllers plus a v2 `unified` hierarchy) the layout of the host is reproduced under a tmpfs.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use super::mounts::{io_err, remount, sys_err};
use super::options::Options;
use super::RootfsError;

/// A cgroup hierarchy mounted on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hierarchy {
    mount_point: PathBuf,
    /// `cgroup` or `cgroup2`.
    fstype: String,
    /// Superblock options naming the controllers (`memory`, `name=systemd`), without rw/ro.
    options: String,
}

/// The host's cgroup hierarchies: each superblock once, where `/sys/fs/cgroup` has it. A
/// hierarchy mounted again elsewhere (a test's, a tool's, another runtime's bind) is not the
/// host's layout: reproducing it made containers fail with ENOENT while one existed.
fn hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    let all = all_cgroup_mounts(mountinfo);
    let standard = |h: &Hierarchy| {
        h.mount_point == Path::new("/sys/fs/cgroup")
            || h.mount_point.parent() == Some(Path::new("/sys/fs/cgroup"))
    };
    let mut out: Vec<Hierarchy> = Vec::new();
    let preferred = all.iter().filter(|h| standard(h));
    let others = all.iter().filter(|h| !standard(h));
    for h in preferred.chain(others) {
        if !out
            .iter()
            .any(|o| o.fstype == h.fstype && o.options == h.options)
        {
            out.push(h.clone());
        }
    }
    out
}

fn all_cgroup_mounts(mountinfo: &str) -> Vec<Hierarchy> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let mount_point = pre.split(' ').nth(4)?;
            let mut post = post.split(' ');
            let fstype = post.next()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            let options = post
                .nth(1)
                .unwrap_or("")
                .split(',')
                .filter(|o| *o != "rw" && *o != "ro")
                .collect::<Vec<_>>()
                .join(",");
            Some(Hierarchy {
                mount_point: PathBuf::from(mount_point),
                fstype: fstype.to_string(),
                options,
            })
        })
        .collect()
}

/// This process's cgroup path in `hierarchy`, from /proc/self/cgroup.
fn own_cgroup(proc_cgroup: &str, h: &Hierarchy) -> Option<String> {
    proc_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if h.fstype == "cgroup2" {
            controllers.is_empty()
        } else {
            let mine: Vec<&str> = controllers.split(',').collect();
            h.options.split(',').any(|o| mine.contains(&o))
        };
        matches.then(|| path.to_string())
    })
}

/// Where [`mount_cgroups`] puts hierarchy `h` below `dest`: `dest` itself on a pure cgroup2
/// host, else `dest/<name of the host's mount point>` (`memory`, `cpu,cpuacct`, `unified`).
fn destination(dest: &Path, h: &Hierarchy, pure_v2: bool) -> PathBuf {
    if pure_v2 {
        return dest.to_path_buf();
    }
    let name = h
        .mount_point
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_default();
    dest.join(name)
}

/// The bind mounts [`mount_cgroups`] makes when the container has no cgroup namespace: for each
/// host hierarchy, its destination below `dest` and its mount point on the host (checkpoint and
/// restore name them to criu as external mounts).
pub(crate) fn bind_destinations(dest: &Path) -> std::io::Result<Vec<(PathBuf, PathBuf)>> {
    let all = hierarchies(berth_cgroups::cgroup_mounts().map_err(std::io::Error::other)?);
    let pure_v2 = all.iter().all(|h| h.fstype != "cgroup");
    Ok(all
        .iter()
        .map(|h| (destination(dest, h, pure_v2), h.mount_point.clone()))
        .collect())
}

/// Mounts the container's view of its cgroups on `dest`. In a cgroup namespace each hierarchy is
/// mounted afresh, except a v1 one in a user namespace, whose superblock belongs to the host's
/// user namespace (mounting it again is EBUSY): that one, like every hierarchy without a cgroup
/// namespace, is the container's directory bound from the host's hierarchy, as runc does.
pub(super) fn mount_cgroups(
    dest: &Path,
    opts: &Options,
    target: &super::mounts::Target<'_>,
) -> Result<(), RootfsError> {
    let read = |p: &str| std::fs::read_to_string(p).map_err(io_err(format!("reading {p}")));
    let all = hierarchies(berth_cgroups::cgroup_mounts().map_err(|e| {
        io_err("reading /proc/self/mountinfo".to_string())(std::io::Error::other(e))
    })?);
    let proc_cgroup = read("/proc/self/cgroup")?;
    // Where the container's cgroup is in the host's hierarchies (inside a cgroup namespace
    // /proc/self/cgroup says only "/").
    let host_cgroup = target.host_cgroup.unwrap_or(&proc_cgroup);
    let in_cgroupns = proc_cgroup.lines().all(|l| l.ends_with(":/"));
    let flags = (opts.flags & !MsFlags::MS_RDONLY)
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC;
    let readonly = opts.flags.contains(MsFlags::MS_RDONLY);
    std::fs::create_dir_all(dest).map_err(io_err(format!("creating {}", dest.display())))?;
    let v1: Vec<&Hierarchy> = all.iter().filter(|h| h.fstype == "cgroup").collect();
    let pure_v2 = v1.is_empty();
    if !pure_v2 {
        mount(Some("tmpfs"), dest, Some("tmpfs"), flags, Some("mode=755"))
            .map_err(sys_err(format!("mounting tmpfs on {}", dest.display())))?;
    }
    for h in &all {
        let sub = destination(dest, h, pure_v2);
        std::fs::create_dir_all(&sub).map_err(io_err(format!("creating {}", sub.display())))?;
        let what = || format!("mounting cgroup hierarchy on {}", sub.display());
        let fresh = in_cgroupns && !(target.in_userns && h.fstype == "cgroup");
        if fresh {
            let data = (!h.options.is_empty()).then_some(h.options.as_str());
            let ro = if readonly {
                MsFlags::MS_RDONLY
            } else {
                MsFlags::empty()
            };
            mount(
                Some("cgroup"),
                &sub,
                Some(h.fstype.as_str()),
                flags | ro,
                data,
            )
            .map_err(sys_err(what()))?;
        } else {
            let own = own_cgroup(host_cgroup, h).unwrap_or_else(|| "/".to_string());
            let source = h.mount_point.join(own.trim_start_matches('/'));
            mount(
                Some(&source),
                &sub,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys_err(what()))?;
            if readonly {
                remount(&sub, flags | MsFlags::MS_RDONLY, &source).map_err(sys_err(what()))?;
            }
        }
        // A co-mounted hierarchy (`cpu,cpuacct`) is also reachable by each controller's name.
        if let Some(name) = sub
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.contains(','))
        {
            for part in name.split(',') {
                let _ = std::os::unix::fs::symlink(name, dest.join(part));
            }
        }
    }
    if !pure_v2 && readonly {
        remount(dest, flags | MsFlags::MS_RDONLY, dest)
            .map_err(sys_err(format!("making {} read-only", dest.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
35 25 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
36 25 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:16 - cgroup cgroup rw,cpu,cpuacct
37 25 0:32 / /sys/fs/cgroup/unified rw,nosuid shared:17 - cgroup2 cgroup2 rw
38 25 0:33 / /proc rw - proc proc rw
39 25 0:31 /x /tmp/test/cpu rw,nosuid shared:18 - cgroup cgroup rw,cpu,cpuacct";

    #[test]
    fn finds_hierarchies() {
        let h = hierarchies(HYBRID);
        // The second mount of cpu,cpuacct (under /tmp) is not the host's layout.
        assert_eq!(h.len(), 3);
        assert_eq!(h[1].mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(h[1].options, "cpu,cpuacct");
        assert_eq!(h[2].fstype, "cgroup2");
        let proc_cgroup = "4:memory:/a/b\n2:cpu,cpuacct:/c\n0::/d";
        assert_eq!(own_cgroup(proc_cgroup, &h[0]).as_deref(), Some("/a/b"));
        assert_eq!(own_cgroup(proc_cgroup, &h[1]).as_deref(), Some("/c"));
        assert_eq!(own_cgroup(proc_cgroup, &h[2]).as_deref(), Some("/d"));
    }
}
