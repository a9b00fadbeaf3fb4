#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! Long-lived streams through the real docker CLI: `attach` (plain and `-it`, with the
//! ctrl-p ctrl-q detach), `logs -f` (to the container's end, and across a `kill -9` of berthd),
//! `run -it` with terminal input. Every wait has a deadline.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Output};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::Daemon;

/// A docker command running in the background, its stdout read line by line on a thread.
struct Watched {
    child: Child,
    lines: Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Watched {
    fn start(d: &Daemon, args: &[&str]) -> Watched {
        let mut child = d.docker_command(args).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Watched {
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The next line of stdout, if one comes within `timeout`.
    fn line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Lines until one satisfies `pred` (returned with all lines read), within `timeout`.
    fn until(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> (bool, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = pred(&l);
                    seen.push(l);
                    if hit {
                        return (true, seen);
                    }
                }
                Err(_) => break,
            }
        }
        (false, seen)
    }

    /// The exit status, if the command ends within `timeout`.
    fn exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every stdout line still to come (the command has ended or been killed).
    fn rest(&self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            out.push(l);
        }
        out
    }

    fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number in a line `n<N>`.
fn counter(line: &str) -> Option<u64> {
    line.trim().strip_prefix('n')?.parse().ok()
}

const COUNTER: &str =
    "trap 'echo bye; exit 0' TERM; i=0; while true; do i=$((i+1)); echo n$i; sleep 0.2; done";

/// `cmd` run under a pty (util-linux `script`) with `input`, a shell snippet whose stdout is
/// typed into the terminal (and which keeps the terminal open while it runs).
fn script(d: &Daemon, cmd: &str, input: &str) -> Output {
    let full = format!(
        "({input}) | DOCKER_HOST=unix://{} DOCKER_CONFIG={} script -eqc 'stty rows 30 cols 90; {cmd}' /dev/null",
        d.socket.display(),
        d.dir.join("docker-config").display()
    );
    Command::new("timeout")
        .args(["-k", "5", "40", "sh", "-c", &full])
        .output()
        .unwrap()
}

fn state(d: &Daemon, name: &str) -> String {
    d.ok(&["inspect", "--format", "{{.State.Status}}", name])
        .trim()
        .to_string()
}

#[test]
fn attach_shows_new_output_and_leaving_keeps_the_container() {
    if common::skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["run", "-d", "--name", "a1", "bb:local", "sh", "-c", COUNTER]);
    std::thread::sleep(Duration::from_millis(600));
    let before = d
        .ok(&["logs", "a1"])
        .lines()
        .filter_map(counter)
        .max()
        .unwrap();
    let attach = Watched::start(&d, &["attach", "a1"]);
    let mut got = Vec::new();
    for _ in 0..3 {
        let line = attach.line(Duration::from_secs(10));
        got.push(line.clone().unwrap_or_default());
        assert!(line.is_some(), "attach printed only {got:?}");
    }
    let numbers: Vec<u64> = got.iter().filter_map(|l| counter(l)).collect();
    assert_eq!(numbers.len(), 3, "{got:?}");
    // Attach shows what comes after it, in order (no replay of the log).
    assert!(numbers[0] >= before, "{numbers:?} before {before}");
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    // The client goes away (killed, no signal proxied): the container goes on.
    attach.kill();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(state(&d, "a1"), "running");
    let n1 = d.ok(&["logs", "a1"]).lines().count();
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        d.ok(&["logs", "a1"]).lines().count() > n1,
        "logging goes on"
    );
    // A second attach works as the first.
    let again = Watched::start(&d, &["attach", "a1"]);
    assert!(again
        .line(Duration::from_secs(10))
        .is_some_and(|l| counter(&l).is_some()));
    again.kill();
    d.ok(&["stop", "-t", "2", "a1"]);
}

#[test]
fn attach_to_a_tty_container_and_detach_with_ctrl_p_ctrl_q() {
    if common::skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["run", "-dit", "--name", "t1", "bb:local", "sh"]);
    // `42` only appears if the shell ran the line (the terminal echoes `$((20+22))`).
    let out = script(
        &d,
        "docker attach t1",
        "sleep 1.5; printf 'echo $((20+22)); stty size\\r'; sleep 1.5; printf '\\020\\021'; sleep 3",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(124), "timed out: {stdout}");
    assert!(stdout.contains("42"), "{stdout}");
    assert!(
        stdout.contains("30 90"),
        "the window size is passed on: {stdout}"
    );
    // The CLI reports the detach as its error `read escape sequence` and exits with 1, as
    // against dockerd (`run -it` takes it as success, `attach` does not).
    assert!(stdout.contains("read escape sequence"), "{stdout}");
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    // Detached, not stopped: the shell is still there, and takes the next attach.
    assert_eq!(state(&d, "t1"), "running");
    let out = script(
        &d,
        "docker attach t1",
        "sleep 1.5; printf 'echo $((6*7))x; exit 3\\r'; sleep 3",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("42x"), "{stdout}");
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    let code = d.ok(&["wait", "t1"]);
    assert_eq!(code.trim(), "3");
}

