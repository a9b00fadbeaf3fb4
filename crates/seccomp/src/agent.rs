//! Handing a notify listener to the seccomp agent at `linux.seccomp.listenerPath`.
//!
//! The runtime spec (config-linux.md, "Seccomp") has the runtime connect to the `AF_UNIX`
//! `SOCK_STREAM` socket at `listenerPath` and send the *container process state*
//! ([`ContainerProcessState`]: `ociVersion`, `fds`, `pid`, `metadata` from `listenerMetadata`,
//! and the container's `state`) as JSON, with the descriptors named in `fds` attached as
//! `SCM_RIGHTS`: here only `seccompFd`, the listener returned by [`crate::Program::load`]. One
//! state per connection, which is then closed; a failure to send is an error of the runtime.
//!
//! The state types are oci-spec's, re-exported; [`process_state`] builds one. [`send_to_agent`]
//! allocates and blocks (for at most [`SEND_TIMEOUT`] per step): the runtime calls it in its
//! parent process, not in the forked child.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    connect, send, sendmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessage, MsgFlags,
    SockFlag, SockType, UnixAddr,
};
use nix::sys::time::TimeVal;

pub use oci_spec::runtime::{ContainerProcessState, ContainerState, State, SECCOMP_FD_NAME};

use crate::Error;

/// The longest [`send_to_agent`] waits to connect (an agent whose backlog is full) and for
/// room to send (an agent that reads nothing), each time.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The container process state sent with the listener: `state` as `runtime state` prints it
/// (its `ociVersion` is used for the message too), the `pid` of the container process that
/// loaded the filter, `metadata` from `listenerMetadata`, and `fds` naming the one descriptor
/// [`send_to_agent`] attaches, [`SECCOMP_FD_NAME`].
pub fn process_state(state: State, pid: i32, metadata: Option<String>) -> ContainerProcessState {
    let mut process = ContainerProcessState::default();
    process
        .set_version(state.version().clone())
        .set_fds(vec![SECCOMP_FD_NAME.to_owned()])
        .set_pid(pid)
        .set_metadata(metadata)
        .set_state(state);
    process
}

/// Sends `state` and `seccomp_fd` (with `SCM_RIGHTS`) to the agent listening at `listener_path`:
/// connects, sends the JSON in one `sendmsg` with the descriptor (and what a short write left
/// over after it), and closes the connection.
///
/// `state.fds()` must be `["seccompFd"]`: the names of the descriptors attached, in order. Each
/// step waits at most [`SEND_TIMEOUT`]. Errors name the path and the step that failed.
pub fn send_to_agent(
    listener_path: &Path,
    state: &ContainerProcessState,
    seccomp_fd: BorrowedFd<'_>,
) -> Result<(), Error> {
    let invalid = |reason: String| Error::InvalidProcessState {
        path: listener_path.to_owned(),
        reason,
    };
    if state.fds() != &[SECCOMP_FD_NAME] {
        return Err(invalid(format!(
            "fds must be [{SECCOMP_FD_NAME:?}], the descriptor sent, not {:?}",
            state.fds()
        )));
    }
    let json = serde_json::to_vec(state).map_err(|e| invalid(format!("to JSON: {e}")))?;
    let fail = |what: &'static str| {
        move |source: Errno| Error::Agent {
            path: listener_path.to_owned(),
            what,
            source,
        }
    };

    let addr = UnixAddr::new(listener_path).map_err(fail("not a socket address"))?;
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(fail("creating a socket"))?;
    // Bounds connect(2) on a Unix socket too.
    let timeout = TimeVal::new(
        libc::time_t::try_from(SEND_TIMEOUT.as_secs()).unwrap_or(libc::time_t::MAX),
        0,
    );
    setsockopt(&sock, sockopt::SendTimeout, &timeout).map_err(fail("setting a send timeout"))?;
    retry_eintr(|| connect(sock.as_raw_fd(), &addr)).map_err(fail("connecting"))?;

    // The descriptor goes with the first bytes; MSG_NOSIGNAL: an agent gone is an error, not
    // a SIGPIPE.
    let fds = [seccomp_fd.as_raw_fd()];
    let mut sent = retry_eintr(|| {
        sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(&json)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
    })
    .map_err(fail("sending the state and the listener"))?;
    while let Some(rest) = json.get(sent..).filter(|rest| !rest.is_empty()) {
        match retry_eintr(|| send(sock.as_raw_fd(), rest, MsgFlags::MSG_NOSIGNAL)) {
            Ok(0) => return Err(fail("sending the rest of the state")(Errno::EPIPE)),
            Ok(n) => sent += n,
            Err(e) => return Err(fail("sending the rest of the state")(e)),
        }
    }
    // Dropping `sock` closes the connection: the agent reads the state up to end-of-file.
    Ok(())
}

/// Calls `f` again while it fails with `EINTR`.
fn retry_eintr<T>(mut f: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match f() {
            Err(Errno::EINTR) => {}
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Read;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixListener;

    use super::*;

    fn state() -> ContainerProcessState {
        let mut state = State::default();
        state
            .set_version("1.2.0".to_owned())
            .set_id("c1".to_owned())
            .set_status(ContainerState::Running)
            .set_pid(Some(42))
            .set_bundle("/b".into())
            .set_annotations(Some(HashMap::from([("k".to_owned(), "v".to_owned())])));
        process_state(state, 43, Some("meta".to_owned()))
    }

    #[test]
    fn process_state_json_is_the_specs() {
        let json = serde_json::to_value(state()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "ociVersion": "1.2.0",
                "fds": ["seccompFd"],
                "pid": 43,
                "metadata": "meta",
                "state": {
                    "ociVersion": "1.2.0",
                    "id": "c1",
                    "status": "running",
                    "pid": 42,
                    "bundle": "/b",
                    "annotations": {"k": "v"}
                }
            })
        );
        let none = process_state(State::default(), 1, None);
        assert!(serde_json::to_value(none)
            .unwrap()
            .get("metadata")
            .is_none());
    }

    #[test]
    fn fds_must_name_the_descriptor_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let _listener = UnixListener::bind(&path).unwrap();
        let devnull = std::fs::File::open("/dev/null").unwrap();
        let mut bad = state();
        bad.set_fds(vec![]);
        let err = send_to_agent(&path, &bad, devnull.as_fd()).unwrap_err();
        assert!(matches!(err, Error::InvalidProcessState { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn large_state_arrives_whole() {
        // Bigger than a Unix socket's default send buffer: sendmsg sends part of it, or blocks
        // until the reader makes room; either way the reader gets all of it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let mut big = state();
        big.set_metadata(Some("x".repeat(4 << 20)));
        let expected = serde_json::to_vec(&big).unwrap();
        let reader = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut got = Vec::new();
            conn.read_to_end(&mut got).unwrap();
            got
        });
        let devnull = std::fs::File::open("/dev/null").unwrap();
        send_to_agent(&path, &big, devnull.as_fd()).unwrap();
        assert!(reader.join().unwrap() == expected);
    }
}
