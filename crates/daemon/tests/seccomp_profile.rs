#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too
//! The default seccomp profile is Docker's allow-list, end to end: a static probe
//! (`seccomp_probe.c`, built with `cc -static`) makes each syscall of a table in a container and
//! prints each errno; every one is checked against what Docker's profile answers (`EPERM`, the
//! `ENOSYS` of calls newer than the profile, or the kernel's own answer, taken from the same
//! probe with `seccomp=unconfined`). Capabilities lift exactly what Docker's `includes` lift;
//! custom profiles (`--security-opt seccomp=FILE`, berthd's `--seccomp-profile`) are read in
//! Docker's format, and `listenerPath` is refused.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const EPERM: &str = "1";
const ENOSYS: &str = "38";

/// What Docker's default profile does to a call of the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Refused with EPERM (not in the allow-list).
    Eperm,
    /// Refused with ENOSYS (clone3, or newer than every syscall the profile names).
    Enosys,
    /// Let through: the kernel answers, as without a filter.
    Pass,
}
use Expect::*;

/// The probe's calls: Docker's answer without added capabilities, and the capabilities whose
/// `includes` let the call through.
const TABLE: &[(&str, Expect, &[&str])] = &[
    ("getpid", Pass, &[]),
    ("mount", Eperm, &["SYS_ADMIN"]),
    ("umount2", Eperm, &["SYS_ADMIN"]),
    ("unshare", Eperm, &["SYS_ADMIN"]),
    ("setns", Eperm, &["SYS_ADMIN"]),
    ("fsopen", Eperm, &["SYS_ADMIN"]),
    ("keyctl", Eperm, &[]),
    ("add_key", Eperm, &[]),
    ("request_key", Eperm, &[]),
    ("bpf", Eperm, &["SYS_ADMIN", "BPF"]),
    ("perf_event_open", Eperm, &["SYS_ADMIN", "PERFMON"]),
    // Allowed since 4.8 (`minKernel`), when seccomp was made to hold under ptrace.
    ("ptrace", Pass, &[]),
    ("process_vm_readv", Pass, &[]),
    ("kcmp", Eperm, &["SYS_PTRACE"]),
    ("pidfd_getfd", Eperm, &["SYS_PTRACE"]),
    ("process_madvise", Eperm, &["SYS_PTRACE"]),
    ("kexec_load", Eperm, &[]),
    ("init_module", Eperm, &["SYS_MODULE"]),
    ("finit_module", Eperm, &["SYS_MODULE"]),
    ("reboot", Eperm, &["SYS_BOOT"]),
    ("swapon", Eperm, &[]),
    ("settimeofday", Eperm, &["SYS_TIME"]),
    ("clock_settime", Eperm, &["SYS_TIME"]),
    ("acct", Eperm, &["SYS_PACCT"]),
    ("personality_bad", Eperm, &[]),
    ("personality_linux", Pass, &[]),
    ("personality_query", Pass, &[]),
    ("clone_newuser", Eperm, &["SYS_ADMIN"]),
    ("clone", Pass, &[]),
    ("clone3", Enosys, &["SYS_ADMIN"]),
    ("socket_vsock", Eperm, &[]),
    ("socket_inet", Pass, &[]),
    ("userfaultfd", Eperm, &[]),
    ("migrate_pages", Eperm, &[]),
    ("move_pages", Eperm, &[]),
    ("mbind", Eperm, &["SYS_NICE"]),
    ("listmount", Enosys, &[]),
    ("statmount", Enosys, &[]),
    ("open_tree_attr", Enosys, &[]),
    ("lsm_list_modules", Enosys, &[]),
    ("mseal", Enosys, &[]),
    ("cachestat", Enosys, &[]),
    ("getxattrat", Enosys, &[]),
    ("file_getattr", Enosys, &[]),
    ("set_mempolicy_home_node", Enosys, &[]),
    ("made_up_1000", Enosys, &[]),
];

/// The probe, built static once per test; None (skipped) without a C compiler, which fails the
/// test under `CI=true`.
fn probe(dir: &Path) -> Option<PathBuf> {
    let src = dir.join("probe.c");
    let bin = dir.join("probe");
    std::fs::write(&src, include_str!("seccomp_probe.c")).unwrap();
    let out = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(&bin)
        .arg(&src)
        .output();
    match out {
        Ok(out) if out.status.success() => Some(bin),
        other => {
            assert!(
                std::env::var("CI").is_err(),
                "cc -static (gcc, libc6-dev) is needed (CI=true: no skipping): {other:?}"
            );
            eprintln!("skipped: cc -static failed: {other:?}");
            None
        }
    }
}

