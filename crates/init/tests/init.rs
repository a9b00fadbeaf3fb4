#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! berth-init run directly (not as PID 1: it is then the command's child subreaper, so the
//! same reaping and forwarding apply): exit codes, signals, zombies, static linking.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INIT: &str = env!("CARGO_BIN_EXE_berth-init");

fn init(args: &[&str]) -> Command {
    let mut cmd = Command::new(INIT);
    cmd.args(args).stdin(Stdio::null());
    cmd
}

/// Waits for `child` at most `timeout`; its exit code (None: killed after the timeout).
fn wait(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = init(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = wait(&mut child, Duration::from_secs(20));
    let out = child.wait_with_output().unwrap();
    (
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn exit_codes_are_the_commands() {
    assert_eq!(run(&["--", "sh", "-c", "exit 3"]).0, Some(3));
    assert_eq!(
        run(&["sh", "-c", "echo hi"]),
        (Some(0), "hi\n".into(), String::new())
    );
    assert_eq!(run(&["--", "sh", "-c", "kill -TERM $$"]).0, Some(143));
    assert_eq!(run(&["--", "sh", "-c", "kill -9 $$"]).0, Some(137));
    let (code, _, stderr) = run(&["--", "/no/such/program"]);
    assert_eq!(code, Some(127));
    assert!(
        stderr.contains("exec /no/such/program failed: No such file or directory"),
        "{stderr}"
    );
    assert_eq!(run(&["--", "/etc/passwd"]).0, Some(126));
    let (code, _, stderr) = run(&[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("usage"), "{stderr}");
    let (code, stdout, _) = run(&["--version"]);
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("berth-init version "), "{stdout}");
}

#[test]
fn signals_are_forwarded_to_the_command() {
    let script = "trap 'echo usr1' USR1; trap 'echo winch' WINCH; trap 'echo term; exit 7' TERM; \
                  echo ready; while :; do sleep 0.05; done";
    let mut child = init(&["--", "sh", "-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    use std::io::BufRead;
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    for (sig, want) in [
        (nix::sys::signal::SIGUSR1, "usr1\n"),
        (nix::sys::signal::SIGWINCH, "winch\n"),
        (nix::sys::signal::SIGTERM, "term\n"),
    ] {
        nix::sys::signal::kill(pid, sig).unwrap();
        line.clear();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, want);
    }
    assert_eq!(wait(&mut child, Duration::from_secs(10)), Some(7));
}

#[test]
fn real_time_signals_are_forwarded() {
    // SIGRTMIN+3 (37 with glibc), systemd's stop signal: the default action kills.
    let mut child = init(&["--", "sleep", "100"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    // SAFETY: 37 is SIGRTMIN+3, outside glibc's reserved 32 and 33.
    let sig = unsafe { rustix::process::Signal::from_raw_unchecked(37) };
    rustix::process::kill_process(pid, sig).unwrap();
    assert_eq!(wait(&mut child, Duration::from_secs(10)), Some(128 + 37));
}

#[test]
fn orphans_are_reaped() {
    // Orphans exit while the command (which became `sleep`, which never waits) runs on:
    // they are berth-init's to reap.
    let mut child = init(&[
        "--",
        "sh",
        "-c",
        "for i in 1 2 3; do (sleep 0.1 &); done; exec sleep 1.5",
    ])
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let zombies = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid ...
            let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
            let mut f = after.split_whitespace();
            let state = f.next();
            let ppid: Option<u32> = f.next().and_then(|p| p.parse().ok());
            state == Some("Z") && ppid == Some(child.id())
        })
        .count();
    assert_eq!(zombies, 0);
    assert_eq!(wait(&mut child, Duration::from_secs(10)), Some(0));
}

#[test]
fn it_is_linked_statically() {
    let out = Command::new("file").arg(INIT).output();
    let Ok(out) = out else {
        eprintln!("skipped: no file(1)");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("statically linked"), "{text}");
}

#[test]
fn pause_ignores_signals_but_int_and_term() {
    for stop in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        let mut child = Killed(
            init(&["--pause"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let child = &mut child.0;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        // Its signals are blocked once it reads them: wait for that (SigBlk in its status).
        let deadline = Instant::now() + Duration::from_secs(10);
        let blocked = || {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("SigBlk:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
                .unwrap_or(0)
        };
        // SIGHUP (1), SIGQUIT (3), SIGUSR1 (10), SIGTERM (15), SIGCHLD (17).
        let wanted: u64 = [1, 3, 10, 15, 17].iter().map(|n| 1u64 << (n - 1)).sum();
        while blocked() & wanted != wanted {
            assert!(
                Instant::now() < deadline,
                "berth-init --pause never blocked its signals"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        for sig in [
            nix::sys::signal::Signal::SIGHUP,
            nix::sys::signal::Signal::SIGUSR1,
            nix::sys::signal::Signal::SIGQUIT,
            nix::sys::signal::Signal::SIGCHLD,
        ] {
            nix::sys::signal::kill(pid, sig).unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            child.try_wait().unwrap().is_none(),
            "exited on an ignored signal"
        );
        nix::sys::signal::kill(pid, stop).unwrap();
        assert_eq!(wait(child, Duration::from_secs(10)), Some(0), "{stop}");
    }
    // Anything after --pause is not pause mode: a command named --pause.
    assert_eq!(run(&["--pause", "x"]).0, Some(127));
}

/// A child killed (and waited for) when the test ends, also when it fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
