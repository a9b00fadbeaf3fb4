//! `SCMP_ACT_NOTIFY` on the real kernel, with the test agent of `berth_tests::seccomp_agent`.
//!
//! As the runtime will: a forked child sets `no_new_privs` and loads the program, which returns
//! the listener; the child sends it to the parent over a socket pair (with rustix's `sendmsg`
//! on a stack buffer: the child never allocates, the test binary being multi-threaded when it
//! forks) and closes its copy; the parent sends it with a container process state to the agent
//! with `send_to_agent` and closes its copy; then the parent tells the child to go on, and the
//! child makes its syscalls and reports through its exit code.
//!
//! Every wait is bounded (a child still running after 10 s is killed), a child is killed and
//! reaped by its guard if the test fails first, and the tests run one at a time: a fork during
//! another test would copy that test's descriptors (its listener, its sockets) into the child,
//! and keep them alive.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::ffi::CString;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use berth_seccomp::agent::{self, send_to_agent, ContainerProcessState, ContainerState, State};
use berth_seccomp::{compile, Error, Program};
use berth_tests::seccomp_agent::{Agent, Response};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{
    recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::LinuxSeccomp;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

/// Exit codes for a child that failed before or outside its checks (errnos stay below 134).
const SEND_FAILED: i32 = 247;
const GO_FAILED: i32 = 248;
const NO_LISTENER: i32 = 249;
const NNP_FAILED: i32 = 250;
const LOAD_FAILED: i32 = 251;
const UNEXPECTED: i32 = 252;
const SUCCEEDED: i32 = 253;

const TIMEOUT: Duration = Duration::from_secs(10);

const METADATA: &str = "notify-test metadata";

/// One test at a time; see the module's documentation.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A program notifying `mkdir` and `mkdirat` to the agent at `listener`, with `flags`.
fn mkdir_notify(listener: &Path, flags: &[&str]) -> Program {
    let seccomp: LinuxSeccomp = serde_json::from_value(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": listener,
        "listenerMetadata": METADATA,
        "flags": flags,
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    }))
    .expect("valid LinuxSeccomp");
    let program = compile(&seccomp).expect("compiles");
    assert!(program.uses_notify());
    program
}

/// A forked child that has loaded a notify program; killed and reaped on drop unless waited.
struct Child {
    pid: Pid,
    /// The parent's end of the socket pair.
    sock: OwnedFd,
    reaped: bool,
}

impl Child {
    /// Forks; the child sets `no_new_privs`, loads `program`, sends the listener to the parent,
    /// closes its copy, waits for the parent's go, runs `body` and exits with its result.
    fn spawn(program: &Program, body: impl FnOnce() -> i32) -> Child {
        let (parent_end, child_end) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .expect("socketpair");
        // SAFETY: the child runs only async-signal-safe code that does not allocate (prctl,
        // setrlimit, the seccomp(2) load, sendmsg and read on stack buffers, close, raw
        // syscalls) and leaves with `_exit`, so state copied from the parent's other threads
        // (locks, allocator) is never touched.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                drop(parent_end);
                let code = 'child: {
                    if nix::sys::prctl::set_no_new_privs().is_err()
                        || setrlimit(Resource::RLIMIT_CORE, 0, 0).is_err()
                    {
                        break 'child NNP_FAILED;
                    }
                    let listener = match program.load() {
                        Ok(Some(listener)) => listener,
                        Ok(None) => break 'child NO_LISTENER,
                        Err(_) => break 'child LOAD_FAILED,
                    };
                    if send_fd(child_end.as_fd(), listener.as_fd()).is_err() {
                        break 'child SEND_FAILED;
                    }
                    drop(listener);
                    let mut go = [0u8; 1];
                    if !matches!(rustix::io::read(&child_end, &mut go), Ok(1)) {
                        break 'child GO_FAILED;
                    }
                    body()
                };
                // SAFETY: `_exit` ends the child without running the parent's atexit handlers or
                // destructors; always sound.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                drop(child_end);
                Child {
                    pid: child,
                    sock: parent_end,
                    reaped: false,
                }
            }
        }
    }

    /// The listener the child sent; panics if none comes within [`TIMEOUT`].
    fn listener(&mut self) -> OwnedFd {
        let mut pfd = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut pfd, PollTimeout::from(10_000u16)).expect("poll");
        assert!(ready == 1, "the child sent no listener within {TIMEOUT:?}");
        let mut buf = [0u8; 16];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
        )
        .expect("recvmsg");
        let mut listener = None;
        for cmsg in msg.cmsgs().expect("control messages") {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for fd in fds {
                    // SAFETY: SCM_RIGHTS just installed `fd` in this process; nothing else owns it.
                    listener.get_or_insert(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        match listener {
            Some(listener) => listener,
            None => {
                let status = self.wait();
                panic!("the child sent no listener; it ended with {status:?}");
            }
        }
    }

    /// Lets the child make its syscalls.
    fn go(&self) {
        assert_eq!(
            rustix::io::write(&self.sock, b"g"),
            Ok(1),
            "go to the child"
        );
    }

    /// Waits for the child at most [`TIMEOUT`]; kills and reaps it, then panics, if it overruns.
    fn wait(&mut self) -> WaitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)).expect("waitpid") {
                WaitStatus::StillAlive if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                WaitStatus::StillAlive => {
                    let _ = kill(self.pid, Signal::SIGKILL);
                    let _ = waitpid(self.pid, None);
                    self.reaped = true;
                    panic!(
                        "child {} still running after {TIMEOUT:?}; killed it",
                        self.pid
                    );
                }
                status => {
                    self.reaped = true;
                    return status;
                }
            }
        }
    }

    /// The child's exit code, after [`Child::wait`].
    fn exit_code(&mut self) -> i32 {
        match self.wait() {
            WaitStatus::Exited(_, code) => code,
            other => panic!("child did not exit normally: {other:?}"),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

/// Sends `fd` over `sock` with one byte, from a stack buffer: no allocation.
fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> rustix::io::Result<usize> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(rustix::io::Errno::NOBUFS);
    }
    rustix::net::sendmsg(
        sock,
        &[IoSlice::new(b"L")],
        &mut control,
        SendFlags::empty(),
    )
}

