//! Tests of [`super`]: profiles compiled with libseccomp and checked as BPF.

use super::*;

fn config(json: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(json).expect("valid LinuxSeccomp")
}

fn compiled(json: serde_json::Value) -> Result<Program, Error> {
    compile(&config(json))
}

/// The program as comparable tuples (`sock_filter` has no `PartialEq` without libc's
/// `extra_traits`).
fn insns(p: &Program) -> Vec<(u16, u8, u8, u32)> {
    p.instructions
        .iter()
        .map(|i| (i.code, i.jt, i.jf, i.k))
        .collect()
}

fn allow_all() -> Program {
    compiled(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"})).unwrap()
}

#[test]
fn small_config_yields_non_empty_program() {
    let p = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    }))
    .unwrap();
    assert!(!p.is_empty());
    assert!(p.len() > allow_all().len());
    assert_eq!(p.flags(), 0);
    // The ERRNO(13) return value is in the program.
    let ret = libc::SECCOMP_RET_ERRNO | 13;
    assert!(insns(&p).iter().any(|&(_, _, _, k)| k == ret));
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let with_unknown = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["no_such_syscall", "mkdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["another_bogus_one"], "action": "SCMP_ACT_KILL"}
        ]
    }))
    .unwrap();
    let without = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    }))
    .unwrap();
    assert_eq!(insns(&with_unknown), insns(&without));
}

#[test]
fn syscalls_of_other_architectures_are_accepted() {
    // Known to libseccomp but not on x86_64: resolved per architecture, not an error.
    compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["socketcall", "_llseek", "read"], "action": "SCMP_ACT_ALLOW"}]
    }))
    .unwrap();
}

#[test]
fn notify_rules_compile_and_ask_for_a_listener() {
    let p = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    }))
    .unwrap();
    assert!(p.uses_notify());
    assert_eq!(p.flags(), libc::SECCOMP_FILTER_FLAG_NEW_LISTENER);
    // The USER_NOTIF return value is in the program.
    assert!(insns(&p)
        .iter()
        .any(|&(_, _, _, k)| k == libc::SECCOMP_RET_USER_NOTIF));

    // Without a notify rule, no listener, even with listenerPath set (as runc).
    let p = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "listenerMetadata": "m",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    }))
    .unwrap();
    assert!(!p.uses_notify());
    assert_eq!(p.flags(), 0);
    assert!(!allow_all().uses_notify());

    // A notify rule whose names are all unknown still asks for the listener it promises.
    let p = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["no_such_syscall"], "action": "SCMP_ACT_NOTIFY"}]
    }))
    .unwrap();
    assert!(p.uses_notify());
    assert_eq!(insns(&p), insns(&allow_all()));
}

#[test]
fn notify_needs_a_listener_path() {
    for path in [None, Some("")] {
        let mut config = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}
            ]
        });
        if let Some(path) = path {
            config["listenerPath"] = path.into();
        }
        let err = compiled(config).unwrap_err();
        assert!(
            matches!(err, Error::NotifyWithoutListener { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            r#"seccomp: syscalls ["mkdir", "mkdirat"]: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath, which is not set"#
        );
    }
}

#[test]
fn notify_cannot_be_the_default_action() {
    let err = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_NOTIFY",
        "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["write"], "action": "SCMP_ACT_ALLOW"}]
    }))
    .unwrap_err();
    assert!(matches!(err, Error::NotifyDefaultAction), "{err:?}");
    assert_eq!(
        err.to_string(),
        "seccomp: defaultAction: SCMP_ACT_NOTIFY cannot be the default action, only the \
         action of listed syscalls"
    );
}

#[test]
fn notify_takes_no_errno_ret() {
    let err = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY", "errnoRet": 1}]
    }))
    .unwrap_err();
    assert!(matches!(err, Error::ErrnoRetNotSupported { .. }), "{err:?}");
}

#[test]
fn notify_listener_flags() {
    let flags = |list: serde_json::Value, notify: bool| {
        let mut config = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "flags": list,
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        });
        if notify {
            config["syscalls"][0]["action"] = "SCMP_ACT_NOTIFY".into();
        }
        compiled(config).unwrap().flags()
    };
    // TSYNC with a listener needs TSYNC_ESRCH (the kernel's rule); without one, it does not.
    assert_eq!(
        flags(serde_json::json!(["SECCOMP_FILTER_FLAG_TSYNC"]), true),
        libc::SECCOMP_FILTER_FLAG_TSYNC
            | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
            | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    );
    assert_eq!(
        flags(serde_json::json!(["SECCOMP_FILTER_FLAG_TSYNC"]), false),
        libc::SECCOMP_FILTER_FLAG_TSYNC
    );
    // WAIT_KILLABLE_RECV goes to the kernel only with a listener.
    assert_eq!(
        flags(
            serde_json::json!([
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                "SECCOMP_FILTER_FLAG_LOG"
            ]),
            true
        ),
        libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            | libc::SECCOMP_FILTER_FLAG_LOG
            | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    );
    assert_eq!(
        flags(
            serde_json::json!([
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                "SECCOMP_FILTER_FLAG_LOG"
            ]),
            false
        ),
        libc::SECCOMP_FILTER_FLAG_LOG
    );
}

