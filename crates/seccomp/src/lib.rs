//! Seccomp for Berth: the OCI runtime spec's `linux.seccomp` section compiled to a classic
//! BPF program, and loading that program with `seccomp(2)`.
//!
//! The work is split in two so that nothing heavy runs in a forked child:
//!
//! * [`compile`] runs in the parent, before `fork`: it builds the filter with libseccomp and
//!   exports it as BPF instructions, checking the whole configuration on the way.
//! * [`Program::load`] runs in the child, just before `execve`: it is a single `seccomp(2)` call
//!   on memory the [`Program`] already owns, with no allocation and no libseccomp calls.
//!
//! The child must have set `no_new_privs` (or hold `CAP_SYS_ADMIN`) before loading; this crate
//! leaves that to the caller.

mod compile;
pub mod features;
mod load;

use std::fmt;

pub use compile::compile;
use oci_spec::runtime::LinuxSeccompAction;

/// Errors from compiling or loading a seccomp filter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The action cannot be used by this runtime (only `SCMP_ACT_NOTIFY` today).
    #[error("seccomp: {context}: seccomp action {action} is not supported")]
    UnsupportedAction {
        /// Where the action appears: `defaultAction` or the rule's syscalls.
        context: String,
        /// The rejected action.
        action: LinuxSeccompAction,
    },
    /// `errnoRet`/`defaultErrnoRet` was given with an action that returns no errno.
    #[error("seccomp: {context}: errno return code is not supported with action {action}")]
    ErrnoRetNotSupported {
        /// Where the value appears.
        context: String,
        /// The action that cannot carry a return code.
        action: LinuxSeccompAction,
    },
    /// `errnoRet`/`defaultErrnoRet` does not fit in the 16 bits seccomp has for it.
    #[error("seccomp: {context}: errno return code {value} is out of range (0-65535)")]
    ErrnoRetOutOfRange {
        /// Where the value appears.
        context: String,
        /// The rejected value.
        value: u32,
    },
    /// A syscall name is the empty string.
    #[error("seccomp: {context}: empty string is not a valid syscall name")]
    EmptySyscallName {
        /// The rule holding the empty name.
        context: String,
    },
    /// An argument condition names an argument a syscall cannot have.
    #[error("seccomp: {context}: argument index {index} is out of range (0-5)")]
    ArgIndexOutOfRange {
        /// The rule holding the condition.
        context: String,
        /// The rejected index.
        index: usize,
    },
    /// libseccomp refused an operation.
    #[error("seccomp: {context}: {source}")]
    Libseccomp {
        /// What was being done.
        context: String,
        /// libseccomp's error.
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// Exporting the BPF program out of libseccomp failed.
    #[error("seccomp: exporting the BPF program: {0}")]
    Export(#[source] std::io::Error),
    /// The exported program is unusable (empty, torn, or over the kernel's size limit).
    #[error("seccomp: exported BPF program is invalid: {0}")]
    InvalidProgram(String),
    /// The `seccomp(2)` call failed.
    #[error("seccomp: loading the filter with seccomp(2): {0}")]
    Load(#[source] nix::errno::Errno),
    /// With `SECCOMP_FILTER_FLAG_TSYNC`, another thread could not be synchronised.
    #[error("seccomp: loading the filter with TSYNC: thread {0} could not be synchronised")]
    Tsync(libc::pid_t),
}

/// A compiled filter: the BPF program, ready to load, and the `seccomp(2)` flags to load it with.
///
/// Build it with [`compile`] in the parent before `fork`; call [`Program::load`] in the child.
#[derive(Clone)]
pub struct Program {
    instructions: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

impl Program {
    /// The number of BPF instructions.
    pub fn len(&self) -> usize {
        self.instructions.len()
    }

    /// Whether the program has no instructions (never true for a program from [`compile`]).
    pub fn is_empty(&self) -> bool {
        self.instructions.is_empty()
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits passed to `seccomp(2)` by [`Program::load`].
    pub fn flags(&self) -> libc::c_ulong {
        self.flags
    }
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Insns<'a>(&'a [libc::sock_filter]);
        impl fmt::Debug for Insns<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(self.0.iter().map(|i| (i.code, i.jt, i.jf, i.k)))
                    .finish()
            }
        }
        f.debug_struct("Program")
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("len", &self.instructions.len())
            .field("instructions", &Insns(&self.instructions))
            .finish()
    }
}
