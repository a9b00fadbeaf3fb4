#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! The escape suite (see `escape.rs` for the table), its processes part: the binaries a
//! container reaches through `/proc/PID/exe` (CVE-2019-5736), descriptors leaked into `run`
//! and `exec`, and working directories through `/proc/self/fd` (CVE-2024-21626).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{skip, text, Daemon};

/// `berth-runtime` beside `berthd` in the target directory, brought up to date once.
fn runtime_binary() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let berthd = PathBuf::from(env!("CARGO_BIN_EXE_berthd"));
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "berth-runtime"]);
        if berthd.parent().is_some_and(|d| d.ends_with("release")) {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success());
    });
    berthd.with_file_name("berth-runtime")
}

/// Whether `path` (a `/proc/PID/exe`) sits on a read-only mount.
fn on_read_only_mount(path: &str) -> bool {
    nix::sys::statvfs::statvfs(path)
        .unwrap()
        .flags()
        .contains(nix::sys::statvfs::FsFlags::ST_RDONLY)
}

/// The parent of a container's init: its monitor.
fn monitor_pid(d: &Daemon, container: &str) -> u32 {
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", container]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// What the container's attacker does: `/evil` is a script whose interpreter is
/// `/proc/self/exe`, so that the process `docker exec` starts runs the binary that made it
/// (the monitor's, or a runtime's) inside the container. The attacker opens `/proc/PID/exe` of
/// every process that does not run busybox (builtins only: no fork slows the loop), and when it
/// holds one, tries to write through it for 3 s (ETXTBSY while something executes the file),
/// then reports what it held and the errors it met.
const ATTACKER: &str = r#"printf '#!/proc/self/exe\n' > /evil; chmod +x /evil; : > /tmp/report
while :; do
  for p in /proc/[0-9]*; do
    [ $p/exe -ef /bin/busybox ] && continue
    if command exec 3<$p/exe; then
      # It ran busybox by the time it was opened: the container's own binary.
      [ /proc/self/fd/3 -ef /bin/busybox ] && { exec 3<&-; continue; }
      i=0
      while [ $i -lt 300 ]; do
        if echo junk >> /proc/self/fd/3; then echo wrote >> /tmp/report; break; fi
        i=$((i+1)); usleep 10000
      done 2> /tmp/errors
      echo "held $(readlink /proc/self/fd/3)" >> /tmp/report
      sort -u /tmp/errors >> /tmp/report
      exec 3<&-
    fi
  done 2>/dev/null
done"#;

#[test]
fn binaries_reached_through_proc_exe_cannot_be_written() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    d.busybox("bb:local");
    // Copies of the monitor and the runtime, so that a failure cannot damage the real ones:
    // berthd is restarted with `--monitor` pointed at the copy (through its launcher, which
    // rewrites the fixture's flag) and the runtime's copy added as `brt`.
    let bin = d.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let monitor = bin.join("berth-monitor");
    let runtime = bin.join("berth-runtime");
    let berthd = PathBuf::from(env!("CARGO_BIN_EXE_berthd"));
    std::fs::copy(berthd.with_file_name("berth-monitor"), &monitor).unwrap();
    std::fs::copy(runtime_binary(), &runtime).unwrap();
    let originals = [
        std::fs::read(&monitor).unwrap(),
        std::fs::read(&runtime).unwrap(),
    ];
    d.stop();
    d.launcher = vec![
        "sh".into(),
        "-c".into(),
        format!(
            r#"for a; do shift; [ "$prev" = --monitor ] && a={}; set -- "$@" "$a"; prev=$a; done; exec "$@""#,
            monitor.display()
        ),
        "sh".into(),
    ];
    d.args = vec!["--add-runtime".into(), format!("brt={}", runtime.display())];
    d.spawn();

    for rt in ["berth", "brt"] {
        let name = format!("victim-{rt}");
        d.ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--runtime",
            rt,
            "bb:local",
            "sh",
            "-c",
            ATTACKER,
        ]);
        // The monitor (and every process forked from it: `exec`'s child, a container's init)
        // runs from a read-only view of its binary.
        let monitor_pid = monitor_pid(&d, &name);
        let exe = format!("/proc/{monitor_pid}/exe");
        // The same file (a bind mount of it: its path reads `/`, the root of a detached mount).
        let inode = |p: &Path| {
            let m = std::fs::metadata(p).unwrap();
            (
                std::os::unix::fs::MetadataExt::dev(&m),
                std::os::unix::fs::MetadataExt::ino(&m),
            )
        };
        assert_eq!(
            inode(Path::new(&exe)),
            inode(&monitor),
            "{name}: not our monitor"
        );
        assert!(
            on_read_only_mount(&exe),
            "{name}: the monitor runs from a writable binary"
        );
        // The attack, a bounded number of times; the attacker may or may not catch the short
        // life of the interpreted binary, and must never write it.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut report = String::new();
        for _ in 0..40 {
            let out = d.docker(&["exec", &name, "/evil"]);
            // This kernel refuses the exec child's `/proc/self/exe` (ENOENT) once it is in the
            // container; where it runs, the interpreted binary refuses its argument (the
            // monitor: usage, 2; the runtime: clap's error).
            let (_, err) = text(&out);
            assert_ne!(out.status.code(), Some(0), "{err}");
            if out.status.code() == Some(126) {
                assert!(
                    err.contains(r#"exec: "/evil": no such file or directory"#),
                    "{err}"
                );
            }
            report = d.ok(&["exec", &name, "cat", "/tmp/report"]);
            if report.contains("held ") || Instant::now() > deadline {
                break;
            }
        }
        eprintln!("{name}: attacker's report: {report:?}");
        assert!(!report.contains("wrote"), "{name}: {report}");
        for line in report.lines().filter(|l| l.starts_with("sh:")) {
            assert!(
                line.ends_with("Read-only file system") || line.ends_with("Text file busy"),
                "{name}: {report}"
            );
        }
        d.ok(&["rm", "-f", &name]);
    }
    assert!(
        std::fs::read(&monitor).unwrap() == originals[0],
        "berth-monitor was modified"
    );
    assert!(
        std::fs::read(&runtime).unwrap() == originals[1],
        "berth-runtime was modified"
    );
}

