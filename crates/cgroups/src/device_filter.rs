//! cgroup v2 device control, the pure part: replays OCI device rules with
//! the cgroup v1 devices controller's semantics (so both versions behave the
//! same), then compiles the outcome into a `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program. Loading and attaching it is in `bpf.rs`.
//!
//! Like a fresh v1 devices cgroup, the starting point is "allow all". A
//! type-`a` rule switches the default and clears the exceptions; other rules
//! add or remove exceptions exactly as the kernel's `dev_exception_add` /
//! `dev_exception_rm` do (no hole punching in wildcards).

use oci_spec::runtime::LinuxDeviceCgroup;

use crate::convert::{self, ConvertError, DeviceMatch};

/// `BPF_DEVCG_ACC_MKNOD`.
const ACC_MKNOD: u8 = 1;
/// `BPF_DEVCG_ACC_READ`.
const ACC_READ: u8 = 2;
/// `BPF_DEVCG_ACC_WRITE`.
const ACC_WRITE: u8 = 4;
/// `BPF_DEVCG_DEV_BLOCK`.
const DEV_BLOCK: i32 = 1;
/// `BPF_DEVCG_DEV_CHAR`.
const DEV_CHAR: i32 = 2;

/// One exception to the default, with BPF access bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exception {
    device: DeviceMatch,
    access: u8,
}

/// The devices controller state after replaying the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    /// Whether devices not in `exceptions` are allowed.
    default_allow: bool,
    /// Denied devices (when `default_allow`) or allowed ones (otherwise).
    exceptions: Vec<Exception>,
}

impl DeviceState {
    /// Replays `rules` in order, starting from "allow all".
    pub fn from_rules(rules: &[LinuxDeviceCgroup]) -> Result<Self, ConvertError> {
        let mut state = DeviceState {
            default_allow: true,
            exceptions: Vec::new(),
        };
        for rule in rules {
            let rule = convert::parse_device_rule(rule)?;
            let Some(device) = rule.device else {
                state.default_allow = rule.allow;
                state.exceptions.clear();
                continue;
            };
            let ex = Exception {
                device,
                access: access_bits(&rule.access),
            };
            // An allow rule adds to an allow list and removes from a deny
            // list; a deny rule the other way round.
            if rule.allow == state.default_allow {
                state.remove(ex);
            } else {
                state.add(ex);
            }
        }
        Ok(state)
    }

    fn add(&mut self, ex: Exception) {
        match self.exceptions.iter_mut().find(|e| e.device == ex.device) {
            Some(e) => e.access |= ex.access,
            None => self.exceptions.push(ex),
        }
    }

    fn remove(&mut self, ex: Exception) {
        for e in self.exceptions.iter_mut().filter(|e| e.device == ex.device) {
            e.access &= !ex.access;
        }
        self.exceptions.retain(|e| e.access != 0);
    }

    /// Whether this state allows everything.
    #[cfg(test)]
    fn allows_all(&self) -> bool {
        self.default_allow && self.exceptions.is_empty()
    }

    /// Whether an access (`kind` b/c, BPF access bits) would be allowed;
    /// the same decision the compiled program makes.
    #[cfg(test)]
    fn allows(&self, kind: char, major: u32, minor: u32, access: u8) -> bool {
        for e in &self.exceptions {
            let matches = e.device.kind == kind
                && e.device.major.is_none_or(|m| m == major)
                && e.device.minor.is_none_or(|m| m == minor);
            if !matches {
                continue;
            }
            if self.default_allow && access & e.access != 0 {
                return false;
            }
            if !self.default_allow && access & !e.access == 0 {
                return true;
            }
        }
        self.default_allow
    }

