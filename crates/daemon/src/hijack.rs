//! Hijacked connections (attach, exec): a client must have read the `101 Switching Protocols`
//! answer before the first byte of the stream follows it. A client that reads the answer
//! through a buffer and then the raw socket (the Python SDK does: `response.raw._fp.fp.raw`)
//! loses whatever arrived together with the headers. dockerd starts an exec only after the
//! hijack, which makes that rare; berthd starts one in a few milliseconds, so it waits until
//! the client has read what was sent (`SIOCOUTQ` of a Unix socket: bytes not yet read by the
//! peer), for a bounded time.

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// The descriptor of the connection a request came on, put in the request's extensions by the
/// server. Valid while the connection is: use it only while holding the request or its upgrade.
#[derive(Debug, Clone, Copy)]
pub struct Connection(pub RawFd);

/// How long to wait for a client to read the 101 before sending anyway.
const READ_WAIT: Duration = Duration::from_secs(1);

nix::ioctl_read_bad!(siocoutq, libc::TIOCOUTQ, libc::c_int);

/// Bytes sent on `fd` that its peer has not read yet (`SIOCOUTQ`), or None if unknown.
fn unread(fd: RawFd) -> Option<libc::c_int> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int to the pointer, which points to `n`, alive for the call;
    // `fd` is the connection's descriptor, open while the caller holds the connection (see
    // `Connection`), and the ioctl only reads its queue length.
    unsafe { siocoutq(fd, &mut n) }.ok().map(|_| n)
}

/// Returns once the client on `conn` has read everything sent so far (or after [`READ_WAIT`],
/// or at once when that cannot be known).
pub async fn until_client_read(conn: Option<Connection>) {
    let Some(Connection(fd)) = conn else { return };
    let deadline = Instant::now() + READ_WAIT;
    while unread(fd).is_some_and(|n| n > 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