/// The state the runtime would send for the container whose process is `pid`.
fn process_state(pid: Pid) -> ContainerProcessState {
    let mut state = State::default();
    state
        .set_version("1.2.0".to_owned())
        .set_id("notify-test".to_owned())
        .set_status(ContainerState::Created)
        .set_pid(Some(pid.as_raw()))
        .set_bundle("/run/notify-test-bundle".into());
    agent::process_state(state, pid.as_raw(), Some(METADATA.to_owned()))
}

/// Hands the child's listener to `agent` as the runtime would, and closes the parent's copy.
fn hand_over(child: &mut Child, agent: &Agent) {
    let listener = child.listener();
    send_to_agent(agent.path(), &process_state(child.pid), listener.as_fd())
        .expect("send_to_agent");
}

/// A raw syscall's outcome as an exit code: the errno if it failed, else [`SUCCEEDED`].
fn outcome(ret: libc::c_long) -> i32 {
    if ret == -1 {
        Errno::last_raw()
    } else {
        SUCCEEDED
    }
}

/// The child's body: `mkdir(path)` through libc and `mkdirat` directly, both with the same
/// outcome (else [`UNEXPECTED`]).
fn mkdir_twice(path: &CString) -> impl FnOnce() -> i32 + '_ {
    move || {
        // SAFETY: `path` is a valid NUL-terminated string that outlives the calls.
        let (via_libc, via_mkdirat) = unsafe {
            (
                libc::mkdir(path.as_ptr(), 0o755),
                libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, path.as_ptr(), 0o755),
            )
        };
        let via_libc = outcome(via_libc.into());
        if outcome(via_mkdirat) != via_libc {
            return UNEXPECTED;
        }
        via_libc
    }
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

/// Both mkdir calls were answered, the direct `mkdirat` last.
fn assert_both_answered(agent: &Agent) {
    let answered = agent.answered();
    assert_eq!(answered.len(), 2, "{answered:?}");
    assert_eq!(answered[1], libc::SYS_mkdirat, "{answered:?}");
}

#[test]
fn agent_pretends_success_and_gets_the_state() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(&dir.path().join("agent.sock"), Response::Value(0));
    let program = mkdir_notify(agent.path(), &[]);
    let target = dir.path().join("not-made");
    let target_c = c_path(&target);

    let mut child = Child::spawn(&program, mkdir_twice(&target_c));
    hand_over(&mut child, &agent);
    child.go();
    assert_eq!(
        child.exit_code(),
        SUCCEEDED,
        "agent error: {:?}",
        agent.error()
    );
    // mkdir "succeeded", but the agent did not make the directory.
    assert!(!target.exists());
    assert_both_answered(&agent);

    let state = agent.state().expect("the agent got the state");
    assert_eq!(state["metadata"], METADATA);
    assert_eq!(state["fds"], serde_json::json!(["seccompFd"]));
    assert_eq!(state["pid"], child.pid.as_raw());
    assert_eq!(state["ociVersion"], "1.2.0");
    assert_eq!(state["state"]["id"], "notify-test");
    assert_eq!(state["state"]["status"], "created");
    assert_eq!(state["state"]["pid"], child.pid.as_raw());
    assert_eq!(state["state"]["bundle"], "/run/notify-test-bundle");
    // The filtered process is gone (and reaped): the listener reports POLLHUP and the agent ends.
    assert!(agent.wait_finished(TIMEOUT), "the agent saw no POLLHUP");
    assert_eq!(agent.error(), None);

    // Without the filter, the same mkdir works (so the success above was the agent's).
    std::fs::create_dir(&target).expect("mkdir without filter");
}