#[test]
fn rule_equal_to_default_action_is_skipped() {
    let p = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}]
    }))
    .unwrap();
    assert_eq!(insns(&p), insns(&allow_all()));

    // Same for ERRNO with the same return code (EPERM by default on both sides)... (the
    // name still counts for the ENOSYS stub in front: compare what follows it)
    let base = compiled(serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO"})).unwrap();
    let same = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    }))
    .unwrap();
    assert!(insns(&same).ends_with(&insns(&base)));
    assert!(insns(&same).len() > insns(&base).len());

    // ...but not with a different one.
    let other = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    }))
    .unwrap();
    assert!(!insns(&other).ends_with(&insns(&base)));
}

#[test]
fn args_conditions_compile() {
    let unconditional = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO"}]
    }))
    .unwrap();
    for op in [
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    ] {
        let p = compiled(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{
                "names": ["personality"],
                "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": 255, "valueTwo": 8, "op": op}]
            }]
        }))
        .unwrap_or_else(|e| panic!("{op}: {e}"));
        assert_ne!(insns(&p), insns(&unconditional), "{op}");
    }

    // Distinct arguments (ANDed) and the same argument twice (one rule each, ORed).
    for args in [
        serde_json::json!([
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 2, "op": "SCMP_CMP_NE"}
        ]),
        serde_json::json!([
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}
        ]),
    ] {
        compiled(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": args}]
        }))
        .unwrap();
    }
}

#[test]
fn arg_index_out_of_range_is_an_error() {
    let err = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{
            "names": ["kill"],
            "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]
        }]
    }))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"seccomp: syscall "kill": argument index 6 is out of range (0-5)"#
    );
}

#[test]
fn errno_ret_rules() {
    // Not allowed with an action that returns no errno (the spec says fail).
    let err = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["a", "b"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]
    }))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"seccomp: syscalls ["a", "b"]: errno return code is not supported with action SCMP_ACT_KILL"#
    );
    let err = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "defaultErrnoRet": 1
    }))
    .unwrap_err();
    assert!(matches!(err, Error::ErrnoRetNotSupported { .. }), "{err:?}");

    // Must fit in SECCOMP_RET_DATA.
    let err = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 70000
    }))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "seccomp: defaultAction: errno return code 70000 is out of range (0-65535)"
    );

    // TRACE takes one too; defaultErrnoRet is honoured.
    compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [{"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 5}]
    }))
    .unwrap();
}

#[test]
fn empty_syscall_name_is_an_error() {
    let err = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": [""], "action": "SCMP_ACT_ERRNO"}]
    }))
    .unwrap_err();
    assert!(matches!(err, Error::EmptySyscallName { .. }), "{err:?}");
}

#[test]
fn all_actions_compile() {
    for action in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_LOG",
    ] {
        compiled(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": action}]
        }))
        .unwrap_or_else(|e| panic!("{action}: {e}"));
        compiled(serde_json::json!({
            "defaultAction": action,
            "syscalls": [{"names": ["exit_group"], "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap_or_else(|e| panic!("default {action}: {e}"));
    }
    compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    }))
    .unwrap();
}

#[test]
fn flags_are_translated() {
    let p = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": [
            "SECCOMP_FILTER_FLAG_TSYNC",
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
        ]
    }))
    .unwrap();
    assert_eq!(
        p.flags(),
        libc::SECCOMP_FILTER_FLAG_TSYNC
            | libc::SECCOMP_FILTER_FLAG_LOG
            | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
    );
}

#[test]
fn architectures_are_added() {
    let native_only = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_NATIVE"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    }))
    .unwrap();
    let multi = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                          "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    }))
    .unwrap();
    assert!(multi.len() > native_only.len());
    // The native architecture stays in the filter even when not listed.
    let foreign = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_AARCH64"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
    }))
    .unwrap();
    assert!(insns(&foreign)
        .iter()
        .any(|&(_, _, _, k)| k == NATIVE_AUDIT_ARCH));
}

/// `AUDIT_ARCH_*` of the build target, which the filter's architecture check compares with.
#[cfg(target_arch = "x86_64")]
const NATIVE_AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const NATIVE_AUDIT_ARCH: u32 = 0xc000_00b7;

#[test]
fn large_rule_sets_compile() {
    let names: Vec<String> = [
        "read", "write", "open", "close", "stat", "fstat", "lstat", "poll", "lseek", "mmap",
    ]
    .iter()
    .cycle()
    .take(300)
    .map(|s| (*s).to_owned())
    .collect();
    let p = compiled(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
    }))
    .unwrap();
    assert!(!p.is_empty());
}

#[test]
fn unknown_enum_values_are_rejected_when_parsing() {
    for json in [
        serde_json::json!({"defaultAction": "SCMP_ACT_BOGUS"}),
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_PDP11"]}),
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]}),
    ] {
        assert!(
            serde_json::from_value::<LinuxSeccomp>(json.clone()).is_err(),
            "{json}"
        );
    }
}

#[test]
fn program_debug_shows_size_and_flags() {
    let s = format!("{:?}", allow_all());
    assert!(s.starts_with("Program { flags: 0x0, len: "), "{s}");
    assert!(s.contains("notify: false"), "{s}");
}