#[test]
fn no_descriptor_of_the_host_reaches_run_or_exec() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    // `ls /proc/$$/fd; true` lists the shell's descriptors (the shell forks ls, whose own
    // directory descriptor is not among them).
    let fds = "ls /proc/$$/fd; true";
    let out = d.ok(&["run", "--rm", "bb:local", "sh", "-c", fds]);
    assert_eq!(out, "0\n1\n2\n");
    let out = d.ok(&["run", "--rm", "-i", "bb:local", "sh", "-c", fds]);
    assert_eq!(out, "0\n1\n2\n");
    d.ok(&["run", "-d", "--name", "fds", "bb:local", "sleep", "1000"]);
    let out = d.ok(&["exec", "fds", "sh", "-c", fds]);
    assert_eq!(out, "0\n1\n2\n");
    let out = d.ok(&["exec", "-i", "fds", "sh", "-c", fds]);
    assert_eq!(out, "0\n1\n2\n");
    // The init (started by the monitor) holds nothing else either.
    let out = d.ok(&["exec", "fds", "ls", "/proc/1/fd"]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "1", "2"]);
    // Nor does anything of the container's process point at a host path.
    let out = d.ok(&["exec", "fds", "sh", "-c", "ls -l /proc/1/fd /proc/$$/fd"]);
    assert!(!out.contains(&*d.dir.to_string_lossy()), "{out}");
}

#[test]
fn a_working_directory_through_proc_self_fd_is_refused() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    // CVE-2024-21626: a descriptor the runtime holds on a host directory, reached as the
    // working directory through /proc/self/fd/N, puts the process outside the container's
    // root. Every N a runtime may hold is tried.
    d.ok(&["run", "-d", "--name", "wd", "bb:local", "sleep", "1000"]);
    for n in 3..12 {
        let cwd = format!("/proc/self/fd/{n}");
        let refused = |what: &str, out: std::process::Output, status: i32| {
            // `exec`'s error comes on the stream (stdout), as dockerd's.
            let (o, e) = text(&out);
            let all = o + &e;
            assert_eq!(out.status.code(), Some(status), "{what} -w {cwd}: {all}");
            assert!(
                !all.lines().any(|l| l.starts_with('/')),
                "{what} -w {cwd}: {all}"
            );
            assert!(
                all.contains(&format!("process.cwd {cwd}: Not a directory"))
                    || all.contains("outside the container"),
                "{what} -w {cwd}: {all}"
            );
        };
        let out = d.docker(&[
            "run",
            "--rm",
            "-w",
            &cwd,
            "bb:local",
            "sh",
            "-c",
            "pwd; ls ..",
        ]);
        refused("run", out, 125);
        let out = d.docker(&["exec", "-w", &cwd, "wd", "sh", "-c", "pwd; ls .."]);
        refused("exec", out, 126);
    }
    // A /proc path to a directory of the container itself stays inside it.
    let out = d.ok(&["run", "--rm", "-w", "/proc/1/cwd", "bb:local", "pwd"]);
    assert_eq!(out, "/\n");
}
