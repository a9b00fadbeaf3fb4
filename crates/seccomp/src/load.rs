//! Loading a compiled [`Program`] into the calling thread with `seccomp(2)`.
//!
//! This runs in a forked child just before `execve`, so it allocates nothing and calls no
//! library beyond the raw syscall. Neither nix nor rustix wraps `seccomp(2)`, so the raw call
//! lives in [`seccomp_set_mode_filter`], the one place it is made.

use nix::errno::Errno;

use crate::{Error, Program};

impl Program {
    /// Loads the program into the calling thread (every thread, with `SECCOMP_FILTER_FLAG_TSYNC`)
    /// with `seccomp(SECCOMP_SET_MODE_FILTER)` and the flags from the configuration.
    ///
    /// Allocates nothing and makes no libseccomp calls: safe to call in a forked child. Unless
    /// the caller has set `no_new_privs`, the kernel requires `CAP_SYS_ADMIN` (else `EACCES`).
    pub fn load(&self) -> Result<(), Error> {
        // `compile` caps programs at BPF_MAXINSNS (4096) instructions; refuse anything else
        // rather than truncate.
        let len = u16::try_from(self.instructions.len()).map_err(|_| Error::Load(Errno::EINVAL))?;
        let prog = libc::sock_fprog {
            len,
            // The kernel only reads the program; `*mut` is just the C declaration.
            filter: self.instructions.as_ptr().cast_mut(),
        };
        match seccomp_set_mode_filter(&prog, self.flags)? {
            0 => Ok(()),
            // With TSYNC, a positive return is the id of a thread that could not be synchronised.
            tid => Err(Error::Tsync(libc::pid_t::try_from(tid).unwrap_or(-1))),
        }
    }
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`: returns the syscall's non-negative result.
fn seccomp_set_mode_filter(prog: &libc::sock_fprog, flags: libc::c_ulong) -> Result<i64, Error> {
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
        Err(Error::Load(Errno::last()))
    } else {
        Ok(ret)
    }
}
