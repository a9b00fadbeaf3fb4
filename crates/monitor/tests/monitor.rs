#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too
//! The real `berth-monitor` binary driving real containers: attach, logs, exit codes, stdin, tty,
//! exec, a killed parent, log rotation, a failed create; and nothing left behind.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_api::stdcopy::{read_frame, Stream};
use berth_monitor::protocol::{self, ExecState, ExitStatus, Op, Reply, Request, State, Status};

const TIMEOUT: Duration = Duration::from_secs(20);
const BIN: &str = env!("CARGO_BIN_EXE_berth-monitor");

struct Fixture {
    dir: tempfile::TempDir,
    id: String,
    cgroup: String,
    config: serde_json::Value,
    monitor: Option<Child>,
    init_pid: i32,
}

impl Fixture {
    fn new(args: &[&str]) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("berth-monitor-")
            .tempdir()
            .unwrap();
        let bundle = dir.path().join("bundle");
        berth_tests::busybox_rootfs(&bundle.join("rootfs")).unwrap();
        let id = berth_tests::unique("m");
        let cgroup = format!("/berth-test-{id}");
        let mut config = serde_json::to_value(berth_runtime::spec::default_spec(false)).unwrap();
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = args.iter().map(|a| a.to_string()).collect();
        config["root"]["readonly"] = false.into();
        config["linux"]["cgroupsPath"] = cgroup.clone().into();
        let fx = Fixture {
            dir,
            id,
            cgroup,
            config,
            monitor: None,
            init_pid: 0,
        };
        fx.save();
        fx
    }

    fn tty(mut self) -> Fixture {
        self.config["process"]["terminal"] = true.into();
        self.save();
        self
    }

    fn save(&self) {
        std::fs::write(
            self.bundle().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }
    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn runtime_root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    fn log(&self) -> PathBuf {
        self.dir.path().join("c.log")
    }

    fn command(&self, extra: &[&str], ready_fd: i32) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--id")
            .arg(&self.id)
            .arg("--bundle")
            .arg(self.bundle())
            .arg("--runtime-root")
            .arg(self.runtime_root())
            .arg("--dir")
            .arg(self.state_dir())
            .arg("--log")
            .arg(self.log())
            .arg("--ready-fd")
            .arg(ready_fd.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    }

    /// Spawns the monitor directly; returns its ready line.
    fn spawn(&mut self, extra: &[&str]) -> String {
        let (r, w) = ready_pipe();
        let mut cmd = self.command(extra, raw(&w));
        cmd.process_group(0);
        self.monitor = Some(cmd.spawn().unwrap());
        drop(w);
        let line = read_line_timeout(&r);
        if let Some(pid) = line.strip_prefix("ready ") {
            self.init_pid = pid.trim().parse().unwrap();
        }
        line
    }

    fn spawn_ready(&mut self, extra: &[&str]) {
        let line = self.spawn(extra);
        assert!(line.starts_with("ready "), "{line}");
    }

    fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(self.state_dir().join("monitor.sock")).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s
    }

    fn call<T: serde::de::DeserializeOwned>(&self, op: Op) -> T {
        protocol::call(&mut self.connect(), &Request::from(op)).unwrap()
    }

    /// A connection whose request was answered `ok`: an attach or exec stream.
    fn stream(&self, op: Op) -> (UnixStream, Reply) {
        let mut s = self.connect();
        let reply: Reply = protocol::call(&mut s, &Request::from(op)).unwrap();
        assert!(reply.ok, "{reply:?}");
        (s, reply)
    }

    fn start(&self) {
        let r: Reply = self.call(Op::Start);
        assert!(r.ok, "{r:?}");
    }

    fn wait(&self) -> ExitStatus {
        self.call(Op::Wait)
    }

    /// `shutdown`, then the monitor's exit, then nothing left.
    fn shutdown(&mut self) {
        let r: Reply = self.call(Op::Shutdown);
        assert!(r.ok, "{r:?}");
        if let Some(child) = self.monitor.take() {
            let status = wait_child(child);
            assert_eq!(status, Some(0));
        }
        self.assert_clean();
    }

    fn assert_clean(&self) {
        assert!(
            berth_tests::cgroup_dirs(&self.cgroup).is_empty(),
            "cgroup left: {:?}",
            berth_tests::cgroup_dirs(&self.cgroup)
        );
        assert!(
            !self.runtime_root().join(&self.id).exists(),
            "runtime state left"
        );
        if self.init_pid > 0 {
            assert!(
                !Path::new(&format!("/proc/{}", self.init_pid)).exists(),
                "init {} left",
                self.init_pid
            );
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&self.bundle().display().to_string()));
    }

    fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.log())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let rt = berth_runtime::Runtime::new(self.runtime_root());
        let _ = rt.delete(&self.id, true);
        if let Some(mut child) = self.monitor.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn raw(fd: &OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

/// A pipe whose write end is inherited (no close-on-exec) and whose read end is not.
fn ready_pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = nix::unistd::pipe().unwrap();
    nix::fcntl::fcntl(
        &r,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .unwrap();
    (r, w)
}

/// Reads one line from `fd` (the monitor's ready line), up to [`TIMEOUT`]. Only up to the
/// newline: the container's init holds a copy of the write end until it starts.
fn read_line_timeout(fd: &OwnedFd) -> String {
    let deadline = Instant::now() + TIMEOUT;
    let mut line = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no ready line: {:?}",
            String::from_utf8_lossy(&line)
        );
        let mut fds = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = u16::try_from(left.as_millis().min(10_000)).unwrap();
        if nix::poll::poll(&mut fds, ms).unwrap() == 0 {
            continue;
        }
        let mut b = [0u8; 1];
        match nix::unistd::read(fd, &mut b).unwrap() {
            0 => break,
            _ if b[0] == b'\n' => break,
            _ => line.push(b[0]),
        }
    }
    String::from_utf8(line).unwrap()
}

