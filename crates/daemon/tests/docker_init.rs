#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! `docker run --init` (berth-init as PID 1) and `--privileged` (the host's devices, the open
//! device cgroup, mounts), through the real docker CLI.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{skip, text, Daemon};

/// `ps -o pid,ppid,comm` parsed into (pid, ppid, comm).
fn processes(ps: &str) -> Vec<(u32, u32, String)> {
    ps.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((
                f.next()?.parse().ok()?,
                f.next()?.parse().ok()?,
                f.next()?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn init_is_pid_1_and_the_command_its_child() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let ps = d.ok(&[
        "run",
        "--rm",
        "--init",
        "bb:local",
        "ps",
        "-o",
        "pid,ppid,comm",
    ]);
    let procs = processes(&ps);
    assert!(procs.contains(&(1, 0, "init".to_string())), "{ps}");
    assert!(
        procs
            .iter()
            .any(|(pid, ppid, comm)| *pid != 1 && *ppid == 1 && comm == "ps"),
        "{ps}"
    );
    // Without --init the command is PID 1.
    let ps = d.ok(&["run", "--rm", "bb:local", "ps", "-o", "pid,ppid,comm"]);
    assert!(processes(&ps).contains(&(1, 0, "ps".to_string())), "{ps}");
    // The init is read-only, and inspect shows the command as given.
    d.ok(&[
        "create", "--init", "--name", "i1", "bb:local", "sh", "-c", "exit 0",
    ]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "--format",
            "{{.Path}} {{.Args}} {{.HostConfig.Init}}",
            "i1"
        ])
        .trim(),
        "sh [-c exit 0] true"
    );
    let out = d.docker(&[
        "run",
        "--rm",
        "--init",
        "bb:local",
        "sh",
        "-c",
        "echo x > /dev/init",
    ]);
    assert_ne!(out.status.code(), Some(0), "{:?}", text(&out));
}

#[test]
fn init_passes_exit_codes_through() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let run = |args: &[&str]| {
        let mut full = vec!["run", "--rm", "--init", "bb:local"];
        full.extend_from_slice(args);
        let out = d.docker(&full);
        (out.status.code(), text(&out))
    };
    assert_eq!(run(&["sh", "-c", "exit 3"]).0, Some(3));
    assert_eq!(run(&["sh", "-c", "echo out; exit 0"]).1 .0, "out\n");
    // Killed by a signal: 128+N, as a shell reports it.
    assert_eq!(run(&["sh", "-c", "kill -9 $$"]).0, Some(137));
    let (code, (_, stderr)) = run(&["no-such-program"]);
    assert_eq!(code, Some(127), "{stderr}");
    assert!(stderr.contains("no-such-program"), "{stderr}");
}

#[test]
fn init_forwards_the_stop_signal() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    // A `sleep` as PID 1 has no handler for SIGTERM, so the kernel drops it; under the init
    // it is an ordinary process and SIGTERM kills it at once.
    d.ok(&[
        "run", "--init", "-d", "--name", "s1", "bb:local", "sleep", "100",
    ]);
    let t0 = Instant::now();
    d.ok(&["stop", "-t", "5", "s1"]);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.State.ExitCode}}", "s1"])
            .trim(),
        "143"
    );
    // The same without init waits for the timeout and kills.
    d.ok(&["run", "-d", "--name", "s2", "bb:local", "sleep", "100"]);
    let t0 = Instant::now();
    d.ok(&["stop", "-t", "1", "s2"]);
    assert!(t0.elapsed() >= Duration::from_millis(900));
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.State.ExitCode}}", "s2"])
            .trim(),
        "137"
    );
    // Other signals reach the command too.
    d.ok(&[
        "run",
        "--init",
        "-d",
        "--name",
        "s3",
        "bb:local",
        "sh",
        "-c",
        "trap 'echo usr1' USR1; trap 'echo hup; exit 4' HUP; while :; do sleep 0.1; done",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    d.ok(&["kill", "-s", "USR1", "s3"]);
    std::thread::sleep(Duration::from_millis(500));
    d.ok(&["kill", "-s", "HUP", "s3"]);
    let code = d.ok(&["wait", "s3"]);
    assert_eq!(code.trim(), "4");
    assert_eq!(d.ok(&["logs", "s3"]), "usr1\nhup\n");
}

#[test]
fn init_reaps_orphaned_zombies() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    // Three orphans re-parented to PID 1 exit at once; then `sleep`, which never waits, is
    // what the shell became.
    let orphans = "for i in 1 2 3; do (sleep 0.1 &); done; exec sleep 100";
    let zombies = |name: &str| {
        let ps = d.ok(&["exec", name, "ps", "-o", "stat,comm"]);
        let n = ps
            .lines()
            .filter(|l| l.trim_start().starts_with('Z'))
            .count();
        (n, ps)
    };
    d.ok(&[
        "run", "-d", "--init", "--name", "z1", "bb:local", "sh", "-c", orphans,
    ]);
    d.ok(&["run", "-d", "--name", "z2", "bb:local", "sh", "-c", orphans]);
    // The orphans exit after 0.1 s.
    std::thread::sleep(Duration::from_millis(1500));
    let (n, ps) = zombies("z1");
    assert_eq!(n, 0, "zombies under the init:\n{ps}");
    // The control: without an init they stay.
    let (n, ps) = zombies("z2");
    assert_eq!(n, 3, "without init:\n{ps}");
}

