//! Seccomp for Berth: the OCI runtime spec's `linux.seccomp` section compiled to a classic
//! BPF program, and loading that program with `seccomp(2)`.
//!
//! The work is split in two so that nothing heavy runs in a forked child:
//!
//! * [`compile`] runs in the parent, before `fork`: it builds the filter with libseccomp and
//!   exports it as BPF instructions, checking the whole configuration on the way. When the
//!   default action refuses, a short stub goes in front (as runc's `patchbpf`): syscalls newer
//!   than every syscall the configuration names fail with `ENOSYS`, so that libcs fall back to
//!   older calls (see `enosys.rs`).
//! * [`Program::load`] runs in the child, just before `execve`: it is a single `seccomp(2)` call
//!   on memory the [`Program`] already owns, with no allocation and no libseccomp calls.
//!
//! [`Cache`] keeps compiled programs in files, keyed by the configuration (and what else
//! determines the program): a configuration is compiled once, not at every start and exec.
//!
//! The child must have set `no_new_privs` (or hold `CAP_SYS_ADMIN`) before loading; this crate
//! leaves that to the caller.
//!
//! `SCMP_ACT_NOTIFY` rules hand the notified syscalls to a *seccomp agent* in user space. A
//! program using them ([`Program::uses_notify`]) is loaded with
//! `SECCOMP_FILTER_FLAG_NEW_LISTENER`, and [`Program::load`] returns the listener descriptor. The
//! runtime passes that descriptor to its parent, which sends it with the container process state
//! to the agent listening at `linux.seccomp.listenerPath` with [`agent::send_to_agent`]. Until
//! the agent has it, every notified syscall of the child waits (and once no process holds the
//! listener any more, notified syscalls fail with `ENOSYS`).

pub mod agent;
pub mod cache;
mod compile;
mod enosys;
pub mod features;
mod load;

use std::fmt;
use std::path::PathBuf;

pub use cache::Cache;
pub use compile::compile;
use oci_spec::runtime::LinuxSeccompAction;

/// Errors from compiling or loading a seccomp filter, and from handing its listener to the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `defaultAction` is `SCMP_ACT_NOTIFY`: every syscall, including those the runtime makes
    /// after loading the filter to hand the listener over, would wait for the agent (runc refuses
    /// it too).
    #[error(
        "seccomp: defaultAction: SCMP_ACT_NOTIFY cannot be the default action, only the action \
         of listed syscalls"
    )]
    NotifyDefaultAction,
    /// A rule uses `SCMP_ACT_NOTIFY` but `listenerPath` is missing or empty: nobody would answer
    /// the notified syscalls.
    #[error(
        "seccomp: {context}: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath, which is not set"
    )]
    NotifyWithoutListener {
        /// The first rule using the action.
        context: String,
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
    /// The configuration could not be serialized into its cache key.
    #[error("seccomp: serializing the configuration for the cache key: {0}")]
    CacheKey(#[source] serde_json::Error),
    /// The `seccomp(2)` call failed.
    #[error("seccomp: loading the filter with seccomp(2): {0}")]
    Load(#[source] nix::errno::Errno),
    /// With `SECCOMP_FILTER_FLAG_TSYNC`, another thread could not be synchronised.
    #[error("seccomp: loading the filter with TSYNC: thread {0} could not be synchronised")]
    Tsync(libc::pid_t),
    /// With `SECCOMP_FILTER_FLAG_TSYNC` and a notify listener, another thread could not be
    /// synchronised (the kernel then says `ESRCH` and not which thread).
    #[error("seccomp: loading the filter with TSYNC: another thread could not be synchronised")]
    TsyncListener,
    /// Sending the container process state and the listener to the seccomp agent failed.
    #[error("seccomp: sending the listener to the seccomp agent at {}: {what}: {source}", path.display())]
    Agent {
        /// `listenerPath`.
        path: PathBuf,
        /// The step that failed (connecting, sending...).
        what: &'static str,
        /// The system's error.
        #[source]
        source: nix::errno::Errno,
    },
    /// The container process state given to [`agent::send_to_agent`] cannot be sent as it is.
    #[error("seccomp: container process state for the seccomp agent at {}: {reason}", path.display())]
    InvalidProcessState {
        /// `listenerPath`.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// A compiled filter: the BPF program, ready to load, and the `seccomp(2)` flags to load it with.
///
/// Build it with [`compile`] in the parent before `fork`; call [`Program::load`] in the child.
#[derive(Clone)]
pub struct Program {
    instructions: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
    notify: bool,
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

    /// The `SECCOMP_FILTER_FLAG_*` bits passed to `seccomp(2)` by [`Program::load`]: those of
    /// the configuration, and with [`Program::uses_notify`], `SECCOMP_FILTER_FLAG_NEW_LISTENER`
    /// (and `SECCOMP_FILTER_FLAG_TSYNC_ESRCH` when `TSYNC` is set).
    pub fn flags(&self) -> libc::c_ulong {
        self.flags
    }

    /// Whether a rule of the configuration uses `SCMP_ACT_NOTIFY`: then [`Program::load`] returns
    /// a listener descriptor, to be sent to the agent at `listenerPath` (see [`agent`]).
    pub fn uses_notify(&self) -> bool {
        self.notify
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
            .field("notify", &self.notify)
            .field("instructions", &Insns(&self.instructions))
            .finish()
    }
}