    /// Compiles the state into eBPF instructions.
    ///
    /// Context (`struct bpf_cgroup_dev_ctx`): `access_type` (type in the
    /// low 16 bits, access bits above), `major`, `minor`, all u32. Allow
    /// list: the first exception that matches and covers the requested
    /// access returns 1. Deny list: the first that matches and overlaps the
    /// requested access returns 0. Otherwise the default.
    pub fn program(&self) -> Vec<Insn> {
        let mut p = vec![
            Insn::ldx_w(2, 1, 0),
            Insn::alu64_imm(ALU_AND, 2, 0xFFFF),
            Insn::ldx_w(3, 1, 0),
            Insn::alu64_imm(ALU_RSH, 3, 16),
            Insn::ldx_w(4, 1, 4),
            Insn::ldx_w(5, 1, 8),
        ];
        for e in &self.exceptions {
            let mut block: Vec<Insn> = Vec::new();
            // Jump offsets are patched to "past this block" below; JNE/JEQ
            // with a placeholder offset of 0 are marked in `jumps`.
            let mut jumps = Vec::new();
            let kind = if e.device.kind == 'b' {
                DEV_BLOCK
            } else {
                DEV_CHAR
            };
            jumps.push(block.len());
            block.push(Insn::jmp_imm(JMP_JNE, 2, kind, 0));
            for (reg, value) in [(4, e.device.major), (5, e.device.minor)] {
                if let Some(v) = value {
                    jumps.push(block.len());
                    block.push(Insn::jmp_imm(JMP_JNE, reg, v as i32, 0));
                }
            }
            block.push(Insn::mov64_reg(1, 3));
            if self.default_allow {
                block.push(Insn::alu64_imm(ALU_AND, 1, i32::from(e.access)));
                jumps.push(block.len());
                block.push(Insn::jmp_imm(JMP_JEQ, 1, 0, 0));
                block.push(Insn::mov64_imm(0, 0));
            } else {
                block.push(Insn::alu64_imm(ALU_AND, 1, i32::from(!e.access & 7)));
                jumps.push(block.len());
                block.push(Insn::jmp_imm(JMP_JNE, 1, 0, 0));
                block.push(Insn::mov64_imm(0, 1));
            }
            block.push(Insn::exit());
            let len = block.len();
            for j in jumps {
                // Target: the first instruction after the block.
                block[j].off = (len - j - 1) as i16;
            }
            p.extend(block);
        }
        p.push(Insn::mov64_imm(0, i32::from(self.default_allow)));
        p.push(Insn::exit());
        p
    }
}

fn access_bits(access: &str) -> u8 {
    access.chars().fold(0, |acc, c| {
        acc | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            _ => ACC_MKNOD,
        }
    })
}

