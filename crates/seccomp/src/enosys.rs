//! The `ENOSYS` stub: syscalls newer than every syscall a configuration names fail with
//! `ENOSYS` instead of the default action's error, so that a libc falls back to the older
//! call (glibc tries `clone3`, `fchmodat2`, `faccessat2`... first, and only an `ENOSYS` makes
//! it try the old one; an `EPERM` is taken as final).
//!
//! This is what runc's `patchbpf` does, and what Docker's default profile counts on: a short
//! classic-BPF program placed in front of the one libseccomp exports. For each architecture of
//! the filter it compares the syscall number with the largest number the configuration names
//! on that architecture (whatever the rule's action or arguments): above it, `ENOSYS`; at or
//! below it, the libseccomp filter decides. On x86-64 the x32 ABI (syscall numbers with bit 30
//! set) has a limit of its own. On s390 and s390x, syscall 0 (how the kernel passes a number it
//! does not know through `setup`) is `ENOSYS` too.
//!
//! Only a configuration whose default action refuses gets the stub: with `SCMP_ACT_ALLOW`,
//! `SCMP_ACT_LOG` or `SCMP_ACT_TRACE` (a tracer handles new syscalls itself), unknown syscalls
//! reach the kernel, which says `ENOSYS` itself; with `SCMP_ACT_ERRNO` and `ENOSYS` as the
//! default errno there is nothing to add.

use libseccomp::{ScmpArch, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};

use crate::compile::scmp_arch;
use crate::Error;

/// `x32` syscall numbers have this bit set (`__X32_SYSCALL_BIT`).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

// Classic BPF opcodes.
const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JMP_JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const JMP_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JMP_JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JMP_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// The kernel's `AUDIT_ARCH_*` values, which `seccomp_data.arch` holds.
const AUDIT_64: u32 = 0x8000_0000;
const AUDIT_LE: u32 = 0x4000_0000;
const AUDIT_MIPS_N32: u32 = 0x2000_0000;

/// The `AUDIT_ARCH_*` of an architecture (x32 shares x86-64's) and whether its calls are told
/// apart by [`X32_SYSCALL_BIT`]: `Some(false)` for x86-64's own ABI, `Some(true)` for x32.
fn audit_arch(arch: ScmpArch) -> Option<(u32, Option<bool>)> {
    const EM_386: u32 = 3;
    const EM_68K: u32 = 4;
    const EM_MIPS: u32 = 8;
    const EM_PARISC: u32 = 15;
    const EM_PPC: u32 = 20;
    const EM_PPC64: u32 = 21;
    const EM_S390: u32 = 22;
    const EM_ARM: u32 = 40;
    const EM_SH: u32 = 42;
    const EM_X86_64: u32 = 62;
    const EM_AARCH64: u32 = 183;
    const EM_RISCV: u32 = 243;
    const EM_LOONGARCH: u32 = 258;
    Some(match arch {
        ScmpArch::X86 => (EM_386 | AUDIT_LE, None),
        ScmpArch::X8664 => (EM_X86_64 | AUDIT_64 | AUDIT_LE, Some(false)),
        ScmpArch::X32 => (EM_X86_64 | AUDIT_64 | AUDIT_LE, Some(true)),
        ScmpArch::Arm => (EM_ARM | AUDIT_LE, None),
        ScmpArch::Aarch64 => (EM_AARCH64 | AUDIT_64 | AUDIT_LE, None),
        ScmpArch::Mips => (EM_MIPS, None),
        ScmpArch::Mipsel => (EM_MIPS | AUDIT_LE, None),
        ScmpArch::Mips64 => (EM_MIPS | AUDIT_64, None),
        ScmpArch::Mipsel64 => (EM_MIPS | AUDIT_64 | AUDIT_LE, None),
        ScmpArch::Mips64N32 => (EM_MIPS | AUDIT_64 | AUDIT_MIPS_N32, None),
        ScmpArch::Mipsel64N32 => (EM_MIPS | AUDIT_64 | AUDIT_LE | AUDIT_MIPS_N32, None),
        ScmpArch::Ppc => (EM_PPC, None),
        ScmpArch::Ppc64 => (EM_PPC64 | AUDIT_64, None),
        ScmpArch::Ppc64Le => (EM_PPC64 | AUDIT_64 | AUDIT_LE, None),
        ScmpArch::S390 => (EM_S390, None),
        ScmpArch::S390X => (EM_S390 | AUDIT_64, None),
        ScmpArch::Parisc => (EM_PARISC, None),
        ScmpArch::Parisc64 => (EM_PARISC | AUDIT_64, None),
        ScmpArch::Riscv64 => (EM_RISCV | AUDIT_64 | AUDIT_LE, None),
        ScmpArch::Loongarch64 => (EM_LOONGARCH | AUDIT_64 | AUDIT_LE, None),
        ScmpArch::M68k => (EM_68K, None),
        ScmpArch::Sh => (EM_SH | AUDIT_LE, None),
        ScmpArch::Sheb => (EM_SH, None),
        _ => return None,
    })
}

