//! The system calls that neither `nix` nor `rustix` offers, each wrapped once.

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: marks every descriptor from `first` up close-on-exec.
pub fn cloexec_from(first: u32) -> std::io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range takes three integers and touches only this process's descriptor table;
    // with CLOSE_RANGE_CLOEXEC it closes nothing, so no descriptor owned elsewhere is invalidated.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, prio)`: the I/O priority of the calling process.
pub fn ioprio_set_self(prio: i32) -> std::io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    // SAFETY: ioprio_set takes three integers and changes only the calling process's I/O
    // priority.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The kernel's `struct sched_attr` (version 1, with utilization clamps).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SchedAttr {
    pub size: u32,
    pub sched_policy: u32,
    pub sched_flags: u64,
    pub sched_nice: i32,
    pub sched_priority: u32,
    pub sched_runtime: u64,
    pub sched_deadline: u64,
    pub sched_period: u64,
    pub sched_util_min: u32,
    pub sched_util_max: u32,
}

/// `sched_setattr(0, attr, 0)`: the scheduling policy of the calling thread.
pub fn sched_setattr_self(attr: &SchedAttr) -> std::io::Result<()> {
    let mut attr = *attr;
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `attr` is a valid, fully initialised sched_attr whose `size` field says how much
    // of it the kernel may read; it outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The kernel's `struct clone_args` (clone3, version 2 with `cgroup`).
#[repr(C)]
#[derive(Debug, Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `clone3` with `CLONE_INTO_CGROUP` and no new stack: like fork(2) it returns twice, 0 in the
/// child (which starts in the cgroup2 directory `cgroup_dir`, with no migration) and the child's
/// pid in the parent. `flags` are clone flags (namespaces); the child signals SIGCHLD at exit.
///
/// # Safety
/// As for fork(2): the calling process must be single-threaded, and the child, running on a
/// copy of the caller's stack, must end in execve or `_exit` without returning into code that
/// assumes it is the parent.
pub unsafe fn fork_into_cgroup(
    flags: u64,
    cgroup_dir: std::os::fd::BorrowedFd<'_>,
) -> std::io::Result<libc::pid_t> {
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let args = CloneArgs {
        flags: flags | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: std::os::fd::AsRawFd::as_raw_fd(&cgroup_dir) as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size given, alive for the call; with no stack
    // the child continues on a copy of this stack, which the caller's contract makes sound.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret as libc::pid_t)
    }
}

/// `set_mempolicy(mode, nodemask, maxnode)`: the NUMA memory policy of the calling thread.
pub fn set_mempolicy_self(mode: i32, nodemask: &[libc::c_ulong]) -> std::io::Result<()> {
    let maxnode = (nodemask.len() * libc::c_ulong::BITS as usize) as libc::c_ulong;
    let ptr = if nodemask.is_empty() {
        std::ptr::null()
    } else {
        nodemask.as_ptr()
    };
    // SAFETY: `ptr` is null or points to `nodemask`, whose `maxnode` bits the kernel may read;
    // it outlives the call, which changes only the calling thread's policy.
    let ret = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The kernel's `struct mount_attr` (mount_setattr(2)).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

/// `MOUNT_ATTR_*` bits of mount_setattr(2).
pub mod mount_attr {
    pub const RDONLY: u64 = 0x0000_0001;
    pub const NOSUID: u64 = 0x0000_0002;
    pub const NODEV: u64 = 0x0000_0004;
    pub const NOEXEC: u64 = 0x0000_0008;
    /// The mask of the three atime settings below.
    pub const ATIME: u64 = 0x0000_0070;
    pub const RELATIME: u64 = 0x0000_0000;
    pub const NOATIME: u64 = 0x0000_0010;
    pub const STRICTATIME: u64 = 0x0000_0020;
    pub const NODIRATIME: u64 = 0x0000_0080;
    pub const IDMAP: u64 = 0x0010_0000;
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], attr)`: changes the attributes of the
/// mount behind `fd` (an `O_PATH` descriptor of a mount point, or a detached mount from
/// open_tree), and with `recursive` of every mount below it.
pub fn mount_setattr(
    fd: std::os::fd::BorrowedFd<'_>,
    recursive: bool,
    attr: &MountAttr,
) -> std::io::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: the path is a NUL-terminated empty string, `attr` is a valid mount_attr of the
    // size given, and both outlive the call, which changes only the mounts behind `fd`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `rt_sigaction(signo, SIG_DFL)` straight to the kernel: the only way to reset signals 32 and
/// 33, which glibc keeps for itself and refuses in sigaction(3) (an ignored one is inherited
/// across execve all the same).
pub fn default_signal_action(signo: libc::c_int) -> std::io::Result<()> {
    /// The kernel's `struct sigaction` on x86_64 and aarch64: handler, flags, restorer, mask.
    #[repr(C)]
    struct KernelSigaction {
        handler: libc::c_ulong,
        flags: libc::c_ulong,
        restorer: libc::c_ulong,
        mask: u64,
    }
    let action = KernelSigaction {
        handler: 0, // SIG_DFL
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: `action` is a valid kernel sigaction with SIG_DFL, which installs no handler (so
    // no restorer is needed), alive for the call; no old action is asked for; the size of the
    // kernel's signal set is 8 bytes.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signo,
            &action as *const KernelSigaction,
            std::ptr::null_mut::<KernelSigaction>(),
            std::mem::size_of::<u64>(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