const ALU_AND: u8 = 0x50;
const ALU_RSH: u8 = 0x70;
const JMP_JEQ: u8 = 0x10;
const JMP_JNE: u8 = 0x50;

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn`
/// (`regs` holds dst in the low nibble, src in the high one).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    /// `dst = *(u32 *)(src + off)`.
    fn ldx_w(dst: u8, src: u8, off: i16) -> Self {
        Insn {
            code: 0x61, // BPF_LDX | BPF_MEM | BPF_W
            regs: dst | (src << 4),
            off,
            imm: 0,
        }
    }

    /// `dst op= imm` (64-bit).
    fn alu64_imm(op: u8, dst: u8, imm: i32) -> Self {
        Insn {
            code: 0x07 | op, // BPF_ALU64 | op | BPF_K
            regs: dst,
            off: 0,
            imm,
        }
    }

    /// `dst = imm` (64-bit).
    fn mov64_imm(dst: u8, imm: i32) -> Self {
        Self::alu64_imm(0xb0, dst, imm)
    }

    /// `dst = src` (64-bit).
    fn mov64_reg(dst: u8, src: u8) -> Self {
        Insn {
            code: 0xbf, // BPF_ALU64 | BPF_MOV | BPF_X
            regs: dst | (src << 4),
            off: 0,
            imm: 0,
        }
    }

    /// `if dst op imm goto pc + 1 + off`.
    fn jmp_imm(op: u8, dst: u8, imm: i32, off: i16) -> Self {
        Insn {
            code: 0x05 | op, // BPF_JMP | op | BPF_K
            regs: dst,
            off,
            imm,
        }
    }

    /// `return r0`.
    fn exit() -> Self {
        Insn {
            code: 0x95, // BPF_JMP | BPF_EXIT
            regs: 0,
            off: 0,
            imm: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};

    fn rule(
        allow: bool,
        typ: Option<LinuxDeviceType>,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .access(access);
        if let Some(t) = typ {
            b = b.typ(t);
        }
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().expect("rule")
    }

    /// Runs the compiled program on a context in a tiny interpreter of the
    /// instructions we emit, to check it agrees with `allows`.
    fn run(prog: &[Insn], access_type: u32, major: u32, minor: u32) -> u64 {
        let ctx = [access_type, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                0x61 => r[dst] = u64::from(ctx[i.off as usize / 4]),
                0x57 => r[dst] &= i.imm as i64 as u64,
                0x77 => r[dst] >>= i.imm,
                0xb7 => r[dst] = i.imm as i64 as u64,
                0xbf => r[dst] = r[src],
                0x15 if r[dst] == i.imm as i64 as u64 => pc += i.off as usize,
                0x55 if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
                0x15 | 0x55 => {}
                0x95 => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn check_all(state: &DeviceState) {
        let prog = state.program();
        for kind in ['b', 'c'] {
            let t = if kind == 'b' { 1 } else { 2 };
            for (major, minor) in [(1, 3), (1, 5), (8, 0), (136, 7), (5, 2)] {
                for access in 1..=7u8 {
                    let want = state.allows(kind, major, minor, access);
                    let got = run(&prog, (u32::from(access) << 16) | t, major, minor);
                    assert_eq!(got == 1, want, "{kind} {major}:{minor} access {access}");
                }
            }
        }
    }

    #[test]
    fn allow_list_after_deny_all() {
        use LinuxDeviceType::*;
        let rules = [
            rule(false, None, None, None, "rwm"),
            rule(true, Some(C), Some(1), Some(3), "rwm"),
            rule(true, Some(C), Some(136), None, "rw"),
        ];
        let s = DeviceState::from_rules(&rules).expect("state");
        assert!(!s.default_allow);
        assert!(s.allows('c', 1, 3, ACC_READ | ACC_WRITE));
        assert!(!s.allows('c', 1, 5, ACC_READ));
        assert!(s.allows('c', 136, 9, ACC_WRITE));
        assert!(!s.allows('c', 136, 9, ACC_MKNOD));
        assert!(!s.allows('b', 1, 3, ACC_READ));
        check_all(&s);
    }

    #[test]
    fn deny_list_and_no_hole_punching() {
        use LinuxDeviceType::*;
        let rules = [
            rule(true, None, None, None, "rwm"),
            rule(false, Some(B), Some(8), None, "w"),
            // Allowing one device does not punch a hole in a wildcard deny.
            rule(true, Some(B), Some(8), Some(0), "w"),
        ];
        let s = DeviceState::from_rules(&rules).expect("state");
        assert!(s.default_allow);
        assert!(!s.allows('b', 8, 0, ACC_WRITE));
        assert!(s.allows('b', 8, 0, ACC_READ));
        check_all(&s);
        let none = DeviceState::from_rules(&[rule(true, None, None, None, "rwm")]).expect("state");
        assert!(none.allows_all());
        check_all(&none);
    }

    #[test]
    fn exception_access_is_merged_and_removed() {
        use LinuxDeviceType::*;
        let rules = [
            rule(false, None, None, None, "rwm"),
            rule(true, Some(C), Some(1), Some(3), "r"),
            rule(true, Some(C), Some(1), Some(3), "w"),
            rule(false, Some(C), Some(1), Some(3), "r"),
        ];
        let s = DeviceState::from_rules(&rules).expect("state");
        assert!(s.allows('c', 1, 3, ACC_WRITE));
        assert!(!s.allows('c', 1, 3, ACC_READ));
        check_all(&s);
        let bad = rule(true, Some(P), None, None, "rwm");
        assert!(DeviceState::from_rules(&[bad]).is_err());
    }
}
