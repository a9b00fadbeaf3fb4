//! Shared fixtures for the integration tests: a [`Guard`] owning one test
//! cgroup (`/berth-test-cgroups/<name>-<pid>`) whose `Drop` thaws it, kills
//! every process in it and the test's children, and destroys it, so that
//! cleanup also happens when an assertion fails. Every wait is bounded.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use berth_cgroups::Manager;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The parent of every test cgroup.
pub const TEST_ROOT: &str = "/berth-test-cgroups";

/// A created test cgroup plus the child processes started for it.
pub struct Guard {
    pub manager: Manager,
    children: Vec<Child>,
}

/// A child process that is blocked on its stdin until [`Task::start`].
pub struct Task {
    pub pid: i32,
    index: usize,
    stdin: Option<ChildStdin>,
}

impl Guard {
    /// Creates `/berth-test-cgroups/<name>-<pid>` in every hierarchy.
    pub fn new(name: &str) -> Guard {
        Self::at(&format!("{TEST_ROOT}/{name}-{}", std::process::id()))
    }

    /// Creates the cgroup at `path` (any OCI cgroupsPath).
    pub fn at(path: &str) -> Guard {
        let manager = Manager::new(Path::new(path)).expect("Manager::new");
        // Another test's guard may remove the shared parent right between
        // our mkdirs: retry a few times.
        let mut last = None;
        for _ in 0..5 {
            match manager.create() {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => {
                    last = Some(e);
                    sleep(Duration::from_millis(20));
                }
            }
        }
        if let Some(e) = last {
            panic!("create {path}: {e}");
        }
        Guard {
            manager,
            children: Vec::new(),
        }
    }

    /// Starts `sh -c 'read go; <script>'` outside the cgroup, moves it in
    /// with `add_task`, and returns it still waiting on its stdin.
    pub fn spawn_in_cgroup(&mut self, script: &str) -> Task {
        let manager = self.manager.clone();
        self.spawn_into(&manager, script)
    }

    /// Like [`Guard::spawn_in_cgroup`], into another manager's cgroup (one
    /// below this guard's, so that the guard still cleans it up).
    pub fn spawn_into(&mut self, manager: &Manager, script: &str) -> Task {
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("read go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn /bin/sh");
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        self.children.push(child);
        let index = self.children.len() - 1;
        let stdin = self.children[index].stdin.take();
        manager.add_task(pid).expect("add_task");
        Task { pid, index, stdin }
    }

    /// Lets a task run its script.
    pub fn start(&mut self, task: &mut Task) {
        let mut stdin = task.stdin.take().expect("task already started");
        stdin.write_all(b"go\n").expect("write to child stdin");
    }

    /// Waits (bounded) for a task to exit; returns its status and stderr.
    pub fn wait(&mut self, task: &Task, timeout: Duration) -> (ExitStatus, String) {
        let child = &mut self.children[task.index];
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "pid {} did not exit within {timeout:?}",
                task.pid
            );
            sleep(Duration::from_millis(10));
        };
        // Grandchildren may still hold the pipe: read what is there, never block.
        let mut err = Vec::new();
        if let Some(mut stderr) = child.stderr.take() {
            let flags = OFlag::O_NONBLOCK;
            if fcntl(&stderr, FcntlArg::F_SETFL(flags)).is_ok() {
                let _ = std::io::Read::read_to_end(&mut stderr, &mut err);
            }
        }
        (status, String::from_utf8_lossy(&err).into_owned())
    }

    /// The directory of `controller` (panics if it is not mounted).
    pub fn dir(&self, controller: &str) -> PathBuf {
        self.manager
            .controller_dir(controller)
            .unwrap_or_else(|| panic!("no {controller} hierarchy"))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.manager.thaw();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.manager.pids().unwrap_or_default();
            for pid in &pids {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
            }
            for child in &mut self.children {
                let _ = child.kill();
                let _ = child.try_wait();
            }
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            sleep(Duration::from_millis(10));
        }
        // Reap the children, bounded too (a task stuck frozen never exits).
        for child in &mut self.children {
            let reaped = wait_until(Duration::from_secs(5), || {
                !matches!(child.try_wait(), Ok(None))
            });
            if !reaped {
                eprintln!("child {} did not exit", child.id());
            }
        }
        if let Err(e) = self.manager.destroy() {
            eprintln!("cleanup of {}: {e}", self.manager.path().display());
        }
        // Remove the shared parent when we are the last test using it.
        if let Ok(parent) = Manager::new(Path::new(TEST_ROOT)) {
            for dir in parent.dirs() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// Reads a cgroup file, trimmed.
pub fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        sleep(Duration::from_millis(10));
    }
}
