//! Btrfs subvolumes through the ioctls of `linux/btrfs.h`: create one, snapshot one, delete one
//! (with the subvolumes nested in it), and read or set its read-only flag. No `btrfs` binary.
//!
//! A subvolume is a directory whose inode number is 256 (`BTRFS_FIRST_FREE_OBJECTID`); the
//! create, snapshot and delete ioctls are made on the directory that holds it, with its name.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const BTRFS_IOCTL_MAGIC: u8 = 0x94;
/// `BTRFS_PATH_NAME_MAX`: a name of `btrfs_ioctl_vol_args` holds this much and a NUL.
const PATH_NAME_MAX: usize = 4087;
/// `BTRFS_SUBVOL_NAME_MAX`: the same for `btrfs_ioctl_vol_args_v2`.
const SUBVOL_NAME_MAX: usize = 4039;
/// `BTRFS_SUBVOL_RDONLY`, in the flags of `BTRFS_IOC_SUBVOL_{GET,SET}FLAGS` and of a snapshot.
const SUBVOL_RDONLY: u64 = 1 << 1;
/// `BTRFS_FIRST_FREE_OBJECTID`: the inode number of a subvolume's root directory.
const FIRST_FREE_OBJECTID: u64 = 256;

/// `struct btrfs_ioctl_vol_args`.
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; PATH_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_vol_args_v2` (its unions as their largest member: `unused`, `name`).
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; SUBVOL_NAME_MAX + 1],
}

// Both are 4096 bytes in the kernel's headers; the ioctl numbers encode the size.
const _: () = assert!(std::mem::size_of::<VolArgs>() == 4096);
const _: () = assert!(std::mem::size_of::<VolArgsV2>() == 4096);

nix::ioctl_none!(ioc_sync, BTRFS_IOCTL_MAGIC, 8);
nix::ioctl_write_ptr!(ioc_subvol_create, BTRFS_IOCTL_MAGIC, 14, VolArgs);
nix::ioctl_write_ptr!(ioc_snap_destroy, BTRFS_IOCTL_MAGIC, 15, VolArgs);
nix::ioctl_write_ptr!(ioc_snap_create_v2, BTRFS_IOCTL_MAGIC, 23, VolArgsV2);
nix::ioctl_read!(ioc_subvol_getflags, BTRFS_IOCTL_MAGIC, 25, u64);
nix::ioctl_write_ptr!(ioc_subvol_setflags, BTRFS_IOCTL_MAGIC, 26, u64);

/// Whether `path` is on a btrfs filesystem.
pub fn on_btrfs(path: &Path) -> io::Result<bool> {
    let stat = nix::sys::statfs::statfs(path)?;
    Ok(stat.filesystem_type() == nix::sys::statfs::BTRFS_SUPER_MAGIC)
}

/// Whether `path` is a subvolume (not following a symlink).
pub fn is_subvolume(path: &Path) -> io::Result<bool> {
    let meta = fs::symlink_metadata(path)?;
    Ok(meta.is_dir() && meta.ino() == FIRST_FREE_OBJECTID)
}

/// Makes an empty subvolume `parent/name`.
pub fn create(parent: &Path, name: &OsStr) -> io::Result<()> {
    let dir = open_dir(parent)?;
    let mut args = VolArgs {
        fd: 0,
        name: [0; PATH_NAME_MAX + 1],
    };
    put_name(&mut args.name, name)?;
    // SAFETY: `dir` is an open descriptor for the call's duration and `args` is a live
    // `btrfs_ioctl_vol_args` (layout checked above) with a NUL-terminated name; the kernel
    // only reads it.
    unsafe { ioc_subvol_create(dir.as_raw_fd(), &args) }?;
    Ok(())
}

/// Makes `parent/name` a snapshot of subvolume `source`: writable, or read-only.
pub fn snapshot(source: &Path, parent: &Path, name: &OsStr, read_only: bool) -> io::Result<()> {
    let source = open_dir(source)?;
    let dir = open_dir(parent)?;
    let mut args = VolArgsV2 {
        fd: i64::from(source.as_raw_fd()),
        transid: 0,
        flags: if read_only { SUBVOL_RDONLY } else { 0 },
        unused: [0; 4],
        name: [0; SUBVOL_NAME_MAX + 1],
    };
    put_name(&mut args.name, name)?;
    // SAFETY: `dir` and `source` (whose number is in `args.fd`) stay open for the call, and
    // `args` is a live `btrfs_ioctl_vol_args_v2` (layout checked above) with a NUL-terminated
    // name, no qgroup pointer (`unused` is zero) and only the read-only flag; the kernel only
    // reads it.
    unsafe { ioc_snap_create_v2(dir.as_raw_fd(), &args) }?;
    Ok(())
}

/// Deletes subvolume `path`, and first the subvolumes nested in it (which a snapshot never
/// holds, but a container can make in its root). A read-only one is made writable for that, as
/// its nested subvolumes cannot be unlinked from it otherwise.
pub fn delete(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    match destroy(parent, name) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
            if is_read_only(path)? {
                set_read_only(path, false)?;
            }
            delete_nested(path)?;
            destroy(parent, name)
        }
        other => other,
    }
}

/// Deletes the subvolumes found below directory `dir` (not `dir` itself).
fn delete_nested(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let path = entry.path();
        if is_subvolume(&path)? {
            delete(&path)?;
        } else {
            delete_nested(&path)?;
        }
    }
    Ok(())
}

fn destroy(parent: &Path, name: &OsStr) -> io::Result<()> {
    let dir = open_dir(parent)?;
    let mut args = VolArgs {
        fd: 0,
        name: [0; PATH_NAME_MAX + 1],
    };
    put_name(&mut args.name, name)?;
    // SAFETY: `dir` is an open descriptor for the call's duration and `args` is a live
    // `btrfs_ioctl_vol_args` (layout checked above) with a NUL-terminated name; the kernel
    // only reads it.
    unsafe { ioc_snap_destroy(dir.as_raw_fd(), &args) }?;
    Ok(())
}

/// Whether subvolume `path` is read-only.
pub fn is_read_only(path: &Path) -> io::Result<bool> {
    let dir = open_dir(path)?;
    let mut flags = 0u64;
    // SAFETY: `dir` is an open descriptor for the call's duration and `flags` a live u64 the
    // kernel writes the subvolume's flags into.
    unsafe { ioc_subvol_getflags(dir.as_raw_fd(), &mut flags) }?;
    Ok(flags & SUBVOL_RDONLY != 0)
}

/// Makes subvolume `path` read-only, or writable again.
pub fn set_read_only(path: &Path, read_only: bool) -> io::Result<()> {
    let dir = open_dir(path)?;
    let mut flags = 0u64;
    // SAFETY: as in `is_read_only`.
    unsafe { ioc_subvol_getflags(dir.as_raw_fd(), &mut flags) }?;
    let flags = if read_only {
        flags | SUBVOL_RDONLY
    } else {
        flags & !SUBVOL_RDONLY
    };
    // SAFETY: `dir` is an open descriptor for the call's duration and `flags` a live u64 the
    // kernel reads.
    unsafe { ioc_subvol_setflags(dir.as_raw_fd(), &flags) }?;
    Ok(())
}

/// Commits the filesystem's transaction and wakes its cleaner (`BTRFS_IOC_SYNC`), which is
/// what reclaims the space of deleted subvolumes (otherwise at the next periodic commit, up to
/// 30 s later).
pub fn sync(path: &Path) -> io::Result<()> {
    let dir = open_dir(path)?;
    // SAFETY: `dir` is an open descriptor for the call's duration; the ioctl takes no argument.
    unsafe { ioc_sync(dir.as_raw_fd()) }?;
    Ok(())
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Copies `name` (one path component) into a zeroed name buffer, leaving its NUL.
fn put_name(buf: &mut [u8], name: &OsStr) -> io::Result<()> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.contains(&0) || bytes.contains(&b'/') {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let room = buf.len();
    match buf.get_mut(..bytes.len()) {
        Some(dst) if bytes.len() < room => {
            dst.copy_from_slice(bytes);
            Ok(())
        }
        _ => Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG)),
    }
}
