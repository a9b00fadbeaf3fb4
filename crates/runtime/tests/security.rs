//! What confines the process: capabilities, seccomp, no_new_privs, rlimits, user and groups,
//! umask; and the escapes the runtime must close (leaked descriptors, a cwd outside the root,
//! overwriting the runtime binary through /proc/PID/exe).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use berth_tests::Bundle;
use serde_json::json;

const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn sh(script: &str) -> Bundle {
    Bundle::new(RUNTIME, &["sh", "-c", script])
}

#[test]
fn without_cap_sys_admin_mount_and_hostname_fail() {
    // The default spec's capabilities are runc's: no CAP_SYS_ADMIN.
    let b = sh("mount -t tmpfs none /mnt 2>&1; echo mount=$?; hostname evil 2>&1; echo hostname=$?; grep CapEff /proc/self/status");
    let out = b.run().ok().stdout;
    assert!(
        out.contains("mount=1") || out.contains("mount=255"),
        "{out}"
    );
    assert!(out.contains("hostname=1"), "{out}");
    // runc's default set: CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE.
    assert!(out.contains("CapEff:\t0000000020000420"), "{out}");
}

#[test]
fn with_cap_sys_admin_mount_works() {
    let mut b = sh("mkdir -p /mnt/x && mount -t tmpfs none /mnt/x && echo mounted");
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push("CAP_SYS_ADMIN".into());
    }
    b.save();
    assert_eq!(b.run().ok().stdout, "mounted\n");
}

#[test]
fn seccomp_denies_with_the_configured_errno() {
    let mut b = sh("mkdir /tmp/denied 2>&1; echo rc=$?; touch /tmp/allowed && echo touched");
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    });
    b.save();
    let out = b.run().ok().stdout;
    assert!(out.contains("Permission denied"), "{out}");
    assert!(out.contains("rc=1"), "{out}");
    assert!(out.contains("touched"), "{out}");
    assert!(!b.rootfs().join("tmp/denied").exists());
}

#[test]
fn seccomp_without_no_new_privileges_loads_too() {
    let mut b = sh("mkdir /tmp/denied 2>&1; grep -E 'NoNewPrivs|Seccomp:' /proc/self/status");
    b.config["process"]["noNewPrivileges"] = false.into();
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    b.save();
    let out = b.run().ok().stdout;
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("NoNewPrivs:\t0"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
}

#[test]
fn user_groups_umask_rlimits_and_no_new_privs_are_as_configured() {
    let mut b = sh("id; umask; ulimit -n; ulimit -Hn; ulimit -s; grep NoNewPrivs /proc/self/status; touch /tmp/f; stat -c %a /tmp/f");
    let p = &mut b.config["process"];
    p["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [65534], "umask": 63});
    p["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 900},
        {"type": "RLIMIT_STACK", "soft": 4194304, "hard": 4194304}
    ]);
    p["noNewPrivileges"] = true.into();
    b.save();
    let out = b.run().ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "uid=1000(user) gid=1000(user) groups=65534(nogroup)",
        "{out}"
    );
    assert_eq!(lines[1], "0077");
    assert_eq!(lines[2], "512");
    assert_eq!(lines[3], "900");
    assert_eq!(lines[4], "4096");
    assert_eq!(lines[5], "NoNewPrivs:\t1");
    assert_eq!(lines[6], "600");
}

#[test]
fn rlimit_above_the_hard_limit_is_a_clear_error() {
    let mut b = sh("true");
    b.config["process"]["rlimits"] =
        json!([{"type": "RLIMIT_NOFILE", "soft": 1048576, "hard": 1048576}]);
    b.save();
    let out = b.create();
    assert_ne!(out.code(), 0);
    assert!(
        out.stderr.contains("RlimitNofile") || out.stderr.contains("RLIMIT_NOFILE"),
        "{out:?}"
    );
    assert!(!b.state_root().join(&b.id).exists());
}

