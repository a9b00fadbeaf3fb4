//! A seccomp agent for tests of `SCMP_ACT_NOTIFY`: it listens where `linux.seccomp.listenerPath`
//! points, takes the container process state and the listener from the one connection it
//! accepts, and answers every notified syscall the same configured way.
//!
//! [`Agent::start`] binds the socket before returning, so the runtime can connect at once; a
//! thread does the rest, and records what it got for the test: the state as JSON
//! ([`Agent::state`]), the numbers of the syscalls it answered ([`Agent::answered`]), and what
//! went wrong on its side ([`Agent::error`]). The thread ends when the listener reports
//! `POLLHUP` (no process uses the filter any more), when the agent is dropped, or after
//! [`LIFETIME`]; it never waits more than [`TICK`] without checking which. Dropping the agent
//! joins the thread and removes the socket. Once the agent is gone (and nobody else holds the
//! listener), notified syscalls fail with `ENOSYS`.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// How the agent answers each notified syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// The syscall fails with this errno (positive, e.g. `libc::ENOTSUP`) without being run.
    Errno(i32),
    /// The syscall returns this value without being run (`Value(0)`: pretend success).
    Value(i64),
    /// The kernel runs the syscall (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
    Continue,
}

/// The longest an agent's thread lives, whatever happens.
pub const LIFETIME: Duration = Duration::from_secs(120);

/// The longest the thread waits (to accept, read, or for a notification) before checking
/// whether it should stop.
pub const TICK: Duration = Duration::from_millis(20);

/// The most state the agent reads: more is an error.
const MAX_STATE: usize = 16 << 20;

/// What the thread records for the test.
#[derive(Debug, Default)]
struct Record {
    state: Option<serde_json::Value>,
    answered: Vec<libc::c_long>,
    error: Option<String>,
    finished: bool,
}

/// A running agent; see the module's documentation.
pub struct Agent {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<Record>>,
    thread: Option<JoinHandle<()>>,
}

impl Agent {
    /// Binds `socket_path` (which must not exist) and starts answering with `response`.
    /// Panics if the socket cannot be made.
    pub fn start(socket_path: &Path, response: Response) -> Agent {
        let listener = UnixListener::bind(socket_path).unwrap_or_else(|e| {
            panic!("binding the agent's socket {}: {e}", socket_path.display())
        });
        listener
            .set_nonblocking(true)
            .expect("non-blocking agent socket");
        let stop = Arc::new(AtomicBool::new(false));
        let record = Arc::new(Mutex::new(Record::default()));
        let thread = {
            let (stop, record) = (Arc::clone(&stop), Arc::clone(&record));
            std::thread::Builder::new()
                .name("seccomp-agent".into())
                .spawn(move || {
                    let deadline = Instant::now() + LIFETIME;
                    let go_on = || !stop.load(Ordering::SeqCst) && Instant::now() < deadline;
                    let result = serve(&listener, response, &go_on, &record);
                    drop(listener);
                    let mut record = lock(&record);
                    if let Err(e) = result {
                        record.error = Some(e);
                    }
                    record.finished = true;
                })
                .expect("spawning the agent's thread")
        };
        Agent {
            path: socket_path.to_owned(),
            stop,
            record,
            thread: Some(thread),
        }
    }

    /// The socket the agent listens on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The container process state received, once it has been read whole.
    pub fn state(&self) -> Option<serde_json::Value> {
        lock(&self.record).state.clone()
    }

    /// The syscall numbers answered so far, in order (`seccomp_data.nr`). A syscall is listed
    /// before the answer goes out, so one the filtered process has seen answered is listed.
    pub fn answered(&self) -> Vec<libc::c_long> {
        lock(&self.record).answered.clone()
    }

    /// What went wrong on the agent's side (a bad state, no listener...), if anything.
    pub fn error(&self) -> Option<String> {
        lock(&self.record).error.clone()
    }

    /// Whether the thread has ended (`POLLHUP`, an error, or [`LIFETIME`]).
    pub fn finished(&self) -> bool {
        lock(&self.record).finished
    }

