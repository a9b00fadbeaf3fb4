//! Compiling an OCI `linux.seccomp` section into a BPF [`Program`] with libseccomp.
//!
//! Semantics follow the OCI runtime spec and runc where the spec is silent:
//!
//! * `SCMP_ACT_KILL` is `SCMP_ACT_KILL_THREAD`; `errnoRet`/`defaultErrnoRet` default to `EPERM`
//!   for `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE`, and are an error with any other action.
//! * A syscall name libseccomp does not know is skipped; an empty name is an error.
//! * With a refusing default action, syscalls above the largest one named (per architecture)
//!   get `ENOSYS` (the stub of `enosys.rs`, in front of libseccomp's program), as runc does.
//! * A rule whose action equals the default action is skipped (libseccomp refuses it).
//! * Conditions on distinct arguments are ANDed in one rule. libseccomp cannot AND two
//!   conditions on the same argument, so when a rule has those, each condition becomes its own
//!   rule (the conditions are ORed), as runc does.
//! * `SCMP_CMP_MASKED_EQ` uses `value` as the mask and `valueTwo` (default 0) as the datum.
//! * `SCMP_ACT_NOTIFY` is accepted in rules and needs `listenerPath`; it cannot be the default
//!   action (runc refuses it too: the runtime's own syscalls after the load, among them those
//!   handing the listener over, would all wait for an agent that does not have it yet). A
//!   configuration with a notify rule gets `SECCOMP_FILTER_FLAG_NEW_LISTENER`, even when every
//!   syscall name of its notify rules is unknown and skipped, so that the agent always gets the
//!   listener the configuration promises it.
//! * The kernel refuses `SECCOMP_FILTER_FLAG_TSYNC` with `NEW_LISTENER` (a positive return value
//!   could be a thread id or the listener), unless `SECCOMP_FILTER_FLAG_TSYNC_ESRCH` makes a
//!   synchronisation failure an `ESRCH` error: with TSYNC and a notify rule, that flag is added
//!   (Linux 5.7 and later, as the notify support of libseccomp needs anyway).
//! * `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` (Linux 5.19) only affects notify listeners: it is
//!   passed to the kernel with a notify rule, and ignored without one (the kernel refuses it
//!   without a listener).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::sys::memfd::{memfd_create, MFdFlags};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

use crate::{Error, Program};

/// Number of syscall arguments seccomp can inspect.
const MAX_ARGS: usize = 6;

/// Above this many syscall names, ask libseccomp for a binary-tree filter (as runc does).
const OPTIMIZE_THRESHOLD: usize = 256;

/// Size of one `struct sock_filter` in the exported program.
pub(crate) const INSN_SIZE: usize = std::mem::size_of::<libc::sock_filter>();

/// Compiles `seccomp` into a BPF program, checking the whole configuration.
///
/// Runs libseccomp and allocates: call it in the parent, before `fork`. [`crate::Cache`] keeps
/// the programs it returns, so that the same configuration is compiled once.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Program, Error> {
    let prepared = prepare(seccomp)?;
    let instructions = instructions(seccomp, &prepared)?;
    Ok(prepared.program(instructions))
}

/// What a configuration gives without libseccomp: its checked default action, and the flags
/// and notify bit of its program.
pub(crate) struct Prepared {
    default: ScmpAction,
    flags: libc::c_ulong,
    notify: bool,
}

impl Prepared {
    /// The program of these flags with `instructions`.
    pub(crate) fn program(&self, instructions: Vec<libc::sock_filter>) -> Program {
        Program {
            instructions,
            flags: self.flags,
            notify: self.notify,
        }
    }
}

/// The cheap checks of `seccomp` (default action, notify rules and `listenerPath`), and what
/// they give.
pub(crate) fn prepare(seccomp: &LinuxSeccomp) -> Result<Prepared, Error> {
    if seccomp.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(Error::NotifyDefaultAction);
    }
    let default = action(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        "defaultAction",
    )?;
    let rules = seccomp.syscalls().as_deref().unwrap_or_default();
    let notify_rule = rules
        .iter()
        .find(|r| r.action() == LinuxSeccompAction::ScmpActNotify);
    if let Some(rule) = notify_rule {
        if seccomp
            .listener_path()
            .as_ref()
            .is_none_or(|p| p.as_os_str().is_empty())
        {
            return Err(Error::NotifyWithoutListener {
                context: rule_context(rule.names()),
            });
        }
    }
    let notify = notify_rule.is_some();
    Ok(Prepared {
        default,
        flags: flags(seccomp.flags().as_deref().unwrap_or_default(), notify),
        notify,
    })
}