/// What the stub checks on one `AUDIT_ARCH_*`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Limits {
    /// The largest syscall number named, for the calls without [`X32_SYSCALL_BIT`].
    plain: Option<u32>,
    /// The same for x32's calls (with the bit), on x86-64 only.
    x32: Option<u32>,
    /// s390: syscall 0 is `ENOSYS`.
    s390: bool,
}

/// Whether `seccomp` gets the stub (see the module's documentation).
fn wanted(seccomp: &LinuxSeccomp) -> bool {
    use LinuxSeccompAction as A;
    match seccomp.default_action() {
        A::ScmpActAllow | A::ScmpActLog | A::ScmpActTrace => false,
        A::ScmpActErrno => seccomp.default_errno_ret() != Some(libc::ENOSYS.unsigned_abs()),
        _ => true,
    }
}

/// The limits per `AUDIT_ARCH_*` of the filter's architectures (those of `seccomp`, and the
/// native one, which libseccomp always filters), in a stable order.
fn limits(seccomp: &LinuxSeccomp) -> Vec<(u32, Limits)> {
    let mut arches = vec![ScmpArch::native()];
    for &arch in seccomp.architectures().as_deref().unwrap_or_default() {
        let arch = match scmp_arch(arch) {
            ScmpArch::Native => ScmpArch::native(),
            other => other,
        };
        if !arches.contains(&arch) {
            arches.push(arch);
        }
    }
    let rules = seccomp.syscalls().as_deref().unwrap_or_default();
    let mut out: Vec<(u32, Limits)> = Vec::new();
    for arch in arches {
        let Some((audit, x32)) = audit_arch(arch) else {
            continue;
        };
        // Pseudo-syscalls (a name that does not exist on this architecture) are negative.
        let largest = rules
            .iter()
            .flat_map(|r| r.names())
            .filter_map(|name| ScmpSyscall::from_name_by_arch(name, arch).ok())
            .filter_map(|nr| u32::try_from(nr.as_raw_syscall()).ok())
            .max();
        let index = match out.iter().position(|(a, _)| *a == audit) {
            Some(i) => i,
            None => {
                out.push((audit, Limits::default()));
                out.len() - 1
            }
        };
        let limits = &mut out[index].1;
        match x32 {
            Some(true) => limits.x32 = largest,
            _ => limits.plain = largest,
        }
        limits.s390 |= matches!(arch, ScmpArch::S390 | ScmpArch::S390X);
    }
    out.retain(|(_, l)| l.plain.is_some() || l.x32.is_some());
    out
}

/// One instruction being placed: jump targets are absolute indexes, resolved at the end.
#[derive(Debug, Clone, Copy)]
enum Insn {
    Load(u32),
    /// Conditional jump on `k`: to `jt` when true, `jf` when false.
    Jump(u16, u32, Target, Target),
    Always(Target),
    Ret(u32),
}

/// Where a jump goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Next,
    At(usize),
    Enosys,
    Filter,
}