    /// Waits at most `timeout` for the state; panics (with the agent's error, if any) without.
    pub fn wait_state(&self, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let record = lock(&self.record);
            if let Some(state) = &record.state {
                return state.clone();
            }
            assert!(
                !record.finished && Instant::now() < deadline,
                "the seccomp agent got no state within {timeout:?} (error: {:?})",
                record.error
            );
            drop(record);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits at most `timeout` for the thread to end; returns whether it did.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.finished() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // Ends within a TICK of the stop flag.
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The record, even if a panicking test thread poisoned the lock.
fn lock(record: &Mutex<Record>) -> MutexGuard<'_, Record> {
    record.lock().unwrap_or_else(|e| e.into_inner())
}

/// The agent's work: accept, read the state and the listener, answer until `POLLHUP`.
/// Returns early, without error, when `go_on` turns false.
fn serve(
    listener: &UnixListener,
    response: Response,
    go_on: &dyn Fn() -> bool,
    record: &Mutex<Record>,
) -> Result<(), String> {
    let Some(conn) = accept(listener, go_on)? else {
        return Ok(());
    };
    let Some((json, mut fds)) = read_state(&conn, go_on)? else {
        return Ok(());
    };
    drop(conn);
    let state: serde_json::Value =
        serde_json::from_slice(&json).map_err(|e| format!("the state is not JSON: {e}"))?;
    let index = state["fds"]
        .as_array()
        .and_then(|names| names.iter().position(|n| n == "seccompFd"))
        .ok_or_else(|| format!("no \"seccompFd\" in the state's fds: {state}"))?;
    lock(record).state = Some(state);
    if index >= fds.len() {
        return Err(format!(
            "\"seccompFd\" is descriptor {index} of the state's fds, but {} came",
            fds.len()
        ));
    }
    let listener_fd = fds.swap_remove(index);
    check_is_listener(listener_fd.as_fd())?;
    drop(fds);
    answer(listener_fd.as_fd(), response, go_on, record)
}

/// Accepts the one connection; `None` if told to stop first.
fn accept(listener: &UnixListener, go_on: &dyn Fn() -> bool) -> Result<Option<UnixStream>, String> {
    while go_on() {
        match listener.accept() {
            Ok((conn, _)) => return Ok(Some(conn)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                wait_readable(listener.as_fd())?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("accept: {e}")),
        }
    }
    Ok(None)
}

/// What came over the connection: the bytes, and every descriptor that came with them.
type Message = (Vec<u8>, Vec<OwnedFd>);

/// Reads the connection to end-of-file. `None` if told to stop first.
fn read_state(conn: &UnixStream, go_on: &dyn Fn() -> bool) -> Result<Option<Message>, String> {
    conn.set_nonblocking(false)
        .and_then(|()| conn.set_read_timeout(Some(TICK)))
        .map_err(|e| format!("setting up the connection: {e}"))?;
    let mut json = Vec::new();
    let mut fds = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = nix::cmsg_space!([RawFd; 8]);
    while go_on() {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => msg,
            Err(Errno::EAGAIN | Errno::EINTR) => continue,
            Err(e) => return Err(format!("recvmsg: {e}")),
        };
        for cmsg in msg.cmsgs().map_err(|e| format!("control messages: {e}"))? {
            if let ControlMessageOwned::ScmRights(received) = cmsg {
                for fd in received {
                    // SAFETY: SCM_RIGHTS has just installed `fd` in this process; nothing else
                    // knows or owns it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            return Err("more descriptors came than the agent takes".into());
        }
        let n = msg.bytes;
        if n == 0 {
            return Ok(Some((json, fds)));
        }
        json.extend_from_slice(&buf[..n]);
        if json.len() > MAX_STATE {
            return Err(format!("the state is over {MAX_STATE} bytes"));
        }
    }
    Ok(None)
}

/// Makes sure `fd` is a seccomp listener before sending it the listener's ioctls.
fn check_is_listener(fd: BorrowedFd<'_>) -> Result<(), String> {
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let target = std::fs::read_link(&link).map_err(|e| format!("readlink {link}: {e}"))?;
    if target != Path::new("anon_inode:seccomp notify") {
        return Err(format!(
            "the \"seccompFd\" descriptor is not a seccomp listener but {}",
            target.display()
        ));
    }
    Ok(())
}

/// Answers notifications on `listener` until `POLLHUP` (or told to stop).
fn answer(
    listener: BorrowedFd<'_>,
    response: Response,
    go_on: &dyn Fn() -> bool,
    record: &Mutex<Record>,
) -> Result<(), String> {
    while go_on() {
        let mut pfd = [PollFd::new(listener, PollFlags::POLLIN)];
        match poll(&mut pfd, tick()) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(format!("poll on the listener: {e}")),
        }
        let revents = pfd[0].revents().unwrap_or_else(PollFlags::empty);
        if !revents.contains(PollFlags::POLLIN) {
            if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
                // Every process using the filter is gone.
                return Ok(());
            }
            continue;
        }
        let req = match notif_recv(listener) {
            Ok(req) => req,
            // ENOENT: the process was killed, or its syscall interrupted, since the poll.
            Err(Errno::ENOENT | Errno::EINTR) => continue,
            Err(e) => return Err(format!("SECCOMP_IOCTL_NOTIF_RECV: {e}")),
        };
        // An agent that read the process's memory (a path argument...) would check here that
        // the notification is still valid, so as not to act for another process that reused
        // the pid. This one reads nothing; the check only skips notifications already gone.
        if notif_id_valid(listener, req.id).is_err() {
            continue;
        }
        let nr = libc::c_long::from(req.data.nr);
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: 0,
            flags: 0,
        };
        match response {
            Response::Errno(errno) => resp.error = -errno,
            Response::Value(value) => resp.val = value,
            Response::Continue => resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        }
        lock(record).answered.push(nr);
        match notif_send(listener, &mut resp) {
            Ok(()) => {}
            Err(Errno::ENOENT) => {
                // The syscall was interrupted or the process killed: not answered after all.
                let mut record = lock(record);
                if let Some(pos) = record.answered.iter().rposition(|&n| n == nr) {
                    record.answered.remove(pos);
                }
            }
            Err(e) => return Err(format!("SECCOMP_IOCTL_NOTIF_SEND: {e}")),
        }
    }
    Ok(())
}