/// daemon.json's `init` (every container gets the init unless it says `--init=false`) and
/// `init-path`, as dockerd's.
#[test]
fn daemon_json_init_default_and_path() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    d.busybox("bb:local");
    let restart_with = |d: &mut Daemon, config: &str| {
        std::fs::write(d.dir.join("daemon.json"), config).unwrap();
        d.kill9();
        d.spawn();
    };
    restart_with(&mut d, r#"{"init": true}"#);
    let ps = d.ok(&["run", "--rm", "bb:local", "ps", "-o", "pid,ppid,comm"]);
    assert!(processes(&ps).contains(&(1, 0, "init".to_string())), "{ps}");
    let ps = d.ok(&[
        "run",
        "--rm",
        "--init=false",
        "bb:local",
        "ps",
        "-o",
        "pid,ppid,comm",
    ]);
    assert!(processes(&ps).contains(&(1, 0, "ps".to_string())), "{ps}");
    restart_with(&mut d, r#"{"init-path": "/nonexistent/my-init"}"#);
    let out = d.docker(&["run", "--rm", "--init", "bb:local", "true"]);
    let (_, stderr) = text(&out);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("/nonexistent/my-init"), "{stderr}");
    // Without --init the binary is not needed.
    assert_eq!(d.ok(&["run", "--rm", "bb:local", "echo", "ok"]), "ok\n");
}

/// ctrl-c in `docker run -it --init` reaches the command (its process group is the terminal's
/// foreground one).
#[test]
fn init_under_a_terminal_gets_ctrl_c_to_the_command() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let full = format!(
        "(sleep 1.5; printf '\\003'; sleep 3) | DOCKER_HOST=unix://{} script -eqc \
         \"docker run -it --rm --init bb:local sh -c 'trap \\\"echo caught; exit 9\\\" INT; echo ready; while :; do sleep 0.1; done'\" /dev/null",
        d.socket.display()
    );
    let out = Command::new("timeout")
        .args(["30", "sh", "-c", &full])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("caught"), "{stdout}");
    assert_eq!(out.status.code(), Some(9), "{stdout}");
}

/// A device node of the host's /dev that a container does not get by default.
fn host_device() -> Option<(String, char, u64, u64)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    for name in [
        "loop0", "loop1", "kmsg", "vda", "sda", "nvme0n1", "tty1", "fuse",
    ] {
        let Ok(meta) = std::fs::symlink_metadata(format!("/dev/{name}")) else {
            continue;
        };
        let kind = if meta.file_type().is_block_device() {
            'b'
        } else if meta.file_type().is_char_device() {
            'c'
        } else {
            continue;
        };
        let rdev = meta.rdev();
        return Some((
            name.to_string(),
            kind,
            nix::sys::stat::major(rdev),
            nix::sys::stat::minor(rdev),
        ));
    }
    None
}

#[test]
fn privileged_gets_the_host_devices_and_may_mount() {
    if skip() {
        return;
    }
    let Some((dev, kind, major, minor)) = host_device() else {
        eprintln!("skipped: no loop, disk or tty device on this host");
        return;
    };
    let d = Daemon::start();
    d.busybox("bb:local");
    let with = d.ok(&["run", "--rm", "--privileged", "bb:local", "ls", "/dev"]);
    let without = d.ok(&["run", "--rm", "bb:local", "ls", "/dev"]);
    assert!(with.lines().any(|l| l == dev), "{dev} missing: {with}");
    assert!(
        !without.lines().any(|l| l == dev),
        "{dev} present: {without}"
    );
    // The node is the host's, and usable (the device cgroup allows it).
    let open = format!("ls -l /dev/{dev} && exec 3</dev/{dev} && echo opened");
    let out = d.ok(&["run", "--rm", "--privileged", "bb:local", "sh", "-c", &open]);
    let words = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains(&format!("{major}, {minor}")) && words.ends_with("opened"),
        "{out}"
    );
    // Without --privileged, a node made by hand (CAP_MKNOD is a default) cannot be opened.
    let mknod = format!("mknod /tmp/d {kind} {major} {minor} && exec 3</tmp/d && echo opened");
    let out = d.docker(&["run", "--rm", "bb:local", "sh", "-c", &mknod]);
    let (stdout, stderr) = text(&out);
    assert_ne!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    // Mounting needs --privileged (CAP_SYS_ADMIN, no seccomp filter).
    let mount = "mkdir -p /mnt && mount -t tmpfs none /mnt && grep ' /mnt ' /proc/mounts";
    let out = d.ok(&["run", "--rm", "--privileged", "bb:local", "sh", "-c", mount]);
    assert!(out.starts_with("none /mnt tmpfs"), "{out}");
    let out = d.docker(&["run", "--rm", "bb:local", "sh", "-c", mount]);
    assert_ne!(out.status.code(), Some(0), "{:?}", text(&out));
    // No masked paths under --privileged.
    let out = d.ok(&[
        "run",
        "--rm",
        "--privileged",
        "bb:local",
        "sh",
        "-c",
        "grep -c /proc/kcore /proc/mounts || true",
    ]);
    assert_eq!(out.trim(), "0");
}