/// The stub for `seccomp`, to put in front of its libseccomp program; empty when it needs none.
pub(crate) fn stub(seccomp: &LinuxSeccomp) -> Result<Vec<libc::sock_filter>, Error> {
    if !wanted(seccomp) {
        return Ok(Vec::new());
    }
    let limits = limits(seccomp);
    if limits.is_empty() {
        return Ok(Vec::new());
    }
    // Layout: load arch; one jeq per arch to its section; ja filter; the sections; ret ENOSYS.
    let sections_start = 1 + limits.len() + 1;
    let mut sections: Vec<Insn> = Vec::new();
    let mut starts = Vec::new();
    for (_, l) in &limits {
        starts.push(sections_start + sections.len());
        sections.push(Insn::Load(DATA_NR));
        if l.s390 {
            sections.push(Insn::Jump(JMP_JEQ_K, 0, Target::Enosys, Target::Next));
        }
        match (l.plain, l.x32) {
            (Some(plain), Some(x32)) => {
                let here = sections_start + sections.len();
                sections.push(Insn::Jump(
                    JMP_JSET_K,
                    X32_SYSCALL_BIT,
                    Target::At(here + 2),
                    Target::Next,
                ));
                sections.push(Insn::Jump(JMP_JGT_K, plain, Target::Enosys, Target::Filter));
                sections.push(Insn::Jump(JMP_JGT_K, x32, Target::Enosys, Target::Filter));
            }
            (Some(plain), None) => {
                sections.push(Insn::Jump(
                    JMP_JSET_K,
                    X32_SYSCALL_BIT,
                    Target::Filter,
                    Target::Next,
                ));
                sections.push(Insn::Jump(JMP_JGT_K, plain, Target::Enosys, Target::Filter));
            }
            (None, Some(x32)) => {
                sections.push(Insn::Jump(
                    JMP_JSET_K,
                    X32_SYSCALL_BIT,
                    Target::Next,
                    Target::Filter,
                ));
                sections.push(Insn::Jump(JMP_JGT_K, x32, Target::Enosys, Target::Filter));
            }
            (None, None) => sections.push(Insn::Always(Target::Filter)),
        }
    }
    let mut program = vec![Insn::Load(DATA_ARCH)];
    for ((audit, _), start) in limits.iter().zip(&starts) {
        program.push(Insn::Jump(
            JMP_JEQ_K,
            *audit,
            Target::At(*start),
            Target::Next,
        ));
    }
    program.push(Insn::Always(Target::Filter));
    program.extend(sections);
    let enosys = program.len();
    program.push(Insn::Ret(
        libc::SECCOMP_RET_ERRNO | libc::ENOSYS.unsigned_abs(),
    ));
    let filter = program.len();
    assemble(&program, enosys, filter)
}

/// Resolves the jumps of `program` (its ENOSYS return at `enosys`, the filter starting at
/// `filter`, just past its end).
fn assemble(
    program: &[Insn],
    enosys: usize,
    filter: usize,
) -> Result<Vec<libc::sock_filter>, Error> {
    let offset = |from: usize, to: Target| -> Result<usize, Error> {
        let to = match to {
            Target::Next => from + 1,
            Target::At(i) => i,
            Target::Enosys => enosys,
            Target::Filter => filter,
        };
        to.checked_sub(from + 1)
            .ok_or_else(|| Error::InvalidProgram(format!("ENOSYS stub: backward jump at {from}")))
    };
    let short = |from: usize, to: Target| -> Result<u8, Error> {
        let off = offset(from, to)?;
        u8::try_from(off)
            .map_err(|_| Error::InvalidProgram(format!("ENOSYS stub: jump of {off} at {from}")))
    };
    program
        .iter()
        .enumerate()
        .map(|(i, insn)| {
            Ok(match *insn {
                Insn::Load(k) => insn_of(LD_W_ABS, 0, 0, k),
                Insn::Jump(code, k, jt, jf) => insn_of(code, short(i, jt)?, short(i, jf)?, k),
                Insn::Always(to) => {
                    let off = offset(i, to)?;
                    let k = u32::try_from(off).map_err(|_| {
                        Error::InvalidProgram(format!("ENOSYS stub: jump of {off} at {i}"))
                    })?;
                    insn_of(JMP_JA, 0, 0, k)
                }
                Insn::Ret(k) => insn_of(RET_K, 0, 0, k),
            })
        })
        .collect()
}