/// Waits at most a [`TICK`] for `fd` to be readable.
fn wait_readable(fd: BorrowedFd<'_>) -> Result<(), String> {
    let mut pfd = [PollFd::new(fd, PollFlags::POLLIN)];
    match poll(&mut pfd, tick()) {
        Ok(_) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(format!("poll: {e}")),
    }
}

fn tick() -> PollTimeout {
    PollTimeout::from(u16::try_from(TICK.as_millis()).unwrap_or(u16::MAX))
}

// The listener's ioctls: neither nix nor rustix has them, so each raw call is made here once.
// `fd` is a seccomp listener (see `check_is_listener`) for all three.

/// `SECCOMP_IOCTL_NOTIF_RECV`: the next notification (blocks until there is one, or the
/// notification found by `poll` is gone: `ENOENT`).
fn notif_recv(fd: BorrowedFd<'_>) -> Result<libc::seccomp_notif, Errno> {
    // The kernel requires the buffer zeroed.
    let mut req = libc::seccomp_notif {
        id: 0,
        pid: 0,
        flags: 0,
        data: libc::seccomp_data {
            nr: 0,
            arch: 0,
            instruction_pointer: 0,
            args: [0; 6],
        },
    };
    // SAFETY: `fd` is a live seccomp listener; the request's encoded size is that of
    // `seccomp_notif`, and `req` is a valid, writable, zeroed one that outlives the call; the
    // kernel only writes within it.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            std::ptr::from_mut(&mut req),
        )
    };
    Errno::result(ret).map(|_| req)
}

/// `SECCOMP_IOCTL_NOTIF_SEND`: answers the notification `resp.id`.
fn notif_send(fd: BorrowedFd<'_>, resp: &mut libc::seccomp_notif_resp) -> Result<(), Errno> {
    loop {
        // SAFETY: `fd` is a live seccomp listener; `resp` is a valid `seccomp_notif_resp`, the
        // type the request is encoded with, borrowed for the call.
        let ret = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                std::ptr::from_mut(resp),
            )
        };
        match Errno::result(ret) {
            Err(Errno::EINTR) => {}
            other => return other.map(drop),
        }
    }
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: `Ok` while notification `id` is still pending (its process
/// alive and still in the syscall), `ENOENT` otherwise.
fn notif_id_valid(fd: BorrowedFd<'_>, id: u64) -> Result<(), Errno> {
    // SAFETY: `fd` is a live seccomp listener; the request reads one `u64`, and `id` is one,
    // borrowed for the call.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            std::ptr::from_ref(&id),
        )
    };
    Errno::result(ret).map(drop)
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;

    use nix::sys::socket::{sendmsg, ControlMessage};

    use super::*;

    #[test]
    fn drop_without_a_connection_is_prompt_and_removes_the_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.sock");
        let agent = Agent::start(&path, Response::Value(0));
        assert!(path.exists());
        let started = Instant::now();
        drop(agent);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(!path.exists());
    }

    #[test]
    fn a_descriptor_that_is_no_listener_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.sock");
        let agent = Agent::start(&path, Response::Value(0));
        let conn = UnixStream::connect(&path).expect("connect");
        let devnull = std::fs::File::open("/dev/null").expect("/dev/null");
        let json =
            br#"{"ociVersion":"1.2.0","fds":["seccompFd"],"pid":1,"metadata":"m","state":{}}"#;
        sendmsg::<()>(
            conn.as_raw_fd(),
            &[IoSlice::new(json)],
            &[ControlMessage::ScmRights(&[devnull.as_raw_fd()])],
            MsgFlags::empty(),
            None,
        )
        .expect("sendmsg");
        drop(conn);
        assert!(agent.wait_finished(Duration::from_secs(10)));
        assert_eq!(agent.state().expect("state")["metadata"], "m");
        let error = agent.error().expect("an error");
        assert!(error.contains("not a seccomp listener"), "{error}");
        assert!(agent.answered().is_empty());
    }
}
