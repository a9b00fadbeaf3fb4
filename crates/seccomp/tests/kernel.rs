//! Loads compiled programs into forked children on the real kernel and checks what the filter
//! does to their syscalls.
//!
//! Each child sets `no_new_privs` and `RLIMIT_CORE = 0` (SIGSYS dumps core), loads the program,
//! makes raw syscalls, and reports through its exit code. The child only makes async-signal-safe
//! calls and never allocates: the test binary is multi-threaded when it forks. Every wait is
//! bounded: a child still running after 10 s is killed and the test fails.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use berth_seccomp::{compile, Program};
use nix::errno::Errno;
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::LinuxSeccomp;

/// Exit codes for a child that failed before or outside its checks (errnos stay below 134).
const NNP_FAILED: i32 = 250;
const LOAD_FAILED: i32 = 251;
const UNEXPECTED: i32 = 252;
const SUCCEEDED: i32 = 253;

const TIMEOUT: Duration = Duration::from_secs(10);

fn program(json: serde_json::Value) -> Program {
    let seccomp: LinuxSeccomp = serde_json::from_value(json).expect("valid LinuxSeccomp");
    compile(&seccomp).expect("compiles")
}

/// Forks; the child sets `no_new_privs`, loads `program`, runs `body` and exits with its result.
fn run_in_child(program: &Program, body: impl FnOnce() -> i32) -> WaitStatus {
    // SAFETY: the child runs only async-signal-safe code that does not allocate (prctl, setrlimit,
    // the seccomp(2) load, raw syscalls) and leaves with `_exit`, so state copied from the
    // parent's other threads (locks, allocator) is never touched.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = if nix::sys::prctl::set_no_new_privs().is_err()
                || setrlimit(Resource::RLIMIT_CORE, 0, 0).is_err()
            {
                NNP_FAILED
            } else if !matches!(program.load(), Ok(None)) {
                // Failed, or returned a listener although nothing is notified.
                LOAD_FAILED
            } else {
                body()
            };
            // SAFETY: `_exit` ends the child without running the parent's atexit handlers or
            // destructors; always sound.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => wait_bounded(child),
    }
}

/// Waits for `child` at most [`TIMEOUT`]; kills and reaps it, then panics, if it overruns.
fn wait_bounded(child: Pid) -> WaitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)).expect("waitpid") {
            WaitStatus::StillAlive if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            WaitStatus::StillAlive => {
                let _ = kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
                panic!("child {child} still running after {TIMEOUT:?}; killed it");
            }
            status => return status,
        }
    }
}

fn exited(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        other => panic!("child did not exit normally: {other:?}"),
    }
}

/// A raw syscall's outcome as an exit code: the errno if it failed, else [`SUCCEEDED`].
fn outcome(ret: libc::c_long) -> i32 {
    if ret == -1 {
        Errno::last_raw()
    } else {
        SUCCEEDED
    }
}

#[test]
fn mkdir_gets_configured_errno() {
    let p = program(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    }));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("denied");
    let c_path = CString::new(path.as_os_str().as_bytes()).expect("no NUL");

    let status = run_in_child(&p, || {
        // SAFETY: `c_path` is a valid NUL-terminated string that outlives the calls.
        let (via_libc, via_mkdirat) = unsafe {
            (
                libc::mkdir(c_path.as_ptr(), 0o755),
                libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, c_path.as_ptr(), 0o755),
            )
        };
        let via_libc = outcome(via_libc.into());
        if outcome(via_mkdirat) != via_libc {
            return UNEXPECTED;
        }
        via_libc
    });
    assert_eq!(exited(status), libc::EACCES);
    assert!(!path.exists());

    // Without the filter, the same mkdir works (so EACCES came from seccomp).
    std::fs::create_dir(&path).expect("mkdir without filter");
}