fn wait_child(mut child: Child) -> Option<i32> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "monitor did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn frames(s: &mut UnixStream) -> Vec<(Stream, String)> {
    let mut out = Vec::new();
    while let Some((stream, data)) = read_frame(s).unwrap() {
        out.push((stream, String::from_utf8(data).unwrap()));
    }
    out
}

/// Concatenated payloads per stream.
fn joined(frames: &[(Stream, String)], stream: Stream) -> String {
    frames
        .iter()
        .filter(|(s, _)| *s == stream)
        .map(|(_, d)| d.as_str())
        .collect()
}

fn read_all(s: &mut UnixStream) -> String {
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn attach_op(stdin: bool) -> Op {
    Op::Attach {
        stdin,
        stdout: true,
        stderr: true,
        logs: false,
    }
}

#[test]
fn attach_frames_log_exit_code() {
    let mut fx = Fixture::new(&["sh", "-c", "echo out; sleep 0.2; echo err >&2; exit 3"]);
    fx.spawn_ready(&[]);
    let state: State = fx.call(Op::State);
    assert_eq!(state.status, Status::Created);
    assert_eq!(state.pid, fx.init_pid);
    let pid_file = std::fs::read_to_string(fx.state_dir().join("init.pid")).unwrap();
    assert_eq!(pid_file, fx.init_pid.to_string());
    let (mut s, _) = fx.stream(attach_op(false));
    fx.start();
    let got = frames(&mut s);
    assert_eq!(
        got,
        [
            (Stream::Stdout, "out\n".to_string()),
            (Stream::Stderr, "err\n".to_string())
        ]
    );
    let status = fx.wait();
    assert_eq!(status.exit_code, 3);
    assert!(!status.oom_killed);
    assert!(status.finished_at.ends_with('Z'));
    let file = berth_monitor::exit::read(&fx.state_dir().join("exit.json")).unwrap();
    assert_eq!(file, status);
    let state: State = fx.call(Op::State);
    assert_eq!(state.status, Status::Exited);
    assert_eq!(state.exit_code, Some(3));
    assert!(state.started_at.is_some());
    let records = fx.records();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0]["log"], "out\n");
    assert_eq!(records[0]["stream"], "stdout");
    assert_eq!(records[1]["log"], "err\n");
    assert_eq!(records[1]["stream"], "stderr");
    assert!(records[0]["time"].as_str().unwrap().ends_with('Z'));
    fx.shutdown();
}

