use serde_json::{json, Value};

use super::*;

fn caps(list: &[&str]) -> Vec<String> {
    list.iter().map(|c| format!("CAP_{c}")).collect()
}

fn default_for(list: &[&str]) -> Value {
    let p = profile(&[], false, &caps(list), &DaemonProfile::Builtin)
        .unwrap()
        .unwrap();
    serde_json::to_value(p).unwrap()
}

/// Every syscall name some rule with `action` allows unconditionally.
fn allowed(p: &Value) -> Vec<String> {
    p["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r["args"].is_null())
        .flat_map(|r| r["names"].as_array().unwrap().clone())
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_builtin_profile_is_an_allow_list() {
    let p = default_for(&["CHOWN", "NET_RAW"]);
    assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(p["defaultErrnoRet"], 1);
    if cfg!(target_arch = "x86_64") {
        assert_eq!(
            p["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
    }
    let allowed = allowed(&p);
    for name in ["read", "execve", "clone3", "ptrace", "arch_prctl"] {
        assert_eq!(
            allowed.iter().any(|n| n == name),
            name != "clone3",
            "{name}"
        );
    }
    for name in [
        "mount",
        "unshare",
        "setns",
        "keyctl",
        "bpf",
        "pidfd_getfd",
        "migrate_pages",
        "socket",
        "personality",
        "clone",
    ] {
        assert!(!allowed.iter().any(|n| n == name), "{name}");
    }
    // clone3 is ENOSYS; clone and socket are filtered by argument.
    let rules = p["syscalls"].as_array().unwrap();
    let rule = |name: &str| -> Vec<&Value> {
        rules
            .iter()
            .filter(|r| r["names"].as_array().unwrap().contains(&json!(name)))
            .collect()
    };
    assert_eq!(rule("clone3")[0]["errnoRet"], 38);
    assert_eq!(
        rule("clone")[0]["args"],
        json!([{"index": 0, "value": 0x7e02_0000u32, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}])
    );
    assert_eq!(
        rule("socket")[0]["args"],
        json!([{"index": 0, "value": 40, "valueTwo": 0, "op": "SCMP_CMP_NE"}])
    );
    assert_eq!(rule("personality").len(), 5);
}

#[test]
fn capabilities_lift_what_docker_lifts() {
    let base = allowed(&default_for(&[]));
    for (cap, names) in [
        (
            "SYS_ADMIN",
            &[
                "mount", "umount2", "unshare", "setns", "clone", "clone3", "bpf", "syslog",
            ][..],
        ),
        (
            "SYS_PTRACE",
            &["kcmp", "pidfd_getfd", "process_madvise"][..],
        ),
        ("SYS_TIME", &["settimeofday", "clock_settime"][..]),
        (
            "SYS_MODULE",
            &["init_module", "finit_module", "delete_module"][..],
        ),
        ("SYS_BOOT", &["reboot"][..]),
        ("SYS_NICE", &["mbind", "set_mempolicy", "get_mempolicy"][..]),
        ("BPF", &["bpf"][..]),
        ("PERFMON", &["perf_event_open"][..]),
    ] {
        let with = allowed(&default_for(&[cap]));
        let added: Vec<&String> = with.iter().filter(|n| !base.contains(n)).collect();
        for name in names {
            assert!(added.iter().any(|n| n == name), "{cap}: {name}");
        }
        // kexec, swap, keyrings, migrate_pages: never.
        for name in ["kexec_load", "swapon", "keyctl", "add_key", "migrate_pages"] {
            assert!(!with.iter().any(|n| n == name), "{cap}: {name}");
        }
    }
    // With CAP_SYS_ADMIN, clone3 is no longer ENOSYS and clone not filtered by argument.
    let admin = default_for(&["SYS_ADMIN"]);
    assert!(!admin["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["errnoRet"] == 38 || r["names"] == json!(["clone"]) && !r["args"].is_null()));
}

#[test]
fn unconfined_privileged_and_daemon_profiles() {
    let custom = DaemonProfile::Custom {
        path: "/p.json".into(),
        text: r#"{"defaultAction":"SCMP_ACT_LOG"}"#.into(),
    };
    for daemon in [
        DaemonProfile::Builtin,
        DaemonProfile::Unconfined,
        custom.clone(),
    ] {
        assert!(profile(&["seccomp=unconfined".into()], false, &[], &daemon)
            .unwrap()
            .is_none());
        assert!(profile(&[], true, &[], &daemon).unwrap().is_none());
        // --privileged wins over a profile, as in Docker.
        assert!(profile(&["seccomp=builtin".into()], true, &[], &daemon)
            .unwrap()
            .is_none());
        let builtin = profile(&["seccomp=builtin".into()], false, &[], &daemon)
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::to_value(builtin).unwrap(),
            default_for(&[]),
            "{daemon:?}"
        );
    }
    assert!(profile(&[], false, &[], &DaemonProfile::Unconfined)
        .unwrap()
        .is_none());
    let p = profile(&[], false, &[], &custom).unwrap().unwrap();
    assert_eq!(
        serde_json::to_value(p).unwrap()["defaultAction"],
        "SCMP_ACT_LOG"
    );
    assert_eq!(custom.name(), "/p.json");
    assert_eq!(
        DaemonProfile::from_flag("").unwrap(),
        DaemonProfile::Builtin
    );
    assert_eq!(
        DaemonProfile::from_flag("unconfined").unwrap(),
        DaemonProfile::Unconfined
    );
    let e = DaemonProfile::from_flag("/nope.json").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("opening seccomp profile (/nope.json) failed"),
        "{e}"
    );
}

#[test]
fn profile_files_and_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.json");
    std::fs::write(
        &file,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]},
                {"architecture":"SCMP_ARCH_AARCH64","subArchitectures":["SCMP_ARCH_ARM"]}],
            "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", file.display());
    let p = profile(&[opt], false, &[], &DaemonProfile::Builtin)
        .unwrap()
        .unwrap();
    let p = serde_json::to_value(p).unwrap();
    if cfg!(target_arch = "x86_64") {
        assert_eq!(
            p["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
        );
    }
    assert_eq!(p["syscalls"][0]["names"], json!(["read", "write"]));
    // The docker CLI sends the profile's content.
    let text = std::fs::read_to_string(&file).unwrap();
    let p = profile(
        &[format!("seccomp={text}")],
        false,
        &[],
        &DaemonProfile::Builtin,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        serde_json::to_value(p).unwrap()["syscalls"][0]["names"],
        json!(["read", "write"])
    );
    let err = |opt: String| {
        profile(&[opt], false, &[], &DaemonProfile::Builtin)
            .unwrap_err()
            .to_string()
    };
    assert!(err("seccomp=/nope.json".into()).contains("/nope.json"));
    // Devices, FIFOs, directories and huge files are refused, not read.
    for path in ["/dev/zero", "/dev/stdin", "/"] {
        assert!(err(format!("seccomp={path}")).contains("failed"), "{path}");
    }
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert!(err(format!("seccomp={}", fifo.display())).contains("not a regular file"));
    let big = dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; (MAX_PROFILE + 1) as usize]).unwrap();
    assert!(err(format!("seccomp={}", big.display())).contains("larger than"));
    // What the runtime could not read is refused now, by name.
    let e = err(r#"seccomp={"defaultAction":"SCMP_ACT_BOGUS"}"#.into());
    assert!(e.starts_with("invalid seccomp profile:"), "{e}");
    let e = err(r#"seccomp={"defaultAction":"SCMP_ACT_ERRNO","listenerPath":"/a.sock"}"#.into());
    assert!(e.contains("listenerPath is not supported"), "{e}");
    let e = err("seccomp={not json".into());
    assert!(e.starts_with("Decoding seccomp profile failed"), "{e}");
}

#[test]
fn the_builtin_profile_compiles_to_a_small_filter() {
    for caps_added in [&[][..], &["SYS_ADMIN", "SYS_PTRACE"][..]] {
        let p = profile(&[], false, &caps(caps_added), &DaemonProfile::Builtin)
            .unwrap()
            .unwrap();
        let program = berth_seccomp::compile(&p).unwrap();
        eprintln!("{caps_added:?}: {} BPF instructions", program.len());
        assert!(program.len() < 2048, "{}", program.len());
    }
}