/// Runs the probe in a busybox container with `args` (docker run options) and returns its
/// answers by call.
fn run_probe(d: &Daemon, probe: &Path, args: &[&str]) -> BTreeMap<String, String> {
    let volume = format!("{}:/probe:ro", probe.display());
    let mut cmd = vec!["run", "--rm", "-v", &volume];
    cmd.extend(args);
    cmd.extend(["bb:local", "/probe"]);
    let out = d.ok(&cmd);
    let answers: BTreeMap<String, String> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (name, _, _) in TABLE {
        assert!(answers.contains_key(*name), "{name} missing: {out}");
    }
    answers
}

/// Checks every call of `filtered` against Docker's answer with `caps` added, the kernel's
/// answers without a filter being `unconfined`.
fn check(
    filtered: &BTreeMap<String, String>,
    unconfined: &BTreeMap<String, String>,
    caps: &[&str],
) -> Vec<String> {
    let mut wrong = Vec::new();
    for &(name, default, lifted_by) in TABLE {
        let expect = if lifted_by.iter().any(|c| caps.contains(c)) {
            Pass
        } else {
            default
        };
        let want = match expect {
            Eperm => EPERM,
            Enosys => ENOSYS,
            Pass => &unconfined[name],
        };
        let got = &filtered[name];
        if got != want {
            wrong.push(format!(
                "{name} (caps {caps:?}): {got}, expected {want} ({expect:?}; unconfined: {})",
                unconfined[name]
            ));
        }
    }
    wrong
}

#[test]
fn the_default_profile_answers_as_dockers() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(probe) = probe(dir.path()) else {
        return;
    };
    let d = Daemon::start();
    d.busybox("bb:local");
    let unconfined = run_probe(&d, &probe, &["--security-opt", "seccomp=unconfined"]);
    let filtered = run_probe(&d, &probe, &[]);
    eprintln!("unconfined: {unconfined:?}\nfiltered: {filtered:?}");
    let wrong = check(&filtered, &unconfined, &[]);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The probe tells the filter from the kernel where it matters: the kernel itself lets these
    // through (or answers otherwise) without a filter (the calls of Linux 5.10 and before; the
    // newer ones too, on a kernel that has them).
    for name in [
        "personality_bad",
        "pidfd_getfd",
        "process_madvise",
        "userfaultfd",
        "clone_newuser",
        "clone3",
    ] {
        assert_ne!(unconfined[name], filtered[name], "{name}");
    }
    for (name, _, _) in TABLE.iter().filter(|(_, e, _)| *e == Enosys) {
        assert!(
            unconfined[*name] == ENOSYS || unconfined[*name] != filtered[*name],
            "{name}"
        );
    }
    // --privileged: no filter either.
    let privileged = run_probe(&d, &probe, &["--privileged"]);
    for name in ["personality_bad", "clone3", "listmount", "made_up_1000"] {
        assert_eq!(privileged[name], unconfined[name], "{name}");
    }
    // And a plain shell still works.
    assert_eq!(d.ok(&["run", "--rm", "bb:local", "echo", "ok"]), "ok\n");
}

#[test]
fn capabilities_lift_exactly_what_dockers_includes_lift() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(probe) = probe(dir.path()) else {
        return;
    };
    let d = Daemon::start();
    d.busybox("bb:local");
    let mut wrong = Vec::new();
    for cap in [
        "SYS_ADMIN",
        "SYS_PTRACE",
        "SYS_TIME",
        "SYS_MODULE",
        "SYS_BOOT",
        "SYS_NICE",
        "BPF",
        "PERFMON",
    ] {
        let unconfined = run_probe(
            &d,
            &probe,
            &["--cap-add", cap, "--security-opt", "seccomp=unconfined"],
        );
        let filtered = run_probe(&d, &probe, &["--cap-add", cap]);
        wrong.extend(check(&filtered, &unconfined, &[cap]));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A profile in Docker's format with includes, excludes, minKernel and errnoRet: mkdir is
/// EACCES; rmdir EROFS (minKernel 4.0, met); chmod EPERM only on a kernel from 99.0 (not met);
/// symlink EXDEV unless CAP_SYS_ADMIN; link EXDEV only with CAP_SYS_ADMIN; unlink EBUSY only on
/// `arches` ppc64le (never the host in CI).
const CUSTOM: &str = r#"{
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30,
         "includes": {"minKernel": "4.0"}},
        {"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO",
         "includes": {"minKernel": "99.0"}},
        {"names": ["symlink", "symlinkat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18,
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["link", "linkat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18,
         "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["unlink", "unlinkat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 16,
         "includes": {"arches": ["ppc64le"]}}
    ]
}"#;

const SCRIPT: &str = "mkdir /d 2>&1; rmdir /tmp 2>&1; chmod 700 /tmp && echo chmod ok; \
                      ln -s /x /s 2>&1 && echo symlink ok; ln /bin/sh /h 2>&1 && echo link ok; \
                      rm /h 2>&1 && echo unlink ok; true";