#[test]
fn arg_condition_is_honoured_both_ways() {
    // Deny only the persona query `personality(0xffffffff)`.
    let p = program(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{
            "names": ["personality"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 13,
            "args": [{"index": 0, "value": 0xffff_ffff_u64, "op": "SCMP_CMP_EQ"}]
        }]
    }));
    let status = run_in_child(&p, || {
        // SAFETY: personality(2) takes an integer; 0 (PER_LINUX) only changes this child.
        let (query, set) = unsafe {
            (
                libc::syscall(libc::SYS_personality, 0xffff_ffff_u64),
                libc::syscall(libc::SYS_personality, 0),
            )
        };
        if outcome(set) != SUCCEEDED {
            return UNEXPECTED;
        }
        outcome(query)
    });
    assert_eq!(exited(status), libc::EACCES);
}

#[test]
fn conditions_on_distinct_args_are_anded() {
    // Deny kill(self, 0) only: both arguments must match.
    let me = std::process::id();
    let p = program(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{
            "names": ["kill"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 13,
            "args": [
                {"index": 0, "value": 0, "op": "SCMP_CMP_NE"},
                {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}
            ]
        }]
    }));
    let status = run_in_child(&p, || {
        let parent = libc::c_long::from(me.cast_signed());
        // SAFETY: kill(2) with signal 0 only checks the target exists; SIGCONT to ourselves,
        // running, has no effect.
        let (both, only_sig_matches, only_pid_matches) = unsafe {
            (
                libc::syscall(libc::SYS_kill, parent, 0),
                libc::syscall(libc::SYS_kill, 0, 0),
                libc::syscall(libc::SYS_kill, parent, libc::SIGCONT),
            )
        };
        if outcome(only_sig_matches) != SUCCEEDED || outcome(only_pid_matches) != SUCCEEDED {
            return UNEXPECTED;
        }
        outcome(both)
    });
    assert_eq!(exited(status), libc::EACCES);
}

#[test]
fn masked_eq_and_same_arg_conditions() {
    // umask: denied when (mask & 0o700) == 0o700, or (second rule) when mask is exactly 0o027 or
    // 0o070 (two conditions on one argument are ORed, as in runc).
    let p = program(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["umask"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 13,
                "args": [{"index": 0, "value": 0o700, "valueTwo": 0o700, "op": "SCMP_CMP_MASKED_EQ"}]
            },
            {
                "names": ["umask"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 13,
                "args": [
                    {"index": 0, "value": 0o027, "op": "SCMP_CMP_EQ"},
                    {"index": 0, "value": 0o070, "op": "SCMP_CMP_EQ"}
                ]
            }
        ]
    }));
    let status = run_in_child(&p, || {
        let umask = |mask: libc::c_long| {
            // SAFETY: umask(2) takes an integer and only changes this child's mask.
            outcome(unsafe { libc::syscall(libc::SYS_umask, mask) })
        };
        let denied = [0o700, 0o777, 0o027, 0o070];
        let allowed = [0o022, 0o077, 0o600, 0o007];
        if denied.iter().any(|&m| umask(m) != libc::EACCES) {
            return UNEXPECTED;
        }
        if allowed.iter().any(|&m| umask(m) != SUCCEEDED) {
            return UNEXPECTED;
        }
        0
    });
    assert_eq!(exited(status), 0);
}

#[test]
fn default_errno_denies_everything_not_allowed() {
    for (errno_ret, expected) in [(Some(95), 95), (None, libc::EPERM)] {
        let mut config = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["exit_group", "exit"], "action": "SCMP_ACT_ALLOW"}]
        });
        if let Some(e) = errno_ret {
            config["defaultErrnoRet"] = e.into();
        }
        let p = program(config);
        let status = run_in_child(&p, || {
            // SAFETY: getpid/getppid take no arguments and cannot fail unfiltered.
            let (pid, ppid) = unsafe {
                (
                    libc::syscall(libc::SYS_getpid),
                    libc::syscall(libc::SYS_getppid),
                )
            };
            if outcome(pid) != outcome(ppid) {
                return UNEXPECTED;
            }
            outcome(ppid)
        });
        assert_eq!(exited(status), expected, "defaultErrnoRet {errno_ret:?}");
    }
}