/// The BPF instructions of `seccomp` (checked by [`prepare`] into `prepared`): the ENOSYS stub,
/// then libseccomp's program.
pub(crate) fn instructions(
    seccomp: &LinuxSeccomp,
    prepared: &Prepared,
) -> Result<Vec<libc::sock_filter>, Error> {
    let default = prepared.default;
    let rules = seccomp.syscalls().as_deref().unwrap_or_default();
    let mut ctx = ScmpFilterContext::new(default).map_err(libseccomp_err("creating the filter"))?;

    for &arch in seccomp.architectures().as_deref().unwrap_or_default() {
        let scmp = scmp_arch(arch);
        let present = ctx
            .is_arch_present(scmp)
            .map_err(libseccomp_err(format!("architecture {arch}")))?;
        if !present {
            ctx.add_arch(scmp)
                .map_err(libseccomp_err(format!("adding architecture {arch}")))?;
        }
    }

    let names: usize = rules.iter().map(|r| r.names().len()).sum();
    if names > OPTIMIZE_THRESHOLD {
        ctx.set_ctl_optimize(2)
            .map_err(libseccomp_err("enabling binary-tree optimization"))?;
    }

    for rule in rules {
        add_rule(&mut ctx, rule, default)?;
    }

    let mut instructions = crate::enosys::stub(seccomp)?;
    instructions.extend(export(&ctx)?);
    check_size(instructions.len())?;
    Ok(instructions)
}

/// Adds the rules for one OCI `syscalls[]` entry.
fn add_rule(
    ctx: &mut ScmpFilterContext,
    rule: &LinuxSyscall,
    default: ScmpAction,
) -> Result<(), Error> {
    let context = rule_context(rule.names());
    if rule.names().iter().any(String::is_empty) {
        return Err(Error::EmptySyscallName { context });
    }
    let act = action(rule.action(), rule.errno_ret(), &context)?;
    let conditions = rule
        .args()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|arg| condition(arg, &context))
        .collect::<Result<Vec<_>, _>>()?;
    if act == default {
        return Ok(());
    }
    let mut per_index = [0usize; MAX_ARGS];
    for arg in rule.args().as_deref().unwrap_or_default() {
        per_index[arg.index()] += 1;
    }
    let same_arg_twice = per_index.iter().any(|&n| n > 1);

    for name in rule.names() {
        // Unknown to libseccomp (on any architecture): skipped, as runc does.
        let Ok(syscall) = ScmpSyscall::from_name(name) else {
            continue;
        };
        let err = libseccomp_err(format!("syscall {name:?}: adding rule"));
        if conditions.is_empty() {
            ctx.add_rule(act, syscall).map_err(err)?;
        } else if same_arg_twice {
            for cond in &conditions {
                ctx.add_rule_conditional(act, syscall, std::slice::from_ref(cond))
                    .map_err(&err)?;
            }
        } else {
            ctx.add_rule_conditional(act, syscall, &conditions)
                .map_err(err)?;
        }
    }
    Ok(())
}

/// Names a rule in error messages by its syscall names.
fn rule_context(names: &[String]) -> String {
    match names {
        [one] => format!("syscall {one:?}"),
        _ => {
            let list: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
            format!("syscalls [{}]", list.join(", "))
        }
    }
}

/// Translates an OCI action (with its optional errno return code) into a libseccomp action.
fn action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    context: &str,
) -> Result<ScmpAction, Error> {
    use LinuxSeccompAction as A;

    let ret = |errno_ret: Option<u32>| -> Result<u16, Error> {
        let value = errno_ret.unwrap_or(libc::EPERM.unsigned_abs());
        u16::try_from(value).map_err(|_| Error::ErrnoRetOutOfRange {
            context: context.to_owned(),
            value,
        })
    };
    if errno_ret.is_some() && !matches!(action, A::ScmpActErrno | A::ScmpActTrace) {
        return Err(Error::ErrnoRetNotSupported {
            context: context.to_owned(),
            action,
        });
    }
    Ok(match action {
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActErrno => ScmpAction::Errno(i32::from(ret(errno_ret)?)),
        A::ScmpActTrace => ScmpAction::Trace(ret(errno_ret)?),
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActAllow => ScmpAction::Allow,
        A::ScmpActNotify => ScmpAction::Notify,
    })
}