fn insn_of(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).expect("valid LinuxSeccomp")
    }

    /// Runs `program` on a `seccomp_data` as the kernel would (the subset of classic BPF the
    /// stub and libseccomp use), returning the action.
    pub(crate) fn run(program: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let mut pc = 0usize;
        let mut acc = 0u32;
        loop {
            let i = program[pc];
            let class = u32::from(i.code) & 0x07;
            match class {
                c if c == libc::BPF_LD => {
                    acc = match i.k {
                        DATA_NR => nr,
                        DATA_ARCH => arch,
                        _ => 0, // arguments and instruction pointer: zero here
                    };
                    pc += 1;
                }
                c if c == libc::BPF_JMP => {
                    let op = u32::from(i.code) & 0xf0;
                    if op == libc::BPF_JA {
                        pc += 1 + i.k as usize;
                        continue;
                    }
                    let taken = match op {
                        o if o == libc::BPF_JEQ => acc == i.k,
                        o if o == libc::BPF_JGT => acc > i.k,
                        o if o == libc::BPF_JGE => acc >= i.k,
                        o if o == libc::BPF_JSET => acc & i.k != 0,
                        _ => panic!("unexpected jump {:#x}", i.code),
                    };
                    pc += 1 + usize::from(if taken { i.jt } else { i.jf });
                }
                c if c == libc::BPF_RET => return i.k,
                c if c == libc::BPF_ALU => {
                    let op = u32::from(i.code) & 0xf0;
                    assert_eq!(op, libc::BPF_AND, "unexpected ALU {:#x}", i.code);
                    acc &= i.k;
                    pc += 1;
                }
                c if c == libc::BPF_MISC => pc += 1, // tax/txa: nothing the checks below use
                c if c == libc::BPF_ST || c == libc::BPF_LDX => pc += 1,
                _ => panic!("unexpected instruction {:#x}", i.code),
            }
        }
    }

    const X86_64: u32 = 0xc000_003e;
    const I386: u32 = 0x4000_0003;
    const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | 38;

    #[test]
    fn newer_syscalls_get_enosys_per_architecture() {
        let c = config(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["read", "clone3", "socketcall"], "action": "SCMP_ACT_ALLOW"}]
        }));
        let stub = stub(&c).unwrap();
        assert!(!stub.is_empty());
        let mut program = stub.clone();
        // A stand-in for the libseccomp filter: allow.
        program.push(insn_of(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW));
        // clone3 is 435 on both x86-64 and i386; x32's is 435 | bit 30.
        assert_eq!(run(&program, X86_64, 435), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(&program, X86_64, 436), ENOSYS);
        assert_eq!(run(&program, X86_64, 1000), ENOSYS);
        assert_eq!(
            run(&program, X86_64, 0x4000_0000 | 435),
            libc::SECCOMP_RET_ALLOW
        );
        assert_eq!(run(&program, X86_64, 0x4000_0000 | 436), ENOSYS);
        assert_eq!(run(&program, I386, 435), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(&program, I386, 436), ENOSYS);
        // Another architecture goes to the filter untouched.
        assert_eq!(run(&program, 0xc000_00b7, 5000), libc::SECCOMP_RET_ALLOW);
    }

    #[test]
    fn only_refusing_defaults_get_a_stub() {
        for (default, errno, wanted) in [
            ("SCMP_ACT_ALLOW", None, false),
            ("SCMP_ACT_LOG", None, false),
            ("SCMP_ACT_TRACE", None, false),
            ("SCMP_ACT_ERRNO", None, true),
            ("SCMP_ACT_ERRNO", Some(1), true),
            ("SCMP_ACT_ERRNO", Some(38), false),
            ("SCMP_ACT_KILL_PROCESS", None, true),
        ] {
            let mut json = serde_json::json!({
                "defaultAction": default,
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL"}]
            });
            if let Some(e) = errno {
                json["defaultErrnoRet"] = e.into();
            }
            assert_eq!(
                !stub(&config(json)).unwrap().is_empty(),
                wanted,
                "{default} {errno:?}"
            );
        }
        // No syscall the architecture knows: nothing to compare with.
        let c = config(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["no_such_call"], "action": "SCMP_ACT_ALLOW"}]
        }));
        assert!(stub(&c).unwrap().is_empty());
    }
}