#[test]
fn agent_errno_fails_the_syscall() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(
        &dir.path().join("agent.sock"),
        Response::Errno(libc::ENOTSUP),
    );
    let program = mkdir_notify(agent.path(), &[]);
    let target = dir.path().join("refused");
    let target_c = c_path(&target);

    let mut child = Child::spawn(&program, mkdir_twice(&target_c));
    hand_over(&mut child, &agent);
    child.go();
    assert_eq!(
        child.exit_code(),
        libc::ENOTSUP,
        "agent error: {:?}",
        agent.error()
    );
    assert!(!target.exists());
    assert_both_answered(&agent);
}

#[test]
fn agent_continue_lets_the_kernel_run_it() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(&dir.path().join("agent.sock"), Response::Continue);
    let program = mkdir_notify(agent.path(), &[]);
    let target = dir.path().join("made");
    let target_c = c_path(&target);

    // SAFETY: `target_c` is a valid NUL-terminated string that outlives the call.
    let body = || outcome(unsafe { libc::mkdir(target_c.as_ptr(), 0o755) }.into());
    let mut child = Child::spawn(&program, body);
    hand_over(&mut child, &agent);
    child.go();
    assert_eq!(
        child.exit_code(),
        SUCCEEDED,
        "agent error: {:?}",
        agent.error()
    );
    assert!(target.is_dir());
    assert_eq!(agent.answered().len(), 1);
}

#[test]
fn without_the_agent_notified_syscalls_fail_with_enosys() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(&dir.path().join("agent.sock"), Response::Value(0));
    let program = mkdir_notify(agent.path(), &[]);
    let target = dir.path().join("no-agent");
    let target_c = c_path(&target);

    let mut child = Child::spawn(&program, mkdir_twice(&target_c));
    hand_over(&mut child, &agent);
    agent.wait_state(TIMEOUT);
    // The agent held the last copy of the listener.
    drop(agent);
    child.go();
    assert_eq!(child.exit_code(), libc::ENOSYS);
    assert!(!target.exists());
}

#[test]
fn tsync_and_wait_killable_recv_load_with_a_listener() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(&dir.path().join("agent.sock"), Response::Errno(libc::EROFS));
    let program = mkdir_notify(
        agent.path(),
        &[
            "SECCOMP_FILTER_FLAG_TSYNC",
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
        ],
    );
    assert_eq!(
        program.flags(),
        libc::SECCOMP_FILTER_FLAG_TSYNC
            | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
            | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    );
    let target = dir.path().join("tsync");
    let target_c = c_path(&target);

    let mut child = Child::spawn(&program, mkdir_twice(&target_c));
    hand_over(&mut child, &agent);
    child.go();
    assert_eq!(
        child.exit_code(),
        libc::EROFS,
        "agent error: {:?}",
        agent.error()
    );
}

#[test]
fn a_second_listener_is_refused_with_ebusy() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(&dir.path().join("agent.sock"), Response::Value(0));
    let program = mkdir_notify(agent.path(), &[]);

    let body = || match program.load() {
        Err(Error::Load(Errno::EBUSY)) => SUCCEEDED,
        _ => UNEXPECTED,
    };
    let mut child = Child::spawn(&program, body);
    hand_over(&mut child, &agent);
    child.go();
    assert_eq!(child.exit_code(), SUCCEEDED);
}

#[test]
fn send_to_agent_without_an_agent_names_the_path() {
    // A child forked meanwhile would keep the stale socket below listening.
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let devnull = std::fs::File::open("/dev/null").unwrap();
    let state = process_state(Pid::from_raw(1));

    let nowhere = dir.path().join("nobody-listens.sock");
    let err = send_to_agent(&nowhere, &state, devnull.as_fd()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Agent {
                what: "connecting",
                source: Errno::ENOENT,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&nowhere.display().to_string()), "{text}");
    assert!(text.contains("connecting"), "{text}");

    // A socket that was bound but listens no more (the agent is gone).
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let err = send_to_agent(&stale, &state, devnull.as_fd()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Agent {
                source: Errno::ECONNREFUSED,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&stale.display().to_string()),
        "{err}"
    );
}
