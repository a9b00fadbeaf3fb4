//! Loading a compiled [`Program`] into the calling thread with `seccomp(2)`.
//!
//! This runs in a forked child just before `execve`, so it allocates nothing and calls no
//! library beyond the raw syscall. Neither nix nor rustix wraps `seccomp(2)`, so the raw call
//! lives in [`seccomp_set_mode_filter`], the one place it is made.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use crate::{Error, Program};

impl Program {
    /// Loads the program into the calling thread (every thread, with `SECCOMP_FILTER_FLAG_TSYNC`)
    /// with `seccomp(SECCOMP_SET_MODE_FILTER)` and the flags of [`Program::flags`].
    ///
    /// When the program [uses notify](Program::uses_notify), returns the listener descriptor
    /// the kernel made (close-on-exec), for the seccomp agent: from now on, each notified
    /// syscall of this process and its children waits until a holder of the listener answers
    /// it, and fails with `ENOSYS` once nobody holds it any more. The caller must therefore
    /// hand it over (to its parent, which calls [`crate::agent::send_to_agent`]) with syscalls
    /// the program does not notify, and close its own copy. A process can have one listener:
    /// loading a second notify program fails with `EBUSY`. Returns `None` without notify.
    ///
    /// A single `seccomp(2)` call: it allocates nothing and makes no libseccomp calls, so it is
    /// safe to call in a forked child. Unless the caller has set `no_new_privs`, the kernel
    /// requires `CAP_SYS_ADMIN` (else `EACCES`).
    pub fn load(&self) -> Result<Option<OwnedFd>, Error> {
        // `compile` caps programs at BPF_MAXINSNS (4096) instructions; refuse anything else
        // rather than truncate.
        let len = u16::try_from(self.instructions.len()).map_err(|_| Error::Load(Errno::EINVAL))?;
        let prog = libc::sock_fprog {
            len,
            // The kernel only reads the program; `*mut` is just the C declaration.
            filter: self.instructions.as_ptr().cast_mut(),
        };
        let ret = seccomp_set_mode_filter(&prog, self.flags).map_err(|errno| {
            // With TSYNC_ESRCH (set with TSYNC and a listener), ESRCH means a thread could not be
            // synchronised; the kernel returns it for nothing else.
            if errno == Errno::ESRCH && self.flags & libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH != 0 {
                Error::TsyncListener
            } else {
                Error::Load(errno)
            }
        })?;
        if self.flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
            // With NEW_LISTENER, the non-negative return value is the listener's descriptor.
            let fd = RawFd::try_from(ret).map_err(|_| Error::Load(Errno::EBADF))?;
            // SAFETY: the kernel has just installed `fd` in this process's descriptor table as a
            // new seccomp listener; nothing else in this process knows or owns it, so taking
            // ownership (and closing it on drop) is sound.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
        }
        match ret {
            0 => Ok(None),
            // With TSYNC, a positive return is the id of a thread that could not be synchronised.
            tid => Err(Error::Tsync(libc::pid_t::try_from(tid).unwrap_or(-1))),
        }
    }
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`: returns the syscall's non-negative result.
fn seccomp_set_mode_filter(prog: &libc::sock_fprog, flags: libc::c_ulong) -> Result<i64, Errno> {
    // SAFETY: `prog` is a valid, live `sock_fprog` whose `filter` points to `len` initialised
    // `sock_filter`s owned by the borrowed `Program`; the kernel only reads (copies) them during
    // the call, and the pointer does not outlive it. The other arguments are plain integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            std::ptr::from_ref(prog),
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}