#[test]
fn kill_actions_end_the_child_with_sigsys() {
    for action in [
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL",
        "SCMP_ACT_TRAP",
    ] {
        let p = program(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": action}]
        }));
        let status = run_in_child(&p, || {
            // SAFETY: getppid takes no arguments.
            unsafe { libc::syscall(libc::SYS_getppid) };
            UNEXPECTED
        });
        assert!(
            matches!(status, WaitStatus::Signaled(_, Signal::SIGSYS, _)),
            "{action}: {status:?}"
        );
    }
}

#[test]
fn log_action_allows_the_syscall() {
    let p = program(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_LOG"}]
    }));
    // SAFETY: getppid takes no arguments.
    let status = run_in_child(&p, || outcome(unsafe { libc::syscall(libc::SYS_getppid) }));
    assert_eq!(exited(status), SUCCEEDED);
}

#[test]
fn filter_flags_are_accepted_by_the_kernel() {
    let p = program(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": [
            "SECCOMP_FILTER_FLAG_TSYNC",
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW"
        ],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    }));
    // SAFETY: getppid takes no arguments.
    let status = run_in_child(&p, || outcome(unsafe { libc::syscall(libc::SYS_getppid) }));
    assert_eq!(exited(status), libc::EACCES);
}

#[test]
fn multi_arch_filter_loads_and_works() {
    let p = program(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"],
        "syscalls": [{"names": ["getppid", "socketcall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    }));
    // SAFETY: getppid takes no arguments.
    let status = run_in_child(&p, || outcome(unsafe { libc::syscall(libc::SYS_getppid) }));
    assert_eq!(exited(status), libc::EACCES);
}

#[test]
fn loading_twice_stacks_filters() {
    let p = program(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    }));
    let status = run_in_child(&p, || {
        if !matches!(p.load(), Ok(None)) {
            return LOAD_FAILED;
        }
        // SAFETY: getppid takes no arguments.
        outcome(unsafe { libc::syscall(libc::SYS_getppid) })
    });
    assert_eq!(exited(status), libc::EACCES);
}

#[test]
fn syscalls_newer_than_the_profile_get_enosys() {
    // The largest syscall named is exit_group (231 on x86-64, 94 on aarch64): getppid, below it
    // and unnamed, gets the default errno; process_madvise (440 on both) and a number no
    // kernel has get ENOSYS, so that a libc falls back. With ENOSYS as the default errno or an
    // allowing default, nothing changes.
    for (default, errno_ret, below, above) in [
        ("SCMP_ACT_ERRNO", None, libc::EPERM, libc::ENOSYS),
        ("SCMP_ACT_ERRNO", Some(13), libc::EACCES, libc::ENOSYS),
        ("SCMP_ACT_ERRNO", Some(38), libc::ENOSYS, libc::ENOSYS),
    ] {
        let mut config = serde_json::json!({
            "defaultAction": default,
            "syscalls": [{"names": ["exit_group", "exit"], "action": "SCMP_ACT_ALLOW"}]
        });
        if let Some(e) = errno_ret {
            config["defaultErrnoRet"] = e.into();
        }
        let p = program(config);
        for (nr, expected) in [
            (libc::SYS_getppid, below),
            (libc::SYS_process_madvise, above),
            (4000, above),
        ] {
            let status = run_in_child(&p, || {
                // SAFETY: raw syscalls with no pointer arguments (process_madvise gets an
                // invalid descriptor and a NULL vector, which it would refuse unfiltered).
                outcome(unsafe { libc::syscall(nr, -1, 0, 0, 0, 0) })
            });
            assert_eq!(exited(status), expected, "{default} {errno_ret:?} nr {nr}");
        }
    }
}
