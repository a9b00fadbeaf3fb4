//! The channel between the runtime and the process it forks.
//!
//! A `SOCK_SEQPACKET` socket pair, close-on-exec on both ends: each message is one packet, and the
//! child's end closes by itself when the child execs the user's program, so the parent reads
//! end-of-file exactly when the exec has succeeded. One message carries a descriptor
//! ([`Msg::Listener`], the seccomp notify listener, with SCM_RIGHTS).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, send, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType,
};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("creating the sync socket: {0}")]
    Create(nix::Error),
    #[error("sending on the sync socket: {0}")]
    Send(nix::Error),
    #[error("receiving on the sync socket: {0}")]
    Recv(nix::Error),
    #[error("unexpected message on the sync socket: {0:?}")]
    Unexpected(String),
}

/// A message between runtime and child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Parent to child: ids are mapped; set up what does not need the cgroup.
    Go,
    /// Child to parent: the child moved itself into its cgroups.
    Joined,
    /// Parent to child: the child is in its cgroup and the prestart/createRuntime hooks ran;
    /// go on to the cgroup namespace, the rest of the mounts and pivot_root.
    Placed,
    /// Child to parent: the container is set up and waits to be started (or is about to exec).
    Ready,
    /// Child to parent: setting up failed; the text says why.
    Error(String),
    /// Child to parent: the seccomp notify listener, for the agent (the descriptor comes with
    /// it: see [`Channel::send_listener`] and [`Channel::recv_with_fd`]).
    Listener,
    /// The other end closed (for the child's end: it exec'd or died).
    Closed,
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// Makes a connected pair: (parent's end, child's end).
pub fn pair() -> Result<(Channel, Channel), SyncError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(SyncError::Create)?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send(&self, msg: &Msg) -> Result<(), SyncError> {
        let bytes: Vec<u8> = match msg {
            Msg::Go => b"G".to_vec(),
            Msg::Placed => b"P".to_vec(),
            Msg::Joined => b"J".to_vec(),
            Msg::Ready => b"R".to_vec(),
            Msg::Listener => b"L".to_vec(),
            Msg::Error(text) => {
                let mut v = b"E".to_vec();
                v.extend_from_slice(text.as_bytes());
                v
            }
            Msg::Closed => return Ok(()),
        };
        loop {
            match send(self.fd.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(SyncError::Send(e)),
            }
        }
    }

    /// Sends [`Msg::Listener`] with `fd` attached (SCM_RIGHTS).
    pub fn send_listener(&self, fd: BorrowedFd<'_>) -> Result<(), SyncError> {
        let fds = [fd.as_raw_fd()];
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &[IoSlice::new(b"L")],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(SyncError::Send(e)),
            }
        }
    }

    pub fn recv(&self) -> Result<Msg, SyncError> {
        Ok(self.recv_with_fd()?.0)
    }

    /// Receives a message and the descriptor that came with it, if any (close-on-exec).
    pub fn recv_with_fd(&self) -> Result<(Msg, Option<OwnedFd>), SyncError> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        // The kernel reports a peer's reset (the child exited with a message of ours unread)
        // once, possibly before messages the child sent first: its error is read after it.
        let mut reset_seen = false;
        let (n, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fd = None;
                    for cmsg in msg.cmsgs().map_err(SyncError::Recv)? {
                        if let ControlMessageOwned::ScmRights(fds) = cmsg {
                            for raw in fds {
                                // SAFETY: SCM_RIGHTS just installed `raw` in this process and
                                // nothing else owns it; the first is kept, others are closed.
                                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    break (msg.bytes, fd);
                }
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::ECONNRESET) if !reset_seen => reset_seen = true,
                Err(nix::Error::ECONNRESET) => break (0, None),
                Err(e) => return Err(SyncError::Recv(e)),
            }
        };
        let msg = match buf.get(..n).unwrap_or_default() {
            [] => Msg::Closed,
            b"G" => Msg::Go,
            b"P" => Msg::Placed,
            b"J" => Msg::Joined,
            b"R" => Msg::Ready,
            b"L" => Msg::Listener,
            [b'E', rest @ ..] => Msg::Error(String::from_utf8_lossy(rest).into_owned()),
            other => {
                return Err(SyncError::Unexpected(
                    String::from_utf8_lossy(other).into_owned(),
                ))
            }
        };
        Ok((msg, fd))
    }

    /// Sends `msg` to a child that may have failed already: when the send fails because the
    /// child's end is gone, the error message the child left before dying is what is returned
    /// (as `Ok(Some(text))`), not the send's EPIPE.
    pub fn send_to_child(&self, msg: &Msg) -> Result<Option<String>, SyncError> {
        match self.send(msg) {
            Ok(()) => Ok(None),
            Err(SyncError::Send(nix::Error::EPIPE | nix::Error::ECONNRESET)) => match self.recv() {
                Ok(Msg::Error(text)) => Ok(Some(text)),
                _ => Ok(Some("container init exited during setup".to_string())),
            },
            Err(e) => Err(e),
        }
    }

    /// Waits for `expected`; an error message or anything else becomes an error.
    pub fn expect(&self, expected: Msg) -> Result<(), SyncError> {
        let got = self.recv()?;
        if got == expected {
            Ok(())
        } else {
            Err(SyncError::Unexpected(format!("{got:?}")))
        }
    }
}
