//! The `bpf(2)` calls behind cgroup v2 device control: load a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program, attach it to a cgroup directory
//! (`BPF_F_ALLOW_MULTI`), and detach the programs that were attached there
//! before, so that re-applying rules replaces them (as runc does).
//!
//! Neither nix nor rustix wraps `bpf(2)`, so the calls go through
//! `libc::syscall`; each `unsafe` block says why it is sound.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::libc;

use crate::device_filter::Insn;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// A failed `bpf(2)` operation.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// Opening the cgroup directory failed.
    #[error("opening {} for the device filter: {}", path.display(), err)]
    Open {
        /// The cgroup directory.
        path: PathBuf,
        /// The underlying error.
        err: nix::Error,
    },
    /// A bpf command failed.
    #[error("bpf({command}) for the device filter of {}: {}{}", path.display(), err.desc(), verifier(log))]
    Syscall {
        /// Which command (`BPF_PROG_LOAD`...).
        command: &'static str,
        /// The cgroup directory.
        path: PathBuf,
        /// The errno.
        err: nix::Error,
        /// The verifier log, for a failed load.
        log: String,
    },
}

fn verifier(log: &str) -> String {
    if log.trim().is_empty() {
        String::new()
    } else {
        format!(" (verifier: {})", log.trim())
    }
}

/// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH / BPF_PROG_DETACH.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// `union bpf_attr` for BPF_PROG_QUERY.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// `union bpf_attr` for BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// Calls `bpf(cmd, attr, sizeof attr)`.
///
/// # Safety
/// `attr` must be the `bpf_attr` layout the kernel expects for `cmd`, and
/// every pointer stored in it must be valid for the kernel to read (or,
/// for output buffers, write) for the duration of the call.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> nix::Result<libc::c_long> {
    // SAFETY: guaranteed by the caller; the size passed is that of `T`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(nix::Error::last())
    } else {
        Ok(ret)
    }
}

/// Loads `program` and attaches it to the cgroup `dir`, then detaches
/// every device program that was attached there before.
pub fn replace_device_filter(dir: &Path, program: &[Insn]) -> Result<(), BpfError> {
    let syscall_err = |command, err, log: String| BpfError::Syscall {
        command,
        path: dir.to_path_buf(),
        err,
        log,
    };
    let cgroup = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|err| BpfError::Open {
        path: dir.to_path_buf(),
        err,
    })?;
    let old = query(&cgroup).map_err(|e| syscall_err("BPF_PROG_QUERY", e, String::new()))?;
    let prog = load(program).map_err(|(e, log)| syscall_err("BPF_PROG_LOAD", e, log))?;
    let mut attach = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    // SAFETY: AttachAttr is the BPF_PROG_ATTACH layout; it holds no pointers
    // and both fds are open for the call.
    unsafe { bpf(BPF_PROG_ATTACH, &mut attach) }
        .map_err(|e| syscall_err("BPF_PROG_ATTACH", e, String::new()))?;
    for id in old {
        let mut get = GetFdAttr {
            prog_id: id,
            ..GetFdAttr::default()
        };
        // SAFETY: GetFdAttr is the BPF_PROG_GET_FD_BY_ID layout, no pointers.
        let fd = match unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut get) } {
            Ok(fd) => fd,
            // Detached meanwhile by someone else: nothing to do.
            Err(nix::Error::ENOENT) => continue,
            Err(e) => return Err(syscall_err("BPF_PROG_GET_FD_BY_ID", e, String::new())),
        };
        // SAFETY: the kernel just returned this fd to us, it is open and
        // owned by nobody else.
        let old_prog = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let mut detach = AttachAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_bpf_fd: old_prog.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..AttachAttr::default()
        };
        // SAFETY: AttachAttr is the BPF_PROG_DETACH layout; both fds are open.
        match unsafe { bpf(BPF_PROG_DETACH, &mut detach) } {
            Ok(_) | Err(nix::Error::ENOENT) => {}
            Err(e) => return Err(syscall_err("BPF_PROG_DETACH", e, String::new())),
        }
    }
    Ok(())
}

/// The ids of the device programs attached directly to `cgroup`.
fn query(cgroup: &OwnedFd) -> nix::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..QueryAttr::default()
    };
    // SAFETY: QueryAttr is the BPF_PROG_QUERY layout; `prog_ids` points to
    // `prog_cnt` writable u32s that outlive the call.
    unsafe { bpf(BPF_PROG_QUERY, &mut attr) }?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

/// Loads a device program; on failure, loads it again with the verifier
/// log on, and returns that log with the error.
fn load(program: &[Insn]) -> Result<OwnedFd, (nix::Error, String)> {
    load_with_log(program, 0).or_else(|(first, _)| match load_with_log(program, 1) {
        Ok(fd) => Ok(fd),
        Err((_, log)) => Err((first, log)),
    })
}

fn load_with_log(program: &[Insn], log_level: u32) -> Result<OwnedFd, (nix::Error, String)> {
    let license = c"Apache-2.0";
    let mut log = vec![0u8; if log_level > 0 { 256 * 1024 } else { 0 }];
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"berth_device");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: program.len() as u32,
        insns: program.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level,
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name: name,
        ..ProgLoadAttr::default()
    };
    // SAFETY: ProgLoadAttr is the BPF_PROG_LOAD layout; `insns` points to
    // `insn_cnt` `struct bpf_insn`s (Insn is repr(C) with the same layout),
    // `license` to a NUL-terminated string, `log_buf` (when not 0) to
    // `log_size` writable bytes; all outlive the call.
    match unsafe { bpf(BPF_PROG_LOAD, &mut attr) } {
        // SAFETY: the kernel just returned this fd to us, it is open and
        // owned by nobody else.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            Err((e, String::from_utf8_lossy(&log[..end]).into_owned()))
        }
    }
}