/// Makes `fd` of this process the runtime's descriptor 3, inherited (not close-on-exec), as a
/// caller that leaks a descriptor would.
fn pass_as_fd3(cmd: &mut std::process::Command, fd: std::os::fd::RawFd) {
    // SAFETY: (test) the closure only calls dup2 and fcntl, which are async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            // dup2 onto itself would keep close-on-exec: clear it explicitly.
            if libc::dup2(fd, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn no_host_descriptor_leaks_into_the_container() {
    // The runtime is started with an extra open descriptor (a host directory) that must not be
    // visible inside, unless preserved with --preserve-fds.
    let b = sh("ls -l /proc/self/fd | grep -c /etc");
    let bundle = b.path().display().to_string();
    let host_dir = std::fs::File::open("/etc").unwrap();
    let mut cmd = b.command(&["run", "--bundle", &bundle, &b.id]);
    let raw = std::os::fd::AsRawFd::as_raw_fd(&host_dir);
    pass_as_fd3(&mut cmd, raw);
    let out = berth_tests::run_with_timeout(&mut cmd, berth_tests::TIMEOUT);
    assert_eq!(out.stdout.trim(), "0", "{out:?}");
    let b2 = sh("ls -l /proc/self/fd/3 | grep -c /etc");
    let bundle2 = b2.path().display().to_string();
    let mut cmd = b2.command(&["run", "--preserve-fds", "1", "--bundle", &bundle2, &b2.id]);
    pass_as_fd3(&mut cmd, raw);
    let out = berth_tests::run_with_timeout(&mut cmd, berth_tests::TIMEOUT);
    assert_eq!(out.stdout.trim(), "1", "{out:?}");
}

#[test]
fn cwd_through_a_leaked_descriptor_is_refused() {
    // CVE-2024-21626: the runtime holds a host directory open as fd 3 (here: inherited from its
    // caller), and the config's cwd reaches it through /proc/self/fd/3.
    let mut b = sh("pwd; ls ..");
    b.config["process"]["cwd"] = "/proc/self/fd/3".into();
    b.save();
    let bundle = b.path().display().to_string();
    let host_dir = std::fs::File::open("/etc").unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&host_dir);
    let mut cmd = b.command(&["run", "--bundle", &bundle, &b.id]);
    pass_as_fd3(&mut cmd, raw);
    let out = berth_tests::run_with_timeout(&mut cmd, berth_tests::TIMEOUT);
    assert_ne!(out.code(), 0, "cwd outside the root accepted: {out:?}");
    assert!(out.stderr.contains("outside the container"), "{out:?}");
    assert!(!out.stdout.contains("passwd"), "{out:?}");
}

#[test]
fn the_runtime_binary_reachable_through_proc_exe_cannot_be_written() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    // CVE-2019-5736: a process of the container reaches the runtime's binary through
    // /proc/PID/exe (of `exec`'s child while it sets up, or of the runtime run by a
    // `#!/proc/self/exe` script), holds it open, and writes to it once it has exited. What it
    // reaches must be a read-only view of the binary that cannot be made writable again.
    // A copy of the runtime is used, so that a failure cannot damage the real one.
    let work = tempfile::tempdir().unwrap();
    let runtime_copy = work.path().join("berth-runtime");
    std::fs::copy(RUNTIME, &runtime_copy).unwrap();
    let original = std::fs::read(&runtime_copy).unwrap();
    let mut b = Bundle::new(RUNTIME, &["sleep", "60"]);
    b.runtime = runtime_copy.clone();
    b.create().ok();
    b.cmd(&["start", &b.id]).ok();

    let mut exec = b.command(&["exec", &b.id, "sleep", "1"]).spawn().unwrap();
    let pid = exec.id();
    // Before re-executing itself, the process still runs from the file: wait until what
    // /proc/PID/exe reaches sits on a read-only mount.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let readonly = nix::sys::statvfs::statvfs(format!("/proc/{pid}/exe").as_str())
            .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
        match readonly {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => panic!("exec ended before running from a read-only binary: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "exec never ran from a read-only binary"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let held = std::fs::File::open(format!("/proc/{pid}/exe")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while exec.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "exec did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(&held);
    let written = std::fs::OpenOptions::new()
        .append(true)
        .open(format!("/proc/self/fd/{fd}"))
        .and_then(|mut f| f.write_all(b"junk"));
    assert!(
        written.is_err(),
        "the runtime's binary was writable through /proc/PID/exe"
    );
    assert_eq!(
        std::fs::read(&runtime_copy).unwrap(),
        original,
        "the runtime binary was modified"
    );
}

#[test]
fn oom_score_adj_is_set() {
    let mut b = sh("cat /proc/self/oom_score_adj");
    b.config["process"]["oomScoreAdj"] = 500.into();
    b.save();
    assert_eq!(b.run().ok().stdout.trim(), "500");
}

#[test]
fn personality_io_priority_and_scheduler_are_applied() {
    let mut b = sh("uname -m; ionice -p $$; cut -d' ' -f19,41 /proc/self/stat");
    b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    b.save();
    let out = b.run().ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "i686", "{out}");
    assert!(
        lines[1].contains("best-effort") && lines[1].contains('6'),
        "{out}"
    );
    // Field 19 is the nice value, field 41 the policy (3 = SCHED_BATCH); cut runs as a child
    // and inherits both.
    assert_eq!(lines[2], "7 3", "{out}");
}

#[test]
fn memory_policy_and_cpu_affinity_are_applied() {
    let mut b = sh("grep -c bind:0 /proc/self/numa_maps; grep Cpus_allowed_list /proc/self/status");
    b.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
    b.config["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "1"});
    b.save();
    let out = b.run().ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].parse::<u32>().unwrap() > 0, "{out}");
    assert_eq!(lines[1], "Cpus_allowed_list:\t1", "{out}");
}

