//! `/dev` inside the container: the default device nodes every container gets, the config's
//! `linux.devices`, and the standard symlinks (`/dev/fd`, `/dev/stdin`, `/dev/ptmx`, ...).

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chown, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use super::mounts::{create_mount_point, io_err, sys_err};
use super::{paths, RootfsError};

/// The devices the runtime spec requires in every container (config-linux.md "Default Devices").
pub fn defaults() -> Vec<(PathBuf, u64, u64)> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(p, maj, min)| (PathBuf::from(p), maj, min))
    .collect()
}

/// The device cgroup rules every container gets after the config's own, as runc adds them
/// (its `AllowedDevices`): mknod of any character or block device (CAP_MKNOD still decides;
/// opening the node is what the cgroup refuses), the default devices, `/dev/console`,
/// `/dev/ptmx` and the ptys, and each of `linux.devices`.
pub fn cgroup_rules(devices: &[LinuxDevice]) -> Vec<LinuxDeviceCgroup> {
    let rule = |major: i64, minor: Option<i64>| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(LinuxDeviceType::C));
        r.set_major(Some(major));
        r.set_minor(minor);
        r.set_access(Some("rwm".to_string()));
        r
    };
    let mknod = |typ: LinuxDeviceType| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_access(Some("m".to_string()));
        r
    };
    let mut rules = vec![mknod(LinuxDeviceType::C), mknod(LinuxDeviceType::B)];
    rules.extend(
        defaults()
            .into_iter()
            .map(|(_, major, minor)| rule(major as i64, Some(minor as i64))),
    );
    rules.push(rule(5, Some(1))); // /dev/console
    rules.push(rule(5, Some(2))); // /dev/ptmx
    rules.push(rule(136, None)); // /dev/pts/*
                                 // A FIFO is no device: the device cgroup has nothing to say about it.
    rules.extend(
        devices
            .iter()
            .filter(|d| d.typ() != LinuxDeviceType::P)
            .map(LinuxDeviceCgroup::from),
    );
    rules
}

/// Creates the default devices and `devices` below `root`.
pub fn create(root: &Path, devices: &[LinuxDevice], in_userns: bool) -> Result<(), RootfsError> {
    for (path, major, minor) in defaults() {
        if devices.iter().any(|d| d.path() == &path) {
            continue;
        }
        let dev = Device {
            path,
            kind: SFlag::S_IFCHR,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        dev.create(root, in_userns)?;
    }
    for d in devices {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(RootfsError::Config(format!(
                    "device {}: type \"a\" cannot be created",
                    d.path().display()
                )))
            }
        };
        let dev = Device {
            path: d.path().clone(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        dev.create(root, in_userns)?;
    }
    Ok(())
}

struct Device {
    path: PathBuf,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl Device {
    fn create(&self, root: &Path, in_userns: bool) -> Result<(), RootfsError> {
        let dest = paths::resolve(root, &self.path)?;
        let what = || format!("creating device {}", self.path.display());
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(what()))?;
        }
        let _ = std::fs::remove_file(&dest);
        // mknod of a device is not allowed in a user namespace (a FIFO is): bind the host's node.
        if in_userns && self.kind != SFlag::S_IFIFO {
            create_mount_point(&dest, false)?;
            return mount(
                Some(&self.path),
                &dest,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys_err(what()));
        }
        let mode = Mode::from_bits_truncate(self.mode & 0o7777);
        mknod(&dest, self.kind, mode, makedev(self.major, self.minor)).map_err(sys_err(what()))?;
        chown(
            &dest,
            Some(Uid::from_raw(self.uid)),
            Some(Gid::from_raw(self.gid)),
        )
        .map_err(sys_err(what()))
    }
}

/// The symlinks every Linux `/dev` has.
pub fn symlinks(root: &Path) -> Result<(), RootfsError> {
    let dev = root.join("dev");
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    if dev.join("pts/ptmx").exists() {
        let _ = std::fs::remove_file(dev.join("ptmx"));
        links.push(("pts/ptmx", "ptmx"));
    }
    for (target, name) in links {
        let path = dev.join(name);
        match symlink(target, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(format!("creating {}", path.display()))(e)),
        }
    }
    Ok(())
}