/// Translates one OCI argument condition.
fn condition(arg: &LinuxSeccompArg, context: &str) -> Result<ScmpArgCompare, Error> {
    use LinuxSeccompOperator as O;

    let index = arg.index();
    let out_of_range = || Error::ArgIndexOutOfRange {
        context: context.to_owned(),
        index,
    };
    if index >= MAX_ARGS {
        return Err(out_of_range());
    }
    let index = u32::try_from(index).map_err(|_| out_of_range())?;
    let (op, datum) = match arg.op() {
        O::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        O::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        O::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        O::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        O::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        O::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        O::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    Ok(ScmpArgCompare::new(index, op, datum))
}

/// Translates the OCI filter flags into `SECCOMP_FILTER_FLAG_*` bits, adding those a notify
/// listener needs when `notify`.
fn flags(flags: &[LinuxSeccompFilterFlag], notify: bool) -> libc::c_ulong {
    use LinuxSeccompFilterFlag as F;

    let mut bits = flags.iter().fold(0, |bits, flag| {
        bits | match flag {
            F::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            F::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            F::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            // Only meaningful with a listener; the kernel refuses it without one.
            F::SeccompFilterFlagWaitKillableRecv if notify => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
            F::SeccompFilterFlagWaitKillableRecv => 0,
        }
    });
    if notify {
        bits |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        // NEW_LISTENER and TSYNC together are EINVAL unless TSYNC failures are ESRCH.
        if bits & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            bits |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    }
    bits
}

/// Maps an OCI architecture to libseccomp's.
pub(crate) fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// Exports the filter's BPF (through a memfd: libseccomp 2.5 only writes to a file descriptor)
/// and checks it is something the kernel can take.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, Error> {
    let fd = memfd_create(c"berth-seccomp-bpf", MFdFlags::MFD_CLOEXEC)
        .map_err(|e| Error::Export(e.into()))?;
    let mut file = File::from(fd);
    ctx.export_bpf(&file)
        .map_err(libseccomp_err("exporting the BPF program"))?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(Error::Export)?;

    if bytes.is_empty() || bytes.len() % INSN_SIZE != 0 {
        return Err(Error::InvalidProgram(format!(
            "{} bytes is not a whole, non-zero number of {INSN_SIZE}-byte instructions",
            bytes.len()
        )));
    }
    check_size(bytes.len() / INSN_SIZE)?;
    Ok(bytes.chunks_exact(INSN_SIZE).map(instruction).collect())
}

/// Refuses a program of `len` instructions, more than the kernel takes.
pub(crate) fn check_size(len: usize) -> Result<(), Error> {
    let max = usize::try_from(libc::BPF_MAXINSNS).unwrap_or(usize::MAX);
    if len > max {
        return Err(Error::InvalidProgram(format!(
            "{len} instructions, more than the kernel's limit of {max}"
        )));
    }
    Ok(())
}

/// Decodes one native-endian `struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }`.
pub(crate) fn instruction(raw: &[u8]) -> libc::sock_filter {
    let mut code = [0u8; 2];
    let mut k = [0u8; 4];
    code.copy_from_slice(&raw[0..2]);
    k.copy_from_slice(&raw[4..8]);
    libc::sock_filter {
        code: u16::from_ne_bytes(code),
        jt: raw[2],
        jf: raw[3],
        k: u32::from_ne_bytes(k),
    }
}

/// Builds a closure turning a libseccomp error into [`Error::Libseccomp`] with `context`.
fn libseccomp_err(context: impl Into<String>) -> impl Fn(libseccomp::error::SeccompError) -> Error {
    let context = context.into();
    move |source| Error::Libseccomp {
        context: context.clone(),
        source,
    }
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