/// An allowlist profile as older Docker, containerd and Kubernetes `RuntimeDefault` profiles
/// are: everything else is EPERM, and the calls newer than them (`close_range`, `openat2`,
/// `clone3`, `faccessat2`, `pidfd_open`) are missing, so whatever the runtime does after loading
/// it must do without them.
fn old_allowlist_profile() -> serde_json::Value {
    let names = "accept accept4 access arch_prctl bind brk capget capset chdir chmod chown \
        clock_getres clock_gettime clock_nanosleep close connect dup dup2 dup3 epoll_create \
        epoll_create1 epoll_ctl epoll_pwait epoll_wait eventfd2 execve exit exit_group faccessat \
        fadvise64 fchdir fchmod fchmodat fchown fchownat fcntl fdatasync flock fork fstat \
        fstatfs fsync ftruncate futex getcwd getdents getdents64 getegid geteuid getgid \
        getgroups getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom \
        getresgid getresuid getrlimit get_robust_list getrusage getsid getsockname getsockopt \
        gettid gettimeofday getuid getxattr ioctl kill lchown lgetxattr link linkat listen \
        lseek lstat madvise mkdir mkdirat mknodat mmap mprotect mremap munmap nanosleep \
        newfstatat open openat pause pipe pipe2 poll ppoll prctl pread64 prlimit64 pselect6 \
        pwrite64 read readlink readlinkat readv recvfrom recvmsg rename renameat renameat2 \
        restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigreturn \
        rt_sigsuspend rt_sigtimedwait sched_getaffinity sched_yield select sendmsg sendto \
        setfsgid setfsuid setgid setgroups setitimer setpgid setpriority setregid setresgid \
        setresuid setreuid setrlimit set_robust_list setsid setsockopt set_tid_address setuid \
        sigaltstack socket socketpair stat statfs statx symlink symlinkat sysinfo tgkill time \
        times tkill truncate umask uname unlink unlinkat utimensat vfork wait4 waitid write \
        writev";
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": names.split_whitespace().collect::<Vec<_>>(), "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW"}
        ]
    })
}

#[test]
fn an_allowlist_profile_without_newer_syscalls_still_runs_and_execs() {
    for no_new_privs in [true, false] {
        let mut b = Bundle::new(RUNTIME, &["true"]);
        b.config["process"]["noNewPrivileges"] = no_new_privs.into();
        b.config["linux"]["seccomp"] = old_allowlist_profile();
        b.save();
        let out = b.run();
        assert_eq!(
            out.code(),
            0,
            "run, noNewPrivileges={no_new_privs}: {out:?}"
        );

        let mut b = Bundle::new(RUNTIME, &["sleep", "60"]);
        b.config["process"]["noNewPrivileges"] = no_new_privs.into();
        b.config["linux"]["seccomp"] = old_allowlist_profile();
        b.save();
        let bundle = b.path().display().to_string();
        b.cmd(&["run", "--detach", "--bundle", &bundle, &b.id]).ok();
        let out = b.cmd(&["exec", &b.id, "true"]);
        assert_eq!(
            out.code(),
            0,
            "exec, noNewPrivileges={no_new_privs}: {out:?}"
        );
        // The filter does hold: a call outside the list is refused inside.
        let out = b.cmd(&["exec", &b.id, "sh", "-c", "hostname x 2>&1; echo rc=$?"]);
        assert!(out.stdout.contains("rc=1"), "{out:?}");
    }
}

