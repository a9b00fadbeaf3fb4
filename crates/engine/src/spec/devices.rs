//! The devices of a container's OCI config: the device cgroup rules and, for `--privileged`,
//! the host's device nodes.

use std::path::Path;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

/// One device cgroup rule (`c`haracter devices when a major is given, all devices otherwise).
pub(super) fn device_rule(
    allow: bool,
    major: Option<i64>,
    minor: Option<i64>,
    typ: Option<LinuxDeviceType>,
) -> LinuxDeviceCgroup {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(allow)
        .set_typ(typ)
        .set_major(major)
        .set_minor(minor)
        .set_access(Some("rwm".to_string()));
    rule
}

/// Docker's device cgroup for unprivileged containers (moby's default spec): deny all, then
/// allow zero, null, urandom, random, tty and console, and deny `c 10:229` (fuse) explicitly;
/// the runtime appends full, ptmx, the ptys and `linux.devices`, as runc does.
pub(super) fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let char_dev = |allow: bool, major: i64, minor: i64| {
        device_rule(allow, Some(major), Some(minor), Some(LinuxDeviceType::C))
    };
    vec![
        device_rule(false, None, None, None),
        char_dev(true, 1, 5),
        char_dev(true, 1, 3),
        char_dev(true, 1, 9),
        char_dev(true, 1, 8),
        char_dev(true, 5, 0),
        char_dev(true, 5, 1),
        char_dev(false, 10, 229),
    ]
}

/// The device nodes under `dir` (the host's `/dev`) as `linux.devices` entries, as containerd's
/// `HostDevices` lists them for `--privileged`: recursively, skipping the directories of other
/// mounts (`pts`, `shm`, `fd`, `mqueue`) and of LXC/udev bookkeeping, `console` (the container
/// gets its own), symlinks, fifos and anything that vanishes meanwhile.
pub(super) fn host_devices(dir: &Path) -> Vec<LinuxDevice> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            let skip = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
            if !skip.iter().any(|s| name == *s) {
                out.extend(host_devices(&path));
            }
            continue;
        }
        if name == "console" {
            continue;
        }
        let kind = if ft.is_char_device() {
            LinuxDeviceType::C
        } else if ft.is_block_device() {
            LinuxDeviceType::B
        } else {
            continue;
        };
        let rdev = meta.rdev();
        let mut device = LinuxDevice::default();
        device
            .set_path(path)
            .set_typ(kind)
            .set_major(nix::sys::stat::major(rdev) as i64)
            .set_minor(nix::sys::stat::minor(rdev) as i64)
            .set_file_mode(Some(meta.mode() & 0o777))
            .set_uid(Some(meta.uid()))
            .set_gid(Some(meta.gid()));
        out.push(device);
    }
    out
}
