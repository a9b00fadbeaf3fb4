//! What this crate supports, by the names of the OCI runtime spec, for `features` (features.md).

/// Actions `compile` accepts (SCMP_ACT_NOTIFY in rules only, with `listenerPath`).
pub const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

/// Argument comparison operators.
pub const OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// Architecture names of the spec; [`supported_archs`] says which a filter here can cover.
pub const ARCHS: &[&str] = &[
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
];

/// The architectures that can be added to a filter on this machine: libseccomp knows them, and
/// they share the native architecture's byte order.
pub fn supported_archs() -> Vec<&'static str> {
    ARCHS
        .iter()
        .copied()
        .filter(|arch| {
            let cfg =
                format!(r#"{{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["{arch}"]}}"#);
            serde_json::from_str::<oci_spec::runtime::LinuxSeccomp>(&cfg)
                .ok()
                .is_some_and(|s| crate::compile(&s).is_ok())
        })
        .collect()
}

/// Filter flags accepted in the configuration.
pub const KNOWN_FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// Filter flags passed on to the kernel (WAIT_KILLABLE_RECV only with a SCMP_ACT_NOTIFY rule,
/// the only case where it means something).
pub const SUPPORTED_FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name listed is one the crate compiles.
    #[test]
    fn listed_names_compile() {
        for action in ACTIONS {
            let cfg = format!(
                r#"{{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock", "syscalls": [{{"names": ["getpid"], "action": "{action}"}}]}}"#
            );
            let seccomp: oci_spec::runtime::LinuxSeccomp =
                serde_json::from_str(&cfg).expect("json");
            if *action != "SCMP_ACT_ALLOW" {
                crate::compile(&seccomp).unwrap_or_else(|e| panic!("{action}: {e}"));
            }
        }
        for op in OPERATORS {
            let cfg = format!(
                r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "args": [{{"index": 0, "value": 1, "op": "{op}"}}]}}]}}"#
            );
            let seccomp: oci_spec::runtime::LinuxSeccomp =
                serde_json::from_str(&cfg).expect("json");
            crate::compile(&seccomp).unwrap_or_else(|e| panic!("{op}: {e}"));
        }
        let archs = supported_archs();
        #[cfg(target_arch = "x86_64")]
        for native in ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"] {
            assert!(archs.contains(&native), "{archs:?}");
        }
        // A big-endian architecture cannot join a little-endian filter, and the reverse.
        #[cfg(target_endian = "little")]
        assert!(!archs.contains(&"SCMP_ARCH_S390X"), "{archs:?}");
        for flag in KNOWN_FLAGS {
            let cfg = format!(r#"{{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["{flag}"]}}"#);
            let seccomp: oci_spec::runtime::LinuxSeccomp =
                serde_json::from_str(&cfg).expect("json");
            crate::compile(&seccomp).unwrap_or_else(|e| panic!("{flag}: {e}"));
        }
    }
}