/// The entries of the seccomp cache under `b`'s state root.
fn seccomp_cache_entries(b: &Bundle) -> Vec<std::path::PathBuf> {
    let dir = b.state_root().join("@seccomp-cache");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    entries
}

#[test]
fn compiled_filters_are_cached_under_the_state_root() {
    use std::os::unix::fs::MetadataExt;

    let mut b = sh("hostname x 2>&1; echo rc=$?");
    b.config["linux"]["seccomp"] = old_allowlist_profile();
    b.save();
    let out = b.run().ok().stdout;
    assert!(
        out.contains("Operation not permitted") && out.contains("rc=1"),
        "{out}"
    );
    let dir = b.state_root().join("@seccomp-cache");
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    let entries = seccomp_cache_entries(&b);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = entries[0].clone();
    let stored = std::fs::read(&entry).unwrap();
    let inode = std::fs::metadata(&entry).unwrap().ino();
    // The cache is no container.
    let list = b.cmd(&["list", "-q"]).ok().stdout;
    assert!(!list.contains("seccomp"), "{list}");

    // Read back by the next run and by exec: the same file, the filter holding.
    let out = b.run().ok().stdout;
    assert!(out.contains("rc=1"), "{out}");
    // (`b`'s container again, detached; dropping `b` deletes it.)
    b.config["process"]["args"] = json!(["sleep", "60"]);
    b.save();
    let bundle = b.path().display().to_string();
    b.cmd(&["run", "--detach", "--bundle", &bundle, &b.id]).ok();
    let out = b.cmd(&["exec", &b.id, "sh", "-c", "hostname x 2>&1; echo rc=$?"]);
    assert!(out.stdout.contains("rc=1"), "{out:?}");
    b.cmd(&["delete", "--force", &b.id]).ok();
    b.config["process"]["args"] = json!(["sh", "-c", "hostname x 2>&1; echo rc=$?"]);
    b.save();
    assert_eq!(seccomp_cache_entries(&b), std::slice::from_ref(&entry));
    assert_eq!(std::fs::metadata(&entry).unwrap().ino(), inode);

    // A corrupt entry is compiled again and rewritten; the filter still holds.
    for bad in [
        &stored[..stored.len() - 5],
        &b"BERTHBPF"[..],
        &[0u8; 100][..],
    ] {
        std::fs::write(&entry, bad).unwrap();
        let out = b.run().ok().stdout;
        assert!(
            out.contains("Operation not permitted") && out.contains("rc=1"),
            "{out}"
        );
        assert_eq!(std::fs::read(&entry).unwrap(), stored);
    }
}

#[test]
fn signals_ignored_by_the_caller_are_not_ignored_in_the_container() {
    // A runtime started under `nohup` (SIGHUP ignored) or as a background job (SIGINT, SIGQUIT)
    // with blocked signals: the container's process starts with every disposition at default
    // and nothing blocked. SigIgn and SigBlk of /proc/self/status are hexadecimal masks.
    // (Two commands, so that grep is sh's child: sh as pid 1 ignores SIGQUIT itself.)
    let b = sh("grep -E '^(SigIgn|SigBlk)' /proc/self/status; true");
    let bundle = b.path().display().to_string();
    let mut cmd = b.command(&["run", "--bundle", &bundle, &b.id]);
    // SAFETY: (test) the closure only calls signal and sigprocmask, which are async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGUSR1, 40] {
                libc::signal(sig, libc::SIG_IGN);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let out = berth_tests::run_with_timeout(&mut cmd, berth_tests::TIMEOUT).ok();
    assert!(out.stdout.contains("SigIgn:\t0000000000000000"), "{out:?}");
    assert!(out.stdout.contains("SigBlk:\t0000000000000000"), "{out:?}");
}