#[test]
fn signal_death_is_128_plus_signal() {
    let mut fx = Fixture::new(&["sleep", "100"]);
    fx.spawn_ready(&[]);
    fx.start();
    // SIGTERM to the monitor must not hurt it or the container.
    let mpid = fx.monitor.as_ref().unwrap().id() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(mpid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let state: State = fx.call(Op::State);
    assert_eq!(state.status, Status::Running);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(fx.init_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert_eq!(fx.wait().exit_code, 137);
    fx.shutdown();
}

#[test]
fn stdin_through_attach_with_stdin_once() {
    let mut fx = Fixture::new(&["cat"]);
    fx.spawn_ready(&["--stdin", "--stdin-once"]);
    let (mut s, _) = fx.stream(attach_op(true));
    fx.start();
    s.write_all(b"hello\n").unwrap();
    let (stream, data) = read_frame(&mut s).unwrap().unwrap();
    assert_eq!((stream, data.as_slice()), (Stream::Stdout, &b"hello\n"[..]));
    s.write_all(b"bye").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let rest = frames(&mut s);
    assert_eq!(joined(&rest, Stream::Stdout), "bye");
    assert_eq!(fx.wait().exit_code, 0);
    let logs: Vec<_> = fx.records().iter().map(|r| r["log"].clone()).collect();
    assert_eq!(logs, ["hello\n", "bye"]);
    fx.shutdown();
}

#[test]
fn tty_and_resize() {
    let mut fx = Fixture::new(&["sh", "-c", "sleep 0.3; stty size; exit 4"]).tty();
    fx.spawn_ready(&["--tty"]);
    let (mut s, _) = fx.stream(attach_op(false));
    let r: Reply = fx.call(Op::Resize {
        height: 21,
        width: 77,
        exec_id: None,
    });
    assert!(r.ok, "{r:?}");
    fx.start();
    let out = read_all(&mut s);
    assert_eq!(out.trim(), "21 77", "{out:?}");
    assert_eq!(fx.wait().exit_code, 4);
    let records = fx.records();
    assert_eq!(records[0]["log"], "21 77\r\n");
    fx.shutdown();
}

fn process(fx: &Fixture, args: &[&str]) -> Box<oci_spec::runtime::Process> {
    let mut p: oci_spec::runtime::Process =
        serde_json::from_value(fx.config["process"].clone()).unwrap();
    p.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
    Box::new(p)
}

#[test]
fn exec_pipes_and_tty() {
    let mut fx = Fixture::new(&["sleep", "100"]);
    fx.spawn_ready(&[]);
    fx.start();
    let (mut s, reply) = fx.stream(Op::Exec {
        exec_id: "e1".into(),
        process: process(&fx, &["sh", "-c", "echo x; sleep 0.1; echo y >&2; exit 5"]),
        tty: false,
        stdin: false,
    });
    assert!(reply.pid.unwrap() > 0);
    let got = frames(&mut s);
    assert_eq!(joined(&got, Stream::Stdout), "x\n");
    assert_eq!(joined(&got, Stream::Stderr), "y\n");
    let deadline = Instant::now() + TIMEOUT;
    let state = loop {
        let st: ExecState = fx.call(Op::ExecState {
            exec_id: "e1".into(),
        });
        if !st.running || Instant::now() > deadline {
            break st;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(state.exit_code, Some(5));

    // With a tty, stdin, and a resize of the exec's terminal.
    let (mut s, _) = fx.stream(Op::Exec {
        exec_id: "e2".into(),
        process: process(&fx, &["sh", "-c", "read x; stty size; echo got $x"]),
        tty: true,
        stdin: true,
    });
    let r: Reply = fx.call(Op::Resize {
        height: 9,
        width: 33,
        exec_id: Some("e2".into()),
    });
    assert!(r.ok, "{r:?}");
    s.write_all(b"ping\n").unwrap();
    let out = read_all(&mut s);
    assert!(out.contains("9 33\r\n"), "{out:?}");
    assert!(out.contains("got ping"), "{out:?}");
    // Exec output never reaches the container's log.
    assert!(fx.records().is_empty());
    let err: Result<Reply, _> = protocol::call(
        &mut fx.connect(),
        &Request::from(Op::ExecState {
            exec_id: "nope".into(),
        }),
    );
    assert!(err.is_err());

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(fx.init_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert_eq!(fx.wait().exit_code, 137);
    fx.shutdown();
}

#[test]
fn survives_the_death_of_its_parent() {
    let mut fx = Fixture::new(&["sh", "-c", "read x; echo got $x; exit 7"]);
    let (r, w) = ready_pipe();
    let monitor = fx.command(&["--stdin"], raw(&w));
    // The "daemon": a shell that starts the monitor in the background and stays.
    let mut argv = vec![monitor.get_program().to_owned()];
    argv.extend(monitor.get_args().map(|a| a.to_owned()));
    let mut daemon = Command::new("sh");
    daemon
        .arg("-c")
        .arg("\"$@\" </dev/null >/dev/null & sleep 100")
        .arg("sh")
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0);
    let mut daemon = daemon.spawn().unwrap();
    drop(w);
    let line = read_line_timeout(&r);
    assert!(line.starts_with("ready "), "{line}");
    fx.init_pid = line[6..].trim().parse().unwrap();
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let mpid: i32 = std::fs::read_to_string(fx.state_dir().join("monitor.pid"))
        .unwrap()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(Path::new(&format!("/proc/{mpid}")).exists());
    fx.start();
    let state: State = fx.call(Op::State);
    assert_eq!(state.status, Status::Running);
    let (mut s, _) = fx.stream(attach_op(true));
    s.write_all(b"back\n").unwrap();
    let got = frames(&mut s);
    assert_eq!(joined(&got, Stream::Stdout), "got back\n");
    assert_eq!(fx.wait().exit_code, 7);
    fx.shutdown();
    // Its new parent (init or a subreaper) reaps it.
    let deadline = Instant::now() + TIMEOUT;
    while Path::new(&format!("/proc/{mpid}")).exists() {
        assert!(Instant::now() < deadline, "monitor {mpid} still there");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn log_rotation() {
    let mut fx = Fixture::new(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo line $i; done",
    ]);
    fx.spawn_ready(&["--log-max-size", "1000", "--log-max-file", "3"]);
    fx.start();
    assert_eq!(fx.wait().exit_code, 0);
    let log = fx.log().display().to_string();
    for p in [log.clone(), format!("{log}.1"), format!("{log}.2")] {
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(len > 0 && len <= 1000, "{p}: {len}");
    }
    assert!(!Path::new(&format!("{log}.3")).exists());
    assert_eq!(fx.records().last().unwrap()["log"], "line 200\n");
    fx.shutdown();
}

#[test]
fn missing_executable_is_reported_and_leaves_nothing() {
    // Looked up in PATH: the runtime's create fails, the ready line carries its message.
    let mut fx = Fixture::new(&["no-such-program"]);
    let line = fx.spawn(&[]);
    assert!(line.starts_with("error "), "{line}");
    assert!(
        line.contains("no-such-program") && line.contains("not found"),
        "{line}"
    );
    let child = fx.monitor.take().unwrap();
    assert_eq!(wait_child(child), Some(1));
    assert!(!fx.state_dir().join("monitor.sock").exists());
    fx.assert_clean();

    // An absolute path fails at exec, so at start: the start's answer carries the message.
    let mut fx = Fixture::new(&["/no/such/program"]);
    fx.spawn_ready(&[]);
    let err = protocol::call::<Reply>(&mut fx.connect(), &Request::from(Op::Start)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("/no/such/program"), "{text}");
    let status = fx.wait();
    assert_ne!(status.exit_code, 0);
    fx.shutdown();
}

#[test]
fn idle_exit_after_the_container_ended() {
    let mut fx = Fixture::new(&["true"]);
    fx.spawn_ready(&[]);
    fx.start();
    let child = fx.monitor.take().unwrap();
    // No shutdown: the monitor goes by itself 5 s after the end, leaving exit.json.
    assert_eq!(wait_child(child), Some(0));
    let status = berth_monitor::exit::read(&fx.state_dir().join("exit.json")).unwrap();
    assert_eq!(status.exit_code, 0);
    fx.assert_clean();
}