#[test]
fn logs_follow_shows_new_lines_and_ends_with_the_container() {
    if common::skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["run", "-d", "--name", "f1", "bb:local", "sh", "-c", COUNTER]);
    std::thread::sleep(Duration::from_millis(500));
    let mut follow = Watched::start(&d, &["logs", "-f", "f1"]);
    let t0 = Instant::now();
    // The old lines first, then ones written after the follow began.
    let (ok, seen) = follow.until(Duration::from_secs(15), |l| {
        counter(l).is_some_and(|n| n >= 10)
    });
    assert!(ok, "{seen:?}");
    assert_eq!(seen[0], "n1", "{seen:?}");
    assert!(
        t0.elapsed() > Duration::from_millis(500),
        "lines came in as written"
    );
    let numbers: Vec<u64> = seen.iter().filter_map(|l| counter(l)).collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "no line lost or repeated: {numbers:?}"
    );
    d.ok(&["stop", "-t", "5", "f1"]);
    let status = follow.exit(Duration::from_secs(10));
    assert!(
        status.is_some(),
        "logs -f went on after the container stopped"
    );
    assert!(status.unwrap().success());
    let rest = follow.rest();
    assert_eq!(rest.last().map(String::as_str), Some("bye"), "{rest:?}");
    // Following a stopped container prints everything and ends at once.
    let all = d.ok(&["logs", "-f", "f1"]);
    assert!(all.starts_with("n1\n") && all.ends_with("bye\n"), "{all}");
}

#[test]
fn logs_follow_across_a_kill_9_of_berthd() {
    if common::skip() {
        return;
    }
    let mut d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["run", "-d", "--name", "k1", "bb:local", "sh", "-c", COUNTER]);
    let mut follow = Watched::start(&d, &["logs", "-f", "k1"]);
    let (ok, seen) = follow.until(Duration::from_secs(10), |l| {
        counter(l).is_some_and(|n| n >= 3)
    });
    assert!(ok, "{seen:?}");
    d.kill9();
    let t0 = Instant::now();
    // The daemon's end closes the stream: the follow ends (with an error or not).
    let ended = follow.exit(Duration::from_secs(10));
    assert!(ended.is_some(), "logs -f outlived berthd by 10 s");
    let last_before = seen
        .iter()
        .chain(follow.rest().iter())
        .filter_map(|l| counter(l))
        .max()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000).saturating_sub(t0.elapsed()));
    d.spawn();
    assert_eq!(state(&d, "k1"), "running");
    // A new follow shows the whole log, lines written while berthd was away, and new ones.
    let after = Watched::start(&d, &["logs", "-f", "k1"]);
    let target = last_before + 10;
    let (ok, seen) = after.until(Duration::from_secs(15), |l| {
        counter(l).is_some_and(|n| n >= target)
    });
    assert!(ok, "no n{target} after the restart: {seen:?}");
    let numbers: Vec<u64> = seen.iter().filter_map(|l| counter(l)).collect();
    assert_eq!(numbers.first(), Some(&1), "{seen:?}");
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "the log has no hole across the restart: {numbers:?}"
    );
    // And it ends when the container stops, as before the restart.
    let mut after = after;
    d.ok(&["stop", "-t", "5", "k1"]);
    let status = after.exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert_eq!(after.rest().last().map(String::as_str), Some("bye"));
}

#[test]
fn run_it_reads_terminal_input() {
    if common::skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    // Two lines to a shell, one at a time, then its exit code.
    let out = script(
        &d,
        "docker run -it --rm --name r1 bb:local sh",
        "sleep 1.5; printf 'echo $((20+22))\\r'; sleep 0.5; printf 'read x; echo got-$x\\r'; sleep 0.5; printf 'abc\\r'; sleep 0.5; printf 'exit 6\\r'; sleep 3",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("42"), "{stdout}");
    assert!(stdout.contains("got-abc"), "{stdout}");
    assert_eq!(out.status.code(), Some(6), "{stdout}");
    // `cat` echoes each line and ends at ctrl-d, the terminal's end of file.
    let out = script(
        &d,
        "docker run -it --rm bb:local cat",
        "sleep 1.5; printf 'one\\r'; sleep 0.5; printf 'two\\r'; sleep 0.5; printf '\\004'; sleep 3",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("one").count(), 2, "echo and cat: {stdout}");
    assert_eq!(stdout.matches("two").count(), 2, "{stdout}");
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(d.ok(&["ps", "-aq"]), "", "--rm removed both");
}