#[test]
fn custom_profiles_in_dockers_format_load_and_act() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("custom.json");
    std::fs::write(&file, CUSTOM).unwrap();
    let opt = format!("seccomp={}", file.display());
    let d = Daemon::start();
    d.busybox("bb:local");
    // The docker CLI reads the file and sends its content.
    let out = d.ok(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "bb:local",
        "sh",
        "-c",
        SCRIPT,
    ]);
    assert!(
        out.contains("can't create directory '/d': Permission denied"),
        "{out}"
    );
    assert!(out.contains("'/tmp': Read-only file system"), "{out}");
    assert!(out.contains("chmod ok"), "{out}");
    assert!(
        out.contains("Invalid cross-device link") && !out.contains("symlink ok"),
        "{out}"
    );
    assert!(
        out.contains("link ok") && out.contains("unlink ok"),
        "{out}"
    );
    let out = d.ok(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "--security-opt",
        &opt,
        "bb:local",
        "sh",
        "-c",
        SCRIPT,
    ]);
    assert!(out.contains("symlink ok"), "{out}");
    assert!(!out.contains("\nlink ok"), "{out}");
    assert!(out.contains("Invalid cross-device link"), "{out}");

    // listenerPath: refused, saying why.
    let agent = dir.path().join("agent.json");
    std::fs::write(
        &agent,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock",
            "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    )
    .unwrap();
    let agent_opt = format!("seccomp={}", agent.display());
    let out = d.docker(&[
        "run",
        "--rm",
        "--security-opt",
        &agent_opt,
        "bb:local",
        "true",
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out).1.contains("listenerPath is not supported"),
        "{}",
        text(&out).1
    );
    // Docker's own refusals.
    let both = dir.path().join("both.json");
    std::fs::write(
        &both,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],
            "archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#,
    )
    .unwrap();
    let both_opt = format!("seccomp={}", both.display());
    let out = d.docker(&[
        "run",
        "--rm",
        "--security-opt",
        &both_opt,
        "bb:local",
        "true",
    ]);
    assert!(
        text(&out)
            .1
            .contains("'architectures' and 'archMap' were specified"),
        "{}",
        text(&out).1
    );
}

#[test]
fn berthds_seccomp_profile_flag() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("custom.json");
    std::fs::write(&file, CUSTOM).unwrap();
    let path = file.display().to_string();
    let info = |d: &Daemon| d.ok(&["info", "--format", "{{json .SecurityOptions}}"]);

    // A file: containers without a seccomp option get it; seccomp=builtin the built-in one.
    let d = Daemon::start_with_args(&["--seccomp-profile", &path], |_| {});
    d.busybox("bb:local");
    assert_eq!(info(&d), format!("[\"name=seccomp,profile={path}\"]\n"));
    let out = d.ok(&["run", "--rm", "bb:local", "sh", "-c", SCRIPT]);
    assert!(out.contains("Permission denied"), "{out}");
    let userns = ["unshare", "-U", "-r", "id", "-u"];
    assert_eq!(
        d.ok(&[&["run", "--rm", "bb:local"][..], &userns].concat()),
        "0\n"
    );
    let out = d.docker(
        &[
            &[
                "run",
                "--rm",
                "--security-opt",
                "seccomp=builtin",
                "bb:local",
            ][..],
            &userns,
        ]
        .concat(),
    );
    assert_ne!(out.status.code(), Some(0));
    drop(d);

    // unconfined: no filter.
    let d = Daemon::start_with_args(&["--seccomp-profile", "unconfined"], |_| {});
    d.busybox("bb:local");
    assert_eq!(info(&d), "[\"name=seccomp,profile=unconfined\"]\n");
    assert_eq!(
        d.ok(&[&["run", "--rm", "bb:local"][..], &userns].concat()),
        "0\n"
    );
    drop(d);

    // builtin (the default) says so.
    let d = Daemon::start();
    assert_eq!(info(&d), "[\"name=seccomp,profile=builtin\"]\n");
    drop(d);

    // A profile berthd cannot honour stops it at start, saying why.
    let agent = dir.path().join("agent.json");
    std::fs::write(
        &agent,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock"}"#,
    )
    .unwrap();
    for (profile, message) in [
        (agent.display().to_string(), "listenerPath is not supported"),
        (
            dir.path().join("missing.json").display().to_string(),
            "opening seccomp profile",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_berthd"))
            .args([
                "--seccomp-profile",
                &profile,
                "--config-file",
                "/nonexistent",
            ])
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--host")
            .arg(format!("unix://{}", dir.path().join("s.sock").display()))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{stderr}");
        assert!(!dir.path().join("data").exists(), "{stderr}");
    }
}
